/**
 * Logistic calibration of predicted probabilities (Cox 1958; Van Calster et al. 2016):
 *
 * - slope: `b` in `logit P(y=1) = a + b·logit(p)`, unpenalised maximum likelihood. 1 is ideal;
 *   below 1 the predictions are too extreme (over-fitting), above 1 too timid.
 * - intercept (calibration-in-the-large): `a` in `logit P(y=1) = a + 1·logit(p)`, i.e. logit(p)
 *   as an offset with the slope fixed at 1. 0 is ideal; negative means risks are over-estimated.
 *
 * Both are fitted by Newton-Raphson to machine precision, with step halving on the log-likelihood
 * as a safeguard for long steps (confidently wrong predictions overshoot from the start), and p is
 * clipped to [1e-15, 1 - 1e-15] first so that 0 and 1 give finite logits (±34.5). Reference
 * values: scripts/golden_metrics.py (NumPy Newton and sklearn for the slope, brentq for the
 * intercept).
 * Undefined fits give NaN rather than a huge number or an exception: one class present, or, for
 * the slope, logit(p) separating the classes (no finite maximum exists).
 */

import { checkFinite, checkLabels, checkSameLength } from './validate.js';

/** Clipping bound for p before the logit. */
export const CALIBRATION_EPS = 1e-15;

/** Result of {@link calibration}. */
export interface Calibration {
  slope: number;
  intercept: number;
}

interface Evaluation {
  /** Log-likelihood; NaN when not computed (it costs a log per row, and most steps skip it). */
  ll: number;
  g0: number;
  g1: number;
  h00: number;
  h01: number;
  h11: number;
}

/** Logistic log-likelihood (optional), gradient and Hessian at (a, b) over (x, y), in one pass. */
function evaluate(y: Uint8Array, x: Float64Array, a: number, b: number, withLl: boolean): Evaluation {
  let ll = 0;
  let g0 = 0;
  let g1 = 0;
  let h00 = 0;
  let h01 = 0;
  let h11 = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const eta = a + b * xi;
    // One exp per row, in the direction that cannot overflow.
    const e = Math.exp(-Math.abs(eta));
    const mu = eta >= 0 ? 1 / (1 + e) : e / (1 + e);
    const yi = y[i]!;
    if (withLl) ll += yi * eta - (Math.max(eta, 0) + Math.log1p(e));
    const r = yi - mu;
    const w = mu * (1 - mu);
    g0 += r;
    g1 += r * xi;
    h00 += w;
    h01 += w * xi;
    h11 += w * xi * xi;
  }
  return { ll: withLl ? ll : NaN, g0, g1, h00, h01, h11 };
}

const MAX_ITER = 100;
const MAX_HALVINGS = 60;
/**
 * A Newton step moving every linear predictor by at most this much needs no likelihood check:
 * the logistic weight μ(1−μ) changes by at most a factor e^|Δη| (its log-derivative is within
 * ±1), so ll(β+d) − ll(β) ≥ dᵀHd·(1 − e^0.5/2) > 0 (Bach 2010's self-concordance argument).
 * That skips the per-row log on the final, quadratically converging steps.
 */
const SAFE_STEP = 0.5;

/** Near the optimum the log-likelihood moves by less than its rounding; accept such steps. */
function notWorse(next: number, prev: number): boolean {
  return next >= prev - 1e-12 * Math.max(1, Math.abs(prev));
}

/** Converged when the next Newton step is below rounding of the answer: its error is ~step². */
const tiny = (step: number, scale: number) => Math.abs(step) <= 1e-9 * (1 + Math.abs(scale));

function fitSlope(y: Uint8Array, x: Float64Array): number {
  let minPos = Infinity;
  let maxPos = -Infinity;
  let minNeg = Infinity;
  let maxNeg = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (y[i]) {
      if (v < minPos) minPos = v;
      if (v > maxPos) maxPos = v;
    } else {
      if (v < minNeg) minNeg = v;
      if (v > maxNeg) maxNeg = v;
    }
  }
  // With one covariate and an intercept the MLE exists iff the classes overlap strictly
  // (no threshold on x puts all positives on one side and all negatives on the other).
  if (!(minPos < maxNeg && minNeg < maxPos)) return NaN;
  const xMin = Math.min(minPos, minNeg);
  const xMax = Math.max(maxPos, maxNeg);
  let a = 0;
  let b = 1; // a calibrated model's answer, so good models converge in a few steps
  // The first step from (0, 1) is usually too long to skip the likelihood check: compute it now.
  let cur = evaluate(y, x, a, b, true);
  for (let iter = 0; iter < MAX_ITER; iter++) {
    const det = cur.h00 * cur.h11 - cur.h01 * cur.h01;
    if (!(det > 0)) return NaN;
    const da = (cur.h11 * cur.g0 - cur.h01 * cur.g1) / det;
    const db = (cur.h00 * cur.g1 - cur.h01 * cur.g0) / det;
    if (tiny(da, a) && tiny(db, b)) return b + db;
    // Δη = da + db·x is linear in x, so its largest size is at an end of x's range.
    if (Math.max(Math.abs(da + db * xMin), Math.abs(da + db * xMax)) <= SAFE_STEP) {
      a += da;
      b += db;
      cur = evaluate(y, x, a, b, false);
      continue;
    }
    if (Number.isNaN(cur.ll)) cur = evaluate(y, x, a, b, true);
    let t = 1;
    let next = evaluate(y, x, a + da, b + db, true);
    for (let h = 0; h < MAX_HALVINGS && !notWorse(next.ll, cur.ll); h++) {
      t /= 2;
      next = evaluate(y, x, a + t * da, b + t * db, true);
    }
    a += t * da;
    b += t * db;
    cur = next;
  }
  return NaN;
}

/**
 * Calibration-in-the-large: the 1-parameter fit of `a` with logit(p) as offset. `odds[i]` is
 * exp(−logit pᵢ) = (1−pᵢ)/pᵢ, so μᵢ = 1/(1 + e^−a·oddsᵢ) costs a division, not an exp, per row.
 */
function fitIntercept(y: Uint8Array, odds: Float64Array): number {
  const n = odds.length;
  const at = (a: number, withLl: boolean) => {
    const c = Math.exp(-a);
    let g = 0;
    let h = 0;
    let ll = 0;
    for (let i = 0; i < n; i++) {
      const mu = 1 / (1 + c * odds[i]!);
      g += y[i]! - mu;
      h += mu * (1 - mu);
      if (withLl) ll += Math.log(y[i] ? mu : 1 - mu);
    }
    return { g, h, ll: withLl ? ll : NaN };
  };
  let a = 0;
  let cur = at(a, false);
  for (let iter = 0; iter < MAX_ITER; iter++) {
    if (!(cur.h > 0)) return NaN;
    const da = cur.g / cur.h;
    if (tiny(da, a)) return a + da;
    // Every row's Δη is da here: the same safe-step bound as the slope fit.
    if (Math.abs(da) <= SAFE_STEP) {
      a += da;
      cur = at(a, false);
      continue;
    }
    if (Number.isNaN(cur.ll)) cur = at(a, true);
    let t = 1;
    let next = at(a + da, true);
    for (let h = 0; h < MAX_HALVINGS && !notWorse(next.ll, cur.ll); h++) {
      t /= 2;
      next = at(a + t * da, true);
    }
    a += t * da;
    cur = next;
  }
  return NaN;
}

/**
 * Calibration slope and intercept of probabilities `p[i * stride + offset]` against the binary
 * outcome `labels[i] === cls` (the stride reads one column of a row-major probability matrix).
 * NaN where undefined (see the module comment). Inputs are assumed checked by the caller.
 */
export function calibrationOf(labels: Float64Array, cls: number, p: Float64Array, stride = 1, offset = 0): Calibration {
  const n = labels.length;
  const y = new Uint8Array(n);
  const x = new Float64Array(n);
  const odds = new Float64Array(n);
  let positives = 0;
  for (let i = 0; i < n; i++) {
    const yi = labels[i] === cls ? 1 : 0;
    y[i] = yi;
    positives += yi;
    const v = p[i * stride + offset]!;
    const q = v < CALIBRATION_EPS ? CALIBRATION_EPS : v > 1 - CALIBRATION_EPS ? 1 - CALIBRATION_EPS : v;
    x[i] = Math.log(q / (1 - q));
    odds[i] = (1 - q) / q;
  }
  if (positives === 0 || positives === n) return { slope: NaN, intercept: NaN };
  return { slope: fitSlope(y, x), intercept: fitIntercept(y, odds) };
}

/**
 * Calibration slope and intercept of probabilities `p` for the 0/1 outcome `yTrueBinary`
 * (see the module comment for definitions). NaN where undefined; never throws for that.
 * @throws MedfitError MEDFIT_ERR_BAD_DATA on a length mismatch, labels other than 0/1, empty or
 *   non-finite input.
 */
export function calibration(yTrueBinary: Float64Array, p: Float64Array): Calibration {
  const fn = 'calibration';
  checkSameLength(fn, 'yTrueBinary', yTrueBinary, 'p', p);
  checkLabels(fn, 'yTrueBinary', yTrueBinary, 2);
  checkFinite(fn, 'p', p);
  return calibrationOf(yTrueBinary, 1, p);
}
