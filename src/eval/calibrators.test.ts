/**
 * The calibrators against scikit-learn 1.2's CalibratedClassifierCV on the inputs of
 * test/fixtures/golden/calibration.json (written by scripts/golden_calibration.py): Platt's (a, b)
 * against the exact minimiser of scikit-learn's objective (1e-9) and scikit-learn's own BFGS
 * answer (1e-6), isotonic thresholds and predictions (1e-12), calibrated probabilities; refusals;
 * JSON round trips; and calibration metrics before and after on under-confident scores.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng } from '../core/index.js';
import { calibration, IsotonicCalibrator, PlattCalibrator, ProbabilityCalibrator, type CalibrationMethod, type CalibratorInput } from './index.js';

interface Ab {
  a: number;
  b: number;
}
interface ClassifierCase {
  name: string;
  method: CalibrationMethod;
  input: CalibratorInput;
  nClasses: number;
  labels: number[];
  proba: number[];
  queryProba: number[];
  expected: {
    calibrators: Array<{ class: number; sklearn?: Ab; exact?: Ab; x?: number[]; y?: number[] }>;
    proba: number[];
  };
}
interface IsotonicCase {
  name: string;
  scores: number[];
  labels: number[];
  yMin: number | null;
  yMax: number | null;
  query: number[];
  expected: { x: number[]; y: number[]; predict: number[] };
}
interface PlattCase {
  name: string;
  scores: number[];
  labels: number[];
  query: number[];
  expected: { sklearn: Ab; exact: Ab; predictSklearn: number[]; predictExact: number[] };
}
interface RefuseCase {
  name: string;
  nClasses: number;
  labels: number[];
  proba: number[];
}

const golden = JSON.parse(readFileSync(new URL('../../test/fixtures/golden/calibration.json', import.meta.url), 'utf8')) as {
  classifierCases: ClassifierCase[];
  isotonicCases: IsotonicCase[];
  plattCases: PlattCase[];
  refuse: RefuseCase[];
};

const f64 = (a: number[]) => Float64Array.from(a);

/** Brier score of positive-class probabilities `p` (classificationReport's, for one column). */
function brier(y: Float64Array, p: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (p[i]! - y[i]!) ** 2;
  return s / y.length;
}

/** |actual − expected| ≤ tol·max(1, |expected|). */
function near(actual: number, expected: number, tol: number, what: string): void {
  const err = Math.abs(actual - expected);
  expect(err <= tol * Math.max(1, Math.abs(expected)), `${what}: got ${actual}, expected ${expected} (|Δ| ${err})`).toBe(true);
}

function nearAll(actual: ArrayLike<number>, expected: number[], tol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) near(actual[i]!, expected[i]!, tol, `${what}[${i}]`);
}

/** The largest |Δ| seen per check, reported for the record. */
const worst: Record<string, number> = {};
function track(key: string, actual: ArrayLike<number>, expected: number[]): void {
  for (let i = 0; i < expected.length; i++) worst[key] = Math.max(worst[key] ?? 0, Math.abs(actual[i]! - expected[i]!));
}

describe('calibrators against scikit-learn (golden)', () => {
  for (const c of golden.classifierCases) {
    it(`${c.name}: fitted parameters and calibrated probabilities`, () => {
      const cal = ProbabilityCalibrator.fit(f64(c.proba), f64(c.labels), c.nClasses, { method: c.method, input: c.input });
      expect(cal.calibrators.length).toBe(c.expected.calibrators.length);
      c.expected.calibrators.forEach((want, i) => {
        const got = cal.calibrators[i]!;
        if (c.method === 'platt') {
          const { a, b } = got as PlattCalibrator;
          near(a, want.exact!.a, 1e-9, `${c.name} class ${want.class} a (exact)`);
          near(b, want.exact!.b, 1e-9, `${c.name} class ${want.class} b (exact)`);
          near(a, want.sklearn!.a, 1e-6, `${c.name} class ${want.class} a (sklearn)`);
          near(b, want.sklearn!.b, 1e-6, `${c.name} class ${want.class} b (sklearn)`);
          track('platt a, b vs exact', [a, b], [want.exact!.a, want.exact!.b]);
          track('platt a, b vs sklearn', [a, b], [want.sklearn!.a, want.sklearn!.b]);
        } else {
          const iso = got as IsotonicCalibrator;
          // Exact, except that V8's and NumPy's log may differ in the last bit of a logit.
          nearAll(iso.x, want.x!, c.input === 'logit' ? 1e-14 : 0, `${c.name} class ${want.class} thresholds x`);
          nearAll(iso.y, want.y!, 1e-12, `${c.name} class ${want.class} thresholds y`);
        }
      });
      const proba = cal.apply(f64(c.queryProba));
      // Platt's probabilities inherit scikit-learn's BFGS stopping point (~1e-7 in a, b).
      // Isotonic: 1e-12, tighter than needed (the differences seen are 0).
      nearAll(proba, c.expected.proba, c.method === 'platt' ? 1e-6 : 1e-12, `${c.name} proba`);
      track(`${c.method} proba vs sklearn`, proba, c.expected.proba);
      // The state round-trips through JSON text to the same numbers.
      const back = ProbabilityCalibrator.fromJSON(JSON.parse(JSON.stringify(cal)));
      expect(Array.from(back.apply(f64(c.queryProba)))).toEqual(Array.from(proba));
    });
  }

  for (const c of golden.isotonicCases) {
    it(`isotonic ${c.name}: thresholds and predictions`, () => {
      const opts = { ...(c.yMin !== null ? { yMin: c.yMin } : {}), ...(c.yMax !== null ? { yMax: c.yMax } : {}) };
      const iso = IsotonicCalibrator.fit(f64(c.scores), f64(c.labels), opts);
      nearAll(iso.x, c.expected.x, 0, `${c.name} x`);
      nearAll(iso.y, c.expected.y, 1e-12, `${c.name} y`);
      const got = iso.predict(f64(c.query));
      nearAll(got, c.expected.predict, 1e-12, `${c.name} predict`);
      track('isotonic predict vs sklearn', got, c.expected.predict);
    });
  }

  for (const c of golden.plattCases) {
    it(`platt ${c.name}: raw scores`, () => {
      const pl = PlattCalibrator.fit(f64(c.scores), f64(c.labels));
      near(pl.a, c.expected.exact.a, 1e-9, 'a (exact)');
      near(pl.b, c.expected.exact.b, 1e-9, 'b (exact)');
      near(pl.a, c.expected.sklearn.a, 1e-6, 'a (sklearn)');
      near(pl.b, c.expected.sklearn.b, 1e-6, 'b (sklearn)');
      track('platt a, b vs exact', [pl.a, pl.b], [c.expected.exact.a, c.expected.exact.b]);
      track('platt a, b vs sklearn', [pl.a, pl.b], [c.expected.sklearn.a, c.expected.sklearn.b]);
      const got = pl.predict(f64(c.query));
      nearAll(got, c.expected.predictExact, 1e-12, 'predict (exact)');
      nearAll(got, c.expected.predictSklearn, 1e-6, 'predict (sklearn)');
    });
  }

  for (const c of golden.refuse) {
    it(`refuses ${c.name}`, () => {
      for (const method of ['platt', 'isotonic'] as const) {
        let err: unknown;
        try {
          ProbabilityCalibrator.fit(f64(c.proba), f64(c.labels), c.nClasses, { method });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(MedfitError);
        expect((err as MedfitError).code).toBe('MEDFIT_ERR_BAD_DATA');
        expect((err as MedfitError).message).toMatch(/class \d is (absent from|every one of) the \d+ rows to calibrate on/);
      }
    });
  }

  it('reports the largest differences', () => {
    console.log('max |medfit - reference|:', JSON.stringify(worst));
    expect(Object.keys(worst).length).toBeGreaterThan(0);
  });
});

describe('calibrators: input checks and saved state', () => {
  it('refuses one-class folds and bad input on the score calibrators too', () => {
    expect(() => PlattCalibrator.fit(f64([0.1, 0.2]), f64([1, 1]))).toThrow(/same label/);
    expect(() => IsotonicCalibrator.fit(f64([0.1, 0.2]), f64([0, 0]))).toThrow(/same label/);
    expect(() => PlattCalibrator.fit(f64([0.1, NaN]), f64([0, 1]))).toThrow(/scores\[1\] is not a finite number/);
    expect(() => IsotonicCalibrator.fit(f64([0.1]), f64([0, 1]))).toThrow(/same length/);
    expect(() => ProbabilityCalibrator.fit(f64([0.5, 0.5]), f64([2]), 2, { method: 'platt' })).toThrow(/class index/);
    expect(() => ProbabilityCalibrator.fit(f64([0.5, 0.5]), f64([0]), 2, { method: 'nope' as CalibrationMethod })).toThrow(/method/);
    expect(() => IsotonicCalibrator.fit(f64([0.1, 0.2]), f64([0, 1]), { yMin: 0.8, yMax: 0.2 })).toThrow(/yMax/);
  });

  it('gives a constant for constant scores', () => {
    const pl = PlattCalibrator.fit(f64([0.3, 0.3, 0.3, 0.3]), f64([0, 1, 1, 1]));
    expect(pl.a).toBe(0);
    // The mean smoothed target: (3·4/5 + 1/3) / 4.
    near(pl.predictOne(0.9), (3 * (4 / 5) + 1 / 3) / 4, 1e-15, 'constant');
    const iso = IsotonicCalibrator.fit(f64([0.3, 0.3, 0.3, 0.3]), f64([0, 1, 1, 1]));
    expect(Array.from(iso.predict(f64([0, 0.3, 1])))).toEqual([0.75, 0.75, 0.75]);
  });

  it('refuses bad saved state with a manifest error', () => {
    const good = ProbabilityCalibrator.fit(f64([0.8, 0.2, 0.3, 0.7, 0.6, 0.4]), f64([0, 1, 1]), 2, { method: 'isotonic' }).toJSON();
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, format: 2 })).toThrow(/format is not 1/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, method: 'beta' })).toThrow(/method is not one of platt, isotonic/);
    // The file's values are not echoed; sizes are checked before anything is allocated by them.
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, format: 'secret-123' })).toThrow(/^(?!.*secret-123)/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, nClasses: 1e9 })).toThrow(/nClasses must be an integer in \[2, 10000\]/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, calibrators: [{ x: Array.from({ length: 100_001 }, (_, i) => i), y: new Array(100_001).fill(0.5) }] })).toThrow(/more than 100000 points/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, nClasses: 3 })).toThrow(/needs 3 calibrator/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, calibrators: [{ x: [0.2, 0.1], y: [0, 1] }] })).toThrow(/strictly increasing/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, calibrators: [{ x: [0.1, 0.2], y: [1, 0] }] })).toThrow(/non-decreasing/);
    expect(() => ProbabilityCalibrator.fromJSON({ ...good, method: 'platt', calibrators: [{ a: 1, b: 'x' }] })).toThrow(/finite numbers a and b/);
    try {
      ProbabilityCalibrator.fromJSON(null);
    } catch (e) {
      expect((e as MedfitError).code).toBe('MEDFIT_ERR_MANIFEST');
    }
  });
});

/** Under-confident scores: the truth is sigmoid(η), the model says sigmoid(0.4·η + 0.2). */
function underConfident(rows: number, seed: number): { y: Float64Array; proba: Float64Array; p: Float64Array } {
  const rng = new Rng(seed);
  const y = new Float64Array(rows);
  const p = new Float64Array(rows);
  const proba = new Float64Array(rows * 2);
  for (let i = 0; i < rows; i++) {
    const eta = 2 * rng.normal();
    y[i] = rng.next() < 1 / (1 + Math.exp(-eta)) ? 1 : 0;
    p[i] = 1 / (1 + Math.exp(-(0.4 * eta + 0.2)));
    proba[i * 2] = 1 - p[i]!;
    proba[i * 2 + 1] = p[i]!;
  }
  return { y, proba, p };
}

describe('calibration metrics before and after', () => {
  // Fitted on one sample, scored on another from the same source (never on the fitted rows).
  const fitSet = underConfident(1500, 1);
  const testSet = underConfident(3000, 2);
  const before = { ...calibration(testSet.y, testSet.p), brier: brier(testSet.y, testSet.p) };

  it('the raw scores are under-confident', () => {
    expect(before.slope).toBeGreaterThan(2);
  });

  for (const [method, input] of [
    ['platt', 'logit'],
    ['platt', 'probability'],
    ['isotonic', 'probability'],
  ] as const) {
    it(`${method} on the ${input} brings slope, intercept and Brier closer to ideal`, () => {
      const cal = ProbabilityCalibrator.fit(fitSet.proba, fitSet.y, 2, { method, input });
      const out = cal.apply(testSet.proba);
      const p = out.filter((_, i) => i % 2 === 1);
      const after = { ...calibration(testSet.y, p), brier: brier(testSet.y, p) };
      console.log(`${method}/${input}: slope ${before.slope.toFixed(3)} → ${after.slope.toFixed(3)}, intercept ${before.intercept.toFixed(3)} → ${after.intercept.toFixed(3)}, Brier ${before.brier.toFixed(4)} → ${after.brier.toFixed(4)}`);
      expect(Math.abs(after.slope - 1)).toBeLessThan(Math.min(0.25, Math.abs(before.slope - 1)));
      expect(Math.abs(after.intercept)).toBeLessThan(Math.max(0.1, Math.abs(before.intercept)));
      expect(after.brier).toBeLessThan(before.brier - 0.01);
    });
  }
});
