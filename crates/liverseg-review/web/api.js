// Thin client for the review server's API. The access token (servers bound
// beyond loopback) comes from the page URL and travels as a header. The page
// token is the server's per-start secret, written into this page only: the
// server accepts no change without it, so other sites cannot forge edits.
const token = new URLSearchParams(location.search).get('token');
const pageToken = document.querySelector('meta[name="liverseg-token"]')?.content || '';

function headers(extra = {}) {
  const h = { ...extra };
  if (token) h['x-review-token'] = token;
  return h;
}

async function check(r) {
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    const e = new Error(msg);
    e.status = r.status; // 409: the case changed in another tab (the page reloads it)
    throw e;
  }
  return r;
}

export async function getJSON(path) {
  return (await check(await fetch(path, { headers: headers() }))).json();
}

export async function send(method, path, body, opts = {}) {
  const r = await fetch(path, {
    method,
    headers: headers({ 'content-type': 'application/json', 'x-liverseg-token': pageToken }),
    body: JSON.stringify(body === undefined ? {} : body),
    ...opts,
  });
  return (await check(r)).json();
}

/** One slice: {w, h, hu: Int16Array|null, mask: Uint8Array, revision}. */
export async function getSlice(caseId, axis, index, maskOnly) {
  // maskOnly: true for the mask only, 'start' for the starting mask only.
  const q = maskOnly === 'start' ? '?part=start' : maskOnly ? '?part=mask' : '';
  const r = await check(await fetch(`/api/cases/${encodeURIComponent(caseId)}/slice/${axis}/${index}${q}`, { headers: headers() }));
  const w = +r.headers.get('x-width');
  const h = +r.headers.get('x-height');
  const revision = +r.headers.get('x-revision');
  const buf = await r.arrayBuffer();
  if (maskOnly === 'start') return { w, h, start: new Uint8Array(buf, 0, w * h) };
  if (maskOnly) return { w, h, hu: null, mask: new Uint8Array(buf, 0, w * h), revision };
  return { w, h, hu: new Int16Array(buf, 0, w * h), mask: new Uint8Array(buf, 2 * w * h, w * h), revision };
}

export const caseUrl = (id, rest = '') => `/api/cases/${encodeURIComponent(id)}${rest}`;

/** The mask's surface mesh: {revision, positions: Float32Array (mm LPS), indices: Uint32Array, ...}. */
export async function getMesh(caseId) {
  const r = await check(await fetch(`/api/cases/${encodeURIComponent(caseId)}/mesh`, { headers: headers() }));
  const buf = await r.arrayBuffer();
  const head = new DataView(buf);
  const nv = head.getUint32(0, true);
  const nt = head.getUint32(4, true);
  if (buf.byteLength !== 8 + 12 * nv + 12 * nt) throw new Error(`mesh: ${buf.byteLength} bytes for ${nv} vertices and ${nt} triangles`);
  // Little-endian on every platform browsers run on; the typed arrays view the buffer in place.
  return {
    revision: +r.headers.get('x-mask-revision'),
    positions: new Float32Array(buf, 8, 3 * nv),
    indices: new Uint32Array(buf, 8 + 12 * nv, 3 * nt),
    triangles: nt,
    cell: r.headers.get('x-mesh-cell-voxels'),
    areaMm2: +r.headers.get('x-mesh-area-mm2'),
    elapsedMs: +r.headers.get('x-elapsed-ms'),
  };
}
