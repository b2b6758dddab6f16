import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { Errors, deserializeError, loggableError, readHead, serializeError, startWorker, streamToFileAtomic, tempSibling, writeFileAtomic, type SerializedError } from '../core/index.js';
import { WorkQueue } from './work-queue.js';
import { csvField, profileFileInWorker, readTable, withoutIdentifierValues, type Table, type TableFormat } from '../data/index.js';
import { SEQUENCE_COLUMN_DEFAULTS, defaultColumn } from '../sequence/index.js';
import type { DatasetRecord } from '../store/index.js';
import { fhirMediaKind, type FeatureSpec } from '../fhir/index.js';
import type { ColumnFacts, ColumnReport } from '../privacy/index.js';
import type { FhirLineage } from '../jobs/index.js';
import { requireScope } from './auth.js';
import { clientGone, limitedBody } from './drain.js';
import { fhirLineagePath, forgetDataset, localDataset, readFhirLineage, removeDataset, storeDataset, type Services } from './services.js';

const NAME = '^[A-Za-z0-9][A-Za-z0-9 _.()-]{0,127}$';

const datasetJson = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    format: { type: 'string' },
    rows: { type: 'integer' },
    bytes: { type: 'integer' },
    sha256: { type: 'string' },
    created: { type: 'string' },
    columns: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'string' }, missing: { type: 'integer' } } } },
    fhir: {
      type: 'object',
      description: 'a dataset imported from FHIR, in the upload\'s answer: how many resources were read, and whether they were de-identified',
      properties: { resources: { type: 'integer' }, deidentified: { type: 'boolean' }, features: { type: 'object', additionalProperties: true, description: 'the feature spec that made the table' } },
    },
    warnings: { type: 'array', items: { type: 'string' }, description: 'a FHIR import: feature columns no patient has a value of, a label no patient has' },
    deidentified: {
      type: 'array',
      description: 'a table uploaded with deidentify=true, in the upload\'s answer: each column the de-identification changed or dropped, and why',
      items: { type: 'object', properties: { column: { type: 'string' }, action: { type: 'string' }, reason: { type: 'string' } } },
    },
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;

/** Default and largest `points` of a series. */
const SERIES_DEFAULT_POINTS = 1000;
const SERIES_MAX_POINTS = 5000;

/** A session's series (`sequence.SessionSeries`): what `GET /v1/datasets/{id}/series` answers. */
const seriesJson = {
  type: 'object',
  required: ['subject', 'session', 'index', 'sessions', 'samples', 'bucket', 'start', 'timeUnit', 'seconds', 'channels'],
  properties: {
    subject: { type: 'string', description: 'the subject (its subject column\'s value), or "subject <k>" (k: its 0-based index in order of first appearance) when the profile flags the subject column as a possible identifier' },
    session: {
      type: 'string',
      description:
        'the session\'s name (its session column\'s value; empty when the table has no session column: each subject is one session), or "session <index>" when the subject is a pseudonym or the profile flags the session column as a possible identifier',
    },
    index: { type: 'integer', description: 'the session\'s index, as asked' },
    sessions: { type: 'integer', description: 'how many sessions the dataset has' },
    samples: { type: 'integer', description: 'samples in the session' },
    bucket: { type: 'integer', description: 'consecutive samples per bucket (1: every sample is shown)' },
    start: { type: 'number', description: 'time of the first sample, in seconds (since the epoch for absolute times)' },
    timeUnit: { type: 'string', enum: ['iso', 's', 'ms'], description: 'how the time column was read' },
    seconds: { type: 'array', items: { type: 'number' }, description: 'per bucket, the time of its first sample in seconds from start' },
    channels: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'min', 'max'],
        properties: {
          name: { type: 'string' },
          min: { type: 'array', items: { type: ['number', 'null'] }, description: 'per bucket, the smallest value (null: none present)' },
          max: { type: 'array', items: { type: ['number', 'null'] }, description: 'per bucket, the largest value' },
        },
      },
    },
    labels: {
      type: 'object',
      description: 'the label track, when the dataset has a label column: per bucket its most frequent label (null: none)',
      required: ['name', 'values'],
      properties: { name: { type: 'string' }, values: { type: 'array', items: { type: ['string', 'null'] } } },
    },
  },
} as const;

/** A query value that must be a whole number: the number, `fallback` when absent, undefined when malformed. */
function wholeNumber(raw: string | undefined, fallback: number): number | undefined {
  if (raw === undefined) return fallback;
  return /^[0-9]{1,10}$/.test(raw) ? Number(raw) : undefined;
}

function view(d: DatasetRecord) {
  return { id: d.id, name: d.name, format: d.format, rows: d.rows, bytes: d.bytes, sha256: d.sha256, columns: d.columns, created: d.created };
}

/** Content types that name a table format; anything else is sniffed from the bytes. */
const FORMAT_BY_TYPE: Record<string, TableFormat> = {
  'text/csv': 'csv',
  'application/csv': 'csv',
  'text/tab-separated-values': 'csv',
  'application/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
};

/** Content types of a Garmin FIT activity file. */
const FIT_TYPES = new Set(['application/vnd.ant.fit', 'application/fit', 'application/x-fit']);

/** What a FHIR import worker is given. */
interface FhirWorkerData {
  task: typeof FHIR_TASK;
  inPath: string;
  csvPath: string;
  kind: 'bundle' | 'ndjson';
  spec: FeatureSpec;
  /** The de-identification key (hex), absent when the caller asked for the resources as they are; never stored. */
  deidKey: string | undefined;
  source: string;
  maxCsvBytes: number;
}
const FHIR_TASK = 'medfit:fhir-import';
const FHIR_TIMEOUT_MS = 30 * 60 * 1000;
const FHIR_HEAP_MB = 2048;
/** How many times the upload limit a FHIR upload may inflate to (gzip). */
const FHIR_INFLATE = 16;

/** FHIR imports and table de-identifications at once (each reads a whole upload); a few wait their turn, more get a 503. */
const importGate = new WorkQueue({ concurrency: 1, queue: 4, refusal: 'too many FHIR imports and de-identifications are waiting; retry shortly' });

/**
 * The de-identification key of one project: the server's key (`MEDFIT_DEID_KEY`) and the project
 * through HMAC, so pseudonyms and date shifts of one project cannot be linked to another's, and a
 * project cannot make the pseudonym another project would give an id.
 */
function projectDeidKey(key: Buffer, projectId: string): string {
  return createHmac('sha256', key).update(`medfit:deid:project:${projectId}`).digest('hex');
}

/** Largest FIT file taken (the FIT reader's own bound). */
const FIT_MAX_BYTES = 64 * 1024 * 1024;

/** What a FIT conversion worker is given. */
interface FitWorkerData {
  task: typeof FIT_TASK;
  fitPath: string;
  csvPath: string;
  subject: string;
  session: string;
  source: string;
  /** Largest CSV written (the server's upload limit): past it the conversion stops with a 413. */
  maxCsvBytes: number;
}
/** What one of this module's workers answers. */
type WorkerMessage<T> = { result: T } | { error: SerializedError };
const FIT_TASK = 'medfit:fit-to-csv';
const FIT_TIMEOUT_MS = 10 * 60 * 1000;
const FIT_HEAP_MB = 4096;

/** FIT conversions at once (each may need gigabytes for a large file); more uploads wait their turn. */
const fitGate = new WorkQueue({ concurrency: 1, refusal: 'too many FIT conversions are waiting; retry shortly' });

/**
 * Runs this module as a worker thread's entry on `data` (its `task` says which; see the bottom
 * of the file) and resolves with its result. `name` words the worker in errors ("the FIT
 * conversion failed"), `doing` what it does ("reading the FIT file took longer than…"), `source`
 * names the dataset in user errors. A worker's own MedfitErrors pass through; anything else is a
 * plain internal error, its message (which may name server paths) left in the thread.
 */
async function runWorker<T>(
  data: { task: string },
  o: { name: string; doing: string; source: string; heapMb: number; timeoutMs: number; signal?: AbortSignal | undefined; gone?: () => Error },
): Promise<T> {
  const gone = o.gone ?? (() => Errors.cancelled(`the ${o.name}`));
  if (o.signal?.aborted) throw gone();
  const worker = startWorker(new URL(import.meta.url), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: o.heapMb } });
  let timer: NodeJS.Timeout | undefined;
  let stop: (() => void) | undefined;
  try {
    return await new Promise<T>((resolve, reject) => {
      timer = setTimeout(() => reject(Errors.badData(o.source, `${o.doing} took longer than ${Math.round(o.timeoutMs / 1000)} s; it was stopped`)), o.timeoutMs);
      // The caller went away: the worker is terminated below rather than left to finish for no one.
      if (o.signal) o.signal.addEventListener('abort', (stop = () => reject(gone())), { once: true });
      worker.once('message', (m: WorkerMessage<T>) => ('result' in m ? resolve(m.result) : reject(m.error.code === 'MEDFIT_ERR_INTERNAL' ? Errors.internal(`the ${o.name} failed`) : deserializeError(m.error))));
      worker.once('error', (e: Error & { code?: string }) =>
        reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? Errors.badData(o.source, `${o.doing} needed more than ${o.heapMb} MB of memory`) : Errors.internal(`the ${o.name} worker failed`, e)),
      );
      worker.once('exit', (code) => reject(Errors.internal(`the ${o.name} worker exited (code ${code}) without a result`)));
    });
  } finally {
    clearTimeout(timer);
    if (stop) o.signal!.removeEventListener('abort', stop);
    await worker.terminate();
  }
}

/**
 * Converts an uploaded FIT file to a long-format CSV dataset (`subject, session, t, <channels>`,
 * `t` in epoch milliseconds) in a worker thread: decoding a large FIT file takes seconds, which
 * must not hold up the event loop. This module is the worker's entry too (see the bottom).
 */
function fitToCsvInWorker(data: Omit<FitWorkerData, 'task'>): Promise<{ rows: number; bytes: number; sha256: string }> {
  return fitGate.run(() =>
    runWorker({ task: FIT_TASK, ...data } satisfies FitWorkerData, { name: 'FIT conversion', doing: 'reading the FIT file', source: data.source, heapMb: FIT_HEAP_MB, timeoutMs: FIT_TIMEOUT_MS }),
  );
}

/** What a series worker is given: the stored dataset, its stream's columns and the session asked for. */
interface SeriesWorkerData {
  task: typeof SERIES_TASK;
  path: string;
  /** The dataset's name, for messages. */
  source: string;
  format: TableFormat | undefined;
  /** The SHA-256 recorded at upload: the bytes read must still be those. */
  sha256: string;
  columns: { subject: string; session?: string; time: string };
  label: string | undefined;
  session: number;
  points: number;
  /** Name the subject by index, not by value: the subject column may identify a person. */
  pseudonymousSubject: boolean;
  /** Name the session by index: its column, or the subject's, may identify a person. */
  pseudonymousSession: boolean;
}
const SERIES_TASK = 'medfit:session-series';
const SERIES_TIMEOUT_MS = 5 * 60 * 1000;
const SERIES_HEAP_MB = 4096;
/** Values (buckets × channels) one series answer may hold: a very wide dataset gets fewer points, not a 100 MB answer. */
const SERIES_MAX_VALUES = 1_000_000;
/** Series read at once: each reads the whole dataset into memory. */
const SERIES_WORKERS = 2;
/** Series requests that may wait for a reader; past that a 503 with Retry-After. */
const SERIES_MAX_WAITING = 8;
/** Seconds a refused series request is told to wait (a series of a large dataset takes seconds). */
const SERIES_RETRY_AFTER_S = 5;
/** Most distinct values a label track's column may have: past that its values tell records apart rather than classes. */
const SERIES_MAX_LABELS = 50;
const seriesGate = new WorkQueue({
  concurrency: SERIES_WORKERS,
  queue: SERIES_MAX_WAITING,
  refusal: `${SERIES_MAX_WAITING} series requests are already waiting for the ${SERIES_WORKERS} series readers; retry shortly`,
  retryAfterS: SERIES_RETRY_AFTER_S,
});
/** What a series request that was dropped (its client went away) fails with; no one reads it. */
const seriesGone = () => Errors.cancelled('the series request (its client went away)');

/**
 * One session of a stored sensor dataset as a plot's series, as JSON text (`SessionSeries`),
 * computed in a worker thread: the whole file is read and grouped into sessions there, as a
 * training job reads it, so a large dataset never holds the event loop, and the answer crosses
 * back as one string that is sent as it is. When `signal` aborts (the client went away) the
 * request leaves the line, or its worker is terminated.
 */
function seriesInWorker(data: Omit<SeriesWorkerData, 'task'>, signal: AbortSignal): Promise<string> {
  return seriesGate.run(
    (sig) =>
      runWorker({ task: SERIES_TASK, ...data } satisfies SeriesWorkerData, {
        name: 'series reader',
        doing: 'reading the dataset',
        source: data.source,
        heapMb: SERIES_HEAP_MB,
        timeoutMs: SERIES_TIMEOUT_MS,
        signal: sig,
        gone: seriesGone,
      }),
    signal,
    seriesGone,
  );
}

/** What the series route reads of a stored profile's columns (`ColumnProfile` of the data room). */
interface ProfiledColumn {
  name: string;
  type: string;
  identifier?: string;
  distinct?: number;
  distinctApprox?: boolean;
}

/** A stored profile (`TableProfile` of the data room), as far as this module reads it. */
type StoredProfile = { columns: ProfiledColumn[]; target?: { column?: string; type?: string } } & Record<string, unknown>;

/** The stored profile of a dataset (written at upload), or null when there is none. */
async function storedProfile(s: Services, d: DatasetRecord): Promise<StoredProfile | null> {
  await localDataset(s.blobs, s.config.dataDir, d, 'sidecars');
  const path = join(s.config.dataDir, `${d.file}.profile.json`);
  if (!existsSync(path)) return null;
  return JSON.parse(await readFile(path, 'utf8')) as StoredProfile;
}

/**
 * Whether training would take `column` of `d` as a regression target (task `auto`), as far as
 * the stored profile tells: a numeric column of more than 10 distinct values (`encodeTarget`'s
 * rule); false when it cannot tell (no profile, or fewer values, where it depends on more).
 */
export async function regressionTarget(s: Services, d: DatasetRecord, column: string): Promise<boolean> {
  const c = (await storedProfile(s, d))?.columns.find((x) => x.name === column);
  return c !== undefined && (c.type === 'numeric' || c.type === 'integer') && (c.distinct ?? 0) > 10;
}

/**
 * A stored profile as it may be shown: a column flagged as a possible identifier without its
 * values. Profiles written since the data room leaves them out already; one stored before holds
 * them (top names, earliest and latest date of birth), and is answered without them.
 */
function shownProfile(p: StoredProfile | null): unknown {
  if (!p || !Array.isArray(p.columns)) return p;
  const columns = p.columns.map(withoutIdentifierValues);
  const target = p.target;
  const flaggedTarget = target !== undefined && p.columns.some((c) => c.name === target.column && c.identifier !== undefined);
  return { ...p, columns, ...(flaggedTarget ? { target: { column: target.column, type: target.type } } : {}) };
}

/**
 * Why column `c` cannot be a series' label track, or undefined when it can: a categorical or
 * boolean column, not flagged as a possible identifier, with at most `SERIES_MAX_LABELS` distinct
 * values. The label track shows a value per bucket, and with a bucket per sample that is every
 * record's value: a name, an id or a measurement would be exported row by row. Says why in
 * words of the column's name and profile only, never its values.
 */
function labelProblem(c: ProfiledColumn): string | undefined {
  if (c.type !== 'categorical' && c.type !== 'boolean') return `"${c.name}" is ${/^[aeiou]/.test(c.type) ? 'an' : 'a'} ${c.type} column; a label track takes a categorical or boolean column`;
  if (c.identifier !== undefined) return `"${c.name}" may identify a person (${c.identifier}); it is not shown as a label track`;
  if (c.distinct === undefined || c.distinctApprox || c.distinct > SERIES_MAX_LABELS) {
    return `"${c.name}" has ${c.distinct === undefined ? 'an unknown number of' : `${c.distinctApprox ? 'about ' : ''}${c.distinct}`} distinct values; a label track takes a column of at most ${SERIES_MAX_LABELS}`;
  }
  return undefined;
}


/** A table as CSV bytes, a thousand rows a chunk (numbers written so they read back exactly). */
function* csvChunks(t: Table): Generator<Buffer> {
  yield Buffer.from(t.columns.map(csvField).join(',') + '\n');
  let lines: string[] = [];
  for (let r = 0; r < t.rowCount; r++) {
    let line = '';
    for (let c = 0; c < t.data.length; c++) {
      const v = t.data[c]!.cell(r);
      if (c > 0) line += ',';
      if (v !== null) line += typeof v === 'string' ? csvField(v) : String(v);
    }
    lines.push(line);
    if (lines.length === 1000) {
      yield Buffer.from(lines.join('\n') + '\n');
      lines = [];
    }
  }
  if (lines.length) yield Buffer.from(lines.join('\n') + '\n');
}

/** What a table de-identification worker is given: the upload, where the de-identified table goes, the profile's columns. */
interface TableDeidWorkerData {
  task: typeof TABLE_DEID_TASK;
  inPath: string;
  outPath: string;
  format: TableFormat;
  columns: ColumnFacts[];
  /** The de-identification key (hex); never stored. */
  deidKey: string;
  source: string;
  maxBytes: number;
}
const TABLE_DEID_TASK = 'medfit:table-deidentify';

/** The worker side of a table de-identification: plan from the profile's columns, rewrite, answer. */
async function runTableDeidWorker(d: TableDeidWorkerData): Promise<void> {
  const port = parentPort!;
  try {
    const { Deidentifier, deidentifyTableFile, planTable } = await import('../privacy/index.js');
    const deidentifier = new Deidentifier({ key: Buffer.from(d.deidKey, 'hex') });
    const r = await deidentifyTableFile(d.inPath, d.outPath, { rules: planTable(d.columns), deidentifier, format: d.format, source: d.source, maxBytes: d.maxBytes });
    port.postMessage({ result: { bytes: r.bytes, sha256: r.sha256, report: r.report } } satisfies WorkerMessage<unknown>);
  } catch (e) {
    port.postMessage({ error: serializeError(e) } satisfies WorkerMessage<unknown>);
  }
}

/** Imports a stored FHIR upload in a worker thread (streamed, de-identified unless asked not to) into the dataset's CSV. */
function fhirToCsvInWorker(data: Omit<FhirWorkerData, 'task'>, signal: AbortSignal): Promise<{ rows: number; bytes: number; sha256: string; resources: number; warnings: string[] }> {
  return importGate.run(
    (sig) => runWorker({ task: FHIR_TASK, ...data } satisfies FhirWorkerData, { name: 'FHIR import', doing: 'importing the FHIR resources', source: data.source, heapMb: FHIR_HEAP_MB, timeoutMs: FHIR_TIMEOUT_MS, signal: sig }),
    signal,
  );
}

/** The worker side of `fhirToCsvInWorker`. */
async function runFhirWorker(d: FhirWorkerData): Promise<void> {
  const port = parentPort!;
  try {
    const { importItems, readResourcesFromStream } = await import('../fhir/index.js');
    const { Deidentifier } = await import('../privacy/index.js');
    // Ages over 89 are pooled at the spec's index date, where the table measures them.
    const deidentifier = d.deidKey !== undefined ? new Deidentifier({ key: Buffer.from(d.deidKey, 'hex'), now: new Date(d.spec.index) }) : undefined;
    // A gzip upload may inflate to at most FHIR_INFLATE times the upload limit: an export
    // compresses about tenfold, a bomb far more (it would hold the import line for its time limit).
    const items = readResourcesFromStream(createReadStream(d.inPath), d.source, d.kind, { maxBytes: d.maxCsvBytes * FHIR_INFLATE });
    const r = await importItems(items, { spec: d.spec, out: d.csvPath, deidentifier, maxBytes: d.maxCsvBytes });
    port.postMessage({ result: { rows: r.rows, bytes: r.bytes, sha256: r.sha256, resources: r.resources, warnings: r.warnings } } satisfies WorkerMessage<{ rows: number; bytes: number; sha256: string; resources: number; warnings: string[] }>);
  } catch (e) {
    port.postMessage({ error: serializeError(e) } satisfies WorkerMessage<unknown>);
  }
}

/** The worker side of `fitToCsvInWorker`: decode, write the CSV atomically with its SHA-256, answer. */
async function runFitWorker(d: FitWorkerData): Promise<void> {
  const port = parentPort!;
  try {
    const { fitToTable } = await import('../sequence/index.js');
    const table = fitToTable([{ subject: d.subject, session: d.session, bytes: readFileSync(d.fitPath), source: d.source }], { source: d.source });
    const hash = createHash('sha256');
    let bytes = 0;
    // The dataset stored is the CSV, not the FIT file: it is held to the upload limit as any
    // uploaded table is (a compact FIT file can make a much larger CSV). A refusal fails the
    // write, which removes its partial file.
    await streamToFileAtomic(d.csvPath, Readable.from(csvChunks(table)), (chunk) => {
      bytes += chunk.length;
      if (bytes > d.maxCsvBytes) throw Errors.tooLarge(`the dataset converted from the FIT file is larger than the limit of ${d.maxCsvBytes} bytes (MEDFIT_MAX_UPLOAD_MB)`);
      hash.update(chunk);
    });
    port.postMessage({ result: { rows: table.rowCount, bytes, sha256: hash.digest('hex') } } satisfies WorkerMessage<{ rows: number; bytes: number; sha256: string }>);
  } catch (e) {
    // Not one of ours: its message may name server paths; the caller gets a plain internal error.
    port.postMessage({ error: serializeError(e) } satisfies WorkerMessage<{ rows: number; bytes: number; sha256: string }>);
  }
}

/** The worker side of `seriesInWorker`: read the file (its bytes checked against the upload), group it into sessions, reduce one. */
async function runSeriesWorker(d: SeriesWorkerData): Promise<void> {
  const port = parentPort!;
  try {
    const { readSessions, sessionSeries } = await import('../sequence/index.js');
    const table = await readTable(d.path, { source: d.source, hash: true, ...(d.format ? { format: d.format } : {}) });
    if (table.sha256 !== d.sha256) throw Errors.badData(d.source, 'the stored dataset no longer matches the SHA-256 recorded at upload; upload it again');
    const data = readSessions(table, { ...d.columns, targets: d.label !== undefined ? [d.label] : [] }, { labels: true });
    // The route checked the label against the stored profile; the file read is checked too.
    const labels = data.targets[0]?.classes?.length ?? 0;
    if (labels > SERIES_MAX_LABELS) throw Errors.badParam('/querystring/label', `"${d.label}" has ${labels} distinct values; a label track takes a column of at most ${SERIES_MAX_LABELS}`);
    const count = data.sessions.length;
    if (d.session >= count) throw Errors.badParam('/querystring/session', `expected a session index from 0 to ${count - 1} (${d.source} has ${count} session${count === 1 ? '' : 's'})`);
    const points = Math.max(1, Math.min(d.points, Math.floor(SERIES_MAX_VALUES / Math.max(1, data.channels.length))));
    const series = sessionSeries(data, d.session, points, { pseudonymousSubject: d.pseudonymousSubject, pseudonymousSession: d.pseudonymousSession });
    port.postMessage({ result: JSON.stringify(series) } satisfies WorkerMessage<string>);
  } catch (e) {
    port.postMessage({ error: serializeError(e) } satisfies WorkerMessage<string>);
  }
}

if (!isMainThread) {
  const task = (workerData as { task?: string } | null)?.task;
  if (task === FIT_TASK) void runFitWorker(workerData as FitWorkerData);
  else if (task === FHIR_TASK) void runFhirWorker(workerData as FhirWorkerData);
  else if (task === TABLE_DEID_TASK) void runTableDeidWorker(workerData as TableDeidWorkerData);
  else if (task === SERIES_TASK) void runSeriesWorker(workerData as SeriesWorkerData);
}

/** `/v1/datasets`: upload (streamed to disk, atomically), list, read with profile, delete. */
export async function datasetRoutes(app: FastifyInstance, s: Services): Promise<void> {
  // The upload route takes the raw body as a stream in its own encapsulated scope, so the size
  // limit is enforced while streaming and nothing of a rejected upload stays on disk.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    scope.post(
      '/v1/datasets',
      {
        schema: {
          summary: 'Upload a dataset (CSV, JSON array or NDJSON body; long-format sensor tables too), or a Garmin FIT file (Content-Type application/vnd.ant.fit, or a name ending in .fit): converted to a long-format CSV dataset',
          tags: ['datasets'],
          querystring: {
            type: 'object',
            required: ['name'],
            additionalProperties: false,
            properties: {
              name: { type: 'string', pattern: NAME },
              format: { type: 'string', enum: ['csv', 'json', 'ndjson', 'fit'] },
              subject: { type: 'string', pattern: NAME, description: 'FIT files: the subject (default the dataset name without .fit)' },
              session: { type: 'string', pattern: NAME, description: 'FIT files: the session (default the file name without .fit when the name ends in .fit, else "session")' },
              features: {
                type: 'string',
                // A query string lives in the request head, which Node caps at 16 KB in all.
                maxLength: 8192,
                description: 'FHIR input (Content-Type application/fhir+json: a Bundle; application/fhir+ndjson: bulk-export NDJSON): the feature spec, as JSON, that makes the table (one row per Patient). Required with a FHIR content type, refused otherwise.',
              },
              deidentify: {
                type: 'string',
                enum: ['true', 'false'],
                description: 'De-identify (HIPAA Safe Harbor) before anything is stored: on by default for FHIR input, off by default for tables (where it pseudonymises, generalises or drops the columns the profile flags as personal identifiers).',
              },
            },
          },
          response: { 201: datasetJson },
        },
      },
      async (req, reply) => {
        const p = requireScope(req, 'train');
        const { name, format: askedFormat, subject, session, features, deidentify } = req.query as {
          name: string;
          format?: TableFormat | 'fit';
          subject?: string;
          session?: string;
          features?: string;
          deidentify?: 'true' | 'false';
        };
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && declared > s.config.maxUploadBytes) {
          (req.raw as Readable).resume();
          throw Errors.tooLarge(`dataset is ${declared} bytes; the limit is ${s.config.maxUploadBytes} (MEDFIT_MAX_UPLOAD_MB)`);
        }
        const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        // `curl -F file=@x.csv` sends a form: its boundaries would be read as rows of the table.
        if (type.startsWith('multipart/')) {
          throw Errors.unsupportedMedia('send the table itself as the request body (curl --data-binary @file.csv), not as a multipart form');
        }
        const fhirKind = fhirMediaKind(type);
        if (fhirKind !== undefined) {
          if (askedFormat !== undefined || subject !== undefined || session !== undefined) throw Errors.badRequest('"format", "subject" and "session" are for tables and FIT files; FHIR input takes "features" (and "deidentify")');
          if (features === undefined) throw Errors.badParam('/querystring/features', 'FHIR input needs a feature spec: the table it makes has one row per Patient, with the columns the spec names (see the README)');
          const { parseFeatureSpec } = await import('../fhir/index.js');
          let json: unknown;
          try {
            json = JSON.parse(features);
          } catch {
            throw Errors.badParam('/querystring/features', 'is not valid JSON');
          }
          const spec = parseFeatureSpec(json, 'features');
          return uploadFhir(req, reply, { id: randomUUID(), name, projectId: p.projectId, kind: fhirKind, spec, deidentify: deidentify !== 'false' });
        }
        if (features !== undefined) throw Errors.badParam('/querystring/features', 'a feature spec is for FHIR input (Content-Type application/fhir+json or application/fhir+ndjson)');
        const fit = askedFormat === 'fit' || (askedFormat === undefined && (FIT_TYPES.has(type) || /\.fit$/i.test(name)));
        if (!fit && (subject !== undefined || session !== undefined)) throw Errors.badRequest('"subject" and "session" name the stream of a FIT file; a table names them in its own columns');
        if (fit && deidentify === 'true') {
          throw Errors.badParam('/querystring/deidentify', 'is not available for FIT files (their GPS positions and times would be kept); convert the file, remove positions and times, and upload the table with deidentify=true');
        }
        const asked = askedFormat === 'fit' ? undefined : askedFormat;
        const format = fit ? undefined : (asked ?? (Object.hasOwn(FORMAT_BY_TYPE, type) ? FORMAT_BY_TYPE[type] : undefined));
        const id = randomUUID();
        if (fit) {
          const stem = name.replace(/\.fit$/i, '');
          return uploadFit(req, reply, { id, name, subject: subject ?? stem, session: session ?? (stem !== name ? stem : 'session'), projectId: p.projectId });
        }
        if (deidentify === 'true') return uploadDeidentifiedTable(req, reply, { id, name, projectId: p.projectId, format });
        const rel = join('datasets', p.projectId, `${id}.${format ?? 'data'}`);
        const path = join(s.config.dataDir, rel);
        const hash = createHash('sha256');
        let bytes = 0;
        if (!req.body) throw Errors.badRequest('the request has no body: send the table as CSV, a JSON array or NDJSON');
        const limit = s.config.maxUploadBytes;
        const body = limitedBody(req.body as Readable, limit, () => Errors.tooLarge(`dataset is larger than the limit of ${limit} bytes (MEDFIT_MAX_UPLOAD_MB)`));
        await streamToFileAtomic(path, body, (chunk) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        try {
          // Profiled from the stored file in a worker thread, streaming: a large upload neither
          // holds the event loop nor sits in memory whole.
          const profile = await profileFileInWorker(path, { source: name, ...(format ? { format } : {}) });
          writeFileAtomic(`${path}.profile.json`, JSON.stringify(profile));
          const columns = profile.columns.map((c) => ({ name: c.name, type: c.type, missing: c.missing }));
          const rec = await commitDataset(s, { id, projectId: p.projectId, name, file: rel, format: profile.format, rows: profile.rows, bytes, sha256: hash.digest('hex'), columns });
          req.auditEntry = { action: 'dataset.create', resource: `dataset:${id}`, rows: rec.rows };
          return reply.code(201).send(view(rec));
        } catch (e) {
          rmSync(path, { force: true });
          rmSync(`${path}.profile.json`, { force: true });
          throw e;
        }
      },
    );
  });

  /**
   * A FIT upload: streamed to a temporary file (size limit), converted in a worker thread to a
   * long-format CSV (subject, session, t in epoch ms, channels), which is stored, hashed and
   * profiled like any uploaded CSV; the FIT file itself is not kept. The CSV is held to the same
   * upload limit (413 past it, nothing left on disk).
   */
  async function uploadFit(
    req: import('fastify').FastifyRequest,
    reply: import('fastify').FastifyReply,
    o: { id: string; name: string; subject: string; session: string; projectId: string },
  ) {
    if (!req.body) throw Errors.badRequest('the request has no body: send the FIT file as the request body (curl --data-binary @run.fit)');
    const limit = Math.min(s.config.maxUploadBytes, FIT_MAX_BYTES);
    // A temporary name: a crash leaves nothing that the next start does not clear.
    const fitPath = tempSibling(join(s.config.dataDir, 'datasets', o.projectId, `${o.id}.fit`));
    const rel = join('datasets', o.projectId, `${o.id}.csv`);
    const csvPath = join(s.config.dataDir, rel);
    let fitBytes = 0;
    const body = limitedBody(req.body as Readable, limit, () => Errors.tooLarge(`the FIT file is larger than the limit of ${limit} bytes${limit === FIT_MAX_BYTES ? ' (the FIT reader\'s bound)' : ' (MEDFIT_MAX_UPLOAD_MB)'}`));
    try {
      await streamToFileAtomic(fitPath, body, (chunk) => (fitBytes += chunk.length));
      if (fitBytes === 0) throw Errors.badData(o.name, 'the FIT file is empty');
      // A body that is not FIT at all is refused here, without a worker: a FIT file begins with a
      // 12- or 14-byte header holding ".FIT" at bytes 8 to 11.
      const head = readHead(fitPath, 12);
      if (head.length < 12 || (head[0] !== 12 && head[0] !== 14) || head.subarray(8, 12).toString('latin1') !== '.FIT') {
        throw Errors.badData(o.name, 'is not a FIT file (its header has no ".FIT" signature); send a Garmin FIT activity file, or a CSV, JSON or NDJSON table under a name not ending in .fit');
      }
      const csv = await fitToCsvInWorker({ fitPath, csvPath, subject: o.subject, session: o.session, source: o.name, maxCsvBytes: s.config.maxUploadBytes });
      const profile = await profileFileInWorker(csvPath, { source: o.name, format: 'csv' });
      writeFileAtomic(`${csvPath}.profile.json`, JSON.stringify(profile));
      const columns = profile.columns.map((c) => ({ name: c.name, type: c.type, missing: c.missing }));
      const rec = await commitDataset(s, { id: o.id, projectId: o.projectId, name: o.name, file: rel, format: 'csv', rows: profile.rows, bytes: csv.bytes, sha256: csv.sha256, columns });
      req.auditEntry = { action: 'dataset.create', resource: `dataset:${o.id}`, rows: rec.rows };
      return reply.code(201).send(view(rec));
    } catch (e) {
      rmSync(csvPath, { force: true });
      rmSync(`${csvPath}.profile.json`, { force: true });
      throw e;
    } finally {
      rmSync(fitPath, { force: true });
    }
  }

  /**
   * A table uploaded with `deidentify=true`: streamed to a temporary file (size limit), profiled,
   * and rewritten in a worker thread by the de-identification plan of its profile (personal
   * identifiers dropped, record numbers pseudonymised, ZIP codes to 3 digits, dates to the year,
   * ages over 89 pooled) into the stored dataset, which is profiled again. The upload as sent is
   * never kept; the answer says what was done to each column (counts, never values).
   */
  async function uploadDeidentifiedTable(
    req: import('fastify').FastifyRequest,
    reply: import('fastify').FastifyReply,
    o: { id: string; name: string; projectId: string; format: TableFormat | undefined },
  ) {
    if (!req.body) throw Errors.badRequest('the request has no body: send the table as CSV, a JSON array or NDJSON');
    const limit = s.config.maxUploadBytes;
    // The upload as sent holds personal identifiers: a temporary name, which a crash does not leave
    // behind past the next start.
    const rawPath = tempSibling(join(s.config.dataDir, 'datasets', o.projectId, `${o.id}.deid`));
    const body = limitedBody(req.body as Readable, limit, () => Errors.tooLarge(`dataset is larger than the limit of ${limit} bytes (MEDFIT_MAX_UPLOAD_MB)`));
    let path: string | undefined;
    const gone = clientGone(req, reply);
    try {
      await streamToFileAtomic(rawPath, body, () => {});
      const raw = await profileFileInWorker(rawPath, { source: o.name, ...(o.format ? { format: o.format } : {}) });
      const rel = join('datasets', o.projectId, `${o.id}.${raw.format}`);
      path = join(s.config.dataDir, rel);
      const data: TableDeidWorkerData = {
        task: TABLE_DEID_TASK,
        inPath: rawPath,
        outPath: path,
        format: raw.format,
        columns: raw.columns.map((c) => ({ name: c.name, type: c.type, ...(c.phi !== undefined ? { phi: c.phi } : {}) })),
        deidKey: projectDeidKey(s.config.deidKey, o.projectId),
        source: o.name,
        maxBytes: limit,
      };
      const done = await importGate.run(
        (sig) => runWorker<{ bytes: number; sha256: string; report: ColumnReport[] }>(data, { name: 'de-identification', doing: 'de-identifying the table', source: o.name, heapMb: FHIR_HEAP_MB, timeoutMs: FHIR_TIMEOUT_MS, signal: sig }),
        gone.signal,
      );
      const profile = await profileFileInWorker(path, { source: o.name, format: raw.format });
      writeFileAtomic(`${path}.profile.json`, JSON.stringify(profile));
      const columns = profile.columns.map((c) => ({ name: c.name, type: c.type, missing: c.missing }));
      const rec = await commitDataset(s, { id: o.id, projectId: o.projectId, name: o.name, file: rel, format: profile.format, rows: profile.rows, bytes: done.bytes, sha256: done.sha256, columns });
      req.auditEntry = { action: 'dataset.create', resource: `dataset:${o.id}`, rows: rec.rows };
      const changed = done.report.filter((r) => r.action !== 'keep').map((r) => ({ column: r.column, action: r.action, reason: r.reason }));
      return reply.code(201).send({ ...view(rec), deidentified: changed });
    } catch (e) {
      if (path !== undefined) {
        rmSync(path, { force: true });
        rmSync(`${path}.profile.json`, { force: true });
      }
      throw e;
    } finally {
      gone.done();
      rmSync(rawPath, { force: true });
    }
  }

  /**
   * A FHIR upload: streamed to a temporary file (size limit), imported in a worker thread by the
   * feature spec (de-identified first unless the caller said `deidentify=false`) into a CSV that
   * is stored, hashed and profiled like any uploaded table, with the spec beside it for the jobs
   * that train on it. The FHIR resources themselves are not kept.
   */
  async function uploadFhir(
    req: import('fastify').FastifyRequest,
    reply: import('fastify').FastifyReply,
    o: { id: string; name: string; projectId: string; kind: 'bundle' | 'ndjson'; spec: FeatureSpec; deidentify: boolean },
  ) {
    if (!req.body) throw Errors.badRequest(`the request has no body: send the FHIR ${o.kind === 'bundle' ? 'Bundle' : 'NDJSON'} as the request body`);
    const limit = s.config.maxUploadBytes;
    // The resources as sent hold personal identifiers: a temporary name, which a crash does not
    // leave behind past the next start.
    const inPath = tempSibling(join(s.config.dataDir, 'datasets', o.projectId, `${o.id}.fhir`));
    const rel = join('datasets', o.projectId, `${o.id}.csv`);
    const csvPath = join(s.config.dataDir, rel);
    const body = limitedBody(req.body as Readable, limit, () => Errors.tooLarge(`the FHIR input is larger than the limit of ${limit} bytes (MEDFIT_MAX_UPLOAD_MB)`));
    const gone = clientGone(req, reply);
    try {
      await streamToFileAtomic(inPath, body, () => {});
      const csv = await fhirToCsvInWorker({
        inPath,
        csvPath,
        kind: o.kind,
        spec: o.spec,
        deidKey: o.deidentify ? projectDeidKey(s.config.deidKey, o.projectId) : undefined,
        source: o.name,
        maxCsvBytes: limit,
      }, gone.signal);
      const profile = await profileFileInWorker(csvPath, { source: o.name, format: 'csv' });
      writeFileAtomic(`${csvPath}.profile.json`, JSON.stringify(profile));
      writeFileAtomic(fhirLineagePath(csvPath), JSON.stringify({ features: o.spec, deidentified: o.deidentify } satisfies FhirLineage));
      const columns = profile.columns.map((c) => ({ name: c.name, type: c.type, missing: c.missing }));
      const rec = await commitDataset(s, { id: o.id, projectId: o.projectId, name: o.name, file: rel, format: 'csv', rows: profile.rows, bytes: csv.bytes, sha256: csv.sha256, columns });
      req.auditEntry = { action: 'dataset.create', resource: `dataset:${o.id}`, rows: rec.rows };
      return reply.code(201).send({ ...view(rec), fhir: { resources: csv.resources, deidentified: o.deidentify }, ...(csv.warnings.length ? { warnings: csv.warnings } : {}) });
    } catch (e) {
      rmSync(csvPath, { force: true });
      rmSync(`${csvPath}.profile.json`, { force: true });
      rmSync(fhirLineagePath(csvPath), { force: true });
      throw e;
    } finally {
      gone.done();
      rmSync(inPath, { force: true });
    }
  }

  app.get('/v1/datasets', { schema: { summary: 'List datasets', tags: ['datasets'], response: { 200: { type: 'object', properties: { datasets: { type: 'array', items: datasetJson } } } } } }, async (req) => {
    const p = requireScope(req, 'read');
    return { datasets: (await s.store.listDatasets(p.projectId)).map(view) };
  });

  app.get('/v1/datasets/:id', { schema: { summary: 'A dataset with its profile', tags: ['datasets'], params: idParams } }, async (req, reply) => {
    const p = requireScope(req, 'read');
    const d = await s.store.getDataset(p.projectId, (req.params as { id: string }).id);
    if (!d) throw Errors.notFound('dataset');
    const profile = shownProfile(await storedProfile(s, d));
    req.auditEntry = { action: 'dataset.read', resource: `dataset:${d.id}` };
    // Summaries of health records: no shared or browser cache keeps a copy.
    reply.header('cache-control', 'no-store');
    // storedProfile fetched the lineage beside the profile when this process had no copy.
    const fhir = readFhirLineage(join(s.config.dataDir, d.file));
    return { ...view(d), ...(fhir ? { fhir } : {}), profile };
  });

  app.get(
    '/v1/datasets/:id/series',
    {
      schema: {
        summary: "One session of a sensor dataset over time, for a plot (train scope: it shows the samples themselves): each channel's minimum and maximum per bucket of consecutive samples, and the label track",
        description:
          'A sensor dataset is a long-format table with a subject column (subject, subject_id, user or participant) and a time column (t, time or timestamp); a session column (session, session_id or recording) splits a subject\'s rows into sessions. Sessions are numbered from 0 in the order they first appear in the file, and read as a training job reads them (repeated timestamps folded; times going backwards are refused). Channels are the other numeric columns (label-like names such as activity or energy left out). ' +
          `The label track is the \`label\` column: a categorical or boolean column that the profile does not flag as a possible personal identifier, with at most ${SERIES_MAX_LABELS} distinct values; by default the first such column besides subject, session and time (none when no column qualifies). ` +
          'When the profile flags the subject column as a possible identifier, the subject and session are answered as pseudonyms by index ("subject 3": the subject\'s 0-based index in order of first appearance; "session 5": the session\'s index), never their values; a flagged session column alone makes the session a pseudonym. ' +
          `The samples are record-level data: the route needs the train scope (the data owner's), and answers with Cache-Control: no-store. At most ${SERIES_WORKERS} series are read at once and ${SERIES_MAX_WAITING} wait; past that a 503 with Retry-After. A request whose client goes away is dropped. Any other table is a 409.`,
        tags: ['datasets'],
        params: idParams,
        // Query values are strings (types are not coerced anywhere, so JSON bodies stay strict).
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            session: { type: 'string', maxLength: 16, description: 'the session\'s index, 0 to sessions − 1 (default 0)' },
            points: { type: 'string', maxLength: 16, description: `most buckets per channel, 1 to ${SERIES_MAX_POINTS} (default ${SERIES_DEFAULT_POINTS}); fewer when channels × points would pass ${SERIES_MAX_VALUES}` },
            label: {
              type: 'string',
              minLength: 1,
              maxLength: 256,
              description: `the label (class target) column to show: categorical or boolean, not flagged as a possible identifier, at most ${SERIES_MAX_LABELS} distinct values; default the first such column besides subject, session and time`,
            },
          },
        },
        response: { 200: seriesJson },
      },
    },
    async (req, reply) => {
      const p = requireScope(req, 'train');
      // A client that goes away before the answer drops its request: out of the line if it waits,
      // its worker terminated if it runs.
      const gone = clientGone(req, reply);
      try {
        const q = req.query as { session?: string; points?: string; label?: string };
        const session = wholeNumber(q.session, 0);
        if (session === undefined || session > 999_999_999) throw Errors.badParam('/querystring/session', 'expected a session index: a whole number from 0');
        const points = wholeNumber(q.points, SERIES_DEFAULT_POINTS);
        if (points === undefined || points < 1 || points > SERIES_MAX_POINTS) throw Errors.badParam('/querystring/points', `expected a whole number from 1 to ${SERIES_MAX_POINTS}`);
        const d = await s.store.getDataset(p.projectId, (req.params as { id: string }).id);
        if (!d) throw Errors.notFound('dataset');
        const names = d.columns.map((c) => c.name);
        const subject = defaultColumn(names, 'subject');
        const time = defaultColumn(names, 'time');
        if (subject === undefined || time === undefined) {
          const what = subject === undefined ? 'subject' : 'time';
          throw Errors.conflict(`dataset "${d.name}" is not a sensor dataset: it has no ${what} column (${SEQUENCE_COLUMN_DEFAULTS[what].join(', ')}); a long-format sensor table has one row per sample, with subject and time columns`);
        }
        const sessionColumn = defaultColumn(names, 'session');
        const parts = new Map<string, string>([[subject, 'subject'], [time, 'time'], ...(sessionColumn !== undefined ? [[sessionColumn, 'session'] as [string, string]] : [])]);
        // The profile written at upload says which columns may identify a person and how many
        // values each has. Without one (an old dataset), nothing is taken on trust.
        const profiled = (await storedProfile(s, d))?.columns;
        const column = (name: string) => profiled?.find((c) => c.name === name);
        let label = q.label;
        if (label !== undefined) {
          if (!names.includes(label)) throw Errors.badParam('/querystring/label', `dataset "${d.name}" has no column "${label}"`);
          if (parts.has(label)) throw Errors.badParam('/querystring/label', `"${label}" is the ${parts.get(label)} column`);
          const c = column(label);
          if (!c) throw Errors.badParam('/querystring/label', `dataset "${d.name}" has no stored profile to check "${label}" against; upload it again to show a label track`);
          const problem = labelProblem(c);
          if (problem !== undefined) throw Errors.badParam('/querystring/label', problem);
        } else label = profiled?.find((c) => !parts.has(c.name) && labelProblem(c) === undefined)?.name;
        // A column the profile flags (or a dataset without a profile) is answered by index: session
        // names often carry the subject's code, so a pseudonymous subject takes its sessions along.
        const flagged = (name: string) => column(name)?.identifier !== undefined || profiled === undefined;
        const pseudonymousSubject = flagged(subject);
        const text = await seriesInWorker(
          {
            path: await localDataset(s.blobs, s.config.dataDir, d, 'all', s.cache),
            source: d.name,
            format: d.format,
            sha256: d.sha256,
            columns: { subject, time, ...(sessionColumn !== undefined ? { session: sessionColumn } : {}) },
            label,
            session,
            points,
            pseudonymousSubject,
            pseudonymousSession: pseudonymousSubject || (sessionColumn !== undefined && flagged(sessionColumn)),
          },
          gone.signal,
        );
        req.auditEntry = { action: 'dataset.read', resource: `dataset:${d.id}` };
        // Record-level samples: no shared or browser cache keeps a copy.
        reply.header('cache-control', 'no-store');
        // Serialized in the worker: a long answer is not built again on the event loop.
        return reply.type('application/json; charset=utf-8').send(text);
      } finally {
        gone.done();
      }
    },
  );

  app.delete('/v1/datasets/:id', { schema: { summary: 'Delete a dataset', tags: ['datasets'], params: idParams } }, async (req, reply) => {
    const p = requireScope(req, 'train');
    const d = await s.store.getDataset(p.projectId, (req.params as { id: string }).id);
    if (!d) throw Errors.notFound('dataset');
    const pending = (await s.store.listJobs(p.projectId)).filter((j) => j.datasetId === d.id && (j.status === 'queued' || j.status === 'running'));
    if (pending.length) throw Errors.conflict(`dataset has ${pending.length} queued or running job(s); cancel them first`);
    await s.store.deleteDataset(p.projectId, d.id);
    // The row is gone first: a file left behind by an unreachable store is unreferenced, never a
    // row without its file.
    s.cache?.forget(d.file);
    await removeDataset(s.blobs, s.config.dataDir, d.file).catch((e: unknown) => req.log.warn({ err: loggableError(e) }, `dataset ${d.id}: its files could not be removed from storage`));
    // Every other process of a cluster drops its copy too (health records do not linger in caches).
    await s.redis?.publish({ t: 'dataset', file: d.file }).catch((e: unknown) => req.log.warn({ err: loggableError(e) }, `dataset ${d.id}: the other processes could not be told to drop their copies (Redis unavailable)`));
    req.auditEntry = { action: 'dataset.delete', resource: `dataset:${d.id}`, rows: d.rows };
    return reply.code(204).send();
  });
}

/**
 * Stores a dataset written under the data directory (file, profile, FHIR lineage) in the blob
 * store, then commits its row: a dataset is listed only once every replica can read it. When the
 * row cannot be written the stored files are removed again.
 */
async function commitDataset(s: Services, d: Omit<DatasetRecord, 'created'>): Promise<DatasetRecord> {
  try {
    const sidecars = await storeDataset(s.blobs, s.config.dataDir, d.file, d.sha256);
    const rec = await s.store.createDataset({ ...d, sidecars });
    // The upload's own copy is this process's cache of it from now on.
    s.cache?.use(d.file, () => forgetDataset(s.config.dataDir, d.file));
    return rec;
  } catch (e) {
    await removeDataset(s.blobs, s.config.dataDir, d.file).catch(() => undefined);
    throw e;
  }
}
