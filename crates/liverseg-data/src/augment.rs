//! Training augmentation (METHOD.md): one HU shift per image drawn from
//! N(-40 HU, 40 HU) before normalisation (the paper: SIRT CTs are often less
//! enhanced than challenge data), flips along x and y with p = 0.5 each, and a
//! random elastic deformation of image and label together. Applied to whole
//! prepared volumes once per sub-epoch, as DeepMedic does when it loads cases,
//! so every patch sampled from a case shares its augmentation.
//!
//! For a training set of a handful of CTs, four more families (issue 16),
//! each off unless configured and each drawn from its own random stream so
//! switching one does not change the others' draws:
//! - `spatial`: isotropic scaling and rotations (mostly about the head-foot
//!   axis), folded into the elastic warp so the image is resampled once;
//! - `intensity`: HU scaling, contrast about soft tissue, gamma, Gaussian
//!   blur and noise;
//! - `thick_slices`: slabs of 3-10 mm averaged along z and interpolated back,
//!   as a 5 or 10 mm clinical CT looks once resampled to the network grid;
//! - `non_contrast`: the enhancement above soft tissue compressed towards it
//!   (liver ~110 -> ~60 HU, vessels, spleen and kidneys alike), so the model
//!   must find the liver by shape and context, not by brightness alone;
//! - `scan_range`: a scan that covers only part of the liver, as a
//!   z-range cut through it with air beyond (what the network's inputs hold
//!   past the end of a real scan), since the wide model found no liver in a
//!   60 mm slab (README's model card);
//! - `lesions`: darker or brighter ellipsoids (simulated tumours) painted
//!   into the liver, the label unchanged, so a tumour, at the liver's edge
//!   too, is learnt as liver: the reference masks (and SIRT's whole liver)
//!   include tumours, and the folds miss those at the edge (LiTS 117).

use liverseg_imgproc::filters::{flip_data, Axis};
use liverseg_volume::SplitMix64;
use liverseg_volume::{Mask, Volume};
use serde::{Deserialize, Serialize};

use crate::elastic::{warp_affine_with, Affine, DisplacementField, ElasticConfig};
use crate::{Prepared, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Mean and standard deviation of the per-image HU shift; `None` = off.
    pub hu_shift: Option<[f64; 2]>,
    /// Probability of a flip along voxel axis x (left-right).
    pub flip_x: f64,
    /// Probability of a flip along voxel axis y (anterior-posterior).
    pub flip_y: f64,
    /// Random elastic deformation; `None` = off.
    pub elastic: Option<ElasticConfig>,
    /// Random scaling and rotation; `None` = off.
    pub spatial: Option<SpatialConfig>,
    /// Random intensity changes; `None` = off.
    pub intensity: Option<IntensityConfig>,
    /// Simulated thick slices; `None` = off.
    pub thick_slices: Option<ThickSliceConfig>,
    /// Simulated non-contrast phase; `None` = off.
    pub non_contrast: Option<NonContrastConfig>,
    /// Simulated short scan range; `None` = off.
    pub scan_range: Option<ScanRangeConfig>,
    /// Simulated tumours inside the liver; `None` = off.
    pub lesions: Option<LesionConfig>,
}

impl Default for AugmentConfig {
    /// The paper's: HU shift, flips, elastic.
    fn default() -> Self {
        Self {
            hu_shift: Some([-40.0, 40.0]),
            flip_x: 0.5,
            flip_y: 0.5,
            elastic: Some(ElasticConfig::default()),
            spatial: None,
            intensity: None,
            thick_slices: None,
            non_contrast: None,
            scan_range: None,
            lesions: None,
        }
    }
}

impl AugmentConfig {
    /// No augmentation at all (validation, tests).
    pub fn none() -> Self {
        Self { hu_shift: None, flip_x: 0.0, flip_y: 0.0, elastic: None, spatial: None, intensity: None, thick_slices: None, non_contrast: None, scan_range: None, lesions: None }
    }

    /// The paper's augmentation and every family for small data sets, at
    /// their default strengths.
    pub fn small_data() -> Self {
        Self {
            spatial: Some(SpatialConfig::default()),
            intensity: Some(IntensityConfig::default()),
            thick_slices: Some(ThickSliceConfig::default()),
            non_contrast: Some(NonContrastConfig::default()),
            ..Self::default()
        }
    }

    fn any_extra(&self) -> bool {
        self.spatial.is_some() || self.intensity.is_some() || self.thick_slices.is_some() || self.non_contrast.is_some() || self.scan_range.is_some() || self.lesions.is_some()
    }
}

/// Scaling by `1 + U(-scale, scale)` and rotations by `U(-a, a)` about the
/// head-foot axis (`rotate_z_deg`) and the two others (`rotate_xy_deg`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpatialConfig {
    pub probability: f64,
    pub scale: f64,
    pub rotate_z_deg: f64,
    pub rotate_xy_deg: f64,
}

impl Default for SpatialConfig {
    fn default() -> Self {
        Self { probability: 0.8, scale: 0.15, rotate_z_deg: 15.0, rotate_xy_deg: 4.0 }
    }
}

/// Each applied with `probability`: HU times `1 + U(-scale, scale)`;
/// contrast about 40 HU times `1 + U(-contrast, contrast)`; gamma
/// `exp(U(-gamma, gamma))` on [-200, 300] HU; Gaussian blur of sigma
/// `U(0, blur_mm)`; Gaussian noise of sd `U(0, noise_hu)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntensityConfig {
    pub probability: f64,
    pub scale: f64,
    pub contrast: f64,
    pub gamma: f64,
    pub blur_mm: f64,
    pub noise_hu: f64,
}

impl Default for IntensityConfig {
    fn default() -> Self {
        Self { probability: 0.5, scale: 0.1, contrast: 0.2, gamma: 0.3, blur_mm: 1.5, noise_hu: 12.0 }
    }
}

/// With `probability`, slabs of `U(thickness_mm)` averaged along z.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThickSliceConfig {
    pub probability: f64,
    pub thickness_mm: [f64; 2],
}

impl Default for ThickSliceConfig {
    fn default() -> Self {
        Self { probability: 0.3, thickness_mm: [3.0, 10.0] }
    }
}

/// With `probability`, HU above `soft_tissue_hu` keep only `U(keep)` of
/// their excess (tapering back to unchanged between 300 and 500 HU, so bone
/// stays bone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NonContrastConfig {
    pub probability: f64,
    pub soft_tissue_hu: f64,
    pub keep: [f64; 2],
}

impl Default for NonContrastConfig {
    fn default() -> Self {
        Self { probability: 0.2, soft_tissue_hu: 45.0, keep: [0.15, 0.5] }
    }
}

/// With `probability`, only a z-range of the image is kept: its length
/// uniform between `min_length_mm` and the whole image, its position
/// uniform among those that keep at least one slice of the liver. Outside
/// it the image becomes air (-1024 HU) and neither liver nor body, so no
/// patch is centred there, and patches near the cut see what the network
/// sees past the end of a real scan. Not in [`AugmentConfig::small_data`]:
/// no recipe has measured it yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanRangeConfig {
    pub probability: f64,
    pub min_length_mm: f64,
}

impl Default for ScanRangeConfig {
    fn default() -> Self {
        Self { probability: 0.2, min_length_mm: 60.0 }
    }
}

/// With `probability`, 1 to `max_count` ellipsoids are painted into the
/// liver: each centred on a liver voxel drawn uniformly (so many reach the
/// liver's edge), semi-axes `U(radius_mm)` times `U(0.7, 1.3)` per axis,
/// clipped to the liver (the label does not change). Inside, the HU become
/// the liver's median plus `U(darker_hu)` (hypodense, the common case; with
/// probability `brighter_share` plus `U(brighter_hu)` instead), keeping
/// `texture` of the voxel's own deviation from the median, blended over the
/// outer 2 mm. Applied after the spatial warp, before thick slices and the
/// intensity family, which then act on the lesions too. Not in
/// [`AugmentConfig::small_data`]: measured on two leave-one-out folds and
/// not adopted (`models/lesions/README.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LesionConfig {
    pub probability: f64,
    pub max_count: usize,
    pub radius_mm: [f64; 2],
    pub darker_hu: [f64; 2],
    pub brighter_share: f64,
    pub brighter_hu: [f64; 2],
    pub texture: f64,
}

impl Default for LesionConfig {
    fn default() -> Self {
        Self { probability: 0.3, max_count: 4, radius_mm: [5.0, 30.0], darker_hu: [-90.0, -20.0], brighter_share: 0.2, brighter_hu: [15.0, 50.0], texture: 0.3 }
    }
}

/// What was applied to one image (logged, and checked by tests).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Applied {
    pub hu_shift: f32,
    pub flipped_x: bool,
    pub flipped_y: bool,
    pub elastic: bool,
    /// Scale factor and rotations (degrees about x, y, z) when applied.
    pub spatial: Option<(f32, [f32; 3])>,
    /// Slab thickness in mm when applied.
    pub thick_slices_mm: Option<f32>,
    /// Share of the enhancement kept when a non-contrast phase was simulated.
    pub non_contrast_keep: Option<f32>,
    pub intensity: bool,
    /// The slices kept (first, one past the last) when a short scan was
    /// simulated.
    pub scan_range: Option<[usize; 2]>,
    /// How many simulated lesions were painted in.
    pub lesions: usize,
}

/// One augmented training image: HU (shifted), reference and body on the
/// prepared grid.
pub struct Augmented {
    pub hu: Volume<f32>,
    pub label: Mask,
    pub body: Mask,
    /// The hard-example mask given to [`augment_with`], moved with the label.
    pub hard: Option<Mask>,
    pub applied: Applied,
}

/// Augment a prepared training case. The label is required.
pub fn augment(prepared: &Prepared, config: &AugmentConfig, rng: &mut SplitMix64) -> Result<Augmented> {
    augment_with(prepared, None, config, rng)
}

/// [`augment`], moving `hard` (a mask on the prepared grid: where the current
/// model errs) with the label through the flips and the spatial warp, so the
/// sampler can centre patches on it in the augmented image. The random draws
/// are the same with and without it.
pub fn augment_with(prepared: &Prepared, hard: Option<&Mask>, config: &AugmentConfig, rng: &mut SplitMix64) -> Result<Augmented> {
    let label = prepared.label.as_ref().ok_or_else(|| crate::Error::param("label", "a training case needs a reference mask"))?;
    if let Some(h) = hard {
        if !h.geometry().same_grid(prepared.hu.geometry()) {
            return Err(crate::Error::param("hard examples", "the mask is not on the prepared grid"));
        }
    }
    let mut applied = Applied::default();
    let (mut hu, mut label, mut body) = (prepared.hu.clone(), label.clone(), prepared.body.clone());
    let mut hard = hard.cloned();
    // The new families draw from their own stream, taken only when one is on,
    // so the paper's augmentation repeats its earlier draws exactly.
    let base = config.any_extra().then(|| rng.next_u64());
    let stream = |family: u64| base.map(|b| SplitMix64(b ^ family.wrapping_mul(0xD1B5_4A32_D192_ED03)));
    if let (Some(nc), Some(r)) = (&config.non_contrast, stream(1).as_mut()) {
        let (go, u) = (r.uniform() < nc.probability, r.uniform());
        if go {
            let keep = nc.keep[0] + (nc.keep[1] - nc.keep[0]) * u;
            simulate_non_contrast(&mut hu, nc.soft_tissue_hu as f32, keep as f32);
            applied.non_contrast_keep = Some(keep as f32);
        }
    }
    if let Some([mean, sd]) = config.hu_shift {
        applied.hu_shift = (mean + sd * rng.normal()) as f32;
        let shift = applied.hu_shift;
        hu.data_mut().iter_mut().for_each(|v| *v += shift);
    }
    // Draw every random number in a fixed order, whatever is switched off, so one
    // switch does not change the others' draws under the same seed.
    let (fx, fy) = (rng.uniform() < config.flip_x, rng.uniform() < config.flip_y);
    for (flip, axis) in [(fx, Axis::X), (fy, Axis::Y)] {
        if flip {
            hu = flip_data(&hu, axis);
            label = flip_data(&label, axis);
            body = flip_data(&body, axis);
            hard = hard.map(|h| flip_data(&h, axis));
        }
    }
    applied.flipped_x = fx;
    applied.flipped_y = fy;
    let mut elastic_rng = SplitMix64(rng.next_u64());
    let field = match &config.elastic {
        Some(elastic) => Some(DisplacementField::random(hu.geometry(), elastic, &mut elastic_rng)?),
        None => None,
    };
    let mut affine = Affine::IDENTITY;
    if let (Some(sp), Some(r)) = (&config.spatial, stream(2).as_mut()) {
        let go = r.uniform() < sp.probability;
        let mut sym = |a: f64| a * (2.0 * r.uniform() - 1.0);
        let (s, ax, ay, az) = (1.0 + sym(sp.scale), sym(sp.rotate_xy_deg), sym(sp.rotate_xy_deg), sym(sp.rotate_z_deg));
        if go {
            affine = Affine::scale_rotate(s, [ax, ay, az].map(f64::to_radians));
            applied.spatial = Some((s as f32, [ax as f32, ay as f32, az as f32]));
        }
    }
    if field.is_some() || applied.spatial.is_some() {
        (hu, label, body, hard) = warp_affine_with(&hu, &label, &body, hard.as_ref(), &affine, field.as_ref());
        applied.elastic = field.is_some();
    }
    if let (Some(lc), Some(r)) = (&config.lesions, stream(6).as_mut()) {
        let (go, u_count, seed) = (r.uniform() < lc.probability, r.uniform(), r.next_u64());
        if go {
            let count = 1 + ((u_count * lc.max_count.max(1) as f64).floor() as usize).min(lc.max_count.max(1) - 1);
            applied.lesions = paint_lesions(&mut hu, &label, lc, count, &mut SplitMix64(seed));
        }
    }
    if let (Some(ts), Some(r)) = (&config.thick_slices, stream(3).as_mut()) {
        let (go, u, phase) = (r.uniform() < ts.probability, r.uniform(), r.uniform());
        if go {
            let t = ts.thickness_mm[0] + (ts.thickness_mm[1] - ts.thickness_mm[0]) * u;
            hu = thick_slices(&hu, t, phase);
            applied.thick_slices_mm = Some(t as f32);
        }
    }
    if let (Some(ic), Some(r)) = (&config.intensity, stream(4).as_mut()) {
        let mut draw = |p: f64, a: f64| -> Option<f64> {
            let (go, u) = (r.uniform() < p, r.uniform());
            go.then_some(a * u)
        };
        let p = ic.probability;
        let scale = draw(p, 2.0 * ic.scale).map(|v| 1.0 - ic.scale + v);
        let contrast = draw(p, 2.0 * ic.contrast).map(|v| 1.0 - ic.contrast + v);
        let gamma = draw(p, 2.0 * ic.gamma).map(|v| (v - ic.gamma).exp());
        let blur = draw(p, ic.blur_mm);
        let noise = draw(p, ic.noise_hu);
        let noise_seed = r.next_u64();
        applied.intensity = scale.is_some() || contrast.is_some() || gamma.is_some() || blur.is_some() || noise.is_some();
        hu.data_mut().iter_mut().for_each(|v| {
            let mut x = f64::from(*v);
            if let Some(s) = scale {
                x *= s;
            }
            if let Some(c) = contrast {
                x = 40.0 + (x - 40.0) * c;
            }
            if let Some(g) = gamma {
                if (-200.0..300.0).contains(&x) {
                    x = -200.0 + 500.0 * ((x + 200.0) / 500.0).powf(g);
                }
            }
            *v = x as f32;
        });
        if let Some(sigma) = blur {
            hu = liverseg_imgproc::filters::gaussian_blur(&hu, sigma)?;
        }
        if let Some(sd) = noise {
            add_noise(&mut hu, sd as f32, noise_seed);
        }
    }
    if let (Some(sr), Some(r)) = (&config.scan_range, stream(5).as_mut()) {
        let (go, u_len, u_pos) = (r.uniform() < sr.probability, r.uniform(), r.uniform());
        if let (true, Some(range)) = (go, scan_range(&label, sr.min_length_mm, u_len, u_pos)) {
            keep_slices(&mut hu, &mut label, &mut body, hard.as_mut(), range);
            applied.scan_range = Some(range);
        }
    }
    Ok(Augmented { hu, label, body, hard, applied })
}

/// The slices `[first, end)` a simulated short scan keeps: length
/// `min_length_mm` (at least one slice) plus `u_len` of the rest of the
/// image, placed at `u_pos` of the positions that keep a liver slice.
/// `None` when the label has no liver.
fn scan_range(label: &Mask, min_length_mm: f64, u_len: f64, u_pos: f64) -> Option<[usize; 2]> {
    let [nx, ny, nz] = label.geometry().dims();
    let plane = nx * ny;
    let has_liver = |z: usize| label.data()[z * plane..(z + 1) * plane].iter().any(|&v| v != 0);
    let (lo, hi) = ((0..nz).find(|&z| has_liver(z))?, (0..nz).rev().find(|&z| has_liver(z))?);
    let min_len = ((min_length_mm / label.geometry().spacing()[2]).round() as usize).clamp(1, nz);
    let len = (min_len + (u_len * (nz - min_len) as f64).floor() as usize).min(nz);
    // Starts that keep slice lo..=hi partly: first <= hi and first + len > lo.
    let (a, b) = ((lo + 1).saturating_sub(len), hi.min(nz - len));
    let first = a + ((u_pos * (b - a + 1) as f64).floor() as usize).min(b - a);
    Some([first, first + len])
}

/// Air, no liver and no body outside slices `[first, end)`.
fn keep_slices(hu: &mut Volume<f32>, label: &mut Mask, body: &mut Mask, hard: Option<&mut Mask>, [first, end]: [usize; 2]) {
    let [nx, ny, _] = hu.geometry().dims();
    let plane = nx * ny;
    let outside = |data: &mut [u8]| {
        data[..first * plane].fill(0);
        data[end * plane..].fill(0);
    };
    outside(label.data_mut());
    outside(body.data_mut());
    if let Some(h) = hard {
        outside(h.data_mut());
    }
    let data = hu.data_mut();
    data[..first * plane].fill(-1024.0);
    data[end * plane..].fill(-1024.0);
}

/// Paint `count` lesions (see [`LesionConfig`]) into `hu` inside `label`;
/// returns how many were painted (0 when the label is empty).
fn paint_lesions(hu: &mut Volume<f32>, label: &Mask, lc: &LesionConfig, count: usize, r: &mut SplitMix64) -> usize {
    let liver: Vec<usize> = label.data().iter().enumerate().filter(|(_, &v)| v != 0).map(|(o, _)| o).collect();
    if liver.is_empty() {
        return 0;
    }
    let mut values: Vec<f32> = liver.iter().map(|&o| hu.data()[o]).collect();
    let mid = values.len() / 2;
    let median = *values.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1;
    let g = hu.geometry().clone();
    let dims = g.dims();
    let sp = g.spacing();
    let between = |r: &mut SplitMix64, [a, b]: [f64; 2]| a + (b - a) * r.uniform();
    for _ in 0..count {
        let centre = g.index_of(liver[r.below(liver.len())]);
        let radius = between(r, lc.radius_mm);
        let axes: [f64; 3] = std::array::from_fn(|_| radius * between(r, [0.7, 1.3]));
        let delta = if r.uniform() < lc.brighter_share { between(r, lc.brighter_hu) } else { between(r, lc.darker_hu) };
        let target = f64::from(median) + delta;
        let texture = lc.texture as f32;
        // Voxel box around the centre, clipped to the grid.
        let span: [usize; 3] = std::array::from_fn(|a| (axes[a] / sp[a]).ceil() as usize + 1);
        let lo: [usize; 3] = std::array::from_fn(|a| centre[a].saturating_sub(span[a]));
        let hi: [usize; 3] = std::array::from_fn(|a| (centre[a] + span[a] + 1).min(dims[a]));
        let rim_mm = 2.0f64;
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                for i in lo[0]..hi[0] {
                    let o = g.offset(i, j, k);
                    if label.data()[o] == 0 {
                        continue;
                    }
                    let d = [i, j, k];
                    // Normalised radius: 1 on the ellipsoid's surface.
                    let q = (0..3).map(|a| ((d[a] as f64 - centre[a] as f64) * sp[a] / axes[a]).powi(2)).sum::<f64>().sqrt();
                    if q >= 1.0 {
                        continue;
                    }
                    let depth_mm = (1.0 - q) * radius;
                    let w = (depth_mm / rim_mm).min(1.0) as f32;
                    let v = hu.data()[o];
                    let lesion = target as f32 + texture * (v - median);
                    hu.data_mut()[o] = v + w * (lesion - v);
                }
            }
        }
    }
    count
}

/// Compress the enhancement above `soft` HU to `keep` of itself, tapering
/// back to the identity between 300 and 500 HU.
fn simulate_non_contrast(hu: &mut Volume<f32>, soft: f32, keep: f32) {
    hu.data_mut().iter_mut().for_each(|v| {
        let x = *v;
        if x > soft && x < 500.0 {
            let compressed = soft + (x - soft) * keep;
            let w = ((x - 300.0) / 200.0).clamp(0.0, 1.0);
            *v = compressed * (1.0 - w) + x * w;
        }
    });
}

/// Average along z over slabs of `thickness_mm` (slab edges shifted by
/// `phase` of a slab), then interpolate linearly between slab centres back
/// onto every slice: what a thick-slice CT looks like after resampling.
pub fn thick_slices(hu: &Volume<f32>, thickness_mm: f64, phase: f64) -> Volume<f32> {
    let [nx, ny, nz] = hu.geometry().dims();
    let w = (thickness_mm / hu.geometry().spacing()[2]).max(1.0);
    let plane = nx * ny;
    let src = hu.data();
    // Slab n covers z in [start + n w, start + (n+1) w).
    let start = -phase * w;
    let slabs = ((nz as f64 - start) / w).ceil() as usize;
    let mut means = vec![0.0f32; slabs * plane];
    let mut counts = vec![0u32; slabs];
    for z in 0..nz {
        let n = (((z as f64 + 0.5) - start) / w).floor().max(0.0) as usize;
        let n = n.min(slabs - 1);
        counts[n] += 1;
        let dst = &mut means[n * plane..(n + 1) * plane];
        dst.iter_mut().zip(&src[z * plane..(z + 1) * plane]).for_each(|(m, v)| *m += v);
    }
    for (n, &c) in counts.iter().enumerate() {
        if c > 0 {
            means[n * plane..(n + 1) * plane].iter_mut().for_each(|m| *m /= c as f32);
        }
    }
    // Slab centres with data, in z voxel units.
    let centres: Vec<(usize, f64)> = (0..slabs).filter(|&n| counts[n] > 0).map(|n| (n, start + (n as f64 + 0.5) * w - 0.5)).collect();
    let mut out = vec![0.0f32; src.len()];
    for z in 0..nz {
        let zf = z as f64;
        let hi = centres.iter().position(|&(_, c)| c >= zf).unwrap_or(centres.len() - 1);
        let lo = hi.saturating_sub(1);
        let ((na, ca), (nb, cb)) = (centres[lo], centres[hi]);
        let t = if cb > ca { ((zf - ca) / (cb - ca)).clamp(0.0, 1.0) as f32 } else { 0.0 };
        let (a, b) = (&means[na * plane..(na + 1) * plane], &means[nb * plane..(nb + 1) * plane]);
        out[z * plane..(z + 1) * plane].iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x + (y - x) * t);
    }
    Volume::new(hu.geometry().clone(), out).expect("same grid")
}

/// Gaussian noise of standard deviation `sd` HU, one stream per slice
/// (seeded from `seed`), so the result does not depend on the thread count.
fn add_noise(hu: &mut Volume<f32>, sd: f32, seed: u64) {
    use rayon::prelude::*;
    let [nx, ny, _] = hu.geometry().dims();
    hu.data_mut().par_chunks_mut(nx * ny).enumerate().for_each(|(z, slice)| {
        let mut r = SplitMix64(seed ^ (z as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        slice.iter_mut().for_each(|v| *v += sd * r.normal() as f32);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{prepare, PreprocessConfig};
    use liverseg_phantom::{generate, PhantomConfig};
    use liverseg_volume::Geometry;

    fn prepared() -> Prepared {
        let p = generate(&PhantomConfig { dims: [64, 48, 24], spacing: [4.0, 4.0, 6.0], ..Default::default() });
        prepare(&p.ct, Some(&p.liver), &PreprocessConfig { spacing_mm: 4.0, ..Default::default() }).unwrap()
    }

    #[test]
    fn hu_shift_follows_the_papers_distribution() {
        let prep = prepared();
        let config = AugmentConfig { flip_x: 0.0, flip_y: 0.0, elastic: None, ..Default::default() };
        let mut rng = SplitMix64(7);
        let shifts: Vec<f64> = (0..400).map(|_| f64::from(augment(&prep, &config, &mut rng).unwrap().applied.hu_shift)).collect();
        let mean = shifts.iter().sum::<f64>() / shifts.len() as f64;
        let sd = (shifts.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (shifts.len() - 1) as f64).sqrt();
        assert!((mean + 40.0).abs() < 6.0, "mean {mean}");
        assert!((sd - 40.0).abs() < 5.0, "sd {sd}");
        // Every voxel moved by the same value; labels untouched.
        let a = augment(&prep, &config, &mut SplitMix64(3)).unwrap();
        let s = a.applied.hu_shift;
        assert!(a.hu.data().iter().zip(prep.hu.data()).all(|(x, y)| (x - y - s).abs() < 1e-3));
        assert_eq!(a.label.data(), prep.label.as_ref().unwrap().data());
    }

    #[test]
    fn flips_move_image_and_label_together_at_the_configured_rate() {
        let prep = prepared();
        let config = AugmentConfig { hu_shift: None, elastic: None, flip_x: 0.5, flip_y: 0.5, ..AugmentConfig::none() };
        let mut rng = SplitMix64(11);
        let (mut nx, mut ny) = (0, 0);
        for _ in 0..200 {
            let a = augment(&prep, &config, &mut rng).unwrap();
            nx += usize::from(a.applied.flipped_x);
            ny += usize::from(a.applied.flipped_y);
            let mut want_hu = prep.hu.clone();
            let mut want_label = prep.label.clone().unwrap();
            if a.applied.flipped_x {
                want_hu = flip_data(&want_hu, Axis::X);
                want_label = flip_data(&want_label, Axis::X);
            }
            if a.applied.flipped_y {
                want_hu = flip_data(&want_hu, Axis::Y);
                want_label = flip_data(&want_label, Axis::Y);
            }
            assert_eq!(a.hu.data(), want_hu.data());
            assert_eq!(a.label.data(), want_label.data());
        }
        assert!((70..130).contains(&nx) && (70..130).contains(&ny), "{nx} x flips, {ny} y flips of 200");
        // The phantom is not left-right symmetric, so a flip really changed it.
        assert_ne!(flip_data(&prep.hu, Axis::X).data(), prep.hu.data());
    }

    #[test]
    fn the_hard_example_mask_moves_with_the_label_and_changes_no_draw() {
        let prep = prepared();
        let label = prep.label.clone().unwrap();
        let config = AugmentConfig::small_data();
        for seed in 0..6 {
            let plain = augment(&prep, &config, &mut SplitMix64(seed)).unwrap();
            let with = augment_with(&prep, Some(&label), &config, &mut SplitMix64(seed)).unwrap();
            // A mask equal to the label comes out equal to the augmented label,
            // through flips, scaling, rotation and elastic deformation alike.
            assert_eq!(with.hard.as_ref().unwrap().data(), with.label.data(), "seed {seed}: {:?}", with.applied);
            assert_eq!((with.hu.data(), with.label.data()), (plain.hu.data(), plain.label.data()));
            assert_eq!(with.applied, plain.applied);
            assert!(plain.hard.is_none());
        }
        let other = Volume::filled(Geometry::identity([3, 3, 3], [1.0; 3]).unwrap(), 1u8);
        assert!(augment_with(&prep, Some(&other), &config, &mut SplitMix64(0)).is_err());
    }

    #[test]
    fn nothing_switched_on_changes_nothing() {
        let prep = prepared();
        let a = augment(&prep, &AugmentConfig::none(), &mut SplitMix64(1)).unwrap();
        assert_eq!(a.hu.data(), prep.hu.data());
        assert_eq!(a.applied, Applied::default());
    }

    fn only(f: impl FnOnce(&mut AugmentConfig)) -> AugmentConfig {
        let mut c = AugmentConfig::none();
        f(&mut c);
        c
    }

    #[test]
    fn scaling_grows_the_liver_by_the_cube_of_the_factor() {
        let prep = prepared();
        let before = prep.label.as_ref().unwrap().count_foreground() as f64;
        let config = only(|c| c.spatial = Some(SpatialConfig { probability: 1.0, scale: 0.15, rotate_z_deg: 0.0, rotate_xy_deg: 0.0 }));
        let mut rng = SplitMix64(21);
        for _ in 0..5 {
            let a = augment(&prep, &config, &mut rng).unwrap();
            let (s, _) = a.applied.spatial.unwrap();
            let ratio = a.label.count_foreground() as f64 / before;
            let want = f64::from(s).powi(3);
            assert!((ratio / want - 1.0).abs() < 0.12, "scale {s}: volume ratio {ratio:.3}, expected {want:.3}");
        }
    }

    #[test]
    fn a_rotation_about_z_keeps_the_liver_volume_and_moves_it() {
        let prep = prepared();
        let label = prep.label.as_ref().unwrap();
        let config = only(|c| c.spatial = Some(SpatialConfig { probability: 1.0, scale: 0.0, rotate_z_deg: 15.0, rotate_xy_deg: 0.0 }));
        let a = augment(&prep, &config, &mut SplitMix64(4)).unwrap();
        let angle = a.applied.spatial.unwrap().1[2];
        assert!(angle.abs() > 1.0, "drawn angle {angle}");
        let ratio = a.label.count_foreground() as f64 / label.count_foreground() as f64;
        assert!((ratio - 1.0).abs() < 0.08, "volume ratio {ratio}");
        assert_ne!(a.label.data(), label.data());
    }

    #[test]
    fn non_contrast_lowers_the_liver_towards_soft_tissue_and_keeps_bone() {
        let prep = prepared();
        let label = prep.label.as_ref().unwrap();
        let mean_liver = |hu: &Volume<f32>| {
            let v: Vec<f64> = hu.data().iter().zip(label.data()).filter(|(_, &l)| l != 0).map(|(&h, _)| f64::from(h)).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let config = only(|c| c.non_contrast = Some(NonContrastConfig { probability: 1.0, soft_tissue_hu: 45.0, keep: [0.3, 0.3] }));
        let a = augment(&prep, &config, &mut SplitMix64(2)).unwrap();
        let (before, after) = (mean_liver(&prep.hu), mean_liver(&a.hu));
        assert!(before > 90.0, "phantom liver {before} HU");
        let want = 45.0 + (before - 45.0) * 0.3;
        assert!((after - want).abs() < 8.0, "liver {before:.0} -> {after:.0} HU, expected about {want:.0}");
        for (&x, &y) in prep.hu.data().iter().zip(a.hu.data()) {
            if x >= 500.0 || x <= 45.0 {
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn thick_slices_keep_a_constant_and_spread_a_thin_bright_slab() {
        let g = liverseg_volume::Geometry::identity([3, 2, 40], [1.0, 1.0, 1.0]).unwrap();
        let flat = Volume::filled(g.clone(), 30.0f32);
        assert!(thick_slices(&flat, 6.0, 0.3).data().iter().all(|&v| (v - 30.0).abs() < 1e-4));
        let spike = Volume::from_fn(g, |[_, _, k]| if k == 20 { 600.0f32 } else { 0.0 });
        let out = thick_slices(&spike, 8.0, 0.0);
        let profile: Vec<f32> = (0..40).map(|k| out.data()[k * 6]).collect();
        // The slice's signal is shared over about 8 mm, at an eighth of its height.
        assert!(profile[20] < 150.0 && profile[20] > 40.0, "{profile:?}");
        let spread = profile.iter().filter(|&&v| v > 1.0).count();
        assert!((8..=17).contains(&spread), "{spread} slices touched: {profile:?}");
        let total: f32 = profile.iter().sum();
        assert!((total - 600.0).abs() < 80.0, "signal {total}");
    }

    #[test]
    fn intensity_noise_has_the_drawn_spread_and_repeats_for_a_seed() {
        let prep = prepared();
        let config = only(|c| c.intensity = Some(IntensityConfig { probability: 1.0, scale: 0.0, contrast: 0.0, gamma: 0.0, blur_mm: 0.0, noise_hu: 20.0 }));
        let a = augment(&prep, &config, &mut SplitMix64(9)).unwrap();
        let b = augment(&prep, &config, &mut SplitMix64(9)).unwrap();
        assert_eq!(a.hu.data(), b.hu.data());
        let d: Vec<f64> = a.hu.data().iter().zip(prep.hu.data()).map(|(x, y)| f64::from(x - y)).collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let sd = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
        assert!(mean.abs() < 0.5 && sd > 0.0 && sd <= 20.0, "noise mean {mean} sd {sd}");
    }

    /// A simulated short scan keeps a z-range with liver in it, of varying
    /// length, and leaves air and no label or body outside it.
    #[test]
    fn a_short_scan_keeps_a_range_through_the_liver_and_air_beyond() {
        let prep = prepared();
        let nz = prep.hu.geometry().dims()[2];
        let plane = prep.hu.data().len() / nz;
        let config = AugmentConfig { scan_range: Some(ScanRangeConfig { probability: 1.0, min_length_mm: 24.0 }), ..AugmentConfig::none() };
        let mut lengths = Vec::new();
        for seed in 0..20 {
            let a = augment(&prep, &config, &mut SplitMix64(seed)).unwrap();
            let [first, end] = a.applied.scan_range.expect("applied with probability 1");
            assert!(end - first >= 6 && end <= nz, "{first}..{end} of {nz}");
            lengths.push(end - first);
            let slice = |v: &[u8], z: usize| v[z * plane..(z + 1) * plane].iter().any(|&x| x != 0);
            assert!((first..end).any(|z| slice(a.label.data(), z)), "no liver kept in {first}..{end}");
            for z in (0..first).chain(end..nz) {
                assert!(!slice(a.label.data(), z) && !slice(a.body.data(), z), "slice {z} outside {first}..{end} still labelled");
                assert!(a.hu.data()[z * plane..(z + 1) * plane].iter().all(|&v| v == -1024.0));
            }
            // Inside the range the image is the prepared one (nothing else is on).
            assert_eq!(&a.hu.data()[first * plane..end * plane], &prep.hu.data()[first * plane..end * plane]);
        }
        assert!(lengths.iter().any(|&l| l < nz) && lengths.iter().min() != lengths.iter().max(), "{lengths:?}");
        let off = AugmentConfig { scan_range: Some(ScanRangeConfig { probability: 0.0, ..Default::default() }), ..AugmentConfig::none() };
        assert_eq!(augment(&prep, &off, &mut SplitMix64(1)).unwrap().applied.scan_range, None);
    }

    /// Turning one new family on or off leaves the paper's draws (HU shift,
    /// flips) and the other families' draws as they were.
    #[test]
    fn families_draw_from_their_own_streams() {
        let prep = prepared();
        let with = |f: &dyn Fn(&mut AugmentConfig)| {
            let mut c = AugmentConfig { elastic: None, ..AugmentConfig::default() };
            c.thick_slices = Some(ThickSliceConfig { probability: 1.0, ..Default::default() });
            f(&mut c);
            augment(&prep, &c, &mut SplitMix64(33)).unwrap().applied
        };
        let a = with(&|_| {});
        let b = with(&|c| c.spatial = Some(SpatialConfig { probability: 1.0, ..Default::default() }));
        assert_eq!((a.hu_shift, a.flipped_x, a.flipped_y, a.thick_slices_mm), (b.hu_shift, b.flipped_x, b.flipped_y, b.thick_slices_mm));
        assert!(a.spatial.is_none() && b.spatial.is_some());
    }

    #[test]
    fn lesions_change_the_liver_only_and_keep_the_label() {
        let prep = prepared();
        let label = prep.label.clone().unwrap();
        let liver_median = |hu: &Volume<f32>| {
            let mut v: Vec<f32> = hu.data().iter().zip(label.data()).filter(|(_, &l)| l != 0).map(|(&h, _)| h).collect();
            let mid = v.len() / 2;
            *v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1
        };
        let median = liver_median(&prep.hu);
        let lesions = LesionConfig { probability: 1.0, max_count: 3, radius_mm: [8.0, 16.0], brighter_share: 0.0, ..Default::default() };
        let config = only(|c| c.lesions = Some(lesions.clone()));
        let mut counts = Vec::new();
        for seed in 0..12 {
            let a = augment(&prep, &config, &mut SplitMix64(seed)).unwrap();
            counts.push(a.applied.lesions);
            assert_eq!(a.label.data(), label.data(), "the label changed");
            let mut changed = 0;
            for ((&after, &before), &l) in a.hu.data().iter().zip(prep.hu.data()).zip(label.data()) {
                if after != before {
                    assert!(l != 0, "a voxel outside the liver changed");
                    changed += 1;
                    // Darker lesions pull a voxel towards the median minus 20-90 HU
                    // plus 0.3 of its own deviation: never above that nor above itself.
                    let ceiling = before.max(median - 20.0 + 0.3 * (before - median));
                    assert!(after <= ceiling + 1e-3, "{before} -> {after} (median {median})");
                }
            }
            assert!(changed > 0, "seed {seed}: nothing painted");
            assert!(liver_median(&a.hu) <= median, "seed {seed}");
        }
        assert!(counts.iter().all(|&c| (1..=3).contains(&c)) && counts.iter().min() != counts.iter().max(), "{counts:?}");
        // Off, or on with probability 0: the image is untouched and the other draws stay.
        let off = only(|c| c.lesions = Some(LesionConfig { probability: 0.0, ..lesions.clone() }));
        let a = augment(&prep, &off, &mut SplitMix64(1)).unwrap();
        assert_eq!((a.hu.data(), a.applied.lesions), (prep.hu.data(), 0));
        let paper = |f: &dyn Fn(&mut AugmentConfig)| {
            let mut c = AugmentConfig { elastic: None, thick_slices: Some(ThickSliceConfig { probability: 1.0, ..Default::default() }), ..AugmentConfig::default() };
            f(&mut c);
            augment(&prep, &c, &mut SplitMix64(5)).unwrap().applied
        };
        let (x, y) = (paper(&|_| {}), paper(&|c| c.lesions = Some(lesions.clone())));
        assert_eq!((x.hu_shift, x.flipped_x, x.flipped_y, x.thick_slices_mm), (y.hu_shift, y.flipped_x, y.flipped_y, y.thick_slices_mm));
        assert!(x.lesions == 0 && y.lesions > 0);
    }
}
