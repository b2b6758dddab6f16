/**
 * Test support: the TensorFlow.js reference of the MLP trainer, i.e. the training loop that trained
 * the MLP before `trainer.ts` replaced it (tfjs-layers' Dense layers, seeded glorot-uniform kernels,
 * a custom step of fused `matMul + bias + relu` and `optimizer.minimize` with tfjs's Adam on the
 * WASM backend). `trainer.test.ts` runs both on the same weights and batches. Only tests, benches
 * and the sequence forward-pass tests import this module: it loads tfjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Errors } from '../../core/index.js';
import type { MlpConfig } from './protocol.js';

let backendReady: Promise<void> | undefined;

/**
 * Selects the WASM backend once per thread. In Node the backend's Emscripten loader finds its
 * `.wasm` beside its own CommonJS bundle (`__dirname`), which breaks as soon as anything bundles
 * or relocates that file; pointing `setWasmPaths` at the installed package's `dist/` folder makes
 * the location explicit. Threads are switched off: the threaded build would spawn further workers
 * from Blob URLs, which Node cannot load.
 */
export function ensureBackend(): Promise<void> {
  backendReady ??= (async () => {
    const require = createRequire(import.meta.url);
    setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    const ok = await tf.setBackend('wasm');
    if (!ok) throw Errors.internal('the TensorFlow.js WASM backend failed to initialise');
    await tf.ready();
  })();
  return backendReady;
}

/**
 * The Keras-style network as tfjs-layers built it: Dense(units[i], relu) [+ Dropout] per hidden
 * layer, then a softmax head over the classes or a linear one; kernels glorot-uniform from
 * `(seed >>> 0) + 7919 · layer` (layers from 1), biases zero.
 */
export function buildModel(inDim: number, outDim: number, classify: boolean, config: Pick<MlpConfig, 'units' | 'dropout'>, seed: number): tfl.Sequential {
  const model = tfl.sequential();
  let li = 0;
  const init = () => tfl.initializers.glorotUniform({ seed: (seed >>> 0) + 7919 * ++li });
  config.units.forEach((u, i) => {
    model.add(tfl.layers.dense({ units: u, activation: 'relu', kernelInitializer: init(), ...(i === 0 ? { inputShape: [inDim] } : {}) }));
    if (config.dropout > 0) model.add(tfl.layers.dropout({ rate: config.dropout }));
  });
  model.add(
    tfl.layers.dense({
      units: outDim,
      activation: classify ? 'softmax' : 'linear',
      kernelInitializer: init(),
      ...(config.units.length === 0 ? { inputShape: [inDim] } : {}),
    }),
  );
  return model;
}

/** Kernels and biases of the Dense layers of `model`, as float32 copies. */
export function modelWeights(model: tfl.LayersModel): { kernels: Float32Array[]; biases: Float32Array[] } {
  const dense = model.layers.filter((l) => l.getClassName() === 'Dense');
  return {
    kernels: dense.map((l) => l.getWeights()[0]!.dataSync() as Float32Array),
    biases: dense.map((l) => l.getWeights()[1]!.dataSync() as Float32Array),
  };
}

/** One batch for `referenceSteps`: rows × inDim features, rows × (outDim + 1) targets then row weight. */
export interface ReferenceBatch {
  x: Float32Array;
  /** Per row: one-hot classes (cce) or standardized targets (mse), then the row's weight. */
  t: Float32Array;
  rows: number;
}

/**
 * Trains from `kernels`/`biases` on `batches` in order exactly as the tfjs engine's step did, and
 * returns the loss of each step, tfjs autodiff's gradients at the first step (kernels then biases;
 * without dropout) and the final weights. With `dropout`, tfjs draws its masks through
 * `Math.random`, which is `random` for the duration of the call (as the engine's worker seeded it).
 */
export function referenceSteps(
  init: { kernels: ArrayLike<number>[]; biases: ArrayLike<number>[] },
  dims: number[],
  loss: 'cce' | 'mse',
  l2: number,
  learningRate: number,
  batches: ReferenceBatch[],
  dropout = 0,
  random: () => number = Math.random,
): { losses: number[]; firstGradients: Float32Array[]; kernels: Float32Array[]; biases: Float32Array[] } {
  const outDim = dims[dims.length - 1]!;
  const kernels = init.kernels.map((k, i) => tf.variable(tf.tensor2d(Float32Array.from(k), [dims[i]!, dims[i + 1]!])));
  const biases = init.biases.map((b) => tf.variable(tf.tensor1d(Float32Array.from(b))));
  const vars = [...kernels, ...biases];
  const optimizer = tf.train.adam(learningRate);
  const net = (x: tf.Tensor2D): tf.Tensor2D => {
    let h = x;
    for (let i = 0; i < kernels.length; i++) {
      const last = i === kernels.length - 1;
      h = tf.fused.matMul({ a: h, b: kernels[i]! as tf.Tensor as tf.Tensor2D, bias: biases[i]!, activation: last ? 'linear' : 'relu' }) as tf.Tensor2D;
      if (!last && dropout > 0) h = tf.dropout(h, dropout) as tf.Tensor2D;
    }
    return h;
  };
  const lossOf = (t: tf.Tensor2D, out: tf.Tensor2D): tf.Scalar => {
    const [target, w] = tf.split(t, [outDim, 1], 1) as [tf.Tensor, tf.Tensor];
    const per =
      loss === 'cce'
        ? tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(out)), 1))
        : outDim === 1
          ? tf.sum(tf.squaredDifference(target, out), 1)
          : tf.mean(tf.squaredDifference(target, out), 1);
    let total: tf.Tensor = tf.mean(tf.mul(per, tf.reshape(w, [-1])));
    if (l2 > 0) for (const k of kernels) total = tf.add(total, tf.mul(l2, tf.sum(tf.square(k))));
    return total as tf.Scalar;
  };
  const losses: number[] = [];
  let firstGradients: Float32Array[] = [];
  const mathRandom = Math.random;
  Math.random = random;
  try {
    for (const b of batches) {
      const c = tf.tidy(() => {
        const x = tf.tensor2d(b.x, [b.rows, dims[0]!]);
        const t = tf.tensor2d(b.t, [b.rows, outDim + 1]);
        if (losses.length === 0 && dropout === 0) {
          const { grads } = tf.variableGrads(() => lossOf(t, net(x)), vars);
          firstGradients = vars.map((v) => grads[v.name]!.dataSync().slice() as Float32Array);
        }
        return optimizer.minimize(() => lossOf(t, net(x)), true, vars)!;
      });
      losses.push(c.dataSync()[0]!);
      c.dispose();
    }
    return {
      losses,
      firstGradients,
      kernels: kernels.map((k) => k.dataSync().slice() as Float32Array),
      biases: biases.map((b) => b.dataSync().slice() as Float32Array),
    };
  } finally {
    Math.random = mathRandom;
    optimizer.dispose();
    for (const v of vars) v.dispose();
  }
}
