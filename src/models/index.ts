import { Errors, type Task } from '../core/index.js';
import { gbdt } from './gbdt/index.js';
import { linear, logistic } from './linear/index.js';
import { mlp } from './mlp/index.js';
import { cnn, cnnLstm, gru, lstm } from './seqnet/index.js';
import { windowGbdt } from './window/index.js';
import type { Family, ModelFamily, SequenceFamily, TableFamily } from './types.js';

export type { Family, ModelFamily, ModelState, Params, SequenceFamily, SequenceShape, TableFamily, TrainContext, TrainData, TrainedModel } from './types.js';
export type { LinearWeights } from './linear/index.js';
export { parseParams, SMALL_TABLE_ROWS, type ParamSpec, type SearchDim, type SearchSpace } from './params.js';

/** Every family that learns from table rows, by name. */
export const FAMILIES: Readonly<Record<TableFamily, ModelFamily>> = Object.freeze({ logistic, linear, gbdt, mlp });

/** Every family that learns from windows of sensor streams, by name. */
export const SEQUENCE_FAMILIES: Readonly<Partial<Record<SequenceFamily, ModelFamily>>> = Object.freeze({
  'window-gbdt': windowGbdt,
  lstm,
  gru,
  cnn,
  'cnn-lstm': cnnLstm,
});

const ALL: Readonly<Partial<Record<Family, ModelFamily>>> = { ...FAMILIES, ...SEQUENCE_FAMILIES };

/** The family called `name`, or a usage error listing the ones there are. */
export function getFamily(name: string): ModelFamily {
  const f = Object.hasOwn(ALL, name) ? ALL[name as Family] : undefined;
  if (!f) throw Errors.usage(`unknown model family "${name}" (known: ${Object.keys(ALL).join(', ')})`);
  return f;
}

/** The families that can learn `task`; `linear`/`logistic` is the one linear model per task. */
export function familiesFor(task: Task): ModelFamily[] {
  return Object.values(FAMILIES).filter((f) => f.tasks.includes(task));
}
export { toOnnx, onnxSignature, decodeOnnx, type OnnxSignature } from './onnx/index.js';
export { onnxParts, prefixOnnxParts, encodeOnnxGraph, ONNX_INPUT, ONNX_PROBABILITIES, ONNX_VALUE, type OnnxParts, type OnnxPartsOptions, type OnnxShape, type OnnxGraphInfo } from './onnx/index.js';
export { parseUntrustedOnnx, encodeOnnxModel, onnxName, type OnnxLimits, type OnnxModel } from './onnx/index.js';
export { featuresFor as windowFeaturesFor } from './window/index.js';
export {
  explain,
  explainAsync,
  explainCost,
  defaultPermutations,
  DEFAULT_EVALUATIONS,
  MIN_DEFAULT_PERMUTATIONS,
  MAX_PERMUTATIONS,
  type Explanation,
  type ExplanationMethod,
  type ExplanationSpace,
  type ExplainOptions,
} from './explain.js';
export type { GbdtWeights } from './gbdt/index.js';
export { trainThreads } from './gbdt/index.js';
