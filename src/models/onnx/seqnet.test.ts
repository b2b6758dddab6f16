import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng, type Matrix, type Task } from '../../core/index.js';
import { gbdt, type GbdtWeights } from '../gbdt/index.js';
import { seqnetForward } from '../seqnet/forward.js';
import type { SeqLayer, SeqNetWeights } from '../seqnet/weights.js';
import type { Family, ModelState, TrainedModel } from '../types.js';
import { decodeOnnx, encodeOnnxModel, onnxSignature, parseUntrustedOnnx, toOnnx } from './index.js';
import { attr, DataType, encodeModel, floatTensor, node, valueInfo } from './proto.js';

/**
 * Random weights of the right shapes, rounded to float32 up front so the reference (float64) and
 * ONNX Runtime (float32) start from the same numbers: any difference is then the graph's.
 */
class Weights {
  private readonly rng: Rng;
  constructor(seed: number, private readonly scale = 0.5) {
    this.rng = new Rng(seed);
  }
  values(n: number, scale = this.scale): number[] {
    return Array.from({ length: n }, () => Math.fround(scale * this.rng.normal()));
  }
  conv(inChannels: number, filters: number, kernelSize: number, activation: 'relu' | 'linear' = 'relu'): SeqLayer {
    return { type: 'conv1d', inChannels, filters, kernelSize, kernel: this.values(kernelSize * inChannels * filters), bias: this.values(filters, 0.2), activation, padding: 'same' };
  }
  lstm(inputSize: number, units: number, returnSequences = false): SeqLayer {
    return { type: 'lstm', inputSize, units, kernel: this.values(inputSize * 4 * units), recurrentKernel: this.values(units * 4 * units), bias: this.values(4 * units, 0.3), returnSequences };
  }
  gru(inputSize: number, units: number, returnSequences = false): SeqLayer {
    return { type: 'gru', inputSize, units, kernel: this.values(inputSize * 3 * units), recurrentKernel: this.values(units * 3 * units), bias: this.values(2 * 3 * units, 0.3), returnSequences };
  }
  dense(inputSize: number, units: number, activation: 'linear' | 'relu' | 'softmax'): SeqLayer {
    return { type: 'dense', inputSize, units, kernel: this.values(inputSize * units), bias: this.values(units, 0.2), activation };
  }
}

/** `rows` windows of `steps × channels`, flattened step-major, float32 values. */
function windows(rows: number, steps: number, channels: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float64Array(rows * steps * channels);
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(1.5 * rng.normal());
  return { rows, cols: steps * channels, data };
}

/** A trained model around hand-made weights, predicting with the reference forward pass. */
function seqModel(family: Family, task: Task, w: SeqNetWeights, nOutputs?: number): TrainedModel {
  const last = w.layers[w.layers.length - 1] as Extract<SeqLayer, { type: 'dense' }>;
  const nClasses = task === 'regression' ? 1 : last.units;
  const sequence = { steps: w.steps, channels: w.channels, rate: 50, channelNames: Array.from({ length: w.channels }, (_, c) => `c${c}`) };
  const state: ModelState = { family, task, nClasses, nFeatures: w.steps * w.channels, params: {}, weights: w, sequence, ...(nOutputs !== undefined ? { nOutputs } : {}) };
  return {
    family,
    task,
    nClasses,
    nFeatures: state.nFeatures,
    params: {},
    sequence,
    ...(nOutputs !== undefined ? { nOutputs } : {}),
    predict: (x: Matrix) => seqnetForward(w, x),
    toState: () => JSON.parse(JSON.stringify(state)) as ModelState,
  };
}

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  sessions.push(s);
  return s;
}

/** Runs windows [from, to) of `x` (shape [rows, steps, channels]) through the session. */
async function runOrt(s: ort.InferenceSession, x: Matrix, steps: number, from: number, to: number): Promise<ort.Tensor> {
  const feed = Float32Array.from(x.data.subarray(from * x.cols, to * x.cols));
  const out = await s.run({ input: new ort.Tensor('float32', feed, [to - from, steps, x.cols / steps]) });
  return out[s.outputNames[0]!]!;
}

/** Max |ORT − reference| over `x`, run as one batch and as batches of 1 for the first rows. */
async function maxDelta(model: TrainedModel, x: Matrix): Promise<number> {
  const bytes = toOnnx(model);
  const s = await session(bytes);
  const sig = onnxSignature(model);
  expect(s.inputNames).toEqual([sig.inputs[0]!.name]);
  expect(s.outputNames).toEqual([sig.outputs[0]!.name]);
  const steps = model.sequence!.steps;
  const want = model.predict(x);
  const cols = sig.outputs[0]!.shape[1]!;
  expect(want.length).toBe(x.rows * cols);
  let worst = 0;
  const check = (got: ort.Tensor, from: number) => {
    const data = got.data as Float32Array;
    expect(got.dims).toEqual([data.length / cols, cols]);
    for (let i = 0; i < data.length; i++) {
      expect(Number.isFinite(data[i]!)).toBe(true);
      worst = Math.max(worst, Math.abs(data[i]! - want[from * cols + i]!));
    }
  };
  check(await runOrt(s, x, steps, 0, x.rows), 0);
  for (let r = 0; r < 3; r++) check(await runOrt(s, x, steps, r, r + 1), r);
  // The export depends on the state alone: the same bytes from a JSON round trip.
  const again = { ...model, toState: () => JSON.parse(JSON.stringify(model.toState())) as ModelState };
  expect(Buffer.from(toOnnx(again)).equals(Buffer.from(bytes))).toBe(true);
  return worst;
}

const deltas: Record<string, number> = {};
afterAll(() => {
  // Reported for the record (the lead asked for the figures); the assertions are in each test.
  console.log('max |ORT - seqnetForward|:', JSON.stringify(deltas));
});

const TOL = 1e-4;

interface Case {
  name: string;
  family: Family;
  task: Task;
  nOutputs?: number;
  build: (g: Weights) => SeqNetWeights;
}

/** One network per layer kind and option, each as small as it can be around that layer. */
const LAYER_CASES: Case[] = [
  { name: 'conv1d odd kernel, relu', family: 'cnn', task: 'regression', build: (g) => ({ steps: 12, channels: 3, layers: [g.conv(3, 5, 3), { type: 'globalavgpool1d' }, g.dense(5, 1, 'linear')] }) },
  // An even kernel pads one more step on the right than on the left (Keras 'same').
  { name: 'conv1d even kernel, linear', family: 'cnn', task: 'regression', build: (g) => ({ steps: 11, channels: 2, layers: [g.conv(2, 4, 4, 'linear'), { type: 'globalavgpool1d' }, g.dense(4, 1, 'linear')] }) },
  { name: 'conv1d kernel 1', family: 'cnn', task: 'regression', build: (g) => ({ steps: 7, channels: 2, layers: [g.conv(2, 3, 1), { type: 'globalavgpool1d' }, g.dense(3, 1, 'linear')] }) },
  // 13 steps pooled by 3: the last step is dropped (floor).
  { name: 'maxpool1d', family: 'cnn', task: 'regression', build: (g) => ({ steps: 13, channels: 2, layers: [g.conv(2, 3, 3, 'linear'), { type: 'maxpool1d', pool: 3 }, { type: 'globalavgpool1d' }, g.dense(3, 1, 'linear')] }) },
  { name: 'maxpool1d on the input', family: 'cnn', task: 'regression', build: (g) => ({ steps: 10, channels: 3, layers: [{ type: 'maxpool1d', pool: 2 }, { type: 'globalavgpool1d' }, g.dense(3, 1, 'linear')] }) },
  { name: 'lstm last step', family: 'lstm', task: 'regression', build: (g) => ({ steps: 9, channels: 3, layers: [g.lstm(3, 4), g.dense(4, 1, 'linear')] }) },
  { name: 'lstm sequences', family: 'lstm', task: 'regression', build: (g) => ({ steps: 9, channels: 3, layers: [g.lstm(3, 4, true), { type: 'globalavgpool1d' }, g.dense(4, 1, 'linear')] }) },
  { name: 'gru last step', family: 'gru', task: 'regression', build: (g) => ({ steps: 9, channels: 3, layers: [g.gru(3, 4), g.dense(4, 1, 'linear')] }) },
  { name: 'gru sequences', family: 'gru', task: 'regression', build: (g) => ({ steps: 9, channels: 3, layers: [g.gru(3, 4, true), { type: 'globalavgpool1d' }, g.dense(4, 1, 'linear')] }) },
  { name: 'globalavgpool1d on the input', family: 'cnn', task: 'regression', build: (g) => ({ steps: 6, channels: 4, layers: [{ type: 'globalavgpool1d' }, g.dense(4, 1, 'linear')] }) },
  { name: 'dense relu and linear hidden', family: 'cnn', task: 'multiclass', build: (g) => ({ steps: 5, channels: 3, layers: [{ type: 'globalavgpool1d' }, g.dense(3, 6, 'relu'), g.dense(6, 4, 'linear'), g.dense(4, 3, 'softmax')] }) },
];

/** The four architectures as the trainers build them. */
const ARCH_CASES: Case[] = [
  { name: 'lstm 1 layer, binary', family: 'lstm', task: 'binary', build: (g) => ({ steps: 32, channels: 3, layers: [g.lstm(3, 16), g.dense(16, 2, 'softmax')] }) },
  {
    name: 'lstm 2 layers, multiclass',
    family: 'lstm',
    task: 'multiclass',
    build: (g) => ({ steps: 32, channels: 6, layers: [g.lstm(6, 16, true), g.lstm(16, 8), g.dense(8, 8, 'relu'), g.dense(8, 5, 'softmax')] }),
  },
  { name: 'gru, regression', family: 'gru', task: 'regression', build: (g) => ({ steps: 40, channels: 3, layers: [g.gru(3, 12), g.dense(12, 1, 'linear')] }) },
  {
    name: 'cnn 2 layers, multiclass',
    family: 'cnn',
    task: 'multiclass',
    build: (g) => ({ steps: 50, channels: 3, layers: [g.conv(3, 16, 5), g.conv(16, 8, 3), { type: 'globalavgpool1d' }, g.dense(8, 4, 'softmax')] }),
  },
  {
    name: 'cnn-lstm with pooling, binary',
    family: 'cnn-lstm',
    task: 'binary',
    build: (g) => ({ steps: 64, channels: 3, layers: [g.conv(3, 8, 5), { type: 'maxpool1d', pool: 2 }, g.conv(8, 8, 3), { type: 'maxpool1d', pool: 2 }, g.lstm(8, 12), g.dense(12, 2, 'softmax')] }),
  },
  {
    name: 'cnn-lstm, 2 regression outputs',
    family: 'cnn-lstm',
    task: 'regression',
    nOutputs: 2,
    build: (g) => ({ steps: 30, channels: 4, layers: [g.conv(4, 6, 3), { type: 'maxpool1d', pool: 3 }, g.gru(6, 8, true), g.lstm(8, 6), g.dense(6, 2, 'linear')] }),
  },
];

describe('sequence networks in onnxruntime-node match seqnetForward', () => {
  for (const [group, cases] of [
    ['layer', LAYER_CASES],
    ['architecture', ARCH_CASES],
  ] as const) {
    cases.forEach((c, i) => {
      it(`${group}: ${c.name}`, async () => {
        const w = c.build(new Weights(100 + i));
        const model = seqModel(c.family, c.task, w, c.nOutputs);
        const d = await maxDelta(model, windows(37, w.steps, w.channels, 200 + i));
        deltas[`${group}/${c.name}`] = d;
        expect(d).toBeLessThan(TOL);
      });
    });
  }
});

describe('sequence network export details', () => {
  const arch = (name: string) => ARCH_CASES.find((c) => c.name.startsWith(name))!;
  const build = (c: Case) => seqModel(c.family, c.task, c.build(new Weights(7)), c.nOutputs);

  it('runs a batch of 1 and a batch of 1,024 windows', async () => {
    for (const c of [arch('lstm 2'), arch('gru'), arch('cnn-lstm with')]) {
      const model = build(c);
      const steps = model.sequence!.steps;
      const x = windows(1024, steps, model.sequence!.channels, 5);
      const s = await session(toOnnx(model));
      const want = model.predict(x);
      const one = await runOrt(s, x, steps, 1023, 1024);
      const all = await runOrt(s, x, steps, 0, 1024);
      const cols = want.length / 1024;
      expect(one.dims).toEqual([1, cols]);
      expect(all.dims).toEqual([1024, cols]);
      const a = all.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - want[i]!));
      for (let j = 0; j < cols; j++) worst = Math.max(worst, Math.abs((one.data as Float32Array)[j]! - want[1023 * cols + j]!));
      expect(worst).toBeLessThan(TOL);
    }
  });

  it("passes medfit's own upload validator, LSTM and GRU included, and round-trips byte for byte", () => {
    for (const c of ARCH_CASES) {
      const bytes = toOnnx(build(c));
      const checked = parseUntrustedOnnx(bytes);
      expect(Buffer.from(encodeOnnxModel(checked)).equals(Buffer.from(bytes))).toBe(true);
    }
    const ops = new Set(ARCH_CASES.flatMap((c) => decodeOnnx(toOnnx(build(c))).graph!.node!.map((n) => n.opType)));
    expect([...ops].sort()).toEqual(expect.arrayContaining(['Conv', 'GRU', 'LSTM', 'MaxPool', 'Transpose']));
  });

  it('describes [N, steps, channels] in and [N, classes] or [N, outputs] out, in the graph and the signature', () => {
    const lstm = build(arch('lstm 2'));
    expect(onnxSignature(lstm)).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 32, 6] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 5] }],
    });
    const reg = build(arch('cnn-lstm, 2'));
    expect(onnxSignature(reg)).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 30, 4] }],
      outputs: [{ name: 'value', datatype: 'FP32', shape: [-1, 2] }],
    });
    expect(onnxSignature({ task: 'regression', nFeatures: 1, nClasses: 1, nOutputs: 3, sequence: { steps: 8, channels: 2 } }).outputs[0]!.shape).toEqual([-1, 3]);
    const dims = (v: { type?: { tensorType?: { shape?: { dim?: { dimParam?: string | null; dimValue?: unknown }[] | null } | null } | null } | null }) =>
      v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    const m = decodeOnnx(toOnnx(reg));
    expect(dims(m.graph!.input![0]!)).toEqual(['N', 30, 4]);
    expect(dims(m.graph!.output![0]!)).toEqual(['N', 2]);
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(m.metadataProps!.find((p) => p.key === 'family')!.value).toBe('cnn-lstm');
  });

  it('refuses weights that do not hold together, or do not fit the task, in our words', () => {
    const g = new Weights(1);
    const wrong: SeqNetWeights = { steps: 8, channels: 3, layers: [g.lstm(4, 4), g.dense(4, 1, 'linear')] };
    expect(() => toOnnx(seqModel('lstm', 'regression', wrong))).toThrow(/inputSize is 4, but the previous layer gives 3/);
    const short: SeqNetWeights = { steps: 8, channels: 3, layers: [{ ...g.gru(3, 4), bias: [0] } as SeqLayer, g.dense(4, 1, 'linear')] };
    expect(() => toOnnx(seqModel('gru', 'regression', short))).toThrow(/bias must hold 24 numbers, has 1/);
    const seqToDense: SeqNetWeights = { steps: 8, channels: 3, layers: [g.lstm(3, 4, true), g.dense(4, 1, 'linear')] };
    expect(() => toOnnx(seqModel('lstm', 'regression', seqToDense))).toThrow(/needs a vector/);
    const softmaxRegression: SeqNetWeights = { steps: 8, channels: 3, layers: [g.lstm(3, 4), g.dense(4, 2, 'softmax')] };
    expect(() => toOnnx(seqModel('lstm', 'regression', softmaxRegression))).toThrow(/must end in a linear dense layer/);
  });

  it('ONNX Runtime refuses batch-first recurrent layers (layout = 1), so the graph transposes to time-major', async () => {
    // If this starts failing, a newer ONNX Runtime runs layout = 1 and the Transposes around the
    // recurrent layers could go.
    for (const [op, gates] of [
      ['LSTM', 4],
      ['GRU', 3],
    ] as const) {
      const u = 2;
      const parts = {
        nodes: [node(op, ['input', 'W', 'R'], ['Y'], [attr.int('hidden_size', u), attr.int('layout', 1)])],
        initializers: [floatTensor('W', [1, gates * u, 3], new Array<number>(gates * u * 3).fill(0.1)), floatTensor('R', [1, gates * u, u], new Array<number>(gates * u * u).fill(0.1))],
      };
      const bytes = encodeModel({
        name: 'batch_first',
        parts,
        inputs: [valueInfo('input', DataType.FLOAT, ['N', 5, 3])],
        outputs: [valueInfo('Y', DataType.FLOAT, ['N', 5, 1, u])],
        producerVersion: '0',
      });
      await expect(ort.InferenceSession.create(bytes, { logSeverityLevel: 4 })).rejects.toThrow(/layout == 1\) are not supported/);
    }
  });
});

describe('window-gbdt export', () => {
  it('is the GBDT graph over the window features, FP32 [N, nFeatures]', async () => {
    const names = ['ax_mean', 'ax_std', 'ay_mean', 'mag_max'];
    const g: GbdtWeights = {
      format: 1,
      objective: 'softmax',
      baseScore: [0.1, -0.2, 0.05],
      rounds: 1,
      trees: [
        { target: 0, feature: [0, -1, -1], threshold: [0.25, 0, 0], left: [1, -1, -1], right: [2, -1, -1], value: [0, 0.5, -0.5] },
        { target: 1, feature: [3, -1, -1], threshold: [-0.5, 0, 0], left: [1, -1, -1], right: [2, -1, -1], value: [0, -0.25, 0.75] },
        { target: 2, feature: [1, -1, 2, -1, -1], threshold: [0, 0, 1, 0, 0], left: [1, -1, 3, -1, -1], right: [2, -1, 4, -1, -1], value: [0, 0.3, 0, 0.1, -0.4] },
      ],
    };
    const inner = gbdt.load({ family: 'gbdt', task: 'multiclass', nClasses: 3, nFeatures: names.length, params: {}, weights: g });
    const sequence = { steps: 100, channels: 3, rate: 50, channelNames: ['ax', 'ay', 'az'] };
    const state: ModelState = { family: 'window-gbdt', task: 'multiclass', nClasses: 3, nFeatures: 300, params: {}, weights: { gbdt: g, features: { names } }, sequence };
    const model: TrainedModel = { family: 'window-gbdt', task: 'multiclass', nClasses: 3, nFeatures: 300, params: {}, sequence, predict: () => new Float64Array(0), toState: () => state };
    expect(onnxSignature(model)).toEqual({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }],
    });
    const s = await session(toOnnx(model));
    const feats = windows(50, 1, names.length, 9);
    const out = await s.run({ input: new ort.Tensor('float32', Float32Array.from(feats.data), [50, names.length]) });
    const got = out.probabilities!.data as Float32Array;
    const want = inner.predict(feats);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    deltas['window-gbdt'] = worst;
    expect(worst).toBeLessThan(1e-6);
  });
});
