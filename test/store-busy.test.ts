/**
 * The server over a real port while another process holds the SQLite write lock (a second
 * better-sqlite3 connection in BEGIN IMMEDIATE, as `medfit keys` or a backup would): liveness
 * stays instant, writes are 503 with Retry-After (or succeed when the lock goes within the retry
 * window), the server stays up, and no audit entry buffered meanwhile is lost.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, initServer, loadConfig, type Server } from '../src/api/index.js';
import { tempDir } from './helpers.js';

const ADMIN = 'test-admin-key-0123456789abcdef';
const dataDir = join(tempDir(), 'data');
let server: Server;
let base: string;

beforeAll(async () => {
  server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent' }, { dataDir, port: '0' }));
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => server?.close());

async function call(path: string, init: { key?: string; body?: string; json?: unknown } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? ADMIN}` };
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] = 'application/json';
  } else if (body !== undefined) headers['content-type'] = 'text/csv';
  const res = await fetch(`${base}${path}`, { method: body !== undefined ? 'POST' : 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), type: res.headers.get('content-type') ?? '', body: JSON.parse(text) as Record<string, any> };
}

const table = 'a,b,y\n' + Array.from({ length: 40 }, (_, i) => `${i},${i % 3},${i % 2 ? 'yes' : 'no'}`).join('\n') + '\n';

describe('a store locked by another process', () => {
  it('keeps /healthz instant, answers writes 503 with Retry-After, stays up, and loses no audit entry', async () => {
    const reader = await createKey(server.services.store, 'default', ['read'], 'test');
    const up = await call('/v1/datasets?name=before', { body: table });
    expect(up.status).toBe(201);
    const datasetId = up.body['id'] as string;

    const other = new Database(join(dataDir, 'medfit.db'));
    other.exec('BEGIN IMMEDIATE');
    const latencies: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const t0 = performance.now();
        const res = await fetch(`${base}/healthz`);
        await res.text();
        latencies.push(performance.now() - t0);
        expect(res.status).toBe(200);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      // Reads keep working (WAL) and their audit entries wait in memory.
      for (let i = 0; i < 5; i++) expect((await call(`/v1/datasets/${datasetId}`)).status).toBe(200);
      expect((await call('/v1/audit', { key: reader.key })).status).toBe(403);
      // Writes are refused once the retry window has passed, saying when to come back.
      const write = await call('/v1/datasets?name=during', { body: table });
      expect(write).toMatchObject({ status: 503, retryAfter: '1', body: { status: 503, detail: expect.stringMatching(/busy/) } });
      expect(write.type).toContain('application/problem+json');
      const job = await call('/v1/jobs', { json: { dataset: datasetId, target: 'y', name: 'm' } });
      expect(job).toMatchObject({ status: 503, retryAfter: '1' });
      // The trail cannot be read complete, so it is not read at all.
      expect(await call('/v1/audit')).toMatchObject({ status: 503, retryAfter: '1' });
      // Past the retry window and past the old 5 s busy wait of the audit flush.
      while (latencies.length < 60) await new Promise((r) => setTimeout(r, 50));
      // A write whose lock goes away within the retry window succeeds.
      const late = call('/v1/datasets?name=late', { body: table });
      await new Promise((r) => setTimeout(r, 300));
      other.exec('COMMIT');
      expect((await late).status).toBe(201);
    } finally {
      probing = false;
      await probe;
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }
    expect(latencies.reduce((a, b) => Math.max(a, b), 0)).toBeLessThan(100);

    const audit = (await call('/v1/audit?limit=1000')).body['entries'] as Array<{ action: string; status: number; requests: number; resource: string }>;
    const reads = audit.filter((e) => e.action === 'dataset.read');
    expect(reads.reduce((n, e) => n + e.requests, 0)).toBe(5);
    expect(audit.filter((e) => e.action === 'denied' && e.status === 403)).toHaveLength(1);
    expect(audit.filter((e) => e.action === 'dataset.create')).toHaveLength(2);
    expect((await call('/v1/datasets')).body['datasets'].map((d: { name: string }) => d.name)).toEqual(['before', 'late']);
  }, 60_000);
});
