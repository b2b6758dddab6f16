import { Errors } from '../core/index.js';

/**
 * Runs work at most `concurrency` at a time, first come first served. A finishing run hands its
 * place straight to the first caller waiting, so no newcomer slips in between. At most `queue`
 * callers wait (unbounded when not given); one beyond that is refused at once with `refusal`
 * (a 503 from `Errors.unavailable`, whose `Retry-After` is `retryAfterS`, else about one run's
 * time, a moving average), so a burst cannot pile up work that makes every later caller wait
 * minutes. A caller whose `signal` aborts while it waits leaves the line, its work never run
 * (rejecting with `gone()`, `Errors.cancelled` by default); work already running gets the same
 * signal and stops itself. Used by explained predictions and the dataset workers (FIT
 * conversion, sensor series).
 */
export class WorkQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  /** Moving average of a completed run's time, for `Retry-After`. */
  private averageMs = 1000;

  constructor(private readonly o: { concurrency: number; queue?: number; refusal: string; retryAfterS?: number }) {}

  /** Runs now, waiting, and the average run's time (for metrics and tests). */
  load(): { running: number; waiting: number; averageMs: number } {
    return { running: this.running, waiting: this.waiting.length, averageMs: this.averageMs };
  }

  /** Runs `work` when a place is free; refused at once when the queue is full, cancelled when `signal` aborts first. */
  async run<T>(work: (signal: AbortSignal | undefined) => Promise<T>, signal?: AbortSignal, gone: () => Error = () => Errors.cancelled('the request')): Promise<T> {
    if (signal?.aborted) throw gone();
    if (this.running < this.o.concurrency) this.running++;
    else if (this.waiting.length >= (this.o.queue ?? Infinity)) throw Errors.unavailable(this.o.refusal, this.o.retryAfterS ?? Math.min(60, Math.max(1, this.averageMs / 1000)));
    else {
      await new Promise<void>((resolve, reject) => {
        const start = () => {
          signal?.removeEventListener('abort', leave);
          resolve();
        };
        const leave = () => {
          const i = this.waiting.indexOf(start);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(gone());
        };
        this.waiting.push(start);
        signal?.addEventListener('abort', leave, { once: true });
      });
    }
    const t0 = performance.now();
    try {
      return await work(signal);
    } finally {
      if (!signal?.aborted) this.averageMs = 0.7 * this.averageMs + 0.3 * (performance.now() - t0);
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
