/**
 * FHIR import at scale (issue 9, item 6): a bulk export of --patients Patients with
 * --observations Observations each (default 10,000 × 50 = 500,000 Observations, about 0.5 GB of
 * NDJSON, plus their Conditions) into a feature table, de-identification on, against a target of
 * under 60 s and under 1 GB of memory on this machine.
 *
 *   npx tsx bench/fhir.ts [--patients 10000] [--observations 50] [--repeats 1] [--gzip] [--no-plain] [--json]
 *
 * The export is generated once (seeded, by bench/fhir-data.ts) into the OS temp folder and reused
 * by later runs with the same arguments. `--gzip` writes and imports `.ndjson.gz` files instead.
 *
 * What is timed, each in a fresh Node process (so its peak RSS, `process.resourceUsage().maxRSS`,
 * which counts worker threads too, is the command's alone); medians over --repeats:
 *   JSON.parse       the baseline: read every line of the same files (gunzip where .gz) and
 *                    `JSON.parse` it, nothing kept: the least any importer must do
 *   import           `medfit fhir import <dir> --features <spec> --out <csv> --json` (the CLI's
 *                    `main`, in-process in the child), MEDFIT_DEID_KEY set: read → de-identify →
 *                    feature views → CSV
 *   import, no de-id the same with --no-deidentify (left out with --no-plain): the price of the
 *                    de-identification is the difference
 * "seconds" is the work inside the child (module loading excluded), "command" the child's whole
 * wall time. Ratios are against the baseline of the same run, so they mean something on a busy
 * machine where the absolute seconds do not.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { BENCH_SPEC, bulkExport } from './fhir-data.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The de-identification key the bench runs under when the environment gives none (a bench, not a secret). */
const BENCH_KEY = 'medfit-bench-deidentification-key-0123456789';

/** What a child reports on its last stdout line. */
interface ChildReport {
  seconds: number;
  rssMb: number;
  lines?: number;
  result?: { rows: number; columns: string[]; resources: number; bytes: number; sha256: string };
  code?: number;
  stderr?: string;
}

// ---- the child side: `bench/fhir.ts --child parse|import …` ----

async function parseChild(files: string[]): Promise<ChildReport> {
  const t0 = performance.now();
  let lines = 0;
  for (const f of files) {
    const raw = createReadStream(f, { highWaterMark: 1 << 20 });
    const input = f.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      if (!line) continue;
      const r = JSON.parse(line) as { resourceType?: unknown };
      if (typeof r.resourceType === 'string') lines++;
    }
  }
  return { seconds: (performance.now() - t0) / 1000, rssMb: 0, lines };
}

async function importChild(args: string[]): Promise<ChildReport> {
  const { medfitInProcess } = await import('../test/helpers.js');
  const { code, stdout, stderr, seconds } = await medfitInProcess(['fhir', 'import', ...args, '--json']);
  let result: ChildReport['result'];
  try {
    result = JSON.parse(stdout) as ChildReport['result'];
  } catch {
    /* reported through code and stderr */
  }
  return { seconds, rssMb: 0, code, stderr: stderr.slice(-2000), ...(result ? { result } : {}) };
}

// The child's own arguments (the CLI's flags among them) are not this script's: read them as they are.
const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  const [mode, ...rest] = process.argv.slice(childAt + 1);
  const report = mode === 'parse' ? await parseChild(rest) : await importChild(rest);
  report.rssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write('\n' + JSON.stringify(report) + '\n');
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '10000' },
    observations: { type: 'string', default: '50' },
    repeats: { type: 'string', default: '1' },
    gzip: { type: 'boolean', default: false },
    'no-plain': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

// ---- the parent side ----

const patients = Number(values.patients);
const observations = Number(values.observations);
const repeats = Number(values.repeats);
for (const [name, v] of [['patients', patients], ['observations', observations], ['repeats', repeats]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a whole number ≥ 1`);
}
const log = (s: string) => (values.json ? process.stderr : process.stdout).write(s + '\n');

function child(mode: 'parse' | 'import', args: string[], env: Record<string, string> = {}): ChildReport & { command: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, '--child', mode, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, MEDFIT_DEID_KEY: process.env['MEDFIT_DEID_KEY'] || BENCH_KEY, MEDFIT_DEBUG: '', ...env },
  });
  const command = (performance.now() - t0) / 1000;
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`bench child ${mode} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  const rep = JSON.parse(last) as ChildReport;
  if (mode === 'import' && rep.code !== 0) throw new Error(`medfit fhir import exited ${rep.code}: ${rep.stderr}`);
  return { ...rep, command };
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const dir = join(tmpdir(), `medfit-bench-fhir-${patients}x${observations}${values.gzip ? '-gz' : ''}`);
log(`generating (or reusing) ${patients.toLocaleString('en')} patients × ${observations} observations in ${dir} …`);
const g0 = performance.now();
const data = await bulkExport(dir, patients, observations, { gzip: values.gzip! });
log(
  `  ${data.patients.toLocaleString('en')} Patients, ${data.observations.toLocaleString('en')} Observations, ${data.conditions.toLocaleString('en')} Conditions; ` +
    `${(data.bytes / 2 ** 20).toFixed(0)} MB of NDJSON${values.gzip ? ' (gzipped on disk)' : ''}, ${((performance.now() - g0) / 1000).toFixed(1)} s`,
);

const work = mkdtempSync(join(tmpdir(), 'medfit-bench-fhir-out-'));
const specFile = join(work, 'features.json');
writeFileSync(specFile, JSON.stringify(BENCH_SPEC, null, 2));

interface Case {
  name: string;
  seconds: number;
  command: number;
  rssMb: number;
  ratio: number;
}
const cases: Case[] = [];
const runs: Record<string, Array<ChildReport & { command: number }>> = { parse: [], deid: [], plain: [] };
let table: ChildReport['result'];
try {
  for (let r = 0; r < repeats; r++) {
    runs['parse']!.push(child('parse', data.files));
    const out = join(work, `table-${r}.csv`);
    const deid = child('import', [dir, '--features', specFile, '--out', out]);
    runs['deid']!.push(deid);
    table = deid.result;
    if (r === 0) checkTable(out, deid.result);
    if (!values['no-plain']) runs['plain']!.push(child('import', [dir, '--features', specFile, '--out', join(work, `plain-${r}.csv`), '--no-deidentify']));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** The table has a row per Patient and the spec's columns; a bench of a broken import measures nothing. */
function checkTable(file: string, result: ChildReport['result']): void {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n').filter(Boolean);
  if (lines.length !== patients + 1) throw new Error(`the feature table has ${lines.length - 1} rows, expected ${patients}`);
  const header = lines[0]!.split(',');
  for (const col of ['age', 'sex', 'bmi', 'systolic', 'glucose', 'hba1c', 'smoker', 'diabetes', 'hypertension', 'diabetes_next_year']) {
    if (!header.includes(col)) throw new Error(`the feature table has no column ${col} (got ${header.join(', ')})`);
  }
  const g = header.indexOf('glucose');
  const glucose = lines
    .slice(1)
    .map((l) => l.split(',')[g])
    .filter((c) => c !== '')
    .map(Number);
  if (glucose.length < patients / 2) throw new Error(`only ${glucose.length} of ${patients} rows have a glucose value`);
  const mean = glucose.reduce((a, b) => a + b, 0) / glucose.length;
  // Glucose is generated around 98 mg/dL; a mean near 5.5 would mean mmol/L values went unconverted.
  if (!(mean > 80 && mean < 140)) throw new Error(`mean glucose ${mean.toFixed(1)} is not in mg/dL: the unit conversion did not run`);
  if (result && result.rows !== patients) throw new Error(`import reported ${result.rows} rows`);
}

const base = median(runs['parse']!.map((r) => r.seconds));
const add = (name: string, rs: Array<ChildReport & { command: number }>) => {
  if (!rs.length) return;
  const seconds = median(rs.map((r) => r.seconds));
  cases.push({ name, seconds, command: median(rs.map((r) => r.command)), rssMb: rs.reduce((m, r) => Math.max(m, r.rssMb), 0), ratio: seconds / base });
};
add('JSON.parse every line (baseline)', runs['parse']!);
add('medfit fhir import, de-identified', runs['deid']!);
add('medfit fhir import, --no-deidentify', runs['plain']!);

const resources = data.patients + data.observations + data.conditions;
log(`\n${resources.toLocaleString('en')} resources, ${(data.bytes / 2 ** 20).toFixed(0)} MB; ${repeats} run(s) each, medians; table: ${table?.rows ?? '?'} rows × ${table?.columns.length ?? '?'} columns`);
log(`${'case'.padEnd(40)}${'seconds'.padStart(9)}${'command s'.padStart(11)}${'res/s'.padStart(11)}${'peak RSS MB'.padStart(13)}${'× baseline'.padStart(12)}`);
for (const c of cases) {
  log(`${c.name.padEnd(40)}${c.seconds.toFixed(2).padStart(9)}${c.command.toFixed(2).padStart(11)}${Math.round(resources / c.seconds).toLocaleString('en').padStart(11)}${String(c.rssMb).padStart(13)}${c.ratio.toFixed(2).padStart(12)}`);
}
const deid = cases.find((c) => c.name.includes('de-identified'))!;
const plain = cases.find((c) => c.name.includes('no-deidentify'));
if (plain) log(`de-identification costs ${(deid.seconds - plain.seconds).toFixed(2)} s (${(((deid.seconds - plain.seconds) / plain.seconds) * 100).toFixed(0)}% of the plain import)`);
const scaled = patients === 10_000 && observations === 50;
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
log(
  `target${scaled ? '' : ' (at the default size only; this run is smaller or larger)'}: command under 60 s: ${verdict(deid.command < 60)} (${deid.command.toFixed(1)} s); ` +
    `peak RSS under 1 GB: ${verdict(deid.rssMb < 1024)} (${deid.rssMb} MB)`,
);
if (values.json) console.log(JSON.stringify({ patients, observations, resources, bytes: data.bytes, gzip: values.gzip, repeats, table: table ? { rows: table.rows, columns: table.columns } : null, cases }, null, 2));
