/**
 * Multi-output regression in ONNX: every table family that learns several outputs at once exports
 * `value` [N, nOutputs], and ONNX Runtime computes what the model's own `predict` does.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/index.js';
import { gbdt } from '../gbdt/index.js';
import { linear } from '../linear/index.js';
import { mlp } from '../mlp/index.js';
import type { ModelFamily, ModelState, TrainData } from '../types.js';
import { decodeOnnx, onnxSignature, toOnnx } from './index.js';

const NF = 6;
const K = 3;

/** Three regression targets per row; features rounded to float32 so both sides see the same input. */
function synth(rows: number, seed: number): TrainData {
  const rng = new Rng(seed);
  const x = new Float64Array(rows * NF);
  const y = new Float64Array(rows * K);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < NF; j++) x[i * NF + j] = Math.fround(rng.normal());
    const r = x.subarray(i * NF, (i + 1) * NF);
    y[i * K] = 3 * (r[0]! + 0.8 * r[1]!) + 0.3 * rng.normal();
    y[i * K + 1] = 10 + 4 * Math.sin(2 * r[3]!) - r[2]! + 0.2 * rng.normal();
    y[i * K + 2] = r[4]! * r[5]! + 0.1 * rng.normal();
  }
  return { x: { rows, cols: NF, data: x }, y, task: 'regression', nClasses: 1, nOutputs: K };
}

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

const deltas: Record<string, number> = {};
afterAll(() => {
  console.log('max |ORT - medfit| with 3 outputs:', JSON.stringify(deltas));
});

const CASES: { family: ModelFamily; params: Record<string, unknown> }[] = [
  { family: linear, params: {} },
  { family: gbdt, params: { trees: 80, early_stopping_rounds: 0, learning_rate: 0.1, subsample: 0.8 } },
  { family: mlp, params: { epochs: 5, units: '16,8' } },
];

describe('multi-output regression in onnxruntime-node', () => {
  for (const c of CASES) {
    it(`${c.family.name}: value [N, 3] matches predict`, async () => {
      const train = synth(400, 31);
      const test = synth(300, 32);
      if (c.family === gbdt) for (let i = 0; i < test.x.data.length; i += 17) test.x.data[i] = NaN;
      const model = await c.family.train(train, c.family.parseParams(c.params, 'regression', 400), { seed: 3 });
      expect(model.nOutputs).toBe(K);
      const sig = onnxSignature(model);
      expect(sig.outputs).toEqual([{ name: 'value', datatype: 'FP32', shape: [-1, K] }]);
      const bytes = toOnnx(model);
      const decoded = decodeOnnx(bytes);
      const dims = decoded.graph!.output![0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
      expect(dims).toEqual(['N', K]);
      if (c.family === gbdt) {
        const ens = decoded.graph!.node!.find((n) => n.opType === 'TreeEnsembleRegressor')!;
        const a = (name: string) => ens.attribute!.find((x) => x.name === name)!;
        expect(Number(a('n_targets').i)).toBe(K);
        expect(new Set(a('target_ids').ints!.map(Number))).toEqual(new Set([0, 1, 2]));
      }
      const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
      sessions.push(s);
      const want = model.predict(test.x);
      let worst = 0;
      // One row, then the rest in one batch.
      for (const [from, to] of [[0, 1], [1, test.x.rows]] as const) {
        const feed = Float32Array.from(test.x.data.subarray(from * NF, to * NF));
        const out = await s.run({ input: new ort.Tensor('float32', feed, [to - from, NF]) });
        const t = out['value']!;
        expect(t.dims).toEqual([to - from, K]);
        const got = t.data as Float32Array;
        for (let i = 0; i < got.length; i++) {
          const w = want[from * K + i]!;
          expect(Number.isFinite(got[i]!)).toBe(true);
          worst = Math.max(worst, Math.abs(got[i]! - w));
        }
      }
      deltas[c.family.name] = worst;
      expect(worst).toBeLessThan(1e-5);
      const again = c.family.load(JSON.parse(JSON.stringify(model.toState())) as ModelState);
      expect(Buffer.from(toOnnx(again)).equals(Buffer.from(bytes))).toBe(true);
    });
  }
});
