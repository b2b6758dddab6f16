/**
 * Columns: what a reader makes of one column's cells, either kept (a table in memory, for
 * training and prediction) or only summarised with bounded memory (a streaming profile).
 *
 * A kept column is two typed arrays, allocated only when needed: `values` (the number of every
 * cell that reads as a number, NaN elsewhere) and `codes` (the dictionary entry of every other
 * present cell, -1 elsewhere), so a numeric column costs 8 bytes a row and a categorical one 4,
 * instead of a JavaScript string per cell. Numbers are kept by value: `1.50` and `1.5` are the
 * same value (and the same category; see `Column.text`); every other text is kept exactly.
 *
 * The same builder gathers, in the same pass, the evidence schema inference decides types from
 * (how many cells read as numbers, integers, booleans, dates; distinct values; text shape; the
 * file order of integers: a row counter, strictly increasing or decreasing keys) and the
 * statistics a profile reports, so a file profiled from disk and the same file read into memory
 * get the same types.
 */
import { Rng, type Cell } from '../core/index.js';
import { grown } from './arrays.js';
import { ESCAPED } from './csv.js';
import { NUMBER, TRIM, hashBytes, isMissingBytes, parseBooleanBytes, parseDateBytes, parseNumberBytes, trimBytes, utf16Length } from './bytes.js';
import { HyperLogLog, NumberCounter, TextDictionary, hashNumber } from './dictionary.js';

/** What schema inference and the profile read of a column. */
export interface ColumnEvidence {
  /** Cells seen, missing included. */
  readonly n: number;
  readonly missing: number;
  readonly nonMissing: number;
  /** Cells that read as numbers; `intCount` of them written without a point or exponent. */
  readonly numCount: number;
  readonly intCount: number;
  readonly mean: number;
  /** Sample standard deviation (n − 1), as pandas and R report it. */
  readonly std: number;
  readonly min: number;
  readonly max: number;
  /** Integer values increase by exactly 1 from row to row (a row counter). */
  readonly consecutive: boolean;
  /**
   * Integer values strictly increase (or strictly decrease) from one present cell to the next,
   * in file order: a key assigned as rows were written. Two flags of the same pass, so the
   * streaming profile and a table in memory agree.
   */
  readonly increasing: boolean;
  readonly decreasing: boolean;
  readonly boolCount: number;
  readonly trueCount: number;
  readonly dateCount: number;
  readonly dateMin: number;
  readonly dateMax: number;
  /** Present cells that are neither numbers nor booleans, their total length and how many hold a space. */
  readonly strCount: number;
  readonly strLenSum: number;
  readonly multiWord: number;
  /** Distinct present values (numbers by value, other text exactly), exact or estimated. */
  readonly distinct: number;
  /** Every present cell holds the same value (exact, whatever the counts' caps). */
  readonly constant: boolean;
  readonly distinctExact: boolean;
  /** Count of each value (numbers as `String(value)`): all of them, or those seen before the cap. */
  valueCounts(): Map<string, number>;
  /**
   * The numbers (all, or a seeded reservoir sample of them), in no particular order, in an array
   * the caller may reorder (a streaming builder's own reservoir: read it once, when reading is done).
   */
  sample(): Float64Array;
  /** Whether `sample` holds every number (quantiles are then exact). */
  readonly sampleExact: boolean;
}

/** How a builder trades exactness for memory. */
export interface BuildOptions {
  /** Keep every cell (a table) rather than only statistics (a streaming profile). */
  store: boolean;
  /** Streaming: exact distinct counts up to this many values per column, then a sketch. */
  distinctCap: number;
  /** Streaming: numbers kept for quantiles (a seeded reservoir sample). */
  reservoirSize: number;
  /** Seed of the reservoir sampler, so two runs over one file report the same quantiles. */
  seed: number;
  /** Streaming: most bytes of distinct texts kept per column (then a sketch). */
  textBytes?: number;
  /** Streaming: log2 of the HyperLogLog registers past the caps (default 14). */
  sketchPrecision?: number;
}

/** Keeping every cell of a table in memory. */
export const KEEP: BuildOptions = { store: true, distinctCap: Infinity, reservoirSize: 0, seed: 0 };
/** Streaming defaults: 100 000 exact distinct values and a 65 536-value reservoir per column. */
export const STREAMING: BuildOptions = { store: false, distinctCap: 100_000, reservoirSize: 65_536, seed: 0 };

/**
 * What a streaming profile may keep for all its columns together: the per-column caps above
 * shrink for wide tables, so memory is bounded by the table's width AND its length (a file of
 * 10,000 columns must not cost 10,000 × the caps).
 */
const BUDGET = { reservoir: 8_000_000, distinct: 8_000_000, textBytes: 256 * 1024 * 1024 };

/** The options for each of `columns` streaming columns within the shared budget (stored columns are not capped). */
export function budgeted(opts: BuildOptions, columns: number): BuildOptions {
  if (opts.store) return opts;
  const n = Math.max(1, columns);
  return {
    ...opts,
    reservoirSize: Math.min(opts.reservoirSize, Math.max(64, Math.floor(BUDGET.reservoir / n))),
    distinctCap: Math.min(opts.distinctCap, Math.max(64, Math.floor(BUDGET.distinct / n))),
    textBytes: Math.max(4096, Math.floor(BUDGET.textBytes / n)),
    sketchPrecision: n > 10_000 ? 8 : n > 1_000 ? 10 : 14,
  };
}

/** The hash a missing cell contributes to a row hash. */
export const MISSING_HASH = 0x5bd1e995;

let scratch = new Uint8Array(1 << 12);
function ensureScratch(n: number): Uint8Array {
  if (scratch.length < n) scratch = new Uint8Array(Math.max(n, scratch.length * 2));
  return scratch;
}

const ENCODER = new TextEncoder();
const TRUE_BYTES = ENCODER.encode('true');
const FALSE_BYTES = ENCODER.encode('false');

/** Accumulates one column's cells (see the module comment). */
export class ColumnBuilder implements ColumnEvidence {
  n = 0;
  missing = 0;
  numCount = 0;
  intCount = 0;
  mean = 0;
  private m2 = 0;
  min = Infinity;
  max = -Infinity;
  consecutive = true;
  increasing = true;
  decreasing = true;
  private last = NaN;
  boolCount = 0;
  trueCount = 0;
  dateCount = 0;
  dateMin = Infinity;
  dateMax = -Infinity;
  strCount = 0;
  strLenSum = 0;
  multiWord = 0;

  readonly dict: TextDictionary;
  private readonly store: boolean;
  private readonly sketchPrecision: number;
  // Kept cells (store mode): sized by `reserve` when the reader can estimate the rows, else doubled.
  private values: Float64Array | null = null;
  private codes: Int32Array | null = null;
  private cap = 0;
  // Streaming: distinct numbers and texts up to the cap, then sketches; a reservoir for quantiles.
  private nums: NumberCounter | null;
  private hll: HyperLogLog | null = null;
  private readonly distinctCap: number;
  private readonly reservoirSize: number;
  private sample_: Float64Array | null = null;
  private sampleLen = 0;
  private readonly rng: Rng;
  private sorted: Float64Array | null = null;

  constructor(opts: BuildOptions, index = 0) {
    this.store = opts.store;
    this.distinctCap = opts.store ? Infinity : opts.distinctCap;
    this.reservoirSize = opts.store ? 0 : opts.reservoirSize;
    // A kept column counts its distinct numbers from the kept values, when someone asks (schema
    // inference only does for integer columns): counting them as they come costs every column.
    this.sketchPrecision = opts.sketchPrecision ?? 14;
    this.nums = opts.store ? null : new NumberCounter(opts.distinctCap, this.sketchPrecision);
    this.dict = new TextDictionary(opts.store ? Infinity : (opts.textBytes ?? Infinity));
    this.rng = new Rng((opts.seed + 0x9e3779b9 * (index + 1)) >>> 0);
  }

  /**
   * Adds one cell given as UTF-8 bytes `b[s, e)` (untrimmed; `flags` from the CSV scanner).
   * Returns the cell's 32-bit hash (numbers by value), for row hashes.
   */
  add(b: Uint8Array, s: number, e: number, flags: number): number {
    if ((flags & ESCAPED) !== 0) {
      // Undo doubled quotes into a scratch copy; only such fields pay for a copy.
      const out = ensureScratch(e - s);
      let k = 0;
      for (let i = s; i < e; i++) {
        out[k++] = b[i]!;
        if (b[i] === 34 && i + 1 < e && b[i + 1] === 34) i++;
      }
      b = out;
      s = 0;
      e = k;
    }
    if (s < e) {
      const c0 = b[s]!;
      const c1 = b[e - 1]!;
      if (c0 <= 32 || c1 <= 32 || c0 >= 0x80 || c1 >= 0x80) {
        trimBytes(b, s, e);
        s = TRIM.start;
        e = TRIM.end;
      }
    }
    if (isMissingBytes(b, s, e)) return this.addMissing();
    const c = b[s]!;
    if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46) {
      const v = parseNumberBytes(b, s, e);
      if (v === v) return this.addNumber(v, NUMBER.isInt);
    }
    return this.addText(b, s, e);
  }

  /** Adds one cell as a JSON value (or a record value): strings by the same rules as CSV text. */
  addCell(cell: Cell | undefined): number {
    if (cell === null || cell === undefined) return this.addMissing();
    if (typeof cell === 'number') return Number.isFinite(cell) ? this.addNumber(cell, Number.isInteger(cell)) : this.addMissing();
    if (typeof cell === 'boolean') {
      const t = cell ? TRUE_BYTES : FALSE_BYTES;
      return this.addText(t, 0, t.length);
    }
    const out = ensureScratch(cell.length * 3);
    const { written } = ENCODER.encodeInto(cell, out);
    return this.add(out, 0, written, 0);
  }

  /** Adds a missing cell. */
  addMissing(): number {
    const r = this.n++;
    this.missing++;
    if (this.store) {
      if (r >= this.cap) this.grow(r + 1);
      if (this.values) this.values[r] = NaN;
      if (this.codes) this.codes[r] = -1;
    }
    return MISSING_HASH;
  }

  private addNumber(v: number, isInt: boolean): number {
    const r = this.n++;
    this.numCount++;
    if (isInt) {
      this.intCount++;
      if (this.intCount > 1) {
        if (v !== this.last + 1) this.consecutive = false;
        if (v <= this.last) this.increasing = false;
        if (v >= this.last) this.decreasing = false;
      }
      this.last = v;
    } else this.consecutive = this.increasing = this.decreasing = false;
    // Welford's update: stable for long columns where sum-of-squares would lose digits.
    const d = v - this.mean;
    this.mean += d / this.numCount;
    this.m2 += d * (v - this.mean);
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.store) {
      if (r >= this.cap) this.grow(r + 1);
      if (this.values === null) this.values = this.allocate(Float64Array, NaN, r);
      this.values[r] = v;
      if (this.codes) this.codes[r] = -1;
      return 0;
    }
    if (this.sampleLen < this.reservoirSize) {
      // Grown as numbers come: a short column does not pay for the whole reservoir.
      if (this.sample_ === null || this.sampleLen === this.sample_.length) {
        const length = Math.min(this.reservoirSize, Math.max(64, this.sampleLen * 2));
        this.sample_ = this.sample_ === null ? new Float64Array(length) : grown(this.sample_, length);
      }
      this.sample_[this.sampleLen++] = v;
    } else if (this.reservoirSize > 0) {
      // Algorithm R: every number seen so far has the same chance to be in the sample.
      const j = this.rng.int(this.numCount);
      if (j < this.reservoirSize) this.sample_![j] = v;
    }
    const h = hashNumber(v);
    this.nums!.add(v, h);
    return h;
  }

  private addText(b: Uint8Array, s: number, e: number): number {
    const r = this.n++;
    const h = hashBytes(b, s, e);
    const dict = this.dict;
    let k = dict.find(b, s, e, h);
    if (k < 0) {
      if (this.hll === null && dict.size < this.distinctCap && dict.fits(e - s)) k = dict.insert(b, s, e, h);
      else {
        // Past the cap (streaming): counted in the sketch, read without a dictionary entry.
        this.overCap(h);
        const bool = parseBooleanBytes(b, s, e);
        if (bool >= 0) this.countBool(bool);
        else this.countText(utf16Length(b, s, e), b.subarray(s, e).indexOf(32) >= 0 ? 1 : 0, parseDateBytes(b, s, e));
        return h;
      }
    }
    dict.counts[k]!++;
    const bool = dict.bools[k]!;
    if (bool >= 0) this.countBool(bool);
    else this.countText(dict.lengths[k]!, dict.spaces[k]!, dict.dates[k]!);
    if (this.store) {
      if (r >= this.cap) this.grow(r + 1);
      if (this.codes === null) this.codes = this.allocate(Int32Array, -1, r);
      this.codes[r] = k;
      if (this.values) this.values[r] = NaN;
    }
    return h;
  }

  private countBool(bool: number): void {
    this.boolCount++;
    this.trueCount += bool;
  }

  private countText(length: number, space: number, date: number): void {
    this.strCount++;
    this.strLenSum += length;
    this.multiWord += space;
    if (date === date) {
      this.dateCount++;
      if (date < this.dateMin) this.dateMin = date;
      if (date > this.dateMax) this.dateMax = date;
    }
  }

  /** A text past the cap: every known text goes into the sketch, and so do later ones. */
  private overCap(h: number): void {
    if (this.hll === null) {
      this.hll = new HyperLogLog(this.sketchPrecision);
      for (let k = 0; k < this.dict.size; k++) this.hll.add(this.dict.hash(k));
    }
    this.hll.add(h);
  }

  /**
   * Every row writes its cell into each array there is (a number, a code, or the missing marks
   * NaN and -1), so a new array only needs the marks for the rows before it existed, and grown
   * arrays no fill at all: fresh memory is touched once.
   */
  private allocate<T extends Float64Array | Int32Array>(kind: { new (n: number): T }, mark: number, rows: number): T {
    const a = new kind(this.cap);
    a.fill(mark, 0, rows);
    return a;
  }

  /** Room for at least `rows` rows (a reader's estimate of the table's size: one allocation, no doubling). */
  reserve(rows: number): void {
    if (rows > this.cap && this.store) this.resize(rows);
  }

  private grow(min: number): void {
    let cap = Math.max(1024, this.cap * 2);
    while (cap < min) cap *= 2;
    this.resize(cap);
  }

  private resize(cap: number): void {
    if (this.values) this.values = grown(this.values.subarray(0, this.n), cap);
    if (this.codes) this.codes = grown(this.codes.subarray(0, this.n), cap);
    this.cap = cap;
  }

  get nonMissing(): number {
    return this.n - this.missing;
  }

  get std(): number {
    return this.numCount > 1 ? Math.sqrt(this.m2 / (this.numCount - 1)) : 0;
  }

  get distinctExact(): boolean {
    return this.hll === null && (this.store || this.nums!.exact);
  }

  get distinct(): number {
    const texts = this.hll === null ? this.dict.size : Math.max(this.dict.size, this.hll.estimate());
    if (this.nums !== null) return texts + this.nums.distinct;
    const s = this.sortedSample();
    let runs = 0;
    for (let i = 0; i < s.length; i++) if (i === 0 || s[i] !== s[i - 1]) runs++;
    return texts + runs;
  }

  /** Whether every present cell holds the same value (and there is one). */
  get constant(): boolean {
    const nm = this.nonMissing;
    if (nm === 0) return false;
    if (this.numCount === nm) return this.min === this.max;
    return this.numCount === 0 && this.hll === null && this.dict.size === 1;
  }

  valueCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (let k = 0; k < this.dict.size; k++) m.set(this.dict.text(k), this.dict.counts[k]!);
    if (this.nums !== null) {
      this.nums.forEach((v, c) => m.set(String(v), c));
      return m;
    }
    const s = this.sortedSample();
    for (let i = 0; i < s.length; ) {
      let j = i + 1;
      while (j < s.length && s[j] === s[i]) j++;
      m.set(String(s[i]), j - i);
      i = j;
    }
    return m;
  }

  get sampleExact(): boolean {
    return this.store || this.sampleLen === this.numCount;
  }

  sample(): Float64Array {
    if (this.store) return this.sortedSample().slice();
    return (this.sample_ ?? new Float64Array(0)).subarray(0, this.sampleLen);
  }

  /** The numbers kept (store mode: all of them), sorted once and cached. */
  private sortedSample(): Float64Array {
    if (this.sorted) return this.sorted;
    if (this.store) {
      const out = new Float64Array(this.numCount);
      let k = 0;
      if (this.values) for (let r = 0; r < this.n; r++) if (this.values[r] === this.values[r]) out[k++] = this.values[r]!;
      this.sorted = out.sort();
    } else this.sorted = (this.sample_ ?? new Float64Array(0)).slice(0, this.sampleLen).sort();
    return this.sorted;
  }

  /** The kept column (store mode), its arrays trimmed to the rows added. */
  finish(name: string): Column {
    const n = this.n;
    // Views, not copies: a copy would touch the whole column's memory once more.
    const values = this.values ? (this.values.length === n ? this.values : this.values.subarray(0, n)) : null;
    const codes = this.codes ? (this.codes.length === n ? this.codes : this.codes.subarray(0, n)) : null;
    this.values = values;
    this.codes = codes;
    this.cap = n;
    return new Column(name, n, values, codes, this.dict, this);
  }
}

/** One column of a table in memory (see the module comment), read a row at a time. */
export class Column {
  constructor(
    readonly name: string,
    readonly length: number,
    private readonly values: Float64Array | null,
    private readonly codes: Int32Array | null,
    /** The column's distinct texts (cells that are not numbers). */
    readonly dict: TextDictionary,
    /** What the reader gathered about the column. */
    readonly stats: ColumnEvidence,
  ) {}

  /** The number in row `r`, NaN when the cell is missing or not a number. */
  number(r: number): number {
    return this.values === null ? NaN : this.values[r]!;
  }

  /** The dictionary entry of row `r`'s text, -1 when the cell is missing or a number. */
  code(r: number): number {
    return this.codes === null ? -1 : this.codes[r]!;
  }

  /** Whether row `r` has a value. */
  present(r: number): boolean {
    return this.code(r) >= 0 || this.number(r) === this.number(r);
  }

  /** Row `r` as text: the cell's text, a number as `String(value)`, or null when missing. */
  text(r: number): string | null {
    const k = this.code(r);
    if (k >= 0) return this.dict.text(k);
    const v = this.number(r);
    return v === v ? String(v) : null;
  }

  /** Row `r` as a cell: a number, a text, or null. */
  cell(r: number): Cell {
    const k = this.code(r);
    if (k >= 0) return this.dict.text(k);
    const v = this.number(r);
    return v === v ? v : null;
  }
}
