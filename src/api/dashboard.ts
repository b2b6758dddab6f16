import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/**
 * The dashboard: static files built into `web/` at the repository root, served at `/`. It talks
 * to the same /v1 API with a key the user pastes (kept in the browser's sessionStorage only).
 */
export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  const root = new URL('../../web/', import.meta.url);
  const page = (file: string, type: string) => async (_req: unknown, reply: import('fastify').FastifyReply) => reply.type(type).send(readFileSync(new URL(file, root)));
  app.get('/', { schema: { hide: true } }, page('index.html', 'text/html; charset=utf-8'));
  app.get('/ui/app.js', { schema: { hide: true } }, page('app.js', 'text/javascript; charset=utf-8'));
}
