/**
 * The Open Inference Protocol (KServe V2) REST routes under `/v2`, as an encapsulated Fastify
 * plugin: its body parser and error handler apply to `/v2/*` only, so the lead's `/v1` routes keep
 * JSON parsing and RFC 9457 problems. Register it without a prefix; it adds `/v2` itself.
 */
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
// For its FastifySchema augmentation (tags, summary), so the routes document themselves.
import type {} from '@fastify/swagger';
import { settleBody } from '../drain.js';
import { HEADER_LENGTH } from './codec.js';
import { errorResponse, JSON_TYPE, lookupModel, runInfer } from './handlers.js';
import type { V2Backend, V2Model, V2PluginOptions } from './types.js';

export const DEFAULT_BODY_LIMIT = 32 * 1024 * 1024;

interface ModelParams {
  model: string;
  version?: string;
}

/**
 * Registers the V2 routes: health, server and model metadata, model readiness and inference
 * (JSON and binary tensor data). Options: `{ backend, context?, bodyLimit? }`.
 */
export const v2Plugin: FastifyPluginAsync<V2PluginOptions> = async (app, opts) => {
  if (opts.backend === undefined) throw new Error('v2Plugin: the "backend" option is required');
  // A nested register gives /v2 its own not-found handler (one per prefix in Fastify).
  await app.register(routes, { ...opts, prefix: '/v2' });
};

async function routes(app: FastifyInstance, opts: V2PluginOptions): Promise<void> {
  const backend: V2Backend = opts.backend;
  const context = opts.context ?? (() => undefined);

  // Triton's Python client sends binary bodies with no Content-Type at all, others send
  // application/octet-stream or application/json; the framing is told by
  // Inference-Header-Content-Length, not the media type. So every body arrives as bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT }, (_req, body, done) => {
    done(null, body);
  });

  app.setErrorHandler(async (err: FastifyError | Error, req, reply) => {
    const { status, body, internal, retryAfter } = errorResponse(err);
    if (internal) req.log.error({ err: { message: err.message, stack: err.stack } }, 'v2 request failed');
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    // A body refused before it was read (over the limit) is read first, so a client still
    // sending sees this answer instead of a reset connection.
    await settleBody(req, reply);
    return reply.code(status).type(JSON_TYPE).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).type(JSON_TYPE).send(JSON.stringify({ error: `no V2 route ${req.method} ${req.url.split('?')[0]}` }));
  });

  const lookup = (req: FastifyRequest<{ Params: ModelParams }>): Promise<V2Model> => lookupModel(backend, context(req), req.params.model, req.params.version);

  app.get('/health/live', { schema: doc('Server live') }, async (_req, reply) => {
    return reply.type(JSON_TYPE).send('{"live":true}');
  });

  app.get('/health/ready', { schema: doc('Server ready') }, async (_req, reply) => {
    // 200 means ready, 400 not (Triton's choice; the spec only says errors are typically 400).
    const ready = backend.ready();
    return reply.code(ready ? 200 : 400).type(JSON_TYPE).send(ready ? '{"ready":true}' : '{"ready":false}');
  });

  app.get('/', { schema: doc('Server metadata') }, async (_req, reply) => {
    const s = backend.server();
    const extensions = s.extensions.includes('binary_tensor_data') ? s.extensions : [...s.extensions, 'binary_tensor_data'];
    return reply.type(JSON_TYPE).send(JSON.stringify({ name: s.name, version: s.version, extensions }));
  });

  const metadata = async (req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply): Promise<FastifyReply> => {
    const m = await lookup(req);
    const body = {
      name: m.name,
      versions: typeof m.versions === 'function' ? await m.versions() : m.versions,
      platform: m.platform,
      inputs: m.inputs.map(({ name, datatype, shape }) => ({ name, datatype, shape })),
      outputs: m.outputs.map(({ name, datatype, shape }) => ({ name, datatype, shape })),
    };
    return reply.type(JSON_TYPE).send(JSON.stringify(body));
  };
  app.get('/models/:model', { schema: doc('Model metadata') }, metadata);
  app.get('/models/:model/versions/:version', { schema: doc('Model metadata') }, metadata);

  const ready = async (req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply): Promise<FastifyReply> => {
    const m = await lookup(req);
    return reply
      .code(m.ready ? 200 : 400)
      .type(JSON_TYPE)
      .send(JSON.stringify({ name: m.name, ready: m.ready }));
  };
  app.get('/models/:model/ready', { schema: doc('Model ready') }, ready);
  app.get('/models/:model/versions/:version/ready', { schema: doc('Model ready') }, ready);

  const infer = async (req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply): Promise<FastifyReply> => {
    const ctx = context(req);
    const out = await runInfer(backend, ctx, req.params.model, req.params.version, req.body as Buffer | undefined, req.headers[HEADER_LENGTH]);
    opts.onInfer?.(ctx, out.model, out.rows);
    if (out.headerLength !== undefined) reply.header(HEADER_LENGTH, out.headerLength);
    return reply.type(out.contentType).send(out.body);
  };
  app.post('/models/:model/infer', { schema: doc('Inference', INFER_DESCRIPTION) }, infer);
  app.post('/models/:model/versions/:version/infer', { schema: doc('Inference', INFER_DESCRIPTION) }, infer);
}

/** What the inference routes take, for the OpenAPI document. */
const INFER_DESCRIPTION =
  'An $inference_request of the one input the model metadata lists: table models take FP32 [batch, features] (features already through the fitted pipeline); ' +
  'sequence models take FP32 [batch, steps, channels]: windows already resampled to the model\'s rate and normalised with its per-channel mean and std ' +
  '(GET /v1/models/{name}/versions/{v} gives them under `sequence`), step-major. Raw records and raw sensor samples go to POST /v1/models/{name}/predict.';

/** OpenAPI description only (for @fastify/swagger): no validation schema, so nothing compiles per route. */
function doc(summary: string, description?: string): { tags: string[]; summary: string; description?: string } {
  return { tags: ['v2'], summary, ...(description !== undefined ? { description } : {}) };
}
