/**
 * logistic / linear → ONNX: one Gemm with `coef` as B transposed (it is stored outputs × features),
 * then the shared head (sigmoid pair, softmax or identity). A multi-output ridge has one coefficient
 * row per output, so the same Gemm writes `value` [N, nOutputs].
 */
import type { Task } from '../../core/index.js';
import type { LinearWeights } from '../linear/index.js';
import { appendHead, headFor, INPUT } from './heads.js';
import { attr, DataType, doubleTensor, floatTensor, node, type GraphParts } from './proto.js';

/**
 * Graph parts of a linear model reading `input` [N, nFeatures]; with `double`, the input is cast
 * to FP64 and the coefficients, scores and output are FP64 (what a composite graph computes in).
 */
export function linearGraph(task: Task, nFeatures: number, w: LinearWeights, double = false): GraphParts {
  const parts: GraphParts = { nodes: [], initializers: [] };
  const tensor = double ? doubleTensor : floatTensor;
  parts.initializers.push(tensor('coef', [w.outputs, nFeatures], w.coef));
  parts.initializers.push(tensor('intercept', [w.outputs], w.intercept));
  let input = INPUT;
  if (double) {
    input = 'input_f64';
    parts.nodes.push(node('Cast', [INPUT], [input], [attr.int('to', DataType.DOUBLE)]));
  }
  parts.nodes.push(node('Gemm', [input, 'coef', 'intercept'], ['scores'], [attr.int('transB', 1)]));
  appendHead(parts, task, headFor(task), 'scores', double);
  return parts;
}
