import { describe, expect, it } from 'vitest';
import { float32FromBytes, float32Json, float32ToBytes, formatFloat32, joinBinaryBody, splitBinaryBody } from './index.js';
import { MedfitError } from '../../core/index.js';

describe('binary codec', () => {
  it('joins and splits back to the same bytes', () => {
    const a = new Float32Array([0.1, -2.5, 3e38, 1e-45, -0]);
    const b = new Float32Array([Math.PI]);
    const json = '{"outputs":[{"name":"a"},{"name":"b"}],"é":1}'; // non-ASCII: lengths are bytes
    const { body, headerLength } = joinBinaryBody(json, [float32ToBytes(a), float32ToBytes(b)]);
    expect(headerLength).toBe(Buffer.byteLength(json));
    expect(body.length).toBe(headerLength + 24);
    const split = splitBinaryBody(body, String(headerLength));
    expect(split.json).toBe(json);
    const back = float32FromBytes(split.binary);
    expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.concat([float32ToBytes(a), float32ToBytes(b)]))).toBe(true);
    // little-endian on the wire, whatever the host
    expect(split.binary.readFloatLE(4)).toBe(-2.5);
  });

  it('copies misaligned bytes and views aligned ones', () => {
    const buf = Buffer.alloc(13);
    buf.writeFloatLE(1.5, 1);
    buf.writeFloatLE(-7, 5);
    const odd = float32FromBytes(buf.subarray(1, 9));
    expect(Array.from(odd)).toEqual([1.5, -7]);
    const aligned = new Uint8Array(8);
    const view = float32FromBytes(aligned);
    expect(view.buffer).toBe(aligned.buffer);
    expect(() => float32FromBytes(new Uint8Array(6))).toThrow(MedfitError);
  });

  it('rejects a header length that is not a count or runs past the body', () => {
    expect(() => splitBinaryBody(Buffer.alloc(4), '5')).toThrow(/only 4 bytes/);
    expect(() => splitBinaryBody(Buffer.alloc(4), 'abc')).toThrow(/byte count/);
    expect(() => splitBinaryBody(Buffer.alloc(4), ['1', '2'])).toThrow(/byte count/);
  });

  it('writes the shortest decimal that reads back as the same float32', () => {
    for (const x of [0.1, 1 / 3, 0.7310586, 123456.789, 3.4028234663852886e38, 1.401298464324817e-45, -0.5, 0, 1e-7, 12345678]) {
      const f = Math.fround(x);
      const s = formatFloat32(f);
      expect(Math.fround(Number(s))).toBe(f);
      expect(s.replace(/^-|e.*$|\./g, '').replace(/^0+/, '').length).toBeLessThanOrEqual(9);
    }
    expect(formatFloat32(Math.fround(0.1))).toBe('0.1');
    expect(float32Json(new Float32Array([0.1, NaN, 2]))).toBe('[0.1,null,2]');
    expect(float32Json(new Float32Array(0))).toBe('[]');
  });
});
