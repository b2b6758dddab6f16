/**
 * Runs one MLP training in a `worker_threads` Worker so the caller's event loop (CLI progress bar,
 * HTTP server) stays responsive while tfjs computes, and so cancelling is a `terminate()` that
 * works even in the middle of a WASM kernel.
 */
import type { Worker } from 'node:worker_threads';
import { Errors, deserializeError, isMedfitError, siblingModule, startWorker } from '../../core/index.js';
import type { Matrix } from '../../core/index.js';
import type { TrainContext, TrainData } from '../types.js';
import type { MlpWeights } from './forward.js';
import type { F32Matrix, MlpConfig, MlpJob, MlpTrainInfo, WorkerMessage } from './protocol.js';

let live = 0;

/** Number of MLP training workers currently running (tests check that none outlive a run). */
export function liveWorkers(): number {
  return live;
}

function toF32(m: Matrix): F32Matrix {
  // A Float32 copy, not the caller's Float64Array: transferring that would detach the caller's
  // features, which they still need (evaluation, other folds); tfjs computes in float32 anyway.
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

  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      worker = startWorker(siblingModule(import.meta.url, 'worker'));
    } catch (e) {
      reject(Errors.internal(`could not start the MLP training worker: ${e instanceof Error ? e.message : String(e)}`));
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
          ctx.onProgress?.({ stage: 'mlp', epoch: m.epoch, loss: m.loss, ...(m.valLoss !== undefined ? { valLoss: m.valLoss } : {}), fraction: m.fraction });
        } catch (e) {
          // A failing progress sink must not leave the worker running unobserved.
          finish(() => reject(isMedfitError(e) ? e : Errors.internal(`progress callback failed: ${e instanceof Error ? e.message : String(e)}`)));
        }
      } else if (m.type === 'done') {
        // float32 (tfjs) against float64 (forward) differ around 1e-7 relative; anything near 1e-4
        // means the exported layout or activations are wrong, and predictions would be too.
        if (!(m.info.forwardMaxDiff <= 1e-4))
          finish(() => reject(Errors.internal(`MLP forward pass disagrees with tfjs by ${m.info.forwardMaxDiff}`)));
        else finish(() => resolve({ weights: m.weights, info: m.info }));
      } else {
        finish(() => reject(deserializeError(m.error)));
      }
    });
    worker.on('error', (e) => finish(() => reject(Errors.internal(`MLP training worker failed: ${e.message}`))));
    worker.on('messageerror', (e) => finish(() => reject(Errors.internal(`MLP training worker sent an unreadable message: ${String(e)}`))));
    worker.on('exit', (code) => {
      markExited();
      finish(() => reject(Errors.internal(`MLP training worker exited (code ${code}) without a result`)));
    });
    worker.postMessage(job, transfer);
  });
}
