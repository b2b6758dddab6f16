import {
  Errors,
  MAX_PROBLEMS,
  matrix,
  type Cell,
  type ColumnSchema,
  type Matrix,
  type RawRecord,
  type Schema,
  type Task,
  type Warning,
} from '../core/index.js';
import { categoryKey, isMissing, parseBoolean, parseDate, parseNumber } from './cells.js';
import { closeMatches } from './schema.js';
import type { Column } from './column.js';
import type { Table } from './table.js';

/** The format of a serialized pipeline; bump on any change a saved model could not read. */
export const PIPELINE_VERSION = 1;

/** Parts a datetime column is turned into. */
export type DatePart = 'year' | 'month' | 'day' | 'weekday' | 'hour';

/** One fitted feature step. Every number in it was learned from training rows only. */
export type FeatureStep =
  | {
      kind: 'numeric';
      column: string;
      /** Median of the training values: what a missing value becomes. */
      fill: number;
      /** Standardisation: (x - center) / scale. */
      center: number;
      scale: number;
      /** Optional clipping bounds (Tukey fences at 3 IQR), applied before standardising. */
      clip?: [number, number];
      /** Whether a `<column>__missing` indicator follows (only if training had missing values). */
      indicator: boolean;
    }
  | { kind: 'boolean'; column: string; fill: 0 | 1; indicator: boolean }
  | { kind: 'categorical'; column: string; categories: string[]; fill: string; indicator: boolean }
  | {
      kind: 'datetime';
      column: string;
      parts: DatePart[];
      fill: number;
      center: number[];
      scale: number[];
      indicator: boolean;
    };

/** How the target column maps to model outputs. */
export interface TargetEncoding {
  column: string;
  task: Task;
  /** Class labels in output order (classification); index 1 is the positive class for binary. */
  classes?: string[];
}

/** A fitted, JSON-serializable pipeline: raw records in, model-ready features out. */
export interface FittedPipeline {
  version: typeof PIPELINE_VERSION;
  steps: FeatureStep[];
  /** Names of the output features, in matrix column order. */
  features: string[];
}

/** Options for fitting. */
export interface PipelineOptions {
  /** Clip numeric features to Tukey's outer fences (Q1 - 3 IQR, Q3 + 3 IQR) of the training rows. */
  clipOutliers?: boolean;
  /** Categories kept per column (most frequent first); rarer ones are treated like unseen ones. */
  maxCategories?: number;
}

/** Result of turning raw rows into features. */
export interface Transformed {
  x: Matrix;
  warnings: Warning[];
}

/**
 * Fits the feature pipeline on `rows` of `table` (the training rows of a split: never the rows a
 * score is computed on). Imputation values, scales, categories and clip bounds all come from them.
 */
export function fitPipeline(table: Table, schema: Schema, rows: ArrayLike<number>, opts: PipelineOptions = {}): FittedPipeline {
  const steps: FeatureStep[] = [];
  for (const col of schema.columns) {
    if (col.role !== 'feature') continue;
    steps.push(fitStep(col, table.data[columnIndex(table, col.name)]!, rows, opts));
  }
  return { version: PIPELINE_VERSION, steps, features: steps.flatMap(outputNames) };
}

function fitStep(col: ColumnSchema, data: Column, rows: ArrayLike<number>, opts: PipelineOptions): FeatureStep {
  const n = rows.length;
  switch (col.type) {
    case 'numeric':
    case 'integer': {
      // One copy of the present values (selections reorder it): a column of millions of rows is
      // not copied twice per fold.
      const present = presentNumbers(data, rows);
      const missing = n - present.length;
      const fill = present.length ? quantileOf(present, 0.5) : 0;
      let lo = -Infinity;
      let hi = Infinity;
      if (opts.clipOutliers && present.length) {
        const q1 = quantileOf(present, 0.25);
        const q3 = quantileOf(present, 0.75);
        lo = q1 - 3 * (q3 - q1);
        hi = q3 + 3 * (q3 - q1);
      }
      // Mean and scale of the imputed, clipped column (what the model will see): the present
      // values clipped, and `missing` copies of the fill.
      const clipped = (x: number) => (x < lo ? lo : x > hi ? hi : x);
      const f = clipped(fill);
      let sum = missing * f;
      for (let i = 0; i < present.length; i++) sum += clipped(present[i]!);
      const mean = n > 0 ? sum / n : 0;
      let ss = missing * (f - mean) ** 2;
      for (let i = 0; i < present.length; i++) ss += (clipped(present[i]!) - mean) ** 2;
      // Population std, as scikit-learn's StandardScaler.
      const std = n > 0 ? Math.sqrt(ss / n) : 1;
      const clip: [number, number] | undefined = opts.clipOutliers && present.length ? [lo, hi] : undefined;
      return { kind: 'numeric', column: col.name, fill, center: mean, scale: std > 0 ? std : 1, ...(clip ? { clip } : {}), indicator: missing > 0 };
    }
    case 'boolean': {
      const counts = codeCounts(data, rows);
      const bools = data.dict.bools;
      let trues = 0;
      let known = 0;
      for (let k = 0; k < counts.length; k++) {
        if (counts[k]! === 0 || bools[k]! < 0) continue;
        known += counts[k]!;
        trues += bools[k]! * counts[k]!;
      }
      return { kind: 'boolean', column: col.name, fill: trues * 2 >= known && known > 0 ? 1 : 0, indicator: known < n };
    }
    case 'categorical': {
      const { counts, missing } = categoryCounts(data, rows);
      // Most frequent first; ties by label so that fitting is deterministic.
      const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([v]) => v);
      const categories = ranked.slice(0, opts.maxCategories ?? 100);
      return { kind: 'categorical', column: col.name, categories, fill: categories[0] ?? '', indicator: missing > 0 };
    }
    case 'datetime': {
      // From the count of each distinct date (a column has far fewer than rows): the median by
      // walking the sorted dates, each part's mean and spread weighted by the counts.
      const counts = codeCounts(data, rows);
      const dates = data.dict.dates;
      const seen: number[] = [];
      let present = 0;
      for (let k = 0; k < counts.length; k++) {
        if (counts[k]! > 0 && dates[k] === dates[k]) {
          seen.push(k);
          present += counts[k]!;
        }
      }
      seen.sort((a, b) => dates[a]! - dates[b]!);
      const fill = present > 0 ? weightedQuantile(seen.map((k) => dates[k]!), seen.map((k) => counts[k]!), present, 0.5) : 0;
      // A time of day is kept only when some value has hours or minutes (seconds alone are noise).
      const hasTime = seen.some((k) => (((dates[k]! % DAY_MS) + DAY_MS) % DAY_MS) >= 60_000);
      const parts: DatePart[] = ['year', 'month', 'day', 'weekday', ...(hasTime ? (['hour'] as const) : [])];
      const missing = n - present;
      const center: number[] = [];
      const scale: number[] = [];
      for (const part of parts) {
        const f = datePart(fill, part);
        let sum = missing * f;
        for (const k of seen) sum += counts[k]! * datePart(dates[k]!, part);
        const mean = n > 0 ? sum / n : 0;
        let ss = missing * (f - mean) ** 2;
        for (const k of seen) ss += counts[k]! * (datePart(dates[k]!, part) - mean) ** 2;
        const std = n > 0 ? Math.sqrt(ss / n) : 0;
        center.push(mean);
        scale.push(std > 0 ? std : 1);
      }
      return { kind: 'datetime', column: col.name, parts, fill, center, scale, indicator: present < n };
    }
    default:
      throw Errors.internal(`column "${col.name}" of type ${col.type} cannot be a feature`);
  }
}

/** Reused by `presentNumbers`: one buffer for every column of a fit, not a fresh one each. */
let scratch = new Float64Array(0);

/**
 * The numbers of `rows` of a column (missing and text cells left out), in a shared buffer that
 * is valid until the next call: fresh memory for every column and fold was most of a fit's time.
 */
function presentNumbers(data: Column, rows: ArrayLike<number>): Float64Array {
  if (scratch.length < rows.length) scratch = new Float64Array(rows.length);
  let k = 0;
  for (let i = 0; i < rows.length; i++) {
    const v = data.number(rows[i]!);
    if (v === v) scratch[k++] = v;
  }
  return scratch.subarray(0, k);
}

/** How many of `rows` hold each dictionary entry of the column. */
function codeCounts(data: Column, rows: ArrayLike<number>): Int32Array {
  const counts = new Int32Array(data.dict.size);
  for (let i = 0; i < rows.length; i++) {
    const k = data.code(rows[i]!);
    if (k >= 0) counts[k]!++;
  }
  return counts;
}

/**
 * `quantile` of the multiset in which each of the sorted `values` appears `counts` times (`total`
 * in all), without expanding it: linear interpolation between order statistics, as numpy.
 */
function weightedQuantile(values: number[], counts: number[], total: number, q: number): number {
  const h = (total - 1) * q;
  const lo = Math.floor(h);
  const at = (rank: number): number => {
    let seen = 0;
    for (let i = 0; i < values.length; i++) {
      seen += counts[i]!;
      if (rank < seen) return values[i]!;
    }
    return values[values.length - 1]!;
  };
  const a = at(lo);
  return h === lo ? a : a + (h - lo) * (at(lo + 1) - a);
}

/** Each category's count over `rows` (numbers keyed by `String(value)`), and the missing cells. */
function categoryCounts(data: Column, rows: ArrayLike<number>): { counts: Map<string, number>; missing: number } {
  const perCode = new Int32Array(data.dict.size);
  const numbers = new Map<number, number>();
  let missing = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const k = data.code(r);
    if (k >= 0) {
      perCode[k]!++;
      continue;
    }
    const v = data.number(r);
    if (v === v) numbers.set(v, (numbers.get(v) ?? 0) + 1);
    else missing++;
  }
  const counts = new Map<string, number>();
  for (let k = 0; k < perCode.length; k++) if (perCode[k]! > 0) counts.set(data.dict.text(k), perCode[k]!);
  for (const [v, c] of numbers) counts.set(String(v), c);
  return { counts, missing };
}

function outputNames(step: FeatureStep): string[] {
  const names =
    step.kind === 'categorical'
      ? step.categories.map((c) => `${step.column}=${c}`)
      : step.kind === 'datetime'
        ? step.parts.map((p) => `${step.column}__${p}`)
        : [step.column];
  return step.indicator ? [...names, `${step.column}__missing`] : names;
}

/**
 * Transforms rows of a table (training, scoring or a batch file to predict on). Cells that do not
 * parse as the column's type are treated as missing and counted in one warning per column,
 * matching what schema inference reported. A feature column the table lacks is imputed and
 * named in a warning (callers that must refuse that check `absentFeatures` first).
 */
export function transformTable(p: FittedPipeline, table: Table, rows?: ArrayLike<number>): Transformed {
  const n = rows ? rows.length : table.rowCount;
  const x = matrix(n, p.features.length);
  const idx = rows ? Int32Array.from(rows) : null;
  const encoders = p.steps.map((step) => {
    const j = table.columns.indexOf(step.column);
    return { step, data: j < 0 ? null : table.data[j]!, unparsed: 0, firstUnparsed: -1, byCode: null as Int32Array | null, byDate: null as Float64Array | null, byNumber: null as Map<number, number> | null };
  });
  // A block of rows at a time, every step over it: the block's part of the row-major matrix stays
  // in cache while each column is read in order (column by column over all rows strides the
  // whole matrix once per column).
  for (let from = 0; from < n; from += BLOCK) {
    const to = Math.min(n, from + BLOCK);
    let offset = 0;
    for (const e of encoders) {
      if (e.data === null) fillAbsent(e.step, x, offset, from, to);
      else e.unparsed += encodeRows(e as Encoder, idx, x, offset, from, to);
      offset += width(e.step);
    }
  }
  const warnings: Warning[] = [];
  for (const e of encoders) {
    if (e.unparsed > 0) {
      // The line, not the value: which prediction is affected, without quoting the record.
      const at = table.lines[e.firstUnparsed];
      warnings.push({
        code: 'unparsed_value',
        column: e.step.column,
        message: `${table.source}, column "${e.step.column}": ${e.unparsed} value(s) of the wrong type treated as missing (the first on line ${at})`,
      });
    }
  }
  const absent = encoders.filter((e) => e.data === null).map((e) => e.step.column);
  if (absent.length) {
    warnings.push({ code: 'missing_column', message: `${table.source}: column(s) ${absent.map((c) => `"${c}"`).join(', ')} absent, imputed as in training` });
  }
  return { x, warnings };
}

/** Rows encoded together by `transformTable`. */
const BLOCK = 256;

interface Encoder {
  step: FeatureStep;
  data: Column;
  /** Row of the first present cell that did not parse, or -1. */
  firstUnparsed: number;
  /** Categorical steps: the one-hot position of each dictionary entry, and of each number seen. */
  byCode: Int32Array | null;
  /** Datetime steps: each dictionary entry's standardised parts (see `encodeRows`). */
  byDate: Float64Array | null;
  byNumber: Map<number, number> | null;
}

/** A step's features for a column the table lacks: rows imputed (and flagged). */
function fillAbsent(step: FeatureStep, x: Matrix, offset: number, from: number, to: number): void {
  const cell = new Float64Array(x.cols);
  encodeCell(step, null, cell, offset);
  const part = cell.subarray(offset, offset + width(step));
  for (let i = from; i < to; i++) x.data.set(part, i * x.cols + offset);
}

/**
 * Writes one step's features for output rows `from..to-1` (table rows `idx[i]`, or `i`) into `x`
 * at column `offset`. Returns how many present cells did not parse as the step's type (imputed).
 */
function encodeRows(e: Encoder, idx: Int32Array | null, x: Matrix, offset: number, from: number, to: number): number {
  const { step, data } = e;
  const cols = x.cols;
  const out = x.data;
  const ind = step.indicator ? offset + width(step) - 1 : -1;
  let unparsed = 0;
  switch (step.kind) {
    case 'numeric': {
      const { fill, center, scale } = step;
      const lo = step.clip ? step.clip[0] : -Infinity;
      const hi = step.clip ? step.clip[1] : Infinity;
      for (let i = from; i < to; i++) {
        const r = idx ? idx[i]! : i;
        let a = data.number(r);
        const at = i * cols;
        if (a !== a) {
          if (data.code(r) >= 0) {
            unparsed++;
            if (e.firstUnparsed < 0) e.firstUnparsed = r;
          }
          a = fill;
          if (ind >= 0) out[at + ind] = 1;
        }
        out[at + offset] = ((a < lo ? lo : a > hi ? hi : a) - center) / scale;
      }
      return unparsed;
    }
    case 'boolean': {
      const bools = data.dict.bools;
      for (let i = from; i < to; i++) {
        const r = idx ? idx[i]! : i;
        const at = i * cols;
        const k = data.code(r);
        const b = k >= 0 ? bools[k]! : -1;
        if (b < 0) {
          if (data.present(r)) {
            unparsed++;
            if (e.firstUnparsed < 0) e.firstUnparsed = r;
          }
          out[at + offset] = step.fill;
          if (ind >= 0) out[at + ind] = 1;
        } else out[at + offset] = b;
      }
      return unparsed;
    }
    case 'categorical': {
      if (e.byCode === null) {
        e.byCode = new Int32Array(data.dict.size);
        for (let k = 0; k < e.byCode.length; k++) e.byCode[k] = categoryIndex(step, data.dict.text(k));
        e.byNumber = new Map();
      }
      const fillAt = categoryIndex(step, step.fill);
      for (let i = from; i < to; i++) {
        const r = idx ? idx[i]! : i;
        const at = i * cols;
        const k = data.code(r);
        let c: number;
        if (k >= 0) c = e.byCode[k]!;
        else {
          const v = data.number(r);
          if (v === v) {
            let got = e.byNumber!.get(v);
            if (got === undefined) {
              got = categoryIndex(step, String(v));
              e.byNumber!.set(v, got);
            }
            c = got;
          } else {
            c = fillAt;
            if (ind >= 0) out[at + ind] = 1;
          }
        }
        // The matrix starts at zero: only the hot position is written (none for an unseen category).
        if (c >= 0) out[at + offset + c] = 1;
      }
      return 0;
    }
    case 'datetime': {
      // The standardised parts of each distinct date, worked out once (a column has far fewer
      // distinct dates than rows); the last slot holds the fill's.
      const np = step.parts.length;
      if (e.byDate === null) {
        const dates = data.dict.dates;
        e.byDate = new Float64Array((dates.length + 1) * np).fill(NaN);
        const put = (slot: number, t: number) => {
          for (let q = 0; q < np; q++) e.byDate![slot * np + q] = (datePart(t, step.parts[q]!) - step.center[q]!) / step.scale[q]!;
        };
        for (let k = 0; k < data.dict.size; k++) if (dates[k] === dates[k]) put(k, dates[k]!);
        put(dates.length, step.fill);
      }
      const byDate = e.byDate;
      const fillSlot = byDate.length / np - 1;
      for (let i = from; i < to; i++) {
        const r = idx ? idx[i]! : i;
        const at = i * cols;
        const k = data.code(r);
        let slot = k >= 0 && byDate[k * np] === byDate[k * np] ? k : -1;
        if (slot < 0) {
          if (data.present(r)) {
            unparsed++;
            if (e.firstUnparsed < 0) e.firstUnparsed = r;
          }
          slot = fillSlot;
          if (ind >= 0) out[at + ind] = 1;
        }
        for (let q = 0; q < np; q++) out[at + offset + q] = byDate[slot * np + q]!;
      }
      return unparsed;
    }
  }
}

/** The pipeline's feature columns that `table` does not have. */
export function absentFeatures(p: FittedPipeline, table: Table): string[] {
  return p.steps.filter((s) => !table.columns.includes(s.column)).map((s) => s.column);
}

/**
 * The pipeline's feature columns that `table` has, with values, none of which reads as the
 * step's type (a numeric column written with decimal commas, dates in another format): every row
 * would be imputed, as if the column were absent.
 */
export function unreadableFeatures(p: FittedPipeline, table: Table): string[] {
  return p.steps
    .filter((s) => {
      const j = table.columns.indexOf(s.column);
      if (j < 0) return false;
      const ev = table.data[j]!.stats;
      const readable = s.kind === 'numeric' ? ev.numCount : s.kind === 'boolean' ? ev.boolCount : s.kind === 'datetime' ? ev.dateCount : ev.nonMissing;
      return ev.nonMissing > 0 && readable === 0;
    })
    .map((s) => s.column);
}

/** Category lookup per categorical step, built once: keys are `categoryKey`s, so a category saved as `1.0` matches 1. */
const CATEGORY_INDEX = new WeakMap<FeatureStep, Map<string, number>>();

/** The one-hot position of a category key in a categorical step, or -1 (unseen: all zeros). */
function categoryIndex(step: Extract<FeatureStep, { kind: 'categorical' }>, key: string): number {
  let m = CATEGORY_INDEX.get(step);
  if (!m) {
    m = new Map();
    for (const [i, c] of step.categories.entries()) {
      const k = categoryKey(c) ?? c;
      if (!m.has(k)) m.set(k, i);
    }
    CATEGORY_INDEX.set(step, m);
  }
  return m.get(key) ?? -1;
}

/**
 * Transforms raw records sent for prediction. A feature that is absent or null is imputed as in
 * training and reported; a value of the wrong type is an error naming the record and field
 * (never echoing the value), as is a record with none of the model's features.
 */
export function transformRecords(p: FittedPipeline, records: RawRecord[]): Transformed {
  const x = matrix(records.length, p.features.length);
  const warnings: Warning[] = [];
  const problems = new Problems();
  const known = new Set(p.steps.map((s) => s.column));
  /** Fields that are not features, and in how many records (a misspelt one imputes its feature). */
  const unknown = new Map<string, number>();
  let imputedRecords = 0;
  records.forEach((rec, i) => {
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) {
      problems.add(`/records/${i}`, 'expected an object of feature values');
      return;
    }
    for (const key of Object.keys(rec)) if (!known.has(key) && (unknown.size < 1000 || unknown.has(key))) unknown.set(key, (unknown.get(key) ?? 0) + 1);
    let offset = i * x.cols;
    const missing: string[] = [];
    let bad = false;
    for (const step of p.steps) {
      const raw = Object.hasOwn(rec, step.column) ? rec[step.column] : undefined;
      // A missing token ("NA", "", "?"...) means what it means in a file: no value.
      const cell = raw === undefined || raw === null || (typeof raw === 'string' && isMissing(raw)) ? null : raw;
      if (cell === null) missing.push(step.column);
      // One problem per record is enough to fix it, and bounds the answer to a hostile body.
      else if (!bad && (!isCellType(cell) || encodeCell(step, cell, x.data, offset) === 'unparsed')) {
        problems.add(`/records/${i}/${pointerToken(step.column)}`, `expected ${expected(step)}`);
        bad = true;
      }
      if (cell === null) encodeCell(step, null, x.data, offset);
      offset += width(step);
    }
    if (p.steps.length > 0 && missing.length === p.steps.length) {
      problems.add(`/records/${i}`, `has none of the model's features (${listNames(p.steps.map((s) => s.column))})`);
    } else if (missing.length) {
      if (imputedRecords++ < 20) warnings.push({ code: 'imputed', message: `record ${i}: ${listNames(missing)} missing, imputed as in training` });
    }
  });
  problems.throwIfAny();
  if (imputedRecords > 20) warnings.push({ code: 'imputed', message: `and ${imputedRecords - 20} more record(s) with missing features, imputed as in training` });
  for (const [key, count] of [...unknown].slice(0, 20)) {
    const near = closeMatches(key, [...known]);
    const hint = near.length > 0 ? `; did you mean ${near.map((c) => `"${c}"`).join(', ')}?` : '';
    warnings.push({ code: 'unknown_field', message: `field "${shortName(key)}" (in ${count} record(s)) is not one of the model's features; ignored${hint}` });
  }
  return { x, warnings };
}

/** Located problems, collected up to `MAX_PROBLEMS` and counted past it. */
export class Problems {
  readonly list: { pointer: string; message: string }[] = [];
  more = 0;

  add(pointer: string, message: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push({ pointer, message });
    else this.more++;
  }

  throwIfAny(): void {
    if (this.list.length) throw Errors.badFields(this.list, this.more);
  }
}

/** Names for a message: the first ten, then how many more (a model may have thousands of features). */
export function listNames(names: string[]): string {
  const shown = names.slice(0, 10).map(shortName).join(', ');
  return names.length > 10 ? `${shown} and ${names.length - 10} more` : shown;
}

/** A user's name, cut for a message (a header name may be a megabyte long). */
export function shortName(name: string): string {
  return name.length > 100 ? `${name.slice(0, 97)}...` : name;
}

/** A name as one JSON Pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`). */
function pointerToken(name: string): string {
  return name.replaceAll('~', '~0').replaceAll('/', '~1');
}

function isCellType(v: unknown): v is Cell {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

function expected(step: FeatureStep): string {
  switch (step.kind) {
    case 'numeric':
      return 'a finite number';
    case 'boolean':
      return 'true or false';
    case 'categorical':
      return 'a string or number';
    case 'datetime':
      return 'an ISO 8601 date';
  }
}

function width(step: FeatureStep): number {
  const base = step.kind === 'categorical' ? step.categories.length : step.kind === 'datetime' ? step.parts.length : 1;
  return base + (step.indicator ? 1 : 0);
}

/**
 * Writes one cell's features at `out[offset...]`. Returns 'unparsed' when a present cell did not
 * parse (it is then imputed), 'missing' when absent, 'ok' otherwise.
 */
function encodeCell(step: FeatureStep, cell: Cell, out: Float64Array, offset: number): 'ok' | 'missing' | 'unparsed' {
  let status: 'ok' | 'missing' | 'unparsed' = cell === null ? 'missing' : 'ok';
  switch (step.kind) {
    case 'numeric': {
      let v = parseNumber(cell);
      if (v === null) {
        if (status === 'ok') status = 'unparsed';
        v = step.fill;
      }
      if (step.clip) v = Math.min(step.clip[1], Math.max(step.clip[0], v));
      out[offset] = (v - step.center) / step.scale;
      break;
    }
    case 'boolean': {
      const v = parseBoolean(cell);
      if (v === null && status === 'ok') status = 'unparsed';
      out[offset] = v === null ? step.fill : v ? 1 : 0;
      break;
    }
    case 'categorical': {
      // An unseen category leaves every one-hot column at zero: the model sees "none of these".
      const at = categoryIndex(step, categoryKey(cell) ?? step.fill);
      for (let c = 0; c < step.categories.length; c++) out[offset + c] = c === at ? 1 : 0;
      break;
    }
    case 'datetime': {
      let v = parseDate(cell);
      if (v === null) {
        if (status === 'ok') status = 'unparsed';
        v = step.fill;
      }
      step.parts.forEach((part, q) => (out[offset + q] = (datePart(v!, part) - step.center[q]!) / step.scale[q]!));
      break;
    }
  }
  if (step.indicator) out[offset + width(step) - 1] = status === 'ok' ? 0 : 1;
  return status;
}

/**
 * A part of a UTC date-time, as `Date`'s getUTC* give it, by arithmetic on the day number (the
 * civil-from-days algorithm of H. Hinnant): no Date object per cell, which made transforming
 * a million dated rows take most of a minute.
 */
export function datePart(ms: number, part: DatePart): number {
  const days = Math.floor(ms / DAY_MS);
  switch (part) {
    case 'weekday':
      return (((days + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
    case 'hour': {
      const inDay = ms - days * DAY_MS;
      return Math.floor(inDay / 3_600_000) + Math.floor((inDay % 3_600_000) / 60_000) / 60;
    }
    default: {
      const z = days + 719_468;
      const era = Math.floor(z / 146_097);
      const doe = z - era * 146_097;
      const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
      const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
      const mp = Math.floor((5 * doy + 2) / 153);
      const month = mp < 10 ? mp + 3 : mp - 9;
      if (part === 'month') return month;
      if (part === 'day') return doy - Math.floor((153 * mp + 2) / 5) + 1;
      return yoe + era * 400 + (month <= 2 ? 1 : 0);
    }
  }
}

/** Words that mark the positive class of a binary target, checked case-insensitively. */
const POSITIVE = ['1', 'true', 'yes', 'y', 't', 'pos', 'positive', 'malignant', 'case', 'disease', 'abnormal', 'present', 'died', 'death', 'event'];

/**
 * Encodes the target column for the rows that have it. Classification labels are sorted, except
 * that for a binary target a label that reads as "positive" (yes, 1, pos, malignant...) is put
 * second, so that recall, precision and AUROC are about the condition, not its absence.
 * Returns the kept row indices (rows with a missing target are dropped, with a warning).
 */
export function encodeTarget(
  table: Table,
  column: string,
  type: ColumnSchema['type'],
  task: Task | 'auto',
): { encoding: TargetEncoding; y: Float64Array; rows: Int32Array; warnings: Warning[] } {
  const data = table.data[columnIndex(table, column)]!;
  const n = table.rowCount;
  const keptAll = new Int32Array(n);
  let nk = 0;
  let allNumeric = true;
  let firstText = -1;
  // Distinct labels, counted up to one past the most classes allowed.
  const codes = new Set<number>();
  const numbers = new Set<number>();
  for (let r = 0; r < n; r++) {
    const k = data.code(r);
    if (k >= 0) {
      keptAll[nk++] = r;
      if (allNumeric) firstText = r;
      allNumeric = false;
      if (codes.size + numbers.size <= MAX_CLASSES) codes.add(k);
      continue;
    }
    const v = data.number(r);
    if (v !== v) continue;
    keptAll[nk++] = r;
    if (codes.size + numbers.size <= MAX_CLASSES) numbers.add(v);
  }
  const kept = keptAll.slice(0, nk);
  const warnings: Warning[] = [];
  const dropped = n - nk;
  if (dropped > 0) warnings.push({ code: 'missing_target', column, message: `${dropped} row(s) without a value of target "${column}" left out` });
  const where = `${table.source}, target column "${column}"`;
  if (nk === 0) throw Errors.badData(where, 'every value is missing');
  const labels = codes.size + numbers.size; // exact up to MAX_CLASSES + 1
  if (labels < 2) throw Errors.badData(where, 'has a single value; there is nothing to learn');
  let integers = true;
  for (const v of numbers) if (!Number.isInteger(v)) integers = false;
  let resolved: Task;
  if (task !== 'auto') resolved = task;
  else if (labels === 2) resolved = 'binary';
  else if (!allNumeric || type === 'categorical' || type === 'boolean') resolved = 'multiclass';
  else resolved = labels <= 10 && integers && nk >= 20 * labels ? 'multiclass' : 'regression';

  if (resolved === 'regression') {
    if (!allNumeric) {
      throw Errors.badData(`${table.source}:${table.lines[firstText]}, target column "${column}"`, 'regression needs a numeric target; this value is not a number');
    }
    const y = new Float64Array(nk);
    for (let i = 0; i < nk; i++) y[i] = data.number(kept[i]!);
    return { encoding: { column, task: resolved }, y, rows: kept, warnings };
  }
  if (resolved === 'binary' && labels !== 2) {
    throw Errors.badData(where, `binary classification needs exactly 2 classes, found ${labels > MAX_CLASSES ? `more than ${MAX_CLASSES}` : labels}`);
  }
  if (labels > MAX_CLASSES) throw Errors.badData(where, `has more than ${MAX_CLASSES} distinct values: too many classes (use --task regression for a numeric target)`);
  const names = [...[...codes].map((k) => data.dict.text(k)), ...[...numbers].map((v) => String(v))];
  let classes = names.sort((a, b) => (allNumeric ? Number(a) - Number(b) : a < b ? -1 : a > b ? 1 : 0));
  if (resolved === 'binary') {
    const posIdx = classes.findIndex((c) => POSITIVE.includes(c.toLowerCase()));
    if (posIdx === 0) classes = [classes[1]!, classes[0]!];
  }
  const index = new Map(classes.map((c, i) => [c, i]));
  const byCode = new Int32Array(data.dict.size).fill(-1);
  for (const k of codes) byCode[k] = index.get(data.dict.text(k))!;
  const byNumber = new Map([...numbers].map((v) => [v, index.get(String(v))!]));
  const y = new Float64Array(nk);
  for (let i = 0; i < nk; i++) {
    const r = kept[i]!;
    const k = data.code(r);
    y[i] = k >= 0 ? byCode[k]! : byNumber.get(data.number(r))!;
  }
  return { encoding: { column, task: resolved, classes }, y, rows: kept, warnings };
}

/** Most classes a classification target may have. */
const MAX_CLASSES = 100;

/** Index of a column, or a usage error listing the columns there are. */
export function columnIndex(table: Table, name: string): number {
  const j = table.columns.indexOf(name);
  if (j < 0) {
    const list = table.columns.length > 12 ? `${table.columns.slice(0, 12).join(', ')}, ...` : table.columns.join(', ');
    throw Errors.badData(table.source, `no column "${name}" (columns: ${list})`);
  }
  return j;
}

const DAY_MS = 86_400_000;

/**
 * Linear-interpolated quantile (numpy's default) without sorting: two selections, linear on
 * average, which matters when a fold of a million rows is fitted for every column. Reorders
 * `values`.
 */
export function quantileOf(values: Float64Array, q: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const a = select(values, lo);
  if (h === lo) return a;
  // After the selection everything right of `lo` is ≥ values[lo]: the next order statistic is their minimum.
  let b = Infinity;
  for (let i = lo + 1; i < n; i++) if (values[i]! < b) b = values[i]!;
  return a + (h - lo) * (b - a);
}

/** The k-th smallest value (quickselect, median-of-three; sorting the range if it degenerates). */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  let budget = 2 * Math.ceil(Math.log2(a.length + 1)) + 8;
  while (hi > lo) {
    if (budget-- === 0) {
      a.subarray(lo, hi + 1).sort();
      return a[k]!;
    }
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/** Checks that `p` is a pipeline this version can run, naming the first problem. */
export function validatePipeline(p: unknown): asserts p is FittedPipeline {
  const bad = (m: string): never => {
    throw Errors.manifest('pipeline', m);
  };
  if (!p || typeof p !== 'object') bad('missing');
  const q = p as Partial<FittedPipeline>;
  if (q.version !== PIPELINE_VERSION) bad(`format version ${String(q.version)} is not ${PIPELINE_VERSION}`);
  if (!Array.isArray(q.steps) || !Array.isArray(q.features)) bad('steps or features missing');
  let total = 0;
  for (const [i, s] of q.steps!.entries()) {
    if (!s || typeof s.column !== 'string') bad(`step ${i} has no column`);
    const ok =
      (s.kind === 'numeric' && [s.fill, s.center, s.scale].every(Number.isFinite) && s.scale !== 0) ||
      (s.kind === 'boolean' && (s.fill === 0 || s.fill === 1)) ||
      (s.kind === 'categorical' && Array.isArray(s.categories)) ||
      (s.kind === 'datetime' && Array.isArray(s.parts) && s.center?.length === s.parts.length && s.scale?.length === s.parts.length);
    if (!ok) bad(`step ${i} (column "${s.column}") is malformed`);
    total += width(s);
  }
  if (total !== q.features!.length) bad(`steps make ${total} features but ${q.features!.length} are named`);
}
