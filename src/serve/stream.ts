/**
 * Live predictions from a stream of samples: a per-device incremental windower that gives, window
 * by window and as soon as each can be known, exactly the windows the batch path gives on the
 * whole recording (`resampleSession` → `filterSegment` → `windowize` with the model's
 * `SequencePrep`), while holding only what later steps still need.
 *
 * Why each window is exactly the batch's:
 * - the resampling grid of a segment is anchored at its first sample (`t0 + i / rate`, the same
 *   expression), and a step's value depends only on the last present sample at or before it (`lo`)
 *   and the first after it (`hi`) of its channel. A step is computed once `hi` has arrived, or once
 *   no later sample can change the result: every later sample is later than the latest time seen
 *   (`tB`), so when `tB - g > maxGap/2` and `before + (tB - g) > maxGap` neither interpolation nor
 *   the nearest later sample can be chosen (floating-point subtraction and addition are monotone,
 *   so the bounds hold for the computed values too); or once the segment has ended (a gap longer
 *   than `maxGap`, or the end of the stream), where the batch has no `hi` either;
 * - the filters are causal (second-order low-pass, trailing median), run step by step with the
 *   same arithmetic and restarted per segment;
 * - windows are cut and normalised as `windowize` does, a short segment's zero-padded window
 *   included (known only when its segment ends).
 *
 * Bounded memory: per channel, the present samples not yet consumed (a sample between two others
 * with no grid point in between can never be `lo` or `hi` and is dropped on arrival), the
 * filter's state, and the last `window` steps (allocated as steps arrive, not up front); at most
 * `STREAM_MAX_PENDING` samples in all.
 *
 * Bounded work: one sample may add at most `STREAM_MAX_STEPS_PER_SAMPLE` steps to the grid (a
 * later one is refused), and the steps and windows a sample (or the end) completes are worked
 * through in slices of at most `STREAM_MAX_WINDOWS_PER_SLICE` windows and
 * `STREAM_MAX_VALUES_PER_SLICE` values: while `busy`, the caller takes what is ready and calls
 * `more()` (yielding to the event loop in between), so no push holds the event loop or memory
 * without bound, whatever the model's rate, gap limit and window.
 */
import { Errors, type Matrix } from '../core/index.js';
import { isMissing, parseDate, parseNumber, shortName } from '../data/index.js';
import { formatPredictions, type Prediction } from '../registry/index.js';
import type { SequencePrep } from '../sequence/index.js';
import type { ServedSequence } from './types.js';

/** Most present samples one stream may hold waiting for later ones (all channels together). */
export const STREAM_MAX_PENDING = 200_000;

/**
 * Most resampling steps one sample may add to its segment's grid: a sample later than the
 * previous one by more than this many steps of the model's rate (but within its gap limit, so the
 * batch would interpolate across) is refused. Each step is computed, filtered and may complete a
 * window, so without this one 32-byte sample could make a model with a high rate and a long gap
 * limit work through hundreds of millions of steps. It equals the model-side bound on rate ×
 * maxGap (`SEQUENCE_LIMITS.maxGapSteps`, checked when a model is trained and loaded), and the
 * check is `(t - previous) × rate > limit` with `t - previous ≤ maxGap`, so for a model within that
 * bound it never refuses a sample the batch path takes.
 */
export const STREAM_MAX_STEPS_PER_SAMPLE = 100_000;

/**
 * Most windows completed in one slice of work (a `push`, `end` or `more` call); what is left waits
 * for `more()`. Sized so that a slice is a few milliseconds to tens of milliseconds of work.
 */
export const STREAM_MAX_WINDOWS_PER_SLICE = 4096;

/**
 * Most values one slice of work may touch: each step costs its channels (times the median
 * filter's size) plus `STEP_OVERHEAD`, each window its `window × channels` values (1 Mi values:
 * 8 MiB of windows, about 10 ms). A slice always completes at least one step, so a window larger
 * than this is one per slice.
 */
export const STREAM_MAX_VALUES_PER_SLICE = 1024 * 1024;

/** What finalising a step costs besides its channels' values, counted as values. */
const STEP_OVERHEAD = 16;

/** The largest median filter (samples) a streamed model may have: what training allows. */
const MAX_MEDIAN_SIZE = 101;

/** Most unknown keys a warning names. */
const MAX_NAMED_KEYS = 20;

/** A window ready for the model, with where it lies in the stream. */
export interface StreamWindow {
  /** 0, 1, 2 … in the order windows complete. */
  index: number;
  /** Seconds: the first step's time and the last step's. */
  start: number;
  end: number;
  /** The same times as the samples wrote them: ISO 8601 texts, or numbers in the model's unit. */
  startTime: string | number;
  endTime: string | number;
  /** Steps of zero padding in front (a segment shorter than the window). */
  padded: number;
  /** Channel values with no sample close enough, left at the training mean. */
  filled: number;
  /** `window × channels` values, step-major and normalised (one row of `windowize`'s `x`). */
  x: Float64Array;
}

/** What the windower produced, in order: windows and warnings. */
export type StreamEvent = { window: StreamWindow } | { warning: string };

/** One line of a stream's answer (HTTP NDJSON line, MQTT message). */
export type StreamLine = ({ window: number; start: string | number; end: string | number; padded?: number } & Prediction) | { warning: string } | { error: string };

interface ChannelState {
  /** Present samples not yet consumed (times, values), from `head`. */
  qt: number[];
  qv: number[];
  head: number;
  /** The last present sample at or before the grid point being computed. */
  hasLo: boolean;
  loT: number;
  loV: number;
  /** Time of the present sample before the queue's last one (NaN when none in this segment). */
  prevT: number;
  /** Time of the last present sample of this segment (NaN when none). */
  lastT: number;
  /** Low-pass state. */
  x1: number;
  x2: number;
  y1: number;
  y2: number;
  /** The median filter's last resampled (unfiltered) values, a ring. */
  med: Float64Array;
  /** Whether the stream has had any value of this channel. */
  seen: boolean;
}

/**
 * The incremental windower of one device's stream. `push` samples in arrival order, `end` when the
 * stream ends; `take` hands out the windows (and warnings) completed so far. A sample refused by
 * `push` (a `MedfitError`: bad time, bad value, a jump of too many steps) leaves the state as it
 * was, so a stream may go on.
 *
 * When a `push` or `end` leaves `busy` true, its work did not fit one slice: take the events, then
 * call `more()` until `busy` is false (a `push` or `end` meanwhile is refused as our bug).
 */
export class StreamWindows {
  readonly prep: SequencePrep;
  private readonly C: number;
  private readonly W: number;
  private readonly channelIndex = new Map<string, number>();
  /** Keys a sample may carry besides channels, ignored without a warning. */
  private readonly quiet = new Set<string>();
  private readonly ch: ChannelState[];
  private readonly lp: { b0: number; b1: number; a1: number; a2: number } | undefined;
  private readonly medSize: number;
  private readonly medScratch: Float64Array;
  private readonly tmp: Float64Array;
  private readonly incoming: Float64Array;
  /**
   * The last `window` finalised (filtered) steps of the segment, `[(step % W) * C + c]`: grown as
   * the first segment's steps arrive, up to `window × channels` values.
   */
  private ring = new Float64Array(0);
  /** What one finalised step costs of a slice's value budget. */
  private readonly stepCost: number;

  private open = false;
  private t0 = 0;
  /** Latest sample time of the segment (every later sample is later). */
  private tB = 0;
  /** Steps the segment has so far, and steps finalised. */
  private n = 0;
  private next = 0;
  /** Latest sample time of the stream (-Infinity before the first). */
  private last = -Infinity;
  /** Whether the stream's times are ISO 8601 texts (undefined before the first sample). */
  private sawIso: boolean | undefined;
  private duplicates = 0;
  private pendingCount = 0;

  private events: StreamEvent[] = [];
  private pendingWindows = 0;
  private windows = 0;
  private warnedUnknown = false;
  private warnedMissing = false;
  private paddedCount = 0;
  private filledCount = 0;
  private ended = false;

  /** Work left over from a slice: the segment's steps (`stalled`), or its close (`closing`). */
  private stalled = false;
  private closing = false;
  /** `end()` is in progress (its segment is closing). */
  private ending = false;
  /** The sample that opens the next segment once the closing one is done. */
  private hasDeferred = false;
  private deferredT = 0;
  private readonly deferredValues: Float64Array;
  /** What is left of the current slice. */
  private roomWindows = 0;
  private roomValues = 0;

  constructor(prep: SequencePrep) {
    this.prep = prep;
    this.C = prep.channels.length;
    this.W = prep.window;
    prep.channels.forEach((c, i) => this.channelIndex.set(c, i));
    for (const k of [prep.columns.time, 't', prep.columns.subject, ...(prep.columns.session !== undefined ? [prep.columns.session] : []), ...prep.targets.map((t) => t.name)]) this.quiet.add(k);
    const f = prep.filter;
    if (f?.kind === 'lowpass') {
      const rate = prep.rate;
      const hz = f.hz;
      if (!(hz > 0 && hz < rate / 2)) throw Errors.badData('', `the model's low-pass filter (${hz} Hz) is not below half its rate (${rate / 2} Hz)`);
      // The same coefficients, by the same expressions, as the batch filter (sequence/prepare.ts).
      const k = Math.tan((Math.PI * hz) / rate);
      const q = Math.SQRT1_2;
      const norm = 1 / (1 + k / q + k * k);
      const b0 = k * k * norm;
      this.lp = { b0, b1: 2 * b0, a1: 2 * (k * k - 1) * norm, a2: (1 - k / q + k * k) * norm };
    }
    if (f?.kind === 'median' && !(f.size >= 1 && f.size <= MAX_MEDIAN_SIZE)) throw Errors.badData('', `the model's median filter (${f.size} samples) is outside 1..${MAX_MEDIAN_SIZE} samples`);
    this.medSize = f?.kind === 'median' ? Math.max(1, Math.floor(f.size)) : 0;
    this.medScratch = new Float64Array(Math.max(1, this.medSize));
    this.tmp = new Float64Array(this.C);
    this.incoming = new Float64Array(this.C);
    this.deferredValues = new Float64Array(this.C);
    this.stepCost = this.C * Math.max(1, this.medSize) + STEP_OVERHEAD;
    this.ch = prep.channels.map(() => ({
      qt: [],
      qv: [],
      head: 0,
      hasLo: false,
      loT: NaN,
      loV: NaN,
      prevT: NaN,
      lastT: NaN,
      x1: NaN,
      x2: NaN,
      y1: NaN,
      y2: NaN,
      med: new Float64Array(Math.max(1, this.medSize)),
      seen: false,
    }));
  }

  /** Windows completed and not yet taken. */
  get pending(): number {
    return this.pendingWindows;
  }

  /**
   * Most windows worth holding before they are taken and run through the model together: as
   * many as `STREAM_MAX_VALUES_PER_SLICE` values hold (at least one), so that a model with large
   * windows is never handed gigabytes at once.
   */
  get batchLimit(): number {
    return Math.max(1, Math.floor(STREAM_MAX_VALUES_PER_SLICE / (this.W * this.C)));
  }

  /** Samples held waiting for later ones (what the buffer bound applies to). */
  get held(): number {
    return this.pendingCount;
  }

  /** Windows completed so far in this stream. */
  get windowCount(): number {
    return this.windows;
  }

  /**
   * Whether the last `push`, `end` or `more` left work for another slice: take the events, then
   * call `more()` (after yielding to the event loop) until this is false.
   */
  get busy(): boolean {
    return this.closing || this.stalled;
  }

  /** Does the next slice of the work left over (nothing when not `busy`). */
  more(): void {
    if (this.busy) this.run();
  }

  /**
   * Adds one sample (`{"t": …, "<channel>": number | null, …}`), read as batch samples are: the
   * model's time column or `t` (numbers in the model's unit, or ISO 8601 texts, not mixed), channel
   * values as numbers (or texts that read as numbers; null or a missing token is missing). A
   * sample repeating the previous time is dropped, as the batch reader does (a warning says so). A
   * sample that cannot be used (time going backwards, a value that is not a number) is refused
   * with a `MedfitError` that names the key, never its value; nothing changes then.
   */
  push(sample: unknown): void {
    if (this.ended || this.ending) throw Errors.badData('', 'the stream has ended');
    if (this.busy) throw Errors.internal('a stream sample was pushed while the previous one\'s windows were still being cut (call more() while busy)');
    if (sample === null || typeof sample !== 'object' || Array.isArray(sample)) throw Errors.badData('', 'expected a sample object ({"t": …, "<channel>": number, …})');
    const rec = sample as Record<string, unknown>;
    const { t, iso } = this.timeOf(rec);
    const values = this.incoming;
    values.fill(NaN);
    let unknown: string[] | undefined;
    for (const key of Object.keys(rec)) {
      const c = this.channelIndex.get(key);
      if (c === undefined) {
        if (!this.quiet.has(key) && !this.warnedUnknown) (unknown ??= []).push(key);
        continue;
      }
      // As training files and batch samples are read: numbers, texts that read as numbers; null
      // or a missing token is a missing value.
      const v = rec[key];
      if (v === null) continue;
      if (typeof v === 'number' && Number.isFinite(v)) values[c] = v;
      else if (typeof v === 'string' && isMissing(v)) continue;
      else if (typeof v === 'string' && parseNumber(v) !== null) values[c] = parseNumber(v)!;
      else throw Errors.badData('', `channel "${shortName(key)}": expected a number (or null when missing)`);
    }
    if (this.sawIso !== undefined && this.sawIso !== iso) {
      throw Errors.badData('', `the time mixes ${iso ? 'an ISO 8601 date-time' : 'a number'} with the ${this.sawIso ? 'ISO 8601 date-times' : 'numbers'} of earlier samples`);
    }
    if (t < this.last) throw Errors.badData('', 'time goes backwards: it is earlier than the previous sample\'s; send samples in time order');
    if (this.pendingCount >= STREAM_MAX_PENDING) {
      throw Errors.tooLarge(`the stream holds ${STREAM_MAX_PENDING} samples waiting for later ones (a channel has no value for too long at this sample rate)`);
    }
    if (t === this.last) {
      // As the batch reader does: the first sample of a time is kept, a repeat dropped and counted.
      if (this.duplicates++ === 0) this.events.push({ warning: 'a sample repeated the previous sample\'s time and was dropped (the first is kept); repeats are counted at the end' });
      return;
    }
    // A gap longer than maxGap ends the segment (the next starts afresh at this sample); within
    // it, the grid grows by up to (t - tB) × rate steps, every one of which is worked through.
    const closes = this.open && !(t - this.tB <= this.prep.maxGap);
    if (this.open && !closes && (t - this.tB) * this.prep.rate > STREAM_MAX_STEPS_PER_SAMPLE) {
      throw Errors.tooLarge(
        `the sample's time is more than ${STREAM_MAX_STEPS_PER_SAMPLE} steps of the model's ${this.prep.rate} Hz grid after the previous sample's, the most one sample may add (the model bridges gaps up to ${this.prep.maxGap} s); send the samples in between, or a new stream`,
      );
    }
    // Accepted: from here on nothing throws.
    this.sawIso = iso;
    if (unknown) {
      this.warnedUnknown = true;
      const named = unknown.slice(0, MAX_NAMED_KEYS).map((k) => JSON.stringify(shortName(k)));
      this.events.push({ warning: `key(s) ${named.join(', ')}${unknown.length > MAX_NAMED_KEYS ? ` and ${unknown.length - MAX_NAMED_KEYS} more` : ''} are not channels of the model (${this.prep.channels.join(', ')}) and are ignored` });
    }
    this.last = t;
    if (closes) {
      // The closing segment's last steps first (perhaps over several slices), then this sample.
      this.closing = true;
      this.hasDeferred = true;
      this.deferredT = t;
      this.deferredValues.set(values);
    } else this.place(t, values);
    this.run();
  }

  /**
   * Ends the stream: the last segment is finished (its remaining steps, a padded window). May
   * leave `busy` true, as `push` may.
   */
  end(): void {
    if (this.ended || this.ending) return;
    if (this.busy) throw Errors.internal('a stream was ended while a sample\'s windows were still being cut (call more() while busy)');
    this.ending = true;
    if (this.open) this.closing = true;
    this.run();
  }

  /** Hands out what has completed since the last call, in order. */
  take(): StreamEvent[] {
    const out = this.events;
    this.events = [];
    this.pendingWindows = 0;
    return out;
  }

  /**
   * A time as predictions of samples write it (`predictSamples`): an ISO 8601 text when the
   * samples' times are, else a number in the model's unit (seconds or milliseconds).
   */
  timeOut(seconds: number): string | number {
    if (this.sawIso === true) return new Date(Math.round(seconds * 1000)).toISOString();
    return this.prep.timeUnit === 'ms' ? Math.round(seconds * 1e6) / 1e3 : Math.round(seconds * 1e6) / 1e6;
  }

  /** The sample's time in seconds, read as batch samples are (`ModelService.predictSamples`). */
  private timeOf(rec: Record<string, unknown>): { t: number; iso: boolean } {
    const timeKey = this.prep.columns.time;
    const key = Object.hasOwn(rec, timeKey) ? timeKey : Object.hasOwn(rec, 't') ? 't' : timeKey;
    const v = Object.hasOwn(rec, key) ? rec[key] : undefined;
    const unit = this.prep.timeUnit;
    const expected = `expected a number (${unit === 'ms' ? 'milliseconds' : 'seconds'}) or an ISO 8601 date-time`;
    if (v === undefined || v === null) throw Errors.badData('', `"${shortName(key)}" is missing (every sample needs its time)`);
    if (typeof v === 'string') {
      const ms = parseDate(v);
      if (ms !== null) return { t: ms / 1000, iso: true };
      // Milliseconds times 1e-3: the batch reader's expression, so the grid is the same.
      if (unit !== 'iso' && parseNumber(v) !== null) return { t: unit === 'ms' ? parseNumber(v)! * 1e-3 : parseNumber(v)!, iso: false };
      throw Errors.badData('', `"${shortName(key)}": ${unit === 'iso' ? 'expected an ISO 8601 date-time' : expected}`);
    }
    if (typeof v === 'number' && Number.isFinite(v)) {
      if (unit === 'iso') throw Errors.badData('', `"${shortName(key)}": expected an ISO 8601 date-time (the model was trained on ISO times)`);
      return { t: unit === 'ms' ? v * 1e-3 : v, iso: false };
    }
    throw Errors.badData('', `"${shortName(key)}": ${expected}`);
  }

  /** An accepted sample into the open segment (a new one when none is open). */
  private place(t: number, values: Float64Array): void {
    if (!this.open) this.openSegment(t);
    else {
      this.tB = t;
      this.n = Math.floor((t - this.t0) * this.prep.rate + 1e-6) + 1;
    }
    for (let c = 0; c < this.C; c++) {
      const v = values[c]!;
      if (v === v) this.enqueue(this.ch[c]!, t, v);
    }
  }

  /**
   * One slice of the work: a closing segment's last steps and padded window, then the sample
   * waiting for it, the end of the stream, or the open segment's steps; stops when the slice is
   * used up (`busy` then says so).
   */
  private run(): void {
    this.roomWindows = STREAM_MAX_WINDOWS_PER_SLICE;
    this.roomValues = STREAM_MAX_VALUES_PER_SLICE;
    if (this.closing) {
      if (!this.advance(true)) return;
      const n = this.n;
      if (n < this.W && n * 2 >= this.W) this.emit(0, n);
      this.open = false;
      this.closing = false;
      if (this.hasDeferred) {
        this.hasDeferred = false;
        this.place(this.deferredT, this.deferredValues);
      }
    }
    if (this.ending) {
      this.ending = false;
      this.ended = true;
      if (this.duplicates > 1) this.events.push({ warning: `${this.duplicates} sample(s) repeated the previous sample's time and were dropped (the first is kept)` });
      if (this.paddedCount > 0) this.events.push({ warning: `${this.paddedCount} window(s) came from segments shorter than a window and were zero-padded in front` });
      if (this.filledCount > 0) this.events.push({ warning: `${this.filledCount} channel value(s) had no sample close enough in time and were filled with the channel's training mean` });
      return;
    }
    this.stalled = this.open && !this.advance(false);
  }

  private openSegment(t: number): void {
    this.open = true;
    this.t0 = t;
    this.tB = t;
    this.n = 1;
    this.next = 0;
    this.pendingCount = 0;
    for (const s of this.ch) {
      s.qt.length = 0;
      s.qv.length = 0;
      s.head = 0;
      s.hasLo = false;
      s.loT = s.loV = NaN;
      s.prevT = s.lastT = NaN;
      s.x1 = s.x2 = s.y1 = s.y2 = NaN;
    }
  }

  /** The grid point `i` of the segment plus the batch's tolerance, by the batch's expression. */
  private gridTol(i: number): number {
    return this.t0 + i / this.prep.rate + 1e-9;
  }

  /** Whether a grid point (with tolerance) lies in [a, b). */
  private gridIn(a: number, b: number): boolean {
    let k = Math.max(0, Math.floor((a - this.t0) * this.prep.rate) - 2);
    while (k > 0 && this.gridTol(k) >= a) k--;
    while (this.gridTol(k) < a) k++;
    return this.gridTol(k) < b;
  }

  private enqueue(s: ChannelState, t: number, v: number): void {
    s.seen = true;
    const len = s.qt.length;
    // The queue's last sample, between the one before it and this one with no grid point in
    // [before, this), is neither the last sample at or before any step nor the first after one.
    if (len > s.head && s.prevT === s.prevT && !this.gridIn(s.prevT, t)) {
      s.qt[len - 1] = t;
      s.qv[len - 1] = v;
    } else {
      s.prevT = s.lastT;
      s.qt.push(t);
      s.qv.push(v);
      this.pendingCount++;
    }
    s.lastT = t;
  }

  /**
   * Finalises every step that can be, in order, within what is left of the slice; `ended`: the
   * segment has no more samples. False when the slice ran out with steps left to do.
   */
  private advance(ended: boolean): boolean {
    const vals = this.tmp;
    while (this.next < this.n) {
      if (this.roomWindows <= 0 || this.roomValues <= 0) return false;
      const i = this.next;
      for (let c = 0; c < this.C; c++) if (!this.valueAt(this.ch[c]!, i, ended, c)) return true;
      this.finishStep(i, vals);
      this.roomValues -= this.stepCost;
      this.next++;
      const done = i + 1;
      if (done >= this.W && (done - this.W) % this.prep.stride === 0) this.emit(done - this.W, this.W);
    }
    return true;
  }

  /**
   * The resampled value of step `i` of a channel into `tmp[c]`, as `resampleRun` computes it;
   * false when a later sample could still change it.
   */
  private valueAt(s: ChannelState, i: number, ended: boolean, c: number): boolean {
    const maxGap = this.prep.maxGap;
    const g = this.t0 + i / this.prep.rate;
    while (s.head < s.qt.length && s.qt[s.head]! <= g + 1e-9) {
      s.hasLo = true;
      s.loT = s.qt[s.head]!;
      s.loV = s.qv[s.head]!;
      s.head++;
      this.pendingCount--;
    }
    if (s.head > 256 && s.head * 2 > s.qt.length) {
      s.qt.splice(0, s.head);
      s.qv.splice(0, s.head);
      s.head = 0;
    }
    const hasHi = s.head < s.qt.length;
    // A later sample could still be at or before this step (and become its `lo`).
    if (!hasHi && !ended && this.tB < g + 1e-9) return false;
    const before = s.hasLo ? g - s.loT : Infinity;
    let after: number;
    if (hasHi) after = s.qt[s.head]! - g;
    else if (ended) after = Infinity;
    else if (before <= 1e-9) after = Infinity;
    else {
      const d = this.tB - g;
      // Any later sample is more than d away: neither interpolation nor "nearest after" can win.
      if (d > maxGap / 2 && before + d > maxGap) after = Infinity;
      else return false;
    }
    const lo = s.loV;
    let v: number;
    if (before <= 1e-9) v = lo;
    else if (before + after <= maxGap) v = lo + ((s.qv[s.head]! - lo) * before) / (before + after);
    else if (before <= maxGap / 2) v = lo;
    else if (after <= maxGap / 2) v = s.qv[s.head]!;
    else v = NaN;
    this.tmp[c] = v;
    return true;
  }

  /** Filters step `i`'s values (as `filterSegment`) and keeps them for windows. */
  private finishStep(i: number, vals: Float64Array): void {
    const C = this.C;
    const base = (i % this.W) * C;
    if (base + C > this.ring.length) {
      // Only while the first segment reaches its first window (i < W): double, up to W steps.
      const steps = Math.min(this.W, Math.max(i + 1, 16, (2 * this.ring.length) / C));
      const grown = new Float64Array(steps * C);
      grown.set(this.ring);
      this.ring = grown;
    }
    for (let c = 0; c < C; c++) {
      let v = vals[c]!;
      const s = this.ch[c]!;
      const lp = this.lp;
      if (lp) {
        if (v !== v) {
          s.x1 = s.x2 = s.y1 = s.y2 = NaN;
        } else {
          if (s.x1 !== s.x1) s.x1 = s.x2 = s.y1 = s.y2 = v;
          const y = lp.b0 * v + lp.b1 * s.x1 + lp.b0 * s.x2 - lp.a1 * s.y1 - lp.a2 * s.y2;
          s.x2 = s.x1;
          s.x1 = v;
          s.y2 = s.y1;
          s.y1 = y;
          v = y;
        }
      } else if (this.medSize > 0) {
        const size = this.medSize;
        s.med[i % size] = v;
        let m = 0;
        for (let j = Math.max(0, i - size + 1); j <= i; j++) {
          const u = s.med[j % size]!;
          if (u === u) this.medScratch[m++] = u;
        }
        if (m > 0) {
          const w = this.medScratch.subarray(0, m).sort();
          v = m % 2 ? w[m >> 1]! : (w[m / 2 - 1]! + w[m / 2]!) / 2;
        }
      }
      this.ring[base + c] = v;
    }
  }

  /** A window of `len` steps from step `from` of the segment, normalised as `windowize` does. */
  private emit(from: number, len: number): void {
    const W = this.W;
    const C = this.C;
    if (!this.warnedMissing) {
      this.warnedMissing = true;
      const missing = this.prep.channels.filter((_, c) => !this.ch[c]!.seen);
      if (missing.length) this.events.push({ warning: `no value yet for the model's channel(s) ${missing.join(', ')}: filled with their training means, so predictions may be less accurate` });
    }
    const pad = W - len;
    const x = new Float64Array(W * C);
    let filled = 0;
    for (let s = 0; s < len; s++) {
      const base = ((from + s) % W) * C;
      for (let c = 0; c < C; c++) {
        const v = this.ring[base + c]!;
        if (v === v) x[(pad + s) * C + c] = (v - this.prep.mean[c]!) / this.prep.std[c]!;
        else filled++;
      }
    }
    const rate = this.prep.rate;
    const start = this.t0 + from / rate;
    const end = this.t0 + (from + len - 1) / rate;
    if (pad > 0) this.paddedCount++;
    this.filledCount += filled;
    this.pendingWindows++;
    this.roomWindows--;
    this.roomValues -= W * C;
    this.events.push({ window: { index: this.windows++, start, end, startTime: this.timeOut(start), endTime: this.timeOut(end), padded: pad, filled, x } });
  }
}

/**
 * Runs a batch of completed windows through the model (one call) and turns each event into its
 * line: a window's prediction (label and probabilities, a value, or values per output) with its
 * index and time span, or a warning.
 */
export async function predictStreamEvents(model: ServedSequence, events: StreamEvent[]): Promise<StreamLine[]> {
  const windows = events.flatMap((e) => ('window' in e ? [e.window] : []));
  let preds: Prediction[] = [];
  if (windows.length) {
    const cols = model.prep.window * model.prep.channels.length;
    const x: Matrix = { rows: windows.length, cols, data: new Float64Array(windows.length * cols) };
    windows.forEach((w, r) => x.data.set(w.x, r * cols));
    const out = await model.predictWindows(x);
    const width = model.classes ? model.classes.length : model.outputs && model.outputs.length > 1 ? model.outputs.length : 1;
    if (out.length !== windows.length * width) throw Errors.internal(`the sequence model returned ${out.length} values for ${windows.length} windows of ${width} output(s) each`);
    preds = formatPredictions(model.classes, out, windows.length, model.outputs);
  }
  let k = 0;
  return events.map((e): StreamLine => {
    if (!('window' in e)) return e;
    const w = e.window;
    return { window: w.index, start: w.startTime, end: w.endTime, ...(w.padded > 0 ? { padded: w.padded } : {}), ...preds[k++]! };
  });
}
