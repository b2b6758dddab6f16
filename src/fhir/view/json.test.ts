import { describe, it, expect } from 'vitest';
import fhirpath from 'fhirpath';
import { parseJsonKeepingDecimals } from './json.js';

describe('parseJsonKeepingDecimals', () => {
  it('reads what JSON.parse reads, the same way', () => {
    const texts = [
      '{"a": [1, -2, 3.5, 1e-7, -0, 0.1, 123456789012], "b": {"c": null, "d": true, "e": false}, "s": "x\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"}',
      '[]',
      '{}',
      ' \n\t"plain" ',
      '[[[[{"k": [{}]}]]]]',
      '{"dup": 1, "dup": 2}',
      '{"é": "ünïcödé ✓"}',
    ];
    for (const t of texts) expect(parseJsonKeepingDecimals(t)).toEqual(JSON.parse(t));
  });

  it('keeps the precision of decimals a JavaScript number would lose, and only those', () => {
    const v = parseJsonKeepingDecimals('{"a": 1.0, "b": 2.50, "c": 1e2, "d": 1.5, "e": 10}') as Record<string, unknown>;
    expect(v.a).toBeInstanceOf(fhirpath.FP_Decimal);
    expect(String(v.a)).toBe('1.0');
    expect((v.a as { toJSON(): number }).toJSON()).toBe(1);
    expect(String(v.b)).toBe('2.50');
    expect(v.c).toBeInstanceOf(fhirpath.FP_Decimal);
    expect(v.d).toBe(1.5);
    expect(v.e).toBe(10);
    expect(JSON.stringify(v)).toBe('{"a":1,"b":2.5,"c":100,"d":1.5,"e":10}');
  });

  it('makes __proto__ an own property, as JSON.parse does', () => {
    const v = parseJsonKeepingDecimals('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('names the character of the first problem, never the text', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /unexpected end at character 1/],
      ['{"a": 1,}', /expected a quoted key at character 9/],
      ['[1 2]', /expected "," or "]" at character 4/],
      ['{"a" 1}', /expected ":" at character 6/],
      ['{"secret": "abc', /unterminated string/],
      ['"\\x"', /bad escape at character 2/],
      ['"\\u12g4"', /bad \\u escape/],
      ['01', /unexpected text after the value at character 2/],
      ['1.', /bad number/],
      ['-', /bad number/],
      ['1e+', /bad number/],
      ['"a\nb"', /control character/],
      ['nul', /unexpected character/],
      ['[1] x', /unexpected text after the value/],
    ];
    for (const [t, re] of bad) {
      expect(() => parseJsonKeepingDecimals(t, 'f.json'), t).toThrow(re);
      expect(() => parseJsonKeepingDecimals(t, 'f.json'), t).toThrow(/^f\.json: not valid JSON: /);
    }
    expect(() => parseJsonKeepingDecimals('{"secret": "abc', 'f.json')).not.toThrow(/secret|abc/);
  });

  it('refuses nesting deep enough to be an attack, without overflowing the stack', () => {
    expect(() => parseJsonKeepingDecimals('['.repeat(100_000))).toThrow(/nesting too deep/);
    expect(parseJsonKeepingDecimals(`${'['.repeat(500)}${']'.repeat(500)}`)).toEqual(JSON.parse(`${'['.repeat(500)}${']'.repeat(500)}`));
  });
});
