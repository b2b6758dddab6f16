import { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMedfitError, type CandidateScore, type Progress, type SerializedError } from '../core/index.js';
import type { FhirLineage, JobQueue, TrainJobResult, TrainJobSpec } from '../jobs/index.js';
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
}

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

  constructor(
    private readonly store: MetadataStore,
    private readonly queue: JobQueue,
    private readonly dataDir: string,
    private readonly hooks: JobManagerHooks = {},
  ) {
    this.bus.setMaxListeners(0);
    queue.on('started', (id) => this.record(id, () => this.started(id)));
    queue.on('progress', (id, p) => this.record(id, () => this.progress(id, p)));
    queue.on('succeeded', (id, r) => this.record(id, () => this.succeeded(id, r)));
    queue.on('failed', (id, e) => this.record(id, () => this.finished(id, 'failed', e)));
    queue.on('cancelled', (id) => this.record(id, () => this.finished(id, 'cancelled')));
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
    for (const job of jobs) {
      const registered = (await this.store.listModelVersions(job.projectId, job.name)).find((v) => v.jobId === job.id);
      if (registered) {
        await this.store.updateJob(job.id, { status: 'succeeded', progress: 1, stage: 'done', modelVersion: registered.version, finished: new Date().toISOString() });
        continue;
      }
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

  /**
   * Listens to one job's events until the returned function is called. `past` holds the job's
   * epoch and candidate events so far, taken in the same tick as the subscription, so none is
   * both in `past` and delivered, and none falls between them.
   */
  subscribe(id: string, listener: (e: JobEvent) => void): { unsubscribe: () => void; past: JobEvent[] } {
    this.bus.on(id, listener);
    return { unsubscribe: () => this.bus.off(id, listener), past: [...(this.history.get(id) ?? [])] };
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
    const unfinished = await this.queue.close();
    this.stopping.abort();
    await Promise.all([...this.chains.values()]);
    for (const id of unfinished) {
      try {
        await this.store.updateJob(id, { status: 'queued', progress: 0, stage: 'interrupted by shutdown' });
      } catch (e) {
        this.report('warn', `job ${id}: could not be marked as interrupted; it is resumed at the next start all the same`, e);
      }
    }
  }

  private async started(id: string): Promise<void> {
    await this.persist(id, 'its start', () => this.store.updateJob(id, { status: 'running', started: new Date().toISOString(), stage: 'starting' }));
    this.bus.emit(id, { type: 'status', status: 'running' } satisfies JobEvent);
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
    if (e.epoch !== undefined || e.candidate !== undefined) this.remember(id, e);
    this.bus.emit(id, e);
  }

  private async succeeded(id: string, r: TrainJobResult): Promise<void> {
    const a = this.active.get(id);
    if (!a) return;
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
      metrics: { cv: r.metrics, ...(r.nested ? { nested: r.nested } : {}), leaderboard: r.leaderboard, warnings: r.warnings },
    }));
    // Not registered before shutdown: the job stays running in the store and is trained again.
    if (v === GAVE_UP) return;
    this.hooks.onVersion?.(a.projectId, a.name);
    await this.persist(id, 'its success', () =>
      this.store.updateJob(id, { status: 'succeeded', progress: 1, stage: 'done', modelVersion: v.version, finished: new Date().toISOString() }),
    );
    this.done(id, 'succeeded', { type: 'status', status: 'succeeded', progress: 1, model: { name: a.name, version: v.version } });
  }

  private async finished(id: string, status: 'failed' | 'cancelled', e?: SerializedError): Promise<void> {
    const a = this.active.get(id);
    if (a) {
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
    this.active.delete(id);
    this.lastWrite.delete(id);
    this.hooks.onTerminal?.(status);
    this.bus.emit(id, e);
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
