import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WEB_PUBLIC } from './dashboard.js';
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

/** Paths that need no key: health, the API description and the dashboard. */
// The web app's page and files hold no data (the app asks for a key and sends it on /v1 calls).
const PUBLIC = [/^\/healthz$/, /^\/readyz$/, /^\/openapi\.json$/, /^\/docs(\/|$)/, /^\/v2\/health\//, WEB_PUBLIC];

/** How long a key lookup is trusted before the store is asked again (revocations take effect). */
const CACHE_MS = 2000;

/**
 * Bearer API keys. Keys are looked up by the SHA-256 of the presented secret, and the lookup is
 * cached for a moment so that a prediction does not cost a database query; a key revoked from
 * another process stops working within CACHE_MS.
 */
export function createAuthenticator(store: MetadataStore): { authenticate(authorization: string | undefined): Promise<Principal>; forget(): void } {
  const cache = new Map<string, { principal: Principal | null; until: number }>();
  return {
    async authenticate(authorization) {
      const m = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
      if (!m) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
      // Cached by the presented key itself, so a hit costs no hashing; the store sees only the hash.
      const presented = m[1]!;
      let hit = cache.get(presented);
      if (!hit || hit.until < Date.now()) {
        const rec = await store.getKeyByHash(hashKey(presented));
        hit = { principal: rec && !rec.revoked ? { keyId: rec.id, projectId: rec.projectId, scopes: rec.scopes } : null, until: Date.now() + CACHE_MS };
        if (cache.size > 10_000) cache.clear();
        cache.set(presented, hit);
      }
      if (!hit.principal) throw Errors.unauthorized('invalid or revoked API key');
      return hit.principal;
    },
    forget: () => cache.clear(),
  };
}

/** Authenticates every request but the public paths, setting `req.principal`. */
export function installAuth(app: FastifyInstance, auth: ReturnType<typeof createAuthenticator>): void {
  app.addHook('onRequest', (req, _reply, done) => {
    const path = req.url.split('?')[0]!;
    if (PUBLIC.some((re) => re.test(path))) return done();
    auth.authenticate(req.headers.authorization).then((p) => {
      req.principal = p;
      done();
    }, done);
  });
}

/** Requires `scope` of a principal (admin holds every scope): 403 otherwise. */
export function checkScope(p: Principal, scope: Scope): Principal {
  if (!p.scopes.includes(scope) && !p.scopes.includes('admin')) throw Errors.forbidden(`this key lacks the "${scope}" scope`);
  return p;
}

/** The caller's principal, requiring `scope` (admin holds every scope): 403 otherwise. */
export function requireScope(req: FastifyRequest, scope: Scope): Principal {
  if (!req.principal) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
  return checkScope(req.principal, scope);
}

/** The caller's principal, requiring one of `scopes` (admin holds every scope): 403 otherwise. */
export function requireAnyScope(req: FastifyRequest, scopes: Scope[]): Principal {
  if (!req.principal) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
  const p = req.principal;
  if (p.scopes.includes('admin') || scopes.some((sc) => p.scopes.includes(sc))) return p;
  throw Errors.forbidden(`this key lacks the ${scopes.map((sc) => `"${sc}"`).join(' or ')} scope`);
}
