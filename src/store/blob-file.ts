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
 *
 * Symbolic links below the root are never followed (the root itself may be one: it is resolved
 * once, when the store is opened). Whoever can write a shared store folder could otherwise make
 * a replica copy any file it can read (`datasets/p` → `/etc`) into its cache, where a route
 * serves it, or write and remove outside the folder. So every path is checked before use: its
 * folders must resolve (realpath) to the same folders under the resolved root, and the last
 * component is opened with O_NOFOLLOW and must be a regular file (`openRegular`). On Linux a
 * file once opened is also checked where it really is (/proc/self/fd), which closes the race of a
 * link swapped in between the check and the open. A link is `Errors.internal` naming the key.
 */
import { constants, mkdirSync, realpathSync, type Stats } from 'node:fs';
import { access, lstat, mkdir, readlink, realpath, rename, rm, stat, open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
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
  openRegular,
  checkListing,
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
const absent = (e: unknown): boolean => errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR';

/**
 * The cause of the error `openStored` throws when a file, once opened, is not where its path
 * says: moved by a concurrent write (worth reading again) or reached through a link swapped in
 * after the check (which fails again).
 */
const MOVED = new Error('the file opened was not at its path in the store (moved by a concurrent write, or reached through a symbolic link)');
const moved = (e: unknown): boolean => e instanceof MedfitError && e.cause === MOVED;

/** A local file-system failure, as an error naming the key (never the server path, which stays in `cause`). */
function localFailure(e: unknown, what: string): MedfitError {
  if (e instanceof MedfitError) return e;
  return Errors.internal(`the blob store could not ${what}`, e);
}

/** Blobs as files below a root folder (created if absent). */
export class FileBlobStore implements BlobStore {
  readonly url: string;
  private readonly root: string;
  /** `root` with every symbolic link resolved: what a path below the root must resolve under. */
  private readonly realRoot: string;
  /** Root = data directory: directories without a listing and files without a recorded hash are complete. */
  private readonly embedded: boolean;
  private readonly log: StoreLog | undefined;

  constructor(root: string, opts: FileBlobStoreOptions = {}) {
    this.root = resolve(root);
    this.embedded = opts.dataDir !== undefined && resolve(opts.dataDir) === this.root;
    this.log = opts.log;
    this.url = pathToFileURL(this.root).href;
    mkdirRoot(this.root);
    this.realRoot = realpathSync.native(this.root);
  }

  private pathOf(key: string): string {
    checkBlobKey(key);
    return join(this.root, key);
  }

  async putFile(key: string, path: string, sha256: string): Promise<void> {
    const dest = this.pathOf(key);
    const sha = checkSha256(sha256);
    await this.checkParents(dest, `blob ${key}`);
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
    const what = `blob ${key}`;
    const expected = sha256 === undefined ? undefined : checkSha256(sha256);
    if (resolve(path) === src) {
      // The caller reads this very file next: it must be one, not a link to one.
      if (!(await this.lstatStored(src, what))?.isFile()) throw Errors.notFound(what);
      return;
    }
    for (let attempt = 1; ; attempt++) {
      // A link at the key is refused here, before anything: neither taken for absent (which
      // skipped the refusal below) nor followed.
      const st = await this.lstatStored(src, what);
      if (st === undefined || st.isDirectory()) throw Errors.notFound(what);
      if (st.isSymbolicLink()) throw Errors.internal(`${what} is a symbolic link (the blob store follows no link)`);
      if (!st.isFile()) throw Errors.internal(`${what} is not a regular file`);
      let recorded: string | undefined;
      let handle: FileHandle | undefined;
      try {
        recorded = (await this.readSidecar(src, key)) ?? (await this.listedHash(key));
        if (recorded === undefined && expected === undefined && !this.embedded) {
          throw Errors.internal(`${what} has no recorded SHA-256 (it was not stored by putFile)`);
        }
        handle = await this.openStored(src, what);
      } catch (e) {
        if (absent(e)) throw Errors.notFound(what);
        if (moved(e) && attempt < READ_ATTEMPTS) continue;
        throw localFailure(e, `read ${key}`);
      }
      let damaged = false;
      try {
        await receiveVerified(handle.createReadStream(), path, (got) => {
          if (recorded !== undefined && got !== recorded) {
            damaged = true;
            throw Errors.internal(`${what}: the stored bytes do not match their recorded SHA-256 (the stored copy is damaged or was changed)`);
          }
          if (expected !== undefined && got !== expected) throw Errors.internal(`${what}: its SHA-256 is not the one expected`);
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
    await this.checkParents(dest, `directory ${prefix}`);
    if (resolve(dir) === dest) {
      if (!(await this.isCompleteDir(dest))) throw Errors.notFound(`directory ${prefix}`);
      const listing = await this.readListing(dest, prefix);
      if (listing !== undefined) return listing;
      const files = await listLocalDir(dest, `putDir ${prefix}`);
      const out: BlobDirEntry[] = [];
      for (const f of files) out.push({ path: f.path, ...(await hashFile(f.abs, `putDir ${prefix}: ${f.path}`)) });
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
        // Listed as a regular file; opened so that one swapped for a link since is not followed.
        const handle = await openRegular(f.abs, `putDir ${prefix}: ${f.path}`);
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

  async getDir(prefix: string, dir: string, listingSha256?: string): Promise<void> {
    const src = this.pathOf(prefix);
    const what = `directory ${prefix}`;
    if (resolve(dir) === src) {
      await this.checkParents(src, what);
      if (!(await this.isCompleteDir(src))) throw Errors.notFound(what);
      return;
    }
    if (await pathExists(dir)) throw Errors.conflict(`getDir ${prefix}: the destination already exists`);
    for (let attempt = 1; ; attempt++) {
      const tmp = tempSibling(dir);
      let changed = false;
      try {
        // Reading the listing checks that no folder on the way to it is a link (`src` included).
        let listing = await this.readListing(src, prefix);
        if (listing === undefined) {
          if (!this.embedded || !(await isDir(src))) throw Errors.notFound(what);
          // The embedded default records no listing: the directory as it is, nothing to check against.
          listing = (await listLocalDir(src, `getDir ${prefix}`)).map((f) => ({ path: f.path, bytes: -1, sha256: '' }));
        } else checkListing(listing, prefix, listingSha256);
        await mkdir(tmp, { recursive: true });
        for (const entry of listing) {
          const to = join(tmp, entry.path);
          await mkdir(dirname(to), { recursive: true });
          let handle;
          try {
            // The listing's paths are checked keys (no "..") but the folders they name, and the
            // file itself, may be links put there by hand: `openStored` refuses those.
            handle = await this.openStored(join(src, entry.path), `the stored directory ${prefix}: ${entry.path}`);
          } catch (e) {
            if (!absent(e)) throw e;
            changed = true;
            throw Errors.internal(`the stored directory ${prefix} lacks ${entry.path}, which its listing names`);
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
        // old listing finds files gone, different or elsewhere; the next attempt reads the new listing.
        if ((changed || moved(e)) && attempt < READ_ATTEMPTS) {
          this.log?.('warn', `blob store: the directory ${prefix} changed while it was copied; copying it again`);
          continue;
        }
        throw localFailure(e, `copy the directory ${prefix}`);
      }
    }
  }

  async exists(key: string): Promise<boolean> {
    const path = this.pathOf(key);
    await this.checkParents(path, `blob ${key}`);
    return (await isFile(path)) || (await this.isCompleteDir(path));
  }

  async remove(key: string): Promise<void> {
    const path = this.pathOf(key);
    // A folder on the way that is a link would have the removal delete outside the store. A link
    // at the key itself is removed as a link (rm never follows one).
    await this.checkParents(path, `blob ${key}`);
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
    const text = await this.readSmall(join(dir, DIR_LISTING), `the listing of ${prefix}`);
    return text === undefined ? undefined : parseListing(text, prefix);
  }

  /** The SHA-256 recorded beside `path` (the file of `key`), or undefined when none is. */
  private async readSidecar(path: string, key: string): Promise<string | undefined> {
    // Whatever is there is compared: a damaged record fails the check rather than skipping it.
    const text = (await this.readSmall(sidecarOf(path), `the recorded SHA-256 of ${key}`))?.trim();
    return text === '' ? undefined : text;
  }

  /** The text of one of the store's own small files (a listing, a recorded hash), or undefined when it is absent. */
  private async readSmall(path: string, what: string): Promise<string | undefined> {
    let handle: FileHandle;
    try {
      handle = await this.openStored(path, what);
    } catch (e) {
      if (absent(e)) return undefined;
      throw localFailure(e, `read ${what}`);
    }
    try {
      return await handle.readFile('utf8');
    } catch (e) {
      throw localFailure(e, `read ${what}`);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /**
   * Refuses `path` (at or below the root) when a folder on its way from the root is a symbolic
   * link, or leads anywhere but the same folder under the resolved root. An absent folder passes:
   * what is looked for below it is then absent too. Racy by itself (a link can be swapped in
   * after): `openStored` checks again what it opened.
   */
  private async checkParents(path: string, what: string): Promise<void> {
    const parent = dirname(path);
    let real: string;
    try {
      real = await realpath(parent);
    } catch (e) {
      if (absent(e)) return;
      if (errno(e) === 'ELOOP') throw Errors.internal(`${what}: a folder on its path in the blob store is a symbolic link (the store follows no link)`, e);
      throw localFailure(e, `read ${what}`);
    }
    if (real !== join(this.realRoot, relative(this.root, parent))) {
      throw Errors.internal(`${what}: a folder on its path in the blob store is a symbolic link (the store follows no link)`);
    }
  }

  /** `lstat` of `path`, after `checkParents`; undefined when it is absent. */
  private async lstatStored(path: string, what: string): Promise<Stats | undefined> {
    await this.checkParents(path, what);
    try {
      return await lstat(path);
    } catch (e) {
      if (absent(e)) return undefined;
      throw localFailure(e, `read ${what}`);
    }
  }

  /**
   * Opens the regular file at `path` (at or below the root) for reading, following no link: its
   * folders checked by `checkParents`, the file by `openRegular` (O_NOFOLLOW, a regular file).
   * Then, where the system says where an open file is (Linux: /proc/self/fd), that it is where
   * `path` says under the resolved root; otherwise `Errors.internal` with cause `MOVED`. ENOENT
   * and ENOTDIR are thrown as they are.
   */
  private async openStored(path: string, what: string): Promise<FileHandle> {
    await this.checkParents(path, what);
    const handle = await openRegular(path, what);
    let at: string | undefined;
    try {
      at = await readlink(`/proc/self/fd/${handle.fd}`);
    } catch {
      at = undefined; // no /proc: the checks before the open are all there is
    }
    const want = join(this.realRoot, relative(this.root, path));
    // A file unlinked since it was opened (a putFile replaced it) is still the one that was there.
    if (at !== undefined && at !== want && at !== `${want} (deleted)`) {
      await handle.close().catch(() => undefined);
      throw Errors.internal(`${what}: the file opened was not at its path in the blob store`, MOVED);
    }
    return handle;
  }
}

/** Sync on purpose: once, when the store is opened at start-up, before anything is served. */
function mkdirRoot(root: string): void {
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    // At start-up, from the operator's own setting: the folder is named (no record value can be in it).
    throw Errors.unavailable(`the storage folder ${root} (MEDFIT_STORAGE_URL) cannot be created or used${code === 'ENOTDIR' || code === 'EEXIST' ? ': a file is in the way' : code ? ` (${code})` : ''}`);
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
