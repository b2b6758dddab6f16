import { describe, expect, it, vi } from 'vitest';
import { MedfitError, Rng, type Matrix } from '../../core/index.js';
import type { TrainData } from '../types.js';
import { applyBins, fitApplyBins, fitBins } from './binning.js';
import { gbdt } from './index.js';
import { D, instantiateKernel, kernelBytes, PAGE, sharedMemory } from './kernel.js';
import { computeGradients } from './objective.js';
import { closeHistWorkers, histWorkerChunks, liveHistWorkers, trainThreads } from './parallel.js';
import { trainGbdt } from './train.js';
import { CTRL, KIND, Work } from './work.js';

/** A seeded table with ties, NaNs and an interaction, for `task`. */
function table(task: 'binary' | 'multiclass' | 'regression', n: number, nf: number, seed: number): TrainData {
  const rng = new Rng(seed);
  const x: Matrix = { rows: n, cols: nf, data: new Float64Array(n * nf) };
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < nf; j++) x.data[i * nf + j] = j % 4 === 3 ? rng.int(5) : rng.next() < 0.03 ? NaN : rng.normal();
    const v = (j: number) => x.data[i * nf + j]! || 0;
    const z = Math.sin(2 * v(0)) + v(1) * v(2) + (v(3) > 2 ? 1 : -0.5);
    y[i] = task === 'regression' ? z + 0.1 * rng.normal() : task === 'binary' ? (rng.next() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0) : z < -0.4 ? 0 : z < 0.6 ? 1 : 2;
  }
  return { x, y, task, nClasses: task === 'binary' ? 2 : task === 'multiclass' ? 3 : 1 };
}

const params = (task: TrainData['task'], rows: number, raw: Record<string, unknown>) => gbdt.parseParams({ early_stopping_rounds: 0, ...raw }, task, rows);

describe('gbdt on several threads', () => {
  it('grows the same trees on 1, 2 and 3 threads (every node of 4,000+ cells handed out, partitions of 300+ rows in parts), with subsampling and several classes', async () => {
    const cases: [TrainData, Record<string, unknown>][] = [
      [table('binary', 24000, 10, 1), { trees: 5, max_depth: 6, learning_rate: 0.2, colsample: 1, min_samples_leaf: 1, min_child_weight: 1 }],
      [table('multiclass', 2000, 9, 2), { trees: 4, max_depth: 4, subsample: 0.8, colsample: 0.7, max_leaves: 10 }],
      [table('regression', 2000, 7, 3), { trees: 5, max_depth: 5, min_samples_leaf: 5 }],
    ];
    const before = histWorkerChunks();
    for (const [data, raw] of cases) {
      const p = params(data.task, data.x.rows, raw);
      const one = JSON.stringify((await trainGbdt(data, p, { seed: 4 }, { threads: 1 })).toState());
      // The family's own path (one thread: these tables are under the threshold) gives the same.
      expect(JSON.stringify((await gbdt.train(data, p, { seed: 4 })).toState())).toBe(one);
      for (const threads of data.task === 'binary' ? [2, 3] : [2]) {
        const many = JSON.stringify((await trainGbdt(data, p, { seed: 4 }, { threads, parallelMin: 4000, ready: true })).toState());
        expect(many).toBe(one);
        // Partitions cut into parts (joined by the last part's thread) leave the rows as one thread does.
        const parts = JSON.stringify((await trainGbdt(data, p, { seed: 4 }, { threads, parallelMin: 4000, partRows: 300, ready: true })).toState());
        expect(parts).toBe(one);
      }
    }
    // The workers did take part: a chunk goes to whichever thread claims it first, so on small
    // nodes the calling thread may take them all, but not on 24,000 rows (which also hands out
    // the binning, the gradients, the partitions and the leaves: 20,000 rows or more).
    expect(histWorkerChunks() - before).toBeGreaterThan(100);
    // Trainings one after another reuse the workers: two at most (for three threads), until closed.
    expect(liveHistWorkers()).toBe(2);
    await closeHistWorkers();
    await vi.waitFor(() => expect(liveHistWorkers()).toBe(0));
  });

  it('cancels within a round, gives its workers back, and two trainings at once each get theirs', async () => {
    const data = table('binary', 4000, 10, 5);
    const p = params('binary', 4000, { trees: 2000, max_depth: 6 });
    const ctl = new AbortController();
    let abortedAt = 0;
    const run = trainGbdt(data, p, {
      seed: 1,
      signal: ctl.signal,
      onProgress: (pr) => {
        if (pr.epoch === 30) {
          abortedAt = performance.now();
          ctl.abort();
        }
      },
    }, { threads: 2, parallelMin: 0, ready: true });
    await expect(run).rejects.toMatchObject({ code: 'MEDFIT_ERR_CANCELLED' });
    expect(performance.now() - abortedAt).toBeLessThan(1000);
    expect(liveHistWorkers()).toBe(1);
    // Concurrent trainings in one thread: the second finds the worker leased and starts its own.
    const p2 = params('binary', 4000, { trees: 5, max_depth: 4 });
    const [a, b] = await Promise.all([0, 1].map(() => trainGbdt(data, p2, { seed: 2 }, { threads: 2, parallelMin: 0, ready: true })));
    expect(JSON.stringify(a!.toState())).toBe(JSON.stringify(b!.toState()));
    expect(liveHistWorkers()).toBe(2);
    await closeHistWorkers();
    await vi.waitFor(() => expect(liveHistWorkers()).toBe(0));
  });

  it('ends a step whose chunk throws on the training thread while a worker waits to partition: the error surfaces, the worker is free for the next training', async () => {
    const data = table('binary', 24000, 10, 12);
    const p = params('binary', 24000, { trees: 3, max_depth: 4 });
    const options = { threads: 2, parallelMin: 4000, partRows: 300, ready: true };
    const proto = Work.prototype as unknown as { run(kind: number, c: number, per: number): void };
    const run = proto.run;
    let thrown = false;
    const spy = vi.spyOn(proto, 'run').mockImplementation(function (this: { di: Int32Array; ctl: Int32Array }, kind: number, c: number, per: number) {
      // A histogram chunk (not a part) of the first step whose big nodes are partitioned in parts,
      // once the worker has taken the other one and then a part (which waits for this job's split).
      if (!thrown && kind === KIND.hist && this.di[D.partition / 4] === 1 && c < this.di[D.nhist / 4]!) {
        thrown = true;
        const until = performance.now() + 2000;
        while (Atomics.load(this.ctl, CTRL.claim) < 3 && performance.now() < until);
        throw new Error('planted');
      }
      run.call(this, kind, c, per);
    });
    try {
      await expect(trainGbdt(data, p, { seed: 1 }, options)).rejects.toThrow('planted');
    } finally {
      spy.mockRestore();
    }
    expect(thrown).toBe(true);
    // The worker left the failed step (it would otherwise wait for the split for ever and never join this one).
    const again = await trainGbdt(data, p, { seed: 1 }, options);
    expect(JSON.stringify(again.toState())).toBe(JSON.stringify((await trainGbdt(data, p, { seed: 1 }, { threads: 1 })).toState()));
    await closeHistWorkers();
    await vi.waitFor(() => expect(liveHistWorkers()).toBe(0));
  }, 20_000);

  it('numbers the nodes of a level-by-level tree as best-first growth does', async () => {
    // max_leaves 0 grows level by level and numbers the nodes afterwards; a leaf limit that
    // cannot bind (2^depth) grows best-first, node by node: the same trees, the same ids.
    for (const [data, raw] of [
      [table('binary', 1500, 6, 7), { trees: 8, max_depth: 5, min_samples_leaf: 3, colsample: 0.7 }],
      [table('multiclass', 900, 5, 8), { trees: 4, max_depth: 4, subsample: 0.7 }],
    ] as const) {
      const byLevel = await trainGbdt(data, params(data.task, data.x.rows, { ...raw, max_leaves: 0 }), { seed: 1 });
      const bestFirst = await trainGbdt(data, params(data.task, data.x.rows, { ...raw, max_leaves: 2 ** raw.max_depth }), { seed: 1 });
      expect(JSON.stringify(byLevel.toState().weights)).toBe(JSON.stringify(bestFirst.toState().weights));
    }
  });

  it('reads MEDFIT_TRAIN_THREADS, else the machine capped at 4', () => {
    expect(trainThreads({ MEDFIT_TRAIN_THREADS: '3' })).toBe(3);
    const auto = trainThreads({});
    expect(auto).toBeGreaterThanOrEqual(1);
    expect(auto).toBeLessThanOrEqual(4);
    for (const bad of ['0', '-1', '1.5', 'two', '65']) {
      let caught: unknown;
      try {
        trainThreads({ MEDFIT_TRAIN_THREADS: bad });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(MedfitError);
      expect((caught as MedfitError).code).toBe('MEDFIT_ERR_BAD_PARAM');
      expect((caught as MedfitError).message).toMatch(/MEDFIT_TRAIN_THREADS/);
    }
  });

  it('compiles its kernel (WebAssembly with SIMD and a shared memory)', () => {
    const wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly;
    expect(wasm.validate(kernelBytes())).toBe(true);
  });

  it("computes Math.exp's bits and the objective's logistic gradients, two rows at a time or one, weighted or not", () => {
    const rng = new Rng(11);
    const specials = [0, -0, 1, -1, NaN, Infinity, -Infinity, 709.78, 709.79, -708.39, -708.4, -720, -745.13, -745.14, 1e-9, -1e-9, 2 ** -28, -(2 ** -28), 2 ** -29, -(2 ** -29), 0.5 * Math.LN2, -0.5 * Math.LN2, 0.3465735902799727, 1.5 * Math.LN2, -1.5 * Math.LN2, 1.0397, -1.0397, 5e-324];
    const values = [...specials];
    for (let i = 0; i < 20000; i++) values.push((rng.next() - 0.5) * [2, 8, 40, 1500][i % 4]!, (rng.next() - 0.5) * 1e-7);
    const n = values.length;
    const memory = sharedMemory(Math.ceil((n * 40 + 4096) / PAGE));
    const k = instantiateKernel(memory);
    for (const x of values) expect(Object.is(k.exp(x), Math.exp(x)) || (Number.isNaN(x) && Number.isNaN(k.exp(x)))).toBe(true);
    // The gradients of those raw scores (each special next to each kind of neighbour in a pair),
    // against objective.ts on the same rows, from an even and from an odd first row.
    const raw = new Float64Array(memory.buffer, 0, n);
    const y = new Float64Array(memory.buffer, n * 8, n);
    const w = new Float64Array(memory.buffer, n * 16, n);
    const gh = new Float64Array(memory.buffer, n * 24, 2 * n);
    raw.set(values);
    for (let i = 0; i < n; i++) {
      y[i] = rng.int(2);
      w[i] = rng.next() * 2;
    }
    for (const weighted of [false, true]) {
      for (const start of [0, 1]) {
        gh.fill(0);
        k.binaryGradients(0, n * 8, weighted ? n * 16 : 0, n * 24, start, n, weighted ? 1 : 0);
        const want = new Float64Array(2 * n);
        computeGradients('binary', y.slice(), weighted ? w.slice() : undefined, raw.slice(), new Float64Array(0), want, n, 1, start, n);
        for (let i = 2 * start; i < 2 * n; i++) if (!Object.is(gh[i], want[i]) && !(Number.isNaN(gh[i]) && Number.isNaN(want[i]))) expect([i >> 1, raw[i >> 1], gh[i]]).toEqual([i >> 1, raw[i >> 1], want[i]]);
      }
    }
  });
});

describe('gbdt binning in one sort', () => {
  it('builds the histograms of plain loops in the kernel, every feature range (unrolled loop and its tail), with and without counts', () => {
    const rng = new Rng(11);
    const n = 700;
    const nf = 11;
    const nb = 7;
    const cell = 24;
    const hs = nb * cell;
    // idx (a sorted subset of the rows), gh, bins, then the histogram
    const at = { idx: 0, gh: 4096, bins: 4096 + n * 16, hist: Math.ceil((4096 + n * 16 + n * nf) / 64) * 64 };
    const memory = sharedMemory(Math.ceil((at.hist + nf * hs) / PAGE) + 1);
    const k = instantiateKernel(memory);
    const idx = new Uint32Array(memory.buffer, at.idx, n);
    const gh = new Float64Array(memory.buffer, at.gh, 2 * n);
    const bins = new Uint8Array(memory.buffer, at.bins, n * nf);
    const hist = new Float64Array(memory.buffer, at.hist, (nf * hs) / 8);
    for (let i = 0; i < 2 * n; i++) gh[i] = rng.normal();
    for (let i = 0; i < n * nf; i++) bins[i] = rng.int(nb);
    let m = 0;
    for (let r = 0; r < n; r++) if (rng.next() < 0.6) idx[m++] = r;
    for (const count of [true, false])
      for (let f0 = 0; f0 < nf; f0++)
        for (let f1 = f0 + 1; f1 <= nf; f1++) {
          hist.fill(NaN);
          const [start, end] = [3, m - 2];
          if (count) k.buildRange(at.idx, start, end, at.bins, nf, at.gh, at.hist, f0, f1, hs);
          else (k as unknown as { buildRangeNoCount: typeof k.buildRange }).buildRangeNoCount(at.idx, start, end, at.bins, nf, at.gh, at.hist, f0, f1, hs);
          const want = new Float64Array(nf * nb * 3).fill(NaN);
          for (let f = f0; f < f1; f++) for (let b = 0; b < nb; b++) want.fill(0, (f * nb + b) * 3, (f * nb + b) * 3 + 3);
          for (let i = start; i < end; i++) {
            const r = idx[i]!;
            for (let f = f0; f < f1; f++) {
              const o = (f * nb + bins[r * nf + f]!) * 3;
              want[o] = want[o]! + gh[2 * r]!;
              want[o + 1] = want[o + 1]! + gh[2 * r + 1]!;
              want[o + 2] = want[o + 2]! + 1;
            }
          }
          for (let f = f0; f < f1; f++)
            for (let c = 0; c < nb * 3; c++) {
              const o = f * nb * 3 + c;
              // Without counts the count slot is left zeroed (the root takes them from elsewhere).
              expect(Object.is(hist[o], c % 3 === 2 && !count ? 0 : want[o])).toBe(true);
            }
          // Features outside the range are not touched.
          for (let o = 0; o < f0 * nb * 3; o++) expect(hist[o]).toBeNaN();
          for (let o = f1 * nb * 3; o < nf * nb * 3; o++) expect(hist[o]).toBeNaN();
        }
  });

  it('gives the edges and bins of fitBins + applyBins: ±0, ±Infinity, NaN, ties, tiny and huge values, a subsample', () => {
    const rng = new Rng(9);
    const specials = [0, -0, NaN, Infinity, -Infinity, 1e-45, -1e-45, 3.4e38, 1e39, -1e39, 2, 2.0000001];
    const check = (rows: number, cols: number, maxBins: number, gen: (i: number, j: number) => number) => {
      const x: Matrix = { rows, cols, data: new Float64Array(rows * cols) };
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) x.data[i * cols + j] = gen(i, j);
      const mapper = fitBins(x, maxBins);
      const out = new Uint8Array(rows * cols).fill(99);
      const fused = fitApplyBins(x, maxBins, out);
      expect(Array.from(fused.nBins)).toEqual(Array.from(mapper.nBins));
      // Object.is: −0 and +0 edges must match too (they become thresholds).
      fused.upper.forEach((u, f) => u.forEach((v, b) => expect(Object.is(v, mapper.upper[f]![b])).toBe(true)));
      expect(Buffer.from(out).equals(Buffer.from(applyBins(x, mapper)))).toBe(true);
      // Independently of the sort: edges ascend, and every value lies in its bin by the threshold rule.
      for (let f = 0; f < cols; f++) {
        const u = fused.upper[f]!;
        for (let b = 1; b < u.length; b++) expect(u[b]! > u[b - 1]!).toBe(true);
        for (let i = 0; i < rows; i++) {
          const v = Math.fround(x.data[i * cols + f]!);
          const b = out[i * cols + f]!;
          if (Number.isNaN(v)) expect(b).toBe(0);
          else if (rows <= 200_000) expect(v <= u[b]! && (b === 0 || v > u[b - 1]!)).toBe(true);
        }
      }
    };
    check(3000, 6, 255, (i, j) =>
      j === 0 ? specials[i % specials.length]! : j === 1 ? rng.int(7) - 3 : j === 2 ? (i % 2 ? 0 : -0) : j === 3 ? NaN : j === 4 ? rng.normal() : rng.next() < 0.1 ? NaN : Math.round(rng.normal() * 100) / 10,
    );
    check(3000, 3, 16, (i, j) => (j === 0 ? specials[i % specials.length]! : rng.normal() * 10 ** j));
    check(1, 2, 4, () => 1);
    // Over 200,000 rows the edges come from a strided subsample and bins by binary search.
    check(200_001, 1, 255, () => rng.normal());
  });
});
