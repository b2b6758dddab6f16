/**
 * What an attacker review of the FHIR de-identifier found getting through, each planted and then
 * looked for in the de-identified JSON text: a pooled birth date that gave away the patient's date
 * offset, a birth time that gave back the age, free text in codes, URIs and element ids, whatever
 * surrounds the id in a reference, and ages kept as plain quantities.
 */
import { describe, expect, it } from 'vitest';
import type { Resource } from '../fhir/index.js';
import { daysFromCivil, parseFhirDate, shiftDate } from './dates.js';
import { Deidentifier } from './index.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'hex');
const OTHER_KEY = Buffer.alloc(32, 0x5a);
const NOW = new Date('2026-06-01T00:00:00Z');
const UCUM = 'http://unitsofmeasure.org';
const BIRTH_TIME = 'http://hl7.org/fhir/StructureDefinition/patient-birthTime';

// Test resources are loose JSON: their shapes vary per case.
type Json = any;

function deid(opts: { key?: Buffer; dates?: 'shift' | 'year' } = {}): Deidentifier {
  return new Deidentifier({ key: opts.key ?? KEY, now: NOW, ...(opts.dates ? { dates: opts.dates } : {}) });
}

function expectGone(out: unknown, planted: readonly string[]): string {
  const text = JSON.stringify(out);
  for (const s of planted) expect(text, `"${s}" survived`).not.toContain(s);
  return text;
}

/** Days between two FHIR dates (their date parts). */
function daysBetween(a: string, b: string): number {
  const x = parseFhirDate(a)!;
  const y = parseFhirDate(b)!;
  return daysFromCivil(y.year, y.month, y.day) - daysFromCivil(x.year, x.month, x.day);
}

/** Whole years from a day number to NOW. */
function ageAtNow(birthDay: number): number {
  const b = new Date(birthDay * 86_400_000);
  let age = NOW.getUTCFullYear() - b.getUTCFullYear();
  if (NOW.getUTCMonth() < b.getUTCMonth() || (NOW.getUTCMonth() === b.getUTCMonth() && NOW.getUTCDate() < b.getUTCDate())) age--;
  return age;
}

function oldPatient(id: string): Json {
  return {
    resourceType: 'Patient',
    id,
    birthDate: '1920-05-06',
    _birthDate: { extension: [{ url: BIRTH_TIME, valueDateTime: '1920-05-06T08:15:00-05:00' }] },
  };
}

describe('birth dates over 89', () => {
  it('pools to a year alone that depends on neither the patient, the key nor the offset', () => {
    const d = deid();
    const p = d.resource(oldPatient('pat-old-1') as Resource) as Json;
    const shift = d.shiftDays(p.id);
    // What the old rule wrote: 90 years before `now`, shifted by the patient's offset, to the day.
    const leaked = shiftDate('1936-06-01', shift)!;
    const text = expectGone(p, ['1920', leaked, leaked.slice(0, 7), BIRTH_TIME, '08:15']);
    expect(p.birthDate).toBe('1934');
    expect(p._birthDate).toBeUndefined();
    expect(text).not.toContain('_birthDate');
    // Another patient, another key, the year rule: the same value.
    expect((d.resource(oldPatient('pat-old-2') as Resource) as Json).birthDate).toBe('1934');
    expect((deid({ key: OTHER_KEY }).resource(oldPatient('pat-old-1') as Resource) as Json).birthDate).toBe('1934');
    expect((deid({ dates: 'year' }).resource(oldPatient('pat-old-1') as Resource) as Json).birthDate).toBe('1934');
    // Read as its 2 July and moved back by any offset, as the feature builder does, still 90 or more at `now`.
    for (const s of [-365, -1, 1, 365]) expect(ageAtNow(daysFromCivil(1934, 7, 2) - s), `offset ${s}`).toBeGreaterThanOrEqual(90);
  });

  it("pools a deceased patient at death, from the de-identified death date", () => {
    const d = deid();
    const p = d.resource({ ...oldPatient('pat-dead-1'), deceasedDateTime: '2015-03-10T10:00:00Z' } as Resource) as Json;
    // The old rule: 90 years before death, shifted.
    expectGone(p, ['1920', shiftDate('1925-03-10', d.shiftDays(p.id))!, '2015-03-10', BIRTH_TIME]);
    expect(daysBetween('2015-03-10', p.deceasedDateTime)).toBe(d.shiftDays(p.id));
    expect(p.birthDate).toBe(String(Number(p.deceasedDateTime.slice(0, 4)) - 91));
    const y = deid({ dates: 'year' }).resource({ ...oldPatient('pat-dead-1'), deceasedDateTime: '2015-03-10T10:00:00Z' } as Resource) as Json;
    expect(y).toEqual({ resourceType: 'Patient', id: expect.any(String), birthDate: '1924', deceasedDateTime: '2015' });
    // Died at 60: not pooled; birth and death keep their interval.
    const young = d.resource({ resourceType: 'Patient', id: 'pat-dead-2', birthDate: '1920-05-06', deceasedDateTime: '1980-05-07' } as Resource) as Json;
    expect(daysBetween(young.birthDate, young.deceasedDateTime)).toBe(daysBetween('1920-05-06', '1980-05-07'));
  });

  it('shifts a birth time with its birth date, and drops one that gives an age over 89', () => {
    const d = deid();
    const p = d.resource({
      resourceType: 'Patient',
      id: 'pat-young',
      birthDate: '1970-01-31',
      _birthDate: { id: 'bd-John-Smith', extension: [{ url: BIRTH_TIME, valueDateTime: '1970-01-31T23:30:00-05:00' }] },
    } as Resource) as Json;
    expectGone(p, ['1970-01-31', 'John-Smith']);
    const t = p._birthDate.extension[0];
    expect(t.url).toBe(BIRTH_TIME);
    expect(t.valueDateTime.slice(0, 10)).toBe(p.birthDate);
    expect(t.valueDateTime.slice(10)).toBe('T23:30:00-05:00');
    expect(daysBetween('1970-01-31', p.birthDate)).toBe(d.shiftDays(p.id));
    const y = deid({ dates: 'year' }).resource({ resourceType: 'Patient', id: 'pat-young', birthDate: '1970-01-31', _birthDate: { extension: [{ url: BIRTH_TIME, valueDateTime: '1970-01-31T23:30:00-05:00' }] } } as Resource) as Json;
    expect(y.birthDate).toBe('1970');
    expect(y._birthDate.extension[0].valueDateTime).toBe('1970');
    // A birth time that disagrees with a young birth date, or stands alone, is checked on its own.
    for (const r of [
      { resourceType: 'Patient', id: 'x', birthDate: '1970-01-31', _birthDate: { extension: [{ url: BIRTH_TIME, valueDateTime: '1921-02-03T04:05:06Z' }] } },
      { resourceType: 'Patient', id: 'x', _birthDate: { extension: [{ url: BIRTH_TIME, valueDateTime: '1921-02-03T04:05:06Z' }] } },
    ]) {
      const out = d.resource(r as Resource) as Json;
      expectGone(out, ['1921', '04:05:06']);
      expect(out._birthDate).toBeUndefined();
    }
  });
});

describe('free text in codes, URIs and ids', () => {
  it('drops open extension values, element ids and version ids; keeps structural codes and URIs', () => {
    const planted = ['john.smith', 'facebook.com', 'Smithers', '123-45-6789', 'John Smith', 'Main St', 'john-smith', 'Jane Doe', '1.2.3.4.5.6789', 'a1b2c3d4-0000-4000-8000-123456789abc', 'example.org/Smith'];
    const p = deid().resource({
      resourceType: 'Patient',
      id: 'pat-1',
      meta: {
        versionId: 'john-smith',
        profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
        tag: [{ system: 'http://example.org/tags', code: 'vip', display: "Jane Doe's chart" }],
        security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R', display: 'Jane Doe only' }],
      },
      extension: [
        { url: 'http://example.org/email', valueUri: 'mailto:john.smith@gmail.com' },
        { url: 'http://example.org/homepage', valueUrl: 'https://facebook.com/john.smith' },
        { url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueCode: 'Smithers' },
        { url: 'http://example.org/ssn', valueId: '123-45-6789' },
        { url: 'http://example.org/oid', valueOid: 'urn:oid:1.2.3.4.5.6789' },
        { url: 'http://example.org/uuid', valueUuid: 'urn:uuid:a1b2c3d4-0000-4000-8000-123456789abc' },
        { url: 'http://example.org/canonical', valueCanonical: 'http://example.org/Smith' },
        { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' },
        // A known extension with a code outside its value set.
        { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'Smithers' },
      ],
      identifier: [{ id: 'ssn-123-45-6789', system: 'http://hl7.org/fhir/sid/us-ssn', value: '123-45-6789' }],
      maritalStatus: { id: 'John Smith lives at 1 Main St', coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] },
      gender: 'female',
      _gender: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'asked-declined' }] },
      generalPractitioner: [{ reference: 'Practitioner/9', type: 'Practitioner' }],
    } as Resource) as Json;
    expectGone(p, planted);
    expect(p.meta).toEqual({
      profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
      tag: [{ system: 'http://example.org/tags', code: 'vip' }],
      security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
    });
    expect(p.extension).toEqual([{ url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' }]);
    expect(p.identifier).toEqual([{ system: 'http://hl7.org/fhir/sid/us-ssn', value: expect.any(String) }]);
    expect(p.maritalStatus).toEqual({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] });
    expect(p.gender).toBe('female');
    expect(p._gender.extension[0].valueCode).toBe('asked-declined');
    expect(p.generalPractitioner[0]).toEqual({ reference: expect.stringMatching(/^Practitioner\/[0-9a-f-]{36}$/), type: 'Practitioner' });
    // Elsewhere: a server's address, a link, a Parameters value.
    const e = deid().resource({ resourceType: 'Endpoint', id: 'e', status: 'active', address: 'https://facebook.com/john.smith', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' } } as Resource) as Json;
    expectGone(e, planted);
    expect(e.status).toBe('active');
    const q = deid().resource({ resourceType: 'Parameters', parameter: [{ name: 'x', valueCode: 'Smithers' }, { name: 'y', valueUri: 'mailto:john.smith@gmail.com' }, { name: 'z', valueInteger: 3 }] } as Resource) as Json;
    expectGone(q, planted);
    expect(q.parameter).toEqual([{ valueInteger: 3 }]);
  });

  it('keeps only coded, numeric and yes/no answers of a QuestionnaireResponse', () => {
    const d = deid();
    const planted = ['tel:', '555-0100', 'John Smith', 'Jane Doe', '1920-05-06', '1921', 'Patient/mother', 'jane.pdf', 'Nope'];
    const qr = d.resource({
      resourceType: 'QuestionnaireResponse',
      id: 'qr-1',
      status: 'completed',
      questionnaire: 'http://example.org/Questionnaire/intake',
      subject: { reference: 'Patient/pat-1' },
      item: [
        { linkId: 'phone', answer: [{ valueUri: 'tel:+1-555-0100' }] },
        { linkId: 'name', answer: [{ valueCoding: { system: 'http://example.org/names', code: 'John Smith', display: 'John Smith' } }, { valueCoding: { code: 'Nope' } }] },
        { linkId: 'mother', answer: [{ valueString: 'Jane Doe' }, { valueReference: { reference: 'Patient/mother', display: 'Jane Doe' } }, { valueAttachment: { contentType: 'application/pdf', title: 'jane.pdf' } }] },
        { linkId: 'dob', answer: [{ valueDate: '1920-05-06' }, { valueDateTime: '1921-01-01T00:00:00Z' }] },
        {
          linkId: 'smoker',
          answer: [
            { valueCoding: { system: 'http://loinc.org', code: 'LA33-6', display: 'Yes' } },
            { valueBoolean: true },
            { valueInteger: 3 },
            { valueDecimal: 1.5 },
            { valueQuantity: { value: 20, unit: 'cigarettes a day', system: UCUM, code: '/d' } },
          ],
        },
      ],
    } as Resource) as Json;
    expectGone(qr, planted);
    expect(qr.status).toBe('completed');
    expect(qr.questionnaire).toBe('http://example.org/Questionnaire/intake');
    const answers = qr.item.flatMap((i: Json) => i.answer ?? []);
    expect(answers).toEqual([
      { valueCoding: { system: 'http://loinc.org', code: 'LA33-6' } },
      { valueBoolean: true },
      { valueInteger: 3 },
      { valueDecimal: 1.5 },
      { valueQuantity: { value: 20, unit: '/d', system: UCUM, code: '/d' } },
    ]);
  });
});

describe('references', () => {
  it('rebuilds a reference from its type and pseudonymous id, and drops any other shape', () => {
    const d = deid();
    const pseudo9 = d.pseudonym('9');
    const refs: Array<[string, string | undefined]> = [
      ['https://ehr.example.org/JohnSmith-123-45-6789/Practitioner/9/_history/JohnSmithV2', `Practitioner/${pseudo9}`],
      ['Practitioner/9/_history/JohnSmithV2', `Practitioner/${pseudo9}`],
      ['Practitioner/9', `Practitioner/${pseudo9}`],
      ['urn:uuid:9', `urn:uuid:${pseudo9}`],
      ['urn:ssn:123-45-6789:x', undefined],
      ['urn:oid:2.16.840.1.113883.123456789', undefined],
      ['JohnSmith/Practitioner/9', undefined],
      ['ftp://JohnSmith/Practitioner/9', undefined],
      ['JohnSmith-123-45-6789', undefined],
      ['https://ehr.example.org/JohnSmith/_history/2', undefined],
      ['Practitioner/9/_history/JohnSmith/x', undefined],
    ];
    for (const [ref, want] of refs) {
      const out = d.resource({ resourceType: 'Observation', id: 'o', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '1-8' }] }, performer: [{ reference: ref, type: 'Practitioner' }] } as Resource) as Json;
      expectGone(out, ['JohnSmith', '123-45-6789', 'ehr.example.org', 'urn:ssn', 'urn:oid', '113883']);
      expect(out.performer, ref).toEqual([want === undefined ? { type: 'Practitioner' } : { reference: want, type: 'Practitioner' }]);
      expect(d.reference(ref), ref).toBe(want ?? '');
    }
  });

  it('keeps a Bundle joined whatever its fullUrls: urn:uuid stays urn:uuid, an absolute one becomes Type/id', () => {
    const d = deid();
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { fullUrl: 'https://ehr.example.org/JohnSmith/fhir/Patient/p1', resource: { resourceType: 'Patient', id: 'p1', birthDate: '1970-01-31' } },
        { fullUrl: 'urn:uuid:o1', resource: { resourceType: 'Observation', id: 'o1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '1-8' }] }, subject: { reference: 'https://ehr.example.org/JohnSmith/fhir/Patient/p1' }, effectiveDateTime: '2020-03-01' } },
        { fullUrl: 'urn:oid:1.2.3.JohnSmith', resource: { resourceType: 'Basic', id: 'b1', code: { coding: [{ system: 'http://example.org', code: 'x' }] }, subject: { reference: 'urn:uuid:o1' } } },
      ],
    };
    const out = d.resource(bundle as Resource) as Json;
    expectGone(out, ['JohnSmith', 'ehr.example.org', 'urn:oid']);
    const [p, o, b] = out.entry;
    expect(p.fullUrl).toBe(`Patient/${p.resource.id}`);
    expect(o.resource.subject.reference).toBe(p.fullUrl);
    expect(d.reference('https://ehr.example.org/JohnSmith/fhir/Patient/p1')).toBe(p.fullUrl);
    expect(o.fullUrl).toBe(`urn:uuid:${o.resource.id}`);
    expect(d.reference('urn:uuid:o1')).toBe(o.fullUrl);
    expect(b.fullUrl).toBeUndefined();
    expect(b.resource.subject.reference).toBe(o.fullUrl);
    // The Observation's dates still move with its patient's.
    expect(daysBetween(p.resource.birthDate, o.resource.effectiveDateTime)).toBe(daysBetween('1970-01-31', '2020-03-01'));
  });
});

describe('ages and units in quantities', () => {
  it('pools a time quantity over 89 years to 90 a, wherever it is', () => {
    const d = deid();
    const obs = (valueQuantity: Json): Json => ({
      resourceType: 'Observation',
      id: 'o',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '30525-0', display: 'Age' }] },
      subject: { reference: 'Patient/pat-1' },
      valueQuantity,
      extension: [{ url: 'http://example.org/age-at-onset', valueQuantity: { value: 103.0625, unit: 'a', system: UCUM, code: 'a' } }],
    });
    const pooled = { value: 90, unit: 'a', system: UCUM, code: 'a' };
    for (const q of [
      { value: 97.3125, unit: 'a', system: UCUM, code: 'a' },
      { value: 97.3125, comparator: '<', unit: 'yr' },
      { value: 1167.75, unit: 'mo', system: UCUM, code: 'mo' },
      { value: 5077.5, unit: 'wk', system: UCUM, code: 'wk' },
      { value: 35543.25, unit: 'd', system: UCUM, code: 'd' },
      { value: 97.3125, unit: 'Years' },
    ]) {
      const out = d.resource(obs(q) as Resource) as Json;
      expectGone(out, ['97.3125', '1167.75', '5077.5', '35543.25', '103.0625', 'Years']);
      expect(out.valueQuantity, JSON.stringify(q)).toEqual(pooled);
      expect(out.extension[0].valueQuantity).toEqual(pooled);
    }
    // 89 years, other units, and quantities that are not times stay as they are.
    for (const q of [
      { value: 89, unit: 'a', system: UCUM, code: 'a' },
      { value: 1000, unit: 'mo', system: UCUM, code: 'mo' },
      { value: 120, unit: 'mg/dL', system: UCUM, code: 'mg/dL' },
      { value: 5000, unit: 'constructor' },
    ]) {
      expect((d.resource(obs(q) as Resource) as Json).valueQuantity).toEqual(q);
    }
    // A reference range's ages (Range of SimpleQuantity): no comparator added.
    const r = d.resource({ ...obs({ value: 1 }), referenceRange: [{ age: { low: { value: 18, unit: 'a' }, high: { value: 120, unit: 'a', system: UCUM, code: 'a' } } }] } as Resource) as Json;
    expect(r.referenceRange[0].age).toEqual({ low: { value: 18, unit: 'a' }, high: pooled });
  });

  it('keeps a unit only as a UCUM code or a short word', () => {
    const d = deid();
    const obs = (valueQuantity: Json): Json => ({ resourceType: 'Observation', id: 'o', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity });
    const planted = ['nurse', 'Jane Doe', 'JaneDoeMeasuredThisOne'];
    const cases: Array<[Json, Json]> = [
      [{ value: 120, unit: 'mmHg (taken by nurse Jane Doe)', system: UCUM, code: 'mm[Hg]' }, { value: 120, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' }],
      [{ value: 120, unit: 'mmHg (taken by nurse Jane Doe)' }, { value: 120 }],
      [{ value: 120, unit: 'JaneDoeMeasuredThisOne', system: 'http://example.org/units', code: 'mmHg' }, { value: 120, system: 'http://example.org/units', code: 'mmHg' }],
      [{ value: 120, unit: 'mmHg' }, { value: 120, unit: 'mmHg' }],
    ];
    for (const [q, want] of cases) {
      const out = d.resource(obs(q) as Resource) as Json;
      expectGone(out, planted);
      expect(out.valueQuantity).toEqual(want);
    }
  });
});
