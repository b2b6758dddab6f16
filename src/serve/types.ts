import type { Matrix } from '../core/index.js';
import type { SequencePrep } from '../sequence/index.js';

/**
 * The serving contract: a loaded model answers inference on its numeric feature tensor (after the
 * fitted pipeline), through ONNX Runtime, with concurrent requests to the same model
 * micro-batched.
 */

/** Open Inference Protocol tensor datatypes medfit models use. */
export type TensorDatatype = 'FP32' | 'FP64' | 'INT64' | 'INT32' | 'BOOL' | 'BYTES';

/** Metadata of one input or output tensor (V2 `$metadata_tensor`). */
export interface TensorMetadata {
  name: string;
  datatype: TensorDatatype;
  /** -1 for a variable dimension (the batch). */
  shape: number[];
}

/** One output tensor of an inference. */
export interface OutputTensor {
  name: string;
  datatype: 'FP32';
  shape: number[];
  data: Float32Array;
}

/** A model ready to run. */
export interface RuntimeModel {
  /** The feature tensor: `input`, FP32, [-1, nFeatures]. */
  readonly inputs: TensorMetadata[];
  /** `probabilities` [-1, nClasses] for classification, `value` [-1, 1] for regression. */
  readonly outputs: TensorMetadata[];
  /** Runs `rows` rows of row-major features; resolves with one entry per output. */
  infer(features: Float32Array, rows: number): Promise<OutputTensor[]>;
}

/**
 * A sequence model as served: how raw samples become windows (`prep`, from the manifest), and
 * windows become outputs via ONNX Runtime. Window features (window-gbdt) are computed inside
 * `predictWindows`, so every sequence model takes the same windows.
 */
export interface ServedSequence {
  /** Resampling, filtering, normalisation and windowing, exactly as in training. */
  prep: SequencePrep;
  /** Classification labels, in output order. */
  classes?: string[];
  /** Multi-output regression: the output names (target columns), in output order. */
  outputs?: string[];
  /**
   * x: windows flattened step-major, rows × (window · channels), already normalised (what
   * `windowize` returns). Resolves with rows × width model outputs (class probabilities, or one
   * value per output), row-major.
   */
  predictWindows(x: Matrix): Promise<Float64Array>;
}
