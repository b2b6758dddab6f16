/**
 * The privacy room: HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of FHIR R4
 * resources and of tables, keyed by `MEDFIT_DEID_KEY` (never stored). Above core and data, below
 * models, automl and api. See docs/deidentification.md for what happens to each of the 18
 * identifiers, the key, and the limits.
 *
 * - `deidKey`: the key from configuration (or a random one for this process).
 * - `Deidentifier`: keyed pseudonyms, per-patient date offsets, and `resource` (a de-identified
 *   copy of a FHIR resource or Bundle).
 * - `planTable` / `deidentifyTableFile`: per-column rules from a profile, applied to a CSV, NDJSON
 *   or JSON table in one streaming pass, written atomically.
 * - `zip3`, `shiftDate`, `yearOf`, `yearOfCell`: the single rules, for callers that need one.
 *
 * PHI column detection (names and value shapes) lives in the data room (`columnPhi`, `PhiKind`),
 * where `medfit profile` uses it.
 */
export { deidKey, DEID_KEY_ENV, MIN_KEY_CHARS, type DeidKey } from './key.js';
export { Deidentifier, MAX_SHIFT_DAYS, type DeidentifierOptions, type DateRule } from './deidentifier.js';
export { RESTRICTED_ZIP3, zip3 } from './zip3.js';
export { shiftDate, yearOf, parseFhirDate, type FhirDate } from './dates.js';
export {
  planTable,
  deidentifyTableFile,
  yearOfCell,
  type ColumnAction,
  type ColumnRule,
  type ColumnFacts,
  type ColumnReport,
  type TableDeidentifyOptions,
  type TableDeidentifyResult,
} from './table.js';
