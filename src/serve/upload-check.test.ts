import { describe, expect, it } from 'vitest';
import * as b from '../../test/onnx-builders.js';
import { rejection } from '../../test/helpers.js';
import type { UploadDeclaration } from '../registry/index.js';
import { checkUploadIsolated, loadRuntimeModel } from './index.js';

const decl: UploadDeclaration = { task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] };

/** Runs a check, collecting what it logged. */
async function check(bytes: Uint8Array, d = decl, limits = {}) {
  const logs: string[] = [];
  const result = checkUploadIsolated(bytes, d, { limits, log: (m) => logs.push(m) });
  return { result, logs };
}

/** No engine text, no server path: what a caller may read. */
function expectOurWords(message: string): void {
  expect(message).not.toMatch(/onnxruntime|\.cc:|\[ONNXRuntimeError\]|\/tmp\/|\/work\//i);
}

describe('checkUploadIsolated', () => {
  it('proves a valid model in a child process and returns the re-encoded model to store', async () => {
    const { result } = await check(b.classifier());
    const prepared = await result;
    expect(prepared.info.outputs).toEqual([{ name: 'probs', datatype: 'FP32', shape: [-1, 2] }]);
    const m = await loadRuntimeModel(prepared.onnx, prepared.info);
    try {
      const [out] = await m.infer(Float32Array.from([1, 2, 3]), 1);
      const want = b.classifierProbs([1, 2, 3]);
      for (let i = 0; i < 2; i++) expect(Math.abs(out!.data[i]! - want[i]!)).toBeLessThan(1e-6);
    } finally {
      await m.close();
    }
  });

  it("refuses a model ONNX Runtime cannot load, in our words; ONNX Runtime's go to the log", async () => {
    const m = b.model(b.classifierGraph());
    m.graph!.node!.push(b.node('NoSuchOperator', ['probs'], ['q']));
    const { result, logs } = await check(b.encode(m));
    const e = await rejection(result);
    expect(e.status).toBe(422);
    expect(e.message).toBe('/onnx: ONNX Runtime cannot load the model; check that it loads in ONNX Runtime 1.30 (its message is in the server log)');
    expectOurWords(e.message);
    expect(logs.join('\n')).toMatch(/NoSuchOperator/);
  });

  it('refuses a model whose output width on one row of zeros is not the declared one', async () => {
    // No shape in the graph's output, so only running it tells: 2 columns, 3 classes declared.
    const m = b.model(b.classifierGraph());
    m.graph!.output = [{ name: 'probs', type: { tensorType: { elemType: 1 } } }];
    const { result } = await check(b.encode(m), { task: 'multiclass', features: ['a', 'b', 'c'], classes: ['p', 'q', 'r'] });
    expect((await rejection(result)).message).toBe('/onnx: the model returns 2 value(s) per row, the declaration implies 3');
  });

  it('refuses a model that fails on one row of zeros', async () => {
    const m = b.model(b.classifierGraph());
    m.graph!.initializer!.push(b.int64s('shape', [2], [-1, 3]));
    m.graph!.node!.push(b.node('Reshape', ['probs', 'shape'], ['bad']));
    m.graph!.output = [{ name: 'bad', type: { tensorType: { elemType: 1 } } }];
    const { result, logs } = await check(b.encode(m), { task: 'multiclass', features: ['a', 'b', 'c'], classes: ['p', 'q', 'r'] });
    const e = await rejection(result);
    expect(e.message).toBe("/onnx: the model fails on one row of 3 zeros (ONNX Runtime's message is in the server log)");
    expect(logs.join('\n')).toMatch(/Reshape/);
  });

  it('refuses a model that answers one row but fails on the 1,024 the server may run at once', async () => {
    // Reshaped to exactly one row: fine for a single record, broken for any batch.
    const m = b.model(b.classifierGraph());
    m.graph!.initializer!.push(b.int64s('one_row', [2], [1, 2]));
    m.graph!.node!.push(b.node('Reshape', ['probs', 'one_row'], ['single']));
    m.graph!.output = [{ name: 'single', type: { tensorType: { elemType: 1 } } }];
    const e = await rejection((await check(b.encode(m))).result);
    expect(e.message).toBe("/onnx: the model fails on 1024 rows of 3 zeros (ONNX Runtime's message is in the server log)");
  });

  it('stops a model that runs past the time limit', async () => {
    const t0 = performance.now();
    const { result } = await check(b.hanging(), decl, { timeoutMs: 3000 });
    const e = await rejection(result);
    expect(e.status).toBe(422);
    expect(e.message).toBe('/onnx: loading and running the model took longer than the limit of 3 s; it was stopped');
    expect(performance.now() - t0).toBeLessThan(10_000);
  }, 20_000);

  it('stops a model that uses more memory than the limit, and lets the same model through under a higher one', async () => {
    // Folded when ONNX Runtime loads it: about twice its size at the peak. No larger than it must
    // be: the check also refuses a model that takes over 2 s to load, which a loaded 2-core
    // machine (the suite's browser tests beside it) came near with 200 MB.
    const hog = b.memoryHog(140);
    const { result } = await check(hog, decl, { memoryBytes: 200 * 1024 * 1024 });
    expect((await rejection(result)).message).toBe('/onnx: loading and running the model used more memory than the limit of 200 MiB; it was stopped');
    const roomy = await check(hog, decl, { memoryBytes: 1024 * 1024 * 1024 });
    expect((await roomy.result).info.outputs[0]!.shape).toEqual([-1, 2]);
  }, 30_000);

  it('refuses hostile files in this process when they are small, and in the child when they are not', async () => {
    const small = await rejection((await check(b.exfiltrator('package.json'), { task: 'multiclass', features: ['a'], classes: ['1', '2', '3', '4'] })).result);
    expect(small.message).toMatch(/^\/onnx: external data in graph "exfil" › node "Constant_secret" › attribute "value"/);
    // Past the in-process size limit: the same refusal comes from the child.
    const padded = b.model(b.classifierGraph());
    padded.graph!.initializer!.push(b.external('stolen', [2], 'package.json'));
    padded.docString = 'x'.repeat(1100 * 1024);
    const big = await rejection((await check(b.encode(padded))).result);
    expect(big.message).toMatch(/^\/onnx: external data in graph "tiny" › initializer "stolen"/);
    expectOurWords(big.message);
  });
});
