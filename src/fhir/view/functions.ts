/**
 * The FHIRPath functions a view may call: fhirpath.js's own, less the ones with side effects, plus
 * the SQL-on-FHIR functions (`getResourceKey`, `getReferenceKey`) and boundary functions that give
 * a dateTime without a timezone the widest range, as the SQL-on-FHIR suite expects.
 *
 * The key functions are plain JavaScript shared with the fast path, so both give the same keys.
 */
import fhirpath from 'fhirpath';
import type { UserInvocationTable } from 'fhirpath';
import { R4_RESOURCE_TYPES } from '../resource-types.js';
import { r4 } from './model.js';

/** The environment variable that carries a Bundle entry's `fullUrl` into `getResourceKey()`. */
export const FULL_URL_VAR = 'medfit fullUrl';

/**
 * The key of a resource: its `id`, or, for a resource without one, the id part of the Bundle
 * entry's `fullUrl` (`urn:uuid:x` → `x`, `http://…/Patient/x` → `x`).
 */
export function resourceKey(resource: unknown, fullUrl: unknown): string | undefined {
  if (resource !== null && typeof resource === 'object') {
    const id = (resource as { id?: unknown }).id;
    if (typeof id === 'string' && id !== '') return id;
  }
  if (typeof fullUrl !== 'string') return undefined;
  return parseReference(fullUrl)?.id;
}

/**
 * The key a Reference points at, equal to the `getResourceKey()` of the resource it names:
 * `Patient/123` → `123` (a version, `/_history/2`, is dropped), `urn:uuid:x` → `x`, an absolute
 * URL → the id of its last two segments. With `wantType`, a reference known to name another type
 * gives no key; a `urn:uuid:` reference says its type only through `Reference.type`. Contained
 * (`#x`) and identifier-only references give no key.
 */
export function referenceKey(reference: unknown, wantType?: string): string | undefined {
  if (reference === null || typeof reference !== 'object' || Array.isArray(reference)) return undefined;
  const r = reference as { reference?: unknown; type?: unknown };
  if (typeof r.reference !== 'string') return undefined;
  const parsed = parseReference(r.reference);
  if (parsed === undefined) return undefined;
  if (wantType !== undefined) {
    const type = parsed.type ?? (typeof r.type === 'string' ? r.type : undefined);
    if (type !== undefined && type !== wantType) return undefined;
  }
  return parsed.id;
}

/** `Type/id`, `…/Type/id/_history/v`, `urn:uuid:id` → type (when the text says it) and id; anything else → undefined. */
function parseReference(ref: string): { type?: string; id: string } | undefined {
  if (ref.startsWith('urn:uuid:')) {
    const id = ref.slice(9);
    return id === '' ? undefined : { id };
  }
  if (ref.startsWith('#')) return undefined;
  // Split on '/' by hand from the end: at most four segments matter (Type/id/_history/v).
  let end = ref.length;
  const q = ref.indexOf('?');
  if (q >= 0) end = q;
  const segs: string[] = [];
  let stop = end;
  for (let i = end - 1; i >= -1 && segs.length < 4; i--) {
    if (i < 0 || ref.charCodeAt(i) === 0x2f) {
      segs.push(ref.slice(i + 1, stop));
      stop = i;
    }
  }
  // segs is reversed: [last, second to last, …].
  let id = segs[0];
  let type = segs[1];
  if (segs.length >= 4 && segs[1] === '_history') {
    id = segs[2];
    type = segs[3];
  }
  if (id === undefined || id === '' || type === undefined || !R4_RESOURCE_TYPES.has(type)) return undefined;
  return { type, id };
}

type Node = { data?: unknown; parentResNode?: unknown } | unknown;

/** A node's data (fhirpath's `util.valData`). */
const valData = (n: Node): unknown => fhirpath.util.valData(n);

/** fhirpath's `FP_DateTime` class (not exported), from a literal; its subclasses (dates, instants) are not it. */
const FP_DATE_TIME = (fhirpath.evaluate({}, '@2000-01-01T10:00', {}, r4, { resolveInternalTypes: false })[0] as object).constructor as new (ctx: unknown, s: string) => unknown;

/** An `FP_DateTime`-like value: a boundary can carry a timezone it lacks. */
interface TimeLike {
  toString(): string;
  lowBoundary(precision?: number): unknown;
  highBoundary(precision?: number): unknown;
}

/**
 * `lowBoundary`/`highBoundary` as fhirpath computes them, except that a dateTime boundary without a
 * timezone takes the extreme one (+14:00 low, -12:00 high): an instant anywhere on Earth falls
 * inside, which is what the SQL-on-FHIR suite and the FHIRPath 2.0 text ask for.
 */
function boundary(this: { getDecimal(n: number): unknown }, coll: unknown[], precision: unknown, high: boolean): unknown[] {
  if (coll.length === 0) return [];
  if (coll.length > 1) throw new Error(`${high ? 'highBoundary' : 'lowBoundary'}() expects a single value`);
  let v = fhirpath.util.valDataConverted(coll[0]);
  if (typeof v === 'number') v = this.getDecimal(v);
  if (v === null || typeof v !== 'object' || typeof (v as TimeLike).lowBoundary !== 'function') {
    throw new Error(`${high ? 'highBoundary' : 'lowBoundary'}() expects a decimal, date, dateTime or time`);
  }
  // fhirpath hands an Integer argument over as an FP_Decimal (as its own `normalizeBoundaryPrecision` expects).
  const p = precision instanceof fhirpath.FP_Decimal ? precision.toNumber() : (precision as number | undefined);
  const r = high ? (v as TimeLike).highBoundary(p) : (v as TimeLike).lowBoundary(p);
  if (r === null || r === undefined) return [];
  if ((r as object).constructor === FP_DATE_TIME) {
    const s = String(r);
    const t = s.indexOf('T');
    if (t >= 0 && !hasZone(s, t)) return [new FP_DATE_TIME(this, s + (high ? '-12:00' : '+14:00'))];
  }
  return [r];
}

/** Whether the time part of a dateTime text (from `t`, the 'T') ends in `Z` or `±hh:mm`. */
function hasZone(s: string, t: number): boolean {
  for (let i = t + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5a || c === 0x2b || c === 0x2d) return true;
  }
  return false;
}

/** The functions added to fhirpath.js (`options.userInvocationTable`), or changed: see each. */
export const USER_FUNCTIONS: UserInvocationTable = {
  // fhirpath.js gives nothing for an empty input; SQL-on-FHIR's `join` gives '' (a column of joined names is '' when there are none).
  join: {
    fn(coll: unknown[], separator?: unknown): unknown[] {
      const parts: string[] = [];
      for (const n of coll) {
        const d = valData(n);
        if (typeof d === 'string') parts.push(d);
        else if (d != null) throw new Error('join() takes strings');
      }
      return [parts.join(typeof separator === 'string' ? separator : '')];
    },
    arity: { 0: [], 1: ['String'] },
    internalStructures: true,
  },
  getResourceKey: {
    fn(this: { vars: Record<string, unknown> }, coll: unknown[]): unknown[] {
      const out: string[] = [];
      for (const n of coll) {
        const d = valData(n);
        const root = !(n !== null && typeof n === 'object' && (n as { parentResNode?: unknown }).parentResNode);
        const k = resourceKey(d, root ? this.vars[FULL_URL_VAR] : undefined);
        if (k !== undefined) out.push(k);
      }
      return out;
    },
    arity: { 0: [] },
    internalStructures: true,
  },
  getReferenceKey: {
    fn(coll: unknown[], type?: { name?: unknown }): unknown[] {
      const want = type && typeof type.name === 'string' ? type.name : undefined;
      const out: string[] = [];
      for (const n of coll) {
        const k = referenceKey(valData(n), want);
        if (k !== undefined) out.push(k);
      }
      return out;
    },
    arity: { 0: [], 1: ['TypeSpecifier'] },
    internalStructures: true,
  },
  lowBoundary: {
    fn(this: { getDecimal(n: number): unknown }, coll: unknown[], precision?: unknown) {
      return boundary.call(this, coll, precision, false);
    },
    arity: { 0: [], 1: ['Integer'] },
    internalStructures: true,
  },
  highBoundary: {
    fn(this: { getDecimal(n: number): unknown }, coll: unknown[], precision?: unknown) {
      return boundary.call(this, coll, precision, true);
    },
    arity: { 0: [], 1: ['Integer'] },
    internalStructures: true,
  },
};

/**
 * Every function a view may call, with the numbers of arguments it takes (`min` for variadic
 * ones). fhirpath.js 5.2's table, less `trace` (it would log values, which are patient data) and
 * `memberOf` (it needs a terminology server), plus `USER_FUNCTIONS`.
 */
export const FUNCTION_ARITY: ReadonlyMap<string, { counts: readonly number[]; min?: number }> = new Map<string, { counts: readonly number[]; min?: number }>(
  Object.entries({
    resolve: [0], empty: [0], not: [0], exists: [0, 1], all: [1], allTrue: [0], anyTrue: [0], allFalse: [0], anyFalse: [0],
    subsetOf: [1], supersetOf: [1], isDistinct: [0], distinct: [0], count: [0], where: [1], extension: [1], select: [1],
    aggregate: [1, 2], sum: [0], min: [0], max: [0], avg: [0], weight: [0], ordinal: [0], single: [0], first: [0], last: [0],
    type: [0], ofType: [1], is: [1], as: [1], tail: [0], take: [1], skip: [1], combine: [1], union: [1], intersect: [1],
    exclude: [1], iif: [2, 3], defineVariable: [1, 2], toInteger: [0], toLong: [0], toDecimal: [0], toString: [0], toDate: [0],
    toDateTime: [0], toTime: [0], toBoolean: [0], toQuantity: [0, 1], hasValue: [0], getValue: [0], htmlChecks: [0],
    pathname: [0, 1], convertsToBoolean: [0], convertsToInteger: [0], convertsToLong: [0], convertsToDecimal: [0],
    convertsToString: [0], convertsToDate: [0], convertsToDateTime: [0], convertsToTime: [0], convertsToQuantity: [0],
    indexOf: [1], lastIndexOf: [1], substring: [1, 2], startsWith: [1], endsWith: [1], contains: [1], upper: [0], lower: [0],
    replace: [2], matches: [1, 2], matchesFull: [1, 2], replaceMatches: [2], length: [0], toChars: [0], join: [0, 1], split: [1],
    trim: [0], encode: [1], decode: [1], escape: [1], unescape: [1], abs: [0], ceiling: [0], exp: [0], floor: [0], ln: [0],
    log: [1], power: [1], round: [0, 1], sqrt: [0], truncate: [0], lowBoundary: [0, 1], highBoundary: [0, 1], now: [0],
    today: [0], timeOfDay: [0], yearOf: [0], monthOf: [0], dayOf: [0], hourOf: [0], minuteOf: [0], secondOf: [0],
    millisecondOf: [0], timezoneOffsetOf: [0], dateOf: [0], timeOf: [0], repeat: [1], children: [0], descendants: [0],
    getResourceKey: [0], getReferenceKey: [0, 1],
  }).map(([k, counts]): [string, { counts: readonly number[]; min?: number }] => [k, { counts }]),
).set('coalesce', { counts: [], min: 1 }).set('sort', { counts: [], min: 0 });
