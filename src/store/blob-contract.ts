/**
 * The `BlobStore` contract as a test suite, run against every implementation by blob.test.ts
 * (the file store, and the S3 store on an s3rver). Only what the interface promises lives here;
 * what one implementation does by itself (the embedded default's no-op copies, S3's unreachable
 * endpoint and pagination) stays in the test file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MedfitError } from '../core/index.js';
import { listingSha256, type BlobStore } from './blob.js';

/** A fresh, empty store, and ways to change what it holds behind its back. */
export interface BlobStoreUnderTest {
  store: BlobStore;
  /** Replaces the stored bytes of file `key` with `bytes`, keeping the SHA-256 the store recorded (a damaged or tampered copy). */
  tamper(key: string, bytes: Buffer): Promise<void>;
  /** Writes `bytes` at `key` and nothing else (no hash, no listing): what a `putDir` interrupted after one file leaves. */
  writeRaw(key: string, bytes: Buffer): Promise<void>;
  /** Closes nothing (the suite closes `store`), removes what the store left. */
  cleanup(): Promise<void>;
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Awaits `p`, expecting a MedfitError rejection. */
export async function refused(p: Promise<unknown>): Promise<MedfitError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MedfitError);
  return e as MedfitError;
}

/** Writes files (relative path → content) below `dir`. */
function writeTree(dir: string, files: Record<string, string | Buffer>): void {
  for (const [path, data] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), data);
  }
}

/** Every file below `dir` (relative path → content), hidden ones included. */
function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (abs: string, rel: string): void => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(abs, e.name), path);
      else out[path] = readFileSync(join(abs, e.name), 'utf8');
    }
  };
  walk(dir, '');
  return out;
}

/**
 * Declares the contract's tests under `describe(name)`. `make` gives an empty store for each
 * test; the suite closes it and calls `cleanup` after the test.
 */
export function describeBlobContract(name: string, make: () => Promise<BlobStoreUnderTest>): void {
  describe(`${name}: the BlobStore contract`, () => {
    const after: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const f of after.splice(0).reverse()) await f();
    });
    /** A fresh store and a scratch folder for local files. */
    async function fresh(): Promise<BlobStoreUnderTest & { local: string }> {
      const t = await make();
      const local = mkdtempSync(join(tmpdir(), 'medfit-blob-local-'));
      after.push(async () => {
        await t.store.close();
        await t.cleanup();
        rmSync(local, { recursive: true, force: true });
      });
      return { ...t, local };
    }

    it('round-trips a file of a few MB (streamed, multipart on S3) and a small one, checking their SHA-256', async () => {
      const { store, local } = await fresh();
      const big = randomBytes(6 * 1024 * 1024 + 123);
      writeFileSync(join(local, 'big.bin'), big);
      await store.putFile('datasets/p1/big.bin', join(local, 'big.bin'), sha(big));
      writeFileSync(join(local, 'small.csv'), 'a,b\n1,2\n');
      await store.putFile('datasets/p1/small.csv', join(local, 'small.csv'), sha('a,b\n1,2\n').toUpperCase());
      expect(await store.exists('datasets/p1/big.bin')).toBe(true);
      expect(await store.exists('datasets/p1/none.bin')).toBe(false);

      await store.getFile('datasets/p1/big.bin', join(local, 'copy/deep/big.bin'));
      expect(sha(readFileSync(join(local, 'copy/deep/big.bin')))).toBe(sha(big));
      await store.getFile('datasets/p1/small.csv', join(local, 'copy/small.csv'), sha('a,b\n1,2\n'));
      expect(readFileSync(join(local, 'copy/small.csv'), 'utf8')).toBe('a,b\n1,2\n');
      // Nothing but the copies: no temporary file left beside them.
      expect(readdirSync(join(local, 'copy')).sort()).toEqual(['deep', 'small.csv']);
      expect(readdirSync(join(local, 'copy/deep'))).toEqual(['big.bin']);

      expect((await refused(store.getFile('datasets/p1/none.bin', join(local, 'none')))).code).toBe('MEDFIT_ERR_NOT_FOUND');
      expect(readdirSync(local).sort()).toEqual(['big.bin', 'copy', 'small.csv']);
    });

    it('refuses to store a file whose bytes do not match the SHA-256 given, and keeps nothing', async () => {
      const { store, local } = await fresh();
      writeFileSync(join(local, 'f'), 'content');
      const e = await refused(store.putFile('datasets/p/f', join(local, 'f'), sha('other')));
      expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
      expect(e.message).toContain('datasets/p/f');
      expect(await store.exists('datasets/p/f')).toBe(false);
      expect((await refused(store.putFile('datasets/p/f', join(local, 'f'), 'not-a-hash'))).code).toBe('MEDFIT_ERR_USAGE');
    });

    it('leaves nothing at the destination when the SHA-256 expected is not the stored one', async () => {
      const { store, local } = await fresh();
      writeFileSync(join(local, 'f'), 'content');
      await store.putFile('datasets/p/f', join(local, 'f'), sha('content'));
      mkdirSync(join(local, 'out'));
      const e = await refused(store.getFile('datasets/p/f', join(local, 'out/f'), sha('something else')));
      expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
      expect(e.message).toContain('datasets/p/f');
      expect(e.message).not.toContain(local);
      expect(readdirSync(join(local, 'out'))).toEqual([]);
    });

    it('refuses a stored file whose bytes were changed behind its back', async () => {
      const { store, local, tamper } = await fresh();
      writeFileSync(join(local, 'f'), 'the original bytes');
      await store.putFile('models/p/m.onnx', join(local, 'f'), sha('the original bytes'));
      await tamper('models/p/m.onnx', Buffer.from('the tampered bytes'));
      mkdirSync(join(local, 'out'));
      const e = await refused(store.getFile('models/p/m.onnx', join(local, 'out/m.onnx')));
      expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
      expect(e.message).toContain('models/p/m.onnx');
      expect(e.message).not.toContain(local);
      expect(readdirSync(join(local, 'out'))).toEqual([]);
    });

    it('replaces a stored file', async () => {
      const { store, local } = await fresh();
      writeFileSync(join(local, 'v1'), 'version 1');
      writeFileSync(join(local, 'v2'), 'version 2, longer');
      await store.putFile('datasets/p/d.csv', join(local, 'v1'), sha('version 1'));
      await store.putFile('datasets/p/d.csv', join(local, 'v2'), sha('version 2, longer'));
      await store.getFile('datasets/p/d.csv', join(local, 'got'));
      expect(readFileSync(join(local, 'got'), 'utf8')).toBe('version 2, longer');
      // A copy replaces an older local copy as well.
      await store.putFile('datasets/p/d.csv', join(local, 'v1'), sha('version 1'));
      await store.getFile('datasets/p/d.csv', join(local, 'got'));
      expect(readFileSync(join(local, 'got'), 'utf8')).toBe('version 1');
    });

    it('refuses a file stored without a recorded SHA-256 unless the caller expects one', async () => {
      const { store, local, writeRaw } = await fresh();
      await writeRaw('datasets/p/by-hand.csv', Buffer.from('put there by hand'));
      expect(await store.exists('datasets/p/by-hand.csv')).toBe(true);
      expect((await refused(store.getFile('datasets/p/by-hand.csv', join(local, 'a')))).code).toBe('MEDFIT_ERR_INTERNAL');
      expect((await refused(store.getFile('datasets/p/by-hand.csv', join(local, 'a'), sha('other')))).code).toBe('MEDFIT_ERR_INTERNAL');
      expect(readdirSync(local)).toEqual([]);
      await store.getFile('datasets/p/by-hand.csv', join(local, 'a'), sha('put there by hand'));
      expect(readFileSync(join(local, 'a'), 'utf8')).toBe('put there by hand');
    });

    it('round-trips a nested directory with its listing', async () => {
      const { store, local } = await fresh();
      const files = { 'manifest.json': '{"v":1}', 'model.onnx': randomBytes(70_000), 'weights/a/b.bin': 'deep', 'weights/c.bin': '' };
      writeTree(join(local, 'src'), files);
      const listing = await store.putDir('models/p/job1', join(local, 'src'));
      expect(listing).toEqual(
        Object.entries(files)
          .map(([path, data]) => ({ path, bytes: Buffer.byteLength(data), sha256: sha(data) }))
          .sort((a, b) => (a.path < b.path ? -1 : 1)),
      );
      expect(await store.exists('models/p/job1')).toBe(true);
      await store.getDir('models/p/job1', join(local, 'cache/models/p/job1'));
      const got = readTree(join(local, 'cache/models/p/job1'));
      expect(Object.keys(got).sort()).toEqual(Object.keys(files).sort());
      expect(sha(readFileSync(join(local, 'cache/models/p/job1/model.onnx')))).toBe(sha(files['model.onnx']));
      expect(got['weights/a/b.bin']).toBe('deep');
      // One file of a stored directory can be fetched alone, checked against what was stored.
      await store.getFile('models/p/job1/weights/a/b.bin', join(local, 'one.bin'));
      expect(readFileSync(join(local, 'one.bin'), 'utf8')).toBe('deep');
      // No temporary sibling left beside the copy.
      expect(readdirSync(join(local, 'cache/models/p'))).toEqual(['job1']);
    });

    it('fetches a directory only when its listing is the one recorded, when given one', async () => {
      const { store, local } = await fresh();
      writeTree(join(local, 'src'), { 'model.onnx': 'graph', 'manifest.json': '{}' });
      const recorded = listingSha256(await store.putDir('models/p/rec', join(local, 'src')));
      await store.getDir('models/p/rec', join(local, 'ok'), recorded);
      expect(readTree(join(local, 'ok'))).toEqual({ 'model.onnx': 'graph', 'manifest.json': '{}' });
      // Another directory stored under that prefix (by whoever can write the storage) is refused.
      writeTree(join(local, 'other'), { 'model.onnx': 'another graph', 'manifest.json': '{}' });
      await store.putDir('models/p/rec', join(local, 'other'));
      const e = await refused(store.getDir('models/p/rec', join(local, 'refused'), recorded));
      expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
      expect(e.message).toMatch(/not the one its record was written for/);
      expect(existsSync(join(local, 'refused'))).toBe(false);
    });

    it('replaces everything a directory held before', async () => {
      const { store, local } = await fresh();
      writeTree(join(local, 'v1'), { 'a.txt': 'old a', 'extra/old.txt': 'old extra' });
      writeTree(join(local, 'v2'), { 'a.txt': 'new a', 'b.txt': 'new b' });
      await store.putDir('models/p/j', join(local, 'v1'));
      expect(await store.exists('models/p/j/extra/old.txt')).toBe(true);
      await store.putDir('models/p/j', join(local, 'v2'));
      expect(await store.exists('models/p/j/extra/old.txt')).toBe(false);
      await store.getDir('models/p/j', join(local, 'got'));
      expect(readTree(join(local, 'got'))).toEqual({ 'a.txt': 'new a', 'b.txt': 'new b' });
    });

    it('treats a directory without its listing (an interrupted putDir) as absent', async () => {
      const { store, local, writeRaw } = await fresh();
      await writeRaw('models/p/half/model.onnx', Buffer.from('half written'));
      expect(await store.exists('models/p/half')).toBe(false);
      expect((await refused(store.getDir('models/p/half', join(local, 'got')))).code).toBe('MEDFIT_ERR_NOT_FOUND');
      expect((await refused(store.getDir('models/p/never', join(local, 'got')))).code).toBe('MEDFIT_ERR_NOT_FOUND');
      expect(readdirSync(local)).toEqual([]);
    });

    it('refuses a directory copy onto an existing destination, and one that does not match its listing', async () => {
      const { store, local, tamper } = await fresh();
      writeTree(join(local, 'src'), { 'a.txt': 'a', 'sub/b.txt': 'b' });
      await store.putDir('models/p/j', join(local, 'src'));
      writeTree(join(local, 'dest'), { 'mine.txt': 'keep me' });
      const e = await refused(store.getDir('models/p/j', join(local, 'dest')));
      expect(['MEDFIT_ERR_CONFLICT', 'MEDFIT_ERR_USAGE']).toContain(e.code);
      expect(readTree(join(local, 'dest'))).toEqual({ 'mine.txt': 'keep me' });
      // Even an empty folder (which a rename would silently replace).
      mkdirSync(join(local, 'empty'));
      expect(['MEDFIT_ERR_CONFLICT', 'MEDFIT_ERR_USAGE']).toContain((await refused(store.getDir('models/p/j', join(local, 'empty')))).code);
      rmSync(join(local, 'empty'), { recursive: true });

      await tamper('models/p/j/sub/b.txt', Buffer.from('B'));
      const bad = await refused(store.getDir('models/p/j', join(local, 'copy')));
      expect(bad.code).toBe('MEDFIT_ERR_INTERNAL');
      expect(bad.message).toContain('models/p/j');
      expect(readdirSync(local).sort()).toEqual(['dest', 'src']);
    });

    it('removes a key and everything below it, and nothing that merely starts with the same characters', async () => {
      const { store, local } = await fresh();
      writeFileSync(join(local, 'f'), 'x');
      writeTree(join(local, 'd'), { 'm.onnx': 'm', 'w/1.bin': '1' });
      await store.putDir('models/a', join(local, 'd'));
      await store.putFile('models/ab/x', join(local, 'f'), sha('x'));
      await store.putFile('models/a.csv', join(local, 'f'), sha('x'));
      await store.putFile('models/b', join(local, 'f'), sha('x'));
      await store.remove('models/a');
      expect(await store.exists('models/a')).toBe(false);
      expect(await store.exists('models/a/m.onnx')).toBe(false);
      expect(await store.exists('models/ab/x')).toBe(true);
      expect(await store.exists('models/a.csv')).toBe(true);
      await store.getFile('models/ab/x', join(local, 'got'), sha('x'));
      await store.remove('models/b');
      expect(await store.exists('models/b')).toBe(false);
      expect((await refused(store.getFile('models/b', join(local, 'gone')))).code).toBe('MEDFIT_ERR_NOT_FOUND');
      // Absent is not an error.
      await store.remove('models/a');
      await store.remove('never/was');
    });

    it('refuses bad keys with a usage error, before touching anything', async () => {
      const { store, local } = await fresh();
      writeFileSync(join(local, 'f'), 'x');
      mkdirSync(join(local, 'd'));
      const bad = ['', '/abs', 'a/../b', '..', 'a/./b', '.', 'a//b', 'a/', 'a\\b', 'a\nb', 'a\u0000b', 'x'.repeat(1025), 'm/.medfit-dir.json', 'd/.f.tmp-0123abcd'];
      for (const key of bad) {
        const calls: [string, () => Promise<unknown>][] = [
          ['putFile', () => store.putFile(key, join(local, 'f'), sha('x'))],
          ['getFile', () => store.getFile(key, join(local, 'out'))],
          ['putDir', () => store.putDir(key, join(local, 'd'))],
          ['getDir', () => store.getDir(key, join(local, 'outdir'))],
          ['exists', () => store.exists(key)],
          ['remove', () => store.remove(key)],
        ];
        for (const [what, call] of calls) {
          const e = await refused(call());
          expect(e.code, `${what}(${JSON.stringify(key)})`).toBe('MEDFIT_ERR_USAGE');
        }
      }
      expect(readdirSync(local).sort()).toEqual(['d', 'f']);
    });

    it('answers check() and names itself without credentials', async () => {
      const { store } = await fresh();
      await store.check();
      expect(store.url).toMatch(/^(file|s3):\/\//);
      expect(store.url).not.toMatch(/@/);
    });
  });
}
