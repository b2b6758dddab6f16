/**
 * Runs one sequence-network training in a `worker_threads` Worker, so the caller's event loop (CLI
 * progress, HTTP server) stays responsive while the trainer computes, and so cancelling is a
 * `terminate()` that works even in the middle of a WebAssembly kernel.
 */
import { Errors, siblingModule } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import { liveTrainingWorkers, runTrainingWorker } from '../training-worker.js';
import type { TrainContext } from '../types.js';
import type { F32Matrix, SeqJob, SeqTrainInfo } from './protocol.js';
import type { SeqNetWeights } from './weights.js';

/** Number of training workers currently running (tests check that none outlive a run). */
export const liveSeqWorkers = liveTrainingWorkers;

/**
 * A Float32 copy, not the caller's Float64Array: transferring that would detach the caller's
 * windows, which they still need (evaluation, other folds); the trainer computes in Float32.
 */
export function toF32(m: Matrix): F32Matrix {
  return { rows: m.rows, cols: m.cols, data: Float32Array.from(m.data.subarray(0, m.rows * m.cols)) };
}

/** What `runSeqTraining` is given: the job without its arrays converted yet. */
export type SeqJobInput = Omit<SeqJob, 'x' | 'valid'> & { x: Matrix; valid?: { x: Matrix; y: Float64Array } };

/**
 * Trains in a fresh worker and resolves with the best weights. Progress per epoch goes to
 * `ctx.onProgress` (stage: the family's name); `ctx.signal` terminates the worker and rejects with
 * `Errors.cancelled`. Every failure (an error thrown in the worker, a crash, an exit without an
 * answer) rejects with a `MedfitError`, and the worker has exited by the time the promise settles.
 */
export function runSeqTraining(input: SeqJobInput, ctx: TrainContext): Promise<{ weights: SeqNetWeights; info: SeqTrainInfo }> {
  if (ctx.signal?.aborted) return Promise.reject(Errors.cancelled('training'));
  const { x, y, weights, groups, valid, ...rest } = input;
  const job: SeqJob = {
    ...rest,
    x: toF32(x),
    y: Float64Array.from(y),
    ...(weights ? { weights: Float64Array.from(weights) } : {}),
    ...(groups ? { groups: Int32Array.from(groups) } : {}),
    ...(valid ? { valid: { x: toF32(valid.x), y: Float64Array.from(valid.y) } } : {}),
  };
  const transfer = [job.x.data.buffer, job.y.buffer, job.weights?.buffer, job.groups?.buffer, job.valid?.x.data.buffer, job.valid?.y.buffer].filter(
    (b): b is ArrayBuffer => b !== undefined,
  );

  return runTrainingWorker<SeqNetWeights, SeqTrainInfo>(siblingModule(import.meta.url, 'worker'), job, transfer, ctx, {
    name: job.family,
    stage: job.family,
    // Float32 (trainer) against Float64 (forward) differ around 1e-6 relative.
    maxForwardDiff: 1e-3,
    trainer: 'the trainer',
  });
}
