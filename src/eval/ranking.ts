/**
 * Ranking metrics of one binary problem: ROC and precision-recall curves, AUROC with DeLong's
 * variance, average precision. Everything starts from the positives' and the negatives' scores,
 * each sorted ascending (two typed-array sorts, no comparator: O(n log n) and fast), and walks or
 * merges them, so 1e6 rows cost two native sorts and a few linear passes.
 *
 * The curves reproduce scikit-learn 1.2 exactly, ties included: one point per distinct score
 * (tied scores are one threshold), ROC with `drop_intermediate=True` and a first threshold of
 * `max score + 1` (sklearn 1.2's convention; 1.3 switched to +Infinity, which JSON cannot carry).
 */
import { Errors } from '../core/index.js';
import { checkFinite, checkSameLength } from './validate.js';

/** Two-sided 97.5% standard normal quantile (scipy.stats.norm.ppf(0.975)), for 95% intervals. */
export const Z_975 = 1.959963984540054;

/** The scores of the positive and of the negative examples of a binary problem, each ascending. */
export interface SplitScores {
  pos: Float64Array;
  neg: Float64Array;
}

/**
 * Splits `values[i * stride + offset]` by whether `labels[i] === cls`, and sorts both halves.
 * The stride lets one-vs-rest read column `cls` of a row-major probability matrix in place.
 */
export function splitScores(labels: Float64Array, cls: number, values: Float64Array, stride = 1, offset = 0): SplitScores {
  const n = labels.length;
  let m = 0;
  for (let i = 0; i < n; i++) if (labels[i] === cls) m++;
  const pos = new Float64Array(m);
  const neg = new Float64Array(n - m);
  let a = 0;
  let b = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i * stride + offset]!;
    if (labels[i] === cls) pos[a++] = v;
    else neg[b++] = v;
  }
  pos.sort();
  neg.sort();
  return { pos, neg };
}

/** Merges ascending arrays into one ascending array (a k-way merge, pairwise). */
function mergeSorted(parts: Float64Array[]): Float64Array {
  let acc = parts[0] ?? new Float64Array(0);
  for (let p = 1; p < parts.length; p++) {
    const b = parts[p]!;
    const out = new Float64Array(acc.length + b.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < acc.length && j < b.length) out[k++] = acc[i]! <= b[j]! ? acc[i++]! : b[j++]!;
    while (i < acc.length) out[k++] = acc[i++]!;
    while (j < b.length) out[k++] = b[j++]!;
    acc = out;
  }
  return acc;
}

/**
 * Micro-average split of a multiclass problem from its one-vs-rest splits: every (row, class) cell
 * is one binary example, positive where the class is the row's label (sklearn:
 * `roc_curve(onehot.ravel(), proba.ravel())`). Merging the already sorted per-class halves costs
 * O(n·k·log k) instead of sorting n·k values again.
 */
export function microSplit(perClass: SplitScores[]): SplitScores {
  return { pos: mergeSorted(perClass.map((s) => s.pos)), neg: mergeSorted(perClass.map((s) => s.neg)) };
}

/** sklearn's `_binary_clf_curve`: cumulative counts at each distinct score, highest first. */
interface ClfCurve {
  tps: Float64Array;
  fps: Float64Array;
  thresholds: Float64Array;
}

function clfCurve({ pos, neg }: SplitScores): ClfCurve {
  const cap = pos.length + neg.length;
  const tps = new Float64Array(cap);
  const fps = new Float64Array(cap);
  const thr = new Float64Array(cap);
  let i = pos.length - 1;
  let j = neg.length - 1;
  let tp = 0;
  let fp = 0;
  let m = 0;
  while (i >= 0 || j >= 0) {
    // === groups -0 with +0, as numpy's diff does; NaN never gets here (inputs are checked).
    const t = i < 0 ? neg[j]! : j < 0 ? pos[i]! : Math.max(pos[i]!, neg[j]!);
    while (i >= 0 && pos[i] === t) {
      tp++;
      i--;
    }
    while (j >= 0 && neg[j] === t) {
      fp++;
      j--;
    }
    tps[m] = tp;
    fps[m] = fp;
    thr[m] = t;
    m++;
  }
  return { tps: tps.subarray(0, m), fps: fps.subarray(0, m), thresholds: thr.subarray(0, m) };
}

/** A ROC curve: false and true positive rates as the threshold decreases. */
export interface RocCurve {
  fpr: number[];
  tpr: number[];
  /** Decreasing; the first is `max score + 1` so that the curve starts at (0, 0). */
  thresholds: number[];
}

/** A precision-recall curve in sklearn's order: recall decreasing, ending at (recall 0, precision 1). */
export interface PrCurve {
  precision: number[];
  recall: number[];
  /** Increasing; one fewer than the points (the final (0, 1) point has no threshold). */
  thresholds: number[];
}

/** A curve as typed arrays: full curves can have a point per row, and number[] pushes are slow. */
export interface RocArrays {
  fpr: Float64Array;
  tpr: Float64Array;
  thresholds: Float64Array;
}
export interface PrArrays {
  precision: Float64Array;
  recall: Float64Array;
  thresholds: Float64Array;
}

function rocFromClf(c: ClfCurve): RocArrays {
  const L = c.tps.length;
  const keep = new Uint32Array(L);
  let m = 0;
  for (let i = 0; i < L; i++) {
    // drop_intermediate: a point collinear with its neighbours is never optimal and adds no area.
    if (i === 0 || i === L - 1) keep[m++] = i;
    else if (c.fps[i + 1]! - 2 * c.fps[i]! + c.fps[i - 1]! !== 0 || c.tps[i + 1]! - 2 * c.tps[i]! + c.tps[i - 1]! !== 0) keep[m++] = i;
  }
  const P = L ? c.tps[L - 1]! : 0;
  const N = L ? c.fps[L - 1]! : 0;
  const fpr = new Float64Array(m + 1);
  const tpr = new Float64Array(m + 1);
  const thresholds = new Float64Array(m + 1);
  // A one-class problem has no rate on the missing side: NaN, as sklearn (which also warns).
  fpr[0] = N > 0 ? 0 : NaN;
  tpr[0] = P > 0 ? 0 : NaN;
  thresholds[0] = L ? c.thresholds[0]! + 1 : NaN;
  for (let k = 0; k < m; k++) {
    const i = keep[k]!;
    fpr[k + 1] = N > 0 ? c.fps[i]! / N : NaN;
    tpr[k + 1] = P > 0 ? c.tps[i]! / P : NaN;
    thresholds[k + 1] = c.thresholds[i]!;
  }
  return { fpr, tpr, thresholds };
}

function prFromClf(c: ClfCurve): PrArrays {
  const L = c.tps.length;
  const P = L ? c.tps[L - 1]! : 0;
  const precision = new Float64Array(L + 1);
  const recall = new Float64Array(L + 1);
  const thresholds = new Float64Array(L);
  for (let k = 0; k < L; k++) {
    const i = L - 1 - k;
    const ps = c.tps[i]! + c.fps[i]!;
    precision[k] = ps > 0 ? c.tps[i]! / ps : 0;
    // sklearn sets recall to 1 everywhere when there is no positive; kept for curve compatibility.
    recall[k] = P > 0 ? c.tps[i]! / P : 1;
    thresholds[k] = c.thresholds[i]!;
  }
  precision[L] = 1;
  recall[L] = 0;
  return { precision, recall, thresholds };
}

/** Step-function integral of the PR curve (sklearn's `average_precision_score`, no interpolation). */
function apFromClf(c: ClfCurve): number {
  const L = c.tps.length;
  const P = L ? c.tps[L - 1]! : 0;
  const N = L ? c.fps[L - 1]! : 0;
  if (P === 0 || N === 0) return NaN;
  let ap = 0;
  let prevRecall = 0;
  for (let i = 0; i < L; i++) {
    const r = c.tps[i]! / P;
    ap += (r - prevRecall) * (c.tps[i]! / (c.tps[i]! + c.fps[i]!));
    prevRecall = r;
  }
  return ap;
}

/** AUROC and DeLong's variance of it. */
export interface DelongResult {
  auc: number;
  /** DeLong et al. (1988) variance; NaN when either class has fewer than two examples. */
  variance: number;
  lower: number;
  upper: number;
}

/**
 * AUROC (Mann-Whitney, ties counted one half) with DeLong's variance and a 95% interval
 * `auc ± z·sqrt(var)` clipped to [0, 1]. The structural components (placement values) are what
 * Sun & Xu (2014) get from midranks; merging the two sorted score lists gives them in O(n) after
 * the sort. Ties within a run of equal scores are resolved once per run, so heavy ties stay linear.
 */
export function delongFromSplit({ pos, neg }: SplitScores): DelongResult {
  const m = pos.length;
  const n = neg.length;
  if (m === 0 || n === 0) return { auc: NaN, variance: NaN, lower: NaN, upper: NaN };
  // v10[i]: fraction of negatives ranked below positive i; v01[j]: of positives above negative j.
  const v10 = new Float64Array(m);
  const v01 = new Float64Array(n);
  let sum = 0; // exact: a sum of half-integers far below 2^53
  let j = 0;
  let eq = 0;
  for (let i = 0; i < m; i++) {
    const x = pos[i]!;
    if (i === 0 || x !== pos[i - 1]) {
      while (j < n && neg[j]! < x) j++;
      eq = 0;
      while (j + eq < n && neg[j + eq] === x) eq++;
    }
    const placed = j + 0.5 * eq;
    sum += placed;
    v10[i] = placed / n;
  }
  let i = 0;
  for (let jj = 0; jj < n; jj++) {
    const y = neg[jj]!;
    if (jj === 0 || y !== neg[jj - 1]) {
      while (i < m && pos[i]! < y) i++;
      eq = 0;
      while (i + eq < m && pos[i + eq] === y) eq++;
    }
    v01[jj] = (m - i - eq + 0.5 * eq) / m;
  }
  const auc = sum / (m * n);
  let variance = NaN;
  if (m > 1 && n > 1) {
    let s10 = 0;
    for (let a = 0; a < m; a++) s10 += (v10[a]! - auc) ** 2;
    let s01 = 0;
    for (let b = 0; b < n; b++) s01 += (v01[b]! - auc) ** 2;
    variance = s10 / (m - 1) / m + s01 / (n - 1) / n;
  }
  const half = Z_975 * Math.sqrt(variance);
  return { auc, variance, lower: Math.max(0, auc - half), upper: Math.min(1, auc + half) };
}

/** Everything ranking-based about one binary problem, from one split. */
export interface BinaryRanking {
  delong: DelongResult;
  averagePrecision: number;
  roc: RocArrays;
  pr: PrArrays;
}

/** ROC, PR, AUROC with DeLong CI and average precision of one split. */
export function rankBinary(split: SplitScores): BinaryRanking {
  const c = clfCurve(split);
  return { delong: delongFromSplit(split), averagePrecision: apFromClf(c), roc: rocFromClf(c), pr: prFromClf(c) };
}

/** Checks a 0/1 label vector against a score vector and splits them. */
function binaryInput(fn: string, yTrueBinary: Float64Array, score: Float64Array): SplitScores {
  checkSameLength(fn, 'yTrueBinary', yTrueBinary, 'score', score);
  if (yTrueBinary.length === 0) throw Errors.badData(fn, 'yTrueBinary is empty; metrics need at least one row');
  for (let i = 0; i < yTrueBinary.length; i++) {
    const v = yTrueBinary[i];
    if (v !== 0 && v !== 1) throw Errors.badData(fn, `yTrueBinary[${i}] is not 0 or 1`);
  }
  checkFinite(fn, 'score', score);
  return splitScores(yTrueBinary, 1, score);
}

/**
 * Area under the ROC curve (sklearn `roc_auc_score`), O(n log n). `score` is any real-valued score,
 * larger meaning more likely positive. Returns NaN, without throwing, when `yTrueBinary` holds a
 * single class (a cross-validation fold can), so callers must treat NaN as "undefined".
 * @throws MedfitError (MEDFIT_ERR_BAD_DATA) on a length mismatch, labels other than 0/1, empty or
 *   non-finite input.
 */
export function rocAuc(yTrueBinary: Float64Array, score: Float64Array): number {
  return delongFromSplit(binaryInput('rocAuc', yTrueBinary, score)).auc;
}

/**
 * AUROC with DeLong's variance and 95% interval (see {@link delongFromSplit}); NaN fields when
 * undefined (one class; the variance also needs two examples of each class).
 */
export function rocAucDelong(yTrueBinary: Float64Array, score: Float64Array): DelongResult {
  return delongFromSplit(binaryInput('rocAucDelong', yTrueBinary, score));
}

/**
 * Average precision (sklearn `average_precision_score`). NaN when `yTrueBinary` holds one class:
 * sklearn returns 0 (no positives) or 1 (no negatives) there, values that only look like scores.
 */
export function averagePrecision(yTrueBinary: Float64Array, score: Float64Array): number {
  return apFromClf(clfCurve(binaryInput('averagePrecision', yTrueBinary, score)));
}

/** The full ROC curve, identical to sklearn 1.2 `roc_curve(y, score)` (not downsampled). */
export function rocCurve(yTrueBinary: Float64Array, score: Float64Array): RocCurve {
  const c = rocFromClf(clfCurve(binaryInput('rocCurve', yTrueBinary, score)));
  return downsampleRoc(c, Infinity);
}

/** The full PR curve, identical to sklearn 1.2 `precision_recall_curve(y, score)`. */
export function precisionRecallCurve(yTrueBinary: Float64Array, score: Float64Array): PrCurve {
  return downsamplePr(prFromClf(clfCurve(binaryInput('precisionRecallCurve', yTrueBinary, score))), Infinity);
}

/** Indices of at most `max` points spread evenly over `length`, both endpoints included. */
function evenIndices(length: number, max: number): number[] {
  if (length <= max) return Array.from({ length }, (_, i) => i);
  const out: number[] = [];
  // (length-1)/(max-1) > 1, so rounding never repeats an index.
  for (let i = 0; i < max; i++) out.push(Math.round((i * (length - 1)) / (max - 1)));
  return out;
}

/** At most `max` ROC points as plain arrays, evenly by index, first and last kept. */
export function downsampleRoc(c: RocArrays, max: number): RocCurve {
  const idx = evenIndices(c.fpr.length, max);
  return { fpr: idx.map((i) => c.fpr[i]!), tpr: idx.map((i) => c.tpr[i]!), thresholds: idx.map((i) => c.thresholds[i]!) };
}

/** At most `max` PR points as plain arrays, evenly by index, first and last kept; thresholds follow. */
export function downsamplePr(c: PrArrays, max: number): PrCurve {
  const idx = evenIndices(c.precision.length, max);
  const last = c.precision.length - 1;
  return {
    precision: idx.map((i) => c.precision[i]!),
    recall: idx.map((i) => c.recall[i]!),
    thresholds: idx.filter((i) => i < last).map((i) => c.thresholds[i]!),
  };
}
