/**
 * A GBDT histogram worker (`parallel.ts` starts it). For each training it is sent the shared
 * memory and its layout, then takes chunks of the steps the training thread posts until the
 * training closes, and waits for the next one. See `parallel.ts` for the protocol.
 */
import { parentPort } from 'node:worker_threads';
import type { SharedMemory } from './kernel.js';
import { CTRL, SPIN, Work, type Layout } from './work.js';

/** A training to join. */
export interface SessionMessage {
  id: number;
  memory: SharedMemory;
  layout: Layout;
}

parentPort!.on('message', (m: SessionMessage) => {
  const work = new Work(m.memory, m.layout);
  const w = new Int32Array(m.memory.buffer, m.layout.ctrl, CTRL.per + 1);
  parentPort!.postMessage(m.id);
  let seen = 0;
  for (;;) {
    // The next step usually follows within microseconds: look a while before sleeping.
    for (let i = 0; i < SPIN && Atomics.load(w, CTRL.gen) === seen; i++);
    Atomics.wait(w, CTRL.gen, seen);
    seen = Atomics.load(w, CTRL.gen);
    if (seen < 0) return;
    for (;;) {
      const c = Atomics.add(w, CTRL.claim, 1);
      if (c >= Atomics.load(w, CTRL.chunks)) break;
      try {
        work.run(Atomics.load(w, CTRL.kind), c, Atomics.load(w, CTRL.per));
      } catch {
        Atomics.store(w, CTRL.error, 1);
      }
      Atomics.add(w, CTRL.byWorkers, 1);
      Atomics.add(w, CTRL.done, 1);
      Atomics.notify(w, CTRL.done);
    }
  }
});
