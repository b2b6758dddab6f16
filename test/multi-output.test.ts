/**
 * Multi-output regression from the command line, as a user runs it: `medfit train` on the
 * linnerud fitness table with three numeric targets, then `medfit predict` with the saved model.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixture, medfit, tempDir, type CliRun } from './helpers.js';

const dir = tempDir();
const csv = fixture('linnerud_fitness.csv');
const TARGETS = ['weight', 'waist', 'pulse'];

interface Summary {
  mean: number;
  std: number;
}

describe('medfit train --target weight,waist,pulse', () => {
  const out = join(dir, 'linnerud-model');
  let trained: CliRun;

  beforeAll(async () => {
    trained = await medfit(['train', csv, '--target', 'weight,waist,pulse', '--json', '--out', out]);
  }, 120_000);

  it('prints one JSON document with cv.metrics (the mean over outputs) and cv.outputs', () => {
    expect(trained.stderr).toBe('');
    expect(trained.code).toBe(0);
    const doc = JSON.parse(trained.stdout) as {
      task: string;
      target: string;
      cv: { folds: number; metrics: Record<string, Summary>; outputs: Record<string, Record<string, Summary>> };
      leaderboard: Array<{ family: string; outputs?: Record<string, unknown> }>;
      artifact: string;
    };
    expect(doc.task).toBe('regression');
    expect(doc.target).toBe('weight,waist,pulse');
    // Twenty rows do not predict these three: the report says the model is worse than the mean.
    expect(doc.cv.metrics['r2']!.mean).toBeLessThan(0);
    expect((doc as unknown as { warnings: { code: string }[] }).warnings.map((w) => w.code)).toContain('worse_than_mean');
    expect(doc.artifact).toBe(out);
    expect(Object.keys(doc.cv.outputs)).toEqual(TARGETS);
    for (const name of TARGETS) expect(Object.keys(doc.cv.outputs[name]!)).toEqual(expect.arrayContaining(['r2', 'rmse', 'mae']));
    for (const m of ['r2', 'rmse', 'mae']) {
      const mean = TARGETS.reduce((a, t) => a + doc.cv.outputs[t]![m]!.mean, 0) / TARGETS.length;
      expect(doc.cv.metrics[m]!.mean).toBeCloseTo(mean, 10);
    }
    expect(doc.leaderboard.every((c) => c.outputs !== undefined)).toBe(true);
  });

  it('saves a manifest with nOutputs, the targets as targets, and a value [N, 3] signature', () => {
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
      target: { column: string; task: string };
      model: { nOutputs?: number };
      signature: { outputs: Array<{ name: string; shape: number[] }> };
      schema: { columns: Array<{ name: string; role: string }> };
      metrics: { cv: { outputs?: Record<string, unknown> } };
    };
    expect(m.target).toEqual({ column: 'weight,waist,pulse', task: 'regression' });
    expect(m.model.nOutputs).toBe(3);
    expect(m.signature.outputs).toEqual([{ name: 'value', datatype: 'FP32', shape: [-1, 3] }]);
    expect(m.schema.columns.filter((c) => c.role === 'target').map((c) => c.name)).toEqual(TARGETS);
    expect(Object.keys(m.metrics.cv.outputs!)).toEqual(TARGETS);
  });

  it('predicts one values object per row, named by target', async () => {
    const run = await medfit(['predict', out, csv, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const doc = JSON.parse(run.stdout) as { model: { target: string }; predictions: Array<{ values?: Record<string, number> }> };
    expect(doc.model.target).toBe('weight,waist,pulse');
    expect(doc.predictions).toHaveLength(20);
    for (const p of doc.predictions) {
      expect(Object.keys(p)).toEqual(['values']);
      expect(Object.keys(p.values!)).toEqual(TARGETS);
      for (const v of Object.values(p.values!)) expect(Number.isFinite(v)).toBe(true);
    }
    // Plausible units: body weight in pounds, waist in inches, pulse in beats per minute.
    const mean = (t: string) => doc.predictions.reduce((a, p) => a + p.values![t]!, 0) / 20;
    expect(mean('weight')).toBeGreaterThan(140);
    expect(mean('waist')).toBeLessThan(50);
    // A single record without targets, from stdin, as text: one line of name=value per row.
    const text = await medfit(['predict', out, '-'], { stdin: 'chins,situps,jumps\n10,150,60\n' });
    expect(text.code).toBe(0);
    expect(text.stdout.trim()).toMatch(/^weight=[\d.]+\twaist=[\d.]+\tpulse=[\d.]+$/);
  });

  it('prints the leaderboard and each output\'s metrics without --json', async () => {
    const run = await medfit(['train', csv, '--target', 'weight, waist, pulse', '--model', 'linear', '--cv', '4', '--out', join(dir, 'text-model')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/targets "weight,waist,pulse": regression with 3 outputs/);
    expect(run.stdout).toMatch(/metrics are the mean over the 3 outputs/);
    expect(run.stdout).toMatch(/Per output \(mean ± std over folds\):/);
    for (const t of TARGETS) expect(run.stdout).toMatch(new RegExp(`^${t} +-?\\d`, 'm'));
  }, 60_000);

  it('refuses a label column among several targets (exit 2, one line)', async () => {
    const p = join(dir, 'labels.csv');
    writeFileSync(p, ['a,b,y,label', ...Array.from({ length: 30 }, (_, i) => `${i % 7},${i % 5},${i * 1.5},${i % 2 ? 'yes' : 'no'}`)].join('\n') + '\n');
    const run = await medfit(['train', p, '--target', 'y,label']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^medfit: --target y,label: "label" holds labels \(binary\); several targets must all be numeric/);
  });
});
