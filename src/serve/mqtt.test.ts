/**
 * The MQTT bridge against the Mosquitto broker on 127.0.0.1:1883 (skipped, saying so, when nothing
 * answers there): samples in, the stream's prediction lines out, every kind of garbage answered on
 * the errors topic, keys checked, device state bounded, and the bridge still answering afterwards.
 */
import { randomBytes } from 'node:crypto';
import { portAnswers } from '../../test/helpers.js';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, type Matrix } from '../core/index.js';
import { SEQUENCE_PREP_VERSION, type SequencePrep } from '../sequence/index.js';
import { startMqttBridge, type MqttBridge, type MqttBridgeOptions } from './mqtt.js';
import { predictStreamEvents, StreamWindows, type StreamLine } from './stream.js';
import type { ServedSequence } from './types.js';

const BROKER = 'mqtt://127.0.0.1:1883';


const brokerUp = await portAnswers(1883);
if (!brokerUp) console.warn('src/serve/mqtt.test.ts: no MQTT broker answers on 127.0.0.1:1883; the broker tests are skipped');

const prep: SequencePrep = {
  version: SEQUENCE_PREP_VERSION,
  columns: { subject: 'subject', time: 't' },
  timeUnit: 's',
  channels: ['ax', 'ay'],
  targets: [],
  mean: [0, 1],
  std: [1, 2],
  rate: 50,
  window: 10,
  stride: 5,
  maxGap: 0.5,
};

const model: ServedSequence = {
  prep,
  classes: ['rest', 'move'],
  async predictWindows(x: Matrix) {
    const out = new Float64Array(x.rows * 2);
    for (let r = 0; r < x.rows; r++) {
      const p = 1 / (1 + Math.exp(-x.data[r * x.cols + x.cols - 2]!));
      out[r * 2] = 1 - p;
      out[r * 2 + 1] = p;
    }
    return out;
  },
};

const samples = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ t: (from + i) / 50 + 1000, ax: Math.sin((from + i) / 5), ay: (from + i) % 7 }));

/** What the HTTP stream would answer for the same samples. */
async function expected(all: object[], end: boolean): Promise<StreamLine[]> {
  const w = new StreamWindows(prep);
  for (const s of all) w.push(s);
  if (end) w.end();
  return predictStreamEvents(model, w.take());
}

describe.skipIf(!brokerUp)('MQTT bridge (Mosquitto on 127.0.0.1:1883)', () => {
  const prefix = `medfit-test-${randomBytes(4).toString('hex')}`;
  let bridge: MqttBridge;
  let client: MqttClient;
  const got = new Map<string, unknown[]>();
  const problems: Array<[string | undefined, string]> = [];
  const windowsCounted: number[] = [];
  const authorized: string[] = [];
  const options = (over: Partial<MqttBridgeOptions> = {}): MqttBridgeOptions => ({
    url: BROKER,
    prefix,
    // As the server's: another project's key is as good as none; a key of more than predict is refused.
    async authorize(key, project) {
      authorized.push(key);
      if ((key !== 'good-key' && key !== 'admin-key') || project !== 'p1') throw Errors.unauthorized('invalid or revoked API key');
      if (key === 'admin-key') throw Errors.forbidden('MQTT takes only a predict-only device key');
      return { projectId: 'id-p1', keyId: 'k1' };
    },
    async model(projectId) {
      if (projectId !== 'id-p1') throw Errors.notFound('model');
      return { name: 'activity', version: 1, model };
    },
    onWindows: (_who, _m, n) => windowsCounted.push(n),
    onProblem: (projectId, reason) => problems.push([projectId, reason]),
    ...over,
  });
  const topic = (device: string, kind: string, project = 'p1') => `${prefix}/${project}/${device}/${kind}`;
  const received = (device: string, kind: string, project = 'p1') => got.get(topic(device, kind, project)) ?? [];
  /** `key` null: no user property. */
  const publish = (device: string, payload: unknown, key: string | null = 'good-key', project = 'p1') =>
    client.publishAsync(topic(device, 'samples', project), typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload), key === null ? {} : { properties: { userProperties: { key } } });
  async function until(check: () => boolean, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error('timed out waiting for MQTT messages');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    client = await mqtt.connectAsync(BROKER, { protocolVersion: 5 });
    client.on('message', (t, payload) => {
      const list = got.get(t) ?? [];
      list.push(JSON.parse(payload.toString('utf8')));
      got.set(t, list);
    });
    await client.subscribeAsync([`${prefix}/+/+/predictions`, `${prefix}/+/+/errors`]);
    bridge = await startMqttBridge(options({ maxDevices: 3, maxPayloadBytes: 64 * 1024 }));
  });
  afterAll(async () => {
    await bridge?.close();
    await client?.endAsync();
  });

  it('answers samples sent in messages of any size with the HTTP stream lines', async () => {
    const all = samples(300);
    // One sample, then arrays of various lengths, then an envelope with the key in it.
    await publish('d1', all[0]);
    await publish('d1', all.slice(1, 40));
    await publish('d1', all.slice(40, 41));
    await publish('d1', all.slice(41, 200));
    await publish('d1', { key: 'good-key', samples: all.slice(200, 299) }, null);
    await publish('d1', { key: 'good-key', sample: all[299] }, null);
    const want = await expected(all, false);
    await until(() => received('d1', 'predictions').length >= want.length);
    expect(received('d1', 'predictions')).toEqual(JSON.parse(JSON.stringify(want)));
    expect(received('d1', 'errors')).toEqual([]);
    expect(windowsCounted.reduce((a, b) => a + b, 0)).toBe(want.filter((l) => 'window' in l).length);
  });

  it('refuses garbage on the errors topic, never crashes, and goes on', async () => {
    const bad: unknown[] = [
      'not json {',
      '123',
      '"text"',
      'null',
      Buffer.from([0xff, 0xfe, 0x00]),
      [1, 2, 3],
      { samples: 5 },
      { key: 42, samples: [] },
      { key: 'good-key' },
      [{ t: 'yesterday', ax: 1 }],
      [{ ax: 1 }],
      [{ t: 2000, ax: 'secret-4242' }],
      [{ t: 2000.02, ax: { nested: true } }],
      'x'.repeat(70 * 1024),
    ];
    for (const b of bad) await publish('d2', b);
    const texts = () => (received('d2', 'errors') as Array<{ error: string }>).map((e) => e.error);
    const wanted = [
      /^the message is not valid JSON/,
      /^expected a sample object, an array of samples/,
      /^sample 2: expected a sample object/,
      /^"samples" must be an array of sample objects$/,
      /^"key" must be a text/,
      /^the envelope has no "samples"/,
      /^sample 0: "t": expected a number \(seconds\) or an ISO 8601 date-time$/,
      /^sample 0: "t" is missing/,
      /^sample 0: channel "ax": expected a number/,
      /^the message is 71680 bytes; the limit is 65536$/,
    ];
    await until(() => texts().length >= 16 && wanted.every((re) => texts().some((t) => re.test(t))));
    for (const e of received('d2', 'errors') as Array<Record<string, string>>) {
      expect(Object.keys(e)).toEqual(['error']);
      expect(e['error']).not.toContain('4242');
      expect(e['error']).not.toContain('yesterday');
    }
    // Still answering the same device, and the others.
    const more = samples(30, 5000);
    await publish('d2', more);
    await until(() => received('d2', 'predictions').some((l) => typeof l === 'object' && l !== null && 'window' in l));
  });

  it('predicts nothing for a missing, wrong or foreign key, or a key of more than predict', async () => {
    const s = samples(60);
    await publish('d3', s, null);
    await publish('d3', s, 'wrong-key');
    await publish('d3', s, 'admin-key');
    await publish('d3', s, 'x'.repeat(600));
    await publish('d3', s, 'good-key', 'p2');
    await until(() => received('d3', 'errors').length >= 4 && received('d3', 'errors', 'p2').length >= 1);
    expect(received('d3', 'errors').map((e) => (e as { error: string }).error)).toEqual([
      expect.stringMatching(/no API key: send it as the MQTT v5 user property "key"/),
      'invalid or revoked API key',
      'MQTT takes only a predict-only device key',
      'invalid or revoked API key',
    ]);
    // A good key of another project: the answer of an unknown key.
    expect(received('d3', 'errors', 'p2')).toEqual([{ error: 'invalid or revoked API key' }]);
    await new Promise((r) => setTimeout(r, 200));
    expect(received('d3', 'predictions')).toEqual([]);
    expect(problems.filter(([p, r]) => p === undefined && r === 'auth').length).toBeGreaterThanOrEqual(5);
  });

  it('checks a user-property key before reading the payload, and refuses two different keys', async () => {
    const before = authorized.length;
    // Not even JSON: a refused key is all the answer (nothing was parsed).
    await publish('d6', 'not json {'.repeat(1000), 'wrong-key');
    await publish('d6', 'not json {', 'good-key');
    await publish('d6', { key: 'admin-key', samples: samples(3) }, 'good-key');
    await until(() => received('d6', 'errors').length >= 3);
    expect(received('d6', 'errors').map((e) => (e as { error: string }).error)).toEqual([
      'invalid or revoked API key',
      expect.stringMatching(/^the message is not valid JSON/),
      'two different API keys (the user property "key" and the envelope\'s "key"): send one',
    ]);
    // The envelope's key was never tried.
    expect(authorized.slice(before)).toEqual(['wrong-key', 'good-key', 'good-key']);
  });

  it('drops messages once too many bytes are waiting in all, and answers the ones kept', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const bytesPrefix = `${prefix}-bytes`;
    const slow = await startMqttBridge(options({ prefix: bytesPrefix, maxQueuedBytes: 10_000, authorize: async () => (await gate, { projectId: 'id-p1', keyId: 'k1' }) }));
    const c = await mqtt.connectAsync(BROKER, { protocolVersion: 5 });
    try {
      const lines = new Map<string, Array<Record<string, unknown>>>();
      c.on('message', (t, p) => lines.set(t.split('/')[2]!, [...(lines.get(t.split('/')[2]!) ?? []), JSON.parse(p.toString('utf8'))]));
      await c.subscribeAsync([`${bytesPrefix}/p1/+/errors`, `${bytesPrefix}/p1/+/predictions`]);
      const payload = JSON.stringify(samples(60));
      expect(payload.length).toBeGreaterThan(2500);
      expect(payload.length).toBeLessThan(3300);
      // Each from its own device (no device has more than one waiting): bytes are the bound.
      for (let i = 0; i < 5; i++) await c.publishAsync(`${bytesPrefix}/p1/b${i}/samples`, payload, { properties: { userProperties: { key: 'good-key' } } });
      await until(() => (lines.get('b3') ?? []).length >= 1 && (lines.get('b4') ?? []).length >= 1);
      for (const d of ['b3', 'b4']) expect(lines.get(d)).toEqual([{ error: 'the server has 10000 bytes of messages waiting to be handled; this one was dropped (send fewer samples a second)' }]);
      expect(problems.filter(([p, r]) => p === undefined && r === 'limit').length).toBeGreaterThanOrEqual(2);
      open();
      await until(() => ['b0', 'b1', 'b2'].every((d) => (lines.get(d) ?? []).some((l) => 'window' in l)));
      // Once handled, their bytes are free again.
      await c.publishAsync(`${bytesPrefix}/p1/b3/samples`, payload, { properties: { userProperties: { key: 'good-key' } } });
      await until(() => (lines.get('b3') ?? []).some((l) => 'window' in l));
    } finally {
      await c.endAsync();
      await slow.close();
    }
  });

  it('answers a sample that completes many windows slice by slice, and refuses a jump of too many steps', async () => {
    const fast = await startMqttBridge(
      options({
        prefix: `${prefix}-jump`,
        model: async () => ({ name: 'fast', version: 1, model: { ...model, prep: { ...prep, rate: 10_000, maxGap: 10, window: 10, stride: 10 } } }),
      }),
    );
    const c = await mqtt.connectAsync(BROKER, { protocolVersion: 5 });
    try {
      const lines: Array<Record<string, unknown>> = [];
      c.on('message', (_t, p) => lines.push(JSON.parse(p.toString('utf8'))));
      await c.subscribeAsync([`${prefix}-jump/p1/j1/errors`, `${prefix}-jump/p1/j1/predictions`]);
      const send = (s: unknown) => c.publishAsync(`${prefix}-jump/p1/j1/samples`, JSON.stringify(s), { properties: { userProperties: { key: 'good-key' } } });
      // 0 → 9.9 s at 10 kHz: 99,000 steps and 9,900 windows from one sample, cut and predicted
      // in slices, exactly the windows of the HTTP stream.
      const jump = [{ t: 0, ax: 0, ay: 0 }, { t: 9.9, ax: 1, ay: 1 }, { t: 9.9001, ax: 1, ay: 1 }];
      await send(jump);
      const w = new StreamWindows({ ...prep, rate: 10_000, maxGap: 10, window: 10, stride: 10 });
      const want: StreamLine[] = [];
      let slices = 0;
      for (const sample of jump) {
        w.push(sample);
        while (w.busy) {
          want.push(...(await predictStreamEvents(model, w.take())));
          w.more();
          slices++;
        }
      }
      expect(slices).toBeGreaterThanOrEqual(2);
      want.push(...(await predictStreamEvents(model, w.take())));
      expect(want.filter((l) => 'window' in l).length).toBe(9_900);
      await until(() => lines.length >= want.length, 30_000);
      expect(lines).toEqual(JSON.parse(JSON.stringify(want)));
      // A model bridging gaps of a day at 10 kHz: 100 s later is a million steps, refused at once.
      const wide = await startMqttBridge(options({ prefix: `${prefix}-wide`, model: async () => ({ name: 'wide', version: 1, model: { ...model, prep: { ...prep, rate: 10_000, maxGap: 86_400 } } }) }));
      try {
        const errs: string[] = [];
        c.on('message', (t, p) => {
          if (t.startsWith(`${prefix}-wide/`) && t.endsWith('/errors')) errs.push((JSON.parse(p.toString('utf8')) as { error: string }).error);
        });
        await c.subscribeAsync(`${prefix}-wide/p1/w1/errors`);
        const at = Date.now();
        await c.publishAsync(`${prefix}-wide/p1/w1/samples`, JSON.stringify([{ t: 0, ax: 1 }, { t: 100, ax: 1 }]), { properties: { userProperties: { key: 'good-key' } } });
        await until(() => errs.length >= 1);
        expect(Date.now() - at).toBeLessThan(2000);
        expect(errs[0]).toMatch(/^sample 1: the sample's time is more than 100000 steps of the model's 10000 Hz grid/);
      } finally {
        await wide.close();
      }
    } finally {
      await c.endAsync();
      await fast.close();
    }
  }, 60_000);

  it('holds at most maxDevices streams, and forgets idle ones after ending their stream', async () => {
    for (const d of ['e1', 'e2', 'e3', 'e4', 'e5']) await publish(d, samples(3));
    await until(() => bridge.devices() === 3);
    await new Promise((r) => setTimeout(r, 100));
    expect(bridge.devices()).toBe(3);
    const idle = await startMqttBridge(options({ idleMs: 300, prefix: `${prefix}-idle` }));
    try {
      const t = (kind: string) => `${prefix}-idle/p1/f1/${kind}`;
      const lines: unknown[] = [];
      const c = await mqtt.connectAsync(BROKER, { protocolVersion: 5 });
      c.on('message', (_t, p) => lines.push(JSON.parse(p.toString('utf8'))));
      await c.subscribeAsync(t('predictions'));
      // 7 samples: shorter than a window but more than half of one: a padded window at the end.
      await c.publishAsync(t('samples'), JSON.stringify(samples(7)), { properties: { userProperties: { key: 'good-key' } } });
      await until(() => idle.devices() === 1);
      await until(() => idle.devices() === 0, 3000);
      const want = await expected(samples(7), true);
      await until(() => lines.length >= want.length);
      expect(lines).toEqual(JSON.parse(JSON.stringify(want)));
      expect(lines[0]).toMatchObject({ window: 0, padded: 3 });
      await c.endAsync();
    } finally {
      await idle.close();
    }
  });
});

describe('MQTT bridge start', () => {
  it('refuses in our words, without the credentials, when no broker answers', async () => {
    const err = await startMqttBridge({ url: 'mqtt://medfit:s3cret@127.0.0.1:1', connectTimeoutMs: 2000, authorize: async () => ({ projectId: '', keyId: '' }), model: async () => Promise.reject(new Error('unused')) }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toMatchObject({ code: 'MEDFIT_ERR_UNAVAILABLE' });
    expect(err!.message).toMatch(/^cannot connect to the MQTT broker at mqtt:\/\/127\.0\.0\.1:1/);
    expect(err!.message).not.toContain('s3cret');
  });
});
