/**
 * Post-hoc probability calibrators, as scikit-learn 1.2's `CalibratedClassifierCV` fits them
 * (checked against it by scripts/golden_calibration.py → test/fixtures/golden/calibration.json):
 *
 * - **Platt scaling** (`_sigmoid_calibration`): `p = sigmoid(a·s + b)` minimising the log loss
 *   against Platt's smoothed targets — (N₊ + 1)/(N₊ + 2) for positives, 1/(N₋ + 2) for negatives,
 *   which keep the optimum finite even on separable scores — from scikit-learn's start
 *   (a = 0, b = log((N₊ + 1)/(N₋ + 1))). scikit-learn stops BFGS at a gradient of 1e-5; medfit runs
 *   Newton's method (step halving on the loss) to machine precision, so it finds the minimiser
 *   scikit-learn approaches (within 8e-7 on the golden cases). scikit-learn writes the same model
 *   as `expit(-(a_·s + b_))`: its `a_`, `b_` are medfit's −a, −b.
 * - **Isotonic regression** (`IsotonicRegression(out_of_bounds='clip')`): scores sorted, scores
 *   within 1e-15 of a group's first score pooled into it with their labels averaged
 *   (`_make_unique`), pool-adjacent-violators (non-decreasing, scikit-learn's single pass with
 *   backtracking), optional `yMin`/`yMax` clipping, then the points equal to both neighbours
 *   dropped; a score is clipped to the fitted range and interpolated linearly between thresholds
 *   exactly as `numpy.interp` does (which scipy's `interp1d` delegates to).
 * - **Classifiers** (`_CalibratedClassifier.predict_proba`): binary calibrates the positive class's
 *   column only and returns [1 − p, p]; multiclass calibrates each class's column one-vs-rest and
 *   divides by the row's sum (a row whose calibrated values are all 0 becomes uniform).
 *
 * The calibrated score is the class probability (`input: 'probability'`, what scikit-learn uses
 * for a classifier without `decision_function`) or its logit, p clipped to [1e-15, 1 − 1e-15]
 * (`input: 'logit'`, the analogue of a `decision_function`; Platt on it is logistic recalibration,
 * which sets the calibration slope and intercept of src/eval/calibration.ts to ~1 and ~0 on the
 * rows it was fitted on).
 *
 * Unlike scikit-learn, a fold where a calibrated column has one class only is refused
 * (`Errors.badData`): Platt's smoothed targets would give a finite but meaningless answer there.
 *
 * Every calibrator serialises to plain JSON (`toJSON`; `ProbabilityCalibrator.fromJSON` checks it
 * and throws `Errors.manifest` on bad state) and appends itself to an ONNX graph (`appendOnnx`),
 * computing in double precision between the graph's FP32 tensors, with the default-domain opset 17
 * operators that ONNX Runtime runs on CPU; the nodes and initializers are plain `onnx-proto`
 * messages, the same shapes as src/models/onnx's `GraphParts`.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { Errors } from '../core/index.js';
import { CALIBRATION_EPS } from './calibration.js';
import { checkFinite, checkLabels, checkSameLength } from './validate.js';

// onnx-proto is CommonJS; Node's ESM loader offers its namespace as the default export.
const { onnx } = onnxProto;

/** The calibration methods. */
export const CALIBRATION_METHODS = ['platt', 'isotonic'] as const;
/** A calibration method: Platt scaling or isotonic regression. */
export type CalibrationMethod = (typeof CALIBRATION_METHODS)[number];
/** What a calibrator reads of each class's probability: the probability or its logit. */
export type CalibratorInput = 'probability' | 'logit';
/** Version of the JSON written by `ProbabilityCalibrator.toJSON`. */
export const CALIBRATOR_FORMAT = 1;
/** p is clipped to [LOGIT_EPS, 1 − LOGIT_EPS] before the logit (as for the calibration slope). */
export const LOGIT_EPS = CALIBRATION_EPS;
/**
 * Scores closer than this to a group's first score are one score for isotonic regression:
 * scikit-learn's `np.finfo(float64).resolution`, an absolute distance.
 */
export const ISOTONIC_TIE_EPS = 1e-15;

/** A fitted Platt calibrator: `p = sigmoid(a·s + b)`. */
export interface PlattParams {
  a: number;
  b: number;
}

/** A fitted isotonic calibrator: strictly increasing thresholds `x`, non-decreasing values `y`. */
export interface IsotonicParams {
  x: number[];
  y: number[];
}

/** The saved state of a {@link ProbabilityCalibrator}: plain JSON, for a model artifact. */
export interface CalibratorState {
  format: typeof CALIBRATOR_FORMAT;
  method: CalibrationMethod;
  input: CalibratorInput;
  nClasses: number;
  /** One per calibrated column: the positive class for binary, every class for multiclass. */
  calibrators: PlattParams[] | IsotonicParams[];
}

/**
 * Where a calibrator's ONNX nodes and initializers go: src/models/onnx's `GraphParts` is one.
 * Names the calibrator adds start with the caller's prefix, so several can share a graph.
 */
export interface OnnxGraphParts {
  nodes: OnnxTypes.INodeProto[];
  initializers: OnnxTypes.ITensorProto[];
}

/** A fitted map from one score to a probability. */
export interface ScoreCalibrator {
  readonly method: CalibrationMethod;
  /** The calibrated probability of one finite score. */
  predictOne(score: number): number;
  /** The calibrated probability of every score. @throws MedfitError on a non-finite score. */
  predict(scores: Float64Array): Float64Array;
  toJSON(): PlattParams | IsotonicParams;
  /**
   * Appends nodes that map the FP64 tensor `input` (any shape), element by element, to the FP64
   * tensor `output`, as `predictOne` does.
   */
  appendOnnx(parts: OnnxGraphParts, input: string, output: string, prefix: string): void;
}

// ---------------------------------------------------------------------------------------------
// ONNX builders: the few src/models/onnx/proto.ts has, written again here because eval does not
// import models (they are peers); the messages are the same onnx-proto shapes.

const ONNX_FLOAT = 1;
const ONNX_INT32 = 6;
const ONNX_INT64 = 7;
const ONNX_DOUBLE = 11;

function onnxNode(opType: string, inputs: string[], outputs: string[], attributes: OnnxTypes.IAttributeProto[] = []): OnnxTypes.INodeProto {
  return { opType, input: inputs, output: outputs, attribute: attributes, domain: '', name: `${opType}_${outputs[0]}` };
}

function intAttr(name: string, i: number): OnnxTypes.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}

function doubleInit(name: string, dims: number[], values: ArrayLike<number>): OnnxTypes.ITensorProto {
  const a = Float64Array.from(values);
  return { name, dims, dataType: ONNX_DOUBLE, rawData: new Uint8Array(a.buffer) };
}

function int64Init(name: string, dims: number[], values: number[]): OnnxTypes.ITensorProto {
  const a = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims, dataType: ONNX_INT64, rawData: new Uint8Array(a.buffer) };
}

// ---------------------------------------------------------------------------------------------
// Platt scaling

/** log(1 + e^η) − T·η, the loss of one row, without overflow. */
function plattLoss(s: Float64Array, t: Float64Array, a: number, b: number): number {
  let loss = 0;
  for (let i = 0; i < s.length; i++) {
    const eta = a * s[i]! + b;
    loss += Math.max(eta, 0) + Math.log1p(Math.exp(-Math.abs(eta))) - t[i]! * eta;
  }
  return loss;
}

function sigmoid(eta: number): number {
  // One exp in the direction that cannot overflow.
  const e = Math.exp(-Math.abs(eta));
  return eta >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** Most classes a calibrator state may have (a bound on what loading allocates). */
export const MAX_CALIBRATED_CLASSES = 10_000;
/** Most points of an isotonic calibrator: each is a comparison per prediction in its ONNX graph. */
export const MAX_ISOTONIC_POINTS = 100_000;

const PLATT_MAX_ITER = 200;
/** Beyond this slope or intercept a 0/1-target fit is chasing separable scores to infinity. */
const PLATT_MAX_COEF = 1e3;

/**
 * What Platt scaling fits to: Platt's smoothed targets (scikit-learn's, the default), or the 0/1
 * labels themselves (logistic recalibration, Cox 1958: on logits, the fit whose slope and
 * intercept are the calibration slope and intercept, so the calibrated out-of-fold predictions
 * have slope 1). The smoothing caps how far a calibrator can stretch a near-separating model's
 * logits (±log(N + 1)); the labels do not, and fall back to the smoothing when the scores separate.
 */
export type PlattTargets = 'smoothed' | 'labels';
const PLATT_MAX_HALVINGS = 60;

/** Platt scaling: `p = sigmoid(a·s + b)`. */
export class PlattCalibrator implements ScoreCalibrator {
  readonly method = 'platt' as const;

  constructor(
    readonly a: number,
    readonly b: number,
  ) {}

  /**
   * Fits `a`, `b` on scores and 0/1 labels (see the module comment).
   * @throws MedfitError MEDFIT_ERR_BAD_DATA on empty, mismatched or non-finite input, labels other
   *   than 0/1, or one class only.
   */
  static fit(scores: Float64Array, labels: Float64Array, targets: PlattTargets = 'smoothed'): PlattCalibrator {
    const fn = 'platt calibration';
    checkBinaryFold(fn, scores, labels);
    const n = scores.length;
    let n1 = 0;
    for (let i = 0; i < n; i++) n1 += labels[i]!;
    const n0 = n - n1;
    if (targets === 'labels') {
      // Separable scores have no finite maximum-likelihood fit: Platt's smoothed targets then.
      const fitted = PlattCalibrator.fitTo(scores, labels, 1, 0, n1, n0);
      return fitted ?? PlattCalibrator.fit(scores, labels, 'smoothed');
    }
    return PlattCalibrator.fitTo(scores, labels, (n1 + 1) / (n1 + 2), 1 / (n0 + 2), n1, n0)!;
  }

  /**
   * Newton's method on the log loss against targets `hi` (positives) and `lo` (negatives);
   * undefined when 0/1 targets diverge (|a| or |b| past PLATT_MAX_COEF: separable scores).
   */
  private static fitTo(scores: Float64Array, labels: Float64Array, hi: number, lo: number, n1: number, n0: number): PlattCalibrator | undefined {
    const n = scores.length;
    const t = new Float64Array(n);
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      t[i] = labels[i] === 1 ? hi : lo;
      min = Math.min(min, scores[i]!);
      max = Math.max(max, scores[i]!);
    }
    if (min === max) {
      // One score value: a and b are not identified, only sigmoid(a·s + b) is (the mean target).
      // scikit-learn's BFGS stops somewhere on that line; medfit takes a = 0.
      let mean = 0;
      for (let i = 0; i < n; i++) mean += t[i]!;
      mean /= n;
      return new PlattCalibrator(0, Math.log(mean / (1 - mean)));
    }
    let a = 0;
    let b = Math.log((n1 + 1) / (n0 + 1));
    let loss = plattLoss(scores, t, a, b);
    for (let iter = 0; iter < PLATT_MAX_ITER; iter++) {
      let ga = 0;
      let gb = 0;
      let haa = 0;
      let hab = 0;
      let hbb = 0;
      for (let i = 0; i < n; i++) {
        const s = scores[i]!;
        const p = sigmoid(a * s + b);
        const r = p - t[i]!;
        const w = p * (1 - p);
        ga += r * s;
        gb += r;
        haa += w * s * s;
        hab += w * s;
        hbb += w;
      }
      const det = haa * hbb - hab * hab;
      if (!(det > 0)) break; // curvature lost to rounding (all rows saturated): keep the best so far
      const da = -(hbb * ga - hab * gb) / det;
      const db = -(haa * gb - hab * ga) / det;
      // Newton converges quadratically: a step this small leaves an error of about its square.
      if (Math.abs(da) <= 1e-11 * (1 + Math.abs(a)) && Math.abs(db) <= 1e-11 * (1 + Math.abs(b))) {
        return new PlattCalibrator(a + da, b + db);
      }
      let step = 1;
      let next = plattLoss(scores, t, a + da, b + db);
      // Near the optimum the loss moves by less than its rounding: accept such steps.
      const slack = 1e-12 * Math.max(1, Math.abs(loss));
      for (let h = 0; h < PLATT_MAX_HALVINGS && !(next <= loss + slack); h++) {
        step /= 2;
        next = plattLoss(scores, t, a + step * da, b + step * db);
      }
      a += step * da;
      b += step * db;
      loss = next;
      if (hi === 1 && (Math.abs(a) > PLATT_MAX_COEF || Math.abs(b) > PLATT_MAX_COEF)) return undefined;
    }
    return new PlattCalibrator(a, b);
  }

  /** Rebuilds a Platt calibrator from `toJSON()`. @throws MedfitError MEDFIT_ERR_MANIFEST */
  static fromJSON(json: unknown, where = 'calibrator'): PlattCalibrator {
    const o = json as Partial<PlattParams> | null;
    if (typeof o !== 'object' || o === null || !isFiniteNumber(o.a) || !isFiniteNumber(o.b)) {
      throw Errors.manifest(where, 'a Platt calibrator needs finite numbers a and b');
    }
    return new PlattCalibrator(o.a, o.b);
  }

  predictOne(score: number): number {
    return sigmoid(this.a * score + this.b);
  }

  predict(scores: Float64Array): Float64Array {
    checkFinite('platt calibration', 'scores', scores);
    const out = new Float64Array(scores.length);
    for (let i = 0; i < scores.length; i++) out[i] = this.predictOne(scores[i]!);
    return out;
  }

  toJSON(): PlattParams {
    return { a: this.a, b: this.b };
  }

  /** Mul, Add, Sigmoid, in double. */
  appendOnnx(parts: OnnxGraphParts, input: string, output: string, prefix: string): void {
    parts.initializers.push(doubleInit(`${prefix}_a`, [], [this.a]), doubleInit(`${prefix}_b`, [], [this.b]));
    parts.nodes.push(
      onnxNode('Mul', [input, `${prefix}_a`], [`${prefix}_as`]),
      onnxNode('Add', [`${prefix}_as`, `${prefix}_b`], [`${prefix}_eta`]),
      onnxNode('Sigmoid', [`${prefix}_eta`], [output]),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Isotonic regression

/** Options of {@link IsotonicCalibrator.fit}: scikit-learn's `y_min`, `y_max` (within [0, 1]). */
export interface IsotonicOptions {
  yMin?: number;
  yMax?: number;
}

/**
 * scikit-learn's `_inplace_contiguous_isotonic_regression`: pool-adjacent-violators in one pass,
 * backtracking after each pooled block; `y`, `w` are overwritten by the fit.
 */
function pava(y: Float64Array, w: Float64Array): void {
  const n = y.length;
  // target[i] = j and target[j] = i when [i..j] is an active block.
  const target = new Int32Array(n);
  for (let i = 0; i < n; i++) target[i] = i;
  let i = 0;
  while (i < n) {
    let k = target[i]! + 1;
    if (k === n) break;
    if (y[i]! < y[k]!) {
      i = k;
      continue;
    }
    let sumWy = w[i]! * y[i]!;
    let sumW = w[i]!;
    for (;;) {
      // Within a non-increasing run.
      const prevY = y[k]!;
      sumWy += w[k]! * y[k]!;
      sumW += w[k]!;
      k = target[k]! + 1;
      if (k === n || prevY < y[k]!) {
        y[i] = sumWy / sumW;
        w[i] = sumW;
        target[i] = k - 1;
        target[k - 1] = i;
        if (i > 0) i = target[i - 1]!; // backtrack: the pooled block may now violate its left neighbour
        break;
      }
    }
  }
  i = 0;
  while (i < n) {
    const k = target[i]! + 1;
    for (let j = i + 1; j < k; j++) y[j] = y[i]!;
    i = k;
  }
}

/** Isotonic regression with `out_of_bounds='clip'`, applied by linear interpolation. */
export class IsotonicCalibrator implements ScoreCalibrator {
  readonly method = 'isotonic' as const;

  /** `x` strictly increasing, `y` non-decreasing, same length ≥ 1 (checked by `fromJSON`). */
  constructor(
    readonly x: Float64Array,
    readonly y: Float64Array,
  ) {}

  /**
   * Fits the thresholds on scores and 0/1 labels (see the module comment).
   * @throws MedfitError MEDFIT_ERR_BAD_DATA on empty, mismatched or non-finite input, labels other
   *   than 0/1, or one class only; MEDFIT_ERR_BAD_PARAM on bounds outside 0 ≤ yMin ≤ yMax ≤ 1.
   */
  static fit(scores: Float64Array, labels: Float64Array, options: IsotonicOptions = {}): IsotonicCalibrator {
    const fn = 'isotonic calibration';
    checkBinaryFold(fn, scores, labels);
    const { yMin, yMax } = options;
    if (yMin !== undefined && !(yMin >= 0 && yMin <= 1)) throw Errors.badParam('yMin', 'must be a number in [0, 1]');
    if (yMax !== undefined && !(yMax >= 0 && yMax <= 1)) throw Errors.badParam('yMax', 'must be a number in [0, 1]');
    if (yMin !== undefined && yMax !== undefined && yMin > yMax) throw Errors.badParam('yMin', 'must not exceed yMax');
    const n = scores.length;
    // scikit-learn's np.lexsort((y, X)): by score, then label.
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => scores[i]! - scores[j]! || labels[i]! - labels[j]!);
    // _make_unique: a group starts at a score ≥ ISOTONIC_TIE_EPS above the current group's first
    // score and takes the mean of its labels.
    const ux: number[] = [];
    const uy: number[] = [];
    const uw: number[] = [];
    let cx = scores[order[0]!]!;
    let cy = 0;
    let cw = 0;
    for (const r of order) {
      const x = scores[r]!;
      if (x - cx >= ISOTONIC_TIE_EPS) {
        ux.push(cx);
        uy.push(cy / cw);
        uw.push(cw);
        cx = x;
        cw = 1;
        cy = labels[r]!;
      } else {
        cw += 1;
        cy += labels[r]!;
      }
    }
    ux.push(cx);
    uy.push(cy / cw);
    uw.push(cw);
    const y = Float64Array.from(uy);
    pava(y, Float64Array.from(uw));
    if (yMin !== undefined || yMax !== undefined) {
      const lo = yMin ?? -Infinity;
      const hi = yMax ?? Infinity;
      for (let i = 0; i < y.length; i++) y[i] = Math.min(Math.max(y[i]!, lo), hi);
    }
    // Drop the points equal to both neighbours: interpolation through them changes nothing.
    const m = y.length;
    const keepX: number[] = [];
    const keepY: number[] = [];
    for (let i = 0; i < m; i++) {
      if (i === 0 || i === m - 1 || y[i] !== y[i - 1] || y[i] !== y[i + 1]) {
        keepX.push(ux[i]!);
        keepY.push(y[i]!);
      }
    }
    // Every point is a comparison per prediction in the ONNX graph: bounded, as loading bounds it.
    if (keepX.length > MAX_ISOTONIC_POINTS) throw Errors.badData(fn, `the fit has more than ${MAX_ISOTONIC_POINTS} steps; use Platt scaling`);
    return new IsotonicCalibrator(Float64Array.from(keepX), Float64Array.from(keepY));
  }

  /** Rebuilds an isotonic calibrator from `toJSON()`. @throws MedfitError MEDFIT_ERR_MANIFEST */
  static fromJSON(json: unknown, where = 'calibrator'): IsotonicCalibrator {
    const o = json as Partial<IsotonicParams> | null;
    const bad = (msg: string) => Errors.manifest(where, `an isotonic calibrator ${msg}`);
    if (typeof o !== 'object' || o === null || !Array.isArray(o.x) || !Array.isArray(o.y)) throw bad('needs arrays x and y');
    const { x, y } = o;
    if (x.length < 1 || x.length !== y.length) throw bad('needs x and y of the same length, at least 1');
    if (x.length > MAX_ISOTONIC_POINTS) throw bad(`has more than ${MAX_ISOTONIC_POINTS} points`);
    for (let i = 0; i < x.length; i++) {
      if (!isFiniteNumber(x[i]) || !isFiniteNumber(y[i])) throw bad('holds a value that is not a finite number');
      if (!(y[i]! >= 0 && y[i]! <= 1)) throw bad('holds a y outside [0, 1]');
      if (i > 0 && !(x[i]! > x[i - 1]!)) throw bad('needs strictly increasing x');
      if (i > 0 && !(y[i]! >= y[i - 1]!)) throw bad('needs non-decreasing y');
    }
    return new IsotonicCalibrator(Float64Array.from(x), Float64Array.from(y));
  }

  /** `numpy.interp` on the score clipped to [x₀, x_last] (scikit-learn's `predict`). */
  predictOne(score: number): number {
    const { x, y } = this;
    const m = x.length;
    const last = m - 1;
    const v = score < x[0]! ? x[0]! : score > x[last]! ? x[last]! : score;
    if (m === 1) return y[0]!;
    // The last j with x[j] ≤ v.
    let lo = 0;
    let hi = last;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (x[mid]! <= v) lo = mid;
      else hi = mid - 1;
    }
    const j = lo;
    if (j === last || x[j] === v) return y[j]!;
    const slope = (y[j + 1]! - y[j]!) / (x[j + 1]! - x[j]!);
    return slope * (v - x[j]!) + y[j]!;
  }

  predict(scores: Float64Array): Float64Array {
    checkFinite('isotonic calibration', 'scores', scores);
    const out = new Float64Array(scores.length);
    for (let i = 0; i < scores.length; i++) out[i] = this.predictOne(scores[i]!);
    return out;
  }

  toJSON(): IsotonicParams {
    return { x: Array.from(this.x), y: Array.from(this.y) };
  }

  /**
   * The same interpolation with standard operators, in double: Clip to the range; the segment
   * index j = #{thresholds x₁..x_last ≤ v} (Unsqueeze, GreaterOrEqual against them, Cast,
   * ReduceSum); then Gather of x_j, y_j and the segment's slope (0 past the last threshold) and
   * slope·(v − x_j) + y_j, numpy.interp's own formula, which gives y_j exactly at a threshold.
   * The comparison holds a boolean and an int32 per element and threshold while it runs (5 MB
   * for 1,024 rows against 1,000 thresholds); a fit on n rows has at most n thresholds, usually
   * a few dozen.
   */
  appendOnnx(parts: OnnxGraphParts, input: string, output: string, prefix: string): void {
    const { x, y } = this;
    const m = x.length;
    const p = (s: string) => `${prefix}_${s}`;
    parts.initializers.push(doubleInit(p('xmin'), [], [x[0]!]), doubleInit(p('xmax'), [], [x[m - 1]!]));
    parts.nodes.push(onnxNode('Clip', [input, p('xmin'), p('xmax')], [p('v')]));
    if (m === 1) {
      // v is x₀ after the clip: v − x₀ + y₀ is y₀ with the input's shape.
      parts.initializers.push(doubleInit(p('y0'), [], [y[0]!]));
      parts.nodes.push(onnxNode('Sub', [p('v'), p('xmin')], [p('zero')]), onnxNode('Add', [p('zero'), p('y0')], [output]));
      return;
    }
    const slopes = new Float64Array(m);
    for (let j = 0; j < m - 1; j++) slopes[j] = (y[j + 1]! - y[j]!) / (x[j + 1]! - x[j]!);
    parts.initializers.push(
      doubleInit(p('upper'), [m - 1], x.subarray(1)),
      doubleInit(p('x'), [m], x),
      doubleInit(p('y'), [m], y),
      doubleInit(p('slope'), [m], slopes),
      int64Init(p('last_axis'), [1], [-1]),
    );
    parts.nodes.push(
      onnxNode('Unsqueeze', [p('v'), p('last_axis')], [p('v_col')]),
      onnxNode('GreaterOrEqual', [p('v_col'), p('upper')], [p('above')]),
      onnxNode('Cast', [p('above')], [p('above_i')], [intAttr('to', ONNX_INT32)]),
      onnxNode('ReduceSum', [p('above_i'), p('last_axis')], [p('j')], [intAttr('keepdims', 0)]),
      onnxNode('Gather', [p('x'), p('j')], [p('xj')], [intAttr('axis', 0)]),
      onnxNode('Gather', [p('y'), p('j')], [p('yj')], [intAttr('axis', 0)]),
      onnxNode('Gather', [p('slope'), p('j')], [p('sj')], [intAttr('axis', 0)]),
      onnxNode('Sub', [p('v'), p('xj')], [p('dx')]),
      onnxNode('Mul', [p('sj'), p('dx')], [p('rise')]),
      onnxNode('Add', [p('rise'), p('yj')], [output]),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Classifier probabilities

/** Options of {@link ProbabilityCalibrator.fit}. */
export interface CalibratorOptions {
  method: CalibrationMethod;
  /** What is calibrated: each class's probability (default) or its logit. */
  input?: CalibratorInput;
  /** Isotonic only: bounds on the fitted values. */
  isotonic?: IsotonicOptions;
  /** Platt only: what it fits to (default `smoothed`, as scikit-learn). */
  plattTargets?: PlattTargets;
}

/** The score a calibrator reads from a probability. */
function scoreOf(p: number, input: CalibratorInput): number {
  if (input === 'probability') return p;
  const q = p < LOGIT_EPS ? LOGIT_EPS : p > 1 - LOGIT_EPS ? 1 - LOGIT_EPS : p;
  return Math.log(q / (1 - q));
}

/**
 * Calibrates a classifier's probabilities (`rows × nClasses`, row-major, binary as two columns),
 * one-vs-rest per class as scikit-learn's `CalibratedClassifierCV` (see the module comment).
 */
export class ProbabilityCalibrator {
  private constructor(
    readonly method: CalibrationMethod,
    readonly input: CalibratorInput,
    readonly nClasses: number,
    /** One per calibrated column: the positive class for binary, each class for multiclass. */
    readonly calibrators: readonly ScoreCalibrator[],
  ) {}

  /**
   * Fits on out-of-fold probabilities `proba` (`rows × nClasses`) and class indices `labels`;
   * never fit it on the rows it will be scored on.
   * @throws MedfitError MEDFIT_ERR_BAD_DATA on mismatched, empty or non-finite input, labels
   *   outside 0..nClasses−1, or a calibrated column with one class only (a class missing from the
   *   fold, or present in every row); MEDFIT_ERR_BAD_PARAM on a bad method, input or bound.
   */
  static fit(proba: Float64Array, labels: Float64Array, nClasses: number, options: CalibratorOptions): ProbabilityCalibrator {
    const fn = 'calibration';
    const { method } = options;
    const input = options.input ?? 'probability';
    if (!(CALIBRATION_METHODS as readonly string[]).includes(method)) throw Errors.badParam('method', `must be one of ${CALIBRATION_METHODS.join(', ')}`);
    if (input !== 'probability' && input !== 'logit') throw Errors.badParam('input', 'must be probability or logit');
    if (!Number.isInteger(nClasses) || nClasses < 2) throw Errors.badParam('nClasses', 'must be an integer ≥ 2');
    checkLabels(fn, 'labels', labels, nClasses);
    if (proba.length !== labels.length * nClasses) {
      throw Errors.badData(fn, `proba has ${proba.length} values but labels has ${labels.length} rows of ${nClasses} classes`);
    }
    checkFinite(fn, 'proba', proba);
    const n = labels.length;
    const calibrators: ScoreCalibrator[] = [];
    for (const cls of calibratedColumns(nClasses)) {
      const s = new Float64Array(n);
      const y = new Float64Array(n);
      let positives = 0;
      for (let i = 0; i < n; i++) {
        s[i] = scoreOf(proba[i * nClasses + cls]!, input);
        y[i] = labels[i] === cls ? 1 : 0;
        positives += y[i]!;
      }
      if (positives === 0 || positives === n) {
        throw Errors.badData(
          fn,
          `class ${cls} is ${positives === 0 ? 'absent from' : 'every one of'} the ${n} rows to calibrate on; ` +
            'calibration needs both outcomes for every class (use more rows or folds stratified by class)',
        );
      }
      calibrators.push(method === 'platt' ? PlattCalibrator.fit(s, y, options.plattTargets) : IsotonicCalibrator.fit(s, y, options.isotonic));
    }
    return new ProbabilityCalibrator(method, input, nClasses, calibrators);
  }

  /**
   * Rebuilds a calibrator from `toJSON()`, checking every field.
   * @throws MedfitError MEDFIT_ERR_MANIFEST naming what is wrong.
   */
  static fromJSON(json: unknown, where = 'calibrator'): ProbabilityCalibrator {
    const o = json as Partial<CalibratorState> | null;
    const bad = (msg: string) => Errors.manifest(where, msg);
    if (typeof o !== 'object' || o === null) throw bad('the calibrator state is not an object');
    // The file's own values are not quoted back: a state is data, and errors travel to logs.
    if (o.format !== CALIBRATOR_FORMAT) throw bad(`the calibrator's format is not ${CALIBRATOR_FORMAT}; retrain the model with this medfit`);
    if (!(CALIBRATION_METHODS as readonly unknown[]).includes(o.method)) throw bad(`the calibration method is not one of ${CALIBRATION_METHODS.join(', ')}`);
    if (o.input !== 'probability' && o.input !== 'logit') throw bad("the calibrator's input is not probability or logit");
    // Checked before anything is sized by it.
    if (!Number.isInteger(o.nClasses) || (o.nClasses as number) < 2 || (o.nClasses as number) > MAX_CALIBRATED_CLASSES) {
      throw bad(`nClasses must be an integer in [2, ${MAX_CALIBRATED_CLASSES}]`);
    }
    const nClasses = o.nClasses as number;
    const want = calibratedColumns(nClasses).length;
    if (!Array.isArray(o.calibrators) || o.calibrators.length !== want) throw bad(`a ${nClasses}-class calibrator needs ${want} calibrator(s)`);
    const method = o.method as CalibrationMethod;
    const calibrators = (o.calibrators as unknown[]).map((c, i) =>
      method === 'platt' ? PlattCalibrator.fromJSON(c, `${where} calibrators[${i}]`) : IsotonicCalibrator.fromJSON(c, `${where} calibrators[${i}]`),
    );
    return new ProbabilityCalibrator(method, o.input, nClasses, calibrators);
  }

  /**
   * Calibrated probabilities of `proba` (`rows × nClasses`): binary [1 − p, p]; multiclass each
   * class's calibrated value divided by the row's sum (uniform where that sum is 0).
   * @throws MedfitError MEDFIT_ERR_BAD_DATA on a length that is not rows × nClasses, or a
   *   non-finite value.
   */
  apply(proba: Float64Array): Float64Array {
    const k = this.nClasses;
    if (proba.length % k !== 0) throw Errors.badData('calibration', `proba has ${proba.length} values, not a multiple of ${k} classes`);
    checkFinite('calibration', 'proba', proba);
    const n = proba.length / k;
    const out = new Float64Array(proba.length);
    if (k === 2) {
      const c = this.calibrators[0]!;
      for (let i = 0; i < n; i++) {
        const p = c.predictOne(scoreOf(proba[i * 2 + 1]!, this.input));
        out[i * 2] = 1 - p;
        out[i * 2 + 1] = p;
      }
      return out;
    }
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < k; j++) {
        const p = this.calibrators[j]!.predictOne(scoreOf(proba[i * k + j]!, this.input));
        out[i * k + j] = p;
        sum += p;
      }
      for (let j = 0; j < k; j++) {
        // scikit-learn also sets values in (1, 1 + 1e-5] to 1; a quotient of non-negative parts
        // exceeds 1 only by rounding, so min(·, 1) is the same.
        out[i * k + j] = sum !== 0 ? Math.min(out[i * k + j]! / sum, 1) : 1 / k;
      }
    }
    return out;
  }

  toJSON(): CalibratorState {
    const calibrators = this.calibrators.map((c) => c.toJSON()) as PlattParams[] | IsotonicParams[];
    return { format: CALIBRATOR_FORMAT, method: this.method, input: this.input, nClasses: this.nClasses, calibrators };
  }

  /**
   * Appends the calibration of the FP32 tensor `input` ([N, nClasses] probabilities) to the graph,
   * writing the FP32 tensor `output` ([N, nClasses]); the arithmetic is in double, as `apply`.
   */
  appendOnnx(parts: OnnxGraphParts, input: string, output: string, prefix = 'calibrator'): void {
    const p = (s: string) => `${prefix}_${s}`;
    const k = this.nClasses;
    parts.nodes.push(onnxNode('Cast', [input], [p('in64')], [intAttr('to', ONNX_DOUBLE)]));
    parts.initializers.push(int64Init(p('axis1'), [1], [1]), doubleInit(p('one'), [], [1]));
    if (this.input === 'logit') {
      parts.initializers.push(doubleInit(p('eps_lo'), [], [LOGIT_EPS]), doubleInit(p('eps_hi'), [], [1 - LOGIT_EPS]));
    }
    const columns = calibratedColumns(k);
    const calibrated: string[] = [];
    columns.forEach((cls, i) => {
      const c = `${prefix}_c${cls}`;
      parts.initializers.push(int64Init(`${c}_index`, [], [cls]));
      parts.nodes.push(onnxNode('Gather', [p('in64'), `${c}_index`], [`${c}_p`], [intAttr('axis', 1)]));
      let score = `${c}_p`;
      if (this.input === 'logit') {
        parts.nodes.push(
          onnxNode('Clip', [score, p('eps_lo'), p('eps_hi')], [`${c}_q`]),
          onnxNode('Sub', [p('one'), `${c}_q`], [`${c}_1mq`]),
          onnxNode('Div', [`${c}_q`, `${c}_1mq`], [`${c}_odds`]),
          onnxNode('Log', [`${c}_odds`], [`${c}_logit`]),
        );
        score = `${c}_logit`;
      }
      this.calibrators[i]!.appendOnnx(parts, score, `${c}_cal`, c);
      parts.nodes.push(onnxNode('Unsqueeze', [`${c}_cal`, p('axis1')], [`${c}_col`]));
      calibrated.push(`${c}_col`);
    });
    if (k === 2) {
      parts.nodes.push(
        onnxNode('Sub', [p('one'), calibrated[0]!], [p('negative')]),
        onnxNode('Concat', [p('negative'), calibrated[0]!], [p('out64')], [intAttr('axis', 1)]),
      );
    } else {
      parts.initializers.push(doubleInit(p('zero'), [], [0]), doubleInit(p('uniform'), [], [1 / k]));
      parts.nodes.push(
        onnxNode('Concat', calibrated, [p('cal')], [intAttr('axis', 1)]),
        onnxNode('ReduceSum', [p('cal'), p('axis1')], [p('sum')], [intAttr('keepdims', 1)]),
        onnxNode('Div', [p('cal'), p('sum')], [p('ratio')]),
        onnxNode('Equal', [p('sum'), p('zero')], [p('all_zero')]),
        onnxNode('Where', [p('all_zero'), p('uniform'), p('ratio')], [p('normalised')]),
        onnxNode('Min', [p('normalised'), p('one')], [p('out64')]),
      );
    }
    parts.nodes.push(onnxNode('Cast', [p('out64')], [output], [intAttr('to', ONNX_FLOAT)]));
  }
}

/** Fits a {@link ProbabilityCalibrator}: see `ProbabilityCalibrator.fit`. */
export function fitCalibrator(proba: Float64Array, labels: Float64Array, nClasses: number, options: CalibratorOptions): ProbabilityCalibrator {
  return ProbabilityCalibrator.fit(proba, labels, nClasses, options);
}

/** The columns that get a calibrator: the positive class for binary, every class otherwise. */
function calibratedColumns(nClasses: number): number[] {
  return nClasses === 2 ? [1] : Array.from({ length: nClasses }, (_, i) => i);
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Scores and 0/1 labels of one calibration fold, both outcomes present. */
function checkBinaryFold(fn: string, scores: Float64Array, labels: Float64Array): void {
  checkSameLength(fn, 'scores', scores, 'labels', labels);
  checkLabels(fn, 'labels', labels, 2);
  checkFinite(fn, 'scores', scores);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i]!;
  if (positives === 0 || positives === labels.length) {
    throw Errors.badData(fn, `all ${labels.length} rows have the same label; calibration needs both outcomes`);
  }
}
