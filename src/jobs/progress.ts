import type { Progress, ProgressFn } from '../core/index.js';

/** A progress sink that drops most updates, and `flush()` to send the last one it dropped. */
export interface ThrottledProgress {
  push: ProgressFn;
  flush(): void;
}

/**
 * Limits progress to about one update per `intervalMs`, because every update of a job crosses a
 * thread and may become a database write and a server-sent event: GBDT and CV report far more
 * often than anyone watches. A change of stage or of epoch, and a family's scores, always pass,
 * so no stage, epoch or leaderboard entry is ever invisible.
 */
export function throttleProgress(sink: ProgressFn, intervalMs = 100, now: () => number = Date.now): ThrottledProgress {
  let last: Progress | undefined;
  let lastAt = -Infinity;
  let pending: Progress | undefined;
  const send = (p: Progress) => {
    last = p;
    lastAt = now();
    pending = undefined;
    sink(p);
  };
  return {
    push(p) {
      const boundary = !last || p.stage !== last.stage || (p.epoch !== undefined && p.epoch !== last.epoch) || p.candidate !== undefined;
      if (boundary || now() - lastAt >= intervalMs) send(p);
      else pending = p;
    },
    flush() {
      if (pending) send(pending);
    },
  };
}
