/**
 * Regression metrics, agreeing with scikit-learn 1.2 / SciPy 1.10 (scripts/golden_metrics.py).
 */
import type { RegressionMetricName } from '../core/index.js';
import { Errors } from '../core/index.js';
import { checkFinite, checkSameLength } from './validate.js';

/** What `regressionReport` measures. */
export interface RegressionReport {
  metrics: Record<RegressionMetricName, number>;
}

const FN = 'regressionReport';

/**
 * Evaluates predictions against true values.
 *
 * - mse, rmse, mae: as sklearn.
 * - r2: sklearn `r2_score`: 1 − SS_res/SS_tot; when yTrue is constant, 1 for a perfect prediction
 *   and 0 otherwise (sklearn's force_finite), never ±Infinity.
 * - pearson_r: `scipy.stats.pearsonr`; NaN when either side is constant or there is one row.
 * - bias: mean(yPred − yTrue), positive when the model over-predicts.
 * - error_std: population standard deviation (ddof = 0) of yPred − yTrue, so that
 *   rmse² = bias² + error_std² holds exactly.
 * @throws MedfitError MEDFIT_ERR_BAD_DATA on a length mismatch, empty or non-finite input.
 */
export function regressionReport(yTrue: Float64Array, yPred: Float64Array): RegressionReport {
  checkSameLength(FN, 'yTrue', yTrue, 'yPred', yPred);
  const n = yTrue.length;
  if (n === 0) throw Errors.badData(FN, 'yTrue is empty; metrics need at least one row');
  checkFinite(FN, 'yTrue', yTrue);
  checkFinite(FN, 'yPred', yPred);
  let sy = 0;
  let sp = 0;
  let se = 0;
  let sae = 0;
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const e = yPred[i]! - yTrue[i]!;
    sy += yTrue[i]!;
    sp += yPred[i]!;
    se += e;
    sae += Math.abs(e);
    sse += e * e;
  }
  const my = sy / n;
  const mp = sp / n;
  const bias = se / n;
  // Second pass around the means: the one-pass Σx² − n·mean² formula cancels catastrophically.
  let ssTot = 0;
  let ssPred = 0;
  let cross = 0;
  let sdev = 0;
  for (let i = 0; i < n; i++) {
    const dy = yTrue[i]! - my;
    const dp = yPred[i]! - mp;
    ssTot += dy * dy;
    ssPred += dp * dp;
    cross += dy * dp;
    const de = yPred[i]! - yTrue[i]! - bias;
    sdev += de * de;
  }
  const mse = sse / n;
  const r2 = ssTot > 0 ? 1 - sse / ssTot : sse === 0 ? 1 : 0;
  let pearson = NaN;
  if (n >= 2 && ssTot > 0 && ssPred > 0) pearson = Math.max(-1, Math.min(1, cross / Math.sqrt(ssTot * ssPred)));
  return {
    metrics: {
      mse,
      rmse: Math.sqrt(mse),
      mae: sae / n,
      r2,
      pearson_r: pearson,
      bias,
      error_std: Math.sqrt(sdev / n),
    },
  };
}
