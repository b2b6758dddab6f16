/**
 * What the web app's dataset pages read, over a real port: the stored profile's histograms and
 * personal-identifier flags, and one session of a sensor dataset over time
 * (`GET /v1/datasets/{id}/series`), downsampled with min/max per bucket, with its label track,
 * and its bad paths (parameters, a table that is not a sensor dataset, another project's dataset).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { FITNESS_ACTIVITIES } from '../src/sequence/index.js';
import { synthFitnessCsv } from '../src/sequence/synth.js';
import { tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-dataset-views-0123456789';
const dataDir = join(tempDir(), 'data');
const CHANNELS = ['ax', 'ay', 'az', 'gx', 'gy', 'gz', 'hr'];

const synthText = Buffer.concat([...synthFitnessCsv({ subjects: 2, seconds: 10, rate: 25 })]).toString('latin1');
const synthLines = synthText.trim().split('\n');
const header = synthLines[0]!.split(',');
const synthRows = synthLines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, j) => [header[j]!, v])));
/** One synthetic session's rows (sessions s01-a, s01-b, s02-a, s02-b, in that order in the file). */
const rowsOf = (session: string) => synthRows.filter((r) => r['session'] === session);

let server: Server;
let base: string;
let sensorId: string;
let tableId: string;
let gapsId: string;

async function call(path: string, init: { key?: string | null; body?: string; type?: string } = {}) {
  const headers: Record<string, string> = {};
  if (init.key !== null) headers['authorization'] = `Bearer ${init.key ?? ADMIN}`;
  if (init.type) headers['content-type'] = init.type;
  const res = await fetch(`${base}${path}`, { method: init.body !== undefined ? 'POST' : 'GET', headers, ...(init.body !== undefined ? { body: init.body } : {}) });
  const text = await res.text();
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body };
}

async function upload(name: string, csv: string): Promise<string> {
  const r = await call(`/v1/datasets?name=${name}`, { body: csv, type: 'text/csv' });
  expect(r.status).toBe(201);
  return r.body['id'] as string;
}

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  sensorId = await upload('fitness.csv', synthText);
  const people = ['patient_name,email,date_of_birth,visits,glucose,outcome'];
  for (let i = 0; i < 60; i++) people.push(`N${i},p${i}@example.org,19${50 + (i % 40)}-01-0${1 + (i % 9)},${i % 6},${80 + ((i * 37) % 90) + (i === 5 ? 900 : 0)},${i % 3 === 0 ? 'yes' : 'no'}`);
  tableId = await upload('clinic.csv', people.join('\n') + '\n');
  // One subject, no session column; relative seconds; a gap, missing values and a label column.
  const gaps = ['subject,t,x,z,state'];
  for (let i = 0; i < 40; i++) gaps.push(`a,${i < 20 ? i * 0.5 : 30 + i * 0.5},${i === 3 ? 500 : i % 5},${i >= 10 && i < 20 ? '' : -i},${i < 25 ? 'rest' : 'move'}`);
  gapsId = await upload('gaps.csv', gaps.join('\n') + '\n');
}, 60_000);
afterAll(async () => server?.close());

describe('the dataset profile for the web page', () => {
  it('has a histogram per numeric column and flags possible personal identifiers', async () => {
    const r = await call(`/v1/datasets/${tableId}`);
    expect(r.status).toBe(200);
    const cols = Object.fromEntries((r.body['profile']['columns'] as Array<Record<string, any>>).map((c) => [c['name'], c]));
    expect(cols['patient_name']!['identifier']).toBe("the name suggests a person's name");
    expect(cols['email']!['identifier']).toBe('the name suggests an email address');
    expect(cols['date_of_birth']!['identifier']).toBe('the name suggests a date of birth');
    for (const c of ['visits', 'glucose', 'outcome']) expect(cols[c]!['identifier']).toBeUndefined();
    // visits: 0..5, one bin per value.
    expect(cols['visits']!['histogram']).toEqual({ edges: [-0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5], counts: [10, 10, 10, 10, 10, 10], below: 0, above: 0, exact: true });
    const g = cols['glucose']!['histogram'] as { edges: number[]; counts: number[]; below: number; above: number; exact: boolean };
    expect(g.edges.every((e, i) => i === 0 || e > g.edges[i - 1]!)).toBe(true);
    expect(g.counts.reduce((a, b) => a + b, 0) + g.below + g.above).toBe(60);
    expect(g.above).toBe(1); // the 980 typed among values of 80..169
    expect(cols['glucose']!['outliers']).toBe(1);
    expect(cols['outcome']!['histogram']).toBeUndefined();
  });
});

describe('GET /v1/datasets/{id}/series', () => {
  it('returns session 0 (the default) whole when it fits, with its channels and label track', async () => {
    const r = await call(`/v1/datasets/${sensorId}/series?points=5000`);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^application\/json/);
    const s = r.body;
    const rows = rowsOf('s01-a');
    expect(s).toMatchObject({ subject: 's01', session: 's01-a', index: 0, sessions: 4, samples: rows.length, bucket: 1, timeUnit: 'ms' });
    expect(s['start']).toBe(Number(rows[0]!['t']) / 1000);
    expect(s['seconds']).toHaveLength(rows.length);
    expect(s['seconds'][1]).toBeCloseTo(0.04, 9);
    expect(s['channels'].map((c: { name: string }) => c.name)).toEqual(CHANNELS);
    const ax = s['channels'][0] as { min: number[]; max: number[] };
    expect(ax.min).toEqual(rows.map((r) => Number(r['ax'])));
    expect(ax.max).toEqual(ax.min);
    expect(s['labels']['name']).toBe('activity');
    expect(s['labels']['values']).toEqual(rows.map((r) => r['activity']));
    expect(new Set(s['labels']['values'])).toEqual(new Set(FITNESS_ACTIVITIES));
  });

  it('downsamples to at most `points` buckets, keeping each bucket\'s extremes (spikes survive)', async () => {
    const r = await call(`/v1/datasets/${sensorId}/series?session=3&points=100`);
    expect(r.status).toBe(200);
    const s = r.body;
    const rows = rowsOf('s02-b');
    const size = Math.ceil(rows.length / 100);
    expect(s).toMatchObject({ subject: 's02', session: 's02-b', index: 3, samples: rows.length, bucket: size });
    expect(s['seconds'].length).toBeLessThanOrEqual(100);
    expect(s['seconds'].length).toBe(Math.ceil(rows.length / size));
    for (const [c, name] of CHANNELS.entries()) {
      const ch = s['channels'][c] as { name: string; min: number[]; max: number[] };
      expect(ch.name).toBe(name);
      expect(ch.min).toHaveLength(s['seconds'].length);
      for (let b = 0; b < ch.min.length; b++) {
        const values = rows.slice(b * size, (b + 1) * size).map((r) => Number(r[name]));
        expect(ch.min[b]).toBe(Math.min(...values));
        expect(ch.max[b]).toBe(Math.max(...values));
      }
    }
    for (let b = 1; b < s['seconds'].length; b++) expect(s['seconds'][b]).toBeGreaterThan(s['seconds'][b - 1]);
    expect(s['labels']['values']).toHaveLength(s['seconds'].length);
  });

  it('keeps gaps in time, missing buckets as null, and reads a chosen label column', async () => {
    const s = (await call(`/v1/datasets/${gapsId}/series?points=20`)).body;
    expect(s).toMatchObject({ subject: 'a', session: '', sessions: 1, samples: 40, bucket: 2, timeUnit: 's', start: 0 });
    expect(s['seconds'].slice(9, 11)).toEqual([9, 40]);
    const [x, z] = s['channels'] as Array<{ name: string; min: Array<number | null>; max: Array<number | null> }>;
    expect(x!.name).toBe('x');
    expect(x!.max[1]).toBe(500);
    expect(z!.name).toBe('z');
    expect(z!.min.slice(4, 11)).toEqual([-9, null, null, null, null, null, -21]);
    expect(z!.max.slice(4, 11)).toEqual([-8, null, null, null, null, null, -20]);
    expect(s['labels']).toEqual({ name: 'state', values: [...Array(12).fill('rest'), 'rest', ...Array(7).fill('move')] });
    const none = (await call(`/v1/datasets/${gapsId}/series?label=x`)).body;
    expect(none['channels'].map((c: { name: string }) => c.name)).toEqual(['z']);
    expect(none['labels']['name']).toBe('x');
  });

  it('answers a read-only key of the project', async () => {
    const reader = await createKey(server.services.store, 'default', ['read'], 'reader');
    expect((await call(`/v1/datasets/${sensorId}/series?points=5`, { key: reader.key })).status).toBe(200);
  });

  it('refuses bad parameters with a problem naming the parameter', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['session=4', '/querystring/session', /0 to 3 \(fitness\.csv has 4 sessions\)/],
      ['session=-1', '/querystring/session', /whole number/],
      ['session=abc', '/querystring/session', /whole number/],
      ['session=1.5', '/querystring/session', /whole number/],
      ['points=0', '/querystring/points', /1 to 5000/],
      ['points=5001', '/querystring/points', /1 to 5000/],
      ['points=lots', '/querystring/points', /1 to 5000/],
      ['label=heart', '/querystring/label', /no column "heart"/],
      ['label=subject', '/querystring/label', /is the subject column/],
    ];
    for (const [query, pointer, message] of cases) {
      const r = await call(`/v1/datasets/${sensorId}/series?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.type).toMatch(/^application\/problem\+json/);
      expect(r.body['errors'][0]['pointer'], query).toBe(pointer);
      expect(r.body['detail'], query).toMatch(message);
    }
    const extra = await call(`/v1/datasets/${sensorId}/series?sessions=1`);
    expect(extra.status).toBe(400);
    expect(extra.body['errors'][0]['pointer']).toBe('/querystring/sessions');
  });

  it('refuses a table that is not a sensor dataset, and hides other projects\' datasets', async () => {
    const table = await call(`/v1/datasets/${tableId}/series`);
    expect(table.status).toBe(409);
    expect(table.body['detail']).toMatch(/^dataset "clinic\.csv" is not a sensor dataset: it has no subject column/);
    const other = await createKey(server.services.store, 'other-clinic', ['admin'], 'other');
    const theirs = await call(`/v1/datasets/${sensorId}/series`, { key: other.key });
    expect(theirs.status).toBe(404);
    expect(theirs.body['detail']).toBe('dataset not found');
    expect((await call('/v1/datasets/no-such-id/series')).status).toBe(404);
    expect((await call(`/v1/datasets/${sensorId}/series`, { key: null })).status).toBe(401);
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = (await call('/docs/json')).body;
    const op = doc['paths']?.['/v1/datasets/{id}/series']?.['get'];
    expect(op).toBeDefined();
    expect(op['parameters'].map((p: { name: string }) => p.name).sort()).toEqual(['id', 'label', 'points', 'session']);
    expect(Object.keys(op['responses']['200']['content']['application/json']['schema']['properties'])).toEqual(expect.arrayContaining(['seconds', 'channels', 'labels']));
  });
});
