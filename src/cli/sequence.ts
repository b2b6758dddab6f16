/**
 * The CLI's sensor-stream paths: `train --sequence`, `predict` with a sequence model, and
 * `profile --sequence`. Inputs are long-format CSV/JSON/NDJSON files, a Garmin FIT file, or a
 * folder of FIT files (one session each).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { SequenceTrainResult } from '../automl/index.js';
import { Errors, type Task } from '../core/index.js';
import type { Table, TableFormat } from '../data/index.js';
import type { Family, SequenceFamily } from '../models/index.js';
import type { ChannelFilter, SequenceColumns, TimeUnit, WindowLabel } from '../sequence/index.js';
import { intFlag, oneOf } from './args.js';
import { num, printWarnings, progressBar, table } from './format.js';
import type { Io } from './main.js';

/** Flags the sequence paths add to `train`, `predict` and `profile`. */
export const SEQUENCE_FLAGS = {
  sequence: { type: 'boolean', default: false },
  subject: { type: 'string' },
  session: { type: 'string' },
  time: { type: 'string' },
  'time-unit': { type: 'string' },
  channels: { type: 'string' },
  rate: { type: 'string' },
  window: { type: 'string' },
  stride: { type: 'string' },
  label: { type: 'string' },
  filter: { type: 'string' },
  'max-gap': { type: 'string' },
  balance: { type: 'string' },
  'sensor-dropout': { type: 'string' },
  test: { type: 'string' },
  'subject-from': { type: 'string' },
} as const;

/** The parsed values of `SEQUENCE_FLAGS` (and the shared ones the sequence paths read). */
export interface SequenceFlags {
  sequence?: boolean | undefined;
  subject?: string | undefined;
  session?: string | undefined;
  time?: string | undefined;
  'time-unit'?: string | undefined;
  channels?: string | undefined;
  rate?: string | undefined;
  window?: string | undefined;
  stride?: string | undefined;
  label?: string | undefined;
  filter?: string | undefined;
  'max-gap'?: string | undefined;
  balance?: string | undefined;
  'sensor-dropout'?: string | undefined;
  test?: string | undefined;
  'subject-from'?: string | undefined;
  ignore?: string | undefined;
  format?: string | undefined;
}

export const SEQUENCE_HELP = `Sensor streams (--sequence; implied by a .fit file or a folder):
  --subject <col>         the subject column (default "subject"); folds leave subjects out
  --session <col>         the session column (default "session" when there is one)
  --time <col>            the time column (default t, time or timestamp): ISO 8601, epoch
                          seconds or milliseconds, or relative times (detected; see --time-unit)
  --time-unit <u>         s | ms: how to read numeric relative times
  --channels <a,b>        channels to use (default every other numeric column)
  --rate <hz>             resample to this rate (default the data's own)
  --window <n|2.56s>      steps per window, or a duration (default 2.56s)
  --stride <n|1.28s>      steps between windows (default half a window)
  --label <how>           a window's label: majority | last (classes), mean | last (values)
  --filter <f>            lowpass:<hz> | median:<samples>, applied after resampling
  --max-gap <seconds>     a longer gap splits a session (default max(2 s, 5 samples))
  --balance <how>         none | over | under: balance classes of training windows
  --sensor-dropout <p>    also train on a share p (0..0.9) of windows with one sensor (an
                          accelerometer or gyroscope triple, or a channel) missing, for devices
                          that lack it (default 0.3; 0 turns it off)
  --test <file>           score the model trained on the whole file on this test file
  --subject-from <how>    FIT folders: filename | folder names the subject (default filename)
`;

/** Whether a train/predict/profile call is about sensor streams. */
export function isSequenceInput(path: string, o: SequenceFlags): boolean {
  return o.sequence === true || isFitInput(path) || o.subject !== undefined || o.time !== undefined || o.window !== undefined;
}

function isFitInput(path: string): boolean {
  if (extname(path).toLowerCase() === '.fit') return true;
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A sensor dataset's table and the SHA-256 of the bytes it was read from. */
async function readInput(path: string, o: SequenceFlags, format?: TableFormat): Promise<{ table: Table; sha256: string; fit: boolean }> {
  if (isFitInput(path)) {
    const { readFitPaths } = await import('../sequence/index.js');
    const subjectFrom = o['subject-from'] === undefined ? 'filename' : oneOf(o['subject-from'], ['filename', 'folder'] as const, 'subject-from');
    const table = await readFitPaths([path], { subjectFrom });
    return { table, sha256: hashFiles(path), fit: true };
  }
  const { readTable } = await import('../data/index.js');
  const table = await readTable(path, { hash: true, ...(format ? { format } : {}) });
  return { table, sha256: table.sha256!, fit: false };
}

/** SHA-256 over a FIT file, or over a folder's FIT files in name order (names and bytes). */
function hashFiles(path: string): string {
  const h = createHash('sha256');
  const visit = (p: string, depth: number) => {
    if (statSync(p).isDirectory()) {
      if (depth > 1) return;
      for (const f of readdirSync(p).sort()) visit(join(p, f), depth + 1);
    } else if (extname(p).toLowerCase() === '.fit') {
      h.update(basename(p) + '\u0000');
      h.update(readFileSync(p));
    }
  };
  visit(path, 0);
  return h.digest('hex');
}

/** The stream's columns from flags, with the usual names as defaults. */
async function columnsOf(t: Table, o: SequenceFlags, fit: boolean, targets: string[]): Promise<SequenceColumns> {
  const { defaultColumn, noDefaultColumn } = await import('../sequence/index.js');
  const need = (what: 'subject' | 'time'): string => {
    const found = defaultColumn(t.columns, what);
    if (found === undefined) throw Errors.usage(`${t.source} has ${noDefaultColumn(what)} with --${what}`);
    return found;
  };
  const subject = o.subject ?? need('subject');
  // FIT tables always name their time column t.
  const time = o.time ?? (fit ? 't' : need('time'));
  const session = o.session ?? defaultColumn(t.columns, 'session');
  const ignore = splitList(o.ignore);
  return {
    subject,
    time,
    ...(session !== undefined ? { session } : {}),
    targets,
    ...(o.channels !== undefined ? { channels: splitList(o.channels) } : {}),
    ...(ignore.length ? { ignore } : {}),
    ...(o['time-unit'] !== undefined ? { timeUnit: oneOf(o['time-unit'], ['s', 'ms'] as const, 'time-unit') as TimeUnit } : {}),
  };
}

/** Options every sequence train shares with the table path. */
export interface CommonTrain {
  target: string;
  task: Task | 'auto';
  model: string;
  cv: string | undefined;
  seed: number;
  params: Partial<Record<Family, Record<string, unknown>>>;
  out: string;
  json: boolean;
  format?: TableFormat;
}

/** `medfit train … --sequence`: trains, saves the model directory, prints the report. */
export async function trainSequenceCli(file: string, o: SequenceFlags, c: CommonTrain, io: Io): Promise<number> {
  const { readSessions, detectRate } = await import('../sequence/index.js');
  const { trainSequence } = await import('../automl/index.js');
  const { buildSequenceManifest } = await import('../jobs/index.js');
  const { manifestKeyFromEnv, saveArtifact } = await import('../registry/index.js');
  const key = manifestKeyFromEnv(process.env);
  const model = oneOf(c.model, ['auto', 'lstm', 'gru', 'cnn', 'cnn-lstm', 'window-gbdt'] as const, 'model') as SequenceFamily | 'auto';
  const targets = splitList(c.target);
  const labels = c.task === 'binary' || c.task === 'multiclass';
  const input = await readInput(file, o, c.format);
  const cols = await columnsOf(input.table, o, input.fit, targets);
  const data = readSessions(input.table, cols, { labels });
  let test;
  if (o.test !== undefined) {
    const t = await readInput(o.test, o, c.format);
    test = readSessions(t.table, { ...(await columnsOf(t.table, o, t.fit, targets)), channels: data.channels }, { knownTargets: data.targets, labels });
  }
  const rate = o.rate !== undefined ? positive(o.rate, 'rate', 10_000) : detectRate(data.sessions);
  const window = await stepsFlag(o.window ?? '2.56s', rate, 'window');
  const stride = o.stride !== undefined ? await stepsFlag(o.stride, rate, 'stride') : Math.max(1, Math.floor(window / 2));
  const bar = progressBar(io.stderr);
  const result = await trainSequence(data, {
    task: c.task,
    model,
    rate,
    window,
    stride,
    ...(o['max-gap'] !== undefined ? { maxGap: positive(o['max-gap'], 'max-gap', 86_400) } : {}),
    ...(o.label !== undefined ? { label: oneOf(o.label, ['majority', 'last', 'mean'] as const, 'label') as WindowLabel } : {}),
    ...(o.filter !== undefined ? { filter: await filterFlag(o.filter, rate) } : {}),
    ...(o.balance !== undefined ? { balance: oneOf(o.balance, ['none', 'over', 'under'] as const, 'balance') } : {}),
    ...(o['sensor-dropout'] !== undefined ? { sensorDropout: share(o['sensor-dropout'], 'sensor-dropout') } : {}),
    cv: intFlag(c.cv, 'cv', 5, 2),
    seed: c.seed,
    params: c.params,
    ...(test ? { test } : {}),
    onProgress: (p) => bar.update(p.fraction ?? 0, p.stage + (p.epoch !== undefined ? ` epoch ${p.epoch}` : '')),
  });
  bar.done();
  saveArtifact(c.out, buildSequenceManifest(result, { source: basename(file), sha256: input.sha256, seed: c.seed }), result.model, { cv: result.report, ...(result.test ? { test: result.test.report } : {}) }, { key });
  if (c.json) {
    io.stdout.write(JSON.stringify(sequenceJson(result, c.out)) + '\n');
    return 0;
  }
  for (const w of result.warnings) io.stderr.write(`warning: ${w.message}\n`);
  io.stdout.write(sequenceReport(file, result, c.out));
  return 0;
}

/** The `--json` document of a sequence training run: the table report's shape plus windows and test. */
export function sequenceJson(r: SequenceTrainResult, out: string): Record<string, unknown> {
  return {
    task: r.task,
    target: r.target.column,
    classes: r.target.classes,
    model: { family: r.model.family, params: r.model.params },
    cv: r.cv,
    ...(r.test ? { test: { rows: r.test.rows, metrics: r.test.metrics, ...(r.test.outputs ? { outputs: r.test.outputs } : {}) } } : {}),
    leaderboard: r.leaderboard.map((c) => ({ family: c.family, params: c.params, metrics: c.metrics, seconds: c.seconds })),
    sequence: { channels: r.prep.channels, rate: r.prep.rate, window: r.prep.window, stride: r.prep.stride, label: r.prep.label ?? (r.task === 'regression' ? 'mean' : 'majority') },
    rows: r.rows,
    warnings: r.warnings,
    artifact: out,
  };
}

function sequenceReport(file: string, r: SequenceTrainResult, out: string): string {
  const lines: string[] = [];
  const classes = r.target.classes ? ` (${r.target.classes.join(', ')})` : '';
  const p = r.prep;
  lines.push(
    `${basename(file)}: ${r.rows.subjects} subjects, ${r.rows.sessions} sessions, ${r.rows.windows} windows of ${p.window} steps (${num(p.window / p.rate, 2)} s at ${p.rate} Hz, every ${p.stride}) over ${p.channels.length} channels (${p.channels.join(' ')})`,
    `target "${r.target.column}": ${r.task}${classes}`,
  );
  lines.push('', `Leaderboard (${r.cv.folds}-fold leave-subjects-out cross-validation, ranked by ${r.selection}):`);
  const cols = r.task === 'regression' ? ['r2', 'rmse', 'mae'] : ['accuracy', 'balanced_accuracy', 'auroc'];
  lines.push(table(['family', ...cols, 'seconds'], r.leaderboard.map((c) => [c.family, ...cols.map((m) => `${num(c.metrics[m]!.mean)} ± ${num(c.metrics[m]!.std)}`), c.seconds.toFixed(1)])));
  lines.push('', `Chosen: ${r.model.family} ${JSON.stringify(r.model.params)}`, '');
  lines.push(table(['metric', 'mean', 'std'], Object.entries(r.cv.metrics).map(([m, s]) => [m, num(s.mean), num(s.std)])));
  if (r.cv.outputs) {
    const names = Object.keys(r.cv.outputs);
    const metrics = ['r2', 'rmse', 'mae', 'pearson_r', 'bias', 'error_std'];
    lines.push('', 'Per output (mean over folds):');
    lines.push(table(['output', ...metrics], names.map((n) => [n, ...metrics.map((m) => num(r.cv.outputs![n]![m]?.mean))])));
  }
  const rep = r.test?.report ?? r.report;
  if ('confusion' in rep && r.target.classes) {
    const labels = r.target.classes;
    lines.push('', `${r.test ? 'Test' : 'Out-of-fold'} confusion matrix (rows true, columns predicted):`);
    lines.push(table(['', ...labels], rep.confusion.map((row, i) => [labels[i]!, ...row.map(String)])));
    if (rep.perClass) lines.push('', table(['class', 'recall', 'precision', 'f1'], rep.perClass.map((pc, i) => [labels[i]!, num(pc.recall), num(pc.precision), num(pc.f1)])));
    if (rep.averages) lines.push(`macro F1 ${num(rep.averages.macro.f1)}`);
  }
  if (r.test) {
    lines.push('', `Test file: ${r.test.rows} windows`);
    lines.push(table(['metric', 'value'], Object.entries(r.test.metrics).map(([m, v]) => [m, num(v)])));
  }
  lines.push('', `Saved ${out}`, '');
  return lines.join('\n');
}

/** `medfit predict <sequence-model> <file|folder>`: one line per window. */
export async function predictSequenceCli(dir: string, file: string, o: SequenceFlags, json: boolean, io: Io, format?: TableFormat): Promise<number> {
  const { loadArtifact, manifestKeyFromEnv, predictSequence, sequenceDataFor } = await import('../registry/index.js');
  const artifact = loadArtifact(dir, { key: manifestKeyFromEnv(process.env) });
  const input = await readInput(file, o, format);
  const data = sequenceDataFor(artifact, input.table);
  const { predictions, warnings } = predictSequence(artifact, data);
  const m = artifact.manifest;
  if (json) {
    io.stdout.write(JSON.stringify({ model: { dir, family: m.model.family, task: m.task, target: m.target.column }, predictions, warnings }) + '\n');
    return 0;
  }
  printWarnings(io, warnings);
  for (const p of predictions) {
    const head = `${p.subject}\t${p.session}\t${p.start}\t${p.end}\t`;
    const body =
      'value' in p
        ? String(p.value)
        : 'values' in p
          ? Object.entries(p.values).map(([k, v]) => `${k}=${v}`).join('\t')
          : `${p.label}\t${Object.entries(p.probabilities).map(([c, v]) => `${c}=${v.toFixed(4)}`).join('\t')}`;
    io.stdout.write(head + body + '\n');
  }
  return 0;
}

/** `medfit profile <file> --sequence`: sessions, rates, gaps, channel ranges, label durations. */
export async function profileSequenceCli(file: string, o: SequenceFlags & { target?: string | undefined }, json: boolean, io: Io, format?: TableFormat): Promise<number> {
  const { readSessions, profileSequence } = await import('../sequence/index.js');
  const input = await readInput(file, o, format);
  const data = readSessions(input.table, await columnsOf(input.table, o, input.fit, splitList(o.target)));
  const p = profileSequence(data, o['max-gap'] !== undefined ? positive(o['max-gap'], 'max-gap', 86_400) : undefined);
  if (json) {
    io.stdout.write(JSON.stringify(p) + '\n');
    return 0;
  }
  printWarnings(io, p.warnings);
  io.stdout.write(`${basename(file)}: ${p.rows} samples, ${p.subjects} subjects, ${p.sessions.length} sessions, median rate ${num(p.rate, 2)} Hz (times read as ${p.timeUnit})\n\n`);
  const shown = p.sessions.slice(0, 50);
  io.stdout.write(table(['subject', 'session', 'samples', 'seconds', 'rate Hz', 'gaps', 'longest gap s'], shown.map((s) => [s.subject, s.session, String(s.samples), num(s.seconds, 1), num(s.rate, 2), String(s.gaps), num(s.longestGap, 3)])) + '\n');
  if (p.sessions.length > shown.length) io.stdout.write(`(${p.sessions.length - shown.length} more sessions: see --json)\n`);
  io.stdout.write('\n' + table(['channel', 'missing%', 'min', 'max', 'mean', 'std'], p.channels.map((c) => [c.name, c.missingPct.toFixed(1), num(c.min), num(c.max), num(c.mean), num(c.std)])) + '\n');
  for (const t of p.targets) {
    if (t.labels) {
      io.stdout.write(`\n${t.name}:\n` + table(['label', 'samples', 'seconds', 'bouts', 'mean bout s'], t.labels.map((l) => [l.label, String(l.samples), num(l.seconds, 1), String(l.bouts), num(l.meanBoutSeconds, 1)])) + '\n');
    } else {
      io.stdout.write(`\n${t.name}: values ${num(t.min)} to ${num(t.max)}, mean ${num(t.mean)}\n`);
    }
  }
  return 0;
}

async function filterFlag(v: string, rate: number): Promise<ChannelFilter> {
  const { readFilter } = await import('../sequence/index.js');
  const f = readFilter(v, rate);
  if (typeof f === 'string') throw Errors.usage(`--filter "${v.slice(0, 40)}": ${f}`);
  return f;
}

async function stepsFlag(v: string, rate: number, flag: 'window' | 'stride'): Promise<number> {
  const { readLength, lengthSteps } = await import('../sequence/index.js');
  const l = readLength(v);
  const n = typeof l === 'string' ? l : lengthSteps(l, rate);
  if (typeof n === 'string') throw Errors.usage(`--${flag} "${v.slice(0, 40)}": ${n}`);
  return n;
}

function share(v: string, flag: string): number {
  const n = v.trim() === '' ? NaN : Number(v);
  if (!(n >= 0 && n <= 0.9)) throw Errors.usage(`--${flag} must be a number from 0 to 0.9 (got "${v.slice(0, 40)}")`);
  return n;
}

function positive(v: string, flag: string, max: number): number {
  const n = Number(v);
  if (!(n > 0 && n <= max)) throw Errors.usage(`--${flag} must be a number above 0 and at most ${max} (got "${v}")`);
  return n;
}

function splitList(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
}

