/**
 * The MQTT bridge of `medfit serve --mqtt <url>`: devices publish samples, medfit publishes each
 * completed window's prediction, with the same windows and the same JSON lines as the HTTP stream.
 *
 * Topics (`<prefix>` is `medfit`):
 * - `<prefix>/<project>/<device>/samples`: a JSON array of samples, one sample object, or an
 *   envelope `{"key": "<API key>", "samples": [...]}` (or `"sample": {...}`);
 * - `<prefix>/<project>/<device>/predictions`: one message per line: `{"window", "start", "end",
 *   <prediction>}` or `{"warning": …}`;
 * - `<prefix>/<project>/<device>/errors`: `{"error": "…"}` (bad JSON, wrong types, a refused key,
 *   no model); the device's stream goes on with its next good sample.
 *
 * Authentication: medfit connects to the broker with its own credentials, and a subscriber never
 * learns who published a message, so each samples message carries the device's API key, as an
 * MQTT v5 user property `key` or in the envelope. Whoever may subscribe to the samples topics sees
 * that key, so `authorize` (the server's: `api/stream.ts`) takes only a key of `<project>` whose
 * sole scope is `predict`; otherwise the message gets an error and nothing is predicted. A key in
 * the user property is checked before the payload is parsed (a refused one costs no parsing).
 *
 * Bounded: at most `maxDevices` device streams (least recently used forgotten first), a device
 * silent for `idleMs` is ended and forgotten, payloads over `maxPayloadBytes` are refused unread,
 * a device with `maxQueued` messages waiting has further ones refused, and so is any message once
 * `maxQueuedBytes` of payloads are waiting in all. A message's windows are cut and predicted in
 * bounded slices (`StreamWindows.busy`), other devices going between.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { Errors, MedfitError } from '../core/index.js';
import { predictStreamEvents, StreamWindows, type StreamLine } from './stream.js';
import type { ServedSequence } from './types.js';

/** Who a device's key is. */
export interface MqttPrincipal {
  projectId: string;
  keyId: string;
}

/** The model a project's devices are predicted with. */
export interface MqttModel {
  name: string;
  version: number;
  model: ServedSequence;
}

/** Why a samples message was (partly) refused. */
export type MqttProblem = 'auth' | 'line' | 'model' | 'limit';

/** What `startMqttBridge` takes. */
export interface MqttBridgeOptions {
  /** `mqtt://host:1883`, `mqtts://…`, `ws://…`. */
  url: string;
  /** medfit's own credentials at the broker. */
  username?: string;
  password?: string;
  clientId?: string;
  /** First topic level (default `medfit`). */
  prefix?: string;
  /** Device streams kept at once (default 1,000). */
  maxDevices?: number;
  /** A device with no sample for this long is ended and forgotten (default 5 minutes). */
  idleMs?: number;
  /** Largest samples message (default 1 MiB). */
  maxPayloadBytes?: number;
  /** Samples messages of one device waiting to be handled (default 64). */
  maxQueued?: number;
  /** Bytes of samples messages waiting to be handled, all devices together (default 64 MiB). */
  maxQueuedBytes?: number;
  /** Checks a device's API key for `project` (a name from the topic); throws a MedfitError to refuse. */
  authorize(key: string, project: string): Promise<MqttPrincipal>;
  /** The model for a project's devices; throws a MedfitError when there is none. Called per message: cache inside. */
  model(projectId: string): Promise<MqttModel>;
  /** Windows predicted (for metrics and the audit trail; counts only, never values). */
  onWindows?(who: MqttPrincipal, model: { name: string; version: number }, windows: number): void;
  /** A refused message or sample (`projectId` undefined when the key was refused). */
  onProblem?(projectId: string | undefined, reason: MqttProblem): void;
  /** Messages about the bridge itself (never a payload's values or a key). */
  log?(level: 'info' | 'warn' | 'error', message: string, err?: unknown): void;
  /** How long to wait for the broker at start (default 10 s). */
  connectTimeoutMs?: number;
}

/** A running bridge. */
export interface MqttBridge {
  /** Device streams held now. */
  devices(): number;
  /** Unsubscribes and disconnects; pending messages are dropped. */
  close(): Promise<void>;
}

/** Most error messages one samples message may cause (the rest are counted in the last). */
const MAX_ERRORS_PER_MESSAGE = 10;
/** Most samples in one message. */
const MAX_SAMPLES_PER_MESSAGE = 100_000;
/** Topic levels (project, device) longer than this are refused. */
const MAX_LEVEL = 128;
/** A longer key is no key of ours (and is never looked up or cached). */
const MAX_KEY_LENGTH = 512;
/** Payload bytes waiting in all, by default: 64 MiB (parsed, a few times that). */
export const MQTT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** What a refused key is told, whatever the reason (unknown, revoked, another project's). */
const INVALID_KEY = 'invalid or revoked API key';

interface Device {
  key: string;
  project: string;
  device: string;
  windows: StreamWindows;
  model: MqttModel;
  who: MqttPrincipal;
  last: number;
}

/** Messages of one topic waiting, handled one after another. */
interface Queue {
  chain: Promise<void>;
  queued: number;
}

/** Lets other devices, requests and timers go between two slices of one device's work. */
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Connects to the broker, subscribes to `<prefix>/+/+/samples` and answers each device. Rejects
 * (in our words, without the URL's credentials) when the broker cannot be reached at start; later
 * disconnections are retried every second and logged.
 */
export async function startMqttBridge(o: MqttBridgeOptions): Promise<MqttBridge> {
  const prefix = o.prefix ?? 'medfit';
  const maxDevices = o.maxDevices ?? 1000;
  const idleMs = o.idleMs ?? 5 * 60_000;
  const maxPayload = o.maxPayloadBytes ?? 1024 * 1024;
  const maxQueued = o.maxQueued ?? 64;
  const maxWaiting = Math.max(maxQueued, maxDevices * 4);
  const maxWaitingBytes = o.maxQueuedBytes ?? MQTT_MAX_QUEUED_BYTES;
  const log = o.log ?? (() => {});
  const where = safeUrl(o.url);
  const options: IClientOptions = {
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
    clientId: o.clientId ?? `medfit-${process.pid}-${Math.random().toString(16).slice(2, 10)}`,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
  };
  let client: MqttClient;
  try {
    client = await mqtt.connectAsync(o.url, options, false);
  } catch (e) {
    throw Errors.unavailable(`cannot connect to the MQTT broker at ${where}: ${e instanceof Error ? e.message.replaceAll(o.url, where) : 'connection failed'}`);
  }
  /** Device streams of authorised devices, least recently used first. */
  const devices = new Map<string, Device>();
  /** Per topic, the messages waiting (an entry lives while any does). */
  const queues = new Map<string, Queue>();
  let waiting = 0;
  let waitingBytes = 0;
  let closing = false;

  /** Publishes a line; settles once MQTT.js has written it (so a burst can wait, see `answer`). */
  const publish = (d: { project: string; device: string }, kind: 'predictions' | 'errors', line: StreamLine): Promise<void> => {
    if (closing) return Promise.resolve();
    return new Promise((settle) => {
      client.publish(`${prefix}/${d.project}/${d.device}/${kind}`, JSON.stringify(line), { qos: 0 }, (err) => {
        if (err && !closing) log('warn', `mqtt: publishing to ${kind} failed`, err);
        settle();
      });
    });
  };

  /**
   * Runs `task` after the topic's earlier messages; `bytes`: its payload's, counted while it waits
   * and runs. Refused when too many messages, or bytes, are waiting.
   */
  const enqueue = (key: string, task: () => Promise<void>, limited: boolean, bytes = 0): 'ok' | 'messages' | 'bytes' => {
    let q = queues.get(key);
    if (limited && ((q?.queued ?? 0) >= maxQueued || waiting >= maxWaiting)) return 'messages';
    if (limited && waitingBytes + bytes > maxWaitingBytes) return 'bytes';
    if (!q) queues.set(key, (q = { chain: Promise.resolve(), queued: 0 }));
    const queue = q;
    queue.queued++;
    waiting++;
    waitingBytes += bytes;
    queue.chain = queue.chain
      .then(task)
      .catch((e: unknown) => {
        log('error', 'mqtt: a samples message failed', e);
        const [project, device] = key.split('/') as [string, string];
        publish({ project, device }, 'errors', { error: 'internal error; the server log has the details' });
      })
      .finally(() => {
        queue.queued--;
        waiting--;
        waitingBytes -= bytes;
        if (queue.queued === 0 && queues.get(key) === queue) queues.delete(key);
      });
    return 'ok';
  };

  /** Predicts and publishes what the device's stream has completed. */
  const answer = async (d: Device) => {
    const events = d.windows.take();
    if (events.length === 0) return;
    const lines = await predictStreamEvents(d.model.model, events);
    let windows = 0;
    for (const [i, line] of lines.entries()) {
      if ('window' in line) windows++;
      // A burst (many windows from one message) waits for its writes every 256 lines, so the
      // socket's buffer, and MQTT.js's drain listeners, stay bounded.
      const written = publish(d, 'predictions', line);
      if (i % 256 === 255) await written;
    }
    if (windows > 0) o.onWindows?.(d.who, { name: d.model.name, version: d.model.version }, windows);
  };

  /** `answer`, and the rest of a push's or end's work, slice by slice (see `StreamWindows.busy`). */
  const answerAll = async (d: Device) => {
    await answer(d);
    while (d.windows.busy) {
      await yieldToLoop();
      d.windows.more();
      await answer(d);
    }
  };

  /** Forgets a device; `finish`: its stream is ended first and its last windows go out. */
  const retire = (d: Device, finish: boolean) => {
    if (devices.get(d.key) === d) devices.delete(d.key);
    if (!finish) return;
    enqueue(
      d.key,
      async () => {
        if (d.windows.busy) return;
        d.windows.end();
        await answerAll(d);
      },
      false,
    );
  };

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const d of [...devices.values()]) if (now - d.last > idleMs) retire(d, true);
  }, Math.max(50, Math.min(30_000, Math.floor(idleMs / 4))));
  sweep.unref();

  const handle = async (project: string, device: string, payload: Buffer, packet: IPublishPacket) => {
    const topic = { project, device };
    const fail = (message: string, reason: MqttProblem, projectId?: string) => {
      o.onProblem?.(projectId, reason);
      publish(topic, 'errors', { error: message });
    };
    const noKey = 'no API key: send it as the MQTT v5 user property "key" or as {"key": …, "samples": [...]}';
    /** The key's principal, or undefined when it is refused (the error sent). */
    const check = async (key: string): Promise<MqttPrincipal | undefined> => {
      if (key === '') return void fail(noKey, 'auth');
      if (key.length > MAX_KEY_LENGTH) return void fail(INVALID_KEY, 'auth');
      try {
        return await o.authorize(key, project);
      } catch (e) {
        return void fail(e instanceof MedfitError && e.status < 500 ? e.message : 'the key could not be checked now; try again', 'auth');
      }
    };
    // A key in the user property is checked before the payload is read: a publisher without a
    // good key costs no parsing.
    const propertyKey = userKey(packet);
    let who: MqttPrincipal | undefined;
    if (propertyKey !== undefined) {
      who = await check(propertyKey);
      if (!who) return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      return fail('the message is not valid JSON (send a sample object, an array of samples, or {"key": …, "samples": [...]})', 'line', who?.projectId);
    }
    let samples: unknown[];
    let key: string | undefined = propertyKey;
    if (Array.isArray(parsed)) samples = parsed;
    else if (parsed !== null && typeof parsed === 'object' && (Object.hasOwn(parsed, 'samples') || Object.hasOwn(parsed, 'sample') || Object.hasOwn(parsed, 'key'))) {
      const env = parsed as { key?: unknown; samples?: unknown; sample?: unknown };
      if (env.key !== undefined) {
        if (typeof env.key !== 'string') return fail('"key" must be a text (the API key)', 'auth');
        if (propertyKey !== undefined && env.key !== propertyKey) return fail('two different API keys (the user property "key" and the envelope\'s "key"): send one', 'auth');
        key = env.key;
      }
      if (env.samples !== undefined) {
        if (!Array.isArray(env.samples)) return fail('"samples" must be an array of sample objects', 'line');
        samples = env.samples;
      } else if (env.sample !== undefined) samples = [env.sample];
      else return fail('the envelope has no "samples" (an array of sample objects)', 'line');
    } else if (parsed !== null && typeof parsed === 'object') samples = [parsed];
    else return fail('expected a sample object, an array of samples, or {"key": …, "samples": [...]}', 'line');
    if (key === undefined) return fail(noKey, 'auth');
    if (samples.length > MAX_SAMPLES_PER_MESSAGE) return fail(`more than ${MAX_SAMPLES_PER_MESSAGE} samples in one message`, 'limit', who?.projectId);
    if (!who) {
      who = await check(key);
      if (!who) return;
    }
    let m: MqttModel;
    try {
      m = await o.model(who.projectId);
    } catch (e) {
      if (!(e instanceof MedfitError) || e.status >= 500) log('error', 'mqtt: the model of a project cannot be loaded', e);
      return fail(e instanceof MedfitError && e.status < 500 ? e.message : 'the model cannot be loaded now; the server log has the details', 'model', who.projectId);
    }
    if (closing) return;
    const dkey = `${project}/${device}`;
    let d = devices.get(dkey);
    if (d && (d.model.name !== m.name || d.model.version !== m.version)) {
      // Another model or version: the old stream ends (its last windows go out), a new one starts.
      d.windows.end();
      await answerAll(d).catch((e: unknown) => log('warn', 'mqtt: the last windows of a device could not be predicted', e));
      devices.delete(dkey);
      d = undefined;
    }
    if (d) devices.delete(dkey);
    else {
      while (devices.size >= maxDevices) retire(devices.values().next().value as Device, false);
      d = { key: dkey, project, device, windows: new StreamWindows(m.model.prep), model: m, who, last: 0 };
    }
    // Most recently used last: the map's first entry is the one to forget.
    devices.set(dkey, d);
    d.last = Date.now();
    d.who = who;
    d.model = m;
    let errors = 0;
    for (const [i, sample] of samples.entries()) {
      try {
        d.windows.push(sample);
      } catch (e) {
        if (!(e instanceof MedfitError)) throw e;
        errors++;
        o.onProblem?.(who.projectId, 'line');
        if (errors <= MAX_ERRORS_PER_MESSAGE) publish(d, 'errors', { error: `${samples.length > 1 || Array.isArray(parsed) ? `sample ${i}: ` : ''}${e.message}` });
      }
      if (closing) return;
      // A sample that completed more than one slice of work: its windows go out slice by slice.
      if (d.windows.busy) {
        try {
          await answerAll(d);
        } catch (e) {
          // Not left halfway through a sample: the device's next message starts a new stream.
          if (devices.get(dkey) === d) devices.delete(dkey);
          throw e;
        }
      } else if (d.windows.pending >= Math.min(256, d.windows.batchLimit)) await answer(d);
      // A large message does not hold the event loop: other devices and requests go between.
      else if (i % 2048 === 2047) await new Promise((r) => setImmediate(r));
    }
    if (errors > MAX_ERRORS_PER_MESSAGE) publish(d, 'errors', { error: `${errors - MAX_ERRORS_PER_MESSAGE} more sample(s) of this message were refused` });
    await answer(d);
  };

  client.on('message', (topic, payload, packet) => {
    try {
      if (closing) return;
      const parts = topic.split('/');
      if (parts.length !== 4 || parts[0] !== prefix || parts[3] !== 'samples') return;
      const project = parts[1]!;
      const device = parts[2]!;
      if (!project || !device || project.length > MAX_LEVEL || device.length > MAX_LEVEL) return;
      if (payload.length > maxPayload) {
        o.onProblem?.(undefined, 'limit');
        publish({ project, device }, 'errors', { error: `the message is ${payload.length} bytes; the limit is ${maxPayload}` });
        return;
      }
      const queued = enqueue(`${project}/${device}`, () => handle(project, device, payload, packet), true, payload.length);
      if (queued !== 'ok') {
        o.onProblem?.(undefined, 'limit');
        const error =
          queued === 'messages'
            ? 'too many messages are waiting; this one was dropped (send fewer, larger messages)'
            : `the server has ${maxWaitingBytes >= 1024 * 1024 ? `${Math.round(maxWaitingBytes / (1024 * 1024))} MiB` : `${maxWaitingBytes} bytes`} of messages waiting to be handled; this one was dropped (send fewer samples a second)`;
        publish({ project, device }, 'errors', { error });
      }
    } catch (e) {
      log('error', 'mqtt: a message could not be handled', e);
    }
  });
  let offline = false;
  client.on('error', (e) => log('warn', `mqtt: ${e.message.replaceAll(o.url, where)}`));
  client.on('offline', () => {
    if (!offline && !closing) log('warn', `mqtt: lost the broker at ${where}; reconnecting`);
    offline = true;
  });
  // Predictions are small messages sent as they are ready: Nagle's algorithm would hold them
  // back (tens of milliseconds against the broker's delayed acknowledgements).
  const noDelay = () => (client.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  noDelay();
  client.on('connect', () => {
    noDelay();
    if (offline) log('info', `mqtt: reconnected to ${where}`);
    offline = false;
  });

  try {
    const granted = await client.subscribeAsync(`${prefix}/+/+/samples`, { qos: 0 });
    if (granted.some((g) => g.qos > 2)) throw new Error('the broker refused the subscription');
  } catch (e) {
    await client.endAsync(true).catch(() => {});
    throw Errors.unavailable(`the MQTT broker at ${where} refused medfit's subscription to ${prefix}/+/+/samples: ${e instanceof Error ? e.message : 'refused'}`);
  }
  log('info', `mqtt: listening on ${where} (${prefix}/<project>/<device>/samples)`);

  return {
    devices: () => devices.size,
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(sweep);
      devices.clear();
      await client.endAsync().catch(() => client.end(true));
    },
  };
}

/** The `key` user property of an MQTT v5 message. */
function userKey(packet: IPublishPacket): string | undefined {
  const v = packet.properties?.userProperties?.['key'];
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}

/** A broker URL without its credentials, for messages. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'the given URL';
  }
}
