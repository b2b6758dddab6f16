/**
 * FHIR dates (`date`, `dateTime`, `instant`) read and rewritten by hand: shifted by whole days
 * with their precision kept, or cut to the year. One pass over a short string, no Date objects on
 * the way (a de-identified export shifts millions of them), no pattern.
 *
 * Shifting keeps what the value says and how precisely: `2019-03-02T10:15:00-05:00` shifted by
 * 10 days is `2019-03-12T10:15:00-05:00` (the time of day and the zone are kept as written: a
 * whole-day shift of the local date is still the same local time); `2019-03` and `2019` stay a
 * month and a year (see `shiftDate` for where they land).
 */

/** A FHIR date, date-time or instant, taken apart. */
export interface FhirDate {
  year: number;
  /** 1–12, or 0 when the value is a year alone. */
  month: number;
  /** 1–31, or 0 when the value has no day. */
  day: number;
  /** Everything after the date (`T10:15:00-05:00`), as written; empty for a date alone. */
  time: string;
}

function digits(s: string, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** Days in `month` (1–12) of `year` (proleptic Gregorian). */
export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Whether `t` is a FHIR time part: `Thh:mm:ss(.fraction)?(Z|±hh:mm)` (the zone is required by
 * FHIR when there is a time; `Thh:mm` without seconds is tolerated, as some exports write it).
 */
function validTime(t: string): boolean {
  const n = t.length;
  if (n < 6 || t.charCodeAt(0) !== 84 /* T */) return false;
  const hh = digits(t, 1, 2);
  const mm = digits(t, 4, 2);
  if (hh < 0 || hh > 24 || t.charCodeAt(3) !== 58 || mm < 0 || mm > 59) return false;
  let i = 6;
  if (i < n && t.charCodeAt(i) === 58) {
    const ss = digits(t, i + 1, 2);
    if (ss < 0 || ss > 60) return false;
    i += 3;
    if (i < n && t.charCodeAt(i) === 46) {
      i++;
      const start = i;
      while (i < n && t.charCodeAt(i) >= 48 && t.charCodeAt(i) <= 57) i++;
      if (i === start) return false;
    }
  }
  if (i === n) return true;
  const z = t.charCodeAt(i);
  if (z === 90 /* Z */) return i + 1 === n;
  if (z !== 43 && z !== 45) return false;
  const zh = digits(t, i + 1, 2);
  const zm = digits(t, i + 4, 2);
  return i + 6 === n && zh >= 0 && zh <= 14 && t.charCodeAt(i + 3) === 58 && zm >= 0 && zm <= 59;
}

/** Reads a FHIR `date`, `dateTime` or `instant` (`2019`, `2019-03`, `2019-03-02`, `2019-03-02T10:15:00Z`), or undefined. */
export function parseFhirDate(s: string): FhirDate | undefined {
  const n = s.length;
  if (n < 4) return undefined;
  const year = digits(s, 0, 4);
  if (year < 1) return undefined;
  if (n === 4) return { year, month: 0, day: 0, time: '' };
  if (n < 7 || s.charCodeAt(4) !== 45) return undefined;
  const month = digits(s, 5, 2);
  if (month < 1 || month > 12) return undefined;
  if (n === 7) return { year, month, day: 0, time: '' };
  if (n < 10 || s.charCodeAt(7) !== 45) return undefined;
  const day = digits(s, 8, 2);
  if (day < 1 || day > daysInMonth(year, month)) return undefined;
  if (n === 10) return { year, month, day, time: '' };
  const time = s.slice(10);
  return validTime(time) ? { year, month, day, time } : undefined;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`). */
export function civilFromDays(z: number): { year: number; month: number; day: number } {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function pad(n: number, width: number): string {
  const s = String(n);
  return s.length >= width ? s : '0'.repeat(width - s.length) + s;
}

/** Writes a date back at its own precision. */
export function formatFhirDate(d: FhirDate): string {
  if (d.month === 0) return pad(d.year, 4);
  if (d.day === 0) return `${pad(d.year, 4)}-${pad(d.month, 2)}`;
  return `${pad(d.year, 4)}-${pad(d.month, 2)}-${pad(d.day, 2)}${d.time}`;
}

/**
 * Shifts a FHIR date by `days`, keeping its precision, or undefined when it is not a FHIR date.
 * A full date moves by exactly `days`. A month (`2019-03`) moves as its 15th would and keeps the
 * month it lands in; a year (`2019`) moves as its 2 July (its middle) would and keeps the year it
 * lands in: unbiased, and never more precise than the value was. Years stay within 0001–9999.
 */
export function shiftDate(s: string, days: number): string | undefined {
  const d = parseFhirDate(s);
  if (d === undefined) return undefined;
  if (days === 0) return s;
  const base = daysFromCivil(d.year, d.month === 0 ? 7 : d.month, d.month === 0 ? 2 : d.day === 0 ? 15 : d.day);
  const c = civilFromDays(base + days);
  if (c.year < 1 || c.year > 9999) return undefined;
  return formatFhirDate({ year: c.year, month: d.month === 0 ? 0 : c.month, day: d.day === 0 ? 0 : c.day, time: d.time });
}

/** The year of a FHIR date (`2019`), or undefined when it is not one. */
export function yearOf(s: string): string | undefined {
  const d = parseFhirDate(s);
  return d === undefined ? undefined : pad(d.year, 4);
}

/**
 * Whole years from `birth` to `at` (both parsed FHIR dates), counting the most the precision
 * allows: a birth year alone (`1930`) counts as if the birthday were 1 January, a reference year
 * alone as if it were 31 December, so that an age which may be over 89 is treated as over 89.
 */
export function maxAgeYears(birth: FhirDate, at: { year: number; month: number; day: number }): number {
  let age = at.year - birth.year;
  if (birth.month === 0) return age;
  // A reference date without month or day counts as late as it can be (31 December).
  const month = at.month === 0 ? 12 : at.month;
  const day = at.day === 0 ? 31 : at.day;
  if (month < birth.month || (month === birth.month && birth.day !== 0 && day < birth.day)) age--;
  return age;
}
