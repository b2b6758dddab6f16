import type { Worker } from 'node:worker_threads';
import { siblingModule, startWorker } from '../core/index.js';
import type { JobWorkerData } from './protocol.js';

/** Starts the worker thread of one job (`worker.ts`, or `worker.js` once compiled). */
export function startJobWorker(data: JobWorkerData): Worker {
  return startWorker(siblingModule(import.meta.url, 'worker'), { workerData: data });
}
