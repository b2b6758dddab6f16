/**
 * ONNX export of every model family, so serving has one path (ONNX Runtime) whatever trained the
 * model. The graph reads `input` (FP32 [N, nFeatures], N symbolic) and writes `probabilities`
 * (FP32 [N, nClasses], binary as [1 - p, p]) or `value` (FP32 [N, 1]), the same numbers as the
 * model's own `predict` up to float32 rounding.
 */
import { Errors, type Task } from '../../core/index.js';
import type { GbdtWeights } from '../gbdt/index.js';
import type { LinearWeights } from '../linear/index.js';
import type { MlpWeights } from '../mlp/index.js';
import type { TrainedModel } from '../types.js';
import { gbdtGraph } from './gbdt.js';
import { INPUT, outputName } from './heads.js';
import { linearGraph } from './linear.js';
import { mlpGraph } from './mlp.js';
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
 * The tensors `toOnnx` gives a model with this task and size (-1 marks the batch dimension):
 * what a serving runtime is told the model takes and returns.
 */
export function onnxSignature(task: Task, nFeatures: number, nClasses: number): OnnxSignature {
  return {
    inputs: [{ name: INPUT, datatype: 'FP32', shape: [-1, nFeatures] }],
    outputs: [{ name: outputName(task), datatype: 'FP32', shape: [-1, task === 'regression' ? 1 : nClasses] }],
  };
}

/**
 * Serializes a trained model of any family to ONNX model bytes (IR 8, opset 17, `ai.onnx.ml` 3
 * for trees). Deterministic: the same model gives the same bytes, so its SHA-256 can be recorded.
 */
export function toOnnx(model: TrainedModel): Uint8Array {
  const state = model.toState();
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
    default:
      throw Errors.internal(`no ONNX export for model family ${model.family}`);
  }
  const outCols = model.task === 'regression' ? 1 : model.nClasses;
  return encodeModel({
    name: `medfit_${model.family}`,
    parts,
    inputs: [valueInfo(INPUT, DataType.FLOAT, ['N', model.nFeatures])],
    outputs: [valueInfo(outputName(model.task), DataType.FLOAT, ['N', outCols])],
    producerVersion: PRODUCER_VERSION,
    docString: `medfit ${model.family} model (${model.task})`,
    metadata: { family: model.family, task: model.task },
  });
}
