/**
 * The sequence network families — LSTM, GRU, 1D-CNN and CNN+LSTM — over windows of sensor streams
 * (`TrainData.sequence`). Each trains in a worker thread with medfit's own trainer (`net.ts`:
 * hand-derived backpropagation, WebAssembly SIMD matrix products, Keras's Adam and initialisers)
 * and predicts on the calling thread with the plain-TypeScript `seqnetForward`.
 *
 * Heads: softmax + categorical cross-entropy for classification (binary too: two outputs), linear
 * + mean squared error for regression with `nOutputs` outputs. Dropout sits before the dense head.
 * Keras's reference `Sequential([LSTM(100), Dropout(0.2), Dense(1)])` with Adam(0.001) and MSE
 * is `--model lstm --param lstm.units=100 --param lstm.dropout=0.2`.
 */
import { Errors } from '../../core/index.js';
import type { Matrix, Task } from '../../core/index.js';
import { parseParams } from '../params.js';
import type { ParamSpec } from '../params.js';
import type { ModelFamily, ModelState, Params, SequenceShape, TrainContext, TrainData, TrainedModel } from '../types.js';
import type { SeqConfig, SeqFamilyName } from './build.js';
import { compileSeqNet, validateSeqNetWeights } from './forward.js';
import { runSeqTraining } from './host.js';
import type { SeqTrainInfo } from './protocol.js';
import type { SeqNetWeights } from './weights.js';

export type { SeqLayer, SeqNetWeights } from './weights.js';
export type { SeqTrainInfo } from './protocol.js';
export type { SeqConfig, SeqFamilyName } from './build.js';
export { seqnetForward, validateSeqNetWeights } from './forward.js';

const TASKS: readonly Task[] = ['binary', 'multiclass', 'regression'];

const COMMON: Record<string, ParamSpec> = {
  dropout: { type: 'float', min: 0, max: 0.9, help: 'dropout rate before the dense output layer' },
  learning_rate: { type: 'float', min: 0, max: 1, exclusiveMin: true, help: 'Adam learning rate (β1 0.9, β2 0.999, ε 1e-7, as Keras)' },
  epochs: { type: 'int', min: 1, max: 100000, help: 'maximum epochs (early stopping usually ends sooner)' },
  batch_size: { type: 'int', min: 1, max: 4096, help: 'windows per gradient step' },
  patience: { type: 'int', min: 1, max: 100000, help: 'epochs without validation improvement before stopping (the best epoch is kept)' },
  class_weight: { type: 'enum', values: ['none', 'balanced'], help: 'balanced: weight classes n/(k·count)' },
};
const UNITS: ParamSpec = { type: 'int', min: 1, max: 1024, help: 'units of each recurrent layer' };
const FILTERS: ParamSpec = { type: 'int', min: 1, max: 1024, help: 'filters of each Conv1D layer (relu, same padding)' };
const KERNEL: ParamSpec = { type: 'int', min: 1, max: 64, help: 'Conv1D kernel size in steps' };

/** Hyperparameters per family, as `--param <family>.<key>=<value>` accepts them. */
export const SEQ_PARAMS: Record<SeqFamilyName, Record<string, ParamSpec>> = {
  lstm: { units: UNITS, layers: { type: 'int', min: 1, max: 4, help: 'stacked LSTM layers (all but the last return sequences)' }, ...COMMON },
  gru: { units: UNITS, layers: { type: 'int', min: 1, max: 4, help: 'stacked GRU layers (all but the last return sequences)' }, ...COMMON },
  cnn: {
    filters: FILTERS,
    kernel_size: KERNEL,
    layers: { type: 'int', min: 1, max: 6, help: 'Conv1D layers before global average pooling' },
    ...COMMON,
  },
  'cnn-lstm': {
    filters: FILTERS,
    kernel_size: KERNEL,
    layers: { type: 'int', min: 1, max: 2, help: 'Conv1D layers before max pooling' },
    pool: { type: 'int', min: 1, max: 64, help: 'MaxPooling1D size (and stride) in steps, at most the window length' },
    units: { type: 'int', min: 1, max: 1024, help: 'units of the LSTM after pooling' },
    ...COMMON,
  },
};

const TRAINING_DEFAULTS = { dropout: 0.2, learning_rate: 0.001, epochs: 100, batch_size: 32, patience: 10, class_weight: 'none' };

function defaultsOf(family: SeqFamilyName): Params {
  switch (family) {
    case 'lstm':
    case 'gru':
      return { units: 64, layers: 1, ...TRAINING_DEFAULTS };
    case 'cnn':
      return { filters: 64, kernel_size: 3, layers: 2, ...TRAINING_DEFAULTS };
    case 'cnn-lstm':
      return { filters: 64, kernel_size: 3, layers: 1, pool: 2, units: 64, ...TRAINING_DEFAULTS };
  }
}

/** The typed configuration of validated params (keys a family lacks get harmless values). */
export function toSeqConfig(p: Params): SeqConfig {
  const num = (k: string, d: number) => (typeof p[k] === 'number' ? (p[k] as number) : d);
  return {
    units: num('units', 1),
    layers: num('layers', 1),
    filters: num('filters', 1),
    kernelSize: num('kernel_size', 1),
    pool: num('pool', 1),
    dropout: num('dropout', 0),
    learningRate: num('learning_rate', 0.001),
    epochs: num('epochs', 1),
    batchSize: num('batch_size', 32),
    patience: num('patience', 1),
    classWeight: p.class_weight === 'balanced' ? 'balanced' : 'none',
  };
}

/** A trained sequence network; `info` is present on a freshly trained model, absent on a loaded one. */
export interface SeqNetModel extends TrainedModel {
  readonly family: SeqFamilyName;
  readonly sequence: SequenceShape;
  readonly nOutputs: number;
  readonly weights: SeqNetWeights;
  readonly info?: SeqTrainInfo;
}

function makeModel(family: SeqFamilyName, task: Task, nClasses: number, nOutputs: number, params: Params, sequence: SequenceShape, weights: SeqNetWeights, info?: SeqTrainInfo): SeqNetModel {
  const run = compileSeqNet(weights);
  const width = sequence.steps * sequence.channels;
  return {
    family,
    task,
    nClasses,
    nFeatures: width,
    params,
    sequence,
    nOutputs,
    weights,
    ...(info ? { info } : {}),
    predict: (x: Matrix) => {
      if (x.cols !== width) throw Errors.badData('', `${family} expects windows of ${sequence.steps} steps × ${sequence.channels} channels = ${width} values per row, got ${x.cols}`);
      const n = x.rows * x.cols;
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(x.data[i]!)) throw Errors.badData('', `window ${Math.floor(i / width)} holds a non-finite value at step ${Math.floor((i % width) / sequence.channels)}, channel ${sequence.channelNames[i % sequence.channels] ?? i % sequence.channels}`);
      }
      return run(x);
    },
    toState: (): ModelState => ({
      family,
      task,
      nClasses,
      nFeatures: width,
      params: structuredClone(params),
      weights: structuredClone(weights),
      sequence: structuredClone(sequence),
      nOutputs,
    }),
  };
}

/** Checks `data` before any thread starts; throws `Errors.badData`. */
function checkData(family: SeqFamilyName, data: TrainData): { classify: boolean; nClasses: number; nOutputs: number; sequence: SequenceShape } {
  const bad = (msg: string) => Errors.badData('', msg);
  const s = data.sequence;
  if (!s) throw bad(`${family} learns from windows: the training data has no sequence shape (steps × channels)`);
  if (!Number.isInteger(s.steps) || s.steps < 1 || !Number.isInteger(s.channels) || s.channels < 1)
    throw bad(`the window shape ${String(s.steps)} steps × ${String(s.channels)} channels is not two positive integers`);
  const width = s.steps * s.channels;
  if (data.x.cols !== width) throw bad(`rows have ${data.x.cols} values, but windows of ${s.steps} steps × ${s.channels} channels have ${width}`);
  if (data.x.data.length < data.x.rows * width) throw bad(`x holds ${data.x.data.length} values for ${data.x.rows} windows of ${width}`);
  const classify = data.task !== 'regression';
  const nClasses = classify ? data.nClasses : 1;
  if (classify && !(Number.isInteger(nClasses) && nClasses >= 2)) throw bad(`classification needs at least 2 classes, got ${nClasses}`);
  const nOutputs = classify ? 1 : (data.nOutputs ?? 1);
  if (!Number.isInteger(nOutputs) || nOutputs < 1 || nOutputs > 4096) throw bad(`nOutputs must be a positive integer, got ${String(data.nOutputs)}`);
  const yWidth = classify ? 1 : nOutputs;
  if (data.x.rows < 2) throw bad(`need at least 2 windows, got ${data.x.rows}`);
  if (data.y.length !== data.x.rows * yWidth)
    throw bad(`expected ${data.x.rows * yWidth} targets (${data.x.rows} windows${yWidth > 1 ? ` × ${yWidth} outputs` : ''}), got ${data.y.length}`);
  const checkTargets = (y: Float64Array, what: string) => {
    for (let i = 0; i < y.length; i++) {
      const v = y[i]!;
      if (classify ? !(Number.isInteger(v) && v >= 0 && v < nClasses) : !Number.isFinite(v))
        throw bad(classify ? `${what} at row ${i} is not a class index in 0..${nClasses - 1}` : `${what} ${i} (row ${Math.floor(i / yWidth)}) is not finite`);
    }
  };
  checkTargets(data.y, 'target');
  if (data.weights) {
    if (data.weights.length !== data.x.rows) throw bad(`weights has ${data.weights.length} entries for ${data.x.rows} windows`);
    if (!data.weights.every((w) => Number.isFinite(w) && w >= 0)) throw bad('weights must be finite and non-negative');
    if (!data.weights.some((w) => w > 0)) throw bad('weights are all zero');
  }
  if (data.groups && data.groups.length !== data.x.rows) throw bad(`groups has ${data.groups.length} entries for ${data.x.rows} windows`);
  if (data.valid) {
    const v = data.valid;
    if (v.x.cols !== width) throw bad(`validation rows have ${v.x.cols} values, windows have ${width}`);
    if (v.x.rows < 1 || v.y.length !== v.x.rows * yWidth) throw bad(`validation has ${v.x.rows} windows and ${v.y.length} targets`);
    checkTargets(v.y, 'validation target');
  }
  return { classify, nClasses, nOutputs, sequence: { steps: s.steps, channels: s.channels, rate: s.rate, channelNames: [...s.channelNames] } };
}

function makeFamily(name: SeqFamilyName): ModelFamily {
  const spec = SEQ_PARAMS[name];
  const defaults = (_task: Task, _rows: number) => defaultsOf(name);
  return {
    name,
    tasks: TASKS,
    input: 'sequence',
    multiOutput: true,
    paramSpec: spec,
    defaults,
    parseParams: (raw, task, rows) => parseParams(name, spec, defaults(task, rows), raw),
    async train(data: TrainData, params: Params, ctx: TrainContext): Promise<SeqNetModel> {
      if (!TASKS.includes(data.task)) throw Errors.badParam('task', `${name} cannot learn ${data.task}`);
      const { nClasses, nOutputs, sequence } = checkData(name, data);
      const config = toSeqConfig(params);
      if (name === 'cnn-lstm' && config.pool > sequence.steps)
        throw Errors.badParam(`${name}.pool`, `${config.pool} is longer than the ${sequence.steps}-step windows it pools`);
      const { weights, info } = await runSeqTraining(
        {
          family: name,
          task: data.task,
          nClasses,
          nOutputs,
          seed: ctx.seed,
          config,
          steps: sequence.steps,
          channels: sequence.channels,
          x: data.x,
          y: data.y,
          ...(data.weights ? { weights: data.weights } : {}),
          ...(data.groups ? { groups: data.groups } : {}),
          ...(data.valid ? { valid: data.valid } : {}),
        },
        ctx,
      );
      return makeModel(name, data.task, nClasses, nOutputs, params, sequence, weights, info);
    },
    load(state: ModelState): SeqNetModel {
      const bad = (msg: string) => Errors.manifest(name, msg);
      if (state.family !== name) throw bad(`state is for family ${String(state.family)}, not ${name}`);
      if (!TASKS.includes(state.task)) throw bad(`unknown task ${String(state.task)}`);
      const classify = state.task !== 'regression';
      if (classify ? !Number.isInteger(state.nClasses) || state.nClasses < 2 : state.nClasses !== 1)
        throw bad(`nClasses ${String(state.nClasses)} does not fit task ${state.task}`);
      const nOutputs = state.nOutputs ?? 1;
      if (!Number.isInteger(nOutputs) || nOutputs < 1 || (classify && nOutputs !== 1)) throw bad(`nOutputs ${String(state.nOutputs)} does not fit task ${state.task}`);
      const s = state.sequence as Partial<SequenceShape> | undefined;
      if (!s || typeof s !== 'object') throw bad('the state has no sequence shape');
      if (!Number.isInteger(s.steps) || !Number.isInteger(s.channels) || (s.steps as number) < 1 || (s.channels as number) < 1)
        throw bad('sequence.steps and sequence.channels must be positive integers');
      if (typeof s.rate !== 'number' || !Number.isFinite(s.rate) || s.rate <= 0) throw bad('sequence.rate must be a positive number');
      if (!Array.isArray(s.channelNames) || s.channelNames.length !== s.channels || !s.channelNames.every((c) => typeof c === 'string'))
        throw bad('sequence.channelNames must name every channel');
      const sequence: SequenceShape = { steps: s.steps!, channels: s.channels!, rate: s.rate, channelNames: [...s.channelNames] };
      if (state.nFeatures !== sequence.steps * sequence.channels) throw bad(`nFeatures ${String(state.nFeatures)} is not steps × channels = ${sequence.steps * sequence.channels}`);
      const weights = validateSeqNetWeights(structuredClone(state.weights));
      if (weights.steps !== sequence.steps || weights.channels !== sequence.channels)
        throw bad(`the weights take ${weights.steps} steps × ${weights.channels} channels, the state says ${sequence.steps} × ${sequence.channels}`);
      const last = weights.layers[weights.layers.length - 1]!;
      const want = classify ? state.nClasses : nOutputs;
      if (last.type !== 'dense' || last.units !== want) throw bad(`the network has ${last.type === 'dense' ? last.units : 0} outputs, the task needs ${want}`);
      if (last.activation !== (classify ? 'softmax' : 'linear')) throw bad(`the output layer's activation is ${last.activation}, ${state.task} needs ${classify ? 'softmax' : 'linear'}`);
      if (typeof state.params !== 'object' || state.params === null) throw bad('params must be an object');
      return makeModel(name, state.task, state.nClasses, nOutputs, structuredClone(state.params), sequence, weights);
    },
  };
}

/** LSTM: `layers` × LSTM(units) → Dropout → Dense. */
export const lstm: ModelFamily = makeFamily('lstm');
/** GRU (Keras 2, reset_after): `layers` × GRU(units) → Dropout → Dense. */
export const gru: ModelFamily = makeFamily('gru');
/** 1D-CNN: `layers` × Conv1D(filters, kernel_size, relu, same) → GlobalAveragePooling1D → Dropout → Dense. */
export const cnn: ModelFamily = makeFamily('cnn');
/** CNN+LSTM: 1–2 × Conv1D → MaxPooling1D(pool) → LSTM(units) → Dropout → Dense. */
export const cnnLstm: ModelFamily = makeFamily('cnn-lstm');
