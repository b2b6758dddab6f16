import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, it, expect } from 'vitest';
import { isMedfitError } from '../../core/index.js';
import type { Resource, ViewRow } from '../types.js';
import { compileView } from './compile.js';
import { checkExpression, compileFhirpath, type Ast } from './expression.js';
import { compileFast, finalValue, type FastConstant, type StaticNode } from './fast-path.js';
import { parseJsonKeepingDecimals } from './json.js';

const SUITE = fileURLToPath(new URL('../../../test/fixtures/sql-on-fhir', import.meta.url));
const SYNTHEA = fileURLToPath(new URL('../../../test/fixtures/fhir/synthea', import.meta.url));

/**
 * Resources shaped like Synthea's (vital signs, a blood-pressure panel, a coded smoking status, a
 * patient, a condition), with the awkward corners of FHIR JSON added: primitives with `_value`
 * extensions, array items that are null, an element present only as `_value`, a decimal whose
 * precision matters, references of every form.
 */
const RESOURCES = parseJsonKeepingDecimals(`[
  {"resourceType": "Observation", "id": "o-height", "status": "final",
   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
   "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}], "text": "Body Height"},
   "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
   "effectiveDateTime": "2011-10-14T23:37:54+00:00", "issued": "2011-10-14T23:37:54.530+00:00",
   "valueQuantity": {"value": 176.35499866729558, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"},
   "meta": {"tag": [{"system": "https://smarthealthit.org/tags", "code": "synthea-5-2019"}]}},
  {"resourceType": "Observation", "id": "o-bp", "status": "final",
   "code": {"coding": [{"system": "http://loinc.org", "code": "55284-4"}, {"system": "http://loinc.org", "code": "85354-9"}]},
   "subject": {"reference": "Patient/p1/_history/3"}, "effectivePeriod": {"start": "2012-01-01T10:00:00Z"},
   "component": [
     {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120.0, "unit": "mm[Hg]", "code": "mm[Hg]"}},
     {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 80, "code": "mm[Hg]"}},
     {"code": {"coding": [null, {"system": "http://loinc.org", "code": "x"}]}, "valueString": "n/a"}]},
  {"resourceType": "Observation", "id": "o-smoke", "status": "final",
   "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}], "text": "Tobacco smoking status NHIS"},
   "subject": {"reference": "http://example.org/fhir/Patient/p2", "type": "Patient"},
   "effectiveInstant": "2013-05-05T10:00:00.000Z",
   "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "266919005", "display": "Never smoker"}], "text": "Never smoker"}},
  {"resourceType": "Observation", "id": "o-odd", "status": "final",
   "code": {"coding": [], "_text": {"extension": [{"url": "http://example.org/x", "valueString": "e"}]}},
   "subject": {"reference": "Group/g1"}, "_effectiveDateTime": {"extension": [{"url": "http://example.org/absent", "valueCode": "unknown"}]},
   "valueInteger": 7, "category": [null]},
  {"resourceType": "Observation", "id": "o-empty", "status": "final", "code": {"text": "nothing coded"}},
  {"resourceType": "Observation", "id": "o-underscored", "code": {"coding": [{"system": "s"}]}, "_code": {"text": "t"},
   "category": [{"coding": [{"code": "c1"}]}, {"coding": [{"code": "c2"}]}], "_category": [{"text": "ct"}, null, {"text": "extra"}]},
  {"resourceType": "Patient", "id": "p1", "active": true, "gender": "female", "birthDate": "1970-06-01",
   "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-06-01T10:00:00Z"}]},
   "name": [{"use": "official", "family": "Doe", "given": ["Jane", null, "Q"], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}, null]},
            {"use": "usual", "family": "Roe", "_family": {"extension": [{"url": "u", "valueString": "f"}]}, "given": ["J"]},
            {"_family": {"extension": [{"url": "u", "valueString": "only-extension"}]}}],
   "telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "a@b"}, {"system": "phone"}],
   "deceasedBoolean": false, "multipleBirthInteger": 2,
   "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}],
   "link": [{"other": {"reference": "Patient/p9"}, "type": "seealso"}, {"other": {"reference": "#c1"}, "type": "refer"}, {"other": {"identifier": {"value": "x"}}, "type": "refer"}]},
  {"resourceType": "Patient", "id": "p2", "gender": "male", "_gender": {"id": "g"}, "deceasedDateTime": "2020-01-01",
   "name": [{"given": ["A"], "family": "Ng"}], "_active": {"extension": []}},
  {"resourceType": "Patient", "name": []},
  {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:abc", "type": "Group"}, "onsetDateTime": "2001-02-03",
   "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}}
]`) as Resource[];

const CONSTANTS = new Map<string, FastConstant>([['sys', 'phone'], ['official', 'official'], ['n', 3], ['flag', true]]);

/** Expressions the fast path must take, by resource type, each compared with fhirpath on every resource of that type. */
const FAST: Record<string, string[]> = {
  Observation: [
    'subject.getReferenceKey(Patient)', 'subject.getReferenceKey(Group)', 'subject.getReferenceKey()', 'effective.ofType(dateTime)',
    'effective.ofType(instant)', 'effective.ofType(Period).start', 'effective.ofType(Period)', 'effective', 'effective.exists()',
    'value.ofType(Quantity).value', 'value.ofType(Quantity).unit', 'value.ofType(Quantity).code', 'value.ofType(Quantity)',
    'value.ofType(string)', 'value.ofType(integer)', 'value.ofType(Integer)', 'value.ofType(CodeableConcept).coding.code', 'value',
    'value.exists()', 'value.empty()', 'code.coding.system', 'code.coding.code.first()', 'code.coding[1].code', 'code.coding[0]',
    "code.coding.where(system = 'http://loinc.org').code", "code.coding.where(system = 'http://loinc.org' and code = '8302-2').exists()",
    "code.coding.where(system = 'x' or code = '8302-2').code", "code.coding.where((system = 'http://loinc.org')).code.first()",
    'component.code.coding.code', 'component.value.ofType(Quantity).value', 'component.value.ofType(string)', 'component.exists()',
    'component.empty()', 'category.coding.code', 'category.exists()', 'category', 'Observation.id', 'Observation.code.text', 'id',
    'status', 'issued', 'getResourceKey()', "'lit'", '%rowIndex', '%sys', '%n', '%flag', 'meta.tag.code', 'code.text',
    'code.text.exists()', 'code.coding.exists()', 'category.text', 'category[2].text', 'category.coding.code', 'code.coding.first().code', '$this.id', 'code.coding.system.first()',
  ],
  Patient: [
    'name.given', 'name.given.first()', 'name.given.exists()', 'name.given[1]', 'name.given[1].exists()', 'name.family',
    'name.family.exists()', 'name[2].family', 'name[2].family.exists()', 'birthDate', 'birthDate.exists()', 'gender',
    'gender.exists()', 'deceased.ofType(boolean)', 'deceased.ofType(dateTime)', 'deceased.ofType(date)', "name.where(use = 'official').family",
    'name.where(use = %official).given', 'telecom.where(system = %sys).value', 'telecom.where(system = %sys).value.first()',
    'link.other.getReferenceKey(Patient)', 'link.other.getReferenceKey()', 'extension.url', 'extension.value.ofType(code)',
    'identifier.value', 'active', 'active.exists()', 'multipleBirth.ofType(integer)', 'multipleBirth.ofType(boolean)', 'getResourceKey()',
    'name', 'telecom.system', "name.where(given = 'Jane').family", "name.where(given = 'J').family", "name.where(given = 'Q').use",
  ],
  Condition: ['subject.getReferenceKey(Patient)', 'subject.getReferenceKey(Group)', 'onset.ofType(dateTime)', 'clinicalStatus.coding.code.first()', 'code.coding.code'],
};

/** Expressions the fast path must leave to fhirpath. */
const SLOW = [
  "name.given.join(',')", "extension('http://x').value", 'value.ofType(FHIR.Quantity)', 'name.given.extension.url', 'name.count()',
  "name.where(use = 'official' xor family = 'x').family", 'name.where(family.exists()).given', 'name.given = %sys', 'contained.id',
  '(name.given | name.family)', 'birthDate = @1970-06-01', "telecom.where(value = 'x' and use.exists()).value",
  'Patient.name.given.select($this)', 'Organization.name', 'telecom[%n].value', 'getResourceKey().length()', 'value.ofType(Quantity).value > 1',
];

const vars = (resource: unknown, constants = CONSTANTS): Record<string, unknown> => ({ ...Object.fromEntries(constants), rowIndex: 0, resource, rootResource: resource });

const compiled = new Map<string, ReturnType<typeof compileFhirpath>>();
function fhirpathValues(text: string, resource: unknown, constants = CONSTANTS): unknown[] {
  let fn = compiled.get(text);
  if (!fn) compiled.set(text, (fn = compileFhirpath(text, false)));
  return fn(resource, vars(resource, constants));
}
const asts = new Map<string, Ast>();
function fastValues(text: string, focus: StaticNode, resource: unknown, constants = CONSTANTS): unknown[] | undefined {
  let ast = asts.get(text);
  if (!ast) {
    const problems: Array<{ pointer: string; message: string }> = [];
    ast = checkExpression(text, '/x', new Set(constants.keys()), problems);
    expect(problems).toEqual([]);
    asts.set(text, ast!);
  }
  const f = compileFast(ast!, focus, constants);
  if (!f) return undefined;
  const n = f.run(resource, null, { rowIndex: 0, fullUrl: undefined });
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) if (f.D[i] != null) out.push(finalValue(f.D[i]));
  return out;
}
const rootOf = (type: string): StaticNode => ({ path: type, type, root: true, resourceType: type });

describe('the fast path gives what fhirpath.js gives', () => {
  for (const [type, exprs] of Object.entries(FAST)) {
    it(`on ${type} resources, for ${exprs.length} expressions`, () => {
      const rs = RESOURCES.filter((r) => r.resourceType === type);
      expect(rs.length).toBeGreaterThan(0);
      for (const text of exprs) {
        for (const r of rs) {
          const fast = fastValues(text, rootOf(type), r);
          expect(fast, `${text} should take the fast path`).toBeDefined();
          expect(fast, `${text} on ${r.id ?? '(no id)'}`).toEqual(fhirpathValues(text, r));
        }
      }
    });
  }

  it('leaves everything else to fhirpath', () => {
    for (const text of SLOW) expect(fastValues(text, rootOf('Patient'), RESOURCES[5]), text).toBeUndefined();
  });

  it('gives the same rows through views, forEach and forEachOrNull included', () => {
    const views = [
      {
        resource: 'Observation',
        select: [
          { column: [{ name: 'patient', path: 'subject.getReferenceKey(Patient)' }, { name: 'date', path: 'effective.ofType(dateTime)' }, { name: 'value', path: 'value.ofType(Quantity).value' }, { name: 'unit', path: 'value.ofType(Quantity).code' }] },
          { forEach: 'code.coding', column: [{ name: 'system', path: 'system' }, { name: 'code', path: 'code' }, { name: 'i', path: '%rowIndex' }] },
        ],
      },
      {
        resource: 'Observation',
        select: [
          { column: [{ name: 'id', path: 'id' }] },
          {
            forEachOrNull: 'component',
            column: [{ name: 'v', path: 'value.ofType(Quantity).value' }, { name: 's', path: 'value.ofType(string)' }, { name: 'ci', path: '%rowIndex' }],
            select: [{ forEachOrNull: 'code.coding', column: [{ name: 'cc', path: 'code' }, { name: 'cs', path: 'system' }, { name: 'k', path: '%rowIndex' }, { name: 'this', path: '$this.code' }] }],
          },
          { forEachOrNull: 'value.ofType(CodeableConcept).coding', column: [{ name: 'value_code', path: 'code' }] },
        ],
        where: [{ path: 'status.exists()' }],
      },
      {
        resource: 'Patient',
        select: [
          { column: [{ name: 'key', path: 'getResourceKey()' }, { name: 'given', path: 'name.given', collection: true }] },
          { forEachOrNull: 'name', column: [{ name: 'family', path: 'family' }, { name: 'first', path: 'given.first()' }, { name: 'n', path: 'given.exists()' }] },
          { unionAll: [{ forEach: 'telecom', column: [{ name: 'tel', path: 'value' }] }, { forEach: 'link.other', column: [{ name: 'tel', path: 'reference' }] }] },
        ],
      },
    ];
    for (const view of views) {
      const fast = compileView(view, 'v.json');
      const slow = compileView(view, 'v.json', { fastPath: false });
      for (const r of RESOURCES) expect(fast.run(r, { fullUrl: 'urn:uuid:full' }), `${view.resource} on ${r.id}`).toEqual(slow.run(r, { fullUrl: 'urn:uuid:full' }));
    }
  });
});

describe('the fast path on the conformance suite', () => {
  it('gives the same rows (in the same order) or the same error as fhirpath.js for every test view', () => {
    let views = 0;
    let fastColumns = 0;
    for (const file of readdirSync(SUITE).filter((f) => f.endsWith('.json') && f !== 'tests.schema.json')) {
      const doc = parseJsonKeepingDecimals(readFileSync(join(SUITE, file), 'utf8')) as { resources: Resource[]; tests: Array<{ title: string; view: unknown }> };
      for (const t of doc.tests) {
        const outcome = (fastPath: boolean): ViewRow[] | string => {
          try {
            const v = compileView(t.view, file, { fastPath });
            return doc.resources.flatMap((r) => v.run(r));
          } catch (e) {
            expect(isMedfitError(e), `${file} ${t.title}: ${String(e)}`).toBe(true);
            return (e as Error).message;
          }
        };
        expect(outcome(true), `${file}: ${t.title}`).toEqual(outcome(false));
        views++;
        // Count the top-level columns the fast path takes, so this test cannot pass on fhirpath alone.
        const v = t.view as { resource?: string; constant?: unknown; select?: Array<{ column?: Array<{ path: string }>; forEach?: unknown; forEachOrNull?: unknown; repeat?: unknown }> };
        if (typeof v.resource !== 'string' || v.constant !== undefined) continue;
        for (const s of v.select ?? []) {
          if (s.forEach !== undefined || s.forEachOrNull !== undefined || s.repeat !== undefined) continue;
          for (const c of s.column ?? []) {
            for (const r of doc.resources.filter((x) => x.resourceType === v.resource)) {
              const fast = fastValues(c.path, rootOf(v.resource), r, new Map());
              if (fast === undefined) break;
              expect(fast, `${file}: ${t.title}: ${c.path}`).toEqual(fhirpathValues(c.path, r, new Map()));
              fastColumns++;
            }
          }
        }
      }
    }
    expect(views).toBe(134);
    expect(fastColumns).toBeGreaterThan(300);
  });
});

describe('the fast path on real Synthea resources', () => {
  it('gives the same rows as fhirpath.js alone for views over Observations, Patients, Conditions, Encounters, Claims', () => {
    const entries: Array<{ fullUrl: string; resource: Resource }> = [];
    for (const f of readdirSync(SYNTHEA).filter((n) => n.endsWith('.json.gz')).sort().slice(0, 3)) {
      entries.push(...(JSON.parse(gunzipSync(readFileSync(join(SYNTHEA, f))).toString('utf8')) as { entry: Array<{ fullUrl: string; resource: Resource }> }).entry);
    }
    const c = (name: string, path: string, collection = false) => ({ name, path, collection });
    const views = [
      {
        resource: 'Observation',
        select: [
          { column: [c('patient', 'subject.getReferenceKey(Patient)'), c('date', 'effective.ofType(dateTime)'), c('value', 'value.ofType(Quantity).value'), c('unit', 'value.ofType(Quantity).code'), c('issued', 'issued'), c('cat', 'category.coding.code', true)] },
          { forEach: 'code.coding', column: [c('system', 'system'), c('code', 'code')] },
          { forEachOrNull: 'value.ofType(CodeableConcept).coding', column: [c('value_code', 'code')] },
          { forEachOrNull: 'component', column: [c('cv', 'value.ofType(Quantity).value')], select: [{ forEachOrNull: 'code.coding', column: [c('cc', 'code')] }] },
        ],
      },
      {
        resource: 'Patient',
        select: [
          { column: [c('key', 'getResourceKey()'), c('birth', 'birthDate'), c('gender', 'gender'), c('dead', 'deceased.ofType(dateTime)'), c('given', 'name.given', true), c('family', "name.where(use = 'official').family"), c('ext', 'extension.url', true)] },
          { forEach: 'address', column: [c('city', 'city'), c('geo', 'extension.extension.value.ofType(decimal)', true)] },
        ],
      },
      {
        resource: 'Condition',
        select: [{ column: [c('p', 'subject.getReferenceKey(Patient)'), c('onset', 'onset.ofType(dateTime)'), c('status', 'clinicalStatus.coding.code.first()')] }, { forEach: 'code.coding', column: [c('code', 'code')] }],
      },
      {
        resource: 'Encounter',
        select: [{ column: [c('p', 'subject.getReferenceKey(Patient)'), c('start', 'period.start'), c('class', 'class.code')] }, { forEachOrNull: 'participant', column: [c('who', 'individual.getReferenceKey(Practitioner)')] }],
      },
      { resource: 'Claim', select: [{ column: [c('p', 'patient.getReferenceKey()'), c('total', 'total.value')] }, { forEachOrNull: 'item', column: [c('seq', 'sequence'), c('enc', 'encounter.getReferenceKey()', true)] }] },
    ];
    let rows = 0;
    for (const view of views) {
      const fast = compileView(view, 'v.json');
      const slow = compileView(view, 'v.json', { fastPath: false });
      for (const e of entries) {
        const got = fast.run(e.resource, { fullUrl: e.fullUrl });
        expect(got, `${view.resource} ${e.fullUrl}`).toEqual(slow.run(e.resource, { fullUrl: e.fullUrl }));
        rows += got.length;
      }
    }
    expect(rows).toBeGreaterThan(500);
  });
});
