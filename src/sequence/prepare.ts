/**
 * From sessions to model-ready windows: resampling to a fixed rate (gaps longer than a limit
 * split a session into segments rather than being bridged), optional filtering, per-channel
 * normalisation fitted on training subjects only, and windows with their labels. The same
 * functions prepare training data, test files, batch predictions and live streams, from the
 * `SequencePrep` saved with the model, so serving cannot drift from training.
 */
import { Errors, type Matrix, type Warning } from '../core/index.js';
import { SEQUENCE_LIMITS, sequenceLimitProblem } from './options.js';
import type { Session, TargetInfo, TimeUnit } from './sessions.js';

/** Version of the `SequencePrep` JSON; a model with another is refused. */
export const SEQUENCE_PREP_VERSION = 1;

/** An optional filter applied to each channel after resampling (causal, so streams match batches). */
export type ChannelFilter = { kind: 'lowpass'; hz: number } | { kind: 'median'; size: number };

/** How a window's label is taken from its samples' labels. */
export type WindowLabel = 'majority' | 'last' | 'mean';

/** Resampling, filtering and windowing choices (what the CLI's flags set). */
export interface WindowOptions {
  /** Samples per second after resampling. */
  rate: number;
  /** Steps per window. */
  window: number;
  /** Steps between window starts. */
  stride: number;
  /** A gap between samples longer than this many seconds starts a new segment. */
  maxGap: number;
  /** Classes: `majority` (default) or `last`; values: `mean` (default) or `last`. */
  label?: WindowLabel;
  filter?: ChannelFilter;
}

/**
 * Everything needed to turn raw samples into a model's input: saved in the model's manifest.
 * `mean`/`std` are fitted on training subjects' samples only.
 */
export interface SequencePrep extends WindowOptions {
  version: typeof SEQUENCE_PREP_VERSION;
  columns: { subject: string; session?: string; time: string };
  /** How numeric times were read in training, so served samples are read the same way. */
  timeUnit: TimeUnit;
  channels: string[];
  targets: TargetInfo[];
  mean: number[];
  std: number[];
}

/** A stretch of a session at the fixed rate, without gaps longer than `maxGap`. */
export interface Segment {
  subject: string;
  session: string;
  /** Time of the first step, seconds. */
  start: number;
  /** Steps. */
  n: number;
  /** Per channel, `n` values (NaN where no sample was close enough). */
  channels: Float64Array[];
  /** Per target, `n` values (class index or value; NaN where unknown). */
  targets: Float64Array[];
}

/** Where a window came from. */
export interface WindowInfo {
  subject: string;
  session: string;
  /** Seconds: the first step's time and the last step's. */
  start: number;
  end: number;
  /** Steps of zero padding in front (a segment shorter than the window). */
  padded: number;
}

/** Windows ready for a model. */
export interface Windows {
  /** One row per window, flattened step-major (`[s * channels + c]`). */
  x: Matrix;
  /** Per target, one label per window (NaN when the window has none). */
  y: Float64Array[];
  info: WindowInfo[];
  /** Channel cells that were missing and filled with the channel's mean. */
  filled: number;
}

/**
 * Resamples a session to `rate`: linear interpolation between the nearest samples on either side
 * for channels (each channel on its own, so a heart rate sampled at 1 Hz joins a 50 Hz
 * accelerometer), the last label at or before each step for targets. Where consecutive samples
 * are more than `maxGap` seconds apart the session is cut into segments.
 */
export function resampleSession(s: Session, rate: number, maxGap: number): Segment[] {
  const out: Segment[] = [];
  const n = s.t.length;
  let a = 0;
  while (a < n) {
    let b = a;
    while (b + 1 < n && s.t[b + 1]! - s.t[b]! <= maxGap) b++;
    out.push(resampleRun(s, a, b, rate, maxGap));
    a = b + 1;
  }
  return out;
}

function resampleRun(s: Session, a: number, b: number, rate: number, maxGap: number): Segment {
  const t0 = s.t[a]!;
  const steps = Math.floor((s.t[b]! - t0) * rate + 1e-6) + 1;
  const channels = s.channels.map((src) => {
    const dst = new Float64Array(steps);
    // Two pointers: `lo` is the last present sample at or before the step's time.
    let lo = -1;
    let hi = a;
    for (let i = 0; i < steps; i++) {
      const g = t0 + i / rate;
      while (hi <= b && (s.t[hi]! <= g + 1e-9 || src[hi]! !== src[hi]!)) {
        if (src[hi]! === src[hi]!) lo = hi;
        hi++;
      }
      // `hi` is now the first present sample after g (or past the run).
      const before = lo >= 0 ? g - s.t[lo]! : Infinity;
      const after = hi <= b ? s.t[hi]! - g : Infinity;
      if (before <= 1e-9) dst[i] = src[lo]!;
      else if (before + after <= maxGap) dst[i] = src[lo]! + ((src[hi]! - src[lo]!) * before) / (before + after);
      else if (before <= maxGap / 2) dst[i] = src[lo]!;
      else if (after <= maxGap / 2) dst[i] = src[hi]!;
      else dst[i] = NaN;
    }
    return dst;
  });
  const targets = s.targets.map((src) => {
    const dst = new Float64Array(steps);
    let j = a;
    for (let i = 0; i < steps; i++) {
      const g = t0 + i / rate;
      while (j < b && s.t[j + 1]! <= g + 1e-9) j++;
      dst[i] = src[j]!;
    }
    return dst;
  });
  return { subject: s.subject, session: s.session, start: t0, n: steps, channels, targets };
}

/**
 * Applies a causal filter to every channel of a segment in place: a second-order Butterworth
 * low-pass (bilinear transform) or a trailing median. Causal, so a stream filtered sample by
 * sample gives the same numbers as the whole recording. NaN samples pass through untouched and
 * restart the filter.
 */
export function filterSegment(seg: Segment, filter: ChannelFilter, rate: number): void {
  for (const ch of seg.channels) {
    if (filter.kind === 'median') medianFilter(ch, filter.size);
    else lowpass(ch, filter.hz, rate);
  }
}

function lowpass(x: Float64Array, hz: number, rate: number): void {
  if (!(hz > 0 && hz < rate / 2)) throw Errors.usage(`--filter lowpass:${hz}: the cut-off must be above 0 and below half the rate (${rate / 2} Hz)`);
  const k = Math.tan((Math.PI * hz) / rate);
  const q = Math.SQRT1_2;
  const norm = 1 / (1 + k / q + k * k);
  const b0 = k * k * norm;
  const b1 = 2 * b0;
  const a1 = 2 * (k * k - 1) * norm;
  const a2 = (1 - k / q + k * k) * norm;
  let x1 = NaN;
  let x2 = NaN;
  let y1 = NaN;
  let y2 = NaN;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v !== v) {
      x1 = x2 = y1 = y2 = NaN;
      continue;
    }
    // Start from rest at the first value, so the output does not ring up from zero.
    if (x1 !== x1) x1 = x2 = y1 = y2 = v;
    const y = b0 * v + b1 * x1 + b0 * x2 - a1 * y1 - a2 * y2;
    x2 = x1;
    x1 = v;
    y2 = y1;
    y1 = y;
    x[i] = y;
  }
}

function medianFilter(x: Float64Array, size: number): void {
  const src = Float64Array.from(x);
  const buf = new Float64Array(size);
  for (let i = 0; i < x.length; i++) {
    let m = 0;
    for (let j = Math.max(0, i - size + 1); j <= i; j++) if (src[j]! === src[j]!) buf[m++] = src[j]!;
    if (m === 0) continue;
    const w = buf.subarray(0, m).sort();
    x[i] = m % 2 ? w[m >> 1]! : (w[m / 2 - 1]! + w[m / 2]!) / 2;
  }
}

/** Per-channel mean and standard deviation over the present samples of `segments` (training subjects only). */
export function fitNormaliser(segments: Segment[], channels: number): { mean: number[]; std: number[] } {
  const sum = new Float64Array(channels);
  const sq = new Float64Array(channels);
  const count = new Float64Array(channels);
  for (const seg of segments) {
    for (let c = 0; c < channels; c++) {
      const a = seg.channels[c]!;
      for (let i = 0; i < a.length; i++) {
        const v = a[i]!;
        if (v === v) {
          sum[c]! += v;
          sq[c]! += v * v;
          count[c]!++;
        }
      }
    }
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c++) {
    const m = count[c]! > 0 ? sum[c]! / count[c]! : 0;
    const v = count[c]! > 1 ? Math.max(0, sq[c]! / count[c]! - m * m) : 0;
    mean.push(m);
    // A constant channel keeps its values at zero rather than dividing by zero.
    std.push(v > 1e-24 ? Math.sqrt(v) : 1);
  }
  return { mean, std };
}

/**
 * Cuts segments into windows of `window` steps every `stride` steps, normalised by `norm`
 * (missing values become 0, the channel's training mean). A segment shorter than a window but at
 * least half as long gives one window, zero-padded in front (as Keras pads sequences) and marked
 * in `info.padded`; shorter ones are skipped.
 */
export function windowize(
  segments: Segment[],
  opts: { window: number; stride: number; label?: WindowLabel | undefined; rate: number },
  norm: { mean: number[]; std: number[] },
  targets: TargetInfo[],
): Windows {
  const W = opts.window;
  const C = norm.mean.length;
  let count = 0;
  for (const seg of segments) count += windowCount(seg.n, W, opts.stride);
  const x: Matrix = { rows: count, cols: W * C, data: new Float64Array(count * W * C) };
  const y = targets.map(() => new Float64Array(count));
  const info: WindowInfo[] = [];
  let filled = 0;
  let row = 0;
  for (const seg of segments) {
    const k = windowCount(seg.n, W, opts.stride);
    for (let w = 0; w < k; w++) {
      const from = seg.n >= W ? w * opts.stride : 0;
      const len = Math.min(W, seg.n);
      const pad = W - len;
      const base = row * W * C;
      for (let c = 0; c < C; c++) {
        const src = seg.channels[c]!;
        const m = norm.mean[c]!;
        const sd = norm.std[c]!;
        for (let s = 0; s < len; s++) {
          const v = src[from + s]!;
          if (v === v) x.data[base + (pad + s) * C + c] = (v - m) / sd;
          else filled++;
        }
      }
      for (const [j, t] of targets.entries()) y[j]![row] = windowLabel(seg.targets[j]!, from, len, t.kind, opts.label);
      info.push({ subject: seg.subject, session: seg.session, start: seg.start + from / opts.rate, end: seg.start + (from + len - 1) / opts.rate, padded: pad });
      row++;
    }
  }
  return { x, y, info, filled };
}

/** Windows a segment of `n` steps gives. */
export function windowCount(n: number, window: number, stride: number): number {
  if (n >= window) return Math.floor((n - window) / stride) + 1;
  return n * 2 >= window ? 1 : 0;
}

function windowLabel(a: Float64Array, from: number, len: number, kind: 'class' | 'value', mode: WindowLabel | undefined): number {
  if (mode === 'last') {
    for (let i = from + len - 1; i >= from; i--) if (a[i]! === a[i]!) return a[i]!;
    return NaN;
  }
  if (kind === 'value') {
    let sum = 0;
    let n = 0;
    for (let i = from; i < from + len; i++) if (a[i]! === a[i]!) (sum += a[i]!), n++;
    return n ? sum / n : NaN;
  }
  // Majority; a tie goes to the label that reached the count first.
  const counts = new Map<number, number>();
  let best = NaN;
  let bestCount = 0;
  for (let i = from; i < from + len; i++) {
    const v = a[i]!;
    if (v !== v) continue;
    const c = (counts.get(v) ?? 0) + 1;
    counts.set(v, c);
    if (c > bestCount) {
      bestCount = c;
      best = v;
    }
  }
  return best;
}

/** How many values resampling `sessions` at `rate` would make (steps of every segment × channels). */
export function resampledValues(sessions: Session[], rate: number, maxGap: number): number {
  let steps = 0;
  for (const s of sessions) {
    let a = 0;
    for (let i = 1; i <= s.t.length; i++) {
      if (i === s.t.length || s.t[i]! - s.t[i - 1]! > maxGap) {
        steps += Math.floor((s.t[i - 1]! - s.t[a]!) * rate + 1e-6) + 1;
        a = i;
      }
    }
  }
  return steps * Math.max(1, sessions[0]?.channels.length ?? 1);
}

/**
 * Resamples and filters sessions into segments. Refuses first, before allocating, when the grid
 * would exceed `SEQUENCE_LIMITS.maxResampledValues` (samples hours apart at a high rate).
 */
export function segmentsOf(sessions: Session[], opts: WindowOptions): Segment[] {
  const values = resampledValues(sessions, opts.rate, opts.maxGap);
  if (values > SEQUENCE_LIMITS.maxResampledValues) {
    throw Errors.badData('', `resampling at ${opts.rate} Hz would make ${values.toExponential(2)} values (at most ${SEQUENCE_LIMITS.maxResampledValues.toExponential(1)}); lower the rate or the gap limit, or split the data`);
  }
  const out: Segment[] = [];
  for (const s of sessions) {
    for (const seg of resampleSession(s, opts.rate, opts.maxGap)) {
      if (opts.filter) filterSegment(seg, opts.filter, opts.rate);
      out.push(seg);
    }
  }
  return out;
}

/** Warnings about windows: padded ones and filled cells. */
export function windowWarnings(w: Windows): Warning[] {
  const out: Warning[] = [];
  const padded = w.info.filter((i) => i.padded > 0).length;
  if (padded > 0) out.push({ code: 'padded_windows', message: `${padded} window(s) came from segments shorter than a window and were zero-padded in front` });
  if (w.filled > 0) out.push({ code: 'filled_samples', message: `${w.filled} channel value(s) in the windows were missing (a channel the data lacks, or no sample close enough in time) and were filled with the channel's training mean` });
  return out;
}

/** Checks a saved `SequencePrep` (from a manifest) and returns it typed. */
export function validateSequencePrep(p: unknown, where: string): SequencePrep {
  const bad = (m: string) => Errors.manifest(where, `sequence preparation: ${m}`);
  if (!p || typeof p !== 'object') throw bad('missing');
  const s = p as SequencePrep;
  if (s.version !== SEQUENCE_PREP_VERSION) throw bad(`version ${String(s.version)} is not ${SEQUENCE_PREP_VERSION}`);
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!(typeof s.rate === 'number' && s.rate > 0 && Number.isFinite(s.rate))) throw bad('rate must be a positive number');
  if (!posInt(s.window) || !posInt(s.stride)) throw bad('window and stride must be positive integers');
  if (!(typeof s.maxGap === 'number' && s.maxGap > 0)) throw bad('maxGap must be positive');
  if (!Array.isArray(s.channels) || s.channels.length === 0 || !s.channels.every((c) => typeof c === 'string')) throw bad('channels must be a list of names');
  const C = s.channels.length;
  if (!Array.isArray(s.mean) || !Array.isArray(s.std) || s.mean.length !== C || s.std.length !== C) throw bad('mean and std must have one entry per channel');
  if (![...s.mean, ...s.std].every((v) => typeof v === 'number' && Number.isFinite(v)) || s.std.some((v) => v <= 0)) throw bad('mean and std must be finite, std positive');
  const limit = sequenceLimitProblem({ rate: s.rate, maxGap: s.maxGap, window: s.window, channels: C });
  if (limit) throw bad(limit);
  if (!s.columns || typeof s.columns.subject !== 'string' || typeof s.columns.time !== 'string') throw bad('columns must name the subject and time');
  if (!Array.isArray(s.targets)) throw bad('targets must be a list');
  return s;
}
