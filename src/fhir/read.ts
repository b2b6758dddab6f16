/**
 * Readers of FHIR R4 input: Bundles (JSON) and bulk-export NDJSON, from files, folders or a
 * stream (an HTTP body), gzip or not, yielding one resource at a time with where it came from.
 *
 * Nothing is read whole. NDJSON is split on line feeds in the byte chunks and each line decoded
 * and parsed once. A Bundle goes through the incremental scanner of json-stream.ts, which finds
 * the top-level `entry` array and hands over one entry's text at a time, so a 2 GB Bundle costs
 * the memory of its largest entry. One entry, one line or one lone resource may have at most
 * 64 MiB (`MAX_ITEM_BYTES`): anything larger is a broken or hostile file. A caller that reads
 * untrusted input (an HTTP body) also bounds the whole: `maxBytes` counts the bytes after gunzip
 * (a few kB of gzip can inflate to gigabytes) and `maxItems` the entries and lines, the skipped
 * ones too (an entry of 14 bytes costs a parse all the same).
 *
 * What a file is, is read from its bytes, not its name: gzip by its magic bytes (1f 8b); then a
 * first JSON value that is a Bundle is expanded into its entries, any other resource is one
 * resource, and lines that follow the first value (NDJSON) are one resource (or Bundle) each.
 *
 * Messages name the file and the place (`entry 12`, `line 40, column 7`) and never quote the
 * input: `JSON.parse`'s own messages can, so they are never passed on; syntax errors are located
 * by the scanner instead. Resource type names are named (they are not patient data), but only
 * when they look like a type name.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Errors, isMedfitError } from '../core/index.js';
import { findJsonError, JsonScanner, JsonSyntaxError, type JsonListener } from './json-stream.js';
import { isResourceType, resourceTypeIgnoringCase } from './resource-types.js';
import type { Resource, ResourceItem } from './types.js';

export { R4_RESOURCE_TYPES, isResourceType } from './resource-types.js';

/**
 * What a stream holds: a `bundle` (one JSON Bundle, nothing else), `ndjson` (one resource or
 * Bundle per line) or `auto` (read from the content, as for files).
 */
export type FhirInputKind = 'bundle' | 'ndjson' | 'auto';

/** Options of `readResources`. */
export interface ReadResourcesOptions {
  /** Stops the reading between chunks with a `cancelled` error. */
  signal?: AbortSignal;
  /** The most bytes of one Bundle entry, NDJSON line or lone resource (default `MAX_ITEM_BYTES`). */
  maxItemBytes?: number;
  /**
   * The most bytes of input in all, counted after gunzip, over every file of the call (default:
   * no limit). Past it: a `tooLarge` error naming the source and the limit.
   */
  maxBytes?: number;
  /**
   * The most Bundle entries (skipped request- or response-only entries included), non-blank
   * NDJSON lines and lone resources seen in all, over every file of the call (default: no
   * limit). A line that holds a Bundle counts once, and each of its entries once more. Past it:
   * a `tooLarge` error naming the source and the limit.
   */
  maxItems?: number;
}

/** The most bytes of one Bundle entry, one NDJSON line or one lone resource. */
export const MAX_ITEM_BYTES = 64 * 1024 * 1024;

/** File read size: large enough that stream overhead is small next to parsing. */
const READ_CHUNK = 1024 * 1024;
/** Gunzip output size per chunk. */
const GUNZIP_CHUNK = 256 * 1024;

/** What one call of a reader may still read (`maxBytes`, `maxItems`), shared by its files. */
interface Budget {
  maxBytes: number;
  bytes: number;
  maxItems: number;
  items: number;
}

function budgetOf(options: ReadResourcesOptions): Budget {
  return { maxBytes: options.maxBytes ?? Infinity, bytes: 0, maxItems: options.maxItems ?? Infinity, items: 0 };
}

const FHIR_FILE_SUFFIXES = ['.json', '.ndjson', '.json.gz', '.ndjson.gz'];

/**
 * Reads the resources of FHIR input files and folders, one at a time, in order: the inputs as
 * given; a folder's files (`*.json`, `*.ndjson`, `*.json.gz`, `*.ndjson.gz`, case-insensitive,
 * hidden files skipped) sorted by name, NOT recursively (a bulk export is one flat folder; a
 * subfolder is ignored). Every input is checked before the first resource is read, so a missing
 * file fails at once.
 *
 * Each file: gzip if its bytes start 1f 8b (whatever its name); a Bundle's entries become items
 * with `where: 'entry N'` (N counts from 0, as `Bundle.entry[N]` in FHIRPath and `/entry/N`)
 * and the entry's `fullUrl`; entries without a resource but with a `request` or `response`
 * (a DELETE in a transaction, a transaction-response) are skipped; a nested Bundle inside an
 * entry stays one resource. Any other resource is one item (`line L`, the line where it starts).
 * NDJSON: one item per non-blank line (`line L`); a line that is a Bundle gives its entries
 * (`line L, entry N`). An empty file gives nothing. All Bundle types are accepted (transaction,
 * batch, collection, searchset, history, document, message...): a document's Composition and a
 * message's MessageHeader are read as the resources they are.
 *
 * @throws MedfitError `notFound` for a missing input; `badData` naming the file and place for
 *   input that is not FHIR JSON (see the module comment); `cancelled` when `signal` aborts.
 */
export async function* readResources(inputs: string[], options: ReadResourcesOptions = {}): AsyncGenerator<ResourceItem> {
  if (inputs.length === 0) throw Errors.usage('no FHIR input: give one or more files or folders');
  const files: string[] = [];
  for (const input of inputs) for (const f of await filesOf(input)) files.push(f);
  const budget = budgetOf(options);
  for (const file of files) {
    const decoder = new FhirDecoder(file, 'auto', options.maxItemBytes, budget);
    for await (const chunk of chunksOf(createReadStream(file, { highWaterMark: READ_CHUNK }), file, budget)) {
      if (options.signal?.aborted) throw Errors.cancelled('reading FHIR input');
      decoder.push(chunk);
      for (const item of decoder.take()) yield item;
    }
    decoder.end();
    for (const item of decoder.take()) yield item;
  }
}

/**
 * Reads the resources of a stream (an HTTP body, stdin), gzip or not, as `readResources` reads a
 * file. `kind` `bundle` (a `application/fhir+json` body) requires one Bundle and nothing else;
 * `ndjson` (`application/fhir+ndjson`) reads lines from the first; `auto` (default) decides from
 * the content.
 * @param source the name used in messages and on the items
 */
export async function* readResourcesFromStream(stream: Readable, source: string, kind: FhirInputKind = 'auto', options: ReadResourcesOptions = {}): AsyncGenerator<ResourceItem> {
  const budget = budgetOf(options);
  const decoder = new FhirDecoder(source, kind, options.maxItemBytes, budget);
  for await (const chunk of chunksOf(stream, source, budget)) {
    if (options.signal?.aborted) throw Errors.cancelled('reading FHIR input');
    decoder.push(chunk);
    for (const item of decoder.take()) yield item;
  }
  decoder.end();
  for (const item of decoder.take()) yield item;
}

// ---------------------------------------------------------------------------------------------
// Files, folders, bytes

function isFhirFileName(name: string): boolean {
  if (name.startsWith('.')) return false;
  const lower = name.toLowerCase();
  return FHIR_FILE_SUFFIXES.some((s) => lower.endsWith(s) && lower.length > s.length);
}

/** The files an input names: itself, or a folder's FHIR files sorted by name. */
async function filesOf(input: string): Promise<string[]> {
  let s;
  try {
    s = await stat(input);
  } catch (e) {
    throw translateIoError(e, input);
  }
  if (s.isFile()) return [input];
  if (!s.isDirectory()) throw Errors.badData(input, 'not a file or a folder');
  let names: string[];
  try {
    names = await readdir(input);
  } catch (e) {
    throw translateIoError(e, input);
  }
  // Code-unit order, not the locale's: the same order on every machine.
  names = names.filter(isFhirFileName).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const files: string[] = [];
  for (const name of names) {
    const path = join(input, name);
    try {
      if ((await stat(path)).isFile()) files.push(path);
    } catch (e) {
      throw translateIoError(e, path);
    }
  }
  if (files.length === 0) throw Errors.badData(input, `no FHIR files (${FHIR_FILE_SUFFIXES.map((s) => `*${s}`).join(', ')}) in this folder (subfolders are not read)`);
  return files;
}

function toBuffer(v: unknown): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array);
}

/**
 * The decoded bytes of a stream, gunzipped when they start with the gzip magic bytes. Read and
 * gzip errors become `badData` naming `source`; the stream is destroyed when reading stops.
 * Counts the decoded bytes into `budget`: gunzip inflates one `GUNZIP_CHUNK` at a time as they
 * are taken, so a gzip bomb stops one chunk past the limit, never inflated whole.
 */
async function* chunksOf(stream: Readable, source: string, budget: Budget): AsyncGenerator<Buffer> {
  for await (const c of decodedChunksOf(stream, source)) {
    budget.bytes += c.length;
    if (budget.bytes > budget.maxBytes) {
      throw Errors.tooLarge(`${source}: the FHIR input is larger than the limit of ${sizeText(budget.maxBytes)} (counted after decompression)`);
    }
    yield c;
  }
}

async function* decodedChunksOf(stream: Readable, source: string): AsyncGenerator<Buffer> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  let gzip = false;
  try {
    let head: Buffer = Buffer.alloc(0);
    while (head.length < 2) {
      const r = await it.next();
      if (r.done) break;
      head = head.length === 0 ? toBuffer(r.value) : Buffer.concat([head, toBuffer(r.value)]);
    }
    gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
    if (!gzip) {
      if (head.length > 0) yield head;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield toBuffer(r.value);
      }
    }
    const rest = async function* (): AsyncGenerator<Buffer> {
      yield head;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield toBuffer(r.value);
      }
    };
    // Errors reach the gunzip stream (pipeline destroys every stream with the first error), and
    // so the loop below; the callback only keeps them from being reported twice.
    const gunzip = pipeline(Readable.from(rest(), { objectMode: false }), createGunzip({ chunkSize: GUNZIP_CHUNK }), () => {});
    for await (const c of gunzip) yield c as Buffer;
  } catch (e) {
    throw translateIoError(e, source, gzip);
  } finally {
    stream.destroy();
  }
}

function translateIoError(e: unknown, source: string, gzip = false): Error {
  if (isMedfitError(e)) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return Errors.notFound(`file ${source}`);
  if (code === 'EACCES' || code === 'EPERM') return Errors.badData(source, 'permission denied');
  if (gzip && (code === undefined || code.startsWith('Z_'))) {
    return Errors.badData(source, 'not a valid gzip file (corrupt or truncated)');
  }
  return Errors.badData(source, `cannot read (${code ?? 'I/O error'})`);
}

// ---------------------------------------------------------------------------------------------
// Resources

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An unknown `resourceType`: named when it looks like a type name, so that no value is echoed. */
function unknownType(t: string): string {
  let nameLike = t.length > 0 && t.length <= 64;
  for (let i = 0; nameLike && i < t.length; i++) {
    const c = t.charCodeAt(i) | 0x20;
    nameLike = c >= 0x61 && c <= 0x7a;
  }
  if (!nameLike) return 'unknown resource type (not an R4 type name)';
  const right = resourceTypeIgnoringCase(t);
  return right ? `unknown resource type "${t}" (did you mean "${right}"?)` : `unknown resource type "${t}" (not in FHIR R4)`;
}

/** `v` as a resource, or a `badData` at `where` saying why it is not one. */
function checkResource(v: unknown, where: string): Resource {
  if (!isPlainObject(v)) throw Errors.badData(where, 'resource is not a JSON object');
  const t = v.resourceType;
  if (t === undefined) throw Errors.badData(where, 'resource has no resourceType');
  if (typeof t !== 'string') throw Errors.badData(where, 'resourceType is not a string');
  if (!isResourceType(t)) throw Errors.badData(where, unknownType(t));
  const id = v.id;
  if (id !== undefined && !isFhirId(id)) throw Errors.badData(where, `the resource's id is not a FHIR id (1 to ${MAX_ID} letters, digits, '-' or '.')`);
  return v as Resource;
}

/** The longest FHIR id (R4 `id`: `[A-Za-z0-9\-\.]{1,64}`). */
const MAX_ID = 64;

/** Whether `v` is an R4 id: 1 to 64 of A-Z, a-z, 0-9, `-`, `.` (checked by hand, no pattern). */
export function isFhirId(v: unknown): boolean {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e)) return false;
  }
  return true;
}

/** ASCII whitespace that JSON allows around a value (a line feed never reaches a line). */
function isBlank(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) {
    const b = buf[i]!;
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}

/**
 * Turns bytes (in chunks split anywhere) into resource items; synchronous, so that the async
 * layer above pays one await per chunk, not per resource. `push`, then `take` what it found.
 */
class FhirDecoder implements JsonListener {
  private out: ResourceItem[] = [];
  private mode: 'head' | 'document' | 'lines' = 'head';
  /** The first bytes, held until a byte order mark can be told apart. */
  private head: Buffer | undefined;
  private scanner: JsonScanner | undefined;

  // NDJSON: the line being read, and the unfinished end of it from earlier chunks.
  private lineNo = 1;
  private carry: Buffer[] = [];
  private carryBytes = 0;

  // The document's top-level object, as the scanner reports it.
  private currentKey = '';
  private typeSeen = false;
  private entrySeen = false;
  /** The Bundle's resourceType came before its entries: they are read one at a time. */
  private streaming = false;
  private inEntry = false;
  private entryIndex = 0;
  private docLine = 1;

  constructor(
    private readonly source: string,
    private readonly kind: FhirInputKind,
    private readonly maxBytes = MAX_ITEM_BYTES,
    private readonly budget: Budget = budgetOf({}),
  ) {}

  /** One more entry, line or lone resource seen at `place`: refused past `maxItems`. */
  private count(place: string): void {
    if (++this.budget.items > this.budget.maxItems) {
      throw Errors.tooLarge(`${this.where(place)}: more than ${this.budget.maxItems} Bundle entries, NDJSON lines and resources in all (the limit of this reader; skipped entries count)`);
    }
  }

  /** The items found since the last call. */
  take(): ResourceItem[] {
    const items = this.out;
    this.out = [];
    return items;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.mode === 'head') {
      const buf = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      // A UTF-8 byte order mark (EF BB BF) is not content; wait until it can be told apart.
      if (buf.length < 3 && isBomPrefix(buf)) {
        this.head = buf;
        return;
      }
      this.head = undefined;
      this.begin(buf, isBomPrefix(buf) ? 3 : 0);
      return;
    }
    if (this.mode === 'lines') this.lines(chunk, 0);
    else this.document(chunk, 0);
  }

  end(): void {
    if (this.mode === 'head' && this.head) this.begin(this.head, 0);
    if (this.mode === 'document') {
      try {
        this.scanner!.end();
      } catch (e) {
        throw this.syntax(e);
      }
      if (!this.scanner!.started && this.kind === 'bundle') throw Errors.badData(this.source, 'empty: expected a Bundle');
    } else if (this.mode === 'lines' && this.carry.length > 0) {
      const buf = Buffer.concat(this.carry);
      this.carry = [];
      this.line(buf, 0, buf.length);
    } else if (this.mode === 'head' && this.kind === 'bundle') throw Errors.badData(this.source, 'empty: expected a Bundle');
  }

  private begin(buf: Buffer, from: number): void {
    if (this.kind === 'ndjson') {
      this.mode = 'lines';
      this.lines(buf, from);
      return;
    }
    this.mode = 'document';
    this.scanner = new JsonScanner({ listener: this, maxCapture: this.maxBytes, after: this.kind === 'auto' ? 'line' : 'end' });
    this.document(buf, from);
  }

  private document(buf: Buffer, from: number): void {
    let stop: number;
    try {
      stop = this.scanner!.push(buf, from);
    } catch (e) {
      throw this.syntax(e);
    }
    if (stop >= 0) {
      // More after the first value's line: NDJSON from here on.
      this.mode = 'lines';
      this.lineNo = this.scanner!.line;
      this.lines(buf, stop);
    }
  }

  private syntax(e: unknown): unknown {
    if (!(e instanceof JsonSyntaxError)) return e;
    return Errors.badData(`${this.source}, line ${e.line}, column ${e.column}`, `not valid JSON (${e.reason})`);
  }

  private where(place: string): string {
    return `${this.source}, ${place}`;
  }

  // --- NDJSON -----------------------------------------------------------------------------

  private lines(buf: Buffer, from: number): void {
    let pos = from;
    const n = buf.length;
    while (pos < n) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0) {
        this.carryBytes += n - pos;
        if (this.carryBytes > this.maxBytes) throw this.lineTooLong();
        this.carry.push(buf.subarray(pos));
        return;
      }
      if (this.carry.length > 0) {
        if (this.carryBytes + nl - pos > this.maxBytes) throw this.lineTooLong();
        this.carry.push(buf.subarray(pos, nl));
        const line = Buffer.concat(this.carry);
        this.carry = [];
        this.carryBytes = 0;
        this.line(line, 0, line.length);
      } else this.line(buf, pos, nl);
      this.lineNo++;
      pos = nl + 1;
    }
  }

  private lineTooLong(): Error {
    return Errors.badData(this.where(`line ${this.lineNo}`), `longer than ${sizeText(this.maxBytes)} (NDJSON has one resource per line)`);
  }

  private line(buf: Buffer, s: number, e: number): void {
    if (e - s > this.maxBytes) throw this.lineTooLong();
    if (isBlank(buf, s, e)) return;
    const place = `line ${this.lineNo}`;
    this.count(place);
    let v: unknown;
    try {
      v = JSON.parse(buf.toString('utf8', s, e));
    } catch {
      const err = findJsonError(buf.subarray(s, e), 'line');
      if (err) throw Errors.badData(this.where(`${place}, column ${err.column}`), `not valid JSON (${err.reason})`);
      throw Errors.badData(this.where(place), 'not valid JSON');
    }
    if (!isPlainObject(v)) throw Errors.badData(this.where(place), 'expected a JSON object (one FHIR resource per line)');
    if (v.resourceType === 'Bundle') this.bundle(v, `${place}, `);
    else this.out.push({ resource: checkResource(v, this.where(place)), source: this.source, where: place });
  }

  // --- Bundles ----------------------------------------------------------------------------

  /** The entries of a parsed Bundle; `prefix` goes before `entry N` in `where`. */
  private bundle(b: Record<string, unknown>, prefix: string): void {
    const entries = b.entry;
    if (entries === undefined) return;
    if (!Array.isArray(entries)) throw Errors.badData(prefix ? this.where(prefix.slice(0, -2)) : this.source, 'Bundle.entry is not an array');
    for (let i = 0; i < entries.length; i++) this.entry(entries[i], `${prefix}entry ${i}`);
  }

  private entry(e: unknown, place: string): void {
    this.count(place);
    const where = this.where(place);
    if (!isPlainObject(e)) throw Errors.badData(where, 'entry is not a JSON object');
    const r = e.resource;
    if (r === undefined) {
      // bdl-5: an entry needs a resource, a request or a response; one without a resource (a
      // DELETE, a transaction-response) says nothing about a patient's data.
      if (e.request !== undefined || e.response !== undefined) return;
      throw Errors.badData(where, 'entry has no resource (nor a request or response)');
    }
    const fullUrl = e.fullUrl;
    if (fullUrl !== undefined && typeof fullUrl !== 'string') throw Errors.badData(where, 'fullUrl is not a string');
    const item: ResourceItem = { resource: checkResource(r, where), source: this.source, where: place };
    if (fullUrl !== undefined) item.fullUrl = fullUrl;
    this.out.push(item);
  }

  // --- The scanner's listener -------------------------------------------------------------

  valueStart(depth: number, first: number): boolean {
    const sc = this.scanner!;
    if (depth === 0) {
      if (first !== 0x7b) throw Errors.badData(this.where(`line ${sc.line}, column ${sc.column}`), 'expected a JSON object (a FHIR resource or Bundle)');
      this.docLine = sc.line;
      // Kept whole until its resourceType says it is a Bundle to read entry by entry.
      return true;
    }
    if (depth === 1) {
      if (this.currentKey === 'resourceType') return true;
      if (this.currentKey === 'entry') {
        if (this.streaming) {
          if (this.entrySeen) throw Errors.badData(this.source, 'the Bundle has two entry arrays');
          if (first !== 0x5b) throw Errors.badData(this.source, 'Bundle.entry is not an array');
          this.inEntry = true;
        }
        this.entrySeen = true;
      }
      return false;
    }
    if (depth === 2 && this.inEntry) {
      if (first !== 0x7b) throw Errors.badData(this.where(`entry ${this.entryIndex}`), 'entry is not a JSON object');
      return true;
    }
    return false;
  }

  valueEnd(depth: number, text: string | undefined): void {
    if (depth === 2) {
      if (this.inEntry) this.entry(parseChecked(text!, this.where(`entry ${this.entryIndex}`)), `entry ${this.entryIndex++}`);
      return;
    }
    if (depth === 1) {
      if (this.currentKey === 'resourceType') this.resourceType(parseChecked(text!, this.source));
      else if (this.currentKey === 'entry') this.inEntry = false;
      return;
    }
    // The top-level value: a resource or a Bundle kept whole, or the end of a streamed Bundle.
    if (text === undefined) return;
    const v = parseChecked(text, this.source) as Record<string, unknown>;
    if (v.resourceType === 'Bundle') this.bundle(v, '');
    else {
      const place = `line ${this.docLine}`;
      this.count(place);
      const resource = checkResource(v, this.kind === 'bundle' ? this.source : this.where(place));
      if (this.kind === 'bundle') throw Errors.badData(this.source, `expected a Bundle, found a ${resource.resourceType}`);
      this.out.push({ resource, source: this.source, where: place });
    }
  }

  key(depth: number, key: string): void {
    if (depth === 1) this.currentKey = key;
  }

  tooLarge(depth: number): void {
    const mib = sizeText(this.maxBytes);
    if (depth === 2) throw Errors.badData(this.where(`entry ${this.entryIndex}`), `an entry larger than ${mib}`);
    if (depth === 0) {
      throw Errors.badData(this.source, `a resource larger than ${mib} (a larger Bundle is read entry by entry only when "resourceType" comes before "entry")`);
    }
    throw Errors.badData(this.source, `a key or value of the top-level object is larger than ${mib}`);
  }

  private resourceType(v: unknown): void {
    if (this.typeSeen) throw Errors.badData(this.source, 'resourceType appears twice');
    this.typeSeen = true;
    if (typeof v !== 'string') throw Errors.badData(this.where(`line ${this.docLine}`), 'resourceType is not a string');
    if (v === 'Bundle') {
      if (!this.entrySeen) {
        this.streaming = true;
        this.scanner!.cancelCapture(0);
      }
    } else if (this.kind === 'bundle') {
      throw Errors.badData(this.source, isResourceType(v) ? `expected a Bundle, found a ${v}` : unknownType(v));
    }
  }
}

/** `64 MiB`, or a byte count when it is not a whole number of MiB. */
function sizeText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}

function isBomPrefix(buf: Buffer): boolean {
  const bom = [0xef, 0xbb, 0xbf];
  for (let i = 0; i < buf.length && i < 3; i++) if (buf[i] !== bom[i]) return false;
  return buf.length > 0;
}

/** `JSON.parse` of text the scanner has already checked (a failure would be our bug). */
function parseChecked(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw Errors.badData(where, 'not valid JSON');
  }
}
