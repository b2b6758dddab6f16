import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { MedfitError } from '../src/core/index.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A fixture's absolute path. */
export const fixture = (name: string) => join(ROOT, 'test', 'fixtures', name);

/** A fresh temporary directory. */
export const tempDir = (prefix = 'medfit-test-') => mkdtempSync(join(tmpdir(), prefix));

/** What a CLI run printed and returned. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * Runs the real `medfit` command in a child process, from the TypeScript sources through tsx, so
 * exit codes, stdout/stderr separation and the absence of stack traces are tested as a user sees
 * them.
 */
export function medfit(args: string[], opts: { cwd?: string; stdin?: string; env?: Record<string, string> } = {}): Promise<CliRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/bin.ts'), ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, MEDFIT_DEBUG: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Awaits `p`, expecting it to reject with a MedfitError, and returns that error for further checks. */
export async function rejection(p: Promise<unknown>): Promise<MedfitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('expected a rejection');
}

/**
 * Runs a `medfit` command in this process (`main` with captured streams): the same exit code,
 * stdout and stderr as the real command without a process start-up per call, for the many
 * bad-input cases of a test file. Use `medfit` for what needs the real process.
 */
export async function medfitInProcess(args: string[]): Promise<CliRun> {
  const { main } = await import('../src/cli/main.js');
  const started = performance.now();
  let stdout = '';
  let stderr = '';
  const out = new PassThrough();
  const err = new PassThrough();
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  err.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await main(args, { stdout: out, stderr: err as unknown as NodeJS.WriteStream, stdin: new PassThrough() });
  return { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` within half a second (a broker, a database). */
export function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
