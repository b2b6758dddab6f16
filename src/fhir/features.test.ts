import { describe, it, expect } from 'vitest';
import { MedfitError } from '../core/index.js';
import { FeatureBuilder, MAX_BASIS, parseFhirDate, type FeatureTable } from './features.js';
import { isoOfDay, parseFeatureSpec } from './spec.js';
import type { FeatureSpec, Resource, ResourceItem } from './types.js';

const LOINC = 'http://loinc.org';
const SCT = 'http://snomed.info/sct';
const UCUM = 'http://unitsofmeasure.org';

const patient = (id: string, birthDate?: string, gender?: string): Resource => ({ resourceType: 'Patient', id, ...(birthDate ? { birthDate } : {}), ...(gender ? { gender } : {}) });

/** An Observation of glucose (2345-7) unless `extra` says otherwise (`loinc('…')`). */
function obs(id: string, pid: string, date: string | undefined, value?: number, unit = 'mg/dL', extra: Record<string, unknown> = {}): Resource {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: LOINC, code: '2345-7' }] },
    subject: { reference: `Patient/${pid}` },
    ...(date !== undefined ? { effectiveDateTime: date } : {}),
    ...(value !== undefined ? { valueQuantity: { value, unit, system: UCUM, code: unit } } : {}),
    ...extra,
  };
}

const loinc = (code: string) => ({ code: { coding: [{ system: LOINC, code }] } });

const bp = (id: string, pid: string, date: string, sys: number, dia: number): Resource => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: LOINC, code: '85354-9' }] },
  subject: { reference: `Patient/${pid}` },
  effectiveDateTime: date,
  component: [
    { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: { value: dia, unit: 'mmHg' } },
    { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: { value: sys, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } },
  ],
});

const smoking = (id: string, pid: string, date: string, sct: string): Resource => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: LOINC, code: '72166-2' }] },
  subject: { reference: `Patient/${pid}` },
  effectiveDateTime: date,
  valueCodeableConcept: { coding: [{ system: 'http://example.org/local', code: 'x' }, { system: SCT, code: sct }] },
});

const cond = (id: string, pid: string, code: string, onset: Record<string, unknown>, verification = 'confirmed'): Resource => ({
  resourceType: 'Condition',
  id,
  code: { coding: [{ system: SCT, code }] },
  subject: { reference: `Patient/${pid}` },
  verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: verification }] },
  ...onset,
});

function items(resources: Resource[], source = 'test.ndjson'): ResourceItem[] {
  return resources.map((resource, i) => ({ resource, source, where: `line ${i + 1}` }));
}

function build(spec: FeatureSpec, resources: Resource[] | ResourceItem[], options: ConstructorParameters<typeof FeatureBuilder>[1] = {}): FeatureTable {
  const b = new FeatureBuilder(spec, options);
  const list = resources.length && 'resourceType' in resources[0]! ? items(resources as Resource[]) : (resources as ResourceItem[]);
  for (const it of list) b.add(it);
  return b.finish();
}

function failure(fn: () => unknown): MedfitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('expected a failure');
}

/** A column of a table by name. */
const column = (t: FeatureTable, name: string) => t.rows.map((r) => r[t.columns.indexOf(name)]);

const spec = (s: object) => parseFeatureSpec(s, 'spec.json');

describe('FeatureBuilder: Observation aggregates and windows', () => {
  const s = spec({
    index: '2019-01-01',
    patient: { age: false, sex: false },
    observations: [
      { name: 'last', code: `${LOINC}|2345-7` },
      { name: 'first', code: `${LOINC}|2345-7`, agg: 'first' },
      { name: 'mean', code: `${LOINC}|2345-7`, agg: 'mean' },
      { name: 'min', code: `${LOINC}|2345-7`, agg: 'min' },
      { name: 'max', code: `${LOINC}|2345-7`, agg: 'max' },
      { name: 'count', code: `${LOINC}|2345-7`, agg: 'count' },
      { name: 'count365', code: `${LOINC}|2345-7`, agg: 'count', within: '365d' },
      { name: 'last6mo', code: `${LOINC}|2345-7`, within: '6mo' },
    ],
  });

  it('aggregates the values dated at or before the index date', () => {
    const t = build(s, [
      patient('a'),
      patient('b'),
      obs('1', 'a', '2017-05-01', 90),
      obs('2', 'a', '2018-12-31T23:59:59Z', 110),
      obs('3', 'a', '2019-01-01', 100), // on the index date: in
      obs('4', 'a', '2019-01-02', 500), // after: out
      obs('5', 'a', '2018-01-01', 80), // 365d before: the window's open start, out of count365
      obs('6', 'a', '2018-01-02', 120), // in count365
      obs('7', 'a', '2018-07-01', 95), // 6mo before: out of last6mo, but 2018-07-02 is in
    ]);
    expect(t.columns).toEqual(['patient', 'last', 'first', 'mean', 'min', 'max', 'count', 'count365', 'last6mo']);
    expect(t.rows[0]).toEqual(['a', 100, 90, (90 + 110 + 100 + 80 + 120 + 95) / 6, 80, 120, 6, 4, 100]);
    expect(t.rows[1]).toEqual(['b', null, null, null, null, null, 0, 0, null]);
  });

  it('orders values within a day by their instant, zones included, and breaks ties by the larger value', () => {
    const t = build(s, [
      patient('a'),
      obs('1', 'a', '2018-06-01T10:00:00+02:00', 1), // 08:00Z
      obs('2', 'a', '2018-06-01T09:00:00Z', 2), // later
      obs('3', 'a', '2018-06-01', 3), // midnight: earliest
    ]);
    expect(t.rows[0]!.slice(1, 3)).toEqual([2, 3]);
    const tie = build(s, [patient('a'), obs('1', 'a', '2018-06-01T09:00:00Z', 5), obs('2', 'a', '2018-06-01T10:00:00+01:00', 7), obs('3', 'a', '2018-06-01T09:00:00Z', 6)]);
    expect(tie.rows[0]!.slice(1, 3)).toEqual([7, 7]);
    const tie2 = build(s, [patient('a'), obs('2', 'a', '2018-06-01T10:00:00+01:00', 7), obs('1', 'a', '2018-06-01T09:00:00Z', 5)]);
    expect(tie2.rows[0]!.slice(1, 3)).toEqual([7, 7]);
  });

  it('takes the first date present: effectiveDateTime, effectiveInstant, effectivePeriod.start, issued', () => {
    const t = build(s, [
      patient('a'),
      obs('1', 'a', undefined, 1, 'mg/dL', { effectivePeriod: { start: '2018-03-01', end: '2019-06-01' } }),
      obs('2', 'a', undefined, 2, 'mg/dL', { effectiveInstant: '2018-02-01T00:00:00Z', issued: '2019-06-01T00:00:00Z' }),
      obs('3', 'a', undefined, 3, 'mg/dL', { issued: '2018-01-01T00:00:00Z' }),
      obs('4', 'a', undefined, 4, 'mg/dL', { issued: '2019-02-01T00:00:00Z' }), // released after the index date: out
      obs('5', 'a', undefined, 5), // no date at all: skipped
    ]);
    expect(column(t, 'count')).toEqual([3]);
    expect(column(t, 'last')).toEqual([1]);
    expect(column(t, 'first')).toEqual([3]);
  });

  it('counts a partial date as its last day, so it never leaks past the index date', () => {
    const t = build(spec({ index: '2019-06-30', patient: { age: false, sex: false }, observations: [{ name: 'n', code: `${LOINC}|2345-7`, agg: 'count' }] }), [
      patient('a'),
      obs('1', 'a', '2019-06', 1), // ends 2019-06-30: in
      obs('2', 'a', '2019', 1), // ends 2019-12-31: out
      obs('3', 'a', '2018', 1), // in
      obs('4', 'a', '2019-07', 1), // out
    ]);
    expect(t.rows[0]).toEqual(['a', 2]);
  });

  it('skips entered-in-error and cancelled Observations, and values that are not Quantities', () => {
    const t = build(s, [
      patient('a'),
      obs('1', 'a', '2018-01-05', 10, 'mg/dL', { status: 'entered-in-error' }),
      obs('2', 'a', '2018-01-05', 20, 'mg/dL', { status: 'cancelled' }),
      obs('3', 'a', '2018-01-05', 30, 'mg/dL', { status: 'amended' }),
      obs('4', 'a', '2018-01-06', undefined, 'mg/dL', { valueString: '40' }),
    ]);
    expect(column(t, 'count')).toEqual([2]); // count needs no value
    expect(column(t, 'max')).toEqual([30]);
    expect(column(t, 'last')).toEqual([30]);
  });

  it('counts an Observation once even when several of its codings match', () => {
    const two = obs('1', 'a', '2018-01-05', 10);
    (two.code as { coding: unknown[] }).coding.push({ system: LOINC, code: '2345-7' }, { system: 'http://example.org', code: 'glu' });
    const t = build(spec({ index: '2019-01-01', patient: { age: false, sex: false }, observations: [{ name: 'n', code: [`${LOINC}|2345-7`, 'http://example.org|glu'], agg: 'count' }] }), [patient('a'), two]);
    expect(t.rows[0]).toEqual(['a', 1]);
  });

  it('skips Observations about something other than a Patient, and resource types the spec does not use', () => {
    const t = build(s, [
      patient('a'),
      { ...obs('1', 'a', '2018-01-05', 10), subject: { reference: 'Group/g1' } },
      { ...obs('2', 'a', '2018-01-05', 10), subject: undefined },
      { resourceType: 'Encounter', id: 'e', subject: { reference: 'Patient/nobody' } },
      cond('c', 'nobody', '1', { onsetDateTime: '2018-01-01' }), // no condition in the spec: not read
    ]);
    expect(column(t, 'count')).toEqual([0]);
  });
});

describe('FeatureBuilder: components, coded values, units', () => {
  it('reads a component (systolic blood pressure) and converts display units', () => {
    const s = spec({
      index: '2019-01-01',
      patient: { age: false, sex: false },
      observations: [
        { name: 'sbp', code: [`${LOINC}|85354-9`, `${LOINC}|55284-4`], component: `${LOINC}|8480-6` },
        { name: 'dbp_kpa', code: [`${LOINC}|85354-9`], component: `${LOINC}|8462-4`, unit: 'kPa', agg: 'max' },
        { name: 'bp_count', code: [`${LOINC}|85354-9`], agg: 'count' },
      ],
    });
    const t = build(s, [patient('a'), bp('1', 'a', '2018-03-01', 120, 80), bp('2', 'a', '2018-04-01', 135, 75), bp('3', 'a', '2019-03-01', 180, 110)]);
    expect(t.rows[0]![1]).toBe(135);
    expect(t.rows[0]![2]).toBeCloseTo(80 * 0.133322, 9);
    expect(t.rows[0]![3]).toBe(2); // an Observation without a value is still counted once by count
  });

  it('maps coded values by their system|code and leaves unmapped codes out', () => {
    const s = spec({
      index: '2019-01-01',
      patient: { age: false, sex: false },
      observations: [{ name: 'smoking', code: `${LOINC}|72166-2`, values: { [`${SCT}|266919005`]: 0, [`${SCT}|8517006`]: 1, [`${SCT}|449868002`]: 2 } }],
    });
    const t = build(s, [patient('a'), patient('b'), smoking('1', 'a', '2017-01-01', '449868002'), smoking('2', 'a', '2018-01-01', '8517006'), smoking('3', 'b', '2018-01-01', '266927001')]);
    expect(t.rows).toEqual([['a', 1], ['b', null]]);
  });

  it('converts every value to the feature unit, mass ↔ substance by molar mass', () => {
    const s = spec({ index: '2019-01-01', patient: { age: false, sex: false }, observations: [{ name: 'glucose', code: `${LOINC}|2345-7`, agg: 'mean', unit: 'mmol/L' }] });
    const t = build(s, [patient('a'), obs('1', 'a', '2018-01-01', 5, 'mmol/L'), obs('2', 'a', '2018-01-02', 180.156, 'mg/dL'), obs('3', 'a', '2018-01-03', 1.80156, 'g/L')]);
    expect(t.rows[0]![1]).toBeCloseTo((5 + 10 + 10) / 3, 12);
  });

  it('uses the first unit seen when the spec names none', () => {
    const s = spec({ index: '2019-01-01', patient: { age: false, sex: false }, observations: [{ name: 'w', code: `${LOINC}|29463-7`, agg: 'max' }] });
    const t = build(s, [patient('a'), obs('1', 'a', '2018-01-01', 70, 'kg', loinc('29463-7')), obs('2', 'a', '2018-01-02', 176.37, '[lb_av]', loinc('29463-7'))]);
    expect(t.rows[0]![1]).toBeCloseTo(176.37 * 0.45359237, 9);
  });

  it('refuses a unit that cannot be converted, naming source, place, code and unit but not the value', () => {
    const s = spec({ index: '2019-01-01', patient: { age: false, sex: false }, observations: [{ name: 'hb', code: `${LOINC}|718-7`, unit: 'g/dL' }] });
    const e = failure(() => build(s, [patient('a'), obs('1', 'a', '2018-01-01', 13.5, 'g/dL', loinc('718-7')), obs('2', 'a', '2018-01-02', 8.37, 'mmol/L', loinc('718-7'))]));
    expect(e.message).toBe('test.ndjson, line 3: a value of http://loinc.org|718-7 has the unit "mmol/L", which cannot be converted to "g/dL"');
    expect(e.message).not.toContain('8.37');
    const none = failure(() => build(s, [patient('a'), { ...obs('1', 'a', '2018-01-01', undefined, '', loinc('718-7')), valueQuantity: { value: 13.5 } }]));
    expect(none.message).toBe('test.ndjson, line 2: a value of http://loinc.org|718-7 has no unit, and the feature\'s unit is "g/dL"');
    // A value outside every window is never converted, so never refused.
    expect(() => build(s, [patient('a'), obs('1', 'a', '2020-01-01', 1, 'mmol/L', loinc('718-7'))])).not.toThrow();
  });
});

describe('FeatureBuilder: Patient columns', () => {
  const s = spec({ index: '2019-03-01', observations: [] });

  it('computes age in whole years at the index date, pools over 89 as 90, and maps gender to sex', () => {
    const t = build(s, [
      patient('birthday-today', '2000-03-01', 'female'),
      patient('birthday-tomorrow', '2000-03-02', 'male'),
      patient('leap', '2000-02-29', 'other'),
      patient('89', '1929-03-02', 'unknown'),
      patient('90', '1929-03-01'),
      patient('old', '1900-01-01', 'nonsense'),
      patient('year-only', '2000'), // as 2 July 2000
      patient('month-only', '2000-03'), // as 15 March 2000
      patient('unborn', '2019-03-02', 'female'),
      patient('no-birth'),
    ]);
    expect(t.columns).toEqual(['patient', 'age', 'sex']);
    expect(t.rows).toEqual([
      ['birthday-today', 19, 'female'],
      ['birthday-tomorrow', 18, 'male'],
      ['leap', 19, 'other'],
      ['89', 89, 'unknown'],
      ['90', 90, 'unknown'],
      ['old', 90, 'unknown'],
      ['year-only', 18, 'unknown'],
      ['month-only', 18, 'unknown'],
      ['unborn', null, 'female'],
      ['no-birth', null, 'unknown'],
    ]);
  });

  it('keeps Patients in the order read, and refuses one without an id or one that comes twice', () => {
    expect(build(s, [patient('z'), patient('a'), patient('m')]).rows.map((r) => r[0])).toEqual(['z', 'a', 'm']);
    expect(failure(() => build(s, [patient('a'), patient('b'), patient('a')])).message).toBe('test.ndjson, line 3: a second Patient with the same id: each patient must come once');
    expect(failure(() => build(s, [{ resourceType: 'Patient' }])).message).toMatch(/^test\.ndjson, line 1: a Patient without an id/);
  });

  it('gives a Patient without an id the key of its Bundle fullUrl', () => {
    const b = new FeatureBuilder(spec({ index: '2019-01-01', patient: { age: false }, observations: [{ name: 'n', code: `${LOINC}|1-1`, agg: 'count' }] }));
    b.add({ resource: { resourceType: 'Patient', gender: 'male' }, source: 'b.json', where: 'entry 1', fullUrl: 'urn:uuid:abc' });
    b.add({ resource: { ...obs('', 'x', '2018-01-01', 1, 'mg/dL', loinc('1-1')), id: undefined, subject: { reference: 'urn:uuid:abc' } }, source: 'b.json', where: 'entry 2', fullUrl: 'urn:uuid:o1' });
    expect(b.finish().rows).toEqual([['abc', 'male', 1]]);
  });
});

describe('FeatureBuilder: Conditions and labels', () => {
  const s = spec({
    index: '2019-01-01',
    patient: { age: false, sex: false },
    conditions: [
      { name: 'diabetes', codes: [`${SCT}|44054006`, `${SCT}|46635009`] },
      { name: 'diabetes_onset', codes: [`${SCT}|44054006`, `${SCT}|46635009`], as: 'onset' },
    ],
    label: { name: 'htn', condition: { codes: [`${SCT}|38341003`] }, within: '1y' },
  });

  it('flags conditions with onset at or before the index date and labels those after it', () => {
    const t = build(s, [
      patient('a'),
      patient('b'),
      patient('c'),
      patient('d'),
      cond('1', 'a', '46635009', { onsetDateTime: '2015-06-01T10:00:00Z' }),
      cond('2', 'a', '44054006', { onsetPeriod: { start: '2012-02-03' } }),
      cond('3', 'a', '38341003', { onsetDateTime: '2019-01-01' }), // on the index date: not the label
      cond('4', 'b', '44054006', { onsetDateTime: '2019-01-02' }), // after: not a feature
      cond('5', 'b', '38341003', { onsetDateTime: '2020-01-01' }), // the label window's end: in
      cond('6', 'c', '38341003', { onsetDateTime: '2020-01-02' }), // past it
      cond('7', 'c', '44054006', { onsetString: 'childhood', recordedDate: '2010-05-05' }), // recordedDate stands in
      cond('8', 'd', '44054006', { onsetDateTime: '2010-01-01' }, 'refuted'),
      cond('9', 'd', '44054006', { onsetDateTime: '2010-01-01' }, 'entered-in-error'),
      { ...cond('10', 'd', '44054006', { onsetDateTime: '2011-01-01' }), clinicalStatus: { coding: [{ code: 'resolved' }] } }, // history counts
      cond('11', 'd', '38341003', {}), // no date: skipped
    ]);
    expect(t.columns).toEqual(['patient', 'diabetes', 'diabetes_onset', 'htn']);
    expect(t.rows).toEqual([
      ['a', 1, '2012-02-03', 0],
      ['b', 0, null, 1],
      ['c', 1, '2010-05-05', 0],
      ['d', 1, '2011-01-01', 0],
    ]);
  });

  it('labels by an Observation threshold: 1 above, 0 below, null without a value in the window', () => {
    const ls = spec({
      index: '2019-01-01',
      patient: { age: false, sex: false },
      observations: [{ name: 'a1c', code: `${LOINC}|4548-4`, unit: '%' }],
      label: { name: 'high_a1c', observation: { code: `${LOINC}|4548-4`, unit: '%', above: 6.5 }, within: '6mo' },
    });
    const t = build(ls, [
      patient('a'),
      patient('b'),
      patient('c'),
      patient('d'),
      obs('1', 'a', '2018-12-01', 6.0, '%', loinc('4548-4')),
      obs('2', 'a', '2019-03-01', 7.0, '%', loinc('4548-4')),
      obs('3', 'b', '2019-01-01', 9.0, '%', loinc('4548-4')), // on the index date: a feature, not the label
      obs('4', 'b', '2019-02-01', 6.5, '%', loinc('4548-4')), // not strictly above
      obs('5', 'c', '2019-07-02', 9.0, '%', loinc('4548-4')), // past the window (ends 2019-07-01)
      obs('6', 'd', '2019-07-01', 58, 'mmol/mol', loinc('4548-4')), // IFCC 58 mmol/mol = 7.46 %
    ]);
    expect(t.rows).toEqual([
      ['a', 6, 1],
      ['b', 9, 0],
      ['c', null, null],
      ['d', null, 1],
    ]);
    const below = spec({ index: '2019-01-01', patient: { age: false }, label: { name: 'low', observation: { code: `${LOINC}|2345-7`, unit: 'mmol/L', below: 3.9 }, within: '30d' } });
    expect(build(below, [patient('a'), obs('1', 'a', '2019-01-10', 60, 'mg/dL'), patient('b'), obs('2', 'b', '2019-01-10', 90, 'mg/dL')]).rows).toEqual([
      ['a', 'unknown', 1],
      ['b', 'unknown', 0],
    ]);
  });
});

describe('FeatureBuilder: order, references, dates', () => {
  const s = spec({
    index: '2019-01-01',
    observations: [
      { name: 'glu', code: `${LOINC}|2345-7`, agg: 'mean', within: '2y', unit: 'mg/dL' },
      { name: 'last_glu', code: `${LOINC}|2345-7`, unit: 'mg/dL' },
      { name: 'sbp', code: `${LOINC}|85354-9`, component: `${LOINC}|8480-6`, agg: 'max', within: '1y' },
    ],
    conditions: [{ name: 'dm', codes: [`${SCT}|44054006`] }, { name: 'dm_onset', codes: [`${SCT}|44054006`], as: 'onset' }],
    label: { name: 'htn', condition: { codes: [`${SCT}|38341003`] }, within: '18mo' },
  });
  const resources = (): Resource[] => [
    patient('p1', '1960-02-29', 'female'),
    obs('o1', 'p1', '2017-03-01T08:00:00-05:00', 100),
    obs('o2', 'p1', '2018-12-31', 5.6, 'mmol/L'),
    bp('o3', 'p1', '2018-06-01T12:00:00Z', 141, 90),
    cond('c1', 'p1', '44054006', { onsetDateTime: '2016-02-29' }),
    cond('c2', 'p1', '38341003', { onsetDateTime: '2020-06-30' }),
    patient('p2', '1990-12-31', 'male'),
    obs('o4', 'p2', '2018-01-01', 90),
    bp('o5', 'p2', '2018-01-02', 120, 70),
    bp('o6', 'p2', '2017-12-31', 150, 70), // 366 days before: out of the 1y window
    cond('c3', 'p2', '38341003', { onsetDateTime: '2020-07-02' }), // 18mo ends 2020-07-01: out
  ];

  it('gives the same table whatever the order of the resources (bulk export: Observations first)', () => {
    const base = build(s, resources());
    expect(base.rows[0]).toEqual(['p1', 58, 'female', expect.closeTo((100 + 5.6 * 18.0156) / 2, 10), expect.closeTo(5.6 * 18.0156, 10), 141, 1, '2016-02-29', 1]);
    expect(base.rows[1]).toEqual(['p2', 28, 'male', 90, 90, 120, 0, null, 0]);
    const rs = resources();
    const patientsLast = [...rs.filter((r) => r.resourceType !== 'Patient'), ...rs.filter((r) => r.resourceType === 'Patient')];
    expect(build(s, patientsLast)).toEqual(base);
    const reversed = [...rs].reverse();
    const t = build(s, reversed);
    expect(t.rows).toEqual([...base.rows].reverse());
  });

  it('gives the same table when one patient\'s dates and the index are shifted by the same offset', () => {
    const base = build(s, resources());
    for (const shift of [-1234, 365, -1, 29]) {
      const shifted = resources().map((r) => (r.id === 'p1' || JSON.stringify(r).includes('Patient/p1') ? shiftDates(r, shift) : r));
      const t = build(s, shifted, { shiftDays: (key) => (key === 'p1' ? shift : 0) });
      const onset = t.columns.indexOf('dm_onset');
      expect(t.rows[0]![onset]).toBe(shiftIso('2016-02-29', shift)); // the onset stays in the data's (shifted) dates
      const withoutOnset = (x: FeatureTable) => x.rows.map((r) => r.filter((_, i) => i !== onset));
      expect(withoutOnset(t)).toEqual(withoutOnset(base));
      // Without telling the builder, the shifted data gives other answers (the test can fail).
      if (Math.abs(shift) > 300) expect(withoutOnset(build(s, shifted))).not.toEqual(withoutOnset(base));
    }
  });

  it('refuses a resource that refers to a Patient not in the input, naming the first such resource and no id', () => {
    const rs = resources().filter((r) => r.id !== 'p2');
    const e = failure(() => build(s, [...rs.slice(0, 3), obs('x', 'ghost-99', '2018-01-01', 1), ...rs.slice(3)]));
    expect(e.message).toBe('test.ndjson, line 4: refers to Patient that is not in the input');
    expect(e.message).not.toContain('ghost');
    expect(failure(() => build(s, rs)).message).toBe('test.ndjson, line 7: refers to Patient that is not in the input'); // p2's first Observation
    // An Observation the spec has no use for still counts: its Patient must be there.
    const e2 = failure(() => build(s, [patient('a'), obs('x', 'ghost', '2018-01-01', 1, 'kg', loinc('29463-7'))]));
    expect(e2.message).toBe('test.ndjson, line 2: refers to Patient that is not in the input');
  });

  it('refuses unparseable dates, naming the element and not the value', () => {
    const bad = (r: Resource) => failure(() => build(s, [patient('a'), r])).message;
    expect(bad(obs('1', 'a', '2018-13-01', 1))).toBe('test.ndjson, line 2: effectiveDateTime is not a FHIR date or dateTime');
    expect(bad(obs('1', 'a', undefined, 1, 'mg/dL', { effectivePeriod: { start: '01/02/2018' } }))).toBe('test.ndjson, line 2: effectivePeriod.start is not a FHIR date or dateTime');
    expect(bad(obs('1', 'a', undefined, 1, 'mg/dL', { issued: '2018-02-30T00:00:00Z' }))).toBe('test.ndjson, line 2: issued is not a FHIR date or dateTime');
    expect(bad(cond('1', 'a', '44054006', { onsetDateTime: '2018-1-1' }))).toBe('test.ndjson, line 2: onsetDateTime is not a FHIR date or dateTime');
    expect(bad(cond('1', 'a', '44054006', { recordedDate: 'yesterday' }))).toBe('test.ndjson, line 2: recordedDate is not a FHIR date or dateTime');
    expect(failure(() => build(s, [patient('a', '1990-02-30')])).message).toBe('test.ndjson, line 1: birthDate is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)');
  });

  it('names the resource whose shape breaks the view (several values where one belongs)', () => {
    const broken = { ...obs('1', 'a', '2018-01-01', 1), valueQuantity: [{ value: 1, unit: 'mg/dL' }, { value: 2, unit: 'mg/dL' }] };
    const e = failure(() => build(s, [patient('a'), broken]));
    expect(e.message).toMatch(/^test\.ndjson, line 2: the Observation view of the feature spec: \/select\/0\/column\/\d+/);
  });

  it('keeps the basis of each row when asked: the resources its feature values came from', () => {
    const t = build(s, resources(), { basis: true });
    expect(t.basis).toEqual([
      ['Observation/o1', 'Observation/o2', 'Observation/o3', 'Condition/c1'],
      ['Observation/o4', 'Observation/o5'],
    ]);
    expect(build(s, resources()).basis).toEqual([[], []]);
  });

  it('takes the index date from the options (a prediction time), checked', () => {
    const t = build(s, resources(), { index: '2021-01-01' });
    expect(t.rows[0]!.slice(1, 5)).toEqual([60, 'female', null, expect.closeTo(5.6 * 18.0156, 10)]); // nothing in the 2 years before
    expect(t.rows[0]![t.columns.indexOf('htn')]).toBe(0);
    expect(failure(() => new FeatureBuilder(s, { index: '2021-02-30' })).message).toBe('parameter index: expected an ISO date YYYY-MM-DD that exists in the calendar');
  });
});

describe('parseFhirDate', () => {
  it('reads dates, dateTimes and instants by hand', () => {
    const ms = (s: string) => parseFhirDate(s, 'end')?.ms;
    expect(ms('2019-03-02T10:15:00-05:00')).toBe(Date.parse('2019-03-02T10:15:00-05:00'));
    expect(ms('2019-03-02T10:15:00.123456Z')).toBe(Date.parse('2019-03-02T10:15:00.123Z') + 0.456);
    expect(ms('2019-03-02T10:15Z')).toBe(Date.parse('2019-03-02T10:15:00Z'));
    expect(isoOfDay(parseFhirDate('2019-03-02T23:30:00-05:00', 'end')!.day)).toBe('2019-03-02'); // the date as written
    expect(isoOfDay(parseFhirDate('2019-02', 'end')!.day)).toBe('2019-02-28');
    expect(isoOfDay(parseFhirDate('2019-02', 'middle')!.day)).toBe('2019-02-15');
    expect(isoOfDay(parseFhirDate('2019', 'middle')!.day)).toBe('2019-07-02');
    for (const bad of ['', '201', '2019-', '2019-00', '2019-1', '2019-02-29', '2019-03-02T', '2019-03-02T25:00:00Z', '2019-03-02T10:15:00+5:00', '2019-03-02T10:15:00.Z', '2019-03-02 10:15', '2019-03-02T10:15:00Zjunk', '２０１９']) {
      expect(parseFhirDate(bad, 'end'), bad).toBeUndefined();
    }
  });
});

/** A resource with every date-like string moved by `days` (the test's own shifter, not the de-identifier's). */
function shiftDates(r: Resource, days: number): Resource {
  return JSON.parse(JSON.stringify(r), (_k, v: unknown) => (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v) ? shiftIso(v.slice(0, 10), days) + v.slice(10) : v)) as Resource;
}

function shiftIso(date: string, days: number): string {
  const t = new Date(`${date}T00:00:00Z`);
  t.setUTCDate(t.getUTCDate() + days);
  return t.toISOString().slice(0, 10);
}

describe('FeatureBuilder: hostile resources cost time linear in their size', () => {
  const s = spec({
    index: '2019-01-01',
    patient: { age: false, sex: false },
    observations: [
      { name: 'sbp', code: [`${LOINC}|85354-9`, `${LOINC}|55284-4`], component: `${LOINC}|8480-6` },
      { name: 'sbp_n', code: `${LOINC}|85354-9`, component: `${LOINC}|8480-6`, agg: 'count' },
      { name: 'bp_n', code: `${LOINC}|85354-9`, agg: 'count' },
      { name: 'smoker', code: `${LOINC}|72166-2`, values: { [`${SCT}|8517006`]: 1, [`${SCT}|266919005`]: 0 } },
    ],
  });
  const other = (i: number) => ({ system: 'http://example.org/other', code: `x${i}` });
  const many = (n: number, plus: object[]) => [...Array.from({ length: n }, (_, i) => other(i)), ...plus];

  it('an Observation of 2000 codings with a component of 2000 more: milliseconds, not seconds (no product is built)', () => {
    const bpCoding = { system: LOINC, code: '85354-9' };
    const sbpCoding = { system: LOINC, code: '8480-6' };
    const hostile: Resource = {
      resourceType: 'Observation',
      id: 'h1',
      status: 'final',
      code: { coding: [...Array.from({ length: 1000 }, () => bpCoding), ...many(1000, [])] },
      subject: { reference: 'Patient/a' },
      effectiveDateTime: '2018-06-01',
      component: [
        { code: { coding: many(1999, [sbpCoding]) }, valueQuantity: { value: 131, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } },
        { code: { coding: Array.from({ length: 2000 }, () => sbpCoding) }, valueQuantity: { value: 999, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } },
      ],
    };
    const coded: Resource = { ...smoking('h2', 'a', '2018-07-01', '8517006'), code: { coding: Array.from({ length: 2000 }, () => ({ system: LOINC, code: '72166-2' })) }, valueCodeableConcept: { coding: many(1999, [{ system: SCT, code: '8517006' }]) } };
    const started = performance.now();
    const t = build(s, [patient('a'), hostile, coded]);
    expect(performance.now() - started).toBeLessThan(1000); // about 8 s when the view expanded the product
    // The first component of the code, as for any Observation; one Observation counted once.
    expect(t.rows[0]).toEqual(['a', 131, 1, 1, 1]);
  });

  it('the pruned view input gives the table the whole one gives', () => {
    // Past the pruning threshold (duplicate and foreign codings, several components) and under it: the same values.
    const sbp = (id: string, date: string, extra: number, comps: Array<[string, number | undefined]>): Resource => ({
      resourceType: 'Observation',
      id,
      status: 'final',
      code: { coding: [{ system: LOINC, code: '85354-9' }, ...many(extra, [{ system: LOINC, code: '85354-9' }, { system: LOINC, code: '55284-4' }])] },
      subject: { reference: 'Patient/a' },
      effectiveDateTime: date,
      component: comps.map(([code, value]) => ({ code: { coding: many(extra, [{ system: LOINC, code }]) }, ...(value !== undefined ? { valueQuantity: { value, unit: 'mm[Hg]' } } : {}) })),
    });
    const comps: Array<[string, number | undefined]> = [['8462-4', 80], ['8480-6', undefined], ['8480-6', 120], ['8480-6', 125]];
    for (const extra of [0, 1, 30]) {
      const t = build(s, [patient('a'), sbp('1', '2018-01-01', extra, comps), sbp('2', '2018-02-01', extra, [['8462-4', 70]]), smoking('3', 'a', '2018-03-01', '266919005')]);
      expect(t.rows[0], `extra ${extra}`).toEqual(['a', 120, 1, 2, 0]);
    }
  });

  it('a megabyte Quantity.unit is never echoed in the error', () => {
    const g = spec({ index: '2019-01-01', patient: { age: false, sex: false }, observations: [{ name: 'glucose', code: `${LOINC}|2345-7` }] });
    const huge = `Zelda${'u'.repeat(1024 * 1024)}`;
    const big = obs('2', 'a', '2018-02-01', 1, 'mg/dL', { valueQuantity: { value: 1, unit: huge } });
    expect(failure(() => build(g, [patient('a'), obs('1', 'a', '2018-01-01', 1), big])).message).toBe(
      'test.ndjson, line 3: a value of http://loinc.org|2345-7 has a unit that is not UCUM (it is longer than 120 characters)',
    );
    // The first value's unit becomes the feature's: then it is the other unit of the message.
    expect(failure(() => build(g, [patient('a'), big, obs('1', 'a', '2018-01-01', 1)])).message).toBe(
      'test.ndjson, line 3: a value of http://loinc.org|2345-7 cannot be converted to a unit that is not UCUM (it is longer than 120 characters)',
    );
  });

  it('keeps at most MAX_BASIS references a row: the last value always, a seeded sample of a mean', () => {
    const m = spec({ index: '2019-01-01', patient: { age: false, sex: false }, observations: [{ name: 'mean', code: `${LOINC}|2345-7`, agg: 'mean' }, { name: 'last', code: `${LOINC}|4548-4` }] });
    const list: Resource[] = [patient('a')];
    for (let i = 0; i < 300; i++) list.push(obs(`g${i}`, 'a', `2018-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`, i, 'mg/dL'));
    list.push(obs('a1c-old', 'a', '2017-01-01', 5, '%', loinc('4548-4')), obs('a1c', 'a', '2018-01-01', 6, '%', loinc('4548-4')));
    const t = build(m, list, { basis: true });
    expect(t.rows[0]).toEqual(['a', 149.5, 6]);
    expect(t.basis[0]).toHaveLength(MAX_BASIS);
    expect(MAX_BASIS).toBe(100);
    expect(t.basis[0]).toContain('Observation/a1c');
    expect(t.basis[0]).not.toContain('Observation/a1c-old');
    expect(new Set(t.basis[0]).size).toBe(MAX_BASIS);
    for (const r of t.basis[0]!) expect(r).toMatch(/^Observation\/(g\d+|a1c)$/);
    // A sample, not the first hundred; the same one every time.
    expect(t.basis[0]!.some((r) => /^Observation\/g(1\d\d|2\d\d)$/.test(r))).toBe(true);
    expect(build(m, list, { basis: true }).basis).toEqual(t.basis);
  });
});
