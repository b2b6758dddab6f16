import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import * as b from '../../../test/onnx-builders.js';
import { MedfitError, Rng, type Task } from '../../core/index.js';
import { gbdt } from '../gbdt/index.js';
import { linear, logistic } from '../linear/index.js';
import { mlp } from '../mlp/index.js';
import type { ModelFamily, ModelState, TrainedModel } from '../types.js';
import { encodeOnnxModel, parseUntrustedOnnx, toOnnx, validateOnnxModel } from './index.js';

const SECRET = 'secrets/medfit.db';

/** The refusal `bytes` get, as a MedfitError (fails the test when they are accepted). */
function refusal(bytes: Uint8Array, opts = {}): MedfitError {
  try {
    parseUntrustedOnnx(bytes, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('expected the model to be refused');
}

function expectExternalRefused(m: b.Model, where: RegExp): void {
  const e = refusal(b.encode(m));
  expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
  expect(e.status).toBe(422);
  expect(e.message).toMatch(/^\/onnx: external data in /);
  expect(e.message).toMatch(where);
  expect(e.details).toEqual([{ pointer: '/onnx', message: e.message.slice('/onnx: '.length) }]);
  // The location is the attacker's and may name a server file: never repeated.
  expect(e.message).not.toContain('secrets');
  expect(e.message).not.toContain('medfit.db');
}

/** The valid classifier with `edit` applied to a fresh copy of its graph. */
function classifierWith(edit: (g: b.Graph, m: b.Model) => void): b.Model {
  const m = b.model(b.classifierGraph());
  edit(m.graph!, m);
  return m;
}

const constantOf = (t: b.Tensor, out = 'c') => b.node('Constant', [], [out], [{ name: 'value', type: b.A.TENSOR, t }]);

describe('external data is refused wherever a tensor can sit', () => {
  for (const [variant, opts] of [
    ['data_location = EXTERNAL with a location', {}],
    ['data_location = EXTERNAL alone', { onlyLocation: true }],
    ['external_data entries alone', { onlyEntries: true }],
  ] as const) {
    it(`a graph initializer (${variant})`, () => {
      expectExternalRefused(
        classifierWith((g) => g.initializer!.push(b.external('stolen', [1, 4], SECRET, opts))),
        /graph "tiny" › initializer "stolen"/,
      );
    });
  }

  it('a sparse initializer: its values and its indices', () => {
    const sparse = (values: b.Tensor, indices: b.Tensor) => classifierWith((g) => (g.sparseInitializer = [{ values, indices, dims: [10] }]));
    expectExternalRefused(sparse(b.external('sv', [2], SECRET), b.int64s('si', [2], [1, 3])), /sparse initializer "sv" › values/);
    expectExternalRefused(sparse(b.floats('sv', [2], [1, 2]), { ...b.external('si', [2], SECRET), dataType: 7 }), /sparse initializer "sv" › indices/);
  });

  it('a Constant node, and tensor, tensors and sparse-tensor attributes of any node', () => {
    expectExternalRefused(classifierWith((g) => g.node!.push(constantOf(b.external('k', [1], SECRET)))), /node "Constant_c" › attribute "value"/);
    expectExternalRefused(
      classifierWith((g) => g.node!.push(b.node('Custom', [], ['c2'], [{ name: 'weights', type: b.A.TENSORS, tensors: [b.floats('ok', [1], [1]), b.external('k', [1], SECRET)] }]))),
      /node "Custom_c2" › attribute "weights"/,
    );
    expectExternalRefused(
      classifierWith((g) => g.node!.push(b.node('Constant', [], ['c3'], [{ name: 'sparse_value', type: b.A.SPARSE_TENSOR, sparseTensor: { values: b.external('v', [1], SECRET), indices: b.int64s('i', [1], [0]), dims: [4] } }]))),
      /attribute "sparse_value" › values/,
    );
  });

  it('a subgraph of If (then or else branch), of Loop, and deeper', () => {
    const branch = (name: string, t?: b.Tensor): b.Graph => ({
      name,
      node: [t ? constantOf(t, `${name}_o`) : b.node('Identity', ['logits'], [`${name}_o`])],
      output: [b.vi(`${name}_o`, ['N', 2])],
    });
    const withIf = (thenT?: b.Tensor, elseT?: b.Tensor) =>
      classifierWith((g) => {
        g.initializer!.push({ name: 'cond', dims: [], dataType: 9, rawData: new Uint8Array([1]) });
        g.node!.push(b.node('If', ['cond'], ['chosen'], [{ name: 'then_branch', type: b.A.GRAPH, g: branch('then', thenT) }, { name: 'else_branch', type: b.A.GRAPH, g: branch('else', elseT) }]));
      });
    expectExternalRefused(withIf(b.external('t', [1, 2], SECRET)), /node "If_chosen" › attribute "then_branch" › graph "then" › node "Constant_then_o"/);
    expectExternalRefused(withIf(undefined, b.external('t', [1, 2], SECRET)), /attribute "else_branch" › graph "else"/);
    // An initializer of a Loop body two levels down (Loop inside an If branch).
    const loopBody: b.Graph = { name: 'body', node: [b.node('Identity', ['c_in'], ['c_out'])], initializer: [b.external('deep', [4], SECRET)], input: [b.vi('i', [], 7), b.vi('c_in', [], 9)], output: [b.vi('c_out', [], 9)] };
    const inner: b.Graph = { name: 'then', node: [b.node('Loop', ['', 'cond'], [], [{ name: 'body', type: b.A.GRAPH, g: loopBody }]), b.node('Identity', ['logits'], ['then_o'])], output: [b.vi('then_o', ['N', 2])] };
    expectExternalRefused(
      classifierWith((g) => {
        g.initializer!.push({ name: 'cond', dims: [], dataType: 9, rawData: new Uint8Array([1]) });
        g.node!.push(b.node('If', ['cond'], ['chosen'], [{ name: 'then_branch', type: b.A.GRAPH, g: inner }, { name: 'else_branch', type: b.A.GRAPH, g: branch('else') }]));
      }),
      /graph "then" › node "Loop_" › attribute "body" › graph "body" › initializer "deep"/,
    );
  });

  it("a model-local function's body, also inside a subgraph of one of its nodes, and in the graphs list of an attribute", () => {
    const fn = (nodes: b.Node[]) =>
      classifierWith((g, m) => {
        m.opsetImport!.push({ domain: 'local', version: 1 });
        m.functions = [{ name: 'Leak', domain: 'local', input: ['a'], output: ['r'], node: nodes, opsetImport: [{ domain: '', version: 17 }] }];
        g.node!.push(b.node('Leak', ['probs'], ['leaked'], [], 'local'));
      });
    expectExternalRefused(fn([constantOf(b.external('k', [1], SECRET), 'k'), b.node('Add', ['a', 'k'], ['r'])]), /function "Leak" › node "Constant_k" › attribute "value"/);
    const sub: b.Graph = { name: 'sub', node: [constantOf(b.external('k', [1], SECRET), 'so')], output: [b.vi('so', [1])] };
    expectExternalRefused(fn([b.node('Scan', ['a'], ['r'], [{ name: 'bodies', type: b.A.GRAPHS, graphs: [sub] }])]), /function "Leak" › node "Scan_r" › attribute "bodies" › graph "sub"/);
  });
});

describe('operator domains', () => {
  it('accepts the default domain (also as ai.onnx), ai.onnx.ml and com.microsoft', () => {
    const m = classifierWith((g, model) => {
      model.opsetImport!.push({ domain: 'com.microsoft', version: 1 }, { domain: 'ai.onnx', version: 17 });
      g.node!.push(b.node('Identity', ['probs'], ['p2'], [], 'ai.onnx'), b.node('Gelu', ['p2'], ['p3'], [], 'com.microsoft'), b.node('Normalizer', ['p3'], ['p4'], [], 'ai.onnx.ml'));
    });
    expect(() => parseUntrustedOnnx(b.encode(m))).not.toThrow();
  });

  it('refuses any other domain in a node, a subgraph node or an opset import, naming it', () => {
    const node = classifierWith((g) => g.node!.push(b.node('Exec', ['probs'], ['z'], [], 'com.evil/../x')));
    const e = refusal(b.encode(node));
    expect(e.message).toBe('/onnx: graph "tiny" › node "Exec_z" uses operator domain "com.evil_.._x", which medfit does not run (allowed: ai.onnx, ai.onnx.ml, com.microsoft and the model\'s own functions)');
    const opset = classifierWith((_g, m) => m.opsetImport!.push({ domain: 'ai.onnx.preview.training', version: 1 }));
    expect(refusal(b.encode(opset)).message).toMatch(/the model imports operator domain "ai.onnx.preview.training", which medfit does not run/);
    const fnBody = classifierWith((g, m) => {
      m.opsetImport!.push({ domain: 'local', version: 1 });
      m.functions = [{ name: 'F', domain: 'local', input: ['a'], output: ['r'], node: [b.node('Run', ['a'], ['r'], [], 'custom.ops')] }];
      g.node!.push(b.node('F', ['probs'], ['f'], [], 'local'));
    });
    expect(refusal(b.encode(fnBody)).message).toMatch(/function "F" › node "Run_r" uses operator domain "custom.ops"/);
  });

  it("accepts a function's own domain, and refuses a node of that domain that names no function", () => {
    const ok = classifierWith((g, m) => {
      m.opsetImport!.push({ domain: 'local', version: 1 });
      m.functions = [{ name: 'Twice', domain: 'local', input: ['a'], output: ['r'], node: [b.node('Add', ['a', 'a'], ['r'])], opsetImport: [{ domain: '', version: 17 }] }];
      g.node!.push(b.node('Twice', ['probs'], ['t'], [], 'local'));
    });
    expect(() => parseUntrustedOnnx(b.encode(ok))).not.toThrow();
    const stray = classifierWith((g, m) => {
      m.opsetImport!.push({ domain: 'local', version: 1 });
      m.functions = [{ name: 'Twice', domain: 'local', input: ['a'], output: ['r'], node: [b.node('Add', ['a', 'a'], ['r'])] }];
      g.node!.push(b.node('Thrice', ['probs'], ['t'], [], 'local'));
    });
    expect(refusal(b.encode(stray)).message).toMatch(/node "Thrice_t" uses operator domain "local"/);
  });
});

describe('what an uploaded model may compute (the server runs it in its own process)', () => {
  it('refuses Loop and Scan, and sizes computed from the input\'s values; accepts sizes from constants and shapes', () => {
    const loop = classifierWith((g) => {
      g.initializer!.push({ name: 'cond', dims: [], dataType: 9, rawData: new Uint8Array([1]) });
      const body: b.Graph = { name: 'body', node: [b.node('Identity', ['c_in'], ['c_out'])], input: [b.vi('i', [], 7), b.vi('c_in', [], 9)], output: [b.vi('c_out', [], 9)] };
      g.node!.push(b.node('Loop', ['', 'cond'], [], [{ name: 'body', type: b.A.GRAPH, g: body }]));
    });
    expect(refusal(b.encode(loop)).message).toMatch(/node "Loop_" is a Loop, whose iterations can come from the input's values; uploaded models may not loop/);
    const one = { name: 'value', type: b.A.TENSOR, t: b.floats('one', [1], [1]) };
    // The attacker's memory bomb: a shape from the input's VALUES.
    const byValue = classifierWith((g) => {
      g.node!.push(b.node('Cast', ['x'], ['xi'], [{ name: 'to', type: b.A.INT, i: 7 }]), b.node('ConstantOfShape', ['xi'], ['big'], [one]));
    });
    expect(refusal(b.encode(byValue)).message).toMatch(/node "ConstantOfShape_big" \("ConstantOfShape"\) sizes its output by computed values/);
    // Arithmetic on a shape is computing too: rows × a constant could be anything.
    const scaled = classifierWith((g) => {
      g.initializer!.push(b.int64s('k', [2], [1, 1000]));
      g.node!.push(b.node('Shape', ['x'], ['xs']), b.node('Mul', ['xs', 'k'], ['bigShape']), b.node('ConstantOfShape', ['bigShape'], ['big'], [one]));
    });
    expect(() => parseUntrustedOnnx(b.encode(scaled))).toThrow(/sizes its output by computed values/);
    // PyTorch's usual pattern: shapes taken, gathered, concatenated with constants.
    const fromShape = classifierWith((g) => {
      g.initializer!.push(b.int64s('zero', [1], [0]), b.int64s('two', [1], [2]));
      g.node!.push(
        b.node('Shape', ['x'], ['xs']),
        b.node('Gather', ['xs', 'zero'], ['rows']),
        b.node('Concat', ['rows', 'two'], ['shape2'], [{ name: 'axis', type: b.A.INT, i: 0 }]),
        b.node('ConstantOfShape', ['shape2'], ['filled'], [one]),
        b.node('Expand', ['probs', 'shape2'], ['expanded']),
      );
    });
    expect(() => parseUntrustedOnnx(b.encode(fromShape))).not.toThrow();
  });
});

describe('bounds against hostile structure', () => {
  it('refuses subgraphs nested deeper than the limit, and accepts them up to it', () => {
    expect(refusal(b.nestedIfs(17)).message).toMatch(/^\/onnx: subgraphs are nested more than 16 levels deep \(at graph "nested" › node "If_o16" › … › /);
    expect(() => parseUntrustedOnnx(b.nestedIfs(16))).not.toThrow();
    expect(refusal(b.nestedIfs(3), { limits: { maxDepth: 2, maxNodes: 100 } }).message).toMatch(/nested more than 2 levels/);
  });

  it('refuses nesting deeper than any decoder stack, as not ONNX, without crashing', () => {
    for (const depth of [20, 5_000, 100_000]) expect(refusal(b.deepWire(depth)).message).toMatch(/^\/onnx: (not an ONNX model|subgraphs are nested)/);
  });

  it('refuses more nodes than the limit', () => {
    const m = classifierWith((g) => {
      for (let i = 0; i < 50; i++) g.node!.push(b.node('Identity', ['probs'], [`p${i}`]));
    });
    expect(refusal(b.encode(m), { limits: { maxDepth: 16, maxNodes: 40 } }).message).toBe('/onnx: the model has more than 40 nodes');
  });

  it('refuses functions that call themselves, directly or in a cycle, and call chains beyond the limit', () => {
    const withFns = (fns: Array<[string, string]>, limits?: { maxDepth: number; maxNodes: number }) => {
      const m = classifierWith((g, model) => {
        model.opsetImport!.push({ domain: 'local', version: 1 });
        model.functions = fns.map(([name, calls]) => ({ name, domain: 'local', input: ['a'], output: ['r'], node: [calls ? b.node(calls, ['a'], ['r'], [], 'local') : b.node('Identity', ['a'], ['r'])] }));
        g.node!.push(b.node(fns[0]![0], ['probs'], ['f'], [], 'local'));
      });
      return refusal(b.encode(m), limits ? { limits } : {});
    };
    expect(withFns([['F', 'F']]).message).toMatch(/function "F" calls itself/);
    expect(withFns([['F', 'G'], ['G', 'H'], ['H', 'F']]).message).toMatch(/calls itself \(directly or through other functions\)/);
    expect(withFns([['F', 'G'], ['G', 'H'], ['H', '']], { maxDepth: 2, maxNodes: 100 }).message).toMatch(/functions call each other more than 2 levels deep/);
  });

  it('refuses tensors whose dims do not fit their data (huge dims, negative dims)', () => {
    const huge = classifierWith((g) => (g.initializer![0] = { ...g.initializer![0]!, dims: [1 << 20, 1 << 20] }));
    expect(refusal(b.encode(huge)).message).toBe('/onnx: graph "tiny" › initializer "W" has 24 bytes of data for its dims, which need 4398046511104');
    const beyond = classifierWith((g) => (g.initializer![0] = { ...g.initializer![0]!, dims: [2 ** 40, 2 ** 40] }));
    expect(refusal(b.encode(beyond)).message).toMatch(/initializer "W" declares more elements than any model can hold/);
    const negative = classifierWith((g) => (g.initializer![0] = { ...g.initializer![0]!, dims: [-1, 6] }));
    expect(refusal(b.encode(negative)).message).toMatch(/initializer "W" has an invalid dimension/);
    const short = classifierWith((g) => (g.initializer![1] = b.int64s('B', [2], [1])));
    expect(refusal(b.encode(short)).message).toMatch(/initializer "B" has 1 values for dims that need 2/);
  });

  it('refuses bytes that are not ONNX and graphs that read names nothing produces', () => {
    expect(refusal(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])).message).toBe('/onnx: not an ONNX model (the bytes are not a valid ONNX protobuf)');
    expect(refusal(new Uint8Array(0)).message).toBe('/onnx: not an ONNX model (it has no graph)');
    const dangling = classifierWith((g) => (g.node![1]!.input = ['logitz']));
    expect(refusal(b.encode(dangling)).message).toBe('/onnx: graph "tiny" › node "Softmax_probs" reads "logitz", which nothing in the model produces');
    const noOutput = classifierWith((g) => (g.output = [b.vi('nowhere', ['N', 2])]));
    expect(refusal(b.encode(noOutput)).message).toMatch(/output "nowhere" is produced by nothing/);
  });
});

/** A trained (or, for the MLP, constructed) model of each family: what medfit itself exports. */
async function medfitModels(): Promise<TrainedModel[]> {
  const rng = new Rng(3);
  const rows = 120;
  const x = Float64Array.from({ length: rows * 4 }, () => rng.normal());
  const data = (task: Task) => {
    const y = Float64Array.from({ length: rows }, (_, i) => {
      const a = x[i * 4]! - x[i * 4 + 1]!;
      return task === 'regression' ? a : task === 'binary' ? Number(a > 0) : a < -0.5 ? 0 : a < 0.5 ? 1 : 2;
    });
    return { x: { rows, cols: 4, data: x }, y, task, nClasses: task === 'regression' ? 1 : task === 'binary' ? 2 : 3 };
  };
  const train = (f: ModelFamily, task: Task, params: Record<string, unknown> = {}) => f.train(data(task), f.parseParams(params, task, rows), { seed: 1 });
  const mlpState: ModelState = {
    family: 'mlp',
    task: 'multiclass',
    nClasses: 3,
    nFeatures: 4,
    params: {},
    weights: { layers: [{ inDim: 4, outDim: 5, kernel: Array.from({ length: 20 }, () => rng.normal()), bias: [0, 0.1, 0, 0, 0], activation: 'relu' }, { inDim: 5, outDim: 3, kernel: Array.from({ length: 15 }, () => rng.normal()), bias: [0, 0, 0.2], activation: 'softmax' }] },
  };
  return [
    await train(logistic, 'binary'),
    await train(logistic, 'multiclass'),
    await train(linear, 'regression'),
    await train(gbdt, 'binary', { trees: 15, early_stopping_rounds: 0 }),
    await train(gbdt, 'multiclass', { trees: 10, early_stopping_rounds: 0 }),
    await train(gbdt, 'regression', { trees: 15, early_stopping_rounds: 0 }),
    mlp.load(mlpState),
  ];
}

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await s.release();
  }
}

describe('re-encoding the checked model (what is stored and served)', () => {
  it("round-trips medfit's own exports byte for byte", async () => {
    for (const m of await medfitModels()) {
      const bytes = toOnnx(m);
      expect(Buffer.from(encodeOnnxModel(parseUntrustedOnnx(bytes))).equals(Buffer.from(bytes))).toBe(true);
    }
  }, 60_000);

  it('keeps hand-built models (subgraphs, functions, int64 beyond 2^53) answering the same in ONNX Runtime', async () => {
    const x = new ort.Tensor('float32', Float32Array.from([0.3, -1.2, 2.5, 1, 0, -0.5]), [2, 3]);
    // Slice ends of INT64_MAX, as PyTorch writes them: lossy int64 decoding would turn it negative.
    const sliced = classifierWith((g) => {
      g.initializer!.push(b.int64s('st', [1], [0]), { name: 'en', dims: [1], dataType: 7, int64Data: ['9223372036854775807' as unknown as number] }, b.int64s('ax', [1], [1]));
      g.node!.push(b.node('Slice', ['probs', 'st', 'en', 'ax'], ['sliced']));
      g.output = [b.vi('sliced', ['N', 2])];
    });
    const fn = classifierWith((g, m) => {
      m.opsetImport!.push({ domain: 'local', version: 1 });
      m.functions = [{ name: 'Twice', domain: 'local', input: ['a'], output: ['r'], node: [b.node('Add', ['a', 'a'], ['r'])], opsetImport: [{ domain: '', version: 17 }] }];
      g.node!.push(b.node('Twice', ['probs'], ['t'], [], 'local'));
      g.output = [b.vi('t', ['N', 2])];
    });
    for (const bytes of [b.classifier(), b.nestedIfs(6), b.encode(sliced), b.encode(fn)]) {
      const again = encodeOnnxModel(parseUntrustedOnnx(bytes));
      expect(await run(again, { x })).toEqual(await run(bytes, { x }));
    }
    const sl = await run(encodeOnnxModel(parseUntrustedOnnx(b.encode(sliced))), { x });
    expect(sl['sliced']!.length).toBe(4);
  });

  it('drops an ort_config metadata entry (session options ONNX Runtime can take from a model) and keeps the others', () => {
    const m = classifierWith((_g, model) => {
      model.metadataProps = [
        { key: 'ort_config', value: '{"session_options": {"intra_op_num_threads": 64}}' },
        { key: 'author', value: 'clinic' },
      ];
    });
    const parsed = parseUntrustedOnnx(b.encode(m));
    expect(parsed.metadataProps).toEqual([{ key: 'author', value: 'clinic' }]);
    expect(Buffer.from(encodeOnnxModel(parsed)).includes(Buffer.from('ort_config'))).toBe(false);
  });

  it('drops training_info and every field our definitions do not know', () => {
    const withTraining = classifierWith((_g, m) => {
      m.trainingInfo = [{ initialization: { name: 'init', initializer: [b.external('t', [1], SECRET)] } }];
    });
    const parsed = parseUntrustedOnnx(b.encode(withTraining));
    expect(parsed.trainingInfo).toEqual([]);
    expect(Buffer.from(encodeOnnxModel(parsed)).includes(Buffer.from('secrets'))).toBe(false);
    // ModelProto field 99 (unknown to any ONNX version) holding an external tensor's location.
    const unknown = Buffer.concat([Buffer.from(b.classifier()), Buffer.from(b.field(99, b.encode({ graph: { initializer: [b.external('t', [1], SECRET)] } })))]);
    const again = encodeOnnxModel(parseUntrustedOnnx(unknown));
    expect(Buffer.from(again).includes(Buffer.from('secrets'))).toBe(false);
    expect(Buffer.from(again).equals(Buffer.from(b.classifier()))).toBe(true);
  });

  it('validateOnnxModel checks a decoded model in place', () => {
    expect(() => validateOnnxModel(b.decode(b.classifier()))).not.toThrow();
    expect(() => validateOnnxModel(b.decode(b.exfiltrator(SECRET, 'if')), { pointer: '/model' })).toThrow(/^\/model: external data in graph "exfil" › node "If_secret" › attribute "then_branch" › graph "then" › initializer "then_s"/);
  });
});
