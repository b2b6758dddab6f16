/**
 * MEDFIT_MANIFEST_KEY in the `medfit` command: `train` signs the manifest it saves, `predict`
 * checks the signature, and a bad key is refused before any training starts.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { medfit, tempDir, type CliRun } from './helpers.js';

const KEY = 'cli-manifest-signing-key-0123456789';
const dir = tempDir();
const csv = join(dir, 'small.csv');
writeFileSync(csv, ['a,b,y', ...Array.from({ length: 60 }, (_, i) => `${i % 7},${(i * 3) % 11},${(i % 7) + ((i * 3) % 11) > 8 ? 'hi' : 'lo'}`)].join('\n') + '\n');
const out = join(dir, 'model');

describe('medfit train and predict with MEDFIT_MANIFEST_KEY', () => {
  let trained: CliRun;
  beforeAll(async () => {
    trained = await medfit(['train', csv, '--target', 'y', '--model', 'logistic', '--cv', '2', '--json', '--out', out], { env: { MEDFIT_MANIFEST_KEY: KEY } });
  }, 60_000);

  it('signs the manifest of the model it trains', () => {
    expect(trained.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['integrityAlgorithm']).toBe('hmac-sha256');
  });

  it('predicts with the key, and refuses without it or with another, saying what to do', async () => {
    const ok = await medfit(['predict', out, csv, '--json'], { env: { MEDFIT_MANIFEST_KEY: KEY } });
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { predictions: unknown[] }).predictions).toHaveLength(60);
    const none = await medfit(['predict', out, csv], { env: { MEDFIT_MANIFEST_KEY: '' } });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/manifest\.json is signed \(HMAC-SHA256\): set MEDFIT_MANIFEST_KEY to the key it was saved with/);
    const other = await medfit(['predict', out, csv], { env: { MEDFIT_MANIFEST_KEY: KEY.replace('cli', 'CLI') } });
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/does not match its signature/);
  }, 60_000);

  it('refuses a key shorter than 32 characters before training', async () => {
    const run = await medfit(['train', csv, '--target', 'y', '--out', join(dir, 'never')], { env: { MEDFIT_MANIFEST_KEY: 'too-short' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^medfit: configuration: MEDFIT_MANIFEST_KEY must be at least 32 characters\n$/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  }, 60_000);
});
