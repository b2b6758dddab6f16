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
  reliability?: ReliabilityBin[];
  regression?: RegressionPlot[];
}

export interface LeaderboardEntry {
  family: string;
  metrics: Record<string, MetricSummary>;
  seconds: number;
  params?: Record<string, unknown>;
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
