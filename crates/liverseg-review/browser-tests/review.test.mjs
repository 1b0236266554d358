// Browser test of the review app in Debian's headless Chromium, driven by
// playwright-core. Started by crates/liverseg-review/tests/browser.rs, which
// serves a phantom case and checks the files on disk afterwards.
//
// Env: REVIEW_URL (server root), PAINT (i,j,k), ERASE (i,j,k), RADIUS (mm),
// SHOTS (folder for screenshots), CHROMIUM (default /usr/bin/chromium).
import { createServer } from 'node:http';
import { url, shot, check, helpers, run } from './setup.mjs';

const paint = process.env.PAINT.split(',').map(Number);
const erase = process.env.ERASE.split(',').map(Number);
const radius = Number(process.env.RADIUS);

await run('failure.png', async ({ ctx, page, errors, openPage }) => {
const { ready, status, goToSlice, click, maskAt } = helpers(page);

// A page of another origin (another port on loopback) that forges edits the
// way issue 21 found them: "simple" no-cors requests with a text/plain body,
// which need no preflight, plus a CORS request with the custom header (which
// needs one) and a cross-origin read of a slice.
async function attack() {
  const caseId = 'phantom01';
  const target = new URL(`/api/cases/${caseId}/`, url).href;
  const html = `<!doctype html><meta charset="utf-8"><title>evil</title><script>
  (async () => {
    const out = [];
    // A valid edit (as if made on the first revision): only the missing page token stops it.
    const all = JSON.stringify(${JSON.stringify({ op: 'brush', axis: 'z', slice: paint[2], points: [[paint[0], paint[1]]], radius_mm: 30, value: 1, mask_revision: 0 })});
    for (const [path, body] of [['edit', all], ['undo', '{}'], ['save', '{}'], ['record', '{"score":1}']]) {
      try {
        const r = await fetch(${JSON.stringify(target)} + path, { method: path === 'record' ? 'PUT' : 'POST', mode: 'no-cors', body, headers: { 'Content-Type': 'text/plain' } });
        out.push(path + ':' + r.type);
      } catch (e) { out.push(path + ':error'); }
    }
    try {
      await fetch(${JSON.stringify(target)} + 'edit', { method: 'POST', body: all, headers: { 'Content-Type': 'application/json', 'x-liverseg-token': 'guess' } });
      out.push('cors-edit:sent');
    } catch (e) { out.push('cors-edit:blocked'); }
    try {
      const r = await fetch(${JSON.stringify(target)} + 'slice/z/0');
      out.push('read:' + (await r.arrayBuffer()).byteLength);
    } catch (e) { out.push('read:blocked'); }
    document.title = 'done ' + out.join(' ');
  })();
  </script>`;
  const evil = createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(html); });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  const p2 = await ctx.newPage();
  try {
    await p2.goto(evilUrl);
    await p2.waitForFunction(() => document.title.startsWith('done'), null, { timeout: 15000 });
    const t = await p2.title();
    console.log(`# attack page ${evilUrl}: ${t}`);
    check('cross-origin CORS edit is blocked by the failed preflight', t.includes('cors-edit:blocked'), t);
    check('cross-origin read of a slice is blocked', t.includes('read:blocked'), t);
  } finally {
    await p2.close();
    evil.close();
  }
}

  await attack();
  await page.goto(url);
  await ready();
  check('the forged requests changed nothing', (await page.textContent('#stat-changed')) === '0' && (await page.textContent('#stat-edits')) === '0',
    `changed ${await page.textContent('#stat-changed')}, edits ${await page.textContent('#stat-edits')}`);
  check('the forged record changed nothing', (await page.locator('input[name=score]:checked').count()) === 0);
  await page.waitForFunction(() => window.review.views.z.data && window.review.views.y.data && window.review.views.x.data);
  await page.screenshot({ path: shot('1-opened.png') });
  check('no errors on load', errors.length === 0, errors.join(' | '));
  check('score buttons 1..5 by 0.5', (await page.locator('input[name=score]').count()) === 9);
  check('criteria shown', (await page.textContent('#criteria')).includes('It is better to segment the liver manually from scratch'));

  await goToSlice(paint[2]);
  await page.click('#tool-paint');
  await page.$eval('#radius', (el, r) => { el.value = r; el.dispatchEvent(new Event('input')); }, radius);
  check('paint starts empty', (await maskAt(paint)) === 0);
  await click(paint);
  const painted = await status(/^paint: \d+ voxels changed/);
  check('paint changed voxels', !/: 0 voxels/.test(painted), painted);
  check('paint visible in the slice', (await maskAt(paint)) === 1);

  await goToSlice(erase[2]);
  await page.keyboard.press('e');
  check('erase starts inside the liver', (await maskAt(erase)) === 1);
  await click(erase);
  const erased = await status(/^erase: \d+ voxels changed/);
  check('erase removed liver', (await maskAt(erase)) === 0, erased);
  await page.screenshot({ path: shot('2-painted-erased.png') });

  await page.keyboard.press('Control+z');
  await status(/^undo: erase/);
  check('undo restores the erased liver', (await maskAt(erase)) === 1);

  // Fill (Ctrl-click removes within the HU range), remove islands and
  // interpolate, each undone: the saved mask must still hold only the paint.
  const changed0 = await page.textContent('#stat-changed');
  await page.keyboard.press('f');
  const [fx, fy] = await page.evaluate((v) => window.review.views.z.voxelToClient(v), erase);
  const ctrlClick = async () => {
    await page.keyboard.down('Control');
    await page.mouse.click(fx, fy);
    await page.keyboard.up('Control');
  };
  // A fill is previewed first (in its own colour), and Esc discards it.
  await ctrlClick();
  const pre = await status(/^fill preview: −\d+ voxels/);
  check('fill preview shown, mask unchanged', (await maskAt(erase)) === 1 && await page.isVisible('#fill-apply'), pre);
  await page.screenshot({ path: shot('2a-fill-preview.png') });
  await page.keyboard.press('Escape');
  await status(/^fill preview cancelled/);
  const afterEsc = [await maskAt(erase), await page.isVisible('#fill-apply'), await page.textContent('#stat-changed')];
  check('Esc cancels the preview', afterEsc.join() === `1,false,${changed0}`, afterEsc.join());
  // Enter applies it.
  await ctrlClick();
  await status(/^fill preview: /);
  await page.keyboard.press('Enter');
  const filled = await status(/^fill: \d+ voxels changed/);
  check('2-D fill removed the liver region in the slice', (await maskAt(erase)) === 0 && !/: 0 voxels/.test(filled), filled);
  await page.keyboard.press('Control+z');
  await status(/^undo: fill/);
  // A 3-D fill with a wide HU range floods the body: refused by the limit.
  await page.keyboard.press('3');
  await page.fill('#hu-min', '-300');
  await page.keyboard.press('Escape');
  await page.fill('#hu-max', '500');
  await page.keyboard.press('Enter');
  check('Esc/Enter leave the HU boxes', await page.evaluate(() => document.activeElement === document.body));
  const outside = await page.evaluate(([i, j, k]) => {
    // The voxel of the row nearest the paint spot that is outside the liver, in the body.
    const d = window.review.views.z.data;
    for (let x = 0; x < d.w; x++) if (!d.mask[j * d.w + x] && d.mask[j * d.w + x + 1] && d.hu[j * d.w + x] > -300) return [x, j, k];
    return null;
  }, erase);
  const [ox, oy] = await page.evaluate((v) => window.review.views.z.voxelToClient(v), outside);
  await page.mouse.click(ox, oy);
  const flood = await status(/fill refused|^fill preview/);
  check('a 3-D flood through the body is refused by the default limit', /^fill refused: it would add [\d.]+ ml .*more than the limit of 300 ml/.test(flood), flood);
  const afterFlood = [await page.textContent('#stat-changed'), await page.isVisible('#fill-apply')];
  check('nothing changed by the refused flood', afterFlood.join() === `${changed0},false`, afterFlood.join());
  // Clicking inside the mask says why nothing would change.
  await page.mouse.click(fx, fy);
  const noop = await status(/^fill: nothing to change/);
  check('a no-op fill says why', /already in the mask/.test(noop), noop);
  await page.keyboard.press('3');
  await page.fill('#hu-min', '0');
  await page.fill('#hu-max', '250');
  await page.keyboard.press('Escape');
  // Shortcuts work again after the HU boxes: B selects the paint brush.
  await page.keyboard.press('b');
  check('shortcuts work after typing in the HU boxes', await page.evaluate(() => window.review.tool === 'paint'));
  await page.keyboard.press('f');
  // The hover readout follows wheel slice changes under a still pointer.
  await page.mouse.move(fx + 1, fy);
  await page.mouse.move(fx, fy);
  const before = await page.textContent('#readout');
  await page.mouse.wheel(0, 100);
  await page.waitForFunction((k) => window.review.views.z.data.index === k, erase[2] + 1);
  await page.waitForFunction((b) => document.getElementById('readout').textContent !== b, before, { timeout: 5000 }).catch(() => {});
  const after = await page.textContent('#readout');
  check('hover readout follows the wheel', after.startsWith(`(${erase[0]}, ${erase[1]}, ${erase[2] + 1})`), `${before} -> ${after}`);
  await page.mouse.wheel(0, -100);
  await page.waitForFunction((k) => window.review.views.z.data.index === k, erase[2]);
  await page.click('#islands');
  await status(/^remove_islands: \d+ voxels changed/);
  await page.keyboard.press('Control+z');
  await status(/^undo: /);
  await page.keyboard.press('i');
  const interp = await status(/^interpolate: \d+ voxels changed/);
  check('interpolation between the edited slices', !/: 0 voxels/.test(interp), interp);
  await page.screenshot({ path: shot('2b-interpolated.png') });
  await page.click('#undo');
  await status(/^undo: interpolate/);
  check('undos restore the changed-voxel count', (await page.textContent('#stat-changed')) === changed0);

  // Two tabs on the case (issue 21 item 5): the second opens it while the
  // first edits and is offered to take over or to look read-only. It takes
  // over and erases; the first tab's next edit is refused (423): it turns
  // read-only with a message, shows the erase, and its Ctrl+Z changes
  // nothing. It follows the other tab's undo, and takes the case back.
  await goToSlice(erase[2]);
  const nErrors = errors.length;
  const tab2 = await openPage();
  const h2 = helpers(tab2);
  try {
    // As a duplicated tab (Chromium copies sessionStorage): it starts with
    // the first tab's id, and must draw its own.
    const id1 = await page.evaluate(() => window.review.client);
    await tab2.addInitScript((id) => sessionStorage.setItem('liverseg-client', id), id1);
    await tab2.goto(url);
    await h2.ready();
    await tab2.waitForFunction(() => window.review.views.z.data);
    check('a duplicated tab draws its own tab id', await tab2.evaluate((id) => window.review.client !== id && sessionStorage.getItem('liverseg-client') === window.review.client, id1));
    check('second tab: a take-over prompt', await tab2.isVisible('#lease-dialog') && /being edited in another tab/.test(await tab2.textContent('#lease-dialog')));
    check('second tab is read-only until it takes over', await tab2.evaluate(() => window.review.editor === false) && await tab2.isVisible('#lease-banner'));
    await tab2.screenshot({ path: shot('2c-take-over-prompt.png') });
    await tab2.click('#lease-dialog-take');
    await h2.status(/^editing here/);
    await h2.goToSlice(erase[2]);
    await tab2.keyboard.press('e');
    await h2.click(erase);
    await h2.status(/^erase: [1-9]\d* voxels changed/);
    check('first tab still shows the old mask', (await maskAt(erase)) === 1);
    await page.bringToFront();
    await page.keyboard.press('b');
    await click(erase);
    const ro = await status(/read-only/);
    await page.waitForFunction(([i, j]) => { const d = window.review.views.z.data; return d.mask[j * d.w + i] === 0; }, erase, { timeout: 10000 });
    check("first tab: its edit is refused, it turns read-only and shows the other tab's erase",
      (await maskAt(erase)) === 0 && await page.isVisible('#lease-banner') && /took over/.test(await page.textContent('#lease-msg')), ro);
    await page.keyboard.press('Control+z');
    const noUndo = await status(/read-only/);
    check("Ctrl+Z in the read-only tab changes nothing (never the other tab's edit)", (await maskAt(erase)) === 0, noUndo);
    await page.screenshot({ path: shot('2d-read-only.png') });
    await tab2.keyboard.press('Control+z');
    await h2.status(/^undo: erase/);
    // The read-only tab follows the editor on its heartbeat.
    await page.waitForFunction(([i, j]) => { const d = window.review.views.z.data; return d.mask[j * d.w + i] === 1; }, erase, { timeout: 15000 });
    check("the read-only tab follows the editor's undo", (await maskAt(erase)) === 1);
  } finally {
    await tab2.close();
    await page.bringToFront();
  }
  await page.click('#lease-take');
  await status(/^editing here/);
  check('first tab edits again after taking the case back', await page.evaluate(() => window.review.editor === true) && !(await page.isVisible('#lease-banner')));
  // The refused requests are logged by Chromium as failed loads: expected here.
  errors.splice(nErrors, Infinity, ...errors.slice(nErrors).filter((e) => !/(409 \(Conflict\)|423 \(Locked\))/.test(e)));

  await page.click('label[for="score-3.5"]');
  await status(/^record: score 3.5/);
  await page.click('#tag-IVC-leaked');
  await status(/^record: score 3.5, 1 tags/);
  await page.click('#save');
  const saved = await status(/^saved /);
  check('saved', saved.includes('alice/adjusted/'), saved);

  await page.reload();
  await ready();
  await goToSlice(paint[2]);
  check('edit found after reload', (await maskAt(paint)) === 1);
  check('score kept', await page.isChecked('#score-3\\.5'));
  check('tag kept', await page.isChecked('#tag-IVC-leaked') && !(await page.isChecked('#tag-IVC-missed')));
  check('changed voxels shown', Number(await page.textContent('#stat-changed')) > 0);

  // Issue 21 item 4: context. The list of edited slices jumps to a slice.
  await page.waitForSelector(`#edited-list button[data-axis="z"][data-slice="${paint[2]}"]`);
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowUp');
  await page.click(`#edited-list button[data-axis="z"][data-slice="${paint[2]}"]`);
  await page.waitForFunction((k) => window.review.views.z.data && window.review.views.z.data.index === k, paint[2]);
  check('an edited slice in the list jumps there', (await page.evaluate(() => window.review.cursor[2])) === paint[2]);
  // The mask's colour at the painted voxel (offscreen canvas, one pixel per
  // voxel): orange while shown, grey (r = g = b) while hidden with M.
  const pixel = () => page.evaluate(([i, j]) => [...window.review.views.z.offCtx.getImageData(i, j, 1, 1).data.slice(0, 3)], paint);
  const shown = await pixel();
  await page.keyboard.press('m');
  const hidden = await pixel();
  check('M hides the mask', shown[0] !== shown[2] && hidden[0] === hidden[1] && hidden[1] === hidden[2], `${shown} -> ${hidden}`);
  await page.keyboard.press('m');
  check('M again shows it', (await pixel()).join() === shown.join());
  await page.$eval('#opacity', (el) => { el.value = 0.9; el.dispatchEvent(new Event('input')); });
  check('opacity slider sets the fill opacity', (await page.evaluate(() => window.review.display.opacity)) === 0.9);
  // The starting mask's outline: O fetches its slice, which lacks the paint.
  await page.keyboard.press('o');
  await page.waitForFunction((k) => window.review.views.z.start && window.review.views.z.start.index === k, paint[2]);
  const startAt = await page.evaluate(([i, j]) => { const s = window.review.views.z.start.mask; return s[j * window.review.views.z.data.w + i]; }, paint);
  check('O shows the starting mask (without the paint)', startAt === 0 && (await maskAt(paint)) === 1 && await page.isChecked('#show-start'));
  // The readout gives the LPS position in mm beside the voxel index.
  const [hx, hy] = await page.evaluate((v) => window.review.views.z.voxelToClient(v), paint);
  await page.mouse.move(hx, hy);
  const world = await page.evaluate((ijk) => {
    const m = window.review.meta;
    return [0, 1, 2].map((r) => (m.origin[r] + m.direction[3 * r] * m.spacing[0] * ijk[0] + m.direction[3 * r + 1] * m.spacing[1] * ijk[1] + m.direction[3 * r + 2] * m.spacing[2] * ijk[2]).toFixed(1));
  }, paint);
  const readout = await page.textContent('#readout');
  check('readout: voxel index and LPS mm', readout.includes(`(${paint.join(', ')})`) && readout.includes(`LPS (${world.join(', ')}) mm`) && readout.includes('start: not liver'), readout);
  await page.screenshot({ path: shot('2d-context.png') });
  await page.keyboard.press('o');
  await page.$eval('#opacity', (el) => { el.value = 0.35; el.dispatchEvent(new Event('input')); });
  // Zoom in on the paint and switch to contour display for a close look.
  const [x, y] = await page.evaluate((v) => window.review.views.z.voxelToClient(v), paint);
  await page.mouse.move(x, y);
  await page.keyboard.down('Control');
  for (let n = 0; n < 6; n++) await page.mouse.wheel(0, -100);
  await page.keyboard.up('Control');
  check('ctrl+wheel zooms, not scrolls', (await page.evaluate(() => [window.review.views.z.zoom > 2, window.review.cursor[2]])).join() === `true,${paint[2]}`);
  await page.keyboard.press('n');
  await page.keyboard.press('2');
  await page.waitForTimeout(300);
  await page.screenshot({ path: shot('3-reloaded-zoomed.png') });
  await page.keyboard.press('c');
  await page.keyboard.press('1');
  await page.keyboard.press('r');
  await goToSlice(erase[2]);
  await page.waitForTimeout(200);
  await page.screenshot({ path: shot('4-contour.png') });
  check('no page errors', errors.length === 0, errors.join(' | '));
});
