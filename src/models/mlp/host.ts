/**
 * Runs one MLP training in a `worker_threads` Worker so the caller's event loop (CLI progress bar,
 * HTTP server) stays responsive while the trainer computes, and so cancelling is a `terminate()`
 * that works even in the middle of a WebAssembly kernel.
 */
import { Errors, siblingModule } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import { liveTrainingWorkers, runTrainingWorker } from '../training-worker.js';
import type { TrainContext, TrainData } from '../types.js';
import type { MlpWeights } from './forward.js';
import type { F32Matrix, MlpConfig, MlpJob, MlpTrainInfo } from './protocol.js';

/** Number of training workers currently running (tests check that none outlive a run). */
export const liveWorkers = liveTrainingWorkers;

function toF32(m: Matrix): F32Matrix {
  // A Float32 copy, not the caller's Float64Array: transferring that would detach the caller's
  // features, which they still need (evaluation, other folds); the trainer computes in float32 anyway.
  return { rows: m.rows, cols: m.cols, data: Float32Array.from(m.data) };
}

/**
 * Trains in a fresh worker and resolves with the best weights. Progress per epoch goes to
 * `ctx.onProgress`; `ctx.signal` terminates the worker and rejects with `Errors.cancelled`. Every
 * failure (an error thrown in the worker, a crash, an exit without an answer) rejects with a
 * `MedfitError`, and the worker has exited by the time the promise settles.
 */
export function runTraining(
  data: TrainData,
  nClasses: number,
  config: MlpConfig,
  ctx: TrainContext,
): Promise<{ weights: MlpWeights; info: MlpTrainInfo }> {
  if (ctx.signal?.aborted) return Promise.reject(Errors.cancelled('training'));
  const job: MlpJob = {
    task: data.task,
    nClasses,
    ...((data.nOutputs ?? 1) > 1 ? { nOutputs: data.nOutputs! } : {}),
    seed: ctx.seed,
    config,
    x: toF32(data.x),
    y: Float64Array.from(data.y),
    ...(data.weights ? { weights: Float64Array.from(data.weights) } : {}),
    ...(data.groups ? { groups: Int32Array.from(data.groups) } : {}),
    ...(data.valid ? { valid: { x: toF32(data.valid.x), y: Float64Array.from(data.valid.y) } } : {}),
  };
  const transfer = [job.x.data.buffer, job.y.buffer, job.weights?.buffer, job.groups?.buffer, job.valid?.x.data.buffer, job.valid?.y.buffer].filter(
    (b): b is ArrayBuffer => b !== undefined,
  );

  return runTrainingWorker<MlpWeights, MlpTrainInfo>(siblingModule(import.meta.url, 'worker'), job, transfer, ctx, {
    name: 'MLP',
    stage: 'mlp',
    // float32 (the trainer) against float64 (forward) differ around 1e-7 relative.
    maxForwardDiff: 1e-4,
    trainer: 'its trainer',
  });
}
