import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStore, type MetadataStore } from './index.js';

const open: MetadataStore[] = [];
function fresh(path = join(mkdtempSync(join(tmpdir(), 'medfit-store-')), 'medfit.db')): { store: MetadataStore; path: string } {
  const store = openSqliteStore(path);
  open.push(store);
  return { store, path };
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

describe('SQLite metadata store', () => {
  it('keeps every query inside its project', async () => {
    const { store } = fresh();
    const a = await store.createProject('a');
    const b = await store.createProject('b');
    const d = await store.createDataset({ id: 'd1', projectId: a.id, name: 'x', file: 'f', format: 'csv', rows: 3, bytes: 10, sha256: 'h', columns: [] });
    expect(await store.getDataset(a.id, d.id)).toMatchObject({ name: 'x', rows: 3 });
    expect(await store.getDataset(b.id, d.id)).toBeUndefined();
    expect(await store.listDatasets(b.id)).toEqual([]);
    expect(await store.deleteDataset(b.id, d.id)).toBe(false);
    await store.createJob({ id: 'j1', projectId: a.id, datasetId: d.id, name: 'm', spec: { target: 't' } });
    expect(await store.getJob(b.id, 'j1')).toBeUndefined();
    expect((await store.getJob(a.id, 'j1'))!.spec).toEqual({ target: 't' });
  });

  it('numbers versions per model and keeps one production version', async () => {
    const { store } = fresh();
    const p = await store.createProject('p');
    const base = { projectId: p.id, name: 'risk', source: 'trained' as const, family: 'gbdt', task: 'binary', dir: 'd', jobId: null, datasetId: null, datasetSha256: null, metrics: {} };
    const v1 = await store.createModelVersion(base);
    const v2 = await store.createModelVersion(base);
    const other = await store.createModelVersion({ ...base, name: 'other' });
    expect([v1.version, v2.version, other.version]).toEqual([1, 2, 1]);
    await store.setStage(p.id, 'risk', 1, 'production');
    await store.setStage(p.id, 'risk', 2, 'production');
    expect((await store.listModelVersions(p.id, 'risk')).map((v) => v.stage)).toEqual(['archived', 'production']);
    expect(await store.setStage(p.id, 'risk', 9, 'staging')).toBeUndefined();
  });

  it('finds keys by hash, revokes them once, and counts jobs by status', async () => {
    const { store } = fresh();
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

  it('writes audit entries in batches, complete and in order whenever they are read', async () => {
    const { store, path } = fresh();
    const p = await store.createProject('p');
    for (let i = 0; i < 100; i++) await store.audit({ projectId: p.id, keyId: 'k', action: `a${i}`, resource: 'model:m/1', rows: i, status: 200 });
    const entries = await store.listAudit(p.id, { limit: 1000 });
    expect(entries).toHaveLength(100);
    expect(entries[0]).toMatchObject({ action: 'a99', rows: 99, resource: 'model:m/1', status: 200 });
    expect(entries.at(-1)).toMatchObject({ action: 'a0', rows: 0 });
    expect(entries[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await store.listAudit(p.id, { limit: 10, before: entries[9]!.id })).toEqual(entries.slice(10, 20));
    // Entries still buffered at close are written, not lost.
    await store.audit({ projectId: p.id, keyId: 'k', action: 'last', resource: null, rows: null, status: 200 });
    await store.close();
    const again = fresh(path).store;
    expect((await again.listAudit(p.id, { limit: 1 }))[0]!.action).toBe('last');
  });

  it('folds identical requests of one window into one entry that counts them', async () => {
    const { store } = fresh();
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

  it('refuses a database from a newer medfit', () => {
    const { path } = fresh();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    expect(() => openSqliteStore(path)).toThrow(/written by a newer medfit \(schema 99/);
  });
});
