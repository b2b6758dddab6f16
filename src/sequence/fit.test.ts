import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder, Profile } from '@garmin/fitsdk';
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng } from '../core/index.js';
import { rowsOf, type Table } from '../data/index.js';
import {
  buildActivityFit,
  buildDeveloperBombFit,
  fitData,
  fixCrc,
  flipBit,
  oneHzRecords,
  wholeSecond,
  wrapFitData,
  type FitRecordSpec,
} from '../../test/fit-builders.js';
import { FIT_MAX_CELLS, FIT_MAX_CHANNELS, FIT_MAX_FILE_BYTES, fitSessionRows, fitToTable, readFitPaths, type FitSession } from './fit.js';

const START = Date.UTC(2024, 4, 1, 10, 0, 0);

/** A channel's values as numbers or null (NaN → null), for comparisons. */
function channel(s: FitSession, name: string): Array<number | null> {
  const j = s.channels.indexOf(name);
  expect(j, `channel ${name}`).toBeGreaterThanOrEqual(0);
  return Array.from(s.values[j]!, (v) => (v === v ? v : null));
}

/** The table's rows as objects keyed by column. */
function objects(t: Table): Array<Record<string, unknown>> {
  return rowsOf(t).map((r) => Object.fromEntries(t.columns.map((c, j) => [c, r[j]])));
}

/** The error `f` throws, which must be a bad-data MedfitError in our words. */
function refusal(f: () => unknown): MedfitError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a refusal').toBeInstanceOf(MedfitError);
  const e = caught as MedfitError;
  expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
  expect(e.message).not.toMatch(/FIT Runtime Error|at byte|RangeError|Offset is outside|\n/);
  return e;
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'medfit-fit-'));

const RECORDS: FitRecordSpec[] = [
  { t: START, heartRate: 120, cadence: 80, speed: 3.456, power: 210, altitude: 101.4, lat: 52.520008, lon: 13.404954, distance: 0, temperature: 21 },
  { t: START + 1000, heartRate: 122, cadence: 82, speed: 3.5, power: 215, altitude: 101.8, lat: 52.520108, lon: -13.404854, distance: 3.5, temperature: 22 },
  { t: START + 2000, heartRate: 125, cadence: 81, speed: 3.25, power: 190, altitude: 102.2, lat: -33.868820, lon: 151.209296, distance: 7.0, temperature: -3 },
];

describe('fitSessionRows: records', () => {
  it('reads every record channel in medfit units and epoch milliseconds', () => {
    const s = fitSessionRows(buildActivityFit({ start: START, records: RECORDS }), 'run.fit');
    expect(s.source).toBe('run.fit');
    expect(s.channels).toEqual(['heart_rate', 'cadence', 'speed', 'power', 'altitude', 'position_lat', 'position_long', 'distance', 'temperature']);
    expect(s.units).toEqual(['bpm', 'rpm', 'm/s', 'W', 'm', 'deg', 'deg', 'm', 'C']);
    expect(Array.from(s.t)).toEqual([START, START + 1000, START + 2000]);
    expect(channel(s, 'heart_rate')).toEqual([120, 122, 125]);
    expect(channel(s, 'cadence')).toEqual([80, 82, 81]);
    expect(channel(s, 'power')).toEqual([210, 215, 190]);
    expect(channel(s, 'temperature')).toEqual([21, 22, -3]);
    RECORDS.forEach((r, i) => {
      expect(channel(s, 'speed')[i]).toBeCloseTo(r.speed!, 9);
      expect(channel(s, 'altitude')[i]).toBeCloseTo(r.altitude!, 6);
      expect(channel(s, 'distance')[i]).toBeCloseTo(r.distance!, 9);
      // Semicircles → degrees: 180/2^31 ≈ 8.4e-8 degrees per unit, so within 1e-6.
      expect(Math.abs(channel(s, 'position_lat')[i]! - r.lat!)).toBeLessThan(1e-6);
      expect(Math.abs(channel(s, 'position_long')[i]! - r.lon!)).toBeLessThan(1e-6);
    });
    expect(s.samples).toBe(3);
  });

  it('prefers enhanced_speed and enhanced_altitude, which carry what the 16-bit fields cannot', () => {
    const s = fitSessionRows(
      buildActivityFit({ start: START, records: [{ t: START, enhancedSpeed: 70.125, enhancedAltitude: 9500.2 }, { t: START + 1000, speed: 2, altitude: -20 }] }),
      'fast.fit',
    );
    expect(channel(s, 'speed')[0]).toBeCloseTo(70.125, 9);
    expect(channel(s, 'altitude')[0]).toBeCloseTo(9500.2, 6);
    expect(channel(s, 'speed')[1]).toBeCloseTo(2, 9);
    expect(channel(s, 'altitude')[1]).toBeCloseTo(-20, 6);
  });

  it('leaves out channels no record has, and keeps gaps as missing', () => {
    const s = fitSessionRows(buildActivityFit({ start: START, records: [{ t: START, heartRate: 90 }, { t: START + 1000, power: 100 }] }), 'a.fit');
    expect(s.channels).toEqual(['heart_rate', 'power']);
    expect(channel(s, 'heart_rate')).toEqual([90, null]);
    expect(channel(s, 'power')).toEqual([null, 100]);
  });

  it('sorts rows by time and merges records at the same second', () => {
    const s = fitSessionRows(
      buildActivityFit({ start: START, records: [{ t: START + 2000, heartRate: 3 }, { t: START, heartRate: 1 }, { t: START + 2000, power: 9 }], summary: false }),
      'b.fit',
    );
    expect(Array.from(s.t)).toEqual([START, START + 2000]);
    expect(channel(s, 'heart_rate')).toEqual([1, 3]);
    expect(channel(s, 'power')).toEqual([null, 9]);
  });
});

describe('fitSessionRows: accelerometer_data', () => {
  it('puts each sample on the time axis at timestamp + timestamp_ms + offset, records missing there', () => {
    const bytes = buildActivityFit({
      start: START,
      records: [{ t: START, heartRate: 100 }, { t: START + 1000, heartRate: 101 }],
      accel: [
        { t: START + 250, offsets: [0, 40, 80], x: [0.1, 0.2, 0.3], y: [1, 1.5, 2], z: [-0.5, -0.25, 0] },
        { t: START + 960, offsets: [0, 40, 80], x: [0.4, 0.5, 0.6], y: [0, 0, 0], z: [1, 1, 1] }, // spans the next second
      ],
    });
    const s = fitSessionRows(bytes, 'accel.fit');
    expect(s.channels).toEqual(['heart_rate', 'ax', 'ay', 'az']);
    expect(s.units).toEqual(['bpm', 'g', 'g', 'g']);
    // START + 1000 is both a record and the second block's second sample: one merged row.
    expect(Array.from(s.t)).toEqual([0, 250, 290, 330, 960, 1000, 1040].map((d) => START + d));
    expect(channel(s, 'heart_rate')).toEqual([100, null, null, null, null, 101, null]);
    const ax = channel(s, 'ax');
    [null, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6].forEach((v, i) => (v === null ? expect(ax[i]).toBeNull() : expect(ax[i]).toBeCloseTo(v, 6)));
    expect(channel(s, 'az')).toEqual([null, -0.5, -0.25, 0, 1, 1, 1]);
    expect(s.samples).toBe(8);
  });

  it('reads compressed calibrated samples (mG) in g and raw samples in counts', () => {
    const compressed = fitSessionRows(
      buildActivityFit({ start: START, records: [{ t: START, heartRate: 1 }], accel: [{ t: START + 100, offsets: [0, 10], x: [1000, -250], y: [0, 0], z: [9, 9], kind: 'compressed' }] }),
      'c.fit',
    );
    expect(compressed.units.slice(1)).toEqual(['g', 'g', 'g']);
    expect(channel(compressed, 'ax')).toEqual([null, 1, -0.25]);
    const raw = fitSessionRows(
      buildActivityFit({ start: START, records: [{ t: START, heartRate: 1 }], accel: [{ t: START + 100, offsets: [0, 10], x: [2048, 2050], y: [1, 2], z: [3, 4], kind: 'raw' }] }),
      'r.fit',
    );
    expect(raw.units.slice(1)).toEqual(['counts', 'counts', 'counts']);
    expect(channel(raw, 'ax')).toEqual([null, 2048, 2050]);
  });

  it('refuses a file mixing calibrated and raw samples on one channel', () => {
    const bytes = buildActivityFit({
      start: START,
      records: [{ t: START, heartRate: 1 }],
      accel: [
        { t: START + 100, offsets: [0], x: [1], y: [1], z: [1] },
        { t: START + 200, offsets: [0], x: [1], y: [1], z: [1], kind: 'raw' },
      ],
    });
    expect(refusal(() => fitSessionRows(bytes, 'mixed.fit')).message).toBe('mixed.fit: mixes calibrated and raw accelerometer samples');
  });
});

describe('fitSessionRows: hr messages', () => {
  it('takes heart rates an HRM stored (hr messages) into the records, as the SDK merges them', () => {
    const records = [0, 1, 2, 3].map((i) => ({ t: START + i * 1000, distance: i }));
    const s = fitSessionRows(
      buildActivityFit({ start: START, records, hr: [{ t: START, eventTimestamp: [0], filteredBpm: [150] }, { eventTimestamp: [1, 2, 3], filteredBpm: [151, 152, 153] }] }),
      'swim.fit',
    );
    // The SDK averages the beats within each record's second (and carries one across gaps).
    expect(channel(s, 'heart_rate')).toEqual([150, 150, 151, null]);
  });

  it('refuses hr messages the SDK cannot merge, in our words', () => {
    const bytes = buildActivityFit({ start: START, records: [{ t: START, distance: 0 }], hr: [{ eventTimestamp: [1, 2], filteredBpm: [151, 152] }] });
    expect(refusal(() => fitSessionRows(bytes, 'hr.fit')).message).toBe('hr.fit: has heart-rate (hr) messages that cannot be merged into its records');
  });
});

describe('fitSessionRows: developer fields', () => {
  it('names them by field_name, applies their scale and offset, keeps their units', () => {
    const bytes = buildActivityFit({
      start: START,
      developer: [
        { name: 'core_temp', units: 'C' },
        { name: 'smo2', units: '%', baseType: 'uint16', scale: 10, offset: 5 },
        { name: 'heart_rate', units: 'bpm', baseType: 'uint8', developerDataIndex: 1 }, // a second app's own heart rate
      ],
      records: [
        { t: START, heartRate: 140, developer: { core_temp: 37.25, smo2: 61.3, heart_rate: 141 } },
        { t: START + 1000, heartRate: 141, developer: { core_temp: 37.5 } },
      ],
    });
    const s = fitSessionRows(bytes, 'dev.fit');
    expect(s.channels).toEqual(['heart_rate', 'core_temp', 'smo2', 'dev_heart_rate']);
    expect(s.units).toEqual(['bpm', 'C', '%', 'bpm']);
    expect(channel(s, 'core_temp')).toEqual([37.25, 37.5]);
    expect(channel(s, 'smo2')[0]).toBeCloseTo(61.3, 9);
    expect(channel(s, 'smo2')[1]).toBeNull();
    expect(channel(s, 'dev_heart_rate')).toEqual([141, null]);
    expect(channel(s, 'heart_rate')).toEqual([140, 141]);
  });

  it('gives a field with no usable name one from its developer index and number', () => {
    const bytes = buildActivityFit({ start: START, developer: [{ name: '\u0001\u0002' }], records: [{ t: START, developer: { '\u0001\u0002': 1.5 } }] });
    const s = fitSessionRows(bytes, 'noname.fit');
    expect(s.channels).toEqual(['dev_0_0']);
  });

  it('refuses a file declaring more developer fields than the bound', () => {
    const enc = new Encoder();
    enc.onMesg(Profile.MesgNum.FILE_ID!, { manufacturer: 'development', product: 1, timeCreated: new Date(START), type: 'activity' } as object);
    enc.onMesg(Profile.MesgNum.DEVELOPER_DATA_ID!, { developerDataIndex: 0, applicationVersion: 1 } as object);
    for (let i = 0; i < 1100; i++) {
      enc.onMesg(Profile.MesgNum.FIELD_DESCRIPTION!, { developerDataIndex: 0, fieldDefinitionNumber: i & 0xff, fitBaseTypeId: 2, fieldName: 'x' } as object);
    }
    enc.onMesg(Profile.MesgNum.RECORD!, { timestamp: new Date(START), heartRate: 1 } as object);
    expect(refusal(() => fitSessionRows(enc.close(), 'many.fit')).message).toBe('many.fit: declares more than 1024 developer fields');
  });
});

describe('fitSessionRows: channels × samples', () => {
  const CELLS_REFUSAL =
    'is too large to read: its channels (every developer field in use is a whole column) times its samples ' +
    'exceed what medfit reads from FIT files into one table; leave out the developer fields the model does not need, ' +
    'split the activity into shorter files, or export the table as CSV';

  it('refuses the memory-bomb shape while decoding, in well under a second (200 developer fields on 2 records, 8,000 × 127 accelerometer samples)', () => {
    // The attacker review's file: ≈ 8 MB, once 203 columns of a million rows (gigabytes of typed arrays, minutes).
    const bytes = buildDeveloperBombFit({ start: START, fields: 200, devRecords: 2, accelMessages: 8_000, samplesPerMessage: 127 });
    expect(bytes.length).toBeGreaterThan(8_000_000);
    expect(bytes.length).toBeLessThan(FIT_MAX_FILE_BYTES);
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      const e = refusal(() => fitSessionRows(bytes, 'bomb.fit'));
      times.push(performance.now() - t0);
      expect(e.message).toBe(`bomb.fit: ${CELLS_REFUSAL}`);
    }
    times.sort((a, b) => a - b);
    console.log(`FIT bomb (${(bytes.length / 1e6).toFixed(1)} MB) refused in ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
    expect(times[0]).toBeLessThan(1_000);
    // The same through a table, as an upload is read.
    expect(refusal(() => fitToTable([{ subject: 's', session: 'x', bytes, source: 'bomb.fit' }])).message).toBe(`bomb.fit: ${CELLS_REFUSAL}`);
  });

  it('holds a session to opts.maxCells exactly (channels × samples)', () => {
    const bytes = buildActivityFit({ start: START, records: oneHzRecords(START, 50) }); // 9 channels × 50 samples
    expect(refusal(() => fitSessionRows(bytes, 'cells.fit', { maxCells: 449 })).message).toBe(`cells.fit: ${CELLS_REFUSAL}`);
    const s = fitSessionRows(bytes, 'cells.fit', { maxCells: 450 });
    expect(s.channels.length * s.t.length).toBe(450);
    expect(FIT_MAX_CELLS).toBe(50_000_000);
  });

  it('counts only the developer fields in use: described but unset ones cost nothing', () => {
    // 1,000 described × 50,800 samples would be over the budget; the 10 set on records are not.
    const bytes = buildDeveloperBombFit({ start: START, fields: 1_000, devRecords: 2, perRecord: 5, accelMessages: 400, samplesPerMessage: 127 });
    const s = fitSessionRows(bytes, 'few.fit');
    expect(s.channels).toEqual(['ax', 'ay', 'az', 'f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'f9']);
    expect(s.t.length).toBe(2 + 400 * 127);
    expect(channel(s, 'f0').slice(0, 3)).toEqual([1, null, null]);
    expect(channel(s, 'f5').slice(0, 3)).toEqual([null, 1, null]);
    expect(channel(s, 'ax')[2]).toBe(2048);
  });

  it(`takes ${FIT_MAX_CHANNELS} channels and refuses one more while decoding`, () => {
    const wide = (fields: number) => buildDeveloperBombFit({ start: START, fields, devRecords: 3, perRecord: 171, accelMessages: 0, samplesPerMessage: 1 });
    const s = fitSessionRows(wide(FIT_MAX_CHANNELS), 'wide.fit');
    expect(s.channels.length).toBe(FIT_MAX_CHANNELS);
    expect(s.t.length).toBe(3);
    expect(refusal(() => fitSessionRows(wide(FIT_MAX_CHANNELS + 1), 'wide.fit')).message).toBe(
      `wide.fit: has more than ${FIT_MAX_CHANNELS} channels (developer fields included); medfit reads at most ${FIT_MAX_CHANNELS} from FIT files: leave out the developer fields the model does not need, or export the table as CSV`,
    );
  });

  it('puts developer values on their rows after sorting and merging, the one read later winning', () => {
    const bytes = buildActivityFit({
      start: START,
      developer: [{ name: 'a' }, { name: 'b' }],
      records: [
        { t: START, developer: { a: 1 } },
        { t: START + 1000, heartRate: 60, developer: { a: 2 } },
        { t: START + 1000, developer: { a: 3, b: 5 } },
      ],
      // Samples at +500, +1000 (merged with the records there) and +1500 (read before the records at +1000).
      accel: [{ t: START + 500, offsets: [0, 500, 1000], x: [0.5, 0.25, 0.125], y: [0, 0, 0], z: [1, 1, 1] }],
      summary: false,
    });
    const s = fitSessionRows(bytes, 'merge.fit');
    expect(s.channels).toEqual(['heart_rate', 'ax', 'ay', 'az', 'a', 'b']);
    expect(Array.from(s.t)).toEqual([START, START + 500, START + 1000, START + 1500]);
    expect(channel(s, 'heart_rate')).toEqual([null, null, 60, null]);
    expect(channel(s, 'ax')).toEqual([null, 0.5, 0.25, 0.125]);
    expect(channel(s, 'a')).toEqual([1, null, 3, null]);
    expect(channel(s, 'b')).toEqual([null, null, 5, null]);
    expect(s.samples).toBe(6);
  });
});

describe('fitSessionRows: damaged and wrong files', () => {
  const good = buildActivityFit({ start: START, records: RECORDS });

  it('refuses an empty file', () => {
    expect(refusal(() => fitSessionRows(new Uint8Array(0), 'empty.fit')).message).toBe('empty.fit: is empty');
  });

  it('refuses a CSV named .fit', () => {
    const csv = new TextEncoder().encode('t,heart_rate\n2024-05-01T10:00:00Z,120\n2024-05-01T10:00:01Z,121\n');
    expect(refusal(() => fitSessionRows(csv, 'data.fit')).message).toBe('data.fit: is not a FIT file (no FIT file header)');
  });

  it('refuses a file cut at any point, naming truncation', () => {
    const cuts = [1, 5, 11, 12, 13, 14, 15, 20, 40, Math.floor(good.length / 2), good.length - 3, good.length - 2, good.length - 1];
    for (const n of cuts) {
      const e = refusal(() => fitSessionRows(good.subarray(0, n), 'cut.fit'));
      expect(e.message, `cut at ${n}`).toMatch(/^cut\.fit: is truncated: /);
    }
  });

  it('refuses a flipped bit anywhere: in the data, in the CRC, in the header', () => {
    for (const at of [20, Math.floor(good.length / 2), good.length - 3, good.length - 1, good.length - 2]) {
      expect(refusal(() => fitSessionRows(flipBit(good, at, 3), 'flip.fit')).message, `byte ${at}`).toBe('flip.fit: fails its CRC check: the file is damaged');
    }
    // Header bytes 1–7 (protocol, profile version, data size) are covered by the header CRC.
    for (const at of [1, 2, 4, 7]) {
      expect(refusal(() => fitSessionRows(flipBit(good, at), 'hdr.fit')).message).toBe('hdr.fit: fails its CRC check: its file header is damaged');
    }
    // Without a header CRC (0), a grown data size is a file shorter than it declares.
    const zeroed = Uint8Array.from(good);
    zeroed[12] = 0;
    zeroed[13] = 0;
    const noHeaderCrc = fixCrc(zeroed); // the file CRC covers the header too
    expect(fitSessionRows(noHeaderCrc, 'ok.fit').t.length).toBe(3);
    expect(refusal(() => fitSessionRows(flipBit(noHeaderCrc, 4), 'size.fit')).message).toBe('size.fit: is truncated: it is shorter than its header declares');
  });

  it('refuses a FIT file without record messages', () => {
    const enc = new Encoder();
    enc.onMesg(Profile.MesgNum.FILE_ID!, { manufacturer: 'development', product: 1, timeCreated: new Date(START), type: 'activity' } as object);
    enc.onMesg(Profile.MesgNum.EVENT!, { timestamp: new Date(START), event: 'timer', eventType: 'start' } as object);
    expect(refusal(() => fitSessionRows(enc.close(), 'norecords.fit')).message).toBe('norecords.fit: has no record messages');
    const summaryOnly = buildActivityFit({ start: START, records: [] });
    expect(refusal(() => fitSessionRows(summaryOnly, 'summary.fit')).message).toBe('summary.fit: has no record messages');
  });

  it('refuses records without timestamps', () => {
    const enc = new Encoder();
    enc.onMesg(Profile.MesgNum.FILE_ID!, { manufacturer: 'development', product: 1, timeCreated: new Date(START), type: 'activity' } as object);
    enc.onMesg(Profile.MesgNum.RECORD!, { heartRate: 100 } as object);
    expect(refusal(() => fitSessionRows(enc.close(), 'nots.fit')).message).toBe('nots.fit: has no record messages with a timestamp');
  });

  it('refuses compressed-timestamp headers, which the SDK cannot read, in our words', () => {
    const data = fitData(good);
    // A compressed-timestamp header (bit 7) right after the file's first message definition and message.
    const bytes = wrapFitData(Uint8Array.from([...data, 0x80 | (0 << 5) | 1]));
    expect(refusal(() => fitSessionRows(bytes, 'ct.fit')).message).toBe('ct.fit: uses compressed-timestamp message headers, which the FIT SDK cannot decode');
  });

  it('refuses bytes after the file that are not another FIT file', () => {
    const bytes = Uint8Array.from([...good, ...new TextEncoder().encode('trailing garbage')]);
    expect(refusal(() => fitSessionRows(bytes, 'tail.fit')).message).toBe('tail.fit: has bytes after its end that are not a FIT file');
  });

  it('reads two chained FIT files as one session', () => {
    const second = buildActivityFit({ start: START + 10_000, records: [{ t: START + 10_000, heartRate: 99 }] });
    const s = fitSessionRows(Uint8Array.from([...good, ...second]), 'chained.fit');
    expect(Array.from(s.t)).toEqual([START, START + 1000, START + 2000, START + 10_000]);
  });

  it('refuses a file over 64 MiB before decoding it', () => {
    const big = new Uint8Array(FIT_MAX_FILE_BYTES + 1);
    big.set(good);
    expect(refusal(() => fitSessionRows(big, 'big.fit')).message).toBe('big.fit: is larger than 64 MiB; export a table that large as CSV');
  });

  it('stops decoding past the sample bound', () => {
    const bytes = buildActivityFit({ start: START, records: oneHzRecords(START, 50) });
    expect(refusal(() => fitSessionRows(bytes, 'long.fit', { maxSamples: 20 })).message).toMatch(/^long\.fit: has more than 20 samples/);
    expect(fitSessionRows(bytes, 'long.fit', { maxSamples: 50 }).t.length).toBe(50);
  });

  it('answers any damage with the CRC made right again in our words, never a crash (seeded fuzz)', () => {
    const base = buildActivityFit({
      start: START,
      records: RECORDS,
      accel: [{ t: START + 500, offsets: [0, 20], x: [1, 2], y: [3, 4], z: [5, 6] }],
      developer: [{ name: 'core_temp', units: 'C' }],
    });
    const rng = new Rng(20240501);
    let accepted = 0;
    for (let k = 0; k < 400; k++) {
      const bytes = Uint8Array.from(base);
      const edits = 1 + rng.int(4);
      for (let e = 0; e < edits; e++) bytes[14 + rng.int(bytes.length - 16)] = rng.int(256);
      try {
        const s = fitSessionRows(fixCrc(bytes), 'fuzz.fit');
        for (const v of s.values) for (const x of v) expect(Number.isNaN(x) || Number.isFinite(x)).toBe(true);
        accepted++;
      } catch (e) {
        expect(e).toBeInstanceOf(MedfitError);
        expect((e as MedfitError).code).toBe('MEDFIT_ERR_BAD_DATA');
        expect((e as MedfitError).message).toMatch(/^fuzz\.fit: /);
        expect((e as MedfitError).message).not.toMatch(/FIT Runtime Error|at byte/);
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('fitToTable and readFitPaths', () => {
  const alice1 = buildActivityFit({ start: START, records: [{ t: START, heartRate: 100, speed: 3 }, { t: START + 1000, heartRate: 101, speed: 3.1 }] });
  const alice2 = buildActivityFit({
    start: START + 86_400_000,
    developer: [{ name: 'core_temp', units: 'C' }],
    records: [{ t: START + 86_400_000, heartRate: 110, developer: { core_temp: 37 } }],
  });
  const bob = buildActivityFit({
    start: START,
    records: [{ t: START, power: 250 }],
    accel: [{ t: START + 500, offsets: [0], x: [0.5], y: [0.25], z: [1] }],
  });

  it('builds one long-format table over sessions, channels the union, missing as null', () => {
    const table = fitToTable([
      { subject: 'alice', session: 'run1', bytes: alice1, source: 'run1.fit' },
      { subject: 'bob', session: 'ride', bytes: bob, source: 'ride.fit' },
    ]);
    expect(table.source).toBe('2 FIT files');
    expect(table.columns).toEqual(['subject', 'session', 't', 'heart_rate', 'speed', 'power', 'ax', 'ay', 'az']);
    expect(objects(table)).toEqual([
      { subject: 'alice', session: 'run1', t: START, heart_rate: 100, speed: 3, power: null, ax: null, ay: null, az: null },
      { subject: 'alice', session: 'run1', t: START + 1000, heart_rate: 101, speed: 3.1, power: null, ax: null, ay: null, az: null },
      { subject: 'bob', session: 'ride', t: START, heart_rate: null, speed: null, power: 250, ax: null, ay: null, az: null },
      { subject: 'bob', session: 'ride', t: START + 500, heart_rate: null, speed: null, power: null, ax: 0.5, ay: 0.25, az: 1 },
    ]);
  });

  it('takes a single upload named by the caller', () => {
    const table = fitToTable([{ subject: 'upload-7', session: 'upload-7', bytes: alice1, source: 'morning.fit' }]);
    expect(table.source).toBe('morning.fit');
    expect(table.rowCount).toBe(2);
  });

  it('refuses two files with the same subject and session, and a channel in two units', () => {
    expect(
      refusal(() =>
        fitToTable([
          { subject: 'a', session: 's', bytes: alice1, source: 'x.fit' },
          { subject: 'a', session: 's', bytes: alice1, source: 'y.fit' },
        ]),
      ).message,
    ).toBe('y.fit: has the same subject and session as x.fit');
    const raw = buildActivityFit({ start: START, records: [{ t: START, heartRate: 1 }], accel: [{ t: START + 1, offsets: [0], x: [1], y: [1], z: [1], kind: 'raw' }] });
    expect(
      refusal(() =>
        fitToTable([
          { subject: 'a', session: '1', bytes: bob, source: 'g.fit' },
          { subject: 'a', session: '2', bytes: raw, source: 'counts.fit' },
        ]),
      ).message,
    ).toBe('counts.fit: channel "ax" is in counts here but in g in g.fit');
  });

  it('reads data/<subject>/<session>.fit with subjects from folders', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'alice'));
    mkdirSync(join(dir, 'bob', 'deeper'), { recursive: true });
    writeFileSync(join(dir, 'alice', 'run1.fit'), alice1);
    writeFileSync(join(dir, 'alice', 'run2.FIT'), alice2);
    writeFileSync(join(dir, 'alice', 'notes.txt'), 'not a session');
    writeFileSync(join(dir, 'alice', '._run1.fit'), 'macOS resource fork');
    writeFileSync(join(dir, 'bob', 'ride.fit'), bob);
    writeFileSync(join(dir, 'bob', 'deeper', 'ignored.fit'), 'two levels down: not read');
    const table = await readFitPaths([dir], { subjectFrom: 'folder' });
    expect(table.columns).toEqual(['subject', 'session', 't', 'heart_rate', 'speed', 'power', 'ax', 'ay', 'az', 'core_temp']);
    const rows = objects(table);
    expect(rows.map((r) => [r.subject, r.session])).toEqual([
      ['alice', 'run1'],
      ['alice', 'run1'],
      ['alice', 'run2'],
      ['bob', 'ride'],
      ['bob', 'ride'],
    ]);
    expect(rows[2]).toMatchObject({ t: START + 86_400_000, heart_rate: 110, core_temp: 37, power: null });
    expect(rows[0]!.core_temp).toBeNull();
  });

  it('reads a flat folder and single files with subjects from file names', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'p01.fit'), alice1);
    writeFileSync(join(dir, 'p02.fit'), bob);
    const other = tempDir();
    writeFileSync(join(other, 'p03.fit'), alice2);
    const table = await readFitPaths([dir, join(other, 'p03.fit')], { subjectFrom: 'filename' });
    expect(table.source).toBe(`${dir} and 1 more`);
    const rows = objects(table);
    expect([...new Set(rows.map((r) => `${r.subject}/${r.session}`))]).toEqual(['p01/p01', 'p02/p02', 'p03/p03']);
    expect(rows.filter((r) => r.subject === 'p02').map((r) => r.t)).toEqual([START, START + 500]);
    // With subjects from folders, a file given by itself belongs to its folder.
    const byFolder = await readFitPaths([join(other, 'p03.fit')], { subjectFrom: 'folder' });
    expect(objects(byFolder)[0]!.subject).toBe(other.split(/[\\/]/).pop());
  });

  it('names the bad file of a folder, refuses a huge file from its size, a folder without .fit files, a missing path', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.fit'), alice1);
    writeFileSync(join(dir, 'b.fit'), 'subject,t\ns1,1\n');
    await expect(readFitPaths([dir], { subjectFrom: 'filename' })).rejects.toThrow(`${join(dir, 'b.fit')}: is not a FIT file (no FIT file header)`);

    const big = tempDir();
    writeFileSync(join(big, 'huge.fit'), alice1);
    truncateSync(join(big, 'huge.fit'), FIT_MAX_FILE_BYTES + 1); // sparse: nothing is written
    await expect(readFitPaths([big], { subjectFrom: 'filename' })).rejects.toThrow(`${join(big, 'huge.fit')}: is larger than 64 MiB`);

    const none = tempDir();
    writeFileSync(join(none, 'x.csv'), 'a\n1\n');
    await expect(readFitPaths([none], { subjectFrom: 'filename' })).rejects.toThrow(`${none}: holds no .fit files`);

    await expect(readFitPaths([join(none, 'absent.fit')], { subjectFrom: 'filename' })).rejects.toMatchObject({ code: 'MEDFIT_ERR_NOT_FOUND' });
    await expect(readFitPaths([], { subjectFrom: 'filename' })).rejects.toMatchObject({ code: 'MEDFIT_ERR_USAGE' });
  });
});

describe('decode time', () => {
  it('decodes a 4-hour 1 Hz activity (14,400 records)', () => {
    const records = oneHzRecords(START, 14_400);
    const bytes = buildActivityFit({ start: START, records });
    fitSessionRows(bytes, 'warmup.fit');
    const times: number[] = [];
    let s: FitSession | undefined;
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now();
      s = fitSessionRows(bytes, 'long.fit');
      times.push(performance.now() - t0);
    }
    const t0 = performance.now();
    const table = fitToTable([{ subject: 's', session: 'long', bytes, source: 'long.fit' }]);
    const tableMs = performance.now() - t0;
    times.sort((a, b) => a - b);
    console.log(
      `FIT decode, 14,400 records (${(bytes.length / 1024).toFixed(0)} KiB): median ${times[2]!.toFixed(0)} ms (min ${times[0]!.toFixed(0)}, max ${times[4]!.toFixed(0)}); ` +
        `to a Table: ${tableMs.toFixed(0)} ms`,
    );
    expect(s!.t.length).toBe(14_400);
    expect(s!.t[14_399]).toBe(wholeSecond(records[14_399]!.t));
    expect(table.rowCount).toBe(14_400);
    expect(times[2]).toBeLessThan(5_000);
  });
});
