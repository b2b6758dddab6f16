import { Errors, type Matrix, type RawRecord, type Warning } from '../core/index.js';
import { transformRecords, transformTable, type FeatureStep, type FittedPipeline, type Table } from '../data/index.js';
import { explainAsync, explainCost, type ExplanationMethod, type ExplanationSpace, type GbdtWeights, type TrainedModel } from '../models/index.js';
import { readSessionsFor, segmentsOf, windowize, windowWarnings, type SequenceData, type SequencePrep } from '../sequence/index.js';
import { CalibratedModel, EnsembleModel } from '../automl/index.js';
import type { Artifact, Manifest } from './artifact.js';

/** One prediction: a label with class probabilities, a value, or one value per output. */
export type Prediction = { label: string; probabilities: Record<string, number> } | { value: number } | { values: Record<string, number> };

/** A sequence model's prediction for one window, with where the window lies. */
export type WindowPrediction = Prediction & { subject: string; session: string; start: string; end: string };

/** Predictions and what was imputed or skipped on the way. */
export interface PredictionResult {
  predictions: Prediction[];
  warnings: Warning[];
}

/** Predicts every row of a table (a batch file). Cells of the wrong type are imputed, with a warning. */
export function predictTable(a: Artifact, table: Table): PredictionResult {
  const { x, warnings } = transformTable(tablePipeline(a.manifest), table);
  return { predictions: formatPredictions(a.manifest.target.classes, a.model.predict(x), x.rows, outputNames(a.manifest)), warnings };
}

/** Predicts raw records (`{"age": 63, ...}`); a value of the wrong type is an error naming it. */
export function predictRecords(a: Artifact, records: RawRecord[]): PredictionResult {
  const { x, warnings } = transformRecords(tablePipeline(a.manifest), records);
  return { predictions: formatPredictions(a.manifest.target.classes, a.model.predict(x), x.rows, outputNames(a.manifest)), warnings };
}

/** The pipeline of a table model, or a usage error for a sequence model (which takes samples). */
export function tablePipeline(m: Manifest): FittedPipeline {
  if (m.pipeline === undefined) throw Errors.usage(`this is a sequence model (${m.model.family}): it predicts from sensor samples (subject, time and channel columns), one prediction per window, not from table rows`);
  return m.pipeline;
}

/** The sequence preparation of a sequence model, or a usage error for a table model. */
export function sequencePrep(m: Manifest): SequencePrep {
  if (m.sequence === undefined) throw Errors.usage(`this is a table model (${m.model.family}): it predicts from rows of feature columns, not from sensor samples`);
  return m.sequence;
}

/** Reads a long-format table for a sequence model (missing channels filled, extra ones ignored, with warnings). */
export function sequenceDataFor(a: Artifact | { manifest: Manifest }, table: Table): SequenceData {
  const prep = sequencePrep(a.manifest);
  return readSessionsFor(table, prep.columns, prep.channels, prep.timeUnit, prep.targets.map((t) => t.name));
}

/**
 * Predicts every window of a sequence model's sessions: resampled to the model's rate, filtered,
 * normalised and windowed exactly as in training, one prediction per window with its subject,
 * session and time span (ISO 8601 for epoch times, seconds for relative ones).
 */
export function predictSequence(a: Artifact, data: SequenceData): { predictions: WindowPrediction[]; warnings: Warning[] } {
  const prep = sequencePrep(a.manifest);
  const w = windowize(segmentsOf(data.sessions, prep), prep, prep, []);
  if (w.x.rows === 0) throw Errors.badData(data.source, `no session is long enough for one window (${prep.window} samples at ${prep.rate} Hz = ${prep.window / prep.rate} s)`);
  const preds = formatPredictions(a.manifest.target.classes, a.model.predict(w.x), w.x.rows, outputNames(a.manifest));
  const time = (s: number) => (data.timeUnit === 'iso' || s > 1e8 ? new Date(Math.round(s * 1000)).toISOString() : String(Math.round(s * 1e6) / 1e6));
  return {
    predictions: preds.map((p, i) => ({ ...p, subject: w.info[i]!.subject, session: w.info[i]!.session, start: time(w.info[i]!.start), end: time(w.info[i]!.end) })),
    warnings: [...data.warnings, ...windowWarnings(w)],
  };
}

/** The output names of a multi-output regression model (its target columns), else undefined. */
export function outputNames(m: Manifest): string[] | undefined {
  return (m.model.nOutputs ?? 1) > 1 ? m.target.column.split(',') : undefined;
}

/**
 * Turns model outputs into predictions: with `classes`, `rows × classes` probabilities become the
 * most probable label and a probability per class; without, one value per row.
 */
export function formatPredictions(classes: string[] | undefined, out: ArrayLike<number>, rows: number, outputs?: string[]): Prediction[] {
  if (!classes && outputs && outputs.length > 1) {
    const k = outputs.length;
    return Array.from({ length: rows }, (_, i) => {
      const values = Object.create(null) as Record<string, number>;
      for (let j = 0; j < k; j++) values[outputs[j]!] = out[i * k + j]!;
      return { values };
    });
  }
  if (!classes) return Array.from({ length: rows }, (_, i) => ({ value: out[i]! }));
  const k = classes.length;
  return Array.from({ length: rows }, (_, i) => {
    // No prototype: a class named `__proto__` is then a key like any other, not a prototype change.
    const probabilities = Object.create(null) as Record<string, number>;
    let best = 0;
    for (let c = 0; c < k; c++) {
      probabilities[classes[c]!] = out[i * k + c]!;
      if (out[i * k + c]! > out[i * k + best]!) best = c;
    }
    return { label: classes[best]!, probabilities };
  });
}

// ---------------------------------------------------------------------------------------------
// Per-prediction explanations

/**
 * One record's explanation: the raw output's `base` and each input column's contribution, which
 * sum to the raw output in `space` (binary: the log-odds of the positive class; multiclass: each
 * class's logit; regression: the value). One number each for binary and single-output
 * regression; one map per class (multiclass) or per output (several regression outputs), keyed
 * by the class label or output name.
 */
export interface RecordExplanation {
  base: number | Record<string, number>;
  contributions: Record<string, number> | Record<string, Record<string, number>>;
  space: ExplanationSpace;
  method: ExplanationMethod;
}

/** A prediction with its explanation. */
export type ExplainedPrediction = Prediction & { explanation: RecordExplanation };

/**
 * What a trained table model lacks for explanations, or undefined when it has it all: gbdt trees
 * with their node counts (stored since explanations existed), and for linear models and networks
 * the manifest's `explain.reference` (the training means of the features).
 */
export function explainProblem(m: Manifest, model: TrainedModel): string | undefined {
  if (m.pipeline === undefined) return `it is a sequence model (${m.model.family}); explanations are available for table models`;
  // An ensemble or a calibrated model is explained by sampling Shapley values of its own output,
  // measured from the training means (tree SHAP or the linear method would explain a member's margin).
  if (model instanceof EnsembleModel || model instanceof CalibratedModel) return hasReference(m, model) ? undefined : 'its manifest has no reference to measure contributions from (the training means of its features)';
  switch (model.family) {
    case 'gbdt': {
      const w = ((model as { weights?: unknown }).weights ?? model.toState().weights) as GbdtWeights;
      return w.trees.every((t) => t.cover !== undefined) ? undefined : 'its trees were saved without their node counts (it was trained before explanations existed)';
    }
    case 'logistic':
    case 'linear':
    case 'mlp':
      return hasReference(m, model) ? undefined : 'its manifest has no reference to measure contributions from (the training means of its features; it was trained before explanations existed)';
    default:
      return `explanations are not available for family ${model.family}`;
  }
}

/** Whether the manifest holds the training means of every model feature (the explanations' baseline). */
function hasReference(m: Manifest, model: TrainedModel): boolean {
  const ref = m.explain?.reference;
  return Array.isArray(ref) && ref.length === model.nFeatures && ref.every((v) => typeof v === 'number' && Number.isFinite(v));
}

/**
 * The input column of each model feature: `columns` in the pipeline's order, and for feature j
 * the index of its column (`groups[j]`): a categorical column's one-hot features, a datetime
 * column's parts and any `__missing` indicator all belong to their column.
 */
export function featureColumns(p: FittedPipeline): { columns: string[]; groups: Int32Array } {
  const groups = new Int32Array(p.features.length);
  let j = 0;
  p.steps.forEach((step, g) => {
    for (let k = stepWidth(step); k > 0; k--) groups[j++] = g;
  });
  if (j !== p.features.length) throw Errors.internal(`the pipeline's steps make ${j} features, its feature list has ${p.features.length}`);
  return { columns: p.steps.map((s) => s.column), groups };
}

/** Features a step makes (as the pipeline writes them: see `outputNames` in data/pipeline.ts). */
function stepWidth(step: FeatureStep): number {
  const base = step.kind === 'categorical' ? step.categories.length : step.kind === 'datetime' ? step.parts.length : 1;
  return base + (step.indicator ? 1 : 0);
}

/** How `explainPredictions` runs. */
export interface ExplainRecordsOptions {
  /** Names the model in messages (`model "bc" version 2`); never a path. */
  name?: string;
  /** Refuse (413) when `explainCost` exceeds this. */
  maxCost?: number;
  /** Longest stretch of work between yields to the event loop (see `explainAsync`). */
  sliceMs?: number;
  /** Once aborted, the work stops before its next step and the call rejects with `Errors.cancelled`. */
  signal?: AbortSignal | undefined;
  /**
   * Runs the work (once the model and the cost are checked, so that a refusal is immediate):
   * a server's bounded queue of explanations, which may refuse it (503) or start it later.
   * Default: at once.
   */
  schedule?: <T>(work: () => Promise<T>) => Promise<T>;
}

/**
 * Predicts and explains rows already through the model's pipeline (`x`) with the training
 * engine, so that the probabilities or values returned are exactly the ones the contributions
 * add up to (ONNX Runtime computes in float32; these are float64, and agree with it to about
 * 1e-6). Contributions are per input column (see `featureColumns`): gbdt and linear models sum
 * their features' values; the mlp's sampling estimate takes each column as one player. A model
 * lacking what explanations need (`explainProblem`) is refused with MEDFIT_ERR_MANIFEST (422),
 * asking to retrain.
 */
export async function explainPredictions(a: { manifest: Manifest; model: TrainedModel }, x: Matrix, options: ExplainRecordsOptions = {}): Promise<ExplainedPrediction[]> {
  const m = a.manifest;
  const model = a.model;
  const pipeline = tablePipeline(m);
  const name = options.name ?? 'this model';
  const problem = explainProblem(m, model);
  if (problem !== undefined) throw Errors.manifest(name, `cannot explain its predictions: ${problem}; retrain it to have them explained`);
  const { columns, groups } = featureColumns(pipeline);
  if (options.maxCost !== undefined) {
    const cost = explainCost(model, x.rows, { groups });
    if (cost > options.maxCost) {
      throw Errors.tooLarge(
        `explaining ${x.rows} record(s) with ${name} (${model.family}, ${columns.length} input columns) takes about ${Math.round(cost / 1e6)} million operations, more than one request may ask for (${Math.round(options.maxCost / 1e6)} million); send fewer records per request`,
      );
    }
  }
  const outputs = outputNames(m);
  const classes = m.task === 'regression' ? undefined : m.target.classes;
  const work = async () => {
    const e = await explainAsync(model, x, {
      groups,
      ...(m.explain ? { reference: m.explain.reference } : {}),
      ...(options.sliceMs !== undefined ? { sliceMs: options.sliceMs } : {}),
      signal: options.signal,
    });
    return { e, predictions: formatPredictions(classes, model.predict(x), x.rows, outputs) };
  };
  const { e, predictions } = await (options.schedule ? options.schedule(work) : work());
  // Keys of several raw outputs: class labels (multiclass) or output names (several targets).
  const keys = e.outputs === 1 ? undefined : m.task === 'multiclass' ? classes : outputs;
  if (keys !== undefined && keys.length !== e.outputs) throw Errors.internal(`the model explains ${e.outputs} outputs but its manifest names ${keys.length}`);
  const G = e.features;
  const K = e.outputs;
  return predictions.map((p, r) => {
    // No prototype: a column or class named `__proto__` is a key like any other.
    const perOutput = (k: number): Record<string, number> => {
      const c = Object.create(null) as Record<string, number>;
      for (let g = 0; g < G; g++) c[columns[g]!] = e.contributions[(r * G + g) * K + k]!;
      return c;
    };
    let base: RecordExplanation['base'];
    let contributions: RecordExplanation['contributions'];
    if (keys === undefined) {
      base = e.base[0]!;
      contributions = perOutput(0);
    } else {
      const b = Object.create(null) as Record<string, number>;
      const c = Object.create(null) as Record<string, Record<string, number>>;
      keys.forEach((key, k) => {
        b[key] = e.base[k]!;
        c[key] = perOutput(k);
      });
      base = b;
      contributions = c;
    }
    return { ...p, explanation: { base, contributions, space: e.space, method: e.method } };
  });
}

/** `explainPredictions` on raw records (`{"age": 63, ...}`), with what `predictRecords` warns of. */
export async function explainRecords(a: Artifact, records: RawRecord[], options: ExplainRecordsOptions = {}): Promise<{ predictions: ExplainedPrediction[]; warnings: Warning[] }> {
  const { x, warnings } = transformRecords(tablePipeline(a.manifest), records);
  return { predictions: await explainPredictions(a, x, options), warnings };
}

