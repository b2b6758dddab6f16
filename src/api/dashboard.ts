import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Where `vite build` (the package's `prepare` script, run by `npm ci`) writes the web app. */
export const WEB_DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));

/** The app's own routes: a reload or a shared link on any of them gets the app's page. */
const APP_PATHS = ['/datasets', '/datasets/*', '/train', '/jobs', '/jobs/*', '/models', '/models/*', '/admin', '/admin/*'];

/** Paths the web app answers without a key: its page, its app routes and its static files. */
export const WEB_PUBLIC = /^\/(?:|train|assets\/[^/]+|favicon\.svg|(?:datasets|jobs|models|admin)(?:\/[^?]*)?)$/;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The page's own policy: scripts and styles only from this server (nothing from a CDN), no
 * framing, no referrer. Inline style attributes are allowed: the chart library sizes its canvas
 * with them.
 */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

interface StaticFile {
  type: string;
  raw: Buffer;
  br?: Buffer;
  gz?: Buffer;
}

/** Reads the whole build once (a few hundred KB), with the precompressed copies beside each file. */
function loadBuild(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      if (name.endsWith('.br') || name.endsWith('.gz')) continue;
      const ext = name.slice(name.lastIndexOf('.'));
      const read = (f: string) => {
        try {
          return readFileSync(f);
        } catch {
          return undefined;
        }
      };
      const br = read(`${full}.br`);
      const gz = read(`${full}.gz`);
      files.set(`/${relative(dir, full).split(sep).join('/')}`, { type: TYPES[ext] ?? 'application/octet-stream', raw: readFileSync(full), ...(br ? { br } : {}), ...(gz ? { gz } : {}) });
    }
  };
  walk(dir);
  return files;
}

/** Picks the smallest encoding the client accepts. */
function send(req: FastifyRequest, reply: FastifyReply, file: StaticFile, cache: string): FastifyReply {
  const accept = String(req.headers['accept-encoding'] ?? '');
  reply.header('cache-control', cache).header('vary', 'accept-encoding').header('x-content-type-options', 'nosniff').type(file.type);
  if (file.br && /\bbr\b/.test(accept)) return reply.header('content-encoding', 'br').send(file.br);
  if (file.gz && /\bgzip\b/.test(accept)) return reply.header('content-encoding', 'gzip').send(file.gz);
  return reply.send(file.raw);
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>medfit</title></head><body>
<h1>medfit</h1><p>The web app has not been built in this installation. <code>npm ci</code> builds it; after a
change, <code>npm run build</code>. The REST API works without it: see <a href="/docs">/docs</a>.</p></body></html>`;

/**
 * The web app: the files `vite build` wrote to web/dist, served at `/` with their precompressed
 * Brotli or gzip copy, hashed assets cached for a year (their names change with their content),
 * and the page itself never cached, so a new release is picked up on the next load. Every app
 * route (`/models/…`, `/jobs/…`) answers with the page, so reloads and shared links work.
 */
export async function dashboardRoutes(app: FastifyInstance, options: { dir?: string } = {}): Promise<void> {
  const dir = options.dir ?? WEB_DIST;
  let files: Map<string, StaticFile>;
  try {
    files = loadBuild(dir);
  } catch {
    files = new Map();
  }
  const index = files.get('/index.html');
  const page = async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('content-security-policy', CSP).header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY');
    if (!index) return reply.code(503).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(NOT_BUILT);
    return send(req, reply, index, 'no-cache');
  };
  const hide = { schema: { hide: true } };
  app.get('/', hide, page);
  for (const p of APP_PATHS) app.get(p, hide, page);
  app.get('/assets/*', hide, async (req, reply) => {
    const file = files.get(req.url.split('?')[0]!);
    if (!file) return reply.code(404).type('text/plain; charset=utf-8').send('not found');
    return send(req, reply, file, 'public, max-age=31536000, immutable');
  });
  for (const [name, file] of files) {
    if (name.startsWith('/assets/') || name === '/index.html') continue;
    app.get(name, hide, async (req, reply) => send(req, reply, file, 'public, max-age=3600'));
  }
}
