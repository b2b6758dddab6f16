/** Messages between the job queue and a job's worker thread (internal to `src/jobs`). */
import type { Progress, SerializedError } from '../core/index.js';
import type { TrainJobResult, TrainJobSpec } from './types.js';

/** What the worker receives as `workerData`: the job to run. */
export interface JobWorkerData {
  spec: TrainJobSpec;
  /** MEDFIT_MANIFEST_KEY, to sign the saved manifest with (kept out of the spec, which is stored with the job). */
  manifestKey?: string;
}

/** What the worker posts: progress, then exactly one `result` or `error`. */
export type JobWorkerMessage =
  | { type: 'progress'; progress: Progress }
  | { type: 'result'; result: TrainJobResult }
  | { type: 'error'; error: SerializedError };
