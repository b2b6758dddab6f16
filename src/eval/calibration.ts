/**
 * Logistic calibration of predicted probabilities (Cox 1958; Van Calster et al. 2016):
 *
 * - slope: `b` in `logit P(y=1) = a + b·logit(p)`, unpenalised maximum likelihood. 1 is ideal;
 *   below 1 the predictions are too extreme (over-fitting), above 1 too timid.
 * - intercept (calibration-in-the-large): `a` in `logit P(y=1) = a + 1·logit(p)`, i.e. logit(p)
 *   as an offset with the slope fixed at 1. 0 is ideal; negative means risks are over-estimated.
 *
 * Both are fitted by Newton-Raphson (with step halving as a safeguard) to machine precision, and
 * p is clipped to [1e-15, 1 - 1e-15] first so that 0 and 1 give finite logits (±34.5).
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

/** Logistic log-likelihood, gradient and Hessian at (a, b) over (x, y), in one pass. */
function evaluate(y: Uint8Array, x: Float64Array, a: number, b: number) {
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
    let mu: number;
    let softplus: number;
    if (eta >= 0) {
      const e = Math.exp(-eta);
      mu = 1 / (1 + e);
      softplus = eta + Math.log1p(e);
    } else {
      const e = Math.exp(eta);
      mu = e / (1 + e);
      softplus = Math.log1p(e);
    }
    const yi = y[i]!;
    ll += yi * eta - softplus;
    const r = yi - mu;
    const w = mu * (1 - mu);
    g0 += r;
    g1 += r * xi;
    h00 += w;
    h01 += w * xi;
    h11 += w * xi * xi;
  }
  return { ll, g0, g1, h00, h01, h11 };
}

const MAX_ITER = 100;
const MAX_HALVINGS = 60;

/** Near the optimum the log-likelihood moves by less than its rounding; accept such steps. */
function notWorse(next: number, prev: number): boolean {
  return next >= prev - 1e-12 * Math.max(1, Math.abs(prev));
}

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
  let a = 0;
  let b = 1; // a calibrated model's answer, so good models converge in a few steps
  let cur = evaluate(y, x, a, b);
  for (let iter = 0; iter < MAX_ITER; iter++) {
    const det = cur.h00 * cur.h11 - cur.h01 * cur.h01;
    if (!(det > 0)) return NaN;
    const da = (cur.h11 * cur.g0 - cur.h01 * cur.g1) / det;
    const db = (cur.h00 * cur.g1 - cur.h01 * cur.g0) / det;
    let t = 1;
    let next = evaluate(y, x, a + da, b + db);
    for (let h = 0; h < MAX_HALVINGS && !notWorse(next.ll, cur.ll); h++) {
      t /= 2;
      next = evaluate(y, x, a + t * da, b + t * db);
    }
    a += t * da;
    b += t * db;
    cur = next;
    // Quadratic convergence: after a full step this small, the error is below rounding.
    if (t === 1 && Math.max(Math.abs(da), Math.abs(db)) <= 1e-9 * (1 + Math.max(Math.abs(a), Math.abs(b)))) return b;
  }
  return NaN;
}

function fitIntercept(y: Uint8Array, x: Float64Array): number {
  let a = 0;
  let cur = evaluate(y, x, a, 1);
  for (let iter = 0; iter < MAX_ITER; iter++) {
    if (!(cur.h00 > 0)) return NaN;
    const da = cur.g0 / cur.h00;
    let t = 1;
    let next = evaluate(y, x, a + da, 1);
    for (let h = 0; h < MAX_HALVINGS && !notWorse(next.ll, cur.ll); h++) {
      t /= 2;
      next = evaluate(y, x, a + t * da, 1);
    }
    a += t * da;
    cur = next;
    if (t === 1 && Math.abs(da) <= 1e-9 * (1 + Math.abs(a))) return a;
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
  let positives = 0;
  for (let i = 0; i < n; i++) {
    const yi = labels[i] === cls ? 1 : 0;
    y[i] = yi;
    positives += yi;
    const v = p[i * stride + offset]!;
    const q = v < CALIBRATION_EPS ? CALIBRATION_EPS : v > 1 - CALIBRATION_EPS ? 1 - CALIBRATION_EPS : v;
    x[i] = Math.log(q / (1 - q));
  }
  if (positives === 0 || positives === n) return { slope: NaN, intercept: NaN };
  return { slope: fitSlope(y, x), intercept: fitIntercept(y, x) };
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
