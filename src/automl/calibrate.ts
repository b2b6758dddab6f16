/**
 * Choosing a post-hoc calibrator for a classifier (`--calibrate auto|none|platt|isotonic`).
 *
 * Everything is fitted on out-of-fold predictions and judged on rows it was not fitted on: for
 * each fold, the calibrator is fitted on the other folds' out-of-fold probabilities and applied to
 * this fold's ("cross-fitted"), so the log loss that chooses the method, the calibration reported
 * after it and the cross-validated metrics of the calibrated model are all on held-out rows. The
 * calibrator kept in the model is then fitted on every out-of-fold prediction, as scikit-learn's
 * `CalibratedClassifierCV(ensemble=False)` does, and applied to the model refitted on all rows.
 *
 * Platt scaling reads the logit of each probability and fits the 0/1 labels (logistic
 * recalibration: a sigmoid of a·logit + b, so an under- or over-confident model is stretched or
 * shrunk around its own scale, and the calibration slope of what it was fitted on becomes 1);
 * isotonic regression reads the probability (any monotone map). `auto` keeps the method with the
 * lower cross-fitted log loss; the uncalibrated model's log loss is reported beside them, not
 * chosen: the default hands back calibrated probabilities, which clinicians read as risks.
 */
import { Errors } from '../core/index.js';
import type { Fold } from '../data/index.js';
import {
  classificationReport,
  LOG_LOSS_EPS,
  ProbabilityCalibrator,
  reliabilityBins,
  PLOT_MIN_ROWS,
  RELIABILITY_BINS,
  RELIABILITY_MIN_BIN_ROWS,
  type CalibrationMethod,
  type CalibratorOptions,
  type ReliabilityBin,
} from '../eval/index.js';
import { concatArrays, takeTargets } from './cv.js';

/** What `--calibrate` takes. */
export const CALIBRATE_OPTIONS = ['auto', 'none', 'platt', 'isotonic'] as const;
export type CalibrateOption = (typeof CALIBRATE_OPTIONS)[number];

/** Pooled calibration of out-of-fold probabilities. */
export interface CalibrationSummary {
  log_loss: number;
  brier: number;
  /** Binary only (multiclass: the macro average over one-vs-rest, as the metrics). */
  calibration_slope: number;
  calibration_intercept: number;
}

/** What the report says of calibration: the method, how it was chosen, before and after. */
export interface CalibrationReport {
  asked: CalibrateOption;
  method: 'none' | CalibrationMethod;
  /** Each method tried, with its cross-fitted log loss (lower is better); `error` when it could not be fitted. */
  candidates: { method: 'none' | CalibrationMethod; log_loss?: number; error?: string }[];
  /** The uncalibrated and the calibrated out-of-fold probabilities (after = before for `none`). */
  before: CalibrationSummary;
  after: CalibrationSummary;
  /** Binary, on enough rows: the reliability curve's bins before and after (what the web app plots). */
  reliability?: { before: ReliabilityBin[]; after: ReliabilityBin[] };
}

/** The choice: the report, the calibrator to keep (none for `none`), the cross-fitted probabilities per repetition. */
export interface CalibrationChoice {
  report: CalibrationReport;
  calibrator?: ProbabilityCalibrator;
  /** The calibrated out-of-fold probabilities of each repetition (the input itself for `none`). */
  calibrated: Float64Array[];
}

/**
 * Cross-fits each method on `oofs` (one `rows × nClasses` out-of-fold array per CV repetition,
 * each from the partition `partitions[r]`) and keeps the one `option` asks for (`auto`: the
 * method with the lower log loss; `none` is scored for comparison, and kept only when neither
 * method can be fitted).
 * @throws MedfitError MEDFIT_ERR_BAD_DATA when an explicitly asked method cannot be fitted (a class
 *   absent from the rows a fold's calibrator is fitted on).
 */
export function chooseCalibration(oofs: Float64Array[], y: Float64Array, nClasses: number, partitions: Fold[][], option: CalibrateOption): CalibrationChoice {
  // `none` is scored beside the methods under `auto` (the report shows what calibrating cost or
  // gained) but not chosen: the default promises calibrated probabilities, read as risks.
  const methods: ('none' | CalibrationMethod)[] = option === 'auto' ? ['none', 'platt', 'isotonic'] : [option];
  const eligible = (m: 'none' | CalibrationMethod) => option !== 'auto' || m !== 'none';
  const tried: { method: 'none' | CalibrationMethod; log_loss?: number; error?: string; calibrated?: Float64Array[] }[] = [];
  for (const method of methods) {
    if (method === 'none') {
      tried.push({ method, log_loss: mean(oofs.map((p) => logLoss(y, p, nClasses))), calibrated: oofs });
      continue;
    }
    try {
      const calibrated = oofs.map((p, r) => crossFit(p, y, nClasses, partitions[r]!, method));
      tried.push({ method, log_loss: mean(calibrated.map((p) => logLoss(y, p, nClasses))), calibrated });
    } catch (e) {
      if (option !== 'auto') throw e;
      tried.push({ method, error: e instanceof Error ? e.message : String(e) });
    }
  }
  // Strictly lower only: a tie keeps the simpler choice, listed first.
  let best: (typeof tried)[number] | undefined;
  for (const t of tried) if (eligible(t.method) && t.log_loss !== undefined && (best?.log_loss === undefined || t.log_loss < best.log_loss - 1e-12)) best = t;
  // No method could be fitted (a class too rare for some fold's calibrator): uncalibrated, said so.
  best ??= tried.find((t) => t.method === 'none');
  if (best?.calibrated === undefined) throw Errors.badData('calibration', tried.find((t) => t.error)?.error ?? 'no method could be fitted');
  const all = concatArrays(oofs);
  const labels = concatArrays(oofs.map(() => y));
  const calibrator = best.method === 'none' ? undefined : ProbabilityCalibrator.fit(all, labels, nClasses, options(best.method));
  const before = summary(y, oofs[0]!, nClasses);
  const after = best.method === 'none' ? before : summary(y, best.calibrated[0]!, nClasses);
  const report: CalibrationReport = {
    asked: option,
    method: best.method,
    candidates: tried.map(({ method, log_loss, error }) => ({ method, ...(log_loss !== undefined ? { log_loss } : {}), ...(error !== undefined ? { error } : {}) })),
    before,
    after,
    // Not on tiny tables, where a bin would be a record or two (PLOT_MIN_ROWS).
    ...(nClasses === 2 && y.length >= PLOT_MIN_ROWS
      ? { reliability: { before: bins(y, oofs[0]!), after: bins(y, best.calibrated[0]!) } }
      : {}),
  };
  return { report, ...(calibrator ? { calibrator } : {}), calibrated: best.calibrated };
}

function options(method: CalibrationMethod): CalibratorOptions {
  return method === 'platt' ? { method, input: 'logit', plattTargets: 'labels' } : { method, input: 'probability' };
}

/** Each fold's rows calibrated by a calibrator fitted on the other folds' rows. */
function crossFit(oof: Float64Array, y: Float64Array, nClasses: number, folds: Fold[], method: CalibrationMethod): Float64Array {
  const out = new Float64Array(oof.length);
  for (const fold of folds) {
    const fitted = ProbabilityCalibrator.fit(takeTargets(oof, fold.train, nClasses), takeTargets(y, fold.train, 1), nClasses, options(method));
    const applied = fitted.apply(takeTargets(oof, fold.test, nClasses));
    for (let i = 0; i < fold.test.length; i++) out.set(applied.subarray(i * nClasses, (i + 1) * nClasses), fold.test[i]! * nClasses);
  }
  return out;
}

/** Mean log loss of the true classes' probabilities, clipped and renormalised as the metrics are. */
function logLoss(y: Float64Array, p: Float64Array, nClasses: number): number {
  const eps = LOG_LOSS_EPS;
  let sum = 0;
  for (let i = 0; i < y.length; i++) {
    let norm = 0;
    for (let c = 0; c < nClasses; c++) norm += Math.min(1 - eps, Math.max(eps, p[i * nClasses + c]!));
    sum -= Math.log(Math.min(1 - eps, Math.max(eps, p[i * nClasses + y[i]!]!)) / norm);
  }
  return sum / y.length;
}

function summary(y: Float64Array, p: Float64Array, nClasses: number): CalibrationSummary {
  const m = classificationReport(y, p, nClasses).metrics;
  return { log_loss: m['log_loss']!, brier: m['brier']!, calibration_slope: m['calibration_slope']!, calibration_intercept: m['calibration_intercept']! };
}

function bins(y: Float64Array, p: Float64Array): ReliabilityBin[] {
  const pos = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) pos[i] = p[i * 2 + 1]!;
  return reliabilityBins(y, pos, RELIABILITY_BINS, RELIABILITY_MIN_BIN_ROWS);
}

function mean(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}
