/**
 * The file-system blob store (`file:///path`, and the embedded default where the path is the data
 * directory itself). A key is the file or directory at `<root>/<key>`; a file's SHA-256, recorded
 * by `putFile`, is kept beside it in a hidden sibling `.medfit-sha256.<name>` (segments starting
 * with `.medfit` are not valid keys, so it never collides with one); a directory keeps its
 * listing inside itself (`.medfit-dir.json`). Every write goes to a temporary sibling
 * (`tempSibling`, so `removeStaleTemps` recognises leftovers) and is renamed into place.
 *
 * The embedded default (root = data directory) copies nothing: a process's local copy of a key
 * *is* the store's file, so the copy methods only check that it exists, and no hash or listing is
 * recorded (the registry and the dataset routes already write those files atomically).
 */
import { constants, mkdirSync } from 'node:fs';
import { access, lstat, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Errors, MedfitError, tempSibling, writeFileAtomic } from '../core/index.js';
import {
  DIR_LISTING,
  checkBlobKey,
  checkSha256,
  formatListing,
  hashFile,
  listLocalDir,
  parseListing,
  pathExists,
  receiveVerified,
  streamHashing,
  type BlobDirEntry,
  type BlobStore,
} from './blob.js';
import type { StoreLog } from './sqlite.js';

/** Options of `FileBlobStore`. */
export interface FileBlobStoreOptions {
  /** This process's data directory: when it is the root, this is the embedded default (see the file's notes). */
  dataDir?: string;
  log?: StoreLog;
}

/** How many times a read is tried when what it read may have been replaced under it by a concurrent write. */
const READ_ATTEMPTS = 2;

/** The hidden sibling holding the SHA-256 recorded for the file at `path`. */
function sidecarOf(path: string): string {
  return join(dirname(path), `.medfit-sha256.${basename(path)}`);
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** A local file-system failure, as an error naming the key (never the server path, which stays in `cause`). */
function localFailure(e: unknown, what: string): MedfitError {
  if (e instanceof MedfitError) return e;
  return Errors.internal(`the blob store could not ${what}`, e);
}

/** Blobs as files below a root folder (created if absent). */
export class FileBlobStore implements BlobStore {
  readonly url: string;
  private readonly root: string;
  /** Root = data directory: directories without a listing and files without a recorded hash are complete. */
  private readonly embedded: boolean;
  private readonly log: StoreLog | undefined;

  constructor(root: string, opts: FileBlobStoreOptions = {}) {
    this.root = resolve(root);
    this.embedded = opts.dataDir !== undefined && resolve(opts.dataDir) === this.root;
    this.log = opts.log;
    this.url = pathToFileURL(this.root).href;
    mkdirRoot(this.root);
  }

  private pathOf(key: string): string {
    checkBlobKey(key);
    return join(this.root, key);
  }

  async putFile(key: string, path: string, sha256: string): Promise<void> {
    const dest = this.pathOf(key);
    const sha = checkSha256(sha256);
    if (resolve(path) === dest) {
      if (!(await isFile(dest))) throw Errors.notFound(`blob ${key}`);
      return;
    }
    if (await isDir(dest)) throw Errors.conflict(`blob ${key} is a stored directory; remove it first`);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      throw localFailure(e, `read the local file to store as ${key}`);
    }
    try {
      await receiveVerified(handle.createReadStream(), dest, (got) => {
        if (got !== sha) throw Errors.internal(`putFile ${key}: the file's SHA-256 is not the one given (it changed, or the caller hashed something else)`);
        // The hash goes in place first, the file right after: a crash between the two leaves a
        // recorded hash without its file (the key is absent) rather than a file nobody can check.
        writeFileAtomic(sidecarOf(dest), `${sha}\n`);
      });
    } catch (e) {
      throw localFailure(e, `store ${key}`);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  async getFile(key: string, path: string, sha256?: string): Promise<void> {
    const src = this.pathOf(key);
    const expected = sha256 === undefined ? undefined : checkSha256(sha256);
    if (resolve(path) === src) {
      if (!(await isFile(src))) throw Errors.notFound(`blob ${key}`);
      return;
    }
    for (let attempt = 1; ; attempt++) {
      const recorded = (await readSidecar(src)) ?? (await this.listedHash(key));
      if (recorded === undefined && expected === undefined && !this.embedded && (await isFile(src))) {
        throw Errors.internal(`blob ${key} has no recorded SHA-256 (it was not stored by putFile)`);
      }
      let handle;
      try {
        handle = await open(src, 'r');
        if (!(await handle.stat()).isFile()) throw Errors.notFound(`blob ${key}`);
      } catch (e) {
        await handle?.close();
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') throw Errors.notFound(`blob ${key}`);
        throw localFailure(e, `read ${key}`);
      }
      let damaged = false;
      try {
        await receiveVerified(handle.createReadStream(), path, (got) => {
          if (recorded !== undefined && got !== recorded) {
            damaged = true;
            throw Errors.internal(`blob ${key}: the stored bytes do not match their recorded SHA-256 (the stored copy is damaged or was changed)`);
          }
          if (expected !== undefined && got !== expected) throw Errors.internal(`blob ${key}: its SHA-256 is not the one expected`);
        });
        return;
      } catch (e) {
        // A `putFile` replacing the key renames the hash and the file one after the other: a read
        // between the two sees a mismatch that a second read does not. A damaged file fails twice.
        if (damaged && attempt < READ_ATTEMPTS) {
          this.log?.('warn', `blob store: ${key} did not match its SHA-256; reading it again in case it was being replaced`);
          await delay(50);
          continue;
        }
        throw localFailure(e, `copy ${key}`);
      } finally {
        await handle.close().catch(() => undefined);
      }
    }
  }

  async putDir(prefix: string, dir: string): Promise<BlobDirEntry[]> {
    const dest = this.pathOf(prefix);
    if (resolve(dir) === dest) {
      if (!(await this.isCompleteDir(dest))) throw Errors.notFound(`directory ${prefix}`);
      const listing = await this.readListing(dest, prefix);
      if (listing !== undefined) return listing;
      const files = await listLocalDir(dest, `putDir ${prefix}`);
      const out: BlobDirEntry[] = [];
      for (const f of files) out.push({ path: f.path, ...(await hashFile(f.abs)) });
      return out;
    }
    const files = await listLocalDir(dir, `putDir ${prefix}`).catch((e: unknown) => {
      throw localFailure(e, `read the local directory to store as ${prefix}`);
    });
    if (await isFile(dest)) throw Errors.conflict(`blob ${prefix} is a stored file; remove it first`);
    const tmp = tempSibling(dest);
    const entries: BlobDirEntry[] = [];
    try {
      await mkdir(tmp, { recursive: true });
      for (const f of files) {
        const to = join(tmp, f.path);
        await mkdir(dirname(to), { recursive: true });
        const handle = await open(f.abs, 'r');
        try {
          entries.push({ path: f.path, ...(await streamHashing(handle.createReadStream(), to)) });
        } finally {
          await handle.close().catch(() => undefined);
        }
      }
      writeFileAtomic(join(tmp, DIR_LISTING), formatListing(entries));
      await swapIn(tmp, dest);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw localFailure(e, `store the directory ${prefix}`);
    }
    return entries;
  }

  async getDir(prefix: string, dir: string): Promise<void> {
    const src = this.pathOf(prefix);
    if (resolve(dir) === src) {
      if (!(await this.isCompleteDir(src))) throw Errors.notFound(`directory ${prefix}`);
      return;
    }
    if (await pathExists(dir)) throw Errors.conflict(`getDir ${prefix}: the destination already exists`);
    for (let attempt = 1; ; attempt++) {
      let listing = await this.readListing(src, prefix);
      if (listing === undefined) {
        if (!this.embedded || !(await isDir(src))) throw Errors.notFound(`directory ${prefix}`);
        // The embedded default records no listing: the directory as it is, nothing to check against.
        listing = (await listLocalDir(src, `getDir ${prefix}`)).map((f) => ({ path: f.path, bytes: -1, sha256: '' }));
      }
      const tmp = tempSibling(dir);
      let changed = false;
      try {
        await mkdir(tmp, { recursive: true });
        for (const entry of listing) {
          const to = join(tmp, entry.path);
          await mkdir(dirname(to), { recursive: true });
          let handle;
          try {
            handle = await open(join(src, entry.path), 'r');
          } catch (e) {
            changed = true;
            if (errno(e) === 'ENOENT') throw Errors.internal(`the stored directory ${prefix} lacks ${entry.path}, which its listing names`);
            throw e;
          }
          try {
            const got = await streamHashing(handle.createReadStream(), to);
            if (entry.sha256 !== '' && (got.sha256 !== entry.sha256 || got.bytes !== entry.bytes)) {
              changed = true;
              throw Errors.internal(`the stored directory ${prefix}: ${entry.path} does not match its listed SHA-256 (the stored copy is damaged or was changed)`);
            }
          } finally {
            await handle.close().catch(() => undefined);
          }
        }
        await rename(tmp, dir).catch((e: unknown) => {
          if (errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST' || errno(e) === 'ENOTDIR') throw Errors.conflict(`getDir ${prefix}: the destination already exists`);
          throw e;
        });
        return;
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        // A `putDir` replacing the directory moves the old one away: a copy that started from the
        // old listing finds files gone or different; the next attempt reads the new listing.
        if (changed && attempt < READ_ATTEMPTS) {
          this.log?.('warn', `blob store: the directory ${prefix} changed while it was copied; copying it again`);
          continue;
        }
        throw localFailure(e, `copy the directory ${prefix}`);
      }
    }
  }

  async exists(key: string): Promise<boolean> {
    const path = this.pathOf(key);
    return (await isFile(path)) || (await this.isCompleteDir(path));
  }

  async remove(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      const st = await lstat(path).catch((e: unknown) => {
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
        throw e;
      });
      if (st?.isDirectory()) {
        // Moved aside first, so that no reader ever sees a directory half removed.
        const trash = tempSibling(path);
        await rename(path, trash);
        await rm(trash, { recursive: true, force: true });
      } else if (st !== undefined) {
        await rm(path, { force: true });
      }
      await rm(sidecarOf(path), { force: true });
    } catch (e) {
      throw localFailure(e, `remove ${key}`);
    }
  }

  async check(): Promise<void> {
    try {
      await access(this.root, constants.R_OK | constants.W_OK);
      if (!(await stat(this.root)).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new MedfitError('MEDFIT_ERR_UNAVAILABLE', 'the blob store folder cannot be read or written', [], { cause: e, retryAfter: 5 });
    }
  }

  async close(): Promise<void> {}

  /**
   * The SHA-256 that the listing of a stored directory holding `key` records for it (a file that
   * `putDir` stored has no hash of its own beside it), or undefined.
   */
  private async listedHash(key: string): Promise<string | undefined> {
    const segments = key.split('/');
    for (let i = segments.length - 1; i >= 1; i--) {
      const prefix = segments.slice(0, i).join('/');
      const listing = await this.readListing(join(this.root, prefix), prefix);
      if (listing !== undefined) return listing.find((f) => f.path === segments.slice(i).join('/'))?.sha256;
    }
    return undefined;
  }

  private async isCompleteDir(path: string): Promise<boolean> {
    if (!(await isDir(path))) return false;
    return this.embedded || (await isFile(join(path, DIR_LISTING)));
  }

  private async readListing(dir: string, prefix: string): Promise<BlobDirEntry[] | undefined> {
    let text: string;
    try {
      text = await readFile(join(dir, DIR_LISTING), 'utf8');
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw localFailure(e, `read the listing of ${prefix}`);
    }
    return parseListing(text, prefix);
  }
}

/** Sync on purpose: once, when the store is opened at start-up, before anything is served. */
function mkdirRoot(root: string): void {
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw Errors.internal('the blob store folder cannot be created', e);
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** The SHA-256 recorded beside `path`, or undefined when none is. */
async function readSidecar(path: string): Promise<string | undefined> {
  try {
    // Whatever is there is compared: a damaged record fails the check rather than skipping it.
    const text = (await readFile(sidecarOf(path), 'utf8')).trim();
    return text === '' ? undefined : text;
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
    throw localFailure(e, 'read a recorded SHA-256');
  }
}

/**
 * Puts directory `tmp` at `dest`, replacing whatever directory is there: the old one is moved to
 * a temporary sibling first (a rename never replaces a non-empty directory), then removed. A
 * reader sees the old directory, then briefly none, then the new one; never a mix. Two writers
 * racing: the later rename wins, and the loser's attempt is retried.
 */
async function swapIn(tmp: string, dest: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const old = tempSibling(dest);
    let moved = false;
    try {
      await rename(dest, old);
      moved = true;
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
    try {
      await rename(tmp, dest);
    } catch (e) {
      if ((errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST') && attempt < 3) continue;
      throw e;
    } finally {
      if (moved) await rm(old, { recursive: true, force: true });
    }
    return;
  }
}
