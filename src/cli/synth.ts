import { once } from 'node:events';
import { statSync } from 'node:fs';
import { Errors } from '../core/index.js';
import { intFlag, parse } from './args.js';
import type { Io } from './main.js';

/** `medfit synth --help`. */
export const SYNTH_HELP = `medfit synth fitness [--subjects 24] [--seed 0] [--seconds 30] [--rate 50] [--out file.csv|-]

Writes a realistic, seeded wearable data set as CSV, one row per sample, with the columns
subject, session, t, ax, ay, az, gx, gy, gz, hr, activity, energy:
  t           epoch milliseconds (each session starts on a seeded day of 2026)
  ax ay az    accelerometer, m/s², gravity included, in the device's own (per-subject) orientation
  gx gy gz    gyroscope, rad/s
  hr          heart rate, whole bpm, updated once a second; it lags changes of activity
  activity    walking, running, cycling, sitting, standing, lying, stairs
  energy      energy expenditure, kcal/min (from METs, body mass and heart rate)
Subjects s01, s02, ... differ in cadence, intensity, mounting, resting heart rate, fitness, noise,
drift and body mass. Each has 2 sessions (s01-a, s01-b), each a seeded order of one bout of
every activity. The same options always give the same bytes.

  --subjects <n>   number of subjects, 1..1000 (default 24)
  --seed <n>       seed, 0..4294967295 (default 0)
  --seconds <n>    length of each activity bout in seconds, 5..3600 (default 30)
  --rate <hz>      samples per second, 1..1000 (default 50)
  --out <file>     where to write (atomically); - or no --out: standard output
`;

/**
 * `medfit synth <kind> [options]`: generates a synthetic data set (only `fitness` so far) to a file
 * or to stdout, and reports the file and the row count on stderr. `argv` is what follows
 * `medfit synth`. Returns the exit code; usage errors are thrown as `Errors.usage`.
 */
export async function synth(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(
    argv,
    {
      subjects: { type: 'string' },
      seed: { type: 'string' },
      seconds: { type: 'string' },
      rate: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'synth',
  );
  if (o.help) {
    io.stdout.write(SYNTH_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw Errors.usage('synth: expected one kind of data set, fitness (see medfit synth --help)');
  if (positionals[0] !== 'fitness') throw Errors.usage(`synth: unknown kind "${positionals[0]}" (kinds: fitness; see medfit synth --help)`);
  const { FITNESS_DEFAULTS, FITNESS_LIMITS, fitnessRowCount, synthFitnessCsv, writeSynthFitness } = await import('../sequence/index.js');
  const flag = (name: keyof typeof FITNESS_LIMITS): number => {
    const [min, max] = FITNESS_LIMITS[name];
    const n = intFlag(o[name], name, FITNESS_DEFAULTS[name], min);
    if (n > max) throw Errors.usage(`--${name} must be an integer from ${min} to ${max} (got "${o[name]}")`);
    return n;
  };
  const options = { subjects: flag('subjects'), seed: flag('seed'), seconds: flag('seconds'), rate: flag('rate') };
  if (o.out === '') throw Errors.usage('--out must name a file, or - for standard output');
  // Found out now rather than by a failed rename after the whole file was written.
  if (o.out !== undefined && o.out !== '-' && statSync(o.out, { throwIfNoEntry: false })?.isDirectory()) throw Errors.usage(`--out ${o.out} is a directory; name a file in it`);
  const rows = fitnessRowCount(options);
  if (o.out === undefined || o.out === '-') {
    if (!(await writeChunks(io.stdout, synthFitnessCsv(options)))) return 0;
    io.stderr.write(`medfit synth: wrote ${rows} rows to standard output\n`);
  } else {
    await writeSynthFitness(o.out, options);
    io.stderr.write(`medfit synth: wrote ${rows} rows to ${o.out}\n`);
  }
  return 0;
}

/**
 * Writes chunks to a stream that is not ours to end (stdout), waiting for `drain` so memory stays
 * bounded. Returns false when the reader went away early (`| head`: EPIPE), which ends the
 * output quietly; any other failure is thrown.
 */
async function writeChunks(out: NodeJS.WritableStream, chunks: Iterable<Buffer>): Promise<boolean> {
  let failure: Error | undefined;
  const onError = (e: Error) => {
    failure = e;
  };
  out.on('error', onError);
  try {
    for (const chunk of chunks) {
      if (!out.write(chunk)) await once(out, 'drain').catch(() => {});
      if (failure) break;
    }
  } finally {
    out.off('error', onError);
  }
  if (failure && (failure as NodeJS.ErrnoException).code !== 'EPIPE') throw failure;
  return failure === undefined;
}
