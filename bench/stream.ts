/**
 * Live-prediction latency: one device's 50 Hz samples sent as they would be recorded (in real
 * time, or `--speed` times faster with the same timestamps) to a medfit server in its own
 * process, over `POST /v1/models/{name}/stream` (chunked NDJSON, one write per sample) and, when
 * a broker answers, over MQTT (one message per sample to medfit/<project>/<device>/samples).
 *
 * Latency of a window = when its prediction line arrives − when the sample that completed it was
 * written. Which sample that is, the windower says (replayed here on the same samples): a
 * window's last step is final once a sample past it has arrived (`serve/stream.ts`), so for
 * samples on the 50 Hz grid it is the first sample after the window (a sample up to 1e-9 s after
 * the step would still change the step's value in the batch path), now and then, where epoch
 * milliseconds round a sample just past the grid, the sample at the last step itself.
 * `fromInside` measures the same arrivals from the sample before the completing one (about one
 * sample period, 20 ms, more). The bar: median, p95 and max ≤ 50 ms.
 *
 * One run: a fresh data dir under os.tmpdir(); the server child (this file with `--child`: the
 * same `initServer` as `medfit serve`, the stream routes and, with `--mqtt`, the MQTT bridge,
 * from the sources through tsx); the synthetic fitness data (`medfit synth fitness`: 6 subjects,
 * 10 s bouts, 50 Hz) uploaded, a window-gbdt model (2 s windows, 1 s stride) trained by a job;
 * then subject s07 (not trained on), session a, streamed for `--seconds`.
 *
 *   npx tsx bench/stream.ts [--seconds 30] [--speed 1] [--mqtt mqtt://127.0.0.1:1883] [--no-mqtt] [--json]
 *
 * --json: one JSON document on stdout, the text on stderr. Exits 1 when a figure is over the bar.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect as tcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BAR_MS = 50;
const RATE = 50;
const CHANNELS = ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'];
const ADMIN = 'bench-admin-key-stream-0123456789';

const { values: args } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    'data-dir': { type: 'string' },
    seconds: { type: 'string', default: '30' },
    speed: { type: 'string', default: '1' },
    mqtt: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
    'no-mqtt': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

if (args.child) {
  // The server under test, in its own process: what `medfit serve [--mqtt]` runs.
  const { initServer, loadConfig } = await import('../src/api/index.js');
  const { streamRoutes, startServerMqtt } = await import('../src/api/stream.js');
  const server = await initServer(loadConfig({ ...process.env, MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'warn' }, { dataDir: args['data-dir']!, port: '0' }));
  if (!server.app.hasRoute({ method: 'POST', url: '/v1/models/:name/stream' })) await streamRoutes(server.app, server.services);
  const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
  let bridge: { close(): Promise<void> } | undefined;
  if (args.mqtt && !args['no-mqtt']) bridge = await startServerMqtt(server, { url: args.mqtt }).catch(() => undefined);
  process.stdout.write(JSON.stringify({ url, mqtt: bridge !== undefined }) + '\n');
  process.once('SIGTERM', () => {
    void (async () => {
      await bridge?.close();
      await server.close();
      process.exit(0);
    })();
  });
} else {
  await bench();
}

interface Figures {
  windows: number;
  /** Each window's latency, in order (ms, 0.1 ms). */
  latenciesMs: number[];
  medianMs: number;
  p95Ms: number;
  maxMs: number;
  fromInside: { medianMs: number; p95Ms: number; maxMs: number };
  pass: boolean;
}

async function bench(): Promise<void> {
  const say = args.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
  const seconds = Number(args.seconds);
  const speed = Number(args.speed);
  if (!(seconds >= 5 && seconds <= 600) || !(speed >= 1 && speed <= 100)) throw new Error('--seconds must be 5..600 and --speed 1..100');
  const dataDir = mkdtempSync(join(tmpdir(), 'medfit-bench-stream-'));
  const { synthFitnessCsv } = await import('../src/sequence/synth.js');
  const { quantileOf } = await import('../src/data/index.js');

  const wantMqtt = !args['no-mqtt'] && (await reachable(args.mqtt));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--data-dir', dataDir, ...(wantMqtt ? ['--mqtt', args.mqtt] : ['--no-mqtt'])], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const ready = await new Promise<{ url: string; mqtt: boolean }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as { url: string; mqtt: boolean });
      });
      child.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
    });
    const base = ready.url;
    const call = async (path: string, body?: string, type = 'application/json') => {
      const res = await fetch(`${base}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': type }) }, ...(body === undefined ? {} : { body }) });
      return { status: res.status, json: (await res.json()) as any };
    };

    // Training data: subjects s01..s06; streamed: s07 (a subject the model has not seen).
    const csv = Buffer.concat([...synthFitnessCsv({ subjects: 7, seconds: 10, rate: RATE, seed: 1 })]).toString('latin1');
    const lines = csv.trim().split('\n');
    const header = lines[0]!.split(',');
    const train = [lines[0], ...lines.slice(1).filter((l) => !l.startsWith('s07'))].join('\n');
    const stream = lines
      .slice(1)
      .filter((l) => l.startsWith('s07,s07-a,'))
      .map((l) => Object.fromEntries(l.split(',').map((v, j) => [header[j]!, v])));
    const t0 = performance.now();
    const ds = await call('/v1/datasets?name=fitness', train, 'text/csv');
    if (ds.status !== 201) throw new Error(`dataset upload: HTTP ${ds.status} ${JSON.stringify(ds.json)}`);
    const job = await call('/v1/jobs', JSON.stringify({ dataset: ds.json.id, target: 'activity', name: 'activity', model: 'window-gbdt', cv: 2, params: { 'window-gbdt': { trees: 50 } }, sequence: { channels: CHANNELS, window: '2s', stride: '1s' } }));
    if (job.status !== 202) throw new Error(`job submit: HTTP ${job.status} ${JSON.stringify(job.json)}`);
    for (;;) {
      const j = await call(`/v1/jobs/${job.json.id}`);
      if (j.json.status === 'succeeded') break;
      if (j.json.status === 'failed' || j.json.status === 'cancelled') throw new Error(`job ${j.json.status}: ${JSON.stringify(j.json.error)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    say(`model trained in ${((performance.now() - t0) / 1000).toFixed(1)} s (window-gbdt, 2 s windows at ${RATE} Hz, 1 s stride)`);

    // Samples at 50 Hz for `seconds`, with their recorded times (epoch ms).
    const n = Math.min(stream.length, seconds * RATE);
    const samples = stream.slice(0, n).map((r) => ({ t: Number(r['t']), ...Object.fromEntries(CHANNELS.map((c) => [c, Number(r[c])])) }));
    const sampleTimes = samples.map((s) => s.t);

    // Which sample completes each window: the windower itself, replayed on the same samples.
    const v = (await call('/v1/models/activity/versions/1')).json.sequence;
    const { StreamWindows } = await import('../src/serve/stream.js');
    const { SEQUENCE_PREP_VERSION } = await import('../src/sequence/index.js');
    const replay = new StreamWindows({ version: SEQUENCE_PREP_VERSION, columns: v.columns, timeUnit: v.timeUnit, channels: v.channels, targets: [], mean: v.normalisation.mean, std: v.normalisation.std, rate: v.rate, window: v.window, stride: v.stride, maxGap: v.maxGap, ...(v.filter ? { filter: v.filter } : {}) });
    const completedBy: number[] = [];
    samples.forEach((s, i) => {
      replay.push(s);
      for (const e of replay.take()) if ('window' in e) completedBy[e.window.index] = i;
    });
    const http = await measure(samples, sampleTimes, completedBy, speed, (send, onLine) => httpTransport(base, send, onLine));
    const results: Record<string, Figures | string> = { http: figures(http, quantileOf) };
    if (ready.mqtt) {
      const mqttRun = await measure(samples, sampleTimes, completedBy, speed, (send, onLine) => mqttTransport(args.mqtt, send, onLine));
      results['mqtt'] = figures(mqttRun, quantileOf);
    } else results['mqtt'] = args['no-mqtt'] ? 'skipped (--no-mqtt)' : wantMqtt ? 'the server could not start its MQTT bridge' : `skipped: no broker answers at ${args.mqtt}`;

    const doc = { seconds: n / RATE, rate: RATE, speed, barMs: BAR_MS, model: 'window-gbdt (2 s windows, 1 s stride, 7 channels)', ...results };
    for (const [name, f] of Object.entries(results)) {
      if (typeof f === 'string') say(`${name}: ${f}`);
      else say(`${name}: ${f.windows} windows; latency median ${f.medianMs.toFixed(1)} ms, p95 ${f.p95Ms.toFixed(1)} ms, max ${f.maxMs.toFixed(1)} ms (from the last sample inside the window: median ${f.fromInside.medianMs.toFixed(1)}, p95 ${f.fromInside.p95Ms.toFixed(1)}, max ${f.fromInside.maxMs.toFixed(1)}) — ${f.pass ? 'within' : 'OVER'} the ${BAR_MS} ms bar`);
    }
    if (args.json) console.log(JSON.stringify(doc, null, 2));
    process.exitCode = Object.values(results).every((f) => typeof f === 'string' || f.pass) ? 0 : 1;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Per window: when its line arrived, and when its completing and last inner samples were written. */
interface Run {
  latency: number[];
  fromInside: number[];
}

type Transport = (send: (write: (sample: object) => void, finish: () => Promise<void>) => Promise<void>, onLine: (line: Record<string, unknown>) => void) => Promise<void>;

/**
 * Sends the samples on their schedule and pairs each prediction line with the sample that
 * completed its window (`completedBy`, from replaying the windower) and with the sample before it.
 */
async function measure(samples: object[], times: number[], completedBy: number[], speed: number, transport: Transport): Promise<Run> {
  const written = new Float64Array(samples.length).fill(NaN);
  const run: Run = { latency: [], fromInside: [] };
  const arrivals: Array<{ at: number; window: number }> = [];
  await transport(
    async (write, finish) => {
      const start = performance.now() + 50;
      for (let i = 0; i < samples.length; i++) {
        const due = start + (times[i]! - times[0]!) / speed;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait - 1));
        while (performance.now() < due) {
          /* the last millisecond, spun for a precise schedule */
        }
        written[i] = performance.now();
        write(samples[i]!);
      }
      await finish();
    },
    (line) => {
      if (typeof line['window'] === 'number') arrivals.push({ at: performance.now(), window: line['window'] });
    },
  );
  for (const a of arrivals) {
    const k = completedBy[a.window];
    if (k === undefined) continue; // completed by the end of the stream, not by a sample
    run.latency.push(a.at - written[k]!);
    run.fromInside.push(a.at - written[Math.max(0, k - 1)]!);
  }
  return run;
}

function figures(run: Run, quantileOf: (v: Float64Array, q: number) => number): Figures {
  const q = (v: number[], p: number) => quantileOf(Float64Array.from(v), p);
  const max = (v: number[]) => v.reduce((m, x) => Math.max(m, x), -Infinity);
  const f = {
    windows: run.latency.length,
    latenciesMs: run.latency.map((v) => Math.round(v * 10) / 10),
    medianMs: q(run.latency, 0.5),
    p95Ms: q(run.latency, 0.95),
    maxMs: max(run.latency),
    fromInside: { medianMs: q(run.fromInside, 0.5), p95Ms: q(run.fromInside, 0.95), maxMs: max(run.fromInside) },
  };
  return { ...f, pass: f.windows > 0 && f.medianMs <= BAR_MS && f.p95Ms <= BAR_MS && f.maxMs <= BAR_MS };
}

/** One chunked HTTP request: one write per sample; lines read as they arrive. */
function httpTransport(base: string, send: Parameters<Transport>[0], onLine: Parameters<Transport>[1]): Promise<void> {
  const u = new URL(base);
  return new Promise<void>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: 'POST', path: '/v1/models/activity/stream', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
    req.setNoDelay(true);
    req.flushHeaders();
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`stream: HTTP ${res.statusCode}`));
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
          buf = buf.slice(nl + 1);
          if ('error' in line) reject(new Error(`stream error line: ${String(line['error'])}`));
          onLine(line);
        }
      });
      res.on('end', resolve);
    });
    send(
      (s) => req.write(JSON.stringify(s) + '\n'),
      async () => void req.end(),
    ).catch(reject);
  });
}

/** One MQTT v5 message per sample, the key as a user property; predictions from the device's topic. */
async function mqttTransport(url: string, send: Parameters<Transport>[0], onLine: Parameters<Transport>[1]): Promise<void> {
  const { default: mqtt } = await import('mqtt');
  const c = await mqtt.connectAsync(url, { protocolVersion: 5 });
  (c.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  const device = `bench-${process.pid}`;
  try {
    let last = performance.now();
    c.on('message', (topic, payload) => {
      const line = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      if (topic.endsWith('/errors')) throw new Error(`mqtt error: ${String(line['error'])}`);
      last = performance.now();
      onLine(line);
    });
    await c.subscribeAsync([`medfit/default/${device}/predictions`, `medfit/default/${device}/errors`], { qos: 0 });
    await send(
      (s) => c.publish(`medfit/default/${device}/samples`, JSON.stringify(s), { qos: 0, properties: { userProperties: { key: ADMIN } } }),
      async () => {
        // The last windows arrive within moments; wait until the topic has been quiet for 500 ms.
        while (performance.now() - last < 500) await new Promise((r) => setTimeout(r, 100));
      },
    );
  } finally {
    await c.endAsync();
  }
}

function reachable(url: string): Promise<boolean> {
  let host = '127.0.0.1';
  let port = 1883;
  try {
    const u = new URL(url);
    host = u.hostname;
    port = Number(u.port || 1883);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const s = tcp({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
