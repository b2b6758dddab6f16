import { describe, expect, it } from 'vitest';
import { isMedfitError } from '../core/index.js';
import { deidKey } from './index.js';

describe('deidKey', () => {
  it('reads 64 hex digits as 32 bytes and other text of 32+ characters as its UTF-8 bytes', () => {
    const hex = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
    expect(deidKey({ MEDFIT_DEID_KEY: hex })).toEqual({ key: Buffer.from(hex, 'hex'), generated: false });
    const text = 'correct horse battery staple, twice over';
    expect(deidKey({ MEDFIT_DEID_KEY: text })).toEqual({ key: Buffer.from(text, 'utf8'), generated: false });
  });

  it('makes a random key for this process when the variable is unset or empty', () => {
    const a = deidKey({});
    const b = deidKey({ MEDFIT_DEID_KEY: '' });
    expect(a.generated).toBe(true);
    expect(b.generated).toBe(true);
    expect(a.key.length).toBe(32);
    expect(a.key.equals(b.key)).toBe(false);
  });

  it('refuses a short or weak key, naming the variable and never the key', () => {
    for (const [key, why] of [
      ['short-secret-123', /too short/],
      ['abababababababababababababababababababab', /too weak/],
      ['0'.repeat(64), /too weak/],
    ] as const) {
      let err: unknown;
      try {
        deidKey({ MEDFIT_DEID_KEY: key });
      } catch (e) {
        err = e;
      }
      expect(isMedfitError(err) && err.code).toBe('MEDFIT_ERR_USAGE');
      const msg = (err as Error).message;
      expect(msg).toMatch(why);
      expect(msg).toContain('MEDFIT_DEID_KEY');
      expect(msg).not.toContain(key);
    }
  });
});
