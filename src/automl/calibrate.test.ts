/** Choosing a calibrator on out-of-fold predictions: cross-fitted, by log loss, honest about failure. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../core/index.js';
import { stratifiedKFold } from '../data/index.js';
import { ProbabilityCalibrator } from '../eval/index.js';
import { chooseCalibration } from './calibrate.js';

/** Binary out-of-fold probabilities that are under-confident: the true log-odds shrunk by `shrink`. */
function underConfident(n: number, shrink: number, seed: number) {
  const rng = new Rng(seed);
  const y = new Float64Array(n);
  const p = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const z = 2 * rng.normal();
    y[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    const q = 1 / (1 + Math.exp(-z * shrink));
    p[2 * i] = 1 - q;
    p[2 * i + 1] = q;
  }
  return { y, p };
}

describe('chooseCalibration', () => {
  const { y, p } = underConfident(1500, 0.5, 1);
  const folds = stratifiedKFold(Int32Array.from(y), 5, 0);

  it('stretches an under-confident model back to a slope of about 1, and says what it chose and why', () => {
    const c = chooseCalibration([p], y, 2, [folds], 'auto');
    expect(c.report.before.calibration_slope).toBeGreaterThan(1.6);
    expect(['platt', 'isotonic']).toContain(c.report.method);
    expect(c.report.after.calibration_slope).toBeGreaterThan(0.9);
    expect(c.report.after.calibration_slope).toBeLessThan(1.1);
    expect(c.report.after.log_loss).toBeLessThan(c.report.before.log_loss);
    expect(c.report.candidates.map((x) => x.method)).toEqual(['none', 'platt', 'isotonic']);
    expect(c.report.reliability!.before.length).toBeGreaterThan(3);
    // The kept calibrator is fitted on every out-of-fold row.
    expect(c.calibrator!.toJSON()).toEqual(ProbabilityCalibrator.fit(p, y, 2, c.report.method === 'platt' ? { method: 'platt', input: 'logit', plattTargets: 'labels' } : { method: 'isotonic' }).toJSON());
  });

  it("calibrates each fold's rows with a calibrator fitted on the other folds only", () => {
    const c = chooseCalibration([p], y, 2, [folds], 'platt');
    const pick = (a: Float64Array, idx: Int32Array, w: number) => Float64Array.from({ length: idx.length * w }, (_, k) => a[idx[Math.floor(k / w)]! * w + (k % w)]!);
    for (const fold of folds) {
      const own = ProbabilityCalibrator.fit(pick(p, fold.train, 2), pick(y, fold.train, 1), 2, { method: 'platt', input: 'logit', plattTargets: 'labels' });
      const want = own.apply(pick(p, fold.test, 2));
      expect(Array.from(pick(c.calibrated[0]!, fold.test, 2))).toEqual(Array.from(want));
    }
  });

  it('keeps the raw probabilities with none, and reports a method that cannot be fitted', () => {
    const none = chooseCalibration([p], y, 2, [folds], 'none');
    expect(none.calibrator).toBeUndefined();
    expect(none.calibrated[0]).toBe(p);
    expect(none.report.after).toEqual(none.report.before);
    // Every positive in one fold: the other folds' calibrators have no positive to fit.
    const y2 = new Float64Array(y.length);
    for (const i of folds[0]!.test) y2[i] = y[i]!;
    const auto = chooseCalibration([p], y2, 2, [folds], 'auto');
    expect(auto.report.method).toBe('none');
    expect(auto.report.candidates.filter((x) => x.error !== undefined).map((x) => x.method)).toEqual(['platt', 'isotonic']);
    expect(() => chooseCalibration([p], y2, 2, [folds], 'isotonic')).toThrow(/absent/);
  });
});
