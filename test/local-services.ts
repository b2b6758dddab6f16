/**
 * The machine's own PostgreSQL and Redis, as the cluster tests (and bench/cluster.ts) reach
 * them: `MEDFIT_TEST_DATABASE_URL` / `MEDFIT_TEST_REDIS_URL`, or the standard local ports.
 */
import { connect } from 'node:net';
import pg from 'pg';

export const PG_URL = process.env['MEDFIT_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env['MEDFIT_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** Whether something accepts TCP connections at the URL's host and port within a second. */
export function answers(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect({ host: u.hostname, port: Number(u.port) }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Drops a schema of the test database (and everything in it). */
export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** Deletes the Redis keys under `prefix` (`<prefix>:*`); returns how many there were. */
export async function deleteRedisKeys(prefix: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const r = new Redis(REDIS_URL);
  try {
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length) await r.del(...keys);
    return keys.length;
  } finally {
    r.disconnect();
  }
}
