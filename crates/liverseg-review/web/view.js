// One slice view (axial, coronal or sagittal) on a canvas: grey values with a
// window/level, the mask as contour or fill, a crosshair, zoom and pan.
// Voxel plane axes: z -> (i, j), y -> (i, k), x -> (j, k). Display follows the
// radiological convention: patient left on screen right, anterior up (axial),
// superior up (coronal, sagittal), using the grid's direction signs.

const PLANE = { z: [0, 1], y: [0, 2], x: [1, 2] };
const AXIS_INDEX = { x: 0, y: 1, z: 2 };

export class SliceView {
  constructor(canvas, axis, app) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.axis = axis;
    this.app = app;
    this.data = null; // {w, h, hu, mask}
    this.start = null; // {index, mask}: the starting mask of the shown slice
    this.zoom = 1;
    this.pan = [0, 0];
    this.off = document.createElement('canvas');
    this.offCtx = this.off.getContext('2d');
    this.hover = null;
    this.stroke = null;
    this.resize();
  }

  get plane() { return PLANE[this.axis]; }
  get slice() { return this.app.cursor[AXIS_INDEX[this.axis]]; }

  /** Screen direction of the two plane axes: +1 or -1. */
  flips() {
    const d = this.app.meta.direction; // row-major: d[r*3+c], column c = voxel axis c
    const [u, v] = this.plane;
    const fu = d[u * 3 + u] < 0 ? -1 : 1;
    // Axial: +y (posterior) down. Coronal/sagittal: +z (superior) up.
    const fv = this.axis === 'z' ? (d[v * 3 + v] < 0 ? -1 : 1) : (d[v * 3 + v] > 0 ? -1 : 1);
    return [fu, fv];
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(r.width * dpr));
    this.canvas.height = Math.max(1, Math.round(r.height * dpr));
    this.dpr = dpr;
  }

  /** Screen pixels per voxel along u and v at zoom 1 (fits the view). */
  baseScale() {
    const m = this.app.meta;
    const [u, v] = this.plane;
    const wmm = m.dims[u] * m.spacing[u];
    const hmm = m.dims[v] * m.spacing[v];
    const s = Math.min(this.canvas.width / wmm, this.canvas.height / hmm);
    return [s * m.spacing[u], s * m.spacing[v]];
  }

  /** Voxel plane coordinates (fractional; voxel centres at integers) -> canvas pixels. */
  toCanvas(pu, pv) {
    const m = this.app.meta;
    const [u, v] = this.plane;
    const [su, sv] = this.baseScale().map((s) => s * this.zoom);
    const [fu, fv] = this.flips();
    const cx = this.canvas.width / 2 + this.pan[0] * this.dpr;
    const cy = this.canvas.height / 2 + this.pan[1] * this.dpr;
    const x = cx + fu * (pu + 0.5 - m.dims[u] / 2) * su;
    const y = cy + fv * (pv + 0.5 - m.dims[v] / 2) * sv;
    return [x, y];
  }

  toPlane(x, y) {
    const m = this.app.meta;
    const [u, v] = this.plane;
    const [su, sv] = this.baseScale().map((s) => s * this.zoom);
    const [fu, fv] = this.flips();
    const cx = this.canvas.width / 2 + this.pan[0] * this.dpr;
    const cy = this.canvas.height / 2 + this.pan[1] * this.dpr;
    return [(x - cx) / (fu * su) + m.dims[u] / 2 - 0.5, (y - cy) / (fv * sv) + m.dims[v] / 2 - 0.5];
  }

  /** Client (CSS) coordinates of a voxel's centre; used by the browser tests too. */
  voxelToClient(ijk) {
    const [u, v] = this.plane;
    const [x, y] = this.toCanvas(ijk[u], ijk[v]);
    const r = this.canvas.getBoundingClientRect();
    return [r.left + x / this.dpr, r.top + y / this.dpr];
  }

  eventPlane(e) {
    const r = this.canvas.getBoundingClientRect();
    return this.toPlane((e.clientX - r.left) * this.dpr, (e.clientY - r.top) * this.dpr);
  }

  planeToVoxel(pu, pv) {
    const [u, v] = this.plane;
    const ijk = [...this.app.cursor];
    ijk[u] = Math.round(pu);
    ijk[v] = Math.round(pv);
    return ijk;
  }

  inside(ijk) {
    return ijk.every((x, a) => x >= 0 && x < this.app.meta.dims[a]);
  }

  /** Grey values and mask into the offscreen canvas at voxel resolution. */
  compose() {
    const d = this.data;
    if (!d) return;
    if (this.off.width !== d.w || this.off.height !== d.h) {
      this.off.width = d.w;
      this.off.height = d.h;
    }
    const img = this.offCtx.createImageData(d.w, d.h);
    const px = img.data;
    const { width, level } = this.app.wl;
    const lo = level - width / 2;
    const k = 255 / width;
    const fill = this.app.display.fill;
    const hide = this.app.display.hideMask;
    // The starting mask's outline, dotted (every other voxel) so the current
    // mask's border stays visible where the two coincide.
    const start = this.app.display.showStart && this.start && this.start.index === this.slice ? this.start.mask : null;
    const SC = [170, 110, 255];
    const alpha = this.app.display.opacity;
    const mc = [255, 170, 40];
    const { w, h, hu, mask } = d;
    // A preview: the voxels it would add (green) or remove (magenta), found
    // by their volume offsets (x fastest).
    const pv = this.app.preview;
    const dims = this.app.meta.dims;
    const stride = [1, dims[0], dims[0] * dims[1]];
    const [pu, pvv] = this.plane;
    const base = this.slice * stride[AXIS_INDEX[this.axis]];
    const ADD = [60, 230, 120];
    const REMOVE = [230, 60, 230];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const n = y * w + x;
        let g = (hu[n] - lo) * k;
        g = g < 0 ? 0 : g > 255 ? 255 : g;
        let r = g, gg = g, b = g;
        const vo = base + x * stride[pu] + y * stride[pvv];
        const t = pv ? pv.mark[vo] : 0;
        const pc = t === 1 ? ADD : t === 2 ? REMOVE : null;
        if (pc) {
          const o = 4 * n;
          px[o] = g + (pc[0] - g) * 0.7; px[o + 1] = g + (pc[1] - g) * 0.7; px[o + 2] = g + (pc[2] - g) * 0.7; px[o + 3] = 255;
          continue;
        }
        if (start && start[n] && (x + y) % 2 === 0 &&
            (x === 0 || y === 0 || x === w - 1 || y === h - 1 || !start[n - 1] || !start[n + 1] || !start[n - w] || !start[n + w])) {
          const o = 4 * n;
          px[o] = SC[0]; px[o + 1] = SC[1]; px[o + 2] = SC[2]; px[o + 3] = 255;
          continue;
        }
        if (mask[n] && !hide) {
          const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !mask[n - 1] || !mask[n + 1] || !mask[n - w] || !mask[n + w];
          if (edge) {
            r = mc[0]; gg = mc[1]; b = mc[2];
          } else if (fill) {
            r = g + (mc[0] - g) * alpha; gg = g + (mc[1] - g) * alpha; b = g + (mc[2] - g) * alpha;
          }
        }
        const o = 4 * n;
        px[o] = r; px[o + 1] = gg; px[o + 2] = b; px[o + 3] = 255;
      }
    }
    this.offCtx.putImageData(img, 0, 0);
  }

  draw() {
    const c = this.ctx;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = '#000';
    c.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.data) return;
    const m = this.app.meta;
    const [u, v] = this.plane;
    const [x0, y0] = this.toCanvas(-0.5, -0.5);
    const [x1, y1] = this.toCanvas(m.dims[u] - 0.5, m.dims[v] - 0.5);
    c.imageSmoothingEnabled = false;
    // drawImage with negative extents mirrors the image, which applies the flips.
    c.save();
    c.translate(x0, y0);
    c.scale(Math.sign(x1 - x0) || 1, Math.sign(y1 - y0) || 1);
    c.drawImage(this.off, 0, 0, Math.abs(x1 - x0), Math.abs(y1 - y0));
    c.restore();
    // Crosshair at the cursor of the other two views.
    const cur = this.app.cursor;
    const [cx, cy] = this.toCanvas(cur[u], cur[v]);
    c.strokeStyle = 'rgba(80, 200, 255, 0.55)';
    c.lineWidth = 1;
    c.beginPath();
    c.moveTo(cx, 0); c.lineTo(cx, this.canvas.height);
    c.moveTo(0, cy); c.lineTo(this.canvas.width, cy);
    c.stroke();
    // Brush outline.
    const tool = this.app.tool;
    // Seed strokes of this slice: liver green, not-liver magenta.
    const [su0] = this.baseScale().map((s) => s * this.zoom);
    for (const st of this.app.seeds || []) {
      if (st.axis !== this.axis || st.slice !== this.slice) continue;
      c.strokeStyle = st.value ? 'rgba(60,230,120,0.75)' : 'rgba(230,60,230,0.75)';
      c.lineWidth = Math.max(2, 2 * (st.radius_mm / m.spacing[u]) * su0);
      c.lineCap = 'round';
      c.lineJoin = 'round';
      c.beginPath();
      st.points.forEach(([a, b], n) => {
        const [x, y] = this.toCanvas(a, b);
        if (n) c.lineTo(x, y); else c.moveTo(x, y);
      });
      if (st.points.length === 1) c.lineTo(...this.toCanvas(...st.points[0]));
      c.stroke();
    }
    const outline = { paint: 'rgba(255,200,60,0.9)', erase: 'rgba(120,180,255,0.9)', pbrush: 'rgba(255,255,255,0.9)', 'seed-add': 'rgba(60,230,120,0.9)', 'seed-remove': 'rgba(230,60,230,0.9)' };
    if (this.hover && outline[tool]) {
      const [hx, hy] = this.toCanvas(this.hover[0], this.hover[1]);
      const [su, sv] = this.baseScale().map((s) => s * this.zoom);
      const r = this.app.brush.radius;
      c.strokeStyle = outline[tool];
      c.lineWidth = 1.5 * this.dpr;
      c.beginPath();
      c.ellipse(hx, hy, (r / m.spacing[u]) * su, (r / m.spacing[v]) * sv, 0, 0, 2 * Math.PI);
      c.stroke();
    }
    // The stroke being drawn (sent on release).
    if (this.stroke && this.stroke.points.length) {
      const [su] = this.baseScale().map((s) => s * this.zoom);
      c.strokeStyle = outline[tool].replace(/0\.9\)$/, '0.6)');
      c.lineWidth = Math.max(1, 2 * (this.app.brush.radius / m.spacing[u]) * su);
      c.lineCap = 'round';
      c.lineJoin = 'round';
      c.beginPath();
      this.stroke.points.forEach(([pu, pv], n) => {
        const [x, y] = this.toCanvas(pu, pv);
        if (n) c.lineTo(x, y); else c.moveTo(x, y);
      });
      if (this.stroke.points.length === 1) c.lineTo(...this.toCanvas(...this.stroke.points[0]));
      c.stroke();
    }
    // Orientation letters.
    c.fillStyle = 'rgba(255,255,255,0.7)';
    c.font = `${12 * this.dpr}px sans-serif`;
    const names = { z: 'Axial', y: 'Coronal', x: 'Sagittal' };
    c.fillText(`${names[this.axis]} ${this.slice + 1}/${m.dims[AXIS_INDEX[this.axis]]}`, 6 * this.dpr, 16 * this.dpr);
    const [fu, fv] = this.flips();
    const lr = { 0: ['R', 'L'], 1: ['A', 'P'], 2: ['I', 'S'] };
    const left = lr[u][fu > 0 ? 0 : 1];
    const top = lr[v][fv > 0 ? 0 : 1];
    c.fillText(left, 6 * this.dpr, this.canvas.height / 2);
    c.fillText(top, this.canvas.width / 2, 30 * this.dpr);
  }
}

export { AXIS_INDEX, PLANE };
