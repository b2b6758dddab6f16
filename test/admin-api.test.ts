/**
 * The administration API over a real port: the session a key sees, API keys created (secret
 * shown once), listed (never a secret or hash) and revoked (refused from the next request on,
 * despite the authenticator's cache), project isolation, the last admin key kept, the model
 * families' hyperparameters for a training form, and the audit trail's filters.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { FAMILIES, SEQUENCE_FAMILIES } from '../src/models/index.js';
import { tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-0123456789abcdef';
const dataDir = join(tempDir(), 'data');
let server: Server;
let base: string;

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => server?.close());

type Json = Record<string, any>;

async function call(path: string, init: { method?: string; key?: string; json?: unknown } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? ADMIN}` };
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method: init.method ?? (init.json !== undefined ? 'POST' : 'GET'),
    headers,
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', cache: res.headers.get('cache-control'), text, body: (text ? JSON.parse(text) : {}) as Json };
}

/** Creates a key through the API with the default project's admin key (or `as`). */
async function newKey(name: string, scopes: string[], as = ADMIN): Promise<{ key: string; id: string }> {
  const r = await call('/v1/keys', { key: as, json: { name, scopes } });
  expect(r.status).toBe(201);
  return { key: r.body['key'] as string, id: r.body['id'] as string };
}

/**
 * The audit entries for `query`, once `ready` holds: entries are written after the response, so
 * the request that made one may still be finishing when the next one reads the trail.
 */
async function auditWhen(query: string, ready: (entries: Json[]) => boolean, key = ADMIN): Promise<Json[]> {
  for (let i = 0; ; i++) {
    const r = await call(`/v1/audit${query}`, { key });
    expect(r.status).toBe(200);
    const entries = r.body['entries'] as Json[];
    if (ready(entries) || i === 40) return entries;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('GET /v1/session', () => {
  it("tells any valid key its project, itself and its scopes; no key is a 401", async () => {
    const admin = await call('/v1/session');
    expect(admin.status).toBe(200);
    expect(admin.body).toEqual({
      project: { id: expect.any(String), name: 'default' },
      key: { id: expect.stringMatching(/^[0-9a-f]{12}$/), name: 'MEDFIT_ADMIN_KEY', created: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      scopes: ['admin'],
      effectiveScopes: ['admin', 'train', 'predict', 'read'],
    });
    const reader = await newKey('dashboard reader', ['read']);
    const session = await call('/v1/session', { key: reader.key });
    expect(session.body).toEqual({
      project: admin.body['project'],
      key: { id: reader.id, name: 'dashboard reader', created: expect.any(String) },
      scopes: ['read'],
      effectiveScopes: ['read'],
    });
    const none = await fetch(`${base}/v1/session`);
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
  });
});

describe('API keys', () => {
  it('creates a key with scopes: the secret is shown once, works, and lacks the other scopes', async () => {
    const created = await call('/v1/keys', { json: { name: 'wearables gateway', scopes: ['predict', 'read'] } });
    expect(created.status).toBe(201);
    expect(created.cache).toBe('no-store');
    expect(created.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{12}$/),
      name: 'wearables gateway',
      scopes: ['predict', 'read'],
      created: expect.any(String),
      revoked: null,
      lastUsed: null,
      key: expect.stringMatching(/^mf_[0-9a-f]{12}_/),
    });
    const secret = created.body['key'] as string;
    expect((await call('/v1/datasets', { key: secret })).status).toBe(200);
    expect((await call('/v1/models', { key: secret })).status).toBe(200);
    for (const [path, json] of [
      ['/v1/keys', undefined],
      ['/v1/audit', undefined],
      ['/v1/keys', { name: 'escalate', scopes: ['admin'] }],
      ['/v1/jobs', { dataset: 'x', target: 'y', name: 'm' }],
    ] as const) {
      const r = await call(path, { key: secret, ...(json ? { json } : {}) });
      expect(r.status, path).toBe(403);
      expect(r.type).toContain('application/problem+json');
    }
    // Shown once: nothing lists it again, nor its hash, and its use is recorded.
    const list = await call('/v1/keys');
    expect(list.status).toBe(200);
    const mine = (list.body['keys'] as Json[]).find((k) => k['id'] === created.body['id']);
    expect(mine).toEqual({ ...created.body, key: undefined, lastUsed: expect.stringMatching(/^\d{4}-/) });
    expect(Object.keys(mine!).sort()).toEqual(['created', 'id', 'lastUsed', 'name', 'revoked', 'scopes']);
    const hash = createHash('sha256').update(secret).digest('hex');
    expect(list.text).not.toContain(secret);
    expect(list.text).not.toContain(hash);
    expect(list.text).not.toContain(createHash('sha256').update(ADMIN).digest('hex'));
    expect(list.text).not.toMatch(/"hash"|"key"|"projectId"/);
  });

  it('refuses bad names and scopes, and unknown body fields, naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ name: 'x', scopes: ['read'], expires: '2030-01-01' }, '/expires'],
      [{ scopes: ['read'] }, '/name'],
      [{ name: 'x' }, '/scopes'],
      [{ name: '', scopes: ['read'] }, '/name'],
      [{ name: 'x'.repeat(65), scopes: ['read'] }, '/name'],
      [{ name: ' leading space', scopes: ['read'] }, '/name'],
      [{ name: 'semi;colon', scopes: ['read'] }, '/name'],
      [{ name: 'x', scopes: [] }, '/scopes'],
      [{ name: 'x', scopes: ['read', 'root'] }, '/scopes/1'],
      [{ name: 'x', scopes: ['read', 'read'] }, '/scopes'],
      [{ name: 'x', scopes: 'read' }, '/scopes'],
    ];
    for (const [json, pointer] of cases) {
      const r = await call('/v1/keys', { json });
      expect(r.status, JSON.stringify(json)).toBe(400);
      expect(r.type).toContain('application/problem+json');
      expect(r.body['errors'][0].pointer, JSON.stringify(json)).toBe(pointer);
    }
    // None of them was created.
    expect((await call('/v1/keys')).body['keys'].map((k: Json) => k['name'])).not.toContain('x');
  });

  it('revokes a key: refused at once (its lookup was cached), on /v1 and /v2, and listed as revoked', async () => {
    const k = await newKey('short-lived', ['predict', 'read']);
    // Warm the authenticator's cache for this key on both surfaces.
    expect((await call('/v1/models', { key: k.key })).status).toBe(200);
    expect((await call('/v2/models/none/infer', { key: k.key, json: { inputs: [] } })).status).toBe(404);
    const revoked = await call(`/v1/keys/${k.id}/revoke`, { method: 'POST' });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ id: k.id, revoked: expect.stringMatching(/^\d{4}-/) });
    const v1 = await call('/v1/models', { key: k.key });
    expect(v1.status).toBe(401);
    expect(v1.body['detail']).toMatch(/revoked/);
    expect((await call('/v2/models/none/infer', { key: k.key, json: { inputs: [] } })).status).toBe(401);
    expect((await call('/v1/session', { key: k.key })).status).toBe(401);
    expect((await call('/v1/keys')).body['keys'].find((x: Json) => x['id'] === k.id)).toMatchObject({ revoked: revoked.body['revoked'] });
    // Again: 409, it is already revoked; an unknown id: 404.
    expect(await call(`/v1/keys/${k.id}/revoke`, { method: 'POST' })).toMatchObject({ status: 409, body: { detail: expect.stringMatching(/already revoked/) } });
    expect((await call('/v1/keys/000000000000/revoke', { method: 'POST' })).status).toBe(404);
    expect((await call('/v1/keys/bad%20id/revoke', { method: 'POST' })).status).toBe(400);
    // Creation and revocation are in the trail.
    const entries = await auditWhen(`?key=${(await call('/v1/session')).body['key'].id}&action=key.revoke`, (e) => e.length >= 2);
    expect(entries.map((e) => [e['resource'], e['status']])).toEqual(
      expect.arrayContaining([
        [`key:${k.id}`, 200],
        [`key:${k.id}`, 409],
      ]),
    );
    const creations = await auditWhen('?action=key.create', (e) => e.some((x) => x['resource'] === `key:${k.id}`));
    expect(creations.find((x) => x['resource'] === `key:${k.id}`)).toMatchObject({ status: 201 });
  });

  it("keeps projects apart: another project's keys and trail are out of reach", async () => {
    const b = await createKey(server.services.store, 'clinic-b', ['admin'], 'b admin');
    const bReader = await newKey('b reader', ['read'], b.key);
    const aKeys = (await call('/v1/keys')).body['keys'] as Json[];
    const bKeys = (await call('/v1/keys', { key: b.key })).body['keys'] as Json[];
    expect(bKeys.map((k) => k['id']).sort()).toEqual([b.record.id, bReader.id].sort());
    expect(aKeys.map((k) => k['id'])).not.toContain(b.record.id);
    // A's admin cannot revoke B's keys (404, as for any id it does not have), nor B A's.
    expect((await call(`/v1/keys/${bReader.id}/revoke`, { method: 'POST' })).status).toBe(404);
    expect((await call(`/v1/keys/${aKeys[0]!['id']}/revoke`, { method: 'POST', key: b.key })).status).toBe(404);
    expect((await call('/v1/models', { key: bReader.key })).status).toBe(200);
    // Nor read B's trail, even by naming B's key.
    await auditWhen('?action=key.create', (e) => e.length > 0, b.key);
    expect((await call(`/v1/audit?key=${b.record.id}`)).body['entries']).toEqual([]);
    const theirs = (await call('/v1/audit?limit=1000', { key: b.key })).body['entries'] as Json[];
    const bProject = (await call('/v1/session', { key: b.key })).body['project'].id;
    expect(theirs.length).toBeGreaterThan(0);
    expect(theirs.every((e) => e['projectId'] === bProject)).toBe(true);
    expect((await call('/v1/session', { key: b.key })).body['project']).toEqual({ id: bProject, name: 'clinic-b' });
  });

  it("never revokes a project's last admin key (409), and lets an admin retire its own key once another exists", async () => {
    const first = await createKey(server.services.store, 'clinic-c', ['admin'], 'c admin');
    const refused = await call(`/v1/keys/${first.record.id}/revoke`, { method: 'POST', key: first.key });
    expect(refused.status).toBe(409);
    expect(refused.type).toContain('application/problem+json');
    expect(refused.body['detail']).toMatch(/last admin key: create another admin key first/);
    // A non-admin key does not count as an admin.
    await newKey('c reader', ['read', 'train', 'predict'], first.key);
    expect((await call(`/v1/keys/${first.record.id}/revoke`, { method: 'POST', key: first.key })).status).toBe(409);
    const second = await newKey('c admin 2', ['admin'], first.key);
    expect((await call(`/v1/keys/${first.record.id}/revoke`, { method: 'POST', key: first.key })).status).toBe(200);
    expect((await call('/v1/keys', { key: first.key })).status).toBe(401);
    expect((await call(`/v1/keys/${second.id}/revoke`, { method: 'POST', key: second.key })).status).toBe(409);
  });
});

describe('GET /v1/families', () => {
  it('lists every family with its parameters, defaults inside their ranges', async () => {
    const r = await call('/v1/families');
    expect(r.status).toBe(200);
    const families = r.body['families'] as Json[];
    expect(r.body['rows']).toBe(1000);
    expect(families.map((f) => f['name']).sort()).toEqual([...Object.keys(FAMILIES), ...Object.keys(SEQUENCE_FAMILIES)].sort());
    for (const f of families) {
      expect(['table', 'sequence']).toContain(f['kind']);
      expect(f['tasks'].length).toBeGreaterThan(0);
      expect(f['params'].length).toBeGreaterThan(0);
      for (const p of f['params'] as Json[]) {
        const where = `${f['name']}.${p['name']}`;
        expect(p['help'], where).toMatch(/\w/);
        const d = p['default'];
        switch (p['type']) {
          case 'int':
          case 'float':
            expect(typeof d, where).toBe('number');
            expect(d >= p['min'] && d <= p['max'], where).toBe(true);
            if (p['exclusiveMin']) expect(d > p['min'], where).toBe(true);
            if (p['type'] === 'int') expect(Number.isInteger(d), where).toBe(true);
            break;
          case 'bool':
            expect(typeof d, where).toBe('boolean');
            break;
          case 'enum':
            expect(p['choices'], where).toContain(d);
            break;
          case 'intList':
            expect(Array.isArray(d) && d.length >= 1 && d.length <= p['maxLength'], where).toBe(true);
            for (const v of d as number[]) expect(Number.isInteger(v) && v >= p['min'] && v <= p['max'], where).toBe(true);
            break;
          default:
            throw new Error(`${where}: unknown type ${String(p['type'])}`);
        }
      }
    }
    const byName = new Map(families.map((f) => [f['name'], f]));
    expect(byName.get('gbdt')).toMatchObject({ kind: 'table', tasks: ['binary', 'multiclass', 'regression'] });
    expect(byName.get('lstm')).toMatchObject({ kind: 'sequence', multiOutput: true });
    expect(byName.get('logistic')!['params'].find((p: Json) => p['name'] === 'class_weight')).toMatchObject({ type: 'enum', default: 'none', choices: expect.arrayContaining(['none']) });
  });

  it("gives defaults for the dataset's size and filters by task; any read key, validated", async () => {
    const leaf = (body: Json) => body['families'].find((f: Json) => f['name'] === 'gbdt')['params'].find((p: Json) => p['name'] === 'min_samples_leaf');
    const small = await call('/v1/families?rows=100');
    const large = await call('/v1/families?rows=100000');
    expect(leaf(small.body)).toMatchObject({ default: 1, dependsOnRows: true });
    expect(leaf(large.body)).toMatchObject({ default: 20, dependsOnRows: true });
    const regression = await call('/v1/families?task=regression');
    expect(regression.body['task']).toBe('regression');
    expect(regression.body['families'].map((f: Json) => f['name'])).not.toContain('logistic');
    expect(regression.body['families'].map((f: Json) => f['name'])).toContain('linear');
    const reader = await newKey('families reader', ['read']);
    expect((await call('/v1/families', { key: reader.key })).status).toBe(200);
    const predictor = await newKey('families predictor', ['predict']);
    expect((await call('/v1/families', { key: predictor.key })).status).toBe(403);
    for (const [q, pointer] of [
      ['task=survival', '/querystring/task'],
      ['rows=0', '/querystring/rows'],
      ['rows=ten', '/querystring/rows'],
      ['family=gbdt', '/querystring/family'],
    ]) {
      const r = await call(`/v1/families?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body['errors'][0].pointer, q).toBe(pointer);
    }
  });
});

describe('GET /v1/audit filters', () => {
  it('filters by action, key and time in the query, and says which filters it applied', async () => {
    const k = await newKey('audited', ['read', 'train']);
    const t0 = new Date().toISOString();
    // Actions of this key: a denial (403) and a dataset upload.
    expect((await call('/v1/keys', { key: k.key })).status).toBe(403);
    const up = await fetch(`${base}/v1/datasets?name=audit-table`, { method: 'POST', headers: { authorization: `Bearer ${k.key}`, 'content-type': 'text/csv' }, body: 'a,b\n1,2\n3,4\n' });
    expect(up.status).toBe(201);
    const mine = await auditWhen(`?key=${k.id}`, (e) => e.length >= 2);
    expect(mine.map((e) => e['action']).sort()).toEqual(['dataset.create', 'denied']);
    expect(mine.every((e) => e['keyId'] === k.id)).toBe(true);

    const denied = await call(`/v1/audit?action=denied&key=${k.id}`);
    expect(denied.body).toEqual({ entries: [expect.objectContaining({ action: 'denied', keyId: k.id, status: 403, resource: 'GET /v1/keys' })], filters: { action: 'denied', key: k.id, limit: 100 }, next: null });

    const creates = (await call('/v1/audit?action=dataset.create')).body['entries'] as Json[];
    expect(creates.length).toBeGreaterThan(0);
    expect(creates.every((e) => e['action'] === 'dataset.create')).toBe(true);

    // Time: everything of this key is at or after t0, nothing before; offsets are honoured.
    const since = await call(`/v1/audit?key=${k.id}&since=${encodeURIComponent(t0)}`);
    expect(since.body['entries']).toHaveLength(2);
    expect(since.body['filters']).toMatchObject({ since: t0 });
    expect((await call(`/v1/audit?key=${k.id}&until=${encodeURIComponent(t0)}`)).body['entries']).toEqual([]);
    const day = t0.slice(0, 10);
    const shifted = await call(`/v1/audit?key=${k.id}&since=${day}T00:00%2B14:00&until=2999-01-01`);
    expect(shifted.body['filters']).toMatchObject({ since: new Date(Date.parse(`${day}T00:00:00Z`) - 14 * 3600_000).toISOString(), until: '2999-01-01T00:00:00.000Z' });
    expect(shifted.body['entries']).toHaveLength(2);
    expect((await call(`/v1/audit?key=${k.id}&since=2999-01-01`)).body['entries']).toEqual([]);

    // Pages: limit and before with a filter keep pages full and point to the next one.
    const page1 = await call(`/v1/audit?key=${k.id}&limit=1`);
    expect(page1.body['entries']).toHaveLength(1);
    expect(page1.body['next']).toBe(page1.body['entries'][0].id);
    const page2 = await call(`/v1/audit?key=${k.id}&limit=1&before=${page1.body['next']}`);
    expect(page2.body['entries']).toHaveLength(1);
    expect(page2.body['entries'][0].id).toBeLessThan(page1.body['next']);
    expect(page2.body['filters']).toEqual({ key: k.id, limit: 1, before: page1.body['next'] });
  });

  it('rejects bad filter values with a 400 naming the parameter', async () => {
    for (const [q, pointer] of [
      ['since=yesterday', '/querystring/since'],
      ['since=2024-02-30', '/querystring/since'],
      ['since=2023-02-29', '/querystring/since'],
      ['until=2024-01-01T24:00:00Z', '/querystring/until'],
      ['until=2024-01-01T10:00:00', '/querystring/until'],
      ['since=2024-01-01T10:00:00.1234567890Z', '/querystring/since'],
      ['since=2024-05-02&until=2024-05-01', '/querystring/until'],
      ['since=2024-05-01&until=2024-05-01', '/querystring/until'],
      ['action=Model%20Predict', '/querystring/action'],
      ['key=%3Bdrop', '/querystring/key'],
      ['limit=0', '/querystring/limit'],
      ['before=-1', '/querystring/before'],
      ['actor=me', '/querystring/actor'],
    ]) {
      const r = await call(`/v1/audit?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.type, q).toContain('application/problem+json');
      expect(r.body['errors'][0].pointer, q).toBe(pointer);
    }
    expect((await call('/v1/audit?since=yesterday')).body['detail']).toMatch(/expected an ISO 8601 date/);
    // A leap day and a fraction of a second are fine.
    expect((await call('/v1/audit?since=2024-02-29T23:59:59.9999Z')).status).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  it('describes the new routes with their schemas', async () => {
    const doc = (await call('/openapi.json')).body;
    for (const path of ['/v1/session', '/v1/keys', '/v1/keys/{id}/revoke', '/v1/families', '/v1/audit']) expect(Object.keys(doc['paths']), path).toContain(path);
    expect(doc['paths']['/v1/keys']['post']['requestBody']['content']['application/json']['schema']['required']).toEqual(['name', 'scopes']);
    expect(doc['paths']['/v1/keys']['post']['responses']['201']).toBeDefined();
    expect(doc['paths']['/v1/families']['get']['responses']['200']).toBeDefined();
    expect(doc['paths']['/v1/audit']['get']['parameters'].map((p: Json) => p['name']).sort()).toEqual(['action', 'before', 'key', 'limit', 'since', 'until']);
  });
});
