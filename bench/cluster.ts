/**
 * The cluster's inference scaling, and what PostgreSQL-backed auth and audit cost a replica.
 *
 * One run, on the local PostgreSQL (a schema of this run's own) and Redis (a key prefix of its
 * own), with shared file storage in a temporary folder, starts the real processes from the
 * sources through tsx, as test/cluster.test.ts does (`--port 0`, each its own --data-dir):
 *   1 `medfit worker` and 2 `medfit serve --role api` replicas (A, B), and
 *   1 embedded `medfit serve` (role all: SQLite, the in-process queue, its own files),
 * uploads ../shared/datasets/pima_diabetes.csv (else test/fixtures' copy) to B and to the
 * embedded server, trains a logistic model "risk" (target `diabetes`) through each one's /v1/jobs
 * (the cluster's submitted through B, trained by the worker, its events followed through A),
 * and starts two round-robin TCP
 * proxies in this process (node:net; each accepted connection goes to the next upstream).
 * Then autocannon (pipelining 1, in a worker thread so it does not share the proxies' event loop;
 * a 2 s warm-up each, discarded) loads, one after another in every repeat (the order rotated from
 * one repeat to the next so the machine's drift spreads evenly):
 *   a          POST /v2/models/risk/infer on replica A directly (one FP32 row, JSON `data`, as
 *              bench/serve.ts sends; the input's name and width read from /v2/models/risk)
 *   b          the same through the proxy with A as its only upstream
 *   c          the same through the proxy over A and B
 *   e          the same on the embedded server directly (SQLite)
 *   a-v1, e-v1 GET /v1/models/risk on A and on the embedded server: a store query every request
 * Every response must be 2xx (autocannon's non2xx, errors and timeouts must be 0), else it exits 1.
 * Figures are medians over repeats; each ratio is taken within a repeat, then its median. CPU is
 * read from /proc for the servers and process.cpuUsage() for this process (proxy + load).
 *
 *   npx tsx bench/cluster.ts [--seconds 5] [--repeats 3] [--connections 32] [--json]
 *
 * PostgreSQL and Redis: MEDFIT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
 * and MEDFIT_TEST_REDIS_URL (default redis://127.0.0.1:6379), as the cluster test reads them.
 * Everything it made (processes, schema, Redis keys, temporary folders) is removed at the end,
 * also after a failure or Ctrl-C. --json: one JSON document on stdout; the table goes to stderr.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { autocannon } from './autocannon.js';
import { caller } from '../test/http.js';
import { PG_URL, REDIS_URL, answers, deleteRedisKeys, dropSchema } from '../test/local-services.js';


const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    repeats: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(args.seconds);
const repeats = Number(args.repeats);
const connections = Number(args.connections);
for (const [flag, v] of [['--seconds', seconds], ['--repeats', repeats], ['--connections', connections]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`bench/cluster: ${flag} must be a positive integer`);
    process.exit(2);
  }
}
const WARMUP_S = 2;
const say = args.json ? (s: string) => console.error(s) : (s: string) => console.log(s);

class BenchFailure extends Error {}
function fail(message: string): never {
  throw new BenchFailure(message);
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Where they are, for messages: never the user name or password of the URL.
const where = (url: string) => {
  const u = new URL(url);
  return `${u.host}${u.pathname.length > 1 ? u.pathname : ''}`;
};

const run = randomBytes(4).toString('hex');
const SCHEMA = `bench_cluster_${run}`;
const PREFIX = `medfit-bench-${run}`;
const ADMIN = `bench-cluster-admin-${run}-0123456789`;
const auth = { authorization: `Bearer ${ADMIN}` };
const temps: string[] = [];
const temp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
};


// ---- processes -------------------------------------------------------------------------------
interface Proc {
  name: string;
  child: ChildProcess;
  url: Promise<string>;
  /** The last few KB of what it wrote (for a failure's message). */
  tail: () => string;
  /** Log lines at level error or fatal (pino levels 50, 60): their messages. */
  errors: string[];
}
const procs: Proc[] = [];
let stopping = false;
/** Set once a cluster process was started: only then are there a schema and keys to remove. */
let clusterStarted = false;
/** Set by Ctrl-C (or SIGTERM): the run's own failures that follow are the interruption's. */
let interrupted = false;
/** Set when a process ends on its own during the run: the next load reports it. */
let unexpectedExit: string | undefined;

/**
 * Starts one medfit process from the sources through tsx. `cluster`: on this run's PostgreSQL
 * schema, Redis prefix and shared storage; otherwise embedded (SQLite, in-process queue). Every
 * other MEDFIT_* variable of this shell is left out so that nothing of it changes the setup.
 */
function start(name: string, argv: string[], cluster: boolean, storage?: string): Proc {
  if (cluster) clusterStarted = true;
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MEDFIT_')));
  Object.assign(env, {
    MEDFIT_ADMIN_KEY: ADMIN,
    MEDFIT_DEID_KEY: 'bench-cluster-deid-key-0123456789abcdef',
    MEDFIT_LOG_LEVEL: 'warn',
    ...(cluster
      ? { MEDFIT_DATABASE_URL: PG_URL, MEDFIT_DATABASE_SCHEMA: SCHEMA, MEDFIT_REDIS_URL: REDIS_URL, MEDFIT_REDIS_PREFIX: PREFIX, MEDFIT_STORAGE_URL: `file://${storage}` }
      : {}),
  });
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/bin.ts'), ...argv, '--port', '0', '--data-dir', temp(`medfit-bench-${name}-`)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let seen = '';
  let partial = '';
  const errors: string[] = [];
  let listening: (u: string) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const url = new Promise<string>((resolve, reject) => {
    listening = resolve;
    failed = reject;
  });
  void url.catch(() => undefined);
  child.stderr!.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-4000);
    if (seen.length < 4000) {
      seen += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(seen);
      if (m) listening(m[1]!);
    }
  });
  // stdout: the JSON log; read (a full pipe would stall the server), its errors kept.
  child.stdout!.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const lines = text.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      out = (out + line + '\n').slice(-4000);
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string };
        if ((rec.level ?? 0) >= 50 && errors.length < 20) errors.push(String(rec.msg ?? '').slice(0, 200));
      } catch {
        /* not a log line */
      }
    }
  });
  child.on('close', (code, signal) => {
    failed(new BenchFailure(`${name} ended (${signal ?? code}) before listening: ${out.slice(-800)}`));
    if (!stopping) unexpectedExit = `${name} ended (${signal ?? code}) during the run: ${out.slice(-800)}`;
  });
  const p: Proc = { name, child, url, tail: () => out, errors };
  procs.push(p);
  return p;
}

function stopProc(p: Proc): Promise<void> {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
    const kill = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    p.child.once('close', () => {
      clearTimeout(kill);
      resolve();
    });
    p.child.kill('SIGTERM');
  });
}

// Clock ticks a second for /proc/<pid>/stat (100 on every Linux this runs on; asked once).
let ticks = 100;
try {
  ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* keep 100 */
}
/** CPU seconds (user + system) a process has used so far; NaN where /proc cannot say. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / ticks;
  } catch {
    return NaN;
  }
}

// ---- HTTP ------------------------------------------------------------------------------------
const call = caller(ADMIN);
const brief = (j: unknown) => JSON.stringify(j).slice(0, 400);

/** Uploads the table, trains "risk" (logistic, target diabetes) and waits, following the job's events through `follow`. */
async function train(label: string, submit: string, follow: string, csv: Buffer): Promise<number> {
  const t0 = performance.now();
  const up = await call(submit, 'POST', '/v1/datasets?name=pima.csv', csv, 'text/csv');
  if (up.status !== 201) fail(`${label}: dataset upload: HTTP ${up.status} ${brief(up.json)}`);
  const job = await call(submit, 'POST', '/v1/jobs', JSON.stringify({ dataset: up.json.id, name: 'risk', target: 'diabetes', model: 'logistic' }));
  if (job.status !== 202) fail(`${label}: job submit: HTTP ${job.status} ${brief(job.json)}`);
  // The events stream ends with the job's terminal status.
  const res = await fetch(`${follow}/v1/jobs/${job.json.id}/events`, { headers: auth, signal: AbortSignal.timeout(300_000) });
  if (res.status !== 200) fail(`${label}: job events: HTTP ${res.status} ${(await res.text()).slice(0, 400)}`);
  await res.text();
  const done = await call(follow, 'GET', `/v1/jobs/${job.json.id}`);
  if (done.json?.status !== 'succeeded') fail(`${label}: job ${done.json?.status ?? `HTTP ${done.status}`}: ${brief(done.json?.error ?? done.json)}`);
  return (performance.now() - t0) / 1000;
}

// ---- the round-robin proxy -------------------------------------------------------------------
interface Proxy {
  url: string;
  /** Connections handed to each upstream so far. */
  counts: number[];
  close(): Promise<void>;
}
/** A TCP proxy: each accepted connection is piped to the next upstream in turn (no HTTP parsing). */
async function roundRobin(upstreams: string[]): Promise<Proxy> {
  const targets = upstreams.map((u) => new URL(u)).map((u) => ({ host: u.hostname, port: Number(u.port) }));
  const counts = targets.map(() => 0);
  const open = new Set<Socket>();
  let next = 0;
  const server = createNetServer((client) => {
    const i = next++ % targets.length;
    counts[i]!++;
    const upstream = connect(targets[i]!);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      open.add(s);
      s.on('close', () => open.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side failing or closing ends the pair: autocannon sees a reset, which it counts.
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
const proxies: Proxy[] = [];

// ---- cleanup ---------------------------------------------------------------------------------
let cleaning: Promise<string> | undefined;

/** Drops this run's schema (the cluster's processes created it); a note for the output. */
async function dropRunSchema(): Promise<string> {
  return dropSchema(SCHEMA).then(
    () => `schema ${SCHEMA} dropped`,
    (e: unknown) => `schema ${SCHEMA} NOT dropped (${(e as Error).message}): drop it by hand`,
  );
}

/** Deletes the Redis keys under this run's prefix (the queue's); a note for the output. */
async function deleteRunKeys(): Promise<string> {
  return deleteRedisKeys(PREFIX).then(
    (n) => `${n} Redis key(s) under ${PREFIX}: deleted`,
    (e: unknown) => `Redis keys under ${PREFIX}: NOT deleted (${(e as Error).message}): delete them by hand`,
  );
}

/** Ends every process, drops the schema, deletes the keys and folders; once, whatever happened. */
function cleanup(): Promise<string> {
  cleaning ??= (async () => {
    stopping = true;
    const notes: string[] = [];
    await Promise.all(proxies.map((p) => p.close()));
    // The processes first: they hold the schema's connections and write the queue's keys.
    await Promise.all(procs.map(stopProc));
    notes.push(`${procs.length} process(es) ended`);
    if (clusterStarted) notes.push(await dropRunSchema(), await deleteRunKeys());
    for (const d of temps) rmSync(d, { recursive: true, force: true });
    notes.push(`${temps.length} temporary folder(s) removed`);
    return notes.join(', ');
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`bench/cluster: ${signal}, cleaning up…`);
    void cleanup().then(
      (notes) => {
        console.error(`bench/cluster: ${notes}`);
        process.exit(130);
      },
      () => process.exit(130),
    );
  });
}

// ---- the run ---------------------------------------------------------------------------------
interface Case {
  key: string;
  name: string;
  url: string;
  method: 'POST' | 'GET';
  body?: string;
  /** The server processes the case loads (their CPU is summed). */
  servers: Proc[];
}
interface Sample {
  rps: number;
  p50: number;
  p99: number;
  serverCores: number;
  benchCores: number;
}

async function main(): Promise<void> {
  const [pgUp, redisUp] = await Promise.all([answers(PG_URL), answers(REDIS_URL)]);
  if (!pgUp) fail(`PostgreSQL does not answer at ${where(PG_URL)} (set MEDFIT_TEST_DATABASE_URL)`);
  if (!redisUp) fail(`Redis does not answer at ${where(REDIS_URL)} (set MEDFIT_TEST_REDIS_URL)`);
  const shared = join(ROOT, '..', 'shared', 'datasets', 'pima_diabetes.csv');
  const csvPath = existsSync(shared) ? shared : join(ROOT, 'test', 'fixtures', 'pima_diabetes.csv');
  const csv = readFileSync(csvPath);

  // 1. The cluster and the embedded server, started together (tsx compiles each on start).
  const t0 = performance.now();
  const storage = temp('medfit-bench-storage-');
  const worker = start('worker', ['worker'], true, storage);
  const apiA = start('api-a', ['serve', '--role', 'api'], true, storage);
  const apiB = start('api-b', ['serve', '--role', 'api'], true, storage);
  const embedded = start('embedded', ['serve'], false);
  const [a, b, e] = await Promise.all([apiA.url, apiB.url, embedded.url, worker.url]);
  say(`started 1 worker, 2 API replicas (PostgreSQL schema ${SCHEMA} at ${where(PG_URL)}, Redis prefix ${PREFIX}, shared storage) and 1 embedded server in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // The cluster's job is submitted through B and followed through A; the model is then A's and B's.
  const [tc, te] = await Promise.all([train('cluster', b, a, csv), train('embedded', e, e, csv)]);
  say(`trained "risk" (logistic on ${csvPath.startsWith(ROOT) ? 'test/fixtures' : '../shared/datasets'}/pima_diabetes.csv): cluster ${tc.toFixed(1)} s, embedded ${te.toFixed(1)} s`);

  // The V2 request: one FP32 row of the model's input width, as bench/serve.ts sends.
  const meta = await call(a, 'GET', '/v2/models/risk');
  if (meta.status !== 200) fail(`V2 model metadata: HTTP ${meta.status} ${brief(meta.json)}`);
  const input = meta.json.inputs?.[0] as { name: string; datatype: string; shape: number[] } | undefined;
  if (!input || meta.json.inputs.length !== 1 || input.shape.length !== 2 || input.datatype !== 'FP32') fail(`expected one FP32 [-1, n] input, the metadata says ${brief(meta.json.inputs)}`);
  const width = input.shape[1]!;
  const metaE = await call(e, 'GET', '/v2/models/risk');
  if (brief(metaE.json.inputs) !== brief(meta.json.inputs)) fail(`the embedded model's inputs ${brief(metaE.json.inputs)} differ from the cluster's ${brief(meta.json.inputs)}`);
  // The first complete record's features, in the file's column order (the target left out).
  const lines = csv.toString('utf8').split(/\r?\n/);
  const header = lines[0]!.split(',').map((h) => h.replace(/"/g, ''));
  const complete = lines.slice(1).find((l) => l.split(',').every((c) => c !== ''))!;
  const features = complete.split(',').filter((_, i) => header[i] !== 'diabetes').map(Number);
  // Where the model's input is wider than the raw table (an encoded feature space), the rest is 0.
  const row = Array.from({ length: width }, (_, i) => features[i] ?? 0);
  const v2Body = JSON.stringify({ inputs: [{ name: input.name, shape: [1, width], datatype: 'FP32', data: row }] });
  for (const [label, base] of [['A', a], ['B', b], ['embedded', e]] as const) {
    const probe = await call(base, 'POST', '/v2/models/risk/infer', v2Body);
    if (probe.status !== 200) fail(`V2 infer probe on ${label}: HTTP ${probe.status} ${brief(probe.json)}`);
    const v1 = await call(base, 'GET', '/v1/models/risk');
    if (v1.status !== 200) fail(`GET /v1/models/risk probe on ${label}: HTTP ${v1.status} ${brief(v1.json)}`);
  }

  // 2. The load balancer: one proxy over A alone, one over A and B.
  const one = await roundRobin([a]);
  const two = await roundRobin([a, b]);
  proxies.push(one, two);
  const infer = '/v2/models/risk/infer';
  const cases: Case[] = [
    { key: 'a', name: 'V2 1 replica direct', url: a + infer, method: 'POST', body: v2Body, servers: [apiA] },
    { key: 'b', name: 'V2 1 replica proxy', url: one.url + infer, method: 'POST', body: v2Body, servers: [apiA] },
    { key: 'c', name: 'V2 2 replicas proxy', url: two.url + infer, method: 'POST', body: v2Body, servers: [apiA, apiB] },
    { key: 'e', name: 'V2 embedded direct', url: e + infer, method: 'POST', body: v2Body, servers: [embedded] },
    { key: 'a-v1', name: 'v1 GET replica', url: `${a}/v1/models/risk`, method: 'GET', servers: [apiA] },
    { key: 'e-v1', name: 'v1 GET embedded', url: `${e}/v1/models/risk`, method: 'GET', servers: [embedded] },
  ];

  async function load(c: Case, duration: number): Promise<Sample> {
    const cpu0 = c.servers.map((p) => cpuSeconds(p.child.pid));
    const self0 = process.cpuUsage();
    const w0 = performance.now();
    const r = await autocannon({
      url: c.url,
      method: c.method,
      headers: c.body !== undefined ? { ...auth, 'content-type': 'application/json' } : auth,
      ...(c.body !== undefined ? { body: c.body } : {}),
      connections,
      pipelining: 1,
      duration,
      workers: 1,
    });
    const wall = (performance.now() - w0) / 1000;
    const self = process.cpuUsage(self0);
    if (unexpectedExit) fail(unexpectedExit);
    if (r.non2xx !== 0 || r.errors !== 0 || r.timeouts !== 0 || r['2xx'] === 0) fail(`${c.name}: ${r['2xx']} 2xx, ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
    const serverCpu = c.servers.reduce((s, p, i) => s + cpuSeconds(p.child.pid) - cpu0[i]!, 0);
    return { rps: r.requests.mean, p50: r.latency.p50, p99: r.latency.p99, serverCores: serverCpu / wall, benchCores: (self.user + self.system) / 1e6 / wall };
  }

  const samples = new Map<string, Sample[]>(cases.map((c) => [c.key, []]));
  for (const c of cases) await load(c, WARMUP_S);
  for (let r = 0; r < repeats; r++) {
    // Rotated each repeat: no case is always the first (or last) of a repeat.
    const order = cases.map((_, i) => cases[(i + r) % cases.length]!);
    for (const c of order) samples.get(c.key)!.push(await load(c, seconds));
    say(`  repeat ${r + 1}/${repeats}: done`);
  }

  // 3. Report.
  const median = (v: number[]) => {
    const s = [...v].sort((x, y) => x - y);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const of = (key: string) => samples.get(key)!;
  /** The median over repeats of num's requests/s over den's, each ratio within one repeat. */
  const ratio = (num: string, den: string) => median(of(num).map((s, i) => s.rps / of(den)[i]!.rps));
  const rows = cases.map((c) => {
    const s = of(c.key);
    return {
      case: c.key,
      target: c.name,
      requestsPerSecond: median(s.map((x) => x.rps)),
      latencyP50Ms: median(s.map((x) => x.p50)),
      latencyP99Ms: median(s.map((x) => x.p99)),
      serverCores: median(s.map((x) => x.serverCores)),
      benchCores: median(s.map((x) => x.benchCores)),
    };
  });
  const ratios = {
    twoReplicasOverOne: ratio('c', 'b'),
    proxyOverDirect: ratio('b', 'a'),
    postgresOverSqliteV2: ratio('a', 'e'),
    postgresOverSqliteV1: ratio('a-v1', 'e-v1'),
  };
  const cores = availableParallelism();
  const pad = (s: string, n: number) => s.padEnd(n);
  const lpad = (s: string, n: number) => s.padStart(n);
  say('');
  say(`${repeats} repeat(s) of ${seconds} s per case (medians), ${connections} connections, pipelining 1, load in 1 worker thread; servers from src/ through tsx`);
  say(`${pad('case', 6)}${pad('target', 22)}${lpad('req/s', 9)}${lpad('p50 ms', 9)}${lpad('p99 ms', 9)}${lpad('server CPU', 12)}${lpad('bench CPU', 11)}`);
  for (const r of rows) {
    say(
      `${pad(r.case, 6)}${pad(r.target, 22)}${lpad(r.requestsPerSecond.toFixed(0), 9)}${lpad(r.latencyP50Ms.toFixed(1), 9)}${lpad(r.latencyP99Ms.toFixed(1), 9)}${lpad(r.serverCores.toFixed(2), 12)}${lpad(r.benchCores.toFixed(2), 11)}`,
    );
  }
  say('(CPU in cores: the case\'s server processes together; this process = proxy + autocannon)');
  say(`proxy connections handed out, warm-ups included: over A alone ${one.counts.join('')}; over A and B ${two.counts.join(' to A, ')} to B`);
  say('');
  say(`c/b        2 replicas over 1, both behind the proxy         ${ratios.twoReplicasOverOne.toFixed(2)}×`);
  say(`b/a        1 replica behind the proxy over direct           ${ratios.proxyOverDirect.toFixed(2)}×`);
  say(`a/e        V2 infer: PostgreSQL+Redis replica over embedded ${ratios.postgresOverSqliteV2.toFixed(2)}×`);
  say(`a-v1/e-v1  GET /v1/models/risk: the same pair               ${ratios.postgresOverSqliteV1.toFixed(2)}×`);
  say('');
  say(
    `This machine has ${cores} core(s): the replicas, the worker, the proxy and the load generator all share them, so 2 replicas cannot double throughput here; the ratio c/b says how much of a second replica's capacity the machine leaves free, not how a cluster on separate hosts scales.`,
  );
  say(
    'V2 inference touches the store rarely: a key\'s lookup is cached for 2 s, the resolved model for 1 s, and audit entries are buffered (folded, written every 50 ms or 256 entries). So a/e for V2 mostly compares the two servers\' request paths; GET /v1/models/risk queries the store on every request (its versions), so its ratio carries the PostgreSQL round trip against SQLite in-process.',
  );
  const logged = procs.filter((p) => p.errors.length);
  for (const p of logged) say(`${p.name} logged ${p.errors.length} error(s), e.g. "${p.errors[0]}"`);
  if (args.json) console.log(JSON.stringify({ seconds, repeats, connections, pipelining: 1, warmupSeconds: WARMUP_S, cores, results: rows, ratios, proxyConnections: { one: one.counts, two: two.counts } }));
}

try {
  await main();
} catch (e) {
  process.exitCode = 1;
  if (!interrupted) console.error(`bench/cluster: ${e instanceof BenchFailure ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
} finally {
  say(`cleanup: ${await cleanup()}`);
}
process.exit(process.exitCode ?? 0);
