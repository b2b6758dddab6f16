/**
 * Ensembles: a weighted average of table-family models, with weights chosen by Caruana et al.'s
 * ensemble selection (2004) on the candidates' out-of-fold predictions.
 *
 * An ensemble averages what its members predict: probabilities for classification (so the
 * average is a probability too, and a calibrator can wrap the whole ensemble), values for
 * regression (each output). Members read the same feature matrix (one fitted pipeline), are
 * plain table-family models (logistic, linear, gbdt, mlp: no sequence models, no nested
 * ensembles, no calibrated members: calibration wraps the ensemble) and agree on task, classes,
 * features and outputs. It saves as one `ModelState` of family `ensemble` whose `weights` hold the
 * members' own states (`loadEnsemble`, reached through model-io.ts's `loadModel`), exports to one
 * ONNX graph (model-io.ts's `modelToOnnx`) and is explained by sampling Shapley values of its
 * output (src/models/explain.ts).
 */
import { Errors, type Matrix, type Task } from '../core/index.js';
import { FAMILIES, type ModelState, type Params, type TableFamily, type TrainedModel } from '../models/index.js';

/** Version of the ensemble's `weights` record (`EnsembleWeights.format`). */
export const ENSEMBLE_FORMAT = 1;

/**
 * Most members an ensemble may have: selection adds at most `rounds` (default 25) distinct
 * candidates, and a state from disk with more is refused before any member is loaded.
 */
export const MAX_ENSEMBLE_MEMBERS = 64;

/** How far the weights' sum may be from 1 (they are counts over rounds: a few ulps off). */
export const ENSEMBLE_WEIGHT_TOLERANCE = 1e-9;

/**
 * Default rounds of ensemble selection: weights are then multiples of 1/25 = 0.04, fine enough
 * for the handful of candidates a search keeps (a weight finer than that rarely moves a score
 * beyond its fold-to-fold noise), while each round costs one score of every candidate's blend on
 * the out-of-fold rows. Caruana et al. found the selection score rising fast over the first few
 * dozen additions and then flattening or falling as the selection overfits the rows it scores on;
 * the best prefix is kept (see `ensembleSelect`), so stopping at 25 loses little and bounds that
 * overfitting. (auto-sklearn's default is 50, with libraries of hundreds of candidates.)
 */
export const DEFAULT_ENSEMBLE_ROUNDS = 25;

/** The saved form of an ensemble: `ModelState.weights` of family `ensemble`. */
export interface EnsembleWeights {
  format: typeof ENSEMBLE_FORMAT;
  /** Each member's own state (a table family's, uncalibrated). */
  members: ModelState[];
  /** One per member: finite, ≥ 0, summing to 1. */
  weights: number[];
}

/** What members must share with the ensemble (and each other). */
interface Shape {
  task: Task;
  nClasses: number;
  nFeatures: number;
  nOutputs: number;
}

function shapeOf(m: { task: Task; nClasses: number; nFeatures: number; nOutputs?: number | undefined }): Shape {
  return { task: m.task, nClasses: m.nClasses, nFeatures: m.nFeatures, nOutputs: m.nOutputs ?? 1 };
}

const TASKS: readonly unknown[] = ['binary', 'multiclass', 'regression'];

/** A shape field as a message shows it: a task or a count; anything else a file may hold is not quoted. */
function show(v: unknown): string {
  return TASKS.includes(v) || (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 1e9) ? String(v) : 'not a valid value';
}

/** The first way `m` differs from `want`, or undefined. */
function shapeMismatch(m: Shape, want: Shape): string | undefined {
  for (const k of ['task', 'nClasses', 'nFeatures', 'nOutputs'] as const) {
    if (m[k] !== want[k]) return `its ${k} ${show(m[k])} is not the ensemble's ${show(want[k])}`;
  }
  return undefined;
}

/** Checks member weights: finite, ≥ 0, summing to 1; `bad` makes the error (never quoting a weight). */
function checkWeights(weights: readonly unknown[], bad: (m: string) => Error): void {
  let sum = 0;
  weights.forEach((w, i) => {
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw bad(`weight ${i} must be a finite number ≥ 0`);
    sum += w;
  });
  if (!(Math.abs(sum - 1) <= ENSEMBLE_WEIGHT_TOLERANCE)) throw bad(`the weights do not sum to 1 (within ${ENSEMBLE_WEIGHT_TOLERANCE})`);
}

function isTableFamily(f: unknown): f is TableFamily {
  return typeof f === 'string' && Object.hasOwn(FAMILIES, f);
}

/**
 * A weighted average of table-family models' predictions (see the module comment). Members of
 * weight 0 are left out at construction: they change no prediction, and would cost time to run,
 * space to save and nodes in the ONNX graph.
 */
export class EnsembleModel implements TrainedModel {
  readonly family = 'ensemble' as const;
  readonly task: Task;
  readonly nClasses: number;
  readonly nFeatures: number;
  /** Regression outputs when more than one, as the members' (absent means 1). */
  readonly nOutputs?: number;
  /**
   * What a leaderboard shows: `members` the members' families in order (`gbdt,logistic`),
   * `weights` theirs.
   */
  readonly params: Params;
  /** The members with a positive weight, in the order given. */
  readonly members: readonly TrainedModel[];
  /** The members' weights (> 0, summing to 1). */
  readonly weights: readonly number[];

  /**
   * @param members trained table-family models of one task, class count, feature count and
   *   output count, uncalibrated.
   * @param weights one per member, finite, ≥ 0, summing to 1 within `ENSEMBLE_WEIGHT_TOLERANCE`
   *   (what `ensembleSelect` returns, candidates of weight 0 included).
   * @throws MedfitError MEDFIT_ERR_INTERNAL when they are not (a bug of the caller's).
   */
  constructor(members: readonly TrainedModel[], weights: readonly number[]) {
    const bad = (m: string) => Errors.internal(`cannot build the ensemble: ${m}`);
    if (members.length !== weights.length) throw bad(`${weights.length} weights for ${members.length} members`);
    checkWeights(weights, bad);
    const kept = members.flatMap((_, i) => (weights[i]! > 0 ? [i] : []));
    if (kept.length < 1) throw bad('no member has a positive weight');
    if (kept.length > MAX_ENSEMBLE_MEMBERS) throw bad(`at most ${MAX_ENSEMBLE_MEMBERS} members may have a positive weight, ${kept.length} do`);
    this.members = kept.map((i) => members[i]!);
    this.weights = kept.map((i) => weights[i]!);
    const want = shapeOf(this.members[0]!);
    this.members.forEach((m, i) => {
      if (!isTableFamily(m.family)) throw bad(`member ${i} is a ${m.family} model; members are table-family models (${Object.keys(FAMILIES).join(', ')})`);
      if (m.sequence !== undefined) throw bad(`member ${i} reads sequence windows`);
      // A calibrated member (src/automl's CalibratedModel exposes its calibrator) would be
      // calibrated twice once the ensemble is: calibrate the ensemble instead.
      if ((m as { calibrator?: unknown }).calibrator !== undefined) throw bad(`member ${i} is calibrated; calibrate the ensemble instead`);
      const why = shapeMismatch(shapeOf(m), want);
      if (why !== undefined) throw bad(`member ${i}: ${why}`);
    });
    this.task = want.task;
    this.nClasses = want.nClasses;
    this.nFeatures = want.nFeatures;
    if (want.nOutputs > 1) this.nOutputs = want.nOutputs;
    this.params = { members: this.members.map((m) => m.family).join(','), weights: [...this.weights] };
  }

  /** The weighted sum of the members' predictions: `rows × nClasses` probabilities, or `rows × nOutputs` values. */
  predict(x: Matrix): Float64Array {
    let out: Float64Array | undefined;
    this.members.forEach((m, i) => {
      const p = m.predict(x);
      const w = this.weights[i]!;
      if (out === undefined) out = new Float64Array(p.length);
      else if (p.length !== out.length) throw Errors.internal(`ensemble member ${i} predicted ${p.length} values, member 0 ${out.length}`);
      for (let j = 0; j < p.length; j++) out[j]! += w * p[j]!;
    });
    return out!;
  }

  toState(): ModelState {
    const weights: EnsembleWeights = { format: ENSEMBLE_FORMAT, members: this.members.map((m) => m.toState()), weights: [...this.weights] };
    return {
      family: 'ensemble',
      task: this.task,
      nClasses: this.nClasses,
      nFeatures: this.nFeatures,
      params: { ...this.params, weights: [...this.weights] },
      weights,
      ...(this.nOutputs !== undefined ? { nOutputs: this.nOutputs } : {}),
    };
  }
}

/**
 * Rebuilds an ensemble from `toState()`, checking the untrusted state before loading any member:
 * the format, 1 to `MAX_ENSEMBLE_MEMBERS` members, weights finite, ≥ 0 and summing to 1 within
 * `ENSEMBLE_WEIGHT_TOLERANCE`, each member a table family's uncalibrated state (no nested
 * ensemble) with the ensemble's task, classes, features and outputs; each member is then loaded
 * (and checked) by its family's own `load`.
 * @throws MedfitError MEDFIT_ERR_MANIFEST naming what is wrong (never a weight's value).
 */
export function loadEnsemble(state: ModelState): EnsembleModel {
  const bad = (m: string) => Errors.manifest('ensemble', m);
  if (state === null || typeof state !== 'object') throw bad('state is not an object');
  if (state.family !== 'ensemble') throw bad('the state is not an ensemble\'s');
  const shape = shapeOf(state);
  if (!TASKS.includes(shape.task)) throw bad('the state has no valid task');
  for (const k of ['nClasses', 'nFeatures', 'nOutputs'] as const) {
    if (!Number.isInteger(shape[k]) || shape[k] < 1) throw bad(`${k} must be a positive integer`);
  }
  if (state.calibration !== undefined) throw bad('an ensemble state carries no calibration itself (load it through loadModel)');
  const w = state.weights as Partial<EnsembleWeights> | null;
  if (w === null || typeof w !== 'object') throw bad('weights must be an object');
  if (w.format !== ENSEMBLE_FORMAT) throw bad(`its weights' format is not supported (expected ${ENSEMBLE_FORMAT})`);
  if (!Array.isArray(w.members) || !Array.isArray(w.weights)) throw bad('weights must hold the arrays members and weights');
  if (w.members.length < 1) throw bad('an ensemble needs at least one member');
  if (w.members.length > MAX_ENSEMBLE_MEMBERS) throw bad(`an ensemble has at most ${MAX_ENSEMBLE_MEMBERS} members, this one ${w.members.length}`);
  if (w.weights.length !== w.members.length) throw bad(`${w.weights.length} weights for ${w.members.length} members`);
  checkWeights(w.weights, bad);
  const want = shape;
  const members = w.members.map((s: unknown, i) => {
    const where = `member ${i}`;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw bad(`${where} is not a model state`);
    const ms = s as ModelState;
    if (ms.family === 'ensemble') throw bad(`${where} is an ensemble; ensembles do not nest`);
    // The name is not echoed: it is whatever the file holds.
    if (!isTableFamily(ms.family)) throw bad(`${where} is not of a table family (${Object.keys(FAMILIES).join(', ')})`);
    if (ms.calibration !== undefined) throw bad(`${where} is calibrated; only the whole ensemble may be`);
    if (ms.sequence !== undefined) throw bad(`${where} reads sequence windows`);
    const why = shapeMismatch(shapeOf(ms), want);
    if (why !== undefined) throw bad(`${where}: ${why}`);
    const model = FAMILIES[ms.family].load(ms);
    // The family's loader checked its weights against its own fields; check what it built too.
    const built = shapeMismatch(shapeOf(model), want);
    if (built !== undefined) throw bad(`${where}: ${built}`);
    return model;
  });
  try {
    return new EnsembleModel(members, w.weights as number[]);
  } catch (e) {
    throw bad(e instanceof Error ? e.message : String(e));
  }
}

/** One round of `ensembleSelect`: the candidate added and the blend's score after it. */
export interface SelectionStep {
  candidate: number;
  score: number;
}

/** What `ensembleSelect` chose. */
export interface EnsembleSelection {
  /** One per candidate, ≥ 0, summing to 1: its share of the kept additions. */
  weights: number[];
  /** The score of the blend these weights give (the best over the rounds). */
  score: number;
  /** How many rounds the kept blend has (its additions; the weights are counts over this). */
  size: number;
  /** Every round's addition and score, the first being the best single candidate. */
  trace: SelectionStep[];
}

/**
 * Caruana et al. (2004) ensemble selection, greedy forward selection with replacement: start from
 * the best single candidate, then each round add (again, possibly) the candidate whose addition
 * gives the blend (the plain mean of the chosen predictions, a candidate counted as often as it
 * was chosen) the highest `score`; after `rounds` additions, keep the blend of the best round
 * (the earliest on ties), so the result scores at least as well as the best single candidate.
 * Ties between candidates go to the lowest index, and a NaN score never wins: deterministic.
 *
 * @param oofs each candidate's out-of-fold predictions on the same rows (`rows × width`,
 *   row-major: probabilities or values), never predictions on rows the candidate was fitted on.
 * @param score higher is better (pass a negated loss); called `rounds × candidates` times on
 *   blends of `rows × width` values it must not keep.
 * @param options `width` the columns of a row; `rounds` the additions (default
 *   `DEFAULT_ENSEMBLE_ROUNDS`, see there for why).
 * @throws MedfitError MEDFIT_ERR_INTERNAL on no candidates, mismatched lengths, a bad width or
 *   round count (a bug of the caller's).
 */
export function ensembleSelect(oofs: readonly Float64Array[], score: (pred: Float64Array) => number, options: { rounds?: number; width: number }): EnsembleSelection {
  const bad = (m: string) => Errors.internal(`ensemble selection: ${m}`);
  const rounds = options.rounds ?? DEFAULT_ENSEMBLE_ROUNDS;
  const { width } = options;
  if (oofs.length < 1) throw bad('no candidates');
  if (!Number.isInteger(width) || width < 1) throw bad('width must be a positive integer');
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10_000) throw bad('rounds must be an integer in [1, 10000]');
  const n = oofs[0]!.length;
  if (n < width || n % width !== 0) throw bad(`candidate 0 has ${n} values, not a positive multiple of width ${width}`);
  oofs.forEach((o, c) => {
    if (o.length !== n) throw bad(`candidate ${c} has ${o.length} values, candidate 0 ${n}`);
  });
  const counts = new Int32Array(oofs.length);
  const sum = new Float64Array(n);
  const trial = new Float64Array(n);
  const trace: SelectionStep[] = [];
  let best = { score: -Infinity, counts: counts.slice(), size: 0 };
  for (let round = 1; round <= rounds; round++) {
    // The blend with each candidate added: (sum + oof) / round.
    let pick = -1;
    let pickScore = -Infinity;
    for (let c = 0; c < oofs.length; c++) {
      const o = oofs[c]!;
      for (let j = 0; j < n; j++) trial[j] = (sum[j]! + o[j]!) / round;
      const s = score(trial);
      if (pick < 0 || s > pickScore || (Number.isNaN(pickScore) && !Number.isNaN(s))) {
        pick = c;
        pickScore = s;
      }
    }
    const o = oofs[pick]!;
    for (let j = 0; j < n; j++) sum[j]! += o[j]!;
    counts[pick]!++;
    trace.push({ candidate: pick, score: pickScore });
    if (round === 1 || pickScore > best.score || (Number.isNaN(best.score) && !Number.isNaN(pickScore))) best = { score: pickScore, counts: counts.slice(), size: round };
  }
  return { weights: Array.from(best.counts, (k) => k / best.size), score: best.score, size: best.size, trace };
}
