/**
 * The `medfit` command as a user runs it: real process, real files, exit codes, stdout/stderr
 * separation, and one-line errors that name the file, line or column without a stack trace.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixture, medfit, tempDir } from './helpers.js';

const dir = tempDir();
const write = (name: string, content: string | Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

/** A small table with an id column, a categorical, stray text in a numeric column and a group. */
function clinic(rows = 120): string {
  const lines = ['patient_id,visit,age,sex,sbp,smoker,outcome'];
  for (let i = 0; i < rows; i++) {
    const age = 30 + ((i * 37) % 50);
    const sbp = i === 7 ? 'unknown' : String(110 + ((i * 53) % 60));
    const risk = (age - 55) / 10 + (Number(sbp === 'unknown' ? 140 : sbp) - 140) / 20 + (i % 3 === 0 ? 1 : 0);
    lines.push(`P${String(Math.floor(i / 2)).padStart(4, '0')},${i % 2},${age},${i % 2 ? 'F' : 'M'},${sbp},${i % 3 === 0 ? 'yes' : 'no'},${risk > 0 ? 'yes' : 'no'}`);
  }
  return lines.join('\n') + '\n';
}

/** Asserts a run failed as a user error: exit 2, one line on stderr, no stack, nothing on stdout. */
function expectUserError(run: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stdout).toBe('');
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^medfit: /);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

describe('medfit train, profile and predict on a clinical table', () => {
  const csv = write('clinic.csv', clinic());
  const out = join(dir, 'clinic-model');
  let trained: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    trained = await medfit(['train', csv, '--target', 'outcome', '--group', 'patient_id', '--ignore', 'visit', '--cv', '3', '--json', '--out', out]);
  }, 120_000);

  it('trains with --json: one document on stdout, warnings inside it', () => {
    expect(trained.stderr).toBe('');
    expect(trained.code).toBe(0);
    const doc = JSON.parse(trained.stdout) as { task: string; classes: string[]; model: { family: string }; cv: { folds: number }; warnings: Array<{ code: string; column?: string; message: string }>; artifact: string };
    expect(doc.task).toBe('binary');
    expect(doc.classes).toEqual(['no', 'yes']);
    expect(doc.cv.folds).toBe(3);
    expect(doc.artifact).toBe(out);
    const nonNumeric = doc.warnings.find((w) => w.column === 'sbp');
    expect(nonNumeric?.message).toMatch(/1 non-numeric value/);
    expect(JSON.stringify(doc.warnings)).not.toContain('unknown');
  });

  it('records the schema with the group column left out of the features', () => {
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { schema: { columns: Array<{ name: string; role: string }> }; pipeline: { features: string[] } };
    const roles = Object.fromEntries(m.schema.columns.map((c) => [c.name, c.role]));
    expect(roles).toMatchObject({ patient_id: 'ignored', visit: 'ignored', age: 'feature', outcome: 'target' });
    expect(m.pipeline.features).not.toContain('patient_id');
  });

  it('predicts every row of a file, and from stdin as JSON', async () => {
    const text = await medfit(['predict', out, csv]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(120);
    expect(lines[0]).toMatch(/^(yes|no)\tno=[01]\.\d{4}\tyes=[01]\.\d{4}$/);
    const json = await medfit(['predict', out, '-', '--json'], { stdin: 'age,sex,sbp,smoker\n70,F,170,yes\n31,M,,no\n' });
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { predictions: Array<{ label: string; probabilities: Record<string, number> }> };
    expect(doc.predictions).toHaveLength(2);
    expect(doc.predictions[0]!.label).toBe('yes');
    expect(doc.predictions[1]!.label).toBe('no');
    const p = doc.predictions[0]!.probabilities;
    expect(p['yes']! + p['no']!).toBeCloseTo(1, 12);
  });

  it('refuses a file without the model\'s columns (exit 2, naming them) unless told to impute them', async () => {
    const none = write('wrong.csv', 'weight,height\n70,170\n80,180\n');
    const run = await medfit(['predict', out, none]);
    expectUserError(run, /wrong\.csv: has none of the model's feature column\(s\) "age", "sex", "sbp", "smoker"; is it the right file\?/);
    const some = write('partial.csv', 'age,sex\n70,F\n31,M\n');
    expectUserError(await medfit(['predict', out, some]), /partial\.csv: lacks the model's feature column\(s\) "sbp", "smoker"; fix the file, or pass --impute-absent/);
    // A European export: the columns are there, their values unreadable.
    const commas = write('commas.csv', 'age;sex;sbp;smoker\n70;F;"170,5";yes\n31;M;"120,0";no\n');
    expectUserError(await medfit(['predict', out, commas]), /commas\.csv: has no readable value in column\(s\) "sbp" \(decimal commas\? another date format\?\); fix the file/);
    const imputed = await medfit(['predict', out, some, '--impute-absent', '--json']);
    expect(imputed.code).toBe(0);
    const doc = JSON.parse(imputed.stdout) as { predictions: unknown[]; warnings: Array<{ code: string }> };
    expect(doc.predictions).toHaveLength(2);
    expect(doc.warnings.map((w) => w.code)).toContain('missing_column');
  });

  it('prints a leaderboard and metrics without --json', async () => {
    const run = await medfit(['train', csv, '--target', 'outcome', '--cv', '3', '--model', 'logistic', '--out', join(dir, 'text-model')]);
    expect(run.code).toBe(0);
    // Scores before calibration (the default calibrates; the metrics below are the calibrated model's).
    expect(run.stdout).toMatch(/Leaderboard \(3-fold cross-validation, ranked by auroc(; before calibration)?\)/);
    expect(run.stdout).toMatch(/Calibration: (platt|isotonic) \(the lower cross-fitted log loss/);
    expect(run.stdout).toMatch(/Chosen: logistic/);
    expect(run.stdout).toMatch(/Confusion matrix/);
    expect(run.stderr).toMatch(/warning: .*patient_id/);
  }, 60_000);

  it('profiles with --json', async () => {
    const run = await medfit(['profile', csv, '--target', 'outcome', '--json']);
    expect(run.code).toBe(0);
    const p = JSON.parse(run.stdout) as { rows: number; columns: Array<{ name: string; type: string }> };
    expect(p.rows).toBe(120);
    expect(p.columns.find((c) => c.name === 'patient_id')!.type).toBe('identifier');
  });
});

describe('bad input: exit 2 and one line naming file, line or column', () => {
  const good = fixture('pima_diabetes.csv');

  it('a missing target column', async () => {
    expectUserError(await medfit(['train', good, '--target', 'outcome']), /pima_diabetes\.csv: no column "outcome" \(columns: pregnant, glucose/);
  });

  it('a bad MEDFIT_TRAIN_THREADS, named before the data is read', async () => {
    expectUserError(await medfit(['train', good, '--target', 'outcome'], { env: { MEDFIT_TRAIN_THREADS: 'two' } }), /MEDFIT_TRAIN_THREADS must be an integer from 1 to 64 \(got "two"\)/);
  });

  it('a constant target', async () => {
    const f = write('constant.csv', 'a,b,y\n1,2,x\n3,4,x\n5,6,x\n');
    expectUserError(await medfit(['train', f, '--target', 'y']), /constant\.csv, target column "y": has a single value/);
  });

  it('an empty file and a header-only file', async () => {
    expectUserError(await medfit(['train', write('empty.csv', ''), '--target', 'y']), /empty\.csv: .*empty/);
    expectUserError(await medfit(['train', write('header.csv', 'a,b,y\n'), '--target', 'y']), /header\.csv: .*no data rows/);
  });

  it('a binary file', async () => {
    const bin = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x00, 0xff, 0xfe]);
    expectUserError(await medfit(['train', write('archive.csv', bin), '--target', 'y']), /archive\.csv: not a text table/);
  });

  it('a ragged row, with its line', async () => {
    const f = write('ragged.csv', 'a,b,y\n1,2,x\n3,4,y\n5,6\n');
    expectUserError(await medfit(['train', f, '--target', 'y']), /ragged\.csv:4: row has 2 fields, header has 3/);
  });

  it('a file that does not exist', async () => {
    expectUserError(await medfit(['profile', join(dir, 'nope.csv')]), /nope\.csv/);
  });

  it('a table whose only column is a row number', async () => {
    const f = write('row-number.csv', 'n,y\n' + Array.from({ length: 30 }, (_, i) => `${i},${i % 2 ? 'a' : 'b'}`).join('\n') + '\n');
    expectUserError(await medfit(['train', f, '--target', 'y']), /row-number\.csv: no usable feature columns: left out "n" \(.*\); override with --type column=numeric/);
  });

  it('an all-missing column, until it is left out', async () => {
    const f = write('empty-col.csv', 'a,notes,y\n' + Array.from({ length: 40 }, (_, i) => `${(i * 7) % 13},NA,${i % 2 ? 'yes' : 'no'}`).join('\n') + '\n');
    expectUserError(await medfit(['train', f, '--target', 'y']), /empty-col\.csv, column "notes": every value is missing; leave it out with --ignore notes/);
    const ok = await medfit(['train', f, '--target', 'y', '--ignore', 'notes', '--model', 'logistic', '--out', join(dir, 'empty-col-model')]);
    expect(ok.code).toBe(0);
  }, 60_000);

  it('text in a numeric column: counted, treated as missing, warned', async () => {
    const f = write('stray.csv', 'a,b,y\n' + Array.from({ length: 60 }, (_, i) => `${i === 5 ? 'high' : (i * 7) % 13},${(i * 3) % 11},${i % 2 ? 'yes' : 'no'}`).join('\n') + '\n');
    const run = await medfit(['train', f, '--target', 'y', '--model', 'logistic', '--out', join(dir, 'stray-model')]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: .*column "a": 1 non-numeric value/);
    expect(run.stderr).not.toContain('high');
  }, 60_000);

  it('a class too small for the folds', async () => {
    const f = write('tiny-class.csv', 'a,y\n' + Array.from({ length: 30 }, (_, i) => `${(i * 7) % 13},${i < 2 ? 'zyx-label' : 'common'}`).join('\n') + '\n');
    const run = await medfit(['train', f, '--target', 'y']);
    expectUserError(run, /target column "y": its rarest class has 2 row\(s\), fewer than the 5 folds of --cv/);
    // A class label is a value of the target column: it is counted, never quoted.
    expect(run.stderr).not.toContain('zyx-label');
  });

  it('bad usage: unknown flag, bad --cv, bad parameter, unknown model', async () => {
    expectUserError(await medfit(['train', good, '--target', 'diabetes', '--folds', '3']), /train: .*--folds/);
    expectUserError(await medfit(['train', good, '--target', 'diabetes', '--cv', '1']), /--cv must be an integer of at least 2/);
    expectUserError(await medfit(['train', good, '--target', 'diabetes', '--param', 'gbdt.trees=-1']), /gbdt\.trees/);
    expectUserError(await medfit(['train', good, '--target', 'diabetes', '--model', 'forest']), /--model must be one of auto, logistic, linear, gbdt, mlp/);
    expectUserError(await medfit(['train', good]), /--target <column> is required/);
    expectUserError(await medfit(['frobnicate']), /unknown command "frobnicate"/);
  });

  it('a model directory that is not one', async () => {
    expectUserError(await medfit(['predict', dir, good]), /no manifest\.json: not a medfit model directory/);
  });

  it('--json errors still print one JSON document', async () => {
    const run = await medfit(['train', good, '--target', 'outcome', '--json']);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: { code: 'MEDFIT_ERR_BAD_DATA' } });
  });
});

describe('help and version', () => {
  it('prints usage and the version', async () => {
    const help = await medfit(['help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/medfit train <file> --target <col>/);
    const version = await medfit(['--version']);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('awkward but valid input', () => {
  it('trains on columns named like JavaScript object properties', async () => {
    const f = write('proto.csv', 'constructor,toString,__proto__,y\n' + Array.from({ length: 60 }, (_, i) => `${(i * 7) % 13},${(i * 5) % 11},${i % 3},${i % 2 ? 'yes' : 'no'}`).join('\n') + '\n');
    const run = await medfit(['train', f, '--target', 'y', '--model', 'logistic', '--cv', '3', '--json', '--out', join(dir, 'proto-model')]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const pred = await medfit(['predict', join(dir, 'proto-model'), f, '--json']);
    expect(pred.code).toBe(0);
    expect((JSON.parse(pred.stdout) as { predictions: unknown[] }).predictions).toHaveLength(60);
  }, 60_000);

  it('keeps classes named like JavaScript object properties in profiles and probabilities', async () => {
    const f = write('proto-classes.csv', 'a,b,y\n' + Array.from({ length: 60 }, (_, i) => `${(i * 7) % 13},${(i * 5) % 11},${i % 2 ? '__proto__' : 'constructor'}`).join('\n') + '\n');
    const prof = await medfit(['profile', f, '--target', 'y', '--json']);
    const balance = (JSON.parse(prof.stdout) as { target: { balance: Record<string, number> } }).target.balance;
    expect(Object.entries(balance).sort()).toEqual([['__proto__', 30], ['constructor', 30]]);
    const run = await medfit(['train', f, '--target', 'y', '--model', 'logistic', '--cv', '3', '--out', join(dir, 'proto-classes')]);
    expect(run.code).toBe(0);
    const pred = await medfit(['predict', join(dir, 'proto-classes'), f, '--json']);
    const p = (JSON.parse(pred.stdout) as { predictions: Array<{ probabilities: Record<string, number> }> }).predictions[0]!.probabilities;
    expect(Object.keys(p).sort()).toEqual(['__proto__', 'constructor']);
    expect(p['__proto__']! + p['constructor']!).toBeCloseTo(1, 6);
  }, 60_000);

  it('refuses a taken --out before training', async () => {
    const f = write('taken.csv', 'a,y\n' + Array.from({ length: 40 }, (_, i) => `${(i * 7) % 13},${i % 2 ? 'yes' : 'no'}`).join('\n') + '\n');
    writeFileSync(join(dir, 'taken-out'), '');
    const run = await medfit(['train', f, '--target', 'y', '--out', dir]);
    expectUserError(run, /already exists and is not empty; choose another --out/);
    expect(run.seconds).toBeLessThan(10);
  });
});
