/// <reference lib="dom" />
/**
 * The status page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
 * puppeteer-core, on a page written by the built `l2backup report -o` from a fixture volume
 * made by the built programs. Checks what a reader sees through the DOM, at desktop and phone
 * widths, and saves screenshots as artifacts (the run's folder and ./artifacts/, not committed).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { ROOT, run } from '../helpers/run.js';
import { scratch } from '../helpers/cleanup.js';
import { buildFixtureVolume, FLAPPING, HOSTILE_TARGET, type Fixture } from '../helpers/report-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`SKIPPED: the status page browser test needs Chromium at ${CHROMIUM} (Debian package chromium)`);
const maybe = haveChromium ? describe : describe.skip;

const artifactDirs = [join(process.env.L2_TEST_RUN_DIR ?? tmpdir(), 'artifacts', 'report'), join(ROOT, 'artifacts')];

maybe('status page in Chromium', () => {
  let fixture: Fixture;
  let browser: Browser;
  let profile: string;
  let pagePath: string;
  let html: string;

  beforeAll(async () => {
    fixture = await buildFixtureVolume();
    pagePath = join(fixture.box.dir, 'status.html');
    const res = await run('l2backup', ['report', '-o', pagePath], fixture.box.env);
    expect(res.exitCode).toBe(0);
    html = readFileSync(pagePath, 'utf8');
    for (const dir of artifactDirs) {
      mkdirSync(dir, { recursive: true });
      copyFileSync(pagePath, join(dir, 'status.html'));
    }
    const { default: puppeteer } = await import('puppeteer-core');
    profile = mkdtempSync(join(scratch(), 'chromium-profile-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
    });
  });

  afterAll(async () => {
    await browser?.close();
    for (const close of fixture?.closers ?? []) await close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function open(width: number, height = 900, colorScheme: 'light' | 'dark' = 'light'): Promise<Page> {
    const page = await browser.newPage();
    await page.setViewport({ width, height, deviceScaleFactor: 1 });
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: colorScheme }]);
    // Nothing may be fetched: the page is self-contained.
    await page.setRequestInterception(true);
    const requests: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith('file:')) requests.push(req.url());
      void (req.url().startsWith('file:') ? req.continue() : req.abort());
    });
    await page.goto(pathToFileURL(pagePath).href, { waitUntil: 'load' });
    expect(requests).toEqual([]);
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    const file = join(artifactDirs[0]!, name);
    await page.screenshot({ path: file as `${string}.png`, fullPage: true });
    for (const dir of artifactDirs.slice(1)) copyFileSync(file, join(dir, name));
  }

  test('the page is self-contained, small and has no script', () => {
    expect(Buffer.byteLength(html)).toBeLessThan(300 * 1024);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\b(src|href)=["']?(https?:)?\/\//i);
    expect(html).not.toContain('hunter2secret');
    expect(html).not.toContain('abcdef123456');
  });

  test('desktop: 30 run bars, failed and partial runs marked, the flapping target has down segments', async () => {
    const page = await open(1280);
    const bars = await page.$$eval('svg[data-chart="durationMs"] g.run', (gs) => gs.map((g) => ({ status: g.getAttribute('data-status'), label: g.getAttribute('aria-label') ?? '', mark: g.querySelector('text.mark')?.textContent ?? '', h: Number(g.querySelector('rect.bar')?.getAttribute('height')) })));
    expect(bars).toHaveLength(30);
    const failed = bars.filter((b) => b.status === 'failed');
    expect(failed.length).toBeGreaterThanOrEqual(2);
    for (const f of failed) {
      expect(f.label).toContain('FAILED');
      expect(f.mark).toBe('✕');
    }
    const partial = bars.filter((b) => b.status === 'partial');
    expect(partial.length).toBeGreaterThanOrEqual(2); // one synthetic, one real (a missing source)
    for (const p of partial) expect(p.mark).toBe('!');
    // The latest run (real, partial) is the rightmost bar.
    expect(bars[bars.length - 1]!.status).toBe('partial');

    const text = await page.evaluate(() => document.body.innerText);
    expect(text).toContain('Backup runs');
    expect(text).toMatch(/FAILED/);
    expect(text).toContain('Health targets');
    expect(text).toContain(HOSTILE_TARGET); // shown as text...
    expect(await page.$$eval('script', (s) => s.length)).toBe(0); // ...never run
    expect(text).toContain('feed\\nsplit');
    expect(text).toMatch(/Open incident: DOWN/);
    expect(text).toMatch(/Storage forecast/);
    expect(text).toMatch(/Last restore drill/);
    expect(text).toMatch(/dead-lettered/);
    expect(text).toContain('<img src=x onerror=alert(1)>');
    expect(await page.$$eval('img', (i) => i.length)).toBe(0);

    const strip = await page.$$eval(`article[data-target="${FLAPPING}"] svg.strip[data-window="24h"] rect.seg`, (rs) => rs.map((r) => r.getAttribute('data-level')));
    expect(strip.filter((l) => l === 'down').length).toBeGreaterThanOrEqual(5);
    expect(strip.filter((l) => l === 'up').length).toBeGreaterThanOrEqual(5);
    const spark = await page.$$eval(`article[data-target="${FLAPPING}"] .spark polyline`, (p) => p.length);
    expect(spark).toBe(1);
    const buffered = await page.$$eval('#alerts ul.alerts li', (li) => li.length);
    expect(buffered).toBeGreaterThanOrEqual(3);
    await shot(page, 'status-desktop.png');
    await page.close();
  });

  test('phone: nothing overflows a 375 px viewport, text stays readable', async () => {
    const page = await open(375, 800);
    const overflow = await page.evaluate(() => {
      const vw = document.documentElement.clientWidth;
      const wide = Array.from(document.querySelectorAll('body *')).filter((el) => el.getBoundingClientRect().right > vw + 0.5).map((el) => `${el.tagName}.${el.className}`);
      return { scroll: document.documentElement.scrollWidth, vw, wide: wide.slice(0, 5) };
    });
    expect(overflow.wide).toEqual([]);
    expect(overflow.scroll).toBeLessThanOrEqual(375);
    const smallest = await page.evaluate(() => Math.min(...Array.from(document.querySelectorAll('p, td, th, li, span, figcaption, h2, h3')).filter((e) => (e as HTMLElement).offsetParent !== null && e.textContent?.trim()).map((e) => parseFloat(getComputedStyle(e).fontSize))));
    expect(smallest).toBeGreaterThanOrEqual(11);
    await shot(page, 'status-phone.png');
    await page.close();
  });

  test('dark scheme and no colour: statuses still read as words and shapes', async () => {
    const page = await open(1024, 900, 'dark');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(bg).not.toBe('rgb(255, 255, 255)');
    await shot(page, 'status-dark.png');
    await page.emulateVisionDeficiency('achromatopsia');
    await shot(page, 'status-greyscale.png');
    const words = await page.$$eval('.badge', (b) => b.map((x) => x.textContent ?? ''));
    expect(words.some((w) => /✕\s*(FAILED|DOWN)/.test(w))).toBe(true);
    await page.close();
  });
});
