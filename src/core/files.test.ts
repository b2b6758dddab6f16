import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isTempName, removeStaleTemps, streamToFileAtomic, tempSibling, writeDirAtomic, writeFileAtomic } from './index.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'medfit-files-'));
/** Everything under `dir`, recursively (relative paths), hidden entries included. */
const tree = (dir: string) => (readdirSync(dir, { recursive: true }) as string[]).sort();

describe('writeFileAtomic', () => {
  it('writes the new content in one step and leaves no temporary file', () => {
    const dir = fresh();
    writeFileAtomic(join(dir, 'a', 'f.json'), '{"v":1}');
    writeFileAtomic(join(dir, 'a', 'f.json'), '{"v":2}');
    expect(readFileSync(join(dir, 'a', 'f.json'), 'utf8')).toBe('{"v":2}');
    expect(tree(dir)).toEqual(['a', join('a', 'f.json')]);
  });

  it('leaves nothing behind when the final rename fails (the target is a non-empty directory)', () => {
    const dir = fresh();
    mkdirSync(join(dir, 'taken'));
    writeFileSync(join(dir, 'taken', 'x'), 'keep');
    expect(() => writeFileAtomic(join(dir, 'taken'), 'new')).toThrow();
    expect(tree(dir)).toEqual(['taken', join('taken', 'x')]);
  });
});

describe('streamToFileAtomic', () => {
  it('removes the partial file when the stream fails midway or a chunk is refused', async () => {
    const dir = fresh();
    // Repeated: a failure can come before the file stream has opened its file (a race that left
    // a temporary file behind once in a few attempts).
    for (let i = 0; i < 30; i++) {
      const failing = Readable.from(
        (async function* () {
          yield Buffer.from('a,b\n1,2\n');
          throw new Error('connection reset');
        })(),
      );
      await expect(streamToFileAtomic(join(dir, 'd.csv'), failing, () => {})).rejects.toThrow('connection reset');
      const tooBig = Readable.from([Buffer.from('x'.repeat(10)), Buffer.from('y'.repeat(10))]);
      let seen = 0;
      await expect(
        streamToFileAtomic(join(dir, 'd.csv'), tooBig, (c) => {
          if ((seen += c.length) > 15) throw new Error('over the limit');
        }),
      ).rejects.toThrow('over the limit');
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(tree(dir)).toEqual([]);
    await streamToFileAtomic(join(dir, 'd.csv'), Readable.from([Buffer.from('ok')]), () => {});
    expect(tree(dir)).toEqual(['d.csv']);
  });
});

describe('writeDirAtomic', () => {
  it('writes every file into place through one rename', () => {
    const dir = fresh();
    writeDirAtomic(join(dir, 'models', 'v1'), { 'model.onnx': new Uint8Array([1, 2, 3]), 'manifest.json': '{}' });
    expect(tree(dir)).toEqual(['models', join('models', 'v1'), join('models', 'v1', 'manifest.json'), join('models', 'v1', 'model.onnx')]);
    // An existing empty directory (made by a caller beforehand) is replaced.
    mkdirSync(join(dir, 'models', 'v2'));
    writeDirAtomic(join(dir, 'models', 'v2'), { a: 'x' });
    expect(readFileSync(join(dir, 'models', 'v2', 'a'), 'utf8')).toBe('x');
  });

  it('never replaces a non-empty directory, and leaves no temporary sibling', () => {
    const dir = fresh();
    writeDirAtomic(join(dir, 'v1'), { a: 'first' });
    expect(() => writeDirAtomic(join(dir, 'v1'), { a: 'second' })).toThrow();
    expect(readFileSync(join(dir, 'v1', 'a'), 'utf8')).toBe('first');
    expect(tree(dir)).toEqual(['v1', join('v1', 'a')]);
  });

  it('removes the temporary sibling when writing a file fails halfway', () => {
    const dir = fresh();
    const files = { first: 'ok', second: 42 as unknown as string };
    expect(() => writeDirAtomic(join(dir, 'v1'), files)).toThrow();
    expect(tree(dir)).toEqual([]);
  });

  it('refuses file names that are paths before writing anything', () => {
    const dir = fresh();
    for (const name of ['../escape', 'a/b', '..', '', 'a\\b']) expect(() => writeDirAtomic(join(dir, 'v1'), { [name]: 'x' })).toThrow(/not a plain file name/);
    expect(tree(dir)).toEqual([]);
  });
});

describe('removeStaleTemps', () => {
  it('removes old temporary siblings under models/ and datasets/, and nothing else', () => {
    const data = fresh();
    const old = Date.now() / 1000 - 2 * 3600;
    const make = (rel: string, dir: boolean, stale = true) => {
      const p = join(data, rel);
      if (dir) mkdirSync(p, { recursive: true });
      else {
        mkdirSync(join(p, '..'), { recursive: true });
        writeFileSync(p, 'x');
      }
      if (stale) utimesSync(p, old, old);
      return p;
    };
    make('models/p1/job-1/manifest.json', false);
    make('models/p1/.job-2.tmp-0a1b2c3d/model.onnx', false);
    make('models/p1/.job-2.tmp-0a1b2c3d', true);
    make('models/p1/.tmp-123e4567-e89b-12d3-a456-426614174000', true);
    make('datasets/p1/.d1.csv.tmp-deadbeef', false);
    make('datasets/p1/.d1.csv.profile.json.tmp-00000000', false);
    make('datasets/p1/.d2.csv.tmp-feedf00d', false, false);
    make('datasets/p1/.hidden', false);
    make('datasets/p1/d1.csv', false);
    make('models/p1/job-1/sub/.x.tmp-11111111', false);
    make('other/.x.tmp-22222222', false);
    symlinkSync(join(data, 'models', 'p1', 'job-1'), join(data, 'models', 'p1', '.link.tmp-33333333'));
    expect(removeStaleTemps(data)).toBe(4);
    // (readdirSync's recursion follows the link, the sweep does not: only the link itself is listed.)
    const link = join('p1', '.link.tmp-33333333');
    expect(tree(join(data, 'models')).filter((p) => p.includes('tmp') && !p.startsWith(`${link}/`))).toEqual([join('p1', '.link.tmp-33333333'), join('p1', 'job-1', 'sub', '.x.tmp-11111111')]);
    expect(tree(join(data, 'datasets'))).toEqual(['p1', join('p1', '.d2.csv.tmp-feedf00d'), join('p1', '.hidden'), join('p1', 'd1.csv')]);
    expect(existsSync(join(data, 'other', '.x.tmp-22222222'))).toBe(true);
    expect(existsSync(join(data, 'models', 'p1', 'job-1', 'manifest.json'))).toBe(true);
    // The fresh one goes too once it is old enough.
    expect(removeStaleTemps(data, { olderThanMs: 0, now: Date.now() + 1000 })).toBe(1);
    expect(removeStaleTemps(join(data, 'missing'))).toBe(0);
  });

  it('recognises exactly the names tempSibling makes (and the uploads of old)', () => {
    expect(isTempName(tempSibling('/x/v1').split('/').pop()!)).toBe(true);
    expect(isTempName('.tmp-123e4567-e89b-12d3-a456-426614174000')).toBe(true);
    for (const name of ['v1', '.v1', '.v1.tmp-', '.v1.tmp-xyz12345', 'v1.tmp-0a1b2c3d', '.tmp']) expect(isTempName(name)).toBe(false);
  });
});
