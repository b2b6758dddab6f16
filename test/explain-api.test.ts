/**
 * Per-prediction explanations over a real port: `"explain": true` on POST
 * /v1/models/{name}/predict (and /versions/{v}/predict) for every table family and task, trained
 * by real jobs on small slices of the fixtures. The contributions are keyed by input column
 * (one-hot and missing-indicator features folded into theirs) and, with the base, add up to the
 * model's raw output as the returned numbers show it; sequence, uploaded and pre-explanation
 * models and bad requests get RFC 9457 problems naming the field. Several regression outputs
 * (which only `medfit train` makes) are checked through the registry.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { MAX_EXPLAIN_RECORDS } from '../src/api/models-service.js';
import { trainTable } from '../src/automl/index.js';
import { readTable } from '../src/data/index.js';
import { buildManifest } from '../src/jobs/index.js';
import { getFamily, type GbdtWeights } from '../src/models/index.js';
import { explainRecords, loadArtifact, saveArtifact, type ManifestInput } from '../src/registry/index.js';
import { synthFitnessCsv } from '../src/sequence/synth.js';
import { classifier } from './onnx-builders.js';
import { fixture, tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-explain-0123456789';
const dataDir = join(tempDir(), 'data');

// ---- small tables from the fixtures ----

/** A CSV fixture's rows as records of strings (quotes stripped; the fixtures quote no commas). */
function readCsv(name: string, rows: number): Array<Record<string, string>> {
  const lines = readFileSync(fixture(name), 'utf8').trim().split(/\r?\n/);
  const header = lines[0]!.split(',').map((h) => h.replace(/"/g, ''));
  return lines.slice(1, rows + 1).map((l) => Object.fromEntries(l.split(',').map((v, j) => [header[j]!, v.replace(/"/g, '')])));
}

const toCsv = (rows: Array<Record<string, string>>) => [Object.keys(rows[0]!).join(','), ...rows.map((r) => Object.values(r).join(','))].join('\n') + '\n';

/** Pima, 300 rows, with a categorical column (one-hot features) besides `insulin`'s missing cells (an indicator). */
const pima: Array<Record<string, string>> = readCsv('pima_diabetes.csv', 300).map((r) => ({ ...r, parity: Number(r['pregnant']) === 0 ? 'none' : Number(r['pregnant']) <= 3 ? 'few' : 'many' }));
/** Three classes of age from the same rows (age itself left out); `diabetes` is a categorical feature. */
const ages = pima.map(({ age, ...r }) => ({ ...r, age_group: Number(age) < 25 ? 'young' : Number(age) < 40 ? 'middle' : 'older' }));
const progression = readCsv('diabetes_progression.csv', 300);

/** Records as a client sends them: numbers as numbers, an empty cell absent (imputed). */
function records(rows: Array<Record<string, string>>, target: string, n = 25): Array<Record<string, unknown>> {
  return rows.slice(0, n).map((r) =>
    Object.fromEntries(
      Object.entries(r)
        .filter(([k, v]) => k !== target && v !== '')
        .map(([k, v]) => [k, Number.isFinite(Number(v)) ? Number(v) : v]),
    ),
  );
}

// ---- the server ----

let server: Server;
let base: string;

async function call(path: string, init: { json?: unknown; body?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}`, ...(init.headers ?? {}) };
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method: body !== undefined ? 'POST' : 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, body: parsed as Record<string, any> };
}

async function dataset(name: string, csv: string): Promise<string> {
  const r = await call(`/v1/datasets?name=${name}`, { body: csv, headers: { 'content-type': 'text/csv' } });
  expect(r.status).toBe(201);
  return r.body['id'] as string;
}

/** Waits for a job's end (its Server-Sent Events) and returns its last event. */
async function finished(jobId: string): Promise<Record<string, any>> {
  const res = await fetch(`${base}/v1/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const events = (await res.text())
    .split('\n\n')
    .map((b) => b.split('\n').find((l) => l.startsWith('data: ')))
    .filter((l): l is string => !!l)
    .map((l) => JSON.parse(l.slice(6)) as Record<string, any>);
  return events.at(-1)!;
}

/** Fast settings: no tuning grid, few trees and epochs. */
const PARAMS = { logistic: { C: 1 }, linear: { alpha: 1 }, gbdt: { trees: 40 }, mlp: { units: [16, 8], epochs: 15, patience: 5 } };

interface Case {
  name: string;
  family: 'logistic' | 'linear' | 'gbdt' | 'mlp' | 'ensemble';
  task: 'binary' | 'multiclass' | 'regression';
  data: 'pima' | 'ages' | 'progression';
  target: string;
  /** `auto`: trained calibrated (the default); absent: `none`. */
  calibrate?: 'auto';
}

const CASES: Case[] = [
  ...(['logistic', 'gbdt', 'mlp'] as const).map((family) => ({ name: `${family}-binary`, family, task: 'binary' as const, data: 'pima' as const, target: 'diabetes' })),
  ...(['logistic', 'gbdt', 'mlp'] as const).map((family) => ({ name: `${family}-multiclass`, family, task: 'multiclass' as const, data: 'ages' as const, target: 'age_group' })),
  ...(['linear', 'gbdt', 'mlp'] as const).map((family) => ({ name: `${family}-regression`, family, task: 'regression' as const, data: 'progression' as const, target: 'progression' })),
  // Calibrated (the default for classifiers) and an ensemble: explained on their own output.
  { name: 'gbdt-calibrated', family: 'gbdt', task: 'binary', data: 'pima', target: 'diabetes', calibrate: 'auto' },
  { name: 'ensemble-binary', family: 'ensemble', task: 'binary', data: 'pima', target: 'diabetes', calibrate: 'auto' },
];
const TABLES = { pima, ages, progression };
/** The job that trained each model, by model name. */
const jobs = new Map<string, string>();

/** A trained version's directory on disk (`<data-dir>/models/<project>/<job>`). */
function versionDir(model: string): string {
  const job = jobs.get(model)!;
  for (const project of readdirSync(join(dataDir, 'models'))) {
    const dir = join(dataDir, 'models', project, job);
    if (existsSync(dir)) return dir;
  }
  throw new Error(`no directory for ${model}`);
}

/**
 * Rewrites a version as medfit saved it before explanations: no `explain` in the manifest and,
 * for gbdt, trees without node counts. Same weights, so the same predictions.
 */
function makeLegacy(model: string): void {
  const dir = versionDir(model);
  const a = loadArtifact(dir);
  const state = a.model.toState();
  if (state.family === 'gbdt') {
    const w = state.weights as GbdtWeights;
    for (const t of w.trees) delete t.cover;
  }
  const { files: _f, integrity: _i, integrityAlgorithm: _a, formatVersion: _v, signature: _s, explain: _e, ...input } = a.manifest;
  const legacy = `${dir}-legacy`;
  saveArtifact(legacy, input as ManifestInput, getFamily(state.family).load(state));
  rmSync(dir, { recursive: true });
  renameSync(legacy, dir);
}

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_BODY_MB: '4' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const ids = { pima: await dataset('pima', toCsv(pima)), ages: await dataset('ages', toCsv(ages)), progression: await dataset('progression', toCsv(progression)) };
  const fitness = await dataset('fitness', Buffer.concat([...synthFitnessCsv({ subjects: 4, seconds: 8, rate: 25 })]).toString('latin1'));
  const specs: Array<Record<string, unknown>> = [
    // Uncalibrated unless the case says so: each family's own exact explainer is what is checked.
    ...CASES.map((c) => ({ dataset: ids[c.data], target: c.target, name: c.name, task: c.task, model: c.family, cv: 2, params: PARAMS, calibrate: c.calibrate ?? 'none' })),
    // Trained as today, then rewritten as older medfit saved them.
    { dataset: ids.pima, target: 'diabetes', name: 'legacy-logistic', model: 'logistic', cv: 2, params: PARAMS, calibrate: 'none' },
    { dataset: ids.pima, target: 'diabetes', name: 'legacy-gbdt', model: 'gbdt', cv: 2, params: { gbdt: { trees: 10 } }, calibrate: 'none' },
    { dataset: fitness, target: 'activity', name: 'activity', model: 'window-gbdt', cv: 2, params: { 'window-gbdt': { trees: 10 } }, sequence: { channels: ['ax', 'ay', 'az', 'hr'], window: '2s', stride: '1s' } },
  ];
  for (const spec of specs) {
    const r = await call('/v1/jobs', { json: spec });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    jobs.set(spec['name'] as string, r.body['id'] as string);
  }
  for (const [name, id] of jobs) expect((await finished(id))['status'], `job ${name}`).toBe('succeeded');
  makeLegacy('legacy-logistic');
  makeLegacy('legacy-gbdt');
  const up = await call('/v1/models', { json: { name: 'brought', onnx: Buffer.from(classifier()).toString('base64'), task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] } });
  expect(up.status).toBe(201);
}, 600_000);
afterAll(async () => server?.close());

// ---- checks ----

type Explained = { label?: string; probabilities?: Record<string, number>; value?: number; explanation: { base: any; contributions: any; space: string; method: string } };

const METHOD = { logistic: 'linear', linear: 'linear', gbdt: 'tree-shap', mlp: 'sampling-shapley', ensemble: 'sampling-shapley' } as const;
/**
 * A calibrated model: a binary gbdt with Platt scaling on its logit keeps its exact method (scaled:
 * the calibrated log-odds are linear in the base's); with isotonic it is explained by sampling.
 */
const methodsOf = (c: Case): string[] => (c.calibrate === 'auto' ? (c.family === 'gbdt' ? ['tree-shap', 'sampling-shapley'] : ['sampling-shapley']) : [METHOD[c.family]]);
const SPACE = { binary: 'log-odds', multiclass: 'logit', regression: 'value' } as const;
const sum = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

describe('POST /v1/models/{name}/predict with "explain": true', () => {
  for (const c of CASES) {
    it(`${c.family}${c.calibrate ? ' (calibrated)' : ''}, ${c.task}: contributions per input column that add up to the raw output`, async () => {
      const table = TABLES[c.data];
      const recs = records(table, c.target);
      const columns = Object.keys(table[0]!).filter((k) => k !== c.target);
      const r = await call(`/v1/models/${c.name}/predict`, { json: { records: recs, explain: true } });
      expect(r.status, r.text).toBe(200);
      const preds = r.body['predictions'] as Explained[];
      expect(preds).toHaveLength(recs.length);
      const tol = methodsOf(c).includes('sampling-shapley') ? 1e-5 : 1e-6;
      let checked = 0;
      let nonzero = 0;
      for (const p of preds) {
        const e = p.explanation;
        expect(Object.keys(e)).toEqual(['base', 'contributions', 'space', 'method']);
        expect(e.space).toBe(SPACE[c.task]);
        expect(methodsOf(c)).toContain(e.method);
        if (c.task === 'multiclass') {
          const classes = Object.keys(p.probabilities!);
          expect(Object.keys(e.base)).toEqual(classes);
          expect(Object.keys(e.contributions)).toEqual(classes);
          // Logits are defined up to a shift: compare log-ratios against the first class.
          const margin = Object.fromEntries(classes.map((k) => [k, e.base[k] + sum(e.contributions[k])]));
          for (const k of classes) {
            expect(Object.keys(e.contributions[k])).toEqual(columns);
            nonzero += Object.values(e.contributions[k] as Record<string, number>).filter((v) => Math.abs(v) > 1e-9).length;
            const [p0, pk] = [p.probabilities![classes[0]!]!, p.probabilities![k]!];
            if (Math.min(p0, pk) < 1e-6) continue;
            expect(Math.abs(margin[k]! - margin[classes[0]!]! - Math.log(pk / p0))).toBeLessThan(tol);
            checked++;
          }
        } else {
          expect(typeof e.base).toBe('number');
          expect(Object.keys(e.contributions)).toEqual(columns);
          nonzero += Object.values(e.contributions as Record<string, number>).filter((v) => Math.abs(v) > 1e-9).length;
          const raw = e.base + sum(e.contributions);
          if (c.task === 'regression') {
            expect(Math.abs(raw - p.value!)).toBeLessThan(tol);
            checked++;
          } else {
            // The logit of the positive class's probability; where p rounds near 0 or 1 the
            // returned number cannot carry the log-odds to 1e-6, so those records are skipped.
            const [neg, pos] = Object.values(p.probabilities!) as [number, number];
            if (Math.min(neg, pos) < 1e-6) continue;
            expect(Math.abs(raw - Math.log(pos / neg))).toBeLessThan(tol);
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThanOrEqual(recs.length / 2);
      expect(nonzero).toBeGreaterThan(0);

      // The same answer as without explanations (ONNX Runtime, float32), to float32's precision.
      const plain = await call(`/v1/models/${c.name}/predict`, { json: { records: recs } });
      expect(plain.status).toBe(200);
      plain.body['predictions'].forEach((q: Explained, i: number) => {
        if (c.task === 'regression') expect(Math.abs(q.value! - preds[i]!.value!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(q.value!)));
        else for (const [k, v] of Object.entries(q.probabilities!)) expect(Math.abs(v - preds[i]!.probabilities![k]!)).toBeLessThan(1e-5);
        expect(q).not.toHaveProperty('explanation');
      });
    });
  }

  it('is reproducible, and the same through /versions/{v}/predict', async () => {
    const recs = records(pima, 'diabetes', 5);
    const a = await call('/v1/models/mlp-binary/predict', { json: { records: recs, explain: true } });
    const b = await call('/v1/models/mlp-binary/versions/1/predict', { json: { records: recs, explain: true } });
    expect(b.status).toBe(200);
    expect(b.body['predictions']).toEqual(a.body['predictions']);
    expect(b.body['model']).toEqual({ name: 'mlp-binary', version: 1 });
  });

  it('folds one-hot and missing-indicator features into their columns', async () => {
    // A record without insulin: imputed (with a warning), its indicator set; `parity` is one-hot.
    const rec: Record<string, unknown> = { ...records(pima, 'diabetes', 1)[0]!, parity: 'many' };
    delete rec['insulin'];
    const r = await call('/v1/models/logistic-binary/predict', { json: { records: [rec], explain: true } });
    expect(r.status).toBe(200);
    const keys = Object.keys(r.body['predictions'][0].explanation.contributions);
    expect(keys).toContain('insulin');
    expect(keys).toContain('parity');
    expect(keys.some((k) => k.includes('__') || k.includes('='))).toBe(false);
    expect(r.body['warnings'].join(' ')).toMatch(/insulin/);
  });

  it('stores the training means as the manifest\'s explanation reference (table models only)', () => {
    const m = JSON.parse(readFileSync(join(versionDir('mlp-binary'), 'manifest.json'), 'utf8'));
    expect(m.explain.reference).toHaveLength(m.model.nFeatures);
    expect(m.explain.reference.every((v: unknown) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
    expect(JSON.parse(readFileSync(join(versionDir('activity'), 'manifest.json'), 'utf8'))).not.toHaveProperty('explain');
    // gbdt trees carry their node counts.
    const w = JSON.parse(readFileSync(join(versionDir('gbdt-binary'), 'weights.json'), 'utf8'));
    expect(w.weights.trees[0].cover[0]).toBe(300);
  });

  it('documents the field in the OpenAPI description', async () => {
    const doc = await call('/openapi.json');
    const body = doc.body['paths']['/v1/models/{name}/predict']['post']['requestBody']['content']['application/json']['schema'];
    expect(body['properties']['explain']).toMatchObject({ type: 'boolean' });
    expect(body['properties']['explain']['description']).toMatch(/contributions/);
  });
});

describe('explanations refused, as RFC 9457 problems naming the field', () => {
  const problem = (r: { status: number; type: string; body: Record<string, any> }, status: number, pointer: string) => {
    expect(r.status).toBe(status);
    expect(r.type).toContain('application/problem+json');
    expect(r.body).toMatchObject({ status, type: expect.stringMatching(/^urn:medfit:error:/), title: expect.any(String), detail: expect.any(String) });
    expect(r.body['errors'].map((e: { pointer: string }) => e.pointer)).toContain(pointer);
  };

  it('"explain" that is not a boolean', async () => {
    const r = await call('/v1/models/gbdt-binary/predict', { json: { records: records(pima, 'diabetes', 1), explain: 'yes' } });
    problem(r, 400, '/explain');
  });

  it(`more than ${MAX_EXPLAIN_RECORDS} records`, async () => {
    const many = records(pima, 'diabetes', MAX_EXPLAIN_RECORDS + 1);
    const r = await call('/v1/models/gbdt-binary/predict', { json: { records: many, explain: true } });
    problem(r, 400, '/records');
    expect(r.body['detail']).toContain(String(MAX_EXPLAIN_RECORDS));
    // Without explanations, the same records are predicted.
    expect((await call('/v1/models/gbdt-binary/predict', { json: { records: many } })).status).toBe(200);
  });

  it('a sequence model, with records or with samples', async () => {
    const withRecords = await call('/v1/models/activity/predict', { json: { records: [{ ax: 1 }], explain: true } });
    problem(withRecords, 400, '/explain');
    expect(withRecords.body['detail']).toMatch(/explanations are available for table models trained by medfit/);
    expect(withRecords.body['detail']).toMatch(/sequence model/);
    const withSamples = await call('/v1/models/activity/predict', { json: { samples: [{ t: 0, ax: 1 }], explain: true } });
    problem(withSamples, 400, '/explain');
  });

  it('an uploaded ONNX model', async () => {
    const r = await call('/v1/models/brought/predict', { json: { records: [{ a: 1, b: 2, c: 3 }], explain: true } });
    problem(r, 400, '/explain');
    expect(r.body['detail']).toMatch(/explanations are available for table models trained by medfit; .*uploaded ONNX model/);
    expect((await call('/v1/models/brought/predict', { json: { records: [{ a: 1, b: 2, c: 3 }] } })).status).toBe(200);
  });

  for (const name of ['legacy-logistic', 'legacy-gbdt']) {
    it(`a version trained before explanations (${name}): 422, retrain`, async () => {
      const recs = records(pima, 'diabetes', 2);
      const r = await call(`/v1/models/${name}/predict`, { json: { records: recs, explain: true } });
      expect(r.status).toBe(422);
      expect(r.type).toContain('application/problem+json');
      expect(r.body['detail']).toMatch(/retrain/);
      expect(r.body['detail']).toContain(`model "${name}" version 1`);
      expect(r.body['detail']).not.toContain(dataDir);
      // It still predicts.
      expect((await call(`/v1/models/${name}/predict`, { json: { records: recs } })).status).toBe(200);
    });
  }

  it('never quotes a record value', async () => {
    const r = await call('/v1/models/mlp-regression/predict', { json: { records: [{ ...records(progression, 'progression', 1)[0], bmi: 'x-98765.4321' }], explain: true } });
    expect(r.status).toBe(422);
    expect(r.body['errors'][0].pointer).toBe('/records/0/bmi');
    expect(r.text).not.toContain('98765');
  });
});

describe('several regression outputs (medfit train), through the registry', () => {
  it.each(['linear', 'gbdt', 'mlp'] as const)('%s: one base and one map of contributions per output, adding up to each value', async (family) => {
    const table = await readTable(fixture('linnerud_fitness.csv'));
    const targets = ['weight', 'waist', 'pulse'];
    const result = await trainTable(table, { target: targets, model: family, cv: 2, seed: 1, params: PARAMS });
    const dir = join(tempDir(), 'model');
    saveArtifact(dir, buildManifest(result, { source: 'linnerud_fitness.csv', sha256: 'x'.repeat(64), seed: 1 }), result.model);
    const a = loadArtifact(dir);
    expect(a.manifest.explain!.reference).toHaveLength(3);
    const recs = [{ chins: 5, situps: 162, jumps: 60 }, { chins: 12, situps: 210, jumps: 120 }];
    const { predictions } = await explainRecords(a, recs);
    for (const p of predictions as Array<{ values: Record<string, number>; explanation: { base: Record<string, number>; contributions: Record<string, Record<string, number>>; space: string } }>) {
      expect(p.explanation.space).toBe('value');
      expect(Object.keys(p.explanation.base)).toEqual(targets);
      for (const t of targets) {
        expect(Object.keys(p.explanation.contributions[t]!)).toEqual(['chins', 'situps', 'jumps']);
        expect(Math.abs(p.explanation.base[t]! + sum(p.explanation.contributions[t]!) - p.values[t]!)).toBeLessThan(1e-6);
      }
    }
  }, 120_000);
});
