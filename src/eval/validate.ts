/**
 * Input checks shared by the eval functions. Messages name the function, the lengths and the
 * offending index, never a record's value (labels and predictions are health data).
 */
import { Errors } from '../core/index.js';

/** Throws unless every value is finite: NaN or ±Infinity is a bug upstream, not a score. */
export function checkFinite(fn: string, name: string, v: Float64Array): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) throw Errors.badData(fn, `${name}[${i}] is not a finite number`);
  }
}

/** Throws unless `y` is non-empty and holds class indices 0..k-1. */
export function checkLabels(fn: string, name: string, y: Float64Array, k: number): void {
  if (y.length === 0) throw Errors.badData(fn, `${name} is empty; metrics need at least one row`);
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v < k)) {
      throw Errors.badData(fn, `${name}[${i}] is not a class index in 0..${k - 1}`);
    }
  }
}

/** Throws unless two per-row arrays have the same length. */
export function checkSameLength(fn: string, aName: string, a: ArrayLike<number>, bName: string, b: ArrayLike<number>): void {
  if (a.length !== b.length) {
    throw Errors.badData(fn, `${aName} has ${a.length} values but ${bName} has ${b.length}; they must be the same length`);
  }
}
