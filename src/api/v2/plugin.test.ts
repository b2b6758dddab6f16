import Fastify, { type FastifyInstance } from 'fastify';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../../core/index.js';
import { createInferFastPath, HEADER_LENGTH, joinBinaryBody, v2Plugin, type OutputTensor, type V2Backend, type V2Model } from './index.js';

const N = 3;

/** A model that sums each row (`sum` [-1,1]) and doubles it (`double` [-1,3]). */
function summer(version: string, over: Partial<V2Model> = {}): V2Model {
  return {
    name: 'summer',
    version,
    versions: ['1', '2'],
    platform: 'onnx_onnxv1',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, N] }],
    outputs: [
      { name: 'sum', datatype: 'FP32', shape: [-1, 1] },
      { name: 'double', datatype: 'FP32', shape: [-1, N] },
    ],
    ready: true,
    async infer(features: Float32Array, rows: number): Promise<OutputTensor[]> {
      const sum = new Float32Array(rows);
      const double = new Float32Array(rows * N);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < N; c++) {
          sum[r]! += features[r * N + c]!;
          double[r * N + c] = features[r * N + c]! * 2;
        }
      }
      return [
        { name: 'sum', datatype: 'FP32', shape: [rows, 1], data: sum },
        { name: 'double', datatype: 'FP32', shape: [rows, N], data: double },
      ];
    },
    ...over,
  };
}

let app: FastifyInstance;
let serverReady = true;
let seenCtx: unknown[] = [];

const backend: V2Backend = {
  server: () => ({ name: 'medfit', version: '0.1.0', extensions: [] }),
  ready: () => serverReady,
  async model(ctx, name, version) {
    seenCtx.push(ctx);
    if (ctx !== 'p1') return undefined; // another project's models are invisible
    if (name === 'summer') return version === undefined || version === '2' ? summer('2') : version === '1' ? summer('1') : undefined;
    if (name === 'lazy') return summer('1', { name: 'lazy', versions: async () => ['1', '5'] });
    if (name === 'cold') return summer('1', { name: 'cold', ready: false });
    if (name === 'broken') return summer('1', { name: 'broken', infer: async () => { throw new Error('engine exploded at 0xdead'); } });
    if (name === 'picky') return summer('1', { name: 'picky', infer: async () => { throw Errors.badData('', 'feature 2 out of range'); } });
    return undefined;
  },
};

beforeEach(async () => {
  serverReady = true;
  seenCtx = [];
  app = Fastify();
  // A sibling JSON route, as the lead's /v1 would be: our parsers must not leak to it.
  app.post('/v1/echo', async (req) => ({ got: req.body }));
  await app.register(v2Plugin, { backend, context: (req) => req.headers['x-project'] ?? 'p1', bodyLimit: 4096 });
  await app.ready();
});
afterEach(async () => {
  await app.close();
});

const H = { 'content-type': 'application/json' };
const infer = (payload: unknown, url = '/v2/models/summer/infer', headers: Record<string, string> = H) =>
  app.inject({ method: 'POST', url, headers, payload: typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload) });
const input = (data: unknown, shape: number[] = [2, 3], datatype = 'FP32') => ({ name: 'input', shape, datatype, data });
const ROWS = [1, 2, 3, 4, 5, 6.5];

function f32le(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

/** Splits a binary response as Triton's Python client does (InferResult). */
function readBinaryResponse(res: { headers: Record<string, unknown>; rawPayload: Buffer }) {
  const n = Number(res.headers[HEADER_LENGTH]);
  const header = JSON.parse(res.rawPayload.subarray(0, n).toString('utf8'));
  const buffer = res.rawPayload.subarray(n);
  const tensors: Record<string, number[]> = {};
  let at = 0;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    const vals: number[] = [];
    for (let k = 0; k < size; k += 4) vals.push(buffer.readFloatLE(at + k));
    tensors[o.name] = vals;
    at += size;
  }
  expect(at).toBe(buffer.length);
  return { header, tensors };
}

describe('health and metadata', () => {
  it('live', async () => {
    const res = await app.inject('/v2/health/live');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ live: true });
  });

  it('ready: 200 when ready, 400 when not', async () => {
    let res = await app.inject('/v2/health/ready');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ready: true });
    serverReady = false;
    res = await app.inject('/v2/health/ready');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ ready: false });
  });

  it('server metadata at /v2 and /v2/, advertising binary_tensor_data', async () => {
    for (const url of ['/v2', '/v2/']) {
      const res = await app.inject(url);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()).toEqual({ name: 'medfit', version: '0.1.0', extensions: ['binary_tensor_data'] });
    }
  });

  it('model metadata, default and explicit version', async () => {
    const want = {
      name: 'summer',
      versions: ['1', '2'],
      platform: 'onnx_onnxv1',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3] }],
      outputs: [
        { name: 'sum', datatype: 'FP32', shape: [-1, 1] },
        { name: 'double', datatype: 'FP32', shape: [-1, 3] },
      ],
    };
    for (const url of ['/v2/models/summer', '/v2/models/summer/versions/1']) {
      const res = await app.inject(url);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(want);
    }
    expect(seenCtx).toEqual(['p1', 'p1']);
    expect((await app.inject('/v2/models/lazy')).json().versions).toEqual(['1', '5']);
  });

  it('unknown model and unknown version are 404 {"error"}', async () => {
    let res = await app.inject('/v2/models/nope');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'model "nope" not found' });
    res = await app.inject('/v2/models/summer/versions/9');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'model "summer" version "9" not found' });
    res = await app.inject({ url: '/v2/models/summer', headers: { 'x-project': 'p2' } });
    expect(res.statusCode).toBe(404);
  });

  it('model ready: 200 / 400 not ready / 404 unknown', async () => {
    let res = await app.inject('/v2/models/summer/ready');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'summer', ready: true });
    res = await app.inject('/v2/models/summer/versions/1/ready');
    expect(res.json()).toEqual({ name: 'summer', ready: true });
    res = await app.inject('/v2/models/cold/ready');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ name: 'cold', ready: false });
    res = await app.inject('/v2/models/nope/versions/1/ready');
    expect(res.statusCode).toBe(404);
    res = await app.inject('/v2/models/summer/versions/7/ready');
    expect(res.statusCode).toBe(404);
  });

  it('an unknown /v2 path is 404 {"error"}', async () => {
    const res = await app.inject('/v2/nothing/here');
    expect(res.statusCode).toBe(404);
    expect(typeof res.json().error).toBe('string');
  });

  it('leaves sibling JSON routes with their own parser', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/echo', headers: H, payload: '{"a":1}' });
    expect(res.json()).toEqual({ got: { a: 1 } });
  });
});

describe('JSON inference', () => {
  it('flat data, id echoed, every output, model_version', async () => {
    const res = await infer({ id: '42', inputs: [input(ROWS)] });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      model_name: 'summer',
      model_version: '2',
      id: '42',
      outputs: [
        { name: 'sum', datatype: 'FP32', shape: [2, 1], data: [6, 15.5] },
        { name: 'double', datatype: 'FP32', shape: [2, 3], data: [2, 4, 6, 8, 10, 13] },
      ],
    });
  });

  it('nested data is the same tensor; no id means none echoed', async () => {
    const res = await infer({ inputs: [input([[1, 2, 3], [4, 5, 6.5]])] }, '/v2/models/summer/versions/1/infer');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.id).toBeUndefined();
    expect(body.model_version).toBe('1');
    expect(body.outputs[0].data).toEqual([6, 15.5]);
  });

  it('requested outputs filter and order the response', async () => {
    const res = await infer({ inputs: [input(ROWS)], outputs: [{ name: 'double' }] });
    expect(res.json().outputs.map((o: { name: string }) => o.name)).toEqual(['double']);
  });

  it('writes FP32 outputs as their shortest decimal', async () => {
    const res = await infer({ inputs: [input([0.1, 0.2, 0.3], [1, 3])], outputs: [{ name: 'double' }] });
    expect(res.body).toContain('"data":[0.2,0.4,0.6]');
  });

  it('accepts application/octet-stream and no content type for plain JSON too', async () => {
    const body = JSON.stringify({ inputs: [input(ROWS)] });
    for (const headers of [{ 'content-type': 'application/octet-stream' }, {}] as Record<string, string>[]) {
      const res = await infer(body, undefined, headers);
      expect(res.statusCode).toBe(200);
    }
  });
});

describe('binary tensor data', () => {
  it('binary input, JSON output (mixed)', async () => {
    const json = JSON.stringify({ id: 'b1', inputs: [{ name: 'input', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } }] });
    const { body, headerLength } = joinBinaryBody(json, [f32le(ROWS)]);
    const res = await infer(body, undefined, { 'content-type': 'application/octet-stream', [HEADER_LENGTH]: String(headerLength) });
    expect(res.statusCode).toBe(200);
    expect(res.headers[HEADER_LENGTH]).toBeUndefined();
    expect(res.json().id).toBe('b1');
    expect(res.json().outputs[0].data).toEqual([6, 15.5]);
  });

  it('misaligned binary input is copied, not misread', async () => {
    const json = JSON.stringify({ inputs: [{ name: 'input', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } }] }) + ' ';
    expect(Buffer.byteLength(json) % 4).not.toBe(0);
    const { body, headerLength } = joinBinaryBody(json, [f32le(ROWS)]);
    const res = await infer(body, undefined, { [HEADER_LENGTH]: String(headerLength) });
    expect(res.json().outputs[0].data).toEqual([6, 15.5]);
  });

  it('JSON input, all outputs binary (binary_data_output)', async () => {
    const res = await infer({ id: 'x', parameters: { binary_data_output: true }, inputs: [input(ROWS)] });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const { header, tensors } = readBinaryResponse(res);
    expect(header).toEqual({
      model_name: 'summer',
      model_version: '2',
      id: 'x',
      outputs: [
        { name: 'sum', datatype: 'FP32', shape: [2, 1], parameters: { binary_data_size: 8 } },
        { name: 'double', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } },
      ],
    });
    expect(tensors).toEqual({ sum: [6, 15.5], double: [2, 4, 6, 8, 10, 13] });
  });

  it('per-output binary_data overrides binary_data_output', async () => {
    const res = await infer({
      parameters: { binary_data_output: true },
      inputs: [input(ROWS)],
      outputs: [{ name: 'sum', parameters: { binary_data: false } }, { name: 'double' }],
    });
    const { header, tensors } = readBinaryResponse(res);
    expect(header.outputs[0]).toEqual({ name: 'sum', datatype: 'FP32', shape: [2, 1], data: [6, 15.5] });
    expect(tensors).toEqual({ double: [2, 4, 6, 8, 10, 13] });
  });

  it("accepts a request built exactly as Triton's Python client builds it", async () => {
    // tritonclient.http: InferInput('input', [2, 3], 'FP32').set_data_from_numpy(x, binary_data=True);
    // InferRequestedOutput('sum', binary_data=True); json.dumps (", " and ": " separators);
    // struct.pack('{}s{}s', json, raw); header Inference-Header-Content-Length = len(json); no Content-Type.
    const json =
      '{"id": "7", "inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}], ' +
      '"outputs": [{"name": "sum", "parameters": {"binary_data": true}}]}';
    const body = Buffer.concat([Buffer.from(json), f32le(ROWS)]);
    const res = await infer(body, undefined, { [HEADER_LENGTH]: String(json.length) });
    expect(res.statusCode).toBe(200);
    const { header, tensors } = readBinaryResponse(res);
    expect(header.id).toBe('7');
    expect(header.outputs).toHaveLength(1);
    expect(tensors).toEqual({ sum: [6, 15.5] });

    // With no outputs listed the client asks for all of them in binary at the request level.
    const json2 =
      '{"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}], ' +
      '"parameters": {"binary_data_output": true}}';
    const res2 = await infer(Buffer.concat([Buffer.from(json2), f32le(ROWS)]), undefined, { [HEADER_LENGTH]: String(json2.length) });
    expect(res2.statusCode).toBe(200);
    expect(readBinaryResponse(res2).tensors).toEqual({ sum: [6, 15.5], double: [2, 4, 6, 8, 10, 13] });
  });
});

describe('bad requests', () => {
  const bad = async (payload: unknown, status: number, match: RegExp, url?: string, headers?: Record<string, string>) => {
    const res = await infer(payload, url, headers);
    expect(res.statusCode).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(Object.keys(body)).toEqual(['error']);
    expect(body.error).toMatch(match);
    return body.error as string;
  };
  const binHeaders = (n: number) => ({ [HEADER_LENGTH]: String(n) });
  const binJson = (size: number) =>
    JSON.stringify({ inputs: [{ name: 'input', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: size } }] });

  it('invalid JSON, without quoting the body', async () => {
    const err = await bad('{"inputs": [secret-value', 400, /not valid JSON/);
    expect(err).not.toContain('secret');
  });
  it('empty body', () => bad('', 400, /empty/));
  it('not an object', () => bad('[1]', 400, /JSON object/));
  it('missing or empty inputs', async () => {
    await bad({}, 400, /"inputs"/);
    await bad({ inputs: [] }, 400, /"inputs"/);
  });
  it('unknown input name', () => bad({ inputs: [{ ...input(ROWS), name: 'x' }] }, 400, /unknown input "x"/));
  it('input given twice', () => bad({ inputs: [input(ROWS), input(ROWS)] }, 400, /twice/));
  it('wrong datatype, named', () => bad({ inputs: [input(ROWS, [2, 3], 'FP64')] }, 400, /datatype FP64; the model expects FP32/));
  it('wrong shape', async () => {
    await bad({ inputs: [input(ROWS, [3, 2])] }, 400, /shape \[3,2\]; the model expects \[-1,3\]/);
    await bad({ inputs: [input(ROWS, [6])] }, 400, /2 dimensions/);
    await bad({ inputs: [input([], [0, 3])] }, 400, /no elements/);
    await bad({ inputs: [input(ROWS, [2.5, 3])] }, 400, /non-negative integers/);
  });
  it('data length does not match the shape', async () => {
    await bad({ inputs: [input([1, 2, 3, 4, 5], [2, 3])] }, 400, /5 elements but shape \[2,3\] needs 6/);
    await bad({ inputs: [input([[1, 2, 3], [4, 5]])] }, 400, /dimension 1/);
    await bad({ inputs: [input([[1, 2, 3]])] }, 400, /1 rows/);
    await bad({ inputs: [input([1, 2, 3, [4], 5, 6])] }, 400, /element 3 is not a number/);
  });
  it('non-numbers and non-finite numbers', async () => {
    await bad({ inputs: [input([1, 2, 'x', 4, 5, 6])] }, 400, /element 2 is not a number/);
    await bad('{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,1e400,2]}]}', 400, /element 1 is not a finite/);
    await bad({ inputs: [input([1, 2, 1e39], [1, 3])] }, 400, /element 2 is not a finite FP32/);
  });
  it('neither data nor binary_data_size', () => bad({ inputs: [{ name: 'input', shape: [2, 3], datatype: 'FP32' }] }, 400, /neither/));
  it('bad id, parameters and outputs', async () => {
    await bad({ id: 42, inputs: [input(ROWS)] }, 400, /"id"/);
    await bad({ parameters: { binary_data_output: 'yes' }, inputs: [input(ROWS)] }, 400, /binary_data_output must be a boolean/);
    await bad({ inputs: [input(ROWS)], outputs: [{ name: 'nope' }] }, 400, /unknown output "nope"/);
    await bad({ inputs: [input(ROWS)], outputs: [{ name: 'sum' }, { name: 'sum' }] }, 400, /twice/);
  });
  it('unknown model and version are 404', async () => {
    await bad({ inputs: [input(ROWS)] }, 404, /model "nope" not found/, '/v2/models/nope/infer');
    await bad({ inputs: [input(ROWS)] }, 404, /model "summer" version "3" not found/, '/v2/models/summer/versions/3/infer');
  });
  it('a model that is not ready is 503 with Retry-After', async () => {
    await bad({ inputs: [input(ROWS)] }, 503, /not ready/, '/v2/models/cold/infer');
    expect((await infer({ inputs: [input(ROWS)] }, '/v2/models/cold/infer')).headers['retry-after']).toBe('1');
  });
  it('a model error: 4xx passes, anything else is a bare 500', async () => {
    await bad({ inputs: [input(ROWS)] }, 422, /feature 2 out of range/, '/v2/models/picky/infer');
    const err = await bad({ inputs: [input(ROWS)] }, 500, /internal server error/, '/v2/models/broken/infer');
    expect(err).not.toContain('0xdead');
  });

  it('truncated binary body names what is short', async () => {
    const json = binJson(24);
    const body = Buffer.concat([Buffer.from(json), f32le([1, 2, 3, 4])]);
    await bad(body, 400, /short: input "input" declares 24 bytes of binary data but only 16 follow/, undefined, binHeaders(json.length));
  });
  it('header length beyond the body', async () => {
    const json = binJson(24);
    const body = Buffer.concat([Buffer.from(json), f32le(ROWS)]);
    await bad(body, 400, /Inference-Header-Content-Length is 1000 but the body has only \d+ bytes/, undefined, binHeaders(1000));
    await bad(body, 400, /byte count/, undefined, { [HEADER_LENGTH]: '-3' });
    // A header length that cuts the JSON short is invalid JSON.
    await bad(body, 400, /not valid JSON/, undefined, binHeaders(json.length - 2));
  });
  it('binary_data_size that disagrees with the shape, or bytes left over', async () => {
    const j20 = binJson(20);
    await bad(Buffer.concat([Buffer.from(j20), f32le(ROWS)]), 400, /binary_data_size is 20 bytes but shape \[2,3\] of FP32 needs 24/, undefined, binHeaders(j20.length));
    const json = binJson(24);
    await bad(Buffer.concat([Buffer.from(json), f32le([...ROWS, 7])]), 400, /4 bytes after/, undefined, binHeaders(json.length));
  });
  it('binary_data_size without the header, or with data too', async () => {
    await bad(binJson(24), 400, /no Inference-Header-Content-Length/);
    const json = JSON.stringify({ inputs: [{ ...input(ROWS), parameters: { binary_data_size: 24 } }] });
    await bad(Buffer.concat([Buffer.from(json), f32le(ROWS)]), 400, /both "data" and/, undefined, binHeaders(json.length));
  });
  it('NaN and Infinity in binary FP32 data', async () => {
    const json = binJson(24);
    for (const v of [NaN, Infinity, -Infinity]) {
      const body = Buffer.concat([Buffer.from(json), f32le([1, 2, 3, 4, v, 6])]);
      await bad(body, 400, /element 4 is not a finite number/, undefined, binHeaders(json.length));
    }
  });
  it('a body over the limit is 413 {"error"}', () => bad({ inputs: [input(new Array(3000).fill(1), [1000, 3])] }, 413, /./));
});

describe('the inference fast path over a real port', () => {
  let url = '';
  let server: Server;
  let ready = true;
  beforeEach(async () => {
    ready = true;
    const fast = createInferFastPath({
      backend,
      authenticate: async (authorization) => {
        if (authorization !== 'Bearer ok') throw Errors.unauthorized('missing API key');
        return 'p1';
      },
      bodyLimit: 4096,
      ready: () => ready,
    });
    server = createServer((req, res) => {
      if (!fast(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: 'POST', headers: { authorization: 'Bearer ok', 'content-type': 'application/json', ...headers }, body });

  it('answers 503 with Retry-After when the model is not ready or the server is shutting down', async () => {
    const cold = await post('/v2/models/cold/infer', JSON.stringify({ inputs: [input(ROWS)] }));
    expect(cold.status).toBe(503);
    expect(cold.headers.get('retry-after')).toBe('1');
    expect(await cold.json()).toEqual({ error: expect.stringMatching(/not ready/) });
    ready = false;
    const closing = await post('/v2/models/summer/infer', JSON.stringify({ inputs: [input(ROWS)] }));
    expect(closing.status).toBe(503);
    expect(closing.headers.get('retry-after')).toBe('1');
    ready = true;
    expect((await post('/v2/models/summer/infer', JSON.stringify({ inputs: [input(ROWS)] }))).status).toBe(200);
  });
});
