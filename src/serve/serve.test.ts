import { afterEach, describe, expect, it } from 'vitest';
import { rejection } from '../../test/helpers.js';
import * as b from '../../test/onnx-builders.js';
import { MedfitError, Rng } from '../core/index.js';
import { getFamily, onnxSignature, toOnnx, type ModelState, type TrainedModel } from '../models/index.js';
import { loadRuntimeModel, ModelCache, type LoadedModel, type RuntimeModel } from './index.js';

/** A breast-cancer-sized MLP (30 → 16 → 8 → 2) with seeded random weights: no training needed. */
function randomMlp(nFeatures = 30, units = [16, 8], nClasses = 2, seed = 1): TrainedModel {
  const rng = new Rng(seed);
  const dims = [nFeatures, ...units, nClasses];
  const layers = dims.slice(1).map((outDim, i) => ({
    inDim: dims[i]!,
    outDim,
    kernel: Array.from({ length: dims[i]! * outDim }, () => rng.normal() / Math.sqrt(dims[i]!)),
    bias: Array.from({ length: outDim }, () => 0.1 * rng.normal()),
    activation: i === units.length ? 'softmax' : 'relu',
  }));
  const state: ModelState = { family: 'mlp', task: nClasses > 1 ? 'multiclass' : 'regression', nClasses, nFeatures, params: {}, weights: { layers } };
  if (nClasses === 2) state.task = 'binary';
  return getFamily('mlp').load(state);
}

function features(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * cols }, () => rng.normal());
}

const open: LoadedModel[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close();
});

async function load(model: TrainedModel, options = {}): Promise<LoadedModel> {
  const m = await loadRuntimeModel(toOnnx(model), onnxSignature(model), options);
  open.push(m);
  return m;
}


describe('loadRuntimeModel', () => {
  it('answers with the model’s numbers, names and shapes', async () => {
    const model = randomMlp();
    const m = await load(model);
    expect(m.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 30] }]);
    expect(m.outputs).toEqual([{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }]);
    const x = features(5, 30, 2);
    const [out] = await m.infer(x, 5);
    expect(out!.name).toBe('probabilities');
    expect(out!.shape).toEqual([5, 2]);
    const want = model.predict({ rows: 5, cols: 30, data: Float64Array.from(x) });
    for (let i = 0; i < 10; i++) expect(Math.abs(out!.data[i]! - want[i]!)).toBeLessThan(1e-5);
  });

  it('refuses a feature array of the wrong size, naming expected and got', async () => {
    const m = await load(randomMlp());
    const e = await rejection(m.infer(new Float32Array(29), 1));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toContain('30');
    expect(e.message).toContain('got 29');
    expect((await rejection(m.infer(new Float32Array(30), 1.5))).code).toBe('MEDFIT_ERR_BAD_DATA');
    expect((await rejection(m.infer([0] as unknown as Float32Array, 1))).code).toBe('MEDFIT_ERR_BAD_DATA');
  });

  it('answers zero rows with empty outputs', async () => {
    const m = await load(randomMlp());
    const [out] = await m.infer(new Float32Array(0), 0);
    expect(out!.shape).toEqual([0, 2]);
    expect(m.stats().runs).toBe(0);
  });

  it('refuses bytes that are not a model, and metadata that does not fit the graph', async () => {
    const sig = onnxSignature({ task: 'binary', nFeatures: 30, nClasses: 2 });
    const garbage = await rejection(loadRuntimeModel(new Uint8Array([1, 2, 3]), sig));
    expect(garbage.code).toBe('MEDFIT_ERR_MANIFEST');
    // ONNX Runtime's own words (source paths and all) are the cause, for the log; never the message.
    expect(garbage.message).toBe('model.onnx: ONNX Runtime cannot load the model (its message is in the server log)');
    expect(String((garbage.cause as Error).message)).toMatch(/protobuf|parsing|load/i);
    const bytes = toOnnx(randomMlp());
    const wrongWidth = { ...sig, inputs: [{ ...sig.inputs[0]!, shape: [-1, 31] }] };
    expect((await rejection(loadRuntimeModel(bytes, wrongWidth))).message).toContain('31');
    const wrongName = { ...sig, outputs: [{ ...sig.outputs[0]!, name: 'value' }] };
    expect((await rejection(loadRuntimeModel(bytes, wrongName))).message).toContain('no output "value"');
    const wrongInput = { ...sig, inputs: [{ ...sig.inputs[0]!, name: 'x' }] };
    expect((await rejection(loadRuntimeModel(bytes, wrongInput))).code).toBe('MEDFIT_ERR_MANIFEST');
  });
});

describe('a run that fails in ONNX Runtime', () => {
  it("rejects with our message, and hands ONNX Runtime's to onEngineError for the log", async () => {
    // Reshapes 2 probabilities per row to rows of 3: loads, then fails at run time.
    const m = b.model(b.classifierGraph());
    m.graph!.initializer!.push(b.int64s('shape', [2], [-1, 3]));
    m.graph!.node!.push(b.node('Reshape', ['probs', 'shape'], ['bad']));
    m.graph!.output = [{ name: 'bad', type: { tensorType: { elemType: 1 } } }];
    const seen: unknown[] = [];
    const loaded = await loadRuntimeModel(b.encode(m), { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }], outputs: [{ name: 'bad', datatype: 'FP32', shape: [-1, 3] }] }, { onEngineError: (e) => seen.push(e) });
    open.push(loaded);
    const e = await rejection(loaded.infer(new Float32Array(3), 1));
    expect(e.code).toBe('MEDFIT_ERR_INTERNAL');
    expect(e.message).toBe('ONNX Runtime failed to run the model');
    expect(seen).toHaveLength(1);
    expect(String((seen[0] as Error).message)).toMatch(/Reshape/);
  });
});

describe('micro-batching', () => {
  it('merges 50 concurrent requests into far fewer runs, with the same answers as one by one', async () => {
    const model = randomMlp();
    const m = await load(model);
    const xs = Array.from({ length: 50 }, (_, i) => features(1 + (i % 3), 30, 100 + i));
    const alone: Float32Array[] = [];
    for (const x of xs) alone.push((await m.infer(x, x.length / 30))[0]!.data);
    expect(m.stats().runs).toBe(50);
    const together = await Promise.all(xs.map((x) => m.infer(x, x.length / 30)));
    const s = m.stats();
    expect(s.runs - 50).toBeLessThanOrEqual(2);
    expect(s.maxBatchRequests).toBeGreaterThanOrEqual(25);
    expect(s.requests).toBe(100);
    together.forEach((outs, i) => {
      expect(outs[0]!.shape).toEqual([xs[i]!.length / 30, 2]);
      // Same rows, same graph: batching must not change a single bit beyond MLAS's kernel choice.
      const a = alone[i]!;
      const b = outs[0]!.data;
      expect(b.length).toBe(a.length);
      for (let j = 0; j < a.length; j++) expect(Math.abs(a[j]! - b[j]!)).toBeLessThan(1e-6);
    });
  });

  it('runs a lone request at once and batches what arrives while a run is in flight', async () => {
    const m = await load(randomMlp());
    const first = m.infer(features(1, 30, 1), 1);
    // Let the first request dispatch (its run is now in flight), then send more.
    await Promise.resolve();
    await Promise.resolve();
    expect(m.stats().runs).toBe(1);
    const rest = Array.from({ length: 20 }, (_, i) => m.infer(features(1, 30, 10 + i), 1));
    await Promise.all([first, ...rest]);
    expect(m.stats()).toMatchObject({ runs: 2, requests: 21, rows: 21, maxBatchRequests: 20 });
  });

  it('caps a batch at maxBatchRows but never splits or refuses a bigger request', async () => {
    const m = await load(randomMlp(), { maxBatchRows: 10 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => m.infer(features(1, 30, i), 1)));
    expect(m.stats().runs).toBe(5);
    const [out] = await m.infer(features(25, 30, 7), 25);
    expect(out!.shape).toEqual([25, 2]);
  });

  it('close lets accepted requests finish, then refuses new ones', async () => {
    const m = await loadRuntimeModel(toOnnx(randomMlp()), onnxSignature({ task: 'binary', nFeatures: 30, nClasses: 2 }));
    const pending = Array.from({ length: 5 }, (_, i) => m.infer(features(2, 30, i), 2));
    const closed = m.close();
    const outs = await Promise.all(pending);
    expect(outs).toHaveLength(5);
    await closed;
    expect((await rejection(m.infer(features(1, 30, 1), 1))).code).toBe('MEDFIT_ERR_UNAVAILABLE');
    await m.close(); // idempotent
  });
});

describe('ModelCache', () => {
  /** A fake model that records closes; the cache does not care what is inside. */
  function fake(key: string, closed: string[]): RuntimeModel & { close(): Promise<void> } {
    return {
      inputs: [],
      outputs: [],
      infer: () => Promise.resolve([]),
      close: async () => {
        closed.push(key);
      },
    };
  }

  it('evicts the least recently used model and closes it', async () => {
    const closed: string[] = [];
    const loads: string[] = [];
    const cache = new ModelCache({ max: 2, load: async (k) => (loads.push(k), fake(k, closed)) });
    await cache.get('a');
    await cache.get('b');
    await cache.get('a'); // a is now the most recent
    await cache.get('c'); // evicts b
    await new Promise((r) => setImmediate(r));
    expect(closed).toEqual(['b']);
    expect(cache.keys()).toEqual(['a', 'c']);
    await cache.get('b');
    expect(loads).toEqual(['a', 'b', 'c', 'b']);
    expect(cache.stats()).toMatchObject({ size: 2, hits: 1, misses: 4, evictions: 2 });
    expect(await cache.evict('b')).toBe(true);
    expect(await cache.evict('zzz')).toBe(false);
    await cache.close();
    expect(closed.sort()).toEqual(['a', 'b', 'b', 'c'].sort());
    expect((await rejection(cache.get('a'))).code).toBe('MEDFIT_ERR_INTERNAL');
  });

  it('shares one load among concurrent gets of a key', async () => {
    let loads = 0;
    const closed: string[] = [];
    const cache = new ModelCache({
      max: 4,
      load: async (k) => {
        loads++;
        await new Promise((r) => setTimeout(r, 10));
        return fake(k, closed);
      },
    });
    const got = await Promise.all(Array.from({ length: 10 }, () => cache.get('m')));
    expect(loads).toBe(1);
    expect(new Set(got).size).toBe(1);
    await cache.close();
  });

  it('does not keep a failed load: the next get tries again', async () => {
    let attempt = 0;
    const cache = new ModelCache({
      max: 2,
      load: async (k) => {
        if (++attempt === 1) throw new MedfitError('MEDFIT_ERR_NOT_FOUND', `${k} not found`);
        return fake(k, []);
      },
    });
    const [a, b] = await Promise.allSettled([cache.get('m'), cache.get('m')]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    expect(cache.has('m')).toBe(false);
    await expect(cache.get('m')).resolves.toBeDefined();
    expect(attempt).toBe(2);
    expect(cache.stats().failedLoads).toBe(1);
    await cache.close();
  });

  it('caches real ORT models and releases them on eviction', async () => {
    const models = new Map([1, 2, 3].map((s) => [`m${s}`, randomMlp(30, [8], 2, s)]));
    const cache = new ModelCache<LoadedModel>({
      max: 2,
      load: (k) => {
        const model = models.get(k)!;
        return loadRuntimeModel(toOnnx(model), onnxSignature(model));
      },
    });
    const m1 = await cache.get('m1');
    await cache.get('m2');
    await cache.get('m3');
    await new Promise((r) => setImmediate(r));
    // m1's session is released: it refuses requests instead of touching freed native memory.
    expect((await rejection(m1.infer(features(1, 30, 1), 1))).code).toBe('MEDFIT_ERR_UNAVAILABLE');
    const [out] = await (await cache.get('m3')).infer(features(1, 30, 1), 1);
    expect(out!.data.length).toBe(2);
    await cache.close();
  });
});
