/**
 * What keeps explanations (`"explain": true`, seconds of the main thread each) from taking the
 * server down, over a real port: at most EXPLAIN_CONCURRENCY run and EXPLAIN_QUEUE wait, the
 * next is a 503 with `Retry-After` at once; health checks and plain predictions are answered
 * meanwhile; a client that goes away frees its place (taken out of the queue, or stopped at its
 * next slice). And what a predict-only key reads of a version: the input side, not the
 * evaluation, metrics or lineage.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { EXPLAIN_CONCURRENCY, EXPLAIN_QUEUE } from '../src/api/models-service.js';
import { classifier } from './onnx-builders.js';
import { fixture, tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-explain-limits-0123456789';

/** Pima's rows as a client sends them (numbers as numbers, empty cells absent) and as CSV. */
const lines = readFileSync(fixture('pima_diabetes.csv'), 'utf8').trim().split(/\r?\n/);
const header = lines[0]!.split(',').map((h) => h.replace(/"/g, ''));
const rows = lines.slice(1, 301).map((l) => l.split(',').map((v) => v.replace(/"/g, '')));
const csv = [header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n';
const records = (n: number) =>
  rows.slice(0, n).map((r) => Object.fromEntries(r.flatMap((v, j) => (header[j] === 'diabetes' || v === '' ? [] : [[header[j]!, Number.isFinite(Number(v)) ? Number(v) : v]]))));

let server: Server;
let base: string;
let predictKey: string;
let readKey: string;

async function call(path: string, init: { json?: unknown; body?: string; headers?: Record<string, string>; key?: string; signal?: AbortSignal } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? ADMIN}`, ...(init.headers ?? {}) };
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method: body !== undefined ? 'POST' : 'GET', headers, ...(body !== undefined ? { body } : {}), ...(init.signal ? { signal: init.signal } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, body: parsed as Record<string, any> };
}

async function finished(jobId: string): Promise<Record<string, any>> {
  const res = await fetch(`${base}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const events = (await res.text())
    .split('\n\n')
    .map((b) => b.split('\n').find((l) => l.startsWith('data: ')))
    .filter((l): l is string => !!l)
    .map((l) => JSON.parse(l.slice(6)) as Record<string, any>);
  return events.at(-1)!;
}

/** Polls `test` every 10 ms until it holds; false after `ms`. */
async function until(test: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** Milliseconds `f` takes. */
async function timed<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const out = await f();
  return [performance.now() - t0, out];
}

const load = () => server.services.models.explainLoad();
/** Records per long explained request: with a 256 × 256 network, about 0.15 G multiply-adds each (seconds in all). */
const LONG = 10;

/** Starts an explained request that the caller may abort; resolves with its status (or `aborted`). */
function explained(signal: AbortSignal, n = LONG): Promise<{ status: number | 'aborted'; retryAfter: string | null; type: string | null }> {
  return fetch(`${base}/v1/models/wide/predict`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ records: records(n), explain: true }),
    signal,
  }).then(
    async (res) => {
      await res.text();
      return { status: res.status, retryAfter: res.headers.get('retry-after'), type: res.headers.get('content-type') };
    },
    () => ({ status: 'aborted' as const, retryAfter: null, type: null }),
  );
}

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent' }, { dataDir: join(tempDir(), 'data'), port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const ds = await call('/v1/datasets?name=pima', { body: csv, headers: { 'content-type': 'text/csv' } });
  expect(ds.status).toBe(201);
  // Wide layers make each explained record cost a fraction of a second: long enough to overlap.
  const job = await call('/v1/jobs', { json: { dataset: ds.body['id'], target: 'diabetes', name: 'wide', model: 'mlp', cv: 2, params: { mlp: { units: [256, 256], epochs: 3, patience: 3 } } } });
  expect(job.status, job.text).toBe(202);
  expect((await finished(job.body['id'] as string))['status']).toBe('succeeded');
  const up = await call('/v1/models', { json: { name: 'brought', onnx: Buffer.from(classifier()).toString('base64'), task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] } });
  expect(up.status).toBe(201);
  const keys = await Promise.all(
    [['predict'], ['read']].map(async (scopes) => {
      const k = await call('/v1/keys', { json: { name: `${scopes[0]} only`, scopes } });
      expect(k.status).toBe(201);
      return k.body['key'] as string;
    }),
  );
  [predictKey, readKey] = keys as [string, string];
}, 300_000);
afterAll(async () => server?.close());

describe('explained predictions are bounded', () => {
  it('runs EXPLAIN_CONCURRENCY at once with EXPLAIN_QUEUE waiting, refuses the rest with 503 + Retry-After, and answers health checks and plain predictions meanwhile', async () => {
    // Warm: the engine loaded, a plain prediction's time without load.
    expect((await call('/v1/models/wide/predict', { json: { records: records(1), explain: true } })).status).toBe(200);
    const [plainIdle] = await timed(() => call('/v1/models/wide/predict', { json: { records: records(5) } }));

    const N = EXPLAIN_CONCURRENCY + EXPLAIN_QUEUE + 12;
    const controllers = Array.from({ length: N }, () => new AbortController());
    const settled: Array<Awaited<ReturnType<typeof explained>>> = [];
    const all = controllers.map((c) => explained(c.signal).then((r) => (settled.push(r), r)));
    try {
      // Those beyond the queue are refused at once; the others run or wait.
      const full = await until(() => settled.length >= N - EXPLAIN_CONCURRENCY - EXPLAIN_QUEUE && load().waiting === EXPLAIN_QUEUE, 30_000);
      expect(full, JSON.stringify({ settled: settled.length, load: load() })).toBe(true);
      expect(load()).toEqual({ running: EXPLAIN_CONCURRENCY, waiting: EXPLAIN_QUEUE });
      const refused = settled.filter((r) => r.status === 503);
      expect(refused.length).toBeGreaterThanOrEqual(N - EXPLAIN_CONCURRENCY - EXPLAIN_QUEUE - settled.filter((r) => r.status === 200).length);
      expect(settled.every((r) => r.status === 503 || r.status === 200)).toBe(true);
      for (const r of refused) {
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(r.type).toContain('application/problem+json');
      }
      const problem = await call('/v1/models/wide/predict', { json: { records: records(1), explain: true } });
      expect(problem.status).toBe(503);
      expect(problem.body).toMatchObject({ status: 503, type: 'urn:medfit:error:MEDFIT_ERR_UNAVAILABLE' });
      expect(problem.body['detail']).toMatch(/without "explain"/);

      // While the explanations run: health checks (between slices of ~10 ms) and plain
      // predictions (which never queue behind explanations).
      const health: number[] = [];
      for (let i = 0; i < 5; i++) {
        const [ms, r] = await timed(() => fetch(`${base}/healthz`).then((res) => res.status));
        expect(r).toBe(200);
        health.push(ms);
      }
      health.sort((a, b) => a - b);
      expect(health[2], `health checks took ${health.map(Math.round).join(', ')} ms`).toBeLessThan(500);
      expect(health[4]).toBeLessThan(2000);
      const [plainBusy, plain] = await timed(() => call('/v1/models/wide/predict', { json: { records: records(5) } }));
      expect(plain.status).toBe(200);
      expect(plainBusy, `plain prediction: ${Math.round(plainBusy)} ms busy, ${Math.round(plainIdle)} ms idle`).toBeLessThan(Math.max(2000, 20 * plainIdle));
      expect(load().running).toBe(EXPLAIN_CONCURRENCY);
    } finally {
      for (const c of controllers) c.abort();
      await Promise.all(all);
    }
    // Their clients gone, the waiting ones leave and the running one stops.
    expect(await until(() => load().running === 0 && load().waiting === 0, 10_000), JSON.stringify(load())).toBe(true);
  }, 120_000);

  it('frees the place of a client that goes away: the queue empties, the running one stops at its next slice, the next request is served', async () => {
    // How long one long explanation takes here, uninterrupted.
    const [whole, one] = await timed(() => explained(new AbortController().signal));
    expect(one.status).toBe(200);

    const controllers = Array.from({ length: EXPLAIN_CONCURRENCY + EXPLAIN_QUEUE }, () => new AbortController());
    const all = controllers.map((c) => explained(c.signal));
    expect(await until(() => load().running === EXPLAIN_CONCURRENCY && load().waiting === EXPLAIN_QUEUE, 30_000), JSON.stringify(load())).toBe(true);
    // Full: the next is refused.
    expect((await explained(new AbortController().signal, 1)).status).toBe(503);
    // Well into the running one, its client (and every waiting one's) goes away.
    await new Promise((r) => setTimeout(r, Math.min(300, whole / 4)));
    const t0 = performance.now();
    for (const c of controllers) c.abort();
    expect((await Promise.all(all)).every((r) => r.status === 'aborted')).toBe(true);
    expect(await until(() => load().running === 0 && load().waiting === 0, 10_000), JSON.stringify(load())).toBe(true);
    const drained = performance.now() - t0;
    // Stopped, not run to its end (which alone takes `whole`; the queue behind it 8 times more).
    expect(drained, `drained in ${Math.round(drained)} ms; one explanation takes ${Math.round(whole)} ms`).toBeLessThan(Math.max(whole / 2, 200));

    // The next explained request gets the place.
    const next = await call('/v1/models/wide/predict', { json: { records: records(2), explain: true } });
    expect(next.status, next.text).toBe(200);
    expect(next.body['predictions'][0].explanation.method).toBe('sampling-shapley');
  }, 120_000);
});

describe('GET /v1/models/{name}/versions/{v} by scope', () => {
  it('a predict-only key reads what predicting needs; a read key reads the whole version', async () => {
    const reduced = await call('/v1/models/wide/versions/1', { key: predictKey });
    expect(reduced.status, reduced.text).toBe(200);
    expect(Object.keys(reduced.body).sort()).toEqual(['family', 'features', 'inputColumns', 'name', 'schema', 'signature', 'source', 'stage', 'target', 'task', 'version'].sort());
    expect(reduced.body).toMatchObject({ name: 'wide', version: 1, source: 'trained', family: 'mlp', task: 'binary', target: { column: 'diabetes', task: 'binary', classes: expect.any(Array) } });
    expect(Object.keys(reduced.body['target']).sort()).toEqual(['classes', 'column', 'task']);
    expect(reduced.body['inputColumns'].map((c: { column: string }) => c.column)).toContain('glucose');
    expect(reduced.body['schema']['columns'].length).toBeGreaterThan(0);
    for (const hidden of ['evaluation', 'metrics', 'hyperparameters', 'lineage', 'engines', 'score', 'created']) expect(reduced.body).not.toHaveProperty(hidden);
    expect(reduced.text).not.toMatch(/sha256|thresholds|leaderboard/i);

    const whole = await call('/v1/models/wide/versions/1', { key: readKey });
    expect(whole.status).toBe(200);
    for (const shown of ['evaluation', 'metrics', 'hyperparameters', 'lineage', 'engines', 'schema', 'inputColumns', 'signature']) expect(whole.body).toHaveProperty(shown);
    expect(whole.body['lineage']).toMatchObject({ datasetSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // The reduced view is the whole one's input side, value for value.
    for (const [k, v] of Object.entries(reduced.body)) if (k !== 'target') expect(whole.body[k], k).toEqual(v);
    expect((await call('/v1/models/wide/versions/1')).body).toHaveProperty('evaluation');

    // An uploaded model: its tensors and features, not its lineage or file hashes.
    const upReduced = await call('/v1/models/brought/versions/1', { key: predictKey });
    expect(upReduced.status).toBe(200);
    expect(upReduced.body).toMatchObject({ name: 'brought', source: 'uploaded', features: ['a', 'b', 'c'], classes: ['no', 'yes'], inputs: expect.any(Array), outputs: expect.any(Array) });
    expect(upReduced.body).not.toHaveProperty('lineage');
    expect((await call('/v1/models/brought/versions/1', { key: readKey })).body).toHaveProperty('lineage');
  });

  it('documents the two views', async () => {
    const doc = await call('/openapi.json');
    const op = doc.body['paths']['/v1/models/{name}/versions/{v}']['get'];
    expect(op['description']).toMatch(/predict/);
    expect(op['description']).toMatch(/No evaluation, metrics, hyperparameters, lineage/);
  });
});
