/**
 * Renders test/fixtures/pima_diabetes.csv as FHIR R4 bulk-export NDJSON, so that a model trained
 * from the FHIR import can be compared with one trained from the CSV (test/fhir-pima.test.ts):
 *
 *   npx tsx scripts/pima-fhir.ts            writes test/fixtures/fhir/pima/{Patient,Observation,Condition}.ndjson.gz
 *                                           and test/fixtures/fhir/pima.features.json
 *   npx tsx scripts/pima-fhir.ts --check    exits 1 when the committed files differ from what it would write
 *
 * Deterministic (seeded): the same bytes on every run. One Patient per row, female (the study's
 * Pima women), with made-up names, addresses, phone numbers, e-mail and MRN (no real person: the
 * de-identification has real identifiers to remove), a birth date that makes her age at the
 * index date exactly the row's `age` (her birthday falls 3–5 months before it, so a date shift
 * that moves birth date and index date together cannot change the whole years), and per
 * non-blank cell one Observation dated 1–60 days before the index date (2025-07-01):
 *
 *   pregnant   LOINC 11996-6  [#] Pregnancies                         {#}
 *   glucose    LOINC 2345-7   Glucose [Mass/volume] in Serum or Plasma mg/dL; every 4th row
 *              (from the 2nd) in mmol/L (molar mass 180.156), every 4th (from the 4th) in g/L,
 *              with all the digits a double has, so converting back gives the value within 1e-12
 *   pressure   LOINC 8462-4   Diastolic blood pressure                 mm[Hg]
 *   triceps    LOINC 39106-0  Triceps skinfold thickness               mm
 *   insulin    LOINC 20448-7  Insulin [Units/volume] in Serum or Plasma u[IU]/mL
 *   mass       LOINC 39156-5  Body mass index                           kg/m2
 *   pedigree   https://medfit.dev/fhir/CodeSystem/pima|pedigree         1 (dimensionless): the
 *              diabetes pedigree function, which has no LOINC concept, under a local code system
 *
 * A blank cell has no Observation. Decoys that a correct import must ignore: every 5th row has an
 * older glucose reading (outside the one-year window and not the last), every 7th a BMI reading
 * after the index date (future data must not leak into the features). The label: a row with
 * `diabetes = pos` has a Condition "Diabetes mellitus" (SNOMED 44054006) with onset 30–300 days
 * after the index date, inside the label window of 365 days; every 9th `neg` row has an unrelated
 * Condition (hypertension) before it.
 */
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, gunzipSync } from 'node:zlib';
import { Rng } from '../src/core/index.js';
import type { FeatureSpec } from '../src/fhir/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CSV = join(ROOT, 'test/fixtures/pima_diabetes.csv');
/** Where the files go: the export in pima/, its feature spec beside it (a spec inside the folder would be read as a resource). */
const OUT = join(ROOT, 'test/fixtures/fhir');

/** The index date: features at or before it, the label after it. */
export const PIMA_INDEX = '2025-07-01';
/** mg/dL of glucose per mmol/L (its molar mass, 180.156 g/mol, over 10); the importer's own factor is the same. */
export const GLUCOSE_MG_DL_PER_MMOL_L = 18.0156;
export const PEDIGREE_SYSTEM = 'https://medfit.dev/fhir/CodeSystem/pima';

const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/** The feature spec that turns the rendering back into the CSV's columns (`sex` left out: all female). */
export const PIMA_SPEC: FeatureSpec = {
  index: PIMA_INDEX,
  patient: { age: true, sex: false },
  observations: [
    { name: 'pregnant', code: `${LOINC}|11996-6`, agg: 'last', within: '365d' },
    { name: 'glucose', code: `${LOINC}|2345-7`, agg: 'last', within: '365d', unit: 'mg/dL' },
    { name: 'pressure', code: `${LOINC}|8462-4`, agg: 'last', within: '365d', unit: 'mm[Hg]' },
    { name: 'triceps', code: `${LOINC}|39106-0`, agg: 'last', within: '365d', unit: 'mm' },
    { name: 'insulin', code: `${LOINC}|20448-7`, agg: 'last', within: '365d', unit: 'u[IU]/mL' },
    { name: 'mass', code: `${LOINC}|39156-5`, agg: 'last', within: '365d', unit: 'kg/m2' },
    { name: 'pedigree', code: `${PEDIGREE_SYSTEM}|pedigree`, agg: 'last', within: '365d' },
  ],
  label: { name: 'diabetes', condition: { codes: [`${SNOMED}|44054006`] }, within: '365d' },
};

/** One row of the CSV: the feature cells as numbers (null: blank), the label. */
export interface PimaRow {
  values: Record<(typeof FEATURES)[number], number | null>;
  age: number;
  diabetes: 'pos' | 'neg';
}
export const FEATURES = ['pregnant', 'glucose', 'pressure', 'triceps', 'insulin', 'mass', 'pedigree'] as const;

/** The CSV's rows (it quotes no commas: a plain split is exact). */
export function readPima(text = readFileSync(CSV, 'utf8')): PimaRow[] {
  const lines = text.trim().split(/\r?\n/);
  const header = lines[0]!.split(',').map((h) => h.replace(/"/g, ''));
  const expected = [...FEATURES, 'age', 'diabetes'];
  if (header.join() !== expected.join()) throw new Error(`pima_diabetes.csv: expected columns ${expected.join(', ')}, got ${header.join(', ')}`);
  return lines.slice(1).map((line, i) => {
    const cells = line.split(',').map((c) => c.replace(/"/g, ''));
    const num = (j: number) => {
      if (cells[j] === '') return null;
      const v = Number(cells[j]);
      if (!Number.isFinite(v)) throw new Error(`pima_diabetes.csv line ${i + 2}: column ${header[j]} is not a number`);
      return v;
    };
    const label = cells[8];
    if (label !== 'pos' && label !== 'neg') throw new Error(`pima_diabetes.csv line ${i + 2}: diabetes must be pos or neg`);
    const age = num(7);
    if (age === null) throw new Error(`pima_diabetes.csv line ${i + 2}: age is blank`);
    return { values: Object.fromEntries(FEATURES.map((f, j) => [f, num(j)])) as PimaRow['values'], age, diabetes: label };
  });
}

// Made-up names and places (Arizona, where the study was run); no real person.
const GIVEN = ['Ayasha', 'Dyani', 'Halona', 'Kaya', 'Leotie', 'Nita', 'Sahkyo', 'Tala', 'Winona', 'Aponi', 'Elsie', 'Marlene', 'Doris', 'Loretta', 'Ruth', 'Irene'];
const FAMILY = ['Antone', 'Enos', 'Juan', 'Lewis', 'Manuel', 'Narcia', 'Osife', 'Pablo', 'Ramon', 'Sixkiller', 'Thomas', 'Valenzuela', 'Wellington', 'Yazzie'];
const STREETS = ['Cottonwood Lane', 'Mesquite Road', 'Gila River Drive', 'Saguaro Way', 'Ironwood Court', 'Palo Verde Street'];
const TOWNS: Array<[string, string]> = [
  ['Sacaton', '85147'],
  ['Bapchule', '85121'],
  ['Komatke', '85339'],
  ['Blackwater', '85132'],
  ['Casa Blanca', '85121'],
];

const DAY = 86_400_000;
const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dateTime = (ms: number) => new Date(ms).toISOString().replace('.000Z', '+00:00');

function uuid(rng: Rng): string {
  const h = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[rng.int(16)]).join('');
  return `${h(8)}-${h(4)}-4${h(3)}-${'89ab'[rng.int(4)]}${h(3)}-${h(12)}`;
}

/** A quantity in UCUM (`unit` printed as the code). */
const quantity = (value: number, code: string) => ({ value, unit: code, system: UCUM_SYSTEM, code });

/** The rendering: resources by type, in the order they are written. */
export interface PimaFhir {
  Patient: Array<Record<string, unknown>>;
  Observation: Array<Record<string, unknown>>;
  Condition: Array<Record<string, unknown>>;
  /** Patient ids in row order (the test maps table rows back to CSV rows through them). */
  ids: string[];
}

/** Renders the rows (seeded: the same resources every time). */
export function renderPima(rows: PimaRow[], seed = 9): PimaFhir {
  const rng = new Rng(seed);
  const index = Date.parse(`${PIMA_INDEX}T00:00:00Z`);
  const [indexYear, indexMonth, indexDay] = PIMA_INDEX.split('-').map(Number) as [number, number, number];
  const out: PimaFhir = { Patient: [], Observation: [], Condition: [], ids: [] };
  // Observations are written code by code (a bulk export's order is the server's, not a patient's).
  const byCode: Array<Array<Record<string, unknown>>> = FEATURES.map(() => []);
  const decoys: Array<Record<string, unknown>> = [];
  rows.forEach((row, i) => {
    const id = uuid(rng);
    out.ids.push(id);
    const given = GIVEN[rng.int(GIVEN.length)]!;
    const family = FAMILY[rng.int(FAMILY.length)]!;
    const [town, zip] = TOWNS[rng.int(TOWNS.length)]!;
    // Her birthday falls 90–150 days before the index date, in the year that makes her `age` at it.
    const birthday = Date.UTC(indexYear - row.age, indexMonth - 1, indexDay) - (90 + rng.int(61)) * DAY;
    const mrn = `PIMA-${String(100000 + i * 37 + rng.int(37)).padStart(7, '0')}`;
    const phone = `520-555-01${String(rng.int(100)).padStart(2, '0')}`;
    out.Patient.push({
      resourceType: 'Patient',
      id,
      meta: { versionId: '1', lastUpdated: '2026-06-01T09:00:00+00:00' },
      text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${given} ${family}, MRN ${mrn}</div>` },
      identifier: [
        {
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical Record Number' }], text: 'Medical Record Number' },
          system: 'https://medfit.dev/fhir/sid/pima-mrn',
          value: mrn,
        },
      ],
      name: [{ use: 'official', family, given: [given] }],
      telecom: [
        { system: 'phone', value: phone, use: 'home' },
        { system: 'email', value: `${given.toLowerCase()}.${family.toLowerCase()}.${i}@example.org`, use: 'home' },
      ],
      gender: 'female',
      birthDate: date(birthday),
      address: [{ use: 'home', line: [`${1 + rng.int(899)} ${STREETS[rng.int(STREETS.length)]}`], city: town, state: 'AZ', postalCode: zip, country: 'US' }],
    });
    const subject = { reference: `Patient/${id}` };
    const obs = (code: Record<string, unknown>, when: number, value: Record<string, unknown>, category = 'laboratory') => ({
      resourceType: 'Observation',
      id: uuid(rng),
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }],
      code,
      subject,
      effectiveDateTime: dateTime(when),
      issued: dateTime(when + 3_600_000),
      valueQuantity: value,
    });
    const loinc = (code: string, display: string) => ({ coding: [{ system: LOINC, code, display }], text: display });
    const when = () => index - (1 + rng.int(60)) * DAY + (8 + rng.int(9)) * 3_600_000;
    const v = row.values;
    if (v.pregnant !== null) byCode[0]!.push(obs(loinc('11996-6', '[#] Pregnancies'), when(), quantity(v.pregnant, '{#}'), 'social-history'));
    if (v.glucose !== null) {
      // Every 4th row in mmol/L, every 4th (offset 2) in g/L: the importer converts them back to mg/dL.
      const g = i % 4 === 1 ? quantity(v.glucose / GLUCOSE_MG_DL_PER_MMOL_L, 'mmol/L') : i % 4 === 3 ? quantity(v.glucose / 100, 'g/L') : quantity(v.glucose, 'mg/dL');
      byCode[1]!.push(obs(loinc('2345-7', 'Glucose [Mass/volume] in Serum or Plasma'), when(), g));
      if (i % 5 === 0) decoys.push(obs(loinc('2345-7', 'Glucose [Mass/volume] in Serum or Plasma'), index - (400 + rng.int(200)) * DAY, quantity(v.glucose + 37, 'mg/dL')));
    }
    if (v.pressure !== null) byCode[2]!.push(obs(loinc('8462-4', 'Diastolic blood pressure'), when(), quantity(v.pressure, 'mm[Hg]'), 'vital-signs'));
    if (v.triceps !== null) byCode[3]!.push(obs(loinc('39106-0', 'Triceps skinfold thickness'), when(), quantity(v.triceps, 'mm'), 'exam'));
    if (v.insulin !== null) byCode[4]!.push(obs(loinc('20448-7', 'Insulin [Units/volume] in Serum or Plasma'), when(), quantity(v.insulin, 'u[IU]/mL')));
    if (v.mass !== null) {
      byCode[5]!.push(obs(loinc('39156-5', 'Body mass index (BMI) [Ratio]'), when(), quantity(v.mass, 'kg/m2'), 'vital-signs'));
      if (i % 7 === 0) decoys.push(obs(loinc('39156-5', 'Body mass index (BMI) [Ratio]'), index + (2 + rng.int(100)) * DAY, quantity(v.mass + 4.5, 'kg/m2'), 'vital-signs'));
    }
    if (v.pedigree !== null) {
      const code = { coding: [{ system: PEDIGREE_SYSTEM, code: 'pedigree', display: 'Diabetes pedigree function' }], text: 'Diabetes pedigree function (not a LOINC concept)' };
      byCode[6]!.push(obs(code, when(), quantity(v.pedigree, '1'), 'survey'));
    }
    const condition = (code: string, display: string, onset: number) => ({
      resourceType: 'Condition',
      id: uuid(rng),
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'encounter-diagnosis' }] }],
      code: { coding: [{ system: SNOMED, code, display }], text: display },
      subject,
      onsetDateTime: dateTime(onset),
      recordedDate: dateTime(onset),
    });
    if (row.diabetes === 'pos') out.Condition.push(condition('44054006', 'Diabetes mellitus type 2 (disorder)', index + (30 + rng.int(271)) * DAY));
    else if (i % 9 === 0) out.Condition.push(condition('38341003', 'Hypertensive disorder, systemic arterial (disorder)', index - (100 + rng.int(900)) * DAY));
  });
  for (const list of byCode) for (const o of list) out.Observation.push(o);
  for (const o of decoys) out.Observation.push(o);
  return out;
}

/** The files the script writes: name → bytes (gzip from Node's zlib carries no time stamp: deterministic). */
export function pimaFiles(r: PimaFhir = renderPima(readPima())): Map<string, Buffer> {
  const nd = (list: Array<Record<string, unknown>>) => gzipSync(list.map((x) => JSON.stringify(x)).join('\n') + '\n', { level: 9 });
  return new Map([
    ['pima/Patient.ndjson.gz', nd(r.Patient)],
    ['pima/Observation.ndjson.gz', nd(r.Observation)],
    ['pima/Condition.ndjson.gz', nd(r.Condition)],
    ['pima.features.json', Buffer.from(JSON.stringify(PIMA_SPEC, null, 2) + '\n')],
  ]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = pimaFiles();
  if (process.argv.includes('--check')) {
    let stale = 0;
    for (const [name, bytes] of files) {
      const path = join(OUT, name);
      const same = existsSync(path) && (name.endsWith('.gz') ? gunzipSync(readFileSync(path)).equals(gunzipSync(bytes)) : readFileSync(path).equals(bytes));
      if (!same) {
        console.error(`${path} differs from what scripts/pima-fhir.ts writes`);
        stale++;
      }
    }
    process.exit(stale ? 1 : 0);
  }
  mkdirSync(join(OUT, 'pima'), { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(OUT, name), bytes);
  console.log(`wrote ${[...files.keys()].join(', ')} to ${OUT}`);
}
