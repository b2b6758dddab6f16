import { Errors, type ColumnSchema, type ColumnType, type MetricName, type Progress, type ProgressFn, type Schema, type Task, type Warning } from '../core/index.js';
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
import { FAMILIES, getFamily, SMALL_TABLE_ROWS, type Family, type ModelFamily, type Params, type TrainedModel } from '../models/index.js';
import { chooseCalibration, type CalibrateOption, type CalibrationReport } from './calibrate.js';
import { CalibratedModel } from './calibrated.js';
import {
  column,
  crossValidate,
  fitOn,
  groupKeys,
  score,
  scoreOutputs,
  summarize,
  take64,
  takeTargets,
  trainFamily,
  TUNING_GRIDS,
  type CandidateResult,
  type Context,
  type MetricSummary,
  type PerOutputMetrics,
} from './cv.js';
import { EnsembleModel } from './ensemble.js';
import { permutationImportance, type FoldFit } from './importance.js';
import { dominantImportance, leakageWarning, LIKELY_LEAK_DROP, rescoreWarning, screenLeakage, type LeakageFinding, type LeakageReport } from './leakage.js';
import { choose, TrialRunner, type Choice, type CvPlan, type SearchSummary } from './search-run.js';

export type { CandidateResult, MetricSummary, PerOutputMetrics } from './cv.js';

/** What to train, as the CLI and the API take it. */
export interface TrainOptions {
  /**
   * The column to predict; or several numeric columns, learnt at once as one multi-output
   * regression (every target numeric; a label column among several is a usage error).
   */
  target: string | string[];
  task?: Task | 'auto';
  /**
   * A family, `auto` to choose by cross-validated score, or `ensemble` for a weighted blend of the
   * candidates (Caruana's selection on out-of-fold predictions) whether or not it beats the best alone.
   */
  model?: Family | 'auto' | 'ensemble';
  /**
   * Seconds for a hyperparameter search (`--budget 60s`): each family's defaults first, then points
   * of its `searchSpace` by successive halving on the folds, and an ensemble of the best when it
   * scores better. Absent: the defaults only. The final fit on all rows comes after the budget.
   */
  budget?: number;
  /** Post-hoc calibration of a classifier (default `auto`: chosen by cross-fitted log loss; see calibrate.ts). */
  calibrate?: CalibrateOption;
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
  cv: { folds: number; repeats?: number; metrics: Record<string, MetricSummary>; outputs?: PerOutputMetrics };
  /** The nested estimate of the whole choice, when asked for (`TrainOptions.nested`). */
  nested?: NestedEstimate;
  /**
   * Report on the chosen family's pooled out-of-fold predictions (curves, confusion, CI; the
   * first output's, for several), with what the version's page plots (`EvaluationPlots`, all from
   * the same out-of-fold predictions): permutation importance, the reliability bins (binary) and
   * a predicted-versus-actual grid per output (regression). Saved as the version's evaluation file.
   */
  report: (ClassificationReport | RegressionReport) & EvaluationPlots & { leakage?: LeakageReport; calibration?: CalibrationReport; search?: SearchSummary };
  rows: { total: number; used: number; duplicates: number };
  /**
   * What the leakage guard found (each finding is also a `leakage` warning), and, when a flagged
   * column was a feature, the chosen family's score without it on the same folds.
   */
  leakage: LeakageReport;
  /** A classifier's calibration: the method kept, how it was chosen, before and after. */
  calibration?: CalibrationReport;
  /** With a budget: what the search tried. */
  search?: SearchSummary;
  warnings: Warning[];
}

/** Nested cross-validation of the whole choice: the outer folds' scores and each fold's choice. */
export interface NestedEstimate {
  folds: number;
  metrics: Record<string, MetricSummary>;
  /** The family chosen inside each outer fold. */
  chosen: Family[];
}


/** Repetitions of the k-fold cross-validation on a small table (`SMALL_TABLE_ROWS`) with a budget of at least REPEAT_MIN_BUDGET seconds. */
export const SMALL_REPEATS = 3;
export const REPEAT_MIN_BUDGET = 20;

/** A calibration that raises the cross-fitted log loss by more than this factor is warned about. */
export const CALIBRATION_WORSE = 1.1;

/** Rows of the leaderboard kept in the result (a long search tries hundreds of points). */
export const LEADERBOARD_MAX = 100;

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

  const model = opts.model ?? 'auto';
  const candidates = chooseCandidates(model === 'ensemble' ? 'auto' : model, task, rows.length, nOutputs);
  for (const name of Object.keys(opts.params ?? {})) getFamily(name);
  warnings.push(...paramsUnused(opts.params, candidates));
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
  const budget = opts.budget;
  const small = rows.length < SMALL_TABLE_ROWS;
  const calibrate = opts.calibrate ?? (task === 'regression' ? 'none' : 'auto');
  if (task === 'regression' && calibrate !== 'none') throw Errors.usage(`calibration (${calibrate}) is for classifiers' probabilities, and "${target}" is a regression target: leave calibration at auto or none`);
  // Repeated cross-validation on a small table when a budget allows it: one partition's luck
  // decides too much there, and the search would overfit it (see README, "auto by table size").
  const reps = budget !== undefined && small && budget >= REPEAT_MIN_BUDGET ? SMALL_REPEATS : 1;
  const strata = strataFor(column(y, nOutputs, 0), task !== 'regression');
  const plan: CvPlan = { folds: [...folds], k: folds.length, reps };
  for (let r = 1; r < reps; r++) plan.folds.push(...stratifiedKFold(strata, k, seed + 7 * r, groups));
  const nested = opts.nested === true && (candidates.length > 1 || budget !== undefined);
  const started = performance.now();
  // Progress: the choice, then nested CV when asked for, then the final fit.
  const mainEnd = nested ? 0.45 : 0.9;
  const within = (from: number, to: number) => (p: Progress) => progress({ ...p, fraction: from + (to - from) * Math.min(1, p.fraction ?? 0) });
  const fixed = new Map(candidates.map((f) => [f.name, new Set(Object.keys(opts.params?.[f.name] ?? {}))]));
  const chooseOptions = {
    candidates,
    ...(budget !== undefined ? { budget } : {}),
    forceEnsemble: model === 'ensemble',
    ensemble: budget !== undefined || model === 'ensemble',
    fixed,
    small,
    selection,
  };
  const runner = new TrialRunner(ctx, rows, y, groups, plan);
  const chosen = await choose(runner, {
    ...chooseOptions,
    // The live leaderboard: a job page shows each candidate as its last fold is scored.
    onTrial: (c, fraction) => within(0, mainEnd)({ stage: '', fraction, candidate: { family: c.family, metrics: c.metrics, seconds: c.seconds } }),
    progress: within(0, mainEnd),
    prefix: '',
    started,
  });
  runner.release();
  const top = chosen.choice.trial;
  const best = chosen.bestSingle;
  const chosenResult: CandidateResult =
    chosen.choice.kind === 'ensemble' ? ensembleResult(runner, chosen.choice) : runner.result(top);
  const worse = worseThanMean(chosenResult);
  if (worse) warnings.push(worse);
  // Importance of the chosen model, from its folds' own fits on their validation rows (an
  // ensemble's: its members' fold fits with the final weights).
  progress({ stage: `${chosenResult.family} permutation importance`, fraction: mainEnd });
  const importance = permutationImportance(table, foldFits(chosen.choice), { task, nClasses, nOutputs }, seed, opts.signal);
  const dominant = dominantImportance(importance);
  if (dominant) {
    leakage.findings.push(dominant);
    warnings.push(leakageWarning(dominant));
  }
  // A flagged feature: how much of the score is it? The best single family once more with its
  // defaults without the flagged columns, on the same folds (one more CV; not after nested CV,
  // which costs k times). The importance flag asks for it too: a column 10× every other's is
  // either a leak or a predictor the model rests on alone, and the score without it tells a
  // clinician which (the warning still says to keep it when it is known before the outcome).
  const flagged = [...new Set([...screen.findings, ...(dominant ? [dominant] : [])].map((f) => f.column))];
  if (flagged.length > 0) {
    const reduced: Schema = { columns: schema.columns.map((c) => (flagged.includes(c.name) && c.role === 'feature' ? { ...c, role: 'ignored' as const, reason: 'flagged by the leakage check' } : c)) };
    if (nested) leakage.rescoreSkipped = 'not after nested cross-validation (k times the work)';
    else if (!reduced.columns.some((c) => c.role === 'feature')) leakage.rescoreSkipped = 'no other feature column';
    else {
      const rescoreStarted = performance.now();
      const stage = `${best.fam.name} without ${flagged.join(', ')}`;
      const quiet = (st: string) => (p: Progress) => progress({ ...p, stage: st, fraction: mainEnd });
      const [again] = await crossValidate({ ...ctx, schema: reduced }, [best.fam], rows, y, groups, folds, quiet, () => {}, `${stage}: `);
      const w = runner.result(best).metrics[selection]!.mean;
      const wo = again!.metrics[selection]!.mean;
      const limit = LIKELY_LEAK_DROP[selection] ?? Infinity;
      leakage.rescore = { metric: selection, with: w, without: wo, columns: flagged, likelyLeak: Number.isFinite(wo) && w - wo > limit };
      const lw = rescoreWarning(leakage.rescore);
      if (lw) warnings.push(lw);
      leakage.seconds += (performance.now() - rescoreStarted) / 1000;
    }
  }

  let nestedEstimate: NestedEstimate | undefined;
  if (nested) {
    // The whole choice again inside each outer fold (the search and the ensemble included, each
    // with the whole budget): its score is on rows the choice never saw. When the inner choice is
    // a family's defaults, its fit on the outer fold is the one the leaderboard already scored
    // (same rows, seed and tuning), so its score is taken from there rather than fitted again.
    const perFold: Record<string, number>[] = [];
    const chosenNames: Family[] = [];
    for (const [f, outer] of folds.entries()) {
      const yTrain = takeTargets(y, outer.train, nOutputs);
      const gTrain = groups && Array.from(outer.train, (i) => groups[i]!);
      const outerRows = take64(rows, outer.train);
      const inner = stratifiedKFold(strataFor(column(yTrain, nOutputs, 0), task !== 'regression'), k, seed + 7919 * (f + 1), gTrain);
      const innerRunner = new TrialRunner(ctx, outerRows, yTrain, gTrain, { folds: inner, k, reps: 1 });
      const span = (0.9 - mainEnd) / folds.length;
      const c = await choose(innerRunner, { ...chooseOptions, progress: within(mainEnd + f * span, mainEnd + (f + 1) * span), prefix: `nested ${f + 1}/${folds.length}: `, started: performance.now() });
      innerRunner.release();
      chosenNames.push(c.choice.kind === 'ensemble' ? 'ensemble' : c.choice.trial.fam.name);
      const same = c.choice.kind === 'single' && c.choice.trial.source === 'default' ? chosen.trials.find((t) => t.source === 'default' && t.fam === c.choice.trial.fam) : undefined;
      if (same) {
        perFold.push(same.perFold[f]!);
        continue;
      }
      const { pipeline, model: m } = await fitChoice(ctx, c.choice, outerRows, yTrain, gTrain, seed + f, () => {});
      perFold.push(scoreOutputs(ctx, takeTargets(y, outer.test, nOutputs), m.predict(transformTable(pipeline, table, take64(rows, outer.test)).x)).metrics);
    }
    nestedEstimate = { folds: folds.length, metrics: summarize(perFold, task), chosen: chosenNames };
  }

  // Calibration of a classifier, chosen and judged on out-of-fold predictions (calibrate.ts).
  const partitions = Array.from({ length: plan.reps }, (_, r) => plan.folds.slice(r * plan.k, (r + 1) * plan.k));
  const calibration = task === 'regression' ? undefined : chooseCalibration(top.oofs, y, nClasses, partitions, calibrate);
  if (calibration && calibration.report.method !== 'none' && calibration.report.after.log_loss > calibration.report.before.log_loss * CALIBRATION_WORSE) {
    const { before, after } = calibration.report;
    warnings.push({
      code: 'calibration_worse',
      message: `${calibration.report.method} calibration raised the cross-fitted log loss from ${before.log_loss.toFixed(4)} to ${after.log_loss.toFixed(4)}; calibrate none keeps the model's own probabilities`,
    });
  }
  if (calibration && calibration.report.asked === 'auto' && calibration.report.method === 'none') {
    const why = calibration.report.candidates.find((c) => c.error !== undefined)?.error ?? 'no method could be fitted';
    warnings.push({ code: 'not_calibrated', message: `the probabilities are not calibrated: no calibrator could be fitted on the out-of-fold predictions (${why})` });
  }
  // The delivered model's cross-validated scores: the calibrated out-of-fold predictions' when a
  // calibrator was chosen (each fold's calibrator fitted on the other folds only).
  let cvResult: CandidateResult = chosenResult;
  if (calibration?.calibrator) {
    const perFold = plan.folds.map((fold, i) => scoreOutputs(ctx, takeTargets(y, fold.test, nOutputs), takeTargets(calibration.calibrated[Math.floor(i / plan.k)]!, fold.test, nClasses)).metrics);
    cvResult = { ...chosenResult, metrics: summarize(perFold, task) };
  }

  const finalStage = `${chosenResult.family} on all rows`;
  progress({ stage: finalStage, fraction: 0.9 });
  const fitted = await fitChoice(ctx, chosen.choice, rows, y, groups, seed, within(0.9, 0.99));
  const finalModel: TrainedModel = calibration?.calibrator ? new CalibratedModel(fitted.model, calibration.calibrator) : fitted.model;
  const { pipeline } = fitted;
  const explainReference = featureMeans(transformTable(pipeline, table, rows).x);
  progress({ stage: 'done', fraction: 1 });
  const oof = calibration ? calibration.calibrated[0]! : top.oofs[0]!;
  const report: TrainResult['report'] = {
    ...(task === 'regression' ? regressionReport(column(y, nOutputs, 0), column(oof, nOutputs, 0)) : classificationReport(y, oof, nClasses)),
    importance,
    // Not on tiny tables, where a bin or a cell would be a record or two (PLOT_MIN_ROWS).
    ...(task === 'binary' && y.length >= PLOT_MIN_ROWS ? { reliability: reliabilityBins(y, column(oof, 2, 1), RELIABILITY_BINS, RELIABILITY_MIN_BIN_ROWS) } : {}),
    ...(task === 'regression' && y.length / nOutputs >= PLOT_MIN_ROWS ? { regression: targets.map((t, j) => regressionPlot(t, column(y, nOutputs, j), column(oof, nOutputs, j))) } : {}),
    // Kept with the version's evaluation when there is something to say: the page shows it beside the score.
    ...(leakage.findings.length > 0 ? { leakage } : {}),
    ...(calibration ? { calibration: calibration.report } : {}),
    ...(chosen.search ? { search: chosen.search } : {}),
  };
  // Every trial scored on every fold first, best first; then those the budget cut short.
  const rowsOfBoard = chosen.trials.map((t) => (t === top && chosen.choice.kind === 'single' ? { ...runner.result(t), params: fitted.params } : runner.result(t)));
  // The ensemble's row whether or not it won: a user sees what blending would have given.
  if (chosen.ensemble) rowsOfBoard.push(chosen.choice.kind === 'ensemble' ? chosenResult : ensembleResult(runner, chosen.ensemble));
  const full = (c: CandidateResult) => c.folds === undefined;
  const leaderboard = rowsOfBoard
    .sort((a, b) => Number(full(b)) - Number(full(a)) || score(b, selection) - score(a, selection))
    .slice(0, LEADERBOARD_MAX);
  return {
    task,
    target: nOutputs > 1 ? { column: targets.join(','), task } : enc.encoding,
    schema,
    pipeline,
    model: finalModel,
    explainReference,
    selection,
    leaderboard,
    cv: { folds: plan.folds.length, ...(plan.reps > 1 ? { repeats: plan.reps } : {}), metrics: cvResult.metrics, ...(cvResult.outputs ? { outputs: cvResult.outputs } : {}) },
    ...(nestedEstimate ? { nested: nestedEstimate } : {}),
    report,
    rows: { total: table.rowCount, used: rows.length, duplicates: dedup.duplicates },
    leakage,
    ...(calibration ? { calibration: calibration.report } : {}),
    ...(chosen.search ? { search: chosen.search } : {}),
    warnings,
  };
}

/**
 * A warning for each family `params` are given for that the training does not try (`candidates`):
 * not refused (a saved job spec may name several families), but not dropped silently either.
 */
export function paramsUnused(params: object | undefined, candidates: readonly { name: string }[]): Warning[] {
  return Object.keys(params ?? {})
    .filter((name) => !candidates.some((f) => f.name === name))
    .map((name) => ({ code: 'params_unused', message: `the parameters given for ${name} were not used: ${name} is not among the families this training tries (${candidates.map((f) => f.name).join(', ')})` }));
}

/** The leaderboard row of a chosen ensemble: its members and weights, its cross-fitted scores. */
function ensembleResult(runner: TrialRunner, choice: Extract<Choice, { kind: 'ensemble' }>): CandidateResult {
  // The blend is no trial of its own: its row names its members' trials.
  const r = runner.result(choice.trial);
  const { trial: _trial, searched: _searched, ...rest } = r;
  return {
    ...rest,
    family: 'ensemble',
    params: { members: choice.members.map((m) => `${m.fam.name}#${m.id}`).join(','), weights: choice.weights.map((w) => Math.round(w * 1e4) / 1e4) },
    seconds: choice.members.reduce((a, m) => a + m.seconds, 0),
  };
}

/** The fold fits importance is measured on: the chosen trial's, or the ensemble's members' blended. */
function foldFits(choice: Choice): FoldFit[] {
  if (choice.kind === 'single') return choice.trial.fits;
  const first = choice.members[0]!.fits;
  return first.map((fit, f) => ({ ...fit, model: new EnsembleModel(choice.members.map((m) => m.fits[f]!.model), choice.weights) }));
}

/** The choice fitted on `rows`: one family, or every ensemble member on one shared pipeline. */
async function fitChoice(
  ctx: Context,
  choice: Choice,
  rows: Int32Array,
  y: Float64Array,
  groups: string[] | undefined,
  seed: number,
  onProgress: ProgressFn,
): Promise<{ pipeline: FittedPipeline; params: Params; model: TrainedModel }> {
  if (choice.kind === 'single') return fitOn(ctx, choice.trial.fam, rows, y, groups, seed, onProgress, choice.trial.config);
  const pipeline = fitPipeline(ctx.table, ctx.schema, rows, ctx.pipeline);
  const x = transformTable(pipeline, ctx.table, rows).x;
  const models: TrainedModel[] = [];
  for (const m of choice.members) models.push((await trainFamily(ctx, m.fam, x, rows, y, groups, seed, onProgress, m.config)).model);
  const model = new EnsembleModel(models, choice.weights);
  return { pipeline, params: model.params, model };
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
