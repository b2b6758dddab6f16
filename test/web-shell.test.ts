/**
 * The web app's shell in a real browser and over HTTP: how it is served (compression, cache
 * headers, app routes), sign-in (label, Enter, a refused key's message, session-only storage),
 * deep links surviving a reload, what a narrow key is offered, and the checks every page gets.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../src/api/index.js';
import { ADMIN_KEY, expectAccessible, expectNoHorizontalScroll, launchBrowser, openPage, screenshot, signIn, SKIP_REASON, startWebServer, WEB_BUILT, type WebServer } from './web-harness.js';

let web: WebServer;
beforeAll(async () => {
  web = await startWebServer();
});
afterAll(async () => {
  await web?.close();
});

describe.skipIf(!WEB_BUILT)('serving the web app', () => {
  it('sends the page uncached with a content security policy, and hashed assets compressed and cached for a year', async () => {
    const res = await fetch(`${web.base}/`, { headers: { 'accept-encoding': 'br, gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    const scripts = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThan(0);
    // Nothing from another origin: hospitals run offline.
    expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
    for (const s of scripts) {
      expect(s).toMatch(/-[A-Za-z0-9_-]{8,}\.(js|css)$/);
      const br = await fetch(`${web.base}${s}`, { headers: { 'accept-encoding': 'br' } });
      expect(br.headers.get('content-encoding')).toBe('br');
      expect(br.headers.get('cache-control')).toContain('immutable');
      const gz = await fetch(`${web.base}${s}`, { headers: { 'accept-encoding': 'gzip' } });
      expect(gz.headers.get('content-encoding')).toBe('gzip');
      const plain = await fetch(`${web.base}${s}`, { headers: { 'accept-encoding': 'identity' } });
      expect(plain.headers.get('content-encoding')).toBeNull();
      // fetch decodes the body, so the sizes on the wire are the content-length headers.
      expect(Number(br.headers.get('content-length'))).toBeLessThan(Number(plain.headers.get('content-length')));
    }
    expect((await fetch(`${web.base}/favicon.svg`)).status).toBe(200);
  });

  it('answers every app route with the page, and leaves API and unknown paths alone', async () => {
    for (const p of ['/models/a%20b/versions/3', '/jobs/x', '/datasets/y', '/admin/keys', '/train']) {
      const res = await fetch(`${web.base}${p}`);
      expect(res.status, p).toBe(200);
      expect(await res.text()).toContain('<div id="app">');
    }
    expect((await fetch(`${web.base}/v1/models`)).status).toBe(401);
    expect((await fetch(`${web.base}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${web.base}/no-such-page`)).status).not.toBe(200);
  });
});

describe.skipIf(SKIP_REASON !== null)('the shell in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('refuses a wrong key with a readable message and signs in with Enter; the key stays in this tab only', async () => {
    const { page, errors, context } = await openPage(browser, web.base);
    await page.goto('/');
    await expectAccessible(page, 'the sign-in page');
    await page.getByLabel('API key').fill('not-a-key');
    await page.getByLabel('API key').press('Enter');
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/refused/i);
    // Chromium logs the deliberate 401 as a console error; a normal visit must have none.
    errors.length = 0;
    await signIn(page);
    expect(await page.evaluate(() => (globalThis as any).localStorage.length)).toBe(0);
    expect(await page.evaluate(() => Object.keys((globalThis as any).sessionStorage))).toEqual(['medfit.key']);
    await screenshot(page, 'shell-overview');
    await expectAccessible(page, 'the overview');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('keeps the route on reload and Back, at 390 px without sideways scrolling', async () => {
    const { page, errors, context } = await openPage(browser, web.base, 390);
    await signIn(page);
    await page.getByRole('link', { name: 'Models', exact: true }).first().click();
    await page.waitForURL('**/models');
    await page.goto('/jobs');
    await page.reload();
    await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).getAttribute('aria-current')).resolves.toBe('page');
    await page.goBack();
    await page.waitForURL('**/models');
    await expectNoHorizontalScroll(page, 'the models page');
    await screenshot(page, 'shell-390');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('offers a read-only key no training and no admin pages', async () => {
    const { key } = await createKey(web.server.services.store, 'default', ['read'], 'reader');
    const { page, context } = await openPage(browser, web.base);
    await signIn(page, key);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await expect(nav.getByRole('link', { name: 'Models' }).count()).resolves.toBe(1);
    await expect(nav.getByRole('link', { name: 'Train' }).count()).resolves.toBe(0);
    await expect(nav.getByRole('link', { name: 'Keys' }).count()).resolves.toBe(0);
    await page.goto('/admin/keys');
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Nothing here');
    expect(ADMIN_KEY).not.toBe(key);
    await context.close();
  });
});
