/**
 * Table readers: CSV (RFC 4180, delimiter sniffed), a JSON array of objects, and NDJSON. Each
 * feeds the cells, column by column, into `ColumnBuilder`s: kept (`readTable`: a columnar table
 * in memory) or only summarised with bounded memory (`scanTable`, under `profileFile`).
 *
 * CSV and NDJSON stream: a file of any size is read in 1 MiB chunks, in one pass, and the CSV
 * cells are read from the bytes without a string per cell (see csv.ts and bytes.ts). A JSON array
 * is one document and is parsed in memory.
 *
 * Error messages name the file, the line and the column position, never a cell's value: a
 * clinical table's cells are personal health information.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { Readable } from 'node:stream';
import { Errors, isMedfitError, type Cell } from '../core/index.js';
import { KEEP, STREAMING, type BuildOptions } from './column.js';
import { CsvScanner, QUOTED, type CsvBatch } from './csv.js';
import { MAX_COLUMNS, TableBuilder } from './builder.js';
import { shortName } from './pipeline.js';
import type { Table, TableFormat } from './table.js';

/** Options for the readers. */
export interface ReadOptions {
  /** Overrides the format guessed from the file extension (or sniffed from the content). */
  format?: TableFormat;
  /** Also compute the SHA-256 of the bytes read (`Table.sha256`). */
  hash?: boolean;
  /** The file's name in messages and on the table (a dataset's name, not its server path); default the path. */
  source?: string;
}

/** How much of the start of an input is checked for binary content and used to sniff. */
const HEAD_BYTES = 64 * 1024;
/** Chunk size for file reads; larger chunks mean fewer trips through the stream machinery. */
const READ_CHUNK = 1024 * 1024;

/**
 * The format implied by a file name: `.csv`, `.tsv`, `.txt` → csv; `.json` → json;
 * `.ndjson`, `.jsonl` → ndjson; anything else `undefined` (the content is sniffed).
 */
export function formatFromPath(path: string): TableFormat | undefined {
  switch (extname(path).toLowerCase()) {
    case '.csv':
    case '.tsv':
    case '.txt':
      return 'csv';
    case '.json':
      return 'json';
    case '.ndjson':
    case '.jsonl':
      return 'ndjson';
    default:
      return undefined;
  }
}

/**
 * Guesses the format from the first non-blank character: `[` → json, `{` → ndjson, anything
 * else csv. Used for stdin and for files with an unknown extension.
 */
export function sniffFormat(head: string): TableFormat {
  for (let i = head.charCodeAt(0) === 0xfeff ? 1 : 0; i < head.length; i++) {
    const c = head[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') continue;
    return c === '[' ? 'json' : c === '{' ? 'ndjson' : 'csv';
  }
  return 'csv';
}

/**
 * The byte offset of the first NUL byte or invalid UTF-8 sequence in `buf`, or -1 when it looks
 * like text. Unless `complete` (buf is the whole file), a multi-byte sequence cut off at the end
 * is not counted as invalid, because `buf` is usually the first slice of a longer file.
 */
export function findBinaryByte(buf: Uint8Array, complete = false): number {
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const b = buf[i]!;
    if (b === 0) return i;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      // Cut off at the end of a slice of a longer file: decide later, not here.
      if (i + k >= n) return complete ? i : -1;
      const c = buf[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * Picks the CSV delimiter among `,` `;` and tab from the start of a file: it counts each
 * candidate outside quotes on the first records and prefers one that appears the same number of
 * times on every record (the most such times wins); if none is consistent, the one most frequent
 * in the header; if none appears at all (a one-column file), `,`.
 */
export function detectDelimiter(sample: string, truncated = false): string {
  const cands = [',', ';', '\t'];
  const counts: number[][] = [];
  let cur = [0, 0, 0];
  let inQuotes = false;
  let recordHasContent = false;
  for (let i = 0; i < sample.length && counts.length < 20; i++) {
    const ch = sample[i]!;
    if (ch === '"') {
      inQuotes = !inQuotes; // a doubled quote toggles twice, which is what we want
      recordHasContent = true;
    } else if (!inQuotes && (ch === '\n' || ch === '\r')) {
      if (recordHasContent) counts.push(cur);
      cur = [0, 0, 0];
      recordHasContent = false;
    } else {
      if (!inQuotes) {
        const k = cands.indexOf(ch);
        if (k >= 0) cur[k]!++;
      }
      if (ch !== ' ') recordHasContent = true;
    }
  }
  // The last record of a sample is complete only when the sample is the whole file.
  if (recordHasContent && !truncated) counts.push(cur);
  if (counts.length === 0) return ',';
  const header = counts[0]!;
  let best = -1;
  for (let k = 0; k < cands.length; k++) {
    if (header[k]! === 0) continue;
    if (!counts.every((c) => c[k] === header[k])) continue;
    if (best < 0 || header[k]! > header[best]!) best = k;
  }
  if (best < 0) {
    for (let k = 0; k < cands.length; k++) {
      if (header[k]! > 0 && (best < 0 || header[k]! > header[best]!)) best = k;
    }
  }
  return best < 0 ? ',' : cands[best]!;
}

/**
 * Reads a whole table file into memory, columnar (see column.ts).
 * @param path the file; its extension gives the format unless `opts.format` is set
 */
export async function readTable(path: string, opts: ReadOptions = {}): Promise<Table> {
  const source = opts.source ?? path;
  const size = await checkReadable(path, source);
  const b = new TableBuilder(KEEP);
  const sha = await scan(fileChunks(path), source, opts.format ?? formatFromPath(path), b, opts.hash ?? false, size);
  return b.table(source, sha);
}

/**
 * Reads a whole table from a stream into memory (stdin, an upload).
 * @param source the name used in error messages
 * @param format the format; omitted, the content is sniffed
 */
export async function readTableFromStream(stream: Readable, source: string, format?: TableFormat, opts: { hash?: boolean } = {}): Promise<Table> {
  const b = new TableBuilder(KEEP);
  const sha = await scan(streamChunks(stream), source, format, b, opts.hash ?? false);
  return b.table(source, sha);
}

/**
 * Streams a table file once through bounded-memory column builders (a profile's pass): returns
 * the builder with every column's evidence, the row count and the distinct-row estimate.
 */
export async function scanTable(path: string, opts: { format?: TableFormat; build?: BuildOptions; source?: string } = {}): Promise<TableBuilder> {
  const source = opts.source ?? path;
  await checkReadable(path, source);
  const b = new TableBuilder(opts.build ?? STREAMING, true);
  await scan(fileChunks(path), source, opts.format ?? formatFromPath(path), b, false);
  return b;
}

/**
 * Builds a table in memory from rows of cells (tests, small inputs), read by the same rules as a
 * file. `lines` gives each row's source line (default 1, 2, ...).
 */
export function tableFromRows(
  columns: string[],
  rows: Cell[][],
  opts: { source?: string; format?: TableFormat; lines?: ArrayLike<number> } = {},
): Table {
  const source = opts.source ?? '<rows>';
  const b = new TableBuilder(KEEP);
  checkHeader(columns, source);
  b.setColumns(columns, source);
  rows.forEach((r, i) => {
    if (r.length !== columns.length) throw Errors.badData(`${source}:${i + 1}`, `row has ${r.length} cells, the header has ${columns.length}`);
    b.addCells(r, opts.lines?.[i] ?? i + 1);
  });
  b.format = opts.format ?? 'json';
  if (b.rows === 0) throw Errors.badData(source, 'no data rows');
  return b.table(source, undefined);
}

/** The rows of a table as cells (numbers as numbers, other text as strings, null when missing). */
export function rowsOf(table: Table): Cell[][] {
  return Array.from({ length: table.rowCount }, (_, r) => table.data.map((c) => c.cell(r)));
}

// ---------------------------------------------------------------------------------------------
// The one pass

/**
 * A file's bytes in 1 MiB chunks read into ONE reused buffer: each chunk is a view that is only
 * valid until the next is read (every reader below consumes or copies it at once). Fresh memory
 * is what reading costs most on a small virtual machine (a page fault per 4 KiB touched): a new
 * buffer per chunk, as a read stream makes, cost a profile more than parsing the numbers did.
 */
async function* fileChunks(path: string): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** A stream's chunks as Buffers (each its own: a stream does not reuse them). */
async function* streamChunks(stream: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const c of stream) yield toBuffer(c);
  } finally {
    stream.destroy();
  }
}

/**
 * Reads `input` into `b`; returns the SHA-256 of its bytes when `hash`. A chunk may be a view of
 * a reused buffer (`fileChunks`): it is parsed, hashed or copied before the next is asked for.
 */
async function scan(input: AsyncGenerator<Buffer>, source: string, format: TableFormat | undefined, b: TableBuilder, hash: boolean, size?: number): Promise<string | undefined> {
  const sha = hash ? createHash('sha256') : null;
  const it = input;
  try {
    // The head: checked for binary content, and used to sniff the format and the delimiter.
    const parts: Buffer[] = [];
    let len = 0;
    let ended = false;
    while (len < HEAD_BYTES) {
      const r = await it.next();
      if (r.done) {
        ended = true;
        break;
      }
      len += r.value.length;
      // A chunk that another read will follow is copied: that read may reuse its buffer.
      parts.push(len < HEAD_BYTES ? Buffer.from(r.value) : r.value);
    }
    const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const bad = findBinaryByte(head.subarray(0, HEAD_BYTES), ended && head.length <= HEAD_BYTES);
    if (bad >= 0) throw Errors.badData(source, `not a text table (binary content at byte ${bad})`);
    const headText = head.subarray(0, HEAD_BYTES).toString('utf8');
    if (ended && headText.replace(/^\uFEFF/, '').trim() === '') throw Errors.badData(source, 'empty file');
    const fmt = format ?? sniffFormat(headText);
    b.format = fmt;
    sha?.update(head);
    const rest = async function* (): AsyncGenerator<Buffer> {
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        sha?.update(r.value);
        yield r.value;
      }
    };
    if (fmt === 'csv') await scanCsv(head, headText, ended, rest(), source, b, size);
    else if (fmt === 'ndjson') await scanNdjson(head, rest(), source, b);
    else await scanJson(head, rest(), source, b);
  } catch (e) {
    throw translateIoError(e, source);
  } finally {
    await it.return(undefined);
  }
  return sha ? sha.digest('hex') : undefined;
}

function toBuffer(v: unknown): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array);
}

/** Checks that `path` is a readable file and returns its size. */
async function checkReadable(path: string, source = path): Promise<number> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) throw Errors.usage(`${source} is a directory, not a table file`);
    return s.size;
  } catch (e) {
    throw translateIoError(e, source);
  }
}

function translateIoError(e: unknown, source: string): Error {
  if (isMedfitError(e)) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return Errors.notFound(`file ${source}`);
  if (code === 'EACCES' || code === 'EPERM') return Errors.badData(source, 'permission denied');
  if (code === 'EISDIR') return Errors.usage(`${source} is a directory, not a table file`);
  if (e instanceof RangeError) return Errors.badData(source, 'too large to read into memory');
  return Errors.badData(source, `cannot read (${code ?? 'I/O error'})`);
}

/** Throws when a header has an empty, repeated or unprintable name (names are cut in messages). */
export function checkHeader(names: string[], where: string): void {
  const seen = new Map<string, number>();
  names.forEach((name, j) => {
    if (name === '') throw Errors.badData(where, `header column ${j + 1} has no name`);
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      // A NUL or another control character in a name is a broken or binary file, not a column.
      if (c < 32 || c === 127) throw Errors.badData(where, `header column ${j + 1} has a control character in its name`);
    }
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw Errors.badData(where, `header column ${j + 1} ("${shortName(name)}") repeats the name of column ${prev + 1}`);
    }
    seen.set(name, j);
  });
}

// ---------------------------------------------------------------------------------------------
// CSV

async function scanCsv(head: Buffer, headText: string, ended: boolean, rest: AsyncGenerator<Buffer>, source: string, b: TableBuilder, size?: number): Promise<void> {
  const text = headText.charCodeAt(0) === 0xfeff ? headText.slice(1) : headText;
  const scanner = new CsvScanner(detectDelimiter(text, !ended), source);
  scanner.maxFields = MAX_COLUMNS;
  let width = -1;
  const take = (batch: CsvBatch): void => {
    let from = 0;
    if (width < 0) {
      if (batch.count === 0) return;
      width = batch.first[1]! - batch.first[0]!;
      const names: string[] = [];
      for (let f = 0; f < width; f++) names.push(fieldText(batch, f).trim());
      checkHeader(names, `${source}:${batch.lines[0]}`);
      b.setColumns(names, `${source}:${batch.lines[0]}`);
      scanner.maxFields = width;
      from = 1;
    }
    b.addCsv(batch, from, width, source);
  };
  // A UTF-8 byte order mark is not part of the first column's name.
  const bom = head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  take(scanner.push(bom ? head.subarray(3) : head));
  // Rows per byte of the first chunk, times the file's size: the columns are allocated once at
  // about their final size instead of doubling (fresh memory is what reading costs most).
  if (size !== undefined && b.rows > 0 && !ended) b.reserve(Math.ceil((size / head.length) * b.rows * 1.05));
  for await (const chunk of rest) take(scanner.push(chunk));
  take(scanner.end());
  if (width < 0) throw Errors.badData(source, 'empty file');
  if (b.rows === 0) throw Errors.badData(source, 'no data rows');
}

/** A field's text, with doubled quotes undone (the header's names). */
function fieldText(batch: CsvBatch, f: number): string {
  const t = Buffer.from(batch.buf.buffer, batch.buf.byteOffset + batch.starts[f]!, batch.ends[f]! - batch.starts[f]!).toString('utf8');
  return (batch.flags[f]! & QUOTED) !== 0 ? t.replaceAll('""', '"') : t;
}

// ---------------------------------------------------------------------------------------------
// JSON and NDJSON

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Line (1-based) of a character offset, for JSON syntax errors. */
function lineOf(text: string, pos: number): number {
  let n = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

async function scanJson(head: Buffer, rest: AsyncGenerator<Buffer>, source: string, b: TableBuilder): Promise<void> {
  // One document: every chunk is kept, so each is copied out of the reused read buffer.
  const parts = [Buffer.from(head)];
  for await (const c of rest) parts.push(Buffer.from(c));
  let text = Buffer.concat(parts).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') throw Errors.badData(source, 'empty file');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    // V8's message quotes the text around the error (possibly a value); keep only the position,
    // which older V8 versions give (Node 20's does not: then the file alone is named).
    const pos = /position (\d+)/.exec((e as Error).message);
    throw Errors.badData(pos ? `${source}:${lineOf(text, Number(pos[1]))}` : source, 'not valid JSON');
  }
  if (!Array.isArray(data)) throw Errors.badData(source, 'expected a JSON array of objects');
  data.forEach((rec, i) => {
    const where = `${source} record ${i + 1}`;
    if (!isPlainObject(rec)) throw Errors.badData(where, 'expected an object');
    b.addRecord(rec, where, i + 1);
  });
  if (b.rows === 0) throw Errors.badData(source, 'no data rows');
}

async function scanNdjson(head: Buffer, rest: AsyncGenerator<Buffer>, source: string, b: TableBuilder): Promise<void> {
  const lines = ndjsonRecords(source, (v, where, line) => b.addRecord(v, where, line));
  lines.take(head);
  for await (const c of rest) lines.take(c);
  lines.end();
  if (b.rows === 0) throw Errors.badData(source, 'no data rows');
}

/**
 * NDJSON records from bytes given in chunks: each non-blank line parsed as JSON and handed to
 * `onRecord` with where it was (`source:line`); a line that is not JSON, or not an object, is an
 * error naming it (never quoting it). Linear: each chunk is searched for line breaks once, and the
 * unfinished last line is kept in pieces, so a long line spread over many chunks is never rescanned.
 */
export function ndjsonRecords(source: string, onRecord: (record: Record<string, unknown>, where: string, line: number) => void): { take(chunk: Buffer): void; end(): void } {
  const decoder = new TextDecoder('utf-8');
  let pending: string[] = [];
  let pendingLength = 0;
  let line = 0;
  const one = (raw: string) => {
    line++;
    const t = raw.trim();
    if (t === '') return;
    const where = `${source}:${line}`;
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      throw Errors.badData(where, 'not valid JSON');
    }
    if (!isPlainObject(v)) throw Errors.badData(where, 'expected a JSON object');
    onRecord(v, where, line);
  };
  const take = (text: string) => {
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      const piece = text.slice(start, nl);
      one(pending.length === 0 ? piece : pending.join('') + piece);
      pending = [];
      pendingLength = 0;
      start = nl + 1;
    }
    if (start < text.length) {
      pending.push(text.slice(start));
      pendingLength += text.length - start;
      if (pendingLength > MAX_LINE) throw Errors.badData(`${source}:${line + 1}`, `a line is longer than ${MAX_LINE} characters`);
    }
  };
  return {
    // The default TextDecoder drops a leading BOM; `stream: true` keeps split characters whole.
    take: (chunk) => take(decoder.decode(chunk, { stream: true })),
    end: () => {
      take(decoder.decode());
      if (pending.length > 0) one(pending.join(''));
    },
  };
}

/** Longest NDJSON line read: one record far larger than any table row is a broken file. */
const MAX_LINE = 64 * 1024 * 1024;

