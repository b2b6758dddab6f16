/**
 * Entry point of the MLP training worker thread. It receives one `MlpJob` message, trains, and
 * answers with progress messages and then exactly one `done` or `error` message. The host
 * terminates the thread afterwards (or earlier, to cancel).
 */
import { parentPort } from 'node:worker_threads';
import { serializeError } from '../../core/index.js';
import type { MlpJob, WorkerMessage } from './protocol.js';

if (!parentPort) throw new Error('mlp/worker.ts must run in a worker thread');
const port = parentPort;
const post = (m: WorkerMessage) => port.postMessage(m);

port.once('message', (job: MlpJob) => {
  // The trainer is imported lazily so that a failure to load it (a missing file, an engine
  // without WebAssembly SIMD) is reported through the same error message as any other failure.
  import('./engine.js')
    .then(({ trainMlp }) => trainMlp(job, (r) => post({ type: 'progress', ...r })))
    .then(({ weights, info }) => post({ type: 'done', weights, info }))
    .catch((e: unknown) => post({ type: 'error', error: serializeError(e) }));
});
