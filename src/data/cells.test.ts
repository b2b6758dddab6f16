import { describe, expect, it } from 'vitest';
import { isMissing, normalizeText, parseBoolean, parseDate, parseNumber } from './cells.js';

describe('cell rules', () => {
  it('missing tokens', () => {
    for (const m of [null, '', '  ', 'NA', 'na', 'N/A', '#N/A', 'NaN', 'null', 'NULL', '?', NaN]) expect(isMissing(m)).toBe(true);
    for (const v of ['none', '0', '-', 0, false, 'n']) expect(isMissing(v)).toBe(false);
    expect(normalizeText('  x y ')).toBe('x y');
    expect(normalizeText(' NA ')).toBeNull();
  });

  it('numbers', () => {
    expect(parseNumber('12')).toBe(12);
    expect(parseNumber(' -3.5 ')).toBe(-3.5);
    expect(parseNumber('+.5')).toBe(0.5);
    expect(parseNumber('1e-3')).toBe(0.001);
    expect(parseNumber('4.')).toBe(4);
    expect(parseNumber(7)).toBe(7);
    for (const bad of ['', 'abc', 'Infinity', '1,5', '1,000', '0x1F', '1_000', '1.2.3', 'e5', true, null, NaN]) {
      expect(parseNumber(bad)).toBeNull();
    }
  });

  it('booleans: 0/1 are not booleans', () => {
    expect(['true', 'Yes', 'y', 'T', true].map(parseBoolean)).toEqual([true, true, true, true, true]);
    expect(['FALSE', 'no', 'N', 'f', false].map(parseBoolean)).toEqual([false, false, false, false, false]);
    for (const v of ['1', '0', 1, 0, 'maybe', null]) expect(parseBoolean(v)).toBeNull();
  });

  it('dates: ISO forms in UTC, not plain numbers', () => {
    expect(parseDate('2024-03-01')).toBe(Date.UTC(2024, 2, 1));
    expect(parseDate('2024/03/01')).toBe(Date.UTC(2024, 2, 1));
    expect(parseDate('2024-03-01T08:30')).toBe(Date.UTC(2024, 2, 1, 8, 30));
    expect(parseDate('2024-03-01 08:30:15.250')).toBe(Date.UTC(2024, 2, 1, 8, 30, 15, 250));
    expect(parseDate('2024-03-01T08:30:00+02:00')).toBe(Date.UTC(2024, 2, 1, 6, 30));
    expect(parseDate('2024-03-01T08:30:00Z')).toBe(Date.UTC(2024, 2, 1, 8, 30));
    expect(parseDate('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
    for (const bad of ['2023-02-29', '2024-13-01', '2024-04-31', '20240301', '03/01/2024', '1700000000', 1700000000, '2024-03-01T25:00']) {
      expect(parseDate(bad)).toBeNull();
    }
  });
});
