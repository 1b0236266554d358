//! Resampling a volume onto another grid, in world (LPS) coordinates.
//!
//! Every target voxel centre is mapped to world space with the target geometry
//! and back into the source's continuous index space with the source geometry,
//! so any pair of directions, origins and spacings works (oblique, flipped,
//! permuted axes). When both grids share their axes (the map from target index
//! to source index is diagonal, the usual case: isotropic resampling, crops,
//! the way back to the original grid) the map is separable and the sample
//! positions and weights are precomputed once per axis; otherwise every voxel
//! goes through the full 3x3 map.
//!
//! Inside / outside follows ITK: a sample position is inside the source when
//! its continuous index lies in `[-0.5, n - 0.5]` on every axis, i.e. within
//! the source's field of view (voxel edges, not voxel centres). Within the half
//! voxel between the outermost centres and the field-of-view edge the edge
//! value is replicated. Positions outside get the `fill` value.

use crate::{Error, Result, Scalar};
use liverseg_volume::{Geometry, Mask, Volume};
use rayon::prelude::*;

/// Interpolation kernels for [`resample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Value of the nearest source voxel (ties round up).
    Nearest,
    /// Trilinear: exact for linear intensity ramps, never overshoots.
    Linear,
    /// Separable Catmull-Rom cubic (a = -0.5 Keys kernel): interpolating (it
    /// reproduces the samples, unlike a cubic B-spline which would need a
    /// prefilter pass), exact for quadratic ramps, sharper than trilinear; it can
    /// overshoot near sharp edges by up to ~7 % of the step, so clip afterwards
    /// if the range matters. Chosen over a B-spline because it needs no global
    /// prefilter and stays a 4x4x4 local stencil.
    CatmullRom,
}

/// Geometry with the same direction and physical extent as `g` but new voxel
/// spacing.
///
/// Convention: the new voxel count per axis is the smallest that covers the
/// original field of view (`ceil(n * s / s_new)`, at least 1; the field of view
/// is `n * s`, edge to edge), and the two fields of view share their centre.
/// When `n * s` is a multiple of `s_new` the field-of-view edges coincide
/// exactly; otherwise the new one sticks out by less than half a new voxel on
/// each side. Every new voxel centre therefore lies inside the original field
/// of view, so resampling onto this grid never needs the fill value, and
/// resampling back onto `g` (see [`resample`]) reproduces `g` exactly: the
/// original grid is the target, so its dims, spacing, origin and direction are
/// those of `g` by construction.
pub fn grid_with_spacing(g: &Geometry, spacing_mm: [f64; 3]) -> Result<Geometry> {
    for (axis, &s) in spacing_mm.iter().enumerate() {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::param("spacing_mm", format!("axis {axis}: {s} is not a positive number of mm")));
        }
    }
    let dims = g.dims();
    let old = g.spacing();
    let mut new_dims = [1usize; 3];
    for a in 0..3 {
        let cells = dims[a] as f64 * old[a] / spacing_mm[a];
        // A relative tolerance keeps 300 * 0.7 / 1.4 = 150.00000000000003 at 150.
        let n = (cells * (1.0 - 1e-9)).ceil();
        if !(n.is_finite() && n < 1e12) {
            return Err(Error::param("spacing_mm", format!("axis {a}: {cells} voxels is too many")));
        }
        new_dims[a] = (n as usize).max(1);
    }
    let centre = g.index_to_world(std::array::from_fn(|a| (dims[a] as f64 - 1.0) / 2.0));
    let at_zero = Geometry::new(new_dims, spacing_mm, [0.0; 3], g.direction())?;
    let c0 = at_zero.index_to_world(std::array::from_fn(|a| (new_dims[a] as f64 - 1.0) / 2.0));
    Ok(Geometry::new(new_dims, spacing_mm, std::array::from_fn(|a| centre[a] - c0[a]), g.direction())?)
}

/// [`grid_with_spacing`] with the same spacing on every axis (e.g. the method's
/// 1.4 mm grid).
pub fn isotropic_grid(g: &Geometry, spacing_mm: f64) -> Result<Geometry> {
    grid_with_spacing(g, [spacing_mm; 3])
}

/// Resample an image onto `target` with the given kernel; `fill` outside the
/// source field of view.
pub fn resample<T: Scalar>(src: &Volume<T>, target: &Geometry, kind: Interpolation, fill: f32) -> Volume<f32> {
    let data = match kind {
        Interpolation::Nearest => {
            nearest_core(src, target, fill, |o| src.data()[o].to_f32())
        }
        _ => interpolate(src, target, kind, |v: T| v.to_f32(), fill, |v| v),
    };
    Volume::new(target.clone(), data).expect("data built for the target grid")
}

/// Trilinear resampling of an image onto `target`.
pub fn resample_linear(src: &Volume<f32>, target: &Geometry, fill: f32) -> Volume<f32> {
    resample(src, target, Interpolation::Linear, fill)
}

/// Catmull-Rom cubic resampling (see [`Interpolation::CatmullRom`]).
pub fn resample_cubic(src: &Volume<f32>, target: &Geometry, fill: f32) -> Volume<f32> {
    resample(src, target, Interpolation::CatmullRom, fill)
}

/// Nearest-neighbour resampling for label maps of any type: every output value
/// is one of the input values (or `fill`).
pub fn resample_nearest<T: Copy + Send + Sync>(src: &Volume<T>, target: &Geometry, fill: T) -> Volume<T> {
    let data = nearest_core(src, target, fill, |o| src.data()[o]);
    Volume::new(target.clone(), data).expect("data built for the target grid")
}

/// "Partial volume then 0.5": the binary mask (any non-zero value is
/// foreground) is interpolated trilinearly as a 0/1 image and thresholded at
/// `>= 0.5`. Smoother than nearest when going to coarser grids, and it preserves
/// the mask volume better. Outside the source field of view is background.
pub fn resample_mask_partial_volume(mask: &Mask, target: &Geometry) -> Mask {
    let data = interpolate(mask, target, Interpolation::Linear, |v: u8| f32::from(u8::from(v != 0)), 0u8, |p| u8::from(p >= 0.5));
    Volume::new(target.clone(), data).expect("data built for the target grid")
}

/// The level set `>= threshold` of a float image interpolated trilinearly onto
/// `target`, as a mask; outside the source field of view is background. Where
/// the target is finer than the source this places the boundary between two
/// source voxels where the interpolated value crosses the threshold, not
/// half-way as [`resample_mask_partial_volume`] of the thresholded image does;
/// no float volume is built on the (often much larger) target grid.
pub fn resample_level_set(src: &Volume<f32>, target: &Geometry, threshold: f32) -> Mask {
    let data = interpolate(src, target, Interpolation::Linear, |v: f32| v, 0u8, |p| u8::from(p >= threshold));
    Volume::new(target.clone(), data).expect("data built for the target grid")
}

/// Affine map from target voxel index to source continuous index.
#[derive(Debug, Clone, Copy)]
struct IndexMap {
    a: [[f64; 3]; 3],
    b: [f64; 3],
    /// The map is diagonal: axis j of the target samples axis j of the source only.
    separable: bool,
}

fn index_map(src: &Geometry, dst: &Geometry) -> IndexMap {
    let mut b = src.world_to_index(dst.index_to_world([0.0; 3]));
    let mut a = [[0.0; 3]; 3];
    for c in 0..3 {
        let mut e = [0.0; 3];
        e[c] = 1.0;
        let p = src.world_to_index(dst.index_to_world(e));
        for (row, (pr, br)) in a.iter_mut().zip(p.iter().zip(&b)) {
            row[c] = pr - br;
        }
    }
    // Relative to a voxel over the largest plausible grid (1e5 voxels), 1e-9 is
    // far below any meaningful shift; snapping makes a resample onto the same
    // grid (or a sub-grid) an exact copy instead of a 1e-13-voxel blur.
    let tol = 1e-9;
    let separable = (0..3).all(|r| (0..3).all(|c| r == c || a[r][c].abs() < tol));
    if separable {
        for r in 0..3 {
            let diag = a[r][r];
            a[r] = [0.0; 3];
            a[r][r] = diag;
            if (a[r][r] - a[r][r].round()).abs() < tol {
                a[r][r] = a[r][r].round();
            }
            if (b[r] - b[r].round()).abs() < tol {
                b[r] = b[r].round();
            }
        }
    }
    IndexMap { a, b, separable }
}

/// Sample positions and weights along one axis (at most 4 for Catmull-Rom).
#[derive(Debug, Clone, Copy)]
struct Taps {
    idx: [usize; 4],
    w: [f32; 4],
    len: usize,
}

#[inline]
fn inside(s: f64, n: usize) -> bool {
    // Tolerance: a position on the field-of-view edge computed through two
    // affine maps must not flip to "outside" by rounding.
    s >= -0.5 - 1e-6 && s <= n as f64 - 0.5 + 1e-6
}

#[inline]
fn taps(s: f64, n: usize, kind: Interpolation) -> Option<Taps> {
    if !inside(s, n) {
        return None;
    }
    let last = n - 1;
    let sc = s.clamp(0.0, last as f64);
    match kind {
        Interpolation::Nearest => Some(Taps { idx: [((s + 0.5).floor().max(0.0) as usize).min(last), 0, 0, 0], w: [1.0, 0.0, 0.0, 0.0], len: 1 }),
        Interpolation::Linear => {
            if n == 1 {
                return Some(Taps { idx: [0; 4], w: [1.0, 0.0, 0.0, 0.0], len: 1 });
            }
            let i0 = (sc.floor() as usize).min(n - 2);
            let f = (sc - i0 as f64) as f32;
            Some(Taps { idx: [i0, i0 + 1, 0, 0], w: [1.0 - f, f, 0.0, 0.0], len: 2 })
        }
        Interpolation::CatmullRom => {
            let i = (sc.floor() as usize).min(last);
            let t = sc - i as f64;
            let (t2, t3) = (t * t, t * t * t);
            let w = [
                (-t3 + 2.0 * t2 - t) / 2.0,
                (3.0 * t3 - 5.0 * t2 + 2.0) / 2.0,
                (-3.0 * t3 + 4.0 * t2 + t) / 2.0,
                (t3 - t2) / 2.0,
            ];
            let at = |d: isize| (i as isize + d).clamp(0, last as isize) as usize;
            Some(Taps { idx: [at(-1), i, at(1), at(2)], w: w.map(|x| x as f32), len: 4 })
        }
    }
}

fn axis_taps(map: &IndexMap, axis: usize, count: usize, n_src: usize, kind: Interpolation) -> Vec<Option<Taps>> {
    (0..count).map(|t| taps(map.a[axis][axis] * t as f64 + map.b[axis], n_src, kind)).collect()
}

/// Interpolate `src` at every target voxel; `value` reads a source voxel as a
/// number, `finish` turns the interpolated number into the output type.
fn interpolate<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    src: &Volume<T>,
    target: &Geometry,
    kind: Interpolation,
    value: impl Fn(T) -> f32 + Sync,
    outside: U,
    finish: impl Fn(f32) -> U + Sync,
) -> Vec<U> {
    let map = index_map(src.geometry(), target);
    let [nx, ny, nz] = target.dims();
    let sd = src.dims();
    let (sx, sxy) = (sd[0], sd[0] * sd[1]);
    let data = src.data();
    let mut out = vec![outside; target.len()];
    let sample = |tx: &Taps, ty: &Taps, tz: &Taps| -> f32 {
        let mut acc = 0.0f32;
        for c in 0..tz.len {
            let mut acc_y = 0.0f32;
            for b in 0..ty.len {
                let row = tz.idx[c] * sxy + ty.idx[b] * sx;
                let mut acc_x = 0.0f32;
                for a in 0..tx.len {
                    acc_x += tx.w[a] * value(data[row + tx.idx[a]]);
                }
                acc_y += ty.w[b] * acc_x;
            }
            acc += tz.w[c] * acc_y;
        }
        acc
    };
    if map.separable {
        let tx = axis_taps(&map, 0, nx, sd[0], kind);
        let ty = axis_taps(&map, 1, ny, sd[1], kind);
        let tz = axis_taps(&map, 2, nz, sd[2], kind);
        out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            let Some(zt) = &tz[k] else { return };
            for (j, row) in slice.chunks_mut(nx).enumerate() {
                let Some(yt) = &ty[j] else { continue };
                for (o, xt) in row.iter_mut().zip(&tx) {
                    if let Some(xt) = xt {
                        *o = finish(sample(xt, yt, zt));
                    }
                }
            }
        });
    } else {
        out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            for (j, row) in slice.chunks_mut(nx).enumerate() {
                for (i, o) in row.iter_mut().enumerate() {
                    let t = [i as f64, j as f64, k as f64];
                    let s: [f64; 3] = std::array::from_fn(|r| map.a[r][0] * t[0] + map.a[r][1] * t[1] + map.a[r][2] * t[2] + map.b[r]);
                    if let (Some(xt), Some(yt), Some(zt)) = (taps(s[0], sd[0], kind), taps(s[1], sd[1], kind), taps(s[2], sd[2], kind)) {
                        *o = finish(sample(&xt, &yt, &zt));
                    }
                }
            }
        });
    }
    out
}

/// For every target voxel, `get(offset of the nearest source voxel)`, or `fill` outside.
fn nearest_core<T, U: Copy + Send + Sync>(src: &Volume<T>, target: &Geometry, fill: U, get: impl Fn(usize) -> U + Sync) -> Vec<U> {
    let map = index_map(src.geometry(), target);
    let [nx, ny, nz] = target.dims();
    let sd = src.dims();
    let (sx, sxy) = (sd[0], sd[0] * sd[1]);
    let mut out = vec![fill; target.len()];
    let pick = |s: f64, n: usize| taps(s, n, Interpolation::Nearest).map(|t| t.idx[0]);
    if map.separable {
        let ix: Vec<Option<usize>> = (0..nx).map(|t| pick(map.a[0][0] * t as f64 + map.b[0], sd[0])).collect();
        let iy: Vec<Option<usize>> = (0..ny).map(|t| pick(map.a[1][1] * t as f64 + map.b[1], sd[1])).collect();
        let iz: Vec<Option<usize>> = (0..nz).map(|t| pick(map.a[2][2] * t as f64 + map.b[2], sd[2])).collect();
        out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            let Some(z) = iz[k] else { return };
            for (j, row) in slice.chunks_mut(nx).enumerate() {
                let Some(y) = iy[j] else { continue };
                for (o, x) in row.iter_mut().zip(&ix) {
                    if let Some(x) = x {
                        *o = get(z * sxy + y * sx + x);
                    }
                }
            }
        });
    } else {
        out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            for (j, row) in slice.chunks_mut(nx).enumerate() {
                for (i, o) in row.iter_mut().enumerate() {
                    let t = [i as f64, j as f64, k as f64];
                    let s: [f64; 3] = std::array::from_fn(|r| map.a[r][0] * t[0] + map.a[r][1] * t[1] + map.a[r][2] * t[2] + map.b[r]);
                    if let (Some(x), Some(y), Some(z)) = (pick(s[0], sd[0]), pick(s[1], sd[1]), pick(s[2], sd[2])) {
                        *o = get(z * sxy + y * sx + x);
                    }
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ball, dice, rot, rot_z, Rng};

    fn ramp(w: [f64; 3]) -> f64 {
        0.5 * w[0] - 0.25 * w[1] + 0.75 * w[2] + 10.0
    }

    fn ramp_volume(g: &Geometry) -> Volume<f32> {
        Volume::from_fn(g.clone(), |[i, j, k]| ramp(g.index_to_world([i as f64, j as f64, k as f64])) as f32)
    }

    /// Checks target voxels whose source position lies between the outermost
    /// source voxel centres (where interpolation, not edge replication, applies).
    /// `margin`: voxels from the edge to skip (Catmull-Rom replicates the edge
    /// sample for its outer taps, which bends a ramp in the outermost voxel).
    fn assert_ramp_exact(src: &Geometry, out: &Volume<f32>, tol: f64, margin: f64) -> usize {
        let g = out.geometry();
        let d = src.dims();
        let mut checked = 0;
        for o in 0..out.len() {
            let t = g.index_of(o).map(|v| v as f64);
            let w = g.index_to_world(t);
            let s = src.world_to_index(w);
            if (0..3).all(|a| s[a] >= margin && s[a] <= (d[a] - 1) as f64 - margin) {
                let got = out.data()[o] as f64;
                assert!((got - ramp(w)).abs() < tol, "at {t:?}: {got} vs {}", ramp(w));
                checked += 1;
            }
        }
        checked
    }

    #[test]
    fn linear_ramp_is_exact_on_the_separable_path() {
        let src = Geometry::new([30, 25, 12], [0.7, 0.8, 2.5], [-10.0, 5.0, 100.0], rot_z(90.0)).unwrap();
        let v = ramp_volume(&src);
        let iso = isotropic_grid(&src, 1.4).unwrap();
        assert!(index_map(&src, &iso).separable);
        let out = resample_linear(&v, &iso, -999.0);
        assert!(assert_ramp_exact(&src, &out, 1e-4, 0.0) > 1000);
        // Every iso voxel centre lies in the source field of view: no fill value.
        assert!(out.data().iter().all(|&x| x != -999.0));
        let cubic = resample_cubic(&v, &iso, -999.0);
        assert!(assert_ramp_exact(&src, &cubic, 1e-4, 1.0) > 1000);
    }

    #[test]
    fn linear_ramp_is_exact_on_the_general_path() {
        // Oblique source, axis-aligned target, and the other way round.
        let src = Geometry::new([40, 40, 20], [1.0, 1.1, 2.0], [0.0, 0.0, 0.0], rot([1.0, 2.0, 3.0], 25.0)).unwrap();
        let v = ramp_volume(&src);
        let target = Geometry::new([30, 30, 30], [1.3, 1.3, 1.3], [-5.0, 5.0, 0.0], IDENTITY).unwrap();
        assert!(!index_map(&src, &target).separable);
        let out = resample_linear(&v, &target, f32::NAN);
        assert!(assert_ramp_exact(&src, &out, 1e-4, 0.0) > 500);
        let cubic = resample(&v, &target, Interpolation::CatmullRom, f32::NAN);
        assert!(assert_ramp_exact(&src, &cubic, 1e-4, 1.0) > 500);
        // Far outside the source: fill.
        let away = Geometry::new([2, 2, 2], [1.0; 3], [1e4, 1e4, 1e4], IDENTITY).unwrap();
        assert!(resample_linear(&v, &away, -5.0).data().iter().all(|&x| x == -5.0));
    }

    const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

    #[test]
    fn same_grid_and_sub_grid_are_exact_copies() {
        let g = Geometry::new([9, 8, 7], [0.6, 0.6, 3.0], [3.0, -4.0, 5.0], rot([0.0, 1.0, 1.0], 40.0)).unwrap();
        let mut rng = Rng(7);
        let v = Volume::from_fn(g.clone(), |_| rng.unit() as f32);
        for kind in [Interpolation::Nearest, Interpolation::Linear, Interpolation::CatmullRom] {
            assert_eq!(resample(&v, &g, kind, 0.0).data(), v.data());
        }
        let sub = g.sub_grid([2, 1, 3], [4, 5, 2]).unwrap();
        let out = resample_linear(&v, &sub, 0.0);
        assert_eq!(*out.get(0, 0, 0), *v.get(2, 1, 3));
        assert_eq!(*out.get(3, 4, 1), *v.get(5, 5, 4));
    }

    #[test]
    fn catmull_rom_reproduces_a_quadratic_and_the_samples() {
        let src = Geometry::identity([40, 3, 3], [1.0, 1.0, 1.0]).unwrap();
        let v = Volume::from_fn(src.clone(), |[i, _, _]| ((i as f32) - 20.0).powi(2) / 10.0);
        let fine = Geometry::new([100, 1, 1], [0.3, 1.0, 1.0], [5.0, 1.0, 1.0], IDENTITY).unwrap();
        let out = resample_cubic(&v, &fine, 0.0);
        for (t, &got) in out.data().iter().enumerate() {
            let x = 5.0 + 0.3 * t as f64;
            let want = (x - 20.0).powi(2) / 10.0;
            assert!((got as f64 - want).abs() < 1e-3, "x={x}: {got} vs {want}");
        }
    }

    #[test]
    fn nearest_keeps_labels_on_any_grid() {
        let g = Geometry::new([20, 18, 9], [0.8, 0.8, 2.0], [1.0, 2.0, 3.0], IDENTITY).unwrap();
        let mut rng = Rng(3);
        let labels = Volume::from_fn(g.clone(), |_| [0u8, 1, 2, 7][(rng.next() % 4) as usize]);
        let oblique = Geometry::new([25, 25, 25], [0.9; 3], [-2.0, 0.0, 0.0], rot([1.0, 1.0, 0.0], 33.0)).unwrap();
        let out = resample_nearest(&labels, &oblique, 255u8);
        assert!(out.data().iter().all(|v| [0, 1, 2, 7, 255].contains(v)));
        assert!(out.data().contains(&7) && out.data().contains(&255));
        // Each output value is the label of the source voxel nearest to that position.
        for o in (0..out.len()).step_by(37) {
            let w = oblique.index_to_world(oblique.index_of(o).map(|v| v as f64));
            let s = g.world_to_index(w);
            let idx = s.map(|x| (x + 0.5).floor() as i64);
            let inside = (0..3).all(|a| s[a] >= -0.5 && s[a] <= g.dims()[a] as f64 - 0.5);
            if inside && (0..3).all(|a| (s[a] - s[a].floor() - 0.5).abs() > 1e-6) {
                let clamped = std::array::from_fn(|a| idx[a].clamp(0, g.dims()[a] as i64 - 1));
                assert_eq!(out.data()[o], *labels.checked_get(clamped).unwrap());
            }
        }
    }

    #[test]
    fn isotropic_grid_convention() {
        // Divisible extents: field-of-view edges coincide exactly.
        let g = Geometry::new([10, 10, 4], [0.7, 0.7, 3.5], [-20.0, 30.0, 40.0], rot_z(30.0)).unwrap();
        let iso = isotropic_grid(&g, 1.4).unwrap();
        assert_eq!(iso.dims(), [5, 5, 10]);
        assert_eq!(iso.spacing(), [1.4; 3]);
        assert_eq!(iso.direction(), g.direction());
        let corner_old = g.index_to_world([-0.5; 3]);
        let corner_new = iso.index_to_world([-0.5; 3]);
        let far_old = g.index_to_world([9.5, 9.5, 3.5]);
        let far_new = iso.index_to_world([4.5, 4.5, 9.5]);
        for a in 0..3 {
            assert!((corner_old[a] - corner_new[a]).abs() < 1e-9);
            assert!((far_old[a] - far_new[a]).abs() < 1e-9);
        }
        // Not divisible: the smallest covering count, same centre.
        let g = Geometry::new([512, 512, 129], [0.57, 0.57, 1.6], [0.0; 3], IDENTITY).unwrap();
        let iso = isotropic_grid(&g, 1.4).unwrap();
        assert_eq!(iso.dims(), [209, 209, 148]);
        let c_old = g.index_to_world([255.5, 255.5, 64.0]);
        let c_new = iso.index_to_world([104.0, 104.0, 73.5]);
        for a in 0..3 {
            assert!((c_old[a] - c_new[a]).abs() < 1e-9);
        }
        // 1-voxel-thick axes stay valid.
        let thin = Geometry::identity([1, 1, 1], [0.5, 0.5, 0.5]).unwrap();
        assert_eq!(isotropic_grid(&thin, 1.4).unwrap().dims(), [1, 1, 1]);
        assert!(isotropic_grid(&thin, 0.0).is_err());
        assert!(isotropic_grid(&thin, f64::NAN).is_err());
    }

    #[test]
    fn there_and_back_reproduces_grid_and_mask() {
        let g = Geometry::new([96, 90, 40], [0.7, 0.75, 2.5], [-30.0, -20.0, 10.0], rot([0.2, 0.1, 1.0], 15.0)).unwrap();
        let centre = g.index_to_world([48.0, 45.0, 20.0]);
        let mask = ball(&g, centre, 28.0);
        let iso = isotropic_grid(&g, 1.4).unwrap();
        let there = resample_mask_partial_volume(&mask, &iso);
        let back = resample_mask_partial_volume(&there, &g);
        assert_eq!(back.geometry(), &g);
        let d = dice(&mask, &back);
        assert!(d >= 0.99, "dice {d}");
        let near = resample_nearest(&resample_nearest(&mask, &iso, 0), &g, 0);
        assert!(dice(&mask, &near) >= 0.97);
        // Volume preserved through the coarse grid.
        let rel = there.foreground_ml() / mask.foreground_ml();
        assert!((rel - 1.0).abs() < 0.02, "volume ratio {rel}");
    }

    #[test]
    fn thin_and_odd_inputs_do_not_panic() {
        let g = Geometry::identity([5, 4, 1], [0.8, 0.8, 5.0]).unwrap();
        let v = Volume::filled(g.clone(), 3.0f32);
        let iso = isotropic_grid(&g, 1.4).unwrap();
        for kind in [Interpolation::Nearest, Interpolation::Linear, Interpolation::CatmullRom] {
            assert!(resample(&v, &iso, kind, 0.0).data().iter().all(|&x| (x - 3.0).abs() < 1e-6));
        }
        let single = Geometry::identity([1, 1, 1], [1.0; 3]).unwrap();
        let m = Volume::filled(single.clone(), 1u8);
        assert_eq!(resample_mask_partial_volume(&m, &isotropic_grid(&single, 0.25).unwrap()).count_foreground(), 64);
        let empty = Volume::filled(g.clone(), 0u8);
        assert_eq!(resample_mask_partial_volume(&empty, &iso).count_foreground(), 0);
    }

    #[test]
    fn level_set_sits_where_the_interpolated_value_crosses() {
        // A ramp along x on 2 mm voxels, read on 0.5 mm: the level set of
        // 0.37 starts at world x = 3.7 mm, not on a source voxel boundary.
        let src = Geometry::identity([12, 3, 3], [2.0; 3]).unwrap();
        let v = Volume::from_fn(src.clone(), |[i, _, _]| 0.1 * (i as f64 * 2.0) as f32);
        let fine = grid_with_spacing(&src, [0.5, 2.0, 2.0]).unwrap();
        let m = resample_level_set(&v, &fine, 0.37);
        for o in 0..m.len() {
            let x = fine.index_to_world(fine.index_of(o).map(|t| t as f64))[0];
            if (0.0..=22.0).contains(&x) && (x - 3.7).abs() > 1e-3 {
                assert_eq!(m.data()[o] != 0, x > 3.7, "at x = {x} mm");
            }
        }
    }

    #[test]
    fn level_set_of_a_0_1_image_is_the_partial_volume_mask() {
        let g = Geometry::new([40, 36, 14], [1.6, 1.6, 3.0], [5.0, -20.0, 40.0], rot_z(30.0)).unwrap();
        let mask = ball(&g, g.index_to_world([20.0, 17.0, 7.0]), 14.0);
        let fine = grid_with_spacing(&g, [0.7, 0.7, 1.0]).unwrap();
        let image = mask.map(|&v| f32::from(v));
        assert_eq!(resample_level_set(&image, &fine, 0.5).data(), resample_mask_partial_volume(&mask, &fine).data());
    }
}
