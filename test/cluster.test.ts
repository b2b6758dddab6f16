/**
 * medfit as a cluster: 2 API replicas and 2 training workers, each its own OS process (the real
 * `medfit serve --role api` and `medfit worker`), on the local PostgreSQL (a schema of this run's
 * own), Redis (a key prefix of its own) and file storage in a temporary folder. Skipped, with a
 * message, where PostgreSQL or Redis does not answer; `.ci/run` starts both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers.js';
import { caller, until } from './http.js';
import { PG_URL, REDIS_URL, answers, deleteRedisKeys, dropSchema } from './local-services.js';



const [pgUp, redisUp] = await Promise.all([answers(PG_URL), answers(REDIS_URL)]);
if (!pgUp || !redisUp) {
  console.warn(
    `cluster.test.ts: skipped, ${!pgUp ? `PostgreSQL does not answer at ${new URL(PG_URL).host}` : ''}${!pgUp && !redisUp ? ' and ' : ''}${!redisUp ? `Redis does not answer at ${new URL(REDIS_URL).host}` : ''}; start them (or set MEDFIT_TEST_DATABASE_URL / MEDFIT_TEST_REDIS_URL) to run the cluster test`,
  );
}

const run = randomBytes(4).toString('hex');
const SCHEMA = `cluster_${run}`;
const PREFIX = `medfit-test-${run}`;
const ADMIN = `cluster-admin-${run}-0123456789`;
const storage = tempDir('medfit-cluster-storage-');
const PIMA = join(ROOT, '..', 'shared', 'datasets', 'pima_diabetes.csv');
const PIMA_FALLBACK = join(ROOT, 'test', 'fixtures', 'pima_diabetes.csv');
const pima = readFileSync(existsSync(PIMA) ? PIMA : PIMA_FALLBACK);
const RECORD = { pregnant: 2, glucose: 150, pressure: 70, triceps: 30, insulin: 100, mass: 33, pedigree: 0.5, age: 40 };

interface Proc {
  name: string;
  child: ChildProcess;
  url: Promise<string>;
  out: () => string;
}

const procs: Proc[] = [];

/** Starts one process of the cluster (from the sources, through tsx, as the other CLI tests do). */
function start(name: string, args: string[]): Proc {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MEDFIT_DATABASE_URL: PG_URL,
    MEDFIT_DATABASE_SCHEMA: SCHEMA,
    MEDFIT_REDIS_URL: REDIS_URL,
    MEDFIT_REDIS_PREFIX: PREFIX,
    MEDFIT_STORAGE_URL: `file://${storage}`,
    MEDFIT_ADMIN_KEY: ADMIN,
    MEDFIT_DEID_KEY: 'cluster-test-deid-key-0123456789abcdef',
    MEDFIT_JOB_STALL_SECONDS: '2',
    MEDFIT_LOG_LEVEL: 'info',
    MEDFIT_DEBUG: '',
  };
  delete env['MEDFIT_ROLE'];
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/bin.ts'), ...args, '--port', '0', '--data-dir', tempDir(`medfit-cluster-${name}-`)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let listening: (u: string) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const url = new Promise<string>((resolve, reject) => {
    listening = resolve;
    failed = reject;
  });
  void url.catch(() => undefined);
  const onData = (d: Buffer) => {
    out += d.toString();
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) listening(m[1]!);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.on('close', (code) => failed(new Error(`${name} ended (${code}) before listening: ${out.slice(-500)}`)));
  const p = { name, child, url, out: () => out };
  procs.push(p);
  return p;
}

const auth = { authorization: `Bearer ${ADMIN}` };

const call = caller(ADMIN);

/** Follows a job's Server-Sent Events until its terminal status; returns every event. */
async function follow(base: string, id: string, ms = 120_000): Promise<Array<Record<string, unknown>>> {
  const res = await fetch(`${base}/v1/jobs/${id}/events`, { headers: auth, signal: AbortSignal.timeout(ms) });
  expect(res.status).toBe(200);
  const text = await res.text();
  return text
    .split('\n\n')
    .map((block) => /^data: (.*)$/m.exec(block)?.[1])
    .filter((d): d is string => d !== undefined)
    .map((d) => JSON.parse(d) as Record<string, unknown>);
}

const predict = (base: string, name: string) => call(base, 'POST', `/v1/models/${name}/predict`, { records: [RECORD] });

let apiA: string;
let apiB: string;
let workers: Proc[];
let apiBProc: Proc;
let dataset: string;

describe.skipIf(!pgUp || !redisUp)('a cluster of 2 API replicas and 2 workers on PostgreSQL, Redis and shared storage', () => {
  beforeAll(async () => {
    const a = start('api-a', ['serve', '--role', 'api']);
    apiBProc = start('api-b', ['serve', '--role', 'api']);
    workers = [start('worker-1', ['worker']), start('worker-2', ['worker'])];
    [apiA, apiB] = await Promise.all([a.url, apiBProc.url]);
    await Promise.all(workers.map((w) => w.url));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
            p.child.once('close', () => resolve());
            p.child.kill('SIGTERM');
            setTimeout(() => p.child.kill('SIGKILL'), 15_000).unref();
          }),
      ),
    );
    await dropSchema(SCHEMA);
    await deleteRedisKeys(PREFIX);
  }, 60_000);

  it('every process is ready; workers answer their probes only', async () => {
    for (const base of [apiA, apiB, ...(await Promise.all(workers.map((w) => w.url)))]) {
      const r = await call(base, 'GET', '/readyz');
      expect(r.status).toBe(200);
      expect(r.json.checks).toEqual({ database: 'ok', storage: 'ok', redis: 'ok' });
    }
    const w = await workers[0]!.url;
    expect((await call(w, 'GET', '/v1/datasets')).status).toBe(404);
  });

  it('a dataset uploaded through A, a job submitted through B, its events followed through A, the model predicted through both', async () => {
    const up = await call(apiA, 'POST', '/v1/datasets?name=pima.csv', pima, 'text/csv');
    expect(up.status).toBe(201);
    dataset = up.json.id;
    // B sees it (shared metadata) and its profile (shared storage, fetched on demand).
    const seen = await call(apiB, 'GET', `/v1/datasets/${dataset}`);
    expect(seen.status).toBe(200);
    expect(seen.json.profile.rows).toBe(768);
    const job = await call(apiB, 'POST', '/v1/jobs', { dataset, name: 'risk', target: 'diabetes', model: 'logistic' });
    expect(job.status).toBe(202);
    const events = await follow(apiA, job.json.id);
    const last = events.at(-1)!;
    expect(last).toMatchObject({ type: 'status', status: 'succeeded', model: { name: 'risk', version: 1 } });
    const [pa, pb] = await Promise.all([predict(apiA, 'risk'), predict(apiB, 'risk')]);
    expect(pa.status).toBe(200);
    expect(pb.json).toEqual(pa.json);
    expect(pa.json.model).toEqual({ name: 'risk', version: 1 });
  }, 120_000);

  it('a job cancelled through B stops on the worker that runs it', async () => {
    const job = await call(apiA, 'POST', '/v1/jobs', { dataset, name: 'cancelled', target: 'diabetes', model: 'gbdt', params: { gbdt: { trees: 2000, learning_rate: 0.01 } } });
    const id = job.json.id as string;
    await until(async () => workers.find((w) => w.out().includes(`job ${id}: started`)), 60_000, 'a worker to start the job');
    const events = follow(apiA, id, 30_000);
    const cancelled = await call(apiB, 'POST', `/v1/jobs/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect((await events).at(-1)).toMatchObject({ status: 'cancelled', error: { code: 'MEDFIT_ERR_CANCELLED' } });
    expect((await call(apiB, 'GET', `/v1/jobs/${id}`)).json.status).toBe('cancelled');
  }, 90_000);

  it('a worker killed with SIGKILL mid-job: the job completes on the other worker; nothing is left running or half-written', async () => {
    // Long enough to be caught running: gradient-boosted trees, many of them, 5-fold CV.
    const job = await call(apiA, 'POST', '/v1/jobs', { dataset, name: 'risk', target: 'diabetes', model: 'gbdt', params: { gbdt: { trees: 2000, learning_rate: 0.01 } } });
    expect(job.status).toBe(202);
    const id = job.json.id as string;
    const runner = await until(async () => workers.find((w) => w.out().includes(`job ${id}: started`)), 60_000, 'a worker to start the job');
    const other = workers.find((w) => w !== runner)!;
    runner.child.kill('SIGKILL');
    const events = await follow(apiB, id, 180_000);
    expect(events.at(-1)).toMatchObject({ status: 'succeeded', model: { name: 'risk', version: 2 } });
    expect(other.out()).toContain(`job ${id}: started`);
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const running = await c.query(`SELECT id FROM "${SCHEMA}".jobs WHERE status = 'running'`);
      expect(running.rows).toEqual([]);
    } finally {
      await c.end();
    }
    // The stored model directory is whole (its listing is there), and no temporary copy is left.
    const models = join(storage, 'models');
    const project = readdirSync(models)[0]!;
    const entries = readdirSync(join(models, project));
    expect(entries.filter((e) => e.includes('tmp'))).toEqual([]);
    expect(existsSync(join(models, project, id, '.medfit-dir.json'))).toBe(true);
    const p = await predict(apiA, 'risk');
    expect(p.json.model).toEqual({ name: 'risk', version: 2 });
    workers = [other];
  }, 240_000);

  it('a stage change through A changes what B predicts within 1 s', async () => {
    // B has version 2 (the newest) in its caches: predict once so it is loaded.
    expect((await predict(apiB, 'risk')).json.model.version).toBe(2);
    for (const version of [1, 2]) {
      const staged = await call(apiA, 'POST', `/v1/models/risk/versions/${version}/stage`, { stage: 'production' });
      expect(staged.status).toBe(200);
      const t0 = Date.now();
      await until(async () => (await predict(apiB, 'risk')).json.model?.version === version, 1000, `B to predict with version ${version}`);
      expect(Date.now() - t0).toBeLessThan(1000);
    }
  }, 60_000);

  it('an API replica killed under load: the surviving one keeps answering; no acknowledged upload or version is lost', async () => {
    const acknowledged: string[] = [];
    let acknowledgedByB = 0;
    const failuresOnA: number[] = [];
    let stop = false;
    const small = 'a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n';
    const loadA = (async () => {
      let i = 0;
      while (!stop) {
        const r = i++ % 2 ? await predict(apiA, 'risk') : await call(apiA, 'POST', `/v1/datasets?name=a${i}.csv`, small, 'text/csv');
        if (r.status !== 200 && r.status !== 201) failuresOnA.push(r.status);
        else if (r.status === 201) acknowledged.push(r.json.id);
      }
    })();
    const loadB = (async () => {
      let i = 0;
      while (!stop) {
        try {
          const r = await call(apiB, 'POST', `/v1/datasets?name=b${i++}.csv`, small, 'text/csv');
          if (r.status === 201) {
            acknowledged.push(r.json.id);
            acknowledgedByB++;
          }
        } catch {
          /* B is gone: what it never acknowledged may be lost */
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    })();
    await until(async () => acknowledgedByB >= 2, 20_000, 'B to acknowledge uploads');
    apiBProc.child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all([loadA, loadB]);
    expect(failuresOnA).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(acknowledgedByB);
    const listed = new Set(((await call(apiA, 'GET', '/v1/datasets')).json.datasets as Array<{ id: string }>).map((d) => d.id));
    for (const id of acknowledged) expect(listed.has(id)).toBe(true);
    // Each acknowledged dataset is readable through the survivor (its files are in storage).
    for (const id of acknowledged.slice(-3)) expect((await call(apiA, 'GET', `/v1/datasets/${id}`)).json.profile.rows).toBe(4);
    const versions = (await call(apiA, 'GET', '/v1/models/risk')).json;
    expect(JSON.stringify(versions)).toContain('"version":2');
  }, 60_000);
});
