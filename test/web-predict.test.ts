/**
 * The predict page in a real browser: the form made from a trained version's input schema
 * (training medians as placeholders), one record's label, probability bars and explanation
 * bars; a CSV predicted in chunks and downloaded as a CSV of predictions; the curl command.
 * Also the page's CSV reader (RFC 4180) on its own.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvRecords, parseCsv, toCsv } from '../web/src/pages/predict/csv.js';
import { ROOT } from './helpers.js';
import { classifier, classifierProbs } from './onnx-builders.js';
import { ADMIN_KEY, expectAccessible, expectNoHorizontalScroll, launchBrowser, openPage, screenshot, signIn, SKIP_REASON, startWebServer, type WebServer } from './web-harness.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'breast_cancer_wdbc.csv');

describe('the predict page reads CSV as RFC 4180 says', () => {
  it('splits quoted fields with commas, quotes and line breaks, CRLF or LF, and drops a BOM and blank lines', () => {
    const text = '\ufeffa,b,c\r\n1,"x, y",3\r\n\r\n"say ""hi""","line\r\nbreak\nand more",""\n4,5,6';
    expect(parseCsv(text)).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, y', '3'],
      ['say "hi"', 'line\r\nbreak\nand more', ''],
      ['4', '5', '6'],
    ]);
    expect(parseCsv('a,b\n1,2\n')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
    expect(parseCsv('a\r"\n"\r')).toEqual([['a'], ['\n']]);
    // A quote inside an unquoted field is taken as written.
    expect(parseCsv('a,b\n5" tall,x')).toEqual([
      ['a', 'b'],
      ['5" tall', 'x'],
    ]);
  });

  it('refuses a malformed file with the line, and keys records by the header, leaving blanks out', () => {
    expect(() => parseCsv('a,b\n1,"open\n2,3')).toThrow(/line 2: a quoted field is never closed/);
    expect(() => parseCsv('a,b\n"x"y,2')).toThrow(/line 2: unexpected text after a closing quote/);
    expect(() => csvRecords('a,b\n1,2,3')).toThrow(/record 1 has 3 fields, the header has 2/);
    expect(() => csvRecords('a,a\n1,2')).toThrow(/twice/);
    expect(() => csvRecords('a,b\n')).toThrow(/no records/);
    const { header, records } = csvRecords('age, sex\n63,\n,F\n');
    expect(header).toEqual(['age', 'sex']);
    expect(records.map((r) => ({ ...r }))).toEqual([{ age: '63' }, { sex: 'F' }]);
  });

  it('writes CSV that reads back the same, with spreadsheet formulas defused', () => {
    const rows = [[1, 'a, "b"', 0.25], [2, 'two\nlines', null], [3, '=cmd()', -1.5]];
    const text = toCsv(['row', 'label', 'p'], rows);
    expect(text.endsWith('\r\n')).toBe(true);
    expect(parseCsv(text)).toEqual([['row', 'label', 'p'], ['1', 'a, "b"', '0.25'], ['2', 'two\nlines', ''], ['3', "'=cmd()", '-1.5']]);
  });
});

let web: WebServer;
let records: Record<string, string>[];
let header: string[];

async function call<T>(path: string, init: { method?: string; body?: unknown; raw?: string; type?: string } = {}): Promise<T> {
  const res = await fetch(`${web.base}${path}`, {
    method: init.method ?? (init.body === undefined && init.raw === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : init.raw !== undefined ? { 'content-type': init.type ?? 'text/csv' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : init.raw !== undefined ? { body: init.raw } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

describe.skipIf(SKIP_REASON !== null)('predicting in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    web = await startWebServer();
    browser = await launchBrowser();
    const csv = readFileSync(FIXTURE, 'utf8');
    ({ header, records } = csvRecords(csv));
    const ds = await call<{ id: string }>('/v1/datasets?name=wdbc', { raw: csv });
    const job = await call<{ id: string }>('/v1/jobs', { body: { dataset: ds.id, target: 'diagnosis', name: 'bc', model: 'gbdt', params: { gbdt: { trees: 20 } }, cv: 2 } });
    const deadline = Date.now() + 240_000;
    for (;;) {
      const j = await call<{ status: string; error?: unknown }>(`/v1/jobs/${job.id}`);
      if (j.status === 'succeeded') break;
      if (j.status === 'failed' || j.status === 'cancelled' || Date.now() > deadline) throw new Error(`training job ${j.status}: ${JSON.stringify(j)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await web?.close();
  });

  it('predicts one record from the form: the label, a probability bar per class, the explanation and the curl command', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/bc/versions/1/predict');
    await page.getByRole('heading', { level: 1, name: 'Predict with bc v1' }).waitFor();
    // Every feature column is a labelled number input; the target is not offered.
    const radius = page.getByLabel('mean_radius', { exact: true });
    await expect(radius.getAttribute('type')).resolves.toBe('number');
    await expect(page.getByLabel('diagnosis', { exact: true }).count()).resolves.toBe(0);
    // The training median as the placeholder (13.37 in this table).
    await expect.poll(() => radius.getAttribute('placeholder'), { timeout: 20_000 }).toBe('13.37');
    await expectAccessible(page, 'the predict form');

    // The first record of the table, typed in.
    const record = records[0]!;
    for (const h of header) if (h !== 'diagnosis') await page.getByLabel(h, { exact: true }).fill(record[h]!);
    await page.getByRole('button', { name: 'Predict', exact: true }).click();
    const label = page.getByTestId('predicted-label');
    await label.waitFor({ timeout: 30_000 });

    const sent = Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'diagnosis').map(([k, v]) => [k, Number(v)]));
    const api = await call<{ predictions: { label: string; probabilities: Record<string, number> }[] }>('/v1/models/bc/versions/1/predict', { body: { records: [sent] } });
    const expected = api.predictions[0]!;
    await expect(label.textContent()).resolves.toBe(expected.label);
    const probs = page.getByRole('list', { name: 'Probability of each class' }).getByRole('listitem');
    await expect(probs.count()).resolves.toBe(2);
    const probText = await probs.allTextContents();
    expect(probText.join(' ')).toContain(`${(expected.probabilities['malignant']! * 100).toFixed(1)}%`);

    // The explanation: one bar per input column (the 12 largest first), the reading, the sum.
    const bars = page.getByRole('list', { name: /Contribution of each input column/ }).getByRole('listitem');
    await bars.first().waitFor();
    await expect(bars.count()).resolves.toBe(12);
    await page.getByRole('button', { name: 'Show all 30 columns' }).click();
    await expect(bars.count()).resolves.toBe(30);
    await expect(page.getByTestId('explain-reading').textContent()).resolves.toMatch(/pushes the probability of “malignant” (up|down) the most/);
    await expect(page.getByText('log-odds', { exact: true }).count()).resolves.toBeGreaterThan(0);
    // Sorted by size: the first bar's number is the largest in magnitude.
    const nums = (await page.locator('.contrib-num').allTextContents()).map((t) => Math.abs(Number(t.replace('−', '-').replace(/\s*\(.*$/, ''))));
    expect(nums[0]).toBe(Math.max(...nums));

    // The curl command for the same request, with the key as a variable.
    const curl = (await page.getByTestId('curl').textContent())!;
    expect(curl).toContain(`${web.base}/v1/models/bc/versions/1/predict`);
    expect(curl).toContain('$MEDFIT_KEY');
    expect(curl).toContain('"mean_radius":17.99');
    expect(curl).not.toContain(ADMIN_KEY);

    await expectAccessible(page, 'the predict page with a prediction and its explanation');
    await screenshot(page, 'predict-form');
    // Nothing of the record in the browser's storage.
    expect(await page.evaluate<number>('localStorage.length')).toBe(0);
    expect(await page.evaluate<string[]>('Object.keys(sessionStorage)')).toEqual(['medfit.key']);
    expect(errors).toEqual([]);
    await context.close();
  }, 180_000);

  it('predicts a CSV in chunks of at most 1,000 records and downloads the predictions as CSV, at 390 px', async () => {
    const { page, errors, context } = await openPage(browser, web.base, 390);
    await signIn(page);
    await page.goto('/models/bc/versions/1/predict');
    await page.getByLabel('CSV file to predict').waitFor();
    // 1,205 records (the table's rows again and again), with a quoted note holding a comma and a line break.
    const n = 1205;
    const rows = Array.from({ length: n }, (_, i) => records[i % records.length]!);
    const inputCols = header.filter((h) => h !== 'diagnosis');
    const text = toCsv([...inputCols, 'note'], rows.map((r, i) => [...inputCols.map((h) => r[h]!), i === 0 ? 'left, upper\nquadrant' : 'ok']));
    const requests: number[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST' && r.url().endsWith('/v1/models/bc/versions/1/predict')) requests.push((JSON.parse(r.postData()!) as { records: unknown[] }).records.length);
    });
    await page.getByLabel('CSV file to predict').setInputFiles({ name: 'patients.csv', mimeType: 'text/csv', buffer: Buffer.from(text) });
    await page.getByText('1,205 records').waitFor();
    await page.getByRole('button', { name: 'Predict 1,205 rows' }).click();
    const link = page.getByRole('link', { name: /Download predictions/ });
    await link.waitFor({ timeout: 60_000 });
    expect(requests).toEqual([1000, 205]);

    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    expect(download.suggestedFilename()).toBe('patients-predictions-bc-v1.csv');
    const out = parseCsv(readFileSync((await download.path())!, 'utf8'));
    expect(out[0]).toEqual(['row', 'label', 'probability_benign', 'probability_malignant']);
    expect(out.length).toBe(n + 1);
    expect(out.slice(1).map((r) => Number(r[0]))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // The same answers the API gives for the first rows.
    const api = await call<{ predictions: { label: string; probabilities: Record<string, number> }[] }>('/v1/models/bc/versions/1/predict', {
      body: { records: rows.slice(0, 5).map((r) => Object.fromEntries(inputCols.map((h) => [h, r[h]!]))) },
    });
    api.predictions.forEach((p, i) => {
      expect(out[i + 1]![1]).toBe(p.label);
      expect(Number(out[i + 1]![3])).toBeCloseTo(p.probabilities['malignant']!, 6);
    });
    // Rows that repeat the table's first row have its answer.
    expect(out[records.length + 1]![1]).toBe(api.predictions[0]!.label);

    await page.getByRole('region', { name: 'The first predicted rows' }).waitFor();
    await expectNoHorizontalScroll(page, 'the predict page at 390 px');
    await expectAccessible(page, 'the predict page after a CSV');
    await screenshot(page, 'predict-csv-390');
    expect(await page.evaluate<number>('localStorage.length')).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  }, 180_000);

  it('offers categories as drop-downs and booleans as selects, and explains per input column (a linear model)', async () => {
    // A small table with an integer, two categorical columns and a boolean, made here (seeded).
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const lines = ['age,sex,smoker,activity,outcome'];
    for (let i = 0; i < 240; i++) {
      const age = 20 + Math.floor(rand() * 60);
      const smoker = rand() < 0.4;
      const activity = ['low', 'medium', 'high'][Math.floor(rand() * 3)]!;
      const risk = (age - 50) / 10 + (smoker ? 1 : 0) + (activity === 'low' ? 0.5 : activity === 'high' ? -0.5 : 0) + (rand() - 0.5) * 2;
      lines.push(`${age},${rand() < 0.5 ? 'F' : 'M'},${smoker},${activity},${risk > 0 ? 'sick' : 'well'}`);
    }
    const ds = await call<{ id: string }>('/v1/datasets?name=mixed', { raw: lines.join('\n') + '\n' });
    const job = await call<{ id: string }>('/v1/jobs', { body: { dataset: ds.id, target: 'outcome', name: 'mixed', model: 'logistic', cv: 2 } });
    for (let t = 0; ; t++) {
      const j = await call<{ status: string }>(`/v1/jobs/${job.id}`);
      if (j.status === 'succeeded') break;
      if (j.status === 'failed' || t > 400) throw new Error(`training job ${j.status}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/mixed/versions/1/predict');
    await page.getByRole('heading', { level: 1, name: 'Predict with mixed v1' }).waitFor();
    const options = (name: string) => page.getByLabel(name, { exact: true }).locator('option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    await expect(options('activity').then((o) => [...o].sort())).resolves.toEqual(['', 'high', 'low', 'medium']);
    await expect(options('sex').then((o) => [...o].sort())).resolves.toEqual(['', 'F', 'M']);
    await expect(options('smoker')).resolves.toEqual(['', 'true', 'false']);
    await expect(page.getByLabel('age', { exact: true }).getAttribute('step')).resolves.toBe('1');
    await expect(page.getByLabel('outcome', { exact: true }).count()).resolves.toBe(0);

    await page.getByLabel('age', { exact: true }).fill('70');
    await page.getByLabel('smoker', { exact: true }).selectOption('true');
    await page.getByLabel('activity', { exact: true }).selectOption('low');
    // sex left blank: imputed.
    await page.getByRole('button', { name: 'Predict', exact: true }).click();
    await page.getByTestId('predicted-label').waitFor({ timeout: 30_000 });
    await expect(page.getByTestId('curl').textContent()).resolves.toContain('{"records":[{"age":70,"smoker":true,"activity":"low"}],"explain":true}');
    // One bar per input column (a category's one-hot features count as their column).
    const bars = page.getByRole('list', { name: /Contribution of each input column/ }).getByRole('listitem');
    await bars.first().waitFor();
    const names = (await bars.locator('.contrib-name').allTextContents()).map((t) => t.split(' = ')[0]);
    expect([...names].sort()).toEqual(['activity', 'age', 'sex', 'smoker']);
    await expect(bars.filter({ hasText: /^sex/ }).textContent()).resolves.toContain('missing (imputed)');
    await expect(page.getByText(/coefficient × \(value − training mean\)/).count()).resolves.toBe(1);
    await expectAccessible(page, 'the predict page of a model with categories');
    await screenshot(page, 'predict-categories');
    expect(errors).toEqual([]);
    await context.close();
  }, 180_000);

  it('makes the form of an uploaded ONNX model from its declared features, and predicts without asking for an explanation', async () => {
    await call('/v1/models', { body: { name: 'tiny', onnx: Buffer.from(classifier()).toString('base64'), task: 'binary', features: ['heart_rate', 'steps', 'sleep_hours'], classes: ['rest', 'active'] } });
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/tiny/versions/1/predict');
    await page.getByRole('heading', { level: 1, name: 'Predict with tiny v1' }).waitFor();
    const bodies: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') bodies.push(r.postData()!);
    });
    for (const [name, value] of [['heart_rate', '1'], ['steps', '2'], ['sleep_hours', '3']] as const) await page.getByLabel(name, { exact: true }).fill(value);
    await page.getByRole('button', { name: 'Predict', exact: true }).click();
    const label = page.getByTestId('predicted-label');
    await label.waitFor({ timeout: 30_000 });
    const p = classifierProbs([1, 2, 3]);
    await expect(label.textContent()).resolves.toBe(p[1]! > p[0]! ? 'active' : 'rest');
    const probs = await page.getByRole('list', { name: 'Probability of each class' }).getByRole('listitem').allTextContents();
    expect(probs.join(' ')).toContain(`${(p[1]! * 100).toFixed(1)}%`);
    // One request, without "explain" (uploaded models have none), and no explanation card.
    expect(bodies).toEqual([JSON.stringify({ records: [{ heart_rate: 1, steps: 2, sleep_hours: 3 }] })]);
    await expect(page.getByRole('list', { name: /Contribution of each input column/ }).count()).resolves.toBe(0);
    await expect(page.getByTestId('curl').textContent()).resolves.not.toContain('explain');
    await expectAccessible(page, 'the predict page of an uploaded model');
    await screenshot(page, 'predict-onnx');
    expect(errors).toEqual([]);
    await context.close();
  }, 180_000);

  it('explains that a sequence model predicts raw samples through the API, with a curl example that works', async () => {
    const csv = readFileSync(join(ROOT, 'test', 'fixtures', 'basic_motions_train.csv'), 'utf8');
    const ds = await call<{ id: string }>('/v1/datasets?name=motions', { raw: csv });
    const job = await call<{ id: string }>('/v1/jobs', { body: { dataset: ds.id, target: 'activity', name: 'motions', model: 'window-gbdt', cv: 2, params: { 'window-gbdt': { trees: 10 } }, sequence: {} } });
    for (let t = 0; ; t++) {
      const j = await call<{ status: string }>(`/v1/jobs/${job.id}`);
      if (j.status === 'succeeded') break;
      if (j.status === 'failed' || t > 400) throw new Error(`training job ${j.status}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/motions/versions/1/predict');
    await page.getByRole('heading', { name: 'A sequence model: predict through the API' }).waitFor();
    await expect(page.getByRole('button', { name: 'Predict', exact: true }).count()).resolves.toBe(0);
    const curl = (await page.getByTestId('curl').textContent())!;
    expect(curl).toContain(`${web.base}/v1/models/motions/versions/1/predict`);
    expect(curl).toContain('$MEDFIT_KEY');
    // The example's body, sent as it is, answers a window.
    const body = /-d '(.*)'$/s.exec(curl)![1]!;
    const answer = await call<{ predictions: { label: string; start: string; end: string }[] }>('/v1/models/motions/versions/1/predict', { body: JSON.parse(body) });
    expect(answer.predictions.length).toBeGreaterThan(0);
    expect(['Badminton', 'Running', 'Standing', 'Walking']).toContain(answer.predictions[0]!.label);
    await expectAccessible(page, 'the predict page of a sequence model');
    await screenshot(page, 'predict-sequence');
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('says which line of a malformed CSV is wrong, and sends nothing', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/models/bc/versions/1/predict');
    let posts = 0;
    page.on('request', (r) => {
      if (r.method() === 'POST') posts++;
    });
    await page.getByLabel('CSV file to predict').setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('mean_radius,mean_texture\n14,"20\n15,21\n') });
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/bad\.csv could not be read: line 2: a quoted field is never closed/);
    expect(posts).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  }, 180_000);
});
