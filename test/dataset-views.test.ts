/**
 * What the web app's dataset pages read, over a real port: the stored profile's histograms and
 * personal-identifier flags (their values left out), and one session of a sensor dataset over
 * time (`GET /v1/datasets/{id}/series`), downsampled with min/max per bucket, with its label
 * track, and its bad paths (parameters, a table that is not a sensor dataset, another project's
 * dataset). The series is record-level data: the train scope, a label track that never shows an
 * identifier or a per-record value, pseudonyms for an identifying subject, no caching, a bounded
 * line of waiting requests, and requests dropped when their client goes away.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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
let phiId: string;
let onlyNamesId: string;
let pseudoId: string;
let manySessionsId: string;
let trainer: string;
let reader: string;

/** The repro of the review: names and HIV status beside the channels (two subjects, 60 samples each). */
const NAMES = ['Alice Example', 'Bob Sample'];
const phi = ['subject,t,heart_rate,glucose,patient_name,hiv_status,zone'];
for (let i = 0; i < 120; i++) phi.push(`s${i < 60 ? 1 : 2},${i % 60},${60 + (i % 7)},${90 + (i % 11)},${NAMES[i < 60 ? 0 : 1]},${i < 60 ? 'positive' : 'negative'},z${i % 60}`);
/** Subjects named by record-like codes (subject_id: flagged), sessions named after them. */
const pseudo = ['subject_id,session,t,hr,state'];
for (const [k, code] of ['P-0417', 'P-0932', 'P-1288'].entries()) {
  for (const part of ['am', 'pm']) for (let i = 0; i < 20; i++) pseudo.push(`${code},${code}-${part},${i},${70 + k + (i % 5)},${i < 10 ? 'rest' : 'walk'}`);
}

async function call(path: string, init: { key?: string | null; body?: string | Buffer; type?: string; signal?: AbortSignal } = {}) {
  const headers: Record<string, string> = {};
  if (init.key !== null) headers['authorization'] = `Bearer ${init.key ?? ADMIN}`;
  if (init.type) headers['content-type'] = init.type;
  const res = await fetch(`${base}${path}`, {
    method: init.body !== undefined ? 'POST' : 'GET',
    headers,
    ...(init.body !== undefined ? { body: init.body } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const text = await res.text();
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(text) as Record<string, any>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', headers: res.headers, text, body };
}

async function upload(name: string, csv: string | Buffer): Promise<string> {
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
  phiId = await upload('phi.csv', phi.join('\n') + '\n');
  const names = ['subject,t,x,patient_name'];
  for (let i = 0; i < 20; i++) names.push(`a,${i},${i % 4},${NAMES[i % 2]}`);
  onlyNamesId = await upload('names.csv', names.join('\n') + '\n');
  pseudoId = await upload('pseudo.csv', pseudo.join('\n') + '\n');
  const many = ['subject,session,t,x'];
  for (let k = 0; k < 12; k++) for (let i = 0; i < 5; i++) many.push(`${k < 6 ? 'a' : 'b'},day-${String(k + 1).padStart(2, '0')},${i},${(k + i) % 3}`);
  manySessionsId = await upload('many-sessions.csv', many.join('\n') + '\n');
  trainer = (await createKey(server.services.store, 'default', ['train'], 'trainer')).key;
  reader = (await createKey(server.services.store, 'default', ['read'], 'reader')).key;
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

  it('leaves the values of flagged columns out (no top names, no dates of birth), keeping their counts, and is not cached', async () => {
    const r = await call(`/v1/datasets/${tableId}`);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const cols = Object.fromEntries((r.body['profile']['columns'] as Array<Record<string, any>>).map((c) => [c['name'], c]));
    for (const name of ['patient_name', 'email', 'date_of_birth']) {
      for (const k of ['top', 'min', 'max', 'mean', 'std', 'q1', 'median', 'q3', 'histogram']) expect(cols[name]![k], `${name}.${k}`).toBeUndefined();
      expect(cols[name]).toMatchObject({ missing: 0, distinct: expect.any(Number) });
    }
    expect(cols['patient_name']!['distinct']).toBe(60);
    expect(cols['date_of_birth']!['type']).toBe('datetime');
    // Unflagged columns keep theirs.
    expect(cols['outcome']!['top']).toEqual([{ value: false, count: 40 }, { value: true, count: 20 }]);
    expect(cols['glucose']!['min']).toBe(80);
    expect(r.text).not.toMatch(/N17|p3@example\.org|1951-01/);
  });

  it('leaves them out of a profile stored before they were left out', async () => {
    const project = readdirSync(join(dataDir, 'datasets')).find((d) => existsSync(join(dataDir, 'datasets', d, `${tableId}.csv.profile.json`)))!;
    const file = join(dataDir, 'datasets', project, `${tableId}.csv.profile.json`);
    const stored = readFileSync(file, 'utf8');
    try {
      const old = JSON.parse(stored) as { columns: Array<Record<string, unknown>>; target?: unknown };
      const name = old.columns.find((c) => c['name'] === 'patient_name')!;
      Object.assign(name, { top: [{ value: 'N17', count: 1 }], min: 1, max: 2, mean: 1.5, histogram: { edges: [1, 2], counts: [1], below: 0, above: 0, exact: true } });
      old.target = { column: 'patient_name', type: 'categorical', balance: { N17: 1 } };
      writeFileSync(file, JSON.stringify(old));
      const r = await call(`/v1/datasets/${tableId}`);
      expect(r.status).toBe(200);
      const cols = Object.fromEntries((r.body['profile']['columns'] as Array<Record<string, any>>).map((c) => [c['name'], c]));
      for (const k of ['top', 'min', 'max', 'mean', 'histogram']) expect(cols['patient_name']![k], k).toBeUndefined();
      expect(cols['patient_name']!['distinct']).toBe(60);
      expect(r.body['profile']['target']).toEqual({ column: 'patient_name', type: 'categorical' });
      expect(r.text).not.toMatch(/N17/);
    } finally {
      writeFileSync(file, stored);
    }
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
    const chosen = (await call(`/v1/datasets/${gapsId}/series?label=state&points=20`)).body;
    expect(chosen['labels']).toEqual(s['labels']);
  });

  it('needs the train scope: a read-only key gets a 403 naming it; a train key gets the series, not cached', async () => {
    const r = await call(`/v1/datasets/${sensorId}/series?points=5`, { key: reader });
    expect(r.status).toBe(403);
    expect(r.type).toMatch(/^application\/problem\+json/);
    expect(r.body['detail']).toMatch(/"train" scope/);
    expect(r.text).not.toMatch(/s01/);
    const ok = await call(`/v1/datasets/${sensorId}/series?points=5`, { key: trainer });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('cache-control')).toBe('no-store');
    // The read key still reads the dataset's page (its profile), uncached too.
    const detail = await call(`/v1/datasets/${sensorId}`, { key: reader });
    expect(detail.status).toBe(200);
    expect(detail.headers.get('cache-control')).toBe('no-store');
  });

  it('never shows an identifier, a measurement or a many-valued column as the label track (400, no values quoted)', async () => {
    const cases: Array<[string, RegExp]> = [
      ['patient_name', /"patient_name" is an identifier column; a label track takes a categorical or boolean column/],
      ['heart_rate', /"heart_rate" is an integer column; a label track takes a categorical or boolean column/],
      ['glucose', /"glucose" is an integer column/],
      ['zone', /"zone" has 60 distinct values; a label track takes a column of at most 50/],
    ];
    for (const [label, message] of cases) {
      const r = await call(`/v1/datasets/${phiId}/series?session=1&points=5&label=${label}`, { key: trainer });
      expect(r.status, label).toBe(400);
      expect(r.body['errors'][0]['pointer'], label).toBe('/querystring/label');
      expect(r.body['detail'], label).toMatch(message);
      expect(r.text, label).not.toMatch(/Alice|Bob|positive|negative|z1\b/);
    }
    // The repro: the default label skips patient_name for the first qualifying column.
    const r = await call(`/v1/datasets/${phiId}/series?session=1&points=5`, { key: trainer });
    expect(r.status).toBe(200);
    expect(r.body['labels']['name']).toBe('hiv_status');
    expect(r.body['channels'].map((c: { name: string }) => c.name)).toEqual(['heart_rate', 'glucose']);
    expect(r.text).not.toMatch(/Alice|Bob/);
    // No column qualifies: no label track at all.
    const none = await call(`/v1/datasets/${onlyNamesId}/series?points=5`, { key: trainer });
    expect(none.status).toBe(200);
    expect(none.body['labels']).toBeUndefined();
    expect(none.text).not.toMatch(/Alice|Bob/);
  });

  it('answers a subject column that may identify a person with pseudonyms by index, sessions too', async () => {
    const sessions: Array<[number, string, string]> = [
      [0, 'subject 0', 'session 0'],
      [1, 'subject 0', 'session 1'],
      [2, 'subject 1', 'session 2'],
      [5, 'subject 2', 'session 5'],
    ];
    for (const [index, subject, session] of sessions) {
      const r = await call(`/v1/datasets/${pseudoId}/series?session=${index}`, { key: trainer });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ subject, session, index, sessions: 6, samples: 20 });
      expect(r.body['labels']['name']).toBe('state');
      expect(r.text).not.toMatch(/P-0/);
    }
    // An unflagged subject column keeps its values (two subjects: not identifier-like).
    expect((await call(`/v1/datasets/${sensorId}/series?points=5`)).body['subject']).toBe('s01');
    // A flagged session column alone (twelve recordings named after their day) makes only the session a pseudonym.
    const r = await call(`/v1/datasets/${manySessionsId}/series?session=7`, { key: trainer });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ subject: 'b', session: 'session 7', index: 7, sessions: 12 });
    expect(r.text).not.toMatch(/day-/);
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

describe('the series readers: a bounded line, and requests dropped when their client goes away', () => {
  let bigId: string;
  /** Milliseconds one series of the big dataset takes alone, and one of a small dataset (mostly starting its worker). */
  let alone: number;
  let quick: number;

  beforeAll(async () => {
    // About 44 MB: a series of it reads for seconds, long enough to keep both readers busy.
    bigId = await upload('big.csv', Buffer.concat([...synthFitnessCsv({ subjects: 5, seconds: 150, rate: 50 })]));
    let t0 = performance.now();
    expect((await call(`/v1/datasets/${bigId}/series?points=10`)).status).toBe(200);
    alone = performance.now() - t0;
    t0 = performance.now();
    expect((await call(`/v1/datasets/${gapsId}/series?points=20`)).status).toBe(200);
    quick = performance.now() - t0;
  }, 180_000);

  /** A series request of the big dataset that can be dropped; `settled` says whether it was answered. */
  function start() {
    const ac = new AbortController();
    const r = { settled: false, abort: () => ac.abort(), done: Promise.resolve(null as Awaited<ReturnType<typeof call>> | null) };
    r.done = call(`/v1/datasets/${bigId}/series?points=10`, { signal: ac.signal }).then(
      (res) => {
        r.settled = true;
        return res;
      },
      (e: Error) => {
        if (e.name === 'AbortError') return null;
        throw e;
      },
    );
    return r;
  }

  it('refuses the 9th waiting request with a 503 and Retry-After, and forgets requests dropped while they wait', async () => {
    // Two read, eight wait: the eleventh is refused at once.
    const first = Array.from({ length: 11 }, () => start());
    const refused = (await Promise.race(first.map((r) => r.done)))!;
    expect(refused.status).toBe(503);
    expect(refused.type).toMatch(/^application\/problem\+json/);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.body['detail']).toMatch(/8 series requests are already waiting/);
    await sleep(200);
    expect(first.filter((r) => r.settled)).toHaveLength(1);
    for (const r of first) r.abort();
    await Promise.all(first.map((r) => r.done));
    await sleep(500);
    // The ten dropped requests left the line and the readers: ten more fit again.
    const second = Array.from({ length: 10 }, () => start());
    await sleep(Math.min(1000, alone / 3));
    expect(second.filter((r) => r.settled)).toHaveLength(0);
    for (const r of second) r.abort();
    await Promise.all(second.map((r) => r.done));
    await sleep(500);
  }, 120_000);

  it('terminates the reader of a request whose client went away, so the next one is answered at once', async () => {
    const dropped = Array.from({ length: 4 }, () => start());
    await sleep(Math.min(500, alone / 4));
    for (const r of dropped) r.abort();
    await Promise.all(dropped.map((r) => r.done));
    expect(dropped.filter((r) => r.settled)).toHaveLength(0);
    await sleep(200);
    const t0 = performance.now();
    const small = await call(`/v1/datasets/${gapsId}/series?points=20`);
    const took = performance.now() - t0;
    expect(small.status).toBe(200);
    // Dropped, the four leave nothing behind: it takes about `quick`. Left running, the two
    // readers would hold it for most of a big read and the two waiting for another. The bound,
    // `alone`, is about `quick` plus one big read: a read's length of margin either way.
    expect(took, `a small series took ${Math.round(took)} ms (${Math.round(quick)} ms idle; the big dataset's ${Math.round(alone)} ms)`).toBeLessThan(alone);
  }, 120_000);
});
