/**
 * Rows of the metadata tables as records: one set of mappers for both stores (SQLite and
 * PostgreSQL keep the same columns, with times and JSON as text). Counts go through `Number`,
 * since PostgreSQL's driver answers BIGINT columns as strings.
 */
import type { ApiKeyRecord, AuditRecord, DatasetRecord, JobRecord, JobStatus, ModelVersionRecord, Scope, Stage } from './types.js';

/** A row as a driver returns it: column name → value. */
export type Row = Record<string, unknown>;

/** An API key's row. */
export function keyFromRow(r: Row): ApiKeyRecord {
  return {
    id: r['id'] as string,
    projectId: r['project_id'] as string,
    name: r['name'] as string,
    scopes: JSON.parse(r['scopes'] as string) as Scope[],
    hash: r['hash'] as string,
    created: r['created'] as string,
    revoked: r['revoked'] as string | null,
    lastUsed: (r['last_used'] as string | null | undefined) ?? null,
  };
}

/** A dataset's row. */
export function datasetFromRow(r: Row): DatasetRecord {
  return {
    id: r['id'] as string,
    projectId: r['project_id'] as string,
    name: r['name'] as string,
    file: r['file'] as string,
    format: r['format'] as DatasetRecord['format'],
    rows: Number(r['rows']),
    bytes: Number(r['bytes']),
    sha256: r['sha256'] as string,
    columns: JSON.parse(r['columns'] as string) as DatasetRecord['columns'],
    ...(r['sidecars'] ? { sidecars: JSON.parse(r['sidecars'] as string) as Record<string, string> } : {}),
    created: r['created'] as string,
  };
}

/** A job's row. */
export function jobFromRow(r: Row): JobRecord {
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

/** A model version's row. */
export function versionFromRow(r: Row): ModelVersionRecord {
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
    ...(r['files_sha256'] ? { filesSha256: r['files_sha256'] as string } : {}),
    created: r['created'] as string,
  };
}

/** An audit entry's row. */
export function auditFromRow(r: Row): AuditRecord {
  return {
    id: Number(r['id']),
    projectId: r['project_id'] as string,
    keyId: r['key_id'] as string,
    action: r['action'] as string,
    resource: r['resource'] as string | null,
    rows: r['rows'] === null || r['rows'] === undefined ? null : Number(r['rows']),
    status: r['status'] as number,
    at: r['at'] as string,
    requests: r['requests'] as number,
  };
}

/** The job fields `updateJob` may change, and their columns. */
export const JOB_COLUMNS: Readonly<Record<string, string>> = { status: 'status', progress: 'progress', stage: 'stage', error: 'error', modelVersion: 'model_version', started: 'started', finished: 'finished' };

/** An audit entry waiting in a store's buffer: repeats of one (project, key, action, resource, status) are folded into it. */
export type PendingAudit = Omit<AuditRecord, 'id'>;

/**
 * Adds an audit entry to a store's buffer, folded into a pending one of the same project, key,
 * action, resource and status (its requests counted, its rows summed). Returns whether it made a
 * new entry, on which the store decides when to write.
 */
export function foldAudit(buffer: Map<string, PendingAudit>, a: Omit<AuditRecord, 'id' | 'at' | 'requests'>): boolean {
  const key = `${a.projectId}\u0000${a.keyId}\u0000${a.action}\u0000${a.resource ?? ''}\u0000${a.status}`;
  const pending = buffer.get(key);
  if (pending) {
    pending.requests++;
    if (a.rows !== null) pending.rows = (pending.rows ?? 0) + a.rows;
    return false;
  }
  buffer.set(key, { ...a, at: new Date().toISOString(), requests: 1 });
  return true;
}
