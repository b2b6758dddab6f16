/**
 * Sensor streams through the real `medfit` command: profile, train with leave-subjects-out CV and
 * a fixed test file (UEA BasicMotions), predict one line per window, Garmin FIT folders, and the
 * bad inputs a wearable pipeline meets (times going backwards, windows longer than any session,
 * unknown or empty channels, broken FIT files): exit 2, one line, nothing written.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildActivityFit, type FitRecordSpec } from './fit-builders.js';
import { fixture, medfit, medfitInProcess, tempDir } from './helpers.js';

const dir = tempDir('medfit-fitness-');

function expectUserError(run: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stdout).toBe('');
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

/** The BasicMotions test file without its gyroscope columns (a device with an accelerometer only). */
function withoutGyroscope(): string {
  const lines = readFileSync(fixture('basic_motions_test.csv'), 'utf8').trim().split('\n');
  const header = lines[0]!.split(',');
  const keep = header.map((h, i) => (['gx', 'gy', 'gz'].includes(h) ? -1 : i)).filter((i) => i >= 0);
  const out = lines.map((l) => keep.map((i) => l.split(',')[i]).join(','));
  const p = join(dir, 'bm_test_accel_only.csv');
  writeFileSync(p, out.join('\n') + '\n');
  return p;
}

describe('medfit on sensor streams (BasicMotions)', () => {
  const model = join(dir, 'bm');

  it('profiles a long-format file: rate, sessions, channels, label durations', async () => {
    const run = await medfit(['profile', fixture('basic_motions_train.csv'), '--sequence', '--target', 'activity', '--json']);
    expect(run.code).toBe(0);
    const p = JSON.parse(run.stdout);
    expect(p).toMatchObject({ rows: 4000, subjects: 40, rate: 10, timeUnit: 'ms' });
    expect(p.sessions).toHaveLength(40);
    expect(p.channels.map((c: { name: string }) => c.name)).toEqual(['ax', 'ay', 'az', 'gx', 'gy', 'gz']);
    expect(p.targets[0].labels.map((l: { label: string; samples: number }) => [l.label, l.samples])).toEqual([
      ['Badminton', 1000],
      ['Running', 1000],
      ['Standing', 1000],
      ['Walking', 1000],
    ]);
    const text = await medfit(['profile', fixture('basic_motions_train.csv'), '--sequence', '--target', 'activity']);
    expect(text.stdout).toContain('median rate 10.00 Hz');
  });

  it('trains with leave-subjects-out CV, scores the fixed test file, saves the model', async () => {
    const run = await medfit(['train', fixture('basic_motions_train.csv'), '--sequence', '--target', 'activity', '--model', 'window-gbdt', '--test', fixture('basic_motions_test.csv'), '--out', model, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const r = JSON.parse(run.stdout);
    expect(r).toMatchObject({ task: 'multiclass', target: 'activity', classes: ['Badminton', 'Running', 'Standing', 'Walking'], model: { family: 'window-gbdt' } });
    expect(r.sequence).toMatchObject({ channels: ['ax', 'ay', 'az', 'gx', 'gy', 'gz'], rate: 10, window: 26, stride: 13 });
    expect(r.cv.folds).toBe(5);
    expect(r.rows).toMatchObject({ subjects: 40, windows: 40 * 6 });
    expect(r.test.rows).toBe(40 * 6);
    expect(r.test.metrics.accuracy).toBeGreaterThanOrEqual(0.95);
    const manifest = JSON.parse(readFileSync(join(model, 'manifest.json'), 'utf8'));
    expect(manifest.sequence).toMatchObject({ version: 1, channels: ['ax', 'ay', 'az', 'gx', 'gy', 'gz'], window: 26 });
    expect(manifest.pipeline).toBeUndefined();
    expect(manifest.metrics.test.metrics.accuracy).toBe(r.test.metrics.accuracy);
    // window-gbdt's ONNX graph reads the window features (8 series × 27 + 6 correlations).
    expect(manifest.signature.inputs[0].shape).toEqual([-1, 222]);
  });

  it('predicts one line per window, and still predicts without the gyroscope (with a warning)', async () => {
    const run = await medfit(['predict', model, fixture('basic_motions_test.csv'), '--json']);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.predictions).toHaveLength(240);
    expect(out.predictions[0]).toMatchObject({ subject: 'test_0001', session: 'test_0001', start: '0', end: '2.5' });
    expect(['Badminton', 'Running', 'Standing', 'Walking']).toContain(out.predictions[0].label);
    const text = await medfit(['predict', model, fixture('basic_motions_test.csv')]);
    expect(text.stdout.trim().split('\n')).toHaveLength(240);
    const partial = await medfit(['predict', model, withoutGyroscope(), '--json']);
    expect(partial.code).toBe(0);
    const p = JSON.parse(partial.stdout);
    expect(p.predictions).toHaveLength(240);
    expect(p.warnings.map((w: { code: string }) => w.code)).toContain('missing_channels');
    expect(partial.stderr).toBe('');
  });

  it('refuses bad streams with one line and writes nothing', async () => {
    const out = join(dir, 'never');
    const train = (file: string, ...extra: string[]) => medfitInProcess(['train', file, '--sequence', '--target', 'activity', '--model', 'window-gbdt', '--out', out, ...extra]);
    expectUserError(await train(fixture('basic_motions_train.csv'), '--window', '200'), /no session is long enough for a window of 200 steps/);
    expectUserError(await train(fixture('basic_motions_train.csv'), '--channels', 'ax,heart'), /no column "heart"/);
    const lines = readFileSync(fixture('basic_motions_train.csv'), 'utf8').trim().split('\n');
    const backwards = join(dir, 'backwards.csv');
    writeFileSync(backwards, [lines[0], lines[1], lines[3], lines[2], ...lines.slice(4)].join('\n') + '\n');
    expectUserError(await train(backwards), /backwards\.csv:4: column "t": time goes backwards/);
    const empty = join(dir, 'empty-channel.csv');
    writeFileSync(empty, lines.map((l, i) => (i === 0 ? `${l},hr` : `${l},`)).join('\n') + '\n');
    expectUserError(await train(empty, '--channels', 'ax,hr'), /column "hr": has no numeric value/);
    expectUserError(await train(fixture('basic_motions_train.csv'), '--window', 'long'), /--window "long"/);
    expect(existsSync(out)).toBe(false);
  });
});

/** A FIT ride of `seconds` at 1 Hz where heart rate follows power with a per-subject offset. */
function ride(start: number, seconds: number, offset: number): Uint8Array {
  const records: FitRecordSpec[] = [];
  for (let i = 0; i < seconds; i++) {
    const power = 150 + 80 * Math.sin(i / 20) + 30 * Math.sin(i / 7);
    records.push({ t: start + i * 1000, power: Math.round(power), cadence: Math.round(80 + power / 20), speed: Math.round((5 + power / 60) * 1000) / 1000, heartRate: Math.round(offset + 0.35 * power) });
  }
  return buildActivityFit({ start, records });
}

describe('medfit on a folder of Garmin FIT files', () => {
  const root = join(dir, 'rides');
  for (let s = 0; s < 5; s++) {
    mkdirSync(join(root, `rider${s}`), { recursive: true });
    for (let k = 0; k < 2; k++) writeFileSync(join(root, `rider${s}`, `ride${k}.fit`), ride(Date.UTC(2026, 5, 1 + s, 8 + k), 300, 70 + 3 * s));
  }

  it('trains a heart-rate model from power, cadence and speed, subjects from the folders', async () => {
    const out = join(dir, 'hr-model');
    const run = await medfit(['train', root, '--subject-from', 'folder', '--target', 'heart_rate', '--channels', 'power,cadence,speed', '--window', '30s', '--model', 'window-gbdt', '--cv', '5', '--out', out, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const r = JSON.parse(run.stdout);
    expect(r).toMatchObject({ task: 'regression', rows: { subjects: 5, sessions: 10 }, sequence: { rate: 1, window: 30, stride: 15 } });
    expect(r.cv.metrics.r2.mean).toBeGreaterThan(0.5);
    const pred = await medfit(['predict', out, join(root, 'rider0', 'ride0.fit'), '--json']);
    expect(pred.code).toBe(0);
    expect(JSON.parse(pred.stdout).predictions.length).toBe(19);
  });

  it('refuses a truncated FIT file and one that is not FIT', async () => {
    const bytes = ride(Date.UTC(2026, 5, 1), 60, 70);
    const cut = join(dir, 'cut.fit');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    expectUserError(await medfitInProcess(['profile', cut]), /cut\.fit/);
    const fake = join(dir, 'fake.fit');
    writeFileSync(fake, 'subject,t,ax\na,0,1\n');
    expectUserError(await medfitInProcess(['train', fake, '--target', 'heart_rate', '--out', join(dir, 'nope')]), /fake\.fit/);
    expect(existsSync(join(dir, 'nope'))).toBe(false);
  });
});

describe('medfit synth fitness, and the seed reference network', () => {
  it('generates a file that trains the Keras reference LSTM(100) → Dropout(0.2) → Dense(1) on 10-step windows', async () => {
    const csv = join(dir, 'synth.csv');
    const synth = await medfitInProcess(['synth', 'fitness', '--subjects', '3', '--seed', '7', '--seconds', '5', '--out', csv]);
    expect(synth.code).toBe(0);
    expect(readFileSync(csv, 'utf8').split('\n')[0]).toBe('subject,session,t,ax,ay,az,gx,gy,gz,hr,activity,energy');
    const out = join(dir, 'ref-lstm');
    const run = await medfit(['train', csv, '--sequence', '--target', 'energy', '--model', 'lstm', '--param', 'lstm.units=100', '--param', 'lstm.dropout=0.2', '--param', 'lstm.epochs=2', '--window', '10', '--stride', '10', '--cv', '3', '--out', out, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const r = JSON.parse(run.stdout);
    expect(r).toMatchObject({ task: 'regression', model: { family: 'lstm', params: { units: 100, dropout: 0.2, layers: 1, learning_rate: 0.001 } }, sequence: { window: 10 } });
    const state = JSON.parse(readFileSync(join(out, 'weights.json'), 'utf8'));
    expect(state.weights.layers.map((l: { type: string; units?: number }) => [l.type, l.units])).toEqual([
      ['lstm', 100],
      ['dense', 1],
    ]);
    expect(state.weights.layers[0]).toMatchObject({ inputSize: 7, returnSequences: false });
  });
});
