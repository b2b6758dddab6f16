/**
 * A model in ONNX Runtime with a micro-batcher in front of its session.
 *
 * onnxruntime-node runs a session synchronously on the main thread (its `run` only defers the
 * native call by `setImmediate`), so a run cannot overlap anything else anyway; what batching buys
 * is paying ORT's fixed per-run cost once for many requests. The policy: a request to an idle model
 * is dispatched at once (after the current microtask turn, so calls made in the same tick share
 * the run); requests that arrive while a run is in flight wait for it and then go together, up to
 * `maxBatchRows` rows per run. No timer ever delays a request.
 */
import * as ort from 'onnxruntime-node';
import { Errors, MedfitError } from '../core/index.js';
import { onnxName } from '../models/index.js';
import type { OutputTensor, RuntimeModel, TensorMetadata } from './types.js';

/** Input and output tensors the model is served with (`input` FP32 [-1, nFeatures], …). */
export interface RuntimeSignature {
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** Tuning of one loaded model. */
export interface RuntimeOptions {
  /** Most rows concatenated into one run (a single larger request still runs, alone). Default 1024. */
  maxBatchRows?: number;
  /** ORT intra-op threads. Default 1: requests are already batched, and small boxes have 2 cores. */
  intraOpNumThreads?: number;
  /**
   * Told of every failed run with ONNX Runtime's own error. Its message names server paths and
   * library internals, so callers get a plain message instead and the server log gets this one.
   */
  onEngineError?: (err: unknown) => void;
  /** Told of every run: how many requests it merged and how many rows it ran (the batch-size metrics). */
  onBatch?: (requests: number, rows: number) => void;
}

/** Counters of a loaded model, for metrics and for tests that batching happens. */
export interface RuntimeStats {
  /** `infer` calls answered (successfully or not). */
  requests: number;
  /** Rows run. */
  rows: number;
  /** `session.run` calls. */
  runs: number;
  /** Most requests merged into one run so far. */
  maxBatchRequests: number;
}

/** A `RuntimeModel` that also reports its counters and can release its ORT session. */
export interface LoadedModel extends RuntimeModel {
  stats(): RuntimeStats;
  /**
   * Stops taking requests, lets those already accepted finish, then releases the session (native
   * memory). Idempotent; resolves when the session is released.
   */
  close(): Promise<void>;
}

interface Pending {
  features: Float32Array;
  rows: number;
  resolve: (out: OutputTensor[]) => void;
  reject: (e: unknown) => void;
}

const DEFAULT_MAX_BATCH_ROWS = 1024;

/**
 * Loads ONNX model bytes into an ORT session and checks them against `meta`: exactly one input,
 * FP32 `[-1, nFeatures]`, and every named output present in the graph. Unloadable bytes or a
 * mismatch are `MEDFIT_ERR_MANIFEST` errors saying what is wrong in our words; ONNX Runtime's own
 * message (which names server paths) is only the error's `cause`, for the server log.
 *
 * The bytes must be trusted: medfit's own exports, or an upload checked by the registry's
 * `prepareUpload` (ONNX Runtime reads external data files named inside a model).
 */
export async function loadRuntimeModel(onnxBytes: Uint8Array, meta: RuntimeSignature, options: RuntimeOptions = {}): Promise<LoadedModel> {
  const bad = (message: string) => Errors.manifest('model.onnx', message);
  const input = meta.inputs[0];
  if (meta.inputs.length !== 1 || !input) throw bad(`expected exactly one input tensor, the metadata lists ${meta.inputs.length}`);
  // [-1, nFeatures] for table models, [-1, steps, channels] for sequence networks: every
  // dimension after the batch is fixed, and a row is their product.
  const inner = input.shape.slice(1);
  if (input.datatype !== 'FP32' || input.shape.length < 2 || input.shape.length > 3 || input.shape[0] !== -1 || !inner.every((d) => Number.isInteger(d) && d >= 1))
    throw bad(`input ${onnxName(input.name)} must be FP32 [-1, nFeatures] or [-1, steps, channels], the metadata says ${input.datatype} [${input.shape.join(', ')}]`);
  const nFeatures = inner.reduce((a, d) => a * d, 1);
  if (!Number.isSafeInteger(nFeatures) || nFeatures > 100_000_000) throw bad(`input ${onnxName(input.name)} has too many values per row (${nFeatures})`);
  if (meta.outputs.length < 1) throw bad('the metadata lists no output tensor');
  for (const o of meta.outputs) {
    if (o.datatype !== 'FP32') throw bad(`output ${onnxName(o.name)} must be FP32, the metadata says ${o.datatype}`);
  }
  const maxBatchRows = options.maxBatchRows ?? DEFAULT_MAX_BATCH_ROWS;
  if (!Number.isInteger(maxBatchRows) || maxBatchRows < 1) throw Errors.badParam('maxBatchRows', 'must be a positive integer');

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnxBytes, {
      intraOpNumThreads: options.intraOpNumThreads ?? 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw Errors.manifest('model.onnx', 'ONNX Runtime cannot load the model (its message is in the server log)', e);
  }
  try {
    checkSession(session, meta, inner);
  } catch (e) {
    await session.release();
    throw e;
  }
  return new BatchedModel(session, meta, nFeatures, maxBatchRows, options.onEngineError, options.onBatch);
}

/** The graph must have the metadata's input (float32, of the dimensions `inner` after the batch) and outputs. */
function checkSession(session: ort.InferenceSession, meta: RuntimeSignature, inner: number[]): void {
  const bad = (message: string) => Errors.manifest('model.onnx', message);
  const input = meta.inputs[0]!;
  if (session.inputNames.length !== 1 || session.inputNames[0] !== input.name)
    throw bad(`the graph's inputs are [${session.inputNames.map(onnxName).join(', ')}], expected [${onnxName(input.name)}]`);
  const im = session.inputMetadata[0];
  if (im?.isTensor) {
    if (im.type !== 'float32') throw bad(`input ${onnxName(input.name)} is ${im.type} in the graph, expected float32`);
    if (im.shape.length !== inner.length + 1) throw bad(`input ${onnxName(input.name)} has ${im.shape.length} dimensions in the graph, the metadata says ${inner.length + 1}`);
    for (let d = 0; d < inner.length; d++) {
      const dim = im.shape[d + 1];
      if (typeof dim === 'number' && dim !== inner[d])
        throw bad(`input ${onnxName(input.name)} has dimension ${d + 1} of ${dim} in the graph, the metadata says ${inner[d]} ([${meta.inputs[0]!.shape.join(', ')}])`);
    }
  }
  for (const o of meta.outputs) {
    if (!session.outputNames.includes(o.name)) throw bad(`the graph has no output ${onnxName(o.name)} (it has ${session.outputNames.slice(0, 10).map(onnxName).join(', ')})`);
  }
}

class BatchedModel implements LoadedModel {
  readonly inputs: TensorMetadata[];
  readonly outputs: TensorMetadata[];
  private readonly queue: Pending[] = [];
  private running = false;
  private scheduled = false;
  private closing: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly counters: RuntimeStats = { requests: 0, rows: 0, runs: 0, maxBatchRequests: 0 };
  private readonly outputNames: string[];
  /** The input's dimensions after the batch ([nFeatures], or [steps, channels]). */
  private readonly inner: number[];

  constructor(
    private readonly session: ort.InferenceSession,
    meta: RuntimeSignature,
    private readonly nFeatures: number,
    private readonly maxBatchRows: number,
    private readonly onEngineError: ((err: unknown) => void) | undefined,
    private readonly onBatch: ((requests: number, rows: number) => void) | undefined = undefined,
  ) {
    // Copies, so a caller mutating its metadata cannot change what this model reports.
    this.inputs = structuredClone(meta.inputs);
    this.outputs = structuredClone(meta.outputs);
    this.outputNames = this.outputs.map((o) => o.name);
    this.inner = this.inputs[0]!.shape.slice(1);
  }

  infer(features: Float32Array, rows: number): Promise<OutputTensor[]> {
    if (this.closing) return Promise.reject(Errors.unavailable('the model was unloaded while a request was on its way; retry'));
    if (!(features instanceof Float32Array)) return Promise.reject(Errors.badData('input', 'features must be a Float32Array'));
    if (!Number.isInteger(rows) || rows < 0) return Promise.reject(Errors.badData('input', `rows must be a non-negative integer, got ${rows}`));
    const want = rows * this.nFeatures;
    if (features.length !== want) {
      return Promise.reject(
        Errors.badData('input', `expected ${rows} rows × ${this.nFeatures} values (${this.inner.join(' × ')}) = ${want} values, got ${features.length}`, [
          { pointer: 'input', message: `expected ${want} values (${this.nFeatures} per row), got ${features.length}` },
        ]),
      );
    }
    if (rows === 0) {
      this.counters.requests++;
      return Promise.resolve(this.outputs.map((o) => ({ name: o.name, datatype: 'FP32' as const, shape: [0, Math.max(0, o.shape[1] ?? 0)], data: new Float32Array(0) })));
    }
    return new Promise<OutputTensor[]>((resolve, reject) => {
      this.queue.push({ features, rows, resolve, reject });
      this.schedule();
    });
  }

  stats(): RuntimeStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.running || this.queue.length > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
      await this.session.release();
    })();
    return this.closing;
  }

  /** Dispatches after the current microtask turn, so a same-tick burst forms one batch. */
  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.dispatch();
    });
  }

  /** Runs batches until the queue is empty: what queued during a run goes next, without a timer. */
  private async dispatch(): Promise<void> {
    if (this.running) return;
    this.running = true;
    while (this.queue.length > 0) await this.runBatch();
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private async runBatch(): Promise<void> {
    // First come, first served; the head request always goes, even when alone it exceeds the cap.
    let take = 1;
    let total = this.queue[0]!.rows;
    while (take < this.queue.length && total + this.queue[take]!.rows <= this.maxBatchRows) total += this.queue[take++]!.rows;
    const batch = this.queue.splice(0, take);
    this.counters.runs++;
    this.counters.requests += batch.length;
    this.counters.rows += total;
    this.counters.maxBatchRequests = Math.max(this.counters.maxBatchRequests, batch.length);
    this.onBatch?.(batch.length, total);
    try {
      const data = batch.length === 1 ? batch[0]!.features : concat(batch, total * this.nFeatures);
      const feeds = { [this.inputs[0]!.name]: new ort.Tensor('float32', data, [total, ...this.inner]) };
      const result = await this.session.run(feeds, this.outputNames);
      const outs = this.outputs.map((o) => {
        const t = result[o.name];
        if (!t) throw Errors.internal(`ONNX Runtime returned no ${onnxName(o.name)}`);
        return { name: o.name, data: asFloat32(t), dims: t.dims };
      });
      let row = 0;
      for (const p of batch) {
        p.resolve(
          outs.map((o) => {
            const cols = o.data.length / total;
            // A lone request gets the run's buffer; batched ones get their own copy of their rows.
            const data = batch.length === 1 ? o.data : o.data.slice(row * cols, (row + p.rows) * cols);
            const shape = o.dims.length === 1 ? [p.rows] : [p.rows, ...o.dims.slice(1).map(Number)];
            return { name: o.name, datatype: 'FP32' as const, shape, data };
          }),
        );
        row += p.rows;
      }
    } catch (e) {
      let err = e;
      if (!(e instanceof MedfitError)) {
        this.onEngineError?.(e);
        err = Errors.internal('ONNX Runtime failed to run the model', e);
      }
      for (const p of batch) p.reject(err);
    }
  }
}

function concat(batch: Pending[], length: number): Float32Array {
  const out = new Float32Array(length);
  let off = 0;
  for (const p of batch) {
    out.set(p.features, off);
    off += p.features.length;
  }
  return out;
}

/** Output data as float32: medfit's graphs already are; a brought-in model's other numerics are cast. */
function asFloat32(t: ort.Tensor): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float32Array.from(d, (v) => Number(v));
  if (ArrayBuffer.isView(d)) return Float32Array.from(d as unknown as ArrayLike<number>);
  throw Errors.internal(`an output of type ${t.type} is not numeric`);
}
