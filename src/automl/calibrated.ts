/**
 * A classifier with a post-hoc probability calibrator (src/eval's `ProbabilityCalibrator`: Platt
 * scaling or isotonic regression, fitted on out-of-fold predictions) applied to what it predicts.
 * It looks like its base model to a leaderboard or a manifest (same family, task, classes,
 * features, parameters); its state is the base's with `calibration` added (model-io.ts's
 * `loadModel` reads it back), its ONNX graph the base's followed by the calibrator's nodes
 * (model-io.ts's `modelToOnnx`), and it is explained by sampling Shapley values of the calibrated
 * output, not by the base family's exact method (src/models/explain.ts).
 */
import { Errors, type Matrix, type Task } from '../core/index.js';
import type { ProbabilityCalibrator } from '../eval/index.js';
import type { Family, ModelState, Params, SequenceShape, TrainedModel } from '../models/index.js';

/** A classification model whose probabilities go through a fitted calibrator. */
export class CalibratedModel implements TrainedModel {
  readonly family: Family;
  readonly task: Task;
  readonly nClasses: number;
  readonly nFeatures: number;
  readonly params: Params;
  readonly sequence?: SequenceShape;

  /**
   * @param base a trained classifier (an ensemble included), itself uncalibrated.
   * @param calibrator fitted on the base's out-of-fold probabilities, for its number of classes.
   * @throws MedfitError MEDFIT_ERR_INTERNAL on a regression model, a calibrated base or a class
   *   count that differs (a bug of the caller's; model-io.ts's `loadModel` checks states first).
   */
  constructor(
    readonly base: TrainedModel,
    readonly calibrator: ProbabilityCalibrator,
  ) {
    const bad = (m: string) => Errors.internal(`cannot calibrate the ${base.family} model: ${m}`);
    if (base.task === 'regression') throw bad('calibration applies to classifiers, this one is a regression');
    if (base instanceof CalibratedModel) throw bad('it is calibrated already');
    if (calibrator.nClasses !== base.nClasses) throw bad(`the calibrator is for ${calibrator.nClasses} classes, the model has ${base.nClasses}`);
    this.family = base.family;
    this.task = base.task;
    this.nClasses = base.nClasses;
    this.nFeatures = base.nFeatures;
    this.params = base.params;
    if (base.sequence !== undefined) this.sequence = base.sequence;
  }

  /** The calibrated probabilities, `rows × nClasses` (binary as [1 − p, p]). */
  predict(x: Matrix): Float64Array {
    return this.calibrator.apply(this.base.predict(x));
  }

  /** The base's state with the calibrator's (`calibration`). */
  toState(): ModelState {
    return { ...this.base.toState(), calibration: this.calibrator.toJSON() };
  }
}
