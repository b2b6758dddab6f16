/**
 * Long-format sensor tables into sessions: one row per sample, a subject column, an optional
 * session column, a time column, channel columns and target columns. The readers of the data
 * room (CSV, JSON, NDJSON) and the FIT reader all produce such a table; this module groups its
 * rows into per-session time series, each time-ordered, with repeated timestamps folded.
 */
import { Errors, type Warning } from '../core/index.js';
import { parseDate, type Table } from '../data/index.js';
import { SEQUENCE_LIMITS } from './options.js';

/** Which columns of a long-format table play which part. */
export interface SequenceColumns {
  subject: string;
  /** Absent: each subject is one session. */
  session?: string;
  time: string;
  /** Label or target columns (none when only predicting). */
  targets: string[];
  /** The channels to use, in this order; default every other column that holds numbers. */
  channels?: string[];
  /** Columns to leave out of the default channels. */
  ignore?: string[];
  /** How to read a numeric time column; default detected (see `detectTimeUnit`). */
  timeUnit?: TimeUnit;
}

/** How a time column's values are read: ISO 8601 texts, or numbers in seconds or milliseconds. */
export type TimeUnit = 'iso' | 's' | 'ms';

/** A target column: classes (texts, in output order) or values. */
export interface TargetInfo {
  name: string;
  kind: 'class' | 'value';
  /** For `class`: the labels, sorted; a sample's target is its index here. */
  classes?: string[];
}

/** One recording: strictly increasing times, and per channel and target one value per time. */
export interface Session {
  subject: string;
  session: string;
  /** Seconds (since the epoch, or since the file's own origin for relative times). */
  t: Float64Array;
  /** One array per channel, NaN where the sample has no value. */
  channels: Float64Array[];
  /** One array per target: class index or value, NaN where missing. */
  targets: Float64Array[];
  /** Source line of the session's first row, for messages. */
  line: number;
}

/** A long-format table read into sessions. */
export interface SequenceData {
  source: string;
  columns: { subject: string; session?: string; time: string };
  channels: string[];
  targets: TargetInfo[];
  sessions: Session[];
  timeUnit: TimeUnit;
  rows: number;
  warnings: Warning[];
}

/** Options for reading sessions. */
export interface ReadSessionsOptions {
  /**
   * The class labels a model was trained with (`--test` files, predictions): a label outside
   * them is an error rather than a new class.
   */
  knownTargets?: TargetInfo[];
  /** Whether target columns may be absent (prediction). */
  targetsOptional?: boolean;
  /** Read numeric targets as labels (`--task multiclass` on activity codes 1..6). */
  labels?: boolean;
}

/**
 * Groups a long-format table into sessions. Errors name the file, line and column; a session
 * whose timestamps go backwards is refused (a merged or re-sorted export is a mistake to fix,
 * not to guess at), while repeated timestamps keep their first row and are counted in a warning.
 */
export function readSessions(table: Table, cols: SequenceColumns, opts: ReadSessionsOptions = {}): SequenceData {
  const where = (c: string) => `${table.source}, column "${c}"`;
  const index = (c: string, flag: string): number => {
    const i = table.columns.indexOf(c);
    if (i < 0) throw Errors.badData(table.source, `has no column "${c}" (${flag}); columns: ${table.columns.slice(0, 30).join(', ')}`);
    return i;
  };
  const subjectCol = table.data[index(cols.subject, '--subject')]!;
  const sessionCol = cols.session !== undefined ? table.data[index(cols.session, '--session')]! : undefined;
  const timeCol = table.data[index(cols.time, '--time')]!;
  const targetNames = cols.targets.filter((t) => !opts.targetsOptional || table.columns.includes(t));
  for (const t of targetNames) index(t, '--target');
  const reserved = new Set([cols.subject, cols.session, cols.time, ...cols.targets, ...(cols.ignore ?? [])]);
  let channels: string[];
  let labelLike: string[] = [];
  if (cols.channels) {
    for (const c of cols.channels) {
      index(c, 'a channel');
      if (reserved.has(c)) throw Errors.usage(`column "${c}" cannot be both a channel and the subject, session, time or a target`);
    }
    channels = cols.channels;
  } else {
    const numeric = table.columns.filter((c, i) => !reserved.has(c) && table.data[i]!.stats.numCount > 0);
    // A label or outcome column is never a sensor: taken as a channel it would leak the answer
    // (energy expenditure computed from the activity) and be missing on every real device.
    labelLike = numeric.filter((c) => LABEL_NAMES.has(c.toLowerCase()));
    channels = numeric.filter((c) => !labelLike.includes(c));
    if (channels.length === 0) throw Errors.badData(table.source, 'has no channel columns holding numbers besides the subject, session, time and target columns');
  }
  const channelCols = channels.map((c) => table.data[table.columns.indexOf(c)]!);
  for (const [i, c] of channelCols.entries()) {
    if (c.stats.numCount === 0) throw Errors.badData(where(channels[i]!), 'has no numeric value in any row: every sample is missing or text; leave it out with --ignore');
  }

  const targets: TargetInfo[] = targetNames.map((name) => {
    const known = opts.knownTargets?.find((k) => k.name === name);
    if (known) return known;
    const col = table.data[table.columns.indexOf(name)]!;
    if (col.dict.size === 0 && !opts.labels) return { name, kind: 'value' };
    // Any text makes a label column: numbers in it are labels too ("1", "2" as activity codes).
    const labels = new Set<string>();
    for (let r = 0; r < table.rowCount; r++) {
      const v = col.text(r);
      if (v !== null) labels.add(v);
    }
    return { name, kind: 'class', classes: [...labels].sort() };
  });
  const targetCols = targets.map((t) => table.data[table.columns.indexOf(t.name)]!);
  const classIndex = targets.map((t) => (t.classes ? new Map(t.classes.map((c, i) => [c, i])) : undefined));

  const timeUnit = cols.timeUnit ?? detectTimeUnit(table, table.columns.indexOf(cols.time));
  const scale = timeUnit === 'ms' ? 1e-3 : 1;
  const timeOf = (r: number): number => {
    if (timeUnit === 'iso') {
      const text = timeCol.text(r);
      const ms = text === null ? null : parseDate(text);
      if (ms === null) throw Errors.badData(`${table.source}:${table.lines[r]!}`, `column "${cols.time}": not an ISO 8601 date-time`);
      return ms / 1000;
    }
    const v = timeCol.number(r);
    if (!Number.isFinite(v)) throw Errors.badData(`${table.source}:${table.lines[r]!}`, `column "${cols.time}": ${timeCol.present(r) ? 'not a number' : 'missing'} (a sample needs its time)`);
    return v * scale;
  };

  // Rows by session, in file order.
  const bySession = new Map<string, number[]>();
  for (let r = 0; r < table.rowCount; r++) {
    const subject = subjectCol.text(r);
    if (subject === null) throw Errors.badData(`${table.source}:${table.lines[r]!}`, `column "${cols.subject}" is missing (every sample needs its subject)`);
    const session = sessionCol ? sessionCol.text(r) ?? '' : '';
    const key = `${subject}\u0000${session}`;
    let rows = bySession.get(key);
    if (!rows) bySession.set(key, (rows = []));
    rows.push(r);
  }

  const sessions: Session[] = [];
  let duplicates = 0;
  for (const [key, rows] of bySession) {
    const [subject, session] = key.split('\u0000') as [string, string];
    const t: number[] = [];
    const kept: number[] = [];
    for (const r of rows) {
      const time = timeOf(r);
      const last = t.length ? t[t.length - 1]! : -Infinity;
      if (time < last) {
        throw Errors.badData(`${table.source}:${table.lines[r]!}`, `column "${cols.time}": time goes backwards within its session (which began on line ${table.lines[rows[0]!]!}); sort the samples of each session by time`);
      }
      if (time === last) {
        duplicates++;
        continue;
      }
      t.push(time);
      kept.push(r);
    }
    const n = kept.length;
    const ch = channelCols.map((c) => {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = c.number(kept[i]!);
      return a;
    });
    const tg = targetCols.map((c, j) => {
      const a = new Float64Array(n);
      const map = classIndex[j];
      for (let i = 0; i < n; i++) {
        const r = kept[i]!;
        if (!map) {
          const v = c.number(r);
          if (c.present(r) && v !== v) throw Errors.badData(`${table.source}:${table.lines[r]!}`, `column "${targets[j]!.name}": not a number`);
          a[i] = v;
        } else {
          const label = c.text(r);
          const k = label === null ? undefined : map.get(label);
          if (label !== null && k === undefined) throw Errors.badData(`${table.source}:${table.lines[r]!}`, `column "${targets[j]!.name}": a label the model was not trained on`);
          a[i] = k ?? NaN;
        }
      }
      return a;
    });
    sessions.push({ subject, session, t: Float64Array.from(t), channels: ch, targets: tg, line: table.lines[rows[0]!]! });
  }
  const warnings: Warning[] = [];
  if (labelLike.length > 0) {
    warnings.push({ code: 'label_columns_left_out', message: `column(s) ${labelLike.join(', ')} look like labels or outcomes, not sensors, and were left out of the channels (name the channels with --channels to use them)` });
  }
  if (duplicates > 0) warnings.push({ code: 'duplicate_timestamps', message: `${duplicates} sample(s) repeated an earlier timestamp of their session and were dropped (the first is kept)` });
  return { source: table.source, columns: { subject: cols.subject, ...(cols.session !== undefined ? { session: cols.session } : {}), time: cols.time }, channels, targets, sessions, timeUnit, rows: table.rowCount, warnings };
}

/**
 * Column names that hold what a model predicts rather than what a device measures: left out of
 * the default channels (`--channels` can still name them).
 */
const LABEL_NAMES: ReadonlySet<string> = new Set([
  'activity', 'label', 'labels', 'target', 'class', 'outcome', 'y',
  'energy', 'energy_expenditure', 'ee', 'kcal', 'calories', 'met', 'mets', 'vo2',
]);

/**
 * How to read a time column: texts are ISO 8601; numbers past 1e11 are epoch milliseconds, past
 * 1e8 epoch seconds; smaller ones are relative, in milliseconds when they are whole numbers a
 * step of at least 2 apart (0, 20, 40 …), else seconds (0, 0.02, 0.04 …).
 */
export function detectTimeUnit(table: Table, col: number): TimeUnit {
  const c = table.data[col]!;
  if (c.dict.size > 0) return 'iso';
  let max = -Infinity;
  let whole = true;
  const steps: number[] = [];
  let prev = NaN;
  for (let r = 0; r < table.rowCount; r++) {
    const v = c.number(r);
    if (v !== v) continue;
    if (Math.abs(v) > max) max = Math.abs(v);
    if (whole && !Number.isInteger(v)) whole = false;
    if (steps.length < 4096 && v > prev) steps.push(v - prev);
    prev = v;
  }
  if (max >= 1e11) return 'ms';
  if (max >= 1e8) return 's';
  steps.sort((a, b) => a - b);
  const median = steps.length ? steps[steps.length >> 1]! : 1;
  return whole && median >= 2 ? 'ms' : 's';
}

/**
 * The sampling rate of the data: the median interval between consecutive samples over all
 * sessions, as samples per second rounded to three significant digits (50 Hz stays 50 despite
 * clock jitter).
 */
export function detectRate(sessions: Session[]): number {
  const steps: number[] = [];
  for (const s of sessions) {
    const every = Math.max(1, Math.floor(s.t.length / 2000));
    for (let i = 1; i < s.t.length; i += every) steps.push(s.t[i]! - s.t[i - 1]!);
  }
  if (steps.length === 0) throw Errors.badData('', 'every session has a single sample: no sampling rate can be found; give --rate');
  steps.sort((a, b) => a - b);
  const rate = 1 / steps[steps.length >> 1]!;
  const p = 10 ** (Math.floor(Math.log10(rate)) - 2);
  const rounded = Math.round(rate / p) * p;
  if (!(rounded <= SEQUENCE_LIMITS.maxRate)) throw Errors.badData('', `the samples are ${steps[steps.length >> 1]} s apart (${rounded} Hz), above the ${SEQUENCE_LIMITS.maxRate} Hz medfit resamples to; give --rate`);
  return rounded;
}

/**
 * Reads a long-format table for a model that takes `channels`: channels the table lacks are
 * filled (all missing, so the model sees the training mean) and named in a warning, channels the
 * model does not know are ignored with a warning. Targets, if present, are left out.
 */
export function readSessionsFor(
  table: Table,
  cols: { subject: string; session?: string; time: string },
  channels: string[],
  timeUnit: TimeUnit | undefined,
  ignore: string[] = [],
): SequenceData {
  const present = channels.filter((c) => table.columns.includes(c));
  if (present.length === 0) throw Errors.badData(table.source, `has none of the model's channels (${channels.join(', ')})`);
  const reserved = new Set([cols.subject, cols.session, cols.time, ...ignore]);
  const extra = table.columns.filter((c, i) => !reserved.has(c) && !channels.includes(c) && table.data[i]!.stats.numCount > 0);
  const data = readSessions(table, { ...cols, targets: [], channels: present, ...(timeUnit && timeUnit !== 'iso' && table.data[table.columns.indexOf(cols.time)]?.dict.size === 0 ? { timeUnit } : {}) });
  const warnings = [...data.warnings];
  const missing = channels.filter((c) => !present.includes(c));
  if (missing.length > 0) warnings.push({ code: 'missing_channels', message: `the data lacks the model's channel(s) ${missing.join(', ')}: filled with their training means, so predictions may be less accurate` });
  if (extra.length > 0) warnings.push({ code: 'extra_channels', message: `column(s) ${extra.slice(0, 20).join(', ')} are not channels of the model and were ignored` });
  const sessions = data.sessions.map((s) => ({
    ...s,
    channels: channels.map((c) => {
      const i = present.indexOf(c);
      return i >= 0 ? s.channels[i]! : new Float64Array(s.t.length).fill(NaN);
    }),
  }));
  return { ...data, channels, sessions, warnings };
}
