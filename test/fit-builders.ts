/**
 * FIT activity files built for tests with Garmin's own `Encoder` (the FIT licence does not let us
 * ship Garmin's sample files): records, accelerometer blocks, developer fields, and helpers to
 * damage a file (cut it, flip a bit, fix its CRC after an edit, wrap hand-made message bytes).
 *
 * Values are given in the units the reader gives back (degrees, m/s, m, epoch milliseconds);
 * the builders convert them to what the file stores (semicircles, FIT-epoch seconds).
 */
import { CrcCalculator, Encoder, Profile, Utils, type DeveloperDataIdMesg, type FieldDescriptionMesg } from '@garmin/fitsdk';

/** One `record` message; absent fields are not written. */
export interface FitRecordSpec {
  /** Epoch milliseconds (whole seconds are stored: FIT record timestamps are in seconds). */
  t: number;
  heartRate?: number;
  cadence?: number;
  /** m/s, written to the 16-bit `speed` field (the decoder expands it to `enhanced_speed`). */
  speed?: number;
  /** m/s, written to `enhanced_speed` only (use beyond 65.5 m/s, where `speed` cannot go). */
  enhancedSpeed?: number;
  power?: number;
  /** m, written to the 16-bit `altitude` field. */
  altitude?: number;
  /** m, written to `enhanced_altitude` only. */
  enhancedAltitude?: number;
  /** Degrees, stored as semicircles. */
  lat?: number;
  /** Degrees, stored as semicircles. */
  lon?: number;
  /** m */
  distance?: number;
  /** °C (whole degrees: sint8). */
  temperature?: number;
  /** Developer field values by field name (see `FitDeveloperFieldSpec`), in physical units. */
  developer?: Record<string, number>;
}

/** One `accelerometer_data` message: samples at `t + offsets[i]` milliseconds. */
export interface FitAccelSpec {
  /** Epoch milliseconds of the block (stored as `timestamp` seconds + `timestamp_ms`). */
  t: number;
  /** Milliseconds from `t` of each sample (`sample_time_offset`). */
  offsets: number[];
  x: number[];
  y: number[];
  z: number[];
  /**
   * Which fields carry them: `calibrated` (`calibrated_accel_*`, float32 g; default),
   * `compressed` (`compressed_calibrated_accel_*`, sint16 mG: give mG) or `raw` (`accel_*`, uint16 counts).
   */
  kind?: 'calibrated' | 'compressed' | 'raw';
}

/** A developer field on records, described by `developer_data_id` + `field_description`. */
export interface FitDeveloperFieldSpec {
  /** `field_name`: the reader's channel name. */
  name: string;
  units?: string;
  /** FIT base type of the stored value (default float32). */
  baseType?: 'float32' | 'float64' | 'uint8' | 'uint16' | 'sint16' | 'uint32' | 'sint32';
  /** Stored value = (value + offset) × scale, rounded for integer types; the reader undoes it. */
  scale?: number;
  offset?: number;
  /** Developer data index (default 0) and field number (default: its position in the list). */
  developerDataIndex?: number;
  fieldNumber?: number;
}

export interface ActivitySpec {
  /** Epoch milliseconds (or a Date) of the activity's start: `file_id.time_created`, session start. */
  start: number | Date;
  records: FitRecordSpec[];
  accel?: FitAccelSpec[];
  developer?: FitDeveloperFieldSpec[];
  /**
   * `hr` messages (an HRM's stored beats, as swimming straps send them after the activity; the
   * decoder merges them into the records' heart rate): an anchor has `t` (epoch ms) and one
   * event time; the others only `eventTimestamp` (seconds on the strap's clock) and `filteredBpm`.
   */
  hr?: Array<{ t?: number; eventTimestamp: number[]; filteredBpm: number[] }>;
  /** Write `session` and `activity` summary messages after the records (default true). */
  summary?: boolean;
}

const BASE_TYPES: Record<NonNullable<FitDeveloperFieldSpec['baseType']>, number> = {
  float32: Utils.FitBaseType.FLOAT32,
  float64: Utils.FitBaseType.FLOAT64,
  uint8: Utils.FitBaseType.UINT8,
  uint16: Utils.FitBaseType.UINT16,
  sint16: Utils.FitBaseType.SINT16,
  uint32: Utils.FitBaseType.UINT32,
  sint32: Utils.FitBaseType.SINT32,
};

/** Degrees as FIT semicircles (2^31 per 180°). */
export function degreesToSemicircles(deg: number): number {
  return Math.round((deg * 2 ** 31) / 180);
}

/** Epoch milliseconds as the reader gives a record's time back: whole seconds. */
export function wholeSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** A FIT activity file: `file_id`, developer field descriptions, records, accelerometer blocks, summary. */
export function buildActivityFit(spec: ActivitySpec): Uint8Array {
  const startMs = spec.start instanceof Date ? spec.start.getTime() : spec.start;
  const start = new Date(startMs);
  const enc = new Encoder();
  enc.onMesg(Profile.MesgNum.FILE_ID!, { manufacturer: 'development', product: 1, serialNumber: 1234, timeCreated: start, type: 'activity' } as object);

  const dev = new Map<string, { key: number; spec: FitDeveloperFieldSpec; integer: boolean }>();
  const ids = new Set<number>();
  (spec.developer ?? []).forEach((d, i) => {
    const index = d.developerDataIndex ?? 0;
    const idMesg: DeveloperDataIdMesg = { developerDataIndex: index, applicationId: Array.from({ length: 16 }, (_, k) => (k + index) & 0xff), applicationVersion: 1 };
    if (!ids.has(index)) {
      enc.onMesg(Profile.MesgNum.DEVELOPER_DATA_ID!, idMesg);
      ids.add(index);
    }
    const fd: FieldDescriptionMesg = {
      developerDataIndex: index,
      fieldDefinitionNumber: d.fieldNumber ?? i,
      fitBaseTypeId: BASE_TYPES[d.baseType ?? 'float32'],
      fieldName: d.name,
      nativeMesgNum: Profile.MesgNum.RECORD!,
      ...(d.units !== undefined ? { units: d.units } : {}),
      ...(d.scale !== undefined ? { scale: d.scale } : {}),
      ...(d.offset !== undefined ? { offset: d.offset } : {}),
    };
    enc.onMesg(Profile.MesgNum.FIELD_DESCRIPTION!, fd);
    enc.addDeveloperField(i, idMesg, fd);
    dev.set(d.name, { key: i, spec: d, integer: !(d.baseType ?? 'float32').startsWith('float') });
  });

  enc.onMesg(Profile.MesgNum.EVENT!, { timestamp: start, event: 'timer', eventType: 'start' } as object);
  // Records and accelerometer blocks interleaved in time order, as a device writes them.
  const queue: Array<{ t: number; write: () => void }> = [];
  for (const r of spec.records) queue.push({ t: r.t, write: () => enc.onMesg(Profile.MesgNum.RECORD!, recordMesg(r, dev)) });
  for (const a of spec.accel ?? []) queue.push({ t: a.t, write: () => enc.onMesg(Profile.MesgNum.ACCELEROMETER_DATA!, accelMesg(a)) });
  queue.sort((a, b) => a.t - b.t).forEach((q) => q.write());

  for (const h of spec.hr ?? []) {
    enc.onMesg(Profile.MesgNum.HR!, { ...(h.t !== undefined ? { timestamp: new Date(h.t) } : {}), eventTimestamp: h.eventTimestamp, filteredBpm: h.filteredBpm } as object);
  }

  if (spec.summary ?? true) {
    const endMs = spec.records.length > 0 ? spec.records[spec.records.length - 1]!.t : startMs;
    const end = new Date(endMs);
    const elapsed = (endMs - startMs) / 1000;
    enc.onMesg(Profile.MesgNum.EVENT!, { timestamp: end, event: 'timer', eventType: 'stopAll' } as object);
    enc.onMesg(Profile.MesgNum.LAP!, { messageIndex: 0, timestamp: end, startTime: start, totalElapsedTime: elapsed, totalTimerTime: elapsed } as object);
    enc.onMesg(Profile.MesgNum.SESSION!, {
      messageIndex: 0, timestamp: end, startTime: start, totalElapsedTime: elapsed, totalTimerTime: elapsed, sport: 'running', subSport: 'generic', firstLapIndex: 0, numLaps: 1,
    } as object);
    enc.onMesg(Profile.MesgNum.ACTIVITY!, { timestamp: end, numSessions: 1, type: 'manual', event: 'activity', eventType: 'stop', totalTimerTime: elapsed } as object);
  }
  return enc.close();
}

function recordMesg(r: FitRecordSpec, dev: Map<string, { key: number; spec: FitDeveloperFieldSpec; integer: boolean }>): object {
  const m: Record<string, unknown> = { timestamp: new Date(wholeSecond(r.t)) };
  if (r.heartRate !== undefined) m.heartRate = r.heartRate;
  if (r.cadence !== undefined) m.cadence = r.cadence;
  if (r.speed !== undefined) m.speed = r.speed;
  if (r.enhancedSpeed !== undefined) m.enhancedSpeed = r.enhancedSpeed;
  if (r.power !== undefined) m.power = r.power;
  if (r.altitude !== undefined) m.altitude = r.altitude;
  if (r.enhancedAltitude !== undefined) m.enhancedAltitude = r.enhancedAltitude;
  if (r.lat !== undefined) m.positionLat = degreesToSemicircles(r.lat);
  if (r.lon !== undefined) m.positionLong = degreesToSemicircles(r.lon);
  if (r.distance !== undefined) m.distance = r.distance;
  if (r.temperature !== undefined) m.temperature = r.temperature;
  if (r.developer) {
    const fields: Record<number, number> = {};
    for (const [name, value] of Object.entries(r.developer)) {
      const d = dev.get(name);
      if (!d) throw new Error(`record has developer field ${name}, which the spec does not describe`);
      // The Encoder writes developer values as given: the description's scale and offset are applied here.
      const stored = (value + (d.spec.offset ?? 0)) * (d.spec.scale ?? 1);
      fields[d.key] = d.integer ? Math.round(stored) : stored;
    }
    m.developerFields = fields;
  }
  return m;
}

function accelMesg(a: FitAccelSpec): object {
  const seconds = Math.floor(a.t / 1000);
  const m: Record<string, unknown> = { timestamp: new Date(seconds * 1000), timestampMs: a.t - seconds * 1000, sampleTimeOffset: a.offsets };
  const kind = a.kind ?? 'calibrated';
  const prefix = kind === 'calibrated' ? 'calibratedAccel' : kind === 'compressed' ? 'compressedCalibratedAccel' : 'accel';
  m[`${prefix}X`] = a.x;
  m[`${prefix}Y`] = a.y;
  m[`${prefix}Z`] = a.z;
  return m;
}

/**
 * A synthetic `n`-second activity at 1 Hz from `start` (epoch ms): heart rate, cadence, speed,
 * power, altitude, a track around a point, distance, temperature (for timing and bulk tests).
 */
export function oneHzRecords(start: number, n: number): FitRecordSpec[] {
  const out: FitRecordSpec[] = [];
  let distance = 0;
  for (let i = 0; i < n; i++) {
    const speed = 3 + Math.sin(i / 300);
    distance += speed;
    out.push({
      t: start + i * 1000,
      heartRate: Math.round(130 + 20 * Math.sin(i / 600)),
      cadence: 85 + (i % 5),
      speed: Math.round(speed * 1000) / 1000,
      power: 180 + (i % 40),
      altitude: 100 + Math.round(10 * Math.sin(i / 900) * 5) / 5,
      lat: 52.5 + 0.01 * Math.sin(i / 1000),
      lon: 13.4 + 0.01 * Math.cos(i / 1000),
      distance: Math.round(distance * 100) / 100,
      temperature: 20 + (i % 3),
    });
  }
  return out;
}

/** The same bytes with the FIT file CRC (the last two bytes) recomputed, e.g. after an edit. */
export function fixCrc(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  const crc = CrcCalculator.calculateCRC(out, 0, out.length - 2);
  out[out.length - 2] = crc & 0xff;
  out[out.length - 1] = crc >> 8;
  return out;
}

/** The same bytes with one bit flipped (CRC left as it was). */
export function flipBit(bytes: Uint8Array, byte: number, bit = 0): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[byte] = out[byte]! ^ (1 << bit);
  return out;
}

/**
 * A FIT file around hand-made message bytes: a 14-byte header (sizes and header CRC right) and
 * the file CRC, so what is tested is the decoding of `data`, not the framing.
 */
export function wrapFitData(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(14 + data.length + 2);
  const view = new DataView(out.buffer);
  view.setUint8(0, 14);
  view.setUint8(1, 0x20);
  view.setUint16(2, Profile.version.major * 1000 + Profile.version.minor, true);
  view.setUint32(4, data.length, true);
  out.set([0x2e, 0x46, 0x49, 0x54], 8);
  view.setUint16(12, CrcCalculator.calculateCRC(out, 0, 12), true);
  out.set(data, 14);
  const crc = CrcCalculator.calculateCRC(out, 0, 14 + data.length);
  view.setUint16(14 + data.length, crc, true);
  return out;
}

/** The message bytes of a file (between its header and its CRC). */
export function fitData(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(bytes[0]!, bytes.length - 2);
}

/**
 * The shape of a FIT "memory bomb": many developer fields, each set on only a few records, plus
 * many raw accelerometer samples, so that channels × samples is huge while the file is small
 * (`fields` 200, `devRecords` 2, `accelMessages` 8,000 of `samplesPerMessage` 127 is ≈ 8 MB and
 * would be 200 dense columns of a million rows). Records carrying the developer fields come
 * first; record k carries `perRecord` of them (default all; a FIT message holds at most 255)
 * from field k × perRecord on, wrapping around.
 */
export function buildDeveloperBombFit(spec: {
  start: number;
  fields: number;
  devRecords: number;
  accelMessages: number;
  samplesPerMessage: number;
  perRecord?: number;
}): Uint8Array {
  const developer: FitDeveloperFieldSpec[] = Array.from({ length: spec.fields }, (_, i) => ({
    name: `f${i}`,
    baseType: 'uint8',
    developerDataIndex: Math.floor(i / 250),
    fieldNumber: i % 250,
  }));
  const per = Math.min(spec.perRecord ?? spec.fields, spec.fields);
  const records: FitRecordSpec[] = Array.from({ length: spec.devRecords }, (_, k) => ({
    t: spec.start + k * 1000,
    developer: Object.fromEntries(Array.from({ length: per }, (_, j) => [`f${(k * per + j) % spec.fields}`, 1 + (j % 200)])),
  }));
  const n = spec.samplesPerMessage;
  const offsets = Array.from({ length: n }, (_, i) => i);
  const axis = Array.from({ length: n }, (_, i) => 2048 + (i % 7));
  const accel: FitAccelSpec[] = Array.from({ length: spec.accelMessages }, (_, k) => ({
    t: spec.start + spec.devRecords * 1000 + k * n,
    offsets,
    x: axis,
    y: axis,
    z: axis,
    kind: 'raw',
  }));
  return buildActivityFit({ start: spec.start, records, accel, developer, summary: false });
}
