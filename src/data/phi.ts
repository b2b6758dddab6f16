/**
 * Columns that may hold protected health information (PHI): by the words of their name, by the
 * shape of their values (an e-mail address, a US phone or social security number, a street
 * address, a ZIP+4 code, a URL, an IPv4 address, a full date), and free text (which may name
 * anyone), for `medfit profile` to flag and
 * for the privacy room to de-identify (its table rules start from `PhiKind`).
 *
 * Shapes are read from a bounded sample of a column's distinct texts (at most `SAMPLE` of them,
 * spread over the column's dictionary), each by one left-to-right pass with no pattern, so a
 * hostile cell costs time linear in its length, and a column at most `SAMPLE` × `MAX_LENGTH`.
 * Cells that read as numbers are not texts and are not sampled: a phone number written as
 * 5559784581 is a number to the profile; its column's name is what flags it.
 */
import type { ColumnType } from '../core/index.js';
import { ColumnBuilder, type ColumnEvidence } from './column.js';
import { nameWords, personalIdentifierName } from './schema.js';

/** What kind of personal identifier a column holds. */
export type PhiKind =
  | 'name'
  | 'email'
  | 'phone'
  | 'ssn'
  | 'mrn'
  | 'address'
  | 'zip'
  | 'birthdate'
  | 'date'
  | 'document'
  | 'url'
  | 'ip'
  | 'text'
  | 'identifier';

/** Every `PhiKind`, for validation of stored profiles. */
export const PHI_KINDS: readonly PhiKind[] = ['name', 'email', 'phone', 'ssn', 'mrn', 'address', 'zip', 'birthdate', 'date', 'document', 'url', 'ip', 'text', 'identifier'];

/** Most distinct texts of a column whose shapes are read. */
export const SAMPLE = 200;
/** Longer texts have no shape here (no identifier of these kinds is that long). */
const MAX_LENGTH = 256;
/** Share of the sampled texts that must have one shape for the column to be taken as that kind. */
export const SHAPE_SHARE = 0.6;

/** Name words and the kind they name. */
const NAME_WORDS: ReadonlyMap<string, PhiKind> = new Map<string, PhiKind>([
  ...['firstname', 'lastname', 'surname', 'fullname', 'forename', 'givenname', 'maidenname', 'nickname', 'patientname'].map((w) => [w, 'name'] as const),
  ...['email', 'mail'].map((w) => [w, 'email'] as const),
  ...['phone', 'telephone', 'tel', 'mobile', 'cellphone', 'fax'].map((w) => [w, 'phone'] as const),
  ['ssn', 'ssn'],
  ['mrn', 'mrn'],
  ...['zip', 'zipcode', 'postcode', 'postal'].map((w) => [w, 'zip'] as const),
  // City, town and county are geographic subdivisions smaller than a state (Safe Harbor B).
  ...['address', 'street', 'city', 'town', 'county'].map((w) => [w, 'address'] as const),
  ...['dob', 'birthdate', 'birthday', 'birthdt'].map((w) => [w, 'birthdate'] as const),
  ...['passport', 'licence', 'license', 'vin'].map((w) => [w, 'document'] as const),
  ...['url', 'website', 'homepage'].map((w) => [w, 'url'] as const),
  ...['ip', 'ipaddress'].map((w) => [w, 'ip'] as const),
]);

/** Words that, in a column's name, say its full dates are dates of birth. */
const BIRTH_WORDS = new Set(['birth', 'born', 'dob', 'bday', 'birthday', 'birthdate', 'birthdt']);

/** Words that, in an `age` column's name, say it is not in years. */
const NOT_YEARS = new Set(['month', 'months', 'mo', 'mos', 'week', 'weeks', 'wk', 'wks', 'day', 'days', 'hour', 'hours', 'hr', 'hrs', 'min', 'minutes']);

/**
 * The kind of identifier a column's name says it holds, or undefined: its words (see
 * `nameWords`) against a list, then schema inference's `personalIdentifierName` (a person's name,
 * a date of birth; anything else it names counts as an `identifier`).
 */
export function phiNameKind(name: string): PhiKind | undefined {
  for (const w of nameWords(name)) {
    const k = NAME_WORDS.get(w);
    if (k !== undefined) return k;
  }
  const what = personalIdentifierName(name);
  if (what === undefined) return undefined;
  if (what === "a person's name") return 'name';
  if (what === 'a date of birth') return 'birthdate';
  return 'identifier';
}

/** Whether a column's name says it holds ages in years (`age`, `age_years`, `PatientAge`; not `age_months`). */
export function isAgeName(name: string): boolean {
  const words = nameWords(name);
  return words.includes('age') && !words.some((w) => NOT_YEARS.has(w));
}

/** A value shape, as `valueShape` reads it. */
export type ValueShape = 'email' | 'phone' | 'ssn' | 'address' | 'zip' | 'url' | 'ip' | 'date';

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAlnum(c: number): boolean {
  return isDigit(c) || ((c | 0x20) >= 97 && (c | 0x20) <= 122);
}

function email(s: string): boolean {
  const at = s.indexOf('@');
  if (at <= 0 || at !== s.lastIndexOf('@') || at === s.length - 1) return false;
  for (let i = 0; i < at; i++) {
    const c = s.charCodeAt(i);
    if (!isAlnum(c) && c !== 46 && c !== 95 && c !== 37 && c !== 43 && c !== 45 && c !== 39) return false;
  }
  // The domain: labels of letters, digits and hyphens, at least two, the last of letters (2+).
  let labels = 0;
  let labelLen = 0;
  let letters = true;
  for (let i = at + 1; i <= s.length; i++) {
    const c = i === s.length ? 46 : s.charCodeAt(i);
    if (c === 46) {
      if (labelLen === 0) return false;
      labels++;
      if (i === s.length) return labels >= 2 && letters && labelLen >= 2;
      labelLen = 0;
      letters = true;
      continue;
    }
    if (!isAlnum(c) && c !== 45) return false;
    if (isDigit(c) || c === 45) letters = false;
    labelLen++;
  }
  return false;
}

/**
 * The lengths of the runs of digits in `s`, if `s` holds only digits and the separators
 * `seps` (char codes); undefined otherwise. At most 8 runs are kept (more: undefined).
 */
function digitRuns(s: string, from: number, to: number, seps: string): number[] | undefined {
  const runs: number[] = [];
  let run = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (isDigit(c)) {
      run++;
      continue;
    }
    if (seps.indexOf(s[i]!) < 0) return undefined;
    if (run > 0) {
      if (runs.length === 8) return undefined;
      runs.push(run);
    }
    run = 0;
  }
  if (run > 0) {
    if (runs.length === 8) return undefined;
    runs.push(run);
  }
  return runs;
}

function same(runs: number[], ...want: number[]): boolean {
  if (runs.length !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (runs[i] !== want[i]) return false;
  return true;
}

function ssn(s: string): boolean {
  if (s.length !== 11) return false;
  const sep = s[3];
  if ((sep !== '-' && sep !== ' ') || s[6] !== sep) return false;
  for (const i of [0, 1, 2, 4, 5, 7, 8, 9, 10]) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

function phone(s: string): boolean {
  // An extension at the end (x123, ext. 123) is not part of the number.
  let end = s.length;
  const lower = s.toLowerCase();
  const ext = lower.lastIndexOf('ext');
  const x = ext >= 0 ? ext : lower.lastIndexOf('x');
  if (x > 0) {
    for (let i = x; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (!isDigit(c) && c !== 32 && c !== 46 && !'ext'.includes(lower[i]!)) return false;
    }
    end = x;
  }
  const plus = s.charCodeAt(0) === 43;
  const runs = digitRuns(s, plus ? 1 : 0, end, ' -.()');
  if (runs === undefined || runs.length < 2) return false;
  if (same(runs, 3, 3, 4)) return true;
  if (same(runs, 1, 3, 3, 4) && s.indexOf('1') === (plus ? 1 : 0)) return true;
  // International: +country code, then 8 to 14 more digits in groups.
  if (plus) {
    let total = 0;
    for (const r of runs) total += r;
    return runs[0]! <= 3 && total >= 9 && total <= 15;
  }
  return false;
}

function ipv4(s: string): boolean {
  let parts = 0;
  let v = -1;
  for (let i = 0; i <= s.length; i++) {
    const c = i === s.length ? 46 : s.charCodeAt(i);
    if (c === 46) {
      if (v < 0 || v > 255) return false;
      parts++;
      v = -1;
    } else if (isDigit(c)) {
      v = v < 0 ? c - 48 : v * 10 + c - 48;
      if (v > 255) return false;
    } else return false;
  }
  return parts === 4;
}

function url(s: string): boolean {
  if (s.indexOf(' ') >= 0) return false;
  const l = s.slice(0, 8).toLowerCase();
  return (l.startsWith('http://') && s.length > 7) || (l.startsWith('https://') && s.length > 8) || (l.startsWith('www.') && s.length > 4);
}

function zipPlus4(s: string): boolean {
  if (s.length !== 10 || s[5] !== '-') return false;
  for (let i = 0; i < 10; i++) if (i !== 5 && !isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** A full date (day, month and year): ISO `2019-03-02`, `2019/03/02`, US `3/2/2019`, `02.03.2019`, `02-03-2019`. */
function fullDate(s: string): boolean {
  // The date part ends at a `T` or a space (a time may follow).
  let end = s.length;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === 'T' || s[i] === ' ') {
      end = i;
      break;
    }
  }
  if (end < 8 || end > 10) return false;
  const runs = digitRuns(s, 0, end, '-/.');
  if (runs === undefined || runs.length !== 3) return false;
  // The separators must be one character each, the same twice.
  const seps: string[] = [];
  for (let i = 0; i < end; i++) if (!isDigit(s.charCodeAt(i))) seps.push(s[i]!);
  if (seps.length !== 2 || seps[0] !== seps[1]) return false;
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 45 : s.charCodeAt(i);
    if (isDigit(c)) v = v * 10 + c - 48;
    else {
      parts.push(v);
      v = 0;
    }
  }
  const [a, b, c] = parts as [number, number, number];
  const dayMonth = (x: number, y: number) => (x >= 1 && x <= 31 && y >= 1 && y <= 12) || (x >= 1 && x <= 12 && y >= 1 && y <= 31);
  if (runs[0] === 4) return runs[1]! <= 2 && runs[2]! <= 2 && a >= 1000 && dayMonth(c, b);
  if (runs[2] === 4) return runs[0]! <= 2 && runs[1]! <= 2 && c >= 1000 && dayMonth(a, b);
  return false;
}

/** A street address: a house number, then words, one of them a street type (`123 Main St`, `4 Elm Row Suite 2`), or a PO box. */
function address(s: string): boolean {
  const words = s.split(' ');
  if (words.length < 3 || words.length > 12) return false;
  const first = words[0]!.toLowerCase().replaceAll('.', '');
  if (first === 'po' || first === 'p') return words.some((w) => w.toLowerCase() === 'box');
  // A house number: 1 to 6 digits, perhaps with a letter (12B).
  let digits = 0;
  for (let i = 0; i < first.length; i++) {
    if (isDigit(first.charCodeAt(i))) digits++;
    else if (!(i === first.length - 1 && digits > 0 && isAlnum(first.charCodeAt(i)))) return false;
  }
  if (digits < 1 || digits > 6) return false;
  for (let i = 2; i < words.length; i++) {
    let w = words[i]!.toLowerCase();
    while (w.endsWith('.') || w.endsWith(',')) w = w.slice(0, -1);
    if (STREET_TYPES.has(w)) return true;
  }
  return false;
}

/** USPS street suffixes (the common ones, full and abbreviated) and unit designators. */
const STREET_TYPES = new Set([
  'st', 'street', 'ave', 'av', 'avenue', 'rd', 'road', 'blvd', 'boulevard', 'dr', 'drive', 'ln', 'lane', 'way', 'ct', 'court', 'pl', 'place',
  'ter', 'terrace', 'row', 'cir', 'circle', 'hwy', 'highway', 'pkwy', 'parkway', 'sq', 'square', 'trl', 'trail', 'aly', 'alley', 'cres',
  'crescent', 'loop', 'pike', 'plz', 'plaza', 'run', 'xing', 'crossing', 'apt', 'suite', 'ste', 'unit',
]);

/**
 * The identifier shape of one text, or undefined: an e-mail address, a US social security number
 * (ddd-dd-dddd), a phone number (US 3-3-4 digit groups, or + and a country code), a ZIP+4 code,
 * an IPv4 address, a URL, a full date, a street address. Linear in the text, at most
 * `MAX_LENGTH` characters read.
 */
export function valueShape(text: string): ValueShape | undefined {
  const s = text.trim();
  if (s.length < 5 || s.length > MAX_LENGTH) return undefined;
  if (s.indexOf('@') >= 0) return email(s) ? 'email' : undefined;
  if (url(s)) return 'url';
  if (ssn(s)) return 'ssn';
  if (zipPlus4(s)) return 'zip';
  if (fullDate(s)) return 'date';
  if (ipv4(s)) return 'ip';
  if (phone(s)) return 'phone';
  if (address(s)) return 'address';
  return undefined;
}

/**
 * Up to `max` of a column's distinct texts, spread evenly over its dictionary (first seen first),
 * so a sample reaches past the top of the file. Numbers and missing cells are not texts.
 */
export function sampleTexts(ev: ColumnEvidence, max = SAMPLE): string[] {
  if (ev instanceof ColumnBuilder) {
    const dict = ev.dict;
    const n = dict.size;
    const out: string[] = [];
    if (n === 0) return out;
    const step = Math.max(1, n / max);
    for (let x = 0; x < n && out.length < max; x += step) out.push(dict.text(Math.floor(x)));
    return out;
  }
  // Another evidence (none today): its counted values, as many as asked.
  const out: string[] = [];
  for (const k of ev.valueCounts().keys()) {
    if (out.length >= max) break;
    out.push(k);
  }
  return out;
}

/**
 * The kind most sampled texts have (at least `SHAPE_SHARE` of them), or undefined. Full dates in
 * a column whose name speaks of birth (`birth`, `born`, `dob`...) are `birthdate`, other full
 * dates `date`.
 */
export function shapeKind(texts: readonly string[], name = ''): PhiKind | undefined {
  if (texts.length === 0) return undefined;
  const counts = new Map<ValueShape, number>();
  for (const t of texts) {
    const s = valueShape(t);
    if (s !== undefined) counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  let best: ValueShape | undefined;
  let most = 0;
  for (const [s, c] of counts) {
    if (c > most) {
      best = s;
      most = c;
    }
  }
  if (best === undefined || most < SHAPE_SHARE * texts.length) return undefined;
  if (best === 'date') return nameWords(name).some((w) => BIRTH_WORDS.has(w)) ? 'birthdate' : 'date';
  return best;
}

/** What a page may say of a column flagged by the shape of its values (never a value). */
const SHAPE_HINTS: Partial<Record<PhiKind, string>> = {
  email: 'its values look like e-mail addresses',
  phone: 'its values look like phone numbers',
  ssn: 'its values look like social security numbers',
  address: 'its values look like street addresses',
  zip: 'its values look like ZIP codes',
  url: 'its values look like web addresses (URLs)',
  ip: 'its values look like IP addresses',
  birthdate: 'its values are full dates and its name suggests a date of birth',
  text: 'its values look like free text, which may name people',
};

/** What a name says a column holds, in the words of `personalIdentifierName`. */
const NAME_HINTS: Partial<Record<PhiKind, string>> = {
  name: "a person's name",
  email: 'an email address',
  phone: 'a phone or fax number',
  ssn: 'a social security number',
  mrn: 'a medical record number',
  address: 'an address',
  zip: 'an address',
  birthdate: 'a date of birth',
  document: 'a document number',
  url: 'a web address',
  ip: 'an IP address',
};

/** What `columnPhi` found. */
export interface ColumnPhi {
  kind: PhiKind;
  /**
   * Words for the profile's `identifier` flag (`the name suggests an address`, `its values look
   * like phone numbers`), never a value; undefined for `identifier` (schema inference's own hint
   * says why) and for `date` (full dates of events, which de-identification cuts to the year and
   * a profile shows like any date column).
   */
  hint?: string;
}

/** Column types whose values are read for shapes: text, and dates (for dates of birth). */
const SHAPED_TYPES: ReadonlySet<ColumnType> = new Set<ColumnType>(['categorical', 'identifier', 'text', 'datetime']);

/**
 * What kind of PHI a column may hold, or undefined: its name first (`phiNameKind`), then the
 * shape of a sample of its texts (`shapeKind`; text and datetime columns only, and for a
 * datetime column only a date of birth counts), then a column typed `identifier` by schema
 * inference (`identifier`); a column typed `text`, or a categorical one that reads as free
 * text (`text`).
 */
export function columnPhi(name: string, type: ColumnType, ev?: ColumnEvidence): ColumnPhi | undefined {
  const byName = phiNameKind(name);
  if (byName !== undefined) {
    const what = NAME_HINTS[byName];
    return what !== undefined ? { kind: byName, hint: `the name suggests ${what}` } : { kind: byName };
  }
  if (ev !== undefined && SHAPED_TYPES.has(type)) {
    const kind = shapeKind(sampleTexts(ev), name);
    if (kind !== undefined && (type !== 'datetime' || kind === 'birthdate')) {
      const hint = SHAPE_HINTS[kind];
      return hint !== undefined ? { kind, hint } : { kind };
    }
  }
  if (ev !== undefined && (type === 'text' || (type === 'categorical' && freeText(ev)))) return { kind: 'text', hint: SHAPE_HINTS.text! };
  if (type === 'identifier') return { kind: 'identifier' };
  return undefined;
}

/**
 * Whether a text column reads as free text: long or several-word values (schema inference's
 * `text` test) that are mostly different from row to row, however few the rows (inference asks
 * for more than 20 distinct values before it types a column `text`; a note is no less personal
 * in a small table).
 */
function freeText(ev: ColumnEvidence): boolean {
  const strs = Math.max(ev.strCount, 1);
  const textLike = ev.strLenSum / strs >= 25 || ev.multiWord / strs >= 0.5;
  return ev.strCount > 0 && textLike && ev.distinct >= 0.5 * ev.nonMissing;
}
