/**
 * Sequence (wearable sensor) models through `medfit serve`, over a real port: a long-format
 * dataset uploaded, a window-gbdt job trained with `sequence` options, raw samples predicted on
 * /v1 (resampled, normalised and windowed server-side, one prediction per window), the same
 * windows through V2 infer as [batch, steps, channels] tensors, the bad paths (4xx with JSON
 * pointers), and FIT uploads converted to long-format datasets.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { tableFromRows } from '../src/data/index.js';
import { loadArtifact, predictSequence, sequenceDataFor } from '../src/registry/index.js';
import { segmentsOf, windowCount, windowize } from '../src/sequence/index.js';
import { synthFitnessCsv } from '../src/sequence/synth.js';
import { buildActivityFit, oneHzRecords } from './fit-builders.js';
import { tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-fitness-0123456789';
const dataDir = join(tempDir(), 'data');
const CHANNELS = ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'];
const RATE = 25;
const WINDOW = 50; // "2s" at 25 Hz
const STRIDE = 25; // "1s"

/** The synthetic long-format CSV and its rows parsed (subject, session, t, channels…, activity, energy). */
function synth(options: { subjects: number; seconds: number; rate: number }): { text: string; rows: Array<Record<string, string>> } {
  const text = Buffer.concat([...synthFitnessCsv(options)]).toString('latin1');
  const lines = text.trim().split('\n');
  const header = lines[0]!.split(',');
  return { text, rows: lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, j) => [header[j]!, v]))) };
}

const train = synth({ subjects: 6, seconds: 10, rate: RATE });
/** One session as raw samples, as a device would send them: t (epoch ms) and channel values. */
const sessionRows = (rows: Array<Record<string, string>>, session: string) => rows.filter((r) => r['session'] === session);
const asSamples = (rows: Array<Record<string, string>>, channels = CHANNELS) => rows.map((r) => ({ t: Number(r['t']), ...Object.fromEntries(channels.map((c) => [c, Number(r[c])])) }));
const s01a = sessionRows(train.rows, 's01-a');

let server: Server;
let base: string;

async function call(path: string, init: { method?: string; json?: unknown; body?: string | Buffer | Uint8Array; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) };
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, ...(body !== undefined ? { body } : {}) });
  const raw = Buffer.from(await res.arrayBuffer());
  let parsed: unknown = raw.toString('utf8');
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, raw, body: parsed as Record<string, any> };
}

/** Waits for a job to finish (Server-Sent Events) and returns its last event. */
async function finished(jobId: string): Promise<Record<string, any>> {
  const res = await fetch(`${base}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const events = (await res.text())
    .split('\n\n')
    .map((b) => b.split('\n').find((l) => l.startsWith('data: ')))
    .filter((l): l is string => !!l)
    .map((l) => JSON.parse(l.slice(6)) as Record<string, any>);
  return events.at(-1)!;
}

const pointers = (r: { body: Record<string, any> }) => (r.body['errors'] ?? []).map((e: { pointer: string }) => e.pointer);

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_UPLOAD_MB: '8', MEDFIT_MAX_BODY_MB: '4' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
}, 60_000);
afterAll(async () => server?.close());

describe('sequence models through medfit serve', () => {
  let datasetId = '';
  let classes: string[] = [];
  let v1: Array<Record<string, any>> = [];

  it('uploads a long-format sensor table as a dataset', async () => {
    const r = await call('/v1/datasets?name=fitness', { body: train.text, headers: { 'content-type': 'text/csv' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'fitness', format: 'csv', rows: train.rows.length });
    expect(r.body['columns'].map((c: { name: string }) => c.name)).toEqual(['subject', 'session', 't', ...CHANNELS, 'activity', 'energy']);
    datasetId = r.body['id'];
  });

  it('refuses bad sequence job options before queueing, with pointers', async () => {
    const job = (extra: Record<string, unknown>, sequence: Record<string, unknown> = {}) => call('/v1/jobs', { json: { dataset: datasetId, target: 'activity', name: 'bad', ...extra, sequence } });
    const unknown = await job({}, { channels: ['ax', 'nope'], subject: 'who', window: '2 seconds' });
    expect(unknown.status).toBe(422);
    expect(pointers(unknown)).toEqual(expect.arrayContaining(['/sequence/channels/1', '/sequence/subject', '/sequence/window']));
    expect(unknown.body['detail']).not.toMatch(/at |\.ts/);
    const roles = await job({}, { channels: ['ax', 'activity'], time: 'subject' });
    expect(pointers(roles)).toEqual(expect.arrayContaining(['/sequence/channels/1', '/sequence/time']));
    expect((await job({}, { filter: 'highpass:3' })).body['errors'][0]).toMatchObject({ pointer: '/sequence/filter' });
    expect((await job({}, { window: '200s', rate: 1000 })).body['errors'][0]).toMatchObject({ pointer: '/sequence/window' });
    expect(pointers(await job({ model: 'gbdt' }))).toEqual(['/model']);
    expect(pointers(await job({ group: 'subject', nested: true }))).toEqual(['/group', '/nested']);
    const schema = await job({}, { window: -3 });
    expect(schema.status).toBe(400);
    expect(pointers(schema)[0]).toMatch(/^\/sequence\/window/);
    // A sequence family without sequence options, several targets for a table job.
    expect(pointers(await call('/v1/jobs', { json: { dataset: datasetId, target: 'activity', name: 'bad', model: 'window-gbdt' } }))).toEqual(['/model']);
    expect(pointers(await call('/v1/jobs', { json: { dataset: datasetId, target: ['energy', 'hr'], name: 'bad' } }))).toEqual(['/target']);
    expect(pointers(await call('/v1/jobs', { json: { dataset: datasetId, target: ['energy', 'nope'], name: 'bad', sequence: {} } }))).toEqual(['/target/1']);
    expect((await call('/v1/jobs')).body['jobs']).toHaveLength(0);
  });

  it('trains a window-gbdt job with sequence options and registers the model', async () => {
    const r = await call('/v1/jobs', {
      json: { dataset: datasetId, target: 'activity', name: 'activity', model: 'window-gbdt', cv: 3, params: { 'window-gbdt': { trees: 30 } }, sequence: { channels: CHANNELS, window: '2s', stride: '1s' } },
    });
    expect(r.status).toBe(202);
    const last = await finished(r.body['id']);
    expect(last).toMatchObject({ type: 'status', status: 'succeeded', model: { name: 'activity', version: 1 } });
    const job = await call(`/v1/jobs/${r.body['id']}`);
    expect(job.body).toMatchObject({ status: 'succeeded', spec: { sequence: { window: '2s' } } });
    const v = await call('/v1/models/activity/versions/1');
    expect(v.body).toMatchObject({ family: 'window-gbdt', task: 'multiclass', features: CHANNELS });
    expect(v.body['metrics']['cv']['accuracy']['mean']).toBeGreaterThan(0.5);
    expect(v.body['sequence']).toMatchObject({ channels: CHANNELS, rate: RATE, window: WINDOW, stride: STRIDE, timeUnit: 'ms', v2: { input: { shape: [-1, WINDOW, CHANNELS.length] } } });
    expect(v.body['sequence']['normalisation']['mean']).toHaveLength(CHANNELS.length);
    classes = v.body['target']['classes'];
    expect(classes.length).toBeGreaterThan(3);
  }, 60_000);

  it('predicts raw samples: one prediction per window, as the training engine does', async () => {
    const r = await call('/v1/models/activity/predict', { json: { samples: asSamples(s01a) } });
    expect(r.status).toBe(200);
    v1 = r.body['predictions'];
    expect(v1).toHaveLength(windowCount(s01a.length, WINDOW, STRIDE));
    expect(r.body['warnings']).toEqual([]);
    for (const p of v1) {
      expect(classes).toContain(p['label']);
      expect(Object.keys(p['probabilities'])).toEqual(classes);
      expect(typeof p['start']).toBe('number');
    }
    expect(v1[0]!['start']).toBe(Number(s01a[0]!['t']));
    expect(v1[1]!['start'] - v1[0]!['start']).toBeCloseTo((STRIDE / RATE) * 1000, 6);
    // The training engine (the CLI's path) on the same samples: same windows, same answers up to float32.
    const dir = join(dataDir, 'models', readdirSync(join(dataDir, 'models'))[0]!);
    const artifact = loadArtifact(join(dir, readdirSync(dir)[0]!));
    const table = tableFromRows(['subject', 'session', 't', ...CHANNELS], s01a.map((row) => ['s01', 's01-a', Number(row['t']), ...CHANNELS.map((c) => Number(row[c]))]));
    const engine = predictSequence(artifact, sequenceDataFor(artifact, table)).predictions as Array<Record<string, any>>;
    expect(engine).toHaveLength(v1.length);
    let agree = 0;
    for (const [i, p] of v1.entries()) {
      if (p['label'] === engine[i]!['label']) agree++;
      for (const c of classes) expect(Math.abs(p['probabilities'][c] - engine[i]!['probabilities'][c])).toBeLessThan(1e-5);
    }
    expect(agree).toBe(v1.length);
    // Most windows are right: the model saw this subject in training.
    const truth = s01a.filter((_, i) => i % STRIDE === 0).map((row) => row['activity']);
    expect(v1.filter((p, i) => p['label'] === truth[i + 1]).length / v1.length).toBeGreaterThan(0.6);
  });

  it('names the stream, takes ISO times, warns of missing and extra channels', async () => {
    const iso = asSamples(s01a.slice(0, 200)).map((s) => ({ ...s, t: new Date(s.t).toISOString(), subject: 's01', note: 1 }));
    const r = await call('/v1/models/activity/predict', { json: { samples: iso, session: 'a' } });
    expect(r.status).toBe(200);
    expect(r.body['predictions'][0]).toMatchObject({ subject: 's01', session: 'a', start: iso[0]!.t });
    expect(r.body['warnings'].join(' ')).toMatch(/note/);
    // No gyroscope: still one prediction per window, with a warning naming what was filled.
    const noGyro = await call('/v1/models/activity/predict', { json: { samples: asSamples(s01a, ['ax', 'ay', 'az', 'hr']) } });
    expect(noGyro.status).toBe(200);
    expect(noGyro.body['predictions']).toHaveLength(v1.length);
    expect(noGyro.body['warnings'].join(' ')).toMatch(/gx, gy, gz/);
    for (const p of noGyro.body['predictions']) expect(classes).toContain(p['label']);
  });

  it('resamples samples at another rate (100 Hz for a 25 Hz model)', async () => {
    const fast = synth({ subjects: 1, seconds: 5, rate: 100 });
    const rows = sessionRows(fast.rows, 's01-a');
    const r = await call('/v1/models/activity/predict', { json: { samples: asSamples(rows) } });
    expect(r.status).toBe(200);
    const span = (Number(rows.at(-1)!['t']) - Number(rows[0]!['t'])) / 1000;
    expect(r.body['predictions']).toHaveLength(windowCount(Math.floor(span * RATE + 1e-6) + 1, WINDOW, STRIDE));
    expect(r.body['warnings'].join(' ')).toMatch(/100 Hz: resampled to the model's 25 Hz/);
    for (const p of r.body['predictions']) expect(classes).toContain(p['label']);
  });

  it('serves the same windows through V2 infer as [batch, steps, channels] FP32, JSON and binary', async () => {
    const meta = await call('/v2/models/activity');
    expect(meta.body['inputs']).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, WINDOW, CHANNELS.length] }]);
    expect(meta.body['outputs']).toEqual([{ name: 'probabilities', datatype: 'FP32', shape: [-1, classes.length] }]);
    // The windows the server makes of s01a, made here with the model's own preparation.
    const dir = join(dataDir, 'models', readdirSync(join(dataDir, 'models'))[0]!);
    const artifact = loadArtifact(join(dir, readdirSync(dir)[0]!));
    const prep = artifact.manifest.sequence!;
    const table = tableFromRows(['subject', 'session', 't', ...CHANNELS], s01a.map((row) => ['s01', 's01-a', Number(row['t']), ...CHANNELS.map((c) => Number(row[c]))]));
    const w = windowize(segmentsOf(sequenceDataFor(artifact, table).sessions, prep), prep, prep, []);
    const n = 6;
    const x = new Float32Array(w.x.data.subarray(0, n * WINDOW * CHANNELS.length));
    const json = await call('/v2/models/activity/infer', { json: { inputs: [{ name: 'input', datatype: 'FP32', shape: [n, WINDOW, CHANNELS.length], data: Array.from(x) }] } });
    expect(json.status).toBe(200);
    const out = json.body['outputs'][0];
    expect(out).toMatchObject({ name: 'probabilities', shape: [n, classes.length] });
    // FP32 windows (what the protocol carries) against /v1's float64 ones: window features may
    // differ in their last bits, and a tree may then take the other branch.
    let maxDiff = 0;
    for (let i = 0; i < n; i++) {
      for (const [k, c] of classes.entries()) maxDiff = Math.max(maxDiff, Math.abs(out.data[i * classes.length + k] - v1[i]!['probabilities'][c]));
    }
    expect(maxDiff).toBeLessThan(0.05);
    for (let i = 0; i < n; i++) {
      const row = Array.from(out.data.slice(i * classes.length, (i + 1) * classes.length) as number[]);
      expect(classes[row.indexOf(Math.max(...row))]).toBe(v1[i]!['label']);
    }
    // Binary tensors: the same numbers.
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [n, WINDOW, CHANNELS.length], parameters: { binary_data_size: x.byteLength } }], parameters: { binary_data_output: true } }));
    const bin = await call('/v2/models/activity/infer', { body: Buffer.concat([header, Buffer.from(x.buffer, x.byteOffset, x.byteLength)]), headers: { 'inference-header-content-length': String(header.length), 'content-type': 'application/octet-stream' } });
    expect(bin.status).toBe(200);
    const hl = Number(bin.headers.get('inference-header-content-length'));
    const probs = new Float32Array(bin.raw.buffer.slice(bin.raw.byteOffset + hl, bin.raw.byteOffset + bin.raw.length));
    expect(Array.from(probs)).toEqual(out.data.map((v: number) => Math.fround(v)));
    // The shape and datatype are checked.
    const flat = await call('/v2/models/activity/infer', { json: { inputs: [{ name: 'input', datatype: 'FP32', shape: [n, WINDOW * CHANNELS.length], data: Array.from(x) }] } });
    expect(flat.status).toBe(400);
    expect(flat.body['error']).toMatch(/\[-1,50,7\]/);
    const fp64 = await call('/v2/models/activity/infer', { json: { inputs: [{ name: 'input', datatype: 'FP64', shape: [n, WINDOW, CHANNELS.length], data: Array.from(x) }] } });
    expect(fp64.status).toBe(400);
  });

  it('hands the streaming engine a ServedSequence', async () => {
    const [project] = await server.services.store.listProjects();
    const m = await server.services.models.sequenceModel(project!.id, 'activity');
    expect(m.prep).toMatchObject({ rate: RATE, window: WINDOW, channels: CHANNELS });
    expect(m.classes).toEqual(classes);
    const x = { rows: 2, cols: WINDOW * CHANNELS.length, data: new Float64Array(2 * WINDOW * CHANNELS.length) };
    const out = await m.predictWindows(x);
    expect(out).toHaveLength(2 * classes.length);
    expect(out[0]! + out[1]! + out[2]! + out[3]! + out[4]! + out[5]! + out[6]!).toBeCloseTo(1, 4);
    await expect(server.services.models.sequenceModel(project!.id, 'nope')).rejects.toMatchObject({ status: 404 });
  });

  it('refuses bad samples with pointers, never a 500', async () => {
    const good = asSamples(s01a.slice(0, 200));
    const predict = (body: unknown) => call('/v1/models/activity/predict', { json: body });
    const backwards = good.map((s, i) => (i === 17 ? { ...s, t: good[10]!.t } : s));
    const b = await predict({ samples: backwards });
    expect(b.status).toBe(422);
    expect(pointers(b)).toEqual(['/samples/17/t']);
    expect(b.body['detail']).toMatch(/backwards/);
    const garbage = good.map((s, i) => (i === 5 ? { ...s, ax: 'lots' } : i === 9 ? { ...s, gy: true } : s));
    const g = await predict({ samples: garbage });
    expect(g.status).toBe(422);
    expect(pointers(g)).toEqual(['/samples/5/ax', '/samples/9/gy']);
    expect(g.body['detail']).not.toContain('lots');
    const noTime = await predict({ samples: good.map((s, i) => (i === 3 ? { ax: (s as Record<string, number>)['ax'] } : s)) });
    expect(pointers(noTime)).toEqual(['/samples/3/t']);
    const short = await predict({ samples: good.slice(0, 10) });
    expect(short.status).toBe(422);
    expect(short.body['detail']).toMatch(/no window: the model's window is 50 steps at 25 Hz/);
    const foreign = await predict({ samples: good.map((s) => ({ t: s.t, heart: 1 })) });
    expect(foreign.status).toBe(422);
    expect(pointers(foreign)).toEqual(['/samples']);
    expect((await predict({ samples: [1, 2] })).status).toBe(400);
    expect((await predict({ samples: good, records: [{}] })).status).toBe(400);
    expect(pointers(await predict({}))).toEqual(['/records']);
    const records = await predict({ records: [{ ax: 1 }] });
    expect(records.status).toBe(400);
    expect(records.body['detail']).toMatch(/sequence model .*"samples"/);
  });

  it('keeps table models as they were, and refuses samples for them', async () => {
    const csv = 'a,b,y\n' + Array.from({ length: 60 }, (_, i) => `${i % 7},${(i * 3) % 11},${i % 2 ? 'yes' : 'no'}`).join('\n');
    const up = await call('/v1/datasets?name=table', { body: csv, headers: { 'content-type': 'text/csv' } });
    const job = await call('/v1/jobs', { json: { dataset: up.body['id'], target: 'y', name: 'table', model: 'logistic', cv: 2 } });
    expect((await finished(job.body['id']))['status']).toBe('succeeded');
    const ok = await call('/v1/models/table/predict', { json: { records: [{ a: 1, b: 2 }] } });
    expect(ok.status).toBe(200);
    expect(ok.body['predictions'][0]['label']).toMatch(/yes|no/);
    const samples = await call('/v1/models/table/predict', { json: { samples: asSamples(s01a.slice(0, 100)) } });
    expect(samples.status).toBe(400);
    expect(samples.body['detail']).toMatch(/table model .*records/);
    const [project] = await server.services.store.listProjects();
    await expect(server.services.models.sequenceModel(project!.id, 'table')).rejects.toMatchObject({ status: 400 });
  }, 30_000);

  it('takes FIT files as datasets, converted to long format; refuses damaged ones with a 422', async () => {
    const start = Date.UTC(2024, 4, 1, 8);
    const accel = Array.from({ length: 60 }, (_, i) => ({ t: start + i * 1000, offsets: [0, 40, 80, 120, 160], x: [0.1, 0.2, 0.1, 0, -0.1], y: [0, 0, 0.1, 0, 0], z: [1, 1, 1, 0.9, 1] }));
    const fit = buildActivityFit({ start, records: oneHzRecords(start, 60), accel });
    const r = await call('/v1/datasets?name=morning-run.fit', { body: fit, headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'morning-run.fit', format: 'csv' });
    expect(r.body['rows']).toBeGreaterThanOrEqual(60 * 5);
    expect(r.body['sha256']).toMatch(/^[0-9a-f]{64}$/);
    const names = r.body['columns'].map((c: { name: string }) => c.name);
    expect(names.slice(0, 3)).toEqual(['subject', 'session', 't']);
    expect(names).toEqual(expect.arrayContaining(['heart_rate', 'ax', 'ay', 'az']));
    const profile = await call(`/v1/datasets/${r.body['id']}`);
    expect(profile.body['profile']['rows']).toBe(r.body['rows']);
    // By content type, under any name.
    const typed = await call('/v1/datasets?name=ride&session=s1', { body: fit, headers: { 'content-type': 'application/vnd.ant.fit' } });
    expect(typed.status).toBe(201);
    const truncated = await call('/v1/datasets?name=cut.fit', { body: fit.subarray(0, Math.floor(fit.length / 2)), headers: { 'content-type': 'application/vnd.ant.fit' } });
    expect(truncated.status).toBe(422);
    expect(truncated.body['detail']).toMatch(/^cut\.fit: /);
    const notFit = await call('/v1/datasets?name=notes.fit', { body: 'a,b\n1,2\n' });
    expect(notFit.status).toBe(422);
    expect(notFit.body['detail']).toMatch(/^notes\.fit: is not a FIT file/);
    expect((await call('/v1/datasets?name=x.fit', { body: '' })).status).toBeGreaterThanOrEqual(400);
    expect((await call('/v1/datasets?name=table2&session=s', { body: 'a\n1\n', headers: { 'content-type': 'text/csv' } })).status).toBe(400);
    // Nothing of the refused uploads stays on disk.
    const files = readdirSync(join(dataDir, 'datasets'), { recursive: true }).map(String);
    expect(files.filter((f) => /\.fit\.upload|tmp/.test(f))).toEqual([]);
  });

  it('refuses a FIT file whose CSV would be over the upload limit with a 413, leaving nothing on disk', async () => {
    // ≈ 0.5 MB of FIT (float32 samples, 60 a message) makes a CSV over the server's 8 MB limit:
    // 30,000 rows, each with a 128-character subject and session and three 17-digit values.
    const start = Date.UTC(2024, 4, 1, 9);
    const wave = Array.from({ length: 60 }, (_, i) => 0.1 + i / 997);
    const accel = Array.from({ length: 500 }, (_, k) => ({ t: start + k * 600, offsets: Array.from({ length: 60 }, (_, i) => i * 10), x: wave, y: wave, z: wave }));
    const fit = buildActivityFit({ start, records: oneHzRecords(start, 300), accel });
    expect(fit.length).toBeLessThan(1_000_000);
    const before = readdirSync(join(dataDir, 'datasets'), { recursive: true }).map(String).sort();
    const listed = (await call('/v1/datasets')).body['datasets'].length;
    const long = (c: string) => c.repeat(128);
    const r = await call(`/v1/datasets?name=big.fit&subject=${long('S')}&session=${long('s')}`, { body: fit, headers: { 'content-type': 'application/vnd.ant.fit' } });
    expect(r.status).toBe(413);
    expect(r.body['detail']).toBe(`the dataset converted from the FIT file is larger than the limit of ${8 * 1024 * 1024} bytes (MEDFIT_MAX_UPLOAD_MB)`);
    expect(readdirSync(join(dataDir, 'datasets'), { recursive: true }).map(String).sort()).toEqual(before);
    expect((await call('/v1/datasets')).body['datasets'].length).toBe(listed);
  });
});
