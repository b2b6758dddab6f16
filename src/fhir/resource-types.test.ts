import r4 from 'fhirpath/fhir-context/r4';
import { describe, expect, it } from 'vitest';
import { isResourceType, R4_RESOURCE_TYPES, resourceTypeIgnoringCase } from './resource-types.js';

describe('R4_RESOURCE_TYPES', () => {
  it("is exactly the concrete resource types of fhirpath's R4 model", () => {
    const parents = r4.type2Parent as Record<string, string>;
    const derived = Object.keys(parents).filter((t) => {
      for (let p = parents[t]; p !== undefined; p = parents[p]) if (p === 'Resource') return t !== 'DomainResource';
      return false;
    });
    expect([...R4_RESOURCE_TYPES].sort()).toEqual(derived.sort());
    expect(R4_RESOURCE_TYPES.size).toBe(146);
  });

  it('answers by exact, case-sensitive name, and suggests the right capitals', () => {
    for (const t of ['Patient', 'Observation', 'Bundle', 'Binary', 'Parameters', 'MedicinalProductUndesirableEffect']) expect(isResourceType(t)).toBe(true);
    for (const t of ['patient', 'Resource', 'DomainResource', 'Citation', 'HumanName', 'ViewDefinition', '']) expect(isResourceType(t)).toBe(false);
    expect(resourceTypeIgnoringCase('OBSERVATION')).toBe('Observation');
    expect(resourceTypeIgnoringCase('Observations')).toBeUndefined();
  });
});
