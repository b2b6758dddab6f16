/**
 * window-gbdt: per-window statistical and spectral features (`sequence/features.ts`) fed to the
 * gbdt family. On small wearable data this is usually the strongest model. The features are
 * computed in TypeScript by one function, `windowFeatures`, in training, in `predict` and in
 * serving (before ONNX Runtime, which runs only the trees: `gbdtStateOf` gives the inner gbdt
 * state for the exporter and `featuresFor` the features for its input), so they cannot drift.
 *
 * State: `nFeatures` is the raw window width (steps × channels); `weights` is
 * `{ gbdt: GbdtWeights, features: { version, names } }`, the trees over the feature columns
 * `names`. A model whose feature names or version differ from what this code computes for its
 * `sequence` refuses to load: the feature set changed, retrain it.
 */
import { Errors, type Matrix, type Task } from '../../core/index.js';
import { WINDOW_FEATURES_VERSION, windowFeatureNames, windowFeatures } from '../../sequence/index.js';
import { gbdt, GBDT_PARAMS, type GbdtModel, type GbdtWeights } from '../gbdt/index.js';
import { parseParams } from '../params.js';
import type { ModelFamily, ModelState, Params, SequenceShape, TrainContext, TrainData, TrainedModel } from '../types.js';

/** `ModelState.weights` of a window-gbdt model. */
export interface WindowGbdtWeights {
  /** The trees, over the feature columns `features.names`. */
  gbdt: GbdtWeights;
  features: {
    /** `WINDOW_FEATURES_VERSION` the model was trained with. */
    version: number;
    /** `windowFeatureNames(sequence)` at training time. */
    names: string[];
  };
}

const TASKS: readonly Task[] = ['binary', 'multiclass', 'regression'];

/** The gbdt defaults: tuned on small tables, and they hold for ~1–20k windows × ~250 features. */
function defaults(task: Task, rows: number): Params {
  return gbdt.defaults(task, rows);
}

/** The window features of `x` for a model of window shape `shape` (what serving feeds the trees). */
export function featuresFor(shape: SequenceShape, x: Matrix): Matrix {
  return windowFeatures(x, shape);
}

/** A trained (or loaded) window-gbdt model: features, then the inner gbdt model. */
export class WindowGbdtModel implements TrainedModel {
  readonly family = 'window-gbdt' as const;
  readonly nFeatures: number;

  constructor(
    readonly task: Task,
    readonly nClasses: number,
    readonly params: Params,
    readonly sequence: SequenceShape,
    /** The trees over the window features. */
    readonly inner: GbdtModel,
    /** The feature columns the trees read. */
    readonly featureNames: string[],
  ) {
    this.nFeatures = sequence.steps * sequence.channels;
  }

  predict(x: Matrix): Float64Array {
    if (x.cols !== this.nFeatures)
      throw Errors.badData(
        '',
        `window-gbdt model expects windows of ${this.sequence.steps} steps × ${this.sequence.channels} channels = ${this.nFeatures} values per row, got ${x.cols}`,
      );
    return this.inner.predict(windowFeatures(x, this.sequence));
  }

  toState(): ModelState {
    const weights: WindowGbdtWeights = {
      gbdt: this.inner.toState().weights as GbdtWeights,
      features: { version: WINDOW_FEATURES_VERSION, names: [...this.featureNames] },
    };
    return {
      family: 'window-gbdt',
      task: this.task,
      nClasses: this.nClasses,
      nFeatures: this.nFeatures,
      params: { ...this.params },
      weights,
      sequence: { ...this.sequence, channelNames: [...this.sequence.channelNames] },
    };
  }
}

/** Checks that `data` is a set of windows of its `sequence` shape; returns the shape. */
function checkTrainData(data: TrainData): SequenceShape {
  const shape = data.sequence;
  if (!shape) throw Errors.badData('', 'window-gbdt learns from windows of a sensor stream: the training data has no sequence shape');
  // Throws on a malformed shape (steps, channels, rate, channel names).
  windowFeatureNames(shape);
  const width = shape.steps * shape.channels;
  if (data.x.cols !== width)
    throw Errors.badData('', `window-gbdt: rows of ${data.x.cols} values do not match windows of ${shape.steps} steps × ${shape.channels} channels = ${width}`);
  if (data.valid && data.valid.x.cols !== width)
    throw Errors.badData('', `window-gbdt: validation rows of ${data.valid.x.cols} values do not match windows of ${width} values`);
  if ((data.nOutputs ?? 1) !== 1) throw Errors.badData('', 'window-gbdt learns one output; it was given ' + String(data.nOutputs));
  return shape;
}

async function train(data: TrainData, params: Params, ctx: TrainContext): Promise<WindowGbdtModel> {
  const shape = checkTrainData(data);
  const names = windowFeatureNames(shape);
  if (ctx.signal?.aborted) throw Errors.cancelled('training');
  const x = windowFeatures(data.x, shape);
  const valid = data.valid ? { x: windowFeatures(data.valid.x, shape), y: data.valid.y } : undefined;
  const full: Params = { ...defaults(data.task, data.x.rows), ...params };
  const inner: TrainData = { x, y: data.y, task: data.task, nClasses: data.nClasses };
  if (data.weights) inner.weights = data.weights;
  if (data.groups) inner.groups = data.groups;
  if (valid) inner.valid = valid;
  const model = (await gbdt.train(inner, full, ctx)) as GbdtModel;
  return new WindowGbdtModel(data.task, data.nClasses, full, { ...shape, channelNames: [...shape.channelNames] }, model, names);
}

/** The inner gbdt state of a window-gbdt state (what the ONNX exporter turns into trees). */
export function gbdtStateOf(state: ModelState): ModelState {
  const w = state.weights as Partial<WindowGbdtWeights> | null;
  const names = w && typeof w === 'object' && w.features && Array.isArray(w.features.names) ? w.features.names : [];
  return {
    family: 'gbdt',
    task: state.task,
    nClasses: state.nClasses,
    nFeatures: names.length,
    params: state.params,
    weights: w && typeof w === 'object' ? w.gbdt : undefined,
  };
}

function load(state: ModelState): WindowGbdtModel {
  const bad = (message: string) => Errors.manifest('window-gbdt', message);
  if (state === null || typeof state !== 'object') throw bad('state is not an object');
  if (state.family !== 'window-gbdt') throw bad(`state is for family "${String(state.family)}", not window-gbdt`);
  if (!TASKS.includes(state.task)) throw bad(`unknown task "${String(state.task)}"`);
  const shape = state.sequence;
  if (shape === null || typeof shape !== 'object') throw bad('the state has no sequence shape');
  let expected: string[];
  try {
    expected = windowFeatureNames(shape);
  } catch (e) {
    throw Errors.manifest('window-gbdt', `bad sequence shape (${e instanceof Error ? e.message : String(e)})`, e);
  }
  if (state.nFeatures !== shape.steps * shape.channels)
    throw bad(`nFeatures ${String(state.nFeatures)} is not steps × channels = ${shape.steps * shape.channels}`);
  if (state.nOutputs !== undefined && state.nOutputs !== 1) throw bad('window-gbdt has one output');
  const w = state.weights as Partial<WindowGbdtWeights> | null;
  if (w === null || typeof w !== 'object') throw bad('weights must be an object');
  const f = w.features;
  if (f === null || typeof f !== 'object' || !Array.isArray(f.names) || !f.names.every((n) => typeof n === 'string'))
    throw bad('weights.features.names must be an array of feature names');
  const changed = (why: string) =>
    bad(`the window feature set changed since this model was trained (${why}); retrain it with this version of medfit`);
  if (f.version !== WINDOW_FEATURES_VERSION) throw changed(`features version ${String(f.version)}, this medfit computes ${WINDOW_FEATURES_VERSION}`);
  if (f.names.length !== expected.length) throw changed(`${f.names.length} features stored, ${expected.length} computed`);
  const i = f.names.findIndex((n, j) => n !== expected[j]);
  if (i >= 0) throw changed(`feature ${i} is "${f.names[i]}" in the model, "${expected[i]}" now`);
  const inner = gbdt.load(gbdtStateOf(state)) as GbdtModel;
  return new WindowGbdtModel(state.task, state.nClasses, { ...state.params }, { ...shape, channelNames: [...shape.channelNames] }, inner, [...expected]);
}

/** The window-gbdt model family. */
export const windowGbdt: ModelFamily = {
  name: 'window-gbdt',
  tasks: ['binary', 'multiclass', 'regression'],
  input: 'sequence',
  multiOutput: false,
  paramSpec: GBDT_PARAMS,
  defaults,
  parseParams: (raw, task, rows) => parseParams('window-gbdt', GBDT_PARAMS, defaults(task, rows), raw),
  train,
  load,
};
