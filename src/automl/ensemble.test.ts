/**
 * Ensembles and calibrated models on the shared clinical tables (breast cancer: binary;
 * diabetes progression: regression, and binned into three classes; linnerud: three outputs):
 * ONNX Runtime agrees with `predict` within 1e-5 on float32 inputs, states and model directories
 * round-trip to identical predictions, tampered states are refused with MEDFIT_ERR_MANIFEST, and
 * explanations add up to the output the model returns. `ensembleSelect` on hand-made cases.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Matrix, type Task } from '../core/index.js';
import { encodeTarget, fitPipeline, inferSchema, readTable, tableFromRows, transformTable, type FittedPipeline, type Table, type TargetEncoding } from '../data/index.js';
import { ProbabilityCalibrator, type CalibrationMethod } from '../eval/index.js';
import { decodeOnnx, encodeOnnxModel, explain, explainCost, FAMILIES, parseUntrustedOnnx, toOnnx, type ModelState, type TableFamily, type TrainedModel } from '../models/index.js';
import { loadArtifact, loadArtifactOnnx, saveArtifact } from '../registry/index.js';
import { CalibratedModel, EnsembleModel, ensembleSelect, loadModel, MAX_ENSEMBLE_MEMBERS, modelSignature, modelToOnnx } from './index.js';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures');

/** A table's features through a pipeline fitted on every row, rounded to float32 so medfit and ONNX Runtime see the same inputs. */
interface Prepared {
  task: Task;
  x: Matrix;
  y: Float64Array;
  nClasses: number;
  nOutputs: number;
  pipeline: FittedPipeline;
  target: TargetEncoding;
  schema: ReturnType<typeof inferSchema>['schema'];
  rows: number;
}

function prepare(t: Table, target: string | string[]): Prepared {
  const targets = Array.isArray(target) ? target : [target];
  const { schema } = inferSchema(t, { target: targets[0]!, drop: targets.slice(1) });
  for (const c of schema.columns) if (targets.includes(c.name)) c.role = 'target';
  const all = Int32Array.from({ length: t.rowCount }, (_, i) => i);
  const pipeline = fitPipeline(t, schema, all);
  const { x } = transformTable(pipeline, t);
  for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i]!);
  const encoded = targets.map((name) => encodeTarget(t, name, schema.columns.find((c) => c.name === name)!.type, 'auto'));
  const task = encoded[0]!.encoding.task;
  const k = targets.length;
  const y = new Float64Array(t.rowCount * k);
  encoded.forEach((e, o) => e.y.forEach((v, i) => (y[i * k + o] = v)));
  const nClasses = task === 'regression' ? 1 : encoded[0]!.encoding.classes!.length;
  return { task, x, y, nClasses, nOutputs: k, pipeline, target: { ...encoded[0]!.encoding, column: targets.join(',') }, schema, rows: t.rowCount };
}

async function train(family: TableFamily, d: Prepared, params: Record<string, unknown> = {}): Promise<TrainedModel> {
  const f = FAMILIES[family];
  const p = f.parseParams(params, d.task, d.rows);
  return f.train({ x: d.x, y: d.y, task: d.task, nClasses: d.nClasses, ...(d.nOutputs > 1 ? { nOutputs: d.nOutputs } : {}) }, p, { seed: 1 });
}

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

const deltas: Record<string, number> = {};
afterAll(() => {
  console.log('max |ORT - predict|:', JSON.stringify(deltas));
});

/** Runs the model's single ONNX graph in ONNX Runtime on `x` (in two batches) and returns max |ORT − predict|. */
async function ortDelta(name: string, model: TrainedModel, x: Matrix): Promise<number> {
  const bytes = modelToOnnx(model);
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  sessions.push(s);
  const sig = modelSignature(model);
  expect(s.inputNames).toEqual([sig.inputs[0]!.name]);
  expect(s.outputNames).toEqual([sig.outputs[0]!.name]);
  const want = model.predict(x);
  const width = sig.outputs[0]!.shape[1]!;
  expect(want.length).toBe(x.rows * width);
  let worst = 0;
  for (const [from, to] of [
    [0, 1],
    [1, x.rows],
  ] as const) {
    const feed = Float32Array.from(x.data.subarray(from * x.cols, to * x.cols));
    const out = await s.run({ input: new ort.Tensor('float32', feed, [to - from, x.cols]) });
    const got = out[s.outputNames[0]!]!.data as Float32Array;
    expect(got.length).toBe((to - from) * width);
    for (let i = 0; i < got.length; i++) {
      expect(Number.isFinite(got[i]!)).toBe(true);
      worst = Math.max(worst, Math.abs(got[i]! - want[from * width + i]!));
    }
  }
  deltas[name] = worst;
  return worst;
}

/** loadModel on the JSON of the state: same predictions, same ONNX bytes. */
function expectRoundTrip(model: TrainedModel, x: Matrix): TrainedModel {
  const again = loadModel(JSON.parse(JSON.stringify(model.toState())) as ModelState);
  expect(again.family).toBe(model.family);
  expect(again.params).toEqual(model.params);
  expect(Array.from(again.predict(x))).toEqual(Array.from(model.predict(x)));
  expect(Buffer.from(modelToOnnx(again)).equals(Buffer.from(modelToOnnx(model)))).toBe(true);
  return again;
}

function manifestError(f: () => unknown, text: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, String(text)).toBeInstanceOf(MedfitError);
  expect((caught as MedfitError).code).toBe('MEDFIT_ERR_MANIFEST');
  expect((caught as MedfitError).message).toMatch(text);
}

/** Rows [from, to) of a matrix (a view). */
function slice(x: Matrix, from: number, to: number): Matrix {
  return { rows: to - from, cols: x.cols, data: x.data.subarray(from * x.cols, to * x.cols) };
}

/** Calibration fitted on the second half of the rows' predictions (as out-of-fold ones would be). */
function calibrate(model: TrainedModel, d: Prepared, method: CalibrationMethod): CalibratedModel {
  const half = Math.floor(d.rows / 2);
  const proba = model.predict(slice(d.x, half, d.rows));
  const cal = ProbabilityCalibrator.fit(proba, d.y.slice(half), d.nClasses, { method });
  return new CalibratedModel(model, cal);
}

let binary: Prepared;
let multiclass: Prepared;
let regression: Prepared;
let multiOutput: Prepared;
const models: Record<string, TrainedModel> = {};

beforeAll(async () => {
  binary = prepare(await readTable(join(FIXTURES, 'breast_cancer_wdbc.csv')), 'diagnosis');
  const diabetes = await readTable(join(FIXTURES, 'diabetes_progression.csv'));
  regression = prepare(diabetes, 'progression');
  // Three classes from the diabetes table: progression below 100, 100–200, above 200.
  const text = readFileSync(join(FIXTURES, 'diabetes_progression.csv'), 'utf8').trim().split('\n');
  const header = text[0]!.split(',');
  const rows = text.slice(1).map((l) => {
    const cells = l.split(',');
    const v = Number(cells[header.length - 1]);
    return [...cells.slice(0, -1), v < 100 ? 'low' : v < 200 ? 'mid' : 'high'];
  });
  multiclass = prepare(tableFromRows([...header.slice(0, -1), 'band'], rows), 'band');
  multiOutput = prepare(await readTable(join(FIXTURES, 'linnerud_fitness.csv')), ['weight', 'waist', 'pulse']);
  const gbdt = { trees: 15, early_stopping_rounds: 0 };
  [models['b:logistic'], models['b:gbdt'], models['b:mlp']] = await Promise.all([
    train('logistic', binary),
    train('gbdt', binary, gbdt),
    train('mlp', binary, { epochs: 3, units: '16' }),
  ]);
  models['m:logistic'] = await train('logistic', multiclass);
  models['m:gbdt'] = await train('gbdt', multiclass, gbdt);
  models['r:linear'] = await train('linear', regression);
  models['r:gbdt'] = await train('gbdt', regression, gbdt);
  models['o:linear'] = await train('linear', multiOutput);
  models['o:gbdt'] = await train('gbdt', multiOutput, { ...gbdt, min_samples_leaf: 2 });
}, 60_000);

describe('EnsembleModel', () => {
  it('binary (logistic + gbdt + mlp): the weighted mean of the members, one ONNX graph within 1e-5, state round trip', async () => {
    const members = [models['b:logistic']!, models['b:gbdt']!, models['b:mlp']!];
    const e = new EnsembleModel(members, [0.5, 0.3, 0.2]);
    expect(e.family).toBe('ensemble');
    expect(e.params).toEqual({ members: 'logistic,gbdt,mlp', weights: [0.5, 0.3, 0.2] });
    const p = e.predict(binary.x);
    const parts = members.map((m) => m.predict(binary.x));
    for (let i = 0; i < p.length; i += 97) expect(p[i]).toBeCloseTo(0.5 * parts[0]![i]! + 0.3 * parts[1]![i]! + 0.2 * parts[2]![i]!, 14);
    expect(await ortDelta('ensemble/binary', e, binary.x)).toBeLessThan(1e-5);
    expectRoundTrip(e, binary.x);
    // The trees bring the ai.onnx.ml opset with them; the graph has one input and one output.
    const onnx = decodeOnnx(modelToOnnx(e));
    expect(onnx.opsetImport.map((o) => o.domain).sort()).toEqual(['', 'ai.onnx.ml']);
    expect(onnx.graph!.input!.map((i) => i.name)).toEqual(['input']);
    expect(onnx.metadataProps.find((m) => m.key === 'family')?.value).toBe('ensemble');
  });

  it('multiclass, regression and three outputs: ONNX within 1e-5, round trips', async () => {
    const cases: Array<[string, TrainedModel[], number[], Prepared]> = [
      ['multiclass', [models['m:logistic']!, models['m:gbdt']!], [0.4, 0.6], multiclass],
      ['regression', [models['r:linear']!, models['r:gbdt']!], [0.7, 0.3], regression],
      ['three outputs', [models['o:gbdt']!, models['o:linear']!], [0.25, 0.75], multiOutput],
    ];
    for (const [name, members, weights, d] of cases) {
      const e = new EnsembleModel(members, weights);
      expect(e.nOutputs).toBe(d.nOutputs > 1 ? d.nOutputs : undefined);
      // Regression outputs are tens to hundreds: 1e-5 relative to their scale.
      const scale = d.task === 'regression' ? Math.max(1, ...Array.from(e.predict(d.x), Math.abs)) : 1;
      expect(await ortDelta(`ensemble/${name}`, e, d.x)).toBeLessThan(1e-5 * scale);
      expectRoundTrip(e, d.x);
    }
  });

  it('leaves members of weight 0 out, and refuses members that do not fit', () => {
    const e = new EnsembleModel([models['b:logistic']!, models['b:gbdt']!, models['b:mlp']!], [0.75, 0, 0.25]);
    expect(e.members.map((m) => m.family)).toEqual(['logistic', 'mlp']);
    expect(e.params['members']).toBe('logistic,mlp');
    const internal = (f: () => unknown) => expect(f).toThrow(MedfitError);
    internal(() => new EnsembleModel([models['b:logistic']!, models['m:logistic']!], [0.5, 0.5]));
    internal(() => new EnsembleModel([models['b:logistic']!], [0.9]));
    internal(() => new EnsembleModel([models['b:logistic']!, calibrate(models['b:gbdt']!, binary, 'platt')], [0.5, 0.5]));
    internal(() => new EnsembleModel([e], [1]));
  });

  it('toOnnx refuses an ensemble or a calibrated model (it would export them wrong)', () => {
    expect(() => toOnnx(new EnsembleModel([models['b:logistic']!], [1]))).toThrow(/modelToOnnx/);
    expect(() => toOnnx(calibrate(models['b:logistic']!, binary, 'platt'))).toThrow(/modelToOnnx/);
  });
});

describe('CalibratedModel', () => {
  it('binary and multiclass, Platt and isotonic, on single models and ensembles: ONNX within 1e-5, round trips', async () => {
    const bEnsemble = new EnsembleModel([models['b:logistic']!, models['b:gbdt']!, models['b:mlp']!], [0.4, 0.4, 0.2]);
    const mEnsemble = new EnsembleModel([models['m:logistic']!, models['m:gbdt']!], [0.5, 0.5]);
    const cases: Array<[string, TrainedModel, Prepared]> = [
      ['gbdt', models['b:gbdt']!, binary],
      ['mlp', models['b:mlp']!, binary],
      ['ensemble', bEnsemble, binary],
      ['multiclass logistic', models['m:logistic']!, multiclass],
      ['multiclass ensemble', mEnsemble, multiclass],
    ];
    const worst: Record<string, number> = {};
    for (const [name, base, d] of cases) {
      for (const method of ['platt', 'isotonic'] as const) {
        const c = calibrate(base, d, method);
        expect([c.family, c.task, c.nClasses, c.nFeatures, c.params]).toEqual([base.family, base.task, base.nClasses, base.nFeatures, base.params]);
        const p = c.predict(d.x);
        expect(Array.from(p)).toEqual(Array.from(c.calibrator.apply(base.predict(d.x))));
        expect(c.toState().calibration).toEqual(c.calibrator.toJSON());
        worst[`${method}/${name}`] = await ortDelta(`calibrated/${method}/${name}`, c, d.x);
        const again = expectRoundTrip(c, d.x);
        expect(again).toBeInstanceOf(CalibratedModel);
        expect(decodeOnnx(modelToOnnx(c)).metadataProps.find((m) => m.key === 'calibration')?.value).toBe(method);
      }
    }
    for (const [name, d] of Object.entries(worst)) expect(d, name).toBeLessThan(1e-5);
  });

  it('saves and loads a calibrated ensemble as a model directory', () => {
    const e = new EnsembleModel([models['b:logistic']!, models['b:gbdt']!], [0.5, 0.5]);
    const c = calibrate(e, binary, 'isotonic');
    const dir = join(mkdtempSync(join(tmpdir(), 'medfit-ens-')), 'm');
    const manifest = saveArtifact(
      dir,
      {
        task: 'binary',
        target: binary.target,
        schema: binary.schema,
        pipeline: binary.pipeline,
        model: { family: c.family, params: c.params, nFeatures: c.nFeatures, nClasses: c.nClasses },
        metrics: { cv: { folds: 5, metrics: {} }, selection: 'auroc' },
        dataset: { source: 'breast_cancer_wdbc.csv', sha256: '0'.repeat(64), rows: binary.rows, rowsUsed: binary.rows },
        seed: 1,
        created: new Date(0).toISOString(),
        engines: { medfit: 'test', node: process.versions.node },
      },
      c,
    );
    expect(manifest.model.family).toBe('ensemble');
    expect(manifest.signature).toEqual(modelSignature(c));
    const loaded = loadArtifact(dir);
    expect(loaded.model).toBeInstanceOf(CalibratedModel);
    expect((loaded.model as CalibratedModel).base).toBeInstanceOf(EnsembleModel);
    expect(Array.from(loaded.model.predict(binary.x))).toEqual(Array.from(c.predict(binary.x)));
    expect(Buffer.from(loadArtifactOnnx(dir).onnx).equals(Buffer.from(modelToOnnx(c)))).toBe(true);
    // The graph passes the check an uploaded model gets, and re-encodes to the same bytes.
    const bytes = modelToOnnx(c);
    expect(Buffer.from(encodeOnnxModel(parseUntrustedOnnx(bytes))).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('loadModel refuses tampered states', () => {
  const state = () => JSON.parse(JSON.stringify(new EnsembleModel([models['b:logistic']!, models['b:gbdt']!], [0.5, 0.5]).toState())) as ModelState & { weights: { members: ModelState[]; weights: number[] } };

  it('ensembles', () => {
    const s1 = state();
    s1.weights.weights = [0.5, 0.4];
    manifestError(() => loadModel(s1), /ensemble: the weights do not sum to 1/);
    const s2 = state();
    s2.weights.weights = [1.5, -0.5];
    manifestError(() => loadModel(s2), /weight 1 must be a finite number ≥ 0/);
    const s3 = state();
    s3.weights.members[1]!.nFeatures = 29;
    manifestError(() => loadModel(s3), /member 1: its nFeatures 29 is not the ensemble's 30/);
    const s4 = state();
    s4.weights.members[0]!.family = 'xgboost' as never;
    manifestError(() => loadModel(s4), /member 0 is not of a table family/);
    const s5 = state();
    s5.weights.members[0] = state();
    manifestError(() => loadModel(s5), /member 0 is an ensemble; ensembles do not nest/);
    const s6 = state();
    s6.weights.members = [];
    s6.weights.weights = [];
    manifestError(() => loadModel(s6), /at least one member/);
    const s7 = state();
    s7.weights.members = Array.from({ length: MAX_ENSEMBLE_MEMBERS + 1 }, () => s7.weights.members[0]!);
    s7.weights.weights = s7.weights.members.map(() => 1 / (MAX_ENSEMBLE_MEMBERS + 1));
    manifestError(() => loadModel(s7), /at most 64 members/);
    const s8 = state();
    s8.weights.members[1]!.calibration = calibrate(models['b:gbdt']!, binary, 'platt').calibrator.toJSON();
    manifestError(() => loadModel(s8), /member 1 is calibrated/);
    const s9 = state();
    s9.weights.members[1]!.weights = { format: 1 };
    manifestError(() => loadModel(s9), /gbdt/);
    const s10 = state();
    s10.task = 'multiclass';
    s10.nClasses = 3;
    manifestError(() => loadModel(s10), /member 0: its task binary is not the ensemble's multiclass/);
  });

  it('calibration', () => {
    const cal = calibrate(models['b:gbdt']!, binary, 'platt').calibrator.toJSON();
    manifestError(() => loadModel({ ...models['r:linear']!.toState(), calibration: cal }), /calibration: a regression model cannot be calibrated/);
    manifestError(() => loadModel({ ...models['m:logistic']!.toState(), calibration: cal }), /calibrator is for 2 classes, the model has 3/);
    manifestError(() => loadModel({ ...models['b:gbdt']!.toState(), calibration: { ...cal, method: 'magic' } }), /method is not one of/);
    manifestError(() => loadModel({ ...models['b:gbdt']!.toState(), family: 'xgboost' as never }), /unknown model family/);
  });
});

describe('explanations of ensembles and calibrated models', () => {
  /** base + Σ contributions, per row and output. */
  function sums(e: ReturnType<typeof explain>): Float64Array {
    const out = new Float64Array(e.rows * e.outputs);
    for (let r = 0; r < e.rows; r++)
      for (let k = 0; k < e.outputs; k++) {
        let s = e.base[k]!;
        for (let j = 0; j < e.features; j++) s += e.contributions[(r * e.features + j) * e.outputs + k]!;
        out[r * e.outputs + k] = s;
      }
    return out;
  }
  const clip = (p: number) => Math.log(Math.min(1, Math.max(1e-15, p)));
  const mean = (d: Prepared) => Array.from({ length: d.x.cols }, (_, j) => {
    let s = 0;
    for (let i = 0; i < d.rows; i++) s += d.x.data[i * d.x.cols + j]!;
    return s / d.rows;
  });

  it('sampling Shapley of the output the model returns, not the base family exact method', () => {
    const x = slice(binary.x, 0, 4);
    const options = { reference: mean(binary), permutations: 8 };
    // A calibrated gbdt: tree SHAP would explain the uncalibrated margin.
    const c = calibrate(models['b:gbdt']!, binary, 'isotonic');
    const ec = explain(c, x, options);
    expect(ec.method).toBe('sampling-shapley');
    expect(ec.space).toBe('log-odds');
    const pc = c.predict(x);
    const want = Float64Array.from({ length: x.rows }, (_, r) => clip(pc[r * 2 + 1]!) - clip(pc[r * 2]!));
    sums(ec).forEach((s, r) => expect(s).toBeCloseTo(want[r]!, 9));
    // The plain gbdt keeps its exact method.
    expect(explain(models['b:gbdt']!, x, options).method).toBe('tree-shap');
    // A binary ensemble: the log-odds of the mean probability.
    const e = new EnsembleModel([models['b:logistic']!, models['b:gbdt']!], [0.5, 0.5]);
    const ee = explain(e, x, options);
    const pe = e.predict(x);
    expect(ee.method).toBe('sampling-shapley');
    sums(ee).forEach((s, r) => expect(s).toBeCloseTo(clip(pe[r * 2 + 1]!) - clip(pe[r * 2]!), 9));
    expect(explainCost(e, 4)).toBeGreaterThan(0);
    expect(() => explain(e, x)).toThrow(/reference row/);
  });

  it('Platt scaling on the logit of a binary gbdt or logistic model keeps its exact method, scaled', () => {
    const x = slice(binary.x, 0, 6);
    const half = Math.floor(binary.rows / 2);
    for (const name of ['b:gbdt', 'b:logistic'] as const) {
      const base = models[name]!;
      const cal = ProbabilityCalibrator.fit(base.predict(slice(binary.x, half, binary.rows)), binary.y.slice(half), 2, { method: 'platt', input: 'logit', plattTargets: 'labels' });
      const c = new CalibratedModel(base, cal);
      const options = { reference: mean(binary) };
      const ec = explain(c, x, options);
      const eb = explain(base, x, options);
      expect(ec.method).toBe(eb.method);
      expect(ec.method).not.toBe('sampling-shapley');
      const { a } = cal.toJSON().calibrators[0] as { a: number };
      ec.contributions.forEach((v, i) => expect(v).toBeCloseTo(a * eb.contributions[i]!, 12));
      // Exact: base plus contributions are the calibrated probability's log-odds (where a
      // probability is not so near 0 or 1 that it cannot carry them).
      const p = c.predict(x);
      let checked = 0;
      sums(ec).forEach((s, r) => {
        if (Math.min(p[r * 2]!, p[r * 2 + 1]!) < 1e-6) return;
        expect(s).toBeCloseTo(clip(p[r * 2 + 1]!) - clip(p[r * 2]!), 8);
        checked++;
      });
      expect(checked).toBeGreaterThan(0);
      expect(explainCost(c, 6)).toBe(explainCost(base, 6));
    }
  });

  it('multiclass (log-probabilities) and regression (values), with grouped players', () => {
    const m = calibrate(new EnsembleModel([models['m:logistic']!, models['m:gbdt']!], [0.5, 0.5]), multiclass, 'platt');
    const x = slice(multiclass.x, 0, 3);
    const em = explain(m, x, { reference: mean(multiclass), permutations: 4 });
    expect([em.space, em.outputs]).toEqual(['logit', 3]);
    const pm = m.predict(x);
    sums(em).forEach((s, i) => expect(s).toBeCloseTo(clip(pm[i]!), 9));
    const r = new EnsembleModel([models['o:linear']!, models['o:gbdt']!], [0.5, 0.5]);
    const xr = slice(multiOutput.x, 0, 3);
    const groups = [0, 0, 1];
    const er = explain(r, xr, { reference: mean(multiOutput), groups, permutations: 4 });
    expect([er.space, er.outputs, er.features]).toEqual(['value', 3, 2]);
    const pr = r.predict(xr);
    sums(er).forEach((s, i) => expect(s).toBeCloseTo(pr[i]!, 9));
  });
});

describe('ensembleSelect (Caruana et al. 2004)', () => {
  /** Regression predictions: the target plus independent noise of `sd`. */
  function noisy(y: Float64Array, sd: number, rng: Rng): Float64Array {
    return y.map((v) => v + sd * rng.normal());
  }
  const negMse = (y: Float64Array) => (p: Float64Array) => {
    let s = 0;
    for (let i = 0; i < y.length; i++) s += (p[i]! - y[i]!) ** 2;
    return -s / y.length;
  };

  it('two complementary noisy predictors share the weight; a useless one gets none', () => {
    const rng = new Rng(4);
    const y = Float64Array.from({ length: 2000 }, () => rng.normal());
    const a = noisy(y, 0.5, rng);
    const b = noisy(y, 0.5, rng);
    // Noise around a wrong level: any share of it moves the blend away from the target.
    const useless = Float64Array.from({ length: y.length }, () => 2 + rng.normal());
    const r = ensembleSelect([useless, a, b], negMse(y), { width: 1 });
    expect(r.weights[0]).toBe(0);
    expect(r.weights[1]).toBeGreaterThan(0.3);
    expect(r.weights[2]).toBeGreaterThan(0.3);
    expect(r.weights.reduce((s, w) => s + w, 0)).toBeCloseTo(1, 12);
    // Averaging halves the noise variance: about -0.125 against -0.25 alone.
    expect(r.score).toBeGreaterThan(-0.15);
    expect(r.trace[0]!.candidate).not.toBe(0);
    expect(r.trace).toHaveLength(25);
    // The returned score is the blend's.
    const blend = new Float64Array(y.length);
    [useless, a, b].forEach((o, c) => o.forEach((v, i) => (blend[i]! += r.weights[c]! * v)));
    expect(negMse(y)(blend)).toBeCloseTo(r.score, 12);
  });

  it('starts from the best single candidate and keeps it when nothing helps; ties go to the lowest index', () => {
    const rng = new Rng(5);
    const y = Float64Array.from({ length: 500 }, () => rng.normal());
    const good = noisy(y, 0.1, rng);
    const bad = noisy(y, 3, rng);
    const r = ensembleSelect([bad, good], negMse(y), { width: 1, rounds: 10 });
    expect(r.trace[0]!.candidate).toBe(1);
    expect(r.weights).toEqual([0, 1]);
    // Identical candidates: every round ties, the first wins.
    expect(ensembleSelect([good, good, bad], negMse(y), { width: 1, rounds: 5 }).weights).toEqual([1, 0, 0]);
    // Deterministic.
    expect(ensembleSelect([bad, good], negMse(y), { width: 1, rounds: 10 })).toEqual(r);
  });

  it('works on rows of several columns and refuses mismatched candidates', () => {
    // Two classifiers right on different halves of the rows: together they rank every row.
    const rows = 200;
    const labels = Float64Array.from({ length: rows }, (_, i) => i % 2);
    const one = new Float64Array(rows * 2);
    const two = new Float64Array(rows * 2);
    for (let i = 0; i < rows; i++) {
      const right = (p: Float64Array, good: boolean) => {
        const q = good ? (labels[i] === 1 ? 0.9 : 0.1) : 0.5;
        p[i * 2] = 1 - q;
        p[i * 2 + 1] = q;
      };
      right(one, i < rows / 2);
      right(two, i >= rows / 2);
    }
    const negLogLoss = (p: Float64Array) => {
      let s = 0;
      for (let i = 0; i < rows; i++) s += Math.log(p[i * 2 + labels[i]!]!);
      return s / rows;
    };
    const r = ensembleSelect([one, two], negLogLoss, { width: 2 });
    expect(r.weights[0]).toBeGreaterThan(0.3);
    expect(r.weights[1]).toBeGreaterThan(0.3);
    expect(() => ensembleSelect([one, two.subarray(2)], negLogLoss, { width: 2 })).toThrow(MedfitError);
    expect(() => ensembleSelect([], negLogLoss, { width: 2 })).toThrow(MedfitError);
    expect(() => ensembleSelect([one], negLogLoss, { width: 3 })).toThrow(MedfitError);
  });
});
