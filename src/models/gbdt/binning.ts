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
  return binMatrix(x, maxBins, null);
}

/**
 * Bin index of every cell, row-major like the matrix (`out[i * cols + f]`), one byte per cell:
 * histogram building walks a node's rows, so each row's bins being contiguous is what matters.
 * NaN goes to bin 0; values above the last edge (unseen when the edges were fitted on a
 * subsample) go to the last bin, which matches the threshold rule since they are above every
 * threshold. Written into `out` when given, else into a new array.
 */
export function applyBins(x: Matrix, mapper: BinMapper, out: Uint8Array<ArrayBufferLike> = new Uint8Array(x.rows * x.cols)): Uint8Array<ArrayBufferLike> {
  const { rows, cols, data } = x;
  const col = new Float32Array(rows);
  for (let f = 0; f < cols; f++) {
    for (let i = 0; i < rows; i++) col[i] = data[i * cols + f]!;
    applyColumn(col, mapper.upper[f]!, mapper.nBins[f]!, out, f, cols);
  }
  return out;
}

/**
 * `fitBins` then `applyBins` into `out`, with the same result, in one sort per feature: when
 * every row places the edges (up to `MAX_FIT_ROWS` rows) the sorted order itself gives each
 * row's bin, without a binary search per cell.
 */
export function fitApplyBins(x: Matrix, maxBins: number, out: Uint8Array<ArrayBufferLike>): BinMapper {
  return binMatrix(x, maxBins, out);
}

function binMatrix(x: Matrix, maxBins: number, out: Uint8Array<ArrayBufferLike> | null): BinMapper {
  const { rows, cols, data } = x;
  const scratch = binScratch(rows, out !== null);
  const col = new Float32Array(rows);
  const nBins = new Int32Array(cols);
  const upper: Float64Array[] = [];
  for (let f = 0; f < cols; f++) {
    // A Float32Array store rounds as Math.fround does.
    for (let i = 0; i < rows; i++) col[i] = data[i * cols + f]!;
    const edges = binColumn(col, maxBins, scratch, out, f, cols);
    nBins[f] = edges.length;
    upper.push(edges);
  }
  return { nBins, upper };
}

/** Sorting scratch for `binColumn`: float32 keys as ascending int32, with row ids riding along. */
export interface BinScratch {
  keys: Int32Array;
  keys2: Int32Array;
  rows: Uint32Array | null;
  rows2: Uint32Array | null;
  counts: Uint32Array;
  /** Distinct values and their counts (`edgesOf`). */
  distinct: Float64Array;
  runs: Int32Array;
}

/** Scratch for columns of `rows` values; `apply`: bins will be written too (row ids are sorted along). */
export function binScratch(rows: number, apply: boolean): BinScratch {
  const stride = rows > MAX_FIT_ROWS ? Math.ceil(rows / MAX_FIT_ROWS) : 1;
  const m = Math.ceil(rows / stride);
  // Row ids travel with the keys only when the sorted order can assign every row's bin.
  const withRows = apply && stride === 1;
  return {
    keys: new Int32Array(m),
    keys2: new Int32Array(m),
    rows: withRows ? new Uint32Array(m) : null,
    rows2: withRows ? new Uint32Array(m) : null,
    counts: new Uint32Array(RADIX * PASSES),
    distinct: new Float64Array(m),
    runs: new Int32Array(m),
  };
}

/**
 * The edges of one feature from its float32 values `col` (`fitBins`), and, when `out` is given,
 * every row's bin at `out[base + i * step]` (`applyBins`).
 */
export function binColumn(col: Float32Array, maxBins: number, s: BinScratch, out: Uint8Array<ArrayBufferLike> | null, base: number, step: number): Float64Array {
  const rows = col.length;
  const bits = new Int32Array(col.buffer, col.byteOffset, rows);
  const stride = rows > MAX_FIT_ROWS ? Math.ceil(rows / MAX_FIT_ROWS) : 1;
  let k = 0;
  for (let i = 0; i < rows; i += stride) {
    const v = col[i]!;
    // NaN is left out of the edges; it is routed to bin 0 (left of every split) instead.
    if (v === v) {
      s.keys[k] = orderedKey(bits[i]!);
      if (s.rows) s.rows[k] = i;
      k++;
    }
  }
  const sorted = radixSort(s, k);
  const edges = edgesOf(sorted.keys, k, maxBins, s);
  if (out === null) return edges;
  const nb = edges.length;
  if (sorted.rows === null || nb <= 1) {
    applyColumn(col, edges, nb, out, base, step);
    return edges;
  }
  // NaN rows keep bin 0; the sorted values walk up the edges, compared as keys (−0 and +0 as one).
  if (k < rows) for (let i = 0; i < rows; i++) out[base + i * step] = 0;
  const keys = sorted.keys;
  const ids = sorted.rows;
  const last = nb - 1;
  let b = 0;
  let edge = canonical(keyOf(edges[0]!));
  for (let j = 0; j < k; j++) {
    const key = canonical(keys[j]!);
    while (key > edge && b < last) edge = canonical(keyOf(edges[++b]!));
    out[base + ids[j]! * step] = b;
  }
  return edges;
}

/** Edges of one feature from its `k` sorted keys (see `fitBins`). */
function edgesOf(keys: Int32Array, k: number, maxBins: number, s: BinScratch): Float64Array {
  // Distinct values (as numbers: −0 and +0 are one value, kept as the first seen) and their counts.
  const distinct = s.distinct;
  const counts = s.runs;
  let nd = 0;
  let prev = 0;
  for (let i = 0; i < k; i++) {
    const key = canonical(keys[i]!);
    if (nd > 0 && key === prev) counts[nd - 1]!++;
    else {
      distinct[nd] = fromKey(keys[i]!);
      counts[nd++] = 1;
      prev = key;
    }
  }
  if (nd <= maxBins) return distinct.slice(0, nd);
  const edges: number[] = [];
  let consumed = 0;
  let acc = 0;
  for (let i = 0; i < nd; i++) {
    acc += counts[i]!;
    const binsLeft = maxBins - edges.length;
    if (binsLeft <= 1) continue; // the last bin takes everything that remains
    const target = (k - consumed) / binsLeft;
    const next = i + 1 < nd ? counts[i + 1]! : 0;
    // Close the bin when adding the next value would overshoot the target by more than
    // stopping here undershoots it; keeps heavy ties from starving the later bins.
    if (acc >= target || acc + next / 2 > target) {
      edges.push(distinct[i]!);
      consumed += acc;
      acc = 0;
    }
  }
  if (acc > 0 || edges[edges.length - 1] !== distinct[nd - 1]) edges.push(distinct[nd - 1]!);
  return Float64Array.from(edges);
}

/** Bins of one column of float32 values by binary search over its edges, at `out[base + i * step]`. */
function applyColumn(col: Float32Array, up: Float64Array, nb: number, out: Uint8Array<ArrayBufferLike>, base: number, step: number): void {
  const rows = col.length;
  if (nb <= 1) {
    for (let i = 0; i < rows; i++) out[base + i * step] = 0;
    return;
  }
  for (let i = 0; i < rows; i++) {
    const v = col[i]!;
    if (v !== v) {
      out[base + i * step] = 0;
      continue;
    }
    // First bin whose upper edge is >= v.
    let lo = 0;
    let hi = nb - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v <= up[mid]!) hi = mid;
      else lo = mid + 1;
    }
    out[base + i * step] = lo;
  }
}

// ---- float32 keys: an int32 order equal to the numeric order (−0 before +0) ---------------------
// Signed, so that every key is a small integer to V8: unsigned keys of 2^31 and more (every
// positive value's) were doubles in the sort's loops, which took three times as long.

/** float32 bits (as int32) → a key whose int32 order is the value order: negatives' other bits flipped. */
const orderedKey = (bits: number): number => (bits < 0 ? bits ^ 0x7fffffff : bits);
/** The float32 bits (as int32) of a key: the same flip. */
const valueBits = orderedKey;
const one32 = new Float32Array(1);
const oneBits = new Int32Array(one32.buffer);
/** The value of a key. */
function fromKey(key: number): number {
  oneBits[0] = valueBits(key);
  return one32[0]!;
}
/** The key of a float32 value. */
function keyOf(v: number): number {
  one32[0] = v;
  return orderedKey(oneBits[0]!);
}
/** −0's key as +0's: keys then compare as the values do (NaN aside). */
const NEG_ZERO = -1;
const canonical = (key: number): number => (key === NEG_ZERO ? 0 : key);

const BITS = 11;
const RADIX = 1 << BITS;
const PASSES = 3;
/** The sign bit within the last digit (bits 22–31 of a key). */
const TOP_SIGN = 1 << (31 - 2 * BITS);

/**
 * Least-significant-digit radix sort of `s.keys[0, k)` (and `s.rows` with them), 11 bits a pass:
 * a few milliseconds for 100,000 keys, where `Float32Array.prototype.sort` takes about 20. The
 * order is the numeric one `sort()` gives, so the edges are the same. Returns the arrays that hold
 * the result (the scratch buffers swap roles pass by pass).
 */
function radixSort(s: BinScratch, k: number): { keys: Int32Array; rows: Uint32Array | null } {
  const counts = s.counts;
  counts.fill(0);
  let keys = s.keys;
  let rows = s.rows;
  for (let i = 0; i < k; i++) {
    const key = keys[i]!;
    counts[key & (RADIX - 1)]!++;
    counts[RADIX + ((key >>> BITS) & (RADIX - 1))]!++;
    counts[2 * RADIX + ((key >>> (2 * BITS)) ^ TOP_SIGN)]!++;
  }
  let keys2 = s.keys2;
  let rows2 = s.rows2;
  for (let p = 0; p < PASSES; p++) {
    const base = p * RADIX;
    const shift = p * BITS;
    // A digit all keys share moves nothing: skip the pass.
    let skip = false;
    for (let d = 0; d < RADIX; d++) {
      const c = counts[base + d]!;
      if (c === k) skip = true;
      if (c !== 0) break;
    }
    if (skip || k === 0) continue;
    let sum = 0;
    for (let d = 0; d < RADIX; d++) {
      const c = counts[base + d]!;
      counts[base + d] = sum;
      sum += c;
    }
    // The last digit's top bit is the sign: flipped, negative keys come first.
    const flip = p === PASSES - 1 ? TOP_SIGN : 0;
    if (rows && rows2) {
      for (let i = 0; i < k; i++) {
        const key = keys[i]!;
        const at = counts[base + (((key >>> shift) & (RADIX - 1)) ^ flip)]!++;
        keys2[at] = key;
        rows2[at] = rows[i]!;
      }
      [rows, rows2] = [rows2, rows];
    } else {
      for (let i = 0; i < k; i++) {
        const key = keys[i]!;
        keys2[counts[base + (((key >>> shift) & (RADIX - 1)) ^ flip)]!++] = key;
      }
    }
    [keys, keys2] = [keys2, keys];
  }
  // Leave the scratch pointing at the buffers for the next feature (either pair works).
  s.keys = keys;
  s.keys2 = keys2;
  s.rows = rows;
  s.rows2 = rows2;
  return { keys, rows };
}
