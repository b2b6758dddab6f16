/**
 * Ingest speed against pandas, on the same files, in one run:
 *
 *   npx tsx bench/ingest.ts [--repeats 5] [--size-mb 1024] [--skip-big] [--json]
 *
 * Files (generated once into the OS temp folder by bench/ingest-data.ts, then reused):
 *   numeric   100,000 rows × 31 numeric columns, 27 MB: the file the figures were taken on
 *   clinical  a mixed clinical table (ids, dates, integers, floats with gaps, categories, flags,
 *             free-text diagnoses) of --size-mb megabytes (default 1 GB)
 *
 * What is timed (medians over --repeats; the big file once each):
 *   medfit profile   the compiled CLI, `node bin/medfit.js profile <file> --json`, wall time of
 *                    the whole command (start-up included) and its peak RSS (/usr/bin/time)
 *   medfit table     in a fresh Node process on the compiled modules: read the file into a
 *                    columnar table, infer the schema, fit the feature pipeline on every row and
 *                    transform every row (the read → infer → pipeline part of `medfit train`)
 *   pandas           Debian's python3-pandas in a fresh Python process: `read_csv` + `describe()`
 *                    (the profile's counterpart), and `read_csv` + median imputation +
 *                    standardisation to a NumPy matrix (the table's counterpart); whole-command
 *                    wall time and peak RSS too. Skipped with a note where pandas is not installed.
 *
 * Ratios are pandas ÷ medfit (above 1: medfit is faster). The profile's memory must not grow with
 * the file: compare its peak RSS on the two files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clinicalTable, numericTable } from './ingest-data.js';
import { quantileOf } from '../src/data/index.js';

const { values } = parseArgs({
  options: { repeats: { type: 'string', default: '5' }, 'size-mb': { type: 'string', default: '1024' }, 'skip-big': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
});
const repeats = Number(values.repeats);
const sizeMb = Number(values['size-mb']);
const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/medfit.js');
const PY = '/usr/bin/python3';
if (!existsSync(join(ROOT, 'dist/cli/bin.js'))) {
  console.error('bench/ingest.ts: dist/ is missing; run `npm run build` first');
  process.exit(1);
}
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(s + '\n');

const median = (v: number[]) => quantileOf(Float64Array.from(v), 0.5);

/** Runs a command under /usr/bin/time: wall seconds, peak RSS in MB and stdout. */
function timed(cmd: string, args: string[]): { seconds: number; rssMb: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const rss = Number(r.stderr.trim().split('\n').at(-1));
  return { seconds, rssMb: Math.round(rss / 1024), stdout: r.stdout };
}

const TABLE_JS = `
const { readTable, inferSchema, fitPipeline, transformTable } = await import(${JSON.stringify(join(ROOT, 'dist/data/index.js'))});
const t0 = performance.now();
const t = await readTable(process.argv[1]);
const t1 = performance.now();
const { schema } = inferSchema(t);
const rows = Int32Array.from({ length: t.rowCount }, (_, i) => i);
const p = fitPipeline(t, schema, rows);
const x = transformTable(p, t, rows).x;
const t2 = performance.now();
console.log(JSON.stringify({ read: (t1 - t0) / 1000, pipeline: (t2 - t1) / 1000, rows: x.rows, features: x.cols }));
`;

const PANDAS_JS = `
import sys, time, json
import numpy as np, pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1])
t1 = time.perf_counter()
d = df.describe(include='all')
t2 = time.perf_counter()
num = df.select_dtypes('number')
x = num.fillna(num.median())
x = ((x - x.mean()) / x.std(ddof=0)).to_numpy()
t3 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "describe": t2 - t1, "pipeline": t3 - t2, "rows": int(x.shape[0])}))
`;

const hasPandas = existsSync(PY) && spawnSync(PY, ['-c', 'import pandas'], { encoding: 'utf8' }).status === 0;
const pyFile = join(tmpdir(), 'medfit-bench-pandas.py');
writeFileSync(pyFile, PANDAS_JS);

interface Figures {
  file: string;
  mb: number;
  medfit: { profileSeconds: number; profileMbPerSecond: number; profileRssMb: number; tableReadSeconds: number; tablePipelineSeconds: number; tableSeconds: number };
  pandas?: { readDescribeSeconds: number; readPipelineSeconds: number; commandSeconds: number; rssMb: number };
  ratios?: { profileVsReadDescribe: number; tableVsReadPipeline: number; commandVsCommand: number };
}

function measure(file: string, n: number): Figures {
  const mb = statSync(file).size / 2 ** 20;
  log(`\n${file} (${mb.toFixed(1)} MB), ${n} run(s) each`);
  const prof = Array.from({ length: n }, () => timed(process.execPath, [BIN, 'profile', file, '--json']));
  const rows = (JSON.parse(prof[0]!.stdout) as { rows: number }).rows;
  const table = Array.from({ length: n }, () => JSON.parse(timed(process.execPath, ['--input-type=module', '-e', TABLE_JS, file]).stdout) as { read: number; pipeline: number });
  const f: Figures = {
    file,
    mb: Number(mb.toFixed(1)),
    medfit: {
      profileSeconds: median(prof.map((p) => p.seconds)),
      profileMbPerSecond: mb / median(prof.map((p) => p.seconds)),
      profileRssMb: Math.max(...prof.map((p) => p.rssMb)),
      tableReadSeconds: median(table.map((t) => t.read)),
      tablePipelineSeconds: median(table.map((t) => t.pipeline)),
      tableSeconds: median(table.map((t) => t.read + t.pipeline)),
    },
  };
  log(`  medfit profile (whole command)     ${f.medfit.profileSeconds.toFixed(2)} s  ${f.medfit.profileMbPerSecond.toFixed(0)} MB/s  peak RSS ${f.medfit.profileRssMb} MB  (${rows} rows)`);
  log(`  medfit read → infer → pipeline     ${f.medfit.tableSeconds.toFixed(2)} s  (read ${f.medfit.tableReadSeconds.toFixed(2)} s, schema + pipeline ${f.medfit.tablePipelineSeconds.toFixed(2)} s)`);
  if (!hasPandas) {
    log('  pandas: not installed (apt-get install python3-pandas); no ratios');
    return f;
  }
  const py = Array.from({ length: n }, () => {
    const r = timed(PY, [pyFile, file]);
    return { ...(JSON.parse(r.stdout) as { read: number; describe: number; pipeline: number }), command: r.seconds, rss: r.rssMb };
  });
  f.pandas = {
    readDescribeSeconds: median(py.map((p) => p.read + p.describe)),
    readPipelineSeconds: median(py.map((p) => p.read + p.pipeline)),
    commandSeconds: median(py.map((p) => p.command)),
    rssMb: Math.max(...py.map((p) => p.rss)),
  };
  f.ratios = {
    profileVsReadDescribe: f.pandas.readDescribeSeconds / f.medfit.profileSeconds,
    tableVsReadPipeline: f.pandas.readPipelineSeconds / f.medfit.tableSeconds,
    commandVsCommand: f.pandas.commandSeconds / f.medfit.profileSeconds,
  };
  log(`  pandas read_csv + describe         ${f.pandas.readDescribeSeconds.toFixed(2)} s  (whole command ${f.pandas.commandSeconds.toFixed(2)} s, peak RSS ${f.pandas.rssMb} MB)`);
  log(`  pandas read_csv + impute + scale   ${f.pandas.readPipelineSeconds.toFixed(2)} s`);
  log(`  ratio pandas ÷ medfit: profile ${f.ratios.profileVsReadDescribe.toFixed(2)} (command vs command ${f.ratios.commandVsCommand.toFixed(2)}), table ${f.ratios.tableVsReadPipeline.toFixed(2)}`);
  return f;
}

const numeric = join(tmpdir(), 'medfit-ingest-numeric.csv');
await numericTable(numeric);
const results = [measure(numeric, repeats)];
if (!values['skip-big']) {
  const big = join(tmpdir(), `medfit-ingest-clinical-${sizeMb}mb.csv`);
  await clinicalTable(big, sizeMb);
  results.push(measure(big, 1));
}
if (values.json) console.log(JSON.stringify({ results }, null, 2));
