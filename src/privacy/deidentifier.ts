/**
 * The de-identifier: keyed pseudonyms and per-patient date offsets, and the FHIR walk built on
 * them (fhir.ts). One key, one set of pseudonyms: the same identifier always gets the same
 * pseudonym under a key, so de-identified data still joins (Observation.subject → Patient.id, a
 * table's patient column → `--group`), and nobody without the key can recompute one.
 */
import { Errors } from '../core/index.js';
import type { Resource, ResourceItem } from '../fhir/index.js';
import { FhirWalker } from './fhir.js';
import { HmacSha256 } from './hmac.js';

/** How dates are de-identified. */
export type DateRule = 'shift' | 'year';

/** Options of `Deidentifier`. */
export interface DeidentifierOptions {
  /** The secret (see `deidKey`): at least 32 bytes. Kept in memory only. */
  key: Buffer;
  /**
   * `shift` (default): every date of a patient moves by the same keyed number of days (intervals
   * kept, see `Deidentifier.shiftDays`); `year`: every date is cut to its year.
   */
  dates?: DateRule;
  /** The date ages are taken at (ages over 89 are pooled as 90); default the time of construction. */
  now?: Date;
}

/** Shortest key accepted, in bytes. */
const MIN_KEY_BYTES = 32;

/** Memoised values per generation: the most recent ones survive a turnover, so memory stays bounded. */
const MEMO_SIZE = 50_000;

/** A bounded memo: two generations of maps; when the young one is full, the old one is forgotten. */
class Memo<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();

  get(k: string): V | undefined {
    const v = this.young.get(k);
    if (v !== undefined) return v;
    const o = this.old.get(k);
    if (o !== undefined) this.set(k, o);
    return o;
  }

  set(k: string, v: V): void {
    if (this.young.size >= MEMO_SIZE) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(k, v);
  }
}

/** Days in the shift range on each side of zero: offsets are uniform over [-365, -1] ∪ [1, 365]. */
export const MAX_SHIFT_DAYS = 365;

/**
 * HIPAA Safe Harbor de-identification under one key. See fhir.ts (resources) and table.ts
 * (tables) for what each identifier becomes; docs/deidentification.md for the whole account.
 */
export class Deidentifier {
  /** How dates are de-identified. */
  readonly dates: DateRule;
  /** The date ages are taken at. */
  readonly now: Date;
  // A private field: not enumerable, not in JSON.stringify, not in util.inspect output.
  readonly #mac: HmacSha256;
  /** Pseudonyms already made, per kind (`id` first: by far the most asked). */
  readonly #ids = new Memo<string>();
  readonly #kinds = new Map<string, Memo<string>>();
  readonly #shifts = new Memo<number>();
  #global: number | undefined;
  readonly #walker: FhirWalker;

  constructor(opts: DeidentifierOptions) {
    if (!Buffer.isBuffer(opts.key) || opts.key.length < MIN_KEY_BYTES) throw Errors.badParam('key', `the de-identification key must be at least ${MIN_KEY_BYTES} bytes`);
    const dates = opts.dates ?? 'shift';
    if (dates !== 'shift' && dates !== 'year') throw Errors.badParam('dates', 'must be "shift" or "year"');
    const now = opts.now ?? new Date();
    if (Number.isNaN(now.getTime())) throw Errors.badParam('now', 'not a valid date');
    this.#mac = new HmacSha256(opts.key);
    this.dates = dates;
    this.now = now;
    this.#walker = new FhirWalker(this);
  }


  /**
   * The keyed pseudonym of `value`: HMAC-SHA256 under the key of `kind` + NUL + `value`, its
   * first 16 bytes written as a UUID (version 8, RFC 9562's "custom" UUIDs: 122 bits of the
   * HMAC). Always 36 characters, valid as a FHIR id, in a `urn:uuid:` and in a URL, so a
   * pseudonym can stand wherever the identifier stood. Deterministic for a key; different keys,
   * or kinds, give unrelated pseudonyms.
   * @param kind the domain (default `id`): resource ids and references use `id`, Identifier values
   *   `identifier`, so that equal strings in different roles do not share a pseudonym
   */
  pseudonym(value: string, kind = 'id'): string {
    let memo = kind === 'id' ? this.#ids : this.#kinds.get(kind);
    if (memo === undefined) this.#kinds.set(kind, (memo = new Memo()));
    const hit = memo.get(value);
    if (hit !== undefined) return hit;
    const w = this.#mac.words(`${kind}\0${value}`);
    // The first 16 bytes as a UUID: version 8 in byte 6's high nibble, variant 10 in byte 8.
    const w1 = (w[1]! & ~0xf000) | 0x8000;
    const w2 = (w[2]! & 0x3fffffff) | 0x80000000;
    const p = `${hex8(w[0]!)}-${hex4(w1 >>> 16)}-${hex4(w1)}-${hex4(w2 >>> 16)}-${hex4(w2)}${hex8(w[3]!)}`;
    memo.set(value, p);
    return p;
  }

  /**
   * The number of days every date of a patient moves, from the patient's PSEUDONYM (its
   * de-identified id), so that code holding only de-identified data can move other dates (an
   * index date) with them: keyed, uniform over [-365, -1] ∪ [1, 365], never 0. Under
   * `dates: 'year'` nothing is shifted and this is 0.
   */
  shiftDays(patientPseudonym: string): number {
    if (this.dates === 'year') return 0;
    const hit = this.#shifts.get(patientPseudonym);
    if (hit !== undefined) return hit;
    const days = offsetOf(this.#mac.words(`shift\0${patientPseudonym}`));
    this.#shifts.set(patientPseudonym, days);
    return days;
  }

  /** The offset of resources that belong to no patient (Organization, Bundle...): one keyed value, 0 under `year`. */
  get globalShiftDays(): number {
    if (this.dates === 'year') return 0;
    return (this.#global ??= offsetOf(this.#mac.words('shift-global\0')));
  }

  /**
   * A de-identified copy of one FHIR R4 resource (a Bundle with all its entries), never the
   * input itself, which is left untouched. See fhir.ts for what happens to each element.
   * @param where names the resource in error messages (`file.ndjson:12`, `bundle.json entry 3`)
   * @throws MedfitError (bad data) for a value that cannot be de-identified safely (a date that
   *   is not a FHIR date), naming `where` and the JSON pointer, never the value
   */
  resource(r: Resource, where?: string): Resource {
    return this.#walker.resource(r, where);
  }

  /**
   * A reference (`Patient/123`, `urn:uuid:…`, `https://server/fhir/Patient/123/_history/2`, a
   * Bundle entry's fullUrl) as de-identified resources spell it: rebuilt from its type and the
   * pseudonym of its id alone (`Patient/<pseudonym>`; `urn:uuid:<pseudonym>` for a `urn:uuid:`),
   * so that `reference('urn:uuid:X')` is the fullUrl of the de-identified entry whose resource had
   * id X, and an absolute fullUrl becomes the `Type/<id>` the entry's resource now has. A
   * reference of another shape (`urn:oid:`, a bare id, a search by name) gives `''`.
   */
  reference(reference: string): string {
    return this.#walker.reference(reference) ?? '';
  }

  /** A reader's item de-identified: its resource, and its Bundle fullUrl mapped like a reference. */
  item(item: ResourceItem): ResourceItem {
    const out: ResourceItem = { ...item, resource: this.resource(item.resource, `${item.source}, ${item.where}`) };
    if (item.fullUrl !== undefined) out.fullUrl = this.reference(item.fullUrl);
    return out;
  }
}

/** An offset in [-365, -1] ∪ [1, 365] from the first 32 bits of a MAC (bias below 2^-22). */
function offsetOf(mac: Int32Array): number {
  const r = (mac[0]! >>> 0) % (2 * MAX_SHIFT_DAYS);
  return r < MAX_SHIFT_DAYS ? -(r + 1) : r - MAX_SHIFT_DAYS + 1;
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** The low 16 bits as 4 hex digits. */
function hex4(x: number): string {
  return HEX[(x >>> 8) & 0xff]! + HEX[x & 0xff]!;
}

/** 32 bits as 8 hex digits. */
function hex8(x: number): string {
  return hex4(x >>> 16) + hex4(x);
}
