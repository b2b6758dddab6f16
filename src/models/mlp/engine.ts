/**
 * One MLP training run (in the training worker; tests call it directly): the early-stopping
 * holdout, row and class weights, target standardization, the epoch loop (a seeded shuffle each
 * epoch, batches of `batch_size` with a small last one folded into the one before, the best
 * epoch's weights restored) and the export of the weights for `forward.ts`. The arithmetic of a
 * step is `trainer.ts`'s; this module loads no TensorFlow.js.
 */
import { Errors, Rng } from '../../core/index.js';
import { balancedWeights, groupHoldout, normalizeMean, rowHoldout, takeRowsF32, takeRowsF64 } from '../holdout.js';
import { forward } from './forward.js';
import type { MlpLayer, MlpWeights } from './forward.js';
import { initialWeights } from './init.js';
import type { F32Matrix, MlpJob, MlpTrainInfo } from './protocol.js';
import { MlpTrainer } from './trainer.js';

/**
 * Selects TensorFlow.js's WASM backend (loaded on first call): for the tests and benches that
 * compare with tfjs. Training does not use it.
 */
export async function ensureBackend(): Promise<void> {
  const { ensureBackend: ensure } = await import('./tfref.js');
  await ensure();
}

/** Progress from one epoch. */
export interface EpochReport {
  epoch: number;
  loss: number;
  valLoss?: number;
  fraction: number;
}

/** Result of `trainMlp`. */
export interface MlpTrainResult {
  weights: MlpWeights;
  info: MlpTrainInfo;
}

const EPS = 1e-7; // Keras's epsilon for clipping probabilities in cross-entropy (validation loss)

/**
 * Trains the network described by `job` and returns its best weights as plain arrays.
 * Deterministic for a given seed: the shuffles, the holdout and the dropout masks come from
 * seeded generators, and every sum runs in a fixed order.
 */
export async function trainMlp(job: MlpJob, onEpoch?: (r: EpochReport) => void): Promise<MlpTrainResult> {
  const started = performance.now();
  const { task, nClasses, config, seed } = job;
  const rng = new Rng(seed);
  const classify = task !== 'regression';
  // Regression learns `nOutputs` values per row (y is rows × nOutputs, row-major).
  const nOut = classify ? 1 : (job.nOutputs ?? 1);
  const outDim = classify ? nClasses : nOut;
  const cols = job.x.cols;
  // Checked here rather than on the main thread: the scan is O(rows × cols), and the Float32 copy
  // also turns doubles beyond float32 range into ±Infinity, which only this side sees.
  for (const m of [job.x, job.valid?.x]) {
    if (m && !m.data.every(Number.isFinite))
      throw Errors.badData('', 'MLP features contain non-finite values (NaN, ±Infinity or beyond float32 range); impute or rescale them');
  }

  // Early-stopping rows: given ones, else a seeded (stratified) 10% of the training rows.
  let trainIdx = range(job.x.rows);
  let validX: F32Matrix | undefined = job.valid?.x;
  let validY: Float64Array | undefined = job.valid?.y;
  let validW: Float64Array | undefined;
  let validation: MlpTrainInfo['validation'] = job.valid ? 'given' : 'none';
  if (!job.valid && job.x.rows >= 30) {
    // For regression the holdout only counts rows: one entry per row is all it reads.
    const split = job.groups ? groupHoldout(job.groups, 0.1, rng) : rowHoldout(job.x.rows, nOut === 1 ? job.y : new Float64Array(job.x.rows), classify ? nClasses : 0, 0.1, rng);
    // A single group cannot be held out (nothing would be left to train on): monitor the
    // training loss instead, rather than an empty validation set's undefined loss.
    if (split.valid.length > 0 && split.train.length > 0) {
      trainIdx = split.train;
      validX = takeRowsF32(job.x, split.valid);
      validY = takeRowsF64(job.y, split.valid, nOut);
      if (job.weights) validW = takeRowsF64(job.weights, split.valid);
      validation = 'holdout';
    }
  }
  const n = trainIdx.length;
  const trX = takeRowsF32(job.x, trainIdx);
  const trY = takeRowsF64(job.y, trainIdx, nOut);

  // Row weights: user weights × balanced class weights, scaled to mean 1 over the training rows so
  // the learning rate means the same whatever scale the user's weights come in.
  const classW = classify && config.classWeight === 'balanced' ? balancedWeights(trY, nClasses) : undefined;
  const rowW = new Float64Array(n);
  for (let i = 0; i < n; i++) rowW[i] = (job.weights ? job.weights[trainIdx[i]!]! : 1) * (classW ? classW[trY[i]!]! : 1);
  normalizeMean(rowW);
  if (validY) {
    const vw = validW ?? new Float64Array(validY.length / nOut).fill(1);
    if (classW) for (let i = 0; i < vw.length; i++) vw[i] = vw[i]! * classW[validY[i]!]!;
    validW = vw;
  }

  // Regression trains on standardized targets, each output on its own scale (Adam's step size and
  // the glorot init suit unit scale); the scales are folded back into the last layer so the stored
  // network predicts raw units.
  const yMean = new Array<number>(outDim).fill(0);
  const yStd = new Array<number>(outDim).fill(1);
  if (!classify) {
    for (let c = 0; c < nOut; c++) {
      const col = nOut === 1 ? trY : Float64Array.from({ length: n }, (_, i) => trY[i * nOut + c]!);
      const mean = col.reduce((a, b) => a + b, 0) / n;
      yMean[c] = mean;
      yStd[c] = Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / n) || 1;
    }
  }
  // What the trainer reads per training row: the class index or the standardized targets.
  const trT = classify ? trY : new Float64Array(n * nOut);
  if (!classify) for (let i = 0; i < n; i++) for (let c = 0; c < nOut; c++) trT[i * nOut + c] = (trY[i * nOut + c]! - yMean[c]!) / yStd[c]!;

  const bs = Math.min(config.batchSize, n);
  // A last batch much smaller than the rest is folded into the previous one (below), so a batch
  // holds at most bs + bs/2 rows.
  const maxBatch = Math.min(n, bs + Math.ceil(bs / 2));
  // Dropout masks from their own stream, so the shuffles (and the holdout) stay those of `rng`.
  // It is the stream the tfjs engine's worker put in place of `Math.random`, less the two values
  // that loading tfjs took from it (seedrandom pools one at load, and tfjs loaded it twice): so a
  // seed draws the masks, and trains the network, it did with tfjs (checked when this trainer
  // replaced it: the same epochs, best epoch and, within 1e-7, predictions on breast cancer).
  const dropRng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  dropRng.next();
  dropRng.next();
  const net = new MlpTrainer({
    inDim: cols,
    units: config.units,
    outDim,
    loss: classify ? 'cce' : 'mse',
    maxBatch,
    dropout: config.dropout,
    l2: config.l2,
    learningRate: config.learningRate,
    random: () => dropRng.next(),
  });
  const init = initialWeights(cols, config.units, outDim, seed);
  net.setWeights(init.kernels, init.biases);

  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const validOut = validX ? new Float32Array(validX.rows * outDim) : undefined;
  let best = Infinity;
  let bestEpoch = 0;
  const bestSnapshot = net.snapshot();
  let sinceBest = 0;
  let epoch = 0;
  for (epoch = 1; epoch <= config.epochs; epoch++) {
    rng.shuffle(order);
    let sum = 0;
    for (let s = 0; s < n; s += bs) {
      const e = Math.min(n, s + bs);
      // A last batch much smaller than the rest gives a noisy step; fold it into the previous one.
      const end = n - e < bs / 2 ? n : e;
      sum += net.trainBatch(trX.data, trT, rowW, order, s, end - s) * (end - s);
      if (end === n) break;
    }
    const loss = sum / n;
    if (!Number.isFinite(loss))
      throw Errors.badData('', `MLP training diverged at epoch ${epoch} (loss is not finite); lower mlp.learning_rate`);
    const valLoss = validX ? evalLoss(net.predict(validX.data, validX.rows, undefined, validOut), validY!, validW!) : undefined;
    const monitored = valLoss ?? loss;
    if (monitored < best - 1e-7) {
      best = monitored;
      bestEpoch = epoch;
      net.snapshot(bestSnapshot);
      sinceBest = 0;
    } else sinceBest++;
    onEpoch?.({ epoch, loss, ...(valLoss !== undefined ? { valLoss } : {}), fraction: epoch / config.epochs });
    if (sinceBest >= config.patience) break;
  }
  const epochsRun = Math.min(epoch, config.epochs);

  // Restore the best epoch's weights, export them, and check the plain forward pass against the
  // trainer's own on a sample of rows: a wrong layout or activation must fail here, not in serving.
  net.restore(bestSnapshot);
  const trained = net.weights();
  const weights = exportWeights(trained.kernels, trained.biases, classify, yMean, yStd);
  const sampleRows = Math.min(64, job.x.rows);
  const viaTrainer = net.predict(job.x.data, sampleRows);
  const forwardMaxDiff = compareForward(viaTrainer, weights, { rows: sampleRows, cols, data: job.x.data.subarray(0, sampleRows * cols) }, yMean, yStd);
  return {
    weights,
    info: {
      epochsRun,
      bestEpoch,
      bestLoss: best,
      validation,
      forwardMaxDiff,
      seconds: (performance.now() - started) / 1000,
    },
  };

  /** Weighted mean loss of the validation rows from the network's outputs `p` (probabilities or standardized values). */
  function evalLoss(p: Float32Array, y: Float64Array, w: Float64Array): number {
    let s = 0;
    let sw = 0;
    for (let i = 0; i < w.length; i++) {
      let l: number;
      if (classify) l = -Math.log(Math.min(1 - EPS, Math.max(EPS, p[i * outDim + y[i]!]!)));
      else if (nOut === 1) l = (p[i]! - (y[i]! - yMean[0]!) / yStd[0]!) ** 2;
      else {
        l = 0;
        for (let c = 0; c < nOut; c++) l += (p[i * nOut + c]! - (y[i * nOut + c]! - yMean[c]!) / yStd[c]!) ** 2;
        l /= nOut;
      }
      s += w[i]! * l;
      sw += w[i]!;
    }
    return s / sw;
  }
}

/**
 * Kernels and biases into the plain state format; for regression, output `c` of the last layer is
 * scaled back by `yStd[c]` and shifted by `yMean[c]` (a number applies to every output).
 */
export function exportWeights(kernels: Float32Array[], biases: Float32Array[], classify: boolean, yMean: number | number[] = 0, yStd: number | number[] = 1): MlpWeights {
  const layers: MlpLayer[] = kernels.map((k, i) => {
    const outDim = biases[i]!.length;
    const inDim = k.length / outDim;
    const last = i === kernels.length - 1;
    let kernel = Array.from(k);
    let bias = Array.from(biases[i]!);
    if (last && !classify) {
      // Kernel is row-major inDim × outDim: entry i's output column is i % outDim.
      kernel = kernel.map((v, i) => v * at(yStd, i % outDim));
      bias = bias.map((v, c) => v * at(yStd, c) + at(yMean, c));
    }
    return { kernel, bias, inDim, outDim, activation: last ? (classify ? 'softmax' : 'linear') : 'relu' };
  });
  return { layers };
}

/**
 * Largest |trainer output − plain `forward`| / max(1, |forward|) over the rows of `x`, where
 * `viaTrainer` holds the trainer's float32 outputs (standardized for regression) for those rows.
 */
export function compareForward(viaTrainer: Float32Array, weights: MlpWeights, x: F32Matrix, yMean: number | number[] = 0, yStd: number | number[] = 1): number {
  const viaTs = forward(weights, { rows: x.rows, cols: x.cols, data: Float64Array.from(x.data) });
  const width = viaTs.length / x.rows;
  let m = 0;
  for (let i = 0; i < viaTs.length; i++)
    m = Math.max(m, Math.abs(viaTrainer[i]! * at(yStd, i % width) + at(yMean, i % width) - viaTs[i]!) / Math.max(1, Math.abs(viaTs[i]!)));
  return m;
}

/** Entry `c` of a per-output scale, or the scale itself when it is one number. */
function at(v: number | number[], c: number): number {
  return typeof v === 'number' ? v : v[c]!;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
