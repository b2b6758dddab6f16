/**
 * The V2 operations shared by the Fastify routes and the inference fast path: model lookup,
 * inference, and the one mapping from an error to `{"error"}` with a status.
 */
import { Errors, isMedfitError } from '../../core/index.js';
import { encodeInferResponse, parseInferRequest } from './infer.js';
import type { V2Backend, V2Model } from './types.js';

export const JSON_TYPE = 'application/json; charset=utf-8';

/** The model `name` (at `version`) for `ctx`, or a 404 saying whether the model or the version is unknown. */
export async function lookupModel(backend: V2Backend, ctx: unknown, name: string, version: string | undefined): Promise<V2Model> {
  const m = await backend.model(ctx, name, version);
  if (m !== undefined) return m;
  if (version !== undefined && (await backend.model(ctx, name)) !== undefined) {
    throw Errors.notFound(`model ${JSON.stringify(name)} version ${JSON.stringify(version)}`);
  }
  throw Errors.notFound(`model ${JSON.stringify(name)}`);
}

/** An answered inference: the response to send, and what it was about (for metrics and audit). */
export interface InferOutcome {
  model: V2Model;
  rows: number;
  contentType: string;
  /** Set when the body carries binary tensors (`Inference-Header-Content-Length`). */
  headerLength?: number;
  body: string | Buffer;
}

/** Runs one `$inference_request` (JSON or binary) against a model. */
export async function runInfer(
  backend: V2Backend,
  ctx: unknown,
  name: string,
  version: string | undefined,
  body: Buffer | undefined,
  headerLength: string | string[] | undefined,
): Promise<InferOutcome> {
  const m = await lookupModel(backend, ctx, name, version);
  // 503, not 400: the request may be fine, and a retry after loading will succeed.
  if (!m.ready) throw Errors.unavailable(`model ${JSON.stringify(m.name)} version ${JSON.stringify(m.version)} is not ready`);
  const parsed = parseInferRequest(body, headerLength, m);
  const produced = await m.infer(parsed.features, parsed.rows);
  const out = encodeInferResponse(m, parsed.id, produced, parsed.outputs);
  return out.headerLength === undefined
    ? { model: m, rows: parsed.rows, contentType: JSON_TYPE, body: out.body }
    : { model: m, rows: parsed.rows, contentType: 'application/octet-stream', headerLength: out.headerLength, body: out.body };
}

/**
 * The status and `{"error"}` body for an error. Our own messages are written to be shown (they
 * name fields and sizes, never values); anyone else's 5xx may carry internals and is replaced.
 * `retryAfter` (seconds) is set for a 503 that says when to try again: send it as `Retry-After`.
 */
export function errorResponse(err: unknown): { status: number; body: string; internal: boolean; retryAfter?: number } {
  let status = 500;
  if (isMedfitError(err)) status = err.status;
  else {
    const e = err as { statusCode?: unknown; status?: unknown };
    const s = typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : 500;
    status = s >= 400 && s < 600 ? s : 500;
  }
  const message = status < 500 || isMedfitError(err) ? (err as Error).message : 'internal server error';
  // Our own 503 (busy, shutting down, not loaded) is an expected state, not a failure to log.
  const expected = isMedfitError(err) && status === 503;
  const out = { status, body: JSON.stringify({ error: message }), internal: status >= 500 && !expected };
  // Only Errors.unavailable (a 503) sets retryAfter.
  const retryAfter = isMedfitError(err) ? err.retryAfter : undefined;
  return retryAfter !== undefined ? { ...out, retryAfter } : out;
}
