import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Schema, type Task } from '../core/index.js';
import { fitPipeline, tableFromRows, transformTable, type Table } from '../data/index.js';
import { FAMILIES, type Family } from '../models/index.js';
import { loadArtifact, nextVersionDir, predictRecords, saveArtifact } from './index.js';

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

async function save(family: Family, task: Task, dir: string) {
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
  );
  return { model, manifest };
}

const combos: Array<[Family, Task]> = [
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

