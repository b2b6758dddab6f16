/**
 * The inference fast path: `POST /v2/models/{m}[/versions/{v}]/infer` answered straight from the
 * Node `http` server, before Fastify's routing, hooks and reply machinery. On a small machine
 * those cost as much as the inference itself (measured in bench/serve.ts), and inference is the
 * route a serving platform is judged by. Everything else, and every other method, goes to Fastify.
 *
 * It runs the very same operations as the Fastify route (`runInfer`, `errorResponse`), so the two
 * cannot drift; the route stays registered for the OpenAPI document and for `inject()` tests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Errors } from '../../core/index.js';
import { discardBody } from '../drain.js';
import { HEADER_LENGTH } from './codec.js';
import { errorResponse, JSON_TYPE, runInfer } from './handlers.js';
import { DEFAULT_BODY_LIMIT } from './plugin.js';
import type { V2Backend, V2PluginOptions } from './types.js';

const INFER = /^\/v2\/models\/([^/?#]+)(?:\/versions\/([^/?#]+))?\/infer(?:\?|$)/;

/** Options of `createInferFastPath`. */
export interface InferFastPathOptions {
  backend: V2Backend;
  /** The backend's `ctx` from the Authorization header; throws a 401/403 MedfitError. */
  authenticate: (authorization: string | undefined) => Promise<unknown>;
  bodyLimit?: number;
  onInfer?: V2PluginOptions['onInfer'];
  /** Called once for every request answered here, with the route pattern (latency metrics). */
  onResponse?: (route: string, status: number, seconds: number) => void;
  /** Logs a 5xx. */
  onInternalError?: (err: unknown) => void;
  /** False while the server shuts down: new inferences get a 503 instead of a closing cache. */
  ready?: () => boolean;
}

/** A request listener prefix: returns true when it took the request, false to pass it on. */
export function createInferFastPath(o: InferFastPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const limit = o.bodyLimit ?? DEFAULT_BODY_LIMIT;
  return (req, res) => {
    if (req.method !== 'POST') return false;
    const m = INFER.exec(req.url ?? '');
    if (!m) return false;
    let name: string;
    let version: string | undefined;
    try {
      name = decodeURIComponent(m[1]!);
      version = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } catch {
      return false; // a malformed escape: Fastify answers it as it does for any route
    }
    const started = performance.now();
    const route = version === undefined ? '/v2/models/:model/infer' : '/v2/models/:model/versions/:version/infer';
    const send = (status: number, contentType: string, body: string | Buffer, extra?: Record<string, string | number>) => {
      const headers: Record<string, string | number> = { 'content-type': contentType, 'content-length': Buffer.byteLength(body), ...extra };
      res.writeHead(status, headers);
      res.end(body);
      o.onResponse?.(route, status, (performance.now() - started) / 1000);
    };
    const fail = (err: unknown, close = false) => {
      const { status, body, internal, retryAfter } = errorResponse(err);
      if (internal) o.onInternalError?.(err);
      const extra: Record<string, string | number> = {};
      if (retryAfter !== undefined) extra['retry-after'] = retryAfter;
      if (close) extra['connection'] = 'close';
      if (!res.headersSent) send(status, JSON_TYPE, body, extra);
    };
    // A refusal before the body is read: the rest of the body is read first (within bounds), so a
    // client still sending sees the answer instead of a reset connection (see discardBody).
    const refuse = (err: unknown) => {
      void discardBody(req).then((drained) => fail(err, !drained));
    };
    if (o.ready && !o.ready()) {
      refuse(Errors.unavailable('the server is shutting down'));
      return true;
    }
    const tooLarge = () => Errors.tooLarge(`request body is larger than the limit of ${limit} bytes`);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      refuse(tooLarge());
      return true;
    }
    // The key is checked before the body is read: an unauthenticated caller cannot make the
    // server buffer megabytes. The request stays paused (its bytes wait in the socket) meanwhile.
    o.authenticate(req.headers.authorization).then((ctx) => readBody(ctx), refuse);
    const readBody = (ctx: unknown) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (c: Buffer) => {
        size += c.length;
        if (size > limit) {
          // Chunked, or longer than declared: stop keeping it, read the rest away, then answer.
          req.off('data', onData);
          req.off('end', onEnd);
          chunks.length = 0;
          refuse(tooLarge());
          return;
        }
        chunks.push(c);
      };
      const onEnd = () => {
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        runInfer(o.backend, ctx, name, version, size ? body : undefined, req.headers[HEADER_LENGTH])
          .then((out) => {
            o.onInfer?.(ctx, out.model, out.rows);
            send(200, out.contentType, out.body, out.headerLength !== undefined ? { [HEADER_LENGTH]: out.headerLength } : undefined);
          })
          .catch((e: unknown) => fail(e));
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', () => res.destroy());
    };
    return true;
  };
}
