export * from './types.js';
export { openSqliteStore } from './sqlite.js';
export { writeFileAtomic, streamToFileAtomic } from './files.js';
