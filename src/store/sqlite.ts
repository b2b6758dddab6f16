import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { Errors } from '../core/index.js';
import type {
  ApiKeyRecord,
  AuditRecord,
  DatasetRecord,
  JobRecord,
  JobStatus,
  MetadataStore,
  ModelVersionRecord,
  Project,
  Scope,
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
];

type Row = Record<string, unknown>;
const now = () => new Date().toISOString();

/** Opens (creating and migrating as needed) the SQLite metadata store at `path`. */
export function openSqliteStore(path: string): MetadataStore {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw Errors.usage(`cannot open the metadata database ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // WAL lets readers (predictions, listings) proceed while a job's progress is being written.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    db.close();
    throw Errors.usage(`${path} was written by a newer medfit (schema ${version}, this one knows ${MIGRATIONS.length})`);
  }
  db.transaction(() => {
    for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  })();
  return new SqliteStore(db);
}

/** Audit entries are written at most this long after the request, or sooner in batches of AUDIT_BATCH. */
const AUDIT_FLUSH_MS = 50;
const AUDIT_BATCH = 256;
const DONE: Promise<void> = Promise.resolve();

class SqliteStore implements MetadataStore {
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly auditBuffer = new Map<string, Omit<AuditRecord, 'id' | 'at'> & { at: number }>();
  private auditTimer: NodeJS.Timeout | undefined;

  constructor(private readonly db: Database.Database) {}

  /** Prepared statements are cached: preparing is most of a small query's cost. */
  private q(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  async createProject(name: string): Promise<Project> {
    const p = { id: randomUUID(), name, created: now() };
    this.q('INSERT INTO projects (id, name, created) VALUES (@id, @name, @created)').run(p);
    return p;
  }

  async getProjectByName(name: string): Promise<Project | undefined> {
    return this.q('SELECT id, name, created FROM projects WHERE name = ?').get(name) as Project | undefined;
  }

  async listProjects(): Promise<Project[]> {
    return this.q('SELECT id, name, created FROM projects ORDER BY created').all() as Project[];
  }

  async createKey(k: Omit<ApiKeyRecord, 'created' | 'revoked'>): Promise<ApiKeyRecord> {
    const rec: ApiKeyRecord = { ...k, created: now(), revoked: null };
    this.q('INSERT INTO api_keys (id, project_id, name, scopes, hash, created) VALUES (?, ?, ?, ?, ?, ?)').run(
      rec.id,
      rec.projectId,
      rec.name,
      JSON.stringify(rec.scopes),
      rec.hash,
      rec.created,
    );
    return rec;
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const r = this.q('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
    return r && keyFromRow(r);
  }

  async getKeyByHash(hash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.q('SELECT * FROM api_keys WHERE hash = ?').get(hash) as Row | undefined;
    return r && keyFromRow(r);
  }

  async listKeys(projectId?: string): Promise<ApiKeyRecord[]> {
    const rows = (projectId ? this.q('SELECT * FROM api_keys WHERE project_id = ? ORDER BY created').all(projectId) : this.q('SELECT * FROM api_keys ORDER BY created').all()) as Row[];
    return rows.map(keyFromRow);
  }

  async revokeKey(id: string): Promise<boolean> {
    return this.q('UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL').run(now(), id).changes > 0;
  }

  async countKeys(): Promise<number> {
    return (this.q('SELECT COUNT(*) AS n FROM api_keys').get() as { n: number }).n;
  }

  async createDataset(d: Omit<DatasetRecord, 'created'>): Promise<DatasetRecord> {
    const rec: DatasetRecord = { ...d, created: now() };
    this.q(
      'INSERT INTO datasets (id, project_id, name, file, format, rows, bytes, sha256, columns, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(rec.id, rec.projectId, rec.name, rec.file, rec.format, rec.rows, rec.bytes, rec.sha256, JSON.stringify(rec.columns), rec.created);
    return rec;
  }

  async getDataset(projectId: string, id: string): Promise<DatasetRecord | undefined> {
    const r = this.q('SELECT * FROM datasets WHERE project_id = ? AND id = ?').get(projectId, id) as Row | undefined;
    return r && datasetFromRow(r);
  }

  async listDatasets(projectId: string): Promise<DatasetRecord[]> {
    return (this.q('SELECT * FROM datasets WHERE project_id = ? ORDER BY created').all(projectId) as Row[]).map(datasetFromRow);
  }

  async deleteDataset(projectId: string, id: string): Promise<boolean> {
    return this.q('DELETE FROM datasets WHERE project_id = ? AND id = ?').run(projectId, id).changes > 0;
  }

  async createJob(j: Pick<JobRecord, 'id' | 'projectId' | 'datasetId' | 'name' | 'spec'>): Promise<JobRecord> {
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
  }

  async getJob(projectId: string, id: string): Promise<JobRecord | undefined> {
    const r = this.q('SELECT * FROM jobs WHERE project_id = ? AND id = ?').get(projectId, id) as Row | undefined;
    return r && jobFromRow(r);
  }

  async listJobs(projectId: string): Promise<JobRecord[]> {
    return (this.q('SELECT * FROM jobs WHERE project_id = ? ORDER BY created').all(projectId) as Row[]).map(jobFromRow);
  }

  async updateJob(id: string, patch: Partial<Pick<JobRecord, 'status' | 'progress' | 'stage' | 'error' | 'modelVersion' | 'started' | 'finished'>>): Promise<void> {
    const cols: Record<string, string> = { status: 'status', progress: 'progress', stage: 'stage', error: 'error', modelVersion: 'model_version', started: 'started', finished: 'finished' };
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      sets.push(`${cols[k]} = ?`);
      values.push(k === 'error' ? (v === null ? null : JSON.stringify(v)) : v);
    }
    if (sets.length) this.q(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
  }

  async countJobsByStatus(): Promise<Record<JobStatus, number>> {
    const counts: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of this.q('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as { status: JobStatus; n: number }[]) counts[r.status] = r.n;
    return counts;
  }

  async jobsWithStatus(statuses: JobStatus[]): Promise<JobRecord[]> {
    const rows = this.db.prepare(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => '?').join(',')}) ORDER BY created`).all(...statuses) as Row[];
    return rows.map(jobFromRow);
  }

  async nextModelVersion(projectId: string, name: string): Promise<number> {
    const r = this.q('SELECT MAX(version) AS v FROM model_versions WHERE project_id = ? AND name = ?').get(projectId, name) as { v: number | null };
    return (r.v ?? 0) + 1;
  }

  async createModelVersion(v: Omit<ModelVersionRecord, 'version' | 'created' | 'stage'>): Promise<ModelVersionRecord> {
    // Number and insert in one transaction so two jobs finishing together never share a version.
    return this.db.transaction(() => {
      const r = this.q('SELECT MAX(version) AS v FROM model_versions WHERE project_id = ? AND name = ?').get(v.projectId, v.name) as { v: number | null };
      const rec: ModelVersionRecord = { ...v, version: (r.v ?? 0) + 1, stage: 'none', created: now() };
      this.q(
        'INSERT INTO model_versions (project_id, name, version, stage, source, family, task, dir, job_id, dataset_id, dataset_sha256, metrics, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(rec.projectId, rec.name, rec.version, rec.stage, rec.source, rec.family, rec.task, rec.dir, rec.jobId, rec.datasetId, rec.datasetSha256, JSON.stringify(rec.metrics), rec.created);
      return rec;
    })();
  }

  async getModelVersion(projectId: string, name: string, version: number): Promise<ModelVersionRecord | undefined> {
    const r = this.q('SELECT * FROM model_versions WHERE project_id = ? AND name = ? AND version = ?').get(projectId, name, version) as Row | undefined;
    return r && versionFromRow(r);
  }

  async listModelVersions(projectId: string, name?: string): Promise<ModelVersionRecord[]> {
    const rows = (
      name === undefined
        ? this.q('SELECT * FROM model_versions WHERE project_id = ? ORDER BY name, version').all(projectId)
        : this.q('SELECT * FROM model_versions WHERE project_id = ? AND name = ? ORDER BY version').all(projectId, name)
    ) as Row[];
    return rows.map(versionFromRow);
  }

  async setStage(projectId: string, name: string, version: number, stage: Stage): Promise<ModelVersionRecord | undefined> {
    return this.db.transaction(() => {
      if (stage === 'production') {
        this.q("UPDATE model_versions SET stage = 'archived' WHERE project_id = ? AND name = ? AND stage = 'production' AND version != ?").run(projectId, name, version);
      }
      const changed = this.q('UPDATE model_versions SET stage = ? WHERE project_id = ? AND name = ? AND version = ?').run(stage, projectId, name, version).changes;
      if (!changed) return undefined;
      return versionFromRow(this.q('SELECT * FROM model_versions WHERE project_id = ? AND name = ? AND version = ?').get(projectId, name, version) as Row);
    })();
  }

  /**
   * Audit entries are buffered and written in one transaction per AUDIT_FLUSH_MS (or once
   * AUDIT_BATCH distinct entries wait). Identical requests inside one window (same key, action,
   * resource and status: a client predicting in a loop) become one entry with `requests` counting
   * them and `rows` summed: a row per prediction cost SQLite a tenth of a small prediction's CPU.
   * Readers and `close` flush first, so the trail is complete whenever it is read; a crash can
   * lose at most the last AUDIT_FLUSH_MS of entries.
   */
  audit(a: Omit<AuditRecord, 'id' | 'at' | 'requests'>): Promise<void> {
    const key = `${a.projectId}\u0000${a.keyId}\u0000${a.action}\u0000${a.resource ?? ''}\u0000${a.status}`;
    const pending = this.auditBuffer.get(key);
    if (pending) {
      pending.requests++;
      if (a.rows !== null) pending.rows = (pending.rows ?? 0) + a.rows;
    } else {
      this.auditBuffer.set(key, { ...a, at: Date.now(), requests: 1 });
      if (this.auditBuffer.size >= AUDIT_BATCH) this.flushAudit();
      else this.auditTimer ??= setTimeout(() => this.flushAudit(), AUDIT_FLUSH_MS).unref();
    }
    // Not an async function: one shared settled promise instead of a new one per prediction.
    return DONE;
  }

  private flushAudit(): void {
    if (this.auditTimer) clearTimeout(this.auditTimer);
    this.auditTimer = undefined;
    if (this.auditBuffer.size === 0 || !this.db.open) return;
    const batch = [...this.auditBuffer.values()];
    this.auditBuffer.clear();
    const insert = this.q('INSERT INTO audit (project_id, key_id, action, resource, rows, status, at, requests) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const e of batch) insert.run(e.projectId, e.keyId, e.action, e.resource, e.rows, e.status, new Date(e.at).toISOString(), e.requests);
    })();
  }

  async listAudit(projectId: string, opts: { limit?: number; before?: number } = {}): Promise<AuditRecord[]> {
    this.flushAudit();
    const rows = this.q('SELECT * FROM audit WHERE project_id = ? AND id < ? ORDER BY id DESC LIMIT ?').all(projectId, opts.before ?? Number.MAX_SAFE_INTEGER, opts.limit ?? 100) as Row[];
    return rows.map((r) => ({
      id: r['id'] as number,
      projectId: r['project_id'] as string,
      keyId: r['key_id'] as string,
      action: r['action'] as string,
      resource: r['resource'] as string | null,
      rows: r['rows'] as number | null,
      status: r['status'] as number,
      at: r['at'] as string,
      requests: r['requests'] as number,
    }));
  }

  async close(): Promise<void> {
    this.flushAudit();
    if (this.db.open) this.db.close();
  }
}

function keyFromRow(r: Row): ApiKeyRecord {
  return {
    id: r['id'] as string,
    projectId: r['project_id'] as string,
    name: r['name'] as string,
    scopes: JSON.parse(r['scopes'] as string) as Scope[],
    hash: r['hash'] as string,
    created: r['created'] as string,
    revoked: r['revoked'] as string | null,
  };
}

function datasetFromRow(r: Row): DatasetRecord {
  return {
    id: r['id'] as string,
    projectId: r['project_id'] as string,
    name: r['name'] as string,
    file: r['file'] as string,
    format: r['format'] as DatasetRecord['format'],
    rows: r['rows'] as number,
    bytes: r['bytes'] as number,
    sha256: r['sha256'] as string,
    columns: JSON.parse(r['columns'] as string) as DatasetRecord['columns'],
    created: r['created'] as string,
  };
}

function jobFromRow(r: Row): JobRecord {
  return {
    id: r['id'] as string,
    projectId: r['project_id'] as string,
    datasetId: r['dataset_id'] as string,
    name: r['name'] as string,
    spec: JSON.parse(r['spec'] as string) as Record<string, unknown>,
    status: r['status'] as JobStatus,
    progress: r['progress'] as number,
    stage: r['stage'] as string | null,
    error: r['error'] ? (JSON.parse(r['error'] as string) as JobRecord['error']) : null,
    modelVersion: r['model_version'] as number | null,
    created: r['created'] as string,
    started: r['started'] as string | null,
    finished: r['finished'] as string | null,
  };
}

function versionFromRow(r: Row): ModelVersionRecord {
  return {
    projectId: r['project_id'] as string,
    name: r['name'] as string,
    version: r['version'] as number,
    stage: r['stage'] as Stage,
    source: r['source'] as ModelVersionRecord['source'],
    family: r['family'] as string,
    task: r['task'] as string,
    dir: r['dir'] as string,
    jobId: r['job_id'] as string | null,
    datasetId: r['dataset_id'] as string | null,
    datasetSha256: r['dataset_sha256'] as string | null,
    metrics: JSON.parse(r['metrics'] as string) as Record<string, unknown>,
    created: r['created'] as string,
  };
}
