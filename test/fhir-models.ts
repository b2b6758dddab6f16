/**
 * Models trained "from FHIR" for the FHIR-out tests (RiskAssessment predictions, CDS Hooks), made
 * quickly: a feature spec for the Synthea fixtures, a logistic model trained on synthetic rows of
 * the spec's feature columns (so the model is known and fast), saved with the spec in its
 * manifest and registered in a running server's store, as a training job would.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { hashKey, type Server } from '../src/api/index.js';
import { trainTable } from '../src/automl/index.js';
import type { Cell } from '../src/core/index.js';
import { tableFromRows } from '../src/data/index.js';
import { featureColumns, parseFeatureSpec, type FeatureSpec } from '../src/fhir/index.js';
import { buildManifest } from '../src/jobs/index.js';
import { saveArtifact } from '../src/registry/index.js';
import { fixture } from './helpers.js';

/** The feature spec the test models were "trained" with: the Synthea table, less smoking status. */
export const SPEC: FeatureSpec = parseFeatureSpec(
  {
    index: '2019-01-01',
    observations: [
      { name: 'bmi', code: 'http://loinc.org|39156-5' },
      { name: 'sbp', code: ['http://loinc.org|85354-9', 'http://loinc.org|55284-4'], component: 'http://loinc.org|8480-6' },
      { name: 'hba1c', code: 'http://loinc.org|4548-4', unit: '%' },
      { name: 'chol', code: 'http://loinc.org|2093-3', agg: 'mean', within: '5y' },
    ],
    conditions: [{ name: 'hypertension', codes: ['http://snomed.info/sct|38341003'] }],
    label: { name: 'diabetes', condition: { codes: ['http://snomed.info/sct|44054006'] }, within: '5y' },
  },
  'the test spec',
);

/** A Synthea Bundle of the fixtures, by the start of its file name (`Barrett_Cummings`). */
export function synthea(prefix: string): { resourceType: 'Bundle'; type: string; entry: Array<{ fullUrl?: string; resource: Record<string, any>; request?: unknown }> } {
  const dir = fixture('fhir/synthea');
  const file = readdirSync(dir).find((f) => f.startsWith(prefix));
  if (!file) throw new Error(`no Synthea fixture ${prefix}`);
  return JSON.parse(gunzipSync(readFileSync(join(dir, file))).toString('utf8'));
}

/** The Patient of a Synthea Bundle. */
export function patientOf(b: ReturnType<typeof synthea>): Record<string, any> {
  return b.entry.find((e) => e.resource['resourceType'] === 'Patient')!.resource;
}

/** A small deterministic generator (the rows must be the same on every run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Synthetic rows of the spec's feature columns and a label that depends on them (HbA1c, BMI, age, hypertension). */
export function syntheticRows(n = 300): { columns: string[]; rows: Cell[][] } {
  const rnd = lcg(7);
  const columns = [...featureColumns(SPEC), 'diabetes'];
  const rows: Cell[][] = [];
  for (let i = 0; i < n; i++) {
    const age = Math.round(20 + 65 * rnd());
    const sex = rnd() < 0.5 ? 'male' : 'female';
    const bmi = Math.round((20 + 18 * rnd()) * 10) / 10;
    const sbp = Math.round(100 + 60 * rnd());
    const hba1c = Math.round((4.8 + 4 * rnd()) * 10) / 10;
    const chol = Math.round(140 + 120 * rnd());
    const htn = rnd() < 0.35 ? 1 : 0;
    const z = -5.5 + 1.1 * (hba1c - 4.8) + 0.12 * (bmi - 20) + 0.03 * age + 0.6 * htn + (rnd() - 0.5) * 2.5;
    // Some cells missing, as they are in records (imputed in training and at prediction alike).
    rows.push([age, sex, bmi, rnd() < 0.1 ? null : sbp, rnd() < 0.2 ? null : hba1c, chol, htn, z > 0 ? 1 : 0]);
  }
  return { columns, rows };
}

/** The project of the server's admin key. */
export async function projectOf(server: Server, adminKey: string): Promise<string> {
  const rec = await server.services.store.getKeyByHash(hashKey(adminKey));
  return rec!.projectId;
}

/**
 * Trains and registers a version of `name` in the project: with the spec in its manifest when
 * `fhir` (else a model of the same columns trained from a plain table), a regression when `task`
 * says so. Returns the version number.
 */
export async function registerModel(server: Server, projectId: string, name: string, opts: { fhir: boolean; task?: 'binary' | 'regression' }): Promise<number> {
  const { columns, rows } = syntheticRows();
  const regression = opts.task === 'regression';
  const table = tableFromRows(regression ? columns.filter((c) => c !== 'diabetes').concat('bmi_next') : columns, regression ? rows.map((r) => [...r.slice(0, -1), (r[2] as number) + 1]) : rows, { source: 'synthetic' });
  const target = regression ? 'bmi_next' : 'diabetes';
  const result = await trainTable(table, { target, model: regression ? 'linear' : 'logistic', cv: 2, seed: 1, params: { logistic: { C: 1 }, linear: { alpha: 1 } } });
  const rel = join('models', projectId, `${name}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const manifest = buildManifest(result, { source: 'synthetic', sha256: 'a'.repeat(64), seed: 1, ...(opts.fhir ? { fhir: { features: SPEC, deidentified: true } } : {}) });
  saveArtifact(join(server.services.config.dataDir, rel), manifest, result.model, result.report, { key: server.services.config.manifestKey });
  const rec = await server.services.store.createModelVersion({
    projectId,
    name,
    source: 'trained',
    family: result.model.family,
    task: result.task,
    dir: rel,
    jobId: null,
    datasetId: null,
    datasetSha256: null,
    metrics: { cv: result.cv.metrics },
  });
  server.services.models.invalidate(projectId, name);
  expect(rec.version).toBeGreaterThan(0);
  return rec.version;
}
