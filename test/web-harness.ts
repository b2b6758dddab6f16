/**
 * What the browser tests share: a real `medfit` server on a real port (fresh data directory, an
 * admin key), Debian's Chromium driven by playwright-core, and the checks every page gets: no
 * console errors, no serious or critical axe-core violation, a screenshot that is not blank.
 *
 * Chromium is not downloadable here (`npx playwright install` needs the internet), so the tests
 * use the system's: `MEDFIT_CHROMIUM`, else /usr/bin/chromium. Where none exists (a newcomer's
 * laptop) the browser tests skip with a message; `.ci/run` installs Debian's `chromium` package.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import AxeBuilder from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { initServer, loadConfig, type Server } from '../src/api/index.js';
import { WEB_DIST } from '../src/api/dashboard.js';
import { ROOT, tempDir } from './helpers.js';

/** The Chromium binary the tests drive, or null (then they skip). */
export const CHROMIUM: string | null = [process.env['MEDFIT_CHROMIUM'], '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => !!p && existsSync(p)) ?? null;

/** Whether the web app was built (`npm ci` builds it; the browser tests need it). */
export const WEB_BUILT = existsSync(join(WEB_DIST, 'index.html'));

/** Why the browser tests skip, or null when they run. */
export const SKIP_REASON: string | null = !CHROMIUM
  ? 'no Chromium found (install Debian\'s "chromium" package or set MEDFIT_CHROMIUM): browser tests skipped'
  : !WEB_BUILT
    ? 'the web app is not built (npm run build:web): browser tests skipped'
    : null;
if (SKIP_REASON) console.warn(`[web tests] ${SKIP_REASON}`);

/** Screenshots land here for a person to look at (ignored by git). */
export const SHOTS = join(ROOT, 'test', 'screenshots');

export const ADMIN_KEY = 'web-admin-key-0123456789abcdef';

export interface WebServer {
  base: string;
  server: Server;
  dataDir: string;
  close(): Promise<void>;
}

/** A real server on 127.0.0.1 with a fresh data directory and `ADMIN_KEY` as its admin key. */
export async function startWebServer(env: Record<string, string> = {}): Promise<WebServer> {
  const dataDir = join(tempDir('medfit-web-'), 'data');
  const server = await initServer(loadConfig({ MEDFIT_ADMIN_KEY: ADMIN_KEY, MEDFIT_LOG_LEVEL: 'silent', ...env }, { dataDir, port: '0' }));
  const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  return { base, server, dataDir, close: () => server.close() };
}

/** Launches the system Chromium headless, with the flags this closed network needs. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM!,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

export interface TestPage {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors seen so far. */
  errors: string[];
}

/** A fresh browser context (its own sessionStorage) at `width` × 900, recording console errors. */
export async function openPage(browser: Browser, base: string, width = 1280): Promise<TestPage> {
  const context = await browser.newContext({ baseURL: base, viewport: { width, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

/** Signs in through the form (label, Enter to submit) and waits for the navigation to appear. */
export async function signIn(page: Page, key = ADMIN_KEY): Promise<void> {
  await page.goto('/');
  await page.getByLabel('API key').fill(key);
  await page.getByLabel('API key').press('Enter');
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

/**
 * Runs axe-core on the page as it is now and fails on any serious or critical violation, naming
 * each rule and the elements it found.
 */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
  expect(summary, `axe-core on ${what}`).toEqual([]);
}

/** Fails when the page is wider than the viewport (a horizontal scrollbar on a phone). */
export async function expectNoHorizontalScroll(page: Page, what: string): Promise<void> {
  // evaluate's callback runs in the page; the Node project has no DOM types, hence the cast.
  const { scroll, client } = await page.evaluate(() => {
    const root = (globalThis as any).document.documentElement;
    return { scroll: root.scrollWidth as number, client: root.clientWidth as number };
  });
  expect(scroll, `${what} is ${scroll}px wide in a ${client}px viewport`).toBeLessThanOrEqual(client + 1);
}

/**
 * Takes a full-page screenshot, saves it under test/screenshots/<name>.png and checks it is not
 * blank: at least 2% of the pixels differ from the most common colour, in at least 16 colours.
 */
export async function screenshot(page: Page, name: string): Promise<Buffer> {
  const png = await page.screenshot({ fullPage: true });
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, `${name}.png`), png);
  const { width, height, pixels, channels } = decodePng(png);
  const counts = new Map<number, number>();
  for (let i = 0; i < width * height; i++) {
    const o = i * channels;
    const rgb = (pixels[o]! << 16) | (pixels[o + 1]! << 8) | pixels[o + 2]!;
    counts.set(rgb, (counts.get(rgb) ?? 0) + 1);
  }
  let top = 0;
  for (const c of counts.values()) top = Math.max(top, c);
  const varied = 1 - top / (width * height);
  expect(varied, `screenshot ${name}: ${(varied * 100).toFixed(2)}% of pixels differ from the background`).toBeGreaterThan(0.02);
  expect(counts.size, `screenshot ${name}: ${counts.size} colours`).toBeGreaterThanOrEqual(16);
  return png;
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes) into raw pixels. */
export function decodePng(png: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8]!;
      const colour = data[9]!;
      if (depth !== 8 || data[12] !== 0 || (colour !== 2 && colour !== 6)) throw new Error(`unsupported PNG (depth ${depth}, colour type ${colour}, interlace ${data[12]})`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[dst + x - channels]! : 0;
      const b = y > 0 ? out[dst - stride + x]! : 0;
      const c = x >= channels && y > 0 ? out[dst - stride + x - channels]! : 0;
      const v = raw[src + x]!;
      let r: number;
      switch (filter) {
        case 0: r = v; break;
        case 1: r = v + a; break;
        case 2: r = v + b; break;
        case 3: r = v + ((a + b) >> 1); break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          r = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default: throw new Error(`bad PNG filter ${filter}`);
      }
      out[dst + x] = r & 0xff;
    }
  }
  return { width, height, channels, pixels: out };
}
