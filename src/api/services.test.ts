import Database from 'better-sqlite3';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../core/index.js';
import type { JobEvents, JobQueue, TrainJobResult, TrainJobSpec } from '../jobs/index.js';
import { openSqliteStore, type DatasetRecord, type JobRecord, type MetadataStore } from '../store/index.js';
import { JobManager, type JobEvent } from './services.js';

/**
 * The queue's side is played by hand (its events are what is under test here, not training):
 * the store is the real SQLite one, locked by a real second connection.
 */
class HandQueue implements JobQueue {
  readonly events = new EventEmitter();
  readonly submitted: string[] = [];
  submit(id: string, _spec: TrainJobSpec): void {
    this.submitted.push(id);
  }
  cancel(): boolean {
    return false;
  }
  on<E extends keyof JobEvents>(event: E, listener: JobEvents[E]): void {
    this.events.on(event, listener);
  }
  size(): number {
    return 0;
  }
  async close(): Promise<string[]> {
    return [];
  }
}

const result: TrainJobResult = { artifactDir: 'x', family: 'logistic', task: 'binary', metrics: { auroc: { mean: 0.9, std: 0.01 } }, leaderboard: [], warnings: [] };
const until = async (what: () => Promise<boolean> | boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
};

let dir: string;
let path: string;
let store: MetadataStore;
let job: JobRecord;
let dataset: DatasetRecord;
let unhandled: unknown[];
const onUnhandled = (e: unknown) => unhandled.push(e);
const closers: Array<() => Promise<void> | void> = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'medfit-jobs-'));
  path = join(dir, 'medfit.db');
  store = openSqliteStore(path, { retryMs: 100 });
  const p = await store.createProject('p');
  dataset = await store.createDataset({ id: 'd1', projectId: p.id, name: 'd', file: 'datasets/d.csv', format: 'csv', rows: 10, bytes: 10, sha256: 'h', columns: [] });
  job = await store.createJob({ id: 'j1', projectId: p.id, datasetId: dataset.id, name: 'risk', spec: { target: 'y' } });
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  process.off('unhandledRejection', onUnhandled);
  for (const close of closers.splice(0).reverse()) await close();
  await store.close();
});

describe('JobManager with a store that refuses', () => {
  it('records a job that succeeded while another process held the lock, once the lock is released', async () => {
    const queue = new HandQueue();
    const logged: string[] = [];
    const versions: string[] = [];
    const manager = new JobManager(store, queue, dir, { log: (level, message) => logged.push(`${level}: ${message}`), onVersion: (_p, name) => versions.push(name) });
    closers.push(() => manager.close());
    const events: JobEvent[] = [];
    manager.subscribe(job.id, (e) => events.push(e));
    manager.submit(job, dataset);
    const other = new Database(path);
    closers.push(() => {
      other.close();
    });
    other.exec('BEGIN IMMEDIATE');
    // Both events arrive while the store refuses: neither may be lost or applied out of order.
    queue.events.emit('started', job.id);
    queue.events.emit('succeeded', job.id, result);
    await new Promise((r) => setTimeout(r, 700));
    expect((await store.getJob(job.projectId, job.id))!.status).toBe('queued');
    expect(await store.listModelVersions(job.projectId)).toEqual([]);
    expect(logged.some((l) => /^warn: job j1: .* could not be recorded yet/.test(l))).toBe(true);
    other.exec('COMMIT');
    await until(async () => (await store.getJob(job.projectId, job.id))!.status === 'succeeded');
    const stored = (await store.getJob(job.projectId, job.id))!;
    expect(stored).toMatchObject({ status: 'succeeded', modelVersion: 1, progress: 1 });
    expect(stored.started).not.toBeNull();
    expect(await store.listModelVersions(job.projectId)).toEqual([expect.objectContaining({ name: 'risk', version: 1, jobId: job.id })]);
    expect(versions).toEqual(['risk']);
    expect(events.map((e) => e.status)).toEqual(['running', 'succeeded']);
    expect(events.at(-1)).toMatchObject({ model: { name: 'risk', version: 1 } });
    expect(unhandled).toEqual([]);
  });

  it('gives up at close without an unhandled rejection; the next start completes a job whose version was registered', async () => {
    // A store whose job updates keep failing as unavailable (the version itself is registered).
    const refusing: MetadataStore = Object.create(store, {
      updateJob: { value: () => Promise.reject(Errors.unavailable('the metadata store is busy')) },
    }) as MetadataStore;
    const queue = new HandQueue();
    const manager = new JobManager(refusing, queue, dir);
    manager.submit(job, dataset);
    queue.events.emit('succeeded', job.id, result);
    await until(async () => (await store.listModelVersions(job.projectId)).length === 1);
    const t0 = performance.now();
    await manager.close();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect((await store.getJob(job.projectId, job.id))!.status).toBe('queued');

    const again = new HandQueue();
    const restarted = new JobManager(store, again, dir);
    closers.push(() => restarted.close());
    await restarted.resume();
    expect(again.submitted).toEqual([]);
    expect(await store.getJob(job.projectId, job.id)).toMatchObject({ status: 'succeeded', modelVersion: 1 });
    expect(unhandled).toEqual([]);
  });
});

describe('JobManager history for late event streams', () => {
  it('keeps a job\'s epochs and family scores, in order, for a listener that subscribes later, even after the job ended', async () => {
    const queue = new HandQueue();
    const manager = new JobManager(store, queue, dir);
    closers.push(() => manager.close());
    manager.submit(job, dataset);
    queue.events.emit('started', job.id);
    queue.events.emit('progress', job.id, { stage: 'mlp fold 1/2', fraction: 0.1, epoch: 1, loss: 0.7, valLoss: 0.8 });
    queue.events.emit('progress', job.id, { stage: 'mlp fold 1/2', fraction: 0.2 });
    queue.events.emit('progress', job.id, { stage: 'mlp fold 1/2', fraction: 0.3, epoch: 2, loss: 0.5, valLoss: 0.6 });
    const candidate = { family: 'mlp', metrics: { auroc: { mean: 0.91, std: 0.02 } }, seconds: 1.5 };
    queue.events.emit('progress', job.id, { stage: 'mlp scored', fraction: 0.5, candidate });
    await until(() => manager.subscribe(job.id, () => {}).past.length === 3);
    const mid = manager.subscribe(job.id, () => {});
    mid.unsubscribe();
    // Only what draws the curve and the leaderboard is kept (not every fraction update).
    expect(mid.past.map((e) => [e.epoch, e.loss, e.valLoss, e.candidate?.family])).toEqual([
      [1, 0.7, 0.8, undefined],
      [2, 0.5, 0.6, undefined],
      [undefined, undefined, undefined, 'mlp'],
    ]);
    expect(mid.past[2]!.candidate).toEqual(candidate);
    queue.events.emit('succeeded', job.id, result);
    await until(async () => (await store.getJob(job.projectId, job.id))!.status === 'succeeded');
    const after = manager.subscribe(job.id, () => {});
    after.unsubscribe();
    expect(after.past).toHaveLength(3);
  });
});
