import { Errors, type RawRecord, type Warning } from '../core/index.js';
import { transformRecords, transformTable, type FittedPipeline, type Table } from '../data/index.js';
import { readSessionsFor, segmentsOf, windowize, windowWarnings, type SequenceData, type SequencePrep } from '../sequence/index.js';
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
