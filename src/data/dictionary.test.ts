import { describe, expect, it } from 'vitest';
import { NumberCounter, TextDictionary } from './dictionary.js';

const enc = new TextEncoder();

describe('hash tables under flooding (every key sharing one hash)', () => {
  it('TextDictionary stays exact and linear: it moves to a Map once probes run long', () => {
    const d = new TextDictionary();
    const keys = Array.from({ length: 20_000 }, (_, i) => enc.encode(`code-${i}`));
    const started = performance.now();
    for (const k of keys) {
      expect(d.find(k, 0, k.length, 42)).toBe(-1);
      d.insert(k, 0, k.length, 42);
    }
    for (const [i, k] of keys.entries()) if (i % 97 === 0) expect(d.find(k, 0, k.length, 42)).toBe(i);
    // Quadratic probing of 20,000 colliding keys would be 2·10^8 comparisons.
    expect(performance.now() - started).toBeLessThan(2000);
    expect(d.size).toBe(20_000);
    expect(d.text(19_999)).toBe('code-19999');
  });

  it('NumberCounter leaves its table for the sketch instead of crawling', () => {
    const c = new NumberCounter(100_000);
    const started = performance.now();
    // Hashes that differ only above the table's bits: one slot, yet distinct values for the sketch.
    for (let i = 0; i < 50_000; i++) c.add(i + 0.5, (i << 16) | 7);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(c.exact).toBe(false);
    expect(Math.abs(c.distinct - 50_000) / 50_000).toBeLessThan(0.05);
  });
});
