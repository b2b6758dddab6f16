import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { Errors, deserializeError, serializeError, startWorker, streamToFileAtomic, writeFileAtomic, type SerializedError } from '../core/index.js';
import { profileFileInWorker, type Table, type TableFormat } from '../data/index.js';
import type { DatasetRecord } from '../store/index.js';
import { requireScope } from './auth.js';
import { limitedBody } from './drain.js';
import type { Services } from './services.js';

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
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;

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

/** Largest FIT file taken (the FIT reader's own bound). */
const FIT_MAX_BYTES = 64 * 1024 * 1024;

/** What a FIT conversion worker is given, and what it answers. */
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
type FitWorkerMessage = { result: { rows: number; bytes: number; sha256: string } } | { error: SerializedError };
const FIT_TASK = 'medfit:fit-to-csv';
const FIT_TIMEOUT_MS = 10 * 60 * 1000;
const FIT_HEAP_MB = 4096;
/** FIT conversions at once (each may need gigabytes for a large file); more uploads wait their turn. */
const FIT_WORKERS = 1;
let fitRunning = 0;
const fitWaiting: Array<() => void> = [];

/**
 * Converts an uploaded FIT file to a long-format CSV dataset (`subject, session, t, <channels>`,
 * `t` in epoch milliseconds) in a worker thread: decoding a large FIT file takes seconds, which
 * must not hold up the event loop. This module is the worker's entry too (see the bottom).
 */
async function fitToCsvInWorker(data: Omit<FitWorkerData, 'task'>): Promise<{ rows: number; bytes: number; sha256: string }> {
  if (fitRunning >= FIT_WORKERS) await new Promise<void>((resolve) => fitWaiting.push(resolve));
  fitRunning++;
  try {
    const worker = startWorker(new URL(import.meta.url), { workerData: { task: FIT_TASK, ...data } satisfies FitWorkerData, resourceLimits: { maxOldGenerationSizeMb: FIT_HEAP_MB } });
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(Errors.badData(data.source, `reading the FIT file took longer than ${FIT_TIMEOUT_MS / 1000} s; it was stopped`)), FIT_TIMEOUT_MS);
        worker.once('message', (m: FitWorkerMessage) => ('result' in m ? resolve(m.result) : reject(m.error.code === 'MEDFIT_ERR_INTERNAL' ? Errors.internal('the FIT conversion failed') : deserializeError(m.error))));
        worker.once('error', (e: Error & { code?: string }) =>
          reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? Errors.badData(data.source, `reading the FIT file needed more than ${FIT_HEAP_MB} MB of memory`) : Errors.internal('the FIT conversion worker failed', e)),
        );
        worker.once('exit', (code) => reject(Errors.internal(`the FIT conversion worker exited (code ${code}) without a result`)));
      });
    } finally {
      clearTimeout(timer);
      await worker.terminate();
    }
  } finally {
    fitRunning--;
    fitWaiting.shift()?.();
  }
}

/** The first `n` bytes of a file (fewer when it is shorter). */
function readHead(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    return buf.subarray(0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** A CSV field: as it is, or quoted when it holds a comma, a quote, a line break or edge spaces. */
function csvField(v: string): string {
  return /[",\r\n]|^\s|\s$/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
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
    port.postMessage({ result: { rows: table.rowCount, bytes, sha256: hash.digest('hex') } } satisfies FitWorkerMessage);
  } catch (e) {
    // Not one of ours: its message may name server paths; the caller gets a plain internal error.
    port.postMessage({ error: serializeError(e) } satisfies FitWorkerMessage);
  }
}

if (!isMainThread && (workerData as Partial<FitWorkerData> | null)?.task === FIT_TASK) void runFitWorker(workerData as FitWorkerData);

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
            },
          },
          response: { 201: datasetJson },
        },
      },
      async (req, reply) => {
        const p = requireScope(req, 'train');
        const { name, format: askedFormat, subject, session } = req.query as { name: string; format?: TableFormat | 'fit'; subject?: string; session?: string };
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
        const fit = askedFormat === 'fit' || (askedFormat === undefined && (FIT_TYPES.has(type) || /\.fit$/i.test(name)));
        if (!fit && (subject !== undefined || session !== undefined)) throw Errors.badRequest('"subject" and "session" name the stream of a FIT file; a table names them in its own columns');
        const asked = askedFormat === 'fit' ? undefined : askedFormat;
        const format = fit ? undefined : (asked ?? (Object.hasOwn(FORMAT_BY_TYPE, type) ? FORMAT_BY_TYPE[type] : undefined));
        const id = randomUUID();
        if (fit) {
          const stem = name.replace(/\.fit$/i, '');
          return uploadFit(req, reply, { id, name, subject: subject ?? stem, session: session ?? (stem !== name ? stem : 'session'), projectId: p.projectId });
        }
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
          const rec = await s.store.createDataset({ id, projectId: p.projectId, name, file: rel, format: profile.format, rows: profile.rows, bytes, sha256: hash.digest('hex'), columns });
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
    const fitPath = join(s.config.dataDir, 'datasets', o.projectId, `${o.id}.fit.upload`);
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
      const rec = await s.store.createDataset({ id: o.id, projectId: o.projectId, name: o.name, file: rel, format: 'csv', rows: profile.rows, bytes: csv.bytes, sha256: csv.sha256, columns });
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

  app.get('/v1/datasets', { schema: { summary: 'List datasets', tags: ['datasets'], response: { 200: { type: 'object', properties: { datasets: { type: 'array', items: datasetJson } } } } } }, async (req) => {
    const p = requireScope(req, 'read');
    return { datasets: (await s.store.listDatasets(p.projectId)).map(view) };
  });

  app.get('/v1/datasets/:id', { schema: { summary: 'A dataset with its profile', tags: ['datasets'], params: idParams } }, async (req) => {
    const p = requireScope(req, 'read');
    const d = await s.store.getDataset(p.projectId, (req.params as { id: string }).id);
    if (!d) throw Errors.notFound('dataset');
    const profilePath = join(s.config.dataDir, `${d.file}.profile.json`);
    const profile = existsSync(profilePath) ? (JSON.parse(readFileSync(profilePath, 'utf8')) as unknown) : null;
    req.auditEntry = { action: 'dataset.read', resource: `dataset:${d.id}` };
    return { ...view(d), profile };
  });

  app.delete('/v1/datasets/:id', { schema: { summary: 'Delete a dataset', tags: ['datasets'], params: idParams } }, async (req, reply) => {
    const p = requireScope(req, 'train');
    const d = await s.store.getDataset(p.projectId, (req.params as { id: string }).id);
    if (!d) throw Errors.notFound('dataset');
    const pending = (await s.store.listJobs(p.projectId)).filter((j) => j.datasetId === d.id && (j.status === 'queued' || j.status === 'running'));
    if (pending.length) throw Errors.conflict(`dataset has ${pending.length} queued or running job(s); cancel them first`);
    await s.store.deleteDataset(p.projectId, d.id);
    rmSync(join(s.config.dataDir, d.file), { force: true });
    rmSync(join(s.config.dataDir, `${d.file}.profile.json`), { force: true });
    req.auditEntry = { action: 'dataset.delete', resource: `dataset:${d.id}`, rows: d.rows };
    return reply.code(204).send();
  });
}
