import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Errors, MedfitError } from '../core/index.js';
import { FAMILIES, type TableFamily } from '../models/index.js';
import type { JobRecord } from '../store/index.js';
import { requireScope } from './auth.js';
import type { JobEvent, Services } from './services.js';

const MODEL_NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';

const jobBody = {
  type: 'object',
  required: ['dataset', 'target', 'name'],
  additionalProperties: false,
  properties: {
    dataset: { type: 'string', maxLength: 64, description: 'dataset id' },
    target: { type: 'string', minLength: 1, maxLength: 256 },
    name: { type: 'string', pattern: MODEL_NAME, description: 'model name; each succeeded job adds a version' },
    task: { type: 'string', enum: ['auto', 'binary', 'multiclass', 'regression'] },
    model: { type: 'string', enum: ['auto', 'logistic', 'linear', 'gbdt', 'mlp'] },
    params: {
      type: 'object',
      description: 'hyperparameters by family, e.g. {"gbdt": {"trees": 300}}',
      additionalProperties: { type: 'object', additionalProperties: { type: ['number', 'string', 'boolean', 'array'] } },
    },
    cv: { type: 'integer', minimum: 2, maximum: 20 },
    nested: { type: 'boolean', description: 'also estimate the whole choice by nested cross-validation (k times the work)' },
    group: { type: 'string', maxLength: 256 },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
    ignore: { type: 'array', items: { type: 'string' }, maxItems: 10000 },
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;

/** The public view of a job. */
function view(j: JobRecord) {
  return {
    id: j.id,
    name: j.name,
    dataset: j.datasetId,
    status: j.status,
    progress: j.progress,
    stage: j.stage,
    ...(j.error ? { error: j.error } : {}),
    ...(j.modelVersion !== null ? { model: { name: j.name, version: j.modelVersion } } : {}),
    spec: j.spec,
    created: j.created,
    started: j.started,
    finished: j.finished,
  };
}

/** `/v1/jobs`: submit training, follow it (JSON or Server-Sent Events), cancel it. */
export async function jobRoutes(app: FastifyInstance, s: Services): Promise<void> {
  app.post('/v1/jobs', { schema: { summary: 'Start a training job', tags: ['jobs'], body: jobBody } }, async (req, reply) => {
    const p = requireScope(req, 'train');
    const body = req.body as { dataset: string; target: string; name: string; group?: string; ignore?: string[]; params?: Record<string, unknown> } & Record<string, unknown>;
    const dataset = await s.store.getDataset(p.projectId, body.dataset);
    if (!dataset) throw Errors.notFound(`dataset "${body.dataset}"`);
    // Refuse at once what would only fail later in the worker: unknown columns and families.
    const columns = new Set(dataset.columns.map((c) => c.name));
    const problems: { pointer: string; message: string }[] = [];
    if (!columns.has(body.target)) problems.push({ pointer: '/target', message: `dataset "${dataset.name}" has no column "${body.target}"` });
    if (body.group !== undefined && !columns.has(body.group)) problems.push({ pointer: '/group', message: `dataset "${dataset.name}" has no column "${body.group}"` });
    for (const [i, c] of (body.ignore ?? []).entries()) if (!columns.has(c)) problems.push({ pointer: `/ignore/${i}`, message: `dataset "${dataset.name}" has no column "${c}"` });
    if (body.group !== undefined && body.group === body.target) problems.push({ pointer: '/group', message: 'the group column cannot be the target' });
    for (const [i, c] of (body.ignore ?? []).entries()) {
      if (c === body.target || c === body.group) problems.push({ pointer: `/ignore/${i}`, message: `"${c}" is the ${c === body.target ? 'target' : 'group'} column` });
    }
    for (const [f, raw] of Object.entries(body.params ?? {})) {
      const family = Object.hasOwn(FAMILIES, f) ? FAMILIES[f as TableFamily] : undefined;
      if (!family) {
        problems.push({ pointer: `/params/${f}`, message: 'unknown model family (known: logistic, linear, gbdt, mlp)' });
        continue;
      }
      // The same validation the training worker applies, so a bad value is refused now, not later.
      const task = body['task'] === 'multiclass' || body['task'] === 'regression' ? body['task'] : 'binary';
      try {
        family.parseParams(raw as Record<string, unknown>, task, dataset.rows);
      } catch (e) {
        if (!(e instanceof MedfitError)) throw e;
        for (const d of e.details) problems.push({ pointer: `/params/${f}/${d.pointer.slice(f.length + 1)}`, message: d.message });
      }
    }
    if (problems.length) throw Errors.badData('', problems.map((x) => `${x.pointer}: ${x.message}`).join('; '), problems);
    const { dataset: _d, name, ...spec } = body;
    const job = await s.store.createJob({ id: randomUUID(), projectId: p.projectId, datasetId: dataset.id, name, spec });
    s.jobs.submit(job, dataset);
    req.auditEntry = { action: 'job.create', resource: `job:${job.id}`, rows: dataset.rows };
    return reply.code(202).header('location', `/v1/jobs/${job.id}`).send({ id: job.id, status: job.status });
  });

  app.get('/v1/jobs', { schema: { summary: 'List jobs', tags: ['jobs'] } }, async (req) => {
    const p = requireScope(req, 'read');
    return { jobs: (await s.store.listJobs(p.projectId)).map(view) };
  });

  app.get('/v1/jobs/:id', { schema: { summary: 'A job', tags: ['jobs'], params: idParams } }, async (req) => {
    const p = requireScope(req, 'read');
    const job = await s.store.getJob(p.projectId, (req.params as { id: string }).id);
    if (!job) throw Errors.notFound('job');
    return view(job);
  });

  app.post('/v1/jobs/:id/cancel', { schema: { summary: 'Cancel a queued or running job', tags: ['jobs'], params: idParams } }, async (req) => {
    const p = requireScope(req, 'train');
    const job = await s.store.getJob(p.projectId, (req.params as { id: string }).id);
    if (!job) throw Errors.notFound('job');
    if (job.status !== 'queued' && job.status !== 'running') throw Errors.conflict(`job is already ${job.status}`);
    req.auditEntry = { action: 'job.cancel', resource: `job:${job.id}` };
    if (!s.jobs.cancel(job.id)) {
      // It finished between the read and the cancel: report what it became.
      const now = await s.store.getJob(p.projectId, job.id);
      throw Errors.conflict(`job is already ${now?.status ?? 'finished'}`);
    }
    return { id: job.id, status: 'cancelled' };
  });

  app.get('/v1/jobs/:id/events', { schema: { summary: 'Job progress as Server-Sent Events', tags: ['jobs'], params: idParams } }, async (req, reply) => {
    const p = requireScope(req, 'read');
    const id = (req.params as { id: string }).id;
    // Subscribe before reading the state, so no event falls between the two.
    const queued: JobEvent[] = [];
    let write: (e: JobEvent) => void = (e) => queued.push(e);
    const unsubscribe = s.jobs.subscribe(id, (e) => write(e));
    const job = await s.store.getJob(p.projectId, id);
    if (!job) {
      unsubscribe();
      throw Errors.notFound('job');
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const terminal = (st?: string) => st === 'succeeded' || st === 'failed' || st === 'cancelled';
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      unsubscribe();
      untrack();
      res.end();
    };
    const untrack = s.jobs.trackStream(end);
    const send = (e: JobEvent) => {
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
      if (e.type === 'status' && terminal(e.status)) end();
    };
    req.raw.on('close', end);
    const first: JobEvent = {
      type: 'status',
      status: job.status,
      progress: job.progress,
      ...(job.stage ? { stage: job.stage } : {}),
      ...(job.error ? { error: job.error } : {}),
      ...(job.modelVersion !== null ? { model: { name: job.name, version: job.modelVersion } } : {}),
    };
    send(first);
    if (terminal(job.status)) return;
    write = send;
    for (const e of queued) send(e);
  });
}
