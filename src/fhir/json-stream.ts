/**
 * An incremental JSON scanner: bytes go in, in chunks of any size split anywhere, and the scanner
 * checks them against the JSON grammar (RFC 8259, exactly what `JSON.parse` accepts) while
 * keeping only its state: the nesting stack, whether it is inside a string or an escape, which
 * number or literal it is in, and the line and column. Nothing is built.
 *
 * A listener hears where values start and end near the top of the document (depth ≤
 * `eventDepth`) and the keys of the top-level object, and may ask for the text of any of those
 * values ("capture"): the scanner then keeps the bytes from the value's first byte to its last,
 * across chunks, and hands them over as one string, which the caller `JSON.parse`s. That is how a
 * Bundle of any size is read one entry at a time: memory holds the largest entry, not the file.
 *
 * Because every byte has already been checked, the `JSON.parse` of a captured value cannot fail;
 * and because the scanner counts lines and columns, a syntax error is reported by position
 * (`JsonSyntaxError`) without quoting the text around it, as `JSON.parse`'s messages do (the text
 * may be a patient's data).
 *
 * Linear: each byte is looked at once, in a loop with no regular expression and no recursion.
 */

/** Where and why a text is not JSON. `reason` names what was expected, never the text found. */
export class JsonSyntaxError extends Error {
  constructor(
    /** 1-based line. */
    readonly line: number,
    /** 1-based column, in characters (UTF-8 continuation bytes are not counted). */
    readonly column: number,
    readonly reason: string,
  ) {
    super(`line ${line}, column ${column}: ${reason}`);
    this.name = 'JsonSyntaxError';
  }
}

/** What a scanner tells its user about the top of the document. */
export interface JsonListener {
  /**
   * A value starts at `depth` (0: the top-level value; 1: a value of the top-level object or
   * array; ...), with `first` its first byte (`{`, `[`, `"`, `-`, a digit, `t`, `f` or `n`).
   * Returning true captures it: its text comes with `valueEnd`.
   */
  valueStart(depth: number, first: number): boolean;
  /** The value that started at `depth` ended; `text` is its JSON text when it was captured. */
  valueEnd(depth: number, text: string | undefined): void;
  /** A key of an object at `depth` (the key of the value that comes next), unescaped. */
  key(depth: number, key: string): void;
  /**
   * The captured value at `depth` (or a key, when `depth` is -1) has grown past `maxCapture`
   * bytes; this should throw a message that says which. (If it returns, a generic error is thrown.)
   */
  tooLarge(depth: number): void;
}

/** Options of a `JsonScanner`. */
export interface JsonScannerOptions {
  listener?: JsonListener;
  /** The deepest values the listener hears about (default 2: a Bundle's entries). */
  eventDepth?: number;
  /** The deepest objects whose keys the listener hears (default 1: the top-level object's). */
  keyDepth?: number;
  /** The most bytes one captured value may have (default 64 MiB). */
  maxCapture?: number;
  /** The deepest nesting accepted (default 512: FHIR needs tens; a deeper one is an attack). */
  maxDepth?: number;
  /**
   * After the top-level value: `end` (default) accepts only whitespace up to the end of input;
   * `line` also stops `push` at the end of the value's line (the rest is for someone else).
   */
  after?: 'end' | 'line';
  /** What the input is called in a message about it ending early: `input` (default) or `line`. */
  unit?: string;
}

// States. Plain numbers (not a const enum) so that any TypeScript transpiler keeps them inline.
const VALUE = 0; // a value is expected (after ':' or ',' in an array, or at the start)
const ARRAY_FIRST = 1; // after '[': a value or ']'
const OBJECT_FIRST = 2; // after '{': a key or '}'
const KEY = 3; // after ',' in an object: a key
const COLON = 4; // after a key
const AFTER = 5; // after a value inside a container: ',' or the closing bracket
const STRING = 6;
const ESCAPE = 7; // after '\' in a string
const UNICODE = 8; // inside \uXXXX
const N_MINUS = 9; // number states, named by what was read last
const N_ZERO = 10;
const N_INT = 11;
const N_DOT = 12;
const N_FRAC = 13;
const N_E = 14;
const N_ESIGN = 15;
const N_EXP = 16;
const LITERAL = 17; // inside true, false or null
const DONE = 18; // after the top-level value

const OBJ = 1;
const ARR = 2;

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

/** Whether a number in this state is complete (it may end here). */
function numberMayEnd(state: number): boolean {
  return state === N_ZERO || state === N_INT || state === N_FRAC || state === N_EXP;
}

/**
 * The scanner. Feed it with `push` (each chunk must stay unchanged afterwards: captured bytes may
 * be kept as views of it) and finish with `end`. Throws `JsonSyntaxError` for bad JSON, and
 * whatever the listener throws.
 */
export class JsonScanner {
  /** Line of the byte being read (1-based). */
  line = 1;
  /** Whether any value has started (false after `end`: the input was empty or only whitespace). */
  started = false;

  private readonly listener: JsonListener | undefined;
  private readonly eventDepth: number;
  private readonly keyDepth: number;
  private readonly maxCapture: number;
  private readonly maxDepth: number;
  private readonly stopAtLine: boolean;
  private readonly unit: string;

  private state = VALUE;
  private depth = 0;
  private readonly stack: Uint8Array;
  private inKey = false;
  private hexLeft = 0;
  private literal: number[] = TRUE;
  private litPos = 0;

  /** Absolute offset of the current chunk's byte 0 (bytes fed before it, less `from`). */
  private base = 0;
  /** Absolute offset where the current line starts, and continuation bytes seen on it. */
  private lineStart = 0;
  private cont = 0;
  /** Absolute offset of the byte being read, kept for `column`. */
  private at = 0;

  /** Start (absolute offset) of the captured value at each depth ≤ eventDepth, or -1. */
  private readonly cap: number[];
  private keyCap = -1;
  private captures = 0;
  /** Bytes of earlier chunks that an open capture still needs, from `retainedAbs`. */
  private retained: Buffer[] = [];
  private retainedAbs = 0;
  private chunk: Buffer = Buffer.alloc(0);

  constructor(options: JsonScannerOptions = {}) {
    this.listener = options.listener;
    this.eventDepth = options.listener ? (options.eventDepth ?? 2) : -1;
    this.keyDepth = options.listener ? (options.keyDepth ?? 1) : 0;
    this.maxCapture = options.maxCapture ?? 64 * 1024 * 1024;
    this.maxDepth = options.maxDepth ?? 512;
    this.stopAtLine = options.after === 'line';
    this.unit = options.unit ?? 'input';
    this.stack = new Uint8Array(this.maxDepth + 1);
    this.cap = new Array<number>(Math.max(0, this.eventDepth + 1)).fill(-1);
  }

  /** 1-based column (in characters) of the byte being read, or of the end of input after `end`. */
  get column(): number {
    return this.at - this.lineStart - this.cont + 1;
  }

  /** Drops the capture of the value open at `depth` (its text is no longer wanted). */
  cancelCapture(depth: number): void {
    if (this.cap[depth] !== undefined && this.cap[depth]! >= 0) {
      this.cap[depth] = -1;
      this.captures--;
    }
  }

  /**
   * Reads `buf` from `from`. Returns -1 when all of it was read, or, with `after: 'line'`, the
   * offset in `buf` where the line after the top-level value starts (the scanner is then done).
   */
  push(buf: Buffer, from = 0): number {
    this.chunk = buf;
    this.base = this.at - from;
    const n = buf.length;
    let i = from;
    let state = this.state;
    let stop = -1;
    try {
      while (i < n) {
        let b = buf[i]!;
        if (state === STRING) {
          // The hot loop: FHIR JSON is mostly strings.
          for (;;) {
            if (b === 0x22) {
              i++;
              state = this.endString(i);
              break;
            }
            if (b === 0x5c) {
              i++;
              state = ESCAPE;
              break;
            }
            if (b < 0x20) {
              this.at = this.base + i;
              throw this.error(b === 0x0a ? 'a line break inside a string' : 'a control character inside a string');
            }
            if ((b & 0xc0) === 0x80) this.cont++;
            if (++i === n) break;
            b = buf[i]!;
          }
          continue;
        }
        if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) {
          if (state >= STRING && state !== DONE) {
            // Whitespace ends a number; anywhere else inside a token it is an error.
            if (numberMayEnd(state)) {
              state = this.endValue(this.base + i);
              continue;
            }
            this.at = this.base + i;
            throw this.error(state === LITERAL ? 'not a valid literal (true, false or null)' : state === UNICODE ? 'a \\u escape needs four hex digits' : state === ESCAPE ? 'not a valid escape in a string' : 'not a valid number');
          }
          i++;
          if (b === 0x0a) {
            this.line++;
            this.lineStart = this.base + i;
            this.cont = 0;
            if (state === DONE && this.stopAtLine) {
              stop = i;
              break;
            }
          } else if (b === 0x20) {
            // Indentation: pretty-printed files are a third spaces.
            while (i < n && buf[i] === 0x20) i++;
          }
          continue;
        }
        this.at = this.base + i;
        switch (state) {
          case VALUE:
          case ARRAY_FIRST:
            if (b === 0x5d && state === ARRAY_FIRST) {
              state = this.close(++i);
              break;
            }
            state = this.startValue(b, i);
            i++;
            break;
          case OBJECT_FIRST:
          case KEY:
            if (b === 0x22) {
              if (this.depth <= this.keyDepth) this.startKey(i);
              this.inKey = true;
              state = STRING;
              i++;
              break;
            }
            if (b === 0x7d && state === OBJECT_FIRST) {
              state = this.close(++i);
              break;
            }
            throw this.error(state === KEY ? 'expected a string key' : "expected a string key or '}'");
          case COLON:
            if (b !== 0x3a) throw this.error("expected ':'");
            state = VALUE;
            i++;
            break;
          case AFTER: {
            const top = this.stack[this.depth - 1]!;
            if (b === 0x2c) state = top === OBJ ? KEY : VALUE;
            else if ((b === 0x7d && top === OBJ) || (b === 0x5d && top === ARR)) {
              state = this.close(++i);
              break;
            } else throw this.error(top === OBJ ? "expected ',' or '}'" : "expected ',' or ']'");
            i++;
            break;
          }
          case ESCAPE:
            if (b === 0x75) {
              this.hexLeft = 4;
              state = UNICODE;
            } else if (b === 0x22 || b === 0x5c || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74) state = STRING;
            else throw this.error('not a valid escape in a string');
            i++;
            break;
          case UNICODE:
            if (!isHex(b)) throw this.error('a \\u escape needs four hex digits');
            if (--this.hexLeft === 0) state = STRING;
            i++;
            break;
          case LITERAL:
            if (b !== this.literal[this.litPos]) throw this.error('not a valid literal (true, false or null)');
            i++;
            if (++this.litPos === this.literal.length) state = this.endValue(this.base + i);
            break;
          case DONE:
            throw this.error(this.stopAtLine ? 'more than one JSON value on a line' : 'more content after the end of the JSON value');
          default: {
            // Numbers.
            const digit = b >= 0x30 && b <= 0x39;
            let next = -1;
            switch (state) {
              case N_MINUS:
                next = b === 0x30 ? N_ZERO : digit ? N_INT : -1;
                break;
              case N_ZERO:
                next = b === 0x2e ? N_DOT : b === 0x65 || b === 0x45 ? N_E : digit ? -2 : -3;
                break;
              case N_INT:
                next = digit ? N_INT : b === 0x2e ? N_DOT : b === 0x65 || b === 0x45 ? N_E : -3;
                break;
              case N_DOT:
                next = digit ? N_FRAC : -1;
                break;
              case N_FRAC:
                next = digit ? N_FRAC : b === 0x65 || b === 0x45 ? N_E : -3;
                break;
              case N_E:
                next = b === 0x2b || b === 0x2d ? N_ESIGN : digit ? N_EXP : -1;
                break;
              case N_ESIGN:
                next = digit ? N_EXP : -1;
                break;
              case N_EXP:
                next = digit ? N_EXP : -3;
                break;
            }
            if (next >= 0) {
              state = next;
              i++;
            } else if (next === -3) {
              // The number ended just before this byte, which is read again as what follows it.
              state = this.endValue(this.base + i);
            } else throw this.error(next === -2 ? 'not a valid number (a leading zero)' : 'not a valid number');
          }
        }
      }
    } finally {
      this.state = state;
    }
    const end = stop >= 0 ? stop : n;
    this.at = this.base + end;
    if (this.captures > 0) this.retain(buf, end);
    else if (this.retained.length > 0) this.retained = [];
    return stop;
  }

  /** The input ended: throws if the value is incomplete (a truncated file). */
  end(): void {
    const state = this.state;
    if (state === DONE || !this.started) return;
    if (this.depth === 0 && numberMayEnd(state)) {
      this.endValue(this.at);
      this.state = DONE;
      return;
    }
    let inside: string;
    if (state === STRING || state === ESCAPE || state === UNICODE) inside = this.inKey ? 'a key' : 'a string';
    else if (this.depth > 0) inside = this.stack[this.depth - 1] === OBJ ? 'an object' : 'an array';
    else inside = state === LITERAL ? 'a literal' : 'a number';
    throw this.error(`truncated: the ${this.unit} ends inside ${inside}`);
  }

  private error(reason: string): JsonSyntaxError {
    return new JsonSyntaxError(this.line, this.column, reason);
  }

  private startValue(b: number, i: number): number {
    let next: number;
    if (b === 0x7b) next = OBJECT_FIRST;
    else if (b === 0x5b) next = ARRAY_FIRST;
    else if (b === 0x22) next = STRING;
    else if (b === 0x2d) next = N_MINUS;
    else if (b === 0x30) next = N_ZERO;
    else if (b >= 0x31 && b <= 0x39) next = N_INT;
    else if (b === 0x74 || b === 0x66 || b === 0x6e) {
      next = LITERAL;
      this.literal = b === 0x74 ? TRUE : b === 0x66 ? FALSE : NULL;
      this.litPos = 1;
    } else throw this.error(this.depth === 0 && !this.started ? 'expected a JSON value' : 'expected a value');
    this.started = true;
    const d = this.depth;
    if (d <= this.eventDepth && this.listener!.valueStart(d, b)) {
      this.cap[d] = this.base + i;
      this.captures++;
    }
    if (next === OBJECT_FIRST || next === ARRAY_FIRST) {
      if (d >= this.maxDepth) throw this.error(`nested deeper than ${this.maxDepth} levels`);
      this.stack[d] = next === OBJECT_FIRST ? OBJ : ARR;
      this.depth = d + 1;
    } else if (next === STRING) this.inKey = false;
    return next;
  }

  private startKey(i: number): void {
    this.keyCap = this.base + i;
    this.captures++;
  }

  /** A string ended just before offset `i` of the chunk; returns the next state. */
  private endString(i: number): number {
    if (!this.inKey) return this.endValue(this.base + i);
    if (this.keyCap >= 0) {
      if (this.base + i - this.keyCap > this.maxCapture) this.tooLarge(-1);
      const text = this.extract(this.keyCap, this.base + i);
      this.keyCap = -1;
      this.captures--;
      this.listener!.key(this.depth, JSON.parse(text) as string);
    }
    return COLON;
  }

  /** A container closed just before offset `i` of the chunk; returns the next state. */
  private close(i: number): number {
    this.depth--;
    return this.endValue(this.base + i);
  }

  /** The value at the current depth ended before absolute offset `endAbs`; returns the next state. */
  private endValue(endAbs: number): number {
    const d = this.depth;
    if (d <= this.eventDepth) {
      let text: string | undefined;
      const start = this.cap[d]!;
      if (start >= 0) {
        // Also checked here: a value that begins and ends inside one large chunk never reaches `retain`.
        if (endAbs - start > this.maxCapture) this.tooLarge(d);
        text = this.extract(start, endAbs);
        this.cap[d] = -1;
        this.captures--;
      }
      this.listener!.valueEnd(d, text);
    }
    return d === 0 ? DONE : AFTER;
  }

  /** The text of absolute offsets [start, end), from retained bytes and the current chunk. */
  private extract(start: number, end: number): string {
    const buf = this.chunk;
    if (start >= this.base) return buf.toString('utf8', start - this.base, end - this.base);
    // Only the retained chunks that reach `start` (an outer capture may keep earlier ones).
    let k = 0;
    let off = this.retainedAbs;
    while (off + this.retained[k]!.length <= start) off += this.retained[k++]!.length;
    const parts = this.retained.slice(k);
    parts.push(buf.subarray(0, end - this.base));
    return Buffer.concat(parts).toString('utf8', start - off, end - off);
  }

  /** Keeps what open captures need of `buf[0, end)` for the next chunks, and checks their size. */
  private retain(buf: Buffer, end: number): void {
    let min = this.keyCap >= 0 ? this.keyCap : Infinity;
    let minDepth = -1;
    for (let d = 0; d < this.cap.length; d++) {
      const s = this.cap[d]!;
      if (s >= 0 && s < min) {
        min = s;
        minDepth = d;
      }
    }
    // Drop what no open capture reaches back to.
    while (this.retained.length > 0 && this.retainedAbs + this.retained[0]!.length <= min) {
      this.retainedAbs += this.retained[0]!.length;
      this.retained.shift();
    }
    if (this.retained.length === 0) {
      const from = Math.max(0, min - this.base);
      this.retainedAbs = this.base + from;
      if (from < end) this.retained.push(buf.subarray(from, end));
    } else if (end > 0) this.retained.push(buf.subarray(0, end));
    if (this.base + end - min > this.maxCapture) this.tooLarge(minDepth);
  }

  private tooLarge(depth: number): never {
    this.listener!.tooLarge(depth);
    throw this.error(`a value longer than ${this.maxCapture} bytes`);
  }
}

/**
 * Where `bytes` (one complete JSON text, e.g. a line that `JSON.parse` refused) stops being JSON,
 * or undefined if it is valid. `unit` names the text in a message about it ending early.
 */
export function findJsonError(bytes: Buffer, unit = 'input'): JsonSyntaxError | undefined {
  const s = new JsonScanner({ unit });
  try {
    s.push(bytes);
    s.end();
    if (!s.started) return new JsonSyntaxError(1, 1, `the ${unit} is empty`);
  } catch (e) {
    if (e instanceof JsonSyntaxError) return e;
    throw e;
  }
  return undefined;
}
