import { Errors, Rng } from '../core/index.js';

/** One fold: row indices to train on and to score on. */
export interface Fold {
  train: Int32Array;
  test: Int32Array;
}

/** A three-way holdout. */
export interface Holdout {
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

/**
 * Stratification labels for `y`: class indices as they are for classification; for regression,
 * quantile bins of the target so that every fold sees the whole range of outcomes.
 */
export function strataFor(y: Float64Array, classification: boolean, bins = 5): Int32Array {
  const s = new Int32Array(y.length);
  if (classification) {
    for (let i = 0; i < y.length; i++) s[i] = y[i]!;
    return s;
  }
  const order = Array.from(y.keys()).sort((a, b) => y[a]! - y[b]!);
  order.forEach((row, rank) => (s[row] = Math.min(bins - 1, Math.floor((rank * bins) / y.length))));
  return s;
}

/**
 * Stratified k-fold, deterministic by seed. With `groups`, every group (a patient) lands wholly in
 * one fold: groups are dealt, largest first, to the fold whose class mix they disturb least (the
 * greedy scheme of scikit-learn's StratifiedGroupKFold), so a patient's repeat visits can never
 * be on both sides of a split.
 */
export function stratifiedKFold(strata: Int32Array, k: number, seed: number, groups?: ArrayLike<string>): Fold[] {
  const n = strata.length;
  if (!Number.isInteger(k) || k < 2) throw Errors.usage(`--cv must be an integer of at least 2 (got ${k})`);
  const units = unitCount(n, groups);
  if (units < k) {
    throw Errors.badData('', `cannot make ${k} folds from ${units} ${groups ? 'groups' : 'rows'}; lower --cv`);
  }
  const foldOf = foldAssignment(strata, k, seed, groups);
  const sizes = new Int32Array(k);
  for (let i = 0; i < n; i++) sizes[foldOf[i]!]!++;
  const folds: Fold[] = [];
  for (let f = 0; f < k; f++) {
    const test = new Int32Array(sizes[f]!);
    const train = new Int32Array(n - sizes[f]!);
    let a = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      if (foldOf[i] === f) test[a++] = i;
      else train[b++] = i;
    }
    folds.push({ train, test });
  }
  return folds;
}

/**
 * A stratified (and optionally grouped) train/validation/test holdout with the given fractions of
 * rows. Built from a 1/fraction fold assignment so that groups stay whole here too.
 */
export function holdoutSplit(
  strata: Int32Array,
  fractions: { valid: number; test: number },
  seed: number,
  groups?: ArrayLike<string>,
): Holdout {
  const { valid, test } = fractions;
  if (!(valid >= 0 && test >= 0 && valid + test < 1)) {
    throw Errors.usage(`validation and test fractions must be >= 0 and sum below 1 (got ${valid} and ${test})`);
  }
  // Twenty slots of 5% each; test takes the first slots, validation the next.
  const slots = 20;
  const units = unitCount(strata.length, groups);
  const foldOf = foldAssignment(strata, Math.min(slots, units), seed, groups);
  const testSlots = Math.round(test * slots);
  const validSlots = Math.round(valid * slots);
  const out = { train: [] as number[], valid: [] as number[], test: [] as number[] };
  for (let i = 0; i < strata.length; i++) {
    const f = foldOf[i]!;
    (f < testSlots ? out.test : f < testSlots + validSlots ? out.valid : out.train).push(i);
  }
  return { train: Int32Array.from(out.train), valid: Int32Array.from(out.valid), test: Int32Array.from(out.test) };
}

/** How many units the `n` rows are dealt in: their groups, or the rows themselves. */
function unitCount(n: number, groups?: ArrayLike<string>): number {
  return groups ? new Set(Array.from({ length: n }, (_, i) => groups[i])).size : n;
}

/** Number of strata (largest label + 1): a loop, since spreading a million labels into Math.max overflows the stack. */
function strataCount(strata: Int32Array): number {
  let max = 0;
  for (let i = 0; i < strata.length; i++) if (strata[i]! > max) max = strata[i]!;
  return max + 1;
}

/** The fold (0..k-1) of every row. */
function foldAssignment(strata: Int32Array, k: number, seed: number, groups?: ArrayLike<string>): Int32Array {
  const nStrata = strataCount(strata);
  if (groups) {
    const units = makeUnits(strata, seed, groups);
    if (units.some((u) => u.rows.length > 1)) return assign(units, k, nStrata);
  }
  // One row per unit: a seeded shuffle of the rows, then a round-robin within each stratum (exact
  // stratification), without an object per row.
  const n = strata.length;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  new Rng(seed).shuffle(order);
  const next = new Int32Array(nStrata);
  // Start each stratum at a different fold so that small strata do not all pile into fold 0.
  for (let s = 0; s < nStrata; s++) next[s] = s % k;
  const foldOf = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = order[i]!;
    const s = strata[row]!;
    foldOf[row] = next[s]!;
    next[s] = (next[s]! + 1) % k;
  }
  return foldOf;
}

interface Unit {
  rows: number[];
  counts: Float64Array;
}

/** Rows grouped into units (one per group), shuffled by seed. */
function makeUnits(strata: Int32Array, seed: number, groups: ArrayLike<string>): Unit[] {
  const nStrata = strataCount(strata);
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < strata.length; i++) {
    const key = groups[i]!;
    const rows = byKey.get(key);
    if (rows) rows.push(i);
    else byKey.set(key, [i]);
  }
  const units: Unit[] = [...byKey.values()].map((rows) => {
    const counts = new Float64Array(nStrata);
    for (const r of rows) counts[strata[r]!]!++;
    return { rows, counts };
  });
  new Rng(seed).shuffle(units);
  return units;
}

/**
 * Deals groups to `k` folds: larger and more class-skewed groups first, each to the fold where
 * the per-stratum spread stays smallest.
 */
function assign(units: Unit[], k: number, nStrata: number): Int32Array {
  const n = units.reduce((s, u) => s + u.rows.length, 0);
  const foldOf = new Int32Array(n);
  const totals = new Float64Array(nStrata);
  for (const u of units) for (let s = 0; s < nStrata; s++) totals[s]! += u.counts[s]!;
  const std = (u: Unit) => {
    const p = Array.from(u.counts, (c, s) => c / (totals[s] || 1));
    const m = p.reduce((a, b) => a + b, 0) / p.length;
    return Math.sqrt(p.reduce((a, b) => a + (b - m) ** 2, 0) / p.length);
  };
  // Stable sort keeps the seeded shuffle as the tie-breaker.
  const sorted = units.map((u) => ({ u, key: std(u) })).sort((a, b) => b.key - a.key || b.u.rows.length - a.u.rows.length);
  const foldCounts = Array.from({ length: k }, () => new Float64Array(nStrata));
  const foldSizes = new Float64Array(k);
  for (const { u } of sorted) {
    let best = 0;
    let bestEval = Infinity;
    for (let f = 0; f < k; f++) {
      foldCounts[f]!.forEach((_, s) => (foldCounts[f]![s]! += u.counts[s]!));
      let spread = 0;
      for (let s = 0; s < nStrata; s++) {
        let m = 0;
        for (let g = 0; g < k; g++) m += foldCounts[g]![s]! / (totals[s] || 1);
        m /= k;
        let v = 0;
        for (let g = 0; g < k; g++) v += (foldCounts[g]![s]! / (totals[s] || 1) - m) ** 2;
        spread += Math.sqrt(v / k);
      }
      foldCounts[f]!.forEach((_, s) => (foldCounts[f]![s]! -= u.counts[s]!));
      const evalKey = spread + 1e-9 * foldSizes[f]!;
      if (evalKey < bestEval - 1e-12) {
        bestEval = evalKey;
        best = f;
      }
    }
    for (let s = 0; s < nStrata; s++) foldCounts[best]![s]! += u.counts[s]!;
    foldSizes[best]! += u.rows.length;
    for (const r of u.rows) foldOf[r] = best;
  }
  return foldOf;
}
