/**
 * The de-identification key: the secret behind every pseudonym and date shift. It comes from
 * configuration (`MEDFIT_DEID_KEY`) and lives only in this process's memory: it is never written
 * to a file, a log, a dataset or a model artifact, so that whoever holds de-identified data
 * cannot recompute a pseudonym from a known identifier (or undo a date shift).
 */
import { randomBytes } from 'node:crypto';
import { Errors } from '../core/index.js';

/** The environment variable that holds the key. */
export const DEID_KEY_ENV = 'MEDFIT_DEID_KEY';

/** Shortest key accepted, in characters (or 64 hex digits, which read as 32 bytes). */
export const MIN_KEY_CHARS = 32;

/**
 * Fewest different characters a key must use: `aaaa…` or `0101…` is long but guessable. A random
 * hex key of 32 characters uses about 14 of the 16 digits; fewer than 8 is vanishingly rare.
 */
const MIN_DISTINCT_CHARS = 8;

/** A key read from configuration, and whether it was made up for this process. */
export interface DeidKey {
  key: Buffer;
  /**
   * True when `MEDFIT_DEID_KEY` is not set and the key is random, for this process only: its
   * pseudonyms and date shifts will not match those of another run (callers warn about it).
   */
  generated: boolean;
}

function isHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) | 0x20;
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/**
 * Reads the de-identification key from `MEDFIT_DEID_KEY`: 64 hex digits (32 bytes, e.g. from
 * `openssl rand -hex 32`) or any text of at least 32 characters (its UTF-8 bytes). A shorter or
 * visibly weak key is a usage error that names the variable and never repeats the key. Unset (or
 * empty): a random 32-byte key for this process, with `generated: true`.
 */
export function deidKey(env: NodeJS.ProcessEnv = process.env): DeidKey {
  const raw = env[DEID_KEY_ENV];
  if (raw === undefined || raw === '') return { key: randomBytes(32), generated: true };
  if (raw.length < MIN_KEY_CHARS) {
    throw Errors.usage(`${DEID_KEY_ENV} is too short: it needs at least ${MIN_KEY_CHARS} characters or 64 hex digits (make one with: openssl rand -hex 32)`);
  }
  if (new Set(raw).size < MIN_DISTINCT_CHARS) {
    throw Errors.usage(`${DEID_KEY_ENV} is too weak: it uses fewer than ${MIN_DISTINCT_CHARS} different characters (make one with: openssl rand -hex 32)`);
  }
  if (raw.length === 64 && isHex(raw)) return { key: Buffer.from(raw, 'hex'), generated: false };
  return { key: Buffer.from(raw, 'utf8'), generated: false };
}
