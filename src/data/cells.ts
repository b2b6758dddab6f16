/**
 * The rules for reading one cell, shared by the readers, schema inference, the profile and the
 * fitted pipeline, so that all of them agree on what "missing", "numeric", "boolean" and "date"
 * mean. Each parser returns `null` both for a missing cell and for a cell it cannot read; callers
 * that need to tell the two apart check `isMissing` first.
 */
import type { Cell } from '../core/index.js';

/**
 * Tokens that mean "no value", compared after trimming and case-insensitively: the empty string,
 * `NA`, `N/A`, `#N/A` (spreadsheets), `NaN`, `null` (JSON and SQL exports) and `?` (UCI files).
 * `none`, `-` and `0` are NOT missing: "none" is a real answer to "which medication", and a dash
 * or zero can be a real value; say so with an override or clean the file first.
 */
export const MISSING_TOKENS: readonly string[] = ['', 'na', 'n/a', '#n/a', 'nan', 'null', '?'];

const MISSING = new Set(MISSING_TOKENS);

/** Whether a trimmed string is one of the missing tokens (fast path for the common cases). */
function isMissingText(s: string): boolean {
  // Almost every real cell is longer than 4 characters or starts with a digit; skip the Set.
  if (s.length === 0) return true;
  if (s.length > 4) return false;
  // Every token starts with n, N, # or ?: most short values (M, F, yes, 12) stop here unallocated.
  const c = s.charCodeAt(0);
  if (c !== 110 && c !== 78 && c !== 35 && c !== 63) return false;
  return MISSING.has(s.toLowerCase());
}

/**
 * Normalises a raw text cell as the readers do: trims it and maps the missing tokens to `null`.
 * @param raw the text between delimiters (CSV) or a JSON string value
 */
export function normalizeText(raw: string): string | null {
  const s = raw.trim();
  return isMissingText(s) ? null : s;
}

/**
 * Whether a cell is missing: `null`, a non-finite number, or a missing token (see
 * `MISSING_TOKENS`). Readers already turn missing tokens into `null`; this also covers cells that
 * come from elsewhere (a prediction request's JSON, for instance).
 */
export function isMissing(cell: Cell | undefined): boolean {
  if (cell === null || cell === undefined) return true;
  if (typeof cell === 'number') return !Number.isFinite(cell);
  if (typeof cell === 'boolean') return false;
  return isMissingText(cell.trim());
}

/**
 * Plain decimal numbers with optional sign, fraction and exponent: `12`, `-3.5`, `+.5`, `1e-3`,
 * `4.`. Rejected on purpose: `Infinity`, hex (`0x1F`), digit separators (`1_000`, `1,000`) and
 * decimal commas (`1,5`), because each of these is more often a data-entry problem than a value,
 * and accepting `1,5` as 1.5 would silently misread `1,500` as 1.5.
 */
const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Parses a cell as a finite number; `null` when it is missing or not a number. JSON numbers are
 * taken as they are; booleans are not numbers (a boolean column is its own type).
 */
export function parseNumber(cell: Cell | undefined): number | null {
  if (typeof cell === 'number') return Number.isFinite(cell) ? cell : null;
  if (typeof cell !== 'string') return null;
  const s = cell.trim();
  if (s.length === 0) return null;
  // Fast reject: a number starts with a digit, a sign or a point.
  const c = s.charCodeAt(0);
  if (!((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46)) return null;
  if (!NUMBER_RE.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

/**
 * Boolean tokens, case-insensitive: true/false, yes/no, y/n, t/f. `1`/`0` are deliberately NOT
 * boolean: a 0/1 column is read as an integer column (which every model uses the same way), and
 * calling `0`/`1` boolean would turn count columns that happen to hold only 0 and 1 in a sample
 * into the wrong type.
 */
const TRUE_TOKENS = new Set(['true', 'yes', 'y', 't']);
const FALSE_TOKENS = new Set(['false', 'no', 'n', 'f']);

/** Parses a cell as a boolean (see the tokens above); `null` when missing or not a boolean. */
export function parseBoolean(cell: Cell | undefined): boolean | null {
  if (typeof cell === 'boolean') return cell;
  if (typeof cell !== 'string') return null;
  const s = cell.trim();
  if (s.length === 0 || s.length > 5) return null;
  const l = s.toLowerCase();
  if (TRUE_TOKENS.has(l)) return true;
  if (FALSE_TOKENS.has(l)) return false;
  return null;
}

/**
 * ISO 8601 calendar dates and date-times: `2024-03-01`, `2024/03/01`, `2024-03-01T08:30`,
 * `2024-03-01 08:30:15.250`, with an optional `Z` or `±HH:MM` offset. Plain numbers (Unix times,
 * `20240301`) are not dates: they are indistinguishable from measurements. Day-first and
 * month-first forms (`03/01/2024`) are ambiguous and not accepted.
 */
const DATE_RE =
  /^(\d{4})([-/])(\d{2})\2(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$/;

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Parses a cell as a date or date-time; returns milliseconds since the Unix epoch, or `null`
 * when missing or not a date. A value without an offset is read as UTC, so the same file gives
 * the same numbers on every machine whatever its time zone.
 */
export function parseDate(cell: Cell | undefined): number | null {
  if (typeof cell !== 'string') return null;
  const s = cell.trim();
  // Fast reject: every accepted form is at least 10 characters and starts with 4 digits.
  if (s.length < 10 || s.length > 40) return null;
  const c = s.charCodeAt(4);
  if (c !== 45 && c !== 47) return null;
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[3]);
  const day = Number(m[4]);
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]!) return null;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return null;
  const hour = m[5] === undefined ? 0 : Number(m[5]);
  const minute = m[6] === undefined ? 0 : Number(m[6]);
  const second = m[7] === undefined ? 0 : Number(m[7]);
  if (hour > 23 || minute > 59 || second > 59) return null;
  const ms = m[8] === undefined ? 0 : Math.floor(Number(`0.${m[8]}`) * 1000);
  let t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  const tz = m[9];
  if (tz !== undefined && tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2, 4));
    if (oh > 23 || om > 59) return null;
    t -= sign * (oh * 60 + om) * 60_000;
  }
  return t;
}

/** The text form of a cell used for counting distinct values and top values. */
export function cellKey(cell: Cell): string {
  return typeof cell === 'string' ? cell : String(cell);
}
