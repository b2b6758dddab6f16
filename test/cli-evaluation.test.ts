/**
 * What `medfit train` stores for a version's page and shows the user: permutation importance in
 * the table and in `--json`, and beside the report in `evaluation.json` (the file the API hands
 * out) the importance, the reliability bins (binary) and the regression plots, all from the
 * out-of-fold predictions. In process (`medfitInProcess`), on the vendored clinical tables.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EvaluationPlots } from '../src/eval/index.js';
import { fixture, medfitInProcess, tempDir } from './helpers.js';

const dir = tempDir();
const evaluation = (out: string) => JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as EvaluationPlots & { metrics: Record<string, number> };

describe('medfit train: importance, reliability and regression plots', () => {
  it('binary: --json lists the importance; evaluation.json carries it with the reliability bins; the table shows the top 5', async () => {
    const out = join(dir, 'pima');
    const run = await medfitInProcess(['train', fixture('pima_diabetes.csv'), '--target', 'diabetes', '--model', 'logistic', '--cv', '3', '--json', '--out', out]);
    expect(run.code).toBe(0);
    const doc = JSON.parse(run.stdout) as { importance: NonNullable<EvaluationPlots['importance']>; rows: { used: number } };
    expect(doc.importance.metric).toBe('auroc');
    expect(doc.importance.features).toHaveLength(8);
    // Glucose is the strongest single predictor of diabetes in this table.
    expect(doc.importance.features[0]!.feature).toBe('glucose');
    expect(doc.importance.features[0]!.drop).toBeGreaterThan(0.05);
    const e = evaluation(out);
    expect(e.importance).toEqual(doc.importance);
    expect(Number.isFinite(e.metrics['auroc'])).toBe(true);
    expect(e.reliability!.reduce((a, b) => a + b.count, 0)).toBe(doc.rows.used);
    expect(e.regression).toBeUndefined();

    const text = await medfitInProcess(['train', fixture('pima_diabetes.csv'), '--target', 'diabetes', '--model', 'logistic', '--cv', '3', '--out', join(dir, 'pima-text')]);
    expect(text.code).toBe(0);
    const at = text.stdout.indexOf('Permutation importance');
    expect(at).toBeGreaterThan(0);
    const block = text.stdout.slice(at).split('\n\n')[0]!.split('\n');
    expect(block[0]).toMatch(/drop of out-of-fold auroc .* top 5 of 8/);
    expect(block.slice(1, 3)).toEqual([expect.stringMatching(/^column\s+drop\s+std$/), expect.stringMatching(/^-+/)]);
    expect(block.slice(3)).toHaveLength(5);
    expect(block[3]).toMatch(/^glucose\s/);
  }, 60_000);

  it('regression: evaluation.json carries the predicted-versus-actual grid and residual deciles', async () => {
    const out = join(dir, 'progression');
    const run = await medfitInProcess(['train', fixture('diabetes_progression.csv'), '--target', 'progression', '--model', 'linear', '--cv', '3', '--json', '--out', out]);
    expect(run.code, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as { rows: { used: number } };
    const e = evaluation(out);
    expect(e.importance!.metric).toBe('r2');
    expect(e.reliability).toBeUndefined();
    const [plot] = e.regression!;
    expect(plot!.output).toBe('progression');
    expect(plot!.counts).toHaveLength(plot!.bins * plot!.bins);
    expect(plot!.counts.reduce((a, b) => a + b, 0)).toBe(doc.rows.used);
    expect(plot!.residuals).toHaveLength(10);
  }, 60_000);
});
