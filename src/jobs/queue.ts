import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Errors, serializeError } from '../core/index.js';
import type { JobWorkerMessage } from './protocol.js';
import { startJobWorker } from './spawn.js';
import type { JobEvents, JobQueue, TrainJobSpec } from './types.js';

/** Options of the embedded queue. */
export interface WorkerQueueOptions {
  /**
   * Jobs running at once (default 1). Each job keeps a core busy, and an MLP job starts a second
   * worker of its own, so more than one per spare core only slows every job down.
   */
  concurrency?: number;
  /** MEDFIT_MANIFEST_KEY: each job's worker signs the manifest it saves with it. */
  manifestKey?: string | undefined;
}

interface Running {
  id: string;
  spec: TrainJobSpec;
  worker: Worker;
  /** Whether `spec.outDir` existed before the job: if so it is never ours to remove. */
  outDirExisted: boolean;
  /** Set once the job's outcome is decided; later messages from the worker are ignored. */
  settled: boolean;
  /** Set by `cancel`: the job will never run again, so `close()` does not hand it back. */
  cancelling: boolean;
  exited: boolean;
  /** Resolves once the thread is gone and partial output removed. */
  done?: Promise<void>;
}

/** Number of job worker threads alive in this thread (tests check that none outlive a job). */
let live = 0;

/** Job worker threads started by any queue of this thread and not exited yet. */
export function liveJobWorkers(): number {
  return live;
}

/**
 * The embedded `JobQueue`: jobs wait in submission order and each runs in its own worker
 * thread, at most `concurrency` at a time. A terminal event is emitted only once the job's thread
 * has exited (and, when the job did not succeed, its partial output is removed), so a listener
 * never sees a finished job that still holds a core or a half-written directory.
 *
 * Some events fire synchronously: `started` (and `failed`, when no thread can start) from inside
 * `submit` when a slot is free, and `cancelled` from inside `cancel` for a queued job. Listener
 * exceptions are caught and reported with `process.emitWarning`.
 */
export class WorkerQueue implements JobQueue {
  private readonly emitter = new EventEmitter();
  private readonly queued: Array<{ id: string; spec: TrainJobSpec }> = [];
  private readonly running = new Map<string, Running>();
  private readonly concurrency: number;
  private readonly manifestKey: string | undefined;
  private closed = false;

  constructor(opts: WorkerQueueOptions = {}) {
    const c = opts.concurrency ?? 1;
    if (!Number.isInteger(c) || c < 1) throw Errors.badParam('concurrency', `must be an integer of at least 1 (got ${c})`);
    this.concurrency = c;
    this.manifestKey = opts.manifestKey;
  }

  /**
   * Queues a job. Throws a `MedfitError` (the caller's bug, nothing to retry) when `id` is already
   * queued or running, or the queue is closed.
   */
  submit(id: string, spec: TrainJobSpec): void {
    if (this.closed) throw Errors.internal(`job queue is closed; job ${id} was not queued`);
    if (this.running.has(id) || this.queued.some((q) => q.id === id)) throw Errors.usage(`job ${id} is already queued or running`);
    this.queued.push({ id, spec });
    this.pump();
  }

  cancel(id: string): boolean {
    if (this.closed) return false;
    const i = this.queued.findIndex((q) => q.id === id);
    if (i >= 0) {
      this.queued.splice(i, 1);
      this.emit('cancelled', id);
      return true;
    }
    const r = this.running.get(id);
    // A job whose outcome is already decided is finishing: too late to cancel it.
    if (!r || r.settled) return false;
    r.cancelling = true;
    this.settle(r, true, () => this.emit('cancelled', id));
    return true;
  }

  on<E extends keyof JobEvents>(event: E, listener: JobEvents[E]): void {
    this.emitter.on(event, listener);
  }

  size(): number {
    return this.queued.length + this.running.size;
  }

  async close(): Promise<string[]> {
    if (this.closed) return [];
    this.closed = true;
    const ids = this.queued.map((q) => q.id);
    this.queued.length = 0;
    const waits: Promise<void>[] = [];
    for (const r of this.running.values()) {
      if (!r.cancelling) ids.push(r.id);
      // Even a job whose result just arrived is handed back and its directory removed: its
      // `succeeded` will never be emitted, so the caller re-queues it and it must be able to write.
      if (!r.settled) this.settle(r, true, () => {});
      else if (!r.cancelling) r.done = r.done?.then(() => this.removeOutput(r));
      waits.push(r.done ?? Promise.resolve());
    }
    await Promise.all(waits);
    return ids;
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.queued.length > 0) {
      const { id, spec } = this.queued.shift()!;
      this.start(id, spec);
    }
  }

  private start(id: string, spec: TrainJobSpec): void {
    const outDirExisted = existsSync(spec.outDir);
    let worker: Worker;
    try {
      worker = startJobWorker({ spec, ...(this.manifestKey !== undefined ? { manifestKey: this.manifestKey } : {}) });
    } catch (e) {
      this.emit('started', id);
      // It never took a slot, so pump()'s loop goes on with the next job.
      this.emit('failed', id, serializeError(Errors.internal(`could not start the training worker: ${e instanceof Error ? e.message : String(e)}`)));
      return;
    }
    live++;
    const r: Running = { id, spec, worker, outDirExisted, settled: false, cancelling: false, exited: false };
    this.running.set(id, r);
    const fail = (message: string) => this.settle(r, true, () => this.emit('failed', id, serializeError(Errors.internal(message))));

    worker.on('message', (m: JobWorkerMessage) => {
      if (r.settled || this.closed) return;
      if (m.type === 'progress') this.emit('progress', id, m.progress);
      else if (m.type === 'result') this.settle(r, false, () => this.emit('succeeded', id, m.result));
      else this.settle(r, true, () => this.emit('failed', id, m.error));
    });
    worker.on('error', (e) => fail(`training worker failed: ${e.message}`));
    worker.on('messageerror', (e) => fail(`training worker sent an unreadable message: ${String(e)}`));
    worker.on('exit', (code) => {
      this.markExited(r);
      if (!r.settled) fail(`training worker exited (code ${code}) without a result`);
    });
    this.emit('started', id);
  }

  /**
   * Decides a running job's outcome: stops its thread, removes partial output when `cleanup`,
   * frees its slot, then reports (unless the queue closed meanwhile) and starts the next job.
   */
  private settle(r: Running, cleanup: boolean, report: () => void): void {
    if (r.settled) return;
    r.settled = true;
    const stopped = r.exited ? Promise.resolve() : r.worker.terminate().then(() => this.markExited(r), () => this.markExited(r));
    r.done = stopped.then(() => {
      if (cleanup) this.removeOutput(r);
      this.running.delete(r.id);
      if (this.closed) return;
      report();
      this.pump();
    });
  }

  private markExited(r: Running): void {
    if (r.exited) return;
    r.exited = true;
    live--;
  }

  /**
   * Removes what a stopped job may have left: `saveArtifact`'s hidden `.name.tmp-*` sibling (a
   * thread terminated mid-save cannot clean it up), and the model directory itself if the job
   * created it (terminated between the rename and its result message).
   */
  private removeOutput(r: Running): void {
    const dir = r.spec.outDir;
    try {
      const parent = dirname(dir);
      const prefix = `.${basename(dir)}.tmp-`;
      if (existsSync(parent)) for (const f of readdirSync(parent)) if (f.startsWith(prefix)) rmSync(join(parent, f), { recursive: true, force: true });
      if (!r.outDirExisted) rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort: a leftover directory must not turn into an unhandled rejection; the next
      // attempt with the same outDir then fails with saveArtifact's "already exists" message.
    }
  }

  private emit<E extends keyof JobEvents>(event: E, ...args: Parameters<JobEvents[E]>): void {
    try {
      this.emitter.emit(event, ...args);
    } catch (e) {
      // A throwing listener must not corrupt the queue's state or become an uncaught exception
      // inside a worker callback; it is reported as a process warning instead.
      process.emitWarning(`medfit job queue: a "${event}" listener threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
