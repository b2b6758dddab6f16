import { Errors, type Matrix, type Task } from '../../core/index.js';
import { parseParams, SMALL_TABLE_ROWS, type ParamSpec } from '../params.js';
import type { ModelFamily, ModelState, Params, TrainData, TrainedModel } from '../types.js';
import { lbfgs } from './lbfgs.js';

/**
 * Weights of a linear model: `coef` is `outputs × nFeatures` row-major, `intercept` has one entry
 * per output. Binary logistic has one output (the positive class's logit), multinomial one per
 * class, ridge one per regression output (`nOutputs`, default 1). This is also exactly what the
 * ONNX exporter writes as a Gemm.
 */
export interface LinearWeights {
  coef: number[];
  intercept: number[];
  outputs: number;
}

const LOGISTIC_SPEC: Record<string, ParamSpec> = {
  C: { type: 'float', min: 0, max: 1e12, exclusiveMin: true, help: 'inverse L2 strength, as scikit-learn' },
  max_iter: { type: 'int', min: 1, max: 100000, help: 'L-BFGS iterations' },
  class_weight: { type: 'enum', values: ['none', 'balanced'], help: 'reweight classes for imbalance' },
};

const RIDGE_SPEC: Record<string, ParamSpec> = {
  alpha: { type: 'float', min: 0, max: 1e12, help: 'L2 strength, as scikit-learn Ridge' },
};

/** L2-regularised logistic regression (binary and multinomial), scikit-learn's objective. */
export const logistic: ModelFamily = {
  name: 'logistic',
  tasks: ['binary', 'multiclass'],
  paramSpec: LOGISTIC_SPEC,
  defaults: () => ({ C: 1, max_iter: 1000, class_weight: 'none' }),
  // Inverse regularisation on a log scale; small tables stay on the regularised side.
  searchSpace: (_task, rows) => ({
    C: { type: 'float', low: 1e-3, high: rows < SMALL_TABLE_ROWS ? 10 : 100, log: true },
    class_weight: { type: 'choice', values: ['none', 'balanced'] },
  }),
  parseParams(raw, task, rows) {
    return parseParams('logistic', LOGISTIC_SPEC, this.defaults(task, rows), raw);
  },
  async train(data, params, ctx) {
    ctx.onProgress?.({ stage: 'logistic', fraction: 0 });
    if (ctx.signal?.aborted) throw Errors.cancelled('training');
    if ((data.nOutputs ?? 1) !== 1) throw Errors.badData('', `logistic learns one target; it was given ${String(data.nOutputs)} outputs`);
    const w = trainLogistic(data, params);
    ctx.onProgress?.({ stage: 'logistic', fraction: 1 });
    return new LinearModel('logistic', data.task, data.nClasses, data.x.cols, params, w);
  },
  load: (state) => loadLinear('logistic', state),
};

/**
 * Ridge regression (`linear`), solved exactly with an unpenalised intercept. Several outputs
 * (`TrainData.nOutputs`) share one Cholesky factorisation of XᵀWX + αI, one solve per output: the
 * same coefficients as fitting each output alone, as scikit-learn's `Ridge` on a 2-D target.
 */
export const linear: ModelFamily = {
  name: 'linear',
  tasks: ['regression'],
  multiOutput: true,
  paramSpec: RIDGE_SPEC,
  defaults: () => ({ alpha: 1 }),
  searchSpace: (_task, rows) => ({ alpha: { type: 'float', low: rows < SMALL_TABLE_ROWS ? 0.1 : 1e-2, high: 1e3, log: true } }),
  parseParams(raw, task, rows) {
    return parseParams('linear', RIDGE_SPEC, this.defaults(task, rows), raw);
  },
  async train(data, params, ctx) {
    if (ctx.signal?.aborted) throw Errors.cancelled('training');
    const w = trainRidge(data, Number(params['alpha']));
    ctx.onProgress?.({ stage: 'linear', fraction: 1 });
    return new LinearModel('linear', data.task, 1, data.x.cols, params, w, w.outputs > 1 ? w.outputs : undefined);
  },
  load: (state) => loadLinear('linear', state),
};

class LinearModel implements TrainedModel {
  constructor(
    readonly family: 'logistic' | 'linear',
    readonly task: Task,
    readonly nClasses: number,
    readonly nFeatures: number,
    readonly params: Params,
    private readonly w: LinearWeights,
    /** Regression outputs when more than one (absent means 1, as in `ModelState`). */
    readonly nOutputs?: number,
  ) {}

  predict(x: Matrix): Float64Array {
    if (x.cols !== this.nFeatures) throw Errors.internal(`model expects ${this.nFeatures} features, got ${x.cols}`);
    const { coef, intercept, outputs } = this.w;
    const z = new Float64Array(x.rows * outputs);
    for (let i = 0; i < x.rows; i++) {
      for (let o = 0; o < outputs; o++) {
        let s = intercept[o]!;
        for (let j = 0; j < x.cols; j++) s += coef[o * x.cols + j]! * x.data[i * x.cols + j]!;
        z[i * outputs + o] = s;
      }
    }
    if (this.task === 'regression') return z;
    if (this.task === 'binary') {
      const p = new Float64Array(x.rows * 2);
      for (let i = 0; i < x.rows; i++) {
        const p1 = sigmoid(z[i]!);
        p[2 * i] = 1 - p1;
        p[2 * i + 1] = p1;
      }
      return p;
    }
    for (let i = 0; i < x.rows; i++) softmaxInPlace(z, i * outputs, outputs);
    return z;
  }

  toState(): ModelState {
    return {
      family: this.family,
      task: this.task,
      nClasses: this.nClasses,
      nFeatures: this.nFeatures,
      params: this.params,
      weights: this.w,
      // Only written for several outputs, so a single-output state stays as it always was.
      ...(this.nOutputs !== undefined ? { nOutputs: this.nOutputs } : {}),
    };
  }
}

function loadLinear(family: 'logistic' | 'linear', state: ModelState): TrainedModel {
  const w = state.weights as Partial<LinearWeights> | null;
  const nOutputs = state.nOutputs ?? 1;
  if (!Number.isInteger(nOutputs) || nOutputs < 1 || (nOutputs > 1 && (family !== 'linear' || state.task !== 'regression'))) {
    throw Errors.manifest(family, `nOutputs ${String(state.nOutputs)} does not fit a ${family} ${state.task} model`);
  }
  const expectedOutputs = state.task === 'multiclass' ? state.nClasses : state.task === 'regression' ? nOutputs : 1;
  if (
    !w ||
    !Array.isArray(w.coef) ||
    !Array.isArray(w.intercept) ||
    w.outputs !== expectedOutputs ||
    w.coef.length !== expectedOutputs * state.nFeatures ||
    w.intercept.length !== expectedOutputs ||
    ![...w.coef, ...w.intercept].every((v) => typeof v === 'number' && Number.isFinite(v))
  ) {
    throw Errors.manifest(family, `weights do not match ${expectedOutputs} output(s) × ${state.nFeatures} features`);
  }
  return new LinearModel(family, state.task, state.nClasses, state.nFeatures, state.params, w as LinearWeights, nOutputs > 1 ? nOutputs : undefined);
}

/** Per-row weights: the caller's, times balanced class weights when asked for. */
function rowWeights(data: TrainData, classWeight: string): Float64Array {
  const n = data.x.rows;
  const w = data.weights ? Float64Array.from(data.weights) : new Float64Array(n).fill(1);
  if (classWeight === 'balanced') {
    const counts = new Float64Array(data.nClasses);
    for (let i = 0; i < n; i++) counts[data.y[i]!]!++;
    for (let i = 0; i < n; i++) w[i]! *= n / (data.nClasses * counts[data.y[i]!]!);
  }
  return w;
}

function trainLogistic(data: TrainData, params: Params): LinearWeights {
  const { x, y } = data;
  const n = x.rows;
  const d = x.cols;
  const k = data.task === 'binary' ? 1 : data.nClasses;
  const C = Number(params['C']);
  const sw = rowWeights(data, String(params['class_weight']));
  const z = new Float64Array(k);
  // Parameter vector: k·d coefficients, then k intercepts (not penalised, as in scikit-learn).
  const fg = (theta: Float64Array, grad: Float64Array): number => {
    grad.fill(0);
    let f = 0;
    for (let i = 0; i < n; i++) {
      const row = i * d;
      for (let o = 0; o < k; o++) {
        let s = theta[k * d + o]!;
        for (let j = 0; j < d; j++) s += theta[o * d + j]! * x.data[row + j]!;
        z[o] = s;
      }
      const wi = sw[i]!;
      if (k === 1) {
        const yi = y[i]!;
        const zi = z[0]!;
        // log(1 + e^z) - y z, computed without overflow.
        f += wi * (Math.max(zi, 0) + Math.log1p(Math.exp(-Math.abs(zi))) - yi * zi);
        const r = wi * (sigmoid(zi) - yi);
        for (let j = 0; j < d; j++) grad[j]! += r * x.data[row + j]!;
        grad[d]! += r;
      } else {
        let max = -Infinity;
        for (let o = 0; o < k; o++) max = Math.max(max, z[o]!);
        let sum = 0;
        for (let o = 0; o < k; o++) sum += Math.exp(z[o]! - max);
        const lse = max + Math.log(sum);
        f += wi * (lse - z[y[i]!]!);
        for (let o = 0; o < k; o++) {
          const r = wi * (Math.exp(z[o]! - lse) - (o === y[i] ? 1 : 0));
          for (let j = 0; j < d; j++) grad[o * d + j]! += r * x.data[row + j]!;
          grad[k * d + o]! += r;
        }
      }
    }
    for (let t = 0; t < k * d; t++) {
      f += (0.5 / C) * theta[t]! * theta[t]!;
      grad[t]! += theta[t]! / C;
    }
    return f;
  };
  const res = lbfgs(fg, new Float64Array(k * d + k), { maxIter: Number(params['max_iter']), tol: 1e-8 });
  return { coef: Array.from(res.x.subarray(0, k * d)), intercept: Array.from(res.x.subarray(k * d)), outputs: k };
}

function trainRidge(data: TrainData, alpha: number): LinearWeights {
  const { x, y } = data;
  const n = x.rows;
  const d = x.cols;
  const m = data.nOutputs ?? 1;
  if (!Number.isInteger(m) || m < 1) throw Errors.badData('', `linear: nOutputs must be a positive integer, got ${String(m)}`);
  if (y.length !== n * m) throw Errors.badData('', `linear: ${n} rows × ${m} output(s) need ${n * m} targets, got ${y.length}`);
  const sw = data.weights ?? new Float64Array(n).fill(1);
  let wsum = 0;
  const xm = new Float64Array(d);
  const ym = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    wsum += sw[i]!;
    for (let o = 0; o < m; o++) ym[o]! += sw[i]! * y[i * m + o]!;
    for (let j = 0; j < d; j++) xm[j]! += sw[i]! * x.data[i * d + j]!;
  }
  for (let o = 0; o < m; o++) ym[o]! /= wsum;
  for (let j = 0; j < d; j++) xm[j]! /= wsum;
  // Normal equations on centred data: (XᵀWX + αI) B = XᵀW Y, B with one column per output; the
  // intercepts absorb the means. B is kept d × m row-major (the right-hand sides side by side).
  const A = new Float64Array(d * d);
  const B = new Float64Array(d * m);
  const xc = new Float64Array(d);
  const yc = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) xc[j] = x.data[i * d + j]! - xm[j]!;
    for (let o = 0; o < m; o++) yc[o] = y[i * m + o]! - ym[o]!;
    const wi = sw[i]!;
    for (let j = 0; j < d; j++) {
      for (let o = 0; o < m; o++) B[j * m + o]! += wi * xc[j]! * yc[o]!;
      for (let l = 0; l <= j; l++) A[j * d + l]! += wi * xc[j]! * xc[l]!;
    }
  }
  for (let j = 0; j < d; j++) {
    for (let l = 0; l < j; l++) A[l * d + j] = A[j * d + l]!;
    // A tiny jitter keeps the solve defined for alpha = 0 with collinear columns.
    A[j * d + j]! += alpha + 1e-10;
  }
  // One factorisation, one pair of triangular solves per output.
  const L = cholesky(A, d);
  const coef = new Array<number>(m * d);
  const intercept = new Array<number>(m);
  const b = new Float64Array(d);
  for (let o = 0; o < m; o++) {
    for (let j = 0; j < d; j++) b[j] = B[j * m + o]!;
    const beta = solveCholesky(L, b, d);
    let c = ym[o]!;
    for (let j = 0; j < d; j++) {
      c -= beta[j]! * xm[j]!;
      coef[o * d + j] = beta[j]!;
    }
    intercept[o] = c;
  }
  return { coef, intercept, outputs: m };
}

/** The Cholesky factor L (lower, row-major) of a symmetric positive-definite A. */
function cholesky(A: Float64Array, d: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * d + j]!;
      for (let k = 0; k < j; k++) s -= L[i * d + k]! * L[j * d + k]!;
      if (i === j) {
        if (s <= 0) throw Errors.badData('', 'features are linearly dependent; raise linear.alpha');
        L[i * d + i] = Math.sqrt(s);
      } else L[i * d + j] = s / L[j * d + j]!;
    }
  }
  return L;
}

/** Solves L Lᵀ x = b by forward and back substitution. */
function solveCholesky(L: Float64Array, b: Float64Array, d: number): Float64Array {
  const z = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * d + k]! * z[k]!;
    z[i] = s / L[i * d + i]!;
  }
  const out = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let k = i + 1; k < d; k++) s -= L[k * d + i]! * out[k]!;
    out[i] = s / L[i * d + i]!;
  }
  return out;
}

function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

function softmaxInPlace(z: Float64Array, offset: number, k: number): void {
  let max = -Infinity;
  for (let o = 0; o < k; o++) max = Math.max(max, z[offset + o]!);
  let sum = 0;
  for (let o = 0; o < k; o++) sum += z[offset + o] = Math.exp(z[offset + o]! - max);
  for (let o = 0; o < k; o++) z[offset + o]! /= sum;
}
