/**
 * The datasets pages in Chromium: upload breast_cancer_wdbc.csv through the form (progress bar,
 * then the profile page with histograms and the target's balance, surviving a reload), readable
 * errors for a malformed and a too-large file, a sensor dataset's channels plotted over time with
 * a session picker (for keys with the train scope; a read-only key gets the overview and a note),
 * identifier warnings, what a read-only key is offered, delete with a confirm step; axe-core on
 * every page, 390 px without sideways scrolling, screenshots.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../src/api/index.js';
import { synthFitnessCsv } from '../src/sequence/synth.js';
import { buildActivityFit, oneHzRecords } from './fit-builders.js';
import { fixture, tempDir } from './helpers.js';
import { ADMIN_KEY, expectAccessible, expectNoHorizontalScroll, launchBrowser, openPage, screenshot, signIn, SKIP_REASON, startWebServer, type WebServer } from './web-harness.js';

/** A browser test on a shared, busy machine: generous, since nothing here measures speed. */
const SLOW = 240_000;

/** Uploads a dataset through the API (seeding, faster than the form). */
async function seed(web: WebServer, name: string, body: Buffer | string, type = 'text/csv'): Promise<{ id: string; name: string }> {
  const res = await fetch(`${web.base}/v1/datasets?name=${encodeURIComponent(name)}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': type }, body });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { id: string; name: string };
}

/** Starts recording whether a progress bar ever appears (an upload of a small file is quick). */
async function watchProgress(page: Page): Promise<void> {
  // Runs in the page; the Node project has no DOM types, hence the casts.
  await page.evaluate(() => {
    const w = globalThis as any;
    w.sawProgress = false;
    new w.MutationObserver(() => {
      if (w.document.querySelector('[role="progressbar"]')) w.sawProgress = true;
    }).observe(w.document.body, { childList: true, subtree: true });
  });
}

describe.skipIf(SKIP_REASON !== null)('the datasets pages in Chromium', () => {
  let web: WebServer;
  let browser: Browser;
  let sensor: { id: string; name: string };
  let wdbc: { id: string; name: string };
  const dir = tempDir('medfit-web-datasets-');

  beforeAll(async () => {
    web = await startWebServer();
    browser = await launchBrowser();
    // Two subjects, two sessions each, seven activities of 10 s at 20 Hz: 5,600 samples.
    sensor = await seed(web, 'wearable', Buffer.concat([...synthFitnessCsv({ subjects: 2, seconds: 10, rate: 20 })]));
    // The form's upload is the first test's; the others get their copy through the API.
    wdbc = await seed(web, 'wdbc', readFileSync(fixture('breast_cancer_wdbc.csv')));
  }, SLOW);
  afterAll(async () => {
    await browser?.close();
    await web?.close();
  }, SLOW);

  it('uploads breast_cancer_wdbc.csv through the form with a progress bar, then shows its profile, also after a reload', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Datasets' }).click();
    await page.getByRole('heading', { name: 'Upload a dataset' }).waitFor();
    await expectAccessible(page, 'the datasets page');
    await page.getByLabel('File').setInputFiles(fixture('breast_cancer_wdbc.csv'));
    await expect.poll(() => page.getByLabel('Name (optional)').getAttribute('placeholder')).toBe('breast_cancer_wdbc');
    await watchProgress(page);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.waitForURL(/\/datasets\/[0-9a-f-]{36}$/);
    expect(await page.evaluate(() => (globalThis as any).sawProgress as boolean)).toBe(true);
    await page.getByRole('heading', { level: 1, name: 'breast_cancer_wdbc' }).waitFor();
    await expect.poll(() => page.getByTestId('status').textContent()).toMatch(/Uploaded breast_cancer_wdbc: 569 rows/);

    // The profile: summary, a histogram per numeric column, the target's balance (guessed: diagnosis).
    const summary = page.locator('#summary');
    await expect(summary.textContent()).resolves.toMatch(/Rows\s*569/);
    await expect(summary.textContent()).resolves.toContain('59db8fce5c2a76ef77e3c287936c034f9f7d61739f69c63bf6755cba7f79b0e8');
    const histogram = page.getByRole('img', { name: /^Histogram of mean_radius: 569 values in 20 bins/ });
    await expect(histogram.count()).resolves.toBe(1);
    await expect(page.locator('.ds-columns-table .ds-hbar').count()).resolves.toBeGreaterThan(30 * 10);
    const target = page.locator('#target');
    await expect(target.getByLabel('Target column').inputValue()).resolves.toBe('diagnosis');
    await expect(target.textContent()).resolves.toMatch(/benign\s*357\s*\(63%\)/);
    await expect(target.textContent()).resolves.toMatch(/malignant\s*212\s*\(37%\)/);
    // Another column as the target: a numeric one gets its summary and histogram, and the URL keeps it.
    await target.getByLabel('Target column').selectOption('mean_area');
    await page.waitForURL(/\?target=mean_area$/);
    await target.getByRole('img', { name: /^Histogram of mean_area/ }).waitFor();
    await target.getByLabel('Target column').selectOption('diagnosis');
    // The column filter.
    await page.getByLabel('Find a column').fill('worst_');
    await expect.poll(() => page.locator('.ds-columns-table tbody tr').count()).toBe(10);
    await page.getByLabel('Find a column').fill('');
    await expect(page.getByRole('link', { name: 'Train a model on this dataset' }).getAttribute('href')).resolves.toMatch(/^\/train\?dataset=[0-9a-f-]{36}$/);
    await screenshot(page, 'datasets-profile');
    await expectAccessible(page, 'the profile page');

    // A deep link survives a reload.
    const url = page.url();
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'breast_cancer_wdbc' }).waitFor();
    expect(page.url()).toBe(url);
    await expect(page.locator('#target').getByLabel('Target column').inputValue()).resolves.toBe('diagnosis');
    // No record values in the browser's storage.
    expect(await page.evaluate(() => (globalThis as any).localStorage.length as number)).toBe(0);
    expect(await page.evaluate(() => Object.keys((globalThis as any).sessionStorage))).toEqual(['medfit.key']);
    // Back in the list, the new dataset is there, linked.
    await page.getByRole('link', { name: 'all datasets' }).click();
    await page.getByRole('link', { name: 'breast_cancer_wdbc' }).waitFor();
    expect(errors).toEqual([]);
    await context.close();
  }, SLOW);

  it('says what is wrong with a malformed file, with its line, and stays on the form', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/datasets');
    const bad = join(dir, 'bad rows.csv');
    writeFileSync(bad, 'age,weight\n31,70\n45,82,9\n');
    await page.getByLabel('File').setInputFiles(bad);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    const alert = page.locator('#upload').getByRole('alert');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toBe('The file could not be read at line 3: row has 3 fields, header has 2.');
    expect(page.url()).toMatch(/\/datasets$/);
    await expect(page.getByRole('button', { name: 'Upload', exact: true }).isEnabled()).resolves.toBe(true);
    await screenshot(page, 'datasets-upload-error');
    // A name the API would refuse is caught before uploading.
    await page.getByLabel('Name (optional)').fill('-nope');
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await expect(page.locator('#upload .field-error').textContent()).resolves.toMatch(/starting with a letter or digit/);
    await expectAccessible(page, 'the upload form with errors');
    // 422 answers are expected here; the console shows the failed request, which is not a page error.
    expect(errors.filter((e) => !/status of 422/.test(e))).toEqual([]);
    await context.close();
  }, SLOW);

  it('refuses a file over the server limit with a readable message', async () => {
    const small = await startWebServer({ MEDFIT_MAX_UPLOAD_MB: '1' });
    try {
      const { page, errors, context } = await openPage(browser, small.base);
      await signIn(page);
      await page.goto('/datasets');
      const big = join(dir, 'big.csv');
      writeFileSync(big, `a,b\n${'123456,654321\n'.repeat(80_000)}`);
      await page.getByLabel('File').setInputFiles(big);
      await page.getByRole('button', { name: 'Upload', exact: true }).click();
      const alert = page.locator('#upload').getByRole('alert');
      await alert.waitFor();
      await expect(alert.textContent()).resolves.toMatch(/^The file is too large for this server: .*limit/);
      expect(errors.filter((e) => !/status of 413/.test(e))).toEqual([]);
      await context.close();
    } finally {
      await small.close();
    }
  }, SLOW);

  it("plots a sensor session's channels over time with its label track, and picks another session", async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/datasets/${sensor.id}`);
    await page.getByRole('heading', { level: 1, name: 'wearable' }).waitFor();
    const plot = page.locator('#session-plot');
    await plot.locator('figure.ds-channel canvas').first().waitFor();
    // Seven channels (accelerometer, gyroscope, heart rate), each a chart with its text alternative.
    await expect(plot.locator('figure.ds-channel').count()).resolves.toBe(7);
    await expect(plot.getByRole('img', { name: /^ax over .* of session s01-a: from -?[0-9.]+ to [0-9.]+/ }).count()).resolves.toBe(1);
    await expect(plot.locator('.ds-label-chip').count()).resolves.toBe(7);
    await expect(plot.textContent()).resolves.toContain('walking');
    await expect(page.locator('#sensor').textContent()).resolves.toMatch(/Subjects\s*2/);
    await expect(page.locator('#sensor').textContent()).resolves.toMatch(/Sessions\s*4/);
    // The label track's text alternative.
    await plot.getByText(/The label track as a table/).click();
    await expect(plot.getByRole('region', { name: 'Label track' }).locator('tbody tr').count()).resolves.toBe(7);
    // Hovering a chart reads the values at that time, the label included.
    const canvas = plot.locator('figure.ds-channel .u-over').first();
    await canvas.scrollIntoViewIfNeeded();
    const box = (await canvas.boundingBox())!;
    await page.mouse.move(box.x + 5, box.y + 5);
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 5 });
    await expect.poll(() => plot.locator('figure.ds-channel').first().locator('.u-legend').textContent()).toMatch(/ · (walking|running|cycling|sitting|standing|lying|stairs)/);
    await screenshot(page, 'datasets-sensor');
    await expectAccessible(page, 'a sensor dataset page');

    // Another session: the URL keeps it, the facts follow.
    await plot.getByLabel('Session', { exact: true }).scrollIntoViewIfNeeded();
    await plot.getByLabel('Session', { exact: true }).selectOption('1');
    await page.waitForURL(/\?session=2$/);
    // The picker stays where it was (no jump to the top of the page).
    expect(await page.evaluate(() => (globalThis as any).scrollY as number)).toBeGreaterThan(0);
    await expect.poll(() => plot.locator('.ds-facts').textContent()).toMatch(/Session\s*s01-b/);
    await plot.getByRole('button', { name: 'Next ›' }).click();
    await page.waitForURL(/\?session=3$/);
    await expect.poll(() => plot.locator('.ds-facts').textContent()).toMatch(/Subject\s*s02/);
    // Hiding a channel.
    await plot.getByRole('checkbox', { name: 'hr' }).uncheck();
    await expect.poll(() => plot.locator('figure.ds-channel').count()).toBe(6);
    await page.reload();
    await page.locator('#session-plot figure.ds-channel canvas').first().waitFor();
    await expect(page.locator('#session-plot .ds-facts').textContent()).resolves.toMatch(/Session\s*s02-a/);
    expect(errors).toEqual([]);
    await context.close();
  }, SLOW);

  it("shows a read-only key a sensor dataset's overview but no plot of its samples, with a note on the scope it needs", async () => {
    const { key } = await createKey(web.server.services.store, 'default', ['read'], 'sensor reader');
    const { page, errors, context } = await openPage(browser, web.base);
    const asked: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/series')) asked.push(r.url());
    });
    await signIn(page, key);
    await page.goto(`/datasets/${sensor.id}`);
    await page.getByRole('heading', { level: 1, name: 'wearable' }).waitFor();
    // The overview stays.
    await expect.poll(() => page.locator('#sensor').textContent()).toMatch(/Subjects\s*2/);
    await expect(page.locator('#sensor').textContent()).resolves.toMatch(/Samples per label of activity/);
    // The plot does not: a note says why, and the samples are never asked for.
    const plot = page.locator('#session-plot');
    await expect(plot.getByRole('heading', { name: 'One session over time' }).count()).resolves.toBe(1);
    await expect(plot.textContent()).resolves.toMatch(/Plotting a session's samples needs a key with the train scope/);
    await expect(plot.locator('figure.ds-channel').count()).resolves.toBe(0);
    await expect(plot.getByLabel('Session', { exact: true }).count()).resolves.toBe(0);
    await page.locator('.ds-columns-table').waitFor();
    expect(asked).toEqual([]);
    await screenshot(page, 'datasets-sensor-read-only');
    await expectAccessible(page, 'a sensor dataset page for a read-only key');
    expect(errors).toEqual([]);
    await context.close();
  }, SLOW);

  it('uploads a Garmin FIT file through the form as a sensor dataset, named after the file, and plots it', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/datasets');
    const start = Date.UTC(2026, 0, 5, 7, 30);
    const file = join(dir, 'morning run.fit');
    writeFileSync(file, buildActivityFit({ start, records: oneHzRecords(start, 600) }));
    await page.getByLabel('File').setInputFiles(file);
    // A FIT file asks for the recording's subject and session (both optional).
    await page.getByLabel('Subject (optional)').fill('runner 7');
    await expect(page.getByLabel('Session (optional)').count()).resolves.toBe(1);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'morning run' }).waitFor();
    const plot = page.locator('#session-plot');
    await plot.locator('figure.ds-channel canvas').first().waitFor();
    await expect(plot.locator('.ds-facts').textContent()).resolves.toMatch(/Subject\s*runner 7\s*Session\s*morning run\s*Samples\s*600/);
    await expect(plot.getByRole('img', { name: /^heart_rate over 9:59 of session morning run/ }).count()).resolves.toBe(1);
    await expectAccessible(page, 'a FIT dataset page');
    expect(errors).toEqual([]);
    await context.close();
  }, SLOW);

  it('fits a 390 px screen: the list, a profile and a sensor page without sideways scrolling', async () => {
    const { page, errors, context } = await openPage(browser, web.base, 390);
    await signIn(page);
    await page.goto('/datasets');
    await page.getByRole('link', { name: 'wearable' }).waitFor();
    await expectNoHorizontalScroll(page, 'the datasets page');
    await screenshot(page, 'datasets-list-390');
    await expectAccessible(page, 'the datasets page at 390 px');
    await page.getByRole('link', { name: 'wearable' }).click();
    await page.locator('#session-plot figure.ds-channel canvas').first().waitFor();
    await expectNoHorizontalScroll(page, 'a sensor dataset page');
    const chartWidth = await page.locator('#session-plot figure.ds-channel canvas').first().evaluate((c) => c.getBoundingClientRect().width);
    expect(chartWidth).toBeLessThanOrEqual(390);
    await screenshot(page, 'datasets-sensor-390');
    await page.goto('/datasets');
    await page.getByRole('link', { name: wdbc.name, exact: true }).click();
    await page.locator('#target .ds-catbars').waitFor();
    await expectNoHorizontalScroll(page, 'the profile page');
    await screenshot(page, 'datasets-profile-390');
    await expectAccessible(page, 'the profile page at 390 px');
    expect(errors).toEqual([]);
    await context.close();
  }, SLOW);

  it('flags columns that may identify people, offers a read-only key no upload or delete, and deletes after a confirm step', async () => {
    const people = await seed(web, 'clinic visits', 'patient_id,first_name,email,age,smoker,outcome\nP001,Ann,ann@example.org,54,yes,improved\nP002,Bob,bob@example.org,61,no,same\nP003,Cy,cy@example.org,47,no,improved\nP004,Di,di@example.org,70,yes,worse\n');
    const { key } = await createKey(web.server.services.store, 'default', ['read'], 'reader');
    const reader = await openPage(browser, web.base);
    await signIn(reader.page, key);
    await reader.page.goto('/datasets');
    await reader.page.getByRole('link', { name: 'clinic visits' }).waitFor();
    await expect(reader.page.getByRole('heading', { name: 'Upload a dataset' }).count()).resolves.toBe(0);
    await expect(reader.page.getByRole('button', { name: /Delete/ }).count()).resolves.toBe(0);
    await reader.page.getByRole('link', { name: 'clinic visits' }).click();
    const notice = reader.page.getByRole('note');
    await notice.waitFor();
    await expect(notice.textContent()).resolves.toMatch(/3 columns may identify a person/);
    await expect(notice.textContent()).resolves.toMatch(/first_name: the name suggests a person's name/);
    await expect(notice.textContent()).resolves.toMatch(/email: the name suggests an email address/);
    await expect(reader.page.locator('.ds-columns-table .ds-row-flagged').count()).resolves.toBe(3);
    await expect(reader.page.getByRole('link', { name: 'Train a model on this dataset' }).count()).resolves.toBe(0);
    await expect(reader.page.getByRole('button', { name: /Delete/ }).count()).resolves.toBe(0);
    await screenshot(reader.page, 'datasets-identifiers');
    await expectAccessible(reader.page, 'a profile with flagged columns');
    expect(reader.errors).toEqual([]);
    await reader.context.close();

    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto(`/datasets/${people.id}`);
    await page.getByRole('button', { name: 'Delete dataset' }).click();
    const confirm = page.getByRole('group', { name: 'Confirm deleting clinic visits' });
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.textContent as string | undefined)).toBe('Yes, delete');
    await expectAccessible(page, 'the delete confirmation');
    await confirm.getByRole('button', { name: 'Keep it' }).click();
    await expect.poll(() => confirm.count()).toBe(0);
    await page.getByRole('button', { name: 'Delete dataset' }).click();
    await confirm.getByRole('button', { name: 'Yes, delete' }).click();
    await page.waitForURL(/\/datasets$/);
    await expect.poll(() => page.getByTestId('status').textContent()).toBe('Deleted dataset clinic visits.');
    await page.getByRole('link', { name: 'wearable' }).waitFor();
    await expect(page.getByRole('link', { name: 'clinic visits' }).count()).resolves.toBe(0);
    expect((await fetch(`${web.base}/v1/datasets/${people.id}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(404);
    // The gone dataset's deep link says so, readably.
    await page.goto(`/datasets/${people.id}`);
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/not found/i);
    expect(errors.filter((e) => !/status of 404/.test(e))).toEqual([]);
    await context.close();
  }, SLOW);
});
