/**
 * The event loop nothing can stall: a real `medfit serve` process on a real port, and `/healthz`
 * asked back to back from this process while one hostile request at a time is handled. Each of
 * these held the loop for seconds before (a backtracking number pattern, a tokenizer that rescanned
 * an open quoted field per chunk, uploads read and profiled whole on the main thread).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers.js';

const KEY = 'hardening-admin-key-0123456789';
let child: ChildProcess;
let base = '';

beforeAll(async () => {
  child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/bin.ts'), 'serve', '--port', '0', '--data-dir', join(tempDir(), 'data')], {
    cwd: ROOT,
    env: { ...process.env, MEDFIT_ADMIN_KEY: KEY, MEDFIT_LOG_LEVEL: 'warn', MEDFIT_MAX_UPLOAD_MB: '64' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  base = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`medfit serve exited (${code}): ${out}`)));
  });
}, 60_000);

afterAll(() => {
  child?.kill('SIGTERM');
});

/**
 * Runs `work` while `/healthz` is asked back to back; returns the work's result and the slowest
 * health answer in milliseconds.
 */
async function whileHealthChecked<T>(work: () => Promise<T>): Promise<{ result: T; worst: number; checks: number }> {
  let done = false;
  let worst = 0;
  let checks = 0;
  const pinger = (async () => {
    while (!done) {
      const t0 = performance.now();
      const r = await fetch(`${base}/healthz`);
      await r.text();
      worst = Math.max(worst, performance.now() - t0);
      checks++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  // A few answers before the work starts, so a slow first connection is not counted against it.
  await new Promise((r) => setTimeout(r, 50));
  worst = 0;
  try {
    const result = await work();
    return { result, worst, checks };
  } finally {
    done = true;
    await pinger;
  }
}

/**
 * `whileHealthChecked`, once more if the first try saw a slow answer: a request that blocks the
 * loop is slow both times, while a machine busy with something else rarely is twice.
 */
async function responsive<T>(work: () => Promise<T>): Promise<{ result: T; worst: number }> {
  const first = await whileHealthChecked(work);
  expect(first.checks).toBeGreaterThan(0);
  if (first.worst < LIMIT_MS) return first;
  const second = await whileHealthChecked(work);
  return second.worst < first.worst ? second : first;
}

/** The slowest `/healthz` answer allowed while a hostile request is handled. */
const LIMIT_MS = 100;

async function upload(name: string, body: string | Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${base}/v1/datasets?name=${name}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'text/csv' }, body });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

describe('one hostile request does not stall the others', () => {
  it('three 80,000-digit cells (a 240 KB CSV)', async () => {
    const digits = '7'.repeat(80_000);
    const { result, worst } = await responsive(() => upload('digits', `a,b\n${digits},1\n${digits}1,2\n${digits}x,3\n`));
    expect(result.status).toBe(201);
    expect(worst).toBeLessThan(LIMIT_MS);
  });

  it('an 8 MB quoted field', async () => {
    const body = Buffer.from(`a,b\n1,"${'q'.repeat(8 * 1024 * 1024)}"\n`);
    const { result, worst } = await responsive(() => upload('quoted', body));
    expect(result.status).toBe(422);
    expect(String(result.json['detail'])).toBe('quoted:2: a field is longer than 1048576 bytes');
    expect(worst).toBeLessThan(LIMIT_MS);
  });

  it('a 9 MB, 350,000-row CSV, streamed and profiled in a worker', async () => {
    const lines = ['age,bmi,glucose,systolic,site,visit,outcome'];
    for (let i = 0; i < 350_000; i++) {
      lines.push(`${20 + (i % 60)},${(18 + (i % 200) / 10).toFixed(1)},${70 + (i % 130)},${100 + (i % 80)},${i % 3 ? 'north' : 'south'},2024-0${1 + (i % 9)}-1${i % 10},${i % 7 ? 0 : 1}`);
    }
    const body = Buffer.from(lines.join('\n') + '\n');
    expect(body.length).toBeGreaterThan(8 * 1024 * 1024);
    const { result, worst } = await responsive(() => upload('big', body));
    expect(result.status).toBe(201);
    expect(result.json['rows']).toBe(350_000);
    expect(worst).toBeLessThan(LIMIT_MS);
  }, 60_000);

  it('a prediction body with a 60 KB digit string', async () => {
    const small = ['x,y', ...Array.from({ length: 60 }, (_, i) => `${((i * 7) % 13) + (i % 2) * 3},${i % 2}`)].join('\n');
    const ds = await upload('small', small);
    const job = await fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ dataset: ds.json['id'], target: 'y', name: 'm', model: 'logistic', cv: 2 }),
    });
    const id = ((await job.json()) as { id: string }).id;
    for (let i = 0; i < 300; i++) {
      const j = (await (await fetch(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { status: string };
      if (j.status === 'succeeded') break;
      expect(j.status === 'queued' || j.status === 'running').toBe(true);
      await new Promise((r) => setTimeout(r, 100));
    }
    const body = JSON.stringify({ records: [{ x: '1'.repeat(60_000) + 'x' }] });
    const { result, worst } = await responsive(async () => {
      const r = await fetch(`${base}/v1/models/m/predict`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body });
      return { status: r.status, text: await r.text() };
    });
    expect(result.status).toBe(422);
    expect(result.text).toContain('records.0.x: expected a finite number');
    expect(result.text).not.toContain('1111111111');
    expect(worst).toBeLessThan(LIMIT_MS);
  }, 60_000);
});
