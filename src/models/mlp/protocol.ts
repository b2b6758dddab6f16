/**
 * Messages between the main thread and the MLP training worker. Only plain data crosses: typed
 * arrays (transferred, not copied), numbers, strings and serialized errors.
 */
import type { SerializedError, Task } from '../../core/index.js';
import type { MlpWeights } from './forward.js';

/** Resolved hyperparameters, typed (the `Params` bag is validated by `parseParams` first). */
export interface MlpConfig {
  units: number[];
  dropout: number;
  learningRate: number;
  epochs: number;
  batchSize: number;
  patience: number;
  l2: number;
  classWeight: 'none' | 'balanced';
}

/** A feature matrix as Float32 (what the trainer computes in), so the worker gets it by transfer. */
export interface F32Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

/** Everything one training run needs; sent as `workerData`. */
export interface MlpJob {
  task: Task;
  nClasses: number;
  /** Regression outputs (default 1): `y` (and `valid.y`) are then rows × nOutputs, row-major. */
  nOutputs?: number;
  seed: number;
  config: MlpConfig;
  x: F32Matrix;
  y: Float64Array;
  weights?: Float64Array;
  /** Group id per row: the early-stopping holdout keeps each group whole. */
  groups?: Int32Array;
  valid?: { x: F32Matrix; y: Float64Array };
}

/** What training produced, beyond the weights: enough to explain the run in a report. */
export interface MlpTrainInfo {
  /** Epochs run before stopping. */
  epochsRun: number;
  /** 1-based epoch whose weights were kept. */
  bestEpoch: number;
  /** The monitored loss at `bestEpoch` (validation loss unless no validation rows existed). */
  bestLoss: number;
  /** Where the early-stopping rows came from. */
  validation: 'given' | 'holdout' | 'none';
  /**
   * Largest |trainer's output − plain forward| / max(1, |forward|) over a sample of training rows: a
   * self-check of the exported weights (absolute for probabilities, relative for large targets).
   */
  forwardMaxDiff: number;
  seconds: number;
}

/** Worker → main thread. */
export type WorkerMessage =
  | { type: 'progress'; epoch: number; loss: number; valLoss?: number; fraction: number }
  | { type: 'done'; weights: MlpWeights; info: MlpTrainInfo }
  | { type: 'error'; error: SerializedError };
