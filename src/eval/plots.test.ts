/**
 * The evaluation file's plot data: reliability bins against scikit-learn 1.2's
 * `calibration_curve(strategy='uniform')` (test/fixtures/golden/reliability.json, written by
 * scripts/golden_reliability.py), the regression grid's invariants, and permutation importance's
 * score and summary.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng } from '../core/index.js';
import {
  importanceMetric,
  importanceScore,
  regressionPlot,
  regressionReport,
  reliabilityBins,
  rocAuc,
  summarizeImportance,
  type ReliabilityBin,
} from './index.js';

interface ReliabilityCase {
  name: string;
  bins: number;
  y: number[];
  p: number[];
  expected: ReliabilityBin[];
}

const golden = JSON.parse(readFileSync(new URL('../../test/fixtures/golden/reliability.json', import.meta.url), 'utf8')) as { cases: ReliabilityCase[] };

describe('reliabilityBins', () => {
  it.each(golden.cases.map((c) => [c.name, c] as const))('matches calibration_curve(strategy="uniform"): %s', (_name, c) => {
    const got = reliabilityBins(Float64Array.from(c.y), Float64Array.from(c.p), c.bins);
    // Counts exactly (a probability on an edge goes to the same bin); edges (stored as b / bins,
    // numpy's are i * (1 / bins)) and means to rounding.
    expect(got.map((b) => b.count)).toEqual(c.expected.map((b) => b.count));
    for (const [i, b] of got.entries()) {
      expect(b.lower).toBeCloseTo(c.expected[i]!.lower, 15);
      expect(b.upper).toBeCloseTo(c.expected[i]!.upper, 15);
      expect(b.meanPredicted).toBeCloseTo(c.expected[i]!.meanPredicted, 14);
      expect(b.observed).toBeCloseTo(c.expected[i]!.observed, 14);
    }
    expect(got.reduce((a, b) => a + b.count, 0)).toBe(c.y.length);
  });

  it('leaves empty bins out and defaults to 10 bins', () => {
    const bins = reliabilityBins(Float64Array.from([0, 1, 1]), Float64Array.from([0.05, 0.95, 1]));
    expect(bins).toEqual([
      { lower: 0, upper: 0.1, count: 1, meanPredicted: 0.05, observed: 0 },
      { lower: 0.9, upper: 1, count: 2, meanPredicted: 0.975, observed: 1 },
    ]);
  });

  it('refuses what is not a probability or a label, naming the index and not the value', () => {
    expect(() => reliabilityBins(Float64Array.from([0, 1]), Float64Array.from([0.2, 1.5]))).toThrow(/p\[1\] is not a probability/);
    expect(() => reliabilityBins(Float64Array.from([0, 2]), Float64Array.from([0.2, 0.5]))).toThrow(MedfitError);
    expect(() => reliabilityBins(Float64Array.from([0]), Float64Array.from([0.2, 0.5]))).toThrow(/same length/);
    expect(() => reliabilityBins(Float64Array.from([0]), Float64Array.from([0.2]), 0)).toThrow(/bins/);
  });
});

describe('regressionPlot', () => {
  const rng = new Rng(3);
  const n = 537;
  // A model that shrinks the signal towards the mean and misses the noise.
  const signal = Float64Array.from({ length: n }, () => 70 + 12 * rng.normal());
  const yTrue = Float64Array.from(signal, (v) => v + 6 * rng.normal());
  const yPred = Float64Array.from(signal, (v) => 0.8 * v + 14);

  it('counts every row once on a shared, rounded range that holds both sides', () => {
    const plot = regressionPlot('weight', yTrue, yPred);
    expect(plot.output).toBe('weight');
    expect(plot.bins).toBe(24);
    expect(plot.counts).toHaveLength(24 * 24);
    expect(plot.counts.reduce((a, b) => a + b, 0)).toBe(n);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of [...yTrue, ...yPred]) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(plot.min).toBeLessThanOrEqual(lo);
    expect(plot.max).toBeGreaterThanOrEqual(hi);
    // Widened by less than two steps (the power of ten at least a bin wide) on each side, to round numbers.
    const step = 10 ** Math.ceil(Math.log10((hi - lo) / 24));
    expect(lo - plot.min).toBeLessThan(2 * step);
    expect(plot.max - hi).toBeLessThan(2 * step);
    expect([plot.min % 1, plot.max % 1]).toEqual([0, 0]);
    expect(plot.min).not.toBe(lo);
    expect(plot.max).not.toBe(hi);
    expect(String(plot.min).length).toBeLessThan(8);
  });

  it('puts a perfect prediction on the diagonal', () => {
    const plot = regressionPlot('y', yTrue, yTrue.slice(), 12);
    for (let r = 0; r < 12; r++) for (let c = 0; c < 12; c++) if (r !== c) expect(plot.counts[r * 12 + c]).toBe(0);
    expect(plot.counts.reduce((a, b) => a + b, 0)).toBe(n);
    for (const g of plot.residuals) {
      expect(g.residualMean).toBe(0);
      expect(g.residualStd).toBe(0);
    }
  });

  it('summarises residuals by decile of the prediction: counts, means and spreads that add up', () => {
    const plot = regressionPlot('y', yTrue, yPred);
    expect(plot.residuals).toHaveLength(10);
    expect(plot.residuals.reduce((a, g) => a + g.count, 0)).toBe(n);
    for (const g of plot.residuals) expect(g.count === 53 || g.count === 54).toBe(true);
    for (let g = 1; g < 10; g++) expect(plot.residuals[g]!.predictedMean).toBeGreaterThan(plot.residuals[g - 1]!.predictedMean);
    // The groups' means and spreads recombine into the overall bias and error SD.
    const overall = regressionReport(yTrue, yPred).metrics;
    const mean = plot.residuals.reduce((a, g) => a + g.count * g.residualMean, 0) / n;
    const second = plot.residuals.reduce((a, g) => a + g.count * (g.residualStd ** 2 + g.residualMean ** 2), 0) / n;
    expect(mean).toBeCloseTo(overall.bias, 10);
    expect(Math.sqrt(second - mean ** 2)).toBeCloseTo(overall.error_std, 10);
    // Shrunk predictions: over-predicted at the bottom, under-predicted at the top.
    expect(plot.residuals[0]!.residualMean).toBeGreaterThan(0);
    expect(plot.residuals[9]!.residualMean).toBeLessThan(0);
  });

  it('keeps every residual group at least 10 rows, and has none under 10 rows', () => {
    expect(regressionPlot('y', yTrue.subarray(0, 35), yPred.subarray(0, 35)).residuals.map((g) => g.count)).toEqual([11, 12, 12]);
    expect(regressionPlot('y', yTrue.subarray(0, 9), yPred.subarray(0, 9)).residuals).toEqual([]);
  });

  it('rounds the range past its extreme values, never onto one', () => {
    // The step is the power of ten at least one of the 24 bins wide: 100 for a span of 321.
    const plot = regressionPlot('progression', Float64Array.from([25, 151, 346]), Float64Array.from([70, 160, 250]));
    expect([plot.min, plot.max]).toEqual([0, 400]);
    const probs = regressionPlot('p', Float64Array.from([0.013, 0.5, 0.987]), Float64Array.from([0.2, 0.5, 0.8]));
    expect([probs.min, probs.max]).toEqual([0, 1]);
    // Values recorded to the step: a bound that would land on the extreme value moves one step out.
    const tiny = regressionPlot('hba1c', Float64Array.from([5, 6, 7, 14]), Float64Array.from([5.5, 6, 7, 9]));
    expect([tiny.min, tiny.max]).toEqual([4, 15]);
  });

  it('handles a constant output and refuses bad input', () => {
    const plot = regressionPlot('y', Float64Array.from([5, 5, 5]), Float64Array.from([5, 5, 5]), 4);
    expect(plot.max).toBeGreaterThan(plot.min);
    expect(plot.counts.reduce((a, b) => a + b, 0)).toBe(3);
    expect(() => regressionPlot('y', Float64Array.from([1, NaN]), Float64Array.from([1, 2]))).toThrow(/yTrue\[1\]/);
    expect(() => regressionPlot('y', new Float64Array(0), new Float64Array(0))).toThrow(MedfitError);
  });
});

describe('permutation importance: score and summary', () => {
  it('scores binary by AUROC, multiclass by accuracy, regression by R² (several outputs: their mean)', () => {
    expect(importanceMetric('binary')).toBe('auroc');
    expect(importanceMetric('multiclass')).toBe('accuracy');
    expect(importanceMetric('regression')).toBe('r2');
    const y = Float64Array.from([0, 1, 1, 0]);
    const p = Float64Array.from([0.8, 0.2, 0.3, 0.7, 0.4, 0.6, 0.9, 0.1]);
    expect(importanceScore('binary', y, p, 2)).toBe(rocAuc(y, Float64Array.from([0.2, 0.7, 0.6, 0.1])));
    const y3 = Float64Array.from([0, 1, 2, 2]);
    const p3 = Float64Array.from([0.6, 0.3, 0.1, 0.1, 0.8, 0.1, 0.5, 0.2, 0.3, 0.1, 0.1, 0.8]);
    expect(importanceScore('multiclass', y3, p3, 3)).toBe(0.75);
    const a = Float64Array.from([1, 2, 3, 4]);
    const b = Float64Array.from([1.5, 1.5, 3.5, 3.5]);
    const c = Float64Array.from([10, 30, 20, 40]);
    const d = Float64Array.from([12, 28, 22, 38]);
    const inter = (u: Float64Array, v: Float64Array) => Float64Array.from({ length: 8 }, (_, i) => (i % 2 ? v : u)[i >> 1]!);
    const both = importanceScore('regression', inter(a, c), inter(b, d), 1, 2);
    expect(both).toBeCloseTo((regressionReport(a, b).metrics.r2 + regressionReport(c, d).metrics.r2) / 2, 14);
    expect(importanceScore('regression', a, b, 1)).toBe(regressionReport(a, b).metrics.r2);
  });

  it('summarises drops as mean ± population SD, largest first, leaving undefined drops out', () => {
    const s = summarizeImportance(
      'auroc',
      3,
      new Map([
        ['noise', [0.01, -0.01, 0, NaN]],
        ['age', [0.2, 0.3, 0.1]],
        ['never', [NaN]],
      ]),
    );
    expect(s.metric).toBe('auroc');
    expect(s.repeats).toBe(3);
    expect(s.features.map((f) => f.feature)).toEqual(['age', 'noise']);
    expect(s.features[0]!.drop).toBeCloseTo(0.2, 14);
    expect(s.features[0]!.std).toBeCloseTo(Math.sqrt(0.02 / 3), 14);
    expect(s.features[1]).toEqual({ feature: 'noise', drop: 0, std: Math.sqrt(0.0002 / 3) });
  });
});
