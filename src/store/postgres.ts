import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Errors, MedfitError } from '../core/index.js';
import { JOB_COLUMNS, auditFromRow, datasetFromRow, foldAudit, jobFromRow, keyFromRow, versionFromRow, type PendingAudit, type Row } from './rows.js';
import type { StoreLog } from './sqlite.js';
import type {
  ApiKeyRecord,
  AuditQuery,
  AuditRecord,
  DatasetRecord,
  JobRecord,
  JobStatus,
  KeyRevocation,
  MetadataStore,
  ModelVersionRecord,
  Project,
  Stage,
} from './types.js';

/**
 * The SQLite store's numbered migrations, translated to PostgreSQL; `medfit_migrations` records
 * which ran (one row per number). Never edit a shipped migration: append a new one, in step with
 * the SQLite list. Translation notes: times stay ISO 8601 text (compared and sorted as text, so
 * `COLLATE "C"` keeps SQLite's byte order whatever the database's locale), JSON stays text (kept
 * exactly as written), `progress` is double precision (PostgreSQL's REAL is 4 bytes), and each
 * listed table has a `seq` column standing for SQLite's rowid, which breaks ties between rows
 * created in the same millisecond in insertion order, as SQLite does.
 */
const MIGRATIONS = [
  `CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT COLLATE "C" NOT NULL, seq BIGSERIAL);
   CREATE TABLE api_keys (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
     scopes TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created TEXT COLLATE "C" NOT NULL, revoked TEXT, seq BIGSERIAL);
   CREATE TABLE datasets (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
     file TEXT NOT NULL, format TEXT NOT NULL, rows BIGINT NOT NULL, bytes BIGINT NOT NULL, sha256 TEXT NOT NULL,
     columns TEXT NOT NULL, created TEXT COLLATE "C" NOT NULL, seq BIGSERIAL);
   CREATE INDEX datasets_project ON datasets(project_id);
   CREATE TABLE jobs (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), dataset_id TEXT NOT NULL,
     name TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL, progress DOUBLE PRECISION NOT NULL DEFAULT 0, stage TEXT,
     error TEXT, model_version INTEGER, created TEXT COLLATE "C" NOT NULL, started TEXT, finished TEXT, seq BIGSERIAL);
   CREATE INDEX jobs_project ON jobs(project_id);
   CREATE INDEX jobs_status ON jobs(status);
   CREATE TABLE model_versions (project_id TEXT NOT NULL REFERENCES projects(id), name TEXT COLLATE "C" NOT NULL, version INTEGER NOT NULL,
     stage TEXT NOT NULL, source TEXT NOT NULL, family TEXT NOT NULL, task TEXT NOT NULL, dir TEXT NOT NULL, job_id TEXT,
     dataset_id TEXT, dataset_sha256 TEXT, metrics TEXT NOT NULL, created TEXT COLLATE "C" NOT NULL,
     PRIMARY KEY (project_id, name, version));
   CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, project_id TEXT NOT NULL, key_id TEXT NOT NULL,
     action TEXT NOT NULL, resource TEXT, rows BIGINT, status INTEGER NOT NULL, at TEXT COLLATE "C" NOT NULL);
   CREATE INDEX audit_project ON audit(project_id, id);`,
  `ALTER TABLE audit ADD COLUMN requests INTEGER NOT NULL DEFAULT 1;`,
  `ALTER TABLE api_keys ADD COLUMN last_used TEXT COLLATE "C";
   CREATE INDEX api_keys_project ON api_keys(project_id);
   CREATE INDEX audit_project_action ON audit(project_id, action, id);
   CREATE INDEX audit_project_key ON audit(project_id, key_id, id);
   CREATE INDEX audit_project_at ON audit(project_id, at);`,
  `ALTER TABLE datasets ADD COLUMN sidecars TEXT;
   ALTER TABLE model_versions ADD COLUMN files_sha256 TEXT;`,
];

/** How many migrations this code knows (tests use it). */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

/** Options of `openPostgresStore`. */
export interface PostgresStoreOptions {
  /** The schema holding medfit's tables (created if absent). Default `public`. Letters, digits and `_` only. */
  schema?: string;
  /** Most connections the pool opens (default 10). A request waiting longer than `connectTimeoutMs` for one is a 503. */
  poolMax?: number;
  /** How long to wait for a connection (new, or free in the pool) before an operation is a 503. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long an operation that meets a serialization failure, deadlock or lock timeout is retried before it is a 503. Default 1500 ms. */
  retryMs?: number;
  /**
   * The longest one statement may run (PostgreSQL's `statement_timeout`, set on every pooled
   * connection): one that takes longer, running or waiting for a lock, is cancelled by the server
   * and the operation is a 503, never retried. Migrations at open are exempt. Default 30000 ms;
   * 0 leaves the server's own setting (no limit unless its configuration sets one).
   */
  statementTimeoutMs?: number;
  /** How long `close` keeps trying to write buffered audit entries. Default 3000 ms. */
  closeRetryMs?: number;
  /** The connections' `application_name` (seen in `pg_stat_activity`; a replica's name, say). Default `medfit`. */
  applicationName?: string;
  /** Where the store reports what it handles by itself; `code` is PostgreSQL's SQLSTATE or the socket error code. */
  log?: StoreLog;
}

type Queryable = Pick<pg.PoolClient, 'query'>;
const now = () => new Date().toISOString();
const DONE: Promise<void> = Promise.resolve();

const DEFAULT_RETRY_MS = 1500;
const DEFAULT_CLOSE_RETRY_MS = 3000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
const AUDIT_FLUSH_MS = 50;
const AUDIT_BATCH = 256;
const AUDIT_RETRY_LONGEST_MS = 2000;
/** First key of the advisory lock that serializes migrations (second: the schema name's hash). */
const MIGRATION_LOCK = 0x6d656466; // "medf"

/** Where a URL points, without user or password: what messages may name. */
function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || ''}`;
  } catch {
    return 'a malformed PostgreSQL URL';
  }
}

/** The SQLSTATE (or socket error code) of a driver error, when it has one. */
function pgCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !(e instanceof MedfitError) ? code : undefined;
}

/** SQLSTATE of a statement cancelled by `statement_timeout` (or by an operator). */
const STATEMENT_CANCELLED = '57014';
/** SQLSTATEs worth retrying shortly: another transaction was in the way. */
const BUSY_CODES = new Set(['40001', '40P01', '55P03']);
/** Socket-level codes of a connection that failed or went away. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);
/** Driver messages of a lost or unobtainable connection (these errors carry no code). */
const LOST_MESSAGES = ['Connection terminated', 'timeout exceeded when trying to connect', 'Client has encountered a connection error', 'Connection ended', 'Cannot use a pool after calling end'];

function isBusy(e: unknown): boolean {
  const code = pgCode(e);
  return code !== undefined && BUSY_CODES.has(code);
}

/**
 * The 503 for an error that means "the store cannot work now" (server unreachable, connection
 * lost, shutting down, out of resources, read-only, busy), a 409 for a unique violation, or
 * undefined for anything else (a real failure). Messages name the SQLSTATE, never a value.
 */
export function postgresFailure(e: unknown): MedfitError | undefined {
  if (e instanceof MedfitError) return undefined;
  const code = pgCode(e);
  if (code !== undefined) {
    if (BUSY_CODES.has(code)) return Errors.unavailable('the metadata store is busy (another transaction is in the way); retry shortly', 1);
    // query_canceled: the connection's statement_timeout ran out (or an operator cancelled it).
    if (code === STATEMENT_CANCELLED) return Errors.unavailable('the metadata database took too long to answer (statement timeout, 57014); retry later', 5);
    if (code === '23505') return Errors.conflict(`the metadata store already holds such a record${constraintOf(e)}`);
    if (SOCKET_CODES.has(code) || /^(08|53|57P|58)/.test(code) || code === '25006') return Errors.unavailable(`the metadata store cannot be used now (${code}); retry later`, 5);
    return undefined;
  }
  const message = e instanceof Error ? e.message : '';
  if (LOST_MESSAGES.some((m) => message.startsWith(m))) return Errors.unavailable('the metadata store cannot be reached now (connection lost); retry later', 5);
  return undefined;
}

function constraintOf(e: unknown): string {
  const c = (e as { constraint?: unknown }).constraint;
  return typeof c === 'string' && /^[a-z0-9_]+$/.test(c) ? ` (${c})` : '';
}

/**
 * Opens the PostgreSQL metadata store at `url` (`postgres://user:pass@host:port/db`): a pool of
 * connections whose `search_path` is `options.schema`, migrated to this code's schema under an
 * advisory lock, so replicas starting together migrate once. An unreachable server is
 * `Errors.unavailable` (the CLI exits 1), a schema newer than this code a usage error; both name
 * the host, never the password.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<MetadataStore> {
  const schema = options.schema ?? 'public';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw Errors.usage(`PostgreSQL schema name "${schema}": use letters, digits and _ only`);
  const where = describeUrl(url);
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  if (!Number.isFinite(statementTimeoutMs) || statementTimeoutMs < 0) throw Errors.usage(`PostgreSQL statement timeout ${statementTimeoutMs}: use a number of milliseconds >= 0 (0: the server's own setting)`);
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({
      connectionString: url,
      max: options.poolMax ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      // Set at connection start, so no query runs before it holds.
      options: `-c search_path=${schema}`,
      // Also a startup parameter: it holds for every statement of every connection, including a
      // lock wait (the store sets no lock_timeout), so a stuck query frees its connection.
      statement_timeout: statementTimeoutMs > 0 ? Math.max(1, Math.round(statementTimeoutMs)) : false,
      application_name: options.applicationName ?? 'medfit',
    });
  } catch {
    throw Errors.usage(`cannot use the metadata database URL (${where}): it is not a valid PostgreSQL URL`);
  }
  // An idle connection that dies (server restart, pg_terminate_backend) is reported here and
  // dropped by the pool; without a listener it would crash the process.
  pool.on('error', (e) => {
    try {
      options.log?.('warn', 'an idle metadata store connection was lost; the pool replaces it', pgCode(e) !== undefined ? { code: pgCode(e)! } : {});
    } catch {
      /* a failing logger never breaks the store */
    }
  });
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    await pool.end().catch(() => undefined);
    const detail = e instanceof Error ? e.message.replace(/\s+/g, ' ').slice(0, 200) : String(e);
    throw Errors.unavailable(`cannot reach the PostgreSQL metadata database at ${where}: ${redact(detail, url)}`);
  }
  try {
    await migrate(client, schema, where);
    client.release();
  } catch (e) {
    client.release(true);
    await pool.end().catch(() => undefined);
    throw postgresFailure(e) ?? e;
  }
  return new PostgresStore(pool, options);
}

/** Removes the URL's password from a driver message, should one ever quote it. */
function redact(message: string, url: string): string {
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password ? message.split(password).join('***') : message;
  } catch {
    return message;
  }
}

/**
 * Creates the schema and applies the missing migrations in one transaction under an advisory
 * lock keyed by the schema: a replica that waited finds them applied and does nothing.
 */
async function migrate(c: pg.PoolClient, schema: string, where: string): Promise<void> {
  await c.query('BEGIN');
  try {
    // No statement timeout here: waiting for another replica's migration, or building an index on
    // a large audit table, may rightly take longer than a request's statement may.
    await c.query('SET LOCAL statement_timeout = 0');
    await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK, schema]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await c.query('CREATE TABLE IF NOT EXISTS medfit_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)');
    const r = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM medfit_migrations');
    const version = r.rows[0]?.v ?? 0;
    if (version > MIGRATIONS.length) {
      throw Errors.usage(`schema ${schema} at ${where} was written by a newer medfit (schema ${version}, this one knows ${MIGRATIONS.length})`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      await c.query(MIGRATIONS[v]!);
      await c.query('INSERT INTO medfit_migrations (version, applied) VALUES ($1, $2)', [v + 1, now()]);
    }
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** An audit entry waiting to be written; `at` is the ISO text it is written with. */

/**
 * The PostgreSQL store. Each operation takes a pooled connection; the ones SQLite runs in a
 * transaction run in one here, and those whose check-then-write must not interleave (version
 * numbering, stage changes, last-admin checks) first lock their project's row. Unreachable or
 * lost connections, and busy conditions that outlast `retryMs`, are `Errors.unavailable`.
 */
class PostgresStore implements MetadataStore {
  private auditBuffer = new Map<string, PendingAudit>();
  private keyUses = new Map<string, string>();
  private auditTimer: NodeJS.Timeout | undefined;
  private auditFailures = 0;
  /** Audit writes run one after another, so a reader's flush waits for the timer's. */
  private writing: Promise<void> = DONE;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly retryMs: number;
  private readonly closeRetryMs: number;
  private readonly connectTimeoutMs: number;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: PostgresStoreOptions,
  ) {
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.closeRetryMs = options.closeRetryMs ?? DEFAULT_CLOSE_RETRY_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  private log(level: 'info' | 'warn' | 'error', message: string, e?: unknown): void {
    try {
      const code = pgCode(e) ?? (e instanceof MedfitError ? e.code : undefined);
      this.options.log?.(level, message, code !== undefined ? { code } : {});
    } catch {
      /* nothing better to do */
    }
  }

  /** Runs an operation, retrying busy conditions for `retryMs`, and maps failures to 503/409. */
  private async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) throw Errors.unavailable('the metadata store is closed');
    const deadline = performance.now() + this.retryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        const left = deadline - performance.now();
        if (!isBusy(e) || left <= 0) throw postgresFailure(e) ?? e;
        await sleep(Math.min(5 * 2 ** attempt, 200, left));
      }
    }
  }

  private async query(sql: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    return this.pool.query<Row>(sql, values);
  }

  /** Runs `fn` in a transaction on one connection; a connection that failed is destroyed, not reused. */
  private async tx<T>(fn: (c: Queryable) => Promise<T>): Promise<T> {
    const { c, release } = await this.checkout();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (e) {
      // A lost connection is destroyed; one that was only busy or timed out is still sound.
      if (postgresFailure(e)?.code === 'MEDFIT_ERR_UNAVAILABLE' && !isBusy(e) && pgCode(e) !== STATEMENT_CANCELLED) broken = e instanceof Error ? e : new Error(String(e));
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      release(broken);
    }
  }

  /**
   * A connection taken from the pool for several statements, and its release. pg reports a
   * connection lost while checked out twice: the pending query fails, and the client emits
   * `error`, which would crash the process with no listener (the pool listens only while a
   * connection is idle, and `pool.query` only for its one query). Here it is listened to until
   * the release, and a connection that was lost is destroyed there whatever the caller says.
   */
  private async checkout(): Promise<{ c: pg.PoolClient; release: (broken?: Error) => void }> {
    const c = await this.pool.connect();
    let lost: Error | undefined;
    const onError = (e: Error) => {
      lost ??= e;
    };
    c.on('error', onError);
    return {
      c,
      release: (broken) => {
        c.removeListener('error', onError);
        c.release(broken ?? lost);
      },
    };
  }

  /**
   * `SELECT 1` on a pooled connection, the whole of it (waiting for a connection, then for the
   * answer) within `connectTimeoutMs`: a server that keeps its connections open but no longer
   * answers (paused, behind a network that drops packets) is a 503 too, where the driver alone
   * would wait for the kernel to give up. The connection that waited is destroyed, not reused.
   */
  ping(): Promise<void> {
    return this.run(async () => {
      const deadline = performance.now() + this.connectTimeoutMs;
      const { c, release } = await this.checkout();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(Errors.unavailable(`the metadata database did not answer within ${this.connectTimeoutMs} ms; retry later`, 5)),
          Math.max(1, deadline - performance.now()),
        );
      });
      try {
        await Promise.race([c.query('SELECT 1'), late]);
        release();
      } catch (e) {
        release(e instanceof Error ? e : new Error(String(e)));
        throw e;
      } finally {
        clearTimeout(timer);
      }
    });
  }

  createProject(name: string): Promise<Project> {
    return this.run(async () => {
      const p = { id: randomUUID(), name, created: now() };
      await this.query('INSERT INTO projects (id, name, created) VALUES ($1, $2, $3)', [p.id, p.name, p.created]);
      return p;
    });
  }

  getProject(id: string): Promise<Project | undefined> {
    return this.run(async () => projectFromRow((await this.query('SELECT id, name, created FROM projects WHERE id = $1', [id])).rows[0]));
  }

  getProjectByName(name: string): Promise<Project | undefined> {
    return this.run(async () => projectFromRow((await this.query('SELECT id, name, created FROM projects WHERE name = $1', [name])).rows[0]));
  }

  listProjects(): Promise<Project[]> {
    return this.run(async () => (await this.query('SELECT id, name, created FROM projects ORDER BY created, seq')).rows.map((r) => projectFromRow(r)!));
  }

  createKey(k: Omit<ApiKeyRecord, 'created' | 'revoked' | 'lastUsed'>): Promise<ApiKeyRecord> {
    return this.run(async () => {
      const rec: ApiKeyRecord = { ...k, created: now(), revoked: null, lastUsed: null };
      await this.query('INSERT INTO api_keys (id, project_id, name, scopes, hash, created) VALUES ($1, $2, $3, $4, $5, $6)', [
        rec.id,
        rec.projectId,
        rec.name,
        JSON.stringify(rec.scopes),
        rec.hash,
        rec.created,
      ]);
      return rec;
    });
  }

  getKey(id: string): Promise<ApiKeyRecord | undefined> {
    return this.run(async () => {
      const r = (await this.query('SELECT * FROM api_keys WHERE id = $1', [id])).rows[0];
      return r && keyFromRow(r);
    });
  }

  getKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return this.run(async () => {
      const r = (await this.query('SELECT * FROM api_keys WHERE hash = $1', [hash])).rows[0];
      return r && keyFromRow(r);
    });
  }

  listKeys(projectId?: string): Promise<ApiKeyRecord[]> {
    return this.run(async () => {
      // Buffered uses first, so a key used a moment ago does not read as unused; a store that
      // refuses the write still answers the read (the flush retries on its own).
      await this.flushAudit();
      const rows = projectId
        ? (await this.query('SELECT * FROM api_keys WHERE project_id = $1 ORDER BY created, seq', [projectId])).rows
        : (await this.query('SELECT * FROM api_keys ORDER BY created, seq')).rows;
      return rows.map(keyFromRow);
    });
  }

  revokeKey(id: string): Promise<boolean> {
    return this.run(async () => ((await this.query('UPDATE api_keys SET revoked = $1 WHERE id = $2 AND revoked IS NULL', [now(), id])).rowCount ?? 0) > 0);
  }

  revokeProjectKey(projectId: string, id: string): Promise<KeyRevocation> {
    return this.run(() =>
      this.tx(async (c): Promise<KeyRevocation> => {
        // The project's row lock serializes revocations inside it: the last-admin check and the
        // update see the same keys.
        await lockProject(c, projectId);
        const r = (await c.query<Row>('SELECT * FROM api_keys WHERE project_id = $1 AND id = $2', [projectId, id])).rows[0];
        if (!r) return { outcome: 'not-found' };
        const key = keyFromRow(r);
        if (key.revoked !== null) return { outcome: 'already-revoked', key };
        if (key.scopes.includes('admin')) {
          const active = (await c.query<Row>('SELECT * FROM api_keys WHERE project_id = $1 AND revoked IS NULL', [projectId])).rows.map(keyFromRow);
          if (!active.some((k) => k.id !== id && k.scopes.includes('admin'))) return { outcome: 'last-admin', key };
        }
        const revoked = now();
        await c.query('UPDATE api_keys SET revoked = $1 WHERE project_id = $2 AND id = $3', [revoked, projectId, id]);
        return { outcome: 'revoked', key: { ...key, revoked } };
      }),
    );
  }

  touchKey(id: string): Promise<void> {
    this.keyUses.set(id, new Date().toISOString());
    this.auditTimer ??= setTimeout(() => void this.flushAudit(), AUDIT_FLUSH_MS).unref();
    return DONE;
  }

  countKeys(): Promise<number> {
    return this.run(async () => Number((await this.query('SELECT COUNT(*) AS n FROM api_keys')).rows[0]!['n']));
  }

  createDataset(d: Omit<DatasetRecord, 'created'>): Promise<DatasetRecord> {
    return this.run(async () => {
      const rec: DatasetRecord = { ...d, created: now() };
      await this.query('INSERT INTO datasets (id, project_id, name, file, format, rows, bytes, sha256, columns, created, sidecars) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)', [
        rec.id,
        rec.projectId,
        rec.name,
        rec.file,
        rec.format,
        rec.rows,
        rec.bytes,
        rec.sha256,
        JSON.stringify(rec.columns),
        rec.created,
        rec.sidecars ? JSON.stringify(rec.sidecars) : null,
      ]);
      return rec;
    });
  }

  getDataset(projectId: string, id: string): Promise<DatasetRecord | undefined> {
    return this.run(async () => {
      const r = (await this.query('SELECT * FROM datasets WHERE project_id = $1 AND id = $2', [projectId, id])).rows[0];
      return r && datasetFromRow(r);
    });
  }

  listDatasets(projectId: string): Promise<DatasetRecord[]> {
    return this.run(async () => (await this.query('SELECT * FROM datasets WHERE project_id = $1 ORDER BY created, seq', [projectId])).rows.map(datasetFromRow));
  }

  deleteDataset(projectId: string, id: string): Promise<boolean> {
    return this.run(async () => ((await this.query('DELETE FROM datasets WHERE project_id = $1 AND id = $2', [projectId, id])).rowCount ?? 0) > 0);
  }

  createJob(j: Pick<JobRecord, 'id' | 'projectId' | 'datasetId' | 'name' | 'spec'>): Promise<JobRecord> {
    return this.run(async (): Promise<JobRecord> => {
      const created = now();
      await this.query("INSERT INTO jobs (id, project_id, dataset_id, name, spec, status, created) VALUES ($1, $2, $3, $4, $5, 'queued', $6)", [
        j.id,
        j.projectId,
        j.datasetId,
        j.name,
        JSON.stringify(j.spec),
        created,
      ]);
      return { ...j, status: 'queued', progress: 0, stage: null, error: null, modelVersion: null, created, started: null, finished: null };
    });
  }

  getJob(projectId: string, id: string): Promise<JobRecord | undefined> {
    return this.run(async () => {
      const r = (await this.query('SELECT * FROM jobs WHERE project_id = $1 AND id = $2', [projectId, id])).rows[0];
      return r && jobFromRow(r);
    });
  }

  listJobs(projectId: string): Promise<JobRecord[]> {
    return this.run(async () => (await this.query('SELECT * FROM jobs WHERE project_id = $1 ORDER BY created, seq', [projectId])).rows.map(jobFromRow));
  }

  updateJob(id: string, patch: Partial<Pick<JobRecord, 'status' | 'progress' | 'stage' | 'error' | 'modelVersion' | 'started' | 'finished'>>): Promise<void> {
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const col = JOB_COLUMNS[k];
      if (col === undefined) continue;
      values.push(k === 'error' ? (v === null ? null : JSON.stringify(v)) : v);
      sets.push(`${col} = $${values.length}`);
    }
    if (!sets.length) return DONE;
    values.push(id);
    return this.run(async () => {
      await this.query(`UPDATE jobs SET ${sets.join(', ')} WHERE id = $${values.length}`, values);
    });
  }

  countJobsByStatus(): Promise<Record<JobStatus, number>> {
    return this.run(async () => {
      const counts: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const r of (await this.query('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status')).rows) counts[r['status'] as JobStatus] = Number(r['n']);
      return counts;
    });
  }

  jobsWithStatus(statuses: JobStatus[]): Promise<JobRecord[]> {
    return this.run(async () => (await this.query('SELECT * FROM jobs WHERE status = ANY($1::text[]) ORDER BY created, seq', [statuses])).rows.map(jobFromRow));
  }

  createModelVersion(v: Omit<ModelVersionRecord, 'version' | 'created' | 'stage'>): Promise<ModelVersionRecord> {
    // Number and insert in one transaction, under the project's row lock, so two jobs finishing
    // together (on any replicas) never share a version.
    return this.run(() =>
      this.tx(async (c) => {
        await lockProject(c, v.projectId);
        const r = (await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM model_versions WHERE project_id = $1 AND name = $2', [v.projectId, v.name])).rows[0];
        const rec: ModelVersionRecord = { ...v, version: (r?.v ?? 0) + 1, stage: 'none', created: now() };
        await c.query(
          'INSERT INTO model_versions (project_id, name, version, stage, source, family, task, dir, job_id, dataset_id, dataset_sha256, metrics, created, files_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)',
          [rec.projectId, rec.name, rec.version, rec.stage, rec.source, rec.family, rec.task, rec.dir, rec.jobId, rec.datasetId, rec.datasetSha256, JSON.stringify(rec.metrics), rec.created, rec.filesSha256 ?? null],
        );
        return rec;
      }),
    );
  }

  getModelVersion(projectId: string, name: string, version: number): Promise<ModelVersionRecord | undefined> {
    return this.run(async () => {
      const r = (await this.query('SELECT * FROM model_versions WHERE project_id = $1 AND name = $2 AND version = $3', [projectId, name, version])).rows[0];
      return r && versionFromRow(r);
    });
  }

  listModelVersions(projectId: string, name?: string): Promise<ModelVersionRecord[]> {
    return this.run(async () => {
      const rows =
        name === undefined
          ? (await this.query('SELECT * FROM model_versions WHERE project_id = $1 ORDER BY name, version', [projectId])).rows
          : (await this.query('SELECT * FROM model_versions WHERE project_id = $1 AND name = $2 ORDER BY version', [projectId, name])).rows;
      return rows.map(versionFromRow);
    });
  }

  setStage(projectId: string, name: string, version: number, stage: Stage): Promise<ModelVersionRecord | undefined> {
    // Under the project's row lock: two promotions at once leave one production version.
    return this.run(() =>
      this.tx(async (c) => {
        await lockProject(c, projectId);
        if (stage === 'production') {
          await c.query("UPDATE model_versions SET stage = 'archived' WHERE project_id = $1 AND name = $2 AND stage = 'production' AND version != $3", [projectId, name, version]);
        }
        const r = (await c.query<Row>('UPDATE model_versions SET stage = $1 WHERE project_id = $2 AND name = $3 AND version = $4 RETURNING *', [stage, projectId, name, version])).rows[0];
        return r && versionFromRow(r);
      }),
    );
  }

  /** Buffered and folded exactly as the SQLite store does (see there); written by a timer. */
  audit(a: Omit<AuditRecord, 'id' | 'at' | 'requests'>): Promise<void> {
    if (foldAudit(this.auditBuffer, a)) {
      if (this.auditBuffer.size >= AUDIT_BATCH && this.auditFailures === 0) void this.flushAudit();
      else this.auditTimer ??= setTimeout(() => void this.flushAudit(), AUDIT_FLUSH_MS).unref();
    }
    return DONE;
  }

  /** The timer's flush. It never rejects: a failure keeps the entries and schedules another try. */
  private async flushAudit(): Promise<void> {
    if (this.auditTimer) clearTimeout(this.auditTimer);
    this.auditTimer = undefined;
    if (this.closed) return;
    try {
      await this.writeAudit();
    } catch (e) {
      this.auditFailures++;
      if (this.auditFailures === 1) this.log('warn', `${this.auditBuffer.size} audit entries could not be written yet; they are kept and retried`, e);
      const delay = Math.min(AUDIT_FLUSH_MS * 2 ** this.auditFailures, AUDIT_RETRY_LONGEST_MS);
      this.auditTimer ??= setTimeout(() => void this.flushAudit(), delay).unref();
    }
  }

  /** Writes what is buffered, after any write already under way; rejects with what the store threw. */
  private writeAudit(): Promise<void> {
    const next = this.writing.then(() => this.writeAuditNow());
    this.writing = next.catch(() => undefined);
    return next;
  }

  /**
   * Takes the buffers and writes them in one transaction. Requests arriving meanwhile go to new
   * buffers; if the write fails, the taken entries are folded back in, so nothing is lost or
   * counted twice.
   */
  private async writeAuditNow(): Promise<void> {
    if (this.auditBuffer.size === 0 && this.keyUses.size === 0) return;
    const batch = this.auditBuffer;
    const uses = this.keyUses;
    this.auditBuffer = new Map();
    this.keyUses = new Map();
    try {
      await this.insertAudit([...batch.values()], uses);
    } catch (e) {
      for (const [key, entry] of batch) {
        const later = this.auditBuffer.get(key);
        if (later) {
          entry.requests += later.requests;
          if (later.rows !== null) entry.rows = (entry.rows ?? 0) + later.rows;
        }
        this.auditBuffer.set(key, entry);
      }
      for (const [id, at] of uses) if (!(this.keyUses.get(id)! >= at)) this.keyUses.set(id, at);
      throw e;
    }
    if (this.auditFailures > 0) {
      this.log('info', `audit entries written after ${this.auditFailures} failed attempt(s)`);
      this.auditFailures = 0;
    }
  }

  private async insertAudit(entries: PendingAudit[], uses: ReadonlyMap<string, string>): Promise<void> {
    const latest = new Map(uses);
    for (const e of entries) {
      const seen = latest.get(e.keyId);
      if (seen === undefined || seen < e.at) latest.set(e.keyId, e.at);
    }
    await this.tx(async (c) => {
      if (entries.length) {
        // One statement per batch; VALUES rows take their ids in order, as SQLite's inserts do.
        const values: unknown[] = [];
        const tuples: string[] = [];
        for (const e of entries) {
          const n = values.push(e.projectId, e.keyId, e.action, e.resource, e.rows, e.status, e.at, e.requests);
          tuples.push(`($${n - 7}, $${n - 6}, $${n - 5}, $${n - 4}, $${n - 3}::bigint, $${n - 2}::integer, $${n - 1}, $${n}::integer)`);
        }
        await c.query(`INSERT INTO audit (project_id, key_id, action, resource, rows, status, at, requests) VALUES ${tuples.join(', ')}`, values);
      }
      if (latest.size) {
        await c.query(
          'UPDATE api_keys k SET last_used = u.at FROM unnest($1::text[], $2::text[]) AS u(id, at) WHERE k.id = u.id AND (k.last_used IS NULL OR k.last_used < u.at)',
          [[...latest.keys()], [...latest.values()]],
        );
      }
    });
  }

  listAudit(projectId: string, query: AuditQuery = {}): Promise<AuditRecord[]> {
    const where = ['project_id = $1', 'id < $2'];
    const values: unknown[] = [projectId, query.before ?? Number.MAX_SAFE_INTEGER];
    const add = (sql: string, value: unknown) => {
      values.push(value);
      where.push(`${sql} $${values.length}`);
    };
    if (query.action !== undefined) add('action =', query.action);
    if (query.keyId !== undefined) add('key_id =', query.keyId);
    if (query.since !== undefined) add('at >=', query.since);
    if (query.until !== undefined) add('at <', query.until);
    values.push(query.limit ?? 100);
    const sql = `SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${values.length}`;
    // The flush is part of the operation: an incomplete trail is a 503, never an answer.
    return this.run(async () => {
      await this.writeAudit();
      return (await this.query(sql, values)).rows.map(auditFromRow);
    });
  }

  /**
   * Writes the buffered audit entries, trying for `closeRetryMs` while the store refuses, then
   * ends the pool. Entries that still cannot be written are lost (there is no local file to keep
   * them in across replicas): that is logged, and `close` rejects with a 503 saying how many.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    const deadline = performance.now() + this.closeRetryMs;
    let failure: unknown;
    for (let attempt = 0; ; attempt++) {
      if (this.auditTimer) clearTimeout(this.auditTimer);
      this.auditTimer = undefined;
      try {
        await this.writeAudit();
        failure = undefined;
        break;
      } catch (e) {
        failure = e;
        const left = deadline - performance.now();
        if (left <= 0) break;
        await sleep(Math.min(AUDIT_FLUSH_MS * 2 ** attempt, 500, left));
      }
    }
    this.closed = true;
    if (this.auditTimer) clearTimeout(this.auditTimer);
    await this.pool.end().catch(() => undefined);
    const n = this.auditBuffer.size;
    if (failure !== undefined && n > 0) {
      this.log('error', `${n} audit entries could not be written at close; they are lost`, failure);
      throw Errors.unavailable(`${n} audit entries could not be written to the metadata store at close`);
    }
  }
}

/** Locks the project's row for the rest of the transaction (NO KEY UPDATE: inserts referencing it still proceed). */
async function lockProject(c: Queryable, projectId: string): Promise<void> {
  await c.query('SELECT 1 FROM projects WHERE id = $1 FOR NO KEY UPDATE', [projectId]);
}

function projectFromRow(r: Row | undefined): Project | undefined {
  return r && { id: r['id'] as string, name: r['name'] as string, created: r['created'] as string };
}
