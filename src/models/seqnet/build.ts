/**
 * The four architectures as `SeqNetWeights` with Keras's initial values, drawn from a seeded `Rng`:
 * glorot_uniform kernels (Conv1D, LSTM, GRU, Dense), orthogonal recurrent kernels, zero biases, and
 * LSTM's `unit_forget_bias` (the forget gate's bias starts at 1). Dropout has no weights: it is in
 * `SeqConfig.dropout` and sits before the last dense layer.
 */
import { Rng } from '../../core/index.js';
import type { SequenceShape } from '../types.js';
import type { SeqLayer, SeqNetWeights } from './weights.js';

/** The sequence families. */
export type SeqFamilyName = 'lstm' | 'gru' | 'cnn' | 'cnn-lstm';

/** Resolved hyperparameters, typed (the `Params` bag is validated by `parseParams` first). */
export interface SeqConfig {
  /** Recurrent units (lstm, gru, cnn-lstm). */
  units: number;
  /** Stacked recurrent layers (lstm, gru) or convolutions (cnn, cnn-lstm). */
  layers: number;
  filters: number;
  kernelSize: number;
  pool: number;
  dropout: number;
  learningRate: number;
  epochs: number;
  batchSize: number;
  patience: number;
  classWeight: 'none' | 'balanced';
}

/** Keras's Adam defaults (`tf.keras.optimizers.Adam`), which the trainer uses. */
export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;

/** glorot_uniform: U(−l, l), l = √(6 / (fan_in + fan_out)), Keras's fans for the shape. */
export function glorotUniform(rng: Rng, n: number, fanIn: number, fanOut: number): number[] {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * limit;
  return out;
}

/**
 * Keras's `Orthogonal` initializer for a `rows × cols` matrix (gain 1): the Q of the QR
 * decomposition of a standard normal matrix (the tall orientation), signs fixed so R's diagonal is
 * positive, transposed back when `rows < cols`. The rows (or columns, whichever are fewer) are
 * orthonormal. Modified Gram-Schmidt in Float64 gives that same Q.
 */
export function orthogonal(rng: Rng, rows: number, cols: number): number[] {
  const tall = Math.max(rows, cols);
  const narrow = Math.min(rows, cols);
  // Columns of the tall × narrow normal matrix, each a Float64Array of `tall`.
  const q = Array.from({ length: narrow }, () => new Float64Array(tall));
  for (let i = 0; i < tall; i++) for (let j = 0; j < narrow; j++) q[j]![i] = rng.normal();
  for (let j = 0; j < narrow; j++) {
    const v = q[j]!;
    // Twice for numerical orthogonality (re-orthogonalisation).
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        const u = q[p]!;
        let d = 0;
        for (let i = 0; i < tall; i++) d += u[i]! * v[i]!;
        for (let i = 0; i < tall; i++) v[i] = v[i]! - d * u[i]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < tall; i++) norm += v[i]! * v[i]!;
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < tall; i++) v[i] = v[i]! / norm;
  }
  const out = new Array<number>(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[r * cols + c] = rows >= cols ? q[c]![r]! : q[r]![c]!;
  return out;
}

/** A recurrent layer with Keras's initial values. */
function recurrent(rng: Rng, type: 'lstm' | 'gru', inputSize: number, units: number, returnSequences: boolean): SeqLayer {
  const g = type === 'lstm' ? 4 : 3;
  const kernel = glorotUniform(rng, inputSize * g * units, inputSize, g * units);
  const recurrentKernel = orthogonal(rng, units, g * units);
  if (type === 'lstm') {
    const bias = new Array<number>(4 * units).fill(0);
    for (let j = units; j < 2 * units; j++) bias[j] = 1; // unit_forget_bias: gates i, f, c, o
    return { type, inputSize, units, kernel, recurrentKernel, bias, returnSequences };
  }
  return { type, inputSize, units, kernel, recurrentKernel, bias: new Array<number>(6 * units).fill(0), returnSequences };
}

function conv(rng: Rng, inChannels: number, filters: number, kernelSize: number): SeqLayer {
  // Keras's fans for a [k, in, out] kernel: fan_in = k·in, fan_out = k·out.
  const kernel = glorotUniform(rng, kernelSize * inChannels * filters, kernelSize * inChannels, kernelSize * filters);
  return { type: 'conv1d', inChannels, filters, kernelSize, kernel, bias: new Array<number>(filters).fill(0), activation: 'relu', padding: 'same' };
}

function dense(rng: Rng, inputSize: number, units: number, activation: 'linear' | 'softmax'): SeqLayer {
  return { type: 'dense', inputSize, units, kernel: glorotUniform(rng, inputSize * units, inputSize, units), bias: new Array<number>(units).fill(0), activation };
}

/**
 * The untrained network of `family` for windows of `shape` with `outputs` outputs (softmax for
 * classification, linear for regression), initialised from `seed`:
 * - lstm / gru: `layers` × LSTM|GRU(units), every one but the last with `returnSequences`, → Dense;
 * - cnn: `layers` × Conv1D(filters, kernelSize, relu, same) → GlobalAveragePooling1D → Dense;
 * - cnn-lstm: `layers` (1–2) × Conv1D → MaxPooling1D(pool) → LSTM(units) → Dense.
 * Dropout(`config.dropout`) before the Dense layer is applied by the trainer.
 */
export function buildSeqNet(family: SeqFamilyName, config: SeqConfig, shape: Pick<SequenceShape, 'steps' | 'channels'>, outputs: number, head: 'softmax' | 'linear', seed: number): SeqNetWeights {
  const rng = new Rng((seed ^ 0x2545f491) >>> 0);
  const layers: SeqLayer[] = [];
  let width = shape.channels;
  if (family === 'lstm' || family === 'gru') {
    for (let i = 0; i < config.layers; i++) {
      layers.push(recurrent(rng, family, width, config.units, i < config.layers - 1));
      width = config.units;
    }
  } else {
    for (let i = 0; i < config.layers; i++) {
      layers.push(conv(rng, width, config.filters, config.kernelSize));
      width = config.filters;
    }
    if (family === 'cnn') layers.push({ type: 'globalavgpool1d' });
    else {
      layers.push({ type: 'maxpool1d', pool: config.pool });
      layers.push(recurrent(rng, 'lstm', width, config.units, false));
      width = config.units;
    }
  }
  layers.push(dense(rng, width, outputs, head));
  return { steps: shape.steps, channels: shape.channels, layers };
}
