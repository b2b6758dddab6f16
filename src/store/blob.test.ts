import type { ChildProcess } from 'node:child_process';
import { startS3rver } from '../../test/s3rver.js';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MedfitError } from '../core/index.js';
import { openBlobStore, type BlobStore } from './index.js';
import { FileBlobStore } from './blob-file.js';
import { describeBlobContract, refused } from './blob-contract.js';
import type { S3StorageConfig } from './blob-s3.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const temps: string[] = [];
function temp(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `medfit-${name}-`));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the file blob store', () => {
  it('is opened without loading the AWS SDK', async () => {
    const root = temp('blob-root');
    const store = await openBlobStore({ kind: 'file', dir: root }, { dataDir: root });
    expect(store).toBeInstanceOf(FileBlobStore);
    expect(store.url).toBe(`file://${root}`);
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@aws-sdk'));
    expect(loaded).toEqual([]);
    await store.close();
  });

  it('copies nothing in the embedded default (root = data directory), and only checks that keys exist', async () => {
    const dataDir = temp('blob-embedded');
    const store = await openBlobStore({ kind: 'file', dir: dataDir }, { dataDir });
    mkdirSync(join(dataDir, 'datasets/p'), { recursive: true });
    writeFileSync(join(dataDir, 'datasets/p/d.csv'), 'a\n1\n');
    // Its own file: nothing written, not even a recorded hash (so not even a wrong one is noticed).
    await store.putFile('datasets/p/d.csv', join(dataDir, 'datasets/p/d.csv'), sha('whatever'));
    await store.getFile('datasets/p/d.csv', join(dataDir, 'datasets/p/d.csv'));
    expect(readdirSync(join(dataDir, 'datasets/p'))).toEqual(['d.csv']);
    expect((await refused(store.putFile('datasets/p/none.csv', join(dataDir, 'datasets/p/none.csv'), sha('x')))).code).toBe('MEDFIT_ERR_NOT_FOUND');
    expect((await refused(store.getFile('datasets/p/none.csv', join(dataDir, 'datasets/p/none.csv')))).code).toBe('MEDFIT_ERR_NOT_FOUND');

    // A model directory the registry wrote: complete without a listing, and putDir hashes it.
    mkdirSync(join(dataDir, 'models/p/3/w'), { recursive: true });
    writeFileSync(join(dataDir, 'models/p/3/manifest.json'), '{}');
    writeFileSync(join(dataDir, 'models/p/3/w/x.bin'), 'weights');
    expect(await store.putDir('models/p/3', join(dataDir, 'models/p/3'))).toEqual([
      { path: 'manifest.json', bytes: 2, sha256: sha('{}') },
      { path: 'w/x.bin', bytes: 7, sha256: sha('weights') },
    ]);
    expect(readdirSync(join(dataDir, 'models/p/3')).sort()).toEqual(['manifest.json', 'w']);
    await store.getDir('models/p/3', join(dataDir, 'models/p/3'));
    expect(await store.exists('models/p/3')).toBe(true);
    expect(await store.exists('datasets/p/d.csv')).toBe(true);
    expect((await refused(store.getDir('models/p/4', join(dataDir, 'models/p/4')))).code).toBe('MEDFIT_ERR_NOT_FOUND');
    expect((await refused(store.putDir('models/p/4', join(dataDir, 'models/p/4')))).code).toBe('MEDFIT_ERR_NOT_FOUND');

    // Copies elsewhere (an export) still work, with nothing recorded to check them against.
    const out = temp('blob-out');
    await store.getFile('datasets/p/d.csv', join(out, 'd.csv'));
    await store.getDir('models/p/3', join(out, 'm'));
    expect(readFileSync(join(out, 'm/w/x.bin'), 'utf8')).toBe('weights');
    await store.remove('models/p/3');
    expect(existsSync(join(dataDir, 'models/p/3'))).toBe(false);
    expect(readdirSync(join(dataDir, 'models/p'))).toEqual([]);
  });

  it('keeps recorded hashes in hidden siblings and removes them with their key; check() fails when the folder is gone', async () => {
    const root = join(temp('blob-shared'), 'store');
    const store = new FileBlobStore(root, { dataDir: temp('blob-data') });
    const local = temp('blob-local');
    writeFileSync(join(local, 'f'), 'x');
    await store.putFile('datasets/p/f', join(local, 'f'), sha('x'));
    expect(readdirSync(join(root, 'datasets/p')).sort()).toEqual(['.medfit-sha256.f', 'f']);
    await store.remove('datasets/p/f');
    expect(readdirSync(join(root, 'datasets/p'))).toEqual([]);
    await store.check();
    rmSync(root, { recursive: true });
    expect((await refused(store.check())).code).toBe('MEDFIT_ERR_UNAVAILABLE');
  });
});

// Whoever can write a shared store folder must not be able to make a replica copy (and an API
// route serve) a file of the replica's own through a symbolic link, nor write or remove outside.
describe('the file blob store and symbolic links', () => {
  const SECRET = 'a file of the replica: never to be copied';
  /** A store (shared root, replica data directory), a folder outside it holding SECRET, and a local scratch folder. */
  function setup(): { store: FileBlobStore; root: string; outside: string; local: string } {
    const base = temp('blob-links');
    const root = join(base, 'store');
    const outside = join(base, 'outside');
    const local = join(base, 'local');
    mkdirSync(outside);
    mkdirSync(local);
    writeFileSync(join(outside, 'secret'), SECRET);
    return { store: new FileBlobStore(root, { dataDir: join(base, 'data') }), root, outside, local };
  }
  /** The refusal of `p`: internal, naming `key`, naming no server path. */
  async function linkRefusal(p: Promise<unknown>, key: string, base: string): Promise<void> {
    const e = await refused(p);
    expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
    expect(e.message).toContain(key);
    expect(e.message).not.toContain(base);
  }

  it('refuses a stored file that is a link, with or without an expected SHA-256, and a recorded hash that is one', async () => {
    const { store, root, outside, local } = setup();
    mkdirSync(join(root, 'datasets/p'), { recursive: true });
    symlinkSync(join(outside, 'secret'), join(root, 'datasets/p/d.csv.profile.json'));
    await linkRefusal(store.getFile('datasets/p/d.csv.profile.json', join(local, 'a')), 'datasets/p/d.csv.profile.json', outside);
    await linkRefusal(store.getFile('datasets/p/d.csv.profile.json', join(local, 'a'), sha(SECRET)), 'datasets/p/d.csv.profile.json', outside);
    // A hash recorded for it does not make it a file either.
    writeFileSync(join(root, 'datasets/p/.medfit-sha256.d.csv.profile.json'), `${sha(SECRET)}\n`);
    await linkRefusal(store.getFile('datasets/p/d.csv.profile.json', join(local, 'a')), 'datasets/p/d.csv.profile.json', outside);
    // A real file whose recorded hash is a link (to a file that holds the right hash).
    writeFileSync(join(local, 'real'), 'real');
    await store.putFile('datasets/p/real.csv', join(local, 'real'), sha('real'));
    writeFileSync(join(outside, 'hash'), sha('real'));
    unlinkSync(join(root, 'datasets/p/.medfit-sha256.real.csv'));
    symlinkSync(join(outside, 'hash'), join(root, 'datasets/p/.medfit-sha256.real.csv'));
    await linkRefusal(store.getFile('datasets/p/real.csv', join(local, 'b')), 'datasets/p/real.csv', outside);
    expect(readdirSync(local)).toEqual(['real']);
  });

  it('refuses a folder on the way that is a link (datasets/p -> elsewhere), to read, write or remove', async () => {
    const { store, root, outside, local } = setup();
    // Elsewhere looks like a complete store folder: a file with its recorded hash, a model directory with its listing.
    writeFileSync(join(outside, '.medfit-sha256.secret'), `${sha(SECRET)}\n`);
    mkdirSync(join(outside, 'j'));
    writeFileSync(join(outside, 'j/m.onnx'), SECRET);
    writeFileSync(join(outside, 'j/.medfit-dir.json'), JSON.stringify({ files: [{ path: 'm.onnx', bytes: Buffer.byteLength(SECRET), sha256: sha(SECRET) }] }));
    mkdirSync(join(root, 'datasets'), { recursive: true });
    mkdirSync(join(root, 'models'), { recursive: true });
    symlinkSync(outside, join(root, 'datasets/p'));
    symlinkSync(outside, join(root, 'models/p'));
    await linkRefusal(store.getFile('datasets/p/secret', join(local, 'a')), 'datasets/p/secret', outside);
    await linkRefusal(store.getFile('datasets/p/secret', join(local, 'a'), sha(SECRET)), 'datasets/p/secret', outside);
    await linkRefusal(store.getFile('models/p/j/m.onnx', join(local, 'a')), 'models/p/j/m.onnx', outside);
    await linkRefusal(store.getDir('models/p/j', join(local, 'j')), 'models/p/j', outside);
    // The directory itself a link.
    mkdirSync(join(root, 'models/q'));
    symlinkSync(join(outside, 'j'), join(root, 'models/q/j'));
    await linkRefusal(store.getDir('models/q/j', join(local, 'j')), 'models/q/j', outside);
    expect(readdirSync(local)).toEqual([]);
    // Nothing written or removed through the link.
    writeFileSync(join(local, 'f'), 'x');
    await linkRefusal(store.putFile('datasets/p/new.csv', join(local, 'f'), sha('x')), 'datasets/p/new.csv', outside);
    await linkRefusal(store.remove('datasets/p/secret'), 'datasets/p/secret', outside);
    await linkRefusal(store.putDir('models/p/j', local), 'models/p/j', outside);
    await linkRefusal(store.exists('datasets/p/secret'), 'datasets/p/secret', outside);
    expect(readdirSync(outside).sort()).toEqual(['.medfit-sha256.secret', 'j', 'secret']);
    expect(readdirSync(join(outside, 'j')).sort()).toEqual(['.medfit-dir.json', 'm.onnx']);
  });

  it('refuses a stored model directory holding a link (a file or a folder), and a local one to store', async () => {
    const { store, root, outside, local } = setup();
    mkdirSync(join(local, 'm/w'), { recursive: true });
    writeFileSync(join(local, 'm/a.txt'), 'a');
    writeFileSync(join(local, 'm/w/b.bin'), 'b');
    await store.putDir('models/p/j', join(local, 'm'));
    const dir = join(root, 'models/p/j');
    // A file of it swapped for a link, the listing rewritten to match what the link reaches.
    unlinkSync(join(dir, 'a.txt'));
    symlinkSync(join(outside, 'secret'), join(dir, 'a.txt'));
    writeFileSync(join(dir, '.medfit-dir.json'), JSON.stringify({ files: [
      { path: 'a.txt', bytes: Buffer.byteLength(SECRET), sha256: sha(SECRET) },
      { path: 'w/b.bin', bytes: 1, sha256: sha('b') },
    ] }));
    await linkRefusal(store.getDir('models/p/j', join(local, 'got')), 'models/p/j', outside);
    await linkRefusal(store.getFile('models/p/j/a.txt', join(local, 'one')), 'models/p/j/a.txt', outside);
    // A folder of it swapped for a link to an identical one: the bytes match, the link is still refused.
    unlinkSync(join(dir, 'a.txt'));
    writeFileSync(join(dir, 'a.txt'), SECRET);
    mkdirSync(join(outside, 'w'));
    writeFileSync(join(outside, 'w/b.bin'), 'b');
    rmSync(join(dir, 'w'), { recursive: true });
    symlinkSync(join(outside, 'w'), join(dir, 'w'));
    await linkRefusal(store.getDir('models/p/j', join(local, 'got')), 'models/p/j', outside);
    await linkRefusal(store.getFile('models/p/j/w/b.bin', join(local, 'one')), 'models/p/j/w/b.bin', outside);
    expect(readdirSync(local)).toEqual(['m']);
    // Storing a directory that holds a link: refused, not followed, not silently left out.
    symlinkSync(join(outside, 'secret'), join(local, 'm/linked.txt'));
    const e = await refused(store.putDir('models/p/k', join(local, 'm')));
    expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
    expect(e.message).toContain('linked.txt');
    expect(await store.exists('models/p/k')).toBe(false);
  });

  it('refuses links in the embedded default too (an export copies from the data directory)', async () => {
    const { outside, local } = setup();
    const dataDir = temp('blob-links-embedded');
    const store = new FileBlobStore(dataDir, { dataDir });
    mkdirSync(join(dataDir, 'models/p/3'), { recursive: true });
    writeFileSync(join(dataDir, 'models/p/3/manifest.json'), '{}');
    symlinkSync(join(outside, 'secret'), join(dataDir, 'models/p/3/model.onnx'));
    await linkRefusal(store.getDir('models/p/3', join(local, 'm')), 'models/p/3', outside);
    await linkRefusal(store.putDir('models/p/3', join(dataDir, 'models/p/3')), 'models/p/3', outside);
    mkdirSync(join(dataDir, 'datasets'));
    symlinkSync(outside, join(dataDir, 'datasets/p'));
    await linkRefusal(store.getFile('datasets/p/secret', join(local, 'd')), 'datasets/p/secret', outside);
    // Its own copy: the caller reads that path next, so a link on the way is refused there too.
    await linkRefusal(store.getFile('datasets/p/secret', join(dataDir, 'datasets/p/secret')), 'datasets/p/secret', outside);
    expect(readdirSync(local)).toEqual([]);
  });

  it('refuses a link swapped in after the folders were checked (where the system says where an open file is)', async (ctx) => {
    if (!existsSync('/proc/self/fd')) ctx.skip('no /proc/self/fd here: only the checks before opening apply');
    const { store, root, outside, local } = setup();
    writeFileSync(join(outside, '.medfit-sha256.secret'), `${sha(SECRET)}\n`);
    mkdirSync(join(root, 'datasets'), { recursive: true });
    symlinkSync(outside, join(root, 'datasets/p'));
    // The race lost: the folders' check passes (as if the link came just after it).
    (store as unknown as { checkParents: () => Promise<void> }).checkParents = async () => undefined;
    await linkRefusal(store.getFile('datasets/p/secret', join(local, 'a'), sha(SECRET)), 'datasets/p/secret', outside);
    expect(readdirSync(local)).toEqual([]);
  });
});

describeBlobContract('file', async () => {
  const root = temp('blob-file');
  return {
    store: new FileBlobStore(join(root, 'store'), { dataDir: join(root, 'data') }),
    async tamper(key, bytes) {
      writeFileSync(join(root, 'store', key), bytes);
    },
    async writeRaw(key, bytes) {
      mkdirSync(dirname(join(root, 'store', key)), { recursive: true });
      writeFileSync(join(root, 'store', key), bytes);
    },
    async cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
});

// ---------------------------------------------------------------------------------------------
// S3, on an s3rver in a child process. The child runs with OpenSSL's legacy provider: s3rver 3.7
// makes its ListObjectsV2 continuation tokens with DES, which Node 17+ refuses otherwise (any
// truncated listing is then a 500), and the pagination test needs them.

type S3Sdk = typeof import('@aws-sdk/client-s3');
const BUCKET = 'medfit-test';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
let s3rver: ChildProcess | undefined;
let endpoint = '';
let paginates = false;
let sdk: S3Sdk;
let admin: InstanceType<S3Sdk['S3Client']>;
const savedEnv: Record<string, string | undefined> = {};

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

let prefixes = 0;
function s3Config(prefix: string, over: Partial<S3StorageConfig> = {}): S3StorageConfig {
  return { kind: 's3', bucket: BUCKET, prefix, region: 'us-east-1', endpoint, ...over };
}
/** All object keys below `prefix` in the test bucket. */
async function rawKeys(prefix: string): Promise<string[]> {
  const res = await admin.send(new sdk.ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!).sort();
}

describe('the S3 blob store', () => {
  beforeAll(async () => {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) savedEnv[k] = process.env[k];
    // The store takes its credentials from the SDK's default chain, as in production.
    process.env['AWS_ACCESS_KEY_ID'] = CREDENTIALS.accessKeyId;
    process.env['AWS_SECRET_ACCESS_KEY'] = CREDENTIALS.secretAccessKey;
    delete process.env['AWS_SESSION_TOKEN'];
    delete process.env['AWS_PROFILE'];
    const dir = temp('s3rver');
    const started = await startS3rver(dir, true).catch(() => startS3rver(dir, false));
    s3rver = started.child;
    paginates = started.des;
    endpoint = `http://127.0.0.1:${started.port}`;
    sdk = await import('@aws-sdk/client-s3');
    admin = new sdk.S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: CREDENTIALS });
    await admin.send(new sdk.CreateBucketCommand({ Bucket: BUCKET }));
  });
  afterAll(() => {
    admin?.destroy();
    s3rver?.kill();
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  const opened: BlobStore[] = [];
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });
  async function open(config: S3StorageConfig, pageSize?: number): Promise<BlobStore> {
    const { S3BlobStore } = await import('./blob-s3.js');
    const store = new S3BlobStore(config, pageSize !== undefined ? { pageSize } : {});
    opened.push(store);
    return store;
  }

  describeBlobContract('s3', async () => {
    const prefix = `contract/t${++prefixes}`;
    const { S3BlobStore } = await import('./blob-s3.js');
    // 5 MiB parts (S3's least): the contract's file of a few MB goes up in two.
    const store = new S3BlobStore(s3Config(prefix), { partBytes: 5 * 1024 * 1024 });
    return {
      store,
      async tamper(key, bytes) {
        const Key = `${prefix}/${key}`;
        const head = await admin.send(new sdk.HeadObjectCommand({ Bucket: BUCKET, Key }));
        await admin.send(new sdk.PutObjectCommand({ Bucket: BUCKET, Key, Body: bytes, Metadata: head.Metadata }));
      },
      async writeRaw(key, bytes) {
        await admin.send(new sdk.PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${key}`, Body: bytes }));
      },
      async cleanup() {},
    };
  });

  it('fails fast with unavailable when the endpoint does not answer, naming the bucket and no credentials', async () => {
    const store = await open(s3Config('p', { endpoint: `http://127.0.0.1:${await closedPort()}` }));
    const local = temp('blob-s3-local');
    writeFileSync(join(local, 'f'), 'x');
    const calls: [string, () => Promise<unknown>][] = [
      ['check', () => store.check()],
      ['putFile', () => store.putFile('datasets/p/f', join(local, 'f'), sha('x'))],
      ['getFile', () => store.getFile('datasets/p/f', join(local, 'g'))],
      ['exists', () => store.exists('datasets/p/f')],
      ['remove', () => store.remove('datasets/p/f')],
      ['putDir', () => store.putDir('models/p/j', local)],
    ];
    for (const [what, call] of calls) {
      const t0 = performance.now();
      const e = await refused(call());
      expect(performance.now() - t0, what).toBeLessThan(5000);
      expect(e.code, what).toBe('MEDFIT_ERR_UNAVAILABLE');
      expect(e.retryAfter).toBeGreaterThan(0);
      expect(e.message).toContain(BUCKET);
      expect(e.message).not.toContain(CREDENTIALS.accessKeyId);
    }
    expect(readdirSync(local)).toEqual(['f']);
  });

  it('gives up on a server that accepts connections and never answers, in about three waits for headers', async () => {
    const sockets: import('node:net').Socket[] = [];
    const hung = createServer((socket) => void sockets.push(socket.on('data', () => undefined)));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    try {
      const { S3BlobStore } = await import('./blob-s3.js');
      const store = new S3BlobStore(s3Config('p', { endpoint: `http://127.0.0.1:${(hung.address() as { port: number }).port}` }), { headersTimeoutMs: 200 });
      opened.push(store);
      const t0 = performance.now();
      const settled = await Promise.allSettled([store.check(), store.exists('datasets/p/f'), store.getFile('datasets/p/f', join(temp('blob-s3-local'), 'f'))]);
      expect(settled.map((r) => (r.status === 'rejected' ? (r.reason as MedfitError).code : 'resolved'))).toEqual(Array(3).fill('MEDFIT_ERR_UNAVAILABLE'));
      expect(performance.now() - t0).toBeLessThan(2500);
    } finally {
      for (const s of sockets) s.destroy();
      hung.close();
    }
  });

  it('uploads a big file in parts, and never completes one whose bytes do not match their SHA-256', async () => {
    const { S3BlobStore } = await import('./blob-s3.js');
    const store = new S3BlobStore(s3Config('parts'), { partBytes: 5 * 1024 * 1024 });
    opened.push(store);
    const commands: string[] = [];
    (store as unknown as { client: InstanceType<S3Sdk['S3Client']> }).client.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize' },
    );
    const local = temp('blob-s3-local');
    const big = Buffer.alloc(6 * 1024 * 1024, 7);
    writeFileSync(join(local, 'big'), big);
    await store.putFile('datasets/p/big', join(local, 'big'), sha(big));
    expect(commands.filter((c) => /Multipart|UploadPart/.test(c))).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);
    commands.length = 0;
    expect((await refused(store.putFile('datasets/p/bad', join(local, 'big'), sha('other')))).code).toBe('MEDFIT_ERR_INTERNAL');
    expect(commands).not.toContain('CompleteMultipartUploadCommand');
    expect(commands).not.toContain('PutObjectCommand');
    expect(await rawKeys('parts/')).toEqual(['parts/datasets/p/big']);
  });

  it('answers check() with unavailable for a missing bucket', async () => {
    const store = await open(s3Config('p', { bucket: 'no-such-bucket' }));
    const e = await refused(store.check());
    expect(e.code).toBe('MEDFIT_ERR_UNAVAILABLE');
    expect(e.message).toContain('no-such-bucket');
    // A GET says which is missing, the bucket or the key (a HEAD cannot: exists() answers false).
    expect((await refused(store.getFile('datasets/x', join(temp('blob-s3-local'), 'x')))).code).toBe('MEDFIT_ERR_UNAVAILABLE');
  });

  it('keys objects as prefix/key, with no leading slash at the bucket root', async () => {
    const local = temp('blob-s3-local');
    writeFileSync(join(local, 'f'), 'x');
    const rootStore = await openBlobStore(s3Config(''), { dataDir: local });
    opened.push(rootStore);
    expect(rootStore.url).toBe(`s3://${BUCKET}`);
    await rootStore.putFile('rootkeys/p/f', join(local, 'f'), sha('x'));
    expect(await rawKeys('rootkeys/')).toEqual(['rootkeys/p/f']);
    const head = await admin.send(new sdk.HeadObjectCommand({ Bucket: BUCKET, Key: 'rootkeys/p/f' }));
    expect(head.Metadata).toEqual({ sha256: sha('x') });
    const store = await open(s3Config('deep/prefix'));
    expect(store.url).toBe(`s3://${BUCKET}/deep/prefix`);
    await store.putFile('datasets/p/f', join(local, 'f'), sha('x'));
    expect(await rawKeys('deep/')).toEqual(['deep/prefix/datasets/p/f']);
  });

  it('replaces and removes directories of more objects than one listing page holds', async (ctx) => {
    if (!paginates) ctx.skip('this s3rver cannot paginate: Node refused it OpenSSL\'s legacy provider (DES continuation tokens)');
    const store = await open(s3Config('paged'), 2);
    const local = temp('blob-s3-local');
    const files: Record<string, string> = {};
    for (let i = 0; i < 7; i++) files[`f${i}.txt`] = `file ${i}`;
    for (const [name, data] of Object.entries(files)) writeFileSync(join(local, name), data);
    await store.putDir('models/p/j', local);
    expect(await rawKeys('paged/')).toHaveLength(8);
    const v2 = temp('blob-s3-local');
    writeFileSync(join(v2, 'only.txt'), 'only');
    await store.putDir('models/p/j', v2);
    expect(await rawKeys('paged/')).toEqual(['paged/models/p/j/.medfit-dir.json', 'paged/models/p/j/only.txt']);
    await store.putDir('models/p/k', local);
    await store.remove('models/p/k');
    expect(await rawKeys('paged/models/p/k')).toEqual([]);
    expect(await store.exists('models/p/j')).toBe(true);
  });
});
