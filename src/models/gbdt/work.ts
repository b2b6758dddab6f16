/**
 * The chunks of work the GBDT trainer hands out, and the shared-memory layout they run over. The
 * training thread and the histogram workers (`hist-worker.ts`) run the very same functions here on
 * the same memory, each on the chunks it claims (`parallel.ts`), so what a chunk computes never
 * depends on which thread ran it:
 *
 * - `hist`: a feature chunk of a node's job (histogram, subtraction, best splits), in the
 *   WebAssembly kernel (`kernel.ts`); the thread that finishes a job's last chunk then takes the
 *   best split over the chunks and, growing level by level, partitions the node's rows by it, or,
 *   for a big node, the step's last chunks (`D.nhist` on) are parts of its partition for all threads;
 * - `gradients`: the gradients and hessians of a range of rows (`objective.ts`);
 * - `bins`: the edges and bins of one feature (`binning.ts`), written column-major;
 * - `transpose`: a range of rows of those bins into the row-major layout the histograms read;
 * - `partition`: one node's rows, stably by its split (nodes own disjoint row ranges);
 * - `leaves`: one leaf's value added to the raw scores of its rows (leaves own disjoint rows).
 *
 * This module and the ones it imports import nothing else of medfit, so a worker starts quickly.
 */
import type { Task } from '../../core/index.js';
import { binColumn, binScratch, type BinScratch } from './binning.js';
import { D, DESC_BYTES, instantiateKernel, J, JOB_BYTES, MAX_JOBS, RESULT, type Kernel, type SharedMemory } from './kernel.js';
import { computeGradients } from './objective.js';

/** Word indices (Int32) of the control block; counters 16 words apart, each on its own cache line. */
export const CTRL = { gen: 0, claim: 16, chunks: 32, done: 48, error: 49, byWorkers: 50, kind: 51, per: 52 } as const;
/** Bytes of the control block. */
export const CTRL_BYTES = 256;
/**
 * Checks of a control word before sleeping on it (about 100–200 µs, as OpenMP runtimes do): a
 * sleep hands the core to another process, and on busy cores getting it back can take
 * milliseconds, while the next step, or the chunk still running, usually comes within that time.
 */
export const SPIN = 20_000;

/** Kinds of chunk (the `kind` word of the control block). */
export const KIND = { hist: 0, gradients: 1, bins: 2, transpose: 3, partition: 4, leaves: 5 } as const;
export type Kind = (typeof KIND)[keyof typeof KIND];

/**
 * Bytes of one partition job: start, end, feature, bin (i32), then its first right index; as a
 * part of a big node's partition in a `hist` step: job, node slot, start, end, first right index.
 */
export const PART_BYTES = 32;
/** Bytes of one leaf job: start, end (i32), value (f64). */
export const LEAF_BYTES = 16;

/** Shapes of a training and the byte offsets of its arrays in the shared memory. */
export interface Layout {
  /** Training rows, features, outputs, task, most bins per feature, whether rows are weighted. */
  n: number;
  nf: number;
  k: number;
  task: Task;
  maxBins: number;
  weighted: boolean;
  ctrl: number;
  desc: number;
  jobs: number;
  /** Partition jobs, `PART_BYTES` each: start, end, feature, bin (i32), then the result. */
  parts: number;
  /** Leaf jobs, `LEAF_BYTES` each. */
  leaves: number;
  out: number;
  feats: number;
  nbp: number;
  up: number;
  idx: number;
  tmp: number;
  gh: number;
  bins: number;
  /** A histogram whose counts are those of all rows (the root's every tree). */
  counts: number;
  /** The same bins column-major (feature f's at f * n), for partitions. */
  cbins: number;
  raw: number;
  y: number;
  w: number;
  prob: number;
  /** Where the histograms go; before the first tree the rows' float32 values are there. */
  hist: number;
}

/** Views of a training's arrays and the kernel over its memory, and the chunk runner. */
export class Work {
  readonly kernel: Kernel;
  readonly gh: Float64Array;
  readonly raw: Float64Array;
  readonly y: Float64Array;
  readonly w: Float64Array | undefined;
  readonly bins: Uint8Array;
  readonly nbp: Int32Array;
  readonly up: Float64Array;
  /** The rows' float32 values, row-major (`x[i * nf + f]`), before binning. */
  readonly xrow: Float32Array;
  /** Feature f's bins at `f * n` (column-major). */
  readonly colBins: Uint8Array;
  private readonly prob: Float64Array;
  private readonly parts: Int32Array;
  private readonly di: Int32Array;
  private readonly ji: Int32Array;
  private readonly jf: Float64Array;
  private readonly res: DataView;
  private readonly leaves: Int32Array;
  private readonly leavesF: Float64Array;
  private readonly ctl: Int32Array;
  /** The row partition and its scratch (`Layout` idx, tmp). */
  private readonly idx: Uint32Array;
  private readonly tmp: Uint32Array;
  private scratch: BinScratch | null = null;
  private column: Float32Array | null = null;

  constructor(
    readonly memory: SharedMemory,
    readonly at: Layout,
  ) {
    const buf = memory.buffer;
    const { n, nf, k } = at;
    this.kernel = instantiateKernel(memory);
    this.gh = new Float64Array(buf, at.gh, 2 * k * n);
    this.raw = new Float64Array(buf, at.raw, n * k);
    this.y = new Float64Array(buf, at.y, n * k);
    this.w = at.weighted ? new Float64Array(buf, at.w, n) : undefined;
    this.prob = new Float64Array(buf, at.prob, at.task === 'multiclass' ? n * k : 0);
    this.bins = new Uint8Array(buf, at.bins, n * nf);
    this.nbp = new Int32Array(buf, at.nbp, nf);
    this.up = new Float64Array(buf, at.up, nf * at.maxBins);
    this.xrow = new Float32Array(buf, at.hist, n * nf);
    this.colBins = new Uint8Array(buf, at.cbins, n * nf);
    this.parts = new Int32Array(buf, at.parts, (MAX_JOBS * PART_BYTES) / 4);
    this.di = new Int32Array(buf, at.desc, DESC_BYTES / 4);
    this.ji = new Int32Array(buf, at.jobs, (MAX_JOBS * JOB_BYTES) / 4);
    this.jf = new Float64Array(buf, at.jobs, (MAX_JOBS * JOB_BYTES) / 8);
    this.res = new DataView(buf, at.out);
    this.leaves = new Int32Array(buf, at.leaves, (MAX_JOBS * LEAF_BYTES) / 4);
    this.leavesF = new Float64Array(buf, at.leaves, (MAX_JOBS * LEAF_BYTES) / 8);
    this.ctl = new Int32Array(buf, at.ctrl, CTRL_BYTES / 4);
    this.idx = new Uint32Array(buf, at.idx, n);
    this.tmp = new Uint32Array(buf, at.tmp, n);
  }

  /** Runs chunk `c` of a step of `kind` (`KIND`); `per` is rows per chunk (gradients, transpose), or the output (leaves). */
  run(kind: number, c: number, per: number): void {
    const { n, nf, k } = this.at;
    if (kind === KIND.hist) {
      const nhist = this.di[D.nhist / 4]!;
      if (c >= nhist) {
        this.partitionPart(c - nhist);
        return;
      }
      this.kernel.chunk(this.at.desc, c);
      const fchunks = this.di[D.fchunks / 4]!;
      const j = Math.floor(c / fchunks);
      // The other chunks' results are visible to the thread whose add comes last.
      if (Atomics.add(this.ji, (j * JOB_BYTES + J.done) / 4, 1) === fchunks - 1) this.finishJob(j, fchunks);
    }
    else if (kind === KIND.leaves) {
      this.kernel.addLeaf(this.at.idx, this.at.raw, this.leaves[c * 4]!, this.leaves[c * 4 + 1]!, k, per, this.leavesF[c * 2 + 1]!);
    }
    else if (kind === KIND.partition) {
      const q = this.parts;
      const o = (c * PART_BYTES) / 4;
      const start = q[o]!;
      // Each node writes its right rows into its own range of the scratch.
      q[o + 4] = this.kernel.partition(this.at.idx, this.at.tmp + start * 4, start, q[o + 1]!, this.at.cbins + q[o + 2]! * n, q[o + 3]!, 1);
    }
    else if (kind === KIND.gradients) {
      const start = c * per;
      const end = Math.min(n, (c + 1) * per);
      // The logistic gradients in the kernel (its exp is Math.exp's, bit for bit): a third of the time.
      if (this.at.task === 'binary') this.kernel.binaryGradients(this.at.raw, this.at.y, this.at.w, this.at.gh, start, end, this.at.weighted ? 1 : 0);
      else computeGradients(this.at.task, this.y, this.w, this.raw, this.prob, this.gh, n, k, start, end);
    } else if (kind === KIND.bins) {
      this.scratch ??= binScratch(n, true);
      const col = (this.column ??= new Float32Array(n));
      const x = this.xrow;
      for (let i = 0, o = c; i < n; i++, o += nf) col[i] = x[o]!;
      const edges = binColumn(col, this.at.maxBins, this.scratch, this.colBins, c * n, 1);
      this.up.set(edges, c * this.at.maxBins);
      this.nbp[c] = edges.length;
    } else {
      const bins = this.bins;
      const col = this.colBins;
      const end = Math.min(n, (c + 1) * per);
      for (let i = c * per; i < end; i++) for (let f = 0; f < nf; f++) bins[i * nf + f] = col[f * n + i]!;
    }
  }

  /**
   * Job j's searched nodes: the best split over its feature chunks, and with the header's
   * `partition` flag, the node's rows partitioned by it (nodes own disjoint rows and scratch).
   * Chunks hold consecutive features in order, so taking a chunk's best only when strictly better
   * keeps the first best feature, as one scan over all of them does.
   */
  private finishJob(j: number, fchunks: number): void {
    const ji = this.ji;
    const jf = this.jf;
    const res = this.res;
    const b = (j * JOB_BYTES) / 4;
    const nSplits = ji[b + J.nSplits / 4]!;
    for (let s = 0; s < nSplits; s++) {
      let gain = jf[(j * JOB_BYTES + (s === 0 ? J.floor0 : J.floor1)) / 8]!;
      let best = -1;
      for (let fc = 0; fc < fchunks; fc++) {
        const o = ((j * 2 + s) * fchunks + fc) * RESULT;
        const g = res.getFloat64(o, true);
        if (res.getInt32(o + 32, true) >= 0 && g > gain) {
          gain = g;
          best = o;
        }
      }
      const r = (j * JOB_BYTES + (s === 0 ? J.gain0 : J.gain1)) / 8;
      jf[r] = gain;
      const feature = best >= 0 ? res.getInt32(best + 32, true) : -1;
      const bin = best >= 0 ? res.getInt32(best + 36, true) : -1;
      ji[b + (s === 0 ? J.feature0 : J.feature1) / 4] = feature;
      ji[b + (s === 0 ? J.bin0 : J.bin1) / 4] = bin;
      if (best < 0) continue;
      jf[r + 1] = res.getFloat64(best + 8, true);
      jf[r + 2] = res.getFloat64(best + 16, true);
      jf[r + 3] = res.getFloat64(best + 24, true);
      // A big node's rows are partitioned in parts by all threads (`partitionPart`) instead.
      if (this.di[D.partition / 4] !== 1 || (ji[b + J.flags / 4]! & (s === 0 ? 8 : 16)) !== 0) continue;
      const start = ji[b + (s === 0 ? J.start0 : J.start1) / 4]!;
      const end = ji[b + (s === 0 ? J.end0 : J.end1) / 4]!;
      ji[b + (s === 0 ? J.mid0 : J.mid1) / 4] = this.kernel.partition(this.at.idx, this.at.tmp + start * 4, start, end, this.at.cbins + feature * this.at.n, bin, 1);
    }
    Atomics.store(ji, b + J.ready / 4, 1);
    Atomics.notify(ji, b + J.ready / 4);
  }

  /**
   * Part `q` of a big node's partition (`parts` entry: job, node slot, rows [start, end), then its
   * first right index): once the job's best split is known, the part's left rows are compacted
   * in place and its right rows left in the scratch; the thread that ends the node's last part
   * joins them (all left rows in order, then all right ones), which is the stable partition of the
   * whole node, however it was cut.
   */
  private partitionPart(q: number): void {
    const parts = this.parts;
    const o = (q * PART_BYTES) / 4;
    const j = parts[o]!;
    const s = parts[o + 1]!;
    const ji = this.ji;
    const b = (j * JOB_BYTES) / 4;
    // Every chunk of the job was claimed before this part, by threads that are running it (one
    // that fails flags the step instead).
    for (let i = 0; Atomics.load(ji, b + J.ready / 4) === 0; i++) {
      if (Atomics.load(this.ctl, CTRL.error) !== 0 || Atomics.load(this.ctl, CTRL.gen) < 0) return;
      if (i >= SPIN) Atomics.wait(ji, b + J.ready / 4, 0, 1);
    }
    const feature = ji[b + (s === 0 ? J.feature0 : J.feature1) / 4]!;
    if (feature < 0) return;
    const start = parts[o + 2]!;
    parts[o + 4] = this.kernel.partition(this.at.idx, this.at.tmp + start * 4, start, parts[o + 3]!, this.at.cbins + feature * this.at.n, ji[b + (s === 0 ? J.bin0 : J.bin1) / 4]!, 0);
    if (Atomics.sub(ji, b + (s === 0 ? J.left0 : J.left1) / 4, 1) !== 1) return;
    // The node's last part: the left rows of each part after the first move down behind the
    // previous ones, then the right rows come back from the scratch.
    const first = ji[b + (s === 0 ? J.part0 : J.part1) / 4]!;
    const count = ji[b + (s === 0 ? J.parts0 : J.parts1) / 4]!;
    const idx = this.idx;
    let at = parts[(first * PART_BYTES) / 4 + 2]!;
    for (let p = first; p < first + count; p++) {
      const po = (p * PART_BYTES) / 4;
      if (parts[po + 2]! !== at) idx.copyWithin(at, parts[po + 2]!, parts[po + 4]!);
      at += parts[po + 4]! - parts[po + 2]!;
    }
    ji[b + (s === 0 ? J.mid0 : J.mid1) / 4] = at;
    for (let p = first; p < first + count; p++) {
      const po = (p * PART_BYTES) / 4;
      const rights = parts[po + 3]! - parts[po + 4]!;
      idx.set(this.tmp.subarray(parts[po + 2]!, parts[po + 2]! + rights), at);
      at += rights;
    }
  }
}
