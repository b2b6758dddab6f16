/**
 * A single-precision matrix product for the sequence trainer, as a WebAssembly module with 128-bit
 * SIMD, written out byte by byte here (no toolchain needed, nothing downloaded). It computes
 * `C[M×N] = A[M×K]·B[K×N]` or `C += A·B`, all row-major in one `WebAssembly.Memory` with leading
 * dimensions (in elements) `lda`, `ldb`, `ldc`; pointers are byte offsets.
 *
 * Tiles of 4 rows × 8 columns keep eight f32x4 accumulators in registers, so each step of the
 * inner loop loads 2 vectors of B and 4 scalars of A for 32 multiply-adds: V8 turns this into
 * SSE `mulps`/`addps` with no bounds checks. Leftover rows run 1 at a time, leftover columns 4 at a
 * time then one by one, so any shape works. Plain JavaScript reaches about 1 GMAC/s on this loop;
 * this reaches several times that.
 *
 * Summation order is fixed by the shape, so results are deterministic.
 */
import { F32, get, I32, i32, ifElse, section, set, str, uleb, V128, vec, whileNot as whileLoop, type Code } from '../wasm-encoder.js';

/** The part of the `WebAssembly` global used here (this project's TypeScript libs do not declare it). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
/** The engine's `WebAssembly` (Node ≥ 8), typed. */
export const wasm: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

// ---- this kernel's instructions (the shared encoding is ../wasm-encoder.ts) ------------------

const add = [0x6a];
const sub = [0x6b];
const shl = [0x74];
const gtS = [0x4a];
const geS = [0x4e];
const simd = (op: number, ...imm: number[]): Code => [0xfd, ...uleb(op), ...imm];
const memarg = (align: number, offset: number) => [...uleb(align), ...uleb(offset)];
const v128Load = (offset: number) => simd(0x00, ...memarg(0, offset));
const v128Store = (offset: number) => simd(0x0b, ...memarg(0, offset));
const load32Splat = simd(0x09, ...memarg(0, 0));
const f32x4Add = simd(0xe4);
const f32x4Mul = simd(0xe6);
const v128Zero = simd(0x0c, ...new Array(16).fill(0));
const f32Load = (offset: number) => [0x2a, ...memarg(0, offset)];
const f32Store = (offset: number) => [0x38, ...memarg(0, offset)];
const f32Add = [0x92];
const f32Mul = [0x94];
const f32Zero = [0x43, 0, 0, 0, 0];
/** `block { loop { <body>; br 0 } }` with `exit` (a condition) breaking out before each turn. */
/** `if (cond) { a } else { b }` */

// Parameters of gemm(a, b, c, M, K, N, lda, ldb, ldc, acc): locals 0..9.
const P = { a: 0, b: 1, c: 2, M: 3, K: 4, N: 5, lda: 6, ldb: 7, ldc: 8, acc: 9 };
// i32 locals after the parameters.
const L = { i: 10, j: 11, k: 12, pb: 13, pc: 14, rowA: 15, rowC: 16, pa0: 17, pa1: 18, pa2: 19, pa3: 20 };
const FIRST_V128 = 21; // 8 accumulators, 2 B vectors, 1 A splat
const FIRST_F32 = FIRST_V128 + 11; // 4 scalar accumulators, 1 B scalar

/** Byte stride of `ld` elements. */
const bytes = (ld: number): Code => [...get(ld), ...i32(2), ...shl];

/**
 * One tile of `rows` (1 or 4) × `cols` (8, 4 or 1) at (rowA, rowC) + column j: accumulate over k,
 * then store. Pointers: pa_r walks row r of A, pb walks column j of B down the rows.
 */
function tile(rows: number, cols: 8 | 4 | 1): Code {
  const scalar = cols === 1;
  const nv = cols === 8 ? 2 : 1;
  const acc = (r: number, v: number) => (scalar ? FIRST_F32 + r : FIRST_V128 + r * 2 + v);
  const bv = (v: number) => (scalar ? FIRST_F32 + 4 : FIRST_V128 + 8 + v);
  const av = FIRST_V128 + 10;
  const pa = [L.pa0, L.pa1, L.pa2, L.pa3];
  const out: Code = [];
  // pc = rowC + j*4 (rowC already includes i*ldc*4); pb = b + j*4
  out.push(...get(L.rowC), ...get(L.j), ...i32(2), ...shl, ...add, ...set(L.pc));
  out.push(...get(P.b), ...get(L.j), ...i32(2), ...shl, ...add, ...set(L.pb));
  // pa_r = rowA + r*lda*4
  for (let r = 0; r < rows; r++) {
    out.push(...get(L.rowA));
    for (let q = 0; q < r; q++) out.push(...bytes(P.lda), ...add);
    out.push(...set(pa[r]!));
  }
  // Accumulators: C's values when accumulating, else zero. Row r of C is at pc + r*ldc*4.
  const loadC: Code = [];
  const zeroC: Code = [];
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < nv; v++) {
      const addr: Code = [...get(L.pc)];
      for (let q = 0; q < r; q++) addr.push(...bytes(P.ldc), ...add);
      loadC.push(...addr, ...(scalar ? f32Load(0) : v128Load(v * 16)), ...set(acc(r, v)));
      zeroC.push(...(scalar ? f32Zero : v128Zero), ...set(acc(r, v)));
    }
  }
  out.push(...ifElse(get(P.acc), loadC, zeroC));
  // for (k = K; k > 0; k--)
  const body: Code = [];
  for (let v = 0; v < nv; v++) body.push(...get(L.pb), ...(scalar ? f32Load(0) : v128Load(v * 16)), ...set(bv(v)));
  for (let r = 0; r < rows; r++) {
    if (scalar) {
      for (let v = 0; v < nv; v++) body.push(...get(acc(r, v)), ...get(pa[r]!), ...f32Load(0), ...get(bv(v)), ...f32Mul, ...f32Add, ...set(acc(r, v)));
    } else {
      body.push(...get(pa[r]!), ...load32Splat, ...set(av));
      for (let v = 0; v < nv; v++) body.push(...get(acc(r, v)), ...get(av), ...get(bv(v)), ...f32x4Mul, ...f32x4Add, ...set(acc(r, v)));
    }
    body.push(...get(pa[r]!), ...i32(4), ...add, ...set(pa[r]!));
  }
  body.push(...get(L.pb), ...bytes(P.ldb), ...add, ...set(L.pb));
  body.push(...get(L.k), ...i32(1), ...sub, ...set(L.k));
  out.push(...get(P.K), ...set(L.k));
  out.push(...whileLoop([...get(L.k), ...i32(0), ...[0x4c] /* i32.le_s */], body));
  // Store.
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < nv; v++) {
      out.push(...get(L.pc));
      for (let q = 0; q < r; q++) out.push(...bytes(P.ldc), ...add);
      out.push(...get(acc(r, v)), ...(scalar ? f32Store(0) : v128Store(v * 16)));
    }
  }
  out.push(...get(L.j), ...i32(cols), ...add, ...set(L.j));
  return out;
}

/** All the tiles of one block of `rows` rows starting at i, then i += rows. */
function rowBlock(rows: number): Code {
  const out: Code = [];
  // rowA = a + i*lda*4; rowC = c + i*ldc*4
  out.push(...get(P.a), ...get(L.i), ...bytes(P.lda), ...[0x6c] /* i32.mul */, ...add, ...set(L.rowA));
  out.push(...get(P.c), ...get(L.i), ...bytes(P.ldc), ...[0x6c], ...add, ...set(L.rowC));
  out.push(...i32(0), ...set(L.j));
  // while (j + 8 <= N) tile 8; while (j + 4 <= N) tile 4; while (j < N) tile 1
  const jPlus = (w: number): Code => [...get(L.j), ...i32(w), ...add, ...get(P.N), ...gtS];
  out.push(...whileLoop(jPlus(8), tile(rows, 8)));
  out.push(...whileLoop(jPlus(4), tile(rows, 4)));
  out.push(...whileLoop([...get(L.j), ...get(P.N), ...geS], tile(rows, 1)));
  out.push(...get(L.i), ...i32(rows), ...add, ...set(L.i));
  return out;
}

function gemmBody(): Code {
  const locals = [
    [...uleb(11), I32],
    [...uleb(11), V128],
    [...uleb(5), F32],
  ];
  const code: Code = [];
  code.push(...i32(0), ...set(L.i));
  code.push(...whileLoop([...get(L.i), ...i32(4), ...add, ...get(P.M), ...gtS], rowBlock(4)));
  code.push(...whileLoop([...get(L.i), ...get(P.M), ...geS], rowBlock(1)));
  const body = [...vec(locals), ...code, 0x0b];
  return [...uleb(body.length), ...body];
}

/** The module's bytes: imports `env.memory`, exports `gemm`. */
export function gemmModuleBytes(): Uint8Array {
  const type = [0x60, ...vec(new Array(10).fill([I32])), ...vec([])];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...str('gemm'), 0x00, ...uleb(0)]])),
    ...section(10, vec([gemmBody()])),
  ]);
}

/** `gemm(a, b, c, M, K, N, lda, ldb, ldc, accumulate)`: byte offsets and element counts. */
export type Gemm = (a: number, b: number, c: number, M: number, K: number, N: number, lda: number, ldb: number, ldc: number, acc: number) => void;

let compiled: object | undefined;

/** Whether this engine runs WebAssembly SIMD (Node ≥ 16.4 does). */
export function simdAvailable(): boolean {
  try {
    return wasm.validate(gemmModuleBytes());
  } catch {
    return false;
  }
}

/** Instantiates the kernel over `memory` (compiled once per thread). */
export function instantiateGemm(memory: WasmMemory): Gemm {
  compiled ??= new wasm.Module(gemmModuleBytes());
  const inst = new wasm.Instance(compiled, { env: { memory } });
  return inst.exports.gemm as Gemm;
}

/** The same product in plain JavaScript over Float32Array views (element offsets): the reference the tests hold the kernel to, and a fallback. */
export function gemmJs(mem: Float32Array, a: number, b: number, c: number, M: number, K: number, N: number, lda: number, ldb: number, ldc: number, acc: number): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = acc ? mem[c + i * ldc + j]! : 0;
      for (let k = 0; k < K; k++) s += mem[a + i * lda + k]! * mem[b + k * ldb + j]!;
      mem[c + i * ldc + j] = s;
    }
  }
}
