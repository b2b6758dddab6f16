/**
 * Table profiles: per-column missingness, distinct values, numeric summaries, outliers,
 * histograms and top values, columns that may identify people (counted, their values left out),
 * duplicate rows and the target's balance.
 *
 * `profileTable` works on a table in memory and is exact. `profileFile` streams a file once,
 * infers the schema from the same pass, and keeps memory bounded whatever the file's size (see
 * bench/ingest.ts). What it approximates, and how:
 * - distinct counts: texts and integers exactly up to 100 000 distinct values per column, numbers
 *   with a fraction exactly up to 4 096; past that, a HyperLogLog sketch (about 0.8 % standard
 *   error); `distinctApprox` says which. Top values of such a column are counted exactly for the
 *   values seen before the cap was reached. Numbers are compared by value (`1.50` is `1.5`).
 * - quantiles (q1, median, q3) and the outlier count: from a seeded reservoir sample of 65 536
 *   values per column (exact when the column has fewer numbers). The rank error of a quantile is
 *   about 0.2 percentage points at that size; outliers are the sample's share scaled to the column.
 *   min, max, mean and std are always exact.
 * - histograms: binned from the same numbers as the quantiles, so exact exactly when they are;
 *   from the reservoir, counts are scaled to the column (see histogram.ts), except the bins of a
 *   few-valued integer column, counted exactly whenever the distinct counts are exact.
 * - duplicate rows: from 53-bit row hashes, exact (up to hash collisions, about rows² / 2^54) up
 *   to two million distinct rows, then estimated from a fixed-size sample of the hashes (about
 *   0.1 % error), so memory does not grow with the file.
 */
import type { Cell, ColumnRole, ColumnType, Schema, SerializedError, Warning } from '../core/index.js';
import { Errors, deserializeError, siblingModule, startWorker } from '../core/index.js';
import type { Table, TableFormat } from './table.js';
import { STREAMING, type BuildOptions, type ColumnEvidence } from './column.js';
import { scanTable } from './read.js';
import { quantileOf } from './pipeline.js';
import { duplicateCount } from './rows.js';
import { checkColumnName, personalIdentifierName, schemaFromEvidence, type InferOptions } from './schema.js';
import { histogramOf, type Histogram } from './histogram.js';
import { columnPhi, type PhiKind } from './phi.js';

/** One value and how often it occurs. */
export interface ValueCount {
  value: Cell;
  count: number;
}

/**
 * The profile of one column: what a user checks before training on it. Every figure is exact
 * for `profileTable`; `profileFile` marks what it estimated (see the module comment and
 * `TableProfile.approximate`). Optional fields are present only for the types that have them.
 */
export interface ColumnProfile {
  /** The column's name, as in the file's header (or the records' keys). */
  name: string;
  /** The inferred (or user-set) type. */
  type: ColumnType;
  /** `feature`, `target`, or `ignored` (with `reason`). */
  role: ColumnRole;
  /** Why an ignored column is left out of the features (identifier, free text, constant, user choice...). */
  reason?: string;
  /**
   * Set when the column may identify a person (a name, an email address, a phone number, a
   * record or social security number, an address, a date of birth, or identifier-like values):
   * says why, in words a page can show. A hint from the name and the inferred type only, never
   * from the values; full PHI detection is the privacy room's.
   *
   * A flagged column keeps its counts (missing, invalid, distinct, outliers) and nothing computed
   * from its values: no `top`, `min`, `max`, `mean`, `std`, quartiles or `histogram` (whose outer
   * edges are the minimum and maximum; the mean of a dozen phone numbers is nearly one of them).
   * A profile is shown to every key that may read the dataset; one person's name or date of
   * birth is not a summary.
   *
   * Besides the name, the shape of a sample of a text column's values flags it (e-mail
   * addresses, phone and social security numbers, street addresses, ZIP+4 codes, URLs, IP
   * addresses, full dates in a column named for birth: see phi.ts); the hint then says so,
   * without a value.
   */
  identifier?: string;
  /**
   * What kind of personal identifier the column may hold (phi.ts), for de-identification:
   * present with `identifier`, and alone for `date` (full dates in a text column, which
   * de-identification cuts to the year but a profile shows like any date column).
   */
  phi?: PhiKind;
  /** Missing cells (empty or a missing token). */
  missing: number;
  /** `missing` as a percentage of the rows (0–100). */
  missingPct: number;
  /** Present cells that do not parse as the column's type (numeric, integer, boolean, datetime). */
  invalid: number;
  /** Distinct present values, compared as text. */
  distinct: number;
  /** Whether `distinct` is a sketch estimate (streaming, past 100 000 distinct values). */
  distinctApprox: boolean;
  /** Smallest value: numeric and integer columns; datetime columns in ms since the epoch. Always exact. */
  min?: number;
  /** Largest value, as `min`. */
  max?: number;
  /** Mean of the numbers (numeric and integer columns; exact). */
  mean?: number;
  /** Sample standard deviation (n − 1; exact). */
  std?: number;
  /** First quartile (linear interpolation, numpy's default; from a sample when `approximate.quantiles`). */
  q1?: number;
  /** Median, as `q1`. */
  median?: number;
  /** Third quartile, as `q1`. */
  q3?: number;
  /** Values outside [q1 − 1.5·IQR, q3 + 1.5·IQR] (scaled from the sample when `approximate.quantiles`). */
  outliers?: number;
  /**
   * Numeric and integer columns: bars over the column's bulk (the outlier fences ∩ [min, max]),
   * about 20 equal-width bins, one bin per value for integers spanning at most 30 values; values
   * outside the bins in `below`/`above`. See histogram.ts for the rules and their exactness.
   */
  histogram?: Histogram;
  /** Categorical and boolean columns: the 10 most frequent values (ties by value); never for a flagged column (`identifier`). */
  top?: ValueCount[];
}

/** How the target's values are spread. */
export interface TargetProfile {
  /** The target column's name. */
  column: string;
  type: ColumnType;
  /** Class counts for a categorical, boolean or few-valued integer target. */
  balance?: Record<string, number>;
  /** Summary for a numeric target. */
  summary?: { min: number; max: number; mean: number; std: number; median: number };
}

/** Which figures of a profile are estimates. */
export interface ProfileApproximations {
  quantiles: boolean;
  distinct: boolean;
  duplicateRows: boolean;
}

/** A whole table's profile. */
export interface TableProfile {
  source: string;
  format: TableFormat;
  rows: number;
  /** Rows identical to an earlier row. */
  duplicateRows: number;
  columns: ColumnProfile[];
  target?: TargetProfile;
  /** The schema the profile was computed with (inferred, for `profileFile`). */
  schema: Schema;
  /** Inference warnings (`profileFile`) and profile findings such as duplicate rows. */
  warnings: Warning[];
  approximate: ProfileApproximations;
}

/** Options for `profileTable`. */
export interface ProfileOptions {
  /** The target column; defaults to the schema's column with role `target`. */
  target?: string;
}

/** Options for `profileFile`: inference options plus the reader's format. */
export interface ProfileFileOptions extends InferOptions {
  format?: TableFormat;
  /** Memory/exactness trade-off; defaults to the streaming settings described above. */
  accumulator?: BuildOptions;
  /** The file's name in messages and in the profile (an upload's name, not its server path); default the path. */
  source?: string;
}

function topValues(ev: ColumnEvidence, type: ColumnType): ValueCount[] {
  if (type === 'boolean') {
    const t: ValueCount[] = [
      { value: true, count: ev.trueCount },
      { value: false, count: ev.boolCount - ev.trueCount },
    ];
    return t.filter((v) => v.count > 0).sort((a, b) => b.count - a.count);
  }
  return [...ev.valueCounts().entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, 10)
    .map(([value, count]) => ({ value, count }));
}

/**
 * Why a column may identify a person, or undefined: a hint from its name (one pass over it, no
 * pattern) and from schema inference having typed it `identifier` (an id-like name, or unique
 * short codes, or a row key). Deliberately modest, for a page to flag: the privacy room owns real
 * PHI detection.
 */
export function identifierHint(name: string, type: ColumnType): string | undefined {
  const what = personalIdentifierName(name);
  if (what !== undefined) return `the name suggests ${what}`;
  if (type === 'identifier') return 'inferred as an identifier (an id-like name, a row key, or codes naming rows or subjects)';
  return undefined;
}

function columnProfile(
  col: { name: string; type: ColumnType; role: ColumnRole; reason?: string },
  ev: ColumnEvidence,
  rows: number,
): ColumnProfile {
  const p: ColumnProfile = {
    name: col.name,
    type: col.type,
    role: col.role,
    ...(col.reason !== undefined ? { reason: col.reason } : {}),
    missing: ev.missing,
    missingPct: rows === 0 ? 0 : (100 * ev.missing) / rows,
    invalid: 0,
    distinct: ev.distinct,
    distinctApprox: !ev.distinctExact,
  };
  const phi = columnPhi(col.name, col.type, ev);
  // The most telling words first: what the name or the values' shape says, then inference's.
  const identifier = phi?.hint ?? identifierHint(col.name, col.type);
  if (identifier !== undefined) p.identifier = identifier;
  if (phi !== undefined) p.phi = phi.kind;
  const nm = ev.nonMissing;
  if (col.type === 'numeric' || col.type === 'integer') {
    p.invalid = nm - ev.numCount;
    if (ev.numCount > 0) {
      // Selections, not a sort: three order statistics are all a profile shows of the numbers.
      const s = ev.sample();
      const q1 = quantileOf(s, 0.25);
      const q3 = quantileOf(s, 0.75);
      const median = quantileOf(s, 0.5);
      const lo = q1 - 1.5 * (q3 - q1);
      const hi = q3 + 1.5 * (q3 - q1);
      let out = 0;
      for (let i = 0; i < s.length; i++) if (s[i]! < lo || s[i]! > hi) out++;
      // The same numbers as the quartiles (all of them, or the reservoir): no second copy.
      let counts: Map<string, number> | undefined;
      const histogram = histogramOf(s, {
        integer: col.type === 'integer' && ev.intCount === ev.numCount,
        min: ev.min,
        max: ev.max,
        q1,
        q3,
        total: ev.numCount,
        exact: ev.sampleExact,
        // Asked only for the few values of a one-bin-per-integer column, and only when sampled.
        countOf: ev.distinctExact ? (v) => (counts ??= ev.valueCounts()).get(String(v)) ?? 0 : undefined,
      });
      Object.assign(p, {
        min: ev.min,
        max: ev.max,
        mean: ev.mean,
        std: ev.std,
        q1,
        median,
        q3,
        outliers: ev.sampleExact ? out : Math.round((out / s.length) * ev.numCount),
        histogram,
      });
    }
  } else if (col.type === 'datetime') {
    p.invalid = nm - ev.dateCount;
    if (ev.dateCount > 0) Object.assign(p, { min: ev.dateMin, max: ev.dateMax });
  } else if (col.type === 'boolean') {
    p.invalid = nm - ev.boolCount;
    p.top = topValues(ev, 'boolean');
  } else if (col.type === 'categorical') {
    p.top = topValues(ev, 'categorical');
  }
  return withoutIdentifierValues(p);
}

/** The figures of a column profile computed from its cells' values (see `ColumnProfile.identifier`). */
const VALUE_FIELDS = ['top', 'min', 'max', 'mean', 'std', 'q1', 'median', 'q3', 'histogram'] as const satisfies ReadonlyArray<keyof ColumnProfile>;

/**
 * A column's profile as it may be shown: when it is flagged as a possible identifier, without
 * its values (its counts stay). Also for profiles stored before flagged columns lost them.
 */
export function withoutIdentifierValues<T extends { identifier?: string | undefined }>(p: T): T {
  if (p.identifier === undefined) return p;
  const out: Record<string, unknown> = { ...p };
  for (const k of VALUE_FIELDS) delete out[k];
  return out as T;
}

function targetProfile(cp: ColumnProfile, ev: ColumnEvidence): TargetProfile {
  const t: TargetProfile = { column: cp.name, type: cp.type };
  // A target that may identify a person gets neither class counts (its values) nor a summary.
  if (cp.identifier !== undefined) return t;
  // Classification-looking: labels, booleans, or an integer target with at most 10 values (0/1).
  const classes =
    cp.type === 'categorical' ||
    cp.type === 'boolean' ||
    (cp.type === 'integer' && ev.distinctExact && ev.distinct <= 10);
  if (classes) {
    // fromEntries defines own properties: a class named `__proto__` stays a class.
    t.balance = Object.fromEntries(
      cp.type === 'boolean'
        ? topValues(ev, 'boolean').map((v) => [String(v.value), v.count])
        : [...ev.valueCounts().entries()].sort((a, b) => b[1] - a[1]),
    );
  } else if (cp.mean !== undefined) {
    t.summary = { min: cp.min!, max: cp.max!, mean: cp.mean, std: cp.std!, median: cp.median! };
  }
  return t;
}

function assemble(
  meta: { source: string; format: TableFormat; rows: number; duplicateRows: number },
  schema: Schema,
  acc: ColumnEvidence[],
  warnings: Warning[],
  target: string | undefined,
  approx: ProfileApproximations,
): TableProfile {
  const columns = schema.columns.map((c, j) => columnProfile(c, acc[j]!, meta.rows));
  const ti = target !== undefined ? columns.findIndex((c) => c.name === target) : columns.findIndex((c) => c.role === 'target');
  const all = [...warnings];
  if (meta.duplicateRows > 0) {
    const about = approx.duplicateRows ? 'about ' : '';
    all.push({ code: 'duplicate_rows', message: `${about}${meta.duplicateRows} rows repeat an earlier row${approx.duplicateRows ? ' (estimated from a sample of the rows)' : ''}` });
  }
  return {
    ...meta,
    columns,
    ...(ti >= 0 ? { target: targetProfile(columns[ti]!, acc[ti]!) } : {}),
    schema,
    warnings: all,
    approximate: approx,
  };
}

/**
 * Profiles a table in memory with a given schema; every figure is exact.
 * @param schema usually `inferSchema(table).schema`; its columns must match the table's
 */
export function profileTable(table: Table, schema: Schema, opts: ProfileOptions = {}): TableProfile {
  if (schema.columns.length !== table.columns.length || schema.columns.some((c, j) => c.name !== table.columns[j])) {
    throw Errors.internal('profileTable: the schema does not describe this table');
  }
  if (opts.target !== undefined) checkColumnName(opts.target, table.columns, 'target');
  const meta = { source: table.source, format: table.format, rows: table.rowCount, duplicateRows: duplicateCount(table) };
  return assemble(meta, schema, table.data.map((c) => c.stats), [], opts.target, { quantiles: false, distinct: false, duplicateRows: false });
}

/**
 * Profiles a file in one streaming pass, inferring its schema from the same pass, with bounded
 * memory (see the module comment for what is approximate). The result has the same shape as
 * `profileTable`'s, with the inferred schema and its warnings.
 */
export async function profileFile(path: string, opts: ProfileFileOptions = {}): Promise<TableProfile> {
  const b = await scanTable(path, { ...(opts.format !== undefined ? { format: opts.format } : {}), build: opts.accumulator ?? STREAMING, source: opts.source ?? path });
  if (opts.target !== undefined) checkColumnName(opts.target, b.columns, 'target');
  const acc = b.builders;
  const { schema, warnings } = schemaFromEvidence(b.columns, acc, opts);
  const distinctRows = b.distinctRows!;
  const meta = { source: opts.source ?? path, format: b.format, rows: b.rows, duplicateRows: distinctRows.duplicates };
  return assemble(meta, schema, acc, warnings, opts.target, {
    quantiles: acc.some((a) => !a.sampleExact),
    distinct: acc.some((a) => !a.distinctExact),
    duplicateRows: distinctRows.sampled,
  });
}

/** Longest a profile of an upload may take (a gigabyte profiles in well under a minute here). */
const PROFILE_TIMEOUT_MS = 10 * 60 * 1000;

/** Profiling workers running at once; more uploads wait their turn rather than share the cores. */
const WORKERS = 2;
let running = 0;
const waiting: Array<() => void> = [];

/**
 * `profileFile` in a worker thread, so that a large upload is profiled without holding up the
 * event loop that answers every other request. At most two run at once; the others queue. The
 * worker's heap is capped at `maxHeapMb` (the profile's memory is bounded; this guards the server
 * against a file that defeats the bounds), and `source` names the file in messages instead of
 * its path on the server.
 */
export async function profileFileInWorker(path: string, opts: ProfileFileOptions & { maxHeapMb?: number; timeoutMs?: number } = {}): Promise<TableProfile> {
  if (running >= WORKERS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    const { maxHeapMb = 1024, timeoutMs = PROFILE_TIMEOUT_MS, ...rest } = opts;
    const source = opts.source ?? path;
    const worker = startWorker(siblingModule(import.meta.url, 'profile-worker'), {
      workerData: { path, opts: rest },
      resourceLimits: { maxOldGenerationSizeMb: maxHeapMb },
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<TableProfile>((resolve, reject) => {
        // A slot held for ever would hold every later upload: past the limit the worker is stopped.
        timer = setTimeout(() => reject(Errors.badData(source, `profiling took longer than ${Math.round(timeoutMs / 1000)} s; it was stopped`)), timeoutMs);
        worker.once('message', (m: { profile?: TableProfile; error?: SerializedError }) => (m.profile ? resolve(m.profile) : reject(deserializeError(m.error!))));
        worker.once('error', (e: Error & { code?: string }) =>
          reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? Errors.badData(source, `profiling needed more than ${maxHeapMb} MB of memory`) : Errors.internal('the profiling worker failed')),
        );
        worker.once('exit', (code) => reject(Errors.internal(`the profiling worker exited (code ${code}) without a result`)));
      });
    } finally {
      clearTimeout(timer);
      await worker.terminate();
    }
  } finally {
    running--;
    waiting.shift()?.();
  }
}
