/**
 * The `MetadataStore` contract as a test suite, run against every implementation (SQLite by
 * sqlite.test.ts, PostgreSQL by postgres.test.ts). Only behaviour the interface promises lives
 * here; what one engine does by itself (SQLite's locks and spill files, PostgreSQL's advisory
 * lock and lost connections) stays in that engine's test file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MedfitError } from '../core/index.js';
import type { MetadataStore } from './types.js';

/** A fresh, empty store, and a way to open the same stored data again (after closing it). */
export interface StoreUnderTest {
  store: MetadataStore;
  /** Opens another store on the same data (the caller closes the first one before). */
  reopen(): Promise<MetadataStore>;
}

/**
 * Declares the contract's tests under `describe(name)`. `open` gives an empty store for each
 * test; every store it or `reopen` gave is closed after the test, then `cleanup` runs if given.
 */
export function describeStoreContract(name: string, open: () => Promise<StoreUnderTest>, cleanup?: () => Promise<void>): void {
  describe(`${name}: the MetadataStore contract`, () => {
    const opened: MetadataStore[] = [];
    async function fresh(): Promise<{ store: MetadataStore; reopen(): Promise<MetadataStore> }> {
      const t = await open();
      opened.push(t.store);
      return {
        store: t.store,
        async reopen() {
          const s = await t.reopen();
          opened.push(s);
          return s;
        },
      };
    }
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await cleanup?.();
    });

    it('keeps every query inside its project', async () => {
      const { store } = await fresh();
      const a = await store.createProject('a');
      const b = await store.createProject('b');
      const d = await store.createDataset({ id: 'd1', projectId: a.id, name: 'x', file: 'f', format: 'csv', rows: 3, bytes: 10, sha256: 'h', columns: [] });
      expect(await store.getDataset(a.id, d.id)).toMatchObject({ name: 'x', rows: 3 });
      expect((await store.getDataset(a.id, d.id))?.sidecars).toBeUndefined();
      const sidecars = { '.profile.json': 'a'.repeat(64) };
      await store.createDataset({ id: 'd2', projectId: a.id, name: 'y', file: 'g', format: 'csv', rows: 1, bytes: 1, sha256: 'h', columns: [], sidecars });
      expect((await store.getDataset(a.id, 'd2'))?.sidecars).toEqual(sidecars);
      expect(await store.getDataset(b.id, d.id)).toBeUndefined();
      expect(await store.listDatasets(b.id)).toEqual([]);
      expect(await store.deleteDataset(b.id, d.id)).toBe(false);
      await store.createJob({ id: 'j1', projectId: a.id, datasetId: d.id, name: 'm', spec: { target: 't' } });
      expect(await store.getJob(b.id, 'j1')).toBeUndefined();
      expect((await store.getJob(a.id, 'j1'))!.spec).toEqual({ target: 't' });
    });

    it('reads back what it wrote, typed as written, lists in creation order', async () => {
      const { store } = await fresh();
      const p = await store.createProject('p');
      const q = await store.createProject('q');
      expect(await store.listProjects()).toEqual([p, q]);
      expect(await store.getProjectByName('q')).toEqual(q);
      expect(await store.getProjectByName('none')).toBeUndefined();
      const columns = [{ name: 'age', type: 'number', missing: 2 }];
      const datasets = [];
      for (let i = 0; i < 5; i++) {
        datasets.push(await store.createDataset({ id: `d${4 - i}`, projectId: p.id, name: `n${i}`, file: 'f', format: 'ndjson', rows: 2 ** 40 + i, bytes: 3e12, sha256: 'h', columns }));
      }
      // Rows created in the same millisecond still list in creation order, whatever their ids.
      expect(await store.listDatasets(p.id)).toEqual(datasets);
      expect(await store.deleteDataset(p.id, 'd0')).toBe(true);
      expect(await store.deleteDataset(p.id, 'd0')).toBe(false);
      expect((await store.listDatasets(p.id)).map((d) => d.id)).toEqual(['d4', 'd3', 'd2', 'd1']);

      for (const id of ['jb', 'ja', 'jc']) await store.createJob({ id, projectId: p.id, datasetId: 'd1', name: 'm', spec: { nested: { a: [1, 2] }, z: 1, a: 2 } });
      await store.updateJob('ja', { status: 'running', progress: 0.1, stage: 'cv fold 1', started: '2024-01-01T00:00:00.000Z' });
      await store.updateJob('jc', { status: 'succeeded', progress: 1, modelVersion: 3, finished: '2024-01-01T00:00:01.000Z', error: null });
      await store.updateJob('jb', {});
      const [jb, ja, jc] = await store.listJobs(p.id);
      expect(jb).toMatchObject({ id: 'jb', status: 'queued', progress: 0, stage: null, error: null, modelVersion: null, started: null, finished: null });
      expect(ja).toMatchObject({ id: 'ja', status: 'running', progress: 0.1, stage: 'cv fold 1', started: '2024-01-01T00:00:00.000Z' });
      expect(jc).toMatchObject({ id: 'jc', status: 'succeeded', progress: 1, modelVersion: 3, finished: '2024-01-01T00:00:01.000Z' });
      expect(jb!.spec).toEqual({ nested: { a: [1, 2] }, z: 1, a: 2 });
      expect((await store.jobsWithStatus(['queued', 'running'])).map((j) => j.id)).toEqual(['jb', 'ja']);
      expect(await store.jobsWithStatus([])).toEqual([]);
      expect(await store.listJobs(q.id)).toEqual([]);
      await store.createKey({ id: 'k1', projectId: q.id, name: 'n', scopes: ['admin'], hash: 'h1' });
      expect(await store.countKeys()).toBe(1);
    });

    it('numbers versions per model and keeps one production version', async () => {
      const { store } = await fresh();
      const p = await store.createProject('p');
      const base = { projectId: p.id, name: 'risk', source: 'trained' as const, family: 'gbdt', task: 'binary', dir: 'd', jobId: null, datasetId: null, datasetSha256: null, metrics: {} };
      const v1 = await store.createModelVersion(base);
      const v2 = await store.createModelVersion(base);
      const other = await store.createModelVersion({ ...base, name: 'other', metrics: { auc: 0.91, folds: [1, 2] } });
      expect([v1.version, v2.version, other.version]).toEqual([1, 2, 1]);
      expect(await store.getModelVersion(p.id, 'other', 1)).toEqual(other);
      // What the version's stored directory hashed to, when recorded, comes back as written.
      const q = await store.createProject('q');
      const files = await store.createModelVersion({ ...base, projectId: q.id, filesSha256: 'f'.repeat(64) });
      expect((await store.getModelVersion(q.id, 'risk', 1))?.filesSha256).toBe('f'.repeat(64));
      expect(files.filesSha256).toBe('f'.repeat(64));
      expect((await store.getModelVersion(p.id, 'risk', 1))?.filesSha256).toBeUndefined();
      expect((await store.listModelVersions(p.id)).map((v) => `${v.name}/${v.version}`)).toEqual(['other/1', 'risk/1', 'risk/2']);
      await store.setStage(p.id, 'risk', 1, 'production');
      expect(await store.setStage(p.id, 'risk', 2, 'production')).toMatchObject({ version: 2, stage: 'production' });
      expect((await store.listModelVersions(p.id, 'risk')).map((v) => v.stage)).toEqual(['archived', 'production']);
      expect(await store.setStage(p.id, 'risk', 9, 'staging')).toBeUndefined();
    });

    it('never gives two versions the same number, nor leaves two in production, when asked at once', async () => {
      const { store } = await fresh();
      const p = await store.createProject('p');
      const base = { projectId: p.id, name: 'm', source: 'uploaded' as const, family: 'linear', task: 'regression', dir: 'd', jobId: null, datasetId: null, datasetSha256: null, metrics: {} };
      const versions = await Promise.all(Array.from({ length: 8 }, () => store.createModelVersion(base)));
      expect(versions.map((v) => v.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      await Promise.all(versions.map((v) => store.setStage(p.id, 'm', v.version, 'production')));
      expect((await store.listModelVersions(p.id, 'm')).filter((v) => v.stage === 'production')).toHaveLength(1);
    });

    it('finds keys by hash, revokes them once, and counts jobs by status', async () => {
      const { store } = await fresh();
      const p = await store.createProject('p');
      await store.createKey({ id: 'k1', projectId: p.id, name: 'n', scopes: ['read', 'predict'], hash: 'abc' });
      expect(await store.getKeyByHash('abc')).toMatchObject({ id: 'k1', scopes: ['read', 'predict'], revoked: null });
      expect(await store.revokeKey('k1')).toBe(true);
      expect(await store.revokeKey('k1')).toBe(false);
      expect((await store.getKeyByHash('abc'))!.revoked).not.toBeNull();
      await store.createJob({ id: 'j1', projectId: p.id, datasetId: 'd', name: 'm', spec: {} });
      await store.createJob({ id: 'j2', projectId: p.id, datasetId: 'd', name: 'm', spec: {} });
      await store.updateJob('j2', { status: 'failed', error: { code: 'X', message: 'y' } });
      expect(await store.countJobsByStatus()).toEqual({ queued: 1, running: 0, succeeded: 0, failed: 1, cancelled: 0 });
      expect((await store.getJob(p.id, 'j2'))!.error).toEqual({ code: 'X', message: 'y' });
    });

    it("revokes a project's key only inside its project, never its last admin key", async () => {
      const { store } = await fresh();
      const a = await store.createProject('a');
      const b = await store.createProject('b');
      expect(await store.getProject(a.id)).toEqual(a);
      expect(await store.getProject('nope')).toBeUndefined();
      await store.createKey({ id: 'a-admin', projectId: a.id, name: 'n', scopes: ['admin'], hash: 'h1' });
      await store.createKey({ id: 'a-read', projectId: a.id, name: 'n', scopes: ['read'], hash: 'h2' });
      await store.createKey({ id: 'b-admin', projectId: b.id, name: 'n', scopes: ['admin'], hash: 'h3' });
      expect(await store.revokeProjectKey(b.id, 'a-read')).toEqual({ outcome: 'not-found' });
      expect(await store.revokeProjectKey(a.id, 'a-admin')).toMatchObject({ outcome: 'last-admin', key: { id: 'a-admin', revoked: null } });
      expect((await store.getKey('a-admin'))!.revoked).toBeNull();
      const r = await store.revokeProjectKey(a.id, 'a-read');
      expect(r).toMatchObject({ outcome: 'revoked', key: { id: 'a-read', revoked: expect.stringMatching(/^\d{4}-/) } });
      expect(await store.revokeProjectKey(a.id, 'a-read')).toMatchObject({ outcome: 'already-revoked' });
      // With a second admin key, either may go, but not both.
      await store.createKey({ id: 'a-admin2', projectId: a.id, name: 'n', scopes: ['read', 'admin'], hash: 'h4' });
      expect((await store.revokeProjectKey(a.id, 'a-admin')).outcome).toBe('revoked');
      expect((await store.revokeProjectKey(a.id, 'a-admin2')).outcome).toBe('last-admin');
      expect((await store.getKey('b-admin'))!.revoked).toBeNull();
      // Two admins revoking each other's keys at once leave one of them.
      await store.createKey({ id: 'a-admin3', projectId: a.id, name: 'n', scopes: ['admin'], hash: 'h5' });
      const both = await Promise.all([store.revokeProjectKey(a.id, 'a-admin2'), store.revokeProjectKey(a.id, 'a-admin3')]);
      expect(both.map((x) => x.outcome).sort()).toEqual(['last-admin', 'revoked']);
    });

    it("records keys' last use with the audit trail (touches and audited actions alike)", async () => {
      const { store, reopen } = await fresh();
      const p = await store.createProject('p');
      await store.createKey({ id: 'k1', projectId: p.id, name: 'n', scopes: ['read'], hash: 'h1' });
      await store.createKey({ id: 'k2', projectId: p.id, name: 'n', scopes: ['predict'], hash: 'h2' });
      expect((await store.listKeys(p.id)).map((k) => k.lastUsed)).toEqual([null, null]);
      const before = new Date().toISOString();
      await store.touchKey('k1');
      await store.audit({ projectId: p.id, keyId: 'k2', action: 'model.infer', resource: 'model:m/1', rows: 1, status: 200 });
      // Listing writes what is buffered first.
      const [k1, k2] = await store.listKeys(p.id);
      expect(k1!.lastUsed! >= before).toBe(true);
      expect(k2!.lastUsed! >= before).toBe(true);
      await store.close();
      expect((await (await reopen()).getKey('k1'))!.lastUsed).toBe(k1!.lastUsed);
    });

    it('filters the audit trail in the query: action, key, time, with pages that stay full', async () => {
      const { store } = await fresh();
      const p = await store.createProject('p');
      const q = await store.createProject('q');
      for (let i = 0; i < 30; i++) await store.audit({ projectId: p.id, keyId: `k${i % 3}`, action: i % 2 ? 'model.predict' : 'dataset.read', resource: `r${i}`, rows: null, status: 200 });
      await store.audit({ projectId: q.id, keyId: 'k0', action: 'model.predict', resource: 'theirs', rows: null, status: 200 });
      const all = await store.listAudit(p.id, { limit: 1000 });
      expect(all).toHaveLength(30);
      const predicts = await store.listAudit(p.id, { action: 'model.predict', limit: 5 });
      expect(predicts).toHaveLength(5);
      expect(predicts.every((e) => e.action === 'model.predict' && e.projectId === p.id)).toBe(true);
      const next = await store.listAudit(p.id, { action: 'model.predict', limit: 100, before: predicts.at(-1)!.id });
      expect(next).toHaveLength(10);
      const k1predicts = await store.listAudit(p.id, { action: 'model.predict', keyId: 'k1' });
      expect(k1predicts.map((e) => e.resource)).toEqual(all.filter((e) => e.action === 'model.predict' && e.keyId === 'k1').map((e) => e.resource));
      expect(await store.listAudit(p.id, { keyId: 'nobody' })).toEqual([]);
      // Times: entries share milliseconds here, so compare against the stored ones.
      const mid = all[15]!.at;
      const since = await store.listAudit(p.id, { since: mid, limit: 1000 });
      const until = await store.listAudit(p.id, { until: mid, limit: 1000 });
      expect(since.every((e) => e.at >= mid)).toBe(true);
      expect(until.every((e) => e.at < mid)).toBe(true);
      expect(since.length + until.length).toBe(30);
      expect(await store.listAudit(p.id, { since: '2999-01-01T00:00:00.000Z' })).toEqual([]);
    });

    it('writes audit entries in batches, complete and in order whenever they are read', async () => {
      const { store, reopen } = await fresh();
      const p = await store.createProject('p');
      for (let i = 0; i < 100; i++) await store.audit({ projectId: p.id, keyId: 'k', action: `a${i}`, resource: 'model:m/1', rows: i, status: 200 });
      const entries = await store.listAudit(p.id, { limit: 1000 });
      expect(entries).toHaveLength(100);
      expect(entries[0]).toMatchObject({ action: 'a99', rows: 99, resource: 'model:m/1', status: 200 });
      expect(entries.at(-1)).toMatchObject({ action: 'a0', rows: 0 });
      expect(entries[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(typeof entries[0]!.id).toBe('number');
      expect(await store.listAudit(p.id, { limit: 10, before: entries[9]!.id })).toEqual(entries.slice(10, 20));
      // More than one batch at once, still in order.
      for (let i = 0; i < 600; i++) await store.audit({ projectId: p.id, keyId: 'k', action: `b${i}`, resource: null, rows: null, status: 200 });
      const many = await store.listAudit(p.id, { limit: 600 });
      expect(many.map((e) => e.action)).toEqual(Array.from({ length: 600 }, (_, i) => `b${599 - i}`));
      // Entries still buffered at close are written, not lost.
      await store.audit({ projectId: p.id, keyId: 'k', action: 'last', resource: null, rows: null, status: 200 });
      await store.close();
      const again = await reopen();
      expect((await again.listAudit(p.id, { limit: 1 }))[0]!.action).toBe('last');
    });

    it('folds identical requests of one window into one entry that counts them', async () => {
      const { store } = await fresh();
      const p = await store.createProject('p');
      for (let i = 0; i < 10; i++) await store.audit({ projectId: p.id, keyId: 'k', action: 'model.infer', resource: 'model:m/1', rows: 3, status: 200 });
      await store.audit({ projectId: p.id, keyId: 'k', action: 'model.infer', resource: 'model:m/1', rows: 3, status: 400 });
      await store.audit({ projectId: p.id, keyId: 'k2', action: 'model.infer', resource: 'model:m/1', rows: 3, status: 200 });
      const entries = await store.listAudit(p.id);
      expect(entries.map((e) => [e.keyId, e.status, e.requests, e.rows])).toEqual([
        ['k2', 200, 1, 3],
        ['k', 400, 1, 3],
        ['k', 200, 10, 30],
      ]);
    });

    it('refuses a second project of the same name, or a key of a stored hash or id, as a 409 that quotes no value, and stays usable', async () => {
      const { store } = await fresh();
      // Values a message must never carry (a project name can be a clinic's; a hash is a credential's).
      const name = 'clinic-7f3a9e';
      const hash = 'c0ffee5ecret9b1d';
      const p = await store.createProject(name);
      await store.createKey({ id: 'key-4d2c81', projectId: p.id, name: 'n', scopes: ['read'], hash });
      const refusals = [
        await conflict(store.createProject(name)),
        await conflict(store.createKey({ id: 'k2', projectId: p.id, name: 'n', scopes: ['read'], hash })),
        await conflict(store.createKey({ id: 'key-4d2c81', projectId: p.id, name: 'n', scopes: ['read'], hash: 'other' })),
      ];
      for (const e of refusals) {
        // Never a 503 either: the caller must not be told to retry it.
        expect(e).toMatchObject({ code: 'MEDFIT_ERR_CONFLICT', status: 409, message: expect.stringMatching(/^the metadata store already holds such a record/) });
        for (const value of [name, hash, 'key-4d2c81', p.id]) expect(e.message).not.toContain(value);
      }
      expect((await store.listProjects()).map((x) => x.name)).toEqual([name]);
      expect(await store.countKeys()).toBe(1);
      expect((await store.createProject('another')).name).toBe('another');
    });

    it('answers a ping while open, and refuses it as a 503 once closed', async () => {
      const { store } = await fresh();
      await expect(store.ping()).resolves.toBeUndefined();
      await store.createProject('p');
      await Promise.all([store.ping(), store.ping(), store.ping()]);
      await store.close();
      expect(await refusal(store.ping())).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503 });
    });
  });
}

/** The MedfitError `p` rejects with (failing the test if it resolves or rejects with anything else). */
async function refusal(p: Promise<unknown>): Promise<MedfitError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MedfitError);
  return e as MedfitError;
}

/** The conflict `p` rejects with. */
async function conflict(p: Promise<unknown>): Promise<MedfitError> {
  const e = await refusal(p);
  expect(e.code).toBe('MEDFIT_ERR_CONFLICT');
  return e;
}
