/**
 * The MLP's initial weights, value for value what TensorFlow.js-layers gave the network before
 * the plain-TypeScript trainer replaced it: each Dense kernel glorot-uniform from its own seed
 * (`seed + 7919 · layer`, layers counted from 1), biases zero. tfjs draws seeded uniforms from
 * seedrandom's Alea generator seeded with the seed's decimal string, so that generator is
 * reproduced here; `trainer.test.ts` holds the result to tfjs's own initialiser bit for bit, so a
 * seed means the same starting network as it always did.
 */

/**
 * Johannes Baagøe's Alea as seedrandom 3.0.5 implements it (`seedrandom.alea(seed)`), the
 * generator behind tfjs's seeded `randomUniform`: `next()` in [0, 1). `reseed` starts it over
 * without allocating, for the trainer's per-step dropout masks.
 */
export class Alea {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private c = 1;
  private n = 0;

  constructor(seed: string) {
    this.reseed(seed);
  }

  reseed(seed: string): void {
    this.n = 0xefc8249d;
    this.c = 1;
    this.s0 = this.mash(' ');
    this.s1 = this.mash(' ');
    this.s2 = this.mash(' ');
    this.s0 -= this.mash(seed);
    if (this.s0 < 0) this.s0 += 1;
    this.s1 -= this.mash(seed);
    if (this.s1 < 0) this.s1 += 1;
    this.s2 -= this.mash(seed);
    if (this.s2 < 0) this.s2 += 1;
  }

  /** Baagøe's Mash hash, whose state `n` runs on across the calls of one seeding. */
  private mash(data: string): number {
    let n = this.n;
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000; // 2^32
    }
    this.n = n;
    return (n >>> 0) * 2.3283064365386963e-10; // 2^-32
  }

  next(): number {
    const t = 2091639 * this.s0 + this.c * 2.3283064365386963e-10; // 2^-32
    this.s0 = this.s1;
    this.s1 = this.s2;
    this.c = t | 0;
    return (this.s2 = t - this.c);
  }
}

/**
 * tfjs-layers' `glorotUniform({ seed })` for a `fanIn × fanOut` Dense kernel, row-major:
 * U(−l, l) with l = √(3 / max(1, (fanIn + fanOut) / 2)), each value `−l + 2l · alea()` rounded to
 * float32 (tfjs's `randomUniform` into a float32 buffer).
 */
export function glorotUniformTf(seed: number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(3 * (1 / Math.max(1, (fanIn + fanOut) / 2)));
  const min = -limit;
  const range = limit - min;
  const random = new Alea(seed.toString());
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = min + range * random.next();
  return out;
}

/** The seed of layer `index` (0-based) of a network trained with `seed`, as `buildModel` gave it. */
export function layerSeed(seed: number, index: number): number {
  return (seed >>> 0) + 7919 * (index + 1);
}

/**
 * Initial kernels and biases of the network `inDim → units… → outDim`: kernel `i` is
 * `dims[i] × dims[i+1]`, row-major (Keras's Dense layout).
 */
export function initialWeights(inDim: number, units: readonly number[], outDim: number, seed: number): { kernels: Float32Array[]; biases: Float32Array[] } {
  const dims = [inDim, ...units, outDim];
  const kernels: Float32Array[] = [];
  const biases: Float32Array[] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    kernels.push(glorotUniformTf(layerSeed(seed, i), dims[i]!, dims[i + 1]!));
    biases.push(new Float32Array(dims[i + 1]!));
  }
  return { kernels, biases };
}
