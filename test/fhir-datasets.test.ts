/**
 * FHIR datasets over a real port, beyond the happy path the PHI and Pima tests walk: the import's
 * warnings, the lineage a dataset shows, each project's own pseudonyms, refusals (an onset column
 * with de-identification, a FIT file with deidentify=true, a spec past the query's limit), and
 * nothing of a refused or finished upload left in the data folder.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { fixture, tempDir } from './helpers.js';

const ADMIN = 'fhir-datasets-admin-key-0123456789';
const dataDir = join(tempDir(), 'data');
let server: Server;
let base: string;
let otherKey: string;

const SPEC = JSON.parse(readFileSync(fixture('fhir/pima.features.json'), 'utf8')) as Record<string, unknown>;
const patients = gunzipSync(readFileSync(fixture('fhir/pima/Patient.ndjson.gz'))).toString('utf8').split('\n').slice(0, 40).join('\n') + '\n';
const observations = gunzipSync(readFileSync(fixture('fhir/pima/Observation.ndjson.gz')))
  .toString('utf8')
  .split('\n')
  .filter(Boolean);

async function upload(query: string, body: string | Buffer, type: string, key = ADMIN): Promise<{ status: number; body: Record<string, any> }> {
  const r = await fetch(`${base}/v1/datasets?${query}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': type }, body });
  return { status: r.status, body: (await r.json()) as Record<string, any> };
}

const q = (name: string, spec: unknown = SPEC) => `name=${name}&features=${encodeURIComponent(JSON.stringify(spec))}`;

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent', MEDFIT_DEID_KEY: 'fhir-datasets-deid-key-0123456789abcdef' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  otherKey = (await createKey(server.services.store, 'clinic-b', ['admin', 'train', 'read'], 'b')).key;
}, 60_000);

afterAll(async () => {
  await server?.close();
});

describe('FHIR datasets', () => {
  it('warns about columns no patient has, and shows the spec that made the table', async () => {
    // Patients only: every Observation feature is empty, the label 0 for everyone.
    const r = await upload(q('patients-only'), patients, 'application/fhir+ndjson');
    expect(r.status).toBe(201);
    expect(r.body['rows']).toBe(40);
    expect(r.body['warnings']).toEqual(expect.arrayContaining([expect.stringMatching(/column "glucose" has no value for any patient/), expect.stringMatching(/label "diabetes" is 0 for every patient/)]));
    const d = await fetch(`${base}/v1/datasets/${r.body['id']}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const shown = (await d.json()) as { fhir: { features: { index: string }; deidentified: boolean } };
    expect(shown.fhir).toEqual({ features: SPEC, deidentified: true });
  });

  it('pseudonymises each project with its own key: the same export gives other ids in another project', async () => {
    const ids = new Set(patients.trim().split('\n').map((l) => `Patient/${(JSON.parse(l) as { id: string }).id}`));
    const theirs = observations.filter((l) => ids.has((JSON.parse(l) as { subject: { reference: string } }).subject.reference));
    const body = patients + theirs.join('\n') + '\n';
    const a = await upload(q('a'), body, 'application/fhir+ndjson');
    const b = await upload(q('b'), body, 'application/fhir+ndjson', otherKey);
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    const firstIds = (id: string, projectDir: string) => {
      const csv = readFileSync(join(dataDir, 'datasets', projectDir, `${id}.csv`), 'utf8').trim().split('\n').slice(1);
      return csv.map((l) => l.split(',')[0]);
    };
    const dirs = readdirSync(join(dataDir, 'datasets'));
    const idsA = dirs.flatMap((p) => readdirSync(join(dataDir, 'datasets', p)).includes(`${a.body['id']}.csv`) ? firstIds(a.body['id'], p) : []);
    const idsB = dirs.flatMap((p) => readdirSync(join(dataDir, 'datasets', p)).includes(`${b.body['id']}.csv`) ? firstIds(b.body['id'], p) : []);
    expect(idsA).toHaveLength(40);
    expect(idsB).toHaveLength(40);
    expect(idsA.filter((x) => idsB.includes(x))).toEqual([]);
  });

  it('refuses an onset-date column with de-identification, and takes it without', async () => {
    const spec = { index: '2025-07-01', patient: { sex: false }, conditions: [{ name: 'dm_onset', codes: ['http://snomed.info/sct|44054006'], as: 'onset' }] };
    const refused = await upload(q('onset', spec), patients, 'application/fhir+ndjson');
    expect(refused.status).toBe(422);
    expect(refused.body['resourceType']).toBe('OperationOutcome');
    expect(refused.body['issue'][0]['diagnostics']).toMatch(/\/conditions\/0\/as: "onset" gives dates, which de-identification shifts/);
    const plain = await upload(`${q('onset-plain', spec)}&deidentify=false`, patients, 'application/fhir+ndjson');
    expect(plain.status).toBe(201);
    expect(plain.body['fhir']).toEqual({ resources: 40, deidentified: false });
  });

  it('refuses deidentify=true for a FIT file, and a spec longer than the query takes', async () => {
    const fit = await upload('name=run.fit&deidentify=true', Buffer.from('not really fit'), 'application/vnd.ant.fit');
    expect(fit.status).toBe(400);
    expect(fit.body['detail']).toMatch(/deidentify: is not available for FIT files/);
    const big = { ...SPEC, observations: Array.from({ length: 250 }, (_, i) => ({ name: `f${i}`, code: `http://loinc.org|${1000 + i}-0` })) };
    const long = await upload(q('long', big), patients, 'application/fhir+ndjson');
    expect([400, 431]).toContain(long.status);
  });

  it('leaves nothing of the uploads as sent in the data folder', () => {
    const left: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else if (/upload|\.tmp-|\.fhir$|\.deid$/.test(e.name)) left.push(e.name);
      }
    };
    walk(join(dataDir, 'datasets'));
    expect(left).toEqual([]);
  });
});
