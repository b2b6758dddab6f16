import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Rng } from '../core/index.js';
import { HmacSha256 } from './hmac.js';

describe('HmacSha256', () => {
  it('matches node:crypto bit for bit for keys and messages of every length around the block boundaries', () => {
    const rng = new Rng(7);
    for (const keyLength of [1, 31, 32, 55, 63, 64, 65, 128, 200]) {
      const key = Buffer.from(Array.from({ length: keyLength }, () => rng.int(256)));
      const mac = new HmacSha256(key);
      for (let n = 0; n <= 140; n++) {
        // ASCII, then two-, three- and four-byte UTF-8, then lone surrogates (written as U+FFFD).
        const alphabet = n % 4 === 0 ? 'abcXYZ019-\0' : n % 4 === 1 ? 'aé€😀' : n % 4 === 2 ? 'Zürich 東京' : 'a\ud800b\udc00';
        let s = '';
        while (s.length < n) s += alphabet[rng.int(alphabet.length)];
        const want = createHmac('sha256', key).update(s, 'utf8').digest('hex');
        expect(Buffer.from(mac.digest(s)).toString('hex'), `key ${keyLength}, message ${n}`).toBe(want);
      }
    }
  });

  it('gives the RFC 4231 test case 2 value', () => {
    const mac = new HmacSha256(Buffer.from('Jefe'));
    expect(Buffer.from(mac.digest('what do ya want for nothing?')).toString('hex')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });
});
