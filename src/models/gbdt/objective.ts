/**
 * The boosting objectives' link functions and Newton gradients, in a module of their own (no
 * imports) because the histogram workers (`hist-worker.ts`) compute gradients for their share of
 * the rows with exactly this code: the same function on the same inputs, so the same bits.
 */
import type { Task } from '../../core/index.js';

/** Hessians are floored so a confidently-fit row cannot make a leaf's denominator vanish. */
export const MIN_HESS = 1e-16;

/** Logistic function, written to avoid overflow in exp for large |z|. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** Softmax of `src[off..off+k)` into `dst` at the same offset, max-shifted for stability. */
export function softmaxInto(src: Float64Array, off: number, k: number, dst: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < k; j++) if (src[off + j]! > max) max = src[off + j]!;
  let sum = 0;
  for (let j = 0; j < k; j++) {
    const e = Math.exp(src[off + j]! - max);
    dst[off + j] = e;
    sum += e;
  }
  for (let j = 0; j < k; j++) dst[off + j] = dst[off + j]! / sum;
}

/**
 * Gradients and hessians of rows [start, end) for every output into `gh`: (g, h) of row i, output
 * c at `2 * (c * n + i)`. `raw` holds the raw scores (`rows × k`), `prob` is scratch of the same
 * shape (multiclass), `w` the optional row weights.
 */
export function computeGradients(
  task: Task,
  y: Float64Array,
  w: Float64Array | undefined,
  raw: Float64Array,
  prob: Float64Array,
  gh: Float64Array,
  n: number,
  k: number,
  start = 0,
  end = n,
): void {
  if (task === 'regression') {
    // Squared error separates by output: output c's gradient reads only its own column.
    for (let c = 0; c < k; c++) {
      const o = 2 * c * n;
      for (let i = start; i < end; i++) {
        const wi = w ? w[i]! : 1;
        gh[o + 2 * i] = wi * (raw[i * k + c]! - y[i * k + c]!);
        gh[o + 2 * i + 1] = wi;
      }
    }
  } else if (task === 'binary') {
    for (let i = start; i < end; i++) {
      const wi = w ? w[i]! : 1;
      const p = sigmoid(raw[i]!);
      gh[2 * i] = wi * (p - y[i]!);
      gh[2 * i + 1] = wi * Math.max(p * (1 - p), MIN_HESS);
    }
  } else {
    for (let i = start; i < end; i++) {
      softmaxInto(raw, i * k, k, prob);
      const wi = w ? w[i]! : 1;
      const yi = y[i]!;
      for (let c = 0; c < k; c++) {
        const p = prob[i * k + c]!;
        gh[2 * (c * n + i)] = wi * (p - (c === yi ? 1 : 0));
        gh[2 * (c * n + i) + 1] = wi * Math.max(p * (1 - p), MIN_HESS);
      }
    }
  }
}
