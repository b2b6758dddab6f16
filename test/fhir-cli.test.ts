/**
 * `medfit fhir conformance|run|import`, `medfit train --features` and `medfit predict` on FHIR
 * input, as real child processes: the vendored SQL-on-FHIR suite, views over the Synthea Bundles
 * (de-identified by default), imports of the Pima FHIR rendering, RiskAssessment Bundles out, and
 * the bad inputs of the issue (exit 2, one line naming file and place, nothing written).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixture, medfit, tempDir } from './helpers.js';

const dir = tempDir('medfit-fhir-cli-');
const SYNTHEA = fixture('fhir/synthea');
const PIMA = fixture('fhir/pima');
const SPEC = fixture('fhir/pima.features.json');
const KEY = { MEDFIT_DEID_KEY: 'fhir-cli-test-key-0123456789abcdef-XYZ' };
const ABDUL = fixture('fhir/synthea/Abdul_Koepp_e925b0f3-8006-43f6-aa31-94bd215e55e7.json.gz');

const patientView = {
  resourceType: 'ViewDefinition',
  resource: 'Patient',
  select: [{ column: [{ name: 'id', path: 'getResourceKey()' }, { name: 'family', path: "name.where(use = 'official').family.first()" }, { name: 'birth', path: 'birthDate' }, { name: 'gender', path: 'gender' }] }],
};

const write = (name: string, content: unknown) => {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
};

describe('medfit fhir conformance', () => {
  it('passes the vendored SQL-on-FHIR v2 suite and ends with the count line', async () => {
    const r = await medfit(['fhir', 'conformance', fixture('sql-on-fhir')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').at(-1)).toBe('134 passed, 0 failed');
    expect(r.code).toBe(0);
  });

  it('prints one line per failure and exits 1 when a test fails', async () => {
    const suite = JSON.parse(readFileSync(fixture('sql-on-fhir/basic.json'), 'utf8')) as { tests: Array<{ expect?: unknown[] }> };
    // A wrong expectation: the runner must report it, not pass it.
    suite.tests[0]!.expect = [{ id: 'nobody' }];
    const d = join(dir, 'suite');
    (await import('node:fs')).mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'basic.json'), JSON.stringify(suite));
    const r = await medfit(['fhir', 'conformance', d]);
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^\d+ passed, 1 failed$/);
    expect(lines[0]).toMatch(/^basic\.json: /);
    expect(r.code).toBe(1);
  });
});

describe('medfit fhir run', () => {
  it('de-identifies by default: no name, no birth date, pseudonymous ids that are stable for a key', async () => {
    const view = write('patient-view.json', patientView);
    const r = await medfit(['fhir', 'run', view, ABDUL], { env: KEY });
    expect(r.code).toBe(0);
    const [header, row] = r.stdout.trim().split('\n');
    expect(header).toBe('id,family,birth,gender');
    expect(r.stdout).not.toMatch(/Koepp|018f428e/);
    const raw = JSON.parse(gunzipSync(readFileSync(ABDUL)).toString('utf8')) as { entry: Array<{ resource: { resourceType: string; birthDate?: string } }> };
    const birth = raw.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.birthDate!;
    expect(row).not.toContain(birth);
    expect(row!.split(',')[3]).toBe('male');
    const again = await medfit(['fhir', 'run', view, ABDUL], { env: KEY });
    expect(again.stdout).toBe(r.stdout);
  });

  it('--no-deidentify shows the resources as they are, as json, ndjson or csv into a file', async () => {
    const view = write('patient-view.json', patientView);
    const json = await medfit(['fhir', 'run', view, ABDUL, '--no-deidentify', '--format', 'json']);
    expect(json.code).toBe(0);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(rows).toEqual([{ id: '018f428e-34f6-4707-8009-5ad742f901e7', family: 'Koepp', birth: '1956-08-03', gender: 'male' }]);
    const out = join(dir, 'patients.csv');
    const csv = await medfit(['fhir', 'run', view, SYNTHEA, '--no-deidentify', '--out', out]);
    expect(csv.code).toBe(0);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(14);
    const nd = await medfit(['fhir', 'run', view, SYNTHEA, '--no-deidentify', '--format', 'ndjson']);
    expect(nd.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toHaveLength(13);
  });

  it('refuses a view with an unknown function, naming the place, and writes nothing', async () => {
    const view = write('bad-view.json', { ...patientView, select: [{ column: [{ name: 'x', path: 'name.frobnicate()' }] }] });
    const out = join(dir, 'never.csv');
    const r = await medfit(['fhir', 'run', view, ABDUL, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad-view\.json: \/select\/0\/column\/0\/path: unknown function "frobnicate"/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('medfit fhir import', () => {
  it('makes one de-identified row per Patient from bulk-export NDJSON (gzip)', async () => {
    const out = join(dir, 'pima.csv');
    const r = await medfit(['fhir', 'import', PIMA, '--features', SPEC, '--out', out, '--json'], { env: KEY });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { rows: number; columns: string[]; deidentified: boolean };
    expect(j.rows).toBe(768);
    expect(j.deidentified).toBe(true);
    expect(j.columns).toEqual(['patient', 'age', 'pregnant', 'glucose', 'pressure', 'triceps', 'insulin', 'mass', 'pedigree', 'diabetes']);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(769);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not-json.json', '{"resourceType": "Bundle", "entry": [ {"resource": ', /not-json\.json, line 1, column \d+: /],
    ['no-type.ndjson', '{"id": "x"}\n', /no-type\.ndjson, line 1: resource has no resourceType/],
    ['unknown.ndjson', '{"resourceType": "Patinet", "id": "x"}\n', /unknown resource type "Patinet"/],
    [
      'orphan.ndjson',
      '{"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}\n{"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, "subject": {"reference": "Patient/missing"}, "effectiveDateTime": "2025-01-01", "valueQuantity": {"value": 100, "system": "http://unitsofmeasure.org", "code": "mg/dL"}}\n',
      /orphan\.ndjson, line 2: .*Patient that is not in the input/,
    ],
    [
      'bad-date.ndjson',
      '{"resourceType": "Patient", "id": "p1", "birthDate": "1970-13-45"}\n',
      /bad-date\.ndjson, line 1: .*birthDate/,
    ],
    [
      'bad-unit.ndjson',
      '{"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}\n{"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-01-01", "valueQuantity": {"value": 100, "system": "http://unitsofmeasure.org", "code": "kg"}}\n',
      /bad-unit\.ndjson, line 2: .*2345-7.*"kg"/,
    ],
  ];
  for (const [name, content, message] of bad) {
    it(`refuses ${name} with exit 2, a one-line message and no table`, async () => {
      const input = write(name, content);
      const out = join(dir, `${name}.csv`);
      const r = await medfit(['fhir', 'import', input, '--features', SPEC, '--out', out], { env: KEY });
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('refuses a feature spec with problems, naming each place', async () => {
    const spec = write('bad-spec.json', { index: 'yesterday', observations: [{ name: 'g', code: 'glucose', agg: 'median' }] });
    const r = await medfit(['fhir', 'import', PIMA, '--features', spec, '--out', join(dir, 'x.csv')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad-spec\.json: \/index: /);
    expect(r.stderr).toMatch(/more problem/);
  });
});

describe('train --features and predict on FHIR', () => {
  const model = join(dir, 'models', 'pima-fhir', 'v1');
  let trained: { code: number; stdout: string; stderr: string };
  beforeAll(async () => {
    trained = await medfit(['train', PIMA, '--features', SPEC, '--target', 'diabetes', '--model', 'logistic', '--out', model, '--json'], { env: KEY });
  }, 120_000);

  it('trains from FHIR resources and keeps the feature spec in the manifest', () => {
    expect(trained.stderr).toMatch(/768 patients \(de-identified\)/);
    expect(trained.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(model, 'manifest.json'), 'utf8')) as { fhir?: { features: { index: string }; deidentified: boolean }; dataset: { source: string } };
    expect(manifest.fhir?.deidentified).toBe(true);
    expect(manifest.fhir?.features.index).toBe('2025-07-01');
    expect(manifest.dataset.source).toBe('pima');
  });

  it('predicts FHIR resources: one line per Patient, or a Bundle of RiskAssessments with --fhir', async () => {
    const one = write(
      'one-patient.ndjson',
      [
        { resourceType: 'Patient', id: 'pt-1', gender: 'female', birthDate: '1975-03-01' },
        { resourceType: 'Observation', id: 'glu-1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] }, subject: { reference: 'Patient/pt-1' }, effectiveDateTime: '2025-06-01', valueQuantity: { value: 9.9, system: 'http://unitsofmeasure.org', code: 'mmol/L' } },
        { resourceType: 'Observation', id: 'bmi-1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '39156-5' }] }, subject: { reference: 'Patient/pt-1' }, effectiveDateTime: '2025-06-01', valueQuantity: { value: 36.5, system: 'http://unitsofmeasure.org', code: 'kg/m2' } },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const lines = await medfit(['predict', model, one, '--index', '2025-07-01']);
    expect(lines.code).toBe(0);
    expect(lines.stdout).toMatch(/^Patient\/pt-1\t[01]\t0=0\.\d{4}\t1=0\.\d{4}\n$/);
    const fhir = await medfit(['predict', model, one, '--index', '2025-07-01', '--fhir']);
    expect(fhir.code).toBe(0);
    // The features the patient has no value of are named (they are imputed as in training).
    expect(fhir.stderr).toMatch(/warning: Patient\/pt-1: no value of pregnant, pressure, triceps, insulin, pedigree by the index date 2025-07-01/);
    const bundle = JSON.parse(fhir.stdout) as { resourceType: string; entry: Array<{ resource: { resourceType: string; subject: { reference: string }; basis: Array<{ reference: string }>; prediction: Array<{ probabilityDecimal: number }> } }> };
    expect(bundle.resourceType).toBe('Bundle');
    const ra = bundle.entry[0]!.resource;
    expect(ra.resourceType).toBe('RiskAssessment');
    expect(ra.subject.reference).toBe('Patient/pt-1');
    expect(ra.basis.map((b) => b.reference).sort()).toEqual(['Observation/bmi-1', 'Observation/glu-1']);
    const pos = Number(/\t1=(0\.\d+)/.exec(lines.stdout)![1]);
    expect(ra.prediction[0]!.probabilityDecimal / 100).toBeCloseTo(pos, 4);
    expect(ra).toMatchObject({ occurrenceDateTime: '2025-07-01', method: { text: expect.stringMatching(/pima-fhir.*1/) }, prediction: [{ whenPeriod: { start: '2025-07-01', end: '2026-07-01' } }] });
  });

  it('never makes the patient or, for another target, the label a feature', async () => {
    const out = join(dir, 'models', 'pima-glucose', 'v1');
    const r = await medfit(['train', PIMA, '--features', SPEC, '--target', 'glucose', '--model', 'linear', '--cv', '3', '--out', out, '--json'], { env: KEY });
    expect(r.code).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { schema: { columns: Array<{ name: string; type: string; role: string }> } };
    const col = (n: string) => m.schema.columns.find((c) => c.name === n)!;
    expect(col('patient')).toMatchObject({ type: 'identifier', role: 'ignored' });
    expect(col('diabetes').role).toBe('ignored');
    expect(col('mass').role).toBe('feature');
    const first = JSON.parse(readFileSync(join(model, 'manifest.json'), 'utf8')) as typeof m;
    expect(first.schema.columns.find((c) => c.name === 'patient')).toMatchObject({ type: 'identifier', role: 'ignored' });
  }, 60_000);

  it('refuses FHIR input for a model not trained from FHIR, and --fhir for a table', async () => {
    const r = await medfit(['predict', model, fixture('pima_diabetes.csv'), '--fhir']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--fhir and --index are for a model trained from FHIR/);
  });
});
