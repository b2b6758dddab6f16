import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix, type Progress } from '../../core/index.js';
import type { ModelState, TrainData } from '../types.js';
import { toOnnx } from '../onnx/index.js';
import { gbdt, type GbdtModel, type GbdtWeights, type Tree } from './index.js';

// ---- local helpers (src/eval is written elsewhere; tests here must not depend on it) ----

function auroc(y: ArrayLike<number>, s: ArrayLike<number>): number {
  const idx = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => s[a]! - s[b]!);
  let rankSum = 0;
  let np = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && s[idx[j + 1]!] === s[idx[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let q = i; q <= j; q++) if (y[idx[q]!] === 1) (rankSum += rank), np++;
    i = j + 1;
  }
  const nn = y.length - np;
  return (rankSum - (np * (np + 1)) / 2) / (np * nn);
}

function r2(y: Float64Array, p: Float64Array): number {
  const mean = y.reduce((a, b) => a + b, 0) / y.length;
  let sse = 0;
  let sst = 0;
  for (let i = 0; i < y.length; i++) {
    sse += (y[i]! - p[i]!) ** 2;
    sst += (y[i]! - mean) ** 2;
  }
  return 1 - sse / sst;
}

/** Plain logistic regression by gradient descent: the linear baseline gbdt must beat. */
function logisticScores(train: TrainData, test: Matrix): Float64Array {
  const { x, y } = train;
  const w = new Float64Array(x.cols + 1);
  for (let it = 0; it < 500; it++) {
    const g = new Float64Array(x.cols + 1);
    for (let i = 0; i < x.rows; i++) {
      let z = w[x.cols]!;
      for (let j = 0; j < x.cols; j++) z += w[j]! * x.data[i * x.cols + j]!;
      const e = 1 / (1 + Math.exp(-z)) - y[i]!;
      for (let j = 0; j < x.cols; j++) g[j] += e * x.data[i * x.cols + j]!;
      g[x.cols] += e;
    }
    for (let j = 0; j <= x.cols; j++) w[j] -= (0.5 * g[j]!) / x.rows;
  }
  const out = new Float64Array(test.rows);
  for (let i = 0; i < test.rows; i++) {
    let z = w[test.cols]!;
    for (let j = 0; j < test.cols; j++) z += w[j]! * test.data[i * test.cols + j]!;
    out[i] = z;
  }
  return out;
}

type Kind = 'binary' | 'multiclass' | 'regression';

/** Seeded synthetic tables with nonlinear effects and interactions, plus noise features. */
function synth(kind: Kind, n: number, nf: number, seed: number): { x: Matrix; y: Float64Array } {
  const rng = new Rng(seed);
  const x: Matrix = { rows: n, cols: nf, data: new Float64Array(n * nf) };
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < nf; j++) x.data[i * nf + j] = rng.normal();
    const [a, b, c, d] = [0, 1, 2, 3].map((j) => x.data[i * nf + j]!) as [number, number, number, number];
    if (kind === 'binary') {
      const z = 2 * Math.sin(2 * a) + 2 * b * c + (d > 0.5 ? 1.5 : -1) + (Math.abs(a) > 1.5 ? -2 : 0);
      y[i] = rng.next() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0;
    } else if (kind === 'regression') {
      y[i] = 3 * a * b + 2 * Math.sin(2 * c) + (d > 0 ? 1 : -1) + 0.3 * rng.normal();
    } else {
      const s = [a * b, Math.sin(2 * c) + 0.3, d > 0.3 ? 1.2 : -0.5];
      y[i] = s.indexOf(Math.max(...s));
    }
  }
  return { x, y };
}

function split(x: Matrix, y: Float64Array, nTrain: number) {
  const c = x.cols;
  return {
    train: { x: { rows: nTrain, cols: c, data: x.data.slice(0, nTrain * c) }, y: y.slice(0, nTrain) },
    test: { x: { rows: x.rows - nTrain, cols: c, data: x.data.slice(nTrain * c) }, y: y.slice(nTrain) },
  };
}

function positive(p: Float64Array): Float64Array {
  const out = new Float64Array(p.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = p[i * 2 + 1]!;
  return out;
}

async function expectError(p: Promise<unknown> | (() => unknown), code: string, text?: string | RegExp): Promise<MedfitError> {
  let caught: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(MedfitError);
  const e = caught as MedfitError;
  expect(e.code).toBe(code);
  if (text) expect(e.message).toMatch(text);
  return e;
}

// ---- tests ----

describe('gbdt family', () => {
  it('declares its name and tasks', () => {
    expect(gbdt.name).toBe('gbdt');
    expect([...gbdt.tasks].sort()).toEqual(['binary', 'multiclass', 'regression']);
  });

  it('learns a nonlinear binary problem far better than logistic regression', async () => {
    const { x, y } = synth('binary', 1500, 10, 1);
    const { train, test } = split(x, y, 1000);
    const data: TrainData = { ...train, task: 'binary', nClasses: 2 };
    const model = await gbdt.train(data, gbdt.parseParams({}, 'binary', 1000), { seed: 7 });
    const p = model.predict(test.x);
    expect(p.length).toBe(test.x.rows * 2);
    for (let i = 0; i < test.x.rows; i++) expect(p[i * 2]! + p[i * 2 + 1]!).toBeCloseTo(1, 12);
    const aucG = auroc(test.y, positive(p));
    const aucL = auroc(test.y, logisticScores(data, test.x));
    expect(aucG).toBeGreaterThan(0.84);
    expect(aucG).toBeGreaterThan(aucL + 0.1);
  });

  it('fits a regression with interactions (high R²)', async () => {
    const { x, y } = synth('regression', 2000, 8, 2);
    const { train, test } = split(x, y, 1500);
    const params = gbdt.parseParams({ trees: 400, learning_rate: 0.1 }, 'regression', 1500);
    const model = await gbdt.train({ ...train, task: 'regression', nClasses: 1 }, params, { seed: 1 });
    const p = model.predict(test.x);
    expect(p.length).toBe(test.x.rows);
    expect(r2(test.y, p)).toBeGreaterThan(0.85);
  });

  it('learns multiclass with one tree per class per round', async () => {
    const { x, y } = synth('multiclass', 1500, 6, 3);
    const { train, test } = split(x, y, 1000);
    const params = gbdt.parseParams({ trees: 100 }, 'multiclass', 1000);
    const model = (await gbdt.train({ ...train, task: 'multiclass', nClasses: 3 }, params, { seed: 1 })) as GbdtModel;
    expect(model.weights.trees.length).toBe(100 * 3);
    expect(model.weights.trees.map((t) => t.target).slice(0, 6)).toEqual([0, 1, 2, 0, 1, 2]);
    const p = model.predict(test.x);
    expect(p.length).toBe(test.x.rows * 3);
    let correct = 0;
    for (let i = 0; i < test.x.rows; i++) {
      const row = Array.from(p.subarray(i * 3, i * 3 + 3));
      expect(row.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
      if (row.indexOf(Math.max(...row)) === test.y[i]) correct++;
    }
    expect(correct / test.x.rows).toBeGreaterThan(0.85);
  });

  it('stops early on the validation rows and keeps the best iteration', async () => {
    const { x, y } = synth('binary', 900, 10, 4);
    const { train, test } = split(x, y, 600);
    const params = gbdt.parseParams({ trees: 2000, learning_rate: 0.3, max_depth: 4, early_stopping_rounds: 10 }, 'binary', 600);
    const progress: Progress[] = [];
    const model = (await gbdt.train(
      { ...train, task: 'binary', nClasses: 2, valid: test },
      params,
      { seed: 1, onProgress: (p) => progress.push(p) },
    )) as GbdtModel;
    const w = model.weights;
    expect(w.rounds).toBeGreaterThan(0);
    expect(w.rounds).toBeLessThan(200);
    expect(w.trees.length).toBe(w.rounds);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((p) => p.stage === 'gbdt' && Number.isFinite(p.loss) && Number.isFinite(p.valLoss))).toBe(true);
    // The last report covers the stopping round, past the kept best by early_stopping_rounds.
    expect(progress.at(-1)!.epoch).toBe(w.rounds + 10);
    // Without validation rows the same parameters run every round.
    const full = (await gbdt.train({ ...train, task: 'binary', nClasses: 2 }, { ...params, trees: 50 }, { seed: 1 })) as GbdtModel;
    expect(full.weights.rounds).toBe(50);
  });

  it('reports progress about every 10 rounds with a rising fraction', async () => {
    const { x, y } = synth('regression', 300, 4, 5);
    const progress: Progress[] = [];
    await gbdt.train({ x, y, task: 'regression', nClasses: 1 }, gbdt.parseParams({ trees: 35 }, 'regression', 300), {
      seed: 1,
      onProgress: (p) => progress.push(p),
    });
    expect(progress.map((p) => p.epoch)).toEqual([10, 20, 30, 35]);
    expect(progress.at(-1)!.fraction).toBe(1);
    expect(progress[0]!.loss!).toBeGreaterThan(progress.at(-1)!.loss!);
  });

  it.each(['binary', 'multiclass', 'regression'] as const)('round-trips %s through JSON with identical predictions', async (task) => {
    const { x, y } = synth(task, 500, 6, 6);
    const nClasses = task === 'binary' ? 2 : task === 'multiclass' ? 3 : 1;
    const params = gbdt.parseParams({ trees: 30, subsample: 0.7 }, task, 500);
    const model = await gbdt.train({ x, y, task, nClasses }, params, { seed: 3 });
    const state = JSON.parse(JSON.stringify(model.toState())) as ModelState;
    expect(state.family).toBe('gbdt');
    const loaded = gbdt.load(state);
    expect(loaded.task).toBe(task);
    expect(loaded.nClasses).toBe(nClasses);
    expect(loaded.nFeatures).toBe(6);
    expect(loaded.params).toEqual(params);
    expect(Array.from(loaded.predict(x))).toEqual(Array.from(model.predict(x)));
  });

  it('is deterministic for a seed, and the seed drives subsampling', async () => {
    const { x, y } = synth('binary', 400, 8, 7);
    const params = gbdt.parseParams({ trees: 20, subsample: 0.7, colsample: 0.5 }, 'binary', 400);
    const data: TrainData = { x, y, task: 'binary', nClasses: 2 };
    const a = await gbdt.train(data, params, { seed: 11 });
    const b = await gbdt.train(data, params, { seed: 11 });
    const c = await gbdt.train(data, params, { seed: 12 });
    expect(Array.from(a.predict(x))).toEqual(Array.from(b.predict(x)));
    expect(Array.from(a.predict(x))).not.toEqual(Array.from(c.predict(x)));
  });

  it('stores float32 thresholds that route float32 inputs exactly as training did', async () => {
    // Values that are not float32-exact, with near-ties that collapse under Math.fround.
    const rng = new Rng(8);
    const n = 600;
    const x: Matrix = { rows: n, cols: 3, data: new Float64Array(n * 3) };
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 3; j++) x.data[i * 3 + j] = 0.1 + Math.round(rng.next() * 300) * 1e-3 + (rng.next() < 0.5 ? 1e-12 : 0);
      y[i] = x.data[i * 3]! + 2 * x.data[i * 3 + 1]! > 0.55 ? 1 : 0;
    }
    const model = (await gbdt.train({ x, y, task: 'binary', nClasses: 2 }, gbdt.parseParams({ trees: 40 }, 'binary', n), { seed: 1 })) as GbdtModel;
    const seen = [0, 1, 2].map((f) => new Set(Array.from({ length: n }, (_, i) => Math.fround(x.data[i * 3 + f]!))));
    let splits = 0;
    for (const t of model.weights.trees) {
      t.feature.forEach((f, j) => {
        if (f < 0) return;
        splits++;
        expect(Math.fround(t.threshold[j]!)).toBe(t.threshold[j]);
        // The threshold is a training value (the largest in the left bin), so `<=` is exact.
        expect(seen[f]!.has(t.threshold[j]!)).toBe(true);
      });
    }
    expect(splits).toBeGreaterThan(0);
    // What ONNX Runtime sees: the inputs cast to float32. Routing must not change.
    const x32: Matrix = { ...x, data: Float64Array.from(new Float32Array(x.data)) };
    expect(Array.from(model.predict(x32))).toEqual(Array.from(model.predict(x)));
  });

  it('routes NaN inputs left without crashing', async () => {
    const { x, y } = synth('binary', 400, 4, 9);
    const model = (await gbdt.train({ x, y, task: 'binary', nClasses: 2 }, gbdt.parseParams({ trees: 10 }, 'binary', 400), { seed: 1 })) as GbdtModel;
    const xn: Matrix = { rows: 1, cols: 4, data: new Float64Array([NaN, NaN, NaN, NaN]) };
    // Expected: every tree's leftmost path.
    let margin = model.weights.baseScore[0]!;
    for (const t of model.weights.trees) {
      let node = 0;
      while (t.feature[node]! >= 0) node = t.left[node]!;
      margin += t.value[node]!;
    }
    const p = model.predict(xn);
    expect(p[1]).toBeCloseTo(1 / (1 + Math.exp(-margin)), 12);
  });

  it('trains on NaN in the training data (binned left) and on a single-class target', async () => {
    const { x, y } = synth('binary', 300, 4, 10);
    for (let i = 0; i < 300; i += 7) x.data[i * 4] = NaN;
    const m1 = await gbdt.train({ x, y, task: 'binary', nClasses: 2 }, gbdt.parseParams({ trees: 10 }, 'binary', 300), { seed: 1 });
    expect(Array.from(m1.predict(x)).every(Number.isFinite)).toBe(true);
    const m2 = await gbdt.train({ x, y: new Float64Array(300), task: 'binary', nClasses: 2 }, gbdt.parseParams({ trees: 10 }, 'binary', 300), { seed: 1 });
    const p = m2.predict(x);
    expect(p[1]!).toBeLessThan(0.01);
    expect(() => JSON.stringify(m2.toState())).not.toThrow();
  });

  it('honours sample weights', async () => {
    const { x, y } = synth('binary', 600, 6, 11);
    const params = gbdt.parseParams({ trees: 30 }, 'binary', 600);
    const plain = await gbdt.train({ x, y, task: 'binary', nClasses: 2 }, params, { seed: 1 });
    const weights = Float64Array.from(y, (v) => (v === 1 ? 5 : 1));
    const weighted = await gbdt.train({ x, y, weights, task: 'binary', nClasses: 2 }, params, { seed: 1 });
    const mean = (p: Float64Array) => positive(p).reduce((a, b) => a + b, 0) / (p.length / 2);
    expect(mean(weighted.predict(x))).toBeGreaterThan(mean(plain.predict(x)) + 0.1);
  });

  it('throws MEDFIT_ERR_CANCELLED when the signal is aborted', async () => {
    const { x, y } = synth('binary', 300, 4, 12);
    const params = gbdt.parseParams({ trees: 500 }, 'binary', 300);
    const data: TrainData = { x, y, task: 'binary', nClasses: 2 };
    const before = new AbortController();
    before.abort();
    await expectError(gbdt.train(data, params, { seed: 1, signal: before.signal }), 'MEDFIT_ERR_CANCELLED', /training/);
    const during = new AbortController();
    const seen: number[] = [];
    const onProgress = (p: Progress) => {
      seen.push(p.epoch!);
      if (p.epoch === 20) during.abort();
    };
    await expectError(gbdt.train(data, params, { seed: 1, signal: during.signal, onProgress }), 'MEDFIT_ERR_CANCELLED');
    expect(Math.max(...seen)).toBe(20);
  });
});

describe('gbdt parameters', () => {
  it('has defaults for every task that parse cleanly', () => {
    for (const task of gbdt.tasks) {
      const d = gbdt.defaults(task, 569);
      expect(gbdt.parseParams({}, task, 569)).toEqual(d);
      expect(d.trees).toBe(200);
      expect(d.max_depth).toBe(3);
    }
    // The leaf-size floor shrinks on tiny tables.
    expect(gbdt.defaults('binary', 50).min_samples_leaf).toBe(1);
    expect(gbdt.defaults('binary', 100_000).min_samples_leaf).toBe(20);
  });

  it('coerces CLI strings', () => {
    const p = gbdt.parseParams({ trees: '300', learning_rate: '0.1', max_bins: 64 }, 'binary', 500);
    expect(p.trees).toBe(300);
    expect(p.learning_rate).toBe(0.1);
    expect(p.max_bins).toBe(64);
  });

  it('rejects a bad value naming gbdt.trees', async () => {
    const e = await expectError(() => gbdt.parseParams({ trees: -1 }, 'binary', 500), 'MEDFIT_ERR_BAD_PARAM', /gbdt\.trees/);
    expect(e.details[0]!.pointer).toBe('gbdt.trees');
    await expectError(() => gbdt.parseParams({ trees: 2.5 }, 'binary', 500), 'MEDFIT_ERR_BAD_PARAM', /gbdt\.trees/);
    await expectError(() => gbdt.parseParams({ max_bins: 256 }, 'binary', 500), 'MEDFIT_ERR_BAD_PARAM', /gbdt\.max_bins/);
    await expectError(() => gbdt.parseParams({ subsample: 0 }, 'binary', 500), 'MEDFIT_ERR_BAD_PARAM', /gbdt\.subsample/);
  });

  it('rejects an unknown key', async () => {
    await expectError(() => gbdt.parseParams({ tress: 10 }, 'binary', 500), 'MEDFIT_ERR_BAD_PARAM', /gbdt\.tress: unknown parameter/);
  });
});

describe('gbdt load', () => {
  async function state(): Promise<ModelState> {
    const { x, y } = synth('binary', 200, 4, 13);
    const m = await gbdt.train({ x, y, task: 'binary', nClasses: 2 }, gbdt.parseParams({ trees: 3 }, 'binary', 200), { seed: 1 });
    return JSON.parse(JSON.stringify(m.toState())) as ModelState;
  }
  const weights = (s: ModelState) => s.weights as GbdtWeights;

  it.each([
    ['a different family', (s: ModelState) => void (s.family = 'mlp'), /family "mlp"/],
    ['nClasses that do not fit the task', (s: ModelState) => void (s.nClasses = 3), /nClasses/],
    ['no weights', (s: ModelState) => void (s.weights = null), /weights/],
    ['an unknown format', (s: ModelState) => void (weights(s).format = 2 as 1), /format 2/],
    ['a wrong objective', (s: ModelState) => void (weights(s).objective = 'softmax'), /objective/],
    ['a missing base score', (s: ModelState) => void (weights(s).baseScore = []), /baseScore/],
    ['a tree count that disagrees with rounds', (s: ModelState) => void weights(s).trees.pop(), /trees must be/],
    ['a cycle', (s: ModelState) => void (weights(s).trees[0]!.left[0] = 0), /child ids/],
    ['a feature out of range', (s: ModelState) => void (weights(s).trees[0]!.feature[0] = 9), /feature must be/],
    ['a threshold that is not float32', (s: ModelState) => void (weights(s).trees[0]!.threshold[0] = 0.1), /float32/],
    ['ragged arrays', (s: ModelState) => void weights(s).trees[1]!.value.pop(), /value has/],
    ['a non-numeric value', (s: ModelState) => void ((weights(s).trees[2]!.value as unknown[])[1] = 'x'), /finite numbers/],
    ['a cover of the wrong length', (s: ModelState) => void weights(s).trees[0]!.cover!.pop(), /cover must be/],
    ['a negative cover', (s: ModelState) => void (weights(s).trees[1]!.cover![0] = -1), /cover must be/],
  ])('rejects %s with MEDFIT_ERR_MANIFEST', async (_what, mutate, text) => {
    const s = await state();
    expect(weights(s).trees[0]!.feature[0]).toBeGreaterThanOrEqual(0); // the root splits
    mutate(s);
    await expectError(() => gbdt.load(s), 'MEDFIT_ERR_MANIFEST', text);
  });

  it('rejects rows with the wrong number of features at predict time', async () => {
    const m = gbdt.load(await state());
    await expectError(() => m.predict({ rows: 1, cols: 3, data: new Float64Array(3) }), 'MEDFIT_ERR_BAD_DATA', /4 feature columns/);
  });
});

describe('gbdt multi-output regression', () => {
  /** Three targets from the same features: the synth regression, a sine, and a step with noise. */
  function synth3(n: number, nf: number, seed: number): { x: Matrix; y: Float64Array; cols: Float64Array[] } {
    const base = synth('regression', n, nf, seed);
    const rng = new Rng(seed + 100);
    const k = 3;
    const y = new Float64Array(n * k);
    const cols = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    for (let i = 0; i < n; i++) {
      const r = base.x.data.subarray(i * nf, (i + 1) * nf);
      const v = [base.y[i]!, 50 + 10 * Math.sin(2 * r[1]!) + rng.normal(), r[2]! > 0 ? 5 + 0.1 * rng.normal() : -5 + r[0]!];
      for (let c = 0; c < k; c++) {
        y[i * k + c] = v[c]!;
        cols[c]![i] = v[c]!;
      }
    }
    return { x: base.x, y, cols };
  }

  it('declares multiOutput', () => {
    expect(gbdt.multiOutput).toBe(true);
  });

  it('grows one ensemble per output: each equals a single-output run on that target (with subsampling)', async () => {
    const { x, y, cols } = synth3(400, 6, 21);
    const params = gbdt.parseParams({ trees: 25, subsample: 0.7, colsample: 0.5 }, 'regression', 400);
    const multi = (await gbdt.train({ x, y, task: 'regression', nClasses: 1, nOutputs: 3 }, params, { seed: 4 })) as GbdtModel;
    expect(multi.nOutputs).toBe(3);
    expect(multi.weights.baseScore.length).toBe(3);
    expect(multi.weights.rounds).toBe(25);
    expect(multi.weights.trees.length).toBe(75);
    expect(multi.weights.trees.slice(0, 6).map((t) => t.target)).toEqual([0, 1, 2, 0, 1, 2]);
    const p = multi.predict(x);
    expect(p.length).toBe(400 * 3);
    for (let c = 0; c < 3; c++) {
      const single = (await gbdt.train({ x, y: cols[c]!, task: 'regression', nClasses: 1 }, params, { seed: 4 })) as GbdtModel;
      const mine = multi.weights.trees.filter((t) => t.target === c).map((t) => ({ ...t, target: 0 }));
      expect(mine).toEqual(single.weights.trees);
      expect(multi.weights.baseScore[c]).toBe(single.weights.baseScore[0]);
      const ps = single.predict(x);
      expect(Array.from({ length: 400 }, (_, i) => p[i * 3 + c]!)).toEqual(Array.from(ps));
    }
  });

  it('learns every output (R² per output), round-trips, and keeps a single-output state as it was', async () => {
    const { x, y, cols } = synth3(1200, 6, 22);
    // The first 900 rows train, the last 300 score (three targets per row).
    const train = { x: { rows: 900, cols: 6, data: x.data.slice(0, 900 * 6) } };
    const test = { x: { rows: 300, cols: 6, data: x.data.slice(900 * 6) } };
    const ytr = y.slice(0, 900 * 3);
    const params = gbdt.parseParams({ trees: 400, learning_rate: 0.1 }, 'regression', 900);
    const model = await gbdt.train({ x: train.x, y: ytr, task: 'regression', nClasses: 1, nOutputs: 3 }, params, { seed: 1 });
    const p = model.predict(test.x);
    for (let c = 0; c < 3; c++) {
      const pc = Float64Array.from({ length: 300 }, (_, i) => p[i * 3 + c]!);
      expect(r2(cols[c]!.slice(900), pc)).toBeGreaterThan(0.75);
    }
    const state = JSON.parse(JSON.stringify(model.toState())) as ModelState;
    expect(state.nOutputs).toBe(3);
    const loaded = gbdt.load(state);
    expect(loaded.nOutputs).toBe(3);
    expect(Array.from(loaded.predict(test.x))).toEqual(Array.from(p));
    const one = await gbdt.train({ x: train.x, y: cols[0]!.slice(0, 900), task: 'regression', nClasses: 1 }, { ...params, trees: 5 }, { seed: 1 });
    expect(one.nOutputs).toBeUndefined();
    expect(Object.keys(one.toState())).toEqual(['family', 'task', 'nClasses', 'nFeatures', 'params', 'weights']);
  });

  it('stops early on the mean validation loss over the outputs, with rounds shared by all outputs', async () => {
    const { x, y } = synth3(900, 6, 23);
    const params = gbdt.parseParams({ trees: 2000, learning_rate: 0.3, max_depth: 4, early_stopping_rounds: 10 }, 'regression', 600);
    const tr = { rows: 600, cols: 6, data: x.data.slice(0, 600 * 6) };
    const va = { rows: 300, cols: 6, data: x.data.slice(600 * 6) };
    const progress: Progress[] = [];
    const model = (await gbdt.train(
      { x: tr, y: y.slice(0, 600 * 3), task: 'regression', nClasses: 1, nOutputs: 3, valid: { x: va, y: y.slice(600 * 3) } },
      params,
      { seed: 1, onProgress: (p) => progress.push(p) },
    )) as GbdtModel;
    const w = model.weights;
    expect(w.rounds).toBeGreaterThan(0);
    expect(w.rounds).toBeLessThan(2000);
    expect(w.trees.length).toBe(w.rounds * 3);
    expect(progress.at(-1)!.epoch).toBe(w.rounds + 10);
    expect(progress.every((p) => Number.isFinite(p.loss) && Number.isFinite(p.valLoss))).toBe(true);
  });

  it('refuses targets and states of the wrong shape', async () => {
    const { x, y } = synth3(100, 4, 24);
    const params = gbdt.parseParams({ trees: 3 }, 'regression', 100);
    await expectError(gbdt.train({ x, y, task: 'regression', nClasses: 1, nOutputs: 2 }, params, { seed: 1 }), 'MEDFIT_ERR_BAD_DATA', /100 rows × 2 outputs but 300 targets/);
    await expectError(gbdt.train({ x, y: y.slice(0, 200), task: 'binary', nClasses: 2, nOutputs: 2 }, params, { seed: 1 }), 'MEDFIT_ERR_BAD_DATA', /need a regression task/);
    const bad = y.slice();
    bad[4] = NaN;
    await expectError(gbdt.train({ x, y: bad, task: 'regression', nClasses: 1, nOutputs: 3 }, params, { seed: 1 }), 'MEDFIT_ERR_BAD_DATA', /row 2, output 2,/);
    const m = await gbdt.train({ x, y, task: 'regression', nClasses: 1, nOutputs: 3 }, params, { seed: 1 });
    const state = JSON.parse(JSON.stringify(m.toState())) as ModelState;
    await expectError(() => gbdt.load({ ...state, nOutputs: 2 }), 'MEDFIT_ERR_MANIFEST', /baseScore must be 2/);
    await expectError(() => gbdt.load({ ...state, nOutputs: 1.5 }), 'MEDFIT_ERR_MANIFEST', /nOutputs 1.5/);
    const { nOutputs: _n, ...withoutOutputs } = state;
    await expectError(() => gbdt.load(withoutOutputs), 'MEDFIT_ERR_MANIFEST', /baseScore must be 1/);
    await expectError(() => gbdt.load({ ...state, task: 'binary', nClasses: 2 }), 'MEDFIT_ERR_MANIFEST', /nOutputs 3 does not fit task binary/);
  });
});

describe('gbdt node covers (for TreeSHAP)', () => {
  /** Rows reaching each node, by the stored float32 rule (NaN left): what explain.ts counts. */
  function counted(t: Tree, x: Matrix): number[] {
    const cover = new Array<number>(t.feature.length).fill(0);
    for (let r = 0; r < x.rows; r++) {
      let n = 0;
      cover[0]!++;
      while (t.feature[n]! >= 0) {
        const v = x.data[r * x.cols + t.feature[n]!]!;
        n = Math.fround(v) <= t.threshold[n]! || Number.isNaN(v) ? t.left[n]! : t.right[n]!;
        cover[n]!++;
      }
    }
    return cover;
  }

  it('records every training row reaching each node, also with row subsampling, NaNs and several classes', async () => {
    const { x, y } = synth('multiclass', 300, 5, 21);
    for (let i = 0; i < x.data.length; i += 7) x.data[i] = NaN;
    const m = (await gbdt.train({ x, y, task: 'multiclass', nClasses: 3 }, gbdt.parseParams({ trees: 6, subsample: 0.7, max_depth: 4 }, 'multiclass', 300), { seed: 4 })) as GbdtModel;
    for (const t of m.weights.trees) {
      expect(t.cover).toEqual(counted(t, x));
      expect(t.cover![0]).toBe(300);
    }
  });

  it('round-trips covers through the saved state; weights without covers still load; ONNX is unchanged by them', async () => {
    const { x, y } = synth('binary', 200, 4, 13);
    const m = (await gbdt.train({ x, y, task: 'binary', nClasses: 2 }, gbdt.parseParams({ trees: 5 }, 'binary', 200), { seed: 1 })) as GbdtModel;
    const state = JSON.parse(JSON.stringify(m.toState())) as ModelState;
    const back = gbdt.load(state) as GbdtModel;
    expect(back.weights.trees.map((t) => t.cover)).toEqual(m.weights.trees.map((t) => t.cover));
    expect(Array.from(back.predict(x))).toEqual(Array.from(m.predict(x)));
    // An artifact saved before covers existed: same trees, no cover arrays.
    const old = JSON.parse(JSON.stringify(state)) as ModelState;
    for (const t of (old.weights as GbdtWeights).trees) delete t.cover;
    const legacy = gbdt.load(old) as GbdtModel;
    expect(legacy.weights.trees.every((t) => t.cover === undefined)).toBe(true);
    expect(Array.from(legacy.predict(x))).toEqual(Array.from(m.predict(x)));
    expect(Buffer.from(toOnnx(legacy)).equals(Buffer.from(toOnnx(m)))).toBe(true);
  });
});
