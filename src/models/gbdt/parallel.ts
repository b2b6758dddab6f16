/**
 * Threads for the GBDT trainer: workers that share a training's WebAssembly memory and take
 * chunks of its steps (`work.ts`: a level's nodes, whole or by features, for histograms and
 * splits, rows for gradients, features to bin, nodes to partition, leaves), while the training
 * thread takes chunks too. A chunk computes the same thing whoever runs it (a histogram feature
 * is summed over the node's rows in row order, never split by rows), so the trees do not depend
 * on the number of threads nor on which thread took which chunk.
 *
 * A step is handed over through a few `Int32Array` words in the shared memory, not by messages:
 * the training thread writes the step, resets the claim counter and wakes the workers
 * (`Atomics.notify`); every thread claims chunks with `Atomics.add` until none are left, so a
 * worker that wakes late (or a busy core) only means the training thread does more of them; the
 * training thread then waits (`Atomics.wait`, after a short spin) for the chunks others claimed.
 * A round trip costs about 10–30 µs here, so trees are grown level by level (a few steps a tree)
 * and small steps are not handed out at all (`PARALLEL_MIN`, `ROWS_PARALLEL_MIN` in tree.ts).
 *
 * Workers are started once per thread that trains (`core/worker.ts` `startWorker`: about 60 ms
 * compiled, 300 ms under tsx) and kept for the next training, `unref`'d so an idle one never keeps
 * the process alive; `closeHistWorkers()` stops them. A training leases them (`HistPool`) and
 * gives them back when it ends; one that finds them leased (two trainings at once in one thread)
 * starts its own.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { Errors, MedfitError, siblingModule, startWorker } from '../../core/index.js';
import type { SessionMessage } from './hist-worker.js';
import type { SharedMemory } from './kernel.js';
import { CTRL, CTRL_BYTES, SPIN, type Kind, type Layout } from './work.js';

/** Most threads one training uses (and the most `MEDFIT_TRAIN_THREADS` accepts). */
export const MAX_THREADS = 64;
/** Threads by default: the machine's, capped (beyond 4 the per-node hand-over dominates at these sizes). */
const DEFAULT_CAP = 4;
/** A claim counter no chunk count reaches: what a late claim on a finished step reads. */
const CLOSED = 0x3fffffff;
/** Steps over which the calling thread's waiting is weighed against its own work. */
const WINDOW = 64;
/** Steps run on the calling thread alone after a window where waiting for the workers did not pay. */
const BACKOFF = 1024;

/**
 * Threads for a training: `MEDFIT_TRAIN_THREADS` when set (an integer from 1 to 64), else the
 * machine's available parallelism capped at 4.
 */
export function trainThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['MEDFIT_TRAIN_THREADS'];
  if (raw !== undefined && raw.trim() !== '') {
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 1 || v > MAX_THREADS)
      throw new MedfitError('MEDFIT_ERR_BAD_PARAM', `MEDFIT_TRAIN_THREADS must be an integer from 1 to ${MAX_THREADS} (got "${raw.slice(0, 40)}")`, [{ pointer: 'MEDFIT_TRAIN_THREADS', message: `must be an integer from 1 to ${MAX_THREADS}` }]);
    return v;
  }
  return Math.max(1, Math.min(DEFAULT_CAP, availableParallelism()));
}

/** Started workers not in a training. */
const idle: Worker[] = [];
let live = 0;
let byWorkers = 0;
let sessions = 0;

/** Number of histogram workers alive, idle or in a training. */
export function liveHistWorkers(): number {
  return live;
}

/** Chunks run by histogram workers (not the training threads) since the process started. */
export function histWorkerChunks(): number {
  return byWorkers;
}

/** Stops the idle histogram workers (those of trainings still running stop when they end). */
export async function closeHistWorkers(): Promise<void> {
  const all = idle.splice(0);
  await Promise.all(all.map((w) => w.terminate()));
}

function spawn(): Worker {
  const w = startWorker(siblingModule(import.meta.url, 'hist-worker'), { name: 'medfit-gbdt-hist' });
  live++;
  w.once('exit', () => {
    live--;
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
  });
  // A worker that fails never claims another chunk, so the training threads do them all.
  w.on('error', () => {});
  w.unref();
  return w;
}

/** A training's lease of `workers` workers over its memory, plus the calling thread. */
export class HistPool {
  private readonly ctl: Int32Array;
  private readonly workers: Worker[];
  private readonly joined: Promise<void>;
  private closed = false;
  /** The current window: steps, the calling thread's own chunk time and its waiting (ms). */
  private steps = 0;
  private own = 0;
  private waited = 0;
  /** Steps still to run on the calling thread alone. */
  private skip = 0;

  /**
   * Leases the workers and sends them the training; they join its steps as soon as they are up
   * (the first steps may run on the calling thread alone).
   */
  constructor(memory: SharedMemory, layout: Layout, workers: number) {
    const ctl = new Int32Array(memory.buffer, layout.ctrl, CTRL_BYTES / 4);
    this.ctl = ctl;
    Atomics.store(ctl, CTRL.gen, 0);
    Atomics.store(ctl, CTRL.claim, CLOSED);
    Atomics.store(ctl, CTRL.chunks, 0);
    Atomics.store(ctl, CTRL.error, 0);
    Atomics.store(ctl, CTRL.byWorkers, 0);
    this.workers = idle.splice(0, workers);
    try {
      while (this.workers.length < workers) this.workers.push(spawn());
    } catch {
      // No more threads (a resource limit): the training runs on those it has.
    }
    const id = ++sessions;
    this.joined = Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const onMessage = (m: unknown) => {
              if (m !== id) return;
              w.off('message', onMessage);
              w.off('exit', onExit);
              resolve();
            };
            const onExit = () => {
              w.off('message', onMessage);
              resolve();
            };
            w.on('message', onMessage);
            w.once('exit', onExit);
            const message: SessionMessage = { id, memory, layout };
            w.postMessage(message);
          }),
      ),
    ).then(() => undefined);
  }

  /** Resolves when every worker has joined (or died): tests wait so that all take part. */
  ready(): Promise<void> {
    return this.joined;
  }

  /** Threads that take chunks (the workers and the calling thread). */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Whether the next big step should be handed out. Not while backing off: when, over a window of
   * steps, the calling thread waited for the workers about as long as it worked itself (other
   * processes hold the cores, so a worker that took a chunk is not running), handing out costs
   * more than it saves, and the steps stay on the calling thread for a while. The trees are the
   * same either way.
   */
  worthIt(): boolean {
    if (this.skip === 0) return true;
    this.skip--;
    return false;
  }

  /**
   * Runs chunks 0..n-1 of a step of `kind` (its descriptor already written), on every thread;
   * returns when all are done. `run(c)` runs chunk c on the calling thread.
   */
  step(kind: Kind, n: number, per: number, run: (c: number) => void): void {
    const w = this.ctl;
    const t0 = performance.now();
    Atomics.store(w, CTRL.kind, kind);
    Atomics.store(w, CTRL.per, per);
    Atomics.store(w, CTRL.done, 0);
    Atomics.store(w, CTRL.chunks, n);
    Atomics.store(w, CTRL.claim, 0);
    Atomics.add(w, CTRL.gen, 1);
    Atomics.notify(w, CTRL.gen);
    // A chunk that throws here flags the step as the workers do, so that none waits for what it
    // would have written (a partition part waits for its node's split), and the step still ends
    // with every claimed chunk counted before the error is thrown.
    let failure: unknown;
    for (let c = Atomics.add(w, CTRL.claim, 1); c < n; c = Atomics.add(w, CTRL.claim, 1)) {
      if (failure === undefined)
        try {
          run(c);
        } catch (e) {
          failure = e;
          Atomics.store(w, CTRL.error, 1);
        }
      Atomics.add(w, CTRL.done, 1);
    }
    const t1 = performance.now();
    for (let i = 0; i < SPIN && Atomics.load(w, CTRL.done) < n; i++);
    for (let d = Atomics.load(w, CTRL.done); d < n; d = Atomics.load(w, CTRL.done)) Atomics.wait(w, CTRL.done, d);
    Atomics.store(w, CTRL.claim, CLOSED);
    if (failure !== undefined) throw failure;
    if (Atomics.load(w, CTRL.error) !== 0) throw Errors.internal('gbdt: a histogram worker failed');
    this.own += t1 - t0;
    this.waited += performance.now() - t1;
    if (++this.steps === WINDOW) {
      // Break-even: with the work split in two, waiting as long as working is what one thread takes.
      if (this.waited > 0.8 * this.own) this.skip = BACKOFF;
      this.steps = 0;
      this.own = 0;
      this.waited = 0;
    }
  }

  /** Ends the training's lease (idempotent): the workers leave its steps and wait for the next training. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    byWorkers += Atomics.load(this.ctl, CTRL.byWorkers);
    Atomics.store(this.ctl, CTRL.gen, -1);
    Atomics.notify(this.ctl, CTRL.gen);
    for (const w of this.workers) if (w.threadId >= 0) idle.push(w);
  }
}
