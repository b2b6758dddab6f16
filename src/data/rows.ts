/**
 * Whole-row operations on a table in memory: exact duplicate detection. Rows are hashed column
 * by column (a text by its dictionary entry, a number by its value, a missing cell by a tag) and
 * rows with equal hashes are compared cell by cell, so a hash collision never drops a row.
 */
import { MISSING_HASH } from './column.js';
import { hashNumber } from './dictionary.js';
import type { Table } from './table.js';

/**
 * A row's hash is two 32-bit hashes folded over its cells' hashes (`Column` hashes: a text by
 * its bytes, a number by its value, a missing cell as `MISSING_HASH`), kept as a 53-bit key.
 * The streaming profile (builder.ts) and the exact count here hash rows alike.
 */
export const ROW_SEED1 = 0x811c9dc5 | 0;
export const ROW_SEED2 = 0x9747b28c | 0;

/** Folds a cell's hash `h` into a row's first hash. */
export function mixRow1(h1: number, h: number): number {
  return Math.imul(h1 ^ h, 0x01000193);
}

/** Folds a cell's hash `h` into a row's second hash. */
export function mixRow2(h2: number, h: number): number {
  const x = h2 ^ h;
  return Math.imul(x ^ (x >>> 15), 0x5bd1e995);
}

/** The 53-bit key of a row's two hashes: 21 bits of the first above the 32 of the second. */
export function rowKey(h1: number, h2: number): number {
  return (h1 >>> 11) * 4294967296 + (h2 >>> 0);
}

/** 53-bit hashes of `rows` (or all rows) of the table. */
function rowHashes(table: Table, rows: ArrayLike<number> | undefined): Float64Array {
  const n = rows ? rows.length : table.rowCount;
  const h1 = new Int32Array(n).fill(ROW_SEED1);
  const h2 = new Int32Array(n).fill(ROW_SEED2);
  for (const col of table.data) {
    for (let k = 0; k < n; k++) {
      const r = rows ? rows[k]! : k;
      const code = col.code(r);
      const v = col.number(r);
      const h = code >= 0 ? col.dict.hash(code) : v === v ? hashNumber(v) : MISSING_HASH;
      h1[k] = mixRow1(h1[k]!, h);
      h2[k] = mixRow2(h2[k]!, h);
    }
  }
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) out[k] = rowKey(h1[k]!, h2[k]!);
  return out;
}

function sameRow(table: Table, a: number, b: number): boolean {
  for (const col of table.data) {
    if (col.code(a) !== col.code(b)) return false;
    const x = col.number(a);
    const y = col.number(b);
    if (x !== y && (x === x || y === y)) return false;
  }
  return true;
}

/** Row indices of `rows` whose full content appeared earlier are dropped; returns the rest, in order. */
export function dropDuplicateRows(table: Table, rows: ArrayLike<number>): { kept: Int32Array; duplicates: number } {
  const hashes = rowHashes(table, rows);
  // First row with each hash; rows whose hash collides with a different row go on a side list.
  const first = new Map<number, number>();
  const others = new Map<number, number[]>();
  const kept = new Int32Array(rows.length);
  let n = 0;
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k]!;
    const h = hashes[k]!;
    const f = first.get(h);
    if (f === undefined) {
      first.set(h, r);
      kept[n++] = r;
      continue;
    }
    if (sameRow(table, f, r)) continue;
    const list = others.get(h);
    if (list?.some((o) => sameRow(table, o, r))) continue;
    if (list) list.push(r);
    else others.set(h, [r]);
    kept[n++] = r;
  }
  return { kept: kept.slice(0, n), duplicates: rows.length - n };
}

/** Rows identical to an earlier row of the table. */
export function duplicateCount(table: Table): number {
  const all = new Int32Array(table.rowCount);
  for (let i = 0; i < all.length; i++) all[i] = i;
  return dropDuplicateRows(table, all).duplicates;
}
