import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Errors, MedfitError, writeDirAtomic, type Schema, type Task } from '../core/index.js';
import { validatePipeline, type FittedPipeline, type TargetEncoding } from '../data/index.js';
import type { Family, ModelState, OnnxSignature, Params, TrainedModel } from '../models/index.js';
import { loadModel, modelSignature, modelToOnnx, type MetricSummary, type NestedEstimate, type OutputMetrics } from '../automl/index.js';
import { validateSequencePrep, type SequencePrep } from '../sequence/index.js';
import type { FeatureSpec } from '../fhir/index.js';
import { seal, sha256, verifySeal, type IntegrityAlgorithm, type IntegrityOptions } from './integrity.js';

/** Version of the artifact layout; `loadArtifact` refuses any other. */
export const FORMAT_VERSION = 1;

/** The files of a model directory. */
export const MANIFEST_FILE = 'manifest.json';
export const WEIGHTS_FILE = 'weights.json';
export const ONNX_FILE = 'model.onnx';
export const EVALUATION_FILE = 'evaluation.json';

/** `manifest.json`: everything needed to trust, explain and run a saved model. */
export interface Manifest {
  formatVersion: number;
  task: Task;
  target: TargetEncoding;
  /** The input schema the model was trained on (types and roles of every column). */
  schema: Schema;
  /** The fitted feature pipeline of a table model (absent for a sequence model). */
  pipeline?: FittedPipeline;
  /** How raw samples become windows, for a sequence model (absent for a table model). */
  sequence?: SequencePrep;
  model: { family: Family; params: Params; nFeatures: number; nClasses: number; nOutputs?: number };
  /** The tensors `model.onnx` takes and returns (what serving and the V2 protocol describe). */
  signature: OnnxSignature;
  /** Cross-validated metrics of the chosen family; `nested`: the nested estimate of the whole choice, when asked for. */
  metrics: {
    cv: { folds: number; metrics: Record<string, MetricSummary>; outputs?: OutputMetrics };
    selection: string;
    nested?: NestedEstimate;
    /** Scores on a separate test file (`--test`), by the model refitted on all training data. */
    test?: { rows: number; metrics: Record<string, number>; outputs?: Record<string, Record<string, number>> };
  };
  /**
   * What per-prediction explanations are measured from: `reference`, the mean of each model
   * feature (after the pipeline) over the training rows (linear models' and the sampling Shapley
   * estimate's baseline). Means only, never a row. Absent in models trained before explanations.
   */
  explain?: { reference: number[] };
  /**
   * A model trained from FHIR resources through a feature spec: the spec (so FHIR predictions and
   * CDS Hooks evaluate the same features) and whether its training data was de-identified.
   */
  fhir?: { features: FeatureSpec; deidentified: boolean };
  /** Lineage: what the model was made from. */
  dataset: { source: string; sha256: string; rows: number; rowsUsed: number };
  seed: number;
  created: string;
  engines: { medfit: string; node: string; [engine: string]: string };
  /** SHA-256 of each other file in the directory, so a changed or swapped file is noticed. */
  files: Record<string, string>;
  /** How `integrity` was computed; absent in manifests saved before signing existed (SHA-256). */
  integrityAlgorithm?: IntegrityAlgorithm;
  /**
   * SHA-256 of this manifest's canonical JSON without this field (edits are noticed), or its
   * HMAC-SHA256 with `MEDFIT_MANIFEST_KEY` (edits without the key are refused).
   */
  integrity: string;
}

/** What a caller of `saveArtifact` provides: the manifest less what saving computes. */
export type ManifestInput = Omit<Manifest, 'files' | 'integrity' | 'integrityAlgorithm' | 'formatVersion' | 'signature'>;

/** A loaded model: its manifest and a runnable engine. */
export interface Artifact {
  dir: string;
  manifest: Manifest;
  model: TrainedModel;
}

/**
 * Writes a model directory atomically (through a hidden sibling and a rename, so an interrupted
 * save never leaves a half-written model at `dir`), with the manifest sealed: signed with
 * `options.key` when given, else hashed.
 */
export function saveArtifact(dir: string, manifest: ManifestInput, model: TrainedModel, evaluation?: unknown, options: IntegrityOptions = {}): Manifest {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw Errors.usage(`${dir} already exists and is not empty; choose another --out`);
  const files: Record<string, string | Uint8Array> = {
    [WEIGHTS_FILE]: JSON.stringify(model.toState()),
    [ONNX_FILE]: modelToOnnx(model),
    ...(evaluation !== undefined ? { [EVALUATION_FILE]: JSON.stringify(evaluation) } : {}),
  };
  const signature = modelSignature(model);
  const hashes = Object.fromEntries(Object.entries(files).map(([f, data]) => [f, sha256(data)]));
  const full: Manifest = seal({ formatVersion: FORMAT_VERSION, ...manifest, signature, files: hashes }, options);
  writeDirAtomic(dir, { ...files, [MANIFEST_FILE]: JSON.stringify(full, null, 2) + '\n' });
  return full;
}

/** Reads `manifest.json` and checks its format version and integrity (signature with a key). */
function readManifest(dir: string, options: IntegrityOptions): Manifest {
  const manifest = readJsonObject(dir, MANIFEST_FILE, 'a medfit model directory') as unknown as Manifest;
  if (manifest.formatVersion !== FORMAT_VERSION) {
    throw Errors.manifest(dir, `format version ${String(manifest.formatVersion)} is not supported (this medfit reads version ${FORMAT_VERSION}); retrain or use the medfit that saved it`);
  }
  verifySeal(manifest as unknown as Record<string, unknown>, dir, MANIFEST_FILE, options);
  if (!manifest.files || typeof manifest.files !== 'object') throw Errors.manifest(dir, `${MANIFEST_FILE} lists no files`);
  return manifest;
}

/**
 * A model directory's JSON record (`manifest.json`, `upload.json`) as an object, or an error
 * naming what is wrong: absent (`dir` is then not `what`), not JSON, not an object.
 */
export function readJsonObject(dir: string, file: string, what: string): Record<string, unknown> {
  const path = join(dir, file);
  if (!existsSync(path)) throw Errors.manifest(dir, `no ${file}: not ${what}`);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw Errors.manifest(dir, `${file} is not valid JSON`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw Errors.manifest(dir, `${file} is not an object`);
  return doc as Record<string, unknown>;
}

/**
 * Reads one file of a model directory and checks it against its SHA-256 in the (verified)
 * manifest; returns the bytes that were checked, so nothing can change between check and use.
 */
export function readVerifiedFile(dir: string, files: Record<string, string>, file: string, listedIn = MANIFEST_FILE): Buffer {
  const hash = Object.hasOwn(files, file) ? files[file] : undefined;
  if (typeof hash !== 'string') throw Errors.manifest(dir, `${file} is not listed in ${listedIn}`);
  const p = join(dir, file);
  if (basename(file) !== file || !existsSync(p)) throw Errors.manifest(dir, `${file} is missing`);
  const bytes = readFileSync(p);
  if (sha256(bytes) !== hash) throw Errors.manifest(dir, `${file} does not match its SHA-256 in ${listedIn}`);
  return bytes;
}

/** Checks the manifest's pipeline (table model) or sequence preparation (sequence model) against its input width. */
function checkPipeline(dir: string, manifest: Manifest): void {
  if (manifest.sequence !== undefined) {
    const prep = validateSequencePrep(manifest.sequence, dir);
    if (prep.window * prep.channels.length !== manifest.model.nFeatures) throw Errors.manifest(dir, `the sequence preparation (${prep.window} steps × ${prep.channels.length} channels) does not match the model's ${manifest.model.nFeatures} inputs`);
    return;
  }
  if (manifest.pipeline === undefined) throw Errors.manifest(dir, 'has neither a feature pipeline nor a sequence preparation');
  try {
    validatePipeline(manifest.pipeline);
  } catch (e) {
    throw Errors.manifest(dir, e instanceof Error ? e.message : String(e));
  }
  if (manifest.pipeline.features.length !== manifest.model.nFeatures) throw Errors.manifest(dir, `the pipeline's ${manifest.pipeline.features.length} features do not match the model's ${manifest.model.nFeatures} inputs`);
}

/**
 * Loads and verifies a model directory: the format version, the manifest's integrity (its
 * signature when `options.key` is given), each file's hash, and that the weights fit the
 * manifest. Any mismatch is refused with what is wrong.
 */
export function loadArtifact(dir: string, options: IntegrityOptions = {}): Artifact {
  const manifest = readManifest(dir, options);
  const verified = new Map<string, Buffer>();
  for (const file of Object.keys(manifest.files)) verified.set(file, readVerifiedFile(dir, manifest.files, file));
  checkPipeline(dir, manifest);
  const weights = verified.get(WEIGHTS_FILE);
  if (!weights) throw Errors.manifest(dir, `${WEIGHTS_FILE} is not listed in ${MANIFEST_FILE}`);
  let state: ModelState;
  try {
    state = JSON.parse(weights.toString('utf8')) as ModelState;
  } catch {
    throw Errors.manifest(dir, `${WEIGHTS_FILE} is not valid JSON`);
  }
  const m = manifest.model;
  if (state.family !== m.family || state.nFeatures !== m.nFeatures) {
    throw Errors.manifest(dir, `${WEIGHTS_FILE} (${state.family}, ${state.nFeatures} features) does not match the manifest (${m.family}, ${m.nFeatures} features)`);
  }
  // The state is untrusted: loadModel checks it (an ensemble's members, a calibrator) and says
  // what is wrong, named with this directory.
  let model: TrainedModel;
  try {
    model = loadModel(state);
  } catch (e) {
    if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_MANIFEST') throw Errors.manifest(dir, e.message, e);
    throw e;
  }
  return { dir, manifest, model };
}

/**
 * What serving needs of a model directory: the verified manifest and the `model.onnx` bytes
 * whose hash was checked (the training engine's weights are not loaded).
 */
export function loadArtifactOnnx(dir: string, options: IntegrityOptions = {}): { manifest: Manifest; onnx: Uint8Array } {
  const manifest = readManifest(dir, options);
  const onnx = readVerifiedFile(dir, manifest.files, ONNX_FILE);
  checkPipeline(dir, manifest);
  return { manifest, onnx };
}

/**
 * A version's description: the verified manifest and its `evaluation.json` (hash-checked; null
 * when the model has none). The large files (weights, ONNX) are not read.
 */
export function readArtifactDetails(dir: string, options: IntegrityOptions = {}): { manifest: Manifest; evaluation: unknown } {
  const manifest = readManifest(dir, options);
  if (!Object.hasOwn(manifest.files, EVALUATION_FILE)) return { manifest, evaluation: null };
  const bytes = readVerifiedFile(dir, manifest.files, EVALUATION_FILE);
  try {
    return { manifest, evaluation: JSON.parse(bytes.toString('utf8')) as unknown };
  } catch {
    throw Errors.manifest(dir, `${EVALUATION_FILE} is not valid JSON`);
  }
}

/**
 * The next free version directory under `root/name`: `v1`, `v2`, ... Versions are never
 * overwritten, so a saved model stays reproducible from its manifest.
 */
export function nextVersionDir(root: string, name: string): string {
  const base = join(root, name);
  const taken = existsSync(base)
    ? readdirSync(base)
        .map((d) => /^v(\d+)$/.exec(d))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => Number(m[1]))
    : [];
  return join(base, `v${Math.max(0, ...taken) + 1}`);
}
