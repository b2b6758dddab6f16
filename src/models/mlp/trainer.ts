/**
 * The MLP's fused trainer: Dense(relu) [+ Dropout] layers and a softmax or linear head, forward,
 * hand-derived backward, L2 and Adam in one pass per batch, in Float32 over one
 * `WebAssembly.Memory` allocated once. Matrix products go to the SIMD kernel the sequence trainer
 * uses (`seqnet/gemm.ts`); the element-wise work is plain TypeScript over Float32Array views of the
 * same memory. Nothing is allocated per step (but a dropout mask's seed string).
 *
 * Why not TensorFlow.js (which trained the MLP before): on the reference network (30→64→32→2,
 * batch 32) tfjs-wasm spent about 1.3 ms a step in per-op dispatch and its autodiff tape for
 * some 0.4 MFLOP of arithmetic; here a step is six small products and a few loops.
 *
 * Arithmetic follows what the tfjs loop did, so `trainer.test.ts` can hold the two to each other
 * (and a seed trains the network it trained with tfjs, to rounding):
 * - initial weights and dropout masks are drawn as tfjs drew them (`init.ts`, `forward`);
 * - a dense layer starts from its bias and adds `x[k]·w[k][j]` for k in order, in float32 (the
 *   SIMD kernel multiplies then adds, no fused multiply-add); tfjs's XNNPACK kernels block their
 *   sums their own way, so products agree to float32 rounding, not always bit for bit;
 * - the loss is the mean over the batch of row weight × (cross-entropy from logits, or the squared
 *   error averaged over the outputs), plus `l2 · Σ kernel²` (Keras's l2; biases unpenalised);
 * - Adam is tfjs's `AdamOptimizer` op for op, each op rounded to float32 (`Math.fround`): β₁ 0.9,
 *   β₂ 0.999, ε 1e-7 (the float32 backend's epsilon), bias correction by running β powers.
 * Gradients at the head are computed in double from the float32 logits and stored in float32.
 */
import { Errors } from '../../core/index.js';
import { instantiateGemm, wasm } from '../seqnet/gemm.js';
import type { Gemm } from '../seqnet/gemm.js';
import { Alea } from './init.js';

/** tfjs's `tf.train.adam(lr)` defaults on a float32 backend, which the trainer keeps. */
export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;

/** Elements (Float32) in a 64 KiB page. */
const PAGE = 16384;
/** The largest memory the trainer asks for: 2 GiB (the kernel's byte offsets are i32). */
const MAX_BYTES = 2 ** 31;

const fr = Math.fround;

/** The network and how it is trained. */
export interface MlpNetOptions {
  inDim: number;
  /** Hidden widths (relu), possibly none. */
  units: readonly number[];
  outDim: number;
  /** `cce`: softmax head, cross-entropy on the logits; `mse`: linear head, squared error averaged over the outputs. */
  loss: 'cce' | 'mse';
  /** The largest batch `trainBatch` and `predict` are given. */
  maxBatch: number;
  /** Inverted dropout after every hidden layer (0: none). */
  dropout: number;
  l2: number;
  learningRate: number;
  /**
   * Uniform [0, 1) source (seeded by the caller) of one seed per dropout mask: the part
   * `Math.random` played for tfjs's dropout (see `forward`).
   */
  random: () => number;
}

/**
 * A network being trained. Construct it, `setWeights` the initial values, then `trainBatch` per
 * batch (forward, loss, backward, one Adam step); `predict` runs it without dropout.
 */
export class MlpTrainer {
  private readonly f: Float32Array;
  private readonly gemm: Gemm;
  private readonly dims: number[];
  private readonly nLayers: number;
  /** Per layer: kernel, bias, and their gradients (element offsets). */
  private readonly kAt: number[] = [];
  private readonly bAt: number[] = [];
  private readonly gkAt: number[] = [];
  private readonly gbAt: number[] = [];
  /** act[0]: the staged input; act[l]: layer l's output (after relu and dropout; logits for the last). */
  private readonly act: number[] = [];
  /** dz[l]: dLoss/d(pre-activation of layer l), l ≥ 1. */
  private readonly dz: number[] = [];
  /** Dropout multipliers (0 or 1/keep) of hidden layer l. */
  private readonly mask: number[] = [];
  /** Scratch for transposes. */
  private readonly tmp: number;
  private readonly pStart: number;
  private readonly pEnd: number;
  private readonly gStart: number;
  private readonly mStart: number;
  private readonly vStart: number;
  private accBeta1 = fr(ADAM.beta1);
  private accBeta2 = fr(ADAM.beta2);
  private readonly maskRandom = new Alea('');

  constructor(private readonly o: MlpNetOptions) {
    this.dims = [o.inDim, ...o.units, o.outDim];
    this.nLayers = this.dims.length - 1;
    const maxB = Math.max(1, o.maxBatch);
    let top = 0;
    // 16-byte aligned runs, so the SIMD kernel's vector loads stay aligned.
    const alloc = (n: number): number => {
      const at = top;
      top += Math.ceil(Math.max(n, 1) / 4) * 4;
      return at;
    };
    // Parameters in one run (kernel, bias per layer), then gradients, Adam's m and v in runs of the
    // same layout: the optimizer and the snapshots work on flat ranges.
    const sizes: number[] = [];
    for (let l = 0; l < this.nLayers; l++) sizes.push(this.dims[l]! * this.dims[l + 1]!, this.dims[l + 1]!);
    const total = sizes.reduce((s, n) => s + Math.ceil(n / 4) * 4, 0);
    this.pStart = alloc(total);
    this.pEnd = this.pStart + total;
    this.gStart = alloc(total);
    this.mStart = alloc(total);
    this.vStart = alloc(total);
    let off = 0;
    sizes.forEach((n, i) => {
      const l = i >> 1;
      if (i % 2 === 0) {
        this.kAt[l] = this.pStart + off;
        this.gkAt[l] = this.gStart + off;
      } else {
        this.bAt[l] = this.pStart + off;
        this.gbAt[l] = this.gStart + off;
      }
      off += Math.ceil(n / 4) * 4;
    });
    let widest = 0;
    for (let l = 0; l <= this.nLayers; l++) {
      this.act.push(alloc(maxB * this.dims[l]!));
      this.dz.push(l === 0 ? -1 : alloc(maxB * this.dims[l]!));
      this.mask.push(l > 0 && l < this.nLayers && o.dropout > 0 ? alloc(maxB * this.dims[l]!) : -1);
      if (l < this.nLayers) widest = Math.max(widest, this.dims[l]! * maxB, this.dims[l]! * this.dims[l + 1]!);
    }
    this.tmp = alloc(widest);
    const bytes = top * 4;
    if (bytes > MAX_BYTES)
      throw Errors.badParam('batch_size', `the network needs ${Math.ceil(bytes / 2 ** 20)} MiB of training buffers at this batch size; use a smaller batch_size or fewer units`);
    const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(top / PAGE)) });
    this.f = new Float32Array(memory.buffer);
    this.gemm = instantiateGemm(memory);
  }

  /** Loads kernels (`dims[l] × dims[l+1]`, row-major) and biases, and resets Adam. */
  setWeights(kernels: readonly ArrayLike<number>[], biases: readonly ArrayLike<number>[]): void {
    const f = this.f;
    for (let l = 0; l < this.nLayers; l++) {
      const k = kernels[l]!;
      const b = biases[l]!;
      if (k.length !== this.dims[l]! * this.dims[l + 1]! || b.length !== this.dims[l + 1]!) throw Errors.internal(`MLP layer ${l}: weights do not fit the network`);
      for (let i = 0; i < k.length; i++) f[this.kAt[l]! + i] = k[i]!;
      for (let i = 0; i < b.length; i++) f[this.bAt[l]! + i] = b[i]!;
    }
    f.fill(0, this.mStart, this.mStart + (this.pEnd - this.pStart));
    f.fill(0, this.vStart, this.vStart + (this.pEnd - this.pStart));
    this.accBeta1 = fr(ADAM.beta1);
    this.accBeta2 = fr(ADAM.beta2);
  }

  /** Copies of the current kernels and biases. */
  weights(): { kernels: Float32Array[]; biases: Float32Array[] } {
    const kernels: Float32Array[] = [];
    const biases: Float32Array[] = [];
    for (let l = 0; l < this.nLayers; l++) {
      kernels.push(this.f.slice(this.kAt[l]!, this.kAt[l]! + this.dims[l]! * this.dims[l + 1]!));
      biases.push(this.f.slice(this.bAt[l]!, this.bAt[l]! + this.dims[l + 1]!));
    }
    return { kernels, biases };
  }

  /** The gradients of the last `trainBatch` (before its Adam step), laid out as `weights()`; tests. */
  gradients(): { kernels: Float32Array[]; biases: Float32Array[] } {
    const kernels: Float32Array[] = [];
    const biases: Float32Array[] = [];
    for (let l = 0; l < this.nLayers; l++) {
      kernels.push(this.f.slice(this.gkAt[l]!, this.gkAt[l]! + this.dims[l]! * this.dims[l + 1]!));
      biases.push(this.f.slice(this.gbAt[l]!, this.gbAt[l]! + this.dims[l + 1]!));
    }
    return { kernels, biases };
  }

  /** Every parameter, for early stopping's best epoch. */
  snapshot(into?: Float32Array): Float32Array {
    const s = into ?? new Float32Array(this.pEnd - this.pStart);
    s.set(this.f.subarray(this.pStart, this.pEnd));
    return s;
  }

  restore(s: Float32Array): void {
    this.f.set(s, this.pStart);
  }

  /** Copies rows `rows[from … from+B)` of `x` (`rows` absent: rows from … from+B) into the input. */
  private stage(x: Float32Array, rows: ArrayLike<number> | undefined, from: number, B: number): void {
    const f = this.f;
    const cols = this.dims[0]!;
    const dst = this.act[0]!;
    for (let b = 0; b < B; b++) {
      const src = (rows ? rows[from + b]! : from + b) * cols;
      const d = dst + b * cols;
      for (let c = 0; c < cols; c++) f[d + c] = x[src + c]!;
    }
  }

  /** The forward pass over the staged B rows; returns the logits' offset (B × outDim). */
  private forward(B: number, training: boolean): number {
    const f = this.f;
    // tfjs's dropout in float32: keep where u + keep ≥ 1, kept values times 1/keep.
    const keep = fr(1 - this.o.dropout);
    const scale = fr(1 / keep);
    for (let l = 0; l < this.nLayers; l++) {
      const I = this.dims[l]!;
      const O = this.dims[l + 1]!;
      const y = this.act[l + 1]!;
      const bias = this.bAt[l]!;
      for (let r = 0; r < B; r++) f.copyWithin(y + r * O, bias, bias + O);
      this.gemm(this.act[l]! * 4, this.kAt[l]! * 4, y * 4, B, I, O, I, O, O, 1);
      if (l === this.nLayers - 1) break;
      const end = y + B * O;
      for (let i = y; i < end; i++) if (!(f[i]! > 0)) f[i] = 0;
      const m = this.mask[l + 1]!;
      if (training && m >= 0) {
        // tfjs drew each mask from a fresh Alea generator seeded with the next `Math.random()` as
        // a string (its unseeded `randomUniform`); drawing the same way keeps a seed's masks those
        // the tfjs engine drew, so a seed still trains the network it trained before.
        const u = this.maskRandom;
        u.reseed(this.o.random().toString());
        for (let i = 0; i < B * O; i++) {
          const mult = fr(fr(u.next()) + keep) >= 1 ? scale : 0;
          f[m + i] = mult;
          f[y + i] = f[y + i]! * mult;
        }
      }
    }
    return this.act[this.nLayers]!;
  }

  /**
   * One training step on rows `rows[from … from+B)` of `x` (rows × inDim): forward with dropout,
   * the loss, backward, and one Adam step. `y` holds a class index per row (cce) or `outDim`
   * targets per row (mse); `w` a weight per row. Returns the batch's loss (mean over its rows of
   * weight × loss, plus the L2 term) before the step.
   */
  trainBatch(x: Float32Array, y: ArrayLike<number>, w: ArrayLike<number>, rows: ArrayLike<number>, from: number, B: number): number {
    const f = this.f;
    const L = this.nLayers;
    const O = this.o.outDim;
    this.stage(x, rows, from, B);
    const out = this.forward(B, true);
    const d = this.dz[L]!;
    let loss = 0;
    if (this.o.loss === 'cce') {
      for (let b = 0; b < B; b++) {
        const r = rows[from + b]!;
        const wr = w[r]!;
        const o = out + b * O;
        let m = -Infinity;
        for (let j = 0; j < O; j++) if (f[o + j]! > m) m = f[o + j]!;
        let s = 0;
        for (let j = 0; j < O; j++) s += Math.exp(f[o + j]! - m);
        const lse = m + Math.log(s);
        const cls = y[r]!;
        loss += wr * (lse - f[o + cls]!);
        const g = wr / B;
        for (let j = 0; j < O; j++) f[d + b * O + j] = g * (Math.exp(f[o + j]! - lse) - (j === cls ? 1 : 0));
      }
    } else {
      for (let b = 0; b < B; b++) {
        const r = rows[from + b]!;
        const wr = w[r]!;
        const o = out + b * O;
        let se = 0;
        for (let j = 0; j < O; j++) {
          const e = f[o + j]! - y[r * O + j]!;
          se += e * e;
          f[d + b * O + j] = (wr * 2 * e) / (B * O);
        }
        loss += (wr * se) / O;
      }
    }
    loss /= B;
    const l2 = this.o.l2;
    if (l2 > 0) {
      let s = 0;
      for (let l = 0; l < L; l++) {
        const k = this.kAt[l]!;
        const end = k + this.dims[l]! * this.dims[l + 1]!;
        let sk = 0;
        for (let i = k; i < end; i++) sk += f[i]! * f[i]!;
        s += fr(l2 * fr(sk));
      }
      loss += s;
    }
    this.backward(B);
    this.adam();
    return loss;
  }

  private backward(B: number): void {
    const f = this.f;
    const l2x2 = 2 * this.o.l2;
    for (let l = this.nLayers - 1; l >= 0; l--) {
      const I = this.dims[l]!;
      const O = this.dims[l + 1]!;
      const dz = this.dz[l + 1]!;
      const x = this.act[l]!;
      // Bias gradient: column sums of dz, rows in order.
      const gb = this.gbAt[l]!;
      f.fill(0, gb, gb + O);
      for (let r = 0; r < B; r++) {
        const s = dz + r * O;
        for (let j = 0; j < O; j++) f[gb + j] += f[s + j]!;
      }
      // Kernel gradient: xᵀ · dz (I × O), plus the L2 term's 2·l2·k.
      this.transpose(x, B, I, this.tmp);
      this.gemm(this.tmp * 4, dz * 4, this.gkAt[l]! * 4, I, B, O, B, O, O, 0);
      if (l2x2 > 0) {
        const k = this.kAt[l]!;
        const g = this.gkAt[l]!;
        for (let i = 0; i < I * O; i++) f[g + i] += fr(l2x2 * f[k + i]!);
      }
      if (l === 0) break;
      // dLoss/d(input) = dz · kᵀ, then through dropout and relu into layer l's dz: the relu's
      // output after dropout is positive exactly where both let the gradient through.
      this.transpose(this.kAt[l]!, I, O, this.tmp);
      const dx = this.dz[l]!;
      this.gemm(dz * 4, this.tmp * 4, dx * 4, B, O, I, O, I, I, 0);
      const m = this.mask[l]!;
      const n = B * I;
      if (m >= 0) for (let i = 0; i < n; i++) f[dx + i] = f[x + i]! > 0 ? f[dx + i]! * f[m + i]! : 0;
      else for (let i = 0; i < n; i++) if (!(f[x + i]! > 0)) f[dx + i] = 0;
    }
  }

  /** tfjs's Adam, op for op in float32 (see the file's comment). */
  private adam(): void {
    const f = this.f;
    const b1 = fr(ADAM.beta1);
    const b2 = fr(ADAM.beta2);
    const c1 = fr(1 - ADAM.beta1);
    const c2 = fr(1 - ADAM.beta2);
    const eps = fr(ADAM.epsilon);
    const nlr = fr(-this.o.learningRate);
    const om1 = fr(1 - this.accBeta1);
    const om2 = fr(1 - this.accBeta2);
    const n = this.pEnd - this.pStart;
    const p = this.pStart;
    const g = this.gStart;
    const mm = this.mStart;
    const vv = this.vStart;
    for (let i = 0; i < n; i++) {
      const gi = f[g + i]!;
      const m = fr(fr(f[mm + i]! * b1) + fr(gi * c1));
      const v = fr(fr(f[vv + i]! * b2) + fr(fr(gi * gi) * c2));
      f[mm + i] = m;
      f[vv + i] = v;
      const mh = fr(m / om1);
      const vh = fr(v / om2);
      f[p + i] = fr(fr(mh / fr(fr(Math.sqrt(vh)) + eps)) * nlr) + f[p + i]!;
    }
    this.accBeta1 = fr(this.accBeta1 * b1);
    this.accBeta2 = fr(this.accBeta2 * b2);
  }

  /** dst[cols × rows] = src[rows × cols]ᵀ */
  private transpose(src: number, rows: number, cols: number, dst: number): void {
    const f = this.f;
    for (let r = 0; r < rows; r++) {
      const s = src + r * cols;
      for (let c = 0; c < cols; c++) f[dst + c * rows + r] = f[s + c]!;
    }
  }

  /**
   * The network's outputs without dropout for rows `rows` of `x` (`rows` absent: all `nRows`), in
   * float32: probabilities (cce, softmax in double from the float32 logits) or the linear outputs.
   * Writes into `into` when given (length rows × outDim).
   */
  predict(x: Float32Array, nRows: number, rows?: ArrayLike<number>, into?: Float32Array): Float32Array {
    const f = this.f;
    const O = this.o.outDim;
    const count = rows ? rows.length : nRows;
    const res = into ?? new Float32Array(count * O);
    const maxB = Math.max(1, this.o.maxBatch);
    for (let s = 0; s < count; s += maxB) {
      const B = Math.min(maxB, count - s);
      this.stage(x, rows, s, B);
      const out = this.forward(B, false);
      for (let b = 0; b < B; b++) {
        const o = out + b * O;
        const dst = (s + b) * O;
        if (this.o.loss === 'cce') {
          let m = -Infinity;
          for (let j = 0; j < O; j++) if (f[o + j]! > m) m = f[o + j]!;
          let sum = 0;
          for (let j = 0; j < O; j++) sum += Math.exp(f[o + j]! - m);
          for (let j = 0; j < O; j++) res[dst + j] = Math.exp(f[o + j]! - m) / sum;
        } else for (let j = 0; j < O; j++) res[dst + j] = f[o + j]!;
      }
    }
    return res;
  }
}
