/**
 * The sequence options as users write them (`--window 2.56s`, `"filter": "lowpass:15"`, the
 * usual column names), read in one place for the CLI, the job API and the job worker. Readers
 * return the problem as text so each caller words it as its surface does (a `--flag` usage error,
 * a `/sequence/...` pointer).
 */
import type { ChannelFilter } from './prepare.js';

/**
 * Bounds on what a sequence model may ask of the machine, checked when training starts and when
 * a model is loaded, so a stream or a prediction cannot be made to allocate without limit:
 * `maxRate` samples per second; `maxGapSteps` steps a gap may bridge (rate × maxGap: what one
 * sample can add to a resampling grid); `maxWindowValues` steps × channels of a window;
 * `maxResampledValues` values a training or prediction run may resample (1.6 GB of doubles).
 */
export const SEQUENCE_LIMITS = Object.freeze({ maxRate: 10_000, maxGapSteps: 100_000, maxWindowValues: 1_000_000, maxResampledValues: 200_000_000 });

/** What is wrong with a rate, gap limit, window and channel count together, or undefined. */
export function sequenceLimitProblem(o: { rate: number; maxGap: number; window: number; channels: number }): string | undefined {
  const L = SEQUENCE_LIMITS;
  if (!(o.rate > 0 && o.rate <= L.maxRate)) return `a rate of ${o.rate} Hz is outside 0..${L.maxRate} Hz`;
  if (o.rate * o.maxGap > L.maxGapSteps) return `a gap limit of ${o.maxGap} s at ${o.rate} Hz bridges ${Math.round(o.rate * o.maxGap)} steps (at most ${L.maxGapSteps}); lower the gap limit or the rate`;
  if (o.window * o.channels > L.maxWindowValues) return `a window of ${o.window} steps × ${o.channels} channels holds ${o.window * o.channels} values (at most ${L.maxWindowValues})`;
  return undefined;
}

/** Column names tried, in order, when the subject, time or session column is not named. */
export const SEQUENCE_COLUMN_DEFAULTS = {
  subject: ['subject', 'subject_id', 'user', 'participant'],
  time: ['t', 'time', 'timestamp'],
  session: ['session', 'session_id', 'recording'],
} as const;

/** The first of the usual names for `what` that `columns` has. */
export function defaultColumn(columns: readonly string[], what: keyof typeof SEQUENCE_COLUMN_DEFAULTS): string | undefined {
  return SEQUENCE_COLUMN_DEFAULTS[what].find((n) => columns.includes(n));
}

/** What to say when the usual names for `what` are all absent. */
export function noDefaultColumn(what: keyof typeof SEQUENCE_COLUMN_DEFAULTS): string {
  return `no ${SEQUENCE_COLUMN_DEFAULTS[what].map((n) => `"${n}"`).join(' or ')} column: name the ${what} column`;
}

/** A window or stride as written: a number of samples, or a duration in seconds. */
export type Length = { steps: number } | { seconds: number };

/** Reads `128`, `"128"`, `"2.56s"` or `"500ms"`; a string is the problem. */
export function readLength(v: number | string): Length | string {
  const problem = 'expected a number of samples (128) or a duration (2.56s, 500ms)';
  if (typeof v === 'number') return Number.isFinite(v) ? { steps: v } : problem;
  // Bounded before the expression sees it; the expression itself has no nested repetition.
  const m = v.length <= 32 ? /^\s*(\d+(?:\.\d+)?)\s*(s|ms|)\s*$/.exec(v) : null;
  if (!m) return problem;
  const n = Number(m[1]);
  return m[2] === '' ? { steps: n } : { seconds: m[2] === 'ms' ? n / 1000 : n };
}

/** The steps of a length at `rate`, or the problem (not a whole number from 1 to 100,000). */
export function lengthSteps(l: Length, rate: number): number | string {
  const steps = 'steps' in l ? l.steps : Math.round(l.seconds * rate);
  if (!Number.isInteger(steps) || steps < 1 || steps > 100_000) return `gives ${steps} steps${'seconds' in l ? ` at ${rate} Hz` : ''}; expected a whole number of steps from 1 to 100000`;
  return steps;
}

/** Reads `lowpass:<hz>` or `median:<samples>`; a string is the problem. */
export function readFilter(v: string, rate?: number): ChannelFilter | string {
  const m = v.length <= 32 ? /^(lowpass|median):(\d+(?:\.\d+)?)$/.exec(v) : null;
  const n = m ? Number(m[2]) : NaN;
  if (!m || !(n > 0)) return 'expected lowpass:<hz> (e.g. lowpass:15) or median:<samples> (e.g. median:5)';
  if (m[1] === 'median') return Number.isInteger(n) && n <= 101 ? { kind: 'median', size: n } : 'the median filter takes a whole number of samples, 1..101';
  if (rate !== undefined && n >= rate / 2) return `the cut-off must be below half the rate (${rate / 2} Hz)`;
  return { kind: 'lowpass', hz: n };
}
