/**
 * Per-prediction feature contributions (SHAP values) in the model's raw output space:
 *
 *   base[k] + Σ_j contributions[(r * features + j) * outputs + k] = raw output k of row r
 *
 * exactly (up to floating-point rounding), where the raw output is the margin before the link:
 * binary, the log-odds of the positive class (one output); multiclass, the per-class margins
 * that go into the softmax (one output per class); regression, the value (one per output).
 *
 * - gbdt: exact path-dependent TreeSHAP (Lundberg, Erion & Lee 2018, Algorithm 2). The
 *   conditional expectation E[f(x) | x_S] walks the tree following x at splits on features in
 *   S and averaging both children, weighted by their share of the node's cover, elsewhere.
 *   `GbdtWeights` stores no per-node counts, so the cover is counted by routing the rows of
 *   `options.background` (the training rows, normally) through every tree with the model's own
 *   rule (`Math.fround(x) <= threshold` or NaN goes left). A tree carrying a `cover` array (one
 *   count per node, not written by the trainer today) is used as is. A node no background row
 *   reaches gives each child half its weight. Missing values follow the trees' missing
 *   direction (left), both for the explained rows and for the background.
 * - logistic / linear: the exact Shapley values of a linear function under feature
 *   independence: contribution = coef × (x − reference), base = intercept + coef · reference,
 *   with reference = the mean of each feature over `options.background` when given, else 0
 *   (then base = intercept). The weights store no training means, hence the option.
 * - other families (mlp, sequence families): `Errors.usage`.
 */
import { Errors, type Matrix } from '../core/index.js';
import type { GbdtModel, GbdtWeights, Tree } from './gbdt/index.js';
import type { LinearWeights } from './linear/index.js';
import type { TrainedModel } from './types.js';

/** What space the contributions add up in. */
export type ExplanationSpace = 'log-odds' | 'logit' | 'value';

export interface Explanation {
  rows: number;
  features: number;
  /** 1 for binary (the positive class), nClasses for multiclass, nOutputs for regression. */
  outputs: number;
  /** Expected raw output per output (what the contributions are measured from). */
  base: Float64Array;
  /** `rows × features × outputs`, row-major: row r, feature j, output k at `(r * features + j) * outputs + k`. */
  contributions: Float64Array;
  /** `log-odds` (binary), `logit` (multiclass margins before softmax), `value` (regression). */
  space: ExplanationSpace;
  /** `tree-shap` (path-dependent TreeSHAP) or `linear` (coef × (x − reference)). */
  method: 'tree-shap' | 'linear';
  /**
   * What the base is the expectation over: `background` (covers or means from
   * `options.background`), `stored-cover` (covers kept in the trees), or `zero` (linear without
   * background: contributions relative to x = 0).
   */
  reference: 'background' | 'stored-cover' | 'zero';
}

export interface ExplainOptions {
  /**
   * Rows that define "expected" (normally the training rows, after the fitted pipeline): gbdt
   * counts each node's cover from them (required unless the trees carry covers); linear models
   * take each feature's mean as the reference.
   */
  background?: Matrix;
}

/** Explains `model`'s raw outputs on the rows of `x`; see the module comment for the definitions. */
export function explain(model: TrainedModel, x: Matrix, options: ExplainOptions = {}): Explanation {
  if (model.sequence !== undefined || model.family === 'window-gbdt')
    throw Errors.usage(`explanations are not available for family ${model.family} yet`);
  if (x.cols !== model.nFeatures) throw Errors.badData('', `model expects ${model.nFeatures} feature columns, got ${x.cols}`);
  if (x.data.length !== x.rows * x.cols) throw Errors.badData('', `matrix holds ${x.data.length} values, not ${x.rows} × ${x.cols}`);
  const bg = options.background;
  if (bg !== undefined) {
    if (bg.cols !== model.nFeatures) throw Errors.badData('', `background has ${bg.cols} columns, the model ${model.nFeatures}`);
    if (bg.data.length !== bg.rows * bg.cols) throw Errors.badData('', `background holds ${bg.data.length} values, not ${bg.rows} × ${bg.cols}`);
    if (bg.rows < 1) throw Errors.badData('', 'background has no rows');
  }
  const space: ExplanationSpace = model.task === 'binary' ? 'log-odds' : model.task === 'multiclass' ? 'logit' : 'value';
  switch (model.family) {
    case 'gbdt':
      return { ...explainGbdt(weightsOf<GbdtWeights>(model), x, bg), space, method: 'tree-shap' };
    case 'logistic':
    case 'linear':
      return { ...explainLinear(weightsOf<LinearWeights>(model), x, bg), space, method: 'linear' };
    default:
      throw Errors.usage(`explanations are not available for family ${model.family} yet`);
  }
}

function weightsOf<W>(model: TrainedModel): W {
  // A GbdtModel exposes its weights; otherwise read them from the state (a copy for gbdt, the
  // same object for linear models: both read-only here).
  const direct = (model as Partial<GbdtModel>).weights;
  return (direct ?? model.toState().weights) as W;
}

type Core = Pick<Explanation, 'rows' | 'features' | 'outputs' | 'base' | 'contributions' | 'reference'>;

// ---------------------------------------------------------------- linear

function explainLinear(w: LinearWeights, x: Matrix, bg: Matrix | undefined): Core {
  const d = x.cols;
  const k = w.outputs;
  const ref = new Float64Array(d);
  if (bg !== undefined) {
    for (let i = 0; i < bg.rows; i++) for (let j = 0; j < d; j++) ref[j]! += bg.data[i * d + j]!;
    for (let j = 0; j < d; j++) {
      ref[j]! /= bg.rows;
      if (!Number.isFinite(ref[j]!)) throw Errors.badData('', `background feature ${j} has no finite mean (missing values?)`);
    }
  }
  const base = new Float64Array(k);
  for (let o = 0; o < k; o++) {
    let s = w.intercept[o]!;
    for (let j = 0; j < d; j++) s += w.coef[o * d + j]! * ref[j]!;
    base[o] = s;
  }
  const contributions = new Float64Array(x.rows * d * k);
  for (let r = 0; r < x.rows; r++)
    for (let j = 0; j < d; j++)
      for (let o = 0; o < k; o++) contributions[(r * d + j) * k + o] = w.coef[o * d + j]! * (x.data[r * d + j]! - ref[j]!);
  return { rows: x.rows, features: d, outputs: k, base, contributions, reference: bg !== undefined ? 'background' : 'zero' };
}

// ---------------------------------------------------------------- gbdt

/** The child a value goes to at an internal node: the model's own rule, NaN left. */
function childOf(t: Tree, node: number, v: number): number {
  return Math.fround(v) > t.threshold[node]! ? t.right[node]! : t.left[node]!;
}

/** Per-node counts of the background rows passing through each node of `t`. */
export function treeCover(t: Tree, bg: Matrix): Float64Array {
  const cover = new Float64Array(t.feature.length);
  for (let r = 0; r < bg.rows; r++) {
    const off = r * bg.cols;
    let node = 0;
    cover[0]!++;
    while (t.feature[node]! >= 0) {
      node = childOf(t, node, bg.data[off + t.feature[node]!]!);
      cover[node]!++;
    }
  }
  return cover;
}

/**
 * Each node's share of its parent's cover (1 at the root); a parent with no cover gives each
 * child 1/2. These are the weights of the conditional expectation TreeSHAP computes.
 */
export function coverFractions(t: Tree, cover: ArrayLike<number>): Float64Array {
  const frac = new Float64Array(t.feature.length);
  frac[0] = 1;
  for (let n = 0; n < t.feature.length; n++) {
    if (t.feature[n]! < 0) continue;
    const l = t.left[n]!;
    const r = t.right[n]!;
    const c = cover[n]!;
    if (c > 0) {
      frac[l] = cover[l]! / c;
      frac[r] = cover[r]! / c;
    } else {
      frac[l] = 0.5;
      frac[r] = 0.5;
    }
  }
  return frac;
}

function treeDepth(t: Tree): number {
  const depth = new Int32Array(t.feature.length);
  let max = 0;
  // Children have larger ids than their parent (checked on load), so one forward pass suffices.
  for (let n = 0; n < t.feature.length; n++) {
    if (t.feature[n]! < 0) continue;
    depth[t.left[n]!] = depth[n]! + 1;
    depth[t.right[n]!] = depth[n]! + 1;
    max = Math.max(max, depth[n]! + 1);
  }
  return max;
}

/** Σ over leaves of value × product of the fractions on its path: E[tree] over the cover. */
function expectedValue(t: Tree, frac: Float64Array): number {
  const weight = new Float64Array(t.feature.length);
  weight[0] = 1;
  let e = 0;
  for (let n = 0; n < t.feature.length; n++) {
    if (t.feature[n]! < 0) {
      e += weight[n]! * t.value[n]!;
      continue;
    }
    weight[t.left[n]!] = weight[n]! * frac[t.left[n]!]!;
    weight[t.right[n]!] = weight[n]! * frac[t.right[n]!]!;
  }
  return e;
}

function explainGbdt(w: GbdtWeights, x: Matrix, bg: Matrix | undefined): Core {
  const d = x.cols;
  const k = w.baseScore.length;
  const base = Float64Array.from(w.baseScore);
  const stored = w.trees.every((t) => {
    const c = (t as Tree & { cover?: unknown }).cover;
    return Array.isArray(c) && c.length === t.feature.length && c.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0);
  });
  if (!stored && bg === undefined)
    throw Errors.usage(
      'gbdt explanations need background rows (the training rows): the trees store no node counts to weigh their branches',
    );
  const prepared = w.trees.map((t) => {
    const cover = stored ? (t as Tree & { cover: number[] }).cover : treeCover(t, bg!);
    const frac = coverFractions(t, cover);
    return { t, frac, depth: treeDepth(t) };
  });
  for (const p of prepared) base[p.t.target]! += expectedValue(p.t, p.frac);
  const maxDepth = prepared.reduce((m, p) => Math.max(m, p.depth), 0);
  const shap = new TreeShap(maxDepth);
  const phi = new Float64Array(d);
  const contributions = new Float64Array(x.rows * d * k);
  for (let r = 0; r < x.rows; r++) {
    const off = r * d;
    for (const p of prepared) {
      if (p.t.feature[0]! < 0) continue; // a stump adds only to the base
      phi.fill(0);
      shap.run(p.t, p.frac, x.data, off, phi);
      const target = p.t.target;
      for (let j = 0; j < d; j++) contributions[(off + j) * k + target]! += phi[j]!;
    }
  }
  return { rows: x.rows, features: d, outputs: k, base, contributions, reference: stored ? 'stored-cover' : 'background' };
}

/**
 * Algorithm 2 of Lundberg et al. (2018), as in XGBoost's `RegTree::TreeShap`: one recursion
 * over the tree per row, keeping the "unique path" of features met so far with, for each, the
 * fraction of zero paths (feature absent: cover share) and one paths (present: does x follow
 * this branch) and the permutation weights. The paths of all recursion levels share flat
 * arrays, each level working on its own segment after its parent's.
 */
class TreeShap {
  private readonly feat: Int32Array;
  private readonly zero: Float64Array;
  private readonly one: Float64Array;
  private readonly pw: Float64Array;
  private t!: Tree;
  private frac!: Float64Array;
  private data!: Float64Array;
  private off = 0;
  private phi!: Float64Array;

  constructor(maxDepth: number) {
    const m = maxDepth + 2;
    // Level u's segment starts after the previous ones, u + 1 entries each (as in XGBoost).
    const size = (m * (m + 1)) / 2 + m;
    this.feat = new Int32Array(size);
    this.zero = new Float64Array(size);
    this.one = new Float64Array(size);
    this.pw = new Float64Array(size);
  }

  run(t: Tree, frac: Float64Array, data: Float64Array, off: number, phi: Float64Array): void {
    this.t = t;
    this.frac = frac;
    this.data = data;
    this.off = off;
    this.phi = phi;
    this.recurse(0, 0, 0, 1, 1, -1);
  }

  private recurse(node: number, depth: number, parentStart: number, parentZero: number, parentOne: number, parentFeature: number): void {
    const t = this.t;
    // This level's path segment starts right after the parent's (which has depth + 1 entries).
    const start = parentStart + depth + 1;
    this.copy(parentStart, start, depth + 1);
    this.extend(start, depth, parentZero, parentOne, parentFeature);
    const f = t.feature[node]!;
    if (f < 0) {
      const v = t.value[node]!;
      for (let i = 1; i <= depth; i++) {
        const s = this.unwoundSum(start, depth, i);
        this.phi[this.feat[start + i]!]! += s * (this.one[start + i]! - this.zero[start + i]!) * v;
      }
      return;
    }
    const hot = childOf(t, node, this.data[this.off + f]!);
    const cold = hot === t.left[node]! ? t.right[node]! : t.left[node]!;
    let incomingZero = 1;
    let incomingOne = 1;
    let pi = 0;
    for (; pi <= depth; pi++) if (this.feat[start + pi] === f) break;
    if (pi !== depth + 1) {
      incomingZero = this.zero[start + pi]!;
      incomingOne = this.one[start + pi]!;
      this.unwind(start, depth, pi);
      depth -= 1;
    }
    // A branch whose zero and one fractions are both 0 carries weight 0 for every subset (and
    // unwinding it later would divide 0 by 0): skip it. Background covers can be 0; trained
    // covers never are.
    const hz = this.frac[hot]! * incomingZero;
    if (hz !== 0 || incomingOne !== 0) this.recurse(hot, depth + 1, start, hz, incomingOne, f);
    const cz = this.frac[cold]! * incomingZero;
    if (cz !== 0) this.recurse(cold, depth + 1, start, cz, 0, f);
  }

  private copy(from: number, to: number, n: number): void {
    this.feat.copyWithin(to, from, from + n);
    this.zero.copyWithin(to, from, from + n);
    this.one.copyWithin(to, from, from + n);
    this.pw.copyWithin(to, from, from + n);
  }

  private extend(s: number, depth: number, zero: number, one: number, feature: number): void {
    const pw = this.pw;
    this.feat[s + depth] = feature;
    this.zero[s + depth] = zero;
    this.one[s + depth] = one;
    pw[s + depth] = depth === 0 ? 1 : 0;
    for (let i = depth - 1; i >= 0; i--) {
      pw[s + i + 1]! += (one * pw[s + i]! * (i + 1)) / (depth + 1);
      pw[s + i] = (zero * pw[s + i]! * (depth - i)) / (depth + 1);
    }
  }

  private unwind(s: number, depth: number, pi: number): void {
    const pw = this.pw;
    const one = this.one[s + pi]!;
    const zero = this.zero[s + pi]!;
    let next = pw[s + depth]!;
    for (let i = depth - 1; i >= 0; i--) {
      if (one !== 0) {
        const tmp = pw[s + i]!;
        pw[s + i] = (next * (depth + 1)) / ((i + 1) * one);
        next = tmp - (pw[s + i]! * zero * (depth - i)) / (depth + 1);
      } else {
        pw[s + i] = (pw[s + i]! * (depth + 1)) / (zero * (depth - i));
      }
    }
    for (let i = pi; i < depth; i++) {
      this.feat[s + i] = this.feat[s + i + 1]!;
      this.zero[s + i] = this.zero[s + i + 1]!;
      this.one[s + i] = this.one[s + i + 1]!;
    }
  }

  private unwoundSum(s: number, depth: number, pi: number): number {
    const pw = this.pw;
    const one = this.one[s + pi]!;
    const zero = this.zero[s + pi]!;
    let next = pw[s + depth]!;
    let total = 0;
    for (let i = depth - 1; i >= 0; i--) {
      if (one !== 0) {
        const tmp = (next * (depth + 1)) / ((i + 1) * one);
        total += tmp;
        next = pw[s + i]! - tmp * zero * ((depth - i) / (depth + 1));
      } else if (zero !== 0) {
        total += pw[s + i]! / zero / ((depth - i) / (depth + 1));
      }
    }
    return total;
  }
}
