import { trainTable } from '../automl/index.js';
import { Errors, type ProgressFn } from '../core/index.js';
import { formatFromPath, readTable } from '../data/index.js';
import type { Family } from '../models/index.js';
import { saveArtifact } from '../registry/index.js';
import { buildManifest, toJobResult } from './manifest.js';
import type { TrainJobResult, TrainJobSpec } from './types.js';

/**
 * Runs one training job in the calling thread: reads the dataset, trains as `medfit train` does,
 * saves the model directory to `spec.outDir` (atomically) and returns the job's summary. The
 * worker thread calls this; it is exported for callers that want no thread. `manifestKey` signs
 * the manifest (MEDFIT_MANIFEST_KEY).
 */
export async function runTrainJob(spec: TrainJobSpec, opts: { onProgress?: ProgressFn; signal?: AbortSignal; manifestKey?: string | undefined } = {}): Promise<TrainJobResult> {
  // Read under the dataset's name, so every error message names the dataset and never the
  // server's storage path. The format is the one the upload was read with, when known.
  const format = spec.format ?? formatFromPath(spec.datasetPath) ?? formatFromPath(spec.datasetName);
  const table = await readTable(spec.datasetPath, { source: spec.datasetName, hash: true, ...(format ? { format } : {}) });
  // The manifest records the SHA-256 of the bytes trained on; they must be the bytes uploaded.
  if (table.sha256 !== spec.lineage.datasetSha256) {
    throw Errors.badData(spec.datasetName, 'the stored dataset no longer matches the SHA-256 recorded at upload; upload it again');
  }
  const seed = spec.seed ?? 0;
  const result = await trainTable(table, {
    target: spec.target,
    task: spec.task ?? 'auto',
    model: spec.model ?? 'auto',
    ...(spec.group !== undefined ? { group: spec.group } : {}),
    ignore: spec.ignore ?? [],
    ...(spec.cv !== undefined ? { cv: spec.cv } : {}),
    ...(spec.nested ? { nested: true } : {}),
    seed,
    // Family names are checked by trainTable (an unknown one is a MEDFIT_ERR_BAD_PARAM).
    params: (spec.params ?? {}) as Partial<Record<Family, Record<string, unknown>>>,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  saveArtifact(spec.outDir, buildManifest(result, { source: spec.datasetName, sha256: table.sha256, seed }), result.model, result.report, { key: opts.manifestKey });
  return toJobResult(result, spec.outDir);
}
