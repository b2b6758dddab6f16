/**
 * Permutation importance on out-of-fold predictions (Breiman 2001; scikit-learn's
 * `permutation_importance` on held-out rows): for each cross-validation fold, with the model and
 * the pipeline fitted on that fold's training rows, one raw input column at a time is shuffled
 * among the fold's validation rows, the fold's fitted pipeline is applied again, and the drop of
 * the score is the column's importance. Training rows are never scored or shuffled: a column the
 * model has memorised would look important on them and not on new patients.
 */
import { Errors, Rng, type Matrix, type Task } from '../core/index.js';
import { transformTable, type FeatureStep, type FittedPipeline, type Table } from '../data/index.js';
import { importanceMetric, importanceScore, summarizeImportance, type PermutationImportance } from '../eval/index.js';
import type { TrainedModel } from '../models/index.js';

/** Shuffles per column and fold: enough for a stable mean on small tables, cheap on large ones. */
export const IMPORTANCE_REPEATS = 3;

/**
 * Validation rows scored per fold, a seeded sample when the fold has more: the cost of
 * importance is columns × repeats × (this many rows' transform and prediction) per fold, so it
 * stays bounded however large the table; a few thousand rows measure an AUROC or R² drop to
 * about ±0.01.
 */
export const IMPORTANCE_MAX_ROWS = 2000;

/** What one fold leaves for importance: its fitted pipeline and model, and its validation rows. */
export interface FoldFit {
  pipeline: FittedPipeline;
  model: TrainedModel;
  /** Table rows of the fold's validation (test) side: never rows the pipeline or model saw. */
  rows: Int32Array;
  /** Their targets, rows × outputs. */
  y: Float64Array;
}

/** The task's shape, as trainTable knows it. */
export interface ImportanceTask {
  task: Task;
  nClasses: number;
  nOutputs: number;
}

/**
 * Permutation importance of every raw column the folds' pipelines use (a column the pipeline
 * ignores has no step, so no entry), from the drops over folds × {@link IMPORTANCE_REPEATS}.
 * Seeded: the same folds and seed give the same numbers.
 */
export function permutationImportance(table: Table, fits: readonly FoldFit[], t: ImportanceTask, seed: number, signal?: AbortSignal): PermutationImportance {
  const drops = new Map<string, number[]>();
  for (const [f, fit] of fits.entries()) {
    signal?.throwIfAborted();
    for (const [column, d] of foldDrops(table, fit, t, new Rng(seed + 7919 * (f + 1)))) {
      let list = drops.get(column);
      if (!list) drops.set(column, (list = []));
      for (const v of d) list.push(v);
    }
  }
  return summarizeImportance(importanceMetric(t.task), IMPORTANCE_REPEATS, drops);
}

/**
 * One fold's drops by raw column ({@link IMPORTANCE_REPEATS} each; NaN when the fold's score is
 * undefined, e.g. AUROC on one class). The shuffled column goes through the fold's own fitted
 * step for that column, as a new record's value would; the other columns' features are those
 * of the unshuffled rows.
 */
export function foldDrops(table: Table, fit: FoldFit, t: ImportanceTask, rng: Rng): Map<string, number[]> {
  const { pipeline, model } = fit;
  const { rows, y } = sample(fit, t.task === 'regression' ? t.nOutputs : 1, rng);
  const x = transformTable(pipeline, table, rows).x;
  const base = importanceScore(t.task, y, model.predict(x), t.nClasses, t.nOutputs);
  const out = new Map<string, number[]>();
  const shuffled = new Int32Array(rows.length);
  const saved = new Float64Array(x.rows * x.cols);
  if (pipeline.steps.reduce((a, s) => a + stepWidth(s), 0) !== pipeline.features.length) {
    throw Errors.internal('permutation importance: the pipeline\'s steps do not account for its features');
  }
  let offset = 0;
  for (const step of pipeline.steps) {
    const w = stepWidth(step);
    // The step alone, as a one-column pipeline: the same fitted numbers, applied to the shuffled rows.
    const single: FittedPipeline = { version: pipeline.version, steps: [step], features: pipeline.features.slice(offset, offset + w) };
    const d: number[] = [];
    for (let r = 0; r < IMPORTANCE_REPEATS; r++) {
      shuffled.set(rows);
      rng.shuffle(shuffled);
      const part = transformTable(single, table, shuffled).x;
      swapBlock(x, part, offset, saved);
      d.push(Number.isNaN(base) ? NaN : base - importanceScore(t.task, y, model.predict(x), t.nClasses, t.nOutputs));
      swapBlock(x, part, offset, saved, true);
    }
    out.set(step.column, d);
    offset += w;
  }
  return out;
}

/** The fold's validation rows, or a seeded sample of {@link IMPORTANCE_MAX_ROWS} of them in table order. */
function sample(fit: FoldFit, width: number, rng: Rng): { rows: Int32Array; y: Float64Array } {
  if (fit.rows.length <= IMPORTANCE_MAX_ROWS) return { rows: fit.rows, y: fit.y };
  const pick = new Int32Array(fit.rows.length);
  for (let i = 0; i < pick.length; i++) pick[i] = i;
  rng.shuffle(pick);
  const chosen = pick.subarray(0, IMPORTANCE_MAX_ROWS).sort();
  const rows = new Int32Array(chosen.length);
  const y = new Float64Array(chosen.length * width);
  for (let k = 0; k < chosen.length; k++) {
    rows[k] = fit.rows[chosen[k]!]!;
    y.set(fit.y.subarray(chosen[k]! * width, (chosen[k]! + 1) * width), k * width);
  }
  return { rows, y };
}

/**
 * Puts `part`'s columns into `x` at `offset` (keeping what was there in `saved`), or, with
 * `restore`, puts the saved columns back: one block of features changes, the rest stay.
 */
function swapBlock(x: Matrix, part: Matrix, offset: number, saved: Float64Array, restore = false): void {
  const w = part.cols;
  for (let i = 0; i < x.rows; i++) {
    for (let j = 0; j < w; j++) {
      const at = i * x.cols + offset + j;
      if (restore) x.data[at] = saved[i * w + j]!;
      else {
        saved[i * w + j] = x.data[at]!;
        x.data[at] = part.data[i * w + j]!;
      }
    }
  }
}

/**
 * Features a fitted step writes (the data room's own count, from the step's public shape): one
 * per numeric or boolean column, one per kept category, one per datetime part, and the missing
 * indicator when there is one.
 */
function stepWidth(step: FeatureStep): number {
  const base = step.kind === 'categorical' ? step.categories.length : step.kind === 'datetime' ? step.parts.length : 1;
  return base + (step.indicator ? 1 : 0);
}
