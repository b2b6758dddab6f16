/**
 * The MLP's inference path in plain TypeScript: no TensorFlow.js on the main thread, so prediction
 * is cheap to start, synchronous, and exactly what the ONNX exporter mirrors (Gemm → Relu … →
 * Gemm → Softmax, or a linear Gemm for regression).
 */
import { Errors } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';

/** Activation after a dense layer; dropout is the identity at inference and is not stored. */
export type MlpActivation = 'relu' | 'softmax' | 'linear';

/** One dense layer: `out = act(in · kernel + bias)`. */
export interface MlpLayer {
  /** Row-major `inDim × outDim` (tfjs/Keras Dense layout; ONNX Gemm `B` with `transB = 0`). */
  kernel: number[];
  bias: number[];
  inDim: number;
  outDim: number;
  activation: MlpActivation;
}

/** The family-specific `ModelState.weights` of an MLP. */
export interface MlpWeights {
  layers: MlpLayer[];
}

/**
 * Runs the network on every row of `x` in Float64. Returns `rows × outDim` values in row-major
 * order (probabilities for a softmax head, the prediction for a linear one).
 */
export function forward(weights: MlpWeights, x: Matrix): Float64Array {
  const layers = weights.layers;
  const inDim = layers[0]!.inDim;
  if (x.cols !== inDim) throw Errors.badData('', `expected ${inDim} features, got ${x.cols}`);
  // Kernels as Float64Array once per call: indexing typed arrays in the hot loop is several times
  // faster than indexing number[] that may hold mixed element kinds after JSON parsing.
  const kernels = layers.map((l) => Float64Array.from(l.kernel));
  const biases = layers.map((l) => Float64Array.from(l.bias));
  const widest = Math.max(inDim, ...layers.map((l) => l.outDim));
  let cur = new Float64Array(widest);
  let next = new Float64Array(widest);
  const outDim = layers[layers.length - 1]!.outDim;
  const out = new Float64Array(x.rows * outDim);
  for (let r = 0; r < x.rows; r++) {
    cur.set(x.data.subarray(r * inDim, (r + 1) * inDim));
    for (let li = 0; li < layers.length; li++) {
      const l = layers[li]!;
      const k = kernels[li]!;
      const b = biases[li]!;
      const n = l.outDim;
      for (let j = 0; j < n; j++) next[j] = b[j]!;
      for (let i = 0; i < l.inDim; i++) {
        const v = cur[i]!;
        if (v === 0) continue; // relu zeros are common; skipping them is free speed
        const row = i * n;
        for (let j = 0; j < n; j++) next[j] += v * k[row + j]!;
      }
      activate(l.activation, next, n);
      const t = cur;
      cur = next;
      next = t;
    }
    out.set(cur.subarray(0, outDim), r * outDim);
  }
  return out;
}

function activate(act: MlpActivation, v: Float64Array, n: number): void {
  if (act === 'relu') {
    for (let j = 0; j < n; j++) if (v[j]! < 0) v[j] = 0;
  } else if (act === 'softmax') {
    // Subtracting the max keeps exp() finite for any logits, as tfjs and ONNX Softmax do.
    let m = -Infinity;
    for (let j = 0; j < n; j++) if (v[j]! > m) m = v[j]!;
    let s = 0;
    for (let j = 0; j < n; j++) s += v[j] = Math.exp(v[j]! - m);
    for (let j = 0; j < n; j++) v[j] = v[j]! / s;
  }
}

/**
 * Checks that `w` is a well-formed MLP for `nFeatures` inputs and `nOut` outputs with the given
 * head, so a tampered or truncated artifact fails at load time with a message saying what is
 * wrong rather than producing NaNs at prediction time.
 */
export function validateWeights(w: unknown, nFeatures: number, nOut: number, head: MlpActivation): MlpWeights {
  const bad = (msg: string) => Errors.manifest('mlp', msg);
  if (typeof w !== 'object' || w === null || !Array.isArray((w as { layers?: unknown }).layers))
    throw bad('weights must be an object with a "layers" array');
  const layers = (w as { layers: unknown[] }).layers;
  if (layers.length < 1) throw bad('weights.layers is empty');
  let inDim = nFeatures;
  layers.forEach((raw, i) => {
    const where = `weights.layers[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw bad(`${where} is not an object`);
    const l = raw as Partial<MlpLayer>;
    if (l.inDim !== inDim) throw bad(`${where}.inDim is ${String(l.inDim)}, expected ${inDim}`);
    if (!Number.isInteger(l.outDim) || (l.outDim as number) < 1) throw bad(`${where}.outDim must be a positive integer`);
    const outDim = l.outDim as number;
    const last = i === layers.length - 1;
    const act = last ? head : 'relu';
    if (l.activation !== act) throw bad(`${where}.activation is ${String(l.activation)}, expected ${act}`);
    if (!Array.isArray(l.kernel) || l.kernel.length !== inDim * outDim)
      throw bad(`${where}.kernel must hold inDim × outDim = ${inDim * outDim} numbers`);
    if (!Array.isArray(l.bias) || l.bias.length !== outDim) throw bad(`${where}.bias must hold outDim = ${outDim} numbers`);
    for (const v of l.kernel) if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${where}.kernel holds a non-finite value`);
    for (const v of l.bias) if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${where}.bias holds a non-finite value`);
    inDim = outDim;
  });
  if (inDim !== nOut) throw bad(`the last layer has ${inDim} outputs, expected ${nOut}`);
  return w as MlpWeights;
}
