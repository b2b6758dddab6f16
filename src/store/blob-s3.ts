/**
 * The S3 blob store (`s3://bucket/prefix`): AWS, or any S3-compatible server at
 * `MEDFIT_S3_ENDPOINT` (MinIO, Ceph RGW; s3rver in the tests). A key is the object
 * `<prefix>/<key>`; a directory is the objects below `<prefix>/<key>/` with its listing
 * (`.medfit-dir.json`) written last. Every object carries its SHA-256 in its metadata (`sha256`,
 * i.e. `x-amz-meta-sha256`): S3's own `ChecksumSHA256` is not kept by every compatible server.
 *
 * Loaded only by `openBlobStore` for an s3 URL (dynamic import), so the embedded default never
 * loads the AWS SDK. Credentials come from the SDK's default chain (`AWS_ACCESS_KEY_ID` and
 * `AWS_SECRET_ACCESS_KEY`, a profile, an instance or pod role) and never appear in a message.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Errors, MedfitError, tempSibling } from '../core/index.js';
import {
  DIR_LISTING,
  checkBlobKey,
  checkSha256,
  eachLimited,
  formatListing,
  hashFile,
  listLocalDir,
  checkListing,
  parseListing,
  pathExists,
  receiveVerified,
  streamHashing,
  type BlobDirEntry,
  type BlobStore,
  type StorageConfig,
} from './blob.js';
import type { StoreLog } from './sqlite.js';

/** The S3 half of `StorageConfig`. */
export type S3StorageConfig = Extract<StorageConfig, { kind: 's3' }>;

/** Options of `S3BlobStore`. */
export interface S3BlobStoreOptions {
  log?: StoreLog;
  /** Keys per listing request (S3's most, 1000, by default); the tests lower it to exercise pagination. */
  pageSize?: number;
  /** Multipart part size (8 MiB by default, at least S3's 5 MiB); the tests lower it to exercise multipart uploads. */
  partBytes?: number;
  /** Wait for a response's headers (5 s by default; see `HEADERS_TIMEOUT_MS`); the tests lower it. */
  headersTimeoutMs?: number;
}

/** Connection set-up limit: an unreachable endpoint fails in seconds, not after the OS's minutes. */
const CONNECT_TIMEOUT_MS = 3000;
/** A connection silent this long (no byte either way) is given up: a server that accepted and hangs. */
const IDLE_TIMEOUT_MS = 15_000;
/**
 * Limit on the wait for a response's headers, for every request but the uploads (whose time to
 * headers includes sending a part): a hung server fails a call in about three times this (the
 * SDK tries three times), not after the idle timeout's 45 seconds.
 */
const HEADERS_TIMEOUT_MS = 5000;
/** Bound on `check()` as a whole (retries included): readiness probes have their own short timeouts. */
const CHECK_TIMEOUT_MS = 5000;
/** Files copied at once by putDir and getDir. */
const DIR_CONCURRENCY = 4;
/**
 * Multipart part size: 8 MiB, or more for files over 80 GB (S3 allows 10,000 parts). Each upload
 * holds up to `UPLOAD_QUEUE` parts in memory at once, so a putDir of big files holds
 * `DIR_CONCURRENCY × UPLOAD_QUEUE × 8 MiB` (64 MiB) at most.
 */
const PART_BYTES = 8 * 1024 * 1024;
const MIN_PART_BYTES = 5 * 1024 * 1024;
const UPLOAD_QUEUE = 2;
/** A listing bigger than this is not one we wrote. */
const MAX_LISTING_BYTES = 64 * 1024 * 1024;

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ECONNABORTED']);
const BUSY_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'RequestLimitExceeded', 'TooManyRequestsException', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'TimeoutError', 'AbortError']);

/** Blobs as objects in an S3 bucket under a key prefix. */
export class S3BlobStore implements BlobStore {
  readonly url: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly pageSize: number;
  private readonly partBytes: number;
  /** Per-call options of every request but the uploads: the wait for headers. */
  private readonly wait: { requestTimeout: number };
  private readonly log: StoreLog | undefined;

  constructor(config: S3StorageConfig, opts: S3BlobStoreOptions = {}) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.pageSize = Math.max(1, Math.min(1000, opts.pageSize ?? 1000));
    this.partBytes = Math.max(MIN_PART_BYTES, opts.partBytes ?? PART_BYTES);
    this.wait = { requestTimeout: opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS };
    this.log = opts.log;
    this.url = `s3://${config.bucket}${config.prefix ? `/${config.prefix}` : ''}`;
    const options: S3ClientConfig = {
      region: config.region,
      // `throwOnRequestTimeout`: without it a `requestTimeout` (passed per call, `this.wait`) only logs a warning.
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: IDLE_TIMEOUT_MS, throwOnRequestTimeout: true },
    };
    if (config.endpoint !== undefined) {
      options.endpoint = config.endpoint;
      // Compatible servers are addressed by path (`endpoint/bucket/key`): their DNS rarely has a name per bucket.
      options.forcePathStyle = true;
      // Since early 2025 the SDK adds CRC32 checksums (and trailers) to every request that allows
      // one; several S3-compatible servers reject those. The SHA-256 in the metadata is what
      // medfit checks, so ask for checksums only where the API requires them (DeleteObjects).
      options.requestChecksumCalculation = 'WHEN_REQUIRED';
      options.responseChecksumValidation = 'WHEN_REQUIRED';
    } else {
      // AWS_REGION defaults to us-east-1: a bucket elsewhere answers with a redirect to follow.
      options.followRegionRedirects = true;
    }
    this.client = new S3Client(options);
  }

  private objectKey(key: string): string {
    checkBlobKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async putFile(key: string, path: string, sha256: string): Promise<void> {
    const objectKey = this.objectKey(key);
    const sha = checkSha256(sha256);
    let bytes: number;
    try {
      bytes = (await stat(path)).size;
    } catch (e) {
      throw Errors.internal(`the blob store could not read the local file to store as ${key}`, e);
    }
    await this.upload(objectKey, path, bytes, sha, key);
  }

  async getFile(key: string, path: string, sha256?: string): Promise<void> {
    const objectKey = this.objectKey(key);
    const expected = sha256 === undefined ? undefined : checkSha256(sha256);
    const res = await this.get(objectKey, key);
    const recorded = res.Metadata?.['sha256']?.toLowerCase();
    const body = res.Body as Readable;
    if (recorded === undefined && expected === undefined) {
      body.destroy();
      throw Errors.internal(`blob ${key} has no recorded SHA-256 (it was not stored by putFile)`);
    }
    try {
      await receiveVerified(body, path, (got) => {
        if (recorded !== undefined && got !== recorded) throw Errors.internal(`blob ${key}: the stored bytes do not match their recorded SHA-256 (the stored copy is damaged or was changed)`);
        if (expected !== undefined && got !== expected) throw Errors.internal(`blob ${key}: its SHA-256 is not the one expected`);
      });
    } catch (e) {
      body.destroy();
      throw this.failure(e, `copy ${key}`, key);
    }
  }

  async putDir(prefix: string, dir: string): Promise<BlobDirEntry[]> {
    const base = this.objectKey(prefix);
    // Everything local first (names, hashes): a local failure must not cost the stored version.
    let files;
    const entries: BlobDirEntry[] = [];
    try {
      files = await listLocalDir(dir, `putDir ${prefix}`);
      for (const f of files) entries.push({ path: f.path, ...(await hashFile(f.abs)) });
    } catch (e) {
      if (e instanceof MedfitError) throw e;
      throw Errors.internal(`the blob store could not read the local directory to store as ${prefix}`, e);
    }
    await this.removeBelow(base, prefix);
    await eachLimited(files, DIR_CONCURRENCY, (f, i) => this.upload(`${base}/${f.path}`, f.abs, entries[i]!.bytes, entries[i]!.sha256, `${prefix}/${f.path}`));
    const listing = formatListing(entries);
    await this.call(`store the directory ${prefix}`, undefined, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: `${base}/${DIR_LISTING}`,
          Body: listing,
          ContentType: 'application/json',
          Metadata: { sha256: createHash('sha256').update(listing).digest('hex') },
        }),
        this.wait,
      ),
    );
    return entries;
  }

  async getDir(prefix: string, dir: string, listingSha256?: string): Promise<void> {
    const base = this.objectKey(prefix);
    if (await pathExists(dir)) throw Errors.conflict(`getDir ${prefix}: the destination already exists`);
    let res;
    try {
      res = await this.get(`${base}/${DIR_LISTING}`, prefix);
    } catch (e) {
      if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_NOT_FOUND') throw Errors.notFound(`directory ${prefix}`);
      throw e;
    }
    const listing = parseListing(await this.readSmall(res.Body as Readable, prefix), prefix);
    checkListing(listing, prefix, listingSha256);
    const tmp = tempSibling(dir);
    try {
      await mkdir(tmp, { recursive: true });
      await eachLimited(listing, DIR_CONCURRENCY, async (entry) => {
        const to = join(tmp, entry.path);
        await mkdir(dirname(to), { recursive: true });
        let file;
        try {
          file = await this.get(`${base}/${entry.path}`, `${prefix}/${entry.path}`);
        } catch (e) {
          // Listed but gone: a putDir or remove is replacing the directory right now.
          if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_NOT_FOUND') throw Errors.conflict(`the stored directory ${prefix} changed while it was copied; try again`);
          throw e;
        }
        let got;
        try {
          got = await streamHashing(file.Body as Readable, to);
        } catch (e) {
          throw this.failure(e, `copy the directory ${prefix}`, prefix);
        }
        if (got.sha256 !== entry.sha256 || got.bytes !== entry.bytes) {
          throw Errors.internal(`the stored directory ${prefix}: ${entry.path} does not match its listed SHA-256 (the stored copy is damaged or was changed)`);
        }
      });
      await rename(tmp, dir).catch((e: unknown) => {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') throw Errors.conflict(`getDir ${prefix}: the destination already exists`);
        throw Errors.internal(`the blob store could not copy the directory ${prefix}`, e);
      });
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw this.failure(e, `copy the directory ${prefix}`, prefix);
    }
  }

  async exists(key: string): Promise<boolean> {
    const objectKey = this.objectKey(key);
    return (await this.head(objectKey, key)) || (await this.head(`${objectKey}/${DIR_LISTING}`, key));
  }

  async remove(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    await this.call(`remove ${key}`, undefined, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), this.wait));
    await this.removeBelow(objectKey, key);
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { ...this.wait, abortSignal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
    } catch (e) {
      const f = this.failure(e, 'check the bucket');
      // Readiness: whatever the reason, the store cannot serve now.
      throw f.code === 'MEDFIT_ERR_UNAVAILABLE' ? f : this.unavailable(f.message, e);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /**
   * Uploads local file `path` as `objectKey`, streamed (one PutObject up to a part's size, else a
   * multipart upload, which S3 shows only once completed and aborts on failure). The bytes are
   * hashed on the way: if they do not match `sha256`, the stream fails before its end, so the
   * upload never completes.
   */
  private async upload(objectKey: string, path: string, bytes: number, sha256: string, key: string): Promise<void> {
    let mismatch = false;
    const body = Readable.from(
      (async function* () {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
          hash.update(chunk);
          yield chunk;
        }
        if (hash.digest('hex') !== sha256) {
          mismatch = true;
          throw new Error('SHA-256 mismatch');
        }
      })(),
      { objectMode: false },
    );
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: objectKey, Body: body, ContentLength: bytes, Metadata: { sha256 } },
      partSize: Math.max(this.partBytes, Math.ceil(bytes / 9000)),
      queueSize: UPLOAD_QUEUE,
    });
    try {
      await upload.done();
    } catch (e) {
      if (mismatch) throw Errors.internal(`putFile ${key}: the file's SHA-256 is not the one given (it changed, or the caller hashed something else)`);
      throw this.failure(e, `store ${key}`, key);
    } finally {
      body.destroy();
    }
  }

  private async get(objectKey: string, key: string): Promise<GetObjectCommandOutput> {
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), this.wait);
    } catch (e) {
      throw this.failure(e, `read ${key}`, key);
    }
  }

  /**
   * Whether object `objectKey` exists. A HEAD answers a bare 404 both for a missing key and for a
   * missing bucket (no body to tell them apart): a missing bucket reads as absent here, and as
   * `unavailable` from `check()` and every other call.
   */
  private async head(objectKey: string, key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), this.wait);
      return true;
    } catch (e) {
      const f = this.failure(e, `look up ${key}`, key);
      if (f.code === 'MEDFIT_ERR_NOT_FOUND') return false;
      throw f;
    }
  }

  /** Runs one request, its failure translated by `failure`. */
  private async call<T>(what: string, key: string | undefined, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (e) {
      throw this.failure(e, what, key);
    }
  }

  /**
   * Deletes every object below `objectKey/`, the listing first so that the directory reads as
   * incomplete (absent) from the first deletion on, then page by page.
   */
  private async removeBelow(objectKey: string, key: string): Promise<void> {
    const below = `${objectKey}/`;
    await this.call(`remove ${key}`, undefined, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: `${below}${DIR_LISTING}` }), this.wait));
    let token: string | undefined;
    do {
      const page = await this.call(`list ${key}`, undefined, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: below, MaxKeys: this.pageSize, ...(token ? { ContinuationToken: token } : {}) }), this.wait),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length) {
        const res = await this.call(`remove ${key}`, undefined, () => this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }), { requestTimeout: 3 * this.wait.requestTimeout }));
        if (res.Errors?.length) throw Errors.internal(`the object store could not remove ${res.Errors.length} object(s) below ${key}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** The body of a small object (a listing) as text. */
  private async readSmall(body: Readable, prefix: string): Promise<string> {
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > MAX_LISTING_BYTES) {
          body.destroy();
          throw Errors.internal(`the stored directory ${prefix} has a listing over ${MAX_LISTING_BYTES} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (e) {
      throw this.failure(e, `read the listing of ${prefix}`, prefix);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private unavailable(message: string, cause: unknown): MedfitError {
    return new MedfitError('MEDFIT_ERR_UNAVAILABLE', message, [], { cause, retryAfter: 5 });
  }

  /**
   * An SDK, network or local failure as medfit's error: the store out of reach, busy or failing
   * is `unavailable`; an absent key `notFound`; anything else `internal`. Only the bucket is
   * named: the SDK's own message (kept as `cause`, for the server log) is never shown.
   */
  private failure(e: unknown, what: string, key?: string): MedfitError {
    if (e instanceof MedfitError) return e;
    const err = (e ?? {}) as { name?: string; code?: string; path?: unknown; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    const name = err.name ?? '';
    const bucket = JSON.stringify(this.bucket);
    // A local file-system error (writing the copy) carries the path it failed on.
    if (typeof err.path === 'string' && status === undefined) return Errors.internal(`the blob store could not ${what} (local file system)`, e);
    if (name === 'NoSuchBucket') return this.unavailable(`the object store bucket ${bucket} does not exist`, e);
    if (key !== undefined && (name === 'NoSuchKey' || name === 'NotFound' || status === 404)) return Errors.notFound(`blob ${key}`);
    if (status === 404) return this.unavailable(`the object store bucket ${bucket} does not exist`, e);
    if (NETWORK_CODES.has(err.code ?? '') || (status === undefined && BUSY_NAMES.has(name))) return this.unavailable(`the object store (bucket ${bucket}) is unreachable`, e);
    if ((status !== undefined && status >= 500) || status === 429 || BUSY_NAMES.has(name)) return this.unavailable(`the object store (bucket ${bucket}) is busy or failing (HTTP ${status ?? '?'})`, e);
    if (name === 'CredentialsProviderError') return Errors.internal('the object store credentials are missing (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile or role)', e);
    if (status === 403 || status === 401) return Errors.internal(`the object store refused access to bucket ${bucket} (check the credentials and the bucket's policy)`, e);
    this.log?.('error', `blob store: could not ${what}`, { code: name || err.code || 'unknown' });
    return Errors.internal(`the object store could not ${what}`, e);
  }
}
