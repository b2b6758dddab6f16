/**
 * ONNX Runtime sessions whose input is windows, FP32 [-1, steps, channels] (the sequence
 * networks' graphs): loaded, checked against their metadata, micro-batched like table models.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { A, encode, floats, int64s, model, node, vi } from '../../test/onnx-builders.js';
import { rejection } from '../../test/helpers.js';
import { loadRuntimeModel, type LoadedModel, type RuntimeSignature } from './index.js';

const STEPS = 4;
const CHANNELS = 3;

/** x [N, 4, 3] → Reshape [N, 12] → Gemm (12 → 2) → Softmax: a window classifier. */
function windowClassifier(inputDims: (number | string)[] = ['N', STEPS, CHANNELS]): Uint8Array {
  const w = Array.from({ length: STEPS * CHANNELS * 2 }, (_, i) => ((i % 5) - 2) / 4);
  return encode(
    model({
      name: 'windows',
      node: [
        node('Reshape', ['x', 'shape'], ['flat']),
        node('Gemm', ['flat', 'W', 'B'], ['logits']),
        node('Softmax', ['logits'], ['probabilities'], [{ name: 'axis', type: A.INT, i: -1 }]),
      ],
      initializer: [int64s('shape', [2], [0, STEPS * CHANNELS]), floats('W', [STEPS * CHANNELS, 2], w), floats('B', [2], [0.1, -0.1])],
      input: [vi('x', inputDims)],
      output: [vi('probabilities', ['N', 2])],
    }),
  );
}

const signature = (shape: number[] = [-1, STEPS, CHANNELS]): RuntimeSignature => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }],
});

const open: LoadedModel[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close();
});

describe('loadRuntimeModel with window input', () => {
  it('runs [rows, steps, channels] windows, batching concurrent requests', async () => {
    const m = await loadRuntimeModel(windowClassifier(), signature());
    open.push(m);
    expect(m.inputs[0]!.shape).toEqual([-1, STEPS, CHANNELS]);
    const x = Float32Array.from({ length: 2 * STEPS * CHANNELS }, (_, i) => Math.sin(i));
    const [a, b] = await Promise.all([m.infer(x.subarray(0, STEPS * CHANNELS), 1), m.infer(x, 2)]);
    expect(a![0]!.shape).toEqual([1, 2]);
    expect(b![0]!.shape).toEqual([2, 2]);
    // The same window gives the same answer alone and in a batch.
    expect(Array.from(a![0]!.data)).toEqual(Array.from(b![0]!.data.subarray(0, 2)));
    expect(b![0]!.data[2]! + b![0]!.data[3]!).toBeCloseTo(1, 6);
    expect(m.stats().runs).toBe(1);
    const wrong = await rejection(m.infer(new Float32Array(5), 1));
    expect(wrong.message).toMatch(/1 rows × 12 values \(4 × 3\)/);
  });

  it('refuses metadata that does not match the graph, in our words', async () => {
    const steps = await rejection(loadRuntimeModel(windowClassifier(), signature([-1, 6, 2])));
    expect(steps.code).toBe('MEDFIT_ERR_MANIFEST');
    expect(steps.message).toMatch(/dimension 1 of 4 in the graph, the metadata says 6/);
    const rank = await rejection(loadRuntimeModel(windowClassifier(), signature([-1, 12])));
    expect(rank.message).toMatch(/3 dimensions in the graph, the metadata says 2/);
    for (const shape of [[-1], [-1, 0, 3], [4, 4, 3], [-1, 2, 2, 3]]) {
      const bad = await rejection(loadRuntimeModel(windowClassifier(), signature(shape)));
      expect(bad.message).toMatch(/must be FP32 \[-1, nFeatures\] or \[-1, steps, channels\]/);
    }
  });
});
