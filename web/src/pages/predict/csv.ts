/**
 * CSV in the browser, RFC 4180: fields separated by commas, records by CRLF (LF and CR alone are
 * accepted too), a field in double quotes may hold commas, line breaks and doubled quotes (`""`).
 * A byte-order mark is dropped, blank lines are skipped, and a malformed file is an error naming
 * the record, never a silently shifted table. Nothing here touches the network or storage.
 */

/** A CSV file that cannot be read, with the line where it went wrong. */
export class CsvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsvError';
  }
}

/** Splits CSV text into records of fields (the header is the first record). */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  let line = 1;
  /** Whether the current field was quoted (so an empty quoted field still counts as a field). */
  let quoted = false;
  const endRecord = () => {
    record.push(field);
    // A blank line is no record (RFC 4180 would read it as one empty field; no table means that).
    if (!(record.length === 1 && record[0] === '' && !quoted)) records.push(record);
    record = [];
    field = '';
    quoted = false;
  };
  while (i < n) {
    const c = text[i]!;
    if (c === '"' && field === '' && !quoted) {
      // A quoted field: up to the closing quote, `""` standing for one quote.
      quoted = true;
      const startLine = line;
      i++;
      for (;;) {
        if (i >= n) throw new CsvError(`line ${startLine}: a quoted field is never closed (a missing ")`);
        const q = text.indexOf('"', i);
        if (q < 0) throw new CsvError(`line ${startLine}: a quoted field is never closed (a missing ")`);
        const chunk = text.slice(i, q);
        field += chunk;
        line += countBreaks(chunk);
        if (text[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new CsvError(`line ${line}: unexpected text after a closing quote (a quote inside a quoted field is written "")`);
      }
      continue;
    }
    if (c === ',') {
      record.push(field);
      field = '';
      quoted = false;
      i++;
    } else if (c === '\n' || c === '\r') {
      endRecord();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
    } else {
      // Unquoted text runs to the next comma or line break; a quote inside it is taken as written.
      let j = i;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 44 || d === 10 || d === 13) break;
        j++;
      }
      if (quoted) throw new CsvError(`line ${line}: unexpected text after a closing quote`);
      field += text.slice(i, j);
      i = j;
    }
  }
  if (field !== '' || quoted || record.length > 0) endRecord();
  return records;
}

function countBreaks(s: string): number {
  let k = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10) k++;
    else if (c === 13 && s.charCodeAt(i + 1) !== 10) k++;
  }
  return k;
}

/**
 * A CSV table as records keyed by the header: every record must have the header's number of
 * fields (else an error naming the record). Empty fields are left out of the record, which is
 * how the API is told a value is missing (it imputes it as in training).
 */
export function csvRecords(text: string): { header: string[]; records: Record<string, string>[] } {
  const rows = parseCsv(text);
  if (rows.length === 0) throw new CsvError('the file is empty: expected a header row and at least one record');
  const header = rows[0]!.map((h) => h.trim());
  const seen = new Set<string>();
  header.forEach((h, i) => {
    if (h === '') throw new CsvError(`the header's column ${i + 1} has no name`);
    if (seen.has(h)) throw new CsvError(`the header names column "${h}" twice`);
    seen.add(h);
  });
  if (rows.length === 1) throw new CsvError('the file has a header but no records');
  const records = rows.slice(1).map((r, k) => {
    if (r.length !== header.length) throw new CsvError(`record ${k + 1} has ${r.length} field${r.length === 1 ? '' : 's'}, the header has ${header.length}`);
    // No prototype: a column named `__proto__` is a column like any other.
    const o = Object.create(null) as Record<string, string>;
    header.forEach((h, j) => {
      if (r[j] !== '') o[h] = r[j]!;
    });
    return o;
  });
  return { header, records };
}

/**
 * One CSV field, quoted when it must be (a comma, quote or line break inside). Text that a
 * spreadsheet would run as a formula (=, +, -, @ first, and not a number) gets a leading `'`.
 */
export function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  let s = v;
  if (/^[=+\-@\t\r]/.test(s) && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV text from a header and rows, CRLF line ends (RFC 4180). */
export function toCsv(header: string[], rows: (string | number | null)[][]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
