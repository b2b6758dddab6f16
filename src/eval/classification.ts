/**
 * The classification report: every metric of CLASSIFICATION_METRICS, the AUROC confidence
 * interval, the confusion matrix and the ROC/PR curves, agreeing with scikit-learn 1.2 (see
 * scripts/golden_metrics.py for the reference of each number).
 *
 * Choices where sklearn has no single answer, so that readers of a report know what they see:
 * - Binary: every metric reads column 1 of `proba` only (the positive class); column 0 is ignored,
 *   so rows need not sum to 1. Predicted positive when p1 >= threshold (default 0.5).
 * - Multiclass: prediction is the argmax, the first class on ties (numpy's argmax).
 *   precision, recall, f1 and specificity are macro averages over the labels present in yTrue or
 *   in the predictions (sklearn's default label set); zero denominators give 0 (zero_division=0).
 *   auroc and auprc are macro averages of one-vs-rest values, calibration slope and intercept
 *   the mean of one-vs-rest values; a class whose one-vs-rest problem is undefined (absent from
 *   yTrue) is left out of those means, and the mean is NaN when no class is defined.
 *   log_loss clips to [eps, 1-eps] (eps = 2.22e-16, sklearn 1.2's eps='auto') and renormalises
 *   rows, as sklearn does; brier is the mean over rows of Σ_c (p_c − onehot_c)² on the raw rows
 *   (sklearn 1.2 has no multiclass Brier); its range is [0, 2], not [0, 1].
 * - Ranking metrics (auroc, auprc, the CI) are NaN when yTrue holds a single class.
 */
import type { ClassificationMetricName } from '../core/index.js';
import { Errors } from '../core/index.js';
import { calibrationOf } from './calibration.js';
import type { DelongResult, PrCurve, RocCurve, SplitScores } from './ranking.js';
import { downsamplePr, downsampleRoc, microSplit, rankBinary, splitScores } from './ranking.js';
import { checkFinite, checkLabels } from './validate.js';

/** Curves in a report keep at most this many points. */
export const MAX_CURVE_POINTS = 200;

/** Log-loss clipping: float64 machine epsilon, sklearn 1.2's `eps='auto'` default. */
export const LOG_LOSS_EPS = 2.220446049250313e-16;

/** Precision, recall, F1 and AUROC, one class or averaged. */
export interface ClassAverages {
  precision: number;
  recall: number;
  f1: number;
  auroc: number;
}

/** One class of a multiclass report. */
export interface PerClassMetrics extends ClassAverages {
  label: number;
  /** Rows whose true class is `label`. */
  support: number;
}

/** Everything `classificationReport` measures. */
export interface ClassificationReport {
  metrics: Record<ClassificationMetricName, number>;
  /**
   * 95% interval of `metrics.auroc` by DeLong's method, `auc ± 1.96·sqrt(var)` clipped to [0, 1].
   * Multiclass: the mean of the per-class one-vs-rest bounds (an approximation: it ignores the
   * covariance between classes). NaN when undefined (one class, or fewer than 2 of either).
   */
  aurocCi: { lower: number; upper: number; level: 0.95; method: 'delong' };
  /** The decision threshold on p1 for binary; null for multiclass (argmax). */
  threshold: number | null;
  /** counts[true][pred], k×k. */
  confusion: number[][];
  /**
   * ROC curve, sklearn's `roc_curve` downsampled evenly to at most 200 points (endpoints kept).
   * Multiclass: the micro-average curve (every row×class cell one binary example); note its
   * area is not `metrics.auroc`, which is the macro average.
   */
  roc: RocCurve;
  /** PR curve, sklearn's `precision_recall_curve`, downsampled as `roc`; micro-average for multiclass. */
  pr: PrCurve;
  /** Multiclass only: one entry per class 0..k-1. */
  perClass?: PerClassMetrics[];
  /** Multiclass only: macro and support-weighted averages (sklearn's `average=` options). */
  averages?: { macro: ClassAverages; weighted: ClassAverages };
}

/** Options of {@link classificationReport}. */
export interface ClassificationReportOptions {
  /** Binary only (ignored for multiclass): predict positive when p1 >= threshold. Default 0.5. */
  threshold?: number;
}

const FN = 'classificationReport';

/**
 * Evaluates class probabilities against true classes.
 * @param yTrue class indices 0..k-1, one per row
 * @param proba rows×k row-major probabilities (binary: k=2, column 1 is the positive class);
 *   rows that do not sum to 1 are tolerated
 * @param k number of classes, at least 2
 * @throws MedfitError MEDFIT_ERR_BAD_DATA on length mismatch, empty input, labels outside 0..k-1 or
 *   non-finite probabilities; MEDFIT_ERR_BAD_PARAM on a bad `k` or `threshold`.
 */
export function classificationReport(
  yTrue: Float64Array,
  proba: Float64Array,
  k: number,
  opts: ClassificationReportOptions = {},
): ClassificationReport {
  if (!(Number.isInteger(k) && k >= 2)) throw Errors.badParam('k', 'must be an integer of at least 2 (binary is k=2)');
  const n = yTrue.length;
  if (proba.length !== n * k) {
    throw Errors.badData(FN, `yTrue has ${n} rows but proba has ${proba.length} values; expected ${n} × ${k} = ${n * k}`);
  }
  checkLabels(FN, 'yTrue', yTrue, k);
  checkFinite(FN, 'proba', proba);
  if (k === 2) {
    const threshold = opts.threshold ?? 0.5;
    if (!Number.isFinite(threshold)) throw Errors.badParam('threshold', 'must be a finite number');
    return binaryReport(yTrue, proba, threshold);
  }
  return multiclassReport(yTrue, proba, k);
}

const ratio = (num: number, den: number): number => (den > 0 ? num / den : 0);
/** sklearn's F1: 2PR/(P+R), 0 when both are 0. */
const f1Of = (p: number, r: number): number => (p + r > 0 ? (2 * p * r) / (p + r) : 0);

/** -log of the clipped, renormalised probability of the true class, averaged (sklearn 1.2). */
function clip(p: number): number {
  return p < LOG_LOSS_EPS ? LOG_LOSS_EPS : p > 1 - LOG_LOSS_EPS ? 1 - LOG_LOSS_EPS : p;
}

function binaryReport(y: Float64Array, proba: Float64Array, threshold: number): ClassificationReport {
  const n = y.length;
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  let logLoss = 0;
  let brier = 0;
  for (let i = 0; i < n; i++) {
    const p = proba[2 * i + 1]!;
    const pos = y[i] === 1;
    if (p >= threshold) {
      if (pos) tp++;
      else fp++;
    } else if (pos) fn++;
    else tn++;
    // sklearn builds [1-q, q] from the clipped q and renormalises; (1-q)+q is not always exactly 1.
    const q = clip(p);
    const q0 = 1 - q;
    logLoss -= Math.log((pos ? q : q0) / (q0 + q));
    brier += (p - (pos ? 1 : 0)) ** 2;
  }
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  const specificity = ratio(tn, tn + fp);
  // Balanced accuracy averages the recall of the classes present in yTrue only (sklearn).
  const present = (tp + fn > 0 ? 1 : 0) + (tn + fp > 0 ? 1 : 0);
  const balanced = ((tp + fn > 0 ? recall : 0) + (tn + fp > 0 ? specificity : 0)) / present;
  const rank = rankBinary(splitScores(y, 1, proba, 2, 1));
  const cal = calibrationOf(y, 1, proba, 2, 1);
  return {
    metrics: {
      auroc: rank.delong.auc,
      auprc: rank.averagePrecision,
      accuracy: (tp + tn) / n,
      balanced_accuracy: balanced,
      precision,
      recall,
      specificity,
      f1: f1Of(precision, recall),
      log_loss: logLoss / n,
      brier: brier / n,
      calibration_slope: cal.slope,
      calibration_intercept: cal.intercept,
    },
    aurocCi: { lower: rank.delong.lower, upper: rank.delong.upper, level: 0.95, method: 'delong' },
    threshold,
    confusion: [
      [tn, fp],
      [fn, tp],
    ],
    roc: downsampleRoc(rank.roc, MAX_CURVE_POINTS),
    pr: downsamplePr(rank.pr, MAX_CURVE_POINTS),
  };
}

/** Mean of the non-NaN values; NaN when there are none. */
function meanDefined(values: number[]): number {
  let s = 0;
  let c = 0;
  for (const v of values) {
    if (!Number.isNaN(v)) {
      s += v;
      c++;
    }
  }
  return c ? s / c : NaN;
}

/**
 * Mean of the per-class bounds over the classes whose AUROC is defined (those the macro AUROC
 * averages); NaN if any of them has no interval, so the interval never describes other classes
 * than the point estimate.
 */
function meanCi(cis: DelongResult[]): { lower: number; upper: number } {
  const defined = cis.filter((c) => !Number.isNaN(c.auc));
  if (defined.length === 0) return { lower: NaN, upper: NaN };
  return {
    lower: defined.reduce((s, c) => s + c.lower, 0) / defined.length,
    upper: defined.reduce((s, c) => s + c.upper, 0) / defined.length,
  };
}

function multiclassReport(y: Float64Array, proba: Float64Array, k: number): ClassificationReport {
  const n = y.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let logLoss = 0;
  let brier = 0;
  for (let i = 0; i < n; i++) {
    const row = i * k;
    const t = y[i]!;
    let best = 0;
    let sum = 0;
    for (let c = 0; c < k; c++) {
      const p = proba[row + c]!;
      if (p > proba[row + best]!) best = c; // strict: the first maximum wins ties
      sum += clip(p);
      brier += (p - (c === t ? 1 : 0)) ** 2;
    }
    confusion[t]![best]!++;
    logLoss -= Math.log(clip(proba[row + t]!) / sum);
  }

  const perClass: PerClassMetrics[] = [];
  const specificity: number[] = [];
  const cis: DelongResult[] = [];
  const splits: SplitScores[] = [];
  const aps: number[] = [];
  const slopes: number[] = [];
  const intercepts: number[] = [];
  const inLabelSet: boolean[] = [];
  let correct = 0;
  for (let c = 0; c < k; c++) {
    const tp = confusion[c]![c]!;
    let support = 0;
    let predicted = 0;
    for (let d = 0; d < k; d++) {
      support += confusion[c]![d]!;
      predicted += confusion[d]![c]!;
    }
    correct += tp;
    const fp = predicted - tp;
    const fn = support - tp;
    const tn = n - tp - fp - fn;
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    inLabelSet.push(support > 0 || predicted > 0);
    specificity.push(ratio(tn, tn + fp));
    const split = splitScores(y, c, proba, k, c);
    splits.push(split);
    const rank = rankBinary(split);
    const cal = calibrationOf(y, c, proba, k, c);
    cis.push(rank.delong);
    aps.push(rank.averagePrecision);
    slopes.push(cal.slope);
    intercepts.push(cal.intercept);
    perClass.push({ label: c, precision, recall, f1: f1Of(precision, recall), support, auroc: rank.delong.auc });
  }

  // sklearn averages precision/recall/F1 over the labels seen in yTrue or the predictions.
  const labelled = perClass.filter((_, c) => inLabelSet[c]);
  const avg = (key: 'precision' | 'recall' | 'f1') => labelled.reduce((s, m) => s + m[key], 0) / labelled.length;
  const wavg = (key: keyof ClassAverages) => {
    let s = 0;
    for (const m of perClass) if (m.support > 0) s += m[key] * m.support;
    return s / n;
  };
  const macro: ClassAverages = {
    precision: avg('precision'),
    recall: avg('recall'),
    f1: avg('f1'),
    auroc: meanDefined(perClass.map((m) => m.auroc)),
  };
  const weighted: ClassAverages = { precision: wavg('precision'), recall: wavg('recall'), f1: wavg('f1'), auroc: wavg('auroc') };
  const micro = rankBinary(microSplit(splits));
  return {
    metrics: {
      auroc: macro.auroc,
      auprc: meanDefined(aps),
      accuracy: correct / n,
      // Mean recall over the classes present in yTrue (sklearn's balanced_accuracy_score).
      balanced_accuracy: meanDefined(perClass.map((m) => (m.support > 0 ? m.recall : NaN))),
      precision: macro.precision,
      recall: macro.recall,
      specificity: specificity.filter((_, c) => inLabelSet[c]).reduce((s, v) => s + v, 0) / labelled.length,
      f1: macro.f1,
      log_loss: logLoss / n,
      brier: brier / n,
      calibration_slope: meanDefined(slopes),
      calibration_intercept: meanDefined(intercepts),
    },
    aurocCi: { ...meanCi(cis), level: 0.95, method: 'delong' },
    threshold: null,
    confusion,
    roc: downsampleRoc(micro.roc, MAX_CURVE_POINTS),
    pr: downsamplePr(micro.pr, MAX_CURVE_POINTS),
    perClass,
    averages: { macro, weighted },
  };
}
