/**
 * Training from the browser: the form (families and their hyperparameters from /v1/families,
 * inline and server field errors), a job's live page fed by its events (the loss chart growing
 * epoch by epoch, the leaderboard, the link to the new version), cancel from the page, a failure's
 * message, and the jobs list updating without a reload. Each page gets axe and a screenshot.
 */
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createKey } from '../src/api/index.js';
import { fixture } from './helpers.js';
import { ADMIN_KEY, expectAccessible, expectNoHorizontalScroll, launchBrowser, openPage, screenshot, signIn, SKIP_REASON, startWebServer, type WebServer } from './web-harness.js';

const auth = { authorization: `Bearer ${ADMIN_KEY}` };

async function uploadCsv(base: string, name: string, body: string | Buffer): Promise<string> {
  const res = await fetch(`${base}/v1/datasets?name=${encodeURIComponent(name)}`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body });
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function startJob(base: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

/** The loss chart's counters (exposed as data attributes on its container). */
async function lossCounts(page: Page): Promise<{ points: number; fits: number; epochs: number }> {
  const el = page.getByTestId('loss');
  const [points, fits, epochs] = await Promise.all(['data-points', 'data-fits', 'data-epochs'].map((a) => el.getAttribute(a)));
  return { points: Number(points), fits: Number(fits), epochs: Number(epochs) };
}

/**
 * Records every message of the page's live region from now on (the toast leaves after a few
 * seconds, so a check made later reads the record). Lasts until the next full page load.
 */
async function recordAnnouncements(page: Page): Promise<void> {
  await page.evaluate(() => {
    const g = globalThis as any;
    g.__said = [];
    new g.MutationObserver(() => {
      const t = g.document.querySelector('[data-testid="status"]')?.textContent;
      if (t && g.__said[g.__said.length - 1] !== t) g.__said.push(t);
    }).observe(g.document.body, { childList: true, subtree: true, characterData: true });
  });
}
async function announced(page: Page): Promise<string> {
  return page.evaluate(() => ((globalThis as any).__said ?? []).join('\n'));
}

/** Waits until the loss chart's counter `attr` reaches `n` (checked on every animation frame). */
async function lossAtLeast(page: Page, attr: 'data-points' | 'data-epochs', n: number, timeout: number): Promise<void> {
  await page.waitForFunction(([a, least]) => Number((globalThis as any).document.querySelector('[data-testid="loss"]')?.getAttribute(a)) >= least, [attr, n] as const, { timeout, polling: 'raf' });
}

describe.skipIf(SKIP_REASON !== null)('training and jobs in Chromium', () => {
  let web: WebServer;
  let browser: Browser;
  let wdbc: string;
  let flat: string;

  beforeAll(async () => {
    web = await startWebServer();
    browser = await launchBrowser();
    wdbc = await uploadCsv(web.base, 'breast_cancer_wdbc.csv', readFileSync(fixture('breast_cancer_wdbc.csv')));
    // A target with a single value: accepted at submission, refused by the training worker.
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 7},${(i * 13) % 11},${i % 3 === 0 ? 'a' : 'b'},same`);
    flat = await uploadCsv(web.base, 'flat-outcome.csv', ['x1,x2,site,outcome', ...rows].join('\n') + '\n');
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await web?.close();
  });

  it('trains an MLP from the form and watches its loss grow, then the leaderboard and the version link', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/train?dataset=${wdbc}`);
    await expect.poll(() => page.getByLabel('Dataset').inputValue(), { timeout: 30_000 }).toBe(wdbc);
    await recordAnnouncements(page);
    const target = page.getByLabel('Target (the column to predict)');
    await expect.poll(() => target.isEnabled(), { timeout: 30_000 }).toBe(true);
    await target.selectOption('diagnosis');
    await page.getByText('Auto: most likely binary').waitFor();
    // The families offered for a binary table job, from /v1/families.
    const family = page.getByLabel('Model family');
    await page.locator('option[value="mlp"]').waitFor({ state: 'attached' });
    const offered = await family.locator('option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(offered).toEqual(['auto', 'logistic', 'gbdt', 'mlp']);
    await family.selectOption('mlp');
    // Hyperparameters with their defaults as placeholders and their ranges on the inputs.
    const epochs = page.getByLabel('epochs', { exact: true });
    await expect(epochs.getAttribute('placeholder')).resolves.toBe('200');
    await expect(epochs.getAttribute('max')).resolves.toBe('100000');
    await expect(page.getByLabel('units', { exact: true }).getAttribute('placeholder')).resolves.toBe('64,32');

    // Inline validation before anything is sent.
    await epochs.fill('0');
    await page.getByLabel('Cross-validation folds').fill('1');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByText('Must be from 1 to 100000.').waitFor();
    await page.getByText('Enter a whole number from 2 to 20.').waitFor();
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.dataset.pointer), { timeout: 30_000 }).toBe('/params/mlp/epochs');
    await expectAccessible(page, 'the training form with errors');

    await epochs.fill('8');
    await page.getByLabel('Cross-validation folds').fill('2');
    await page.getByLabel('Model name').fill('wdbc-mlp');
    await screenshot(page, 'train-form');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    await expect.poll(() => announced(page), { timeout: 30_000 }).toContain('wdbc-mlp');

    // The loss chart gains points as epochs arrive: several in one fit, and more over time.
    await lossAtLeast(page, 'data-points', 3, 240_000);
    const first = await lossCounts(page);
    expect(await page.locator('.loss-card canvas').count()).toBeGreaterThan(0);
    await expectAccessible(page, 'a running job');
    await screenshot(page, 'job-running');
    await lossAtLeast(page, 'data-epochs', first.epochs + 1, 240_000);
    expect((await lossCounts(page)).epochs).toBeGreaterThan(first.epochs);

    // Success: the version link and the leaderboard with its score.
    await page.getByTestId('job-success').waitFor({ timeout: 300_000 });
    const link = page.getByRole('link', { name: 'Open wdbc-mlp version 1' });
    await expect(link.getAttribute('href')).resolves.toBe('/models/wdbc-mlp/versions/1');
    const board = page.getByTestId('leaderboard');
    await board.waitFor({ timeout: 60_000 });
    await expect(board.textContent()).resolves.toMatch(/Neural network \(MLP\).*chosen.*0\.\d{3} ± 0\.\d{3}/);
    const final = await lossCounts(page);
    expect(final.fits).toBe(3); // two folds and the final fit
    expect(final.epochs).toBeGreaterThanOrEqual(3 * 2);
    await expect.poll(() => announced(page), { timeout: 30_000 }).toMatch(/succeeded/);
    await screenshot(page, 'job-succeeded');
    await expectAccessible(page, 'a succeeded job');

    // Reload: the stored outcome, and the loss curve replayed from the server's memory.
    await page.reload();
    await page.getByTestId('job-success').waitFor();
    await page.getByTestId('leaderboard').waitFor();
    await expect.poll(async () => Number(await page.getByTestId('loss').getAttribute('data-points'))).toBeGreaterThan(0);
    // The list links the job to its version.
    await page.getByRole('link', { name: 'All jobs' }).click();
    await page.getByRole('link', { name: 'wdbc-mlp v1' }).click();
    await page.waitForURL('**/models/wdbc-mlp/versions/1');
    expect(errors).toEqual([]);
    await context.close();
  }, 600_000);

  it('trains with the defaults: auto compares logistic regression and boosted trees, and draws the trees\' loss', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/train?dataset=${wdbc}`);
    const target = page.getByLabel('Target (the column to predict)');
    await expect.poll(() => target.isEnabled(), { timeout: 30_000 }).toBe(true);
    await target.selectOption('diagnosis');
    await expect.poll(() => page.getByLabel('Model name').inputValue()).toBe('breast_cancer_wdbc-diagnosis');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    // Logistic regression has no epochs; boosted trees report their loss every 10 rounds.
    await lossAtLeast(page, 'data-points', 3, 180_000);
    const first = await lossCounts(page);
    await page.getByTestId('job-success').waitFor({ timeout: 300_000 });
    const final = await lossCounts(page);
    expect(final.epochs).toBeGreaterThan(first.epochs);
    expect(final.fits).toBeGreaterThanOrEqual(5);
    const board = page.getByTestId('leaderboard');
    await board.waitFor({ timeout: 60_000 });
    await expect(board.textContent()).resolves.toMatch(/Logistic regression.*Gradient-boosted trees|Gradient-boosted trees.*Logistic regression/);
    await screenshot(page, 'job-auto');
    expect(errors).toEqual([]);
    await context.close();
  }, 600_000);

  it('offers the sensor options for a sensor dataset and follows a sequence job', async () => {
    const motions = await uploadCsv(web.base, 'basic_motions_train.csv', readFileSync(fixture('basic_motions_train.csv')));
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/train?dataset=${motions}`);
    const target = page.getByLabel('Target (the column to predict)');
    await expect.poll(() => target.isEnabled(), { timeout: 30_000 }).toBe(true);
    await target.selectOption('activity');
    await page.getByRole('heading', { name: 'Sensor streams' }).waitFor();
    await expect(page.getByLabel(/Train on windows of the sensor streams/).isChecked()).resolves.toBe(true);
    await page.locator('option[value="window-gbdt"]').waitFor({ state: 'attached' });
    const offered = await page.getByLabel('Model family').locator('option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(offered).toContain('window-gbdt');
    expect(offered).not.toContain('logistic');
    // A window that is not a length is refused at its field before anything is sent.
    await page.getByLabel('Window', { exact: true }).fill('two seconds');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByText('Enter a number of samples (128) or a duration (2.56s, 500ms).').waitFor();
    await expectAccessible(page, 'the training form for a sensor dataset');
    await page.getByLabel('Window', { exact: true }).fill('');
    await page.getByLabel('Model family').selectOption('window-gbdt');
    await page.getByLabel('trees', { exact: true }).fill('20');
    await page.getByLabel('Cross-validation folds').fill('2');
    await screenshot(page, 'train-sensor');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    await page.locator('[data-testid="job-success"], [data-testid="job-failure"]').first().waitFor({ timeout: 300_000 });
    await expect(page.getByTestId('job-failure').count()).resolves.toBe(0);
    await page.getByTestId('leaderboard').waitFor({ timeout: 60_000 });
    await expect(page.getByTestId('leaderboard').textContent()).resolves.toMatch(/CV Accuracy/);
    await screenshot(page, 'job-sensor');
    expect(errors).toEqual([]);
    await context.close();
  }, 600_000);

  it('cancels a job from its page while the list updates on its own', async () => {
    const list = await openPage(browser, web.base);
    await signIn(list.page);
    await list.page.goto('/jobs');
    await recordAnnouncements(list.page);
    await list.page.locator('[data-testid="jobs-table"], .empty').first().waitFor();
    const rowsBefore = await list.page.locator('tr[data-job]').count();

    // A long job (thousands of boosting rounds over many folds), started elsewhere.
    const id = await startJob(web.base, { dataset: wdbc, target: 'diagnosis', name: 'long-gbdt', model: 'gbdt', cv: 20, params: { gbdt: { trees: 5000 } } });
    // Whatever happens below, the job must not hold the queue's one slot for the next test.
    onTestFinished(async () => {
      await fetch(`${web.base}/v1/jobs/${id}/cancel`, { method: 'POST', headers: auth });
    });
    const row = list.page.locator(`tr[data-job="${id}"]`);
    await row.waitFor({ timeout: 30_000 });
    expect(await list.page.locator('tr[data-job]').count()).toBe(rowsBefore + 1);

    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/jobs/${id}`);
    await recordAnnouncements(page);
    await page.getByRole('heading', { level: 1, name: /long-gbdt/ }).waitFor();
    // Boosted trees report their training loss every 10 rounds.
    await lossAtLeast(page, 'data-points', 2, 120_000);
    await expect(page.getByTestId('leaderboard-live').textContent()).resolves.toContain('Gradient-boosted trees');
    // A key that may only read follows the same job but is offered no cancel.
    const { key: readKey } = await createKey(web.server.services.store, 'default', ['read'], 'watcher');
    const reader = await openPage(browser, web.base);
    await signIn(reader.page, readKey);
    await reader.page.goto(`/jobs/${id}`);
    await reader.page.getByText('Progress of job', { exact: false }).or(reader.page.getByRole('progressbar')).first().waitFor();
    await lossAtLeast(reader.page, 'data-points', 1, 60_000);
    expect(await reader.page.getByRole('button', { name: 'Cancel job' }).count()).toBe(0);
    expect(reader.errors).toEqual([]);
    await reader.context.close();

    await page.getByRole('button', { name: 'Cancel job' }).click();
    await expect.poll(() => announced(page), { timeout: 10_000 }).toContain('Yes, cancel the job');
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.textContent), { timeout: 30_000 }).toBe('Yes, cancel the job');
    await page.getByRole('button', { name: 'Yes, cancel the job' }).click();
    await page.getByText('This job was cancelled').waitFor({ timeout: 60_000 });
    await expect(page.getByRole('button', { name: 'Cancel job' }).count()).resolves.toBe(0);
    await expectAccessible(page, 'a cancelled job');
    await screenshot(page, 'job-cancelled');

    // The list saw it happen without a reload.
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 30_000 }).toBe('cancelled');
    await expect.poll(() => announced(list.page), { timeout: 30_000 }).toMatch(/long-gbdt cancelled/);
    await expectAccessible(list.page, 'the jobs list');
    await screenshot(list.page, 'jobs-list');
    expect(errors).toEqual([]);
    expect(list.errors).toEqual([]);
    await context.close();
    await list.context.close();
  }, 300_000);

  it('shows why a job failed, the server\'s field errors at their fields, at 390 px without sideways scrolling', async () => {
    const { page, errors, context } = await openPage(browser, web.base, 390);
    await signIn(page);
    await page.goto(`/train?dataset=${flat}`);
    await recordAnnouncements(page);
    const target = page.getByLabel('Target (the column to predict)');
    await expect.poll(() => target.isEnabled(), { timeout: 30_000 }).toBe(true);
    await target.selectOption('outcome');
    await page.getByLabel('Model family').selectOption('logistic');
    await expectNoHorizontalScroll(page, 'the training form');
    await expectAccessible(page, 'the training form at 390 px');
    await screenshot(page, 'train-390');

    // A field error from the server lands at its field (the answer is stubbed: the server checks
    // everything this form can express before answering, so it never sends one for valid input).
    await page.route('**/v1/jobs', (route) =>
      route.request().method() === 'POST'
        ? route.fulfill({
            status: 400,
            contentType: 'application/problem+json',
            body: JSON.stringify({ title: 'Bad data', status: 400, detail: 'invalid data: /params/logistic/max_iter: must be in [1, 100000]', errors: [{ pointer: '/params/logistic/max_iter', message: 'must be in [1, 100000] (L-BFGS iterations)' }] }),
          })
        : route.continue(),
    );
    await page.getByRole('button', { name: 'Start training' }).click();
    const maxIter = page.getByLabel('max_iter', { exact: true });
    await expect.poll(() => maxIter.getAttribute('aria-invalid'), { timeout: 30_000 }).toBe('true');
    await expect.poll(() => page.locator('.field-invalid').filter({ has: maxIter }).textContent(), { timeout: 30_000 }).toContain('must be in [1, 100000] (L-BFGS iterations)');
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.dataset.pointer), { timeout: 30_000 }).toBe('/params/logistic/max_iter');
    await page.unroute('**/v1/jobs');

    // The real submission: the worker refuses a target with one value, and the page says why.
    await maxIter.fill('100');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    const failure = page.getByTestId('job-failure');
    await failure.waitFor({ timeout: 120_000 });
    await expect(failure.textContent()).resolves.toMatch(/The data could not be trained on.*single value/);
    await expect.poll(() => announced(page), { timeout: 30_000 }).toMatch(/failed/);
    await expectNoHorizontalScroll(page, 'a failed job');
    await expectAccessible(page, 'a failed job');
    await screenshot(page, 'job-failed-390');
    await page.goto('/jobs');
    await page.getByTestId('jobs-table').waitFor();
    await expectNoHorizontalScroll(page, 'the jobs list');
    await screenshot(page, 'jobs-390');
    // The stubbed refusal is logged by Chromium as a failed resource; nothing else may be.
    expect(errors.filter((e) => !/status of 400 \(Bad Request\)/.test(e))).toEqual([]);
    await context.close();
  }, 300_000);

  it('shows each family\'s score on the live leaderboard as it finishes, and replays a finished job\'s curve and scores on a reload', async () => {
    // Auto on this table: logistic regression is cross-validated in moments, then boosted trees
    // with thousands of rounds train for long, so the first family's score is seen while the job runs.
    const auto = await startJob(web.base, { dataset: wdbc, target: 'diagnosis', name: 'live-board', cv: 5, params: { gbdt: { trees: 5000 } } });
    onTestFinished(async () => {
      await fetch(`${web.base}/v1/jobs/${auto}/cancel`, { method: 'POST', headers: auth });
    });
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/jobs/${auto}`);
    const liveBoard = page.getByTestId('leaderboard-live');
    await liveBoard.waitFor({ timeout: 180_000 });
    await expect.poll(() => liveBoard.textContent().catch(() => ''), { timeout: 180_000 }).toMatch(/Logistic regression.*\d\.\d{3} ± \d\.\d{3}.*\d+(\.\d)? s/);
    await expect(liveBoard.textContent()).resolves.toContain('CV AUROC (mean ± std)');
    await expect(page.getByText('Families appear with their cross-validated scores as they finish').count()).resolves.toBe(1);
    expect(await page.getByTestId('job-success').count()).toBe(0);
    const running = (await (await fetch(`${web.base}/v1/jobs/${auto}`, { headers: auth })).json()) as { status: string };
    expect(running.status).toBe('running');
    await screenshot(page, 'job-live-board');

    // Opened again while the trees train: the stream replays the curve and the scores so far.
    await page.reload();
    await lossAtLeast(page, 'data-points', 1, 30_000);
    await expect.poll(() => liveBoard.textContent().catch(() => ''), { timeout: 30_000 }).toMatch(/Logistic regression.*\d\.\d{3} ± \d\.\d{3}/);
    await expect(page.getByTestId('loss').textContent()).resolves.not.toContain('no longer held its earlier epochs');
    await fetch(`${web.base}/v1/jobs/${auto}/cancel`, { method: 'POST', headers: auth });
    await page.getByText('This job was cancelled').waitFor({ timeout: 60_000 });

    // A job that had finished before its page opened: its curve and scores come from the replay.
    const mlp = await startJob(web.base, { dataset: wdbc, target: 'diagnosis', name: 'replayed-mlp', model: 'mlp', cv: 2, params: { mlp: { epochs: 5 } } });
    const statusOf = async () => ((await (await fetch(`${web.base}/v1/jobs/${mlp}`, { headers: auth })).json()) as { status: string }).status;
    await expect.poll(statusOf, { timeout: 300_000, interval: 1_000 }).toBe('succeeded');
    await page.goto(`/jobs/${mlp}`);
    await page.getByTestId('job-success').waitFor();
    await lossAtLeast(page, 'data-points', 1, 30_000);
    const replayed = await lossCounts(page);
    expect(replayed.points).toBeGreaterThan(0);
    expect(replayed.fits).toBe(3); // two folds and the final fit
    expect(await page.locator('.loss-card canvas').count()).toBeGreaterThan(0);
    const board = page.locator('[data-testid="leaderboard"], [data-testid="leaderboard-live"]').first();
    await expect.poll(() => board.textContent().catch(() => ''), { timeout: 60_000 }).toMatch(/Neural network \(MLP\).*\d\.\d{3} ± \d\.\d{3}/);
    await expect(page.getByTestId('loss').textContent()).resolves.not.toContain("no longer in the server's memory");
    await expectAccessible(page, 'a finished job with its replayed curve');
    await screenshot(page, 'job-replayed');

    // The replay is tried once: a stream that fails for a finished job is said, and not retried.
    let streams = 0;
    await page.route('**/v1/jobs/*/events', (route) => {
      streams++;
      return route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ title: 'Unavailable', status: 503, detail: 'the server is busy' }) });
    });
    await page.reload();
    await page.getByTestId('job-success').waitFor();
    await page.getByText('The loss curve could not be loaded: the server is busy').waitFor({ timeout: 30_000 });
    await page.waitForTimeout(3_000);
    expect(streams).toBe(1);
    await page.unroute('**/v1/jobs/*/events');
    // The refused stream is logged by Chromium as a failed resource; nothing else may be.
    expect(errors.filter((e) => !/status of 503/.test(e))).toEqual([]);
    await context.close();
  }, 600_000);
});
