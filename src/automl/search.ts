/**
 * The pieces of the budgeted hyperparameter search (`medfit train --budget`) that do not train:
 * quasi-random sampling of a family's `searchSpace`, the successive-halving schedule over
 * cross-validation folds, and the budget's arithmetic. `train.ts` runs the trials.
 *
 * Why these choices:
 * - Quasi-random starts (a Halton sequence, randomly shifted per family and seed) cover a space
 *   more evenly than independent draws at the small sample sizes a minute allows (Bergstra and
 *   Bengio 2012); the shift keeps different seeds from trying the same points.
 * - Successive halving on folds (Jamieson and Talwalkar 2016): every configuration of a bracket is
 *   scored on the first fold, the best third goes on to the second, the best third of those to all
 *   folds. A poor configuration costs one fold, and every score compared at a rung is on the same
 *   folds, which the pipeline was refitted inside (no leakage between folds).
 */
import { Rng } from '../core/index.js';
import type { ModelFamily, Params, SearchDim, SearchSpace } from '../models/index.js';

/** Survivors of each rung of successive halving: the best 1/ETA go on. */
export const HALVING_ETA = 3;

/** Configurations per bracket (on small tables, fewer: the search must not overfit its own CV). */
export const BRACKET_SIZE = 9;
export const SMALL_BRACKET_SIZE = 6;

/**
 * Brackets at most per family on small tables, and for the linear families at any size (one or
 * two parameters: a few dozen points cover them; more only fits the folds' noise).
 */
export const SMALL_MAX_BRACKETS = 3;
export const LINEAR_MAX_BRACKETS = 3;

/** The first primes: one Halton base per searched dimension. */
const PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53];

/** The radical inverse of `i` in base `b`: the i-th Halton coordinate, in [0, 1). */
function radicalInverse(i: number, b: number): number {
  let f = 1;
  let r = 0;
  while (i > 0) {
    f /= b;
    r += f * (i % b);
    i = Math.floor(i / b);
  }
  return r;
}

/** A value of `dim` at the unit coordinate `u` in [0, 1). */
export function valueAt(dim: SearchDim, u: number): Params[string] {
  switch (dim.type) {
    case 'float':
      return dim.log ? Math.exp(Math.log(dim.low) + u * (Math.log(dim.high) - Math.log(dim.low))) : dim.low + u * (dim.high - dim.low);
    case 'int': {
      // Each integer gets an equal share of [0, 1) (of the log range when `log`).
      const v = dim.log ? Math.floor(Math.exp(Math.log(dim.low) + u * (Math.log(dim.high + 1) - Math.log(dim.low)))) : Math.floor(dim.low + u * (dim.high - dim.low + 1));
      return Math.min(dim.high, Math.max(dim.low, v));
    }
    case 'choice': {
      const v = dim.values[Math.min(dim.values.length - 1, Math.floor(u * dim.values.length))]!;
      return Array.isArray(v) ? [...(v as number[])] : (v as number | string | boolean);
    }
  }
}

/**
 * `count` configurations of `space` over `base`, starting at point `start` of the family's shifted
 * Halton sequence (so successive brackets continue the sequence rather than repeat it). Keys the
 * user set (`fixed`) are never varied: an explicit `--param` is a decision, not a starting point.
 */
export function sampleConfigs(space: SearchSpace, base: Params, count: number, start: number, seed: number, fixed: ReadonlySet<string> = new Set()): Params[] {
  const dims = Object.entries(space).filter(([key]) => !fixed.has(key));
  const rng = new Rng(seed);
  const shift = dims.map(() => rng.next());
  const out: Params[] = [];
  for (let i = 0; i < count; i++) {
    const p: Params = { ...base };
    // Index 0 of every Halton base is 0: start at 1 so the first point is not the corner.
    for (const [d, [key, dim]] of dims.entries()) p[key] = valueAt(dim, (radicalInverse(start + i + 1, PRIMES[d % PRIMES.length]!) + shift[d]!) % 1);
    out.push(p);
  }
  return out;
}

/**
 * The folds each rung of successive halving scores on, cumulatively: one, two, then all (for 5
 * folds: 1, 2, 5; with repeated CV the later repetitions come with the last rung).
 */
export function rungFolds(totalFolds: number): number[] {
  return totalFolds <= 2 ? [1, totalFolds] : [1, 2, totalFolds];
}

/** How many go on from a rung of `n`: the best third, at least one. */
export function survivors(n: number): number {
  return Math.max(1, Math.ceil(n / HALVING_ETA));
}

/** Most brackets a family may run (Infinity: until the budget is spent). */
export function maxBrackets(fam: ModelFamily, small: boolean): number {
  if (small) return SMALL_MAX_BRACKETS;
  return fam.name === 'logistic' || fam.name === 'linear' ? LINEAR_MAX_BRACKETS : Infinity;
}

/**
 * Parses a budget: seconds as a number, or a duration string (`90`, `90s`, `5m`, `1h`, `1m30s`).
 * Returns seconds, or an explanation of what is accepted.
 */
export function parseBudget(value: unknown): number | string {
  const expected = 'a duration such as 60s, 5m or 1h (at least 1 second, at most 24 hours)';
  let seconds: number;
  if (typeof value === 'number') seconds = value;
  else if (typeof value === 'string' && value.length <= 64) {
    const text = value.trim();
    // A bare number is seconds; otherwise number-unit pairs in h, m, s order, read one token at a
    // time (a sticky pattern: no backtracking, so no input can make it slow).
    if (/^\d+(\.\d+)?$/.test(text)) seconds = Number(text);
    else {
      const token = /\s*(\d+(?:\.\d+)?)\s*([hms])/iy;
      seconds = 0;
      let last = -1;
      let at = 0;
      while (at < text.length) {
        token.lastIndex = at;
        const m = token.exec(text);
        if (!m) return expected;
        const order = 'hms'.indexOf(m[2]!.toLowerCase());
        if (order <= last) return expected;
        last = order;
        seconds += Number(m[1]) * [3600, 60, 1][order]!;
        at = token.lastIndex;
      }
      if (last < 0) return expected;
    }
  } else return expected;
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 86400) return expected;
  return seconds;
}
