/**
 * The whole service over a real port: upload, train in a worker thread, follow Server-Sent
 * Events, stage, predict with ONNX Runtime (v1 records, V2 JSON and binary tensors), project
 * isolation, bad input, and a restart on the same data directory.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { loadArtifact, predictRecords } from '../src/registry/index.js';
import { fixture, tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-0123456789abcdef';
const dataDir = join(tempDir(), 'data');
const csv = readFileSync(fixture('breast_cancer_wdbc.csv'), 'utf8');
const header = csv.split(/\r?\n/)[0]!.split(',');
const rows = csv
  .split(/\r?\n/)
  .slice(1)
  .filter(Boolean)
  .map((l) => l.split(','));
/** Raw records as a client sends them: every feature column, numbers as numbers. */
const records = rows.slice(0, 20).map((r) => Object.fromEntries(header.slice(0, -1).map((c, j) => [c, Number(r[j])])));

let server: Server;
let base: string;

async function start(): Promise<void> {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_UPLOAD_MB: '1', MEDFIT_MAX_BODY_MB: '1' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
}

async function call(path: string, init: { method?: string; key?: string; json?: unknown; body?: string | Buffer; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.key !== '') headers['authorization'] = `Bearer ${init.key ?? ADMIN}`;
  let body: string | Buffer | undefined = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: parsed as Record<string, any> };
}

/** Reads a job's SSE stream until it ends; returns the events. */
async function events(jobId: string): Promise<Array<Record<string, any>>> {
  const res = await fetch(`${base}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${ADMIN}` } });
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const text = await res.text();
  return text
    .split('\n\n')
    .map((block) => block.split('\n').find((l) => l.startsWith('data: ')))
    .filter((l): l is string => !!l)
    .map((l) => JSON.parse(l.slice(6)) as Record<string, any>);
}

beforeAll(start, 60_000);
afterAll(async () => server?.close());

describe('logs', () => {
  it('carry method, route and status, never record values, keys or dataset contents', async () => {
    const lines: string[] = [];
    const logStream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const dir = join(tempDir(), 'data');
    const s = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'info' }, { dataDir: dir }), { logStream });
    try {
      const url = await s.app.listen({ host: '127.0.0.1', port: 0 });
      const secretish = 'a,b,y\n' + Array.from({ length: 30 }, (_, i) => `${1234.5678 + i},${i % 7},${i % 2 ? 'positive-4242' : 'negative-4242'}`).join('\n');
      const up = await fetch(`${url}/v1/datasets?name=logged`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/csv' }, body: secretish });
      expect(up.status).toBe(201);
      const bad = await fetch(`${url}/v1/models/none/predict`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ records: [{ a: 9876.54321 }] }) });
      expect(bad.status).toBe(404);
    } finally {
      await s.close();
    }
    const text = lines.join('');
    expect(text).toMatch(/"url":"\/v1\/datasets"/);
    expect(text).toMatch(/"statusCode":201/);
    for (const value of ['1234.5678', '4242', '9876.54321', ADMIN]) expect(text).not.toContain(value);
  }, 60_000);
});

describe('medfit serve, end to end', () => {
  let datasetId = '';
  let v1: Array<{ label: string; probabilities: Record<string, number> }> = [];

  it('needs a key, and answers health and the API description without one', async () => {
    expect((await call('/v1/models', { key: '' })).status).toBe(401);
    expect((await call('/v1/models', { key: 'nope' })).status).toBe(401);
    expect((await call('/healthz', { key: '' })).body).toMatchObject({ status: 'ok' });
    const doc = await call('/openapi.json', { key: '' });
    expect(doc.body['openapi']).toMatch(/^3\./);
    expect(Object.keys(doc.body['paths'])).toEqual(expect.arrayContaining(['/v1/datasets', '/v1/jobs', '/v1/jobs/{id}/events', '/v1/models/{name}/predict', '/v2/models/{model}/infer']));
    expect((await call('/docs', { key: '' })).status).toBeLessThan(400);
    expect((await call('/v2/health/live', { key: '' })).status).toBe(200);
  });

  it('uploads a CSV dataset, streamed and profiled', async () => {
    const r = await call('/v1/datasets?name=breast-cancer', { body: csv, headers: { 'content-type': 'text/csv' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'breast-cancer', rows: 569, format: 'csv' });
    expect(r.body['columns']).toHaveLength(31);
    datasetId = r.body['id'];
    const one = await call(`/v1/datasets/${datasetId}`);
    expect(one.body['profile']['rows']).toBe(569);
  });

  it('trains in a worker, streams progress, and registers version 1', async () => {
    const r = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'bc', model: 'gbdt', cv: 3 } });
    expect(r.status).toBe(202);
    expect(r.body['status']).toBe('queued');
    const evs = await events(r.body['id']);
    expect(evs.some((e) => e['type'] === 'progress')).toBe(true);
    expect(evs.at(-1)).toMatchObject({ type: 'status', status: 'succeeded', model: { name: 'bc', version: 1 } });
    const job = await call(`/v1/jobs/${r.body['id']}`);
    expect(job.body).toMatchObject({ status: 'succeeded', progress: 1, model: { name: 'bc', version: 1 } });
    const v = await call('/v1/models/bc/versions/1');
    expect(v.body).toMatchObject({ version: 1, family: 'gbdt', task: 'binary', stage: 'none', lineage: { dataset: datasetId, job: r.body['id'] } });
    expect(v.body['metrics']['cv']['auroc']['mean']).toBeGreaterThan(0.98);
    expect(v.body['evaluation']['roc']['fpr'].length).toBeGreaterThan(2);
    expect(v.body['lineage']['datasetSha256']).toMatch(/^[0-9a-f]{64}$/);
  }, 120_000);

  it('stages to production and predicts raw records with ONNX Runtime, matching the training engine', async () => {
    const st = await call('/v1/models/bc/versions/1/stage', { json: { stage: 'production' } });
    expect(st.body).toMatchObject({ stage: 'production' });
    const r = await call('/v1/models/bc/predict', { json: { records } });
    expect(r.status).toBe(200);
    expect(r.body['model']).toEqual({ name: 'bc', version: 1 });
    v1 = r.body['predictions'];
    expect(v1).toHaveLength(20);
    // The engine's own prediction from the saved artifact, through the same pipeline.
    const dir = join(dataDir, 'models', readdirSync(join(dataDir, 'models'))[0]!);
    const artifact = loadArtifact(join(dir, readdirSync(dir)[0]!));
    const engine = predictRecords(artifact, records).predictions as typeof v1;
    v1.forEach((p, i) => {
      expect(p.label).toBe(engine[i]!.label);
      expect(Math.abs(p.probabilities['malignant']! - engine[i]!.probabilities['malignant']!)).toBeLessThan(1e-5);
    });
    expect(v1.filter((p, i) => p.label === rows[i]![30]).length).toBeGreaterThanOrEqual(18);
  });

  it('speaks the Open Inference Protocol: metadata, JSON and binary infer', async () => {
    const meta = await call('/v2/models/bc');
    expect(meta.body).toEqual({ name: 'bc', versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 30] }], outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }] });
    expect((await call('/v2/models/bc/ready')).status).toBe(200);
    expect((await call('/v2/models/bc/versions/1')).status).toBe(200);
    // The V2 input is the feature tensor after the pipeline: the artifact's own transform.
    const dir = join(dataDir, 'models', readdirSync(join(dataDir, 'models'))[0]!);
    const artifact = loadArtifact(join(dir, readdirSync(dir)[0]!));
    const { transformRecords } = await import('../src/data/index.js');
    const x = new Float32Array(transformRecords(artifact.manifest.pipeline!, records.slice(0, 3)).x.data);
    const json = await call('/v2/models/bc/versions/1/infer', { json: { id: 'req-1', inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 30], data: Array.from(x) }] } });
    expect(json.status).toBe(200);
    expect(json.body).toMatchObject({ model_name: 'bc', model_version: '1', id: 'req-1' });
    const out = json.body['outputs'][0];
    expect(out).toMatchObject({ name: 'probabilities', datatype: 'FP32', shape: [3, 2] });
    for (let i = 0; i < 3; i++) expect(Math.abs(out.data[2 * i + 1] - v1[i]!.probabilities['malignant']!)).toBeLessThan(1e-6);

    const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 30], parameters: { binary_data_size: x.byteLength } }], parameters: { binary_data_output: true } }));
    const body = Buffer.concat([head, Buffer.from(x.buffer, x.byteOffset, x.byteLength)]);
    const res = await fetch(`${base}/v2/models/bc/infer`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) }, body });
    expect(res.status).toBe(200);
    const raw = Buffer.from(await res.arrayBuffer());
    const hlen = Number(res.headers.get('inference-header-content-length'));
    const rh = JSON.parse(raw.subarray(0, hlen).toString()) as { outputs: Array<{ name: string; shape: number[]; parameters: { binary_data_size: number } }> };
    expect(rh.outputs[0]).toMatchObject({ name: 'probabilities', shape: [3, 2], parameters: { binary_data_size: 24 } });
    const probs = new Float32Array(raw.buffer.slice(raw.byteOffset + hlen, raw.byteOffset + hlen + 24));
    for (let i = 0; i < 3; i++) expect(Math.abs(probs[2 * i + 1]! - out.data[2 * i + 1])).toBeLessThan(1e-7);
  });

  it('keeps projects apart and enforces scopes', async () => {
    const other = await createKey(server.services.store, 'other-clinic', ['admin'], 'test');
    const reader = await createKey(server.services.store, 'default', ['read'], 'test');
    expect((await call('/v1/models', { key: other.key })).body).toEqual({ models: [] });
    expect((await call('/v1/datasets', { key: other.key })).body).toEqual({ datasets: [] });
    expect((await call(`/v1/datasets/${datasetId}`, { key: other.key })).status).toBe(404);
    expect((await call('/v1/models/bc/predict', { key: other.key, json: { records } })).status).toBe(404);
    expect((await call('/v2/models/bc', { key: other.key })).status).toBe(404);
    expect((await call('/v1/datasets?name=theirs', { key: other.key, body: 'a,b\n1,2\n3,4\n', headers: { 'content-type': 'text/csv' } })).status).toBe(201);
    expect((await call('/v1/datasets')).body['datasets'].map((d: { name: string }) => d.name)).toEqual(['breast-cancer']);
    const home = (await server.services.store.getProjectByName('default'))!.id;
    const theirs = (await call('/v1/audit', { key: other.key })).body['entries'] as Array<{ projectId: string }>;
    expect(theirs.length).toBeGreaterThan(0);
    expect(theirs.every((e) => e.projectId !== home)).toBe(true);
    expect((await call('/v1/models', { key: reader.key })).status).toBe(200);
    // V2 inference (answered by the fast path, before Fastify) enforces the same keys and scopes.
    const v2Body = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 30], data: new Array(30).fill(0) }] };
    expect(await call('/v2/models/bc/infer', { key: '', json: v2Body })).toMatchObject({ status: 401, body: { error: expect.stringMatching(/missing API key/) } });
    expect(await call('/v2/models/bc/infer', { key: reader.key, json: v2Body })).toMatchObject({ status: 403, body: { error: expect.stringMatching(/"predict" scope/) } });
    expect((await call('/v2/models/bc/infer', { key: other.key, json: v2Body })).status).toBe(404);
    const denied = await call('/v1/models/bc/predict', { key: reader.key, json: { records } });
    expect(denied.status).toBe(403);
    expect(denied.type).toContain('application/problem+json');
    expect((await call('/v1/audit', { key: reader.key })).status).toBe(403);
  });

  it('keeps an audit trail without record values', async () => {
    expect((await call('/v1/audit?limit=2')).body['entries']).toHaveLength(2);
    expect((await call('/v1/audit?limit=0')).status).toBe(400);
    const audit = await call('/v1/audit');
    const actions = audit.body['entries'].map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['dataset.create', 'job.create', 'model.stage', 'model.predict', 'model.infer', 'denied']));
    // The JSON and the binary inference (3 rows each) may share an entry if they fell in one window.
    const infers = audit.body['entries'].filter((e: { action: string; status: number }) => e.action === 'model.infer' && e.status === 200) as Array<{ resource: string; rows: number; requests: number }>;
    expect(infers.every((e) => e.resource === 'model:bc/1')).toBe(true);
    expect(infers.reduce((a, e) => a + e.requests, 0)).toBe(2);
    expect(infers.reduce((a, e) => a + e.rows, 0)).toBe(6);
    const predict = audit.body['entries'].find((e: { action: string }) => e.action === 'model.predict');
    expect(predict).toMatchObject({ resource: 'model:bc/1', rows: 20, status: 200, requests: 1 });
    expect(JSON.stringify(audit.body)).not.toContain(String(records[0]!['mean_radius']));
  });

  it('exposes Prometheus metrics to admin keys, each project seeing only its own model series', async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const other = await createKey(server.services.store, 'metrics-clinic', ['admin'], 'test');
    const theirs = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${other.key}` } })).text();
    expect(theirs).toMatch(/medfit_http_request_duration_seconds_bucket/);
    expect(theirs).not.toMatch(/model="bc"/);
    const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const text = await res.text();
    expect(text).toMatch(/medfit_predictions_total\{project="[0-9a-f-]+",model="bc",version="1",protocol="v1"\} \d+/);
    expect(text).toMatch(/medfit_http_request_duration_seconds_bucket\{.*route="\/v1\/models\/:name\/predict"/);
    expect(text).toMatch(/medfit_jobs\{status="succeeded"\} 1/);
    expect(text).toMatch(/medfit_predictions_total\{project="[0-9a-f-]+",model="bc",version="1",protocol="v2"\} 6/);
    expect(text).toMatch(/medfit_http_request_duration_seconds_count\{method="POST",route="\/v2\/models\/:model\/infer",status="200"\} \d+/);
  });

  it('rejects bad input with a 4xx that says what and where, and writes nothing', async () => {
    const before = readdirSync(join(dataDir, 'datasets'), { recursive: true }).length;
    const bad = await call('/v1/models/bc/predict', { body: '{"records": [', headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ status: 400, detail: 'body is not valid JSON' });
    const wrongType = await call('/v1/models/bc/predict', { json: { records: [{ ...records[0], mean_radius: 'large' }] } });
    expect(wrongType.status).toBe(422);
    expect(wrongType.body['errors'][0]).toEqual({ pointer: '/records/0/mean_radius', message: 'expected a finite number' });
    expect(JSON.stringify(wrongType.body)).not.toContain('large');
    const infinite = await call('/v1/models/bc/predict', { body: '{"records": [{"mean_radius": 1e999}]}', headers: { 'content-type': 'application/json' } });
    expect(infinite.status).toBe(422);
    expect((await call('/v1/models/bc/predict', { json: { records: [{ weight: 1 }] } })).body['detail']).toMatch(/records\.0: has none of the model's features/);
    expect((await call('/v1/models/bc/predict', { json: { rows: [] } })).status).toBe(400);
    expect((await call('/v1/models/nope/predict', { json: { records } })).status).toBe(404);
    expect((await call('/v1/models/bc/versions/9/predict', { json: { records } })).status).toBe(404);
    const shape = await call('/v2/models/bc/infer', { json: { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 29], data: new Array(29).fill(0) }] } });
    expect(shape.status).toBe(400);
    expect(typeof shape.body['error']).toBe('string');
    expect((await call('/v2/models/bc/infer', { json: { inputs: [{ name: 'input', datatype: 'INT8', shape: [1, 30], data: new Array(30).fill(0) }] } })).status).toBe(400);
    const tHead = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 30], parameters: { binary_data_size: 120 } }] }));
    // The header promises 120 bytes of tensor data; only 60 follow.
    const truncated = await fetch(`${base}/v2/models/bc/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(tHead.length) },
      body: Buffer.concat([tHead, Buffer.alloc(60)]),
    });
    expect(truncated.status).toBe(400);
    expect(((await truncated.json()) as { error: string }).error).toMatch(/120|short|bytes/);
    const hugeInfer = await call('/v2/models/bc/infer', { body: 'x'.repeat(2 * 1024 * 1024), headers: { 'content-type': 'application/json' } });
    expect(hugeInfer.status).toBe(413);
    const overflow = await call('/v1/models/bc/predict', { json: { records: [{ ...records[0], mean_area: 1e300 }] } });
    expect(overflow.status).toBe(422);
    expect(overflow.body['errors'][0]).toMatchObject({ pointer: '/records/0/mean_area' });
    const form = new FormData();
    form.append('file', new Blob(['a,b\n1,2\n']), 'x.csv');
    const multipart = await fetch(`${base}/v1/datasets?name=form`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: form });
    expect(multipart.status).toBe(415);
    expect(((await multipart.json()) as { detail: string }).detail).toMatch(/--data-binary @file\.csv\), not as a multipart form/);
    const nothing = await call('/v1/datasets?name=nothing', { method: 'POST', headers: { 'content-type': 'text/csv' } });
    expect(nothing).toMatchObject({ status: 422, body: { detail: expect.stringMatching(/nothing: .*empty/) } });
    expect([400, 422]).toContain((await call('/v1/datasets?name=nothing', { method: 'POST' })).status);
    const badParams = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'x', params: { gbdt: { trees: -5 } }, group: 'diagnosis' } });
    expect(badParams.status).toBe(422);
    expect(badParams.body['errors'].map((e: { pointer: string }) => e.pointer)).toEqual(['/group', '/params/gbdt/trees']);
    const v2Url = await fetch(`${base}/v2/models/%E0%A4%A/infer`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: '{}' });
    expect(v2Url.status).toBe(400);
    expect(await v2Url.json()).toEqual({ error: expect.stringMatching(/^malformed request/) });
    const v1Url = await call('/v1/models/%E0%A4%A');
    expect(v1Url).toMatchObject({ status: 400, type: expect.stringContaining('application/problem+json') });
    expect((await call('/v1/models/bc/versions/1.0')).status).toBe(400);
    expect((await call('/v2/models/bc/versions/1.0')).status).toBe(404);
    const big = await call('/v1/datasets?name=big', { body: 'a,b\n' + '1,2\n'.repeat(300_000), headers: { 'content-type': 'text/csv' } });
    expect(big.status).toBe(413);
    const ragged = await call('/v1/datasets?name=ragged', { body: 'a,b,y\n1,2,x\n3\n', headers: { 'content-type': 'text/csv' } });
    expect(ragged.status).toBe(422);
    expect(ragged.body['detail']).toMatch(/ragged:3: row has 1 field/);
    const job = await call('/v1/jobs', { json: { dataset: datasetId, target: 'outcome', name: 'x' } });
    expect(job.status).toBe(422);
    expect(job.body['errors'][0]).toMatchObject({ pointer: '/target' });
    const budget = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'x', budget: 'soon', calibrate: 'magic' } });
    expect(budget.status).toBe(422);
    expect(JSON.stringify(budget.body)).toContain('/budget');
    expect(JSON.stringify(budget.body)).toContain('must be one of auto, none, platt, isotonic');
    expect(JSON.stringify(budget.body)).toContain('this server allows at most');
    // A calibration method for what the stored profile shows is a regression target: refused now,
    // not by a job that could only fail.
    const regression = await call('/v1/jobs', { json: { dataset: datasetId, target: 'mean_radius', name: 'x', calibrate: 'isotonic' } });
    expect(regression.status).toBe(422);
    expect(regression.body['errors']).toEqual([{ pointer: '/calibrate', message: expect.stringContaining('"mean_radius" is a numeric target of many values (regression)') }]);
    // More search than the server allows (nested: the budget once and again in each outer fold).
    const long = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'x', budget: '20m', nested: true, cv: 3 } });
    expect(long.status).toBe(422);
    expect(JSON.stringify(long.body)).toContain('MEDFIT_MAX_BUDGET_SECONDS');
    const schema = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'x', cv: 'five' } });
    expect(schema.status).toBe(400);
    expect(schema.body['errors'][0]).toMatchObject({ pointer: '/cv' });
    expect(readdirSync(join(dataDir, 'datasets'), { recursive: true }).length).toBe(before);
    expect((await call('/v1/datasets')).body['datasets']).toHaveLength(1);
  });

  it('cancels a running job and leaves no model behind', async () => {
    const r = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'slow', model: 'mlp', cv: 5, params: { mlp: { epochs: 500, patience: 500 } } } });
    for (let i = 0; i < 100 && (await call(`/v1/jobs/${r.body['id']}`)).body['status'] !== 'running'; i++) await new Promise((res) => setTimeout(res, 100));
    const c = await call(`/v1/jobs/${r.body['id']}/cancel`, { method: 'POST' });
    expect(c.status).toBe(200);
    const evs = await events(r.body['id']);
    expect(evs.at(-1)).toMatchObject({ status: 'cancelled' });
    expect((await call('/v1/models/slow')).status).toBe(404);
    expect(existsSync(join(dataDir, 'models', readdirSync(join(dataDir, 'models'))[0]!, r.body['id']))).toBe(false);
    expect((await call(`/v1/jobs/${r.body['id']}/cancel`, { method: 'POST' })).status).toBe(409);
  }, 60_000);

  it('reads a dataset as it was uploaded, whatever its name says', async () => {
    const up = await call('/v1/datasets?name=looks-like.json', { body: csv, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(up.body).toMatchObject({ format: 'csv', rows: 569 });
    const r = await call('/v1/jobs', { json: { dataset: up.body['id'], target: 'diagnosis', name: 'named', model: 'logistic', cv: 3 } });
    expect((await events(r.body['id'])).at(-1)).toMatchObject({ status: 'succeeded' });
    expect((await call(`/v1/datasets/${up.body['id']}`, { method: 'DELETE' })).status).toBe(204);
  }, 60_000);

  it('restarts on the same data directory: predictions identical, interrupted jobs requeued', async () => {
    const slow = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'slow2', model: 'mlp', cv: 5, params: { mlp: { epochs: 500, patience: 500 } } } });
    const r = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'later', model: 'logistic', cv: 3 } });
    expect((await call(`/v1/datasets/${datasetId}`, { method: 'DELETE' })).status).toBe(409);
    // An open event stream must not hold the shutdown until its job ends.
    const stream = await fetch(`${base}/v1/jobs/${slow.body['id']}/events`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const streamText = stream.text();
    const t0 = performance.now();
    await server.close();
    expect(performance.now() - t0).toBeLessThan(5000);
    await streamText;
    await start();
    const again = await call('/v1/models/bc/predict', { json: { records } });
    expect(again.body['predictions']).toEqual(v1);
    const job = await call(`/v1/jobs/${r.body['id']}`);
    expect(['queued', 'running', 'succeeded']).toContain(job.body['status']);
    // The job that was training when the server stopped is queued or running again, not stale.
    const resumed = await call(`/v1/jobs/${slow.body['id']}`);
    expect(resumed.body).toMatchObject({ stage: expect.stringMatching(/interrupted|requeued|fold|starting/) });
    expect(['queued', 'running']).toContain(resumed.body['status']);
    expect((await call(`/v1/jobs/${slow.body['id']}/cancel`, { method: 'POST' })).status).toBe(200);
    const evs = await events(r.body['id']);
    expect(evs.at(-1)).toMatchObject({ status: 'succeeded', model: { name: 'later', version: 1 } });
  }, 120_000);

  it('trains an ensemble within a budget, calibrated, and serves it through V2 as one ONNX graph equal to the engine', async () => {
    const r = await call('/v1/jobs', { json: { dataset: datasetId, target: 'diagnosis', name: 'bc-ens', model: 'ensemble', budget: '2s', cv: 3 } });
    expect(r.status).toBe(202);
    expect((await events(r.body['id'])).at(-1)).toMatchObject({ status: 'succeeded', model: { name: 'bc-ens', version: 1 } });
    const v = await call('/v1/models/bc-ens/versions/1');
    expect(v.body).toMatchObject({ family: 'ensemble', task: 'binary' });
    expect(v.body['evaluation']['calibration']['method']).toMatch(/^(platt|isotonic)$/);
    const artifact = loadArtifact(join(dataDir, 'models', readdirSync(join(dataDir, 'models'))[0]!, r.body['id']));
    const { transformRecords } = await import('../src/data/index.js');
    const x = transformRecords(artifact.manifest.pipeline!, records).x;
    const engine = artifact.model.predict({ rows: x.rows, cols: x.cols, data: Float64Array.from(new Float32Array(x.data)) });
    const json = await call('/v2/models/bc-ens/versions/1/infer', { json: { inputs: [{ name: 'input', datatype: 'FP32', shape: [x.rows, x.cols], data: Array.from(new Float32Array(x.data)) }] } });
    expect(json.status).toBe(200);
    const out = json.body['outputs'][0];
    expect(out).toMatchObject({ name: 'probabilities', shape: [x.rows, 2] });
    for (let i = 0; i < out.data.length; i++) expect(Math.abs(out.data[i] - engine[i]!)).toBeLessThan(1e-5);
  }, 120_000);
});
