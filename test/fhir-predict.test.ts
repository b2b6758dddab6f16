/**
 * FHIR out over a real port: `POST /v1/models/{name}/predict` (and `/versions/{v}/predict`) with a
 * FHIR Bundle (`application/fhir+json`) answers a collection Bundle of R4 RiskAssessments, one per
 * Patient, valid against the R4 StructureDefinitions, with the probabilities the JSON path gives
 * for the same feature rows and a basis that names resources of the input. Every bad input is an
 * OperationOutcome with the right status, naming the place and never a record's value.
 */
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { FeatureBuilder, featureColumns, type ResourceItem } from '../src/fhir/index.js';
import { validateResource } from './fhir-validate.js';
import { SPEC, patientOf, projectOf, registerModel, synthea } from './fhir-models.js';
import { tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-fhir-predict-0123456789';
const FHIR = 'application/fhir+json';
const MAX_BODY_MB = 2;

let server: Server;
let base: string;

type Json = Record<string, any>;

async function call(path: string, init: { json?: unknown; body?: string | Buffer; type?: string; key?: string } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? ADMIN}` };
  let body = init.body;
  if (init.json !== undefined) body = JSON.stringify(init.json);
  if (init.type !== undefined) headers['content-type'] = init.type;
  else if (init.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method: body !== undefined ? 'POST' : 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, body: parsed as Json };
}

/** POSTs a FHIR Bundle (an object, or raw text) to a model's predict route. */
const predictFhir = (model: string, bundle: unknown, query = '') =>
  call(`/v1/models/${model}/predict${query}`, { body: typeof bundle === 'string' || Buffer.isBuffer(bundle) ? bundle : JSON.stringify(bundle), type: FHIR });

const barrett = synthea('Barrett_Cummings');
const jed = synthea('Jed_Pollich');
/** Two patients' resources in one Bundle (their entries, fullUrls and references as Synthea wrote them). */
const twoPatients = { resourceType: 'Bundle', type: 'collection', entry: [...barrett.entry, ...jed.entry].map(({ fullUrl, resource }) => ({ fullUrl, resource })) };

/** A one-patient Bundle with one resource changed or added (for the bad inputs). */
function withEntry(resource: unknown, replaceObservation = false): Json {
  const entries = barrett.entry.map(({ fullUrl, resource: r }) => ({ fullUrl, resource: r }));
  if (replaceObservation) {
    const i = entries.findIndex((e) => e.resource['resourceType'] === 'Observation' && e.resource['code'].coding[0].code === '4548-4');
    entries[i] = { fullUrl: entries[i]!.fullUrl, resource: resource as Json };
  } else entries.push({ fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001', resource: resource as Json });
  return { resourceType: 'Bundle', type: 'collection', entry: entries };
}

/** The Bundle's feature rows as the JSON path takes them, built independently of the route. */
function recordsOf(bundle: Json, index: string): { patients: string[]; records: Json[] } {
  const b = new FeatureBuilder(SPEC, { index });
  bundle['entry'].forEach((e: Json, i: number) => b.add({ resource: e['resource'], source: 'test', where: `entry ${i}`, fullUrl: e['fullUrl'] } as ResourceItem));
  const t = b.finish();
  const cols = featureColumns(SPEC);
  return {
    patients: t.rows.map((r) => String(r[0])),
    records: t.rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[t.columns.indexOf(c)]]).filter(([, v]) => v !== null && v !== ''))),
  };
}

/** An OperationOutcome answer: the status, FHIR's media type, one error issue; its first issue. */
function outcome(r: Awaited<ReturnType<typeof call>>, status: number): Json {
  expect(r.status, r.text).toBe(status);
  expect(r.type).toMatch(/^application\/fhir\+json/);
  expect(r.body['resourceType']).toBe('OperationOutcome');
  expect(validateResource(r.body)).toEqual([]);
  const issue = r.body['issue'][0];
  expect(issue.severity).toBe('error');
  expect(typeof issue.code).toBe('string');
  expect(typeof issue.diagnostics).toBe('string');
  return issue;
}

/** The expressions (FHIRPath of the place) of an OperationOutcome's issues. */
const expressions = (r: Awaited<ReturnType<typeof call>>): string[] => r.body['issue'].flatMap((i: Json) => i.expression ?? []);

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_BODY_MB: String(MAX_BODY_MB) }, { dataDir: join(tempDir(), 'data'), port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const project = await projectOf(server, ADMIN);
  await registerModel(server, project, 'dm-risk', { fhir: true });
  await registerModel(server, project, 'dm-risk', { fhir: true });
  await registerModel(server, project, 'table-risk', { fhir: false });
  await registerModel(server, project, 'bmi-next', { fhir: true, task: 'regression' });
}, 120_000);

afterAll(async () => {
  await server?.close();
});

describe('a FHIR Bundle in, RiskAssessments out', () => {
  it('answers a valid R4 collection Bundle, one RiskAssessment per Patient, equal to the JSON path on the same rows', async () => {
    const index = '2019-06-30';
    const r = await predictFhir('dm-risk', twoPatients, `?index=${index}`);
    expect(r.status, r.text).toBe(200);
    expect(r.type).toMatch(/^application\/fhir\+json/);
    expect(r.body['resourceType']).toBe('Bundle');
    expect(r.body['type']).toBe('collection');
    expect(validateResource(r.body)).toEqual([]);
    const ras = r.body['entry'].map((e: Json) => e.resource);
    expect(ras).toHaveLength(2);
    const ids = [patientOf(barrett)['id'], patientOf(jed)['id']];
    expect(ras.map((ra: Json) => ra.subject.reference)).toEqual(ids.map((id) => `Patient/${id}`));
    for (const ra of ras) {
      expect(ra).toMatchObject({ resourceType: 'RiskAssessment', status: 'final', occurrenceDateTime: index, method: { text: 'dm-risk v2', coding: [{ system: 'urn:medfit:model', code: 'dm-risk/2' }] } });
      expect(ra.prediction).toHaveLength(1);
      expect(ra.prediction[0].outcome).toEqual({ coding: [{ system: 'http://snomed.info/sct', code: '44054006' }], text: 'diabetes' });
      // The label's window: diabetes within 5 years of the index date.
      expect(ra.prediction[0].whenPeriod).toEqual({ start: index, end: '2024-06-30' });
      expect(ra.meta).toBeUndefined();
    }
    // The same feature rows through the JSON path give the same probabilities.
    const { patients, records } = recordsOf(twoPatients, index);
    expect(patients).toEqual(ids);
    const json = await call('/v1/models/dm-risk/predict', { json: { records } });
    expect(json.status, json.text).toBe(200);
    ras.forEach((ra: Json, i: number) => expect(ra.prediction[0].probabilityDecimal).toBe(json.body['predictions'][i].probabilities['1'] * 100));
    // The rows differ, and so do the risks (a constant answer would pass the comparison too).
    expect(records[0]).not.toEqual(records[1]);
    expect(ras[0].prediction[0].probabilityDecimal).not.toBe(ras[1].prediction[0].probabilityDecimal);
    // Every basis reference names an Observation or Condition of the input, of that patient.
    const inputs = new Map<string, Json>(twoPatients.entry.map((e) => [`${e.resource['resourceType']}/${e.resource['id']}`, e.resource]));
    ras.forEach((ra: Json, i: number) => {
      expect(ra.basis.length).toBeGreaterThan(0);
      for (const { reference } of ra.basis) {
        const res = inputs.get(reference);
        expect(res, reference).toBeDefined();
        expect(['Observation', 'Condition']).toContain(res!['resourceType']);
        expect(res!['subject'].reference).toBe(`urn:uuid:${ids[i]}`);
      }
    });
    // Both have HbA1c results before the index date: the latest is among the basis.
    expect(ras[0].basis.some((b: Json) => inputs.get(b.reference)!['code'].coding[0].code === '4548-4')).toBe(true);
  });

  it('uses the version asked for, the index date of today by default, and the same answer for NDJSON', async () => {
    const r = await call('/v1/models/dm-risk/versions/1/predict', { body: JSON.stringify(twoPatients), type: FHIR });
    expect(r.status, r.text).toBe(200);
    const ra = r.body['entry'][0].resource;
    expect(ra.method.text).toBe('dm-risk v1');
    // No index: the assessment is of now, its features of data up to today.
    expect(Date.now() - Date.parse(ra.occurrenceDateTime)).toBeLessThan(60_000);
    const { records } = recordsOf(twoPatients, new Date().toISOString().slice(0, 10));
    const json = await call('/v1/models/dm-risk/versions/1/predict', { json: { records } });
    expect(ra.prediction[0].probabilityDecimal).toBe(json.body['predictions'][0].probabilities['1'] * 100);
    const ndjson = twoPatients.entry.map((e) => JSON.stringify(e.resource)).join('\n');
    const n = await call('/v1/models/dm-risk/versions/1/predict?index=2019-06-30', { body: ndjson, type: 'application/fhir+ndjson' });
    const b = await predictFhir('dm-risk/versions/1', twoPatients, '?index=2019-06-30');
    expect(n.status, n.text).toBe(200);
    expect(n.body['entry'].map((e: Json) => e.resource.prediction[0].probabilityDecimal)).toEqual(b.body['entry'].map((e: Json) => e.resource.prediction[0].probabilityDecimal));
  });

  it('audits a FHIR prediction as the JSON path does (rows: the patients), and counts it', async () => {
    await predictFhir('dm-risk', twoPatients, '?index=2019-06-30');
    const audit = await call('/v1/audit?action=model.predict&limit=1');
    expect(audit.body['entries'][0]).toMatchObject({ action: 'model.predict', resource: 'model:dm-risk/2', rows: 2, status: 200 });
    const metrics = await call('/metrics');
    expect(metrics.text).toMatch(/model="dm-risk",version="2"/);
  });

  it('leaves the JSON path as it was', async () => {
    const { records } = recordsOf(twoPatients, '2019-06-30');
    const r = await call('/v1/models/dm-risk/predict', { json: { records, explain: true } });
    expect(r.status).toBe(200);
    // The model is a calibrated logistic (the training default): Platt scaling keeps the exact
    // linear method (scaled), isotonic is explained by sampling its own output.
    expect(['linear', 'sampling-shapley']).toContain(r.body['predictions'][0].explanation.method);
    const bad = await call('/v1/models/dm-risk/predict', { json: { records: [{ age: 'x' }] } });
    expect(bad.status).toBe(422);
    expect(bad.type).toMatch(/^application\/problem\+json/);
    const extra = await call('/v1/models/dm-risk/predict', { json: { records, resourceType: 'Bundle' } });
    expect(extra.status).toBe(400);
    expect(extra.body['errors'][0].pointer).toBe('/resourceType');
    // A body that is no JSON object (no content type, or text) is still refused as not an object.
    for (const init of [{ body: 'records' }, { body: 'records', type: 'text/plain' }]) {
      const t = await call('/v1/models/dm-risk/predict', init);
      expect(t.status, t.text).toBe(400);
      expect(t.type).toMatch(/^application\/problem\+json/);
    }
  });
});

describe('bad FHIR input: an OperationOutcome, with the right status and place, no record values', () => {
  it('refuses a body that is not JSON', async () => {
    const issue = outcome(await predictFhir('dm-risk', '{"resourceType": "Bundle", "entry": [{"resource": '), 422);
    expect(issue.diagnostics).toMatch(/JSON/);
  });

  it('refuses a body that is not a Bundle', async () => {
    const issue = outcome(await predictFhir('dm-risk', patientOf(barrett)), 422);
    expect(issue.diagnostics).toMatch(/Bundle/);
    expect(issue.diagnostics).not.toContain(patientOf(barrett)['id']);
  });

  it('refuses a resource without resourceType, naming its entry', async () => {
    const bundle = withEntry({ id: 'x1', status: 'final' });
    const r = await predictFhir('dm-risk', bundle);
    const issue = outcome(r, 422);
    expect(issue.diagnostics).toMatch(new RegExp(`entry ${bundle['entry'].length - 1}\\b.*resourceType`));
    expect(expressions(r)).toEqual([`Bundle.entry[${bundle['entry'].length - 1}].resource`]);
  });

  it('refuses an unknown resource type', async () => {
    const bundle = withEntry({ resourceType: 'Observasion', id: 'x1' });
    const r = await predictFhir('dm-risk', bundle);
    const issue = outcome(r, 422);
    expect(expressions(r)).toEqual([`Bundle.entry[${bundle['entry'].length - 1}].resource`]);
    expect(issue.diagnostics).toMatch(new RegExp(`entry ${bundle['entry'].length - 1}\\b.*unknown resource type "Observasion"`));
  });

  it('refuses an Observation of a Patient that is not in the Bundle, without naming the patient', async () => {
    const missing = 'c0ffee00-0000-4000-8000-00000000beef';
    const obs = { resourceType: 'Observation', id: 'o-missing', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject: { reference: `Patient/${missing}` }, effectiveDateTime: '2018-01-01', valueQuantity: { value: 6.1, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } };
    const bundle = withEntry(obs);
    const r = await predictFhir('dm-risk', bundle);
    const issue = outcome(r, 422);
    expect(issue.diagnostics).toMatch(/Patient.*not in the input/);
    expect(issue.diagnostics).toMatch(new RegExp(`entry ${bundle['entry'].length - 1}\\b`));
    expect(expressions(r)).toEqual([`Bundle.entry[${bundle['entry'].length - 1}].resource`]);
    expect(r.text).not.toContain(missing);
    expect(r.text).not.toContain('6.1');
  });

  it('refuses an unparseable date, without quoting it', async () => {
    const hba1c = barrett.entry.find((e) => e.resource['resourceType'] === 'Observation' && e.resource['code'].coding[0].code === '4548-4')!.resource;
    const r = await predictFhir('dm-risk', withEntry({ ...hba1c, effectiveDateTime: '2018-13-45T99:00:00Z' }, true));
    const issue = outcome(r, 422);
    expect(issue.diagnostics).toMatch(/date/i);
    const at = barrett.entry.findIndex((e) => e.resource['resourceType'] === 'Observation' && e.resource['code'].coding[0].code === '4548-4');
    expect(expressions(r)).toEqual([`Bundle.entry[${at}].resource`]);
    expect(r.text).not.toContain('2018-13-45');
  });

  it('refuses a unit that cannot be converted, naming code and unit but not the value', async () => {
    const hba1c = barrett.entry.find((e) => e.resource['resourceType'] === 'Observation' && e.resource['code'].coding[0].code === '4548-4')!.resource;
    const r = await predictFhir('dm-risk', withEntry({ ...hba1c, valueQuantity: { value: 77.7, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } }, true));
    const issue = outcome(r, 422);
    expect(issue.diagnostics).toMatch(/4548-4/);
    expect(issue.diagnostics).toMatch(/kg/);
    expect(r.text).not.toContain('77.7');
  });

  it('refuses a Bundle without a Patient', async () => {
    const issue = outcome(await predictFhir('dm-risk', { resourceType: 'Bundle', type: 'collection', entry: [] }), 422);
    expect(issue.diagnostics).toMatch(/no Patient/);
  });

  it('refuses a model not trained from FHIR, and a regression, saying why', async () => {
    let issue = outcome(await predictFhir('table-risk', twoPatients), 422);
    expect(issue.diagnostics).toMatch(/not trained from FHIR.*application\/json/);
    issue = outcome(await predictFhir('bmi-next', twoPatients), 422);
    expect(issue.diagnostics).toMatch(/regression/);
    issue = outcome(await predictFhir('nope', twoPatients), 404);
    expect(issue.code).toBe('not-found');
  });

  it('refuses a bad index date', async () => {
    for (const q of ['?index=2019-02-30', '?index=yesterday', '?index=2019-1-1']) {
      const issue = outcome(await predictFhir('dm-risk', twoPatients, q), 400);
      expect(issue.diagnostics).toMatch(/index/);
    }
  });

  it('refuses a body over the limit (MEDFIT_MAX_BODY_MB), as the JSON path does', async () => {
    const big = JSON.stringify({ ...twoPatients, padding: 'x'.repeat(MAX_BODY_MB * 1024 * 1024) });
    const issue = outcome(await predictFhir('dm-risk', big), 413);
    expect(issue.code).toBe('too-long');
    // Streamed without a declared length (chunked): the limit holds while reading.
    const chunked = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const res = await fetch(`${base}/v1/models/dm-risk/predict`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': FHIR }, body: chunked, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as Json)['resourceType']).toBe('OperationOutcome');
  });

  it('holds a gzip body to the limit once inflated, and to as many entries as the limit could hold', async () => {
    // 11 KB on the wire, past the limit inflated: refused while inflating, in well under a second.
    const bomb = gzipSync(`{"resourceType": "Bundle", "type": "collection", "entry": [${' '.repeat(MAX_BODY_MB * 1024 * 1024 + 1)}]}`);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const t0 = performance.now();
    const issue = outcome(await predictFhir('dm-risk', bomb), 413);
    expect(issue.diagnostics).toMatch(/after decompression/);
    expect(performance.now() - t0).toBeLessThan(5000);
    // A body of entries that are skipped (no resource) is held to the same limits.
    const many = gzipSync(`{"resourceType": "Bundle", "type": "batch-response", "entry": [${Array.from({ length: 900_000 }, () => '{"response":{}}').join(',')}]}`);
    outcome(await predictFhir('dm-risk', many), 413);
  });

  it('answers FHIR requests to routes that do not take FHIR with 415, and a missing key with 401, as OperationOutcomes', async () => {
    outcome(await call('/v1/jobs', { body: JSON.stringify(twoPatients), type: FHIR }), 415);
    const res = await fetch(`${base}/v1/models/dm-risk/predict`, { method: 'POST', headers: { 'content-type': FHIR }, body: JSON.stringify(twoPatients) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as Json)['resourceType']).toBe('OperationOutcome');
  });
});
