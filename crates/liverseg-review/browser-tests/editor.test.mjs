// Browser test of the 3-D surface view (issue 21 item 4) and of tags kept
// from before tags said missed or leaked (item 7), in Debian's headless
// Chromium with real mouse and keyboard events. Started by
// crates/liverseg-review/tests/browser.rs, which serves a phantom case whose
// reviewer record already holds a bare tag ("IVC") and checks the saved
// audit afterwards.
//
// Env: REVIEW_URL, CASE, PAINT (i,j,k: a spot beside the liver to paint),
// SHOTS, CHROMIUM.
import { url, shot, check, helpers, run } from './setup.mjs';

const caseId = process.env.CASE;
const paint = process.env.PAINT.split(',').map(Number);

await run('failure-editor.png', async ({ page, errors }) => {
  const { ready, status, goToSlice, click, setRadius } = helpers(page);
  // Requests for the mesh the page made so far (the browser's own log).
  const meshFetches = () => page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/mesh')).length);
  // What the 3-D canvas shows, drawn now and copied in the same task (the
  // WebGL buffer is only valid until the frame is shown): the number of
  // surface-coloured (orange) pixels and their centroid.
  const surfacePixels = () => page.evaluate(() => {
    const sv = window.review.surface.view;
    sv.draw();
    const c = document.createElement('canvas');
    c.width = sv.canvas.width;
    c.height = sv.canvas.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(sv.canvas, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0, sx = 0, sy = 0;
    for (let p = 0; p < d.length; p += 4) {
      if (d[p] > 60 && d[p] > 1.5 * d[p + 2]) { n++; const q = p / 4; sx += q % c.width; sy += Math.floor(q / c.width); }
    }
    return { n, x: n ? sx / n : 0, y: n ? sy / n : 0, w: c.width, h: c.height };
  });
  const meshShown = (rev) => page.waitForFunction((r) => document.body.dataset.meshRevision === String(r), rev, { timeout: 20000 });

  await page.goto(`${url}?case=${caseId}`);
  await ready();
  await page.waitForFunction(() => window.review.views.z.data && window.review.views.y.data && window.review.views.x.data);

  // Item 7: a tag recorded before tags had a kind is shown and kept.
  const bare = await page.textContent('#bare-tags');
  check('an old bare tag is shown as such', /earlier tags without missed\/leaked: IVC/.test(bare), bare);
  await page.click('#tag-kidney-leaked');
  const rec = await status(/^record: score .*, 2 tags/);
  check('a new tag is added beside the bare one (both sent)', true, rec);

  // Item 4: the 3-D surface view, toggled by V, fetched once per mask revision.
  check('no mesh fetched while the 3-D view is off', (await meshFetches()) === 0);
  await page.keyboard.press('v');
  const rev0 = await page.evaluate(() => window.review.maskRevision);
  await meshShown(rev0);
  check('V shows the 3-D view beside the axial view', await page.isVisible('#view-3d') && await page.evaluate(() => document.getElementById('views').classList.contains('with-3d')));
  const info0 = await page.textContent('#surface-info');
  check('the view says what it shows', /^[\d,]+ triangles · cells of \d×\d×\d voxels · \d+ cm² · revision \d+$/.test(info0), info0);
  const front = await surfacePixels();
  check('the surface is drawn (shaded, in the mask colour)', front.n > 2000, JSON.stringify(front));
  await page.waitForTimeout(200);
  await page.screenshot({ path: shot('10-surface.png') });
  check('one mesh fetch', (await meshFetches()) === 1);

  // Drag rotates, the wheel zooms, double-click resets.
  const box = await page.locator('#view-3d').boundingBox();
  const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  await page.mouse.move(cx + 120, cy + 40, { steps: 8 });
  await page.mouse.up();
  const yaw = await page.evaluate(() => [window.review.surface.view.yaw, window.review.surface.view.pitch]);
  const turned = await surfacePixels();
  check('drag rotates the surface', yaw[0] > 0.5 && yaw[1] > 0.2 && (Math.abs(turned.n - front.n) > 50 || Math.abs(turned.x - front.x) > 2), `yaw ${yaw[0].toFixed(2)}, pitch ${yaw[1].toFixed(2)}; ${front.n} -> ${turned.n} pixels`);
  await page.screenshot({ path: shot('11-surface-rotated.png') });
  for (let n = 0; n < 4; n++) await page.mouse.wheel(0, -100);
  const zoomed = await surfacePixels();
  check('wheel zooms in', zoomed.n > 1.3 * turned.n, `${turned.n} -> ${zoomed.n} pixels`);
  await page.mouse.dblclick(cx, cy);
  check('double-click resets the view', (await page.evaluate(() => [window.review.surface.view.yaw, window.review.surface.view.zoom])).join() === '0,1');

  // An edit: the mesh is fetched again and shows it; actions that leave the
  // mask as it is (slice steps, record changes, toggling the view) fetch nothing.
  await goToSlice(paint[2]);
  await page.keyboard.press('b');
  await setRadius(12);
  await click(paint);
  await status(/^paint: [1-9]\d* voxels changed/);
  const rev1 = await page.evaluate(() => window.review.maskRevision);
  await meshShown(rev1);
  const info1 = await page.textContent('#surface-info');
  check('the surface follows the edit (fetched again, once)', rev1 > rev0 && (await meshFetches()) === 2 && info1 !== info0 && info1.endsWith(`revision ${rev1}`), `${info0} -> ${info1}`);
  await page.screenshot({ path: shot('12-surface-after-paint.png') });
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowDown');
  await page.click('#tag-kidney-leaked');
  await status(/^record: score .*, 1 tags/);
  await page.click('#tag-kidney-leaked');
  await status(/^record: score .*, 2 tags/);
  await page.keyboard.press('v');
  await page.keyboard.press('v');
  await page.waitForTimeout(300);
  check('no fetch while the mask revision stays the same', (await meshFetches()) === 2, `${await meshFetches()} fetches`);
  await page.keyboard.press('Control+z');
  await status(/^undo: paint/);
  const rev2 = await page.evaluate(() => window.review.maskRevision);
  await meshShown(rev2);
  check('undo refreshes the surface too', (await meshFetches()) === 3 && (await surfacePixels()).n === front.n, `${await meshFetches()} fetches`);

  await page.keyboard.press('Control+s');
  await status(/^saved /);
  await page.reload();
  await ready();
  check('after reload: the bare tag is still there, beside the new one',
    /IVC/.test(await page.textContent('#bare-tags')) && await page.isChecked('#tag-kidney-leaked'));
  check('no page errors', errors.length === 0, errors.join(' | '));
});
