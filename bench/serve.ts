/**
 * Serving throughput and latency: how close medfit's prediction routes come to the ceiling of a
 * bare `node:http` server answering a fixed body of the same size, in the same process.
 *
 * One run: starts the real server (fresh data dir under os.tmpdir(), log level warn), uploads
 * test/fixtures/breast_cancer_wdbc.csv, trains an MLP model "bc" (cv 2) through /v1/jobs, starts
 * the bare server, then loads with autocannon (pipelining 1; a 2 s warm-up run each, discarded):
 *   bare       POST to the bare server, body the size of the V2 JSON request (the ceiling)
 *   v2-json    POST /v2/models/bc/infer, one FP32 [1,30] row as JSON `data`
 *   v2-binary  POST /v2/models/bc/infer, binary tensor data extension (JSON header + 120 raw
 *              bytes, Inference-Header-Content-Length), JSON output
 *   v1-predict POST /v1/models/bc/predict, one raw record with the 30 named columns
 * Every response must be 200 (autocannon's non2xx and errors must be 0), else it exits 1.
 *
 *   npx tsx bench/serve.ts [--duration 10] [--rounds 3] [--connections 32] [--workers 1] [--only v2] [--json]
 *
 * --workers: autocannon's load generator runs in that many worker threads (default 1), so that
 * on a small machine it does not share the event loop with the server it measures; 0 runs it
 * in the main thread. In workers mode options are structured-cloned into the worker, where a
 * Buffer body arrives as a Uint8Array that autocannon refuses; so the binary body is set by a
 * small generated CommonJS `setupClient` module (autocannon needs a file path for functions).
 * Both sides still share the machine's cores: the numbers are relative to the bare ceiling.
 * --rounds: targets are loaded in turn, round after round; figures are medians over rounds and
 * each ratio is against the ceiling of its own round. --only: a comma list of target-name parts
 * (the ceiling always runs).
 * --json: one JSON document on stdout; the human table then goes to stderr.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { quantileOf } from '../src/data/index.js';
import { existsSync } from 'node:fs';
import { autocannon, type AutocannonResult } from './autocannon.js';

// The server under test is the compiled one (dist/, built by `npm ci`), as `npm start` runs it:
// tsx's transpiled sources carry per-closure helpers that cost measurable time per request.
// Without a build it falls back to the sources and says so.
const dist = new URL('../dist/api/index.js', import.meta.url);
const fromDist = existsSync(dist);
const { initServer, loadConfig } = (await import(fromDist ? dist.href : '../src/api/index.js')) as typeof import('../src/api/index.js');


const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    workers: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const duration = Number(args.duration);
const connections = Number(args.connections);
const workers = Number(args.workers);
const rounds = Number(args.rounds);
const WARMUP_S = 2;
const say = args.json ? (s: string) => console.error(s) : (s: string) => console.log(s);

function fail(message: string): never {
  console.error(`bench/serve: ${message}`);
  process.exit(1);
}

// ---- 1. the real server ----------------------------------------------------------------------
const dataDir = mkdtempSync(join(tmpdir(), 'medfit-bench-serve-'));
const key = 'bench-admin-key-0123456789abcdef'; // 32 characters
const server = await initServer(loadConfig({ ...process.env, MEDFIT_ADMIN_KEY: key, MEDFIT_LOG_LEVEL: 'warn', MEDFIT_DATA_DIR: dataDir }));
await server.app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
const auth = { authorization: `Bearer ${key}` };

async function call(method: string, path: string, body?: string, type = 'application/json'): Promise<{ status: number; json: any }> {
  const res = await fetch(base + path, { method, headers: { ...auth, ...(body !== undefined ? { 'content-type': type } : {}) }, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

// ---- 2. dataset, training job ----------------------------------------------------------------
const csvPath = new URL('../test/fixtures/breast_cancer_wdbc.csv', import.meta.url).pathname;
const csv = readFileSync(csvPath, 'utf8');
const t0 = performance.now();
const ds = await call('POST', '/v1/datasets?name=bc', csv, 'text/csv');
if (ds.status !== 201) fail(`dataset upload: HTTP ${ds.status} ${JSON.stringify(ds.json)}`);
const job = await call('POST', '/v1/jobs', JSON.stringify({ dataset: ds.json.id, target: 'diagnosis', name: 'bc', model: 'mlp', cv: 2 }));
if (job.status !== 202) fail(`job submit: HTTP ${job.status} ${JSON.stringify(job.json)}`);
for (;;) {
  const j = await call('GET', `/v1/jobs/${job.json.id}`);
  if (j.status !== 200) fail(`job poll: HTTP ${j.status} ${JSON.stringify(j.json)}`);
  if (j.json.status === 'succeeded') break;
  if (j.json.status === 'failed' || j.json.status === 'cancelled') fail(`job ${j.json.status}: ${JSON.stringify(j.json.error ?? j.json)}`);
  if (performance.now() - t0 > 600_000) fail(`job still ${j.json.status} after 10 minutes`);
  await new Promise((r) => setTimeout(r, 250));
}
say(`trained model "bc" (mlp, cv 2) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// ---- request bodies --------------------------------------------------------------------------
const [headerLine, firstRow] = csv.split(/\r?\n/, 2) as [string, string];
const names = headerLine.split(',');
const cells = firstRow.split(',');
const featureNames = names.filter((n) => n !== 'diagnosis');
const row = featureNames.map((n) => Number(cells[names.indexOf(n)]));
if (row.length !== 30 || !row.every(Number.isFinite)) fail('could not read 30 finite features from the first fixture row');

const meta = await call('GET', '/v2/models/bc');
if (meta.status !== 200) fail(`V2 model metadata: HTTP ${meta.status} ${JSON.stringify(meta.json)}`);
const inputName: string = meta.json.inputs[0].name;

const v2JsonBody = JSON.stringify({ inputs: [{ name: inputName, shape: [1, 30], datatype: 'FP32', data: row }] });
const binHeader = JSON.stringify({ inputs: [{ name: inputName, shape: [1, 30], datatype: 'FP32', parameters: { binary_data_size: 120 } }], parameters: { binary_data_output: false } });
const v2BinaryBody = Buffer.concat([Buffer.from(binHeader), Buffer.from(new Float32Array(row).buffer)]);
const v1Body = JSON.stringify({ records: [Object.fromEntries(featureNames.map((n, i) => [n, row[i]]))] });

// Each route answers 200 with what we expect once, before any load.
const probe = await call('POST', '/v2/models/bc/infer', v2JsonBody);
if (probe.status !== 200) fail(`V2 JSON infer probe: HTTP ${probe.status} ${JSON.stringify(probe.json)}`);
const probeBin = await fetch(`${base}/v2/models/bc/infer`, {
  method: 'POST',
  headers: { ...auth, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(Buffer.byteLength(binHeader)) },
  body: v2BinaryBody,
});
const probeBinText = await probeBin.text();
if (probeBin.status !== 200) fail(`V2 binary infer probe: HTTP ${probeBin.status} ${probeBinText}`);
if (probeBin.headers.get('inference-header-content-length') !== null) fail(`V2 binary infer probe: asked for JSON output, got binary (${probeBinText.slice(0, 200)})`);
const probeV1 = await call('POST', '/v1/models/bc/predict', v1Body);
if (probeV1.status !== 200) fail(`v1 predict probe: HTTP ${probeV1.status} ${JSON.stringify(probeV1.json)}`);

// ---- 3. the bare ceiling ---------------------------------------------------------------------
// Same size as the V2 JSON response the server just sent, so the wire cost matches.
const fixed = Buffer.from(JSON.stringify(probe.json));
const bare: HttpServer = createServer((req, res) => {
  req.resume(); // read the body, as the real server does
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': fixed.length });
    res.end(fixed);
  });
});
bare.listen(0, '127.0.0.1');
await once(bare, 'listening');
const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/`;

// The binary body, for workers mode (see the header comment).
const setupBinary = join(dataDir, 'setup-binary.cjs');
writeFileSync(setupBinary, `const body = Buffer.from(${JSON.stringify(v2BinaryBody.toString('base64'))}, 'base64');\nmodule.exports = (client) => client.setBody(body);\n`);

// ---- 4. load ---------------------------------------------------------------------------------
interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  body: string | Buffer;
}
const json = { ...auth, 'content-type': 'application/json' };
const targets: Target[] = [
  { name: 'bare node:http', url: bareUrl, headers: { 'content-type': 'application/json' }, body: v2JsonBody },
  { name: 'V2 JSON infer', url: `${base}/v2/models/bc/infer`, headers: json, body: v2JsonBody },
  {
    name: 'V2 binary infer',
    url: `${base}/v2/models/bc/infer`,
    headers: { ...auth, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(Buffer.byteLength(binHeader)) },
    body: v2BinaryBody,
  },
  { name: 'v1 predict', url: `${base}/v1/models/bc/predict`, headers: json, body: v1Body },
];

async function load(t: Target, seconds: number): Promise<AutocannonResult> {
  const body = typeof t.body === 'string' ? { body: t.body } : workers > 0 ? { setupClient: setupBinary } : { body: t.body as unknown as string };
  const r = await autocannon({ url: t.url, method: 'POST', headers: t.headers, ...body, connections, pipelining: 1, duration: seconds, ...(workers > 0 ? { workers } : {}) });
  if (r.non2xx !== 0 || r.errors !== 0 || r.timeouts !== 0 || r['2xx'] === 0) {
    fail(`${t.name}: ${r['2xx']} 2xx, ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  }
  return r;
}

interface Row {
  target: string;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMeanMs: number;
  requests: number;
  ofCeiling: number;
  serverLoopBusy: number;
}
// The machine is shared and noisy: every round loads every target once, in turn, and each
// figure is the median over rounds; the ratio is taken against the ceiling of the same round.
const chosen = args.only ? targets.filter((t, i) => i === 0 || args.only!.split(',').some((o) => t.name.toLowerCase().includes(o.toLowerCase()))) : targets;
const perRound: AutocannonResult[][] = chosen.map(() => []);
// How busy the server's event loop (this main thread) was during each load: near 100% means the
// server is the bottleneck; well below means the load generator or the cores are.
const busy: number[][] = chosen.map(() => []);
for (const t of chosen) await load(t, WARMUP_S);
for (let round = 0; round < rounds; round++) {
  for (const [i, t] of chosen.entries()) {
    const elu = performance.eventLoopUtilization();
    perRound[i]!.push(await load(t, duration));
    busy[i]!.push(performance.eventLoopUtilization(elu).utilization);
  }
  say(`  round ${round + 1}/${rounds}: done`);
}
const median = (v: number[]) => quantileOf(Float64Array.from(v), 0.5);
const rows: Row[] = chosen.map((t, i) => {
  const rs = perRound[i]!;
  return {
    target: t.name,
    requestsPerSecond: median(rs.map((r) => r.requests.mean)),
    latencyP50Ms: median(rs.map((r) => r.latency.p50)),
    latencyP99Ms: median(rs.map((r) => r.latency.p99)),
    latencyMeanMs: median(rs.map((r) => r.latency.mean)),
    requests: rs.reduce((a, r) => a + r.requests.total, 0),
    ofCeiling: median(rs.map((r, k) => r.requests.mean / perRound[0]![k]!.requests.mean)),
    serverLoopBusy: median(busy[i]!),
  };
});

// How well micro-batching merged concurrent requests into ONNX Runtime runs, over the whole run.
const project = (await server.services.store.getProjectByName('default'))!;
const served = await server.services.models.load(await server.services.models.resolve(project.id, 'bc'));
const ort = served.stats();

// ---- 5. report -------------------------------------------------------------------------------
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);
say('');
say(`${rounds} round(s) of ${duration} s per target (medians), ${connections} connections, pipelining 1, load in ${workers > 0 ? `${workers} worker thread(s)` : 'the main thread'}, server from ${fromDist ? 'dist/' : 'src/ through tsx (run npm run build for the real figures)'}`);
say(`${pad('target', 18)}${lpad('req/s', 10)}${lpad('p50 ms', 9)}${lpad('p99 ms', 9)}${lpad('of ceiling', 12)}${lpad('loop busy', 11)}`);
for (const r of rows) {
  say(
    `${pad(r.target, 18)}${lpad(r.requestsPerSecond.toFixed(0), 10)}${lpad(r.latencyP50Ms.toFixed(1), 9)}${lpad(r.latencyP99Ms.toFixed(1), 9)}${lpad(`${(r.ofCeiling * 100).toFixed(1)}%`, 12)}${lpad(`${(r.serverLoopBusy * 100).toFixed(0)}%`, 11)}`,
  );
}
say(`ONNX Runtime: ${ort.requests} requests in ${ort.runs} runs (${(ort.requests / Math.max(1, ort.runs)).toFixed(2)} requests a run, at most ${ort.maxBatchRequests})`);
const v2 = rows.find((r) => r.target === 'V2 JSON infer');
if (v2) say(`V2 JSON infer: ${(v2.ofCeiling * 100).toFixed(1)}% of ceiling, p99 ${v2.latencyP99Ms.toFixed(1)} ms (target: ≥ 60%, p99 < 5 ms)`);
if (args.json) {
  const target = v2 ? { ofCeiling: 0.6, p99Ms: 5, met: v2.ofCeiling >= 0.6 && v2.latencyP99Ms < 5 } : null;
  console.log(JSON.stringify({ duration, rounds, connections, pipelining: 1, workers, warmupSeconds: WARMUP_S, results: rows, target }));
}

bare.close();
await server.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
