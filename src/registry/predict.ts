import type { RawRecord, Warning } from '../core/index.js';
import { transformRecords, transformTable, type Table } from '../data/index.js';
import type { Artifact } from './artifact.js';

/** One prediction: a label with class probabilities, or a value. */
export type Prediction = { label: string; probabilities: Record<string, number> } | { value: number };

/** Predictions and what was imputed or skipped on the way. */
export interface PredictionResult {
  predictions: Prediction[];
  warnings: Warning[];
}

/** Predicts every row of a table (a batch file). Cells of the wrong type are imputed, with a warning. */
export function predictTable(a: Artifact, table: Table): PredictionResult {
  const { x, warnings } = transformTable(a.manifest.pipeline, table);
  return { predictions: formatPredictions(a.manifest.target.classes, a.model.predict(x), x.rows), warnings };
}

/** Predicts raw records (`{"age": 63, ...}`); a value of the wrong type is an error naming it. */
export function predictRecords(a: Artifact, records: RawRecord[]): PredictionResult {
  const { x, warnings } = transformRecords(a.manifest.pipeline, records);
  return { predictions: formatPredictions(a.manifest.target.classes, a.model.predict(x), x.rows), warnings };
}

/**
 * Turns model outputs into predictions: with `classes`, `rows × classes` probabilities become the
 * most probable label and a probability per class; without, one value per row.
 */
export function formatPredictions(classes: string[] | undefined, out: ArrayLike<number>, rows: number): Prediction[] {
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
