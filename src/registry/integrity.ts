/**
 * Integrity of the JSON documents that describe a stored model (`manifest.json`, `upload.json`).
 *
 * Without a key the document carries the SHA-256 of its own canonical JSON: an accidental or
 * careless edit is noticed, a deliberate one is not (anyone can recompute a hash). With a key
 * (`MEDFIT_MANIFEST_KEY`) it carries an HMAC-SHA256 instead, which only holders of the key can
 * produce; a server with a key then refuses unsigned documents, so nobody who can write to the
 * data directory but does not know the key can swap a model in. The algorithm is recorded in the
 * document (`integrityAlgorithm`, absent in manifests written before it existed: SHA-256).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { Errors } from '../core/index.js';

/** How a document's `integrity` was computed. */
export type IntegrityAlgorithm = 'sha256' | 'hmac-sha256';

/** Shortest signing key accepted: 32 characters, so a key is never a guessable word. */
export const MANIFEST_KEY_MIN_LENGTH = 32;

/** Where the signing key comes from, named in messages that ask for it. */
const KEY_VAR = 'MEDFIT_MANIFEST_KEY';

/** Options of every function that writes or reads a stored model's documents. */
export interface IntegrityOptions {
  /** The signing key (`MEDFIT_MANIFEST_KEY`); absent: plain SHA-256. */
  key?: string | undefined;
}

/** The fields sealing adds to a document. */
export interface Sealed {
  integrityAlgorithm?: IntegrityAlgorithm;
  integrity: string;
}

/** SHA-256 hex digest. */
export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with object keys sorted, so a digest does not depend on key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/** What is wrong with a manifest key (too short), or undefined: the one rule for the CLI and the server. */
export function manifestKeyProblem(key: string | undefined): string | undefined {
  return key !== undefined && key.length < MANIFEST_KEY_MIN_LENGTH ? `${KEY_VAR} must be at least ${MANIFEST_KEY_MIN_LENGTH} characters` : undefined;
}

/** Refuses a key that is too short (a programming error when it reaches here unchecked). */
function checkManifestKey(key: string | undefined): void {
  const problem = manifestKeyProblem(key);
  if (problem) throw Errors.usage(problem);
}

/**
 * `MEDFIT_MANIFEST_KEY` for the commands that save or load models outside the server (`medfit
 * train`, `medfit predict`), by the same rule as the server's configuration; empty means unset.
 */
export function manifestKeyFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const key = env[KEY_VAR] || undefined;
  const problem = manifestKeyProblem(key);
  if (problem) throw Errors.usage(`configuration: ${problem}`);
  return key;
}

function digest(body: unknown, algorithm: IntegrityAlgorithm, key: string | undefined): string {
  const text = canonical(body);
  return algorithm === 'hmac-sha256' ? createHmac('sha256', key!).update(text).digest('hex') : sha256(text);
}

/** `body` with `integrityAlgorithm` and `integrity` added: HMAC-SHA256 with a key, else SHA-256. */
export function seal<T extends object>(body: T, opts: IntegrityOptions = {}): T & Required<Sealed> {
  checkManifestKey(opts.key);
  const integrityAlgorithm: IntegrityAlgorithm = opts.key !== undefined ? 'hmac-sha256' : 'sha256';
  const signed = { ...body, integrityAlgorithm };
  return { ...signed, integrity: digest(signed, integrityAlgorithm, opts.key) };
}

/**
 * Verifies a sealed document read from `file` in `dir`; throws MEDFIT_ERR_MANIFEST saying what is
 * wrong and what to do. With a key only a matching HMAC passes (a plain hash is a downgrade);
 * without one an HMAC cannot be checked and is refused too, asking for the key.
 */
export function verifySeal(doc: Record<string, unknown>, dir: string, file: string, opts: IntegrityOptions = {}): void {
  checkManifestKey(opts.key);
  const { integrity, ...body } = doc;
  const algorithm = body['integrityAlgorithm'] ?? 'sha256';
  if (typeof integrity !== 'string' || !/^[0-9a-f]{64}$/.test(integrity)) throw Errors.manifest(dir, `${file} has no integrity record`);
  if (algorithm !== 'sha256' && algorithm !== 'hmac-sha256') throw Errors.manifest(dir, `${file} names an unknown integrity algorithm`);
  if (opts.key !== undefined && algorithm !== 'hmac-sha256') {
    throw Errors.manifest(dir, `${file} is not signed (it has a plain SHA-256), and this medfit has ${KEY_VAR} set so it accepts signed models only: save the model again (retrain, or upload it again) with ${KEY_VAR} set`);
  }
  if (opts.key === undefined && algorithm === 'hmac-sha256') {
    throw Errors.manifest(dir, `${file} is signed (HMAC-SHA256): set ${KEY_VAR} to the key it was saved with`);
  }
  const want = Buffer.from(digest(body, algorithm, opts.key), 'hex');
  if (!timingSafeEqual(want, Buffer.from(integrity, 'hex'))) {
    throw Errors.manifest(
      dir,
      algorithm === 'hmac-sha256'
        ? `${file} does not match its signature: it was changed after it was saved, or signed with another ${KEY_VAR}`
        : `${file} was changed after it was saved (integrity hash mismatch)`,
    );
  }
}
