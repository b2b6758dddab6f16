import Database from 'better-sqlite3';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Errors, MedfitError, writeFileAtomic } from '../core/index.js';
import { JOB_COLUMNS, auditFromRow, datasetFromRow, foldAudit, jobFromRow, keyFromRow, versionFromRow, type PendingAudit, type Row } from './rows.js';
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
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit a
 * shipped migration: append a new one.
 */
const MIGRATIONS = [
  `CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
   CREATE TABLE api_keys (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
     scopes TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL, revoked TEXT);
   CREATE TABLE datasets (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
     file TEXT NOT NULL, format TEXT NOT NULL, rows INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
     columns TEXT NOT NULL, created TEXT NOT NULL);
   CREATE INDEX datasets_project ON datasets(project_id);
   CREATE TABLE jobs (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), dataset_id TEXT NOT NULL,
     name TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, stage TEXT,
     error TEXT, model_version INTEGER, created TEXT NOT NULL, started TEXT, finished TEXT);
   CREATE INDEX jobs_project ON jobs(project_id);
   CREATE INDEX jobs_status ON jobs(status);
   CREATE TABLE model_versions (project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL, version INTEGER NOT NULL,
     stage TEXT NOT NULL, source TEXT NOT NULL, family TEXT NOT NULL, task TEXT NOT NULL, dir TEXT NOT NULL, job_id TEXT,
     dataset_id TEXT, dataset_sha256 TEXT, metrics TEXT NOT NULL, created TEXT NOT NULL,
     PRIMARY KEY (project_id, name, version));
   CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, key_id TEXT NOT NULL,
     action TEXT NOT NULL, resource TEXT, rows INTEGER, status INTEGER NOT NULL, at TEXT NOT NULL);
   CREATE INDEX audit_project ON audit(project_id, id);`,
  // Identical requests within one flush window share an entry (see `audit`).
  `ALTER TABLE audit ADD COLUMN requests INTEGER NOT NULL DEFAULT 1;`,
  // Keys' last use, and the audit log's filters (action, key, time) answered from an index
  // rather than by scanning a project's whole trail.
  `ALTER TABLE api_keys ADD COLUMN last_used TEXT;
   CREATE INDEX api_keys_project ON api_keys(project_id);
   CREATE INDEX audit_project_action ON audit(project_id, action, id);
   CREATE INDEX audit_project_key ON audit(project_id, key_id, id);
   CREATE INDEX audit_project_at ON audit(project_id, at);`,
  // What each dataset's companions and each version's directory hashed to when stored: a process
  // fetching them from shared storage checks them against the row, not against storage alone.
  `ALTER TABLE datasets ADD COLUMN sidecars TEXT;
   ALTER TABLE model_versions ADD COLUMN files_sha256 TEXT;`,
];

const now = () => new Date().toISOString();

/** Options of `openSqliteStore`. */
export interface SqliteStoreOptions {
  /**
   * How long one statement may wait for another connection's lock, blocking the thread (SQLite's
   * `busy_timeout`), in ms. Default 0: a server must never stall its event loop on a lock, so a
   * busy store is retried asynchronously instead (`retryMs`). A short-lived command may block.
   */
  busyTimeoutMs?: number;
  /**
   * How long an operation that finds the store busy (SQLITE_BUSY, SQLITE_LOCKED) is retried, on
   * timers, before it fails with `Errors.unavailable` (a 503). Default 1500 ms.
   */
  retryMs?: number;
  /**
   * How long `close` keeps trying to write buffered audit entries before it keeps them in a
   * file next to the database instead (imported at the next open). Default 3000 ms.
   */
  closeRetryMs?: number;
  /** Where the store reports what it handles by itself (an audit flush retried, entries spilled or imported). No values, keys or paths. */
  log?: StoreLog;
}

/** A store's report of trouble it handled itself; `code` is SQLite's error code when there is one. */
export type StoreLog = (level: 'info' | 'warn' | 'error', message: string, detail?: { code?: string }) => void;

/** Opening and migrating happen before anything is served, so they may wait for a lock this long. */
const OPEN_BUSY_TIMEOUT_MS = 5000;
const DEFAULT_RETRY_MS = 1500;
const DEFAULT_CLOSE_RETRY_MS = 3000;
/** Backoff between retries of a busy operation: doubling from the first to the longest. */
const RETRY_FIRST_MS = 5;
const RETRY_LONGEST_MS = 200;

/**
 * Opens (creating and migrating as needed) the SQLite metadata store at `path`, and imports the
 * audit entries an earlier run had to keep in files next to it (see `close`).
 */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): MetadataStore {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw Errors.usage(`cannot open the metadata database ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    db.pragma(`busy_timeout = ${OPEN_BUSY_TIMEOUT_MS}`);
    // WAL lets readers (predictions, listings) proceed while a job's progress is being written.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw Errors.usage(`${path} was written by a newer medfit (schema ${version}, this one knows ${MIGRATIONS.length})`);
    }
    if (version < MIGRATIONS.length) {
      db.transaction(() => {
        for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
        db.pragma(`user_version = ${MIGRATIONS.length}`);
      }).immediate();
    }
    const store = new SqliteStore(db, path, options);
    store.importAuditSpills();
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 0))}`);
    return store;
  } catch (e) {
    db.close();
    throw storeFailure(e) ?? e;
  }
}

/**
 * SQLite result codes (extended ones start with these) meaning "the store cannot work now":
 * the caller's request may be fine and succeed later, so they are 503s, not our bugs. A unique or
 * primary key violation is a 409 (as on PostgreSQL); other constraint violations, misuse and
 * anything else are real errors and stay as they are.
 */
const UNAVAILABLE_CODES = ['SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_NOMEM', 'SQLITE_PROTOCOL', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_PERM', 'SQLITE_NOLFS'];

function sqliteCode(e: unknown): string | undefined {
  return e instanceof Database.SqliteError && typeof e.code === 'string' ? e.code : undefined;
}

const codeIs = (code: string, base: string) => code === base || code.startsWith(`${base}_`);

/** Whether `e` is another connection holding a lock we need: worth retrying shortly. */
export function isBusy(e: unknown): boolean {
  const code = sqliteCode(e);
  return code !== undefined && (codeIs(code, 'SQLITE_BUSY') || codeIs(code, 'SQLITE_LOCKED'));
}

/** Unique and primary key violations: the record exists already (PostgreSQL's 23505). */
const CONFLICT_CODES = new Set(['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);

/**
 * The 503 for a store error that means "cannot work now" (busy, I/O, full, read-only, corrupt,
 * ...), a 409 for a unique or primary key violation, or undefined for any other error, which is a
 * real failure. The message names SQLite's code or the violated columns, never a path or a value.
 */
export function storeFailure(e: unknown): MedfitError | undefined {
  const code = sqliteCode(e);
  if (code === undefined) return undefined;
  if (isBusy(e)) return Errors.unavailable('the metadata store is busy (another process holds its lock); retry shortly', 1);
  if (UNAVAILABLE_CODES.some((base) => codeIs(code, base))) return Errors.unavailable(`the metadata store cannot be used now (${code}); retry later`, 5);
  if (CONFLICT_CODES.has(code)) return Errors.conflict(`the metadata store already holds such a record${violatedColumns(e)}`);
  return undefined;
}

/**
 * ` (projects.name)` from SQLite's `UNIQUE constraint failed: projects.name`: the table and
 * columns, the counterpart of the constraint name PostgreSQL reports. SQLite never quotes the
 * value there; anything but plain identifiers (an index on an expression, a future wording) is
 * left out rather than trusted.
 */
function violatedColumns(e: unknown): string {
  const message = e instanceof Error ? e.message : '';
  const at = message.indexOf('constraint failed: ');
  const columns = at < 0 ? '' : message.slice(at + 'constraint failed: '.length);
  return columns.length > 0 && columns.length <= 200 && /^[A-Za-z0-9_.]+(?:, [A-Za-z0-9_.]+)*$/.test(columns) ? ` (${columns})` : '';
}

/** Audit entries are written at most this long after the request, or sooner in batches of AUDIT_BATCH. */
const AUDIT_FLUSH_MS = 50;
const AUDIT_BATCH = 256;
/** A failed audit flush is tried again after AUDIT_FLUSH_MS, doubling up to this. */
const AUDIT_RETRY_LONGEST_MS = 2000;
const DONE: Promise<void> = Promise.resolve();
/** Audit spill files are `<database file name>.audit-spill-<ms>-<random>.json`, next to the database. */
const SPILL_INFIX = '.audit-spill-';

/** An audit entry waiting to be written; `at` is the ISO text it is written with. */

/** The spill file's content: a format marker and the entries, `at` as ISO text. */
interface AuditSpill {
  medfitAuditSpill: 1;
  entries: Array<Omit<AuditRecord, 'id'>>;
}

/**
 * The SQLite store. Every operation runs synchronously on the calling thread (better-sqlite3), but
 * never waits there for a lock: the connection's busy timeout is 0 unless asked otherwise, and an
 * operation that finds the store busy is retried on timers for `retryMs` before it fails with
 * `Errors.unavailable`. A store that cannot work (I/O error, disk full, read-only, corrupt) fails
 * at once with `Errors.unavailable`; other errors are passed on unchanged.
 */
class SqliteStore implements MetadataStore {
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly auditBuffer = new Map<string, PendingAudit>();
  /** Key id → when it was last used, waiting to be written with the next audit flush. */
  private readonly keyUses = new Map<string, string>();
  private auditTimer: NodeJS.Timeout | undefined;
  /** Audit flushes that failed in a row (0 when the last one wrote). */
  private auditFailures = 0;
  private closing: Promise<void> | undefined;
  private readonly retryMs: number;
  private readonly closeRetryMs: number;

  constructor(
    private readonly db: Database.Database,
    private readonly path: string,
    private readonly options: SqliteStoreOptions,
  ) {
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.closeRetryMs = options.closeRetryMs ?? DEFAULT_CLOSE_RETRY_MS;
  }

  /** Prepared statements are cached: preparing is most of a small query's cost. */
  private q(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** Reports through the `log` option; a failing logger never breaks the store. */
  private log(level: 'info' | 'warn' | 'error', message: string, e?: unknown): void {
    try {
      const code = sqliteCode(e) ?? (e instanceof MedfitError ? e.code : undefined);
      this.options.log?.(level, message, code !== undefined ? { code } : {});
    } catch {
      /* nothing better to do */
    }
  }

  /**
   * Runs one operation (a statement or a transaction). The first try costs nothing extra; if the
   * store is busy, it is tried again after 5, 10, 20 ... 200 ms until `retryMs` have passed.
   */
  private run<T>(op: () => T): Promise<T> {
    if (!this.db.open) return Promise.reject(Errors.unavailable('the metadata store is closed'));
    try {
      return Promise.resolve(op());
    } catch (e) {
      return this.retry(op, e);
    }
  }

  private async retry<T>(op: () => T, first: unknown): Promise<T> {
    const deadline = performance.now() + this.retryMs;
    let e = first;
    for (let attempt = 0; ; attempt++) {
      const left = deadline - performance.now();
      if (!isBusy(e) || left <= 0) throw storeFailure(e) ?? e;
      await sleep(Math.min(RETRY_FIRST_MS * 2 ** attempt, RETRY_LONGEST_MS, left));
      if (!this.db.open) throw Errors.unavailable('the metadata store is closed');
      try {
        return op();
      } catch (next) {
        e = next;
      }
    }
  }

  /**
   * Reads one row of the schema table: unlike a bare `SELECT 1`, that opens a read transaction on
   * the file, so an I/O error, a corrupt file or a lock held past the retry window answers 503.
   */
  ping(): Promise<void> {
    return this.run(() => {
      this.q('SELECT 1 FROM sqlite_schema LIMIT 1').get();
    });
  }

  createProject(name: string): Promise<Project> {
    return this.run(() => {
      const p = { id: randomUUID(), name, created: now() };
      this.q('INSERT INTO projects (id, name, created) VALUES (@id, @name, @created)').run(p);
      return p;
    });
  }

  getProject(id: string): Promise<Project | undefined> {
    return this.run(() => this.q('SELECT id, name, created FROM projects WHERE id = ?').get(id) as Project | undefined);
  }

  getProjectByName(name: string): Promise<Project | undefined> {
    return this.run(() => this.q('SELECT id, name, created FROM projects WHERE name = ?').get(name) as Project | undefined);
  }

  listProjects(): Promise<Project[]> {
    return this.run(() => this.q('SELECT id, name, created FROM projects ORDER BY created').all() as Project[]);
  }

  createKey(k: Omit<ApiKeyRecord, 'created' | 'revoked' | 'lastUsed'>): Promise<ApiKeyRecord> {
    return this.run(() => {
      const rec: ApiKeyRecord = { ...k, created: now(), revoked: null, lastUsed: null };
      this.q('INSERT INTO api_keys (id, project_id, name, scopes, hash, created) VALUES (?, ?, ?, ?, ?, ?)').run(
        rec.id,
        rec.projectId,
        rec.name,
        JSON.stringify(rec.scopes),
        rec.hash,
        rec.created,
      );
      return rec;
    });
  }

  getKey(id: string): Promise<ApiKeyRecord | undefined> {
    return this.run(() => {
      const r = this.q('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
      return r && keyFromRow(r);
    });
  }

  getKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    return this.run(() => {
      const r = this.q('SELECT * FROM api_keys WHERE hash = ?').get(hash) as Row | undefined;
      return r && keyFromRow(r);
    });
  }

  listKeys(projectId?: string): Promise<ApiKeyRecord[]> {
    return this.run(() => {
      // Buffered uses first, so a key used a moment ago does not read as unused; a store that
      // refuses the write still answers the read (the flush retries on its own).
      this.flushAudit();
      const rows = (projectId ? this.q('SELECT * FROM api_keys WHERE project_id = ? ORDER BY created').all(projectId) : this.q('SELECT * FROM api_keys ORDER BY created').all()) as Row[];
      return rows.map(keyFromRow);
    });
  }

  revokeKey(id: string): Promise<boolean> {
    return this.run(() => this.q('UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL').run(now(), id).changes > 0);
  }

  revokeProjectKey(projectId: string, id: string): Promise<KeyRevocation> {
    // IMMEDIATE: the last-admin check and the update see the same keys, even across processes.
    return this.run(() =>
      this.db
        .transaction((): KeyRevocation => {
          const r = this.q('SELECT * FROM api_keys WHERE project_id = ? AND id = ?').get(projectId, id) as Row | undefined;
          if (!r) return { outcome: 'not-found' };
          const key = keyFromRow(r);
          if (key.revoked !== null) return { outcome: 'already-revoked', key };
          if (key.scopes.includes('admin')) {
            const active = (this.q('SELECT * FROM api_keys WHERE project_id = ? AND revoked IS NULL').all(projectId) as Row[]).map(keyFromRow);
            if (!active.some((k) => k.id !== id && k.scopes.includes('admin'))) return { outcome: 'last-admin', key };
          }
          const revoked = now();
          this.q('UPDATE api_keys SET revoked = ? WHERE project_id = ? AND id = ?').run(revoked, projectId, id);
          return { outcome: 'revoked', key: { ...key, revoked } };
        })
        .immediate(),
    );
  }

  /** Costs a map entry: the uses are written by the audit flush, one update per key. */
  touchKey(id: string): Promise<void> {
    this.keyUses.set(id, new Date().toISOString());
    this.auditTimer ??= setTimeout(() => this.flushAudit(), AUDIT_FLUSH_MS).unref();
    return DONE;
  }

  countKeys(): Promise<number> {
    return this.run(() => (this.q('SELECT COUNT(*) AS n FROM api_keys').get() as { n: number }).n);
  }

  createDataset(d: Omit<DatasetRecord, 'created'>): Promise<DatasetRecord> {
    return this.run(() => {
      const rec: DatasetRecord = { ...d, created: now() };
      this.q(
        'INSERT INTO datasets (id, project_id, name, file, format, rows, bytes, sha256, columns, sidecars, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(rec.id, rec.projectId, rec.name, rec.file, rec.format, rec.rows, rec.bytes, rec.sha256, JSON.stringify(rec.columns), rec.sidecars ? JSON.stringify(rec.sidecars) : null, rec.created);
      return rec;
    });
  }

  getDataset(projectId: string, id: string): Promise<DatasetRecord | undefined> {
    return this.run(() => {
      const r = this.q('SELECT * FROM datasets WHERE project_id = ? AND id = ?').get(projectId, id) as Row | undefined;
      return r && datasetFromRow(r);
    });
  }

  listDatasets(projectId: string): Promise<DatasetRecord[]> {
    return this.run(() => (this.q('SELECT * FROM datasets WHERE project_id = ? ORDER BY created').all(projectId) as Row[]).map(datasetFromRow));
  }

  deleteDataset(projectId: string, id: string): Promise<boolean> {
    return this.run(() => this.q('DELETE FROM datasets WHERE project_id = ? AND id = ?').run(projectId, id).changes > 0);
  }

  createJob(j: Pick<JobRecord, 'id' | 'projectId' | 'datasetId' | 'name' | 'spec'>): Promise<JobRecord> {
    return this.run((): JobRecord => {
      const created = now();
      this.q("INSERT INTO jobs (id, project_id, dataset_id, name, spec, status, created) VALUES (?, ?, ?, ?, ?, 'queued', ?)").run(
        j.id,
        j.projectId,
        j.datasetId,
        j.name,
        JSON.stringify(j.spec),
        created,
      );
      return { ...j, status: 'queued', progress: 0, stage: null, error: null, modelVersion: null, created, started: null, finished: null };
    });
  }

  getJob(projectId: string, id: string): Promise<JobRecord | undefined> {
    return this.run(() => {
      const r = this.q('SELECT * FROM jobs WHERE project_id = ? AND id = ?').get(projectId, id) as Row | undefined;
      return r && jobFromRow(r);
    });
  }

  listJobs(projectId: string): Promise<JobRecord[]> {
    return this.run(() => (this.q('SELECT * FROM jobs WHERE project_id = ? ORDER BY created').all(projectId) as Row[]).map(jobFromRow));
  }

  updateJob(id: string, patch: Partial<Pick<JobRecord, 'status' | 'progress' | 'stage' | 'error' | 'modelVersion' | 'started' | 'finished'>>): Promise<void> {
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      sets.push(`${JOB_COLUMNS[k]} = ?`);
      values.push(k === 'error' ? (v === null ? null : JSON.stringify(v)) : v);
    }
    if (!sets.length) return DONE;
    return this.run(() => {
      this.q(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
    });
  }

  countJobsByStatus(): Promise<Record<JobStatus, number>> {
    return this.run(() => {
      const counts: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const r of this.q('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as { status: JobStatus; n: number }[]) counts[r.status] = r.n;
      return counts;
    });
  }

  jobsWithStatus(statuses: JobStatus[]): Promise<JobRecord[]> {
    return this.run(() => {
      const rows = this.db.prepare(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => '?').join(',')}) ORDER BY created`).all(...statuses) as Row[];
      return rows.map(jobFromRow);
    });
  }

  createModelVersion(v: Omit<ModelVersionRecord, 'version' | 'created' | 'stage'>): Promise<ModelVersionRecord> {
    // Number and insert in one transaction so two jobs finishing together never share a version.
    // IMMEDIATE takes the write lock first: a read that later wants to write could otherwise fail
    // half-way when another connection wrote in between.
    return this.run(() =>
      this.db.transaction(() => {
        const r = this.q('SELECT MAX(version) AS v FROM model_versions WHERE project_id = ? AND name = ?').get(v.projectId, v.name) as { v: number | null };
        const rec: ModelVersionRecord = { ...v, version: (r.v ?? 0) + 1, stage: 'none', created: now() };
        this.q(
          'INSERT INTO model_versions (project_id, name, version, stage, source, family, task, dir, job_id, dataset_id, dataset_sha256, metrics, files_sha256, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        ).run(rec.projectId, rec.name, rec.version, rec.stage, rec.source, rec.family, rec.task, rec.dir, rec.jobId, rec.datasetId, rec.datasetSha256, JSON.stringify(rec.metrics), rec.filesSha256 ?? null, rec.created);
        return rec;
      }).immediate(),
    );
  }

  getModelVersion(projectId: string, name: string, version: number): Promise<ModelVersionRecord | undefined> {
    return this.run(() => {
      const r = this.q('SELECT * FROM model_versions WHERE project_id = ? AND name = ? AND version = ?').get(projectId, name, version) as Row | undefined;
      return r && versionFromRow(r);
    });
  }

  listModelVersions(projectId: string, name?: string): Promise<ModelVersionRecord[]> {
    return this.run(() => {
      const rows = (
        name === undefined
          ? this.q('SELECT * FROM model_versions WHERE project_id = ? ORDER BY name, version').all(projectId)
          : this.q('SELECT * FROM model_versions WHERE project_id = ? AND name = ? ORDER BY version').all(projectId, name)
      ) as Row[];
      return rows.map(versionFromRow);
    });
  }

  setStage(projectId: string, name: string, version: number, stage: Stage): Promise<ModelVersionRecord | undefined> {
    return this.run(() =>
      this.db.transaction(() => {
        if (stage === 'production') {
          this.q("UPDATE model_versions SET stage = 'archived' WHERE project_id = ? AND name = ? AND stage = 'production' AND version != ?").run(projectId, name, version);
        }
        const changed = this.q('UPDATE model_versions SET stage = ? WHERE project_id = ? AND name = ? AND version = ?').run(stage, projectId, name, version).changes;
        if (!changed) return undefined;
        return versionFromRow(this.q('SELECT * FROM model_versions WHERE project_id = ? AND name = ? AND version = ?').get(projectId, name, version) as Row);
      }).immediate(),
    );
  }

  /**
   * Audit entries are buffered and written in one transaction per AUDIT_FLUSH_MS (or once
   * AUDIT_BATCH distinct entries wait). Identical requests inside one window (same key, action,
   * resource and status: a client predicting in a loop) become one entry with `requests` counting
   * them and `rows` summed: a row per prediction cost SQLite a tenth of a small prediction's CPU.
   *
   * Entries leave the buffer only once the transaction that writes them has committed. While the
   * store refuses (another process holds the lock, the disk is full) they stay, identical ones
   * keep folding together (so memory stays bounded by the distinct entries), and the flush is
   * tried again with a growing delay. Readers flush first, so the trail is complete whenever it
   * is read; `close` writes what is left, or keeps it in a file that the next open imports. Only
   * a crash of the process can lose entries: at most the last AUDIT_FLUSH_MS of them, or those
   * that waited for a store that refused.
   */
  audit(a: Omit<AuditRecord, 'id' | 'at' | 'requests'>): Promise<void> {
    if (foldAudit(this.auditBuffer, a)) {
      // A full batch is written at once, unless the store is refusing: then the timer's backoff rules.
      if (this.auditBuffer.size >= AUDIT_BATCH && this.auditFailures === 0) this.flushAudit();
      else this.auditTimer ??= setTimeout(() => this.flushAudit(), AUDIT_FLUSH_MS).unref();
    }
    // Not an async function: one shared settled promise instead of a new one per prediction.
    return DONE;
  }

  /** The timer's flush. It never throws: a failure keeps the entries and schedules another try. */
  private flushAudit(): void {
    if (this.auditTimer) clearTimeout(this.auditTimer);
    this.auditTimer = undefined;
    if (!this.db.open || (this.auditBuffer.size === 0 && this.keyUses.size === 0)) return;
    try {
      this.writeAudit();
    } catch (e) {
      this.auditFailures++;
      if (this.auditFailures === 1) this.log('warn', `${this.auditBuffer.size} audit entries could not be written yet; they are kept and retried`, e);
      const delay = Math.min(AUDIT_FLUSH_MS * 2 ** this.auditFailures, AUDIT_RETRY_LONGEST_MS);
      this.auditTimer = setTimeout(() => this.flushAudit(), delay).unref();
    }
  }

  /** Writes every buffered entry (and key use) in one transaction and empties the buffers once it committed; throws what the store threw. */
  private writeAudit(): void {
    if (this.auditBuffer.size === 0 && this.keyUses.size === 0) return;
    this.insertAudit([...this.auditBuffer.values()], this.keyUses);
    this.auditBuffer.clear();
    this.keyUses.clear();
    if (this.auditFailures > 0) {
      this.log('info', `audit entries written after ${this.auditFailures} failed attempt(s)`);
      this.auditFailures = 0;
    }
  }

  /**
   * Inserts audit entries and moves each key's `last_used` forward to its newest use among them
   * and `uses`: every audited action (a V2 inference answered before Fastify, an MQTT message)
   * is a use of its key without a call of its own.
   */
  private insertAudit(entries: Array<Omit<AuditRecord, 'id'>>, uses: ReadonlyMap<string, string> = new Map()): void {
    const latest = new Map(uses);
    for (const e of entries) {
      const seen = latest.get(e.keyId);
      if (seen === undefined || seen < e.at) latest.set(e.keyId, e.at);
    }
    const insert = this.q('INSERT INTO audit (project_id, key_id, action, resource, rows, status, at, requests) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const touch = this.q('UPDATE api_keys SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)');
    this.db
      .transaction(() => {
        for (const e of entries) insert.run(e.projectId, e.keyId, e.action, e.resource, e.rows, e.status, e.at, e.requests);
        for (const [id, at] of latest) touch.run(at, id, at);
      })
      .immediate();
  }

  listAudit(projectId: string, query: AuditQuery = {}): Promise<AuditRecord[]> {
    // Each filter adds a condition the indexes on (project_id, action, id), (project_id, key_id,
    // id) and (project_id, at) can answer; a page is never filtered after it was read, so a
    // filtered page is as full as `limit` allows. At most 16 statement shapes are cached.
    const where = ['project_id = ?', 'id < ?'];
    const values: unknown[] = [projectId, query.before ?? Number.MAX_SAFE_INTEGER];
    const add = (sql: string, value: unknown) => {
      where.push(sql);
      values.push(value);
    };
    if (query.action !== undefined) add('action = ?', query.action);
    if (query.keyId !== undefined) add('key_id = ?', query.keyId);
    if (query.since !== undefined) add('at >= ?', query.since);
    if (query.until !== undefined) add('at < ?', query.until);
    // The flush is part of the operation: if the buffered entries cannot be written, the trail
    // would be incomplete, so the read fails (503) rather than answer without them.
    return this.run(() => {
      this.writeAudit();
      const rows = this.q(`SELECT * FROM audit WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`).all(...values, query.limit ?? 100) as Row[];
      return rows.map(auditFromRow);
    });
  }

  /**
   * Writes the buffered audit entries, trying for `closeRetryMs` while the store refuses; if it
   * still does, keeps them in a spill file next to the database (written atomically), which the
   * next open imports. Then closes the connection.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    if (!this.db.open) return;
    const deadline = performance.now() + this.closeRetryMs;
    let failure: unknown;
    for (let attempt = 0; ; attempt++) {
      if (this.auditTimer) clearTimeout(this.auditTimer);
      this.auditTimer = undefined;
      try {
        this.writeAudit();
        failure = undefined;
        break;
      } catch (e) {
        failure = e;
        const left = deadline - performance.now();
        if (left <= 0) break;
        await sleep(Math.min(AUDIT_FLUSH_MS * 2 ** attempt, 500, left));
      }
    }
    try {
      if (failure !== undefined) this.spillAudit(failure);
    } finally {
      this.db.close();
    }
  }

  private spillAudit(cause: unknown): void {
    const n = this.auditBuffer.size;
    if (n === 0) return;
    const spill: AuditSpill = { medfitAuditSpill: 1, entries: [...this.auditBuffer.values()] };
    const file = join(dirname(this.path), `${basename(this.path)}${SPILL_INFIX}${Date.now()}-${randomBytes(4).toString('hex')}.json`);
    try {
      writeFileAtomic(file, JSON.stringify(spill));
    } catch (e) {
      this.log('error', `${n} audit entries could neither be written nor kept in a file at close; they are lost`, e);
      throw Errors.unavailable(`${n} audit entries could neither be written to the metadata store nor kept next to it`);
    }
    this.auditBuffer.clear();
    this.log('warn', `${n} audit entries could not be written at close; they are kept next to the database and imported at the next start`, cause);
  }

  /**
   * Imports the audit entries that earlier runs spilled at close, each file in one transaction,
   * then removes the file. A file that cannot be imported now stays for the next open. A crash
   * after the commit and before the removal would leave a file already imported: its last entry
   * (same key, action, resource, status, time and count) is looked for first, so it is skipped.
   */
  importAuditSpills(): void {
    const dir = dirname(this.path);
    const prefix = `${basename(this.path)}${SPILL_INFIX}`;
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.startsWith(prefix) && n.endsWith('.json')).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const file = join(dir, name);
      let entries: Array<Omit<AuditRecord, 'id'>>;
      try {
        entries = parseSpill(readFileSync(file, 'utf8'));
      } catch {
        this.log('error', 'an audit spill file next to the database cannot be read; it is left in place');
        continue;
      }
      try {
        const last = entries.at(-1);
        const imported =
          last !== undefined &&
          this.q('SELECT 1 FROM audit WHERE project_id = ? AND key_id = ? AND action = ? AND resource IS ? AND status = ? AND at = ? AND requests = ? AND rows IS ? LIMIT 1').get(
            last.projectId,
            last.keyId,
            last.action,
            last.resource,
            last.status,
            last.at,
            last.requests,
            last.rows,
          ) !== undefined;
        if (!imported) this.insertAudit(entries);
      } catch (e) {
        this.log('warn', 'audit entries kept from an earlier run could not be imported now; they will be at the next start', e);
        return;
      }
      rmSync(file, { force: true });
      this.log('info', `imported ${entries.length} audit entries kept from an earlier run`);
    }
  }
}

/** The entries of an audit spill file; throws when it is not one. */
function parseSpill(text: string): Array<Omit<AuditRecord, 'id'>> {
  const spill = JSON.parse(text) as Partial<AuditSpill>;
  if (spill.medfitAuditSpill !== 1 || !Array.isArray(spill.entries)) throw new Error('not an audit spill file');
  const str = (v: unknown) => typeof v === 'string';
  const int = (v: unknown) => Number.isSafeInteger(v);
  for (const e of spill.entries) {
    const ok =
      str(e.projectId) && str(e.keyId) && str(e.action) && (e.resource === null || str(e.resource)) && (e.rows === null || int(e.rows)) && int(e.status) && str(e.at) && int(e.requests);
    if (!ok) throw new Error('not an audit spill file');
  }
  return spill.entries;
}
