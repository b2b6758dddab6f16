/**
 * logistic / linear → ONNX: one Gemm with `coef` as B transposed (it is stored outputs × features),
 * then the shared head (sigmoid pair, softmax or identity). A multi-output ridge has one coefficient
 * row per output, so the same Gemm writes `value` [N, nOutputs].
 */
import type { Task } from '../../core/index.js';
import type { LinearWeights } from '../linear/index.js';
import { appendHead, headFor, INPUT } from './heads.js';
import { attr, floatTensor, node, type GraphParts } from './proto.js';

/** Graph parts of a linear model reading `input` [N, nFeatures]. */
export function linearGraph(task: Task, nFeatures: number, w: LinearWeights): GraphParts {
  const parts: GraphParts = { nodes: [], initializers: [] };
  parts.initializers.push(floatTensor('coef', [w.outputs, nFeatures], w.coef));
  parts.initializers.push(floatTensor('intercept', [w.outputs], w.intercept));
  parts.nodes.push(node('Gemm', [INPUT, 'coef', 'intercept'], ['scores'], [attr.int('transB', 1)]));
  appendHead(parts, task, headFor(task), 'scores');
  return parts;
}
