// The review app: worklist, three linked views, editing tools, the clinical
// record. The server applies every edit; the page only fetches the slices it
// shows and sends compact operations.
import { getJSON, send, getSlice, getMesh, caseUrl } from './api.js';
import { SliceView, AXIS_INDEX } from './view.js';
import { SurfaceView } from './surface.js';

const $ = (id) => document.getElementById(id);
const PRESETS = { abdomen: { width: 400, level: 40 }, liver: { width: 150, level: 80 } };

const app = {
  info: null,
  caseId: null,
  meta: null,
  cursor: [0, 0, 0],
  wl: { ...PRESETS.abdomen },
  // hideMask: the CT alone (M); showStart: the starting mask's outline (O).
  display: { fill: true, opacity: 0.35, hideMask: false, showStart: false },
  tool: 'paint',
  brush: { radius: 5, sphere: false, limit: false, huMin: 0, huMax: 250, pthresh: 0.5 },
  views: {},
  active: 'z',
  revision: -1,
  // The mask revision this page shows; every edit, undo and redo names it, and
  // the server refuses one made on another (a second tab changed the case).
  maskRevision: -1,
  // An edit computed but not applied: {op, name, mark}; mark holds a byte
  // per voxel (1 = would be added, 2 = removed), as a Set of a large grow's
  // million voxels would cost far more memory and time to look up.
  preview: null,
  editedSlices: { x: [], y: [], z: [] },
  // Key slices for Fill between, per view, in the order marked.
  keySlices: { x: [], y: [], z: [] },
  // Grow-from-seeds strokes: {axis, slice, points, radius_mm, value}; they
  // change nothing until Grow is previewed and applied.
  seeds: [],
  lastActivity: 0,
  busy: Promise.resolve(),
  // One editor per case: true while this tab holds the server's editor lease,
  // false while another tab edits (this one is read-only), null before asking.
  editor: null,
  // The 3-D surface view (V): the mesh shown and the mask revision it is of,
  // so it is fetched again only when the mask changed.
  surface: { on: false, view: null, caseId: null, revision: -1, loading: false, again: false },
};
window.review = app; // inspection hook for the browser tests

// This tab's id: the server lets a tab undo only its own edits, and gives
// the editor lease to one tab. Kept across reloads of the tab
// (sessionStorage), different in every other tab (see uniqueClient).
const freshId = () => Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
let CLIENT = (() => {
  try {
    let id = sessionStorage.getItem('liverseg-client');
    if (!id) { id = freshId(); sessionStorage.setItem('liverseg-client', id); }
    return id;
  } catch (_) {
    return freshId();
  }
})();
app.client = CLIENT;

// A duplicated tab starts with a copy of its original's sessionStorage, and
// so with the same id: it would pass for the original (its editor lease, its
// undo steps). Ask the other tabs of this origin; when one already uses the
// id, draw a new one. The channel stays open to answer later duplicates.
async function uniqueClient() {
  if (typeof BroadcastChannel === 'undefined') return;
  const ch = new BroadcastChannel('liverseg-review-tabs');
  const nonce = freshId();
  let clash = false;
  ch.onmessage = (e) => {
    const m = e.data || {};
    if (m.type === 'hello' && m.id === CLIENT && m.nonce !== nonce) ch.postMessage({ type: 'taken', nonce: m.nonce });
    if (m.type === 'taken' && m.nonce === nonce) clash = true;
  };
  ch.postMessage({ type: 'hello', id: CLIENT, nonce });
  // Other tabs answer within a few ms; a hidden tab's message handlers are not throttled.
  await new Promise((r) => setTimeout(r, 150));
  if (clash) {
    CLIENT = freshId();
    app.client = CLIENT;
    try { sessionStorage.setItem('liverseg-client', CLIENT); } catch (_) { /* storage off: the id lives in this page only */ }
  }
}

function setStatus(msg, kind = '') {
  const s = $('status');
  s.textContent = msg;
  s.className = kind;
}

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}

function showSummary(r) {
  if (!r) return;
  const st = r.stats;
  $('stat-volume').textContent = st.volume_ml.toFixed(1);
  $('stat-start').textContent = st.start_volume_ml.toFixed(1);
  $('stat-delta').textContent = (st.volume_ml - st.start_volume_ml >= 0 ? '+' : '') + (st.volume_ml - st.start_volume_ml).toFixed(1);
  $('stat-dsc').textContent = st.dsc_vs_start.toFixed(4);
  $('stat-changed').textContent = st.changed_voxels;
  if (r.edit_count !== undefined) $('stat-edits').textContent = r.edit_count;
  if (r.active_seconds !== undefined) $('stat-time').textContent = fmtTime(r.active_seconds);
  $('undo').disabled = !r.can_undo;
  $('redo').disabled = !r.can_redo;
  if (r.revision !== undefined) app.revision = r.revision;
  if (r.mask_revision !== undefined) app.maskRevision = r.mask_revision;
  refreshSurface();
}

// Serialise server calls that change state, so strokes apply in order.
function queue(fn) {
  const p = app.busy.then(fn, fn);
  app.busy = p.catch((e) => setStatus(e.message, 'error'));
  return app.busy;
}

async function loadSlice(axis, maskOnly) {
  const v = app.views[axis];
  const idx = app.cursor[AXIS_INDEX[axis]];
  if (maskOnly && v.data && v.data.index === idx) {
    const d = await getSlice(app.caseId, axis, idx, true);
    if (app.cursor[AXIS_INDEX[axis]] !== idx) return;
    v.data.mask = d.mask;
  } else {
    const d = await getSlice(app.caseId, axis, idx, false);
    if (app.cursor[AXIS_INDEX[axis]] !== idx) return;
    d.index = idx;
    v.data = d;
  }
  if (app.display.showStart && (!v.start || v.start.index !== idx)) {
    const s = await getSlice(app.caseId, axis, idx, 'start');
    if (app.cursor[AXIS_INDEX[axis]] !== idx) return;
    v.start = { index: idx, mask: s.start };
  }
  v.compose();
  v.draw();
  // The readout under a still pointer follows the slice (wheel, arrow keys).
  if (v.hover && v.lastPointer) hover(v, v.lastPointer);
}

// Resolves true once every view shows the server's data, false (with the error
// in the status line) when a slice could not be fetched.
function refresh(maskOnly = false, which = ['z', 'y', 'x']) {
  return Promise.all(which.map((a) => loadSlice(a, maskOnly)))
    .then(() => true)
    .catch((e) => { setStatus(e.message, 'error'); return false; });
}

function redrawAll(recompose) {
  for (const v of Object.values(app.views)) {
    if (recompose) v.compose();
    v.draw();
  }
}

function activity() {
  const now = Date.now();
  if (app.caseId && app.editor && now - app.lastActivity > 3000) {
    app.lastActivity = now;
    send('POST', caseUrl(app.caseId, '/activity')).then((r) => ($('stat-time').textContent = fmtTime(r.active_seconds))).catch(() => {});
  }
}

async function openCase(id) {
  if (app.caseId) {
    await save(false);
    if (app.editor) await lease({ release: true }).catch(() => {});
  }
  setStatus(`opening ${id}…`);
  const meta = await getJSON(caseUrl(id));
  app.caseId = id;
  app.meta = meta;
  app.editor = null;
  if (app.surface.view) app.surface.view.reset();
  app.surface.revision = -1;
  app.cursor = meta.dims.map((n) => Math.floor(n / 2));
  app.editedSlices = { x: [], y: [], z: [] };
  app.keySlices = { x: [], y: [], z: [] };
  app.seeds = [];
  clearPreview();
  showSeeds();
  showKeys();
  const pb = $('tool-pbrush');
  pb.disabled = !meta.probability;
  pb.title = meta.probability
    ? "Probability brush (P): inside the brush the mask becomes the model's probability ≥ the threshold"
    : `Probability brush: off: ${meta.probability_note}`;
  $('pthresh').disabled = !meta.probability;
  if (!meta.probability && app.tool === 'pbrush') setTool('paint');
  for (const v of Object.values(app.views)) { v.data = null; v.start = null; v.zoom = 1; v.pan = [0, 0]; }
  showChanged(null);
  $('case-select').value = id;
  showSummary(meta);
  setRecord(meta.score, meta.tags, meta.comment);
  $('warnings').textContent = (meta.warnings || []).join('\n');
  // Which series the reader chose and what else the folder held, worded as `segment` prints it.
  $('dicom-note').textContent = [meta.input_summary, meta.dicom ? 'DICOM source: DICOM-SEG and RTSTRUCT are saved too.' : '']
    .filter(Boolean).join('\n');
  loadChanged();
  const shown = await refresh(false);
  await claimCase();
  if (shown && app.editor) setStatus(`${id}: ${meta.dims.join('×')} voxels, ${meta.spacing.map((s) => s.toFixed(2)).join(' × ')} mm`);
  history.replaceState(null, '', `?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), case: id })}`);
}

// Another tab or window changed the case (409): show the server's mask and
// say so; the action that was refused is not retried.
async function reloadAfterConflict(err) {
  clearPreview();
  const meta = await getJSON(caseUrl(app.caseId));
  app.meta = { ...app.meta, ...meta };
  showSummary(meta);
  await refresh(false);
  loadChanged();
  setStatus(`${err.message} (mask reloaded at revision ${app.maskRevision}; edits ${meta.edit_count})`, 'error');
}

// Runs a state-changing call in the queue; a 409 reloads the case's state.
function guarded(fn) {
  return queue(async () => {
    try {
      return await fn();
    } catch (e) {
      if (e.status === 409 && app.caseId) return reloadAfterConflict(e);
      if (e.status === 423 && app.caseId) {
        // Another tab took over between two heartbeats.
        setEditor(false, 'taken');
        await followServer(await getJSON(caseUrl(app.caseId)));
        setStatus(e.message, 'error');
        return undefined;
      }
      throw e;
    }
  });
}

async function edit(op) {
  if (!mayEdit()) return undefined;
  clearPreview();
  return guarded(async () => {
    // The revision is read when the request is sent, after earlier queued edits.
    const r = await send('POST', caseUrl(app.caseId, '/edit'), { ...op, mask_revision: app.maskRevision, client: CLIENT });
    showSummary(r);
    const name = op.op === 'brush' ? (op.value ? 'paint' : 'erase') : op.op;
    if (op.op === 'grow') { app.seeds = []; showSeeds(); redrawAll(false); }
    // The status is the user's (and the browser test's) sign that the edit is
    // on screen, so it changes only after the slices are refetched.
    if (r.changed) loadChanged();
    if (await refresh(true)) setStatus(`${name}: ${r.changed} voxels changed${r.reason ? `: ${r.reason}` : ''}`, r.changed ? 'ok' : '');
    return r;
  });
}

async function undoRedo(which) {
  if (!mayEdit()) return undefined;
  clearPreview();
  return guarded(async () => {
    const r = await send('POST', caseUrl(app.caseId, `/${which}`), { mask_revision: app.maskRevision, client: CLIENT });
    showSummary(r);
    const name = r.undone || r.redone;
    if (name) loadChanged();
    if (await refresh(true)) setStatus(name ? `${which}: ${name}` : `nothing to ${which}`);
  });
}

// --- fill: preview, then apply on confirm ------------------------------------

function fillLimits() {
  const ml = +$('fill-max-ml').value;
  const mm = +$('fill-max-mm').value;
  return { max_ml: ml > 0 ? ml : null, max_mm: mm > 0 ? mm : null };
}

// The server computes what the fill would change; the page shows it in its
// own colour and applies it only on Enter / Apply (Esc cancels).
function previewFill(op) {
  if (!mayEdit()) return undefined;
  clearPreview();
  return guarded(async () => {
    const p = await send('POST', caseUrl(app.caseId, '/preview'), op);
    if (p.noop) { setStatus(`fill: nothing to change: ${p.noop}`); return; }
    if (p.refused) { setStatus(p.refused, 'error'); return; }
    app.preview = { op, name: 'fill', mark: markRuns(op.value ? p.runs : [], op.value ? [] : p.runs) };
    showConfirm('fill');
    redrawAll(true);
    const sign = op.value ? '+' : '−';
    setStatus(`fill preview: ${sign}${p.voxels} voxels, ${sign}${p.volume_ml.toFixed(1)} ml, up to ${p.max_distance_mm.toFixed(0)} mm from the seed: Enter applies, Esc cancels`, 'preview');
  });
}

function showConfirm(name) {
  $('fill-apply').textContent = `Apply ${name}`;
  $('fill-confirm').hidden = false;
}

function markRuns(add, remove) {
  const [nx, ny, nz] = app.meta.dims;
  const mark = new Uint8Array(nx * ny * nz);
  for (const [o, n] of add) mark.fill(1, o, o + n);
  for (const [o, n] of remove) mark.fill(2, o, o + n);
  return mark;
}

// Any edit but fill, previewed the same way: what it would add (green) and
// remove (magenta); Enter / Apply applies it, Esc discards it.
function previewOp(op, name) {
  if (!mayEdit()) return undefined;
  clearPreview();
  return guarded(async () => {
    setStatus(`${name}: computing preview…`);
    const p = await send('POST', caseUrl(app.caseId, '/preview'), op);
    if (p.noop) { setStatus(`${name}: nothing to change: ${p.noop}`); return p; }
    app.preview = { op, name, mark: markRuns(p.runs_add, p.runs_remove) };
    showConfirm(name);
    redrawAll(true);
    setStatus(`${name} preview: +${p.added} voxels (+${p.added_ml.toFixed(1)} ml), −${p.removed} voxels (−${p.removed_ml.toFixed(1)} ml), ${Math.round(p.elapsed_ms)} ms: Enter applies, Esc cancels`, 'preview');
    return p;
  });
}

function applyPreview() {
  const p = app.preview;
  if (!p) return;
  clearPreview();
  edit(p.op);
}

function clearPreview() {
  if (!app.preview) return;
  app.preview = null;
  $('fill-confirm').hidden = true;
  redrawAll(true);
}

async function save(explicit = true) {
  if (!app.caseId) return;
  // A viewer has nothing of its own to save (the editor's tab saves).
  if (!app.editor) { if (explicit) mayEdit(); return; }
  await app.busy;
  try {
    const r = await send('POST', caseUrl(app.caseId, '/save'));
    const when = r.audit ? new Date(r.audit.saved_at).toLocaleTimeString() : '';
    if (explicit) setStatus(`saved ${when}: ${(r.audit?.outputs || []).join(', ')}`, 'ok');
    $('saved-at').textContent = when ? `saved ${when}` : '';
    markSaved(app.caseId, r.audit?.score);
  } catch (e) {
    setStatus(`save failed: ${e.message}`, 'error');
  }
}

function markSaved(id, score) {
  const opt = [...$('case-select').options].find((o) => o.value === id);
  if (opt) opt.textContent = `${id} ✓${score != null ? ` ${score}` : ''}`;
}

// --- clinical record --------------------------------------------------------

function setRecord(score, tags, comment) {
  document.querySelectorAll('input[name=score]').forEach((r) => (r.checked = score != null && +r.value === score));
  document.querySelectorAll('input[name=tag]').forEach((c) => (c.checked = (tags || []).includes(c.value)));
  // Tags recorded before they said missed or leaked: kept as they are (sent
  // back with every record change) and shown, so saving drops none.
  app.bareTags = (tags || []).filter((t) => !t.includes(': '));
  $('bare-tags').textContent = app.bareTags.length ? `earlier tags without missed/leaked: ${app.bareTags.join(', ')}` : '';
  $('comment').value = comment || '';
}

function putRecord() {
  const s = document.querySelector('input[name=score]:checked');
  const body = {
    score: s ? +s.value : null,
    tags: [...(app.bareTags || []), ...[...document.querySelectorAll('input[name=tag]:checked')].map((c) => c.value)],
    comment: $('comment').value,
    client: CLIENT,
  };
  if (!mayEdit()) return undefined;
  return guarded(async () => {
    await send('PUT', caseUrl(app.caseId, '/record'), body);
    setStatus(`record: score ${body.score ?? '–'}, ${body.tags.length} tags`);
  });
}

function buildRecordPanel() {
  const scores = $('scores');
  for (let s = 1; s <= 5; s += 0.5) {
    const id = `score-${s}`;
    scores.insertAdjacentHTML('beforeend', `<label class="score" for="${id}"><input type="radio" name="score" id="${id}" value="${s}"><span>${s}</span></label>`);
  }
  const crit = $('criteria');
  crit.innerHTML = '<tr><th>Score</th><th>Expert 1</th><th>Expert 2</th></tr>' +
    app.info.criteria.map((c) => `<tr><td>${c.scores}</td><td>${c.expert1 || '<span class="dim">(as above)</span>'}</td><td>${c.expert2}</td></tr>`).join('');
  // One row per region: did the CNN miss liver there, or leak into it?
  const tags = $('tags');
  const kinds = app.info.tag_kinds || ['missed', 'leaked'];
  tags.insertAdjacentHTML('beforeend', `<span class="dim">region</span>${kinds.map((k) => `<span class="dim">${k}</span>`).join('')}`);
  app.info.tags.forEach((t) => {
    const slug = t.replace(/[^A-Za-z0-9]+/g, '-');
    const row = document.createElement('span');
    row.textContent = t;
    tags.append(row);
    for (const k of kinds) {
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.name = 'tag';
      box.id = `tag-${slug}-${k}`;
      box.value = `${t}: ${k}`;
      box.title = `${t}: the CNN ${k === 'missed' ? 'missed liver here' : 'leaked into this'}`;
      box.setAttribute('aria-label', `${t} ${k}`);
      tags.append(box);
    }
  });
  scores.addEventListener('change', putRecord);
  tags.addEventListener('change', putRecord);
  $('comment').addEventListener('change', putRecord);
}

// --- tools ------------------------------------------------------------------

const STROKE_TOOLS = ['paint', 'erase', 'pbrush', 'seed-add', 'seed-remove'];

function setTool(t) {
  if (t !== 'navigate' && app.editor === false) { mayEdit(); return; }
  if (t === 'pbrush' && app.meta && !app.meta.probability) {
    setStatus(`probability brush: ${app.meta.probability_note}`, 'error');
    return;
  }
  app.tool = t;
  document.querySelectorAll('.tool').forEach((b) => b.classList.toggle('active', b.dataset.tool === t));
  for (const v of Object.values(app.views)) v.canvas.style.cursor = t === 'navigate' ? 'crosshair' : 'none';
  redrawAll(false);
}

function setRadius(r) {
  app.brush.radius = Math.max(0.5, Math.min(50, r));
  $('radius').value = app.brush.radius;
  $('radius-out').textContent = `${app.brush.radius.toFixed(1)} mm`;
  redrawAll(false);
}

function setWL(w, l) {
  app.wl = { width: Math.max(1, w), level: l };
  $('ww').value = Math.round(app.wl.width);
  $('wl').value = Math.round(app.wl.level);
  redrawAll(true);
}

function setThreshold(t) {
  app.brush.pthresh = Math.max(0.05, Math.min(0.95, Math.round(t * 20) / 20));
  $('pthresh').value = app.brush.pthresh;
  $('pthresh-out').textContent = app.brush.pthresh.toFixed(2);
}

function showSeeds() {
  const n1 = app.seeds.filter((s) => s.value).length;
  const n0 = app.seeds.length - n1;
  const slices = new Set(app.seeds.map((s) => `${s.axis}${s.slice}`)).size;
  $('seed-count').textContent = app.seeds.length ? `${n1} liver, ${n0} not-liver strokes on ${slices} slices` : 'no seeds';
  $('grow').disabled = !app.seeds.length;
}

function grow() {
  if (!app.seeds.length) { setStatus('grow: mark liver (G) and not-liver (H) strokes first', 'error'); return; }
  // Enter after clicking Grow must apply the preview, not click Grow again.
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  const reach = +$('grow-reach').value;
  return previewOp({ op: 'grow', seeds: app.seeds, reach_mm: reach > 0 ? reach : null }, 'grow');
}

const VIEW_NAME = { z: 'axial', y: 'coronal', x: 'sagittal' };

// The slices Fill between would use: the last two key slices marked in a
// view (the active one first), else the last two edited slices.
function fillBetweenSlices() {
  for (const axis of [app.active, 'z', 'y', 'x']) {
    const k = app.keySlices[axis];
    if (k.length >= 2) return { axis, from: k[k.length - 2], to: k[k.length - 1], source: 'key slices' };
  }
  const axis = app.lastEditAxis || app.active;
  const l = app.editedSlices[axis];
  if (l.length >= 2) return { axis, from: l[0], to: l[1], source: 'last two edited slices' };
  return null;
}

function showKeys() {
  const parts = ['z', 'y', 'x'].filter((a) => app.keySlices[a].length)
    .map((a) => `${VIEW_NAME[a]} ${app.keySlices[a].map((s) => s + 1).join(', ')}`);
  const fb = fillBetweenSlices();
  $('key-list').textContent = (parts.length ? `keys: ${parts.join('; ')}. ` : 'no key slices. ') +
    (fb ? `Fill between: ${VIEW_NAME[fb.axis]} ${fb.from + 1} and ${fb.to + 1} (${fb.source})` : 'Fill between: mark two key slices (K)');
  $('interpolate').disabled = !fb;
}

function markKeySlice() {
  const axis = app.active;
  const s = app.cursor[AXIS_INDEX[axis]];
  const l = app.keySlices[axis].filter((x) => x !== s);
  l.push(s);
  app.keySlices[axis] = l;
  showKeys();
  setStatus(`key slice: ${VIEW_NAME[axis]} ${s + 1}`);
}

function fillHoles(inSlice) {
  const axis = app.active;
  if (inSlice) return edit({ op: 'fill_holes', axis, slice: app.cursor[AXIS_INDEX[axis]] });
  return edit({ op: 'fill_holes' });
}

function huRange() {
  return [+$('hu-min').value, +$('hu-max').value];
}

function noteEdited(axis, slice) {
  const list = app.editedSlices[axis].filter((s) => s !== slice);
  list.push(slice);
  app.editedSlices[axis] = list.slice(-2);
  app.lastEditAxis = axis;
  showKeys();
}

function interpolate() {
  const fb = fillBetweenSlices();
  if (!fb) {
    setStatus('fill between: mark two key slices of one view (K) or edit two slices first', 'error');
    return;
  }
  edit({ op: 'interpolate', axis: fb.axis, from: fb.from, to: fb.to });
}

// --- edited slices: where the mask differs from the start, per view ----------

function loadChanged() {
  const id = app.caseId;
  getJSON(caseUrl(id, '/changed'))
    .then((c) => { if (app.caseId === id) showChanged(c); })
    .catch((e) => setStatus(`edited slices: ${e.message}`, 'error'));
}

const MAX_LISTED = 80;

function showChanged(c) {
  const el = $('edited-list');
  el.replaceChildren();
  app.changed = c;
  if (!c) return;
  const axes = ['z', 'y', 'x'].filter((a) => c[a].length);
  if (!axes.length) { el.textContent = 'none: the mask is the starting mask'; return; }
  for (const a of axes) {
    const row = document.createElement('div');
    row.className = 'edited-row';
    row.append(`${VIEW_NAME[a]}: `);
    for (const [s, n] of c[a].slice(0, MAX_LISTED)) {
      const b = document.createElement('button');
      b.className = 'slice-link';
      b.dataset.axis = a;
      b.dataset.slice = s;
      b.textContent = s + 1;
      b.title = `${VIEW_NAME[a]} slice ${s + 1}: ${n} voxels differ from the start`;
      b.addEventListener('click', () => goToSlice(a, s));
      row.append(b);
    }
    if (c[a].length > MAX_LISTED) row.append(` … ${c[a].length - MAX_LISTED} more`);
    el.append(row);
  }
}

function goToSlice(axis, s) {
  app.active = axis;
  app.cursor[AXIS_INDEX[axis]] = s;
  loadSlice(axis, false).catch((e) => setStatus(e.message, 'error'));
  redrawAll(false);
  setStatus(`${VIEW_NAME[axis]} slice ${s + 1}`);
}

function setHideMask(on) {
  app.display.hideMask = on;
  $('hide-mask').checked = on;
  redrawAll(true);
}

function setShowStart(on) {
  app.display.showStart = on;
  $('show-start').checked = on;
  // The starting mask's slices are fetched only while the outline is on.
  if (on && app.caseId) refresh(false); else redrawAll(true);
}

function setOpacity(a) {
  app.display.opacity = Math.max(0, Math.min(1, a));
  $('opacity').value = app.display.opacity;
  $('opacity-out').textContent = app.display.opacity.toFixed(2);
  redrawAll(true);
}

/** LPS world position (mm) of a voxel index: origin + direction · diag(spacing) · ijk. */
function voxelToWorld(ijk) {
  const m = app.meta;
  return [0, 1, 2].map((r) => m.origin[r] + [0, 1, 2].reduce((acc, c) => acc + m.direction[r * 3 + c] * m.spacing[c] * ijk[c], 0));
}

function hover(view, e) {
  const [pu, pv] = view.eventPlane(e);
  view.hover = [pu, pv];
  const ijk = view.planeToVoxel(pu, pv);
  if (view.inside(ijk) && view.data) {
    const [u, v] = view.plane;
    const n = ijk[v] * view.data.w + ijk[u];
    const mm = voxelToWorld(ijk).map((x) => x.toFixed(1)).join(', ');
    const st = view.start && view.start.index === view.slice && app.display.showStart ? (view.start.mask[n] ? ' · start: liver' : ' · start: not liver') : '';
    $('readout').textContent = `(${ijk.join(', ')})  LPS (${mm}) mm  ${view.data.hu[n]} HU  ${view.data.mask[n] ? 'liver' : ''}${st}`;
  } else {
    $('readout').textContent = '';
  }
}

function setCursorFrom(view, e) {
  const [pu, pv] = view.eventPlane(e);
  const ijk = view.planeToVoxel(pu, pv);
  if (!view.inside(ijk)) return;
  app.cursor = ijk;
  const others = ['z', 'y', 'x'].filter((a) => a !== view.axis);
  view.draw();
  refresh(false, others);
}

function attach(view) {
  const cv = view.canvas;
  let drag = null;
  cv.addEventListener('contextmenu', (e) => e.preventDefault());
  cv.addEventListener('pointerdown', (e) => {
    app.active = view.axis;
    // Leave a number box, so the keys act on the views again.
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
    cv.setPointerCapture(e.pointerId);
    activity();
    const pan = e.button === 1 || e.button === 2 || (e.button === 0 && e.shiftKey);
    if (pan) {
      drag = { kind: 'pan', x: e.clientX, y: e.clientY, pan: [...view.pan] };
    } else if (e.button === 0 && e.altKey) {
      drag = { kind: 'wl', x: e.clientX, y: e.clientY, wl: { ...app.wl } };
    } else if (e.button === 0 && STROKE_TOOLS.includes(app.tool)) {
      view.stroke = { points: [view.eventPlane(e)] };
      drag = { kind: 'stroke' };
      view.draw();
    } else if (e.button === 0 && app.tool === 'fill') {
      const ijk = view.planeToVoxel(...view.eventPlane(e));
      if (!view.inside(ijk)) return;
      const [lo, hi] = huRange();
      noteEdited(view.axis, view.slice);
      previewFill({ op: 'fill', seed: ijk, hu_min: lo, hu_max: hi, value: e.ctrlKey ? 0 : 1, axis: app.brush.sphere ? null : view.axis, ...fillLimits() });
    } else if (e.button === 0) {
      drag = { kind: 'cursor' };
      setCursorFrom(view, e);
    }
  });
  cv.addEventListener('pointermove', (e) => {
    view.lastPointer = { clientX: e.clientX, clientY: e.clientY };
    hover(view, e);
    activity();
    if (!drag) { view.draw(); return; }
    if (drag.kind === 'pan') {
      view.pan = [drag.pan[0] + e.clientX - drag.x, drag.pan[1] + e.clientY - drag.y];
      view.draw();
    } else if (drag.kind === 'wl') {
      setWL(drag.wl.width + (e.clientX - drag.x) * 2, drag.wl.level - (e.clientY - drag.y) * 2);
    } else if (drag.kind === 'stroke') {
      view.stroke.points.push(view.eventPlane(e));
      view.draw();
    } else if (drag.kind === 'cursor') {
      setCursorFrom(view, e);
    }
  });
  const end = () => {
    if (drag && drag.kind === 'stroke' && view.stroke) {
      const pts = view.stroke.points.map(([u, v]) => [Math.round(u * 100) / 100, Math.round(v * 100) / 100]);
      view.stroke = null;
      const [lo, hi] = huRange();
      const b = app.brush;
      if (app.tool === 'seed-add' || app.tool === 'seed-remove') {
        // A seed only marks: the mask changes when the grow is applied.
        app.seeds.push({ axis: view.axis, slice: view.slice, points: pts, radius_mm: b.radius, value: app.tool === 'seed-add' ? 1 : 0 });
        showSeeds();
        view.draw();
        setStatus(`seed: ${app.seeds.length} strokes marked (Enter or Grow previews the grow)`);
        drag = null;
        return;
      }
      noteEdited(view.axis, view.slice);
      if (app.tool === 'pbrush') {
        edit({ op: 'prob_brush', axis: view.axis, slice: view.slice, points: pts, radius_mm: b.radius, sphere: b.sphere, threshold: b.pthresh });
        drag = null;
        return;
      }
      edit({
        op: 'brush', axis: view.axis, slice: view.slice,
        points: pts,
        radius_mm: b.radius, value: app.tool === 'paint' ? 1 : 0, sphere: b.sphere,
        hu_min: b.limit ? lo : null, hu_max: b.limit ? hi : null,
      });
    }
    drag = null;
  };
  cv.addEventListener('pointerup', end);
  cv.addEventListener('pointercancel', end);
  cv.addEventListener('pointerleave', () => { view.hover = null; view.draw(); });
  cv.addEventListener('wheel', (e) => {
    e.preventDefault();
    activity();
    if (e.ctrlKey || e.metaKey) {
      // Zoom about the pointer.
      const r = cv.getBoundingClientRect();
      const f = e.deltaY < 0 ? 1.15 : 1 / 1.15;
      const px = e.clientX - r.left - r.width / 2;
      const py = e.clientY - r.top - r.height / 2;
      view.pan = [px - (px - view.pan[0]) * f, py - (py - view.pan[1]) * f];
      view.zoom = Math.max(0.5, Math.min(40, view.zoom * f));
      view.draw();
    } else {
      step(view.axis, e.deltaY > 0 ? 1 : -1);
    }
  }, { passive: false });
}

function step(axis, d) {
  const a = AXIS_INDEX[axis];
  const n = Math.max(0, Math.min(app.meta.dims[a] - 1, app.cursor[a] + d));
  if (n === app.cursor[a]) return;
  app.cursor[a] = n;
  loadSlice(axis, false).catch((e) => setStatus(e.message, 'error'));
  redrawAll(false);
}

function keys(e) {
  const typing = e.target.tagName === 'INPUT' && e.target.type !== 'radio' && e.target.type !== 'checkbox';
  if (typing && (e.key === 'Enter' || e.key === 'Escape')) {
    // Enter or Esc in a number box hands the keys back to the views
    // (blurring commits the value: its change event fires).
    e.preventDefault();
    e.target.blur();
    return;
  }
  if (typing || e.target.tagName === 'TEXTAREA' || e.target.tagName === 'SELECT') return;
  activity();
  const k = e.key;
  if (app.preview && k === 'Enter') { e.preventDefault(); applyPreview(); return; }
  if (app.preview && k === 'Escape') { e.preventDefault(); const n = app.preview.name; clearPreview(); setStatus(`${n} preview cancelled`); return; }
  if (!app.preview && k === 'Enter' && app.seeds.length) { e.preventDefault(); grow(); return; }
  const ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && k.toLowerCase() === 'z') { e.preventDefault(); undoRedo(e.shiftKey ? 'redo' : 'undo'); return; }
  if (ctrl && k.toLowerCase() === 'y') { e.preventDefault(); undoRedo('redo'); return; }
  if (ctrl && k.toLowerCase() === 's') { e.preventDefault(); save(); return; }
  if (ctrl) return;
  const map = {
    n: () => setTool('navigate'), b: () => setTool('paint'), e: () => setTool('erase'), f: () => setTool('fill'),
    p: () => setTool('pbrush'), g: () => setTool('seed-add'), h: () => setTool('seed-remove'),
    k: markKeySlice, l: () => fillHoles(true),
    '[': () => setRadius(app.brush.radius - 1), ']': () => setRadius(app.brush.radius + 1),
    '3': () => { $('sphere').checked = !$('sphere').checked; app.brush.sphere = $('sphere').checked; },
    t: () => { $('limit').checked = !$('limit').checked; app.brush.limit = $('limit').checked; },
    i: interpolate,
    m: () => setHideMask(!app.display.hideMask),
    v: () => setSurface(!app.surface.on),
    o: () => setShowStart(!app.display.showStart),
    c: () => { app.display.fill = !app.display.fill; $('fill-mode').checked = app.display.fill; redrawAll(true); },
    1: () => setWL(PRESETS.abdomen.width, PRESETS.abdomen.level), 2: () => setWL(PRESETS.liver.width, PRESETS.liver.level),
    ArrowUp: () => step(app.active, 1), ArrowDown: () => step(app.active, -1),
    PageUp: () => step(app.active, 5), PageDown: () => step(app.active, -5),
    r: () => { for (const v of Object.values(app.views)) { v.zoom = 1; v.pan = [0, 0]; v.draw(); } },
    '?': () => $('help').toggleAttribute('open'),
  };
  if (map[k]) { e.preventDefault(); map[k](); }
}

async function main() {
  await uniqueClient();
  app.info = await getJSON('/api/info');
  $('reviewer').textContent = app.info.reviewer;
  const sel = $('case-select');
  app.info.cases.forEach((c) => {
    sel.insertAdjacentHTML('beforeend', `<option value="${c.id}">${c.id}${c.saved ? ` ✓${c.score != null ? ` ${c.score}` : ''}` : ''}</option>`);
  });
  sel.addEventListener('change', () => openCase(sel.value).catch((e) => setStatus(e.message, 'error')));
  buildRecordPanel();
  for (const a of ['z', 'y', 'x']) {
    app.views[a] = new SliceView($(`view-${a}`), a, app);
    attach(app.views[a]);
  }
  document.querySelectorAll('.tool').forEach((b) => b.addEventListener('click', () => setTool(b.dataset.tool)));
  $('radius').addEventListener('input', (e) => setRadius(+e.target.value));
  $('sphere').addEventListener('change', (e) => (app.brush.sphere = e.target.checked));
  $('limit').addEventListener('change', (e) => (app.brush.limit = e.target.checked));
  $('undo').addEventListener('click', () => undoRedo('undo'));
  $('redo').addEventListener('click', () => undoRedo('redo'));
  $('save').addEventListener('click', () => save());
  $('interpolate').addEventListener('click', interpolate);
  $('fill-apply').addEventListener('click', applyPreview);
  $('fill-cancel').addEventListener('click', () => { const n = app.preview?.name || 'fill'; clearPreview(); setStatus(`${n} preview cancelled`); });
  $('pthresh').addEventListener('input', (e) => setThreshold(+e.target.value));
  $('grow').addEventListener('click', grow);
  $('seeds-clear').addEventListener('click', () => { app.seeds = []; showSeeds(); redrawAll(false); setStatus('seeds cleared'); });
  $('key-slice').addEventListener('click', markKeySlice);
  $('keys-clear').addEventListener('click', () => { app.keySlices = { x: [], y: [], z: [] }; showKeys(); setStatus('key slices cleared'); });
  $('holes-slice').addEventListener('click', () => fillHoles(true));
  $('holes-3d').addEventListener('click', () => fillHoles(false));
  $('smooth').addEventListener('click', () => edit({ op: 'smooth', radius_mm: +$('smooth-r').value }));
  $('islands').addEventListener('click', () => edit({ op: 'remove_islands' }));
  $('preset-abdomen').addEventListener('click', () => setWL(PRESETS.abdomen.width, PRESETS.abdomen.level));
  $('preset-liver').addEventListener('click', () => setWL(PRESETS.liver.width, PRESETS.liver.level));
  $('ww').addEventListener('change', () => setWL(+$('ww').value, +$('wl').value));
  $('wl').addEventListener('change', () => setWL(+$('ww').value, +$('wl').value));
  $('fill-mode').addEventListener('change', (e) => { app.display.fill = e.target.checked; redrawAll(true); });
  $('opacity').addEventListener('input', (e) => setOpacity(+e.target.value));
  $('hide-mask').addEventListener('change', (e) => setHideMask(e.target.checked));
  $('show-start').addEventListener('change', (e) => setShowStart(e.target.checked));
  $('prev-case').addEventListener('click', () => moveCase(-1));
  $('next-case').addEventListener('click', () => moveCase(1));
  window.addEventListener('keydown', keys);
  window.addEventListener('resize', relayout);
  // Autosave runs on the server; this makes a closed tab flush at once.
  window.addEventListener('pagehide', () => {
    if (!app.caseId || !app.editor) return;
    send('POST', caseUrl(app.caseId, '/save'), undefined, { keepalive: true }).catch(() => {});
    // Free the case at once for another tab (else after the lease runs out).
    send('POST', caseUrl(app.caseId, '/lease'), { client: CLIENT, release: true }, { keepalive: true }).catch(() => {});
  });
  $('lease-take').addEventListener('click', () => takeOver().catch((e) => setStatus(e.message, 'error')));
  $('lease-dialog-take').addEventListener('click', () => takeOver().catch((e) => setStatus(e.message, 'error')));
  $('lease-dialog-view').addEventListener('click', () => $('lease-dialog').close());
  $('show-3d').addEventListener('click', () => setSurface(!app.surface.on));
  setInterval(heartbeat, HEARTBEAT_MS);
  setTool('paint');
  setRadius(5);
  setThreshold(0.5);
  setWL(PRESETS.abdomen.width, PRESETS.abdomen.level);
  const wanted = new URLSearchParams(location.search).get('case');
  const first = app.info.cases.find((c) => c.id === wanted) || app.info.cases[0];
  if (first) await openCase(first.id);
  document.body.dataset.ready = '1';
}

// --- one editor per case ------------------------------------------------------
// The server holds one editor lease per case. This tab asks for it when it
// opens a case and renews it with a heartbeat; while another tab holds it,
// this one is a read-only viewer that follows the editor's mask, and can
// take over (which makes the other tab the viewer).

const HEARTBEAT_MS = 5000;

function lease(body) {
  return send('POST', caseUrl(app.caseId, '/lease'), { client: CLIENT, ...body });
}

async function claimCase() {
  const r = await lease({});
  if (r.editor) { setEditor(true); return; }
  setEditor(false, 'held');
  await followServer(r);
  const o = r.other_editor;
  $('lease-dialog-detail').textContent = o ? `It has been edited there for ${fmtTime(o.since_seconds)} (last heard from ${o.seen_seconds} s ago).` : '';
  setStatus('read-only: this case is being edited in another tab or window', 'error');
  const d = $('lease-dialog');
  if (!d.open) d.showModal();
}

function mayEdit() {
  if (app.editor !== false) return true;
  setStatus('read-only: this case is being edited in another tab or window (Take over to edit here)', 'error');
  return false;
}

const LEASE_MSG = {
  held: 'Read-only: this case is being edited in another tab or window.',
  taken: 'Another tab or window took over editing this case: this tab is read-only now.',
  free: 'Read-only: the other tab stopped editing this case.',
};

function setEditor(on, why = 'held') {
  app.editor = on;
  app.leaseState = on ? 'editor' : why;
  document.body.classList.toggle('read-only', !on);
  $('comment').readOnly = !on;
  document.querySelectorAll('#record input').forEach((i) => (i.disabled = !on));
  const banner = $('lease-banner');
  if (on) { banner.hidden = true; return; }
  clearPreview();
  app.seeds = [];
  showSeeds();
  if (app.tool !== 'navigate') setTool('navigate');
  $('lease-msg').textContent = LEASE_MSG[why] || LEASE_MSG.held;
  $('lease-take').textContent = why === 'free' ? 'Edit here' : 'Take over';
  banner.hidden = false;
}

async function takeOver() {
  const d = $('lease-dialog');
  if (d.open) d.close();
  const r = await lease({ take_over: true });
  if (!r.editor) return;
  setEditor(true);
  await followServer(r);
  setStatus('editing here: any other tab on this case is read-only now', 'ok');
}

// Show the server's mask when it changed: a viewer follows the editor's work.
async function followServer(r) {
  // A case closed on the server to free memory answers without its state;
  // fetching slices now would open it again.
  if (!r.stats) return;
  const changed = r.mask_revision !== app.maskRevision;
  showSummary(r);
  if (changed) {
    await refresh(false);
    loadChanged();
  }
}

async function heartbeat() {
  if (!app.caseId || app.editor === null) return;
  const id = app.caseId;
  let r;
  try {
    r = await lease(app.editor ? { heartbeat: true } : { watch: true });
  } catch (_) {
    return; // the server is gone or restarting: the next beat tries again
  }
  if (id !== app.caseId) return;
  if (app.editor && !r.editor) setEditor(false, 'taken');
  else if (!app.editor && !r.other_editor && app.leaseState !== 'free') setEditor(false, 'free');
  if (!app.editor) await followServer(r);
}

// --- 3-D surface view ------------------------------------------------------------

function relayout() {
  for (const v of Object.values(app.views)) { v.resize(); v.draw(); }
  if (app.surface.on && app.surface.view) { app.surface.view.resize(); app.surface.view.draw(); }
}

function setSurface(on) {
  const s = app.surface;
  s.on = on;
  $('show-3d').classList.toggle('active', on);
  $('views').classList.toggle('with-3d', on);
  $('view-3d-wrap').hidden = !on;
  if (on && !s.view) {
    s.view = new SurfaceView($('view-3d'));
    if (s.view.error) $('surface-info').textContent = s.view.error;
  }
  relayout();
  if (on) refreshSurface();
}

// Fetch the mesh when the view is on and the mask changed since the last one.
async function refreshSurface() {
  const s = app.surface;
  if (!s.on || !s.view || s.view.error || !app.caseId) return;
  if (s.caseId === app.caseId && s.revision === app.maskRevision) return;
  if (s.loading) { s.again = true; return; }
  s.loading = true;
  const id = app.caseId;
  try {
    $('surface-info').textContent = 'meshing…';
    const m = await getMesh(id);
    if (id === app.caseId) {
      s.view.setMesh(m.positions, m.indices, s.caseId === id);
      s.caseId = id;
      s.revision = m.revision;
      $('surface-info').textContent = `${m.triangles.toLocaleString('en')} triangles · cells of ${m.cell.replaceAll(',', '×')} voxels · ${(m.areaMm2 / 100).toFixed(0)} cm² · revision ${m.revision}`;
      document.body.dataset.meshRevision = String(m.revision);
    }
  } catch (e) {
    $('surface-info').textContent = `3-D view: ${e.message}`;
  } finally {
    s.loading = false;
    if (s.again) { s.again = false; refreshSurface(); }
  }
}

function moveCase(d) {
  const ids = app.info.cases.map((c) => c.id);
  const n = ids.indexOf(app.caseId) + d;
  if (n >= 0 && n < ids.length) openCase(ids[n]).catch((e) => setStatus(e.message, 'error'));
}

main().catch((e) => setStatus(e.message, 'error'));
