/** The search's pure parts: sampling within each family's limits, the halving schedule, budgets. */
import { describe, expect, it } from 'vitest';
import { FAMILIES, SMALL_TABLE_ROWS } from '../models/index.js';
import { maxBrackets, parseBudget, rungFolds, sampleConfigs, survivors, valueAt } from './search.js';

describe('sampleConfigs', () => {
  it("draws every family's points within its own parameter limits, small tables from narrower ranges", () => {
    for (const fam of Object.values(FAMILIES)) {
      for (const task of fam.tasks) {
        for (const rows of [100, 5000]) {
          const space = fam.searchSpace!(task, rows);
          const base = fam.defaults(task, rows);
          const points = sampleConfigs(space, base, 40, 0, 7);
          expect(points).toHaveLength(40);
          for (const p of points) {
            // parseParams is what a user's --param goes through: it throws on anything out of range.
            expect(fam.parseParams(p, task, rows)).toEqual(p);
            for (const [key, dim] of Object.entries(space)) {
              const v = p[key]!;
              if (dim.type === 'choice') expect(dim.values.map((x) => JSON.stringify(x))).toContain(JSON.stringify(v));
              else {
                expect(v as number).toBeGreaterThanOrEqual(dim.low);
                expect(v as number).toBeLessThanOrEqual(dim.high);
                if (dim.type === 'int') expect(Number.isInteger(v)).toBe(true);
              }
            }
          }
          // The points spread: no two alike over the searched keys.
          const keys = Object.keys(space);
          const distinct = new Set(points.map((p) => JSON.stringify(keys.map((k) => p[k]))));
          expect(distinct.size).toBeGreaterThan(keys.length === 1 ? 39 : 35);
        }
      }
    }
    // Small tables: shallower trees, stronger penalties.
    const small = FAMILIES.gbdt.searchSpace!('binary', SMALL_TABLE_ROWS - 1);
    const large = FAMILIES.gbdt.searchSpace!('binary', SMALL_TABLE_ROWS);
    expect(small['max_depth']).toMatchObject({ high: 4 });
    expect(large['max_depth']).toMatchObject({ high: 8 });
    expect((small['l2'] as { low: number }).low).toBeGreaterThan((large['l2'] as { low: number }).low);
  });

  it('is seeded, continues its sequence from `start`, and never varies what the user set', () => {
    const space = FAMILIES.gbdt.searchSpace!('binary', 1000);
    const base = FAMILIES.gbdt.defaults('binary', 1000);
    const a = sampleConfigs(space, base, 12, 0, 3);
    expect(sampleConfigs(space, base, 12, 0, 3)).toEqual(a);
    expect(sampleConfigs(space, base, 12, 0, 4)).not.toEqual(a);
    expect(sampleConfigs(space, base, 6, 6, 3)).toEqual(a.slice(6));
    const fixed = sampleConfigs(space, { ...base, trees: 77 }, 12, 0, 3, new Set(['trees']));
    for (const p of fixed) expect(p['trees']).toBe(77);
    // Log-scaled ranges cover their decades evenly: about half the learning rates below the geometric middle.
    const lr = sampleConfigs({ lr: { type: 'float', low: 0.001, high: 1, log: true } }, {}, 200, 0, 1).map((p) => p['lr'] as number);
    const below = lr.filter((v) => v < Math.sqrt(0.001)).length;
    expect(below).toBeGreaterThan(90);
    expect(below).toBeLessThan(110);
  });

  it('maps the unit interval onto integers, log integers and choices without leaving the range', () => {
    expect(valueAt({ type: 'int', low: 2, high: 8 }, 0)).toBe(2);
    expect(valueAt({ type: 'int', low: 2, high: 8 }, 0.999999)).toBe(8);
    expect(valueAt({ type: 'int', low: 50, high: 1000, log: true }, 0)).toBe(50);
    expect(valueAt({ type: 'int', low: 50, high: 1000, log: true }, 0.9999999)).toBe(1000);
    expect(valueAt({ type: 'choice', values: [[64, 32], [32]] }, 0.1)).toEqual([64, 32]);
  });
});

describe('successive halving and budgets', () => {
  it('scores on one fold, then two, then all, keeping the best third', () => {
    expect(rungFolds(5)).toEqual([1, 2, 5]);
    expect(rungFolds(15)).toEqual([1, 2, 15]);
    expect(rungFolds(2)).toEqual([1, 2]);
    expect([9, 3, 1, 6, 2].map(survivors)).toEqual([3, 1, 1, 2, 1]);
    expect(maxBrackets(FAMILIES.gbdt, false)).toBe(Infinity);
    expect(maxBrackets(FAMILIES.gbdt, true)).toBe(3);
    expect(maxBrackets(FAMILIES.logistic, false)).toBe(3);
  });

  it('reads durations and refuses what is not one', () => {
    expect(parseBudget('60s')).toBe(60);
    expect(parseBudget('90')).toBe(90);
    expect(parseBudget(45)).toBe(45);
    expect(parseBudget('5m')).toBe(300);
    expect(parseBudget('1m30s')).toBe(90);
    expect(parseBudget('1h')).toBe(3600);
    expect(parseBudget('1.5m')).toBe(90);
    expect(parseBudget(' 1h 30m 10s ')).toBe(5410);
    for (const bad of ['', 'soon', '-5s', '0s', '0.5', '25h', '30s1m', '5s5s', '1m 2', '1e3', 'Infinity', '٣٠s', NaN, -1, 86401, true, null, {}]) {
      expect(typeof parseBudget(bad), String(bad)).toBe('string');
    }
    // No input makes the reading slow (an ambiguous pattern took seconds on 30 digits).
    const started = performance.now();
    for (const n of [31, 63, 1000]) expect(typeof parseBudget('1'.repeat(n) + 'x')).toBe('string');
    expect(performance.now() - started).toBeLessThan(50);
  });
});
