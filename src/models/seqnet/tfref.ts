/**
 * Test support: the TensorFlow.js reference of a `SeqNetWeights` network, to check medfit's own
 * forward pass and hand-written gradients against an independent engine. Only tests import it (it
 * loads tfjs). Conv1D, MaxPooling1D, GlobalAveragePooling1D, LSTM and Dense are tfjs-layers layers
 * with the weights set by `setWeights`; GRU is written with tfjs-core ops from Keras 2's
 * `GRUCell` with `reset_after=True`, because tfjs-layers' GRU refuses `resetAfter: true` (it only
 * has Keras 1's reset-before form).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Rng } from '../../core/index.js';
import type { SeqLayer, SeqNetWeights } from './weights.js';

/** A layer of the reference: how it runs, and the variables it trains (in `SeqLayer` field order). */
interface RefLayer {
  apply: (x: tf.Tensor) => tf.Tensor;
  vars: tf.Variable[];
  dispose: () => void;
}

/** The reference network for `w`; `vars` line up with `seqnetParamArrays(w)`. */
export interface TfReference {
  /** Output after the last layer's activation; with `dropMask` multiplied in before the last dense layer. */
  forward: (x: tf.Tensor3D, dropMask?: tf.Tensor2D) => tf.Tensor2D;
  /** Logits of the last dense layer (before its activation). */
  logits: (x: tf.Tensor3D, dropMask?: tf.Tensor2D) => tf.Tensor2D;
  vars: tf.Variable[];
  dispose: () => void;
}

/** Builds the reference for `w`, with exactly its weights. */
export function tfReference(w: SeqNetWeights): TfReference {
  let steps = w.steps;
  const refs = w.layers.map((l) => {
    const r = refLayer(l, steps);
    if (l.type === 'maxpool1d') steps = Math.floor(steps / l.pool);
    return r;
  });
  const run = (x: tf.Tensor3D, dropMask: tf.Tensor2D | undefined, logits: boolean): tf.Tensor2D => {
    let h: tf.Tensor = x;
    refs.forEach((r, i) => {
      const last = i === refs.length - 1;
      if (last && dropMask) h = tf.mul(h, dropMask);
      if (last && logits) {
        h = tf.add(tf.matMul(h as tf.Tensor2D, r.vars[0]!), r.vars[1]!);
      } else h = r.apply(h);
    });
    return h as tf.Tensor2D;
  };
  return {
    forward: (x, m) => run(x, m, false),
    logits: (x, m) => run(x, m, true),
    vars: refs.flatMap((r) => r.vars),
    dispose: () => refs.forEach((r) => r.dispose()),
  };
}

function layerRef(layer: tfl.layers.Layer, weights: tf.Tensor[]): RefLayer {
  // A one-layer Sequential builds the layer from its `inputShape` the way a model does.
  tfl.sequential({ layers: [layer] });
  layer.setWeights(weights);
  weights.forEach((t) => t.dispose());
  const vars = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  return { apply: (x) => layer.apply(x) as tf.Tensor, vars, dispose: () => vars.forEach((v) => v.dispose()) };
}

function refLayer(l: SeqLayer, steps: number): RefLayer {
  switch (l.type) {
    case 'conv1d':
      return layerRef(
        tfl.layers.conv1d({ filters: l.filters, kernelSize: l.kernelSize, padding: 'same', activation: l.activation, inputShape: [steps, l.inChannels] }),
        [tf.tensor3d(l.kernel, [l.kernelSize, l.inChannels, l.filters]), tf.tensor1d(l.bias)],
      );
    case 'maxpool1d': {
      const p = tfl.layers.maxPooling1d({ poolSize: l.pool, strides: l.pool, padding: 'valid' });
      return { apply: (x) => p.apply(x) as tf.Tensor, vars: [], dispose: () => undefined };
    }
    case 'globalavgpool1d': {
      const p = tfl.layers.globalAveragePooling1d({});
      return { apply: (x) => p.apply(x) as tf.Tensor, vars: [], dispose: () => undefined };
    }
    case 'lstm':
      return layerRef(
        // tfjs-layers defaults to hardSigmoid gates (Keras 1); Keras 2 and medfit use sigmoid. Zero
        // initialisers: the weights are set next (tfjs 4.22's orthogonal initializer throws here).
        tfl.layers.lstm({ units: l.units, returnSequences: l.returnSequences, recurrentActivation: 'sigmoid', kernelInitializer: 'zeros', recurrentInitializer: 'zeros', inputShape: [steps, l.inputSize] }),
        [tf.tensor2d(l.kernel, [l.inputSize, 4 * l.units]), tf.tensor2d(l.recurrentKernel, [l.units, 4 * l.units]), tf.tensor1d(l.bias)],
      );
    case 'dense':
      return layerRef(
        tfl.layers.dense({ units: l.units, activation: l.activation, inputShape: [l.inputSize] }),
        [tf.tensor2d(l.kernel, [l.inputSize, l.units]), tf.tensor1d(l.bias)],
      );
    case 'gru': {
      const u = l.units;
      const kernel = tf.variable(tf.tensor2d(l.kernel, [l.inputSize, 3 * u]));
      const rec = tf.variable(tf.tensor2d(l.recurrentKernel, [u, 3 * u]));
      const bias = tf.variable(tf.tensor2d(l.bias, [2, 3 * u]));
      const apply = (x: tf.Tensor): tf.Tensor => {
        // Keras 2 GRUCell, reset_after=True:
        //   x_z, x_r, x_h = x·W + b_in;  r_z, r_r, r_h = h·U + b_rec
        //   z = σ(x_z + r_z); r = σ(x_r + r_r); h̃ = tanh(x_h + r ⊙ r_h); h' = z ⊙ h + (1 − z) ⊙ h̃
        const [b, t] = x.shape as [number, number, number];
        const [bIn, bRec] = tf.unstack(bias) as [tf.Tensor1D, tf.Tensor1D];
        let h: tf.Tensor2D = tf.zeros([b, u]);
        const outs: tf.Tensor2D[] = [];
        for (let s = 0; s < t; s++) {
          const xt = tf.reshape(tf.slice(x, [0, s, 0], [b, 1, l.inputSize]), [b, l.inputSize]) as tf.Tensor2D;
          const mx = tf.add(tf.matMul(xt, kernel), bIn);
          const mh = tf.add(tf.matMul(h, rec), bRec);
          const [xz, xr, xh] = tf.split(mx, 3, 1);
          const [hz, hr, hh] = tf.split(mh, 3, 1);
          const z = tf.sigmoid(tf.add(xz!, hz!));
          const r = tf.sigmoid(tf.add(xr!, hr!));
          const cand = tf.tanh(tf.add(xh!, tf.mul(r, hh!)));
          h = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), cand)) as tf.Tensor2D;
          outs.push(h);
        }
        return l.returnSequences ? tf.stack(outs, 1) : h;
      };
      return { apply, vars: [kernel, rec, bias], dispose: () => [kernel, rec, bias].forEach((v) => v.dispose()) };
    }
  }
}

/** Layer plans for `randomSeqNet`: sizes only. */
export type LayerPlan =
  | { type: 'conv1d'; filters: number; kernelSize: number; activation?: 'relu' | 'linear' }
  | { type: 'maxpool1d'; pool: number }
  | { type: 'lstm' | 'gru'; units: number; returnSequences: boolean }
  | { type: 'globalavgpool1d' }
  | { type: 'dense'; units: number; activation: 'linear' | 'relu' | 'softmax' };

/** A network of the given plan with seeded uniform weights in ±`scale` (biases too). */
export function randomSeqNet(steps: number, channels: number, plan: LayerPlan[], seed: number, scale = 0.5): SeqNetWeights {
  const rng = new Rng(seed);
  const rand = (n: number) => Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  let width = channels;
  const layers: SeqLayer[] = plan.map((p) => {
    switch (p.type) {
      case 'conv1d': {
        const l: SeqLayer = { type: 'conv1d', inChannels: width, filters: p.filters, kernelSize: p.kernelSize, kernel: rand(p.kernelSize * width * p.filters), bias: rand(p.filters), activation: p.activation ?? 'relu', padding: 'same' };
        width = p.filters;
        return l;
      }
      case 'maxpool1d':
        return { type: 'maxpool1d', pool: p.pool };
      case 'globalavgpool1d':
        return { type: 'globalavgpool1d' };
      case 'lstm':
      case 'gru': {
        const g = p.type === 'lstm' ? 4 : 3;
        const l: SeqLayer = { type: p.type, inputSize: width, units: p.units, kernel: rand(width * g * p.units), recurrentKernel: rand(p.units * g * p.units), bias: rand((p.type === 'gru' ? 2 : 1) * g * p.units), returnSequences: p.returnSequences };
        width = p.units;
        return l;
      }
      case 'dense': {
        const l: SeqLayer = { type: 'dense', inputSize: width, units: p.units, kernel: rand(width * p.units), bias: rand(p.units), activation: p.activation };
        width = p.units;
        return l;
      }
    }
  });
  return { steps, channels, layers };
}
