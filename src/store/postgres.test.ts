import { randomBytes } from 'node:crypto';
import { TcpProxy } from '../../test/tcp-proxy.js';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MedfitError } from '../core/index.js';
import { describeStoreContract } from './contract.js';
import { openPostgresStore, type MetadataStore, type PostgresStoreOptions } from './index.js';
import { POSTGRES_SCHEMA_VERSION, postgresFailure } from './postgres.js';

const URL_ = process.env['MEDFIT_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Whether PostgreSQL answers at URL_ within 2 s. */
async function reachable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: URL_, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const available = await reachable();
if (!available) {
  console.warn(
    `postgres.test.ts: skipped, PostgreSQL does not answer at ${URL_.replace(/\/\/[^@/]*@/, '//')}; start one (or set MEDFIT_TEST_DATABASE_URL=postgres://user@host:port/db) to run the PostgreSQL store tests`,
  );
}

const run = randomBytes(4).toString('hex');
const schemas: string[] = [];
let counter = 0;
/** A schema name of this run, dropped in afterAll. */
function newSchema(): string {
  const s = `medfit_test_${run}_${counter++}`;
  schemas.push(s);
  return s;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: URL_ });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

afterAll(async () => {
  if (!available || !schemas.length) return;
  await admin(async (c) => {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  });
});

if (available) {
  describeStoreContract('PostgreSQL', async () => {
    const schema = newSchema();
    const store = await openPostgresStore(URL_, { schema, poolMax: 4 });
    return { store, reopen: () => openPostgresStore(URL_, { schema, poolMax: 4 }) };
  });
}

async function failure(p: Promise<unknown>): Promise<MedfitError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MedfitError);
  return e as MedfitError;
}

(available ? describe : describe.skip)('PostgreSQL metadata store', () => {
  const opened: MetadataStore[] = [];
  const proxies: TcpProxy[] = [];
  async function openStore(url: string, options: PostgresStoreOptions): Promise<MetadataStore> {
    const s = await openPostgresStore(url, options);
    opened.push(s);
    return s;
  }
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.stop();
    for (const s of opened.splice(0)) await s.close().catch(() => undefined);
  });

  it('migrates once when several replicas open the same new schema together', async () => {
    const schema = newSchema();
    const stores = await Promise.all(Array.from({ length: 4 }, () => openStore(URL_, { schema, poolMax: 2 })));
    const rows = await admin(async (c) => (await c.query(`SELECT version FROM "${schema}".medfit_migrations ORDER BY version`)).rows.map((r: { version: number }) => r.version));
    expect(rows).toEqual(Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => i + 1));
    // All of them work on the same tables.
    const p = await stores[0]!.createProject('p');
    expect(await stores[3]!.getProject(p.id)).toEqual(p);
    // Tables live in the schema, not in public.
    const tables = await admin(async (c) => (await c.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1', [schema])).rows.map((r: { table_name: string }) => r.table_name));
    expect(tables).toEqual(['api_keys', 'audit', 'datasets', 'jobs', 'medfit_migrations', 'model_versions', 'projects']);
  });

  it('migrates a schema left at an older version, keeping its rows', async () => {
    const schema = newSchema();
    const s = await openStore(URL_, { schema });
    const p = await s.createProject('p');
    await s.createKey({ id: 'k1', projectId: p.id, name: 'n', scopes: ['admin'], hash: 'h1' });
    await s.close();
    await admin(async (c) => {
      await c.query(`SET search_path = "${schema}"`);
      await c.query('ALTER TABLE datasets DROP COLUMN sidecars; ALTER TABLE model_versions DROP COLUMN files_sha256');
      await c.query('DROP INDEX api_keys_project, audit_project_action, audit_project_key, audit_project_at; ALTER TABLE api_keys DROP COLUMN last_used; DELETE FROM medfit_migrations WHERE version >= 3');
    });
    const again = await openStore(URL_, { schema });
    expect(await again.getKey('k1')).toMatchObject({ id: 'k1', lastUsed: null });
    await again.touchKey('k1');
    expect((await again.listKeys(p.id))[0]!.lastUsed).not.toBeNull();
  });

  it('refuses a schema written by a newer medfit', async () => {
    const schema = newSchema();
    await (await openStore(URL_, { schema })).close();
    await admin((c) => c.query(`INSERT INTO "${schema}".medfit_migrations (version, applied) VALUES (99, 'x')`));
    const e = await failure(openPostgresStore(URL_, { schema }));
    expect(e.code).toBe('MEDFIT_ERR_USAGE');
    expect(e.message).toMatch(/written by a newer medfit \(schema 99, this one knows \d+\)/);
  });

  it('refuses at open, in one line naming the host but never the password, when the server is unreachable', async () => {
    const e = await failure(openPostgresStore('postgres://medfit:s3cret-pw@127.0.0.1:1/test', { connectTimeoutMs: 1000 }));
    expect(e.code).toBe('MEDFIT_ERR_UNAVAILABLE');
    expect(e.message).toContain('127.0.0.1:1/test');
    expect(e.message).not.toContain('s3cret');
    expect(e.message).not.toContain('\n');
    expect((await failure(openPostgresStore(URL_, { schema: 'bad"name' }))).code).toBe('MEDFIT_ERR_USAGE');
    expect((await failure(openPostgresStore(URL_, { statementTimeoutMs: -1 }))).code).toBe('MEDFIT_ERR_USAGE');
  });

  it('answers 503 with Retry-After while the server is unreachable, never crashes, and recovers by itself', async () => {
    const target = new URL(URL_);
    const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    proxies.push(proxy);
    await proxy.start();
    const logged: string[] = [];
    const store = await openStore(proxy.url(URL_), { schema: newSchema(), connectTimeoutMs: 500, closeRetryMs: 300, log: (level, message) => logged.push(`${level}: ${message}`) });
    const p = await store.createProject('p');
    await store.audit({ projectId: p.id, keyId: 'k', action: 'before', resource: null, rows: null, status: 200 });
    expect(await store.listAudit(p.id)).toHaveLength(1);

    await store.ping();

    await proxy.stop();
    for (const op of [() => store.ping(), () => store.getProject(p.id), () => store.createProject('q'), () => store.setStage(p.id, 'm', 1, 'production'), () => store.listAudit(p.id)]) {
      const e = await failure(op());
      expect(e).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503 });
      expect(e.retryAfter).toBeGreaterThanOrEqual(1);
      expect(e.message).not.toContain(String(proxy.port));
    }
    // Audit entries recorded meanwhile are kept and written once it is back.
    await store.audit({ projectId: p.id, keyId: 'k', action: 'during', resource: null, rows: null, status: 200 });
    await new Promise((r) => setTimeout(r, 200));

    await proxy.start();
    await store.ping();
    expect(await store.getProject(p.id)).toEqual(p);
    expect((await store.createProject('q')).name).toBe('q');
    expect((await store.listAudit(p.id)).map((e) => e.action)).toEqual(['during', 'before']);
    expect(logged.some((l) => l.startsWith('warn: '))).toBe(true);
  });

  it('refuses a ping within connectTimeoutMs when the server keeps the connection but stops answering', async () => {
    const target = new URL(URL_);
    const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    proxies.push(proxy);
    await proxy.start();
    const store = await openStore(proxy.url(URL_), { schema: newSchema(), connectTimeoutMs: 300, closeRetryMs: 100 });
    await store.ping();
    proxy.freeze();
    for (let i = 0; i < 2; i++) {
      // The first reuses the pooled connection (its query is never answered); the second opens a new one (never greeted).
      const t0 = performance.now();
      const e = await failure(store.ping());
      const took = performance.now() - t0;
      expect(e).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503 });
      expect(e.retryAfter).toBeGreaterThanOrEqual(1);
      expect(e.message).not.toContain(String(proxy.port));
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(1500);
    }
  });

  it('cancels a statement that outlasts statementTimeoutMs (here, one waiting for a row lock): a 503 at once, not retried, the connection still good', async () => {
    const schema = newSchema();
    const store = await openStore(URL_, { schema, statementTimeoutMs: 200, retryMs: 1500 });
    const p = await store.createProject('p');
    const base = { projectId: p.id, name: 'm', source: 'uploaded' as const, family: 'linear', task: 'regression', dir: 'd', jobId: null, datasetId: null, datasetSha256: null, metrics: {} };
    const holder = new pg.Client({ connectionString: URL_ });
    await holder.connect();
    try {
      // Version numbering locks the project's row first; another session holds it.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "${schema}".projects WHERE id = $1 FOR UPDATE`, [p.id]);
      // Released after 1.5 s whatever happens, so a store without the timeout fails this test instead of hanging it.
      const release = setTimeout(() => void holder.query('COMMIT').catch(() => undefined), 1500);
      const t0 = performance.now();
      const e = await failure(store.createModelVersion(base)).finally(() => clearTimeout(release));
      const took = performance.now() - t0;
      expect(e).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503, retryAfter: 5, message: expect.stringMatching(/took too long/) });
      // Cancelled by the server after 200 ms, and not retried for retryMs.
      expect(took).toBeGreaterThanOrEqual(180);
      expect(took).toBeLessThan(1200);
      // Statements that take no such lock go on meanwhile.
      expect(await store.getProject(p.id)).toEqual(p);
      await store.ping();
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    expect((await store.createModelVersion(base)).version).toBe(1);
  });

  it('exempts the migration at open from statementTimeoutMs: it waits for another replica migrating the same schema', async () => {
    const schema = newSchema();
    const holder = new pg.Client({ connectionString: URL_ });
    await holder.connect();
    try {
      // The advisory lock a migrating replica holds (postgres.ts: MIGRATION_LOCK, "medf", and the schema's hash).
      await holder.query('SELECT pg_advisory_lock($1, hashtext($2))', [0x6d656466, schema]);
      const opening = openStore(URL_, { schema, statementTimeoutMs: 50 }).then(
        (store) => store,
        (e: unknown) => e,
      );
      await new Promise((r) => setTimeout(r, 300));
      await holder.query('SELECT pg_advisory_unlock($1, hashtext($2))', [0x6d656466, schema]);
      const store = await opening;
      expect(store).not.toBeInstanceOf(Error);
      expect(await (store as MetadataStore).listProjects()).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('answers 503, never crashes, when a transaction loses its connection half-way', async () => {
    const schema = newSchema();
    const app = `medfit-test-${run}-txkill`;
    const store = await openStore(URL_, { schema, applicationName: app });
    const p = await store.createProject('p');
    const base = { projectId: p.id, name: 'm', source: 'uploaded' as const, family: 'linear', task: 'regression', dir: 'd', jobId: null, datasetId: null, datasetSha256: null, metrics: {} };
    const holder = new pg.Client({ connectionString: URL_ });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "${schema}".projects WHERE id = $1 FOR UPDATE`, [p.id]);
      // Checked out of the pool, inside BEGIN, waiting for the row lock: then the server ends it.
      const pending = failure(store.createModelVersion(base));
      for (let i = 0; i < 100; i++) {
        const waiting = await holder.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [app]);
        if ((waiting.rows[0] as { n: number }).n > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await admin((c) => c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [app]));
      expect(await pending).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503 });
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    expect((await store.createModelVersion(base)).version).toBe(1);
  });

  it('survives its connections being terminated by the server', async () => {
    const schema = newSchema();
    const app = `medfit-test-${run}-kill`;
    const store = await openStore(URL_, { schema, poolMax: 3, applicationName: app });
    const p = await store.createProject('p');
    await Promise.all([store.getProject(p.id), store.listProjects(), store.countKeys()]);
    const killed = await admin(async (c) => (await c.query("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1", [app])).rows[0] as { n: number });
    expect(killed.n).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 100));
    // The pool drops the dead connections; the next operations get new ones (or, for one caught in flight, a 503).
    const results = await Promise.allSettled([store.getProject(p.id), store.listProjects()]);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE' });
    expect(await store.getProject(p.id)).toEqual(p);
  });

  it('maps driver errors: connection and resource trouble to 503, unique violations to 409, the rest unchanged', () => {
    const err = (code: string) => Object.assign(new Error('x'), { code });
    for (const code of ['ECONNREFUSED', 'ECONNRESET', '08006', '57P01', '53300', '25006']) expect(postgresFailure(err(code))).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503, retryAfter: 5 });
    for (const code of ['40001', '40P01', '55P03']) expect(postgresFailure(err(code))).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', retryAfter: 1 });
    expect(postgresFailure(err('57014'))).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', retryAfter: 5, message: expect.stringMatching(/took too long/) });
    expect(postgresFailure(new Error('Connection terminated unexpectedly'))).toMatchObject({ status: 503 });
    expect(postgresFailure(Object.assign(err('23505'), { constraint: 'projects_name_key' }))).toMatchObject({ code: 'MEDFIT_ERR_CONFLICT', message: expect.stringContaining('projects_name_key') });
    for (const e of [err('42P01'), err('22P02'), new TypeError('bug')]) expect(postgresFailure(e)).toBeUndefined();
  });

  it('holds to its pool limit: more concurrent operations than connections queue, then succeed', async () => {
    const app = `medfit-test-${run}-pool`;
    const store = await openStore(URL_, { schema: newSchema(), poolMax: 2, applicationName: app });
    const p = await store.createProject('p');
    const all = await Promise.all(Array.from({ length: 20 }, () => store.getProject(p.id)));
    expect(all.every((x) => x?.id === p.id)).toBe(true);
    const n = await admin(async (c) => (await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [app])).rows[0] as { n: number });
    expect(n.n).toBeLessThanOrEqual(2);
  });
});
