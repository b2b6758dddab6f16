/**
 * The early-stopping holdouts and row weights the network trainers (MLP, sequence networks)
 * share: seeded, per class for classification, whole groups (patients, subjects) when given;
 * and the row copies that split their Float32 inputs and Float64 targets.
 */
import type { Rng } from '../core/index.js';

/**
 * A seeded holdout of `share` of `rows` rows; per class (`y` holds class indices) when
 * `nClasses > 0`, so every class with at least two rows is on both sides.
 */
export function rowHoldout(rows: number, y: Float64Array, nClasses: number, share: number, rng: Rng): { train: number[]; valid: number[] } {
  const groups: number[][] = nClasses > 0 ? Array.from({ length: nClasses }, () => []) : [[]];
  for (let i = 0; i < rows; i++) groups[nClasses > 0 ? y[i]! : 0]!.push(i);
  const train: number[] = [];
  const valid: number[] = [];
  for (const g of groups) {
    rng.shuffle(g);
    const k = g.length < 2 ? 0 : Math.max(1, Math.round(g.length * share));
    for (let i = 0; i < g.length; i++) (i < k ? valid : train).push(g[i]!);
  }
  train.sort((a, b) => a - b);
  valid.sort((a, b) => a - b);
  return { train, valid };
}

/**
 * A seeded holdout of whole groups (subjects) with about `share` of the rows: groups in a seeded
 * order go to the holdout until it has its share, so no subject's windows are on both sides; at
 * least one group always stays in training.
 */
export function groupHoldout(groups: Int32Array, share: number, rng: Rng): { train: number[]; valid: number[] } {
  const sizes = new Map<number, number>();
  for (let i = 0; i < groups.length; i++) sizes.set(groups[i]!, (sizes.get(groups[i]!) ?? 0) + 1);
  const ids = rng.shuffle([...sizes.keys()].sort((a, b) => a - b));
  const chosen = new Set<number>();
  let taken = 0;
  const want = Math.max(1, Math.round(groups.length * share));
  for (let i = 0; i < ids.length - 1 && taken < want; i++) {
    chosen.add(ids[i]!);
    taken += sizes.get(ids[i]!)!;
  }
  const train: number[] = [];
  const valid: number[] = [];
  for (let i = 0; i < groups.length; i++) (chosen.has(groups[i]!) ? valid : train).push(i);
  return { train, valid };
}

/** scikit-learn's 'balanced' class weights: n / (k · count(c)); absent classes get weight 0. */
export function balancedWeights(y: Float64Array, nClasses: number): Float64Array {
  const counts = new Float64Array(nClasses);
  for (const v of y) counts[v]!++;
  return counts.map((c) => (c > 0 ? y.length / (nClasses * c) : 0));
}

/** Scales weights so that they average 1 (the loss keeps its scale whatever the weights). */
export function normalizeMean(w: Float64Array): void {
  let s = 0;
  for (const v of w) s += v;
  const m = s / w.length;
  if (m > 0) for (let i = 0; i < w.length; i++) w[i] = w[i]! / m;
}

/** Rows `idx` of a Float32 matrix (a trainer's inputs), as a new matrix. */
export function takeRowsF32(m: { rows: number; cols: number; data: Float32Array }, idx: ArrayLike<number>): { rows: number; cols: number; data: Float32Array } {
  const out = new Float32Array(idx.length * m.cols);
  for (let k = 0; k < idx.length; k++) out.set(m.data.subarray(idx[k]! * m.cols, (idx[k]! + 1) * m.cols), k * m.cols);
  return { rows: idx.length, cols: m.cols, data: out };
}

/** Rows `idx` of `v`, `width` values per row (targets, row weights). */
export function takeRowsF64(v: Float64Array, idx: ArrayLike<number>, width = 1): Float64Array {
  const out = new Float64Array(idx.length * width);
  if (width === 1) for (let k = 0; k < idx.length; k++) out[k] = v[idx[k]!]!;
  else for (let k = 0; k < idx.length; k++) out.set(v.subarray(idx[k]! * width, (idx[k]! + 1) * width), k * width);
  return out;
}
