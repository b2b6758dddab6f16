import type { Matrix, ProgressFn, Task } from '../core/index.js';
import type { ParamSpec, SearchSpace } from './params.js';

/** The families that learn from a table's feature rows. */
export type TableFamily = 'logistic' | 'linear' | 'gbdt' | 'mlp';

/** The families that learn from windows of sensor streams (`TrainData.sequence` is set). */
export type SequenceFamily = 'lstm' | 'gru' | 'cnn' | 'cnn-lstm' | 'window-gbdt';

/**
 * The model families medfit trains. `ensemble` is a weighted average of table-family models
 * (src/automl's `EnsembleModel`): it has no `ModelFamily` entry, since it is built from trained
 * members rather than trained itself, and src/automl's `loadModel` loads it.
 */
export type Family = TableFamily | SequenceFamily | 'ensemble';

/**
 * The shape of a sequence model's input. Each row of `x` is one window flattened step-major:
 * the value of channel `c` at step `s` is `x.data[row * steps * channels + s * channels + c]`,
 * already resampled to `rate` and normalised.
 */
export interface SequenceShape {
  steps: number;
  channels: number;
  /** Samples per second the windows were resampled to. */
  rate: number;
  /** Channel names in column order (`ax`, `ay`, ...): window features find axes by name. */
  channelNames: string[];
}

/** Hyperparameters as plain JSON, validated by each family's `parseParams`. */
export type Params = Record<string, number | string | boolean | number[]>;

/**
 * What a family is trained on: features already through the fitted pipeline.
 * For classification `y` holds class indices 0..nClasses-1; for regression, the target values.
 */
export interface TrainData {
  x: Matrix;
  y: Float64Array;
  task: Task;
  /** Number of classes (2 for binary); 1 for regression. */
  nClasses: number;
  /** Per-row weights (class weights for imbalance); absent means all ones. */
  weights?: Float64Array;
  /**
   * Per-row group ids (a patient): rows of one group stay together when a family holds some of
   * its training rows out for early stopping, so no patient is on both sides of that split.
   */
  groups?: Int32Array;
  /**
   * Rows held out from `x` for early stopping. Families that do not early-stop ignore it. Never
   * the rows a score is reported on.
   */
  valid?: { x: Matrix; y: Float64Array };
  /** Set for sequence families: how each row of `x` is a window. */
  sequence?: SequenceShape;
  /**
   * Regression outputs learnt at once (default 1). With more than one, `y` (and `valid.y`) hold
   * `rows × nOutputs` targets row-major, and `predict` returns `rows × nOutputs` values.
   */
  nOutputs?: number;
}

/** Context for one training run. */
export interface TrainContext {
  seed: number;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}

/** Serializable engine state: what `save` writes and `load` reads back. */
export interface ModelState {
  family: Family;
  task: Task;
  nClasses: number;
  nFeatures: number;
  params: Params;
  /** Family-specific weights, JSON-serializable. */
  weights: unknown;
  /** Sequence families: the window shape the model takes. */
  sequence?: SequenceShape;
  /** Regression outputs (absent means 1). */
  nOutputs?: number;
  /**
   * A post-hoc calibrator's state (src/eval's `ProbabilityCalibrator.toJSON()`), applied to the
   * probabilities of the model the rest of this state describes by src/automl's
   * `CalibratedModel`; absent for an uncalibrated model. A family's own `load` ignores it: load
   * states through src/automl's `loadModel`.
   */
  calibration?: unknown;
}

/**
 * A trained model. `predict` returns, for classification, `rows × nClasses` probabilities in
 * row-major order (binary included: two columns, so all tasks read the same way); for
 * regression, one value per row.
 */
export interface TrainedModel {
  readonly family: Family;
  readonly task: Task;
  readonly nClasses: number;
  readonly nFeatures: number;
  readonly params: Params;
  /** Sequence families: the window shape the model takes (`x` rows are flattened windows). */
  readonly sequence?: SequenceShape;
  /** Regression outputs (absent means 1); `predict` returns `rows × nOutputs` values. */
  readonly nOutputs?: number;
  predict(x: Matrix): Float64Array;
  toState(): ModelState;
}

/** A family: its defaults, parameter parsing, training and loading. */
export interface ModelFamily {
  readonly name: Family;
  /** Tasks this family can learn. */
  readonly tasks: readonly Task[];
  /** What its rows are: table feature rows, or windows of a sensor stream (default `table`). */
  readonly input?: 'table' | 'sequence';
  /** Whether it learns several regression outputs at once (`TrainData.nOutputs` > 1). */
  readonly multiOutput?: boolean;
  /** Its hyperparameters with types, ranges and help (what `parseParams` enforces; the CLI lists them). */
  readonly paramSpec: Readonly<Record<string, ParamSpec>>;
  /** Default hyperparameters (what `--model <family>` uses without `--param`). */
  defaults(task: Task, rows: number): Params;
  /**
   * What a budgeted search (`medfit train --budget`) varies, for a table of `rows` training rows:
   * ranges within `paramSpec`, narrower and more regularised on small tables. Absent: the family
   * is only tried with its defaults.
   */
  searchSpace?(task: Task, rows: number): SearchSpace;
  /**
   * Validates user-given hyperparameters (strings from `--param family.key=value`, or JSON values)
   * merged over the defaults; throws `Errors.badParam` naming the parameter.
   */
  parseParams(raw: Record<string, unknown>, task: Task, rows: number): Params;
  train(data: TrainData, params: Params, ctx: TrainContext): Promise<TrainedModel>;
  /** Rebuilds a model from `toState()`; throws `Errors.manifest`-style errors on bad state. */
  load(state: ModelState): TrainedModel;
}
