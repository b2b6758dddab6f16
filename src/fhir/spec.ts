/**
 * The feature spec: validation, the columns it makes, and its compilation to SQL-on-FHIR v2
 * ViewDefinitions (the views the feature builder runs, and that a user can run with
 * `medfit fhir run` to see the rows behind a table).
 *
 * Also the calendar arithmetic the spec's dates and durations need (day numbers, `365d`, `6mo`,
 * `2y`), shared with the builder.
 */
import { Errors, MAX_PROBLEMS, type ErrorDetail } from '../core/index.js';
import type { Aggregation, ConditionFeature, FeatureSpec, LabelSpec, ObservationFeature, ViewDefinition, ViewSelect } from './types.js';
import { isQuotableUnit, ucumProblem } from './ucum.js';

/** The aggregations an Observation feature may ask for. */
export const AGGREGATIONS: readonly Aggregation[] = ['last', 'first', 'mean', 'min', 'max', 'count'];

const MS_PER_DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Calendar

/** Days in month `m` (1-12) of year `y`. */
export function daysInMonth(y: number, m: number): number {
  return m === 2 ? ((y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** The day number (days since 1970-01-01) of a calendar date. */
export function dayNumber(y: number, m: number, d: number): number {
  if (y >= 0 && y < 100) {
    // Date.UTC reads years 0-99 as 1900-1999; setUTCFullYear does not.
    const t = new Date(0);
    t.setUTCFullYear(y, m - 1, d);
    return t.getTime() / MS_PER_DAY;
  }
  return Date.UTC(y, m - 1, d) / MS_PER_DAY;
}

/** The calendar date of a day number. */
export function calendarOf(day: number): { y: number; m: number; d: number } {
  const t = new Date(day * MS_PER_DAY);
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

/** A day number as `YYYY-MM-DD`. */
export function isoOfDay(day: number): string {
  const { y, m, d } = calendarOf(day);
  return `${String(y).padStart(4, '0')}-${m < 10 ? '0' : ''}${m}-${d < 10 ? '0' : ''}${d}`;
}

/** The day number of an ISO date `YYYY-MM-DD` (a real calendar date), or undefined. */
export function parseIsoDate(s: string): number | undefined {
  if (s.length !== 10 || s[4] !== '-' || s[7] !== '-') return undefined;
  const y = digits(s, 0, 4);
  const m = digits(s, 5, 7);
  const d = digits(s, 8, 10);
  if (y < 0 || m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m)) return undefined;
  return dayNumber(y, m, d);
}

/** The number written by the ASCII digits s[from, to), or -1 when one is not a digit. */
export function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return to > from ? n : -1;
}

/** A duration of the spec: `365d`, `12wk`, `6mo`, `2y`. */
export interface Duration {
  n: number;
  unit: 'd' | 'wk' | 'mo' | 'y';
}

/** Longest duration a spec may name (a window longer than any record is a mistake, not a choice). */
const MAX_DURATION_DAYS = 200 * 366;

/** `365d`, `12wk`, `6mo`, `2y` parsed, or undefined. */
export function parseDuration(s: string): Duration | undefined {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
  if (i === 0 || i > 6) return undefined;
  const n = Number(s.slice(0, i));
  const unit = s.slice(i);
  if (n <= 0 || (unit !== 'd' && unit !== 'wk' && unit !== 'mo' && unit !== 'y')) return undefined;
  const days = unit === 'd' ? n : unit === 'wk' ? 7 * n : unit === 'mo' ? 31 * n : 366 * n;
  return days <= MAX_DURATION_DAYS ? { n, unit } : undefined;
}

/**
 * The day `sign × duration` from `day`, by the calendar: months and years keep the day of the
 * month, clamped to the month's end (2024-03-31 − 1mo = 2024-02-29).
 */
export function addDuration(day: number, dur: Duration, sign: 1 | -1): number {
  if (dur.unit === 'd') return day + sign * dur.n;
  if (dur.unit === 'wk') return day + sign * 7 * dur.n;
  const { y, m, d } = calendarOf(day);
  const months = (dur.unit === 'mo' ? dur.n : 12 * dur.n) * sign;
  const total = y * 12 + (m - 1) + months;
  const ty = Math.floor(total / 12);
  const tm = total - ty * 12 + 1;
  return dayNumber(ty, tm, Math.min(d, daysInMonth(ty, tm)));
}

// ---------------------------------------------------------------------------------------------
// Validation

const TOP_KEYS = new Set(['index', 'patient', 'observations', 'conditions', 'label']);
const PATIENT_KEYS = new Set(['age', 'sex']);
const OBSERVATION_KEYS = new Set(['name', 'code', 'component', 'agg', 'within', 'unit', 'values']);
const CONDITION_KEYS = new Set(['name', 'codes', 'as']);
const LABEL_KEYS = new Set(['name', 'condition', 'observation', 'within']);
const LABEL_CONDITION_KEYS = new Set(['codes']);
const LABEL_OBSERVATION_KEYS = new Set(['code', 'component', 'unit', 'above', 'below']);

const MAX_NAME = 64;
const MAX_CODE = 256;

/** A JSON pointer's reference token (RFC 6901). */
function token(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Names that are properties of every JavaScript object (`__proto__`, `constructor`, `toString`…)
 * or `prototype`: a column of one of these names read from a plain object (`record[name]`) would
 * find the object's machinery, not a value, or set its prototype.
 */
const RESERVED_NAMES = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

/** A column name: a letter or `_`, then letters, digits, `_` (so it is a name in SQL and in pandas too). */
function isName(s: string): boolean {
  if (s.length === 0 || s.length > MAX_NAME) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
    if (!letter && !(i > 0 && c >= 48 && c <= 57)) return false;
  }
  return true;
}

/**
 * Characters a system or code may not have: they mean something in a FHIR search URL, where the
 * codes go (CDS Hooks prefetch `Observation?patient={{context.patientId}}&code=system|code,…`):
 * `&` `#` `?` `=` end or start a parameter, `,` and `|` split a token list, `{` `}` are template
 * markup, `$` and `\` are escapes. Whitespace and control characters are refused too.
 */
const SEARCH_SPECIAL = '&#{},?=$\\|';

/** Unicode whitespace (beyond ASCII's): no-break spaces, line and paragraph separators, BOM. */
function isOtherSpace(c: number): boolean {
  return c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200b) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/** Why `s` is not a `system|code` (one bar, both parts present, no character of `SEARCH_SPECIAL`, no space), or undefined. */
function systemCodeProblem(s: string): string | undefined {
  const example = 'expected a "system|code" string such as "http://loinc.org|4548-4"';
  if (s.length > MAX_CODE) return `${example} (at most ${MAX_CODE} characters)`;
  const bar = s.indexOf('|');
  if (bar <= 0 || bar === s.length - 1 || s.indexOf('|', bar + 1) >= 0) return example;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127 || (c >= 0x80 && c <= 0x9f) || isOtherSpace(c) || (i !== bar && SEARCH_SPECIAL.includes(s[i]!))) {
      return `${example}: a system or code may not contain whitespace, control characters or any of & # { } , ? = $ \\ | (codes go into FHIR search URLs)`;
    }
  }
  return undefined;
}

/** `system|code`: both parts present, one bar, no whitespace, control characters or URL specials (see `systemCodeProblem`). */
export function isSystemCode(s: string): boolean {
  return systemCodeProblem(s) === undefined;
}

/** Collects problems at JSON pointers, up to `MAX_PROBLEMS`, counting the rest. */
class Problems {
  readonly list: ErrorDetail[] = [];
  more = 0;
  add(pointer: string, message: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push({ pointer, message });
    else this.more++;
  }
}

/**
 * The feature spec from parsed JSON, checked whole: unknown keys, names (valid column names,
 * unique, not `patient`), `system|code` forms, aggregations, durations (`365d`, `6mo`, `2y`), the
 * index date (ISO `YYYY-MM-DD`), units (UCUM), coded-value maps and the label's shape. Every
 * problem is reported at once, each at its JSON pointer; the message names the first, e.g.
 * `spec.json: /observations/2/agg: expected one of last, first, mean, min, max, count (and 1 more
 * problem(s))`, and the error's `details` list them all. Returns a clean copy of the spec.
 */
export function parseFeatureSpec(json: unknown, source: string): FeatureSpec {
  const p = new Problems();
  if (!isObject(json)) throw Errors.badData(source, 'a feature spec is a JSON object (index, patient, observations, conditions, label)');
  unknownKeys(json, '', TOP_KEYS, p);
  const names = new Map<string, string>(); // lower-case name → pointer of its first use
  const claim = (name: string, pointer: string) => {
    const key = name.toLowerCase();
    const first = names.get(key);
    if (first !== undefined) p.add(pointer, `the name "${name}" is already used at ${first || '/'} (names are compared ignoring case)`);
    else names.set(key, pointer);
  };
  names.set('patient', '(the patient key column)');

  const spec: FeatureSpec = { index: '' };
  if (typeof json.index !== 'string') p.add('/index', json.index === undefined ? 'is required: the index date, e.g. "2019-01-01"' : 'expected an ISO date string, e.g. "2019-01-01"');
  else if (parseIsoDate(json.index) === undefined) p.add('/index', 'expected an ISO date YYYY-MM-DD that exists in the calendar');
  else spec.index = json.index;

  const patient = { age: true, sex: true };
  if (json.patient !== undefined) {
    if (!isObject(json.patient)) p.add('/patient', 'expected an object, e.g. {"age": true, "sex": true}');
    else {
      unknownKeys(json.patient, '/patient', PATIENT_KEYS, p);
      for (const k of ['age', 'sex'] as const) {
        const v = json.patient[k];
        if (v === undefined) continue;
        if (typeof v !== 'boolean') p.add(`/patient/${k}`, 'expected true or false');
        else patient[k] = v;
      }
    }
    spec.patient = { ...patient };
  }
  if (patient.age) names.set('age', '/patient/age');
  if (patient.sex) names.set('sex', '/patient/sex');

  if (json.observations !== undefined) {
    if (!Array.isArray(json.observations)) p.add('/observations', 'expected an array of Observation features');
    else spec.observations = json.observations.map((o, i) => observationFeature(o, `/observations/${i}`, p, claim)).filter((o): o is ObservationFeature => o !== undefined);
  }
  if (json.conditions !== undefined) {
    if (!Array.isArray(json.conditions)) p.add('/conditions', 'expected an array of Condition features');
    else spec.conditions = json.conditions.map((c, i) => conditionFeature(c, `/conditions/${i}`, p, claim)).filter((c): c is ConditionFeature => c !== undefined);
  }
  if (json.label !== undefined) {
    const label = labelSpec(json.label, '/label', p, claim);
    if (label) spec.label = label;
  }
  if (p.list.length === 0 && featureColumns(spec).length === 0) p.add('', 'defines no feature: a model needs at least one (age, sex, an Observation or a Condition)');
  if (p.list.length) {
    const first = p.list[0]!;
    const rest = p.list.length - 1 + p.more;
    throw Errors.badData(source, `${first.pointer || '/'}: ${first.message}${rest > 0 ? ` (and ${rest} more problem(s))` : ''}`, p.list);
  }
  return spec;
}

function unknownKeys(o: Record<string, unknown>, at: string, allowed: Set<string>, p: Problems): void {
  for (const k of Object.keys(o)) if (!allowed.has(k)) p.add(`${at}/${token(k)}`, `unknown key; expected one of ${[...allowed].join(', ')}`);
}

function name(o: Record<string, unknown>, at: string, p: Problems, claim: (name: string, pointer: string) => void): string {
  const v = o.name;
  if (typeof v !== 'string') p.add(`${at}/name`, v === undefined ? 'is required' : 'expected a string');
  else if (!isName(v)) p.add(`${at}/name`, `expected a column name: a letter or _, then letters, digits or _ (at most ${MAX_NAME})`);
  else if (RESERVED_NAMES.has(v)) p.add(`${at}/name`, `"${v}" is reserved (a property of every JavaScript object): choose another name`);
  else {
    claim(v, `${at}/name`);
    return v;
  }
  return '';
}

/** `system|code` or a non-empty list of them. */
function codes(v: unknown, at: string, p: Problems, listOnly: boolean): string | string[] | undefined {
  const what = 'a "system|code" string such as "http://loinc.org|4548-4"';
  if (typeof v === 'string' && !listOnly) {
    const problem = systemCodeProblem(v);
    if (problem !== undefined) p.add(at, problem);
    return v;
  }
  if (!Array.isArray(v) || v.length === 0) {
    p.add(at, v === undefined ? 'is required' : listOnly ? `expected a non-empty array of ${what}` : `expected ${what}, or a non-empty array of them`);
    return undefined;
  }
  v.forEach((c, i) => {
    const problem = typeof c === 'string' ? systemCodeProblem(c) : `expected ${what}`;
    if (problem !== undefined) p.add(`${at}/${i}`, problem);
  });
  return v as string[];
}

function within(v: unknown, at: string, p: Problems, required: boolean): string | undefined {
  if (v === undefined) {
    if (required) p.add(at, 'is required: how far the window reaches, e.g. "365d", "6mo", "2y"');
    return undefined;
  }
  if (typeof v !== 'string' || parseDuration(v) === undefined) {
    p.add(at, 'expected a duration: a positive whole number and d, wk, mo or y, e.g. "365d", "6mo", "2y" (at most 200 years)');
    return undefined;
  }
  return v;
}

function unit(v: unknown, at: string, p: Problems): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    p.add(at, 'expected a UCUM unit string, e.g. "mmol/L"');
    return undefined;
  }
  const problem = ucumProblem(v);
  if (problem !== undefined) p.add(at, `expected a UCUM unit: ${isQuotableUnit(v) ? `"${v}"` : 'this one'} ${problem}`);
  return v;
}

function observationFeature(o: unknown, at: string, p: Problems, claim: (name: string, pointer: string) => void): ObservationFeature | undefined {
  if (!isObject(o)) {
    p.add(at, 'expected an object such as {"name": "hba1c", "code": "http://loinc.org|4548-4", "agg": "last", "within": "365d"}');
    return undefined;
  }
  unknownKeys(o, at, OBSERVATION_KEYS, p);
  const f: ObservationFeature = { name: name(o, at, p, claim), code: codes(o.code, `${at}/code`, p, false) ?? [] };
  if (o.component !== undefined) f.component = codes(o.component, `${at}/component`, p, false) ?? [];
  if (o.agg !== undefined) {
    if (typeof o.agg !== 'string' || !(AGGREGATIONS as readonly string[]).includes(o.agg)) p.add(`${at}/agg`, `expected one of ${AGGREGATIONS.join(', ')}`);
    else f.agg = o.agg as Aggregation;
  }
  const w = within(o.within, `${at}/within`, p, false);
  if (w !== undefined) f.within = w;
  const u = unit(o.unit, `${at}/unit`, p);
  if (u !== undefined) f.unit = u;
  if (o.values !== undefined) {
    if (!isObject(o.values) || Object.keys(o.values).length === 0) p.add(`${at}/values`, 'expected an object mapping coded values ("system|code") to numbers, e.g. {"http://snomed.info/sct|449868002": 1}');
    else {
      for (const [k, v] of Object.entries(o.values)) {
        const problem = systemCodeProblem(k);
        if (problem !== undefined) p.add(`${at}/values/${token(k)}`, problem.replace('a "system|code" string', 'a "system|code" key'));
        if (typeof v !== 'number' || !Number.isFinite(v)) p.add(`${at}/values/${token(k)}`, 'expected a number');
      }
      f.values = { ...(o.values as Record<string, number>) };
      if (o.unit !== undefined) p.add(`${at}/unit`, 'a coded feature (values) has no unit: leave one of them out');
    }
  }
  return f;
}

function conditionFeature(o: unknown, at: string, p: Problems, claim: (name: string, pointer: string) => void): ConditionFeature | undefined {
  if (!isObject(o)) {
    p.add(at, 'expected an object such as {"name": "diabetes", "codes": ["http://snomed.info/sct|44054006"]}');
    return undefined;
  }
  unknownKeys(o, at, CONDITION_KEYS, p);
  const c: ConditionFeature = { name: name(o, at, p, claim), codes: (codes(o.codes, `${at}/codes`, p, true) as string[] | undefined) ?? [] };
  if (o.as !== undefined) {
    if (o.as !== 'flag' && o.as !== 'onset') p.add(`${at}/as`, 'expected one of flag, onset');
    else c.as = o.as;
  }
  return c;
}

function labelSpec(o: unknown, at: string, p: Problems, claim: (name: string, pointer: string) => void): LabelSpec | undefined {
  if (!isObject(o)) {
    p.add(at, 'expected an object: {"name", "condition": {"codes"}, "within"} or {"name", "observation": {"code", "above" or "below"}, "within"}');
    return undefined;
  }
  unknownKeys(o, at, LABEL_KEYS, p);
  const n = name(o, at, p, claim);
  const w = within(o.within, `${at}/within`, p, true) ?? '';
  if ((o.condition === undefined) === (o.observation === undefined)) {
    p.add(at, 'expected exactly one of condition, observation');
    return undefined;
  }
  if (o.condition !== undefined) {
    if (!isObject(o.condition)) {
      p.add(`${at}/condition`, 'expected an object: {"codes": ["system|code", …]}');
      return undefined;
    }
    unknownKeys(o.condition, `${at}/condition`, LABEL_CONDITION_KEYS, p);
    return { name: n, condition: { codes: (codes(o.condition.codes, `${at}/condition/codes`, p, true) as string[] | undefined) ?? [] }, within: w };
  }
  const ob = o.observation;
  if (!isObject(ob)) {
    p.add(`${at}/observation`, 'expected an object: {"code", "component"?, "unit"?, "above" and/or "below"}');
    return undefined;
  }
  const oat = `${at}/observation`;
  unknownKeys(ob, oat, LABEL_OBSERVATION_KEYS, p);
  const out: { code: string | string[]; component?: string | string[]; unit?: string; above?: number; below?: number } = { code: codes(ob.code, `${oat}/code`, p, false) ?? [] };
  if (ob.component !== undefined) out.component = codes(ob.component, `${oat}/component`, p, false) ?? [];
  const u = unit(ob.unit, `${oat}/unit`, p);
  if (u !== undefined) out.unit = u;
  for (const k of ['above', 'below'] as const) {
    const v = ob[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) p.add(`${oat}/${k}`, 'expected a number');
    else out[k] = v;
  }
  if (ob.above === undefined && ob.below === undefined) p.add(oat, 'expected a threshold: above, below or both');
  return { name: n, observation: out, within: w };
}

// ---------------------------------------------------------------------------------------------
// Columns and views

/**
 * The table's feature columns, the model's inputs: `age`, `sex` (unless turned off), then the
 * Observation features and the Condition features in spec order. No `patient`, no label.
 */
export function featureColumns(spec: FeatureSpec): string[] {
  const cols: string[] = [];
  if (spec.patient?.age !== false) cols.push('age');
  if (spec.patient?.sex !== false) cols.push('sex');
  for (const o of spec.observations ?? []) cols.push(o.name);
  for (const c of spec.conditions ?? []) cols.push(c.name);
  return cols;
}

/** Every column of the table: `patient`, the feature columns, then the label's, when the spec has one. */
export function tableColumns(spec: FeatureSpec): string[] {
  return ['patient', ...featureColumns(spec), ...(spec.label ? [spec.label.name] : [])];
}

/** The views a spec compiles to (SQL-on-FHIR v2 ViewDefinitions, one per resource type). */
export interface SpecViews {
  patient: ViewDefinition;
  observation: ViewDefinition;
  condition: ViewDefinition;
}

const col = (name: string, path: string, type: string, description?: string) => ({ name, path, type, ...(description ? { description } : {}) });

/** Whether any feature (or the label) of the spec reads an Observation component. */
function usesComponents(spec: FeatureSpec): boolean {
  return (spec.observations ?? []).some((o) => o.component !== undefined) || (spec.label !== undefined && 'observation' in spec.label && spec.label.observation.component !== undefined);
}

/** Whether any feature of the spec reads coded values. */
function usesCodedValues(spec: FeatureSpec): boolean {
  return (spec.observations ?? []).some((o) => o.values !== undefined);
}

/**
 * The spec compiled to SQL-on-FHIR v2 ViewDefinitions: the rows the feature builder aggregates.
 * Every path is a plain member path (`ofType`, `first()`, `getResourceKey()`,
 * `getReferenceKey(Patient)`): no `where()`; the builder picks codes with a Map lookup, which is
 * what keeps half a million resources within a minute.
 *
 * - Patient: one row: `patient` (the resource key), `birth_date`, `gender`, `deceased_*`.
 * - Observation: one row per code coding (× value coding, × component coding when the spec uses
 *   them): the patient key, `id`, `status`, the dates (`effective_date_time`,
 *   `effective_instant`, `effective_period_start`, `issued`: the builder takes the first present,
 *   in that order; `issued` is when the result was released, never before the clinical time, so
 *   falling back to it can move a value after the index date, never before), the Quantity value
 *   (`quantity_value`, `quantity_unit`, `quantity_system`, `quantity_code`), the coding
 *   (`code_system`, `code`), and the coded value and components when used.
 * - Condition: one row per code coding: the patient key, `id`, the onset (`onset_date_time`,
 *   `onset_period_start`, `recorded_date` as the fallback: the record is made at or after the
 *   onset, so the fallback never moves a condition before the index date it did not precede),
 *   `clinical_status`, `verification_status` (the builder drops entered-in-error and refuted).
 */
export function specViews(spec: FeatureSpec): SpecViews {
  const patient: ViewDefinition = {
    resourceType: 'ViewDefinition',
    name: 'medfit_patient',
    status: 'active',
    resource: 'Patient',
    select: [
      {
        column: [
          col('patient', 'getResourceKey()', 'string', 'the patient key'),
          col('birth_date', 'birthDate', 'date'),
          col('gender', 'gender', 'code'),
          col('deceased_boolean', 'deceased.ofType(boolean)', 'boolean'),
          col('deceased_date_time', 'deceased.ofType(dateTime)', 'dateTime'),
        ],
      },
    ],
  };
  const observationSelects: ViewSelect[] = [
    {
      column: [
        col('patient', 'subject.getReferenceKey(Patient)', 'string', 'the patient key (empty when the subject is not a Patient)'),
        col('id', 'id', 'id'),
        col('status', 'status', 'code'),
        col('effective_date_time', 'effective.ofType(dateTime)', 'dateTime'),
        col('effective_instant', 'effective.ofType(instant)', 'instant'),
        col('effective_period_start', 'effective.ofType(Period).start', 'dateTime'),
        col('issued', 'issued', 'instant'),
        col('quantity_value', 'value.ofType(Quantity).value', 'decimal'),
        col('quantity_unit', 'value.ofType(Quantity).unit', 'string'),
        col('quantity_system', 'value.ofType(Quantity).system', 'uri'),
        col('quantity_code', 'value.ofType(Quantity).code', 'code'),
      ],
    },
    { forEach: 'code.coding', column: [col('code_system', 'system', 'uri'), col('code', 'code', 'code')] },
  ];
  if (usesCodedValues(spec)) {
    observationSelects.push({ forEachOrNull: 'value.ofType(CodeableConcept).coding', column: [col('value_system', 'system', 'uri'), col('value_code', 'code', 'code')] });
  }
  if (usesComponents(spec)) {
    observationSelects.push({
      forEachOrNull: 'component',
      column: [
        col('component_value', 'value.ofType(Quantity).value', 'decimal'),
        col('component_unit', 'value.ofType(Quantity).unit', 'string'),
        col('component_unit_system', 'value.ofType(Quantity).system', 'uri'),
        col('component_unit_code', 'value.ofType(Quantity).code', 'code'),
      ],
      select: [{ forEachOrNull: 'code.coding', column: [col('component_system', 'system', 'uri'), col('component_code', 'code', 'code')] }],
    });
  }
  const observation: ViewDefinition = { resourceType: 'ViewDefinition', name: 'medfit_observation', status: 'active', resource: 'Observation', select: observationSelects };
  const condition: ViewDefinition = {
    resourceType: 'ViewDefinition',
    name: 'medfit_condition',
    status: 'active',
    resource: 'Condition',
    select: [
      {
        column: [
          col('patient', 'subject.getReferenceKey(Patient)', 'string', 'the patient key'),
          col('id', 'id', 'id'),
          col('onset_date_time', 'onset.ofType(dateTime)', 'dateTime'),
          col('onset_period_start', 'onset.ofType(Period).start', 'dateTime'),
          col('recorded_date', 'recordedDate', 'dateTime'),
          col('clinical_status', 'clinicalStatus.coding.code.first()', 'code'),
          col('verification_status', 'verificationStatus.coding.code.first()', 'code'),
        ],
      },
      { forEach: 'code.coding', column: [col('code_system', 'system', 'uri'), col('code', 'code', 'code')] },
    ],
  };
  return { patient, observation, condition };
}
