import {
  Errors,
  matrix,
  type Cell,
  type ColumnSchema,
  type Matrix,
  type RawRecord,
  type Schema,
  type Task,
  type Warning,
} from '../core/index.js';
import { parseBoolean, parseDate, parseNumber } from './cells.js';
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
    const j = columnIndex(table, col.name);
    const cells = Array.from({ length: rows.length }, (_, k) => table.rows[rows[k]!]![j]!);
    steps.push(fitStep(col, cells, opts));
  }
  return { version: PIPELINE_VERSION, steps, features: steps.flatMap(outputNames) };
}

function fitStep(col: ColumnSchema, cells: Cell[], opts: PipelineOptions): FeatureStep {
  switch (col.type) {
    case 'numeric':
    case 'integer': {
      const values = cells.map(parseNumber).filter((v): v is number => v !== null);
      const missing = values.length < cells.length;
      const sorted = Float64Array.from(values).sort();
      const fill = sorted.length ? quantile(sorted, 0.5) : 0;
      let clip: [number, number] | undefined;
      if (opts.clipOutliers && sorted.length) {
        const q1 = quantile(sorted, 0.25);
        const q3 = quantile(sorted, 0.75);
        clip = [q1 - 3 * (q3 - q1), q3 + 3 * (q3 - q1)];
      }
      // Mean and scale are computed over the imputed, clipped column: what the model will see.
      const seen = cells.map((c) => {
        const v = parseNumber(c) ?? fill;
        return clip ? Math.min(clip[1], Math.max(clip[0], v)) : v;
      });
      const { mean, std } = meanStd(seen);
      return { kind: 'numeric', column: col.name, fill, center: mean, scale: std > 0 ? std : 1, ...(clip ? { clip } : {}), indicator: missing };
    }
    case 'boolean': {
      const values = cells.map(parseBoolean).filter((v): v is boolean => v !== null);
      const trues = values.filter(Boolean).length;
      return { kind: 'boolean', column: col.name, fill: trues * 2 >= values.length && values.length > 0 ? 1 : 0, indicator: values.length < cells.length };
    }
    case 'categorical': {
      const counts = new Map<string, number>();
      let missing = 0;
      for (const c of cells) {
        if (c === null) missing++;
        else counts.set(String(c), (counts.get(String(c)) ?? 0) + 1);
      }
      // Most frequent first; ties by label so that fitting is deterministic.
      const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([v]) => v);
      const categories = ranked.slice(0, opts.maxCategories ?? 100);
      return { kind: 'categorical', column: col.name, categories, fill: categories[0] ?? '', indicator: missing > 0 };
    }
    case 'datetime': {
      const ms = cells.map(parseDate);
      const present = ms.filter((v): v is number => v !== null);
      const sorted = Float64Array.from(present).sort();
      const fill = sorted.length ? quantile(sorted, 0.5) : 0;
      const hasTime = present.some((v) => new Date(v).getUTCHours() !== 0 || new Date(v).getUTCMinutes() !== 0);
      const parts: DatePart[] = ['year', 'month', 'day', 'weekday', ...(hasTime ? (['hour'] as const) : [])];
      const center: number[] = [];
      const scale: number[] = [];
      for (const part of parts) {
        const { mean, std } = meanStd(ms.map((v) => datePart(v ?? fill, part)));
        center.push(mean);
        scale.push(std > 0 ? std : 1);
      }
      return { kind: 'datetime', column: col.name, parts, fill, center, scale, indicator: present.length < cells.length };
    }
    default:
      throw Errors.internal(`column "${col.name}" of type ${col.type} cannot be a feature`);
  }
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
 * matching what schema inference reported.
 */
export function transformTable(p: FittedPipeline, table: Table, rows?: ArrayLike<number>): Transformed {
  const n = rows ? rows.length : table.rows.length;
  const x = matrix(n, p.features.length);
  const unparsed = new Map<string, number>();
  const absent: string[] = [];
  const colIdx = p.steps.map((s) => {
    const j = table.columns.indexOf(s.column);
    if (j < 0) absent.push(s.column);
    return j;
  });
  for (let k = 0; k < n; k++) {
    const row = table.rows[rows ? rows[k]! : k]!;
    let offset = k * x.cols;
    p.steps.forEach((step, s) => {
      const cell = colIdx[s]! >= 0 ? row[colIdx[s]!]! : null;
      const r = encodeCell(step, cell, x.data, offset);
      if (r === 'unparsed') unparsed.set(step.column, (unparsed.get(step.column) ?? 0) + 1);
      offset += width(step);
    });
  }
  const warnings: Warning[] = [];
  for (const [column, count] of unparsed) {
    warnings.push({ code: 'unparsed_value', column, message: `${table.source}, column "${column}": ${count} value(s) of the wrong type treated as missing` });
  }
  if (absent.length) {
    warnings.push({ code: 'missing_column', message: `${table.source}: column(s) ${absent.map((c) => `"${c}"`).join(', ')} absent, imputed as in training` });
  }
  return { x, warnings };
}

/**
 * Transforms raw records sent for prediction. A feature that is absent or null is imputed as in
 * training and reported; a value of the wrong type is an error naming the record and field
 * (never echoing the value), as is a record with none of the model's features.
 */
export function transformRecords(p: FittedPipeline, records: RawRecord[]): Transformed {
  const x = matrix(records.length, p.features.length);
  const warnings: Warning[] = [];
  const problems: { pointer: string; message: string }[] = [];
  records.forEach((rec, i) => {
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) {
      problems.push({ pointer: `/records/${i}`, message: 'expected an object of feature values' });
      return;
    }
    let offset = i * x.cols;
    const missing: string[] = [];
    for (const step of p.steps) {
      const raw = Object.hasOwn(rec, step.column) ? rec[step.column] : undefined;
      const cell = raw === undefined || raw === null ? null : raw;
      if (cell === null) missing.push(step.column);
      else if (!isCellType(cell)) {
        problems.push({ pointer: `/records/${i}/${step.column}`, message: `expected ${expected(step)}` });
      } else if (encodeCell(step, cell, x.data, offset) === 'unparsed') {
        problems.push({ pointer: `/records/${i}/${step.column}`, message: `expected ${expected(step)}` });
      }
      if (cell === null) encodeCell(step, null, x.data, offset);
      offset += width(step);
    }
    if (p.steps.length > 0 && missing.length === p.steps.length) {
      problems.push({ pointer: `/records/${i}`, message: `has none of the model's features (${p.steps.map((s) => s.column).join(', ')})` });
    } else if (missing.length) {
      warnings.push({ code: 'imputed', message: `record ${i}: ${missing.join(', ')} missing, imputed as in training` });
    }
  });
  if (problems.length) throw Errors.badFields(problems);
  return { x, warnings };
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
      const v = cell === null ? step.fill : String(cell);
      const at = step.categories.indexOf(v);
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

function datePart(ms: number, part: DatePart): number {
  const d = new Date(ms);
  switch (part) {
    case 'year':
      return d.getUTCFullYear();
    case 'month':
      return d.getUTCMonth() + 1;
    case 'day':
      return d.getUTCDate();
    case 'weekday':
      return d.getUTCDay();
    case 'hour':
      return d.getUTCHours() + d.getUTCMinutes() / 60;
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
  const j = columnIndex(table, column);
  const kept: number[] = [];
  const values: Cell[] = [];
  table.rows.forEach((r, i) => {
    if (r[j] !== null && r[j] !== undefined) {
      kept.push(i);
      values.push(r[j]!);
    }
  });
  const warnings: Warning[] = [];
  const dropped = table.rows.length - kept.length;
  if (dropped > 0) warnings.push({ code: 'missing_target', column, message: `${dropped} row(s) without a value of target "${column}" left out` });
  const where = `${table.source}, target column "${column}"`;
  if (kept.length === 0) throw Errors.badData(where, 'every value is missing');
  const labels = new Set(values.map((v) => String(v)));
  if (labels.size < 2) throw Errors.badData(where, 'has a single value; there is nothing to learn');
  const numeric = values.map(parseNumber);
  const allNumeric = numeric.every((v) => v !== null);
  let resolved: Task;
  if (task !== 'auto') resolved = task;
  else if (labels.size === 2) resolved = 'binary';
  else if (!allNumeric || type === 'categorical' || type === 'boolean') resolved = 'multiclass';
  else resolved = labels.size <= 10 && numeric.every((v) => Number.isInteger(v)) && kept.length >= 20 * labels.size ? 'multiclass' : 'regression';

  if (resolved === 'regression') {
    if (!allNumeric) {
      const line = table.lines[kept[numeric.findIndex((v) => v === null)]!];
      throw Errors.badData(`${table.source}:${line}, target column "${column}"`, 'regression needs a numeric target; this value is not a number');
    }
    return { encoding: { column, task: resolved, }, y: Float64Array.from(numeric as number[]), rows: Int32Array.from(kept), warnings };
  }
  if (resolved === 'binary' && labels.size !== 2) {
    throw Errors.badData(where, `binary classification needs exactly 2 classes, found ${labels.size}`);
  }
  if (labels.size > 100) throw Errors.badData(where, `has ${labels.size} distinct values: too many classes (use --task regression for a numeric target)`);
  let classes = [...labels].sort((a, b) => (allNumeric ? Number(a) - Number(b) : a < b ? -1 : a > b ? 1 : 0));
  if (resolved === 'binary') {
    const posIdx = classes.findIndex((c) => POSITIVE.includes(c.toLowerCase()));
    if (posIdx === 0) classes = [classes[1]!, classes[0]!];
  }
  const index = new Map(classes.map((c, i) => [c, i]));
  const y = Float64Array.from(values, (v) => index.get(String(v))!);
  return { encoding: { column, task: resolved, classes }, y, rows: Int32Array.from(kept), warnings };
}

/** Index of a column, or a usage error listing the columns there are. */
export function columnIndex(table: Table, name: string): number {
  const j = table.columns.indexOf(name);
  if (j < 0) {
    const list = table.columns.length > 12 ? `${table.columns.slice(0, 12).join(', ')}, ...` : table.columns.join(', ');
    throw Errors.badData(table.source, `no column "${name}" (columns: ${list})`);
  }
  return j;
}

/** Row indices of `rows` whose full content appeared earlier, and the first-seen rest. */
export function dropDuplicateRows(table: Table, rows: ArrayLike<number>): { kept: Int32Array; duplicates: number } {
  const seen = new Set<string>();
  const kept: number[] = [];
  for (let k = 0; k < rows.length; k++) {
    const key = JSON.stringify(table.rows[rows[k]!]);
    if (!seen.has(key)) {
      seen.add(key);
      kept.push(rows[k]!);
    }
  }
  return { kept: Int32Array.from(kept), duplicates: rows.length - kept.length };
}

/** Linear-interpolated quantile of sorted values (numpy's default). */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function meanStd(values: number[]): { mean: number; std: number } {
  if (values.length === 0) return { mean: 0, std: 1 };
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  // Population std, as scikit-learn's StandardScaler.
  return { mean, std: Math.sqrt(ss / values.length) };
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
