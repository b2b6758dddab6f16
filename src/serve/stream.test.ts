import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix } from '../core/index.js';
import { SEQUENCE_PREP_VERSION, segmentsOf, windowize, type ChannelFilter, type SequencePrep, type Session } from '../sequence/index.js';
import { predictStreamEvents, STREAM_MAX_STEPS_PER_SAMPLE, STREAM_MAX_VALUES_PER_SLICE, STREAM_MAX_WINDOWS_PER_SLICE, StreamWindows, type StreamEvent, type StreamWindow } from './stream.js';
import type { ServedSequence } from './types.js';

const CHANNELS = ['ax', 'ay', 'hr'];

function prep(over: Partial<SequencePrep> = {}): SequencePrep {
  return {
    version: SEQUENCE_PREP_VERSION,
    columns: { subject: 'subject', session: 'session', time: 'time' },
    timeUnit: 's',
    channels: CHANNELS,
    targets: [{ name: 'activity', kind: 'class', classes: ['a', 'b'] }],
    mean: [0.1, -0.2, 80],
    std: [1.5, 0.7, 12],
    rate: 50,
    window: 64,
    stride: 16,
    maxGap: 0.5,
    ...over,
  };
}

interface Recording {
  /** Seconds, as the batch reader makes them. */
  t: number[];
  /** What a client sends. */
  samples: Array<Record<string, unknown>>;
  /** Per channel, NaN where the sample has no value. */
  channels: number[][];
}

/**
 * A wearable-like recording: ~`hz` samples a second with clock jitter, a slow heart-rate channel
 * (one value a second), dropped values, and now and then a gap longer than `maxGap` (new segment)
 * or a pause shorter than it (interpolated, or left missing).
 */
function recording(seed: number, n: number, opts: { hz?: number; gaps?: boolean; gapRate?: number; time?: 's' | 'ms' | 'iso'; t0?: number } = {}): Recording {
  const rng = new Rng(seed);
  const hz = opts.hz ?? 52;
  const out: Recording = { t: [], samples: [], channels: CHANNELS.map(() => []) };
  let raw = opts.t0 ?? (opts.time === 'iso' ? 1_700_000_000_000 : opts.time === 'ms' ? 0 : 12.5);
  let nextHr = raw;
  for (let i = 0; i < n; i++) {
    const step = opts.time === 'iso' || opts.time === 'ms' ? Math.max(1, Math.round((1000 / hz) * (0.7 + 0.6 * rng.next()))) : (1 / hz) * (0.7 + 0.6 * rng.next());
    const scale = opts.time === 'iso' || opts.time === 'ms' ? 1000 : 1;
    let dt = step;
    if (opts.gaps !== false) {
      const r = rng.next();
      if (r < (opts.gapRate ?? 0.004)) dt += scale * (0.6 + 3 * rng.next()); // a new segment
      else if (r < 0.012) dt += scale * 0.45 * rng.next(); // a pause within maxGap
    }
    if (i > 0) raw += scale === 1000 ? Math.round(dt) : dt;
    const t = opts.time === 'iso' ? raw / 1000 : opts.time === 'ms' ? raw * 1e-3 : raw;
    const ax = Math.sin(i / 7) + 0.1 * rng.next();
    const ay = rng.next() < 0.03 ? NaN : Math.cos(i / 11) - 0.3;
    const hr = raw >= nextHr ? 70 + 20 * rng.next() : NaN;
    if (hr === hr) nextHr = raw + scale;
    const sample: Record<string, unknown> = { t: opts.time === 'iso' ? new Date(raw).toISOString() : raw, ax };
    if (ay === ay) sample['ay'] = ay;
    else if (rng.next() < 0.5) sample['ay'] = null;
    if (hr === hr) sample['hr'] = hr;
    out.t.push(t);
    out.samples.push(sample);
    out.channels[0]!.push(ax);
    out.channels[1]!.push(ay);
    out.channels[2]!.push(hr);
  }
  return out;
}

function batch(rec: Recording, p: SequencePrep) {
  const session: Session = { subject: 'x', session: '', t: Float64Array.from(rec.t), channels: rec.channels.map((c) => Float64Array.from(c)), targets: [], line: 1 };
  return windowize(segmentsOf([session], p), p, p, []);
}

/** Feeds samples in random chunk sizes, taking what completed after each chunk. */
function streamed(rec: Recording, p: SequencePrep, seed: number): { windows: StreamWindow[]; warnings: string[]; maxHeld: number } {
  const rng = new Rng(seed);
  const s = new StreamWindows(p);
  const events: StreamEvent[] = [];
  let maxHeld = 0;
  let i = 0;
  while (i < rec.samples.length) {
    const k = 1 + rng.int(rng.next() < 0.3 ? 3 : 200);
    for (const sample of rec.samples.slice(i, i + k)) {
      s.push(sample);
      maxHeld = Math.max(maxHeld, s.held);
      drain(s, events);
    }
    i += k;
    events.push(...s.take());
  }
  s.end();
  drain(s, events);
  events.push(...s.take());
  return { windows: events.flatMap((e) => ('window' in e ? [e.window] : [])), warnings: events.flatMap((e) => ('warning' in e ? [e.warning] : [])), maxHeld };
}

/** Works through what a push or end left for later slices, as the HTTP and MQTT callers do. */
function drain(s: StreamWindows, events: StreamEvent[]): void {
  while (s.busy) {
    events.push(...s.take());
    s.more();
  }
}

function expectSame(rec: Recording, p: SequencePrep, seed: number) {
  const b = batch(rec, p);
  const { windows, maxHeld } = streamed(rec, p, seed);
  expect(windows.length).toBe(b.x.rows);
  expect(b.x.rows).toBeGreaterThan(5);
  let worst = 0;
  for (let r = 0; r < b.x.rows; r++) {
    const w = windows[r]!;
    expect(w.index).toBe(r);
    expect(w.start).toBe(b.info[r]!.start);
    expect(w.end).toBe(b.info[r]!.end);
    expect(w.padded).toBe(b.info[r]!.padded);
    for (let j = 0; j < b.x.cols; j++) worst = Math.max(worst, Math.abs(w.x[j]! - b.x.data[r * b.x.cols + j]!));
  }
  expect(worst).toBeLessThan(1e-12);
  expect(windows.reduce((sum, w) => sum + w.filled, 0)).toBe(b.filled);
  return { windows, maxHeld };
}

describe('StreamWindows gives exactly the batch windows', () => {
  it('without a filter, on 5,000 jittered samples with gaps, missing values and a slow channel', () => {
    const rec = recording(1, 5000);
    expectSame(rec, prep(), 11);
    expectSame(rec, prep(), 12);
  });

  it('with a low-pass filter', () => {
    expectSame(recording(2, 4000), prep({ filter: { kind: 'lowpass', hz: 5 } }), 21);
  });

  it('with a median filter', () => {
    for (const size of [1, 4, 5]) expectSame(recording(3, 3000), prep({ filter: { kind: 'median', size } as ChannelFilter }), 30 + size);
  });

  it('with short segments (zero-padded windows), stride larger than the window, and a long maxGap', () => {
    const rec = recording(4, 4000, { hz: 20, gapRate: 0.03 });
    const { windows } = expectSame(rec, prep({ window: 40, stride: 50, maxGap: 0.5 }), 41);
    expect(windows.some((w) => w.padded > 0)).toBe(true);
    expectSame(recording(5, 4000, { hz: 80 }), prep({ window: 32, stride: 8, maxGap: 2, rate: 25 }), 42);
  });

  it('with times in milliseconds and in ISO 8601', () => {
    expectSame(recording(6, 3000, { time: 'ms' }), prep({ timeUnit: 'ms' }), 61);
    const iso = recording(7, 3000, { time: 'iso' });
    const { windows } = expectSame(iso, prep({ timeUnit: 'iso' }), 71);
    expect(windows[0]!.startTime).toMatch(/^2023-11-14T\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('at epoch-second times, where the grid arithmetic rounds', () => {
    expectSame(recording(8, 3000, { t0: 1_700_000_000.123 }), prep(), 81);
  });

  it('samples far denser than the rate: holds a bounded buffer', () => {
    const p = prep();
    // The 1 Hz channel holds the others back by up to maxGap (its next value may be interpolated
    // with): at most two samples per pending step and channel, however dense the samples.
    const bound = 2 * CHANNELS.length * (p.maxGap * p.rate + 2);
    const { maxHeld } = expectSame(recording(9, 20_000, { hz: 1000, gaps: false }), p, 91);
    expect(maxHeld).toBeLessThanOrEqual(bound);
    const { maxHeld: longer } = expectSame(recording(9, 60_000, { hz: 2000, gaps: false }), p, 92);
    expect(longer).toBeLessThanOrEqual(bound);
  });

  it('emits each window as soon as the first sample after its last step has arrived', () => {
    const p = prep({ window: 10, stride: 5 });
    const s = new StreamWindows(p);
    const got: number[] = [];
    for (let i = 0; i < 40; i++) {
      s.push({ t: i * 0.02, ax: i, ay: -i, hr: 70 });
      for (const e of s.take()) if ('window' in e) got.push(i);
    }
    // Window k ends at step 9 + 5k, on sample 9 + 5k; a sample up to 1e-9 s later would still be
    // that step's (the batch's tolerance), so the step is final with the next sample.
    expect(got).toEqual([10, 15, 20, 25, 30, 35]);
    s.end();
    expect(s.take().filter((e) => 'window' in e)).toHaveLength(1);
  });
});

describe('StreamWindows refuses bad samples and goes on', () => {
  it('names the problem, never the value, and leaves the state as it was', () => {
    const p = prep({ window: 8, stride: 4 });
    const good = recording(10, 400, { gaps: false });
    const s = new StreamWindows(p);
    const bad: unknown[] = [
      null,
      [1, 2],
      'text',
      { ax: 1 },
      { t: 'yesterday-ish', ax: 1 },
      { t: true, ax: 1 },
      { t: 1e9, ax: 'secret-4242' },
      { t: 1e9, ax: { v: 1 } },
      { t: 1e9, ax: true },
    ];
    const events: StreamEvent[] = [];
    for (const [i, sample] of good.samples.entries()) {
      s.push(sample);
      // A repeated time is dropped, as the batch reader drops it (the first is kept).
      if (i % 50 === 7) s.push({ ...sample, ax: 99 });
      if (i % 37 === 5) {
        for (const b of [...bad, { t: (good.samples[i]!['t'] as number) - 0.001, ax: 1 }, { t: String(good.samples[i]!['t']), ax: 1, ay: 'n/a-4242' }]) {
          let err: unknown;
          try {
            s.push(b);
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(MedfitError);
          expect((err as MedfitError).status).toBeLessThan(500);
          expect((err as MedfitError).message).not.toContain('4242');
          expect((err as MedfitError).message).not.toContain('yesterday');
        }
      }
      events.push(...s.take());
    }
    s.end();
    events.push(...s.take());
    const b = batch(good, p);
    const windows = events.flatMap((e) => ('window' in e ? [e.window] : []));
    const warnings = events.flatMap((e) => ('warning' in e ? [e.warning] : []));
    expect(warnings[0]).toMatch(/repeated the previous sample's time and was dropped/);
    expect(warnings).toContainEqual(expect.stringMatching(/^8 sample\(s\) repeated/));
    expect(windows.length).toBe(b.x.rows);
    windows.forEach((w, r) => expect(Array.from(w.x)).toEqual(Array.from(b.x.data.subarray(r * b.x.cols, (r + 1) * b.x.cols))));
  });

  it('warns once about unknown keys and once about channels with no value; subject, session, targets and time pass quietly', () => {
    const s = new StreamWindows(prep({ window: 4, stride: 4 }));
    for (let i = 0; i < 20; i++) s.push({ t: i / 50, time: i / 50, subject: 's1', session: 'a', activity: 'a', ax: 1, ay: 2, extra: 3, ['k'.repeat(150)]: 1, ay2: '1.5' });
    s.end();
    const warnings = s.take().flatMap((e) => ('warning' in e ? [e.warning] : []));
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/"extra", "k{97}\.\.\.", "ay2"/);
    expect(warnings[0]).not.toMatch(/subject|session|activity|"t"|"time"/);
    expect(warnings[1]).toMatch(/channel\(s\) hr: filled/);
    expect(warnings[2]).toMatch(/20 channel value\(s\) had no sample/);
  });
});

describe('predictStreamEvents', () => {
  const fake = (width: number, over: Partial<ServedSequence> = {}): ServedSequence & { calls: number[] } => {
    const calls: number[] = [];
    return {
      prep: prep({ window: 4, stride: 2 }),
      calls,
      async predictWindows(x: Matrix) {
        calls.push(x.rows);
        const out = new Float64Array(x.rows * width);
        for (let r = 0; r < x.rows; r++) {
          if (width === 2) {
            out[r * 2] = 0.25;
            out[r * 2 + 1] = 0.75;
          } else for (let j = 0; j < width; j++) out[r * width + j] = x.data[r * x.cols]! + j;
        }
        return out;
      },
      ...over,
    };
  };

  function events(model: ServedSequence): StreamEvent[] {
    const s = new StreamWindows(model.prep);
    for (let i = 0; i < 12; i++) s.push({ t: 1_700_000_000 + i / 50, ax: i, ay: 0, hr: 70, junk: 1 });
    return s.take();
  }

  it('runs one model call per batch and keeps warnings in place', async () => {
    const m = fake(2, { classes: ['rest', 'walk'] });
    const lines = await predictStreamEvents(m, events(m));
    expect(m.calls).toEqual([5]);
    expect(lines[0]).toEqual({ warning: expect.stringMatching(/"junk"/) });
    expect(lines[1]).toEqual({ window: 0, start: 1_700_000_000, end: 1_700_000_000.06, label: 'walk', probabilities: { rest: 0.25, walk: 0.75 } });
    expect(lines).toHaveLength(6);
  });

  it('values and multi-output values', async () => {
    const one = await predictStreamEvents(fake(1), events(fake(1)));
    expect(one[1]).toMatchObject({ window: 0, value: expect.any(Number) });
    const many = fake(2, { outputs: ['energy', 'hr'] });
    const two = await predictStreamEvents(many, events(many));
    expect(two[2]).toMatchObject({ window: 1, values: { energy: expect.any(Number), hr: expect.any(Number) } });
  });

  it('refuses a model that answers the wrong width as our failure', async () => {
    const m = fake(3, { classes: ['rest', 'walk'] });
    await expect(predictStreamEvents(m, events(m))).rejects.toMatchObject({ code: 'MEDFIT_ERR_INTERNAL' });
  });
});

describe('StreamWindows bounds the work of one sample', () => {
  /** A model asking for much: 10 kHz, gaps up to a day bridged (no model may be trained so, but a stream must hold). */
  const wide = prep({ rate: 10_000, maxGap: 86_400, window: 10, stride: 1 });
  const start = (p: SequencePrep) => {
    const s = new StreamWindows(p);
    for (let i = 0; i < 50; i++) s.push({ t: i / 10_000, ax: i, ay: -i, hr: 70 });
    return s;
  };

  it(`refuses, fast and changing nothing, a sample more than ${STREAM_MAX_STEPS_PER_SAMPLE} grid steps after the previous one`, () => {
    const s = start(wide);
    const twin = start(wide);
    const before = s.take();
    expect(JSON.stringify(before)).toBe(JSON.stringify(twin.take()));
    for (const t of [100, 86_000, 10.0049 + STREAM_MAX_STEPS_PER_SAMPLE / 10_000]) {
      const at = performance.now();
      let err: unknown;
      try {
        s.push({ t, ax: 1, ay: 2, hr: 70 });
      } catch (e) {
        err = e;
      }
      expect(performance.now() - at).toBeLessThan(50);
      expect(err).toBeInstanceOf(MedfitError);
      expect((err as MedfitError).status).toBeGreaterThanOrEqual(400);
      expect((err as MedfitError).status).toBeLessThan(500);
      expect((err as MedfitError).message).toMatch(new RegExp(`more than ${STREAM_MAX_STEPS_PER_SAMPLE} steps of the model's 10000 Hz grid`));
      expect(s.busy).toBe(false);
      expect(s.take()).toEqual([]);
    }
    // Nothing changed: the same samples give the same windows as on a stream that never saw them.
    const more = Array.from({ length: 40 }, (_, i) => ({ t: (50 + i) / 10_000, ax: i, ay: 1, hr: 71 }));
    for (const m of more) {
      s.push(m);
      twin.push(m);
    }
    s.end();
    twin.end();
    const a = s.take();
    expect(a.filter((e) => 'window' in e).length).toBeGreaterThan(30);
    expect(JSON.stringify(a)).toBe(JSON.stringify(twin.take()));
  });

  it('works through a sample of many steps in bounded slices, exactly as the batch does', () => {
    // 100,000 steps in one gap (the most a model may bridge), one window per step.
    const p = prep({ rate: 10_000, maxGap: 10, window: 10, stride: 1 });
    const rec: Recording = { t: [], samples: [], channels: CHANNELS.map(() => []) };
    const add = (t: number, ax: number) => {
      rec.t.push(t);
      rec.samples.push({ t, ax, ay: -ax, hr: 70 });
      rec.channels[0]!.push(ax);
      rec.channels[1]!.push(-ax);
      rec.channels[2]!.push(70);
    };
    for (let i = 0; i < 30; i++) add(i / 10_000, i);
    add(29 / 10_000 + 10, 5);
    for (let i = 1; i < 30; i++) add(29 / 10_000 + 10 + i / 10_000, i);
    const s = new StreamWindows(p);
    const events: StreamEvent[] = [];
    let slices = 0;
    let most = 0;
    const at = performance.now();
    for (const sample of rec.samples) {
      events.push(...s.take());
      const t0 = performance.now();
      s.push(sample);
      expect(performance.now() - t0).toBeLessThan(500);
      while (s.busy) {
        const got = s.take();
        most = Math.max(most, got.filter((e) => 'window' in e).length);
        events.push(...got);
        slices++;
        // A sample while the last one's windows are being cut is our bug, refused as such.
        expect(() => s.push({ t: 99, ax: 1 })).toThrow(expect.objectContaining({ code: 'MEDFIT_ERR_INTERNAL' }));
        const t1 = performance.now();
        s.more();
        expect(performance.now() - t1).toBeLessThan(500);
      }
    }
    events.push(...s.take());
    s.end();
    expect(s.busy).toBe(false);
    events.push(...s.take());
    expect(slices).toBeGreaterThanOrEqual(Math.floor(100_000 / STREAM_MAX_WINDOWS_PER_SLICE));
    expect(most).toBeLessThanOrEqual(STREAM_MAX_WINDOWS_PER_SLICE);
    const windows = events.flatMap((e) => ('window' in e ? [e.window] : []));
    const b = batch(rec, p);
    expect(windows.length).toBe(b.x.rows);
    expect(b.x.rows).toBeGreaterThan(100_000);
    let worst = 0;
    for (let r = 0; r < b.x.rows; r++) {
      expect(windows[r]!.start).toBe(b.info[r]!.start);
      for (let j = 0; j < b.x.cols; j++) worst = Math.max(worst, Math.abs(windows[r]!.x[j]! - b.x.data[r * b.x.cols + j]!));
    }
    expect(worst).toBeLessThan(1e-12);
    expect(performance.now() - at).toBeLessThan(20_000);
  });

  it('closes a segment, and ends a stream, with many steps still waiting, in bounded slices', () => {
    // hr has one value at the start: each step waits for a sample far enough on (tB > maxGap),
    // so 40,000 steps are still open when the gap (and the end) comes.
    const p = prep({ rate: 10_000, maxGap: 10, window: 10, stride: 1 });
    const rec: Recording = { t: [], samples: [], channels: CHANNELS.map(() => []) };
    const add = (t: number, hr: number) => {
      rec.t.push(t);
      rec.samples.push(hr === hr ? { t, ax: t, ay: -t, hr } : { t, ax: t, ay: -t });
      rec.channels[0]!.push(t);
      rec.channels[1]!.push(-t);
      rec.channels[2]!.push(hr);
    };
    for (const t of [0, 1, 2, 3, 4]) add(t, t === 0 ? 70 : NaN);
    for (const t of [15, 16, 17, 18, 19]) add(t, t === 15 ? 80 : NaN);
    const s = new StreamWindows(p);
    const events: StreamEvent[] = [];
    const busyAfter: number[] = [];
    const drained = () => {
      let slices = 0;
      while (s.busy) {
        const got = s.take();
        expect(got.filter((e) => 'window' in e).length).toBeLessThanOrEqual(STREAM_MAX_WINDOWS_PER_SLICE);
        events.push(...got);
        s.more();
        slices++;
      }
      events.push(...s.take());
      return slices;
    };
    for (const sample of rec.samples) {
      s.push(sample);
      busyAfter.push(drained());
    }
    s.end();
    const atEnd = drained();
    expect(busyAfter[5]).toBeGreaterThanOrEqual(9);
    expect(atEnd).toBeGreaterThanOrEqual(9);
    const windows = events.flatMap((e) => ('window' in e ? [e.window] : []));
    const b = batch(rec, p);
    expect(windows.length).toBe(b.x.rows);
    let worst = 0;
    for (let r = 0; r < b.x.rows; r++) {
      expect(windows[r]!.start).toBe(b.info[r]!.start);
      for (let j = 0; j < b.x.cols; j++) worst = Math.max(worst, Math.abs(windows[r]!.x[j]! - b.x.data[r * b.x.cols + j]!));
    }
    expect(worst).toBeLessThan(1e-12);
    expect(() => s.push({ t: 30, ax: 1 })).toThrow(/the stream has ended/);
  });

  it('cuts large windows a few at a time, and allocates none before samples arrive', () => {
    // A window of 100,000 steps × 10 channels (8 MB a window), one a step.
    const channels = Array.from({ length: 10 }, (_, c) => `c${c}`);
    const big = prep({ channels, mean: channels.map(() => 0), std: channels.map(() => 1), rate: 10_000, maxGap: 10, window: 100_000, stride: 1 });
    const idle = process.memoryUsage().arrayBuffers;
    const many = Array.from({ length: 200 }, () => new StreamWindows(big));
    // 200 streams of 8 MB each would be 1.6 GB.
    expect(process.memoryUsage().arrayBuffers - idle).toBeLessThan(64 * 1024 * 1024);
    const s = many[0]!;
    const row = (t: number) => ({ t, ...Object.fromEntries(channels.map((c, i) => [c, i + t])) });
    const perWindow = 100_000 * 10;
    // Handed to the model one at a time (a 256-window batch would be 2 GB).
    expect(s.batchLimit).toBe(1);
    expect(new StreamWindows(prep()).batchLimit).toBe(Math.floor(STREAM_MAX_VALUES_PER_SLICE / (64 * 3)));
    let slowest = 0;
    const slice = (f: () => void) => {
      const at = performance.now();
      f();
      slowest = Math.max(slowest, performance.now() - at);
      const got = s.take().filter((e) => 'window' in e);
      expect(got.length).toBeLessThanOrEqual(Math.ceil(STREAM_MAX_VALUES_PER_SLICE / perWindow) + 1);
    };
    slice(() => s.push(row(0)));
    slice(() => s.push(row(9.99)));
    while (s.busy) slice(() => s.more());
    slice(() => s.push(row(19.98)));
    for (let k = 0; k < 8 && s.busy; k++) slice(() => s.more());
    expect(s.windowCount).toBeGreaterThan(3);
    expect(s.busy).toBe(true);
    // Generous: a cold JIT, a loaded machine.
    expect(slowest).toBeLessThan(1000);
  });

  it('refuses a median filter larger than training allows', () => {
    expect(() => new StreamWindows(prep({ filter: { kind: 'median', size: 1e9 } }))).toThrow(expect.objectContaining({ code: 'MEDFIT_ERR_BAD_DATA' }));
  });
});
