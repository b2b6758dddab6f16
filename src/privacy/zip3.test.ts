import { describe, expect, it } from 'vitest';
import { RESTRICTED_ZIP3, zip3 } from './index.js';

describe('zip3', () => {
  it('keeps the first three digits, and writes 000 for the 17 restricted areas', () => {
    expect(RESTRICTED_ZIP3.size).toBe(17);
    expect(zip3('01940')).toBe('019');
    expect(zip3(' 01940-1234 ')).toBe('019');
    expect(zip3('019401234')).toBe('019');
    expect(zip3('1940')).toBe('019');
    for (const z of RESTRICTED_ZIP3) expect(zip3(`${z}01`)).toBe('000');
    expect(zip3('03601')).toBe('000');
    expect(zip3('89301-0001')).toBe('000');
  });

  it('gives undefined for what is not a US ZIP code', () => {
    for (const bad of ['', 'K1A 0B6', 'SW1A 1AA', '123', '123456', '01940-12', '0194-01234', 'abcde', '01940 1234']) expect(zip3(bad), bad).toBeUndefined();
  });
});
