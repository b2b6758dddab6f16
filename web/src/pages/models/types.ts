/** The shapes of the model registry's answers (src/api/models.ts), as the pages read them. NaN arrives as null. */

export type Stage = 'none' | 'staging' | 'production' | 'archived';
export const STAGES: Stage[] = ['none', 'staging', 'production', 'archived'];
export type Task = 'binary' | 'multiclass' | 'regression';

export interface ModelList {
  models: { name: string; versions: number; latest: number; production: number | null; task: Task }[];
}

export interface VersionSummary {
  name: string;
  version: number;
  stage: Stage;
  source: 'trained' | 'uploaded';
  family: string;
  task: Task;
  created: string;
  /** The headline cross-validated score (AUROC, else accuracy; R² for regression); absent for uploads. */
  score?: { metric: string; mean: number; std: number };
}

export interface ModelDetail {
  name: string;
  versions: VersionSummary[];
}

export interface MetricSummary {
  mean: number | null;
  std: number | null;
}

export interface RocCurve {
  fpr: (number | null)[];
  tpr: (number | null)[];
  thresholds: (number | null)[];
}
export interface PrCurve {
  precision: number[];
  recall: number[];
  thresholds: number[];
}

export interface ReliabilityBin {
  lower: number;
  upper: number;
  count: number;
  meanPredicted: number;
  observed: number;
}

export interface RegressionPlot {
  output: string;
  min: number;
  max: number;
  bins: number;
  counts: number[];
  residuals: { predictedMean: number; residualMean: number; residualStd: number; count: number }[];
}

export interface Importance {
  metric: string;
  repeats: number;
  features: { feature: string; drop: number; std: number }[];
}

export interface PerClass {
  label: number;
  precision: number;
  recall: number;
  f1: number;
  support: number;
  auroc: number | null;
}

export type CalibrationMethod = 'none' | 'platt' | 'isotonic';

/** Pooled calibration of out-of-fold probabilities (multiclass: slope and intercept macro-averaged over one-vs-rest). */
export interface CalibrationSummary {
  log_loss: number | null;
  brier: number | null;
  calibration_slope: number | null;
  calibration_intercept: number | null;
}

/** A classifier's post-hoc calibration: the method kept, how it was chosen, before and after (src/automl/calibrate.ts). */
export interface Calibration {
  asked: 'auto' | CalibrationMethod;
  method: CalibrationMethod;
  /** Each method tried with its cross-fitted log loss; `error` when it could not be fitted. */
  candidates: { method: CalibrationMethod; log_loss?: number | null; error?: string }[];
  /** The uncalibrated out-of-fold probabilities. */
  before: CalibrationSummary;
  /** The calibrated ones, cross-fitted (each fold's calibrator fitted on the other folds); equal to `before` for `none`. */
  after: CalibrationSummary;
  /** Binary, on enough rows: the reliability bins before and after. */
  reliability?: { before: ReliabilityBin[]; after: ReliabilityBin[] };
}

/** What a budgeted hyperparameter search tried (src/automl/search-run.ts). */
export interface SearchSummary {
  /** Seconds asked for. */
  budget: number;
  /** Seconds the choice took (defaults, search and ensemble; not the final fit). */
  seconds: number;
  /** Trials started, and those scored on every fold, by family. */
  trials: Record<string, { started: number; complete: number }>;
  /** Repetitions of the k-fold cross-validation each complete trial was scored on. */
  repeats: number;
}

/** The evaluation report on the chosen family's pooled out-of-fold predictions. */
export interface Evaluation {
  metrics: Record<string, number | null>;
  aurocCi?: { lower: number | null; upper: number | null; level: number; method: string };
  threshold?: number | null;
  confusion?: number[][];
  roc?: RocCurve;
  pr?: PrCurve;
  perClass?: PerClass[];
  averages?: Record<string, Record<string, number | null>>;
  importance?: Importance;
  /** The reliability bins of the model as served (calibrated when `calibration.method` is not `none`). */
  reliability?: ReliabilityBin[];
  regression?: RegressionPlot[];
  /** Classifiers trained since calibration was added; absent on older versions. */
  calibration?: Calibration;
  /** When the model came from a budgeted search. */
  search?: SearchSummary;
}

/**
 * A row of the leaderboard. `family` may be `ensemble`, whose params are `members` (`gbdt#3,logistic#0`:
 * family and trial number) and `weights` (one per member, in the same order).
 */
export interface LeaderboardEntry {
  family: string;
  metrics: Record<string, MetricSummary>;
  seconds: number;
  params?: Record<string, unknown>;
  /** A point of the family's search space rather than its defaults. */
  searched?: boolean;
  /** Folds scored when successive halving or the budget stopped it before all (absent: every fold). */
  folds?: number;
}

export interface Lineage {
  dataset: string | null;
  datasetSha256: string | null;
  job: string | null;
  created: string;
}

export interface Tensor {
  name: string;
  datatype: string;
  shape: (number | string)[];
}

export interface ColumnSchema {
  name: string;
  type: string;
  role: string;
  reason?: string;
}

export interface TrainedVersion extends VersionSummary {
  source: 'trained';
  target: { column: string; task: Task; classes?: string[] };
  hyperparameters: Record<string, unknown>;
  metrics: {
    cv: Record<string, MetricSummary>;
    /** Folds of the cross-validation (all repetitions). */
    folds?: number;
    nested?: { folds: number; metrics: Record<string, MetricSummary>; chosen: string[] };
    test?: { rows: number; metrics: Record<string, number | null> };
    leaderboard?: LeaderboardEntry[];
    warnings?: string[];
  };
  evaluation: Evaluation | null;
  schema: { columns: ColumnSchema[] };
  features: string[];
  sequence?: { columns: Record<string, string>; timeUnit: string; channels: string[]; rate: number; window: number; stride: number; label?: string; filter?: unknown };
  signature?: { inputs: Tensor[]; outputs: Tensor[] };
  lineage: Lineage;
  engines?: Record<string, string>;
}

export interface UploadedVersion extends VersionSummary {
  source: 'uploaded';
  inputs: Tensor[];
  outputs: Tensor[];
  features: string[];
  classes: string[] | null;
  lineage: Lineage;
}

export type VersionDetail = TrainedVersion | UploadedVersion;
