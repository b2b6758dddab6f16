/**
 * The web app's first load, in Debian's Chromium: how much compressed JavaScript it downloads and
 * how long until the first content, against a baseline page (one heading, served by a bare Node
 * HTTP server in this same process) that shows what the browser itself costs on this machine.
 *
 *   npx tsx bench/web.ts [--runs 15]
 *
 * Each run is a fresh browser context (empty cache), loading `/` (the sign-in page) and then a
 * deep link as a signed-in user (`/models`), the way a shared link is opened. Reports medians.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { WEB_DIST } from '../src/api/dashboard.js';
import { ADMIN_KEY, CHROMIUM, launchBrowser, startWebServer } from '../test/web-harness.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 15);
if (!CHROMIUM) {
  console.error('bench/web.ts needs Chromium (Debian package "chromium", or MEDFIT_CHROMIUM)');
  process.exit(2);
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const baseline = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>baseline</title></head><body><h1>baseline</h1></body></html>');
});
await new Promise<void>((r) => baseline.listen(0, '127.0.0.1', r));
const baselineUrl = `http://127.0.0.1:${(baseline.address() as AddressInfo).port}/`;

const web = await startWebServer();
const browser = await launchBrowser();

/** First contentful paint of `url` in a fresh context, and the scripts it fetched. */
async function load(url: string, waitFor: string | null, key?: string): Promise<{ fcp: number; ready: number; scripts: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (key) await context.addInitScript((k) => (globalThis as any).sessionStorage.setItem('medfit.key', k), key);
  const page = await context.newPage();
  const scripts: string[] = [];
  page.on('response', (r) => {
    if (r.request().resourceType() === 'script') scripts.push(new URL(r.url()).pathname);
  });
  const t0 = Date.now();
  await page.goto(url);
  if (waitFor) await page.locator(waitFor).first().waitFor();
  const ready = Date.now() - t0;
  // Runs in the page (the Node project has no DOM types, hence the casts).
  const fcp = await page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        const g = globalThis as any;
        const e = g.performance.getEntriesByName('first-contentful-paint')[0];
        if (e) return resolve(e.startTime as number);
        new g.PerformanceObserver((l: any) => resolve(l.getEntries()[0].startTime as number)).observe({ type: 'paint', buffered: true });
      }),
  );
  await context.close();
  return { fcp, ready, scripts };
}

const results: Record<string, { fcp: number[]; ready: number[] }> = { baseline: { fcp: [], ready: [] }, signIn: { fcp: [], ready: [] }, deepLink: { fcp: [], ready: [] } };
let scripts: string[] = [];
for (let i = 0; i < runs; i++) {
  const b = await load(baselineUrl, 'h1');
  results['baseline']!.fcp.push(b.fcp);
  results['baseline']!.ready.push(b.ready);
  const s = await load(`${web.base}/`, 'input[type=password]');
  results['signIn']!.fcp.push(s.fcp);
  results['signIn']!.ready.push(s.ready);
  scripts = s.scripts;
  const d = await load(`${web.base}/models`, 'h1', ADMIN_KEY);
  results['deepLink']!.fcp.push(d.fcp);
  results['deepLink']!.ready.push(d.ready);
}

const size = (f: string, ext: string) => {
  try {
    return statSync(join(WEB_DIST, `${f}${ext}`)).size;
  } catch {
    return NaN;
  }
};
const js = [...new Set(scripts)];
const raw = js.reduce((a, f) => a + size(f, ''), 0);
const br = js.reduce((a, f) => a + size(f, '.br'), 0);
const gz = js.reduce((a, f) => a + size(f, '.gz'), 0);

console.log(`first load JavaScript (${js.length} file${js.length === 1 ? '' : 's'}): ${(raw / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzip, ${(br / 1024).toFixed(1)} KB brotli (budget 300 KB compressed)`);
console.log(`median of ${runs} fresh loads (ms)      first contentful paint   page ready`);
for (const [name, r] of Object.entries(results)) {
  console.log(`  ${name.padEnd(36)} ${median(r.fcp).toFixed(0).padStart(8)}   ${median(r.ready).toFixed(0).padStart(14)}`);
}
console.log(`  ratio sign-in / baseline              ${(median(results['signIn']!.fcp) / median(results['baseline']!.fcp)).toFixed(2)}×`);

await browser.close();
await web.close();
baseline.close();
