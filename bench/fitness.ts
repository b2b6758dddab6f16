/**
 * The fitness quality bars of the sequence pipeline, in one run, with defaults unless stated and
 * leave-subjects-out cross-validation:
 *
 *   npx tsx bench/fitness.ts [--subjects 24] [--seed 7] [--model auto] [--sensor-dropout 0.3] [--json]
 *
 * - `medfit synth fitness --subjects 24 --seed 7`: activity (7 classes) accuracy and macro F1,
 *   and energy expenditure R²
 * - BasicMotions (test/fixtures, UEA): accuracy on the fixed test file
 * - the cost of a missing gyroscope: the BasicMotions model and the synthetic activity model
 *   scored on their test windows with and without the gyroscope channels (filled with their
 *   training means, as the server does)
 *
 * Prints a table and, with --json, one JSON document.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { trainSequence, type SequenceTrainOptions } from '../src/automl/index.js';
import { readTable, type Table } from '../src/data/index.js';
import { classificationReport, type ClassificationReport } from '../src/eval/index.js';
import type { SequenceFamily, TrainedModel } from '../src/models/index.js';
import { detectRate, lengthSteps, readSessions, segmentsOf, windowize, writeSynthFitness, type SequenceData, type SequencePrep } from '../src/sequence/index.js';

const { values } = parseArgs({ options: { subjects: { type: 'string', default: '24' }, seed: { type: 'string', default: '7' }, model: { type: 'string', default: 'auto' }, 'sensor-dropout': { type: 'string', default: '0.3' }, json: { type: 'boolean', default: false } } });
const ROOT = new URL('..', import.meta.url).pathname;
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(s + '\n');
const model = values.model as SequenceFamily | 'auto';
const results: Record<string, unknown> = {};

const cols = { subject: 'subject', session: 'session', time: 't' };

function options(data: SequenceData, extra: Partial<SequenceTrainOptions> = {}): SequenceTrainOptions {
  const rate = detectRate(data.sessions);
  const window = lengthSteps({ seconds: 2.56 }, rate) as number;
  return { rate, window, stride: Math.max(1, Math.floor(window / 2)), model, cv: 5, seed: 0, sensorDropout: Number(values['sensor-dropout']), ...extra };
}

/** Accuracy of `m` on `data`'s windows, with `drop` channels blanked (filled with the training mean). */
function accuracyWithout(m: TrainedModel, prep: SequencePrep, data: SequenceData, drop: string[]): number {
  const sessions = data.sessions.map((s) => ({ ...s, channels: s.channels.map((c, i) => (drop.includes(data.channels[i]!) ? new Float64Array(c.length).fill(NaN) : c)) }));
  const w = windowize(segmentsOf(sessions, prep), prep, prep, data.targets);
  const rows = Array.from({ length: w.x.rows }, (_, r) => r).filter((r) => w.y[0]![r] === w.y[0]![r]);
  const x = { rows: rows.length, cols: w.x.cols, data: new Float64Array(rows.length * w.x.cols) };
  rows.forEach((r, i) => x.data.set(w.x.data.subarray(r * w.x.cols, (r + 1) * w.x.cols), i * w.x.cols));
  return classificationReport(Float64Array.from(rows, (r) => w.y[0]![r]!), m.predict(x), prep.targets[0]!.classes!.length).metrics.accuracy;
}

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await f();
  log(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return r;
}

// 1. The synthetic fitness data.
const dir = mkdtempSync(join(tmpdir(), 'medfit-fitness-bench-'));
const synth = join(dir, 'fitness.csv');
const rows = await writeSynthFitness(synth, { subjects: Number(values.subjects), seed: Number(values.seed) });
const table: Table = await readTable(synth);
log(`synth fitness --subjects ${values.subjects} --seed ${values.seed}: ${rows} rows`);
const activity = readSessions(table, { ...cols, targets: ['activity'], channels: ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'] });
const act = await timed('activity', () => trainSequence(activity, options(activity)));
const actReport = act.report as ClassificationReport;
results['synth_activity'] = { family: act.model.family, accuracy: act.cv.metrics['accuracy'], macro_f1: actReport.averages?.macro.f1, leaderboard: act.leaderboard.map((c) => ({ family: c.family, accuracy: c.metrics['accuracy'], seconds: c.seconds })) };
const energy = readSessions(table, { ...cols, targets: ['energy'], channels: ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'] });
const en = await timed('energy', () => trainSequence(energy, options(energy)));
results['synth_energy'] = { family: en.model.family, r2: en.cv.metrics['r2'], rmse: en.cv.metrics['rmse'], leaderboard: en.leaderboard.map((c) => ({ family: c.family, r2: c.metrics['r2'], seconds: c.seconds })) };

// 2. BasicMotions with its fixed test file, and the gyroscope's worth.
const bmTrain = readSessions(await readTable(join(ROOT, 'test/fixtures/basic_motions_train.csv')), { ...cols, targets: ['activity'] });
const bmTest = readSessions(await readTable(join(ROOT, 'test/fixtures/basic_motions_test.csv')), { ...cols, targets: ['activity'] }, { knownTargets: bmTrain.targets });
const bm = await timed('basic motions', () => trainSequence(bmTrain, options(bmTrain, { test: bmTest })));
const gyro = ['gx', 'gy', 'gz'];
results['basic_motions'] = {
  family: bm.model.family,
  cv_accuracy: bm.cv.metrics['accuracy'],
  test_accuracy: bm.test!.metrics['accuracy'],
  test_accuracy_without_gyroscope: accuracyWithout(bm.model, bm.prep, bmTest, gyro),
};
// The synthetic model on 6 new subjects (another seed), with and without the gyroscope.
const fresh = join(dir, 'fresh.csv');
await writeSynthFitness(fresh, { subjects: 6, seed: Number(values.seed) + 1000 });
const freshData = readSessions(await readTable(fresh), { ...cols, targets: ['activity'], channels: act.prep.channels }, { knownTargets: activity.targets });
results['synth_activity_new_subjects'] = {
  accuracy: accuracyWithout(act.model, act.prep, freshData, []),
  accuracy_without_gyroscope: accuracyWithout(act.model, act.prep, freshData, gyro),
};

if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
else log(JSON.stringify(results, null, 2));
