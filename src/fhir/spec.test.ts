import { describe, it, expect } from 'vitest';
import { MedfitError } from '../core/index.js';
import { compileView } from './view/index.js';
import { addDuration, featureColumns, parseDuration, parseFeatureSpec, parseIsoDate, isoOfDay, specViews, tableColumns, dayNumber } from './spec.js';

const LOINC = 'http://loinc.org';
const SCT = 'http://snomed.info/sct';

function problems(json: unknown): MedfitError {
  try {
    parseFeatureSpec(json, 'spec.json');
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('expected the spec to be refused');
}

const good = {
  index: '2019-01-01',
  observations: [
    { name: 'hba1c', code: `${LOINC}|4548-4`, agg: 'last', within: '365d' },
    { name: 'sbp', code: [`${LOINC}|85354-9`, `${LOINC}|55284-4`], component: `${LOINC}|8480-6`, agg: 'mean', within: '6mo', unit: 'mm[Hg]' },
    { name: 'smoking', code: `${LOINC}|72166-2`, values: { [`${SCT}|449868002`]: 2, [`${SCT}|8517006`]: 1 } },
  ],
  conditions: [{ name: 'diabetes', codes: [`${SCT}|44054006`] }, { name: 'htn_onset', codes: [`${SCT}|38341003`], as: 'onset' }],
  label: { name: 'outcome', condition: { codes: [`${SCT}|22298006`] }, within: '2y' },
};

describe('parseFeatureSpec', () => {
  it('accepts a full spec and returns a copy', () => {
    const spec = parseFeatureSpec(good, 'spec.json');
    expect(spec).toEqual(good);
    expect(spec).not.toBe(good);
    expect(featureColumns(spec)).toEqual(['age', 'sex', 'hba1c', 'sbp', 'smoking', 'diabetes', 'htn_onset']);
    expect(tableColumns(spec)).toEqual(['patient', 'age', 'sex', 'hba1c', 'sbp', 'smoking', 'diabetes', 'htn_onset', 'outcome']);
  });

  it('accepts an Observation threshold label and patient columns turned off', () => {
    const spec = parseFeatureSpec(
      { index: '2020-02-29', patient: { age: false, sex: true }, observations: [{ name: 'a1c', code: `${LOINC}|4548-4` }], label: { name: 'high', observation: { code: `${LOINC}|4548-4`, unit: '%', above: 6.5 }, within: '1y' } },
      'x',
    );
    expect(tableColumns(spec)).toEqual(['patient', 'sex', 'a1c', 'high']);
  });

  it('names the JSON pointer of a bad aggregation', () => {
    const spec = structuredClone(good) as typeof good & { observations: Array<Record<string, unknown>> };
    spec.observations[2]!.agg = 'median';
    const e = problems(spec);
    expect(e.message).toBe('spec.json: /observations/2/agg: expected one of last, first, mean, min, max, count');
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.details).toEqual([{ pointer: '/observations/2/agg', message: 'expected one of last, first, mean, min, max, count' }]);
  });

  it('reports every problem at once', () => {
    const e = problems({
      index: '2019-02-30',
      extra: 1,
      patient: { age: 'yes', weight: true },
      observations: [
        { name: '1bad', code: 'loinc:4548-4', within: '365', unit: 'mEq/L' },
        { name: 'hba1c', code: [], agg: 3, within: '0d', values: { 'nosystem': 'x' } },
        { name: 'HbA1c', code: `${LOINC}|4548-4`, unit: 'mmol/L', values: { [`${SCT}|1`]: 1 }, component: ['a|b', 'c'] },
        'nope',
      ],
      conditions: [{ name: 'patient', codes: `${SCT}|1` }, { name: 'age', codes: [`${SCT}|1`], as: 'date' }],
      label: { name: 'y', condition: { codes: [`${SCT}|1`] }, observation: {}, within: '2y' },
    });
    const pointers = e.details.map((d) => d.pointer);
    expect(pointers).toEqual([
      '/extra',
      '/index',
      '/patient/weight',
      '/patient/age',
      '/observations/0/name',
      '/observations/0/code',
      '/observations/0/within',
      '/observations/0/unit',
      '/observations/1/code',
      '/observations/1/agg',
      '/observations/1/within',
      '/observations/1/values/nosystem',
      '/observations/1/values/nosystem',
      '/observations/2/name',
      '/observations/2/component/1',
      '/observations/2/unit',
      '/observations/3',
      '/conditions/0/name',
      '/conditions/0/codes',
      '/conditions/1/name',
      '/conditions/1/as',
      '/label',
    ]);
    expect(e.message).toMatch(/^spec\.json: \/extra: unknown key; expected one of index, patient, observations, conditions, label \(and 21 more problem\(s\)\)$/);
    const byPointer = (p: string) => e.details.filter((d) => d.pointer === p).map((d) => d.message);
    expect(byPointer('/index')).toEqual(['expected an ISO date YYYY-MM-DD that exists in the calendar']);
    expect(byPointer('/observations/0/unit')[0]).toMatch(/"mEq\/L" has a unit "mEq" that is not a UCUM unit/);
    expect(byPointer('/observations/2/name')[0]).toMatch(/"HbA1c" is already used at \/observations\/1\/name/);
    expect(byPointer('/observations/2/unit')[0]).toMatch(/coded feature/);
    expect(byPointer('/conditions/0/name')[0]).toMatch(/"patient" is already used/);
    expect(byPointer('/conditions/1/name')[0]).toMatch(/"age" is already used at \/patient\/age/);
    expect(byPointer('/label')).toEqual(['expected exactly one of condition, observation']);
  });

  it('refuses systems and codes that would break a FHIR search URL (CDS Hooks prefetch), at their pointers', () => {
    const bad = [`${LOINC}|4548-4&x=1`, `${LOINC}|4548-4,1-1`, `${LOINC}|4548-4#x`, `${LOINC}|{{context.patientId}}`, `${LOINC}?x=1|4548-4`, `${LOINC}|4548 4`, `${LOINC}|4548-4\u00a0`, `${LOINC}|4548-4\u2028`, `${LOINC}|a$b`, `${LOINC}|a\\b`, `${LOINC}|a=b`, `${LOINC}|a|b`, `${LOINC}|a\tb`];
    for (const code of bad) {
      const e = problems({
        index: '2019-01-01',
        observations: [{ name: 'a', code }, { name: 'b', code: [`${LOINC}|1-1`, code] }, { name: 'c', code: `${LOINC}|1-1`, component: code }, { name: 'd', code: `${LOINC}|1-1`, values: { [code]: 1 } }],
        conditions: [{ name: 'e', codes: [code] }],
        label: { name: 'y', condition: { codes: [code] }, within: '1y' },
      });
      expect(e.details.map((d) => d.pointer), code).toEqual(['/observations/0/code', '/observations/1/code/1', '/observations/2/component', `/observations/3/values/${code.replaceAll('~', '~0').replaceAll('/', '~1')}`, '/conditions/0/codes/0', '/label/condition/codes/0']);
      if (code !== `${LOINC}|a|b`) expect(e.details[0]!.message, code).toMatch(/may not contain whitespace, control characters or any of & # \{ \} , \? = \$ \\ \| \(codes go into FHIR search URLs\)$/);
    }
    // What real systems and codes look like is accepted.
    for (const code of ['http://loinc.org|4548-4', 'urn:oid:2.16.840.1.113883.6.238|2106-3', 'http://hl7.org/fhir/sid/icd-10-cm|E11.9', 'http://snomed.info/sct|428041000124106', 'urn:iso:std:iso:3166|US']) {
      expect(() => parseFeatureSpec({ index: '2019-01-01', conditions: [{ name: 'x', codes: [code] }] }, 's'), code).not.toThrow();
    }
  });

  it('refuses names that are properties of every JavaScript object', () => {
    for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf']) {
      const e = problems({ index: '2019-01-01', observations: [{ name, code: `${LOINC}|1-1` }], label: { name, condition: { codes: [`${SCT}|1`] }, within: '1y' } });
      expect(e.details, name).toEqual([
        { pointer: '/observations/0/name', message: `"${name}" is reserved (a property of every JavaScript object): choose another name` },
        { pointer: '/label/name', message: `"${name}" is reserved (a property of every JavaScript object): choose another name` },
      ]);
    }
    // As JSON text: a "__proto__" key of a parsed object is an own property, still refused.
    expect(problems(JSON.parse(`{"index":"2019-01-01","conditions":[{"name":"__proto__","codes":["${SCT}|1"]}]}`)).details.map((d) => d.pointer)).toEqual(['/conditions/0/name']);
    expect(() => parseFeatureSpec({ index: '2019-01-01', conditions: [{ name: 'Constructor_', codes: [`${SCT}|1`] }] }, 's')).not.toThrow();
  });

  it('frees age and sex when the patient columns are off', () => {
    expect(() => parseFeatureSpec({ index: '2019-01-01', patient: { age: false }, observations: [{ name: 'age', code: `${LOINC}|1-1` }] }, 's')).not.toThrow();
  });

  it('refuses what is not a spec, or a spec without features', () => {
    expect(problems([]).message).toMatch(/^spec\.json: a feature spec is a JSON object/);
    expect(problems(null).message).toMatch(/JSON object/);
    expect(problems({}).message).toBe('spec.json: /index: is required: the index date, e.g. "2019-01-01"');
    expect(problems({ index: '2019-01-01', patient: { age: false, sex: false } }).message).toMatch(/^spec\.json: \/: defines no feature/);
    expect(problems({ index: 20190101 }).message).toMatch(/\/index: expected an ISO date string/);
    expect(problems({ index: '2019-1-01' }).message).toMatch(/\/index: expected an ISO date/);
  });

  it('checks the label in each of its forms', () => {
    const base = { index: '2019-01-01' };
    expect(problems({ ...base, label: { name: 'y', condition: { codes: [] } } }).details.map((d) => d.pointer)).toEqual(['/label/within', '/label/condition/codes']);
    expect(problems({ ...base, label: { name: 'y', observation: { code: `${LOINC}|1-1` }, within: '1y' } }).details).toEqual([{ pointer: '/label/observation', message: 'expected a threshold: above, below or both' }]);
    expect(problems({ ...base, label: { name: 'y', observation: { code: `${LOINC}|1-1`, above: '7', unit: 'parsec', x: 1 }, within: '1y' } }).details.map((d) => d.pointer)).toEqual([
      '/label/observation/x',
      '/label/observation/unit',
      '/label/observation/above',
    ]);
    expect(problems({ ...base, label: { name: 'sex', condition: 'x', within: '1y' } }).details.map((d) => d.pointer)).toEqual(['/label/name', '/label/condition']);
    expect(problems({ ...base, label: [] }).details.map((d) => d.pointer)).toEqual(['/label']);
  });

  it('escapes keys in pointers and caps the number of problems', () => {
    const values: Record<string, string> = {};
    for (let i = 0; i < 150; i++) values[`a/b~${i}`] = 'x';
    const e = problems({ index: '2019-01-01', observations: [{ name: 'x', code: `${LOINC}|1-1`, values }] });
    expect(e.details).toHaveLength(100);
    expect(e.details[0]!.pointer).toBe('/observations/0/values/a~1b~00');
    expect(e.message).toMatch(/\(and 299 more problem\(s\)\)$/);
  });

  it('never echoes a value of the spec other than units and names', () => {
    const e = problems({ index: 'secret-2019', observations: [{ name: 'x', code: 'secret', agg: 'secret' }] });
    expect(e.message + JSON.stringify(e.details)).not.toContain('secret');
  });
});

describe('durations and dates', () => {
  it('parses durations', () => {
    expect(parseDuration('365d')).toEqual({ n: 365, unit: 'd' });
    expect(parseDuration('6mo')).toEqual({ n: 6, unit: 'mo' });
    expect(parseDuration('2y')).toEqual({ n: 2, unit: 'y' });
    expect(parseDuration('12wk')).toEqual({ n: 12, unit: 'wk' });
    for (const bad of ['', 'd', '0d', '-1d', '1.5y', '1 y', '1Y', '2m', '201y', '1d1', '9999999d']) expect(parseDuration(bad), bad).toBeUndefined();
  });

  it('moves dates by the calendar, clamping to the month end', () => {
    const d = (s: string) => parseIsoDate(s)!;
    expect(isoOfDay(addDuration(d('2024-03-31'), { n: 1, unit: 'mo' }, -1))).toBe('2024-02-29');
    expect(isoOfDay(addDuration(d('2019-01-31'), { n: 1, unit: 'mo' }, 1))).toBe('2019-02-28');
    expect(isoOfDay(addDuration(d('2020-02-29'), { n: 1, unit: 'y' }, -1))).toBe('2019-02-28');
    expect(isoOfDay(addDuration(d('2019-01-01'), { n: 6, unit: 'mo' }, -1))).toBe('2018-07-01');
    expect(isoOfDay(addDuration(d('2019-01-01'), { n: 365, unit: 'd' }, -1))).toBe('2018-01-01');
    expect(isoOfDay(addDuration(d('2019-01-01'), { n: 2, unit: 'wk' }, 1))).toBe('2019-01-15');
    expect(isoOfDay(addDuration(d('2019-12-15'), { n: 25, unit: 'mo' }, 1))).toBe('2022-01-15');
  });

  it('reads ISO dates strictly, years 0-99 included', () => {
    expect(parseIsoDate('1970-01-02')).toBe(1);
    expect(parseIsoDate('2019-02-29')).toBeUndefined();
    expect(parseIsoDate('2020-02-29')).toBeDefined();
    expect(parseIsoDate('2019-13-01')).toBeUndefined();
    expect(parseIsoDate('2019-01-01T00:00:00Z')).toBeUndefined();
    expect(isoOfDay(dayNumber(50, 3, 1))).toBe('0050-03-01');
  });
});

describe('specViews', () => {
  it('compiles to ViewDefinitions without where(), with components and coded values only when used', () => {
    const spec = parseFeatureSpec(good, 's');
    const v = specViews(spec);
    expect(v.patient.resource).toBe('Patient');
    expect(v.observation.resource).toBe('Observation');
    expect(v.condition.resource).toBe('Condition');
    const text = JSON.stringify(v);
    expect(text).not.toContain('where');
    expect(text).toContain('"forEachOrNull":"component"');
    expect(text).toContain('value.ofType(CodeableConcept).coding');
    // Real views: the engine compiles each, and they give the rows the builder reads.
    for (const view of [v.patient, v.observation, v.condition]) expect(() => compileView(view, 'test')).not.toThrow();
    const rows = compileView(v.observation, 'test').run({
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '85354-9' }, { system: LOINC, code: '55284-4' }] },
      subject: { reference: 'Patient/p1' },
      effectivePeriod: { start: '2018-01-01T10:00:00Z' },
      component: [
        { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: { value: 120, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
        { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: { value: 80, code: 'mm[Hg]' } },
      ],
    });
    expect(rows).toHaveLength(4); // 2 codings × 2 components
    expect(rows[0]).toMatchObject({ patient: 'p1', id: 'o1', effective_period_start: '2018-01-01T10:00:00Z', code: '85354-9', component_code: '8480-6', component_value: 120, component_unit_code: 'mm[Hg]', value_code: null, quantity_value: null });
    const cond = compileView(v.condition, 'test').run({ resourceType: 'Condition', subject: { reference: 'urn:uuid:p1' }, code: { coding: [{ system: SCT, code: '1' }] }, recordedDate: '2010', verificationStatus: { coding: [{ code: 'refuted' }] } });
    expect(cond).toEqual([{ patient: 'p1', id: null, onset_date_time: null, onset_period_start: null, recorded_date: '2010', clinical_status: null, verification_status: 'refuted', code_system: SCT, code: '1' }]);
    const plain = specViews(parseFeatureSpec({ index: '2019-01-01', observations: [{ name: 'bmi', code: `${LOINC}|39156-5` }] }, 's'));
    expect(JSON.stringify(plain.observation)).not.toContain('component');
    expect(JSON.stringify(plain.observation)).not.toContain('CodeableConcept');
  });
});
