import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Errors } from '../core/index.js';
import type { MetadataStore, Scope } from '../store/index.js';
import { hashKey } from './keys.js';

/** Who is calling: set on every authenticated request. */
export interface Principal {
  keyId: string;
  projectId: string;
  scopes: Scope[];
}

/** What the handler did, for the audit log (set by handlers; written after the response). */
export interface AuditEntry {
  action: string;
  resource?: string;
  rows?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    auditEntry?: AuditEntry;
  }
}

/** Paths that need no key: health, metrics, the API description and the dashboard. */
const PUBLIC = [/^\/healthz$/, /^\/metrics$/, /^\/openapi\.json$/, /^\/docs(\/|$)/, /^\/v2\/health\//, /^\/$/, /^\/ui(\/|$)/];

/** How long a key lookup is trusted before the store is asked again (revocations take effect). */
const CACHE_MS = 2000;

/**
 * Bearer API keys. Keys are looked up by the SHA-256 of the presented secret, and the lookup is
 * cached for a moment so that a prediction does not cost a database query; a key revoked from
 * another process stops working within CACHE_MS.
 */
export function installAuth(app: FastifyInstance, store: MetadataStore): { forget(): void } {
  const cache = new Map<string, { principal: Principal | null; until: number }>();
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0]!;
    if (PUBLIC.some((re) => re.test(path))) return;
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
    const hash = hashKey(m[1]!);
    let hit = cache.get(hash);
    if (!hit || hit.until < Date.now()) {
      const rec = await store.getKeyByHash(hash);
      hit = { principal: rec && !rec.revoked ? { keyId: rec.id, projectId: rec.projectId, scopes: rec.scopes } : null, until: Date.now() + CACHE_MS };
      if (cache.size > 10_000) cache.clear();
      cache.set(hash, hit);
    }
    if (!hit.principal) throw Errors.unauthorized('invalid or revoked API key');
    req.principal = hit.principal;
  });
  return { forget: () => cache.clear() };
}

/** The caller's principal, requiring `scope` (admin holds every scope): 403 otherwise. */
export function requireScope(req: FastifyRequest, scope: Scope): Principal {
  const p = req.principal;
  if (!p) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
  if (!p.scopes.includes(scope) && !p.scopes.includes('admin')) {
    throw Errors.forbidden(`this key lacks the "${scope}" scope`);
  }
  return p;
}
