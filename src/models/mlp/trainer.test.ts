/**
 * The fused MLP trainer against TensorFlow.js (the engine it replaced) on the same network, the
 * same initial weights and the same batches; and the trained model against the main thread's
 * forward pass and its ONNX export.
 */
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/index.js';
import { toOnnx } from '../onnx/index.js';
import { trainMlp } from './engine.js';
import { mlp } from './index.js';
import { initialWeights } from './init.js';
import type { MlpConfig, MlpJob } from './protocol.js';
import { buildModel, ensureBackend, modelWeights, referenceSteps } from './tfref.js';
import type { ReferenceBatch } from './tfref.js';
import { MlpTrainer } from './trainer.js';

beforeAll(() => ensureBackend());

/** Seeded standard-normal rows, a label or targets from a fixed rule, float32-representable weights. */
function problem(rows: number, cols: number, outDim: number, loss: 'cce' | 'mse', seed: number) {
  const rng = new Rng(seed);
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const y = new Float32Array(loss === 'cce' ? rows : rows * outDim);
  const w = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const a = x[r * cols]! + 0.7 * x[r * cols + 1]! - 0.5 * x[r * cols + 2]!;
    if (loss === 'cce') y[r] = Math.min(outDim - 1, Math.max(0, Math.floor(a + outDim / 2)));
    else for (let c = 0; c < outDim; c++) y[r * outDim + c] = (c + 1) * a + 0.3 * rng.normal();
    w[r] = 0.5 + rng.next();
  }
  return { x, y, w };
}

/** Both engines on `steps` batches of `batch` rows (in row order), from the same initial weights. */
function runBoth(o: { dims: number[]; loss: 'cce' | 'mse'; l2: number; lr: number; batch: number; steps: number; seed: number; dropout?: number }) {
  const inDim = o.dims[0]!;
  const outDim = o.dims[o.dims.length - 1]!;
  const rows = o.batch * o.steps;
  const { x, y, w } = problem(rows, inDim, outDim, o.loss, o.seed);
  const init = initialWeights(inDim, o.dims.slice(1, -1), outDim, o.seed);
  // The mask seeds: the same stream on both sides, as the tfjs engine's worker seeded Math.random.
  const ourRng = new Rng(77);
  const refRng = new Rng(77);
  const dropout = o.dropout ?? 0;
  const net = new MlpTrainer({ inDim, units: o.dims.slice(1, -1), outDim, loss: o.loss, maxBatch: o.batch, dropout, l2: o.l2, learningRate: o.lr, random: () => ourRng.next() });
  net.setWeights(init.kernels, init.biases);
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  const losses: number[] = [];
  let firstGradients: Float32Array[] = [];
  const batches: ReferenceBatch[] = [];
  for (let s = 0; s < o.steps; s++) {
    losses.push(net.trainBatch(x, y, w, order, s * o.batch, o.batch));
    if (s === 0) {
      const g = net.gradients();
      firstGradients = [...g.kernels, ...g.biases];
    }
    const t = new Float32Array(o.batch * (outDim + 1));
    for (let b = 0; b < o.batch; b++) {
      const r = s * o.batch + b;
      if (o.loss === 'cce') t[b * (outDim + 1) + y[r]!] = 1;
      else for (let c = 0; c < outDim; c++) t[b * (outDim + 1) + c] = y[r * outDim + c]!;
      t[b * (outDim + 1) + outDim] = w[r]!;
    }
    batches.push({ x: x.slice(s * o.batch * inDim, (s + 1) * o.batch * inDim), t, rows: o.batch });
  }
  const ref = referenceSteps(init, o.dims, o.loss, o.l2, o.lr, batches, dropout, () => refRng.next());
  return { ours: { losses, firstGradients, ...net.weights() }, ref };
}

/** Largest |a − b| over paired arrays of the same lengths. */
function maxAbs(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  expect(a.map((v) => v.length)).toEqual(b.map((v) => v.length));
  let m = 0;
  a.forEach((ai, k) => {
    for (let i = 0; i < ai.length; i++) m = Math.max(m, Math.abs(ai[i]! - b[k]![i]!));
  });
  return m;
}

describe('MLP trainer against TensorFlow.js', () => {
  it('starts from the very weights tfjs-layers initialised from the same seed', () => {
    for (const [inDim, units, outDim, seed] of [
      [30, [64, 32], 2, 0],
      [7, [5], 3, 123456789],
      [4, [], 1, 0xffffffff],
    ] as const) {
      const model = buildModel(inDim, outDim, outDim > 1, { units: [...units], dropout: 0 }, seed);
      const tf = modelWeights(model);
      model.dispose();
      const ours = initialWeights(inDim, units, outDim, seed);
      expect(ours.kernels).toEqual(tf.kernels);
      expect(ours.biases).toEqual(tf.biases);
    }
  });

  // Tolerances. Both engines compute in float32 (Adam op for op, so identical inputs give identical
  // steps); what differs is the summation order inside tfjs's products and reductions against
  // ours, and the head's gradient taken in double here: about 1e-7 relative per operation.
  // Measured: first-step gradients within 2.4e-7 of their array's largest entry, losses within
  // 2e-7 relative, and after 12 steps of the reference network weights within 1.3e-7 (1.3e-4·lr;
  // 84% of them bit-identical; 3.5e-7 after 200 steps). The bounds sit about 10× above that:
  // gradients 2e-6 of the array's largest entry (a wrong term, like L2's factor 2, is off by 1e-4
  // or more), losses 2e-6 relative, weights 1e-3·lr absolute (Adam moves a weight by about lr a
  // step, so a wrong step direction or scale anywhere shows).
  const cases = [
    { name: 'softmax head, the reference network 30→64→32→2, L2, row weights', dims: [30, 64, 32, 2], loss: 'cce' as const, l2: 1e-4, lr: 1e-3, batch: 32, steps: 12, seed: 1 },
    { name: 'softmax head over 4 classes, no hidden layer', dims: [6, 4], loss: 'cce' as const, l2: 0, lr: 1e-2, batch: 16, steps: 10, seed: 2 },
    { name: 'linear head with 3 outputs, 12→16→8→3', dims: [12, 16, 8, 3], loss: 'mse' as const, l2: 1e-3, lr: 5e-3, batch: 24, steps: 12, seed: 3 },
    { name: 'linear head with 1 output', dims: [5, 10, 1], loss: 'mse' as const, l2: 0, lr: 1e-3, batch: 20, steps: 10, seed: 4 },
    // tfjs's masks come from Math.random, which its worker seeded; ours from the same stream.
    { name: 'dropout 0.2 after each hidden layer, masks drawn as tfjs drew them', dims: [30, 64, 32, 2], loss: 'cce' as const, l2: 1e-4, lr: 1e-3, batch: 32, steps: 12, seed: 5, dropout: 0.2 },
  ];
  for (const c of cases) {
    it(`matches tfjs's losses, gradients and weights step for step: ${c.name}`, () => {
      const { ours, ref } = runBoth(c);
      // Gradients at the first step, relative to each array's largest entry.
      // (tfjs's gradients are taken without dropout: its masks would differ from the step's.)
      if (!c.dropout) expect(ours.firstGradients.length).toBe(ref.firstGradients.length);
      ref.firstGradients.forEach((r, k) => {
        const g = ours.firstGradients[k]!;
        const scale = r.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
        expect(maxAbs([g], [r]) / scale).toBeLessThan(2e-6);
      });
      ours.losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]!) / Math.abs(ref.losses[i]!)).toBeLessThan(2e-6));
      expect(maxAbs([...ours.kernels, ...ours.biases], [...ref.kernels, ...ref.biases])).toBeLessThan(1e-3 * c.lr);
      // And training moved the weights well beyond that tolerance: the comparison means something.
      const init = initialWeights(c.dims[0]!, c.dims.slice(1, -1), c.dims[c.dims.length - 1]!, c.seed);
      let moved = 0;
      ours.kernels.forEach((k, l) => {
        for (let i = 0; i < k.length; i++) moved = Math.max(moved, Math.abs(k[i]! - init.kernels[l]![i]!));
      });
      expect(moved).toBeGreaterThan(c.lr);
    });
  }
});

const CONFIG: MlpConfig = { units: [16, 8], dropout: 0.2, learningRate: 0.01, epochs: 15, batchSize: 32, patience: 15, l2: 1e-4, classWeight: 'none' };

function job(task: 'binary' | 'regression', seed: number): MlpJob {
  const rows = 300;
  const cols = 6;
  const nOut = task === 'binary' ? 1 : 2;
  const { x, y } = problem(rows, cols, task === 'binary' ? 2 : nOut, task === 'binary' ? 'cce' : 'mse', 9);
  return {
    task,
    nClasses: task === 'binary' ? 2 : 1,
    ...(nOut > 1 ? { nOutputs: nOut } : {}),
    seed,
    config: CONFIG,
    x: { rows, cols, data: x },
    y: Float64Array.from(y, (v) => (task === 'regression' ? v * 100 + 50 : v)),
  };
}

describe('MLP training run', () => {
  it('is deterministic for a seed (dropout included) and differs across seeds', async () => {
    const a = await trainMlp(job('binary', 5));
    const b = await trainMlp(job('binary', 5));
    const c = await trainMlp(job('binary', 6));
    expect(a.weights).toEqual(b.weights);
    expect(a.info.bestEpoch).toBe(b.info.bestEpoch);
    expect(a.weights).not.toEqual(c.weights);
  });

  for (const task of ['binary', 'regression'] as const) {
    it(`${task}: the trainer's outputs, the main thread's forward pass and the ONNX export agree`, async () => {
      const j = job(task, 7);
      const x = j.x;
      const { weights, info } = await trainMlp(j);
      // The trainer's own float32 outputs against forward.ts in float64, inside trainMlp.
      expect(info.forwardMaxDiff).toBeLessThan(1e-5);
      const model = mlp.load({ family: 'mlp', task, nClasses: j.nClasses, nFeatures: x.cols, params: {}, weights, ...(j.nOutputs ? { nOutputs: j.nOutputs } : {}) });
      const xs = { rows: x.rows, cols: x.cols, data: Float64Array.from(x.data) };
      const viaTs = model.predict(xs);
      const session = await ort.InferenceSession.create(toOnnx(model));
      try {
        const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', x.data, [x.rows, x.cols]) };
        const out = (await session.run(feeds))[session.outputNames[0]!]!.data as Float32Array;
        expect(out.length).toBe(viaTs.length);
        let d = 0;
        for (let i = 0; i < out.length; i++) d = Math.max(d, Math.abs(out[i]! - viaTs[i]!) / Math.max(1, Math.abs(viaTs[i]!)));
        expect(d).toBeLessThan(1e-5);
      } finally {
        await session.release();
      }
    });
  }
});
