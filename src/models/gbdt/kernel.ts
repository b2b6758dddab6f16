/**
 * The GBDT trainer's hot loops as one WebAssembly module, written out byte by byte here (no
 * toolchain, nothing downloaded), over one shared `WebAssembly.Memory` that holds the binned
 * rows, the gradients, the row partition and the histograms (`work.ts` `Layout`). The same
 * compiled module runs in the training thread and in the histogram workers (`parallel.ts`), which
 * split each step's nodes and features between them (`chunk`).
 *
 * Every sum is taken in the order the plain-TypeScript trainer took it (a bin's gradients in row
 * order, the split scan bin by bin, the same expression for the gain), and WebAssembly's f64
 * arithmetic is IEEE double like JavaScript's (no fused multiply-add): the trees are the same bit
 * for bit, whatever the number of threads. What it buys is the histogram update without bounds
 * checks, with (gradient, hessian) added as one f64x2: about 1 ns a row and feature here, where
 * the JavaScript loop took 3.
 *
 * The logistic gradients are here too (`binaryGradients`, two rows per f64x2), with fdlibm's `exp`
 * as V8 has it for `Math.exp`, operation for operation, so they are the objective's bits: about
 * half the time of the JavaScript loop, whose `Math.exp` and division were a sixth of a training.
 *
 * Histogram layout: feature f at `hist + f * hs` bytes, then per bin (gradient, hessian, count)
 * as three f64 (24 bytes). The count costs a quarter of the update; it stays (`min_samples_leaf`,
 * and an empty bin is told from a bin whose hessians cancel only by it), but the root of a tree
 * grown on every row takes its counts from one histogram made once (flag 4).
 */
import { F64, get, I32, i32, ifElse, section, set, str, uleb, V128, vec, whileNot, type Code } from '../wasm-encoder.js';
import { MIN_HESS } from './objective.js';

/** The part of the `WebAssembly` global used here (this project's TypeScript libs do not declare it). */
export interface SharedMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: true }) => SharedMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** WebAssembly page size in bytes. */
export const PAGE = 65536;
/** Most pages a 32-bit WebAssembly memory can have (4 GiB). */
export const MAX_PAGES = 65536;
/** Bytes of one histogram cell: gradient, hessian, count (f64 each). */
export const CELL = 24;
/** Most feature chunks a job is cut into. */
export const MAX_CHUNKS = 64;
/** Bytes of one split result: gain, gl, hl, cl (f64), feature, bin (i32), padding. */
export const RESULT = 48;

/** Most jobs (nodes) in one step; a level with more is split into several steps. */
export const MAX_JOBS = 256;

/**
 * Byte offsets in the step header `chunk(desc, c)` reads (fixed for a tree or a training). A step
 * is `jobs` jobs (one per node, see `J`) × `fchunks` feature chunks: chunk c is feature chunk
 * `c % fchunks` of job `c / fchunks`.
 */
export const D = {
  gh: 0, // (gradient, hessian) f64 pairs of the tree's output, by row
  chunk: 4, // features per chunk
  nsel: 8, // features in the list
  fchunks: 12, // feature chunks per job
  jobs: 16, // the job array
  out: 20, // results: job j, node s, feature chunk fc at out + ((j * 2 + s) * fchunks + fc) * RESULT
  idx: 24,
  bins: 28,
  nf: 32,
  feats: 36, // i32 feature ids (ascending)
  hs: 40, // bytes per feature in a histogram
  nbp: 44, // i32 bins per feature
  up: 48, // f64 upper edges, feature f at up + f * ub
  ub: 52,
  lambda: 56,
  minLeaf: 64,
  minHess: 72,
  sums: 80, // (g, h) f64 written by `sums`
  counts: 96, // a histogram whose counts jobs with flag 4 take (the root's over all rows)
  partition: 100, // 1: a job's searched nodes with a split are partitioned when found (`work.ts`)
  nhist: 104, // the step's histogram chunks; chunks after them are partition parts (`work.ts`)
} as const;
/** Bytes of the step header. */
export const DESC_BYTES = 108;

/** Byte offsets in one job of a step: a node whose child's histogram is built, and up to two nodes whose best split is searched. */
export const J = {
  flags: 0, // 1: build the small child's histogram; 2: subtract it from the parent's; 4: with D.counts' counts; 8, 16: node 0's, 1's partition in parts
  start: 4, // rows idx[start, end) of the node whose histogram is built
  end: 8,
  small: 12, // histogram built
  parent: 16, // histogram the small one is subtracted from (becomes the large child's)
  nSplits: 20, // nodes whose best split is searched (0, 1 or 2)
  hist0: 24,
  hist1: 28,
  g0: 32,
  h0: 40,
  c0: 48,
  ps0: 56,
  floor0: 64,
  g1: 72,
  h1: 80,
  c1: 88,
  ps1: 96,
  floor1: 104,
  // Written by the JavaScript side (`work.ts`), not read by `chunk`: the searched nodes' rows,
  // the chunks done, then each searched node's best split and, once partitioned, its first right row.
  start0: 112,
  end0: 116,
  start1: 120,
  end1: 124,
  done: 128,
  feature0: 132,
  bin0: 136,
  mid0: 140,
  feature1: 144,
  bin1: 148,
  mid1: 152,
  gain0: 160,
  gl0: 168,
  hl0: 176,
  cl0: 184,
  gain1: 192,
  gl1: 200,
  hl1: 208,
  cl1: 216,
  // 1 once the best splits are written (parts wait for it), then per searched node: its parts
  // still running, its first part and its number of parts.
  ready: 224,
  left0: 228,
  part0: 232,
  parts0: 236,
  left1: 240,
  part1: 244,
  parts1: 248,
} as const;
/** Bytes of one job. */
export const JOB_BYTES = 256;

/** The module's exports. Pointers are byte offsets into the memory. */
export interface Kernel {
  /** Zeroes features feats[k0, k1) of `hist`, then adds rows idx[start, end) into them. */
  build(idx: number, start: number, end: number, bins: number, nf: number, gh: number, hist: number, feats: number, k0: number, k1: number, hs: number): void;
  /** `build` for the consecutive features f0..f1-1, without the list: what `chunk` calls when it can. */
  buildRange(idx: number, start: number, end: number, bins: number, nf: number, gh: number, hist: number, f0: number, f1: number, hs: number): void;
  /** parent -= child over features feats[k0, k1) (their nbp[f] bins). */
  sub(parent: number, child: number, feats: number, k0: number, k1: number, hs: number, nbp: number): void;
  /** Best split among features feats[k0, k1) of a node: written at `out` (see `RESULT`). */
  split(
    hist: number, feats: number, k0: number, k1: number, hs: number, nbp: number, up: number, ub: number, out: number,
    g: number, h: number, c: number, lambda: number, minLeaf: number, minHess: number, floor: number, parentScore: number,
  ): void;
  /**
   * Stable partition of idx[start, end) by col[r] <= b (`col`: a feature's bins by row), the right
   * rows through `tmp`: returns the first right index, the left rows from `start` on, and the
   * right ones after them when `back`, else left at `tmp` (in order).
   */
  partition(idx: number, tmp: number, start: number, end: number, col: number, b: number, back: number): number;
  /** Chunk `c` of the step described at `desc` (see `D` and `J`). */
  chunk(desc: number, c: number): void;
  /** The (gradient, hessian) sums of rows idx[0, m), in that order, as two f64 at `out`. */
  sums(idx: number, gh: number, m: number, out: number): void;
  /** idx[i] = i for i < m. */
  iota(idx: number, m: number): void;
  /** raw[idx[i] * k + c] += v for i in [start, end): a leaf's value added to its rows' raw scores. */
  addLeaf(idx: number, raw: number, start: number, end: number, k: number, c: number, v: number): void;
  /** `Math.exp(x)`, bit for bit (fdlibm's algorithm, as V8 computes it). */
  exp(x: number): number;
  /** The logistic loss's (g, h) of rows [start, end) into `gh`, as `objective.ts` `computeGradients` computes them; `weighted` 0: every weight 1. */
  binaryGradients(raw: number, y: number, w: number, gh: number, start: number, end: number, weighted: number): void;
}

// ---- this kernel's instructions (the shared encoding is ../wasm-encoder.ts) ------------------

const f64 = (v: number): Code => [0x44, ...new Uint8Array(Float64Array.of(v).buffer)];
const call = (f: number): Code => [0x10, ...uleb(f)];
const mem = (align: number, offset: number): Code => [...uleb(align), ...uleb(offset)];
const i32Load = (off = 0): Code => [0x28, ...mem(2, off)];
const i32Store = (off = 0): Code => [0x36, ...mem(2, off)];
const u8Load = (off = 0): Code => [0x2d, ...mem(0, off)];
const f64Load = (off = 0): Code => [0x2b, ...mem(3, off)];
const f64Store = (off = 0): Code => [0x39, ...mem(3, off)];
const v128Load = (off = 0): Code => [0xfd, 0x00, ...mem(3, off)];
const v128Store = (off = 0): Code => [0xfd, 0x0b, ...mem(3, off)];
const op = {
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  divU: [0x6e],
  and: [0x71],
  shl: [0x74],
  shrU: [0x76],
  eqz: [0x45],
  eq: [0x46],
  ltS: [0x48],
  gtS: [0x4a],
  leU: [0x4d],
  geS: [0x4e],
  geU: [0x4f],
  select: [0x1b],
  fEq: [0x61],
  fLt: [0x63],
  fGt: [0x64],
  fAdd: [0xa0],
  fSub: [0xa1],
  fMul: [0xa2],
  fDiv: [0xa3],
  f2Add: [0xfd, ...uleb(0xf0)],
  f2Sub: [0xfd, ...uleb(0xf1)],
  or: [0x72],
  ltU: [0x49],
  gtU: [0x4b],
  fGe: [0x66],
  fAbs: [0x99],
  fNeg: [0x9a],
  fMax: [0xa5],
  truncS: [0xaa], // i32.trunc_f64_s
  convertS: [0xb7], // f64.convert_i32_s
  wrap: [0xa7], // i32.wrap_i64
  extendU: [0xad], // i64.extend_i32_u
  i64Shl: [0x86],
  i64ShrU: [0x88],
  bitsOf: [0xbd], // i64.reinterpret_f64
  fromBits: [0xbf], // f64.reinterpret_i64
  ret: [0x0f],
  memFill: [0xfc, ...uleb(11), 0x00],
  memCopy: [0xfc, ...uleb(10), 0x00, 0x00],
};
/** `block { loop { if (exit) break; body; continue } }`: `br 1` inside `body` breaks, `br 0` continues. */
/** `block { body }`: `br 0` inside `body` jumps past it. */
const block = (body: Code): Code => [0x02, 0x40, ...body, 0x0b];
const ifThen = (cond: Code, body: Code): Code => [...cond, 0x04, 0x40, ...body, 0x0b];
const brIf = (depth: number): Code => [0x0d, ...uleb(depth)];

const simd = (code: number, ...imm: number[]): Code => [0xfd, ...uleb(code), ...imm];
const vx = {
  and: simd(0x4e),
  or: simd(0x50),
  bitselect: simd(0x52),
  anyTrue: simd(0x53),
  fEq: simd(0x47),
  fLt: simd(0x49),
  fGe: simd(0x4c),
  fAbs: simd(0xec),
  fNeg: simd(0xed),
  fAdd: simd(0xf0),
  fSub: simd(0xf1),
  fMul: simd(0xf2),
  fDiv: simd(0xf3),
  fMax: simd(0xf5),
  fSplat: simd(0x14),
  fLane: (l: number) => simd(0x21, l),
  fReplace: (l: number) => simd(0x22, l),
  iShl: simd(0xcb),
  iShrU: simd(0xcd),
  iAdd: simd(0xce),
  iLtS: simd(0xd8),
  iGtS: simd(0xd9),
  iSub: simd(0xd1),
  fTrunc: simd(0x7a),
};
/** A v128 constant of two equal f64 lanes, or of two equal i64 lanes (a non-negative integer below 2^31). */
const f64x2 = (v: number): Code => [0xfd, 0x0c, ...new Uint8Array(Float64Array.of(v, v).buffer)];
const i64x2 = (v: number): Code => [0xfd, 0x0c, ...new Uint8Array(Int32Array.of(v, 0, v, 0).buffer)];

/** A function body: locals declared by type in order after the parameters. */
function body(locals: [number, number][], code: Code): Code {
  const b = [...vec(locals.map(([count, type]) => [...uleb(count), type])), ...code, 0x0b];
  return [...uleb(b.length), ...b];
}

// build(idx 0, start 1, end 2, bins 3, nf 4, gh 5, hist 6, feats 7, k0 8, k1 9, hs 10)
function buildFn(count = true): Code {
  const [idx, start, end, bins, nf, gh, hist, feats, k0, k1, hs] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [i, row, pk, a, fb, fe, f, v] = [11, 12, 13, 14, 15, 16, 17, 18];
  const code: Code = [
    ...get(feats), ...get(k0), ...i32(2), ...op.shl, ...op.add, ...set(fb),
    ...get(feats), ...get(k1), ...i32(2), ...op.shl, ...op.add, ...set(fe),
    // Zero this chunk's features.
    ...get(fb), ...set(pk),
    ...whileNot([...get(pk), ...get(fe), ...op.geU], [
      ...get(hist), ...get(pk), ...i32Load(), ...get(hs), ...op.mul, ...op.add, ...i32(0), ...get(hs), ...op.memFill,
      ...get(pk), ...i32(4), ...op.add, ...set(pk),
    ]),
    ...get(start), ...set(i),
    ...whileNot([...get(i), ...get(end), ...op.geU], [
      // row r = idx[i]; v = (grad, hess) of r; row = its bins
      ...get(idx), ...get(i), ...i32(2), ...op.shl, ...op.add, ...i32Load(), ...set(row),
      ...get(gh), ...get(row), ...i32(4), ...op.shl, ...op.add, ...v128Load(), ...set(v),
      ...get(bins), ...get(row), ...get(nf), ...op.mul, ...op.add, ...set(row),
      ...get(fb), ...set(pk),
      ...whileNot([...get(pk), ...get(fe), ...op.geU], [
        ...get(pk), ...i32Load(), ...set(f),
        // a = hist + f * hs + bins[row + f] * CELL
        ...get(hist), ...get(f), ...get(hs), ...op.mul, ...op.add,
        ...get(row), ...get(f), ...op.add, ...u8Load(), ...i32(CELL), ...op.mul, ...op.add, ...set(a),
        ...get(a), ...get(a), ...v128Load(), ...get(v), ...op.f2Add, ...v128Store(),
        ...(count ? [...get(a), ...get(a), ...f64Load(16), ...f64(1), ...op.fAdd, ...f64Store(16)] : []),
        ...get(pk), ...i32(4), ...op.add, ...set(pk),
      ]),
      ...get(i), ...i32(1), ...op.add, ...set(i),
    ]),
  ];
  return body([[7, I32], [1, V128]], code);
}

/**
 * Features `buildRange` adds a row to per iteration (a tail loop takes the rest): a fifth fewer
 * loop instructions per update; the whole training takes 0.95 of the time on 1 thread, 0.97–0.98
 * on 2 (measured on the 100k × 30 table; 2, 3 and 6 did no better).
 */
const UNROLL = 4;
// buildRange(idx 0, start 1, end 2, bins 3, nf 4, gh 5, hist 6, f0 7, f1 8, hs 9): `build` for the
// features f0..f1-1, one after another: the row's bins and the histograms are walked by pointer,
// without the feature list (a quarter faster).
function buildRangeFn(count = true): Code {
  const [idx, start, end, bins, nf, gh, hist, f0, f1, hs] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const [i, row, p, pe, h, a] = [10, 11, 12, 13, 14, 15];
  /** The local holding k · hs, for k = 1..UNROLL (the last is the loop's step). */
  const hsk = (k: number) => 15 + k;
  const v = 16 + UNROLL;
  /** The row's (gradient, hessian) and count added to the cell of the feature `k` after `h`. */
  const add = (k: number): Code => [
    ...get(h), ...(k > 0 ? [...get(hsk(k)), ...op.add] : []), ...get(p), ...u8Load(k), ...i32(CELL), ...op.mul, ...op.add, ...set(a),
    ...get(a), ...get(a), ...v128Load(), ...get(v), ...op.f2Add, ...v128Store(),
    ...(count ? [...get(a), ...get(a), ...f64Load(16), ...f64(1), ...op.fAdd, ...f64Store(16)] : []),
  ];
  const code: Code = [
    // Zero the features' histograms (contiguous).
    ...get(hist), ...get(f0), ...get(hs), ...op.mul, ...op.add, ...i32(0), ...get(f1), ...get(f0), ...op.sub, ...get(hs), ...op.mul, ...op.memFill,
    ...Array.from({ length: UNROLL }, (_, k) => [...get(hs), ...i32(k + 1), ...op.mul, ...set(hsk(k + 1))]).flat(),
    ...get(start), ...set(i),
    ...whileNot([...get(i), ...get(end), ...op.geU], [
      ...get(idx), ...get(i), ...i32(2), ...op.shl, ...op.add, ...i32Load(), ...set(row),
      ...get(gh), ...get(row), ...i32(4), ...op.shl, ...op.add, ...v128Load(), ...set(v),
      ...get(bins), ...get(row), ...get(nf), ...op.mul, ...op.add, ...set(row),
      ...get(row), ...get(f0), ...op.add, ...set(p),
      ...get(row), ...get(f1), ...op.add, ...set(pe),
      ...get(hist), ...get(f0), ...get(hs), ...op.mul, ...op.add, ...set(h),
      // UNROLL features an iteration; each cell still takes its rows in row order.
      ...whileNot([...get(p), ...i32(UNROLL - 1), ...op.add, ...get(pe), ...op.geU], [
        ...Array.from({ length: UNROLL }, (_, k) => add(k)).flat(),
        ...get(p), ...i32(UNROLL), ...op.add, ...set(p),
        ...get(h), ...get(hsk(UNROLL)), ...op.add, ...set(h),
      ]),
      ...whileNot([...get(p), ...get(pe), ...op.geU], [
        ...add(0),
        ...get(p), ...i32(1), ...op.add, ...set(p),
        ...get(h), ...get(hs), ...op.add, ...set(h),
      ]),
      ...get(i), ...i32(1), ...op.add, ...set(i),
    ]),
  ];
  return body([[6 + UNROLL, I32], [1, V128]], code);
}

/**
 * A function over two histograms of the same layout, (dst 0, src 1, feats 2, k0 3, k1 4, hs 5,
 * nbp 6): `cell` runs for every used bin of features feats[k0, k1), with the byte addresses of
 * the bin's cell in dst and in src in locals `p` and `q`.
 */
function cellsFn(cell: (p: number, q: number) => Code): Code {
  const [dst, src, feats, k0, k1, hs, nbp] = [0, 1, 2, 3, 4, 5, 6];
  const [pk, pe, f, p, q, qe] = [7, 8, 9, 10, 11, 12];
  const code: Code = [
    ...get(feats), ...get(k0), ...i32(2), ...op.shl, ...op.add, ...set(pk),
    ...get(feats), ...get(k1), ...i32(2), ...op.shl, ...op.add, ...set(pe),
    ...whileNot([...get(pk), ...get(pe), ...op.geU], [
      ...get(pk), ...i32Load(), ...set(f),
      ...get(dst), ...get(f), ...get(hs), ...op.mul, ...op.add, ...set(p),
      ...get(src), ...get(f), ...get(hs), ...op.mul, ...op.add, ...set(q),
      ...get(q), ...get(nbp), ...get(f), ...i32(2), ...op.shl, ...op.add, ...i32Load(), ...i32(CELL), ...op.mul, ...op.add, ...set(qe),
      ...whileNot([...get(q), ...get(qe), ...op.geU], [
        ...cell(p, q),
        ...get(p), ...i32(CELL), ...op.add, ...set(p),
        ...get(q), ...i32(CELL), ...op.add, ...set(q),
      ]),
      ...get(pk), ...i32(4), ...op.add, ...set(pk),
    ]),
  ];
  return body([[6, I32]], code);
}

// sub(parent 0, child 1, feats 2, k0 3, k1 4, hs 5, nbp 6): parent -= child, bin by bin
const subFn = (): Code =>
  cellsFn((p, q) => [
    ...get(p), ...get(p), ...v128Load(), ...get(q), ...v128Load(), ...op.f2Sub, ...v128Store(),
    ...get(p), ...get(p), ...f64Load(16), ...get(q), ...f64Load(16), ...op.fSub, ...f64Store(16),
  ]);

// split(hist 0, feats 1, k0 2, k1 3, hs 4, nbp 5, up 6, ub 7, out 8,
//       g 9, h 10, c 11, lambda 12, minLeaf 13, minHess 14, floor 15, ps 16)
function splitFn(): Code {
  const [hist, feats, k0, k1, hs, nbp, up, ub, out] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [g, h, c, lambda, minLeaf, minHess, floor, ps] = [9, 10, 11, 12, 13, 14, 15, 16];
  const [pk, pe, f, b, last, o, bf, bb] = [17, 18, 19, 20, 21, 22, 23, 24];
  const [gl, hl, cl, best, bgl, bhl, bcl, cnt, hr, gr, gain, upv] = [25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36];
  const q = 37;
  // Inside the bin loop: depth 0 = the `cont` block, 1 = the loop, 2 = the loop's exit block.
  const scan: Code = block([
    ...get(o), ...f64Load(16), ...set(cnt),
    // An empty bin moves no rows, so its split equals the previous bin's.
    ...get(cnt), ...f64(0), ...op.fEq, ...brIf(0),
    ...get(gl), ...get(o), ...f64Load(0), ...op.fAdd, ...set(gl),
    ...get(hl), ...get(o), ...f64Load(8), ...op.fAdd, ...set(hl),
    ...get(cl), ...get(cnt), ...op.fAdd, ...set(cl),
    ...get(cl), ...get(minLeaf), ...op.fLt, ...brIf(0),
    ...get(hl), ...get(minHess), ...op.fLt, ...brIf(0),
    ...get(h), ...get(hl), ...op.fSub, ...set(hr),
    ...get(c), ...get(cl), ...op.fSub, ...get(minLeaf), ...op.fLt, ...brIf(2),
    ...get(hr), ...get(minHess), ...op.fLt, ...brIf(2),
    ...get(g), ...get(gl), ...op.fSub, ...set(gr),
    // gain = 0.5 * ((gl * gl) / (hl + lambda) + (gr * gr) / (hr + lambda) - ps), both quotients
    // in one f64x2 division (each lane rounds as the scalar one: the same bits, half the divider's time)
    ...get(gl), ...vx.fSplat, ...get(gr), ...vx.fReplace(1), ...set(q),
    ...get(q), ...get(q), ...vx.fMul,
    ...get(hl), ...vx.fSplat, ...get(hr), ...vx.fReplace(1), ...get(lambda), ...vx.fSplat, ...vx.fAdd,
    ...vx.fDiv, ...set(q),
    ...f64(0.5), ...get(q), ...vx.fLane(0), ...get(q), ...vx.fLane(1), ...op.fAdd, ...get(ps), ...op.fSub, ...op.fMul, ...set(gain),
    ...ifThen([...get(gain), ...get(best), ...op.fGt], [
      ...get(up), ...get(f), ...get(ub), ...op.mul, ...op.add, ...get(b), ...i32(3), ...op.shl, ...op.add, ...f64Load(), ...set(upv),
      // A finite edge only (x - x is 0 exactly when x is finite).
      ...ifThen([...get(upv), ...get(upv), ...op.fSub, ...f64(0), ...op.fEq], [
        ...get(gain), ...set(best),
        ...get(f), ...set(bf),
        ...get(b), ...set(bb),
        ...get(gl), ...set(bgl),
        ...get(hl), ...set(bhl),
        ...get(cl), ...set(bcl),
      ]),
    ]),
  ]);
  const code: Code = [
    ...get(floor), ...set(best),
    ...i32(-1), ...set(bf),
    ...i32(-1), ...set(bb),
    ...get(feats), ...get(k0), ...i32(2), ...op.shl, ...op.add, ...set(pk),
    ...get(feats), ...get(k1), ...i32(2), ...op.shl, ...op.add, ...set(pe),
    ...whileNot([...get(pk), ...get(pe), ...op.geU], [
      ...get(pk), ...i32Load(), ...set(f),
      ...get(nbp), ...get(f), ...i32(2), ...op.shl, ...op.add, ...i32Load(), ...i32(1), ...op.sub, ...set(last),
      ...get(hist), ...get(f), ...get(hs), ...op.mul, ...op.add, ...set(o),
      ...f64(0), ...set(gl),
      ...f64(0), ...set(hl),
      ...f64(0), ...set(cl),
      ...i32(0), ...set(b),
      ...whileNot([...get(b), ...get(last), ...op.geS], [
        ...scan,
        ...get(o), ...i32(CELL), ...op.add, ...set(o),
        ...get(b), ...i32(1), ...op.add, ...set(b),
      ]),
      ...get(pk), ...i32(4), ...op.add, ...set(pk),
    ]),
    ...get(out), ...get(best), ...f64Store(0),
    ...get(out), ...get(bgl), ...f64Store(8),
    ...get(out), ...get(bhl), ...f64Store(16),
    ...get(out), ...get(bcl), ...f64Store(24),
    ...get(out), ...get(bf), ...i32Store(32),
    ...get(out), ...get(bb), ...i32Store(36),
  ];
  return body([[8, I32], [12, F64], [1, V128]], code);
}

// partition(idx 0, tmp 1, start 2, end 3, col 4, b 5, back 6) -> first right index; col: the split
// feature's bins, column-major (a byte per row: the rows' bins share cache lines, where the
// row-major layout would bring a line in for every other row)
function partitionFn(): Code {
  const [idx, tmp, start, end, col, b, back] = [0, 1, 2, 3, 4, 5, 6];
  const [p, e, pl, pr, r, left] = [7, 8, 9, 10, 11, 12];
  const code: Code = [
    ...get(idx), ...get(start), ...i32(2), ...op.shl, ...op.add, ...set(p),
    ...get(idx), ...get(end), ...i32(2), ...op.shl, ...op.add, ...set(e),
    ...get(p), ...set(pl),
    ...get(tmp), ...set(pr),
    // Branch-free: the row is written to both sides and only one side's pointer advances.
    ...whileNot([...get(p), ...get(e), ...op.geU], [
      ...get(p), ...i32Load(), ...set(r),
      ...get(col), ...get(r), ...op.add, ...u8Load(), ...get(b), ...op.leU, ...set(left),
      ...get(pl), ...get(r), ...i32Store(),
      ...get(pr), ...get(r), ...i32Store(),
      ...get(pl), ...get(left), ...i32(2), ...op.shl, ...op.add, ...set(pl),
      ...get(pr), ...i32(4), ...get(left), ...i32(2), ...op.shl, ...op.sub, ...op.add, ...set(pr),
      ...get(p), ...i32(4), ...op.add, ...set(p),
    ]),
    ...ifThen([...get(back)], [...get(pl), ...get(tmp), ...get(pr), ...get(tmp), ...op.sub, ...op.memCopy]),
    ...get(pl), ...get(idx), ...op.sub, ...i32(2), ...op.shrU,
  ];
  return body([[6, I32]], code);
}

// chunk(desc 0, c 1): functions 0 build, 1 sub, 2 split, 5 buildRange
function chunkFn(): Code {
  const [desc, c] = [0, 1];
  const [k0, k1, f0, fl, job, j, fc, fchunks, nc] = [2, 3, 4, 5, 6, 7, 8, 9, 10];
  const ld = (off: number): Code => [...get(desc), ...i32Load(off)];
  const ldf = (off: number): Code => [...get(desc), ...f64Load(off)];
  const jl = (off: number): Code => [...get(job), ...i32Load(off)];
  const jlf = (off: number): Code => [...get(job), ...f64Load(off)];
  const splitCall = (hist: number, slot: number, base: number): Code => [
    ...jl(hist), ...ld(D.feats), ...get(k0), ...get(k1), ...ld(D.hs), ...ld(D.nbp), ...ld(D.up), ...ld(D.ub),
    // out + ((j * 2 + slot) * fchunks + fc) * RESULT
    ...ld(D.out), ...get(j), ...i32(2), ...op.mul, ...i32(slot), ...op.add, ...get(fchunks), ...op.mul, ...get(fc), ...op.add, ...i32(RESULT), ...op.mul, ...op.add,
    ...jlf(base), ...jlf(base + 8), ...jlf(base + 16), ...ldf(D.lambda), ...ldf(D.minLeaf), ...ldf(D.minHess), ...jlf(base + 32), ...jlf(base + 24),
    ...call(2),
  ];
  const rangeArgs: Code = [...ld(D.idx), ...jl(J.start), ...jl(J.end), ...ld(D.bins), ...ld(D.nf), ...ld(D.gh), ...jl(J.small), ...get(f0), ...get(fl), ...i32(1), ...op.add, ...ld(D.hs)];
  const listArgs: Code = [...ld(D.idx), ...jl(J.start), ...jl(J.end), ...ld(D.bins), ...ld(D.nf), ...ld(D.gh), ...jl(J.small), ...ld(D.feats), ...get(k0), ...get(k1), ...ld(D.hs)];
  const code: Code = [
    ...ld(D.fchunks), ...set(fchunks),
    ...get(c), ...get(fchunks), ...op.divU, ...set(j),
    ...get(c), ...get(j), ...get(fchunks), ...op.mul, ...op.sub, ...set(fc),
    ...ld(D.jobs), ...get(j), ...i32(JOB_BYTES), ...op.mul, ...op.add, ...set(job),
    ...get(fc), ...ld(D.chunk), ...op.mul, ...set(k0),
    // k1 = min(k0 + chunk, nsel)
    ...get(k0), ...ld(D.chunk), ...op.add, ...ld(D.nsel),
    ...get(k0), ...ld(D.chunk), ...op.add, ...ld(D.nsel), ...op.ltS, ...op.select, ...set(k1),
    ...ifThen([...jl(J.flags), ...i32(1), ...op.and], [
      ...block([
        ...get(k0), ...get(k1), ...op.geS, ...brIf(0),
        // f0 = feats[k0], fl = feats[k1 - 1]: consecutive ids when fl - f0 = k1 - 1 - k0.
        ...ld(D.feats), ...get(k0), ...i32(2), ...op.shl, ...op.add, ...i32Load(), ...set(f0),
        ...ld(D.feats), ...get(k1), ...i32(1), ...op.sub, ...i32(2), ...op.shl, ...op.add, ...i32Load(), ...set(fl),
        // Flag 4: the counts are the header's (the root's, the same every tree): sum g and h only.
        ...jl(J.flags), ...i32(4), ...op.and, ...set(nc),
        ...ifElse(
          [...get(fl), ...get(f0), ...op.sub, ...get(k1), ...i32(1), ...op.sub, ...get(k0), ...op.sub, ...op.eq],
          ifElse([...get(nc)], [...rangeArgs, ...call(9)], [...rangeArgs, ...call(5)]),
          ifElse([...get(nc)], [...listArgs, ...call(8)], [...listArgs, ...call(0)]),
        ),
        ...ifThen([...get(nc)], [...jl(J.small), ...ld(D.counts), ...ld(D.feats), ...get(k0), ...get(k1), ...ld(D.hs), ...ld(D.nbp), ...call(10)]),
      ]),
    ]),
    ...ifThen([...jl(J.flags), ...i32(2), ...op.and], [
      ...jl(J.parent), ...jl(J.small), ...ld(D.feats), ...get(k0), ...get(k1), ...ld(D.hs), ...ld(D.nbp),
      ...call(1),
    ]),
    ...ifThen([...jl(J.nSplits), ...i32(0), ...op.gtS], splitCall(J.hist0, 0, J.g0)),
    ...ifThen([...jl(J.nSplits), ...i32(1), ...op.gtS], splitCall(J.hist1, 1, J.g1)),
  ];
  return body([[9, I32]], code);
}

// sums(idx 0, gh 1, m 2, out 3): (g, h) sums of rows idx[0, m), added one row after another as
// the plain loop did, written at out
function sumsFn(): Code {
  const [idx, gh, m, out] = [0, 1, 2, 3];
  const [p, e, a] = [4, 5, 6];
  const [g, h] = [7, 8];
  const code: Code = [
    ...get(idx), ...set(p),
    ...get(idx), ...get(m), ...i32(2), ...op.shl, ...op.add, ...set(e),
    ...f64(0), ...set(g),
    ...f64(0), ...set(h),
    ...whileNot([...get(p), ...get(e), ...op.geU], [
      ...get(gh), ...get(p), ...i32Load(), ...i32(4), ...op.shl, ...op.add, ...set(a),
      ...get(g), ...get(a), ...f64Load(0), ...op.fAdd, ...set(g),
      ...get(h), ...get(a), ...f64Load(8), ...op.fAdd, ...set(h),
      ...get(p), ...i32(4), ...op.add, ...set(p),
    ]),
    ...get(out), ...get(g), ...f64Store(0),
    ...get(out), ...get(h), ...f64Store(8),
  ];
  return body([[3, I32], [2, F64]], code);
}

// iota(idx 0, m 1): idx[i] = i
function iotaFn(): Code {
  const [idx, m] = [0, 1];
  const [i] = [2];
  const code: Code = [
    ...i32(0), ...set(i),
    ...whileNot([...get(i), ...get(m), ...op.geU], [
      ...get(idx), ...get(i), ...i32(2), ...op.shl, ...op.add, ...get(i), ...i32Store(),
      ...get(i), ...i32(1), ...op.add, ...set(i),
    ]),
  ];
  return body([[1, I32]], code);
}

// copyCounts(hist 0, src 1, feats 2, k0 3, k1 4, hs 5, nbp 6): the count of every bin of features
// feats[k0, k1) from `src` (a histogram of the same layout)
const copyCountsFn = (): Code => cellsFn((p, q) => [...get(p), ...get(q), ...f64Load(16), ...f64Store(16)]);

// addLeaf(idx 0, raw 1, start 2, end 3, k 4, c 5, v 6): raw[idx[i] * k + c] += v for i in [start, end)
function addLeafFn(): Code {
  const [idx, raw, start, end, k, c, v] = [0, 1, 2, 3, 4, 5, 6];
  const [p, e, a] = [7, 8, 9];
  const code: Code = [
    ...get(idx), ...get(start), ...i32(2), ...op.shl, ...op.add, ...set(p),
    ...get(idx), ...get(end), ...i32(2), ...op.shl, ...op.add, ...set(e),
    ...whileNot([...get(p), ...get(e), ...op.geU], [
      ...get(raw), ...get(p), ...i32Load(), ...get(k), ...op.mul, ...get(c), ...op.add, ...i32(3), ...op.shl, ...op.add, ...set(a),
      ...get(a), ...get(a), ...f64Load(), ...get(v), ...op.fAdd, ...f64Store(),
      ...get(p), ...i32(4), ...op.add, ...set(p),
    ]),
  ];
  return body([[3, I32]], code);
}

/**
 * fdlibm's exp polynomial c = x - t (P1 + t (P2 + t (P3 + t (P4 + t P5)))), t = x^2, evaluated in
 * that order with the given constant and arithmetic instructions (scalar f64, or f64x2 lanes).
 */
function expPolynomial(x: Code, t: Code, constant: (v: number) => Code, mul: Code, add: Code, sub: Code): Code {
  const [p1, p2, p3, p4, p5] = [1.66666666666666019037e-1, -2.77777777770155933842e-3, 6.61375632143793436117e-5, -1.65339022054652515390e-6, 4.13813679705723846039e-8];
  let e: Code = [...constant(p4), ...t, ...constant(p5), ...mul, ...add];
  for (const p of [p3, p2, p1]) e = [...constant(p), ...t, ...e, ...mul, ...add];
  return [...x, ...t, ...e, ...mul, ...sub];
}

// exp(x 0) -> f64: fdlibm's e_exp.c as V8 has it for Math.exp (src/base/ieee754.cc), operation for
// operation in IEEE double (WebAssembly has no fused multiply-add either), so it returns Math.exp's
// bits: what keeps the gradients, hence the trees, those of the JavaScript objective.
function expFn(): Code {
  const [x] = [0];
  const [hx, xsb, k] = [1, 2, 3];
  const [hi, lo, c, t, y, twopk] = [4, 5, 6, 7, 8, 9];
  const ret = (v: Code): Code => [...v, ...op.ret];
  /** The f64 whose high word is `hw` (an i32 on the stack) and low word 0. */
  const fromHigh = (hw: Code): Code => [...hw, ...op.extendU, 0x42, 32, ...op.i64Shl, ...op.fromBits];
  const code: Code = [
    ...get(x), ...op.bitsOf, 0x42, 32, ...op.i64ShrU, ...op.wrap, ...set(hx),
    ...get(hx), ...i32(31), ...op.shrU, ...set(xsb),
    ...get(hx), ...i32(0x7fffffff), ...op.and, ...set(hx),
    // |x| >= 709.78..., or not finite
    ...ifThen([...get(hx), ...i32(0x40862e42), ...op.geU], [
      ...ifThen([...get(hx), ...i32(0x7ff00000), ...op.geU], [
        ...ifThen([...get(hx), ...i32(0xfffff), ...op.and, ...get(x), ...op.bitsOf, ...op.wrap, ...op.or], ret([...get(x), ...get(x), ...op.fAdd])),
        // exp(+inf) = inf, exp(-inf) = 0
        ...ret([...f64(0), ...get(x), ...get(xsb), ...op.select]),
      ]),
      ...ifThen([...get(x), ...f64(7.09782712893383973096e2), ...op.fGt], ret([...f64(1e300), ...f64(1e300), ...op.fMul])),
      ...ifThen([...get(x), ...f64(-7.45133219101941108420e2), ...op.fLt], ret([...f64(9.33263618503218878990e-302), ...f64(9.33263618503218878990e-302), ...op.fMul])),
    ]),
    // argument reduction
    ...ifElse([...get(hx), ...i32(0x3fd62e42), ...op.gtU], [
      ...ifElse([...get(hx), ...i32(0x3ff0a2b2), ...op.ltU], [
        // 0.5 ln2 < |x| < 1.5 ln2 (V8 returns E for 1 exactly)
        ...ifThen([...get(x), ...f64(1), ...op.fEq], ret(f64(2.718281828459045))),
        ...get(x), ...f64(-6.93147180369123816490e-1), ...f64(6.93147180369123816490e-1), ...get(xsb), ...op.select, ...op.fSub, ...set(hi),
        ...f64(-1.90821492927058770002e-10), ...f64(1.90821492927058770002e-10), ...get(xsb), ...op.select, ...set(lo),
        ...i32(1), ...get(xsb), ...op.sub, ...get(xsb), ...op.sub, ...set(k),
      ], [
        ...f64(1.44269504088896338700e0), ...get(x), ...op.fMul, ...f64(-0.5), ...f64(0.5), ...get(xsb), ...op.select, ...op.fAdd, ...op.truncS, ...set(k),
        ...get(k), ...op.convertS, ...set(t),
        ...get(x), ...get(t), ...f64(6.93147180369123816490e-1), ...op.fMul, ...op.fSub, ...set(hi),
        ...get(t), ...f64(1.90821492927058770002e-10), ...op.fMul, ...set(lo),
      ]),
      ...get(hi), ...get(lo), ...op.fSub, ...set(x),
    ], [
      // |x| < 2^-28: 1 + x (fdlibm's `huge + x > one` test is true there)
      ...ifThen([...get(hx), ...i32(0x3e300000), ...op.ltU], ret([...f64(1), ...get(x), ...op.fAdd])),
    ]),
    ...get(x), ...get(x), ...op.fMul, ...set(t),
    ...fromHigh([
      ...i32(0x3ff00000), ...get(k), ...i32(20), ...op.shl, ...op.add,
      ...i32(0x3ff00000), ...get(k), ...i32(1000), ...op.add, ...i32(20), ...op.shl, ...op.add,
      ...get(k), ...i32(-1021), ...op.geS, ...op.select,
    ]), ...set(twopk),
    ...expPolynomial(get(x), get(t), f64, op.fMul, op.fAdd, op.fSub), ...set(c),
    // k = 0: 1 - ((x * c) / (c - 2) - x)
    ...ifThen([...get(k), ...op.eqz], ret([...f64(1), ...get(x), ...get(c), ...op.fMul, ...get(c), ...f64(2), ...op.fSub, ...op.fDiv, ...get(x), ...op.fSub, ...op.fSub])),
    // y = 1 - ((lo - (x * c) / (2 - c)) - hi)
    ...f64(1), ...get(lo), ...get(x), ...get(c), ...op.fMul, ...f64(2), ...get(c), ...op.fSub, ...op.fDiv, ...op.fSub, ...get(hi), ...op.fSub, ...op.fSub, ...set(y),
    ...ifThen([...get(k), ...i32(-1021), ...op.geS], [
      ...ifThen([...get(k), ...i32(1024), ...op.eq], ret([...get(y), ...f64(2), ...op.fMul, ...f64(8.988465674311579539e307), ...op.fMul])),
      ...ret([...get(y), ...get(twopk), ...op.fMul]),
    ]),
    ...get(y), ...get(twopk), ...op.fMul, ...f64(9.33263618503218878990e-302), ...op.fMul,
  ];
  return body([[3, I32], [6, F64]], code);
}

// binaryGradients(raw 0, y 1, w 2, gh 3, start 4, end 5, weighted 6): the logistic loss's (g, h) of
// rows [start, end) as objective.ts's computeGradients has them, bit for bit: p = sigmoid(raw[i])
// (1 / (1 + e) or e / (1 + e) with e = exp(-|raw[i]|), as `sigmoid` picks), g = w (p - y),
// h = w max(p (1 - p), MIN_HESS); w = 1 when not weighted.
//
// Two rows at a time in f64x2 lanes, with `exp` made branch-free: for 2^-28 <= |x| < 704
// (x != 1) fdlibm's three reductions are one formula (k = 0 and k = ±1 included: t * ln2HI and
// t * ln2LO are then exactly 0 or ±ln2HI, ±ln2LO, and its k = 0 result 1 - ((x c)/(c - 2) - x) is
// 1 - ((0 - (x c)/(2 - c)) - x) exactly), so a pair computes it lane by lane, and a pair with a
// lane outside that range calls `exp` for both.
function binaryGradientsFn(): Code {
  const [raw, y, w, gh, start, end, weighted] = [0, 1, 2, 3, 4, 5, 6];
  const [i, a] = [7, 8];
  const [z, e, p, wi] = [9, 10, 11, 12];
  const [Z, X, HX, K, T, HI, LO, XR, TT, C, E, P, W, G, H] = [13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];
  const scalarRow: Code = [
    ...get(raw), ...get(i), ...i32(3), ...op.shl, ...op.add, ...f64Load(), ...set(z),
    ...get(z), ...op.fAbs, ...op.fNeg, ...call(12), ...set(e),
    ...f64(1), ...get(e), ...get(z), ...f64(0), ...op.fGe, ...op.select, ...f64(1), ...get(e), ...op.fAdd, ...op.fDiv, ...set(p),
    ...f64(1), ...set(wi),
    ...ifThen([...get(weighted)], [...get(w), ...get(i), ...i32(3), ...op.shl, ...op.add, ...f64Load(), ...set(wi)]),
    ...get(gh), ...get(i), ...i32(4), ...op.shl, ...op.add,
    ...get(wi), ...get(p), ...get(y), ...get(i), ...i32(3), ...op.shl, ...op.add, ...f64Load(), ...op.fSub, ...op.fMul, ...f64Store(),
    ...get(gh), ...get(i), ...i32(4), ...op.shl, ...op.add,
    ...get(wi), ...get(p), ...f64(1), ...get(p), ...op.fSub, ...op.fMul, ...f64(MIN_HESS), ...op.fMax, ...op.fMul, ...f64Store(8),
    ...get(i), ...i32(1), ...op.add, ...set(i),
  ];
  // E = exp(X), lane by lane.
  const expPair: Code = [
    // hx: the high word of |x|
    ...get(X), ...i32(32), ...vx.iShrU, ...i64x2(0x7fffffff), ...vx.and, ...set(HX),
    ...ifElse([
      // |x| >= 704 (fdlibm scales 2^k in two steps for k < -1021 and k = 1024), |x| < 2^-28, x = 1
      ...get(HX), ...i64x2(0x4085ffff), ...vx.iGtS,
      ...get(HX), ...i64x2(0x3e300000), ...vx.iLtS, ...vx.or,
      ...get(X), ...f64x2(1), ...vx.fEq, ...vx.or, ...vx.anyTrue,
    ], [
      ...get(X), ...vx.fLane(0), ...call(12), ...vx.fSplat, ...get(X), ...vx.fLane(1), ...call(12), ...vx.fReplace(1), ...set(E),
    ], [
      // k = (int)(invln2 x ± 0.5) where |x| > 0.5 ln2 (high words compared, as fdlibm does), else 0
      ...f64x2(1.44269504088896338700e0), ...get(X), ...vx.fMul, ...f64x2(-0.5), ...f64x2(0.5), ...get(X), ...f64x2(0), ...vx.fLt, ...vx.bitselect, ...vx.fAdd,
      ...vx.fTrunc, ...get(HX), ...i64x2(0x3fd62e42), ...vx.iGtS, ...vx.and, ...set(T),
      // k as an integer: t + 1.5 * 2^52 has k in its low bits (|k| < 2^31 here)
      ...get(T), ...f64x2(6755399441055744), ...vx.fAdd, ...f64x2(6755399441055744), ...vx.iSub, ...set(K),
      ...get(X), ...get(T), ...f64x2(6.93147180369123816490e-1), ...vx.fMul, ...vx.fSub, ...set(HI),
      ...get(T), ...f64x2(1.90821492927058770002e-10), ...vx.fMul, ...set(LO),
      ...get(HI), ...get(LO), ...vx.fSub, ...set(XR),
      ...get(XR), ...get(XR), ...vx.fMul, ...set(TT),
      ...expPolynomial(get(XR), get(TT), f64x2, vx.fMul, vx.fAdd, vx.fSub), ...set(C),
      // y = 1 - ((lo - (x c) / (2 - c)) - hi), times 2^k
      ...f64x2(1), ...get(LO), ...get(XR), ...get(C), ...vx.fMul, ...f64x2(2), ...get(C), ...vx.fSub, ...vx.fDiv, ...vx.fSub, ...get(HI), ...vx.fSub, ...vx.fSub,
      ...get(K), ...i64x2(0x3ff), ...vx.iAdd, ...i32(52), ...vx.iShl, ...vx.fMul, ...set(E),
    ]),
  ];
  const pairRows: Code = [
    ...get(raw), ...get(i), ...i32(3), ...op.shl, ...op.add, ...v128Load(), ...set(Z),
    ...get(Z), ...vx.fAbs, ...vx.fNeg, ...set(X),
    ...expPair,
    ...f64x2(1), ...get(E), ...get(Z), ...f64x2(0), ...vx.fGe, ...vx.bitselect, ...f64x2(1), ...get(E), ...vx.fAdd, ...vx.fDiv, ...set(P),
    ...ifElse([...get(weighted)], [...get(w), ...get(i), ...i32(3), ...op.shl, ...op.add, ...v128Load(), ...set(W)], [...f64x2(1), ...set(W)]),
    ...get(W), ...get(P), ...get(y), ...get(i), ...i32(3), ...op.shl, ...op.add, ...v128Load(), ...vx.fSub, ...vx.fMul, ...set(G),
    ...get(W), ...get(P), ...f64x2(1), ...get(P), ...vx.fSub, ...vx.fMul, ...f64x2(MIN_HESS), ...vx.fMax, ...vx.fMul, ...set(H),
    // (g0, h0), (g1, h1)
    ...get(gh), ...get(i), ...i32(4), ...op.shl, ...op.add, ...set(a),
    ...get(a), ...get(G), ...get(H), ...simd(0x0d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), ...v128Store(),
    ...get(a), ...get(G), ...get(H), ...simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), ...v128Store(16),
    ...get(i), ...i32(2), ...op.add, ...set(i),
  ];
  const code: Code = [
    ...get(start), ...set(i),
    ...whileNot([...get(i), ...i32(1), ...op.add, ...get(end), ...op.geU], pairRows),
    ...whileNot([...get(i), ...get(end), ...op.geU], scalarRow),
  ];
  return body([[2, I32], [4, F64], [15, V128]], code);
}

/** The module's bytes: imports a shared `env.memory`, exports the `Kernel` functions. */
export function kernelBytes(): Uint8Array {
  const fnType = (params: number[], results: number[]): Code => [0x60, ...vec(params.map((t) => [t])), ...vec(results.map((t) => [t]))];
  const types = [
    fnType(new Array(11).fill(I32), []), // build
    fnType(new Array(7).fill(I32), []), // sub
    fnType([...new Array(9).fill(I32), ...new Array(8).fill(F64)], []), // split
    fnType(new Array(7).fill(I32), [I32]), // partition
    fnType([I32, I32], []), // chunk
    fnType(new Array(10).fill(I32), []), // buildRange
    fnType(new Array(4).fill(I32), []), // sums
    fnType(new Array(2).fill(I32), []), // iota
    fnType(new Array(11).fill(I32), []), // build without counts
    fnType(new Array(10).fill(I32), []), // buildRange without counts
    fnType(new Array(7).fill(I32), []), // copyCounts
    fnType([...new Array(6).fill(I32), F64], []), // addLeaf
    fnType([F64], [F64]), // exp
    fnType(new Array(7).fill(I32), []), // binaryGradients
  ];
  const names = ['build', 'sub', 'split', 'partition', 'chunk', 'buildRange', 'sums', 'iota', 'buildNoCount', 'buildRangeNoCount', 'copyCounts', 'addLeaf', 'exp', 'binaryGradients'];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    // memory import: limits flag 3 = shared with a maximum
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x03, ...uleb(1), ...uleb(MAX_PAGES)]])),
    ...section(3, vec(types.map((_, i) => uleb(i)))),
    ...section(7, vec(names.map((n, i) => [...str(n), 0x00, ...uleb(i)]))),
    ...section(10, vec([buildFn(), subFn(), splitFn(), partitionFn(), chunkFn(), buildRangeFn(), sumsFn(), iotaFn(), buildFn(false), buildRangeFn(false), copyCountsFn(), addLeafFn(), expFn(), binaryGradientsFn()])),
  ]);
}

let compiled: object | undefined;

/** The compiled module (once per thread); it can be posted to a worker as it is. */
export function kernelModule(): object {
  compiled ??= new wasm.Module(kernelBytes());
  return compiled;
}

/** A shared memory of `pages` pages that can grow to 4 GiB. */
export function sharedMemory(pages: number): SharedMemory {
  return new wasm.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
}

/** The kernel over `memory`. */
export function instantiateKernel(memory: SharedMemory): Kernel {
  return new wasm.Instance(kernelModule(), { env: { memory } }).exports as unknown as Kernel;
}
