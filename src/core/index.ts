export * from './types.js';
export * from './errors.js';
export { Rng } from './rng.js';
export { VERSION } from './version.js';
export { startWorker, siblingModule, tsxImportArgs } from './worker.js';
export { readHead, writeFileAtomic, streamToFileAtomic, writeDirAtomic, removeStaleTemps, isTempName, tempSibling, STALE_TEMP_MS } from './files.js';
