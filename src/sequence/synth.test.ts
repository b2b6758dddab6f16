import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { synth } from '../cli/synth.js';
import type { Io } from '../cli/main.js';
import { MedfitError } from '../core/index.js';
import {
  FITNESS_ACTIVITIES,
  FITNESS_COLUMNS,
  fitnessRowCount,
  fitnessSubjects,
  resolveFitnessOptions,
  synthFitnessCsv,
  writeSynthFitness,
  type FitnessSynthOptions,
} from './synth.js';

const G = 9.80665;

function csv(options: FitnessSynthOptions): string {
  return Buffer.concat([...synthFitnessCsv(options)]).toString('latin1');
}

interface Row {
  subject: string;
  session: string;
  t: number;
  acc: [number, number, number];
  gyro: [number, number, number];
  hr: number;
  activity: string;
  energy: number;
}

function rows(text: string): Row[] {
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  return lines.slice(1).map((line) => {
    const f = line.split(',');
    if (f.length !== FITNESS_COLUMNS.length) throw new Error(`row of ${f.length} fields: ${line}`);
    return {
      subject: f[0]!,
      session: f[1]!,
      t: Number(f[2]),
      acc: [Number(f[3]), Number(f[4]), Number(f[5])],
      gyro: [Number(f[6]), Number(f[7]), Number(f[8])],
      hr: Number(f[9]),
      activity: f[10]!,
      energy: Number(f[11]),
    };
  });
}

/** Contiguous runs of one activity within one session. */
function bouts(data: Row[]): Row[][] {
  const out: Row[][] = [];
  for (const r of data) {
    const last = out.at(-1);
    if (last && last[0]!.session === r.session && last[0]!.activity === r.activity) last.push(r);
    else out.push([r]);
  }
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

// Three subjects, 10-second bouts at 50 Hz: 3 × 2 sessions × 7 bouts × 500 rows.
const OPTS = { subjects: 3, seed: 7, seconds: 10 };
const TEXT = csv(OPTS);
const DATA = rows(TEXT);

describe('synthFitnessCsv', () => {
  it('is deterministic: the same options give the same bytes, another seed others', () => {
    expect(csv(OPTS)).toBe(TEXT);
    const other = csv({ ...OPTS, seed: 8 });
    expect(other).not.toBe(TEXT);
    expect(other.split('\n')[0]).toBe(TEXT.split('\n')[0]);
    // A subject's data depend on the seed and its number only, not on how many subjects there are.
    const two = csv({ ...OPTS, subjects: 2 });
    expect(TEXT.startsWith(two)).toBe(true);
  });

  it('writes the exact header and the announced number of rows', () => {
    expect(TEXT.slice(0, TEXT.indexOf('\n'))).toBe('subject,session,t,ax,ay,az,gx,gy,gz,hr,activity,energy');
    expect(FITNESS_COLUMNS.join(',')).toBe('subject,session,t,ax,ay,az,gx,gy,gz,hr,activity,energy');
    expect(DATA).toHaveLength(fitnessRowCount(OPTS));
    expect(DATA).toHaveLength(3 * 2 * 7 * 10 * 50);
  });

  it('gives every subject two sessions, each one bout of every activity, in a seeded order', () => {
    expect([...new Set(DATA.map((r) => r.subject))]).toEqual(['s01', 's02', 's03']);
    expect([...new Set(DATA.map((r) => r.session))]).toEqual(['s01-a', 's01-b', 's02-a', 's02-b', 's03-a', 's03-b']);
    const all = bouts(DATA);
    expect(all).toHaveLength(6 * 7);
    const orders = new Set<string>();
    for (const session of new Set(DATA.map((r) => r.session))) {
      const mine = all.filter((b) => b[0]!.session === session);
      expect(mine.map((b) => b.length)).toEqual(Array(7).fill(500));
      expect(mine.map((b) => b[0]!.activity).sort()).toEqual([...FITNESS_ACTIVITIES].sort());
      orders.add(mine.map((b) => b[0]!.activity).join());
    }
    expect(orders.size).toBeGreaterThan(1);
  });

  it('samples every 20 ms at 50 Hz from epoch milliseconds in 2026, and at 1000/rate otherwise', () => {
    // Checked row by row without `expect`, which costs too much per call for 21,000 rows.
    const steps = new Set<number>();
    for (let i = 1; i < DATA.length; i++) if (DATA[i]!.session === DATA[i - 1]!.session) steps.add(DATA[i]!.t - DATA[i - 1]!.t);
    expect([...steps]).toEqual([20]);
    const outside = DATA.filter((r) => !Number.isInteger(r.t) || r.t < Date.UTC(2026, 0, 1) || r.t >= Date.UTC(2027, 0, 1));
    expect(outside).toEqual([]);
    const starts = [...new Set(DATA.map((r) => r.session))].map((s) => DATA.find((r) => r.session === s)!.t);
    expect(new Set(starts).size).toBe(starts.length);
    const slow = rows(csv({ subjects: 1, seconds: 5, rate: 10 }));
    expect(slow).toHaveLength(2 * 7 * 5 * 10);
    expect(slow[1]!.t - slow[0]!.t).toBe(100);
  });

  it('stays within physical ranges', () => {
    const unphysical = DATA.filter(
      (r) =>
        r.acc.some((a) => !(Math.abs(a) <= 8 * G)) ||
        r.gyro.some((g) => !(Math.abs(g) <= 35)) ||
        !Number.isInteger(r.hr) ||
        !(r.hr >= 35 && r.hr <= 220) ||
        !(r.energy > 0.5 && r.energy < 30),
    );
    expect(unphysical).toEqual([]);
    expect(FITNESS_ACTIVITIES).toContain(DATA[0]!.activity);
    expect(DATA.filter((r) => !(FITNESS_ACTIVITIES as readonly string[]).includes(r.activity))).toEqual([]);
    // Gravity is included: at rest the accelerometer reads about 1 g, and the gyroscope little.
    for (const b of bouts(DATA).filter((b) => b[0]!.activity === 'lying' || b[0]!.activity === 'sitting')) {
      const still = b.slice(150);
      expect(mean(still.map((r) => Math.hypot(...r.acc)))).toBeCloseTo(G, 0);
      expect(mean(still.map((r) => Math.hypot(...r.gyro)))).toBeLessThan(0.3);
    }
  });

  it('ties activity to movement, posture, heart rate and energy', () => {
    // Minute-long bouts, so that heart rate has time to follow.
    const long = rows(csv({ subjects: 2, seed: 7, seconds: 60 }));
    for (const subject of ['s01', 's02']) {
      const of = (activity: string) => long.filter((r) => r.subject === subject && r.activity === activity);
      const settled = (activity: string) => bouts(of(activity)).flatMap((b) => b.slice(-500));
      const accSd = (rs: Row[]) => {
        const m = rs.map((r) => Math.hypot(...r.acc));
        const mu = mean(m);
        return Math.sqrt(mean(m.map((x) => (x - mu) ** 2)));
      };
      expect(accSd(of('running'))).toBeGreaterThan(accSd(of('walking')));
      expect(accSd(of('walking'))).toBeGreaterThan(3 * accSd(of('sitting')));
      // Lying turns gravity well away from where it points when standing.
      const dir = (rs: Row[]) => {
        const v = [0, 1, 2].map((j) => mean(rs.map((r) => r.acc[j]!)));
        const n = Math.hypot(...v);
        return v.map((x) => x / n);
      };
      const [a, b] = [dir(of('standing')), dir(of('lying'))];
      expect(a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!).toBeLessThan(Math.cos((45 * Math.PI) / 180));
      const energy = (activity: string) => mean(settled(activity).map((r) => r.energy));
      expect(energy('running')).toBeGreaterThan(energy('walking'));
      expect(energy('walking')).toBeGreaterThan(energy('standing'));
      expect(energy('standing')).toBeGreaterThan(energy('lying'));
      const hr = (activity: string) => mean(settled(activity).map((r) => r.hr));
      expect(hr('running')).toBeGreaterThan(hr('walking') + 10);
      expect(hr('walking')).toBeGreaterThan(hr('lying') + 5);
    }
    // Heart rate lags: a running bout ends faster than it starts.
    for (const b of bouts(long).filter((b) => b[0]!.activity === 'running')) {
      expect(mean(b.slice(-50).map((r) => r.hr))).toBeGreaterThan(mean(b.slice(0, 50).map((r) => r.hr)) + 5);
    }
  });

  it('makes subjects differ: resting heart rate, mass, cadence, mounting', () => {
    const traits = fitnessSubjects({ subjects: 6, seed: 7 });
    expect(traits.map((t) => t.name)).toEqual(['s01', 's02', 's03', 's04', 's05', 's06']);
    for (const key of ['massKg', 'restingHr', 'walkingCadence', 'maxMet', 'intensity'] as const) {
      expect(new Set(traits.map((t) => t[key].toFixed(6))).size).toBe(6);
    }
    for (const t of traits) {
      expect(t.massKg).toBeGreaterThanOrEqual(45);
      expect(t.restingHr).toBeGreaterThan(40);
      expect(t.restingHr).toBeLessThan(t.maxHr);
    }
    // In the data: the lowest heart rates, and the accelerometer's reading of the standing posture.
    const lowHr = ['s01', 's02', 's03'].map((s) => Math.min(...DATA.filter((r) => r.subject === s).map((r) => r.hr)));
    expect(new Set(lowHr).size).toBe(3);
    const standing = ['s01', 's02', 's03'].map((s) => mean(DATA.filter((r) => r.subject === s && r.activity === 'standing').map((r) => r.acc[0])));
    expect(Math.max(...standing) - Math.min(...standing)).toBeGreaterThan(0.1);
    // Zero-padded names as wide as the subject count needs.
    expect(fitnessSubjects({ subjects: 100 })[0]!.name).toBe('s001');
  });

  it('refuses options out of range, naming them', () => {
    expect(resolveFitnessOptions({})).toEqual({ subjects: 24, seed: 0, seconds: 30, rate: 50 });
    for (const bad of [{ subjects: 0 }, { subjects: 1001 }, { seconds: 4 }, { rate: 0.5 }, { seed: -1 }, { rate: 1001 }]) {
      const key = Object.keys(bad)[0]!;
      expect(() => resolveFitnessOptions(bad)).toThrow(new RegExp(`parameter ${key}:`));
    }
  });
});

describe('writeSynthFitness and medfit synth', () => {
  const dir = mkdtempSync(join(tmpdir(), 'medfit-synth-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function io(): { io: Io; stdout: () => string; stderr: () => string } {
    let out = '';
    let err = '';
    const stdout = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString('latin1');
        cb();
      },
    });
    const stderr = new Writable({
      write(chunk: Buffer, _enc, cb) {
        err += chunk.toString();
        cb();
      },
    });
    return { io: { stdout, stderr: stderr as unknown as NodeJS.WriteStream, stdin: new PassThrough() }, stdout: () => out, stderr: () => err };
  }

  it('writes the file atomically (no temporary sibling left) and returns the row count', async () => {
    const path = join(dir, 'direct.csv');
    expect(await writeSynthFitness(path, OPTS)).toBe(DATA.length);
    expect(readFileSync(path, 'latin1')).toBe(TEXT);
    expect(readdirSync(dir)).toEqual(['direct.csv']);
    rmSync(path);
  });

  it('writes --out and reports the file and the rows on stderr, one line', async () => {
    const path = join(dir, 'out.csv');
    const run = io();
    expect(await synth(['fitness', '--subjects', '3', '--seed', '7', '--seconds', '10', '--out', path], run.io)).toBe(0);
    expect(readFileSync(path, 'latin1')).toBe(TEXT);
    expect(run.stdout()).toBe('');
    expect(run.stderr()).toBe(`medfit synth: wrote ${DATA.length} rows to ${path}\n`);
    expect(readdirSync(dir)).toEqual(['out.csv']);
    rmSync(path);
  });

  it('writes to stdout without --out or with --out -', async () => {
    for (const extra of [[], ['--out', '-']]) {
      const run = io();
      expect(await synth(['fitness', '--subjects', '3', '--seed', '7', '--seconds', '10', ...extra], run.io)).toBe(0);
      expect(run.stdout()).toBe(TEXT);
      expect(run.stderr()).toMatch(/^medfit synth: wrote 21000 rows to standard output\n$/);
    }
  });

  it('prints help', async () => {
    const run = io();
    expect(await synth(['--help'], run.io)).toBe(0);
    expect(run.stdout()).toMatch(/^medfit synth fitness/);
    expect(run.stdout()).toContain('--subjects');
  });

  it('refuses bad usage with a usage error naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [[], /expected one kind/],
      [['weather'], /unknown kind "weather"/],
      [['fitness', 'extra'], /expected one kind/],
      [['fitness', '--subjects', '0'], /--subjects/],
      [['fitness', '--subjects', '1001'], /--subjects must be an integer from 1 to 1000/],
      [['fitness', '--subjects', 'many'], /--subjects/],
      [['fitness', '--seed', '1.5'], /--seed/],
      [['fitness', '--seed', '4294967296'], /--seed/],
      [['fitness', '--seconds', '4'], /--seconds/],
      [['fitness', '--seconds', '3601'], /--seconds/],
      [['fitness', '--rate', '0'], /--rate/],
      [['fitness', '--rate', '1001'], /--rate/],
      [['fitness', '--speed', '2'], /--speed/],
      [['fitness', '--out', ''], /--out/],
      [['fitness', '--out', dir], /--out .* is a directory/],
    ];
    for (const [argv, message] of cases) {
      const run = io();
      const err = await synth(argv, run.io).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, argv.join(' ')).toBeInstanceOf(MedfitError);
      expect((err as MedfitError).code).toBe('MEDFIT_ERR_USAGE');
      expect((err as MedfitError).message).toMatch(message);
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});
