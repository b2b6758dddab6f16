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
