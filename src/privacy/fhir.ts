/**
 * De-identification of FHIR R4 resources by HIPAA Safe Harbor: one walk over a resource, copying
 * what may stay and rewriting or leaving out the rest, by the rules model.ts compiles from the R4
 * model. See docs/deidentification.md for the identifier-by-identifier account; in short:
 *
 * - ids and references: `Resource.id` and the id in every reference (`Type/id`, `urn:uuid:id`,
 *   absolute URLs, `#contained`) become keyed pseudonyms of the id, the same for every spelling,
 *   so `Observation.subject` still meets `Patient.id` and a Bundle's `urn:uuid:` fullUrls still
 *   meet the references to them. Conditional references (`Patient?identifier=sys|value`) keep
 *   their system with the value pseudonymised like `Identifier.value`; any other search
 *   parameter in a reference, which may hold a name or a date, drops the reference.
 * - `Identifier.value`: a pseudonym (system and type kept); DICOM UIDs of ImagingStudy likewise.
 * - removed: HumanName, ContactPoint (telecom), Narrative (`text`), Annotation (notes),
 *   Signature, photos, `Attachment.data`/`url`/`title`/`hash`, `Meta.source`, `Device.url`,
 *   `Location.position`, every `string` and `markdown` element (free text: comments,
 *   descriptions, `valueString`, `Reference.display`, device serial and lot numbers...) except
 *   code-system terms and units (`Coding.display`, `Coding.version`, `Quantity.unit` and kin,
 *   `SampledData.data`) and a `CodeableConcept.text` that repeats one of its codings' displays;
 *   any element the R4 model does not know; an extension left with no value; geolocation
 *   extensions.
 * - Address: `state`, `country`, `use`, `type` and `period` stay; `postalCode` becomes its ZIP3
 *   (`000` for the restricted areas, see zip3.ts; dropped when it is not a US ZIP code); line,
 *   city, district, text and extensions are removed.
 * - dates: every `date`, `dateTime` and `instant` anywhere in the tree (Period, Timing.event,
 *   extension values, `meta.lastUpdated`...) is shifted by the patient's offset, keeping its
 *   precision (dates.ts), or, under `dates: 'year'`, cut to the year (instants, which must carry
 *   a full time, are then removed).
 * - ages over 89: a `birthDate` (Patient, Person, Practitioner, RelatedPerson) that makes its
 *   owner older than 89 at `now`, or at `deceasedDateTime`, is replaced by the date exactly 90
 *   years before that reference date, at the birth date's precision, then shifted like every date
 *   (so the person is 90 at death, or about 90 now: the 90-or-older category). An `Age` over 89
 *   years becomes `>= 90` years.
 *
 * Whose dates: a Patient's own; a resource's `subject`, `patient`, `beneficiary` or `individual`
 * reference to a Patient (or to a `urn:uuid:`, which in a Bundle is the usual spelling; in a
 * Bundle whose Patient entry has a fullUrl naming another id than the resource's, a reference by
 * that fullUrl finds the Patient's id); contained resources share their container's. Resources
 * with no patient (Organization, Practitioner, Provenance...) and Bundles themselves are shifted
 * by one keyed global offset.
 */
import { Errors } from '../core/index.js';
import type { Resource } from '../fhir/index.js';
import { daysInMonth, maxAgeYears, parseFhirDate, shiftDate, yearOf, type FhirDate } from './dates.js';
import { Kind, RESOURCE_TYPES, childMap, mapOf, type Child, type ChildMap } from './model.js';
import { zip3 } from './zip3.js';

const { KEEP, DROP, DATE, INSTANT, RESOURCE_ID, REFERENCE, IDENTIFIER_VALUE, UID, COMPLEX, CODEABLE_CONCEPT, ADDRESS, AGE, EXTENSION, CONTAINED, RESOURCE, FULL_URL, REQUEST_URL, QUERY, BIRTH_DATE } = Kind;

/** What the walker needs of its de-identifier. */
export interface PseudonymSource {
  pseudonym(value: string, kind?: string): string;
  /** The offset for a patient's pseudonymous id (0 under `dates: 'year'`). */
  shiftDays(patientPseudonym: string): number;
  /** The offset for resources of no patient. */
  readonly globalShiftDays: number;
  readonly dates: 'shift' | 'year';
  readonly now: Date;
}

/** A bad value found in the walk: where (JSON pointer parts, innermost last) and what. */
class WalkError {
  readonly parts: Array<string | number> = [];
  constructor(readonly message: string) {}
}

function pointerOf(parts: Array<string | number>): string {
  let s = '';
  for (const p of parts) s += '/' + String(p).replaceAll('~', '~0').replaceAll('/', '~1');
  return s;
}

/** Elements whose reference names the patient a resource is about. */
const PATIENT_FIELDS = ['subject', 'patient', 'beneficiary', 'individual'];

/** Deepest nesting of objects walked. */
const MAX_DEPTH = 256;

const GEOLOCATION = 'http://hl7.org/fhir/StructureDefinition/geolocation';

/** Age units in years: UCUM `a`, and what people write. */
const YEAR_UNITS = new Set(['a', 'yr', 'yrs', 'year', 'years', 'y']);
/** Other UCUM time units, in years. */
const UNIT_YEARS: Record<string, number> = { mo: 1 / 12, wk: 7 / 365.25, d: 1 / 365.25, h: 1 / 8766, min: 1 / 525960 };

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The walker over resources, one per de-identifier (it keeps the current resource's offset). */
export class FhirWalker {
  /** Days the current resource's dates move. */
  private days = 0;
  /** The resource whose `birthDate` is being read (a Patient, or a contained one). */
  private current: Json | null = null;
  /**
   * In a Bundle: the fullUrls of its Patient entries whose id differs from their fullUrl's id,
   * mapped to that id, so that a reference by fullUrl finds the Patient's own offset.
   */
  private aliases: Map<string, string> | null = null;
  private readonly year: boolean;
  /** Objects being walked, nested. */
  private depth = 0;

  constructor(private readonly d: PseudonymSource) {
    this.year = d.dates === 'year';
  }

  /**
   * A de-identified copy of `r` (never `r` itself, nor anything shared with it). `where` names
   * it in messages (`file.ndjson:12`); a bad date is an error naming where and the element's
   * JSON pointer, never its value.
   */
  resource(r: Resource, where?: string): Resource {
    const type = r.resourceType;
    if (typeof type !== 'string' || !RESOURCE_TYPES.has(type)) {
      throw Errors.badData(where ?? '', typeof type === 'string' ? 'resourceType is not an R4 resource type' : 'not a FHIR resource (no resourceType)');
    }
    try {
      return this.own(r, type);
    } catch (e) {
      if (e instanceof WalkError) {
        const pointer = pointerOf(e.parts);
        throw Errors.badData(where ?? type, `${pointer}: ${e.message}`, [{ pointer, message: e.message }]);
      }
      throw e;
    }
  }

  /** A resource of its own (top level, or a Bundle's entry): with its own patient's offset. */
  private own(r: Json, type: string): Resource {
    const saved = this.days;
    const savedAliases = this.aliases;
    try {
      if (type === 'Bundle') this.aliases = patientAliases(r);
      const patient = this.patientOf(r);
      this.days = this.year ? 0 : patient !== undefined ? this.d.shiftDays(patient) : this.d.globalShiftDays;
      return this.walkResource(r, type);
    } finally {
      this.days = saved;
      this.aliases = savedAliases;
    }
  }

  /**
   * A reference, Bundle fullUrl or entry location as the de-identified resources spell it: the
   * id part pseudonymised; undefined when it cannot be (then it is left out).
   */
  reference(s: string): string | undefined {
    if (s.charCodeAt(0) === 35 /* # */) return s.length === 1 ? s : '#' + this.d.pseudonym(s.slice(1), 'id');
    const q = s.indexOf('?');
    if (q >= 0) {
      const type = s.slice(0, q);
      if (type !== '' && !RESOURCE_TYPES.has(type)) return undefined;
      const query = this.query(s.slice(q + 1));
      return query === undefined ? undefined : `${type}?${query}`;
    }
    const p = splitReference(s);
    return p === undefined ? undefined : p.prefix + this.d.pseudonym(p.id, 'id') + p.suffix;
  }

  /** The pseudonymous id of the patient `r` is about (see the module comment), or undefined. */
  private patientOf(r: Json): string | undefined {
    if (r.resourceType === 'Patient') return typeof r.id === 'string' && r.id !== '' ? this.d.pseudonym(r.id, 'id') : undefined;
    for (const f of PATIENT_FIELDS) {
      const ref = r[f];
      if (!isObject(ref) || typeof ref.reference !== 'string') continue;
      const alias = this.aliases?.get(ref.reference);
      if (alias !== undefined) return this.d.pseudonym(alias, 'id');
      const p = splitReference(ref.reference);
      if (p !== undefined && (p.type === 'Patient' || p.type === undefined)) return this.d.pseudonym(p.id, 'id');
    }
    return undefined;
  }

  private walkResource(r: Json, type: string): Resource {
    const out: Json = { resourceType: type };
    const saved = this.current;
    this.current = r;
    try {
      this.walkInto(r, childMap(type), out, 'resourceType');
    } finally {
      this.current = saved;
    }
    return out as Resource;
  }

  /** Copies what may stay of `node`'s elements into `out`; returns whether anything was. */
  private walkInto(node: Json, map: ChildMap, out: Json, skip?: string): boolean {
    let any = false;
    let key = '';
    // Recursive elements (extensions of extensions, Questionnaire items) could nest past the stack.
    if (++this.depth > MAX_DEPTH) throw new WalkError(`nested more than ${MAX_DEPTH} levels deep`);
    try {
      for (key in node) {
        if (key === skip || !Object.hasOwn(node, key)) continue;
        const v = node[key];
        let c: Child | undefined;
        let r: unknown;
        if (key.charCodeAt(0) === 95 /* _ */) {
          // A primitive's id and extensions (`_birthDate`): kept beside a kept primitive.
          c = map.get(key.slice(1));
          if (c === undefined || c.kind === DROP) continue;
          r = this.elementOf(v);
        } else {
          c = map.get(key);
          if (c === undefined) continue; // not in the R4 model: nothing vouches for it
          r = this.value(c, v);
        }
        if (r !== undefined) {
          out[key] = r;
          any = true;
        }
      }
    } catch (e) {
      if (e instanceof WalkError && e.parts.length < MAX_DEPTH) e.parts.unshift(key);
      throw e;
    } finally {
      this.depth--;
    }
    return any;
  }

  private walk(node: unknown, map: ChildMap): Json | undefined {
    if (!isObject(node)) return undefined;
    const out: Json = {};
    return this.walkInto(node, map, out) ? out : undefined;
  }

  /** A `_element` value (or array of them, nulls kept in place): its id and extensions. */
  private elementOf(v: unknown): unknown {
    const map = childMap('Element');
    if (!Array.isArray(v)) return this.walk(v, map);
    let any = false;
    const out = v.map((x) => {
      const r = x === null ? null : (this.walk(x, map) ?? null);
      if (r !== null) any = true;
      return r;
    });
    return any ? out : undefined;
  }

  /** An element's value: one, or an array of them (dropped items left out, or nulled for primitives). */
  private value(c: Child, v: unknown): unknown {
    if (c.kind === DROP) return undefined;
    if (!Array.isArray(v)) return this.one(c, v);
    const primitive = c.kind <= UID || c.kind === FULL_URL || c.kind === REQUEST_URL || c.kind === QUERY || c.kind === BIRTH_DATE;
    const out: unknown[] = [];
    let i = 0;
    try {
      for (; i < v.length; i++) {
        const r = this.one(c, v[i]);
        // Primitive arrays stay aligned with their `_element` arrays: a dropped item becomes null.
        if (r !== undefined) out.push(r);
        else if (primitive) out.push(null);
      }
    } catch (e) {
      if (e instanceof WalkError) e.parts.unshift(i);
      throw e;
    }
    if (primitive) return out.some((x) => x !== null) ? out : undefined;
    return out.length > 0 ? out : undefined;
  }

  private one(c: Child, v: unknown): unknown {
    switch (c.kind) {
      case KEEP:
        return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : undefined;
      case DROP:
        return undefined;
      case DATE:
      case INSTANT:
        return this.date(v, c);
      case BIRTH_DATE:
        return this.birthDate(v, c);
      case RESOURCE_ID:
        return typeof v === 'string' && v !== '' ? this.d.pseudonym(v, 'id') : undefined;
      case IDENTIFIER_VALUE:
        return typeof v === 'string' && v !== '' ? this.d.pseudonym(v, 'identifier') : undefined;
      case UID:
        return typeof v === 'string' && v !== '' ? this.d.pseudonym(v, 'uid') : undefined;
      case REFERENCE:
      case FULL_URL:
        return typeof v === 'string' ? this.reference(v) : undefined;
      case REQUEST_URL:
        return typeof v !== 'string' ? undefined : RESOURCE_TYPES.has(v) ? v : this.reference(v);
      case QUERY:
        return typeof v === 'string' ? this.query(v) : undefined;
      case COMPLEX:
        return this.walk(v, mapOf(c));
      case CODEABLE_CONCEPT:
        return this.codeableConcept(v, c);
      case ADDRESS:
        return this.address(v);
      case AGE:
        return this.age(v, c);
      case EXTENSION:
        return this.extension(v, c);
      case CONTAINED:
        if (!isObject(v)) return undefined;
        if (typeof v.resourceType !== 'string' || !RESOURCE_TYPES.has(v.resourceType)) throw new WalkError('not an R4 resource (resourceType missing or unknown)');
        return this.walkResource(v, v.resourceType);
      case RESOURCE:
        if (!isObject(v)) return undefined;
        if (typeof v.resourceType !== 'string' || !RESOURCE_TYPES.has(v.resourceType)) throw new WalkError('not an R4 resource (resourceType missing or unknown)');
        return this.own(v, v.resourceType);
      default:
        return undefined;
    }
  }

  private date(v: unknown, c: Child): string | undefined {
    if (typeof v !== 'string') return undefined;
    if (this.year) {
      if (c.kind === INSTANT) return undefined;
      const y = yearOf(v);
      if (y === undefined) throw new WalkError(`not a valid FHIR ${c.type}`);
      return y;
    }
    const s = shiftDate(v, this.days);
    if (s === undefined) throw new WalkError(`not a valid FHIR ${c.type}`);
    return s;
  }

  /** A birth date with ages over 89 pooled (see the module comment), then like any date. */
  private birthDate(v: unknown, c: Child): string | undefined {
    if (typeof v !== 'string') return undefined;
    const b = parseFhirDate(v);
    if (b === undefined || b.time !== '') throw new WalkError(`not a valid FHIR ${c.type}`);
    const at = this.referenceDate();
    if (maxAgeYears(b, at) <= 89) return this.date(v, c);
    const year = at.year - 90;
    const month = b.month === 0 || at.month === 0 ? 0 : at.month;
    const day = month === 0 || b.day === 0 || at.day === 0 ? 0 : Math.min(at.day, daysInMonth(year, month));
    const pooled: FhirDate = { year, month, day, time: '' };
    return this.date(formatDate(pooled), c);
  }

  /** The date a birth date's age is taken at: the current resource's `deceasedDateTime`, else `now`. */
  private referenceDate(): { year: number; month: number; day: number } {
    const dead = this.current?.deceasedDateTime;
    const d = typeof dead === 'string' ? parseFhirDate(dead) : undefined;
    if (d !== undefined) return d;
    const now = this.d.now;
    return { year: now.getUTCFullYear(), month: now.getUTCMonth() + 1, day: now.getUTCDate() };
  }

  private codeableConcept(v: unknown, c: Child): Json | undefined {
    if (!isObject(v)) return undefined;
    const out: Json = {};
    let any = this.walkInto(v, mapOf(c), out);
    // A text that repeats a coding's display is a code-system term; any other may be free text.
    const text = v.text;
    if (typeof text === 'string' && Array.isArray(v.coding) && v.coding.some((x) => isObject(x) && x.display === text)) {
      out.text = text;
      any = true;
    }
    return any ? out : undefined;
  }

  private address(v: unknown): Json | undefined {
    if (!isObject(v)) return undefined;
    const out: Json = {};
    let any = false;
    for (const k of ['use', 'type', 'state', 'country']) {
      const x = v[k];
      if (typeof x === 'string') {
        out[k] = x;
        any = true;
      }
    }
    if (typeof v.postalCode === 'string') {
      const z = zip3(v.postalCode);
      if (z !== undefined) {
        out.postalCode = z;
        any = true;
      }
    }
    if (v.period !== undefined) {
      try {
        const p = this.walk(v.period, childMap('Period'));
        if (p !== undefined) {
          out.period = p;
          any = true;
        }
      } catch (e) {
        if (e instanceof WalkError) e.parts.unshift('period');
        throw e;
      }
    }
    return any ? out : undefined;
  }

  private age(v: unknown, c: Child): Json | undefined {
    const out = this.walk(v, mapOf(c));
    if (out === undefined || typeof out.value !== 'number') return out;
    const unit = typeof out.code === 'string' ? out.code : typeof out.unit === 'string' ? out.unit.toLowerCase() : 'a';
    const perUnit = YEAR_UNITS.has(unit) ? 1 : UNIT_YEARS[unit];
    // An age in a unit we cannot read is taken as years: the cautious reading.
    const years = out.value * (perUnit ?? 1);
    if (years <= 89) return out;
    if (perUnit === 1 || perUnit === undefined) {
      out.value = 90;
    } else {
      Object.assign(out, { value: 90, unit: 'years', code: 'a', system: 'http://unitsofmeasure.org' });
    }
    out.comparator = '>=';
    return out;
  }

  private extension(v: unknown, c: Child): Json | undefined {
    if (!isObject(v) || v.url === GEOLOCATION) return undefined;
    const out = this.walk(v, mapOf(c));
    if (out === undefined) return undefined;
    // An extension is its value or its sub-extensions: with neither left, it says nothing.
    for (const k in out) if (k !== 'url' && k !== 'id') return out;
    return undefined;
  }

  /**
   * A search query (conditional reference, `ifNoneExist`): `identifier=system|value` keeps the
   * system and pseudonymises the value like `Identifier.value`, `_id` like an id; any other
   * parameter may carry a name or a birth date, and drops the whole query (undefined).
   */
  query(q: string): string | undefined {
    const parts = q.split('&');
    const out: string[] = [];
    for (const part of parts) {
      const eq = part.indexOf('=');
      if (eq < 0) return undefined;
      const name = part.slice(0, eq);
      const raw = part.slice(eq + 1);
      if (name === '_id') {
        const id = decode(raw);
        if (id === undefined) return undefined;
        out.push(`_id=${this.d.pseudonym(id, 'id')}`);
      } else if (name === 'identifier') {
        let bar = raw.indexOf('|');
        let width = 1;
        if (bar < 0) {
          bar = raw.toUpperCase().indexOf('%7C');
          width = 3;
        }
        const system = bar < 0 ? '' : raw.slice(0, bar + width);
        const value = decode(bar < 0 ? raw : raw.slice(bar + width));
        if (value === undefined || value === '') return undefined;
        out.push(`identifier=${system}${this.d.pseudonym(value, 'identifier')}`);
      } else return undefined;
    }
    return out.join('&');
  }
}

/** A Bundle's Patient entries whose fullUrl names another id than the resource's: fullUrl → id. */
function patientAliases(bundle: Json): Map<string, string> | null {
  const entries = bundle.entry;
  if (!Array.isArray(entries)) return null;
  let out: Map<string, string> | null = null;
  for (const e of entries) {
    if (!isObject(e) || typeof e.fullUrl !== 'string' || !isObject(e.resource)) continue;
    const r = e.resource;
    if (r.resourceType !== 'Patient' || typeof r.id !== 'string' || r.id === '') continue;
    if (splitReference(e.fullUrl)?.id === r.id) continue;
    (out ??= new Map()).set(e.fullUrl, r.id);
  }
  return out;
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

function formatDate(d: FhirDate): string {
  const y = String(d.year).padStart(4, '0');
  if (d.month === 0) return y;
  const m = String(d.month).padStart(2, '0');
  return d.day === 0 ? `${y}-${m}` : `${y}-${m}-${String(d.day).padStart(2, '0')}`;
}

/**
 * A literal reference taken apart: `prefix` + `id` + `suffix` (`Patient/` + `123` + ``,
 * `urn:uuid:` + `…`, `https://x/fhir/Observation/` + `9` + `/_history/2`), with the resource
 * type when the reference names one. Undefined when it is none of these forms.
 */
export function splitReference(s: string): { prefix: string; id: string; suffix: string; type: string | undefined } | undefined {
  if (s.startsWith('urn:')) {
    const colon = s.lastIndexOf(':');
    const id = s.slice(colon + 1);
    return colon > 4 && id !== '' ? { prefix: s.slice(0, colon + 1), id, suffix: '', type: undefined } : undefined;
  }
  let body = s;
  let suffix = '';
  const h = s.lastIndexOf('/_history/');
  if (h >= 0) {
    body = s.slice(0, h);
    suffix = s.slice(h);
  }
  const slash = body.lastIndexOf('/');
  if (slash <= 0) return undefined;
  const id = body.slice(slash + 1);
  const type = body.slice(body.lastIndexOf('/', slash - 1) + 1, slash);
  if (id === '' || !RESOURCE_TYPES.has(type)) return undefined;
  return { prefix: body.slice(0, slash + 1), id, suffix, type };
}
