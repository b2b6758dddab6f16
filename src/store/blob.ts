/**
 * The blob store: where datasets and model directories are kept so that every replica and
 * worker can read them. Keys are relative POSIX paths, the same ones the metadata rows hold
 * (`datasets/<project>/<id>.csv`, `models/<project>/<job>`), and each process keeps a local copy
 * under its data directory at the same relative path (the embedded default's store *is* that
 * directory, so nothing is copied). Implementations: the file system (`file:///path`, the
 * default) and S3 (`s3://bucket/prefix`: AWS, MinIO, Ceph RGW and other S3-compatible stores).
 */
import { createHash } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors, isTempName, tempSibling } from '../core/index.js';
import type { StoreLog } from './sqlite.js';

/** Where blobs live, as `MEDFIT_STORAGE_URL` says (validated by the server's configuration). */
export type StorageConfig =
  | {
      kind: 'file';
      /** Absolute path of the store's root; the data directory itself by default. */
      dir: string;
    }
  | {
      kind: 's3';
      bucket: string;
      /** Key prefix without leading or trailing slash ('' for the bucket's root). */
      prefix: string;
      /** `MEDFIT_S3_ENDPOINT`: an S3-compatible server (path-style addressing); absent, AWS. */
      endpoint?: string;
      /** `AWS_REGION` (default `us-east-1`). Credentials come from the SDK's usual chain (`AWS_*`). */
      region: string;
    };

/** One file of a stored directory, as its listing records it. */
export interface BlobDirEntry {
  /** Relative POSIX path inside the directory. */
  path: string;
  bytes: number;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
}

/**
 * The blob store contract (`describeBlobContract` in blob-contract.ts runs it against each
 * implementation). Every method streams: no file is ever held in memory whole. Failures to reach
 * the store are `Errors.unavailable` (503 with Retry-After); a key that is absent is
 * `Errors.notFound`; bytes that do not match their SHA-256 are `Errors.internal` (and nothing is
 * left at the destination). Keys are checked: empty, absolute, `.`/`..` segments, backslashes or
 * control characters are `Errors.usage`.
 */
export interface BlobStore {
  /** `file:///abs/path` or `s3://bucket/prefix` (never credentials), for logs and `/readyz`. */
  readonly url: string;
  /**
   * Stores local file `path` as `key`, streamed. Readers see the previous object (or none) until
   * the new one is complete (file: temporary sibling then rename; S3: a single or multipart
   * upload, which is invisible until completed). `sha256` (hex, of the file's bytes) is recorded
   * with it and checked by `getFile`. When `path` already is the store's own file for `key` (the
   * embedded default) this does nothing.
   */
  putFile(key: string, path: string, sha256: string): Promise<void>;
  /**
   * Copies `key` to local `path` (parents created), streamed into a temporary sibling that is
   * renamed into place only once its SHA-256 matches the one recorded by `putFile` (and
   * `sha256`, when given). When `path` already is the store's own file for `key`, only checks
   * that it exists.
   */
  getFile(key: string, path: string, sha256?: string): Promise<void>;
  /**
   * Stores every regular file below local directory `dir` under `prefix/`, then the listing
   * (`prefix/.medfit-dir.json`: `{ files: BlobDirEntry[] }`) last: a directory whose listing is
   * absent is incomplete, and `getDir` treats it as absent. Whatever was under `prefix/` before
   * is replaced. Returns the listing. A no-op (but for the listing's return) when `dir` already
   * is the store's own directory for `prefix`.
   */
  putDir(prefix: string, dir: string): Promise<BlobDirEntry[]>;
  /**
   * Copies the directory stored under `prefix` to local `dir`, which must not exist: into a
   * temporary sibling, each file checked against the listing, then renamed. `Errors.notFound`
   * when there is no complete directory under `prefix`. When `dir` already is the store's own
   * directory for `prefix`, only checks that it exists. With `listingSha256` (what
   * `listingSha256(putDir(...))` gave, kept in the metadata row), the listing itself must be that
   * one: storage alone cannot vouch for what it holds.
   */
  getDir(prefix: string, dir: string, listingSha256?: string): Promise<void>;
  /** Whether `key` (a file) or `key/` (a complete directory) is stored. */
  exists(key: string): Promise<boolean>;
  /** Removes `key` and everything below `key/`; absent is not an error. Never touches another key that merely starts with the same characters. */
  remove(key: string): Promise<void>;
  /** A cheap request that proves the store answers (readiness); rejects with `Errors.unavailable`. */
  check(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Shared by the implementations (blob-file.ts, blob-s3.ts): key rules, the directory listing,
// hashing copies. Kept here rather than in either implementation so that neither loads the other.

/**
 * Name of a stored directory's listing, inside it. Key segments starting with `.medfit` are
 * reserved for the stores' own files (this listing, the file store's recorded hashes), so a key
 * can never land on one of them.
 */
export const DIR_LISTING = '.medfit-dir.json';

/** S3's limit for a whole key, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
/**
 * Longest segment, in UTF-8 bytes: file systems stop at 255, and the file store adds a prefix
 * (`.medfit-sha256.`, a temporary sibling's `.` and `.tmp-xxxxxxxx`) to some names.
 */
const MAX_SEGMENT_BYTES = 200;

/** What is wrong with `key` as a blob key, or undefined when it is a good one. */
export function blobKeyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key === '') return 'is empty';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
  if (/[\u0000-\u001f\u007f\\]/.test(key)) return 'holds a backslash or a control character';
  if (key.startsWith('/')) return 'is absolute (it must be a relative path)';
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return 'has an empty, "." or ".." segment';
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
    if (segment.startsWith('.medfit')) return 'has a segment starting with ".medfit" (reserved for the store\'s own files)';
    // `removeStaleTemps` deletes names of this shape: a key that had one would vanish at start-up.
    if (isTempName(segment)) return 'has a segment shaped like a temporary file (".name.tmp-xxxxxxxx")';
  }
  return undefined;
}

/** Throws `Errors.usage` unless `key` is a good blob key (see `blobKeyProblem`). */
export function checkBlobKey(key: string): void {
  const problem = blobKeyProblem(key);
  if (problem !== undefined) throw Errors.usage(`blob key ${JSON.stringify(String(key).slice(0, 100))} ${problem}`);
}

/** `sha256` lowercased, or `Errors.usage` unless it is 64 hex digits. */
export function checkSha256(sha256: string): string {
  if (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256)) throw Errors.usage('a blob\'s SHA-256 must be 64 hex digits');
  return sha256.toLowerCase();
}

/** The listing `putDir` writes, as text. */
export function formatListing(files: BlobDirEntry[]): string {
  return JSON.stringify({ files });
}

/**
 * Reads a stored listing. It comes from the store, which another process (or person) may have
 * written: every path is checked as a key, so a listing cannot send a copy outside its folder.
 */
/**
 * The SHA-256 of a directory's listing in a canonical form (entries by path; path, bytes and
 * SHA-256 only): recorded in the metadata row when the directory is stored, and checked by
 * `getDir`, so the files fetched are those the row was written for.
 */
export function listingSha256(entries: readonly BlobDirEntry[]): string {
  const canonical = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((e) => [e.path, e.bytes, e.sha256]);
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** Refuses a stored directory whose listing is not the one recorded. */
export function checkListing(entries: readonly BlobDirEntry[], prefix: string, expected: string | undefined): void {
  if (expected !== undefined && listingSha256(entries) !== expected) throw Errors.internal(`the stored directory ${prefix} is not the one its record was written for (its listing does not match)`);
}

export function parseListing(text: string, prefix: string): BlobDirEntry[] {
  const bad = (why: string): never => {
    throw Errors.internal(`the stored directory ${prefix} has a malformed listing (${why})`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  const files = (doc as { files?: unknown } | null)?.files;
  if (!Array.isArray(files)) return bad('no files array');
  const seen = new Set<string>();
  return files.map((f: unknown, i) => {
    const { path, bytes, sha256 } = (f ?? {}) as Record<string, unknown>;
    if (typeof path !== 'string' || blobKeyProblem(path) !== undefined) return bad(`entry ${i}: bad path`);
    if (seen.has(path)) return bad(`entry ${i}: repeated path`);
    seen.add(path);
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) return bad(`entry ${i}: bad size`);
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) return bad(`entry ${i}: bad SHA-256`);
    return { path, bytes, sha256 };
  });
}

/** One regular file of a local directory: its relative POSIX path and where it is. */
export interface LocalDirFile {
  path: string;
  abs: string;
}

/**
 * Every regular file below local directory `dir`, sorted by path. A symbolic link or any other
 * special file below it is `Errors.internal` (never followed, never silently left out: a model
 * directory missing a file it names would only fail later, on another replica). A name the stores
 * cannot keep is `Errors.usage`. `skipListing` leaves out a listing at the top (the file store's
 * own directories have one).
 */
export async function listLocalDir(dir: string, what: string, skipListing = false): Promise<LocalDirFile[]> {
  const out: LocalDirFile[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    const entries = await readdir(abs, { withFileTypes: true });
    for (const entry of entries) {
      if (skipListing && rel === '' && entry.name === DIR_LISTING) continue;
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const problem = blobKeyProblem(path);
      if (problem !== undefined) throw Errors.usage(`${what}: the file name ${JSON.stringify(path.slice(0, 100))} ${problem}`);
      // Dirents come from readdir, which reports a link as a link (it does not stat the target).
      if (entry.isSymbolicLink()) throw Errors.internal(`${what}: ${path} is a symbolic link (the blob store keeps regular files only and follows no link)`);
      if (entry.isDirectory()) await walk(join(abs, entry.name), path);
      else if (entry.isFile()) out.push({ path, abs: join(abs, entry.name) });
      else throw Errors.internal(`${what}: ${path} is not a regular file or folder`);
    }
  };
  await walk(dir, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Flags that open a file for reading without following a symbolic link in its last component
 * (the open fails with ELOOP) and without waiting for a writer when it is a FIFO (O_NONBLOCK,
 * which changes nothing for a regular file). Both are 0 where the platform lacks them.
 */
const READ_NO_FOLLOW = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/**
 * Opens `path` for reading when it is a regular file, never through a symbolic link at its last
 * component: a link is `Errors.internal` (`what` names it: a key, never a server path), and so
 * is a directory, FIFO, socket or device found once opened. Other failures (ENOENT ...) are
 * thrown as they are, for the caller to map. Folders above `path` are the caller's to check.
 */
export async function openRegular(path: string, what: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_NO_FOLLOW);
  } catch (e) {
    // Linux and macOS say ELOOP for O_NOFOLLOW on a link; FreeBSD says EMLINK.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') throw Errors.internal(`${what} is a symbolic link (the blob store follows no link)`, e);
    throw e;
  }
  try {
    if (!(await handle.stat()).isFile()) throw Errors.internal(`${what} is not a regular file`);
    return handle;
  } catch (e) {
    await handle.close().catch(() => undefined);
    throw e;
  }
}

/** SHA-256 (hex) and size of a local regular file (never through a link: see `openRegular`), streamed. */
export async function hashFile(path: string, what = 'a local file'): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const handle = await openRegular(path, what);
  try {
    for await (const chunk of handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Streams `source` into a new file `dest` (which must not exist), hashing on the way. On any
 * failure the partial file is removed. Not atomic by itself: callers write into a temporary
 * sibling (see `receiveVerified`) or a temporary directory.
 */
export async function streamHashing(source: Readable, dest: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const out = createWriteStream(dest, { flags: 'wx' });
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          bytes += chunk.length;
          yield chunk;
        }
      },
      out,
    );
  } catch (e) {
    // The write stream opens its file asynchronously: wait for it, or the removal could come first.
    if (!out.closed) await new Promise<void>((done) => out.once('close', () => done()));
    await rm(dest, { force: true });
    throw e;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Streams `source` into a temporary sibling of `dest` (parents created), then calls `settle`
 * with the bytes' SHA-256 and size: if it throws (a hash that does not match), the temporary file
 * is removed and nothing appears at `dest`; otherwise the file is renamed to `dest`.
 */
export async function receiveVerified(source: Readable, dest: string, settle: (sha256: string, bytes: number) => void | Promise<void>): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = tempSibling(dest);
  const got = await streamHashing(source, tmp);
  try {
    await settle(got.sha256, got.bytes);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Whether anything (file, directory, link) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw e;
  }
}

/** Runs `fn` on every item, at most `limit` at a time; the first failure stops new starts and is thrown once the running ones end. */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.e;
}

/**
 * Opens the blob store `storage` names. The S3 implementation (and the AWS SDK with it) is loaded
 * only when asked for, so the embedded default never pays for it. `dataDir` is this process's
 * data directory: a file store whose root is that directory is the embedded default, where the
 * store's files *are* the local copies.
 */
export async function openBlobStore(storage: StorageConfig, opts: { dataDir: string; log?: StoreLog }): Promise<BlobStore> {
  if (storage.kind === 'file') {
    const { FileBlobStore } = await import('./blob-file.js');
    return new FileBlobStore(storage.dir, { dataDir: opts.dataDir, ...(opts.log ? { log: opts.log } : {}) });
  }
  const { S3BlobStore } = await import('./blob-s3.js');
  return new S3BlobStore(storage, opts.log ? { log: opts.log } : {});
}
