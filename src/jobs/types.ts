import type { Progress, SerializedError, Task } from '../core/index.js';

/** What a training job trains: a dataset file and the options of `medfit train`. */
export interface TrainJobSpec {
  /** Absolute path of the dataset file (already validated at upload). */
  datasetPath: string;
  /** Name used in error messages instead of the path (the dataset's name). */
  datasetName: string;
  /** The format the dataset was read with at upload; absent, the extension or the content decides. */
  format?: 'csv' | 'json' | 'ndjson';
  target: string;
  task?: Task | 'auto';
  model?: 'auto' | 'logistic' | 'linear' | 'gbdt' | 'mlp';
  params?: Record<string, Record<string, unknown>>;
  cv?: number;
  /** Also estimate the whole choice by nested cross-validation. */
  nested?: boolean;
  group?: string;
  seed?: number;
  ignore?: string[];
  /** Where the model directory is written (atomically; must not exist yet). */
  outDir: string;
  /** Lineage written into the manifest. */
  lineage: { datasetId: string; datasetSha256: string; jobId: string };
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
  leaderboard: Array<{ family: string; metrics: Record<string, { mean: number; std: number }>; seconds: number }>;
  warnings: string[];
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
