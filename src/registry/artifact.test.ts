import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Schema, type Task } from '../core/index.js';
import { fitPipeline, tableFromRows, transformTable, type Table } from '../data/index.js';
import { FAMILIES, type TableFamily } from '../models/index.js';
import { canonical } from './integrity.js';
import { loadArtifact, loadArtifactOnnx, nextVersionDir, predictRecords, readArtifactDetails, saveArtifact, sha256 } from './index.js';

const rng = new Rng(5);
const rows = Array.from({ length: 240 }, () => {
  const a = rng.normal();
  const b = rng.normal();
  return [a, b, a + 2 * b + 0.3 * rng.normal()];
});
const schema: Schema = {
  columns: [
    { name: 'a', type: 'numeric', role: 'feature' },
    { name: 'b', type: 'numeric', role: 'feature' },
    { name: 'y', type: 'numeric', role: 'target' },
  ],
};
const table: Table = tableFromRows(['a', 'b', 'y'], rows.map((r) => r.map(String)), { source: 'synthetic', format: 'csv', lines: rows.map((_, i) => i + 2) });
const all = rows.map((_, i) => i);
const pipeline = fitPipeline(table, schema, all);
const x = transformTable(pipeline, table).x;

function targetFor(task: Task): { y: Float64Array; nClasses: number; classes?: string[] } {
  if (task === 'regression') return { y: Float64Array.from(rows, (r) => r[2]!), nClasses: 1 };
  if (task === 'binary') return { y: Float64Array.from(rows, (r) => (r[2]! > 0 ? 1 : 0)), nClasses: 2, classes: ['neg', 'pos'] };
  return { y: Float64Array.from(rows, (r) => (r[2]! < -1 ? 0 : r[2]! < 1 ? 1 : 2)), nClasses: 3, classes: ['low', 'mid', 'high'] };
}

async function save(family: TableFamily, task: Task, dir: string, key?: string) {
  const t = targetFor(task);
  const fam = FAMILIES[family];
  const params = family === 'mlp' ? fam.parseParams({ epochs: 5 }, task, rows.length) : fam.defaults(task, rows.length);
  const model = await fam.train({ x, y: t.y, task, nClasses: t.nClasses }, params, { seed: 1 });
  const manifest = saveArtifact(
    dir,
    {
      task,
      target: { column: 'y', task, ...(t.classes ? { classes: t.classes } : {}) },
      schema,
      pipeline,
      model: { family, params: model.params, nFeatures: model.nFeatures, nClasses: model.nClasses },
      metrics: { cv: { folds: 5, metrics: {} }, selection: task === 'regression' ? 'r2' : 'auroc' },
      dataset: { source: 'synthetic', sha256: '0'.repeat(64), rows: rows.length, rowsUsed: rows.length },
      seed: 1,
      created: new Date(0).toISOString(),
      engines: { medfit: 'test', node: process.versions.node },
    },
    model,
    { roc: { fpr: [0, 1], tpr: [0, 1] } },
    key !== undefined ? { key } : {},
  );
  return { model, manifest };
}

const combos: Array<[TableFamily, Task]> = [
  ['logistic', 'binary'],
  ['logistic', 'multiclass'],
  ['linear', 'regression'],
  ['gbdt', 'binary'],
  ['gbdt', 'multiclass'],
  ['gbdt', 'regression'],
  ['mlp', 'binary'],
  ['mlp', 'multiclass'],
  ['mlp', 'regression'],
];

describe('save → load → identical predictions', () => {
  for (const [family, task] of combos) {
    it(`${family}, ${task}`, async () => {
      const dir = join(mkdtempSync(join(tmpdir(), 'medfit-art-')), 'm');
      const { model } = await save(family, task, dir);
      const loaded = loadArtifact(dir);
      expect(Array.from(loaded.model.predict(x))).toEqual(Array.from(model.predict(x)));
      const out = predictRecords(loaded, [{ a: 0.5, b: -1 }]).predictions[0]!;
      if (task === 'regression') expect(out).toEqual({ value: expect.any(Number) });
      else expect(Object.keys((out as { probabilities: object }).probabilities)).toEqual(targetFor(task).classes);
    }, 60_000);
  }
});

describe('refusing a bad model directory', () => {
  const base = mkdtempSync(join(tmpdir(), 'medfit-art-'));
  const dir = join(base, 'm');
  const ready = save('logistic', 'binary', dir);

  function tamper(edit: (m: Record<string, unknown>) => void, file = 'manifest.json'): string {
    const copy = join(base, `copy-${Math.random().toString(36).slice(2)}`);
    mkdirSync(copy);
    for (const f of ['manifest.json', 'weights.json']) writeFileSync(join(copy, f), readFileSync(join(dir, f)));
    const m = JSON.parse(readFileSync(join(copy, file), 'utf8')) as Record<string, unknown>;
    edit(m);
    writeFileSync(join(copy, file), JSON.stringify(m));
    return copy;
  }

  it('refuses an edited manifest', async () => {
    await ready;
    const d = tamper((m) => ((m['task'] as string) = 'regression'));
    expect(() => loadArtifact(d)).toThrow(/manifest\.json was changed after it was saved \(integrity hash mismatch\)/);
  });

  it('refuses changed weights', async () => {
    await ready;
    const d = tamper((m) => ((m['weights'] as { intercept: number[] }).intercept[0] = 42), 'weights.json');
    expect(() => loadArtifact(d)).toThrow(/weights\.json does not match its SHA-256/);
  });

  it('refuses another format version with advice', async () => {
    await ready;
    const d = tamper((m) => (m['formatVersion'] = 99));
    expect(() => loadArtifact(d)).toThrow(/format version 99 is not supported \(this medfit reads version 1\)/);
  });

  it('refuses a directory that is not a model, and non-JSON', async () => {
    await ready;
    expect(() => loadArtifact(base)).toThrow(/no manifest\.json: not a medfit model directory/);
    const d = tamper(() => {});
    writeFileSync(join(d, 'manifest.json'), '{not json');
    expect(() => loadArtifact(d)).toThrow(MedfitError);
    expect(() => loadArtifact(d)).toThrow(/manifest\.json is not valid JSON/);
  });

  it('never overwrites a saved version', async () => {
    await ready;
    expect(nextVersionDir(base, 'x')).toBe(join(base, 'x', 'v1'));
    mkdirSync(join(base, 'x', 'v1'), { recursive: true });
    mkdirSync(join(base, 'x', 'v7'));
    expect(nextVersionDir(base, 'x')).toBe(join(base, 'x', 'v8'));
    await expect(save('logistic', 'binary', dir)).rejects.toThrow(/already exists and is not empty/);
  });
});


describe('manifest integrity: HMAC-SHA256 with MEDFIT_MANIFEST_KEY', () => {
  const KEY = 'k'.repeat(16) + '-manifest-signing-key';
  const OTHER = 'o'.repeat(16) + '-another-signing-key!';
  const base = mkdtempSync(join(tmpdir(), 'medfit-hmac-'));
  const signed = join(base, 'signed');
  const plain = join(base, 'plain');
  const ready = Promise.all([save('logistic', 'binary', signed, KEY), save('logistic', 'binary', plain)]);

  function copyOf(dir: string, edit?: (m: Record<string, unknown>) => void): string {
    const copy = join(base, `copy-${Math.random().toString(36).slice(2)}`);
    mkdirSync(copy);
    for (const f of readdirSync(dir)) writeFileSync(join(copy, f), readFileSync(join(dir, f)));
    if (edit) {
      const m = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      edit(m);
      writeFileSync(join(copy, 'manifest.json'), JSON.stringify(m));
    }
    return copy;
  }

  it('signs with the key, records the algorithm, and loads with the same key only', async () => {
    await ready;
    const m = JSON.parse(readFileSync(join(signed, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(m['integrityAlgorithm']).toBe('hmac-sha256');
    expect(m['integrity']).toMatch(/^[0-9a-f]{64}$/);
    // Not a plain hash: nobody without the key can recompute it.
    const { integrity, ...body } = m;
    expect(sha256(canonical(body))).not.toBe(integrity);
    expect(loadArtifact(signed, { key: KEY }).manifest.task).toBe('binary');
    expect(loadArtifactOnnx(signed, { key: KEY }).onnx.length).toBeGreaterThan(0);
    expect(() => loadArtifact(signed, { key: OTHER })).toThrow(/manifest\.json does not match its signature: it was changed after it was saved, or signed with another MEDFIT_MANIFEST_KEY/);
    expect(() => loadArtifact(signed)).toThrow(/manifest\.json is signed \(HMAC-SHA256\): set MEDFIT_MANIFEST_KEY to the key it was saved with/);
    expect(() => readArtifactDetails(signed)).toThrow(/set MEDFIT_MANIFEST_KEY/);
  });

  it('refuses a signed manifest edited afterwards', async () => {
    await ready;
    const d = copyOf(signed, (m) => (m['task'] = 'regression'));
    expect(() => loadArtifact(d, { key: KEY })).toThrow(/does not match its signature/);
  });

  it('refuses a downgrade: a plain-hash manifest (rehashed by whoever edited it) where a key is set', async () => {
    await ready;
    expect(() => loadArtifact(plain, { key: KEY })).toThrow(/manifest\.json is not signed \(it has a plain SHA-256\), and this medfit has MEDFIT_MANIFEST_KEY set so it accepts signed models only: save the model again/);
    const forged = copyOf(signed, (m) => {
      m['task'] = 'regression';
      m['integrityAlgorithm'] = 'sha256';
      delete m['integrity'];
      m['integrity'] = sha256(canonical(m));
    });
    expect(() => loadArtifact(forged, { key: KEY })).toThrow(/is not signed/);
    // Without a key, the same forgery is exactly what a plain hash cannot tell apart: accepted.
    expect(loadArtifact(forged).manifest.task).toBe('regression');
    const noAlgorithm = copyOf(signed, (m) => {
      delete m['integrityAlgorithm'];
    });
    expect(() => loadArtifact(noAlgorithm, { key: KEY })).toThrow(/is not signed/);
  });

  it('keeps plain SHA-256 without a key, and refuses short keys', async () => {
    await ready;
    expect(JSON.parse(readFileSync(join(plain, 'manifest.json'), 'utf8'))['integrityAlgorithm']).toBe('sha256');
    expect(loadArtifact(plain).manifest.task).toBe('binary');
    expect(() => loadArtifact(plain, { key: 'short' })).toThrow(/MEDFIT_MANIFEST_KEY must be at least 32 characters/);
    await expect(save('logistic', 'binary', join(base, 'short'), 'short')).rejects.toThrow(/at least 32 characters/);
    expect(existsSync(join(base, 'short'))).toBe(false);
  });

  it('checks the hash of every file it hands out: model.onnx for serving, evaluation.json for details', async () => {
    await ready;
    expect(readArtifactDetails(plain).evaluation).toEqual({ roc: { fpr: [0, 1], tpr: [0, 1] } });
    const onnx = copyOf(plain);
    const bytes = readFileSync(join(onnx, 'model.onnx'));
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(join(onnx, 'model.onnx'), bytes);
    expect(() => loadArtifactOnnx(onnx)).toThrow(/model\.onnx does not match its SHA-256 in manifest\.json/);
    const evaluation = copyOf(plain);
    writeFileSync(join(evaluation, 'evaluation.json'), '{"roc": "forged"}');
    expect(() => readArtifactDetails(evaluation)).toThrow(/evaluation\.json does not match its SHA-256/);
    const unlisted = copyOf(plain, (m) => {
      delete (m['files'] as Record<string, string>)['model.onnx'];
      delete m['integrity'];
      m['integrity'] = sha256(canonical(m));
    });
    expect(() => loadArtifactOnnx(unlisted)).toThrow(/model\.onnx is not listed in manifest\.json/);
  });
});
