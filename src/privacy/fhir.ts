/**
 * De-identification of FHIR R4 resources by HIPAA Safe Harbor: one walk over a resource, copying
 * what may stay and rewriting or leaving out the rest, by the rules model.ts compiles from the R4
 * model. See docs/deidentification.md for the identifier-by-identifier account; in short:
 *
 * - ids and references: `Resource.id` and the id in every reference become keyed pseudonyms of
 *   the id, the same for every spelling, so `Observation.subject` still meets `Patient.id` and a
 *   Bundle's `urn:uuid:` fullUrls still meet the references to them. A reference is rebuilt from
 *   its type and pseudonym alone (`Type/id`, `Type/id/_history/v` and absolute `http(s)://…/Type/id`
 *   → `Type/<pseudonym>`; `urn:uuid:id` → `urn:uuid:<pseudonym>`; `#id` → `#<pseudonym>`): no base
 *   URL, path or version survives; any other shape (`urn:oid:`, `urn:ssn:…`) is removed.
 *   Conditional references (`Patient?identifier=sys|value`) keep their system with the value
 *   pseudonymised like `Identifier.value`; any other search parameter in a reference, which may
 *   hold a name or a date, drops the reference. Every other element `id` is removed.
 * - `Identifier.value`: a pseudonym (system and type kept); DICOM UIDs of ImagingStudy likewise.
 * - removed: HumanName, ContactPoint (telecom), Narrative (`text`), Annotation (notes),
 *   Signature, photos, `Attachment.data`/`url`/`title`/`hash`, `Meta.source`, `Device.url`,
 *   `Location.position`, every `string` and `markdown` element (free text: comments,
 *   descriptions, `valueString`, `Reference.display`, device serial and lot numbers...) except
 *   code-system terms and units (`Coding.display`, `Coding.version`, `Quantity.unit` and kin,
 *   `SampledData.data`) and a `CodeableConcept.text` that repeats one of its codings' displays;
 *   `uri`/`url` elements that do not name a system or a definition, `id`/`oid`/`uuid` elements,
 *   `Meta.versionId`, the display of `Meta.tag`/`Meta.security`; a `valueCode` outside the
 *   terminology-bound extensions in `CODED_EXTENSIONS`; QuestionnaireResponse answers other than
 *   codings (system and code), numbers, quantities and booleans (model.ts has the rules); any
 *   element the R4 model does not know; an extension left with no value; geolocation extensions.
 * - Quantity units: a UCUM code stands for the unit; another unit with a space or over 20
 *   characters is removed.
 * - Address: `state`, `country`, `use`, `type` and `period` stay; `postalCode` becomes its ZIP3
 *   (`000` for the restricted areas, see zip3.ts; dropped when it is not a US ZIP code); line,
 *   city, district, text and extensions are removed.
 * - dates: every `date`, `dateTime` and `instant` anywhere in the tree (Period, Timing.event,
 *   extension values, `meta.lastUpdated`...) is shifted by the patient's offset, keeping its
 *   precision (dates.ts), or, under `dates: 'year'`, cut to the year (instants, which must carry
 *   a full time, are then removed).
 * - ages over 89: a `birthDate` (Patient, Person, Practitioner, RelatedPerson) that makes its
 *   owner older than 89 at `now`, or at `deceasedDateTime`, becomes a year alone, not shifted
 *   (see `birthDate`), and its `_birthDate` (a birth time) is removed. An `Age` over 89 years
 *   becomes `>= 90` years; any other Quantity that is a time over 89 years becomes 90 `a`.
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
import { maxAgeYears, parseFhirDate, shiftDate, yearOf, type FhirDate } from './dates.js';
import { Kind, RESOURCE_TYPES, childMap, mapOf, type Child, type ChildMap } from './model.js';
import { zip3 } from './zip3.js';

const { KEEP, DROP, DATE, INSTANT, RESOURCE_ID, REFERENCE, IDENTIFIER_VALUE, UID, COMPLEX, CODEABLE_CONCEPT, ADDRESS, AGE, EXTENSION, CONTAINED, RESOURCE, FULL_URL, REQUEST_URL, QUERY, BIRTH_DATE, QUANTITY, ANSWER_CODING } =
  Kind;

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

const UCUM = 'http://unitsofmeasure.org';

/**
 * Time units in years: UCUM's (`a`, `mo`, `wk`, `d`...) and what people write in `unit` (read
 * lower-cased). A Map, not an object: a unit named `constructor` must find nothing.
 */
const UNIT_YEARS: ReadonlyMap<string, number> = new Map([
  ...['a', 'a_j', 'a_g', 'a_t', 'yr', 'yrs', 'year', 'years', 'y'].map((u) => [u, 1] as const),
  ...['mo', 'mo_j', 'mo_g', 'mo_s', 'month', 'months'].map((u) => [u, 1 / 12] as const),
  ...['wk', 'week', 'weeks'].map((u) => [u, 7 / 365.25] as const),
  ...['d', 'day', 'days'].map((u) => [u, 1 / 365.25] as const),
  ['h', 1 / 8766],
  ['min', 1 / 525960],
  ['s', 1 / 31557600],
]);

/**
 * A pooled (over 89) living person's birth year is `now`'s year less this: whatever day of that
 * year is read as the birthday (readers take a year alone as its 2 July, or 1 January), and even
 * after a reader moves it back by the patient's offset of up to 365 days as it does every shifted
 * date (src/fhir/features.ts), the person is at least 90 at `now`.
 */
const POOLED_YEARS_BEFORE_NOW = 92;
/**
 * For a person pooled at death: the year of the de-identified `deceasedDateTime` less this, so
 * that whatever day of the year is read as the birthday the person is at least 90 at death (both
 * dates being in the same, shifted, frame, a reader moving them back moves both).
 */
const POOLED_YEARS_BEFORE_DEATH = 91;

/**
 * The terminology-bound extensions whose `valueCode` is kept, each with its value set's codes: any
 * other extension's `valueCode`, or a code outside the set, is whatever its writer put there
 * (`mothersMaidenName` as a code) and is removed.
 */
const CODED_EXTENSIONS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', new Set(['F', 'M', 'UNK', 'OTH', 'ASKU'])],
  [
    'http://hl7.org/fhir/StructureDefinition/data-absent-reason',
    new Set(['unknown', 'asked-unknown', 'temp-unknown', 'not-asked', 'asked-declined', 'masked', 'not-applicable', 'unsupported', 'as-text', 'error', 'not-a-number', 'negative-infinity', 'positive-infinity', 'not-performed', 'not-permitted']),
  ],
  ['http://hl7.org/fhir/StructureDefinition/iso21090-nullFlavor', new Set(['NI', 'INV', 'DER', 'OTH', 'NINF', 'PINF', 'UNC', 'MSK', 'NA', 'UNK', 'ASKU', 'NAV', 'NASK', 'NAVU', 'QS', 'TRC', 'NP'])],
]);

/** Longest `Quantity.unit` kept when it is not a UCUM code (a unit, not a sentence). */
const MAX_UNIT_CHARS = 20;
/** Longest answer code kept. */
const MAX_CODE_CHARS = 64;

/** Whether `s` holds a space or a control character. */
function hasSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) <= 32) return true;
  return false;
}

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
    if (p === undefined) return undefined;
    // Rebuilt from the type and the pseudonym alone: nothing around the id (a server's base URL,
    // a path, a version) is kept, since any of it may be written by anyone.
    const id = this.d.pseudonym(p.id, 'id');
    return p.type === undefined ? `urn:uuid:${id}` : `${p.type}/${id}`;
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
          r = c.kind === BIRTH_DATE ? this.birthElement(node, v) : this.elementOf(v);
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
        return this.quantity(v, c, true);
      case QUANTITY:
        return this.quantity(v, c, false);
      case ANSWER_CODING: {
        const out = this.walk(v, mapOf(c));
        if (out === undefined || typeof out.system !== 'string' || typeof out.code !== 'string') return undefined;
        const code = out.code;
        return code !== '' && code.length <= MAX_CODE_CHARS && !hasSpace(code) ? out : undefined;
      }
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

  /**
   * A birth date: when it makes its owner older than 89 at the reference date (see
   * `referenceDate`), the year alone that pools everyone over 89 together, the same for all of
   * them and NOT shifted (a pooled date computed from `now` and shifted would give away the
   * patient's offset to anyone who knows when the data was de-identified); else like any date.
   */
  private birthDate(v: unknown, c: Child): string | undefined {
    if (typeof v !== 'string') return undefined;
    const b = parseFhirDate(v);
    if (b === undefined || b.time !== '') throw new WalkError(`not a valid FHIR ${c.type}`);
    if (!this.overAge(b)) return this.date(v, c);
    return String(this.pooledBirthYear()).padStart(4, '0');
  }

  /** Whether a person born on `b` is older than 89 at the reference date, reading `b` as early as its precision allows. */
  private overAge(b: FhirDate): boolean {
    return maxAgeYears(b, this.referenceDate()) > 89;
  }

  /** The birth year of a pooled person: 90 or more at death (in the de-identified dates), or at `now`. */
  private pooledBirthYear(): number {
    const dead = this.current?.deceasedDateTime;
    // The de-identified death date (shifted, or the year under `dates: 'year'`, where the offset is 0):
    // a year derived from it tells nothing its reader does not already see.
    const shifted = typeof dead === 'string' ? shiftDate(dead, this.days) : undefined;
    const d = shifted === undefined ? undefined : parseFhirDate(shifted);
    const year = d !== undefined ? d.year - POOLED_YEARS_BEFORE_DEATH : this.d.now.getUTCFullYear() - POOLED_YEARS_BEFORE_NOW;
    return Math.max(1, year);
  }

  /**
   * `_birthDate` (its id and extensions: `patient-birthTime`): removed for a pooled person (a
   * birth time gives the age back), and whenever any date in it would be pooled; else walked like
   * any element, its dates shifted with the birth date's offset so they stay consistent with it.
   */
  private birthElement(node: Json, v: unknown): unknown {
    const bd = node.birthDate;
    if (typeof bd === 'string') {
      const b = parseFhirDate(bd);
      // A bad birthDate is refused when the walk reaches it.
      if (b !== undefined && this.overAge(b)) return undefined;
    }
    const out = this.elementOf(v);
    // Walked first: its nesting is then known to be bounded.
    return out === undefined || this.holdsOldDate(v, 0) ? undefined : out;
  }

  /** Whether any string in `v` (a `_birthDate` the walk accepted) reads as a date that would be pooled. */
  private holdsOldDate(v: unknown, depth: number): boolean {
    if (depth > MAX_DEPTH) return true;
    if (typeof v === 'string') {
      const d = parseFhirDate(v);
      return d !== undefined && this.overAge(d);
    }
    if (Array.isArray(v)) {
      for (const x of v) if (this.holdsOldDate(x, depth + 1)) return true;
      return false;
    }
    if (!isObject(v)) return false;
    for (const k in v) if (Object.hasOwn(v, k) && this.holdsOldDate(v[k], depth + 1)) return true;
    return false;
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

  /**
   * A Quantity (or Age, Count, Duration...). Its `unit` is display text: with a UCUM `system` and
   * a `code` it becomes the code; otherwise it is removed when it holds a space or is longer than
   * `MAX_UNIT_CHARS` (`mmHg (taken by nurse Jane Doe)`). A time over 89 years (an age: an `Age`,
   * or an Observation of LOINC 30525-0 with a value in `a`) becomes 90 `a`: `>= 90` for an `Age`;
   * a plain Quantity loses its comparator instead (a SimpleQuantity may not carry one). An `Age`
   * in a unit we cannot read is taken as years, the cautious reading; another Quantity in such a
   * unit is not a time.
   */
  private quantity(v: unknown, c: Child, age: boolean): Json | undefined {
    const out = this.walk(v, mapOf(c));
    if (out === undefined) return undefined;
    const code = typeof out.code === 'string' && out.code !== '' ? out.code : undefined;
    if (typeof out.unit === 'string') {
      if (code !== undefined && out.system === UCUM) out.unit = code;
      else if (out.unit.length > MAX_UNIT_CHARS || hasSpace(out.unit)) delete out.unit;
    }
    if (typeof out.value !== 'number') return out;
    const unit = code ?? (typeof out.unit === 'string' ? out.unit.toLowerCase() : age ? 'a' : '');
    const perUnit = UNIT_YEARS.get(unit) ?? (age ? 1 : undefined);
    if (perUnit === undefined || !(out.value * perUnit > 89)) return out;
    Object.assign(out, { value: 90, unit: 'a', system: UCUM, code: 'a' });
    if (age) out.comparator = '>=';
    else delete out.comparator;
    return out;
  }

  private extension(v: unknown, c: Child): Json | undefined {
    if (!isObject(v) || v.url === GEOLOCATION) return undefined;
    const out = this.walk(v, mapOf(c));
    if (out === undefined) return undefined;
    // `valueCode` (left out by the model's rules): kept for the terminology-bound extensions only.
    const code = v.valueCode;
    if (typeof code === 'string' && typeof v.url === 'string' && CODED_EXTENSIONS.get(v.url)?.has(code) === true) out.valueCode = code;
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

/**
 * A literal reference taken apart: its resource type (undefined for `urn:uuid:`) and id. The
 * forms read: `Type/id`, `urn:uuid:id`, and an absolute `http(s)://…/Type/id`, either of the last
 * two URL forms optionally with `/_history/version`. Undefined for any other form (`urn:oid:`,
 * `urn:ssn:…`, a bare id, a relative path of more segments), which then is left out.
 */
export function splitReference(s: string): { id: string; type: string | undefined } | undefined {
  if (s.startsWith('urn:')) {
    if (!s.startsWith('urn:uuid:') || s.length === 9) return undefined;
    return { id: s.slice(9), type: undefined };
  }
  let body = s;
  const h = s.lastIndexOf('/_history/');
  if (h >= 0) {
    // A version is one segment.
    if (h + 10 === s.length || s.indexOf('/', h + 10) >= 0) return undefined;
    body = s.slice(0, h);
  }
  const slash = body.lastIndexOf('/');
  if (slash <= 0 || slash === body.length - 1) return undefined;
  const before = body.lastIndexOf('/', slash - 1);
  const type = body.slice(before + 1, slash);
  if (!RESOURCE_TYPES.has(type)) return undefined;
  // Relative: `Type/id` alone; else an absolute http(s) URL.
  if (before >= 0 && !(body.startsWith('https://') || body.startsWith('http://'))) return undefined;
  return { id: body.slice(slash + 1), type };
}
