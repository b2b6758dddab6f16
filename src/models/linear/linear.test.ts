import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MedfitError, matrixFromRows } from '../../core/index.js';
import { linear, logistic } from './index.js';

interface Golden {
  X: number[][];
  binary: Record<string, { y: number[]; coef: number[]; intercept: number[]; proba: number[] }>;
  multiclass: Record<string, { y: number[]; proba: number[] }>;
  ridge: Record<string, { y: number[]; coef: number[]; intercept: number; pred: number[] }>;
}
const golden = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/golden/linear.json', import.meta.url), 'utf8'),
) as Golden;
const x = matrixFromRows(golden.X);
const ctx = { seed: 0 };

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(tol);
}

describe('logistic regression agrees with scikit-learn', () => {
  for (const key of ['1', '0.1', 'balanced']) {
    it(`binary, ${key}`, async () => {
      const g = golden.binary[key === '1' ? '1.0' : key]!;
      const params = logistic.parseParams(key === 'balanced' ? { class_weight: 'balanced' } : { C: key }, 'binary', 120);
      const m = await logistic.train({ x, y: Float64Array.from(g.y), task: 'binary', nClasses: 2 }, params, ctx);
      const p = m.predict(x);
      close(Array.from({ length: x.rows }, (_, i) => p[2 * i + 1]!), g.proba, 1e-5);
      const w = m.toState().weights as { coef: number[]; intercept: number[] };
      close(w.coef, g.coef, 1e-4);
      close(w.intercept, g.intercept, 1e-4);
    });
  }
  for (const C of ['1.0', '0.1']) {
    it(`multinomial, C=${C}`, async () => {
      const g = golden.multiclass[C]!;
      const params = logistic.parseParams({ C }, 'multiclass', 120);
      const m = await logistic.train({ x, y: Float64Array.from(g.y), task: 'multiclass', nClasses: 3 }, params, ctx);
      close(m.predict(x), g.proba, 1e-5);
    });
  }
});

describe('ridge agrees with scikit-learn', () => {
  for (const alpha of ['1.0', '10.0']) {
    it(`alpha=${alpha}`, async () => {
      const g = golden.ridge[alpha]!;
      const params = linear.parseParams({ alpha }, 'regression', 120);
      const m = await linear.train({ x, y: Float64Array.from(g.y), task: 'regression', nClasses: 1 }, params, ctx);
      close(m.predict(x), g.pred, 1e-8);
    });
  }
});

describe('linear family state and parameters', () => {
  it('round-trips through its state', async () => {
    const g = golden.binary['1.0']!;
    const m = await logistic.train({ x, y: Float64Array.from(g.y), task: 'binary', nClasses: 2 }, logistic.defaults('binary', 120), ctx);
    const again = logistic.load(JSON.parse(JSON.stringify(m.toState())));
    expect(Array.from(again.predict(x))).toEqual(Array.from(m.predict(x)));
  });

  it('refuses weights of the wrong shape', () => {
    const state = { family: 'logistic' as const, task: 'binary' as const, nClasses: 2, nFeatures: 4, params: {}, weights: { coef: [1, 2], intercept: [0], outputs: 1 } };
    expect(() => logistic.load(state)).toThrow(/weights do not match 1 output\(s\) × 4 features/);
  });

  it('names a bad parameter and its range', () => {
    expect(() => logistic.parseParams({ C: '-1' }, 'binary', 10)).toThrow(MedfitError);
    expect(() => logistic.parseParams({ C: '-1' }, 'binary', 10)).toThrow(/logistic\.C: must be in \(0, 1000000000000\]/);
    expect(() => linear.parseParams({ lambda: 1 }, 'regression', 10)).toThrow(/linear\.lambda: unknown parameter \(known: alpha\)/);
  });
});

describe('multi-output ridge', () => {
  interface MultiGolden {
    X: number[][];
    Y: number[][];
    ridge: Record<string, { coef: number[]; intercept: number[]; pred: number[] }>;
  }
  const mg = JSON.parse(
    readFileSync(new URL('../../../test/fixtures/golden/ridge-multioutput.json', import.meta.url), 'utf8'),
  ) as MultiGolden;
  const lx = matrixFromRows(mg.X);
  const ly = Float64Array.from(mg.Y.flat());

  for (const alpha of ['1.0', '10.0']) {
    it(`agrees with scikit-learn's Ridge on a 2-D target (linnerud, standardized), alpha=${alpha}`, async () => {
      const g = mg.ridge[alpha]!;
      const m = await linear.train({ x: lx, y: ly, task: 'regression', nClasses: 1, nOutputs: 3 }, linear.parseParams({ alpha }, 'regression', 20), ctx);
      expect(m.nOutputs).toBe(3);
      const w = m.toState().weights as { coef: number[]; intercept: number[]; outputs: number };
      expect(w.outputs).toBe(3);
      close(w.coef, g.coef, 1e-8);
      close(w.intercept, g.intercept, 1e-8);
      close(m.predict(lx), g.pred, 1e-8);
    });
  }

  it('equals one single-output fit per output, weights included, bit for bit', async () => {
    const k = 3;
    const idx = golden.X.map((_, i) => i);
    const y = new Float64Array(x.rows * k);
    for (let i = 0; i < x.rows; i++) {
      y[i * k] = golden.ridge['1.0']!.y[i]!;
      y[i * k + 1] = golden.X[i]![0]! - 2 * golden.X[i]![2]! + (idx[i]! % 7) / 10;
      y[i * k + 2] = 100 + 3 * golden.X[i]![3]!;
    }
    const weights = Float64Array.from(idx, (i) => 1 + (i % 3));
    const params = linear.parseParams({ alpha: 3 }, 'regression', 120);
    const multi = await linear.train({ x, y, task: 'regression', nClasses: 1, nOutputs: k, weights }, params, ctx);
    const p = multi.predict(x);
    expect(p.length).toBe(x.rows * k);
    const w = multi.toState().weights as { coef: number[]; intercept: number[] };
    for (let o = 0; o < k; o++) {
      const yo = Float64Array.from({ length: x.rows }, (_, i) => y[i * k + o]!);
      const single = await linear.train({ x, y: yo, task: 'regression', nClasses: 1, weights }, params, ctx);
      const ws = single.toState().weights as { coef: number[]; intercept: number[] };
      expect(w.coef.slice(o * x.cols, (o + 1) * x.cols)).toEqual(ws.coef);
      expect(w.intercept[o]).toBe(ws.intercept[0]);
      const ps = single.predict(x);
      expect(Array.from({ length: x.rows }, (_, i) => p[i * k + o]!)).toEqual(Array.from(ps));
    }
  });

  it('round-trips through its state; a single-output state has no nOutputs', async () => {
    const m = await linear.train({ x: lx, y: ly, task: 'regression', nClasses: 1, nOutputs: 3 }, linear.defaults('regression', 20), ctx);
    const state = JSON.parse(JSON.stringify(m.toState())) as ReturnType<typeof m.toState>;
    expect(state.nOutputs).toBe(3);
    const again = linear.load(state);
    expect(again.nOutputs).toBe(3);
    expect(Array.from(again.predict(lx))).toEqual(Array.from(m.predict(lx)));
    const one = await linear.train({ x: lx, y: Float64Array.from(mg.Y.map((r) => r[0]!)), task: 'regression', nClasses: 1 }, linear.defaults('regression', 20), ctx);
    expect(one.nOutputs).toBeUndefined();
    expect(Object.keys(one.toState())).toEqual(['family', 'task', 'nClasses', 'nFeatures', 'params', 'weights']);
  });

  it('refuses outputs that do not fit', async () => {
    const m = await linear.train({ x: lx, y: ly, task: 'regression', nClasses: 1, nOutputs: 3 }, linear.defaults('regression', 20), ctx);
    const state = m.toState();
    expect(() => linear.load({ ...state, nOutputs: 2 })).toThrow(/weights do not match 2 output\(s\) × 3 features/);
    expect(() => linear.load({ ...state, nOutputs: 0 })).toThrow(MedfitError);
    expect(() => logistic.load({ ...state, family: 'logistic', task: 'binary', nClasses: 2 })).toThrow(/nOutputs 3 does not fit/);
    await expect(linear.train({ x: lx, y: ly, task: 'regression', nClasses: 1, nOutputs: 2 }, linear.defaults('regression', 20), ctx)).rejects.toThrow(/need 40 targets, got 60/);
    await expect(
      logistic.train({ x: lx, y: new Float64Array(40), task: 'binary', nClasses: 2, nOutputs: 2 }, logistic.defaults('binary', 20), ctx),
    ).rejects.toThrow(/logistic learns one target/);
    expect(linear.multiOutput).toBe(true);
    expect(logistic.multiOutput).toBeUndefined();
  });
});
