/**
 * Entry point of a training job's worker thread: runs the job in `workerData` and posts
 * throttled progress, then exactly one `result` or `error`. The queue terminates the thread
 * afterwards (or earlier, to cancel).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Errors, isMedfitError, serializeError } from '../core/index.js';
import { throttleProgress } from './progress.js';
import type { JobWorkerData, JobWorkerMessage } from './protocol.js';
import { runTrainJob } from './run.js';

if (!parentPort) throw new Error('jobs/worker.ts must run in a worker thread');
const port = parentPort;
const post = (m: JobWorkerMessage) => port.postMessage(m);
const { spec, manifestKey } = workerData as JobWorkerData;
const progress = throttleProgress((p) => post({ type: 'progress', progress: p }));

runTrainJob(spec, { onProgress: progress.push, manifestKey })
  .then((result) => {
    progress.flush();
    post({ type: 'result', result });
  })
  .catch((e: unknown) => {
    if (isMedfitError(e)) return post({ type: 'error', error: serializeError(e) });
    // Not one of ours: its message may hold server paths or library internals. The job record
    // (which its project reads) gets a plain message; the server's stderr gets the detail.
    console.error('medfit: training job failed unexpectedly:', e);
    post({ type: 'error', error: serializeError(Errors.internal('training failed unexpectedly; the server log has the details')) });
  });
