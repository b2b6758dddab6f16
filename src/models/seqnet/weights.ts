/**
 * The weights of a sequence network (LSTM, GRU, 1D-CNN, CNN+LSTM) as plain JSON: the contract
 * between the trainer, the plain-TypeScript forward pass that predicts, and the ONNX export.
 *
 * Conventions are Keras's (what TensorFlow.js layers use), so a Keras model's weights map onto
 * these one for one. Every matrix is a flat row-major `number[]`:
 * - `conv1d.kernel`: `[kernelSize][inChannels][filters]`; output step `t` of a `same` convolution
 *   reads input steps `t - floor((kernelSize-1)/2) … t + ceil((kernelSize-1)/2)`, zeros outside
 *   (Keras `padding: 'same'`).
 * - `lstm.kernel`: `[inputSize][4·units]`, `recurrentKernel`: `[units][4·units]`, `bias`: `[4·units]`,
 *   gates in Keras order i, f, c, o; sigmoid gates, tanh cell and output (Keras defaults,
 *   `unit_forget_bias` only affects initialisation).
 * - `gru.kernel`: `[inputSize][3·units]`, `recurrentKernel`: `[units][3·units]`, gates in Keras
 *   order z, r, h; `bias`: `[2][3·units]`, the input bias then the recurrent bias (Keras 2's
 *   `reset_after: true`, which is ONNX's `linear_before_reset = 1`):
 *   `h̃ = tanh(x·Wh + bh_in + r ⊙ (h·Uh + bh_rec))`, `h' = z ⊙ h + (1 − z) ⊙ h̃`.
 * - `dense.kernel`: `[inputSize][units]`.
 * A recurrent layer starts from zero state; with `returnSequences` it passes every step on,
 * otherwise only the last step's output. Dropout is a training-time layer and leaves no weights.
 */
export type SeqLayer =
  | {
      type: 'conv1d';
      inChannels: number;
      filters: number;
      kernelSize: number;
      kernel: number[];
      bias: number[];
      activation: 'relu' | 'linear';
      padding: 'same';
    }
  /** Max over non-overlapping runs of `pool` steps (stride = pool, Keras `padding: 'valid'`). */
  | { type: 'maxpool1d'; pool: number }
  | {
      type: 'lstm';
      inputSize: number;
      units: number;
      kernel: number[];
      recurrentKernel: number[];
      bias: number[];
      returnSequences: boolean;
    }
  | {
      type: 'gru';
      inputSize: number;
      units: number;
      kernel: number[];
      recurrentKernel: number[];
      bias: number[];
      returnSequences: boolean;
    }
  /** Mean over the steps: `[steps, channels]` → `[channels]`. */
  | { type: 'globalavgpool1d' }
  | {
      type: 'dense';
      inputSize: number;
      units: number;
      kernel: number[];
      bias: number[];
      activation: 'linear' | 'relu' | 'softmax';
    };

/** A sequence network: it reads windows of `steps × channels` and ends in one dense layer. */
export interface SeqNetWeights {
  steps: number;
  channels: number;
  layers: SeqLayer[];
}
