import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix, type Task } from '../core/index.js';
import { defaultPermutations, explain, explainAsync, explainCost, treeCover, type Explanation } from './explain.js';
import { gbdt, type GbdtModel, type GbdtWeights, type Tree } from './gbdt/index.js';
import { linear, logistic } from './linear/index.js';
import type { LinearWeights } from './linear/index.js';
import { mlp, type MlpLayer, type MlpModel } from './mlp/index.js';
import type { TrainedModel } from './types.js';

/** Seeded table with interactions; `missing` is the share of cells set to NaN. */
function synth(task: Task, n: number, nf: number, seed: number, missing = 0, nOutputs = 1): { x: Matrix; y: Float64Array } {
  const rng = new Rng(seed);
  const x: Matrix = { rows: n, cols: nf, data: new Float64Array(n * nf) };
  const y = new Float64Array(n * nOutputs);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < nf; j++) x.data[i * nf + j] = rng.normal();
    const v = (j: number) => x.data[i * nf + (j % nf)]!;
    const [a, b, c] = [v(0), v(1), v(2)];
    const z = 1.5 * a * b + Math.sin(2 * c) + (a > 0.3 ? 1 : -0.5);
    if (task === 'binary') y[i] = rng.next() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0;
    else if (task === 'multiclass') {
      const s = [a * b, Math.sin(2 * c) + 0.3, v(3) > 0.3 ? 1.2 : -0.5];
      y[i] = s.indexOf(Math.max(...s));
    } else for (let o = 0; o < nOutputs; o++) y[i * nOutputs + o] = (o + 1) * z - o * v(3) + 0.2 * rng.normal();
    for (let j = 0; j < nf; j++) if (missing > 0 && rng.next() < missing) x.data[i * nf + j] = NaN;
  }
  return { x, y };
}

function linearMargin(w: LinearWeights, x: Matrix): Float64Array {
  const out = new Float64Array(x.rows * w.outputs);
  for (let r = 0; r < x.rows; r++)
    for (let o = 0; o < w.outputs; o++) {
      let s = w.intercept[o]!;
      for (let j = 0; j < x.cols; j++) s += w.coef[o * x.cols + j]! * x.data[r * x.cols + j]!;
      out[r * w.outputs + o] = s;
    }
  return out;
}

/** base + Σ contributions = margin for every row and output. */
function expectAdditive(e: Explanation, margin: Float64Array, tol = 1e-9): number {
  const { rows, features, outputs } = e;
  expect(e.contributions.length).toBe(rows * features * outputs);
  expect(margin.length).toBe(rows * outputs);
  let worst = 0;
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < outputs; k++) {
      let s = e.base[k]!;
      for (let j = 0; j < features; j++) s += e.contributions[(r * features + j) * outputs + k]!;
      worst = Math.max(worst, Math.abs(s - margin[r * outputs + k]!));
    }
  expect(worst).toBeLessThan(tol);
  return worst;
}

// ---- brute force: exact Shapley values of the path-dependent conditional expectation ----

/** Node covers counted independently of explain.ts: route every background row. */
function fractions(t: Tree, bg: Matrix): number[] {
  const cover = new Array<number>(t.feature.length).fill(0);
  for (let r = 0; r < bg.rows; r++) {
    let n = 0;
    cover[0]!++;
    while (t.feature[n]! >= 0) {
      const v = bg.data[r * bg.cols + t.feature[n]!]!;
      n = Math.fround(v) <= t.threshold[n]! || Number.isNaN(v) ? t.left[n]! : t.right[n]!;
      cover[n]!++;
    }
  }
  const frac = new Array<number>(t.feature.length).fill(1);
  for (let n = 0; n < t.feature.length; n++) {
    if (t.feature[n]! < 0) continue;
    const c = cover[n]!;
    frac[t.left[n]!] = c > 0 ? cover[t.left[n]!]! / c : 0.5;
    frac[t.right[n]!] = c > 0 ? cover[t.right[n]!]! / c : 0.5;
  }
  return frac;
}

/** E[tree | x_S]: follow x on features in S (NaN left), else average the children by cover share. */
function condExp(t: Tree, frac: number[], x: Float64Array, off: number, inS: (f: number) => boolean, n = 0): number {
  const f = t.feature[n]!;
  if (f < 0) return t.value[n]!;
  if (inS(f)) {
    const v = x[off + f]!;
    return condExp(t, frac, x, off, inS, Math.fround(v) <= t.threshold[n]! || Number.isNaN(v) ? t.left[n]! : t.right[n]!);
  }
  return frac[t.left[n]!]! * condExp(t, frac, x, off, inS, t.left[n]!) + frac[t.right[n]!]! * condExp(t, frac, x, off, inS, t.right[n]!);
}

function bruteForce(w: GbdtWeights, x: Matrix, bg: Matrix): { base: number[]; phi: Float64Array } {
  const d = x.cols;
  const k = w.baseScore.length;
  const fr = w.trees.map((t) => fractions(t, bg));
  const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
  const phi = new Float64Array(x.rows * d * k);
  const value = (r: number, mask: number, out: number) => {
    let s = w.baseScore[out]!;
    w.trees.forEach((t, i) => {
      if (t.target === out) s += condExp(t, fr[i]!, x.data, r * d, (f) => (mask & (1 << f)) !== 0);
    });
    return s;
  };
  const base = Array.from({ length: k }, (_, o) => value(0, 0, o));
  for (let r = 0; r < x.rows; r++)
    for (let o = 0; o < k; o++) {
      const v = new Float64Array(1 << d);
      for (let m = 0; m < 1 << d; m++) v[m] = value(r, m, o);
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let m = 0; m < 1 << d; m++) {
          if (m & (1 << j)) continue;
          let size = 0;
          for (let b = m; b; b &= b - 1) size++;
          s += ((fact(size) * fact(d - size - 1)) / fact(d)) * (v[m | (1 << j)]! - v[m]!);
        }
        phi[(r * d + j) * k + o] = s;
      }
    }
  return { base, phi };
}

const rowsOf = (x: Matrix, from: number, to: number): Matrix => ({ rows: to - from, cols: x.cols, data: x.data.slice(from * x.cols, to * x.cols) });

async function trainGbdt(task: Task, nf: number, seed: number, params: Record<string, unknown>, missing = 0, nOutputs = 1) {
  const { x, y } = synth(task, 400, nf, seed, missing, nOutputs);
  const nClasses = task === 'binary' ? 2 : task === 'multiclass' ? 3 : 1;
  const p = { ...gbdt.parseParams(params, task, 400), early_stopping_rounds: 0 };
  const model = (await gbdt.train({ x, y, task, nClasses, ...(nOutputs > 1 ? { nOutputs } : {}) }, p, { seed })) as GbdtModel;
  return { model, x };
}

describe('explain: gbdt (path-dependent TreeSHAP)', () => {
  const cases: { task: Task; nOutputs: number; outputs: number; space: string }[] = [
    { task: 'binary', nOutputs: 1, outputs: 1, space: 'log-odds' },
    { task: 'multiclass', nOutputs: 1, outputs: 3, space: 'logit' },
    { task: 'regression', nOutputs: 1, outputs: 1, space: 'value' },
    { task: 'regression', nOutputs: 3, outputs: 3, space: 'value' },
  ];
  for (const c of cases) {
    it(`${c.task}${c.nOutputs > 1 ? ` (${c.nOutputs} outputs)` : ''}: base + Σ contributions = margin, with missing values`, async () => {
      const { model, x } = await trainGbdt(c.task, 8, 3, { trees: 40, max_depth: 4, learning_rate: 0.2, colsample: 1 }, 0.1, c.nOutputs);
      const test = synth(c.task, 60, 8, 99, 0.2, c.nOutputs).x;
      const e = explain(model, test, { background: x });
      expect(e.outputs).toBe(c.outputs);
      expect(e.space).toBe(c.space);
      expect(e.method).toBe('tree-shap');
      expect(e.reference).toBe('background');
      expectAdditive(e, model.predictMargin(test));
    });
  }

  for (const c of cases) {
    it(`${c.task}${c.nOutputs > 1 ? ` (${c.nOutputs} outputs)` : ''}: equals brute-force Shapley values (5 features, depth 3, NaNs)`, async () => {
      const { model, x } = await trainGbdt(c.task, 5, 11, { trees: 8, max_depth: 3, learning_rate: 0.3, colsample: 1 }, 0.15, c.nOutputs);
      const test = synth(c.task, 25, 5, 5, 0.25, c.nOutputs).x;
      const e = explain(model, test, { background: x });
      const bf = bruteForce(model.weights, test, x);
      for (let k = 0; k < e.outputs; k++) expect(Math.abs(e.base[k]! - bf.base[k]!)).toBeLessThan(1e-9);
      let worst = 0;
      for (let i = 0; i < bf.phi.length; i++) worst = Math.max(worst, Math.abs(e.contributions[i]! - bf.phi[i]!));
      expect(worst).toBeLessThan(1e-9);
      // Not trivially zero: some feature carries weight.
      expect(Math.max(...Array.from(e.contributions, Math.abs))).toBeGreaterThan(1e-3);
    });
  }

  it('equals brute force when the background leaves nodes uncovered and repeats features on a path', async () => {
    // Depth 5 on 3 features forces repeated features; a small skewed background leaves some
    // nodes with zero cover (each child then weighs 1/2).
    const { model, x } = await trainGbdt('regression', 3, 21, { trees: 6, max_depth: 5, learning_rate: 0.5, colsample: 1, min_samples_leaf: 2 }, 0.1);
    const bg = rowsOf(x, 0, 12);
    let uncoveredLeaves = 0;
    let uncoveredSplits = 0;
    let repeated = 0;
    for (const t of model.weights.trees) {
      const cover = treeCover(t, bg);
      t.feature.forEach((f, n) => {
        if (cover[n] === 0) f < 0 ? uncoveredLeaves++ : uncoveredSplits++;
      });
      // A feature split on again below itself (children have larger ids, so check descendants).
      const seen = (n: number, path: number[]): void => {
        const f = t.feature[n]!;
        if (f < 0) return;
        if (path.includes(f)) repeated++;
        seen(t.left[n]!, [...path, f]);
        seen(t.right[n]!, [...path, f]);
      };
      seen(0, []);
    }
    expect(uncoveredLeaves).toBeGreaterThan(0);
    expect(uncoveredSplits).toBeGreaterThan(0);
    expect(repeated).toBeGreaterThan(0);
    const test = synth('regression', 20, 3, 8, 0.2).x;
    const e = explain(model, test, { background: bg });
    const bf = bruteForce(model.weights, test, bg);
    expect(Math.abs(e.base[0]! - bf.base[0]!)).toBeLessThan(1e-9);
    for (let i = 0; i < bf.phi.length; i++) expect(Math.abs(e.contributions[i]! - bf.phi[i]!)).toBeLessThan(1e-9);
    expectAdditive(e, model.predictMargin(test));
  });

  it('a missing value follows the missing direction (left)', async () => {
    const { model, x } = await trainGbdt('regression', 4, 2, { trees: 10, max_depth: 3, colsample: 1 }, 0.1);
    const t = synth('regression', 5, 4, 7).x;
    const nan = { ...t, data: t.data.slice() };
    for (let r = 0; r < t.rows; r++) nan.data[r * 4] = NaN;
    // A value below every threshold of feature 0 goes left everywhere, as NaN does.
    const low = { ...t, data: t.data.slice() };
    for (let r = 0; r < t.rows; r++) low.data[r * 4] = -1e30;
    const a = explain(model, nan, { background: x });
    const b = explain(model, low, { background: x });
    for (let i = 0; i < a.contributions.length; i++) expect(a.contributions[i]).toBeCloseTo(b.contributions[i]!, 12);
    expectAdditive(a, model.predictMargin(nan));
  });

  it('uses the covers the trainer stores (the training rows), and needs a background for trees saved without them', async () => {
    const { model, x } = await trainGbdt('binary', 4, 4, { trees: 5, max_depth: 2, colsample: 1 });
    const test = synth('binary', 10, 4, 6).x;
    const stored = explain(model, test);
    expect(stored.reference).toBe('stored-cover');
    // The stored covers are the training rows' counts: the same as that background.
    const fromBg = explain(model, test, { background: x });
    expect(fromBg.reference).toBe('background');
    for (let i = 0; i < stored.contributions.length; i++) expect(stored.contributions[i]).toBeCloseTo(fromBg.contributions[i]!, 12);
    const w = structuredClone(model.weights);
    for (const t of w.trees) delete t.cover;
    const legacy = gbdt.load({ ...model.toState(), weights: w });
    expect(() => explain(legacy, test)).toThrow(MedfitError);
    const counted = explain(legacy, test, { background: x });
    expect(counted.reference).toBe('background');
    for (let i = 0; i < stored.contributions.length; i++) expect(stored.contributions[i]).toBeCloseTo(counted.contributions[i]!, 12);
    for (let k = 0; k < stored.outputs; k++) expect(stored.base[k]).toBeCloseTo(counted.base[k]!, 12);
  });

  it('sums features into groups (one-hot columns), still adding up to the margin', async () => {
    const { model, x } = await trainGbdt('multiclass', 6, 8, { trees: 10, max_depth: 3, colsample: 1 });
    const test = synth('multiclass', 12, 6, 9).x;
    const groups = [0, 0, 1, 2, 2, 2];
    const each = explain(model, test, { background: x });
    const grouped = explain(model, test, { background: x, groups });
    expect(grouped.features).toBe(3);
    for (let r = 0; r < test.rows; r++)
      for (let k = 0; k < 3; k++)
        for (let g = 0; g < 3; g++) {
          let s = 0;
          groups.forEach((gj, j) => gj === g && (s += each.contributions[(r * 6 + j) * 3 + k]!));
          expect(grouped.contributions[(r * 3 + g) * 3 + k]).toBeCloseTo(s, 12);
        }
    expectAdditive(grouped, model.predictMargin(test));
  });
});

describe('explain: linear and logistic', () => {
  it('binary logistic: log-odds, relative to the background means and to 0', async () => {
    const { x, y } = synth('binary', 300, 5, 1);
    const m = await logistic.train({ x, y, task: 'binary', nClasses: 2 }, logistic.defaults('binary', 300), { seed: 0 });
    const w = m.toState().weights as LinearWeights;
    const test = synth('binary', 40, 5, 2).x;
    const withBg = explain(m, test, { background: x });
    expect(withBg.space).toBe('log-odds');
    expect(withBg.reference).toBe('background');
    expectAdditive(withBg, linearMargin(w, test));
    // The base is the margin at the mean row.
    const mean = new Float64Array(5);
    for (let r = 0; r < x.rows; r++) for (let j = 0; j < 5; j++) mean[j]! += x.data[r * 5 + j]! / x.rows;
    expect(withBg.base[0]).toBeCloseTo(linearMargin(w, { rows: 1, cols: 5, data: mean })[0]!, 10);
    const zero = explain(m, test);
    expect(zero.reference).toBe('zero');
    expect(zero.base[0]).toBe(w.intercept[0]);
    expect(zero.contributions[3]).toBe(w.coef[3]! * test.data[3]!);
    expectAdditive(zero, linearMargin(w, test));
  });

  it('multiclass logistic: per-class logits', async () => {
    const { x, y } = synth('multiclass', 300, 4, 3);
    const m = await logistic.train({ x, y, task: 'multiclass', nClasses: 3 }, logistic.defaults('multiclass', 300), { seed: 0 });
    const test = synth('multiclass', 30, 4, 4).x;
    const e = explain(m, test, { background: x });
    expect(e.outputs).toBe(3);
    expect(e.space).toBe('logit');
    expectAdditive(e, linearMargin(m.toState().weights as LinearWeights, test));
  });

  for (const nOutputs of [1, 2]) {
    it(`ridge regression with ${nOutputs} output(s): values`, async () => {
      const { x, y } = synth('regression', 200, 4, 5, 0, nOutputs);
      const m = await linear.train({ x, y, task: 'regression', nClasses: 1, ...(nOutputs > 1 ? { nOutputs } : {}) }, { alpha: 1 }, { seed: 0 });
      const test = synth('regression', 30, 4, 6, 0, nOutputs).x;
      const e = explain(m, test, { background: x });
      expect(e.outputs).toBe(nOutputs);
      expect(e.space).toBe('value');
      expectAdditive(e, m.predict(test));
      expectAdditive(explain(m, test), m.predict(test));
    });
  }
});

describe('explain: linear with a reference row (the manifest\'s training means)', () => {
  it('contribution = coef × (x − reference), base = margin at the reference; groups sum', async () => {
    const { x, y } = synth('binary', 300, 5, 1);
    const m = await logistic.train({ x, y, task: 'binary', nClasses: 2 }, logistic.defaults('binary', 300), { seed: 0 });
    const w = m.toState().weights as LinearWeights;
    const test = synth('binary', 20, 5, 2).x;
    const reference = [0.1, -0.2, 0.3, 0, 0.5];
    const e = explain(m, test, { reference });
    expect(e.reference).toBe('reference');
    expect(e.base[0]).toBeCloseTo(linearMargin(w, { rows: 1, cols: 5, data: Float64Array.from(reference) })[0]!, 12);
    expect(e.contributions[7]).toBeCloseTo(w.coef[2]! * (test.data[7]! - 0.3), 14);
    expectAdditive(e, linearMargin(w, test));
    const g = explain(m, test, { reference, groups: [0, 1, 1, 2, 2] });
    expect(g.features).toBe(3);
    expect(g.contributions[1]).toBeCloseTo(e.contributions[1]! + e.contributions[2]!, 14);
    expectAdditive(g, linearMargin(w, test));
    expect(() => explain(m, test, { reference: [1, 2] })).toThrow(/reference has 2 values/);
    expect(() => explain(m, test, { reference: [0, 0, NaN, 0, 0] })).toThrow(/not a finite number/);
    expect(() => explain(m, test, { reference, groups: [0, 1, 1, 9, 2] })).toThrow(/groups\[3\]/);
  });
});

// ---- mlp: sampling Shapley against brute force w.r.t. the same baseline ----

/** A ReLU network of the default shape with seeded He-initialised weights (no training needed). */
function randomMlp(task: Task, d: number, outputs: number, seed: number): MlpModel {
  const rng = new Rng(seed);
  const dims = [d, 64, 32, outputs];
  const layers = dims.slice(0, -1).map((inDim, i) => {
    const outDim = dims[i + 1]!;
    const last = i === dims.length - 2;
    return {
      inDim,
      outDim,
      activation: (last ? (task === 'regression' ? 'linear' : 'softmax') : 'relu') as 'relu' | 'softmax' | 'linear',
      kernel: Array.from({ length: inDim * outDim }, () => rng.normal() * Math.sqrt(2 / inDim)),
      bias: Array.from({ length: outDim }, () => 0.1 * rng.normal()),
    };
  });
  const nOutputs = task === 'regression' && outputs > 1 ? { nOutputs: outputs } : {};
  return mlp.load({ family: 'mlp', task, nClasses: task === 'regression' ? 1 : outputs, nFeatures: d, params: {}, weights: { layers }, ...nOutputs }) as MlpModel;
}

/** The network's raw outputs, computed independently: logits from the hidden layers by hand. */
function mlpRawOutputs(m: MlpModel, z: Matrix): Float64Array {
  const layers = m.weights.layers;
  const K = m.task === 'binary' ? 1 : layers.at(-1)!.outDim;
  const out = new Float64Array(z.rows * K);
  for (let r = 0; r < z.rows; r++) {
    let a = Array.from(z.data.subarray(r * z.cols, (r + 1) * z.cols));
    layers.forEach((l, li) => {
      const next = l.bias.slice();
      for (let i = 0; i < l.inDim; i++) for (let j = 0; j < l.outDim; j++) next[j]! += a[i]! * l.kernel[i * l.outDim + j]!;
      a = li < layers.length - 1 ? next.map((v) => Math.max(0, v)) : next;
    });
    if (m.task === 'binary') out[r] = a[1]! - a[0]!;
    else for (let k = 0; k < K; k++) out[r * K + k] = a[k]!;
  }
  return out;
}

/** Exact Shapley values of v(S) = f(x on the players in S, reference elsewhere), by enumeration. */
function bruteBaseline(m: MlpModel, x: Float64Array, ref: ArrayLike<number>, groups: number[]): { phi: Float64Array; base: Float64Array } {
  const d = x.length;
  const G = Math.max(...groups) + 1;
  const n = 1 << G;
  const points = new Float64Array(n * d);
  for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) points[s * d + j] = s & (1 << groups[j]!) ? x[j]! : ref[j]!;
  const v = mlpRawOutputs(m, { rows: n, cols: d, data: points });
  const K = v.length / n;
  const fact = (k: number): number => (k <= 1 ? 1 : k * fact(k - 1));
  const phi = new Float64Array(G * K);
  for (let g = 0; g < G; g++)
    for (let s = 0; s < n; s++) {
      if (s & (1 << g)) continue;
      let size = 0;
      for (let b = s; b; b &= b - 1) size++;
      const weight = (fact(size) * fact(G - size - 1)) / fact(G);
      for (let k = 0; k < K; k++) phi[g * K + k]! += weight * (v[(s | (1 << g)) * K + k]! - v[s * K + k]!);
    }
  return { phi, base: v.slice(0, K) };
}

describe('explain: mlp (sampling Shapley)', () => {
  const cases: { task: Task; outputs: number; explained: number; space: string }[] = [
    { task: 'binary', outputs: 2, explained: 1, space: 'log-odds' },
    { task: 'multiclass', outputs: 3, explained: 3, space: 'logit' },
    { task: 'regression', outputs: 2, explained: 2, space: 'value' },
  ];
  for (const c of cases) {
    it(`${c.task}: sums exactly to the raw output and stays within a few percent of brute-force Shapley values`, () => {
      const d = 6;
      const m = randomMlp(c.task, d, c.outputs, 7);
      const rng = new Rng(11);
      const reference = Array.from({ length: d }, () => 0.2 * rng.normal());
      const x: Matrix = { rows: 12, cols: d, data: Float64Array.from({ length: 12 * d }, () => 1.5 * rng.normal()) };
      const e = explain(m, x, { reference });
      expect(e).toMatchObject({ method: 'sampling-shapley', space: c.space, outputs: c.explained, features: d, reference: 'reference' });
      expect(e.permutations).toBe(defaultPermutations(d));
      expectAdditive(e, mlpRawOutputs(m, x), 1e-9);
      const K = e.outputs;
      let worst = 0;
      let total = 0;
      let count = 0;
      for (let r = 0; r < x.rows; r++) {
        const bf = bruteBaseline(m, x.data.subarray(r * d, (r + 1) * d), reference, [0, 1, 2, 3, 4, 5]);
        for (let k = 0; k < K; k++) expect(e.base[k]).toBeCloseTo(bf.base[k]!, 12);
        const scale = Math.max(...Array.from(bf.phi, Math.abs));
        for (let i = 0; i < bf.phi.length; i++) {
          const err = Math.abs(e.contributions[r * d * K + i]! - bf.phi[i]!) / scale;
          worst = Math.max(worst, err);
          total += err;
          count++;
        }
      }
      // Records far from the reference on an untrained network: strong interactions, the hard case.
      expect(total / count).toBeLessThan(0.02);
      expect(worst).toBeLessThan(0.1);
    });
  }

  it('binary: the raw output is the log-odds of the probability the model predicts', () => {
    const m = randomMlp('binary', 4, 2, 3);
    const x: Matrix = { rows: 5, cols: 4, data: Float64Array.from({ length: 20 }, (_, i) => Math.sin(i)) };
    const e = explain(m, x, { reference: [0, 0, 0, 0] });
    const p = m.predict(x);
    const logOdds = Float64Array.from({ length: 5 }, (_, r) => Math.log(p[r * 2 + 1]! / p[r * 2]!));
    expectAdditive(e, logOdds, 1e-9);
  });

  it('is reproducible, the same for a row whatever rows come with it, and converges with more permutations', () => {
    const m = randomMlp('regression', 5, 1, 5);
    const rng = new Rng(2);
    const x: Matrix = { rows: 6, cols: 5, data: Float64Array.from({ length: 30 }, () => rng.normal()) };
    const reference = [0, 0, 0, 0, 0];
    const a = explain(m, x, { reference });
    expect(Array.from(explain(m, x, { reference }).contributions)).toEqual(Array.from(a.contributions));
    const alone = explain(m, rowsOf(x, 3, 4), { reference });
    expect(Array.from(alone.contributions)).toEqual(Array.from(a.contributions.subarray(15, 20)));
    expect(Array.from(explain(m, x, { reference, seed: 1 }).contributions)).not.toEqual(Array.from(a.contributions));
    const err = (perms: number) => {
      const e = explain(m, x, { reference, permutations: perms });
      let s = 0;
      for (let r = 0; r < x.rows; r++) {
        const bf = bruteBaseline(m, x.data.subarray(r * 5, r * 5 + 5), reference, [0, 1, 2, 3, 4]).phi;
        for (let j = 0; j < 5; j++) s += Math.abs(e.contributions[r * 5 + j]! - bf[j]!);
      }
      return s;
    };
    expect(err(2000)).toBeLessThan(err(20));
  });

  it('with groups, a group switches as one player: the Shapley values of the groups', () => {
    const d = 7;
    const groups = [0, 0, 0, 1, 2, 2, 3];
    const m = randomMlp('multiclass', d, 3, 9);
    const rng = new Rng(4);
    const reference = Array.from({ length: d }, () => 0.1 * rng.normal());
    const x: Matrix = { rows: 8, cols: d, data: Float64Array.from({ length: 8 * d }, () => rng.normal()) };
    const e = explain(m, x, { reference, groups });
    expect(e.features).toBe(4);
    expectAdditive(e, mlpRawOutputs(m, x), 1e-9);
    let worst = 0;
    for (let r = 0; r < x.rows; r++) {
      const bf = bruteBaseline(m, x.data.subarray(r * d, (r + 1) * d), reference, groups);
      const scale = Math.max(...Array.from(bf.phi, Math.abs));
      for (let i = 0; i < bf.phi.length; i++) worst = Math.max(worst, Math.abs(e.contributions[r * 12 + i]! - bf.phi[i]!) / scale);
    }
    expect(worst).toBeLessThan(0.05);
  });

  it('gives the same numbers when a wide network cuts the walks into several forward passes', () => {
    // The same function padded with 13,000 dead hidden units (zero weights in and out): exactly
    // the same outputs, but about half a million multiply-adds per point, so a batch holds 33
    // points and batches start in the middle of a permutation's walk (5 points each).
    const m = randomMlp('binary', 6, 2, 12);
    const pad = 13_000;
    const [l1, l2, l3] = m.weights.layers as [MlpLayer, MlpLayer, MlpLayer];
    const wide = l1.outDim + pad;
    const k1 = new Array<number>(6 * wide).fill(0);
    for (let i = 0; i < 6; i++) for (let j = 0; j < l1.outDim; j++) k1[i * wide + j] = l1.kernel[i * l1.outDim + j]!;
    const padded = mlp.load({
      ...m.toState(),
      weights: {
        layers: [
          { ...l1, outDim: wide, kernel: k1, bias: [...l1.bias, ...new Array<number>(pad).fill(0)] },
          { ...l2, inDim: wide, kernel: [...l2.kernel, ...new Array<number>(pad * l2.outDim).fill(0)] },
          l3,
        ],
      },
    });
    expect(Math.floor((1 << 24) / (explainCost(padded, 1, { permutations: 2 }) / (2 * 5 + 2)))).toBe(33);
    const rng = new Rng(5);
    const x: Matrix = { rows: 2, cols: 6, data: Float64Array.from({ length: 12 }, () => rng.normal()) };
    const reference = [0.1, 0, -0.1, 0.2, 0, 0];
    const a = explain(m, x, { reference, permutations: 16 });
    const b = explain(padded, x, { reference, permutations: 16 });
    expect(Array.from(b.contributions)).toEqual(Array.from(a.contributions));
    expect(Array.from(b.base)).toEqual(Array.from(a.base));
  });

  it('measures from the background means without a reference, and refuses without either', () => {
    const m = randomMlp('regression', 3, 1, 1);
    const bg: Matrix = { rows: 2, cols: 3, data: Float64Array.of(1, 2, 3, 3, 2, 1) };
    const x: Matrix = { rows: 1, cols: 3, data: Float64Array.of(0.5, -1, 2) };
    const a = explain(m, x, { background: bg });
    expect(a.reference).toBe('background');
    expect(Array.from(a.contributions)).toEqual(Array.from(explain(m, x, { reference: [2, 2, 2] }).contributions));
    expect(() => explain(m, x)).toThrow(/mlp explanations need a reference row/);
    expect(() => explain(m, x, { reference: [0, 0, 0], permutations: 3 })).toThrow(/even integer/);
    expect(() => explain(m, { rows: 1, cols: 3, data: Float64Array.of(NaN, 0, 0) }, { reference: [0, 0, 0] })).toThrow(/finite/);
  });

  it('explainAsync gives the same numbers and lets the event loop run between slices', async () => {
    const m = randomMlp('binary', 8, 2, 2);
    const rng = new Rng(8);
    const x: Matrix = { rows: 10, cols: 8, data: Float64Array.from({ length: 80 }, () => rng.normal()) };
    const reference = new Array<number>(8).fill(0);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const a = await explainAsync(m, x, { reference, sliceMs: 0 });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    expect(Array.from(a.contributions)).toEqual(Array.from(explain(m, x, { reference }).contributions));
  });

  it('explainCost counts the multiply-adds of every coalition point', () => {
    const m = randomMlp('binary', 8, 2, 2);
    const macs = 8 * 64 + 64 * 32 + 32 * 2;
    const perms = defaultPermutations(8);
    expect(explainCost(m, 10)).toBe((10 * (perms * 7 + 1) + 1) * macs);
    expect(explainCost(m, 10, { groups: [0, 0, 0, 0, 1, 1, 2, 2], permutations: 4 })).toBe((10 * (4 * 2 + 1) + 1) * macs);
  });
});

describe('explain: other families', () => {
  for (const family of ['lstm', 'window-gbdt']) {
    it(`refuses ${family} with a usage error`, () => {
      const fake = { family, task: 'binary', nClasses: 2, nFeatures: 2, params: {}, predict: () => new Float64Array(), toState: () => ({}) } as unknown as TrainedModel;
      let caught: unknown;
      try {
        explain(fake, { rows: 1, cols: 2, data: new Float64Array(2) });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(MedfitError);
      expect((caught as MedfitError).code).toBe('MEDFIT_ERR_USAGE');
      expect((caught as MedfitError).message).toBe(`explanations are not available for family ${family} yet`);
    });
  }
});
