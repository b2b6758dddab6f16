/**
 * mlp → ONNX: per dense layer a Gemm (kernel is row-major inDim × outDim, exactly Gemm's B with
 * transB = 0) followed by Relu for hidden layers; the softmax or linear head is the shared one. A
 * multi-output regression's last Dense has one unit per output: `value` [N, nOutputs].
 */
import type { Task } from '../../core/index.js';
import type { MlpWeights } from '../mlp/index.js';
import { appendHead, INPUT } from './heads.js';
import { attr, DataType, doubleTensor, floatTensor, node, type GraphParts } from './proto.js';

/**
 * Graph parts of an MLP reading `input` [N, layers[0].inDim]; with `double`, the input is cast to
 * FP64 and every layer and the output are FP64 (what a composite graph computes in).
 */
export function mlpGraph(task: Task, w: MlpWeights, double = false): GraphParts {
  const parts: GraphParts = { nodes: [], initializers: [] };
  const tensor = double ? doubleTensor : floatTensor;
  let cur = INPUT;
  if (double) {
    cur = 'input_f64';
    parts.nodes.push(node('Cast', [INPUT], [cur], [attr.int('to', DataType.DOUBLE)]));
  }
  w.layers.forEach((l, i) => {
    const last = i === w.layers.length - 1;
    parts.initializers.push(tensor(`dense${i}_kernel`, [l.inDim, l.outDim], l.kernel));
    parts.initializers.push(tensor(`dense${i}_bias`, [l.outDim], l.bias));
    const z = `dense${i}`;
    parts.nodes.push(node('Gemm', [cur, `dense${i}_kernel`, `dense${i}_bias`], [z]));
    if (!last) {
      // Only hidden layers carry relu (validateWeights enforces it); the head is added below.
      parts.nodes.push(node('Relu', [z], [`${z}_relu`]));
      cur = `${z}_relu`;
    } else cur = z;
  });
  // The MLP has one output per class for binary too (softmax head), unlike linear and gbdt.
  appendHead(parts, task, task === 'regression' ? 'identity' : 'softmax', cur, double);
  return parts;
}
