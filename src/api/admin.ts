import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Errors, type Task } from '../core/index.js';
import { FAMILIES, SEQUENCE_FAMILIES, type ModelFamily, type ParamSpec } from '../models/index.js';
import { SCOPES, type ApiKeyRecord, type AuditQuery, type Scope } from '../store/index.js';
import { requireScope, type Principal } from './auth.js';
import { KEY_NAME, createKey } from './keys.js';
import type { Services } from './services.js';

/** What the admin routes need beyond the services. */
export interface AdminRouteOptions {
  /**
   * Drops every cached key lookup of this process's authenticator (`auth.forget`), so that a key
   * revoked here is refused from its very next request rather than when its cache entry expires.
   */
  forgetKeys(): void;
}

/** The caller's principal, whatever its scopes: routes any valid key may use. */
function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw Errors.unauthorized('missing API key: send Authorization: Bearer <key>');
  return req.principal;
}

/** Scopes a key acts with: `admin` holds every scope of its project. */
function effectiveScopes(scopes: readonly Scope[]): Scope[] {
  return scopes.includes('admin') ? [...SCOPES] : SCOPES.filter((s) => scopes.includes(s));
}

const keyJson = {
  type: 'object',
  required: ['id', 'name', 'scopes', 'created', 'revoked', 'lastUsed'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    scopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] } },
    created: { type: 'string', description: 'ISO 8601 UTC' },
    revoked: { type: ['string', 'null'], description: 'when it was revoked (ISO 8601 UTC), or null while it works' },
    lastUsed: {
      type: ['string', 'null'],
      description: 'when it last authenticated a request or was named in the audit trail (ISO 8601 UTC; may lag by a fraction of a second), or null if never',
    },
  },
} as const;

/** The public view of a key: never its hash (nor, after creation, its secret). */
function keyView(k: ApiKeyRecord) {
  return { id: k.id, name: k.name, scopes: k.scopes, created: k.created, revoked: k.revoked, lastUsed: k.lastUsed };
}

const keyIdParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } as const;

const paramJson = {
  type: 'object',
  required: ['name', 'type', 'default', 'help', 'dependsOnRows'],
  properties: {
    name: { type: 'string', description: 'the key under params.<family> of POST /v1/jobs' },
    type: { type: 'string', enum: ['int', 'float', 'bool', 'enum', 'intList'] },
    default: {
      anyOf: [{ type: 'number' }, { type: 'string' }, { type: 'boolean' }, { type: 'array', items: { type: 'number' } }],
      description: 'the value used when the job does not set it (for `rows` training rows)',
    },
    help: { type: 'string' },
    min: { type: 'number', description: 'int, float, intList (each value): the smallest accepted' },
    max: { type: 'number', description: 'int, float, intList (each value): the largest accepted' },
    exclusiveMin: { type: 'boolean', description: 'float: min itself is not accepted' },
    choices: { type: 'array', items: { type: 'string' }, description: 'enum: the accepted values' },
    maxLength: { type: 'integer', description: 'intList: at most this many values' },
    dependsOnRows: { type: 'boolean', description: 'the default scales with the number of training rows (ask again with ?rows=)' },
  },
} as const;

const familyJson = {
  type: 'object',
  required: ['name', 'kind', 'tasks', 'multiOutput', 'params'],
  properties: {
    name: { type: 'string' },
    kind: { type: 'string', enum: ['table', 'sequence'], description: 'table: POST /v1/jobs without "sequence"; sequence: with it' },
    tasks: { type: 'array', items: { type: 'string', enum: ['binary', 'multiclass', 'regression'] } },
    multiOutput: { type: 'boolean', description: 'can learn several numeric targets at once (only sequence jobs take several targets)' },
    params: { type: 'array', items: paramJson },
  },
} as const;

/** A family's hyperparameters for a form: the spec `parseParams` enforces, with the defaults for `rows`. */
function familyView(f: ModelFamily, task: Task | undefined, rows: number) {
  const t = task ?? f.tasks[0]!;
  const defaults = f.defaults(t, rows);
  // Probed over sizes rather than declared: a family's defaults function is the only place that knows.
  const probes = [10, 1_000, 100_000, 10_000_000].map((n) => f.defaults(t, n));
  const varies = (name: string) => probes.some((p) => JSON.stringify(p[name]) !== JSON.stringify(probes[0]![name]));
  return {
    name: f.name,
    kind: f.input ?? 'table',
    tasks: [...f.tasks],
    multiOutput: f.multiOutput ?? false,
    params: Object.entries(f.paramSpec).map(([name, spec]) => ({
      name,
      ...rangeOf(spec),
      default: defaults[name]!,
      help: spec.help,
      dependsOnRows: varies(name),
    })),
  };
}

function rangeOf(spec: ParamSpec) {
  switch (spec.type) {
    case 'int':
      return { type: spec.type, min: spec.min, max: spec.max };
    case 'float':
      return { type: spec.type, min: spec.min, max: spec.max, exclusiveMin: spec.exclusiveMin ?? false };
    case 'bool':
      return { type: spec.type };
    case 'enum':
      return { type: spec.type, choices: [...spec.values] };
    case 'intList':
      return { type: spec.type, min: spec.min, max: spec.max, maxLength: spec.maxLength };
  }
}

/** A date, or a date and time with its offset (an instant: the server's time zone is not the caller's). */
const INSTANT_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|([+-])([0-9]{2}):([0-9]{2})))?$/;

/**
 * The instant `raw` names, as the ISO text audit entries are stored with (so the store compares
 * texts), or a message saying why it is none. A date alone is its midnight UTC. Sub-millisecond
 * digits round up: entries are stored to the millisecond, so `at >= since` and `at < until`
 * then hold exactly as they would for the precise instant.
 */
function readInstant(raw: string): string | { problem: string } {
  const m = INSTANT_RE.exec(raw);
  if (!m) return { problem: 'expected an ISO 8601 date (2024-05-01) or date and time with its offset (2024-05-01T08:30:00Z, 2024-05-01T10:30+02:00)' };
  const [y, mo, d, h, mi, s, oh, om] = [1, 2, 3, 4, 5, 6, 10, 11].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number, number, number];
  const monthDays = [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1] ?? 0;
  if (d < 1 || d > monthDays || h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59) return { problem: 'not a date and time on the calendar' };
  const t = new Date(Date.UTC(2000, 0, 1, h, mi, s));
  // setUTCFullYear, because Date.UTC reads years 0-99 as 1900-1999.
  t.setUTCFullYear(y, mo - 1, d);
  // Nanoseconds as an integer: 0.123 * 1000 in floating point is not 123.
  const nanos = Number((m[7] ?? '').padEnd(9, '0'));
  const offset = m[9] === undefined ? 0 : (m[9] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  const ms = t.getTime() + Math.ceil(nanos / 1e6) - offset;
  const iso = new Date(ms).toISOString();
  // Outside years 0000-9999 the ISO text gains a sign and would no longer compare as text.
  if (!/^[0-9]{4}-/.test(iso)) return { problem: 'must fall within the years 0000 to 9999' };
  return iso;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const auditJson = {
  type: 'object',
  required: ['id', 'projectId', 'keyId', 'action', 'resource', 'rows', 'status', 'at', 'requests'],
  properties: {
    id: { type: 'integer', description: 'newer entries have larger ids; pass the last one as `before` for the next page' },
    projectId: { type: 'string' },
    keyId: { type: 'string' },
    action: { type: 'string' },
    resource: { type: ['string', 'null'], description: '`dataset:<id>`, `job:<id>`, `model:<name>/<v>`, `key:<id>`, or the route of a refused request' },
    rows: { type: ['integer', 'null'] },
    status: { type: 'integer', description: 'the HTTP status answered' },
    at: { type: 'string', description: 'ISO 8601 UTC, to the millisecond' },
    requests: { type: 'integer', description: 'identical requests within 50 ms that this entry stands for (rows is their sum)' },
  },
} as const;

/**
 * The routes of a project's administration and of what a client needs to know before it acts:
 * who the key is (`/v1/session`), API keys (`/v1/keys`, admin), the model families and their
 * hyperparameters (`/v1/families`), and the audit trail with filters (`/v1/audit`, admin). Every
 * route works inside the caller's project only: another project's key is a 404.
 *
 * Also notes each authenticated request as a use of its key (`lastUsed`), so it must be
 * installed after the authentication hook.
 */
export async function adminRoutes(app: FastifyInstance, s: Services, options: AdminRouteOptions): Promise<void> {
  // A map entry per request; the store writes it with the audit trail.
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.principal) void s.store.touchKey(req.principal.keyId);
    done();
  });

  app.get(
    '/v1/session',
    {
      schema: {
        summary: 'Who the calling key is: its project, itself and its scopes (any valid key)',
        tags: ['system'],
        response: {
          200: {
            type: 'object',
            required: ['project', 'key', 'scopes', 'effectiveScopes'],
            properties: {
              project: { type: 'object', required: ['id', 'name'], properties: { id: { type: 'string' }, name: { type: 'string' } } },
              key: { type: 'object', required: ['id', 'name', 'created'], properties: { id: { type: 'string' }, name: { type: 'string' }, created: { type: 'string' } } },
              scopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] }, description: 'as granted' },
              effectiveScopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] }, description: 'what the key may do: admin holds every scope' },
            },
          },
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const [key, project] = await Promise.all([s.store.getKey(p.keyId), s.store.getProject(p.projectId)]);
      // Revoked or gone since the authenticator looked it up: the same answer it would give now.
      if (!key || key.revoked !== null || !project) throw Errors.unauthorized('invalid or revoked API key');
      return {
        project: { id: project.id, name: project.name },
        key: { id: key.id, name: key.name, created: key.created },
        scopes: key.scopes,
        effectiveScopes: effectiveScopes(key.scopes),
      };
    },
  );

  app.get(
    '/v1/keys',
    {
      schema: {
        summary: "The project's API keys, revoked ones included, oldest first (admin); never a secret or its hash",
        tags: ['keys'],
        response: { 200: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: keyJson } } } },
      },
    },
    async (req) => {
      const p = requireScope(req, 'admin');
      return { keys: (await s.store.listKeys(p.projectId)).map(keyView) };
    },
  );

  app.post(
    '/v1/keys',
    {
      schema: {
        summary: 'Create an API key in the caller\'s project (admin); the answer holds its secret, shown this once',
        tags: ['keys'],
        body: {
          type: 'object',
          required: ['name', 'scopes'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64, pattern: KEY_NAME, description: "1-64 letters, digits, spaces or _ . : @ ( ) -, starting with a letter or digit (what it is for: 'wearables gateway')" },
            scopes: {
              type: 'array',
              minItems: 1,
              maxItems: SCOPES.length,
              uniqueItems: true,
              items: { type: 'string', enum: [...SCOPES] },
              description: 'read (list and view), predict, train (upload, train, stage), admin (all of them, keys and audit)',
            },
          },
        },
        response: {
          201: {
            ...keyJson,
            required: [...keyJson.required, 'key'],
            properties: { ...keyJson.properties, key: { type: 'string', description: 'the secret: send it as Authorization: Bearer <key>; it cannot be shown again' } },
          },
        },
      },
    },
    async (req, reply) => {
      const p = requireScope(req, 'admin');
      const body = req.body as { name: string; scopes: Scope[] };
      const project = await s.store.getProject(p.projectId);
      if (!project) throw Errors.unauthorized('invalid or revoked API key');
      const { key, record } = await createKey(s.store, project.name, body.scopes, body.name);
      req.auditEntry = { action: 'key.create', resource: `key:${record.id}` };
      // The secret must not linger in a cache between here and the browser.
      return reply.code(201).header('cache-control', 'no-store').send({ ...keyView(record), key });
    },
  );

  app.post(
    '/v1/keys/:id/revoke',
    {
      schema: {
        summary: "Revoke a key of the caller's project (admin): refused from its next request on; the project's last admin key cannot be revoked (409)",
        tags: ['keys'],
        params: keyIdParams,
        response: { 200: keyJson },
      },
    },
    async (req) => {
      const p = requireScope(req, 'admin');
      const { id } = req.params as { id: string };
      const r = await s.store.revokeProjectKey(p.projectId, id);
      if (r.outcome === 'not-found') throw Errors.notFound(`key "${id}"`);
      req.auditEntry = { action: 'key.revoke', resource: `key:${id}` };
      if (r.outcome === 'already-revoked') throw Errors.conflict(`key "${id}" was already revoked at ${r.key.revoked ?? ''}`);
      if (r.outcome === 'last-admin') {
        throw Errors.conflict(`key "${id}" is the project's last admin key: create another admin key first, or the project could no longer manage its keys`);
      }
      // Before answering: the caller may try the revoked key as soon as it reads this.
      options.forgetKeys();
      return keyView(r.key);
    },
  );

  app.get(
    '/v1/families',
    {
      schema: {
        summary: 'The model families and their hyperparameters (types, defaults, ranges, help) for a training form (read)',
        tags: ['jobs'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            task: { type: 'string', enum: ['binary', 'multiclass', 'regression'], description: 'only the families that learn this task' },
            rows: { type: 'string', pattern: '^[1-9][0-9]{0,9}$', description: 'training rows (or windows) the defaults are for (default 1000); some defaults scale with them' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['rows', 'families'],
            properties: {
              task: { type: 'string' },
              rows: { type: 'integer' },
              families: { type: 'array', items: familyJson },
            },
          },
        },
      },
    },
    async (req) => {
      requireScope(req, 'read');
      const q = req.query as { task?: Task; rows?: string };
      const rows = Number(q.rows ?? 1000);
      const all: ModelFamily[] = [...Object.values(FAMILIES), ...Object.values(SEQUENCE_FAMILIES).filter((f): f is ModelFamily => f !== undefined)];
      return {
        ...(q.task ? { task: q.task } : {}),
        rows,
        families: all.filter((f) => !q.task || f.tasks.includes(q.task)).map((f) => familyView(f, q.task, rows)),
      };
    },
  );

  app.get(
    '/v1/audit',
    {
      schema: {
        summary: "The project's audit log, newest first, optionally filtered (admin)",
        tags: ['system'],
        // Query values are strings (types are not coerced anywhere, so JSON bodies stay strict).
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'string', pattern: '^(1000|[1-9][0-9]{0,2})$', description: '1 to 1000 (default 100)' },
            before: { type: 'string', pattern: '^[1-9][0-9]{0,15}$', description: 'entries older than this id (the previous page\'s `next`)' },
            action: { type: 'string', pattern: '^[a-z][a-z0-9_.-]{0,63}$', description: 'only this action: dataset.create, dataset.read, dataset.delete, job.create, job.cancel, model.upload, model.stage, model.predict, model.infer, model.stream, key.create, key.revoke, denied' },
            key: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'only the entries of this key id' },
            // No schema pattern: readInstant's message says what is expected, a pattern's would not.
            since: { type: 'string', maxLength: 64, description: 'entries at or after this instant: 2024-05-01 (midnight UTC) or 2024-05-01T08:30:00Z / +02:00' },
            until: { type: 'string', maxLength: 64, description: 'entries before this instant (exclusive), written as since' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['entries', 'filters', 'next'],
            properties: {
              entries: { type: 'array', items: auditJson },
              filters: {
                type: 'object',
                description: 'the filters applied; since and until as the UTC instants compared',
                properties: { action: { type: 'string' }, key: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, before: { type: 'integer' }, limit: { type: 'integer' } },
              },
              next: { type: ['integer', 'null'], description: 'pass as `before` for the next page; null when this page was the last' },
            },
          },
        },
      },
    },
    async (req) => {
      const p = requireScope(req, 'admin');
      const q = req.query as { limit?: string; before?: string; action?: string; key?: string; since?: string; until?: string };
      const query: AuditQuery = { limit: Number(q.limit ?? 100) };
      if (q.before !== undefined) query.before = Number(q.before);
      if (q.action !== undefined) query.action = q.action;
      if (q.key !== undefined) query.keyId = q.key;
      for (const name of ['since', 'until'] as const) {
        const raw = q[name];
        if (raw === undefined) continue;
        const at = readInstant(raw);
        if (typeof at !== 'string') throw Errors.badParam(`/querystring/${name}`, at.problem);
        query[name] = at;
      }
      if (query.since !== undefined && query.until !== undefined && query.until <= query.since) throw Errors.badParam('/querystring/until', 'must be later than since');
      const entries = await s.store.listAudit(p.projectId, query);
      const { keyId, ...rest } = query;
      return {
        entries,
        filters: { ...rest, ...(keyId !== undefined ? { key: keyId } : {}) },
        // A full page may have more behind it; a short one cannot.
        next: entries.length === query.limit ? entries[entries.length - 1]!.id : null,
      };
    },
  );
}
