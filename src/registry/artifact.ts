import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Errors, writeDirAtomic, type Schema, type Task } from '../core/index.js';
import { validatePipeline, type FittedPipeline, type TargetEncoding } from '../data/index.js';
import { getFamily, onnxSignature, toOnnx, type Family, type ModelState, type OnnxSignature, type Params, type TrainedModel } from '../models/index.js';
import type { MetricSummary } from '../automl/index.js';

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
  pipeline: FittedPipeline;
  model: { family: Family; params: Params; nFeatures: number; nClasses: number };
  /** The tensors `model.onnx` takes and returns (what serving and the V2 protocol describe). */
  signature: OnnxSignature;
  metrics: { cv: { folds: number; metrics: Record<string, MetricSummary> }; selection: string };
  /** Lineage: what the model was made from. */
  dataset: { source: string; sha256: string; rows: number; rowsUsed: number };
  seed: number;
  created: string;
  engines: { medfit: string; node: string; [engine: string]: string };
  /** SHA-256 of each other file in the directory, so a changed or swapped file is noticed. */
  files: Record<string, string>;
  /** SHA-256 of this manifest's canonical JSON without this field: edits to it are noticed. */
  integrity: string;
}

/** What a caller of `saveArtifact` provides: the manifest less what saving computes. */
export type ManifestInput = Omit<Manifest, 'files' | 'integrity' | 'formatVersion' | 'signature'>;

/** A loaded model: its manifest and a runnable engine. */
export interface Artifact {
  dir: string;
  manifest: Manifest;
  model: TrainedModel;
}

/** SHA-256 hex digest. */
export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with object keys sorted, so a hash does not depend on key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/**
 * Writes a model directory atomically: everything goes to a hidden sibling first and is renamed
 * into place, so an interrupted save never leaves a half-written model at `dir`.
 */
export function saveArtifact(
  dir: string,
  manifest: ManifestInput,
  model: TrainedModel,
  evaluation?: unknown,
): Manifest {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw Errors.usage(`${dir} already exists and is not empty; choose another --out`);
  const files: Record<string, string | Uint8Array> = {
    [WEIGHTS_FILE]: JSON.stringify(model.toState()),
    [ONNX_FILE]: toOnnx(model),
    ...(evaluation !== undefined ? { [EVALUATION_FILE]: JSON.stringify(evaluation) } : {}),
  };
  const signature = onnxSignature(model.task, model.nFeatures, model.nClasses);
  const hashes = Object.fromEntries(Object.entries(files).map(([f, data]) => [f, sha256(data)]));
  const body = { formatVersion: FORMAT_VERSION, ...manifest, signature, files: hashes };
  const full: Manifest = { ...body, integrity: sha256(canonical(body)) };
  writeDirAtomic(dir, { ...files, [MANIFEST_FILE]: JSON.stringify(full, null, 2) + '\n' });
  return full;
}

/**
 * Loads and verifies a model directory: the format version, the manifest's integrity hash, each
 * file's hash, and that the weights fit the manifest. Any mismatch is refused with what is wrong.
 */
export function loadArtifact(dir: string): Artifact {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) throw Errors.manifest(dir, `no ${MANIFEST_FILE}: not a medfit model directory`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch {
    throw Errors.manifest(dir, `${MANIFEST_FILE} is not valid JSON`);
  }
  if (!manifest || typeof manifest !== 'object') throw Errors.manifest(dir, `${MANIFEST_FILE} is not an object`);
  if (manifest.formatVersion !== FORMAT_VERSION) {
    throw Errors.manifest(dir, `format version ${String(manifest.formatVersion)} is not supported (this medfit reads version ${FORMAT_VERSION}); retrain or use the medfit that saved it`);
  }
  const { integrity, ...body } = manifest;
  if (typeof integrity !== 'string' || sha256(canonical(body)) !== integrity) {
    throw Errors.manifest(dir, `${MANIFEST_FILE} was changed after it was saved (integrity hash mismatch)`);
  }
  for (const [file, hash] of Object.entries(manifest.files ?? {})) {
    const p = join(dir, file);
    if (basename(file) !== file || !existsSync(p)) throw Errors.manifest(dir, `${file} is missing`);
    if (sha256(readFileSync(p)) !== hash) throw Errors.manifest(dir, `${file} does not match its SHA-256 in ${MANIFEST_FILE}`);
  }
  try {
    validatePipeline(manifest.pipeline);
  } catch (e) {
    throw Errors.manifest(dir, e instanceof Error ? e.message : String(e));
  }
  const state = JSON.parse(readFileSync(join(dir, WEIGHTS_FILE), 'utf8')) as ModelState;
  const m = manifest.model;
  if (state.family !== m.family || state.nFeatures !== m.nFeatures || state.nFeatures !== manifest.pipeline.features.length) {
    throw Errors.manifest(dir, `${WEIGHTS_FILE} (${state.family}, ${state.nFeatures} features) does not match the manifest (${m.family}, ${m.nFeatures} features)`);
  }
  const model = getFamily(m.family).load(state);
  return { dir, manifest, model };
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
