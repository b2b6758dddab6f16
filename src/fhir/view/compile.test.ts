import { describe, it, expect } from 'vitest';
import { MedfitError } from '../../core/index.js';
import type { Resource } from '../types.js';
import { compileView } from './compile.js';
import { referenceKey, resourceKey } from './functions.js';

const col = (name: string, path: string, extra: Record<string, unknown> = {}) => ({ name, path, ...extra });
const patientView = (select: unknown[], extra: Record<string, unknown> = {}) => ({ resource: 'Patient', select, ...extra });

/** The error compileView throws for a view, or a failure when it compiles. */
function compileError(view: unknown): MedfitError {
  try {
    compileView(view, 'view.json');
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('the view compiled');
}

describe('compileView rejects an invalid view, naming the part by JSON pointer', () => {
  it('an unknown function', () => {
    const e = compileError(patientView([{ column: [col('a', 'id'), col('b', 'gender'), col('c', 'name.foo()')] }]));
    expect(e.message).toBe('view.json: /select/0/column/2/path: unknown function "foo" (at character 6)');
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.details).toEqual([{ pointer: '/select/0/column/2/path', message: 'unknown function "foo" (at character 6)' }]);
  });

  it('every problem at once, the first in the message and all in details', () => {
    const e = compileError({ resource: 'Patient', select: [{ column: [col('1x', 'id'), col('b', 'trace(\'x\')'), col('c', 'name.given.join(1, 2)')] }] });
    expect(e.message).toBe('view.json: /select/0/column/0/name: must be letters, digits and underscores, starting with a letter (and 2 more problem(s))');
    expect(e.details.map((d) => d.pointer)).toEqual(['/select/0/column/0/name', '/select/0/column/1/path', '/select/0/column/2/path']);
    expect(e.details[1]!.message).toMatch(/unknown function "trace"/);
    expect(e.details[2]!.message).toMatch(/function "join" takes 0 or 1 argument\(s\), not 2/);
  });

  it('a missing, mistyped or unknown resource type', () => {
    expect(compileError({ select: [{ column: [col('id', 'id')] }] }).message).toMatch(/^view\.json: \/resource: missing/);
    expect(compileError({ resource: 3, select: [{ column: [col('id', 'id')] }] }).message).toMatch(/\/resource: must be a string/);
    expect(compileError({ resource: 'Patiant', select: [{ column: [col('id', 'id')] }] }).message).toMatch(/\/resource: "Patiant" is not an R4 resource type/);
    expect(compileError({}).details.map((d) => d.pointer)).toEqual(['/resource', '/select']);
    expect(compileError([]).message).toBe('view.json: /: a ViewDefinition must be a JSON object');
  });

  it('bad and duplicate column names, unknown properties, bad types', () => {
    expect(compileError(patientView([{ column: [col('id', 'id')] }, { column: [col('id', 'gender')] }])).message).toBe(
      'view.json: /select/1/column/0/name: duplicate column name "id" (also at /select/0/column/0/name)',
    );
    expect(compileError(patientView([{ column: [col('a b', 'id')] }])).details[0]!.pointer).toBe('/select/0/column/0/name');
    expect(compileError(patientView([{ column: [{ name: 'id' }] }])).message).toMatch(/\/select\/0\/column\/0\/path: missing/);
    expect(compileError(patientView([{ column: [col('id', 'id', { colection: true })] }])).message).toMatch(/\/select\/0\/column\/0\/colection: unknown property/);
    expect(compileError(patientView([{ column: [col('id', 'id', { collection: 'yes' })] }])).message).toMatch(/\/collection: must be true or false/);
    expect(compileError(patientView([{ column: [col('id', 'id', { type: 'str' })] }])).message).toMatch(/\/type: "str" is not an R4 type/);
    expect(compileError(patientView([{ colum: [col('id', 'id')] }])).details.map((d) => d.pointer)).toEqual(['/select/0/colum', '/select/0']);
    expect(compileError(patientView([{ column: [col('id', 'id')] }], { wehre: [] })).message).toMatch(/\/wehre: unknown property of a ViewDefinition/);
    expect(compileError(patientView([{ column: [] }])).message).toMatch(/\/select\/0\/column: must be a non-empty array/);
    expect(compileError(patientView([])).message).toMatch(/\/select: must be a non-empty array/);
  });

  it('bad FHIRPath: unparseable, wrong argument, unknown type, a number where an expression goes', () => {
    const e = compileError(patientView([{ forEach: '@@', column: [col('id', 'id')] }]));
    expect(e.message).toMatch(/^view\.json: \/select\/0\/forEach: invalid FHIRPath expression \(token recognition error at: '@@', at character 1\)$/);
    expect(e.message).not.toMatch(/expecting|\n|at Object/);
    expect(compileError(patientView([{ column: [col('id', 'name.given.first(')] }])).message).toMatch(/\/select\/0\/column\/0\/path: invalid FHIRPath expression/);
    expect(compileError(patientView([{ forEach: 1, column: [col('id', 'id')] }])).message).toMatch(/\/select\/0\/forEach: forEach must be a FHIRPath expression/);
    expect(compileError(patientView([{ column: [col('id', 'deceased.ofType(bool)')] }])).message).toMatch(/ofType\(\): unknown type "bool"/);
    expect(compileError(patientView([{ column: [col('id', 'link.other.getReferenceKey(Person2)')] }])).message).toMatch(/"Person2" is not an R4 resource type/);
    expect(compileError(patientView([{ column: [col('id', '  ')] }])).message).toMatch(/empty FHIRPath expression/);
    expect(compileError(patientView([{ column: [col('id', 'id')] }], { where: [{ path: 'name.bogus(1)' }] })).message).toMatch(/\/where\/0\/path: unknown function "bogus"/);
  });

  it('constants: undefined, without a value, of an unknown or mismatched type, reserved or repeated names', () => {
    const use = (constant: unknown) => compileError(patientView([{ column: [col('id', 'name.where(use = %u).family')] }], { constant }));
    expect(compileError(patientView([{ column: [col('id', 'name.where(use = %wrong).family')] }], { constant: [{ name: 'u', valueString: 'x' }] })).message).toMatch(
      /\/select\/0\/column\/0\/path: undefined constant %wrong/,
    );
    expect(use([{ name: 'u' }]).message).toMatch(/^view\.json: \/constant\/0: needs a value/);
    expect(use([{ name: 'u', valueString: 'a', valueCode: 'b' }]).message).toMatch(/\/constant\/0: has more than one value\[x\]/);
    expect(use([{ name: 'u', valueFoo: 'a' }]).message).toMatch(/\/constant\/0\/valueFoo: unknown constant type "Foo"/);
    expect(use([{ name: 'u', valueInteger: 1.5 }]).message).toMatch(/\/constant\/0\/valueInteger: must be an integer/);
    expect(use([{ name: 'u', valuePositiveInt: 0 }]).message).toMatch(/must be an integer from 1/);
    expect(use([{ name: 'u', valueBoolean: 'true' }]).message).toMatch(/must be true or false/);
    expect(use([{ name: 'u', valueDate: '2020-13' }, { name: 'v', valueDate: '20-01-01' }, { name: 'w', valueDate: '2020-02-29' }]).details.map((d) => d.pointer)).toEqual([
      '/constant/0/valueDate',
      '/constant/1/valueDate',
    ]);
    expect(use([{ name: 'u', valueDateTime: '2020-01-01 or true' }]).message).toMatch(/must be a FHIR dateTime/);
    expect(use([{ name: 'u', valueString: 1 }]).message).toMatch(/\/constant\/0\/valueString: must be a string/);
    expect(use([{ name: 'rowIndex', valueString: 'x' }]).details[0]!.message).toMatch(/built-in variable/);
    expect(use([{ name: 'u', valueString: 'x' }, { name: 'u', valueString: 'y' }]).details[0]).toEqual({ pointer: '/constant/1/name', message: 'duplicate constant "u"' });
  });

  it('select structure: two iterators, a select that adds no columns, unionAll branches that differ', () => {
    expect(compileError(patientView([{ forEach: 'name', forEachOrNull: 'name', column: [col('f', 'family')] }])).message).toMatch(/\/select\/0: has both forEach and forEachOrNull/);
    expect(compileError(patientView([{ forEach: 'name' }])).message).toMatch(/\/select\/0: has no column, select or unionAll/);
    expect(compileError(patientView([{ repeat: [], column: [col('f', 'family')] }])).message).toMatch(/\/select\/0\/repeat: must be a non-empty array/);
    const mismatch = compileError(patientView([{ unionAll: [{ column: [col('a', 'id'), col('b', 'id')] }, { column: [col('b', 'id'), col('a', 'id')] }] }]));
    expect(mismatch.message).toBe(
      'view.json: /select/0/unionAll/1: columns (b, a) differ from those of /select/0/unionAll/0 (a, b): every branch needs the same names in the same order',
    );
  });

  it('the whole view is checked before anything runs, even parts no resource would reach', () => {
    expect(() => compileView(patientView([{ column: [col('id', 'id')] }, { forEach: 'contact', column: [col('x', 'nope(')] }]))).toThrow(/\/select\/1\/column\/0\/path/);
  });
});

describe('runtime errors name the pointer and never the data', () => {
  const secret: Resource = { resourceType: 'Patient', id: 'secret-id', name: [{ family: 'Secretname' }, { family: 'Othername' }], gender: 'female' };

  it('several values in a column that is not a collection', () => {
    const v = compileView(patientView([{ column: [col('id', 'id'), col('family', 'name.family')] }]), 'view.json');
    expect(() => v.run(secret)).toThrow('view.json: /select/0/column/1/path: more than one value, and "collection" is not true');
    const slow = compileView(patientView([{ column: [col('family', 'name.family')] }]), 'view.json', { fastPath: false });
    expect(() => slow.run(secret)).toThrow('view.json: /select/0/column/0/path: more than one value, and "collection" is not true');
    const ok = compileView(patientView([{ column: [col('family', 'name.family', { collection: true })] }]));
    expect(ok.run(secret)).toEqual([{ family: ['Secretname', 'Othername'] }]);
  });

  it('a where path that is not boolean', () => {
    const v = compileView(patientView([{ column: [col('id', 'id')] }], { where: [{ path: 'gender' }] }), 'view.json');
    let msg = '';
    try {
      v.run(secret);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe('view.json: /where/0/path: a where path must give true, false or nothing; it gave something else');
    expect(msg).not.toMatch(/female|secret|Secretname/);
  });

  it('a fhirpath failure on the data, without fhirpath text that could quote it', () => {
    const v = compileView(patientView([{ column: [col('x', 'name.family.toInteger() + 1')] }]), 'view.json');
    let msg = '';
    try {
      v.run({ resourceType: 'Patient', name: [{ family: 'Secretname' }, { family: 'B' }] });
    } catch (e) {
      expect(e).toBeInstanceOf(MedfitError);
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/^view\.json: \/select\/0\/column\/0\/path: the FHIRPath expression failed on this resource/);
    expect(msg).not.toMatch(/Secretname/);
  });

  it('a repeat that never descends stops', () => {
    const v = compileView({ resource: 'QuestionnaireResponse', select: [{ repeat: ['$this'], column: [col('id', 'id')] }] }, 'view.json');
    expect(() => v.run({ resourceType: 'QuestionnaireResponse', id: 'q' })).toThrow(/\/select\/0\/repeat: nests deeper than 64 levels/);
  });
});

describe('running a view', () => {
  it('gives no rows for another resource type, and columns in output order', () => {
    const v = compileView(patientView([{ column: [col('id', 'id', { type: 'id' })] }, { forEach: 'name', column: [col('f', 'family')], select: [{ column: [col('g', 'given', { collection: true })] }] }]));
    expect(v.resource).toBe('Patient');
    expect(v.columns).toEqual([{ name: 'id', type: 'id', collection: false }, { name: 'f', collection: false }, { name: 'g', collection: true }]);
    expect(v.run({ resourceType: 'Observation', id: 'o' })).toEqual([]);
    expect(v.run({ resourceType: 'Patient', id: 'p', name: [{ family: 'A', given: ['x', 'y'] }, { family: 'B' }] })).toEqual([
      { id: 'p', f: 'A', g: ['x', 'y'] },
      { id: 'p', f: 'B', g: [] },
    ]);
  });

  it('getResourceKey falls back on the Bundle entry fullUrl, both engines', () => {
    for (const fastPath of [true, false]) {
      const v = compileView(patientView([{ column: [col('k', 'getResourceKey()')] }]), 'v', { fastPath });
      expect(v.run({ resourceType: 'Patient', id: 'p1' }, { fullUrl: 'urn:uuid:other' })).toEqual([{ k: 'p1' }]);
      expect(v.run({ resourceType: 'Patient' }, { fullUrl: 'urn:uuid:u-1' })).toEqual([{ k: 'u-1' }]);
      expect(v.run({ resourceType: 'Patient' }, { fullUrl: 'http://h/fhir/Patient/p7' })).toEqual([{ k: 'p7' }]);
      expect(v.run({ resourceType: 'Patient' })).toEqual([{ k: null }]);
    }
  });

  it('joins references to resource keys, with and without a type', () => {
    const obs = (subject: unknown): Resource => ({ resourceType: 'Observation', id: 'o', subject });
    for (const fastPath of [true, false]) {
      const v = compileView(
        { resource: 'Observation', select: [{ column: [col('any', 'subject.getReferenceKey()'), col('patient', 'subject.getReferenceKey(Patient)'), col('group', 'subject.getReferenceKey(Group)')] }] },
        'v',
        { fastPath },
      );
      const run = (s: unknown) => v.run(obs(s))[0];
      expect(run({ reference: 'Patient/123' })).toEqual({ any: '123', patient: '123', group: null });
      expect(run({ reference: 'Patient/123/_history/2' })).toEqual({ any: '123', patient: '123', group: null });
      expect(run({ reference: 'urn:uuid:9d0a' })).toEqual({ any: '9d0a', patient: '9d0a', group: '9d0a' });
      expect(run({ reference: 'urn:uuid:9d0a', type: 'Group' })).toEqual({ any: '9d0a', patient: null, group: '9d0a' });
      expect(run({ reference: 'http://example.org/fhir/Group/g1' })).toEqual({ any: 'g1', patient: null, group: 'g1' });
      expect(run({ reference: 'http://example.org/fhir/Patient/9/_history/1' })).toEqual({ any: '9', patient: '9', group: null });
      expect(run({ reference: '#contained' })).toEqual({ any: null, patient: null, group: null });
      expect(run({ identifier: { value: 'x' } })).toEqual({ any: null, patient: null, group: null });
      expect(run({ reference: 'Nonsense/1' })).toEqual({ any: null, patient: null, group: null });
      expect(run({ reference: 'justanid' })).toEqual({ any: null, patient: null, group: null });
    }
  });

  it('keeps decimal precision where FHIRPath asks for it, and gives plain numbers in rows', () => {
    const v = compileView({ resource: 'Observation', select: [{ column: [col('v', 'value.ofType(Quantity).value'), col('low', 'value.ofType(Quantity).value.lowBoundary()')] }] });
    const o = { resourceType: 'Observation', valueQuantity: { value: 2.5 } };
    expect(v.run(o)).toEqual([{ v: 2.5, low: 2.45 }]);
  });

  it('gives a dateTime boundary without a timezone the widest one, and keeps a timezone it has', () => {
    const v = compileView({ resource: 'Observation', select: [{ column: [col('lo', 'value.ofType(dateTime).lowBoundary()'), col('hi', 'value.ofType(dateTime).highBoundary()'), col('day', 'value.ofType(dateTime).lowBoundary(8)')] }] });
    expect(v.run({ resourceType: 'Observation', valueDateTime: '2010-10-10T10:30' })).toEqual([{ lo: '2010-10-10T10:30:00.000+14:00', hi: '2010-10-10T10:30:59.999-12:00', day: '2010-10-10' }]);
    expect(v.run({ resourceType: 'Observation', valueDateTime: '2010-10-10T10:30:00+02:00' })).toEqual([{ lo: '2010-10-10T10:30:00.000+02:00', hi: '2010-10-10T10:30:00.999+02:00', day: '2010-10-10' }]);
  });
});

describe('reference and resource keys', () => {
  it('parse every reference form', () => {
    expect(referenceKey({ reference: 'Patient/1' })).toBe('1');
    expect(referenceKey({ reference: 'Patient/1' }, 'Patient')).toBe('1');
    expect(referenceKey({ reference: 'Patient/1' }, 'Group')).toBeUndefined();
    expect(referenceKey({ reference: 'Patient/1/_history/4' })).toBe('1');
    expect(referenceKey({ reference: 'https://a.b/fhir/R4/Encounter/e-9' }, 'Encounter')).toBe('e-9');
    expect(referenceKey({ reference: 'https://a.b/fhir/Encounter/e-9?x=1' })).toBe('e-9');
    expect(referenceKey({ reference: 'urn:uuid:' })).toBeUndefined();
    expect(referenceKey({ reference: 'Patient/' })).toBeUndefined();
    expect(referenceKey({ reference: 42 })).toBeUndefined();
    expect(referenceKey('Patient/1')).toBeUndefined();
    expect(referenceKey(null)).toBeUndefined();
    expect(resourceKey({ id: 'x' }, 'urn:uuid:y')).toBe('x');
    expect(resourceKey({ id: '' }, 'urn:uuid:y')).toBe('y');
    expect(resourceKey({}, undefined)).toBeUndefined();
  });
});
