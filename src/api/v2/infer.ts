/**
 * `$inference_request` → features, and model outputs → `$inference_response`, in JSON or with
 * the binary tensor data extension. Validation is hand-written rather than a JSON Schema: the
 * messages must name the tensor and the rule (for `{"error"}`), and a schema validator would walk
 * large `data` arrays a second time.
 */
import type { OutputTensor, TensorMetadata, V2Model } from './types.js';
import { float32FromBytes, float32Json, float32ToBytes, joinBinaryBody, splitBinaryBody } from './codec.js';
import { Errors } from '../../core/index.js';
import { badRequest } from './error.js';

/** One output to return, and whether it travels as binary. */
export interface WantedOutput {
  name: string;
  binary: boolean;
}

/** A validated inference request. */
export interface ParsedInferRequest {
  id: string | undefined;
  /** Row-major features; may be a view on the request body. */
  features: Float32Array;
  rows: number;
  /** The outputs to return, in order. */
  outputs: WantedOutput[];
}

/** An encoded response body. `headerLength` is set when it carries binary tensors. */
export interface EncodedResponse {
  body: string | Buffer;
  headerLength?: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const q = (s: string): string => JSON.stringify(s);

/**
 * Parses and validates an inference request body for `model`.
 * @param body the raw body (any content type), or undefined when there is none
 * @param headerLength the raw `Inference-Header-Content-Length` header, when present
 * @throws MedfitError (400) naming what is wrong
 */
export function parseInferRequest(
  body: Buffer | undefined,
  headerLength: string | string[] | undefined,
  model: V2Model,
): ParsedInferRequest {
  if (body === undefined || body.length === 0) throw badRequest('the request body is empty; expected an $inference_request');
  let text: string;
  let binary: Buffer | undefined;
  if (headerLength !== undefined) {
    const split = splitBinaryBody(body, headerLength);
    text = split.json;
    binary = split.binary;
  } else {
    text = body.toString('utf8');
  }
  let req: unknown;
  try {
    req = JSON.parse(text);
  } catch (e) {
    // V8's message quotes the body, which may hold health data; keep only the position.
    const at = /position (\d+)/.exec(String((e as Error).message));
    throw badRequest(`the request body is not valid JSON${at ? ` (at character ${at[1]})` : ''}`);
  }
  if (!isObject(req)) throw badRequest('the request body must be a JSON object ($inference_request)');

  let id: string | undefined;
  if (req.id !== undefined) {
    if (typeof req.id !== 'string') throw badRequest('"id" must be a string');
    id = req.id;
  }
  let binaryDefault = false;
  if (req.parameters !== undefined) {
    if (!isObject(req.parameters)) throw badRequest('"parameters" must be an object');
    binaryDefault = flag(req.parameters, 'binary_data_output', 'parameters') ?? false;
  }

  const inputs = req.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) throw badRequest('"inputs" must be a non-empty array');
  const meta = model.inputs[0];
  if (meta === undefined || model.inputs.length !== 1) {
    throw Errors.internal(`model ${q(model.name)} does not declare exactly one input`);
  }

  let features: Float32Array | undefined;
  let rows = 0;
  let offset = 0; // into `binary`, consumed in the order the inputs are listed
  for (let i = 0; i < inputs.length; i++) {
    const inp: unknown = inputs[i];
    if (!isObject(inp)) throw badRequest(`inputs[${i}] must be an object`);
    const name = inp.name;
    if (typeof name !== 'string') throw badRequest(`inputs[${i}].name must be a string`);
    if (name !== meta.name) {
      throw badRequest(`unknown input ${q(name)}; model ${q(model.name)} takes ${q(meta.name)}`);
    }
    if (features !== undefined) throw badRequest(`input ${q(name)} is given twice`);
    if (inp.datatype !== meta.datatype) {
      throw badRequest(
        typeof inp.datatype === 'string'
          ? `input ${q(name)} has datatype ${inp.datatype}; the model expects ${meta.datatype}`
          : `input ${q(name)}: "datatype" must be a string (${meta.datatype})`,
      );
    }
    const shape = checkShape(inp.shape, meta, name);
    rows = shape[0]!;
    let count = 1;
    for (const d of shape) count *= d;

    let size: number | undefined;
    if (inp.parameters !== undefined) {
      if (!isObject(inp.parameters)) throw badRequest(`input ${q(name)}: "parameters" must be an object`);
      const s = inp.parameters.binary_data_size;
      if (s !== undefined) {
        if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
          throw badRequest(`input ${q(name)}: parameters.binary_data_size must be a non-negative integer`);
        }
        size = s;
      }
    }
    if (size !== undefined) {
      if (inp.data !== undefined) throw badRequest(`input ${q(name)} has both "data" and parameters.binary_data_size`);
      if (binary === undefined) {
        throw badRequest(`input ${q(name)} has parameters.binary_data_size but the request has no Inference-Header-Content-Length header`);
      }
      const want = count * 4;
      if (size !== want) {
        throw badRequest(`input ${q(name)}: binary_data_size is ${size} bytes but shape [${shape.join(',')}] of FP32 needs ${want}`);
      }
      const left = binary.length - offset;
      if (left < size) {
        throw badRequest(`the body is short: input ${q(name)} declares ${size} bytes of binary data but only ${left} follow`);
      }
      features = float32FromBytes(binary.subarray(offset, offset + size));
      offset += size;
      for (let k = 0; k < features.length; k++) {
        const v = features[k]!;
        if (v - v !== 0) throw badRequest(`input ${q(name)}: element ${k} is not a finite number (NaN or Infinity)`);
      }
    } else {
      if (inp.data === undefined) throw badRequest(`input ${q(name)} has neither "data" nor parameters.binary_data_size`);
      features = flatten(inp.data, shape, count, name);
    }
  }
  if (features === undefined) throw badRequest(`model input ${q(meta.name)} is missing`);
  if (binary !== undefined && offset !== binary.length) {
    throw badRequest(`the body has ${binary.length - offset} bytes after the binary tensors its header declares`);
  }

  return { id, features, rows, outputs: wantedOutputs(req.outputs, model, binaryDefault) };
}

function flag(params: Json, key: string, where: string): boolean | undefined {
  const v = params[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`${where}.${key} must be a boolean`);
  return v;
}

function checkShape(shape: unknown, meta: TensorMetadata, name: string): number[] {
  const want = `[${meta.shape.join(',')}]`;
  if (!Array.isArray(shape) || shape.length !== meta.shape.length) {
    throw badRequest(`input ${q(name)}: "shape" must be an array of ${meta.shape.length} dimensions matching ${want}`);
  }
  for (let d = 0; d < shape.length; d++) {
    const v: unknown = shape[d];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw badRequest(`input ${q(name)}: shape dimensions must be non-negative integers`);
    }
    const m = meta.shape[d]!;
    if (m !== -1 && v !== m) {
      throw badRequest(`input ${q(name)} has shape [${shape.join(',')}]; the model expects ${want}`);
    }
  }
  // An empty batch cannot be run by the engines behind us; say so rather than fail inside them.
  if (shape.includes(0)) throw badRequest(`input ${q(name)}: shape [${shape.join(',')}] has no elements`);
  return shape as number[];
}

/** Flat (row-major) or fully nested data → FP32, checked element by element. */
function flatten(data: unknown, shape: number[], count: number, name: string): Float32Array {
  if (!Array.isArray(data)) throw badRequest(`input ${q(name)}: "data" must be an array`);
  // Allocation happens only once the top level agrees with the shape, so a lying shape cannot
  // make us allocate more than the data could fill.
  if (data.length > 0 && Array.isArray(data[0])) {
    if (data.length !== shape[0]) {
      throw badRequest(`input ${q(name)}: nested "data" has ${data.length} rows but shape [${shape.join(',')}] says ${shape[0]}`);
    }
    // Every nested array's length is checked before anything is allocated: rows that are all
    // present but empty must not make us allocate rows × features.
    checkNested(data, shape, 0, name);
    const out = new Float32Array(count);
    const end = fillNested(data, shape, 0, out, 0, name);
    if (end !== count) throw badRequest(`input ${q(name)}: "data" does not match shape [${shape.join(',')}]`);
    return out;
  }
  if (data.length !== count) {
    throw badRequest(`input ${q(name)}: "data" has ${data.length} elements but shape [${shape.join(',')}] needs ${count}`);
  }
  const out = new Float32Array(count);
  for (let k = 0; k < count; k++) out[k] = element(data[k], k, name);
  return out;
}

function checkNested(a: unknown[], shape: number[], dim: number, name: string): void {
  if (dim === shape.length - 1) return;
  for (let k = 0; k < a.length; k++) {
    const v: unknown = a[k];
    if (!Array.isArray(v) || v.length !== shape[dim + 1]) {
      throw badRequest(`input ${q(name)}: nested "data" does not match shape [${shape.join(',')}] at dimension ${dim + 1}`);
    }
    checkNested(v, shape, dim + 1, name);
  }
}

function fillNested(a: unknown[], shape: number[], dim: number, out: Float32Array, at: number, name: string): number {
  const last = dim === shape.length - 1;
  for (let k = 0; k < a.length; k++) {
    const v: unknown = a[k];
    if (last) {
      out[at] = element(v, at, name);
      at++;
    } else {
      if (!Array.isArray(v) || v.length !== shape[dim + 1]) {
        throw badRequest(`input ${q(name)}: nested "data" does not match shape [${shape.join(',')}] at dimension ${dim + 1}`);
      }
      at = fillNested(v, shape, dim + 1, out, at, name);
    }
  }
  return at;
}

function element(v: unknown, k: number, name: string): number {
  if (typeof v !== 'number') throw badRequest(`input ${q(name)}: element ${k} is not a number`);
  // JSON.parse turns 1e400 into Infinity, and float32 overflows past 3.4e38.
  const f = Math.fround(v);
  if (f - f !== 0) throw badRequest(`input ${q(name)}: element ${k} is not a finite FP32 number`);
  return f;
}

function wantedOutputs(outputs: unknown, model: V2Model, binaryDefault: boolean): WantedOutput[] {
  if (outputs === undefined) return model.outputs.map((o) => ({ name: o.name, binary: binaryDefault }));
  if (!Array.isArray(outputs)) throw badRequest('"outputs" must be an array');
  const wanted: WantedOutput[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const o: unknown = outputs[i];
    if (!isObject(o) || typeof o.name !== 'string') throw badRequest(`outputs[${i}] must be an object with a string "name"`);
    const name = o.name;
    if (!model.outputs.some((m) => m.name === name)) {
      throw badRequest(`unknown output ${q(name)}; model ${q(model.name)} has ${model.outputs.map((m) => q(m.name)).join(', ')}`);
    }
    if (wanted.some((w) => w.name === name)) throw badRequest(`output ${q(name)} is requested twice`);
    let binary = binaryDefault;
    if (o.parameters !== undefined) {
      if (!isObject(o.parameters)) throw badRequest(`outputs[${i}].parameters must be an object`);
      binary = flag(o.parameters, 'binary_data', `outputs[${i}].parameters`) ?? binaryDefault;
    }
    wanted.push({ name, binary });
  }
  return wanted;
}

/**
 * Encodes `$inference_response`: JSON text when no output is binary, else the JSON header and
 * the binary outputs' little-endian bytes after it.
 * @throws MedfitError (500) when the model did not produce a requested output or its data does not fill its shape
 */
export function encodeInferResponse(
  model: V2Model,
  id: string | undefined,
  produced: OutputTensor[],
  wanted: WantedOutput[],
): EncodedResponse {
  // Built by hand: outputs are typed arrays, which JSON.stringify would write as objects.
  let s = '{"model_name":' + q(model.name) + ',"model_version":' + q(model.version);
  if (id !== undefined) s += ',"id":' + q(id);
  s += ',"outputs":[';
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < wanted.length; i++) {
    const w = wanted[i]!;
    const t = produced.find((p) => p.name === w.name);
    if (t === undefined) throw Errors.internal(`model ${q(model.name)} did not produce output ${q(w.name)}`);
    let count = 1;
    for (const d of t.shape) count *= d;
    if (count !== t.data.length) {
      throw Errors.internal(`model ${q(model.name)} output ${q(t.name)} has ${t.data.length} elements for shape [${t.shape.join(',')}]`);
    }
    if (i > 0) s += ',';
    s += '{"name":' + q(t.name) + ',"datatype":"' + t.datatype + '","shape":[' + t.shape.join(',') + ']';
    if (w.binary) {
      const bytes = float32ToBytes(t.data);
      chunks.push(bytes);
      s += ',"parameters":{"binary_data_size":' + bytes.byteLength + '}}';
    } else {
      s += ',"data":' + float32Json(t.data) + '}';
    }
  }
  s += ']}';
  if (chunks.length === 0) return { body: s };
  return joinBinaryBody(s, chunks);
}
