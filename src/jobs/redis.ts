/**
 * The job queue and event bus on Redis, for many API replicas and training workers: jobs go
 * through a BullMQ queue (they outlive any process: a worker that stops answering loses its job
 * to another after the stall interval), and job events, cancellations and cache invalidations
 * reach every process through one pub/sub channel. The metadata store stays the record of each
 * job; what travels here are ids and events, never records' values.
 */
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { Errors, isMedfitError } from '../core/index.js';
import { TRAIN_QUEUE, busChannel } from './redis-names.js';

/** The Redis settings of a server (`MEDFIT_REDIS_URL`, `MEDFIT_REDIS_PREFIX`, stall handling). */
export interface RedisSettings {
  url: string;
  prefix: string;
  /** A job whose worker has not renewed its lock for this long is taken back (BullMQ's lock duration and stall interval). */
  stallSeconds: number;
  /** How many times a job is taken back from a silent worker before it fails. */
  maxStalls: number;
}

/** What a queued job carries: ids only; the worker reads the job and its dataset from the metadata store. */
export interface QueuedJob {
  jobId: string;
  projectId: string;
}

/**
 * A message on the bus. `job` carries one job event (the api room's `JobEvent`, an object);
 * `dataset` names a deleted dataset's file, which every process removes from its cache.
 */
export type BusMessage =
  | { t: 'job'; id: string; e: object }
  | { t: 'cancel'; id: string }
  | { t: 'models'; projectId: string; name: string }
  | { t: 'dataset'; file: string }
  | { t: 'keys' };

/** How long a cancellation request is kept for the worker that has (or will take) the job. */
const CANCEL_TTL_SECONDS = 24 * 3600;

const ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const short = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 1024;

/**
 * A bus message as sent, or undefined for anything else: Redis is shared infrastructure, so what
 * arrives on the channel is checked before any process acts on it (and never logged).
 */
export function readBusMessage(text: string): BusMessage | undefined {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  switch (o['t']) {
    case 'job':
      return typeof o['id'] === 'string' && ID.test(o['id']) && typeof o['e'] === 'object' && o['e'] !== null && !Array.isArray(o['e']) ? { t: 'job', id: o['id'], e: o['e'] } : undefined;
    case 'cancel':
      return typeof o['id'] === 'string' && ID.test(o['id']) ? { t: 'cancel', id: o['id'] } : undefined;
    case 'models':
      return short(o['projectId']) && short(o['name']) ? { t: 'models', projectId: o['projectId'], name: o['name'] } : undefined;
    case 'dataset':
      return short(o['file']) ? { t: 'dataset', file: o['file'] } : undefined;
    case 'keys':
      return { t: 'keys' };
    default:
      return undefined;
  }
}

/** How a worker hands a job back when it stops before finishing it. */
export interface JobControl {
  /** Puts the job back at the head of the queue for another worker (no attempt is counted), and ends this run. */
  returnToQueue(): Promise<never>;
}

/** Where the Redis room reports what it handles by itself (reconnections, stalled jobs). */
export type RedisLog = (level: 'info' | 'warn' | 'error', message: string) => void;

/** How long a request that needs Redis waits for it before it is a 503. */
const REQUEST_TIMEOUT_MS = 5000;

/** The URL without its user, password or query (ioredis also takes `?password=`), for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username || u.password ? '***@' : ''}${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'the configured URL';
  }
}

const unavailable = (what: string) => Errors.unavailable(`the job queue (Redis) is unreachable${what ? ` ${what}` : ''}; try again shortly`);

/** Runs a Redis request, turning a refusal, a lost connection or a slow answer into a 503. */
async function guarded<T>(what: string, run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(unavailable(what)), REQUEST_TIMEOUT_MS);
      }),
    ]);
  } catch (e) {
    if (isMedfitError(e)) throw e;
    throw unavailable(what);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A connection to `url`. Its `error` events (one per failed reconnection) are taken here: without
 * a listener ioredis prints each to stderr; an outage is reported once by the bus's connections.
 */
function connection(url: string, blocking: boolean): Redis {
  return new Redis(url, options(blocking)).on('error', () => undefined);
}

function options(blocking: boolean): RedisOptions {
  return {
    // A request-path connection fails at once while Redis is away (a 503), rather than queueing
    // commands for minutes; BullMQ's worker connections must wait and retry (its requirement).
    maxRetriesPerRequest: blocking ? null : 1,
    enableOfflineQueue: blocking,
    connectTimeout: 5000,
    // Reconnect for ever, at most 2 s apart: the replica recovers by itself when Redis returns.
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
    lazyConnect: true,
  };
}

/**
 * A server's link to the Redis queue and bus. `connect` proves Redis answers (else a clear
 * error, so a process does not start half-configured); afterwards connections come back by
 * themselves, and requests made while Redis is away are 503s.
 */
export class RedisJobs {
  private readonly queue: Queue<QueuedJob>;
  private readonly pub: Redis;
  private readonly sub: Redis;
  /** Every connection made, closed by `close` (BullMQ leaves connections it was handed open). */
  private readonly connections: Redis[] = [];
  private readonly listeners: Array<(m: BusMessage) => void> = [];
  private worker: Worker<QueuedJob> | undefined;
  private readonly channel: string;
  private closed = false;

  private constructor(
    private readonly settings: RedisSettings,
    private readonly log: RedisLog,
  ) {
    this.channel = busChannel(settings.prefix);
    this.pub = this.connect(false);
    this.sub = this.connect(true);
    this.queue = new Queue<QueuedJob>(TRAIN_QUEUE, { connection: this.connect(false), prefix: settings.prefix });
    // ioredis reports every failed reconnection as an error event; one line per outage is enough.
    // Before the first connection, `connect` reports a Redis that does not answer, once.
    let down = false;
    let reached = false;
    const onError = () => {
      if (reached && !down && !this.closed) log('warn', `Redis at ${redactUrl(settings.url)} is unreachable; retrying`);
      down = true;
    };
    const onReady = () => {
      if (reached && down && !this.closed) log('info', `Redis at ${redactUrl(settings.url)} answers again`);
      reached = true;
      down = false;
    };
    for (const c of [this.pub, this.sub]) c.on('error', onError).on('ready', onReady);
    this.queue.on('error', onError);
    this.sub.on('message', (channel: string, text: string) => {
      if (channel !== this.channel) return;
      const m = readBusMessage(text);
      if (!m) return;
      for (const l of this.listeners) {
        try {
          l(m);
        } catch (e) {
          // The error's message may quote the message: only its kind is logged.
          log('error', `a bus listener failed (${e instanceof Error ? e.name : typeof e}) on a "${m.t}" message`);
        }
      }
    });
  }

  private connect(blocking: boolean): Redis {
    const c = connection(this.settings.url, blocking);
    this.connections.push(c);
    return c;
  }

  /** Connects and subscribes; rejects with `Errors.unavailable` naming the URL (without its password) when Redis does not answer. */
  static async connect(settings: RedisSettings, log: RedisLog = () => {}): Promise<RedisJobs> {
    const r = new RedisJobs(settings, log);
    try {
      await Promise.all([r.pub.connect(), r.sub.connect()]);
      await r.sub.subscribe(r.channel);
      await guarded('at start', () => r.queue.waitUntilReady());
    } catch {
      await r.close();
      throw Errors.unavailable(`cannot reach Redis at ${redactUrl(settings.url)} (MEDFIT_REDIS_URL): is it running, and is the URL right?`);
    }
    return r;
  }

  /** Queues a job (a job id already queued, running or recently finished is not queued twice). */
  async submit(job: QueuedJob): Promise<void> {
    await guarded('to queue the job', () =>
      this.queue.add('train', job, { jobId: job.jobId, removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } }),
    );
  }

  /**
   * Takes a job out of the queue if no worker has it yet (`removed`); `active` when a worker is
   * running it (the caller then asks for it with `requestCancel`); `absent` when the queue does not hold it.
   */
  async dequeue(id: string): Promise<'removed' | 'active' | 'absent'> {
    return guarded('to cancel the job', async () => {
      const job = await this.queue.getJob(id);
      if (!job) return 'absent';
      const state = await job.getState();
      if (state === 'active') return 'active';
      if (state !== 'waiting' && state !== 'delayed' && state !== 'prioritized' && state !== 'waiting-children') return 'absent';
      try {
        await job.remove();
        return 'removed';
      } catch {
        // A worker took it between the two reads.
        return 'active';
      }
    });
  }

  /** Jobs waiting for a worker, running, and delayed (for `/metrics`). */
  async counts(): Promise<{ waiting: number; active: number; delayed: number }> {
    const c = await guarded('to count jobs', () => this.queue.getJobCounts('wait', 'active', 'delayed', 'prioritized'));
    return { waiting: (c['wait'] ?? 0) + (c['prioritized'] ?? 0), active: c['active'] ?? 0, delayed: c['delayed'] ?? 0 };
  }

  /**
   * Asks for a running job to be cancelled: a request kept in Redis (a day) that the worker
   * running the job checks, so a cancel sent while the worker is still preparing the job, or
   * while its subscription is reconnecting, is not lost; and a `cancel` message, so it acts now.
   */
  async requestCancel(id: string): Promise<void> {
    await guarded('to cancel the job', () => this.pub.set(`${this.settings.prefix}:cancel:${id}`, '1', 'EX', CANCEL_TTL_SECONDS));
    await this.publish({ t: 'cancel', id });
  }

  /** The ids among `ids` whose cancellation was requested. */
  async cancelRequested(ids: string[]): Promise<string[]> {
    if (!ids.length) return [];
    const flags = await guarded('to read cancellations', () => this.pub.mget(ids.map((id) => `${this.settings.prefix}:cancel:${id}`)));
    return ids.filter((_, i) => flags[i] !== null);
  }

  /** Sends a message to every process (this one included). Rejects with a 503 when Redis is away. */
  async publish(m: BusMessage): Promise<void> {
    await guarded('to publish an event', () => this.pub.publish(this.channel, JSON.stringify(m)));
  }

  /** Calls `listener` with every bus message (from any process, this one included). */
  onMessage(listener: (m: BusMessage) => void): void {
    this.listeners.push(listener);
  }

  /** Proves Redis answers (readiness). */
  async ping(): Promise<void> {
    await guarded('', () => this.pub.ping());
  }

  /**
   * Starts taking jobs: `run` is called for each, at most `concurrency` at once, and resolves when
   * the job's outcome is recorded. A job whose worker stops answering (killed, frozen) is taken
   * back after `stallSeconds` and run again elsewhere, up to `maxStalls` times; after that,
   * `onAbandoned` is called with its id and BullMQ's reason, so the caller records the failure.
   */
  startWorker(
    run: (job: QueuedJob, control: JobControl) => Promise<void>,
    opts: { concurrency: number; onAbandoned: (job: QueuedJob, reason: string) => void },
  ): void {
    if (this.worker) throw Errors.internal('the Redis worker is already started');
    const ms = this.settings.stallSeconds * 1000;
    this.worker = new Worker<QueuedJob>(
      TRAIN_QUEUE,
      async (job: Job<QueuedJob>, token?: string) => {
        await run(job.data, {
          async returnToQueue() {
            await job.moveToWait(token);
            throw new WaitingError();
          },
        });
      },
      {
        connection: this.connect(true),
        prefix: this.settings.prefix,
        concurrency: opts.concurrency,
        lockDuration: ms,
        stalledInterval: ms,
        maxStalledCount: this.settings.maxStalls,
      },
    );
    this.worker.on('error', () => {
      /* reported once per outage by the connections' own listeners */
    });
    this.worker.on('stalled', (id: string) => this.log('warn', `job ${id}: its worker stopped answering; it goes back to the queue`));
    // The processor above never throws but to return a job, so a failure here is BullMQ's own:
    // a job that stalled more often than allowed.
    this.worker.on('failed', (job: Job<QueuedJob> | undefined, err: Error) => {
      if (job?.data?.jobId) opts.onAbandoned(job.data, err.message);
    });
  }

  /**
   * Stops taking jobs and waits for the running ones' `run` to settle (the caller makes them
   * settle: finished, or returned to the queue).
   */
  stopWorker(): Promise<void> {
    return this.worker ? this.worker.close() : Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stopWorker().catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    for (const c of this.connections) c.disconnect();
  }
}
