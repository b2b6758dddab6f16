/**
 * The admin pages in a real browser: a key made in the UI (its secret shown once, gone after
 * leaving the page) works through the API, is revoked in the UI and is then refused, by the API
 * and at sign-in; the audit log's filters narrow the list, live in the URL (a reload keeps
 * them) and older entries page in through `before`.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, expectAccessible, expectNoHorizontalScroll, launchBrowser, openPage, screenshot, signIn, SKIP_REASON, startWebServer, type WebServer } from './web-harness.js';

let web: WebServer;

function session(key: string): Promise<Response> {
  return fetch(`${web.base}/v1/session`, { headers: { authorization: `Bearer ${key}` } });
}

describe.skipIf(SKIP_REASON !== null)('the admin pages in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    web = await startWebServer();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await web?.close();
  });

  it('creates a key with the predict scope, shows its secret once, revokes it, and the key is refused', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Keys' }).click();
    await page.waitForURL('**/admin/keys');
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    await page.getByRole('row', { name: /MEDFIT_ADMIN_KEY/ }).waitFor();
    await expectAccessible(page, 'the keys page');
    await expect(page.getByRole('link', { name: /API reference/ }).getAttribute('href')).resolves.toBe('/docs');

    // Without a scope the form says what is missing, and sends nothing.
    await page.getByLabel('Name', { exact: true }).fill('wearables gateway');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('Choose at least one scope.').waitFor();

    await page.getByRole('checkbox', { name: /^predict/ }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    const secretField = page.getByLabel('Secret of the new key');
    await secretField.waitFor();
    const secret = await secretField.inputValue();
    expect(secret).toMatch(/^mf_/);
    await page.getByText('you will not see it again', { exact: false }).waitFor();
    const row = page.getByRole('row', { name: /wearables gateway/ });
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain('predict');
    await expectAccessible(page, 'the keys page with a new secret');
    await screenshot(page, 'admin-keys-secret');

    // The secret works: the API knows the key and its scope.
    const ok = await session(secret);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { scopes: string[] }).scopes).toEqual(['predict']);

    // Leaving the page and coming back: the secret is gone from the screen.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
    await page.waitForURL('**/admin/audit');
    await page.goBack();
    await page.waitForURL('**/admin/keys');
    await row.waitFor();
    await expect(page.getByLabel('Secret of the new key').count()).resolves.toBe(0);
    await expect(page.locator('body').textContent()).resolves.not.toContain(secret);

    // Revoke, with a confirm step.
    await row.getByRole('button', { name: 'Revoke wearables gateway' }).click();
    const confirm = row.getByRole('button', { name: 'Yes, revoke wearables gateway' });
    await confirm.waitFor();
    await expect(confirm.evaluate((b) => b === b.ownerDocument.activeElement)).resolves.toBe(true);
    await expectAccessible(page, 'the keys page asking to confirm');
    await confirm.click();
    await row.getByText(/^revoked/).waitFor();
    await expect(row.getByRole('button', { name: /Revoke/ }).count()).resolves.toBe(0);
    expect((await session(secret)).status).toBe(401);
    await screenshot(page, 'admin-keys');
    expect(errors).toEqual([]);
    // Nothing of the secret in the browser's storage.
    expect(await page.evaluate<string>('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })')).not.toContain(secret);

    // Signing in with the revoked key: a readable refusal, no raw JSON.
    const other = await openPage(browser, web.base);
    await other.page.goto('/');
    await other.page.getByLabel('API key').fill(secret);
    await other.page.getByLabel('API key').press('Enter');
    const alert = other.page.getByRole('alert');
    await expect(alert.textContent()).resolves.toMatch(/refused \(unknown or revoked\)/);
    await expect(alert.textContent()).resolves.not.toContain('{');
    await expect(other.page.getByRole('navigation', { name: 'Main' }).count()).resolves.toBe(0);
    // The browser logs the refused request itself (a 401); nothing else.
    expect(other.errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
    await other.context.close();
    await context.close();
  }, 180_000);

  it('refuses to revoke the last admin key with a readable message', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/admin/keys');
    const row = page.getByRole('row', { name: /MEDFIT_ADMIN_KEY/ });
    await row.getByText('this session').waitFor();
    await row.getByRole('button', { name: 'Revoke MEDFIT_ADMIN_KEY' }).click();
    await row.getByText(/revoking it signs you out/).waitFor();
    await row.getByRole('button', { name: 'Yes, revoke MEDFIT_ADMIN_KEY' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/last admin key/);
    expect((await session(ADMIN_KEY)).status).toBe(200);
    // The refusal (409) is logged by the browser; nothing else.
    expect(errors.filter((e) => !/status of 409/.test(e))).toEqual([]);
    await context.close();
  });

  it('filters the audit log by action, key and time, keeps the filters in the URL through a reload, and pages to older entries', async () => {
    // 105 more keys made through the API: 105 key.create entries, more than one page of 100.
    for (let batch = 0; batch < 105; batch += 15) {
      const made = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          fetch(`${web.base}/v1/keys`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: `bulk ${batch + i}`, scopes: ['read'] }) }),
        ),
      );
      expect(made.map((r) => r.status)).toEqual(made.map(() => 201));
    }
    const { page, errors, context } = await openPage(browser, web.base);
    await signIn(page);
    await page.goto('/admin/audit');
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    const rows = page.getByRole('region', { name: 'Audit log entries' }).locator('tbody tr');
    await rows.first().waitFor();
    await expect(rows.count()).resolves.toBe(100);
    await expectAccessible(page, 'the audit log');

    // Older entries, appended below.
    await page.getByRole('button', { name: 'Older entries' }).click();
    await expect.poll(() => rows.count()).toBeGreaterThan(100);

    // Only key revocations: the one made in the first test and the refused one (409) of the second.
    await page.getByLabel('Action', { exact: true }).selectOption('key.revoke');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/action=key\.revoke/);
    await expect.poll(() => rows.count()).toBe(2);
    const actions = async () => (await rows.locator('td:nth-child(3)').allTextContents()).map((t) => t.trim());
    expect(await actions()).toEqual(['key.revoke', 'key.revoke']);
    expect((await rows.locator('td:nth-child(6)').allTextContents()).map((t) => t.trim())).toEqual(['409', '200']);

    // Survives a reload: the form and the list both come back filtered.
    await page.reload();
    await rows.first().waitFor();
    await expect(page.getByLabel('Action', { exact: true }).inputValue()).resolves.toBe('key.revoke');
    expect(await actions()).toEqual(['key.revoke', 'key.revoke']);
    await expect(page.getByRole('button', { name: 'Older entries' }).count()).resolves.toBe(0);

    // By key, and from a time in the future: nothing.
    await page.getByLabel('Action', { exact: true }).selectOption('');
    const admin = await page.getByLabel('Key', { exact: true }).locator('option', { hasText: 'MEDFIT_ADMIN_KEY' }).getAttribute('value');
    await page.getByLabel('Key', { exact: true }).selectOption(admin!);
    await page.getByLabel('Since').fill('2099-01-01T00:00');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/since=2099/);
    expect(page.url()).toContain(`key=${admin}`);
    expect(page.url()).not.toContain('action=');
    await page.getByText('No entries match these filters.').waitFor();

    // A shared link: the same view in a fresh context.
    const shared = page.url().replace(web.base, '');
    const other = await openPage(browser, web.base, 390);
    await signIn(other.page);
    await other.page.goto(`${shared.replace(/since=[^&]+/, '')}`);
    await other.page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await expect(other.page.getByLabel('Key', { exact: true }).inputValue()).resolves.toBe(admin);
    const otherRows = other.page.getByRole('region', { name: 'Audit log entries' }).locator('tbody tr');
    await otherRows.first().waitFor();
    const keyCells = (await otherRows.locator('td:nth-child(2)').allTextContents()).map((t) => t.trim());
    expect(keyCells.length).toBeGreaterThan(0);
    expect(keyCells.every((t) => t.startsWith('MEDFIT_ADMIN_KEY'))).toBe(true);
    await expectNoHorizontalScroll(other.page, 'the audit log at 390 px');
    await expectAccessible(other.page, 'the audit log at 390 px');
    await screenshot(other.page, 'admin-audit-390');
    expect(other.errors).toEqual([]);
    await other.context.close();

    await page.getByRole('button', { name: 'Clear filters' }).click();
    await page.waitForURL((u) => u.search === '');
    await expect.poll(() => rows.count()).toBe(100);
    await screenshot(page, 'admin-audit');
    expect(errors).toEqual([]);
    await context.close();
  }, 240_000);

  it('fits a 390 px screen: the keys page without sideways scrolling', async () => {
    const { page, errors, context } = await openPage(browser, web.base, 390);
    await signIn(page);
    await page.goto('/admin/keys');
    await page.getByRole('row', { name: /MEDFIT_ADMIN_KEY/ }).waitFor();
    await expectNoHorizontalScroll(page, 'the keys page at 390 px');
    await expectAccessible(page, 'the keys page at 390 px');
    await screenshot(page, 'admin-keys-390');
    expect(errors).toEqual([]);
    await context.close();
  }, 180_000);
});
