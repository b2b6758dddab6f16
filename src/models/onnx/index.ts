/**
 * ONNX export of every model family, so serving has one path (ONNX Runtime) whatever trained the
 * model. The graph reads `input`: FP32 [N, nFeatures] for the table families and for
 * `window-gbdt` (whose window features are computed in TypeScript before ONNX Runtime, so its
 * graph reads those), FP32 [N, steps, channels] for the sequence networks (N symbolic). It writes
 * `probabilities` (FP32 [N, nClasses], binary as [1 - p, p]) or `value` (FP32 [N, nOutputs]), the
 * same numbers as the model's own `predict` up to float32 rounding.
 */
import { Errors, type Task } from '../../core/index.js';
import type { GbdtWeights } from '../gbdt/index.js';
import type { LinearWeights } from '../linear/index.js';
import type { MlpWeights } from '../mlp/index.js';
import type { SeqNetWeights } from '../seqnet/weights.js';
import type { ModelState, TrainedModel } from '../types.js';
import { gbdtGraph } from './gbdt.js';
import { INPUT, outputName, outputWidth } from './heads.js';
import { linearGraph } from './linear.js';
import { mlpGraph } from './mlp.js';
import { seqnetGraph } from './seqnet.js';
import { DataType, encodeModel, type GraphParts, valueInfo } from './proto.js';

export { INPUT as ONNX_INPUT, PROBABILITIES as ONNX_PROBABILITIES, VALUE as ONNX_VALUE } from './heads.js';
export { decodeModel as decodeOnnx } from './proto.js';
export { parseUntrustedOnnx, encodeOnnxModel, validateOnnxModel, onnxName, ONNX_DOMAINS, ONNX_LIMITS, type OnnxLimits, type OnnxModel } from './validate.js';

/** Version written as the ONNX model's producer_version. */
const PRODUCER_VERSION = '0.1.0';

/** Input/output metadata of an exported model, in Open Inference Protocol terms. */
export interface OnnxSignature {
  inputs: { name: string; datatype: 'FP32'; shape: number[] }[];
  outputs: { name: string; datatype: 'FP32'; shape: number[] }[];
}

/**
 * The shape of a model's ONNX graph: what `onnxSignature` needs. A `TrainedModel` has these fields,
 * but pass the model itself to `onnxSignature`: for `window-gbdt` its input is its window
 * features, which only its weights name.
 */
export interface OnnxShape {
  task: Task;
  /** Columns of an input row (table families, and `window-gbdt`'s window features). */
  nFeatures: number;
  /** Classes (2 for binary); ignored for regression. */
  nClasses: number;
  /** Regression outputs (default 1): `value` is [N, nOutputs]. */
  nOutputs?: number;
  /** Sequence networks: the input is [N, steps, channels] instead of [N, nFeatures]. */
  sequence?: { steps: number; channels: number };
}

/** The window features of a `window-gbdt` model's state: the GBDT reads them in this order. */
interface WindowGbdtWeights {
  gbdt: GbdtWeights;
  features: { names: string[] };
}

/** The families whose state holds `SeqNetWeights` and whose graph reads windows. */
const SEQNET_FAMILIES: ReadonlySet<string> = new Set(['lstm', 'gru', 'cnn', 'cnn-lstm']);

function isModel(m: TrainedModel | OnnxShape): m is TrainedModel {
  return typeof (m as Partial<TrainedModel>).toState === 'function';
}

/** The graph shape of a model, from its state (so `toOnnx` and `onnxSignature` cannot disagree). */
function shapeOf(state: ModelState): OnnxShape {
  const base = { task: state.task, nClasses: state.nClasses, ...(state.nOutputs !== undefined ? { nOutputs: state.nOutputs } : {}) };
  if (state.family === 'window-gbdt') {
    const names = (state.weights as WindowGbdtWeights | undefined)?.features?.names;
    if (!Array.isArray(names) || names.length < 1) throw Errors.internal('cannot export the window-gbdt model to ONNX: its state names no window features');
    return { ...base, nFeatures: names.length };
  }
  if (SEQNET_FAMILIES.has(state.family)) {
    const w = state.weights as SeqNetWeights;
    const seq = state.sequence ?? { steps: w.steps, channels: w.channels };
    if (seq.steps !== w.steps || seq.channels !== w.channels) {
      throw Errors.internal(`cannot export the ${state.family} model to ONNX: its windows are ${seq.steps} × ${seq.channels} but its network reads ${w.steps} × ${w.channels}`);
    }
    return { ...base, nFeatures: state.nFeatures, sequence: { steps: seq.steps, channels: seq.channels } };
  }
  return { ...base, nFeatures: state.nFeatures };
}

/**
 * The tensors `toOnnx` gives a model (-1 marks the batch dimension): what a serving runtime is
 * told the model takes and returns. Pass the trained model, or its shape when there is no model
 * (a declared upload, a test): input `input` [-1, nFeatures] or, with `sequence`, [-1, steps,
 * channels]; output `probabilities` [-1, nClasses] or `value` [-1, nOutputs].
 */
export function onnxSignature(model: TrainedModel | OnnxShape): OnnxSignature {
  const m = isModel(model) ? shapeOf(model.toState()) : model;
  const input = m.sequence ? [-1, m.sequence.steps, m.sequence.channels] : [-1, m.nFeatures];
  return {
    inputs: [{ name: INPUT, datatype: 'FP32', shape: input }],
    outputs: [{ name: outputName(m.task), datatype: 'FP32', shape: [-1, outputWidth(m.task, m.nClasses, m.nOutputs)] }],
  };
}

/**
 * Serializes a trained model of any family to ONNX model bytes (IR 8, opset 17, `ai.onnx.ml` 3
 * for trees). Deterministic: the same model gives the same bytes, so its SHA-256 can be recorded.
 */
export function toOnnx(model: TrainedModel): Uint8Array {
  const state = model.toState();
  const shape = shapeOf(state);
  let parts: GraphParts;
  switch (model.family) {
    case 'logistic':
    case 'linear':
      parts = linearGraph(model.task, model.nFeatures, state.weights as LinearWeights);
      break;
    case 'gbdt':
      parts = gbdtGraph(model.task, state.weights as GbdtWeights);
      break;
    case 'mlp':
      parts = mlpGraph(model.task, state.weights as MlpWeights);
      break;
    case 'lstm':
    case 'gru':
    case 'cnn':
    case 'cnn-lstm':
      parts = seqnetGraph(model.task, state.weights as SeqNetWeights);
      break;
    case 'window-gbdt':
      // The window features are computed in TypeScript before ONNX Runtime; the graph is the
      // GBDT over them.
      parts = gbdtGraph(model.task, (state.weights as WindowGbdtWeights).gbdt);
      break;
    default:
      throw Errors.internal(`no ONNX export for model family ${model.family as string}`);
  }
  const inDims = shape.sequence ? ['N', shape.sequence.steps, shape.sequence.channels] : ['N', shape.nFeatures];
  return encodeModel({
    name: `medfit_${model.family}`,
    parts,
    inputs: [valueInfo(INPUT, DataType.FLOAT, inDims)],
    outputs: [valueInfo(outputName(model.task), DataType.FLOAT, ['N', outputWidth(model.task, model.nClasses, shape.nOutputs)])],
    producerVersion: PRODUCER_VERSION,
    docString: `medfit ${model.family} model (${model.task})`,
    metadata: { family: model.family, task: model.task },
  });
}
