import { describe, expect, it } from 'vitest';
import { isMedfitError } from '../core/index.js';
import type { Resource } from '../fhir/index.js';
import { daysFromCivil, parseFhirDate } from './dates.js';
import { Deidentifier } from './index.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'hex');
const OTHER_KEY = Buffer.alloc(32, 0x5a);
const NOW = new Date('2026-06-01T00:00:00Z');

// Test resources are loose JSON: their shapes vary per case.
type Json = any;

/** Identifiers planted below; none of them may survive de-identification. */
const PLANTED = [
  'Zebulon',
  'Quixotevski',
  'Aiko Jacobs',
  '742 Evergreen Terrace',
  'Quahogshire',
  'Coos County',
  '03601',
  '036',
  '603-555-0147',
  'zebulon@example.net',
  '078-05-1120',
  'MRN-ZQ-99817',
  'pat-zq-1',
  'enc-zq-7',
  'obs-zq-3',
  '1931-06-14',
  '1931',
  'lives alone with seven cats',
  'reports dizziness near the old quarry',
  'SN-DEV-4471',
  'https://photos.example.net/zq.jpg',
  'iVBORw0KGgo',
  '10.20.30.40',
  'Dr. Hibbert',
  'Springfield General',
  '42.534202',
  'free text from the clinician',
];

function patient(): Json {
  return {
    resourceType: 'Patient',
    id: 'pat-zq-1',
    meta: { lastUpdated: '2026-05-01T10:00:00.000Z', source: 'http://10.20.30.40/ehr' },
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Zebulon Quixotevski lives alone with seven cats</div>' },
    extension: [
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueString: 'Aiko Jacobs' },
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { city: 'Quahogshire', state: 'NH', country: 'US' } },
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'M' },
    ],
    identifier: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical Record Number' }], text: 'Medical Record Number' },
        system: 'http://hospital.example.org/mrn',
        value: 'MRN-ZQ-99817',
      },
      { system: 'http://hl7.org/fhir/sid/us-ssn', value: '078-05-1120' },
    ],
    name: [{ use: 'official', family: 'Quixotevski', given: ['Zebulon'], _given: [{ extension: [{ url: 'http://example.org/x', valueString: 'Zebulon' }] }] }],
    telecom: [
      { system: 'phone', value: '603-555-0147', use: 'home' },
      { system: 'email', value: 'zebulon@example.net' },
    ],
    gender: 'male',
    birthDate: '1931-06-14',
    address: [
      {
        extension: [
          {
            url: 'http://hl7.org/fhir/StructureDefinition/geolocation',
            extension: [
              { url: 'latitude', valueDecimal: 42.534202 },
              { url: 'longitude', valueDecimal: -70.969734 },
            ],
          },
        ],
        use: 'home',
        line: ['742 Evergreen Terrace'],
        city: 'Quahogshire',
        district: 'Coos County',
        state: 'NH',
        postalCode: '03601',
        country: 'US',
        text: '742 Evergreen Terrace, Quahogshire NH 03601',
        period: { start: '2001-02-03' },
      },
    ],
    photo: [{ contentType: 'image/jpeg', url: 'https://photos.example.net/zq.jpg', data: 'iVBORw0KGgo' }],
    contact: [{ name: { family: 'Hibbert', text: 'Dr. Hibbert' }, telecom: [{ system: 'phone', value: '603-555-0147' }], relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N' }] }] }],
    managingOrganization: { reference: 'Organization/org-1', display: 'Springfield General' },
    unknownVendorElement: 'free text from the clinician',
  };
}

function observation(): Json {
  return {
    resourceType: 'Observation',
    id: 'obs-zq-3',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '4548-4', display: 'Hemoglobin A1c' }], text: 'free text from the clinician' },
    subject: { reference: 'Patient/pat-zq-1', display: 'Zebulon Quixotevski' },
    encounter: { reference: 'Encounter/enc-zq-7' },
    effectiveDateTime: '2020-03-01T08:30:00-05:00',
    issued: '2020-03-02T09:00:00.000Z',
    valueQuantity: { value: 7.1, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
    note: [{ text: 'reports dizziness near the old quarry', authorString: 'Dr. Hibbert' }],
    device: { reference: 'Device/dev-1' },
    referenceRange: [{ low: { value: 4 }, age: { low: { value: 18, unit: 'a' } }, text: 'free text from the clinician' }],
  };
}

function encounter(): Json {
  return {
    resourceType: 'Encounter',
    id: 'enc-zq-7',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: 'Patient/pat-zq-1' },
    period: { start: '2020-03-01T08:00:00-05:00', end: '2020-03-01T09:15:00-05:00' },
    hospitalization: { preAdmissionIdentifier: { value: 'MRN-ZQ-99817' } },
  };
}

function device(): Json {
  return {
    resourceType: 'Device',
    id: 'dev-1',
    patient: { reference: 'Patient/pat-zq-1' },
    serialNumber: 'SN-DEV-4471',
    lotNumber: 'SN-DEV-4471',
    udiCarrier: [{ deviceIdentifier: 'SN-DEV-4471', carrierHRF: '(01)SN-DEV-4471', issuer: 'http://hl7.org/fhir/NamingSystem/gs1' }],
    url: 'http://10.20.30.40/pump',
    manufactureDate: '2019-01-01',
  };
}

function deid(opts: { key?: Buffer; dates?: 'shift' | 'year' } = {}): Deidentifier {
  return new Deidentifier({ key: opts.key ?? KEY, now: NOW, ...(opts.dates ? { dates: opts.dates } : {}) });
}

function expectNoneSurvive(out: unknown): void {
  const text = JSON.stringify(out);
  for (const s of PLANTED) expect(text, `"${s}" survived`).not.toContain(s);
}

/** Days between two FHIR dates (their date parts). */
function daysBetween(a: string, b: string): number {
  const x = parseFhirDate(a)!;
  const y = parseFhirDate(b)!;
  return daysFromCivil(y.year, y.month, y.day) - daysFromCivil(x.year, x.month, x.day);
}

describe('Deidentifier.resource', () => {
  it('leaves none of the planted identifiers in a Patient, an Observation, an Encounter or a Device', () => {
    const d = deid();
    for (const r of [patient(), observation(), encounter(), device()]) expectNoneSurvive(d.resource(r as Resource));
  });

  it('keeps what is not an identifier: codes, values, units, state, country, ZIP3, gender, coded extensions', () => {
    const p = deid().resource(patient() as Resource) as Json;
    expect(p.gender).toBe('male');
    expect(p.address).toEqual([{ use: 'home', state: 'NH', country: 'US', postalCode: '000', period: { start: expect.any(String) } }]);
    expect(p.extension).toEqual([
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { state: 'NH', country: 'US' } },
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'M' },
    ]);
    // The identifier's type text repeats its coding's display: a code-system term, kept.
    expect(p.identifier[0].type.text).toBe('Medical Record Number');
    expect(p.identifier.map((i: Json) => i.system)).toEqual(['http://hospital.example.org/mrn', 'http://hl7.org/fhir/sid/us-ssn']);
    for (const k of ['name', 'telecom', 'photo', 'text', 'unknownVendorElement']) expect(p[k], k).toBeUndefined();
    expect(p.contact).toEqual([{ relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N' }] }] }]);
    expect(p.managingOrganization).toEqual({ reference: expect.stringMatching(/^Organization\/[0-9a-f-]{36}$/) });
    expect(p.meta).toEqual({ lastUpdated: expect.any(String) });
    const o = deid().resource(observation() as Resource) as Json;
    expect(o.valueQuantity).toEqual({ value: 7.1, unit: '%', system: 'http://unitsofmeasure.org', code: '%' });
    expect(o.code).toEqual({ coding: [{ system: 'http://loinc.org', code: '4548-4', display: 'Hemoglobin A1c' }] });
    expect(o.note).toBeUndefined();
    expect(o.referenceRange).toEqual([{ low: { value: 4 }, age: { low: { value: 18, unit: 'a' } } }]);
    const dv = deid().resource(device() as Resource) as Json;
    expect(dv.udiCarrier).toEqual([{ issuer: 'http://hl7.org/fhir/NamingSystem/gs1' }]);
    for (const k of ['serialNumber', 'lotNumber', 'url']) expect(dv[k], k).toBeUndefined();
  });

  it('pseudonymises ids and references so that they still join, whatever the reference spelling', () => {
    const d = deid();
    const p = d.resource(patient() as Resource) as Json;
    const o = d.resource(observation() as Resource) as Json;
    const e = d.resource(encounter() as Resource) as Json;
    expect(p.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(o.subject).toEqual({ reference: `Patient/${p.id}` });
    expect(o.encounter).toEqual({ reference: `Encounter/${e.id}` });
    expect(d.reference('urn:uuid:pat-zq-1')).toBe(`urn:uuid:${p.id}`);
    // An absolute reference keeps its type and id only: no base URL, no version.
    expect(d.reference('https://ehr.example.org/fhir/Patient/pat-zq-1/_history/3')).toBe(`Patient/${p.id}`);
    // Identifier values join too (same kind), and differ from the id pseudonym of the same text.
    expect(e.hospitalization.preAdmissionIdentifier.value).toBe(p.identifier[0].value);
    expect(d.pseudonym('MRN-ZQ-99817', 'identifier')).toBe(p.identifier[0].value);
    expect(d.pseudonym('MRN-ZQ-99817', 'id')).not.toBe(p.identifier[0].value);
    // Unrecognised references are left out rather than passed through.
    expect(d.reference('Patient?name=Zebulon')).toBe('');
    expect(d.reference('not a reference')).toBe('');
    expect(d.reference('Organization?identifier=https://github.com/synthetichealth/synthea|abc')).toBe(
      `Organization?identifier=https://github.com/synthetichealth/synthea|${d.pseudonym('abc', 'identifier')}`,
    );
  });

  it('maps a Bundle: fullUrls, references, request urls and each entry with its own patient', () => {
    const d = deid();
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      timestamp: '2026-05-01T10:00:00Z',
      link: [{ relation: 'self', url: 'https://ehr.example.org/fhir/Patient?name=Zebulon' }],
      entry: [
        { fullUrl: 'urn:uuid:pat-zq-1', resource: { ...patient(), id: 'pat-zq-1' }, request: { method: 'POST', url: 'Patient' } },
        {
          fullUrl: 'urn:uuid:obs-zq-3',
          resource: { ...observation(), subject: { reference: 'urn:uuid:pat-zq-1' } },
          request: { method: 'PUT', url: 'Observation/obs-zq-3', ifNoneExist: 'identifier=http://x.org|MRN-ZQ-99817' },
        },
      ],
    };
    const before = JSON.stringify(bundle);
    const out = d.resource(bundle as Resource) as Json;
    expect(JSON.stringify(bundle)).toBe(before);
    expectNoneSurvive(out);
    expect(out.link).toBeUndefined();
    const [pe, oe] = out.entry;
    expect(pe.fullUrl).toBe(`urn:uuid:${pe.resource.id}`);
    expect(pe.request).toEqual({ method: 'POST', url: 'Patient' });
    expect(oe.resource.subject.reference).toBe(pe.fullUrl);
    expect(oe.request.url).toBe(`Observation/${oe.resource.id}`);
    expect(oe.request.ifNoneExist).toBe(`identifier=http://x.org|${d.pseudonym('MRN-ZQ-99817', 'identifier')}`);
    // The Observation's dates move with its patient's, not with the Bundle's.
    const alone = d.resource(observation() as Resource) as Json;
    expect(oe.resource.effectiveDateTime).toBe(alone.effectiveDateTime);
  });

  it("finds a Patient's offset through its Bundle fullUrl when that names another id", () => {
    const d = deid();
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { fullUrl: 'urn:uuid:full-url-id', resource: { resourceType: 'Patient', id: 'resource-id', birthDate: '1970-01-31' } },
        { fullUrl: 'urn:uuid:o1', resource: { resourceType: 'Observation', id: 'o1', status: 'final', code: { coding: [{ code: 'x' }] }, subject: { reference: 'urn:uuid:full-url-id' }, effectiveDateTime: '2020-03-01' } },
      ],
    };
    const out = d.resource(bundle as Resource) as Json;
    const [p, o] = [out.entry[0].resource, out.entry[1].resource];
    expect(daysBetween(p.birthDate, o.effectiveDateTime)).toBe(daysBetween('1970-01-31', '2020-03-01'));
    expect(out.entry[0].fullUrl).toBe(o.subject.reference);
  });

  it("shifts every date of a patient by the same offset: intervals, times of day, zones and precision kept", () => {
    const d = deid();
    const p = d.resource({ ...patient(), birthDate: '1970-01-31' } as Resource) as Json;
    const o = d.resource(observation() as Resource) as Json;
    const e = d.resource(encounter() as Resource) as Json;
    const dv = d.resource(device() as Resource) as Json;
    const days = d.shiftDays(p.id);
    expect(days).not.toBe(0);
    expect(Math.abs(days)).toBeLessThanOrEqual(365);
    expect(daysBetween('1970-01-31', p.birthDate)).toBe(days);
    expect(daysBetween('2020-03-01', o.effectiveDateTime)).toBe(days);
    expect(o.effectiveDateTime.slice(10)).toBe('T08:30:00-05:00');
    expect(o.issued.slice(10)).toBe('T09:00:00.000Z');
    expect(daysBetween('2020-03-02', o.issued)).toBe(days);
    expect(daysBetween('2001-02-03', p.address[0].period.start)).toBe(days);
    expect(p.address[0].period.start).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(e.period.end.slice(10)).toBe('T09:15:00-05:00');
    expect(daysBetween('2019-01-01', dv.manufactureDate)).toBe(days);
    expect(daysBetween(p.birthDate, o.effectiveDateTime)).toBe(daysBetween('1970-01-31', '2020-03-01'));
    expect(daysBetween('2026-05-01', p.meta.lastUpdated)).toBe(days);
    // Year-only and year-month values keep their precision.
    const q = d.resource({ resourceType: 'Condition', id: 'c1', subject: { reference: 'Patient/pat-zq-1' }, onsetDateTime: '2011', abatementDateTime: '2012-07' } as Resource) as Json;
    expect(q.onsetDateTime).toMatch(/^(2010|2011|2012)$/);
    expect(q.abatementDateTime).toMatch(/^\d{4}-\d{2}$/);
    expect(Math.abs(daysBetween('2012-07-15', `${q.abatementDateTime}-15`) - days)).toBeLessThanOrEqual(31);
  });

  it('derives the offset from the pseudonym alone, and shifts resources of no patient by one global offset', () => {
    const d = deid();
    const p = d.resource(patient() as Resource) as Json;
    expect(d.shiftDays(p.id)).toBe(deid().shiftDays(p.id));
    const org = d.resource({ resourceType: 'Organization', id: 'org-1', name: 'Springfield General', meta: { lastUpdated: '2020-01-01T00:00:00Z' } } as Resource) as Json;
    expect(org.name).toBeUndefined();
    expect(daysBetween('2020-01-01', org.meta.lastUpdated)).toBe(d.globalShiftDays);
    // Offsets spread over both sides of zero, never 0.
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) seen.add(Math.sign(d.shiftDays(`p${i}`)));
    expect([...seen].sort()).toEqual([-1, 1]);
  });

  it('pools a 95-year-old at 90: the birth date (and its year) no longer tells the age', () => {
    const d = deid();
    const p = d.resource(patient() as Resource) as Json;
    // A year alone, the same for everyone pooled, and not shifted (see fhir-leaks.test.ts).
    expect(p.birthDate).toBe('1934');
    const y = deid({ dates: 'year' }).resource(patient() as Resource) as Json;
    expect(y.birthDate).toBe('1934');
    const yearOnly = deid({ dates: 'year' }).resource({ ...patient(), birthDate: '1931' } as Resource) as Json;
    expect(yearOnly.birthDate).toBe('1934');
    // At death, not now: died at 92 in 2023 → 90 or more at death (2023 - 91).
    const dead = deid({ dates: 'year' }).resource({ ...patient(), deceasedDateTime: '2023-08-01' } as Resource) as Json;
    expect(dead.birthDate).toBe('1932');
    expect(dead.deceasedDateTime).toBe('2023');
    // 89 stays as it is.
    expect((deid({ dates: 'year' }).resource({ ...patient(), birthDate: '1937-01-01' } as Resource) as Json).birthDate).toBe('1937');
    // An Age over 89 becomes 90 or more, its unit the UCUM code.
    const c = d.resource({ resourceType: 'Condition', id: 'c', subject: { reference: 'Patient/pat-zq-1' }, onsetAge: { value: 93, unit: 'years', system: 'http://unitsofmeasure.org', code: 'a' } } as Resource) as Json;
    expect(c.onsetAge).toEqual({ value: 90, comparator: '>=', unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' });
    const m = d.resource({ resourceType: 'Condition', id: 'c', onsetAge: { value: 1100, code: 'mo' } } as Resource) as Json;
    expect(m.onsetAge).toEqual({ value: 90, comparator: '>=', unit: 'a', code: 'a', system: 'http://unitsofmeasure.org' });
  });

  it("cuts every date to the year under dates: 'year' and drops instants", () => {
    const d = deid({ dates: 'year' });
    const o = d.resource(observation() as Resource) as Json;
    expect(o.effectiveDateTime).toBe('2020');
    expect(o.issued).toBeUndefined();
    const e = d.resource(encounter() as Resource) as Json;
    expect(e.period).toEqual({ start: '2020', end: '2020' });
    expect(d.shiftDays('anything')).toBe(0);
  });

  it('gives the same pseudonyms under the same key and different ones under another', () => {
    const a = deid().resource(patient() as Resource) as Json;
    const b = deid().resource(patient() as Resource) as Json;
    const c = deid({ key: OTHER_KEY }).resource(patient() as Resource) as Json;
    expect(b).toEqual(a);
    expect(c.id).not.toBe(a.id);
    expect(c.identifier[0].value).not.toBe(a.identifier[0].value);
    expect(deid().pseudonym('x', 'id')).toBe(deid().pseudonym('x'));
    expect(deid().pseudonym('x', 'id')).not.toBe(deid().pseudonym('x', 'identifier'));
  });

  it('never changes its input', () => {
    const d = deid();
    for (const make of [patient, observation, encounter, device]) {
      const r = make();
      const before = JSON.stringify(r);
      const out = d.resource(r as Resource);
      expect(JSON.stringify(r)).toBe(before);
      expect(out).not.toBe(r);
    }
  });

  it('de-identifies contained resources with their container, and maps local references', () => {
    const d = deid();
    const eob = {
      resourceType: 'ExplanationOfBenefit',
      id: 'eob-1',
      patient: { reference: 'Patient/pat-zq-1' },
      created: '2020-03-01',
      contained: [{ resourceType: 'Coverage', id: 'coverage', beneficiary: { reference: 'Patient/pat-zq-1' }, subscriberId: 'MRN-ZQ-99817', period: { start: '2020-01-01' } }],
      insurance: [{ focal: true, coverage: { reference: '#coverage', display: 'Zebulon Quixotevski' } }],
    };
    const out = d.resource(eob as Resource) as Json;
    expectNoneSurvive(out);
    expect(out.insurance[0].coverage.reference).toBe(`#${out.contained[0].id}`);
    const days = d.shiftDays(d.pseudonym('pat-zq-1'));
    expect(daysBetween('2020-01-01', out.contained[0].period.start)).toBe(days);
  });

  it('refuses a date it cannot read, naming the element, never the value', () => {
    const d = deid();
    const bad = { ...observation(), component: [{ code: { coding: [{ code: 'x' }] } }, { code: { coding: [{ code: 'y' }] }, valuePeriod: { start: '01/03/2020 Zebulon' } }] };
    let err: unknown;
    try {
      d.resource(bad as Resource, 'obs.ndjson:4');
    } catch (e) {
      err = e;
    }
    expect(isMedfitError(err)).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toBe('obs.ndjson:4: /component/1/valuePeriod/start: not a valid FHIR dateTime');
    expect(msg).not.toContain('Zebulon');
    expect(() => d.resource({ resourceType: 'NotAType' } as Resource)).toThrow(/not an R4 resource type/);
    expect(() => d.resource({ id: 'x' } as unknown as Resource)).toThrow(/no resourceType/);
    expect(() => d.resource({ resourceType: 'Bundle', entry: [{ resource: { resourceType: 'Nope' } }] } as Resource, 'b.json')).toThrow('b.json: /entry/0/resource: not an R4 resource');
  });

  it('keeps a primitive\'s extensions only beside a kept primitive, and drops empty extensions', () => {
    const d = deid();
    const p = d.resource({
      resourceType: 'Patient',
      id: 'p',
      gender: 'unknown',
      _gender: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'asked-declined' }] },
      _birthDate: { extension: [{ url: 'http://example.org/note', valueString: 'Zebulon' }] },
    } as Resource) as Json;
    expect(p._gender).toEqual({ extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'asked-declined' }] });
    expect(p._birthDate).toBeUndefined();
  });

  it('refuses a resource nested past any real one without running out of stack', () => {
    let ext: Json = { url: 'http://example.org/leaf', valueCode: 'x' };
    for (let i = 0; i < 100_000; i++) ext = { url: 'http://example.org/n', extension: [ext] };
    expect(() => deid().resource({ resourceType: 'Basic', id: 'b', extension: [ext] } as Resource, 'deep.json')).toThrow(/deep\.json: .*nested more than 256 levels deep/);
    // A modest depth is fine.
    let ok: Json = { url: 'http://example.org/leaf', valueInteger: 7 };
    for (let i = 0; i < 50; i++) ok = { url: 'http://example.org/n', extension: [ok] };
    expect(JSON.stringify(deid().resource({ resourceType: 'Basic', id: 'b', extension: [ok] } as Resource))).toContain('"valueInteger":7');
  });

  it('refuses a short key and a bad date rule', () => {
    expect(() => new Deidentifier({ key: Buffer.alloc(16) })).toThrow(/at least 32 bytes/);
    expect(() => new Deidentifier({ key: KEY, dates: 'month' as 'year' })).toThrow(/shift/);
  });

  it('does not show its key when printed or serialised', () => {
    const d = deid();
    const text = JSON.stringify(d) + String(d);
    expect(text).not.toContain(KEY.toString('hex'));
    expect(Object.values(d).some((v) => Buffer.isBuffer(v))).toBe(false);
  });
});
