/**
 * What a version's evaluation file carries beyond the metrics, for the pages that plot it: global
 * feature importance, the reliability curve's bins and, for regression, predicted-versus-actual
 * and residual summaries. Every figure comes from out-of-fold predictions (never from rows a model
 * was fitted on), and none of them holds a record's values: counts and means over bins only, so
 * the evaluation file can be shown to anyone who may read the model.
 */
import { Errors, type Task } from '../core/index.js';
import { rocAuc } from './ranking.js';
import { regressionReport } from './regression.js';
import { checkFinite, checkLabels, checkSameLength } from './validate.js';

/** One input column's permutation importance. */
export interface FeatureImportance {
  /** The input column (a raw column name, before the pipeline's encoding). */
  feature: string;
  /** Mean drop of the score when the column is shuffled within each validation fold (higher: more important). */
  drop: number;
  /** Standard deviation (ddof = 0, as scikit-learn's) of the drop over folds × repeats. */
  std: number;
}

/** Permutation importance on out-of-fold predictions (Breiman 2001; sklearn's `permutation_importance` on held-out rows). */
export interface PermutationImportance {
  /** The score whose drop is measured: `auroc` (binary), `accuracy` (multiclass), `r2` (regression). */
  metric: string;
  /** Shuffles per column and fold. */
  repeats: number;
  /** Sorted by `drop`, largest first. */
  features: FeatureImportance[];
}

/**
 * One bin of a reliability (calibration) curve: rows whose predicted probability fell in
 * (lower, upper], the first bin also holding 0 (scikit-learn's `calibration_curve` bins this way:
 * a probability on an edge belongs to the bin below it).
 */
export interface ReliabilityBin {
  lower: number;
  upper: number;
  count: number;
  /** Mean predicted probability of the positive class over the bin's rows. */
  meanPredicted: number;
  /** Share of the bin's rows that are positive. */
  observed: number;
}

/** One regression output's plots, from out-of-fold predictions. */
export interface RegressionPlot {
  output: string;
  /**
   * The axes' range: both axes share it so the diagonal is y = x. The data's range rounded
   * outward (see `regressionPlot`), so neither bound is a record's value.
   */
  min: number;
  max: number;
  /** Grid size: `counts` is bins × bins, row-major, row = actual bin (from min), column = predicted bin. */
  bins: number;
  counts: number[];
  /**
   * Residuals (predicted − actual) by decile of the prediction: where the model is biased. Fewer
   * groups under 100 rows (each averages at least 10), none under 10 rows.
   */
  residuals: { predictedMean: number; residualMean: number; residualStd: number; count: number }[];
}

/** Added to a version's evaluation report (the `evaluation.json` file) by training. */
export interface EvaluationPlots {
  importance?: PermutationImportance;
  /** Binary classification: 10 equal-width bins of the out-of-fold probability. */
  reliability?: ReliabilityBin[];
  /** Regression: one per output. */
  regression?: RegressionPlot[];
}

/** Bins of the reliability curve stored with a binary model (the web page's calibration plot). */
export const RELIABILITY_BINS = 10;

/**
 * Fewest rows for a version's evaluation to carry a reliability curve or a regression plot: on
 * fewer, a bin or a grid cell is one or two records, and the evaluation file is readable by any
 * key that may read the model.
 */
export const PLOT_MIN_ROWS = 50;

/**
 * Fewest rows a stored reliability bin averages (`minCount` of {@link reliabilityBins} when
 * training stores one): a bin of one row would publish that record's probability and label.
 */
export const RELIABILITY_MIN_BIN_ROWS = 5;

/**
 * The reliability (calibration) curve of binary predictions: `bins` equal-width bins of the
 * positive-class probability on [0, 1], each with its row count, mean predicted probability and
 * observed share of positives. Agrees with scikit-learn 1.2's `calibration_curve(strategy='uniform')`
 * (edges as `np.linspace(0, 1, bins + 1)`; a probability on an edge goes to the bin below; the
 * stored `lower`/`upper` are `b / bins`, which differ from numpy's edges by at most an ulp),
 * golden values in test/fixtures/golden/reliability.json. Empty bins are left out, as
 * scikit-learn leaves them out: a bin without rows has no mean to plot, and each bin carries its
 * own `lower`/`upper`, so a plot still knows where the gaps are.
 * @param y 0/1 labels.
 * @param p Predicted probabilities of class 1, in [0, 1].
 * @param minCount Bins with fewer rows are left out too (1, scikit-learn's behaviour, by default;
 *   training stores curves with {@link RELIABILITY_MIN_BIN_ROWS}).
 * @throws MedfitError MEDFIT_ERR_BAD_DATA on a length mismatch, labels other than 0/1, empty or
 *   non-finite input, a probability outside [0, 1], or `bins` not a positive integer.
 */
export function reliabilityBins(y: Float64Array, p: Float64Array, bins = RELIABILITY_BINS, minCount = 1): ReliabilityBin[] {
  const fn = 'reliabilityBins';
  checkSameLength(fn, 'y', y, 'p', p);
  checkLabels(fn, 'y', y, 2);
  checkFinite(fn, 'p', p);
  if (!(Number.isInteger(bins) && bins >= 1)) throw Errors.badData(fn, `bins must be a positive integer (got ${bins})`);
  // numpy's linspace computes edge i as i * (1 / bins), not i / bins (3 * 0.1 is 0.30000000000000004):
  // the same products put a probability on an edge in the same bin as scikit-learn does.
  const width = 1 / bins;
  const edge = (i: number) => (i === bins ? 1 : i * width);
  const count = new Float64Array(bins);
  const sumP = new Float64Array(bins);
  const sumY = new Float64Array(bins);
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    if (v < 0 || v > 1) throw Errors.badData(fn, `p[${i}] is not a probability in [0, 1]`);
    // The bin is the number of inner edges strictly below v; the floor is a first guess that
    // rounding can put one bin off, corrected against the edges themselves.
    let b = Math.min(bins - 1, Math.floor(v * bins));
    while (b > 0 && !(edge(b) < v)) b--;
    while (b < bins - 1 && edge(b + 1) < v) b++;
    count[b]!++;
    sumP[b]! += v;
    sumY[b]! += y[i]!;
  }
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    if (count[b] === 0 || count[b]! < minCount) continue;
    // Stored as b / bins (0.3, not numpy's 0.30000000000000004): what a page prints and a reader expects.
    out.push({ lower: b / bins, upper: (b + 1) / bins, count: count[b]!, meanPredicted: sumP[b]! / count[b]!, observed: sumY[b]! / count[b]! });
  }
  return out;
}

/** Grid size of the predicted-versus-actual plot stored per regression output. */
export const REGRESSION_PLOT_BINS = 24;

/** Groups of the residual summary: deciles of the prediction. */
export const RESIDUAL_GROUPS = 10;

/**
 * Fewest rows a residual group averages: with fewer rows than groups × this, there are fewer
 * groups, so that no group's means are a handful of records' values.
 */
export const RESIDUAL_MIN_ROWS = 10;

/**
 * One regression output's predicted-versus-actual grid and residual summary. Both axes share one
 * range, the data's [min, max] widened outward to a round step (the smallest power of ten at
 * least one bin wide) and by a whole step where a bound would fall on an extreme value itself,
 * so that the stored bounds never are the most extreme records' values; the grid is
 * `bins` × `bins` counts (row = actual bin, column = predicted bin), so a perfect prediction fills
 * the diagonal only. Residuals (predicted − actual) are summarised by decile of the prediction:
 * mean, population standard deviation (ddof = 0, as `error_std`) and count; fewer groups when
 * there are under {@link RESIDUAL_GROUPS} × {@link RESIDUAL_MIN_ROWS} rows, none under
 * {@link RESIDUAL_MIN_ROWS}. Only counts and means are kept: no row's values.
 * @throws MedfitError MEDFIT_ERR_BAD_DATA on a length mismatch, empty or non-finite input, or
 *   `bins` not a positive integer.
 */
export function regressionPlot(output: string, yTrue: Float64Array, yPred: Float64Array, bins = REGRESSION_PLOT_BINS): RegressionPlot {
  const fn = 'regressionPlot';
  checkSameLength(fn, 'yTrue', yTrue, 'yPred', yPred);
  const n = yTrue.length;
  if (n === 0) throw Errors.badData(fn, 'yTrue is empty; a plot needs at least one row');
  checkFinite(fn, 'yTrue', yTrue);
  checkFinite(fn, 'yPred', yPred);
  if (!(Number.isInteger(bins) && bins >= 1)) throw Errors.badData(fn, `bins must be a positive integer (got ${bins})`);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, yTrue[i]!, yPred[i]!);
    hi = Math.max(hi, yTrue[i]!, yPred[i]!);
  }
  const { min, max } = roundedRange(lo, hi, bins);
  const scale = bins / (max - min);
  const cell = (v: number) => Math.min(bins - 1, Math.max(0, Math.floor((v - min) * scale)));
  const counts = new Array<number>(bins * bins).fill(0);
  for (let i = 0; i < n; i++) counts[cell(yTrue[i]!) * bins + cell(yPred[i]!)]!++;

  const residuals: RegressionPlot['residuals'] = [];
  const groups = Math.min(RESIDUAL_GROUPS, Math.floor(n / RESIDUAL_MIN_ROWS));
  if (groups > 0) {
    // Ties broken by row, so the groups do not depend on the sort's stability.
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => yPred[a]! - yPred[b]! || a - b);
    for (let g = 0; g < groups; g++) {
      const from = Math.floor((g * n) / groups);
      const to = Math.floor(((g + 1) * n) / groups);
      let sp = 0;
      let sr = 0;
      for (let k = from; k < to; k++) {
        sp += yPred[order[k]!]!;
        sr += yPred[order[k]!]! - yTrue[order[k]!]!;
      }
      const count = to - from;
      const mr = sr / count;
      // Around the mean in a second pass: the one-pass formula cancels catastrophically.
      let ss = 0;
      for (let k = from; k < to; k++) ss += (yPred[order[k]!]! - yTrue[order[k]!]! - mr) ** 2;
      residuals.push({ predictedMean: sp / count, residualMean: mr, residualStd: Math.sqrt(ss / count), count });
    }
  }
  return { output, min, max, bins, counts, residuals };
}

/**
 * [lo, hi] widened outward to multiples of the smallest power of ten that is at least one of
 * `bins` bins of the span (of |lo|, or 1, when lo = hi), and by one more step where a bound lands
 * on lo or hi exactly: the bounds are round numbers that are never the extreme records' values
 * (an integer target's extremes, or values recorded to the step, would otherwise survive).
 */
function roundedRange(lo: number, hi: number, bins: number): { min: number; max: number } {
  const span = hi - lo || Math.abs(lo) || 1;
  const step = 10 ** Math.ceil(Math.log10(span / bins));
  // toPrecision trims the binary noise of k × step (0.30000000000000004); the cell index clamps
  // a value that the trimming leaves a hair outside.
  let min = Number((Math.floor(lo / step) * step).toPrecision(12));
  if (min >= lo) min = Number((min - step).toPrecision(12));
  let max = Number((Math.ceil(hi / step) * step).toPrecision(12));
  if (max <= hi) max = Number((max + step).toPrecision(12));
  return { min, max };
}

/** The score whose drop permutation importance measures for a task. */
export type ImportanceMetric = 'auroc' | 'accuracy' | 'r2';

/** `auroc` for binary tasks, `accuracy` for multiclass, `r2` for regression. */
export function importanceMetric(task: Task): ImportanceMetric {
  return task === 'binary' ? 'auroc' : task === 'multiclass' ? 'accuracy' : 'r2';
}

/**
 * The score permutation importance compares (see {@link importanceMetric}): AUROC of the class-1
 * probability (binary), the share of rows whose most probable class is the true one
 * (multiclass), R² (regression; with several outputs, the mean of their R²). `pred` is as models
 * predict: rows × classes probabilities, or rows × outputs values. NaN when undefined (AUROC of
 * one class), which callers leave out.
 */
export function importanceScore(task: Task, yTrue: Float64Array, pred: Float64Array, nClasses: number, nOutputs = 1): number {
  if (task === 'binary') {
    const p1 = new Float64Array(yTrue.length);
    for (let i = 0; i < p1.length; i++) p1[i] = pred[i * 2 + 1]!;
    return rocAuc(yTrue, p1);
  }
  if (task === 'multiclass') {
    let right = 0;
    for (let i = 0; i < yTrue.length; i++) {
      let best = 0;
      for (let c = 1; c < nClasses; c++) if (pred[i * nClasses + c]! > pred[i * nClasses + best]!) best = c;
      if (best === yTrue[i]) right++;
    }
    return right / yTrue.length;
  }
  if (nOutputs === 1) return regressionReport(yTrue, pred).metrics.r2;
  const n = yTrue.length / nOutputs;
  let sum = 0;
  const t = new Float64Array(n);
  const q = new Float64Array(n);
  for (let j = 0; j < nOutputs; j++) {
    for (let i = 0; i < n; i++) {
      t[i] = yTrue[i * nOutputs + j]!;
      q[i] = pred[i * nOutputs + j]!;
    }
    sum += regressionReport(t, q).metrics.r2;
  }
  return sum / nOutputs;
}

/**
 * Permutation importance from each column's drops (one per fold × repeat; NaN drops, from folds
 * where the score is undefined, are left out): mean and population standard deviation (ddof = 0,
 * as scikit-learn's `permutation_importance`), sorted by mean drop, largest first (ties by name,
 * so the order is stable). A column with no defined drop is left out.
 */
export function summarizeImportance(metric: string, repeats: number, drops: ReadonlyMap<string, readonly number[]>): PermutationImportance {
  const features: FeatureImportance[] = [];
  for (const [feature, all] of drops) {
    const v = all.filter((d) => !Number.isNaN(d));
    if (v.length === 0) continue;
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    features.push({ feature, drop: mean, std });
  }
  features.sort((a, b) => b.drop - a.drop || (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0));
  return { metric, repeats, features };
}
