import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Errors, streamToFileAtomic, writeFileAtomic } from '../core/index.js';
import { profileFileInWorker, type TableFormat } from '../data/index.js';
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
          summary: 'Upload a dataset (CSV, JSON array or NDJSON body)',
          tags: ['datasets'],
          querystring: {
            type: 'object',
            required: ['name'],
            additionalProperties: false,
            properties: { name: { type: 'string', pattern: NAME }, format: { type: 'string', enum: ['csv', 'json', 'ndjson'] } },
          },
          response: { 201: datasetJson },
        },
      },
      async (req, reply) => {
        const p = requireScope(req, 'train');
        const { name, format: asked } = req.query as { name: string; format?: TableFormat };
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
        const format = asked ?? (Object.hasOwn(FORMAT_BY_TYPE, type) ? FORMAT_BY_TYPE[type] : undefined);
        const id = randomUUID();
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
