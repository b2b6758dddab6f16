import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { histogramOf, type Histogram } from './histogram.js';
import { quantileOf } from './pipeline.js';
import { identifierHint, profileFile, profileTable } from './profile.js';
import { readTable } from './read.js';
import { inferSchema } from './schema.js';

const dir = mkdtempSync(join(tmpdir(), 'medfit-histogram-'));

/** The histogram of all of `values`, as the in-memory profile makes it. */
function exactHistogram(values: number[], integer: boolean): Histogram {
  const a = Float64Array.from(values);
  return histogramOf(a, { integer, min: Math.min(...values), max: Math.max(...values), q1: quantileOf(a.slice(), 0.25), q3: quantileOf(a.slice(), 0.75), total: values.length, exact: true });
}

const sum = (h: Histogram) => h.counts.reduce((s, c) => s + c, 0) + h.below + h.above;
const increasing = (e: number[]) => e.every((x, i) => i === 0 || x > e[i - 1]!);

describe('histogramOf', () => {
  it('numeric: 20 equal bins between the whiskers, outliers counted beside them', () => {
    // 0.5..99.5 and one far value: the fences are [-49.5, 150.5], the values within them 0.5..99.5.
    const v = [...Array.from({ length: 100 }, (_, i) => i + 0.5), 10_000];
    const h = exactHistogram(v, false);
    expect(h.edges).toHaveLength(21);
    expect(h.edges[0]).toBe(0.5);
    expect(h.edges[20]).toBe(99.5);
    expect(increasing(h.edges)).toBe(true);
    expect(h.above).toBe(1);
    expect(h.below).toBe(0);
    expect(sum(h)).toBe(101);
    expect(h.counts).toEqual(Array.from({ length: 20 }, () => 5));
    expect(h.exact).toBe(true);
  });

  it('numeric: collapsed fences fall back to [min, max]; a constant column is one bin', () => {
    const mostlyOne = exactHistogram([1, 1, 1, 1, 1, 1, 1, 1, 3, 9.5], false);
    expect(mostlyOne.edges[0]).toBe(1);
    expect(mostlyOne.edges.at(-1)).toBe(9.5);
    expect(mostlyOne.below + mostlyOne.above).toBe(0);
    expect(sum(mostlyOne)).toBe(10);
    const constant = exactHistogram([2.5, 2.5, 2.5], false);
    expect(constant).toEqual({ edges: [2, 3], counts: [3], below: 0, above: 0, exact: true });
  });

  it('integer: one bin per value when the values span at most 30 integers, without clipping', () => {
    const h = exactHistogram([1, 2, 2, 3, 3, 3, 5, 5, 30], true);
    expect(h.edges).toEqual(Array.from({ length: 31 }, (_, i) => i + 0.5));
    expect(h.counts.slice(0, 5)).toEqual([1, 2, 3, 0, 2]);
    expect(h.counts[29]).toBe(1);
    expect(h.below + h.above).toBe(0);
    expect(sum(h)).toBe(9);
  });

  it('integer: wider spans get bins of a whole number of values, at half-integer edges', () => {
    const v = [...Array.from({ length: 1000 }, (_, i) => i % 200), 5000, -4000];
    const h = exactHistogram(v, true);
    expect(h.counts).toHaveLength(20);
    expect(h.edges[0]).toBe(-0.5);
    expect(h.edges[1]! - h.edges[0]!).toBe(10);
    expect(h.counts.every((c) => c === 50)).toBe(true);
    expect([h.below, h.above]).toEqual([1, 1]);
    expect(sum(h)).toBe(1002);
  });

  it('from a sample: counts scaled to the column add up to it exactly', () => {
    const sample = Float64Array.from({ length: 997 }, (_, i) => (i * 7919) % 1000);
    const h = histogramOf(sample, { integer: false, min: 0, max: 999, q1: 250, q3: 750, total: 123_457, exact: false });
    expect(h.exact).toBe(false);
    expect(sum(h)).toBe(123_457);
    for (const c of h.counts) expect(Math.abs(c - 123_457 / 20)).toBeLessThan(200);
  });
});

describe('the profile with histograms and identifier hints', () => {
  it('in memory and streaming: the same exact histograms; counts sum to the non-missing count', async () => {
    const rows = ['score,visits,weight'];
    for (let i = 0; i < 500; i++) rows.push(`${(i * 37) % 11},${i % 97},${i === 7 ? '' : ((i * 13) % 500) / 10}`);
    const f = join(dir, 'h.csv');
    writeFileSync(f, rows.join('\n') + '\n');
    const t = await readTable(f);
    const mem = profileTable(t, inferSchema(t).schema);
    const streamed = await profileFile(f);
    for (const p of [mem, streamed]) {
      for (const c of p.columns) {
        const h = c.histogram!;
        expect(h.exact).toBe(true);
        expect(increasing(h.edges)).toBe(true);
        expect(h.counts).toHaveLength(h.edges.length - 1);
        expect(sum(h)).toBe(500 - c.missing);
      }
      // A small-cardinality integer column: one bin per value, 0..10.
      expect(p.columns[0]!.histogram!.edges).toEqual(Array.from({ length: 12 }, (_, i) => i - 0.5));
      expect(p.columns[0]!.histogram!.counts.every((c) => c >= 45 && c <= 46)).toBe(true);
    }
    expect(streamed.columns.map((c) => c.histogram)).toEqual(mem.columns.map((c) => c.histogram));
  });

  it('streaming from a reservoir: flagged as estimated, still adding up; few-valued integers counted exactly', async () => {
    const rows = ['level,value'];
    for (let i = 0; i < 5000; i++) rows.push(`${i % 7 === 0 ? 1 : i % 3},${Math.sin(i) * 100}`);
    const f = join(dir, 'sampled.csv');
    writeFileSync(f, rows.join('\n') + '\n');
    const p = await profileFile(f, { accumulator: { store: false, distinctCap: 100_000, reservoirSize: 256, seed: 3 } });
    const [level, value] = p.columns;
    expect(level!.histogram!.exact).toBe(true);
    expect(level!.histogram!.edges).toEqual([-0.5, 0.5, 1.5, 2.5]);
    const t = await readTable(f);
    const exact = profileTable(t, inferSchema(t).schema);
    expect(level!.histogram!.counts).toEqual(exact.columns[0]!.histogram!.counts);
    expect(value!.histogram!.exact).toBe(false);
    expect(sum(value!.histogram!)).toBe(5000);
    expect(increasing(value!.histogram!.edges)).toBe(true);
  });

  it('flags columns that may identify people, by name and by inferred identifier type', async () => {
    expect(identifierHint('email', 'categorical')).toBe('the name suggests an email address');
    expect(identifierHint('PatientName', 'categorical')).toBe("the name suggests a person's name");
    expect(identifierHint('first_name', 'categorical')).toBe("the name suggests a person's name");
    expect(identifierHint('date_of_birth', 'datetime')).toBe('the name suggests a date of birth');
    expect(identifierHint('DOB', 'datetime')).toBe('the name suggests a date of birth');
    expect(identifierHint('home_phone', 'categorical')).toBe('the name suggests a phone or fax number');
    expect(identifierHint('mrn', 'identifier')).toBe('the name suggests a medical record number');
    expect(identifierHint('street_address', 'categorical')).toBe('the name suggests an address');
    expect(identifierHint('code', 'identifier')).toMatch(/^inferred as an identifier/);
    for (const name of ['drug_name', 'birth_weight', 'age', 'mean_radius', 'glucose']) expect(identifierHint(name, 'numeric')).toBeUndefined();
    const f = join(dir, 'people.csv');
    writeFileSync(f, 'patient_id,name,email,age,outcome\n' + Array.from({ length: 12 }, (_, i) => `P${i},N${i},e${i}@x.org,${30 + (i % 5)},${i % 2}`).join('\n') + '\n');
    const p = await profileFile(f, { target: 'outcome' });
    expect(p.columns.map((c) => c.identifier !== undefined)).toEqual([true, true, true, false, false]);
    expect(p.columns[0]!.identifier).toMatch(/^inferred as an identifier/);
  });
});
