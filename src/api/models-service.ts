import { join } from 'node:path';
import { Errors, MedfitError, type RawRecord, type Task, type Warning } from '../core/index.js';
import { transformRecords, type FittedPipeline } from '../data/index.js';
import { formatPredictions, loadArtifactOnnx, loadUpload, readArtifactDetails, readUploadInfo, type Manifest, type Prediction, type UploadInfo } from '../registry/index.js';
import { ModelCache, loadRuntimeModel, type LoadedModel as Runtime, type OutputTensor, type RuntimeStats, type TensorMetadata } from '../serve/index.js';
import type { MetadataStore, ModelVersionRecord } from '../store/index.js';

/** How long a model's version list is trusted without asking the store again. */
const VERSIONS_TTL_MS = 1000;

/** A version's stored description, read and verified by the registry. */
export type VersionDetails = { source: 'uploaded'; info: UploadInfo } | { source: 'trained'; manifest: Manifest; evaluation: unknown };

/** An error's message with its causes (ONNX Runtime's own words among them): for the server log only. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause !== undefined ? `${e.message}: ${describe(e.cause)}` : e.message;
}

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
    return { predictions: formatPredictions(m.task === 'regression' ? undefined : m.classes, out!.data, x.rows), warnings };
  }

  /**
   * Runs features through a version's session. A session evicted from the cache between lookup
   * and run refuses with "unavailable"; the request then goes once more, to a fresh load.
   */
  async infer(rec: ModelVersionRecord, features: Float32Array, rows: number, loaded?: ServedModel): Promise<OutputTensor[]> {
    try {
      return await (loaded ?? (await this.load(rec))).infer(features, rows);
    } catch (e) {
      if (!(e instanceof MedfitError) || e.code !== 'MEDFIT_ERR_UNAVAILABLE') throw e;
      return (await this.load(rec)).infer(features, rows);
    }
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
      this.logError(`model ${name} v${version} cannot be loaded: ${describe(e)}`, e);
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
      this.logError(`model ${rec.name} v${rec.version} cannot be read: ${describe(e)}`, e);
      throw Errors.internal(`model "${rec.name}" version ${rec.version} cannot be read; the server log has the details`);
    }
  }

  /** Loads a version through the registry: the ONNX bytes served are the ones whose hash was checked. */
  private async open(record: ModelVersionRecord): Promise<ServedModel> {
    const dir = join(this.dataDir, record.dir);
    const onEngineError = (e: unknown) => this.logError(`model ${record.name} v${record.version}: ONNX Runtime failed: ${describe(e)}`, e);
    if (record.source === 'uploaded') {
      const { info, onnx } = loadUpload(dir, this.options);
      const runtime = await loadRuntimeModel(onnx, { inputs: info.inputs, outputs: info.outputs }, { onEngineError });
      return served(runtime, { record, task: info.task, classes: info.classes, pipeline: undefined, features: info.features });
    }
    const { manifest: m, onnx } = loadArtifactOnnx(dir, this.options);
    const runtime = await loadRuntimeModel(onnx, m.signature, { onEngineError });
    return served(runtime, { record, task: m.task, classes: m.target.classes, pipeline: m.pipeline, features: m.pipeline.features });
  }
}

function served(runtime: Runtime, meta: Omit<ServedModel, 'inputs' | 'outputs' | 'infer' | 'close' | 'stats'>): ServedModel {
  return { inputs: runtime.inputs, outputs: runtime.outputs, infer: (f, rows) => runtime.infer(f, rows), close: () => runtime.close(), stats: () => runtime.stats(), ...meta };
}

/** Uploaded models take records of numbers by feature name, in the declared order. */
function numericRecords(features: string[], records: RawRecord[]): { x: { rows: number; data: Float64Array }; warnings: Warning[] } {
  const data = new Float64Array(records.length * features.length);
  const problems: { pointer: string; message: string }[] = [];
  records.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) {
      problems.push({ pointer: `/records/${i}`, message: 'expected an object of feature values' });
      return;
    }
    features.forEach((f, j) => {
      const v = Object.hasOwn(r, f) ? r[f] : undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) problems.push({ pointer: `/records/${i}/${f}`, message: v === undefined ? 'is missing (uploaded models need every feature)' : 'expected a finite number' });
      else data[i * features.length + j] = v;
    });
  });
  if (problems.length) throw Errors.badFields(problems);
  return { x: { rows: records.length, data }, warnings: [] };
}
