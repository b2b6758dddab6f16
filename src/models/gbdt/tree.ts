/**
 * One regression tree, grown on histograms of binned features from Newton gradients/hessians.
 * The tree is kept as flat arrays (one entry per node) because that is exactly the layout of
 * ONNX's TreeEnsemble attributes: the exporter maps node i to nodes_nodeids = i without any walk.
 */

import { Errors, type Matrix, type Task } from '../../core/index.js';
import { CELL, D, DESC_BYTES, J, JOB_BYTES, MAX_CHUNKS, MAX_JOBS, MAX_PAGES, PAGE, RESULT, sharedMemory, type Kernel, type SharedMemory } from './kernel.js';
import { HistPool } from './parallel.js';
import { CTRL_BYTES, KIND, LEAF_BYTES, PART_BYTES, Work, type Kind, type Layout } from './work.js';

/** A tree as stored and exported. Node 0 is the root; children always have larger ids. */
export interface Tree {
  /** Output this tree adds to: class index for multiclass, 0 otherwise. */
  target: number;
  /** Split feature per node; -1 marks a leaf. */
  feature: number[];
  /** float32-representable threshold; `Math.fround(x) <= threshold` (or x NaN) goes left. 0 on leaves. */
  threshold: number[];
  /** Left child id; -1 on leaves. */
  left: number[];
  /** Right child id; -1 on leaves. */
  right: number[];
  /** Leaf value with the learning rate already applied; 0 on internal nodes. */
  value: number[];
  /**
   * Training rows reaching each node (all rows given to the trainer, not only a round's sample):
   * the weights TreeSHAP gives a node's branches when a feature is absent. Written by the trainer
   * since explanations existed; older weights have none and explain from background rows.
   */
  cover?: number[];
}

/** A tree plus the bin index of each split, used to route binned training rows. */
export interface GrownTree extends Tree {
  bin: number[];
}

/** Growth limits and regularisation. */
export interface GrowParams {
  maxDepth: number;
  /** 0 means no limit beyond `maxDepth`. */
  maxLeaves: number;
  minSamplesLeaf: number;
  minChildWeight: number;
  l2: number;
  minGain: number;
  learningRate: number;
}

/** A node being grown. */
interface Node {
  /** Its id in the tree (given by `number` or `growBestFirst`). */
  id: number;
  /** Its rows: idx[start, end); once partitioned, the left child's are idx[start, mid). */
  start: number;
  end: number;
  mid: number;
  depth: number;
  /** Gradient and hessian sums of its rows. */
  g: number;
  h: number;
  /** Byte offset of its histogram in the shared memory, or -1. */
  hist: number;
  /** Its best split (feature -1: none), with the left side's sums. */
  feature: number;
  bin: number;
  gain: number;
  gl: number;
  hl: number;
  cl: number;
  /** Its children once split. */
  left: Node | null;
  right: Node | null;
}

/** One node's share of a step: the histogram of `build` (minus from `parent` when >= 0), then the best splits of `splits`. */
interface Job {
  build: Node;
  parent: number;
  splits: Node[];
  /** The root over every row: its bins' counts are the same every tree (`countAll`). */
  rootCounts?: boolean;
}

function leafValue(g: number, h: number, p: GrowParams): number {
  const d = h + p.l2;
  return d > 0 ? (-g / d) * p.learningRate : 0;
}

/** Removes and returns the open node with the largest gain (the earlier on ties, so growth is deterministic). */
function takeBest(open: Node[]): Node {
  let best = 0;
  for (let i = 1; i < open.length; i++) if (open[i]!.gain > open[best]!.gain) best = i;
  return open.splice(best, 1)[0]!;
}

/** Options of a `TreeGrower`. */
export interface GrowerOptions {
  /** Threads that build histograms (1: the calling thread only). */
  threads: number;
  /**
   * Rows × features a node needs before its histogram is split between threads; smaller ones
   * cost less than the hand-over (about 10–30 µs a step here).
   */
  parallelMin: number;
  /** Rows from which a node's partition is cut into parts for all threads (default `PART_ROWS`; tests lower it). */
  partRows?: number;
  /** Wait for the workers to be up before the first tree (tests: so that they take part from the start). */
  ready?: boolean;
}

/** Rows × features below which a node's step stays on the calling thread (measured: see parallel.ts). */
export const PARALLEL_MIN = 40_000;
/** Rows below which gradients, binning and the transpose stay on the calling thread. */
const ROWS_PARALLEL_MIN = 20_000;
/** Rows from which a node's partition is cut into parts for all threads (about 20 µs a part). */
const PART_ROWS = 16_384;
/**
 * Jobs per thread from which a step hands out whole jobs instead of cutting each job into a
 * feature chunk per thread: every thread that takes a chunk of a node reads all of its rows'
 * gradients and bins, at random, so cutting doubles those reads on 2 threads (measured on the
 * 100k × 30 table, 2 threads, whole jobs from 2 per thread: 0.90–0.96 of the training time).
 */
const WHOLE_JOBS = 2;

const align = (v: number) => Math.ceil(v / 64) * 64;

/** The training table a `TreeGrower` is built for. */
export interface GrowerData {
  x: Matrix;
  /** Targets, rows × outputs. */
  y: Float64Array;
  weights?: Float64Array | undefined;
  task: Task;
  /** Raw-score outputs (classes for multiclass, regression outputs, else 1). */
  outputs: number;
}

/**
 * Grows trees over one binned training matrix. Everything the hot loops touch lives in one shared
 * WebAssembly memory (`work.ts` `Layout`): the binned rows (row-major, a byte per cell, so one
 * row's bins share a cache line), the raw scores, targets and (gradient, hessian) pairs, the row
 * partition (every node owns a contiguous, ascending segment of row ids) and a pool of
 * histograms; with `threads` > 1 the workers of `parallel.ts` share it and take chunks of the
 * binning, the gradients and the big nodes' steps. Buffers are reused from tree to tree, so a
 * boosting run allocates per tree only the (tiny) node arrays. Call `close()` when done.
 */
export class TreeGrower {
  /** Binned rows, `bins[r * nFeatures + f]`: a view of the shared memory. */
  readonly bins: Uint8Array;
  /** Raw scores, `raw[r * outputs + c]`, starting at 0: the trainer sets and adds to them. */
  readonly raw: Float64Array;
  /** Bin upper edges per feature (`upper[f][b]` is the float32 threshold of "bin <= b"). */
  readonly upper: Float64Array[] = [];
  private readonly n: number;
  private readonly nFeatures: number;
  private readonly memory: SharedMemory;
  private readonly work: Work;
  private readonly kernel: Kernel;
  private readonly pool: HistPool | null;
  private readonly parallelMin: number;
  private readonly partRows: number;
  private readonly idx: Uint32Array;
  private readonly di: Int32Array;
  private readonly df: Float64Array;
  /** The job array (as i32 and f64), the partition jobs, the split results. */
  private readonly ji: Int32Array;
  private readonly jf: Float64Array;
  private readonly parts: Int32Array;
  /** Leaf jobs: start, end (i32), value (f64). */
  private readonly leaves: Int32Array;
  private readonly leavesF: Float64Array;
  private readonly at: Layout;
  private readonly histBytes: number;
  private readonly free: number[] = [];
  private slots = 0;
  private capacity: number;
  /** Row segment [start, end) of every node of the last tree grown. */
  private segStart: number[] = [];
  private segEnd: number[] = [];

  /**
   * Lays out the shared memory for `data` and starts the workers (in the background: they join
   * when up); `bin` comes next.
   */
  constructor(data: GrowerData, maxBins: number, options: GrowerOptions) {
    this.partRows = options.partRows ?? PART_ROWS;
    if (!Number.isInteger(this.partRows) || this.partRows < 1) throw Errors.internal('gbdt: partRows must be an integer of at least 1');
    const { x, outputs: k } = data;
    const n = x.rows;
    const nf = x.cols;
    this.n = n;
    this.nFeatures = nf;
    const hs = maxBins * CELL;
    this.histBytes = Math.max(64, align(nf * hs));
    const threads = Math.max(1, Math.min(options.threads, MAX_CHUNKS));
    let p = 0;
    const take = (bytes: number) => {
      const o = p;
      p += align(bytes);
      return o;
    };
    this.at = {
      n,
      nf,
      k,
      task: data.task,
      maxBins,
      weighted: data.weights !== undefined,
      ctrl: take(CTRL_BYTES),
      desc: take(DESC_BYTES),
      jobs: take(MAX_JOBS * JOB_BYTES),
      parts: take(MAX_JOBS * PART_BYTES),
      leaves: take(MAX_JOBS * LEAF_BYTES),
      out: take(MAX_JOBS * 2 * threads * RESULT),
      feats: take(nf * 4),
      nbp: take(nf * 4),
      up: take(nf * maxBins * 8),
      idx: take(n * 4),
      tmp: take(n * 4),
      gh: take(k * n * 16),
      bins: take(n * nf),
      cbins: take(n * nf),
      counts: take(this.histBytes),
      raw: take(n * k * 8),
      y: take(n * k * 8),
      w: take(data.weights ? n * 8 : 0),
      prob: take(data.task === 'multiclass' ? n * k * 8 : 0),
      hist: 0,
    };
    this.at.hist = p;
    // Room for a few histograms to begin with (more are added as open nodes need them), and for
    // the float32 columns binning reads there first.
    this.capacity = Math.max(8, Math.ceil((n * nf * 4) / this.histBytes));
    const bytes = p + this.capacity * this.histBytes;
    if (bytes > (MAX_PAGES - 1) * PAGE)
      throw Errors.badData('', `gbdt: ${n} rows × ${nf} features need ${Math.ceil(bytes / 2 ** 20)} MiB of working memory, more than the 4 GiB it can address`);
    this.memory = sharedMemory(Math.ceil(bytes / PAGE));
    this.work = new Work(this.memory, this.at);
    this.kernel = this.work.kernel;
    const buf = this.memory.buffer;
    this.bins = this.work.bins;
    this.raw = this.work.raw;
    this.idx = new Uint32Array(buf, this.at.idx, n);
    this.di = new Int32Array(buf, this.at.desc, DESC_BYTES / 4);
    this.df = new Float64Array(buf, this.at.desc, DESC_BYTES / 8);
    this.ji = new Int32Array(buf, this.at.jobs, (MAX_JOBS * JOB_BYTES) / 4);
    this.jf = new Float64Array(buf, this.at.jobs, (MAX_JOBS * JOB_BYTES) / 8);
    this.parts = new Int32Array(buf, this.at.parts, (MAX_JOBS * PART_BYTES) / 4);
    this.leaves = new Int32Array(buf, this.at.leaves, (MAX_JOBS * LEAF_BYTES) / 4);
    this.leavesF = new Float64Array(buf, this.at.leaves, (MAX_JOBS * LEAF_BYTES) / 8);
    const d = this.di;
    d[D.idx / 4] = this.at.idx;
    d[D.bins / 4] = this.at.bins;
    d[D.nf / 4] = nf;
    d[D.feats / 4] = this.at.feats;
    d[D.hs / 4] = hs;
    d[D.nbp / 4] = this.at.nbp;
    d[D.up / 4] = this.at.up;
    d[D.ub / 4] = maxBins * 8;
    d[D.out / 4] = this.at.out;
    d[D.jobs / 4] = this.at.jobs;
    d[D.counts / 4] = this.at.counts;
    this.pool = threads > 1 ? new HistPool(this.memory, this.at, threads - 1) : null;
    this.parallelMin = options.parallelMin;

    this.work.y.set(data.y);
    if (data.weights) this.work.w!.set(data.weights);
  }

  /**
   * Bins the training rows (`binning.ts`, the same edges and bins as `fitApplyBins`), a feature
   * per chunk, then lays the bins out row-major too.
   */
  bin(x: Matrix): void {
    const { n, nFeatures: nf } = this;
    const maxBins = this.at.maxBins;
    // The float32 values (what the thresholds compare; a Float32Array store rounds as Math.fround),
    // in one copy; each feature's chunk gathers its column.
    this.work.xrow.set(x.data);
    this.run(KIND.bins, nf, 1, n >= ROWS_PARALLEL_MIN);
    const per = Math.max(4096, Math.ceil(n / 16));
    this.run(KIND.transpose, Math.ceil(n / per), per, n >= ROWS_PARALLEL_MIN);
    for (let f = 0; f < nf; f++) this.upper.push(this.work.up.slice(f * maxBins, f * maxBins + this.work.nbp[f]!));
    this.countAll();
  }

  /**
   * The bin counts of every feature over all rows (the histogram at `counts`): what the root of
   * a tree grown on all rows counts, every tree, so its histogram only sums g and h and takes
   * these (a quarter less work in the biggest node).
   */
  private countAll(): void {
    const { n, nFeatures: nf } = this;
    if (nf === 0) return;
    this.kernel.iota(this.at.idx, n);
    new Int32Array(this.memory.buffer, this.at.feats, nf).set(Int32Array.from({ length: nf }, (_, f) => f));
    this.di[D.nsel / 4] = nf;
    // Any gradients do: only the counts are kept.
    this.di[D.gh / 4] = this.at.gh;
    const all: Node = { id: 0, start: 0, end: n, mid: 0, depth: 0, g: 0, h: 0, hist: this.at.counts, feature: -1, bin: -1, gain: 0, gl: 0, hl: 0, cl: 0, left: null, right: null };
    this.steps([{ build: all, parent: -1, splits: [] }], { maxDepth: 0, maxLeaves: 0, minSamplesLeaf: 1, minChildWeight: 0, l2: 0, minGain: 0, learningRate: 0 });
  }

  /** Resolves when the workers have joined (tests: so that they take part from the first tree). */
  ready(): Promise<void> {
    return this.pool?.ready() ?? Promise.resolve();
  }

  /** Ends the training's lease of the workers, if any (they wait for the next training). */
  close(): void {
    this.pool?.close();
  }

  /** Gradients and hessians of every row and output from `raw` (`objective.ts` `computeGradients`). */
  gradients(): void {
    const per = Math.max(4096, Math.ceil(this.n / 16));
    this.run(KIND.gradients, Math.ceil(this.n / per), per, this.n >= ROWS_PARALLEL_MIN);
  }

  /** Chunks 0..chunks-1 of a step of `kind`, on all threads when `parallel` (and worth it). */
  private run(kind: Kind, chunks: number, per: number, parallel: boolean): void {
    if (this.pool !== null && parallel && chunks > 1 && this.pool.worthIt()) this.pool.step(kind, chunks, per, (c) => this.work.run(kind, c, per));
    else for (let c = 0; c < chunks; c++) this.work.run(kind, c, per);
  }

  /**
   * Grows one tree for output `output` (its gradients in `gh`): best-first (largest gain first)
   * until `maxLeaves`, or, without a leaf limit, until no leaf can be split within `maxDepth`,
   * which is the tree depth-wise growth gives (and is grown level by level). `sample` lists the
   * rows to fit (ascending), or null for all rows.
   */
  grow(output: number, sample: Uint32Array | null, features: Int32Array, p: GrowParams): GrownTree {
    const ghBase = output * this.n * 2;
    let m: number;
    if (sample === null) {
      m = this.n;
      this.kernel.iota(this.at.idx, m);
    } else {
      m = sample.length;
      this.idx.set(sample);
    }
    this.kernel.sums(this.at.idx, this.at.gh + ghBase * 8, m, this.at.desc + D.sums);
    const g = this.df[D.sums / 8]!;
    const h = this.df[D.sums / 8 + 1]!;
    const root: Node = { id: 0, start: 0, end: m, depth: 0, g, h, hist: -1, feature: -1, bin: -1, gain: 0, gl: 0, hl: 0, cl: 0, mid: 0, left: null, right: null };
    if (m >= 2 * p.minSamplesLeaf && p.maxDepth >= 1 && features.length > 0) {
      new Int32Array(this.memory.buffer, this.at.feats, features.length).set(features);
      const di = this.di;
      const df = this.df;
      di[D.nsel / 4] = features.length;
      di[D.gh / 4] = this.at.gh + ghBase * 8;
      df[D.lambda / 8] = p.l2;
      df[D.minLeaf / 8] = p.minSamplesLeaf;
      df[D.minHess / 8] = Math.max(p.minChildWeight, 1e-12);
      root.hist = this.acquire();
      // Growing level by level, a node is partitioned as soon as its split is found.
      this.steps([{ build: root, parent: -1, splits: [root], rootCounts: sample === null }], p, p.maxLeaves === 0);
      if (p.maxLeaves === 0) this.growByLevel(root, p);
      else return this.growBestFirst(root, p);
    }
    return this.number(root, p);
  }

  /**
   * Splits every splittable node level by level: one step per level (instead of one per node), in
   * which each node's rows are also partitioned as soon as its split is found, so the threads meet
   * a few times a tree. Without a leaf
   * limit every node with a split is split whatever the order, so this is the tree best-first
   * growth gives; `number` then gives the nodes the ids best-first growth gives them.
   */
  private growByLevel(root: Node, p: GrowParams): void {
    let level: Node[] = [];
    if (root.feature >= 0) level.push(root);
    else this.release(root);
    while (level.length > 0) {
      // Every node of the level was partitioned when its split was found (`work.ts` `finishJob`).
      const jobs: Job[] = [];
      for (const node of level) {
        const job = this.children(node, p);
        if (job) jobs.push(job);
        else this.release(node);
      }
      this.steps(jobs, p, true);
      const next: Node[] = [];
      for (const node of level)
        for (const c of [node.left!, node.right!]) {
          if (c.feature >= 0) next.push(c);
          else this.release(c);
        }
      level = next;
    }
  }

  /**
   * Best-first growth (largest gain first) until `maxLeaves` or until no leaf can be split within
   * `maxDepth`: node ids in the order the nodes are split.
   */
  private growBestFirst(root: Node, p: GrowParams): GrownTree {
    const tree = this.newTree(root, p);
    const open: Node[] = [];
    if (root.feature >= 0) open.push(root);
    else this.release(root);
    let leaves = 1;
    while (open.length > 0 && leaves < p.maxLeaves) {
      const node = takeBest(open);
      this.partition([node]);
      const job = this.children(node, p);
      this.split(tree, node, p);
      leaves++;
      if (job) {
        this.steps([job], p);
        for (const c of [node.left!, node.right!]) {
          if (c.feature >= 0) open.push(c);
          else this.release(c);
        }
      } else this.release(node);
    }
    for (const o of open) this.release(o);
    return tree;
  }

  /**
   * The tree's arrays with the node ids best-first growth gives: the root 0, then the children
   * of the open node with the largest gain (the earlier on ties), two at a time, as in
   * `growBestFirst`.
   */
  private number(root: Node, p: GrowParams): GrownTree {
    const tree = this.newTree(root, p);
    const open: Node[] = [];
    if (root.left !== null) open.push(root);
    while (open.length > 0) {
      const node = takeBest(open);
      this.split(tree, node, p);
      for (const c of [node.left!, node.right!]) if (c.left !== null) open.push(c);
    }
    return tree;
  }

  private newTree(root: Node, p: GrowParams): GrownTree {
    this.segStart = [root.start];
    this.segEnd = [root.end];
    return { target: 0, feature: [-1], threshold: [0], left: [-1], right: [-1], value: [leafValue(root.g, root.h, p)], bin: [-1] };
  }

  /** Writes `node`'s split and its two children (leaves until split) into the tree arrays. */
  private split(tree: GrownTree, node: Node, p: GrowParams): void {
    const left = node.left!;
    const right = node.right!;
    const lid = tree.feature.length;
    left.id = lid;
    right.id = lid + 1;
    tree.feature[node.id] = node.feature;
    tree.threshold[node.id] = this.upper[node.feature]![node.bin]!;
    tree.bin[node.id] = node.bin;
    tree.left[node.id] = lid;
    tree.right[node.id] = lid + 1;
    tree.value[node.id] = 0;
    for (const c of [left, right]) {
      tree.feature.push(-1);
      tree.threshold.push(0);
      tree.left.push(-1);
      tree.right.push(-1);
      tree.bin.push(-1);
      tree.value.push(leafValue(c.g, c.h, p));
      this.segStart.push(c.start);
      this.segEnd.push(c.end);
    }
  }

  /**
   * The two children of a partitioned node, and the job that builds the smaller one's
   * histogram (the larger one's is the parent's minus it) and searches their splits, or null
   * when neither can be split.
   */
  private children(node: Node, p: GrowParams): Job | null {
    const nl = node.mid;
    const mk = (start: number, end: number, g: number, h: number): Node => ({ id: -1, start, end, depth: node.depth + 1, g, h, hist: -1, feature: -1, bin: -1, gain: 0, gl: 0, hl: 0, cl: 0, mid: 0, left: null, right: null });
    const left = mk(node.start, nl, node.gl, node.hl);
    const right = mk(nl, node.end, node.g - node.gl, node.h - node.hl);
    node.left = left;
    node.right = right;
    const canSplit = (c: Node) => c.depth < p.maxDepth && c.end - c.start >= 2 * p.minSamplesLeaf;
    const splits = [left, right].filter(canSplit);
    if (splits.length === 0) return null;
    // Histogram subtraction: scan only the smaller child, derive the larger from the parent.
    const [small, large] = nl - node.start <= node.end - nl ? [left, right] : [right, left];
    small.hist = this.acquire();
    large.hist = node.hist;
    node.hist = -1;
    return { build: small, parent: large.hist, splits };
  }

  /** Stable partition of each node's rows by its split (left rows first, ascending): `node.mid`. */
  private partition(nodes: Node[]): void {
    const parts = this.parts;
    let rows = 0;
    for (let s = 0; s < nodes.length; s += MAX_JOBS) {
      const batch = nodes.slice(s, s + MAX_JOBS);
      batch.forEach((node, j) => {
        parts[j * 8] = node.start;
        parts[j * 8 + 1] = node.end;
        parts[j * 8 + 2] = node.feature;
        parts[j * 8 + 3] = node.bin;
        rows += node.end - node.start;
      });
      this.run(KIND.partition, batch.length, 0, rows >= ROWS_PARALLEL_MIN);
      batch.forEach((node, j) => (node.mid = parts[j * 8 + 4]!));
    }
  }

  /**
   * Runs `jobs` (histograms, subtractions, split searches), as many steps as `MAX_JOBS` needs,
   * each on one thread or, when big enough, for all threads (whole jobs, or feature chunks of
   * each when there are few: `WHOLE_JOBS`); then reads each searched node's best split.
   */
  private steps(jobs: Job[], p: GrowParams, partition = false): void {
    const di = this.di;
    const nsel = di[D.nsel / 4]!;
    di[D.partition / 4] = partition ? 1 : 0;
    // Largest first: threads claim jobs in order, so a level of whole jobs ends with small ones
    // (which job comes first changes nothing else: each has its own histogram and results).
    if (jobs.length > 1) jobs = jobs.slice().sort((a, b) => b.build.end - b.build.start - (a.build.end - a.build.start));
    for (let s = 0; s < jobs.length; s += MAX_JOBS) {
      const batch = jobs.slice(s, s + MAX_JOBS);
      let cells = 0;
      batch.forEach((job, j) => {
        this.writeJob(j, job, p);
        cells += (job.build.end - job.build.start) * nsel;
      });
      const pool = this.pool;
      const parallel = pool !== null && cells >= this.parallelMin && pool.worthIt();
      // Feature chunks per job: one for a step on the calling thread or with jobs enough for every
      // thread (`WHOLE_JOBS`), else about one per thread.
      const per = parallel && batch.length < WHOLE_JOBS * pool.threads ? Math.ceil(nsel / pool.threads) : nsel;
      const fchunks = Math.ceil(nsel / per);
      di[D.chunk / 4] = per;
      di[D.fchunks / 4] = fchunks;
      const chunks = batch.length * fchunks;
      di[D.nhist / 4] = chunks;
      if (parallel) {
        const parts = partition ? this.partsOf(batch, pool.threads) : 0;
        pool.step(KIND.hist, chunks + parts, 0, (c) => this.work.run(KIND.hist, c, 0));
      } else for (let c = 0; c < chunks; c++) this.work.run(KIND.hist, c, 0);
      // The thread that ran a job's last chunk left its nodes' best splits (and rows) in the job.
      const ji = this.ji;
      const jf = this.jf;
      batch.forEach((job, j) => {
        const b = (j * JOB_BYTES) / 4;
        job.splits.forEach((node, slot) => {
          const r = (j * JOB_BYTES + (slot === 0 ? J.gain0 : J.gain1)) / 8;
          node.gain = jf[r]!;
          node.feature = ji[b + (slot === 0 ? J.feature0 : J.feature1) / 4]!;
          if (node.feature < 0) return;
          node.bin = ji[b + (slot === 0 ? J.bin0 : J.bin1) / 4]!;
          node.gl = jf[r + 1]!;
          node.hl = jf[r + 2]!;
          node.cl = jf[r + 3]!;
          if (partition) node.mid = ji[b + (slot === 0 ? J.mid0 : J.mid1) / 4]!;
        });
      });
    }
  }

  /**
   * Cuts the partitions of the step's big searched nodes (`partRows` rows or more) into parts
   * that every thread takes after the histograms (`work.ts` `partitionPart`), instead of the one
   * thread that finds the split; returns the number of parts. The rows end up as one thread would
   * leave them.
   */
  private partsOf(batch: Job[], threads: number): number {
    const ji = this.ji;
    const parts = this.parts;
    let q = 0;
    batch.forEach((job, j) => {
      const b = (j * JOB_BYTES) / 4;
      job.splits.forEach((node, slot) => {
        const rows = node.end - node.start;
        const count = Math.min(Math.ceil(rows / this.partRows), 2 * threads);
        if (rows < this.partRows || q + count > MAX_JOBS) return;
        ji[b + J.flags / 4]! |= slot === 0 ? 8 : 16;
        ji[b + (slot === 0 ? J.left0 : J.left1) / 4] = count;
        ji[b + (slot === 0 ? J.part0 : J.part1) / 4] = q;
        ji[b + (slot === 0 ? J.parts0 : J.parts1) / 4] = count;
        for (let i = 0; i < count; i++, q++) {
          const o = (q * PART_BYTES) / 4;
          parts[o] = j;
          parts[o + 1] = slot;
          parts[o + 2] = node.start + Math.floor((rows * i) / count);
          parts[o + 3] = node.start + Math.floor((rows * (i + 1)) / count);
        }
      });
    });
    return q;
  }

  private writeJob(j: number, job: Job, p: GrowParams): void {
    const ji = this.ji;
    const jf = this.jf;
    const b = (j * JOB_BYTES) / 4;
    const { build, parent, splits } = job;
    ji[b + J.flags / 4] = 1 | (parent >= 0 ? 2 : 0) | (job.rootCounts ? 4 : 0);
    ji[b + J.start / 4] = build.start;
    ji[b + J.end / 4] = build.end;
    ji[b + J.small / 4] = build.hist;
    ji[b + J.parent / 4] = parent;
    ji[b + J.nSplits / 4] = splits.length;
    ji[b + J.done / 4] = 0;
    ji[b + J.ready / 4] = 0;
    splits.forEach((node, s) => {
      // Its histogram is either the one built or the parent's, which becomes the sibling's.
      ji[b + (s === 0 ? J.hist0 : J.hist1) / 4] = node === build ? build.hist : parent;
      ji[b + (s === 0 ? J.start0 : J.start1) / 4] = node.start;
      ji[b + (s === 0 ? J.end0 : J.end1) / 4] = node.end;
      const base = (j * JOB_BYTES + (s === 0 ? J.g0 : J.g1)) / 8;
      const parentScore = (node.g * node.g) / (node.h + p.l2);
      jf[base] = node.g;
      jf[base + 1] = node.h;
      jf[base + 2] = node.end - node.start;
      jf[base + 3] = parentScore;
      // A relative floor keeps rounding noise on pure nodes from passing as a gain.
      jf[base + 4] = Math.max(p.minGain, 0) + 1e-10 * parentScore;
    });
  }

  /**
   * Adds each leaf's value to output `output` of the raw scores (`raw[r * outputs + output]`) of
   * the rows the last tree's partition put there (a chunk per leaf: leaves own disjoint rows),
   * and counts the rows of every node into `cover`: what routing every row through the tree
   * gives, without routing. Only for a tree grown on all rows (no sample).
   */
  addLeaves(tree: GrownTree, output: number, cover: Float64Array): void {
    const leaves = this.leaves;
    const lf = this.leavesF;
    let count = 0;
    const flush = () => {
      // A leaf is a small chunk: below some 160,000 rows the hand-over costs what it saves.
      this.run(KIND.leaves, count, output, this.n >= 8 * ROWS_PARALLEL_MIN);
      count = 0;
    };
    for (let id = 0; id < tree.feature.length; id++) {
      const start = this.segStart[id]!;
      const end = this.segEnd[id]!;
      cover[id] = end - start;
      if (tree.feature[id]! >= 0) continue;
      leaves[count * 4] = start;
      leaves[count * 4 + 1] = end;
      lf[count * 2 + 1] = tree.value[id]!;
      if (++count === MAX_JOBS) flush();
    }
    if (count > 0) flush();
  }

  private acquire(): number {
    const free = this.free.pop();
    if (free !== undefined) return free;
    if (this.slots === this.capacity) {
      // Double the room; a shared memory grows in place, so existing views stay valid.
      const more = this.capacity;
      const pages = Math.ceil((this.at.hist + (this.capacity + more) * this.histBytes) / PAGE) - this.memory.buffer.byteLength / PAGE;
      if (this.memory.buffer.byteLength / PAGE + pages > MAX_PAGES - 1) throw Errors.badData('', 'gbdt: the open nodes\' histograms need more than the 4 GiB of working memory; lower max_leaves or max_depth');
      if (pages > 0) this.memory.grow(pages);
      this.capacity += more;
    }
    return this.at.hist + this.slots++ * this.histBytes;
  }

  private release(o: Node): void {
    if (o.hist >= 0) this.free.push(o.hist);
    o.hist = -1;
  }
}

/** Routes binned row `r` (row-major bins, `nf` per row) to its leaf and returns the leaf value. */
export function predictBinned(tree: GrownTree, bins: Uint8Array, nf: number, r: number): number {
  let node = 0;
  const feature = tree.feature;
  const base = r * nf;
  while (feature[node]! >= 0) {
    node = bins[base + feature[node]!]! <= tree.bin[node]! ? tree.left[node]! : tree.right[node]!;
  }
  return tree.value[node]!;
}

/**
 * `predictBinned` that also counts the row at every node on its path in `cover` (the trainer's
 * per-node row counts, gathered on the routing it does anyway).
 */
export function predictBinnedCounting(tree: GrownTree, bins: Uint8Array, nf: number, r: number, cover: Float64Array): number {
  let node = 0;
  const feature = tree.feature;
  const base = r * nf;
  cover[0]!++;
  while (feature[node]! >= 0) {
    node = bins[base + feature[node]!]! <= tree.bin[node]! ? tree.left[node]! : tree.right[node]!;
    cover[node]!++;
  }
  return tree.value[node]!;
}

/**
 * Routes one raw row to its leaf. `!(x > t)` sends NaN left, matching training (NaN is binned
 * into bin 0, which is left of every split) and ONNX with missing_value_tracks_true = 1.
 */
export function predictRaw(tree: Tree, data: Float64Array, offset: number): number {
  let node = 0;
  const feature = tree.feature;
  while (feature[node]! >= 0) {
    const x = Math.fround(data[offset + feature[node]!]!);
    node = x > tree.threshold[node]! ? tree.right[node]! : tree.left[node]!;
  }
  return tree.value[node]!;
}
