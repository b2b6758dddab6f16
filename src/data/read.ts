/**
 * Table readers: CSV (RFC 4180, delimiter sniffed), a JSON array of objects, and NDJSON. All of
 * them produce the same thing: a header, then rows of `Cell`s with their 1-based source line,
 * missing tokens already `null` and text trimmed (see `cells.ts`).
 *
 * `openRows` streams: a CSV file of any size is read with constant memory. NDJSON from a file is
 * read twice (the first pass collects the union of keys, so that the header is known before the
 * first row); a JSON array, and NDJSON that arrives on a stream, are parsed in memory.
 *
 * Error messages name the file, the line and the column position, never a cell's value: a
 * clinical table's cells are personal health information.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Errors, isMedfitError, type Cell } from '../core/index.js';
import type { Table, TableFormat } from './table.js';
import { normalizeText } from './cells.js';
import { CsvTokenizer, type CsvRecord } from './csv.js';

/** Options for the file readers. */
export interface ReadOptions {
  /** Overrides the format guessed from the file extension (or sniffed from the content). */
  format?: TableFormat;
}

/** One data row as a reader produced it. */
export interface Row {
  /** 1-based source line where the row starts (JSON: array index + 1). */
  line: number;
  /** One cell per column of the header, `null` where missing. */
  values: Cell[];
}

/** A table being read: the header is known before the first row is. */
export interface RowSource {
  /** File name (or `<stdin>`) used in error messages. */
  source: string;
  format: TableFormat;
  columns: string[];
  /**
   * The data rows, once. Iterating to the end throws `... : no data rows` when there are none;
   * breaking out early closes the file.
   */
  rows: AsyncIterable<Row>;
  /**
   * The same rows in batches (one per chunk read), for hot loops where one `await` per row
   * would cost more than the work on the row. Iterate `rows` or `batches`, not both.
   */
  batches: AsyncIterable<Row[]>;
}

/** How much of the start of a file is checked for binary content and used to sniff. */
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
  const m = /\S/.exec(head.charCodeAt(0) === 0xfeff ? head.slice(1) : head);
  if (m?.[0] === '[') return 'json';
  if (m?.[0] === '{') return 'ndjson';
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
 * Opens a table file for streaming: resolves once the header is read.
 * @param path the file; its extension gives the format unless `opts.format` is set
 */
export async function openRows(path: string, opts: ReadOptions = {}): Promise<RowSource> {
  await checkReadable(path);
  const format = opts.format ?? formatFromPath(path);
  if (format === 'ndjson') return openNdjsonFile(path);
  return openRowsFromStream(createReadStream(path, { highWaterMark: READ_CHUNK }), path, format);
}

/**
 * Opens a table arriving on a stream (stdin, an HTTP upload). Without `format` the content is
 * sniffed: `[` → json, `{` → ndjson, otherwise csv.
 * @param source the name used in error messages, e.g. `<stdin>` or the upload's file name
 */
export async function openRowsFromStream(
  stream: Readable,
  source: string,
  format?: TableFormat,
): Promise<RowSource> {
  let peeked: Peeked;
  try {
    peeked = await peek(stream, HEAD_BYTES);
  } catch (e) {
    stream.destroy();
    throw translateIoError(e, source);
  }
  const { head } = peeked;
  const bad = findBinaryByte(head.subarray(0, HEAD_BYTES), peeked.ended && head.length <= HEAD_BYTES);
  if (bad >= 0) {
    stream.destroy();
    throw Errors.badData(source, `not a text table (binary content at byte ${bad})`);
  }
  const headText = head.toString('utf8');
  if (headText.replace(/^\uFEFF/, '').trim() === '') {
    // Only whitespace so far: the whole file, unless more than HEAD_BYTES of blanks precede data.
    if (peeked.ended) {
      stream.destroy();
      throw Errors.badData(source, 'empty file');
    }
  }
  const fmt = format ?? sniffFormat(headText);
  if (fmt === 'csv') return openCsv(peeked, stream, source, headText);
  const text = await readAllText(peeked, stream, source);
  if (fmt === 'json') return rowSourceFromTable(parseJsonArray(text, source));
  return rowSourceFromTable(parseNdjsonText(text, source));
}

/**
 * Reads a whole table file into memory.
 * @param path the file; its extension gives the format unless `opts.format` is set
 */
export async function readTable(path: string, opts: ReadOptions = {}): Promise<Table> {
  return collect(await openRows(path, opts));
}

/**
 * Reads a whole table from a stream into memory (stdin, an upload).
 * @param source the name used in error messages
 * @param format the format; omitted, the content is sniffed
 */
export async function readTableFromStream(stream: Readable, source: string, format?: TableFormat): Promise<Table> {
  return collect(await openRowsFromStream(stream, source, format));
}

async function collect(src: RowSource): Promise<Table> {
  const rows: Cell[][] = [];
  const lines: number[] = [];
  for await (const batch of src.batches) {
    for (const r of batch) {
      rows.push(r.values);
      lines.push(r.line);
    }
  }
  return { source: src.source, format: src.format, columns: src.columns, rows, lines };
}

// ---------------------------------------------------------------------------------------------
// Streams and I/O errors

interface Peeked {
  head: Buffer;
  /** Whether the stream ended inside the head. */
  ended: boolean;
  /** The stream's chunks from the start, head included. */
  chunks: AsyncGenerator<Buffer>;
}

function toBuffer(v: unknown): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array);
}

/** Reads at least `n` bytes (or to the end) so the start can be inspected before parsing. */
async function peek(stream: Readable, n: number): Promise<Peeked> {
  const it = stream[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let len = 0;
  let ended = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = toBuffer(r.value);
    parts.push(b);
    len += b.length;
  }
  const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  async function* chunks(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield toBuffer(r.value);
    }
  }
  return { head, ended, chunks: chunks() };
}

async function readAllText(peeked: Peeked, stream: Readable, source: string): Promise<string> {
  const parts: Buffer[] = [];
  try {
    for await (const c of peeked.chunks) parts.push(c);
  } catch (e) {
    throw translateIoError(e, source);
  } finally {
    stream.destroy();
  }
  const text = Buffer.concat(parts).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

async function checkReadable(path: string): Promise<void> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) throw Errors.usage(`${path} is a directory, not a table file`);
  } catch (e) {
    throw translateIoError(e, path);
  }
}

function translateIoError(e: unknown, source: string): Error {
  if (isMedfitError(e)) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return Errors.notFound(`file ${source}`);
  if (code === 'EACCES' || code === 'EPERM') return Errors.badData(source, 'permission denied');
  if (code === 'EISDIR') return Errors.usage(`${source} is a directory, not a table file`);
  return Errors.badData(source, `cannot read (${code ?? 'I/O error'})`);
}

// ---------------------------------------------------------------------------------------------
// CSV

function checkHeader(names: string[], where: string): void {
  const seen = new Map<string, number>();
  names.forEach((name, j) => {
    if (name === '') throw Errors.badData(where, `header column ${j + 1} has no name`);
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw Errors.badData(where, `header column ${j + 1} ("${name}") repeats the name of column ${prev + 1}`);
    }
    seen.set(name, j);
  });
}

async function openCsv(peeked: Peeked, stream: Readable, source: string, headText: string): Promise<RowSource> {
  const delimiter = detectDelimiter(headText.replace(/^\uFEFF/, ''), !peeked.ended);
  const tok = new CsvTokenizer(delimiter, source);
  // The default TextDecoder drops a leading BOM, and `stream: true` keeps characters split
  // across chunks whole.
  const decoder = new TextDecoder('utf-8');
  async function* records(): AsyncGenerator<CsvRecord[]> {
    try {
      for await (const chunk of peeked.chunks) {
        const recs = tok.push(decoder.decode(chunk, { stream: true }));
        if (recs.length > 0) yield recs;
      }
      const last = tok.push(decoder.decode());
      last.push(...tok.end());
      if (last.length > 0) yield last;
    } catch (e) {
      throw translateIoError(e, source);
    } finally {
      stream.destroy();
    }
  }
  const it = records();
  let pending: CsvRecord[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) throw Errors.badData(source, 'empty file');
    if (r.value.length > 0) {
      pending = r.value;
      break;
    }
  }
  const head = pending[0]!;
  const columns = head.fields.map((f) => f.trim());
  checkHeader(columns, `${source}:${head.line}`);
  const width = columns.length;

  async function* batches(): AsyncGenerator<Row[]> {
    let count = 0;
    let first = true;
    try {
      for (;;) {
        let recs: CsvRecord[];
        if (first) {
          recs = pending.slice(1);
          first = false;
        } else {
          const r = await it.next();
          if (r.done) break;
          recs = r.value;
        }
        const out: Row[] = new Array(recs.length);
        for (let k = 0; k < recs.length; k++) {
          const { fields, line } = recs[k]!;
          if (fields.length !== width) {
            throw Errors.badData(`${source}:${line}`, `row has ${fields.length} fields, header has ${width}`);
          }
          const values: Cell[] = new Array(width);
          for (let j = 0; j < width; j++) values[j] = normalizeText(fields[j]!);
          out[k] = { line, values };
        }
        count += out.length;
        if (out.length > 0) yield out;
      }
    } finally {
      await it.return(undefined);
    }
    if (count === 0) throw Errors.badData(source, 'no data rows');
  }
  return makeSource(source, 'csv', columns, batches());
}

/** Wraps a batch generator so callers can take rows one by one or (faster) in batches. */
function makeSource(source: string, format: TableFormat, columns: string[], b: AsyncGenerator<Row[]>): RowSource {
  return {
    source,
    format,
    columns,
    batches: b,
    rows: {
      async *[Symbol.asyncIterator]() {
        for await (const batch of b) yield* batch;
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// JSON and NDJSON

function jsonCell(v: unknown, where: string, key: string): Cell {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') return normalizeText(v);
  const kind = Array.isArray(v) ? 'an array' : 'an object';
  throw Errors.badData(where, `key "${key}" holds ${kind}; nested values are not supported, flatten them first`);
}

/** Accumulates records with a growing union of keys (first-seen order). */
class RecordTable {
  readonly columns: string[] = [];
  private readonly index = new Map<string, number>();
  readonly rows: Cell[][] = [];
  readonly lines: number[] = [];

  add(obj: Record<string, unknown>, where: string, line: number): void {
    const row: Cell[] = new Array(this.columns.length).fill(null);
    for (const key of Object.keys(obj)) {
      let j = this.index.get(key);
      if (j === undefined) {
        if (key.trim() === '') throw Errors.badData(where, 'a key is empty');
        j = this.columns.length;
        this.columns.push(key);
        this.index.set(key, j);
      }
      row[j] = jsonCell(obj[key], where, key);
    }
    this.rows.push(row);
    this.lines.push(line);
  }

  finish(source: string, format: TableFormat): Table {
    const w = this.columns.length;
    // Rows read before a key first appeared are shorter; pad them with missing values.
    for (const r of this.rows) while (r.length < w) r.push(null);
    if (this.rows.length === 0) throw Errors.badData(source, 'no data rows');
    return { source, format, columns: this.columns, rows: this.rows, lines: this.lines };
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Line (1-based) of a character offset, for JSON syntax errors. */
function lineOf(text: string, pos: number): number {
  let n = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

function parseJsonArray(text: string, source: string): Table {
  if (text.trim() === '') throw Errors.badData(source, 'empty file');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    // V8's message quotes the text around the error (possibly a value); keep only the position,
    // which older V8 versions give (Node 20's does not: then the file alone is named).
    const pos = /position (\d+)/.exec((e as Error).message);
    const where = pos ? `${source}:${lineOf(text, Number(pos[1]))}` : source;
    throw Errors.badData(where, 'not valid JSON');
  }
  if (!Array.isArray(data)) throw Errors.badData(source, 'expected a JSON array of objects');
  const t = new RecordTable();
  data.forEach((rec, i) => {
    const where = `${source} record ${i + 1}`;
    if (!isPlainObject(rec)) throw Errors.badData(where, 'expected an object');
    t.add(rec, where, i + 1);
  });
  return t.finish(source, 'json');
}

function parseNdjsonLine(line: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw Errors.badData(where, 'not valid JSON');
  }
  if (!isPlainObject(v)) throw Errors.badData(where, 'expected a JSON object');
  return v;
}

function parseNdjsonText(text: string, source: string): Table {
  const t = new RecordTable();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${source}:${i + 1}`;
    t.add(parseNdjsonLine(line, where), where, i + 1);
  });
  return t.finish(source, 'ndjson');
}

async function* ndjsonLines(path: string): AsyncGenerator<{ n: number; text: string }> {
  const input = createReadStream(path, { encoding: 'utf8', highWaterMark: READ_CHUNK });
  const rl = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const raw of rl) {
      n++;
      const text = (n === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
      if (text !== '') yield { n, text };
    }
  } finally {
    rl.close();
    input.destroy();
  }
}

/** NDJSON from a file: a first pass for the union of keys, then the rows. */
async function openNdjsonFile(path: string): Promise<RowSource> {
  {
    // Binary check, same as for the other formats.
    const peeked = await peek(createReadStream(path, { start: 0, end: HEAD_BYTES - 1 }), HEAD_BYTES);
    const bad = findBinaryByte(peeked.head, peeked.head.length < HEAD_BYTES);
    if (bad >= 0) throw Errors.badData(path, `not a text table (binary content at byte ${bad})`);
    if (peeked.head.toString('utf8').replace(/^\uFEFF/, '').trim() === '' && peeked.head.length < HEAD_BYTES) {
      throw Errors.badData(path, 'empty file');
    }
  }
  const columns: string[] = [];
  const seen = new Set<string>();
  let records = 0;
  for await (const { n, text } of ndjsonLines(path)) {
    const where = `${path}:${n}`;
    const obj = parseNdjsonLine(text, where);
    for (const key of Object.keys(obj)) {
      jsonCell(obj[key], where, key); // validates nesting in the first pass, so errors come early
      if (!seen.has(key)) {
        if (key.trim() === '') throw Errors.badData(where, 'a key is empty');
        seen.add(key);
        columns.push(key);
      }
    }
    records++;
  }
  if (records === 0) throw Errors.badData(path, 'no data rows');
  const index = new Map(columns.map((c, j) => [c, j]));
  async function* batches(): AsyncGenerator<Row[]> {
    let batch: Row[] = [];
    for await (const { n, text } of ndjsonLines(path)) {
      const where = `${path}:${n}`;
      const obj = parseNdjsonLine(text, where);
      const values: Cell[] = new Array(columns.length).fill(null);
      for (const key of Object.keys(obj)) values[index.get(key)!] = jsonCell(obj[key], where, key);
      batch.push({ line: n, values });
      if (batch.length === 4096) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }
  return makeSource(path, 'ndjson', columns, batches());
}

function rowSourceFromTable(t: Table): RowSource {
  async function* batches(): AsyncGenerator<Row[]> {
    yield t.rows.map((values, i) => ({ line: t.lines[i]!, values }));
  }
  return makeSource(t.source, t.format, t.columns, batches());
}
