import {
  Errors,
  higherIsBetter,
  take,
  CLASSIFICATION_METRICS,
  REGRESSION_METRICS,
  type ColumnSchema,
  type ColumnType,
  type MetricName,
  type Progress,
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
  type Fold,
  type PipelineOptions,
  type Table,
  type TargetEncoding,
} from '../data/index.js';
import {
  classificationReport,
  regressionPlot,
  regressionReport,
  reliabilityBins,
  RELIABILITY_BINS,
  RELIABILITY_MIN_BIN_ROWS,
  PLOT_MIN_ROWS,
  type ClassificationReport,
  type EvaluationPlots,
  type RegressionReport,
} from '../eval/index.js';
import { FAMILIES, getFamily, type Family, type ModelFamily, type Params, type TrainedModel } from '../models/index.js';
import { permutationImportance, type FoldFit } from './importance.js';
import { dominantImportance, leakageWarning, LIKELY_LEAK_DROP, rescoreWarning, screenLeakage, type LeakageFinding, type LeakageReport } from './leakage.js';

/** What to train, as the CLI and the API take it. */
export interface TrainOptions {
  /**
   * The column to predict; or several numeric columns, learnt at once as one multi-output
   * regression (every target numeric; a label column among several is a usage error).
   */
  target: string | string[];
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
  /**
   * Also estimate the whole choice (family, tuning) by nested cross-validation: outer folds
   * around the selection, k times its cost. Only meaningful when several families compete.
   */
  nested?: boolean;
  /**
   * Refuse to train (MEDFIT_ERR_BAD_DATA, naming the columns and the evidence) when the leakage
   * guard flags a feature before training (`--strict`; see leakage.ts). Without it the findings
   * are warnings.
   */
  strict?: boolean;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
}

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
}

/** Everything a training run produced: the model to save and the evidence for it. */
export interface TrainResult {
  task: Task;
  /** The target(s): `column` joins several with commas. */
  target: TargetEncoding;
  schema: Schema;
  pipeline: FittedPipeline;
  model: TrainedModel;
  /**
   * The mean of each model feature (after the pipeline) over the rows the final model was fitted
   * on: the baseline per-prediction explanations are measured from (manifest `explain.reference`).
   * Means only, never a row.
   */
  explainReference: number[];
  /** The metric families were ranked by. */
  selection: MetricName;
  leaderboard: CandidateResult[];
  /**
   * The chosen family's cross-validated metrics: its scores on the same folds that chose it, so
   * for `auto` a little optimistic (see `nested`). With several outputs, `metrics` is their mean
   * and `outputs` each one's, by target column.
   */
  cv: { folds: number; metrics: Record<string, MetricSummary>; outputs?: PerOutputMetrics };
  /** The nested estimate of the whole choice, when asked for (`TrainOptions.nested`). */
  nested?: NestedEstimate;
  /**
   * Report on the chosen family's pooled out-of-fold predictions (curves, confusion, CI; the
   * first output's, for several), with what the version's page plots (`EvaluationPlots`, all from
   * the same out-of-fold predictions): permutation importance, the reliability bins (binary) and
   * a predicted-versus-actual grid per output (regression). Saved as the version's evaluation file.
   */
  report: (ClassificationReport | RegressionReport) & EvaluationPlots & { leakage?: LeakageReport };
  rows: { total: number; used: number; duplicates: number };
  /**
   * What the leakage guard found (each finding is also a `leakage` warning), and, when a flagged
   * column was a feature, the chosen family's score without it on the same folds.
   */
  leakage: LeakageReport;
  warnings: Warning[];
}

/** Nested cross-validation of the whole choice: the outer folds' scores and each fold's choice. */
export interface NestedEstimate {
  folds: number;
  metrics: Record<string, MetricSummary>;
  /** The family chosen inside each outer fold. */
  chosen: Family[];
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
 * chooses the best by the selection metric, and refits it on all rows. Hyperparameters tuned by
 * an inner cross-validation are tuned inside each fold too, with the pipeline refitted on each
 * inner training split. With `nested`, the whole choice is also repeated inside outer folds for
 * an estimate of the chosen model that the choice itself did not see (`TrainResult.nested`).
 */
export async function trainTable(table: Table, opts: TrainOptions): Promise<TrainResult> {
  const seed = opts.seed ?? 0;
  const k = opts.cv ?? 5;
  const progress = opts.onProgress ?? (() => {});
  const targets = typeof opts.target === 'string' ? [opts.target] : [...opts.target];
  checkTargets(targets, opts);
  for (const t of targets) columnIndex(table, t);
  if (opts.group !== undefined) columnIndex(table, opts.group);
  // The first target is the schema's target; the others are kept out of the features as dropped
  // columns are, then marked as targets below.
  const target = targets[0]!;
  const others = targets.slice(1);
  const drop = [...(opts.ignore ?? []), ...(opts.group !== undefined ? [opts.group] : [])];
  const inferred = inferSchema(table, { target, overrides: opts.types ?? {}, drop: [...(opts.ignore ?? []), ...others], ...(opts.group !== undefined ? { group: opts.group } : {}) });
  const { warnings } = inferred;
  let schema = inferred.schema;
  if (others.length > 0) {
    // Each other target's type and findings as it would have as the target.
    const asTarget = new Map<string, ColumnSchema>();
    for (const t of others) {
      const own = inferSchema(table, { target: t, overrides: opts.types ?? {} });
      asTarget.set(t, own.schema.columns.find((c) => c.name === t)!);
      for (const w of own.warnings) if (w.column === t && !warnings.some((v) => v.code === w.code && v.column === t)) warnings.push(w);
    }
    schema = { columns: schema.columns.map((c) => asTarget.get(c.name) ?? c) };
  }
  // An empty column is most often a join or export gone wrong: say so rather than train without
  // it silently. Leaving it out is one flag away.
  const empty = warnings.find((w) => w.code === 'all_missing' && w.column !== undefined && !targets.includes(w.column) && !drop.includes(w.column));
  if (empty) throw Errors.badData(`${table.source}, column "${empty.column}"`, `every value is missing; leave it out with --ignore ${empty.column}`);
  const features = schema.columns.filter((c) => c.role === 'feature');
  if (features.length === 0) {
    const left = schema.columns.filter((c) => c.role === 'ignored').map((c) => `"${c.name}" (${c.reason ?? c.type})`);
    throw Errors.badData(table.source, `no usable feature columns: ${left.length ? `left out ${left.join(', ')}` : 'the table has only the target'}; override with --type column=numeric`);
  }

  const encs = targets.map((t) => {
    const enc = encodeTarget(table, t, schema.columns.find((c) => c.name === t)!.type, opts.task ?? 'auto');
    if (targets.length > 1 && enc.encoding.task !== 'regression') {
      throw Errors.usage(
        `--target ${targets.join(',')}: "${t}" holds labels (${enc.encoding.task}); several targets must all be numeric (one multi-output regression)${enc.encoding.classes!.every((c) => Number.isFinite(Number(c))) ? ', or pass --task regression' : ''}; train one label column at a time`,
      );
    }
    return enc;
  });
  for (const enc of encs) for (const w of enc.warnings) warnings.push(w);
  // Rows with a value of every target (each target's own rows are ascending).
  const present = new Int32Array(table.rowCount);
  for (const enc of encs) for (const r of enc.rows) present[r]!++;
  const labelled = Int32Array.from(encs[0]!.rows.filter((r) => present[r] === encs.length));
  const dedup = dropDuplicateRows(table, labelled);
  if (dedup.duplicates > 0) warnings.push({ code: 'duplicate_rows', message: `${dedup.duplicates} duplicate row(s) dropped` });
  // Rows of the cleaned table, and the targets aligned with them (rows × nOutputs, row-major).
  const rows = dedup.kept;
  const nOutputs = targets.length;
  const y = new Float64Array(rows.length * nOutputs);
  for (const [j, enc] of encs.entries()) {
    const posInEnc = new Map<number, number>();
    for (let i = 0; i < enc.rows.length; i++) posInEnc.set(enc.rows[i]!, i);
    for (let i = 0; i < rows.length; i++) y[i * nOutputs + j] = enc.y[posInEnc.get(rows[i]!)!]!;
  }
  const enc = encs[0]!;
  const task = enc.encoding.task;
  const nClasses = task === 'regression' ? 1 : enc.encoding.classes!.length;
  if (task !== 'regression') {
    const counts = new Float64Array(nClasses);
    for (let i = 0; i < y.length; i++) counts[y[i]!]!++;
    let rarest = 0;
    for (let c = 1; c < nClasses; c++) if (counts[c]! < counts[rarest]!) rarest = c;
    // Class labels are values of the target column: the message counts, it does not quote.
    if (counts[rarest]! < k) {
      throw Errors.badData(`${table.source}, target column "${target}"`, `its rarest class has ${counts[rarest]} row(s), fewer than the ${k} folds of --cv`);
    }
  }
  const groups = opts.group !== undefined ? groupKeys(table, opts.group, rows) : undefined;
  // Several outputs are stratified by the first target's quantile bins.
  const folds = stratifiedKFold(strataFor(column(y, nOutputs, 0), task !== 'regression'), k, seed, groups);
  // The leakage guard, on the folds the candidates will be scored on, before any of them is fitted.
  const leakStarted = performance.now();
  const screen = screenLeakage({ table, schema, rows, y, nOutputs, task, nClasses, targets, folds });
  if (opts.strict === true && screen.findings.length > 0) throw strictRefusal(table.source, screen.findings);
  for (const f of screen.findings) warnings.push(leakageWarning(f));
  const leakage: LeakageReport = { findings: [...screen.findings], rows: screen.rows, seconds: (performance.now() - leakStarted) / 1000 };

  const candidates = chooseCandidates(opts.model ?? 'auto', task, rows.length, nOutputs);
  for (const name of Object.keys(opts.params ?? {})) getFamily(name);
  const ctx: Context = {
    table,
    schema,
    task,
    nClasses,
    nOutputs,
    targets,
    seed,
    pipeline: { clipOutliers: opts.clipOutliers ?? false },
    params: new Map(candidates.map((f) => [f.name, f.parseParams(opts.params?.[f.name] ?? {}, task, rows.length)])),
    // Tune only what the user left unset: an explicit --param is a decision, not a starting point.
    grids: new Map(
      candidates.map((f) => [f.name, Object.entries(TUNING_GRIDS[f.name] ?? {}).filter(([key]) => !Object.hasOwn(opts.params?.[f.name] ?? {}, key))]),
    ),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const selection: MetricName = task === 'regression' ? 'r2' : 'auroc';
  const nested = opts.nested === true && candidates.length > 1;
  const units = candidates.length * (folds.length + 1) + (nested ? folds.length * candidates.length * folds.length : 0);
  let done = 0;
  const step = (stage: string) => (p: Progress) => progress({ ...p, stage, fraction: (done + (p.fraction ?? 0)) / units });
  const tick = (stage: string) => {
    done++;
    progress({ stage, fraction: done / units });
  };

  const leaderboard = await crossValidate(ctx, candidates, rows, y, groups, folds, step, tick, '', true);
  const best = pickBest(leaderboard, selection);
  const worse = worseThanMean(best);
  if (worse) warnings.push(worse);
  // Importance of the chosen family only, from its folds' own fits on their validation rows;
  // the other candidates' fits are let go before the nested and final fits.
  progress({ stage: `${best.family} permutation importance`, fraction: done / units });
  const importance = permutationImportance(table, best.fits!, { task, nClasses, nOutputs }, seed, opts.signal);
  for (const c of leaderboard) delete c.fits;
  const dominant = dominantImportance(importance);
  if (dominant) {
    leakage.findings.push(dominant);
    warnings.push(leakageWarning(dominant));
  }
  // A flagged feature: how much of the score is it? The chosen family once more without the
  // flagged columns, on the same folds (one more CV; not after nested CV, which costs k times).
  // The importance flag alone does not ask for it: a strong genuine predictor would be named a leak.
  const flagged = [...new Set(screen.findings.map((f) => f.column))];
  if (flagged.length > 0) {
    const reduced: Schema = { columns: schema.columns.map((c) => (flagged.includes(c.name) && c.role === 'feature' ? { ...c, role: 'ignored' as const, reason: 'flagged by the leakage check' } : c)) };
    if (nested) leakage.rescoreSkipped = 'not after nested cross-validation (k times the work)';
    else if (!reduced.columns.some((c) => c.role === 'feature')) leakage.rescoreSkipped = 'no other feature column';
    else {
      const started = performance.now();
      const stage = `${best.family} without ${flagged.join(', ')}`;
      const quiet = (st: string) => (p: Progress) => progress({ ...p, stage: st, fraction: done / units });
      const [again] = await crossValidate({ ...ctx, schema: reduced }, [getFamily(best.family)], rows, y, groups, folds, quiet, () => {}, `${stage}: `);
      const w = best.metrics[selection]!.mean;
      const wo = again!.metrics[selection]!.mean;
      const limit = LIKELY_LEAK_DROP[selection] ?? Infinity;
      leakage.rescore = { metric: selection, with: w, without: wo, columns: flagged, likelyLeak: Number.isFinite(wo) && w - wo > limit };
      const lw = rescoreWarning(leakage.rescore);
      if (lw) warnings.push(lw);
      leakage.seconds += (performance.now() - started) / 1000;
    }
  }

  let nestedEstimate: NestedEstimate | undefined;
  if (nested) {
    // The whole choice again inside each outer fold: its score is on rows the choice never saw.
    // The winner's fit on the outer fold is the one the leaderboard already scored (same rows,
    // seed and tuning), so its score is taken from there rather than fitted again.
    const perFold: Record<string, number>[] = [];
    const chosen: Family[] = [];
    for (const [f, outer] of folds.entries()) {
      const yTrain = takeTargets(y, outer.train, nOutputs);
      const gTrain = groups && Array.from(outer.train, (i) => groups[i]!);
      const inner = stratifiedKFold(strataFor(column(yTrain, nOutputs, 0), task !== 'regression'), k, seed + 7919 * (f + 1), gTrain);
      const board = await crossValidate(ctx, candidates, take64(rows, outer.train), yTrain, gTrain, inner, step, tick, `nested ${f + 1}/${folds.length}: `);
      const winner = pickBest(board, selection);
      chosen.push(winner.family);
      perFold.push(leaderboard.find((c) => c.family === winner.family)!.perFold[f]!);
    }
    nestedEstimate = { folds: folds.length, metrics: summarize(perFold, task), chosen };
  }

  const finalStage = `${best.family} on all rows`;
  progress({ stage: finalStage, fraction: done / units });
  const { pipeline, params: finalParams, model } = await fitOn(ctx, getFamily(best.family), rows, y, groups, seed, step(finalStage));
  const explainReference = featureMeans(transformTable(pipeline, table, rows).x);
  progress({ stage: 'done', fraction: 1 });
  const report: TrainResult['report'] = {
    ...(task === 'regression' ? regressionReport(column(y, nOutputs, 0), column(best.oof, nOutputs, 0)) : classificationReport(y, best.oof, nClasses)),
    importance,
    // Not on tiny tables, where a bin or a cell would be a record or two (PLOT_MIN_ROWS).
    ...(task === 'binary' && y.length >= PLOT_MIN_ROWS ? { reliability: reliabilityBins(y, column(best.oof, 2, 1), RELIABILITY_BINS, RELIABILITY_MIN_BIN_ROWS) } : {}),
    ...(task === 'regression' && y.length / nOutputs >= PLOT_MIN_ROWS ? { regression: targets.map((t, j) => regressionPlot(t, column(y, nOutputs, j), column(best.oof, nOutputs, j))) } : {}),
    // Kept with the version's evaluation when there is something to say: the page shows it beside the score.
    ...(leakage.findings.length > 0 ? { leakage } : {}),
  };
  return {
    task,
    target: nOutputs > 1 ? { column: targets.join(','), task } : enc.encoding,
    schema,
    pipeline,
    model,
    explainReference,
    selection,
    leaderboard: leaderboard
      .map(({ oof: _oof, perFold: _perFold, fits: _fits, ...rest }) => (rest.family === best.family ? { ...rest, params: finalParams } : rest))
      .sort((a, b) => score(b, selection) - score(a, selection)),
    cv: { folds: folds.length, metrics: best.metrics, ...(best.outputs ? { outputs: best.outputs } : {}) },
    ...(nestedEstimate ? { nested: nestedEstimate } : {}),
    report,
    rows: { total: table.rowCount, used: rows.length, duplicates: dedup.duplicates },
    leakage,
    warnings,
  };
}

/**
 * The refusal of a strict training run: every flagged column with its evidence, in one line,
 * and each finding as a detail. Column names and aggregate scores only, never a record's value.
 */
function strictRefusal(source: string, findings: LeakageFinding[]) {
  const cols = [...new Set(findings.map((f) => f.column))];
  const shown = (k: string, v: number | string) => typeof v === 'number' && !k.includes('threshold') && k !== 'folds' && k !== 'rows';
  const what = findings.map((f) => `"${f.column}" (${f.kind}: ${Object.entries(f.evidence).filter(([key, v]) => shown(key, v)).map(([key, v]) => `${key} ${v}`).join(', ')})`);
  return Errors.badData(
    source,
    `strict mode: the leakage check flags ${what.join('; ')}; leave ${cols.length === 1 ? 'it' : 'them'} out with --ignore ${cols.join(',')} (the API: "ignore"), or train without strict mode to see the scores with warnings`,
    findings.map((f) => ({ pointer: f.column, message: f.message })),
  );
}

/** What every fit of one `trainTable` call shares. */
interface Context {
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
type Scored = CandidateResult & { oof: Float64Array; perFold: Record<string, number>[]; fits?: FoldFit[] };

/**
 * Cross-validates every candidate on `folds` (indices into `rows`, the table rows, with targets
 * `y` and groups aligned to them) and returns the leaderboard with out-of-fold predictions; with
 * `keepFits`, each fold's fitted pipeline and model too.
 */
async function crossValidate(
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
async function fitAndPredict(
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

/** The pipeline fitted on `rows`, hyperparameters tuned on them, and the model trained on them. */
async function fitOn(
  ctx: Context,
  fam: ModelFamily,
  rows: Int32Array,
  y: Float64Array,
  groups: string[] | undefined,
  seed: number,
  onProgress: ProgressFn,
): Promise<{ pipeline: FittedPipeline; params: Params; model: TrainedModel }> {
  const pipeline = fitPipeline(ctx.table, ctx.schema, rows, ctx.pipeline);
  const x = transformTable(pipeline, ctx.table, rows).x;
  const params = await tune(ctx, fam, ctx.params.get(fam.name)!, ctx.grids.get(fam.name)!, rows, y, groups, seed);
  const outputs = ctx.nOutputs > 1 ? { nOutputs: ctx.nOutputs } : {};
  const model = await fam.train({ x, y, task: ctx.task, nClasses: ctx.nClasses, ...outputs, ...(groups ? { groups: groupIds(groups) } : {}) }, params, {
    seed,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    onProgress,
  });
  return { pipeline, params, model };
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
async function tune(
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

function chooseCandidates(model: Family | 'auto', task: Task, rows: number, nOutputs: number): ModelFamily[] {
  const several = (f: ModelFamily) => nOutputs === 1 || f.multiOutput === true;
  if (model !== 'auto') {
    const f = getFamily(model);
    if (!f.tasks.includes(task)) {
      const alt = task === 'regression' ? 'linear' : 'logistic';
      throw Errors.usage(`model family "${model}" cannot learn a ${task} task${f.name === 'logistic' || f.name === 'linear' ? ` (use --model ${alt})` : ''}`);
    }
    if (!several(f)) {
      const can = Object.values(FAMILIES).filter((g) => g.multiOutput === true).map((g) => g.name);
      throw Errors.usage(`model family "${model}" cannot learn ${nOutputs} outputs at once (families that can: ${can.join(', ')})`);
    }
    return [f];
  }
  const linearFamily = task === 'regression' ? FAMILIES.linear : FAMILIES.logistic;
  const all = rows >= MLP_MIN_ROWS ? [linearFamily, FAMILIES.gbdt, FAMILIES.mlp] : [linearFamily, FAMILIES.gbdt];
  // With several outputs, only the families that learn them at once.
  const fit = all.filter(several);
  if (fit.length === 0) throw Errors.usage(`no model family can learn ${nOutputs} outputs at once`);
  return fit;
}

/** Usage errors in the target list: none, a name twice, a target also ignored or grouped by. */
function checkTargets(targets: string[], opts: TrainOptions): void {
  if (targets.length === 0 || targets.some((t) => t === '')) throw Errors.usage('train: --target names no column');
  const twice = targets.find((t, i) => targets.indexOf(t) !== i);
  if (twice !== undefined) throw Errors.usage(`--target names "${twice}" twice`);
  if (targets.length === 1) return;
  const asked = opts.task ?? 'auto';
  if (asked !== 'auto' && asked !== 'regression') {
    throw Errors.usage(`--task ${asked}: several targets (${targets.join(',')}) are learnt as one multi-output regression; train one label column at a time`);
  }
  for (const t of targets.slice(1)) {
    if (opts.ignore?.includes(t)) throw Errors.usage(`cannot drop the target column "${t}"`);
    if (opts.group === t) throw Errors.usage(`the target column "${t}" cannot also be the group column`);
  }
}

/**
 * A fold's scores: for one output, its metrics; for several, the mean of each metric over the
 * outputs (`metrics`) and each output's (`outputs`, in target order).
 */
function scoreOutputs(ctx: Pick<Context, 'task' | 'nClasses' | 'nOutputs'>, yTrue: Float64Array, pred: Float64Array): { metrics: Record<string, number>; outputs: Record<string, number>[] } {
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
function column(a: Float64Array, width: number, j: number): Float64Array {
  if (width === 1) return a;
  const n = a.length / width;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = a[i * width + j]!;
  return out;
}

/** Rows `idx` of targets held `width` per row. */
function takeTargets(y: Float64Array, idx: Int32Array, width: number): Float64Array {
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

function groupKeys(table: Table, column: string, rows: Int32Array): string[] {
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

function take64(rows: Int32Array, idx: Int32Array): Int32Array {
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = rows[idx[i]!]!;
  return out;
}

/**
 * A warning when the chosen regression model predicts held-out rows worse than their mean would
 * (cross-validated R² below 0): saving it is allowed, trusting it is not.
 */
export function worseThanMean(best: CandidateResult): Warning | undefined {
  const r2 = best.metrics['r2']?.mean;
  if (r2 === undefined || !(r2 < 0)) return undefined;
  return { code: 'worse_than_mean', message: `the chosen model (${best.family}) predicts held-out rows worse than their mean would (cross-validated R² ${r2.toFixed(3)}): more rows, other features or another target are needed before it is used` };
}

/** Each column's mean over the rows of `x` (the pipeline imputes, so every value is finite). */
function featureMeans(x: { rows: number; cols: number; data: Float64Array }): number[] {
  const sums = new Float64Array(x.cols);
  for (let r = 0; r < x.rows; r++) for (let j = 0; j < x.cols; j++) sums[j]! += x.data[r * x.cols + j]!;
  return Array.from(sums, (v) => (x.rows > 0 ? v / x.rows : 0));
}
