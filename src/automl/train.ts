import {
  Errors,
  higherIsBetter,
  take,
  takeRows,
  type Matrix,
  CLASSIFICATION_METRICS,
  REGRESSION_METRICS,
  type ColumnType,
  type MetricName,
  type ProgressFn,
  type Schema,
  type Task,
  type Warning,
} from '../core/index.js';
import {
  columnIndex,
  dropDuplicateRows,
  encodeTarget,
  fitPipeline,
  inferSchema,
  stratifiedKFold,
  strataFor,
  transformTable,
  type FittedPipeline,
  type Table,
  type TargetEncoding,
} from '../data/index.js';
import { classificationReport, regressionReport, type ClassificationReport, type RegressionReport } from '../eval/index.js';
import { FAMILIES, getFamily, type Family, type ModelFamily, type Params, type TrainedModel } from '../models/index.js';

/** What to train, as the CLI and the API take it. */
export interface TrainOptions {
  target: string;
  task?: Task | 'auto';
  /** A family, or `auto` to choose by cross-validated score. */
  model?: Family | 'auto';
  /** Column whose rows must stay together on one side of every split (a patient id). */
  group?: string;
  /** Columns left out of the features. */
  ignore?: string[];
  /** Column type overrides. */
  types?: Record<string, ColumnType>;
  /** Folds of cross-validation (at least 2). */
  cv?: number;
  seed?: number;
  /** Raw hyperparameters by family (`{gbdt: {trees: '300'}}`), validated by each family. */
  params?: Partial<Record<Family, Record<string, unknown>>>;
  clipOutliers?: boolean;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}

/** Cross-validated score of one metric. */
export interface MetricSummary {
  mean: number;
  std: number;
}

/** One family's cross-validation, a row of the leaderboard. */
export interface CandidateResult {
  family: Family;
  params: Params;
  metrics: Record<string, MetricSummary>;
  /** Seconds spent on this family's folds. */
  seconds: number;
}

/** Everything a training run produced: the model to save and the evidence for it. */
export interface TrainResult {
  task: Task;
  target: TargetEncoding;
  schema: Schema;
  pipeline: FittedPipeline;
  model: TrainedModel;
  /** The metric families were ranked by. */
  selection: MetricName;
  leaderboard: CandidateResult[];
  cv: { folds: number; metrics: Record<string, MetricSummary> };
  /** Report on the chosen family's pooled out-of-fold predictions (curves, confusion, CI). */
  report: ClassificationReport | RegressionReport;
  rows: { total: number; used: number; duplicates: number };
  warnings: Warning[];
}

/**
 * Hyperparameters that `trainTable` tunes by an inner cross-validation on each training fold when
 * the user did not set them. Only cheap families are tuned: a linear model fits in milliseconds,
 * and its regularisation strength is what matters most on small clinical tables.
 */
export const TUNING_GRIDS: Partial<Record<Family, Record<string, number[]>>> = {
  logistic: { C: [0.01, 0.03, 0.1, 0.3, 1, 3, 10] },
  linear: { alpha: [0.1, 0.3, 1, 3, 10, 30, 100] },
};

/** Folds of the inner cross-validation that tunes hyperparameters. */
const INNER_FOLDS = 3;

/**
 * Below this many rows `auto` leaves the MLP out: on small clinical tables it loses to linear
 * models and boosted trees (see the reference scores in the README) and costs most of the time.
 */
export const MLP_MIN_ROWS = 2000;

/**
 * Trains on a table: infers the schema, cleans, cross-validates each candidate family with the
 * pipeline refitted inside every fold (so no statistic of a scored row leaks into its features),
 * chooses the best by the selection metric, and refits it on all rows.
 */
export async function trainTable(table: Table, opts: TrainOptions): Promise<TrainResult> {
  const seed = opts.seed ?? 0;
  const k = opts.cv ?? 5;
  const progress = opts.onProgress ?? (() => {});
  columnIndex(table, opts.target);
  if (opts.group !== undefined) columnIndex(table, opts.group);
  const drop = [...(opts.ignore ?? []), ...(opts.group !== undefined ? [opts.group] : [])];
  const { schema, warnings } = inferSchema(table, { target: opts.target, overrides: opts.types ?? {}, drop });
  // An empty column is most often a join or export gone wrong: say so rather than train without
  // it silently. Leaving it out is one flag away.
  const empty = warnings.find((w) => w.code === 'all_missing' && w.column !== undefined && w.column !== opts.target && !drop.includes(w.column));
  if (empty) throw Errors.badData(`${table.source}, column "${empty.column}"`, `every value is missing; leave it out with --ignore ${empty.column}`);
  const targetCol = schema.columns.find((c) => c.name === opts.target)!;
  const features = schema.columns.filter((c) => c.role === 'feature');
  if (features.length === 0) {
    const left = schema.columns.filter((c) => c.role === 'ignored').map((c) => `"${c.name}" (${c.reason ?? c.type})`);
    throw Errors.badData(table.source, `no usable feature columns: ${left.length ? `left out ${left.join(', ')}` : 'the table has only the target'}; override with --type column=numeric`);
  }

  const enc = encodeTarget(table, opts.target, targetCol.type, opts.task ?? 'auto');
  warnings.push(...enc.warnings);
  const dedup = dropDuplicateRows(table, enc.rows);
  if (dedup.duplicates > 0) warnings.push({ code: 'duplicate_rows', message: `${dedup.duplicates} duplicate row(s) dropped` });
  // Rows of the cleaned table, and the target aligned with them.
  const rows = dedup.kept;
  const posInEnc = new Map(Array.from(enc.rows, (r, i) => [r, i]));
  const y = Float64Array.from(rows, (r) => enc.y[posInEnc.get(r)!]!);
  const task = enc.encoding.task;
  const nClasses = task === 'regression' ? 1 : enc.encoding.classes!.length;
  if (task !== 'regression') {
    const counts = new Float64Array(nClasses);
    y.forEach((c) => counts[c]!++);
    const smallest = Math.min(...counts);
    if (smallest < k) {
      const label = enc.encoding.classes![counts.indexOf(smallest)]!;
      throw Errors.badData(`${table.source}, target column "${opts.target}"`, `class "${label}" has ${smallest} row(s), fewer than the ${k} folds of --cv`);
    }
  }
  const groups = opts.group !== undefined ? groupKeys(table, opts.group, rows) : undefined;
  const folds = stratifiedKFold(strataFor(y, task !== 'regression'), k, seed, groups);

  const candidates = chooseCandidates(opts.model ?? 'auto', task, rows.length);
  const params = new Map(candidates.map((f) => [f.name, f.parseParams(opts.params?.[f.name] ?? {}, task, rows.length)]));
  // Tune only what the user left unset: an explicit --param is a decision, not a starting point.
  const tuned = new Map(
    candidates.map((f) => [f.name, Object.entries(TUNING_GRIDS[f.name] ?? {}).filter(([key]) => !Object.hasOwn(opts.params?.[f.name] ?? {}, key))]),
  );
  for (const name of Object.keys(opts.params ?? {})) getFamily(name);
  const selection: MetricName = task === 'regression' ? 'r2' : 'auroc';
  const units = candidates.length * (folds.length + 1);
  let done = 0;
  const leaderboard: Array<CandidateResult & { oof: Float64Array }> = [];
  for (const fam of candidates) {
    const started = performance.now();
    const famParams = params.get(fam.name)!;
    const perFold: Record<string, number>[] = [];
    const width = task === 'regression' ? 1 : nClasses;
    const oof = new Float64Array(rows.length * width);
    for (const [f, fold] of folds.entries()) {
      const trainRows = take64(rows, fold.train);
      const testRows = take64(rows, fold.test);
      const pipeline = fitPipeline(table, schema, trainRows, { clipOutliers: opts.clipOutliers ?? false });
      const xTrain = transformTable(pipeline, table, trainRows).x;
      const yTrain = take(y, fold.train);
      const foldParams = await tune(fam, famParams, tuned.get(fam.name)!, xTrain, yTrain, task, nClasses, seed + f, groups && Array.from(fold.train, (i) => groups[i]!));
      const model = await fam.train(
        { x: xTrain, y: yTrain, task, nClasses },
        foldParams,
        {
          seed: seed + f,
          ...(opts.signal ? { signal: opts.signal } : {}),
          onProgress: (p) => progress({ ...p, stage: `${fam.name} fold ${f + 1}/${folds.length}`, fraction: (done + (p.fraction ?? 0)) / units }),
        },
      );
      const pred = model.predict(transformTable(pipeline, table, testRows).x);
      fold.test.forEach((row, i) => oof.set(pred.subarray(i * width, (i + 1) * width), row * width));
      perFold.push(scoreFold(task, take(y, fold.test), pred, nClasses));
      done++;
      progress({ stage: `${fam.name} fold ${f + 1}/${folds.length}`, fraction: done / units });
    }
    leaderboard.push({ family: fam.name, params: famParams, metrics: summarize(perFold, task), seconds: (performance.now() - started) / 1000, oof });
  }
  const better = higherIsBetter(selection) ? 1 : -1;
  // NaN scores (a fold with one class) rank last rather than poisoning the comparison.
  const score = (c: CandidateResult) => (Number.isFinite(c.metrics[selection]!.mean) ? better * c.metrics[selection]!.mean : -Infinity);
  const best = leaderboard.reduce((a, b) => (score(b) > score(a) ? b : a));

  progress({ stage: `${best.family} on all rows`, fraction: done / units });
  const pipeline = fitPipeline(table, schema, rows, { clipOutliers: opts.clipOutliers ?? false });
  const xAll = transformTable(pipeline, table, rows).x;
  const finalParams = await tune(FAMILIES[best.family], best.params, tuned.get(best.family)!, xAll, y, task, nClasses, seed, groups);
  const model = await FAMILIES[best.family].train({ x: xAll, y, task, nClasses }, finalParams, {
    seed,
    ...(opts.signal ? { signal: opts.signal } : {}),
    onProgress: (p) => progress({ ...p, stage: `${best.family} on all rows`, fraction: (done + (p.fraction ?? 0)) / units }),
  });
  progress({ stage: 'done', fraction: 1 });
  const report = task === 'regression' ? regressionReport(y, best.oof) : classificationReport(y, best.oof, nClasses);
  return {
    task,
    target: enc.encoding,
    schema,
    pipeline,
    model,
    selection,
    leaderboard: leaderboard
      .map(({ oof: _oof, ...rest }) => (rest.family === best.family ? { ...rest, params: finalParams } : rest))
      .sort((a, b) => score(b) - score(a)),
    cv: { folds: folds.length, metrics: best.metrics },
    report,
    rows: { total: table.rows.length, used: rows.length, duplicates: dedup.duplicates },
    warnings,
  };
}

/**
 * Picks the grid point with the best mean inner-CV score on the training rows given (one outer
 * fold's, or all rows for the final model), so the outer fold's score stays an honest estimate
 * (nested cross-validation). Returns `base` unchanged when there is nothing to tune.
 */
async function tune(
  fam: ModelFamily,
  base: Params,
  grid: Array<[string, number[]]>,
  x: Matrix,
  y: Float64Array,
  task: Task,
  nClasses: number,
  seed: number,
  groups: string[] | undefined,
): Promise<Params> {
  if (grid.length === 0) return base;
  let inner: ReturnType<typeof stratifiedKFold>;
  try {
    inner = stratifiedKFold(strataFor(y, task !== 'regression'), INNER_FOLDS, seed + 1000, groups);
  } catch {
    return base; // too few rows or groups to tune: keep the defaults
  }
  const metric: MetricName = task === 'regression' ? 'r2' : 'auroc';
  const sign = higherIsBetter(metric) ? 1 : -1;
  const points = grid.reduce<Params[]>((acc, [key, values]) => acc.flatMap((p) => values.map((v) => ({ ...p, [key]: v }))), [base]);
  let best = base;
  let bestScore = -Infinity;
  for (const p of points) {
    let sum = 0;
    for (const fold of inner) {
      const m = await fam.train({ x: takeRows(x, fold.train), y: take(y, fold.train), task, nClasses }, p, { seed });
      sum += scoreFold(task, take(y, fold.test), m.predict(takeRows(x, fold.test)), nClasses)[metric]!;
    }
    const score = sign * (sum / inner.length);
    // Strictly better only: ties keep the earlier (more regularised) grid point.
    if (score > bestScore + 1e-12) {
      bestScore = score;
      best = p;
    }
  }
  return best;
}

function chooseCandidates(model: Family | 'auto', task: Task, rows: number): ModelFamily[] {
  if (model !== 'auto') {
    const f = getFamily(model);
    if (!f.tasks.includes(task)) {
      const alt = task === 'regression' ? 'linear' : 'logistic';
      throw Errors.usage(`model family "${model}" cannot learn a ${task} task${f.name === 'logistic' || f.name === 'linear' ? ` (use --model ${alt})` : ''}`);
    }
    return [f];
  }
  const linearFamily = task === 'regression' ? FAMILIES.linear : FAMILIES.logistic;
  return rows >= MLP_MIN_ROWS ? [linearFamily, FAMILIES.gbdt, FAMILIES.mlp] : [linearFamily, FAMILIES.gbdt];
}

function scoreFold(task: Task, yTrue: Float64Array, pred: Float64Array, nClasses: number): Record<string, number> {
  return task === 'regression' ? regressionReport(yTrue, pred).metrics : classificationReport(yTrue, pred, nClasses).metrics;
}

function summarize(perFold: Record<string, number>[], task: Task): Record<string, MetricSummary> {
  const names: readonly string[] = task === 'regression' ? REGRESSION_METRICS : CLASSIFICATION_METRICS;
  const out: Record<string, MetricSummary> = {};
  for (const name of names) {
    // A fold can leave a metric undefined (one class in it, or a slope that cannot be fitted when
    // the model separates the fold): summarise the folds where it is defined.
    const v = perFold.map((m) => m[name]!).filter((x) => !Number.isNaN(x));
    const mean = v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    // Sample standard deviation across folds (ddof = 1), the usual spread of a CV estimate.
    const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
    out[name] = { mean, std };
  }
  return out;
}

function groupKeys(table: Table, column: string, rows: Int32Array): string[] {
  const j = columnIndex(table, column);
  return Array.from(rows, (r, i) => {
    const v = table.rows[r]![j];
    // A row without a group id is its own group: it cannot leak into anyone else's.
    return v === null || v === undefined ? `\u0000row${i}` : String(v);
  });
}

function take64(rows: Int32Array, idx: Int32Array): Int32Array {
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = rows[idx[i]!]!;
  return out;
}
