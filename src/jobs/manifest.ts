/**
 * The manifest of a trained model and the summary a job hands back, built in one place so that
 * `medfit train` and the job queue write the same model directory.
 */
import type { SequenceTrainResult, TrainResult } from '../automl/index.js';
import { VERSION, type ColumnSchema } from '../core/index.js';
import type { saveArtifact } from '../registry/index.js';
import type { FhirLineage, TrainJobResult } from './types.js';

/**
 * The manifest fields a caller supplies; `saveArtifact` adds the rest (format version, file
 * hashes, integrity, ONNX signature). Taken from its signature so the two cannot drift apart.
 */
export type ArtifactManifest = Parameters<typeof saveArtifact>[1];

/** Where the training data came from, for the manifest's lineage. */
export interface ManifestInfo {
  /** Name of the dataset as users know it (a file's base name, an uploaded dataset's name). */
  source: string;
  /** SHA-256 of the dataset file's bytes. */
  sha256: string;
  seed: number;
  /** Defaults to now. */
  created?: Date;
  /** A table imported from FHIR: the spec that made it (FHIR predictions and CDS Hooks evaluate it again). */
  fhir?: FhirLineage | undefined;
}

/**
 * The manifest `saveArtifact` takes for a training result: task, target, schema, pipeline,
 * family and parameters, CV metrics, the explanations' reference (the training means of the
 * model's features), dataset lineage, seed, creation time and engine versions.
 * A multi-output regression also records `model.nOutputs`, its target columns joined by commas
 * in `target.column`, and each output's metrics in `metrics.cv.outputs`.
 */
export function buildManifest(result: TrainResult, info: ManifestInfo): ArtifactManifest {
  const m = result.model;
  return {
    task: result.task,
    target: result.target,
    schema: result.schema,
    pipeline: result.pipeline,
    // nOutputs only for a multi-output regression, so single-output manifests are unchanged.
    model: { family: m.family, params: m.params, nFeatures: m.nFeatures, nClasses: m.nClasses, ...((m.nOutputs ?? 1) > 1 ? { nOutputs: m.nOutputs! } : {}) },
    // `cv.outputs` (each output's metrics) comes with `cv` when there are several.
    metrics: { cv: result.cv, selection: result.selection, ...(result.nested ? { nested: result.nested } : {}) },
    // The training means the explanations of linear models and networks are measured from.
    explain: { reference: [...result.explainReference] },
    ...(info.fhir ? { fhir: info.fhir } : {}),
    dataset: { source: info.source, sha256: info.sha256, rows: result.rows.total, rowsUsed: result.rows.used },
    seed: info.seed,
    created: (info.created ?? new Date()).toISOString(),
    engines: { medfit: VERSION, node: process.versions.node },
  };
}

/**
 * The plain, structured-cloneable summary of a training result that a job posts back: no model,
 * pipeline or out-of-fold arrays, only what a job record shows.
 */
export function toJobResult(result: TrainResult, artifactDir: string): TrainJobResult {
  return {
    artifactDir,
    family: result.model.family,
    task: result.task,
    metrics: result.cv.metrics,
    ...(result.nested ? { nested: result.nested } : {}),
    leaderboard: result.leaderboard.map((c) => ({
      family: c.family,
      params: c.params,
      metrics: c.metrics,
      seconds: c.seconds,
      ...(c.trial !== undefined ? { trial: c.trial } : {}),
      ...(c.folds !== undefined ? { folds: c.folds } : {}),
      ...(c.searched ? { searched: true } : {}),
    })),
    warnings: result.warnings.map((w) => w.message),
    leakage: { findings: result.leakage.findings, ...(result.leakage.rescore ? { rescore: result.leakage.rescore } : {}) },
  };
}

/**
 * The manifest of a sequence model: its sequence preparation instead of a table pipeline, a
 * schema naming the stream's columns and their parts, and the test scores when there were any.
 */
export function buildSequenceManifest(result: SequenceTrainResult, info: ManifestInfo): ArtifactManifest {
  const m = result.model;
  const p = result.prep;
  const columns: ColumnSchema[] = [
    { name: p.columns.subject, type: 'identifier', role: 'ignored', reason: 'subject' },
    ...(p.columns.session !== undefined ? [{ name: p.columns.session, type: 'identifier' as const, role: 'ignored' as const, reason: 'session' }] : []),
    { name: p.columns.time, type: p.timeUnit === 'iso' ? 'datetime' : 'numeric', role: 'ignored', reason: 'time' },
    ...p.channels.map((name) => ({ name, type: 'numeric' as const, role: 'feature' as const })),
    ...p.targets.map((t) => ({ name: t.name, type: t.kind === 'class' ? ('categorical' as const) : ('numeric' as const), role: 'target' as const })),
  ];
  return {
    task: result.task,
    target: result.target,
    schema: { columns },
    sequence: p,
    model: { family: m.family, params: m.params, nFeatures: m.nFeatures, nClasses: m.nClasses, ...((m.nOutputs ?? 1) > 1 ? { nOutputs: m.nOutputs! } : {}) },
    metrics: {
      cv: result.cv,
      selection: result.selection,
      ...(result.test ? { test: { rows: result.test.rows, metrics: result.test.metrics, ...(result.test.outputs ? { outputs: result.test.outputs } : {}) } } : {}),
    },
    dataset: { source: info.source, sha256: info.sha256, rows: result.rows.total, rowsUsed: result.rows.used },
    seed: info.seed,
    created: (info.created ?? new Date()).toISOString(),
    engines: { medfit: VERSION, node: process.versions.node },
  };
}
