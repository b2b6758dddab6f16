import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { constants, gunzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { Errors, readHead, streamToFileAtomic } from '../core/index.js';
import type { ResourceDeidentifier } from '../fhir/index.js';
import { oneOf, parse } from './args.js';
import type { Io } from './main.js';

/** `medfit fhir --help`. */
export const FHIR_HELP = `medfit fhir <command> ...: HL7 FHIR R4 in and out

  medfit fhir import <inputs…> --features <spec.json> --out <table.csv> [--no-deidentify] [--json]
      FHIR Bundles (JSON) and bulk-export NDJSON (files or folders, gzip accepted), streamed, to a
      training table with one row per Patient, by a feature spec (see the README: age and sex,
      Observations by code with last/first/mean/min/max/count over a window, Condition flags, a
      label after the index date). The table is written atomically.
  medfit fhir run <view.json> <inputs…> [--format csv|json|ndjson] [--out <file>] [--no-deidentify]
      Runs a SQL-on-FHIR v2 ViewDefinition over the resources and prints (or writes) its rows.
  medfit fhir conformance <dir>
      Runs a folder of SQL-on-FHIR v2 conformance files; one line per failure, then
      "N passed, M failed" (exit 0 only when none failed).

De-identification (HIPAA Safe Harbor) is on by default for import and run: names, contact details,
addresses below the state, identifiers, free text and narrative go; ZIP codes keep 3 digits; ids
become keyed pseudonyms that still join across resources; every date moves by a keyed offset per
patient (intervals kept); ages over 89 are pooled as 90. The key is MEDFIT_DEID_KEY (at least 32
characters; keep it outside the data). Without it a random key is used for this run only, so
pseudonyms will not match those of another run. --no-deidentify keeps the resources as they are.
`;

/** `medfit fhir <command>`: `argv` is what follows `fhir`. Returns the exit code. */
export async function fhir(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'import':
      return importCommand(rest, io);
    case 'run':
      return runCommand(rest, io);
    case 'conformance':
      return conformanceCommand(rest, io);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(FHIR_HELP);
      return 0;
    default:
      throw Errors.usage(`fhir: unknown command "${command}" (commands: import, run, conformance; see medfit fhir --help)`);
  }
}

/**
 * The de-identifier the CLI uses unless told not to: keyed by MEDFIT_DEID_KEY, or by a random key
 * for this run (said on stderr, since its pseudonyms join nothing of another run).
 */
export async function cliDeidentifier(io: Io, command: string, index?: string): Promise<ResourceDeidentifier> {
  const { deidKey, Deidentifier } = await import('../privacy/index.js');
  const { key, generated } = deidKey(process.env);
  if (generated) io.stderr.write(`medfit ${command}: MEDFIT_DEID_KEY is not set; de-identifying with a random key for this run only (pseudonyms and date shifts will not match another run's)\n`);
  // Ages over 89 are pooled at the feature spec's index date, where the table measures them.
  return new Deidentifier({ key, ...(index !== undefined ? { now: new Date(index) } : {}) });
}

async function importCommand(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(
    argv,
    {
      features: { type: 'string' },
      out: { type: 'string' },
      'no-deidentify': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'fhir import',
  );
  if (o.help) {
    io.stdout.write(FHIR_HELP);
    return 0;
  }
  if (positionals.length === 0) throw Errors.usage('fhir import: name at least one FHIR file or folder (see medfit fhir --help)');
  if (!o.features) throw Errors.usage('fhir import: --features <spec.json> is required (see medfit fhir --help)');
  if (!o.out) throw Errors.usage('fhir import: --out <table.csv> is required');
  if (statSync(o.out, { throwIfNoEntry: false })?.isDirectory()) throw Errors.usage(`--out ${o.out} is a directory; name a file in it`);
  const { importFhir, parseFeatureSpec } = await import('../fhir/index.js');
  const spec = parseFeatureSpec(readJsonFile(o.features), o.features);
  const deidentifier = o['no-deidentify'] ? undefined : await cliDeidentifier(io, 'fhir import', spec.index);
  const r = await importFhir(positionals, { spec, out: o.out, deidentifier });
  if (o.json) io.stdout.write(JSON.stringify({ out: o.out, rows: r.rows, columns: r.columns, resources: r.resources, bytes: r.bytes, sha256: r.sha256, deidentified: deidentifier !== undefined, warnings: r.warnings }) + '\n');
  else {
    for (const w of r.warnings) io.stderr.write(`medfit fhir import: warning: ${w}\n`);
    io.stderr.write(`medfit fhir import: ${r.resources} resources, ${r.rows} patients, ${r.columns.length} columns${deidentifier ? ', de-identified' : ''}: wrote ${o.out}\n`);
  }
  return 0;
}

async function runCommand(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(
    argv,
    {
      format: { type: 'string', default: 'csv' },
      out: { type: 'string' },
      'no-deidentify': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'fhir run',
  );
  if (o.help) {
    io.stdout.write(FHIR_HELP);
    return 0;
  }
  if (positionals.length < 2) throw Errors.usage('fhir run: expected <view.json> and at least one FHIR file or folder (see medfit fhir --help)');
  const format = oneOf(o.format!, ['csv', 'json', 'ndjson'] as const, 'format');
  if (o.out === '') throw Errors.usage('--out must name a file');
  if (o.out !== undefined && statSync(o.out, { throwIfNoEntry: false })?.isDirectory()) throw Errors.usage(`--out ${o.out} is a directory; name a file in it`);
  const [viewFile, ...inputs] = positionals as [string, ...string[]];
  const { compileView, readResources } = await import('../fhir/index.js');
  const view = compileView(readJsonFile(viewFile), viewFile);
  const d = o['no-deidentify'] ? undefined : await cliDeidentifier(io, 'fhir run');
  const items = readResources(inputs);
  const names = view.columns.map((c) => c.name);
  async function* rows(): AsyncGenerator<Record<string, unknown>> {
    for await (const item of items) {
      if (item.resource.resourceType !== view.resource) continue;
      const it = d ? d.item(item) : item;
      yield* view.run(it.resource, it.fullUrl !== undefined ? { fullUrl: it.fullUrl } : {});
    }
  }
  const text = formatRows(rows(), names, format);
  if (o.out === undefined) {
    for await (const chunk of text) {
      if (!io.stdout.write(chunk)) await once(io.stdout, 'drain');
    }
  } else {
    let count = 0;
    await streamToFileAtomic(o.out, Readable.from(text), (chunk) => (count += chunk.length));
    io.stderr.write(`medfit fhir run: wrote ${count} bytes to ${o.out}\n`);
  }
  return 0;
}

/** Rows as text in a few hundred rows a chunk; a collection or object cell is its JSON in CSV. */
async function* formatRows(rows: AsyncIterable<Record<string, unknown>>, names: string[], format: 'csv' | 'json' | 'ndjson'): AsyncGenerator<string> {
  const { csvField } = await import('../data/index.js');
  const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? csvField(v) : typeof v === 'object' ? csvField(JSON.stringify(v)) : String(v));
  let buf = format === 'csv' ? names.map(csvField).join(',') + '\n' : format === 'json' ? '[' : '';
  let n = 0;
  for await (const row of rows) {
    if (format === 'csv') buf += names.map((c) => cell(row[c])).join(',') + '\n';
    else if (format === 'ndjson') buf += JSON.stringify(row) + '\n';
    else buf += (n > 0 ? ',\n' : '\n') + JSON.stringify(row);
    if (++n % 500 === 0) {
      yield buf;
      buf = '';
    }
  }
  if (format === 'json') buf += n > 0 ? '\n]\n' : ']\n';
  if (buf) yield buf;
}

async function conformanceCommand(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(argv, { help: { type: 'boolean', short: 'h', default: false } }, 'fhir conformance');
  if (o.help) {
    io.stdout.write(FHIR_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw Errors.usage('fhir conformance: expected one folder of conformance files (see medfit fhir --help)');
  const dir = positionals[0]!;
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw Errors.usage(`fhir conformance: ${dir} is not a folder`);
  const { runConformance } = await import('../fhir/index.js');
  const r = await runConformance(dir);
  for (const f of r.failures) io.stdout.write(`${f}\n`);
  io.stdout.write(`${r.passed} passed, ${r.failed} failed\n`);
  return r.failed === 0 ? 0 : 1;
}

/** A JSON file the user named (a view, a feature spec): unreadable or not JSON is a clear error, no parser text echoed. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw Errors.usage(code === 'ENOENT' ? `${path}: no such file` : code === 'EISDIR' ? `${path} is a folder; name a JSON file` : `${path}: cannot be read (${code ?? 'error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // The parser's message may quote the file; only the position it names is used.
    const at = /position (\d+)/.exec(e instanceof Error ? e.message : '');
    if (!at) throw Errors.badData(path, 'is not valid JSON');
    const offset = Number(at[1]);
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset && i < text.length; i++) {
      if (text.charCodeAt(i) === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    throw Errors.badData(`${path}:${line}:${offset - lineStart + 1}`, 'is not valid JSON here');
  }
}

/**
 * Whether `path` holds FHIR resources rather than a table: a folder, or a file (gzip or not) whose
 * first bytes name a `resourceType` (a Bundle, a resource, or bulk-export NDJSON; a JSON table is
 * an array of records, and CSV has no such key up front).
 */
export function looksLikeFhir(path: string): boolean {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  if (st.isDirectory()) return true;
  let head = readHead(path, 64 * 1024);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    try {
      head = gunzipSync(head, { finishFlush: constants.Z_SYNC_FLUSH });
    } catch {
      return false;
    }
  }
  const text = head.toString('utf8');
  const start = text.search(/\S/);
  return start >= 0 && text[start] === '{' && text.includes('"resourceType"');
}

/**
 * `medfit train <FHIR…> --features spec.json`: the resources imported (de-identified unless
 * `--no-deidentify`) into a table in a temporary folder, which the caller trains on and removes.
 * A table file given with `--features` (one `medfit fhir import` made) is checked to have the
 * spec's columns and used as it is.
 */
export async function fhirTrainingTable(
  input: string,
  specFile: string,
  o: { deidentify: boolean },
  io: Io,
): Promise<{ path: string; lineage: { features: import('../fhir/index.js').FeatureSpec; deidentified: boolean }; check: (columns: string[]) => void; cleanup: () => void }> {
  const { featureColumns, importFhir, parseFeatureSpec } = await import('../fhir/index.js');
  const spec = parseFeatureSpec(readJsonFile(specFile), specFile);
  if (!looksLikeFhir(input)) {
    // A table made by `medfit fhir import` (whether it was de-identified is not known here, so
    // not claimed); the caller checks its columns once it has read it.
    const check = (columns: string[]) => {
      const missing = featureColumns(spec).filter((c) => !columns.includes(c));
      if (missing.length) throw Errors.badData(input, `lacks the column(s) ${missing.map((c) => `"${c}"`).join(', ')} of the feature spec ${specFile}; was it made by medfit fhir import with that spec?`);
    };
    return { path: input, lineage: { features: spec, deidentified: false }, check, cleanup: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'medfit-fhir-'));
  const path = join(dir, `${basename(input).replace(/(\.ndjson|\.json)?(\.gz)?$/i, '') || 'fhir'}.csv`);
  const deidentifier = o.deidentify ? await cliDeidentifier(io, 'train', spec.index) : undefined;
  try {
    const r = await importFhir([input], { spec, out: path, deidentifier });
    for (const w of r.warnings) io.stderr.write(`medfit train: warning: ${w}\n`);
    io.stderr.write(`medfit train: ${r.resources} FHIR resources → ${r.rows} patients${deidentifier ? ' (de-identified)' : ''}\n`);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { path, lineage: { features: spec, deidentified: deidentifier !== undefined }, check: () => {}, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * `medfit predict <model> <FHIR…>` for a model trained from a feature spec: the spec evaluated
 * over the resources (as they are: nothing is stored) at the index date (`--index`, default
 * today), one prediction per Patient, printed as lines, as JSON (`--json`), or as a FHIR Bundle of
 * RiskAssessment resources (`--fhir`).
 */
export async function predictFhirCli(
  artifact: import('../registry/index.js').Artifact,
  dir: string,
  input: string,
  o: { json: boolean; fhir: boolean; index?: string | undefined },
  io: Io,
): Promise<number> {
  const lineage = artifact.manifest.fhir;
  if (!lineage) throw Errors.usage(`predict: ${dir} was not trained from FHIR resources (no feature spec in its manifest); give it a table`);
  const index = o.index ?? new Date().toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(index) || Number.isNaN(Date.parse(index))) throw Errors.usage(`--index must be a date, YYYY-MM-DD (got "${index}")`);
  const { FeatureBuilder, featureColumns, readResources } = await import('../fhir/index.js');
  const { tableFromRows } = await import('../data/index.js');
  const { predictTable } = await import('../registry/index.js');
  const builder = new FeatureBuilder(lineage.features, { index, basis: o.fhir });
  for await (const item of readResources([input])) builder.add(item);
  const t = builder.finish();
  if (t.rows.length === 0) throw Errors.badData(input, 'holds no Patient resource: predictions are one per Patient');
  const { predictions, warnings } = predictTable(artifact, tableFromRows(t.columns, t.rows, { source: basename(input) }));
  const patients = t.rows.map((r) => String(r[0]));
  const m = artifact.manifest;
  // A patient without a value of a feature (no Observation of its code in the window) is imputed
  // as in training: said per patient, as table predictions name absent columns.
  const features = featureColumns(lineage.features).map((name) => ({ name, at: t.columns.indexOf(name) }));
  t.rows.forEach((row, i) => {
    const absent = features.filter((f) => row[f.at] === null || row[f.at] === undefined).map((f) => f.name);
    if (absent.length) warnings.push({ code: 'absent', message: `Patient/${patients[i]}: no value of ${absent.join(', ')} by the index date ${index}; imputed as in training` });
  });
  if (o.fhir) {
    const { labelWindow, outcomeConcept, riskAssessmentBundle } = await import('../fhir/index.js');
    const classes = m.target.classes;
    if (!classes) throw Errors.usage(`predict: --fhir answers risks (RiskAssessment) of a classification model; ${dir} is a ${m.task} model`);
    // A model directory outside a registry is named by its folders (models/<name>/v<N>).
    const folder = basename(resolve(dir));
    const when = labelWindow(lineage.features, index);
    const bundle = riskAssessmentBundle({
      model: { name: basename(dirname(resolve(dir))), version: /^v\d+$/.test(folder) ? folder.slice(1) : folder },
      classes,
      outcome: outcomeConcept(lineage.features, m.target.column),
      // As the API answers: the assessment applies at the index date.
      occurrence: index,
      ...(when ? { when } : {}),
      patients: patients.map((p, i) => ({ subject: `Patient/${p}`, basis: t.basis[i] ?? [], probabilities: (predictions[i] as { probabilities: Record<string, number> }).probabilities })),
    });
    (await import('./format.js')).printWarnings(io, warnings);
    io.stdout.write(JSON.stringify(bundle) + '\n');
    return 0;
  }
  if (o.json) {
    io.stdout.write(JSON.stringify({ model: { dir, family: m.model.family, task: m.task, target: m.target.column }, index, predictions: predictions.map((p, i) => ({ patient: patients[i], ...p })), warnings }) + '\n');
    return 0;
  }
  const { printWarnings } = await import('./format.js');
  printWarnings(io, warnings);
  predictions.forEach((p, i) => {
    const shown = 'label' in p ? `${p.label}\t${Object.entries(p.probabilities).map(([c, v]) => `${c}=${v.toFixed(4)}`).join('\t')}` : 'value' in p ? String(p.value) : JSON.stringify(p);
    io.stdout.write(`Patient/${patients[i]}\t${shown}\n`);
  });
  return 0;
}
