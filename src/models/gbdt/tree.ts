/**
 * One regression tree, grown on histograms of binned features from Newton gradients/hessians.
 * The tree is kept as flat arrays (one entry per node) because that is exactly the layout of
 * ONNX's TreeEnsemble attributes: the exporter maps node i to nodes_nodeids = i without any walk.
 */

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

/** A node that may still be split (best-first growth keeps these in a list). */
interface Open {
  id: number;
  start: number;
  end: number;
  depth: number;
  g: number;
  h: number;
  hist: Float64Array | null;
  feature: number;
  bin: number;
  gain: number;
  gl: number;
  hl: number;
  cl: number;
}

/**
 * Grows trees over one binned training matrix, reusing its buffers between trees so that a
 * boosting run allocates per tree only the (tiny) node arrays.
 */
export class TreeGrower {
  /** Row ids of the current sample, partitioned so every node owns a contiguous segment. */
  private readonly idx: Uint32Array;
  private readonly tmp: Uint32Array;
  /** Histogram layout: feature f at f * stride, then (grad, hess, count) per bin. */
  private readonly stride: number;
  private readonly pool: Float64Array[] = [];

  constructor(
    private readonly bins: Uint8Array,
    private readonly n: number,
    private readonly nFeatures: number,
    private readonly nBins: Int32Array,
    private readonly upper: Float64Array[],
    maxBins: number,
  ) {
    this.idx = new Uint32Array(n);
    this.tmp = new Uint32Array(n);
    this.stride = maxBins * 3;
  }

  /**
   * Grows one tree best-first (largest gain first) until `maxLeaves` or until no leaf can be
   * split within `maxDepth`; with no leaf limit that is the same tree depth-wise growth gives.
   * `sample` lists the rows to fit (ascending), or null for all rows.
   */
  grow(grad: Float64Array, hess: Float64Array, sample: Uint32Array | null, features: Int32Array, p: GrowParams): GrownTree {
    const idx = this.idx;
    let m: number;
    if (sample === null) {
      m = this.n;
      for (let i = 0; i < m; i++) idx[i] = i;
    } else {
      m = sample.length;
      idx.set(sample);
    }
    const tree: GrownTree = { target: 0, feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0], bin: [-1] };
    let g = 0;
    let h = 0;
    for (let i = 0; i < m; i++) {
      const r = idx[i]!;
      g += grad[r]!;
      h += hess[r]!;
    }
    const leafValue = (gs: number, hs: number) => {
      const d = hs + p.l2;
      return d > 0 ? (-gs / d) * p.learningRate : 0;
    };
    tree.value[0] = leafValue(g, h);
    if (m < 2 * p.minSamplesLeaf || p.maxDepth < 1 || features.length === 0) return tree;

    const root: Open = { id: 0, start: 0, end: m, depth: 0, g, h, hist: this.acquire(), feature: -1, bin: -1, gain: 0, gl: 0, hl: 0, cl: 0 };
    this.build(root.hist!, 0, m, grad, hess, features);
    this.findSplit(root, features, p);
    const open: Open[] = [];
    if (root.feature >= 0) open.push(root);
    else this.release(root);
    let leaves = 1;
    while (open.length > 0 && (p.maxLeaves === 0 || leaves < p.maxLeaves)) {
      // Largest gain first; ties keep the earlier node so growth is deterministic.
      let best = 0;
      for (let i = 1; i < open.length; i++) if (open[i]!.gain > open[best]!.gain) best = i;
      const node = open.splice(best, 1)[0]!;
      const f = node.feature;
      const b = node.bin;
      // Stable partition: left rows first, keeping ascending row order for cache-friendly scans.
      const nf = this.nFeatures;
      let nl = node.start;
      let nr = 0;
      for (let i = node.start; i < node.end; i++) {
        const r = idx[i]!;
        if (this.bins[r * nf + f]! <= b) idx[nl++] = r;
        else this.tmp[nr++] = r;
      }
      idx.set(this.tmp.subarray(0, nr), nl);
      const lid = tree.feature.length;
      const rid = lid + 1;
      tree.feature[node.id] = f;
      tree.threshold[node.id] = this.upper[f]![b]!;
      tree.bin[node.id] = b;
      tree.left[node.id] = lid;
      tree.right[node.id] = rid;
      tree.value[node.id] = 0;
      for (let k = 0; k < 2; k++) {
        tree.feature.push(-1);
        tree.threshold.push(0);
        tree.left.push(-1);
        tree.right.push(-1);
        tree.bin.push(-1);
        tree.value.push(0);
      }
      const left: Open = { id: lid, start: node.start, end: nl, depth: node.depth + 1, g: node.gl, h: node.hl, hist: null, feature: -1, bin: -1, gain: 0, gl: 0, hl: 0, cl: 0 };
      const right: Open = { id: rid, start: nl, end: node.end, depth: node.depth + 1, g: node.g - node.gl, h: node.h - node.hl, hist: null, feature: -1, bin: -1, gain: 0, gl: 0, hl: 0, cl: 0 };
      tree.value[lid] = leafValue(left.g, left.h);
      tree.value[rid] = leafValue(right.g, right.h);
      leaves++;
      const canSplit = (c: Open) => c.depth < p.maxDepth && c.end - c.start >= 2 * p.minSamplesLeaf;
      const splitL = canSplit(left);
      const splitR = canSplit(right);
      if (splitL || splitR) {
        // Histogram subtraction: scan only the smaller child, derive the larger from the parent.
        const [small, large] = nl - node.start <= node.end - nl ? [left, right] : [right, left];
        small.hist = this.acquire();
        this.build(small.hist, small.start, small.end, grad, hess, features);
        large.hist = node.hist!;
        node.hist = null;
        this.subtract(large.hist, small.hist, features);
        for (const c of [left, right]) {
          if (canSplit(c)) this.findSplit(c, features, p);
          if (c.feature >= 0) open.push(c);
          else this.release(c);
        }
      } else this.release(node);
    }
    for (const o of open) this.release(o);
    return tree;
  }

  private acquire(): Float64Array {
    return this.pool.pop() ?? new Float64Array(this.nFeatures * this.stride);
  }

  private release(o: Open): void {
    if (o.hist) this.pool.push(o.hist);
    o.hist = null;
  }

  private build(hist: Float64Array, start: number, end: number, grad: Float64Array, hess: Float64Array, features: Int32Array): void {
    const idx = this.idx;
    const bins = this.bins;
    const nf = this.nFeatures;
    const stride = this.stride;
    const nsel = features.length;
    for (let fi = 0; fi < nsel; fi++) {
      const off = features[fi]! * stride;
      hist.fill(0, off, off + this.nBins[features[fi]!]! * 3);
    }
    // Row-major scan: one gather of (grad, hess) per row, then that row's bytes are contiguous;
    // successive updates hit different features' histograms, so they do not wait on each other.
    if (nsel === nf) {
      for (let i = start; i < end; i++) {
        const r = idx[i]!;
        const g = grad[r]!;
        const h = hess[r]!;
        const base = r * nf;
        for (let f = 0, off = 0; f < nf; f++, off += stride) {
          const o = off + bins[base + f]! * 3;
          hist[o] += g;
          hist[o + 1] += h;
          hist[o + 2] += 1;
        }
      }
    } else {
      for (let i = start; i < end; i++) {
        const r = idx[i]!;
        const g = grad[r]!;
        const h = hess[r]!;
        const base = r * nf;
        for (let fi = 0; fi < nsel; fi++) {
          const f = features[fi]!;
          const o = f * stride + bins[base + f]! * 3;
          hist[o] += g;
          hist[o + 1] += h;
          hist[o + 2] += 1;
        }
      }
    }
  }

  private subtract(parent: Float64Array, child: Float64Array, features: Int32Array): void {
    for (let fi = 0; fi < features.length; fi++) {
      const f = features[fi]!;
      const off = f * this.stride;
      const end = off + this.nBins[f]! * 3;
      for (let o = off; o < end; o++) parent[o] -= child[o]!;
    }
  }

  /** Best (feature, bin) by the XGBoost gain with L2, under the leaf-size and hessian limits. */
  private findSplit(node: Open, features: Int32Array, p: GrowParams): void {
    const hist = node.hist!;
    const lambda = p.l2;
    const c = node.end - node.start;
    const parentScore = (node.g * node.g) / (node.h + lambda);
    const minHess = Math.max(p.minChildWeight, 1e-12);
    // A relative floor keeps rounding noise on pure nodes from passing as a gain.
    let bestGain = Math.max(p.minGain, 0) + 1e-10 * parentScore;
    node.feature = -1;
    for (let fi = 0; fi < features.length; fi++) {
      const f = features[fi]!;
      const nb = this.nBins[f]!;
      const up = this.upper[f]!;
      const off = f * this.stride;
      let gl = 0;
      let hl = 0;
      let cl = 0;
      for (let b = 0; b < nb - 1; b++) {
        const o = off + b * 3;
        // An empty bin moves no rows, so its split equals the previous bin's: skip the gain.
        if (hist[o + 2] === 0) continue;
        gl += hist[o]!;
        hl += hist[o + 1]!;
        cl += hist[o + 2]!;
        if (cl < p.minSamplesLeaf || hl < minHess) continue;
        const cr = c - cl;
        const hr = node.h - hl;
        if (cr < p.minSamplesLeaf || hr < minHess) break;
        const gr = node.g - gl;
        const gain = 0.5 * ((gl * gl) / (hl + lambda) + (gr * gr) / (hr + lambda) - parentScore);
        if (gain > bestGain && Number.isFinite(up[b]!)) {
          bestGain = gain;
          node.feature = f;
          node.bin = b;
          node.gl = gl;
          node.hl = hl;
          node.cl = cl;
        }
      }
    }
    node.gain = bestGain;
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
