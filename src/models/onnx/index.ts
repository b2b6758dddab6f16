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
import type { Family, ModelState, TrainedModel } from '../types.js';
import { gbdtGraph } from './gbdt.js';
import { INPUT, outputName, outputWidth } from './heads.js';
import { linearGraph } from './linear.js';
import { mlpGraph } from './mlp.js';
import { seqnetGraph } from './seqnet.js';
import { DataType, encodeModel, type GraphParts, valueInfo } from './proto.js';

export { INPUT as ONNX_INPUT, PROBABILITIES as ONNX_PROBABILITIES, VALUE as ONNX_VALUE } from './heads.js';
export { decodeModel as decodeOnnx, type GraphParts as OnnxParts } from './proto.js';
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

/** How `onnxParts` computes. */
export interface OnnxPartsOptions {
  /**
   * `float` (default): exactly what `toOnnx` encodes, FP32 from input to output. `double`: the
   * table families (logistic, linear, gbdt, mlp) compute in FP64 after casting the FP32 input
   * (gbdt: from its FP32 margins on) and write their output as FP64, for a composite graph that
   * goes on computing (weighting members, calibrating): a float32 rounding of the probabilities
   * would be magnified by a steep isotonic calibrator. Other families refuse it.
   */
  precision?: 'float' | 'double';
}

/**
 * The graph parts of a model of one family (not an ensemble, not calibrated): the nodes and
 * initializers that read `input` and write `probabilities` or `value`, by default exactly what
 * `toOnnx` encodes. A composite graph (src/automl's ensembles and calibrated models) puts several
 * of these into one graph, each renamed by `prefixOnnxParts`, and encodes it with
 * `encodeOnnxGraph`.
 */
export function onnxParts(model: TrainedModel, options: OnnxPartsOptions = {}): GraphParts {
  return partsOf(model.family, model.task, model.nFeatures, model.toState(), options.precision === 'double');
}

function partsOf(family: Family, task: Task, nFeatures: number, state: ModelState, double = false): GraphParts {
  if (double && !['logistic', 'linear', 'gbdt', 'mlp'].includes(family)) throw Errors.internal(`no double-precision ONNX graph for model family ${family}`);
  // A family's graph knows nothing of a calibrator: exporting the state's base alone would serve
  // uncalibrated probabilities under a calibrated model's name.
  if (state.calibration !== undefined) throw Errors.internal(`cannot export a calibrated ${family} model with toOnnx: use src/automl's modelToOnnx`);
  switch (family) {
    case 'logistic':
    case 'linear':
      return linearGraph(task, nFeatures, state.weights as LinearWeights, double);
    case 'gbdt':
      return gbdtGraph(task, state.weights as GbdtWeights, double);
    case 'mlp':
      return mlpGraph(task, state.weights as MlpWeights, double);
    case 'lstm':
    case 'gru':
    case 'cnn':
    case 'cnn-lstm':
      return seqnetGraph(task, state.weights as SeqNetWeights);
    case 'window-gbdt':
      // The window features are computed in TypeScript before ONNX Runtime; the graph is the
      // GBDT over them.
      return gbdtGraph(task, (state.weights as WindowGbdtWeights).gbdt);
    default:
      throw Errors.internal(`no ONNX export for model family ${family as string}${family === 'ensemble' ? " here: use src/automl's modelToOnnx" : ''}`);
  }
}

/**
 * The same graph parts with every name prefixed (`m0_` → `m0_coef`, `m0_probabilities`): each
 * node's inputs, outputs and name, and each initializer's name, except the graph input `input`
 * (which every part reads) and empty names (an omitted optional input). Several models' parts can
 * then share one graph without a name colliding. The parts are copied, not changed. Attributes
 * are kept as they are: our exporters write no subgraph attributes, and one here is refused
 * rather than left with names that no longer resolve.
 */
export function prefixOnnxParts(parts: GraphParts, prefix: string): GraphParts {
  const rename = (name: string) => (name === INPUT || name === '' ? name : `${prefix}${name}`);
  const nodes = parts.nodes.map((n) => {
    if ((n.attribute ?? []).some((a) => a.g != null || (a.graphs?.length ?? 0) > 0)) {
      throw Errors.internal(`cannot prefix ONNX node ${n.name ?? n.opType ?? ''}: it holds a subgraph`);
    }
    return {
      ...n,
      input: (n.input ?? []).map(rename),
      output: (n.output ?? []).map(rename),
      ...(n.name ? { name: `${prefix}${n.name}` } : {}),
    };
  });
  const initializers = parts.initializers.map((t) => ({ ...t, name: rename(t.name ?? '') }));
  return { nodes, initializers, ...(parts.usesMl ? { usesMl: true } : {}) };
}

/** What `encodeOnnxGraph` writes beside the graph: the names a reader of the file sees. */
export interface OnnxGraphInfo {
  /** The `family` metadata entry, and the graph's name `medfit_<family>`. */
  family: string;
  /** The model's doc string (default `medfit <family> model (<task>)`). */
  docString?: string;
  /** Further metadata entries after `family` and `task` (e.g. a calibration method). */
  metadata?: Record<string, string>;
}

/**
 * Serializes graph parts that read `input` and write the task's output (`probabilities` or
 * `value`) of `shape` to ONNX model bytes (IR 8, opset 17, with `ai.onnx.ml` 3 when a part uses
 * it). Deterministic: the same parts give the same bytes.
 */
export function encodeOnnxGraph(parts: GraphParts, shape: OnnxShape, info: OnnxGraphInfo): Uint8Array {
  const inDims = shape.sequence ? ['N', shape.sequence.steps, shape.sequence.channels] : ['N', shape.nFeatures];
  return encodeModel({
    name: `medfit_${info.family}`,
    parts,
    inputs: [valueInfo(INPUT, DataType.FLOAT, inDims)],
    outputs: [valueInfo(outputName(shape.task), DataType.FLOAT, ['N', outputWidth(shape.task, shape.nClasses, shape.nOutputs)])],
    producerVersion: PRODUCER_VERSION,
    docString: info.docString ?? `medfit ${info.family} model (${shape.task})`,
    metadata: { family: info.family, task: shape.task, ...info.metadata },
  });
}

/**
 * Serializes a trained model of one family to ONNX model bytes (IR 8, opset 17, `ai.onnx.ml` 3
 * for trees): `encodeOnnxGraph(onnxParts(model))`. Deterministic: the same model gives the same
 * bytes, so its SHA-256 can be recorded. Ensembles and calibrated models are exported by
 * src/automl's `modelToOnnx` (this refuses them).
 */
export function toOnnx(model: TrainedModel): Uint8Array {
  const state = model.toState();
  const parts = partsOf(model.family, model.task, model.nFeatures, state);
  return encodeOnnxGraph(parts, shapeOf(state), { family: model.family });
}
