import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { rejection } from '../../test/helpers.js';
import { detectDelimiter, findBinaryByte, readTable, readTableFromStream, rowsOf, sniffFormat } from './read.js';

const FIX = join(import.meta.dirname, '../../test/fixtures/data');
const dir = mkdtempSync(join(tmpdir(), 'medfit-read-'));
function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

describe('CSV', () => {
  it('reads quotes with embedded newline, comma and doubled quotes, CRLF, and missing tokens', async () => {
    const t = await readTable(join(FIX, 'quoted.csv'));
    expect(t.format).toBe('csv');
    expect(t.columns).toEqual(['id', 'name', 'note', 'score']);
    expect(rowsOf(t)).toEqual([
      [1, 'Smith, J', 'line one\r\nline two', 3.5],
      [2, 'say "hi"', 'plain', null],
    ]);
    expect([...t.lines]).toEqual([2, 4]);
  });

  it('strips a BOM and detects ; as delimiter', async () => {
    const t = await readTable(join(FIX, 'semicolon.csv'));
    expect(t.columns).toEqual(['age', 'weight', 'sex']);
    expect(rowsOf(t)).toEqual([
      [41, '70,5', 'F'],
      [52, null, 'M'],
    ]);
  });

  it('detects tab, trims cells and maps every missing token to null', async () => {
    const p = file('t.tsv', 'a\tb\tc\n x \t  NA \tn/a\nnull\t?\t#N/A\nNaN\t\tnone\n');
    const t = await readTable(p);
    expect(rowsOf(t)).toEqual([
      ['x', null, null],
      [null, null, null],
      [null, null, 'none'],
    ]);
  });

  it('names the source line of a ragged row after a multi-line quoted cell', async () => {
    const p = file('ragged.csv', 'a,b,c,d\n1,"x\ny\nz",3,4\n\n5,6,7,8,9\n');
    const e = await rejection(readTable(p));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toBe(`${p}:6: row has 5 fields, header has 4`);
  });

  it('rejects an empty file, a header-only file, and bad headers by position', async () => {
    expect((await rejection(readTable(file('empty.csv', '')))).message).toMatch(/empty\.csv: empty file$/);
    expect((await rejection(readTable(file('blank.csv', '\n \n')))).message).toMatch(/empty file$/);
    expect((await rejection(readTable(file('header.csv', 'a,b\n')))).message).toMatch(/header\.csv: no data rows$/);
    expect((await rejection(readTable(file('dup.csv', 'a,b,a\n1,2,3\n')))).message).toMatch(
      /dup\.csv:1: header column 3 \("a"\) repeats the name of column 1$/,
    );
    expect((await rejection(readTable(file('noname.csv', 'a,,c\n1,2,3\n')))).message).toMatch(
      /noname\.csv:1: header column 2 has no name$/,
    );
  });

  it('rejects binary content with its byte offset', async () => {
    const e = await rejection(readTable(file('x.bin', Buffer.from([0x61, 0x2c, 0x62, 0x0a, 0x31, 0x00, 0x32]))));
    expect(e.message).toMatch(/x\.bin: not a text table \(binary content at byte 5\)$/);
    const e2 = await rejection(readTable(file('latin1.csv', Buffer.from([0x61, 0x0a, 0xe9, 0x0a]))));
    expect(e2.message).toMatch(/binary content at byte 2/);
  });

  it('reports an unclosed quote and a stray character after a closing quote, without cell text', async () => {
    const e = await rejection(readTable(file('open.csv', 'a,b\n1,2\n3,"secret\n')));
    expect(e.message).toMatch(/open\.csv:3: a quoted field/);
    expect(e.message).not.toContain('secret');
    const e2 = await rejection(readTable(file('after.csv', 'a,b\n1,"x"secret\n')));
    expect(e2.message).toMatch(/after\.csv:2: unexpected character after a closing quote$/);
  });

  it('keeps a quote inside an unquoted cell, and reads a last line without newline', async () => {
    const t = await readTable(file('inch.csv', 'h,n\n5\'11",1\n6\'0",2'));
    expect(rowsOf(t)).toEqual([
      ['5\'11"', 1],
      ['6\'0"', 2],
    ]);
    expect([...t.lines]).toEqual([2, 3]);
  });

  it('reads records split across stream chunks (quotes, CRLF) the same as whole', async () => {
    const text = 'a,b\r\n1,"x\r\ny"\r\n2,"q""q"\r\n';
    const chunks = [...text].map((c) => Buffer.from(c));
    const t = await readTableFromStream(Readable.from(chunks), '<stdin>');
    expect(rowsOf(t)).toEqual([
      [1, 'x\r\ny'],
      [2, 'q"q'],
    ]);
    expect([...t.lines]).toEqual([2, 4]);
  });

  it('reports a missing file as not found', async () => {
    const e = await rejection(readTable(join(dir, 'nope.csv')));
    expect(e.code).toBe('MEDFIT_ERR_NOT_FOUND');
  });
});

describe('JSON and NDJSON', () => {
  it('reads an array of objects with the union of keys', async () => {
    const t = await readTable(join(FIX, 'records.json'));
    expect(t.format).toBe('json');
    expect(t.columns).toEqual(['age', 'smoker', 'sex', 'bmi']);
    expect(rowsOf(t)).toEqual([
      [41, 'true', 'F', null],
      [null, null, null, 22.5],
    ]);
    expect([...t.lines]).toEqual([1, 2]);
  });

  it('rejects a nested value naming the record and key', async () => {
    const e = await rejection(readTable(file('n.json', '[{"a":1},{"a":2,"vitals":{"hr":60}}]')));
    expect(e.message).toMatch(/n\.json record 2: key "vitals" holds an object/);
    const e2 = await rejection(readTable(file('n.ndjson', '{"a":1}\n{"a":[1,2]}\n')));
    expect(e2.message).toMatch(/n\.ndjson:2: key "a" holds an array/);
  });

  it('reads NDJSON skipping blank lines and names a bad line', async () => {
    const good = await readTable(file('g.ndjson', '{"a":1,"b":"x"}\n\n{"b":"y","c":false}\n'));
    expect(good.columns).toEqual(['a', 'b', 'c']);
    expect(rowsOf(good)).toEqual([
      [1, 'x', null],
      [null, 'y', 'false'],
    ]);
    expect([...good.lines]).toEqual([1, 3]);
    const e = await rejection(readTable(join(FIX, 'bad_line.ndjson')));
    expect(e.message).toMatch(/bad_line\.ndjson:4: not valid JSON$/);
  });

  it('does not echo JSON text in syntax errors', async () => {
    const e = await rejection(readTable(file('s.json', '[{"a": 1},\n {"a": secretvalue}]')));
    expect(e.message).toMatch(/s\.json(:2)?: not valid JSON$/);
    expect(e.message).not.toContain('secret');
  });

  it('sniffs the format of a stream', async () => {
    const j = await readTableFromStream(Readable.from([Buffer.from(' [{"a": 1}]')]), '<stdin>');
    expect(j.format).toBe('json');
    const n = await readTableFromStream(Readable.from([Buffer.from('{"a": 1}\n{"a": 2}\n')]), '<stdin>');
    expect(n.format).toBe('ndjson');
    expect(rowsOf(n)).toEqual([[1], [2]]);
    const c = await readTableFromStream(Readable.from([Buffer.from('a\n1\n')]), '<stdin>');
    expect(c.format).toBe('csv');
  });
});

describe('helpers', () => {
  it('sniffFormat, detectDelimiter and findBinaryByte', () => {
    expect(sniffFormat('\uFEFF[')).toBe('json');
    expect(sniffFormat('\n{"a":1}')).toBe('ndjson');
    expect(sniffFormat('a,b')).toBe('csv');
    expect(detectDelimiter('a;b;c\n1,5;2;3\n')).toBe(';');
    expect(detectDelimiter('a\tb\n"x\ty"\t2\n')).toBe('\t');
    expect(detectDelimiter('a,b\n1,2\n')).toBe(',');
    expect(detectDelimiter('single\n1\n')).toBe(',');
    expect(findBinaryByte(Buffer.from('héllo', 'utf8'))).toBe(-1);
    expect(findBinaryByte(Buffer.from([0x68, 0xc3]))).toBe(-1); // cut at the end: fine
    expect(findBinaryByte(Buffer.from([0x68, 0xc3]), true)).toBe(1); // cut at the end of the file
    expect(findBinaryByte(Buffer.from([0x68, 0xc0, 0x80]))).toBe(1); // overlong
  });
});

describe('large inputs', () => {
  it('reads a multi-chunk CSV with mixed cells exactly (columns sized from the file, then grown)', async () => {
    const lines = ['id,v,cat,flag'];
    // The first 64 KB holds short rows, the rest long ones: the size estimate falls short and the
    // columns must grow past it without losing a cell.
    for (let i = 0; i < 60_000; i++) {
      const pad = i < 3000 ? '' : 'x'.repeat(40);
      lines.push(`${i},${i % 7 === 0 ? 'NA' : (i / 8).toFixed(3)},${i % 5 === 0 ? '1.50' : `c${i % 3}${pad}`},${i % 2 ? 'yes' : 'no'}`);
    }
    const t = await readTable(file('big.csv', lines.join('\n') + '\n'));
    expect(t.rowCount).toBe(60_000);
    let sum = 0;
    let missing = 0;
    for (let r = 0; r < t.rowCount; r++) {
      const v = t.data[1]!.number(r);
      if (Number.isNaN(v)) missing++;
      else sum += v;
    }
    let want = 0;
    for (let i = 0; i < 60_000; i++) if (i % 7 !== 0) want += Number((i / 8).toFixed(3));
    expect(sum).toBeCloseTo(want, 6);
    expect(missing).toBe(Math.ceil(60_000 / 7));
    expect(t.data[2]!.text(0)).toBe('1.5'); // a number, kept by value
    expect(t.data[2]!.text(59_999)).toBe(`c${59_999 % 3}${'x'.repeat(40)}`);
    expect(t.lines[59_999]).toBe(60_001);
  });

  it('reads a 5 MB NDJSON line spread over many chunks', async () => {
    const long = JSON.stringify({ a: 1, note: 'n'.repeat(5_000_000) });
    const started = performance.now();
    const chunks = Array.from({ length: Math.ceil(long.length / 62_500) }, (_, i) => Buffer.from(long.slice(i * 62_500, (i + 1) * 62_500)));
    const t = await readTableFromStream(Readable.from([...chunks, Buffer.from('\n{"a":2}\n')]), '<stdin>', 'ndjson');
    expect(performance.now() - started).toBeLessThan(3000);
    expect(rowsOf(t).map((r) => r[0])).toEqual([1, 2]);
  });
});

describe('wide tables', () => {
  it('profiles 5,000 columns within a shared memory budget, and refuses more than 10,000 columns', async () => {
    const { profileFile } = await import('./profile.js');
    const cols = Array.from({ length: 5000 }, (_, j) => `c${j}`);
    const rows = Array.from({ length: 40 }, (_, i) => cols.map((_, j) => String((i * 31 + j) % 97 + 0.5)).join(','));
    const p = await profileFile(file('wide.csv', [cols.join(','), ...rows].join('\n') + '\n'));
    expect(p.columns).toHaveLength(5000);
    expect(p.columns[4999]).toMatchObject({ type: 'numeric', missing: 0 });
    const tooWide = Array.from({ length: 10_001 }, (_, j) => `c${j}`).join(',');
    expect((await rejection(readTable(file('too-wide.csv', `${tooWide}\n${tooWide}\n`)))).message).toMatch(/too-wide\.csv:1: row has more than 10000 fields/);
    const json = `[{${Array.from({ length: 10_001 }, (_, j) => `"k${j}": 1`).join(',')}}]`;
    expect((await rejection(readTable(file('too-wide.json', json)))).message).toMatch(/too-wide\.json record 1: has 10001 columns; medfit reads tables of at most 10000/);
  });
});
