/**
 * The cell rules on UTF-8 bytes: trimming, missing tokens, numbers, booleans and ISO dates, read
 * straight from a reader's buffer without making a string per cell. These are THE rules: the
 * string forms in `cells.ts` (used for JSON values and prediction records) copy their text into
 * a scratch buffer and call these, so that a cell means the same thing whichever way it arrives.
 *
 * Every function here is a single left-to-right pass with no regular expression, so the time
 * spent on a cell is linear in its length whatever its content (an 80,000-digit "number" costs
 * 80,000 steps, not 80,000²).
 */

/** Whether `b` is ASCII whitespace as String.prototype.trim sees it (space, \t, \n, \v, \f, \r). */
function isAsciiSpace(b: number): boolean {
  return b === 32 || (b >= 9 && b <= 13);
}

/**
 * Byte length of a Unicode whitespace character (one that `String.prototype.trim` removes) that
 * starts at `i`, or 0. Covers NBSP, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000
 * and U+FEFF, so that a cell padded with them (spreadsheet exports) trims as its string would.
 */
function unicodeSpaceAt(b: Uint8Array, i: number, end: number): number {
  const c = b[i]!;
  if (c === 0xc2) return i + 1 < end && b[i + 1] === 0xa0 ? 2 : 0;
  if (i + 2 >= end) return 0;
  const c1 = b[i + 1]!;
  const c2 = b[i + 2]!;
  if (c === 0xe1) return c1 === 0x9a && c2 === 0x80 ? 3 : 0;
  if (c === 0xe2) {
    if (c1 === 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf)) return 3;
    return c1 === 0x81 && c2 === 0x9f ? 3 : 0;
  }
  if (c === 0xe3) return c1 === 0x80 && c2 === 0x80 ? 3 : 0;
  if (c === 0xef) return c1 === 0xbb && c2 === 0xbf ? 3 : 0;
  return 0;
}

/** Length of a Unicode whitespace character that ENDS just before `end`, or 0. */
function unicodeSpaceBefore(b: Uint8Array, start: number, end: number): number {
  if (end - 2 >= start && b[end - 2] === 0xc2 && b[end - 1] === 0xa0) return 2;
  if (end - 3 >= start && unicodeSpaceAt(b, end - 3, end) === 3) return 3;
  return 0;
}

/** Where `trimBytes` puts its result: a shared box rather than a new object per cell. */
export const TRIM = { start: 0, end: 0 };

/** Trims `b[start, end)` as `String.prototype.trim` trims its text; the result is in `TRIM`. */
export function trimBytes(b: Uint8Array, start: number, end: number): void {
  let s = start;
  let e = end;
  for (;;) {
    while (s < e && isAsciiSpace(b[s]!)) s++;
    if (s < e && b[s]! >= 0x80) {
      const k = unicodeSpaceAt(b, s, e);
      if (k > 0) {
        s += k;
        continue;
      }
    }
    break;
  }
  for (;;) {
    while (e > s && isAsciiSpace(b[e - 1]!)) e--;
    if (e > s && b[e - 1]! >= 0x80) {
      const k = unicodeSpaceBefore(b, s, e);
      if (k > 0) {
        e -= k;
        continue;
      }
    }
    break;
  }
  TRIM.start = s;
  TRIM.end = e;
}

/** Lower-cases an ASCII letter code. */
function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/**
 * Whether trimmed bytes are a missing token: empty, `NA`, `N/A`, `#N/A`, `NaN`, `null` or `?`
 * (case-insensitive; see `MISSING_TOKENS` in cells.ts for why these and not others).
 */
export function isMissingBytes(b: Uint8Array, s: number, e: number): boolean {
  const n = e - s;
  if (n === 0) return true;
  if (n > 4) return false;
  const c0 = lower(b[s]!);
  if (n === 1) return c0 === 63; // ?
  if (c0 === 110) {
    // na, n/a, nan, null
    const c1 = lower(b[s + 1]!);
    if (n === 2) return c1 === 97;
    if (n === 3) return (c1 === 47 && lower(b[s + 2]!) === 97) || (c1 === 97 && lower(b[s + 2]!) === 110);
    return c1 === 117 && lower(b[s + 2]!) === 108 && lower(b[s + 3]!) === 108;
  }
  // #n/a
  return n === 4 && c0 === 35 && lower(b[s + 1]!) === 110 && b[s + 2] === 47 && lower(b[s + 3]!) === 97;
}

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
/** Mantissas up to this many significant digits are exact in a double (< 2^53). */
const EXACT_DIGITS = 15;

/** Set by `parseNumberBytes`: whether the number it accepted was written as an integer. */
export const NUMBER = { isInt: false };

/**
 * Parses trimmed bytes as a plain decimal number: optional sign, digits with an optional point,
 * optional exponent (`12`, `-3.5`, `+.5`, `1e-3`, `4.`). Not numbers, on purpose: `Infinity`,
 * hex, digit separators (`1_000`, `1,000`), decimal commas (`1,5`); a value that overflows a
 * double. Returns NaN when it is not a number; `NUMBER.isInt` tells whether it was written
 * without a point or an exponent.
 *
 * Values with at most 15 significant digits and a small exponent are computed exactly with one
 * multiplication or division of two exact doubles (Clinger's fast path, correctly rounded); any
 * other is handed to `Number()`, so every result equals `Number(text)`.
 */
export function parseNumberBytes(b: Uint8Array, s: number, e: number): number {
  let i = s;
  if (i >= e) return NaN;
  let c = b[i]!;
  let neg = false;
  if (c === 45 || c === 43) {
    neg = c === 45;
    if (++i >= e) return NaN;
    c = b[i]!;
  }
  let mant = 0;
  let sig = 0; // significant digits taken into mant
  let scale = 0; // power of ten to apply to mant
  let digits = 0;
  let lost = false; // digits beyond EXACT_DIGITS were dropped
  while (i < e) {
    c = b[i]! - 48;
    if (c < 0 || c > 9) break;
    if (sig > 0 || c > 0) {
      if (sig < EXACT_DIGITS) {
        mant = mant * 10 + c;
        sig++;
      } else {
        scale++;
        if (c > 0) lost = true;
      }
    }
    digits++;
    i++;
  }
  let isInt = true;
  if (i < e && b[i] === 46) {
    isInt = false;
    i++;
    while (i < e) {
      c = b[i]! - 48;
      if (c < 0 || c > 9) break;
      if (sig > 0 || c > 0) {
        if (sig < EXACT_DIGITS) {
          mant = mant * 10 + c;
          sig++;
          scale--;
        } else if (c > 0) lost = true;
      } else scale--;
      digits++;
      i++;
    }
  }
  if (digits === 0) return NaN;
  let exp = 0;
  let bigExp = false;
  if (i < e && (b[i] === 101 || b[i] === 69)) {
    isInt = false;
    i++;
    let eneg = false;
    if (i < e && (b[i] === 45 || b[i] === 43)) {
      eneg = b[i] === 45;
      i++;
    }
    let ed = 0;
    while (i < e) {
      c = b[i]! - 48;
      if (c < 0 || c > 9) break;
      if (exp < 100000) exp = exp * 10 + c;
      else bigExp = true;
      ed++;
      i++;
    }
    if (ed === 0) return NaN;
    if (eneg) exp = -exp;
  }
  if (i !== e) return NaN;
  NUMBER.isInt = isInt;
  let v: number;
  const p = scale + exp;
  if (!lost && !bigExp && p >= -22 && p <= 22) {
    v = p >= 0 ? mant * POW10[p]! : mant / POW10[-p]!;
    // mant * 10^p may exceed 2^53 for p > 0 only when rounding is already exact (both factors
    // exact, one rounding): still correctly rounded.
  } else {
    v = Number(latin1(b, s, e));
    if (!Number.isFinite(v)) return NaN;
    return v;
  }
  return neg ? -v : v;
}

/** ASCII/Latin-1 text of a byte range (only used where every byte is ASCII). */
export function latin1(b: Uint8Array, s: number, e: number): string {
  return Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('latin1');
}

/**
 * Parses trimmed bytes as a boolean token, case-insensitive: true/false, yes/no, y/n, t/f.
 * Returns 1, 0, or -1 when it is not one. `1`/`0` are numbers, not booleans (see cells.ts).
 */
export function parseBooleanBytes(b: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n < 1 || n > 5) return -1;
  const c0 = lower(b[s]!);
  if (n === 1) return c0 === 116 || c0 === 121 ? 1 : c0 === 102 || c0 === 110 ? 0 : -1;
  if (n === 2) return c0 === 110 && lower(b[s + 1]!) === 111 ? 0 : -1; // no
  if (n === 3) return c0 === 121 && lower(b[s + 1]!) === 101 && lower(b[s + 2]!) === 115 ? 1 : -1; // yes
  if (n === 4) return c0 === 116 && lower(b[s + 1]!) === 114 && lower(b[s + 2]!) === 117 && lower(b[s + 3]!) === 101 ? 1 : -1;
  return c0 === 102 && lower(b[s + 1]!) === 97 && lower(b[s + 2]!) === 108 && lower(b[s + 3]!) === 115 && lower(b[s + 4]!) === 101 ? 0 : -1;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Two ASCII digits at `i` as a number, or -1. */
function two(b: Uint8Array, i: number): number {
  const h = b[i]! - 48;
  const l = b[i + 1]! - 48;
  return h >= 0 && h <= 9 && l >= 0 && l <= 9 ? h * 10 + l : -1;
}

/**
 * Parses trimmed bytes as an ISO 8601 calendar date or date-time: `2024-03-01`, `2024/03/01`,
 * `2024-03-01T08:30`, `2024-03-01 08:30:15.250`, with an optional `Z` or `±HH:MM` / `±HHMM`
 * offset after the time. Returns milliseconds since the Unix epoch (a value without an offset is
 * UTC, so a file reads the same on every machine), or NaN when it is not such a date. Plain
 * numbers (Unix times, `20240301`) and day-first or month-first forms are not dates.
 */
export function parseDateBytes(b: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n < 10 || n > 40) return NaN;
  const sep = b[s + 4];
  if ((sep !== 45 && sep !== 47) || b[s + 7] !== sep) return NaN;
  const y1 = two(b, s);
  const y2 = two(b, s + 2);
  const month = two(b, s + 5);
  const day = two(b, s + 8);
  if (y1 < 0 || y2 < 0 || month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]!) return NaN;
  const year = y1 * 100 + y2;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return NaN;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let ms = 0;
  let offset = 0;
  let i = s + 10;
  if (i < e) {
    if (b[i] !== 84 && b[i] !== 32) return NaN; // T or space
    if (i + 6 > e || b[i + 3] !== 58) return NaN;
    hour = two(b, i + 1);
    minute = two(b, i + 4);
    if (hour < 0 || minute < 0 || hour > 23 || minute > 59) return NaN;
    i += 6;
    if (i < e && b[i] === 58) {
      if (i + 3 > e) return NaN;
      second = two(b, i + 1);
      if (second < 0 || second > 59) return NaN;
      i += 3;
      if (i < e && (b[i] === 46 || b[i] === 44)) {
        i++;
        let frac = 0;
        let scale = 1;
        let nd = 0;
        while (i < e && b[i]! >= 48 && b[i]! <= 57) {
          if (nd < 3) {
            frac = frac * 10 + (b[i]! - 48);
            scale *= 10;
          }
          nd++;
          i++;
        }
        if (nd < 1 || nd > 9) return NaN;
        ms = Math.floor((frac * 1000) / scale);
      }
    }
    while (i < e && isAsciiSpace(b[i]!)) i++;
    if (i < e) {
      const c = b[i];
      if (c === 90 && i + 1 === e) {
        // Z
      } else if (c === 43 || c === 45) {
        const oh = two(b, i + 1);
        let k = i + 3;
        if (k < e && b[k] === 58) k++;
        if (k + 2 !== e) return NaN;
        const om = two(b, k);
        if (oh < 0 || om < 0 || oh > 23 || om > 59) return NaN;
        offset = (c === 45 ? -1 : 1) * (oh * 60 + om) * 60_000;
      } else return NaN;
    }
  }
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offset;
}

/**
 * Length of the text as a JavaScript string would count it (UTF-16 code units): one per
 * character, two for those beyond U+FFFF.
 */
export function utf16Length(b: Uint8Array, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = b[i]!;
    if ((c & 0xc0) !== 0x80) n += c >= 0xf0 ? 2 : 1;
  }
  return n;
}

/**
 * A random seed for this process: which texts share a hash is then unpredictable from outside,
 * so a file cannot be built to make every cell of a column collide (hash flooding). Within one
 * process the hash is stable, which is all the dictionaries and row hashes need.
 */
const SEED = (globalThis.crypto.getRandomValues(new Uint32Array(1))[0]! ^ 0x811c9dc5) | 0;

/** 32-bit hash of a byte range (FNV-1a from a per-process seed, then murmur3's finaliser). */
export function hashBytes(b: Uint8Array, s: number, e: number): number {
  let h = SEED;
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
