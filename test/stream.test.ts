/**
 * Live predictions over a real port: `POST /v1/models/{name}/stream` with NDJSON samples sent in
 * chunks while the answer streams back, first on a small Fastify app with a fake model (the
 * route's contract: windows as they complete, exactly the batch windows, one model call per chunk,
 * bad lines, limits, idle timeout, shutdown), then through the whole `medfit serve` with a
 * window-gbdt model trained by a job (auth, audit, metrics, the same answers as a batch
 * prediction of the same samples), and over MQTT with the Mosquitto broker on 127.0.0.1:1883
 * (skipped, saying so, when nothing answers there).
 */
import { randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import mqtt from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, type Matrix } from '../src/core/index.js';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { installErrorHandling } from '../src/api/errors.js';
import type { Services } from '../src/api/services.js';
import { streamRoutes, startServerMqtt, type SequenceModels } from '../src/api/stream.js';
import { SEQUENCE_PREP_VERSION, segmentsOf, windowize, type SequencePrep } from '../src/sequence/index.js';
import { synthFitnessCsv } from '../src/sequence/synth.js';
import type { ServedSequence } from '../src/serve/index.js';
import { portAnswers, tempDir } from './helpers.js';

type Line = Record<string, any>;

/** An NDJSON stream over a real HTTP/1.1 connection: write while reading the answer. */
function openStream(base: string, path: string, o: { key?: string | null; type?: string } = {}) {
  const u = new URL(base);
  const headers: Record<string, string> = { 'content-type': o.type ?? 'application/x-ndjson', 'transfer-encoding': 'chunked' };
  if (o.key !== null) headers['authorization'] = `Bearer ${o.key ?? ''}`;
  const req = request({ host: u.hostname, port: u.port, method: 'POST', path, headers });
  req.flushHeaders();
  const lines: Line[] = [];
  let raw = '';
  let ended = false;
  let wake: (() => void) | undefined;
  const response = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        raw += d;
        if (!String(res.headers['content-type']).includes('ndjson')) return;
        let nl: number;
        while ((nl = raw.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(raw.slice(0, nl)) as Line);
          raw = raw.slice(nl + 1);
        }
        wake?.();
      });
      const finish = () => {
        ended = true;
        wake?.();
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
    });
  });
  let read = 0;
  return {
    response,
    /** The whole body when the answer is not NDJSON (a problem document). */
    async text(): Promise<string> {
      await this.all();
      return raw;
    },
    /** Resolves once the text is handed to the socket (or the request is gone). */
    write: (text: string) => new Promise<void>((resolve) => (req.destroyed ? resolve() : void req.write(text, () => resolve()))),
    end: (text?: string) => req.end(text),
    destroy: () => req.destroy(),
    get writable() {
      return !req.writableEnded && !req.destroyed;
    },
    /** Waits for the next line (undefined: the answer ended). */
    async next(ms = 10_000): Promise<Line | undefined> {
      const until = Date.now() + ms;
      while (read >= lines.length && !ended) {
        if (Date.now() > until) throw new Error('no line in time');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return read < lines.length ? lines[read++] : undefined;
    },
    async all(ms = 30_000): Promise<Line[]> {
      const out: Line[] = [];
      for (let l = await this.next(ms); l !== undefined; l = await this.next(ms)) out.push(l);
      return out;
    },
  };
}

const ndjson = (samples: object[]) => samples.map((s) => JSON.stringify(s) + '\n').join('');

// ---------------------------------------------------------------------------------------------

const prep: SequencePrep = {
  version: SEQUENCE_PREP_VERSION,
  columns: { subject: 'subject', time: 'time' },
  timeUnit: 's',
  channels: ['ax', 'ay'],
  targets: [],
  mean: [0, 1],
  std: [1, 2],
  rate: 50,
  window: 20,
  stride: 10,
  maxGap: 0.5,
  filter: { kind: 'lowpass', hz: 8 },
};

/** A fake sequence model that records what it is given. */
function fakeModel(calls: Matrix[]): ServedSequence & { record: { version: number } } {
  return {
    prep,
    record: { version: 3 },
    outputs: ['energy', 'load'],
    async predictWindows(x) {
      calls.push({ rows: x.rows, cols: x.cols, data: Float64Array.from(x.data) });
      const out = new Float64Array(x.rows * 2);
      for (let r = 0; r < x.rows; r++) {
        out[r * 2] = x.data[r * x.cols]!;
        out[r * 2 + 1] = r;
      }
      return out;
    },
  };
}

/** Jittered 50 Hz samples from t0 with a gap after `gapAt`. */
function samples(n: number, t0 = 100, gapAt = -1): Array<Record<string, unknown>> {
  let t = t0;
  return Array.from({ length: n }, (_, i) => {
    if (i > 0) t += 0.02 * (0.8 + 0.4 * ((i * 7919) % 13) / 13) + (i === gapAt ? 2 : 0);
    return { t: Math.round(t * 1e6) / 1e6, ax: Math.sin(i / 9), ...(i % 17 === 0 ? {} : { ay: (i % 11) - 5 }) };
  });
}

describe('the stream route (fake model)', () => {
  let app: FastifyInstance;
  let base: string;
  const calls: Matrix[] = [];
  const fastCalls: Matrix[] = [];
  const counted: number[] = [];
  const registry = new Registry();
  const sequences: SequenceModels = {
    async sequenceModel(_projectId, name, version) {
      // 10 kHz models: one bridging gaps of 10 s (100,000 steps, the most a model may), one of a
      // day (no model may be trained so; the stream must hold all the same).
      if (name === 'fast') return { ...fakeModel(fastCalls), prep: { ...prep, filter: undefined, rate: 10_000, maxGap: 10, window: 10, stride: 1 } };
      if (name === 'wide') return { ...fakeModel(fastCalls), prep: { ...prep, rate: 10_000, maxGap: 86_400 } };
      if (name !== 'activity' || (version !== undefined && version !== '3')) throw Errors.notFound(`model "${name}"`);
      return fakeModel(calls);
    },
  };

  beforeAll(async () => {
    app = Fastify();
    installErrorHandling(app);
    app.addHook('onRequest', (req, _reply, done) => {
      const key = req.headers.authorization;
      if (key === 'Bearer predict') req.principal = { keyId: 'k', projectId: 'p', scopes: ['predict'] };
      if (key === 'Bearer read') req.principal = { keyId: 'r', projectId: 'p', scopes: ['read'] };
      done();
    });
    const services = { config: { maxBodyBytes: 200_000 }, metrics: { registry, countPredictions: (_p: string, _m: string, _v: string, _k: string, n: number) => counted.push(n) }, models: sequences } as unknown as Services;
    await streamRoutes(app, services, { idleMs: 600, maxLineBytes: 1000 });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => app?.close());

  it('answers each window while the body is still arriving: exactly the batch windows, one model call per chunk', async () => {
    calls.length = 0;
    const all = samples(900, 100, 400);
    const s = openStream(base, '/v1/models/activity/stream', { key: 'predict' });
    // The first second: its first windows must come back before anything more is sent.
    await s.write(ndjson(all.slice(0, 60)));
    const first = await s.next();
    expect(first).toMatchObject({ window: 0, start: 100, values: { energy: expect.any(Number), load: 0 } });
    expect((await s.response).status).toBe(200);
    expect((await s.response).headers['content-type']).toMatch(/^application\/x-ndjson/);
    // The rest in uneven chunks, lines split across chunks.
    const text = ndjson(all.slice(60));
    for (let at = 0, k = 1; at < text.length; k++) {
      const size = 50 + ((k * 3571) % 4000);
      await s.write(text.slice(at, at + size));
      at += size;
    }
    s.end();
    const rest = await s.all();
    const windows = [first!, ...rest.filter((l) => 'window' in l)];
    // The batch path on the whole recording.
    const session = { subject: 'x', session: '', t: Float64Array.from(all.map((r) => r['t'] as number)), channels: ['ax', 'ay'].map((c) => Float64Array.from(all.map((r) => (r[c] as number | undefined) ?? NaN))), targets: [], line: 1 };
    const batch = windowize(segmentsOf([session], prep), prep, prep, []);
    expect(windows.map((w) => w['window'])).toEqual(Array.from({ length: batch.x.rows }, (_, i) => i));
    const seen = new Float64Array(calls.reduce((n, c) => n + c.data.length, 0));
    let at = 0;
    for (const c of calls) seen.set(c.data, (at += c.data.length) - c.data.length);
    expect(Array.from(seen)).toEqual(Array.from(batch.x.data));
    expect(windows.map((w) => w['start'])).toEqual(batch.info.map((i) => Math.round(i.start * 1e6) / 1e6));
    // One model call per chunk of input (never one per window), and the windows counted.
    expect(calls.length).toBeLessThan(batch.x.rows / 2);
    expect(counted.at(-1)).toBe(batch.x.rows);
    expect(rest.filter((l) => 'warning' in l)).toEqual(batch.filled > 0 ? [{ warning: expect.stringMatching(/channel value\(s\) had no sample close enough/) }] : []);
  });

  it('ends the answer with {"error": "line N: …"} at the first bad line, after the windows before it', async () => {
    for (const [bad, message] of [
      ['{"t": 101, "ax": "secret-4242"}', /^line 61: channel "ax": expected a number/],
      ['{"t": 101, "ax": 1', /^line 61: not valid JSON$/],
      ['{"t": 99, "ax": 1}', /^line 61: time goes backwards/],
      ['[1, 2]', /^line 61: expected a sample object/],
      ['{"ax": 1}', /^line 61: "time" is missing/],
    ] as const) {
      const s = openStream(base, '/v1/models/activity/versions/3/stream', { key: 'predict' });
      await s.write(ndjson(samples(60)) + bad + '\n' + ndjson(samples(60, 200)));
      const lines = await s.all();
      expect(lines.filter((l) => 'window' in l).length).toBeGreaterThan(0);
      expect(lines.at(-1)).toEqual({ error: expect.stringMatching(message) });
      expect(JSON.stringify(lines)).not.toContain('4242');
      expect(lines.filter((l) => 'error' in l)).toHaveLength(1);
      s.destroy();
    }
    const errors = await registry.getSingleMetric('medfit_stream_errors_total')!.get();
    expect(errors.values.find((v) => v.labels['reason'] === 'line')?.value).toBe(5);
  });

  it('answers a sample that completes ~99,000 windows in bounded model calls, and refuses a jump of too many steps', async () => {
    fastCalls.length = 0;
    const s = openStream(base, '/v1/models/fast/stream', { key: 'predict' });
    s.end(ndjson([{ time: 0, ax: 0, ay: 0 }, { time: 9.9, ax: 1, ay: 1 }, { time: 9.9001, ax: 1, ay: 1 }]));
    const lines = await s.all();
    expect(lines.filter((l) => 'error' in l)).toEqual([]);
    // Steps 0 … 99,001 (9.9001 s at 10 kHz), a window of 10 ending at each from step 9 on.
    expect(lines.filter((l) => 'window' in l).length).toBe(99_002 - 10 + 1);
    expect(Math.max(...fastCalls.map((c) => c.rows))).toBeLessThanOrEqual(4096);
    expect(fastCalls.length).toBeGreaterThanOrEqual(Math.ceil(99_000 / 4096));

    const at = Date.now();
    const w = openStream(base, '/v1/models/wide/stream', { key: 'predict' });
    w.end(ndjson([{ time: 0, ax: 0, ay: 0 }, { time: 86_000, ax: 1, ay: 1 }, { time: 86_001, ax: 1, ay: 1 }]));
    expect(await w.all()).toEqual([{ error: "line 2: the sample's time is more than 100000 steps of the model's 10000 Hz grid after the previous sample's, the most one sample may add (the model bridges gaps up to 86400 s); send the samples in between, or a new stream" }]);
    expect(Date.now() - at).toBeLessThan(2000);
  }, 30_000);

  it('bounds a line, the whole stream and the silence', async () => {
    const long = openStream(base, '/v1/models/activity/stream', { key: 'predict' });
    await long.write(ndjson(samples(3)) + `{"t": 200, "pad": "${'x'.repeat(2000)}"}\n`);
    expect(await long.all()).toEqual([{ error: 'line 4: longer than 1000 bytes' }]);
    long.destroy();

    const big = openStream(base, '/v1/models/activity/stream', { key: 'predict' });
    const many = ndjson(samples(6000));
    expect(many.length).toBeGreaterThan(200_000);
    void big.write(many).catch(() => {});
    const lines = await big.all();
    expect(lines.at(-1)).toEqual({ error: 'the stream is larger than the limit of 200000 bytes (MEDFIT_MAX_BODY_MB); open a new one to go on' });
    expect(lines.filter((l) => 'window' in l).length).toBeGreaterThan(100);
    big.destroy();

    const quiet = openStream(base, '/v1/models/activity/stream', { key: 'predict' });
    await quiet.write(ndjson(samples(30)));
    const started = Date.now();
    const silent = await quiet.all();
    expect(silent[0]).toMatchObject({ window: 0, start: 100 });
    expect(silent.at(-1)).toEqual({ error: 'no data for 0.6 s: the stream is closed' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    quiet.destroy();
  });

  it('refuses before streaming, as problem documents: content type, scope, model', async () => {
    const wrongType = openStream(base, '/v1/models/activity/stream', { key: 'predict', type: 'application/json' });
    wrongType.end(ndjson(samples(3)));
    expect((await wrongType.response).status).toBe(415);
    expect(await wrongType.text()).toMatch(/application\/x-ndjson/);
    const readOnly = openStream(base, '/v1/models/activity/stream', { key: 'read' });
    readOnly.end(ndjson(samples(3)));
    expect((await readOnly.response).status).toBe(403);
    const missing = openStream(base, '/v1/models/nope/stream', { key: 'predict' });
    missing.end(ndjson(samples(3)));
    expect((await missing.response).status).toBe(404);
    expect(JSON.parse(await missing.text())).toMatchObject({ status: 404, type: 'urn:medfit:error:MEDFIT_ERR_NOT_FOUND' });
  });

  it('takes a client going away mid-stream quietly, and ends a stream at its time limit', async () => {
    const logged: string[] = [];
    const own = Fastify({ logger: { level: 'warn', stream: { write: (l: string) => void logged.push(l) } } });
    own.addHook('onRequest', (req, _reply, done) => {
      req.principal = { keyId: 'k', projectId: 'p', scopes: ['predict'] };
      done();
    });
    await streamRoutes(own, { config: { maxBodyBytes: 1e6 }, metrics: { registry: new Registry(), countPredictions: () => {} }, models: sequences } as unknown as Services, { maxMs: 1500 });
    const url = await own.listen({ host: '127.0.0.1', port: 0 });
    try {
      const gone = openStream(url, '/v1/models/activity/stream', { key: 'x' });
      await gone.write(ndjson(samples(40)) + '{"t": 200, "ax"');
      expect(await gone.next()).toMatchObject({ window: 0 });
      gone.destroy();
      await new Promise((r) => setTimeout(r, 200));
      const timed = openStream(url, '/v1/models/activity/stream', { key: 'x' });
      const all = samples(200);
      const sending = (async () => {
        for (let i = 0; i < all.length && timed.writable; i++) {
          await timed.write(ndjson([all[i]!]));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const lines = await timed.all();
      expect(lines.filter((l) => 'window' in l).length).toBeGreaterThan(2);
      expect(lines.at(-1)).toEqual({ error: 'the stream reached its time limit (2 s); open a new one to go on' });
      timed.destroy();
      await sending.catch(() => {});
      expect(logged.join('')).not.toMatch(/stream failed|"level":50/);
    } finally {
      await own.close();
    }
  });

  it('ends open streams when the server closes, so closing does not wait for them', async () => {
    const own = Fastify();
    own.addHook('onRequest', (req, _reply, done) => {
      req.principal = { keyId: 'k', projectId: 'p', scopes: ['predict'] };
      done();
    });
    await streamRoutes(own, { config: { maxBodyBytes: 1e6 }, metrics: { registry: new Registry(), countPredictions: () => {} }, models: sequences } as unknown as Services, { idleMs: 60_000 });
    const url = await own.listen({ host: '127.0.0.1', port: 0 });
    const s = openStream(url, '/v1/models/activity/stream', { key: 'x' });
    await s.write(ndjson(samples(30)));
    expect(await s.next()).toMatchObject({ window: 0 });
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await s.all()).toEqual([{ error: 'the server is shutting down' }]);
  });
});

// ---------------------------------------------------------------------------------------------

const ADMIN = 'test-admin-key-stream-0123456789';
const CHANNELS = ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'];

function synth(options: { subjects: number; seconds: number; rate: number }): Array<Record<string, string>> {
  const lines = Buffer.concat([...synthFitnessCsv(options)]).toString('latin1').trim().split('\n');
  const header = lines[0]!.split(',');
  return lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, j) => [header[j]!, v])));
}

const brokerUp = await portAnswers(1883);
if (!brokerUp) console.warn('test/stream.test.ts: no MQTT broker answers on 127.0.0.1:1883; the MQTT tests are skipped');

describe('medfit serve: live predictions of a trained sequence model', () => {
  let server: Server;
  let base: string;
  const dataDir = `${tempDir()}/data`;
  const rows = synth({ subjects: 6, seconds: 10, rate: 25 });
  const text = [Object.keys(rows[0]!).join(','), ...rows.map((r) => Object.values(r).join(','))].join('\n');
  const session = rows.filter((r) => r['session'] === 's02-b').map((r) => ({ t: Number(r['t']), ...Object.fromEntries(CHANNELS.map((c) => [c, Number(r[c])])) }));
  let readKey = '';
  let otherKey = '';
  let deviceKey = '';
  let predictTrainKey = '';
  let batch: Line[] = [];
  let isoWindows = 0;

  const call = async (path: string, json?: unknown, key = ADMIN) => {
    const res = await fetch(`${base}${path}`, { method: json === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${key}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) }, ...(json === undefined ? {} : { body: JSON.stringify(json) }) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  beforeAll(async () => {
    server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_UPLOAD_MB: '8' }, { dataDir, port: '0' }));
    // Until app.ts registers the stream routes itself.
    if (!server.app.hasRoute({ method: 'POST', url: '/v1/models/:name/stream' })) await streamRoutes(server.app, server.services);
    base = await server.app.listen({ host: '127.0.0.1', port: 0 });
    readKey = (await createKey(server.services.store, 'default', ['read'], 'read only')).key;
    otherKey = (await createKey(server.services.store, 'other', ['predict'], 'other project')).key;
    deviceKey = (await createKey(server.services.store, 'default', ['predict'], 'device')).key;
    predictTrainKey = (await createKey(server.services.store, 'default', ['predict', 'train'], 'too much for a device')).key;
    const up = await fetch(`${base}/v1/datasets?name=fitness`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/csv' }, body: text });
    const dataset = ((await up.json()) as { id: string }).id;
    const job = await call('/v1/jobs', { dataset, target: 'activity', name: 'activity', model: 'window-gbdt', cv: 2, params: { 'window-gbdt': { trees: 20 } }, sequence: { channels: CHANNELS, window: '2s', stride: '1s' } });
    expect(job.status).toBe(202);
    const events = await (await fetch(`${base}/v1/jobs/${job.body['id']}/events`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    expect(events).toMatch(/"status":"succeeded"/);
    const b = await call('/v1/models/activity/predict', { samples: session });
    expect(b.status).toBe(200);
    batch = b.body['predictions'];
  }, 120_000);
  afterAll(async () => server?.close());

  it('streams the same predictions as a batch prediction of the same samples', async () => {
    const s = openStream(base, '/v1/models/activity/stream', { key: ADMIN });
    const body = ndjson(session);
    for (let at = 0, k = 0; at < body.length; k++) {
      const size = 200 + ((k * 7919) % 3000);
      await s.write(body.slice(at, at + size));
      at += size;
    }
    s.end();
    const lines = await s.all();
    const windows = lines.filter((l) => 'window' in l);
    expect(windows).toHaveLength(batch.length);
    expect(batch.length).toBeGreaterThan(5);
    for (const [i, w] of windows.entries()) {
      expect(w).toMatchObject({ window: i, start: batch[i]!['start'], end: batch[i]!['end'], label: batch[i]!['label'] });
      for (const [c, p] of Object.entries(batch[i]!['probabilities'] as Record<string, number>)) expect(w['probabilities'][c]).toBeCloseTo(p, 6);
    }
    expect(lines.filter((l) => 'error' in l)).toEqual([]);
    // The versioned route, ISO times.
    const v = openStream(base, '/v1/models/activity/versions/1/stream', { key: ADMIN });
    v.end(ndjson(session.slice(0, 120).map((r) => ({ ...r, t: new Date(r.t).toISOString() }))));
    const iso = (await v.all()).filter((l) => 'window' in l);
    isoWindows = iso.length;
    expect(iso[0]).toMatchObject({ window: 0, start: new Date(session[0]!.t).toISOString(), label: batch[0]!['label'] });
  });

  it('needs a key with the predict scope of the model\'s project; audits and counts windows', async () => {
    for (const [key, status] of [
      [null, 401],
      ['mf_nope', 401],
      [readKey, 403],
      [otherKey, 404],
    ] as const) {
      const s = openStream(base, '/v1/models/activity/stream', { key });
      s.end(ndjson(session.slice(0, 60)));
      expect((await s.response).status).toBe(status);
      expect(await s.text()).not.toMatch(/window/);
    }
    const audit = await call('/v1/audit');
    // Both streams above (identical entries within 50 ms are folded into one, rows summed).
    const streams = (audit.body['entries'] as Line[]).filter((e) => e['action'] === 'model.stream');
    expect(streams.reduce((n, e) => n + e['requests'], 0)).toBe(2);
    expect(streams.reduce((n, e) => n + e['rows'], 0)).toBe(batch.length + isoWindows);
    for (const e of streams) expect(e).toMatchObject({ resource: 'model:activity/1', status: 200 });
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/models/{name}/stream', '/v1/models/{name}/versions/{v}/stream']));
    const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    expect(metrics).toMatch(/medfit_predictions_total\{[^}]*model="activity"[^}]*\} \d+/);
  });

  it.skipIf(!brokerUp)('answers devices over MQTT with the same lines, and survives garbage', async () => {
    const device = `watch-${process.pid}`;
    // Its own first topic level: other servers on the same broker (other test runs) answer
    // medfit/+/+/samples too, each with its own keys.
    const prefix = `medfit-test-${randomBytes(4).toString('hex')}`;
    const bridge = await startServerMqtt(server, { url: 'mqtt://127.0.0.1:1883', prefix });
    const c = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
    try {
      const got: Record<string, Line[]> = { predictions: [], errors: [] };
      const elsewhere: Line[] = [];
      c.on('message', (topic, payload) => (topic.startsWith(`${prefix}/default/`) ? got[topic.split('/')[3]!]! : elsewhere).push(JSON.parse(payload.toString('utf8')) as Line));
      await c.subscribeAsync([`${prefix}/default/${device}/predictions`, `${prefix}/default/${device}/errors`, `${prefix}/nosuch/${device}/errors`]);
      const send = (payload: string, key: string | null = deviceKey, project = 'default') =>
        c.publishAsync(`${prefix}/${project}/${device}/samples`, payload, key === null ? {} : { properties: { userProperties: { key } } });
      const ten = JSON.stringify(session.slice(0, 10));
      await send('{{{');
      await send(ten, null);
      // Keys that may do more than predict: refused, whatever they hold, and never used.
      await send(ten, readKey);
      await send(ten, ADMIN);
      await send(JSON.stringify({ key: predictTrainKey, samples: session.slice(0, 10) }), null);
      // Another project's key, an unknown one, one the header syntax would refuse, and a good key
      // on a project that does not exist: all the same answer.
      await send(ten, otherKey);
      await send(ten, 'mf_nope');
      await send(ten, 'mf with spaces');
      await send(ten, deviceKey, 'nosuch');
      for (let i = 0; i < session.length; i += 37) await send(JSON.stringify({ key: deviceKey, samples: session.slice(i, i + 37) }), null);
      const until = Date.now() + 10_000;
      while (got['predictions']!.filter((l) => 'window' in l).length < batch.length - 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const windows = got['predictions']!.filter((l) => 'window' in l);
      // The last window completes only with a later sample (or when the device goes idle).
      expect(windows.length).toBeGreaterThanOrEqual(batch.length - 1);
      for (const [i, w] of windows.entries()) expect(w).toMatchObject({ window: i, start: batch[i]!['start'], label: batch[i]!['label'] });
      const predictOnly =
        'MQTT takes only a predict-only device key, as the key travels in every samples message to whoever may subscribe to the broker: create one with medfit keys create --project default --scopes predict (and revoke this key if others may subscribe)';
      expect(got['errors']!.map((e) => e['error'])).toEqual([
        expect.stringMatching(/not valid JSON/),
        expect.stringMatching(/no API key/),
        predictOnly,
        predictOnly,
        predictOnly,
        'invalid or revoked API key',
        'invalid or revoked API key',
        'invalid or revoked API key',
      ]);
      expect(elsewhere).toEqual([{ error: 'invalid or revoked API key' }]);
      // The refusals of keys that exist are in the audit trail, as HTTP refusals are.
      const denied = ((await call('/v1/audit')).body['entries'] as Line[]).filter((e) => e['action'] === 'denied' && e['resource'] === 'mqtt samples');
      expect(denied.length).toBeGreaterThanOrEqual(1);
    } finally {
      await c.endAsync();
      await bridge.close();
    }
  });
});
