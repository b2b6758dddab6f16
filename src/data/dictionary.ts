/**
 * Hash structures over cell values, in typed arrays so that a column of a million cells costs a
 * few allocations, not a million: `TextDictionary` (each distinct text once, keyed by its UTF-8
 * bytes, with what it parses as), `NumberCounter` (distinct numbers and their counts) and
 * `HyperLogLog` (distinct counts past a memory cap).
 */
import { grown } from './arrays.js';
import { hashBytes, parseBooleanBytes, parseDateBytes, utf16Length } from './bytes.js';

/** Longest probe sequence tolerated in a hash table here before it changes strategy. */
export const MAX_PROBES = 64;

/** UTF-8 text of a byte range. */
function decode(b: Uint8Array, s: number, e: number): string {
  return Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('utf8');
}

const F64 = new Float64Array(1);
const I32 = new Int32Array(F64.buffer);

/** 32-bit hash of a number's value (0 and -0 alike), for `NumberCounter` and row hashes. */
export function hashNumber(v: number): number {
  F64[0] = v + 0;
  let h = Math.imul(I32[0]! ^ Math.imul(I32[1]!, 0x27d4eb2d), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * Every distinct text of a column, stored once in an arena with its count and what it reads as
 * (boolean token, ISO date, length, whether it has several words). Looked up by bytes, so a cell
 * seen before costs a hash and a comparison, and its string is only made when someone asks.
 */
export class TextDictionary {
  size = 0;
  private arena = new Uint8Array(256);
  private arenaLen = 0;
  private offs = new Int32Array(8);
  private lens = new Int32Array(8);
  private hashes = new Int32Array(8);
  /** Cells counted per entry. */
  counts = new Int32Array(8);
  /** Per entry: 1 or 0 for a boolean token, -1 otherwise. */
  bools = new Int8Array(8);
  /** Per entry: ms since the epoch for an ISO date, NaN otherwise. */
  dates = new Float64Array(8);
  /** Per entry: length in UTF-16 code units (what `string.length` says). */
  lengths = new Int32Array(8);
  /** Per entry: 1 when the text holds a space (several words). */
  spaces = new Uint8Array(8);
  private texts: (string | undefined)[] = [];
  private table = new Int32Array(16);
  private mask = 15;
  /**
   * Set once a lookup probed more than `MAX_PROBES` slots (texts crafted to share hashes, or
   * very bad luck): from then on entries are found by their text in a Map, whose string hashing
   * V8 seeds at random, so the worst case stays linear.
   */
  private byText: Map<string, number> | null = null;

  /** The entry holding `b[s, e)` (whose `hashBytes` is `h`), or -1. */
  find(b: Uint8Array, s: number, e: number, h: number): number {
    if (this.byText !== null) return this.byText.get(decode(b, s, e)) ?? -1;
    const len = e - s;
    const arena = this.arena;
    let probes = 0;
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      if (++probes > MAX_PROBES) {
        this.toMap();
        return this.find(b, s, e, h);
      }
      const k = this.table[slot]! - 1;
      if (k < 0) return -1;
      if (this.hashes[k] !== h || this.lens[k] !== len) continue;
      const o = this.offs[k]!;
      let same = true;
      for (let i = 0; i < len; i++) {
        if (arena[o + i] !== b[s + i]) {
          same = false;
          break;
        }
      }
      if (same) return k;
    }
  }

  /**
   * @param maxBytes most bytes of text kept (a streaming profile's share of its memory budget);
   *   `insert` refuses past it, as past a count cap
   */
  constructor(private readonly maxBytes = Infinity) {}

  /** Whether a text of `len` bytes still fits the byte budget. */
  fits(len: number): boolean {
    return this.arenaLen + len <= this.maxBytes;
  }

  /** Adds `b[s, e)` (not present yet; `h` is its hash) and returns its entry. */
  insert(b: Uint8Array, s: number, e: number, h: number): number {
    const k = this.size;
    if (k === this.offs.length) this.growEntries();
    const len = e - s;
    if (this.arenaLen + len > this.arena.length) {
      let cap = this.arena.length * 2;
      while (cap < this.arenaLen + len) cap *= 2;
      this.arena = grown(this.arena.subarray(0, this.arenaLen), cap);
    }
    this.arena.set(b.subarray(s, e), this.arenaLen);
    this.offs[k] = this.arenaLen;
    this.lens[k] = len;
    this.hashes[k] = h;
    this.arenaLen += len;
    this.counts[k] = 0;
    const bool = parseBooleanBytes(b, s, e);
    this.bools[k] = bool;
    this.dates[k] = bool < 0 ? parseDateBytes(b, s, e) : NaN;
    this.lengths[k] = utf16Length(b, s, e);
    let space = 0;
    for (let i = s; i < e; i++) {
      if (b[i] === 32) {
        space = 1;
        break;
      }
    }
    this.spaces[k] = space;
    this.size++;
    if (this.byText !== null) this.byText.set(this.text(k), k);
    else if (this.size * 2 > this.mask) this.rehash();
    else this.place(k, h);
    return k;
  }

  /** Leaves the hash table for a Map keyed by text (see `byText`). */
  private toMap(): void {
    this.byText = new Map();
    for (let k = 0; k < this.size; k++) this.byText.set(this.text(k), k);
    this.table = new Int32Array(0);
  }

  /** The entry of `b[s, e)`, added if new. */
  intern(b: Uint8Array, s: number, e: number): number {
    const h = hashBytes(b, s, e);
    const k = this.find(b, s, e, h);
    return k >= 0 ? k : this.insert(b, s, e, h);
  }

  /** The text of an entry. */
  text(k: number): string {
    let t = this.texts[k];
    if (t === undefined) {
      const o = this.offs[k]!;
      t = Buffer.from(this.arena.buffer, this.arena.byteOffset + o, this.lens[k]!).toString('utf8');
      this.texts[k] = t;
    }
    return t;
  }

  /** The stored hash of an entry (`hashBytes` of its text). */
  hash(k: number): number {
    return this.hashes[k]!;
  }

  private place(k: number, h: number): void {
    if (this.byText !== null) return;
    let slot = h & this.mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
    this.table[slot] = k + 1;
  }

  private rehash(): void {
    if (this.byText !== null) return;
    this.table = new Int32Array(this.table.length * 2);
    this.mask = this.table.length - 1;
    for (let k = 0; k < this.size; k++) this.place(k, this.hashes[k]!);
  }

  private growEntries(): void {
    const n = this.offs.length * 2;
    this.offs = grown(this.offs, n);
    this.lens = grown(this.lens, n);
    this.hashes = grown(this.hashes, n);
    this.counts = grown(this.counts, n);
    this.lengths = grown(this.lengths, n);
    this.bools = grown(this.bools, n);
    this.dates = grown(this.dates, n);
    this.spaces = grown(this.spaces, n);
  }
}

/** Distinct numbers a `NumberCounter` counts in its small hash table (it stays in a core's cache). */
const SMALL = 1 << 14;
/** Distinct numbers with fractions counted exactly (measurements: past this, their count is only shown). */
const FRACTIONS = 1 << 12;

/**
 * Distinct numbers and their counts, exact up to a cap, then estimated.
 *
 * Up to 16,384 distinct integers, or 4,096 distinct values once one has a fraction, they live in
 * a small open-addressing table that stays in a core's cache. Past that, a column of integers
 * (ids, counts: where exactness decides whether a column is an identifier) goes on exactly up to
 * `cap`, buffered and merged into a sorted array a buffer at a time; a column with fractions
 * (measurements, whose distinct count is only shown) goes to a HyperLogLog sketch. A hash table of 100,000 values per column missed the cache on nearly every
 * cell of a 30-column file: three times slower than this.
 */
export class NumberCounter {
  // Stage 1: the small table.
  // Small at first (a table may have thousands of columns); grown four times at a time.
  private tkeys: Float64Array | null = new Float64Array(64);
  private tcounts = new Int32Array(64);
  private tused = new Uint8Array(64);
  private tsize = 0;
  private allInts = true;
  // Stage 2: sorted distinct values and counts, and a buffer of values to merge.
  private keys = new Float64Array(0);
  private counts = new Int32Array(0);
  private pending: Float64Array | null = null;
  private npending = 0;
  // Stage 3: a sketch; the counts stay as they were when the cap was passed.
  private sketch: HyperLogLog | null = null;

  constructor(
    private readonly cap: number,
    private readonly precision = 14,
  ) {}

  /** Counts number `v`, whose `hashNumber` is `h`. */
  add(v: number, h: number): void {
    const x = v + 0;
    if (this.tkeys !== null) {
      const mask = this.tkeys.length - 1;
      let probes = 0;
      for (let slot = h & mask; ; slot = (slot + 1) & mask) {
        if (this.tused[slot] === 0) break;
        if (this.tkeys[slot] === x) {
          this.tcounts[slot]!++;
          return;
        }
        // Numbers crafted to share a slot: leave the table (to the sketch) rather than crawl.
        if (++probes > MAX_PROBES) {
          this.allInts = false;
          break;
        }
      }
      if (probes <= MAX_PROBES && this.tsize < (this.allInts ? SMALL : FRACTIONS) && this.tsize < this.cap) {
        let slot = h & mask;
        while (this.tused[slot] !== 0) slot = (slot + 1) & mask;
        this.tused[slot] = 1;
        this.tkeys[slot] = x;
        this.tcounts[slot] = 1;
        this.tsize++;
        if (this.allInts && !Number.isInteger(x)) this.allInts = false;
        if (this.tsize * 2 > mask && this.tkeys.length < (this.allInts ? SMALL : FRACTIONS) * 2) this.growTable();
        return;
      }
      this.leaveTable();
    }
    if (this.sketch === null && this.npending === this.pending!.length) this.flush();
    // flush() may have passed the cap and made the sketch.
    const sketch = this.sketch as HyperLogLog | null;
    if (sketch !== null) sketch.add(h);
    else this.pending![this.npending++] = x;
  }

  /** Whether `distinct` is exact (the cap was never passed). */
  get exact(): boolean {
    this.flush();
    return this.sketch === null;
  }


  /** Distinct numbers: exact below the cap, else the sketch's estimate. */
  get distinct(): number {
    this.flush();
    if (this.tkeys !== null) return this.tsize;
    return this.sketch === null ? this.keys.length : Math.max(this.keys.length, this.sketch.estimate());
  }

  /** Calls `f(value, count)` for every distinct number counted (before the cap, if passed). */
  forEach(f: (v: number, count: number) => void): void {
    this.flush();
    if (this.tkeys !== null) {
      for (let i = 0; i < this.tkeys.length; i++) if (this.tused[i] === 1) f(this.tkeys[i]!, this.tcounts[i]!);
      return;
    }
    for (let i = 0; i < this.keys.length; i++) f(this.keys[i]!, this.counts[i]!);
  }

  private growTable(): void {
    const keys = this.tkeys!;
    const counts = this.tcounts;
    const used = this.tused;
    // Four times larger each time: fewer rehashes on the way to the full small table.
    const n = Math.min(keys.length * 4, (this.allInts ? SMALL : FRACTIONS) * 2);
    const mask = n - 1;
    this.tkeys = new Float64Array(n);
    this.tcounts = new Int32Array(n);
    this.tused = new Uint8Array(n);
    for (let i = 0; i < keys.length; i++) {
      if (used[i] === 0) continue;
      let slot = hashNumber(keys[i]!) & mask;
      while (this.tused[slot] !== 0) slot = (slot + 1) & mask;
      this.tused[slot] = 1;
      this.tkeys[slot] = keys[i]!;
      this.tcounts[slot] = counts[i]!;
    }
  }

  /** The small table is full: integers go on exactly (sorted), fractions to the sketch. */
  private leaveTable(): void {
    const tkeys = this.tkeys!;
    const keys = new Float64Array(this.tsize);
    const counts = new Int32Array(this.tsize);
    let n = 0;
    for (let i = 0; i < tkeys.length; i++) {
      if (this.tused[i] === 0) continue;
      keys[n] = tkeys[i]!;
      counts[n++] = this.tcounts[i]!;
    }
    this.tkeys = null;
    if (this.allInts && this.cap > SMALL) {
      // Sorted, with each count found again by binary search in the sorted keys.
      const sorted = keys.slice().sort();
      const sc = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        let lo = 0;
        let hi = n - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (sorted[mid]! < keys[i]!) lo = mid + 1;
          else hi = mid;
        }
        sc[lo] = counts[i]!;
      }
      this.keys = sorted;
      this.counts = sc;
      this.pending = new Float64Array(SMALL);
    } else {
      this.keys = keys;
      this.counts = counts;
      this.toSketch(keys);
    }
  }

  private toSketch(keys: Float64Array): void {
    this.sketch = new HyperLogLog(this.precision);
    for (let k = 0; k < keys.length; k++) this.sketch.add(hashNumber(keys[k]!));
  }

  private flush(): void {
    if (this.npending === 0 || this.sketch !== null) return;
    const p = this.pending!.subarray(0, this.npending).sort();
    this.npending = 0;
    // Merge the sorted buffer's runs into the sorted distinct keys.
    const a = this.keys;
    const ac = this.counts;
    const keys = new Float64Array(a.length + p.length);
    const counts = new Int32Array(a.length + p.length);
    let i = 0;
    let j = 0;
    let n = 0;
    while (i < a.length || j < p.length) {
      if (j >= p.length || (i < a.length && a[i]! < p[j]!)) {
        keys[n] = a[i]!;
        counts[n++] = ac[i++]!;
        continue;
      }
      const v = p[j]!;
      let c = 0;
      while (j < p.length && p[j] === v) {
        c++;
        j++;
      }
      if (i < a.length && a[i] === v) c += ac[i++]!;
      keys[n] = v;
      counts[n++] = c;
    }
    if (n > this.cap) {
      this.toSketch(keys.subarray(0, n));
      this.keys = keys.slice(0, this.cap);
      this.counts = counts.slice(0, this.cap);
      return;
    }
    this.keys = keys.slice(0, n);
    this.counts = counts.slice(0, n);
  }
}

/** 2^-k for every register value k (a table: `2 ** -k` per register was most of an estimate). */
const INVERSE_POWERS = Float64Array.from({ length: 64 }, (_, k) => 2 ** -k);

/**
 * HyperLogLog (2^14 registers, 16 KiB, by default: a standard error of about 0.8 %). Used for
 * distinct counts once a column has more distinct values than the exact cap.
 */
export class HyperLogLog {
  private readonly p: number;
  private readonly reg: Uint8Array;

  /**
   * @param precision log2 of the registers: 14 (16 KiB, about 0.8 % error) by default; a table of
   *   thousands of columns uses fewer (its memory budget is shared)
   */
  constructor(precision = 14) {
    this.p = precision;
    this.reg = new Uint8Array(1 << precision);
  }

  /** Adds a 32-bit hash. */
  add(h: number): void {
    const idx = h >>> (32 - this.p);
    const rest = (h << this.p) >>> 0;
    // Position of the first 1-bit in the remaining bits (capped when they are all zero).
    const rank = rest === 0 ? 32 - this.p + 1 : Math.clz32(rest) + 1;
    if (rank > this.reg[idx]!) this.reg[idx] = rank;
  }

  estimate(): number {
    const m = this.reg.length;
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < m; i++) {
      sum += INVERSE_POWERS[this.reg[i]!]!;
      if (this.reg[i] === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / m);
    const e = (alpha * m * m) / sum;
    // Small range: linear counting is far more accurate while many registers are empty.
    if (e <= 2.5 * m && zeros > 0) return Math.round(m * Math.log(m / zeros));
    return Math.round(e);
  }
}
