import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMedfitError, type CandidateScore, type Progress, type SerializedError } from '../core/index.js';
import type { FhirLineage, JobControl, JobQueue, QueuedJob, RedisJobs, TrainJobResult, TrainJobSpec } from '../jobs/index.js';
import { listingSha256, type BlobStore, type DatasetRecord, type JobRecord, type MetadataStore, type ModelVersionRecord } from '../store/index.js';
import type { ServerConfig } from './config.js';
import type { LocalCache } from './local-cache.js';
import type { Metrics } from './metrics.js';
import type { ModelService } from './models-service.js';

/** Everything the routes share; built once by `initServer`. */
export interface Services {
  config: ServerConfig;
  store: MetadataStore;
  /** Datasets and model directories (the data directory itself by default; see `localDataset`). */
  blobs: BlobStore;
  /** The Redis queue and bus, when `MEDFIT_REDIS_URL` is set. */
  redis?: RedisJobs | undefined;
  /** This process's copies of stored files, under a budget; absent when storage is the data directory itself. */
  cache?: LocalCache | undefined;
  jobs: JobManager;
  models: ModelService;
  metrics: Metrics;
}

/** One server-sent event of a job. */
export interface JobEvent {
  type: 'status' | 'progress';
  status?: JobRecord['status'];
  progress?: number;
  stage?: string;
  epoch?: number;
  loss?: number;
  valLoss?: number;
  /** A family's cross-validated scores, once its last fold is scored. */
  candidate?: CandidateScore;
  error?: { code: string; message: string };
  model?: { name: string; version: number };
}

/**
 * A job's curve and leaderboard so far (events with an epoch or a family's scores), replayed to a
 * stream that opens late or after the job ended: at most this many per job, the first ones kept
 * (a curve's shape is set early; later points only arrive if there is room).
 */
export const JOB_HISTORY_EVENTS = 5000;
/** Finished jobs whose history is kept in memory for a later page load (it is not stored). */
export const JOB_HISTORY_JOBS = 100;

interface Active {
  projectId: string;
  name: string;
  datasetId: string;
  datasetSha256: string;
  dir: string;
  /** The dataset's file, relative to the data directory ('' when the job never got that far). */
  datasetFile: string;
}

/** How often a worker checks whether its running jobs' cancellation was requested (a message may be missed). */
const CANCEL_POLL_MS = 2000;

/** Stored progress is updated at most this often; listeners still get every event. */
const PROGRESS_WRITE_MS = 500;
/** After a progress write failed, the next is not tried for this long (progress is best effort). */
const PROGRESS_PAUSE_MS = 5000;
/** A job's state that could not be recorded is tried again after this, doubling up to the longest. */
const RECORD_RETRY_FIRST_MS = 100;
const RECORD_RETRY_LONGEST_MS = 5000;
const DONE: Promise<void> = Promise.resolve();

/** What `JobManager` reports to its owner. */
export interface JobManagerHooks {
  onTerminal?: (status: JobRecord['status']) => void;
  onVersion?: (projectId: string, name: string) => void;
  /** Trouble recording a job's state (messages carry job ids, never values). */
  log?: (level: 'info' | 'warn' | 'error', message: string, err?: unknown) => void;
}

/**
 * Where a `JobManager` runs in a cluster (`MEDFIT_REDIS_URL`): `redis` carries jobs and events
 * between processes, `blobs` the datasets and model directories. `train`: this process trains
 * (the worker and `all` roles); `serve`: it answers requests (the api and `all` roles).
 */
export interface JobCluster {
  redis: RedisJobs;
  blobs: BlobStore;
  train: boolean;
  serve: boolean;
  /** Jobs this process trains at once (`MEDFIT_TRAIN_CONCURRENCY`). */
  concurrency: number;
  /** This process's copies of stored files, under a budget. */
  cache?: LocalCache | undefined;
}

/** How a job run by this process ended, or `interrupted` when it stopped with the process. */
type Settled = JobRecord['status'] | 'interrupted';

/** What `persist` returns when it gave up (a real failure, or the manager closed meanwhile). */
const GAVE_UP = Symbol('gave up');

/**
 * Ties the job queue to the metadata store and to listeners (Server-Sent Events): every queue event
 * updates the job's row, a succeeded job registers a new model version, and interrupted jobs are
 * queued again at start-up so none is left `running` after a restart.
 *
 * A store that is unavailable (busy, failing) never loses an outcome: each job's events are
 * recorded one after another, and a write refused with `MEDFIT_ERR_UNAVAILABLE` is retried with a
 * growing delay until it succeeds or the manager closes; nothing here ever rejects unhandled.
 */
export class JobManager {
  private readonly bus = new EventEmitter();
  private readonly active = new Map<string, Active>();
  private readonly lastWrite = new Map<string, number>();
  /** Per job, its epoch and candidate events so far (insertion order = age, for the bound). */
  private readonly history = new Map<string, JobEvent[]>();
  private readonly streams = new Set<() => void>();
  /** Per job, the end of its chain of recording steps: a retried write is never overtaken by a later event's. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  /** Per job this process runs for the cluster queue, what resolves its run when it settles. */
  private readonly settling = new Map<string, (s: Settled) => void>();
  private cancelPoll: NodeJS.Timeout | undefined;

  /**
   * `queue` runs the jobs this process trains (absent on an API replica: its jobs go to the
   * cluster's workers). Without `cluster`, jobs are submitted to `queue` directly (embedded).
   */
  constructor(
    private readonly store: MetadataStore,
    private readonly queue: JobQueue | undefined,
    private readonly dataDir: string,
    private readonly hooks: JobManagerHooks = {},
    private readonly cluster?: JobCluster,
  ) {
    this.bus.setMaxListeners(0);
    if (queue) {
      queue.on('started', (id) => this.record(id, () => this.started(id)));
      queue.on('progress', (id, p) => this.record(id, () => this.progress(id, p)));
      queue.on('succeeded', (id, r) => this.record(id, () => this.succeeded(id, r)));
      queue.on('failed', (id, e) => this.record(id, () => this.finished(id, 'failed', e)));
      queue.on('cancelled', (id) => this.record(id, () => this.finished(id, 'cancelled')));
    }
    if (cluster) {
      cluster.redis.onMessage((m) => {
        if (m.t === 'job' && isJobEvent(m.e)) this.deliver(m.id, m.e);
        else if (m.t === 'cancel' && this.active.has(m.id)) this.queue?.cancel(m.id);
      });
      if (cluster.train) {
        if (!queue) throw new Error('a JobManager that trains needs a queue');
        cluster.redis.startWorker((job, control) => this.runQueued(job, control), {
          concurrency: cluster.concurrency,
          onAbandoned: (job, reason) => void this.abandoned(job, reason),
        });
        // The cancel message is the fast path; the request kept in Redis is the sure one.
        this.cancelPoll = setInterval(() => void this.cancelRequested(), CANCEL_POLL_MS);
        this.cancelPoll.unref();
      }
    }
  }

  /** Sends a job event to its listeners: through the bus to every process in a cluster, else here. */
  private emitEvent(id: string, e: JobEvent): void {
    if (!this.cluster) return this.deliver(id, e);
    this.cluster.redis.publish({ t: 'job', id, e }).catch((err: unknown) => this.report('warn', `job ${id}: an event could not be published (Redis unavailable); streams see the job's state when it returns`, err));
  }

  /** Hands an event to this process's streams, and keeps it for late ones when it is part of the curve or leaderboard. */
  private deliver(id: string, e: JobEvent): void {
    if (e.epoch !== undefined || e.candidate !== undefined) this.remember(id, e);
    this.bus.emit(`job:${id}`, e);
  }

  /** Runs `step` after the job's earlier steps. The chain never rejects: a failing step is logged. */
  private record(id: string, step: () => Promise<void>): void {
    const next = (this.chains.get(id) ?? DONE).then(step).catch((e: unknown) => this.report('error', `job ${id}: handling a queue event failed`, e));
    this.chains.set(id, next);
    void next.then(() => {
      if (this.chains.get(id) === next) this.chains.delete(id);
    });
  }

  private report(level: 'info' | 'warn' | 'error', message: string, err?: unknown): void {
    try {
      this.hooks.log?.(level, message, err);
    } catch {
      /* a failing logger must not stop the recording */
    }
  }

  /**
   * Writes `what` of job `id` to the store. While the store is unavailable, tries again after
   * 0.1, 0.2, 0.4 ... 5 s until it succeeds or the manager closes (then one last try). Any other
   * failure is logged and given up. Returns the write's value, or GAVE_UP.
   */
  private async persist<T>(id: string, what: string, write: () => Promise<T>): Promise<T | typeof GAVE_UP> {
    for (let attempt = 0; ; attempt++) {
      try {
        const value = await write();
        if (attempt > 0) this.report('info', `job ${id}: ${what} recorded after ${attempt} retries`);
        return value;
      } catch (e) {
        if (!isMedfitError(e) || e.code !== 'MEDFIT_ERR_UNAVAILABLE') {
          this.report('error', `job ${id}: ${what} could not be recorded`, e);
          return GAVE_UP;
        }
        if (this.stopping.signal.aborted) {
          this.report('warn', `job ${id}: ${what} not recorded before shutdown (store unavailable); the job is resumed at the next start`, e);
          return GAVE_UP;
        }
        if (attempt === 0) this.report('warn', `job ${id}: ${what} could not be recorded yet (store unavailable); retrying`, e);
        await sleep(Math.min(RECORD_RETRY_FIRST_MS * 2 ** attempt, RECORD_RETRY_LONGEST_MS), undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * Queues a stored job on its dataset: in a cluster, on the Redis queue for a worker (a 503 when
   * Redis is away: the job is then recorded as failed, never left queued with nobody to run it);
   * else in this process.
   */
  async submit(job: JobRecord, dataset: DatasetRecord): Promise<void> {
    if (!this.cluster) return this.submitLocal(job, dataset);
    try {
      await this.cluster.redis.submit({ jobId: job.id, projectId: job.projectId });
    } catch (e) {
      const error = { code: 'MEDFIT_ERR_UNAVAILABLE', message: 'the job queue was unavailable when the job was submitted; submit it again' };
      await this.store.updateJob(job.id, { status: 'failed', error, finished: new Date().toISOString() }).catch(() => undefined);
      throw e;
    }
  }

  /** Queues a job in this process's own queue. */
  private submitLocal(job: JobRecord, dataset: DatasetRecord): void {
    if (!this.queue) throw new Error('this process does not train');
    const dir = join(this.dataDir, 'models', job.projectId, job.id);
    // A job interrupted after writing its model but before registering it left a directory:
    // start clean, the artifact is rebuilt.
    rmSync(dir, { recursive: true, force: true });
    this.active.set(job.id, { projectId: job.projectId, name: job.name, datasetId: dataset.id, datasetSha256: dataset.sha256, dir, datasetFile: dataset.file });
    const spec = job.spec as Omit<TrainJobSpec, 'datasetPath' | 'datasetName' | 'format' | 'outDir' | 'lineage'>;
    this.queue.submit(job.id, {
      ...spec,
      datasetPath: join(this.dataDir, dataset.file),
      datasetName: dataset.name,
      format: dataset.format,
      outDir: dir,
      lineage: { datasetId: dataset.id, datasetSha256: dataset.sha256, jobId: job.id },
      ...fhirField(readFhirLineage(join(this.dataDir, dataset.file))),
    });
  }

  /**
   * Requeues jobs that were queued or running when the server last stopped. A job whose model
   * version was registered but whose success was not recorded (the store refused until shutdown)
   * is marked succeeded with that version, not trained again: retraining would remove the
   * directory the version points to.
   */
  async resume(): Promise<number> {
    const jobs = await this.store.jobsWithStatus(['queued', 'running']);
    if (this.cluster) {
      // In a cluster the queue outlives every process: a job it holds is not queued twice (its
      // id is the queue's job id), and one it lost (Redis restarted empty) is queued again.
      if (!this.cluster.serve) return 0;
      for (const job of jobs) await this.cluster.redis.submit({ jobId: job.id, projectId: job.projectId });
      return jobs.length;
    }
    for (const job of jobs) {
      if (await this.recordRegistered(job, await this.store.listModelVersions(job.projectId, job.name))) continue;
      const dataset = await this.store.getDataset(job.projectId, job.datasetId);
      if (!dataset) {
        await this.store.updateJob(job.id, { status: 'failed', error: { code: 'MEDFIT_ERR_NOT_FOUND', message: 'dataset was deleted before the job could run' }, finished: new Date().toISOString() });
        continue;
      }
      await this.store.updateJob(job.id, { status: 'queued', progress: 0, stage: 'requeued after restart' });
      this.submitLocal(job, dataset);
    }
    return jobs.length;
  }

  /**
   * Cancels a queued or running job; false when it is not in the queue. In a cluster a job no
   * worker has taken is removed from the queue and recorded here; a running one is cancelled by
   * its worker, which the bus tells.
   */
  async cancel(id: string): Promise<boolean> {
    if (!this.cluster) return this.queue?.cancel(id) ?? false;
    const where = await this.cluster.redis.dequeue(id);
    if (where === 'absent') return false;
    if (where === 'active') {
      await this.cluster.redis.requestCancel(id);
      return true;
    }
    const error = { code: 'MEDFIT_ERR_CANCELLED', message: 'cancelled' };
    await this.store.updateJob(id, { status: 'cancelled', error, finished: new Date().toISOString() });
    this.hooks.onTerminal?.('cancelled');
    this.emitEvent(id, { type: 'status', status: 'cancelled', error });
    return true;
  }

  /**
   * Runs one job from the cluster queue in this process and resolves once its outcome is
   * recorded. A job already finished (cancelled while queued, or registered by a worker that
   * died before it could say so) is settled without training; one this process stops before
   * finishing goes back to the queue.
   */
  private async runQueued(q: QueuedJob, control: JobControl): Promise<void> {
    const job = await this.until(q.jobId, 'its record', () => this.store.getJob(q.projectId, q.jobId));
    if (job === GAVE_UP) return control.returnToQueue();
    if (!job || job.status === 'succeeded' || job.status === 'failed' || job.status === 'cancelled') return;
    const registered = await this.until(q.jobId, 'its versions', () => this.store.listModelVersions(job.projectId, job.name));
    if (registered === GAVE_UP) return control.returnToQueue();
    if (await this.recordRegistered(job, registered)) return;
    const dataset = await this.until(q.jobId, 'its dataset', () => this.store.getDataset(job.projectId, job.datasetId));
    if (dataset === GAVE_UP) return control.returnToQueue();
    const settled = new Promise<Settled>((resolve) => this.settling.set(job.id, resolve));
    /** Records the job as failed without training it (its run then settles as any failed job does). */
    const failUnrun = (code: 'MEDFIT_ERR_NOT_FOUND' | 'MEDFIT_ERR_BAD_DATA', message: string) => {
      this.active.set(job.id, { projectId: job.projectId, name: job.name, datasetId: job.datasetId, datasetSha256: '', dir: '', datasetFile: '' });
      this.record(job.id, () => this.finished(job.id, 'failed', { code, message, details: [] }));
    };
    if (!dataset) failUnrun('MEDFIT_ERR_NOT_FOUND', 'dataset was deleted before the job could run');
    else {
      let fetched = true;
      try {
        await localDataset(this.cluster!.blobs, this.dataDir, dataset, 'all', this.cluster!.cache);
      } catch (e) {
        // Storage away: another try later (after a pause, so a queue of jobs does not spin).
        // Anything else (the file missing, or not the bytes uploaded) will not mend by itself.
        if (isMedfitError(e) && e.code === 'MEDFIT_ERR_UNAVAILABLE') {
          this.settling.delete(job.id);
          this.report('warn', `job ${job.id}: its dataset could not be fetched from storage; it goes back to the queue`, e);
          await sleep(1000);
          return control.returnToQueue();
        }
        this.report('error', `job ${job.id}: its dataset cannot be read from storage`, e);
        fetched = false;
        failUnrun('MEDFIT_ERR_BAD_DATA', `the stored file of dataset "${dataset.name}" is missing or damaged; upload it again`);
      }
      // A cancellation requested while the job was being prepared is honoured before it trains.
      const cancelled = fetched && (await this.cluster!.redis.cancelRequested([job.id]).catch(() => [])).length > 0;
      if (cancelled) {
        this.active.set(job.id, { projectId: job.projectId, name: job.name, datasetId: dataset.id, datasetSha256: dataset.sha256, dir: '', datasetFile: '' });
        this.record(job.id, () => this.finished(job.id, 'cancelled'));
      } else if (fetched) this.submitLocal(job, dataset);
    }
    if ((await settled) === 'interrupted') return control.returnToQueue();
  }

  /** Cancels the running jobs whose cancellation was requested (a missed message is caught here). */
  private async cancelRequested(): Promise<void> {
    const ids = [...this.active.keys()];
    const asked = await this.cluster!.redis.cancelRequested(ids).catch(() => []);
    for (const id of asked) this.queue?.cancel(id);
  }

  /**
   * Records as succeeded a job whose model version is among `versions` (registered by a run that
   * stopped before it could say so), and tells its streams; false when none is its own.
   */
  private async recordRegistered(job: JobRecord, versions: ModelVersionRecord[]): Promise<boolean> {
    const mine = versions.find((v) => v.jobId === job.id);
    if (!mine) return false;
    await this.store.updateJob(job.id, { status: 'succeeded', progress: 1, stage: 'done', modelVersion: mine.version, finished: new Date().toISOString() });
    this.emitEvent(job.id, { type: 'status', status: 'succeeded', progress: 1, model: { name: job.name, version: mine.version } });
    return true;
  }

  /** Like `persist` for a read: the value, or GAVE_UP when the store stays unavailable until shutdown. */
  private until<T>(id: string, what: string, read: () => Promise<T>): Promise<T | typeof GAVE_UP> {
    return this.persist(id, `reading ${what}`, read);
  }

  /** Records the failure of a job the queue gave up on (its workers kept dying), unless it already ended. */
  private async abandoned(q: QueuedJob, reason: string): Promise<void> {
    const job = await this.store.getJob(q.projectId, q.jobId).catch(() => undefined);
    if (!job || job.status === 'succeeded' || job.status === 'failed' || job.status === 'cancelled') return;
    const stalled = /stalled/i.test(reason);
    const error = {
      code: 'MEDFIT_ERR_INTERNAL',
      message: stalled
        ? 'the job was given up: the workers running it stopped answering (killed, or out of memory) more often than MEDFIT_JOB_MAX_STALLS allows'
        : 'the job could not be run; the worker log has the details',
    };
    if (!stalled) this.report('error', `job ${q.jobId}: the queue failed it: ${reason}`);
    await this.persist(q.jobId, 'its failure', () => this.store.updateJob(q.jobId, { status: 'failed', error, finished: new Date().toISOString() }));
    this.hooks.onTerminal?.('failed');
    this.emitEvent(q.jobId, { type: 'status', status: 'failed', error });
  }

  /** Registers an open event stream so that shutdown can end it; returns the unregister function. */
  trackStream(end: () => void): () => void {
    this.streams.add(end);
    return () => this.streams.delete(end);
  }

  /** Ends every open event stream (at shutdown: they would otherwise last as long as their job). */
  endStreams(): void {
    for (const end of [...this.streams]) end();
  }

  /**
   * Listens to one job's events until the returned function is called. `past` holds the job's
   * epoch and candidate events so far, taken in the same tick as the subscription, so none is
   * both in `past` and delivered, and none falls between them.
   */
  subscribe(id: string, listener: (e: JobEvent) => void): { unsubscribe: () => void; past: JobEvent[] } {
    // Named apart from EventEmitter's own events ('error' would throw when nobody listens).
    this.bus.on(`job:${id}`, listener);
    return { unsubscribe: () => this.bus.off(`job:${id}`, listener), past: [...(this.history.get(id) ?? [])] };
  }

  private remember(id: string, e: JobEvent): void {
    let h = this.history.get(id);
    if (!h) {
      h = [];
      this.history.set(id, h);
      // Forget the oldest jobs' histories beyond the bound (running ones are young, so kept).
      for (const old of this.history.keys()) {
        if (this.history.size <= JOB_HISTORY_JOBS) break;
        if (!this.active.has(old)) this.history.delete(old);
      }
    }
    if (h.length < JOB_HISTORY_EVENTS) h.push(e);
  }

  /**
   * Stops the queue; unfinished jobs stay `queued` in the store and resume on the next start.
   * Writes still being retried get one last try. Never rejects: what cannot be recorded now is
   * put right by `resume` at the next start.
   */
  async close(): Promise<void> {
    // A worker stops taking jobs first; its running ones are then interrupted below and go back to the queue.
    clearInterval(this.cancelPoll);
    const stopTaking = this.cluster?.train ? this.cluster.redis.stopWorker() : Promise.resolve();
    const unfinished = (await this.queue?.close()) ?? [];
    this.stopping.abort();
    await Promise.all([...this.chains.values()]);
    // Recorded as queued before a cluster's job goes back to the queue: another worker may take
    // it at once, and its start must not be overwritten.
    for (const id of unfinished) {
      if (this.cluster) {
        this.report('info', `job ${id}: handed back to the queue (this process is stopping); another worker starts it again`);
        this.emitEvent(id, { type: 'status', status: 'queued', progress: 0, stage: 'interrupted by shutdown' });
      }
      try {
        await this.store.updateJob(id, { status: 'queued', progress: 0, stage: 'interrupted by shutdown' });
      } catch (e) {
        this.report('warn', `job ${id}: could not be marked as interrupted; it is resumed at the next start all the same`, e);
      }
    }
    for (const [id, resolve] of this.settling) {
      this.settling.delete(id);
      resolve('interrupted');
    }
    await stopTaking.catch((e: unknown) => this.report('warn', 'the Redis worker did not stop cleanly', e));
  }

  private async started(id: string): Promise<void> {
    // Which process runs which job, for whoever reads a cluster's logs (ids only).
    if (this.cluster) this.report('info', `job ${id}: started in process ${process.pid}`);
    await this.persist(id, 'its start', () => this.store.updateJob(id, { status: 'running', started: new Date().toISOString(), stage: 'starting' }));
    this.emitEvent(id, { type: 'status', status: 'running' });
  }

  private async progress(id: string, p: Progress): Promise<void> {
    const now = Date.now();
    if (now - (this.lastWrite.get(id) ?? 0) >= PROGRESS_WRITE_MS) {
      this.lastWrite.set(id, now);
      // Best effort, tried once: the next event carries newer progress anyway.
      await this.store.updateJob(id, { progress: p.fraction ?? 0, stage: p.stage }).catch(() => {
        this.lastWrite.set(id, now + PROGRESS_PAUSE_MS);
      });
    }
    const e: JobEvent = {
      type: 'progress',
      progress: p.fraction ?? 0,
      stage: p.stage,
      ...(p.epoch !== undefined ? { epoch: p.epoch } : {}),
      ...(p.loss !== undefined ? { loss: p.loss } : {}),
      ...(p.valLoss !== undefined ? { valLoss: p.valLoss } : {}),
      ...(p.candidate !== undefined ? { candidate: p.candidate } : {}),
    };
    this.emitEvent(id, e);
  }

  private async succeeded(id: string, r: TrainJobResult): Promise<void> {
    const a = this.active.get(id);
    if (!a) return;
    // In a cluster the model directory goes to storage before its version exists, so a version
    // is never visible without its files (a retried upload replaces a half one).
    const blobs = this.cluster?.blobs;
    const stored = blobs ? await this.persist(id, 'its model files', () => blobs.putDir(join('models', a.projectId, id), a.dir)) : undefined;
    if (stored === GAVE_UP) {
      this.active.delete(id);
      return this.settle(id, 'interrupted');
    }
    if (this.cluster?.serve) this.cluster.cache?.use(join('models', a.projectId, id));
    const v = await this.persist(id, 'its new model version', () => this.store.createModelVersion({
      projectId: a.projectId,
      name: a.name,
      source: 'trained',
      family: r.family,
      task: r.task,
      dir: join('models', a.projectId, id),
      jobId: id,
      datasetId: a.datasetId,
      datasetSha256: a.datasetSha256,
      metrics: { cv: r.metrics, ...(r.nested ? { nested: r.nested } : {}), leaderboard: r.leaderboard, warnings: r.warnings, ...(r.leakage ? { leakage: r.leakage } : {}) },
      ...(stored ? { filesSha256: listingSha256(stored) } : {}),
    }));
    // Not registered before shutdown: the job stays running in the store and is trained again.
    if (v === GAVE_UP) {
      this.active.delete(id);
      return this.settle(id, 'interrupted');
    }
    this.hooks.onVersion?.(a.projectId, a.name);
    await this.persist(id, 'its success', () =>
      this.store.updateJob(id, { status: 'succeeded', progress: 1, stage: 'done', modelVersion: v.version, finished: new Date().toISOString() }),
    );
    this.done(id, 'succeeded', { type: 'status', status: 'succeeded', progress: 1, model: { name: a.name, version: v.version } });
  }

  private async finished(id: string, status: 'failed' | 'cancelled', e?: SerializedError): Promise<void> {
    const a = this.active.get(id);
    if (a?.dir) {
      try {
        rmSync(a.dir, { recursive: true, force: true });
      } catch (err) {
        this.report('warn', `job ${id}: its partial output could not be removed`, err);
      }
    }
    const error = e ? { code: e.code, message: e.message } : status === 'cancelled' ? { code: 'MEDFIT_ERR_CANCELLED', message: 'cancelled' } : null;
    await this.persist(id, `its ${status === 'failed' ? 'failure' : 'cancellation'}`, () => this.store.updateJob(id, { status, error, finished: new Date().toISOString() }));
    this.done(id, status, { type: 'status', status, ...(error ? { error } : {}) });
  }

  private done(id: string, status: JobRecord['status'], e: JobEvent): void {
    const a = this.active.get(id);
    // A worker keeps no copies: the model is in storage, the dataset is fetched again when needed
    // (nor does a deleted dataset linger on a worker's disk).
    if (a && this.cluster && !this.cluster.serve) {
      const shared = [...this.active.values()].some((o) => o !== a && o.datasetFile === a.datasetFile);
      for (const path of [a.dir, a.datasetFile && !shared && join(this.dataDir, a.datasetFile)]) if (path) rmSync(path, { recursive: true, force: true });
    }
    this.active.delete(id);
    this.lastWrite.delete(id);
    this.hooks.onTerminal?.(status);
    this.emitEvent(id, e);
    this.settle(id, status);
  }

  private settle(id: string, s: Settled): void {
    const resolve = this.settling.get(id);
    this.settling.delete(id);
    resolve?.(s);
  }
}

/**
 * Where a dataset imported from FHIR keeps its feature spec and whether it was de-identified:
 * beside the stored table, as its profile is (`<file>.fhir.json`).
 */
export function fhirLineagePath(datasetPath: string): string {
  return `${datasetPath}.fhir.json`;
}

/** A FHIR dataset's lineage (its feature spec, whether it was de-identified); undefined for any other dataset. */
export function readFhirLineage(datasetPath: string): FhirLineage | undefined {
  let text: string;
  try {
    text = readFileSync(fhirLineagePath(datasetPath), 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as FhirLineage;
}

const fhirField = (fhir: FhirLineage | undefined): { fhir?: FhirLineage } => (fhir ? { fhir } : {});

/** Whether a bus message's event is a job event (the bus is shared infrastructure: its messages are checked). */
function isJobEvent(e: object): e is JobEvent {
  const t = (e as { type?: unknown }).type;
  return t === 'status' || t === 'progress';
}

/**
 * The local path of a dataset's file, fetched from storage first when this process has no copy
 * (with its SHA-256 checked); with `sidecars`, only its profile and FHIR lineage are fetched.
 */
export async function localDataset(
  blobs: BlobStore,
  dataDir: string,
  d: Pick<DatasetRecord, 'file' | 'sha256' | 'sidecars'>,
  what: 'all' | 'sidecars' = 'all',
  cache?: LocalCache,
): Promise<string> {
  const path = join(dataDir, d.file);
  if (what === 'all' && !existsSync(path)) await blobs.getFile(d.file, path, d.sha256);
  if (what === 'all') cache?.use(d.file, () => forgetDataset(dataDir, d.file));
  for (const side of datasetSidecars(d.file)) {
    const local = join(dataDir, side);
    if (existsSync(local)) continue;
    // Checked against the row when it recorded them (storage alone cannot vouch for its files).
    const recorded = d.sidecars?.[side.slice(d.file.length)];
    if (recorded !== undefined) await blobs.getFile(side, local, recorded);
    else if (!d.sidecars && (await blobs.exists(side))) await blobs.getFile(side, local);
  }
  return path;
}

/**
 * Stores a dataset written under the data directory (its file, then its profile and FHIR
 * lineage) before its row is committed; returns the companions' SHA-256 by suffix, for the row.
 */
export async function storeDataset(blobs: BlobStore, dataDir: string, rel: string, sha256: string): Promise<Record<string, string>> {
  await blobs.putFile(rel, join(dataDir, rel), sha256);
  const sidecars: Record<string, string> = {};
  for (const side of datasetSidecars(rel)) {
    const path = join(dataDir, side);
    if (!existsSync(path)) continue;
    const hash = createHash('sha256').update(readFileSync(path)).digest('hex');
    await blobs.putFile(side, path, hash);
    sidecars[side.slice(rel.length)] = hash;
  }
  return sidecars;
}

/** Removes a dataset's file and its sidecars from storage and from this process's copy. */
export async function removeDataset(blobs: BlobStore, dataDir: string, rel: string): Promise<void> {
  forgetDataset(dataDir, rel);
  for (const key of [rel, ...datasetSidecars(rel)]) await blobs.remove(key);
}

/** Removes this process's copy of a dataset (its file and sidecars), if it has one. */
export function forgetDataset(dataDir: string, rel: string): void {
  for (const key of [rel, ...datasetSidecars(rel)]) rmSync(join(dataDir, key), { force: true });
}

/** The small files kept beside a dataset's file: its profile and, for FHIR imports, its lineage. */
function datasetSidecars(rel: string): string[] {
  return [`${rel}.profile.json`, fhirLineagePath(rel)];
}
