/**
 * Schema inference: decides each column's type and role from the evidence its cells give (see
 * `evidence.ts`), explains every column it leaves out, and applies the user's overrides.
 *
 * The rules, in order, for a column with at least one value:
 * - numeric/integer: at least 95 % of the non-missing cells parse as numbers (`parseNumber`); the
 *   rest are counted in a `non_numeric` warning and read as missing. `integer` when every number
 *   is written without a point or exponent.
 * - boolean: every non-missing cell is a boolean token (`parseBoolean`; 0/1 stay integers).
 * - datetime: at least 95 % parse as ISO dates (`parseDate`), the rest warned as `non_date`.
 * - otherwise text cells: `identifier`, free `text`, or `categorical` (below).
 *
 * Identifiers (role `ignored`) are recognised conservatively, because dropping a real measurement
 * silently costs accuracy, and because keeping one is worse: a patient number in a file sorted by
 * outcome predicts the outcome perfectly in cross-validation and not at all for a new patient.
 * - a name whose words include `id`, `uuid`, `guid`, `mrn` or `ssn` (`patient_id`, `PatientID`,
 *   `mrn`) on an integer or text column, unique or not (a repeated patient id is a group key, not
 *   a feature);
 * - a name that is a common export's patient or record number (`pid`, `patid`, `ptid`, `subjid`,
 *   `seqn` in NHANES, `eid` in UK Biobank, `caseid`, `recordid`, `patientid`...; see
 *   `ID_CODE_WORDS`) on an integer or text column with at least 10 different values: `pid` may
 *   also be a 0/1 diagnosis (pelvic inflammatory disease), which stays a feature;
 * - an integer column whose values are all distinct AND which is either named like a row key
 *   (`index`, `record`, `case`, `seq`, `row_no`, `subject_number`...; `case` only so, since a
 *   0/1 `case` is a case/control label) or counts up by exactly 1 from row to row (a row number);
 * - by shape, an integer column of at least 20 values, all distinct, that is dense over its range
 *   (distinct ≥ 0.9 × (max − min + 1): numbers handed out one by one, with a few gaps) or that
 *   strictly increases or decreases in file order and is fairly dense (≥ 0.7), whatever its name
 *   (`n`, `V1`);
 * - a text column whose values are all distinct (at least 10 of them) and short single words
 *   (codes such as `P-00017`), or all distinct with a row-key name.
 * A float column is never an identifier, however distinct its values (mean_radius); an integer
 * measurement with mostly or even all distinct values (insulin) is not either, unless it is dense
 * as above; nor is a strictly increasing measurement that leaves most of its range empty
 * (cumulative steps, epoch seconds). `--type <col>=integer` keeps a column so found as a feature.
 * Free text (role `ignored`): text cells with at least half of them distinct (and more than 20
 * distinct values) that are long (mean length ≥ 25) or mostly several words.
 * All-missing columns and constant columns (one distinct value) are ignored with a warning.
 * The target column is typed by the same rules but is never an identifier, free text or ignored.
 */
import { COLUMN_TYPES, Errors, type ColumnSchema, type ColumnType, type Schema, type Warning } from '../core/index.js';
import type { Table } from './table.js';
import type { ColumnEvidence } from './column.js';

/** Options for `inferSchema`. */
export interface InferOptions {
  /** The column to predict: role `target`. */
  target?: string;
  /** Types the user sets, by column name; they win over inference. */
  overrides?: Record<string, ColumnType>;
  /** Columns the user leaves out: role `ignored`, reason `dropped by user`. */
  drop?: string[];
  /** The column rows are grouped by (`--group`): role `ignored`, reason `the group column`. */
  group?: string;
}

/** An inferred schema and what the user should know about it. */
export interface InferredSchema {
  schema: Schema;
  warnings: Warning[];
}

/** Share of non-missing cells that must parse for a numeric or datetime column. */
export const TYPE_THRESHOLD = 0.95;

const STRONG_ID_WORDS = new Set(['id', 'uuid', 'guid', 'mrn', 'ssn']);
/**
 * Names that, alone, name whose rows these are (`subject`, `session`...): such a column of text
 * or integers with at least `MIN_GROUP_IDS` different values identifies people or recordings.
 * Used as a feature it lets a model learn the person instead of the pattern (each recording has
 * one label), so it is left out and `--group` is suggested.
 */
const GROUP_ID_NAMES = new Set(['subject', 'participant', 'patient', 'person', 'individual', 'session', 'recording', 'user', 'device']);
const MIN_GROUP_IDS = 10;
/**
 * Single-word names of patient or record numbers in common exports and cohorts (`pid`, NHANES's
 * `seqn`, UK Biobank's `eid`...). Some are also clinical abbreviations (`pid`: pelvic
 * inflammatory disease), so, as group-id names, they need `MIN_GROUP_IDS` different values.
 */
const ID_CODE_WORDS = new Set([
  'pid', 'patid', 'ptid', 'ptno', 'patno', 'subjid', 'subid', 'sid', 'seqn', 'eid', 'caseid', 'casenum', 'caseno', 'recid', 'recordid', 'recno',
  'studyid', 'patientid', 'subjectid', 'personid', 'participantid', 'uid', 'userid', 'encounterid', 'visitid', 'sampleid', 'specimenid',
]);
/** Names of a row key: an identifier only when its values are distinct integers (a 0/1 `case` is a label). */
const ROW_KEY_NAMES = new Set(['index', 'idx', 'key', 'record', 'row', 'rownum', 'rowid', 'case', 'obs', 'seq', 'serial', 'no', 'nr']);
const ROW_KEY_HEADS = new Set([
  'record', 'row', 'patient', 'subject', 'case', 'sample', 'visit', 'encounter', 'admission', 'episode', 'specimen',
]);
const ROW_KEY_TAILS = new Set(['no', 'num', 'nr', 'number', 'key', 'index', 'idx']);

/**
 * Splits a column name into lower-case words: `PatientID` → patient, id; `row_no` → row, no;
 * `HTTPServer` → http, server. One pass over the name (names come from users' files, so no
 * pattern that could backtrack over a long one).
 */
export function nameWords(name: string): string[] {
  const words: string[] = [];
  let start = -1; // where the current word starts, -1 between words
  const kind = (i: number): number => {
    const c = name.charCodeAt(i);
    return c >= 65 && c <= 90 ? UPPER : c >= 97 && c <= 122 ? LOWER : c >= 48 && c <= 57 ? DIGIT : OTHER;
  };
  for (let i = 0; i < name.length; i++) {
    const k = kind(i);
    if (k === OTHER) {
      if (start >= 0) words.push(name.slice(start, i).toLowerCase());
      start = -1;
      continue;
    }
    if (start < 0) {
      start = i;
      continue;
    }
    if (k === UPPER) {
      const prev = kind(i - 1);
      // A word starts at a capital after a lower-case letter or digit (patientId), or at the last
      // capital of a run followed by a lower-case letter (HTTPServer).
      if (prev === LOWER || prev === DIGIT || (prev === UPPER && i + 1 < name.length && kind(i + 1) === LOWER)) {
        words.push(name.slice(start, i).toLowerCase());
        start = i;
      }
    }
  }
  if (start >= 0) words.push(name.slice(start).toLowerCase());
  return words;
}

const UPPER = 0;
const LOWER = 1;
const DIGIT = 2;
const OTHER = 3;

/** A name that is just one of `GROUP_ID_NAMES` (`Subject`, `session`; not `subject_age`). */
function groupIdName(words: string[]): boolean {
  return words.length === 1 && GROUP_ID_NAMES.has(words[0]!);
}

function strongIdName(words: string[]): boolean {
  return words.some((w) => STRONG_ID_WORDS.has(w));
}

/** A patient or record number's name (`pid`, `SEQN`, `pat_no`... see `ID_CODE_WORDS`). */
function idCodeName(words: string[]): boolean {
  return words.some((w) => ID_CODE_WORDS.has(w));
}

/** Fewest values for an identifier found by shape alone: a handful of distinct integers is too easily chance. */
export const KEY_SHAPE_MIN_ROWS = 20;
/** Share of the integers in [min, max] a column must hold to be dense (numbers handed out one by one). */
export const KEY_DENSITY = 0.9;
/** The same for a column that strictly increases or decreases in file order. */
export const KEY_DENSITY_MONOTONIC = 0.7;

/**
 * Why distinct integers look like a key by their shape, or undefined: dense over their range, or
 * strictly monotonic in file order and fairly dense. `ev` must be an integer column whose values
 * are all distinct.
 */
function keyShape(ev: ColumnEvidence): string | undefined {
  if (ev.nonMissing < KEY_SHAPE_MIN_ROWS) return undefined;
  const density = ev.distinct / (ev.max - ev.min + 1);
  if (density >= KEY_DENSITY) return `${ev.distinct} distinct integers filling ${Math.round(density * 100)} % of their range`;
  if ((ev.increasing || ev.decreasing) && density >= KEY_DENSITY_MONOTONIC) {
    return `${ev.distinct} distinct integers, ${ev.increasing ? 'increasing' : 'decreasing'} in file order`;
  }
  return undefined;
}

function rowKeyName(words: string[]): boolean {
  if (words.length === 1) return ROW_KEY_NAMES.has(words[0]!);
  return ROW_KEY_HEADS.has(words[0]!) && ROW_KEY_TAILS.has(words[words.length - 1]!);
}

/** What inference decided for one column, before overrides. */
interface Decision {
  type: ColumnType;
  ignoredReason?: string;
  warnings: Warning[];
}

/** Why an integer column is an identifier, or undefined (see the module comment). */
function integerIdentifier(words: string[], ev: ColumnEvidence): string | undefined {
  const nm = ev.nonMissing;
  if (strongIdName(words)) return 'by its name';
  if ((groupIdName(words) || idCodeName(words)) && ev.distinct >= MIN_GROUP_IDS) return 'by its name';
  if (nm < 2) return undefined;
  const byName = rowKeyName(words) || (ev.consecutive && nm >= 10);
  // Distinct integers need a range of at least their count, and a dense key at most a little more:
  // only such a column pays for `distinct` (in memory it costs a sort of the column).
  const range = ev.max - ev.min + 1;
  const shaped =
    nm >= KEY_SHAPE_MIN_ROWS && range >= nm && (range * KEY_DENSITY <= nm || ((ev.increasing || ev.decreasing) && range * KEY_DENSITY_MONOTONIC <= nm));
  if (!byName && !shaped) return undefined;
  if (!(ev.distinctExact && ev.distinct === nm)) return undefined;
  if (rowKeyName(words)) return 'by its name, and its values are all distinct';
  if (ev.consecutive && nm >= 10) return 'a row number';
  const shape = keyShape(ev);
  return shape === undefined ? undefined : `by its shape: ${shape}`;
}

/**
 * Decides one column's type from its evidence.
 * @internal shared with the streaming profile
 */
export function decideColumn(name: string, ev: ColumnEvidence, isTarget: boolean): Decision {
  const warnings: Warning[] = [];
  const nm = ev.nonMissing;
  const col = `column "${name}"`;
  if (nm === 0) {
    warnings.push({ code: 'all_missing', column: name, message: `${col}: all values missing` });
    return { type: 'categorical', ignoredReason: isTarget ? undefined : 'all values missing', warnings };
  }
  const words = nameWords(name);
  let type: ColumnType;
  let ignoredReason: string | undefined;
  // Said in the warning when the evidence is not the name alone, so a user can judge it.
  let idWhy: string | undefined;
  if (ev.numCount > 0 && ev.numCount >= TYPE_THRESHOLD * nm) {
    type = ev.intCount === ev.numCount ? 'integer' : 'numeric';
    const bad = nm - ev.numCount;
    if (bad > 0) {
      warnings.push({
        code: 'non_numeric',
        column: name,
        message: `${col}: ${bad} non-numeric value${bad === 1 ? '' : 's'} treated as missing`,
      });
    }
    if (type === 'integer' && !isTarget) {
      idWhy = integerIdentifier(words, ev);
      if (idWhy !== undefined) type = 'identifier';
    }
  } else if (ev.boolCount === nm) {
    type = 'boolean';
  } else if (ev.dateCount > 0 && ev.dateCount >= TYPE_THRESHOLD * nm) {
    type = 'datetime';
    const bad = nm - ev.dateCount;
    if (bad > 0) {
      warnings.push({
        code: 'non_date',
        column: name,
        message: `${col}: ${bad} value${bad === 1 ? '' : 's'} that are not dates treated as missing`,
      });
    }
  } else {
    type = 'categorical';
    if (!isTarget) {
      const distinct = ev.distinct;
      const unique = ev.distinctExact && distinct === nm;
      const strs = Math.max(ev.strCount, 1);
      const textLike = ev.strLenSum / strs >= 25 || ev.multiWord / strs >= 0.5;
      if ((strongIdName(words) || ((groupIdName(words) || idCodeName(words)) && distinct >= MIN_GROUP_IDS)) && !textLike) type = 'identifier';
      else if (personalIdentifierName(name) !== undefined) type = 'identifier';
      else if (unique && !textLike && (nm >= 10 || rowKeyName(words))) type = 'identifier';
      else if (textLike && distinct > 20 && distinct >= 0.5 * nm) type = 'text';
      else if (distinct > 100 && distinct > 0.5 * nm) {
        warnings.push({
          code: 'high_cardinality',
          column: name,
          message: `${col}: ${distinct} distinct values in ${nm} rows; one-hot encoding will be wide`,
        });
      }
    }
  }
  if (type === 'identifier') {
    ignoredReason = 'identifier';
    // Repeated ids are whose rows these are: the split must keep each one's rows together.
    const repeated = !ev.distinctExact || ev.distinct < nm;
    const hint = repeated
      ? ` (its values repeat: --group ${name} keeps each one's rows on one side of every split)`
      : idWhy !== undefined && idWhy.startsWith('by its shape')
        ? ` (${idWhy}; --type ${name}=integer keeps it as a feature)`
        : '';
    warnings.push({ code: 'identifier', column: name, message: `${col}: looks like an identifier; ignored${hint}` });
  } else if (type === 'text') {
    ignoredReason = 'free text';
    warnings.push({ code: 'free_text', column: name, message: `${col}: free text; ignored` });
  } else if (ev.constant) {
    if (isTarget) {
      warnings.push({ code: 'constant', column: name, message: `${col}: the target has a single value` });
    } else {
      ignoredReason = 'constant';
      warnings.push({ code: 'constant', column: name, message: `${col}: a single value in every row; ignored` });
    }
  }
  return { type, ignoredReason, warnings };
}

/** Levenshtein distance, for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = t;
    }
  }
  return prev[b.length]!;
}

/** Up to three column names close to `name` (case, edit distance or containment). */
export function closeMatches(name: string, columns: string[]): string[] {
  const l = name.toLowerCase();
  return columns
    .map((c) => {
      const cl = c.toLowerCase();
      const d = cl === l ? 0 : cl.includes(l) || l.includes(cl) ? 1 : editDistance(l, cl);
      return { c, d };
    })
    .filter((x) => x.d <= Math.max(2, Math.floor(name.length / 3)))
    .sort((a, b) => a.d - b.d)
    .slice(0, 3)
    .map((x) => x.c);
}

/** Throws a usage error for a column name that is not in the table. */
export function checkColumnName(name: string, columns: string[], what: string): void {
  if (columns.includes(name)) return;
  const near = closeMatches(name, columns);
  const hint = near.length > 0 ? `; did you mean ${near.map((c) => `"${c}"`).join(', ')}?` : '';
  throw Errors.usage(`${what}: no column "${name}"${hint}`);
}

/**
 * Builds the schema from per-column evidence (used by `inferSchema` and the streaming profile).
 * @internal
 */
export function schemaFromEvidence(columns: string[], evidence: ColumnEvidence[], opts: InferOptions = {}): InferredSchema {
  const { target, overrides = {}, group } = opts;
  const drop = [...(opts.drop ?? []), ...(group !== undefined ? [group] : [])];
  if (target !== undefined) checkColumnName(target, columns, 'target');
  for (const [name, type] of Object.entries(overrides)) {
    checkColumnName(name, columns, 'type override');
    if (!COLUMN_TYPES.includes(type)) throw Errors.usage(`type override for "${name}": unknown type "${type}" (one of ${COLUMN_TYPES.join(', ')})`);
  }
  for (const name of drop) {
    checkColumnName(name, columns, 'drop');
    if (name === target) throw Errors.usage(`cannot drop the target column "${name}"`);
  }
  const dropSet = new Set(drop);
  const warnings: Warning[] = [];
  const out: ColumnSchema[] = columns.map((name, j) => {
    const isTarget = name === target;
    const ev = evidence[j]!;
    const d = decideColumn(name, ev, isTarget);
    // Own properties only: a column may be called `constructor` or `toString`.
    const forced = Object.hasOwn(overrides, name) ? overrides[name] : undefined;
    let type = d.type;
    let reason = d.ignoredReason;
    let colWarnings = d.warnings;
    if (forced !== undefined && forced !== d.type) {
      type = forced;
      // The inferred type's warnings no longer apply; report what the forced type will lose.
      colWarnings = colWarnings.filter((w) => w.code === 'all_missing' || w.code === 'constant');
      reason = reason === 'all values missing' || reason === 'constant' ? reason : undefined;
      const nm = ev.nonMissing;
      const bad =
        type === 'numeric' || type === 'integer'
          ? nm - ev.numCount
          : type === 'boolean'
            ? nm - ev.boolCount
            : type === 'datetime'
              ? nm - ev.dateCount
              : 0;
      if (bad > 0) {
        colWarnings.push({
          code: 'override_unparsed',
          column: name,
          message: `column "${name}": ${bad} value${bad === 1 ? '' : 's'} not ${type}, treated as missing`,
        });
      }
      if (isTarget && (type === 'identifier' || type === 'text')) {
        throw Errors.usage(`the target column "${name}" cannot be of type ${type}`);
      }
      if (type === 'identifier') reason = 'identifier (set by user)';
      if (type === 'text') reason = 'free text (set by user)';
    }
    // A column the user left out (or grouped by) needs no finding of ours beyond emptiness.
    for (const w of colWarnings) if (!dropSet.has(name) || w.code === 'all_missing') warnings.push(w);
    if (isTarget) return { name, type, role: 'target' };
    if (name === group) return { name, type, role: 'ignored', reason: 'the group column' };
    if (dropSet.has(name)) return { name, type, role: 'ignored', reason: 'dropped by user' };
    if (reason !== undefined) return { name, type, role: 'ignored', reason };
    return { name, type, role: 'feature' };
  });
  return { schema: { columns: out }, warnings };
}

/**
 * Infers a table's schema: each column's type and role, with a warning for every column left
 * out and every value that will be read as missing. See the module comment for the rules.
 * Unknown names in `target`, `overrides` or `drop` are usage errors that suggest close matches.
 */
export function inferSchema(table: Table, opts: InferOptions = {}): InferredSchema {
  return schemaFromEvidence(
    table.columns,
    table.data.map((c) => c.stats),
    opts,
  );
}

/** Words of a column name that say what personal identifier it holds. */
const PERSONAL_WORDS: ReadonlyMap<string, string> = new Map([
  ...['firstname', 'lastname', 'surname', 'fullname', 'forename', 'givenname', 'maidenname', 'nickname', 'patientname'].map((w) => [w, "a person's name"] as const),
  ...['email', 'mail'].map((w) => [w, 'an email address'] as const),
  ...['phone', 'telephone', 'tel', 'mobile', 'cellphone', 'fax'].map((w) => [w, 'a phone or fax number'] as const),
  ['ssn', 'a social security number'],
  ['mrn', 'a medical record number'],
  ...['address', 'street', 'zip', 'zipcode', 'postcode', 'postal'].map((w) => [w, 'an address'] as const),
  ...['dob', 'birthdate', 'birthday', 'birthdt'].map((w) => [w, 'a date of birth'] as const),
  ...['passport', 'licence', 'license'].map((w) => [w, 'a document number'] as const),
]);

/**
 * Words that, beside `name`, make it a person's name (`first_name`, `PatientName`), where
 * `drug_name` or `test_name` name things. `name` alone is taken as a person's too.
 */
const NAME_OWNERS = new Set(['first', 'last', 'full', 'given', 'family', 'middle', 'maiden', 'nick', 'sur', 'patient', 'person', 'user', 'member', 'client', 'contact', 'subject', 'participant', 'mother', 'father', 'guardian', 'doctor', 'physician']);

const BIRTH_WITH = new Set(['date', 'day', 'dt', 'of', 'place', 'year']);

/**
 * What personal identifier a column's name says it holds (`a person's name`, `an email
 * address`…), or undefined: one pass over the name's words, no pattern. A text column so named
 * is typed `identifier` (ignored in training, its values kept off model features and prediction
 * forms); the profile flags any column so named. `drug_name`, `birth_weight` are not.
 */
export function personalIdentifierName(name: string): string | undefined {
  const words = nameWords(name);
  for (const w of words) {
    const what = PERSONAL_WORDS.get(w);
    if (what !== undefined) return what;
  }
  if (words.includes('name') && (words.length === 1 || words.some((w) => NAME_OWNERS.has(w)))) return "a person's name";
  // `date_of_birth`, `birth_date`; not `birth_weight`, a measurement.
  if (words.includes('birth') && words.some((w) => BIRTH_WITH.has(w))) return 'a date of birth';
  return undefined;
}
