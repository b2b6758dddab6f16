/**
 * Every metric against scikit-learn 1.2 / SciPy on the inputs of
 * test/fixtures/golden/metrics.json (written by scripts/golden_metrics.py).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ClassificationMetricName, RegressionMetricName } from '../core/index.js';
import type { PrCurve, RocCurve } from './index.js';
import {
  averagePrecision,
  classificationReport,
  MAX_CURVE_POINTS,
  precisionRecallCurve,
  regressionReport,
  rocAuc,
  rocAucDelong,
  rocCurve,
  Z_975,
} from './index.js';

interface ClassificationCase {
  name: string;
  task: 'binary' | 'multiclass';
  k: number;
  threshold: number | null;
  yTrue: number[];
  proba: number[];
  expected: {
    metrics: Record<ClassificationMetricName, number>;
    calibrationSlopeSklearn: number;
    aurocCi: { lower: number; upper: number };
    confusion: number[][];
    roc: RocCurve;
    pr: PrCurve;
    perClass?: Array<{ label: number; precision: number; recall: number; f1: number; support: number; auroc: number }>;
    averages?: Record<'macro' | 'weighted', Record<'precision' | 'recall' | 'f1' | 'auroc', number>>;
  };
}
interface RegressionCase {
  name: string;
  task: 'regression';
  yTrue: number[];
  yPred: number[];
  expected: { metrics: Record<RegressionMetricName, number> };
}
type Case = ClassificationCase | RegressionCase;

const golden = JSON.parse(readFileSync(new URL('../../test/fixtures/golden/metrics.json', import.meta.url), 'utf8')) as {
  z975: number;
  cases: Case[];
};
const classification = golden.cases.filter((c): c is ClassificationCase => c.task !== 'regression');
const regression = golden.cases.filter((c): c is RegressionCase => c.task === 'regression');

/** |actual − expected| ≤ tol·max(1, |expected|): absolute near 0, relative for large values. */
function near(actual: number, expected: number, tol: number, what: string): void {
  const err = Math.abs(actual - expected);
  expect(err <= tol * Math.max(1, Math.abs(expected)), `${what}: got ${actual}, expected ${expected}`).toBe(true);
}

function nearAll(actual: number[], expected: number[], tol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  actual.forEach((v, i) => near(v, expected[i]!, tol, `${what}[${i}]`));
}

/** The points a report keeps of a full curve: even by index, endpoints kept. */
function expectDownsampled(actual: number[], full: number[], what: string): void {
  if (full.length <= MAX_CURVE_POINTS) return nearAll(actual, full, 1e-12, what);
  expect(actual.length, `${what}: length`).toBe(MAX_CURVE_POINTS);
  actual.forEach((v, i) => near(v, full[Math.round((i * (full.length - 1)) / (MAX_CURVE_POINTS - 1))]!, 1e-12, `${what}[${i}]`));
}

const TOL = 1e-9;

describe('golden file', () => {
  it('has every kind of case and the same z as scipy', () => {
    expect(classification.filter((c) => c.task === 'binary').length).toBeGreaterThanOrEqual(3);
    expect(classification.filter((c) => c.task === 'multiclass').length).toBeGreaterThanOrEqual(2);
    expect(regression.length).toBeGreaterThanOrEqual(2);
    expect(Z_975).toBe(golden.z975);
  });
});

describe.each(classification.map((c) => [c.name, c] as const))('classificationReport: %s', (_, c) => {
  const y = Float64Array.from(c.yTrue);
  const proba = Float64Array.from(c.proba);
  const report = classificationReport(y, proba, c.k, c.threshold === null ? {} : { threshold: c.threshold });
  const e = c.expected;

  it('matches every metric to 1e-9', () => {
    for (const [name, value] of Object.entries(e.metrics)) near(report.metrics[name as ClassificationMetricName], value, TOL, name);
    expect(Object.keys(report.metrics).sort()).toEqual(Object.keys(e.metrics).sort());
  });

  it("matches sklearn's own calibration slope to 1e-7", () => {
    // The stored slope is a NumPy Newton fit run to machine precision; sklearn's newton-cg stops at a
    // gradient tolerance, so it agrees only to ~1e-9 (up to 1.4e-9 on these cases).
    near(report.metrics.calibration_slope, e.calibrationSlopeSklearn, 1e-7, 'calibration_slope vs sklearn');
  });

  it('matches the DeLong interval of an independent O(n²) implementation', () => {
    near(report.aurocCi.lower, e.aurocCi.lower, TOL, 'aurocCi.lower');
    near(report.aurocCi.upper, e.aurocCi.upper, TOL, 'aurocCi.upper');
    expect(report.aurocCi.level).toBe(0.95);
    expect(report.aurocCi.method).toBe('delong');
  });

  it('matches the confusion matrix and the threshold', () => {
    expect(report.confusion).toEqual(e.confusion);
    expect(report.threshold).toBe(c.threshold);
  });

  it("keeps sklearn's curve points (evenly downsampled to at most 200)", () => {
    expectDownsampled(report.roc.fpr, e.roc.fpr, 'roc.fpr');
    expectDownsampled(report.roc.tpr, e.roc.tpr, 'roc.tpr');
    expectDownsampled(report.roc.thresholds, e.roc.thresholds, 'roc.thresholds');
    expectDownsampled(report.pr.precision, e.pr.precision, 'pr.precision');
    expectDownsampled(report.pr.recall, e.pr.recall, 'pr.recall');
    expect(report.pr.thresholds.length).toBe(report.pr.precision.length - 1);
    if (e.pr.thresholds.length < MAX_CURVE_POINTS) nearAll(report.pr.thresholds, e.pr.thresholds, 1e-12, 'pr.thresholds');
  });

  if (c.task === 'multiclass') {
    it('matches per-class values and the macro and weighted averages', () => {
      expect(report.perClass).toHaveLength(c.k);
      report.perClass!.forEach((m, i) => {
        const x = e.perClass![i]!;
        expect(m.label).toBe(x.label);
        expect(m.support).toBe(x.support);
        for (const key of ['precision', 'recall', 'f1', 'auroc'] as const) near(m[key], x[key], TOL, `perClass[${i}].${key}`);
      });
      for (const avg of ['macro', 'weighted'] as const) {
        for (const key of ['precision', 'recall', 'f1', 'auroc'] as const) {
          near(report.averages![avg][key], e.averages![avg][key], TOL, `averages.${avg}.${key}`);
        }
      }
    });
  } else {
    it('gives full curves, AUROC and AP identical to sklearn through the binary functions', () => {
      const yb = Float64Array.from(c.yTrue);
      const p1 = Float64Array.from(c.yTrue.map((_, i) => c.proba[2 * i + 1]!));
      const roc = rocCurve(yb, p1);
      nearAll(roc.fpr, e.roc.fpr, 1e-12, 'fpr');
      nearAll(roc.tpr, e.roc.tpr, 1e-12, 'tpr');
      nearAll(roc.thresholds, e.roc.thresholds, 1e-12, 'thresholds');
      const pr = precisionRecallCurve(yb, p1);
      nearAll(pr.precision, e.pr.precision, 1e-12, 'precision');
      nearAll(pr.recall, e.pr.recall, 1e-12, 'recall');
      nearAll(pr.thresholds, e.pr.thresholds, 1e-12, 'pr thresholds');
      near(rocAuc(yb, p1), e.metrics.auroc, TOL, 'rocAuc');
      near(averagePrecision(yb, p1), e.metrics.auprc, TOL, 'averagePrecision');
      const d = rocAucDelong(yb, p1);
      near(d.lower, e.aurocCi.lower, TOL, 'delong lower');
      near(d.upper, e.aurocCi.upper, TOL, 'delong upper');
      expect(report.perClass).toBeUndefined();
      expect(report.averages).toBeUndefined();
    });
  }
});

describe.each(regression.map((c) => [c.name, c] as const))('regressionReport: %s', (_, c) => {
  it('matches every metric to 1e-9', () => {
    const { metrics } = regressionReport(Float64Array.from(c.yTrue), Float64Array.from(c.yPred));
    expect(Object.keys(metrics).sort()).toEqual(Object.keys(c.expected.metrics).sort());
    for (const [name, value] of Object.entries(c.expected.metrics)) near(metrics[name as RegressionMetricName], value, TOL, name);
  });
});
