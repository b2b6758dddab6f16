/**
 * The metadata store contract. The embedded implementation is SQLite (better-sqlite3, WAL); a
 * PostgreSQL one can implement the same interface, which is why every method is async even though
 * SQLite answers synchronously.
 */

/** What an API key may do. `admin` implies every other scope within its project. */
export type Scope = 'admin' | 'train' | 'predict' | 'read';
export const SCOPES: readonly Scope[] = ['admin', 'train', 'predict', 'read'];

export interface Project {
  id: string;
  name: string;
  created: string;
}

/** An API key as stored: never the secret, only its SHA-256. */
export interface ApiKeyRecord {
  id: string;
  projectId: string;
  name: string;
  scopes: Scope[];
  hash: string;
  created: string;
  revoked: string | null;
  /**
   * When the key was last used (authenticated a request, or was named by an audit entry), or
   * null if never since this was recorded. Written with the audit trail, so it may lag a request
   * by the audit flush interval and is lost with the audit entries a crash loses.
   */
  lastUsed: string | null;
}

/**
 * What revoking a key inside a project came to. `last-admin`: the key is the project's only
 * admin key that is not revoked, so it was left alone (a project without an admin key could
 * never create or revoke keys again from the API).
 */
export type KeyRevocation =
  | { outcome: 'revoked' | 'already-revoked' | 'last-admin'; key: ApiKeyRecord }
  | { outcome: 'not-found' };

/**
 * Which audit entries to read. `since`/`until` are ISO 8601 UTC instants as `toISOString` writes
 * them (`2024-05-01T00:00:00.000Z`): entries with `since <= at < until`.
 */
export interface AuditQuery {
  /** At most this many entries (default 100). */
  limit?: number;
  /** Only entries older than this id (the previous page's last id). */
  before?: number;
  /** Only this action (`model.predict`, `key.revoke`, ...). */
  action?: string;
  /** Only entries of this key id. */
  keyId?: string;
  since?: string;
  until?: string;
}

export interface DatasetColumn {
  name: string;
  type: string;
  missing: number;
}

export interface DatasetRecord {
  id: string;
  projectId: string;
  name: string;
  /** Path of the stored file, relative to the data directory. */
  file: string;
  format: 'csv' | 'json' | 'ndjson';
  rows: number;
  bytes: number;
  sha256: string;
  columns: DatasetColumn[];
  /**
   * SHA-256 of each small file kept beside the dataset's file in storage, by its suffix
   * (`.profile.json`, `.fhir.json`): what a process that fetches them checks them against.
   * Absent for datasets stored before it was recorded.
   */
  sidecars?: Record<string, string>;
  created: string;
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobRecord {
  id: string;
  projectId: string;
  datasetId: string;
  /** The model name the job registers a version of. */
  name: string;
  /** The request as accepted (target, task, model, params, cv, group, seed, ignore). */
  spec: Record<string, unknown>;
  status: JobStatus;
  progress: number;
  stage: string | null;
  error: { code: string; message: string } | null;
  modelVersion: number | null;
  created: string;
  started: string | null;
  finished: string | null;
}

export type Stage = 'none' | 'staging' | 'production' | 'archived';

export interface ModelVersionRecord {
  projectId: string;
  name: string;
  version: number;
  stage: Stage;
  source: 'trained' | 'uploaded';
  family: string;
  task: string;
  /** Model directory, relative to the data directory. */
  dir: string;
  jobId: string | null;
  datasetId: string | null;
  datasetSha256: string | null;
  metrics: Record<string, unknown>;
  /**
   * `listingSha256` of the version's directory as stored: a process that fetches the directory
   * checks it against this. Absent for versions stored before it was recorded.
   */
  filesSha256?: string;
  created: string;
}

export interface AuditRecord {
  id: number;
  projectId: string;
  keyId: string;
  action: string;
  /** The dataset, job or model version acted on (`dataset:<id>`, `model:<name>/<v>`). */
  resource: string | null;
  rows: number | null;
  status: number;
  /** When the (first of the) request(s) was answered. */
  at: string;
  /** How many identical requests (same key, action, resource, status, within 50 ms) this entry stands for; `rows` is their sum. */
  requests: number;
}

/**
 * The metadata store. Every query is scoped by project: a row of another project is never returned.
 * An operation that finds the store busy (another process holds its lock) or unable to work (I/O
 * error, disk full, read-only, a statement past its time limit) rejects with `Errors.unavailable`,
 * a 503 with Retry-After, after a short bounded retry. A write that would duplicate a unique value
 * (a project's name, a key's hash, an id) rejects with `Errors.conflict`, a 409 naming the
 * constraint, never the value. Any other rejection is a real failure.
 */
export interface MetadataStore {
  /**
   * A cheap query proving the store answers now (GET /readyz asks it): resolves when it does,
   * rejects with `Errors.unavailable` (a 503) when it cannot (closed, busy past the retry
   * window, unreachable, not answering in time). Returns no record and writes nothing.
   */
  ping(): Promise<void>;

  /** Creates a project; a name already taken is `Errors.conflict` (a 409), on every store. */
  createProject(name: string): Promise<Project>;
  getProject(id: string): Promise<Project | undefined>;
  getProjectByName(name: string): Promise<Project | undefined>;
  listProjects(): Promise<Project[]>;

  /** Records a key; an id or hash already stored is `Errors.conflict` (a 409), on every store. */
  createKey(k: Omit<ApiKeyRecord, 'created' | 'revoked' | 'lastUsed'>): Promise<ApiKeyRecord>;
  getKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** The key whose secret hashes to `hash` (SHA-256 hex of the whole presented key). */
  getKeyByHash(hash: string): Promise<ApiKeyRecord | undefined>;
  listKeys(projectId?: string): Promise<ApiKeyRecord[]>;
  /** Revokes key `id` whatever its project (the `medfit keys` command); false if there is no such active key. */
  revokeKey(id: string): Promise<boolean>;
  /**
   * Revokes key `id` of project `projectId`, unless it is the project's last active admin key;
   * the check and the revocation are one transaction, so two admins revoking each other's keys
   * at once cannot leave the project without one. A key of another project is `not-found`.
   */
  revokeProjectKey(projectId: string, id: string): Promise<KeyRevocation>;
  /**
   * Notes that key `id` was used now (`lastUsed`). Buffered and written with the audit trail,
   * never fails, costs no query on the request's path.
   */
  touchKey(id: string): Promise<void>;
  countKeys(): Promise<number>;

  createDataset(d: Omit<DatasetRecord, 'created'>): Promise<DatasetRecord>;
  getDataset(projectId: string, id: string): Promise<DatasetRecord | undefined>;
  listDatasets(projectId: string): Promise<DatasetRecord[]>;
  deleteDataset(projectId: string, id: string): Promise<boolean>;

  createJob(j: Pick<JobRecord, 'id' | 'projectId' | 'datasetId' | 'name' | 'spec'>): Promise<JobRecord>;
  getJob(projectId: string, id: string): Promise<JobRecord | undefined>;
  listJobs(projectId: string): Promise<JobRecord[]>;
  updateJob(id: string, patch: Partial<Pick<JobRecord, 'status' | 'progress' | 'stage' | 'error' | 'modelVersion' | 'started' | 'finished'>>): Promise<void>;
  /** How many jobs are in each state, across projects (metrics). */
  countJobsByStatus(): Promise<Record<JobStatus, number>>;
  /** Jobs in the given states, across projects (used at start-up to resume interrupted work). */
  jobsWithStatus(statuses: JobStatus[]): Promise<JobRecord[]>;

  /** Reserves the next version number of a model name (1, 2, ...) and records it. */
  createModelVersion(v: Omit<ModelVersionRecord, 'version' | 'created' | 'stage'>): Promise<ModelVersionRecord>;
  getModelVersion(projectId: string, name: string, version: number): Promise<ModelVersionRecord | undefined>;
  listModelVersions(projectId: string, name?: string): Promise<ModelVersionRecord[]>;
  /** Sets a version's stage; moving one to production archives the previous production version. */
  setStage(projectId: string, name: string, version: number, stage: Stage): Promise<ModelVersionRecord | undefined>;

  /** Records an audit entry; buffered, never fails, never lost while the process lives (see the SQLite store). */
  audit(a: Omit<AuditRecord, 'id' | 'at' | 'requests'>): Promise<void>;
  /**
   * The project's audit entries matching `query`, newest first (by id); writes buffered entries
   * first, and is a 503 if it cannot. The filters are part of the query (indexed), never applied
   * to a page after reading it.
   */
  listAudit(projectId: string, query?: AuditQuery): Promise<AuditRecord[]>;

  /** Writes what is buffered (or keeps it for the next open, when the store refuses) and closes. */
  close(): Promise<void>;
}
