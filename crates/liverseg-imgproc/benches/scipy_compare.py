"""scipy.ndimage counterparts of benches/kernels.rs (called by it).

usage: scipy_compare.py RAW NX NY NZ SX SY SZ REPS   (RAW: int16 little endian, x fastest)
prints: name<TAB>best seconds<TAB>check
"""
import sys
import time

import numpy as np
from scipy import ndimage

raw, nx, ny, nz, sx, sy, sz, reps = sys.argv[1:]
nx, ny, nz, reps = int(nx), int(ny), int(nz), int(reps)
sp = (float(sz), float(sy), float(sx))  # numpy axis order is z, y, x
ct = np.fromfile(raw, dtype="<i2").reshape(nz, ny, nx)
print(f"scipy {__import__('scipy').__version__}, numpy {np.__version__} (single-threaded)")


def best(f):
    t_best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = f()
        t_best = min(t_best, time.perf_counter() - t)
    return out, t_best


def emit(name, secs, check):
    print(f"{name}\t{secs:.6f}\t{check}", flush=True)


m, s = best(lambda: ndimage.median_filter(ct, size=3, mode="nearest"))
emit("median_3x3x3_i16", s, f"sum {int(m.astype(np.int64).sum())}")

f32 = ct.astype(np.float32)
zoom = tuple(v / 1.4 for v in sp)
r, s = best(lambda: ndimage.zoom(f32, zoom, order=1, mode="nearest"))
emit("resample_linear_1.4mm", s, f"dims {list(r.shape[::-1])}")

body = ct >= -150
d, s = best(lambda: ndimage.distance_transform_edt(~body, sampling=sp))
emit("edt_anisotropic", s, f"max {d.max():.3f} mm")

# A 5 mm ball as an index-space structuring element would make binary_erosion
# O(n * 1000); the fair scipy way is the same EDT threshold.
e, s = best(lambda: ndimage.distance_transform_edt(body, sampling=sp) > 5.0 * (1 + 1e-10))
emit("erode_ball_5mm", s, f"{int(e.sum())} voxels (edt threshold)")

bright = ct > 100
(lab, n), s = best(lambda: ndimage.label(bright))
emit("components_6conn", s, f"{n} components")
