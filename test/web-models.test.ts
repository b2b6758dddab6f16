/**
 * The model pages in a real browser: the models list, one model's versions with stage changes,
 * a version's evidence (ROC curve with its AUROC interval, the confusion matrix at a threshold the
 * reader moves, calibration before and after, importance, lineage), a search's long leaderboard, regression plots, an uploaded ONNX model's
 * signature, two versions side by side, deep links, a read-only key, and 390 px phones. The
 * threshold arithmetic and the intervals are also checked on their own, against known values.
 */
import type { Browser, Page } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../src/api/index.js';
import { fx, metricMeaning, verdict, wilson } from '../web/src/pages/models/meanings.js';
import { operatingPoint, youdenThreshold } from '../web/src/pages/models/threshold.js';
import * as onnx from './onnx-builders.js';
import { ROOT } from './helpers.js';
import { ADMIN_KEY, expectAccessible, expectNoHorizontalScroll, launchBrowser, openPage, screenshot, signIn, SKIP_REASON, startWebServer, type WebServer } from './web-harness.js';

describe('threshold arithmetic and intervals', () => {
  const roc = { fpr: [0, 0, 0.5, 1], tpr: [0, 0.5, 1, 1], thresholds: [1.9, 0.9, 0.6, 0.3] };

  it('takes the counts of the nearest ROC point at or above the threshold', () => {
    expect(operatingPoint(roc, 2, 2, 0.5)).toMatchObject({ index: 2, pointThreshold: 0.6, tp: 2, fp: 1, tn: 1, fn: 0, sensitivity: 1, specificity: 0.5, ppv: 2 / 3, npv: 1 });
    expect(operatingPoint(roc, 2, 2, 0.6)).toMatchObject({ index: 2, tp: 2, fp: 1 });
    expect(operatingPoint(roc, 2, 2, 0.95)).toMatchObject({ index: 0, tp: 0, fp: 0, tn: 2, fn: 2, sensitivity: 0, ppv: null });
    expect(operatingPoint(roc, 2, 2, 0)).toMatchObject({ index: 3, tp: 2, fp: 2, tn: 0, fn: 0, specificity: 0, npv: null });
    // Youden's J = TPR − FPR is largest at the second point (0.5) and the third (0.5): the first wins.
    expect(youdenThreshold(roc)).toBe(0.9);
  });

  it('gives the published Wilson intervals', () => {
    // Newcombe (1998), Table I: 0/10 → 0–0.2775, 5/10 → 0.2366–0.7634 (95%).
    const zero = wilson(0, 10)!;
    expect(zero.lower).toBe(0);
    expect(zero.upper).toBeCloseTo(0.2775, 4);
    const half = wilson(5, 10)!;
    expect(half.lower).toBeCloseTo(0.2366, 4);
    expect(half.upper).toBeCloseTo(0.7634, 4);
    expect(wilson(0, 0)).toBeNull();
  });

  it('judges each metric in its own direction and reads calibration in words', () => {
    expect(verdict('auroc', 0.8, 0.9)).toBe('better');
    expect(verdict('brier', 0.1, 0.2)).toBe('worse');
    expect(verdict('log_loss', 0.3, 0.2)).toBe('better');
    expect(verdict('calibration_slope', 1.5, 0.9)).toBe('better');
    expect(verdict('bias', -2, 1)).toBe('better');
    expect(verdict('auroc', 0.9, 0.91, 0.02)).toBe('same');
    expect(verdict('auroc', null, 0.9)).toBe('unknown');
    expect(metricMeaning('calibration_slope', 1.9, { task: 'binary' })).toMatch(/under-confident: true risks are more extreme than predicted/);
    expect(metricMeaning('calibration_slope', 0.6, { task: 'binary' })).toMatch(/over-confident/);
    expect(metricMeaning('auroc', 0.95, { task: 'binary', positive: 'malignant', negative: 'benign' })).toBe('A random "malignant" case is ranked above a random "benign" one 95% of the time (50% is a coin toss).');
    expect(metricMeaning('r2', 0.5, { task: 'regression', target: 'progression' })).toMatch(/explains 50% of the variance of progression/);
  });
});

let web: WebServer;
const versionPath = (name: string, v: number) => `/v1/models/${name}/versions/${v}`;

async function call<T>(path: string, init: { method?: string; json?: unknown; body?: Buffer; type?: string } = {}): Promise<T> {
  const res = await fetch(`${web.base}${path}`, {
    method: init.method ?? (init.json !== undefined || init.body ? 'POST' : 'GET'),
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(init.json !== undefined ? { 'content-type': 'application/json' } : init.type ? { 'content-type': init.type } : {}) },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : init.body ? { body: init.body } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

async function train(spec: Record<string, unknown>): Promise<void> {
  const job = await call<{ id: string }>('/v1/jobs', { json: spec });
  for (;;) {
    const j = await call<{ status: string; error?: unknown }>(`/v1/jobs/${job.id}`);
    if (j.status === 'succeeded') return;
    if (j.status === 'failed' || j.status === 'cancelled') throw new Error(`training ${JSON.stringify(spec)}: ${j.status} ${JSON.stringify(j.error)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  if (SKIP_REASON) return;
  web = await startWebServer();
  const upload = (name: string, file: string) => call<{ id: string }>(`/v1/datasets?name=${name}`, { body: readFileSync(join(ROOT, 'test', 'fixtures', file)), type: 'text/csv' });
  const wdbc = await upload('wdbc', 'breast_cancer_wdbc.csv');
  const diabetes = await upload('diabetes', 'diabetes_progression.csv');
  // Fast settings: three folds, a linear model and a small boosted ensemble.
  await train({ dataset: wdbc.id, target: 'diagnosis', name: 'cancer', model: 'logistic', cv: 3 });
  await train({ dataset: wdbc.id, target: 'diagnosis', name: 'cancer', model: 'gbdt', cv: 3, params: { gbdt: { trees: 20 } } });
  await train({ dataset: diabetes.id, target: 'progression', name: 'progress', model: 'linear', cv: 3 });
  await call('/v1/models', { json: { name: 'tiny', onnx: Buffer.from(onnx.classifier()).toString('base64'), task: 'binary', features: ['a', 'b', 'c'], classes: ['no', 'yes'] } });
}, 300_000);
afterAll(async () => {
  await web?.close();
});

/** The number in a confusion-matrix cell. */
const cell = async (page: Page, id: string) => Number((await page.getByTestId(id).locator('.cm-n').textContent())!.trim());

describe.skipIf(SKIP_REASON !== null)('the model pages in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('opens a version from the list: ROC curve with its AUROC, a threshold that moves the confusion matrix, and a deep link that survives a reload', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
    await page.getByRole('link', { name: 'cancer', exact: true }).waitFor();
    await expectAccessible(page, 'the models list');
    await page.getByRole('link', { name: 'cancer', exact: true }).click();
    await page.getByRole('heading', { name: 'Model cancer' }).waitFor();
    // Each version's main metric arrives on its own.
    await expect(page.getByTestId('version-row-1').getByText(/AUROC \d\.\d{3} ± \d\.\d{3}/).waitFor()).resolves.toBeUndefined();
    await expectAccessible(page, 'the model page');
    await page.getByRole('link', { name: 'Version 2' }).click();
    await page.waitForURL('**/models/cancer/versions/2');

    type Summary = Record<'calibration_slope' | 'calibration_intercept' | 'brier' | 'log_loss', number>;
    const v2 = await call<{ evaluation: { confusion: number[][]; aurocCi: { lower: number; upper: number }; metrics: { auroc: number }; calibration: { method: string; before: Summary; after: Summary } } }>(versionPath('cancer', 2));
    const rocTitle = page.getByRole('heading', { name: /^ROC curve · AUROC/ });
    await rocTitle.waitFor();
    expect(await rocTitle.textContent()).toBe(`ROC curve · AUROC ${v2.evaluation.metrics.auroc.toFixed(3)} (95% CI ${v2.evaluation.aurocCi.lower.toFixed(3)}–${v2.evaluation.aurocCi.upper.toFixed(3)})`);
    await expect(page.getByRole('img', { name: /^ROC curve of version 2/ }).locator('canvas').count()).resolves.toBe(1);
    await expect(page.getByText('A random "malignant" case is ranked above a random "benign" one').count()).resolves.toBe(1);

    // At the report's own threshold the matrix is the report's.
    const [[tn, fp], [fn, tp]] = v2.evaluation.confusion as [[number, number], [number, number]];
    expect([await cell(page, 'cm-tp'), await cell(page, 'cm-fn'), await cell(page, 'cm-fp'), await cell(page, 'cm-tn')]).toEqual([tp, fn, fp, tn]);
    const sens0 = await page.getByTestId('rate-sens').textContent();

    // A strict threshold by typing: fewer flags, fewer false alarms, lower sensitivity.
    const number = page.getByLabel('Threshold value');
    await number.fill('0.9');
    await expect.poll(() => cell(page, 'cm-tp')).toBeLessThan(tp);
    expect(await cell(page, 'cm-fp')).toBeLessThanOrEqual(fp);
    expect((await cell(page, 'cm-tp')) + (await cell(page, 'cm-fn'))).toBe(tp + fn);
    expect(await page.getByTestId('rate-sens').textContent()).not.toBe(sens0);

    // A lenient one with the keyboard on the slider: 0.9 → 0.2 in steps of 0.01.
    const slider = page.getByRole('slider', { name: /Threshold: flag "malignant"/ });
    await slider.focus();
    for (let i = 0; i < 70; i++) await slider.press('ArrowLeft');
    await expect.poll(() => number.inputValue()).toBe('0.2');
    await expect.poll(() => cell(page, 'cm-tp')).toBeGreaterThanOrEqual(tp);
    expect(await cell(page, 'cm-fp')).toBeGreaterThanOrEqual(fp);
    expect((await cell(page, 'cm-fp')) + (await cell(page, 'cm-tn'))).toBe(fp + tn);

    // Back to the report's threshold: its exact matrix again.
    await page.getByRole('button', { name: /^Back to 0\.500/ }).click();
    await expect.poll(() => cell(page, 'cm-tp')).toBe(tp);
    await expect(page.getByRole('heading', { name: 'Calibration (reliability)' }).count()).resolves.toBe(1);
    // Calibration (auto keeps a calibrator): the method and why, before and after, both curves on the plot.
    const cal = v2.evaluation.calibration;
    const short = cal.method === 'platt' ? 'Platt' : 'isotonic';
    await expect(page.getByTestId('calibration-method').textContent()).resolves.toMatch(new RegExp(`^Probabilities recalibrated by ${cal.method === 'platt' ? 'Platt scaling' : 'isotonic regression'} .*, chosen by cross-fitted log loss`));
    for (const k of ['calibration_slope', 'brier'] as const) {
      await expect(page.locator(`tr[data-calibration="${k}"] td`).allTextContents()).resolves.toEqual([fx(cal.before[k]), fx(cal.after[k])]);
    }
    const reliability = page.getByRole('img', { name: new RegExp(`^Reliability plot of version 2: .* after ${cal.method === 'platt' ? 'Platt scaling' : 'isotonic regression'} in \\d+ bins .* and before calibration in \\d+ bins`) });
    await expect(reliability.locator('.u-legend .u-series .u-label').allTextContents()).resolves.toEqual(['Predicted', 'Perfect calibration', 'Before calibration', `After (${short})`]);
    await expect(page.getByRole('heading', { name: /Feature importance/ }).count()).resolves.toBe(1);
    await expect(page.getByRole('link', { name: 'Predict with this version' }).getAttribute('href')).resolves.toBe('/models/cancer/versions/2/predict');
    await expect(page.getByRole('link', { name: 'Compare with another version' }).getAttribute('href')).resolves.toBe('/models/cancer/compare?a=1&b=2');
    await expectAccessible(page, 'a binary version');
    await screenshot(page, 'models-version-binary');

    await page.reload();
    await page.getByRole('heading', { name: /^ROC curve · AUROC/ }).waitFor();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toMatch(/^cancer · version 2/);
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('changes a version\'s stage on its page and on the model page; production archives the previous one', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/cancer/versions/1');
    const h1 = page.getByRole('heading', { level: 1 });
    await expect.poll(() => h1.textContent()).toContain('no stage');
    await page.getByLabel('Stage of version 1').selectOption('production');
    await page.getByRole('button', { name: 'Set stage' }).click();
    await expect.poll(() => h1.textContent()).toContain('production');
    await expect.poll(() => page.getByTestId('status').textContent()).toMatch(/cancer version 1 moved to production/);
    await expectAccessible(page, 'a version after a stage change');

    await page.goto('/models/cancer');
    const row2 = page.getByTestId('version-row-2');
    await row2.getByLabel('Move to').selectOption('production');
    await expect(row2.getByText('Version 1 will be archived.').count()).resolves.toBe(1);
    await row2.getByRole('button', { name: 'Set stage of version 2' }).click();
    await expect.poll(() => page.getByTestId('version-row-1').locator('.badge').textContent()).toBe('archived');
    await expect(row2.locator('.badge').textContent()).resolves.toBe('production');
    const model = await call<{ versions: { version: number; stage: string }[] }>('/v1/models/cancer');
    expect(model.versions.map((v) => v.stage)).toEqual(['archived', 'production']);
    await screenshot(page, 'models-model-stages');
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('compares two versions side by side with each difference in words and both ROC curves', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/cancer');
    await page.getByLabel('Version A (baseline)').selectOption('1');
    await page.getByLabel('Version B').selectOption('2');
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.waitForURL(/\/models\/cancer\/compare\?a=1&b=2$/);
    const auroc = page.locator('tr[data-metric="auroc"]');
    await auroc.waitFor();
    const [a, b] = await Promise.all([call<{ metrics: { cv: Record<string, { mean: number }> } }>(versionPath('cancer', 1)), call<{ metrics: { cv: Record<string, { mean: number }> } }>(versionPath('cancer', 2))]);
    const d = b.metrics.cv['brier']!.mean - a.metrics.cv['brier']!.mean;
    const brier = page.locator('tr[data-metric="brier"]');
    await expect(brier.locator('td').nth(2).textContent()).resolves.toBe(`${d > 0 ? '+' : '−'}${Math.abs(d).toFixed(3)}`);
    // Lower is better for the Brier score: the words say so, not only the colour.
    await expect(brier.locator('td.verdict').textContent()).resolves.toMatch(/^(B better|B worse|similar)/);
    await expect(brier.textContent()).resolves.toContain('lower is better');
    await expect(page.getByRole('img', { name: /^ROC curves of version 1 .* and version 2/ }).locator('canvas').count()).resolves.toBe(1);
    await expectAccessible(page, 'the comparison');

    // Changing a side keeps the URL shareable.
    await page.getByLabel('Version A (baseline)').selectOption('2');
    await page.waitForURL(/\/models\/cancer\/compare\?a=2&b=2$/);
    await expect(page.getByText('Both sides show the same version').count()).resolves.toBe(1);
    await page.goto('/models/cancer/compare?a=1&b=2');
    await auroc.waitFor();
    await screenshot(page, 'models-compare');
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('shows regression plots per output, and an uploaded model\'s signature instead of an evaluation', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/progress/versions/1');
    await page.getByRole('heading', { name: 'Predicted versus actual' }).waitFor();
    await expect(page.getByRole('img', { name: /^Predicted versus actual progression/ }).count()).resolves.toBe(1);
    await expect(page.getByRole('img', { name: /^Mean residual ± SD of progression/ }).locator('canvas').count()).resolves.toBe(1);
    await expect(page.locator('[data-metric="r2"] .metric-meaning').textContent()).resolves.toMatch(/explains \d+% of the variance of progression/);
    await expectAccessible(page, 'a regression version');
    await screenshot(page, 'models-version-regression');

    await page.goto('/models/tiny/versions/1');
    await page.getByRole('heading', { name: 'Signature' }).waitFor();
    await expect(page.getByText('medfit did not train it').count()).resolves.toBe(1);
    await expect(page.getByRole('heading', { name: /ROC curve/ }).count()).resolves.toBe(0);
    await expectAccessible(page, 'an uploaded version');
    await screenshot(page, 'models-version-uploaded');
    // One version only: nothing to compare it with.
    await expect(page.getByRole('link', { name: 'Compare with another version' }).count()).resolves.toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('offers a read-only key no stage change and no prediction; folds a search\'s long leaderboard away', async () => {
    const { key } = await createKey(web.server.services.store, 'default', ['read'], 'models-reader');
    const { page, errors, context } = await openPage(browser, web.base);
    // A budgeted search takes too long for this file: the shape of its record, put on version 2's answer.
    await page.route('**/v1/models/cancer/versions/2', async (route) => {
      const res = await route.fetch();
      const v = (await res.json()) as { metrics: { leaderboard: Record<string, unknown>[] }; evaluation: Record<string, unknown> };
      const row = v.metrics.leaderboard.find((e) => e['family'] === 'gbdt')!;
      v.metrics.leaderboard = [
        { ...row, family: 'ensemble', params: { members: 'gbdt#3,logistic#0', weights: [0.75, 0.25] }, seconds: 1.5 },
        row,
        ...Array.from({ length: 9 }, (_, i) => ({ ...row, params: { trees: 50 + i }, searched: true, seconds: 0.4 })),
        { ...row, params: { trees: 400 }, searched: true, folds: 2, seconds: 0.3 },
        { ...row, params: { trees: 500 }, searched: true, folds: 1, seconds: 0.2 },
      ];
      v.evaluation['search'] = { budget: 30, seconds: 29.46, trials: { logistic: { started: 1, complete: 1 }, gbdt: { started: 12, complete: 10 } }, repeats: 1 };
      await route.fulfill({ response: res, json: v });
    });
    await signIn(page, key);
    await page.goto('/models/cancer/versions/2');
    await page.getByRole('heading', { name: /^ROC curve · AUROC/ }).waitFor();
    await expect(page.getByRole('button', { name: 'Set stage' }).count()).resolves.toBe(0);
    await expect(page.getByRole('link', { name: 'Predict with this version' }).count()).resolves.toBe(0);

    // The search: one line of what it tried, the top 10 rows, searched and stopped rows tagged, the ensemble's members.
    await expect(page.getByRole('heading', { name: 'Candidates tried (13)' }).count()).resolves.toBe(1);
    await expect(page.getByTestId('search-summary').textContent()).resolves.toBe('Searched for 29.5 s of a 30 s budget: logistic 1 tried (1 on every fold), gbdt 12 tried (10 on every fold).');
    const rows = page.locator('table.leaderboard tbody tr');
    await expect(rows.count()).resolves.toBe(10);
    await expect(rows.nth(0).locator('td.params').textContent()).resolves.toBe('gbdt #3 × 0.75logistic #0 × 0.25');
    await expect(rows.nth(1).locator('.badge').allTextContents()).resolves.toEqual(['chosen']);
    await page.getByRole('button', { name: 'Show all 13 rows' }).click();
    await expect(rows.count()).resolves.toBe(13);
    await expect(rows.nth(11).locator('.badge').allTextContents()).resolves.toEqual(['searched', '2/3 folds']);
    await expect(rows.locator('.badge', { hasText: 'chosen' }).count()).resolves.toBe(1);
    await expect(rows.locator('.badge', { hasText: 'searched' }).count()).resolves.toBe(11);
    await page.goto('/models/cancer');
    await page.getByTestId('version-row-1').waitFor();
    await expect(page.getByRole('columnheader', { name: 'Change stage' }).count()).resolves.toBe(0);
    await expect(page.getByRole('link', { name: 'Train a model' }).count()).resolves.toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('fits a 390 px phone without sideways scrolling', async () => {
    const { page, errors, context } = await openPage(browser, web.base, 390);
    await signIn(page);
    for (const [url, ready, shot] of [
      ['/models', page.getByRole('link', { name: 'cancer', exact: true }), 'models-list-390'],
      ['/models/cancer', page.getByTestId('version-row-2'), 'models-model-390'],
      ['/models/cancer/versions/2', page.getByRole('heading', { name: /^ROC curve · AUROC/ }), 'models-version-390'],
      ['/models/progress/versions/1', page.getByRole('heading', { name: 'Predicted versus actual' }), 'models-regression-390'],
      ['/models/cancer/compare?a=1&b=2', page.locator('tr[data-metric="auroc"]'), 'models-compare-390'],
    ] as const) {
      await page.goto(url);
      await ready.waitFor();
      await expectNoHorizontalScroll(page, url);
      await expectAccessible(page, `${url} at 390 px`);
      await screenshot(page, shot);
    }
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);
});
