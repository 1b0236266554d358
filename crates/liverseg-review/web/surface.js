// 3-D surface view of the mask: the server's mesh (patient LPS mm) drawn
// with plain WebGL 2, shaded by a light at the eye. Drag rotates, the wheel
// zooms, double-click resets to the front view. No library: the page must
// work offline and without a build step.
//
// Front view: the viewer stands at the patient's anterior side, head up,
// patient left on screen right (the radiological convention of the slice
// views): screen x = L, screen y = S, toward the viewer = -P (anterior).

const VS = `#version 300 es
in vec3 pos;
in vec3 nrm;
uniform mat4 mv;
uniform mat4 proj;
out vec3 vN;
out vec3 vP;
void main() {
  vec4 p = mv * vec4(pos, 1.0);
  vP = p.xyz;
  vN = mat3(mv) * nrm;
  gl_Position = proj * p;
}`;

const FS = `#version 300 es
precision highp float;
in vec3 vN;
in vec3 vP;
uniform vec3 color;
out vec4 outColor;
void main() {
  vec3 n = normalize(vN);
  // Two-sided: a cut-open mesh (the volume's border) still shades.
  if (!gl_FrontFacing) n = -n;
  vec3 v = normalize(-vP);
  float diff = max(dot(n, v), 0.0);
  float spec = pow(max(dot(n, normalize(v + vec3(0.3, 0.5, 0.8))), 0.0), 40.0);
  vec3 c = color * (0.25 + 0.75 * diff) + vec3(0.25) * spec;
  outColor = vec4(c, 1.0);
}`;

function compile(gl, type, src) {
  const s = gl.createShader(type);
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
  return s;
}

// 4x4 matrices, column-major (WebGL's layout).
function mul(a, b) {
  const o = new Float32Array(16);
  for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
    o[c * 4 + r] = s;
  }
  return o;
}
function rotX(t) { const c = Math.cos(t), s = Math.sin(t); return new Float32Array([1, 0, 0, 0, 0, c, s, 0, 0, -s, c, 0, 0, 0, 0, 1]); }
function rotY(t) { const c = Math.cos(t), s = Math.sin(t); return new Float32Array([c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 0, 0, 0, 1]); }
function translate(x, y, z) { return new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, x, y, z, 1]); }
function perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2);
  const nf = 1 / (near - far);
  return new Float32Array([f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0]);
}
// LPS -> front-view eye axes: x = L, y = S, z = -P (a proper rotation).
const LPS_TO_EYE = new Float32Array([1, 0, 0, 0, 0, 0, -1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);

/** Per-vertex normals: the sum of the adjacent faces' (area-weighted) normals. */
export function vertexNormals(pos, idx) {
  const n = new Float32Array(pos.length);
  for (let t = 0; t < idx.length; t += 3) {
    const a = idx[t] * 3, b = idx[t + 1] * 3, c = idx[t + 2] * 3;
    const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
    const vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    for (const i of [a, b, c]) { n[i] += nx; n[i + 1] += ny; n[i + 2] += nz; }
  }
  return n;
}

export class SurfaceView {
  constructor(canvas, onChange = () => {}) {
    this.canvas = canvas;
    this.onChange = onChange;
    this.count = 0;
    this.yaw = 0;
    this.pitch = 0;
    this.zoom = 1;
    this.center = [0, 0, 0];
    this.radius = 100;
    this.error = null;
    const gl = canvas.getContext('webgl2', { antialias: true });
    if (!gl) { this.error = 'the 3-D view needs WebGL 2, which this browser does not offer'; return; }
    this.gl = gl;
    try {
      const p = gl.createProgram();
      gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VS));
      gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, FS));
      gl.linkProgram(p);
      if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
      this.prog = p;
    } catch (e) {
      this.error = `3-D view: ${e.message}`;
      return;
    }
    this.loc = {
      pos: this.gl.getAttribLocation(this.prog, 'pos'),
      nrm: this.gl.getAttribLocation(this.prog, 'nrm'),
      mv: this.gl.getUniformLocation(this.prog, 'mv'),
      proj: this.gl.getUniformLocation(this.prog, 'proj'),
      color: this.gl.getUniformLocation(this.prog, 'color'),
    };
    this.vao = gl.createVertexArray();
    this.buf = { pos: gl.createBuffer(), nrm: gl.createBuffer(), idx: gl.createBuffer() };
    this.attach();
  }

  /** positions: Float32Array (x, y, z mm LPS per vertex); indices: Uint32Array. */
  setMesh(positions, indices, keepView = true) {
    if (this.error) return;
    const gl = this.gl;
    const normals = vertexNormals(positions, indices);
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf.pos);
    gl.bufferData(gl.ARRAY_BUFFER, positions, gl.STATIC_DRAW);
    gl.enableVertexAttribArray(this.loc.pos);
    gl.vertexAttribPointer(this.loc.pos, 3, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf.nrm);
    gl.bufferData(gl.ARRAY_BUFFER, normals, gl.STATIC_DRAW);
    gl.enableVertexAttribArray(this.loc.nrm);
    gl.vertexAttribPointer(this.loc.nrm, 3, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.buf.idx);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, indices, gl.STATIC_DRAW);
    gl.bindVertexArray(null);
    this.count = indices.length;
    // The first mesh of a case sets the centre and size; later ones (edits)
    // keep them, so the surface does not jump while the reviewer works.
    if (!keepView || !this.framed) {
      const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
      for (let i = 0; i < positions.length; i += 3) {
        for (let a = 0; a < 3; a++) {
          lo[a] = Math.min(lo[a], positions[i + a]);
          hi[a] = Math.max(hi[a], positions[i + a]);
        }
      }
      if (positions.length) {
        this.center = [0, 1, 2].map((a) => (lo[a] + hi[a]) / 2);
        this.radius = Math.max(1, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);
        this.framed = true;
      }
    }
    this.draw();
  }

  /** Forget the framing (another case). */
  reset() {
    this.yaw = 0;
    this.pitch = 0;
    this.zoom = 1;
    this.framed = false;
    this.count = 0;
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(r.width * dpr));
    this.canvas.height = Math.max(1, Math.round(r.height * dpr));
  }

  draw() {
    if (this.error) return;
    const gl = this.gl;
    const w = this.canvas.width, h = this.canvas.height;
    gl.viewport(0, 0, w, h);
    gl.clearColor(0.06, 0.07, 0.09, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    if (!this.count) return;
    gl.enable(gl.DEPTH_TEST);
    gl.disable(gl.CULL_FACE);
    gl.useProgram(this.prog);
    const fov = Math.PI / 6;
    const dist = this.radius / Math.sin(fov / 2) / this.zoom;
    const [cx, cy, cz] = this.center;
    const model = mul(rotX(this.pitch), mul(rotY(this.yaw), mul(LPS_TO_EYE, translate(-cx, -cy, -cz))));
    const mv = mul(translate(0, 0, -dist), model);
    const near = Math.max(dist - 2 * this.radius, dist / 100);
    gl.uniformMatrix4fv(this.loc.mv, false, mv);
    gl.uniformMatrix4fv(this.loc.proj, false, perspective(fov, w / h, near, dist + 2 * this.radius));
    gl.uniform3f(this.loc.color, 1.0, 0.62, 0.2);
    gl.bindVertexArray(this.vao);
    gl.drawElements(gl.TRIANGLES, this.count, gl.UNSIGNED_INT, 0);
    gl.bindVertexArray(null);
  }

  attach() {
    const cv = this.canvas;
    let drag = null;
    cv.addEventListener('pointerdown', (e) => {
      cv.setPointerCapture(e.pointerId);
      drag = { x: e.clientX, y: e.clientY, yaw: this.yaw, pitch: this.pitch };
    });
    cv.addEventListener('pointermove', (e) => {
      if (!drag) return;
      this.yaw = drag.yaw + (e.clientX - drag.x) * 0.01;
      this.pitch = Math.max(-Math.PI / 2, Math.min(Math.PI / 2, drag.pitch + (e.clientY - drag.y) * 0.01));
      this.draw();
      this.onChange();
    });
    const end = () => { drag = null; };
    cv.addEventListener('pointerup', end);
    cv.addEventListener('pointercancel', end);
    cv.addEventListener('wheel', (e) => {
      e.preventDefault();
      this.zoom = Math.max(0.3, Math.min(20, this.zoom * (e.deltaY < 0 ? 1.15 : 1 / 1.15)));
      this.draw();
      this.onChange();
    }, { passive: false });
    cv.addEventListener('dblclick', () => { this.yaw = 0; this.pitch = 0; this.zoom = 1; this.draw(); this.onChange(); });
  }
}
