/**
 * Small builders over the official ONNX message definitions (`onnx-proto`), so every family's
 * exporter writes the same, checked structure: tensors carry their payload as little-endian
 * `rawData`, int64 values go through protobufjs as plain numbers (all ours are far below 2^53).
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

// onnx-proto is CommonJS with `module.exports = { onnx }`; Node's ESM loader only offers it as the
// default export, so the namespace is read from there.
const { onnx } = onnxProto;

/** ONNX element types medfit writes. */
export const DataType = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;
/** An ONNX element type code. */
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/**
 * IR version and opsets: ONNX 1.12's IR 8 with the default domain at 17 and `ai.onnx.ml` at 3,
 * which onnxruntime-node 1.30 loads and which most other runtimes (and Netron) accept too.
 */
export const IR_VERSION = 8;
export const OPSET = 17;
export const ML_OPSET = 3;
/** Domain of the classical-ML operators (TreeEnsembleRegressor). */
export const ML_DOMAIN = 'ai.onnx.ml';

/** Node, initializer and attribute shapes accepted by the builders below. */
export type NodeProto = OnnxTypes.INodeProto;
export type TensorProto = OnnxTypes.ITensorProto;
export type AttributeProto = OnnxTypes.IAttributeProto;

/** Little-endian bytes of a typed array (the ONNX `raw_data` layout on every platform Node runs). */
function rawBytes(a: Float32Array | Float64Array | BigInt64Array): Uint8Array {
  // Copy so the tensor owns its bytes even if the caller's array is a view into a larger buffer.
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/** A float32 tensor; `values` are rounded to float32 here, once. */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  checkSize(name, dims, values.length);
  return { name, dims, dataType: DataType.FLOAT, rawData: rawBytes(Float32Array.from(values)) };
}

/** A float64 tensor, for values that must not be rounded to float32 (tree leaves, base scores). */
export function doubleTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  checkSize(name, dims, values.length);
  return { name, dims, dataType: DataType.DOUBLE, rawData: rawBytes(Float64Array.from(values)) };
}

function checkSize(name: string, dims: number[], n: number): void {
  const want = dims.reduce((a, b) => a * b, 1);
  // A mismatch here is an exporter bug, and ORT would only report it much later and vaguely.
  if (want !== n) throw new Error(`onnx tensor ${name}: ${n} values for dims [${dims.join(', ')}]`);
}

/** Attribute builders, one per ONNX attribute kind used by the exporters. */
export const attr = {
  int: (name: string, i: number): AttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i }),
  float: (name: string, f: number): AttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f }),
  string: (name: string, s: string): AttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.STRING,
    s: new TextEncoder().encode(s),
  }),
  ints: (name: string, ints: ArrayLike<number>): AttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.INTS,
    ints: Array.from(ints),
  }),
  floats: (name: string, floats: ArrayLike<number>): AttributeProto => ({
    name,
    type: onnx.AttributeProto.AttributeType.FLOATS,
    floats: Array.from(floats),
  }),
  strings: (name: string, strings: string[]): AttributeProto => {
    const enc = new TextEncoder();
    return { name, type: onnx.AttributeProto.AttributeType.STRINGS, strings: strings.map((s) => enc.encode(s)) };
  },
  tensor: (name: string, t: TensorProto): AttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.TENSOR, t }),
};

/** One graph node; `domain` is '' (the default ONNX domain) unless given. */
export function node(opType: string, inputs: string[], outputs: string[], attributes: AttributeProto[] = [], domain = ''): NodeProto {
  return { opType, input: inputs, output: outputs, attribute: attributes, domain, name: `${opType}_${outputs[0]}` };
}

/** A tensor value's type and shape; string dims are symbolic (the batch dimension `N`). */
export function valueInfo(name: string, elemType: DataTypeCode, dims: (number | string)[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

/** Everything a family's exporter contributes to a graph. */
export interface GraphParts {
  nodes: NodeProto[];
  initializers: TensorProto[];
  /** Whether any node uses the `ai.onnx.ml` domain (adds that opset import). */
  usesMl?: boolean;
}

/** A whole model: one graph with FP32 inputs and outputs, serialized to bytes. */
export function encodeModel(opts: {
  name: string;
  parts: GraphParts;
  inputs: OnnxTypes.IValueInfoProto[];
  outputs: OnnxTypes.IValueInfoProto[];
  producerVersion: string;
  docString?: string;
  metadata?: Record<string, string>;
}): Uint8Array {
  const opsetImport: OnnxTypes.IOperatorSetIdProto[] = [{ domain: '', version: OPSET }];
  if (opts.parts.usesMl) opsetImport.push({ domain: ML_DOMAIN, version: ML_OPSET });
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport,
    producerName: 'medfit',
    producerVersion: opts.producerVersion,
    docString: opts.docString ?? '',
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: opts.name,
      node: opts.parts.nodes,
      initializer: opts.parts.initializers,
      input: opts.inputs,
      output: opts.outputs,
    },
  };
  const err = onnx.ModelProto.verify(model);
  if (err) throw new Error(`onnx model does not verify: ${err}`);
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/** Decodes model bytes (tests and tools inspect what was written). */
export function decodeModel(bytes: Uint8Array): OnnxTypes.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
