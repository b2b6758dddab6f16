/**
 * Choosing the model of a table training: each candidate family with its defaults on every fold
 * (what `medfit train` does without a budget), then, with a budget, a search of each family's
 * `searchSpace` by successive halving on the same folds (search.ts), and an ensemble of the best
 * candidates when it scores better than the best one alone.
 *
 * Honest scores: every trial's fold score is of a model fitted with the pipeline refitted on that
 * fold's training rows. An ensemble's weights are cross-fitted: for each fold, chosen on the other
 * folds' out-of-fold predictions, then applied to this fold's, so the weights never saw the rows
 * they are scored on.
 */
import { Errors, higherIsBetter, type Matrix, type MetricName, type ProgressFn } from '../core/index.js';
import { LOG_LOSS_EPS } from '../eval/index.js';
import { fitPipeline, transformTable, type FittedPipeline, type Fold } from '../data/index.js';
import type { Family, ModelFamily, TrainedModel } from '../models/index.js';
import { concatArrays, scoreOutputs, summarize, take64, takeTargets, trainFamily, type CandidateResult, type Config, type Context, type PerOutputMetrics } from './cv.js';
import { ensembleSelect } from './ensemble.js';
import type { FoldFit } from './importance.js';
import { BRACKET_SIZE, maxBrackets, rungFolds, sampleConfigs, SMALL_BRACKET_SIZE, survivors } from './search.js';

/** Complete trials per family whose out-of-fold predictions (and fold fits) are kept as ensemble members. */
export const KEEP_PER_FAMILY = 3;

/** Trials listed for the leaderboard at most (the result keeps the best 100; a long search tries thousands). */
export const TRIALS_LISTED = 200;

/** Below this share of the budget for a whole bracket on every fold, a family skips halving. */
export const CHEAP_BRACKET_SHARE = 0.02;

/**
 * The folds every trial is scored on: `reps` repetitions of a `k`-fold partition, repetition r
 * being folds r·k … r·k + k − 1 (repeated cross-validation on small tables; one repetition
 * otherwise).
 */
export interface CvPlan {
  folds: Fold[];
  k: number;
  reps: number;
}

/** One configuration of one family and what its folds gave. */
export interface Trial {
  id: number;
  fam: ModelFamily;
  config: Config;
  source: 'default' | 'search';
  /** Each fold's metrics (by plan fold index), as far as evaluated. */
  perFold: Record<string, number>[];
  /** With several outputs, each fold's per-output metrics. */
  perOutput: Record<string, number>[][];
  /** Out-of-fold predictions per repetition (dropped when the trial is not kept). */
  oofs: Float64Array[];
  /** The first repetition's fold fits, for importance (dropped when not kept). */
  fits: FoldFit[];
  seconds: number;
}

/** What was chosen: one trial, or an ensemble of kept trials with its weights. */
export type Choice = { kind: 'single'; trial: Trial } | { kind: 'ensemble'; members: Trial[]; weights: number[]; trial: Trial };

/** A search's summary for the report. */
export interface SearchSummary {
  /** Seconds asked for (`--budget`). */
  budget: number;
  /** Seconds the choice took (defaults, search and ensemble; not the final fit). */
  seconds: number;
  /** Trials started, and those scored on every fold, by family. */
  trials: Record<string, { started: number; complete: number }>;
  /** Repetitions of the k-fold cross-validation every complete trial was scored on. */
  repeats: number;
  /** Why it ended: the budget was spent, or every family had run all the brackets it may (small tables, linear models). */
  ended: 'budget' | 'space';
}

/** How a choice is made. */
export interface ChooseOptions {
  candidates: ModelFamily[];
  /** Seconds for the search; absent: the defaults only (today's quick behaviour). */
  budget?: number;
  /** Build an ensemble of the kept trials even when it does not score better (`--model ensemble`). */
  forceEnsemble: boolean;
  /** Consider an ensemble at all. */
  ensemble: boolean;
  /** Keys the user set, by family (never searched). */
  fixed: Map<Family, Set<string>>;
  small: boolean;
  selection: MetricName;
  /**
   * Reports a trial scored on every fold that is its family's best so far (the live leaderboard
   * keeps one row per family), with the run's progress then; not for nested inner choices.
   */
  onTrial?: (c: CandidateResult, fraction: number) => void;
  progress: ProgressFn;
  /** Stage prefix (nested CV's outer fold). */
  prefix: string;
  /** Monotonic start of the whole run (performance.now()). */
  started: number;
}

/** The result of choosing: the choice, every trial, and the search summary when there was a budget. */
export interface Chosen {
  choice: Choice;
  trials: Trial[];
  /** The best single trial (the ensemble's best member, or the choice itself). */
  bestSingle: Trial;
  /** The ensemble that was built, chosen or not (it competes on the leaderboard either way). */
  ensemble?: Extract<Choice, { kind: 'ensemble' }>;
  search?: SearchSummary;
}

/** Evaluates trials fold by fold on cached fold features; see the module comment. */
export class TrialRunner {
  private readonly cache = new Map<number, { pipeline: FittedPipeline; x: Matrix; xt: Matrix; trainRows: Int32Array; testRows: Int32Array; yTrain: Float64Array; yTest: Float64Array; gTrain?: string[] }>();
  private next = 0;
  readonly width: number;

  constructor(
    readonly ctx: Context,
    readonly rows: Int32Array,
    readonly y: Float64Array,
    readonly groups: string[] | undefined,
    readonly plan: CvPlan,
  ) {
    this.width = ctx.task === 'regression' ? ctx.nOutputs : ctx.nClasses;
  }

  newTrial(fam: ModelFamily, config: Config, source: Trial['source']): Trial {
    return { id: this.next++, fam, config, source, perFold: [], perOutput: [], oofs: [], fits: [], seconds: 0 };
  }

  /** Fold `f`'s fitted pipeline and features, fitted once and shared by every trial. */
  private fold(f: number) {
    let c = this.cache.get(f);
    if (!c) {
      const fold = this.plan.folds[f]!;
      const trainRows = take64(this.rows, fold.train);
      const testRows = take64(this.rows, fold.test);
      const pipeline = fitPipeline(this.ctx.table, this.ctx.schema, trainRows, this.ctx.pipeline);
      c = {
        pipeline,
        x: transformTable(pipeline, this.ctx.table, trainRows).x,
        xt: transformTable(pipeline, this.ctx.table, testRows).x,
        trainRows,
        testRows,
        yTrain: takeTargets(this.y, fold.train, this.ctx.nOutputs),
        yTest: takeTargets(this.y, fold.test, this.ctx.nOutputs),
        ...(this.groups ? { gTrain: Array.from(fold.train, (i) => this.groups![i]!) } : {}),
      };
      this.cache.set(f, c);
    }
    return c;
  }

  /** Frees the cached fold features. */
  release(): void {
    this.cache.clear();
  }

  /**
   * Scores `trial` on its next fold. Returns false, scoring nothing, when `signal` (a search's
   * deadline) stopped the fit; a cancellation of the run itself is thrown.
   */
  async step(trial: Trial, onProgress?: ProgressFn, signal?: AbortSignal): Promise<boolean> {
    const f = trial.perFold.length;
    const { plan, ctx } = this;
    const d = this.fold(f);
    const started = performance.now();
    let model: TrainedModel;
    try {
      ({ model } = await trainFamily(ctx, trial.fam, d.x, d.trainRows, d.yTrain, d.gTrain, ctx.seed + f, onProgress, trial.config, signal));
    } catch (e) {
      if (ctx.signal?.aborted || !signal?.aborted) throw e;
      return false;
    }
    const pred = model.predict(d.xt);
    const rep = Math.floor(f / plan.k);
    const fold = plan.folds[f]!;
    const oof = (trial.oofs[rep] ??= new Float64Array(this.rows.length * this.width));
    for (let i = 0; i < fold.test.length; i++) oof.set(pred.subarray(i * this.width, (i + 1) * this.width), fold.test[i]! * this.width);
    if (rep === 0) trial.fits.push({ pipeline: d.pipeline, model, rows: d.testRows, y: d.yTest });
    const scored = scoreOutputs(ctx, d.yTest, pred);
    trial.perFold.push(scored.metrics);
    trial.perOutput.push(scored.outputs);
    trial.seconds += (performance.now() - started) / 1000;
    return true;
  }

  /** The leaderboard row of a trial (scored on the folds evaluated so far). */
  result(trial: Trial): CandidateResult {
    const { ctx } = this;
    const outputs: PerOutputMetrics | undefined =
      ctx.nOutputs > 1 ? Object.fromEntries(ctx.targets.map((t, j) => [t, summarize(trial.perOutput.map((o) => o[j]!), ctx.task)])) : undefined;
    return {
      family: trial.fam.name,
      params: trial.config.params,
      metrics: summarize(trial.perFold, ctx.task),
      ...(outputs ? { outputs } : {}),
      seconds: trial.seconds,
      trial: trial.id,
      ...(trial.perFold.length < this.plan.folds.length ? { folds: trial.perFold.length } : {}),
      ...(trial.source === 'search' ? { searched: true } : {}),
    };
  }

  /** Mean selection score (higher is better) over the trial's first `folds` folds; NaN folds skipped. */
  score(trial: Trial, selection: MetricName, folds = trial.perFold.length): number {
    const v = trial.perFold.slice(0, folds).map((m) => m[selection]!).filter((x) => !Number.isNaN(x));
    if (v.length === 0) return -Infinity;
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return higherIsBetter(selection) ? mean : -mean;
  }
}

/**
 * Chooses the model: the candidates' defaults on every fold; with a budget, the search and an
 * ensemble; see the module comment.
 */
export async function choose(runner: TrialRunner, o: ChooseOptions): Promise<Chosen> {
  const { plan } = runner;
  const total = plan.folds.length;
  const started = performance.now();
  const budgetMs = o.budget !== undefined ? o.budget * 1000 : undefined;
  const elapsed = () => performance.now() - started;
  // The last fraction reported, for the live leaderboard's events (which must not move it back).
  let lastFraction = 0;
  const progress: ProgressFn = (p) => {
    if (p.fraction !== undefined) lastFraction = p.fraction;
    o.progress(p);
  };
  const fraction = (done: number, all: number) => (budgetMs !== undefined ? Math.min(0.95, elapsed() / budgetMs) : done / all);
  const trials: Trial[] = [];
  // Bounded however long the budget: the best KEEP_PER_FAMILY complete trials of each family (their
  // predictions and fits), a count of the rest, and the TRIALS_LISTED best rows for the leaderboard.
  const kept = new Map<Family, Trial[]>();
  const completed = new Map<Family, number>();
  let best: Trial | undefined;
  // The defaults, on every fold, whatever the budget: the search can only add to them.
  const defaults = o.candidates.map((fam) => runner.newTrial(fam, { params: runner.ctx.params.get(fam.name)!, tune: true }, 'default'));
  let done = 0;
  for (const trial of defaults) {
    trials.push(trial);
    for (let f = 0; f < total; f++) {
      const stage = `${o.prefix}${trial.fam.name} fold ${f + 1}/${total}`;
      await runner.step(trial, (p) => progress({ ...p, stage, fraction: fraction(done + (p.fraction ?? 0), defaults.length * total) }));
      done++;
      progress({ stage, fraction: fraction(done, defaults.length * total) });
    }
    finish(trial);
  }

  /** Searched trials started, by family. */
  const counts: Record<string, number> = {};
  let ended: SearchSummary['ended'] = 'budget';
  if (budgetMs !== undefined) {
    // The search, until the budget is spent: the family that has had the least time runs its next
    // bracket, so a slow family cannot starve a fast one nor the other way round.
    const deadline = o.started + budgetMs;
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), Math.max(0, deadline - performance.now()));
    timer.unref?.();
    // A fit running at the deadline is stopped; a cancellation of the run still reaches it.
    const searchSignal = runner.ctx.signal ? AbortSignal.any([runner.ctx.signal, stop.signal]) : stop.signal;
    const spent = new Map<Family, number>();
    const brackets = new Map<Family, number>();
    // Each family's seconds and folds so far: their ratio estimates its next fold.
    const fitted = new Map<Family, { seconds: number; folds: number }>();
    const perFold = new Map<Family, number>();
    for (const t of defaults) {
      spent.set(t.fam.name, 0);
      fitted.set(t.fam.name, { seconds: t.seconds, folds: Math.max(1, t.perFold.length) });
      perFold.set(t.fam.name, t.seconds / Math.max(1, t.perFold.length));
    }
    const searchable = o.candidates.filter((f) => f.searchSpace !== undefined);
    const rungs = rungFolds(total);
    try {
      for (;;) {
        const open = searchable.filter((f) => (brackets.get(f.name) ?? 0) < maxBrackets(f, o.small));
        if (open.length === 0) {
          ended = 'space';
          break;
        }
        const fam = open.reduce((a, b) => (spent.get(b.name)! < spent.get(a.name)! ? b : a));
        // A fold of this family would end after the deadline: nothing more fits.
        if (performance.now() + perFold.get(fam.name)! * 1000 > deadline) break;
        const b = brackets.get(fam.name) ?? 0;
        brackets.set(fam.name, b + 1);
        const size = o.small ? SMALL_BRACKET_SIZE : BRACKET_SIZE;
        const base = runner.ctx.params.get(fam.name)!;
        const configs = sampleConfigs(fam.searchSpace!(runner.ctx.task, runner.rows.length), base, size, b * size, runner.ctx.seed + 101 * (o.candidates.indexOf(fam) + 1), o.fixed.get(fam.name));
        const before = performance.now();
        const configsRun = configs.map((params) => {
          // Every sampled point within the family's own limits, as a user's --param would be.
          const checked = fam.parseParams(params, runner.ctx.task, runner.rows.length);
          const t = runner.newTrial(fam, { params: checked, tune: false }, 'search');
          trials.push(t);
          return t;
        });
        let alive = configsRun;
        counts[fam.name] = (counts[fam.name] ?? 0) + configsRun.length;
        let stopped = false;
        // A family whose whole bracket on every fold costs under 2% of the budget (a linear model)
        // is scored on every fold at once: halving would only add the noise of one fold's score.
        const schedule = perFold.get(fam.name)! * size * total < CHEAP_BRACKET_SHARE * o.budget! ? [total] : rungs;
        for (const [r, upto] of schedule.entries()) {
          for (const t of alive) {
            while (t.perFold.length < upto) {
              if (performance.now() + perFold.get(fam.name)! * 1000 > deadline) {
                stopped = true;
                break;
              }
              const stage = `${o.prefix}search: ${fam.name} #${t.id} fold ${t.perFold.length + 1}/${total}`;
              const ok = await runner.step(t, (p) => progress({ ...p, stage, fraction: fraction(0, 1) }), searchSignal);
              if (!ok) {
                stopped = true;
                break;
              }
              progress({ stage, fraction: fraction(0, 1) });
            }
            if (stopped) break;
          }
          if (stopped) break;
          if (r === schedule.length - 1) {
            for (const t of alive) finish(t);
            break;
          }
          // The best third go on, compared on the same folds; the others' fits are let go.
          const ranked = [...alive].sort((a, c) => runner.score(c, o.selection, upto) - runner.score(a, o.selection, upto) || a.id - c.id);
          const keep = survivors(ranked.length);
          for (const t of ranked.slice(keep)) drop(t);
          alive = ranked.slice(0, keep);
        }
        const secs = (performance.now() - before) / 1000;
        spent.set(fam.name, spent.get(fam.name)! + secs);
        // The defaults' folds seeded the estimate; their tuning grid makes them slower than any
        // searched point, so from the first bracket on only searched points count.
        if (b === 0) fitted.set(fam.name, { seconds: 0, folds: 0 });
        const f = fitted.get(fam.name)!;
        for (const t of configsRun) {
          f.seconds += t.seconds;
          f.folds += t.perFold.length;
        }
        if (f.folds > 0) perFold.set(fam.name, f.seconds / f.folds);
        prune();
        if (stopped) {
          for (const t of alive) if (t.perFold.length < total) drop(t);
          break;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  const bestSingle = best!;
  let choice: Choice = { kind: 'single', trial: bestSingle };
  const pool = [...kept.values()].flat().filter((t) => t.oofs.length === plan.reps);
  let ensemble: Extract<Choice, { kind: 'ensemble' }> | undefined;
  if (o.ensemble && pool.length >= 2) {
    ensemble = crossFitEnsemble(runner, pool);
    if (o.forceEnsemble || runner.score(ensemble.trial, o.selection) > runner.score(bestSingle, o.selection)) choice = ensemble;
  } else if (o.forceEnsemble) {
    throw Errors.usage('an ensemble needs at least two candidate models, and only one could be scored on every fold');
  }
  progress({ stage: `${o.prefix}chosen`, fraction: budgetMs !== undefined ? 0.95 : 1 });
  const search: SearchSummary | undefined =
    o.budget !== undefined
      ? {
          budget: o.budget,
          seconds: (performance.now() - started) / 1000,
          trials: Object.fromEntries(
            o.candidates.map((f) => [
              f.name,
              {
                started: (counts[f.name] ?? 0) + 1,
                complete: completed.get(f.name) ?? 0,
              },
            ]),
          ),
          repeats: plan.reps,
          ended,
        }
      : undefined;
  return { choice, trials, bestSingle, ...(ensemble ? { ensemble } : {}), ...(search ? { search } : {}) };

  /** A trial scored on every fold: reported, and kept if among its family's best. */
  function finish(trial: Trial): void {
    const name = trial.fam.name;
    completed.set(name, (completed.get(name) ?? 0) + 1);
    if (!best || runner.score(trial, o.selection) > runner.score(best, o.selection)) best = trial;
    const mine = kept.get(name) ?? [];
    if (mine.every((t) => runner.score(trial, o.selection) > runner.score(t, o.selection))) o.onTrial?.(runner.result(trial), lastFraction);
    mine.push(trial);
    if (mine.length > KEEP_PER_FAMILY) {
      const worst = mine.reduce((a, b) => (runner.score(b, o.selection) < runner.score(a, o.selection) ? b : a));
      drop(worst);
      mine.splice(mine.indexOf(worst), 1);
    }
    kept.set(name, mine);
  }

  /**
   * Forgets all but the TRIALS_LISTED best trials (every fold first, then by score), the defaults
   * and the kept ones: what the leaderboard would show is unchanged, and memory stays bounded.
   */
  function prune(): void {
    if (trials.length <= 2 * TRIALS_LISTED) return;
    const keep = new Set([...defaults, ...[...kept.values()].flat()]);
    const ranked = trials
      .filter((t) => !keep.has(t))
      .sort((a, b) => Number(b.perFold.length === total) - Number(a.perFold.length === total) || runner.score(b, o.selection) - runner.score(a, o.selection));
    const listed = new Set([...keep, ...ranked.slice(0, TRIALS_LISTED)]);
    trials.splice(0, trials.length, ...trials.filter((t) => listed.has(t)));
  }
}

/** Lets a trial's predictions and fitted models go (its scores stay on the leaderboard). */
function drop(t: Trial): void {
  t.oofs = [];
  t.fits = [];
}

/**
 * The ensemble of `pool` with cross-fitted weights: for each fold, Caruana's selection on the
 * other folds' out-of-fold rows, applied to this fold's rows. Its trial carries the resulting
 * out-of-fold predictions and fold scores, comparable with any single trial's; the weights
 * returned are chosen on every out-of-fold row (those the final ensemble uses).
 */
export function crossFitEnsemble(runner: TrialRunner, pool: Trial[]): Extract<Choice, { kind: 'ensemble' }> {
  const { plan, ctx, width, y } = runner;
  const n = runner.rows.length;
  const objective = (yy: Float64Array) => (pred: Float64Array) => fitScore(ctx.task, yy, pred, width);
  const trial = runner.newTrial(pool[0]!.fam, { params: {}, tune: false }, 'search');
  for (let r = 0; r < plan.reps; r++) {
    const oof = new Float64Array(n * width);
    for (let k = 0; k < plan.k; k++) {
      const fold = plan.folds[r * plan.k + k]!;
      const { weights } = ensembleSelect(
        pool.map((t) => takeTargets(t.oofs[r]!, fold.train, width)),
        objective(takeTargets(y, fold.train, ctx.nOutputs)),
        { width },
      );
      const pred = blend(pool.map((t) => takeTargets(t.oofs[r]!, fold.test, width)), weights);
      for (let i = 0; i < fold.test.length; i++) oof.set(pred.subarray(i * width, (i + 1) * width), fold.test[i]! * width);
      const scored = scoreOutputs(ctx, takeTargets(y, fold.test, ctx.nOutputs), pred);
      trial.perFold[r * plan.k + k] = scored.metrics;
      trial.perOutput[r * plan.k + k] = scored.outputs;
    }
    trial.oofs.push(oof);
  }
  // The final weights, on every out-of-fold row of every repetition.
  const all = (t: Trial) => concatArrays(t.oofs);
  const { weights } = ensembleSelect(pool.map(all), objective(concatArrays(trial.oofs.map(() => y))), { width });
  trial.seconds = pool.reduce((a, t) => a + t.seconds, 0);
  // Fold fits of the ensemble (for importance): each fold's members with that fold's weights would
  // need the per-fold weights; the final weights on each fold's members are close enough for a
  // ranking of columns and are what the model uses.
  const members = pool.filter((_, i) => weights[i]! > 0);
  const w = weights.filter((v) => v > 0);
  return { kind: 'ensemble', members, weights: w, trial };
}

/**
 * What Caruana's selection maximises: minus the log loss for classification (a proper score, so
 * the blend stays calibrated), minus the mean squared error for regression.
 */
function fitScore(task: Context['task'], y: Float64Array, pred: Float64Array, width: number): number {
  let s = 0;
  if (task === 'regression') {
    for (let i = 0; i < y.length; i++) s += (pred[i]! - y[i]!) ** 2;
    return -s / y.length;
  }
  for (let i = 0; i < y.length; i++) s += Math.log(Math.max(LOG_LOSS_EPS, pred[i * width + y[i]!]!));
  return s / y.length;
}

/** The weighted sum of row-major prediction arrays. */
function blend(preds: Float64Array[], weights: number[]): Float64Array {
  const out = new Float64Array(preds[0]!.length);
  for (const [i, p] of preds.entries()) {
    const w = weights[i]!;
    if (w === 0) continue;
    for (let j = 0; j < out.length; j++) out[j]! += w * p[j]!;
  }
  return out;
}
