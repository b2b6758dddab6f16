/**
 * The quality bar of the foundation issue: `medfit train <file> --target <col> --cv 5 --json`
 * with the defaults, on the real clinical tables, must reach the scores below in under 60 s.
 * The scores are cross-validated (each fold scored on rows it never trained on).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, medfit, tempDir } from './helpers.js';

const cases = [
  { file: 'breast_cancer_wdbc.csv', target: 'diagnosis', metric: 'auroc', bar: 0.99, task: 'binary' },
  { file: 'pima_diabetes.csv', target: 'diabetes', metric: 'auroc', bar: 0.83, task: 'binary' },
  { file: 'diabetes_progression.csv', target: 'progression', metric: 'r2', bar: 0.475, task: 'regression' },
] as const;

describe('reference scores with the defaults', () => {
  for (const c of cases) {
    it(`${c.file}: ${c.metric} ≥ ${c.bar} in under 60 s`, async () => {
      const out = join(tempDir(), 'model');
      const run = await medfit(['train', fixture(c.file), '--target', c.target, '--cv', '5', '--json', '--out', out]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const doc = JSON.parse(run.stdout) as {
        task: string;
        target: string;
        model: { family: string; params: Record<string, unknown> };
        cv: { folds: number; metrics: Record<string, { mean: number; std: number }> };
        artifact: string;
      };
      expect(doc.task).toBe(c.task);
      expect(doc.target).toBe(c.target);
      expect(doc.cv.folds).toBe(5);
      expect(doc.cv.metrics[c.metric]!.mean).toBeGreaterThanOrEqual(c.bar);
      expect(doc.artifact).toBe(out);
      expect(existsSync(join(out, 'manifest.json'))).toBe(true);
      const names =
        c.task === 'regression'
          ? ['mse', 'rmse', 'mae', 'r2', 'pearson_r', 'bias', 'error_std']
          : ['auroc', 'auprc', 'accuracy', 'balanced_accuracy', 'precision', 'recall', 'specificity', 'f1', 'log_loss', 'brier', 'calibration_slope', 'calibration_intercept'];
      expect(Object.keys(doc.cv.metrics).sort()).toEqual([...names].sort());
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { dataset: { sha256: string } };
      expect(manifest.dataset.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(run.seconds).toBeLessThan(60);
      console.log(`${c.file}: ${doc.model.family} ${c.metric} ${doc.cv.metrics[c.metric]!.mean.toFixed(4)} in ${run.seconds.toFixed(1)} s`);
    }, 120_000);
  }
});
