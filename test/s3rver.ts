/**
 * s3rver, the local S3-compatible server the tests store blobs on, in a child process with
 * OpenSSL's legacy provider: s3rver 3.7 makes its ListObjectsV2 continuation tokens with DES,
 * which Node 17+ refuses otherwise (any truncated listing is then a 500).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from './helpers.js';

/** Starts s3rver on 127.0.0.1, port 0, silent, in a temporary folder; resolves its port and whether it can paginate. */
export function startS3rver(dir: string, legacy: boolean): Promise<{ child: ChildProcess; port: number; des: boolean }> {
  const script = `
    let des = true;
    try { require('node:crypto').createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8)); } catch { des = false; }
    process.stdin.on('end', () => process.exit(0)).resume();
    const S3rver = require('s3rver');
    new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.env.S3RVER_DIR }).run().then(
      (a) => process.stdout.write(JSON.stringify({ port: a.port, des }) + '\\n'),
      (e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, [...(legacy ? ['--openssl-legacy-provider'] : []), '-e', script], {
    cwd: ROOT,
    env: { ...process.env, S3RVER_DIR: dir },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, ...(JSON.parse(out) as { port: number; des: boolean }) });
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
}
