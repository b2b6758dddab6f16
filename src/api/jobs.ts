import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Errors, MedfitError } from '../core/index.js';
import { CALIBRATE_OPTIONS, parseBudget } from '../automl/index.js';
import { FAMILIES, SEQUENCE_FAMILIES, type ModelFamily } from '../models/index.js';
import { SEQUENCE_LIMITS, defaultColumn, lengthSteps, noDefaultColumn, readFilter, readLength } from '../sequence/index.js';
import type { TrainJobSpec } from '../jobs/index.js';
import type { DatasetRecord } from '../store/index.js';
import type { JobRecord } from '../store/index.js';
import { requireScope } from './auth.js';
import { regressionTarget } from './datasets.js';
import type { JobEvent, Services } from './services.js';

const MODEL_NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';

const jobBody = {
  type: 'object',
  required: ['dataset', 'target', 'name'],
  additionalProperties: false,
  properties: {
    dataset: { type: 'string', maxLength: 64, description: 'dataset id' },
    target: {
      type: ['string', 'array'],
      minLength: 1,
      maxLength: 256,
      minItems: 1,
      maxItems: 64,
      items: { type: 'string', minLength: 1, maxLength: 256 },
      description: 'the target column; a sequence job may name several numeric ones (one multi-output regression)',
    },
    name: { type: 'string', pattern: MODEL_NAME, description: 'model name; each succeeded job adds a version' },
    task: { type: 'string', enum: ['auto', 'binary', 'multiclass', 'regression'] },
    model: {
      type: 'string',
      enum: ['auto', 'logistic', 'linear', 'gbdt', 'mlp', 'ensemble', 'lstm', 'gru', 'cnn', 'cnn-lstm', 'window-gbdt'],
      description: 'table families (or ensemble: a weighted blend of them) for table jobs, sequence families (window-gbdt, lstm, gru, cnn, cnn-lstm) for sequence jobs',
    },
    budget: {
      type: ['number', 'string'],
      maxLength: 32,
      description:
        'table jobs: seconds (or a duration such as "60s", "5m") for a hyperparameter search by successive halving on the folds, and an ensemble of the best when it scores better; absent: each family with its defaults',
    },
    calibrate: { type: 'string', maxLength: 32, description: 'table classification jobs: post-hoc calibration fitted on out-of-fold predictions (default auto: chosen by cross-fitted log loss)' },
    params: {
      type: 'object',
      description: 'hyperparameters by family, e.g. {"gbdt": {"trees": 300}}',
      additionalProperties: { type: 'object', additionalProperties: { type: ['number', 'string', 'boolean', 'array'] } },
    },
    cv: { type: 'integer', minimum: 2, maximum: 20 },
    nested: { type: 'boolean', description: 'also estimate the whole choice by nested cross-validation (k times the work)' },
    strict: {
      type: 'boolean',
      description:
        'refuse to train (the job fails with MEDFIT_ERR_BAD_DATA naming the columns and the evidence) when the leakage check flags a feature: one that alone predicts the target almost perfectly, follows the row order of a file sorted by outcome, or is dated after the outcome; without it the findings are warnings',
    },
    group: { type: 'string', maxLength: 256 },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
    ignore: { type: 'array', items: { type: 'string' }, maxItems: 10000 },
    sequence: {
      type: 'object',
      description:
        'Train on a long-format sensor table (one row per sample): sessions are resampled, windowed and cross-validated leaving subjects out, as `medfit train --sequence` does. Columns default to subject, t/time/timestamp and session (when there is one).',
      additionalProperties: false,
      properties: {
        subject: { type: 'string', minLength: 1, maxLength: 256, description: 'the subject column (folds leave subjects out)' },
        session: { type: 'string', minLength: 1, maxLength: 256, description: 'the session column' },
        time: { type: 'string', minLength: 1, maxLength: 256, description: 'the time column: ISO 8601, epoch seconds or milliseconds, or relative times' },
        timeUnit: { type: 'string', enum: ['s', 'ms'], description: 'how to read numeric relative times (default detected)' },
        channels: { type: 'array', minItems: 1, maxItems: 512, items: { type: 'string', minLength: 1, maxLength: 256 }, description: 'the channels, in order (default every other numeric column)' },
        rate: { type: 'number', exclusiveMinimum: 0, maximum: 10000, description: 'resample to this rate in Hz (default the data\'s own)' },
        window: { type: ['integer', 'string'], minimum: 1, maximum: 100000, maxLength: 32, description: 'steps per window (128) or a duration ("2.56s", "500ms"); default "2.56s"' },
        stride: { type: ['integer', 'string'], minimum: 1, maximum: 100000, maxLength: 32, description: 'steps between windows, as window (default half a window)' },
        label: { type: 'string', enum: ['majority', 'last', 'mean'], description: "a window's label: majority | last (classes), mean | last (values)" },
        filter: { type: 'string', maxLength: 32, description: '"lowpass:<hz>" or "median:<samples>", applied after resampling' },
        maxGap: { type: 'number', exclusiveMinimum: 0, maximum: 86400, description: 'seconds; a longer gap splits a session' },
        balance: { type: 'string', enum: ['none', 'over', 'under'], description: 'balance classes of training windows' },
        sensorDropout: { type: 'number', minimum: 0, maximum: 0.9, description: 'share of training windows also trained on with one sensor (an accelerometer or gyroscope triple, or a channel) missing, for devices that lack it (default 0.3)' },
      },
    },
  },
} as const;

type Problem = { pointer: string; message: string };

/**
 * The checks of a sequence job that need only the dataset's columns: the stream's columns exist
 * and play one part each, windows and filters are well written. What needs the data itself (the
 * sampling rate a duration is read at, sessions long enough for a window) is checked by the job.
 */
function checkSequenceJob(o: NonNullable<TrainJobSpec['sequence']>, dataset: DatasetRecord, targets: string[], problems: Problem[]): void {
  const columns = new Set(dataset.columns.map((c) => c.name));
  const missing = (c: string) => `dataset "${dataset.name}" has no column "${c}"`;
  const role = new Map<string, string>();
  const claim = (c: string, what: string, pointer: string) => {
    const other = role.get(c);
    if (other !== undefined) problems.push({ pointer, message: `"${c}" is already the ${other} column` });
    else role.set(c, what);
  };
  for (const t of targets) role.set(t, 'target');
  const pick = (what: 'subject' | 'time' | 'session', required: boolean) => {
    const given = o[what];
    const pointer = `/sequence/${what}`;
    if (given !== undefined) {
      if (!columns.has(given)) problems.push({ pointer, message: missing(given) });
      else claim(given, what, pointer);
      return;
    }
    const found = defaultColumn([...columns], what);
    if (found !== undefined) claim(found, what, pointer);
    else if (required) problems.push({ pointer, message: `dataset "${dataset.name}" has ${noDefaultColumn(what)}` });
  };
  pick('subject', true);
  pick('time', true);
  pick('session', false);
  for (const [i, c] of (o.channels ?? []).entries()) {
    const pointer = `/sequence/channels/${i}`;
    if (!columns.has(c)) problems.push({ pointer, message: missing(c) });
    else claim(c, 'channel', pointer);
  }
  for (const what of ['window', 'stride'] as const) {
    const v = o[what];
    if (v === undefined) continue;
    const l = readLength(v);
    // A duration's steps depend on the rate, known here only when given (else the job checks it).
    const problem = typeof l === 'string' ? l : 'steps' in l || o.rate !== undefined ? lengthSteps(l, o.rate ?? 1) : undefined;
    if (typeof problem === 'string') problems.push({ pointer: `/sequence/${what}`, message: problem });
  }
  if (o.rate !== undefined && o.maxGap !== undefined && o.rate * o.maxGap > SEQUENCE_LIMITS.maxGapSteps) {
    problems.push({ pointer: '/sequence/maxGap', message: `bridges ${Math.round(o.rate * o.maxGap)} steps at ${o.rate} Hz (at most ${SEQUENCE_LIMITS.maxGapSteps}); lower it or the rate` });
  }
  if (o.filter !== undefined) {
    const f = readFilter(o.filter, o.rate);
    if (typeof f === 'string') problems.push({ pointer: '/sequence/filter', message: f });
  }
}

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
    const body = req.body as {
      dataset: string;
      target: string | string[];
      name: string;
      model?: string;
      group?: string;
      nested?: boolean;
      ignore?: string[];
      params?: Record<string, unknown>;
      sequence?: TrainJobSpec['sequence'];
    } & Record<string, unknown>;
    const dataset = await s.store.getDataset(p.projectId, body.dataset);
    if (!dataset) throw Errors.notFound(`dataset "${body.dataset}"`);
    // Refuse at once what would only fail later in the worker: unknown columns and families.
    const columns = new Set(dataset.columns.map((c) => c.name));
    const problems: Problem[] = [];
    const seq = body.sequence;
    const targets = Array.isArray(body.target) ? body.target : [body.target];
    const targetPointer = (i: number) => (Array.isArray(body.target) ? `/target/${i}` : '/target');
    for (const [i, t] of targets.entries()) {
      if (!columns.has(t)) problems.push({ pointer: targetPointer(i), message: `dataset "${dataset.name}" has no column "${t}"` });
      if (targets.indexOf(t) !== i) problems.push({ pointer: targetPointer(i), message: `"${t}" is named twice` });
    }
    if (!seq && Array.isArray(body.target) && body.target.length > 1) problems.push({ pointer: '/target', message: 'a table model learns one target column; several (numeric) targets need a sequence job ("sequence": {…})' });
    const target = targets[0]!;
    const isSequenceFamily = body.model !== undefined && Object.hasOwn(SEQUENCE_FAMILIES, body.model);
    if (seq) {
      if (body.model !== undefined && body.model !== 'auto' && !isSequenceFamily) {
        problems.push({
          pointer: '/model',
          message: ['lstm', 'gru', 'cnn', 'cnn-lstm'].includes(body.model)
            ? `the ${body.model} family is not available on this server yet (available: ${Object.keys(SEQUENCE_FAMILIES).join(', ')})`
            : `"${body.model}" is a table family; a sequence job takes ${Object.keys(SEQUENCE_FAMILIES).join(', ')} or auto`,
        });
      }
      if (body.group !== undefined) problems.push({ pointer: '/group', message: 'a sequence job keeps each subject on one side of every split by itself (sequence.subject); group does not apply' });
      if (body.nested) problems.push({ pointer: '/nested', message: 'nested cross-validation is not available for sequence jobs' });
      if (body['strict'] === true) problems.push({ pointer: '/strict', message: 'strict mode (the leakage check) is for table jobs, not sequence jobs' });
      for (const key of ['budget', 'calibrate'] as const) if (body[key] !== undefined) problems.push({ pointer: `/${key}`, message: `${key} is for table jobs, not sequence jobs` });
      checkSequenceJob(seq, dataset, targets, problems);
    } else if (body.model !== undefined && body.model !== 'auto' && body.model !== 'ensemble' && !Object.hasOwn(FAMILIES, body.model)) {
      problems.push({ pointer: '/model', message: `"${body.model}" learns from windows of sensor streams: add "sequence" options (a long-format dataset with subject and time columns)` });
    }
    if (body['budget'] !== undefined) {
      const b = parseBudget(body['budget']);
      // Nested cross-validation searches once more inside each outer fold: k + 1 budgets in all.
      const spent = typeof b === 'number' ? b * (body.nested ? ((body['cv'] as number | undefined) ?? 5) + 1 : 1) : 0;
      // The parser's own bounds (1 s to 24 h) are the CLI's; this server's may be lower: say both.
      if (typeof b === 'string') problems.push({ pointer: '/budget', message: `expected ${b}; this server allows at most ${s.config.maxBudgetSeconds} seconds of search (MEDFIT_MAX_BUDGET_SECONDS)` });
      else if (spent > s.config.maxBudgetSeconds) {
        problems.push({
          pointer: '/budget',
          message: `${spent} seconds of search${body.nested ? ' (the budget once, then once in each outer fold of nested cross-validation)' : ''} is more than this server allows (${s.config.maxBudgetSeconds}, MEDFIT_MAX_BUDGET_SECONDS)`,
        });
      }
    }
    // Checked here rather than by the schema's enum, so the message lists what is accepted.
    if (body['calibrate'] !== undefined && !(CALIBRATE_OPTIONS as readonly unknown[]).includes(body['calibrate'])) {
      problems.push({ pointer: '/calibrate', message: `must be one of ${CALIBRATE_OPTIONS.join(', ')}` });
    } else if (body['calibrate'] !== undefined && body['calibrate'] !== 'none' && body['calibrate'] !== 'auto' && !seq) {
      if (body['task'] === 'regression') problems.push({ pointer: '/calibrate', message: 'calibration is for classifiers\' probabilities, and the task is regression' });
      else if ((body['task'] === undefined || body['task'] === 'auto') && columns.has(target) && (await regressionTarget(s, dataset, target)))
        problems.push({ pointer: '/calibrate', message: `calibration is for classifiers' probabilities, and "${target}" is a numeric target of many values (regression): leave calibration at auto or none` });
    }
    if (body.group !== undefined && !columns.has(body.group)) problems.push({ pointer: '/group', message: `dataset "${dataset.name}" has no column "${body.group}"` });
    for (const [i, c] of (body.ignore ?? []).entries()) if (!columns.has(c)) problems.push({ pointer: `/ignore/${i}`, message: `dataset "${dataset.name}" has no column "${c}"` });
    if (body.group !== undefined && body.group === target) problems.push({ pointer: '/group', message: 'the group column cannot be the target' });
    for (const [i, c] of (body.ignore ?? []).entries()) {
      if (targets.includes(c) || c === body.group) problems.push({ pointer: `/ignore/${i}`, message: `"${c}" is the ${targets.includes(c) ? 'target' : 'group'} column` });
    }
    const known: Readonly<Record<string, ModelFamily | undefined>> = seq ? SEQUENCE_FAMILIES : FAMILIES;
    for (const [f, raw] of Object.entries(body.params ?? {})) {
      const family = Object.hasOwn(known, f) ? known[f] : undefined;
      if (!family) {
        problems.push({ pointer: `/params/${f}`, message: `unknown model family for a ${seq ? 'sequence' : 'table'} job (known: ${Object.keys(known).join(', ')})` });
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
    // A table job's one target is stored as a text, as before sequence jobs took several.
    if (!seq) spec.target = target;
    const job = await s.store.createJob({ id: randomUUID(), projectId: p.projectId, datasetId: dataset.id, name, spec });
    await s.jobs.submit(job, dataset);
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
    // A succeeded job's warnings (the leakage check's among them) are kept with the version it
    // registered: shown here too, so a client that follows the job sees them without another call.
    const version = job.modelVersion !== null ? await s.store.getModelVersion(p.projectId, job.name, job.modelVersion) : undefined;
    const { warnings, leakage } = (version?.metrics as { warnings?: unknown; leakage?: unknown } | undefined) ?? {};
    return { ...view(job), ...(Array.isArray(warnings) ? { warnings } : {}), ...(leakage !== undefined ? { leakage } : {}) };
  });

  app.post('/v1/jobs/:id/cancel', { schema: { summary: 'Cancel a queued or running job', tags: ['jobs'], params: idParams } }, async (req) => {
    const p = requireScope(req, 'train');
    const job = await s.store.getJob(p.projectId, (req.params as { id: string }).id);
    if (!job) throw Errors.notFound('job');
    if (job.status !== 'queued' && job.status !== 'running') throw Errors.conflict(`job is already ${job.status}`);
    req.auditEntry = { action: 'job.cancel', resource: `job:${job.id}` };
    if (!(await s.jobs.cancel(job.id))) {
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
    const { unsubscribe, past } = s.jobs.subscribe(id, (e) => write(e));
    const job = await s.store.getJob(p.projectId, id);
    if (!job) {
      unsubscribe();
      throw Errors.notFound('job');
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const terminal = (st?: string) => st === 'succeeded' || st === 'failed' || st === 'cancelled';
    const heartbeat = setInterval(() => {
      res.write(': keep-alive\n\n');
      // In a cluster the job's end reaches this replica over Redis; an end published while Redis
      // was away is found in the store instead, so no stream waits for ever.
      if (s.redis) void s.store.getJob(p.projectId, id).then((now) => now && !ended && terminal(now.status) && send(statusEvent(now)), () => undefined);
    }, s.redis ? 5000 : 15_000);
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
    const first = statusEvent(job);
    // The curve and leaderboard so far first (a page opened late or after the end draws them all).
    for (const e of past) send(e);
    send(first);
    if (terminal(job.status)) return;
    write = send;
    for (const e of queued) send(e);
  });
}

/** A job's stored state as a status event. */
function statusEvent(job: JobRecord): JobEvent {
  return {
    type: 'status',
    status: job.status,
    progress: job.progress,
    ...(job.stage ? { stage: job.stage } : {}),
    ...(job.error ? { error: job.error } : {}),
    ...(job.modelVersion !== null ? { model: { name: job.name, version: job.modelVersion } } : {}),
  };
}
