/**
 * One training run in a `worker_threads` Worker, for the families that train in one (the MLP on its
 * fused trainer, the sequence networks on their WebAssembly trainer): the caller's event loop (CLI
 * progress, HTTP server) stays responsive, and cancelling is a `terminate()` that works even in
 * the middle of a WebAssembly kernel.
 */
import type { Worker } from 'node:worker_threads';
import { Errors, deserializeError, isMedfitError, startWorker, type SerializedError } from '../core/index.js';
import type { TrainContext } from './types.js';

/** What a training worker posts back. */
export type TrainingMessage<W, I> =
  | { type: 'progress'; epoch: number; loss: number; valLoss?: number; fraction: number }
  | { type: 'done'; weights: W; info: I }
  | { type: 'error'; error: SerializedError };

let live = 0;

/** Training workers currently running in this process (tests check that none outlive a run). */
export function liveTrainingWorkers(): number {
  return live;
}

/** How a family's worker is named in messages and checked. */
export interface TrainingWorkerOptions {
  /** In messages: `MLP`, `lstm`... */
  name: string;
  /** `Progress.stage` of its epochs. */
  stage: string;
  /**
   * The largest difference allowed between the trainer's own outputs and the plain-TypeScript
   * forward pass over the exported weights (`info.forwardMaxDiff`), and what the trainer is.
   */
  maxForwardDiff: number;
  trainer: string;
}

/**
 * Posts `job` (with `transfer`) to a fresh worker started from `entry` and resolves with its
 * weights and info. Progress goes to `ctx.onProgress`; `ctx.signal` terminates the worker and
 * rejects with `Errors.cancelled`. Every failure (an error thrown in the worker, a crash, an exit
 * without an answer, a forward pass that disagrees with the trainer) rejects with a
 * `MedfitError`, and the worker has exited by the time the promise settles.
 */
export function runTrainingWorker<W, I extends { forwardMaxDiff: number }>(
  entry: URL,
  job: unknown,
  transfer: ArrayBuffer[],
  ctx: TrainContext,
  o: TrainingWorkerOptions,
): Promise<{ weights: W; info: I }> {
  if (ctx.signal?.aborted) return Promise.reject(Errors.cancelled('training'));
  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      worker = startWorker(entry);
    } catch (e) {
      reject(Errors.internal(`could not start the ${o.name} training worker: ${e instanceof Error ? e.message : String(e)}`));
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

    worker.on('message', (m: TrainingMessage<W, I>) => {
      if (settled) return;
      if (m.type === 'progress') {
        try {
          ctx.onProgress?.({ stage: o.stage, epoch: m.epoch, loss: m.loss, ...(m.valLoss !== undefined ? { valLoss: m.valLoss } : {}), fraction: m.fraction });
        } catch (e) {
          // A failing progress sink must not leave the worker running unobserved.
          finish(() => reject(isMedfitError(e) ? e : Errors.internal(`progress callback failed: ${e instanceof Error ? e.message : String(e)}`)));
        }
      } else if (m.type === 'done') {
        // Float32 training against the Float64 forward pass differ by rounding only; anything
        // near the bound means the exported layout is wrong, and predictions would be too.
        if (!(m.info.forwardMaxDiff <= o.maxForwardDiff))
          finish(() => reject(Errors.internal(`${o.name} forward pass disagrees with ${o.trainer} by ${m.info.forwardMaxDiff}`)));
        else finish(() => resolve({ weights: m.weights, info: m.info }));
      } else {
        finish(() => reject(deserializeError(m.error)));
      }
    });
    worker.on('error', (e) => finish(() => reject(Errors.internal(`${o.name} training worker failed: ${e.message}`))));
    worker.on('messageerror', (e) => finish(() => reject(Errors.internal(`${o.name} training worker sent an unreadable message: ${String(e)}`))));
    worker.on('exit', (code) => {
      markExited();
      finish(() => reject(Errors.internal(`${o.name} training worker exited (code ${code}) without a result`)));
    });
    worker.postMessage(job, transfer);
  });
}
