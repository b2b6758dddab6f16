/**
 * De-identification of tables (CSV, NDJSON, a JSON array of records) by HIPAA Safe Harbor, one
 * rule per column, planned from the column's profile (`planTable`) and applied in one streaming
 * pass (`deidentifyTableFile`) that writes the result atomically: the whole de-identified table,
 * or nothing.
 *
 * The rules (see `planTable`):
 * - names, e-mail addresses, phone and fax numbers, social security numbers, addresses (street,
 *   city, county), document numbers, URLs, IP addresses: the column is dropped;
 * - medical record numbers and other identifiers (a patient id, a subject, a row key): keyed
 *   HMAC pseudonyms (`Deidentifier.pseudonym`), so rows of one person still share a value and
 *   `--group` still keeps them together;
 * - ZIP codes: the ZIP3 rule (zip3.ts), unreadable ones emptied;
 * - dates of birth and every other full date (datetime columns, text columns of full dates): the
 *   year. A table has no reliable way to say whose row is whose (a per-patient date shift needs
 *   one), so the year is the rule here whatever the de-identifier's `dates`; a birth year that
 *   makes its owner older than 89 at the de-identifier's `now` becomes the year of a 90-year-old;
 * - an age in years (`age`, `age_years`; numeric): over 89 becomes 90;
 * - free text (a column typed `text`, or one the profile found reads as free text): dropped;
 * - anything else is kept as it is.
 *
 * A column is only as well de-identified as its profile recognised it: a column of names under a
 * neutral heading whose values look like codes is kept (see docs/deidentification.md).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Errors, isMedfitError, streamToFileAtomic, type ColumnType } from '../core/index.js';
import {
  CsvScanner,
  ESCAPED,
  checkHeader,
  columnPhi,
  csvField,
  detectDelimiter,
  findBinaryByte,
  formatFromPath,
  isAgeName,
  isMissing,
  ndjsonRecords,
  parseNumber,
  sniffFormat,
  type CsvBatch,
  type PhiKind,
  type TableFormat,
} from '../data/index.js';
import type { Deidentifier } from './deidentifier.js';
import { zip3 } from './zip3.js';

/** What happens to a column's cells. */
export type ColumnAction = 'keep' | 'drop' | 'pseudonym' | 'zip3' | 'year' | 'age';

/** The rule for one column, and why (words a report may show; never a value). */
export interface ColumnRule {
  column: string;
  action: ColumnAction;
  /** The PHI kind that decided it, when one did. */
  kind?: PhiKind;
  reason: string;
}

/** What `planTable` reads of a column: a `ColumnProfile` (or a schema column) fits. */
export interface ColumnFacts {
  name: string;
  type: ColumnType;
  /** The profile's PHI kind (profiles written before it existed lack it: the name then decides). */
  phi?: PhiKind;
}

const DROPPED_KINDS: Partial<Record<PhiKind, string>> = {
  name: "a person's name",
  email: 'e-mail addresses',
  phone: 'phone or fax numbers',
  ssn: 'social security numbers',
  address: 'addresses',
  document: 'document numbers',
  url: 'web addresses',
  ip: 'IP addresses',
  text: 'free text (which may name people)',
};

/**
 * The de-identification rule of each column, from its profile (see the module comment for the
 * rules). The result is plain data: a caller may show it, or change a rule it knows better
 * before `deidentifyTableFile` applies them.
 */
export function planTable(columns: readonly ColumnFacts[]): ColumnRule[] {
  return columns.map((c) => {
    const kind = c.phi ?? columnPhi(c.name, c.type)?.kind;
    const rule = (action: ColumnAction, reason: string): ColumnRule => ({ column: c.name, action, ...(kind !== undefined ? { kind } : {}), reason });
    if (kind !== undefined) {
      const dropped = DROPPED_KINDS[kind];
      if (dropped !== undefined) return rule('drop', `may hold ${dropped}`);
      switch (kind) {
        case 'mrn':
          return rule('pseudonym', 'medical record numbers: keyed pseudonyms');
        case 'identifier':
          return rule('pseudonym', 'identifiers: keyed pseudonyms (rows of one person still share one)');
        case 'zip':
          return rule('zip3', 'ZIP codes: the first three digits (000 for areas of 20,000 people or fewer)');
        case 'birthdate':
          return rule('year', 'dates of birth: the year (a birth year over 89 years ago pooled as 90)');
        case 'date':
          return rule('year', 'full dates: the year');
        default:
          break;
      }
    }
    if (c.type === 'text') return rule('drop', 'free text');
    if (c.type === 'datetime') return rule('year', 'dates: the year');
    if ((c.type === 'numeric' || c.type === 'integer') && isAgeName(c.name)) return rule('age', 'ages in years: over 89 becomes 90');
    return rule('keep', 'not an identifier');
  });
}

/** Options of `deidentifyTableFile`. */
export interface TableDeidentifyOptions {
  /** One rule per column (`planTable`); a column without one is dropped. */
  rules: readonly ColumnRule[];
  deidentifier: Deidentifier;
  /** The input's format; default from the file name, else sniffed from its first bytes. */
  format?: TableFormat;
  /** The input's name in messages (an upload's name, not its server path); default the path. */
  source?: string;
  /** Largest output in bytes; past it a 413 and nothing written. */
  maxBytes?: number;
}

/** What one column's rule did. */
export interface ColumnReport extends ColumnRule {
  /** Cells written differently from how they were read. */
  changed: number;
  /** Cells that could not be read for their rule (a ZIP that is not one, a date without a year) and were emptied. */
  emptied: number;
}

/** What `deidentifyTableFile` wrote. */
export interface TableDeidentifyResult {
  format: TableFormat;
  rows: number;
  /** The columns written (kept ones, in input order). */
  columns: string[];
  /** Per input column (dropped ones too), what its rule did: counts only, never values. */
  report: ColumnReport[];
  bytes: number;
  sha256: string;
}

/**
 * The year of a cell holding a date: ISO (`2019-03-02`, with a time after `T` or a space),
 * `2019/03/02`, `3/2/2019`, `02.03.2019`, a month (`2019-03`, `03/2019`) or a year alone (`1950`);
 * undefined for anything else (month names, two-digit years), which the year rule empties.
 */
export function yearOfCell(text: string): number | undefined {
  const s = text.trim();
  let runs = 0;
  let first = -1;
  let second = -1;
  let third = -1;
  let run = 0;
  let value = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : -1;
    if (c >= 48 && c <= 57) {
      run++;
      value = value * 10 + c - 48;
      continue;
    }
    if (run > 0) {
      runs++;
      const year = run === 4 ? value : -1;
      if (runs === 1) first = year;
      else if (runs === 2) second = year;
      else if (runs === 3) third = year;
    }
    // The date part ends at a time (T, a space) or the end; its separators are - / .
    if (c === -1 || c === 84 || c === 32) break;
    if (c !== 45 && c !== 47 && c !== 46) return undefined;
    run = 0;
    value = 0;
  }
  // A year (1950), a month (2019-03, 03/2019) or a full date (2019-03-02, 3/2/2019, 02.03.2019).
  if (runs === 1) return first > 0 ? first : undefined;
  if (runs === 2) return first > 0 ? first : second > 0 ? second : undefined;
  if (runs === 3) return first > 0 ? first : third > 0 ? third : undefined;
  return undefined;
}

/** Applies rules to cells, counting what they did. */
class CellRules {
  readonly byName = new Map<string, number>();
  readonly report: ColumnReport[];
  private readonly oldestBirthYear: number;

  constructor(
    rules: readonly ColumnRule[],
    private readonly d: Deidentifier,
  ) {
    this.report = rules.map((r) => ({ ...r, changed: 0, emptied: 0 }));
    this.report.forEach((r, i) => this.byName.set(r.column, i));
    // A birth year before this one may mean an age over 89 at `now`: it is pooled.
    this.oldestBirthYear = d.now.getUTCFullYear() - 90;
  }

  /** The rule index of a column, adding a drop rule for a column the plan does not name. */
  ruleOf(column: string): number {
    const i = this.byName.get(column);
    if (i !== undefined) return i;
    this.report.push({ column, action: 'drop', reason: 'not in the plan', changed: 0, emptied: 0 });
    this.byName.set(column, this.report.length - 1);
    return this.report.length - 1;
  }

  /** One text cell under rule `i` (not a dropped column's). Missing cells stay as they are. */
  text(i: number, s: string): string {
    const r = this.report[i]!;
    if (r.action === 'keep' || isMissing(s)) return s;
    const out = this.apply(r, s.trim());
    if (out === '') r.emptied++;
    if (out !== s) r.changed++;
    return out;
  }

  private apply(r: ColumnReport, s: string): string {
    switch (r.action) {
      case 'pseudonym':
        return this.d.pseudonym(s, r.kind === 'mrn' ? 'identifier' : 'id');
      case 'zip3':
        return zip3(s) ?? '';
      case 'year': {
        const y = yearOfCell(s);
        if (y === undefined) return '';
        return String(r.kind === 'birthdate' && y < this.oldestBirthYear ? this.oldestBirthYear : y);
      }
      case 'age': {
        const v = parseNumber(s);
        if (v === null) return '';
        return v > 89 ? '90' : s;
      }
      default:
        return '';
    }
  }

  /** One JSON value under rule `i`: strings as cells, numbers by their rule, null and booleans kept unless the rule reads them. */
  json(i: number, v: unknown): unknown {
    const r = this.report[i]!;
    if (r.action === 'keep' || v === null || v === undefined) return v;
    if (typeof v === 'string') return this.text(i, v);
    if (typeof v === 'number' && r.action === 'age') {
      if (v > 89) {
        r.changed++;
        return 90;
      }
      return v;
    }
    if (typeof v === 'number' || typeof v === 'boolean') {
      const out = this.text(i, String(v));
      // A year stays a number where it was one.
      return r.action === 'year' && out !== '' ? Number(out) : out;
    }
    r.emptied++;
    r.changed++;
    return null;
  }
}

/** Head of the input read before the format and delimiter are decided. */
const HEAD_BYTES = 64 * 1024;
/** Output is written in pieces of about this many characters. */
const FLUSH_CHARS = 256 * 1024;

/**
 * De-identifies a table file into `outPath` by `rules`, in one streaming pass (a JSON array, one
 * document, is parsed whole, as the readers do), writing atomically: the de-identified table, or
 * nothing. The output has the input's format (CSV with `,`); dropped columns are left out.
 * Returns the counts per column; messages name the file and line, never a value.
 */
export async function deidentifyTableFile(inPath: string, outPath: string, opts: TableDeidentifyOptions): Promise<TableDeidentifyResult> {
  const source = opts.source ?? inPath;
  try {
    const s = await stat(inPath);
    if (s.isDirectory()) throw Errors.usage(`${source} is a directory, not a table file`);
  } catch (e) {
    if (isMedfitError(e)) throw e;
    throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? Errors.notFound(`file ${source}`) : Errors.badData(source, 'cannot read');
  }
  const cells = new CellRules(opts.rules, opts.deidentifier);
  const state = { format: opts.format ?? formatFromPath(inPath), rows: 0, columns: [] as string[] };
  const hash = createHash('sha256');
  let bytes = 0;
  const maxBytes = opts.maxBytes ?? Infinity;
  await streamToFileAtomic(outPath, Readable.from(output(inPath, source, state, cells)), (chunk) => {
    bytes += chunk.length;
    if (bytes > maxBytes) throw Errors.tooLarge(`the de-identified table is larger than the limit of ${maxBytes} bytes`);
    hash.update(chunk);
  });
  return { format: state.format!, rows: state.rows, columns: state.columns, report: cells.report, bytes, sha256: hash.digest('hex') };
}

/** The de-identified table's text, in pieces. */
async function* output(path: string, source: string, state: { format: TableFormat | undefined; rows: number; columns: string[] }, cells: CellRules): AsyncGenerator<Buffer> {
  const input = createReadStream(path, { highWaterMark: 1024 * 1024 })[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    // The head: checked for binary content, and used to sniff the format and the delimiter.
    const parts: Buffer[] = [];
    let len = 0;
    let ended = false;
    while (len < HEAD_BYTES) {
      const r = await input.next();
      if (r.done) {
        ended = true;
        break;
      }
      parts.push(r.value);
      len += r.value.length;
    }
    let head = Buffer.concat(parts);
    if (findBinaryByte(head.subarray(0, HEAD_BYTES), ended && head.length <= HEAD_BYTES) >= 0) throw Errors.badData(source, 'not a text table (binary content)');
    if (head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) head = head.subarray(3);
    const headText = head.subarray(0, HEAD_BYTES).toString('utf8');
    if (headText.trim() === '') throw Errors.badData(source, 'empty file');
    const format = (state.format ??= sniffFormat(headText));
    const rest = async function* (): AsyncGenerator<Buffer> {
      yield head;
      if (ended) return;
      for (;;) {
        const r = await input.next();
        if (r.done) return;
        yield r.value;
      }
    };
    if (format === 'csv') yield* csvOutput(rest(), detectDelimiter(headText, !ended), source, state, cells);
    else if (format === 'ndjson') yield* ndjsonOutput(rest(), source, state, cells);
    else yield* jsonOutput(rest(), source, state, cells);
  } finally {
    await input.return?.();
  }
}

async function* csvOutput(chunks: AsyncGenerator<Buffer>, delimiter: string, source: string, state: { rows: number; columns: string[] }, cells: CellRules): AsyncGenerator<Buffer> {
  const scanner = new CsvScanner(delimiter, source);
  let width = -1;
  // Per input column: its rule, or -1 when the column is dropped.
  let rules: number[] = [];
  let out: string[] = [];
  let outLen = 0;
  const take = (batch: CsvBatch): void => {
    const buf = Buffer.from(batch.buf.buffer, batch.buf.byteOffset, batch.buf.length);
    const field = (f: number): string => {
      const t = buf.toString('utf8', batch.starts[f]!, batch.ends[f]!);
      return (batch.flags[f]! & ESCAPED) !== 0 ? t.replaceAll('""', '"') : t;
    };
    let r = 0;
    if (width < 0) {
      if (batch.count === 0) return;
      width = batch.first[1]! - batch.first[0]!;
      const names: string[] = [];
      for (let f = 0; f < width; f++) names.push(field(f).trim());
      checkHeader(names, `${source}:${batch.lines[0]}`);
      scanner.maxFields = width;
      rules = names.map((n) => {
        const i = cells.ruleOf(n);
        return cells.report[i]!.action === 'drop' ? -1 : i;
      });
      state.columns = names.filter((_, j) => rules[j]! >= 0);
      if (state.columns.length === 0) throw Errors.badData(source, 'every column is dropped by de-identification: nothing would be left');
      const line = state.columns.map(csvField).join(',') + '\n';
      out.push(line);
      outLen += line.length;
      r = 1;
    }
    for (; r < batch.count; r++) {
      const f0 = batch.first[r]!;
      const nf = batch.first[r + 1]! - f0;
      if (nf !== width) throw Errors.badData(`${source}:${batch.lines[r]}`, `row has ${nf} fields, header has ${width}`);
      let line = '';
      let sep = '';
      for (let j = 0; j < width; j++) {
        const i = rules[j]!;
        if (i < 0) continue;
        line += sep + csvField(cells.text(i, field(f0 + j).trim()));
        sep = ',';
      }
      line += '\n';
      out.push(line);
      outLen += line.length;
      state.rows++;
    }
  };
  for await (const chunk of chunks) {
    take(scanner.push(chunk));
    if (outLen >= FLUSH_CHARS) {
      yield Buffer.from(out.join(''), 'utf8');
      out = [];
      outLen = 0;
    }
  }
  take(scanner.end());
  if (width < 0) throw Errors.badData(source, 'empty file');
  if (state.rows === 0) throw Errors.badData(source, 'no data rows');
  if (out.length > 0) yield Buffer.from(out.join(''), 'utf8');
}

/** One JSON record de-identified: kept keys in order, dropped ones left out. */
function record(obj: unknown, where: string, cells: CellRules, seen: Set<string>, columns: string[]): string {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw Errors.badData(where, 'expected a JSON object');
  const o = obj as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(o)) {
    const i = cells.ruleOf(key);
    if (cells.report[i]!.action === 'drop') continue;
    const v = o[key];
    if (v !== null && typeof v === 'object') throw Errors.badData(where, `key "${key}" holds ${Array.isArray(v) ? 'an array' : 'an object'}; nested values are not supported, flatten them first`);
    if (!seen.has(key)) {
      seen.add(key);
      columns.push(key);
    }
    // defineProperty: a key named `__proto__` stays a key.
    Object.defineProperty(out, key, { value: cells.json(i, v), enumerable: true, writable: true, configurable: true });
  }
  return JSON.stringify(out);
}

async function* ndjsonOutput(chunks: AsyncGenerator<Buffer>, source: string, state: { rows: number; columns: string[] }, cells: CellRules): AsyncGenerator<Buffer> {
  const seen = new Set<string>();
  let out: string[] = [];
  let outLen = 0;
  const lines = ndjsonRecords(source, (v, where) => {
    const s = record(v, where, cells, seen, state.columns) + '\n';
    out.push(s);
    outLen += s.length;
    state.rows++;
  });
  for await (const c of chunks) {
    lines.take(c);
    if (outLen >= FLUSH_CHARS) {
      yield Buffer.from(out.join(''), 'utf8');
      out = [];
      outLen = 0;
    }
  }
  lines.end();
  if (state.rows === 0) throw Errors.badData(source, 'no data rows');
  if (out.length > 0) yield Buffer.from(out.join(''), 'utf8');
}

async function* jsonOutput(chunks: AsyncGenerator<Buffer>, source: string, state: { rows: number; columns: string[] }, cells: CellRules): AsyncGenerator<Buffer> {
  // One document: parsed whole, as the table readers do.
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(c);
  let data: unknown;
  try {
    data = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw Errors.badData(source, 'not valid JSON');
  }
  if (!Array.isArray(data)) throw Errors.badData(source, 'expected a JSON array of objects');
  if (data.length === 0) throw Errors.badData(source, 'no data rows');
  const seen = new Set<string>();
  let out: string[] = ['[\n'];
  let outLen = 2;
  for (let k = 0; k < data.length; k++) {
    const s = (k > 0 ? ',\n' : '') + record(data[k], `${source} record ${k + 1}`, cells, seen, state.columns);
    out.push(s);
    outLen += s.length;
    state.rows++;
    if (outLen >= FLUSH_CHARS) {
      yield Buffer.from(out.join(''), 'utf8');
      out = [];
      outLen = 0;
    }
  }
  out.push('\n]\n');
  yield Buffer.from(out.join(''), 'utf8');
}
