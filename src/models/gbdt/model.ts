import { Errors, type Matrix, type Task } from '../../core/index.js';
import type { ModelState, Params, TrainedModel } from '../types.js';
import { sigmoid, softmaxInto } from './objective.js';
import { predictRaw, type Tree } from './tree.js';

export { sigmoid, softmaxInto };

/** How raw scores become predictions; names the ONNX post_transform the exporter should use. */
export type Objective = 'logistic' | 'softmax' | 'squared_error';

/**
 * `ModelState.weights` of a gbdt model, JSON-serializable. The prediction for output k is
 * `baseScore[k] + sum of value[leaf] over trees with target k`, then sigmoid (binary: the
 * positive class), softmax (multiclass) or identity (regression). A multi-output regression
 * (`ModelState.nOutputs` > 1) is one ensemble per output in the same layout: output k's trees
 * have target k, and each round grows one tree per output, as multiclass does per class.
 */
export interface GbdtWeights {
  format: 1;
  objective: Objective;
  /** Raw-score offset per output: one for binary, nClasses for multiclass, nOutputs for regression. */
  baseScore: number[];
  /** Boosting rounds kept (after early stopping); trees.length = rounds * baseScore.length. */
  rounds: number;
  /** Trees in round-major order (round r, output k at r * outputs + k). */
  trees: Tree[];
}

/** Number of raw-score outputs for a task: classes for multiclass, regression outputs (default 1), else 1. */
export function outputsFor(task: Task, nClasses: number, nOutputs = 1): number {
  return task === 'multiclass' ? nClasses : task === 'regression' ? nOutputs : 1;
}

/** A trained (or loaded) gradient-boosted tree ensemble. */
export class GbdtModel implements TrainedModel {
  readonly family = 'gbdt' as const;
  /** Regression outputs when more than one (one base score per output); absent means 1. */
  readonly nOutputs?: number;

  constructor(
    readonly task: Task,
    readonly nClasses: number,
    readonly nFeatures: number,
    readonly params: Params,
    readonly weights: GbdtWeights,
  ) {
    if (task === 'regression' && weights.baseScore.length > 1) this.nOutputs = weights.baseScore.length;
  }

  /**
   * Raw scores (margins) before the link function, `rows × outputs` row-major. Exposed so the
   * ONNX exporter can compare against TreeEnsemble outputs without post_transform.
   */
  predictMargin(x: Matrix): Float64Array {
    if (x.cols !== this.nFeatures)
      throw Errors.badData('', `gbdt model expects ${this.nFeatures} feature columns, got ${x.cols}`);
    const k = this.weights.baseScore.length;
    const out = new Float64Array(x.rows * k);
    for (let r = 0; r < x.rows; r++) for (let j = 0; j < k; j++) out[r * k + j] = this.weights.baseScore[j]!;
    for (const t of this.weights.trees) {
      const target = t.target;
      for (let r = 0; r < x.rows; r++) out[r * k + target] += predictRaw(t, x.data, r * x.cols);
    }
    return out;
  }

  /** Probabilities (`rows × nClasses`, binary as [1 - p, p]) or `rows × nOutputs` values for regression. */
  predict(x: Matrix): Float64Array {
    const margin = this.predictMargin(x);
    return transform(this.task, this.nClasses, margin, x.rows);
  }

  toState(): ModelState {
    return {
      family: 'gbdt',
      task: this.task,
      nClasses: this.nClasses,
      nFeatures: this.nFeatures,
      params: { ...this.params },
      // Deep copy so a caller mutating the state cannot change this model.
      weights: structuredClone(this.weights),
      // Only written for several outputs, so a single-output state is what it always was.
      ...(this.nOutputs !== undefined ? { nOutputs: this.nOutputs } : {}),
    };
  }
}

/** Applies the link function to raw scores (see `GbdtWeights`). */
export function transform(task: Task, nClasses: number, margin: Float64Array, rows: number): Float64Array {
  if (task === 'regression') return margin;
  if (task === 'binary') {
    const out = new Float64Array(rows * 2);
    for (let r = 0; r < rows; r++) {
      const p = sigmoid(margin[r]!);
      out[r * 2] = 1 - p;
      out[r * 2 + 1] = p;
    }
    return out;
  }
  const out = new Float64Array(rows * nClasses);
  for (let r = 0; r < rows; r++) softmaxInto(margin, r * nClasses, nClasses, out);
  return out;
}

const TASKS: readonly Task[] = ['binary', 'multiclass', 'regression'];
const OBJECTIVE: Record<Task, Objective> = { binary: 'logistic', multiclass: 'softmax', regression: 'squared_error' };

/**
 * Checks a state read back from disk before trusting it: shapes, ranges and that every tree is
 * a well-formed tree (children after parents, so prediction always terminates).
 */
export function loadState(state: ModelState): GbdtModel {
  const bad = (message: string) => Errors.manifest('gbdt', message);
  if (state === null || typeof state !== 'object') throw bad('state is not an object');
  if (state.family !== 'gbdt') throw bad(`state is for family "${String(state.family)}", not gbdt`);
  if (!TASKS.includes(state.task)) throw bad(`unknown task "${String(state.task)}"`);
  const { task, nClasses, nFeatures } = state;
  const classesOk =
    Number.isInteger(nClasses) &&
    (task === 'binary' ? nClasses === 2 : task === 'regression' ? nClasses === 1 : nClasses >= 2);
  if (!classesOk) throw bad(`nClasses ${String(nClasses)} does not fit task ${task}`);
  if (!Number.isInteger(nFeatures) || nFeatures < 1) throw bad('nFeatures must be a positive integer');
  const nOutputs = state.nOutputs ?? 1;
  if (!Number.isInteger(nOutputs) || nOutputs < 1 || (nOutputs > 1 && task !== 'regression'))
    throw bad(`nOutputs ${String(state.nOutputs)} does not fit task ${task}`);
  if (state.params === null || typeof state.params !== 'object') throw bad('params must be an object');
  const w = state.weights as Partial<GbdtWeights> | null;
  if (w === null || typeof w !== 'object') throw bad('weights must be an object');
  if (w.format !== 1) throw bad(`weights format ${String(w.format)} is not supported (expected 1)`);
  if (w.objective !== OBJECTIVE[task]) throw bad(`objective "${String(w.objective)}" does not fit task ${task}`);
  const k = outputsFor(task, nClasses, nOutputs);
  if (!isNumberArray(w.baseScore) || w.baseScore.length !== k) throw bad(`baseScore must be ${k} finite numbers`);
  if (!Number.isInteger(w.rounds) || w.rounds! < 0) throw bad('rounds must be a non-negative integer');
  if (!Array.isArray(w.trees) || w.trees.length !== w.rounds! * k)
    throw bad(`trees must be an array of rounds × outputs = ${w.rounds! * k} trees`);
  const trees: Tree[] = [];
  w.trees.forEach((t: unknown, i: number) => trees.push(checkTree(t, i, k, nFeatures, bad)));
  const weights: GbdtWeights = { format: 1, objective: w.objective, baseScore: [...w.baseScore], rounds: w.rounds!, trees };
  return new GbdtModel(task, nClasses, nFeatures, { ...state.params }, weights);
}

function isNumberArray(a: unknown): a is number[] {
  return Array.isArray(a) && a.every((v) => typeof v === 'number' && Number.isFinite(v));
}

function checkTree(t: unknown, i: number, outputs: number, nFeatures: number, bad: (m: string) => Error): Tree {
  const where = `trees[${i}]`;
  if (t === null || typeof t !== 'object') throw bad(`${where} is not an object`);
  const tr = t as Record<string, unknown>;
  const { target, feature, threshold, left, right, value } = tr;
  if (!Number.isInteger(target) || (target as number) < 0 || (target as number) >= outputs)
    throw bad(`${where}.target must be an integer in [0, ${outputs})`);
  for (const [name, a] of Object.entries({ feature, threshold, left, right, value })) {
    if (!isNumberArray(a)) throw bad(`${where}.${name} must be an array of finite numbers`);
  }
  const f = feature as number[];
  const n = f.length;
  if (n === 0) throw bad(`${where} has no nodes`);
  for (const [name, a] of Object.entries({ threshold, left, right, value })) {
    if ((a as number[]).length !== n) throw bad(`${where}.${name} has ${(a as number[]).length} entries, expected ${n}`);
  }
  const th = threshold as number[];
  const l = left as number[];
  const r = right as number[];
  for (let j = 0; j < n; j++) {
    const fj = f[j]!;
    if (fj === -1) {
      if (l[j] !== -1 || r[j] !== -1) throw bad(`${where} node ${j}: a leaf must have left = right = -1`);
      continue;
    }
    if (!Number.isInteger(fj) || fj < 0 || fj >= nFeatures) throw bad(`${where} node ${j}: feature must be -1 or in [0, ${nFeatures})`);
    if (Math.fround(th[j]!) !== th[j]) throw bad(`${where} node ${j}: threshold is not a float32 value`);
    for (const c of [l[j]!, r[j]!]) {
      // Children after their parent rules out cycles, so prediction always reaches a leaf.
      if (!Number.isInteger(c) || c <= j || c >= n) throw bad(`${where} node ${j}: child ids must be in (${j}, ${n})`);
    }
  }
  // Covers are optional (weights saved before explanations have none); when present they must
  // be one non-negative count per node, or explanations would weigh branches by garbage.
  const cover = tr['cover'];
  if (cover !== undefined) {
    if (!isNumberArray(cover) || cover.length !== n || cover.some((c) => c < 0))
      throw bad(`${where}.cover must be ${n} non-negative finite numbers (one per node)`);
  }
  return {
    target: target as number,
    feature: [...f],
    threshold: [...th],
    left: [...l],
    right: [...r],
    value: [...(value as number[])],
    ...(cover !== undefined ? { cover: [...(cover as number[])] } : {}),
  };
}
