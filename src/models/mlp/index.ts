/**
 * The MLP family: a Keras-style feed-forward network (Dense + ReLU [+ Dropout] per hidden layer,
 * softmax or linear head) trained by its own trainer in a worker thread (`trainer.ts`: the
 * WebAssembly SIMD products of seqnet/gemm.ts, TensorFlow.js's initialiser, dropout and Adam
 * reproduced and tested step for step against it), and predicted on the main thread by a plain-TypeScript forward pass over the exported weights. A
 * multi-output regression has one linear unit per output (each output standardized on its own),
 * trained on the squared error averaged over the outputs.
 */
import { Errors } from '../../core/index.js';
import type { Matrix, Task } from '../../core/index.js';
import { parseParams, SMALL_TABLE_ROWS } from '../params.js';
import type { ParamSpec, SearchSpace } from '../params.js';
import type { ModelFamily, ModelState, Params, TrainedModel, TrainData, TrainContext } from '../types.js';
import { forward, validateWeights } from './forward.js';
import type { MlpActivation, MlpWeights } from './forward.js';
import { runTraining } from './host.js';
import type { MlpConfig, MlpTrainInfo } from './protocol.js';

export type { MlpLayer, MlpWeights, MlpActivation } from './forward.js';
export type { MlpTrainInfo } from './protocol.js';
export { forward as mlpForward } from './forward.js';

const TASKS: readonly Task[] = ['binary', 'multiclass', 'regression'];

/** Hyperparameters of the MLP family, as `--param mlp.<key>=<value>` accepts them. */
export const MLP_PARAMS: Record<string, ParamSpec> = {
  units: { type: 'intList', min: 1, max: 4096, maxLength: 8, help: 'hidden layer widths, e.g. 64,32' },
  dropout: { type: 'float', min: 0, max: 0.9, help: 'dropout rate after each hidden layer' },
  learning_rate: { type: 'float', min: 0, max: 1, exclusiveMin: true, help: 'Adam learning rate' },
  epochs: { type: 'int', min: 1, max: 100000, help: 'maximum epochs (early stopping usually ends sooner)' },
  batch_size: { type: 'int', min: 1, max: 65536, help: 'rows per gradient step' },
  patience: { type: 'int', min: 1, max: 100000, help: 'epochs without validation improvement before stopping' },
  l2: { type: 'float', min: 0, max: 10, help: 'L2 penalty on kernels (Keras semantics: l2 · Σw²)' },
  class_weight: { type: 'enum', values: ['none', 'balanced'], help: 'balanced: weight classes n/(k·count)' },
};

/**
 * Default batch size: 32 (the Keras default the reference network used) up to a few thousand
 * rows; beyond that, larger batches keep the steps per epoch near 100 (chosen when each step had a
 * fixed cost under TensorFlow.js; kept since, as changing it would change every trained model).
 */
function defaultBatchSize(rows: number): number {
  if (rows <= 4000) return 32;
  return Math.min(512, 2 ** Math.round(Math.log2(rows / 100)));
}

function defaults(_task: Task, rows: number): Params {
  return {
    units: [64, 32],
    dropout: 0.1,
    learning_rate: 0.001,
    epochs: 200,
    batch_size: defaultBatchSize(rows),
    patience: 20,
    l2: 0.0001,
    class_weight: 'none',
  };
}

function toConfig(p: Params): MlpConfig {
  return {
    units: p.units as number[],
    dropout: p.dropout as number,
    learningRate: p.learning_rate as number,
    epochs: p.epochs as number,
    batchSize: p.batch_size as number,
    patience: p.patience as number,
    l2: p.l2 as number,
    classWeight: p.class_weight as 'none' | 'balanced',
  };
}

/** A trained MLP; `info` is present on a freshly trained model, absent on a loaded one. */
export interface MlpModel extends TrainedModel {
  readonly weights: MlpWeights;
  readonly info?: MlpTrainInfo;
}

function makeModel(task: Task, nClasses: number, nFeatures: number, params: Params, weights: MlpWeights, info?: MlpTrainInfo, nOutputs = 1): MlpModel {
  // Written only for several outputs, so a single-output state is what it always was.
  const outputs = nOutputs > 1 ? { nOutputs } : {};
  return {
    family: 'mlp',
    task,
    nClasses,
    nFeatures,
    params,
    weights,
    ...outputs,
    ...(info ? { info } : {}),
    predict: (x: Matrix) => forward(weights, x),
    toState: (): ModelState => ({
      family: 'mlp',
      task,
      nClasses,
      nFeatures,
      params: structuredClone(params),
      weights: structuredClone(weights),
      ...outputs,
    }),
  };
}

function checkTargets(y: Float64Array, classify: boolean, nClasses: number, what: string, nOutputs = 1): void {
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    const row = nOutputs > 1 ? `${Math.floor(i / nOutputs)}, output ${(i % nOutputs) + 1},` : String(i);
    if (classify ? !(Number.isInteger(v) && v >= 0 && v < nClasses) : !Number.isFinite(v))
      throw Errors.badData('', classify ? `${what} at row ${row} is not a class index in 0..${nClasses - 1}` : `${what} at row ${row} is not finite`);
  }
}

function headFor(task: Task): MlpActivation {
  return task === 'regression' ? 'linear' : 'softmax';
}

/**
 * What a budgeted search varies: the shape of the network, its regularisation and its step size.
 * Small tables get narrower nets and more dropout and L2 (`auto` tries the MLP only from
 * MLP_MIN_ROWS rows; this is for `--model mlp`).
 */
function searchSpace(_task: Task, rows: number): SearchSpace {
  const small = rows < SMALL_TABLE_ROWS;
  return {
    units: { type: 'choice', values: small ? [[16], [32], [32, 16], [64, 32]] : [[32], [64], [64, 32], [128, 64], [256, 128], [128, 64, 32]] },
    dropout: { type: 'float', low: small ? 0.1 : 0, high: 0.5 },
    learning_rate: { type: 'float', low: 1e-4, high: 1e-2, log: true },
    l2: { type: 'float', low: small ? 1e-4 : 1e-6, high: small ? 1e-1 : 1e-2, log: true },
    batch_size: { type: 'choice', values: small ? [16, 32] : [32, 64, 128, 256] },
  };
}

/** The MLP model family. */
export const mlp: ModelFamily = {
  name: 'mlp',
  tasks: TASKS,
  multiOutput: true,
  paramSpec: MLP_PARAMS,
  defaults,
  searchSpace,
  parseParams: (raw, task, rows) => parseParams('mlp', MLP_PARAMS, defaults(task, rows), raw),
  async train(data: TrainData, params: Params, ctx: TrainContext): Promise<MlpModel> {
    if (!TASKS.includes(data.task)) throw Errors.badParam('task', `mlp cannot learn ${data.task}`);
    const classify = data.task !== 'regression';
    const nClasses = classify ? data.nClasses : 1;
    const nOutputs = data.nOutputs ?? 1;
    if (classify && nClasses < 2) throw Errors.badData('', `classification needs at least 2 classes, got ${nClasses}`);
    if (!Number.isInteger(nOutputs) || nOutputs < 1 || (classify && nOutputs > 1))
      throw Errors.badData('', `mlp: ${String(data.nOutputs)} outputs do not fit a ${data.task} task`);
    if (data.x.rows < 2 || data.x.rows * nOutputs !== data.y.length)
      throw Errors.badData('', `need at least 2 rows with ${nOutputs === 1 ? 'one target' : `${nOutputs} targets`} each (got ${data.x.rows} rows, ${data.y.length} targets)`);
    if (data.weights && data.weights.length !== data.x.rows)
      throw Errors.badData('', `weights has ${data.weights.length} entries for ${data.x.rows} rows`);
    if (data.valid && (data.valid.x.cols !== data.x.cols || data.valid.x.rows * nOutputs !== data.valid.y.length))
      throw Errors.badData('', 'validation rows do not match the training columns or targets');
    checkTargets(data.y, classify, nClasses, 'target', nOutputs);
    if (data.valid) checkTargets(data.valid.y, classify, nClasses, 'validation target', nOutputs);
    if (data.weights && !data.weights.every((w) => Number.isFinite(w) && w >= 0))
      throw Errors.badData('', 'weights must be finite and non-negative');
    const { weights, info } = await runTraining(data, nClasses, toConfig(params), ctx);
    return makeModel(data.task, nClasses, data.x.cols, params, weights, info, nOutputs);
  },
  load(state: ModelState): MlpModel {
    const bad = (msg: string) => Errors.manifest('mlp', msg);
    if (state.family !== 'mlp') throw bad(`state is for family ${String(state.family)}, not mlp`);
    if (!TASKS.includes(state.task)) throw bad(`unknown task ${String(state.task)}`);
    if (!Number.isInteger(state.nFeatures) || state.nFeatures < 1) throw bad('nFeatures must be a positive integer');
    const classify = state.task !== 'regression';
    if (classify ? !Number.isInteger(state.nClasses) || state.nClasses < 2 : state.nClasses !== 1)
      throw bad(`nClasses ${String(state.nClasses)} does not fit task ${state.task}`);
    const nOutputs = state.nOutputs ?? 1;
    if (!Number.isInteger(nOutputs) || nOutputs < 1 || (classify && nOutputs > 1)) throw bad(`nOutputs ${String(state.nOutputs)} does not fit task ${state.task}`);
    const weights = validateWeights(state.weights, state.nFeatures, classify ? state.nClasses : nOutputs, headFor(state.task));
    return makeModel(state.task, state.nClasses, state.nFeatures, state.params, structuredClone(weights), undefined, nOutputs);
  },
};
