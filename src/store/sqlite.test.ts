import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MedfitError } from '../core/index.js';
import { openSqliteStore, type MetadataStore, type SqliteStoreOptions } from './index.js';
import { describeStoreContract } from './contract.js';
import { storeFailure } from './sqlite.js';

const open: MetadataStore[] = [];
const locks: Database.Database[] = [];
function fresh(path = join(mkdtempSync(join(tmpdir(), 'medfit-store-')), 'medfit.db'), options: SqliteStoreOptions = {}): { store: MetadataStore; path: string } {
  const store = openSqliteStore(path, options);
  open.push(store);
  return { store, path };
}
/** A second connection to the database at `path` holding its write lock (as another process would). */
function holdLock(path: string): Database.Database {
  const db = new Database(path);
  db.exec('BEGIN IMMEDIATE');
  locks.push(db);
  return db;
}
afterEach(async () => {
  for (const db of locks.splice(0)) {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
  }
  for (const s of open.splice(0)) await s.close();
});

/** Awaits `p`, expecting a MedfitError rejection. */
async function refused(p: Promise<unknown>): Promise<MedfitError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MedfitError);
  return e as MedfitError;
}

/** Records the longest gap between ticks of a 5 ms interval: how long the event loop was blocked. */
function loopWatch(): { stop(): number } {
  let last = performance.now();
  let worst = 0;
  const t = setInterval(() => {
    const at = performance.now();
    worst = Math.max(worst, at - last);
    last = at;
  }, 5);
  return {
    stop() {
      clearInterval(t);
      return Math.max(worst, performance.now() - last);
    },
  };
}

const spills = (path: string) => readdirSync(dirname(path)).filter((n) => n.startsWith('medfit.db.audit-spill-'));
const auditRows = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n;
  } finally {
    db.close();
  }
};
const entry = (projectId: string, action: string, rows: number | null = 1) => ({ projectId, keyId: 'k', action, resource: 'model:m/1', rows, status: 200 });

describeStoreContract('SQLite', async () => {
  const { store, path } = fresh();
  return { store, reopen: async () => openSqliteStore(path) };
});

describe('SQLite metadata store', () => {
  it('migrates a database of the previous schema, keeping its keys and trail', async () => {
    const { store, path } = fresh();
    const p = await store.createProject('p');
    await store.createKey({ id: 'k1', projectId: p.id, name: 'n', scopes: ['admin'], hash: 'h1' });
    await store.audit({ projectId: p.id, keyId: 'k1', action: 'a', resource: null, rows: null, status: 200 });
    await store.close();
    // Back to schema 2 as an older medfit left it.
    const db = new Database(path);
    db.exec(
      'ALTER TABLE datasets DROP COLUMN sidecars; ALTER TABLE model_versions DROP COLUMN files_sha256; ' +
        'DROP INDEX api_keys_project; DROP INDEX audit_project_action; DROP INDEX audit_project_key; DROP INDEX audit_project_at; ALTER TABLE api_keys DROP COLUMN last_used;',
    );
    db.pragma('user_version = 2');
    db.close();
    const again = fresh(path).store;
    expect(await again.getKey('k1')).toMatchObject({ id: 'k1', lastUsed: null, revoked: null });
    expect((await again.listAudit(p.id, { action: 'a', keyId: 'k1' })).map((e) => e.action)).toEqual(['a']);
  });

  it('refuses a database from a newer medfit', () => {
    const { path } = fresh();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    expect(() => openSqliteStore(path)).toThrow(/written by a newer medfit \(schema 99/);
  });

  describe('when another process holds the lock', () => {
    it('never blocks the event loop: a busy write is retried on timers, then is a 503 with Retry-After', async () => {
      const { store, path } = fresh(undefined, { retryMs: 300 });
      await store.createProject('before');
      const other = holdLock(path);
      const watch = loopWatch();
      const t0 = performance.now();
      const e = await refused(store.createProject('during'));
      const took = performance.now() - t0;
      const blocked = watch.stop();
      expect(e).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503, retryAfter: 1 });
      expect(e.message).toMatch(/busy/);
      expect(e.message).not.toContain(path);
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(2000);
      expect(blocked).toBeLessThan(100);
      // Readers are not blocked by a writer (WAL).
      expect(await store.getProjectByName('before')).toMatchObject({ name: 'before' });
      // Nor is a ping (GET /readyz): another process writing does not make the server unready.
      await store.ping();
      // A write whose lock is released within the retry window succeeds.
      const pending = store.createProject('later');
      setTimeout(() => other.exec('COMMIT'), 100);
      expect(await pending).toMatchObject({ name: 'later' });
    });

    it('keeps audit entries whose flush failed, folds identical ones, retries by itself, and refuses to list an incomplete trail', async () => {
      const { store, path } = fresh(undefined, { retryMs: 200 });
      const p = await store.createProject('p');
      const other = holdLock(path);
      const watch = loopWatch();
      for (let i = 0; i < 10; i++) await store.audit(entry(p.id, 'model.infer', 2));
      await store.audit(entry(p.id, 'dataset.read', null));
      // Several flushes fail meanwhile (the timer must neither throw nor drop the batch).
      await new Promise((r) => setTimeout(r, 400));
      for (let i = 0; i < 5; i++) await store.audit(entry(p.id, 'model.infer', 2));
      const e = await refused(store.listAudit(p.id));
      expect(e).toMatchObject({ status: 503, retryAfter: 1 });
      expect(watch.stop()).toBeLessThan(100);
      expect(auditRows(path)).toBe(0);
      other.exec('COMMIT');
      // The timer's own retry writes them, without a reader asking.
      for (let i = 0; i < 100 && auditRows(path) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(auditRows(path)).toBe(2);
      const entries = await store.listAudit(p.id);
      expect(entries.map((x) => [x.action, x.requests, x.rows])).toEqual([
        ['dataset.read', 1, null],
        ['model.infer', 15, 30],
      ]);
    });

    it('at close, keeps what it cannot write in a file next to the database; the next open imports it exactly once', async () => {
      const { store, path } = fresh(undefined, { closeRetryMs: 200 });
      const p = await store.createProject('p');
      await store.audit(entry(p.id, 'a'));
      await store.audit(entry(p.id, 'b'));
      await store.audit(entry(p.id, 'b'));
      const other = holdLock(path);
      await store.close();
      expect(spills(path)).toHaveLength(1);
      const spilled = readFileSync(join(dirname(path), spills(path)[0]!), 'utf8');
      expect(spilled).not.toContain(path);
      other.exec('COMMIT');
      expect(auditRows(path)).toBe(0);

      const again = fresh(path).store;
      expect((await again.listAudit(p.id)).map((x) => [x.action, x.requests])).toEqual([
        ['b', 2],
        ['a', 1],
      ]);
      expect(spills(path)).toEqual([]);
      await again.close();
      // A crash after the import's commit and before the file's removal leaves it behind: not imported twice.
      writeFileSync(join(dirname(path), 'medfit.db.audit-spill-1-00000000.json'), spilled);
      const third = fresh(path).store;
      expect(await third.listAudit(p.id)).toHaveLength(2);
      expect(spills(path)).toEqual([]);
    });

    it('leaves an unreadable spill file in place and opens anyway', async () => {
      const { store, path } = fresh();
      await store.close();
      writeFileSync(join(dirname(path), 'medfit.db.audit-spill-1-deadbeef.json'), '{"truncated": ');
      const logged: string[] = [];
      const again = fresh(path, { log: (level, message) => logged.push(`${level}: ${message}`) }).store;
      expect(await again.listProjects()).toEqual([]);
      expect(spills(path)).toEqual(['medfit.db.audit-spill-1-deadbeef.json']);
      expect(logged).toEqual([expect.stringMatching(/^error: an audit spill file .* cannot be read/)]);
    });

    it('waits for the lock, blocking, only when opened with a busy timeout (a short-lived CLI)', async () => {
      const { store: server, path } = fresh(undefined, { retryMs: 0 });
      const cli = fresh(path, { busyTimeoutMs: 5000, retryMs: 0 }).store;
      // Another process: a blocking wait here would keep this process's own timers from releasing it.
      const holder = spawn(
        process.execPath,
        ['-e', `const D = require('better-sqlite3'); const db = new D(process.argv[1]); db.exec('BEGIN IMMEDIATE'); console.log('locked'); setTimeout(() => { db.exec('COMMIT'); db.close(); }, 600);`, path],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
      let t0 = performance.now();
      expect(await refused(server.createProject('server'))).toMatchObject({ status: 503 });
      expect(performance.now() - t0).toBeLessThan(100);
      t0 = performance.now();
      expect(await cli.createProject('cli')).toMatchObject({ name: 'cli' });
      expect(performance.now() - t0).toBeGreaterThan(200);
      await new Promise((resolve) => holder.once('close', resolve));
    });
  });

  it('turns "the store cannot work now" errors into 503s and unique violations into 409s; other constraint violations and bugs stay what they are', async () => {
    const err = (code: string, message = 'x') => new Database.SqliteError(message, code);
    for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED']) expect(storeFailure(err(code))).toMatchObject({ status: 503, retryAfter: 1 });
    for (const code of ['SQLITE_IOERR_WRITE', 'SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_NOMEM', 'SQLITE_PROTOCOL', 'SQLITE_CORRUPT']) {
      expect(storeFailure(err(code))).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503, message: expect.stringContaining(code) });
    }
    // The violated columns are named as PostgreSQL names its constraint; anything else in the engine's message is not repeated.
    expect(storeFailure(err('SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE constraint failed: projects.name'))).toMatchObject({
      code: 'MEDFIT_ERR_CONFLICT',
      status: 409,
      message: 'the metadata store already holds such a record (projects.name)',
    });
    expect(storeFailure(err('SQLITE_CONSTRAINT_PRIMARYKEY', 'UNIQUE constraint failed: model_versions.project_id, model_versions.name, model_versions.version'))).toMatchObject({
      message: 'the metadata store already holds such a record (model_versions.project_id, model_versions.name, model_versions.version)',
    });
    expect(storeFailure(err('SQLITE_CONSTRAINT_UNIQUE', "UNIQUE constraint failed: index 'x'"))).toMatchObject({ message: 'the metadata store already holds such a record' });
    for (const e of [err('SQLITE_CONSTRAINT_FOREIGNKEY'), err('SQLITE_CONSTRAINT_NOTNULL'), err('SQLITE_ERROR'), err('SQLITE_MISMATCH'), new TypeError('bug')]) expect(storeFailure(e)).toBeUndefined();
    const { store } = fresh();
    await store.createProject('same');
    const dup = await store.createProject('same').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(dup).toBeInstanceOf(MedfitError);
    expect(dup).toMatchObject({ code: 'MEDFIT_ERR_CONFLICT', message: 'the metadata store already holds such a record (projects.name)' });
    // A key of a project that does not exist is a bug of the caller's, not a conflict.
    const orphan = await store.createKey({ id: 'k', projectId: 'nope', name: 'n', scopes: ['read'], hash: 'h' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(orphan).toMatchObject({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' });
  });
});

