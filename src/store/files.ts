import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A temporary sibling of `path`, on the same filesystem so that the final rename is atomic. */
function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${randomBytes(4).toString('hex')}`);
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
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          onChunk(chunk);
          yield chunk;
        }
      },
      createWriteStream(tmp),
    );
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
