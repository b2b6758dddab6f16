import { describe, expect, it } from 'vitest';
import { rejection } from '../../../test/helpers.js';
import { MedfitError, Rng, matrix, takeRows, take } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import type { ModelState, TrainData } from '../types.js';
import { mlp } from './index.js';
import type { MlpModel } from './index.js';
import { liveWorkers } from './host.js';

/** Seeded synthetic table: standardized normal features, target from a fixed rule of the first few. */
function synth(task: 'binary' | 'multiclass' | 'regression', rows: number, cols: number, seed: number): TrainData {
  const rng = new Rng(seed);
  const x = matrix(rows, cols);
  const y = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const r = Array.from({ length: cols }, () => rng.normal());
    x.data.set(r, i * cols);
    const a = r[0]! + 0.8 * r[1]! - 0.6 * r[2]!;
    if (task === 'binary') y[i] = a + 0.5 * r[3]! * r[3]! - 0.5 + 0.3 * rng.normal() > 0 ? 1 : 0;
    else if (task === 'multiclass') y[i] = a < -0.6 ? 0 : a < 0.6 ? 1 : 2;
    else y[i] = 10 + 3 * a + 2 * Math.sin(2 * r[3]!) + 0.3 * rng.normal();
  }
  return { x, y, task, nClasses: task === 'binary' ? 2 : task === 'multiclass' ? 3 : 1 };
}

function split(d: TrainData, nTrain: number): { train: TrainData; test: { x: Matrix; y: Float64Array } } {
  const tr = Array.from({ length: nTrain }, (_, i) => i);
  const te = Array.from({ length: d.x.rows - nTrain }, (_, i) => nTrain + i);
  return { train: { ...d, x: takeRows(d.x, tr), y: take(d.y, tr) }, test: { x: takeRows(d.x, te), y: take(d.y, te) } };
}

function accuracy(p: Float64Array, y: Float64Array, k: number): number {
  let ok = 0;
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (p[i * k + c]! > p[i * k + best]!) best = c;
    if (best === y[i]) ok++;
  }
  return ok / y.length;
}

function r2(p: Float64Array, y: Float64Array): number {
  const m = y.reduce((a, b) => a + b, 0) / y.length;
  let ss = 0;
  let st = 0;
  for (let i = 0; i < y.length; i++) {
    ss += (y[i]! - p[i]!) ** 2;
    st += (y[i]! - m) ** 2;
  }
  return 1 - ss / st;
}


// Small batches of epochs keep the whole file near 15 s on 2 cores; thresholds sit well above
// what a broken model (constant output, shuffled labels, wrong head) can reach.
const FAST = { epochs: 60, batch_size: 64, learning_rate: 0.005 };

describe('mlp family', () => {
  it('learns a binary problem, reports progress, matches its trainer, and round-trips its state', async () => {
    const { train, test } = split(synth('binary', 700, 8, 1), 500);
    const progress: number[] = [];
    const params = mlp.parseParams(FAST, 'binary', 500);
    const m = (await mlp.train(train, params, { seed: 7, onProgress: (p) => progress.push(p.fraction!) })) as MlpModel;
    const p = m.predict(test.x);
    expect(p.length).toBe(test.y.length * 2);
    for (let i = 0; i < test.y.length; i++) expect(p[2 * i]! + p[2 * i + 1]!).toBeCloseTo(1, 9);
    expect(accuracy(p, test.y, 2)).toBeGreaterThan(0.85);
    expect(progress.length).toBe(m.info!.epochsRun);
    expect(progress.every((f, i) => i === 0 || f > progress[i - 1]!)).toBe(true);
    expect(m.info!.validation).toBe('holdout');
    // The plain-TypeScript forward pass against the trainer's own outputs, inside the worker.
    expect(m.info!.forwardMaxDiff).toBeLessThan(1e-5);
    const state = JSON.parse(JSON.stringify(m.toState())) as ModelState;
    const again = mlp.load(state);
    expect(Array.from(again.predict(test.x))).toEqual(Array.from(p));
    const layers = (state.weights as { layers: { inDim: number; outDim: number; activation: string }[] }).layers;
    expect(layers.map((l) => [l.inDim, l.outDim, l.activation])).toEqual([
      [8, 64, 'relu'],
      [64, 32, 'relu'],
      [32, 2, 'softmax'],
    ]);
  });

  it('learns a multiclass problem with balanced class weights and dropout', async () => {
    const { train, test } = split(synth('multiclass', 700, 6, 2), 500);
    const params = mlp.parseParams({ ...FAST, units: '32', class_weight: 'balanced', dropout: 0.2 }, 'multiclass', 500);
    const m = await mlp.train(train, params, { seed: 3 });
    expect(accuracy(m.predict(test.x), test.y, 3)).toBeGreaterThan(0.9);
  });

  it('learns a regression in the target units, with a given validation set', async () => {
    const d = synth('regression', 700, 6, 3);
    const { train, test } = split(d, 450);
    const vIdx = Array.from({ length: 100 }, (_, i) => i);
    const tIdx = Array.from({ length: 150 }, (_, i) => 100 + i);
    const data: TrainData = { ...train, valid: { x: takeRows(test.x, vIdx), y: take(test.y, vIdx) } };
    const m = (await mlp.train(data, mlp.parseParams(FAST, 'regression', 450), { seed: 5 })) as MlpModel;
    expect(m.info!.validation).toBe('given');
    expect(m.info!.forwardMaxDiff).toBeLessThan(1e-5);
    expect(r2(m.predict(takeRows(test.x, tIdx)), take(test.y, tIdx))).toBeGreaterThan(0.9);
  });

  it('is reproducible for a seed and stops early on an easy problem', async () => {
    const d = synth('multiclass', 300, 4, 4);
    const params = mlp.parseParams({ epochs: 500, patience: 5, learning_rate: 0.01, batch_size: 64, dropout: 0.1 }, 'multiclass', 400);
    const [a, b] = (await Promise.all([mlp.train(d, params, { seed: 11 }), mlp.train(d, params, { seed: 11 })])) as MlpModel[];
    expect(a!.info!.epochsRun).toBeLessThan(500);
    expect(a!.info!.epochsRun).toBe(a!.info!.bestEpoch + 5);
    expect(Array.from(a!.predict(d.x))).toEqual(Array.from(b!.predict(d.x)));
  });

  it('honours per-row weights', async () => {
    // Identical features, conflicting labels: the weighted majority must win.
    const rows = 200;
    const x = matrix(rows, 2);
    const y = new Float64Array(rows);
    const w = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      x.data[2 * i] = 0.5;
      y[i] = i % 2;
      w[i] = i % 2 ? 4 : 1;
    }
    const m = await mlp.train({ x, y, task: 'binary', nClasses: 2, weights: w }, mlp.parseParams({ epochs: 80, units: '4', learning_rate: 0.01 }, 'binary', rows), { seed: 1 });
    // Weighted log-loss is minimised at p(1) = 4/5.
    expect(m.predict(matrix(1, 2))[1]).toBeGreaterThan(0.7);
  });

  it('rejects bad parameters naming mlp.units', () => {
    for (const raw of [{ units: '0' }, { units: 'a,b' }]) {
      const e = (() => {
        try {
          mlp.parseParams(raw, 'binary', 100);
        } catch (err) {
          return err;
        }
        return undefined;
      })() as MedfitError;
      expect(e).toBeInstanceOf(MedfitError);
      expect(e.code).toBe('MEDFIT_ERR_BAD_PARAM');
      expect(e.message).toContain('mlp.units');
    }
    expect(() => mlp.parseParams({ unit: '64' }, 'binary', 100)).toThrow(/mlp\.unit: unknown parameter/);
    expect(() => mlp.parseParams({ dropout: 0.95 }, 'binary', 100)).toThrow(/mlp\.dropout/);
    expect(mlp.parseParams({ units: '16,8' }, 'binary', 100).units).toEqual([16, 8]);
  });

  it('load refuses malformed state with a manifest error', () => {
    const layer = (inDim: number, outDim: number, activation: string) => ({
      kernel: new Array(inDim * outDim).fill(0.1),
      bias: new Array(outDim).fill(0),
      inDim,
      outDim,
      activation,
    });
    const good: ModelState = {
      family: 'mlp',
      task: 'binary',
      nClasses: 2,
      nFeatures: 3,
      params: mlp.defaults('binary', 100),
      weights: { layers: [layer(3, 4, 'relu'), layer(4, 2, 'softmax')] },
    };
    expect(mlp.load(good).predict(matrix(2, 3)).length).toBe(4);
    const cases: [unknown, RegExp][] = [
      [{ layers: [layer(3, 4, 'relu'), { ...layer(4, 2, 'softmax'), kernel: [1, 2] }] }, /layers\[1\]\.kernel/],
      [{ layers: [layer(2, 4, 'relu'), layer(4, 2, 'softmax')] }, /layers\[0\]\.inDim/],
      [{ layers: [layer(3, 4, 'relu'), layer(4, 3, 'softmax')] }, /expected 2/],
      [{ layers: [layer(3, 4, 'relu'), layer(4, 2, 'linear')] }, /activation/],
      [{ layers: [] }, /empty/],
      [null, /layers/],
    ];
    for (const [weights, msg] of cases) {
      expect(() => mlp.load({ ...good, weights })).toThrow(msg);
      try {
        mlp.load({ ...good, weights });
      } catch (e) {
        expect((e as MedfitError).code).toBe('MEDFIT_ERR_MANIFEST');
      }
    }
    expect(() => mlp.load({ ...good, family: 'gbdt' })).toThrow(/not mlp/);
    expect(() => mlp.load(good).predict(matrix(1, 5))).toThrow(/expected 3 features/);
  });

  it('cancels on abort, leaving no worker, and keeps the main thread responsive meanwhile', async () => {
    const d = synth('binary', 2000, 20, 6);
    const ac = new AbortController();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const e = await rejection(
      mlp.train(d, mlp.parseParams({ epochs: 1000, patience: 1000 }, 'binary', 2000), {
        seed: 1,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.epoch === 3) ac.abort();
        },
      }),
    );
    clearInterval(timer);
    expect(e.code).toBe('MEDFIT_ERR_CANCELLED');
    expect(liveWorkers()).toBe(0);
    // Starting the worker and three epochs take well over 50 ms; a blocked event loop would not tick.
    expect(ticks).toBeGreaterThan(10);
    const pre = new AbortController();
    pre.abort();
    expect((await rejection(mlp.train(d, mlp.defaults('binary', 2000), { seed: 1, signal: pre.signal }))).code).toBe('MEDFIT_ERR_CANCELLED');
  });

  it('turns a worker-side failure into a MedfitError and terminates the worker', async () => {
    const d = synth('binary', 100, 3, 7);
    d.x.data[5] = Number.NaN; // the worker checks features before training
    const e = await rejection(mlp.train(d, mlp.parseParams({ epochs: 5 }, 'binary', 100), { seed: 1 }));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toMatch(/non-finite/);
    expect(liveWorkers()).toBe(0);
  });
});

describe('early-stopping holdout', () => {
  it('holds out whole groups, about a tenth of the rows, never every group', async () => {
    const { groupHoldout } = await import('../holdout.js');
    const groups = Int32Array.from({ length: 300 }, (_, i) => Math.floor(i / 3) % 100);
    const { train, valid } = groupHoldout(groups, 0.1, new Rng(1));
    const held = new Set(valid.map((i) => groups[i]!));
    for (const i of train) expect(held.has(groups[i]!)).toBe(false);
    expect(valid.length).toBeGreaterThanOrEqual(30);
    expect(valid.length).toBeLessThanOrEqual(33);
    expect(train.length + valid.length).toBe(300);
    expect(groupHoldout(new Int32Array(50), 0.1, new Rng(1)).valid).toEqual([]);
  });
});

describe('mlp multi-output regression', () => {
  it('learns three outputs on their own scales with a Dense(3) linear head, and round-trips its state', async () => {
    const rows = 700;
    const base = synth('regression', rows, 6, 8);
    const rng = new Rng(9);
    const k = 3;
    const y = new Float64Array(rows * k);
    for (let i = 0; i < rows; i++) {
      const r = base.x.data.subarray(i * 6, (i + 1) * 6);
      y[i * k] = base.y[i]!;
      // Very different scales: each output is standardized on its own and scaled back.
      y[i * k + 1] = 1000 - 200 * r[1]! + 100 * r[4]! + 10 * rng.normal();
      y[i * k + 2] = 0.01 * (r[0]! - r[5]!) + 0.001 * rng.normal();
    }
    const tr = Array.from({ length: 500 }, (_, i) => i);
    const te = Array.from({ length: 200 }, (_, i) => 500 + i);
    const ytr = new Float64Array(500 * k);
    tr.forEach((r, i) => ytr.set(y.subarray(r * k, (r + 1) * k), i * k));
    const m = (await mlp.train({ x: takeRows(base.x, tr), y: ytr, task: 'regression', nClasses: 1, nOutputs: k }, mlp.parseParams(FAST, 'regression', 500), { seed: 5 })) as MlpModel;
    expect(m.nOutputs).toBe(3);
    expect(m.info!.validation).toBe('holdout');
    expect(m.info!.forwardMaxDiff).toBeLessThan(1e-5);
    const xt = takeRows(base.x, te);
    const p = m.predict(xt);
    expect(p.length).toBe(200 * k);
    for (let c = 0; c < k; c++) {
      const pc = Float64Array.from({ length: 200 }, (_, i) => p[i * k + c]!);
      const yc = Float64Array.from(te, (r) => y[r * k + c]!);
      expect(r2(pc, yc)).toBeGreaterThan(0.85);
    }
    const state = JSON.parse(JSON.stringify(m.toState())) as ModelState;
    expect(state.nOutputs).toBe(3);
    const layers = (state.weights as { layers: { outDim: number; activation: string }[] }).layers;
    expect(layers.at(-1)).toMatchObject({ outDim: 3, activation: 'linear' });
    const again = mlp.load(state);
    expect(again.nOutputs).toBe(3);
    expect(Array.from(again.predict(xt))).toEqual(Array.from(p));
    // A state whose head does not match its outputs is refused.
    expect(() => mlp.load({ ...state, nOutputs: 2 })).toThrow(/the last layer has 3 outputs, expected 2/);
    expect(() => mlp.load({ ...state, task: 'binary', nClasses: 2 })).toThrow(MedfitError);
    expect(mlp.multiOutput).toBe(true);
  });

  it('refuses targets that do not fill rows × outputs', async () => {
    const d = synth('regression', 50, 3, 10);
    const e = await rejection(mlp.train({ ...d, nOutputs: 2 }, mlp.parseParams({ epochs: 2 }, 'regression', 50), { seed: 1 }));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toMatch(/2 targets each \(got 50 rows, 50 targets\)/);
  });
});
