/**
 * Per-column accumulators that gather, in one pass, both the evidence schema inference needs
 * (how many cells parse as numbers, booleans, dates; distinct counts; text shape; integer order)
 * and the statistics the profile reports. Both the in-memory path (`inferSchema`, `profileTable`)
 * and the streaming one (`profileFile`) feed cells through the same class, so a file profiled
 * from disk and the same file read into memory get the same types.
 *
 * Memory is bounded in streaming mode: distinct values are counted exactly up to `distinctCap`
 * per column and by a HyperLogLog sketch after that, and quantiles come from a fixed-size seeded
 * reservoir sample.
 */
import { Rng, type Cell } from '../core/index.js';
import { cellKey, parseBoolean, parseDate, parseNumber } from './cells.js';

/** How an accumulator trades exactness for memory. */
export interface AccumulatorOptions {
  /** Exact distinct counts up to this many values per column; then a sketch. */
  distinctCap: number;
  /** Numeric values kept for quantiles: `Infinity` keeps all (exact), else a reservoir sample. */
  reservoirSize: number;
  /** Seed of the reservoir sampler, so two runs over one file report the same quantiles. */
  seed: number;
}

/** In memory: everything exact. */
export const EXACT: AccumulatorOptions = { distinctCap: Infinity, reservoirSize: Infinity, seed: 0 };
/** Streaming defaults: 100 000 exact distinct values and a 65 536-value reservoir per column. */
export const STREAMING: AccumulatorOptions = { distinctCap: 100_000, reservoirSize: 65_536, seed: 0 };

/** 32-bit FNV-1a of a string, then a murmur3 finaliser so that close strings spread well. */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * HyperLogLog with 2^14 registers (16 KiB): a standard error of about 0.8 %. Used for distinct
 * counts once a column has more distinct values than the exact cap.
 */
export class HyperLogLog {
  private static readonly P = 14;
  private readonly reg = new Uint8Array(1 << HyperLogLog.P);

  add(s: string): void {
    const h = hash32(s);
    const idx = h >>> (32 - HyperLogLog.P);
    const rest = (h << HyperLogLog.P) >>> 0;
    // Position of the first 1-bit in the remaining 18 bits (capped when they are all zero).
    const rank = rest === 0 ? 32 - HyperLogLog.P + 1 : Math.clz32(rest) + 1;
    if (rank > this.reg[idx]!) this.reg[idx] = rank;
  }

  estimate(): number {
    const m = this.reg.length;
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < m; i++) {
      sum += 2 ** -this.reg[i]!;
      if (this.reg[i] === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / m);
    const e = (alpha * m * m) / sum;
    // Small range: linear counting is far more accurate while many registers are empty.
    if (e <= 2.5 * m && zeros > 0) return Math.round(m * Math.log(m / zeros));
    return Math.round(e);
  }
}

/** Evidence and statistics for one column. Fields are public for speed; treat them as read-only. */
export class ColumnAccumulator {
  /** Cells seen, missing included. */
  n = 0;
  missing = 0;

  // Numbers (cells that parse as numbers; non-numeric cells do not count here).
  numCount = 0;
  /** Numbers written without a decimal point or exponent (and JSON integers). */
  intCount = 0;
  mean = 0;
  m2 = 0;
  min = Infinity;
  max = -Infinity;
  /** Integer values so far increase strictly, by exactly 1 each row (a row counter). */
  consecutive = true;
  private last = NaN;
  private readonly sample: number[] = [];
  private readonly reservoirSize: number;
  private readonly rng: Rng;

  // Booleans and dates.
  boolCount = 0;
  trueCount = 0;
  dateCount = 0;
  dateMin = Infinity;
  dateMax = -Infinity;

  // Text shape of the cells that are not numbers.
  strCount = 0;
  strLenSum = 0;
  /** Non-numeric cells that contain a space (several words). */
  multiWord = 0;

  // Distinct values and their counts (exact until the cap).
  counts: Map<string, { n: number }> | null = new Map();
  private hll: HyperLogLog | null = null;
  private readonly distinctCap: number;

  constructor(opts: AccumulatorOptions, index = 0) {
    this.reservoirSize = opts.reservoirSize;
    this.distinctCap = opts.distinctCap;
    this.rng = new Rng((opts.seed + 0x9e3779b9 * (index + 1)) >>> 0);
  }

  /** Adds one cell (as produced by a reader: `null` for missing). */
  add(cell: Cell): void {
    this.n++;
    if (cell === null) {
      this.missing++;
      return;
    }
    const key = cellKey(cell);
    this.addDistinct(key);
    const x = parseNumber(cell);
    if (x !== null) {
      this.addNumber(x, typeof cell === 'number' ? Number.isInteger(x) : isIntegerText(cell as string));
      return;
    }
    const b = parseBoolean(cell);
    if (b !== null) {
      this.boolCount++;
      if (b) this.trueCount++;
      return;
    }
    if (typeof cell === 'string') {
      this.strCount++;
      this.strLenSum += cell.length;
      if (cell.indexOf(' ') >= 0) this.multiWord++;
      const t = parseDate(cell);
      if (t !== null) {
        this.dateCount++;
        if (t < this.dateMin) this.dateMin = t;
        if (t > this.dateMax) this.dateMax = t;
      }
    }
  }

  private addNumber(x: number, isInt: boolean): void {
    this.numCount++;
    if (isInt) {
      this.intCount++;
      if (this.consecutive && this.numCount > 1 && x !== this.last + 1) this.consecutive = false;
      this.last = x;
    } else {
      this.consecutive = false;
    }
    // Welford's update: stable for long columns where sum-of-squares would lose digits.
    const d = x - this.mean;
    this.mean += d / this.numCount;
    this.m2 += d * (x - this.mean);
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    if (this.sample.length < this.reservoirSize) {
      this.sample.push(x);
    } else if (this.reservoirSize > 0) {
      // Algorithm R: every value seen so far has the same chance to be in the sample.
      const j = this.rng.int(this.numCount);
      if (j < this.reservoirSize) this.sample[j] = x;
    }
  }

  private addDistinct(key: string): void {
    if (this.counts !== null) {
      // One lookup per cell: the count lives in a small mutable box.
      const c = this.counts.get(key);
      if (c !== undefined) {
        c.n++;
        return;
      }
      if (this.counts.size < this.distinctCap) {
        this.counts.set(key, { n: 1 });
        return;
      }
      // Over the cap: move every known value into the sketch and keep counting the frequent ones
      // seen so far, which is all the top-values list needs.
      this.hll = new HyperLogLog();
      for (const k of this.counts.keys()) this.hll.add(k);
      this.frozen = this.counts;
      this.counts = null;
    }
    const f = this.frozen!.get(key);
    if (f !== undefined) f.n++;
    else this.hll!.add(key);
  }

  /** After overflow: the capped map, still counting the values it holds. */
  private frozen: Map<string, { n: number }> | null = null;

  /** Non-missing cells. */
  get nonMissing(): number {
    return this.n - this.missing;
  }

  /** Whether `distinct` is exact. */
  get distinctExact(): boolean {
    return this.counts !== null;
  }

  /** Distinct non-missing values (by their text), exact or estimated. */
  get distinct(): number {
    if (this.counts !== null) return this.counts.size;
    return Math.max(this.frozen!.size, this.hll!.estimate());
  }

  /** Value counts: exact while `distinctExact`, else counts of the first `distinctCap` values. */
  get valueCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (const [k, v] of this.counts ?? this.frozen!) m.set(k, v.n);
    return m;
  }

  /** Sample standard deviation (n − 1), as pandas and R report it. */
  get std(): number {
    return this.numCount > 1 ? Math.sqrt(this.m2 / (this.numCount - 1)) : 0;
  }

  /** Whether `sortedSample` holds every numeric value (quantiles are then exact). */
  get sampleExact(): boolean {
    return this.sample.length === this.numCount;
  }

  /** The numeric values kept (all, or the reservoir), sorted ascending. */
  sortedSample(): Float64Array {
    return Float64Array.from(this.sample).sort();
  }
}

function isIntegerText(s: string): boolean {
  // parseNumber already accepted it; an integer is one written without a point or an exponent.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 || c === 101 || c === 69) return false;
  }
  return true;
}

/** Quantile by linear interpolation between order statistics (R type 7, NumPy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}
