import { parseBudget, trainSequence, trainTable } from '../automl/index.js';
import { Errors, type ProgressFn } from '../core/index.js';
import { formatFromPath, readTable, type Table } from '../data/index.js';
import type { Family, SequenceFamily } from '../models/index.js';
import { saveArtifact } from '../registry/index.js';
import { defaultColumn, detectRate, lengthSteps, noDefaultColumn, readFilter, readLength, readSessions, type ChannelFilter, type SequenceColumns } from '../sequence/index.js';
import { buildManifest, buildSequenceManifest, toJobResult } from './manifest.js';
import type { SequenceJobOptions, TrainJobResult, TrainJobSpec } from './types.js';

/**
 * Runs one training job in the calling thread: reads the dataset, trains as `medfit train` does
 * (`medfit train --sequence` when `spec.sequence` is set), saves the model directory to
 * `spec.outDir` (atomically) and returns the job's summary. The worker thread calls this; it is
 * exported for callers that want no thread. `manifestKey` signs the manifest (MEDFIT_MANIFEST_KEY).
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
  if (spec.sequence) return runSequenceJob(spec, spec.sequence, table, opts);
  if (typeof spec.target !== 'string') throw Errors.badParam('target', 'a table model learns one target column; several targets need a sequence job');
  const seed = spec.seed ?? 0;
  // A table a feature spec made: its patient column is an identifier, its label never a feature of another target.
  // Imported only then: the FHIR room (fhirpath and its R4 model) costs a third of a second to load.
  const roles = spec.fhir ? (await import('../fhir/index.js')).trainingRoles(spec.fhir.features, spec.target) : undefined;
  const result = await trainTable(table, {
    target: spec.target,
    task: spec.task ?? 'auto',
    model: (spec.model ?? 'auto') as Parameters<typeof trainTable>[1]['model'],
    ...(spec.group !== undefined ? { group: spec.group } : {}),
    ignore: [...(spec.ignore ?? []), ...(roles?.ignore ?? [])],
    ...(roles ? { types: roles.types } : {}),
    ...(spec.cv !== undefined ? { cv: spec.cv } : {}),
    ...(spec.nested ? { nested: true } : {}),
    ...(spec.strict ? { strict: true } : {}),
    ...(spec.budget !== undefined ? { budget: budgetSeconds(spec.budget) } : {}),
    ...(spec.calibrate !== undefined ? { calibrate: spec.calibrate } : {}),
    seed,
    // Family names are checked by trainTable (an unknown one is a MEDFIT_ERR_BAD_PARAM).
    params: (spec.params ?? {}) as Partial<Record<Family, Record<string, unknown>>>,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  saveArtifact(spec.outDir, buildManifest(result, { source: spec.datasetName, sha256: table.sha256, seed, fhir: spec.fhir }), result.model, result.report, { key: opts.manifestKey });
  return toJobResult(result, spec.outDir);
}

/** A job's budget in seconds (the API checked it; a spec from elsewhere is checked again). */
function budgetSeconds(value: number | string): number {
  const b = parseBudget(value);
  if (typeof b === 'string') throw Errors.badParam('budget', `expected ${b}`);
  return b;
}

/** A sequence option's problem as a parameter error naming `sequence.<option>`. */
function bad(option: string, message: string): never {
  throw Errors.badParam(`sequence.${option}`, message);
}

/**
 * The stream's columns of a sequence job: those it names, else the usual names (as
 * `medfit train --sequence` picks them).
 */
function sequenceColumns(columns: readonly string[], o: SequenceJobOptions, targets: string[], ignore: string[] = []): SequenceColumns {
  const subject = o.subject ?? defaultColumn(columns, 'subject') ?? bad('subject', noDefaultColumn('subject'));
  const time = o.time ?? defaultColumn(columns, 'time') ?? bad('time', noDefaultColumn('time'));
  const session = o.session ?? defaultColumn(columns, 'session');
  return {
    subject,
    time,
    ...(session !== undefined ? { session } : {}),
    targets,
    ...(o.channels !== undefined ? { channels: o.channels } : {}),
    ...(ignore.length ? { ignore } : {}),
    ...(o.timeUnit !== undefined ? { timeUnit: o.timeUnit } : {}),
  };
}

function filterOf(v: string, rate: number): ChannelFilter {
  const f = readFilter(v, rate);
  return typeof f === 'string' ? bad('filter', f) : f;
}

/** Steps of a window or stride (samples, or a duration at `rate`). */
function steps(v: number | string, rate: number, option: 'window' | 'stride'): number {
  const l = readLength(v);
  const n = typeof l === 'string' ? l : lengthSteps(l, rate);
  return typeof n === 'string' ? bad(option, n) : n;
}

/** A sequence job: sessions → windows → leave-subjects-out CV over sequence families → the model directory. */
async function runSequenceJob(
  spec: TrainJobSpec,
  o: SequenceJobOptions,
  table: Table,
  opts: { onProgress?: ProgressFn; signal?: AbortSignal; manifestKey?: string | undefined },
): Promise<TrainJobResult> {
  const targets = typeof spec.target === 'string' ? [spec.target] : spec.target;
  const labels = spec.task === 'binary' || spec.task === 'multiclass';
  const data = readSessions(table, sequenceColumns(table.columns, o, targets, spec.ignore ?? []), { labels });
  const rate = o.rate ?? detectRate(data.sessions);
  const window = steps(o.window ?? '2.56s', rate, 'window');
  const stride = o.stride !== undefined ? steps(o.stride, rate, 'stride') : Math.max(1, Math.floor(window / 2));
  const seed = spec.seed ?? 0;
  const model = (spec.model ?? 'auto') as SequenceFamily | 'auto';
  const result = await trainSequence(data, {
    task: spec.task ?? 'auto',
    model,
    rate,
    window,
    stride,
    ...(o.maxGap !== undefined ? { maxGap: o.maxGap } : {}),
    ...(o.label !== undefined ? { label: o.label } : {}),
    ...(o.filter !== undefined ? { filter: filterOf(o.filter, rate) } : {}),
    ...(o.balance !== undefined ? { balance: o.balance } : {}),
    ...(o.sensorDropout !== undefined ? { sensorDropout: o.sensorDropout } : {}),
    ...(spec.cv !== undefined ? { cv: spec.cv } : {}),
    seed,
    params: (spec.params ?? {}) as Partial<Record<Family, Record<string, unknown>>>,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  saveArtifact(spec.outDir, buildSequenceManifest(result, { source: spec.datasetName, sha256: table.sha256!, seed }), result.model, result.report, { key: opts.manifestKey });
  return {
    artifactDir: spec.outDir,
    family: result.model.family,
    task: result.task,
    metrics: result.cv.metrics,
    leaderboard: result.leaderboard.map((c) => ({ family: c.family, params: c.params, metrics: c.metrics, seconds: c.seconds })),
    warnings: result.warnings.map((w) => w.message),
  };
}
