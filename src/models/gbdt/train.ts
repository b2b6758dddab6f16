import { Errors, Rng, type Matrix } from '../../core/index.js';
import type { Params, TrainContext, TrainData } from '../types.js';
import { applyBins, fitBins } from './binning.js';
import { GbdtModel, outputsFor, sigmoid, softmaxInto, type GbdtWeights, type Objective } from './model.js';
import { trainThreads } from './parallel.js';
import { PARALLEL_MIN, predictBinnedCounting, predictRaw, TreeGrower, type GrowerOptions, type GrowParams, type Tree } from './tree.js';

/** Probabilities are clipped in log loss so one confident mistake reports a finite loss. */
const EPS = 1e-15;
/** Early stopping needs at least this relative improvement to count as better (as scikit-learn). */
const TOL = 1e-7;
/** Longest stretch of synchronous work before yielding, so an abort message can be delivered. */
const YIELD_MS = 50;
/**
 * Histogram updates (rows × sampled features × trees × outputs) below which a training stays on
 * one thread: a step's hand-over costs 10–30 µs, and the first training of a thread starts the
 * workers (about 60 ms compiled, 300 ms under tsx). Measured here (2 cores, 30 features, depth
 * 6, 200 trees): 3,000 rows (18 M) gain nothing from a second thread, 10,000 rows (60 M) about 15%.
 */
export const THREADS_MIN_WORK = 50_000_000;

/**
 * Newton boosting of histogram trees; see `gbdt` in index.ts for the parameters. A multi-output
 * regression (`data.nOutputs` > 1) boosts one ensemble per output side by side: squared error
 * separates by output, and each output draws its row and column samples from its own `Rng` seeded
 * like a single-output run, so without early stopping output k's trees are exactly those a
 * single-output run on target k grows. Early stopping watches the mean validation MSE over the
 * outputs, so all outputs keep the same number of rounds.
 *
 * Histograms are built on `trainThreads()` threads (`MEDFIT_TRAIN_THREADS`) when the table is big
 * enough for that to pay (`THREADS_MIN_WORK`); the trees are the same whatever the number.
 * `options` overrides both, for tests and benchmarks.
 */
export async function trainGbdt(data: TrainData, params: Params, ctx: TrainContext, options: Partial<GrowerOptions> = {}): Promise<GbdtModel> {
  const { x, task, nClasses } = data;
  const n = x.rows;
  const nf = x.cols;
  checkData(data);
  const k = outputsFor(task, nClasses, data.nOutputs);
  const perOutput = task === 'regression' && k > 1;
  const trees = params.trees as number;
  const maxBins = params.max_bins as number;
  const colsample = params.colsample as number;
  const grow: GrowParams = {
    maxDepth: params.max_depth as number,
    maxLeaves: params.max_leaves as number,
    minSamplesLeaf: params.min_samples_leaf as number,
    minChildWeight: params.min_child_weight as number,
    l2: params.l2 as number,
    minGain: params.min_split_gain as number,
    learningRate: params.learning_rate as number,
  };
  // One stream for every tree (the classes of a round share it), or one per regression output.
  const rngs = Array.from({ length: perOutput ? k : 1 }, () => new Rng(ctx.seed));

  const nCols = Math.max(1, Math.ceil(colsample * nf));
  // Workers start (in the background) before binning, so that they are up when the first tree is.
  const work = n * nCols * trees * k;
  const threads = options.threads ?? (work >= THREADS_MIN_WORK && n * nCols >= PARALLEL_MIN ? trainThreads() : 1);
  const grower = new TreeGrower({ x, y: data.y, weights: data.weights, task, outputs: k }, maxBins, { threads, parallelMin: options.parallelMin ?? PARALLEL_MIN, partRows: options.partRows });
  try {
    if (options.ready) await grower.ready();
    grower.bin(x);
    return await boost(data, params, ctx, grower, rngs, grow, k, perOutput);
  } finally {
    grower.close();
  }
}

/** The boosting rounds of `trainGbdt` over a grower holding the binned rows. */
async function boost(
  data: TrainData,
  params: Params,
  ctx: TrainContext,
  grower: TreeGrower,
  rngs: Rng[],
  grow: GrowParams,
  k: number,
  perOutput: boolean,
): Promise<GbdtModel> {
  const { x, y, task, nClasses } = data;
  const n = x.rows;
  const nf = x.cols;
  const objective: Objective = task === 'binary' ? 'logistic' : task === 'multiclass' ? 'softmax' : 'squared_error';
  const trees = params.trees as number;
  const subsample = params.subsample as number;
  const colsample = params.colsample as number;
  const esRounds = params.early_stopping_rounds as number;
  const w = data.weights;
  const bins = grower.bins;

  const base = initialScores(task, y, w, k);
  const raw = grower.raw;
  for (let r = 0; r < n; r++) raw.set(base, r * k);
  const valid = data.valid;
  const vraw = valid ? new Float64Array(valid.x.rows * k) : null;
  if (vraw) for (let r = 0; r < valid!.x.rows; r++) vraw.set(base, r * k);

  const all = Int32Array.from({ length: nf }, (_, i) => i);
  const nCols = Math.max(1, Math.ceil(colsample * nf));
  const sampleBuf = new Uint32Array(n);

  const out: Tree[] = [];
  let bestLoss = Infinity;
  let bestRounds = 0;
  let sinceBest = 0;
  let lastYield = performance.now();
  const useEs = vraw !== null && esRounds > 0;

  for (let round = 0; round < trees; round++) {
    if (performance.now() - lastYield > YIELD_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = performance.now();
    }
    if (ctx.signal?.aborted) throw Errors.cancelled('training');

    grower.gradients();

    // One row sample per round, shared by the round's per-class trees (as XGBoost does); each
    // regression output draws its own from its own stream.
    let sample: Uint32Array | null = null;
    for (let c = 0; c < k; c++) {
      const rng = rngs[perOutput ? c : 0]!;
      if (subsample < 1 && (perOutput || c === 0)) {
        let m = 0;
        for (let r = 0; r < n; r++) if (rng.next() < subsample) sampleBuf[m++] = r;
        sample = sampleBuf.subarray(0, m);
      }
      let features = all;
      if (nCols < nf) {
        // Partial Fisher-Yates: the first nCols entries are a uniform subset; sorted for stable scans.
        const perm = all.slice();
        for (let i = 0; i < nCols; i++) {
          const j = i + rng.int(nf - i);
          const t = perm[i]!;
          perm[i] = perm[j]!;
          perm[j] = t;
        }
        features = perm.subarray(0, nCols).sort();
      }
      const tree = grower.grow(c, sample, features, grow);
      tree.target = c;
      // The cover counts every training row (not only the round's sample), so it is what
      // explain.ts would count from the training rows as background: binned routing equals the
      // float32 threshold rule on these rows, NaN (bin 0) going left. Without a sample the
      // partition already holds each leaf's rows; with one, every row is routed.
      const cover = new Float64Array(tree.feature.length);
      if (sample === null) grower.addLeaves(tree, c, cover);
      else for (let r = 0; r < n; r++) raw[r * k + c] += predictBinnedCounting(tree, bins, nf, r, cover);
      if (vraw) {
        const vx = valid!.x;
        for (let r = 0; r < vx.rows; r++) vraw[r * k + c] += predictRaw(tree, vx.data, r * vx.cols);
      }
      // The bin indices only route training rows; the stored tree keeps float32 thresholds.
      out.push({ target: c, feature: tree.feature, threshold: tree.threshold, left: tree.left, right: tree.right, value: tree.value, cover: Array.from(cover) });
    }

    const last = round === trees - 1;
    let valLoss: number | undefined;
    if (vraw) valLoss = lossOf(task, valid!.y, undefined, vraw, valid!.x.rows, k);
    if (useEs) {
      if (valLoss! < bestLoss - TOL * Math.abs(bestLoss) || round === 0) {
        bestLoss = valLoss!;
        bestRounds = round + 1;
        sinceBest = 0;
      } else if (++sinceBest >= esRounds) {
        report(ctx, round, task, y, w, raw, n, k, valLoss, 1);
        break;
      }
    }
    if ((round + 1) % 10 === 0 || last) report(ctx, round, task, y, w, raw, n, k, valLoss, (round + 1) / trees);
  }
  const rounds = useEs ? bestRounds : out.length / k;
  const weights: GbdtWeights = { format: 1, objective, baseScore: Array.from(base), rounds, trees: out.slice(0, rounds * k) };
  return new GbdtModel(task, nClasses, nf, { ...params }, weights);
}

function report(
  ctx: TrainContext,
  round: number,
  task: TrainData['task'],
  y: Float64Array,
  w: Float64Array | undefined,
  raw: Float64Array,
  n: number,
  k: number,
  valLoss: number | undefined,
  fraction: number,
): void {
  if (!ctx.onProgress) return;
  const loss = lossOf(task, y, w, raw, n, k);
  ctx.onProgress({ stage: 'gbdt', fraction: Math.min(1, fraction), epoch: round + 1, loss, ...(valLoss !== undefined ? { valLoss } : {}) });
}

function checkData(data: TrainData): void {
  const { x, y, task, nClasses } = data;
  const m = data.nOutputs ?? 1;
  if (!Number.isInteger(m) || m < 1) throw Errors.badData('', `gbdt: nOutputs must be a positive integer, got ${String(m)}`);
  if (m > 1 && task !== 'regression') throw Errors.badData('', `gbdt: several outputs need a regression task, not ${task}`);
  if (x.rows === 0) throw Errors.badData('', 'gbdt: no training rows');
  if (y.length !== x.rows * m) throw Errors.badData('', `gbdt: ${x.rows} rows${m > 1 ? ` × ${m} outputs` : ''} but ${y.length} targets`);
  if (data.weights && data.weights.length !== x.rows) throw Errors.badData('', `gbdt: ${x.rows} rows but ${data.weights.length} weights`);
  if (task !== 'regression' && (!Number.isInteger(nClasses) || nClasses < 2))
    throw Errors.badData('', `gbdt: ${task} needs nClasses >= 2, got ${nClasses}`);
  const checkY = (ys: Float64Array, where: string) => {
    for (let i = 0; i < ys.length; i++) {
      const v = ys[i]!;
      if (task === 'regression' ? !Number.isFinite(v) : !(Number.isInteger(v) && v >= 0 && v < nClasses))
        throw Errors.badData('', `gbdt: ${where} target at row ${Math.floor(i / m) + 1}${m > 1 ? `, output ${(i % m) + 1},` : ''} is not ${task === 'regression' ? 'a finite number' : `a class index in [0, ${nClasses})`}`);
    }
  };
  checkY(y, 'training');
  if (data.valid) {
    if (data.valid.x.cols !== x.cols) throw Errors.badData('', `gbdt: validation rows have ${data.valid.x.cols} columns, training rows ${x.cols}`);
    if (data.valid.y.length !== data.valid.x.rows * m) throw Errors.badData('', 'gbdt: validation rows and targets differ in length');
    checkY(data.valid.y, 'validation');
  }
}

/** Log-odds of the (weighted) positive rate, log class priors, or the (weighted) mean of each output. */
function initialScores(task: TrainData['task'], y: Float64Array, w: Float64Array | undefined, k: number): Float64Array {
  // Regression targets are rows × k (k outputs); the other tasks have one target per row.
  const n = task === 'regression' ? y.length / k : y.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += w ? w[i]! : 1;
  if (total <= 0) total = 1;
  const base = new Float64Array(k);
  if (task === 'regression') {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += (w ? w[i]! : 1) * y[i * k + c]!;
      base[c] = s / total;
    }
  } else if (task === 'binary') {
    let s = 0;
    for (let i = 0; i < n; i++) s += (w ? w[i]! : 1) * y[i]!;
    // Clipped so a single-class training set still gives a finite (JSON-serializable) score.
    const p = Math.min(1 - 1e-6, Math.max(1e-6, s / total));
    base[0] = Math.log(p / (1 - p));
  } else {
    const counts = new Float64Array(k);
    for (let i = 0; i < n; i++) counts[y[i]!]! += w ? w[i]! : 1;
    for (let c = 0; c < k; c++) base[c] = Math.log(Math.max(1e-6, counts[c]! / total));
  }
  return base;
}

/** Weighted mean loss: log loss, softmax cross-entropy, or mean squared error (averaged over outputs). */
export function lossOf(
  task: TrainData['task'],
  y: Float64Array,
  w: Float64Array | undefined,
  raw: Float64Array,
  n: number,
  k: number,
): number {
  let s = 0;
  let total = 0;
  const tmp = task === 'multiclass' ? new Float64Array(k) : null;
  for (let i = 0; i < n; i++) {
    const wi = w ? w[i]! : 1;
    total += wi;
    if (task === 'regression') {
      for (let c = 0; c < k; c++) {
        const d = raw[i * k + c]! - y[i * k + c]!;
        s += wi * d * d;
      }
    } else if (task === 'binary') {
      const p = sigmoid(raw[i]!);
      s -= wi * Math.log(Math.min(1 - EPS, Math.max(EPS, y[i] === 1 ? p : 1 - p)));
    } else {
      softmaxInto(raw.subarray(i * k, i * k + k), 0, k, tmp!);
      s -= wi * Math.log(Math.max(EPS, tmp![y[i]!]!));
    }
  }
  const outputs = task === 'regression' ? k : 1;
  return total > 0 ? s / (total * outputs) : 0;
}

/** Exposed for tests: the bins a matrix would get (used to check the threshold invariant). */
export function binsOf(x: Matrix, maxBins: number): { upper: Float64Array[]; bins: Uint8Array } {
  const m = fitBins(x, maxBins);
  return { upper: m.upper, bins: applyBins(x, m) };
}
