import { describe, expect, it } from 'vitest';
import { Rng } from '../core/index.js';
import { findJsonError, JsonScanner, JsonSyntaxError, type JsonListener } from './json-stream.js';

/** `text` as chunks of 1 to `max` bytes, split anywhere (inside strings, escapes, UTF-8 characters). */
function split(bytes: Buffer, rng: Rng, max = 7): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + rng.int(max);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** Scans `text` in the given chunks, recording what the listener hears and capturing at depth ≤ `capture`. */
function scan(chunks: Buffer[], capture = 2, opts: { maxCapture?: number; after?: 'end' | 'line' } = {}) {
  const events: string[] = [];
  const listener: JsonListener = {
    valueStart: (d, first) => {
      events.push(`start ${d} ${String.fromCharCode(first)}`);
      return d <= capture;
    },
    valueEnd: (d, text) => {
      events.push(`end ${d}${text !== undefined ? ` ${text}` : ''}`);
    },
    key: (d, k) => {
      events.push(`key ${d} ${k}`);
    },
    tooLarge: (d) => {
      throw new Error(`too large at depth ${d}`);
    },
  };
  const s = new JsonScanner({ listener, ...opts });
  let stop = -1;
  for (const c of chunks) {
    stop = s.push(c);
    if (stop >= 0) break;
  }
  if (stop < 0) s.end();
  return { events, stop, scanner: s };
}

function errorOf(text: string): JsonSyntaxError | undefined {
  return findJsonError(Buffer.from(text, 'utf8'));
}

describe('JsonScanner', () => {
  const doc = '{"resourceType": "Bundle", "k\\"ey": [1, -2.5e+3, true, false, null, {"x": "}]\\\\"}], "entry": [{"a": "é\\u00e9 😀 [{"}, {}], "n": 0}';

  it('reports values and keys near the top, and captures their exact text in any chunking', () => {
    const whole = scan([Buffer.from(doc)]);
    expect(whole.events).toEqual([
      'start 0 {',
      'key 1 resourceType',
      'start 1 "',
      'end 1 "Bundle"',
      'key 1 k"ey',
      'start 1 [',
      'start 2 1',
      'end 2 1',
      'start 2 -',
      'end 2 -2.5e+3',
      'start 2 t',
      'end 2 true',
      'start 2 f',
      'end 2 false',
      'start 2 n',
      'end 2 null',
      'start 2 {',
      'end 2 {"x": "}]\\\\"}',
      'end 1 [1, -2.5e+3, true, false, null, {"x": "}]\\\\"}]',
      'key 1 entry',
      'start 1 [',
      'start 2 {',
      'end 2 {"a": "é\\u00e9 😀 [{"}',
      'start 2 {',
      'end 2 {}',
      'end 1 [{"a": "é\\u00e9 😀 [{"}, {}]',
      'key 1 n',
      'start 1 0',
      'end 1 0',
      `end 0 ${doc}`,
    ]);
    const rng = new Rng(7);
    for (let k = 0; k < 200; k++) expect(scan(split(Buffer.from(doc), rng)).events).toEqual(whole.events);
    // One byte at a time, too.
    expect(scan(split(Buffer.from(doc), rng, 1)).events).toEqual(whole.events);
  });

  it('does not call the listener below eventDepth and captures nothing it did not ask for', () => {
    const { events } = scan([Buffer.from(doc)], -1);
    expect(events.filter((e) => e.startsWith('end') && e.length > 6)).toEqual([]);
    expect(events.some((e) => e.startsWith('start 3'))).toBe(false);
  });

  it('names the line and the column (in characters) of a syntax error', () => {
    expect(errorOf('{\n  "a": 1,\n  "b": x\n}')).toMatchObject({ line: 3, column: 8, reason: 'expected a value' });
    // Columns count code points: é and 😀 are one column each.
    expect(errorOf('{"é😀": 1 2}')).toMatchObject({ line: 1, column: 10, reason: "expected ',' or '}'" });
    expect(errorOf('[1, 2 3]')).toMatchObject({ line: 1, column: 7, reason: "expected ',' or ']'" });
    expect(errorOf('{"a" 1}')).toMatchObject({ column: 6, reason: "expected ':'" });
    expect(errorOf('{"a": 1,}')).toMatchObject({ column: 9, reason: 'expected a string key' });
    expect(errorOf('{1: 2}')).toMatchObject({ column: 2, reason: "expected a string key or '}'" });
    expect(errorOf('[1,]')).toMatchObject({ column: 4, reason: 'expected a value' });
    expect(errorOf('["a\nb"]')).toMatchObject({ line: 1, column: 4, reason: 'a line break inside a string' });
    expect(errorOf('["a\tb"]')).toMatchObject({ column: 4, reason: 'a control character inside a string' });
    expect(errorOf('["\\x"]')).toMatchObject({ column: 4, reason: 'not a valid escape in a string' });
    expect(errorOf('["\\u12g4"]')).toMatchObject({ column: 7, reason: 'a \\u escape needs four hex digits' });
    expect(errorOf('[01]')).toMatchObject({ column: 3, reason: 'not a valid number (a leading zero)' });
    expect(errorOf('[1.]')).toMatchObject({ column: 4, reason: 'not a valid number' });
    expect(errorOf('[1e]')).toMatchObject({ column: 4, reason: 'not a valid number' });
    expect(errorOf('[-]')).toMatchObject({ column: 3, reason: 'not a valid number' });
    expect(errorOf('[tru]')).toMatchObject({ column: 5, reason: 'not a valid literal (true, false or null)' });
    expect(errorOf('[nul l]')).toMatchObject({ column: 5, reason: 'not a valid literal (true, false or null)' });
    expect(errorOf('{} {}')).toMatchObject({ column: 4, reason: 'more content after the end of the JSON value' });
    expect(errorOf('hello')).toMatchObject({ line: 1, column: 1, reason: 'expected a JSON value' });
    expect(errorOf('\n\n  ')).toMatchObject({ reason: 'the input is empty' });
    expect(errorOf('{"a": [1, {"b": "x"}], "c": -0.5E-7}')).toBeUndefined();
  });

  it('says where truncated input ends, and what it ends inside', () => {
    expect(errorOf('{"a": [1, 2')).toMatchObject({ line: 1, column: 12, reason: 'truncated: the input ends inside an array' });
    expect(errorOf('{"a": {"b": 1}\n')).toMatchObject({ line: 2, column: 1, reason: 'truncated: the input ends inside an object' });
    expect(errorOf('{"a": "xy')).toMatchObject({ reason: 'truncated: the input ends inside a string' });
    expect(errorOf('{"ab')).toMatchObject({ reason: 'truncated: the input ends inside a key' });
    expect(errorOf('{"a": 12')).toMatchObject({ reason: 'truncated: the input ends inside an object' });
    expect(errorOf('fals')).toMatchObject({ reason: 'truncated: the input ends inside a literal' });
    expect(findJsonError(Buffer.from('{"a": 1'), 'line')).toMatchObject({ reason: 'truncated: the line ends inside an object' });
    // A number at the top level ends with the input.
    expect(errorOf('12.5')).toBeUndefined();
  });

  it('refuses nesting deeper than maxDepth', () => {
    const deep = '['.repeat(600) + ']'.repeat(600);
    expect(errorOf(deep)).toMatchObject({ column: 513, reason: 'nested deeper than 512 levels' });
    expect(errorOf('['.repeat(512) + ']'.repeat(512))).toBeUndefined();
  });

  it('stops at the end of the line of the top-level value with after: line', () => {
    const text = Buffer.from('{"a": 1}  \r\n{"b": 2}\n');
    const { stop, scanner } = scan([text], 0, { after: 'line' });
    expect(stop).toBe(12);
    expect(scanner.line).toBe(2);
    expect(() => scan([Buffer.from('{"a": 1} {"b": 2}\n')], 0, { after: 'line' })).toThrow('more than one JSON value on a line');
    // Split anywhere, the stop is still found (as an offset in the chunk that holds it).
    const rng = new Rng(3);
    for (let k = 0; k < 50; k++) {
      const chunks = split(text, rng, 3);
      const r = scan(chunks, 0, { after: 'line' });
      let at = 0;
      // The chunk that holds the line feed (byte 11) is where the scanner stops.
      for (const c of chunks) {
        if (at + c.length > 11) break;
        at += c.length;
      }
      expect(at + r.stop).toBe(12);
    }
  });

  it('calls tooLarge when a captured value outgrows maxCapture, and not for values it does not keep', () => {
    const big = `{"resourceType": "Bundle", "entry": [{"x": "${'a'.repeat(100)}"}]}`;
    expect(() => scan(split(Buffer.from(big), new Rng(1), 7), 2, { maxCapture: 50 })).toThrow('too large at depth 0');
    expect(() => scan(split(Buffer.from(big), new Rng(1), 7), -1, { maxCapture: 50 })).not.toThrow();
  });

  it('accepts exactly what JSON.parse accepts (mutated documents, whole and split)', () => {
    const seeds = [
      '{"resourceType":"Patient","name":[{"given":["A\\"b","c\\\\"],"family":"\\u00e9x"}],"n":-12.5e-3,"b":true,"z":null,"e":[],"o":{}}',
      '[0, 1.0, -0, 2E+2, "a/b\\/c", "\\b\\f\\n\\r\\t", {"": ""}]',
      ' \r\n\t{"a" : [ 1 , 2 ] }\n',
    ];
    const alphabet = '{}[]":,\\ -+.eE0123456789tfnulrsa\n\t\u00e9x';
    const rng = new Rng(42);
    let valid = 0;
    for (let k = 0; k < 4000; k++) {
      let t = seeds[rng.int(seeds.length)]!;
      const edits = 1 + rng.int(3);
      for (let m = 0; m < edits; m++) {
        const at = rng.int(t.length + 1);
        const op = rng.int(3);
        const ch = alphabet[rng.int(alphabet.length)]!;
        t = op === 0 ? t.slice(0, at) + ch + t.slice(at) : op === 1 ? t.slice(0, at) + t.slice(at + 1) : t.slice(0, at) + ch + t.slice(at + 1);
      }
      let ok = true;
      try {
        JSON.parse(t);
      } catch {
        ok = false;
      }
      if (ok) valid++;
      const bytes = Buffer.from(t, 'utf8');
      expect(findJsonError(bytes) === undefined, t).toBe(ok);
      // Split into small chunks: the same verdict at the same place.
      const s = new JsonScanner();
      let err: JsonSyntaxError | undefined;
      try {
        for (const c of split(bytes, rng, 4)) s.push(c);
        s.end();
        if (!s.started) err = new JsonSyntaxError(1, 1, 'empty');
      } catch (e) {
        err = e as JsonSyntaxError;
      }
      const whole = findJsonError(bytes);
      expect(err === undefined, t).toBe(ok);
      if (whole && err) expect([err.line, err.column], t).toEqual([whole.line, whole.column]);
    }
    // The mutations must exercise both sides.
    expect(valid).toBeGreaterThan(200);
    expect(valid).toBeLessThan(3800);
  });
});
