/**
 * Users' own ONNX models: checking an upload against its declaration, storing it, and reading it
 * back verified.
 *
 * An uploaded model is untrusted. `prepareUpload` decodes and checks it (no external data, known
 * operator domains, bounded structure: `validateOnnxModel`), derives the signature medfit serves
 * from the graph and the declaration, and re-encodes the checked model: the re-encoded bytes are
 * what is stored and served, so fields our ONNX definitions do not know never reach ONNX Runtime.
 * ONNX Runtime itself first sees the model in an isolated process (serve's `checkUploadIsolated`).
 *
 * The directory of an upload holds `model.onnx` and `upload.json` (the declaration, the served
 * signature, the SHA-256 of `model.onnx`, and an integrity record: HMAC-SHA256 with
 * `MEDFIT_MANIFEST_KEY`, else SHA-256), written atomically; `loadUpload` checks all of it.
 */
import { existsSync, rmSync } from 'node:fs';
import { Errors, writeDirAtomic, type Task } from '../core/index.js';
import { encodeOnnxModel, onnxName, parseUntrustedOnnx, type OnnxLimits, type OnnxModel, type OnnxSignature } from '../models/index.js';
import { ONNX_FILE, readJsonObject, readVerifiedFile } from './artifact.js';
import { seal, sha256, verifySeal, type IntegrityAlgorithm, type IntegrityOptions } from './integrity.js';

/** The record of an uploaded model's directory. */
export const UPLOAD_FILE = 'upload.json';
/** Version of `upload.json`; `loadUpload` refuses any other (and records from before it existed). */
export const UPLOAD_FORMAT_VERSION = 1;

/** What a user declares with an upload; error pointers name these fields (and `/onnx`, the file). */
export interface UploadDeclaration {
  task: Task;
  /** Feature names in input-column order: records for /v1 predict are read by these names. */
  features: string[];
  /** Class labels in output-column order (classification only). */
  classes?: string[];
  /** The output holding probabilities or values; default: the graph's first output. */
  output?: string;
}

/** What is known of a stored upload: the declaration and the tensors it is served with. */
export interface UploadInfo {
  task: Task;
  features: string[];
  classes?: string[];
  inputs: OnnxSignature['inputs'];
  outputs: OnnxSignature['outputs'];
}

/** `upload.json`. */
export interface UploadRecord extends UploadInfo {
  formatVersion: number;
  /** SHA-256 of `model.onnx`. */
  files: Record<string, string>;
  integrityAlgorithm?: IntegrityAlgorithm;
  integrity: string;
}

/** A checked upload, ready to be proven in ONNX Runtime and stored: the re-encoded model and its signature. */
export interface PreparedUpload {
  info: UploadInfo;
  onnx: Uint8Array;
}

const TASKS: readonly string[] = ['binary', 'multiclass', 'regression'];
/** ONNX element types an output may have: ONNX Runtime's values are converted to float32 when served. */
const OUTPUT_TYPES: Readonly<Record<number, string>> = { 1: 'FP32', 11: 'FP64', 6: 'INT32', 7: 'INT64' };
const TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'FP32', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64', 8: 'STRING', 9: 'BOOL', 10: 'FP16', 11: 'FP64', 12: 'UINT32', 13: 'UINT64', 16: 'BF16',
};


/** Output columns the declaration implies: one per class, or one value. */
function width(d: UploadDeclaration): number {
  return d.task === 'regression' ? 1 : (d.classes?.length ?? 0);
}

/** Checks a declaration on its own (before any model byte is looked at). */
export function checkDeclaration(d: UploadDeclaration): void {
  if (!TASKS.includes(d.task)) throw Errors.badAt('/task', 'must be binary, multiclass or regression');
  if (!Array.isArray(d.features) || d.features.length === 0) throw Errors.badAt('/features', 'must list the feature names, in input-column order');
  const seen = new Set<string>();
  d.features.forEach((f, i) => {
    if (typeof f !== 'string' || f === '') throw Errors.badAt(`/features/${i}`, 'must be a non-empty string');
    if (seen.has(f)) throw Errors.badAt(`/features/${i}`, 'repeats an earlier feature name');
    seen.add(f);
  });
  if (d.task !== 'regression' && !d.classes) throw Errors.badAt('/classes', 'a classification model needs its class labels, in output order');
  if (d.task === 'regression' && d.classes) throw Errors.badAt('/classes', 'a regression model has no classes');
  if (d.classes) {
    if (!Array.isArray(d.classes) || d.classes.length < 2 || d.classes.some((c) => typeof c !== 'string')) throw Errors.badAt('/classes', 'expected at least 2 class labels');
    if (new Set(d.classes).size !== d.classes.length) throw Errors.badAt('/classes', 'class labels must be unique');
    if (d.task === 'binary' && d.classes.length !== 2) throw Errors.badAt('/classes', `a binary model has 2 classes, ${d.classes.length} were given`);
  }
  if (d.output !== undefined && (typeof d.output !== 'string' || d.output === '')) throw Errors.badAt('/output', 'must be the name of one of the model outputs');
}

type Dim = { value?: 'dimValue' | 'dimParam'; dimValue?: number | { toNumber(): number } | null };
const dimValue = (d: Dim | undefined): number | undefined => (d?.value === 'dimValue' && d.dimValue != null ? (typeof d.dimValue === 'number' ? d.dimValue : d.dimValue.toNumber()) : undefined);

/**
 * Decodes and checks an upload against its declaration without re-encoding it: the graph (see
 * `validateOnnxModel`), exactly one graph input, FP32 [-1, features], and the chosen output, a
 * numeric tensor of the declared width when the graph says its width. Throws MEDFIT_ERR_BAD_DATA
 * at `/onnx`, `/output` or a declaration field.
 */
export function checkUpload(bytes: Uint8Array, d: UploadDeclaration, opts: { limits?: OnnxLimits } = {}): { model: OnnxModel; info: UploadInfo } {
  checkDeclaration(d);
  const model = parseUntrustedOnnx(bytes, { pointer: '/onnx', ...(opts.limits ? { limits: opts.limits } : {}) });
  const g = model.graph!;
  const n = d.features.length;
  const w = width(d);
  const initialized = new Set<string>([...(g.initializer ?? []).map((t) => t.name ?? ''), ...(g.sparseInitializer ?? []).map((s) => s.values?.name ?? '')]);
  // Before IR 4 initializers were listed among the inputs too; they are not fed.
  const inputs = (g.input ?? []).filter((v) => !initialized.has(v.name ?? ''));
  if (inputs.length !== 1) throw Errors.badAt('/onnx', `the model has ${inputs.length} inputs; medfit feeds exactly one, FP32 [-1, ${n}]`);
  const input = inputs[0]!;
  if (!input.name) throw Errors.badAt('/onnx', 'the model input has no name');
  const it = input.type?.tensorType;
  if (!it) throw Errors.badAt('/onnx', `input ${onnxName(input.name)} is not a tensor; medfit feeds FP32 [-1, ${n}]`);
  if (it.elemType !== 1) throw Errors.badAt('/onnx', `input ${onnxName(input.name)} is ${TYPE_NAMES[it.elemType ?? 0] ?? 'of another type'}, not FP32 [-1, ${n}]`);
  if (it.shape) {
    const dims = (it.shape.dim ?? []) as Dim[];
    if (dims.length !== 2) throw Errors.badAt('/onnx', `input ${onnxName(input.name)} has ${dims.length} dimension(s), not FP32 [-1, ${n}]`);
    if (dimValue(dims[0]) !== undefined) throw Errors.badAt('/onnx', `input ${onnxName(input.name)} has a fixed batch size; its first dimension must be variable (FP32 [-1, ${n}]) so that requests can be batched`);
    const cols = dimValue(dims[1]);
    if (cols !== undefined && cols !== n) throw Errors.badAt('/onnx', `input ${onnxName(input.name)} takes ${cols} features, the declaration lists ${n}`);
  }
  const outputs = g.output ?? [];
  const outName = d.output ?? outputs[0]?.name ?? undefined;
  const out = outputs.find((o) => o.name === outName);
  if (!out || !outName) {
    const names = outputs.slice(0, 10).map((o) => onnxName(o.name)).join(', ');
    if (d.output !== undefined) throw Errors.badAt('/output', `the model has no output ${onnxName(d.output)} (it has ${names || 'none'})`);
    throw Errors.badAt('/onnx', 'the model has no outputs');
  }
  if (out.type) {
    const ot = out.type.tensorType;
    if (!ot) throw Errors.badAt('/onnx', `output ${onnxName(outName)} is not a tensor (a sequence or a map, such as scikit-learn's ZipMap): export the probabilities as a tensor`);
    if (ot.elemType && !OUTPUT_TYPES[ot.elemType]) throw Errors.badAt('/onnx', `output ${onnxName(outName)} is ${TYPE_NAMES[ot.elemType] ?? 'not numeric'}; medfit reads FP32, FP64, INT32 or INT64 outputs`);
    if (ot.shape) {
      const dims = (ot.shape.dim ?? []) as Dim[];
      if (dims.length < 1 || dims.length > 2 || (dims.length === 1 && w !== 1)) throw Errors.badAt('/onnx', `output ${onnxName(outName)} has ${dims.length} dimension(s); medfit reads [-1, ${w}]`);
      const cols = dims.length === 2 ? dimValue(dims[1]) : 1;
      if (cols !== undefined && cols !== w) throw Errors.badAt('/onnx', `output ${onnxName(outName)} has ${cols} column(s), the declaration implies ${w}`);
    }
  }
  const info: UploadInfo = {
    task: d.task,
    features: [...d.features],
    ...(d.classes ? { classes: [...d.classes] } : {}),
    inputs: [{ name: input.name, datatype: 'FP32', shape: [-1, n] }],
    outputs: [{ name: outName, datatype: 'FP32', shape: [-1, w] }],
  };
  return { model, info };
}

/** `checkUpload`, then the checked model re-encoded: the bytes to prove, store and serve. */
export function prepareUpload(bytes: Uint8Array, d: UploadDeclaration, opts: { limits?: OnnxLimits } = {}): PreparedUpload {
  const { model, info } = checkUpload(bytes, d, opts);
  return { info, onnx: encodeOnnxModel(model) };
}

/**
 * Stores a prepared upload (from `prepareUpload`, proven by `checkUploadIsolated`) as a new
 * directory `dir`, atomically, with `upload.json` sealed (signed with `opts.key` when given).
 */
export function saveUpload(dir: string, prepared: PreparedUpload, opts: IntegrityOptions = {}): UploadRecord {
  if (existsSync(dir)) throw Errors.internal('an upload directory with this name already exists');
  const record: UploadRecord = seal({ formatVersion: UPLOAD_FORMAT_VERSION, ...prepared.info, files: { [ONNX_FILE]: sha256(prepared.onnx) } }, opts);
  writeDirAtomic(dir, { [ONNX_FILE]: prepared.onnx, [UPLOAD_FILE]: JSON.stringify(record, null, 2) + '\n' });
  return record;
}

/** Removes a stored upload (its version could not be registered). */
export function discardUpload(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

const isStrings = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string' && s !== '');

/** Reads `upload.json`: its format version, integrity (signature with a key) and shape. */
function readRecord(dir: string, opts: IntegrityOptions): UploadRecord {
  const doc = readJsonObject(dir, UPLOAD_FILE, 'an uploaded model directory');
  if (doc['formatVersion'] === undefined) throw Errors.manifest(dir, `${UPLOAD_FILE} was written by an older medfit, without a checked model or an integrity record: upload the model again`);
  if (doc['formatVersion'] !== UPLOAD_FORMAT_VERSION) throw Errors.manifest(dir, `${UPLOAD_FILE} format version ${String(doc['formatVersion'])} is not supported (this medfit reads version ${UPLOAD_FORMAT_VERSION})`);
  verifySeal(doc, dir, UPLOAD_FILE, opts);
  const r = doc as unknown as UploadRecord;
  const malformed = (field: string) => Errors.manifest(dir, `${UPLOAD_FILE} is malformed (${field})`);
  if (!TASKS.includes(r.task)) throw malformed('task');
  if (!isStrings(r.features) || r.features.length === 0) throw malformed('features');
  if (r.classes !== undefined && (!isStrings(r.classes) || r.classes.length < 2)) throw malformed('classes');
  if ((r.task === 'regression') !== (r.classes === undefined)) throw malformed('classes');
  const w = r.task === 'regression' ? 1 : r.classes!.length;
  const tensor = (t: unknown, cols: number) => {
    const m = t as { name?: unknown; datatype?: unknown; shape?: unknown } | null;
    return !!m && typeof m.name === 'string' && m.name !== '' && m.datatype === 'FP32' && Array.isArray(m.shape) && m.shape.length === 2 && m.shape[0] === -1 && m.shape[1] === cols;
  };
  if (!Array.isArray(r.inputs) || r.inputs.length !== 1 || !tensor(r.inputs[0], r.features.length)) throw malformed('inputs');
  if (!Array.isArray(r.outputs) || r.outputs.length !== 1 || !tensor(r.outputs[0], w)) throw malformed('outputs');
  if (!r.files || typeof r.files !== 'object') throw malformed('files');
  return r;
}

function infoOf(r: UploadRecord): UploadInfo {
  return { task: r.task, features: r.features, ...(r.classes ? { classes: r.classes } : {}), inputs: r.inputs, outputs: r.outputs };
}

/** An uploaded model's verified description (its `model.onnx` is not read). */
export function readUploadInfo(dir: string, opts: IntegrityOptions = {}): UploadInfo {
  return infoOf(readRecord(dir, opts));
}

/**
 * Loads an uploaded model for serving: `upload.json` verified (format, integrity or signature,
 * shape) and the `model.onnx` bytes whose SHA-256 it records, as checked.
 */
export function loadUpload(dir: string, opts: IntegrityOptions = {}): { info: UploadInfo; onnx: Uint8Array } {
  const record = readRecord(dir, opts);
  const onnx = readVerifiedFile(dir, record.files, ONNX_FILE, UPLOAD_FILE);
  return { info: infoOf(record), onnx };
}
