/**
 * Messages between the main thread and the sequence training worker. Only plain data crosses:
 * typed arrays (transferred, not copied), numbers, strings and serialized errors.
 */
import type { SerializedError, Task } from '../../core/index.js';
import type { SeqConfig, SeqFamilyName } from './build.js';
import type { SeqNetWeights } from './weights.js';

/** Windows as Float32 (what the trainer computes in), so the worker gets them by transfer. */
export interface F32Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

/** Everything one training run needs. */
export interface SeqJob {
  family: SeqFamilyName;
  task: Task;
  /** Classes (classification); 1 for regression. */
  nClasses: number;
  /** Regression outputs per row (1 for classification). */
  nOutputs: number;
  seed: number;
  config: SeqConfig;
  steps: number;
  channels: number;
  /** Rows are windows flattened step-major. */
  x: F32Matrix;
  /** Class indices, or `rows × nOutputs` targets. */
  y: Float64Array;
  weights?: Float64Array;
  /** Group id per row (a subject): the early-stopping holdout keeps each group whole. */
  groups?: Int32Array;
  valid?: { x: F32Matrix; y: Float64Array };
}

/** What training produced beyond the weights: enough to explain the run in a report. */
export interface SeqTrainInfo {
  /** Epochs run before stopping. */
  epochsRun: number;
  /** 1-based epoch whose weights were kept. */
  bestEpoch: number;
  /** The monitored loss at `bestEpoch` (validation loss unless there were no validation rows). */
  bestLoss: number;
  /** Where the early-stopping rows came from. */
  validation: 'given' | 'groups' | 'rows' | 'none';
  /** Rows trained on and held out. */
  trainRows: number;
  validRows: number;
  /**
   * Largest |trainer (Float32) − seqnetForward (Float64)| / max(1, |forward|) over a sample of
   * rows: a self-check of the exported weights.
   */
  forwardMaxDiff: number;
  /** Median seconds per epoch, and the whole run's. */
  epochSeconds: number;
  seconds: number;
}

/** Worker → main thread. */
export type WorkerMessage =
  | { type: 'progress'; epoch: number; loss: number; valLoss?: number; fraction: number; seconds: number }
  | { type: 'done'; weights: SeqNetWeights; info: SeqTrainInfo }
  | { type: 'error'; error: SerializedError };
