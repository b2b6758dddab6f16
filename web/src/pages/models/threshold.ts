/**
 * The confusion matrix at any threshold, recomputed in the browser from the stored out-of-fold ROC
 * curve (at most 200 points: sklearn's roc_curve with collinear points dropped, then thinned) and
 * the class counts. No record is needed: a ROC point at threshold t says which share of each class
 * scored p ≥ t. Between two stored points the counts are those of the nearest point at or above
 * the threshold, so the matrix moves in steps. No imports: tests load this file directly.
 */

export interface RocPoints {
  fpr: (number | null)[];
  tpr: (number | null)[];
  /** Decreasing; the first is max score + 1 (nothing predicted positive). */
  thresholds: (number | null)[];
}

export interface OperatingPoint {
  /** Index of the ROC point used. */
  index: number;
  /** The ROC point's own threshold: the counts are exactly those of p ≥ this value. */
  pointThreshold: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  sensitivity: number | null;
  specificity: number | null;
  ppv: number | null;
  npv: number | null;
  accuracy: number | null;
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : null);

/** Counts and rates at threshold `t` (predicted positive when p ≥ t) for `positives` and `negatives` rows. */
export function operatingPoint(roc: RocPoints, positives: number, negatives: number, t: number): OperatingPoint {
  const th = roc.thresholds;
  // The last point whose threshold is still ≥ t: thresholds decrease along the curve.
  let index = 0;
  for (let i = 0; i < th.length; i++) {
    const v = th[i];
    if (v !== null && v !== undefined && v >= t) index = i;
    else if (v !== null && v !== undefined) break;
  }
  const tp = Math.round((roc.tpr[index] ?? 0) * positives);
  const fp = Math.round((roc.fpr[index] ?? 0) * negatives);
  return withCounts(index, th[index] ?? t, tp, fp, negatives - fp, positives - tp);
}

/** An operating point from its four counts. */
export function withCounts(index: number, pointThreshold: number, tp: number, fp: number, tn: number, fn: number): OperatingPoint {
  return {
    index,
    pointThreshold,
    tp,
    fp,
    tn,
    fn,
    sensitivity: ratio(tp, tp + fn),
    specificity: ratio(tn, tn + fp),
    ppv: ratio(tp, tp + fp),
    npv: ratio(tn, tn + fn),
    accuracy: ratio(tp + tn, tp + fp + tn + fn),
  };
}

/** The threshold of the ROC point with the largest Youden's J (sensitivity + specificity − 1), capped at 1. */
export function youdenThreshold(roc: RocPoints): number | null {
  let best = -Infinity;
  let at: number | null = null;
  for (let i = 0; i < roc.thresholds.length; i++) {
    const t = roc.thresholds[i];
    const j = (roc.tpr[i] ?? NaN) - (roc.fpr[i] ?? NaN);
    if (t === null || t === undefined || !Number.isFinite(j)) continue;
    if (j > best) {
      best = j;
      at = Math.min(1, t);
    }
  }
  return at;
}
