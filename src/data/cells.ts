/**
 * The rules for reading one cell, for values that arrive as JavaScript values (JSON tables,
 * prediction records). They are the byte rules of `bytes.ts`, which the CSV reader applies to its
 * buffer: a string is trimmed, copied into a scratch buffer and read by the same functions, so a
 * value means the same thing however it arrived. Each parser returns `null` both for a missing
 * cell and for one it cannot read; callers that need to tell the two apart check `isMissing`.
 */
import type { Cell } from '../core/index.js';
import { isMissingBytes, parseBooleanBytes, parseDateBytes, parseNumberBytes } from './bytes.js';

/**
 * Tokens that mean "no value", compared after trimming and case-insensitively: the empty string,
 * `NA`, `N/A`, `#N/A` (spreadsheets), `NaN`, `null` (JSON and SQL exports) and `?` (UCI files).
 * `none`, `-` and `0` are NOT missing: "none" is a real answer to "which medication", and a dash
 * or zero can be a real value; say so with an override or clean the file first.
 */
export const MISSING_TOKENS: readonly string[] = ['', 'na', 'n/a', '#n/a', 'nan', 'null', '?'];

let scratch = new Uint8Array(256);

/**
 * Copies an ASCII string into the scratch buffer and returns its length, or -1 when it holds a
 * character beyond ASCII (no number, boolean, date or missing token does).
 */
function ascii(s: string): number {
  const n = s.length;
  if (scratch.length < n) scratch = new Uint8Array(Math.max(n, scratch.length * 2));
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return -1;
    scratch[i] = c;
  }
  return n;
}

/**
 * Normalises a raw text cell as the readers do: trims it and maps the missing tokens to `null`.
 * @param raw the text between delimiters (CSV) or a JSON string value
 */
export function normalizeText(raw: string): string | null {
  const s = raw.trim();
  if (s.length > 4) return s;
  const n = ascii(s);
  return n >= 0 && isMissingBytes(scratch, 0, n) ? null : s;
}

/**
 * Whether a cell is missing: `null`, a non-finite number, or a missing token (see
 * `MISSING_TOKENS`).
 */
export function isMissing(cell: Cell | undefined): boolean {
  if (cell === null || cell === undefined) return true;
  if (typeof cell === 'number') return !Number.isFinite(cell);
  if (typeof cell === 'boolean') return false;
  return normalizeText(cell) === null;
}

/**
 * Parses a cell as a finite number; `null` when it is missing or not a number (the grammar is
 * `parseNumberBytes`'s: plain decimals, no `Infinity`, hex, separators or decimal commas). JSON
 * numbers are taken as they are; booleans are not numbers (a boolean column is its own type).
 */
export function parseNumber(cell: Cell | undefined): number | null {
  if (typeof cell === 'number') return Number.isFinite(cell) ? cell : null;
  if (typeof cell !== 'string') return null;
  const s = cell.trim();
  const c = s.charCodeAt(0);
  // Fast reject: a number starts with a digit, a sign or a point.
  if (!((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46)) return null;
  const n = ascii(s);
  if (n < 0) return null;
  const v = parseNumberBytes(scratch, 0, n);
  return v === v ? v : null;
}

/**
 * Parses a cell as a boolean: true/false, yes/no, y/n, t/f, case-insensitive; `null` when
 * missing or not one. `1`/`0` are deliberately NOT boolean: a 0/1 column is read as an integer
 * column (which every model uses the same way).
 */
export function parseBoolean(cell: Cell | undefined): boolean | null {
  if (typeof cell === 'boolean') return cell;
  if (typeof cell !== 'string') return null;
  const s = cell.trim();
  if (s.length === 0 || s.length > 5) return null;
  const n = ascii(s);
  const b = n < 0 ? -1 : parseBooleanBytes(scratch, 0, n);
  return b < 0 ? null : b === 1;
}

/**
 * Parses a cell as an ISO 8601 date or date-time (see `parseDateBytes`): milliseconds since the
 * Unix epoch, or `null` when missing or not such a date.
 */
export function parseDate(cell: Cell | undefined): number | null {
  if (typeof cell !== 'string') return null;
  const s = cell.trim();
  if (s.length < 10 || s.length > 40) return null;
  const n = ascii(s);
  const t = n < 0 ? NaN : parseDateBytes(scratch, 0, n);
  return t === t ? t : null;
}

/**
 * The key of a value as a category: a number (or a text that reads as one) by its value, written
 * as `String(value)` (`1.50` and `1.5` are one category, as a JSON `1.5` is); any other text as
 * it is (trimmed). `null` when missing. Tables keep numbers by value, so categories fitted on
 * a table and looked up for a prediction record agree.
 */
export function categoryKey(cell: Cell | undefined): string | null {
  if (cell === null || cell === undefined) return null;
  if (typeof cell === 'boolean') return cell ? 'true' : 'false';
  const v = parseNumber(cell);
  if (v !== null) return String(v);
  if (typeof cell === 'number') return null;
  return normalizeText(cell);
}
