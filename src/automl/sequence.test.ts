import { afterEach, describe, expect, it, vi } from 'vitest';
import { MedfitError, Rng, type Cell } from '../core/index.js';
import { tableFromRows } from '../data/index.js';
import { SEQUENCE_FAMILIES, type TrainData } from '../models/index.js';
import { readSessions } from '../sequence/index.js';
import { RELIABILITY_MIN_BIN_ROWS } from '../eval/index.js';
import { sensorGroups, trainSequence } from './sequence.js';

/** Subjects × activities of 25 Hz sines: the class sets the frequency, the subject the amplitude. */
function streams(subjects: number, seconds = 8, seed = 1) {
  const rng = new Rng(seed);
  const rows: Cell[][] = [];
  const freq = { slow: 1, mid: 3, fast: 6 } as const;
  for (let s = 0; s < subjects; s++) {
    const amp = 1 + 0.3 * rng.next();
    let t = 1_767_225_600_000 + s * 3_600_000;
    for (const [activity, f] of Object.entries(freq)) {
      for (let i = 0; i < seconds * 25; i++, t += 40) {
        const x = amp * Math.sin((2 * Math.PI * f * i) / 25) + 0.2 * rng.normal();
        rows.push([`p${s}`, `p${s}-a`, t, x, 0.5 * x + 0.1 * rng.normal(), activity, f * amp + 0.1 * rng.normal(), f * 2 + 0.1 * rng.normal()]);
      }
    }
  }
  return tableFromRows(['subject', 'session', 't', 'ax', 'ay', 'activity', 'energy', 'load'], rows, { source: 'streams.csv' });
}

const opts = { rate: 25, window: 50, stride: 25, cv: 3, seed: 0, model: 'window-gbdt' as const, params: { 'window-gbdt': { trees: '40' } } };

afterEach(() => vi.restoreAllMocks());

/** Records what window-gbdt is trained on (each fold's and the final fit's data), training as usual. */
function recordTraining(): TrainData[] {
  const fam = SEQUENCE_FAMILIES['window-gbdt']!;
  const seen: TrainData[] = [];
  const train = fam.train.bind(fam);
  vi.spyOn(fam, 'train').mockImplementation(async (d, p, c) => {
    seen.push(d);
    return train(d, p, c);
  });
  return seen;
}

describe('trainSequence', () => {
  it('classifies activities leaving subjects out: each fold trains on the other subjects only', async () => {
    const seen = recordTraining();
    const data = readSessions(streams(6), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax', 'ay'] });
    const r = await trainSequence(data, opts);
    expect(r.task).toBe('multiclass');
    expect(r.cv.folds).toBe(3);
    expect(r.cv.metrics['accuracy']!.mean).toBeGreaterThan(0.9);
    // Three folds of 4 training subjects, then the final model on all 6.
    expect(seen.map((d) => new Set(d.groups).size)).toEqual([4, 4, 4, 6]);
    expect(seen[0]!.sequence).toEqual({ steps: 50, channels: 2, rate: 25, channelNames: ['ax', 'ay'] });
    expect(r.prep).toMatchObject({ version: 1, channels: ['ax', 'ay'], rate: 25, window: 50, stride: 25, timeUnit: 'ms', columns: { subject: 'subject', session: 'session', time: 't' } });
    expect(r.rows).toMatchObject({ subjects: 6, sessions: 6, total: 6 * 3 * 200 });
    expect('confusion' in r.report && r.report.confusion.length).toBe(3);
  });

  it('scores a separate test file with the model refitted on every training subject', async () => {
    const data = readSessions(streams(6), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax', 'ay'] });
    const test = readSessions(streams(3, 8, 99), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax', 'ay'] }, { knownTargets: data.targets });
    // Parameters for a family it does not try are named, not dropped silently.
    const r = await trainSequence(data, { ...opts, test, params: { ...opts.params, lstm: { epochs: 2 } } });
    expect(r.warnings).toContainEqual(expect.objectContaining({ code: 'params_unused', message: expect.stringMatching(/given for lstm were not used.*\(window-gbdt\)/) }));
    expect(r.test!.rows).toBe(3 * 23); // one session of 600 samples each: (600 − 50) / 25 + 1 windows
    expect(r.test!.metrics['accuracy']).toBeGreaterThan(0.9);
  });

  it('regression on the window mean of a value target', async () => {
    const data = readSessions(streams(6), { subject: 'subject', session: 'session', time: 't', targets: ['energy'], channels: ['ax', 'ay'] });
    const r = await trainSequence(data, opts);
    expect(r.task).toBe('regression');
    expect(r.selection).toBe('r2');
    expect(r.cv.metrics['r2']!.mean).toBeGreaterThan(0.8);
    // Predicted-versus-actual from the leave-subjects-out predictions: every window once.
    const [plot] = r.report.regression!;
    expect(plot!.output).toBe('energy');
    expect(plot!.counts.reduce((a, b) => a + b, 0)).toBe(r.rows.windows);
    expect(r.report.reliability).toBeUndefined();
    expect(r.report.importance).toBeUndefined();
  });

  it('keeps the reliability bins of a binary target, from its leave-subjects-out probabilities', async () => {
    const t = streams(6);
    const keep = Array.from({ length: t.rowCount }, (_, r) => r).filter((r) => t.data[5]!.text(r) !== 'fast');
    const data = readSessions(tableFromRows(t.columns, keep.map((r) => t.data.map((c) => c.cell(r))), { source: 'two.csv' }), {
      subject: 'subject',
      session: 'session',
      time: 't',
      targets: ['activity'],
      channels: ['ax', 'ay'],
    });
    const r = await trainSequence(data, opts);
    expect(r.task).toBe('binary');
    const bins = r.report.reliability!;
    // Bins of fewer than RELIABILITY_MIN_BIN_ROWS windows are not stored (they would be a window or two).
    expect(bins.reduce((a, b) => a + b.count, 0)).toBeLessThanOrEqual(r.rows.windows);
    expect(bins.reduce((a, b) => a + b.count, 0)).toBeGreaterThan(r.rows.windows / 2);
    for (const b of bins) expect(b.count).toBeGreaterThanOrEqual(RELIABILITY_MIN_BIN_ROWS);
    for (const b of bins) expect(b.meanPredicted).toBeGreaterThanOrEqual(b.lower);
    expect(r.report.regression).toBeUndefined();
  });

  it('groups axes into sensors, and sensor dropout adds training windows with one sensor at the mean', async () => {
    expect(sensorGroups(['ax', 'ay', 'az', 'gyro_x', 'gyro_y', 'gyro_z', 'hr', 'x'])).toEqual([[0, 1, 2], [3, 4, 5], [6], [7]]);
    const seen = recordTraining();
    const data = readSessions(streams(6), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax', 'ay'] });
    const plain = await trainSequence(data, opts);
    const rows = seen.at(-1)!.x.rows;
    seen.length = 0;
    // ax and ay are one sensor here: nothing to drop.
    await trainSequence(data, { ...opts, sensorDropout: 0.5 });
    expect(seen.at(-1)!.x.rows).toBe(rows);
    const two = readSessions(streams(6), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax', 'energy'] });
    seen.length = 0;
    await trainSequence(two, { ...opts, sensorDropout: 0.5 });
    const d = seen.at(-1)!;
    expect(d.x.rows).toBeGreaterThan(rows * 1.3);
    const extra = d.x.data.subarray(rows * d.x.cols);
    let zeroed = 0;
    for (let r = 0; r < d.x.rows - rows; r++) if (extra.subarray(r * d.x.cols, (r + 1) * d.x.cols).every((v, i) => i % 2 !== 0 || v === 0)) zeroed++;
    expect(zeroed).toBeGreaterThan(0);
    expect(plain.cv.metrics['accuracy']!.mean).toBeGreaterThan(0.9);
    await expect(trainSequence(data, { ...opts, sensorDropout: 2 })).rejects.toThrow(/--sensor-dropout/);
  });

  it('balances the classes of training windows, over or under, only when asked', async () => {
    const seen = recordTraining();
    // Unequal classes: the first subject lacks its 'fast' bout.
    const t = streams(6);
    const keep = Array.from({ length: t.rowCount }, (_, r) => r).filter((r) => !(t.data[0]!.text(r) === 'p0' && t.data[5]!.text(r) === 'fast'));
    const rows = keep.map((r) => t.data.map((c) => c.cell(r)));
    const data = readSessions(tableFromRows(t.columns, rows, { source: 'uneven.csv' }), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax', 'ay'] });
    const counts = (d: TrainData) => [0, 1, 2].map((c) => d.y.filter((v) => v === c).length);
    for (const balance of ['none', 'over', 'under'] as const) {
      seen.length = 0;
      await trainSequence(data, { ...opts, balance, sensorDropout: 0 });
      const n = counts(seen.at(-1)!);
      if (balance === 'none') expect(new Set(n).size).toBeGreaterThan(1);
      else expect(new Set(n).size).toBe(1);
    }
  });

  it('refuses what cannot be trained, saying why', async () => {
    const data = readSessions(streams(2), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax'] });
    await expect(trainSequence(data, opts)).rejects.toThrow(/2 subject\(s\).*--cv 3/);
    const six = readSessions(streams(6, 1), { subject: 'subject', session: 'session', time: 't', targets: ['activity'], channels: ['ax'] });
    await expect(trainSequence(six, { ...opts, window: 400 })).rejects.toThrow(/no session is long enough for a window of 400 steps/);
    const two = readSessions(streams(6), { subject: 'subject', session: 'session', time: 't', targets: ['activity', 'energy'], channels: ['ax'] });
    await expect(trainSequence(two, opts)).rejects.toThrow(MedfitError);
    await expect(trainSequence(six, { ...opts, model: 'mlp' as never })).rejects.toThrow(/learns from table rows/);
  });
});
