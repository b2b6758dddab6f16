import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { Errors } from '../core/index.js';
import { installErrorHandling } from './errors.js';

describe('the /v1 error edge', () => {
  it('sends Retry-After with a 503 that says when to retry, and none with other errors', async () => {
    const app = Fastify();
    installErrorHandling(app);
    app.get('/v1/busy', async () => {
      throw Errors.unavailable('the metadata store is busy; retry shortly', 3);
    });
    app.get('/v1/missing', async () => {
      throw Errors.notFound('dataset');
    });
    try {
      const busy = await app.inject('/v1/busy');
      expect(busy.statusCode).toBe(503);
      expect(busy.headers['retry-after']).toBe('3');
      expect(busy.headers['content-type']).toContain('application/problem+json');
      expect(busy.json()).toMatchObject({ status: 503, type: 'urn:medfit:error:MEDFIT_ERR_UNAVAILABLE', detail: expect.stringMatching(/busy/) });
      const missing = await app.inject('/v1/missing');
      expect(missing.statusCode).toBe(404);
      expect(missing.headers['retry-after']).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});

describe('a closing server', () => {
  it('answers requests that still reach it with our 503 and Retry-After', async () => {
    const { initServer, loadConfig } = await import('./index.js');
    const { tempDir } = await import('../../test/helpers.js');
    const s = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: 'closing-admin-key-0123456789', MEDFIT_LOG_LEVEL: 'silent' }, { dataDir: tempDir() }));
    await s.app.ready();
    const closing = s.close();
    const r = await s.app.inject({ url: '/healthz' });
    expect(r.statusCode).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.json()).toMatchObject({ type: 'urn:medfit:error:MEDFIT_ERR_UNAVAILABLE', detail: 'the server is shutting down' });
    await closing;
  });
});
