/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) for short messages, in JavaScript, with the key's inner and
 * outer pad blocks compressed once at construction.
 *
 * Why not `crypto.createHmac`: a de-identified export computes one HMAC per resource id, and
 * Node 20's createHmac costs about 3.5 µs a call here, nearly all of it setting up the OpenSSL
 * context for a 40-byte message; this one costs the two or three SHA-256 compressions the
 * message needs (well under a microsecond), which is what brings a typical Observation under the
 * 10 µs budget. It is checked bit for bit against `createHmac` in hmac.test.ts (keys and messages
 * of every length around the block boundaries, non-ASCII text, lone surrogates).
 *
 * Timing side channels do not matter here: the key is fixed per process and the messages are
 * the data being de-identified, which the caller already holds.
 */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

/** The message schedule, reused by every compression. */
const W = new Int32Array(64);

/** One SHA-256 compression of the 64-byte block at `b[o]` into `h`. */
function compress(h: Int32Array, b: Uint8Array, o: number): void {
  const w = W;
  for (let t = 0; t < 16; t++, o += 4) w[t] = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15]!;
    const y = w[t - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) | 0;
  }
  let a = h[0]!;
  let bb = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let hh = h[7]!;
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (hh + S1 + ch + K[t]! + w[t]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & bb) ^ (a & c) ^ (bb & c);
    const t2 = (S0 + maj) | 0;
    hh = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = bb;
    bb = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0]! + a) | 0;
  h[1] = (h[1]! + bb) | 0;
  h[2] = (h[2]! + c) | 0;
  h[3] = (h[3]! + d) | 0;
  h[4] = (h[4]! + e) | 0;
  h[5] = (h[5]! + f) | 0;
  h[6] = (h[6]! + g) | 0;
  h[7] = (h[7]! + hh) | 0;
}

/**
 * Pads and compresses `len` bytes of `buf` (which has room for the padding) into `h`, as the
 * tail of a message whose earlier blocks (`before` bytes) are already in `h`.
 */
function finish(h: Int32Array, buf: Uint8Array, len: number, before: number): void {
  const total = len + 9;
  const padded = total + ((64 - (total % 64)) % 64);
  buf[len] = 0x80;
  buf.fill(0, len + 1, padded);
  const bits = (before + len) * 8;
  // Messages here are far below 2^32 bits; the high word stays 0 (written for completeness).
  const hi = Math.floor(bits / 0x100000000);
  buf[padded - 8] = hi >>> 24;
  buf[padded - 7] = hi >>> 16;
  buf[padded - 6] = hi >>> 8;
  buf[padded - 5] = hi;
  buf[padded - 4] = bits >>> 24;
  buf[padded - 3] = bits >>> 16;
  buf[padded - 2] = bits >>> 8;
  buf[padded - 1] = bits;
  for (let o = 0; o < padded; o += 64) compress(h, buf, o);
}

const ENCODER = new TextEncoder();

/** HMAC-SHA256 under one key, its pads precomputed. */
export class HmacSha256 {
  private readonly inner = new Int32Array(8);
  private readonly outer = new Int32Array(8);
  private readonly h = new Int32Array(8);
  private buf = new Uint8Array(256);
  private readonly tail = new Uint8Array(64);

  constructor(key: Uint8Array) {
    let k = key;
    if (k.length > 64) {
      const h = new Int32Array(IV);
      const b = new Uint8Array(k.length + 72);
      b.set(k);
      finish(h, b, k.length, 0);
      k = wordsToBytes(h);
    }
    const block = new Uint8Array(64);
    block.set(k);
    for (let i = 0; i < 64; i++) block[i]! ^= 0x36;
    this.inner.set(IV);
    compress(this.inner, block, 0);
    for (let i = 0; i < 64; i++) block[i]! ^= 0x36 ^ 0x5c;
    this.outer.set(IV);
    compress(this.outer, block, 0);
    block.fill(0);
  }

  /**
   * The MAC of `message` (UTF-8, lone surrogates as U+FFFD as Node writes them) as 8 big-endian
   * 32-bit words, in an array reused by the next call: read it before calling again.
   */
  words(message: string): Int32Array {
    const n = message.length;
    // ASCII is written as is; anything else goes through the encoder. The buffer has room for
    // the longest UTF-8 form (3 bytes per UTF-16 unit) and the padding.
    if (this.buf.length < n * 3 + 72) this.buf = new Uint8Array(n * 3 + 72);
    const buf = this.buf;
    let len = 0;
    let ascii = true;
    for (let i = 0; i < n; i++) {
      const c = message.charCodeAt(i);
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      buf[i] = c;
    }
    if (ascii) len = n;
    else len = ENCODER.encodeInto(message, buf).written;
    const h = this.h;
    h.set(this.inner);
    finish(h, buf, len, 64);
    // The outer hash: the key's outer block (precomputed) then the inner digest.
    const t = this.tail;
    for (let i = 0; i < 8; i++) {
      const x = h[i]!;
      t[i * 4] = x >>> 24;
      t[i * 4 + 1] = x >>> 16;
      t[i * 4 + 2] = x >>> 8;
      t[i * 4 + 3] = x;
    }
    h.set(this.outer);
    finish(h, t, 32, 64);
    return h;
  }

  /** The MAC of `message` as 32 bytes. */
  digest(message: string): Uint8Array {
    return wordsToBytes(this.words(message));
  }
}

function wordsToBytes(h: Int32Array): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const x = h[i]!;
    out[i * 4] = x >>> 24;
    out[i * 4 + 1] = x >>> 16;
    out[i * 4 + 2] = x >>> 8;
    out[i * 4 + 3] = x;
  }
  return out;
}
