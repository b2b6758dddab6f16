/**
 * The sequence trainer's network: forward pass with the caches backpropagation needs, hand-derived
 * backward pass (backpropagation through time for LSTM and GRU), the loss heads and Keras's Adam,
 * all in Float32 over one `WebAssembly.Memory`. Matrix products go to the SIMD kernel of `gemm.ts`;
 * the element-wise work (gates, activations, pooling) is plain TypeScript over Float32Array views
 * of the same memory.
 *
 * Why not TensorFlow.js: on the reference network (LSTM(100) on 10×10 windows, batch 32)
 * tfjs-layers on WASM spends most of each step in per-op dispatch and its autodiff tape; here the
 * whole step is a handful of large products:
 * - the input projection of every step at once (`X·W` over T·B rows), the bias preloaded;
 * - per step only the recurrent product `H·U` (forward) and `dZ·Uᵀ` (backward);
 * - the weight gradients as two products over all steps (`Hᵀ·dZ`, `Xᵀ·dZ`).
 * `net.test.ts` holds the loss and every gradient to TensorFlow.js's autodiff on the same weights
 * and batch.
 *
 * Activations are time-major, `[T][B][C]`, so a step's rows are contiguous.
 */
import { Errors } from '../../core/index.js';
import { ADAM } from './build.js';
import { instantiateGemm, wasm } from './gemm.js';
import type { Gemm } from './gemm.js';
import type { SeqLayer, SeqNetWeights } from './weights.js';

/** Elements (Float32) in a 64 KiB page. */
const PAGE = 16384;
/** The largest memory the trainer asks for: 2 GiB. */
const MAX_BYTES = 2 ** 31;

/** Bump allocator of Float32 slots; the memory is made once every size is known. */
class Arena {
  private top = 0;
  f!: Float32Array;
  gemm!: Gemm;

  alloc(n: number): number {
    const at = this.top;
    this.top += Math.ceil(Math.max(n, 1) / 4) * 4; // 16-byte aligned
    return at;
  }

  finish(): void {
    const bytes = this.top * 4;
    if (bytes > MAX_BYTES)
      throw Errors.badParam('batch_size', `the network needs ${Math.ceil(bytes / 2 ** 20)} MiB of training buffers at this batch size and window; use a smaller batch_size, fewer units or filters, or shorter windows`);
    const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(this.top / PAGE)) });
    this.f = new Float32Array(memory.buffer);
    this.gemm = instantiateGemm(memory);
  }

  /** C = A·B (or C += A·B), row-major, element offsets. */
  mm(a: number, b: number, c: number, M: number, K: number, N: number, acc: boolean, lda = K, ldb = N, ldc = N): void {
    if (M === 0 || N === 0) return;
    if (K === 0) {
      if (!acc) for (let i = 0; i < M; i++) this.f.fill(0, c + i * ldc, c + i * ldc + N);
      return;
    }
    this.gemm(a * 4, b * 4, c * 4, M, K, N, lda, ldb, ldc, acc ? 1 : 0);
  }

  /** dst[cols × rows] = src[rows × cols]ᵀ */
  transpose(src: number, rows: number, cols: number, dst: number): void {
    const f = this.f;
    for (let r = 0; r < rows; r++) {
      const s = src + r * cols;
      for (let c = 0; c < cols; c++) f[dst + c * rows + r] = f[s + c]!;
    }
  }

  /** Every one of `rows` rows of `dst` (width n) = the vector at `src`. */
  broadcastRows(src: number, n: number, dst: number, rows: number): void {
    const f = this.f;
    for (let r = 0; r < rows; r++) f.copyWithin(dst + r * n, src, src + n);
  }

  /** dst[j] += Σ_r src[r·n + j] */
  addColumnSums(src: number, rows: number, n: number, dst: number): void {
    const f = this.f;
    for (let r = 0; r < rows; r++) {
      const s = src + r * n;
      for (let j = 0; j < n; j++) f[dst + j] += f[s + j]!;
    }
  }
}

/** A parameter array: where its value and its gradient live. */
interface Param {
  at: number;
  grad: number;
  n: number;
}

/** What a layer passes on: `steps` > 0 for a sequence `[steps][B][width]`, 0 for a vector `[B][width]`. */
interface Dims {
  steps: number;
  width: number;
}

interface Layer {
  readonly out: Dims;
  readonly params: Param[];
  /** Runs on the input at `x` (B rows per step); returns where the output is. */
  forward(x: number, B: number, training: boolean): number;
  /** Takes dLoss/dOutput at `dy`, adds the parameter gradients, returns dLoss/dInput's offset (−1 when not `needDx`). */
  backward(dy: number, B: number, needDx: boolean): number;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
/** tanh through one `exp` (V8's `Math.tanh` costs about twice as much); saturates cleanly at ±1. */
const tanh = (v: number) => 1 - 2 / (1 + Math.exp(2 * v));

class LstmLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[];
  private x = 0;
  private readonly Z: number;
  private readonly C: number;
  private readonly TC: number;
  private readonly H: number;
  private readonly dZ: number;
  private readonly dh: number;
  private readonly dc: number;
  private readonly kT: number;
  private readonly rT: number;
  private readonly xT: number;
  private readonly hT: number;
  private readonly dX: number;

  constructor(
    private readonly a: Arena,
    private readonly T: number,
    private readonly I: number,
    private readonly U: number,
    private readonly seqOut: boolean,
    maxB: number,
    alloc: (n: number) => Param,
  ) {
    const G = 4 * U;
    this.params = [alloc(I * G), alloc(U * G), alloc(G)];
    this.out = seqOut ? { steps: T, width: U } : { steps: 0, width: U };
    const TB = T * maxB;
    this.Z = a.alloc(TB * G);
    this.C = a.alloc(TB * U);
    this.TC = a.alloc(TB * U);
    this.H = a.alloc(TB * U);
    this.dZ = a.alloc(TB * G);
    this.dh = a.alloc(maxB * U);
    this.dc = a.alloc(maxB * U);
    this.kT = a.alloc(G * I);
    this.rT = a.alloc(G * U);
    this.xT = a.alloc(I * TB);
    this.hT = a.alloc(U * TB);
    this.dX = a.alloc(TB * I);
  }

  forward(x: number, B: number): number {
    const { a, T, I, U } = this;
    const f = a.f;
    const G = 4 * U;
    const [W, R, bias] = this.params as [Param, Param, Param];
    this.x = x;
    a.broadcastRows(bias.at, G, this.Z, T * B);
    a.mm(x, W.at, this.Z, T * B, I, G, true);
    for (let t = 0; t < T; t++) {
      const z = this.Z + t * B * G;
      if (t > 0) a.mm(this.H + (t - 1) * B * U, R.at, z, B, U, G, true);
      const cPrev = this.C + (t - 1) * B * U;
      const c = this.C + t * B * U;
      const tc = this.TC + t * B * U;
      const h = this.H + t * B * U;
      for (let b = 0; b < B; b++) {
        const zb = z + b * G;
        const ub = b * U;
        for (let j = 0; j < U; j++) {
          const ig = sigmoid(f[zb + j]!);
          const fg = sigmoid(f[zb + U + j]!);
          const gg = tanh(f[zb + 2 * U + j]!);
          const og = sigmoid(f[zb + 3 * U + j]!);
          f[zb + j] = ig;
          f[zb + U + j] = fg;
          f[zb + 2 * U + j] = gg;
          f[zb + 3 * U + j] = og;
          const cv = (t > 0 ? fg * f[cPrev + ub + j]! : 0) + ig * gg;
          f[c + ub + j] = cv;
          const th = tanh(cv);
          f[tc + ub + j] = th;
          f[h + ub + j] = og * th;
        }
      }
    }
    return this.seqOut ? this.H : this.H + (T - 1) * B * U;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    const { a, T, I, U } = this;
    const f = a.f;
    const G = 4 * U;
    const BU = B * U;
    const [W, R, bias] = this.params as [Param, Param, Param];
    const dh = this.dh;
    const dc = this.dc;
    if (T > 1) a.transpose(R.at, U, G, this.rT);
    f.fill(0, dc, dc + BU);
    for (let t = T - 1; t >= 0; t--) {
      // dh = dLoss/dh_t: from the output (every step, or only the last) plus the recurrence.
      if (t === T - 1) {
        if (this.seqOut) f.copyWithin(dh, dy + t * BU, dy + (t + 1) * BU);
        else f.copyWithin(dh, dy, dy + BU);
      } else if (this.seqOut) {
        const o = dy + t * BU;
        for (let k = 0; k < BU; k++) f[dh + k] += f[o + k]!;
      }
      const z = this.Z + t * B * G;
      const dz = this.dZ + t * B * G;
      const cPrev = this.C + (t - 1) * BU;
      const tc = this.TC + t * BU;
      for (let b = 0; b < B; b++) {
        const zb = z + b * G;
        const db = dz + b * G;
        const ub = b * U;
        for (let j = 0; j < U; j++) {
          const ig = f[zb + j]!;
          const fg = f[zb + U + j]!;
          const gg = f[zb + 2 * U + j]!;
          const og = f[zb + 3 * U + j]!;
          const th = f[tc + ub + j]!;
          const dht = f[dh + ub + j]!;
          const dct = f[dc + ub + j]! + dht * og * (1 - th * th);
          const cp = t > 0 ? f[cPrev + ub + j]! : 0;
          f[db + j] = dct * gg * ig * (1 - ig);
          f[db + U + j] = dct * cp * fg * (1 - fg);
          f[db + 2 * U + j] = dct * ig * (1 - gg * gg);
          f[db + 3 * U + j] = dht * th * og * (1 - og);
          f[dc + ub + j] = dct * fg;
        }
      }
      if (t > 0) a.mm(dz, this.rT, dh, B, G, U, false);
    }
    const TB = T * B;
    a.addColumnSums(this.dZ, TB, G, bias.grad);
    if (T > 1) {
      a.transpose(this.H, (T - 1) * B, U, this.hT);
      a.mm(this.hT, this.dZ + B * G, R.grad, U, (T - 1) * B, G, true);
    }
    a.transpose(this.x, TB, I, this.xT);
    a.mm(this.xT, this.dZ, W.grad, I, TB, G, true);
    if (!needDx) return -1;
    a.transpose(W.at, I, G, this.kT);
    a.mm(this.dZ, this.kT, this.dX, TB, G, I, false);
    return this.dX;
  }
}

/** GRU with Keras 2's `reset_after`: separate input and recurrent biases, reset applied after `h·U_h`. */
class GruLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[];
  private x = 0;
  private readonly XZ: number;
  private readonly HZ: number;
  private readonly H: number;
  private readonly dAx: number;
  private readonly dAh: number;
  private readonly dh: number;
  private readonly dhd: number;
  private readonly kT: number;
  private readonly rT: number;
  private readonly xT: number;
  private readonly hT: number;
  private readonly dX: number;

  constructor(
    private readonly a: Arena,
    private readonly T: number,
    private readonly I: number,
    private readonly U: number,
    private readonly seqOut: boolean,
    maxB: number,
    alloc: (n: number) => Param,
  ) {
    const G = 3 * U;
    this.params = [alloc(I * G), alloc(U * G), alloc(2 * G)];
    this.out = seqOut ? { steps: T, width: U } : { steps: 0, width: U };
    const TB = T * maxB;
    this.XZ = a.alloc(TB * G);
    this.HZ = a.alloc(TB * G);
    this.H = a.alloc(TB * U);
    this.dAx = a.alloc(TB * G);
    this.dAh = a.alloc(TB * G);
    this.dh = a.alloc(maxB * U);
    this.dhd = a.alloc(maxB * U);
    this.kT = a.alloc(G * I);
    this.rT = a.alloc(G * U);
    this.xT = a.alloc(I * TB);
    this.hT = a.alloc(U * TB);
    this.dX = a.alloc(TB * I);
  }

  forward(x: number, B: number): number {
    const { a, T, I, U } = this;
    const f = a.f;
    const G = 3 * U;
    const [W, R, bias] = this.params as [Param, Param, Param];
    this.x = x;
    a.broadcastRows(bias.at, G, this.XZ, T * B);
    a.mm(x, W.at, this.XZ, T * B, I, G, true);
    for (let t = 0; t < T; t++) {
      const xz = this.XZ + t * B * G;
      const hz = this.HZ + t * B * G;
      a.broadcastRows(bias.at + G, G, hz, B);
      if (t > 0) a.mm(this.H + (t - 1) * B * U, R.at, hz, B, U, G, true);
      const hPrev = this.H + (t - 1) * B * U;
      const h = this.H + t * B * U;
      for (let b = 0; b < B; b++) {
        const xb = xz + b * G;
        const hb = hz + b * G;
        const ub = b * U;
        for (let j = 0; j < U; j++) {
          const zg = sigmoid(f[xb + j]! + f[hb + j]!);
          const rg = sigmoid(f[xb + U + j]! + f[hb + U + j]!);
          const ng = tanh(f[xb + 2 * U + j]! + rg * f[hb + 2 * U + j]!);
          f[xb + j] = zg;
          f[xb + U + j] = rg;
          f[xb + 2 * U + j] = ng;
          f[h + ub + j] = zg * (t > 0 ? f[hPrev + ub + j]! : 0) + (1 - zg) * ng;
        }
      }
    }
    return this.seqOut ? this.H : this.H + (T - 1) * B * U;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    const { a, T, I, U } = this;
    const f = a.f;
    const G = 3 * U;
    const BU = B * U;
    const [W, R, bias] = this.params as [Param, Param, Param];
    const dh = this.dh;
    if (T > 1) a.transpose(R.at, U, G, this.rT);
    for (let t = T - 1; t >= 0; t--) {
      if (t === T - 1) {
        if (this.seqOut) f.copyWithin(dh, dy + t * BU, dy + (t + 1) * BU);
        else f.copyWithin(dh, dy, dy + BU);
      } else if (this.seqOut) {
        const o = dy + t * BU;
        for (let k = 0; k < BU; k++) f[dh + k] += f[o + k]!;
      }
      const xz = this.XZ + t * B * G;
      const hz = this.HZ + t * B * G;
      const dax = this.dAx + t * B * G;
      const dah = this.dAh + t * B * G;
      const hPrev = this.H + (t - 1) * BU;
      for (let b = 0; b < B; b++) {
        const xb = xz + b * G;
        const hb = hz + b * G;
        const ax = dax + b * G;
        const ah = dah + b * G;
        const ub = b * U;
        for (let j = 0; j < U; j++) {
          const zg = f[xb + j]!;
          const rg = f[xb + U + j]!;
          const ng = f[xb + 2 * U + j]!;
          const hn = f[hb + 2 * U + j]!;
          const dht = f[dh + ub + j]!;
          const hp = t > 0 ? f[hPrev + ub + j]! : 0;
          const dzp = dht * (hp - ng) * zg * (1 - zg);
          const dnp = dht * (1 - zg) * (1 - ng * ng);
          const drp = dnp * hn * rg * (1 - rg);
          f[ax + j] = dzp;
          f[ax + U + j] = drp;
          f[ax + 2 * U + j] = dnp;
          f[ah + j] = dzp;
          f[ah + U + j] = drp;
          f[ah + 2 * U + j] = dnp * rg;
          f[this.dhd + ub + j] = dht * zg;
        }
      }
      if (t > 0) {
        a.mm(dah, this.rT, dh, B, G, U, false);
        for (let k = 0; k < BU; k++) f[dh + k] += f[this.dhd + k]!;
      }
    }
    const TB = T * B;
    a.addColumnSums(this.dAx, TB, G, bias.grad);
    a.addColumnSums(this.dAh, TB, G, bias.grad + G);
    if (T > 1) {
      a.transpose(this.H, (T - 1) * B, U, this.hT);
      a.mm(this.hT, this.dAh + B * G, R.grad, U, (T - 1) * B, G, true);
    }
    a.transpose(this.x, TB, I, this.xT);
    a.mm(this.xT, this.dAx, W.grad, I, TB, G, true);
    if (!needDx) return -1;
    a.transpose(W.at, I, G, this.kT);
    a.mm(this.dAx, this.kT, this.dX, TB, G, I, false);
    return this.dX;
  }
}

/** Conv1D, `same` padding, as im2col + one product over every (step, window) row. */
class ConvLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[];
  private readonly padL: number;
  private readonly col: number;
  private readonly colT: number;
  private readonly Y: number;
  private readonly kT: number;
  private readonly dCol: number;
  private readonly dX: number;

  constructor(
    private readonly a: Arena,
    private readonly T: number,
    private readonly C: number,
    private readonly F: number,
    private readonly k: number,
    private readonly relu: boolean,
    maxB: number,
    alloc: (n: number) => Param,
  ) {
    this.params = [alloc(k * C * F), alloc(F)];
    this.out = { steps: T, width: F };
    this.padL = Math.floor((k - 1) / 2);
    const TB = T * maxB;
    this.col = a.alloc(TB * k * C);
    this.colT = a.alloc(TB * k * C);
    this.Y = a.alloc(TB * F);
    this.kT = a.alloc(F * k * C);
    this.dCol = a.alloc(TB * k * C);
    this.dX = a.alloc(TB * C);
  }

  forward(x: number, B: number): number {
    const { a, T, C, F, k, padL } = this;
    const f = a.f;
    const kc = k * C;
    const [K, bias] = this.params as [Param, Param];
    for (let t = 0; t < T; t++) {
      for (let q = 0; q < k; q++) {
        const ts = t - padL + q;
        for (let b = 0; b < B; b++) {
          const dst = this.col + (t * B + b) * kc + q * C;
          if (ts < 0 || ts >= T) f.fill(0, dst, dst + C);
          else f.copyWithin(dst, x + (ts * B + b) * C, x + (ts * B + b) * C + C);
        }
      }
    }
    a.broadcastRows(bias.at, F, this.Y, T * B);
    a.mm(this.col, K.at, this.Y, T * B, kc, F, true);
    if (this.relu) for (let i = this.Y, e = this.Y + T * B * F; i < e; i++) if (f[i]! < 0) f[i] = 0;
    return this.Y;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    const { a, T, C, F, k, padL } = this;
    const f = a.f;
    const kc = k * C;
    const TB = T * B;
    const [K, bias] = this.params as [Param, Param];
    if (this.relu) for (let i = 0, n = TB * F; i < n; i++) if (!(f[this.Y + i]! > 0)) f[dy + i] = 0;
    a.addColumnSums(dy, TB, F, bias.grad);
    a.transpose(this.col, TB, kc, this.colT);
    a.mm(this.colT, dy, K.grad, kc, TB, F, true);
    if (!needDx) return -1;
    a.transpose(K.at, kc, F, this.kT);
    a.mm(dy, this.kT, this.dCol, TB, F, kc, false);
    f.fill(0, this.dX, this.dX + TB * C);
    for (let t = 0; t < T; t++) {
      for (let q = 0; q < k; q++) {
        const ts = t - padL + q;
        if (ts < 0 || ts >= T) continue;
        for (let b = 0; b < B; b++) {
          const src = this.dCol + (t * B + b) * kc + q * C;
          const dst = this.dX + (ts * B + b) * C;
          for (let c = 0; c < C; c++) f[dst + c] += f[src + c]!;
        }
      }
    }
    return this.dX;
  }
}

class MaxPoolLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[] = [];
  private readonly Y: number;
  private readonly dX: number;
  private readonly arg: Int32Array;

  constructor(
    private readonly a: Arena,
    private readonly T: number,
    private readonly C: number,
    private readonly pool: number,
    maxB: number,
  ) {
    const To = Math.floor(T / pool);
    this.out = { steps: To, width: C };
    this.Y = a.alloc(To * maxB * C);
    this.dX = a.alloc(T * maxB * C);
    this.arg = new Int32Array(To * maxB * C);
  }

  forward(x: number, B: number): number {
    const f = this.a.f;
    const { C, pool } = this;
    const To = this.out.steps;
    const BC = B * C;
    for (let t = 0; t < To; t++) {
      for (let i = 0; i < BC; i++) {
        let best = x + t * pool * BC + i;
        for (let p = 1; p < pool; p++) {
          const at = x + (t * pool + p) * BC + i;
          if (f[at]! > f[best]!) best = at;
        }
        this.arg[t * BC + i] = best - x;
        f[this.Y + t * BC + i] = f[best]!;
      }
    }
    return this.Y;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    if (!needDx) return -1;
    const f = this.a.f;
    const n = this.out.steps * B * this.C;
    f.fill(0, this.dX, this.dX + this.T * B * this.C);
    for (let i = 0; i < n; i++) f[this.dX + this.arg[i]!] += f[dy + i]!;
    return this.dX;
  }
}

class GlobalAvgLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[] = [];
  private readonly Y: number;
  private readonly dX: number;

  constructor(
    private readonly a: Arena,
    private readonly T: number,
    private readonly C: number,
    maxB: number,
  ) {
    this.out = { steps: 0, width: C };
    this.Y = a.alloc(maxB * C);
    this.dX = a.alloc(T * maxB * C);
  }

  forward(x: number, B: number): number {
    const f = this.a.f;
    const BC = B * this.C;
    f.fill(0, this.Y, this.Y + BC);
    for (let t = 0; t < this.T; t++) for (let i = 0; i < BC; i++) f[this.Y + i] += f[x + t * BC + i]!;
    for (let i = 0; i < BC; i++) f[this.Y + i] = f[this.Y + i]! / this.T;
    return this.Y;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    if (!needDx) return -1;
    const f = this.a.f;
    const BC = B * this.C;
    for (let t = 0; t < this.T; t++) for (let i = 0; i < BC; i++) f[this.dX + t * BC + i] = f[dy + i]! / this.T;
    return this.dX;
  }
}

/** Inverted dropout (Keras `Dropout`): kept values scaled by 1/(1 − rate) while training. */
class DropoutLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[] = [];
  private readonly Y: number;
  readonly mask: Float32Array;
  private active = false;

  constructor(
    private readonly a: Arena,
    private readonly width: number,
    private readonly rate: number,
    maxB: number,
    private readonly random: () => number,
  ) {
    this.out = { steps: 0, width };
    this.Y = a.alloc(maxB * width);
    this.mask = new Float32Array(maxB * width);
  }

  /** Set by tests: the next training forward uses this mask (values 0 or 1/(1 − rate)) instead of drawing one. */
  fixedMask: Float32Array | undefined;

  forward(x: number, B: number, training: boolean): number {
    this.active = training && this.rate > 0;
    if (!this.active) return x;
    const f = this.a.f;
    const n = B * this.width;
    if (this.fixedMask) this.mask.set(this.fixedMask.subarray(0, n));
    else {
      const keep = 1 / (1 - this.rate);
      for (let i = 0; i < n; i++) this.mask[i] = this.random() < this.rate ? 0 : keep;
    }
    for (let i = 0; i < n; i++) f[this.Y + i] = f[x + i]! * this.mask[i]!;
    return this.Y;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    if (!needDx) return -1;
    if (!this.active) return dy;
    const f = this.a.f;
    const n = B * this.width;
    for (let i = 0; i < n; i++) f[dy + i] = f[dy + i]! * this.mask[i]!;
    return dy;
  }
}

class DenseLayer implements Layer {
  readonly out: Dims;
  readonly params: Param[];
  private x = 0;
  private readonly Y: number;
  private readonly xT: number;
  private readonly kT: number;
  private readonly dX: number;

  constructor(
    private readonly a: Arena,
    private readonly I: number,
    private readonly O: number,
    private readonly relu: boolean,
    maxB: number,
    alloc: (n: number) => Param,
  ) {
    this.params = [alloc(I * O), alloc(O)];
    this.out = { steps: 0, width: O };
    this.Y = a.alloc(maxB * O);
    this.xT = a.alloc(I * maxB);
    this.kT = a.alloc(O * I);
    this.dX = a.alloc(maxB * I);
  }

  forward(x: number, B: number): number {
    const { a, I, O } = this;
    const [K, bias] = this.params as [Param, Param];
    this.x = x;
    a.broadcastRows(bias.at, O, this.Y, B);
    a.mm(x, K.at, this.Y, B, I, O, true);
    if (this.relu) for (let i = this.Y, e = this.Y + B * O; i < e; i++) if (a.f[i]! < 0) a.f[i] = 0;
    return this.Y;
  }

  backward(dy: number, B: number, needDx: boolean): number {
    const { a, I, O } = this;
    const f = a.f;
    const [K, bias] = this.params as [Param, Param];
    if (this.relu) for (let i = 0; i < B * O; i++) if (!(f[this.Y + i]! > 0)) f[dy + i] = 0;
    a.addColumnSums(dy, B, O, bias.grad);
    a.transpose(this.x, B, I, this.xT);
    a.mm(this.xT, dy, K.grad, I, B, O, true);
    if (!needDx) return -1;
    a.transpose(K.at, I, O, this.kT);
    a.mm(dy, this.kT, this.dX, B, O, I, false);
    return this.dX;
  }
}

/** How the network is trained: the head's loss, the largest batch, dropout before the last dense layer. */
export interface NetOptions {
  /** `cce`: softmax + categorical cross-entropy on the last layer's logits; `mse`: linear + mean squared error. */
  loss: 'cce' | 'mse';
  maxBatch: number;
  dropout: number;
  /** Uniform [0, 1) source for dropout masks (seeded by the caller). */
  random: () => number;
}

/**
 * A sequence network being trained. Construct it from initial weights; then per batch
 * `lossAndGrad` (forward, loss, backward) and `adamStep`; `weights()` exports the current values.
 */
export class SeqNetTrainer {
  private readonly a = new Arena();
  private readonly layers: Layer[] = [];
  private readonly allParams: Param[] = [];
  private readonly pStart: number;
  private readonly pEnd: number;
  private readonly gStart: number;
  private readonly mStart: number;
  private readonly vStart: number;
  private readonly input: number;
  private readonly dOut: number;
  private dropout: DropoutLayer | undefined;
  readonly steps: number;
  readonly channels: number;
  readonly outputs: number;
  private step = 0;

  constructor(
    private readonly spec: SeqNetWeights,
    readonly options: NetOptions,
  ) {
    const a = this.a;
    const maxB = options.maxBatch;
    this.steps = spec.steps;
    this.channels = spec.channels;
    // Parameters first, all in one run (then gradients, Adam's m and v in runs of the same
    // layout), so the optimizer and the snapshots work on flat ranges.
    const sizes: number[] = [];
    const pendingAlloc = (n: number): Param => {
      sizes.push(n);
      return { at: -1, grad: -1, n };
    };
    let dims: Dims = { steps: spec.steps, width: spec.channels };
    const last = spec.layers.length - 1;
    spec.layers.forEach((l: SeqLayer, i) => {
      let layer: Layer;
      switch (l.type) {
        case 'conv1d':
          layer = new ConvLayer(a, dims.steps, l.inChannels, l.filters, l.kernelSize, l.activation === 'relu', maxB, pendingAlloc);
          break;
        case 'maxpool1d':
          layer = new MaxPoolLayer(a, dims.steps, dims.width, l.pool, maxB);
          break;
        case 'lstm':
          layer = new LstmLayer(a, dims.steps, l.inputSize, l.units, l.returnSequences, maxB, pendingAlloc);
          break;
        case 'gru':
          layer = new GruLayer(a, dims.steps, l.inputSize, l.units, l.returnSequences, maxB, pendingAlloc);
          break;
        case 'globalavgpool1d':
          layer = new GlobalAvgLayer(a, dims.steps, dims.width, maxB);
          break;
        case 'dense': {
          if (i === last && options.dropout > 0) {
            this.dropout = new DropoutLayer(a, l.inputSize, options.dropout, maxB, options.random);
            this.layers.push(this.dropout);
          }
          if (i === last && l.activation !== (options.loss === 'cce' ? 'softmax' : 'linear'))
            throw Errors.internal(`a ${options.loss} head needs a ${options.loss === 'cce' ? 'softmax' : 'linear'} last layer`);
          layer = new DenseLayer(a, l.inputSize, l.units, l.activation === 'relu', maxB, pendingAlloc);
          break;
        }
      }
      this.layers.push(layer);
      this.allParams.push(...layer.params);
      dims = layer.out;
    });
    this.outputs = dims.width;
    // Lay the parameter runs out.
    const total = sizes.reduce((s, n) => s + Math.ceil(n / 4) * 4, 0);
    this.pStart = a.alloc(total);
    this.pEnd = this.pStart + total;
    this.gStart = a.alloc(total);
    this.mStart = a.alloc(total);
    this.vStart = a.alloc(total);
    let off = 0;
    for (const p of this.allParams) {
      p.at = this.pStart + off;
      p.grad = this.gStart + off;
      off += Math.ceil(p.n / 4) * 4;
    }
    this.input = a.alloc(spec.steps * maxB * spec.channels);
    this.dOut = a.alloc(maxB * this.outputs);
    a.finish();
    this.setWeights(spec);
  }

  /** The values of every parameter array, in `SeqLayer` field order (kernel, recurrentKernel, bias). */
  paramViews(): Float32Array[] {
    return this.allParams.map((p) => this.a.f.subarray(p.at, p.at + p.n));
  }

  /** The gradients of the last `lossAndGrad`, laid out as `paramViews`. */
  gradViews(): Float32Array[] {
    return this.allParams.map((p) => this.a.f.subarray(p.grad, p.grad + p.n));
  }

  /** Loads the values of `w` (same architecture) and resets Adam. */
  setWeights(w: SeqNetWeights): void {
    const views = this.paramViews();
    let k = 0;
    for (const l of w.layers) {
      for (const arr of layerArrays(l)) views[k++]!.set(arr);
    }
    const f = this.a.f;
    f.fill(0, this.mStart, this.mStart + (this.pEnd - this.pStart));
    f.fill(0, this.vStart, this.vStart + (this.pEnd - this.pStart));
    this.step = 0;
  }

  /** The current values as `SeqNetWeights` (numbers from Float32). */
  weights(): SeqNetWeights {
    const views = this.paramViews();
    let k = 0;
    const layers = this.spec.layers.map((l): SeqLayer => {
      const next = () => Array.from(views[k++]!);
      switch (l.type) {
        case 'conv1d':
          return { ...l, kernel: next(), bias: next() };
        case 'lstm':
        case 'gru':
          return { ...l, kernel: next(), recurrentKernel: next(), bias: next() };
        case 'dense':
          return { ...l, kernel: next(), bias: next() };
        default:
          return { ...l };
      }
    });
    return { steps: this.spec.steps, channels: this.spec.channels, layers };
  }

  /** A copy of every parameter (for early stopping's best epoch). */
  snapshot(): Float32Array {
    return this.a.f.slice(this.pStart, this.pEnd);
  }

  restore(s: Float32Array): void {
    this.a.f.set(s, this.pStart);
  }

  /** Uses `mask` (B × width of the last dense layer's input) as the next dropout mask; tests only. */
  setDropoutMask(mask: Float32Array | undefined): void {
    if (this.dropout) this.dropout.fixedMask = mask;
  }

  /** Copies windows `rows` of `x` (step-major rows of steps × channels) into the input, time-major. */
  private stage(x: Float32Array, rows: ArrayLike<number>, from: number, B: number): void {
    const f = this.a.f;
    const T = this.steps;
    const C = this.channels;
    const w = T * C;
    for (let b = 0; b < B; b++) {
      const src = rows[from + b]! * w;
      for (let t = 0; t < T; t++) {
        const dst = this.input + (t * B + b) * C;
        const s = src + t * C;
        for (let c = 0; c < C; c++) f[dst + c] = x[s + c]!;
      }
    }
  }

  private forward(B: number, training: boolean): number {
    let h = this.input;
    for (const l of this.layers) h = l.forward(h, B, training);
    return h;
  }

  /**
   * Forward, loss and backward on the windows `rows[from … from+B)` of `x`. `y` holds class
   * indices (cce) or `outputs` targets per row (mse); `rowW` optional per-row weights. The loss is
   * Keras's: the mean over the batch of weight × (cross-entropy, or the mean over outputs of the
   * squared error). Gradients replace the previous ones; returns the loss.
   */
  lossAndGrad(x: Float32Array, y: ArrayLike<number>, rowW: ArrayLike<number> | undefined, rows: ArrayLike<number>, from: number, B: number): number {
    const f = this.a.f;
    const O = this.outputs;
    this.stage(x, rows, from, B);
    const out = this.forward(B, true);
    let loss = 0;
    const dOut = this.dOut;
    for (let b = 0; b < B; b++) {
      const r = rows[from + b]!;
      const w = rowW ? rowW[r]! : 1;
      const o = out + b * O;
      const d = dOut + b * O;
      if (this.options.loss === 'cce') {
        let m = -Infinity;
        for (let j = 0; j < O; j++) if (f[o + j]! > m) m = f[o + j]!;
        let s = 0;
        for (let j = 0; j < O; j++) s += Math.exp(f[o + j]! - m);
        const lse = m + Math.log(s);
        const cls = y[r]!;
        loss += w * (lse - f[o + cls]!);
        for (let j = 0; j < O; j++) f[d + j] = (w * (Math.exp(f[o + j]! - lse) - (j === cls ? 1 : 0))) / B;
      } else {
        let se = 0;
        for (let j = 0; j < O; j++) {
          const e = f[o + j]! - y[r * O + j]!;
          se += e * e;
          f[d + j] = (w * 2 * e) / (B * O);
        }
        loss += (w * se) / O;
      }
    }
    f.fill(0, this.gStart, this.gStart + (this.pEnd - this.pStart));
    let g = dOut;
    for (let i = this.layers.length - 1; i >= 0; i--) g = this.layers[i]!.backward(g, B, i > 0);
    return loss / B;
  }

  /**
   * One step of Keras's Adam over every parameter:
   * `α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `w ← w − α·m/(√v + ε)`.
   */
  adamStep(lr: number): void {
    const f = this.a.f;
    const { beta1, beta2, epsilon } = ADAM;
    this.step++;
    const alpha = (lr * Math.sqrt(1 - beta2 ** this.step)) / (1 - beta1 ** this.step);
    const n = this.pEnd - this.pStart;
    const p = this.pStart;
    const g = this.gStart;
    const m = this.mStart;
    const v = this.vStart;
    for (let i = 0; i < n; i++) {
      const gi = f[g + i]!;
      const mi = beta1 * f[m + i]! + (1 - beta1) * gi;
      const vi = beta2 * f[v + i]! + (1 - beta2) * gi * gi;
      f[m + i] = mi;
      f[v + i] = vi;
      f[p + i] = f[p + i]! - (alpha * mi) / (Math.sqrt(vi) + epsilon);
    }
  }

  /**
   * The network's outputs (after softmax for cce) for windows `rows` of `x`, in Float32, batch by
   * batch; `rows` defaults to all of them.
   */
  predict(x: Float32Array, nRows: number, rows?: ArrayLike<number>): Float32Array {
    const f = this.a.f;
    const O = this.outputs;
    const idx = rows ?? Int32Array.from({ length: nRows }, (_, i) => i);
    const res = new Float32Array(idx.length * O);
    const maxB = this.options.maxBatch;
    for (let s = 0; s < idx.length; s += maxB) {
      const B = Math.min(maxB, idx.length - s);
      this.stage(x, idx, s, B);
      const out = this.forward(B, false);
      for (let b = 0; b < B; b++) {
        const o = out + b * O;
        const d = (s + b) * O;
        if (this.options.loss === 'cce') {
          let m = -Infinity;
          for (let j = 0; j < O; j++) if (f[o + j]! > m) m = f[o + j]!;
          let sum = 0;
          for (let j = 0; j < O; j++) sum += res[d + j] = Math.exp(f[o + j]! - m);
          for (let j = 0; j < O; j++) res[d + j] = res[d + j]! / sum;
        } else for (let j = 0; j < O; j++) res[d + j] = f[o + j]!;
      }
    }
    return res;
  }
}

/** A layer's trainable arrays in field order. */
export function layerArrays(l: SeqLayer): number[][] {
  switch (l.type) {
    case 'conv1d':
    case 'dense':
      return [l.kernel, l.bias];
    case 'lstm':
    case 'gru':
      return [l.kernel, l.recurrentKernel, l.bias];
    default:
      return [];
  }
}
