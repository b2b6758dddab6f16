import type { Matrix } from '../../core/index.js';

/**
 * Per-feature quantile bins. `upper[f][b]` is the largest float32 value seen in bin `b` of feature
 * `f` (ascending), so "bin <= b" is exactly "Math.fround(x) <= upper[f][b]" for every value the
 * bins were fitted on. That equivalence is what lets a split found on bins be stored as a plain
 * float32 threshold that ONNX Runtime (BRANCH_LEQ on float32 inputs) evaluates identically.
 */
export interface BinMapper {
  /** Number of bins per feature (0 when a feature has no non-NaN value). */
  nBins: Int32Array;
  /** Upper edge (largest member, a float32 value) of each bin, per feature. */
  upper: Float64Array[];
}

/** Rows used to place bin edges; beyond this a strided subsample is as good and much cheaper. */
const MAX_FIT_ROWS = 200_000;

/**
 * Places at most `maxBins` bins per feature at the quantiles of the (float32-rounded) values.
 * Features with few distinct values get one bin per value; otherwise bins hold about equal row
 * counts, never splitting a run of equal values (a threshold cannot separate equal values).
 */
export function fitBins(x: Matrix, maxBins: number): BinMapper {
  const { rows, cols, data } = x;
  const stride = rows > MAX_FIT_ROWS ? Math.ceil(rows / MAX_FIT_ROWS) : 1;
  const m = Math.ceil(rows / stride);
  const vals = new Float32Array(m);
  const nBins = new Int32Array(cols);
  const upper: Float64Array[] = [];
  for (let f = 0; f < cols; f++) {
    let k = 0;
    for (let i = 0; i < rows; i += stride) {
      const v = data[i * cols + f]!;
      // NaN is left out of the edges; it is routed to bin 0 (left of every split) instead.
      if (v === v) vals[k++] = v;
    }
    const sorted = vals.subarray(0, k).sort();
    // Distinct values and their counts.
    const distinct: number[] = [];
    const counts: number[] = [];
    for (let i = 0; i < k; i++) {
      const v = sorted[i]!;
      if (distinct.length > 0 && distinct[distinct.length - 1] === v) counts[counts.length - 1]!++;
      else {
        distinct.push(v);
        counts.push(1);
      }
    }
    let edges: number[];
    if (distinct.length <= maxBins) edges = distinct;
    else {
      edges = [];
      let consumed = 0;
      let acc = 0;
      for (let i = 0; i < distinct.length; i++) {
        acc += counts[i]!;
        const binsLeft = maxBins - edges.length;
        if (binsLeft <= 1) continue; // the last bin takes everything that remains
        const target = (k - consumed) / binsLeft;
        const next = i + 1 < distinct.length ? counts[i + 1]! : 0;
        // Close the bin when adding the next value would overshoot the target by more than
        // stopping here undershoots it; keeps heavy ties from starving the later bins.
        if (acc >= target || acc + next / 2 > target) {
          edges.push(distinct[i]!);
          consumed += acc;
          acc = 0;
        }
      }
      if (acc > 0 || edges[edges.length - 1] !== distinct[distinct.length - 1]) edges.push(distinct[distinct.length - 1]!);
    }
    nBins[f] = edges.length;
    upper.push(Float64Array.from(edges));
  }
  return { nBins, upper };
}

/**
 * Bin index of every cell, row-major like the matrix (`out[i * cols + f]`), one byte per cell:
 * histogram building walks a node's rows, so each row's bins being contiguous is what matters.
 * NaN goes to bin 0; values above the last edge (unseen when the edges were fitted on a
 * subsample) go to the last bin, which matches the threshold rule since they are above every
 * threshold.
 */
export function applyBins(x: Matrix, mapper: BinMapper): Uint8Array {
  const { rows, cols, data } = x;
  const out = new Uint8Array(rows * cols);
  for (let f = 0; f < cols; f++) {
    const up = mapper.upper[f]!;
    const nb = mapper.nBins[f]!;
    if (nb <= 1) continue; // all zeros already
    for (let i = 0; i < rows; i++) {
      const v = Math.fround(data[i * cols + f]!);
      if (v !== v) continue;
      // First bin whose upper edge is >= v.
      let lo = 0;
      let hi = nb - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (v <= up[mid]!) hi = mid;
        else lo = mid + 1;
      }
      out[i * cols + f] = lo;
    }
  }
  return out;
}
