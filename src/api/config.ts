import { resolve } from 'node:path';
import { Errors } from '../core/index.js';
import { deidKey, type DeidKey } from '../privacy/index.js';
import { trainThreads } from '../models/index.js';
import { manifestKeyProblem } from '../registry/index.js';
import { UPLOAD_CHECK_LIMITS, type UploadCheckLimits } from '../serve/index.js';
import type { StorageConfig } from '../store/index.js';

/** What a process does: `api` answers requests and never trains, `worker` trains and serves only its probes, `all` both (the embedded default). */
export type ServerRole = 'api' | 'worker' | 'all';
export const SERVER_ROLES: readonly ServerRole[] = ['api', 'worker', 'all'];

/**
 * Every environment variable the server reads (the deployment files are checked against this
 * list, so a manifest cannot set a variable that nothing reads).
 */
export const CONFIG_VARIABLES = [
  'MEDFIT_HOST', 'MEDFIT_PORT', 'MEDFIT_DATA_DIR', 'MEDFIT_ROLE', 'MEDFIT_LOG_LEVEL',
  'MEDFIT_DATABASE_URL', 'MEDFIT_DATABASE_SCHEMA', 'MEDFIT_DATABASE_POOL', 'MEDFIT_DATABASE_STATEMENT_TIMEOUT_MS',
  'MEDFIT_REDIS_URL', 'MEDFIT_REDIS_PREFIX', 'MEDFIT_JOB_STALL_SECONDS', 'MEDFIT_JOB_MAX_STALLS',
  'MEDFIT_STORAGE_URL', 'MEDFIT_CACHE_MB', 'MEDFIT_S3_ENDPOINT', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
  'MEDFIT_MAX_UPLOAD_MB', 'MEDFIT_MAX_BODY_MB', 'MEDFIT_TRAIN_CONCURRENCY', 'MEDFIT_TRAIN_THREADS', 'MEDFIT_MAX_BUDGET_SECONDS', 'MEDFIT_MODEL_CACHE',
  'MEDFIT_ADMIN_KEY', 'MEDFIT_MANIFEST_KEY', 'MEDFIT_DEID_KEY', 'MEDFIT_UPLOAD_CHECK_SECONDS', 'MEDFIT_UPLOAD_CHECK_MB',
  'MEDFIT_MQTT_URL', 'MEDFIT_MQTT_MODEL', 'MEDFIT_MQTT_USERNAME', 'MEDFIT_MQTT_PASSWORD',
  'MEDFIT_PUBLIC_URL', 'MEDFIT_CDS_FHIR_SERVERS', 'MEDFIT_DEBUG',
] as const;

/** Server configuration, from `MEDFIT_*` variables overridden by CLI flags. */
export interface ServerConfig {
  host: string;
  port: number;
  /**
   * Where the SQLite database, datasets and model directories live; with PostgreSQL and another
   * storage URL, this process's own scratch space and its cache of datasets and models.
   */
  dataDir: string;
  /** `--role`, `MEDFIT_ROLE` (default `all`). */
  role: ServerRole;
  /**
   * PostgreSQL (`MEDFIT_DATABASE_URL`, `postgres://…`; `MEDFIT_DATABASE_SCHEMA`, default
   * `public`; `MEDFIT_DATABASE_POOL` connections, default 10; `MEDFIT_DATABASE_STATEMENT_TIMEOUT_MS`,
   * default 30000). Absent: SQLite in `dataDir`.
   */
  database?: { url: string; schema: string; poolMax: number; statementTimeoutMs: number };
  /**
   * The Redis job queue and event bus (`MEDFIT_REDIS_URL`, `redis://…` or `rediss://…`; its keys
   * start with `MEDFIT_REDIS_PREFIX`, default `medfit`). A job whose worker stops answering is
   * taken back after `stallSeconds` (`MEDFIT_JOB_STALL_SECONDS`, default 30) and tried again up to
   * `maxStalls` times (`MEDFIT_JOB_MAX_STALLS`, default 2), then failed. Absent: the in-process queue.
   */
  redis?: { url: string; prefix: string; stallSeconds: number; maxStalls: number };
  /** Datasets and models (`MEDFIT_STORAGE_URL`; default `dataDir` itself). */
  storage: StorageConfig;
  /**
   * When storage is not the data directory, the most bytes of stored datasets and model
   * directories this process keeps copies of (`MEDFIT_CACHE_MB`, default 4096).
   */
  cacheBytes: number;
  /** Largest dataset upload, in bytes (413 above it). */
  maxUploadBytes: number;
  /** Largest JSON body for other routes (predictions), in bytes. */
  maxBodyBytes: number;
  /** Training jobs run at once. */
  concurrency: number;
  /**
   * The most seconds of search a job may ask for (`MEDFIT_MAX_BUDGET_SECONDS`, default 3600),
   * counted as nested cross-validation spends it (k + 1 times `budget`): one key cannot hold a
   * shared server's workers for a day.
   */
  maxBudgetSeconds: number;
  /** ONNX Runtime sessions kept loaded. */
  modelCacheSize: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
  /** Sets the first admin key when given (`MEDFIT_ADMIN_KEY`). */
  adminKey?: string;
  /**
   * Signs model manifests and upload records with HMAC-SHA256, and makes loading refuse unsigned
   * or wrongly signed ones (`MEDFIT_MANIFEST_KEY`, at least 32 characters).
   */
  manifestKey?: string;
  /** Limits of the isolated check of an uploaded model (`MEDFIT_UPLOAD_CHECK_SECONDS`, `MEDFIT_UPLOAD_CHECK_MB`). */
  uploadCheck: UploadCheckLimits;
  /**
   * The MQTT broker whose device samples are predicted (`--mqtt`, `MEDFIT_MQTT_URL`), the model
   * they go to (`--mqtt-model`, `MEDFIT_MQTT_MODEL`; default each project's newest sequence model)
   * and medfit's own credentials there (`MEDFIT_MQTT_USERNAME`, `MEDFIT_MQTT_PASSWORD`).
   */
  mqtt?: { url: string; model?: string; username?: string; password?: string };
  /**
   * The de-identification key (`MEDFIT_DEID_KEY`): FHIR imports and tables uploaded with
   * `deidentify=true` are pseudonymised and date-shifted with it. Never stored; when unset, a
   * random key for this process (`deidKeyGenerated`), so pseudonyms do not join across restarts.
   */
  deidKey: Buffer;
  deidKeyGenerated: boolean;
  /** The web app's public base URL (`MEDFIT_PUBLIC_URL`), for links in CDS Hooks cards. */
  publicUrl?: string;
  /** Origins of the FHIR servers CDS Hooks requests may have medfit read from (`MEDFIT_CDS_FHIR_SERVERS`, comma-separated). */
  cdsFhirServers: string[];
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const;

/**
 * Reads and validates the configuration once. Every problem is reported together, so a user
 * fixes a bad environment in one go rather than one variable per start.
 */
export function loadConfig(env: NodeJS.ProcessEnv, flags: Partial<Record<'host' | 'port' | 'dataDir' | 'mqtt' | 'mqttModel' | 'role', string>> = {}): ServerConfig {
  const problems: string[] = [];
  const int = (name: string, raw: string | undefined, fallback: number, min: number, max: number): number => {
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer in [${min}, ${max}] (got "${raw}")`);
      return fallback;
    }
    return n;
  };
  const level = env['MEDFIT_LOG_LEVEL'] ?? 'info';
  if (!(LEVELS as readonly string[]).includes(level)) problems.push(`MEDFIT_LOG_LEVEL must be one of ${LEVELS.join(', ')} (got "${level}")`);
  const adminKey = env['MEDFIT_ADMIN_KEY'];
  if (adminKey !== undefined && adminKey.length < 16) problems.push('MEDFIT_ADMIN_KEY must be at least 16 characters');
  const manifestKey = env['MEDFIT_MANIFEST_KEY'] || undefined;
  const keyProblem = manifestKeyProblem(manifestKey);
  if (keyProblem) problems.push(keyProblem);
  let deid: DeidKey = { key: Buffer.alloc(0), generated: true };
  try {
    deid = deidKey(env);
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  }
  // Read by every GBDT training (not kept here): a bad value is named at start with the rest, not when a job runs.
  try {
    trainThreads(env);
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  }
  const dataDir = resolve(flags.dataDir ?? env['MEDFIT_DATA_DIR'] ?? '.medfit');
  const roleRaw = flags.role ?? (env['MEDFIT_ROLE'] || 'all');
  if (!(SERVER_ROLES as readonly string[]).includes(roleRaw)) problems.push(`${flags.role !== undefined ? '--role' : 'MEDFIT_ROLE'} must be one of ${SERVER_ROLES.join(', ')} (got "${roleRaw.slice(0, 40)}")`);
  const role = ((SERVER_ROLES as readonly string[]).includes(roleRaw) ? roleRaw : 'all') as ServerRole;
  const config: ServerConfig = {
    host: flags.host ?? env['MEDFIT_HOST'] ?? '127.0.0.1',
    port: int(flags.port !== undefined ? '--port' : 'MEDFIT_PORT', flags.port ?? env['MEDFIT_PORT'], 8080, 0, 65535),
    dataDir,
    role,
    storage: { kind: 'file', dir: dataDir },
    cacheBytes: int('MEDFIT_CACHE_MB', env['MEDFIT_CACHE_MB'], 4096, 16, 10_000_000) * 1024 * 1024,
    maxUploadBytes: int('MEDFIT_MAX_UPLOAD_MB', env['MEDFIT_MAX_UPLOAD_MB'], 100, 1, 100_000) * 1024 * 1024,
    maxBodyBytes: int('MEDFIT_MAX_BODY_MB', env['MEDFIT_MAX_BODY_MB'], 10, 1, 1024) * 1024 * 1024,
    concurrency: int('MEDFIT_TRAIN_CONCURRENCY', env['MEDFIT_TRAIN_CONCURRENCY'], 1, 1, 64),
    maxBudgetSeconds: int('MEDFIT_MAX_BUDGET_SECONDS', env['MEDFIT_MAX_BUDGET_SECONDS'], 3600, 1, 86_400 * 21),
    modelCacheSize: int('MEDFIT_MODEL_CACHE', env['MEDFIT_MODEL_CACHE'], 16, 1, 10_000),
    logLevel: level as ServerConfig['logLevel'],
    deidKey: deid.key,
    deidKeyGenerated: deid.generated,
    cdsFhirServers: [],
    ...(adminKey !== undefined ? { adminKey } : {}),
    ...(manifestKey !== undefined ? { manifestKey } : {}),
    uploadCheck: {
      timeoutMs: int('MEDFIT_UPLOAD_CHECK_SECONDS', env['MEDFIT_UPLOAD_CHECK_SECONDS'], UPLOAD_CHECK_LIMITS.timeoutMs / 1000, 1, 600) * 1000,
      memoryBytes: int('MEDFIT_UPLOAD_CHECK_MB', env['MEDFIT_UPLOAD_CHECK_MB'], UPLOAD_CHECK_LIMITS.memoryBytes / (1024 * 1024), 64, 65_536) * 1024 * 1024,
    },
  };
  const mqttUrl = flags.mqtt ?? (env['MEDFIT_MQTT_URL'] || undefined);
  if (mqttUrl !== undefined) {
    if (!/^mqtts?:\/\/[^\s]+$/.test(mqttUrl) || mqttUrl.length > 2048) problems.push(`${flags.mqtt !== undefined ? '--mqtt' : 'MEDFIT_MQTT_URL'} must be an mqtt:// or mqtts:// URL`);
    const model = flags.mqttModel ?? (env['MEDFIT_MQTT_MODEL'] || undefined);
    const username = env['MEDFIT_MQTT_USERNAME'] || undefined;
    const password = env['MEDFIT_MQTT_PASSWORD'] || undefined;
    config.mqtt = { url: mqttUrl, ...(model !== undefined ? { model } : {}), ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) };
  } else if (flags.mqttModel !== undefined) problems.push('--mqtt-model needs --mqtt <url>');
  const publicUrl = env['MEDFIT_PUBLIC_URL'] || undefined;
  if (publicUrl !== undefined) {
    if (httpOrigin(publicUrl) === undefined) problems.push('MEDFIT_PUBLIC_URL must be an http(s) URL, e.g. https://medfit.example.org');
    else config.publicUrl = publicUrl;
  }
  for (const entry of (env['MEDFIT_CDS_FHIR_SERVERS'] ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const origin = httpOrigin(entry);
    if (origin === undefined) problems.push(`MEDFIT_CDS_FHIR_SERVERS: "${entry.slice(0, 100)}" is not an http(s) URL`);
    else config.cdsFhirServers.push(origin);
  }
  scaleOut(env, config, problems, int);
  // The deployment examples' placeholders are public: a secret still set to one is refused.
  for (const name of ['MEDFIT_ADMIN_KEY', 'MEDFIT_MANIFEST_KEY', 'MEDFIT_DEID_KEY']) {
    if (/^REPLACE_ME/i.test(env[name] ?? '')) problems.push(`${name} is still the example's placeholder: set a secret of your own`);
  }
  if (problems.length) throw Errors.usage(`configuration: ${problems.join('; ')}`);
  return config;
}

/**
 * Reads the database, Redis and storage settings into `config`, and refuses the combinations
 * that cannot work: processes sharing a queue must share the metadata and the files, and a
 * process that only answers requests (or only trains) needs the queue to reach the others.
 */
function scaleOut(
  env: NodeJS.ProcessEnv,
  config: ServerConfig,
  problems: string[],
  int: (name: string, raw: string | undefined, fallback: number, min: number, max: number) => number,
): void {
  const dbUrl = env['MEDFIT_DATABASE_URL'] || undefined;
  if (dbUrl !== undefined) {
    if (!/^postgres(ql)?:\/\/\S+$/.test(dbUrl) || !parses(dbUrl)) problems.push('MEDFIT_DATABASE_URL must be a postgres:// URL, e.g. postgres://medfit:secret@db:5432/medfit');
    const schema = env['MEDFIT_DATABASE_SCHEMA'] || 'public';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) problems.push('MEDFIT_DATABASE_SCHEMA must be letters, digits and _ (at most 63, not starting with a digit)');
    config.database = {
      url: dbUrl,
      schema,
      poolMax: int('MEDFIT_DATABASE_POOL', env['MEDFIT_DATABASE_POOL'], 10, 1, 1000),
      statementTimeoutMs: int('MEDFIT_DATABASE_STATEMENT_TIMEOUT_MS', env['MEDFIT_DATABASE_STATEMENT_TIMEOUT_MS'], 30_000, 100, 3_600_000),
    };
  } else if (env['MEDFIT_DATABASE_SCHEMA']) problems.push('MEDFIT_DATABASE_SCHEMA needs MEDFIT_DATABASE_URL');
  const redisUrl = env['MEDFIT_REDIS_URL'] || undefined;
  if (redisUrl !== undefined) {
    if (!/^rediss?:\/\/\S+$/.test(redisUrl) || !parses(redisUrl)) problems.push('MEDFIT_REDIS_URL must be a redis:// or rediss:// URL, e.g. redis://redis:6379');
    const prefix = env['MEDFIT_REDIS_PREFIX'] || 'medfit';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) problems.push('MEDFIT_REDIS_PREFIX must be 1 to 64 letters, digits, _, . or -');
    config.redis = {
      url: redisUrl,
      prefix,
      stallSeconds: int('MEDFIT_JOB_STALL_SECONDS', env['MEDFIT_JOB_STALL_SECONDS'], 30, 1, 3600),
      maxStalls: int('MEDFIT_JOB_MAX_STALLS', env['MEDFIT_JOB_MAX_STALLS'], 2, 0, 100),
    };
  } else if (env['MEDFIT_REDIS_PREFIX']) problems.push('MEDFIT_REDIS_PREFIX needs MEDFIT_REDIS_URL');
  const storageUrl = env['MEDFIT_STORAGE_URL'] || undefined;
  let storageOk = true;
  if (storageUrl !== undefined) {
    const storage = storageConfig(storageUrl, env);
    if (typeof storage === 'string') {
      problems.push(storage);
      storageOk = false;
    } else config.storage = storage;
  } else if (env['MEDFIT_S3_ENDPOINT']) problems.push('MEDFIT_S3_ENDPOINT needs MEDFIT_STORAGE_URL=s3://bucket/prefix');
  if (config.role !== 'all' && !config.redis) {
    problems.push(`--role ${config.role} needs MEDFIT_REDIS_URL: ${config.role === 'api' ? 'an API replica hands its jobs to workers through the Redis queue' : 'a worker takes its jobs from the Redis queue'}`);
  }
  if (config.redis) {
    // A queue shared by processes on several machines needs everything else shared as well.
    if (!config.database) problems.push('MEDFIT_REDIS_URL needs MEDFIT_DATABASE_URL: the processes that share a queue must share the metadata, and SQLite is one machine\'s file');
    if (storageUrl === undefined) problems.push('MEDFIT_REDIS_URL needs MEDFIT_STORAGE_URL: an s3:// bucket, or a file:// folder every replica and worker mounts (the data directory is this process\'s own)');
    else if (storageOk && config.storage.kind === 'file' && config.storage.dir === config.dataDir) problems.push('MEDFIT_STORAGE_URL must not be the data directory when MEDFIT_REDIS_URL is set: the data directory is each process\'s own scratch space and cache');
  }
}

const parses = (url: string): boolean => {
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
};

/** `MEDFIT_STORAGE_URL` (and `MEDFIT_S3_ENDPOINT`, `AWS_REGION`) as a storage config, or the problem. */
export function storageConfig(url: string, env: NodeJS.ProcessEnv): StorageConfig | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'MEDFIT_STORAGE_URL must be file:///absolute/path or s3://bucket/prefix';
  }
  if (u.protocol === 'file:') {
    if (u.host || u.search || u.hash || !u.pathname.startsWith('/')) return 'MEDFIT_STORAGE_URL: a file URL is file:///absolute/path (no host)';
    return { kind: 'file', dir: resolve(decodeURIComponent(u.pathname)) };
  }
  if (u.protocol !== 's3:') return `MEDFIT_STORAGE_URL must be file:///absolute/path or s3://bucket/prefix (got a ${u.protocol.replace(/:$/, '').slice(0, 20)} URL)`;
  if (u.username || u.password || u.search || u.hash) return 'MEDFIT_STORAGE_URL: an s3 URL is s3://bucket/prefix; credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY';
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return 'MEDFIT_STORAGE_URL: the bucket name must be 3 to 63 lowercase letters, digits, . or -';
  const prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((s) => s === '.' || s === '..') || /[\\\u0000-\u001f]/.test(prefix)) return 'MEDFIT_STORAGE_URL: the key prefix must not hold ., .., backslashes or control characters';
  const endpoint = env['MEDFIT_S3_ENDPOINT'] || undefined;
  if (endpoint !== undefined && (!/^https?:\/\//.test(endpoint) || !parses(endpoint))) return 'MEDFIT_S3_ENDPOINT must be an http(s) URL, e.g. http://minio:9000';
  return { kind: 's3', bucket, prefix, region: env['AWS_REGION'] || 'us-east-1', ...(endpoint !== undefined ? { endpoint } : {}) };
}

/** The origin of an http(s) URL without credentials, or undefined. */
function httpOrigin(url: string): string | undefined {
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password ? u.origin : undefined;
  } catch {
    return undefined;
  }
}
