/**
 * Table profiles: per-column missingness, distinct values, numeric summaries, outliers and top
 * values, duplicate rows and the target's balance.
 *
 * `profileTable` works on a table in memory and is exact. `profileFile` streams a file once,
 * infers the schema from the same pass, and keeps memory bounded (a 1 GB CSV profiles in well
 * under 500 MB; see bench/profile-memory.ts). What it approximates, and how:
 * - distinct counts: exact up to 100 000 distinct values per column, then a HyperLogLog sketch
 *   (about 0.8 % standard error); `distinctApprox` says which. Top values of such a column are
 *   counted exactly for the values seen before the cap was reached.
 * - quantiles (q1, median, q3) and the outlier count: from a seeded reservoir sample of 65 536
 *   values per column (exact when the column has fewer numbers). The rank error of a quantile is
 *   about 0.2 percentage points at that size; outliers are the sample's share scaled to the column.
 *   min, max, mean and std are always exact.
 * - duplicate rows: counted by 53-bit row hashes (two 32-bit hashes of the cells), 8 bytes a row;
 *   the chance of a false duplicate is about rows² / 2^54 (0.6 % for 10 million rows).
 */
import type { Cell, ColumnRole, ColumnType, Schema, Warning } from '../core/index.js';
import { Errors } from '../core/index.js';
import type { Table, TableFormat } from './table.js';
import { ColumnAccumulator, EXACT, STREAMING, quantileSorted, type AccumulatorOptions } from './evidence.js';
import { openRows } from './read.js';
import { checkColumnName, schemaFromEvidence, type InferOptions } from './schema.js';

/** One value and how often it occurs. */
export interface ValueCount {
  value: Cell;
  count: number;
}

/** The profile of one column. */
export interface ColumnProfile {
  name: string;
  type: ColumnType;
  role: ColumnRole;
  reason?: string;
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
  /** Numeric and integer columns; datetime columns get min/max in ms since the epoch. */
  min?: number;
  max?: number;
  mean?: number;
  /** Sample standard deviation (n − 1). */
  std?: number;
  q1?: number;
  median?: number;
  q3?: number;
  /** Values outside [q1 − 1.5·IQR, q3 + 1.5·IQR]. */
  outliers?: number;
  /** Categorical and boolean columns: the 10 most frequent values (ties by value). */
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
  accumulator?: AccumulatorOptions;
}

/** A row-hash multiset for duplicate counting: a growable Float64Array, sorted at the end. */
class RowHashes {
  private buf = new Float64Array(1 << 16);
  private len = 0;

  add(row: Cell[]): void {
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let j = 0; j < row.length; j++) {
      const c = row[j];
      // A type tag per cell keeps `null`, `"1"`, `1` and `true` apart, and a separator keeps
      // ["ab", "c"] and ["a", "bc"] apart.
      const s = c === null ? '' : typeof c === 'string' ? c : String(c);
      const tag = c === null ? 1 : typeof c === 'string' ? 2 : typeof c === 'number' ? 3 : 4;
      h1 = Math.imul(h1 ^ tag, 0x01000193);
      h2 = Math.imul(h2 ^ tag, 0x5bd1e995);
      h2 ^= h2 >>> 15;
      for (let i = 0; i < s.length; i++) {
        const ch = s.charCodeAt(i);
        h1 = Math.imul(h1 ^ ch, 0x01000193);
        h2 = Math.imul(h2 ^ ch, 0x5bd1e995);
        h2 ^= h2 >>> 15;
      }
    }
    h1 ^= h1 >>> 16;
    h1 = Math.imul(h1, 0x85ebca6b);
    h1 ^= h1 >>> 13;
    if (this.len === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.len++] = (h1 >>> 11) * 4294967296 + (h2 >>> 0);
  }

  duplicates(): number {
    const a = this.buf.subarray(0, this.len).sort();
    let d = 0;
    for (let i = 1; i < a.length; i++) if (a[i] === a[i - 1]) d++;
    return d;
  }
}

/** Exact duplicate counting for tables in memory. */
function exactDuplicates(rows: Cell[][]): number {
  const seen = new Set<string>();
  let d = 0;
  for (const r of rows) {
    const k = JSON.stringify(r);
    if (seen.has(k)) d++;
    else seen.add(k);
  }
  return d;
}

function topValues(ev: ColumnAccumulator, type: ColumnType): ValueCount[] {
  if (type === 'boolean') {
    const t: ValueCount[] = [
      { value: true, count: ev.trueCount },
      { value: false, count: ev.boolCount - ev.trueCount },
    ];
    return t.filter((v) => v.count > 0).sort((a, b) => b.count - a.count);
  }
  return [...ev.valueCounts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, 10)
    .map(([value, count]) => ({ value, count }));
}

function columnProfile(
  col: { name: string; type: ColumnType; role: ColumnRole; reason?: string },
  ev: ColumnAccumulator,
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
  const nm = ev.nonMissing;
  if (col.type === 'numeric' || col.type === 'integer') {
    p.invalid = nm - ev.numCount;
    if (ev.numCount > 0) {
      const s = ev.sortedSample();
      const q1 = quantileSorted(s, 0.25);
      const q3 = quantileSorted(s, 0.75);
      const lo = q1 - 1.5 * (q3 - q1);
      const hi = q3 + 1.5 * (q3 - q1);
      let out = 0;
      for (let i = 0; i < s.length; i++) if (s[i]! < lo || s[i]! > hi) out++;
      Object.assign(p, {
        min: ev.min,
        max: ev.max,
        mean: ev.mean,
        std: ev.std,
        q1,
        median: quantileSorted(s, 0.5),
        q3,
        outliers: ev.sampleExact ? out : Math.round((out / s.length) * ev.numCount),
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
  return p;
}

function targetProfile(cp: ColumnProfile, ev: ColumnAccumulator): TargetProfile {
  const t: TargetProfile = { column: cp.name, type: cp.type };
  // Classification-looking: labels, booleans, or an integer target with at most 10 values (0/1).
  const classes =
    cp.type === 'categorical' ||
    cp.type === 'boolean' ||
    (cp.type === 'integer' && ev.distinctExact && ev.distinct <= 10);
  if (classes) {
    const balance: Record<string, number> = {};
    if (cp.type === 'boolean') {
      for (const v of topValues(ev, 'boolean')) balance[String(v.value)] = v.count;
    } else {
      const entries = [...ev.valueCounts.entries()].sort((a, b) => b[1] - a[1]);
      for (const [k, c] of entries) balance[k] = c;
    }
    t.balance = balance;
  } else if (cp.mean !== undefined) {
    t.summary = { min: cp.min!, max: cp.max!, mean: cp.mean, std: cp.std!, median: cp.median! };
  }
  return t;
}

function assemble(
  meta: { source: string; format: TableFormat; rows: number; duplicateRows: number },
  schema: Schema,
  acc: ColumnAccumulator[],
  warnings: Warning[],
  target: string | undefined,
  approx: ProfileApproximations,
): TableProfile {
  const columns = schema.columns.map((c, j) => columnProfile(c, acc[j]!, meta.rows));
  const ti = target !== undefined ? columns.findIndex((c) => c.name === target) : columns.findIndex((c) => c.role === 'target');
  const all = [...warnings];
  if (meta.duplicateRows > 0) {
    all.push({ code: 'duplicate_rows', message: `${meta.duplicateRows} rows repeat an earlier row` });
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
  const acc = table.columns.map((_, j) => new ColumnAccumulator(EXACT, j));
  for (const row of table.rows) for (let j = 0; j < acc.length; j++) acc[j]!.add(row[j] ?? null);
  const meta = {
    source: table.source,
    format: table.format,
    rows: table.rows.length,
    duplicateRows: exactDuplicates(table.rows),
  };
  return assemble(meta, schema, acc, [], opts.target, { quantiles: false, distinct: false, duplicateRows: false });
}

/**
 * Profiles a file in one streaming pass, inferring its schema from the same pass, with bounded
 * memory (see the module comment for what is approximate). The result has the same shape as
 * `profileTable`'s, with the inferred schema and its warnings.
 */
export async function profileFile(path: string, opts: ProfileFileOptions = {}): Promise<TableProfile> {
  const src = await openRows(path, opts.format !== undefined ? { format: opts.format } : {});
  if (opts.target !== undefined) checkColumnName(opts.target, src.columns, 'target');
  const accOpts = opts.accumulator ?? STREAMING;
  const acc = src.columns.map((_, j) => new ColumnAccumulator(accOpts, j));
  const hashes = new RowHashes();
  const width = acc.length;
  let rows = 0;
  for await (const batch of src.batches) {
    for (const r of batch) {
      const v = r.values;
      for (let j = 0; j < width; j++) acc[j]!.add(v[j]!);
      hashes.add(v);
    }
    rows += batch.length;
  }
  const { schema, warnings } = schemaFromEvidence(src.columns, acc, opts);
  const meta = { source: src.source, format: src.format, rows, duplicateRows: hashes.duplicates() };
  return assemble(meta, schema, acc, warnings, opts.target, {
    quantiles: acc.some((a) => !a.sampleExact),
    distinct: acc.some((a) => !a.distinctExact),
    duplicateRows: true,
  });
}
