import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { JobWorkerData } from './protocol.js';

/**
 * Starts the worker thread of one job. From `dist/` this module is `spawn.js` and the entry is
 * `worker.js`, which plain Node runs. From `src/` (vitest, tsx) the entry is `worker.ts`, and on
 * Node 20 a worker rejects a `.ts` entry before hooks registered by `execArgv: ['--import',
 * 'tsx']` apply; so, as `models/mlp/host.ts` does, the worker starts from a bootstrap that
 * registers tsx through its API and then imports `worker.ts`. tsx is a devDependency, present
 * wherever the `.ts` sources run.
 */
export function startJobWorker(data: JobWorkerData): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./worker.js', here), { workerData: data });
  const pkgPath = createRequire(here).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports?: Record<string, { import?: { default?: string } }> };
  // The `import` build of `tsx/esm/api`: its CommonJS build cannot be imported from ESM.
  const api = pathToFileURL(join(dirname(pkgPath), pkg.exports?.['./esm/api']?.import?.default ?? './dist/esm/api/index.mjs')).href;
  const entry = new URL('./worker.ts', here).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: data });
}
