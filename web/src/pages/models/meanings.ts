/**
 * What each metric is called, which way is better, and a one-line plain-language meaning of a
 * value, so a clinician or coach reads "ranks a random patient with the outcome above one without
 * 95% of the time" rather than "auroc 0.95". Names follow src/core/types.ts (CLASSIFICATION_METRICS,
 * REGRESSION_METRICS). No imports: tests load this file directly.
 */

/** Which value of a metric is best. */
export type Goal = 'higher' | 'lower' | 'one' | 'zero';

/** What a meaning needs besides the value. */
export interface MetricContext {
  task: 'binary' | 'multiclass' | 'regression';
  /** Binary: the positive class (class 1) and the other one. */
  positive?: string;
  negative?: string;
  /** Share of each class among the evaluated rows (from the confusion matrix's row sums). */
  classShares?: number[];
  /** Binary: the decision threshold the threshold-dependent metrics were measured at. */
  threshold?: number | null;
  /** The target column (regression units). */
  target?: string;
  /** All of the version's values, for meanings that compare (bias against error spread). */
  values?: Record<string, number | null | undefined>;
}

interface MetricInfo {
  label: (ctx: MetricContext) => string;
  goal: Goal;
  meaning: (v: number, ctx: MetricContext) => string;
}

/**
 * A share as a percentage for a sentence: whole percent, but never rounded to 0% or 100% when
 * it is not exactly that (0.996 reads "99.6%", not "100%": one case in 250 is not none).
 */
const pct = (x: number, digits = 0) => {
  let d = digits;
  while (d < 3 && x > 0 && x < 1 && (Number((x * 100).toFixed(d)) >= 100 || Number((x * 100).toFixed(d)) <= 0)) d++;
  return `${(x * 100).toFixed(d)}%`;
};
/** Decimals that show a metric of this size to about three significant digits (scores in [0, 1]: 3). */
export function decimalsFor(x: number): number {
  const a = Math.abs(x);
  if (a > 0 && a < 0.001) return Math.min(8, 1 - Math.floor(Math.log10(a)));
  return a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3;
}

/** A metric value: fixed decimals by size ("1.000", "54.38", "2957"), '–' when undefined. */
export function fx(x: number | null | undefined, decimals?: number): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  const d = decimals ?? decimalsFor(x);
  const s = x.toFixed(d);
  // No "-0.000": a value that rounds to zero is zero.
  return Number(s) === 0 ? (0).toFixed(d) : s.replace('-', '−');
}

/** Mean ± SD with the SD at the mean's decimals. */
export function fxPair(mean: number | null | undefined, sd: number | null | undefined): string {
  if (mean === null || mean === undefined || Number.isNaN(mean)) return '–';
  // Both at the decimals of the larger: "0.000 ± 0.002", not "−0.00029 ± 0.002".
  const d = decimalsFor(Math.max(Math.abs(mean), Math.abs(sd ?? 0)));
  return sd === null || sd === undefined || Number.isNaN(sd) ? fx(mean, d) : `${fx(mean, d)} ± ${fx(sd, d)}`;
}

/** Three significant digits without exponent noise for the sizes medfit's metrics take. */
export function num(x: number): string {
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a >= 0.001) return x.toFixed(3);
  return x.toExponential(1);
}

const pos = (c: MetricContext) => (c.positive ? `"${c.positive}"` : 'positive');
const neg = (c: MetricContext) => (c.negative ? `"${c.negative}"` : 'negative');
const multi = (c: MetricContext) => c.task === 'multiclass';
const at = (c: MetricContext) => (c.task === 'binary' && typeof c.threshold === 'number' ? ` at the threshold ${c.threshold}` : '');
const units = (c: MetricContext) => (c.target ? ` of ${c.target}` : '');

/** Log loss and Brier score of always predicting the class shares: what a model must beat. */
function baselines(shares: number[] | undefined): { logLoss: number; brier: number } | null {
  if (!shares || shares.length < 2) return null;
  let logLoss = 0;
  let brier = 1;
  for (const s of shares) {
    if (s > 0) logLoss -= s * Math.log(s);
    brier -= s * s;
  }
  // Binary Brier is on the positive class only: p(1 − p), half the multiclass sum over classes.
  return { logLoss, brier: shares.length === 2 ? shares[0]! * shares[1]! : brier };
}

export const METRICS: Record<string, MetricInfo> = {
  auroc: {
    label: (c) => (multi(c) ? 'AUROC (macro, one-vs-rest)' : 'AUROC'),
    goal: 'higher',
    meaning: (v, c) =>
      multi(c)
        ? `Averaged over the classes, a random case of a class is ranked above a case of another class ${pct(v)} of the time (50% is chance).`
        : `A random ${pos(c)} case is ranked above a random ${neg(c)} one ${pct(v)} of the time (50% is a coin toss).`,
  },
  auprc: {
    label: (c) => (multi(c) ? 'AUPRC (macro)' : 'AUPRC (average precision)'),
    goal: 'higher',
    meaning: (_v, c) => {
      const s = c.classShares;
      return multi(c) || !s
        ? 'Precision averaged over every recall level and over the classes; random ranking scores each class\u2019s share.'
        : `Precision averaged over every recall level; ranking at random would score the ${pos(c)} share, ${pct(s[1]!)}.`;
    },
  },
  accuracy: {
    label: () => 'Accuracy',
    goal: 'higher',
    meaning: (v, c) => {
      const s = c.classShares;
      const base = s ? `; always answering the commonest class would score ${pct(Math.max(...s))}` : '';
      return `${pct(v)} of cases are classified correctly${at(c)}${base}.`;
    },
  },
  balanced_accuracy: {
    label: () => 'Balanced accuracy',
    goal: 'higher',
    meaning: (_v, c) =>
      multi(c)
        ? `Recall averaged over the classes, blind to how common each is; chance is ${c.classShares ? pct(1 / c.classShares.length) : '1 / classes'}.`
        : 'The mean of sensitivity and specificity; 50% is chance, whatever the class balance.',
  },
  precision: {
    label: (c) => (multi(c) ? 'Precision (macro)' : 'Precision (PPV)'),
    goal: 'higher',
    meaning: (v, c) =>
      multi(c)
        ? `Of the cases assigned to a class, ${pct(v)} belong to it (averaged over the classes).`
        : `Positive predictive value: of the cases flagged ${pos(c)}${at(c)}, ${pct(v)} truly are.`,
  },
  recall: {
    label: (c) => (multi(c) ? 'Recall (macro)' : 'Recall (sensitivity)'),
    goal: 'higher',
    meaning: (v, c) =>
      multi(c)
        ? `${pct(v)} of each class\u2019s cases are found, averaged over the classes.`
        : `Sensitivity: the model flags ${pct(v)} of the ${pos(c)} cases${at(c)} and misses ${pct(1 - v)}.`,
  },
  specificity: {
    label: (c) => (multi(c) ? 'Specificity (macro)' : 'Specificity'),
    goal: 'higher',
    meaning: (v, c) =>
      multi(c)
        ? `${pct(v)} of the cases outside a class are correctly not assigned to it (averaged over the classes).`
        : `${pct(v)} of the ${neg(c)} cases are correctly cleared${at(c)}; ${pct(1 - v)} get a false alarm.`,
  },
  f1: {
    label: (c) => (multi(c) ? 'F1 (macro)' : 'F1 score'),
    goal: 'higher',
    meaning: () => 'The harmonic mean of precision and recall (1 is perfect); it ignores true negatives.',
  },
  log_loss: {
    label: () => 'Log loss',
    goal: 'lower',
    meaning: (_v, c) => {
      const b = baselines(c.classShares);
      return `The average penalty \u2212log(p) on the probability given to the true class; lower is better${b ? `. Predicting the class shares for everyone scores ${num(b.logLoss)}` : ''}.`;
    },
  },
  brier: {
    label: () => 'Brier score',
    goal: 'lower',
    meaning: (_v, c) => {
      const b = baselines(c.classShares);
      return `Mean squared error of the predicted probabilities (0 is perfect${multi(c) ? ', 2 the worst' : ''})${b ? `; predicting the class shares for everyone scores ${num(b.brier)}` : ''}.`;
    },
  },
  calibration_slope: {
    label: () => 'Calibration slope',
    goal: 'one',
    meaning: (v, c) => {
      const of = multi(c) ? ' (mean of one-vs-rest slopes)' : '';
      if (v > 1.1) return `Above 1${of}: predictions are under-confident: true risks are more extreme than predicted.`;
      if (v < 0.9) return `Below 1${of}: predictions are over-confident: predicted risks are more extreme than the true ones (typical of overfitting).`;
      return `About 1${of}: predicted risks are as spread out as the true ones.`;
    },
  },
  calibration_intercept: {
    label: () => 'Calibration intercept (in the large)',
    goal: 'zero',
    meaning: (v) => {
      if (v > 0.1) return 'Positive: predicted risks are too low on average; the outcome is more common than predicted (log-odds scale).';
      if (v < -0.1) return 'Negative: predicted risks are too high on average; the outcome is rarer than predicted (log-odds scale).';
      return 'About 0: on average, predicted risks match how often the outcome happens.';
    },
  },
  mse: {
    label: () => 'MSE',
    goal: 'lower',
    meaning: (_v, c) => `Mean squared error, in squared units${units(c)}: the square of the RMSE.`,
  },
  rmse: {
    label: () => 'RMSE',
    goal: 'lower',
    meaning: (v, c) => `A typical error is about ${num(v)} in units${units(c)}; large errors weigh more than in the MAE.`,
  },
  mae: {
    label: () => 'MAE',
    goal: 'lower',
    meaning: (v, c) => `On average a prediction is ${num(v)} away from the true value${units(c)}.`,
  },
  r2: {
    label: () => 'R\u00b2',
    goal: 'higher',
    meaning: (v, c) =>
      v < 0
        ? `Worse than predicting the mean${units(c)} for everyone (0 would equal it).`
        : `The model explains ${pct(v)} of the variance${units(c)}; 0 is no better than predicting the mean.`,
  },
  pearson_r: {
    label: () => 'Pearson r',
    goal: 'higher',
    meaning: (v) => `Predictions and true values move together with correlation ${num(v)} (1 is a perfect straight line; r ignores a constant bias).`,
  },
  bias: {
    label: () => 'Bias (mean error)',
    goal: 'zero',
    meaning: (v, c) => {
      const spread = c.values?.['error_std'];
      if (typeof spread === 'number' && Math.abs(v) < 0.05 * spread) return 'About 0: on average, predictions are neither too high nor too low.';
      return `On average, predictions are ${num(Math.abs(v))} too ${v > 0 ? 'high' : 'low'} (mean of predicted \u2212 actual).`;
    },
  },
  error_std: {
    label: () => 'Error SD',
    goal: 'lower',
    meaning: (v, c) => `Errors scatter by ${num(v)}${units(c)} around the bias (RMSE\u00b2 = bias\u00b2 + error SD\u00b2).`,
  },
};

/** The metrics in the order pages list them: the catalogue's order, then any others by name. */
export function metricOrder(keys: Iterable<string>): string[] {
  const known = Object.keys(METRICS);
  const all = [...new Set(keys)];
  return [...known.filter((k) => all.includes(k)), ...all.filter((k) => !known.includes(k)).sort()];
}

export function metricLabel(key: string, ctx: MetricContext): string {
  return METRICS[key]?.label(ctx) ?? key.replace(/_/g, ' ');
}

/** The meaning of a value, or '' when the metric is unknown or the value undefined. */
export function metricMeaning(key: string, value: number | null | undefined, ctx: MetricContext): string {
  const m = METRICS[key];
  if (!m || value === null || value === undefined || !Number.isFinite(value)) return value === null ? 'Undefined on this data (for example, a class missing from a fold).' : '';
  return m.meaning(value, ctx);
}

export function metricGoal(key: string): Goal {
  return METRICS[key]?.goal ?? 'higher';
}

export function goalText(goal: Goal): string {
  return goal === 'higher' ? 'higher is better' : goal === 'lower' ? 'lower is better' : goal === 'one' ? 'best at 1' : 'best at 0';
}

/** How far a value is from the best, in the metric's direction (smaller is better). */
function badness(goal: Goal, v: number): number {
  return goal === 'higher' ? -v : goal === 'lower' ? v : goal === 'one' ? Math.abs(v - 1) : Math.abs(v);
}

export type Verdict = 'better' | 'worse' | 'same' | 'unknown';

/**
 * Whether b is better than a for a metric. Differences smaller than `noise` (the fold-to-fold
 * spread of the two) count as `same`: cross-validation cannot tell them apart.
 */
export function verdict(key: string, a: number | null | undefined, b: number | null | undefined, noise = 0): Verdict {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) return 'unknown';
  const goal = metricGoal(key);
  const d = badness(goal, a) - badness(goal, b);
  if (d === 0 || Math.abs(d) <= noise) return 'same';
  return d > 0 ? 'better' : 'worse';
}

/** Wilson score interval of a proportion k/n (95% by default): honest at small n and near 0 or 1. */
export function wilson(k: number, n: number, z = 1.959964): { lower: number; upper: number } | null {
  if (!(n > 0)) return null;
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return { lower: Math.max(0, centre - half), upper: Math.min(1, centre + half) };
}
