import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HyperLogLog, hashNumber } from './dictionary.js';
import { quantileOf } from './pipeline.js';
import { profileFile, profileTable } from './profile.js';
import { readTable } from './read.js';
import { inferSchema } from './schema.js';

const dir = mkdtempSync(join(tmpdir(), 'medfit-profile-'));
const CSV = 'x,c,y\n1,a,yes\n2,b,no\n3,a,yes\n4,a,yes\n100,b,no\n1,a,yes\n,,no\n';
const path = join(dir, 'small.csv');
writeFileSync(path, CSV);

// Hand-computed: x = 1,1,2,3,4,100 (one missing of 7 rows); mean 111/6 = 18.5; squared
// deviations sum to 7977.5, so the sample variance is 7977.5/5 = 1595.5; quantiles by linear
// interpolation at (n-1)q = 1.25, 2.5, 3.75 → 1.25, 2.5, 3.75; IQR 2.5, fences -2.5 and 7.5, so
// one outlier (100). Row 6 repeats row 1.
const X = {
  name: 'x',
  type: 'integer',
  role: 'feature',
  missing: 1,
  missingPct: 100 / 7,
  invalid: 0,
  distinct: 5,
  distinctApprox: false,
  min: 1,
  max: 100,
  mean: 18.5,
  q1: 1.25,
  median: 2.5,
  q3: 3.75,
  outliers: 1,
};

describe('profile', () => {
  it('profileTable: hand-computed numbers', async () => {
    const t = await readTable(path);
    const { schema } = inferSchema(t, { target: 'y' });
    const p = profileTable(t, schema);
    expect(p.rows).toBe(7);
    expect(p.duplicateRows).toBe(1);
    expect(p.columns[0]).toMatchObject(X);
    expect(p.columns[0]!.std).toBeCloseTo(Math.sqrt(1595.5), 12);
    expect(p.columns[1]).toMatchObject({
      type: 'categorical',
      missing: 1,
      distinct: 2,
      top: [
        { value: 'a', count: 4 },
        { value: 'b', count: 2 },
      ],
    });
    expect(p.columns[2]).toMatchObject({ type: 'boolean', role: 'target', missing: 0, top: [{ value: true, count: 4 }, { value: false, count: 3 }] });
    expect(p.target).toEqual({ column: 'y', type: 'boolean', balance: { true: 4, false: 3 } });
    expect(p.warnings).toContainEqual({ code: 'duplicate_rows', message: '1 rows repeat an earlier row' });
    expect(p.approximate).toEqual({ quantiles: false, distinct: false, duplicateRows: false });
  });

  it('profileFile: same numbers in one streaming pass, with the inferred schema', async () => {
    const p = await profileFile(path, { target: 'y' });
    expect(p.rows).toBe(7);
    expect(p.duplicateRows).toBe(1);
    expect(p.columns[0]).toMatchObject(X);
    expect(p.columns[0]!.std).toBeCloseTo(Math.sqrt(1595.5), 12);
    expect(p.schema.columns.map((c) => c.type)).toEqual(['integer', 'categorical', 'boolean']);
    expect(p.target).toEqual({ column: 'y', type: 'boolean', balance: { true: 4, false: 3 } });
    expect(p.approximate.quantiles).toBe(false);
  });

  it('numeric target summary and categorical balance', async () => {
    const p = await profileFile(path, { target: 'x' });
    expect(p.target).toMatchObject({ column: 'x', type: 'integer', balance: { 1: 2, 2: 1, 3: 1, 4: 1, 100: 1 } });
    const big = join(dir, 'reg.csv');
    writeFileSync(big, 'v\n' + Array.from({ length: 50 }, (_, i) => String(i * 2)).join('\n') + '\n');
    const r = await profileFile(big, { target: 'v' });
    expect(r.target!.summary).toEqual({ min: 0, max: 98, mean: 49, std: r.columns[0]!.std, median: 49 });
  });

  it('streaming approximations stay close on a larger column', async () => {
    const n = 20000;
    const lines = ['id,v,cat'];
    for (let i = 0; i < n; i++) lines.push(`${i},${(i % 1000) / 10},k${i % 3000}`);
    const f = join(dir, 'big.csv');
    writeFileSync(f, lines.join('\n') + '\n');
    const p = await profileFile(f, { accumulator: { store: false, distinctCap: 1000, reservoirSize: 2000, seed: 1 } });
    const v = p.columns[1]!;
    expect(v.mean).toBeCloseTo(49.95, 6); // exact whatever the sample
    expect(Math.abs(v.median! - 49.95)).toBeLessThan(3);
    expect(p.columns[0]!.type).toBe('identifier');
    expect(p.columns[2]!.distinctApprox).toBe(true);
    expect(Math.abs(p.columns[2]!.distinct - 3000) / 3000).toBeLessThan(0.05);
    // 20,000 distinct rows are counted exactly: only a sample's estimate is flagged.
    expect(p.approximate).toEqual({ quantiles: true, distinct: true, duplicateRows: false });
    expect(p.duplicateRows).toBe(0);
  });

  it('duplicate rows past the exact capacity: none reported when there are none, a close estimate when there are', async () => {
    const { DistinctRows } = await import('./builder.js');
    const rng = (seed: number) => () => ((seed = Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0);
    const none = new DistinctRows(1024);
    const r1 = rng(1);
    for (let i = 0; i < 200_000; i++) none.add(r1(), r1());
    expect(none.sampled).toBe(true);
    expect(none.duplicates).toBe(0);
    const some = new DistinctRows(1024);
    const r2 = rng(2);
    const seen: Array<[number, number]> = [];
    for (let i = 0; i < 200_000; i++) {
      const row: [number, number] = i % 10 === 9 ? seen[(i * 7919) % seen.length]! : [r2(), r2()];
      if (i % 10 !== 9) seen.push(row);
      some.add(row[0], row[1]);
    }
    // 20,000 repeats; the sample keeps about 1/256 of the rows' hashes here.
    expect(Math.abs(some.duplicates - 20_000) / 20_000).toBeLessThan(0.25);
  });

  it('HyperLogLog and quantiles', () => {
    const h = new HyperLogLog();
    for (let i = 0; i < 200000; i++) h.add(hashNumber(i));
    expect(Math.abs(h.estimate() - 200000) / 200000).toBeLessThan(0.03);
    expect(quantileOf(Float64Array.of(1, 2, 3, 4), 0.5)).toBe(2.5);
    expect(quantileOf(Float64Array.of(5), 0.25)).toBe(5);
    // Selection agrees with interpolating the sorted values (numpy's default), ties included.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const n of [2, 3, 10, 101, 1000]) {
      const v = Float64Array.from({ length: n }, () => Math.floor(rand() * n * 0.3));
      const sorted = v.slice().sort();
      for (const q of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
        const h = (n - 1) * q;
        const lo = Math.floor(h);
        const want = sorted[lo]! + (sorted[Math.min(lo + 1, n - 1)]! - sorted[lo]!) * (h - lo);
        expect(quantileOf(v.slice(), q)).toBeCloseTo(want, 12);
      }
    }
  });
});

describe('columns that may identify a person', () => {
  // Names, dates of birth (datetime), phone numbers (integers) beside a measurement and an
  // outcome; 24 rows, every name twice, so nothing is typed an identifier by its values: the
  // names column is, by its name (a text column named for a person's name is left out of training).
  const lines = ['patient_name,date_of_birth,phone,glucose,outcome'];
  for (let i = 0, k = 0; i < 24; i++, k = i % 12) lines.push(`Person${k},19${40 + k}-0${1 + (k % 9)}-1${k % 10},55501${String(k).padStart(2, '0')},${80 + ((i * 7) % 30)},${i % 2 ? 'yes' : 'no'}`);
  const flaggedPath = join(dir, 'people.csv');
  writeFileSync(flaggedPath, lines.join('\n') + '\n');
  const VALUES = ['top', 'min', 'max', 'mean', 'std', 'q1', 'median', 'q3', 'histogram'] as const;

  const check = (p: Awaited<ReturnType<typeof profileFile>>) => {
    const col = (n: string) => p.columns.find((c) => c.name === n)!;
    expect(p.columns.map((c) => [c.name, c.type, c.identifier !== undefined])).toEqual([
      ['patient_name', 'identifier', true],
      ['date_of_birth', 'datetime', true],
      ['phone', 'integer', true],
      ['glucose', 'integer', false],
      ['outcome', 'boolean', false],
    ]);
    for (const name of ['patient_name', 'date_of_birth', 'phone']) {
      const c = col(name);
      for (const k of VALUES) expect(c[k], `${name}.${k}`).toBeUndefined();
      // Counts stay: how many values, how many missing.
      expect(c).toMatchObject({ missing: 0, missingPct: 0, invalid: 0, distinct: 12, distinctApprox: false });
    }
    // Nothing of the values anywhere in the profile (a mean of phone numbers is nearly one).
    expect(col('phone').outliers).toBe(0);
    expect(JSON.stringify(p)).not.toMatch(/Person|5550/);
    // Unflagged columns keep theirs.
    expect(col('glucose')).toMatchObject({ min: 80, max: 109, median: 93.5 });
    expect(col('glucose').histogram).toBeDefined();
    expect(col('outcome').top).toEqual([{ value: true, count: 12 }, { value: false, count: 12 }]);
  };

  it('profileTable leaves their values out (top, min, max, mean, std, quartiles, histogram) and keeps their counts', async () => {
    const t = await readTable(flaggedPath);
    check(profileTable(t, inferSchema(t).schema));
  });

  it('profileFile (streaming) does the same', async () => {
    check(await profileFile(flaggedPath));
  });

  it('gives a flagged target neither class counts nor a summary', async () => {
    const p = await profileFile(flaggedPath, { target: 'patient_name' });
    expect(p.target).toEqual({ column: 'patient_name', type: 'categorical' });
    const t = await readTable(flaggedPath);
    expect(profileTable(t, inferSchema(t, { target: 'phone' }).schema).target).toEqual({ column: 'phone', type: 'integer' });
  });
});

describe('profileFileInWorker', () => {
  it('profiles in a worker thread under the name given, and stops a profile that runs past its time limit', async () => {
    const { profileFileInWorker } = await import('./profile.js');
    const p = await profileFileInWorker(path, { source: 'upload-name', target: 'y' });
    expect(p).toMatchObject({ source: 'upload-name', rows: 7, duplicateRows: 1 });
    const big = join(dir, 'slow.csv');
    writeFileSync(big, 'a,b\n' + Array.from({ length: 200_000 }, (_, i) => `${i},x${i}`).join('\n') + '\n');
    const started = performance.now();
    await expect(profileFileInWorker(big, { source: 'slow-upload', timeoutMs: 1 })).rejects.toThrow(/^slow-upload: profiling took longer than 0 s; it was stopped$/);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
