import { Errors, type Task } from '../core/index.js';
import { gbdt } from './gbdt/index.js';
import { linear, logistic } from './linear/index.js';
import { mlp } from './mlp/index.js';
import type { Family, ModelFamily } from './types.js';

export type { Family, ModelFamily, ModelState, Params, TrainContext, TrainData, TrainedModel } from './types.js';
export type { LinearWeights } from './linear/index.js';
export { parseParams, type ParamSpec } from './params.js';

/** Every family medfit can train, by name. */
export const FAMILIES: Readonly<Record<Family, ModelFamily>> = Object.freeze({ logistic, linear, gbdt, mlp });

/** The family called `name`, or a usage error listing the ones there are. */
export function getFamily(name: string): ModelFamily {
  const f = Object.hasOwn(FAMILIES, name) ? FAMILIES[name as Family] : undefined;
  if (!f) throw Errors.usage(`unknown model family "${name}" (known: ${Object.keys(FAMILIES).join(', ')})`);
  return f;
}

/** The families that can learn `task`; `linear`/`logistic` is the one linear model per task. */
export function familiesFor(task: Task): ModelFamily[] {
  return Object.values(FAMILIES).filter((f) => f.tasks.includes(task));
}
export { toOnnx, onnxSignature, decodeOnnx, type OnnxSignature } from './onnx/index.js';
export { parseUntrustedOnnx, encodeOnnxModel, onnxName, type OnnxLimits, type OnnxModel } from './onnx/index.js';
