import { describe, expect, it } from 'vitest';
import { MedfitError, type Schema } from '../core/index.js';
import { tableFromRows } from './read.js';
import { dropDuplicateRows } from './rows.js';
import {
  encodeTarget,
  fitPipeline,
  transformRecords,
  transformTable,
  validatePipeline,
} from './pipeline.js';
import type { Cell } from '../core/index.js';

const COLUMNS = ['age', 'sex', 'smoker', 'admitted', 'outcome'];
const ROWS: Cell[][] = [
  ['60', 'F', 'yes', '2024-01-01', 'pos'],
  ['40', 'M', 'no', '2024-02-01', 'neg'],
  [null, 'F', null, '2024-03-01', 'neg'],
  ['80', null, 'yes', null, 'pos'],
  ['abc', 'X', 'no', '2024-05-01', 'neg'],
];
/** A table of these rows, as `visits.csv` with data from line 2. */
const visits = (rows: Cell[][]) => tableFromRows(COLUMNS, rows, { source: 'visits.csv', format: 'csv', lines: rows.map((_, i) => i + 2) });
const table = visits(ROWS);
const schema: Schema = {
  columns: [
    { name: 'age', type: 'numeric', role: 'feature' },
    { name: 'sex', type: 'categorical', role: 'feature' },
    { name: 'smoker', type: 'boolean', role: 'feature' },
    { name: 'admitted', type: 'datetime', role: 'feature' },
    { name: 'outcome', type: 'categorical', role: 'target' },
  ],
};

describe('fitPipeline', () => {
  it('learns imputation, scaling and categories from the training rows only', () => {
    const p = fitPipeline(table, schema, Int32Array.of(0, 1, 2, 3));
    const age = p.steps[0]!;
    expect(age).toMatchObject({ kind: 'numeric', fill: 60, indicator: true });
    if (age.kind !== 'numeric') throw new Error('unreachable');
    // Imputed column 60, 40, 60, 80: mean 60, population std sqrt(200).
    expect(age.center).toBeCloseTo(60, 12);
    expect(age.scale).toBeCloseTo(Math.sqrt(200), 12);
    // 'X' appears only in row 4, which was not a training row.
    expect(p.steps[1]).toMatchObject({ kind: 'categorical', categories: ['F', 'M'], fill: 'F', indicator: true });
    expect(p.features).toEqual([
      'age',
      'age__missing',
      'sex=F',
      'sex=M',
      'sex__missing',
      'smoker',
      'smoker__missing',
      'admitted__year',
      'admitted__month',
      'admitted__day',
      'admitted__weekday',
      'admitted__missing',
    ]);
    validatePipeline(JSON.parse(JSON.stringify(p)));
  });

  it('gives an unseen category all zeros and counts unparsable numbers as missing', () => {
    const p = fitPipeline(table, schema, Int32Array.of(0, 1, 2, 3));
    const { x, warnings } = transformTable(p, table, [4]);
    const row = Array.from(x.data);
    expect(row[0]).toBeCloseTo(0, 12); // 'abc' imputed with the median 60, which is the mean
    expect(row[1]).toBe(1); // ...and flagged
    expect(row.slice(2, 5)).toEqual([0, 0, 0]); // unseen 'X'
    expect(warnings).toEqual([expect.objectContaining({ code: 'unparsed_value', column: 'age' })]);
    expect(warnings[0]!.message).not.toContain('abc');
    expect(warnings[0]!.message).toBe('visits.csv, column "age": 1 value(s) of the wrong type treated as missing (the first on line 6)');
  });

  it('clips outliers to the fences of the training rows when asked', () => {
    const t = visits(Array.from({ length: 20 }, (_, i) => [String(i === 19 ? 1000 : i), 'F', 'no', '2024-01-01', 'neg']));
    const p = fitPipeline(t, schema, Int32Array.from({ length: 20 }, (_, i) => i), { clipOutliers: true });
    const step = p.steps[0]!;
    if (step.kind !== 'numeric' || !step.clip) throw new Error('expected clip bounds');
    expect(step.clip[1]).toBeLessThan(100);
  });
});

describe('transformRecords', () => {
  const p = fitPipeline(table, schema, Int32Array.of(0, 1, 2, 3));

  it('imputes absent features and says which', () => {
    const { x, warnings } = transformRecords(p, [{ age: 70, sex: 'M', smoker: true, admitted: '2024-01-15' }, { age: '50' }]);
    expect(x.rows).toBe(2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toBe('record 1: sex, smoker, admitted missing, imputed as in training');
  });

  it('names the field of a wrong type without echoing the value', () => {
    try {
      transformRecords(p, [{ age: 'seventy', sex: 'M' }]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(MedfitError);
      const err = e as MedfitError;
      expect(err.message).toBe('records.0.age: expected a finite number');
      expect(err.details[0]).toEqual({ pointer: '/records/0/age', message: 'expected a finite number' });
    }
    expect(() => transformRecords(p, [{ age: Number.NaN }])).toThrow(/records\.0\.age: expected a finite number/);
    expect(() => transformRecords(p, [{ age: { nested: 1 } }])).toThrow(/records\.0\.age/);
  });

  it('reads missing tokens in records as missing, and names fields that are not features', () => {
    const { warnings } = transformRecords(p, [{ age: 'NA', sex: '', smoker: 'yes', admitted: '2024-01-15', Sex: 'M', mrn: 7 }]);
    expect(warnings.map((w) => w.message)).toEqual([
      'record 0: age, sex missing, imputed as in training',
      'field "Sex" (in 1 record(s)) is not one of the model\'s features; ignored; did you mean "sex"?',
      'field "mrn" (in 1 record(s)) is not one of the model\'s features; ignored',
    ]);
  });

  it('refuses a record with none of the features', () => {
    expect(() => transformRecords(p, [{ weight: 3 }])).toThrow(/records\.0: has none of the model's features/);
  });
});

describe('encodeTarget', () => {
  it('puts the positive-looking class second and drops rows without a target', () => {
    const t = visits([...ROWS, ['1', 'F', 'no', '2024-01-01', null]]);
    const r = encodeTarget(t, 'outcome', 'categorical', 'auto');
    expect(r.encoding).toEqual({ column: 'outcome', task: 'binary', classes: ['neg', 'pos'] });
    expect(Array.from(r.y)).toEqual([1, 0, 0, 1, 0]);
    expect(r.rows.length).toBe(5);
    expect(r.warnings[0]!.code).toBe('missing_target');
    const flipped = visits(ROWS.map((row) => [...row.slice(0, 4), row[4] === 'pos' ? 'yes' : 'a-no']));
    expect(encodeTarget(flipped, 'outcome', 'categorical', 'auto').encoding.classes).toEqual(['a-no', 'yes']);
  });

  it('chooses regression for many numeric values and refuses a constant target', () => {
    const t = visits(Array.from({ length: 30 }, (_, i) => ['1', 'F', 'no', '2024-01-01', String(i * 1.5)]));
    expect(encodeTarget(t, 'outcome', 'numeric', 'auto').encoding.task).toBe('regression');
    const c = visits(ROWS.map((row) => [...row.slice(0, 4), 'neg']));
    expect(() => encodeTarget(c, 'outcome', 'categorical', 'auto')).toThrow(/visits\.csv, target column "outcome": has a single value/);
  });

  it('names the line of a non-numeric value in a regression target', () => {
    expect(() => encodeTarget(table, 'outcome', 'categorical', 'regression')).toThrow(/visits\.csv:2, target column "outcome": regression needs a numeric target/);
  });
});

describe('dropDuplicateRows', () => {
  it('keeps the first of identical rows', () => {
    const t = visits([ROWS[0]!, ROWS[1]!, [...ROWS[0]!]]);
    expect(dropDuplicateRows(t, Int32Array.of(0, 1, 2))).toEqual({ kept: Int32Array.from([0, 1]), duplicates: 1 });
  });
});

describe('validatePipeline', () => {
  it('names what is wrong', () => {
    const p = fitPipeline(table, schema, Int32Array.of(0, 1, 2, 3));
    expect(() => validatePipeline({ ...p, version: 9 })).toThrow(/format version 9 is not 1/);
    expect(() => validatePipeline({ ...p, features: p.features.slice(1) })).toThrow(/steps make 12 features but 11 are named/);
  });
});

describe('datePart', () => {
  it('equals Date.getUTC* for dates from 1600 to 2400, times of day included', async () => {
    const { datePart } = await import('./pipeline.js');
    const { Rng } = await import('../core/index.js');
    const rng = new Rng(5);
    const from = Date.UTC(1600, 0, 1);
    const to = Date.UTC(2400, 0, 1);
    for (let i = 0; i < 20_000; i++) {
      const ms = Math.floor(from + rng.next() * (to - from));
      const d = new Date(ms);
      expect([datePart(ms, 'year'), datePart(ms, 'month'), datePart(ms, 'day'), datePart(ms, 'weekday'), datePart(ms, 'hour')]).toEqual([
        d.getUTCFullYear(),
        d.getUTCMonth() + 1,
        d.getUTCDate(),
        d.getUTCDay(),
        d.getUTCHours() + d.getUTCMinutes() / 60,
      ]);
    }
  });
});

describe('datetime and numeric steps from counts', () => {
  it('equal the row-by-row computation (median fill, parts standardised over imputed rows)', async () => {
    const { datePart } = await import('./pipeline.js');
    const { Rng } = await import('../core/index.js');
    const rng = new Rng(9);
    const rows: Cell[][] = Array.from({ length: 501 }, () => [
      rng.next() < 0.1 ? null : new Date(Date.UTC(2020, 0, 1) + rng.int(400) * 86_400_000 + (rng.next() < 0.3 ? rng.int(86_400) * 1000 : 0)).toISOString(),
      rng.next() < 0.1 ? 'NA' : String(rng.int(50) / 4),
    ]);
    const t = tableFromRows(['when', 'v'], rows);
    const p = fitPipeline(t, { columns: [{ name: 'when', type: 'datetime', role: 'feature' }, { name: 'v', type: 'numeric', role: 'feature' }] }, Int32Array.from({ length: 501 }, (_, i) => i));
    const [dt, num] = p.steps as [Extract<(typeof p.steps)[number], { kind: 'datetime' }>, Extract<(typeof p.steps)[number], { kind: 'numeric' }>];
    const ms = rows.map((r) => (r[0] === null ? NaN : Date.parse(r[0] as string)));
    const present = ms.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
    const median = (a: number[]) => (a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2);
    expect(dt.fill).toBe(median(present));
    expect(dt.parts).toEqual(['year', 'month', 'day', 'weekday', 'hour']);
    dt.parts.forEach((part, q) => {
      const v = ms.map((x) => datePart(Number.isNaN(x) ? dt.fill : x, part));
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      expect(dt.center[q]).toBeCloseTo(mean, 9);
      expect(dt.scale[q]).toBeCloseTo(std, 9);
    });
    const nums = rows.map((r) => (r[1] === 'NA' ? NaN : Number(r[1])));
    const fill = median(nums.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b));
    const imputed = nums.map((v) => (Number.isNaN(v) ? fill : v));
    const mean = imputed.reduce((a, b) => a + b, 0) / imputed.length;
    expect(num).toMatchObject({ fill, indicator: true });
    expect(num.center).toBeCloseTo(mean, 12);
    expect(num.scale).toBeCloseTo(Math.sqrt(imputed.reduce((a, b) => a + (b - mean) ** 2, 0) / imputed.length), 12);
  });
});
