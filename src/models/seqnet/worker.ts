/**
 * Entry point of the sequence training worker thread. It receives one `SeqJob` message, trains,
 * and answers with progress messages and then exactly one `done` or `error` message. The host
 * terminates the thread afterwards (or earlier, to cancel).
 */
import { parentPort } from 'node:worker_threads';
import { serializeError } from '../../core/index.js';
import type { SeqJob, WorkerMessage } from './protocol.js';

if (!parentPort) throw new Error('seqnet/worker.ts must run in a worker thread');
const port = parentPort;
const post = (m: WorkerMessage) => port.postMessage(m);

port.once('message', (job: SeqJob) => {
  import('./engine.js')
    .then(({ trainSeqNet }) => trainSeqNet(job, (r) => post({ type: 'progress', ...r })))
    .then(({ weights, info }) => post({ type: 'done', weights, info }))
    .catch((e: unknown) => post({ type: 'error', error: serializeError(e) }));
});
