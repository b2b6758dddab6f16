import { describe, expect, it } from 'vitest';
import { Rng } from '../core/index.js';
import { NUMBER, TRIM, isMissingBytes, parseBooleanBytes, parseDateBytes, parseNumberBytes, trimBytes, utf16Length } from './bytes.js';
import { parseDate, parseNumber } from './cells.js';

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);
const num = (s: string) => {
  const b = bytes(s);
  return parseNumberBytes(b, 0, b.length);
};

// The grammar the readers had as regular expressions (kept here as the reference the byte
// parsers are checked against; the product no longer runs them on user input).
const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const DATE_RE = /^(\d{4})([-/])(\d{2})\2(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$/;

function referenceNumber(s: string): number | null {
  if (!NUMBER_RE.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function referenceDate(s: string): number | null {
  const m = DATE_RE.exec(s);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[3]), Number(m[4])];
  if (month < 1 || month > 12 || day < 1 || day > DAYS[month - 1]!) return null;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return null;
  const [h, mi, se] = [Number(m[5] ?? 0), Number(m[6] ?? 0), Number(m[7] ?? 0)];
  if (h > 23 || mi > 59 || se > 59) return null;
  const ms = m[8] === undefined ? 0 : Math.floor(Number(`0.${m[8].slice(0, 3)}`) * 1000 + 1e-6);
  let t = Date.UTC(year, month - 1, day, h, mi, se, ms);
  if (m[9] !== undefined && m[9] !== 'Z') {
    const digits = m[9].slice(1).replace(':', '');
    const [oh, om] = [Number(digits.slice(0, 2)), Number(digits.slice(2, 4))];
    if (oh > 23 || om > 59) return null;
    t -= (m[9][0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  return t;
}

describe('parseNumberBytes', () => {
  it('accepts plain decimals and nothing else', () => {
    expect(num('12')).toBe(12);
    expect(num('-3.5')).toBe(-3.5);
    expect(num('+.5')).toBe(0.5);
    expect(num('4.')).toBe(4);
    expect(num('1e-3')).toBe(0.001);
    expect(Object.is(num('-0'), -0)).toBe(true);
    for (const bad of ['', '-', '.', 'e5', '1e', '1e+', '1.2.3', '0x1F', '1_000', '1,5', 'Infinity', '--1', '1e999', ' 1', '1 ']) {
      expect(num(bad)).toBeNaN();
    }
  });

  it('equals Number() and the reference grammar on random texts', () => {
    const rng = new Rng(7);
    const pick = (s: string) => s[rng.int(s.length)]!;
    for (let i = 0; i < 20_000; i++) {
      let s = rng.next() < 0.3 ? pick('+-') : '';
      const digits = rng.int(22);
      for (let k = 0; k < digits; k++) s += rng.next() < 0.2 ? '0' : pick('0123456789');
      if (rng.next() < 0.5) s += '.';
      const frac = rng.int(22);
      for (let k = 0; k < frac; k++) s += pick('0123456789');
      if (rng.next() < 0.3) s += pick('eE') + (rng.next() < 0.5 ? pick('+-') : '') + String(rng.int(rng.next() < 0.9 ? 30 : 400));
      if (rng.next() < 0.02) s += pick('x ,');
      const got = num(s);
      const want = referenceNumber(s);
      if (want === null) expect(got, s).toBeNaN();
      else expect(Object.is(got, want), `${s}: ${got} vs ${want}`).toBe(true);
      if (want !== null) expect(NUMBER.isInt).toBe(!/[.eE]/.test(s));
    }
  });

  it('is linear: an 80,000-digit cell and a million-digit one take milliseconds, not seconds', () => {
    const started = performance.now();
    expect(num('9'.repeat(80_000))).toBeNaN(); // overflows a double: not a number
    expect(num('1'.repeat(1_000_000) + 'x')).toBeNaN();
    expect(num('0.' + '0'.repeat(1_000_000) + '1')).toBe(0); // underflows to 0, as Number() does
    expect(parseNumber('5'.repeat(500_000) + '!')).toBeNull();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('parseDateBytes', () => {
  it('matches the reference grammar on edge cases and random texts', () => {
    const cases = [
      '2024-03-01', '2024/03/01', '2024-03-01T08:30', '2024-03-01 08:30:15.250', '2024-03-01T08:30:00+02:00',
      '2024-03-01T08:30:00Z', '2024-02-29', '2023-02-29', '2024-13-01', '2024-03-01T24:00', '2024-03/01',
      '2024-03-01T08:30:00.1234567891', '2024-03-01T08:30 +0130', '2024-03-01T08:30Z', '2024-03-01Z', '20240301',
      '2024-03-01T08', '2024-03-01T08:30:5', '2024-03-01T08:30:00.', '2024-03-01T08:30:00+2400', '1900-02-29',
    ];
    const rng = new Rng(11);
    const pick = (s: string) => s[rng.int(s.length)]!;
    for (let i = 0; i < 5000; i++) {
      let s = `${1900 + rng.int(200)}${pick('-/')}${String(rng.int(14)).padStart(2, '0')}${pick('-/')}${String(rng.int(33)).padStart(2, '0')}`;
      if (rng.next() < 0.7) s += `${pick('T ')}${String(rng.int(26)).padStart(2, '0')}:${String(rng.int(62)).padStart(2, '0')}`;
      if (rng.next() < 0.5) s += `:${String(rng.int(62)).padStart(2, '0')}`;
      if (rng.next() < 0.3) s += `${pick('.,')}${String(rng.int(1000))}`;
      if (rng.next() < 0.3) s += rng.next() < 0.3 ? 'Z' : `${pick('+-')}${String(rng.int(26)).padStart(2, '0')}${rng.next() < 0.5 ? ':' : ''}${String(rng.int(62)).padStart(2, '0')}`;
      cases.push(s);
    }
    for (const s of cases) {
      const b = bytes(s);
      const got = parseDateBytes(b, 0, b.length);
      const want = referenceDate(s);
      if (want === null) expect(got, s).toBeNaN();
      else expect(got, s).toBe(want);
      expect(parseDate(s)).toBe(want);
    }
  });
});

describe('trimBytes, missing tokens, booleans', () => {
  it('trims what String.prototype.trim trims, Unicode spaces included', () => {
    for (const s of ['  a b  ', '\u00a0x\u00a0', '\u3000y\u2009', '\ufeffz', '\t\r\n', 'é ', ' \u2028q\u2029 ', '\u00a0']) {
      const b = bytes(s);
      trimBytes(b, 0, b.length);
      expect(new TextDecoder().decode(b.subarray(TRIM.start, TRIM.end))).toBe(s.trim());
    }
  });

  it('knows the missing tokens and boolean tokens, case-insensitively', () => {
    const missing = (s: string) => isMissingBytes(bytes(s), 0, bytes(s).length);
    for (const m of ['', 'NA', 'na', 'N/A', '#N/A', '#n/a', 'NaN', 'null', 'NULL', '?']) expect(missing(m), m).toBe(true);
    for (const v of ['none', '0', '-', 'n', 'nab', 'nul', '??']) expect(missing(v), v).toBe(false);
    const bool = (s: string) => parseBooleanBytes(bytes(s), 0, bytes(s).length);
    expect(['true', 'Yes', 'y', 'T'].map(bool)).toEqual([1, 1, 1, 1]);
    expect(['FALSE', 'no', 'N', 'f'].map(bool)).toEqual([0, 0, 0, 0]);
    expect(['1', '0', 'maybe', 'tru', ''].map(bool)).toEqual([-1, -1, -1, -1, -1]);
  });

  it('counts UTF-16 code units', () => {
    for (const s of ['abc', 'é', '日本', '😀x']) expect(utf16Length(bytes(s), 0, bytes(s).length)).toBe(s.length);
  });
});
