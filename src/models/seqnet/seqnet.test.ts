import { describe, expect, it } from 'vitest';
import { rejection } from '../../../test/helpers.js';
import { MedfitError, Rng, matrix } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import type { ModelFamily, ModelState, SequenceShape, TrainData } from '../types.js';
import { ADAM, buildSeqNet } from './build.js';
import { groupHoldout, rowHoldout } from '../holdout.js';
import { seqnetForward } from './forward.js';
import { liveSeqWorkers } from './host.js';
import { SEQ_PARAMS, cnn, cnnLstm, gru, lstm, toSeqConfig } from './index.js';
import type { SeqNetModel } from './index.js';
import { SeqNetTrainer } from './net.js';

const shapeOf = (steps: number, channels: number): SequenceShape => ({ steps, channels, rate: 50, channelNames: Array.from({ length: channels }, (_, c) => `c${c}`) });

/**
 * Seeded windows: channel 0 carries a sine whose frequency is the class (1, 2 or 3 cycles per
 * window) with a random phase; the other channels are noise. Regression: two targets, the
 * frequency (continuous) and the amplitude of channel 1.
 */
function synth(task: 'binary' | 'multiclass' | 'regression', rows: number, steps: number, channels: number, seed: number, groups = 0): TrainData {
  const rng = new Rng(seed);
  const x = matrix(rows, steps * channels);
  const k = task === 'binary' ? 2 : 3;
  const nOut = task === 'regression' ? 2 : 1;
  const y = new Float64Array(rows * nOut);
  for (let r = 0; r < rows; r++) {
    const cls = rng.int(k);
    const freq = task === 'regression' ? 1 + 2 * rng.next() : cls + 1;
    const amp = 0.5 + rng.next();
    const phase = rng.next() * 2 * Math.PI;
    for (let t = 0; t < steps; t++) {
      for (let c = 0; c < channels; c++) {
        const base = c === 0 ? Math.sin((2 * Math.PI * freq * t) / steps + phase) : c === 1 && task === 'regression' ? amp * Math.cos((2 * Math.PI * t) / steps + phase) : 0;
        x.data[r * steps * channels + t * channels + c] = base + 0.2 * rng.normal();
      }
    }
    if (task === 'regression') {
      y[r * 2] = 10 + 5 * freq;
      y[r * 2 + 1] = amp;
    } else y[r] = cls;
  }
  return {
    x,
    y,
    task,
    nClasses: task === 'regression' ? 1 : k,
    sequence: shapeOf(steps, channels),
    ...(task === 'regression' ? { nOutputs: 2 } : {}),
    ...(groups > 0 ? { groups: Int32Array.from({ length: rows }, (_, i) => i % groups) } : {}),
  };
}

function split(d: TrainData, nTrain: number): { train: TrainData; test: { x: Matrix; y: Float64Array } } {
  const w = d.x.cols;
  const yw = d.y.length / d.x.rows;
  const take = (from: number, to: number): { x: Matrix; y: Float64Array } => ({
    x: { rows: to - from, cols: w, data: d.x.data.slice(from * w, to * w) },
    y: d.y.slice(from * yw, to * yw),
  });
  const tr = take(0, nTrain);
  return { train: { ...d, x: tr.x, y: tr.y, ...(d.groups ? { groups: d.groups.slice(0, nTrain) } : {}) }, test: take(nTrain, d.x.rows) };
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

/** R² of output `o` of `nOut`. */
function r2(p: Float64Array, y: Float64Array, nOut: number, o: number): number {
  const n = y.length / nOut;
  let m = 0;
  for (let i = 0; i < n; i++) m += y[i * nOut + o]!;
  m /= n;
  let ss = 0;
  let st = 0;
  for (let i = 0; i < n; i++) {
    ss += (y[i * nOut + o]! - p[i * nOut + o]!) ** 2;
    st += (y[i * nOut + o]! - m) ** 2;
  }
  return 1 - ss / st;
}

function roundTrip(family: ModelFamily, model: SeqNetModel, x: Matrix): void {
  const state = JSON.parse(JSON.stringify(model.toState())) as ModelState;
  expect(state.family).toBe(model.family);
  expect(state.nFeatures).toBe(model.sequence.steps * model.sequence.channels);
  expect(state.sequence).toEqual(model.sequence);
  const loaded = family.load(state);
  expect(Array.from(loaded.predict(x))).toEqual(Array.from(model.predict(x)));
  expect(loaded.nOutputs).toBe(model.nOutputs);
  expect(loaded.sequence).toEqual(model.sequence);
}

const FAST = { epochs: 25, batch_size: 32, learning_rate: 0.01, patience: 25 };

describe('the seed reference network', () => {
  it('is exactly --param lstm.units=100 --param lstm.dropout=0.2: LSTM(100) → Dropout(0.2) → Dense(1), Adam(0.001), MSE, Keras initialisers', () => {
    const params = lstm.parseParams({ units: '100', dropout: '0.2' }, 'regression', 10000);
    expect(params).toMatchObject({ units: 100, layers: 1, dropout: 0.2, learning_rate: 0.001, batch_size: 32 });
    const config = toSeqConfig(params);
    expect(ADAM).toEqual({ beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
    const w = buildSeqNet('lstm', config, { steps: 10, channels: 10 }, 1, 'linear', 7);
    expect(w.steps).toBe(10);
    expect(w.channels).toBe(10);
    expect(w.layers.map((l) => l.type)).toEqual(['lstm', 'dense']);
    const [rec, out] = w.layers as [Extract<(typeof w.layers)[0], { type: 'lstm' }>, Extract<(typeof w.layers)[0], { type: 'dense' }>];
    expect(rec).toMatchObject({ inputSize: 10, units: 100, returnSequences: false });
    expect(out).toMatchObject({ inputSize: 100, units: 1, activation: 'linear' });
    // glorot_uniform: U(±√(6/(fan_in+fan_out))), filling the range.
    const maxAbs = (a: number[]) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const lim = Math.sqrt(6 / (10 + 400));
    expect(maxAbs(rec.kernel)).toBeLessThanOrEqual(lim);
    expect(maxAbs(rec.kernel)).toBeGreaterThan(0.95 * lim);
    expect(maxAbs(out.kernel)).toBeLessThanOrEqual(Math.sqrt(6 / 101));
    // orthogonal recurrent kernel: the 100 rows of the 100 × 400 matrix are orthonormal.
    for (const [i, j] of [[0, 0], [0, 1], [37, 37], [37, 99], [99, 99]] as const) {
      let d = 0;
      for (let k = 0; k < 400; k++) d += rec.recurrentKernel[i * 400 + k]! * rec.recurrentKernel[j * 400 + k]!;
      expect(d).toBeCloseTo(i === j ? 1 : 0, 6);
    }
    // zero biases, but the forget gate's (i, f, c, o) starts at 1: unit_forget_bias.
    expect(rec.bias.slice(0, 100).every((v) => v === 0)).toBe(true);
    expect(rec.bias.slice(100, 200).every((v) => v === 1)).toBe(true);
    expect(rec.bias.slice(200).every((v) => v === 0)).toBe(true);
    expect(out.bias).toEqual([0]);

    // The loss is the mean squared error of the network's output (dropout here keeps everything).
    const rng = new Rng(1);
    const B = 8;
    const x = Float32Array.from({ length: B * 100 }, () => rng.normal());
    const y = Float64Array.from({ length: B }, () => rng.normal());
    const net = new SeqNetTrainer(w, { loss: 'mse', maxBatch: 32, dropout: config.dropout, random: () => rng.next() });
    net.setDropoutMask(new Float32Array(B * 100).fill(1));
    const loss = net.lossAndGrad(x, y, undefined, Int32Array.from({ length: B }, (_, i) => i), 0, B);
    const p = seqnetForward(w, { rows: B, cols: 100, data: Float64Array.from(x) });
    let mse = 0;
    for (let i = 0; i < B; i++) mse += (p[i]! - y[i]!) ** 2;
    expect(loss).toBeCloseTo(mse / B, 5);
  });

  it('trains as that network: the family builds LSTM(100) → Dense(1) on 10 × 10 windows', async () => {
    const d = synth('regression', 120, 10, 10, 4);
    const one = { ...d, y: Float64Array.from({ length: 120 }, (_, i) => d.y[2 * i]!), nOutputs: 1 };
    const params = lstm.parseParams({ units: '100', dropout: '0.2', epochs: 2 }, 'regression', 120);
    const model = (await lstm.train(one, params, { seed: 1 })) as SeqNetModel;
    expect(model.weights.layers.map((l) => [l.type, 'units' in l ? l.units : 0])).toEqual([
      ['lstm', 100],
      ['dense', 1],
    ]);
    expect(model.info?.epochsRun).toBe(2);
  });
});

describe('sequence families', () => {
  const cases: [ModelFamily, 'binary' | 'multiclass', Record<string, unknown>, number][] = [
    [lstm, 'multiclass', { units: 16 }, 0.85],
    [gru, 'binary', { units: 16, layers: 2 }, 0.85],
    [cnn, 'multiclass', { filters: 16, kernel_size: 5 }, 0.85],
    [cnnLstm, 'multiclass', { filters: 12, units: 12, pool: 2, layers: 2 }, 0.85],
  ];
  for (const [family, task, extra, minAcc] of cases) {
    it(`${family.name} learns ${task} windows, reports progress, round-trips its state`, async () => {
      const { train, test } = split(synth(task, 420, 16, 3, family.name.length), 320);
      const params = family.parseParams({ ...FAST, ...extra }, task, 320);
      const epochs: number[] = [];
      const model = (await family.train(train, params, { seed: 3, onProgress: (p) => {
        expect(p.stage).toBe(family.name);
        expect(p.loss).toBeGreaterThan(0);
        expect(p.valLoss).toBeGreaterThan(0);
        epochs.push(p.epoch!);
      } })) as SeqNetModel;
      expect(epochs[0]).toBe(1);
      expect(epochs.length).toBe(model.info!.epochsRun);
      expect(model.info!.validation).toBe('rows');
      expect(model.info!.validRows).toBe(32);
      const p = model.predict(test.x);
      expect(p.length).toBe(test.x.rows * train.nClasses);
      for (let r = 0; r < test.x.rows; r++) {
        let s = 0;
        for (let c = 0; c < train.nClasses; c++) s += p[r * train.nClasses + c]!;
        expect(s).toBeCloseTo(1, 9);
      }
      expect(accuracy(p, test.y, train.nClasses)).toBeGreaterThan(minAcc);
      roundTrip(family, model, test.x);
    });
  }

  it('learns several regression outputs at once (rows × nOutputs), in raw units', async () => {
    const { train, test } = split(synth('regression', 420, 16, 3, 11), 320);
    const model = (await cnn.train(train, cnn.parseParams({ ...FAST, filters: 16, kernel_size: 5, dropout: 0 }, 'regression', 320), { seed: 2 })) as SeqNetModel;
    expect(model.nOutputs).toBe(2);
    const p = model.predict(test.x);
    expect(p.length).toBe(test.x.rows * 2);
    expect(r2(p, test.y, 2, 0)).toBeGreaterThan(0.7);
    expect(r2(p, test.y, 2, 1)).toBeGreaterThan(0.5);
    roundTrip(cnn, model, test.x);
  });

  it('is deterministic for a seed and holds whole subjects out when given groups', async () => {
    const d = synth('binary', 200, 8, 2, 5, 20);
    const params = gru.parseParams({ units: 6, epochs: 3, patience: 3 }, 'binary', 200);
    const a = (await gru.train(d, params, { seed: 9 })) as SeqNetModel;
    const b = (await gru.train(d, params, { seed: 9 })) as SeqNetModel;
    const c = (await gru.train(d, params, { seed: 10 })) as SeqNetModel;
    expect(a.weights).toEqual(b.weights);
    expect(a.weights).not.toEqual(c.weights);
    expect(a.info!.validation).toBe('groups');
    expect(a.info!.validRows).toBe(30); // 3 of 20 subjects, 10 windows each: ~15%
    expect(liveSeqWorkers()).toBe(0);
  });

  it('uses the given validation rows and restores the best epoch', async () => {
    const { train, test } = split(synth('multiclass', 300, 12, 2, 6), 250);
    const model = (await lstm.train({ ...train, valid: test }, lstm.parseParams({ units: 8, epochs: 12, patience: 3, learning_rate: 0.05 }, 'multiclass', 250), { seed: 1 })) as SeqNetModel;
    const info = model.info!;
    expect(info.validation).toBe('given');
    expect(info.validRows).toBe(50);
    expect(info.trainRows).toBe(250);
    expect(info.bestEpoch).toBeLessThanOrEqual(info.epochsRun);
    expect(info.epochsRun === 12 || info.epochsRun - info.bestEpoch === 3).toBe(true);
    // The kept weights are the best epoch's: their validation loss is the recorded best.
    const p = model.predict(test.x);
    let ce = 0;
    for (let i = 0; i < test.x.rows; i++) ce -= Math.log(Math.max(1e-7, Math.min(1 - 1e-7, p[i * 3 + test.y[i]!]!)));
    expect(ce / test.x.rows).toBeCloseTo(info.bestLoss, 4);
  });
});

describe('early-stopping holdouts', () => {
  it('groupHoldout keeps every group on one side with about 15% of the rows', () => {
    const groups = Int32Array.from({ length: 1000 }, (_, i) => Math.floor(i / 25)); // 40 subjects
    const { train, valid } = groupHoldout(groups, 0.15, new Rng(3));
    expect(valid.length).toBe(150);
    expect(train.length + valid.length).toBe(1000);
    const inValid = new Set(valid.map((i) => groups[i]));
    for (const i of train) expect(inValid.has(groups[i]!)).toBe(false);
    expect(groupHoldout(groups, 0.15, new Rng(3))).toEqual({ train, valid });
    // A single subject: nothing to hold out.
    expect(groupHoldout(new Int32Array(50), 0.15, new Rng(1)).valid).toEqual([]);
  });

  it('rowHoldout takes a seeded 10% per class', () => {
    const y = Float64Array.from({ length: 200 }, (_, i) => (i < 150 ? 0 : 1));
    const { train, valid } = rowHoldout(200, y, 2, 0.1, new Rng(1));
    expect(valid.length).toBe(20);
    expect(valid.filter((i) => y[i] === 1).length).toBe(5);
    expect(train.length).toBe(180);
  });
});

describe('bad inputs and parameters', () => {
  const base = () => synth('binary', 60, 6, 2, 1);
  const params = () => lstm.parseParams({ units: 4, epochs: 1 }, 'binary', 60);

  it('refuses non-finite windows, wrong shapes, bad targets and a missing window shape', async () => {
    const cases: [TrainData, RegExp][] = [];
    const nan = base();
    nan.x.data[17] = NaN;
    cases.push([nan, /non-finite/]);
    const huge = base();
    huge.x.data[3] = 1e300; // beyond float32
    cases.push([huge, /non-finite/]);
    cases.push([{ ...base(), sequence: shapeOf(5, 2) }, /12 values, but windows of 5 steps × 2 channels have 10/]);
    const noSeq = base();
    delete noSeq.sequence;
    cases.push([noSeq, /no sequence shape/]);
    const badY = base();
    badY.y[4] = 2;
    cases.push([badY, /row 4 is not a class index in 0..1/]);
    const frac = base();
    frac.y[5] = 0.5;
    cases.push([frac, /row 5 is not a class index/]);
    cases.push([{ ...base(), y: new Float64Array(59) }, /expected 60 targets/]);
    cases.push([{ ...synth('regression', 60, 6, 2, 1), nOutputs: 3 }, /expected 180 targets \(60 windows × 3 outputs\)/]);
    cases.push([{ ...base(), weights: new Float64Array(60).fill(-1) }, /non-negative/]);
    cases.push([{ ...base(), groups: new Int32Array(3) }, /groups has 3 entries/]);
    cases.push([{ ...base(), valid: { x: matrix(3, 11), y: new Float64Array(3) } }, /validation rows have 11 values/]);
    for (const [data, msg] of cases) {
      const e = await rejection(lstm.train(data, params(), { seed: 1 }));
      expect(e.code, String(msg)).toBe('MEDFIT_ERR_BAD_DATA');
      expect(e.message).toMatch(msg);
    }
    expect(liveSeqWorkers()).toBe(0);
  });

  it('validates parameters against each family’s spec', () => {
    expect(Object.keys(SEQ_PARAMS.lstm).sort()).toEqual(['batch_size', 'class_weight', 'dropout', 'epochs', 'layers', 'learning_rate', 'patience', 'units']);
    expect(Object.keys(SEQ_PARAMS['cnn-lstm'])).toContain('pool');
    expect(Object.keys(SEQ_PARAMS.cnn)).not.toContain('units');
    for (const family of [lstm, gru, cnn, cnnLstm]) {
      expect(family.input).toBe('sequence');
      expect(family.multiOutput).toBe(true);
      expect(family.tasks).toEqual(['binary', 'multiclass', 'regression']);
      for (const s of Object.values(family.paramSpec)) expect(s.help.length).toBeGreaterThan(5);
    }
    expect(() => lstm.parseParams({ units: 0 }, 'binary', 10)).toThrow(/lstm\.units/);
    expect(() => lstm.parseParams({ filters: 3 }, 'binary', 10)).toThrow(/unknown parameter/);
    expect(() => cnnLstm.parseParams({ layers: 3 }, 'binary', 10)).toThrow(/cnn-lstm\.layers/);
    expect(() => gru.parseParams({ dropout: 1 }, 'binary', 10)).toThrow(/gru\.dropout/);
  });

  it('refuses a pool longer than the windows', async () => {
    const e = await rejection(cnnLstm.train(base(), cnnLstm.parseParams({ pool: 7, epochs: 1 }, 'binary', 60), { seed: 1 }));
    expect(e.code).toBe('MEDFIT_ERR_BAD_PARAM');
    expect(e.message).toMatch(/cnn-lstm\.pool/);
  });

  it('cancels through the signal and leaves no worker behind', async () => {
    const ac = new AbortController();
    const d = synth('binary', 2000, 32, 4, 2);
    const p = lstm.train(d, lstm.parseParams({ units: 64, epochs: 1000, patience: 1000 }, 'binary', 2000), {
      seed: 1,
      signal: ac.signal,
      onProgress: () => ac.abort(),
    });
    const e = await rejection(p);
    expect(e.code).toBe('MEDFIT_ERR_CANCELLED');
    expect(liveSeqWorkers()).toBe(0);
  });

  it('load refuses tampered or mismatched states, naming the problem', async () => {
    const d = synth('binary', 60, 6, 2, 1);
    const model = (await gru.train(d, gru.parseParams({ units: 3, epochs: 1 }, 'binary', 60), { seed: 1 })) as SeqNetModel;
    const good = () => JSON.parse(JSON.stringify(model.toState())) as ModelState & { weights: any; sequence: any };
    const refuse = (mutate: (s: ReturnType<typeof good>) => void, msg: RegExp, family: ModelFamily = gru) => {
      const s = good();
      mutate(s);
      let err: unknown;
      try {
        family.load(s);
      } catch (e) {
        err = e;
      }
      expect(err, String(msg)).toBeInstanceOf(MedfitError);
      expect((err as MedfitError).code).toBe('MEDFIT_ERR_MANIFEST');
      expect((err as MedfitError).message).toMatch(msg);
    };
    expect(gru.load(good()).predict(d.x).length).toBe(120);
    refuse(() => undefined, /state is for family gru, not lstm/, lstm);
    refuse((s) => (s.nClasses = 3), /outputs, the task needs 3/);
    refuse((s) => (s.nFeatures = 13), /nFeatures 13/);
    refuse((s) => delete s.sequence, /no sequence shape/);
    refuse((s) => (s.sequence.channelNames = ['a']), /channelNames/);
    refuse((s) => (s.sequence.steps = 4), /nFeatures 12 is not steps × channels = 8/);
    refuse((s) => (s.weights.layers[0].kernel[0] = 'x'), /not a finite number/);
    refuse((s) => (s.weights.layers[1].activation = 'linear'), /needs softmax/);
    refuse((s) => (s.weights.steps = 3), /the weights take 3 steps/);
    refuse((s) => (s.task = 'regression'), /nClasses 2 does not fit task regression/);
  });

  it('predict refuses windows of the wrong width or with non-finite values', async () => {
    const d = synth('binary', 60, 6, 2, 1);
    const model = (await cnn.train(d, cnn.parseParams({ filters: 3, epochs: 1 }, 'binary', 60), { seed: 1 }));
    expect(() => model.predict(matrix(2, 11))).toThrow(/6 steps × 2 channels = 12 values per row, got 11/);
    const x = matrix(2, 12);
    x.data[15] = Infinity;
    expect(() => model.predict(x)).toThrow(/window 1 holds a non-finite value at step 1, channel c1/);
  });
});
