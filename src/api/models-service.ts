import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Errors, MedfitError, errorChain, type Matrix, type RawRecord, type Task, type Warning } from '../core/index.js';
import { WorkQueue } from './work-queue.js';
import { Problems, isMissing, parseDate, parseNumber, shortName, transformRecords, type FittedPipeline } from '../data/index.js';
import { windowFeaturesFor, type SequenceShape } from '../models/index.js';
import {
  explainPredictions,
  formatPredictions,
  loadArtifact,
  loadArtifactOnnx,
  loadUpload,
  outputNames,
  readArtifactDetails,
  readUploadInfo,
  type Artifact,
  type ExplainedPrediction,
  type Manifest,
  type Prediction,
  type UploadInfo,
} from '../registry/index.js';
import { detectRate, segmentsOf, windowCount, windowWarnings, windowize, type Session, type SequencePrep } from '../sequence/index.js';
import {
  ModelCache,
  UPLOAD_SERVING_LIMITS,
  loadRuntimeModel,
  type LoadedModel as Runtime,
  type OutputTensor,
  type RuntimeStats,
  type ServedSequence,
  type TensorMetadata,
} from '../serve/index.js';
import type { BlobStore, MetadataStore, ModelVersionRecord } from '../store/index.js';
import type { LocalCache } from './local-cache.js';

/** Most feature values one prediction request may make (80 MB of float64). */
const MAX_PREDICT_VALUES = 10_000_000;

/**
 * Most records one request may ask to have explained (`"explain": true`). Explanations run on
 * the main thread with the training engine (see `ModelService.predict`), so their number is kept
 * small; a client explains more in further requests.
 */
export const MAX_EXPLAIN_RECORDS = 100;

/**
 * Most work one explained request may take, in `explainCost` units (multiply-adds of the mlp's
 * coalition points; bounds for the others): about 5–10 s of one core here (the mlp's forward
 * passes run at 0.5–0.8 G multiply-adds per second). A default-shaped network on a 30-column
 * table costs about 8.4 million per record, so 100 records fit; a model too costly for the
 * records sent is refused (413) before any work starts.
 */
export const MAX_EXPLAIN_COST = 5e9;

/**
 * Longest stretch of explanation work between yields to the event loop: other requests (health
 * checks, predictions) are answered meanwhile, an explained request taking longer in turn.
 */
const EXPLAIN_SLICE_MS = 10;

/**
 * Explanations of a process running at once. They run on the main thread in slices (see
 * EXPLAIN_SLICE_MS), so a second one at the same time adds no throughput: it only doubles both
 * requests' time and the event loop's share they take. Everything else (health checks, plain
 * predictions, which never wait for explanations) is answered between slices.
 */
export const EXPLAIN_CONCURRENCY = 1;

/**
 * Explained requests that may wait for their turn (each up to MAX_EXPLAIN_COST, about 5–10 s):
 * the next is refused at once with 503 and `Retry-After`, rather than kept waiting for minutes.
 * A waiting request whose client goes away leaves the queue.
 */
export const EXPLAIN_QUEUE = 8;

/** How long a model's version list is trusted without asking the store again. */
const VERSIONS_TTL_MS = 1000;

/** A version's stored description, read and verified by the registry. */
export type VersionDetails = { source: 'uploaded'; info: UploadInfo } | { source: 'trained'; manifest: Manifest; evaluation: unknown };

/** An error's message with its causes (ONNX Runtime's own words among them): for the server log only. */
/** A model version ready to predict: its ONNX Runtime session and what turns records into input. */
export interface ServedModel {
  readonly inputs: TensorMetadata[];
  readonly outputs: TensorMetadata[];
  infer(features: Float32Array, rows: number): Promise<OutputTensor[]>;
  close(): Promise<void>;
  /** The session's counters (requests, rows, runs): how well micro-batching merges requests. */
  stats(): RuntimeStats;
  record: ModelVersionRecord;
  task: Task;
  classes: string[] | undefined;
  /** The fitted pipeline of a trained model; uploaded models take numeric features by name. */
  pipeline: FittedPipeline | undefined;
  /** A table model's features; a sequence model's channels. */
  features: string[];
  /** A sequence model's preparation (then `inputs` is [-1, steps, channels]); undefined for a table model. */
  sequence: SequencePrep | undefined;
  /**
   * A trained table model's training engine (weights and verified manifest), loaded by the first
   * request for explanations and dropped with the session when the cache evicts it.
   */
  engine?: Promise<Artifact>;
  /** Multi-output regression: the output names; else undefined. */
  outputNames: string[] | undefined;
  /** The model family (`gbdt`, `window-gbdt`, `onnx` for an upload …), for messages. */
  family: string;
  /**
   * Sequence models: runs windows (float64, normalised, step-major) through the session. For
   * window-gbdt the features are computed from the float64 windows, as in training; `infer`
   * (V2, whose tensors are FP32) computes them from the FP32 windows it is given.
   */
  runWindows: ((x: Matrix) => Promise<OutputTensor[]>) | undefined;
}

/** A sequence model as `ModelService.sequenceModel` hands it out: the `ServedSequence` and which version it is. */
export interface ServedSequenceModel extends ServedSequence {
  record: ModelVersionRecord;
  task: Task;
}

/**
 * Resolves model names and versions within a project, keeps ONNX Runtime sessions in a bounded
 * cache, and runs predictions on raw records (pipeline server-side, then ONNX Runtime).
 */
export class ModelService {
  private readonly cache: ModelCache<ServedModel>;
  private readonly versionLists = new Map<string, { list: ModelVersionRecord[]; until: number }>();
  /** Model directories being fetched from storage, by local path. */
  private readonly fetching = new Map<string, Promise<void>>();
  private readonly invalidationListeners: Array<() => void> = [];
  /** Explained predictions: EXPLAIN_CONCURRENCY at a time, EXPLAIN_QUEUE waiting (plain ones never wait here). */
  private readonly explanations = new WorkQueue({
    concurrency: EXPLAIN_CONCURRENCY,
    queue: EXPLAIN_QUEUE,
    refusal: `the server is busy explaining other predictions (${EXPLAIN_CONCURRENCY} at a time, ${EXPLAIN_QUEUE} waiting): try again after the time Retry-After gives, or send the request without "explain" (plain predictions do not wait for explanations)`,
  });

  constructor(
    private readonly store: MetadataStore,
    private readonly dataDir: string,
    cacheSize: number,
    private readonly logError: (message: string, err: unknown) => void = () => {},
    /**
     * `key`: MEDFIT_MANIFEST_KEY, which stored manifests and upload records must be signed with.
     * `blobs`: where model directories are fetched from when this process has no copy yet (the
     * copy is kept: a replica fetches each version once). `broadcast`: tells the other processes
     * of a cluster that a model's versions changed.
     */
    private readonly options: {
      key?: string | undefined;
      blobs?: BlobStore;
      /** This process's copies of stored model directories, under a budget. */
      cache?: LocalCache | undefined;
      broadcast?: (projectId: string, name: string) => void;
      onBatch?: (requests: number, rows: number) => void;
    } = {},
  ) {
    this.cache = new ModelCache<ServedModel>({ max: cacheSize, load: (key) => this.loadKey(key) });
  }

  /** The version asked for, or the production version, else the newest; 404 when there is none. */
  async resolve(projectId: string, name: string, version?: string): Promise<ModelVersionRecord> {
    if (version !== undefined) {
      // Versions are written 1, 2, ...: "1.0", "0x1" or " 1" name no version.
      if (!/^[1-9][0-9]{0,8}$/.test(version)) throw Errors.notFound(`model "${name}" version "${version}"`);
      const v = Number(version);
      // A version newer than the cached list (just registered elsewhere) triggers one fresh read.
      const rec = (await this.versions(projectId, name)).find((r) => r.version === v) ?? (await this.versions(projectId, name, true)).find((r) => r.version === v);
      if (!rec) throw Errors.notFound(`model "${name}" version "${version}"`);
      return rec;
    }
    const all = await this.versions(projectId, name);
    if (all.length === 0) throw Errors.notFound(`model "${name}"`);
    return all.find((v) => v.stage === 'production') ?? all[all.length - 1]!;
  }

  /**
   * Every version of a model, from a short-lived cache: resolving a name is on the path of every
   * prediction, and a store query there costs more than the inference itself. Changes made by this
   * process call `invalidate`; others (another process sharing the database) show within VERSIONS_TTL_MS.
   */
  async versions(projectId: string, name: string, fresh = false): Promise<ModelVersionRecord[]> {
    const key = `${projectId}\u0000${name}`;
    const hit = this.versionLists.get(key);
    if (!fresh && hit && hit.until > Date.now()) return hit.list;
    const list = await this.store.listModelVersions(projectId, name);
    if (this.versionLists.size > 10_000) this.versionLists.clear();
    this.versionLists.set(key, { list, until: Date.now() + VERSIONS_TTL_MS });
    return list;
  }

  /** Forgets the cached version list of a model (a version was added or restaged), here and in every process of a cluster. */
  invalidate(projectId: string, name: string): void {
    this.invalidateHere(projectId, name);
    this.options.broadcast?.(projectId, name);
  }

  /** Forgets the cached version list of a model in this process only (another process changed it). */
  invalidateHere(projectId: string, name: string): void {
    this.versionLists.delete(`${projectId}\u0000${name}`);
    for (const listener of this.invalidationListeners) listener();
  }

  /**
   * The local directory of a version, fetched from storage (whole, each file's SHA-256 checked)
   * the first time this process needs it. Failing to fetch is the server's problem: a 503 when
   * storage is unreachable, else a 500 with the details in the log.
   */
  async localDir(rec: ModelVersionRecord): Promise<string> {
    const dir = join(this.dataDir, rec.dir);
    const blobs = this.options.blobs;
    if (!blobs) return dir;
    if (existsSync(dir)) {
      this.options.cache?.use(rec.dir);
      return dir;
    }
    let fetching = this.fetching.get(dir);
    if (!fetching) {
      fetching = blobs.getDir(rec.dir, dir, rec.filesSha256).finally(() => this.fetching.delete(dir));
      this.fetching.set(dir, fetching);
    }
    try {
      await fetching;
    } catch (e) {
      // Two requests for a version not yet here share one download; one that lost a race with
      // another process's copy finds the directory there.
      if (existsSync(dir)) return dir;
      if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_UNAVAILABLE') throw e;
      this.logError(`model ${rec.name} v${rec.version} cannot be fetched from storage: ${errorChain(e)}`, e);
      throw Errors.internal(`model "${rec.name}" version ${rec.version} cannot be read; the server log has the details`);
    }
    this.options.cache?.use(rec.dir);
    return dir;
  }

  /** Calls `listener` whenever a model's versions change (for caches built on `resolve`). */
  onInvalidate(listener: () => void): void {
    this.invalidationListeners.push(listener);
  }

  /** The loaded model of a version (from the cache, or loaded and verified once). */
  load(rec: ModelVersionRecord): Promise<ServedModel> {
    return this.cache.get(`${rec.projectId}\u0000${rec.name}\u0000${rec.version}`);
  }

  /**
   * Predicts raw records with a version; a wrong type or a record without features is a 422.
   *
   * With `explain`, each prediction carries its explanation (`explainPredictions`): contributions
   * per input column that, with the base, add up to the raw output. Those are computed on the
   * main thread by the training engine (loaded once per cached version) in float64, and so are
   * that request's probabilities or values, so the two agree exactly; the work is bounded before
   * it starts (`MAX_EXPLAIN_RECORDS`, `MAX_EXPLAIN_COST`) and yields to the event loop every
   * `EXPLAIN_SLICE_MS`; at most EXPLAIN_CONCURRENCY run at once and EXPLAIN_QUEUE wait, a
   * request beyond that is a 503 with `Retry-After`. `signal` (the client went away) takes a
   * waiting request out of the queue and stops a running one before its next slice. Only table
   * models trained by medfit are explained: a sequence or uploaded model is a 400, a version
   * trained before explanations a 422 asking to retrain.
   */
  async predict(
    rec: ModelVersionRecord,
    records: RawRecord[],
    options: { explain?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<{ predictions: Prediction[] | ExplainedPrediction[]; warnings: Warning[] }> {
    const m = await this.load(rec);
    if (options.explain) {
      if (rec.source === 'uploaded' || m.sequence) {
        const what = rec.source === 'uploaded' ? 'an uploaded ONNX model' : `a sequence model (${m.family})`;
        throw Errors.badParam('/explain', `explanations are available for table models trained by medfit; model "${rec.name}" version ${rec.version} is ${what}`);
      }
      if (records.length > MAX_EXPLAIN_RECORDS) {
        throw Errors.badParam('/records', `at most ${MAX_EXPLAIN_RECORDS} records can be explained in one request (MAX_EXPLAIN_RECORDS), this one has ${records.length}; send them in several requests, or without "explain"`);
      }
    }
    if (m.sequence) {
      throw Errors.usage(
        `model "${rec.name}" version ${rec.version} is a sequence model (${m.family}): send raw sensor samples as {"samples": [{"${m.sequence.columns.time}": …, "${m.sequence.channels[0]}": …}, …]}, not table records`,
      );
    }
    // Records × features is what gets allocated: bounded before anything is.
    if (records.length * m.features.length > MAX_PREDICT_VALUES) {
      throw Errors.tooLarge(`${records.length} records of ${m.features.length} features are more than one request may hold (${MAX_PREDICT_VALUES} values); send them in smaller requests`);
    }
    const { x, warnings } = m.pipeline ? transformRecords(m.pipeline, records) : numericRecords(m.features, records);
    if (options.explain) {
      checkFloat32Range(new Float32Array(x.data), m.features);
      const engine = await this.engine(rec, m);
      const name = `model "${rec.name}" version ${rec.version}`;
      const signal = options.signal;
      const predictions = await explainPredictions(
        engine,
        { rows: x.rows, cols: m.features.length, data: x.data },
        { name, maxCost: MAX_EXPLAIN_COST, sliceMs: EXPLAIN_SLICE_MS, signal, schedule: (work) => this.explanations.run(work, signal) },
      );
      return { predictions, warnings };
    }
    const features = new Float32Array(x.data);
    checkFloat32Range(features, m.features);
    const [out] = await this.infer(rec, features, x.rows, m);
    const width = m.task === 'regression' ? (m.outputNames?.length ?? 1) : m.classes!.length;
    if (out!.data.length !== x.rows * width) {
      // Our own models always answer rows × width; a brought-in one may not, on some inputs.
      const what = `returned ${out!.data.length} values for ${x.rows} records of ${width} output(s) each`;
      if (rec.source === 'uploaded') throw Errors.badData('', `the uploaded model ${what}`);
      throw Errors.internal(`model "${rec.name}" version ${rec.version} ${what}`);
    }
    return { predictions: formatPredictions(m.task === 'regression' ? undefined : m.classes, out!.data, x.rows, m.outputNames), warnings };
  }

  /**
   * A sequence model of a project, resolved like a prediction (the version asked for, else the
   * production version, else the newest): 404 when there is none, a 400 for a table model.
   * `predictWindows` runs normalised windows (window features computed here for window-gbdt).
   */
  async sequenceModel(projectId: string, name: string, version?: string): Promise<ServedSequenceModel> {
    const rec = await this.resolve(projectId, name, version);
    const m = await this.load(rec);
    return this.servedSequence(rec, m);
  }

  /**
   * Predicts raw sensor samples (`{"samples": [...]}`) with a sequence model: grouped into
   * streams, resampled, filtered, normalised and windowed as in training, one prediction per
   * window. Errors point into the body (`/samples/17/ax`).
   */
  async predictSamples(rec: ModelVersionRecord, body: SamplesRequest): Promise<{ predictions: WindowPredictionJson[]; warnings: Warning[]; windows: number }> {
    const m = await this.load(rec);
    return predictSamples(this.servedSequence(rec, m), body, MAX_PREDICT_VALUES);
  }

  private servedSequence(rec: ModelVersionRecord, m: ServedModel): ServedSequenceModel {
    if (!m.sequence) {
      throw Errors.usage(
        `model "${rec.name}" version ${rec.version} is a ${rec.source === 'uploaded' ? 'brought-in' : 'table'} model (${m.family}): it predicts table records ({"records": [...]}), not sensor samples`,
      );
    }
    return {
      record: rec,
      task: m.task,
      prep: m.sequence,
      ...(m.task !== 'regression' && m.classes ? { classes: m.classes } : {}),
      ...(m.outputNames ? { outputs: m.outputNames } : {}),
      predictWindows: (x) => this.predictWindows(rec, x),
    };
  }

  /**
   * Windows (normalised, step-major) → model outputs, rows × width. The session is looked up on
   * every call (a cache hit): a stream that holds its `ServedSequence` for hours keeps its model
   * recently used, and gets a fresh load if it was evicted meanwhile.
   */
  private async predictWindows(rec: ModelVersionRecord, x: Matrix): Promise<Float64Array> {
    const m = await this.load(rec);
    if (!m.sequence || !m.runWindows) throw Errors.internal(`model "${rec.name}" version ${rec.version} is not a sequence model`);
    const prep = m.sequence;
    const width = prep.window * prep.channels.length;
    if (x.cols !== width || x.data.length !== x.rows * width) {
      throw Errors.badData('', `expected windows of ${prep.window} steps × ${prep.channels.length} channels = ${width} values each, got ${x.cols}`);
    }
    if (x.rows > 0 && x.rows * width > MAX_PREDICT_VALUES) throw Errors.tooLarge(`${x.rows} windows of ${width} values are more than one request may hold (${MAX_PREDICT_VALUES} values)`);
    const outWidth = m.task === 'regression' ? (m.outputNames?.length ?? 1) : m.classes!.length;
    if (x.rows === 0) return new Float64Array(0);
    // float32 overflows past ±3.4e38: a window there would come back as a confident answer.
    const bad = x.data.findIndex((v) => !(Math.abs(v) <= 3.4e38));
    if (bad >= 0) {
      const row = Math.floor(bad / width);
      const channel = prep.channels[bad % prep.channels.length]!;
      throw Errors.badData('', `window ${row}: channel "${channel}" is beyond the model's range once normalised (float32, about ±3.4e38)`, [{ pointer: `/windows/${row}`, message: `channel "${channel}" is out of range` }]);
    }
    let outs: OutputTensor[];
    try {
      outs = await m.runWindows(x);
    } catch (e) {
      // Evicted between lookup and run (see `infer`): once more, on a fresh load.
      if (!(e instanceof MedfitError) || e.code !== 'MEDFIT_ERR_UNAVAILABLE') throw e;
      outs = await (await this.load(rec)).runWindows!(x);
    }
    const out = outs[0];
    if (out!.data.length !== x.rows * outWidth) throw Errors.internal(`model "${rec.name}" version ${rec.version} returned ${out!.data.length} values for ${x.rows} windows of ${outWidth} output(s) each`);
    return Float64Array.from(out!.data);
  }

  /**
   * Runs features through a version's session. A session evicted from the cache between lookup
   * and run refuses with "unavailable"; the request then goes once more, to a fresh load.
   */
  async infer(rec: ModelVersionRecord, features: Float32Array, rows: number, loaded?: ServedModel): Promise<OutputTensor[]> {
    try {
      // An uploaded model runs at most the rows its check proved it can (see UPLOAD_SERVING_LIMITS).
      if (rec.source === 'uploaded' && rows > UPLOAD_SERVING_LIMITS.runRows) return await this.inferInRuns(rec, features, rows, loaded);
      try {
        return await (loaded ?? (await this.load(rec))).infer(features, rows);
      } catch (e) {
        if (!(e instanceof MedfitError) || e.code !== 'MEDFIT_ERR_UNAVAILABLE') throw e;
        return await (await this.load(rec)).infer(features, rows);
      }
    } catch (e) {
      // A brought-in model that fails on some inputs is the caller's model failing, not ours.
      if (rec.source === 'uploaded' && e instanceof MedfitError && e.code === 'MEDFIT_ERR_INTERNAL' && e.cause !== undefined) {
        throw Errors.badData('', 'the uploaded model failed to run on this input (ONNX Runtime refused it)');
      }
      throw e;
    }
  }

  /** `infer` in runs of `UPLOAD_SERVING_LIMITS.runRows` rows, outputs joined in order. */
  private async inferInRuns(rec: ModelVersionRecord, features: Float32Array, rows: number, loaded?: ServedModel): Promise<OutputTensor[]> {
    const step = UPLOAD_SERVING_LIMITS.runRows;
    const width = features.length / rows;
    const parts: OutputTensor[][] = [];
    for (let from = 0; from < rows; from += step) {
      const n = Math.min(step, rows - from);
      parts.push(await this.infer(rec, features.slice(from * width, (from + n) * width), n, loaded));
    }
    return parts[0]!.map((first, k) => {
      const data = new Float32Array(parts.reduce((sum, p) => sum + p[k]!.data.length, 0));
      let at = 0;
      for (const p of parts) {
        data.set(p[k]!.data, at);
        at += p[k]!.data.length;
      }
      return { ...first, shape: [rows, ...first.shape.slice(1)], data };
    });
  }

  /**
   * The training engine of a trained version, for explanations: loaded and verified once (like
   * the ONNX session, the details of a failure go to the log and the caller gets a plain 500),
   * kept with the cached session. A failed load is not kept, so a later request tries again.
   */
  private engine(rec: ModelVersionRecord, m: ServedModel): Promise<Artifact> {
    if (!m.engine) {
      const load = async (): Promise<Artifact> => loadArtifact(await this.localDir(rec), this.options);
      m.engine = load().catch((e: unknown) => {
        m.engine = undefined;
        this.logError(`model ${rec.name} v${rec.version}: its training engine cannot be loaded for explanations: ${errorChain(e)}`, e);
        throw Errors.internal(`model "${rec.name}" version ${rec.version} cannot be loaded for explanations; the server log has the details`);
      });
    }
    return m.engine;
  }

  /** Explanations running and waiting now (see EXPLAIN_CONCURRENCY, EXPLAIN_QUEUE). */
  explainLoad(): { running: number; waiting: number } {
    const { running, waiting } = this.explanations.load();
    return { running, waiting };
  }

  /** Drops a cached session (after a stage change nothing is needed; after deletion it is). */
  evict(rec: ModelVersionRecord): void {
    this.cache.evict(`${rec.projectId}\u0000${rec.name}\u0000${rec.version}`);
  }

  async close(): Promise<void> {
    await this.cache.close();
  }

  private async loadKey(key: string): Promise<ServedModel> {
    const [projectId, name, version] = key.split('\u0000') as [string, string, string];
    const record = await this.store.getModelVersion(projectId, name, Number(version));
    if (!record) throw Errors.notFound(`model "${name}" version "${version}"`);
    try {
      return await this.open(record);
    } catch (e) {
      if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_UNAVAILABLE') throw e;
      // A stored model that does not load is the server's problem, not the caller's: the caller
      // gets a plain 500, the log gets what is wrong (and where on disk, and ONNX Runtime's words).
      this.logError(`model ${name} v${version} cannot be loaded: ${errorChain(e)}`, e);
      throw Errors.internal(`model "${name}" version ${version} cannot be loaded; the server log has the details`);
    }
  }

  /**
   * A version's stored description, verified by the registry (integrity or signature, and the
   * hash of each file read). A directory that fails verification is reported like a model that
   * does not load: a plain 500 to the caller, the details (with server paths) to the log.
   */
  async details(rec: ModelVersionRecord): Promise<VersionDetails> {
    const dir = await this.localDir(rec);
    try {
      if (rec.source === 'uploaded') return { source: 'uploaded', info: readUploadInfo(dir, this.options) };
      return { source: 'trained', ...readArtifactDetails(dir, this.options) };
    } catch (e) {
      this.logError(`model ${rec.name} v${rec.version} cannot be read: ${errorChain(e)}`, e);
      throw Errors.internal(`model "${rec.name}" version ${rec.version} cannot be read; the server log has the details`);
    }
  }

  /** Loads a version through the registry: the ONNX bytes served are the ones whose hash was checked. */
  private async open(record: ModelVersionRecord): Promise<ServedModel> {
    const dir = await this.localDir(record);
    // ONNX Runtime's message on a failed run can quote the input (an index, a value): only its
    // kind is logged, never its text.
    const onEngineError = (e: unknown) => this.logError(`model ${record.name} v${record.version}: ONNX Runtime failed to run it (${e instanceof Error ? e.name : typeof e}; its message is not logged, it may hold input values)`, undefined);
    if (record.source === 'uploaded') {
      const { info, onnx } = loadUpload(dir, this.options);
      const runtime = await loadRuntimeModel(onnx, { inputs: info.inputs, outputs: info.outputs }, { onEngineError, ...(this.options.onBatch ? { onBatch: this.options.onBatch } : {}) });
      return served(runtime, { record, task: info.task, classes: info.classes, pipeline: undefined, features: info.features, sequence: undefined, outputNames: undefined, family: 'onnx' });
    }
    const { manifest: m, onnx } = loadArtifactOnnx(dir, this.options);
    const runtime = await loadRuntimeModel(onnx, m.signature, { onEngineError, ...(this.options.onBatch ? { onBatch: this.options.onBatch } : {}) });
    const meta = { record, task: m.task, classes: m.target.classes, pipeline: m.pipeline, sequence: m.sequence, outputNames: outputNames(m), family: m.model.family };
    if (!m.sequence) return served(runtime, { ...meta, features: m.pipeline?.features ?? [] });
    if (m.model.family === 'window-gbdt') return windowGbdtServed(runtime, m, { ...meta, features: m.sequence.channels });
    return served(runtime, { ...meta, features: m.sequence.channels });
  }
}

type ServedMeta = Omit<ServedModel, 'inputs' | 'outputs' | 'infer' | 'close' | 'stats' | 'runWindows'>;

function served(runtime: Runtime, meta: ServedMeta): ServedModel {
  return {
    inputs: runtime.inputs,
    outputs: runtime.outputs,
    infer: (f, rows) => runtime.infer(f, rows),
    close: () => runtime.close(),
    stats: () => runtime.stats(),
    runWindows: meta.sequence ? (x) => runtime.infer(new Float32Array(x.data), x.rows) : undefined,
    ...meta,
  };
}

/**
 * A window-gbdt model: its graph reads window features, which are computed here (by the same
 * TypeScript function as in training), so it is served like every sequence model: its input is
 * windows, FP32 [-1, steps, channels].
 */
function windowGbdtServed(runtime: Runtime, m: Manifest, meta: ServedMeta): ServedModel {
  const prep = m.sequence!;
  const shape: SequenceShape = { steps: prep.window, channels: prep.channels.length, rate: prep.rate, channelNames: [...prep.channels] };
  const width = shape.steps * shape.channels;
  const inputs: TensorMetadata[] = [{ name: runtime.inputs[0]!.name, datatype: 'FP32', shape: [-1, shape.steps, shape.channels] }];
  const infer = (windows: Float32Array, rows: number): Promise<OutputTensor[]> => {
    if (!(windows instanceof Float32Array) || !Number.isInteger(rows) || rows < 0 || windows.length !== rows * width) {
      const got = windows instanceof Float32Array ? windows.length : 0;
      return Promise.reject(
        Errors.badData('input', `expected ${rows} windows × ${shape.steps} steps × ${shape.channels} channels = ${rows * width} values, got ${got}`, [
          { pointer: 'input', message: `expected ${rows * width} values (${width} per window), got ${got}` },
        ]),
      );
    }
    if (rows === 0) return runtime.infer(new Float32Array(0), 0);
    let f: Matrix;
    try {
      f = windowFeaturesFor(shape, { rows, cols: width, data: Float64Array.from(windows) });
    } catch (e) {
      return Promise.reject(e);
    }
    return runtime.infer(new Float32Array(f.data), rows);
  };
  const runWindows = (x: Matrix): Promise<OutputTensor[]> => {
    let f: Matrix;
    try {
      f = windowFeaturesFor(shape, x);
    } catch (e) {
      return Promise.reject(e);
    }
    return runtime.infer(new Float32Array(f.data), x.rows);
  };
  return { inputs, outputs: runtime.outputs, infer, close: () => runtime.close(), stats: () => runtime.stats(), runWindows, ...meta };
}

/**
 * Models run in float32: a feature beyond its range (infinite once in `features`) would come
 * back as a confident 0 or 1, so such a record is refused, pointing at its column. The explained
 * path, which runs in float64, refuses the same records, so `explain` turns no answer into an
 * error or back.
 */
function checkFloat32Range(features32: Float32Array, features: string[]): void {
  for (let i = 0; i < features32.length; i++) {
    if (Number.isFinite(features32[i]!)) continue;
    const row = Math.floor(i / features.length);
    const column = features[i % features.length]!.split(/__|=/)[0]!;
    throw Errors.badFields([{ pointer: `/records/${row}/${column}`, message: "value is out of the model's range (float32, about ±3.4e38)" }]);
  }
}

/** Uploaded models take records of numbers by feature name, in the declared order. */
function numericRecords(features: string[], records: RawRecord[]): { x: { rows: number; data: Float64Array }; warnings: Warning[] } {
  const data = new Float64Array(records.length * features.length);
  const problems = new Problems();
  records.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) {
      problems.add(`/records/${i}`, 'expected an object of feature values');
      return;
    }
    // The first problem of each record only: enough to fix it, and a bounded answer.
    for (let j = 0; j < features.length; j++) {
      const f = features[j]!;
      const v = Object.hasOwn(r, f) ? r[f] : undefined;
      if (typeof v === 'number' && Number.isFinite(v)) {
        data[i * features.length + j] = v;
        continue;
      }
      problems.add(`/records/${i}/${f}`, v === undefined ? 'is missing (uploaded models need every feature)' : 'expected a finite number');
      break;
    }
  });
  problems.throwIfAny();
  return { x: { rows: records.length, data }, warnings: [] };
}

// ---------------------------------------------------------------------------------------------
// Raw sensor samples for a sequence model (`POST /v1/models/{name}/predict` with `samples`)

/** The body of a sequence prediction: samples of one stream (or several, by subject/session fields). */
export interface SamplesRequest {
  /** `{"t": …, "ax": …, …}`: the model's time column (or `t`) and channel values. */
  samples: unknown[];
  /** The stream's subject, for samples that do not name one. */
  subject?: string;
  /** The stream's session, for samples that do not name one. */
  session?: string;
}

/** One window's prediction: where it lies (in the samples' own time format) and the model's answer. */
export type WindowPredictionJson = { subject?: string; session?: string; start: string | number; end: string | number } & Prediction;

/** One stream of samples as read from a request. */
interface Stream {
  subject: string;
  session: string;
  t: number[];
  values: number[][];
  /** Whether its times were ISO 8601 texts (predictions then give ISO times back). */
  iso: boolean | undefined;
  first: number;
  /** Index of the sample that gave the last kept time (for messages). */
  lastIndex: number;
}

/** A JSON Pointer reference token (RFC 6901). */
const token = (name: string) => name.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * Reads raw samples into sessions the model's preparation takes: channels by name (missing ones
 * filled with the training mean, unknown ones ignored, both with a warning), times read as in
 * training (ISO 8601 texts, or numbers in the model's unit), samples grouped into streams by the
 * model's subject/session fields (else the body's `subject`/`session`). Every problem is a 422
 * with a pointer (`/samples/17/ax`); nothing user-sized is allocated before it is bounded.
 */
export function readSamples(prep: SequencePrep, body: SamplesRequest, maxValues: number): { sessions: Session[]; iso: Map<Session, boolean>; warnings: Warning[]; named: { subject: boolean; session: boolean } } {
  const samples = body.samples;
  if (!Array.isArray(samples) || samples.length === 0) throw Errors.badAt('/samples', 'expected a non-empty array of samples');
  const C = prep.channels.length;
  if (samples.length * (C + 1) > maxValues) {
    throw Errors.tooLarge(`${samples.length} samples of ${C} channels are more than one request may hold (${maxValues} values); send them in smaller requests`);
  }
  const timeKey = prep.columns.time;
  const channelIndex = new Map(prep.channels.map((c, i) => [c, i]));
  const subjectKey = prep.columns.subject;
  const sessionKey = prep.columns.session;
  const reserved = new Set<string>([timeKey, ...(channelIndex.has('t') ? [] : ['t']), subjectKey, ...(sessionKey !== undefined ? [sessionKey] : []), ...prep.targets.map((t) => t.name)]);
  const scale = prep.timeUnit === 'ms' ? 1e-3 : 1;
  const problems = new Problems();
  const streams = new Map<string, Stream>();
  const present = new Float64Array(C);
  const extra = new Set<string>();
  let duplicates = 0;
  let namedSubject = body.subject !== undefined;
  let namedSession = body.session !== undefined;
  const idText = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined);

  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (s === null || typeof s !== 'object' || Array.isArray(s)) {
      problems.add(`/samples/${i}`, 'expected an object of a time and channel values');
      continue;
    }
    const r = s as Record<string, unknown>;
    // The time: the model's time column, or `t`.
    const key = Object.hasOwn(r, timeKey) || channelIndex.has('t') || !Object.hasOwn(r, 't') ? timeKey : 't';
    const raw = Object.hasOwn(r, key) ? r[key] : undefined;
    const at = `/samples/${i}/${token(key)}`;
    let time = NaN;
    let iso = false;
    if (raw === undefined || raw === null) problems.add(at, 'is missing (every sample needs its time)');
    else if (typeof raw === 'string') {
      const ms = parseDate(raw);
      if (ms !== null) {
        time = ms / 1000;
        iso = true;
      } else if (prep.timeUnit !== 'iso' && parseNumber(raw) !== null) time = parseNumber(raw)! * scale;
      else problems.add(at, prep.timeUnit === 'iso' ? 'expected an ISO 8601 date-time' : `expected a number (${prep.timeUnit === 'ms' ? 'milliseconds' : 'seconds'}) or an ISO 8601 date-time`);
    } else if (typeof raw === 'number' && Number.isFinite(raw)) {
      if (prep.timeUnit === 'iso') problems.add(at, 'expected an ISO 8601 date-time (the model was trained on ISO times)');
      else time = raw * scale;
    } else problems.add(at, `expected a number (${prep.timeUnit === 'ms' ? 'milliseconds' : 'seconds'}) or an ISO 8601 date-time`);

    // Which stream.
    let subject = body.subject ?? '';
    if (Object.hasOwn(r, subjectKey) && r[subjectKey] !== null) {
      const v = idText(r[subjectKey]);
      if (v === undefined) problems.add(`/samples/${i}/${token(subjectKey)}`, 'expected a text or a number naming the subject');
      else (subject = v), (namedSubject = true);
    }
    let session = body.session ?? '';
    if (sessionKey !== undefined && Object.hasOwn(r, sessionKey) && r[sessionKey] !== null) {
      const v = idText(r[sessionKey]);
      if (v === undefined) problems.add(`/samples/${i}/${token(sessionKey)}`, 'expected a text or a number naming the session');
      else (session = v), (namedSession = true);
    }

    // Channel values: numbers (or texts that read as numbers, as in training files); null or a
    // missing token is a missing value.
    const values = new Array<number>(C).fill(NaN);
    for (const k of Object.keys(r)) {
      const c = channelIndex.get(k);
      if (c === undefined) {
        if (!reserved.has(k) && extra.size < 1000) extra.add(k);
        continue;
      }
      const v = r[k];
      if (v === null) continue;
      const n = typeof v === 'number' ? v : typeof v === 'string' && !isMissing(v) ? parseNumber(v) : undefined;
      if (typeof v === 'string' && isMissing(v)) continue;
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        problems.add(`/samples/${i}/${token(k)}`, 'expected a number (or null when missing)');
        continue;
      }
      // Models run in float32: a value beyond its range would come back as a confident answer.
      if (Math.abs(n) > 3.4e38) {
        problems.add(`/samples/${i}/${token(k)}`, "value is out of the model's range (float32, about ±3.4e38)");
        continue;
      }
      values[c] = n;
      present[c]!++;
    }
    if (time !== time) continue;

    const id = `${subject}\u0000${session}`;
    let st = streams.get(id);
    if (!st) streams.set(id, (st = { subject, session, t: [], values: [], iso: undefined, first: i, lastIndex: -1 }));
    if (st.iso !== undefined && st.iso !== iso) {
      problems.add(at, `mixes ${iso ? 'an ISO 8601 date-time' : 'a number'} with the ${st.iso ? 'ISO 8601 date-times' : 'numbers'} of earlier samples of its stream`);
      continue;
    }
    st.iso = iso;
    const last = st.t.length ? st.t[st.t.length - 1]! : -Infinity;
    if (time < last) {
      problems.add(at, `time goes backwards: it is earlier than sample ${st.lastIndex} of its stream; send each stream's samples in time order`);
      continue;
    }
    if (time === last) {
      duplicates++;
      continue;
    }
    st.t.push(time);
    st.values.push(values);
    st.lastIndex = i;
  }
  problems.throwIfAny();

  if (!present.some((n) => n > 0)) {
    throw Errors.badAt('/samples', `no sample has any of the model's channels (${prep.channels.map(shortName).slice(0, 20).join(', ')})`);
  }
  const warnings: Warning[] = [];
  if (duplicates > 0) warnings.push({ code: 'duplicate_timestamps', message: `${duplicates} sample(s) repeated an earlier time of their stream and were dropped (the first is kept)` });
  const missing = prep.channels.filter((_, c) => present[c] === 0);
  if (missing.length > 0) warnings.push({ code: 'missing_channels', message: `no sample has the model's channel(s) ${missing.map(shortName).join(', ')}: filled with their training means, so predictions may be less accurate` });
  if (extra.size > 0) {
    const names = [...extra];
    warnings.push({ code: 'extra_channels', message: `field(s) ${names.slice(0, 20).map(shortName).join(', ')}${names.length > 20 ? ` and ${names.length - 20} more` : ''} are not channels of the model and were ignored` });
  }

  const sessions: Session[] = [];
  const isoOf = new Map<Session, boolean>();
  for (const st of streams.values()) {
    const n = st.t.length;
    const channels = prep.channels.map((_, c) => {
      const a = new Float64Array(n);
      for (let j = 0; j < n; j++) a[j] = st.values[j]![c]!;
      return a;
    });
    const session: Session = { subject: st.subject, session: st.session, t: Float64Array.from(st.t), channels, targets: [], line: st.first };
    sessions.push(session);
    isoOf.set(session, st.iso === true);
  }
  return { sessions, iso: isoOf, warnings, named: { subject: namedSubject, session: namedSession } };
}

/** Steps and windows the sessions give once resampled (without resampling them): what a request would allocate. */
function resampledSize(sessions: Session[], prep: SequencePrep): { steps: number; windows: number; longest: number } {
  let steps = 0;
  let windows = 0;
  let longest = 0;
  for (const s of sessions) {
    const n = s.t.length;
    let a = 0;
    while (a < n) {
      let b = a;
      while (b + 1 < n && s.t[b + 1]! - s.t[b]! <= prep.maxGap) b++;
      const k = Math.floor((s.t[b]! - s.t[a]!) * prep.rate + 1e-6) + 1;
      steps += k;
      windows += windowCount(k, prep.window, prep.stride);
      longest = Math.max(longest, k);
      a = b + 1;
    }
  }
  return { steps, windows, longest };
}

/**
 * Predicts raw samples with a sequence model: read (see `readSamples`), resampled to the model's
 * rate, filtered, normalised and windowed exactly as in training (the prep saved with the model),
 * one prediction per window, with the window's start and end in the samples' own time format.
 */
export async function predictSamples(model: ServedSequence, body: SamplesRequest, maxValues: number): Promise<{ predictions: WindowPredictionJson[]; warnings: Warning[]; windows: number }> {
  const prep = model.prep;
  const C = prep.channels.length;
  const read = readSamples(prep, body, maxValues);
  const size = resampledSize(read.sessions, prep);
  if (size.steps * C > maxValues || size.windows * prep.window * C > maxValues) {
    throw Errors.tooLarge(
      `the samples span ${size.steps} steps at the model's ${prep.rate} Hz (${size.windows} windows of ${prep.window} steps × ${C} channels): more than one request may hold (${maxValues} values); send shorter stretches`,
    );
  }
  if (size.windows === 0) {
    throw Errors.badAt(
      '/samples',
      `the samples give no window: the model's window is ${prep.window} steps at ${prep.rate} Hz (${round(prep.window / prep.rate)} s) and at least half of it is needed, but the longest stretch without a gap over ${prep.maxGap} s is ${size.longest} step(s) (${round(size.longest / prep.rate)} s)`,
    );
  }
  const warnings = [...read.warnings];
  try {
    const rate = detectRate(read.sessions);
    if (Math.abs(rate - prep.rate) > 0.05 * prep.rate) warnings.push({ code: 'resampled', message: `the samples arrive at about ${rate} Hz: resampled to the model's ${prep.rate} Hz` });
  } catch {
    /* single-sample streams: no rate to report */
  }
  const w = windowize(segmentsOf(read.sessions, prep), prep, prep, []);
  let out: Float64Array;
  try {
    out = await model.predictWindows(w.x);
  } catch (e) {
    // A window refused for its values (beyond float32 once normalised): say which in the body's terms.
    const d = e instanceof MedfitError ? e.details[0] : undefined;
    if (!d?.pointer.startsWith('/windows/')) throw e;
    throw Errors.badAt('/samples', `${d.message} once normalised, in window ${d.pointer.slice('/windows/'.length)} (counting from 0) of this request`);
  }
  const preds = formatPredictions(model.classes, out, w.x.rows, model.outputs);
  const isoBySession = new Map<string, boolean>();
  for (const [s, iso] of read.iso) isoBySession.set(`${s.subject}\u0000${s.session}`, iso);
  const time = (seconds: number, iso: boolean): string | number =>
    iso ? new Date(Math.round(seconds * 1000)).toISOString() : prep.timeUnit === 'ms' ? Math.round(seconds * 1e6) / 1e3 : Math.round(seconds * 1e6) / 1e6;
  const predictions = preds.map((p, i) => {
    const info = w.info[i]!;
    const iso = isoBySession.get(`${info.subject}\u0000${info.session}`) ?? false;
    return {
      ...(read.named.subject ? { subject: info.subject } : {}),
      ...(read.named.session ? { session: info.session } : {}),
      start: time(info.start, iso),
      end: time(info.end, iso),
      ...p,
    } as WindowPredictionJson;
  });
  return { predictions, warnings: [...warnings, ...windowWarnings(w)], windows: w.x.rows };
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
