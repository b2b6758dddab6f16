/**
 * Starting a `worker_threads` Worker from a module of ours, compiled or not. From `dist/` the
 * entry is a `.js` file plain Node runs. From `src/` (vitest, tsx) it is a `.ts` file, and on
 * Node 20 a worker rejects a `.ts` entry ("Unknown file extension") before hooks registered by
 * `execArgv: ['--import', 'tsx']` apply (checked on 20.20); so such a worker starts from a
 * two-line bootstrap that registers tsx through its API and then imports the entry. tsx is a
 * devDependency, present wherever the `.ts` sources run; its API is located through its
 * package.json `exports` (the `import` build: the CommonJS one cannot be imported from ESM).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts the worker whose entry is `entry` (a sibling module's URL: `new URL('./worker.js',
 * import.meta.url)` from compiled code; the `.ts` one from sources).
 * @param entry the entry module; its extension says which of the two cases applies
 */
export function startWorker(entry: URL, options: WorkerOptions = {}): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const tsx = tsxPackage(entry);
  const api = tsx.file((tsx.exports?.['./esm/api'] as { import?: { default?: string } } | undefined)?.import?.default ?? './dist/esm/api/index.mjs');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

/**
 * The `execArgv` a child process (not a worker) needs to run `entry`: none for compiled `.js`,
 * tsx's loader (`--import`) for a `.ts` source, where a process's `--import` hooks do apply.
 */
export function tsxImportArgs(entry: URL): string[] {
  if (!entry.pathname.endsWith('.ts')) return [];
  const tsx = tsxPackage(entry);
  const loader = typeof tsx.exports?.['.'] === 'string' ? tsx.exports['.'] : './dist/loader.mjs';
  return ['--import', tsx.file(loader)];
}

/** tsx's package as seen from `from`: its `exports`, and the URL of one of its files. */
function tsxPackage(from: URL): { exports: Record<string, unknown> | undefined; file: (path: string) => string } {
  const pkgPath = createRequire(from).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports?: Record<string, unknown> };
  return { exports: pkg.exports, file: (path) => pathToFileURL(join(dirname(pkgPath), path)).href };
}

/**
 * The URL of the sibling module `name` (without extension) of the module at `here`, with the
 * caller's own extension: `.ts` under the sources, `.js` once compiled.
 */
export function siblingModule(here: string, name: string): URL {
  return new URL(`./${name}${here.endsWith('.ts') ? '.ts' : '.js'}`, here);
}
