/**
 * Sequence networks (LSTM, GRU, 1D-CNN, CNN+LSTM) → ONNX. The graph reads `input` FP32
 * [N, steps, channels] (a batch of windows, the same numbers as a row of `x` flattened step-major)
 * and ends in the shared head: `probabilities` [N, classes] after a softmax dense layer, or `value`
 * [N, outputs] after a linear one.
 *
 * Each layer wants its tensor in one layout: Conv and MaxPool read channels-first [N, C, T]; ONNX
 * Runtime's LSTM and GRU read time-major [T, N, C] (its CPU kernels refuse the batch-first
 * `layout = 1`, see seqnet.test.ts); ReduceMean and the dense layers do not care. The exporter tracks
 * the current layout and inserts a Transpose only where the next layer needs another one, so two
 * recurrent layers in a row share one layout and a CNN+LSTM transposes once between them.
 *
 * Weights are in Keras's layout (`../seqnet/weights.ts`) and are rearranged here once, at export:
 * conv kernels [k][in][filters] → [filters][in][k]; LSTM gates i,f,c,o → ONNX's i,o,f,c with the
 * kernels transposed to [gates·units][in]; GRU gates z,r,h are ONNX's order already, its two biases
 * are ONNX's Wb and Rb, and Keras's `reset_after` is ONNX's `linear_before_reset = 1`.
 */
import { Errors, type Task } from '../../core/index.js';
import { validateSeqNetWeights } from '../seqnet/forward.js';
import type { SeqLayer, SeqNetWeights } from '../seqnet/weights.js';
import { appendHead, INPUT } from './heads.js';
import { attr, DataType, floatTensor, node, type GraphParts, type TensorProto } from './proto.js';

/**
 * Where the batch (N), time (T) and channel (C) axes sit in the current tensor. `NC` is a tensor
 * without a time axis: after a recurrent layer that returns its last step, or after global pooling.
 */
type Layout = 'NTC' | 'TNC' | 'NCT' | 'NC';

/** Transpose permutations between the three 3-D layouts (`PERM[from][to]`). */
const PERM: Record<Exclude<Layout, 'NC'>, Record<Exclude<Layout, 'NC'>, number[]>> = {
  NTC: { NTC: [0, 1, 2], TNC: [1, 0, 2], NCT: [0, 2, 1] },
  TNC: { NTC: [1, 0, 2], TNC: [0, 1, 2], NCT: [1, 2, 0] },
  NCT: { NTC: [0, 2, 1], TNC: [2, 0, 1], NCT: [0, 1, 2] },
};

/** ONNX LSTM gate order i, o, f, c as indices of Keras's i, f, c, o blocks. */
const LSTM_GATES = [0, 3, 1, 2] as const;

/** An int64 tensor (Squeeze's axes); values are small integers. */
function int64Tensor(name: string, dims: number[], values: number[]): TensorProto {
  const a = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims, dataType: DataType.INT64, rawData: new Uint8Array(a.buffer.slice(0)) };
}

/** A network that does not fit the task: an exporter or trainer bug, said plainly, never in ORT's words. */
function bad(message: string): never {
  throw Errors.internal(`cannot export the sequence network to ONNX: ${message}`);
}

/**
 * `kernel` [rows][gates·units] (Keras, row-major) → ONNX [gates·units][rows] with the gate blocks
 * taken in `order` (indices of Keras's blocks).
 */
function gateMatrix(kernel: readonly number[], rows: number, units: number, order: readonly number[]): Float32Array {
  const cols = order.length * units;
  const out = new Float32Array(cols * rows);
  order.forEach((kg, og) => {
    for (let j = 0; j < units; j++) {
      const src = kg * units + j;
      const dst = (og * units + j) * rows;
      for (let r = 0; r < rows; r++) out[dst + r] = kernel[r * cols + src]!;
    }
  });
  return out;
}

/** `bias` [gates·units] with the gate blocks taken in `order`. */
function gateVector(bias: readonly number[], units: number, order: readonly number[]): number[] {
  const out: number[] = [];
  for (const kg of order) for (let j = 0; j < units; j++) out.push(bias[kg * units + j]!);
  return out;
}

/**
 * Graph parts of a sequence network reading `input` [N, w.steps, w.channels]. The weights are
 * checked first (`validateSeqNetWeights`: sizes, finite values, a layer chain that fits), so a state
 * that does not hold together is refused here in medfit's words, not later by ONNX Runtime.
 */
export function seqnetGraph(task: Task, w: SeqNetWeights): GraphParts {
  return new Builder(validateSeqNetWeights(w)).build(task);
}

class Builder {
  private readonly parts: GraphParts = { nodes: [], initializers: [] };
  private cur = INPUT;
  private layout: Layout = 'NTC';
  private transposes = 0;

  constructor(private readonly w: SeqNetWeights) {}

  build(task: Task): GraphParts {
    const layers = this.w.layers;
    // Validated: the last layer is dense, on one vector per window.
    const last = layers[layers.length - 1] as Extract<SeqLayer, { type: 'dense' }>;
    layers.forEach((l, i) => this.layer(l, `l${i}`, i === layers.length - 1));
    const want = task === 'regression' ? 'linear' : 'softmax';
    if (last.activation !== want) bad(`a ${task} network must end in a ${want} dense layer, not ${last.activation}`);
    // The last dense layer is emitted without its activation: the shared head applies it and
    // names the output.
    appendHead(this.parts, task, task === 'regression' ? 'identity' : 'softmax', this.cur);
    return this.parts;
  }

  private push(opType: string, inputs: string[], output: string, attributes: Parameters<typeof node>[3] = []): string {
    this.parts.nodes.push(node(opType, inputs, [output], attributes));
    return output;
  }

  /** Brings the current tensor to `want` (a 3-D layout; validation keeps sequence layers on sequences). */
  private to(want: Exclude<Layout, 'NC'>): void {
    if (this.layout === want || this.layout === 'NC') return;
    const name = `t${this.transposes++}_${want.toLowerCase()}`;
    this.cur = this.push('Transpose', [this.cur], name, [attr.ints('perm', PERM[this.layout][want])]);
    this.layout = want;
  }

  private layer(l: SeqLayer, id: string, isLast: boolean): void {
    switch (l.type) {
      case 'conv1d':
        return this.conv1d(l, id);
      case 'maxpool1d': {
        this.to('NCT');
        // Keras 'valid' pooling drops the steps that do not fill a last run: ONNX's floor mode.
        this.cur = this.push('MaxPool', [this.cur], `${id}_maxpool`, [attr.ints('kernel_shape', [l.pool]), attr.ints('strides', [l.pool])]);
        return;
      }
      case 'lstm':
      case 'gru':
        return this.recurrent(l, id);
      case 'globalavgpool1d': {
        const axis = this.layout.indexOf('T');
        this.cur = this.push('ReduceMean', [this.cur], `${id}_mean`, [attr.ints('axes', [axis]), attr.int('keepdims', 0)]);
        this.layout = 'NC';
        return;
      }
      case 'dense':
        return this.dense(l, id, isLast);
    }
  }

  private conv1d(l: Extract<SeqLayer, { type: 'conv1d' }>, id: string): void {
    const { kernelSize: k, inChannels: cin, filters: f } = l;
    // Keras [k][in][filters] → ONNX Conv W [filters][in][k].
    const wt = new Float32Array(f * cin * k);
    for (let t = 0; t < k; t++) for (let c = 0; c < cin; c++) for (let o = 0; o < f; o++) wt[(o * cin + c) * k + t] = l.kernel[(t * cin + c) * f + o]!;
    this.parts.initializers.push(floatTensor(`${id}_W`, [f, cin, k], wt), floatTensor(`${id}_B`, [f], l.bias));
    this.to('NCT');
    // Keras 'same' (stride 1): output step t reads t - floor((k-1)/2) … t + ceil((k-1)/2).
    const pads = [Math.floor((k - 1) / 2), Math.ceil((k - 1) / 2)];
    this.cur = this.push('Conv', [this.cur, `${id}_W`, `${id}_B`], `${id}_conv`, [attr.ints('kernel_shape', [k]), attr.ints('pads', pads), attr.ints('strides', [1]), attr.ints('dilations', [1])]);
    if (l.activation === 'relu') this.cur = this.push('Relu', [this.cur], `${id}_relu`);
  }

  private recurrent(l: Extract<SeqLayer, { type: 'lstm' | 'gru' }>, id: string): void {
    const { inputSize: n, units: u } = l;
    const g = l.type === 'lstm' ? 4 : 3;
    const order = l.type === 'lstm' ? LSTM_GATES : [0, 1, 2];
    const bias =
      l.type === 'lstm'
        ? // Keras has one bias; ONNX adds Wb and Rb, so the recurrent half is zeros.
          [...gateVector(l.bias, u, order), ...new Array<number>(g * u).fill(0)]
        : // Keras's reset_after GRU keeps the input bias and the recurrent bias apart, as ONNX does.
          [...gateVector(l.bias.slice(0, g * u), u, order), ...gateVector(l.bias.slice(g * u), u, order)];
    this.parts.initializers.push(
      floatTensor(`${id}_W`, [1, g * u, n], gateMatrix(l.kernel, n, u, order)),
      floatTensor(`${id}_R`, [1, g * u, u], gateMatrix(l.recurrentKernel, u, u, order)),
      floatTensor(`${id}_B`, [1, 2 * g * u], bias),
    );
    this.to('TNC');
    const op = l.type === 'lstm' ? 'LSTM' : 'GRU';
    const attributes = [attr.int('hidden_size', u)];
    if (l.type === 'gru') attributes.push(attr.int('linear_before_reset', 1));
    const y = `${id}_Y`;
    const yh = `${id}_Y_h`;
    // Y [T, 1, N, u] when every step goes on, else only Y_h [1, N, u]; the unused output is omitted.
    const outputs = l.returnSequences ? [y] : ['', yh];
    // Named by layer: the default name comes from the first output, which may be omitted.
    this.parts.nodes.push({ ...node(op, [this.cur, `${id}_W`, `${id}_R`, `${id}_B`], outputs, attributes), name: `${op}_${id}` });
    const axes = `${id}_axes`;
    this.parts.initializers.push(int64Tensor(axes, [1], [l.returnSequences ? 1 : 0]));
    if (l.returnSequences) {
      this.cur = this.push('Squeeze', [y, axes], `${id}_seq`);
      this.layout = 'TNC';
    } else {
      this.cur = this.push('Squeeze', [yh, axes], `${id}_last`);
      this.layout = 'NC';
    }
  }

  private dense(l: Extract<SeqLayer, { type: 'dense' }>, id: string, isLast: boolean): void {
    // Keras's kernel [in][units] row-major is MatMul's right operand as it is.
    this.parts.initializers.push(floatTensor(`${id}_W`, [l.inputSize, l.units], l.kernel), floatTensor(`${id}_B`, [l.units], l.bias));
    const mm = this.push('MatMul', [this.cur, `${id}_W`], `${id}_matmul`);
    this.cur = this.push('Add', [mm, `${id}_B`], `${id}_dense`);
    // Hidden layers are relu or linear (softmax only ends the network, in the head).
    if (!isLast && l.activation === 'relu') this.cur = this.push('Relu', [this.cur], `${id}_relu`);
  }
}
