/**
 * The profile of a sensor dataset: what a user checks before training on it. Per session its
 * length, sampling rate and gaps; per channel its range and missing share; per label how much
 * time it covers. And one session's channels over time, reduced for a plot (`sessionSeries`).
 */
import { Errors } from '../core/index.js';
import type { SequenceData, TimeUnit } from './sessions.js';

/** One session's shape. */
export interface SessionProfile {
  subject: string;
  session: string;
  samples: number;
  /** Seconds from the first sample to the last. */
  seconds: number;
  /** Samples per second: the median interval's inverse. */
  rate: number;
  /** Intervals longer than `gapSeconds` (they split the session when training). */
  gaps: number;
  longestGap: number;
}

/** One channel's values over every session. */
export interface ChannelProfile {
  name: string;
  present: number;
  missingPct: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
}

/** How much time each label of a target covers (labels of a class target, or the value range). */
export interface LabelProfile {
  name: string;
  kind: 'class' | 'value';
  /** Class targets: seconds and samples per label; bouts: runs of the label. */
  labels?: { label: string; samples: number; seconds: number; bouts: number; meanBoutSeconds: number }[];
  min?: number;
  max?: number;
  mean?: number;
}

/** The profile of a sequence dataset. */
export interface SequenceProfile {
  source: string;
  rows: number;
  subjects: number;
  sessions: SessionProfile[];
  /** The median rate over sessions. */
  rate: number;
  timeUnit: string;
  gapSeconds: number;
  channels: ChannelProfile[];
  targets: LabelProfile[];
  warnings: { code: string; message: string }[];
}

/** Profiles sessions; `gapSeconds` is the gap that would split a session (default max(2 s, 5 samples)). */
export function profileSequence(data: SequenceData, gapSeconds?: number): SequenceProfile {
  const sessions: SessionProfile[] = data.sessions.map((s) => {
    const n = s.t.length;
    const steps: number[] = [];
    for (let i = 1; i < n; i++) steps.push(s.t[i]! - s.t[i - 1]!);
    steps.sort((a, b) => a - b);
    const median = steps.length ? steps[steps.length >> 1]! : NaN;
    return { subject: s.subject, session: s.session, samples: n, seconds: n ? s.t[n - 1]! - s.t[0]! : 0, rate: median > 0 ? round3(1 / median) : NaN, gaps: 0, longestGap: steps.length ? steps[steps.length - 1]! : 0 };
  });
  const rates = sessions.map((s) => s.rate).filter((r) => r === r).sort((a, b) => a - b);
  const rate = rates.length ? rates[rates.length >> 1]! : NaN;
  const gap = gapSeconds ?? Math.max(2, 5 / (rate || 1));
  for (const [i, s] of data.sessions.entries()) {
    for (let j = 1; j < s.t.length; j++) if (s.t[j]! - s.t[j - 1]! > gap) sessions[i]!.gaps++;
  }
  const channels = data.channels.map((name, c) => {
    let present = 0;
    let total = 0;
    let sum = 0;
    let sq = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const s of data.sessions) {
      const a = s.channels[c]!;
      total += a.length;
      for (let i = 0; i < a.length; i++) {
        const v = a[i]!;
        if (v !== v) continue;
        present++;
        sum += v;
        sq += v * v;
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
    const mean = present ? sum / present : null;
    return {
      name,
      present,
      missingPct: total ? (100 * (total - present)) / total : 0,
      min: present ? min : null,
      max: present ? max : null,
      mean,
      std: present > 1 && mean !== null ? Math.sqrt(Math.max(0, (sq - present * mean * mean) / (present - 1))) : null,
    };
  });
  const targets: LabelProfile[] = data.targets.map((t, j) => {
    if (t.kind === 'value') {
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      let n = 0;
      for (const s of data.sessions) {
        for (const v of s.targets[j]!) if (v === v) (min = Math.min(min, v)), (max = Math.max(max, v)), (sum += v), n++;
      }
      return { name: t.name, kind: 'value', ...(n ? { min, max, mean: sum / n } : {}) };
    }
    const k = t.classes!.length;
    const samples = new Float64Array(k);
    const seconds = new Float64Array(k);
    const bouts = new Float64Array(k);
    for (const s of data.sessions) {
      const y = s.targets[j]!;
      for (let i = 0; i < y.length; i++) {
        const v = y[i]!;
        if (v !== v) continue;
        samples[v]!++;
        // A sample covers the time until the next one (bounded by the gap limit).
        if (i + 1 < y.length) seconds[v]! += Math.min(s.t[i + 1]! - s.t[i]!, gap);
        if (i === 0 || y[i - 1] !== v) bouts[v]!++;
      }
    }
    return {
      name: t.name,
      kind: 'class',
      labels: t.classes!.map((label, c) => ({ label, samples: samples[c]!, seconds: seconds[c]!, bouts: bouts[c]!, meanBoutSeconds: bouts[c]! ? seconds[c]! / bouts[c]! : 0 })),
    };
  });
  const warnings = [...data.warnings];
  const slow = sessions.filter((s) => rate === rate && s.rate === s.rate && Math.abs(s.rate - rate) / rate > 0.1).length;
  if (slow > 0) warnings.push({ code: 'mixed_rates', message: `${slow} session(s) sample at a rate more than 10% off the median ${rate} Hz: they are resampled to one rate when training` });
  const withGaps = sessions.filter((s) => s.gaps > 0).length;
  if (withGaps > 0) warnings.push({ code: 'gaps', message: `${withGaps} session(s) have gaps longer than ${gap} s: training splits them there rather than bridging the gap` });
  for (const c of channels) if (c.present === 0) warnings.push({ code: 'all_missing', message: `channel "${c.name}" has no value in any sample` });
  return {
    source: data.source,
    rows: data.rows,
    subjects: new Set(data.sessions.map((s) => s.subject)).size,
    sessions,
    rate,
    timeUnit: data.timeUnit,
    gapSeconds: gap,
    channels,
    targets,
    warnings,
  };
}

function round3(v: number): number {
  const p = 10 ** (Math.floor(Math.log10(v)) - 2);
  return Math.round(v / p) * p;
}

/** One session's channels over time, reduced to at most a given number of buckets for a plot. */
export interface SessionSeries {
  subject: string;
  session: string;
  /** The session's place among the dataset's sessions, in the order they first appear (0-based). */
  index: number;
  /** How many sessions the dataset has. */
  sessions: number;
  /** Samples in the session (after repeated timestamps were folded, as training reads them). */
  samples: number;
  /** Samples per bucket: 1 when every sample is shown. */
  bucket: number;
  /** Time of the session's first sample in seconds (since the epoch for absolute times). */
  start: number;
  timeUnit: TimeUnit;
  /** Per bucket, its first sample's time in seconds from `start`. */
  seconds: number[];
  /** Per channel and bucket, the smallest and largest value (null where the bucket has none). */
  channels: { name: string; min: (number | null)[]; max: (number | null)[] }[];
  /** The first class target's label per bucket: the most frequent one (on a tie, the one that got there first), null where none. */
  labels?: { name: string; values: (string | null)[] };
}

/** Options of `sessionSeries`. */
export interface SessionSeriesOptions {
  /**
   * Name the subject `subject <k>` instead of its value, `k` its 0-based index among the
   * dataset's subjects in the order they first appear: for a subject column that may identify a
   * person (a name, a record number), whose values must not leave the server.
   */
  pseudonymousSubject?: boolean;
  /** Name the session `session <index>` instead of its value (as `pseudonymousSubject`; `''` stays `''`). */
  pseudonymousSession?: boolean;
}

/**
 * The 0-based index of session `index`'s subject among the subjects of `data`, in the order they
 * first appear (sessions are in that order too, so the first session of a subject comes no later
 * than `index`). Linear in the sessions.
 */
function subjectIndex(data: SequenceData, index: number): number {
  const subject = data.sessions[index]!.subject;
  const before = new Set<string>();
  for (const s of data.sessions) {
    if (s.subject === subject) break;
    before.add(s.subject);
  }
  return before.size;
}

/**
 * Session `index` (0-based, in file order) of `data`, reduced to at most `points` buckets of
 * consecutive samples. Each bucket keeps its channels' minimum and maximum, so a spike one sample
 * long still reaches the plot, and its first sample's time, so gaps show as gaps. Linear in the
 * session's samples; a label track costs no more, however many labels there are.
 */
export function sessionSeries(data: SequenceData, index: number, points: number, opts: SessionSeriesOptions = {}): SessionSeries {
  const count = data.sessions.length;
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw Errors.badParam('session', `expected a session index from 0 to ${count - 1} (${data.source} has ${count} session${count === 1 ? '' : 's'})`);
  }
  if (!Number.isInteger(points) || points < 1) throw Errors.badParam('points', 'expected a whole number of points, at least 1');
  const s = data.sessions[index]!;
  const n = s.t.length;
  const size = Math.max(1, Math.ceil(n / points));
  const buckets = Math.ceil(n / size);
  const start = n ? s.t[0]! : 0;
  const seconds = new Array<number>(buckets);
  for (let b = 0; b < buckets; b++) seconds[b] = Math.round((s.t[b * size]! - start) * 1e6) / 1e6;
  const channels = data.channels.map((name, c) => {
    const a = s.channels[c]!;
    const min = new Array<number | null>(buckets);
    const max = new Array<number | null>(buckets);
    for (let b = 0; b < buckets; b++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = b * size, end = Math.min(n, i + size); i < end; i++) {
        const v = a[i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      // NaN (a missing value) fails both comparisons: a bucket of only missing values keeps ±Infinity.
      min[b] = lo === Infinity ? null : lo;
      max[b] = hi === -Infinity ? null : hi;
    }
    return { name, min, max };
  });
  const subject = opts.pseudonymousSubject ? `subject ${subjectIndex(data, index)}` : s.subject;
  const session = opts.pseudonymousSession && s.session !== '' ? `session ${index}` : s.session;
  const out: SessionSeries = { subject, session, index, sessions: count, samples: n, bucket: size, start, timeUnit: data.timeUnit, seconds, channels };
  const j = data.targets.findIndex((t) => t.kind === 'class');
  if (j >= 0) {
    const classes = data.targets[j]!.classes!;
    const y = s.targets[j]!;
    const votes = new Int32Array(classes.length);
    const seen: number[] = [];
    const values = new Array<string | null>(buckets);
    for (let b = 0; b < buckets; b++) {
      let best = -1;
      for (let i = b * size, end = Math.min(n, i + size); i < end; i++) {
        const k = y[i]!;
        if (k !== k) continue;
        if (votes[k] === 0) seen.push(k);
        votes[k]!++;
        if (best < 0 || votes[k]! > votes[best]!) best = k;
      }
      values[b] = best < 0 ? null : classes[best]!;
      // Only the labels this bucket saw are reset: the cost follows the samples, not the labels.
      for (const k of seen) votes[k] = 0;
      seen.length = 0;
    }
    out.labels = { name: data.targets[j]!.name, values };
  }
  return out;
}
