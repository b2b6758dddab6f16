import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

const DATA = '/srv/medfit-data';
const CLUSTER: NodeJS.ProcessEnv = {
  MEDFIT_DATABASE_URL: 'postgres://medfit:secret@db:5432/medfit',
  MEDFIT_REDIS_URL: 'redis://redis:6379',
  MEDFIT_STORAGE_URL: 'file:///srv/medfit-shared',
};

describe('the scale-out configuration', () => {
  it('refuses combinations that cannot work, every problem at once', () => {
    const problems = (e: NodeJS.ProcessEnv, role?: string) => {
      try {
        loadConfig(e, { dataDir: DATA, ...(role ? { role } : {}) });
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(problems({ MEDFIT_REDIS_URL: 'redis://127.0.0.1:6379' })).toMatch(/MEDFIT_REDIS_URL needs MEDFIT_DATABASE_URL.*MEDFIT_REDIS_URL needs MEDFIT_STORAGE_URL/);
    expect(problems({}, 'api')).toMatch(/--role api needs MEDFIT_REDIS_URL/);
    expect(problems({ MEDFIT_ROLE: 'worker' })).toMatch(/--role worker needs MEDFIT_REDIS_URL/);
    expect(problems({ MEDFIT_ROLE: 'boss' })).toMatch(/MEDFIT_ROLE must be one of api, worker, all/);
    expect(problems({ MEDFIT_TRAIN_THREADS: 'two', MEDFIT_ROLE: 'boss' })).toMatch(/MEDFIT_TRAIN_THREADS.*integer from 1 to 64.*MEDFIT_ROLE must be one of/);
    expect(problems({ MEDFIT_TRAIN_THREADS: '2' })).toBe('');
    expect(problems({ ...CLUSTER, MEDFIT_STORAGE_URL: 'ftp://x/y' })).toMatch(/MEDFIT_STORAGE_URL must be file/);
    expect(problems({ ...CLUSTER, MEDFIT_STORAGE_URL: `file://${DATA}` })).toMatch(/must not be the data directory/);
    expect(problems({ ...CLUSTER, MEDFIT_DATABASE_URL: 'mysql://x' })).toMatch(/MEDFIT_DATABASE_URL must be a postgres/);
    expect(problems({ ...CLUSTER, MEDFIT_STORAGE_URL: 's3://my-bucket/models', MEDFIT_S3_ENDPOINT: 'http://minio:9000' })).toBe('');
    expect(problems({ MEDFIT_S3_ENDPOINT: 'http://minio:9000' })).toMatch(/MEDFIT_S3_ENDPOINT needs MEDFIT_STORAGE_URL/);
  });

  it('reads a cluster configuration', () => {
    const c = loadConfig({ ...CLUSTER, MEDFIT_ROLE: 'worker', MEDFIT_DATABASE_SCHEMA: 'tenant_a', MEDFIT_REDIS_PREFIX: 'a', MEDFIT_JOB_STALL_SECONDS: '5' }, { dataDir: DATA });
    expect(c.role).toBe('worker');
    expect(c.database).toEqual({ url: CLUSTER['MEDFIT_DATABASE_URL'], schema: 'tenant_a', poolMax: 10, statementTimeoutMs: 30_000 });
    expect(c.redis).toEqual({ url: CLUSTER['MEDFIT_REDIS_URL'], prefix: 'a', stallSeconds: 5, maxStalls: 2 });
    expect(c.storage).toEqual({ kind: 'file', dir: '/srv/medfit-shared' });
    const s3 = loadConfig({ ...CLUSTER, MEDFIT_STORAGE_URL: 's3://my-bucket/a/b/', AWS_REGION: 'eu-west-1' }, { dataDir: DATA });
    expect(s3.storage).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: 'a/b', region: 'eu-west-1' });
    // The embedded default: everything in the data directory.
    const plain = loadConfig({}, { dataDir: DATA });
    expect(plain).toMatchObject({ role: 'all', storage: { kind: 'file', dir: DATA } });
    expect(plain.database).toBeUndefined();
    expect(plain.redis).toBeUndefined();
  });

  it('refuses the deployment examples\' placeholder secrets', () => {
    expect(() => loadConfig({ MEDFIT_ADMIN_KEY: 'REPLACE_ME_admin_key_0123456789' }, { dataDir: DATA })).toThrow(/MEDFIT_ADMIN_KEY is still the example's placeholder/);
    expect(() => loadConfig({ MEDFIT_DEID_KEY: 'replace_me_with_64_hex_characters_0000000000000000000000000000000' }, { dataDir: DATA })).toThrow(/MEDFIT_DEID_KEY is still/);
  });

  it('never repeats a URL\'s password in its messages', () => {
    let message = '';
    try {
      loadConfig({ ...CLUSTER, MEDFIT_STORAGE_URL: 's3://key:pass-word-1@bucket/x' }, { dataDir: DATA });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/credentials go in AWS_ACCESS_KEY_ID/);
    expect(message).not.toContain('pass-word-1');
  });
});
