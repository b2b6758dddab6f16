/**
 * Loading, exporting and describing any trained table or sequence model, the composite ones
 * (ensembles, calibrated models) included: what the registry saves and loads through.
 *
 * - `loadModel`: a family's state through its own `load`; an `ensemble` through `loadEnsemble`;
 *   then, when the state carries `calibration`, the model wrapped in a `CalibratedModel`.
 * - `modelToOnnx`: one ONNX graph reading `input` and writing `probabilities` or `value`, as every
 *   medfit export. A family's model is exactly `toOnnx`'s bytes. An ensemble's graph holds each
 *   member's graph in double precision (`onnxParts`' `precision: 'double'`) with its names
 *   prefixed `m0_`, `m1_`…, weighted and summed in double, then cast to FP32. A calibrated
 *   model's graph holds the base's graph (in double for an ensemble or a table family; prefixed
 *   `base_`, so its output is `base_probabilities`) followed by the calibrator's `appendOnnx`
 *   (names prefixed `calibrator_`), which writes `probabilities`. Computing between the FP32
 *   input and output in double keeps the graph within about 1e-7 of `predict` where the base is
 *   smooth; what stays float32 is a gbdt's margins (ONNX's TreeEnsembleRegressor writes FP32),
 *   which a steep isotonic segment can magnify.
 * - `modelSignature`: the tensors that graph takes and returns (`onnxSignature` of the shape).
 */
import { Errors, type Task } from '../core/index.js';
import { ProbabilityCalibrator } from '../eval/index.js';
import {
  encodeOnnxGraph,
  FAMILIES,
  getFamily,
  onnxParts,
  onnxSignature,
  prefixOnnxParts,
  toOnnx,
  ONNX_PROBABILITIES,
  ONNX_VALUE,
  type ModelState,
  type OnnxParts,
  type OnnxSignature,
  type TrainedModel,
} from '../models/index.js';
import { CalibratedModel } from './calibrated.js';
import { EnsembleModel, loadEnsemble } from './ensemble.js';

/**
 * Rebuilds a trained model from its state (`toState()`, as `weights.json` holds it), checking the
 * untrusted state: the family's own checks, the ensemble's (see `loadEnsemble`), and for
 * `calibration` a valid calibrator state (`ProbabilityCalibrator.fromJSON`) on a classifier with
 * the calibrator's number of classes.
 * @throws MedfitError MEDFIT_ERR_MANIFEST naming what is wrong.
 */
export function loadModel(state: ModelState): TrainedModel {
  if (state === null || typeof state !== 'object' || Array.isArray(state)) throw Errors.manifest('model', 'state is not an object');
  const { calibration, ...rest } = state;
  let model: TrainedModel;
  if (rest.family === 'ensemble') model = loadEnsemble(rest);
  else {
    let family;
    try {
      family = getFamily(String(rest.family));
    } catch (e) {
      // The name is not echoed: it is whatever the file holds.
      throw Errors.manifest('model', 'the state names an unknown model family', e);
    }
    model = family.load(rest);
  }
  if (calibration === undefined) return model;
  if (model.task === 'regression') throw Errors.manifest('calibration', 'a regression model cannot be calibrated: calibration applies to class probabilities');
  const calibrator = ProbabilityCalibrator.fromJSON(calibration, 'calibration');
  if (calibrator.nClasses !== model.nClasses) {
    throw Errors.manifest('calibration', `the calibrator is for ${calibrator.nClasses} classes, the model has ${model.nClasses}`);
  }
  return new CalibratedModel(model, calibrator);
}

// ONNX element types and the attribute kind written here (onnx-proto's enums, as numbers).
const ONNX_FLOAT = 1;
const ONNX_DOUBLE = 11;
const ATTRIBUTE_INT = 2;

type OnnxNode = OnnxParts['nodes'][number];
type OnnxTensor = OnnxParts['initializers'][number];

function onnxNode(opType: string, inputs: string[], outputs: string[], castTo?: number): OnnxNode {
  const attribute = castTo === undefined ? [] : [{ name: 'to', type: ATTRIBUTE_INT, i: castTo }];
  return { opType, input: inputs, output: outputs, attribute, domain: '', name: `${opType}_${outputs[0]}` };
}

function doubleScalar(name: string, v: number): OnnxTensor {
  return { name, dims: [], dataType: ONNX_DOUBLE, rawData: new Uint8Array(Float64Array.of(v).buffer) };
}

function outputOf(task: Task): string {
  return task === 'regression' ? ONNX_VALUE : ONNX_PROBABILITIES;
}

/** Appends `from`'s nodes and initializers to `to` (one by one: a graph's node list is not spread). */
function append(to: OnnxParts, from: OnnxParts): void {
  for (const n of from.nodes) to.nodes.push(n);
  for (const t of from.initializers) to.initializers.push(t);
  if (from.usesMl) to.usesMl = true;
}

/**
 * An ensemble's graph parts: each member's graph in double precision prefixed `m<i>_`, times its
 * weight, summed, and written as the task's output in FP32, or in FP64 with `double` (for a
 * calibrator to read).
 */
function ensembleParts(model: EnsembleModel, double: boolean): OnnxParts {
  const parts: OnnxParts = { nodes: [], initializers: [] };
  const out = outputOf(model.task);
  const terms: string[] = [];
  model.members.forEach((m, i) => {
    const prefix = `m${i}_`;
    append(parts, prefixOnnxParts(onnxParts(m, { precision: 'double' }), prefix));
    parts.initializers.push(doubleScalar(`ensemble_w${i}`, model.weights[i]!));
    parts.nodes.push(onnxNode('Mul', [`${prefix}${out}`, `ensemble_w${i}`], [`ensemble_term${i}`]));
    terms.push(`ensemble_term${i}`);
  });
  parts.nodes.push(onnxNode('Sum', terms, ['ensemble_sum']), double ? onnxNode('Identity', ['ensemble_sum'], [out]) : onnxNode('Cast', ['ensemble_sum'], [out], ONNX_FLOAT));
  return parts;
}

/**
 * A calibrated model's base as graph parts writing its probabilities from `input`: in FP64 for an
 * ensemble or a table family (a steep isotonic segment would magnify a float32 rounding of
 * them well past 1e-5), in the family's own FP32 otherwise (the calibrator casts them).
 */
function baseParts(model: TrainedModel): OnnxParts {
  if (model instanceof CalibratedModel) throw Errors.internal('a calibrated model is not calibrated again');
  if (model instanceof EnsembleModel) return ensembleParts(model, true);
  return onnxParts(model, isTableFamily(model.family) ? { precision: 'double' } : {});
}

function isTableFamily(f: string): boolean {
  return Object.hasOwn(FAMILIES, f);
}

/**
 * Serializes any trained model to ONNX model bytes: one graph (see the module comment), IR 8,
 * opset 17, with `ai.onnx.ml` 3 when a tree is in it. A family's model gives exactly `toOnnx`'s
 * bytes; every export is deterministic.
 */
export function modelToOnnx(model: TrainedModel): Uint8Array {
  if (model instanceof CalibratedModel) {
    const parts = prefixOnnxParts(baseParts(model.base), 'base_');
    model.calibrator.appendOnnx(parts, `base_${ONNX_PROBABILITIES}`, ONNX_PROBABILITIES, 'calibrator');
    const method = model.calibrator.method;
    return encodeOnnxGraph(parts, shapeOf(model.base), {
      family: model.base.family,
      docString: `medfit ${model.base.family} model (${model.task}), ${method} calibrated`,
      metadata: { calibration: method },
    });
  }
  if (model instanceof EnsembleModel) return encodeOnnxGraph(ensembleParts(model, false), shapeOf(model), { family: 'ensemble' });
  // toOnnx refuses a state of family `ensemble` or with `calibration` that is not one of the
  // classes above: it would be exported wrong.
  return toOnnx(model);
}

/** The shape of an ensemble's or a family model's graph, as `onnxSignature` and `encodeOnnxGraph` take it. */
function shapeOf(model: TrainedModel): Parameters<typeof onnxSignature>[0] {
  if (model instanceof EnsembleModel) {
    return { task: model.task, nFeatures: model.nFeatures, nClasses: model.nClasses, ...(model.nOutputs !== undefined ? { nOutputs: model.nOutputs } : {}) };
  }
  // A family's model: its signature's input says whether it reads rows or windows (and a
  // window-gbdt's width is its window features', which only its weights know).
  const sig = onnxSignature(model);
  const dims = sig.inputs[0]!.shape;
  const base = { task: model.task, nClasses: model.nClasses, ...(model.nOutputs !== undefined ? { nOutputs: model.nOutputs } : {}) };
  return dims.length === 3 ? { ...base, nFeatures: model.nFeatures, sequence: { steps: dims[1]!, channels: dims[2]! } } : { ...base, nFeatures: dims[1]! };
}

/**
 * The tensors `modelToOnnx(model)` takes and returns, in Open Inference Protocol terms: input
 * `input` FP32 [-1, nFeatures] (or [-1, steps, channels]), output `probabilities` [-1, nClasses]
 * or `value` [-1, nOutputs]; a calibrated model's are its base's.
 */
export function modelSignature(model: TrainedModel): OnnxSignature {
  if (model instanceof CalibratedModel) return modelSignature(model.base);
  if (model instanceof EnsembleModel) return onnxSignature(shapeOf(model));
  return onnxSignature(model);
}
