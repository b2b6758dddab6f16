/**
 * Bodies over the size limits, sent by real clients over a real port while they are still
 * sending: the answer (413, or 401 for a bad key) must reach them instead of a reset connection,
 * on the /v1 JSON routes, the dataset upload route and the V2 inference fast path.
 */
import { request, Agent, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-0123456789abcdef';
const MB = 1024 * 1024;
let server: Server;
let base: string;

beforeAll(async () => {
  // MEDFIT_MAX_BODY_MB stays at its default of 10.
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_UPLOAD_MB: '2' }, { dataDir: join(tempDir(), 'data'), port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => server?.close());

type Answer = { status: number; headers: IncomingHttpHeaders; body: string; reused: boolean; ms: number } | { error: string };

/**
 * POSTs `size` bytes with node:http, 1 MiB every 5 ms (so the client is still sending when the
 * server decides), with Content-Length (`declared`, default `size`) or chunked. With a declared
 * length beyond `size`, it sends `size` bytes and waits for the answer.
 */
function post(path: string, o: { size: number; chunked?: boolean; declared?: number; key?: string; agent?: Agent }): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const headers: Record<string, string> = { authorization: `Bearer ${o.key ?? ADMIN}`, 'content-type': path.startsWith('/v1/datasets') ? 'text/csv' : 'application/json' };
    if (!o.chunked) headers['content-length'] = String(o.declared ?? o.size);
    let answered = false;
    const req = request(`${base}${path}`, { method: 'POST', headers, agent: o.agent ?? false }, (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reused: req.reusedSocket, ms: performance.now() - t0 });
        if (o.declared !== undefined && o.declared > o.size) req.destroy();
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (!answered) resolve({ error: e.code ?? e.message });
    });
    const chunk = Buffer.alloc(MB, 0x61);
    let sent = 0;
    const write = () => {
      const n = Math.min(MB, o.size - sent);
      sent += n;
      const piece = n === MB ? chunk : chunk.subarray(0, n);
      if (sent < o.size) {
        req.write(piece);
        setTimeout(write, 5);
      } else if (o.declared !== undefined && o.declared > o.size) req.write(piece);
      else req.end(piece);
    };
    write();
  });
}

/** The same through Node's fetch (undici), the whole body at once or as a stream (chunked). */
async function fetchPost(path: string, size: number, chunked: boolean): Promise<Answer> {
  const t0 = performance.now();
  let sent = 0;
  const body = chunked
    ? new ReadableStream<Uint8Array>({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 5));
          if (sent >= size) return c.close();
          sent += MB;
          c.enqueue(new Uint8Array(MB).fill(0x61));
        },
      })
    : Buffer.alloc(size, 0x61);
  try {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit);
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text(), reused: false, ms: performance.now() - t0 };
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return { error: cause?.code ?? cause?.message ?? String(e) };
  }
}

const problem = (status: number, detail: RegExp) => ({ status, headers: expect.objectContaining({ 'content-type': expect.stringContaining('application/problem+json') }), body: expect.stringMatching(detail) });
const v2Error = (status: number) => ({ status, body: expect.stringMatching(/^\{"error":"[^"]+"\}$/) });

describe('bodies over the limit', () => {
  it('are answered 413 (401 for a bad key) while the client is still sending, with Content-Length or chunked', async () => {
    const predict = '/v1/models/bc/predict';
    const infer = '/v2/models/bc/infer';
    expect(await post(predict, { size: 12 * MB })).toMatchObject(problem(413, /larger than the limit/));
    expect(await post(predict, { size: 12 * MB, chunked: true })).toMatchObject(problem(413, /larger than the limit/));
    expect(await fetchPost(predict, 40 * MB, false)).toMatchObject(problem(413, /larger than the limit/));
    expect(await fetchPost(predict, 12 * MB, true)).toMatchObject(problem(413, /larger than the limit/));
    expect(await post('/v1/datasets?name=big', { size: 3 * MB })).toMatchObject(problem(413, /MEDFIT_MAX_UPLOAD_MB/));
    // Chunked: the limit is found while streaming to disk; the request is paused there, not destroyed.
    expect(await post('/v1/datasets?name=big', { size: 3 * MB, chunked: true })).toMatchObject(problem(413, /larger than the limit of \d+ bytes \(MEDFIT_MAX_UPLOAD_MB\)/));
    expect(await fetchPost('/v1/datasets?name=big', 3 * MB, true)).toMatchObject(problem(413, /MEDFIT_MAX_UPLOAD_MB/));
    // A URL Fastify cannot decode: its 400 waits for the body too.
    expect(await post('/v1/models/%E0%A4%A/predict', { size: 3 * MB })).toMatchObject(problem(400, /malformed request/));
    expect(await post(infer, { size: 12 * MB })).toMatchObject(v2Error(413));
    expect(await post(infer, { size: 12 * MB, chunked: true })).toMatchObject(v2Error(413));
    expect(await fetchPost(infer, 40 * MB, false)).toMatchObject(v2Error(413));
    expect(await fetchPost(infer, 12 * MB, true)).toMatchObject(v2Error(413));
    expect(await post(predict, { size: 12 * MB, key: 'wrong' })).toMatchObject(problem(401, /invalid or revoked/));
    // V2 checks a declared length before the key; a chunked body is read only after it.
    expect(await post(infer, { size: 12 * MB, chunked: true, key: 'wrong' })).toMatchObject(v2Error(401));
  }, 60_000);

  it('leave the connection open for the next request once read, and closed, answered at once, when too long to read', async () => {
    for (const path of ['/v1/models/bc/predict', '/v1/datasets?name=big', '/v2/models/bc/infer']) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const first = await post(path, { size: 12 * MB, agent });
        expect(first).toMatchObject({ status: 413 });
        expect((first as { headers: IncomingHttpHeaders }).headers['connection']).not.toBe('close');
        const next = await new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const req = request(`${base}/healthz`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
          });
          req.on('error', reject);
          req.end();
        });
        expect({ path, ...next }).toEqual({ path, status: 200, reused: true });
      } finally {
        agent.destroy();
      }
      // Beyond what the server reads away (64 MiB): answered without waiting for the body.
      const huge = await post(path, { size: 64 * 1024, declared: 100 * MB });
      expect(huge).toMatchObject({ status: 413, headers: expect.objectContaining({ connection: 'close' }) });
      expect((huge as { ms: number }).ms).toBeLessThan(5000);
    }
  }, 60_000);
});
