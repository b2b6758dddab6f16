/**
 * Entry point of a training job's worker thread: runs the job in `workerData` and posts
 * throttled progress, then exactly one `result` or `error`. The queue terminates the thread
 * afterwards (or earlier, to cancel).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../core/index.js';
import { throttleProgress } from './progress.js';
import type { JobWorkerData, JobWorkerMessage } from './protocol.js';
import { runTrainJob } from './run.js';

if (!parentPort) throw new Error('jobs/worker.ts must run in a worker thread');
const port = parentPort;
const post = (m: JobWorkerMessage) => port.postMessage(m);
const { spec } = workerData as JobWorkerData;
const progress = throttleProgress((p) => post({ type: 'progress', progress: p }));

runTrainJob(spec, { onProgress: progress.push })
  .then((result) => {
    progress.flush();
    post({ type: 'result', result });
  })
  .catch((e: unknown) => post({ type: 'error', error: serializeError(e) }));
