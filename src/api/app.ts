import '@fastify/swagger';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Errors, MedfitError, VERSION, loggableError, removeStaleTemps } from '../core/index.js';
import { createWorkerQueue } from '../jobs/index.js';
import { openSqliteStore } from '../store/index.js';
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
import { JobManager, type Services } from './services.js';
import { createInferFastPath, v2Plugin, type V2Backend, type V2Model } from './v2/index.js';
import { dashboardRoutes } from './dashboard.js';

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
 * Builds the whole server on the embedded defaults: SQLite metadata and files under
 * `config.dataDir`, training jobs in worker threads, ONNX Runtime for predictions. Interrupted
 * jobs are queued again. Nothing listens until `app.listen`. Logs go to stdout, or to
 * `options.logStream`. V2 inferences are not request-logged (the fast path skips Fastify's
 * logger); metrics and the audit trail count them.
 */
export async function initServer(config: ServerConfig, options: { logStream?: NodeJS.WritableStream } = {}): Promise<Server> {
  let closing = false;
  // V2 inference is answered before Fastify when the fast path is set (see api/v2/fast.ts).
  let fastPath: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  const app = Fastify({
    serverFactory: (handler) =>
      createServer((req, res) => {
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
  // The store reports what it handles by itself (audit flushes retried, entries kept at close and
  // imported at open) through the server's log.
  const store = openSqliteStore(join(config.dataDir, 'medfit.db'), { log: (level, message, detail) => app.log[level]({ store: detail }, message) });
  const firstAdminKey = await bootstrapAdminKey(store, config.adminKey).catch(async (e: unknown) => {
    await store.close();
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
  const metrics = installMetrics(app, store);
  const queue = createWorkerQueue({ concurrency: config.concurrency, manifestKey: config.manifestKey });
  const models = new ModelService(
    store,
    config.dataDir,
    config.modelCacheSize,
    (message, err) => (err instanceof Error ? app.log.error({ err: loggableError(err) }, message) : app.log.error(message)),
    { key: config.manifestKey },
  );
  const jobs = new JobManager(store, queue, config.dataDir, {
    onTerminal: (status) => metrics.jobsFinished.inc({ status }),
    onVersion: (projectId, name) => models.invalidate(projectId, name),
    log: (level, message, err) => app.log[level]({ err: loggableError(err) }, message),
  });
  const services: Services = { config, store, jobs, models, metrics };

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

  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['system'] } }, async () => ({ status: 'ok', version: VERSION }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // Sessions, keys, families and the audit trail; after installAuth (it notes each key's use).
  await adminRoutes(app, services, { forgetKeys: () => auth.forget() });
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
  fastPath = createInferFastPath({
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
      await store.close();
    },
  };
}
