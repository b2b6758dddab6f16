import { resolve } from 'node:path';
import { Errors } from '../core/index.js';
import { deidKey, type DeidKey } from '../privacy/index.js';
import { manifestKeyProblem } from '../registry/index.js';
import { UPLOAD_CHECK_LIMITS, type UploadCheckLimits } from '../serve/index.js';

/** Server configuration, from `MEDFIT_*` variables overridden by CLI flags. */
export interface ServerConfig {
  host: string;
  port: number;
  /** Where the SQLite database, datasets and model directories live. */
  dataDir: string;
  /** Largest dataset upload, in bytes (413 above it). */
  maxUploadBytes: number;
  /** Largest JSON body for other routes (predictions), in bytes. */
  maxBodyBytes: number;
  /** Training jobs run at once. */
  concurrency: number;
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
export function loadConfig(env: NodeJS.ProcessEnv, flags: Partial<Record<'host' | 'port' | 'dataDir' | 'mqtt' | 'mqttModel', string>> = {}): ServerConfig {
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
  const config: ServerConfig = {
    host: flags.host ?? env['MEDFIT_HOST'] ?? '127.0.0.1',
    port: int(flags.port !== undefined ? '--port' : 'MEDFIT_PORT', flags.port ?? env['MEDFIT_PORT'], 8080, 0, 65535),
    dataDir: resolve(flags.dataDir ?? env['MEDFIT_DATA_DIR'] ?? '.medfit'),
    maxUploadBytes: int('MEDFIT_MAX_UPLOAD_MB', env['MEDFIT_MAX_UPLOAD_MB'], 100, 1, 100_000) * 1024 * 1024,
    maxBodyBytes: int('MEDFIT_MAX_BODY_MB', env['MEDFIT_MAX_BODY_MB'], 10, 1, 1024) * 1024 * 1024,
    concurrency: int('MEDFIT_TRAIN_CONCURRENCY', env['MEDFIT_TRAIN_CONCURRENCY'], 1, 1, 64),
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
  if (problems.length) throw Errors.usage(`configuration: ${problems.join('; ')}`);
  return config;
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
