/**
 * The 13 Synthea R4 Bundles (test/fixtures/fhir/synthea) → a feature table by `FeatureBuilder`,
 * checked cell by cell against values computed here independently: plain loops over the Bundle
 * JSON, no view engine, no builder code.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { FeatureBuilder, parseFeatureSpec, type FeatureTable, type ResourceItem } from '../src/fhir/index.js';

const DIR = fileURLToPath(new URL('./fixtures/fhir/synthea/', import.meta.url));
const LOINC = 'http://loinc.org';
const SCT = 'http://snomed.info/sct';
const INDEX = '2019-01-01';

interface Json {
  [k: string]: any;
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json.gz')).sort();
const bundles: Array<{ file: string; bundle: Json }> = files.map((file) => ({ file, bundle: JSON.parse(gunzipSync(readFileSync(join(DIR, file))).toString('utf8')) as Json }));

/** Diabetes (44054006) and the descendants Synthea's diabetes module writes. */
const DIABETES = ['44054006', '127013003', '90781000119102', '157141000119108', '60951000119105', '97331000119101', '1501000119109', '1551000119108', '368581000119106', '422034002'];
const HYPERTENSION = ['38341003', '59621000'];
const SMOKING: Record<string, number> = { '266919005': 0, '8517006': 1, '449868002': 2, '428041000124106': 2, '77176002': 2, '428071000124103': 2, '428061000124105': 2 };

const specJson = {
  index: INDEX,
  observations: [
    { name: 'bmi', code: `${LOINC}|39156-5`, agg: 'last' },
    { name: 'sbp', code: [`${LOINC}|55284-4`, `${LOINC}|85354-9`], component: `${LOINC}|8480-6`, agg: 'last' },
    { name: 'hba1c', code: `${LOINC}|4548-4`, agg: 'last' },
    { name: 'cholesterol', code: `${LOINC}|2093-3`, agg: 'last' },
    { name: 'smoking', code: `${LOINC}|72166-2`, agg: 'last', values: Object.fromEntries(Object.entries(SMOKING).map(([c, v]) => [`${SCT}|${c}`, v])) },
    { name: 'glucose_mmol', code: [`${LOINC}|2339-0`, `${LOINC}|2345-7`], agg: 'mean', within: '2y', unit: 'mmol/L' },
    { name: 'bmi_count_3y', code: `${LOINC}|39156-5`, agg: 'count', within: '3y' },
  ],
  conditions: [
    { name: 'diabetes', codes: DIABETES.map((c) => `${SCT}|${c}`) },
    { name: 'hypertension', codes: HYPERTENSION.map((c) => `${SCT}|${c}`) },
    { name: 'prediabetes_onset', codes: [`${SCT}|15777000`], as: 'onset' },
  ],
  label: { name: 'dysglycemia_1y', condition: { codes: [...DIABETES, '15777000'].map((c) => `${SCT}|${c}`) }, within: '1y' },
};

function items(): ResourceItem[] {
  const out: ResourceItem[] = [];
  for (const { file, bundle } of bundles) {
    (bundle.entry as Json[]).forEach((e, i) => out.push({ resource: e.resource, source: file, where: `entry ${i}`, fullUrl: e.fullUrl }));
  }
  return out;
}

function build(spec: unknown, list: ResourceItem[]): FeatureTable {
  const b = new FeatureBuilder(parseFeatureSpec(spec, 'spec.json'));
  for (const it of list) b.add(it);
  return b.finish();
}

// ---- the independent computation ----

const codes = (cc: Json | undefined): string[] => ((cc?.coding ?? []) as Json[]).map((c) => `${c.system}|${c.code}`);

/** The value with the latest effectiveDateTime at or before the index date (ties: the larger value). */
function lastBefore(observations: Json[], valueOf: (o: Json) => number | undefined): number | null {
  let best: { t: number; v: number } | undefined;
  for (const o of observations) {
    if (o.effectiveDateTime.slice(0, 10) > INDEX) continue;
    const v = valueOf(o);
    if (v === undefined) continue;
    const t = Date.parse(o.effectiveDateTime);
    if (!best || t > best.t || (t === best.t && v > best.v)) best = { t, v };
  }
  return best ? best.v : null;
}

function expectedRow(bundle: Json): Array<string | number | null> {
  const resources = (bundle.entry as Json[]).map((e) => e.resource as Json);
  const patient = resources.find((r) => r.resourceType === 'Patient')!;
  const mine = (r: Json) => r.subject?.reference === `urn:uuid:${patient.id}` || r.subject?.reference === `Patient/${patient.id}`;
  const obs = resources.filter((r) => r.resourceType === 'Observation' && mine(r) && r.status !== 'entered-in-error' && r.status !== 'cancelled');
  const conds = resources.filter((r) => r.resourceType === 'Condition' && mine(r) && !['refuted', 'entered-in-error'].includes(r.verificationStatus?.coding?.[0]?.code));
  const withCode = (list: string[]) => obs.filter((o) => codes(o.code).some((c) => list.includes(c)));

  const [by, bm, bd] = (patient.birthDate as string).split('-').map(Number) as [number, number, number];
  let age = 2019 - by - (1 < bm || (1 === bm && 1 < bd) ? 1 : 0);
  if (age > 89) age = 90;

  const quantity = (o: Json) => (o.valueQuantity ? (o.valueQuantity.value as number) : undefined);
  const bmi = lastBefore(withCode([`${LOINC}|39156-5`]), quantity);
  const sbp = lastBefore(withCode([`${LOINC}|55284-4`, `${LOINC}|85354-9`]), (o) => {
    const c = (o.component as Json[] | undefined)?.find((x) => codes(x.code).includes(`${LOINC}|8480-6`));
    return c ? (c.valueQuantity.value as number) : undefined;
  });
  const hba1c = lastBefore(withCode([`${LOINC}|4548-4`]), quantity);
  const chol = lastBefore(withCode([`${LOINC}|2093-3`]), quantity);
  const smoking = lastBefore(withCode([`${LOINC}|72166-2`]), (o) => {
    for (const c of o.valueCodeableConcept?.coding ?? []) if (c.system === SCT && SMOKING[c.code] !== undefined) return SMOKING[c.code];
    return undefined;
  });
  // mean glucose over (2017-01-01, 2019-01-01], mg/dL → mmol/L: × 10 / 180.156
  let sum = 0;
  let n = 0;
  for (const o of withCode([`${LOINC}|2339-0`, `${LOINC}|2345-7`])) {
    const day = o.effectiveDateTime.slice(0, 10);
    if (day <= '2017-01-01' || day > INDEX) continue;
    expect(o.valueQuantity.code).toBe('mg/dL');
    sum += (o.valueQuantity.value * 10) / 180.156;
    n++;
  }
  const glucose = n ? sum / n : null;
  const bmiCount = withCode([`${LOINC}|39156-5`]).filter((o) => o.effectiveDateTime.slice(0, 10) > '2016-01-01' && o.effectiveDateTime.slice(0, 10) <= INDEX).length;

  const onsetOf = (c: Json) => ((c.onsetDateTime ?? c.recordedDate) as string).slice(0, 10);
  const condsOf = (list: string[]) => conds.filter((c) => codes(c.code).some((x) => list.some((l) => x === `${SCT}|${l}`)));
  const flag = (list: string[]) => (condsOf(list).some((c) => onsetOf(c) <= INDEX) ? 1 : 0);
  const preOnsets = condsOf(['15777000']).map(onsetOf).filter((d) => d <= INDEX).sort();
  const label = condsOf([...DIABETES, '15777000']).some((c) => onsetOf(c) > INDEX && onsetOf(c) <= '2020-01-01') ? 1 : 0;

  return [patient.id, age, patient.gender, bmi, sbp, hba1c, chol, smoking, glucose, bmiCount, flag(DIABETES), flag(HYPERTENSION), preOnsets[0] ?? null, label];
}

describe('Synthea Bundles → feature table', () => {
  it('vendors all 13 Bundles', () => {
    expect(bundles).toHaveLength(13);
  });

  it('matches values computed independently from the Bundle JSON, cell by cell', () => {
    const t = build(specJson, items());
    expect(t.columns).toEqual(['patient', 'age', 'sex', 'bmi', 'sbp', 'hba1c', 'cholesterol', 'smoking', 'glucose_mmol', 'bmi_count_3y', 'diabetes', 'hypertension', 'prediabetes_onset', 'dysglycemia_1y']);
    const expected = bundles.map(({ bundle }) => expectedRow(bundle));
    expect(t.rows).toHaveLength(13);
    const glucose = t.columns.indexOf('glucose_mmol');
    for (let r = 0; r < 13; r++) {
      for (let c = 0; c < t.columns.length; c++) {
        const got = t.rows[r]![c];
        const want = expected[r]![c];
        // The one converted column: the builder multiplies by one factor and rounds each converted value to 12
        // significant digits (no float noise), the test divides; equal to 12 significant digits.
        if (c === glucose && typeof want === 'number') expect(Math.abs((got as number) - want), `${files[r]} ${t.columns[c]}`).toBeLessThanOrEqual(1e-11 * Math.abs(want));
        else expect(got, `${files[r]} ${t.columns[c]}`).toBe(want);
      }
    }
    // The data is not trivial: every feature has values, and the flags and the label both occur.
    for (const name of ['bmi', 'sbp', 'hba1c', 'cholesterol', 'smoking', 'glucose_mmol', 'prediabetes_onset']) {
      expect(t.rows.some((row) => row[t.columns.indexOf(name)] !== null), name).toBe(true);
    }
    expect(t.rows.some((row) => row[t.columns.indexOf('hba1c')] === null)).toBe(true);
    expect(new Set(t.rows.map((row) => row[t.columns.indexOf('hypertension')]))).toEqual(new Set([0, 1]));
    expect(new Set(t.rows.map((row) => row[t.columns.indexOf('dysglycemia_1y')]))).toEqual(new Set([0, 1]));
    expect(new Set(t.rows.map((row) => row[t.columns.indexOf('smoking')]))).toEqual(new Set([0, 1]));
  });

  it('labels by an HbA1c threshold after the index date: 1, 0, or null without a value', () => {
    const spec = { index: INDEX, patient: { sex: false }, observations: [{ name: 'hba1c', code: `${LOINC}|4548-4` }], label: { name: 'a1c_high', observation: { code: `${LOINC}|4548-4`, unit: '%', above: 6 }, within: '2y' } };
    const t = build(spec, items());
    const expected = bundles.map(({ bundle }) => {
      const values = (bundle.entry as Json[])
        .map((e) => e.resource as Json)
        .filter((r) => r.resourceType === 'Observation' && codes(r.code).includes(`${LOINC}|4548-4`))
        .filter((r) => r.effectiveDateTime.slice(0, 10) > INDEX && r.effectiveDateTime.slice(0, 10) <= '2021-01-01')
        .map((r) => r.valueQuantity.value as number);
      return values.length === 0 ? null : values.some((v) => v > 6) ? 1 : 0;
    });
    expect(t.rows.map((r) => r[3])).toEqual(expected);
    expect(new Set(expected)).toEqual(new Set([null, 0, 1]));
  });

  it('gives the same table when every Observation and Condition comes before the Patients', () => {
    const list = items();
    const reordered = [...list.filter((i) => i.resource.resourceType !== 'Patient'), ...list.filter((i) => i.resource.resourceType === 'Patient')];
    expect(build(specJson, reordered)).toEqual(build(specJson, list));
  });
});
