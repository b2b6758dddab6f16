/**
 * `POST /v1/models/{name}/stream` (and `/versions/{v}/stream`): live predictions of a sequence
 * model from samples sent as NDJSON in a chunked request body, answered as NDJSON while the body
 * is still arriving, one line per completed window. The windows are exactly the batch path's
 * (`serve/stream.ts`); completed windows run through the model together, per chunk of input.
 *
 * Contract of a stream (HTTP 200 is sent before the body is read, so every problem from then on
 * is a line): `{"window", "start", "end", <prediction>}` per window, `{"warning": …}` lines, and at
 * most one `{"error": "line N: …"}` (or a limit, the idle timeout, shutdown), after which the
 * answer ends cleanly. Anything refused before streaming (key, scope, model, content type) is the
 * usual problem+json answer.
 */
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { Errors, MedfitError, loggableError } from '../core/index.js';
import { SEQUENCE_FAMILIES } from '../models/index.js';
import { loadMqttBridge, predictStreamEvents, StreamWindows, type MqttBridge, type MqttBridgeOptions, type MqttModel, type ServedSequence, type StreamLine } from '../serve/index.js';
import { createAuthenticator, requireScope, type Principal } from './auth.js';
import { discardBody } from './drain.js';
import { nameParams, versionParams } from './models.js';
import type { Server } from './app.js';
import type { Services } from './services.js';

/** Longest NDJSON line, in bytes. */
export const STREAM_MAX_LINE_BYTES = 64 * 1024;
/** A stream with no bytes for this long is ended. */
export const STREAM_IDLE_MS = 60_000;
/** Completed windows run through the model together at most this many at a time. */
export const STREAM_BATCH_WINDOWS = 256;

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);

/** Where sequence models come from: `ModelService.sequenceModel` (a fake in tests). */
export interface SequenceModels {
  sequenceModel(projectId: string, name: string, version?: string): Promise<ServedSequence & { record: { version: number } }>;
}

/** Options of the stream routes; the defaults are the constants above and `MEDFIT_MAX_BODY_MB`. */
export interface StreamRouteOptions {
  idleMs?: number;
  maxLineBytes?: number;
  /** Most bytes one stream may send (default: the server's `maxBodyBytes`). */
  maxBytes?: number;
  batchWindows?: number;
  /**
   * Longest a stream lasts (ms). Default: just under the HTTP server's `requestTimeout` (Node's
   * default is 300 s), past which Node itself would cut the connection without a word.
   */
  maxMs?: number;
  /** Defaults to the server's `ModelService`. */
  sequences?: SequenceModels;
}

/** Why a stream ended early, as counted in `medfit_stream_errors_total`. */
export type StreamErrorReason = 'line' | 'limit' | 'idle' | 'shutdown' | 'model' | 'auth';

/** The stream counters, registered once per metrics registry. */
export function streamMetrics(registry: Registry): { errors: Counter<'project' | 'transport' | 'reason'>; refused: Counter<'reason'> } {
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
  return {
    errors: counter('medfit_stream_errors_total', 'Stream problems by project id, transport (http or mqtt) and reason (line, limit, idle, shutdown, model, auth)', ['project', 'transport', 'reason'] as const),
    // Before a key is known there is no project to name (and topics are the sender's choice).
    refused: counter('medfit_mqtt_refused_total', 'MQTT samples messages refused before their key was accepted, by reason (auth, limit, line)', ['reason'] as const),
  };
}


/** Registers the stream routes on `app` (before it listens). */
export async function streamRoutes(app: FastifyInstance, s: Services, options: StreamRouteOptions = {}): Promise<void> {
  const idleMs = options.idleMs ?? STREAM_IDLE_MS;
  const maxLine = options.maxLineBytes ?? STREAM_MAX_LINE_BYTES;
  const maxBytes = options.maxBytes ?? s.config.maxBodyBytes;
  const batch = options.batchWindows ?? STREAM_BATCH_WINDOWS;
  const sequences = options.sequences ?? s.models;
  const metrics = streamMetrics(s.metrics.registry);
  /** Streams in progress: told to end at shutdown, or the server would wait for them forever. */
  const live = new Set<(why: string) => void>();
  app.addHook('preClose', (done) => {
    for (const stop of [...live]) stop('the server is shutting down');
    done();
  });

  const handle = async (req: FastifyRequest, reply: FastifyReply, version: string | undefined) => {
    const p = requireScope(req, 'predict');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!NDJSON_TYPES.has(type)) throw Errors.unsupportedMedia('send the samples as NDJSON (Content-Type: application/x-ndjson): one JSON object per line, {"t": …, "<channel>": number, …}');
    const { name } = req.params as { name: string };
    // Recorded before loading so that refused attempts are in the audit trail too; rows: windows.
    const audit = { action: 'model.stream', resource: `model:${name}${version !== undefined ? `/${version}` : ''}`, rows: 0 };
    req.auditEntry = audit;
    const model = await sequences.sequenceModel(p.projectId, name, version);
    const rec = model.record;
    audit.resource = `model:${name}/${rec.version}`;
    const windower = new StreamWindows(model.prep);
    const out = new PassThrough();
    // Written to after the client went away: nothing to tell anyone.
    out.on('error', () => {});
    const serverTimeout = app.server.requestTimeout;
    const maxMs = options.maxMs ?? (serverTimeout > 0 ? Math.max(1000, serverTimeout - 2000) : 0);
    void run({ req, res: reply.raw, out, model, windower, principal: p, name, version: rec.version, audit, maxMs });
    return reply.type('application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').header('x-accel-buffering', 'no').send(out);
  };

  interface Run {
    req: FastifyRequest;
    res: FastifyReply['raw'];
    out: PassThrough;
    model: ServedSequence;
    windower: StreamWindows;
    principal: Principal;
    name: string;
    version: number;
    audit: { rows: number };
    maxMs: number;
  }

  /** Reads the body line by line, writes lines back; never rejects. */
  const run = async (r: Run): Promise<void> => {
    const { req, out, model, windower } = r;
    const raw = req.raw;
    const body = ((req.body as Readable | undefined) ?? raw) as Readable;
    let windows = 0;
    let pending = 0;
    let lineNo = 0;
    let bytes = 0;
    let finished = false;
    /** Whether the client may still be sending when the answer ends (then its rest is read away). */
    let mayBeSending = true;
    let stopWith: ((why: string) => void) | undefined;
    const stopped = new Promise<string>((resolve) => (stopWith = resolve));
    const stop = (why: string) => stopWith!(why);
    live.add(stop);
    const deadline = r.maxMs > 0 ? setTimeout(() => stop(`the stream reached its time limit (${Math.round(r.maxMs / 1000)} s); open a new one to go on`), r.maxMs) : undefined;

    // The request ends (and is destroyed) when its body has arrived; the answer goes on until the
    // client goes away.
    const gone = () => out.destroyed || r.res.destroyed;
    const write = async (lines: StreamLine[]) => {
      if (lines.length === 0 || gone()) return;
      if (!out.write(lines.map((l) => JSON.stringify(l)).join('\n') + '\n')) {
        await Promise.race([once(out, 'drain'), once(out, 'close'), stopped]);
      }
    };
    /** Predicts and writes what has completed, and the rest of a sample's work slice by slice. */
    const flush = async () => {
      for (;;) {
        const events = windower.take();
        pending = 0;
        if (events.length > 0) {
          const lines = await predictStreamEvents(model, events);
          let k = 0;
          for (const l of lines) if ('window' in l) k++;
          windows += k;
          await write(lines);
        }
        if (!windower.busy || gone()) return;
        // Other streams and requests go between two slices.
        await new Promise<void>((resolve) => setImmediate(resolve));
        windower.more();
      }
    };
    const fail = async (message: string, reason: StreamErrorReason) => {
      metrics.errors.inc({ project: r.principal.projectId, transport: 'http', reason });
      await write([{ error: message }]);
    };
    /** One line of input; false when the stream must end. */
    const line = async (bytesOfLine: Buffer): Promise<boolean> => {
      lineNo++;
      // Nobody to answer (and a flush left off its work for them): the stream is over.
      if (gone() || windower.busy) return false;
      const text = bytesOfLine.toString('utf8').trim();
      if (text === '') return true;
      let sample: unknown;
      try {
        sample = JSON.parse(text);
      } catch {
        await flush();
        await fail(`line ${lineNo}: not valid JSON`, 'line');
        return false;
      }
      try {
        windower.push(sample);
      } catch (e) {
        if (!(e instanceof MedfitError)) throw e;
        await flush();
        await fail(`line ${lineNo}: ${e.message}`, 'line');
        return false;
      }
      pending = windower.pending;
      if (pending >= Math.min(batch, windower.batchLimit) || windower.busy) await flush();
      return true;
    };

    try {
      const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      let partial: Buffer[] = [];
      let partialLength = 0;
      let ended = false;
      read: for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), idleMs)));
        const chunk$ = chunks.next();
        // Left behind when the silence or a stop wins the race: its failure is no one's to report.
        chunk$.catch(() => {});
        const next = await Promise.race([chunk$, idle, stopped]);
        clearTimeout(timer);
        if (next === 'idle') {
          mayBeSending = false;
          await flush();
          await fail(`no data for ${idleMs / 1000} s: the stream is closed`, 'idle');
          break;
        }
        if (typeof next === 'string') {
          mayBeSending = false;
          await flush();
          await fail(next, next.includes('shutting down') ? 'shutdown' : 'limit');
          break;
        }
        if (next.done) {
          ended = true;
          break;
        }
        const chunk = next.value;
        bytes += chunk.length;
        if (bytes > maxBytes) {
          await flush();
          await fail(`the stream is larger than the limit of ${maxBytes} bytes (MEDFIT_MAX_BODY_MB); open a new one to go on`, 'limit');
          break;
        }
        let from = 0;
        for (let nl = chunk.indexOf(10, from); nl >= 0; nl = chunk.indexOf(10, from)) {
          let one = chunk.subarray(from, nl);
          if (partialLength > 0) {
            partial.push(one);
            one = Buffer.concat(partial, partialLength + one.length);
            partial = [];
            partialLength = 0;
          }
          from = nl + 1;
          if (one.length > maxLine) {
            await flush();
            await fail(`line ${lineNo + 1}: longer than ${maxLine} bytes`, 'line');
            break read;
          }
          if (!(await line(one))) break read;
        }
        if (from < chunk.length) {
          partial.push(chunk.subarray(from));
          partialLength += chunk.length - from;
          if (partialLength > maxLine) {
            await flush();
            await fail(`line ${lineNo + 1}: longer than ${maxLine} bytes`, 'line');
            break;
          }
        }
        await flush();
      }
      if (ended) {
        // A last line without its newline is a line too.
        let ok = true;
        if (partialLength > 0) ok = await line(Buffer.concat(partial, partialLength));
        if (ok && !windower.busy) {
          windower.end();
          await flush();
        }
      }
      finished = true;
    } catch (e) {
      // A client that went away mid-body (reset, aborted) is not a failure of ours.
      const clientLeft = raw.destroyed && !raw.complete;
      if (!gone() && !clientLeft) {
        // A model that fails, or our bug: the caller gets our words, the log the details.
        const shown = e instanceof MedfitError && e.status < 500;
        if (!shown) req.log.error({ err: loggableError(e) }, 'stream failed');
        metrics.errors.inc({ project: r.principal.projectId, transport: 'http', reason: 'model' });
        await write([{ error: shown ? (e as MedfitError).message : 'internal error; the server log has the details' }]).catch(() => {});
      }
    } finally {
      clearTimeout(deadline);
      live.delete(stop);
      r.audit.rows = windows;
      if (windows > 0) s.metrics.countPredictions(r.principal.projectId, r.name, String(r.version), 'v1', windows);
      out.end();
      if (!finished || !raw.complete) settleUnread(raw, r.res, mayBeSending);
    }
  };

  await app.register(async (scope) => {
    // The body is the raw stream: samples are read as they arrive, never buffered whole.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    const doc = (what: string) => ({
      summary: `Live predictions of a sequence model ${what}: NDJSON samples in, one NDJSON line per completed window out`,
      description:
        'The body is NDJSON sent as it is recorded (chunked): one sample per line, {"t": <time as the model was trained: seconds, milliseconds or ISO 8601>, "<channel>": number|null, ...}, in time order. ' +
        'The answer (200, application/x-ndjson) streams {"window": i, "start", "end", "label", "probabilities"} (or "value" / "values") as each window completes, {"warning": "..."} lines, ' +
        'and at most one {"error": "line N: ..."} after which it ends. Limits: 64 KiB a line, MEDFIT_MAX_BODY_MB a stream, 60 s without data.',
      tags: ['predict'],
    });
    scope.post('/v1/models/:name/stream', { schema: { ...doc('(production, else newest version)'), params: nameParams } }, (req, reply) => handle(req, reply, undefined));
    scope.post('/v1/models/:name/versions/:v/stream', { schema: { ...doc('version'), params: versionParams } }, (req, reply) => handle(req, reply, (req.params as { v: string }).v));
  });
}

/**
 * After the answer ended with the body unfinished. A client that may still be sending (an error
 * line, a limit) has the rest read away within bounds, so that closing does not reset the
 * connection under the answer's last lines; one that went quiet, or a server shutting down,
 * has the connection closed once the answer has gone out.
 */
function settleUnread(raw: FastifyRequest['raw'], res: FastifyReply['raw'], mayBeSending: boolean): void {
  if (raw.complete || raw.destroyed) return;
  let done = false;
  const close = () => {
    if (done) return;
    done = true;
    if (!mayBeSending) return void raw.socket.destroy();
    void discardBody(raw, 1024 * 1024, 2000).then((drained) => {
      if (!drained) raw.socket.destroy();
    });
  };
  // Once the answer's last bytes are with the operating system.
  if (res.writableFinished || res.destroyed) close();
  else res.once('finish', close).once('close', close);
}

/** What `medfit serve --mqtt` takes. */
export interface MqttServeOptions {
  url: string;
  /** The model name devices' samples go to (`--mqtt-model`); default: each project's newest sequence model. */
  model?: string;
  /** medfit's own credentials at the broker (`MEDFIT_MQTT_USERNAME`, `MEDFIT_MQTT_PASSWORD`). */
  username?: string;
  password?: string;
  maxDevices?: number;
  idleMs?: number;
  /** First topic level (default `medfit`; tests use their own, as a broker may be shared). */
  prefix?: string;
}

/** What an unknown, revoked or other project's key is told over MQTT. */
const INVALID_KEY = 'invalid or revoked API key';

/** The sequence families (which model versions `--mqtt-model`'s default picks among). */
const SEQUENCE_FAMILY_NAMES: ReadonlySet<string> = new Set(Object.keys(SEQUENCE_FAMILIES));

/** What a device sending another kind of key over MQTT is told (`project`: the topic's, the key's own). */
export function mqttPredictOnlyMessage(project: string): string {
  return `MQTT takes only a predict-only device key, as the key travels in every samples message to whoever may subscribe to the broker: create one with medfit keys create --project ${project} --scopes predict (and revoke this key if others may subscribe)`;
}

/**
 * Starts the MQTT bridge of a running server: device keys checked like HTTP keys (the same
 * authenticator rules: hashed lookup, revocation), but only keys whose sole scope is `predict`
 * (a key sent over MQTT is seen by every subscriber of the samples topics, so it must grant no
 * more than predicting), windows counted and audited. Unknown, revoked and other projects' keys
 * all get the same answer, so the errors topic never tells whether a key exists.
 */
export async function startServerMqtt(server: Server, o: MqttServeOptions, sequences?: SequenceModels): Promise<MqttBridge> {
  const s = server.services;
  const models = sequences ?? s.models;
  // MQTT.js loads only for a server that bridges MQTT.
  const { startMqttBridge } = await loadMqttBridge();
  const auth = createAuthenticator(s.store);
  const metrics = streamMetrics(s.metrics.registry);
  const projects = new Map<string, { id: string | undefined; until: number }>();
  const chosen = new Map<string, { model: MqttModel; until: number }>();
  const denied = new Map<string, number>();
  const log = server.app.log;
  const options: MqttBridgeOptions = {
    url: o.url,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.maxDevices !== undefined ? { maxDevices: o.maxDevices } : {}),
    ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
    ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
    async authorize(key, project) {
      // The project first, then the key: every key, good or not, takes the same lookups.
      let hit = projects.get(project);
      if (!hit || hit.until < Date.now()) {
        hit = { id: (await s.store.getProjectByName(project))?.id, until: Date.now() + 5000 };
        if (projects.size > 10_000) projects.clear();
        projects.set(project, hit);
      }
      let p: Principal;
      try {
        p = await auth.authenticate(`Bearer ${key}`);
      } catch (e) {
        // Also a key the header syntax would refuse (spaces): one answer for every bad key.
        if (e instanceof MedfitError && e.status === 401) throw Errors.unauthorized(INVALID_KEY);
        throw e;
      }
      // Another project's key (or a project that does not exist) is as good as none here: the
      // same answer as an unknown key, so nothing tells a valid key from an invalid one.
      if (hit.id === undefined || hit.id !== p.projectId) throw Errors.unauthorized(INVALID_KEY);
      if (!(p.scopes.length > 0 && p.scopes.every((scope) => scope === 'predict'))) {
        // A device sending 50 messages a second with the wrong key is one denial a minute in the trail.
        const last = denied.get(p.keyId) ?? 0;
        if (Date.now() - last > 60_000) {
          if (denied.size > 10_000) denied.clear();
          denied.set(p.keyId, Date.now());
          void s.store.audit({ projectId: p.projectId, keyId: p.keyId, action: 'denied', resource: 'mqtt samples', rows: null, status: 403 });
        }
        throw Errors.forbidden(mqttPredictOnlyMessage(project));
      }
      return { projectId: p.projectId, keyId: p.keyId };
    },
    async model(projectId) {
      // Resolved at most once a second per project: this is on the path of every message.
      const hit = chosen.get(projectId);
      if (hit && hit.until > Date.now()) return hit.model;
      let name = o.model;
      if (name === undefined) {
        const newest = (await s.store.listModelVersions(projectId)).filter((v) => SEQUENCE_FAMILY_NAMES.has(v.family)).sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.version - b.version)).pop();
        if (!newest) throw Errors.notFound('a sequence model in this project (train one, or start medfit serve with --mqtt-model)');
        name = newest.name;
      }
      const served = await models.sequenceModel(projectId, name);
      const model = { name, version: served.record.version, model: served };
      if (chosen.size > 10_000) chosen.clear();
      chosen.set(projectId, { model, until: Date.now() + 1000 });
      return model;
    },
    onWindows(who, model, windows) {
      s.metrics.countPredictions(who.projectId, model.name, String(model.version), 'v1', windows);
      // Audited per key and model version once a minute (and at close), not per message.
      const key = `${who.projectId}\u0000${who.keyId}\u0000${model.name}\u0000${model.version}`;
      const entry = audits.get(key);
      if (entry) entry.rows += windows;
      else audits.set(key, { projectId: who.projectId, keyId: who.keyId, resource: `model:${model.name}/${model.version}`, rows: windows });
    },
    onProblem(projectId, reason) {
      if (projectId === undefined) metrics.refused.inc({ reason });
      else metrics.errors.inc({ project: projectId, transport: 'mqtt', reason });
    },
    log: (level, message, err) => log[level]({ mqtt: true, ...(err !== undefined ? { err: loggableError(err) } : {}) }, message),
  };
  const audits = new Map<string, { projectId: string; keyId: string; resource: string; rows: number }>();
  const writeAudits = () => {
    for (const a of audits.values()) void s.store.audit({ projectId: a.projectId, keyId: a.keyId, action: 'model.stream', resource: a.resource, rows: a.rows, status: 200 });
    audits.clear();
  };
  const bridge = await startMqttBridge(options);
  const timer = setInterval(writeAudits, 60_000);
  timer.unref();
  return {
    devices: () => bridge.devices(),
    async close() {
      clearInterval(timer);
      await bridge.close();
      writeAudits();
    },
  };
}
