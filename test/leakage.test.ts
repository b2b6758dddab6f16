/**
 * The leakage guard as users meet it: `medfit train` prints the finding (warnings, the table, the
 * JSON document) and `--strict` refuses with exit 2 naming the column and its evidence; a job
 * with `strict: true` fails with MEDFIT_ERR_BAD_DATA, through POST /v1/jobs too, and the model
 * version of one without it carries the warning, and its job record the findings, structured.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { Rng } from '../src/core/index.js';
import { runTrainJob } from '../src/jobs/index.js';
import { fixture, medfitInProcess, rejection, tempDir } from './helpers.js';

const dir = tempDir();

/** pima_diabetes.csv with a planted copy of the label (`leak` = label + noise). */
function leakyPima(): string {
  const [head, ...lines] = readFileSync(fixture('pima_diabetes.csv'), 'utf8').trim().split('\n');
  const rng = new Rng(3);
  const out = [`${head},"leak"`, ...lines.map((l) => `${l},${((l.endsWith('"pos"') ? 1 : 0) + 0.2 * rng.normal()).toFixed(4)}`)];
  const p = join(dir, 'leaky.csv');
  writeFileSync(p, out.join('\n') + '\n');
  return p;
}

describe('the leakage guard in medfit train and in jobs', () => {
  const csv = leakyPima();
  const args = ['train', csv, '--target', 'diabetes', '--model', 'logistic', '--param', 'logistic.C=1', '--cv', '3'];

  it('--strict refuses with exit 2 and one line naming the column and its AUROC; nothing is saved', async () => {
    const out = join(dir, 'strict-model');
    const run = await medfitInProcess([...args, '--strict', '--out', out]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^medfit: \S*leaky\.csv: strict mode: the leakage check flags "leak" \(single_feature: auroc (1|0\.9\d+)\); leave it out with --ignore leak/);
    expect(existsSync(out)).toBe(false);
  });

  it('without --strict: a leakage warning with its evidence in the JSON document, and the honest score beside the leaky one', async () => {
    const run = await medfitInProcess([...args, '--json', '--out', join(dir, 'json-model')]);
    expect(run.code).toBe(0);
    const doc = JSON.parse(run.stdout) as {
      warnings: Array<{ code: string; column?: string; kind?: string; evidence?: Record<string, number | string>; message: string }>;
      leakage: { findings: Array<{ column: string; kind: string }>; rescore: { with: number; without: number; likelyLeak: boolean } };
    };
    const w = doc.warnings.find((x) => x.code === 'leakage' && x.kind === 'single_feature')!;
    expect(w).toMatchObject({ column: 'leak', evidence: { threshold: 0.98, folds: 3 } });
    expect(w.evidence!['auroc']).toBeGreaterThanOrEqual(0.98);
    expect(doc.leakage.rescore.likelyLeak).toBe(true);
    expect(doc.leakage.rescore.without).toBeLessThan(0.9);
    expect(doc.warnings.some((x) => x.code === 'likely_leak')).toBe(true);
  });

  it('prints the warnings and the leakage table in the plain report', async () => {
    const run = await medfitInProcess([...args, '--out', join(dir, 'text-model')]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: column "leak" alone predicts "diabetes" almost perfectly/);
    expect(run.stderr).toMatch(/warning: the cross-validated auroc \d\.\d{3} is likely a leak/);
    expect(run.stdout).toMatch(/Leakage check \(\d findings?; --strict refuses those found before training\):/);
    expect(run.stdout).toMatch(/\nleak\s+single_feature\s+auroc (1\.0000|0\.9\d+)\n/);
    expect(run.stdout).toMatch(/Without leak: auroc 0\.\d+ on the same folds \(with: (1\.0000|0\.9\d+)\): the score above is likely a leak/);
  });

  it('runTrainJob with strict: true fails with MEDFIT_ERR_BAD_DATA, and its warnings name the leak without it', async () => {
    const sha = createHash('sha256').update(readFileSync(csv)).digest('hex');
    const spec = {
      datasetPath: csv,
      datasetName: 'leaky.csv',
      target: 'diabetes',
      model: 'logistic' as const,
      params: { logistic: { C: 1 } },
      cv: 3,
      strict: true,
      outDir: join(dir, 'job-model'),
      lineage: { datasetId: 'd1', datasetSha256: sha, jobId: 'j1' },
    };
    const e = await rejection(runTrainJob(spec));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toMatch(/strict mode: the leakage check flags "leak"/);
    const ok = await runTrainJob({ ...spec, strict: false, outDir: join(dir, 'job-model-2') });
    expect(ok.warnings.some((m) => /column "leak" alone predicts "diabetes" almost perfectly \(univariate out-of-fold AUROC/.test(m))).toBe(true);
  });
});

describe('strict on POST /v1/jobs', () => {
  const ADMIN = 'test-admin-key-leakage-0123456789';
  let server: Server;
  let base = '';
  const auth = { authorization: `Bearer ${ADMIN}` };
  beforeAll(async () => {
    server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN, MEDFIT_LOG_LEVEL: 'silent' }, { dataDir: join(tempDir(), 'data'), port: '0' }));
    base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  }, 60_000);
  afterAll(async () => server?.close());

  /** The last event of a job's stream (it ends when the job does). */
  async function finished(id: string): Promise<string> {
    return (await (await fetch(`${base}/v1/jobs/${id}/events`, { headers: auth })).text()).split('\n\n').filter((b) => b.includes('data: ')).at(-1)!;
  }

  it("fails a strict job with MEDFIT_ERR_BAD_DATA naming the column; without strict the job's and its model version's records carry the warning", async () => {
    const up = await fetch(`${base}/v1/datasets?name=leaky`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: readFileSync(leakyPima()) });
    expect(up.status).toBe(201);
    const dataset = ((await up.json()) as { id: string }).id;
    const post = (extra: Record<string, unknown>) =>
      fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ dataset, target: 'diabetes', name: 'leaky', model: 'logistic', params: { logistic: { C: 1 } }, cv: 3, ...extra }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { id: string } }));
    const strict = await post({ strict: true });
    expect(strict.status).toBe(202);
    const last = await finished(strict.body.id);
    expect(last).toContain('MEDFIT_ERR_BAD_DATA');
    expect(last).toMatch(/strict mode: the leakage check flags \\"leak\\"/);
    const plain = await post({ strict: false });
    expect(plain.status).toBe(202);
    expect(await finished(plain.body.id)).toContain('succeeded');
    // The job's record shows the training's warnings, and points at its model version, whose record keeps them.
    const job = (await (await fetch(`${base}/v1/jobs/${plain.body.id}`, { headers: auth })).json()) as {
      model: { name: string; version: number };
      warnings: string[];
      leakage: { findings: Array<{ column: string; kind: string; evidence: Record<string, number> }>; rescore: { columns: string[]; likelyLeak: boolean; without: number } };
    };
    expect(job.warnings.some((m) => /column "leak" alone predicts "diabetes" almost perfectly/.test(m))).toBe(true);
    // The same findings structured, for a client that acts on them: column, kind, evidence, and the score without them.
    const single = job.leakage.findings.find((f) => f.kind === 'single_feature')!;
    expect(single).toMatchObject({ column: 'leak', evidence: { threshold: 0.98, folds: 3 } });
    expect(single.evidence['auroc']).toBeGreaterThanOrEqual(0.98);
    expect(job.leakage.rescore).toMatchObject({ columns: ['leak'], likelyLeak: true });
    expect(job.leakage.rescore.without).toBeLessThan(0.9);
    const record = await (await fetch(`${base}/v1/models/${job.model.name}/versions/${job.model.version}`, { headers: auth })).text();
    expect(record).toMatch(/column \\"leak\\" alone predicts \\"diabetes\\" almost perfectly \(univariate out-of-fold AUROC/);
  }, 60_000);
});
