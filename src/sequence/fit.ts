/**
 * Garmin FIT activity files into medfit's long-format sensor table (`subject, session, t,
 * <channels…>`), decoded by Garmin's own SDK (`@garmin/fitsdk`).
 *
 * A FIT file is hostile input like any upload: its framing (header, declared size, CRC) is checked
 * before the SDK decodes it, every SDK failure is translated into `Errors.badData` in our words
 * (the SDK's texts name byte offsets and, for the encoder side, values), and what one file may
 * cost is bounded: 64 MiB of bytes, 5,000,000 samples across a table, 1,024 developer field
 * descriptions (the SDK looks developer fields up by a linear scan, so a file declaring millions
 * would make decoding quadratic), 5,000,000 messages of any kind, 512 channels and 50,000,000
 * cells (channels × samples) per table. The last two are counted while decoding and checked
 * again before any column is allocated: a developer field set on one record still becomes a
 * whole column of the table, so a small file with many developer fields and many accelerometer
 * samples would otherwise ask for gigabytes (typed arrays, which a worker's heap cap does not
 * cover). Developer values are kept as the records' sparse lists until the output columns are made.
 *
 * Decoding is synchronous and CPU-bound: a 4-hour 1 Hz activity (14,400 records, 366 KiB) takes
 * 150–300 ms, a million records about 16 s and 600 MB (the SDK makes an object per message), so
 * callers on the server's event loop should run it in a worker thread.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { CrcCalculator, Decoder, Profile, Stream, Utils, type Mesg } from '@garmin/fitsdk';
import { Errors, isMedfitError, type Cell } from '../core/index.js';
import { tableFromRows, type Table } from '../data/index.js';

/** Largest FIT file read (bytes): beyond this, a table belongs in a CSV export. */
export const FIT_MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Most samples (records plus accelerometer samples) read into one table, over all its files. */
export const FIT_MAX_SAMPLES = 5_000_000;
/** Most developer field descriptions one file may declare. */
export const FIT_MAX_DEVELOPER_FIELDS = 1_024;
/** Most channels (columns besides subject, session, t) one table may have. */
export const FIT_MAX_CHANNELS = 512;
/**
 * Most cells (channels × samples) one table may have, over all its files: 400 MB as float64
 * columns. Checked while decoding and before any column is allocated.
 */
export const FIT_MAX_CELLS = 50_000_000;
/** Most messages of any kind decoded from one file: each becomes an object in the SDK's output. */
const MAX_MESSAGES = 5_000_000;

const MIB = 1024 * 1024;
/** Degrees per semicircle: FIT stores positions as 2^31 semicircles per 180°. */
const DEGREES_PER_SEMICIRCLE = 180 / 2 ** 31;
const MESG_RECORD = Profile.MesgNum.RECORD!;
const MESG_ACCEL = Profile.MesgNum.ACCELEROMETER_DATA!;
const MESG_FIELD_DESCRIPTION = Profile.MesgNum.FIELD_DESCRIPTION!;
const MESG_DEVELOPER_DATA_ID = Profile.MesgNum.DEVELOPER_DATA_ID!;

/**
 * The record channels read, in column order, with the message fields they come from (the first
 * present wins: `enhanced_*` carry the full range where the plain field is 16 bits) and units.
 */
const RECORD_CHANNELS: ReadonlyArray<{ name: string; fields: readonly string[]; unit: string; scale?: number }> = [
  { name: 'heart_rate', fields: ['heartRate'], unit: 'bpm' },
  { name: 'cadence', fields: ['cadence'], unit: 'rpm' },
  { name: 'speed', fields: ['enhancedSpeed', 'speed'], unit: 'm/s' },
  { name: 'power', fields: ['power'], unit: 'W' },
  { name: 'altitude', fields: ['enhancedAltitude', 'altitude'], unit: 'm' },
  { name: 'position_lat', fields: ['positionLat'], unit: 'deg', scale: DEGREES_PER_SEMICIRCLE },
  { name: 'position_long', fields: ['positionLong'], unit: 'deg', scale: DEGREES_PER_SEMICIRCLE },
  { name: 'distance', fields: ['distance'], unit: 'm' },
  { name: 'temperature', fields: ['temperature'], unit: 'C' },
];
const ACCEL_CHANNELS = ['ax', 'ay', 'az'] as const;
/** Column names no developer field may take (it becomes `dev_<name>`). */
const RESERVED = new Set(['subject', 'session', 't', ...RECORD_CHANNELS.map((c) => c.name), ...ACCEL_CHANNELS]);
/** Where the standard channels sit among a table's columns: before every developer field. */
const STANDARD_ORDER = new Map([...RECORD_CHANNELS.map((c) => c.name), ...ACCEL_CHANNELS].map((n, i) => [n, i]));

/** One decoded FIT activity, column by column. */
export interface FitSession {
  /** The file's name, as used in messages. */
  source: string;
  /**
   * Channel names: the record channels present (`heart_rate, cadence, speed, power, altitude,
   * position_lat, position_long, distance, temperature`, in that order), then `ax ay az` when the
   * file has accelerometer samples, then developer fields by their `field_name`, in the order
   * the file describes them.
   */
  channels: string[];
  /**
   * Unit of each channel: bpm, rpm, m/s, W, m, deg, m, C; `g` for calibrated accelerometer
   * samples, `counts` for raw ones; a developer field's own `units` (`''` when it names none).
   */
  units: string[];
  /** Epoch milliseconds of each row, strictly ascending. */
  t: Float64Array;
  /** One array per channel, aligned with `t`; NaN where the channel has no value at that time. */
  values: Float64Array[];
  /** Samples read (records plus accelerometer samples), before rows at the same time merged. */
  samples: number;
}

/** A FIT file held in memory, with who and which session it is. */
export interface FitFile {
  subject: string;
  session: string;
  bytes: Uint8Array;
  /** The file's name, as used in messages. */
  source: string;
}

// ---------------------------------------------------------------------------------------------
// One file

/**
 * Decodes one FIT activity file into its rows: `record` messages (heart rate, cadence, speed,
 * power, altitude, position in degrees, distance, temperature, developer fields) and
 * `accelerometer_data` samples (`ax ay az`), on one time axis in epoch milliseconds, sorted.
 * Accelerometer samples are rows of their own with the record channels missing (the table is
 * sparse per channel; the resampler downstream interpolates); rows at the same millisecond are
 * merged into one, and where two give the same channel the one read later wins.
 *
 * Throws `Errors.badData(source, …)` for an empty, non-FIT, truncated or damaged file (CRC),
 * one the SDK cannot decode, one without record messages, or one over the bounds (64 MiB,
 * `opts.maxSamples` samples, default 5,000,000; 512 channels; `opts.maxCells` channels × samples,
 * default `FIT_MAX_CELLS`): the channels and cells are counted message by message, so a file
 * over them is refused while it is decoded, and checked again before any column is allocated.
 */
export function fitSessionRows(bytes: Uint8Array, source: string, opts: { maxSamples?: number; maxCells?: number } = {}): FitSession {
  const decoder = checkFraming(bytes, source);
  const maxSamples = opts.maxSamples ?? FIT_MAX_SAMPLES;
  const maxCells = opts.maxCells ?? FIT_MAX_CELLS;

  // The listener sees every message in file order as it is decoded: it counts what the file
  // costs (and stops the decoder by throwing), and resolves developer fields on records while
  // the descriptions in force are those the SDK used (see `DeveloperFields`).
  let messageCount = 0;
  let samples = 0;
  let descriptions = 0;
  let refusal: Error | null = null;
  const refuse = (message: string): never => {
    refusal = Errors.badData(source, message);
    throw refusal;
  };
  const dev = new DeveloperFields();
  const recordDev: Array<Array<[number, number]> | undefined> = [];
  // Channels that have a value so far (each becomes a whole column): standard ones and developer
  // fields in use, so that channels × samples is known at every message, not only at the end.
  const seen = new Seen();
  const mesgListener = (mesgNum: number, decodedMesg: Mesg): void => {
    const mesg = decodedMesg as Record<string, unknown>;
    if (++messageCount > MAX_MESSAGES) refuse(`has more than ${MAX_MESSAGES.toLocaleString('en-US')} messages`);
    if (mesgNum === MESG_RECORD) {
      samples++;
      const values = mesg.developerFields ? dev.resolve(mesg.developerFields as Record<string, unknown>) : undefined;
      recordDev.push(values);
      seen.record(mesg, values);
    } else if (mesgNum === MESG_ACCEL) {
      const offsets = mesg.sampleTimeOffset;
      samples += Array.isArray(offsets) ? offsets.length : 0;
      seen.accel(mesg);
    } else if (mesgNum === MESG_FIELD_DESCRIPTION) {
      if (++descriptions > FIT_MAX_DEVELOPER_FIELDS) refuse(`declares more than ${FIT_MAX_DEVELOPER_FIELDS} developer fields`);
      dev.describe(mesg);
    } else if (mesgNum === MESG_DEVELOPER_DATA_ID) {
      dev.identify(mesg);
    }
    if (samples > maxSamples) refuse(tooManySamples(maxSamples));
    if (seen.count > FIT_MAX_CHANNELS) refuse(tooManyChannels());
    if (seen.count * samples > maxCells) refuse(tooManyCells());
  };

  let decoded: ReturnType<Decoder['read']>;
  try {
    decoded = decoder.read({
      mesgListener,
      // Seconds since the FIT epoch rather than Date objects: cheaper, and exact milliseconds.
      convertDateTimesToDates: false,
      // Neither is read here; both cost time on every message.
      convertTypesToStrings: false,
      expandSubFields: false,
      // Kept on (defaults): components expand `speed`/`altitude` into `enhanced_*`, and heart
      // rates from HRM `hr` messages (swimming) are merged into the records.
      expandComponents: true,
      mergeHeartRates: true,
    });
  } catch {
    // read() catches its own failures; this is only for one the SDK did not foresee.
    throw Errors.badData(source, 'could not be decoded: the file is damaged');
  }
  if (refusal) throw refusal;
  if (decoded.errors.length > 0) throw Errors.badData(source, decodeProblem(decoded.errors[0]));

  const messages = decoded.messages as unknown as Record<string, Array<Record<string, unknown>> | undefined>;
  const records = messages.recordMesgs ?? [];
  if (records.length === 0) throw Errors.badData(source, 'has no record messages');
  return assemble(source, records, recordDev, messages.accelerometerDataMesgs ?? [], dev, seen, samples, maxCells);
}

/**
 * The header, the size it declares and the CRCs, checked before any decoding, so that each kind of
 * damage gets its own message; returns the decoder (over one copy of the bytes) to read with.
 */
function checkFraming(bytes: Uint8Array, source: string): Decoder {
  if (bytes.length === 0) throw Errors.badData(source, 'is empty');
  if (bytes.length > FIT_MAX_FILE_BYTES) throw Errors.badData(source, `is larger than ${FIT_MAX_FILE_BYTES / MIB} MiB; export a table that large as CSV`);
  const headerSize = bytes[0]!;
  const notFit = (): never => {
    throw Errors.badData(source, 'is not a FIT file (no FIT file header)');
  };
  if (headerSize !== 12 && headerSize !== 14) notFit();
  if (bytes.length < headerSize + 2) {
    // Only the first bytes of a header (and its CRC): a FIT file cut short, unless they say otherwise.
    if (!fitTagPrefix(bytes)) notFit();
    throw Errors.badData(source, 'is truncated: it ends inside its file header');
  }
  let decoder: Decoder;
  let intact: boolean;
  try {
    decoder = new Decoder(Stream.fromBuffer(bytes));
    if (!decoder.isFIT()) notFit();
    // The header's own CRC first (0 means none was written): a damaged size field would
    // otherwise be reported as a truncated file.
    const headerCrc = headerSize === 14 ? bytes[12]! | (bytes[13]! << 8) : 0;
    if (headerCrc !== 0 && headerCrc !== CrcCalculator.calculateCRC(bytes, 0, 12)) {
      throw Errors.badData(source, 'fails its CRC check: its file header is damaged');
    }
    const dataSize = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16)) + bytes[7]! * 2 ** 24;
    if (bytes.length < headerSize + dataSize + 2) throw Errors.badData(source, 'is truncated: it is shorter than its header declares');
    intact = decoder.checkIntegrity();
  } catch (e) {
    if (isMedfitError(e)) throw e;
    intact = false;
  }
  if (!intact) throw Errors.badData(source, 'fails its CRC check: the file is damaged');
  return decoder!;
}

/** Whether bytes 8–11 (as far as present) are `.FIT`. */
function fitTagPrefix(bytes: Uint8Array): boolean {
  const tag = [0x2e, 0x46, 0x49, 0x54];
  for (let i = 8; i < Math.min(12, bytes.length); i++) if (bytes[i] !== tag[i - 8]) return false;
  return true;
}

/** Our words for what the SDK reported (its own text names byte offsets; never shown). */
function decodeProblem(e: unknown): string {
  const text = e instanceof Error ? e.message : '';
  if (text.includes('CRC error')) return 'fails its CRC check: the file is damaged';
  if (text.includes('compressed timestamp')) return 'uses compressed-timestamp message headers, which the FIT SDK cannot decode';
  if (text.includes('not a FIT file')) return 'has bytes after its end that are not a FIT file';
  if (text.includes('HR mesg') || text.includes('event_timestamp')) return 'has heart-rate (hr) messages that cannot be merged into its records';
  return 'could not be decoded: the file is damaged';
}

function tooManySamples(max: number): string {
  return `has more than ${max.toLocaleString('en-US')} samples (${FIT_MAX_SAMPLES.toLocaleString('en-US')} per table); export a table that large as CSV`;
}

function tooManyChannels(): string {
  return `has more than ${FIT_MAX_CHANNELS} channels (developer fields included); medfit reads at most ${FIT_MAX_CHANNELS} from FIT files: leave out the developer fields the model does not need, or export the table as CSV`;
}

/** The refusal past `FIT_MAX_CELLS` (no counts: what is too large, and what to do). */
function tooManyCells(): string {
  return (
    'is too large to read: its channels (every developer field in use is a whole column) times its samples ' +
    'exceed what medfit reads from FIT files into one table; leave out the developer fields the model does not need, ' +
    'split the activity into shorter files, or export the table as CSV'
  );
}

/** A record channel's value in a record: the first of its fields present, in medfit units; NaN if none. */
function recordValue(r: Record<string, unknown>, ch: (typeof RECORD_CHANNELS)[number]): number {
  for (const f of ch.fields) {
    const v = num(r[f]);
    if (v === v) return ch.scale !== undefined ? v * ch.scale : v;
  }
  return NaN;
}

/** An accelerometer message's samples as `assemble` reads them: base time, offsets, axes; null if it has none. */
function accelSamples(m: Record<string, unknown>): { base: number; offsets: unknown[]; unit: string; axes: unknown[][] } | null {
  const base = epochMs(m.timestamp) + (num(m.timestampMs) || 0);
  const offsets = m.sampleTimeOffset;
  const arrays = accelArrays(m);
  if (base !== base || !Array.isArray(offsets) || arrays === null) return null;
  return { base, offsets, unit: arrays.unit, axes: arrays.axes };
}

/**
 * The channels that have a value in what was decoded so far (record channels, `ax ay az`, developer
 * fields), counted message by message; each is a whole column of the session once assembled.
 * Heart rates the SDK merges from `hr` messages come after decoding: `assemble` counts again.
 */
class Seen {
  count = 0;
  readonly recordChannels = new Array<boolean>(RECORD_CHANNELS.length).fill(false);
  readonly accelAxes = [false, false, false];
  /** Developer slots with a value on some record. */
  readonly devSlots = new Set<number>();
  private recordLeft = RECORD_CHANNELS.length;
  private accelLeft = 3;

  record(r: Record<string, unknown>, dev: Array<[number, number]> | undefined): void {
    // A record without a timestamp is left out of the table (see `assemble`).
    if (Number.isNaN(epochMs(r.timestamp))) return;
    if (this.recordLeft > 0) {
      RECORD_CHANNELS.forEach((ch, slot) => {
        if (!this.recordChannels[slot] && !Number.isNaN(recordValue(r, ch))) {
          this.recordChannels[slot] = true;
          this.recordLeft--;
          this.count++;
        }
      });
    }
    if (dev) {
      for (const [slot] of dev) {
        if (!this.devSlots.has(slot)) {
          this.devSlots.add(slot);
          this.count++;
        }
      }
    }
  }

  accel(m: Record<string, unknown>): void {
    if (this.accelLeft === 0) return;
    const a = accelSamples(m);
    if (a === null) return;
    for (let axis = 0; axis < 3; axis++) {
      if (this.accelAxes[axis]) continue;
      const values = a.axes[axis]!;
      for (let i = 0; i < a.offsets.length; i++) {
        if (!Number.isNaN(num(a.offsets[i])) && !Number.isNaN(num(values[i]))) {
          this.accelAxes[axis] = true;
          this.accelLeft--;
          this.count++;
          break;
        }
      }
    }
  }
}

/** A finite number from a decoded field (bigint included), or NaN. */
function num(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? v : NaN;
  if (typeof v === 'bigint') {
    const n = Number(v);
    return Number.isFinite(n) ? n : NaN;
  }
  return NaN;
}

/** Seconds since the FIT epoch (or a Date, whatever the options) as epoch milliseconds; NaN if absent. */
function epochMs(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  const s = num(v);
  return s === s ? s * 1000 + Utils.FIT_EPOCH_MS : NaN;
}

/**
 * Developer fields as the SDK keys them. `record.developerFields` is keyed by a `key` the SDK
 * gives each field description: the running count of descriptions registered so far (it appears
 * as `key` on the `fieldDescriptionMesgs` too). A description counts only once its
 * `developer_data_id` has been seen, and a repeated `developer_data_id` drops that index's
 * descriptions, so keys can be reused: they are resolved here in file order, as the SDK did.
 */
class DeveloperFields {
  /** Channels of developer fields: identity `index:number` → slot. */
  readonly slots = new Map<string, number>();
  readonly names: string[] = [];
  readonly units: string[] = [];
  private readonly scales: number[] = [];
  private readonly offsets: number[] = [];
  private readonly used = new Set<string>(RESERVED);
  private readonly ids = new Set<number>();
  private readonly byKey = new Map<number, { index: number; slot: number }>();

  identify(mesg: Record<string, unknown>): void {
    const index = num(mesg.developerDataIndex);
    if (!(index >= 0 && index < 255)) return;
    this.ids.add(index);
    for (const [key, d] of this.byKey) if (d.index === index) this.byKey.delete(key);
  }

  describe(mesg: Record<string, unknown>): void {
    const index = num(mesg.developerDataIndex);
    const number = num(mesg.fieldDefinitionNumber);
    const key = num(mesg.key);
    if (!this.ids.has(index) || !(number >= 0) || !(key >= 0)) return;
    const identity = `${index}:${number}`;
    let slot = this.slots.get(identity);
    if (slot === undefined) {
      slot = this.names.length;
      this.slots.set(identity, slot);
      this.names.push(this.nameFor(mesg.fieldName, index, number));
      const units = Array.isArray(mesg.units) ? mesg.units.find((x) => typeof x === 'string') : mesg.units;
      this.units.push(typeof units === 'string' ? printable(units).slice(0, 32) : '');
      // The SDK hands developer values over raw: the description's scale and offset are ours to apply.
      const scale = num(mesg.scale);
      const offset = num(mesg.offset);
      this.scales.push(scale > 0 ? scale : 1);
      this.offsets.push(offset === offset ? offset : 0);
    }
    this.byKey.set(key, { index, slot });
  }

  /** A record's numeric developer values as `[slot, value]` (arrays and texts are left out). */
  resolve(fields: Record<string, unknown>): Array<[number, number]> | undefined {
    let out: Array<[number, number]> | undefined;
    for (const k in fields) {
      const d = this.byKey.get(Number(k));
      const v = num(fields[k]);
      if (d === undefined || v !== v) continue;
      (out ??= []).push([d.slot, v / this.scales[d.slot]! - this.offsets[d.slot]!]);
    }
    return out;
  }

  /**
   * A column name from a `field_name`: printable, at most 64 characters; a standard channel's
   * name becomes `dev_<name>`, a name another field of this file took gets `_<index>_<number>`.
   */
  private nameFor(raw: unknown, index: number, number: number): string {
    const text = Array.isArray(raw) ? raw.find((x) => typeof x === 'string') : raw;
    let name = typeof text === 'string' ? printable(text).slice(0, 64) : '';
    if (name === '') name = `dev_${index}_${number}`;
    if (RESERVED.has(name)) name = `dev_${name}`;
    if (this.used.has(name)) name = `${name}_${index}_${number}`;
    this.used.add(name);
    return name;
  }
}

/** A text without control characters, trimmed (a column name may not hold them). */
function printable(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 32 && c !== 127 && !(c >= 0x80 && c < 0xa0)) out += ch;
  }
  return out.trim();
}

/** The accelerometer arrays of one message, in the units it gives them (`g` or `counts`). */
function accelArrays(m: Record<string, unknown>): { unit: string; axes: unknown[][] } | null {
  const pick = (names: readonly string[]): unknown[][] | null => {
    const axes = names.map((n) => m[n]);
    return axes.some(Array.isArray) ? axes.map((a) => (Array.isArray(a) ? a : [])) : null;
  };
  const calibrated = pick(['calibratedAccelX', 'calibratedAccelY', 'calibratedAccelZ']);
  if (calibrated) return { unit: 'g', axes: calibrated };
  // Compressed calibrated samples are in mG: converted to g so `ax` has one unit whenever calibrated.
  const compressed = pick(['compressedCalibratedAccelX', 'compressedCalibratedAccelY', 'compressedCalibratedAccelZ']);
  if (compressed) return { unit: 'g', axes: compressed.map((a) => a.map((v) => num(v) / 1000)) };
  const raw = pick(['accelX', 'accelY', 'accelZ']);
  return raw ? { unit: 'counts', axes: raw } : null;
}

/**
 * Records and accelerometer samples on one sorted time axis, rows at equal times merged.
 *
 * What it will hold (channels × samples) is checked before anything data-sized is allocated. The
 * standard channels (at most 12) are gathered in columns as long as the samples; developer values
 * stay in the records' sparse lists and are written straight into their output columns.
 */
function assemble(
  source: string,
  records: Array<Record<string, unknown>>,
  recordDev: Array<Array<[number, number]> | undefined>,
  accel: Array<Record<string, unknown>>,
  dev: DeveloperFields,
  seen: Seen,
  samples: number,
  maxCells: number,
): FitSession {
  let capacity = records.length;
  for (const m of accel) if (Array.isArray(m.sampleTimeOffset)) capacity += m.sampleTimeOffset.length;

  // Slots: record channels, then ax ay az, then developer fields. Which have a value is known
  // from decoding, but for heart rates the SDK merged into the records afterwards.
  const nRecord = RECORD_CHANNELS.length;
  const DEV = nRecord + 3;
  const recordPresent = [...seen.recordChannels];
  RECORD_CHANNELS.forEach((ch, slot) => {
    if (recordPresent[slot]) return;
    for (const r of records) {
      if (!Number.isNaN(recordValue(r, ch)) && !Number.isNaN(epochMs(r.timestamp))) {
        recordPresent[slot] = true;
        break;
      }
    }
  });
  const present: number[] = [];
  recordPresent.forEach((p, slot) => p && present.push(slot));
  seen.accelAxes.forEach((p, axis) => p && present.push(nRecord + axis));
  for (const slot of [...seen.devSlots].sort((a, b) => a - b)) present.push(DEV + slot);
  if (present.length > FIT_MAX_CHANNELS) throw Errors.badData(source, tooManyChannels());
  if (present.length * Math.max(capacity, samples) > maxCells) throw Errors.badData(source, tooManyCells());
  /** Output column of each slot (-1: the channel has no value). */
  const outOf = new Int32Array(DEV + dev.names.length).fill(-1);
  present.forEach((slot, j) => (outOf[slot] = j));

  const t = new Float64Array(capacity);
  const cols: Array<Float64Array | undefined> = new Array(DEV);
  for (const slot of present) if (slot < DEV) cols[slot] = new Float64Array(capacity).fill(NaN);
  /** The row of each record (-1: no timestamp, left out). */
  const recordRow = new Int32Array(records.length).fill(-1);

  let n = 0;
  records.forEach((r, i) => {
    const ms = epochMs(r.timestamp);
    if (ms !== ms) return;
    t[n] = ms;
    recordRow[i] = n;
    RECORD_CHANNELS.forEach((ch, slot) => {
      const c = cols[slot];
      if (c === undefined) return;
      const v = recordValue(r, ch);
      if (v === v) c[n] = v;
    });
    n++;
  });
  if (n === 0) throw Errors.badData(source, 'has no record messages with a timestamp');

  let accelUnit: string | null = null;
  for (const m of accel) {
    const a = accelSamples(m);
    if (a === null) continue;
    if (accelUnit !== null && accelUnit !== a.unit) throw Errors.badData(source, 'mixes calibrated and raw accelerometer samples');
    accelUnit = a.unit;
    for (let i = 0; i < a.offsets.length; i++) {
      const off = num(a.offsets[i]);
      if (off !== off) continue;
      t[n] = a.base + off;
      for (let axis = 0; axis < 3; axis++) {
        const v = num(a.axes[axis]![i]);
        const c = cols[nRecord + axis];
        if (v === v && c !== undefined) c[n] = v;
      }
      n++;
    }
  }

  // Sorted by time, ties in reading order (records before accelerometer samples).
  let order: Int32Array | null = null;
  for (let i = 1; i < n; i++) {
    if (t[i]! < t[i - 1]!) {
      order = new Int32Array(n);
      for (let k = 0; k < n; k++) order[k] = k;
      order.sort((a, b) => t[a]! - t[b]! || a - b);
      break;
    }
  }
  // Each row's merged output row; rows at one time are merged in reading order, so writing rows
  // in reading order lets the one read later win.
  const mergedOf = new Int32Array(n);
  let m = 0;
  let last = NaN;
  for (let k = 0; k < n; k++) {
    const i = order ? order[k]! : k;
    if (m === 0 || t[i] !== last) {
      last = t[i]!;
      m++;
    }
    mergedOf[i] = m - 1;
  }
  order = null;
  const outT = new Float64Array(m);
  for (let i = 0; i < n; i++) outT[mergedOf[i]!] = t[i]!;
  const outV = present.map(() => new Float64Array(m).fill(NaN));
  for (const slot of present) {
    const c = cols[slot];
    if (c === undefined) continue;
    const out = outV[outOf[slot]!]!;
    for (let i = 0; i < n; i++) {
      const v = c[i]!;
      if (v === v) out[mergedOf[i]!] = v;
    }
    cols[slot] = undefined;
  }
  recordDev.forEach((values, i) => {
    const row = recordRow[i]!;
    if (values === undefined || row < 0) return;
    for (const [slot, v] of values) outV[outOf[DEV + slot]!]![mergedOf[row]!] = v;
  });

  const unitOf = (slot: number): string =>
    slot < nRecord ? RECORD_CHANNELS[slot]!.unit : slot < DEV ? (accelUnit ?? '') : dev.units[slot - DEV]!;
  const nameOf = (slot: number): string =>
    slot < nRecord ? RECORD_CHANNELS[slot]!.name : slot < DEV ? ACCEL_CHANNELS[slot - nRecord]! : dev.names[slot - DEV]!;
  return { source, channels: present.map(nameOf), units: present.map(unitOf), t: outT, values: outV, samples };
}

// ---------------------------------------------------------------------------------------------
// Tables

/**
 * Decodes FIT files held in memory (an HTTP upload: one file, subject = the upload's name) into
 * ONE long-format table `subject, session, t, <channels…>`: channels are the union over the files
 * (standard ones first, in `FitSession` order, then developer fields), missing → null.
 * `opts.source` names the table (default: the file's source, or `N FIT files`).
 *
 * Throws `Errors.badData` for any file `fitSessionRows` refuses, for two files with the same
 * subject and session, for a channel whose units differ between files, and past the bounds
 * (5,000,000 samples in all, 512 channels, 50,000,000 cells: channels × rows).
 */
export function fitToTable(files: FitFile[], opts: { source?: string } = {}): Table {
  const source = opts.source ?? (files.length === 1 ? files[0]!.source : `${files.length} FIT files`);
  if (files.length === 0) throw Errors.badData(source, 'no FIT files were given');
  const sessions: Keyed[] = [];
  let budget = FIT_MAX_SAMPLES;
  let cells = FIT_MAX_CELLS;
  for (const f of files) {
    const fit = fitSessionRows(f.bytes, f.source, { maxSamples: budget, maxCells: cells });
    budget -= fit.samples;
    cells -= fit.samples * fit.channels.length;
    sessions.push({ subject: f.subject, session: f.session, fit });
  }
  return sessionsTable(sessions, source);
}

/**
 * Reads FIT files into ONE long-format table (see `fitToTable`). Each path is a `.fit` file or
 * a folder of them; a folder is read with one level of sub-folders (`data/<subject>/<session>.fit`),
 * skipping hidden entries and files not ending in `.fit`. Each file is one session, named by the
 * file name without its extension; the subject is that same stem (`subjectFrom: 'filename'`) or
 * the name of the folder holding the file (`'folder'`).
 *
 * Files are decoded one at a time (at most one file's bytes and decoded messages in memory);
 * a file over 64 MiB is refused from its size, before it is read.
 */
export async function readFitPaths(paths: string[], opts: { subjectFrom: 'filename' | 'folder' }): Promise<Table> {
  if (paths.length === 0) throw Errors.usage('no FIT files or folders were given');
  const source = paths.length === 1 ? paths[0]! : `${paths[0]} and ${paths.length - 1} more`;
  const files: string[] = [];
  for (const p of paths) files.push(...(await fitFilesAt(p)));
  const sessions: Keyed[] = [];
  let budget = FIT_MAX_SAMPLES;
  let cells = FIT_MAX_CELLS;
  for (const file of files) {
    const stem = basename(file, extname(file));
    const subject = opts.subjectFrom === 'folder' ? basename(dirname(resolve(file))) : stem;
    const bytes = await readFitFile(file);
    const fit = fitSessionRows(bytes, file, { maxSamples: budget, maxCells: cells });
    budget -= fit.samples;
    cells -= fit.samples * fit.channels.length;
    sessions.push({ subject, session: stem, fit });
  }
  return sessionsTable(sessions, source);
}

interface Keyed {
  subject: string;
  session: string;
  fit: FitSession;
}

/** The `.fit` files a path names: itself, or a folder's and its sub-folders', sorted by name. */
async function fitFilesAt(path: string): Promise<string[]> {
  const s = await statOf(path, path);
  if (!s.isDirectory()) return [path];
  const out: string[] = [];
  for (const e of await entriesOf(path)) {
    const full = join(path, e);
    const es = await statOf(full, full);
    if (es.isFile() && isFitName(e)) out.push(full);
    else if (es.isDirectory()) {
      for (const f of await entriesOf(full)) {
        const ff = join(full, f);
        if (isFitName(f) && (await statOf(ff, ff)).isFile()) out.push(ff);
      }
    }
  }
  if (out.length === 0) throw Errors.badData(path, 'holds no .fit files (in the folder or its sub-folders)');
  return out;
}

function isFitName(name: string): boolean {
  return extname(name).toLowerCase() === '.fit';
}

async function entriesOf(dir: string): Promise<string[]> {
  try {
    // Hidden entries are skipped: `._x.fit` (macOS resource forks) are not FIT files.
    return (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (e) {
    throw ioError(e, dir);
  }
}

async function statOf(path: string, source: string): Promise<import('node:fs').Stats> {
  try {
    return await stat(path);
  } catch (e) {
    throw ioError(e, source);
  }
}

/** A file's bytes, refused from its size first so a huge file is never read. */
async function readFitFile(path: string): Promise<Uint8Array> {
  const s = await statOf(path, path);
  if (s.size > FIT_MAX_FILE_BYTES) throw Errors.badData(path, `is larger than ${FIT_MAX_FILE_BYTES / MIB} MiB; export a table that large as CSV`);
  try {
    return await readFile(path);
  } catch (e) {
    throw ioError(e, path);
  }
}

function ioError(e: unknown, source: string): Error {
  if (isMedfitError(e)) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return Errors.notFound(`file ${source}`);
  if (code === 'EACCES' || code === 'EPERM') return Errors.badData(source, 'permission denied');
  return Errors.badData(source, `cannot read (${code ?? 'I/O error'})`);
}

/** The decoded sessions as one table: union of channels, one row per (session, time). */
function sessionsTable(sessions: Keyed[], source: string): Table {
  const seen = new Map<string, string>();
  for (const s of sessions) {
    if (s.subject === '') throw Errors.badData(s.fit.source, 'gives no subject name');
    if (s.session === '') throw Errors.badData(s.fit.source, 'gives no session name');
    const key = JSON.stringify([s.subject, s.session]);
    const other = seen.get(key);
    if (other !== undefined) throw Errors.badData(s.fit.source, `has the same subject and session as ${other}`);
    seen.set(key, s.fit.source);
  }

  // Channels: standard ones in their fixed order, then developer fields in first-seen order.
  const unitOf = new Map<string, { unit: string; source: string }>();
  for (const s of sessions) {
    s.fit.channels.forEach((name, j) => {
      const unit = s.fit.units[j]!;
      const known = unitOf.get(name);
      if (known === undefined) unitOf.set(name, { unit, source: s.fit.source });
      else if (known.unit !== unit && known.unit !== '' && unit !== '') {
        throw Errors.badData(s.fit.source, `channel "${name}" is in ${unit} here but in ${known.unit} in ${known.source}`);
      }
    });
  }
  const names = [...unitOf.keys()];
  if (names.length > FIT_MAX_CHANNELS) throw Errors.badData(source, `has ${names.length} channels; medfit reads at most ${FIT_MAX_CHANNELS} from FIT files`);
  // Each file kept within the budget alone; the union of their channels is checked before the rows are made.
  let rowCount = 0;
  for (const s of sessions) rowCount += s.fit.t.length;
  if (rowCount * names.length > FIT_MAX_CELLS) throw Errors.badData(source, tooManyCells());
  const channels = [
    ...names.filter((n) => STANDARD_ORDER.has(n)).sort((a, b) => STANDARD_ORDER.get(a)! - STANDARD_ORDER.get(b)!),
    ...names.filter((n) => !STANDARD_ORDER.has(n)),
  ];
  const column = new Map(channels.map((n, j) => [n, 3 + j]));

  const rows: Cell[][] = [];
  for (const { subject, session, fit } of sessions) {
    const at = fit.channels.map((n) => column.get(n)!);
    for (let i = 0; i < fit.t.length; i++) {
      const row: Cell[] = new Array(3 + channels.length).fill(null);
      row[0] = subject;
      row[1] = session;
      row[2] = fit.t[i]!;
      for (let j = 0; j < at.length; j++) {
        const v = fit.values[j]![i]!;
        if (v === v) row[at[j]!] = v;
      }
      rows.push(row);
    }
  }
  return tableFromRows(['subject', 'session', 't', ...channels], rows, { source });
}
