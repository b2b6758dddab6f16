/**
 * Runs one sequence-network training in a `worker_threads` Worker, so the caller's event loop (CLI
 * progress, HTTP server) stays responsive while the trainer computes, and so cancelling is a
 * `terminate()` that works even in the middle of a WebAssembly kernel.
 */
import type { Worker } from 'node:worker_threads';
import { Errors, deserializeError, isMedfitError, siblingModule, startWorker } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import type { TrainContext } from '../types.js';
import type { F32Matrix, SeqJob, SeqTrainInfo, WorkerMessage } from './protocol.js';
import type { SeqNetWeights } from './weights.js';

let live = 0;

/** Number of sequence training workers currently running (tests check that none outlive a run). */
export function liveSeqWorkers(): number {
  return live;
}

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

  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      worker = startWorker(siblingModule(import.meta.url, 'worker'));
    } catch (e) {
      reject(Errors.internal(`could not start the ${job.family} training worker: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    live++;
    let settled = false;
    let exited = false;
    const markExited = () => {
      if (exited) return;
      exited = true;
      live--;
    };
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      ctx.signal?.removeEventListener('abort', onAbort);
      // Settle only once the thread is gone, so no caller ever sees a finished run whose worker
      // is still burning a core.
      const done = () => {
        markExited();
        outcome();
      };
      if (exited) outcome();
      else worker.terminate().then(done, done);
    };
    const onAbort = () => finish(() => reject(Errors.cancelled('training')));
    ctx.signal?.addEventListener('abort', onAbort, { once: true });

    worker.on('message', (m: WorkerMessage) => {
      if (settled) return;
      if (m.type === 'progress') {
        try {
          ctx.onProgress?.({ stage: job.family, epoch: m.epoch, loss: m.loss, ...(m.valLoss !== undefined ? { valLoss: m.valLoss } : {}), fraction: m.fraction });
        } catch (e) {
          // A failing progress sink must not leave the worker running unobserved.
          finish(() => reject(isMedfitError(e) ? e : Errors.internal(`progress callback failed: ${e instanceof Error ? e.message : String(e)}`)));
        }
      } else if (m.type === 'done') {
        // Float32 (trainer) against Float64 (forward) differ around 1e-6 relative; anything near
        // 1e-3 means the exported layout is wrong, and predictions would be too.
        if (!(m.info.forwardMaxDiff <= 1e-3))
          finish(() => reject(Errors.internal(`${job.family} forward pass disagrees with the trainer by ${m.info.forwardMaxDiff}`)));
        else finish(() => resolve({ weights: m.weights, info: m.info }));
      } else {
        finish(() => reject(deserializeError(m.error)));
      }
    });
    worker.on('error', (e) => finish(() => reject(Errors.internal(`${job.family} training worker failed: ${e.message}`))));
    worker.on('messageerror', (e) => finish(() => reject(Errors.internal(`${job.family} training worker sent an unreadable message: ${String(e)}`))));
    worker.on('exit', (code) => {
      markExited();
      finish(() => reject(Errors.internal(`${job.family} training worker exited (code ${code}) without a result`)));
    });
    worker.postMessage(job, transfer);
  });
}
