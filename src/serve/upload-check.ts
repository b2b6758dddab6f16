/**
 * Proves an uploaded model in isolation before anything is stored: a child process checks and
 * re-encodes the bytes (the registry's `prepareUpload`), loads the result in ONNX Runtime with the
 * declared signature, runs one row of zeros and checks the output width. A native crash, a hang or
 * a memory bomb in ONNX Runtime then costs that child, never the server: the parent kills it
 * (SIGKILL) after a wall-clock limit or when its peak resident memory passes a limit, and answers
 * with a 422 naming the limit.
 *
 * The child runs in an empty temporary working directory with a minimal environment (no
 * `MEDFIT_*` keys), so even a file reference that slipped past the checks would find nothing.
 * ONNX Runtime's messages go to `log` (the server log), never to the caller.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Errors, MedfitError, siblingModule, tsxImportArgs, type ErrorDetail } from '../core/index.js';
import { checkDeclaration, checkUpload, type PreparedUpload, type UploadDeclaration } from '../registry/index.js';
import type { CheckReply, CheckRequest } from './upload-check-protocol.js';

/** Limits of one isolated check. */
export interface UploadCheckLimits {
  /** Wall-clock time from starting the child to its answer, in milliseconds. */
  timeoutMs: number;
  /** Peak resident memory of the child (VmHWM on Linux), in bytes. */
  memoryBytes: number;
}

/** Defaults: generous for a real model of the largest accepted upload, small enough to keep a server alive. */
export const UPLOAD_CHECK_LIMITS: Readonly<UploadCheckLimits> = Object.freeze({ timeoutMs: 30_000, memoryBytes: 1024 * 1024 * 1024 });

/**
 * Uploads up to this size are checked once in this process before a child is started: at this
 * size decoding costs a few milliseconds on the event loop, and a malformed file is refused
 * without starting a process. Larger ones are decoded only in the child (a 1 MB file of 42,000
 * nodes took up to 290 ms here; 100 MB of `float_data`, seconds).
 */
export const PRECHECK_MAX_BYTES = 64 * 1024;

/** Checks running at once: each may take a core and `memoryBytes` of memory. */
const MAX_CONCURRENT_CHECKS = 2;

/** How often the child's memory is read. */
const MEMORY_POLL_MS = 20;

/** Most stderr kept from a child for the log. */
const MAX_STDERR = 16 * 1024;

let running = 0;
const waiting: Array<() => void> = [];

async function slot(): Promise<() => void> {
  if (running >= MAX_CONCURRENT_CHECKS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

/** A refusal of the uploaded file: 422 at `/onnx`. */
function refuse(message: string): MedfitError {
  return Errors.badAt('/onnx', message);
}

/**
 * Checks an upload against its declaration and proves it in ONNX Runtime in a child process
 * within `limits`; resolves with the re-encoded model and its signature, ready for the
 * registry's `saveUpload`. Refusals are MEDFIT_ERR_BAD_DATA (422) in our words; a child that
 * cannot be started is MEDFIT_ERR_INTERNAL.
 */
export async function checkUploadIsolated(
  bytes: Uint8Array,
  declaration: UploadDeclaration,
  opts: { limits?: Partial<UploadCheckLimits>; log?: (message: string) => void } = {},
): Promise<PreparedUpload> {
  // Small files are checked whole here (`checkUpload` checks the declaration too); larger ones
  // only by their declaration, the file itself in the child.
  if (bytes.length <= PRECHECK_MAX_BYTES) checkUpload(bytes, declaration);
  else checkDeclaration(declaration);
  const limits = { ...UPLOAD_CHECK_LIMITS, ...opts.limits };
  const release = await slot();
  try {
    return await runChild(bytes, declaration, limits, opts.log ?? (() => {}));
  } finally {
    release();
  }
}

/** How to start the child: `dist` runs the compiled entry, the sources (vitest, tsx) go through tsx's loader. */
function childEntry(memoryBytes: number): { entry: string; execArgv: string[] } {
  const entry = siblingModule(import.meta.url, 'upload-check-child');
  // The JS heap may not outgrow the limit either: V8 stops with "heap out of memory" instead.
  const heap = `--max-old-space-size=${Math.max(64, Math.floor(memoryBytes / (1024 * 1024)))}`;
  return { entry: fileURLToPath(entry), execArgv: [...tsxImportArgs(entry), heap] };
}

/** Peak resident memory of a process in bytes (Linux), or undefined where /proc cannot tell. */
function peakMemory(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s*(\d+)\s*kB/m.exec(status) ?? /^VmRSS:\s*(\d+)\s*kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** A refusal sent by the child: only our own bad-data errors pass; anything else is replaced. */
function fromChild(e: CheckReply & { type: 'error' }): MedfitError {
  const s = e.error;
  if (s && s.code === 'MEDFIT_ERR_BAD_DATA' && typeof s.message === 'string' && s.message.length <= 2000) {
    const details = Array.isArray(s.details) ? s.details.filter((d): d is ErrorDetail => typeof d?.pointer === 'string' && typeof d?.message === 'string').slice(0, 10) : [];
    return new MedfitError('MEDFIT_ERR_BAD_DATA', s.message, details);
  }
  return refuse('the model could not be checked (the server log has the details)');
}

function runChild(bytes: Uint8Array, declaration: UploadDeclaration, limits: UploadCheckLimits, log: (message: string) => void): Promise<PreparedUpload> {
  const { entry, execArgv } = childEntry(limits.memoryBytes);
  const cwd = mkdtempSync(join(tmpdir(), 'medfit-check-'));
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...(process.env['TMPDIR'] ? { TMPDIR: process.env['TMPDIR'] } : {}) };
  return new Promise<PreparedUpload>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = fork(entry, [], { cwd, env, execArgv, serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    } catch (e) {
      rmSync(cwd, { recursive: true, force: true });
      reject(Errors.internal('the model check could not be started', e));
      return;
    }
    let stderr = '';
    let prepared: PreparedUpload | undefined;
    let settled = false;
    const seconds = Math.round(limits.timeoutMs / 100) / 10;
    const mib = Math.round(limits.memoryBytes / (1024 * 1024));
    const timeLimit = () => refuse(`loading and running the model took longer than the limit of ${seconds} s; it was stopped`);
    const memoryLimit = () => refuse(`loading and running the model used more memory than the limit of ${mib} MiB; it was stopped`);

    const finish = (outcome: { ok: PreparedUpload } | { err: MedfitError }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(poll);
      child.kill('SIGKILL');
      rmSync(cwd, { recursive: true, force: true });
      if (stderr.trim()) log(`model check (ONNX Runtime) said: ${stderr.trim()}`);
      if ('ok' in outcome) resolve(outcome.ok);
      else reject(outcome.err);
    };
    const overMemory = () => {
      const peak = child.pid !== undefined ? peakMemory(child.pid) : undefined;
      return peak !== undefined && peak > limits.memoryBytes;
    };
    const timer = setTimeout(() => finish({ err: timeLimit() }), limits.timeoutMs);
    const poll = setInterval(() => {
      if (overMemory()) finish({ err: memoryLimit() });
    }, MEMORY_POLL_MS);

    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += d.toString('utf8').slice(0, MAX_STDERR - stderr.length);
    });
    child.on('message', (m: CheckReply) => {
      if (settled || !m || typeof m !== 'object') return;
      if (m.type === 'prepared') {
        // Taken as sent before ONNX Runtime ran in the child: what is stored is what was checked.
        if (!prepared && m.prepared?.onnx instanceof Uint8Array && m.prepared.info) prepared = { info: m.prepared.info, onnx: m.prepared.onnx };
      } else if (m.type === 'ok') {
        // The peak is read while the child still exists: a spike between two polls counts too.
        if (overMemory()) finish({ err: memoryLimit() });
        else if (prepared) finish({ ok: prepared });
        else finish({ err: refuse('the model could not be checked (the server log has the details)') });
      } else if (m.type === 'error') {
        if (typeof m.log === 'string' && m.log) log(`model check: ${m.log.slice(0, MAX_STDERR)}`);
        finish({ err: fromChild(m) });
      }
    });
    child.on('error', (e) => {
      log(`model check process failed: ${e.message}`);
      finish({ err: refuse('the model could not be checked (the server log has the details)') });
    });
    // 'close', not 'exit': by then stderr is read to the end (a V8 heap-limit message included).
    child.on('close', (code, signal) => {
      if (settled) return;
      if (/heap out of memory|Reached heap limit/i.test(stderr)) return finish({ err: memoryLimit() });
      if (overMemory()) return finish({ err: memoryLimit() });
      log(`model check process ended without an answer (code ${code}, signal ${signal})`);
      finish({ err: refuse('ONNX Runtime crashed while loading or running the model; it was stopped') });
    });
    const request: CheckRequest = { bytes, declaration };
    child.send(request, (e) => {
      if (e && !settled) {
        log(`model check process could not be given the model: ${e.message}`);
        finish({ err: refuse('the model could not be checked (the server log has the details)') });
      }
    });
  });
}
