import * as tf from '@tensorflow/tfjs-core';
// The CPU backend (a dependency of the WASM one): the WASM backend has no Conv1D gradient kernels.
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/index.js';
import { ADAM, buildSeqNet, orthogonal } from './build.js';
import type { SeqConfig } from './build.js';
import { seqnetForward } from './forward.js';
import { gemmJs, instantiateGemm, simdAvailable, wasm } from './gemm.js';
import { SeqNetTrainer } from './net.js';
import { randomSeqNet, tfReference } from './tfref.js';
import type { LayerPlan } from './tfref.js';
import type { SeqNetWeights } from './weights.js';

beforeAll(async () => {
  tf.env().set('IS_TEST', true); // no "install tfjs-node" banner
  expect(await tf.setBackend('cpu')).toBe(true);
});

describe('gemm (WebAssembly SIMD)', () => {
  it('is available and equals the plain product for every tile shape, with and without accumulation', () => {
    expect(simdAvailable()).toBe(true);
    const memory = new wasm.Memory({ initial: 8 });
    const gemm = instantiateGemm(memory);
    const f = new Float32Array(memory.buffer);
    const rng = new Rng(1);
    for (const [M, K, N] of [[32, 100, 400], [7, 5, 13], [1, 1, 1], [33, 17, 9], [5, 3, 4], [4, 0, 8], [9, 31, 12]] as const) {
      // Leading dimensions wider than the rows, to check the strides.
      const lda = K + 1;
      const ldb = N + 2;
      const ldc = N + 3;
      const a = 0;
      const b = a + M * lda + 3;
      const c = b + Math.max(K, 1) * ldb + 5;
      const end = c + M * ldc;
      for (const acc of [0, 1]) {
        for (let i = 0; i < end; i++) f[i] = rng.next() - 0.5;
        const want = f.slice(0, end);
        gemmJs(want, a, b, c, M, K, N, lda, ldb, ldc, acc);
        if (K > 0) gemm(a * 4, b * 4, c * 4, M, K, N, lda, ldb, ldc, acc);
        else gemmJs(f, a, b, c, M, K, N, lda, ldb, ldc, acc);
        let diff = 0;
        for (let i = 0; i < end; i++) diff = Math.max(diff, Math.abs(f[i]! - want[i]!));
        expect(diff, `${M}×${K}×${N} acc ${acc}`).toBeLessThan(1e-5);
      }
    }
  });
});

/** Our loss and gradients against TensorFlow.js autodiff on the same weights, batch and dropout mask. */
function compareGradients(w: SeqNetWeights, loss: 'cce' | 'mse', B: number, seed: number, dropout = 0): { lossRel: number; gradRel: number[] } {
  const rng = new Rng(seed);
  const T = w.steps;
  const C = w.channels;
  const last = w.layers[w.layers.length - 1]!;
  if (last.type !== 'dense') throw new Error('last layer must be dense');
  const O = last.units;
  const x = Float32Array.from({ length: B * T * C }, () => rng.normal());
  const y = loss === 'cce' ? Float64Array.from({ length: B }, () => rng.int(O)) : Float64Array.from({ length: B * O }, () => rng.normal() * 2);
  const rowW = Float64Array.from({ length: B }, () => 0.5 + rng.next());
  const rows = Int32Array.from({ length: B }, (_, i) => i);
  const net = new SeqNetTrainer(w, { loss, maxBatch: B + 3, dropout, random: () => rng.next() });
  let mask: Float32Array | undefined;
  if (dropout > 0) {
    mask = Float32Array.from({ length: B * last.inputSize }, () => (rng.next() < dropout ? 0 : 1 / (1 - dropout)));
    net.setDropoutMask(mask);
  }
  const ours = net.lossAndGrad(x, y, rowW, rows, 0, B);
  const grads = net.gradViews().map((g) => Float32Array.from(g));

  const ref = tfReference(w);
  const xt = tf.tensor3d(x, [B, T, C]);
  const wt = tf.tensor1d(Float32Array.from(rowW));
  const mt = mask ? tf.tensor2d(mask, [B, last.inputSize]) : undefined;
  const lossFn = (): tf.Scalar => {
    const z = ref.logits(xt, mt);
    const per =
      loss === 'cce'
        ? tf.neg(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(Int32Array.from(y), 'int32'), O), tf.logSoftmax(z)), 1))
        : tf.mean(tf.squaredDifference(z, tf.tensor2d(Float32Array.from(y), [B, O])), 1);
    return tf.mean(tf.mul(per, wt));
  };
  const { value, grads: tg } = tf.variableGrads(lossFn, ref.vars);
  const theirs = value.dataSync()[0]!;
  const gradRel = ref.vars.map((v, i) => {
    const g = tg[v.name]!.dataSync();
    const o = grads[i]!;
    expect(o.length).toBe(g.length);
    let diff = 0;
    let scale = 0;
    for (let k = 0; k < g.length; k++) {
      diff = Math.max(diff, Math.abs(o[k]! - g[k]!));
      scale = Math.max(scale, Math.abs(g[k]!));
    }
    return scale === 0 ? diff : diff / scale;
  });
  tf.dispose([xt, wt, value, ...Object.values(tg)]);
  mt?.dispose();
  ref.dispose();
  return { lossRel: Math.abs(ours - theirs) / Math.abs(theirs), gradRel };
}

const NETS: [string, number, number, LayerPlan[], 'cce' | 'mse', number][] = [
  ['the reference LSTM(100) on 10×10 → Dense(1), MSE, dropout 0.2', 10, 10, [{ type: 'lstm', units: 100, returnSequences: false }, { type: 'dense', units: 1, activation: 'linear' }], 'mse', 0.2],
  [
    'stacked LSTM → softmax, cross-entropy',
    6,
    3,
    [
      { type: 'lstm', units: 7, returnSequences: true },
      { type: 'lstm', units: 5, returnSequences: false },
      { type: 'dense', units: 3, activation: 'softmax' },
    ],
    'cce',
    0.3,
  ],
  [
    'stacked GRU (reset_after) → 2 regression outputs',
    7,
    4,
    [
      { type: 'gru', units: 6, returnSequences: true },
      { type: 'gru', units: 5, returnSequences: false },
      { type: 'dense', units: 2, activation: 'linear' },
    ],
    'mse',
    0,
  ],
  [
    'CNN: conv ×2 (odd, even kernels) → global average → softmax',
    9,
    3,
    [
      { type: 'conv1d', filters: 6, kernelSize: 3 },
      { type: 'conv1d', filters: 5, kernelSize: 4 },
      { type: 'globalavgpool1d' },
      { type: 'dense', units: 2, activation: 'softmax' },
    ],
    'cce',
    0.25,
  ],
  [
    'CNN-LSTM: conv ×2 → maxpool → LSTM → linear',
    11,
    2,
    [
      { type: 'conv1d', filters: 4, kernelSize: 5 },
      { type: 'conv1d', filters: 4, kernelSize: 2 },
      { type: 'maxpool1d', pool: 2 },
      { type: 'lstm', units: 5, returnSequences: false },
      { type: 'dense', units: 1, activation: 'linear' },
    ],
    'mse',
    0.1,
  ],
];

describe('SeqNetTrainer loss and gradients against TensorFlow.js', () => {
  for (const [name, T, C, plan, loss, dropout] of NETS) {
    it(name, () => {
      const w = randomSeqNet(T, C, plan, T * 7 + C, 0.4);
      // 13 rows: an odd batch exercises the 1-row tiles of the kernel.
      const { lossRel, gradRel } = compareGradients(w, loss, 13, 3, dropout);
      expect(lossRel).toBeLessThan(1e-5);
      for (const g of gradRel) expect(g).toBeLessThan(1e-4);
    });
  }

  it('predicts what seqnetForward predicts, and exports what it was given', () => {
    const w = randomSeqNet(8, 3, [{ type: 'conv1d', filters: 4, kernelSize: 3 }, { type: 'maxpool1d', pool: 2 }, { type: 'gru', units: 5, returnSequences: false }, { type: 'dense', units: 3, activation: 'softmax' }], 9);
    const rng = new Rng(4);
    const x = Float32Array.from({ length: 50 * 24 }, () => rng.normal());
    const net = new SeqNetTrainer(w, { loss: 'cce', maxBatch: 16, dropout: 0.5, random: () => rng.next() });
    const ours = net.predict(x, 50);
    const want = seqnetForward(w, { rows: 50, cols: 24, data: Float64Array.from(x) });
    for (let i = 0; i < want.length; i++) expect(Math.abs(ours[i]! - want[i]!)).toBeLessThan(1e-5);
    const back = net.weights();
    expect(back.layers.map((l) => l.type)).toEqual(w.layers.map((l) => l.type));
    const k0 = (back.layers[0] as { kernel: number[] }).kernel;
    const w0 = (w.layers[0] as { kernel: number[] }).kernel;
    for (let i = 0; i < w0.length; i++) expect(k0[i]).toBeCloseTo(w0[i]!, 6);
  });
});

describe('Keras Adam', () => {
  it('updates as tf.keras does: α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), w −= α·m/(√v + ε)', () => {
    const w = randomSeqNet(3, 2, [{ type: 'lstm', units: 2, returnSequences: false }, { type: 'dense', units: 1, activation: 'linear' }], 2);
    const rng = new Rng(2);
    const net = new SeqNetTrainer(w, { loss: 'mse', maxBatch: 4, dropout: 0, random: () => rng.next() });
    const x = Float32Array.from({ length: 4 * 6 }, () => rng.normal());
    const y = Float64Array.from({ length: 4 }, () => rng.normal());
    const rows = [0, 1, 2, 3];
    const p = net.paramViews().map((v) => Float64Array.from(v));
    const m = p.map((a) => new Float64Array(a.length));
    const v = p.map((a) => new Float64Array(a.length));
    const lr = 0.01;
    for (let t = 1; t <= 3; t++) {
      // Gradients at the current weights (the trainer's), then the Keras update in Float64.
      net.lossAndGrad(x, y, undefined, rows, 0, 4);
      const g = net.gradViews();
      const alpha = (lr * Math.sqrt(1 - ADAM.beta2 ** t)) / (1 - ADAM.beta1 ** t);
      p.forEach((arr, i) => {
        for (let k = 0; k < arr.length; k++) {
          const gk = g[i]![k]!;
          m[i]![k] = ADAM.beta1 * m[i]![k]! + (1 - ADAM.beta1) * gk;
          v[i]![k] = ADAM.beta2 * v[i]![k]! + (1 - ADAM.beta2) * gk * gk;
          arr[k] = net.paramViews()[i]![k]! - (alpha * m[i]![k]!) / (Math.sqrt(v[i]![k]!) + ADAM.epsilon);
        }
      });
      net.adamStep(lr);
      net.paramViews().forEach((arr, i) => {
        for (let k = 0; k < arr.length; k++) expect(Math.abs(arr[k]! - p[i]![k]!)).toBeLessThan(1e-6);
      });
    }
  });
});

describe('initialisation', () => {
  const config: SeqConfig = { units: 100, layers: 1, filters: 8, kernelSize: 3, pool: 2, dropout: 0.2, learningRate: 0.001, epochs: 1, batchSize: 32, patience: 1, classWeight: 'none' };

  it('orthogonal matrices have orthonormal rows (wide) or columns (tall)', () => {
    for (const [r, c] of [[5, 20], [20, 5], [6, 6]] as const) {
      const q = orthogonal(new Rng(r * c), r, c);
      const n = Math.min(r, c);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let d = 0;
          for (let k = 0; k < Math.max(r, c); k++) d += r < c ? q[i * c + k]! * q[j * c + k]! : q[k * c + i]! * q[k * c + j]!;
          expect(d).toBeCloseTo(i === j ? 1 : 0, 10);
        }
    }
  });

  it('is seeded: the same seed gives the same network, another seed another', () => {
    const a = buildSeqNet('gru', { ...config, units: 4 }, { steps: 5, channels: 3 }, 2, 'softmax', 1);
    const b = buildSeqNet('gru', { ...config, units: 4 }, { steps: 5, channels: 3 }, 2, 'softmax', 1);
    const c = buildSeqNet('gru', { ...config, units: 4 }, { steps: 5, channels: 3 }, 2, 'softmax', 2);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });
});
