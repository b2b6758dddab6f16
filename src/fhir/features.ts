/**
 * The streaming per-patient feature builder: resources in any order (a bulk export's
 * Observation.ndjson may come before its Patient.ndjson), each run through the spec's views
 * (`specViews`) and folded into per-patient aggregates at once, so memory grows with
 * patients × features (plus the basis references when asked, at most `MAX_BASIS` per feature),
 * never with the resources. The work per resource is linear in its size: an Observation whose
 * view rows (a product of its codings and components) would be many is first pruned to the
 * codings the spec uses (`viewInput`).
 *
 * Semantics, all on calendar days (the date as written in the record, its time and time zone
 * used only to order values of the same day):
 * - the feature window is (index − within, index]: values dated at or before the index date, and
 *   after its start; the label window is (index, index + within]: nothing after the index date
 *   reaches a feature, nothing at or before it reaches the label;
 * - a partial date (`2019`, `2019-03`) counts as the last day it may be (31 December, the month's
 *   end), so a value that may lie after the index date never reaches a feature; a partial
 *   birthDate counts as its middle (2 July, the 15th: the convention the de-identifier shifts by);
 * - an Observation's date is the first present of effectiveDateTime, effectiveInstant,
 *   effectivePeriod.start and issued; one without any is skipped. A Condition's onset is
 *   onsetDateTime, onsetPeriod.start, else recordedDate (onsetAge, onsetString: recordedDate).
 *   A date that is not a FHIR date is an error naming the element (checked in the resources of
 *   codes the spec uses, and in every birthDate);
 * - Observations with status entered-in-error or cancelled, Conditions whose verification (or
 *   clinical) status is entered-in-error or refuted are left out;
 * - `last` / `first`: by effective date and time; values at the same instant keep the larger
 *   value (whatever the input order, so the table never depends on how an export was split);
 * - `count` counts the Observations of the code in the window (with a value or not; with the
 *   component, for a component feature; with a mapped value, for a coded one): 0 when none;
 *   every other aggregation is null without values;
 * - age: whole years at the index date (calendar birthdays), over 89 pooled as 90, null when the
 *   birth date is missing or after the index date; sex: the Patient's gender (male, female,
 *   other, unknown; missing is unknown);
 * - a Condition feature is 1 (or its first onset date, `as: onset`) when a Condition of one of its
 *   codes has its onset at or before the index date, whatever its clinical status (a resolved
 *   condition is still history);
 * - the label: a Condition with onset in the label window → 1, else 0; an Observation threshold:
 *   1 when a value in the label window is above `above` (strictly) or below `below` (strictly),
 *   0 when values are there but none crosses, null when there is no value in the window (null
 *   means the row's target is missing: training drops the row rather than call it negative);
 * - units: each value is converted to the feature's `unit` (default: the unit of the first value
 *   used: set `unit` when values come in several units, or the unit depends on the input order)
 *   by UCUM, or refused with a message naming the code and the unit;
 * - an Observation or Condition that refers to a Patient (`subject`) that never comes is an error
 *   at `finish`, named by where the first such resource was read; resources of a type the spec
 *   does not read (Conditions, for a spec without Condition features or label) are not looked at;
 *   a resource about something else (a Group, a Device) is skipped;
 * - de-identified input (`shiftDays`): every date of a patient is read back by its offset before
 *   any comparison, so ages, windows and labels are exactly those of the unshifted data; an
 *   `onset` column keeps the dates as the data has them (shifted).
 */
import { Errors, MedfitError, Rng } from '../core/index.js';
import { addDuration, calendarOf, dayNumber, daysInMonth, digits, isoOfDay, parseDuration, parseIsoDate, specViews, tableColumns } from './spec.js';
import type { Aggregation, FeatureSpec, Resource, ResourceItem, ViewRow } from './types.js';
import { quantityUnit, unitConverter, unitError, type Converter } from './ucum.js';
import { compileView, referenceKey, type CompiledView } from './view/index.js';

const MS_PER_DAY = 86_400_000;

/** The table a `FeatureBuilder` makes. */
export interface FeatureTable {
  /** `patient`, then the feature columns in spec order (`featureColumns`), then the label's. */
  columns: string[];
  /** One per Patient, in the order the Patients were read. */
  rows: Array<Array<string | number | null>>;
  /**
   * Per row, the references (`Observation/<id>`, `Condition/<id>`, or a Bundle entry's fullUrl
   * for a resource without an id) whose values went into the row's features (not the label):
   * filled when the builder was made with `basis: true`, else empty lists. At most `MAX_BASIS`
   * a row: the one reference behind each `last`, `first`, `min`, `max` and Condition feature is
   * always kept (they come first when there are more than `MAX_BASIS` of them); a `mean` or
   * `count` over many Observations keeps a uniform sample of them (reservoir sampling, seeded:
   * the same input in the same order gives the same sample) in the room left.
   */
  basis: string[][];
}

/** The most basis references a row keeps (see `FeatureTable.basis`). */
export const MAX_BASIS = 100;

/**
 * Above this many view rows for one Observation (code codings × value codings × component
 * codings), the codings and components the spec does not use are dropped before the view runs.
 */
const PRUNE_ABOVE = 16;

/** The references behind a `mean` or `count`: a uniform sample of at most `MAX_BASIS` of `seen`. */
interface Reservoir {
  refs: string[];
  seen: number;
}

/** Options of a `FeatureBuilder`. */
export interface FeatureBuilderOptions {
  /**
   * The date offset (days, data = real + offset) of a patient's de-identified resources, by
   * patient key: the index date moves with them, so every interval is that of the real data.
   */
  shiftDays?: (patientKey: string) => number;
  /** The index date (ISO `YYYY-MM-DD`) instead of the spec's, e.g. the prediction time. */
  index?: string;
  /** Keep, per row, the references of the resources its values came from (`FeatureTable.basis`). */
  basis?: boolean;
}

type Kind = 'quantity' | 'component' | 'coded';

/** One thing an Observation row may feed: a feature, or the label. */
interface ObservationTarget {
  /** Slot pair in a patient's `obs` array: 2 × slot, 2 × slot + 1. */
  slot: number;
  kind: Kind;
  agg: Aggregation | 'label';
  components?: Set<string>;
  values?: Map<string, number>;
  /** Exclusive start and inclusive end of the window, in unshifted day numbers. */
  start: number;
  end: number;
  /** The unit values are converted to (fixed by the spec, else set by the first value used). */
  unit: string | undefined;
  converters: Map<string, Converter>;
  above?: number;
  below?: number;
}

/** One thing a Condition row may feed. */
interface ConditionTarget {
  /** Slot in a patient's `cond` array, or -1 for the label. */
  slot: number;
  start: number;
  end: number;
}

/** What the builder keeps per patient key. */
interface PatientState {
  key: string;
  /** The patient's date offset (days). */
  shift: number;
  /** Where the Patient was read (its row), -1 until it is. */
  row: number;
  /** Unshifted day of birth (NaN: unknown). */
  birth: number;
  gender: string;
  /** Observation aggregates, two numbers per target slot (NaN: none yet). */
  obs: Float64Array;
  /** Earliest unshifted onset day per Condition feature (NaN: none). */
  cond: Float64Array;
  labelCondition: boolean;
  /** Basis references per Observation slot and Condition feature, when asked. */
  basis: Array<string | Reservoir | undefined> | undefined;
  /** The first resource that referred to this patient before its Patient came (for the error). */
  firstRef: { seq: number; source: string; where: string } | undefined;
}

/** A date as the builder uses it: its calendar day as written, and an instant to order by. */
interface When {
  day: number;
  ms: number;
}

const SKIP_OBSERVATION = new Set(['entered-in-error', 'cancelled']);
const SKIP_CONDITION = new Set(['entered-in-error', 'refuted']);
const SEXES = new Set(['male', 'female', 'other', 'unknown']);

/**
 * Builds the feature table of a spec from resources fed one at a time (`add`), in any order; the
 * table comes from `finish`. See the module comment for the semantics.
 */
export class FeatureBuilder {
  private readonly spec: FeatureSpec;
  private readonly shiftDays: ((key: string) => number) | undefined;
  private readonly keepBasis: boolean;
  private readonly patientView: CompiledView;
  private readonly observationView: CompiledView | undefined;
  private readonly conditionView: CompiledView | undefined;
  /** system → code → targets. */
  private readonly obsIndex = new Map<string, Map<string, ObservationTarget[]>>();
  private readonly condIndex = new Map<string, Map<string, ConditionTarget[]>>();
  private readonly obsTargets: ObservationTarget[] = [];
  private readonly nCond: number;
  private readonly indexDay: number;
  private readonly patients = new Map<string, PatientState>();
  private readonly order: PatientState[] = [];
  private seq = 0;
  /** Value codes (`system|code`) of coded features, when any: what pruning keeps of a value CodeableConcept. */
  private readonly valueCodes: Set<string> | undefined;
  /** Component codes (`system|code`) of component features and the label, when any. */
  private readonly componentCodes: Set<string> | undefined;
  /** Picks the basis samples of `mean` and `count` (seeded: the same input gives the same sample). */
  private readonly basisRng = new Rng(0x5eed);

  constructor(spec: FeatureSpec, options: FeatureBuilderOptions = {}) {
    this.spec = spec;
    this.shiftDays = options.shiftDays;
    this.keepBasis = options.basis === true;
    const index = options.index ?? spec.index;
    const day = parseIsoDate(index);
    if (day === undefined) {
      if (options.index !== undefined) throw Errors.badParam('index', 'expected an ISO date YYYY-MM-DD that exists in the calendar');
      throw Errors.badAt('/index', 'expected an ISO date YYYY-MM-DD that exists in the calendar');
    }
    this.indexDay = day;
    const views = specViews(spec);
    this.patientView = compileView(views.patient, 'the Patient view of the feature spec');

    const label = spec.label;
    const labelEnd = label ? addDuration(day, duration(label.within, '/label/within'), 1) : day;
    (spec.observations ?? []).forEach((o, i) => {
      const start = o.within !== undefined ? addDuration(day, duration(o.within, `/observations/${i}/within`), -1) : -Infinity;
      const t = this.target(i, o.component !== undefined ? 'component' : o.values !== undefined ? 'coded' : 'quantity', o.agg ?? 'last', start, day, o.unit, o.component);
      if (o.values) t.values = new Map(Object.entries(o.values));
      for (const c of list(o.code)) this.indexObservation(c, t);
    });
    if (label && 'observation' in label) {
      const lo = label.observation;
      const t = this.target(this.obsTargets.length, lo.component !== undefined ? 'component' : 'quantity', 'label', day, labelEnd, lo.unit, lo.component);
      if (lo.above !== undefined) t.above = lo.above;
      if (lo.below !== undefined) t.below = lo.below;
      for (const c of list(lo.code)) this.indexObservation(c, t);
    }
    (spec.conditions ?? []).forEach((c, i) => {
      for (const code of c.codes) this.indexCondition(code, { slot: i, start: -Infinity, end: day });
    });
    this.nCond = spec.conditions?.length ?? 0;
    if (label && 'condition' in label) for (const code of label.condition.codes) this.indexCondition(code, { slot: -1, start: day, end: labelEnd });
    this.observationView = this.obsTargets.length ? compileView(views.observation, 'the Observation view of the feature spec') : undefined;
    const values = new Set<string>();
    const components = new Set<string>();
    for (const t of this.obsTargets) {
      if (t.values) for (const k of t.values.keys()) values.add(k);
      if (t.components) for (const k of t.components) components.add(k);
    }
    // The view expands value codings and components only when some feature reads them (specViews).
    this.valueCodes = values.size ? values : undefined;
    this.componentCodes = components.size ? components : undefined;
    this.conditionView = this.condIndex.size ? compileView(views.condition, 'the Condition view of the feature spec') : undefined;
  }

  private target(slot: number, kind: Kind, agg: Aggregation | 'label', start: number, end: number, unit: string | undefined, components: string | string[] | undefined): ObservationTarget {
    const t: ObservationTarget = { slot, kind, agg, start, end, unit, converters: new Map() };
    if (components !== undefined) t.components = new Set(list(components));
    this.obsTargets.push(t);
    return t;
  }

  private indexObservation(systemCode: string, t: ObservationTarget): void {
    const [system, code] = splitCode(systemCode);
    let bySystem = this.obsIndex.get(system);
    if (!bySystem) this.obsIndex.set(system, (bySystem = new Map()));
    const ts = bySystem.get(code);
    if (!ts) bySystem.set(code, [t]);
    else if (!ts.includes(t)) ts.push(t);
  }

  private indexCondition(systemCode: string, t: ConditionTarget): void {
    const [system, code] = splitCode(systemCode);
    let bySystem = this.condIndex.get(system);
    if (!bySystem) this.condIndex.set(system, (bySystem = new Map()));
    const ts = bySystem.get(code);
    if (!ts) bySystem.set(code, [t]);
    else if (!ts.some((x) => x.slot === t.slot)) ts.push(t);
  }

  /** Folds one resource into the aggregates; resource types the spec does not use are skipped. */
  add(item: ResourceItem): void {
    const type = item.resource.resourceType;
    if (type === 'Observation') {
      if (this.observationView) this.addObservation(item, this.observationView);
    } else if (type === 'Condition') {
      if (this.conditionView) this.addCondition(item, this.conditionView);
    } else if (type === 'Patient') this.addPatient(item);
  }

  private run(view: CompiledView, item: ResourceItem, resource = item.resource): ViewRow[] {
    try {
      return view.run(resource, item.fullUrl !== undefined ? { fullUrl: item.fullUrl } : undefined);
    } catch (e) {
      // The view names its part (several values where one is expected); say which resource broke it.
      if (e instanceof MedfitError && e.code === 'MEDFIT_ERR_BAD_DATA') throw Errors.badData(at(item), e.message, e.details);
      throw e;
    }
  }

  /** The state of a patient key, made on first sight (by its Patient or by a resource referring to it). */
  private state(key: string): PatientState {
    let st = this.patients.get(key);
    if (st === undefined) {
      let shift = 0;
      if (this.shiftDays) {
        shift = this.shiftDays(key);
        if (!Number.isInteger(shift)) throw Errors.internal('shiftDays gave a date offset that is not a whole number of days');
      }
      st = {
        key,
        shift,
        row: -1,
        birth: NaN,
        gender: 'unknown',
        obs: new Float64Array(2 * this.obsTargets.length).fill(NaN),
        cond: new Float64Array(this.nCond).fill(NaN),
        labelCondition: false,
        basis: this.keepBasis ? new Array(this.obsTargets.length + this.nCond) : undefined,
        firstRef: undefined,
      };
      this.patients.set(key, st);
    }
    return st;
  }

  /** The state of the patient a non-Patient resource refers to, remembering where the reference was seen. */
  private referred(key: string, item: ResourceItem): PatientState {
    const st = this.state(key);
    if (st.row < 0 && st.firstRef === undefined) st.firstRef = { seq: this.seq, source: item.source, where: item.where };
    this.seq++;
    return st;
  }

  private addPatient(item: ResourceItem): void {
    const row = this.run(this.patientView, item)[0];
    const key = row?.patient;
    if (typeof key !== 'string' || key === '') throw Errors.badData(at(item), 'a Patient without an id (or a Bundle fullUrl): resources cannot refer to it');
    const st = this.state(key);
    if (st.row >= 0) throw Errors.badData(at(item), 'a second Patient with the same id: each patient must come once');
    st.row = this.order.length;
    st.firstRef = undefined;
    this.order.push(st);
    const gender = row!.gender;
    st.gender = typeof gender === 'string' && SEXES.has(gender) ? gender : 'unknown';
    const birth = row!.birth_date;
    if (typeof birth === 'string') {
      const w = parseFhirDate(birth, 'middle');
      if (w === undefined) throw Errors.badData(at(item), 'birthDate is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)');
      st.birth = w.day - st.shift;
    }
  }

  /**
   * Whether any coding of `code` (a CodeableConcept as in the resource) is in `index`: the same
   * test the aggregation makes on the view's `code.coding` rows, made before running the view so
   * that resources of codes the spec does not use cost a few property reads, not a view run.
   */
  private static anyCode(code: unknown, index: Map<string, Map<string, unknown>>): boolean {
    const coding = (code as { coding?: unknown } | undefined)?.coding;
    if (!Array.isArray(coding)) return false;
    for (const c of coding as Array<{ system?: unknown; code?: unknown } | null>) {
      if (c && typeof c.system === 'string' && typeof c.code === 'string' && index.get(c.system)?.has(c.code)) return true;
    }
    return false;
  }

  /** A resource of no code the spec uses: only its reference to a Patient is kept (for the missing-Patient check). */
  private referenceOnly(item: ResourceItem): void {
    // The function the views' getReferenceKey(Patient) runs, so the key is the one the view would give.
    const key = referenceKey(item.resource.subject, 'Patient');
    if (key !== undefined && key !== '') this.referred(key, item);
  }

  /**
   * The Observation as the view should see it. The view makes one row per code coding × value
   * coding × component coding, a product: 2000 codings and a component of 2000 more would be
   * four million rows. Above `PRUNE_ABOVE` rows, a shallow copy keeps only the codings the spec
   * uses (each `system|code` once) and the components that have one, in their order: every row
   * dropped is one the aggregation would skip (its code, value code or component code is not in
   * the spec), and a repeated coding only repeats rows, so the table is the same; what is left is
   * at most (spec codes × spec value codes × spec component codes) rows per component kept,
   * linear in the resource.
   */
  private viewInput(r: Resource): Resource {
    const coding = FeatureBuilder.codings(r.code);
    let n = coding.length;
    const value = this.valueCodes ? FeatureBuilder.codings(r.valueCodeableConcept) : [];
    n *= Math.max(1, value.length);
    const components = this.componentCodes ? FeatureBuilder.many(r.component) : [];
    let nc = 0;
    for (const c of components) nc += Math.max(1, FeatureBuilder.codings((c as { code?: unknown } | null)?.code).length);
    n *= Math.max(1, nc);
    if (n <= PRUNE_ABOVE) return r;
    const copy: Resource = { ...r, code: { ...(r.code as object), coding: FeatureBuilder.keep(coding, (s, c) => this.obsIndex.get(s)?.has(c) === true) } };
    if (this.valueCodes && value.length > 0) {
      const codes = this.valueCodes;
      copy.valueCodeableConcept = { ...(r.valueCodeableConcept as object), coding: FeatureBuilder.keep(value, (s, c) => codes.has(`${s}|${c}`)) };
    }
    if (this.componentCodes && components.length > 0) {
      const codes = this.componentCodes;
      const kept: unknown[] = [];
      for (const c of components) {
        const cc = FeatureBuilder.keep(FeatureBuilder.codings((c as { code?: unknown } | null)?.code), (s, k) => codes.has(`${s}|${k}`));
        if (cc.length > 0) kept.push({ ...(c as object), code: { ...((c as { code: object }).code), coding: cc } });
      }
      copy.component = kept;
    }
    return copy;
  }

  /** The codings of a CodeableConcept, or none. */
  private static codings(concept: unknown): unknown[] {
    return FeatureBuilder.many((concept as { coding?: unknown } | null | undefined)?.coding);
  }

  /** The nodes a member path reads from a value: an array's items, a lone object (not valid FHIR, but the view reads it as one). */
  private static many(v: unknown): unknown[] {
    return Array.isArray(v) ? v : typeof v === 'object' && v !== null ? [v] : [];
  }

  /** The codings with a string system and code that `use` accepts, each `system|code` once, in order. */
  private static keep(coding: unknown[], use: (system: string, code: string) => boolean): unknown[] {
    const out: unknown[] = [];
    const seen = new Set<string>();
    for (const c of coding as Array<{ system?: unknown; code?: unknown } | null>) {
      if (!c || typeof c.system !== 'string' || typeof c.code !== 'string' || !use(c.system, c.code)) continue;
      const key = `${c.system}|${c.code}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(c);
    }
    return out;
  }

  private addObservation(item: ResourceItem, view: CompiledView): void {
    if (!FeatureBuilder.anyCode(item.resource.code, this.obsIndex)) return this.referenceOnly(item);
    const rows = this.run(view, item, this.viewInput(item.resource));
    const first = rows[0];
    if (first === undefined) return;
    const key = first.patient;
    if (typeof key !== 'string' || key === '') return; // not about a Patient
    const st = this.referred(key, item);
    if (typeof first.status === 'string' && SKIP_OBSERVATION.has(first.status)) return;
    let done: ObservationTarget[] | undefined;
    let when: When | null | undefined;
    for (const row of rows) {
      const targets = this.obsIndex.get(row.code_system as string)?.get(row.code as string);
      if (targets === undefined) continue;
      for (const t of targets) {
        if (done !== undefined && done.includes(t)) continue;
        let value: unknown;
        let unit = '';
        let code: string | undefined; // the component's system|code; the Observation's is made only when a unit needs converting
        const count = t.agg === 'count';
        if (t.kind === 'quantity') {
          value = count ? 1 : row.quantity_value;
          if (typeof value !== 'number') {
            (done ??= []).push(t);
            continue;
          }
          unit = count ? '' : quantityUnit(row.quantity_unit, row.quantity_system, row.quantity_code);
        } else if (t.kind === 'component') {
          if (typeof row.component_system !== 'string' || typeof row.component_code !== 'string') continue;
          code = `${row.component_system}|${row.component_code}`;
          if (!t.components!.has(code)) continue;
          value = count ? 1 : row.component_value;
          if (typeof value !== 'number') continue;
          unit = count ? '' : quantityUnit(row.component_unit, row.component_unit_system, row.component_unit_code);
        } else {
          if (typeof row.value_system !== 'string' || typeof row.value_code !== 'string') continue;
          value = t.values!.get(`${row.value_system}|${row.value_code}`);
          if (value === undefined) continue;
        }
        if (when === undefined) when = observationDate(first, item);
        if (when === null) return; // no date: cannot be placed in a window
        (done ??= []).push(t);
        const day = when.day - st.shift;
        if (!(day > t.start && day <= t.end)) continue;
        let v = value as number;
        if (t.kind !== 'coded' && !count) {
          if (t.unit === undefined) t.unit = unit;
          else if (unit !== t.unit) v = this.convert(t, v, unit, code ?? `${row.code_system as string}|${row.code as string}`, item);
        }
        this.fold(st, t, v, when.ms, item);
      }
    }
  }

  private convert(t: ObservationTarget, v: number, unit: string, code: string, item: ResourceItem): number {
    const key = `${unit}\u0001${code}`;
    let c = t.converters.get(key);
    if (c === undefined) {
      c = unitConverter(unit, t.unit!, code);
      if (c === undefined) throw unitError(unit, t.unit!, { code, source: item.source, where: item.where });
      t.converters.set(key, c);
    }
    return c(v);
  }

  /** One value into a patient's aggregate for a target. */
  private fold(st: PatientState, t: ObservationTarget, v: number, ms: number, item: ResourceItem): void {
    const a = st.obs;
    const i = 2 * t.slot;
    let replace = false;
    let append = false;
    switch (t.agg) {
      case 'last':
      case 'first': {
        const t0 = a[i]!;
        replace = Number.isNaN(t0) || (t.agg === 'last' ? ms > t0 : ms < t0) || (ms === t0 && v > a[i + 1]!);
        if (replace) {
          a[i] = ms;
          a[i + 1] = v;
        }
        break;
      }
      case 'mean':
        a[i] = (Number.isNaN(a[i]!) ? 0 : a[i]!) + v;
        a[i + 1] = (Number.isNaN(a[i + 1]!) ? 0 : a[i + 1]!) + 1;
        append = true;
        break;
      case 'count':
        a[i] = (Number.isNaN(a[i]!) ? 0 : a[i]!) + 1;
        append = true;
        break;
      case 'min':
      case 'max':
        replace = Number.isNaN(a[i]!) || (t.agg === 'min' ? v < a[i]! : v > a[i]!);
        if (replace) a[i] = v;
        break;
      case 'label':
        if ((t.above !== undefined && v > t.above) || (t.below !== undefined && v < t.below)) a[i] = 1;
        else if (Number.isNaN(a[i]!)) a[i] = 0;
        return;
    }
    if (st.basis !== undefined && (replace || append)) {
      const ref = reference('Observation', item);
      if (ref === undefined) return;
      if (replace) st.basis[t.slot] = ref;
      else {
        const b = st.basis[t.slot] as Reservoir | undefined;
        if (b === undefined) st.basis[t.slot] = { refs: [ref], seen: 1 };
        else if (b.refs.length < MAX_BASIS) {
          b.refs.push(ref);
          b.seen++;
        } else {
          // Algorithm R: the n-th reference replaces a kept one with probability MAX_BASIS / n.
          const j = this.basisRng.int(++b.seen);
          if (j < MAX_BASIS) b.refs[j] = ref;
        }
      }
    }
  }

  private addCondition(item: ResourceItem, view: CompiledView): void {
    if (!FeatureBuilder.anyCode(item.resource.code, this.condIndex)) return this.referenceOnly(item);
    const rows = this.run(view, item);
    const first = rows[0];
    if (first === undefined) return;
    const key = first.patient;
    if (typeof key !== 'string' || key === '') return;
    const st = this.referred(key, item);
    if (SKIP_CONDITION.has(first.verification_status as string) || SKIP_CONDITION.has(first.clinical_status as string)) return;
    let onset: number | null | undefined;
    for (const row of rows) {
      const targets = this.condIndex.get(row.code_system as string)?.get(row.code as string);
      if (targets === undefined) continue;
      if (onset === undefined) {
        const w = conditionOnset(first, item);
        onset = w === null ? null : w.day - st.shift;
      }
      if (onset === null) return;
      for (const t of targets) {
        if (!(onset > t.start && onset <= t.end)) continue;
        if (t.slot < 0) {
          st.labelCondition = true;
          continue;
        }
        const prev = st.cond[t.slot]!;
        if (Number.isNaN(prev) || onset < prev) {
          st.cond[t.slot] = onset;
          if (st.basis !== undefined) {
            const ref = reference('Condition', item);
            if (ref !== undefined) st.basis[this.obsTargets.length + t.slot] = ref;
          }
        }
      }
    }
  }

  /**
   * The table: one row per Patient in the order read. A resource that refers to a Patient that
   * never came is an error naming where the first such resource was read.
   */
  finish(): FeatureTable {
    let missing: PatientState['firstRef'];
    for (const st of this.patients.values()) {
      if (st.row < 0 && st.firstRef !== undefined && (missing === undefined || st.firstRef.seq < missing.seq)) missing = st.firstRef;
    }
    if (missing !== undefined) throw Errors.badData(`${missing.source}, ${missing.where}`, 'refers to Patient that is not in the input');
    const spec = this.spec;
    const age = spec.patient?.age !== false;
    const sex = spec.patient?.sex !== false;
    const index = calendarOf(this.indexDay);
    const observations = spec.observations ?? [];
    const conditions = spec.conditions ?? [];
    const label = spec.label;
    const rows: FeatureTable['rows'] = [];
    const basis: string[][] = [];
    for (const st of this.order) {
      const row: Array<string | number | null> = [st.key];
      if (age) row.push(ageAt(st.birth, index));
      if (sex) row.push(st.gender);
      for (let i = 0; i < observations.length; i++) row.push(this.observationValue(st, i));
      for (let i = 0; i < conditions.length; i++) {
        const onset = st.cond[i]!;
        if (conditions[i]!.as === 'onset') row.push(Number.isNaN(onset) ? null : isoOfDay(onset + st.shift));
        else row.push(Number.isNaN(onset) ? 0 : 1);
      }
      if (label) {
        if ('condition' in label) row.push(st.labelCondition ? 1 : 0);
        else {
          const v = st.obs[2 * observations.length]!;
          row.push(Number.isNaN(v) ? null : v);
        }
      }
      rows.push(row);
      basis.push(st.basis !== undefined ? rowBasis(st.basis) : []);
    }
    return { columns: tableColumns(spec), rows, basis };
  }

  private observationValue(st: PatientState, slot: number): number | null {
    const a = st.obs;
    const i = 2 * slot;
    switch (this.obsTargets[slot]!.agg) {
      case 'last':
      case 'first':
        return Number.isNaN(a[i]!) ? null : a[i + 1]!;
      case 'mean':
        return Number.isNaN(a[i]!) ? null : a[i]! / a[i + 1]!;
      case 'count':
        return Number.isNaN(a[i]!) ? 0 : a[i]!;
      default:
        return Number.isNaN(a[i]!) ? null : a[i]!;
    }
  }
}

/**
 * A row's basis references, in feature order, each once, at most `MAX_BASIS`: the single
 * references (last, first, min, max, Conditions) first claim their places, the samples of means
 * and counts fill the room left.
 */
function rowBasis(slots: Array<string | Reservoir | undefined>): string[] {
  const singles = new Set<string>();
  for (const b of slots) if (typeof b === 'string') singles.add(b);
  let room = MAX_BASIS - singles.size;
  const refs: string[] = [];
  const seen = new Set<string>();
  for (const b of slots) {
    if (b === undefined) continue;
    if (typeof b === 'string') {
      if (!seen.has(b) && refs.length < MAX_BASIS) {
        seen.add(b);
        refs.push(b);
      }
      continue;
    }
    for (const r of b.refs) {
      if (room <= 0) break;
      if (seen.has(r) || singles.has(r)) continue;
      seen.add(r);
      refs.push(r);
      room--;
    }
  }
  return refs;
}

function list(c: string | string[]): string[] {
  return typeof c === 'string' ? [c] : c;
}

function splitCode(systemCode: string): [string, string] {
  const bar = systemCode.indexOf('|');
  return [systemCode.slice(0, bar), systemCode.slice(bar + 1)];
}

function duration(s: string, pointer: string) {
  const d = parseDuration(s);
  if (d === undefined) throw Errors.badAt(pointer, 'expected a duration such as "365d", "6mo", "2y"');
  return d;
}

function at(item: ResourceItem): string {
  return item.where ? `${item.source}, ${item.where}` : item.source;
}

/** `Type/id`, or the Bundle entry's fullUrl for a resource without an id. */
function reference(type: string, item: ResourceItem): string | undefined {
  const id = item.resource.id;
  if (typeof id === 'string' && id !== '') return `${type}/${id}`;
  return item.fullUrl;
}

/** Whole years from an unshifted birth day to the index date; over 89 → 90; null when unknown or born after. */
function ageAt(birth: number, index: { y: number; m: number; d: number }): number | null {
  if (Number.isNaN(birth)) return null;
  const b = calendarOf(birth);
  let age = index.y - b.y;
  if (index.m < b.m || (index.m === b.m && index.d < b.d)) age--;
  if (age < 0) return null;
  return age > 89 ? 90 : age;
}

const OBSERVATION_DATES = [
  ['effective_date_time', 'effectiveDateTime'],
  ['effective_instant', 'effectiveInstant'],
  ['effective_period_start', 'effectivePeriod.start'],
  ['issued', 'issued'],
] as const;

const CONDITION_DATES = [
  ['onset_date_time', 'onsetDateTime'],
  ['onset_period_start', 'onsetPeriod.start'],
  ['recorded_date', 'recordedDate'],
] as const;

function firstDate(row: ViewRow, columns: ReadonlyArray<readonly [string, string]>, item: ResourceItem): When | null {
  for (const [column, element] of columns) {
    const s = row[column];
    if (typeof s !== 'string') continue;
    const w = parseFhirDate(s, 'end');
    if (w === undefined) throw Errors.badData(at(item), `${element} is not a FHIR date or dateTime`);
    return w;
  }
  return null;
}

function observationDate(row: ViewRow, item: ResourceItem): When | null {
  return firstDate(row, OBSERVATION_DATES, item);
}

function conditionOnset(row: ViewRow, item: ResourceItem): When | null {
  return firstDate(row, CONDITION_DATES, item);
}

/**
 * A FHIR date, dateTime or instant (`2019`, `2019-03`, `2019-03-02`, `2019-03-02T10:15:00-05:00`,
 * fractions of seconds, `Z`), checked by hand (no pattern sees the input). A partial date is its
 * last day (`end`) or its middle (`middle`: 2 July, the 15th). Undefined when it is not one.
 */
export function parseFhirDate(s: string, partial: 'end' | 'middle'): When | undefined {
  const n = s.length;
  if (n < 4) return undefined;
  const y = digits(s, 0, 4);
  if (y < 0) return undefined;
  if (n === 4) {
    const day = partial === 'end' ? dayNumber(y, 12, 31) : dayNumber(y, 7, 2);
    return { day, ms: day * MS_PER_DAY };
  }
  if (s[4] !== '-' || n < 7) return undefined;
  const m = digits(s, 5, 7);
  if (m < 1 || m > 12) return undefined;
  if (n === 7) {
    const day = dayNumber(y, m, partial === 'end' ? daysInMonth(y, m) : 15);
    return { day, ms: day * MS_PER_DAY };
  }
  if (s[7] !== '-' || n < 10) return undefined;
  const d = digits(s, 8, 10);
  if (d < 1 || d > daysInMonth(y, m)) return undefined;
  const day = dayNumber(y, m, d);
  if (n === 10) return { day, ms: day * MS_PER_DAY };
  // Time: hh:mm[:ss[.fff]] then Z or ±hh:mm (the zone is optional here, as lenient readers allow).
  if (s[10] !== 'T' || n < 16 || s[13] !== ':') return undefined;
  const hh = digits(s, 11, 13);
  const mi = digits(s, 14, 16);
  if (hh < 0 || hh > 23 || mi < 0 || mi > 59) return undefined;
  let i = 16;
  let sec = 0;
  let frac = 0;
  if (s[i] === ':') {
    sec = digits(s, i + 1, i + 3);
    if (sec < 0 || sec > 60) return undefined;
    i += 3;
    if (s[i] === '.') {
      const from = ++i;
      while (i < n && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
      if (i === from) return undefined;
      frac = Number(`0.${s.slice(from, Math.min(i, from + 9))}`) * 1000;
    }
  }
  let zone = 0;
  if (i < n) {
    const c = s[i];
    if (c === 'Z' && i === n - 1) zone = 0;
    else if ((c === '+' || c === '-') && i + 6 === n && s[i + 3] === ':') {
      const zh = digits(s, i + 1, i + 3);
      const zm = digits(s, i + 4, i + 6);
      if (zh < 0 || zh > 14 || zm < 0 || zm > 59) return undefined;
      zone = (c === '+' ? 1 : -1) * (zh * 60 + zm);
    } else return undefined;
  }
  return { day, ms: day * MS_PER_DAY + ((hh * 60 + mi - zone) * 60 + sec) * 1000 + frac };
}
