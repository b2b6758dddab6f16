/**
 * Multi-output regression on a plain table: several numeric targets learnt at once, reported as
 * the mean over the outputs (`cv.metrics`) and each output's (`cv.outputs`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MedfitError, type Cell } from '../core/index.js';
import { readTable, tableFromRows } from '../data/index.js';
import type { LinearWeights } from '../models/index.js';
import { trainTable, type TrainOptions } from './train.js';

const LINNERUD = new URL('../../test/fixtures/linnerud_fitness.csv', import.meta.url).pathname;
const TARGETS = ['weight', 'waist', 'pulse'];

async function usageError(opts: Partial<TrainOptions> & Pick<TrainOptions, 'target'>, text: RegExp, table?: Parameters<typeof trainTable>[0]): Promise<void> {
  const t = table ?? (await readTable(LINNERUD));
  let caught: unknown;
  try {
    await trainTable(t, { cv: 3, ...opts });
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(MedfitError);
  expect((caught as MedfitError).code).toBe('MEDFIT_ERR_USAGE');
  expect((caught as MedfitError).message).toMatch(text);
}

describe('trainTable with several targets', () => {
  it('trains the linnerud table: 3 outputs, cv.metrics the mean of cv.outputs, the first output in the report', async () => {
    const t = await readTable(LINNERUD);
    const r = await trainTable(t, { target: TARGETS, cv: 5, seed: 0 });
    expect(r.task).toBe('regression');
    expect(r.target).toEqual({ column: 'weight,waist,pulse', task: 'regression' });
    expect(r.model.nOutputs).toBe(3);
    expect(r.rows).toEqual({ total: 20, used: 20, duplicates: 0 });
    // auto: the families that learn several outputs at once (the MLP sits out below 2,000 rows).
    expect(r.leaderboard.map((c) => c.family).sort()).toEqual(['gbdt', 'linear']);
    expect(Object.keys(r.cv.outputs!)).toEqual(TARGETS);
    for (const m of ['r2', 'rmse', 'mae']) {
      const mean = TARGETS.reduce((a, name) => a + r.cv.outputs![name]![m]!.mean, 0) / 3;
      expect(r.cv.metrics[m]!.mean).toBeCloseTo(mean, 10);
    }
    for (const c of r.leaderboard) expect(Object.keys(c.outputs!)).toEqual(TARGETS);
    // The targets are targets, not features.
    const roles = Object.fromEntries(r.schema.columns.map((c) => [c.name, c.role]));
    expect(roles).toEqual({ chins: 'feature', situps: 'feature', jumps: 'feature', weight: 'target', waist: 'target', pulse: 'target' });
    expect(r.pipeline.features).toEqual(['chins', 'situps', 'jumps']);
    // Predictions are rows × 3.
    const x = { rows: 1, cols: 3, data: new Float64Array([0, 0, 0]) };
    expect(r.model.predict(x).length).toBe(3);
    expect(Number.isFinite((r.report.metrics as Record<string, number>)['rmse']!)).toBe(true);
  });

  it('with a fixed ridge, equals single-target training on the first target (same folds, same coefficients)', async () => {
    const t = await readTable(LINNERUD);
    const params = { linear: { alpha: 1 } };
    const multi = await trainTable(t, { target: TARGETS, model: 'linear', params, cv: 4, seed: 3 });
    // The other targets would be features of a single-target run: leave them out.
    const single = await trainTable(t, { target: 'weight', ignore: ['waist', 'pulse'], model: 'linear', params, cv: 4, seed: 3 });
    expect(multi.cv.outputs!['weight']).toEqual(single.cv.metrics);
    // The pooled report is the first output's. Linnerud's 20 rows are too few for stored plots
    // (PLOT_MIN_ROWS: a grid cell would be a record): neither run keeps one.
    const { importance: _mi, regression: multiPlots, ...multiReport } = multi.report;
    const { importance: _si, regression: singlePlots, ...singleReport } = single.report;
    expect(multiReport).toEqual(singleReport);
    expect([multiPlots, singlePlots]).toEqual([undefined, undefined]);
    // Importance of a multi-output model: the drop of the mean R² over its outputs.
    expect(multi.report.importance!.metric).toBe('r2');
    expect(multi.report.importance!.features.map((f) => f.feature).sort()).toEqual(['chins', 'jumps', 'situps']);
    const wm = multi.model.toState().weights as LinearWeights;
    const ws = single.model.toState().weights as LinearWeights;
    expect(wm.coef.slice(0, 3)).toEqual(ws.coef);
    expect(wm.intercept[0]).toBe(ws.intercept[0]);
    expect(single.cv.outputs).toBeUndefined();
    expect(single.leaderboard[0]!.outputs).toBeUndefined();
  });

  it("agrees with scikit-learn's Ridge on the standardized linnerud features, end to end", async () => {
    const golden = JSON.parse(readFileSync(new URL('../../test/fixtures/golden/ridge-multioutput.json', import.meta.url), 'utf8')) as {
      ridge: Record<string, { coef: number[]; intercept: number[] }>;
    };
    const t = await readTable(LINNERUD);
    for (const alpha of ['1.0', '10.0']) {
      const r = await trainTable(t, { target: TARGETS, model: 'linear', params: { linear: { alpha } }, cv: 2 });
      const w = r.model.toState().weights as LinearWeights;
      const g = golden.ridge[alpha]!;
      w.coef.forEach((v, i) => expect(Math.abs(v - g.coef[i]!)).toBeLessThan(1e-8));
      w.intercept.forEach((v, i) => expect(Math.abs(v - g.intercept[i]!)).toBeLessThan(1e-8));
    }
  });

  it('leaves out rows without every target, and runs nested CV and an explicit gbdt', async () => {
    const rows: Cell[][] = [];
    for (let i = 0; i < 60; i++) {
      const a = (i * 7) % 13;
      const b = (i * 5) % 11;
      rows.push([a, b, i === 4 ? null : 2 * a + b + (i % 3), i === 9 ? null : a - 3 * b, (i * 3) % 17]);
    }
    const t = tableFromRows(['a', 'b', 'y1', 'y2', 'y3'], rows, { source: 'three.csv' });
    const r = await trainTable(t, { target: ['y1', 'y2', 'y3'], cv: 3, nested: true });
    expect(r.rows.used).toBe(58);
    expect(r.warnings.filter((w) => w.code === 'missing_target').map((w) => w.column)).toEqual(['y1', 'y2']);
    expect(r.nested!.folds).toBe(3);
    expect(Object.keys(r.cv.outputs!)).toEqual(['y1', 'y2', 'y3']);
    const g = await trainTable(t, { target: ['y2', 'y1'], model: 'gbdt', params: { gbdt: { trees: 20 } }, cv: 3 });
    expect(g.model.family).toBe('gbdt');
    expect(g.model.nOutputs).toBe(2);
    expect(Object.keys(g.cv.outputs!)).toEqual(['y2', 'y1']);
    expect(g.cv.outputs!['y2']!['r2']!.mean).toBeGreaterThan(0.5);
  });

  it('trains an MLP with one linear unit per output', async () => {
    const t = await readTable(LINNERUD);
    const r = await trainTable(t, { target: TARGETS, model: 'mlp', params: { mlp: { epochs: 3, units: '4' } }, cv: 2 });
    expect(r.model.nOutputs).toBe(3);
    expect(r.model.predict({ rows: 2, cols: 3, data: new Float64Array(6) }).length).toBe(6);
    expect(Object.keys(r.cv.outputs!)).toEqual(TARGETS);
    expect(Number.isFinite(r.cv.metrics['rmse']!.mean)).toBe(true);
  });

  it('refuses a label among several targets, a classification task, a family that learns one output and a target twice', async () => {
    const rows: Cell[][] = Array.from({ length: 30 }, (_, i) => [i % 7, i * 1.5, i % 2 ? 'yes' : 'no']);
    const labelled = tableFromRows(['x', 'y', 'label'], rows, { source: 'labels.csv' });
    await usageError({ target: ['y', 'label'] }, /"label" holds labels \(binary\); several targets must all be numeric/, labelled);
    await usageError({ target: TARGETS, task: 'binary' }, /--task binary: several targets/);
    await usageError({ target: TARGETS, model: 'logistic' }, /cannot learn a regression task/);
    await usageError({ target: ['weight', 'weight'] }, /names "weight" twice/);
    await usageError({ target: [] }, /names no column/);
    await usageError({ target: TARGETS, ignore: ['pulse'] }, /cannot drop the target column "pulse"/);
    await usageError({ target: TARGETS, group: 'waist' }, /cannot also be the group column/);
  });
});
