import '@fastify/swagger';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Errors, MedfitError, VERSION, loggableError, removeStaleTemps } from '../core/index.js';
import { connectRedisJobs, createWorkerQueue, type RedisJobs } from '../jobs/index.js';
import { blobKeyProblem, openBlobStore, openPostgresStore, openSqliteStore, type BlobStore, type MetadataStore, type StoreLog } from '../store/index.js';
import { adminRoutes } from './admin.js';
import { cdsHooksRoutes } from './cds-hooks.js';
import { checkScope, createAuthenticator, installAuth, requireScope, type Principal } from './auth.js';
import type { ServerConfig } from './config.js';
import { datasetRoutes } from './datasets.js';
import { settleBody } from './drain.js';
import { installErrorHandling, sendProblem } from './errors.js';
import { jobRoutes } from './jobs.js';
import { bootstrapAdminKey } from './keys.js';
import { installMetrics } from './metrics.js';
import { modelRoutes } from './models.js';
import { streamRoutes } from './stream.js';
import { ModelService } from './models-service.js';
import { JobManager, forgetDataset, type Services } from './services.js';
import { LocalCache } from './local-cache.js';
import { createInferFastPath, v2Plugin, type V2Backend, type V2Model } from './v2/index.js';
import { dashboardRoutes } from './dashboard.js';

/** How long a `/readyz` answer is reused. */
const READY_CHECK_MS = 1000;

/** How long a resolved V2 model is reused before its name and version are resolved again. */
const V2_MODEL_TTL_MS = 1000;

/** A running medfit server: the Fastify app, its services, and how to stop it. */
export interface Server {
  app: FastifyInstance;
  services: Services;
  /** The admin key created on this start, when the store had none (print it once). */
  firstAdminKey: string | undefined;
  /** Stops accepting requests, drains in-flight ones, stops training, closes the stores. */
  close(): Promise<void>;
}


/**
 * Builds the whole server: by default on the embedded parts (SQLite metadata and files under
 * `config.dataDir`, training jobs in worker threads of this process), or, as `config` says, on
 * PostgreSQL, a Redis job queue and bus, and object storage, in the role `config.role` (an API
 * replica that never trains, a worker that only trains and answers its probes, or both). ONNX
 * Runtime answers predictions. Interrupted jobs are queued again. Nothing listens until
 * `app.listen`. Logs go to stdout, or to `options.logStream`. V2 inferences are not
 * request-logged (the fast path skips Fastify's logger); metrics and the audit trail count them.
 * A database, Redis or storage that does not answer at start is `Errors.unavailable` naming it (without its password).
 */
export async function initServer(config: ServerConfig, options: { logStream?: NodeJS.WritableStream } = {}): Promise<Server> {
  let closing = false;
  // V2 inference is answered before Fastify when the fast path is set (see api/v2/fast.ts).
  let fastPath: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  // Requests being answered, by either path (an autoscaling signal on /metrics).
  let inFlight = 0;
  const app = Fastify({
    serverFactory: (handler) =>
      createServer((req, res) => {
        inFlight++;
        res.once('close', () => inFlight--);
        if (!fastPath?.(req, res)) handler(req, res);
      }),
    logger: {
      level: config.logLevel,
      ...(options.logStream ? { stream: options.logStream } : {}),
      // Request logs carry method, route and status only: bodies (records) and headers (keys) never.
      serializers: {
        req: (req: { method: string; url: string; id: string }) => ({ id: req.id, method: req.method, url: req.url.split('?')[0] }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    },
    bodyLimit: config.maxBodyBytes,
    // allErrors stays off: on a hostile body (millions of wrong items) it builds millions of
    // errors, which took minutes and a gigabyte; the first problem is reported, as ajv advises.
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false, allowUnionTypes: true } },
    // Requests that reach a closing server get our 503 (with Retry-After) from the hook below.
    return503OnClosing: false,
    // Errors Fastify raises before routing (a malformed % escape in the URL) speak our formats too.
    frameworkErrors: (err, req, res) => {
      const reply = res as unknown as FastifyReply;
      // The body is read away first, as for every refusal, so a client still sending sees the 400.
      void settleBody(req, reply).then(() => {
        if (req.url.startsWith('/v2')) return reply.code(400).send({ error: `malformed request: ${err.message}` });
        return sendProblem(reply, 400, `malformed request: ${err.message}`, err.code);
      });
    },
  });
  mkdirSync(config.dataDir, { recursive: true });
  removeStaleTemps(config.dataDir);
  if (config.deidKeyGenerated) {
    app.log.warn('MEDFIT_DEID_KEY is not set: FHIR imports and de-identified tables use a random key until this process stops, so their pseudonyms and date shifts will not match those of data imported after a restart');
  }
  // The stores report what they handle by themselves (audit flushes retried, entries kept at
  // close and imported at open, connections lost and back) through the server's log.
  const log: StoreLog = (level, message, detail) => app.log[level]({ store: detail }, message);
  const parts = await openParts(config, log, (level, message) => app.log[level](message));
  const { store, blobs, redis } = parts;
  const firstAdminKey = await bootstrapAdminKey(store, config.adminKey).catch(async (e: unknown) => {
    await parts.close();
    throw e;
  });
  installErrorHandling(app);
  app.addHook('onRequest', (_req, _reply, done) => (closing ? done(Errors.unavailable('the server is shutting down')) : done()));
  await app.register(swagger, {
    openapi: {
      info: { title: 'medfit', version: VERSION, description: 'Health and fitness models as a service. /v1: the platform; /v2: the Open Inference Protocol.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const auth = createAuthenticator(store);
  installAuth(app, auth);
  const metrics = installMetrics(app, store, {
    inFlight: () => inFlight,
    runningHere: () => queue?.size() ?? 0,
    ...(redis ? { queue: () => redis.counts() } : {}),
  });
  // Where storage is not the data directory, the data directory is a cache, held to a budget.
  const cache = config.storage.kind === 'file' && config.storage.dir === config.dataDir ? undefined : new LocalCache(config.dataDir, config.cacheBytes);
  cache?.adopt((rel) => forgetDataset(config.dataDir, rel));
  const trains = config.role !== 'api';
  const serves = config.role !== 'worker';
  const queue = trains ? createWorkerQueue({ concurrency: config.concurrency, manifestKey: config.manifestKey }) : undefined;
  const announce = (m: Parameters<RedisJobs['publish']>[0]) =>
    void redis?.publish(m).catch((e: unknown) => app.log.warn({ err: loggableError(e) }, 'a change could not be announced to the other processes (Redis unavailable); their caches expire by themselves within seconds'));
  const models = new ModelService(
    store,
    config.dataDir,
    config.modelCacheSize,
    (message, err) => (err instanceof Error ? app.log.error({ err: loggableError(err) }, message) : app.log.error(message)),
    { key: config.manifestKey, blobs, cache, onBatch: (requests, rows) => metrics.observeBatch(requests, rows), ...(redis ? { broadcast: (projectId: string, name: string) => announce({ t: 'models', projectId, name }) } : {}) },
  );
  const jobs = new JobManager(
    store,
    queue,
    config.dataDir,
    {
      onTerminal: (status) => metrics.jobsFinished.inc({ status }),
      onVersion: (projectId, name) => models.invalidate(projectId, name),
      log: (level, message, err) => app.log[level]({ err: loggableError(err) }, message),
    },
    redis ? { redis, blobs, cache, train: trains, serve: serves, concurrency: config.concurrency } : undefined,
  );
  // Another process changed a model's versions or a key: this one's caches forget them now.
  redis?.onMessage((m) => {
    if (m.t === 'models') models.invalidateHere(m.projectId, m.name);
    else if (m.t === 'keys') auth.forget();
    // Only a dataset's own key is removed: the bus is shared infrastructure, its messages checked.
    else if (m.t === 'dataset' && m.file.startsWith('datasets/') && blobKeyProblem(m.file) === undefined) {
      cache?.forget(m.file);
      forgetDataset(config.dataDir, m.file);
    }
  });
  const services: Services = { config, store, blobs, redis, cache, jobs, models, metrics };
  if (!serves) {
    // A worker answers its probes and metrics only: API requests belong to the API replicas.
    app.addHook('onRequest', (req, _reply, done) => {
      const path = req.url.split('?')[0];
      done(path === '/healthz' || path === '/readyz' || path === '/metrics' ? undefined : Errors.notFound(`${path} on a training worker (send API requests to an API replica)`));
    });
  }

  // The audit trail: who did what to which dataset or model version, how many rows; never values.
  // Every /v1 answer holds a project's data (profiles, categories, predictions): no browser or
  // proxy keeps a copy on disk. A route that set its own cache policy keeps it.
  app.addHook('onSend', (req, reply, payload, done) => {
    if (req.url.startsWith('/v1/') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    const p = req.principal;
    const entry = req.auditEntry ?? (p && reply.statusCode === 403 ? { action: 'denied', resource: `${req.method} ${req.routeOptions.url ?? ''}` } : undefined);
    if (!p || !entry) return done();
    store.audit({ projectId: p.projectId, keyId: p.keyId, action: entry.action, resource: entry.resource ?? null, rows: entry.rows ?? null, status: reply.statusCode }).then(() => done(), done);
  });

  app.get('/healthz', { schema: { summary: 'Liveness: the process runs', tags: ['system'] } }, async () => ({ status: 'ok', version: VERSION, role: config.role }));
  // Readiness is public and probed often: one check a second at most, shared by concurrent probes.
  let lastCheck: { at: number; checks: Promise<Record<string, string>> } | undefined;
  app.get('/readyz', { schema: { summary: 'Readiness: the database, Redis and storage answer (503 when one does not)', tags: ['system'] } }, async (_req, reply) => {
    if (!lastCheck || Date.now() - lastCheck.at > READY_CHECK_MS) lastCheck = { at: Date.now(), checks: readiness(parts) };
    const checks = await lastCheck.checks;
    const ready = !closing && Object.values(checks).every((c) => c === 'ok');
    if (!ready) reply.code(503).header('retry-after', '5');
    return { status: ready ? 'ready' : closing ? 'shutting down' : 'not ready', role: config.role, checks };
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // Sessions, keys, families and the audit trail; after installAuth (it notes each key's use).
  await adminRoutes(app, services, {
    forgetKeys: () => {
      auth.forget();
      announce({ t: 'keys' });
    },
  });
  await datasetRoutes(app, services);
  await jobRoutes(app, services);
  await modelRoutes(app, services);
  await cdsHooksRoutes(app, services, { publicUrl: config.publicUrl, fhirServers: config.cdsFhirServers });
  await streamRoutes(app, services);
  await dashboardRoutes(app);

  const v2Models = new Map<string, { model: V2Model; until: number }>();
  models.onInvalidate(() => v2Models.clear());
  const backend: V2Backend = {
    server: () => ({ name: 'medfit', version: VERSION, extensions: ['binary_tensor_data'] }),
    ready: () => !closing,
    async model(ctx, name, version) {
      const projectId = (ctx as { projectId?: string } | undefined)?.projectId;
      if (!projectId) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
      // The resolved model is reused for a moment: resolving and wrapping it per inference was
      // a measurable share of a one-row prediction. Stage changes and new versions clear it.
      const key = `${projectId}\u0000${name}\u0000${version ?? ''}`;
      const hit = v2Models.get(key);
      if (hit && hit.until > Date.now()) return hit.model;
      let rec;
      try {
        rec = await models.resolve(projectId, name, version);
      } catch (e) {
        // Only "no such model or version" is the protocol's 404; anything else is a real failure.
        if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_NOT_FOUND') return undefined;
        throw e;
      }
      const loaded = await models.load(rec);
      const record = rec;
      const model: V2Model = {
        name,
        version: String(rec.version),
        // Only the metadata route lists versions; inference never pays for it.
        versions: async () => (await models.versions(projectId, name)).map((v) => String(v.version)),
        platform: 'onnx_onnxv1',
        inputs: loaded.inputs,
        outputs: loaded.outputs,
        ready: true,
        infer: (features, rows) => models.infer(record, features, rows, loaded),
      };
      if (v2Models.size > 10_000) v2Models.clear();
      v2Models.set(key, { model, until: Date.now() + V2_MODEL_TTL_MS });
      return model;
    },
  };
  // Every V2 inference, by either path, is counted and audited (rows, never values).
  const onInfer = (ctx: unknown, model: { name: string; version: string }, rows: number) => {
    const p = ctx as Principal;
    metrics.countPredictions(p.projectId, model.name, model.version, 'v2', rows);
    void store.audit({ projectId: p.projectId, keyId: p.keyId, action: 'model.infer', resource: `model:${model.name}/${model.version}`, rows, status: 200 });
  };
  await app.register(v2Plugin, {
    backend,
    context: (req) => requireScope(req, 'predict'),
    bodyLimit: config.maxBodyBytes,
    onInfer,
  });
  if (serves) fastPath = createInferFastPath({
    backend,
    authenticate: async (header) => {
      const p = await auth.authenticate(header);
      try {
        return checkScope(p, 'predict');
      } catch (e) {
        void store.audit({ projectId: p.projectId, keyId: p.keyId, action: 'denied', resource: 'POST /v2/models/:model/infer', rows: null, status: 403 });
        throw e;
      }
    },
    bodyLimit: config.maxBodyBytes,
    onInfer,
    ready: () => !closing,
    onResponse: (route, status, seconds) => metrics.observe('POST', route, status, seconds),
    onInternalError: (err) => app.log.error({ err: loggableError(err) }, 'v2 request failed'),
  });
  await jobs.resume();
  return {
    app,
    services,
    firstAdminKey,
    async close() {
      if (closing) return;
      closing = true;
      // Event streams last as long as their job: end them, or closing would wait for training.
      jobs.endStreams();
      // Fastify stops accepting connections and waits for in-flight requests to finish.
      await app.close();
      await jobs.close();
      await models.close();
      auth.forget();
      await parts.close();
    },
  };
}

/** The metadata store, the blob store and (in a cluster) Redis, as the configuration names them. */
interface Parts {
  store: MetadataStore;
  blobs: BlobStore;
  redis: RedisJobs | undefined;
  close(): Promise<void>;
}

/**
 * Opens the parts the server stands on. One that does not answer is `Errors.unavailable` naming
 * it (a URL without its password); whatever was opened before it is closed again.
 */
async function openParts(config: ServerConfig, log: StoreLog, redisLog: (level: 'info' | 'warn' | 'error', message: string) => void): Promise<Parts> {
  const opened: Array<{ close(): Promise<void> }> = [];
  const close = async () => {
    for (const p of opened.reverse()) await p.close().catch(() => undefined);
  };
  try {
    const db = config.database;
    const store = db
      ? await openPostgresStore(db.url, { schema: db.schema, poolMax: db.poolMax, statementTimeoutMs: db.statementTimeoutMs, applicationName: `medfit-${config.role}`, log })
      : openSqliteStore(join(config.dataDir, 'medfit.db'), { log });
    opened.push(store);
    const blobs = await openBlobStore(config.storage, { dataDir: config.dataDir, log });
    opened.push(blobs);
    // A shared folder collects the temporary files of writers that died, as the data directory does
    // (only those untouched for an hour: another process may be writing one now).
    if (config.storage.kind === 'file' && config.storage.dir !== config.dataDir) removeStaleTemps(config.storage.dir);
    if (config.storage.kind !== 'file' || config.storage.dir !== config.dataDir) {
      // Storage that is not this process's own folder must answer now, as the database must.
      await blobs.check().catch((e: unknown) => {
        throw Errors.unavailable(`cannot reach the storage at ${blobs.url} (MEDFIT_STORAGE_URL): ${e instanceof Error ? e.message : String(e)}`);
      });
    }
    const redis = config.redis ? await connectRedisJobs(config.redis, redisLog) : undefined;
    if (redis) opened.push(redis);
    return { store, blobs, redis, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** `ok` or what is wrong, per part (for `/readyz`; messages name no secret). */
async function readiness(parts: Parts): Promise<Record<string, string>> {
  const check = (p: Promise<void> | undefined) =>
    p === undefined ? Promise.resolve(undefined) : p.then(() => 'ok', (e: unknown) => (e instanceof MedfitError ? e.message : 'failed'));
  const [database, redis, storage] = await Promise.all([check(parts.store.ping()), check(parts.redis?.ping()), check(parts.blobs.check())]);
  return { database: database!, storage: storage!, ...(redis !== undefined ? { redis } : {}) };
}
