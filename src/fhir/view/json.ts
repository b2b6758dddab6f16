/**
 * JSON parsing that keeps the precision of FHIR decimals.
 *
 * FHIR says the precision of a decimal is significant (`1.0` is not `1`: its `lowBoundary()` is
 * 0.95, not 0.5), and `JSON.parse` forgets it. This parser is `JSON.parse` except that a number
 * whose text does not survive the trip through a JavaScript number (`1.0`, `2.50`, `1e2`) becomes
 * a fhirpath `FP_Decimal` that remembers its text; every other number stays a plain number. The
 * view engine turns such values back into numbers in its rows (as fhirpath does), so callers only
 * see the difference through FHIRPath functions that care about precision.
 *
 * Linear in its input, iterative over nesting (no recursion to overflow), no regular expressions.
 */
import fhirpath from 'fhirpath';
import { Errors } from '../../core/index.js';

const FP_Decimal = fhirpath.FP_Decimal;

/** Deepest nesting accepted: FHIR resources nest a few dozen levels; this stops hostile input, not data. */
const MAX_DEPTH = 1000;

/**
 * Parses JSON text as `JSON.parse` does, keeping decimals whose text a JavaScript number would
 * change (`1.0`) as fhirpath `FP_Decimal`s. Throws `Errors.badData(where, …)` naming the character
 * offset of the first problem, never quoting the text.
 */
export function parseJsonKeepingDecimals(text: string, where = ''): unknown {
  const p = new Parser(text, where);
  return p.parse();
}

class Parser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly where: string,
  ) {}

  private fail(what: string): never {
    throw Errors.badData(this.where, `not valid JSON: ${what} at character ${this.i + 1}`);
  }

  private ws(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  parse(): unknown {
    // Containers under construction; `keys[k]` is the pending key of an object frame.
    const stack: Array<unknown[] | Record<string, unknown>> = [];
    const keys: Array<string | undefined> = [];
    let result: unknown;
    let done = false;
    this.ws();
    for (;;) {
      // Read one value (or open a container).
      let value: unknown;
      let opened = false;
      const c = this.s.charCodeAt(this.i);
      if (c === 0x7b /* { */) {
        this.i++;
        this.ws();
        if (stack.length >= MAX_DEPTH) this.fail('nesting too deep');
        const obj: Record<string, unknown> = {};
        if (this.s.charCodeAt(this.i) === 0x7d /* } */) {
          this.i++;
          value = obj;
        } else {
          stack.push(obj);
          keys.push(this.key());
          opened = true;
        }
      } else if (c === 0x5b /* [ */) {
        this.i++;
        this.ws();
        if (stack.length >= MAX_DEPTH) this.fail('nesting too deep');
        const arr: unknown[] = [];
        if (this.s.charCodeAt(this.i) === 0x5d /* ] */) {
          this.i++;
          value = arr;
        } else {
          stack.push(arr);
          keys.push(undefined);
          opened = true;
        }
      } else {
        value = this.scalar();
      }
      if (opened) continue;
      // Attach the value, then close every container that ends here.
      for (;;) {
        if (stack.length === 0) {
          result = value;
          done = true;
          break;
        }
        const top = stack[stack.length - 1]!;
        if (Array.isArray(top)) top.push(value);
        else setKey(top, keys[keys.length - 1]!, value);
        this.ws();
        const d = this.s.charCodeAt(this.i);
        if (d === 0x2c /* , */) {
          this.i++;
          this.ws();
          if (!Array.isArray(top)) keys[keys.length - 1] = this.key();
          break;
        }
        if (Array.isArray(top) ? d === 0x5d : d === 0x7d) {
          this.i++;
          stack.pop();
          keys.pop();
          value = top;
          continue;
        }
        this.fail(Array.isArray(top) ? 'expected "," or "]"' : 'expected "," or "}"');
      }
      if (done) break;
    }
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected text after the value');
    return result;
  }

  /** An object key and its colon; leaves the position at the value. */
  private key(): string {
    if (this.s.charCodeAt(this.i) !== 0x22) this.fail('expected a quoted key');
    const k = this.string();
    this.ws();
    if (this.s.charCodeAt(this.i) !== 0x3a /* : */) this.fail('expected ":"');
    this.i++;
    this.ws();
    return k;
  }

  private scalar(): unknown {
    const s = this.s;
    const c = s.charCodeAt(this.i);
    if (c === 0x22) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (s.startsWith('true', this.i)) {
      this.i += 4;
      return true;
    }
    if (s.startsWith('false', this.i)) {
      this.i += 5;
      return false;
    }
    if (s.startsWith('null', this.i)) {
      this.i += 4;
      return null;
    }
    return this.fail(this.i >= s.length ? 'unexpected end' : 'unexpected character');
  }

  private digits(): number {
    const s = this.s;
    const start = this.i;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c < 0x30 || c > 0x39) break;
      this.i++;
    }
    return this.i - start;
  }

  private number(): unknown {
    const s = this.s;
    const start = this.i;
    let plain = true;
    if (s.charCodeAt(this.i) === 0x2d) this.i++;
    if (s.charCodeAt(this.i) === 0x30) this.i++;
    else if (this.digits() === 0) this.fail('bad number');
    if (s.charCodeAt(this.i) === 0x2e /* . */) {
      plain = false;
      this.i++;
      if (this.digits() === 0) this.fail('bad number');
    }
    const e = s.charCodeAt(this.i);
    if (e === 0x65 || e === 0x45) {
      plain = false;
      this.i++;
      const sign = s.charCodeAt(this.i);
      if (sign === 0x2b || sign === 0x2d) this.i++;
      if (this.digits() === 0) this.fail('bad number');
    }
    const text = s.slice(start, this.i);
    const n = Number(text);
    if (plain || String(n) === text) return n;
    return FP_Decimal.getDecimal(text);
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let runStart = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(runStart, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('control character in a string');
      if (c !== 0x5c /* \ */) {
        this.i++;
        continue;
      }
      out += s.slice(runStart, this.i);
      const esc = s.charCodeAt(this.i + 1);
      this.i += 2;
      switch (esc) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          let code = 0;
          for (let k = 0; k < 4; k++) {
            const h = s.charCodeAt(this.i + k);
            const v = h >= 0x30 && h <= 0x39 ? h - 0x30 : h >= 0x61 && h <= 0x66 ? h - 0x57 : h >= 0x41 && h <= 0x46 ? h - 0x37 : -1;
            if (v < 0) this.fail('bad \\u escape');
            code = code * 16 + v;
          }
          this.i += 4;
          out += String.fromCharCode(code);
          break;
        }
        default:
          this.i -= 2;
          this.fail('bad escape');
      }
      runStart = this.i;
    }
  }
}

/** `obj[key] = value` as JSON.parse does it: `__proto__` becomes an own property, not the prototype. */
function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}
