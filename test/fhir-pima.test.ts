/**
 * The FHIR rendering of pima_diabetes.csv (test/fixtures/fhir/pima, made by scripts/pima-fhir.ts)
 * imported with `medfit fhir import` (de-identification on, a fixed key) gives back the CSV's
 * table: per row the same age, the same seven measurements (glucose converted from mmol/L and g/L
 * to mg/dL; the decoy readings outside the window or after the index date ignored) and the same
 * label; and a model trained from it reaches the same cross-validated AUROC as one trained from
 * the CSV (within 0.005), for logistic regression and for gradient boosting.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Deidentifier, deidKey } from '../src/privacy/index.js';
import { fixture, medfitInProcess, ROOT, tempDir, type CliRun } from './helpers.js';

const KEY = 'pima-fhir-test-deidentification-key-0123456789';
const PIMA = fixture('fhir/pima');
const INPUTS = ['Patient', 'Observation', 'Condition'].map((t) => join(PIMA, `${t}.ndjson.gz`));
const FEATURES = ['pregnant', 'glucose', 'pressure', 'triceps', 'insulin', 'mass', 'pedigree'] as const;

/**
 * What this test needs from the FHIR and privacy rooms; when one is missing the test fails at
 * once saying which, rather than skip (issue 9 is built in parallel).
 */
const NEEDED = ['src/fhir/features.ts', 'src/fhir/read.ts', 'src/fhir/view/index.ts', 'src/privacy/index.ts', 'src/cli/fhir.ts'];
const missing = NEEDED.filter((f) => !existsSync(join(ROOT, f)));

/** A CSV as header + rows of cells (the files here quote nothing that holds a comma). */
function csv(text: string): { header: string[]; rows: string[][] } {
  const lines = text.trim().split(/\r?\n/).map((l) => l.split(',').map((c) => c.replace(/^"|"$/g, '')));
  return { header: lines[0]!, rows: lines.slice(1) };
}

const ndjson = (path: string) =>
  gunzipSync(readFileSync(path))
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);

let dir: string;
let imported: CliRun;
let table: { header: string[]; rows: string[][] };
const pima = csv(readFileSync(fixture('pima_diabetes.csv'), 'utf8'));
const savedKey = process.env['MEDFIT_DEID_KEY'];

beforeAll(async () => {
  if (missing.length) throw new Error(`issue 9 parts this test needs are not there yet: ${missing.join(', ')}`);
  dir = tempDir('medfit-fhir-pima-');
  process.env['MEDFIT_DEID_KEY'] = KEY;
  imported = await medfitInProcess(['fhir', 'import', ...INPUTS, '--features', fixture('fhir/pima.features.json'), '--out', join(dir, 'pima-fhir.csv'), '--json']);
  expect(imported.code, imported.stderr).toBe(0);
  table = csv(readFileSync(join(dir, 'pima-fhir.csv'), 'utf8'));
}, 60_000);

afterAll(() => {
  if (savedKey === undefined) delete process.env['MEDFIT_DEID_KEY'];
  else process.env['MEDFIT_DEID_KEY'] = savedKey;
});

describe('the FHIR rendering of pima_diabetes.csv', () => {
  it('is what scripts/pima-fhir.ts writes (the committed files are not stale)', async () => {
    const { pimaFiles } = await import('../scripts/pima-fhir.js');
    for (const [name, bytes] of pimaFiles()) {
      const committed = readFileSync(fixture(`fhir/${name}`));
      if (name.endsWith('.gz')) expect(gunzipSync(committed).equals(gunzipSync(bytes)), name).toBe(true);
      else expect(committed.toString(), name).toBe(bytes.toString());
    }
  });

  it('has a Patient per row with names, contact details and an MRN, and no Observation for a blank cell', () => {
    const patients = ndjson(INPUTS[0]!);
    const observations = ndjson(INPUTS[1]!);
    expect(patients).toHaveLength(768);
    for (const p of patients) {
      expect(p['gender']).toBe('female');
      expect(p['name'][0].family).toBeTruthy();
      expect(p['telecom'].map((t: { system: string }) => t.system)).toEqual(['phone', 'email']);
      expect(p['identifier'][0].type.coding[0].code).toBe('MR');
      expect(p['address'][0].line).toHaveLength(1);
    }
    const blanks = pima.rows.reduce((n, r) => n + r.slice(0, 7).filter((c) => c === '').length, 0);
    // One per non-blank cell, plus the decoys (an old glucose every 5th row, a later BMI every 7th, where present).
    const decoys = pima.rows.filter((r, i) => i % 5 === 0 && r[1] !== '').length + pima.rows.filter((r, i) => i % 7 === 0 && r[5] !== '').length;
    expect(observations).toHaveLength(768 * 7 - blanks + decoys);
    const units = new Set(observations.filter((o) => o['code'].coding[0].code === '2345-7').map((o) => o['valueQuantity'].code));
    expect([...units].sort()).toEqual(['g/L', 'mg/dL', 'mmol/L']);
  });
});

describe('medfit fhir import of it (de-identified)', () => {
  it('writes one row per Patient, in their order, with the CSV columns and a pseudonymous patient column', () => {
    const summary = JSON.parse(imported.stdout) as { rows: number; columns: string[]; resources: number; deidentified: boolean };
    expect(summary.rows).toBe(768);
    expect(summary.deidentified).toBe(true);
    expect(table.header).toEqual(['patient', 'age', ...FEATURES, 'diabetes']);
    expect(table.rows).toHaveLength(768);
    const ids = ndjson(INPUTS[0]!).map((p) => p['id'] as string);
    const patients = table.rows.map((r) => r[0]!);
    expect(new Set(patients).size).toBe(768);
    // Row i is Patient i: its keyed pseudonym (so the cell-by-cell comparison below compares the same woman).
    const d = new Deidentifier({ key: deidKey({ MEDFIT_DEID_KEY: KEY }).key });
    for (let i = 0; i < ids.length; i++) {
      expect(patients[i]).not.toBe(ids[i]);
      expect(patients[i]).toBe(d.pseudonym(ids[i]!));
    }
    expect(imported.stderr).toBe('');
  });

  it('matches the CSV cell by cell: age, measurements (units converted, decoys ignored), label', () => {
    const col = (name: string) => pima.header.indexOf(name);
    let converted = 0;
    for (let i = 0; i < 768; i++) {
      const want = pima.rows[i]!;
      const got = table.rows[i]!;
      expect(Number(got[1]), `row ${i + 1} age`).toBe(Number(want[col('age')]));
      FEATURES.forEach((f, j) => {
        const w = want[col(f)]!;
        const g = got[2 + j]!;
        if (w === '') expect(g, `row ${i + 1} ${f}`).toBe('');
        else {
          expect(g, `row ${i + 1} ${f}`).not.toBe('');
          expect(Math.abs(Number(g) - Number(w)), `row ${i + 1} ${f}: ${g} vs ${w}`).toBeLessThan(1e-9);
          if (f === 'glucose' && i % 2 === 1) converted++;
        }
      });
      expect(got[9], `row ${i + 1} label`).toBe(want[col('diabetes')] === 'pos' ? '1' : '0');
    }
    expect(converted).toBeGreaterThan(350);
  });
});

describe('a model trained from the FHIR import and one trained from the CSV', () => {
  /** `medfit train --json` on a file; the chosen family's CV AUROC (mean over folds). */
  async function cvAuroc(file: string, model: string): Promise<number> {
    const r = await medfitInProcess(['train', file, '--target', 'diabetes', '--model', model, '--cv', '5', '--seed', '0', '--out', join(dir, `${model}-${file.endsWith('pima-fhir.csv') ? 'fhir' : 'csv'}`), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { cv: { metrics: Record<string, { mean: number }> }; rows: { used: number } };
    expect(out.rows.used).toBe(768);
    return out.cv.metrics['auroc']!.mean;
  }

  it('logistic: the same CV AUROC within 0.005', async () => {
    const fromFhir = await cvAuroc(join(dir, 'pima-fhir.csv'), 'logistic');
    const fromCsv = await cvAuroc(fixture('pima_diabetes.csv'), 'logistic');
    expect(fromCsv).toBeGreaterThan(0.8);
    expect(Math.abs(fromFhir - fromCsv)).toBeLessThan(0.005);
  }, 60_000);

  it('gbdt: the same CV AUROC within 0.005', async () => {
    const fromFhir = await cvAuroc(join(dir, 'pima-fhir.csv'), 'gbdt');
    const fromCsv = await cvAuroc(fixture('pima_diabetes.csv'), 'gbdt');
    expect(fromCsv).toBeGreaterThan(0.75);
    expect(Math.abs(fromFhir - fromCsv)).toBeLessThan(0.005);
  }, 60_000);
});
