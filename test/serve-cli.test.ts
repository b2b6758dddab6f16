/**
 * `medfit serve` as a process: stdout carries only JSON log lines (the admin key and the "listening"
 * line go to stderr), and an unhandled rejection or an uncaught exception is logged through the
 * server's logger instead of killing it silently or printing a raw stack.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers.js';

interface Served {
  stdout: () => string;
  stderr: () => string;
  /** The server's URL, once it listens. */
  url: Promise<string>;
  /** The exit code. */
  exit: Promise<number>;
  signal(s: NodeJS.Signals): void;
}

const running = new Set<{ kill(): void }>();
afterEach(() => {
  for (const child of running) child.kill();
  running.clear();
});

/** Starts the real `medfit serve` on a free port (from the sources, through tsx), optionally with a module preloaded. */
function serve(preload?: string): Served {
  const env: NodeJS.ProcessEnv = { ...process.env, MEDFIT_LOG_LEVEL: 'info', MEDFIT_DEBUG: '' };
  delete env['MEDFIT_ADMIN_KEY'];
  const args = ['--import', 'tsx', ...(preload ? ['--import', pathToFileURL(preload).href] : []), join(ROOT, 'src/cli/bin.ts'), 'serve', '--port', '0', '--data-dir', join(tempDir(), 'data')];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  running.add(child);
  let listening: (url: string) => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const url = new Promise<string>((resolve, reject) => {
    listening = resolve;
    failed = reject;
  });
  // Not listening within 30 s, or ended first: fail now rather than at the test's timeout.
  const noAddress = setTimeout(() => failed(new Error(`no "listening on" line on stderr; stdout: ${stdout.slice(0, 300)}`)), 30_000);
  void url.finally(() => clearTimeout(noAddress)).catch(() => undefined);
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    const m = /listening on (http:\/\/\S+)/.exec(stderr);
    if (m) listening(m[1]!);
  });
  const exit = new Promise<number>((resolve) =>
    child.on('close', (code) => {
      running.delete(child);
      failed(new Error(`medfit serve ended (${code}) before listening`));
      resolve(code ?? -1);
    }),
  );
  return { stdout: () => stdout, stderr: () => stderr, url, exit, signal: (s) => child.kill(s) };
}

/** Every line of stdout, parsed: fails if one is not JSON. */
function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`stdout has a line that is not JSON: ${l.slice(0, 80)}`);
      }
    });
}

async function until(what: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('medfit serve', () => {
  it('prints the first admin key and the address on stderr; stdout carries only JSON log lines', async () => {
    const s = serve();
    const url = await s.url;
    const key = /\bmf_[A-Za-z0-9_-]+/.exec(s.stderr())?.[0];
    expect(key).toBeDefined();
    expect((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    s.signal('SIGTERM');
    expect(await s.exit).toBe(0);
    const lines = jsonLines(s.stdout());
    expect(lines.some((l) => typeof l['msg'] === 'string' && /listening/i.test(l['msg']))).toBe(true);
    expect(lines.some((l) => (l['res'] as { statusCode?: number } | undefined)?.statusCode === 200)).toBe(true);
    expect(s.stdout()).not.toContain(key!);
    expect(s.stderr()).toMatch(/Admin key for project "default"/);
  }, 60_000);

  it('logs an unhandled rejection and goes on; logs an uncaught exception, shuts down and exits 1; no raw stack', async () => {
    // Faults injected from inside the server process, on SIGUSR2: first a rejection nobody handles, then a throw.
    const faults = join(tempDir(), 'faults.mjs');
    writeFileSync(
      faults,
      `let n = 0;
process.on('SIGUSR2', () => {
  n += 1;
  if (n === 1) Promise.reject(new Error('injected rejection'));
  else throw new Error('injected exception');
});
`,
    );
    const s = serve(faults);
    const url = await s.url;
    s.signal('SIGUSR2');
    await until(() => s.stdout().includes('unhandled promise rejection'));
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    s.signal('SIGUSR2');
    expect(await s.exit).toBe(1);
    const lines = jsonLines(s.stdout());
    expect(lines.find((l) => l['msg'] === 'unhandled promise rejection')).toMatchObject({ level: 50, err: { message: 'injected rejection' } });
    expect(lines.find((l) => l['msg'] === 'uncaught exception; shutting down')).toMatchObject({ level: 60, err: { message: 'injected exception' } });
    expect(s.stderr()).toMatch(/uncaught exception, shutting down/);
    expect(s.stderr()).not.toMatch(/\n\s+at /);
  }, 60_000);
});
