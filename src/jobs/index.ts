/**
 * The jobs room: the embedded training job queue (one worker thread per job) and the pieces a
 * training run shares with `medfit train`.
 */
import { WorkerQueue, type WorkerQueueOptions } from './queue.js';
import type { JobQueue } from './types.js';

export type { FhirLineage, JobEvents, JobQueue, TrainJobResult, TrainJobSpec } from './types.js';
export { WorkerQueue, liveJobWorkers, type WorkerQueueOptions } from './queue.js';
export { buildManifest, buildSequenceManifest, toJobResult, type ManifestInfo, type ArtifactManifest } from './manifest.js';
export { runTrainJob } from './run.js';

/** Creates the embedded queue: jobs run in worker threads of this process, `concurrency` (default 1) at a time. */
export function createWorkerQueue(opts: WorkerQueueOptions = {}): JobQueue {
  return new WorkerQueue(opts);
}
export { TRAIN_QUEUE, trainQueueActiveKey, trainQueueWaitKey, busChannel } from './redis-names.js';
export type { BusMessage, JobControl, QueuedJob, RedisJobs, RedisLog, RedisSettings } from './redis.js';

/**
 * Connects to the Redis queue and bus (`RedisJobs.connect`). BullMQ and ioredis are loaded only
 * here, so the embedded default and the CLI never pay the quarter second they take to load.
 */
export async function connectRedisJobs(settings: import('./redis.js').RedisSettings, log?: import('./redis.js').RedisLog): Promise<import('./redis.js').RedisJobs> {
  const { RedisJobs } = await import('./redis.js');
  return RedisJobs.connect(settings, log);
}
