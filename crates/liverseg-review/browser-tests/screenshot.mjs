// Screenshot of a running review server (for looking at real cases by hand):
//   node screenshot.mjs http://127.0.0.1:8765/ out.png [--liver-window] [--surface]
// --surface opens the 3-D surface view (V) and waits for its mesh.
import { launch } from './setup.mjs';

const [url, out, ...flags] = process.argv.slice(2);
const browser = await launch();
try {
  const { page } = browser;
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
  await browser.close();
}
