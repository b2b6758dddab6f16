import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { TrainResult } from '../automl/index.js';
import { COLUMN_TYPES, Errors, MedfitError, VERSION, type ColumnType } from '../core/index.js';
import type { Table, TableFormat } from '../data/index.js';
import type { Family } from '../models/index.js';
import { intFlag, oneOf, paramFlags, parse } from './args.js';
import { num, printWarnings, progressBar, table } from './format.js';
import { isSequenceInput, SEQUENCE_FLAGS, SEQUENCE_HELP } from './sequence.js';
import { guardProcess } from './guard.js';

// Each command imports the rooms it needs when it runs: `medfit profile` should not pay for
// loading the HTTP server, ONNX Runtime and TensorFlow.js (most of a second at start-up).

/** Where the CLI writes; injectable so tests run commands in-process. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadableStream;
}

const HELP = `medfit ${VERSION}: train, evaluate and serve health and fitness models

Usage:
  medfit train <file> --target <col> [options]   clean, cross-validate, choose and save a model
                                                 (--sequence: sensor streams, FIT files)
  medfit predict <model-dir> <file|-> [--json]   predict every row of a file (or stdin)
  medfit profile <file> [--target <col>] [--json] per-column types, missing values, statistics
  medfit serve [--host 127.0.0.1] [--port 8080] [--data-dir .medfit] [--role all|api|worker]
                                                 the REST API, training workers and dashboard
  medfit worker                                  a training worker of a cluster (serve --role worker)
  medfit keys create|list|revoke ...             API keys (see medfit keys --help)
  medfit synth fitness [--subjects 24] [--seed 0] [--out file.csv]
                                                 realistic wearable data (accelerometer, gyroscope,
                                                 heart rate; activity and energy expenditure)
  medfit fhir import|run|conformance ...         FHIR R4 Bundles and bulk-export NDJSON to training
                                                 tables (de-identified), SQL-on-FHIR v2 views
                                                 (see medfit fhir --help)
  medfit --version | help [command]

Exit codes: 0 success, 2 bad usage or bad data, 1 internal error.
`;

const trainHelp = async () => `medfit train <file> --target <col> [options]

  --target <col[,col…]>   column to predict (required); several numeric columns: one model
                          with an output each (multi-output regression)
  --task <t>              auto | binary | multiclass | regression (default auto)
  --model <m>             auto | logistic | linear | gbdt | mlp | ensemble; with --sequence
                          auto | window-gbdt | lstm | gru | cnn | cnn-lstm (default auto: best
                          by CV; ensemble: a weighted blend of the candidates)
  --budget <duration>     search hyperparameters for this long (e.g. 60s, 5m): each family's
                          defaults, then points of its search space by successive halving on
                          the folds, and an ensemble of the best when it scores better; without
                          it, the defaults only. The final fit on all rows comes after
  --calibrate <c>         auto | none | platt | isotonic: post-hoc calibration of a classifier's
                          probabilities, fitted on out-of-fold predictions (default auto: the
                          method with the lower cross-fitted log loss; the uncalibrated log loss
                          is shown for comparison)
  --group <col>           keep each group (e.g. patient id) on one side of every split
  --ignore <a,b>          columns to leave out
  --type <col=type>       override an inferred type (numeric, integer, boolean, categorical,
                          datetime, identifier, text); repeatable
  --cv <k>                folds of stratified cross-validation (default 5)
  --seed <n>              seed for splits and training (default 0)
  --param <f.key=value>   a hyperparameter, e.g. gbdt.trees=300, mlp.units=64,32; repeatable
  --clip-outliers         clip numeric features to Q1-3IQR..Q3+3IQR of the training rows
  --nested                also estimate the whole choice of family and hyperparameters by
                          nested cross-validation (k times the work, and with --budget k + 1
                          budgets; the leaderboard's scores are on the folds that made the choice)
  --strict                refuse to train (exit 2) when the leakage check flags a feature: one
                          that alone predicts the target (out-of-fold AUROC ≥ 0.98 or R² ≥ 0.95),
                          one that follows the row order of a file sorted by outcome, or a date
                          after the target's; without it these are warnings
  --out <dir>             model directory (default models/<file name>/v<N>, next free N)
  --format <f>            csv | json | ndjson, when the file's extension does not say
  --features <spec.json>  <file> is FHIR (a Bundle, bulk-export NDJSON, gzip, or a folder of
                          them): made into a table by the feature spec, de-identified, then
                          trained on; the model keeps the spec (FHIR predictions, CDS Hooks).
                          A table made by medfit fhir import with that spec is taken too
  --no-deidentify         with --features: use the resources as they are
  --deidentify            a table: drop, pseudonymise (MEDFIT_DEID_KEY) or generalise the columns
                          the profile flags as personal identifiers before training
  --json                  print one JSON document on stdout

${SEQUENCE_HELP}
Hyperparameters (--param family.key=value; defaults for 1,000 rows or windows, binary task):
${await paramHelp()}`;

/** The hyperparameter table, from each family's own spec, so help and validation cannot drift. */
async function paramHelp(): Promise<string> {
  const { FAMILIES, SEQUENCE_FAMILIES } = await import('../models/index.js');
  const lines: string[] = [];
  for (const f of [...Object.values(FAMILIES), ...Object.values(SEQUENCE_FAMILIES)]) {
    const defaults = f.defaults(f.tasks[0]!, 1000);
    for (const [key, spec] of Object.entries(f.paramSpec)) {
      const range =
        spec.type === 'enum' ? spec.values.join('|') : spec.type === 'bool' ? 'true|false' : spec.type === 'intList' ? `${spec.min}..${spec.max}, up to ${spec.maxLength}` : `${spec.min}..${spec.max}`;
      const d = defaults[key];
      lines.push(`  ${`${f.name}.${key}`.padEnd(36)}${`${Array.isArray(d) ? d.join(',') : String(d)}`.padEnd(10)}${range.padEnd(22)}${spec.help}`);
    }
  }
  return lines.join('\n') + '\n';
}

const PREDICT_HELP = `medfit predict <model-dir> <file|-> [--format csv|json|ndjson] [--impute-absent] [--json]
medfit predict <model-dir> <FHIR file|folder> [--index YYYY-MM-DD] [--fhir | --json]

Prints one prediction per input row: the label and class probabilities, or the value. A file
without some of the model's feature columns, or with a column none of whose values can be read
(decimal commas, another date format), is refused (exit 2, naming them): every row would be
imputed. --impute-absent predicts anyway, imputing those columns as in training.

A model trained from FHIR (medfit train --features) also takes FHIR resources (a Bundle,
bulk-export NDJSON, gzip, a folder): its feature spec is evaluated at the index date (default
today) and each Patient gets one prediction; --fhir prints a FHIR R4 Bundle of RiskAssessment
resources (basis: the Observations and Conditions used).
`;

const PROFILE_HELP = `medfit profile <file> [--target <col>] [--format csv|json|ndjson] [--json]

Streams the file once: per-column type, missing %, distinct count, min/max/mean/std/quartiles,
top categories, IQR outliers; duplicate rows; target balance. Memory does not grow with the file,
so some figures of large files are estimates: they are marked "~" (and listed under "approximate"
with --json).
`;

const SERVE_HELP = `medfit serve [--host 127.0.0.1] [--port 8080] [--data-dir .medfit] [--role all|api|worker] [--mqtt <url>]
medfit worker [same options]    (serve --role worker)

Runs the REST API (/v1, and /v2: the Open Inference Protocol), the training workers and the
dashboard (/) in one process, with SQLite and files under the data directory. The first start
without MEDFIT_ADMIN_KEY prints an admin key once, on stderr; stdout carries only the server's
JSON log lines. Environment: MEDFIT_HOST, MEDFIT_PORT,
MEDFIT_DATA_DIR, MEDFIT_ADMIN_KEY, MEDFIT_MAX_UPLOAD_MB (100), MEDFIT_MAX_BODY_MB (10),
MEDFIT_TRAIN_CONCURRENCY (1), MEDFIT_MODEL_CACHE (16), MEDFIT_LOG_LEVEL (info),
MEDFIT_MANIFEST_KEY (signs and checks model manifests; train and predict honour it too),
MEDFIT_UPLOAD_CHECK_SECONDS (30), MEDFIT_UPLOAD_CHECK_MB (1024), MEDFIT_DEID_KEY (de-identification;
random per process when unset), MEDFIT_PUBLIC_URL, MEDFIT_CDS_FHIR_SERVERS.

Many processes (README "Many replicas and workers", deploy/README.md): MEDFIT_DATABASE_URL
(postgres://; MEDFIT_DATABASE_SCHEMA, MEDFIT_DATABASE_POOL, MEDFIT_DATABASE_STATEMENT_TIMEOUT_MS), MEDFIT_REDIS_URL (redis://; MEDFIT_REDIS_PREFIX, MEDFIT_JOB_STALL_SECONDS,
MEDFIT_JOB_MAX_STALLS) and MEDFIT_STORAGE_URL (s3://bucket/prefix with MEDFIT_S3_ENDPOINT and
AWS_*, or file:///folder every process mounts; MEDFIT_CACHE_MB of copies kept in the data
directory, 4096) make replicas share metadata, jobs and files;
MEDFIT_ADMIN_KEY, MEDFIT_MANIFEST_KEY and MEDFIT_DEID_KEY must then be the same in every process.
GET /healthz is liveness, GET /readyz readiness (database, Redis, storage). Under a supervisor,
run node bin/medfit.js rather than npx, so its signals reach the server.

  --role <role>           all (default): everything in one process; api: answers requests and
                          hands jobs to workers (needs MEDFIT_REDIS_URL); worker: trains jobs from
                          the queue and answers /healthz, /readyz and /metrics only (MEDFIT_ROLE)

  --mqtt <url>            also predict live from an MQTT broker (MEDFIT_MQTT_URL): devices publish
                          samples to medfit/<project>/<device>/samples with their API key (MQTT v5
                          user property "key", or {"key", "samples"}); each window's prediction
                          goes to .../predictions, problems to .../errors. medfit's own broker
                          login: MEDFIT_MQTT_USERNAME, MEDFIT_MQTT_PASSWORD
  --mqtt-model <name>     the model samples go to (default: the project's newest sequence model)
`;

const KEYS_HELP = `medfit keys <command> [--data-dir .medfit] [--json]

  create --project <name> --scopes <admin,train,predict,read> [--name <label>]
                          prints the new key once (only its hash is stored)
  list [--project <name>] keys with their id, project, scopes, and whether revoked
  revoke <key-id>         the key stops working within seconds, also on a running server

With MEDFIT_DATABASE_URL (and MEDFIT_DATABASE_SCHEMA) set, the keys are those of that PostgreSQL
database, which a cluster's replicas share; otherwise of the data directory's SQLite file.
`;

/** Runs one CLI invocation and returns its exit code; never throws. */
export async function main(argv: string[], io: Io = process): Promise<number> {
  const json = argv.includes('--json');
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case 'train':
        return await train(rest, io);
      case 'predict':
        return await predict(rest, io);
      case 'profile':
        return await profile(rest, io);
      case 'serve':
        return await serve(rest, io);
      case 'worker':
        return await serve(rest, io, 'worker');
      case 'keys':
        return await keys(rest, io);
      case 'synth': {
        const { synth } = await import('./synth.js');
        return await synth(rest, io);
      }
      case 'fhir': {
        const { fhir } = await import('./fhir.js');
        return await fhir(rest, io);
      }
      case '--version':
      case 'version':
        io.stdout.write(`${VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h': {
        const topic = rest[0];
        // train's help is built on demand (it lists every family's hyperparameters).
        const topics: Record<string, string> = { predict: PREDICT_HELP, profile: PROFILE_HELP, serve: SERVE_HELP, worker: SERVE_HELP, keys: KEYS_HELP };
        io.stdout.write(topic === 'train' ? await trainHelp() : topic === 'synth' ? (await import('./synth.js')).SYNTH_HELP : topic === 'fhir' ? (await import('./fhir.js')).FHIR_HELP : topic !== undefined && Object.hasOwn(topics, topic) ? topics[topic]! : HELP);
        return 0;
      }
      default:
        throw Errors.usage(`unknown command "${command}" (commands: train, predict, profile, serve, worker, keys, synth, fhir; see medfit help)`);
    }
  } catch (e) {
    return reportError(e, io, json);
  }
}

function reportError(e: unknown, io: Io, json: boolean): number {
  const err = e instanceof MedfitError ? e : Errors.internal(`internal error: ${e instanceof Error ? e.message : String(e)}`);
  // One line, no stack: the message names file, line or column. MEDFIT_DEBUG shows the stack.
  io.stderr.write(`medfit: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
  if (process.env['MEDFIT_DEBUG'] && e instanceof Error && e.stack) io.stderr.write(`${e.stack}\n`);
  if (json) io.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message, details: err.details } }) + '\n');
  return err.exitCode;
}

async function train(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(
    argv,
    {
      target: { type: 'string' },
      task: { type: 'string', default: 'auto' },
      model: { type: 'string', default: 'auto' },
      group: { type: 'string' },
      ignore: { type: 'string' },
      type: { type: 'string', multiple: true, default: [] },
      cv: { type: 'string' },
      seed: { type: 'string' },
      param: { type: 'string', multiple: true, default: [] },
      'clip-outliers': { type: 'boolean', default: false },
      nested: { type: 'boolean', default: false },
      strict: { type: 'boolean', default: false },
      budget: { type: 'string' },
      calibrate: { type: 'string' },
      out: { type: 'string' },
      format: { type: 'string' },
      features: { type: 'string' },
      deidentify: { type: 'boolean', default: false },
      'no-deidentify': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      ...SEQUENCE_FLAGS,
    },
    'train',
  );
  if (o.help) {
    io.stdout.write(await trainHelp());
    return 0;
  }
  if (positionals.length !== 1) throw Errors.usage('train: expected one data file (see medfit train --help)');
  if (!o.target) throw Errors.usage('train: --target <column> is required');
  // Read only by GBDT trainings on big tables: a bad value is named now, not after the data is read.
  (await import('../models/index.js')).trainThreads(process.env);
  const task = oneOf(o.task!, ['auto', 'binary', 'multiclass', 'regression'] as const, 'task');
  const file = positionals[0]!;
  if (o['no-deidentify'] && o.features === undefined) throw Errors.usage('--no-deidentify is for FHIR input (with --features)');
  if (o.deidentify && (o.features !== undefined || o.sequence)) throw Errors.usage('--deidentify is for tables: FHIR input (--features) is de-identified unless --no-deidentify, and sensor streams have no personal identifiers to remove here');
  if (o.features !== undefined && (o.sequence || o.format)) throw Errors.usage('--features makes a table from FHIR resources; it does not go with --sequence or --format');
  if (o.features === undefined && isSequenceInput(file, o)) {
    if (o.strict) throw Errors.usage('--strict (the leakage check) is for tables, not sensor streams (--sequence)');
    if (o.budget !== undefined || o.calibrate !== undefined) throw Errors.usage(`--${o.budget !== undefined ? 'budget' : 'calibrate'} is for tables, not sensor streams (--sequence)`);
    const { manifestKeyFromEnv, nextVersionDir } = await import('../registry/index.js');
    manifestKeyFromEnv(process.env);
    const out = o.out ?? nextVersionDir('models', basename(file, extname(file)).replace(/[^A-Za-z0-9_.-]/g, '_') || 'model');
    if (existsSync(out) && readdirSync(out).length > 0) throw Errors.usage(`${out} already exists and is not empty; choose another --out`);
    const { trainSequenceCli } = await import('./sequence.js');
    return trainSequenceCli(file, o, {
      target: o.target,
      task,
      model: o.model!,
      cv: o.cv,
      seed: intFlag(o.seed, 'seed', 0, 0),
      params: paramFlags(o.param!, o.model!) as Partial<Record<Family, Record<string, unknown>>>,
      out,
      json: o.json!,
      ...(o.format ? { format: formatFlag(o.format) } : {}),
    }, io);
  }
  const model = oneOf(o.model!, ['auto', 'logistic', 'linear', 'gbdt', 'mlp', 'ensemble'] as const, 'model');
  const { parseBudget, CALIBRATE_OPTIONS } = await import('../automl/index.js');
  const budget = o.budget !== undefined ? parseBudget(o.budget) : undefined;
  if (typeof budget === 'string') throw Errors.usage(`--budget "${o.budget}": expected ${budget}`);
  const calibrate = o.calibrate !== undefined ? oneOf(o.calibrate, CALIBRATE_OPTIONS, 'calibrate') : undefined;
  const types: Record<string, ColumnType> = {};
  for (const t of o.type!) {
    const eq = t.lastIndexOf('=');
    const type = t.slice(eq + 1);
    if (eq < 1 || !(COLUMN_TYPES as readonly string[]).includes(type)) throw Errors.usage(`--type "${t}": expected column=type with type one of ${COLUMN_TYPES.join(', ')}`);
    types[t.slice(0, eq)] = type as ColumnType;
  }
  const { manifestKeyFromEnv, nextVersionDir, saveArtifact } = await import('../registry/index.js');
  // Where the model goes is settled before training, so a taken --out is not found out after it.
  // Checked before training, so a bad key does not cost a training run.
  const key = manifestKeyFromEnv(process.env);
  const out = o.out ?? nextVersionDir('models', basename(file, extname(file)).replace(/[^A-Za-z0-9_.-]/g, '_') || 'model');
  if (existsSync(out) && readdirSync(out).length > 0) throw Errors.usage(`${out} already exists and is not empty; choose another --out`);
  const { readTable } = await import('../data/index.js');
  const { trainTable } = await import('../automl/index.js');
  const { buildManifest } = await import('../jobs/index.js');
  // FHIR resources become a table first (in a temporary folder, removed after training).
  const fhir = o.features !== undefined ? await (await import('./fhir.js')).fhirTrainingTable(file, o.features, { deidentify: !o['no-deidentify'] }, io) : undefined;
  // --deidentify: the table trained on (and hashed into the manifest) is the de-identified copy.
  const deid = o.deidentify ? await (await import('./privacy.js')).deidentifiedTable(file, o.format ? formatFlag(o.format) : undefined, io) : undefined;
  try {
    // The SHA-256 in the manifest is of the bytes this run read and trained on.
    const tbl = await readTable(fhir?.path ?? deid?.path ?? file, { hash: true, ...(fhir || deid ? { source: basename(file) } : {}), ...(o.format && !deid ? { format: formatFlag(o.format) } : {}) });
    fhir?.check(tbl.columns);
    const seed = intFlag(o.seed, 'seed', 0, 0);
    // --target a,b,c: several numeric targets learnt at once (one multi-output regression); a column
    // whose own name has commas is still one target.
    const targets = tbl.columns.includes(o.target) ? [o.target] : o.target.split(',').map((s) => s.trim()).filter(Boolean);
    // A table a feature spec made: its patient column is an identifier, its label never a feature of another target.
    const roles = fhir ? (await import('../fhir/index.js')).trainingRoles(fhir.lineage.features, targets) : undefined;
    const bar = progressBar(io.stderr);
    const result = await trainTable(tbl, {
      target: targets.length === 1 ? targets[0]! : targets,
      task,
      model,
      ...(o.group !== undefined ? { group: o.group } : {}),
      ignore: [...(o.ignore ? o.ignore.split(',').map((s) => s.trim()).filter(Boolean) : []), ...(roles?.ignore ?? [])],
      types: { ...roles?.types, ...types },
      cv: intFlag(o.cv, 'cv', 5, 2),
      seed,
      params: paramFlags(o.param!, model) as Partial<Record<Family, Record<string, unknown>>>,
      clipOutliers: o['clip-outliers']!,
      nested: o.nested!,
      strict: o.strict!,
      ...(budget !== undefined ? { budget } : {}),
      ...(calibrate !== undefined ? { calibrate } : {}),
      onProgress: (p) => bar.update(p.fraction ?? 0, p.stage + (p.epoch !== undefined ? ` epoch ${p.epoch}` : '')),
    });
    bar.done();
    saveArtifact(out, buildManifest(result, { source: basename(file), sha256: tbl.sha256!, seed, fhir: fhir?.lineage }), result.model, result.report, { key });
    if (o.json) {
      io.stdout.write(
        JSON.stringify({
          task: result.task,
          target: result.target.column,
          classes: result.target.classes,
          model: { family: result.model.family, params: result.model.params },
          cv: result.cv,
          ...(result.nested ? { nested: result.nested } : {}),
          leaderboard: result.leaderboard.map((c) => ({
            family: c.family,
            params: c.params,
            metrics: c.metrics,
            ...(c.outputs ? { outputs: c.outputs } : {}),
            seconds: c.seconds,
            ...(c.trial !== undefined ? { trial: c.trial } : {}),
            ...(c.folds !== undefined ? { folds: c.folds } : {}),
            ...(c.searched ? { searched: true } : {}),
          })),
          ...(result.search ? { search: result.search } : {}),
          ...(result.calibration ? { calibration: result.calibration } : {}),
          ...(result.report.importance ? { importance: result.report.importance } : {}),
          rows: result.rows,
          leakage: result.leakage,
          warnings: result.warnings,
          artifact: out,
        }) + '\n',
      );
    } else {
      printWarnings(io, result.warnings);
      io.stdout.write(trainReport(tbl, result, out));
    }
    return 0;
  } finally {
    fhir?.cleanup();
    deid?.cleanup();
  }
}

function trainReport(tbl: Table, r: TrainResult, out: string): string {
  const lines: string[] = [];
  const classes = r.target.classes ? ` (${r.target.classes.join(', ')})` : '';
  const outputs = r.cv.outputs ? Object.keys(r.cv.outputs) : [];
  const several = outputs.length > 1 ? ` with ${outputs.length} outputs` : '';
  lines.push(`${tbl.source}: ${r.rows.used} rows, ${r.schema.columns.filter((c) => c.role === 'feature').length} feature columns, target${outputs.length > 1 ? 's' : ''} "${r.target.column}": ${r.task}${several}${classes}`);
  const cvName = r.cv.repeats ? `${r.cv.repeats} × ${r.cv.folds / r.cv.repeats}-fold repeated` : `${r.cv.folds}-fold`;
  const tried = r.search ? Object.values(r.search.trials).reduce((a, t) => a + t.started, 0) : r.leaderboard.length;
  if (r.search) {
    const each = Object.entries(r.search.trials).map(([f, t]) => `${f} ${t.started} (${t.complete} on every fold)`);
    const why = r.search.ended === 'space' ? ': every family ran all the points it may (see "What auto does at which size" in the README)' : '';
    lines.push('', `Search: ${r.search.seconds.toFixed(0)} s of a ${r.search.budget} s budget${why}; points tried: ${each.join(', ')}${r.nested ? '; nested cross-validation searched again in each outer fold' : ''}`);
  }
  const shown = r.leaderboard.slice(0, LEADERBOARD_SHOWN);
  const calibrated = r.calibration !== undefined && r.calibration.method !== 'none';
  lines.push(
    '',
    `Leaderboard (${cvName} cross-validation, ranked by ${r.selection}${outputs.length > 1 ? `; metrics are the mean over the ${outputs.length} outputs` : ''}${calibrated ? '; before calibration' : ''}${shown.length < tried ? `; the best ${shown.length} of ${tried}, ${r.leaderboard.length} in --json` : ''}):`,
  );
  const cols = r.task === 'regression' ? ['r2', 'rmse', 'mae'] : ['auroc', 'accuracy', 'log_loss'];
  const partial = shown.some((c) => c.folds !== undefined);
  lines.push(
    table(
      ['family', ...cols, 'seconds', ...(r.search ? ['params (where not the defaults)'] : [])],
      shown.map((c) => [
        `${c.family}${r.search && c.trial !== undefined ? `#${c.trial}` : ''}${c.folds !== undefined ? '*' : ''}`,
        // A point stopped early has no spread worth the name: its fold count instead.
        ...cols.map((m) => (c.folds !== undefined ? `${num(c.metrics[m]!.mean)} (${c.folds} fold${c.folds === 1 ? '' : 's'})` : `${num(c.metrics[m]!.mean)} ± ${num(c.metrics[m]!.std)}`)),
        c.seconds.toFixed(1),
        ...(r.search ? [paramsShown(c, r.leaderboard)] : []),
      ]),
      r.search ? [0, cols.length + 2] : [0],
    ),
  );
  if (partial) lines.push('* scored on fewer folds than all: successive halving or the budget stopped it, so it was not a candidate');
  lines.push('', `Chosen: ${chosenLine(r)}`, '');
  lines.push(table(['metric', 'mean', 'std'], Object.entries(r.cv.metrics).map(([m, s]) => [m, num(s.mean), num(s.std)])));
  if (r.cv.outputs && outputs.length > 1) {
    lines.push('', 'Per output (mean ± std over folds):');
    lines.push(table(['output', ...cols], Object.entries(r.cv.outputs).map(([name, ms]) => [name, ...cols.map((m) => `${num(ms[m]!.mean)} ± ${num(ms[m]!.std)}`)])));
  }
  const cal = r.calibration;
  if (cal) {
    const loss = (c: (typeof cal.candidates)[number]) => (c.log_loss !== undefined ? num(c.log_loss) : 'could not be fitted');
    const methods = cal.candidates.filter((c) => c.method !== 'none').map((c) => `${c.method} ${loss(c)}`).join(', ');
    const raw = cal.candidates.find((c) => c.method === 'none');
    const worse = cal.method !== 'none' && cal.after.log_loss > cal.before.log_loss ? ': calibrating raised the log loss a little (--calibrate none keeps the raw probabilities)' : '';
    lines.push('', `Calibration: ${cal.method}${cal.asked === 'auto' ? ` (the lower cross-fitted log loss: ${methods}; uncalibrated ${raw ? loss(raw) : '–'}, for comparison${worse})` : ''}`);
    lines.push(
      table(
        ['', 'slope', 'intercept', 'brier', 'log_loss'],
        (['before', 'after'] as const).map((k) => [k, num(cal[k].calibration_slope), num(cal[k].calibration_intercept), num(cal[k].brier), num(cal[k].log_loss)]),
      ),
      // Two slopes would otherwise disagree on one screen with nothing to tell them apart.
      '(pooled over every out-of-fold row; the metrics above are means ± std over folds)',
    );
  }
  if (r.nested) {
    const m = r.nested.metrics[r.selection]!;
    lines.push(
      '',
      `Nested ${r.nested.folds}-fold estimate of the whole choice: ${r.selection} ${num(m.mean)} ± ${num(m.std)} (chosen per outer fold: ${r.nested.chosen.join(', ')})`,
    );
  }
  if ('aurocCi' in r.report) {
    const rep = r.report;
    lines.push('', `Pooled out-of-fold AUROC ${num(rep.metrics.auroc)}, 95% CI ${num(rep.aurocCi.lower)}–${num(rep.aurocCi.upper)} (DeLong)`);
    const labels = r.target.classes!;
    lines.push(`Confusion matrix (rows true, columns predicted${rep.threshold !== null ? `, threshold ${rep.threshold}` : ''}):`);
    lines.push(table(['', ...labels], rep.confusion.map((row, i) => [labels[i]!, ...row.map(String)])));
  }
  const imp = r.report.importance;
  if (imp && imp.features.length > 0) {
    // The top of the list: the full list is in --json and the version's evaluation.json.
    const top = imp.features.slice(0, IMPORTANCE_SHOWN);
    lines.push('', `Permutation importance (drop of out-of-fold ${imp.metric} when the column is shuffled, mean ± std over folds × ${imp.repeats}; top ${top.length} of ${imp.features.length}):`);
    lines.push(table(['column', 'drop', 'std'], top.map((f) => [f.feature, num(f.drop), num(f.std)])));
  }
  const leak = r.leakage;
  if (leak.findings.length > 0) {
    // The warnings above say it in words; this is the evidence at a glance.
    const evidence = (e: Record<string, number | string>) =>
      Object.entries(e)
        .filter(([k, v]) => typeof v === 'number' && !k.includes('threshold') && k !== 'folds' && k !== 'rows')
        .map(([k, v]) => `${k} ${num(v as number)}`)
        .join(', ');
    lines.push('', `Leakage check (${leak.findings.length} finding${leak.findings.length === 1 ? '' : 's'}; --strict refuses those found before training):`);
    lines.push(table(['column', 'flag', 'evidence'], leak.findings.map((f) => [f.column, f.kind, evidence(f.evidence)])));
    const rs = leak.rescore;
    if (rs) {
      lines.push(`Without ${rs.columns.join(', ')}: ${rs.metric} ${num(rs.without)} on the same folds (with: ${num(rs.with)})${rs.likelyLeak ? ': the score above is likely a leak' : ''}`);
    }
  }
  lines.push('', `Saved ${out}`, '');
  return lines.join('\n');
}

/** The chosen model in one line: a family's point (its trial number with a search) or an ensemble's members and weights. */
function chosenLine(r: TrainResult): string {
  const round = (v: unknown): unknown => (typeof v === 'number' ? Number(v.toPrecision(3)) : Array.isArray(v) ? v.map(round) : v);
  if (r.model.family === 'ensemble') {
    const row = r.leaderboard.find((c) => c.family === 'ensemble');
    const members = String(row?.params['members'] ?? r.model.params['members']).split(',');
    const weights = (row?.params['weights'] ?? r.model.params['weights']) as number[];
    return `ensemble of ${members.map((m, i) => `${m} × ${(weights[i] ?? 0).toFixed(2)}`).join(' + ')}`;
  }
  const row = r.leaderboard.find((c) => c.family === r.model.family && c.folds === undefined);
  const id = r.search && row?.trial !== undefined ? `#${row.trial}` : '';
  return `${r.model.family}${id} ${JSON.stringify(Object.fromEntries(Object.entries(r.model.params).map(([k, v]) => [k, round(v)])))}`;
}

/** Leaderboard rows `medfit train` prints (a search's full list is in --json and the job record). */
const LEADERBOARD_SHOWN = 15;

/**
 * A leaderboard row's parameters in one short line: a searched point's values that differ from
 * its family's defaults (numbers to 3 significant digits), `defaults` for the defaults' row.
 */
function paramsShown(c: TrainResult['leaderboard'][number], board: TrainResult['leaderboard']): string {
  if (c.family !== 'ensemble' && !c.searched) return 'defaults';
  const base = board.find((d) => d.family === c.family && !d.searched)?.params ?? {};
  const show = (v: unknown): string =>
    typeof v === 'number' ? String(Number(v.toPrecision(3))) : Array.isArray(v) ? v.map(show).join(',') : String(v);
  return Object.entries(c.params)
    .filter(([k, v]) => show(v) !== show(base[k]))
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');
}

/** Columns of permutation importance that `medfit train` prints. */
const IMPORTANCE_SHOWN = 5;

async function predict(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(
    argv,
    {
      json: { type: 'boolean', default: false },
      format: { type: 'string' },
      'impute-absent': { type: 'boolean', default: false },
      fhir: { type: 'boolean', default: false },
      index: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      'subject-from': { type: 'string' },
    },
    'predict',
  );
  if (o.help) {
    io.stdout.write(PREDICT_HELP);
    return 0;
  }
  if (positionals.length !== 2) throw Errors.usage('predict: expected <model-dir> and <file|-> (see medfit predict --help)');
  const [dir, file] = positionals as [string, string];
  const { loadArtifact, manifestKeyFromEnv, predictTable } = await import('../registry/index.js');
  const { absentFeatures, readTable, readTableFromStream, unreadableFeatures } = await import('../data/index.js');
  const artifact = loadArtifact(dir, { key: manifestKeyFromEnv(process.env) });
  const format = o.format ? formatFlag(o.format) : undefined;
  if (artifact.manifest.sequence !== undefined) {
    if (file === '-') throw Errors.usage('predict: a sequence model reads a file or a folder of FIT files, not stdin');
    const { predictSequenceCli } = await import('./sequence.js');
    return predictSequenceCli(dir, file, o, o.json!, io, format);
  }
  if (file !== '-' && artifact.manifest.fhir !== undefined && (await import('./fhir.js')).looksLikeFhir(file)) {
    const { predictFhirCli } = await import('./fhir.js');
    return predictFhirCli(artifact, dir, file, { json: o.json!, fhir: o.fhir!, index: o.index }, io);
  }
  if (o.fhir || o.index !== undefined) throw Errors.usage('--fhir and --index are for a model trained from FHIR (--features) predicting FHIR resources');
  const tbl = file === '-' ? await readTableFromStream(io.stdin as NodeJS.ReadableStream & Readable, '<stdin>', format) : await readTable(file, format ? { format } : {});
  const pipeline = artifact.manifest.pipeline!;
  const absent = absentFeatures(pipeline, tbl);
  const unreadable = unreadableFeatures(pipeline, tbl);
  if ((absent.length > 0 || unreadable.length > 0) && !o['impute-absent']) {
    const names = (cols: string[]) => cols.map((c) => `"${c}"`).join(', ');
    if (absent.length === pipeline.steps.length) throw Errors.badData(tbl.source, `has none of the model's feature column(s) ${names(absent)}; is it the right file?`);
    const what = [
      ...(absent.length ? [`lacks the model's feature column(s) ${names(absent)}`] : []),
      ...(unreadable.length ? [`has no readable value in column(s) ${names(unreadable)} (decimal commas? another date format?)`] : []),
    ];
    throw Errors.badData(tbl.source, `${what.join(', and ')}; fix the file, or pass --impute-absent to impute them as in training`);
  }
  const { predictions, warnings } = predictTable(artifact, tbl);
  if (o.json) {
    const m = artifact.manifest;
    io.stdout.write(JSON.stringify({ model: { dir, family: m.model.family, task: m.task, target: m.target.column }, predictions, warnings }) + '\n');
    return 0;
  }
  printWarnings(io, warnings);
  for (const p of predictions) {
    io.stdout.write(
      'value' in p
        ? `${p.value}\n`
        : 'values' in p
          ? `${Object.entries(p.values).map(([k, v]) => `${k}=${v}`).join('\t')}\n`
          : `${p.label}\t${Object.entries(p.probabilities).map(([c, v]) => `${c}=${v.toFixed(4)}`).join('\t')}\n`,
    );
  }
  return 0;
}

async function profile(argv: string[], io: Io): Promise<number> {
  const { values: o, positionals } = parse(
    argv,
    {
      target: { type: 'string' },
      format: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      ...SEQUENCE_FLAGS,
    },
    'profile',
  );
  if (o.help) {
    io.stdout.write(PROFILE_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw Errors.usage('profile: expected one data file (see medfit profile --help)');
  if (isSequenceInput(positionals[0]!, o)) {
    const { profileSequenceCli } = await import('./sequence.js');
    return profileSequenceCli(positionals[0]!, o, o.json!, io, o.format ? formatFlag(o.format) : undefined);
  }
  const { profileFile } = await import('../data/index.js');
  const p = await profileFile(positionals[0]!, {
    ...(o.target !== undefined ? { target: o.target } : {}),
    ...(o.format ? { format: formatFlag(o.format) } : {}),
  });
  if (o.json) {
    io.stdout.write(JSON.stringify(p) + '\n');
    return 0;
  }
  printWarnings(io, p.warnings ?? []);
  // "~" marks the figures that are estimates (see `approximate` in --json, and --help).
  const dup = `${p.approximate.duplicateRows ? '~' : ''}${p.duplicateRows}`;
  io.stdout.write(`${positionals[0]}: ${p.rows} rows, ${p.columns.length} columns, ${dup} duplicate row(s)\n\n`);
  const q = p.approximate.quantiles ? '~' : '';
  const when = (c: (typeof p.columns)[number], v: number | undefined) => (c.type === 'datetime' ? isoDate(v) : num(v));
  io.stdout.write(
    table(
      ['column', 'type', 'missing%', 'distinct', 'min', 'median', 'max', 'mean', 'std', 'outliers', 'top'],
      p.columns.map((c) => [
        c.name,
        c.type,
        (c.missingPct ?? 0).toFixed(1),
        `${c.distinctApprox ? '~' : ''}${c.distinct}`,
        when(c, c.min),
        c.median === undefined ? '-' : `${q}${num(c.median)}`,
        when(c, c.max),
        num(c.mean),
        num(c.std),
        c.outliers === undefined || c.outliers === null ? '-' : `${q}${c.outliers}`,
        (c.top ?? []).slice(0, 3).map((t) => `${t.value} (${t.count})`).join(', '),
      ]),
    ) + '\n',
  );
  if (p.target?.balance) {
    const balance = Object.entries(p.target.balance).map(([label, n]) => `${label} ${n} (${((100 * n) / p.rows).toFixed(1)}%)`);
    io.stdout.write(`\nTarget "${p.target.column}": ${balance.join(', ')}\n`);
  } else if (p.target?.summary) {
    const t = p.target.summary;
    io.stdout.write(`\nTarget "${p.target.column}": min ${num(t.min)}, median ${num(t.median)}, max ${num(t.max)}, mean ${num(t.mean)}, std ${num(t.std)}\n`);
  }
  return 0;
}

async function serve(argv: string[], io: Io, role?: 'worker'): Promise<number> {
  const { values: o } = parse(
    argv,
    {
      role: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      mqtt: { type: 'string' },
      'mqtt-model': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'serve',
  );
  if (o.help) {
    io.stdout.write(SERVE_HELP);
    return 0;
  }
  const { initServer, loadConfig } = await import('../api/index.js');
  const config = loadConfig(process.env, {
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o['data-dir'] !== undefined ? { dataDir: o['data-dir'] } : {}),
    ...(o.mqtt !== undefined ? { mqtt: o.mqtt } : {}),
    ...(o['mqtt-model'] !== undefined ? { mqttModel: o['mqtt-model'] } : {}),
    ...(role !== undefined ? { role } : o.role !== undefined ? { role: o.role } : {}),
  });
  if (role !== undefined && o.role !== undefined && o.role !== role) throw Errors.usage('medfit worker is serve --role worker: leave --role out');
  const server = await initServer(config);
  // stdout carries only the server's JSON log lines (machine-readable); what a person reads at
  // start, the admin key above all, goes to stderr, and never into a log collector's stream.
  if (server.firstAdminKey) {
    io.stderr.write(`Admin key for project "default" (shown once; store it now):\n  ${server.firstAdminKey}\n`);
  }
  // An uncaught exception before the shutdown below is set up is acted on once it is.
  let fatalEarly = false;
  let stop: (why: string, code: 0 | 1) => void = () => void (fatalEarly = true);
  const unguard = guardProcess(server.app.log, () => stop('uncaught exception', 1));
  let address: string;
  try {
    address = await server.app.listen({ host: config.host, port: config.port });
  } catch (e) {
    unguard();
    await server.close();
    const code = (e as { code?: string }).code;
    if (code === 'EADDRINUSE') throw Errors.usage(`port ${config.port} on ${config.host} is already in use (choose another with --port)`);
    if (code === 'EACCES' || code === 'EADDRNOTAVAIL') throw Errors.usage(`cannot listen on ${config.host}:${config.port} (${code})`);
    throw e;
  }
  let bridge: { close(): Promise<void> } | undefined;
  // A worker answers no predictions: the MQTT bridge belongs to the API replicas.
  if (config.mqtt && config.role !== 'worker') {
    const { startServerMqtt } = await import('../api/index.js');
    try {
      bridge = await startServerMqtt(server, config.mqtt);
    } catch (e) {
      unguard();
      await server.close();
      throw e;
    }
  }
  const where = config.database ? `metadata in PostgreSQL schema ${config.database.schema}, files in ${server.services.blobs.url}, cache in ${config.dataDir}` : `data in ${config.dataDir}`;
  io.stderr.write(`medfit ${VERSION} ${config.role === 'all' ? '' : `${config.role} `}listening on ${address} (${where})${config.redis ? ', jobs on Redis' : ''}${config.mqtt ? `, MQTT bridge on ${new URL(config.mqtt.url).host}` : ''}\n`);
  if (config.role !== 'worker') io.stderr.write(`  web app: ${address}/ (sign in with an API key)   API docs: ${address}/docs\n`);
  // Graceful shutdown: stop accepting, drain in-flight requests, requeue running jobs, close stores.
  return new Promise<number>((resolve) => {
    let stopping = false;
    stop = (why, exitCode) => {
      if (stopping) return;
      stopping = true;
      io.stderr.write(`medfit: ${why}, shutting down\n`);
      // After an uncaught exception a shutdown that hangs must not keep the process alive.
      if (exitCode !== 0) setTimeout(() => process.exit(exitCode), 10_000).unref();
      (bridge?.close() ?? Promise.resolve()).then(() => server.close()).then(
        () => {
          unguard();
          resolve(exitCode);
        },
        (e: unknown) => {
          io.stderr.write(`medfit: shutdown failed: ${e instanceof Error ? e.message : String(e)}\n`);
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT', 0));
    process.once('SIGTERM', () => stop('SIGTERM', 0));
    if (fatalEarly) stop('uncaught exception', 1);
  });
}

async function keys(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  const { values: o, positionals } = parse(
    rest,
    {
      project: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      'data-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'keys',
  );
  if (o.help || sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(KEYS_HELP);
    return sub === undefined ? 2 : 0;
  }
  const { createKey, loadConfig, parseScopes } = await import('../api/index.js');
  const { openPostgresStore, openSqliteStore } = await import('../store/index.js');
  const config = loadConfig(process.env, o['data-dir'] !== undefined ? { dataDir: o['data-dir'] } : {});
  mkdirSync(config.dataDir, { recursive: true });
  // A short-lived command has no event loop to keep free: it may wait, blocking, for a server's lock.
  // The server's own store: PostgreSQL when MEDFIT_DATABASE_URL names one (a cluster), else the data directory's SQLite.
  const db = config.database;
  const store = db ? await openPostgresStore(db.url, { schema: db.schema, poolMax: 2, applicationName: 'medfit-keys' }) : openSqliteStore(join(config.dataDir, 'medfit.db'), { busyTimeoutMs: 5000 });
  try {
    const projects = new Map((await store.listProjects()).map((p) => [p.id, p.name]));
    switch (sub) {
      case 'create': {
        if (!o.project || !o.scopes) throw Errors.usage('keys create: --project <name> and --scopes <list> are required');
        const { key, record } = await createKey(store, o.project, parseScopes(o.scopes), o.name ?? 'cli');
        if (o.json) io.stdout.write(JSON.stringify({ id: record.id, project: o.project, scopes: record.scopes, key }) + '\n');
        else io.stdout.write(`Key ${record.id} for project "${o.project}" (${record.scopes.join(', ')}); shown once:\n  ${key}\n`);
        return 0;
      }
      case 'list': {
        let list = await store.listKeys();
        if (o.project) list = list.filter((k) => projects.get(k.projectId) === o.project);
        const rows = list.map((k) => ({ id: k.id, project: projects.get(k.projectId) ?? k.projectId, name: k.name, scopes: k.scopes, created: k.created, revoked: k.revoked }));
        if (o.json) io.stdout.write(JSON.stringify({ keys: rows }) + '\n');
        else io.stdout.write(table(['id', 'project', 'name', 'scopes', 'created', 'revoked'], rows.map((r) => [r.id, r.project, r.name, r.scopes.join(','), r.created, r.revoked ?? ''])) + '\n');
        return 0;
      }
      case 'revoke': {
        if (positionals.length !== 1) throw Errors.usage('keys revoke: expected one key id (see medfit keys list)');
        if (!(await store.revokeKey(positionals[0]!))) throw Errors.notFound(`active key "${positionals[0]}"`);
        io.stdout.write(o.json ? JSON.stringify({ revoked: positionals[0] }) + '\n' : `Revoked ${positionals[0]}\n`);
        return 0;
      }
      default:
        throw Errors.usage(`keys: unknown command "${sub}" (create, list, revoke)`);
    }
  } finally {
    await store.close();
  }
}

/** An ISO date (and time, when it has one) from ms since the epoch. */
function isoDate(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  const iso = new Date(ms).toISOString();
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso.replace('.000Z', 'Z');
}


function formatFlag(v: string): TableFormat {
  return oneOf(v, ['csv', 'json', 'ndjson'] as const, 'format');
}

