/**
 * The binary tensor data extension (Triton's, used by default by Triton and KServe clients):
 * a body is a JSON header of `Inference-Header-Content-Length` bytes followed by raw
 * little-endian tensors in the order the JSON lists them. Also the JSON text of FP32 data.
 */
import { endianness } from 'node:os';
import { badRequest } from './error.js';

/** The header naming the byte length of the JSON part of a binary body (lower case, as Node reads it). */
export const HEADER_LENGTH = 'inference-header-content-length';

/** Bytes per element of each fixed-size Open Inference Protocol datatype. */
export const DATATYPE_SIZE: Readonly<Record<string, number>> = {
  BOOL: 1, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8,
  FP16: 2, FP32: 4, FP64: 8,
};

// Float32Array views use the host's byte order; the wire is little-endian. Every platform Node
// ships for is little-endian, but a big-endian host must not silently read garbage.
const HOST_LE = endianness() === 'LE';

/** A split binary body: the JSON text and the bytes after it. */
export interface BinaryBody {
  json: string;
  binary: Buffer;
}

/**
 * Splits `body` at the `Inference-Header-Content-Length` value (the raw header value).
 * @throws MedfitError (400) when the value is not a byte count or points beyond the body.
 */
export function splitBinaryBody(body: Buffer, headerLength: string | string[] | number): BinaryBody {
  const n = typeof headerLength === 'number' ? headerLength : parseLength(headerLength);
  if (n > body.length) {
    throw badRequest(`Inference-Header-Content-Length is ${n} but the body has only ${body.length} bytes`);
  }
  return { json: body.toString('utf8', 0, n), binary: body.subarray(n) };
}

function parseLength(v: string | string[]): number {
  const s = Array.isArray(v) ? (v.length === 1 ? v[0]! : '') : v.trim();
  if (!/^\d{1,15}$/.test(s)) {
    throw badRequest('Inference-Header-Content-Length must be one non-negative integer byte count');
  }
  return Number(s);
}

/**
 * Joins a JSON header and tensor bytes into one body.
 * @returns the body and the value for `Inference-Header-Content-Length`.
 */
export function joinBinaryBody(json: string, tensors: readonly Uint8Array[]): { body: Buffer; headerLength: number } {
  const head = Buffer.from(json, 'utf8');
  let total = head.length;
  for (const t of tensors) total += t.byteLength;
  const body = Buffer.allocUnsafe(total);
  head.copy(body, 0);
  let at = head.length;
  for (const t of tensors) {
    body.set(t, at);
    at += t.byteLength;
  }
  return { body, headerLength: head.length };
}

/**
 * FP32 elements from little-endian bytes: a view when the bytes are 4-byte aligned (no copy),
 * else a copy (a view at an odd offset throws). The view shares memory with `bytes`.
 * @throws MedfitError (400) when the byte count is not a multiple of 4.
 */
export function float32FromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw badRequest(`FP32 data of ${bytes.byteLength} bytes is not a multiple of 4`);
  const n = bytes.byteLength / 4;
  if (!HOST_LE) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer, 0, n);
}

/** Little-endian bytes of FP32 elements (a view on little-endian hosts, no copy). */
export function float32ToBytes(data: Float32Array): Uint8Array {
  if (HOST_LE) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i]!, true);
  return out;
}

/**
 * The shortest decimal that reads back as the same float32 (`0.1`, not `0.10000000149011612`):
 * clients parse JSON data into float32 anyway, and people read probabilities. Non-finite values,
 * which JSON cannot carry, become `null` as `JSON.stringify` would write them.
 */
export function formatFloat32(v: number): string {
  if (v !== v || v === Infinity || v === -Infinity) return 'null';
  const s = String(v);
  // Up to 9 characters ("0.1234567", "-12345.5") is already as short as float32 needs.
  if (s.length <= 9) return s;
  for (let p = 6; p < 9; p++) {
    const t = +v.toPrecision(p);
    if (Math.fround(t) === v) return String(t);
  }
  return String(+v.toPrecision(9));
}

/** The JSON array text of FP32 data, flat (row-major). */
export function float32Json(data: Float32Array): string {
  const n = data.length;
  if (n === 0) return '[]';
  let s = '[' + formatFloat32(data[0]!);
  for (let i = 1; i < n; i++) s += ',' + formatFloat32(data[i]!);
  return s + ']';
}
