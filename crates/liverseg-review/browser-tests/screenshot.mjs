// Screenshot of a running review server (for looking at real cases by hand):
//   node screenshot.mjs http://127.0.0.1:8765/ out.png [--liver-window] [--surface]
// --surface opens the 3-D surface view (V) and waits for its mesh.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, out, ...flags] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'liverseg-review-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  if (flags.includes('--liver-window')) await page.keyboard.press('2');
  if (flags.includes('--surface')) {
    await page.keyboard.press('v');
    await page.waitForFunction(() => document.body.dataset.meshRevision === String(window.review.maskRevision), null, { timeout: 60000 });
  }
  await page.waitForTimeout(500);
  await page.screenshot({ path: out });
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
