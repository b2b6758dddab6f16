/**
 * Cross-validation shared by the table training (`train.ts`) and its budgeted search
 * (`search-run.ts`): fitting the pipeline and a family on one fold's training rows, tuning by an
 * inner cross-validation, scoring folds, and the leaderboard's types.
 */
import { higherIsBetter, take, CLASSIFICATION_METRICS, REGRESSION_METRICS, type Matrix, type MetricName, type ProgressFn, type Schema, type Task } from '../core/index.js';
import { fitPipeline, stratifiedKFold, strataFor, transformTable, columnIndex, type FittedPipeline, type Fold, type PipelineOptions, type Table } from '../data/index.js';
import { classificationReport, regressionReport } from '../eval/index.js';
import type { Family, ModelFamily, Params, TrainedModel } from '../models/index.js';
import type { FoldFit } from './importance.js';

/** Cross-validated score of one metric. */
export interface MetricSummary {
  mean: number;
  std: number;
}

/** Cross-validated metrics of each output of a multi-output model, by target column. */
export type PerOutputMetrics = Record<string, Record<string, MetricSummary>>;

/** One family's cross-validation, a row of the leaderboard. */
export interface CandidateResult {
  family: Family;
  params: Params;
  /** With several outputs, the mean over the outputs (each fold's mean, then mean ± std over folds). */
  metrics: Record<string, MetricSummary>;
  /** With several outputs, each one's metrics by target column. */
  outputs?: PerOutputMetrics;
  /** Seconds spent on this family's folds. */
  seconds: number;
  /** The trial's number within its training (an ensemble's `members` name trials: `gbdt#3`). */
  trial?: number;
  /** Folds scored when a search's budget stopped it before all (absent: every fold). */
  folds?: number;
  /** A point of the family's search space rather than its defaults. */
  searched?: boolean;
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
export const INNER_FOLDS = 3;

/** What every fit of one `trainTable` call shares. */
export interface Context {
  table: Table;
  schema: Schema;
  task: Task;
  nClasses: number;
  /** Regression outputs (the targets' count); targets are rows × nOutputs. */
  nOutputs: number;
  /** The target columns, in output order. */
  targets: string[];
  seed: number;
  pipeline: PipelineOptions;
  /** Each candidate's validated hyperparameters. */
  params: Map<Family, Params>;
  /** Each candidate's grid of hyperparameters to tune (those the user did not set). */
  grids: Map<Family, Array<[string, number[]]>>;
  signal?: AbortSignal;
}

/**
 * A leaderboard entry with its out-of-fold predictions and each fold's scores, and, when asked
 * for, each fold's fitted pipeline and model with its validation rows (for permutation importance).
 */
export type Scored = CandidateResult & { oof: Float64Array; perFold: Record<string, number>[]; fits?: FoldFit[] };

/**
 * Cross-validates every candidate on `folds` (indices into `rows`, the table rows, with targets
 * `y` and groups aligned to them) and returns the leaderboard with out-of-fold predictions; with
 * `keepFits`, each fold's fitted pipeline and model too.
 */
export async function crossValidate(
  ctx: Context,
  candidates: ModelFamily[],
  rows: Int32Array,
  y: Float64Array,
  groups: string[] | undefined,
  folds: Fold[],
  step: (stage: string) => ProgressFn,
  tick: (stage: string) => void,
  prefix: string,
  keepFits = false,
): Promise<Scored[]> {
  const width = ctx.task === 'regression' ? ctx.nOutputs : ctx.nClasses;
  const board: Scored[] = [];
  for (const fam of candidates) {
    const started = performance.now();
    const perFold: Record<string, number>[] = [];
    const perOutput: Record<string, number>[][] = ctx.targets.map(() => []);
    const oof = new Float64Array(rows.length * width);
    const fits: FoldFit[] = [];
    for (const [f, fold] of folds.entries()) {
      const stage = `${prefix}${fam.name} fold ${f + 1}/${folds.length}`;
      const gTrain = groups && Array.from(fold.train, (i) => groups[i]!);
      const testRows = take64(rows, fold.test);
      const { pred, pipeline, model } = await fitAndPredict(ctx, fam, take64(rows, fold.train), takeTargets(y, fold.train, ctx.nOutputs), gTrain, testRows, ctx.seed + f, step(stage));
      if (keepFits) fits.push({ pipeline, model, rows: testRows, y: takeTargets(y, fold.test, ctx.nOutputs) });
      for (let i = 0; i < fold.test.length; i++) oof.set(pred.subarray(i * width, (i + 1) * width), fold.test[i]! * width);
      const scored = scoreOutputs(ctx, takeTargets(y, fold.test, ctx.nOutputs), pred);
      perFold.push(scored.metrics);
      for (const [j, m] of scored.outputs.entries()) perOutput[j]!.push(m);
      tick(stage);
    }
    board.push({
      family: fam.name,
      params: ctx.params.get(fam.name)!,
      metrics: summarize(perFold, ctx.task),
      ...(ctx.nOutputs > 1 ? { outputs: Object.fromEntries(ctx.targets.map((t, j) => [t, summarize(perOutput[j]!, ctx.task)])) } : {}),
      seconds: (performance.now() - started) / 1000,
      oof,
      perFold,
      ...(keepFits ? { fits } : {}),
    });
    // The live leaderboard (a job page shows each family as it finishes); not for the inner
    // searches of nested CV, whose scores are not the leaderboard's.
    if (prefix === '') {
      const c = board[board.length - 1]!;
      step(`${fam.name} scored`)({ stage: '', candidate: { family: c.family, metrics: c.metrics, seconds: c.seconds } });
    }
  }
  return board;
}

/**
 * One fold's fit: the pipeline and any tuning on the training rows only, the model trained on
 * them, predictions for the test rows (with the fitted pipeline and model, for importance).
 */
export async function fitAndPredict(
  ctx: Context,
  fam: ModelFamily,
  trainRows: Int32Array,
  yTrain: Float64Array,
  groups: string[] | undefined,
  testRows: Int32Array,
  seed: number,
  onProgress: ProgressFn,
): Promise<{ pred: Float64Array; pipeline: FittedPipeline; model: TrainedModel }> {
  const { pipeline, model } = await fitOn(ctx, fam, trainRows, yTrain, groups, seed, onProgress);
  return { pred: model.predict(transformTable(pipeline, ctx.table, testRows).x), pipeline, model };
}

/**
 * A configuration to fit: hyperparameters, and whether the family's tuning grid (`TUNING_GRIDS`)
 * tunes them further by an inner cross-validation (the defaults are tuned; a searched point is not).
 */
export interface Config {
  params: Params;
  tune: boolean;
}

/** The pipeline fitted on `rows`, hyperparameters tuned on them, and the model trained on them. */
export async function fitOn(
  ctx: Context,
  fam: ModelFamily,
  rows: Int32Array,
  y: Float64Array,
  groups: string[] | undefined,
  seed: number,
  onProgress: ProgressFn,
  config?: Config,
): Promise<{ pipeline: FittedPipeline; params: Params; model: TrainedModel }> {
  const pipeline = fitPipeline(ctx.table, ctx.schema, rows, ctx.pipeline);
  const x = transformTable(pipeline, ctx.table, rows).x;
  return { pipeline, ...(await trainFamily(ctx, fam, x, rows, y, groups, seed, onProgress, config)) };
}

/**
 * `fam` trained on `x` (the pipeline's features of table rows `rows`), with `config` (default: the
 * family's validated parameters, tuned). `signal` replaces the run's own (a search's deadline).
 */
export async function trainFamily(
  ctx: Context,
  fam: ModelFamily,
  x: Matrix,
  rows: Int32Array,
  y: Float64Array,
  groups: string[] | undefined,
  seed: number,
  onProgress?: ProgressFn,
  config?: Config,
  signal?: AbortSignal,
): Promise<{ params: Params; model: TrainedModel }> {
  const c = config ?? { params: ctx.params.get(fam.name)!, tune: true };
  const params = c.tune ? await tune(ctx, fam, c.params, ctx.grids.get(fam.name) ?? [], rows, y, groups, seed) : c.params;
  const outputs = ctx.nOutputs > 1 ? { nOutputs: ctx.nOutputs } : {};
  const stop = signal ?? ctx.signal;
  const model = await fam.train({ x, y, task: ctx.task, nClasses: ctx.nClasses, ...outputs, ...(groups ? { groups: groupIds(groups) } : {}) }, params, {
    seed,
    ...(stop ? { signal: stop } : {}),
    ...(onProgress ? { onProgress } : {}),
  });
  return { params, model };
}

/** The best candidate by the selection metric (NaN scores rank last). */
export function pickBest<T extends CandidateResult>(board: T[], selection: MetricName): T {
  return board.reduce((a, b) => (score(b, selection) > score(a, selection) ? b : a));
}

export function score(c: CandidateResult, selection: MetricName): number {
  const m = c.metrics[selection]!.mean;
  return Number.isFinite(m) ? (higherIsBetter(selection) ? m : -m) : -Infinity;
}

/**
 * Picks the grid point with the best mean inner-CV score on the training rows given (one outer
 * fold's, or all rows for the final model). Each inner split refits the pipeline on its own
 * training rows, so no statistic of an inner test row reaches its features, and the outer score
 * stays an honest estimate (nested cross-validation). Returns `base` unchanged when there is
 * nothing to tune.
 */
export async function tune(
  ctx: Context,
  fam: ModelFamily,
  base: Params,
  grid: Array<[string, number[]]>,
  rows: Int32Array,
  y: Float64Array,
  groups: string[] | undefined,
  seed: number,
): Promise<Params> {
  if (grid.length === 0) return base;
  const { task, nClasses, nOutputs } = ctx;
  let inner: Fold[];
  try {
    inner = stratifiedKFold(strataFor(column(y, nOutputs, 0), task !== 'regression'), INNER_FOLDS, seed + 1000, groups);
  } catch {
    return base; // too few rows or groups to tune: keep the defaults
  }
  const metric: MetricName = task === 'regression' ? 'r2' : 'auroc';
  const sign = higherIsBetter(metric) ? 1 : -1;
  const points = grid.reduce<Params[]>((acc, [key, values]) => acc.flatMap((p) => values.map((v) => ({ ...p, [key]: v }))), [base]);
  const sums = new Float64Array(points.length);
  // Fold by fold, so only one inner split's features are in memory at a time.
  for (const fold of inner) {
    const trainRows = take64(rows, fold.train);
    const testRows = take64(rows, fold.test);
    const pipeline = fitPipeline(ctx.table, ctx.schema, trainRows, ctx.pipeline);
    const x = transformTable(pipeline, ctx.table, trainRows).x;
    const xt = transformTable(pipeline, ctx.table, testRows).x;
    const yTrain = takeTargets(y, fold.train, nOutputs);
    const yTest = takeTargets(y, fold.test, nOutputs);
    for (const [i, p] of points.entries()) {
      const m = await fam.train({ x, y: yTrain, task, nClasses, ...(nOutputs > 1 ? { nOutputs } : {}) }, p, { seed, ...(ctx.signal ? { signal: ctx.signal } : {}) });
      // Several outputs: the mean of their scores.
      sums[i]! += scoreOutputs(ctx, yTest, m.predict(xt)).metrics[metric]!;
    }
  }
  let best = base;
  let bestScore = -Infinity;
  for (const [i, p] of points.entries()) {
    const score = (sign * sums[i]!) / inner.length;
    // Strictly better only: ties keep the earlier (more regularised) grid point.
    if (score > bestScore + 1e-12) {
      bestScore = score;
      best = p;
    }
  }
  return best;
}

/**
 * A fold's scores: for one output, its metrics; for several, the mean of each metric over the
 * outputs (`metrics`) and each output's (`outputs`, in target order).
 */
export function scoreOutputs(ctx: Pick<Context, 'task' | 'nClasses' | 'nOutputs'>, yTrue: Float64Array, pred: Float64Array): { metrics: Record<string, number>; outputs: Record<string, number>[] } {
  const m = ctx.nOutputs;
  if (m === 1) {
    const metrics = scoreFold(ctx.task, yTrue, pred, ctx.nClasses);
    return { metrics, outputs: [metrics] };
  }
  const outputs = Array.from({ length: m }, (_, j) => scoreFold(ctx.task, column(yTrue, m, j), column(pred, m, j), ctx.nClasses));
  const metrics: Record<string, number> = {};
  for (const name of Object.keys(outputs[0]!)) metrics[name] = outputs.reduce((a, o) => a + o[name]!, 0) / m;
  return { metrics, outputs };
}

/** Column `j` of a row-major `rows × width` array (the array itself when it has one column). */
export function column(a: Float64Array, width: number, j: number): Float64Array {
  if (width === 1) return a;
  const n = a.length / width;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = a[i * width + j]!;
  return out;
}

/** The arrays one after the other (the array itself when there is one). */
export function concatArrays(parts: Float64Array[]): Float64Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Rows `idx` of targets (or predictions) held `width` per row. */
export function takeTargets(y: Float64Array, idx: Int32Array, width: number): Float64Array {
  if (width === 1) return take(y, idx);
  const out = new Float64Array(idx.length * width);
  for (let k = 0; k < idx.length; k++) out.set(y.subarray(idx[k]! * width, (idx[k]! + 1) * width), k * width);
  return out;
}

export function scoreFold(task: Task, yTrue: Float64Array, pred: Float64Array, nClasses: number): Record<string, number> {
  return task === 'regression' ? regressionReport(yTrue, pred).metrics : classificationReport(yTrue, pred, nClasses).metrics;
}

export function summarize(perFold: Record<string, number>[], task: Task): Record<string, MetricSummary> {
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

export function groupKeys(table: Table, column: string, rows: Int32Array): string[] {
  const data = table.data[columnIndex(table, column)]!;
  // A row without a group id is its own group: it cannot leak into anyone else's.
  return Array.from(rows, (r, i) => data.text(r) ?? `\u0000row${i}`);
}

/** Dense integer ids of group keys (what a family's early-stopping holdout keeps whole). */
export function groupIds(groups: string[]): Int32Array {
  const ids = new Map<string, number>();
  const out = new Int32Array(groups.length);
  for (let i = 0; i < groups.length; i++) {
    let id = ids.get(groups[i]!);
    if (id === undefined) {
      id = ids.size;
      ids.set(groups[i]!, id);
    }
    out[i] = id;
  }
  return out;
}

export function take64(rows: Int32Array, idx: Int32Array): Int32Array {
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = rows[idx[i]!]!;
  return out;
}
