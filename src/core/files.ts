/**
 * Atomic writes: one helper for every file and directory medfit stores (datasets, profiles, model
 * directories, uploads). Everything is written to a hidden temporary sibling on the same
 * filesystem and renamed into place, so a reader sees the old state or the new one, never half of
 * it; any failure removes the temporary sibling. A crash between the write and the rename can
 * still leave one behind: `removeStaleTemps` clears those at start-up.
 *
 * No fsync: a power cut may lose the newest write, but never leaves a torn file at the final path
 * (the rename is atomic), which is the property readers rely on.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors } from './errors.js';

/**
 * Names of temporary siblings: `.<name>.tmp-<8 hex>`. The job queue relies on this shape to clean
 * up after a worker terminated mid-save; `.tmp-<uuid>` is what uploads left before this helper.
 */
const TEMP_NAME = /^\.(?:.+\.)?tmp-[0-9a-f]{8}(?:-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$/;

/** A temporary sibling of `path`, on the same filesystem so that the final rename is atomic. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${randomBytes(4).toString('hex')}`);
}

/** Whether a file or directory name is one of the temporary siblings made here. */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** Writes a file atomically: readers see the old content or the new, never half of it. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Streams `source` to `path` atomically, passing every chunk to `onChunk` on the way (hashing,
 * size limits). If the stream or `onChunk` fails, the partial file is removed and nothing
 * appears at `path`.
 */
export async function streamToFileAtomic(path: string, source: Readable, onChunk: (chunk: Buffer) => void): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  const out = createWriteStream(tmp);
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          onChunk(chunk);
          yield chunk;
        }
      },
      out,
    );
    renameSync(tmp, path);
  } catch (e) {
    // The file stream opens its file asynchronously: a failure early in the pipeline can come
    // before the open, which would then create the file after it was removed. Wait for it to close.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes a directory of files atomically: every file goes into a hidden temporary sibling of
 * `dir`, which is then renamed to `dir`. `dir` must not exist or be an empty directory (a rename
 * never replaces a non-empty one, so a saved version cannot be overwritten by accident). File
 * names are plain names: a path separator or `..` is a programming error and refused.
 */
export function writeDirAtomic(dir: string, files: Record<string, string | Uint8Array>): void {
  for (const name of Object.keys(files)) {
    if (name === '' || name === '.' || name === '..' || basename(name) !== name || name.includes('\\')) throw Errors.internal(`writeDirAtomic: "${name}" is not a plain file name`);
  }
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = tempSibling(dir);
  mkdirSync(tmp);
  try {
    for (const [name, data] of Object.entries(files)) writeFileSync(join(tmp, name), data);
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Temporary siblings younger than this may belong to a write still in progress in another process. */
export const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * Removes temporary siblings left by a crash under `<dataDir>/models` and `<dataDir>/datasets`
 * (at most three levels down: `models/<project>/<version>`, `datasets/<project>/<file>`), and
 * returns how many were removed. Only names of the temporary shape are touched, and only those
 * not modified for `olderThanMs` (default an hour): another process sharing the data directory
 * may be writing one right now. Symbolic links are neither followed nor removed.
 */
export function removeStaleTemps(dataDir: string, opts: { olderThanMs?: number; now?: number } = {}): number {
  const cutoff = (opts.now ?? Date.now()) - (opts.olderThanMs ?? STALE_TEMP_MS);
  let removed = 0;
  // `depth` is how far below models/ or datasets/ the listed entries are: 1 for `<project>`, 2 for `<version>` or `<file>`.
  const walk = (dir: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) continue;
      if (isTempName(name)) {
        if (st.mtimeMs <= cutoff) {
          rmSync(path, { recursive: true, force: true });
          removed++;
        }
      } else if (st.isDirectory() && depth < 2 && !name.startsWith('.')) {
        walk(path, depth + 1);
      }
    }
  };
  for (const top of ['models', 'datasets']) walk(join(dataDir, top), 1);
  return removed;
}

/** The first `n` bytes of a file (fewer when it is shorter): enough to tell a format by its start. */
export function readHead(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    return buf.subarray(0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}
