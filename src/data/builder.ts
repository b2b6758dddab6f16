/**
 * `TableBuilder`: the readers' sink. It owns one `ColumnBuilder` per column, the source line of
 * every row, and (for a streaming profile) a fixed-memory estimate of distinct rows.
 */
import { Errors, type Cell } from '../core/index.js';
import { grown } from './arrays.js';
import { ColumnBuilder, budgeted, type BuildOptions } from './column.js';
import { MAX_PROBES } from './dictionary.js';
import type { CsvBatch } from './csv.js';
import { ROW_SEED1, ROW_SEED2, mixRow1, mixRow2, rowKey } from './rows.js';
import type { Table, TableFormat } from './table.js';

/** Table slot of a row hash, from the parts its 53-bit key keeps. */
function slotOf(hi: number, lo: number): number {
  return Math.imul(hi, 0x9e3779b1) ^ Math.imul(lo >>> 5, 0x85ebca6b);
}

/**
 * Rows that repeat an earlier row, from 53-bit row hashes in fixed memory: exact (up to hash
 * collisions, about rows² / 2^54) until `capacity` distinct rows, then adaptive sampling
 * (Gibbons): only hashes whose low `level` bits are zero are kept, with how often each was seen,
 * and the repeats among them stand for 2^level times as many. All copies of a row share a hash,
 * so they are kept or dropped together: a file without duplicates is reported without any,
 * sampled or not.
 */
export class DistinctRows {
  private keys: Float64Array;
  private counts: Int32Array;
  private mask: number;
  private size = 0;
  private level = 0;
  private crowded = false;
  rows = 0;

  constructor(private readonly capacity = 1 << 21) {
    this.keys = new Float64Array(1 << 16);
    this.counts = new Int32Array(1 << 16);
    this.mask = this.keys.length - 1;
  }

  add(h1: number, h2: number): void {
    this.rows++;
    if ((h2 & ((1 << this.level) - 1)) !== 0) return;
    // 0 marks an empty slot, so a key of 0 becomes 1.
    const key = rowKey(h1, h2) || 1;
    let slot = slotOf(h1 >>> 11, h2) & this.mask;
    for (let probes = 0; ; probes++) {
      const k = this.keys[slot]!;
      if (k === 0) break;
      if (k === key) {
        this.counts[slot]!++;
        return;
      }
      // Rows crafted to crowd one stretch of the table: left uncounted (the count becomes an
      // estimate) rather than crawled through for every row.
      if (probes > MAX_PROBES) {
        this.crowded = true;
        return;
      }
      slot = (slot + 1) & this.mask;
    }
    this.keys[slot] = key;
    this.counts[slot] = 1;
    this.size++;
    if (this.size * 2 > this.keys.length) {
      if (this.keys.length < this.capacity * 2) this.rebuild(this.keys.length * 2);
      else {
        this.level++;
        this.rebuild(this.keys.length);
      }
    }
  }

  /** Rows that repeat an earlier row: counted, or estimated from the sample once sampling began. */
  get duplicates(): number {
    let repeats = 0;
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]! > 1) repeats += this.counts[i]! - 1;
    return repeats * 2 ** this.level;
  }

  /** Whether the count is an estimate (a sample's, or some rows were left uncounted). */
  get sampled(): boolean {
    return this.level > 0 || this.crowded;
  }

  private rebuild(length: number): void {
    const old = this.keys;
    const oldCounts = this.counts;
    this.keys = new Float64Array(length);
    this.counts = new Int32Array(length);
    this.mask = length - 1;
    this.size = 0;
    const lowMask = (1 << this.level) - 1;
    for (let i = 0; i < old.length; i++) {
      const key = old[i]!;
      if (key === 0) continue;
      const hi = Math.floor(key / 4294967296);
      const h2 = (key - hi * 4294967296) | 0;
      if ((h2 & lowMask) !== 0) continue;
      let slot = slotOf(hi, h2) & this.mask;
      while (this.keys[slot] !== 0) slot = (slot + 1) & this.mask;
      this.keys[slot] = key;
      this.counts[slot] = oldCounts[i]!;
      this.size++;
    }
  }
}

/**
 * Most columns a table may have. Clinical and sensor tables have tens to hundreds; past ten
 * thousand, every per-column structure (however small) adds up to gigabytes, so a wider file is
 * refused rather than read.
 */
export const MAX_COLUMNS = 10_000;

function checkWidth(columns: number, where: string): void {
  if (columns > MAX_COLUMNS) throw Errors.badData(where, `has ${columns} columns; medfit reads tables of at most ${MAX_COLUMNS}`);
}

/** Collects a table's columns as readers produce them. */
export class TableBuilder {
  columns: string[] = [];
  builders: ColumnBuilder[] = [];
  format: TableFormat = 'csv';
  rows = 0;
  private lines = new Int32Array(1024);
  private readonly index = new Map<string, number>();
  /** Distinct rows (streaming profiles); null when the table is kept (duplicates are then exact). */
  readonly distinctRows: DistinctRows | null;
  private h1 = new Int32Array(0);
  private h2 = new Int32Array(0);

  constructor(
    private readonly opts: BuildOptions,
    hashRows = false,
  ) {
    this.distinctRows = hashRows ? new DistinctRows() : null;
  }

  /** Makes room for about `rows` rows in every column and the line numbers (a size estimate). */
  reserve(rows: number): void {
    if (rows > this.lines.length) this.lines = grown(this.lines.subarray(0, this.rows), rows);
    for (const b of this.builders) b.reserve(rows);
  }

  /** Sets the header (CSV, or rows given in memory); `where` names it in errors. */
  setColumns(names: string[], where = ''): void {
    checkWidth(names.length, where);
    const opts = budgeted(this.opts, names.length);
    for (const name of names) this.addColumn(name, opts);
  }

  private addColumn(name: string, opts: BuildOptions): number {
    const j = this.columns.length;
    this.columns.push(name);
    this.index.set(name, j);
    const b = new ColumnBuilder(opts, j);
    // A key first seen after some rows: those rows did not have it.
    for (let r = 0; r < this.rows; r++) b.addMissing();
    this.builders.push(b);
    return j;
  }

  private addLine(line: number): void {
    if (this.rows === this.lines.length) this.lines = grown(this.lines, this.rows * 2);
    this.lines[this.rows++] = line;
  }

  /** Adds records `from..count-1` of a CSV batch, each of which must have `width` fields. */
  addCsv(batch: CsvBatch, from: number, width: number, source: string): void {
    const { first, lines, count, buf, starts, ends, flags } = batch;
    for (let r = from; r < count; r++) {
      const nf = first[r + 1]! - first[r]!;
      if (nf !== width) throw Errors.badData(`${source}:${lines[r]}`, `row has ${nf} fields, header has ${width}`);
    }
    const n = count - from;
    if (n <= 0) return;
    for (let r = from; r < count; r++) this.addLine(lines[r]!);
    const hashing = this.distinctRows !== null;
    if (hashing && this.h1.length < n) {
      this.h1 = new Int32Array(n);
      this.h2 = new Int32Array(n);
    }
    const h1 = this.h1;
    const h2 = this.h2;
    if (hashing) {
      h1.fill(ROW_SEED1, 0, n);
      h2.fill(ROW_SEED2, 0, n);
    }
    // Column by column: each column's builder stays hot, and its call site monomorphic.
    for (let j = 0; j < width; j++) {
      const col = this.builders[j]!;
      if (!hashing) {
        for (let r = from; r < count; r++) {
          const f = first[r]! + j;
          col.add(buf, starts[f]!, ends[f]!, flags[f]!);
        }
        continue;
      }
      for (let r = from, i = 0; r < count; r++, i++) {
        const f = first[r]! + j;
        const h = col.add(buf, starts[f]!, ends[f]!, flags[f]!);
        h1[i] = mixRow1(h1[i]!, h);
        h2[i] = mixRow2(h2[i]!, h);
      }
    }
    if (hashing) for (let i = 0; i < n; i++) this.distinctRows!.add(h1[i]!, h2[i]!);
  }

  /** Adds one JSON record; keys not seen before become columns. */
  addRecord(obj: Record<string, unknown>, where: string, line: number): void {
    const keys = Object.keys(obj);
    let added = 0;
    for (const key of keys) if (!this.index.has(key)) added++;
    if (added > 0) {
      checkWidth(this.columns.length + added, where);
      // New keys share the budget of the width the table has now.
      const opts = budgeted(this.opts, this.columns.length + added);
      for (const key of keys) {
        if (this.index.has(key)) continue;
        if (key.trim() === '') throw Errors.badData(where, 'a key is empty');
        this.addColumn(key, opts);
      }
    }
    const cells: (Cell | undefined)[] = new Array(this.columns.length);
    for (const key of keys) {
      const v = obj[key];
      if (v !== null && typeof v === 'object') {
        const kind = Array.isArray(v) ? 'an array' : 'an object';
        throw Errors.badData(where, `key "${key}" holds ${kind}; nested values are not supported, flatten them first`);
      }
      cells[this.index.get(key)!] = v as Cell | undefined;
    }
    this.addCells(cells, line);
  }

  /** Adds one row of cells, aligned with the columns. */
  addCells(cells: ArrayLike<Cell | undefined>, line: number): void {
    this.addLine(line);
    let h1 = ROW_SEED1;
    let h2 = ROW_SEED2;
    for (let j = 0; j < this.builders.length; j++) {
      const h = this.builders[j]!.addCell(cells[j]);
      h1 = mixRow1(h1, h);
      h2 = mixRow2(h2, h);
    }
    this.distinctRows?.add(h1, h2);
  }

  /** The kept table (the builder must have been made with `store`). */
  table(source: string, sha256: string | undefined): Table {
    return {
      source,
      format: this.format,
      columns: this.columns,
      data: this.builders.map((b, j) => b.finish(this.columns[j]!)),
      rowCount: this.rows,
      lines: this.lines.slice(0, this.rows),
      ...(sha256 !== undefined ? { sha256 } : {}),
    };
  }
}
