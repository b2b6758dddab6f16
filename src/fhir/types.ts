/**
 * The shapes the FHIR room's parts agree on: resources as read, SQL-on-FHIR v2 views and their
 * rows, and the feature spec (the shorthand for one-row-per-patient training tables, compiled to
 * views so both paths share one engine).
 */

/** A FHIR resource as parsed JSON. Readers guarantee `resourceType` is a known R4 type name. */
export interface Resource {
  resourceType: string;
  id?: string;
  [element: string]: unknown;
}

/** One resource from a reader, with where it came from (for messages that name file and place). */
export interface ResourceItem {
  resource: Resource;
  /** The file name (or a dataset's name) as the user gave it. */
  source: string;
  /** Where inside: `entry 12` of a Bundle, `line 40` of NDJSON. */
  where: string;
  /** The Bundle entry's `fullUrl` (e.g. `urn:uuid:…`), when the resource came from a Bundle. */
  fullUrl?: string;
}

/** A SQL-on-FHIR v2 ViewDefinition, as JSON (validated by `compileView`). */
export interface ViewDefinition {
  resourceType?: 'ViewDefinition';
  name?: string;
  resource: string;
  status?: string;
  constant?: Array<{ name: string; [valueX: string]: unknown }>;
  select: ViewSelect[];
  where?: Array<{ path: string; description?: string }>;
  [other: string]: unknown;
}

/** One `select` of a view (nested selects, `forEach`, `unionAll`, `repeat`). */
export interface ViewSelect {
  column?: Array<{ name: string; path: string; collection?: boolean; type?: string; description?: string; tag?: unknown[] }>;
  select?: ViewSelect[];
  forEach?: string;
  forEachOrNull?: string;
  repeat?: string[];
  unionAll?: ViewSelect[];
  [other: string]: unknown;
}

/** One output row of a view: column name → value (a FHIR primitive, an array for collection columns, or null). */
export type ViewRow = Record<string, unknown>;

/** Aggregations of one Observation code per patient over the feature window. */
export type Aggregation = 'last' | 'first' | 'mean' | 'min' | 'max' | 'count';

/** One numeric feature from Observations of a code (or of a component of them). */
export interface ObservationFeature {
  /** The column's name in the table, e.g. `hba1c`. */
  name: string;
  /** `system|code`, e.g. `http://loinc.org|4548-4` (a list: any of them). */
  code: string | string[];
  /** A component's `system|code` (systolic blood pressure is component 8480-6 of 85354-9 / 55284-4). */
  component?: string | string[];
  /** Default `last`. */
  agg?: Aggregation;
  /** How far back from the index date the feature window reaches: `365d`, `6mo`, `2y` (default: no limit). */
  within?: string;
  /** The UCUM unit every value is converted to (default: the unit of the first value seen, refused if another cannot be converted). */
  unit?: string;
  /** A coded value (smoking status): `valueCodeableConcept` codes mapped to numbers, e.g. {"http://snomed.info/sct|449868002": 1}. */
  values?: Record<string, number>;
}

/** Conditions as a 0/1 flag (present with onset at or before the index date) or first-onset date. */
export interface ConditionFeature {
  name: string;
  /** `system|code` of the concept and every descendant to count (the spec lists them). */
  codes: string[];
  /** `flag` (default) or `onset` (the first onset date, ISO `YYYY-MM-DD`, empty when none). */
  as?: 'flag' | 'onset';
}

/** The label: what happens after the index date, within the label window. */
export type LabelSpec =
  | { name: string; condition: { codes: string[] }; within: string }
  | { name: string; observation: { code: string | string[]; component?: string | string[]; unit?: string; above?: number; below?: number }; within: string };

/** The feature spec: one row per Patient, features up to the index date, the label after it. */
export interface FeatureSpec {
  /** The index date (ISO date): features use data at or before it, the label data after it. */
  index: string;
  /** Patient columns: age in whole years at the index date (over 89 pooled as 90) and sex (`male`, `female`, `other`, `unknown`). Default both true. */
  patient?: { age?: boolean; sex?: boolean };
  observations?: ObservationFeature[];
  conditions?: ConditionFeature[];
  label?: LabelSpec;
}
