import { describe, expect, it } from 'vitest';
import { MedfitError } from '../core/index.js';
import { holdoutSplit, stratifiedKFold, strataFor } from './split.js';

const y = Float64Array.from({ length: 103 }, (_, i) => (i % 4 === 0 ? 1 : 0));

describe('stratifiedKFold', () => {
  it('covers every row exactly once as test, keeps class shares, and is deterministic', () => {
    const folds = stratifiedKFold(strataFor(y, true), 5, 7);
    const seen = new Int32Array(y.length);
    for (const f of folds) {
      for (const i of f.test) seen[i]!++;
      expect(f.train.length + f.test.length).toBe(y.length);
      expect(new Set([...f.train, ...f.test]).size).toBe(y.length);
      const positives = Array.from(f.test).filter((i) => y[i] === 1).length;
      // 26 positives over 5 folds: 5 or 6 in each.
      expect(positives).toBeGreaterThanOrEqual(5);
      expect(positives).toBeLessThanOrEqual(6);
    }
    expect(Array.from(seen).every((c) => c === 1)).toBe(true);
    expect(stratifiedKFold(strataFor(y, true), 5, 7)).toEqual(folds);
    expect(stratifiedKFold(strataFor(y, true), 5, 8)).not.toEqual(folds);
  });

  it('keeps every group on one side of every split', () => {
    const groups = Array.from({ length: y.length }, (_, i) => `p${Math.floor(i / 3)}`);
    for (const f of stratifiedKFold(strataFor(y, true), 4, 1, groups)) {
      const trainGroups = new Set(Array.from(f.train, (i) => groups[i]));
      for (const i of f.test) expect(trainGroups.has(groups[i]!)).toBe(false);
    }
  });

  it('stratifies a regression target by quantile bins', () => {
    const yr = Float64Array.from({ length: 100 }, (_, i) => i);
    for (const f of stratifiedKFold(strataFor(yr, false), 5, 0)) {
      const bins = new Set(Array.from(f.test, (i) => Math.floor(yr[i]! / 20)));
      expect(bins.size).toBe(5);
    }
  });

  it('refuses fewer units than folds and a bad k', () => {
    expect(() => stratifiedKFold(strataFor(y.subarray(0, 3), true), 5, 0)).toThrow(/cannot make 5 folds from 3 rows/);
    expect(() => stratifiedKFold(strataFor(y, true), 1, 0)).toThrow(MedfitError);
  });
});

describe('holdoutSplit', () => {
  it('splits into disjoint train, validation and test sets of about the asked sizes', () => {
    const big = Float64Array.from({ length: 1000 }, (_, i) => i % 3);
    const h = holdoutSplit(strataFor(big, true), { valid: 0.15, test: 0.2 }, 3);
    expect(h.test.length).toBeGreaterThan(180);
    expect(h.test.length).toBeLessThan(220);
    expect(h.valid.length).toBeGreaterThan(130);
    expect(h.valid.length).toBeLessThan(170);
    expect(new Set([...h.train, ...h.valid, ...h.test]).size).toBe(1000);
  });

  it('keeps groups whole', () => {
    const big = Float64Array.from({ length: 600 }, (_, i) => i % 2);
    const groups = Array.from({ length: 600 }, (_, i) => `g${i % 50}`);
    const h = holdoutSplit(strataFor(big, true), { valid: 0.1, test: 0.2 }, 0, groups);
    const side = new Map<string, string>();
    for (const [name, idx] of Object.entries(h)) {
      for (const i of idx as Int32Array) {
        expect(side.get(groups[i]!) ?? name).toBe(name);
        side.set(groups[i]!, name);
      }
    }
  });

  it('refuses fractions that leave no training rows', () => {
    expect(() => holdoutSplit(strataFor(y, true), { valid: 0.5, test: 0.5 }, 0)).toThrow(/sum below 1/);
  });
});

describe('a million rows', () => {
  it('splits, bins and holds out without spreading the rows into a call (no stack overflow)', () => {
    const n = 1_000_000;
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = (i * 7919) % 3;
    const strata = strataFor(y, true);
    const folds = stratifiedKFold(strata, 5, 1);
    // Stratified round-robin: each fold within one row per class of a fifth.
    for (const f of folds) expect(Math.abs(f.test.length - 200_000)).toBeLessThanOrEqual(3);
    const h = holdoutSplit(strata, { valid: 0.1, test: 0.2 }, 1);
    expect(h.train.length + h.valid.length + h.test.length).toBe(n);
    const bins = strataFor(Float64Array.from(y, (v, i) => v + i / n), false);
    expect(bins[0]).toBe(0);
  });
});
