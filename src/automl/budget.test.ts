/**
 * `trainTable` with a budget, an ensemble and calibration, for real (no mocks): the search adds
 * points to the defaults' leaderboard within its time, small tables get repeated CV and fewer
 * points, an ensemble's weights are cross-fitted, and the default calibration brings the shared
 * tables' calibration slope into [0.8, 1.25] (issue 11's bar).
 */
import { describe, expect, it } from 'vitest';
import { Rng, type Cell } from '../core/index.js';
import { readTable, tableFromRows } from '../data/index.js';
import { CalibratedModel } from './calibrated.js';
import { EnsembleModel } from './ensemble.js';
import { SMALL_BRACKET_SIZE, SMALL_MAX_BRACKETS } from './search.js';
import { SMALL_REPEATS, trainTable } from './train.js';

const fixture = (name: string) => new URL(`../../test/fixtures/${name}`, import.meta.url).pathname;

/** A small table with a nonlinear signal (trees help) and a linear one (logistic helps). */
function small(rows: number, seed: number) {
  const rng = new Rng(seed);
  const out: Cell[][] = [];
  for (let i = 0; i < rows; i++) {
    const a = rng.normal();
    const b = rng.normal();
    const c = rng.normal();
    out.push([a, b, c, a + (b > 0.5 ? 1.5 : 0) + 0.8 * rng.normal() > 0.3 ? 'yes' : 'no']);
  }
  return tableFromRows(['a', 'b', 'c', 'outcome'], out, { source: 'small.csv' });
}

describe('trainTable with a budget', () => {
  it('searches each family on the same folds within the budget, never below its defaults', async () => {
    const table = await readTable(fixture('pima_diabetes.csv'));
    const started = performance.now();
    const r = await trainTable(table, { target: 'diabetes', budget: 8, seed: 1 });
    const seconds = (performance.now() - started) / 1000;
    // The budget bounds the choice (the defaults are always scored, however long a loaded machine
    // takes); the final fit on all rows comes after (a second or two here).
    const defaults = r.leaderboard.filter((c) => !c.searched && c.family !== 'ensemble');
    const floor = Math.max(8, defaults.reduce((a, c) => a + c.seconds, 0));
    expect(r.search!.budget).toBe(8);
    expect(r.search!.seconds).toBeLessThan(floor + 1.5);
    expect(seconds).toBeLessThan(floor + 10);
    expect(r.leaderboard.filter((c) => c.searched).length).toBeGreaterThan(0);
    expect(r.search!.trials['logistic']!.started).toBeGreaterThan(1);
    // Successive halving: points stopped after one or two folds are listed with their fold count, after those scored on all.
    const firstPartial = r.leaderboard.findIndex((c) => c.folds !== undefined);
    if (firstPartial >= 0) for (const c of r.leaderboard.slice(firstPartial)) expect(c.folds).toBeLessThan(5);
    // Whatever was chosen scores at least as well as every family's defaults on the same folds.
    expect(defaults.map((c) => c.family).sort()).toEqual(['gbdt', 'logistic']);
    const chosen = r.leaderboard.find((c) => c.folds === undefined)!;
    for (const d of defaults) expect(chosen.metrics['auroc']!.mean).toBeGreaterThanOrEqual(d.metrics['auroc']!.mean);
  });

  it('stops at once when cancelled during the search, not at the end of its budget', async () => {
    const table = await readTable(fixture('pima_diabetes.csv'));
    const ac = new AbortController();
    const started = performance.now();
    setTimeout(() => ac.abort(), 2500);
    await expect(trainTable(table, { target: 'diabetes', budget: 60, signal: ac.signal })).rejects.toMatchObject({ code: 'MEDFIT_ERR_CANCELLED' });
    expect((performance.now() - started) / 1000).toBeLessThan(10);
  });

  it('on a small table: repeated CV, a few points per family, then stops before the budget', async () => {
    const r = await trainTable(small(150, 3), { target: 'outcome', budget: 60, seed: 2 });
    expect(r.cv).toMatchObject({ folds: 5 * SMALL_REPEATS, repeats: SMALL_REPEATS });
    for (const t of Object.values(r.search!.trials)) expect(t.started).toBeLessThanOrEqual(1 + SMALL_MAX_BRACKETS * SMALL_BRACKET_SIZE);
    expect(r.search!.seconds).toBeLessThan(40);
    // Small-table ranges: shallow trees.
    for (const c of r.leaderboard.filter((x) => x.family === 'gbdt' && x.searched)) expect(c.params['max_depth'] as number).toBeLessThanOrEqual(4);
  });

  it('builds an ensemble when asked, with cross-fitted weights, and predicts as its weighted members', async () => {
    const t = small(200, 5);
    const r = await trainTable(t, { target: 'outcome', model: 'ensemble', seed: 3, calibrate: 'none' });
    expect(r.model).toBeInstanceOf(EnsembleModel);
    const e = r.model as EnsembleModel;
    const row = r.leaderboard.find((c) => c.family === 'ensemble')!;
    expect(row.params['members']).toMatch(/logistic|gbdt/);
    // The ensemble row's scores are its own (cross-fitted), not a copy of a member's.
    expect(r.cv.metrics).toEqual(row.metrics);
    const x = { rows: 3, cols: e.nFeatures, data: Float64Array.from({ length: 3 * e.nFeatures }, (_, i) => (i % 7) / 7 - 0.5) };
    const want = new Float64Array(6);
    for (const [i, m] of e.members.entries()) {
      const p = m.predict(x);
      for (let j = 0; j < 6; j++) want[j]! += e.weights[i]! * p[j]!;
    }
    const got = e.predict(x);
    for (let j = 0; j < 6; j++) expect(got[j]).toBeCloseTo(want[j]!, 12);
  });
});

describe('calibration', () => {
  it.each([
    ['breast_cancer_wdbc.csv', 'diagnosis'],
    ['pima_diabetes.csv', 'diabetes'],
  ])('brings %s into a calibration slope of [0.8, 1.25] by default, cross-fitted, and keeps the calibrator in the model', async (file, target) => {
    const table = await readTable(fixture(file));
    const r = await trainTable(table, { target, seed: 0 });
    const cal = r.calibration!;
    expect(cal.asked).toBe('auto');
    expect(['platt', 'isotonic']).toContain(cal.method);
    expect(cal.candidates.map((c) => c.method)).toEqual(['none', 'platt', 'isotonic']);
    expect(cal.after.calibration_slope).toBeGreaterThanOrEqual(0.8);
    expect(cal.after.calibration_slope).toBeLessThanOrEqual(1.25);
    expect(cal.reliability!.before.length).toBeGreaterThan(0);
    expect(r.model).toBeInstanceOf(CalibratedModel);
    expect(r.model.toState().calibration).toBeDefined();
    // The report and the CV metrics are the calibrated model's.
    expect((r.report.metrics as Record<string, number>)['brier']).toBeCloseTo(cal.after.brier, 12);
  });

  it('leaves a model uncalibrated with none, and refuses calibration of a regression', async () => {
    const t = small(120, 8);
    const r = await trainTable(t, { target: 'outcome', model: 'logistic', calibrate: 'none', cv: 3 });
    expect(r.calibration!.method).toBe('none');
    expect(r.calibration!.after).toEqual(r.calibration!.before);
    expect(r.model.toState().calibration).toBeUndefined();
    await expect(trainTable(t, { target: 'a', model: 'linear', calibrate: 'platt', cv: 3 })).rejects.toThrow(/calibration \(platt\) is for classifiers/);
  });
});
