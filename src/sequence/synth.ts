/**
 * `medfit synth fitness`: a seeded generator of wearable data for demos, tests and benchmarks of
 * the sequence path. It writes what a hip-worn device would record — a 3-axis accelerometer
 * (m/s², gravity included) and gyroscope (rad/s) at a fixed rate, and an optical heart rate
 * (whole bpm, updated once a second) — for seven activities, with a continuous target `energy`
 * (energy expenditure, kcal/min).
 *
 * The data are meant to be learnable but not trivial, so the physics is kept where it decides
 * what a model can learn:
 * - posture sets the direction of gravity in the body frame (sitting leans back, cycling forward,
 *   lying is horizontal), and the device is clipped on at a per-subject angle: sitting and standing
 *   differ mainly by that tilt, which the mounting spread partly hides across subjects;
 * - locomotion is a periodic waveform at the subject's cadence (stairs: slower steps, a stronger
 *   second harmonic, a forward lean and a turn at each landing; walking turns now and then too);
 * - gyroscope readings are the time derivative of the same posture angles (Euler kinematics), so
 *   the two sensors agree;
 * - heart rate and energy both follow the activity's metabolic demand (METs, set by cadence and
 *   intensity, capped by the subject's capacity) through first-order dynamics with per-subject time
 *   constants: heart rate (tens of seconds) aims at the same fraction of the subject's heart-rate
 *   reserve as the demand is of their aerobic reserve (Swain: %HRR ≈ %VO₂R); energy follows the
 *   demand within seconds, at ACSM's 3.5 ml O₂/kg/min per MET (so in proportion to body mass),
 *   plus a recovery cost while heart rate is still above what the activity needs (EPOC);
 * - each subject differs in mass, age, resting and maximal heart rate, fitness, cadence,
 *   intensity, gait shape, mounting, sensor noise, bias, scale and drift. Body mass is seen by no
 *   sensor, which caps how well energy can be predicted.
 *
 * Each subject's traits and randomness come from their own seeded generators (from `seed` and
 * the subject's number), so subject s03 is the same whatever `subjects` is, and the same options
 * always give the same bytes. Rows are made a chunk at a time, as they are read, so any size
 * streams in constant memory.
 */
import { Readable } from 'node:stream';
import { Errors, Rng, streamToFileAtomic } from '../core/index.js';

/** The activities, in the order the documentation lists them. */
export const FITNESS_ACTIVITIES = ['walking', 'running', 'cycling', 'sitting', 'standing', 'lying', 'stairs'] as const;

/** One of {@link FITNESS_ACTIVITIES}. */
export type FitnessActivity = (typeof FITNESS_ACTIVITIES)[number];

/** The CSV's columns, in order. */
export const FITNESS_COLUMNS = ['subject', 'session', 't', 'ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr', 'activity', 'energy'] as const;

/** Sessions recorded per subject (`s01-a`, `s01-b`); each covers every activity once. */
export const FITNESS_SESSIONS = 2;

/** Options of {@link synthFitnessCsv}; omitted ones take {@link FITNESS_DEFAULTS}. */
export interface FitnessSynthOptions {
  /** Number of subjects, 1..1000. */
  subjects?: number;
  /** Seed of every random choice, an integer 0..2³²−1. */
  seed?: number;
  /** Length of each activity bout in seconds, 5..3600. */
  seconds?: number;
  /** Samples per second, 1..1000. */
  rate?: number;
}

/** Defaults of {@link FitnessSynthOptions}. */
export const FITNESS_DEFAULTS: Readonly<Required<FitnessSynthOptions>> = Object.freeze({ subjects: 24, seed: 0, seconds: 30, rate: 50 });

/** Inclusive integer ranges of {@link FitnessSynthOptions}, shared with the CLI's flag checks. */
export const FITNESS_LIMITS: Readonly<Record<keyof FitnessSynthOptions, readonly [number, number]>> = Object.freeze({
  subjects: [1, 1000],
  seed: [0, 4294967295],
  seconds: [5, 3600],
  rate: [1, 1000],
});

/** The traits a subject was drawn with (what the data hide, e.g. to check a model's errors against). */
export interface FitnessSubject {
  /** `s01`, `s02`, ... (zero-padded to the width of the subject count, at least 2 digits). */
  name: string;
  massKg: number;
  age: number;
  /** Resting and maximal heart rate, bpm. */
  restingHr: number;
  maxHr: number;
  /** Maximal aerobic capacity in METs (VO₂max / 3.5 ml/kg/min). */
  maxMet: number;
  /** Steps per minute when walking and running; pedal revolutions per minute when cycling. */
  walkingCadence: number;
  runningCadence: number;
  pedalRpm: number;
  /** Scale of the subject's movements (1 = typical). */
  intensity: number;
}

/** Checks options against {@link FITNESS_LIMITS} and fills in defaults. */
export function resolveFitnessOptions(options: FitnessSynthOptions = {}): Required<FitnessSynthOptions> {
  const out = { ...FITNESS_DEFAULTS };
  for (const key of Object.keys(FITNESS_LIMITS) as (keyof FitnessSynthOptions)[]) {
    const v = options[key];
    if (v === undefined) continue;
    const [min, max] = FITNESS_LIMITS[key];
    if (!Number.isInteger(v) || v < min || v > max) throw Errors.badParam(key, `must be an integer from ${min} to ${max}`);
    out[key] = v;
  }
  return out;
}

/** How many data rows {@link synthFitnessCsv} writes for these options (the header not counted). */
export function fitnessRowCount(options: FitnessSynthOptions = {}): number {
  const o = resolveFitnessOptions(options);
  return o.subjects * FITNESS_SESSIONS * FITNESS_ACTIVITIES.length * o.seconds * o.rate;
}

/** The traits of every subject these options generate, in order. */
export function fitnessSubjects(options: FitnessSynthOptions = {}): FitnessSubject[] {
  const o = resolveFitnessOptions(options);
  const out: FitnessSubject[] = [];
  for (let i = 0; i < o.subjects; i++) {
    const s = drawSubject(o.seed, i, o.subjects);
    out.push({
      name: s.name,
      massKg: s.massKg,
      age: s.age,
      restingHr: s.restHr,
      maxHr: s.maxHr,
      maxMet: s.maxMet,
      walkingCadence: s.walkHz * 60,
      runningCadence: s.runHz * 60,
      pedalRpm: s.pedalHz * 60,
      intensity: s.intensity,
    });
  }
  return out;
}

/**
 * The CSV's bytes (ASCII; header first), in chunks of about a thousand rows: subject 1's two
 * sessions, then subject 2's, each session a seeded order of one bout per activity. Bytes rather
 * than strings: formatting ten numbers a row straight into a buffer is several times faster
 * than `toFixed` and string concatenation, and leaves the garbage collector nothing to do.
 */
export function* synthFitnessCsv(options: FitnessSynthOptions = {}): Generator<Buffer, void, undefined> {
  const o = resolveFitnessOptions(options);
  yield Buffer.from(FITNESS_COLUMNS.join(',') + '\n', 'latin1');
  const out = new RowWriter();
  for (let i = 0; i < o.subjects; i++) {
    const subject = drawSubject(o.seed, i, o.subjects);
    // A generator of its own for the samples, so a subject's traits do not depend on --seconds/--rate.
    const noise = new Gauss(new Rng(mix(o.seed, i, 2)));
    for (const session of subject.sessions) {
      const rows = new SessionSynth(subject, session, noise, o.seconds, o.rate);
      while (rows.fill(out)) yield out.take();
    }
  }
  if (!out.empty()) yield out.take();
}

/** The CSV as a readable stream of byte chunks (backpressure respected: rows are made as read). */
export function synthFitnessStream(options: FitnessSynthOptions = {}): Readable {
  return Readable.from(synthFitnessCsv(options));
}

/**
 * Writes the CSV to `path` atomically (a temporary sibling renamed into place, so a reader never
 * sees half a file) and returns the number of data rows.
 */
export async function writeSynthFitness(path: string, options: FitnessSynthOptions = {}): Promise<number> {
  const rows = fitnessRowCount(options);
  await streamToFileAtomic(path, synthFitnessStream(options), () => {});
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Subjects and sessions

const G = 9.80665;
const DEG = Math.PI / 180;
/** 2026-01-01T00:00:00Z: sessions start on a seeded day of 2026. */
const YEAR_START_MS = Date.UTC(2026, 0, 1);

interface SessionPlan {
  name: string;
  startMs: number;
  /** Per-session re-clipping of the device: a few degrees off the subject's usual mounting. */
  mount: Float64Array;
  /** One bout of every activity, in a seeded order. */
  bouts: BoutPlan[];
}

interface Subject {
  name: string;
  massKg: number;
  age: number;
  restHr: number;
  maxHr: number;
  maxMet: number;
  hrTauUp: number;
  hrTauDown: number;
  metTauUp: number;
  metTauDown: number;
  /** Metabolic efficiency: the same movement costs this many times the typical energy. */
  efficiency: number;
  walkHz: number;
  runHz: number;
  stairsUpHz: number;
  stairsDownHz: number;
  pedalHz: number;
  intensity: number;
  /** Gait shape: weight and phase of the second harmonic of the vertical acceleration. */
  harm2: number;
  harm2Phase: number;
  standPitch: number;
  sitPitch: number;
  cyclePitch: number;
  /** Fidgeting while still, events per second. */
  fidgetRate: number;
  accNoise: number;
  gyroNoise: number;
  accBias: number[];
  gyroBias: number[];
  accScale: number[];
  /** Random-walk drift of the biases, per √s. */
  accDrift: number;
  gyroDrift: number;
  sessions: SessionPlan[];
}

/** A bout's own draws: how this bout differs from the subject's usual. */
interface BoutPlan {
  activity: FitnessActivity;
  /** Posture the bout settles to, radians. */
  pitch: number;
  roll: number;
  /** Step (or pedal) frequency, Hz, and movement scale. */
  hz: number;
  amp: number;
  /** Stairs: up or down; cycling: road vibration; lying: which side. */
  up: boolean;
  vibration: number;
  /** Metabolic demand, METs, and the heart-rate offset of the posture (orthostatic), bpm. */
  met: number;
  hrOffset: number;
  /** Walking: seconds between turns; stairs: steps per flight. */
  turnEvery: number;
}

/** Mixes a seed, a subject number and a stream number into one 32-bit seed (murmur3's finaliser). */
function mix(seed: number, index: number, stream: number): number {
  let h = (seed >>> 0) ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(stream, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Standard normal deviates by Marsaglia's polar method: two per logarithm, no trigonometry. */
class Gauss {
  private spare = 0;
  private hasSpare = false;
  constructor(readonly rng: Rng) {}

  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    let u: number, v: number, s: number;
    do {
      u = 2 * this.rng.next() - 1;
      v = 2 * this.rng.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * f;
    this.hasSpare = true;
    return u * f;
  }

  /** A normal deviate with this mean and standard deviation, kept within [lo, hi]. */
  clipped(mean: number, sd: number, lo: number, hi: number): number {
    return Math.min(hi, Math.max(lo, mean + sd * this.normal()));
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.rng.next();
  }
}

function drawSubject(seed: number, index: number, subjects: number): Subject {
  const r = new Gauss(new Rng(mix(seed, index, 1)));
  const width = Math.max(2, String(subjects).length);
  const name = `s${String(index + 1).padStart(width, '0')}`;
  const age = Math.round(r.uniform(19, 66));
  const fitness = r.clipped(1, 0.13, 0.7, 1.35);
  // Fitter people move more vigorously and run at a quicker cadence.
  const intensity = r.clipped(1 + 0.6 * (fitness - 1), 0.07, 0.75, 1.3);
  const walkHz = r.clipped(110, 7, 90, 130) / 60;
  const s: Subject = {
    name,
    // Adults' mass spreads wider (sd ≈ 15 kg); narrower here because no sensor sees it, and at
    // full width it would be most of any energy model's error across subjects.
    massKg: r.clipped(74, 7, 55, 98),
    age,
    restHr: r.clipped(64, 8, 45, 90),
    // Tanaka's age-predicted maximum, with the individual spread it leaves.
    maxHr: 208 - 0.7 * age + r.clipped(0, 6, -15, 15),
    maxMet: (13.5 - 0.07 * (age - 20)) * fitness,
    // Heart rate rises within tens of seconds and recovers more slowly (its fast phase).
    hrTauUp: r.uniform(10, 25),
    hrTauDown: r.uniform(20, 45),
    // The muscles' demand follows the activity within seconds (unlike oxygen uptake, which lags
    // for a minute or more): short bouts must still cost what they cost.
    metTauUp: r.uniform(1.5, 4),
    metTauDown: r.uniform(2, 6),
    efficiency: r.clipped(1, 0.03, 0.9, 1.1),
    walkHz,
    runHz: r.clipped(164 + 45 * (fitness - 1), 6, 140, 190) / 60,
    // Climbing is slower than walking; descending about as quick.
    stairsUpHz: walkHz * r.clipped(0.84, 0.05, 0.72, 0.96),
    stairsDownHz: walkHz * r.clipped(1.04, 0.05, 0.92, 1.16),
    pedalHz: r.clipped(76, 9, 55, 100) / 60,
    intensity,
    harm2: r.clipped(0.33, 0.08, 0.12, 0.55),
    harm2Phase: r.uniform(0.2, 0.9),
    standPitch: r.clipped(2, 3, -5, 9) * DEG,
    sitPitch: r.clipped(-20, 6, -35, -6) * DEG,
    cyclePitch: r.clipped(22, 6, 8, 38) * DEG,
    fidgetRate: r.uniform(0.03, 0.15),
    accNoise: r.uniform(0.02, 0.12),
    gyroNoise: r.uniform(0.004, 0.02),
    accBias: [r.clipped(0, 0.08, -0.25, 0.25), r.clipped(0, 0.08, -0.25, 0.25), r.clipped(0, 0.08, -0.25, 0.25)],
    gyroBias: [r.clipped(0, 0.015, -0.05, 0.05), r.clipped(0, 0.015, -0.05, 0.05), r.clipped(0, 0.015, -0.05, 0.05)],
    accScale: [r.clipped(1, 0.015, 0.95, 1.05), r.clipped(1, 0.015, 0.95, 1.05), r.clipped(1, 0.015, 0.95, 1.05)],
    accDrift: r.uniform(0.001, 0.006),
    gyroDrift: r.uniform(0.0003, 0.0015),
    sessions: [],
  };
  // The device's usual mounting: clipped on anywhere within ±40° around the waist, tilted a little.
  const mountYaw = r.uniform(-40, 40) * DEG;
  const mountPitch = r.clipped(0, 7, -20, 20) * DEG;
  const mountRoll = r.clipped(0, 7, -20, 20) * DEG;
  // Sessions on two days of 2026, the second within two months of the first, starting 06:00–20:00 UTC.
  const dayA = r.rng.int(300);
  const days = [dayA, dayA + 1 + r.rng.int(60)];
  for (let k = 0; k < FITNESS_SESSIONS; k++) {
    const startMs = YEAR_START_MS + days[k]! * 86_400_000 + (6 * 3600 + r.rng.int(14 * 3600)) * 1000;
    const order = r.rng.shuffle([...FITNESS_ACTIVITIES]);
    const mount = rotation(mountYaw + r.normal() * 3 * DEG, mountPitch + r.normal() * 2.5 * DEG, mountRoll + r.normal() * 2.5 * DEG);
    s.sessions.push({ name: `${name}-${String.fromCharCode(97 + k)}`, startMs, mount, bouts: order.map((a) => drawBout(s, a, r)) });
  }
  return s;
}

function drawBout(s: Subject, activity: FitnessActivity, r: Gauss): BoutPlan {
  const amp = s.intensity * r.clipped(1, 0.07, 0.8, 1.2);
  const b: BoutPlan = { activity, pitch: 0, roll: r.normal() * 2 * DEG, hz: 0, amp, up: false, vibration: 0, met: 1, hrOffset: 0, turnEvery: 0 };
  switch (activity) {
    case 'walking':
      b.hz = s.walkHz * r.clipped(1, 0.04, 0.88, 1.12);
      b.pitch = s.standPitch + r.clipped(2, 1.5, -2, 6) * DEG;
      // Walking pace: the cost grows with cadence (speed) and stride (amplitude).
      b.met = 3.4 * (b.hz / 1.83) ** 2 * Math.sqrt(amp);
      b.hrOffset = 3;
      b.turnEvery = r.uniform(8, 25);
      break;
    case 'running':
      b.hz = s.runHz * r.clipped(1, 0.03, 0.9, 1.1);
      b.pitch = s.standPitch + r.clipped(6, 2, 1, 12) * DEG;
      b.met = 9.5 * (b.hz / 2.73) ** 1.5 * amp ** 0.7;
      b.hrOffset = 3;
      break;
    case 'cycling':
      b.hz = s.pedalHz * r.clipped(1, 0.06, 0.8, 1.2);
      b.pitch = s.cyclePitch + r.normal() * 3 * DEG;
      // Outdoors (road vibration) or on a stationary bike.
      b.vibration = r.rng.next() < 0.6 ? r.uniform(0.2, 0.6) : r.uniform(0.03, 0.1);
      // The resistance (gear, slope, trainer setting) costs energy that no accelerometer sees.
      b.met = 6.5 * (b.hz / 1.27) ** 0.6 * amp ** 0.7 * r.uniform(0.9, 1.1);
      b.hrOffset = 0;
      break;
    case 'sitting':
      b.pitch = s.sitPitch + r.normal() * 4 * DEG;
      b.roll += r.normal() * 2 * DEG;
      b.met = r.clipped(1.3, 0.1, 1.1, 1.6);
      b.hrOffset = 1;
      break;
    case 'standing':
      b.pitch = s.standPitch + r.normal() * 2.5 * DEG;
      b.met = r.clipped(1.8, 0.2, 1.4, 2.4);
      // Orthostatic rise: standing needs a few more beats a minute than sitting.
      b.hrOffset = r.uniform(4, 10);
      break;
    case 'lying': {
      // Mostly on the back, else on a side or face down; never perfectly flat.
      const u = r.rng.next();
      if (u < 0.55) b.pitch = -82 * DEG + r.normal() * 6 * DEG;
      else if (u < 0.9) {
        b.pitch = r.normal() * 8 * DEG;
        b.roll = (u < 0.725 ? 1 : -1) * (80 + r.normal() * 6) * DEG;
      } else b.pitch = 85 * DEG + r.normal() * 4 * DEG;
      b.met = r.clipped(1.0, 0.05, 0.9, 1.15);
      b.hrOffset = -3;
      break;
    }
    case 'stairs':
      b.up = r.rng.next() < 0.5;
      b.hz = (b.up ? s.stairsUpHz : s.stairsDownHz) * r.clipped(1, 0.04, 0.88, 1.12);
      b.pitch = s.standPitch + (b.up ? r.clipped(9, 3, 2, 16) : r.clipped(0, 2, -5, 5)) * DEG;
      // Climbing lifts the body: about 7–9 METs up, under 4 down (ACSM compendium).
      b.met = (b.up ? 7.5 * (b.hz / 1.55) ** 0.8 : 3.6 * (b.hz / 1.9)) * amp ** 0.7;
      b.hrOffset = 3;
      b.turnEvery = Math.round(r.uniform(9, 15));
      break;
  }
  // Nobody keeps up more than about 90% of their aerobic capacity for a whole bout.
  b.met = Math.min(b.met, 0.9 * s.maxMet);
  return b;
}

/** Rotation matrix (row-major 3×3) of yaw about z, then pitch about y, then roll about x. */
function rotation(yaw: number, pitch: number, roll: number): Float64Array {
  const [cy, sy, cp, sp, cr, sr] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch), Math.cos(roll), Math.sin(roll)];
  return Float64Array.of(cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr, sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr, -sp, cp * sr, cp * cr);
}

// ---------------------------------------------------------------------------------------------
// Samples

/** Rows per chunk: big enough to amortise a stream write, small enough to stay in cache. */
const CHUNK_ROWS = 1024;
const ACC_RANGE = 8 * G; // a ±8 g accelerometer
const GYRO_RANGE = 2000 * DEG; // a ±2000 °/s gyroscope
/** Posture changes between bouts take this long; locomotion fades in and out over RAMP_S. */
const TRANSITION_S = 1.5;
const RAMP_S = 1;
/** A stairs landing: two level steps while turning round for the next flight. */
const LANDING_S = 1.3;
/** METs of recovery per MET of heart-rate reserve above the activity's need. */
const EPOC_GAIN = 0.05;

function smooth(u: number): number {
  return u <= 0 ? 0 : u >= 1 ? 1 : u * u * (3 - 2 * u);
}

function smoothSlope(u: number): number {
  return u <= 0 || u >= 1 ? 0 : 6 * u * (1 - u);
}

/** The longest row: 5-digit subject names, ±8 g, ±2000 °/s, a 13-digit time, with room to spare. */
const MAX_ROW_BYTES = 160;

/** Formats rows as ASCII straight into a buffer; `take` hands the filled part over and starts a new one. */
class RowWriter {
  private buf = Buffer.allocUnsafe(CHUNK_ROWS * MAX_ROW_BYTES);
  private pos = 0;

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  comma(): void {
    this.buf[this.pos++] = 44;
  }

  newline(): void {
    this.buf[this.pos++] = 10;
  }

  /** A non-negative safe integer. */
  int(n: number): void {
    let digits = 1;
    for (let p = 10; p <= n; p *= 10) digits++;
    const end = this.pos + digits;
    for (let i = end - 1; i >= this.pos; i--) {
      const q = Math.floor(n / 10);
      this.buf[i] = 48 + (n - q * 10);
      n = q;
    }
    this.pos = end;
  }

  /**
   * `x` rounded to 1/scale (scale a power of ten) with all its decimals, e.g. `-0.250`; a value
   * that rounds to zero is written `0.000`, never `-0.000`.
   */
  fixed(x: number, scale: number): void {
    let n = Math.round(x * scale);
    if (n < 0) {
      this.buf[this.pos++] = 45;
      n = -n;
    }
    const whole = Math.floor(n / scale);
    this.int(whole);
    this.buf[this.pos++] = 46;
    let frac = n - whole * scale;
    for (let p = scale / 10; p >= 1; p /= 10) {
      const d = Math.floor(frac / p);
      this.buf[this.pos++] = 48 + d;
      frac -= d * p;
    }
  }

  full(): boolean {
    return this.pos > this.buf.length - MAX_ROW_BYTES;
  }

  empty(): boolean {
    return this.pos === 0;
  }

  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.pos = 0;
    return out;
  }
}

/**
 * One session's rows, made a chunk at a time. The state lives in fields of this object rather than
 * in a generator's locals: V8 keeps a generator's locals across a `yield` as boxed numbers, so
 * every update of a double allocated, and the garbage collector took a third of the time.
 */
class SessionSynth {
  private readonly dt: number;
  private readonly n: number;
  private readonly prefix: Buffer;
  private readonly hrRho: number;
  private readonly hrInnov: number;
  private readonly accStep: number;
  private readonly gyroStep: number;
  private readonly energyPerMet: number;
  private readonly hrUp: number;
  private readonly hrDown: number;
  private readonly metUp: number;
  private readonly metDown: number;
  private readonly jitterRho: number;
  private readonly jitterInnov: number;
  private readonly vibRho: number;
  // Carried across the session's bouts.
  private pitch: number;
  private roll = 0;
  private hr: number;
  private met = 1.2;
  private hrNoise = 0;
  private held: number;
  private sample = 0;
  private readonly accDrift = new Float64Array(3);
  private readonly gyroDrift = new Float64Array(3);
  private readonly accSlope = new Float64Array(3);
  private readonly gyroSlope = new Float64Array(3);
  // The current bout.
  private boutIndex = -1;
  private k = 0;
  private b!: BoutPlan;
  private label!: Buffer;
  private fromPitch = 0;
  private fromRoll = 0;
  private phase = 0;
  private freqJitter = 0;
  private readonly vib = new Float64Array(3);
  private vibInnov = 0;
  // Discrete events: a fidget (still postures), a turn (walking; stairs landings).
  private eventT = -1;
  private eventLen = 0;
  private eventPitch = 0;
  private eventRoll = 0;
  private eventYaw = 0;
  private eventJolt = 0;
  private nextTurn = Infinity;
  private steps = 0;
  /** Seconds of level walking left on a stairs landing. */
  private landing = 0;
  private fidgetRate = 0;
  private swayAmp = 0;
  private swayHz = 0;
  private breath = 0;
  private hrTarget = 0;
  private reserveTarget = 0;

  constructor(
    private readonly s: Subject,
    private readonly plan: SessionPlan,
    private readonly r: Gauss,
    private readonly seconds: number,
    private readonly rate: number,
  ) {
    const dt = (this.dt = 1 / rate);
    this.n = seconds * rate;
    this.prefix = Buffer.from(`${s.name},${plan.name},`, 'latin1');
    this.hrRho = Math.exp(-dt / 8);
    this.hrInnov = 1.5 * Math.sqrt(1 - this.hrRho * this.hrRho);
    // Uniform steps in [-step, step] a second have the variance of a walk drifting `accDrift` per √s.
    this.accStep = s.accDrift * Math.sqrt(3);
    this.gyroStep = s.gyroDrift * Math.sqrt(3);
    this.energyPerMet = (3.5 * s.massKg) / 200; // kcal/min per MET (ACSM: 3.5 ml O₂/kg/min, 5 kcal/l)
    this.hrUp = 1 - Math.exp(-dt / s.hrTauUp);
    this.hrDown = 1 - Math.exp(-dt / s.hrTauDown);
    this.metUp = 1 - Math.exp(-dt / s.metTauUp);
    this.metDown = 1 - Math.exp(-dt / s.metTauDown);
    this.jitterRho = Math.exp(-dt / 3);
    this.jitterInnov = 0.025 * Math.sqrt(1 - this.jitterRho * this.jitterRho);
    this.vibRho = Math.exp(-dt * 2 * Math.PI * 8); // road vibration: noise low-passed near 8 Hz
    this.pitch = s.standPitch;
    this.hr = s.restHr + r.uniform(0, 8);
    this.held = Math.round(this.hr);
  }

  /** Writes rows until `out` is full (true) or the session has ended (false). */
  fill(out: RowWriter): boolean {
    while (!out.full()) {
      if (this.boutIndex < 0 || this.k === this.n) {
        if (this.boutIndex >= 0) {
          this.pitch = this.b.pitch;
          this.roll = this.b.roll;
        }
        if (++this.boutIndex === this.plan.bouts.length) return false;
        this.startBout();
      }
      this.row(out);
      this.k++;
      this.sample++;
    }
    return true;
  }

  private startBout(): void {
    const { s, r } = this;
    const b = (this.b = this.plan.bouts[this.boutIndex]!);
    this.k = 0;
    this.label = ACTIVITY_BYTES.get(b.activity)!;
    this.fromPitch = this.pitch;
    this.fromRoll = this.roll;
    this.phase = r.uniform(0, 2 * Math.PI);
    this.freqJitter = 0;
    this.vib.fill(0);
    this.vibInnov = b.vibration * Math.sqrt(1 - this.vibRho * this.vibRho);
    this.eventT = -1;
    this.nextTurn = b.turnEvery > 0 && b.activity === 'walking' ? b.turnEvery * r.uniform(0.3, 1) : Infinity;
    this.steps = 0;
    this.landing = 0;
    const act = b.activity;
    this.fidgetRate = s.fidgetRate * (act === 'standing' ? 1.5 : act === 'lying' ? 0.4 : act === 'sitting' ? 1 : 0);
    this.swayAmp = (act === 'standing' ? 0.8 : act === 'sitting' ? 0.3 : 0.1) * DEG;
    this.swayHz = act === 'standing' ? 0.32 : 0.2;
    this.breath = act === 'lying' || act === 'sitting' ? 0.04 : 0.02;
    // Swain: the fraction of heart-rate reserve tracks the fraction of VO₂ reserve.
    this.reserveTarget = Math.min(0.97, Math.max(0, (b.met - 1) / (s.maxMet - 1)));
    this.hrTarget = s.restHr + this.reserveTarget * (s.maxHr - s.restHr) + b.hrOffset;
  }

  private row(out: RowWriter): void {
    const { s, r, b, dt, seconds } = this;
    const M = this.plan.mount;
    const tau = this.k * dt;
    const tSes = this.sample * dt;
    // Posture: a smooth move from the last bout's posture to this one's.
    const u = tau / TRANSITION_S;
    const su = smooth(u);
    const dsu = smoothSlope(u) / TRANSITION_S;
    let th = this.fromPitch + (b.pitch - this.fromPitch) * su;
    let ph = this.fromRoll + (b.roll - this.fromRoll) * su;
    let thRate = (b.pitch - this.fromPitch) * dsu;
    let phRate = (b.roll - this.fromRoll) * dsu;
    let psRate = 0;
    // Locomotion fades in after the posture change and out before the bout ends.
    const env = smooth((tau - 0.3) / RAMP_S) * smooth((seconds - tau) / RAMP_S);
    let dx = 0;
    let dy = 0;
    let dz = 0;

    this.freqJitter = this.freqJitter * this.jitterRho + this.jitterInnov * r.normal();
    const hz = b.hz * (1 + this.freqJitter) * (this.landing > 0 ? s.walkHz / b.hz : 1);
    const before = this.phase;
    const phase = (this.phase += 2 * Math.PI * hz * dt * (env > 0 ? 1 : 0));
    if (Math.floor(phase / (2 * Math.PI)) !== Math.floor(before / (2 * Math.PI))) this.steps++;
    const c1 = Math.cos(phase);
    const s1 = Math.sin(phase);
    const c2 = c1 * c1 - s1 * s1;
    const s2 = 2 * s1 * c1;
    const half = phase / 2;
    const sh = Math.sin(half);
    const ch = Math.cos(half);
    const w = 2 * Math.PI * hz; // d(phase)/dt
    const a = b.amp * env;

    switch (b.activity) {
      case 'walking': {
        const A = 2.4 * a * (hz / 1.83) ** 1.5;
        dz = A * (c1 + s.harm2 * Math.cos(2 * phase + s.harm2Phase));
        dx = A * (0.55 * Math.sin(phase + 0.9) + 0.15 * s2);
        dy = A * 0.35 * sh;
        th += 2 * DEG * a * Math.sin(phase + 0.3);
        thRate += 2 * DEG * a * w * Math.cos(phase + 0.3);
        ph += 3 * DEG * a * sh;
        phRate += 3 * DEG * a * (w / 2) * ch;
        psRate += 5 * DEG * a * (w / 2) * Math.cos(half + 1);
        if (tau >= this.nextTurn && this.eventT < 0) {
          this.eventT = 0;
          this.eventLen = r.uniform(1.2, 2.2);
          this.eventYaw = (r.rng.next() < 0.5 ? -1 : 1) * r.uniform(60, 180) * DEG;
          this.nextTurn = tau + b.turnEvery * r.uniform(0.6, 1.4);
        }
        break;
      }
      case 'running': {
        const A = 8 * a * (hz / 2.73) ** 1.5;
        // Heel strike: sharper than walking, so higher harmonics matter.
        dz = A * (0.9 * c1 + 0.45 * Math.cos(2 * phase + 0.3) + 0.2 * Math.cos(3 * phase + 0.6));
        dx = A * (0.3 * Math.sin(phase + 0.5) + 0.1 * s2);
        dy = A * 0.22 * sh;
        th += 4 * DEG * a * Math.sin(phase + 0.2);
        thRate += 4 * DEG * a * w * Math.cos(phase + 0.2);
        ph += 4 * DEG * a * sh;
        phRate += 4 * DEG * a * (w / 2) * ch;
        psRate += 7 * DEG * a * (w / 2) * Math.cos(half + 0.8);
        break;
      }
      case 'cycling': {
        // Two legs per revolution: vertical at twice the pedal rate, hip rock at the pedal rate.
        const vib = this.vib;
        for (let j = 0; j < 3; j++) vib[j] = vib[j]! * this.vibRho + this.vibInnov * r.normal();
        dz = a * (0.35 * c2 + vib[2]!);
        dy = a * (0.6 * s1 + vib[1]!);
        dx = a * (0.25 * Math.sin(2 * phase + 0.5) + vib[0]!);
        ph += 3 * DEG * a * s1;
        phRate += 3 * DEG * a * w * c1;
        th += 1.5 * DEG * a * s2;
        thRate += 1.5 * DEG * a * 2 * w * c2;
        psRate += 2 * DEG * a * w * Math.cos(phase + 1.2);
        break;
      }
      case 'stairs': {
        if (this.landing > 0) {
          // A landing: two level steps while turning round for the next flight.
          this.landing -= dt;
          const A = 2.2 * a;
          dz = A * (c1 + s.harm2 * Math.cos(2 * phase + s.harm2Phase));
          dx = A * 0.5 * Math.sin(phase + 0.9);
          dy = A * 0.35 * sh;
          // Upright on the level, leaning into the flight again after the turn.
          const v = 1 - this.landing / LANDING_S;
          const lean = (s.standPitch - b.pitch) * b.amp;
          th += lean * Math.sin(Math.PI * v) ** 2;
          thRate += (lean * Math.PI * Math.sin(2 * Math.PI * v)) / LANDING_S;
        } else {
          const A = (b.up ? 3.0 : 3.8) * a * (hz / 1.6) ** 1.5;
          // Climbing: a strong push-off (second harmonic); descending: a sharper landing (third).
          dz = b.up
            ? A * (c1 + 0.6 * Math.cos(2 * phase + 1.3) + 0.15 * Math.cos(3 * phase))
            : A * (c1 + 0.25 * c2 + 0.4 * Math.cos(3 * phase + 0.5));
          dx = A * (0.45 * Math.sin(phase + 0.4) + 0.2 * s2);
          dy = A * 0.4 * sh;
          th += 3 * DEG * a * Math.sin(phase);
          thRate += 3 * DEG * a * w * c1;
          ph += 2.5 * DEG * a * sh;
          phRate += 2.5 * DEG * a * (w / 2) * ch;
          psRate += 4 * DEG * a * (w / 2) * Math.cos(half + 1);
          if (this.steps >= b.turnEvery && this.eventT < 0 && env > 0.99) {
            this.steps = 0;
            this.landing = LANDING_S;
            this.eventT = 0;
            this.eventLen = LANDING_S;
            this.eventYaw = (r.rng.next() < 0.5 ? -1 : 1) * Math.PI;
          }
        }
        break;
      }
      default: {
        // Still postures: sway, breathing, and now and then a fidget or a shift of weight.
        const swayHz = this.swayHz;
        const swayAmp = this.swayAmp;
        const sway = Math.sin(2 * Math.PI * swayHz * tSes) + 0.6 * Math.sin(2 * Math.PI * 0.11 * tSes + 1);
        const swayRate = 2 * Math.PI * (swayHz * Math.cos(2 * Math.PI * swayHz * tSes) + 0.6 * 0.11 * Math.cos(2 * Math.PI * 0.11 * tSes + 1));
        th += swayAmp * sway;
        thRate += swayAmp * swayRate;
        ph += swayAmp * 0.7 * Math.sin(2 * Math.PI * 0.23 * tSes);
        phRate += swayAmp * 0.7 * 2 * Math.PI * 0.23 * Math.cos(2 * Math.PI * 0.23 * tSes);
        dz += this.breath * Math.sin(2 * Math.PI * 0.25 * tSes);
        if (this.eventT < 0 && tau > TRANSITION_S && r.rng.next() < this.fidgetRate * dt) {
          this.eventT = 0;
          this.eventLen = r.uniform(0.6, 2.2);
          const big = b.activity === 'standing' ? 4 : 3;
          this.eventPitch = r.normal() * big * DEG;
          this.eventRoll = r.normal() * big * DEG;
          this.eventYaw = r.normal() * 10 * DEG;
          this.eventJolt = r.normal() * (b.activity === 'standing' ? 0.6 : 0.35);
        }
      }
    }

    if (this.eventT >= 0) {
      const len = this.eventLen;
      const v = this.eventT / len;
      if (b.activity === 'walking' || b.activity === 'stairs') {
        psRate += (this.eventYaw * smoothSlope(v)) / len;
      } else {
        // Fidgets are bumps sin²(πv) over their length: the angles return to where they were.
        const bump = Math.sin(Math.PI * v) ** 2;
        const slope = (Math.PI * Math.sin(2 * Math.PI * v)) / len;
        th += this.eventPitch * bump;
        thRate += this.eventPitch * slope;
        ph += this.eventRoll * bump;
        phRate += this.eventRoll * slope;
        psRate += this.eventYaw * slope;
        const jolt = this.eventJolt * Math.sin(2 * Math.PI * v);
        dx += jolt;
        dy += 0.5 * jolt;
      }
      this.eventT += dt;
      if (this.eventT >= len) this.eventT = -1;
    }

    // Gravity's reaction in the body frame (x forward, y left, z up), plus the movement.
    const cth = Math.cos(th);
    const sth = Math.sin(th);
    const cph = Math.cos(ph);
    const sph = Math.sin(ph);
    const fx = -G * sth + dx;
    const fy = G * cth * sph + dy;
    const fz = G * cth * cph + dz;
    // Body rates from Euler angle rates (ZYX kinematics).
    const wx = phRate - psRate * sth;
    const wy = thRate * cph + psRate * cth * sph;
    const wz = -thRate * sph + psRate * cth * cph;

    const accDrift = this.accDrift;
    const gyroDrift = this.gyroDrift;
    if (this.sample % this.rate === 0) {
      // Drift is slow (temperature): a random walk with a new slope each second is enough.
      for (let j = 0; j < 3; j++) {
        this.accSlope[j] = (this.accStep * (2 * r.rng.next() - 1)) / this.rate;
        this.gyroSlope[j] = (this.gyroStep * (2 * r.rng.next() - 1)) / this.rate;
      }
    }
    for (let j = 0; j < 3; j++) {
      accDrift[j]! += this.accSlope[j]!;
      gyroDrift[j]! += this.gyroSlope[j]!;
    }
    const sax = s.accScale[0]! * (M[0]! * fx + M[1]! * fy + M[2]! * fz) + s.accBias[0]! + accDrift[0]! + s.accNoise * r.normal();
    const say = s.accScale[1]! * (M[3]! * fx + M[4]! * fy + M[5]! * fz) + s.accBias[1]! + accDrift[1]! + s.accNoise * r.normal();
    const saz = s.accScale[2]! * (M[6]! * fx + M[7]! * fy + M[8]! * fz) + s.accBias[2]! + accDrift[2]! + s.accNoise * r.normal();
    const sgx = M[0]! * wx + M[1]! * wy + M[2]! * wz + s.gyroBias[0]! + gyroDrift[0]! + s.gyroNoise * r.normal();
    const sgy = M[3]! * wx + M[4]! * wy + M[5]! * wz + s.gyroBias[1]! + gyroDrift[1]! + s.gyroNoise * r.normal();
    const sgz = M[6]! * wx + M[7]! * wy + M[8]! * wz + s.gyroBias[2]! + gyroDrift[2]! + s.gyroNoise * r.normal();

    // Heart rate and metabolic demand: first-order lags toward the bout's targets.
    const hrTarget = this.hrTarget;
    const hr = (this.hr += (hrTarget - this.hr) * (hrTarget > this.hr ? this.hrUp : this.hrDown));
    const met = (this.met += (b.met - this.met) * (b.met > this.met ? this.metUp : this.metDown));
    const hrNoise = (this.hrNoise = this.hrNoise * this.hrRho + this.hrInnov * r.normal());
    const reserve = Math.min(1, Math.max(0, (hr - s.restHr) / (s.maxHr - s.restHr)));
    // Respiratory sinus arrhythmia: a breathing-rate ripple that fades with effort.
    const hrNow = hr + hrNoise + 2.5 * (1 - reserve) * Math.sin(2 * Math.PI * 0.25 * tSes);
    // An optical sensor reports whole beats per minute once a second.
    if (this.sample % this.rate === 0) this.held = Math.round(Math.min(220, Math.max(35, hrNow)));
    // Recovery: a heart rate still above what the activity needs marks an oxygen debt being
    // repaid (EPOC), which costs energy on top of the activity's demand.
    const epoc = EPOC_GAIN * Math.max(0, reserve - this.reserveTarget) * (s.maxMet - 1);
    const energy = this.energyPerMet * s.efficiency * (met + epoc);

    out.bytes(this.prefix);
    out.int(this.plan.startMs + Math.round((this.sample * 1000) / this.rate));
    out.comma();
    out.fixed(clip(sax, ACC_RANGE), 1000);
    out.comma();
    out.fixed(clip(say, ACC_RANGE), 1000);
    out.comma();
    out.fixed(clip(saz, ACC_RANGE), 1000);
    out.comma();
    out.fixed(clip(sgx, GYRO_RANGE), 10000);
    out.comma();
    out.fixed(clip(sgy, GYRO_RANGE), 10000);
    out.comma();
    out.fixed(clip(sgz, GYRO_RANGE), 10000);
    out.comma();
    out.int(this.held);
    out.bytes(this.label);
    out.fixed(energy, 1000);
    out.newline();
  }
}

/** `,walking,` and so on: the activity with the commas around it, as bytes. */
const ACTIVITY_BYTES = new Map(FITNESS_ACTIVITIES.map((a) => [a, Buffer.from(`,${a},`, 'latin1')]));

function clip(x: number, range: number): number {
  return x > range ? range : x < -range ? -range : x;
}
