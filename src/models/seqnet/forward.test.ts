import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { MedfitError, Rng, matrix } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import { ensureBackend } from '../mlp/engine.js';
import { seqnetForward, validateSeqNetWeights } from './forward.js';
import { randomSeqNet, tfReference } from './tfref.js';
import type { LayerPlan } from './tfref.js';
import type { SeqNetWeights } from './weights.js';

function windows(rows: number, steps: number, channels: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const x = matrix(rows, steps * channels);
  for (let i = 0; i < x.data.length; i++) x.data[i] = rng.normal();
  return x;
}

/** Largest |ours − tfjs| over every output of every row. */
function maxDiff(w: SeqNetWeights, x: Matrix): number {
  const ours = seqnetForward(w, x);
  const ref = tfReference(w);
  const theirs = tf.tidy(() => ref.forward(tf.tensor3d(Float32Array.from(x.data), [x.rows, w.steps, w.channels])).dataSync());
  ref.dispose();
  expect(ours.length).toBe(theirs.length);
  let m = 0;
  for (let i = 0; i < ours.length; i++) m = Math.max(m, Math.abs(ours[i]! - theirs[i]!));
  return m;
}

const CASES: [string, number, number, LayerPlan[]][] = [
  ['lstm (the reference shape: 10×10 → LSTM(100) → Dense(1))', 10, 10, [{ type: 'lstm', units: 100, returnSequences: false }, { type: 'dense', units: 1, activation: 'linear' }]],
  [
    'stacked lstm, softmax head',
    7,
    3,
    [
      { type: 'lstm', units: 6, returnSequences: true },
      { type: 'lstm', units: 5, returnSequences: false },
      { type: 'dense', units: 3, activation: 'softmax' },
    ],
  ],
  [
    'stacked gru (reset_after), multi-output',
    8,
    4,
    [
      { type: 'gru', units: 6, returnSequences: true },
      { type: 'gru', units: 5, returnSequences: false },
      { type: 'dense', units: 2, activation: 'linear' },
    ],
  ],
  [
    'cnn: conv (odd and even kernels) → global average → dense',
    9,
    3,
    [
      { type: 'conv1d', filters: 5, kernelSize: 3 },
      { type: 'conv1d', filters: 4, kernelSize: 4 },
      { type: 'globalavgpool1d' },
      { type: 'dense', units: 2, activation: 'softmax' },
    ],
  ],
  [
    'cnn-lstm: conv ×2 → maxpool (odd steps) → lstm → dense',
    11,
    2,
    [
      { type: 'conv1d', filters: 4, kernelSize: 5 },
      { type: 'conv1d', filters: 3, kernelSize: 2, activation: 'linear' },
      { type: 'maxpool1d', pool: 3 },
      { type: 'lstm', units: 4, returnSequences: false },
      { type: 'dense', units: 4, activation: 'relu' },
      { type: 'dense', units: 3, activation: 'softmax' },
    ],
  ],
];

describe('seqnetForward', () => {
  beforeAll(() => ensureBackend());

  for (const [name, steps, channels, plan] of CASES) {
    it(`matches TensorFlow.js: ${name}`, () => {
      const w = randomSeqNet(steps, channels, plan, steps * 31 + channels, 0.4);
      expect(validateSeqNetWeights(JSON.parse(JSON.stringify(w)))).toBeTruthy();
      expect(maxDiff(w, windows(37, steps, channels, 5))).toBeLessThan(1e-5);
    });
  }

  it('returns rows × units, softmax rows summing to 1, and refuses the wrong width', () => {
    const w = randomSeqNet(4, 2, [{ type: 'lstm', units: 3, returnSequences: false }, { type: 'dense', units: 3, activation: 'softmax' }], 1);
    const p = seqnetForward(w, windows(5, 4, 2, 1));
    expect(p.length).toBe(15);
    for (let r = 0; r < 5; r++) expect(p[3 * r]! + p[3 * r + 1]! + p[3 * r + 2]!).toBeCloseTo(1, 12);
    expect(() => seqnetForward(w, windows(5, 4, 3, 1))).toThrow(MedfitError);
    expect(seqnetForward(w, matrix(0, 8)).length).toBe(0);
  });
});

describe('validateSeqNetWeights', () => {
  const good = () => randomSeqNet(6, 2, [{ type: 'conv1d', filters: 3, kernelSize: 3 }, { type: 'maxpool1d', pool: 2 }, { type: 'gru', units: 2, returnSequences: false }, { type: 'dense', units: 2, activation: 'softmax' }], 3);
  const refuse = (mutate: (w: any) => void, message: RegExp) => {
    const w = JSON.parse(JSON.stringify(good()));
    mutate(w);
    let err: unknown;
    try {
      validateSeqNetWeights(w);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MedfitError);
    expect((err as MedfitError).code).toBe('MEDFIT_ERR_MANIFEST');
    expect((err as MedfitError).message).toMatch(message);
  };

  it('accepts a well-formed network', () => {
    expect(validateSeqNetWeights(good()).layers.length).toBe(4);
  });

  it('refuses bad shapes, values and orders, naming the field', () => {
    refuse((w) => (w.steps = 0), /weights\.steps/);
    refuse((w) => (w.channels = 1.5), /weights\.channels/);
    refuse((w) => (w.layers = []), /empty/);
    refuse((w) => (w.layers = null), /layers must be an array/);
    refuse((w) => (w.layers[0].kernel[4] = null), /layers\[0\]\.kernel\[4\] is not a finite number/);
    refuse((w) => w.layers[0].kernel.pop(), /layers\[0\]\.kernel must hold 18 numbers/);
    refuse((w) => (w.layers[0].inChannels = 3), /inChannels is 3, but the previous layer gives 2/);
    refuse((w) => (w.layers[0].padding = 'valid'), /padding/);
    refuse((w) => (w.layers[1].pool = 7), /pool is 7/);
    refuse((w) => w.layers[2].bias.push(0), /layers\[2\]\.bias must hold 12 numbers/);
    refuse((w) => (w.layers[2].returnSequences = true), /dense\) needs a vector/);
    refuse((w) => (w.layers[3].activation = 'tanh'), /activation/);
    refuse((w) => (w.layers[3].units = 5), /kernel must hold 10 numbers/);
    refuse((w) => w.layers.pop(), /last layer must be dense/);
    refuse((w) => (w.layers[1] = { type: 'attention' }), /"attention" is not one of/);
    refuse((w) => w.layers.splice(3, 0, { type: 'globalavgpool1d' }), /needs a sequence/);
    refuse((w) => (w.layers = Array.from({ length: 40 }, () => ({ type: 'globalavgpool1d' }))), /at most 32/);
  });
});
