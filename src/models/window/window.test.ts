import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix } from '../../core/index.js';
import { WINDOW_FEATURES_VERSION, windowFeatureNames, windowFeatures } from '../../sequence/index.js';
import { gbdt, GBDT_PARAMS, type GbdtWeights } from '../gbdt/index.js';
import type { ModelState, SequenceShape, TrainData } from '../types.js';
import { featuresFor, gbdtStateOf, windowGbdt, type WindowGbdtModel, type WindowGbdtWeights } from './index.js';

const SHAPE: SequenceShape = { steps: 128, channels: 4, rate: 32, channelNames: ['ax', 'ay', 'az', 'hr'] };

/**
 * Windows of a movement at `freq(row)` Hz on the three axes (random phase, amplitude and gravity
 * offset, noise as strong as the signal) and an unrelated heart-rate channel.
 */
function sineWindows(rows: number, seed: number, freq: (row: number) => number, shape = SHAPE): Matrix {
  const rng = new Rng(seed);
  const { steps, channels, rate } = shape;
  const data = new Float64Array(rows * steps * channels);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  for (let r = 0; r < rows; r++) {
    const f = freq(r);
    const phase = rng.next() * 2 * Math.PI;
    const hr = 60 + 40 * rng.next();
    for (let c = 0; c < channels; c++) {
      const amp = 0.5 + rng.next();
      const offset = gauss();
      for (let s = 0; s < steps; s++) {
        const t = s / rate;
        const v = c === 3 ? (hr + gauss()) / 20 : offset + amp * Math.sin(2 * Math.PI * f * t + phase + c) + gauss();
        data[(r * steps + s) * channels + c] = v;
      }
    }
  }
  return { rows, cols: steps * channels, data };
}

function twoClass(rows: number, seed: number): { x: Matrix; y: Float64Array } {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) y[r] = r % 2;
  return { x: sineWindows(rows, seed, (r) => (r % 2 === 0 ? 1 : 3)), y };
}

function accuracy(p: Float64Array, y: Float64Array, k: number): number {
  let ok = 0;
  for (let r = 0; r < y.length; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (p[r * k + j]! > p[r * k + best]!) best = j;
    if (best === y[r]) ok++;
  }
  return ok / y.length;
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof MedfitError ? e.code : `not a MedfitError: ${String(e)}`;
  }
  return 'no error';
}

const small = { trees: 60, early_stopping_rounds: 0 };

describe('windowGbdt family', () => {
  it('is a sequence family with the gbdt parameters', () => {
    expect(windowGbdt.name).toBe('window-gbdt');
    expect(windowGbdt.input).toBe('sequence');
    expect(windowGbdt.multiOutput).toBe(false);
    expect([...windowGbdt.tasks]).toEqual(['binary', 'multiclass', 'regression']);
    expect(windowGbdt.paramSpec).toBe(GBDT_PARAMS);
    expect(windowGbdt.defaults('binary', 5000)).toEqual(gbdt.defaults('binary', 5000));
    expect(windowGbdt.parseParams({ trees: '30' }, 'binary', 100).trees).toBe(30);
    expect(() => windowGbdt.parseParams({ trees: 0 }, 'binary', 100)).toThrow(/parameter window-gbdt\.trees/);
    expect(() => windowGbdt.parseParams({ depth: 3 }, 'binary', 100)).toThrow(/window-gbdt\.depth: unknown parameter/);
  });

  it('tells a 1 Hz movement from a 3 Hz one on held-out windows (> 0.95 accuracy)', async () => {
    const train = twoClass(300, 1);
    const test = twoClass(200, 2);
    const model = await windowGbdt.train(
      { x: train.x, y: train.y, task: 'binary', nClasses: 2, sequence: SHAPE },
      windowGbdt.defaults('binary', 300),
      { seed: 1 },
    );
    const p = model.predict(test.x);
    expect(p.length).toBe(400);
    const acc = accuracy(p, test.y, 2);
    expect(acc).toBeGreaterThan(0.95);
  });

  it('learns three classes and a regression on the frequency', async () => {
    const freqs = [0.7, 2, 5];
    const yc = Float64Array.from({ length: 300 }, (_, r) => r % 3);
    const xc = sineWindows(300, 3, (r) => freqs[r % 3]!);
    const mc = await windowGbdt.train({ x: xc, y: yc, task: 'multiclass', nClasses: 3, sequence: SHAPE }, small, { seed: 2 });
    const yt = Float64Array.from({ length: 150 }, (_, r) => r % 3);
    expect(accuracy(mc.predict(sineWindows(150, 4, (r) => freqs[r % 3]!)), yt, 3)).toBeGreaterThan(0.9);

    const rng = new Rng(5);
    const fr = Array.from({ length: 450 }, () => 0.6 + 4 * rng.next());
    const xr = sineWindows(450, 6, (r) => fr[r]!);
    const rows = Array.from({ length: 300 }, (_, i) => i);
    const take = (m: Matrix, idx: number[]): Matrix => {
      const out = new Float64Array(idx.length * m.cols);
      idx.forEach((r, i) => out.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
      return { rows: idx.length, cols: m.cols, data: out };
    };
    const mr = await windowGbdt.train(
      { x: take(xr, rows), y: Float64Array.from(rows, (r) => fr[r]!), task: 'regression', nClasses: 1, sequence: SHAPE },
      { trees: 200 },
      { seed: 3 },
    );
    const held = Array.from({ length: 150 }, (_, i) => 300 + i);
    const pr = mr.predict(take(xr, held));
    const yh = held.map((r) => fr[r]!);
    const mean = yh.reduce((a, b) => a + b, 0) / yh.length;
    let sse = 0;
    let sst = 0;
    yh.forEach((v, i) => ((sse += (v - pr[i]!) ** 2), (sst += (v - mean) ** 2)));
    expect(1 - sse / sst).toBeGreaterThan(0.8);
  });

  it('uses validation windows for early stopping', async () => {
    const train = twoClass(200, 7);
    const valid = twoClass(100, 8);
    const model = (await windowGbdt.train(
      { x: train.x, y: train.y, task: 'binary', nClasses: 2, sequence: SHAPE, valid },
      { trees: 400, early_stopping_rounds: 5, learning_rate: 0.3 },
      { seed: 4 },
    )) as WindowGbdtModel;
    expect((model.toState().weights as WindowGbdtWeights).gbdt.rounds).toBeLessThan(400);
  });

  it('saves and loads back (through JSON) to identical predictions; serving reads the inner gbdt state', async () => {
    const train = twoClass(160, 9);
    const model = await windowGbdt.train({ x: train.x, y: train.y, task: 'binary', nClasses: 2, sequence: SHAPE }, small, { seed: 5 });
    const state = model.toState();
    expect(state.family).toBe('window-gbdt');
    expect(state.task).toBe('binary');
    expect(state.nClasses).toBe(2);
    expect(state.nFeatures).toBe(128 * 4);
    expect(state.sequence).toEqual(SHAPE);
    const w = state.weights as WindowGbdtWeights;
    expect(w.features.names).toEqual(windowFeatureNames(SHAPE));
    expect(w.features.version).toBe(WINDOW_FEATURES_VERSION);
    expect(w.gbdt.format).toBe(1);
    expect(state.params.trees).toBe(60);

    const loaded = windowGbdt.load(JSON.parse(JSON.stringify(state)) as ModelState);
    expect(loaded.family).toBe('window-gbdt');
    expect(loaded.nFeatures).toBe(512);
    expect(loaded.sequence).toEqual(SHAPE);
    const test = twoClass(50, 10);
    expect(loaded.predict(test.x)).toEqual(model.predict(test.x));
    expect(loaded.toState()).toEqual(state);

    // What serving does: the features here, then the trees (the gbdt state the ONNX exporter reads).
    const feats = featuresFor(state.sequence!, test.x);
    expect(feats).toEqual(windowFeatures(test.x, SHAPE));
    const trees = gbdt.load(gbdtStateOf(state));
    expect(trees.nFeatures).toBe(w.features.names.length);
    expect(trees.predict(feats)).toEqual(model.predict(test.x));

    // A caller mutating the state cannot change the model.
    (state.weights as WindowGbdtWeights).gbdt.baseScore[0] = 99;
    state.sequence!.channelNames[0] = 'zz';
    expect(model.predict(test.x)).toEqual(loaded.predict(test.x));
  });

  it('refuses to load a state whose feature set changed, or that is malformed', async () => {
    const train = twoClass(100, 11);
    const model = await windowGbdt.train({ x: train.x, y: train.y, task: 'binary', nClasses: 2, sequence: SHAPE }, { trees: 5 }, { seed: 6 });
    const good = () => JSON.parse(JSON.stringify(model.toState())) as ModelState & { weights: WindowGbdtWeights };

    const renamed = good();
    renamed.weights.features.names[3] = 'ax_old_feature';
    expect(() => windowGbdt.load(renamed)).toThrow(/window feature set changed.*feature 3 is "ax_old_feature" in the model, "ax_max" now/);
    const fewer = good();
    fewer.weights.features.names.pop();
    expect(() => windowGbdt.load(fewer)).toThrow(/window feature set changed/);
    const older = good();
    older.weights.features.version = 0;
    expect(() => windowGbdt.load(older)).toThrow(/window feature set changed.*features version 0/);
    const otherChannels = good();
    otherChannels.sequence!.channelNames = ['ax', 'ay', 'az', 'spo2'];
    expect(() => windowGbdt.load(otherChannels)).toThrow(/window feature set changed/);

    const cases: [string, (s: ModelState & { weights: WindowGbdtWeights }) => void][] = [
      ['no sequence', (s) => delete s.sequence],
      ['bad shape', (s) => (s.sequence!.rate = -1)],
      ['names mismatch channels', (s) => (s.sequence!.channelNames = ['ax'])],
      ['nFeatures', (s) => (s.nFeatures = 10)],
      ['family', (s) => ((s as { family: string }).family = 'gbdt')],
      ['task', (s) => ((s as { task: string }).task = 'ranking')],
      ['no features', (s) => delete (s.weights as Partial<WindowGbdtWeights>).features],
      ['no trees', (s) => delete (s.weights as Partial<WindowGbdtWeights>).gbdt],
      ['broken tree', (s) => ((s.weights.gbdt as GbdtWeights).trees[0]!.feature[0] = 1e6)],
      ['nOutputs', (s) => (s.nOutputs = 2)],
    ];
    for (const [what, spoil] of cases) {
      const s = good();
      spoil(s);
      expect(code(() => windowGbdt.load(s)), what).toBe('MEDFIT_ERR_MANIFEST');
    }
    expect(code(() => windowGbdt.load(null as unknown as ModelState))).toBe('MEDFIT_ERR_MANIFEST');
  });

  it('refuses training data without a sequence shape, or of the wrong width, and bad rows at predict', async () => {
    const { x, y } = twoClass(40, 12);
    const base: TrainData = { x, y, task: 'binary', nClasses: 2, sequence: SHAPE };
    const { sequence: _drop, ...noShape } = base;
    await expect(windowGbdt.train(noShape, small, { seed: 1 })).rejects.toThrow(/no sequence shape/);
    await expect(windowGbdt.train({ ...base, sequence: { ...SHAPE, steps: 64 } }, small, { seed: 1 })).rejects.toThrow(
      /rows of 512 values do not match windows of 64 steps × 4 channels = 256/,
    );
    await expect(windowGbdt.train({ ...base, sequence: { ...SHAPE, channelNames: ['ax'] } }, small, { seed: 1 })).rejects.toThrow(MedfitError);
    await expect(
      windowGbdt.train({ ...base, valid: { x: { rows: 1, cols: 3, data: new Float64Array(3) }, y: new Float64Array(1) } }, small, { seed: 1 }),
    ).rejects.toThrow(/validation rows of 3 values/);
    await expect(windowGbdt.train({ ...base, task: 'regression', nClasses: 1, nOutputs: 2 }, small, { seed: 1 })).rejects.toThrow(MedfitError);
    const ac = new AbortController();
    ac.abort();
    await expect(windowGbdt.train(base, small, { seed: 1, signal: ac.signal })).rejects.toThrow(/cancelled/);

    const model = await windowGbdt.train(base, { trees: 3 }, { seed: 1 });
    expect(() => model.predict({ rows: 1, cols: 511, data: new Float64Array(511) })).toThrow(/128 steps × 4 channels = 512 values per row, got 511/);
    expect(code(() => model.predict({ rows: 1, cols: 511, data: new Float64Array(511) }))).toBe('MEDFIT_ERR_BAD_DATA');
  });
});
