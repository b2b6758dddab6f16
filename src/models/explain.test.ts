import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix, type Task } from '../core/index.js';
import { explain, treeCover, type Explanation } from './explain.js';
import { gbdt, type GbdtModel, type GbdtWeights, type Tree } from './gbdt/index.js';
import { linear, logistic } from './linear/index.js';
import type { LinearWeights } from './linear/index.js';
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

  it('uses covers stored on the trees when every tree has them, and otherwise needs a background', async () => {
    const { model, x } = await trainGbdt('binary', 4, 4, { trees: 5, max_depth: 2, colsample: 1 });
    const test = synth('binary', 10, 4, 6).x;
    expect(() => explain(model, test)).toThrow(MedfitError);
    const fromBg = explain(model, test, { background: x });
    // Covers counted here (what a trainer could store), then explained without a background.
    const w = structuredClone(model.weights);
    for (const t of w.trees) {
      const cover = new Array<number>(t.feature.length).fill(0);
      for (let r = 0; r < x.rows; r++) {
        let n = 0;
        cover[0]!++;
        while (t.feature[n]! >= 0) {
          const v = x.data[r * 4 + t.feature[n]!]!;
          n = Math.fround(v) <= t.threshold[n]! || Number.isNaN(v) ? t.left[n]! : t.right[n]!;
          cover[n]!++;
        }
      }
      (t as Tree & { cover: number[] }).cover = cover;
    }
    const stored = explain({ ...model, family: 'gbdt', nFeatures: 4, weights: w, predict: model.predict, toState: model.toState } as unknown as TrainedModel, test);
    expect(stored.reference).toBe('stored-cover');
    for (let i = 0; i < stored.contributions.length; i++) expect(stored.contributions[i]).toBeCloseTo(fromBg.contributions[i]!, 12);
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

describe('explain: other families', () => {
  for (const family of ['mlp', 'lstm', 'window-gbdt']) {
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
