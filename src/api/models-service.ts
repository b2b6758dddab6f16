import { join } from 'node:path';
import { Errors, MedfitError, errorChain, type RawRecord, type Task, type Warning } from '../core/index.js';
import { Problems, transformRecords, type FittedPipeline } from '../data/index.js';
import { formatPredictions, loadArtifactOnnx, loadUpload, readArtifactDetails, readUploadInfo, type Manifest, type Prediction, type UploadInfo } from '../registry/index.js';
import { ModelCache, UPLOAD_SERVING_LIMITS, loadRuntimeModel, type LoadedModel as Runtime, type OutputTensor, type RuntimeStats, type TensorMetadata } from '../serve/index.js';
import type { MetadataStore, ModelVersionRecord } from '../store/index.js';

/** Most feature values one prediction request may make (80 MB of float64). */
const MAX_PREDICT_VALUES = 10_000_000;

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
  features: string[];
}

/**
 * Resolves model names and versions within a project, keeps ONNX Runtime sessions in a bounded
 * cache, and runs predictions on raw records (pipeline server-side, then ONNX Runtime).
 */
export class ModelService {
  private readonly cache: ModelCache<ServedModel>;
  private readonly versionLists = new Map<string, { list: ModelVersionRecord[]; until: number }>();
  private readonly invalidationListeners: Array<() => void> = [];

  constructor(
    private readonly store: MetadataStore,
    private readonly dataDir: string,
    cacheSize: number,
    private readonly logError: (message: string, err: unknown) => void = () => {},
    /** `key`: MEDFIT_MANIFEST_KEY, which stored manifests and upload records must be signed with. */
    private readonly options: { key?: string | undefined } = {},
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

  /** Forgets the cached version list of a model (a version was added or restaged). */
  invalidate(projectId: string, name: string): void {
    this.versionLists.delete(`${projectId}\u0000${name}`);
    for (const listener of this.invalidationListeners) listener();
  }

  /** Calls `listener` whenever a model's versions change (for caches built on `resolve`). */
  onInvalidate(listener: () => void): void {
    this.invalidationListeners.push(listener);
  }

  /** The loaded model of a version (from the cache, or loaded and verified once). */
  load(rec: ModelVersionRecord): Promise<ServedModel> {
    return this.cache.get(`${rec.projectId}\u0000${rec.name}\u0000${rec.version}`);
  }

  /** Predicts raw records with a version; a wrong type or a record without features is a 422. */
  async predict(rec: ModelVersionRecord, records: RawRecord[]): Promise<{ predictions: Prediction[]; warnings: Warning[] }> {
    const m = await this.load(rec);
    // Records × features is what gets allocated: bounded before anything is.
    if (records.length * m.features.length > MAX_PREDICT_VALUES) {
      throw Errors.tooLarge(`${records.length} records of ${m.features.length} features are more than one request may hold (${MAX_PREDICT_VALUES} values); send them in smaller requests`);
    }
    const { x, warnings } = m.pipeline ? transformRecords(m.pipeline, records) : numericRecords(m.features, records);
    const features = new Float32Array(x.data);
    // Models run in float32: a value beyond its range would come back as a confident 0 or 1.
    const bad = features.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const row = Math.floor(bad / m.features.length);
      const column = m.features[bad % m.features.length]!.split(/__|=/)[0]!;
      throw Errors.badFields([{ pointer: `/records/${row}/${column}`, message: "value is out of the model's range (float32, about ±3.4e38)" }]);
    }
    const [out] = await this.infer(rec, features, x.rows, m);
    const width = m.task === 'regression' ? 1 : m.classes!.length;
    if (out!.data.length !== x.rows * width) {
      // Our own models always answer rows × width; a brought-in one may not, on some inputs.
      const what = `returned ${out!.data.length} values for ${x.rows} records of ${width} output(s) each`;
      if (rec.source === 'uploaded') throw Errors.badData('', `the uploaded model ${what}`);
      throw Errors.internal(`model "${rec.name}" version ${rec.version} ${what}`);
    }
    return { predictions: formatPredictions(m.task === 'regression' ? undefined : m.classes, out!.data, x.rows), warnings };
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
  details(rec: ModelVersionRecord): VersionDetails {
    const dir = join(this.dataDir, rec.dir);
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
    const dir = join(this.dataDir, record.dir);
    // ONNX Runtime's message on a failed run can quote the input (an index, a value): only its
    // kind is logged, never its text.
    const onEngineError = (e: unknown) => this.logError(`model ${record.name} v${record.version}: ONNX Runtime failed to run it (${e instanceof Error ? e.name : typeof e}; its message is not logged, it may hold input values)`, undefined);
    if (record.source === 'uploaded') {
      const { info, onnx } = loadUpload(dir, this.options);
      const runtime = await loadRuntimeModel(onnx, { inputs: info.inputs, outputs: info.outputs }, { onEngineError });
      return served(runtime, { record, task: info.task, classes: info.classes, pipeline: undefined, features: info.features });
    }
    const { manifest: m, onnx } = loadArtifactOnnx(dir, this.options);
    const runtime = await loadRuntimeModel(onnx, m.signature, { onEngineError });
    return served(runtime, { record, task: m.task, classes: m.target.classes, pipeline: m.pipeline, features: m.pipeline?.features ?? m.sequence!.channels });
  }
}

function served(runtime: Runtime, meta: Omit<ServedModel, 'inputs' | 'outputs' | 'infer' | 'close' | 'stats'>): ServedModel {
  return { inputs: runtime.inputs, outputs: runtime.outputs, infer: (f, rows) => runtime.infer(f, rows), close: () => runtime.close(), stats: () => runtime.stats(), ...meta };
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
