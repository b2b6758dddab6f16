/**
 * `POST /v1/models` over a real port: the external-data attack end to end, what an accepted
 * upload stores and answers (/v1 and /v2), what is refused and that a refusal stores nothing, the
 * limits of the isolated check, signed upload records across restarts, and the start-up sweep of
 * temporary folders.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { sha256 } from '../src/registry/index.js';
import * as b from './onnx-builders.js';
import { ROOT, tempDir } from './helpers.js';

const ADMIN = 'uploads-admin-key-0123456789';
const KEY = 'uploads-manifest-key-0123456789abcdef';

interface Running {
  server: Server;
  base: string;
  logs: string[];
}

async function start(dataDir: string, env: Record<string, string> = {}): Promise<Running> {
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'warn', MEDFIT_MAX_UPLOAD_MB: '2', ...env }, { dataDir, port: '0' }), { logStream });
  const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  return { server, base, logs };
}

async function call(base: string, path: string, init: { key?: string; json?: unknown } = {}) {
  const res = await fetch(`${base}${path}`, {
    method: init.json !== undefined ? 'POST' : 'GET',
    headers: { authorization: `Bearer ${init.key ?? ADMIN}`, ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
  const text = await res.text();
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, body };
}

const upload = (base: string, name: string, onnx: Uint8Array, decl: Record<string, unknown>, key?: string) =>
  call(base, '/v1/models', { json: { name, onnx: Buffer.from(onnx).toString('base64'), ...decl }, ...(key ? { key } : {}) });

const binary = { task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] };

/** Every path under `dir`, hidden ones included ([] when it does not exist). */
const files = (dir: string) => (existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).sort() : []);

/** What a caller must never read: server paths, ONNX Runtime's own words. */
function expectNothingInternal(text: string, dataDir: string): void {
  for (const s of [ROOT, process.cwd(), dataDir, tmpdir()]) expect(text).not.toContain(s);
  expect(text).not.toMatch(/onnxruntime|\.cc:\d|ONNXRuntimeError|model_path|Exception during/i);
}

describe('the external-data attack on POST /v1/models', () => {
  const dataDir = join(tempDir(), 'data');
  let s: Running;
  let attacker = '';
  beforeAll(async () => {
    s = await start(dataDir);
    // A key that can only train and predict: no admin, no read.
    attacker = (await createKey(s.server.services.store, 'default', ['train', 'predict'], 'attacker')).key;
  });
  afterAll(async () => s?.server.close());

  // package.json exists relative to the server's working directory (the repository root here);
  // ONNX Runtime would read it as the model's output for anyone with the predict scope.
  const location = 'package.json';
  const secret = readFileSync(join(process.cwd(), location)).subarray(0, 16);

  for (const where of ['constant', 'initializer', 'if'] as const) {
    it(`refuses external data in a ${where === 'if' ? 'subgraph of If' : where === 'constant' ? 'Constant node' : 'graph initializer'} with a 422 in our words, and stores nothing`, async () => {
      const name = `leak-${where}`;
      const r = await upload(s.base, name, b.exfiltrator(location, where), { task: 'multiclass', features: ['a'], classes: ['1', '2', '3', '4'] }, attacker);
      expect(r.status).toBe(422);
      expect(r.type).toContain('application/problem+json');
      expect(r.body['errors']).toEqual([{ pointer: '/onnx', message: expect.stringMatching(/^external data in graph "exfil" › .+: an uploaded model must carry its weights inside the file/) }]);
      expect(r.text).not.toContain(location);
      expectNothingInternal(r.text, dataDir);
      // Nothing registered, nothing to infer with, nothing on disk (not even a temporary folder).
      expect((await call(s.base, `/v1/models/${name}`)).status).toBe(404);
      const infer = await call(s.base, `/v2/models/${name}/infer`, { key: attacker, json: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [0] }] } });
      expect(infer.status).toBe(404);
      expect(infer.text).not.toContain(String(new Float32Array(secret.buffer.slice(secret.byteOffset, secret.byteOffset + 16))[0]));
      expect(files(join(dataDir, 'models'))).toEqual([]);
      expect(files(dataDir).filter((f) => f.includes('tmp'))).toEqual([]);
      expect((await s.server.services.store.listModelVersions((await s.server.services.store.getProjectByName('default'))!.id)).length).toBe(0);
    });
  }

  it('audits refused attempts', async () => {
    const audit = await call(s.base, '/v1/audit');
    const refused = (audit.body['entries'] as Array<{ action: string; status: number; resource: string }>).filter((e) => e.action === 'model.upload');
    expect(refused.map((e) => [e.resource, e.status]).sort()).toEqual([
      ['model:leak-constant', 422],
      ['model:leak-if', 422],
      ['model:leak-initializer', 422],
    ]);
  });
});

describe('POST /v1/models', () => {
  const dataDir = join(tempDir(), 'data');
  let s: Running;
  let projectId = '';
  beforeAll(async () => {
    s = await start(dataDir, { MEDFIT_MANIFEST_KEY: KEY });
    projectId = (await s.server.services.store.getProjectByName('default'))!.id;
  });
  afterAll(async () => s?.server.close());

  it('accepts a valid model, stores the checked copy with a signed record, and predicts with it over /v1 and /v2', async () => {
    const r = await upload(s.base, 'tiny', b.classifier(), binary);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'tiny', version: 1, source: 'uploaded', family: 'onnx', task: 'binary', stage: 'none' });
    // What is stored: one directory, exactly model.onnx and upload.json.
    const dirs = readdirSync(join(dataDir, 'models', projectId));
    expect(dirs).toEqual([expect.stringMatching(/^upload-[0-9a-f-]{36}$/)]);
    const dir = join(dataDir, 'models', projectId, dirs[0]!);
    expect(readdirSync(dir).sort()).toEqual(['model.onnx', 'upload.json']);
    const onnx = readFileSync(join(dir, 'model.onnx'));
    const record = JSON.parse(readFileSync(join(dir, 'upload.json'), 'utf8')) as Record<string, any>;
    expect(record).toMatchObject({ formatVersion: 1, task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'], integrityAlgorithm: 'hmac-sha256', files: { 'model.onnx': sha256(onnx) } });
    expect(onnx.equals(Buffer.from(b.classifier()))).toBe(true);
    const [version] = await s.server.services.store.listModelVersions(projectId, 'tiny');
    expect(version!.metrics).toEqual({ onnxSha256: sha256(onnx), uploadSha256: sha256(b.classifier()) });

    const rows = [
      [1, 2, 3],
      [-0.5, 0, 4],
    ];
    const v1 = await call(s.base, '/v1/models/tiny/predict', { json: { records: rows.map(([a, bb, c]) => ({ a, b: bb, c })) } });
    expect(v1.status).toBe(200);
    rows.forEach((x, i) => {
      const p = v1.body['predictions'][i] as { label: string; probabilities: Record<string, number> };
      const want = b.classifierProbs(x);
      expect(Math.abs(p.probabilities['yes']! - want[1]!)).toBeLessThan(1e-6);
      expect(p.label).toBe(want[1]! > 0.5 ? 'yes' : 'no');
    });
    const meta = await call(s.base, '/v2/models/tiny');
    expect(meta.body).toMatchObject({ inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }], outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 2] }] });
    const v2 = await call(s.base, '/v2/models/tiny/infer', { json: { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: rows.flat() }] } });
    expect(v2.status).toBe(200);
    expect((v2.body['outputs'][0].data as number[]).map((v) => Math.round(v * 1e6))).toEqual(rows.flatMap((x) => b.classifierProbs(x)).map((v) => Math.round(v * 1e6)));
    const details = await call(s.base, '/v1/models/tiny/versions/1');
    expect(details.body).toMatchObject({ features: ['a', 'b', 'c'], classes: ['no', 'yes'], inputs: [{ name: 'x' }], outputs: [{ name: 'probs' }] });
    // More rows than an uploaded model is ever run with at once: answered in runs of 1,024, in order.
    const many = Array.from({ length: 2500 }, (_, i) => [i / 1000, 1 - i / 2500, (i % 7) - 3]);
    const big = await call(s.base, '/v1/models/tiny/predict', { json: { records: many.map(([a, bb, c]) => ({ a, b: bb, c })) } });
    expect(big.status).toBe(200);
    for (const i of [0, 1023, 1024, 2047, 2048, 2499]) {
      expect(Math.abs((big.body['predictions'][i] as { probabilities: Record<string, number> }).probabilities['yes']! - b.classifierProbs(many[i]!)[1]!)).toBeLessThan(1e-6);
    }
    const v2big = await call(s.base, '/v2/models/tiny/infer', { json: { inputs: [{ name: 'x', datatype: 'FP32', shape: [2500, 3], data: many.flat() }] } });
    expect(v2big.body['outputs'][0]).toMatchObject({ shape: [2500, 2] });
  });

  it('refuses bad declarations and models with a 4xx naming the field, and stores nothing', async () => {
    const before = files(join(dataDir, 'models'));
    const cases: Array<[Uint8Array, Record<string, unknown>, number, string, RegExp]> = [
      [b.classifier(), { task: 'binary', features: ['a', 'b', 'c'] }, 422, '/classes', /needs its class labels/],
      [b.classifier(), { task: 'binary', features: ['a', 'b', 'c'], classes: ['x', 'y', 'z'] }, 422, '/classes', /a binary model has 2 classes, 3 were given/],
      [b.classifier(), { task: 'regression', features: ['a', 'b', 'c'], classes: ['x', 'y'] }, 422, '/classes', /a regression model has no classes/],
      [b.classifier(), { task: 'multiclass', features: ['a', 'b', 'c'], classes: ['x', 'y', 'z'] }, 422, '/onnx', /output "probs" has 2 column\(s\), the declaration implies 3/],
      [b.classifier(), { ...binary, output: 'scores' }, 422, '/output', /the model has no output "scores" \(it has "probs"\)/],
      [b.classifier(), { ...binary, features: ['a', 'b'] }, 422, '/onnx', /input "x" takes 3 features, the declaration lists 2/],
      [new Uint8Array([8, 1, 0xff, 0xff]), binary, 422, '/onnx', /not an ONNX model/],
      [b.classifier(), { task: 'binary', features: ['a', 'b', 'c'], classes: ['x', 'x'] }, 400, '/classes', /unique|duplicate/i],
      [b.classifier(), { task: 'survival', features: ['a'] }, 400, '/task', /allowed values|equal to one of/],
    ];
    for (const [onnx, decl, status, pointer, detail] of cases) {
      const r = await upload(s.base, 'refused', onnx, decl);
      expect(r.status, JSON.stringify(decl)).toBe(status);
      expect(r.body['errors'][0].pointer).toBe(pointer);
      expect([r.body['detail'], ...r.body['errors'].map((e: { message: string }) => e.message)].join(' ')).toMatch(detail);
    }
    // Only running it tells that this one answers 2 columns where the declaration says 3.
    const unshaped = b.model(b.classifierGraph());
    unshaped.graph!.output = [{ name: 'probs', type: { tensorType: { elemType: 1 } } }];
    const width = await upload(s.base, 'refused', b.encode(unshaped), { task: 'multiclass', features: ['a', 'b', 'c'], classes: ['x', 'y', 'z'] });
    expect(width).toMatchObject({ status: 422, body: { detail: '/onnx: the model returns 2 value(s) per row, the declaration implies 3' } });
    // ONNX Runtime's words about an unknown operator go to the server log, not to the caller.
    const unknown = b.model(b.classifierGraph());
    unknown.graph!.node!.push(b.node('NoSuchOperator', ['probs'], ['q']));
    const unloadable = await upload(s.base, 'refused', b.encode(unknown), binary);
    expect(unloadable.status).toBe(422);
    expectNothingInternal(unloadable.text, dataDir);
    expect(s.logs.join('')).toMatch(/NoSuchOperator/);
    expect((await call(s.base, '/v1/models/refused')).status).toBe(404);
    expect(files(join(dataDir, 'models'))).toEqual(before);
  });

  it('signs the manifests its training jobs save, and serves them', async () => {
    const rows = Array.from({ length: 60 }, (_, i) => `${i % 7},${(i * 3) % 11},${(i % 7) + ((i * 3) % 11) > 8 ? 'hi' : 'lo'}`);
    const up = await fetch(`${s.base}/v1/datasets?name=small`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/csv' }, body: ['a,b,y', ...rows].join('\n') + '\n' });
    expect(up.status).toBe(201);
    const dataset = ((await up.json()) as { id: string }).id;
    const job = await call(s.base, '/v1/jobs', { json: { dataset, target: 'y', name: 'trained', model: 'logistic', cv: 2 } });
    expect(job.status).toBe(202);
    let status = '';
    for (let i = 0; i < 300 && !['succeeded', 'failed'].includes(status); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await call(s.base, `/v1/jobs/${job.body['id']}`)).body['status'];
    }
    expect(status).toBe('succeeded');
    const manifest = JSON.parse(readFileSync(join(dataDir, 'models', projectId, job.body['id'], 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['integrityAlgorithm']).toBe('hmac-sha256');
    expect((await call(s.base, '/v1/models/trained/predict', { json: { records: [{ a: 1, b: 2 }] } })).status).toBe(200);
    expect((await call(s.base, '/v1/models/trained/versions/1')).body['evaluation']).not.toBeNull();
  }, 60_000);

  it('refuses a stored model whose signed record or file was changed, without saying where it lives', async () => {
    const dir = join(dataDir, 'models', projectId, readdirSync(join(dataDir, 'models', projectId)).find((d) => d.startsWith('upload-'))!);
    const path = join(dir, 'upload.json');
    const original = readFileSync(path, 'utf8');
    const edited = JSON.parse(original) as Record<string, unknown>;
    edited['classes'] = ['yes', 'no'];
    writeFileSync(path, JSON.stringify(edited));
    try {
      const [rec] = await s.server.services.store.listModelVersions(projectId, 'tiny');
      s.server.services.models.evict(rec!);
      const r = await call(s.base, '/v1/models/tiny/predict', { json: { records: [{ a: 1, b: 2, c: 3 }] } });
      expect(r.status).toBe(500);
      expect(r.body['detail']).toBe('model "tiny" version 1 cannot be loaded; the server log has the details');
      const d = await call(s.base, '/v1/models/tiny/versions/1');
      expect(d.status).toBe(500);
      expectNothingInternal(r.text + d.text, dataDir);
      expect(s.logs.join('')).toMatch(/upload\.json does not match its signature/);
    } finally {
      writeFileSync(path, original);
    }
  });

  it('needs the key after a restart: without it the signed upload is not served, with it it is; stale temporary folders are swept', async () => {
    await s.server.close();
    const stale = join(dataDir, 'models', projectId, '.upload-x.tmp-0a1b2c3d');
    mkdirSync(stale);
    writeFileSync(join(stale, 'model.onnx'), 'partial');
    const old = Date.now() / 1000 - 7200;
    utimesSync(stale, old, old);
    s = await start(dataDir);
    expect(existsSync(stale)).toBe(false);
    const unsigned = await call(s.base, '/v1/models/tiny/predict', { json: { records: [{ a: 1, b: 2, c: 3 }] } });
    expect(unsigned.status).toBe(500);
    expect(s.logs.join('')).toMatch(/upload\.json is signed \(HMAC-SHA256\): set MEDFIT_MANIFEST_KEY/);
    expect((await call(s.base, '/v1/models/trained/predict', { json: { records: [{ a: 1, b: 2 }] } })).status).toBe(500);
    expect(s.logs.join('')).toMatch(/manifest\.json is signed \(HMAC-SHA256\): set MEDFIT_MANIFEST_KEY/);
    await s.server.close();
    s = await start(dataDir, { MEDFIT_MANIFEST_KEY: KEY });
    expect((await call(s.base, '/v1/models/tiny/predict', { json: { records: [{ a: 1, b: 2, c: 3 }] } })).status).toBe(200);
    expect((await call(s.base, '/v1/models/trained/predict', { json: { records: [{ a: 1, b: 2 }] } })).status).toBe(200);
  });
});

describe('limits of the isolated check, from the configuration', () => {
  it('answers 422 naming the time limit, then the memory limit, and stays up', async () => {
    const slow = await start(join(tempDir(), 'data'), { MEDFIT_UPLOAD_CHECK_SECONDS: '2' });
    try {
      const r = await upload(slow.base, 'hang', b.hanging(), binary);
      expect(r).toMatchObject({ status: 422, body: { detail: '/onnx: loading and running the model took longer than the limit of 2 s; it was stopped' } });
      expect((await call(slow.base, '/healthz')).status).toBe(200);
    } finally {
      await slow.server.close();
    }
    // 64 MiB is below what Node and ONNX Runtime take to start: every check is stopped.
    const small = await start(join(tempDir(), 'data'), { MEDFIT_UPLOAD_CHECK_MB: '64' });
    try {
      const r = await upload(small.base, 'tiny', b.classifier(), binary);
      expect(r).toMatchObject({ status: 422, body: { detail: '/onnx: loading and running the model used more memory than the limit of 64 MiB; it was stopped' } });
      expect((await call(small.base, '/healthz')).status).toBe(200);
    } finally {
      await small.server.close();
    }
  }, 30_000);

  it('validates the new settings with the rest of the configuration', () => {
    expect(() => loadConfig({ MEDFIT_MANIFEST_KEY: 'short', MEDFIT_UPLOAD_CHECK_SECONDS: '0', MEDFIT_UPLOAD_CHECK_MB: '8' })).toThrow(
      /MEDFIT_MANIFEST_KEY must be at least 32 characters; MEDFIT_UPLOAD_CHECK_SECONDS must be an integer in \[1, 600\] \(got "0"\); MEDFIT_UPLOAD_CHECK_MB must be an integer in \[64, 65536\] \(got "8"\)/,
    );
    expect(loadConfig({}).uploadCheck).toEqual({ timeoutMs: 30_000, memoryBytes: 1024 ** 3 });
    expect(loadConfig({ MEDFIT_MANIFEST_KEY: '' }).manifestKey).toBeUndefined();
  });
});
