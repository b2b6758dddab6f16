/**
 * Types shared by every room. `core` imports nothing, so anything two rooms both need to name
 * lives here.
 */

/** The learning problem a model solves. */
export type Task = 'binary' | 'multiclass' | 'regression';

/** What schema inference decides a column holds. */
export type ColumnType =
  | 'numeric'
  | 'integer'
  | 'boolean'
  | 'categorical'
  | 'datetime'
  | 'identifier'
  | 'text';

/** Every column type, in the order messages list them. */
export const COLUMN_TYPES: readonly ColumnType[] = ['numeric', 'integer', 'boolean', 'categorical', 'datetime', 'identifier', 'text'];

/** One cell as a reader produced it: strings from CSV, typed values from JSON; `null` is missing. */
export type Cell = string | number | boolean | null;

/** A raw record keyed by column name, as a user sends it for prediction. */
export type RawRecord = Record<string, unknown>;

/** How a column takes part in training. */
export type ColumnRole = 'feature' | 'target' | 'ignored';

/** One column of an inferred (or user-overridden) schema. */
export interface ColumnSchema {
  name: string;
  type: ColumnType;
  role: ColumnRole;
  /** Why a column was excluded from the features (identifier, free text, user choice...). */
  reason?: string;
}

/** The input schema of a table. */
export interface Schema {
  columns: ColumnSchema[];
}

/**
 * A dense row-major matrix of doubles. Models and metrics take this rather than `number[][]` so
 * that a whole feature table is one allocation and can be handed to a worker without copying.
 */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** Creates a zero-filled matrix. */
export function matrix(rows: number, cols: number): Matrix {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

/** Builds a matrix from rows of numbers (tests and small inputs). */
export function matrixFromRows(rows: ArrayLike<number>[]): Matrix {
  const cols = rows.length === 0 ? 0 : rows[0]!.length;
  const m = matrix(rows.length, cols);
  rows.forEach((r, i) => {
    for (let j = 0; j < cols; j++) m.data[i * cols + j] = r[j]!;
  });
  return m;
}

/** Returns the rows of `m` at `indices`, in that order, as a new matrix. */
export function takeRows(m: Matrix, indices: ArrayLike<number>): Matrix {
  const out = matrix(indices.length, m.cols);
  for (let k = 0; k < indices.length; k++) {
    const src = indices[k]! * m.cols;
    out.data.set(m.data.subarray(src, src + m.cols), k * m.cols);
  }
  return out;
}

/** Returns `values` at `indices`, in that order. */
export function take(values: Float64Array, indices: ArrayLike<number>): Float64Array {
  const out = new Float64Array(indices.length);
  for (let k = 0; k < indices.length; k++) out[k] = values[indices[k]!]!;
  return out;
}

/** A non-fatal finding that the user should see (a dropped column, text in a numeric column...). */
export interface Warning {
  code: string;
  message: string;
  column?: string;
}

/** Progress reported by long-running work (training, cross-validation). */
export interface Progress {
  stage: string;
  /** 0..1 over the whole job, when known. */
  fraction?: number;
  epoch?: number;
  loss?: number;
  valLoss?: number;
  message?: string;
  /** A family's cross-validated scores, reported once when its last fold is scored (the live leaderboard). */
  candidate?: CandidateScore;
}

/** One family's cross-validated scores as training reports them while it goes on. */
export interface CandidateScore {
  family: string;
  metrics: Record<string, { mean: number; std: number }>;
  seconds: number;
}

/** A progress sink; implementations must be cheap, they are called from hot loops. */
export type ProgressFn = (p: Progress) => void;

/** Classification metric names, in the order the CLI prints them. */
export const CLASSIFICATION_METRICS = [
  'auroc',
  'auprc',
  'accuracy',
  'balanced_accuracy',
  'precision',
  'recall',
  'specificity',
  'f1',
  'log_loss',
  'brier',
  'calibration_slope',
  'calibration_intercept',
] as const;

/** Regression metric names, in the order the CLI prints them. */
export const REGRESSION_METRICS = ['mse', 'rmse', 'mae', 'r2', 'pearson_r', 'bias', 'error_std'] as const;

export type ClassificationMetricName = (typeof CLASSIFICATION_METRICS)[number];
export type RegressionMetricName = (typeof REGRESSION_METRICS)[number];
export type MetricName = ClassificationMetricName | RegressionMetricName;

/** Whether a larger value of the metric is better (used for model selection). */
export function higherIsBetter(metric: MetricName): boolean {
  return !['log_loss', 'brier', 'mse', 'rmse', 'mae'].includes(metric);
}
