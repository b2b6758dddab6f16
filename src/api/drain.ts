import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { Errors } from '../core/index.js';

/** Bodies up to this many bytes are read to their end (and thrown away) before a refusal is sent. */
export const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
/** ... taking at most this long. */
export const DRAIN_MAX_MS = 30_000;

/** Whether the whole body has arrived (or, for a stream not from a socket, as `inject()` makes, has been read). */
function received(req: IncomingMessage): boolean {
  return req.complete || req.readableEnded;
}

/**
 * Reads and throws away what is left of a request's body, before an answer that refuses it (413,
 * 401, 503...). A server that answers and closes while the client is still sending makes the
 * kernel reset the connection, and common clients (Node's fetch, Python's requests) then report
 * the reset instead of the answer; once the body is read, the answer arrives as any other, and
 * the connection can carry the next request.
 *
 * Resolves true when the body was read to its end; false when it is longer than `maxBytes` (as
 * declared, or as counted), takes longer than `maxMs`, or the connection failed. Then nothing
 * more is read and the answer must say `Connection: close`, so the connection ends after it.
 */
export function discardBody(req: IncomingMessage, maxBytes = DRAIN_MAX_BYTES, maxMs = DRAIN_MAX_MS): Promise<boolean> {
  if (received(req)) {
    // Everything has arrived; what the stream still buffers needs to flow away, not be read.
    req.resume();
    return Promise.resolve(true);
  }
  if (req.destroyed || req.socket.destroyed) return Promise.resolve(false);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (drained: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onFail);
      req.off('close', onFail);
      if (!drained) req.pause();
      resolve(drained);
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > maxBytes) finish(false);
    };
    const onEnd = () => finish(true);
    const onFail = () => finish(false);
    const timer = setTimeout(() => finish(false), maxMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onFail);
    req.on('close', onFail);
    req.resume();
  });
}

/**
 * Before an error answer to a request whose body was not read (over the size limit, refused by
 * authentication or by the upload route before streaming): reads the rest of the body so that a
 * client still sending sees the answer, not a reset connection. Fastify marks a body it refused
 * `Connection: close`; once the body is read the connection can stay. A body too long to read is
 * answered with `Connection: close` (see `discardBody`).
 */
export async function settleBody(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (received(req.raw)) return;
  if (await discardBody(req.raw)) reply.removeHeader('connection');
  else reply.header('connection', 'close');
}

/**
 * The request's body as a stream that fails with `tooLarge()` once more than `maxBytes` have
 * arrived, WITHOUT destroying the request: the request is paused there, so the error edge can
 * read the rest away (`settleBody`) and the client sees the 413 instead of a reset connection.
 * (A pipeline that throws on the request itself destroys it.) It lets go of the request as soon
 * as its reader stops early (a bad row or resource in the middle of the body): a listener left on
 * the request would pause it again on every chunk the error edge reads away, until that gave up
 * after DRAIN_MAX_MS (30 s per bad request).
 */
export function limitedBody(body: Readable, maxBytes: number, tooLarge: () => Error): Readable {
  let seen = 0;
  let attached = true;
  const out = new Readable({
    read() {
      if (attached) body.resume();
    },
  });
  const detach = () => {
    if (!attached) return;
    attached = false;
    body.off('data', onData);
    body.off('end', onEnd);
    body.off('error', onError);
    body.off('close', onClose);
  };
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > maxBytes) {
      detach();
      body.pause();
      out.destroy(tooLarge());
    } else if (!out.push(chunk)) body.pause();
  };
  const onEnd = () => {
    detach();
    out.push(null);
  };
  const onError = (e: Error) => {
    detach();
    out.destroy(e);
  };
  // A client that gives up mid-body: the reader must fail, not wait forever.
  const onClose = () => onError(Errors.badRequest('the request body was interrupted'));
  body.on('data', onData);
  body.on('end', onEnd);
  body.on('error', onError);
  body.once('close', onClose);
  // The reader stopped (or finished): the request is let go, flowing, for the error edge to read
  // away. Not paused: 'close' comes a tick after the error, when the edge may be reading already.
  out.once('close', detach);
  return out;
}

/**
 * An abort signal for a client that goes away before its answer (the connection closes first):
 * its request leaves a work queue, or its worker is terminated, rather than working for no one.
 * The reply's 'close', not the request's: that one may just mean "body read". `done()` detaches
 * the listener once the answer is on its way.
 */
export function clientGone(req: FastifyRequest, reply: FastifyReply): { signal: AbortSignal; done: () => void } {
  const gone = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) gone.abort();
  };
  reply.raw.once('close', onClose);
  // Gone already (while the body was read or the key looked up): 'close' has been emitted.
  // (`req.raw` itself is destroyed once its body is read, so it says nothing here.)
  if (reply.raw.destroyed || req.raw.socket?.destroyed) gone.abort();
  return { signal: gone.signal, done: () => reply.raw.off('close', onClose) };
}
