import { describe, expect, it } from 'vitest';
import { validateResource } from '../../test/fhir-validate.js';
import { MEDFIT_LABEL_SYSTEM, MEDFIT_MODEL_SYSTEM, labelWindow, outcomeConcept, riskAssessmentBundle, type RiskBundleInput } from './risk.js';
import type { FeatureSpec } from './types.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const spec: FeatureSpec = {
  index: '2020-01-01',
  observations: [{ name: 'hba1c', code: 'http://loinc.org|4548-4' }],
  label: { name: 'diabetes', condition: { codes: ['http://snomed.info/sct|44054006', 'http://snomed.info/sct|190330002'] }, within: '365d' },
};

function input(over: Partial<RiskBundleInput> = {}): RiskBundleInput {
  return {
    model: { name: 'dm-risk', version: 3 },
    classes: ['0', '1'],
    outcome: outcomeConcept(spec, 'diabetes'),
    occurrence: '2024-05-06T07:08:09.000Z',
    patients: [
      { subject: 'Patient/a', probabilities: { '0': 0.8, '1': 0.2 }, basis: ['Observation/o1', 'Observation/o2', 'Condition/c1'] },
      { subject: 'urn:uuid:0b5c3f3e-4b7c-4c1e-9a7a-2f6d3b1e8c11', probabilities: { '0': 0.123456789, '1': 0.876543211 }, basis: [] },
    ],
    ...over,
  };
}

/** A deep copy to break. */
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('riskAssessmentBundle', () => {
  it('makes a collection Bundle of one final RiskAssessment per patient, in the order given', () => {
    const b = riskAssessmentBundle(input());
    expect(b.resourceType).toBe('Bundle');
    expect(b.type).toBe('collection');
    expect(b.id).toMatch(UUID);
    expect(b.entry).toHaveLength(2);
    const [a, c] = b.entry!.map((e) => e.resource!);
    expect(b.entry![0]!.fullUrl).toBe(`urn:uuid:${a!.id}`);
    expect(a!.id).toMatch(UUID);
    expect(new Set(b.entry!.map((e) => e.resource!.id)).size).toBe(2);
    expect(a).toMatchObject({
      resourceType: 'RiskAssessment',
      status: 'final',
      subject: { reference: 'Patient/a' },
      occurrenceDateTime: '2024-05-06T07:08:09.000Z',
      method: { coding: [{ system: MEDFIT_MODEL_SYSTEM, code: 'dm-risk/3', display: 'dm-risk v3' }], text: 'dm-risk v3' },
      basis: [{ reference: 'Observation/o1' }, { reference: 'Observation/o2' }, { reference: 'Condition/c1' }],
    });
    expect(a!.meta).toBeUndefined();
    expect(a!.text).toBeUndefined();
    // Binary: the positive (second) class only, as a percentage at the model's precision.
    expect(a!.prediction).toEqual([{ outcome: { coding: [{ system: 'http://snomed.info/sct', code: '44054006' }], text: 'diabetes' }, probabilityDecimal: 20 }]);
    expect(c!.prediction![0]!.probabilityDecimal).toBe(0.876543211 * 100);
    expect(c!.subject.reference).toBe('urn:uuid:0b5c3f3e-4b7c-4c1e-9a7a-2f6d3b1e8c11');
    // No basis: the element is left out, not an empty array (FHIR JSON forbids those).
    expect(c!.basis).toBeUndefined();
  });

  it('gives one prediction per class for several classes', () => {
    const b = riskAssessmentBundle(input({ classes: ['low', 'mid', 'high'], patients: [{ subject: 'Patient/a', probabilities: { low: 0.5, mid: 0.3, high: 0.2 }, basis: [] }] }));
    const r = b.entry![0]!.resource!;
    expect(r.prediction!.map((p) => [p.outcome!.text, p.probabilityDecimal])).toEqual([
      ['diabetes: low', 50],
      ['diabetes: mid', 30],
      ['diabetes: high', 20],
    ]);
  });

  it('refuses a prediction without the class probability (our bug, not the caller\'s)', () => {
    expect(() => riskAssessmentBundle(input({ patients: [{ subject: 'Patient/a', probabilities: { '0': 1 }, basis: [] }] }))).toThrow(/lacks a class probability/);
  });
});

describe('outcomeConcept', () => {
  it('codes a Condition label by its first code, an Observation threshold in medfit\'s label system, else the target', () => {
    expect(outcomeConcept(spec, 'x')).toEqual({ coding: [{ system: 'http://snomed.info/sct', code: '44054006' }], text: 'diabetes' });
    expect(outcomeConcept({ index: '2020-01-01', label: { name: 'high_a1c', observation: { code: 'http://loinc.org|4548-4', above: 6.5 }, within: '1y' } }, 'x')).toEqual({
      coding: [{ system: MEDFIT_LABEL_SYSTEM, code: 'high_a1c' }],
      text: 'high_a1c',
    });
    expect(outcomeConcept({ index: '2020-01-01' }, 'outcome')).toEqual({ text: 'outcome' });
    expect(outcomeConcept(undefined, 'outcome')).toEqual({ text: 'outcome' });
  });
});

describe('labelWindow', () => {
  it('runs from the index date to the end of the label window, by the calendar', () => {
    expect(labelWindow(spec, '2020-01-01')).toEqual({ start: '2020-01-01', end: '2020-12-31' });
    expect(labelWindow({ ...spec, label: { ...spec.label!, within: '1mo' } as FeatureSpec['label'] }, '2024-01-31')).toEqual({ start: '2024-01-31', end: '2024-02-29' });
    expect(labelWindow({ index: '2020-01-01' }, '2020-01-01')).toBeUndefined();
    expect(labelWindow(spec, '2020-02-30')).toBeUndefined();
  });

  it('becomes each prediction\'s whenPeriod, still valid R4', () => {
    const b = riskAssessmentBundle(input({ when: labelWindow(spec, '2020-01-01') }));
    expect(b.entry![0]!.resource!.prediction![0]!.whenPeriod).toEqual({ start: '2020-01-01', end: '2020-12-31' });
    expect(validateResource(b)).toEqual([]);
    const broken = copy(b) as unknown as { entry: Array<{ resource: Record<string, any> }> };
    broken.entry[0]!.resource['prediction'][0].whenPeriod = { start: '2020-01-01', end: 'next year' };
    expect(validateResource(broken).map((p) => p.message)).toContain('not a valid dateTime');
  });
});

describe('R4 validation against the StructureDefinitions (test/fhir-validate.ts)', () => {
  it('finds the Bundle and its RiskAssessments valid', () => {
    const b = riskAssessmentBundle(input());
    expect(validateResource(b)).toEqual([]);
    const multi = riskAssessmentBundle(input({ classes: ['low', 'mid', 'high'], patients: [{ subject: 'Patient/a', probabilities: { low: 0.5, mid: 0.3, high: 0.2 }, basis: ['Observation/x'] }] }));
    expect(validateResource(multi)).toEqual([]);
  });

  // Each break must be caught, or the validator could pass anything.
  const breaks: Array<[string, (r: Record<string, any>) => void, RegExp]> = [
    ['a probability over 100 (ras-2)', (r) => (r['prediction'][0].probabilityDecimal = 130), /invariant ras-2 fails/],
    ['a status outside observation-status', (r) => (r['status'] = 'done'), /required ValueSet/],
    ['no subject (min 1)', (r) => delete r['subject'], /subject: is required/],
    ['an element RiskAssessment does not have', (r) => (r['probabilityDecimal'] = 0.2), /probabilityDecimal: not an element/],
    ['a choice type it does not allow (occurrenceString)', (r) => ((r['occurrenceString'] = 'today'), delete r['occurrenceDateTime']), /occurrenceString: not an element/],
    ['two types of one choice', (r) => (r['occurrencePeriod'] = { start: '2024-01-01' }), /only one of occurrenceDateTime, occurrencePeriod/],
    ['a probability as a string', (r) => (r['prediction'][0].probabilityDecimal = '20'), /expected a decimal/],
    ['a single element as an array', (r) => (r['subject'] = [r['subject']]), /does not repeat/],
    ['a repeating element as a single value', (r) => (r['basis'] = r['basis'][0]), /repeats/],
    ['an empty array', (r) => (r['basis'] = []), /empty array/],
    ['a bad dateTime', (r) => (r['occurrenceDateTime'] = '2024-13-40'), /not a valid dateTime/],
    ['a Reference with an unknown element', (r) => (r['subject'].id_ = 'x'), /subject.id_: not an element of Reference/],
    ['a Coding with a number as code', (r) => (r['method'].coding[0].code = 3), /expected a code/],
    ['a Range probability that is not a percentage (ras-1)', (r) => (r['prediction'][0] = { probabilityRange: { low: { value: 1, unit: 'mg' } } }), /invariant ras-1 fails/],
    ['a local reference to nothing contained (ref-1)', (r) => (r['subject'].reference = '#p1'), /invariant ref-1 fails/],
    ['an empty CodeableConcept (ele-1)', (r) => (r['method'] = {}), /invariant ele-1 fails/],
  ];
  it.each(breaks)('catches %s', (_what, breakIt, problem) => {
    const b = copy(riskAssessmentBundle(input())) as unknown as { entry: Array<{ resource: Record<string, any> }> };
    breakIt(b.entry[0]!.resource);
    const problems = validateResource(b);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map((p) => `${p.path}: ${p.message}`).join('\n')).toMatch(problem);
  });

  it('catches a broken Bundle: bad type, duplicate fullUrls (bdl-7), total on a collection (bdl-1)', () => {
    const b = copy(riskAssessmentBundle(input())) as unknown as Record<string, any>;
    expect(validateResource({ ...b, type: 'answers' }).map((p) => p.message).join('\n')).toMatch(/required ValueSet/);
    expect(validateResource({ ...b, entry: [b['entry'][0], b['entry'][0]] }).map((p) => p.message).join('\n')).toMatch(/invariant bdl-7 fails/);
    expect(validateResource({ ...b, total: 2 }).map((p) => p.message).join('\n')).toMatch(/invariant bdl-1 fails/);
    expect(validateResource({ ...b, entry: [{ fullUrl: 'urn:uuid:x', resource: { resourceType: 'Nope' } }] }).map((p) => p.message).join('\n')).toMatch(/no vendored definition of resource type Nope/);
  });
});
