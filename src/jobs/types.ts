import type { LeakageReport } from '../automl/index.js';
import type { Progress, SerializedError, Task } from '../core/index.js';
import type { FeatureSpec } from '../fhir/index.js';

/** How a table was made from FHIR resources: the feature spec, and whether the resources were de-identified first. */
export interface FhirLineage {
  features: FeatureSpec;
  deidentified: boolean;
}

/** What a training job trains: a dataset file and the options of `medfit train`. */
export interface TrainJobSpec {
  /** Absolute path of the dataset file (already validated at upload). */
  datasetPath: string;
  /** Name used in error messages instead of the path (the dataset's name). */
  datasetName: string;
  /** The format the dataset was read with at upload; absent, the extension or the content decides. */
  format?: 'csv' | 'json' | 'ndjson';
  /** The target column; several (numeric) targets only for a sequence job (one multi-output regression). */
  target: string | string[];
  task?: Task | 'auto';
  model?: 'auto' | 'logistic' | 'linear' | 'gbdt' | 'mlp' | 'ensemble' | 'lstm' | 'gru' | 'cnn' | 'cnn-lstm' | 'window-gbdt';
  /** Seconds, or a duration text (`60s`, `5m`), for a hyperparameter search (`medfit train --budget`). */
  budget?: number | string;
  /** Post-hoc calibration of a classifier (`medfit train --calibrate`). */
  calibrate?: 'auto' | 'none' | 'platt' | 'isotonic';
  params?: Record<string, Record<string, unknown>>;
  cv?: number;
  /** Also estimate the whole choice by nested cross-validation. */
  nested?: boolean;
  /** Refuse to train when the leakage check flags a feature (`medfit train --strict`); otherwise its findings are warnings. */
  strict?: boolean;
  group?: string;
  seed?: number;
  ignore?: string[];
  /**
   * Set for a sequence job: the dataset is a long-format sensor table (one row per sample), and
   * the model learns from windows of its sessions (`medfit train --sequence`).
   */
  sequence?: SequenceJobOptions;
  /** Where the model directory is written (atomically; must not exist yet). */
  outDir: string;
  /** Lineage written into the manifest. */
  lineage: { datasetId: string; datasetSha256: string; jobId: string };
  /** A dataset imported from FHIR: its feature spec, kept in the model's manifest. */
  fhir?: FhirLineage;
}

/**
 * The options of a sequence job, as `POST /v1/jobs` takes them under `sequence` (the CLI's
 * `--subject`, `--window` … flags). Absent columns take the usual names (`subject`, `t`/`time`/
 * `timestamp`, `session` when there is one), as `medfit train --sequence` does.
 */
export interface SequenceJobOptions {
  subject?: string;
  session?: string;
  time?: string;
  /** How to read numeric relative times (default detected). */
  timeUnit?: 's' | 'ms';
  /** The channels, in order (default every other numeric column). */
  channels?: string[];
  /** Samples per second to resample to (default the data's own rate). */
  rate?: number;
  /** Steps per window (a number) or a text: `128`, `2.56s`, `500ms` (default `2.56s`). */
  window?: number | string;
  /** Steps between window starts, as `window` (default half a window). */
  stride?: number | string;
  label?: 'majority' | 'last' | 'mean';
  /** `lowpass:<hz>` or `median:<samples>`. */
  filter?: string;
  /** Seconds; a longer gap between samples splits a session. */
  maxGap?: number;
  balance?: 'none' | 'over' | 'under';
  /** Share of training windows also trained on with one sensor missing (0..0.9). */
  sensorDropout?: number;
}

/** What a succeeded job hands back. */
export interface TrainJobResult {
  artifactDir: string;
  family: string;
  task: Task;
  /** Cross-validated metrics: name → {mean, std}. */
  metrics: Record<string, { mean: number; std: number }>;
  /** The nested estimate of the whole choice, when asked for. */
  nested?: { folds: number; metrics: Record<string, { mean: number; std: number }>; chosen: string[] };
  /** Every family tried, with the hyperparameters it was scored with. */
  leaderboard: Array<{
    family: string;
    params?: Record<string, unknown>;
    metrics: Record<string, { mean: number; std: number }>;
    seconds: number;
    /** A table training's trial number (what an ensemble's `members` name: `gbdt#3`). */
    trial?: number;
    /** Folds scored, when a search stopped the row before all. */
    folds?: number;
    /** A point of the family's search space rather than its defaults. */
    searched?: boolean;
  }>;
  warnings: string[];
  /**
   * A table training's leakage check, structured (its warnings above say the same in words): each
   * flagged column with its kind and evidence, and the score without them when it was taken.
   */
  leakage?: Pick<LeakageReport, 'findings' | 'rescore'>;
}

/** Events a queue emits, in order, for each job: progress*, then exactly one of the others. */
export interface JobEvents {
  started: (id: string) => void;
  progress: (id: string, p: Progress) => void;
  succeeded: (id: string, r: TrainJobResult) => void;
  failed: (id: string, e: SerializedError) => void;
  cancelled: (id: string) => void;
}

/**
 * A queue of training jobs. The embedded implementation runs each job in a worker thread, at most
 * `concurrency` at a time; a Redis-backed one (BullMQ) can implement the same interface later.
 */
export interface JobQueue {
  submit(id: string, spec: TrainJobSpec): void;
  /** Cancels a queued or running job; false when the queue does not know it (finished or unknown). */
  cancel(id: string): boolean;
  on<E extends keyof JobEvents>(event: E, listener: JobEvents[E]): void;
  /** Number of jobs queued or running. */
  size(): number;
  /**
   * Stops the queue: no new job starts, running workers are terminated and no further event is
   * emitted. Returns the ids of jobs that were queued or running, so the caller can mark them
   * queued again and a restart resumes them.
   */
  close(): Promise<string[]>;
}
