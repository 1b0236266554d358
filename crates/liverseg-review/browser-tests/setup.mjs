// Shared set-up of the browser tests (review.test.mjs, tools.test.mjs,
// editor.test.mjs): Debian's headless Chromium through playwright-core in a
// throw-away profile, the ok/FAIL tally, page-error capture and the page
// helpers every script drives the app with. Started by tests/browser.rs,
// which serves the cases and passes REVIEW_URL, SHOTS and CHROMIUM.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const url = process.env.REVIEW_URL;
export const shots = process.env.SHOTS || 'shots';
// Made when the first screenshot is named, so importing this module (as
// screenshot.mjs does, for `launch`) leaves the working folder alone.
export const shot = (name) => {
  mkdirSync(shots, { recursive: true });
  return join(shots, name);
};

const tally = { passed: 0, failed: 0 };
export function check(name, ok, detail = '') {
  if (ok) tally.passed++; else tally.failed++;
  console.log(`${ok ? 'ok' : 'FAIL'} - ${name}${detail ? `: ${detail}` : ''}`);
}

/** Chromium with a fresh profile; `errors` collects page errors and console errors of every page opened with `openPage`. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'liverseg-review-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    // WebGL 2 (the 3-D view) runs on Chromium's software renderer here.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  const watch = (p) => {
    p.on('pageerror', (e) => errors.push(String(e)));
    p.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    return p;
  };
  const page = watch(ctx.pages()[0] || (await ctx.newPage()));
  return {
    ctx,
    page,
    errors,
    /** Another tab in the same browser (shares the session: the same reviewer). */
    openPage: async () => watch(await ctx.newPage()),
    close: async () => {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Helpers bound to one tab of the app. */
export function helpers(page) {
  return {
    ready: () => page.waitForSelector('body[data-ready="1"]', { timeout: 20000 }),
    /** Wait for the status line to match `re`; returns its text. */
    status: async (re, timeout = 15000) => {
      await page.waitForFunction((src) => new RegExp(src).test(document.getElementById('status').textContent), re.source, { timeout });
      return page.textContent('#status');
    },
    /** Step the axial view (the active one at start) to slice k with the arrow keys. */
    goToSlice: async (k) => {
      const cur = await page.evaluate(() => window.review.cursor[2]);
      const key = k > cur ? 'ArrowUp' : 'ArrowDown';
      for (let n = 0; n < Math.abs(k - cur); n++) await page.keyboard.press(key);
      await page.waitForFunction((kk) => window.review.views.z.data && window.review.views.z.data.index === kk, k);
    },
    /** Screen position of voxel (i, j, k) in the axial view. */
    at: (ijk) => page.evaluate((v) => window.review.views.z.voxelToClient(v), ijk),
    /** A click with the mouse on voxel (i, j, k) of the axial view. */
    click: async (ijk) => {
      const [x, y] = await page.evaluate((v) => window.review.views.z.voxelToClient(v), ijk);
      await page.mouse.move(x, y);
      await page.mouse.down();
      await page.mouse.up();
    },
    /** The mask value the axial view shows at (i, j) of its slice. */
    maskAt: (ijk) => page.evaluate(([i, j]) => {
      const d = window.review.views.z.data;
      return d.mask[j * d.w + i];
    }, ijk),
    setRadius: (r) => page.$eval('#radius', (el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }, r),
  };
}

/**
 * Run a test script: `body(browser)` with the browser launched; a thrown
 * error is a failure (with a screenshot of the main tab as `failureShot`);
 * prints the tally and exits 1 on any failure.
 */
export async function run(failureShot, body, epilogue = () => {}) {
  const browser = await launch();
  try {
    await body(browser);
  } catch (e) {
    tally.failed++;
    console.log(`FAIL - ${e.stack || e}`);
    await browser.page.screenshot({ path: shot(failureShot) }).catch(() => {});
  } finally {
    await browser.close();
  }
  epilogue();
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exit(tally.failed ? 1 : 0);
}
