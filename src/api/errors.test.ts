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
