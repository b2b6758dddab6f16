import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Progress, SerializedError } from '../core/index.js';
import type { JobQueue, TrainJobResult, TrainJobSpec } from '../jobs/index.js';
import type { DatasetRecord, JobRecord, MetadataStore } from '../store/index.js';
import type { ServerConfig } from './config.js';
import type { Metrics } from './metrics.js';
import type { ModelService } from './models-service.js';

/** Everything the routes share; built once by `initServer`. */
export interface Services {
  config: ServerConfig;
  store: MetadataStore;
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
  error?: { code: string; message: string };
  model?: { name: string; version: number };
}

interface Active {
  projectId: string;
  name: string;
  datasetId: string;
  datasetSha256: string;
  dir: string;
}

/** Stored progress is updated at most this often; listeners still get every event. */
const PROGRESS_WRITE_MS = 500;

/**
 * Ties the job queue to the metadata store and to listeners (Server-Sent Events): every queue event
 * updates the job's row, a succeeded job registers a new model version, and interrupted jobs are
 * queued again at start-up so none is left `running` after a restart.
 */
export class JobManager {
  private readonly bus = new EventEmitter();
  private readonly active = new Map<string, Active>();
  private readonly lastWrite = new Map<string, number>();
  private readonly streams = new Set<() => void>();

  constructor(
    private readonly store: MetadataStore,
    private readonly queue: JobQueue,
    private readonly dataDir: string,
    private readonly hooks: { onTerminal?: (status: JobRecord['status']) => void; onVersion?: (projectId: string, name: string) => void } = {},
  ) {
    this.bus.setMaxListeners(0);
    queue.on('started', (id) => void this.started(id));
    queue.on('progress', (id, p) => void this.progress(id, p));
    queue.on('succeeded', (id, r) => void this.succeeded(id, r));
    queue.on('failed', (id, e) => void this.finished(id, 'failed', e));
    queue.on('cancelled', (id) => void this.finished(id, 'cancelled'));
  }

  /** Queues a stored job on its dataset. */
  submit(job: JobRecord, dataset: DatasetRecord): void {
    const dir = join(this.dataDir, 'models', job.projectId, job.id);
    // A job interrupted after writing its model but before registering it left a directory:
    // start clean, the artifact is rebuilt.
    rmSync(dir, { recursive: true, force: true });
    this.active.set(job.id, { projectId: job.projectId, name: job.name, datasetId: dataset.id, datasetSha256: dataset.sha256, dir });
    const spec = job.spec as Omit<TrainJobSpec, 'datasetPath' | 'datasetName' | 'format' | 'outDir' | 'lineage'>;
    this.queue.submit(job.id, {
      ...spec,
      datasetPath: join(this.dataDir, dataset.file),
      datasetName: dataset.name,
      format: dataset.format,
      outDir: dir,
      lineage: { datasetId: dataset.id, datasetSha256: dataset.sha256, jobId: job.id },
    });
  }

  /** Requeues jobs that were queued or running when the server last stopped. */
  async resume(): Promise<number> {
    const jobs = await this.store.jobsWithStatus(['queued', 'running']);
    for (const job of jobs) {
      const dataset = await this.store.getDataset(job.projectId, job.datasetId);
      if (!dataset) {
        await this.store.updateJob(job.id, { status: 'failed', error: { code: 'MEDFIT_ERR_NOT_FOUND', message: 'dataset was deleted before the job could run' }, finished: new Date().toISOString() });
        continue;
      }
      await this.store.updateJob(job.id, { status: 'queued', progress: 0, stage: 'requeued after restart' });
      this.submit(job, dataset);
    }
    return jobs.length;
  }

  /** Cancels a queued or running job; false when it is not in the queue. */
  cancel(id: string): boolean {
    return this.queue.cancel(id);
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

  /** Listens to one job's events until the returned function is called. */
  subscribe(id: string, listener: (e: JobEvent) => void): () => void {
    this.bus.on(id, listener);
    return () => this.bus.off(id, listener);
  }

  /** Stops the queue; unfinished jobs stay `queued` in the store and resume on the next start. */
  async close(): Promise<void> {
    const unfinished = await this.queue.close();
    for (const id of unfinished) await this.store.updateJob(id, { status: 'queued', progress: 0, stage: 'interrupted by shutdown' });
  }

  private async started(id: string): Promise<void> {
    await this.store.updateJob(id, { status: 'running', started: new Date().toISOString(), stage: 'starting' });
    this.bus.emit(id, { type: 'status', status: 'running' } satisfies JobEvent);
  }

  private async progress(id: string, p: Progress): Promise<void> {
    const now = Date.now();
    if (now - (this.lastWrite.get(id) ?? 0) >= PROGRESS_WRITE_MS) {
      this.lastWrite.set(id, now);
      await this.store.updateJob(id, { progress: p.fraction ?? 0, stage: p.stage });
    }
    this.bus.emit(id, {
      type: 'progress',
      progress: p.fraction ?? 0,
      stage: p.stage,
      ...(p.epoch !== undefined ? { epoch: p.epoch } : {}),
      ...(p.loss !== undefined ? { loss: p.loss } : {}),
      ...(p.valLoss !== undefined ? { valLoss: p.valLoss } : {}),
    } satisfies JobEvent);
  }

  private async succeeded(id: string, r: TrainJobResult): Promise<void> {
    const a = this.active.get(id);
    if (!a) return;
    const v = await this.store.createModelVersion({
      projectId: a.projectId,
      name: a.name,
      source: 'trained',
      family: r.family,
      task: r.task,
      dir: join('models', a.projectId, id),
      jobId: id,
      datasetId: a.datasetId,
      datasetSha256: a.datasetSha256,
      metrics: { cv: r.metrics, leaderboard: r.leaderboard, warnings: r.warnings },
    });
    this.hooks.onVersion?.(a.projectId, a.name);
    await this.store.updateJob(id, { status: 'succeeded', progress: 1, stage: 'done', modelVersion: v.version, finished: new Date().toISOString() });
    this.done(id, 'succeeded', { type: 'status', status: 'succeeded', progress: 1, model: { name: a.name, version: v.version } });
  }

  private async finished(id: string, status: 'failed' | 'cancelled', e?: SerializedError): Promise<void> {
    const a = this.active.get(id);
    if (a) rmSync(a.dir, { recursive: true, force: true });
    const error = e ? { code: e.code, message: e.message } : status === 'cancelled' ? { code: 'MEDFIT_ERR_CANCELLED', message: 'cancelled' } : null;
    await this.store.updateJob(id, { status, error, finished: new Date().toISOString() });
    this.done(id, status, { type: 'status', status, ...(error ? { error } : {}) });
  }

  private done(id: string, status: JobRecord['status'], e: JobEvent): void {
    this.active.delete(id);
    this.lastWrite.delete(id);
    this.hooks.onTerminal?.(status);
    this.bus.emit(id, e);
  }
}
