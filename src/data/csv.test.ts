import { describe, expect, it } from 'vitest';
import { MedfitError, Rng } from '../core/index.js';
import { CsvScanner, ESCAPED, type CsvBatch } from './csv.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Every record of `text` fed to a scanner in the given chunk sizes: fields as strings, with lines. */
function scanAll(text: string | Uint8Array, chunk: (i: number) => number = () => Infinity, delimiter = ','): { fields: string[]; line: number }[] {
  const bytes = typeof text === 'string' ? enc.encode(text) : text;
  const s = new CsvScanner(delimiter, 't.csv');
  const out: { fields: string[]; line: number }[] = [];
  const take = (b: CsvBatch) => {
    for (let r = 0; r < b.count; r++) {
      const fields: string[] = [];
      for (let f = b.first[r]!; f < b.first[r + 1]!; f++) {
        const t = dec.decode(b.buf.subarray(b.starts[f]!, b.ends[f]!));
        fields.push((b.flags[f]! & ESCAPED) !== 0 ? t.replaceAll('""', '"') : t);
      }
      out.push({ fields, line: b.lines[r]! });
    }
  };
  let i = 0;
  let k = 0;
  while (i < bytes.length) {
    const n = Math.max(1, Math.min(bytes.length - i, chunk(k++)));
    take(s.push(bytes.subarray(i, i + n)));
    i += n;
  }
  take(s.end());
  return out;
}

describe('CsvScanner', () => {
  it('reads quotes, doubled quotes, CRLF, lone CR, blank lines and a last line without newline', () => {
    const text = 'a,b\r\n1,"x\r\ny"\r\n\r\n2,"q""q"\r3, "s" \n  \n4,5';
    expect(scanAll(text)).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', 'x\r\ny'], line: 2 },
      { fields: ['2', 'q"q'], line: 5 },
      { fields: ['3', 's'], line: 6 },
      { fields: ['4', '5'], line: 8 },
    ]);
  });

  it('gives the same records and lines however the bytes are chunked', () => {
    const rng = new Rng(3);
    const pieces = ['a', 'é', '日', ' ', ',', '"', '""', '\n', '\r\n', '\r', '1', '2.5', 'NA', '😀'];
    for (let t = 0; t < 200; t++) {
      // Random records whose quoted fields are well formed.
      const records: string[] = [];
      for (let r = 0; r < 1 + rng.int(6); r++) {
        const fields: string[] = [];
        for (let f = 0; f < 1 + rng.int(4); f++) {
          let v = '';
          for (let k = 0; k < rng.int(6); k++) v += pieces[rng.int(pieces.length)]!;
          const quote = rng.next() < 0.4 || /[",\r\n]/.test(v);
          fields.push(quote ? `"${v.replaceAll('"', '""')}"` : v.replace(/[",\r\n]/g, 'x'));
        }
        records.push(fields.join(','));
      }
      const text = records.join(rng.next() < 0.5 ? '\n' : '\r\n') + (rng.next() < 0.5 ? '\n' : '');
      const whole = scanAll(text);
      for (const size of [1, 2, 3, 7]) expect(scanAll(text, () => size), JSON.stringify(text)).toEqual(whole);
      expect(scanAll(text, () => 1 + rng.int(9))).toEqual(whole);
    }
  });

  it('is linear in its input: a record of eight 1 MB quoted fields in 16 KB chunks', () => {
    const field = '"' + 'x'.repeat(500_000) + '\n' + 'y'.repeat(499_990) + '"';
    const text = enc.encode(Array.from({ length: 8 }, () => field).join(',') + '\n1,2,3,4,5,6,7,8\n');
    const started = performance.now();
    const recs = scanAll(text, () => 16 * 1024);
    // A scanner that rescanned the open record on every chunk took about 70 s on 8 MB.
    expect(performance.now() - started).toBeLessThan(3000);
    expect(recs.map((r) => r.line)).toEqual([1, 10]);
    expect(recs[0]!.fields[7]!.length).toBe(999_991);
  });

  it('refuses a field over the cap as soon as it is passed, naming the line', () => {
    const s = new CsvScanner(',', 'big.csv', 1000);
    s.push(enc.encode('a,b\n1,"'));
    let err: unknown;
    try {
      for (let i = 0; i < 10; i++) s.push(enc.encode('z'.repeat(300)));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MedfitError);
    expect((err as MedfitError).message).toBe('big.csv:2: a field is longer than 1000 bytes');
    expect(() => scanAll('a,' + 'b'.repeat(2_000_000))).toThrow(/t\.csv:1: a field is longer than 1048576 bytes/);
  });

  it('refuses more fields than the header once the width is known', () => {
    const s = new CsvScanner(',', 'w.csv');
    s.maxFields = 2;
    expect(() => s.push(enc.encode('1,2,3\n'))).toThrow(/w\.csv:1: row has more than 2 fields/);
  });

  it('names the line of an unclosed quote and of a character after a closing quote', () => {
    expect(() => scanAll('a,b\n1,"open\n\n')).toThrow(/t\.csv:2: a quoted field starting on this record is never closed/);
    expect(() => scanAll('a,b\n"x\ny"z,1\n')).toThrow(/t\.csv:3: unexpected character after a closing quote/);
  });

  it('reads a tab-delimited line whose fields start with tabs', () => {
    expect(scanAll('a\tb\n\t"x"\n', undefined, '\t')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['', 'x'], line: 2 },
    ]);
  });
});
