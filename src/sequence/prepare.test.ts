import { describe, expect, it } from 'vitest';
import { lengthSteps, readFilter, readLength } from './options.js';
import { fitNormaliser, filterSegment, resampleSession, segmentsOf, validateSequencePrep, windowCount, windowize, type Segment } from './prepare.js';
import type { Session } from './sessions.js';

function session(t: number[], channels: number[][], targets: number[][] = []): Session {
  return { subject: 's', session: 'a', t: Float64Array.from(t), channels: channels.map((c) => Float64Array.from(c)), targets: targets.map((c) => Float64Array.from(c)), line: 2 };
}

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

describe('resampleSession', () => {
  it('interpolates linearly onto a grid anchored at the first sample', () => {
    // 100 Hz ramp → 40 Hz: values follow the line exactly.
    const s = session(range(101, (i) => i / 100), [range(101, (i) => 3 * (i / 100) + 1)]);
    const [seg] = resampleSession(s, 40, 1);
    expect(seg!.n).toBe(41);
    for (let i = 0; i < 41; i++) expect(seg!.channels[0]![i]).toBeCloseTo(3 * (i / 40) + 1, 12);
  });

  it('joins a 1 Hz channel to a 50 Hz one and holds labels', () => {
    const t = range(151, (i) => i / 50);
    const hr = t.map((x, i) => (i % 50 === 0 ? 60 + x : NaN));
    const labels = t.map((x) => (x < 1.5 ? 0 : 1));
    const [seg] = resampleSession(session(t, [t.map(() => 1), hr], [labels]), 50, 2);
    expect(seg!.channels[1]![25]).toBeCloseTo(60.5, 12);
    expect(seg!.channels[1]![150]).toBe(63);
    expect(seg!.targets[0]![74]).toBe(0);
    expect(seg!.targets[0]![75]).toBe(1);
  });

  it('splits at gaps longer than maxGap instead of bridging them', () => {
    const t = [...range(50, (i) => i / 50), ...range(50, (i) => 10 + i / 50)];
    const segs = resampleSession(session(t, [t.map((x) => x)]), 50, 2);
    expect(segs.map((s) => [s.start, s.n])).toEqual([
      [0, 50],
      [10, 50],
    ]);
  });
});

describe('windows', () => {
  const seg = (n: number, labels: number[]): Segment => ({ subject: 's', session: 'a', start: 100, n, channels: [Float64Array.from(range(n, (i) => i)), Float64Array.from(range(n, () => 5))], targets: [Float64Array.from(labels)] });

  it('counts windows, pads a short segment in front, labels by majority or last', () => {
    expect(windowCount(10, 4, 2)).toBe(4);
    expect(windowCount(3, 4, 2)).toBe(1);
    expect(windowCount(1, 4, 2)).toBe(0);
    const norm = { mean: [0, 5], std: [1, 1] };
    const target = [{ name: 'y', kind: 'class' as const, classes: ['a', 'b'] }];
    const w = windowize([seg(6, [0, 0, 1, 1, 1, 1])], { window: 4, stride: 2, rate: 10 }, norm, target);
    expect(w.x.rows).toBe(2);
    expect(Array.from(w.x.data.subarray(0, 8))).toEqual([0, 0, 1, 0, 2, 0, 3, 0]);
    expect(Array.from(w.y[0]!)).toEqual([0, 1]);
    expect(w.info[1]).toEqual({ subject: 's', session: 'a', start: 100.2, end: 100.5, padded: 0 });
    const last = windowize([seg(6, [0, 0, 0, 0, 1, 1])], { window: 4, stride: 2, rate: 10, label: 'last' }, norm, target);
    expect(Array.from(last.y[0]!)).toEqual([0, 1]);
    const short = windowize([seg(3, [1, 1, 1])], { window: 4, stride: 2, rate: 10 }, norm, target);
    expect(Array.from(short.x.data)).toEqual([0, 0, 0, 0, 1, 0, 2, 0]);
    expect(short.info[0]!.padded).toBe(1);
  });

  it('averages value targets, normalises with training statistics and fills missing values with the mean', () => {
    const s = seg(4, [1, 2, 3, 6]);
    s.channels[0]![1] = NaN;
    const norm = fitNormaliser([s], 2);
    expect(norm.mean[1]).toBe(5);
    expect(norm.std[1]).toBe(1); // constant channel: left at zero, not divided by zero
    const w = windowize([s], { window: 4, stride: 4, rate: 10 }, norm, [{ name: 'e', kind: 'value' }]);
    expect(w.y[0]![0]).toBe(3);
    expect(w.filled).toBe(1);
    expect(w.x.data[2]).toBe(0);
  });
});

describe('filters and steps', () => {
  it('a causal low-pass damps a fast sine and keeps a slow one', () => {
    const rate = 50;
    const n = 500;
    const slow = session(range(n, (i) => i / rate), [range(n, (i) => Math.sin((2 * Math.PI * 1 * i) / rate))]);
    const fast = session(range(n, (i) => i / rate), [range(n, (i) => Math.sin((2 * Math.PI * 20 * i) / rate))]);
    const amp = (s: Session) => {
      const [seg] = segmentsOf([s], { rate, window: 10, stride: 10, maxGap: 1, filter: { kind: 'lowpass', hz: 5 } });
      return Math.max(...Array.from(seg!.channels[0]!.subarray(200)).map(Math.abs));
    };
    expect(amp(slow)).toBeGreaterThan(0.9);
    expect(amp(fast)).toBeLessThan(0.1);
  });

  it('a median filter removes a one-sample spike', () => {
    const s: Segment = { subject: 's', session: 'a', start: 0, n: 7, channels: [Float64Array.from([1, 1, 1, 99, 1, 1, 1])], targets: [] };
    filterSegment(s, { kind: 'median', size: 3 }, 50);
    expect(Math.max(...s.channels[0]!)).toBe(1);
  });

  it('reads windows in samples or with a unit, and filters, saying what is wrong', () => {
    const steps = (v: string | number) => {
      const l = readLength(v);
      return typeof l === 'string' ? l : lengthSteps(l, 50);
    };
    expect(steps('128')).toBe(128);
    expect(steps(128)).toBe(128);
    expect(steps('2.56s')).toBe(128);
    expect(steps('500ms')).toBe(25);
    expect(steps('2.5x')).toMatch(/expected a number of samples/);
    expect(steps('0')).toMatch(/from 1 to 100000/);
    expect(steps(' '.repeat(100) + '1')).toMatch(/expected a number of samples/);
    expect(readFilter('lowpass:15', 50)).toEqual({ kind: 'lowpass', hz: 15 });
    expect(readFilter('median:5')).toEqual({ kind: 'median', size: 5 });
    expect(readFilter('lowpass:30', 50)).toMatch(/below half the rate/);
    expect(readFilter('median:2.5')).toMatch(/whole number/);
    expect(readFilter('band:3')).toMatch(/expected lowpass/);
  });
});

describe('limits', () => {
  it('refuses, before allocating, a grid that samples hours apart at a high rate would make', () => {
    const s = session([0, 40_000], [[1, 2]]);
    const started = performance.now();
    expect(() => segmentsOf([s], { rate: 10_000, window: 10, stride: 10, maxGap: 50_000 })).toThrow(/would make 4\.00e\+8 values.*lower the rate or the gap limit/);
    expect(performance.now() - started).toBeLessThan(100);
  });

  it('a saved preparation may not bridge more than 100,000 steps or hold windows over a million values', () => {
    const prep = { version: 1, columns: { subject: 's', time: 't' }, timeUnit: 'ms', channels: ['x'], targets: [], mean: [0], std: [1], rate: 10_000, window: 10, stride: 1, maxGap: 86_400 };
    expect(() => validateSequencePrep(prep, 'm')).toThrow(/bridges 864000000 steps/);
    expect(() => validateSequencePrep({ ...prep, maxGap: 1, window: 100_000, channels: Array.from({ length: 11 }, (_, i) => `c${i}`), mean: Array(11).fill(0), std: Array(11).fill(1) }, 'm')).toThrow(/1100000 values/);
    expect(validateSequencePrep({ ...prep, maxGap: 2 }, 'm').rate).toBe(10_000);
  });
});
