//! Random elastic deformation of a training image and its label together.
//!
//! A coarse control grid (spacing [`ElasticConfig::control_spacing_mm`]) gets
//! independent Gaussian displacement vectors; a cubic B-spline of those is the
//! dense displacement field (the free-form deformation of Rueckert et al. 1999,
//! also what SimpleITK's `BSplineTransform` and DeepMedic/nnU-Net style
//! augmentation use). HU is resampled linearly, the label and body by linear
//! interpolation of their 0/1 values then 0.5, all at the same positions, so
//! image and reference move together.
//!
//! Hand-written rather than taken from a crate: no maintained Rust crate does a
//! 3-D B-spline warp, and separable evaluation on the voxel grid is a few dozen
//! lines that run in a fraction of a second on a prepared volume.

use liverseg_volume::SplitMix64;
use liverseg_volume::{Geometry, Mask, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    /// Spacing of the random displacement control grid, mm.
    pub control_spacing_mm: f64,
    /// Standard deviation of control-point displacements, mm (per component).
    /// The dense field is a weighted mean of 64 control points, so its own
    /// standard deviation is smaller: about 0.3 to 0.5 of this.
    pub magnitude_mm: f64,
}

impl Default for ElasticConfig {
    fn default() -> Self {
        Self {
            control_spacing_mm: 40.0,
            magnitude_mm: 4.0,
        }
    }
}

/// Control displacements are truncated at this many standard deviations (a
/// rare huge draw would otherwise dominate an image's augmentation) ...
const TRUNCATE_SD: f64 = 3.0;
/// ... and at this fraction of the control spacing: below it a cubic B-spline
/// field is guaranteed to be one-to-one (Choi & Lee 2000 give ~0.48; 0.4 is
/// the usual safe figure), so the warp never folds tissue over itself.
const FOLD_FREE_FRACTION: f64 = 0.4;

/// Cubic B-spline basis on one voxel axis: for each voxel, the first of the
/// four control nodes it depends on and their weights.
#[derive(Debug, Clone)]
struct AxisBasis {
    first: Vec<usize>,
    weights: Vec<[f32; 4]>,
}

impl AxisBasis {
    /// Node `n` sits at voxel coordinate `(n - 1) * step`, so voxel `x` uses
    /// nodes `floor(x / step) .. +4`.
    fn new(dim: usize, step: f64, nodes: usize) -> Self {
        let (mut first, mut weights) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
        for x in 0..dim {
            let t = x as f64 / step;
            let cell = (t.floor() as usize).min(nodes - 4);
            let u = t - cell as f64;
            let (u2, u3) = (u * u, u * u * u);
            let w = [
                (1.0 - u).powi(3) / 6.0,
                (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0,
                (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0,
                u3 / 6.0,
            ];
            first.push(cell);
            weights.push(w.map(|v| v as f32));
        }
        Self { first, weights }
    }
}

/// A random smooth displacement field on a voxel grid, in mm along the voxel
/// axes (the direction matrix is irrelevant: the draws are isotropic).
#[derive(Debug, Clone)]
pub struct DisplacementField {
    dims: [usize; 3],
    z: AxisBasis,
    /// The field after the x and y passes: `[control z][y][x]`, mm.
    reduced: Vec<[f32; 3]>,
    max_control_mm: f32,
}

impl DisplacementField {
    /// Draw control displacements (z, y, x node order, 3 normals each) and set
    /// up the dense evaluation. Deterministic for a given `rng` state.
    pub fn random(
        geometry: &Geometry,
        config: &ElasticConfig,
        rng: &mut SplitMix64,
    ) -> Result<Self> {
        let s = config.control_spacing_mm;
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::param(
                "control_spacing_mm",
                format!("{s} is not a positive number of mm"),
            ));
        }
        let m = config.magnitude_mm;
        if !(m.is_finite() && m >= 0.0) {
            return Err(Error::param(
                "magnitude_mm",
                format!("{m} is not a non-negative number of mm"),
            ));
        }
        let spacing = geometry.spacing();
        let dims = geometry.dims();
        if let Some(a) = (0..3).find(|&a| s < spacing[a]) {
            return Err(Error::param(
                "control_spacing_mm",
                format!(
                    "{s} mm is finer than the voxel spacing {} mm along axis {a}",
                    spacing[a]
                ),
            ));
        }
        let step: [f64; 3] = std::array::from_fn(|a| s / spacing[a]);
        let nodes: [usize; 3] =
            std::array::from_fn(|a| ((dims[a] - 1) as f64 / step[a]).floor() as usize + 4);
        let [bx, by, bz] = std::array::from_fn(|a| AxisBasis::new(dims[a], step[a], nodes[a]));

        let limit = (TRUNCATE_SD * m).min(FOLD_FREE_FRACTION * s);
        let control: Vec<[f32; 3]> = (0..nodes[0] * nodes[1] * nodes[2])
            .map(|_| std::array::from_fn(|_| (m * rng.normal()).clamp(-limit, limit) as f32))
            .collect();
        let max_control_mm = control
            .iter()
            .flatten()
            .fold(0.0f32, |acc, v| acc.max(v.abs()));

        let [nx, ny, _] = dims;
        let [cx, cy, cz] = nodes;
        // x pass: [cz][cy][x]
        let mut after_x = vec![[0.0f32; 3]; cz * cy * nx];
        after_x
            .par_chunks_mut(nx)
            .enumerate()
            .for_each(|(row, out)| {
                let src = &control[row * cx..(row + 1) * cx];
                for (x, o) in out.iter_mut().enumerate() {
                    *o = combine(&bx.weights[x], |k| src[bx.first[x] + k]);
                }
            });
        // y pass: [cz][y][x]
        let mut reduced = vec![[0.0f32; 3]; cz * ny * nx];
        reduced
            .par_chunks_mut(nx)
            .enumerate()
            .for_each(|(row, out)| {
                let (z, y) = (row / ny, row % ny);
                let plane = &after_x[z * cy * nx..(z + 1) * cy * nx];
                for (x, o) in out.iter_mut().enumerate() {
                    *o = combine(&by.weights[y], |k| plane[(by.first[y] + k) * nx + x]);
                }
            });
        Ok(Self {
            dims,
            z: bz,
            reduced,
            max_control_mm,
        })
    }

    /// Displacement of voxel (i, j, k) in mm along the voxel axes.
    pub fn at(&self, i: usize, j: usize, k: usize) -> [f32; 3] {
        let [nx, ny, _] = self.dims;
        let plane = nx * ny;
        combine(&self.z.weights[k], |c| {
            self.reduced[(self.z.first[k] + c) * plane + j * nx + i]
        })
    }

    /// The largest control displacement component drawn, mm: a bound on every
    /// component of the dense field (B-spline weights are a convex combination).
    pub fn max_control_mm(&self) -> f32 {
        self.max_control_mm
    }
}

#[inline(always)]
fn combine(w: &[f32; 4], value: impl Fn(usize) -> [f32; 3]) -> [f32; 3] {
    let mut out = [0.0f32; 3];
    for (k, wk) in w.iter().enumerate() {
        let v = value(k);
        for a in 0..3 {
            out[a] += wk * v[a];
        }
    }
    out
}

/// Trilinear sampling position: the lower corner and the fractions, clamped to
/// the grid (positions beyond the border take the border value: the prepared
/// crop ends in body or air that continues outside it, and a fill value would
/// paint an artificial edge into the image).
#[derive(Clone, Copy)]
struct Corner {
    base: [usize; 3],
    next: [usize; 3],
    frac: [f32; 3],
}

impl Corner {
    #[inline(always)]
    fn new(p: [f32; 3], dims: [usize; 3]) -> Self {
        let mut base = [0usize; 3];
        let mut next = [0usize; 3];
        let mut frac = [0.0f32; 3];
        for a in 0..3 {
            let hi = (dims[a] - 1) as f32;
            let q = p[a].clamp(0.0, hi);
            let b = q.floor();
            base[a] = b as usize;
            next[a] = (base[a] + 1).min(dims[a] - 1);
            frac[a] = q - b;
        }
        Self { base, next, frac }
    }

    #[inline(always)]
    fn sample(&self, data: &[f32], nx: usize, plane: usize) -> f32 {
        self.sample_with(|o| data[o], nx, plane)
    }

    #[inline(always)]
    fn sample_with(&self, value: impl Fn(usize) -> f32, nx: usize, plane: usize) -> f32 {
        let [x0, y0, z0] = self.base;
        let [x1, y1, z1] = self.next;
        let [fx, fy, fz] = self.frac;
        let at = |x: usize, y: usize, z: usize| value(x + nx * y + plane * z);
        // a + (b - a) t is exact when t = 0, so a zero field reproduces the input.
        let lerp = |a: f32, b: f32, t: f32| if t == 0.0 { a } else { a + (b - a) * t };
        let c00 = lerp(at(x0, y0, z0), at(x1, y0, z0), fx);
        let c10 = lerp(at(x0, y1, z0), at(x1, y1, z0), fx);
        let c01 = lerp(at(x0, y0, z1), at(x1, y0, z1), fx);
        let c11 = lerp(at(x0, y1, z1), at(x1, y1, z1), fx);
        lerp(lerp(c00, c10, fy), lerp(c01, c11, fy), fz)
    }
}

/// Deform image, label and body with one random smooth displacement field.
/// All three must be on the same grid. Deterministic for a given `rng` state.
pub fn deform(
    hu: &Volume<f32>,
    label: &Mask,
    body: &Mask,
    config: &ElasticConfig,
    rng: &mut SplitMix64,
) -> Result<(Volume<f32>, Mask, Mask)> {
    let geometry = hu.geometry();
    if !label.geometry().same_grid(geometry) || !body.geometry().same_grid(geometry) {
        return Err(Error::param(
            "label",
            "image, label and body must share one grid to be deformed together",
        ));
    }
    let field = DisplacementField::random(geometry, config, rng)?;
    Ok(warp(hu, label, body, &field))
}

/// Resample the three volumes at `x + field(x)` (pull-back warp).
pub fn warp(
    hu: &Volume<f32>,
    label: &Mask,
    body: &Mask,
    field: &DisplacementField,
) -> (Volume<f32>, Mask, Mask) {
    let spacing = hu.geometry().spacing().map(|s| s as f32);
    let (h, l, b, _) = warp_by(hu, label, body, None, |i, j, k| {
        let d = field.at(i, j, k);
        [
            i as f32 + d[0] / spacing[0],
            j as f32 + d[1] / spacing[1],
            k as f32 + d[2] / spacing[2],
        ]
    });
    (h, l, b)
}

/// A scaling and rotation about the centre of the grid, in mm along the
/// voxel axes (axis 2 is head-foot on the prepared grid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Row-major 3x3 matrix taking an output offset from the centre (mm) to
    /// the source offset.
    pub matrix: [[f64; 3]; 3],
}

impl Affine {
    pub const IDENTITY: Affine = Affine { matrix: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] };

    /// Isotropic scale `s` (the output shows the anatomy `s` times larger),
    /// then rotations about axes x, y and z by the given angles (radians).
    pub fn scale_rotate(s: f64, [ax, ay, az]: [f64; 3]) -> Self {
        let rx = [[1.0, 0.0, 0.0], [0.0, ax.cos(), -ax.sin()], [0.0, ax.sin(), ax.cos()]];
        let ry = [[ay.cos(), 0.0, ay.sin()], [0.0, 1.0, 0.0], [-ay.sin(), 0.0, ay.cos()]];
        let rz = [[az.cos(), -az.sin(), 0.0], [az.sin(), az.cos(), 0.0], [0.0, 0.0, 1.0]];
        let mul = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
            std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
        };
        // Pull-back: a source offset is the output offset shrunk by s.
        let m = mul(rz, mul(ry, rx)).map(|row| row.map(|v| v / s));
        Affine { matrix: m }
    }
}

/// Resample the three volumes at `centre + A (x - centre) + field(x)`: one
/// interpolation for the affine part and the elastic part together.
pub fn warp_affine(
    hu: &Volume<f32>,
    label: &Mask,
    body: &Mask,
    affine: &Affine,
    field: Option<&DisplacementField>,
) -> (Volume<f32>, Mask, Mask) {
    let (h, l, b, _) = warp_affine_with(hu, label, body, None, affine, field);
    (h, l, b)
}

/// [`warp_affine`] carrying one more mask on the same grid (the training
/// sampler's hard examples) through the same interpolation.
pub fn warp_affine_with(
    hu: &Volume<f32>,
    label: &Mask,
    body: &Mask,
    extra: Option<&Mask>,
    affine: &Affine,
    field: Option<&DisplacementField>,
) -> (Volume<f32>, Mask, Mask, Option<Mask>) {
    let dims = hu.geometry().dims();
    let spacing = hu.geometry().spacing();
    let centre: [f64; 3] = std::array::from_fn(|a| (dims[a] as f64 - 1.0) / 2.0 * spacing[a]);
    let m = affine.matrix;
    warp_by(hu, label, body, extra, |i, j, k| {
        let q = [i as f64 * spacing[0] - centre[0], j as f64 * spacing[1] - centre[1], k as f64 * spacing[2] - centre[2]];
        let d = field.map_or([0.0f32; 3], |f| f.at(i, j, k));
        std::array::from_fn(|r| {
            let mm = centre[r] + m[r][0] * q[0] + m[r][1] * q[1] + m[r][2] * q[2] + f64::from(d[r]);
            (mm / spacing[r]) as f32
        })
    })
}

/// Pull-back resampling: output voxel (i, j, k) takes the trilinear value
/// (HU) or the thresholded trilinear value (masks) at voxel coordinates
/// `source(i, j, k)`, clamped to the grid.
fn warp_by(
    hu: &Volume<f32>,
    label: &Mask,
    body: &Mask,
    extra: Option<&Mask>,
    source: impl Fn(usize, usize, usize) -> [f32; 3] + Sync,
) -> (Volume<f32>, Mask, Mask, Option<Mask>) {
    let geometry = hu.geometry();
    let dims = geometry.dims();
    let [nx, ny, _] = dims;
    let plane = nx * ny;
    let (src_hu, src_label, src_body) = (hu.data(), label.data(), body.data());
    let src_extra = extra.map(Mask::data);
    let mut out_hu = vec![0.0f32; hu.len()];
    let mut out_label = vec![0u8; hu.len()];
    let mut out_body = vec![0u8; hu.len()];
    // Allocated empty when there is no extra mask: its chunks are then empty too.
    let mut out_extra = vec![0u8; if extra.is_some() { hu.len() } else { 0 }];
    let extra_chunk = if extra.is_some() { plane } else { 1 };
    let mut extra_chunks: Vec<&mut [u8]> = out_extra.chunks_mut(extra_chunk).collect();
    extra_chunks.resize_with(dims[2], || &mut []);
    out_hu
        .par_chunks_mut(plane)
        .zip(out_label.par_chunks_mut(plane))
        .zip(out_body.par_chunks_mut(plane))
        .zip(extra_chunks.into_par_iter())
        .enumerate()
        .for_each(|(k, (((h, l), b), e))| {
            let binary = |src: &[u8], c: &Corner| u8::from(c.sample_with(|q| f32::from(u8::from(src[q] != 0)), nx, plane) >= 0.5);
            for j in 0..ny {
                for i in 0..nx {
                    let c = Corner::new(source(i, j, k), dims);
                    let o = i + nx * j;
                    h[o] = c.sample(src_hu, nx, plane);
                    l[o] = binary(src_label, &c);
                    b[o] = binary(src_body, &c);
                    if let Some(src) = src_extra {
                        e[o] = binary(src, &c);
                    }
                }
            }
        });
    let g = geometry.clone();
    (
        Volume::new(g.clone(), out_hu).expect("same grid"),
        Volume::new(g.clone(), out_label).expect("same grid"),
        Volume::new(g.clone(), out_body).expect("same grid"),
        extra.map(|_| Volume::new(g, out_extra).expect("same grid")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_phantom::{generate, PhantomConfig};

    fn grid(dims: [usize; 3], spacing: f64) -> Geometry {
        Geometry::identity(dims, [spacing; 3]).unwrap()
    }

    /// A bright cube (200 HU, labelled) in a 0 HU body filling the grid.
    fn cube(dims: [usize; 3], lo: usize, hi: usize) -> (Volume<f32>, Mask, Mask) {
        let g = grid(dims, 2.0);
        let inside = |[i, j, k]: [usize; 3]| {
            (lo..hi).contains(&i) && (lo..hi).contains(&j) && (lo..hi).contains(&k)
        };
        let hu = Volume::from_fn(g.clone(), |p| if inside(p) { 200.0 } else { 0.0 });
        let label = Volume::from_fn(g.clone(), |p| u8::from(inside(p)));
        let body = Volume::filled(g, 1u8);
        (hu, label, body)
    }

    #[test]
    fn zero_magnitude_is_the_identity() {
        let p = generate(&PhantomConfig {
            dims: [48, 40, 24],
            spacing: [4.0, 4.0, 6.0],
            ..Default::default()
        });
        let hu = p.ct.map(|&v| f32::from(v));
        let body = p.ct.map(|&v| u8::from(v > -150));
        let config = ElasticConfig {
            control_spacing_mm: 20.0,
            magnitude_mm: 0.0,
        };
        let (h, l, b) = deform(&hu, &p.liver, &body, &config, &mut SplitMix64(5)).unwrap();
        assert_eq!(h.data(), hu.data());
        assert_eq!(l.data(), p.liver.data());
        assert_eq!(b.data(), body.data());
        assert!(h.geometry().same_grid(hu.geometry()));
    }

    #[test]
    fn field_is_bounded_smooth_and_not_trivial() {
        let g = grid([60, 50, 40], 1.5);
        let config = ElasticConfig {
            control_spacing_mm: 30.0,
            magnitude_mm: 4.0,
        };
        let field = DisplacementField::random(&g, &config, &mut SplitMix64(9)).unwrap();
        let bound = field.max_control_mm();
        assert!(bound > 4.0 && bound <= 12.0 + 1e-4, "max control {bound}");
        let step_vox = 30.0 / 1.5;
        // A cubic B-spline's slope is a convex combination of control
        // differences / step: |dd/dx| <= 2 max|c| / step per voxel.
        let slope_bound = 2.0 * bound / step_vox + 1e-4;
        let (mut max_abs, mut max_step, mut sum_sq, mut n) = (0.0f32, 0.0f32, 0.0f64, 0usize);
        let [nx, ny, nz] = g.dims();
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let d = field.at(i, j, k);
                    for v in d {
                        max_abs = max_abs.max(v.abs());
                        sum_sq += f64::from(v).powi(2);
                        n += 1;
                    }
                    for (di, dj, dk) in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
                        if i + di < nx && j + dj < ny && k + dk < nz {
                            let e = field.at(i + di, j + dj, k + dk);
                            for a in 0..3 {
                                max_step = max_step.max((e[a] - d[a]).abs());
                            }
                        }
                    }
                }
            }
        }
        assert!(
            max_abs <= bound + 1e-4,
            "field {max_abs} beyond the control bound {bound}"
        );
        assert!(
            max_step <= slope_bound,
            "neighbour difference {max_step} > {slope_bound}"
        );
        let rms = (sum_sq / n as f64).sqrt();
        assert!(
            (0.8..3.0).contains(&rms),
            "rms displacement {rms} mm for 4 mm control sd"
        );
        // Independent per-voxel noise of that rms would differ by ~rms*1.4 between
        // neighbours; the field varies far more slowly.
        assert!(
            f64::from(max_step) < 0.5 * rms,
            "max neighbour step {max_step} vs rms {rms}"
        );
    }

    #[test]
    fn image_and_label_move_together_and_volume_is_kept() {
        let (hu, label, body) = cube([64, 64, 64], 16, 48);
        let config = ElasticConfig {
            control_spacing_mm: 24.0,
            magnitude_mm: 6.0,
        };
        let (h, l, b) = deform(&hu, &label, &body, &config, &mut SplitMix64(21)).unwrap();
        let changed = l
            .data()
            .iter()
            .zip(label.data())
            .filter(|(x, y)| x != y)
            .count();
        assert!(
            changed > 500,
            "only {changed} label voxels changed: the deformation did nothing"
        );
        // Mean HU inside the deformed label stays that of the cube.
        let (sum, n) = h
            .data()
            .iter()
            .zip(l.data())
            .filter(|(_, m)| **m != 0)
            .fold((0.0f64, 0usize), |(s, n), (v, _)| {
                (s + f64::from(*v), n + 1)
            });
        let mean = sum / n as f64;
        assert!(mean > 180.0, "mean HU inside the deformed label {mean}");
        // Label and image were sampled at the same places: 200 * label-fraction
        // is the HU, so labelled voxels are exactly those at or above 100 HU.
        let disagree = h
            .data()
            .iter()
            .zip(l.data())
            .filter(|(v, m)| (**v >= 100.0) != (**m != 0))
            .count();
        assert!(
            disagree * 1000 < n,
            "{disagree} voxels where image and label disagree"
        );
        // An invertible smooth warp keeps the volume within a few percent.
        let ratio = l.count_foreground() as f64 / label.count_foreground() as f64;
        assert!((0.93..1.07).contains(&ratio), "volume ratio {ratio}");
        // The body filled the grid and the border is clamped: it still does.
        assert_eq!(b.count_foreground(), b.len());
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (hu, label, body) = cube([32, 32, 32], 8, 24);
        let config = ElasticConfig {
            control_spacing_mm: 16.0,
            magnitude_mm: 4.0,
        };
        let a = deform(&hu, &label, &body, &config, &mut SplitMix64(3)).unwrap();
        let b = deform(&hu, &label, &body, &config, &mut SplitMix64(3)).unwrap();
        let c = deform(&hu, &label, &body, &config, &mut SplitMix64(4)).unwrap();
        assert_eq!(a.0.data(), b.0.data());
        assert_eq!(a.1.data(), b.1.data());
        assert_ne!(a.0.data(), c.0.data());
    }

    #[test]
    fn bad_configs_and_grids_are_refused() {
        let (hu, label, body) = cube([16, 16, 16], 4, 12);
        let mut rng = SplitMix64(1);
        for (config, name) in [
            (
                ElasticConfig {
                    control_spacing_mm: 0.0,
                    magnitude_mm: 1.0,
                },
                "control_spacing_mm",
            ),
            (
                ElasticConfig {
                    control_spacing_mm: 1.0,
                    magnitude_mm: 1.0,
                },
                "control_spacing_mm",
            ),
            (
                ElasticConfig {
                    control_spacing_mm: 20.0,
                    magnitude_mm: f64::NAN,
                },
                "magnitude_mm",
            ),
            (
                ElasticConfig {
                    control_spacing_mm: 20.0,
                    magnitude_mm: -1.0,
                },
                "magnitude_mm",
            ),
        ] {
            let e = deform(&hu, &label, &body, &config, &mut rng).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        let other = Volume::filled(grid([16, 16, 15], 2.0), 0u8);
        assert!(deform(&hu, &other, &body, &ElasticConfig::default(), &mut rng).is_err());
    }

    #[test]
    fn augment_applies_it_to_image_and_label_together() {
        use crate::augment::{augment, AugmentConfig};
        use crate::{prepare, PreprocessConfig};
        let p = generate(&PhantomConfig {
            dims: [64, 48, 24],
            spacing: [4.0, 4.0, 6.0],
            noise_hu: 0.0,
            ..Default::default()
        });
        let prep = prepare(
            &p.ct,
            Some(&p.liver),
            &PreprocessConfig {
                spacing_mm: 4.0,
                median_radius: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let config = AugmentConfig {
            elastic: Some(ElasticConfig {
                control_spacing_mm: 40.0,
                magnitude_mm: 8.0,
            }),
            ..AugmentConfig::none()
        };
        let a = augment(&prep, &config, &mut SplitMix64(2)).unwrap();
        assert!(a.applied.elastic);
        let label = prep.label.as_ref().unwrap();
        let changed = a
            .label
            .data()
            .iter()
            .zip(label.data())
            .filter(|(x, y)| x != y)
            .count();
        assert!(changed > 50, "elastic changed only {changed} label voxels");
        assert_ne!(a.hu.data(), prep.hu.data());
        // HU under the deformed label is still liver HU (110 in the phantom).
        let mean_under = |hu: &Volume<f32>, m: &Mask| {
            let v: Vec<f64> = hu
                .data()
                .iter()
                .zip(m.data())
                .filter(|(_, l)| **l != 0)
                .map(|(h, _)| f64::from(*h))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let before = mean_under(&prep.hu, label);
        let aligned = mean_under(&a.hu, &a.label);
        assert!(
            (aligned - before).abs() < 5.0,
            "mean HU under the label: {before} before, {aligned} after"
        );
        let ratio = a.label.count_foreground() as f64 / label.count_foreground() as f64;
        assert!((0.85..1.15).contains(&ratio), "liver volume ratio {ratio}");
    }

    /// Timing on a typical prepared abdomen (250x200x150 at 1.4 mm):
    /// `cargo test -p liverseg-data --lib -- --ignored elastic_timing --nocapture`
    #[test]
    #[ignore]
    fn elastic_timing() {
        let g = grid([250, 200, 150], 1.4);
        let hu = Volume::from_fn(g.clone(), |[i, j, k]| ((i * 7 + j * 3 + k) % 300) as f32);
        let label = Volume::from_fn(g.clone(), |[i, j, k]| u8::from(i > 100 && j > 80 && k > 60));
        let body = Volume::filled(g, 1u8);
        // Process CPU time (all threads) from /proc: on a shared machine the
        // wall time says little.
        let cpu = || -> f64 {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            let f: Vec<f64> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0.0))
                .collect();
            f.get(11)
                .zip(f.get(12))
                .map_or(0.0, |(u, s)| (u + s) / 100.0)
        };
        let (t, c) = (std::time::Instant::now(), cpu());
        let out = deform(
            &hu,
            &label,
            &body,
            &ElasticConfig::default(),
            &mut SplitMix64(1),
        )
        .unwrap();
        eprintln!(
            "elastic 250x200x150: {:.3} s wall, {:.2} s CPU, {} threads",
            t.elapsed().as_secs_f64(),
            cpu() - c,
            rayon::current_num_threads()
        );
        assert_eq!(out.0.len(), hu.len());
    }
}
