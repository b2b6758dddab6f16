/** Names the Redis queue, its events and the deployment files share (KEDA reads the wait list). */

/** The BullMQ queue training jobs go through. */
export const TRAIN_QUEUE = 'train';

/**
 * The Redis list of jobs waiting for a worker (BullMQ's `<prefix>:<queue>:wait`): its length is
 * the queue depth an autoscaler (KEDA's `redis` trigger) scales workers on.
 */
export function trainQueueWaitKey(prefix: string): string {
  return `${prefix}:${TRAIN_QUEUE}:wait`;
}

/** The pub/sub channel carrying job events, cancellations and cache invalidations between processes. */
export function busChannel(prefix: string): string {
  return `${prefix}:bus`;
}

/** The Redis list of jobs workers are running (BullMQ's `<prefix>:<queue>:active`): with the wait list, the work an autoscaler must keep workers for. */
export function trainQueueActiveKey(prefix: string): string {
  return `${prefix}:${TRAIN_QUEUE}:active`;
}
