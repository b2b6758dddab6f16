/**
 * Per-prediction feature contributions (Shapley values) in the model's raw output space:
 *
 *   base[k] + Σ_j contributions[(r * players + j) * outputs + k] = raw output k of row r
 *
 * exactly (up to floating-point rounding), where the raw output is the margin before the link:
 * binary, the log-odds of the positive class (one output); multiclass, the per-class margins
 * that go into the softmax (one output per class); regression, the value (one per output).
 * The players are the model's features, or groups of them when `options.groups` is given (an
 * input column and the one-hot or indicator features the pipeline made of it).
 *
 * - gbdt: exact path-dependent TreeSHAP (Lundberg, Erion & Lee 2018, Algorithm 2). The
 *   conditional expectation E[f(x) | x_S] walks the tree following x at splits on features in
 *   S and averaging both children, weighted by their share of the node's cover, elsewhere. The
 *   trainer stores each node's cover (training rows reaching it) in the trees, and those are
 *   used unless `options.background` is given; trees saved before that carry none and need it.
 *   From a background, the cover is counted by routing its rows (the training rows, normally)
 *   through every tree with the model's own rule (`Math.fround(x) <= threshold` or NaN goes
 *   left). A node no row
 *   reaches gives each child half its weight. Missing values follow the trees' missing direction
 *   (left), both for the explained rows and for the background. With groups, a group's value is
 *   the sum of its features' values.
 * - logistic / linear: the exact Shapley values of a linear function under feature
 *   independence: contribution = coef × (x − reference), base = intercept + coef · reference,
 *   with reference = `options.reference` (the training means the manifest keeps), else the mean
 *   of each feature over `options.background`, else 0 (then base = intercept). The pipeline
 *   standardises numeric columns, so for those this is coefficient × standardised value (less
 *   its training mean, which is 0 up to imputation). Groups sum, which for a linear function is
 *   also the group's own Shapley value.
 * - mlp: a sampling estimate of the baseline Shapley values: the game is v(S) = f(x on S,
 *   reference elsewhere), with the reference from `options.reference` (or the background's
 *   means), so base = f(reference), the raw output at the mean row (not the mean raw output). It
 *   averages `options.permutations` permutations of the players, drawn from a seeded `Rng`
 *   (the same permutations for every row and every call with the same seed: reproducible, and a
 *   row's estimate does not depend on the rows sent with it) in antithetic pairs (a permutation
 *   and its reverse, which makes the estimate exact for any game of at most pairwise
 *   interactions). Each permutation walks from the reference to x, switching one player at a
 *   time, and credits each switch with the change of f; the changes telescope, so the
 *   contributions sum to f(x) − f(reference) exactly, whatever the sampling error of each. Every
 *   coalition point of a row goes into one matrix for one forward pass, or a few when there are
 *   more than `MAX_BATCH_VALUES` values or `MAX_BATCH_OPS` multiply-adds of them. The raw
 *   output is read from the network's last layer before the softmax: multiclass, the class
 *   logits; binary, logit(positive) − logit(negative), which is
 *   exactly log(p / (1 − p)) of the probability the model gives, computed without forming p, so
 *   it needs no clipping and stays finite where p rounds to 0 or 1. With groups, a group's
 *   features switch together (a one-hot column moves from the reference to x as one player, so
 *   no point has a mixture of categories no record could have, and the cost grows with the
 *   columns, not the features).
 * - a binary gbdt or logistic model calibrated by Platt scaling on its logit (the usual default):
 *   its log-odds are a · (the base's log-odds) + b, so its base's exact method, scaled.
 * - other ensembles and calibrated models (src/automl's `EnsembleModel`, family `ensemble`, and
 *   `CalibratedModel`, which keeps its base's family and exposes `calibrator`): the same sampling
 *   estimate, on the model's own output: an exact method of a member's or the base's family
 *   would explain that model's margin, not the average of the members' probabilities or the
 *   calibrated probability the model returns. The raw output is read from `predict`: binary,
 *   log(p) − log(1 − p) of the positive class, each probability clipped to [`PROBABILITY_EPS`,
 *   1] first (isotonic calibration gives exact 0s and 1s), so sigmoid(raw) is the probability
 *   (clipped); multiclass, log(p_k) clipped likewise, whose softmax is the probabilities;
 *   regression, the value. Needs the reference (or background) and finite features, as the mlp.
 * - sequence families: `Errors.usage`.
 *
 * `explain` runs synchronously; `explainAsync` does the same work in slices of at most about
 * `sliceMs`, yielding to the event loop between them, for a server.
 */
import { Errors, Rng, type Matrix } from '../core/index.js';
import type { GbdtModel, GbdtWeights, Tree } from './gbdt/index.js';
import type { LinearWeights } from './linear/index.js';
import { mlpForward, type MlpWeights } from './mlp/index.js';
import type { TrainedModel } from './types.js';

/** What space the contributions add up in. */
export type ExplanationSpace = 'log-odds' | 'logit' | 'value';

/** How the contributions were computed. */
export type ExplanationMethod = 'tree-shap' | 'linear' | 'sampling-shapley';

/**
 * Smallest probability an ensemble's or a calibrated model's raw output is read from (see the
 * module comment): log(1e-15) ≈ −34.5 bounds the log-odds, as src/eval clips for calibration.
 */
export const PROBABILITY_EPS = 1e-15;

/** Most permutations one call may ask for (a bound on the work a caller can request). */
export const MAX_PERMUTATIONS = 10_000;

/**
 * Network evaluations per row the default number of permutations aims at: a table of few
 * columns gets more permutations (they are cheap there), one of many at least
 * `MIN_DEFAULT_PERMUTATIONS`. See `defaultPermutations`.
 */
export const DEFAULT_EVALUATIONS = 2048;

/** Fewest permutations (32 antithetic pairs) the default takes, however many players. */
export const MIN_DEFAULT_PERMUTATIONS = 64;

/**
 * The default number of permutations for `players` players: enough for about
 * `DEFAULT_EVALUATIONS` evaluations per row, at least `MIN_DEFAULT_PERMUTATIONS`, even. On
 * untrained ReLU networks of the default shape (64, 32 units), with records far from the
 * reference (strong interactions: the hard case), the error against exact baseline Shapley values
 * was on average about 1% of the row's largest contribution and at worst 5–12% (6 and 10
 * players, 5 networks × 10 rows each, binary, multiclass and regression heads); it falls as
 * 1/√permutations.
 */
export function defaultPermutations(players: number): number {
  const p = Math.ceil(DEFAULT_EVALUATIONS / Math.max(1, players - 1));
  return Math.min(MAX_PERMUTATIONS, Math.max(MIN_DEFAULT_PERMUTATIONS, p + (p % 2)));
}

/**
 * Most values one matrix of coalition points holds (8 MB of float64): a row's points go into
 * as few forward passes as this and `MAX_BATCH_OPS` allow.
 */
const MAX_BATCH_VALUES = 1 << 20;

/**
 * Most multiply-adds one forward pass of coalition points takes (about 10–15 ms here, idle): the
 * longest stretch `explainAsync` cannot interrupt, whatever the network's width (a single point
 * of a wider network is one pass). At 1 << 24 a server's other requests waited 20–30 ms a
 * slice; much smaller passes would pay more for each pass's setup (its copy of the kernels).
 */
const MAX_BATCH_OPS = 1 << 23;

/** Per-row contributions with the base value they are measured from. */
export interface Explanation {
  rows: number;
  /** Players: the model's features, or the number of groups when `options.groups` was given. */
  features: number;
  /** 1 for binary (the positive class), nClasses for multiclass, nOutputs for regression. */
  outputs: number;
  /** Raw output the contributions are measured from, per output (see the module comment). */
  base: Float64Array;
  /** `rows × features × outputs`, row-major: row r, player j, output k at `(r * features + j) * outputs + k`. */
  contributions: Float64Array;
  /** `log-odds` (binary), `logit` (multiclass margins before softmax), `value` (regression). */
  space: ExplanationSpace;
  /** `tree-shap` (exact path-dependent TreeSHAP), `linear` (coef × (x − reference)), `sampling-shapley` (mlp, ensembles, calibrated models). */
  method: ExplanationMethod;
  /**
   * What the base is measured from: `stored-cover` (covers kept in the trees), `background`
   * (covers or means from `options.background`), `reference` (`options.reference`), or `zero`
   * (linear without either: contributions relative to x = 0).
   */
  reference: 'background' | 'stored-cover' | 'reference' | 'zero';
  /** Permutations averaged (`sampling-shapley` only). */
  permutations?: number;
}

/** What `explain` measures from and how the sampling estimate runs. */
export interface ExplainOptions {
  /**
   * Rows that define "expected" (normally the training rows, after the fitted pipeline): gbdt
   * counts each node's cover from them (instead of the covers the trees store, and necessarily
   * for trees saved without); linear models and the mlp take each feature's mean as the
   * reference when `reference` is not given.
   */
  background?: Matrix;
  /**
   * The baseline row, one value per model feature (the training means a manifest keeps as
   * `explain.reference`): linear models' reference and the mlp's baseline. gbdt ignores it.
   */
  reference?: ArrayLike<number>;
  /**
   * The group of each model feature (an integer in [0, features)): contributions are then per
   * group, `features` being the number of groups (the largest index + 1).
   */
  groups?: ArrayLike<number>;
  /** Permutations of the sampling estimate: an even number (antithetic pairs), default `defaultPermutations(players)`. */
  permutations?: number;
  /** Seed of the sampling estimate's permutations (default 0). */
  seed?: number;
}

/** Explains `model`'s raw outputs on the rows of `x`; see the module comment for the definitions. */
export function explain(model: TrainedModel, x: Matrix, options: ExplainOptions = {}): Explanation {
  const steps = explainSteps(model, x, options);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * `explain`, yielding to the event loop (`setImmediate`) whenever about `sliceMs` (default 20)
 * of work has run since the last yield, so a server answers other requests meanwhile. A slice is
 * one row (gbdt) or one forward pass of coalition points (mlp), so no slice runs much longer.
 * `signal`: once aborted (the client went away), the work stops before its next step and the
 * promise rejects with `Errors.cancelled`; nothing more is computed for nobody.
 */
export async function explainAsync(model: TrainedModel, x: Matrix, options: ExplainOptions & { sliceMs?: number; signal?: AbortSignal | undefined } = {}): Promise<Explanation> {
  const slice = options.sliceMs ?? 20;
  const signal = options.signal;
  const steps = explainSteps(model, x, options);
  let since = performance.now();
  for (;;) {
    if (signal?.aborted) throw Errors.cancelled('the explanation');
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - since >= slice) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      since = performance.now();
    }
  }
}

/**
 * About how many multiply-adds (mlp) or node visits (gbdt, linear) explaining `rows` rows
 * costs: what a server bounds before starting. The mlp's is exact up to the forward pass's
 * skipping of zero activations; the others' are upper bounds.
 */
export function explainCost(model: TrainedModel, rows: number, options: Pick<ExplainOptions, 'groups' | 'permutations'> = {}): number {
  const d = model.nFeatures;
  const platt = plattOnLogit(model);
  if (platt) return explainCost(platt.base, rows, options);
  if (isComposite(model)) {
    const players = options.groups !== undefined ? groupCount(options.groups) : d;
    return (rows * (permutationsOf(options.permutations, players) * Math.max(0, players - 1) + 1) + 1) * predictCost(model);
  }
  switch (model.family) {
    case 'mlp': {
      const players = options.groups !== undefined ? groupCount(options.groups) : d;
      const layers = weightsOf<MlpWeights>(model).layers;
      const macs = layers.reduce((s, l) => s + l.inDim * l.outDim, 0);
      return (rows * (permutationsOf(options.permutations, players) * Math.max(0, players - 1) + 1) + 1) * macs;
    }
    case 'gbdt': {
      // TreeSHAP visits every node with a path of up to depth + 1 entries, each step O(depth).
      const trees = weightsOf<GbdtWeights>(model).trees;
      return rows * trees.reduce((s, t) => s + t.feature.length * (treeDepth(t) + 1) ** 2, 0);
    }
    default:
      return rows * d * Math.max(1, model.nOutputs ?? (model.task === 'multiclass' ? model.nClasses : 1));
  }
}

function* explainSteps(model: TrainedModel, x: Matrix, options: ExplainOptions): Generator<void, Explanation, void> {
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
  const groups = options.groups !== undefined ? checkGroups(options.groups, model.nFeatures) : undefined;
  const space: ExplanationSpace = model.task === 'binary' ? 'log-odds' : model.task === 'multiclass' ? 'logit' : 'value';
  const platt = plattOnLogit(model);
  if (platt) {
    // The calibrated log-odds are a · (the base's) + b: the base's exact contributions, scaled.
    const inner = yield* explainSteps(platt.base, x, options);
    return { ...inner, base: inner.base.map((v) => platt.a * v + platt.b), contributions: inner.contributions.map((v) => platt.a * v) };
  }
  if (isComposite(model) || model.family === 'mlp') {
    const ref = referenceOf(options, x.cols);
    if (ref === undefined)
      throw Errors.usage(`${model.family} explanations need a reference row (the training means) or background rows to measure contributions from`);
    for (let i = 0; i < x.data.length; i++)
      if (!Number.isFinite(x.data[i]!)) throw Errors.badData('', `row ${Math.floor(i / x.cols)}: ${model.family} features must be finite (impute them first)`);
    const players = groups ?? identityGroups(x.cols);
    const permutations = permutationsOf(options.permutations, players.count);
    const f = isComposite(model) ? outputRaw(model) : mlpRaw(model);
    const core = yield* explainSampling(f, x, ref, players, permutations, options.seed ?? 0);
    return { ...core, space, method: 'sampling-shapley', permutations };
  }
  switch (model.family) {
    case 'gbdt': {
      const core = yield* explainGbdt(weightsOf<GbdtWeights>(model), x, bg);
      return { ...(groups ? sumGroups(core, groups) : core), space, method: 'tree-shap' };
    }
    case 'logistic':
    case 'linear': {
      const core = explainLinear(weightsOf<LinearWeights>(model), x, referenceOf(options, x.cols));
      return { ...(groups ? sumGroups(core, groups) : core), space, method: 'linear' };
    }
    default:
      throw Errors.usage(`explanations are not available for family ${model.family} yet`);
  }
}

/**
 * What explain reads of the composite models src/automl builds (models cannot import automl):
 * an ensemble's `members`, a calibrated model's `base` and `calibrator`.
 */
interface Composite {
  members?: readonly TrainedModel[];
  base?: TrainedModel;
  calibrator?: unknown;
}

/**
 * A binary gbdt or logistic model calibrated by Platt scaling on its logit (automl's usual
 * calibrator): its log-odds are a · (the base's log-odds) + b, so the base's exact contributions
 * times a, from a base of a · base + b, are exact for it too (up to the logit's clip at
 * 1e-15, beyond any margin a probability can show). Undefined for any other model.
 */
function plattOnLogit(model: TrainedModel): { base: TrainedModel; a: number; b: number } | undefined {
  const c = model as Composite;
  if (c.base === undefined || model.task !== 'binary' || (c.base.family !== 'gbdt' && c.base.family !== 'logistic')) return undefined;
  const state = (c.calibrator as { toJSON?: () => unknown } | undefined)?.toJSON?.() as
    | { method?: unknown; input?: unknown; calibrators?: Array<{ a?: unknown; b?: unknown }> }
    | undefined;
  if (state?.method !== 'platt' || state.input !== 'logit' || !Array.isArray(state.calibrators) || state.calibrators.length !== 1) return undefined;
  const { a, b } = state.calibrators[0]!;
  return typeof a === 'number' && typeof b === 'number' && Number.isFinite(a) && Number.isFinite(b) ? { base: c.base, a, b } : undefined;
}

/** What one tree-node visit costs in `predictCost`'s units (the mlp's multiply-adds). */
const GBDT_VISIT_COST = 4;

/** Whether `model`'s output is not its family's own: an ensemble, or a calibrated model. */
function isComposite(model: TrainedModel): boolean {
  return model.family === 'ensemble' || (model as Composite).calibrator !== undefined;
}

/**
 * About the multiply-adds (or node visits) of predicting one row: what bounds a batch of
 * coalition points of a composite model (the mlp's own `macs` is exact).
 */
function predictCost(model: TrainedModel): number {
  const c = model as Composite;
  if (c.members !== undefined) return c.members.reduce((s, m) => s + predictCost(m), 0);
  // A calibrator costs a few operations per class (a binary search of an isotonic's thresholds).
  if (c.base !== undefined) return predictCost(c.base) + 32 * model.nClasses;
  switch (model.family) {
    case 'mlp':
      return weightsOf<MlpWeights>(model).layers.reduce((s, l) => s + l.inDim * l.outDim, 0);
    case 'gbdt':
      // A node visit (a float32 compare and a branch through arrays of objects) costs about four
      // multiply-adds of the mlp's kernels: measured 200–230 M units/s against the mlp's 520 M.
      return Math.max(1, GBDT_VISIT_COST * weightsOf<GbdtWeights>(model).trees.reduce((s, t) => s + treeDepth(t) + 1, 0));
    default:
      return Math.max(1, model.nFeatures * Math.max(model.nClasses, model.nOutputs ?? 1));
  }
}

/** An ensemble's or a calibrated model's raw output from its `predict` (see the module comment). */
function outputRaw(model: TrainedModel): RawFn {
  const macs = predictCost(model);
  const clip = (p: number) => Math.log(p < PROBABILITY_EPS ? PROBABILITY_EPS : p > 1 ? 1 : p);
  if (model.task === 'regression') return { outputs: model.nOutputs ?? 1, macs, run: (z) => model.predict(z) };
  if (model.task === 'multiclass') {
    return {
      outputs: model.nClasses,
      macs,
      run: (z) => {
        const p = model.predict(z);
        for (let i = 0; i < p.length; i++) p[i] = clip(p[i]!);
        return p;
      },
    };
  }
  return {
    outputs: 1,
    macs,
    run: (z) => {
      const p = model.predict(z);
      const out = new Float64Array(z.rows);
      // From both columns: 1 − p rounds away what p0 keeps when p is near 1.
      for (let r = 0; r < z.rows; r++) out[r] = clip(p[r * 2 + 1]!) - clip(p[r * 2]!);
      return out;
    },
  };
}

function weightsOf<W>(model: TrainedModel): W {
  // GbdtModel and MlpModel expose their weights; otherwise read them from the state (a copy for
  // gbdt, the same object for linear models: both read-only here).
  const direct = (model as Partial<GbdtModel>).weights;
  return (direct ?? model.toState().weights) as W;
}

type Core = Pick<Explanation, 'rows' | 'features' | 'outputs' | 'base' | 'contributions' | 'reference'>;

/** Players as groups of features: `of[j]` is feature j's group, `members[g]` group g's features. */
interface Groups {
  count: number;
  of: Int32Array;
  members: Int32Array[];
}

function checkGroups(groups: ArrayLike<number>, d: number): Groups {
  if (groups.length !== d) throw Errors.badData('', `groups names ${groups.length} features, the model has ${d}`);
  const of = new Int32Array(d);
  for (let j = 0; j < d; j++) {
    const g = groups[j]!;
    if (!Number.isInteger(g) || g < 0 || g >= d) throw Errors.badData('', `groups[${j}] must be an integer in [0, ${d})`);
    of[j] = g;
  }
  const count = groupCount(of);
  const sizes = new Int32Array(count);
  for (let j = 0; j < d; j++) sizes[of[j]!]!++;
  const members = Array.from(sizes, (n) => new Int32Array(n));
  sizes.fill(0);
  for (let j = 0; j < d; j++) members[of[j]!]![sizes[of[j]!]!++] = j;
  return { count, of, members };
}

function groupCount(groups: ArrayLike<number>): number {
  let max = -1;
  for (let j = 0; j < groups.length; j++) max = Math.max(max, groups[j]!);
  return max + 1;
}

function identityGroups(d: number): Groups {
  return { count: d, of: Int32Array.from({ length: d }, (_, j) => j), members: Array.from({ length: d }, (_, j) => Int32Array.of(j)) };
}

/** Per-feature contributions summed into their groups. */
function sumGroups(c: Core, g: Groups): Core {
  const { rows, features: d, outputs: k } = c;
  const out = new Float64Array(rows * g.count * k);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < d; j++) {
      const to = (r * g.count + g.of[j]!) * k;
      const from = (r * d + j) * k;
      for (let o = 0; o < k; o++) out[to + o]! += c.contributions[from + o]!;
    }
  return { ...c, features: g.count, contributions: out };
}

/** `options.reference` (checked), else the background's means, else undefined. */
function referenceOf(options: ExplainOptions, d: number): { ref: Float64Array; kind: 'reference' | 'background' } | undefined {
  if (options.reference !== undefined) {
    if (options.reference.length !== d) throw Errors.badData('', `reference has ${options.reference.length} values, the model ${d} features`);
    const ref = Float64Array.from(options.reference);
    for (let j = 0; j < d; j++) if (!Number.isFinite(ref[j]!)) throw Errors.badData('', `reference value ${j} is not a finite number`);
    return { ref, kind: 'reference' };
  }
  const bg = options.background;
  if (bg === undefined) return undefined;
  const ref = new Float64Array(d);
  for (let i = 0; i < bg.rows; i++) for (let j = 0; j < d; j++) ref[j]! += bg.data[i * d + j]!;
  for (let j = 0; j < d; j++) {
    ref[j]! /= bg.rows;
    if (!Number.isFinite(ref[j]!)) throw Errors.badData('', `background feature ${j} has no finite mean (missing values?)`);
  }
  return { ref, kind: 'background' };
}

function permutationsOf(p: number | undefined, players: number): number {
  const n = p ?? defaultPermutations(players);
  if (!Number.isInteger(n) || n < 2 || n > MAX_PERMUTATIONS || n % 2 !== 0)
    throw Errors.badParam('permutations', `must be an even integer in [2, ${MAX_PERMUTATIONS}] (antithetic pairs), got ${String(p)}`);
  return n;
}

// ---------------------------------------------------------------- linear

function explainLinear(w: LinearWeights, x: Matrix, reference: { ref: Float64Array; kind: 'reference' | 'background' } | undefined): Core {
  const d = x.cols;
  const k = w.outputs;
  const ref = reference?.ref ?? new Float64Array(d);
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
  return { rows: x.rows, features: d, outputs: k, base, contributions, reference: reference?.kind ?? 'zero' };
}

// ---------------------------------------------------------------- mlp (sampling Shapley)

/** The network's raw output on the rows of a matrix, `rows × outputs` (see the module comment). */
interface RawFn {
  outputs: number;
  /** Multiply-adds per row: what bounds a batch's work. */
  macs: number;
  run(z: Matrix): Float64Array;
}

function mlpRaw(model: TrainedModel): RawFn {
  const layers = weightsOf<MlpWeights>(model).layers;
  const last = layers[layers.length - 1]!;
  // The same network with its head's softmax left out: the class logits.
  const logits: MlpWeights = { layers: [...layers.slice(0, -1), { ...last, activation: 'linear' }] };
  const macs = layers.reduce((s, l) => s + l.inDim * l.outDim, 0);
  if (model.task !== 'binary') return { outputs: last.outDim, macs, run: (z) => mlpForward(logits, z) };
  return {
    outputs: 1,
    macs,
    run: (z) => {
      const o = mlpForward(logits, z);
      const out = new Float64Array(z.rows);
      for (let r = 0; r < z.rows; r++) out[r] = o[r * 2 + 1]! - o[r * 2]!;
      return out;
    },
  };
}

function* explainSampling(
  f: RawFn,
  x: Matrix,
  reference: { ref: Float64Array; kind: 'reference' | 'background' },
  groups: Groups,
  permutations: number,
  seed: number,
): Generator<void, Core, void> {
  const d = x.cols;
  const G = groups.count;
  const K = f.outputs;
  const ref = reference.ref;
  // Antithetic pairs: a shuffled order, then the same order reversed. Drawn once for all rows.
  const rng = new Rng(seed);
  const perms = new Int32Array(permutations * G);
  for (let p = 0; p < permutations; p += 2) {
    const order = rng.shuffle(Int32Array.from({ length: G }, (_, i) => i));
    perms.set(order, p * G);
    perms.set(order.reverse(), (p + 1) * G);
  }
  const base = f.run({ rows: 1, cols: d, data: ref });
  const contributions = new Float64Array(x.rows * G * K);
  // The points strictly between the reference and x on each permutation's walk (point i of
  // permutation q has its first i + 1 players from x), in one flat sequence cut into batches: a
  // batch is bounded in memory and in work, so no forward pass holds the event loop for long.
  const inner = G - 1;
  const total = permutations * inner;
  const batch = Math.max(1, Math.min(total, Math.floor(MAX_BATCH_VALUES / d), Math.floor(MAX_BATCH_OPS / f.macs)));
  const points = new Float64Array(Math.max(1, Math.min(batch, total)) * d);
  const z = new Float64Array(d);
  for (let r = 0; r < x.rows; r++) {
    const xr = x.data.subarray(r * d, (r + 1) * d);
    const fx = f.run({ rows: 1, cols: d, data: xr });
    const phi = contributions.subarray(r * G * K, (r + 1) * G * K);
    const credit = (g: number, cur: ArrayLike<number>, prev: ArrayLike<number>) => {
      for (let k = 0; k < K; k++) phi[g * K + k]! += cur[k]! - prev[k]!;
    };
    if (inner === 0) {
      // One player: every walk is reference → x.
      for (let q = 0; q < permutations; q++) credit(perms[q * G]!, fx, base);
    }
    // The output at the previous point of the current walk (the reference at its start).
    let prev: Float64Array = base;
    for (let t0 = 0; t0 < total; t0 += batch) {
      const n = Math.min(batch, total - t0);
      for (let t = t0; t < t0 + n; t++) {
        const q = Math.floor(t / inner);
        const i = t - q * inner;
        const perm = q * G;
        // A walk starts at the reference; `z` carries a walk on across batches.
        if (i === 0) z.set(ref);
        for (const j of groups.members[perms[perm + i]!]!) z[j] = xr[j]!;
        points.set(z, (t - t0) * d);
      }
      const out = f.run({ rows: n, cols: d, data: points.subarray(0, n * d) });
      for (let t = t0; t < t0 + n; t++) {
        const q = Math.floor(t / inner);
        const i = t - q * inner;
        const cur = out.subarray((t - t0) * K, (t - t0 + 1) * K);
        credit(perms[q * G + i]!, cur, prev);
        prev = cur;
        if (i === inner - 1) {
          // The walk's last switch reaches x itself.
          credit(perms[q * G + inner]!, fx, cur);
          prev = base;
        }
      }
      yield;
    }
    for (let i = 0; i < phi.length; i++) phi[i]! /= permutations;
  }
  return { rows: x.rows, features: G, outputs: K, base, contributions, reference: reference.kind };
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

function* explainGbdt(w: GbdtWeights, x: Matrix, bg: Matrix | undefined): Generator<void, Core, void> {
  const d = x.cols;
  const k = w.baseScore.length;
  const base = Float64Array.from(w.baseScore);
  // Covers are checked on load (one non-negative number per node); a tree without them means
  // weights saved before the trainer stored them. A background given explicitly is the caller's
  // choice of what "expected" means, so it wins over the stored training counts.
  const stored = bg === undefined && w.trees.every((t) => t.cover !== undefined && t.cover.length === t.feature.length);
  if (!stored && bg === undefined)
    throw Errors.usage(
      'gbdt explanations need background rows (the training rows): these trees were saved without node counts to weigh their branches',
    );
  const prepared = w.trees.map((t) => {
    const cover = stored ? t.cover! : treeCover(t, bg!);
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
    yield;
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
