import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalCache } from './local-cache.js';

const KB = 1024;

function place(dir: string, rel: string, bytes: number): void {
  mkdirSync(join(dir, rel, '..'), { recursive: true });
  writeFileSync(join(dir, rel), Buffer.alloc(bytes));
}

describe('the local cache of stored files', () => {
  it('evicts the least recently used copies beyond its budget, never one used in the last minute', () => {
    const dir = mkdtempSync(join(tmpdir(), 'medfit-cache-'));
    let now = 1_000_000;
    const cache = new LocalCache(dir, 10 * KB, () => now);
    for (const name of ['a', 'b', 'c']) place(dir, `datasets/p/${name}.csv`, 4 * KB);
    cache.use('datasets/p/a.csv');
    now += 61_000;
    cache.use('datasets/p/b.csv');
    now += 61_000;
    cache.use('datasets/p/a.csv'); // a is now the most recent
    now += 61_000;
    cache.use('datasets/p/c.csv'); // 12 KB > 10 KB: b (least recent) goes
    expect(existsSync(join(dir, 'datasets/p/b.csv'))).toBe(false);
    expect(existsSync(join(dir, 'datasets/p/a.csv'))).toBe(true);
    expect(cache.size()).toBe(8 * KB);
    // Everything in use within the minute stays, whatever the budget.
    place(dir, 'models/p/v1/model.onnx', 20 * KB);
    cache.use('models/p/v1'); // 28 KB: a (a minute old) goes; c, used just now, stays over budget
    expect(existsSync(join(dir, 'models/p/v1/model.onnx'))).toBe(true);
    expect(existsSync(join(dir, 'datasets/p/a.csv'))).toBe(false);
    expect(existsSync(join(dir, 'datasets/p/c.csv'))).toBe(true);
    now += 61_000;
    cache.use('models/p/v1');
    expect(existsSync(join(dir, 'datasets/p/c.csv'))).toBe(false);
    expect(cache.size()).toBe(20 * KB);
    cache.forget('models/p/v1');
    expect(cache.size()).toBe(0);
  });

  it('takes in what an earlier run left, oldest first, with a dataset\'s companions', () => {
    const dir = mkdtempSync(join(tmpdir(), 'medfit-cache-'));
    place(dir, 'datasets/p/old.csv', 6 * KB);
    place(dir, 'datasets/p/old.csv.profile.json', 1 * KB);
    place(dir, 'datasets/p/new.csv', 6 * KB);
    place(dir, 'datasets/p/.new.csv.tmp-12345678', 1 * KB);
    place(dir, 'models/p/v1/model.onnx', 2 * KB);
    const t = Date.now() / 1000;
    utimesSync(join(dir, 'datasets/p/old.csv'), t - 3600, t - 3600);
    utimesSync(join(dir, 'datasets/p/new.csv'), t - 600, t - 600);
    utimesSync(join(dir, 'models/p/v1'), t - 300, t - 300);
    const evicted: string[] = [];
    new LocalCache(dir, 9 * KB).adopt((rel) => evicted.push(rel));
    expect(evicted).toEqual(['datasets/p/old.csv']);
  });
});
