/**
 * ONNX parity of the calibrators: a tiny graph (FP32 probabilities [N, K] → calibrator → FP32
 * [N, K]) run by onnxruntime-node agrees with `ProbabilityCalibrator.apply` within 1e-6, on inputs
 * inside and outside the fitted range and exactly at isotonic thresholds. Inputs are float32
 * values, so both sides see the same numbers; the graph computes in double between FP32 ends.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../core/index.js';
import { IsotonicCalibrator, ProbabilityCalibrator, type CalibrationMethod, type CalibratorInput, type OnnxGraphParts } from './index.js';

const { onnx } = onnxProto;

/** A model of the calibrator alone: `raw` [N, K] FP32 → `probabilities` [N, K] FP32, opset 17. */
function calibratorModel(cal: ProbabilityCalibrator): Uint8Array {
  const parts: OnnxGraphParts = { nodes: [], initializers: [] };
  cal.appendOnnx(parts, 'raw', 'probabilities');
  const io = (name: string): OnnxTypes.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'N' }, { dimValue: cal.nClasses }] } } },
  });
  const model: OnnxTypes.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'medfit-test',
    graph: { name: 'calibrator', node: parts.nodes, initializer: parts.initializers, input: [io('raw')], output: [io('probabilities')] },
  };
  const err = onnx.ModelProto.verify(model);
  if (err) throw new Error(err);
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

async function run(cal: ProbabilityCalibrator, proba: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(calibratorModel(cal), { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  sessions.push(s);
  const k = cal.nClasses;
  const out = await s.run({ raw: new ort.Tensor('float32', proba, [proba.length / k, k]) });
  return out.probabilities!.data as Float32Array;
}

/** Seeded probabilities (float32 values), `rows × k`, rows summing to ~1, with a signal in `y`. */
function sample(rows: number, k: number, seed: number, sharpness: number): { proba: Float32Array; y: Float64Array } {
  const rng = new Rng(seed);
  const proba = new Float32Array(rows * k);
  const y = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const cls = rng.int(k);
    y[i] = cls;
    const z = Array.from({ length: k }, (_, j) => sharpness * (rng.normal() + (j === cls ? 1 : 0)));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    for (let j = 0; j < k; j++) proba[i * k + j] = e[j]! / sum;
  }
  return { proba, y };
}

/** Query rows: every fitted row, the isotonic thresholds, extremes (0, 1, tiny) and a grid. */
function queries(cal: ProbabilityCalibrator, fitted: Float32Array): Float32Array {
  const k = cal.nClasses;
  const cols: number[][] = Array.from({ length: k }, () => []);
  const special = [0, 1, 1e-30, 1e-7, 0.5, 1 - 1e-7, 0.999, 0.001];
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < fitted.length / k; i++) cols[j]!.push(fitted[i * k + j]!);
    cols[j]!.push(...special);
    for (let g = 0; g <= 100; g++) cols[j]!.push(g / 100);
  }
  cal.calibrators.forEach((c, i) => {
    if (c instanceof IsotonicCalibrator && cal.input === 'probability') {
      const col = k === 2 ? 1 : i;
      // Exactly at thresholds (they are fitted scores, so float32 values) and just beside them.
      for (const x of c.x) cols[col]!.push(x, Math.fround(x * (1 + 1e-6)), Math.fround(x * (1 - 1e-6)));
    }
  });
  const rows = Math.max(...cols.map((c) => c.length));
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = cols[j]![i % cols[j]!.length]!;
  return out;
}

const figures: Record<string, number> = {};
afterAll(() => {
  console.log('max |ORT - apply|:', JSON.stringify(figures));
});

describe('calibrator ONNX parity with onnxruntime-node', () => {
  const cases: Array<[CalibrationMethod, CalibratorInput, number]> = [
    ['platt', 'probability', 2],
    ['platt', 'logit', 2],
    ['isotonic', 'probability', 2],
    ['isotonic', 'logit', 2],
    ['platt', 'probability', 3],
    ['isotonic', 'probability', 3],
    ['isotonic', 'logit', 4],
  ];
  for (const [method, input, k] of cases) {
    it(`${method} on the ${input}, ${k} classes`, async () => {
      const { proba, y } = sample(300, k, 7 + k, 0.6);
      const cal = ProbabilityCalibrator.fit(Float64Array.from(proba), y, k, { method, input });
      const q = queries(cal, proba);
      const got = await run(cal, q);
      const want = cal.apply(Float64Array.from(q));
      expect(got.length).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        expect(Number.isFinite(got[i]!), `row ${Math.floor(i / k)}`).toBe(true);
        worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      }
      figures[`${method}/${input}/${k}`] = worst;
      expect(worst).toBeLessThan(1e-6);
    });
  }

  it('a one-threshold isotonic calibrator and an all-zero multiclass row', async () => {
    // Every score equal in each class: constant calibrators.
    const proba = Float64Array.from([0.2, 0.3, 0.5, 0.2, 0.3, 0.5, 0.2, 0.3, 0.5]);
    const cal = ProbabilityCalibrator.fit(proba, Float64Array.from([0, 1, 2]), 3, { method: 'isotonic' });
    const q = Float32Array.from([0, 0, 0, 1, 1, 1, 0.2, 0.9, 0.1]);
    const got = await run(cal, q);
    const want = cal.apply(Float64Array.from(q));
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-7);
    // A calibrator that maps everything to 0 makes the row uniform, in both.
    const zero = ProbabilityCalibrator.fromJSON({ ...cal.toJSON(), calibrators: [0, 1, 2].map(() => ({ x: [0.5], y: [0] })) });
    const z = await run(zero, Float32Array.from([0.2, 0.3, 0.5]));
    expect(Array.from(z)).toEqual([1 / 3, 1 / 3, 1 / 3].map(Math.fround));
    expect(Array.from(zero.apply(Float64Array.from([0.2, 0.3, 0.5])))).toEqual([1 / 3, 1 / 3, 1 / 3]);
  });
});
