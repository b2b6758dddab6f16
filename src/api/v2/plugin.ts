/**
 * The Open Inference Protocol (KServe V2) REST routes under `/v2`, as an encapsulated Fastify
 * plugin: its body parser and error handler apply to `/v2/*` only, so the lead's `/v1` routes keep
 * JSON parsing and RFC 9457 problems. Register it without a prefix; it adds `/v2` itself.
 */
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
// For its FastifySchema augmentation (tags, summary), so the routes document themselves.
import type {} from '@fastify/swagger';
import { isMedfitError } from '../../core/index.js';
import { HEADER_LENGTH } from './codec.js';
import { V2Error } from './error.js';
import { encodeInferResponse, parseInferRequest } from './infer.js';
import type { V2Backend, V2Model, V2PluginOptions } from './types.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const DEFAULT_BODY_LIMIT = 32 * 1024 * 1024;

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

  app.setErrorHandler((err: FastifyError | V2Error | Error, req, reply) => {
    const status = statusOf(err);
    if (status >= 500) req.log.error({ err }, 'v2 request failed');
    // Our own messages are written to be shown; anyone else's 5xx may carry internals.
    const message = status < 500 || err instanceof V2Error ? err.message : 'internal server error';
    return reply.code(status).type(JSON_TYPE).send(JSON.stringify({ error: message }));
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).type(JSON_TYPE).send(JSON.stringify({ error: `no V2 route ${req.method} ${req.url.split('?')[0]}` }));
  });

  const lookup = async (req: FastifyRequest<{ Params: ModelParams }>): Promise<V2Model> => {
    const { model: name, version } = req.params;
    const ctx = context(req);
    const m = await backend.model(ctx, name, version);
    if (m !== undefined) return m;
    if (version !== undefined && (await backend.model(ctx, name)) !== undefined) {
      throw new V2Error(404, `model ${JSON.stringify(name)} has no version ${JSON.stringify(version)}`);
    }
    throw new V2Error(404, `model ${JSON.stringify(name)} not found`);
  };

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
    const m = await lookup(req);
    // 503, not 400: the request may be fine, and a retry after loading will succeed.
    if (!m.ready) throw new V2Error(503, `model ${JSON.stringify(m.name)} version ${JSON.stringify(m.version)} is not ready`);
    const parsed = parseInferRequest(req.body as Buffer | undefined, req.headers[HEADER_LENGTH], m);
    const produced = await m.infer(parsed.features, parsed.rows);
    const out = encodeInferResponse(m, parsed.id, produced, parsed.outputs);
    if (out.headerLength === undefined) return reply.type(JSON_TYPE).send(out.body);
    return reply.header(HEADER_LENGTH, out.headerLength).type('application/octet-stream').send(out.body);
  };
  app.post('/models/:model/infer', { schema: doc('Inference') }, infer);
  app.post('/models/:model/versions/:version/infer', { schema: doc('Inference') }, infer);
}

/** OpenAPI description only (for @fastify/swagger): no validation schema, so nothing compiles per route. */
function doc(summary: string): { tags: string[]; summary: string } {
  return { tags: ['v2'], summary };
}

function statusOf(err: unknown): number {
  if (isMedfitError(err)) return err.status;
  const e = err as { statusCode?: unknown; status?: unknown };
  const s = typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : 500;
  return s >= 400 && s < 600 ? s : 500;
}
