/**
 * CDS Hooks 2.0 over a real port, driven by the specification's own example requests
 * (test/fixtures/cds-hooks, adapted here to the test patient): discovery lists one patient-view
 * service per production model trained from FHIR; a call answers a card with the risk, its band,
 * the top contributing features and a link to the model's page, from prefetched data or from the
 * client's FHIR server (a real HTTP server on a port, serving a Synthea patient, behind the
 * request's bearer token); 412 without either; 404 for an unknown service; 400 for malformed
 * hook requests.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { bandOf, hostIsPlain, prefetchTemplates, riskBands } from '../src/api/cds-hooks.js';
import { FeatureBuilder, featureColumns, type ResourceItem } from '../src/fhir/index.js';
import { SPEC, patientOf, projectOf, registerModel, synthea } from './fhir-models.js';
import { fixture, tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-cds-hooks-0123456789';
/** The token of the specification's example request: the test FHIR server accepts it and only it. */
const EXAMPLE = JSON.parse(readFileSync(fixture('cds-hooks/patient-view-request.json'), 'utf8')) as Json;
const DISCOVERY_EXAMPLE = JSON.parse(readFileSync(fixture('cds-hooks/discovery-response.json'), 'utf8')) as Json;
const RESPONSE_EXAMPLE = JSON.parse(readFileSync(fixture('cds-hooks/service-response.json'), 'utf8')) as Json;
const TOKEN = EXAMPLE['fhirAuthorization'].access_token as string;

type Json = Record<string, any>;

let server: Server;
let base: string;
let fhir: HttpServer;
let fhirBase: string;
let closedPort: number;
/** What the test FHIR server was asked: path and query, and whether the token came with it. */
const fhirLog: Array<{ url: string; authorized: boolean }> = [];

const jed = synthea('Jed_Pollich');
const patient = patientOf(jed);
const pid = patient['id'] as string;

/** The patient's resources as a FHIR server holds them: `urn:uuid:` references of the transaction made into `Patient/<id>`. */
const stored = jed.entry
  .map((e) => e.resource)
  .map((r) => (r['subject']?.reference === `urn:uuid:${pid}` ? { ...r, subject: { reference: `Patient/${pid}` } } : r));

/** The patient's resources of a type with one of the codes (`system|code`), as a search finds them. */
function found(type: string, codes: string[]): Json[] {
  return stored.filter((r) => r['resourceType'] === type && (r['code']?.coding ?? []).some((c: Json) => codes.includes(`${c.system}|${c.code}`)));
}

const searchset = (resources: Json[]) => ({ resourceType: 'Bundle', type: 'searchset', total: resources.length, entry: resources.map((resource) => ({ fullUrl: `http://fhir.example/${resource['resourceType']}/${resource['id']}`, resource, search: { mode: 'match' } })) });

const templates = prefetchTemplates(SPEC);
const obsCodes = (templates.find((t) => t.key === 'observations')!.params[0]![1] as string).split(',');
const condCodes = (templates.find((t) => t.key === 'conditions')!.params[0]![1] as string).split(',');
const prefetch = { patient, observations: searchset(found('Observation', obsCodes)), conditions: searchset(found('Condition', condCodes)) };

/** The specification's example request, for the test patient, with `over` applied (undefined removes a field). */
function hookRequest(over: Json = {}): Json {
  const r: Json = { ...structuredClone(EXAMPLE), context: { ...EXAMPLE['context'], patientId: pid } };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete r[k];
    else r[k] = v;
  }
  return r;
}

async function call(path: string, init: { json?: unknown; key?: string | null; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(init.key === null ? {} : { authorization: `Bearer ${init.key ?? ADMIN}` }), ...(init.headers ?? {}) };
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method: init.json !== undefined ? 'POST' : 'GET', headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', cache: res.headers.get('cache-control'), text, body: body as Json };
}

const service = (json: unknown, id = 'dm-risk') => call(`/cds-services/${id}`, { json });

/** The risk the model gives the patient's features (index today), through the JSON predict path. */
async function expectedRisk(): Promise<number> {
  const b = new FeatureBuilder(SPEC, { index: new Date().toISOString().slice(0, 10) });
  stored.forEach((resource, i) => b.add({ resource, source: 'test', where: `entry ${i}` } as ResourceItem));
  const t = b.finish();
  const record = Object.fromEntries(featureColumns(SPEC).map((c) => [c, t.rows[0]![t.columns.indexOf(c)]]).filter(([, v]) => v !== null));
  const r = await call('/v1/models/dm-risk/predict', { json: { records: [record] } });
  return r.body['predictions'][0].probabilities['1'] as number;
}

/** A small FHIR server: Patient read and Observation/Condition search by patient and code, 5 a page, behind the token. */
function startFhirServer(): Promise<void> {
  fhir = createServer((req, res) => {
    const url = new URL(req.url!, 'http://localhost');
    const authorized = req.headers.authorization === `Bearer ${TOKEN}`;
    fhirLog.push({ url: url.pathname + url.search, authorized });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify(body));
    };
    if (!authorized) return send(401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
    const parts = url.pathname.split('/').filter(Boolean).slice(1); // after the /fhir base
    if (parts[0] === 'Patient' && parts.length === 2) return parts[1] === pid ? send(200, patient) : send(404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
    if ((parts[0] === 'Observation' || parts[0] === 'Condition') && parts.length === 1) {
      if (url.searchParams.get('patient') !== pid) return send(200, searchset([]));
      const all = found(parts[0], (url.searchParams.get('code') ?? '').split(','));
      const page = Number(url.searchParams.get('_page') ?? '0');
      const b: Json = searchset(all.slice(page * 5, page * 5 + 5));
      if ((page + 1) * 5 < all.length) {
        const next = new URL(url.href);
        next.searchParams.set('_page', String(page + 1));
        b['link'] = [{ relation: 'next', url: `${fhirBase}/${parts[0]}${next.search}` }];
      }
      return send(200, b);
    }
    send(404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-supported' }] });
  });
  return new Promise((resolve) =>
    fhir.listen(0, '127.0.0.1', () => {
      fhirBase = `http://127.0.0.1:${(fhir.address() as AddressInfo).port}/fhir`;
      resolve();
    }),
  );
}

beforeAll(async () => {
  // The FHIR server first: medfit reaches only the origins MEDFIT_CDS_FHIR_SERVERS lists.
  await startFhirServer();
  // A listed server that is not there (a port that was free a moment ago).
  const closed = createServer();
  await new Promise<void>((res) => closed.listen(0, '127.0.0.1', () => res()));
  closedPort = (closed.address() as AddressInfo).port;
  await new Promise((res) => closed.close(res));
  const servers = `${new URL(fhirBase).origin}, http://127.0.0.1:${closedPort}`;
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_CDS_FHIR_SERVERS: servers }, { dataDir: join(tempDir(), 'data'), port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const project = await projectOf(server, ADMIN);
  await registerModel(server, project, 'dm-risk', { fhir: true });
  await registerModel(server, project, 'table-risk', { fhir: false });
  await registerModel(server, project, 'staged-risk', { fhir: true });
  for (const name of ['dm-risk', 'table-risk']) expect((await call(`/v1/models/${name}/versions/1/stage`, { json: { stage: 'production' } })).status).toBe(200);
  expect((await call('/v1/models/staged-risk/versions/1/stage', { json: { stage: 'staging' } })).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await server?.close();
  await new Promise((r) => fhir?.close(r));
});

describe('discovery', () => {
  it('lists one patient-view service per production model trained from FHIR, shaped as the specification\'s example', async () => {
    const r = await call('/cds-services');
    expect(r.status).toBe(200);
    expect(r.cache).toBe('no-store');
    expect(r.body['services'].map((s: Json) => s.id)).toEqual(['dm-risk']);
    const s = r.body['services'][0];
    // Every field is one the specification's example uses (or its usageRequirements), of the same type.
    const known = new Map<string, string>();
    for (const ex of DISCOVERY_EXAMPLE['services']) for (const [k, v] of Object.entries(ex)) known.set(k, typeof v);
    for (const [k, v] of Object.entries(s)) expect(known.get(k), k).toBe(typeof v);
    expect(s).toMatchObject({ hook: 'patient-view', id: 'dm-risk', title: expect.stringContaining('diabetes'), description: expect.stringContaining('dm-risk v1') });
    expect(s.prefetch).toEqual({
      patient: 'Patient/{{context.patientId}}',
      observations: 'Observation?patient={{context.patientId}}&code=http://loinc.org|39156-5,http://loinc.org|85354-9,http://loinc.org|55284-4,http://loinc.org|4548-4,http://loinc.org|2093-3',
      conditions: 'Condition?patient={{context.patientId}}&code=http://snomed.info/sct|38341003',
    });
    expect(s.usageRequirements).toMatch(/fhirAuthorization/);
  });

  it('needs a key of the project', async () => {
    expect((await call('/cds-services', { key: null })).status).toBe(401);
    const train = await call('/v1/keys', { json: { name: 'trainer', scopes: ['train'] } });
    expect((await call('/cds-services', { key: train.body['key'] })).status).toBe(403);
  });
});

describe('a service call', () => {
  it('answers a card from prefetched data: the risk, its band, the top features, a link to the model', async () => {
    const r = await service(hookRequest({ prefetch, fhirServer: undefined, fhirAuthorization: undefined }));
    expect(r.status, r.text).toBe(200);
    expect(r.cache).toBe('no-store');
    expect(r.body['cards']).toHaveLength(1);
    const card = r.body['cards'][0];
    // Every field is one the specification's example cards use, of the same type.
    const known = new Map<string, string>();
    for (const c of RESPONSE_EXAMPLE['cards']) for (const [k, v] of Object.entries(c)) known.set(k, typeof v);
    for (const [k, v] of Object.entries(card)) expect(known.get(k), k).toBe(typeof v);
    const p = await expectedRisk();
    const pct = `${(p * 100).toFixed(1)}%`;
    expect(card.summary.length).toBeLessThan(140);
    expect(card.summary).toContain(pct);
    const version = await call('/v1/models/dm-risk/versions/1');
    const bands = riskBands(version.body['evaluation']);
    expect(bands).toBeDefined();
    const band = bandOf(p, bands)!;
    expect(card.summary).toContain(`(${band})`);
    expect(card.indicator).toBe({ low: 'info', moderate: 'warning', high: 'critical' }[band]);
    expect(card.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(card.source.label).toBe('medfit');
    expect(card.links).toEqual([{ label: 'dm-risk v1 in medfit', url: `${base}/models/dm-risk/versions/1`, type: 'absolute' }]);
    // The top features, with this patient's values, from the explanation of this very prediction.
    const explained = await call('/v1/models/dm-risk/predict', { json: { records: [await recordOf()], explain: true } });
    const top = Object.entries(explained.body['predictions'][0].explanation.contributions as Record<string, number>).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))[0]!;
    expect(card.detail).toContain(`**${top[0]}**`);
    expect(card.detail).toContain(`${top[1] > 0 ? 'raises' : 'lowers'} it (${top[1] > 0 ? '+' : '−'}${Math.abs(top[1]).toFixed(2)})`);
    expect(card.detail).toMatch(/Youden/);
  });

  it('fetches what the prefetch lacks from the FHIR server, with the request\'s token, following pages', async () => {
    fhirLog.length = 0;
    const r = await service(hookRequest({ fhirServer: fhirBase, prefetch: { patient } }));
    expect(r.status, r.text).toBe(200);
    expect(r.body['cards'][0].summary).toContain(`${((await expectedRisk()) * 100).toFixed(1)}%`);
    expect(fhirLog.every((l) => l.authorized)).toBe(true);
    expect(fhirLog.some((l) => l.url.startsWith('/fhir/Patient/'))).toBe(false);
    expect(fhirLog.filter((l) => l.url.startsWith('/fhir/Observation?')).length).toBeGreaterThan(1);
    expect(fhirLog.some((l) => l.url.startsWith('/fhir/Condition?'))).toBe(true);
    // Everything from the server, the Patient too: the same card.
    fhirLog.length = 0;
    const all = await service(hookRequest({ fhirServer: fhirBase, prefetch: undefined }));
    expect(all.status, all.text).toBe(200);
    expect(all.body['cards'][0].summary).toBe(r.body['cards'][0].summary);
    expect(fhirLog.some((l) => l.url === `/fhir/Patient/${pid}`)).toBe(true);
  });

  it('completes a prefetched search that has more pages from the server, and refuses without one (412)', async () => {
    const page = { ...searchset(found('Observation', obsCodes).slice(0, 5)), link: [{ relation: 'next', url: `${fhirBase}/Observation?patient=${pid}&code=${encodeURIComponent(obsCodes.join(','))}&_page=1` }] };
    const r = await service(hookRequest({ fhirServer: fhirBase, prefetch: { ...prefetch, observations: page } }));
    expect(r.status, r.text).toBe(200);
    expect(r.body['cards'][0].summary).toContain(`${((await expectedRisk()) * 100).toFixed(1)}%`);
    const partial = await service(hookRequest({ fhirServer: undefined, fhirAuthorization: undefined, prefetch: { ...prefetch, observations: page } }));
    expect(partial.status).toBe(412);
  });

  it('reads a null prefetch as "no data" (features imputed), an OperationOutcome as "not prefetched"', async () => {
    const r = await service(hookRequest({ fhirServer: undefined, fhirAuthorization: undefined, prefetch: { patient, observations: null, conditions: null } }));
    expect(r.status, r.text).toBe(200);
    expect(r.body['cards'][0].detail).toMatch(/No data for bmi, sbp, hba1c, chol: imputed as in training/);
    // A client that answers the Patient read with a searchset of one is understood too.
    const asSearch = await service(hookRequest({ fhirServer: undefined, fhirAuthorization: undefined, prefetch: { ...prefetch, patient: searchset([patient]) } }));
    const plain = await service(hookRequest({ fhirServer: undefined, fhirAuthorization: undefined, prefetch }));
    expect(asSearch.status, asSearch.text).toBe(200);
    expect(asSearch.body['cards'][0].summary).toBe(plain.body['cards'][0].summary);
    const failed = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'timeout' }] };
    const oo = await service(hookRequest({ fhirServer: undefined, fhirAuthorization: undefined, prefetch: { ...prefetch, observations: failed } }));
    expect(oo.status).toBe(412);
    expect(oo.body['detail']).toMatch(/"observations"/);
  });

  it('answers 412 when the data is neither prefetched nor fetchable, or the FHIR server fails', async () => {
    // The specification's example as it is, less its FHIR server: its one prefetch key is not one this service asked for.
    const r = await service(hookRequest({ fhirServer: undefined, fhirAuthorization: undefined }));
    expect(r.status).toBe(412);
    expect(r.body['detail']).toMatch(/"patient" \(Patient\/\{\{context\.patientId\}\}\).*"observations".*"conditions".*fhirServer/);
    // A FHIR server but no token: nothing is fetched.
    fhirLog.length = 0;
    expect((await service(hookRequest({ fhirServer: fhirBase, fhirAuthorization: undefined, prefetch: { patient } }))).status).toBe(412);
    expect(fhirLog).toHaveLength(0);
    // A wrong token: the server refuses it.
    const refused = await service(hookRequest({ fhirServer: fhirBase, fhirAuthorization: { ...EXAMPLE['fhirAuthorization'], access_token: 'another-token' } }));
    expect(refused.status).toBe(412);
    expect(refused.body['detail']).toMatch(/refused the access token/);
    expect(refused.text).not.toContain('another-token');
    // A server that is not there.
    const gone = await service(hookRequest({ fhirServer: `http://127.0.0.1:${closedPort}/fhir` }));
    expect(gone.status).toBe(412);
    expect(gone.body['detail']).toMatch(/could not be reached/);
  });

  it('never sends the token to another origin than fhirServer', async () => {
    fhirLog.length = 0;
    const away = { ...searchset([]), link: [{ relation: 'next', url: 'http://127.0.0.2:1/fhir/Observation?page=2' }] };
    const r = await service(hookRequest({ fhirServer: fhirBase, prefetch: { ...prefetch, observations: away } }));
    expect(r.status).toBe(412);
    expect(r.body['detail']).toMatch(/leads away from fhirServer/);
    // The same host, another path: not the FHIR endpoint the token is for.
    const sideways = { ...searchset([]), link: [{ relation: 'next', url: `${new URL(fhirBase).origin}/admin/purge?all=true` }] };
    const s2 = await service(hookRequest({ fhirServer: fhirBase, prefetch: { ...prefetch, observations: sideways } }));
    expect(s2.status).toBe(412);
    expect(s2.body['detail']).toMatch(/outside fhirServer's path/);
    expect(fhirLog.some((l) => l.url.startsWith('/admin'))).toBe(false);
  });

  it('never contacts a FHIR server that MEDFIT_CDS_FHIR_SERVERS does not list: prefetch is used, or a 412 says why', async () => {
    fhirLog.length = 0;
    // The test FHIR server under another name (localhost, not 127.0.0.1): another origin, unlisted.
    const unlisted = fhirBase.replace('127.0.0.1', 'localhost');
    const r = await service(hookRequest({ fhirServer: unlisted, prefetch: undefined }));
    expect(r.status).toBe(412);
    expect(r.body['detail']).toMatch(/MEDFIT_CDS_FHIR_SERVERS/);
    expect(fhirLog).toHaveLength(0);
    const withPrefetch = await service(hookRequest({ fhirServer: unlisted, prefetch }));
    expect(withPrefetch.status).toBe(200);
    expect(fhirLog).toHaveLength(0);
  });

  it('answers 404 for an unknown service, a model not trained from FHIR and one not in production', async () => {
    for (const id of ['nope', 'table-risk', 'staged-risk']) {
      const r = await service(hookRequest({ prefetch }), id);
      expect(r.status, id).toBe(404);
    }
  });

  it('answers 400 for malformed hook requests', async () => {
    const cases: Json[] = [
      hookRequest({ hook: 'order-sign' }),
      hookRequest({ hookInstance: undefined }),
      hookRequest({ context: undefined }),
      hookRequest({ context: { userId: 'Practitioner/example' } }),
      hookRequest({ context: { patientId: '../Patient/1?x=' } }),
      hookRequest({ context: { patientId: '..' } }),
      hookRequest({ context: { patientId: '.' } }),
      hookRequest({ fhirServer: undefined }),
      hookRequest({ fhirServer: 'ftp://fhir.example/' }),
      hookRequest({ fhirServer: 'http://user:pw@127.0.0.1/fhir' }),
      hookRequest({ fhirAuthorization: { ...EXAMPLE['fhirAuthorization'], token_type: 'MAC' } }),
      hookRequest({ prefetch: { ...prefetch, observations: [1, 2] } }),
    ];
    for (const c of cases) {
      const r = await service(c);
      expect(r.status, JSON.stringify(c).slice(0, 200)).toBe(400);
    }
    const wrong = await service(hookRequest({ prefetch: { ...prefetch, patient: { ...patient, id: 'someone-else' } } }));
    expect(wrong.status).toBe(422);
    expect(wrong.text).not.toContain('someone-else');
    const bad = await service(hookRequest({ prefetch: { ...prefetch, observations: { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: { id: 'x' } }] } } }));
    expect(bad.status).toBe(422);
    expect(bad.body['detail']).toMatch(/prefetch "observations", entry 0: resource has no resourceType/);
  });

  it('needs the predict scope, and audits the call', async () => {
    const read = await call('/v1/keys', { json: { name: 'reader', scopes: ['read'] } });
    expect((await call('/cds-services/dm-risk', { json: hookRequest({ prefetch }), key: read.body['key'] })).status).toBe(403);
    expect((await call('/cds-services/dm-risk', { json: hookRequest({ prefetch }), key: null })).status).toBe(401);
    await service(hookRequest({ prefetch, fhirServer: undefined, fhirAuthorization: undefined }));
    const audit = await call('/v1/audit?action=model.predict&limit=1');
    expect(audit.body['entries'][0]).toMatchObject({ action: 'model.predict', resource: 'model:dm-risk/1', rows: 1, status: 200 });
  });

  it('links only to a plain Host (no header injection)', async () => {
    const r = await server.app.inject({ method: 'POST', url: '/cds-services/dm-risk', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', host: 'evil.example/"><script>' }, payload: JSON.stringify(hookRequest({ prefetch, fhirServer: undefined, fhirAuthorization: undefined })) });
    expect(r.statusCode).toBe(200);
    const card = (r.json() as Json)['cards'][0];
    expect(card.links).toBeUndefined();
    expect(card.source).toEqual({ label: 'medfit' });
    expect(hostIsPlain('medfit.example.org:8443')).toBe(true);
    expect(hostIsPlain('[::1]:8080')).toBe(true);
    for (const h of ['a.example/x', 'a@b', 'a.example:80x', 'a.example:', '', 'a b']) expect(hostIsPlain(h), h).toBe(false);
  });
});

describe('risk bands', () => {
  it('puts moderate at Youden\'s J threshold and high at 90% specificity', () => {
    const roc = { fpr: [0, 0, 0.05, 0.1, 0.3, 0.6, 1], tpr: [0, 0.2, 0.4, 0.6, 0.9, 0.95, 1], thresholds: [1.9, 0.9, 0.7, 0.5, 0.3, 0.2, 0.1] };
    const b = riskBands({ roc })!;
    expect(b.moderate).toBe(0.3); // J = 0.6 at (0.3, 0.9)
    expect(b.high).toBe(0.5); // the lowest threshold with specificity 0.9
    expect([bandOf(0.29, b), bandOf(0.3, b), bandOf(0.5, b)]).toEqual(['low', 'moderate', 'high']);
    // A curve no better than chance gives no bands; nor does a missing one.
    expect(riskBands({ roc: { fpr: [0, 0.5, 1], tpr: [0, 0.5, 1], thresholds: [2, 0.5, 0.1] } })).toBeUndefined();
    expect(riskBands(null)).toBeUndefined();
  });
});

/** The patient's model input record (index today). */
async function recordOf(): Promise<Json> {
  const b = new FeatureBuilder(SPEC, { index: new Date().toISOString().slice(0, 10) });
  stored.forEach((resource, i) => b.add({ resource, source: 'test', where: `entry ${i}` } as ResourceItem));
  const t = b.finish();
  return Object.fromEntries(featureColumns(SPEC).map((c) => [c, t.rows[0]![t.columns.indexOf(c)]]).filter(([, v]) => v !== null));
}
