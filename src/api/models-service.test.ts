/**
 * Raw sensor samples for a sequence model (`POST /v1/models/{name}/predict` with `samples`):
 * read into streams with pointers for every problem, bounded before allocating, and windowed
 * with the model's preparation. The bounded queue explained predictions go through, and the
 * explanation loop stopping when its client goes away.
 */
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix } from '../core/index.js';
import { explainAsync, getFamily } from '../models/index.js';
import { SEQUENCE_PREP_VERSION, windowCount, type SequencePrep } from '../sequence/index.js';
import type { ServedSequence } from '../serve/index.js';
import { predictSamples, readSamples } from './models-service.js';
import { WorkQueue } from './work-queue.js';

const prep = (over: Partial<SequencePrep> = {}): SequencePrep => ({
  version: SEQUENCE_PREP_VERSION,
  columns: { subject: 'subject', session: 'session', time: 't' },
  timeUnit: 'ms',
  channels: ['ax', 'ay'],
  targets: [{ name: 'activity', kind: 'class', classes: ['run', 'walk'] }],
  mean: [0, 1],
  std: [1, 2],
  rate: 10,
  window: 10,
  stride: 5,
  maxGap: 2,
  ...over,
});

/** `n` samples at `hz` from t0 (ms), channels ax and ay. */
const samples = (n: number, hz = 10, t0 = 1_700_000_000_000) => Array.from({ length: n }, (_, i) => ({ t: t0 + (i * 1000) / hz, ax: Math.sin(i), ay: 1 + Math.cos(i) }));

function problems(f: () => unknown): { status: number; pointers: string[]; message: string } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    const m = e as MedfitError;
    return { status: m.status, pointers: m.details.map((d) => d.pointer), message: m.message };
  }
  throw new Error('expected a refusal');
}

/** A model that answers [1 - mean(window), mean(window)] per window, and records what it was given. */
function fakeModel(p: SequencePrep): ServedSequence & { seen: Matrix[] } {
  const seen: Matrix[] = [];
  return {
    prep: p,
    classes: ['run', 'walk'],
    seen,
    predictWindows: async (x) => {
      seen.push(x);
      const out = new Float64Array(x.rows * 2);
      for (let r = 0; r < x.rows; r++) out[r * 2 + 1] = 0.25;
      for (let r = 0; r < x.rows; r++) out[r * 2] = 0.75;
      return out;
    },
  };
}

describe('readSamples', () => {
  it('reads a stream: channels by name, times in the model unit, warnings for missing and extra fields', () => {
    const r = readSamples(prep({ channels: ['ax', 'ay', 'gz'] }), { samples: samples(30).map((s) => ({ ...s, hr: 70, activity: 'run' })) }, 1e6);
    expect(r.sessions).toHaveLength(1);
    const s = r.sessions[0]!;
    expect(s.t[1]! - s.t[0]!).toBeCloseTo(0.1, 5);
    expect(Array.from(s.channels[2]!).every((v) => Number.isNaN(v))).toBe(true);
    expect(r.warnings.map((w) => w.code)).toEqual(['missing_channels', 'extra_channels']);
    expect(r.warnings[0]!.message).toMatch(/gz/);
    // The label column is the model's own: neither a channel nor an extra field.
    expect(r.warnings[1]!.message).toMatch(/hr/);
    expect(r.warnings[1]!.message).not.toMatch(/activity/);
  });

  it('groups samples into streams by their subject and session fields, else the body\'s', () => {
    const a = samples(20).map((s) => ({ ...s, subject: 'p1' }));
    const b = samples(20).map((s) => ({ ...s, subject: 'p2', session: 7 }));
    const r = readSamples(prep(), { samples: [...a, ...b], session: 'morning' }, 1e6);
    expect(r.sessions.map((s) => [s.subject, s.session])).toEqual([
      ['p1', 'morning'],
      ['p2', '7'],
    ]);
    expect(r.named).toEqual({ subject: true, session: true });
  });

  it('points at every bad value, never quoting it', () => {
    const bad: unknown[] = samples(30);
    bad[3] = { ...(bad[3] as object), ax: 'oops-4242' };
    bad[4] = { ...(bad[4] as object), ay: { nested: 1 } };
    bad[6] = { ax: 1 };
    bad[8] = 'not an object';
    bad[12] = { ...(bad[12] as object), t: (bad[2] as { t: number }).t };
    bad[14] = { ...(bad[14] as object), 'a/b': 'ignored', ax: '1.5', ay: 'NA' };
    const p = problems(() => readSamples(prep(), { samples: bad }, 1e6));
    expect(p.status).toBe(422);
    expect(p.pointers).toEqual(['/samples/3/ax', '/samples/4/ay', '/samples/6/t', '/samples/8', '/samples/12/t']);
    expect(p.message).not.toContain('4242');
  });

  it('reads ISO times for any model, numbers only for numeric ones, and not both in one stream', () => {
    const iso = samples(20).map((s) => ({ ...s, t: new Date(s.t).toISOString() }));
    const r = readSamples(prep(), { samples: iso }, 1e6);
    expect(r.sessions[0]!.t[0]).toBeCloseTo(1_700_000_000, 3);
    expect(r.iso.get(r.sessions[0]!)).toBe(true);
    expect(problems(() => readSamples(prep({ timeUnit: 'iso' }), { samples: samples(5) }, 1e6)).pointers).toEqual(['/samples/0/t', '/samples/1/t', '/samples/2/t', '/samples/3/t', '/samples/4/t']);
    const mixed = [...iso.slice(0, 5), ...samples(10).slice(5)];
    expect(problems(() => readSamples(prep(), { samples: mixed }, 1e6)).pointers).toEqual(['/samples/5/t', '/samples/6/t', '/samples/7/t', '/samples/8/t', '/samples/9/t']);
    // The model's time column by its own name, or as `t`.
    const named = readSamples(prep({ columns: { subject: 'subject', time: 'timestamp' } }), { samples: samples(5).map(({ t, ...rest }) => ({ timestamp: t, ...rest })) }, 1e6);
    expect(named.sessions[0]!.t).toHaveLength(5);
    expect(named.warnings).toEqual([]);
  });

  it('drops repeated times with a warning, refuses samples without any channel of the model, bounds the request', () => {
    const dup = samples(10);
    dup.splice(5, 0, { ...dup[4]! });
    const r = readSamples(prep(), { samples: dup }, 1e6);
    expect(r.sessions[0]!.t).toHaveLength(10);
    expect(r.warnings[0]!.code).toBe('duplicate_timestamps');
    expect(problems(() => readSamples(prep(), { samples: samples(5).map((s) => ({ t: s.t, gx: 1 })) }, 1e6)).pointers).toEqual(['/samples']);
    expect(problems(() => readSamples(prep(), { samples: samples(100) }, 250)).status).toBe(413);
  });
});

describe('predictSamples', () => {
  it('gives one prediction per window, with its start and end in the samples\' own time format', async () => {
    const m = fakeModel(prep());
    const data = samples(40);
    const r = await predictSamples(m, { samples: data }, 1e6);
    expect(r.windows).toBe(windowCount(40, 10, 5));
    expect(r.predictions).toHaveLength(r.windows);
    expect(r.predictions[0]).toEqual({ start: data[0]!.t, end: data[9]!.t, label: 'run', probabilities: { run: 0.75, walk: 0.25 } });
    expect(r.predictions[1]!.start).toBe(data[5]!.t);
    // Normalised with the model's mean and std: ay (mean 1, std 2) of sample 0 is (1 + cos 0 - 1) / 2.
    expect(m.seen[0]!.data[1]).toBeCloseTo(0.5, 12);
    const iso = await predictSamples(m, { samples: data.map((s) => ({ ...s, t: new Date(s.t).toISOString() })), subject: 'p1' }, 1e6);
    expect(iso.predictions[0]).toMatchObject({ subject: 'p1', start: new Date(data[0]!.t).toISOString() });
  });

  it('resamples another rate, with a warning; refuses data shorter than half a window and spans too long to hold', async () => {
    const m = fakeModel(prep());
    const fast = await predictSamples(m, { samples: samples(160, 40) }, 1e6);
    expect(fast.windows).toBe(windowCount(40, 10, 5));
    expect(fast.warnings.map((w) => w.message).join(' ')).toMatch(/about 40 Hz: resampled to the model's 10 Hz/);
    await expect(predictSamples(m, { samples: samples(4) }, 1e6)).rejects.toMatchObject({ status: 422, details: [{ pointer: '/samples' }] });
    // Two samples 1.9 s apart at 10 Hz are 20 steps; a 1 Hz stream with a long allowed gap can span far more.
    const sparse = Array.from({ length: 50 }, (_, i) => ({ t: i * 3_600_000, ax: 1, ay: 1 }));
    await expect(predictSamples(fakeModel(prep({ maxGap: 86_400 })), { samples: sparse }, 1e6)).rejects.toMatchObject({ status: 413 });
  });
});

describe('WorkQueue (explained predictions)', () => {
  /** Work that runs until `finish()` is called; `started` tells whether it began. */
  function job() {
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const j = { started: false, finish: () => finish(), work: async () => ((j.started = true), await done, 'ok') };
    return j;
  }
  const settle = () => new Promise((r) => setImmediate(r));

  it('runs `concurrency` at once, first come first served, and refuses beyond the queue with 503 and Retry-After', async () => {
    const q = new WorkQueue({ concurrency: 1, queue: 2, refusal: 'busy' });
    const [a, b, c] = [job(), job(), job()];
    const pa = q.run(a.work);
    const pb = q.run(b.work);
    const pc = q.run(c.work);
    await settle();
    expect([a.started, b.started, c.started]).toEqual([true, false, false]);
    expect(q.load()).toMatchObject({ running: 1, waiting: 2 });
    await expect(q.run(job().work)).rejects.toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE', status: 503, retryAfter: expect.any(Number) });
    a.finish();
    await expect(pa).resolves.toBe('ok');
    await settle();
    // The finished one's place goes to the first waiting, not to a newcomer.
    const d = job();
    const pd = q.run(d.work);
    await settle();
    expect([b.started, c.started, d.started]).toEqual([true, false, false]);
    expect(q.load()).toMatchObject({ running: 1, waiting: 2 });
    b.finish();
    c.finish();
    d.finish();
    await expect(Promise.all([pb, pc, pd])).resolves.toEqual(['ok', 'ok', 'ok']);
    expect(q.load()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('a waiting caller whose signal aborts leaves the queue (409, cancelled); a failing run frees its place', async () => {
    const q = new WorkQueue({ concurrency: 1, queue: 1, refusal: 'busy' });
    const a = job();
    const pa = q.run(a.work);
    const gone = new AbortController();
    const b = job();
    const pb = q.run(b.work, gone.signal);
    await settle();
    expect(q.load()).toMatchObject({ running: 1, waiting: 1 });
    gone.abort();
    await expect(pb).rejects.toMatchObject({ code: 'MEDFIT_ERR_CANCELLED' });
    expect(q.load()).toMatchObject({ running: 1, waiting: 0 });
    expect(b.started).toBe(false);
    // Already aborted: refused before queueing.
    await expect(q.run(job().work, gone.signal)).rejects.toMatchObject({ code: 'MEDFIT_ERR_CANCELLED' });
    a.finish();
    await pa;
    await expect(q.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(q.load()).toMatchObject({ running: 0, waiting: 0 });
  });
});

describe('explainAsync with a signal', () => {
  it('stops at its next slice once the signal aborts, with MEDFIT_ERR_CANCELLED', async () => {
    const rng = new Rng(3);
    const dims = [12, 256, 256, 2];
    const layers = dims.slice(0, -1).map((inDim, i) => ({
      inDim,
      outDim: dims[i + 1]!,
      activation: (i === dims.length - 2 ? 'softmax' : 'relu') as 'relu' | 'softmax',
      kernel: Array.from({ length: inDim * dims[i + 1]! }, () => rng.normal() * Math.sqrt(2 / inDim)),
      bias: Array.from({ length: dims[i + 1]! }, () => 0.1 * rng.normal()),
    }));
    const model = getFamily('mlp').load({ family: 'mlp', task: 'binary', nClasses: 2, nFeatures: 12, params: {}, weights: { layers } });
    // Many rows: minutes of work if it ran to its end.
    const x = { rows: 200, cols: 12, data: Float64Array.from({ length: 2400 }, () => rng.normal()) };
    const gone = new AbortController();
    let slices = 0;
    const tick = () => {
      slices++;
      if (slices === 3) gone.abort();
      if (!gone.signal.aborted) setImmediate(tick);
    };
    setImmediate(tick);
    const t0 = performance.now();
    await expect(explainAsync(model, x, { reference: new Float64Array(12), sliceMs: 5, signal: gone.signal })).rejects.toMatchObject({ code: 'MEDFIT_ERR_CANCELLED' });
    // A few slices, not 200 rows (each row alone is tens of slices).
    expect(performance.now() - t0).toBeLessThan(5000);
    await expect(explainAsync(model, x, { reference: new Float64Array(12), signal: gone.signal })).rejects.toMatchObject({ code: 'MEDFIT_ERR_CANCELLED' });
  });
});
