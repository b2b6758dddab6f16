/**
 * Entry point of the MLP training worker thread. It receives one `MlpJob` message, trains, and
 * answers with progress messages and then exactly one `done` or `error` message. The host
 * terminates the thread afterwards (or earlier, to cancel).
 */
import { parentPort } from 'node:worker_threads';
import { Rng, serializeError } from '../../core/index.js';
import type { MlpJob, WorkerMessage } from './protocol.js';

if (!parentPort) throw new Error('mlp/worker.ts must run in a worker thread');
const port = parentPort;
const post = (m: WorkerMessage) => port.postMessage(m);

port.once('message', (job: MlpJob) => {
  // This isolate exists for one training run, so seeding its Math.random is safe, and it is the
  // only way to make tfjs's dropout masks reproducible: Dropout with an explicit seed would draw
  // the same mask at every step (tfjs reseeds per call), which is no longer dropout.
  const rng = new Rng((job.seed ^ 0x5bd1e995) >>> 0);
  Math.random = () => rng.next();
  // tfjs is imported lazily so that a failure to load it (missing package, bad .wasm) is reported
  // through the same error message as any other training failure.
  import('./engine.js')
    .then(({ trainMlp }) => trainMlp(job, (r) => post({ type: 'progress', ...r })))
    .then(({ weights, info }) => post({ type: 'done', weights, info }))
    .catch((e: unknown) => post({ type: 'error', error: serializeError(e) }));
});
