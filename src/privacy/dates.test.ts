import { describe, expect, it } from 'vitest';
import { civilFromDays, daysFromCivil, maxAgeYears, parseFhirDate, shiftDate, yearOf } from './dates.js';

describe('FHIR dates', () => {
  it('converts civil dates to day counts and back as Date.UTC does, leap years included', () => {
    for (let z = -800_000; z <= 800_000; z += 997) {
      const d = new Date(z * 86_400_000);
      const c = civilFromDays(z);
      expect([c.year, c.month, c.day]).toEqual([d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()]);
      expect(daysFromCivil(c.year, c.month, c.day)).toBe(z);
    }
  });

  it('shifts by whole days, keeping the time of day, the zone and the precision', () => {
    expect(shiftDate('2020-02-28', 1)).toBe('2020-02-29');
    expect(shiftDate('2019-02-28', 1)).toBe('2019-03-01');
    expect(shiftDate('2020-12-31T23:59:59.123+14:00', 1)).toBe('2021-01-01T23:59:59.123+14:00');
    expect(shiftDate('2020-03-01T08:30:00Z', -365)).toBe('2019-03-02T08:30:00Z');
    expect(shiftDate('2020-03', 20)).toBe('2020-04');
    expect(shiftDate('2020-03', -14)).toBe('2020-03');
    expect(shiftDate('2020', 200)).toBe('2021');
    expect(shiftDate('2020', -182)).toBe('2020');
    expect(shiftDate('2020-03-01', 0)).toBe('2020-03-01');
  });

  it('refuses what is not a FHIR date', () => {
    for (const bad of ['', '20', '2020-13', '2020-02-30', '2019-02-29', '2020/03/01', '03/01/2020', '2020-03-01T25:00:00Z', '2020-03-01T10:00:00+5', '2020-03-01Tnoon', '2020-03-01 10:00', 'abcd', '0000']) {
      expect(parseFhirDate(bad), bad).toBeUndefined();
      expect(shiftDate(bad, 3), bad).toBeUndefined();
    }
    expect(yearOf('1931-06-14')).toBe('1931');
    expect(yearOf('nope')).toBeUndefined();
  });

  it('counts ages at the most the precision allows', () => {
    const at = { year: 2026, month: 6, day: 1 };
    expect(maxAgeYears(parseFhirDate('1936-06-01')!, at)).toBe(90);
    expect(maxAgeYears(parseFhirDate('1936-06-02')!, at)).toBe(89);
    expect(maxAgeYears(parseFhirDate('1936-07')!, at)).toBe(89);
    expect(maxAgeYears(parseFhirDate('1936-06')!, at)).toBe(90);
    expect(maxAgeYears(parseFhirDate('1936')!, at)).toBe(90);
    expect(maxAgeYears(parseFhirDate('1936-12-31')!, { year: 2026, month: 0, day: 0 })).toBe(90);
  });
});
