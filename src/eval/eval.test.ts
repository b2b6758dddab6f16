/** Edge cases and bad input; the numbers themselves are checked against sklearn in golden.test.ts. */
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng } from '../core/index.js';
import {
  averagePrecision,
  calibration,
  classificationReport,
  precisionRecallCurve,
  regressionReport,
  rocAuc,
  rocAucDelong,
  rocCurve,
} from './index.js';

const f = (a: number[]) => Float64Array.from(a);
/** Binary rows [1-p, p] from p. */
const binaryProba = (p: number[]) => f(p.flatMap((v) => [1 - v, v]));

function thrown(fn: () => unknown): MedfitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('expected a MedfitError');
}

describe('bad input', () => {
  it('names both lengths when proba does not match yTrue', () => {
    const e = thrown(() => classificationReport(f([0, 1, 1]), f([0.5, 0.5, 0.2, 0.8]), 2));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toContain('yTrue has 3 rows but proba has 4 values');
    expect(e.message).toContain('3 × 2 = 6');
  });

  it('names both lengths in regression and in the binary functions', () => {
    const e = thrown(() => regressionReport(f([1, 2, 3]), f([1, 2])));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toMatch(/yTrue has 3 values but yPred has 2/);
    expect(thrown(() => rocAuc(f([0, 1]), f([0.1]))).message).toMatch(/yTrueBinary has 2 values but score has 1/);
    expect(thrown(() => calibration(f([0, 1]), f([0.1, 0.2, 0.3]))).message).toMatch(/has 2 values but p has 3/);
  });

  it('rejects labels outside 0..k-1, naming the row but not the value', () => {
    const e = thrown(() => classificationReport(f([0, 3, 1]), f([1, 0, 0, 0, 1, 0, 0, 0, 1]), 3));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toContain('yTrue[1] is not a class index in 0..2');
    expect(thrown(() => classificationReport(f([0, 0.5]), binaryProba([0.1, 0.2]), 2)).message).toContain('yTrue[1]');
    expect(thrown(() => rocAuc(f([0, 2]), f([0.1, 0.2]))).message).toContain('yTrueBinary[1] is not 0 or 1');
  });

  it('rejects non-finite probabilities and predictions', () => {
    expect(thrown(() => classificationReport(f([0, 1]), f([0.5, 0.5, NaN, 0.5]), 2)).message).toContain('proba[2] is not a finite number');
    expect(thrown(() => regressionReport(f([1, 2]), f([1, Infinity]))).message).toContain('yPred[1]');
    expect(thrown(() => rocAuc(f([0, 1]), f([NaN, 1]))).code).toBe('MEDFIT_ERR_BAD_DATA');
  });

  it('rejects empty input, a bad k and a bad threshold', () => {
    expect(thrown(() => classificationReport(f([]), f([]), 2)).message).toContain('empty');
    expect(thrown(() => regressionReport(f([]), f([]))).message).toContain('empty');
    expect(thrown(() => classificationReport(f([0]), f([1]), 1)).code).toBe('MEDFIT_ERR_BAD_PARAM');
    const e = thrown(() => classificationReport(f([0, 1]), binaryProba([0.2, 0.8]), 2, { threshold: NaN }));
    expect(e.code).toBe('MEDFIT_ERR_BAD_PARAM');
    expect(e.message).toContain('threshold');
  });

  it('tolerates probability rows that do not sum to 1', () => {
    const y = f([0, 1, 1, 0, 1, 0]);
    // Binary reads column 1 only: column 0 is noise here, and the report is that of [1 - p1, p1].
    const binary = classificationReport(y, f([0.9, 0.2, 0, 0.7, 0.3, 0.6, 0.1, 0.4, 0.5, 0.3, 0.2, 0.1]), 2);
    expect(binary).toEqual(classificationReport(y, binaryProba([0.2, 0.7, 0.6, 0.4, 0.3, 0.1]), 2));
    expect(binary.metrics.auroc).toBeCloseTo(8 / 9, 12);
    const multi = classificationReport(f([0, 1, 2, 1]), f([0.5, 0.1, 0.1, 0.2, 0.3, 0.2, 0.1, 0.1, 0.6, 0.3, 0.6, 0.4]), 3);
    for (const v of Object.values(multi.metrics)) expect(Number.isNaN(v) || Number.isFinite(v)).toBe(true);
    expect(multi.metrics.accuracy).toBe(1);
    expect(multi.metrics.log_loss).toBeGreaterThan(0);
  });
});

describe('edge cases', () => {
  it('gives NaN (no throw) for ranking metrics when yTrue holds one class', () => {
    const y = f([1, 1, 1, 1]);
    const r = classificationReport(y, binaryProba([0.9, 0.2, 0.7, 0.6]), 2);
    expect(r.metrics.auroc).toBeNaN();
    expect(r.metrics.auprc).toBeNaN();
    expect(r.aurocCi.lower).toBeNaN();
    expect(r.aurocCi.upper).toBeNaN();
    expect(r.metrics.calibration_slope).toBeNaN();
    expect(r.metrics.calibration_intercept).toBeNaN();
    expect(r.metrics.accuracy).toBe(0.75);
    expect(r.metrics.balanced_accuracy).toBe(0.75); // the recall of the only class present (sklearn)
    expect(r.metrics.specificity).toBe(0);
    expect(rocAuc(y, f([0.9, 0.2, 0.7, 0.6]))).toBeNaN();
    expect(averagePrecision(f([0, 0]), f([0.3, 0.2]))).toBeNaN();
  });

  it('returns 0, not NaN, for zero denominators (sklearn zero_division=0)', () => {
    const r = classificationReport(f([0, 1, 0, 1]), binaryProba([0.1, 0.2, 0.3, 0.4]), 2);
    expect(r.confusion).toEqual([
      [2, 0],
      [2, 0],
    ]);
    expect(r.metrics.precision).toBe(0);
    expect(r.metrics.recall).toBe(0);
    expect(r.metrics.f1).toBe(0);
    expect(r.metrics.specificity).toBe(1);
    expect(r.metrics.balanced_accuracy).toBe(0.5);
  });

  it('predicts positive when p equals the threshold', () => {
    const r = classificationReport(f([0, 1]), binaryProba([0.3, 0.3]), 2, { threshold: 0.3 });
    expect(r.confusion).toEqual([
      [0, 1],
      [0, 1],
    ]);
    expect(r.threshold).toBe(0.3);
  });

  it("reproduces sklearn's documented precision_recall_curve example", () => {
    const y = f([0, 0, 1, 1]);
    const s = f([0.1, 0.4, 0.35, 0.8]);
    const pr = precisionRecallCurve(y, s);
    expect(pr.precision.map((v) => +v.toFixed(8))).toEqual([0.5, 0.66666667, 0.5, 1, 1]);
    expect(pr.recall).toEqual([1, 1, 0.5, 0.5, 0]);
    expect(pr.thresholds).toEqual([0.1, 0.35, 0.4, 0.8]);
    expect(rocCurve(y, s)).toEqual({ fpr: [0, 0, 0.5, 0.5, 1], tpr: [0, 0.5, 0.5, 1, 1], thresholds: [1.8, 0.8, 0.4, 0.35, 0.1] });
    expect(rocAuc(y, s)).toBe(0.75);
  });

  it('handles perfect separation: AUROC 1, degenerate CI, undefined calibration slope', () => {
    const r = classificationReport(f([0, 0, 1, 1]), binaryProba([0.1, 0.2, 0.8, 0.9]), 2);
    expect(r.metrics.auroc).toBe(1);
    expect(r.aurocCi).toEqual({ lower: 1, upper: 1, level: 0.95, method: 'delong' });
    expect(r.metrics.calibration_slope).toBeNaN();
    expect(Number.isFinite(r.metrics.calibration_intercept)).toBe(true);
  });

  it('stays linear and exact when every score is tied', () => {
    const n = 200_000;
    const y = new Float64Array(n).map((_, i) => i % 3 === 0 ? 1 : 0);
    const d = rocAucDelong(y, new Float64Array(n).fill(0.5));
    expect(d.auc).toBe(0.5);
    expect(d.variance).toBe(0);
    expect(rocCurve(y, new Float64Array(n).fill(0.5)).fpr).toEqual([0, 1]);
  });

  it('averages multiclass AUROC over the classes present in yTrue', () => {
    // Class 2 never occurs: its one-vs-rest AUROC is undefined and left out of the macro mean.
    const y = f([0, 1, 0, 1]);
    const p = f([0.7, 0.2, 0.1, 0.3, 0.6, 0.1, 0.4, 0.5, 0.1, 0.6, 0.3, 0.1]);
    const r = classificationReport(y, p, 3);
    expect(r.perClass![2]!.auroc).toBeNaN();
    expect(r.perClass![2]!.support).toBe(0);
    expect(r.metrics.auroc).toBe((r.perClass![0]!.auroc + r.perClass![1]!.auroc) / 2);
    expect(Number.isFinite(r.aurocCi.lower)).toBe(true);
    // Label 2 is neither true nor predicted: not part of sklearn's default macro label set.
    expect(r.metrics.precision).toBe((r.perClass![0]!.precision + r.perClass![1]!.precision) / 2);
  });

  it('breaks argmax ties towards the first class, as numpy', () => {
    const r = classificationReport(f([1, 2]), f([0.2, 0.4, 0.4, 0.3, 0.3, 0.4]), 3);
    expect(r.confusion).toEqual([
      [0, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
  });

  it('downsamples report curves to at most 200 points, keeping both ends', () => {
    const rng = new Rng(7);
    const n = 20_000;
    const y = new Float64Array(n);
    const p = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = rng.next() < 0.3 ? 1 : 0;
      p[i] = 1 / (1 + Math.exp(-(rng.normal() + 1.2 * y[i]! - 0.8)));
    }
    const r = classificationReport(y, f(Array.from(p).flatMap((v) => [1 - v, v])), 2);
    expect(r.roc.fpr.length).toBe(200);
    expect([r.roc.fpr[0], r.roc.tpr[0], r.roc.fpr.at(-1), r.roc.tpr.at(-1)]).toEqual([0, 0, 1, 1]);
    expect(r.pr.precision.length).toBe(200);
    expect(r.pr.thresholds.length).toBe(199);
    expect([r.pr.recall[0], r.pr.recall.at(-1), r.pr.precision.at(-1)]).toEqual([1, 0, 1]);
    for (let i = 1; i < r.roc.thresholds.length; i++) expect(r.roc.thresholds[i]!).toBeLessThan(r.roc.thresholds[i - 1]!);
    // The metric uses the full curve, not the downsampled one.
    expect(r.metrics.auroc).toBe(rocAuc(y, p));
  });

  it('calibration: a calibrated model gets slope ≈ 1 and intercept ≈ 0', () => {
    const rng = new Rng(1);
    const n = 50_000;
    const y = new Float64Array(n);
    const p = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      p[i] = 1 / (1 + Math.exp(-2 * rng.normal()));
      y[i] = rng.next() < p[i]! ? 1 : 0;
    }
    const c = calibration(y, p);
    expect(c.slope).toBeCloseTo(1, 1);
    expect(c.intercept).toBeCloseTo(0, 1);
  });
});

describe('regression edge cases', () => {
  it('follows sklearn for a constant yTrue and documents ddof=0 for error_std', () => {
    expect(regressionReport(f([2, 2, 2]), f([2, 2, 2])).metrics.r2).toBe(1);
    const m = regressionReport(f([2, 2, 2]), f([1, 2, 4])).metrics;
    expect(m.r2).toBe(0);
    expect(m.pearson_r).toBeNaN();
    expect(m.bias).toBeCloseTo(1 / 3, 15);
    expect(m.rmse ** 2).toBeCloseTo(m.bias ** 2 + m.error_std ** 2, 12);
    expect(regressionReport(f([1]), f([3])).metrics.error_std).toBe(0);
  });
});
