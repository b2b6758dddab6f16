import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix } from '../core/index.js';
import { SERIES_FEATURES, windowFeatureNames, windowFeatures, type WindowShape } from './features.js';

interface GoldenCase {
  name: string;
  shape: WindowShape;
  x: number[];
  names: string[];
  features: number[];
}
const golden = JSON.parse(readFileSync(new URL('../../test/fixtures/golden/window-features.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

const WEARABLE: WindowShape = { steps: 128, channels: 7, rate: 50, channelNames: ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'] };

function randomWindows(rows: number, shape: WindowShape, seed: number): Matrix {
  const rng = new Rng(seed);
  const width = shape.steps * shape.channels;
  const data = new Float64Array(rows * width);
  for (let i = 0; i < data.length; i++) data[i] = rng.next() * 2 - 1;
  return { rows, cols: width, data };
}

function feature(m: Matrix, names: string[], row: number, name: string): number {
  const j = names.indexOf(name);
  if (j < 0) throw new Error(`no feature ${name}`);
  return m.data[row * m.cols + j]!;
}

describe('windowFeatureNames', () => {
  it('names every series feature of the 7 channels, the two magnitudes and the 6 correlations', () => {
    const names = windowFeatureNames(WEARABLE);
    expect(SERIES_FEATURES.length).toBe(27);
    expect(names.length).toBe(9 * 27 + 6);
    expect(new Set(names).size).toBe(names.length);
    expect(names.slice(0, 3)).toEqual(['ax_mean', 'ax_std', 'ax_min']);
    for (const n of ['amag_dom_freq', 'gmag_ac_peak', 'hr_band_ge8', 'corr_ax_ay', 'corr_gy_gz']) expect(names).toContain(n);
    expect(names.some((n) => n.startsWith('hrmag') || n.startsWith('corr_hr'))).toBe(false);
  });

  it('finds accel_x-style triples, capital axes, and leaves incomplete triples alone', () => {
    const names = windowFeatureNames({ steps: 8, channels: 6, rate: 10, channelNames: ['accel_x', 'accel_y', 'accel_z', 'GX', 'GY', 'mx'] });
    expect(names).toContain('accel_mag_rms');
    expect(names).toContain('corr_accel_x_accel_z');
    expect(names.some((n) => n.startsWith('Gmag') || n.startsWith('mmag'))).toBe(false);
    expect(names.length).toBe(7 * 27 + 3);
  });

  it('refuses malformed shapes', () => {
    const bad: unknown[] = [
      { ...WEARABLE, steps: 0 },
      { ...WEARABLE, channels: 1.5 },
      { ...WEARABLE, rate: 0 },
      { ...WEARABLE, rate: NaN },
      { ...WEARABLE, channelNames: ['ax'] },
      { ...WEARABLE, channelNames: ['ax', 'ax', 'az', 'gx', 'gy', 'gz', 'hr'] },
      null,
    ];
    for (const s of bad) expect(() => windowFeatureNames(s as WindowShape)).toThrow(MedfitError);
  });
});

describe('windowFeatures', () => {
  for (const c of golden.cases) {
    it(`matches numpy to 1e-9 relative (${c.name})`, () => {
      const rows = c.x.length / (c.shape.steps * c.shape.channels);
      const x: Matrix = { rows, cols: c.shape.steps * c.shape.channels, data: Float64Array.from(c.x) };
      const names = windowFeatureNames(c.shape);
      expect(names).toEqual(c.names);
      const f = windowFeatures(x, c.shape);
      expect(f.rows).toBe(rows);
      expect(f.cols).toBe(names.length);
      const bad: string[] = [];
      for (let i = 0; i < f.data.length; i++) {
        const got = f.data[i]!;
        const want = c.features[i]!;
        // Relative 1e-9, with an absolute floor for values that are (numerically) zero.
        if (!(Math.abs(got - want) <= 1e-9 * Math.max(Math.abs(want), 1e-6)))
          bad.push(`row ${Math.floor(i / f.cols)} ${names[i % f.cols]}: ${got} vs ${want}`);
      }
      expect(bad).toEqual([]);
    });
  }

  it('gives a constant channel std 0 and correlations 0, never NaN', () => {
    const x = randomWindows(3, WEARABLE, 1);
    for (let r = 0; r < 3; r++)
      for (let s = 0; s < 128; s++) {
        x.data[r * 896 + s * 7 + 0] = 0.1; // ax constant (0.1 does not sum exactly)
        x.data[r * 896 + s * 7 + 6] = r === 2 ? 0 : 72.3; // hr constant
      }
    const names = windowFeatureNames(WEARABLE);
    const f = windowFeatures(x, WEARABLE);
    for (const v of f.data) expect(Number.isFinite(v)).toBe(true);
    for (let r = 0; r < 3; r++) {
      expect(feature(f, names, r, 'ax_std')).toBe(0);
      expect(feature(f, names, r, 'ax_mean')).toBe(0.1);
      expect(feature(f, names, r, 'ax_skew')).toBe(0);
      expect(feature(f, names, r, 'ax_kurt')).toBe(0);
      expect(feature(f, names, r, 'ax_spec_entropy')).toBe(0);
      expect(feature(f, names, r, 'ax_ac_peak')).toBe(0);
      expect(feature(f, names, r, 'corr_ax_ay')).toBe(0);
      expect(feature(f, names, r, 'corr_ax_az')).toBe(0);
      expect(feature(f, names, r, 'hr_std')).toBe(0);
      expect(Math.abs(feature(f, names, r, 'corr_ay_az'))).toBeGreaterThan(0);
    }
  });

  it('reads the same percentiles as a full sort, ties and all lengths included', () => {
    const rng = new Rng(11);
    const qs = [0.1, 0.25, 0.5, 0.75, 0.9];
    for (let steps = 1; steps <= 300; steps += steps < 40 ? 1 : 7) {
      const shape: WindowShape = { steps, channels: 1, rate: 20, channelNames: ['v'] };
      const x = randomWindows(3, shape, steps);
      // Row 1: heavy ties; row 2: sorted descending.
      for (let s = 0; s < steps; s++) x.data[steps + s] = rng.int(4);
      for (let s = 0; s < steps; s++) x.data[2 * steps + s] = steps - s;
      const f = windowFeatures(x, shape);
      for (let r = 0; r < 3; r++) {
        const sorted = x.data.slice(r * steps, (r + 1) * steps).sort();
        qs.forEach((q, i) => {
          const pos = q * (steps - 1);
          const lo = Math.floor(pos);
          const hi = Math.min(lo + 1, steps - 1);
          const want = pos === lo ? sorted[lo]! : sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
          expect(f.data[r * f.cols + 4 + i]).toBe(want);
        });
        expect(f.data[r * f.cols + 2]).toBe(sorted[0]);
        expect(f.data[r * f.cols + 3]).toBe(sorted[steps - 1]);
      }
    }
  });

  it('handles a single step and a two-step window without NaN', () => {
    for (const steps of [1, 2, 3]) {
      const shape: WindowShape = { steps, channels: 3, rate: 4, channelNames: ['ax', 'ay', 'az'] };
      const f = windowFeatures(randomWindows(2, shape, steps), shape);
      expect(f.cols).toBe(windowFeatureNames(shape).length);
      for (const v of f.data) expect(Number.isFinite(v)).toBe(true);
    }
  });

  it('finds the frequency and cadence of a sine', () => {
    const shape: WindowShape = { steps: 256, channels: 1, rate: 64, channelNames: ['v'] };
    const x: Matrix = { rows: 1, cols: 256, data: new Float64Array(256) };
    for (let s = 0; s < 256; s++) x.data[s] = Math.sin(2 * Math.PI * 2 * (s / 64));
    const names = windowFeatureNames(shape);
    const f = windowFeatures(x, shape);
    expect(feature(f, names, 0, 'v_dom_freq')).toBe(2);
    expect(feature(f, names, 0, 'v_ac_peak_lag')).toBeCloseTo(0.5, 10);
    expect(feature(f, names, 0, 'v_band_0p5_3')).toBeGreaterThan(0.99);
    // 8 periods: 16 sign changes of sin (sin(π·k) rounds to ±1e-16, each zero counted once).
    expect(feature(f, names, 0, 'v_mcr')).toBeCloseTo(16 / 255, 10);
  });

  it('refuses rows of the wrong width', () => {
    expect(() => windowFeatures({ rows: 1, cols: 10, data: new Float64Array(10) }, WEARABLE)).toThrow(/128 steps × 7 channels = 896/);
  });

  it('lets NaN through as NaN in the affected series only', () => {
    const x = randomWindows(1, WEARABLE, 3);
    x.data[5 * 7 + 6] = NaN; // hr at step 5
    const names = windowFeatureNames(WEARABLE);
    const f = windowFeatures(x, WEARABLE);
    expect(feature(f, names, 0, 'hr_mean')).toBeNaN();
    expect(feature(f, names, 0, 'hr_dom_freq')).toBeNaN();
    expect(Number.isFinite(feature(f, names, 0, 'ax_mean'))).toBe(true);
    expect(Number.isFinite(feature(f, names, 0, 'amag_spec_entropy'))).toBe(true);
  });

  it('is fast: windows of 128 steps × 7 channels', () => {
    const rows = 2000;
    const x = randomWindows(rows, WEARABLE, 9);
    windowFeatures({ rows: 200, cols: x.cols, data: x.data.subarray(0, 200 * x.cols) }, WEARABLE); // warm up
    const t0 = performance.now();
    const f = windowFeatures(x, WEARABLE);
    const seconds = (performance.now() - t0) / 1000;
    const perSecond = rows / seconds;
    console.log(`window features: ${Math.round(perSecond)} windows/s (128 steps × 7 channels, ${f.cols} features)`);
    // Only a guard against a gross regression (shared CI machines run many test files at once):
    // one idle core does several thousand windows a second.
    expect(perSecond).toBeGreaterThan(300);
  });
});
