/**
 * One training run of a sequence network (runs in the training worker; tests call it directly):
 * the early-stopping split, row and class weights, target scaling, the epoch loop with Keras's
 * semantics (a seeded shuffle each epoch, batches of `batch_size` with a smaller last one, Adam,
 * the best epoch's weights restored), and the export of the weights for `seqnetForward`.
 */
import { Errors, Rng } from '../../core/index.js';
import { buildSeqNet } from './build.js';
import { seqnetForward } from './forward.js';
import { SeqNetTrainer } from './net.js';
import type { F32Matrix, SeqJob, SeqTrainInfo } from './protocol.js';
import type { SeqNetWeights } from './weights.js';
import { balancedWeights, groupHoldout, normalizeMean, rowHoldout, takeRowsF32, takeRowsF64 } from '../holdout.js';

/** Progress from one epoch. */
export interface EpochReport {
  epoch: number;
  loss: number;
  valLoss?: number;
  fraction: number;
  /** Seconds this epoch took (training and validation). */
  seconds: number;
}

/** Share of rows the early-stopping holdout takes: whole groups, or single rows without groups. */
export const GROUP_HOLDOUT = 0.15;
export const ROW_HOLDOUT = 0.1;
/** Fewer training rows than this: no holdout, the training loss is monitored. */
export const MIN_HOLDOUT_ROWS = 30;

const EPS = 1e-7; // Keras's epsilon for clipping probabilities in cross-entropy (validation loss)

/** Trains the network `job` describes; returns the best epoch's weights and a report. */
export async function trainSeqNet(job: SeqJob, onEpoch?: (r: EpochReport) => void): Promise<{ weights: SeqNetWeights; info: SeqTrainInfo }> {
  const started = performance.now();
  const { task, config, seed, steps, channels } = job;
  const classify = task !== 'regression';
  const nOut = classify ? job.nClasses : job.nOutputs;
  const width = steps * channels;
  // Here rather than on the caller's thread: the scan is O(rows × width), and the Float32 copy
  // turns doubles beyond float32 range into ±Infinity, which only this side sees.
  for (const m of [job.x, job.valid?.x]) {
    if (m && !m.data.every(Number.isFinite))
      throw Errors.badData('', `${job.family} windows contain non-finite values (NaN, ±Infinity or beyond float32 range); impute or rescale them`);
  }
  const rng = new Rng(seed);
  const yWidth = classify ? 1 : nOut;

  // Early-stopping rows: given ones, else whole groups, else single rows (per class when classifying).
  let trainIdx = range(job.x.rows);
  let validX: F32Matrix | undefined = job.valid?.x;
  let validY: Float64Array | undefined = job.valid?.y;
  let validW: Float64Array | undefined;
  let validation: SeqTrainInfo['validation'] = job.valid ? 'given' : 'none';
  if (!job.valid && job.x.rows >= MIN_HOLDOUT_ROWS) {
    const split = job.groups ? groupHoldout(job.groups, GROUP_HOLDOUT, rng) : rowHoldout(job.x.rows, job.y, classify ? job.nClasses : 0, ROW_HOLDOUT, rng);
    if (split.valid.length > 0 && split.train.length > 0) {
      trainIdx = split.train;
      validX = takeRowsF32(job.x, split.valid);
      validY = takeRowsF64(job.y, split.valid, yWidth);
      if (job.weights) validW = takeRowsF64(job.weights, split.valid);
      validation = job.groups ? 'groups' : 'rows';
    }
  }
  const n = trainIdx.length;
  const trX = validation === 'groups' || validation === 'rows' ? takeRowsF32(job.x, trainIdx) : job.x;
  const trY = validation === 'groups' || validation === 'rows' ? takeRowsF64(job.y, trainIdx, yWidth) : job.y;

  // Row weights: user weights × balanced class weights, scaled to mean 1 over the training rows so
  // the learning rate means the same whatever scale the user's weights come in.
  const classW = classify && config.classWeight === 'balanced' ? balancedWeights(trY, job.nClasses) : undefined;
  let rowW: Float64Array | undefined;
  if (job.weights || classW) {
    rowW = new Float64Array(n);
    for (let i = 0; i < n; i++) rowW[i] = (job.weights ? job.weights[trainIdx[i]!]! : 1) * (classW ? classW[trY[i]!]! : 1);
    normalizeMean(rowW);
  }
  if (validY && (validW || classW)) {
    const vw = validW ?? new Float64Array(validY.length).fill(1);
    if (classW) for (let i = 0; i < vw.length; i++) vw[i] = vw[i]! * classW[validY[i]!]!;
    validW = vw;
  }

  // Regression trains on standardized targets (per output; Adam's step and the initial weights
  // suit unit scale); the scale is folded into the last dense layer afterwards, so the stored
  // network predicts raw units.
  const yMean = new Float64Array(yWidth);
  const yStd = new Float64Array(yWidth).fill(1);
  let trT: Float64Array = trY;
  let vaT: Float64Array | undefined = validY;
  if (!classify) {
    for (let o = 0; o < nOut; o++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += trY[i * nOut + o]!;
      const m = s / n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (trY[i * nOut + o]! - m) ** 2;
      yMean[o] = m;
      yStd[o] = Math.sqrt(v / n) || 1;
    }
    const scale = (y: Float64Array) => y.map((v, k) => (v - yMean[k % nOut]!) / yStd[k % nOut]!);
    trT = scale(trY);
    if (validY) vaT = scale(validY);
  }

  const initial = buildSeqNet(job.family, config, { steps, channels }, nOut, classify ? 'softmax' : 'linear', seed);
  const bs = Math.max(1, Math.min(config.batchSize, n));
  const dropRng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const net = new SeqNetTrainer(initial, { loss: classify ? 'cce' : 'mse', maxBatch: bs, dropout: config.dropout, random: () => dropRng.next() });

  const validLoss = (): number | undefined => {
    if (!validX || !vaT) return undefined;
    const p = net.predict(validX.data, validX.rows);
    let s = 0;
    let sw = 0;
    for (let i = 0; i < validX.rows; i++) {
      const w = validW ? validW[i]! : 1;
      let l = 0;
      if (classify) l = -Math.log(Math.min(1 - EPS, Math.max(EPS, p[i * nOut + vaT[i]!]!)));
      else {
        for (let o = 0; o < nOut; o++) l += (p[i * nOut + o]! - vaT[i * nOut + o]!) ** 2;
        l /= nOut;
      }
      s += w * l;
      sw += w;
    }
    return sw > 0 ? s / sw : 0;
  };

  const order = Int32Array.from({ length: n }, (_, i) => i);
  let best = Infinity;
  let bestEpoch = 0;
  let bestSnapshot = net.snapshot();
  let sinceBest = 0;
  let epoch = 0;
  const epochTimes: number[] = [];
  for (epoch = 1; epoch <= config.epochs; epoch++) {
    const t0 = performance.now();
    rng.shuffle(order);
    let sum = 0;
    for (let s = 0; s < n; s += bs) {
      const B = Math.min(bs, n - s);
      sum += net.lossAndGrad(trX.data, trT, rowW, order, s, B) * B;
      net.adamStep(config.learningRate);
    }
    const loss = sum / n;
    if (!Number.isFinite(loss))
      throw Errors.badData('', `${job.family} training diverged at epoch ${epoch} (loss is not finite); lower ${job.family}.learning_rate`);
    const valLoss = validLoss();
    const monitored = valLoss ?? loss;
    if (monitored < best) {
      best = monitored;
      bestEpoch = epoch;
      bestSnapshot = net.snapshot();
      sinceBest = 0;
    } else sinceBest++;
    const seconds = (performance.now() - t0) / 1000;
    epochTimes.push(seconds);
    onEpoch?.({ epoch, loss, ...(valLoss !== undefined ? { valLoss } : {}), fraction: epoch / config.epochs, seconds });
    // Let the worker's event loop breathe between epochs (messages out, nothing in is expected).
    if (epoch % 8 === 0) await new Promise<void>((r) => setImmediate(r));
    if (sinceBest >= config.patience) break;
  }
  const epochsRun = Math.min(epoch, config.epochs);

  net.restore(bestSnapshot);
  const weights = net.weights();
  if (!classify) foldScale(weights, yMean, yStd);
  // Self-check: the trainer's Float32 forward against seqnetForward on the exported weights.
  const sampleRows = Math.min(64, job.x.rows);
  const sample = job.x.data.subarray(0, sampleRows * width);
  const viaNet = net.predict(sample, sampleRows);
  const viaTs = seqnetForward(weights, { rows: sampleRows, cols: width, data: Float64Array.from(sample) });
  let forwardMaxDiff = 0;
  for (let i = 0; i < viaTs.length; i++) {
    const o = i % nOut;
    const mine = viaNet[i]! * yStd[classify ? 0 : o]! + (classify ? 0 : yMean[o]!);
    forwardMaxDiff = Math.max(forwardMaxDiff, Math.abs(mine - viaTs[i]!) / Math.max(1, Math.abs(viaTs[i]!)));
  }
  const sorted = [...epochTimes].sort((a, b) => a - b);
  return {
    weights,
    info: {
      epochsRun,
      bestEpoch,
      bestLoss: best,
      validation,
      trainRows: n,
      validRows: validX?.rows ?? 0,
      forwardMaxDiff,
      epochSeconds: sorted[Math.floor(sorted.length / 2)] ?? 0,
      seconds: (performance.now() - started) / 1000,
    },
  };
}

/** The last dense layer of a network trained on standardized targets, made to predict raw units. */
function foldScale(w: SeqNetWeights, mean: Float64Array, std: Float64Array): void {
  const last = w.layers[w.layers.length - 1]!;
  if (last.type !== 'dense') return;
  const O = last.units;
  last.kernel = last.kernel.map((v, k) => v * std[k % O]!);
  last.bias = last.bias.map((v, o) => v * std[o]! + mean[o]!);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}






