/**
 * A cluster's bad conditions, on servers built in this process (`initServer`, real HTTP ports) on
 * the local PostgreSQL and Redis: Redis lost and back during operation (through a TCP proxy that
 * is stopped and started), PostgreSQL or Redis unreachable at start, and a worker that shuts
 * down in the middle of a job. Skipped, with a message, where PostgreSQL or Redis does not answer.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { MedfitError } from '../src/core/index.js';
import { fixture, medfit, tempDir } from './helpers.js';
import { startS3rver } from './s3rver.js';
import { caller, until } from './http.js';
import { PG_URL, REDIS_URL, answers, deleteRedisKeys, dropSchema } from './local-services.js';
import { TcpProxy } from './tcp-proxy.js';



const [pgUp, redisUp] = await Promise.all([answers(PG_URL), answers(REDIS_URL)]);
if (!pgUp || !redisUp) console.warn('cluster-faults.test.ts: skipped, PostgreSQL or Redis does not answer; start them (or set MEDFIT_TEST_DATABASE_URL / MEDFIT_TEST_REDIS_URL) to run it');

const run = randomBytes(4).toString('hex');
const SCHEMA = `faults_${run}`;
const PREFIX = `medfit-faults-${run}`;
const ADMIN = `faults-admin-${run}-0123456789`;
const storage = tempDir('medfit-faults-storage-');
const redisTarget = new URL(REDIS_URL);
const proxy = new TcpProxy({ host: redisTarget.hostname, port: Number(redisTarget.port || 6379) });
const servers: Server[] = [];

function env(redisUrl: string): NodeJS.ProcessEnv {
  return {
    MEDFIT_DATABASE_URL: PG_URL,
    MEDFIT_DATABASE_SCHEMA: SCHEMA,
    MEDFIT_REDIS_URL: redisUrl,
    MEDFIT_REDIS_PREFIX: PREFIX,
    MEDFIT_STORAGE_URL: `file://${storage}`,
    MEDFIT_ADMIN_KEY: ADMIN,
    MEDFIT_JOB_STALL_SECONDS: '2',
    MEDFIT_LOG_LEVEL: 'silent',
  };
}

/** A server of `role` on `e`, listening on a free port; kept in `list` so its describe closes it. */
async function serve(role: 'all' | 'api' | 'worker', e: NodeJS.ProcessEnv, list: Server[] = servers, dataDir = tempDir('medfit-faults-data-')): Promise<{ server: Server; base: string }> {
  const server = await initServer(loadConfig(e, { dataDir, port: '0', role }));
  list.push(server);
  const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  return { server, base };
}

/** The Pima table uploaded through `base`, and a logistic job on it submitted; the job's answer. */
async function pimaJob(base: string) {
  const up = await call(base, 'POST', '/v1/datasets?name=pima.csv', readFileSync(fixture('pima_diabetes.csv'), 'utf8'), 'text/csv');
  return call(base, 'POST', '/v1/jobs', { dataset: up.json.id, name: 'risk', target: 'diabetes', model: 'logistic' });
}

const call = caller(ADMIN);

const jobDone = (base: string, id: string) =>
  until(async () => {
    const j = await call(base, 'GET', `/v1/jobs/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(j.json.status) && j.json;
  }, 120_000, `job ${id} to end`);

let main: { server: Server; base: string };
let dataset: string;

describe.skipIf(!pgUp || !redisUp)('a cluster process when PostgreSQL or Redis fails', () => {
  beforeAll(async () => {
    await proxy.start();
    main = await serve('all', env(proxy.url(REDIS_URL)));
    const up = await call(main.base, 'POST', '/v1/datasets?name=pima.csv', readFileSync(fixture('pima_diabetes.csv'), 'utf8'), 'text/csv');
    expect(up.status).toBe(201);
    dataset = up.json.id;
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) await s.close().catch(() => undefined);
    await proxy.stop();
    if (!pgUp || !redisUp) return;
    await dropSchema(SCHEMA);
    await deleteRedisKeys(PREFIX);
  }, 60_000);

  it('Redis lost: jobs are refused with 503 and Retry-After and recorded as failed, never left queued; /readyz says so; predictions go on; all recovers by itself', async () => {
    const first = await call(main.base, 'POST', '/v1/jobs', { dataset, name: 'risk', target: 'diabetes', model: 'logistic' });
    expect(first.status).toBe(202);
    expect((await jobDone(main.base, first.json.id)).status).toBe('succeeded');

    await proxy.stop();
    const refused = await call(main.base, 'POST', '/v1/jobs', { dataset, name: 'risk', target: 'diabetes', model: 'logistic' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.json.detail).toMatch(/job queue \(Redis\) is unreachable/);
    const jobs = (await call(main.base, 'GET', '/v1/jobs')).json.jobs as Array<{ status: string }>;
    expect(jobs.filter((j) => j.status === 'queued' || j.status === 'running')).toEqual([]);
    const ready = await call(main.base, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json.checks.database).toBe('ok');
    expect(ready.json.checks.redis).not.toBe('ok');
    // Serving needs neither the queue nor the bus.
    const p = await call(main.base, 'POST', '/v1/models/risk/predict', { records: [{ glucose: 150, mass: 33, age: 40 }] });
    expect(p.status).toBe(200);

    await proxy.start();
    await until(async () => (await call(main.base, 'GET', '/readyz')).status === 200, 15_000, 'readiness after Redis returns');
    const again = await call(main.base, 'POST', '/v1/jobs', { dataset, name: 'risk', target: 'diabetes', model: 'logistic' });
    expect(again.status).toBe(202);
    expect((await jobDone(main.base, again.json.id)).status).toBe('succeeded');
  }, 120_000);

  it('a worker that shuts down mid-job hands the job back to the queue, and another worker finishes it', async () => {
    const job = await call(main.base, 'POST', '/v1/jobs', { dataset, name: 'slow', target: 'diabetes', model: 'gbdt', params: { gbdt: { trees: 2000, learning_rate: 0.01 } } });
    expect(job.status).toBe(202);
    const id = job.json.id as string;
    await until(async () => (await call(main.base, 'GET', `/v1/jobs/${id}`)).json.status === 'running', 30_000, 'the job to run');
    // A second process takes over: the first closes (SIGTERM's path) while the job runs.
    await serve('worker', env(REDIS_URL));
    await main.server.close();
    servers.splice(servers.indexOf(main.server), 1);
    // Interrupted, not finished: queued again (or already taken by the other worker).
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    const row = (await c.query(`SELECT status, stage FROM "${SCHEMA}".jobs WHERE id = $1`, [id])).rows[0] as { status: string; stage: string };
    await c.end();
    expect(['queued', 'running']).toContain(row.status);
    const { Redis } = await import('ioredis');
    const r = new Redis(REDIS_URL);
    try {
      const api = await serve('all', env(REDIS_URL));
      const done = await jobDone(api.base, id);
      expect(done.status).toBe('succeeded');
      // Handed back, not stalled: no attempt was counted against it.
      expect(Number(await r.hget(`${PREFIX}:train:${id}`, 'stc') ?? 0)).toBe(0);
    } finally {
      r.disconnect();
    }
  }, 180_000);

  it('PostgreSQL or Redis unreachable at start: a clear error naming it without its password, and exit 1 from the CLI', async () => {
    const bad = (over: NodeJS.ProcessEnv) => initServer(loadConfig({ ...env(REDIS_URL), ...over }, { dataDir: tempDir(), port: '0' })).then(
      (s) => {
        servers.push(s);
        return undefined;
      },
      (e: unknown) => e,
    );
    const noPg = await bad({ MEDFIT_DATABASE_URL: 'postgres://medfit:pg-s3cret@127.0.0.1:1/test' });
    expect(noPg).toBeInstanceOf(MedfitError);
    expect((noPg as MedfitError).code).toBe('MEDFIT_ERR_UNAVAILABLE');
    expect((noPg as MedfitError).message).toContain('127.0.0.1:1');
    expect((noPg as MedfitError).message).not.toContain('pg-s3cret');
    const noRedis = await bad({ MEDFIT_REDIS_URL: 'redis://:redis-s3cret@127.0.0.1:1' });
    expect((noRedis as MedfitError).message).toMatch(/cannot reach Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1 /);
    expect((noRedis as MedfitError).message).not.toContain('redis-s3cret');
    const cli = await medfit(['serve', '--port', '0', '--data-dir', tempDir()], { env: { ...(env('redis://:redis-s3cret@127.0.0.1:1') as Record<string, string>), MEDFIT_LOG_LEVEL: 'warn' } });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/medfit: cannot reach Redis/);
    expect(cli.stderr).not.toContain('redis-s3cret');
  }, 60_000);

  it('a replica refuses a dataset profile that storage changed behind the metadata\'s back', async () => {
    // Whoever can write the shared storage rewrites a profile (and the store's own hash beside it).
    const profileKey = readdirSync(join(storage, 'datasets'), { recursive: true }).map(String).find((f) => f.split('/').pop() === `${dataset}.csv.profile.json`)!;
    const path = join(storage, 'datasets', profileKey);
    const forged = JSON.stringify({ forged: true, columns: [] });
    writeFileSync(path, forged);
    writeFileSync(join(path, '..', `.medfit-sha256.${profileKey.split('/').pop()}`), `${createHash('sha256').update(forged).digest('hex')}\n`);
    const { base } = await serve('api', env(REDIS_URL));
    const got = await call(base, 'GET', `/v1/datasets/${dataset}`);
    expect(got.status).toBe(500);
    expect(JSON.stringify(got.json)).not.toContain('forged');
  }, 60_000);

  it('a job no worker has taken yet is taken out of the queue when cancelled', async () => {
    // An API replica alone, on a schema and queue of its own: nothing takes its jobs.
    const alone = { ...env(REDIS_URL), MEDFIT_DATABASE_SCHEMA: `${SCHEMA}_alone`, MEDFIT_REDIS_PREFIX: `${PREFIX}-alone` };
    const { server, base } = await serve('api', alone);
    const job = await pimaJob(base);
    expect(job.status).toBe(202);
    const { Redis } = await import('ioredis');
    const r = new Redis(REDIS_URL);
    try {
      expect(await r.lrange(`${PREFIX}-alone:train:wait`, 0, -1)).toEqual([job.json.id]);
      expect((await call(base, 'POST', `/v1/jobs/${job.json.id}/cancel`)).status).toBe(200);
      expect((await call(base, 'GET', `/v1/jobs/${job.json.id}`)).json).toMatchObject({ status: 'cancelled', error: { code: 'MEDFIT_ERR_CANCELLED' } });
      expect(await r.lrange(`${PREFIX}-alone:train:wait`, 0, -1)).toEqual([]);
      expect((await call(base, 'POST', `/v1/jobs/${job.json.id}/cancel`)).status).toBe(409);
    } finally {
      r.disconnect();
      await server.close();
      servers.splice(servers.indexOf(server), 1);
      await dropSchema(`${SCHEMA}_alone`);
      await deleteRedisKeys(`${PREFIX}-alone`);
    }
  }, 60_000);
});

describe.skipIf(!pgUp || !redisUp)('a job whose workers keep dying', () => {
  const schema = `stall_${run}`;
  const prefix = `medfit-stall-${run}`;
  const mine: Server[] = [];
  afterAll(async () => {
    for (const s of mine) await s.close().catch(() => undefined);
    await dropSchema(schema);
    await deleteRedisKeys(prefix);
  }, 60_000);

  it('is taken back from a silent worker, and failed with the reason once it stalled more often than MEDFIT_JOB_MAX_STALLS', async () => {
    const stallEnv = { ...env(REDIS_URL), MEDFIT_DATABASE_SCHEMA: schema, MEDFIT_REDIS_PREFIX: prefix, MEDFIT_JOB_STALL_SECONDS: '1', MEDFIT_JOB_MAX_STALLS: '0' };
    const { base } = await serve('api', stallEnv, mine);
    const job = await pimaJob(base);
    expect(job.status).toBe(202);
    // A worker that takes the job and then goes silent (as a killed one does): its lock is never renewed.
    const { Worker } = await import('bullmq');
    const { Redis } = await import('ioredis');
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    let taken: () => void = () => undefined;
    const took = new Promise<void>((resolve) => (taken = resolve));
    const silent = new Worker('train', async () => {
      taken();
      await new Promise(() => undefined);
    }, { connection, prefix, lockDuration: 1000, skipLockRenewal: true, skipStalledCheck: true, autorun: true });
    await took;
    await silent.close(true);
    connection.disconnect();
    // A real worker finds it stalled, and with no stall allowed, fails it with the reason.
    await serve('worker', stallEnv, mine);
    const done = await jobDone(base, job.json.id);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'MEDFIT_ERR_INTERNAL' } });
    expect(done.error.message).toMatch(/stopped answering .* more often than MEDFIT_JOB_MAX_STALLS allows/);
  }, 60_000);
});

describe.skipIf(!pgUp || !redisUp)('a cluster on S3 storage (s3rver)', () => {
  const schema = `s3_${run}`;
  const prefix = `medfit-s3-${run}`;
  const saved: Record<string, string | undefined> = {};
  let s3: ChildProcess | undefined;
  let endpoint = '';
  const s3Servers: Server[] = [];
  const s3Env = (): NodeJS.ProcessEnv => ({
    ...env(REDIS_URL),
    MEDFIT_DATABASE_SCHEMA: schema,
    MEDFIT_REDIS_PREFIX: prefix,
    MEDFIT_STORAGE_URL: `s3://medfit-e2e/run-${run}`,
    MEDFIT_S3_ENDPOINT: endpoint,
  });
  const start = (role: 'all' | 'api', dataDir: string) => serve(role, s3Env(), s3Servers, dataDir);

  beforeAll(async () => {
    // The SDK takes credentials from its usual chain, as in production.
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) saved[k] = process.env[k];
    process.env['AWS_ACCESS_KEY_ID'] = 'S3RVER';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'S3RVER';
    delete process.env['AWS_SESSION_TOKEN'];
    delete process.env['AWS_PROFILE'];
    const dir = tempDir('medfit-s3rver-');
    mkdirSync(join(dir, 'medfit-e2e'));
    const started = await startS3rver(dir, true).catch(() => startS3rver(dir, false));
    s3 = started.child;
    endpoint = `http://127.0.0.1:${started.port}`;
  }, 30_000);

  afterAll(async () => {
    for (const s of s3Servers) await s.close().catch(() => undefined);
    s3?.kill();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await dropSchema(schema);
    await deleteRedisKeys(prefix);
  }, 60_000);

  it('datasets and models go through the bucket: a replica with an empty data directory reads, trains on and predicts with them, fetching each once', async () => {
    const a = await start('all', tempDir('medfit-s3-a-'));
    const up = await call(a.base, 'POST', '/v1/datasets?name=pima.csv', readFileSync(fixture('pima_diabetes.csv'), 'utf8'), 'text/csv');
    expect(up.status).toBe(201);
    const job = await call(a.base, 'POST', '/v1/jobs', { dataset: up.json.id, name: 'risk', target: 'diabetes', model: 'logistic' });
    expect((await jobDone(a.base, job.json.id)).status).toBe('succeeded');
    const bDir = tempDir('medfit-s3-b-');
    const b = await start('api', bDir);
    expect((await call(b.base, 'GET', '/readyz')).json.checks.storage).toBe('ok');
    expect((await call(b.base, 'GET', `/v1/datasets/${up.json.id}`)).json.profile.rows).toBe(768);
    const [pa, pb] = await Promise.all([a.base, b.base].map((base) => call(base, 'POST', '/v1/models/risk/predict', { records: [{ glucose: 150, mass: 33, age: 40 }] })));
    expect(pb!.status).toBe(200);
    expect(pb!.json).toEqual(pa!.json);
    // B keeps what it fetched: the model directory is on its disk now, checked file by file.
    const cached = readdirSync(join(bDir, 'models'), { recursive: true }).map(String);
    expect(cached.some((f) => f.endsWith('model.onnx'))).toBe(true);
  }, 120_000);
});
