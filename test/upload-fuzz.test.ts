/**
 * Fuzzing `POST /v1/models` over a real port with a few hundred malformed and hostile ONNX files:
 * truncations, bit flips and overwritten bytes of a valid model, random bytes, random protobuf,
 * wrong input types and shapes, unknown domains, huge dims, deeply nested subgraphs, external data
 * and hostile names. The server must never crash or answer 5xx, never show a path or ONNX
 * Runtime's words, and answer /healthz after each. Seeded: a failure reproduces.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { Rng } from '../src/core/index.js';
import * as b from './onnx-builders.js';
import { ROOT, tempDir } from './helpers.js';

const ADMIN = 'fuzz-admin-key-0123456789';
const dataDir = join(tempDir(), 'data');
const rng = new Rng(20240611);
// A copy: protobufjs hands out a Buffer, whose slice() would share (and let the fuzzing corrupt) its memory.
const base = Uint8Array.from(b.classifier());
const decl = { task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] };

interface Case {
  kind: string;
  bytes: Uint8Array;
  decl?: Record<string, unknown>;
}

const bytesOf = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));

/** A random but well-formed protobuf message (random field numbers and wire types, nested up to `depth`). */
function randomProto(depth: number): Uint8Array {
  const parts: number[] = [];
  const fields = 1 + rng.int(8);
  for (let f = 0; f < fields; f++) {
    const num = 1 + rng.int(30);
    const wire = [0, 1, 2, 5][rng.int(4)]!;
    parts.push(...[(num << 3) | wire].flatMap((t) => (t > 0x7f ? [(t & 0x7f) | 0x80, t >> 7] : [t])));
    if (wire === 0) parts.push(rng.int(128));
    else if (wire === 1) parts.push(...bytesOf(8));
    else if (wire === 5) parts.push(...bytesOf(4));
    else {
      const payload = depth > 0 && rng.next() < 0.6 ? randomProto(depth - 1) : bytesOf(rng.int(20));
      const len = payload.length;
      parts.push(...(len > 0x7f ? [(len & 0x7f) | 0x80, len >> 7] : [len]), ...payload);
    }
  }
  return Uint8Array.from(parts);
}

function variant(edit: (g: b.Graph, m: b.Model) => void): Uint8Array {
  const m = b.model(b.classifierGraph());
  edit(m.graph!, m);
  return b.encode(m);
}

function cases(): Case[] {
  const out: Case[] = [];
  for (let i = 0; i < 50; i++) out.push({ kind: 'truncated', bytes: base.slice(0, 1 + rng.int(base.length - 1)) });
  // Few: a flip in the weights or a name leaves a valid model, proven in a child process (about
  // a second each under tsx); the rest of the cases are refused before a process starts.
  for (let i = 0; i < 12; i++) {
    const c = Uint8Array.from(base);
    for (let k = 1 + rng.int(3); k > 0; k--) c[rng.int(c.length)] ^= 1 << rng.int(8);
    out.push({ kind: 'bit flips', bytes: c });
  }
  for (let i = 0; i < 30; i++) {
    const c = Uint8Array.from(base);
    for (let k = 1 + rng.int(8); k > 0; k--) c[rng.int(c.length)] = rng.int(256);
    out.push({ kind: 'overwritten bytes', bytes: c });
  }
  for (let i = 0; i < 30; i++) out.push({ kind: 'random bytes', bytes: bytesOf(1 + rng.int(600)) });
  for (let i = 0; i < 75; i++) out.push({ kind: 'random protobuf', bytes: randomProto(3) });
  // A valid model's fields with random protobuf spliced in after it (unknown or repeated fields).
  for (let i = 0; i < 6; i++) out.push({ kind: 'appended protobuf', bytes: Uint8Array.from([...base, ...randomProto(2)]) });
  for (const [elemType, dims] of [
    [7, ['N', 3]],
    [11, ['N', 3]],
    [6, ['N', 3]],
    [9, ['N', 3]],
    [8, ['N', 3]],
    [1, ['N']],
    [1, ['N', 1, 3]],
    [1, [1, 3]],
    [1, ['N', 4]],
    [1, []],
  ] as Array<[number, (number | string)[]]>) {
    out.push({ kind: 'input type or shape', bytes: variant((g) => (g.input = [b.vi('x', dims, elemType)])) });
  }
  out.push({ kind: 'input type or shape', bytes: variant((g) => (g.input = [{ name: 'x', type: { sequenceType: { elemType: { tensorType: { elemType: 1 } } } } }])) });
  out.push({ kind: 'input type or shape', bytes: variant((g) => g.input!.push(b.vi('y', ['N', 3]))) });
  out.push({ kind: 'input type or shape', bytes: variant((g) => (g.input = [])) });
  for (const domain of ['com.evil', 'ai.onnx.preview.training', '../../etc', 'x'.repeat(5000), 'com.microsoft.nchwc']) {
    out.push({ kind: 'unknown domain', bytes: variant((g) => g.node!.push(b.node('Op', ['probs'], ['q'], [], domain))) });
    out.push({ kind: 'unknown domain', bytes: variant((_g, m) => m.opsetImport!.push({ domain, version: 1 })) });
  }
  out.push({
    kind: 'unknown domain',
    bytes: variant((g, m) => {
      m.opsetImport!.push({ domain: 'local', version: 1 });
      m.functions = [{ name: 'F', domain: 'local', input: ['a'], output: ['r'], node: [b.node('Run', ['a'], ['r'], [], 'custom.ops')] }];
      g.node!.push(b.node('F', ['probs'], ['f'], [], 'local'));
    }),
  });
  for (const dims of [[2 ** 40], [2 ** 31, 2 ** 31], [-1, 6], [0], [3, 2, 1e9], [2 ** 53, 2]]) out.push({ kind: 'huge dims', bytes: variant((g) => (g.initializer![0] = { ...g.initializer![0]!, dims })) });
  out.push({ kind: 'huge dims', bytes: variant((g) => (g.input = [b.vi('x', ['N', 2 ** 40])])) });
  out.push({ kind: 'huge dims', bytes: variant((g) => (g.output = [b.vi('probs', ['N', 2 ** 31])])) });
  out.push({ kind: 'huge dims', bytes: variant((g) => (g.sparseInitializer = [{ values: b.floats('sv', [1], [1]), indices: b.int64s('si', [1], [0]), dims: [2 ** 40, 2 ** 20] }])) });
  out.push({ kind: 'huge dims', bytes: variant((g) => g.node!.push(b.node('Constant', [], ['k'], [{ name: 'value', type: b.A.TENSOR, t: { name: 'k', dims: [2 ** 40], dataType: 1 } }]))) });
  for (const depth of [17, 40, 400]) out.push({ kind: 'nested subgraphs', bytes: b.nestedIfs(depth) });
  for (const depth of [17, 2_000, 20_000, 100_000]) out.push({ kind: 'nested subgraphs', bytes: b.deepWire(depth) });
  for (const location of ['package.json', '/etc/passwd', '../../../../etc/hostname', join(dataDir, 'medfit.db')]) {
    for (const where of ['constant', 'initializer', 'if'] as const) out.push({ kind: 'external data', bytes: b.exfiltrator(location, where), decl: { task: 'multiclass', features: ['a'], classes: ['1', '2', '3', '4'] } });
  }
  out.push({ kind: 'hostile names', bytes: variant((g) => g.node!.push(b.node('Op', ['probs'], ['q'], [], 'evil', `/etc/passwd${tmpdir()}\n\u0000`))) });
  out.push({ kind: 'hostile names', bytes: variant((g) => (g.node![1]!.input = [`${ROOT}/secret`])) });
  out.push({ kind: 'hostile names', bytes: variant((g) => (g.output = [b.vi('/etc/shadow', ['N', 2])])) });
  return out;
}

let server: Server;
let url = '';
let key = '';

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_MAX_UPLOAD_MB: '2' }, { dataDir, port: '0' }));
  url = await server.app.listen({ host: '127.0.0.1', port: 0 });
  key = (await createKey(server.services.store, 'default', ['train', 'predict'], 'fuzz')).key;
});
afterAll(async () => server?.close());

describe('fuzzing POST /v1/models', () => {
  it('answers every malformed or hostile file with a 4xx (or 201 when the damage left a valid model), in our words, and stays up', async () => {
    const all = cases();
    expect(all.length).toBeGreaterThan(250);
    const statuses = new Map<string, Record<number, number>>();
    for (const [i, c] of all.entries()) {
      const res = await fetch(`${url}/v1/models`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `fuzz-${i}`, onnx: Buffer.from(c.bytes).toString('base64'), ...(c.decl ?? decl) }),
      });
      const text = await res.text();
      const what = `case ${i} (${c.kind}): ${res.status} ${text.slice(0, 300)}`;
      expect(res.status === 201 || (res.status >= 400 && res.status < 500), what).toBe(true);
      if (c.kind === 'external data' || c.kind === 'unknown domain' || c.kind === 'nested subgraphs' || c.kind === 'huge dims' || c.kind === 'input type or shape' || c.kind === 'random bytes') expect(res.status, what).toBe(422);
      for (const s of [ROOT, dataDir, tmpdir(), '/etc/']) expect(text, what).not.toContain(s);
      expect(text, what).not.toMatch(/onnxruntime|\.cc:\d|ONNXRuntimeError|model_path|protobuf\.js|index out of range|stack/i);
      const counts = statuses.get(c.kind) ?? {};
      counts[res.status] = (counts[res.status] ?? 0) + 1;
      statuses.set(c.kind, counts);
      const health = await fetch(`${url}/healthz`);
      expect(health.status, what).toBe(200);
    }
    // For the record: how each kind was answered.
    console.log('fuzz statuses by kind:', JSON.stringify(Object.fromEntries(statuses)));
  }, 120_000);
});
