import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Progress, SerializedError } from '../core/index.js';
import { loadArtifact } from '../registry/index.js';
import { createWorkerQueue, liveJobWorkers, type JobQueue, type TrainJobResult, type TrainJobSpec } from './index.js';
import { throttleProgress } from './progress.js';

let dir: string;
let csv: string;
let csvSha: string;

/** A learnable binary table: outcome depends on glucose and bmi, with a categorical column. */
function makeCsv(rows: number): string {
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const lines = ['age,bmi,glucose,sex,outcome'];
  for (let i = 0; i < rows; i++) {
    const age = 20 + Math.floor(rnd() * 60);
    const bmi = +(18 + rnd() * 20).toFixed(1);
    const glucose = Math.round(70 + rnd() * 130);
    const risk = (glucose - 130) / 30 + (bmi - 28) / 6 + (rnd() - 0.5) * 2;
    lines.push(`${age},${bmi},${glucose},${rnd() < 0.5 ? 'F' : 'M'},${risk > 0 ? 'yes' : 'no'}`);
  }
  return lines.join('\n') + '\n';
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'medfit-jobs-'));
  csv = join(dir, 'stored-blob-1234');
  writeFileSync(csv, makeCsv(150));
  csvSha = createHash('sha256').update(readFileSync(csv)).digest('hex');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function spec(over: Partial<TrainJobSpec> = {}): TrainJobSpec {
  n++;
  return {
    datasetPath: csv,
    datasetName: 'clinic.csv',
    target: 'outcome',
    model: 'logistic',
    cv: 3,
    outDir: join(dir, 'models', `m${n}`),
    lineage: { datasetId: 'ds1', datasetSha256: csvSha, jobId: `job${n}` },
    ...over,
  };
}

/** A long MLP run: early stopping effectively off, so it is still training when cancelled. */
const longMlp = (): Partial<TrainJobSpec> => ({ model: 'mlp', cv: 2, params: { mlp: { epochs: 100000, patience: 100000, units: [8] } } });

/** OS threads of this process: a worker, and the MLP worker nested in it, each add some. */
const threads = () => Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

/** Waits until the thread count is back to `baseline` (a terminated thread is joined shortly after). */
async function threadsBackTo(baseline: number): Promise<number> {
  for (let i = 0; i < 40 && threads() > baseline; i++) await new Promise((r) => setTimeout(r, 50));
  return threads();
}

type Ev = { type: keyof import('./types.js').JobEvents; id: string; arg?: unknown; at: number };

/** Records every event of a queue, and waits for one. */
function record(q: JobQueue) {
  const events: Ev[] = [];
  const waiters: Array<() => void> = [];
  const push = (e: Ev) => {
    events.push(e);
    waiters.forEach((w) => w());
  };
  q.on('started', (id) => push({ type: 'started', id, at: Date.now() }));
  q.on('progress', (id, p) => push({ type: 'progress', id, arg: p, at: Date.now() }));
  q.on('succeeded', (id, r) => push({ type: 'succeeded', id, arg: r, at: Date.now() }));
  q.on('failed', (id, e) => push({ type: 'failed', id, arg: e, at: Date.now() }));
  q.on('cancelled', (id) => push({ type: 'cancelled', id, at: Date.now() }));
  const until = (pred: (e: Ev) => boolean, ms = 30_000) =>
    new Promise<Ev>((resolve, reject) => {
      const hit = events.find(pred);
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`timed out; events: ${events.map((e) => `${e.type}:${e.id}`).join(' ')}`)), ms);
      waiters.push(() => {
        const h = events.find(pred);
        if (h) {
          clearTimeout(t);
          resolve(h);
        }
      });
    });
  const terminal = (id: string) => until((e) => e.id === id && ['succeeded', 'failed', 'cancelled'].includes(e.type));
  return { events, until, terminal, of: (id: string) => events.filter((e) => e.id === id).map((e) => e.type) };
}

/** Checks the per-job event grammar: started, progress*, exactly one terminal event. */
function expectWellFormed(types: string[], terminal: string) {
  expect(types[0]).toBe('started');
  expect(types.at(-1)).toBe(terminal);
  expect(types.slice(1, -1).every((t) => t === 'progress')).toBe(true);
}

describe('createWorkerQueue', () => {
  it('trains in a worker thread, reports progress, saves a loadable model', async () => {
    const q = createWorkerQueue({});
    const ev = record(q);
    const s = spec();
    q.submit('a', s);
    expect(q.size()).toBe(1);
    const end = await ev.terminal('a');
    expect(end.type, JSON.stringify(end.arg)).toBe('succeeded');
    expectWellFormed(ev.of('a'), 'succeeded');
    expect(ev.of('a').filter((t) => t === 'progress').length).toBeGreaterThan(0);
    const r = end.arg as TrainJobResult;
    expect(r).toMatchObject({ artifactDir: s.outDir, family: 'logistic', task: 'binary' });
    expect(r.metrics['auroc']!.mean).toBeGreaterThan(0.7);
    expect(r.leaderboard.map((c) => c.family)).toEqual(['logistic']);
    expect(Array.isArray(r.warnings)).toBe(true);
    const art = loadArtifact(s.outDir);
    expect(art.manifest.dataset).toMatchObject({ source: 'clinic.csv', sha256: s.lineage.datasetSha256, rows: 150 });
    expect(art.manifest.model.family).toBe('logistic');
    expect(q.size()).toBe(0);
    expect(liveJobWorkers()).toBe(0);
    expect(await q.close()).toEqual([]);
  });

  it('reports a bad target as failed MEDFIT_ERR_BAD_DATA naming the column and the dataset, not the path', async () => {
    const q = createWorkerQueue({});
    const ev = record(q);
    const s = spec({ target: 'no_such_column' });
    q.submit('bad', s);
    const end = await ev.terminal('bad');
    expect(end.type).toBe('failed');
    expectWellFormed(ev.of('bad'), 'failed');
    const e = end.arg as SerializedError;
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toContain('no_such_column');
    expect(e.message).toContain('clinic.csv');
    expect(e.message).not.toContain(dir);
    expect(existsSync(s.outDir)).toBe(false);
    await q.close();
  });

  it('refuses a stored dataset whose bytes no longer match the SHA-256 recorded at upload', async () => {
    const q = createWorkerQueue({});
    const ev = record(q);
    const s = spec({ lineage: { datasetId: 'ds1', datasetSha256: 'a'.repeat(64), jobId: 'tampered' } });
    q.submit('tampered', s);
    const end = await ev.terminal('tampered');
    expect(end.type).toBe('failed');
    expect((end.arg as SerializedError).message).toBe('clinic.csv: the stored dataset no longer matches the SHA-256 recorded at upload; upload it again');
    expect(existsSync(s.outDir)).toBe(false);
    await q.close();
  });

  it('runs jobs one after the other with concurrency 1', async () => {
    const q = createWorkerQueue({ concurrency: 1 });
    const ev = record(q);
    q.submit('one', spec());
    q.submit('two', spec());
    expect(q.size()).toBe(2);
    expect(() => q.submit('two', spec())).toThrow(/already queued/);
    await ev.terminal('two');
    const order = ev.events.filter((e) => e.type !== 'progress').map((e) => `${e.type}:${e.id}`);
    expect(order).toEqual(['started:one', 'succeeded:one', 'started:two', 'succeeded:two']);
    expectWellFormed(ev.of('two'), 'succeeded');
    await q.close();
  });

  it('trains an MLP, whose own worker starts inside the job worker', async () => {
    const q = createWorkerQueue({});
    const ev = record(q);
    const s = spec({ model: 'mlp', cv: 2, params: { mlp: { epochs: 5, units: [4] } } });
    q.submit('mlp', s);
    const end = await ev.terminal('mlp');
    expect(end.type, JSON.stringify(end.arg)).toBe('succeeded');
    expect(ev.events.some((e) => e.type === 'progress' && (e.arg as Progress).epoch !== undefined)).toBe(true);
    expect(loadArtifact(s.outDir).manifest.model.family).toBe('mlp');
    await q.close();
  });

  it('fails a job whose worker cannot start, and goes on with the next', async () => {
    const q = createWorkerQueue({});
    const ev = record(q);
    // A function cannot be cloned into workerData: the Worker constructor throws.
    q.submit('x', { ...spec(), lineage: (() => {}) as unknown as TrainJobSpec['lineage'] });
    q.submit('y', spec());
    expect((await ev.terminal('x')).arg).toMatchObject({ code: 'MEDFIT_ERR_INTERNAL' });
    expectWellFormed(ev.of('x'), 'failed');
    expect((await ev.terminal('y')).type).toBe('succeeded');
    await q.close();
  });

  it('cancels a queued job and a running MLP job (nested worker) without leaving output or threads', async () => {
    const q = createWorkerQueue({ concurrency: 1 });
    const ev = record(q);
    const baseline = threads();
    const running = spec(longMlp());
    // What a thread terminated in the middle of saveArtifact would leave beside the model dir.
    mkdirSync(join(dir, 'models'), { recursive: true });
    const stale = join(dir, 'models', `.m${n}.tmp-0badf00d`);
    mkdirSync(stale);
    q.submit('run', running);
    q.submit('wait', spec());
    expect(q.cancel('wait')).toBe(true);
    expect(ev.of('wait')).toEqual(['cancelled']);
    // An epoch from the MLP's own worker, started inside the job's worker, proves nesting works.
    await ev.until((e) => e.id === 'run' && e.type === 'progress' && (e.arg as Progress).epoch !== undefined);
    expect(q.cancel('run')).toBe(true);
    expect(q.cancel('run')).toBe(false);
    await ev.terminal('run');
    expectWellFormed(ev.of('run'), 'cancelled');
    expect(existsSync(running.outDir)).toBe(false);
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(join(dir, 'models')).filter((f) => f.startsWith('.'))).toEqual([]);
    expect(liveJobWorkers()).toBe(0);
    if (existsSync('/proc/self/status')) expect(await threadsBackTo(baseline)).toBeLessThanOrEqual(baseline);
    expect(q.size()).toBe(0);
    expect(q.cancel('run')).toBe(false);
    expect(q.cancel('unknown')).toBe(false);
    expect(ev.of('wait')).toEqual(['cancelled']);
    await q.close();
  });

  it('close() terminates running jobs, emits nothing more and returns the unfinished ids', async () => {
    const q = createWorkerQueue({ concurrency: 1 });
    const ev = record(q);
    const s = spec(longMlp());
    q.submit('c1', s);
    q.submit('c2', spec());
    await ev.until((e) => e.id === 'c1' && e.type === 'progress');
    const ids = await q.close();
    expect(ids.sort()).toEqual(['c1', 'c2']);
    const count = ev.events.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(ev.events.length).toBe(count);
    expect(ev.events.some((e) => e.type !== 'started' && e.type !== 'progress')).toBe(false);
    expect(liveJobWorkers()).toBe(0);
    expect(existsSync(s.outDir)).toBe(false);
    expect(q.cancel('c2')).toBe(false);
    expect(() => q.submit('c3', spec())).toThrow(/closed/);
  });
});

describe('throttleProgress', () => {
  it('passes stage and epoch changes, drops the rest within the interval, flushes the last', () => {
    let t = 0;
    const out: Progress[] = [];
    const p = throttleProgress((x) => out.push(x), 100, () => t);
    p.push({ stage: 'a', fraction: 0.1 });
    p.push({ stage: 'a', fraction: 0.2 });
    p.push({ stage: 'a', fraction: 0.3 });
    p.push({ stage: 'b', fraction: 0.4 });
    p.push({ stage: 'b', epoch: 1 });
    p.push({ stage: 'b', epoch: 2 });
    t = 150;
    p.push({ stage: 'b', epoch: 2, fraction: 0.6 });
    p.push({ stage: 'b', epoch: 2, fraction: 0.7 });
    p.flush();
    p.flush();
    expect(out.map((x) => x.fraction ?? x.epoch)).toEqual([0.1, 0.4, 1, 2, 0.6, 0.7]);
  });
});
