/**
 * The shapes of `/v1/datasets` answers (see src/api/datasets.ts, src/data/profile.ts,
 * src/data/histogram.ts and src/sequence/profile.ts) and small helpers the dataset pages share.
 */

export type ColumnType = 'numeric' | 'integer' | 'boolean' | 'categorical' | 'datetime' | 'text' | 'identifier' | string;

/** A dataset as listed (`GET /v1/datasets`) and as the upload answers it. */
export interface Dataset {
  id: string;
  name: string;
  format: string;
  rows: number;
  bytes: number;
  sha256: string;
  created: string;
  columns: { name: string; type: ColumnType; missing: number }[];
}

export interface Histogram {
  edges: number[];
  counts: number[];
  below: number;
  above: number;
  exact: boolean;
}

export interface ColumnProfile {
  name: string;
  type: ColumnType;
  role: 'feature' | 'target' | 'ignored' | string;
  reason?: string;
  identifier?: string;
  missing: number;
  missingPct: number;
  invalid: number;
  distinct: number;
  distinctApprox: boolean;
  min?: number;
  max?: number;
  mean?: number;
  std?: number;
  q1?: number;
  median?: number;
  q3?: number;
  outliers?: number;
  histogram?: Histogram;
  top?: { value: string | number | boolean | null; count: number }[];
}

export interface TargetProfile {
  column: string;
  type: ColumnType;
  balance?: Record<string, number>;
  summary?: { min: number; max: number; mean: number; std: number; median: number };
}

export interface Warning {
  code: string;
  message: string;
  column?: string;
}

export interface TableProfile {
  source: string;
  format: string;
  rows: number;
  duplicateRows: number;
  columns: ColumnProfile[];
  target?: TargetProfile;
  warnings: Warning[];
  approximate?: { quantiles: boolean; distinct: boolean; duplicateRows: boolean };
}

/** The sequence (sensor) profile, `SequenceProfile` of src/sequence/profile.ts, when the API serves it. */
export interface SequenceProfile {
  source: string;
  rows: number;
  subjects: number;
  sessions: { subject: string; session: string; samples: number; seconds: number; rate: number | null; gaps: number; longestGap: number }[];
  rate: number | null;
  timeUnit: string;
  gapSeconds: number;
  channels: { name: string; present: number; missingPct: number; min: number | null; max: number | null; mean: number | null; std: number | null }[];
  targets: {
    name: string;
    kind: 'class' | 'value';
    labels?: { label: string; samples: number; seconds: number; bouts: number; meanBoutSeconds: number }[];
    min?: number;
    max?: number;
    mean?: number;
  }[];
  warnings: Warning[];
}

/** `GET /v1/datasets/:id`: the dataset, its table profile and (when served) its sequence profile. */
export interface DatasetDetail extends Dataset {
  profile: (TableProfile & { sequence?: SequenceProfile }) | null;
  sequence?: SequenceProfile;
}

/**
 * `GET /v1/datasets/:id/series`: one session's channels over time (`SessionSeries`); train scope
 * only. The label track is never a column that may identify a person, nor one of many values.
 */
export interface SessionSeries {
  /** The subject, or "subject <k>" (by index) when its column may identify a person. */
  subject: string;
  /** The session's name, or "session <index>" when it or the subject is a pseudonym. */
  session: string;
  index: number;
  sessions: number;
  samples: number;
  bucket: number;
  start: number;
  timeUnit: 'iso' | 's' | 'ms' | string;
  seconds: number[];
  channels: { name: string; min: (number | null)[]; max: (number | null)[] }[];
  labels?: { name: string; values: (string | null)[] };
}

/** The usual names of a sensor table's columns (`SEQUENCE_COLUMN_DEFAULTS` of src/sequence/options.ts). */
export const SENSOR_COLUMNS = {
  subject: ['subject', 'subject_id', 'user', 'participant'],
  time: ['t', 'time', 'timestamp'],
  session: ['session', 'session_id', 'recording'],
} as const;

/** The subject, time and session columns of a long-format sensor table, or null when it is not one. */
export function sensorColumns(names: string[]): { subject: string; time: string; session: string | undefined } | null {
  const subject = SENSOR_COLUMNS.subject.find((n) => names.includes(n));
  const time = SENSOR_COLUMNS.time.find((n) => names.includes(n));
  if (!subject || !time) return null;
  return { subject, time, session: SENSOR_COLUMNS.session.find((n) => names.includes(n)) };
}

/** A duration in seconds, readable: "850 ms", "12.5 s", "4:05", "1:02:03". */
export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  if (s === 0) return '0 s';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${Number(s.toFixed(s < 10 ? 2 : 1))} s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A short number for tight places: 4 significant digits, thousands separated. */
export function short(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e9)) return x.toExponential(2);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  return Number(x.toPrecision(4)).toLocaleString('en-US', { maximumFractionDigits: 6 });
}

/** A share as a percentage with sensible precision ("0%", "0.4%", "12%", "100%"). */
export function share(part: number, whole: number): string {
  if (!whole) return '–';
  const p = (100 * part) / whole;
  if (p === 0) return '0%';
  if (p < 1) return `${p.toFixed(1)}%`;
  return `${Math.round(p)}%`;
}

/** Light fills for labels (a label track's bands and swatches), dark text stays readable on them. */
export const LABEL_FILLS = ['#cfe3f8', '#fbd9bf', '#c9ecd3', '#e6d6f5', '#f8cdcd', '#c4ecea', '#f5e6a8', '#dde3ea', '#f3cde6', '#d9e8b8'];

