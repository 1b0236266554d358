//! The method's pre-processing (METHOD.md, in this order): crop to the abdomen,
//! resample to an isotropic grid (1.4 mm), median filter, HU window onto
//! [-0.2, 0.2]. Training and inference run exactly this code, so a model never
//! sees data prepared differently from what it was trained on.
//!
//! The window is kept apart from the cached volume ([`Prepared::hu`] holds
//! median-filtered HU): the training augmentation shifts HU *before*
//! normalisation, and clipping makes that differ from shifting afterwards.

use liverseg_imgproc::crop::{abdomen_crop, body_mask, slices_around, AbdomenCropOptions, CropBox, SliceRange};
use liverseg_imgproc::filters::{median_filter, IntensityWindow};
use liverseg_imgproc::resample::{isotropic_grid, resample, resample_level_set, resample_mask_partial_volume, resample_nearest, Interpolation};
use liverseg_imgproc::Scalar;
use liverseg_volume::{Geometry, Mask, Volume};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Parameters of the pre-processing. Saved inside every model checkpoint, so
/// `segment` prepares a CT the way its model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessConfig {
    /// Isotropic voxel size of the network grid, mm (paper: 1.4).
    pub spacing_mm: f64,
    /// Median filter radius in voxels per axis (1 = 3x3x3, the paper's; 0 = off).
    pub median_radius: usize,
    /// HU window: clipped to [lo, hi], mapped onto [out_lo, out_hi].
    pub window_hu: [f64; 2],
    pub window_out: [f64; 2],
    /// Body outline threshold (HU) for the abdomen crop.
    pub body_threshold_hu: f64,
    /// Room around the body outline in x and y, mm.
    pub crop_margin_mm: f64,
    /// Training only: keep the slices within this many mm of the reference
    /// liver (METHOD.md: "z-range covers the liver with margin"). `None` keeps
    /// every slice, as inference must (the liver is not known there).
    pub label_z_margin_mm: Option<f64>,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            spacing_mm: 1.4,
            median_radius: 1,
            window_hu: [-200.0, 200.0],
            window_out: [-0.2, 0.2],
            body_threshold_hu: -150.0,
            crop_margin_mm: 10.0,
            label_z_margin_mm: None,
        }
    }
}

impl PreprocessConfig {
    pub fn window(&self) -> IntensityWindow {
        IntensityWindow { lo: self.window_hu[0], hi: self.window_hu[1], out_lo: self.window_out[0], out_hi: self.window_out[1] }
    }

    fn validate(&self) -> Result<()> {
        if !(self.spacing_mm.is_finite() && self.spacing_mm > 0.0) {
            return Err(Error::param("spacing_mm", format!("{} is not a positive number of mm", self.spacing_mm)));
        }
        if self.median_radius > 5 {
            return Err(Error::param("median_radius", format!("{} voxels is more than 5", self.median_radius)));
        }
        let w = self.window_hu;
        if !(w[0].is_finite() && w[1].is_finite() && w[0] < w[1]) {
            return Err(Error::param("window_hu", format!("{w:?} needs finite lo < hi")));
        }
        Ok(())
    }

    /// The normalised value of a HU value (what the network sees).
    pub fn normalise(&self, hu: f32) -> f32 {
        let [lo, hi] = self.window_hu;
        let [olo, ohi] = self.window_out;
        if hu.is_nan() {
            return olo as f32;
        }
        (olo + (f64::from(hu).clamp(lo, hi) - lo) * (ohi - olo) / (hi - lo)) as f32
    }
}

/// A CT prepared for the network, and what is needed to go back.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Cropped, resampled, median-filtered CT in HU on the isotropic grid.
    pub hu: Volume<f32>,
    /// The body outline on the same grid (background samples are drawn inside
    /// it; inference skips tiles with no body voxel).
    pub body: Mask,
    /// The reference liver on the same grid, when one was given.
    pub label: Option<Mask>,
    /// The crop on the original CT grid.
    pub crop: CropBox,
    /// The original CT grid, for [`Prepared::to_original_grid`].
    pub original: Geometry,
}

impl Prepared {
    /// The network input: the HU volume shifted by `hu_shift` (augmentation;
    /// 0 at inference) and windowed.
    pub fn normalised(&self, config: &PreprocessConfig, hu_shift: f32) -> Volume<f32> {
        self.hu.map(|&v| config.normalise(v + hu_shift))
    }

    /// A mask on the isotropic grid brought back onto the original CT grid
    /// (same dims, spacing, origin, direction): interpolated as a 0/1 image and
    /// thresholded at 0.5 (smoother than nearest on a finer grid), pasted into
    /// the crop, background elsewhere.
    pub fn to_original_grid(&self, mask: &Mask) -> Result<Mask> {
        if !mask.geometry().same_grid(self.hu.geometry()) {
            return Err(Error::param("mask", "is not on the prepared grid"));
        }
        let crop_grid = self.crop.geometry(&self.original)?;
        let cropped = resample_mask_partial_volume(mask, &crop_grid);
        Ok(self.crop.paste(&cropped, &self.original, 0u8)?)
    }

    /// Like [`Prepared::to_original_grid`], but the boundary on the original
    /// grid follows the probability: a map Q is built on the isotropic grid
    /// (inside `mask`, Q = P where P >= `threshold` and 1 in the holes the
    /// mask filled; outside it, Q = P where P < `threshold` and 0 where the
    /// post-processing removed P >= `threshold`), interpolated trilinearly
    /// and thresholded. So `mask` still decides which voxels can be liver,
    /// and the probability only where between two isotropic voxel centres
    /// the surface lies; with P all 0 or 1 this is
    /// [`Prepared::to_original_grid`] exactly.
    pub fn to_original_grid_following(&self, mask: &Mask, probability: &Volume<f32>, threshold: f32) -> Result<Mask> {
        if !mask.geometry().same_grid(self.hu.geometry()) {
            return Err(Error::param("mask", "is not on the prepared grid"));
        }
        if !probability.geometry().same_grid(self.hu.geometry()) {
            return Err(Error::param("probability", "is not on the prepared grid"));
        }
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(Error::param("threshold", format!("{threshold} is not strictly between 0 and 1")));
        }
        let q: Vec<f32> = mask
            .data()
            .iter()
            .zip(probability.data())
            .map(|(&m, &p)| match (m != 0, p >= threshold) {
                (true, true) => p,
                (true, false) => 1.0,
                (false, false) => p,
                (false, true) => 0.0,
            })
            .collect();
        let q = Volume::new(self.hu.geometry().clone(), q).expect("same grid as the probability");
        let crop_grid = self.crop.geometry(&self.original)?;
        let cropped = resample_level_set(&q, &crop_grid, threshold);
        Ok(self.crop.paste(&cropped, &self.original, 0u8)?)
    }

    /// A probability map on the isotropic grid brought back onto the original
    /// grid (trilinear; 0 outside the crop).
    pub fn probability_to_original_grid(&self, probability: &Volume<f32>) -> Result<Volume<f32>> {
        let crop_grid = self.crop.geometry(&self.original)?;
        let cropped = resample(probability, &crop_grid, Interpolation::Linear, 0.0);
        Ok(self.crop.paste(&cropped, &self.original, 0.0f32)?)
    }
}

/// Crop, resample, median filter (METHOD.md steps 1-3; the window of step 4 is
/// applied by [`Prepared::normalised`]). `label`, when given, must be on the
/// CT's grid; it is resampled by partial volume then 0.5.
pub fn prepare<T: Scalar>(ct: &Volume<T>, label: Option<&Mask>, config: &PreprocessConfig) -> Result<Prepared> {
    config.validate()?;
    if let Some(label) = label {
        if !label.geometry().same_grid(ct.geometry()) {
            return Err(Error::param("label", "the reference mask is not on the CT's grid"));
        }
    }
    let slices = match (label, config.label_z_margin_mm) {
        (Some(label), Some(margin)) if label.count_foreground() > 0 => slices_around(label, margin)?,
        _ => SliceRange::Whole,
    };
    let abdomen = Abdomen::of(ct, config, slices)?;
    let label = match label {
        Some(l) => Some(abdomen.crop.apply(l)?),
        None => None,
    };
    abdomen.on_grid(ct.geometry(), config, label.as_ref())
}

/// [`prepare`] (without a label) at several configurations that differ only
/// in the grid (spacing, median filter), e.g. test-time scale averaging: the
/// crop and body outline do not depend on the grid and are found once (on a
/// 512x512x129 CT they are about two thirds of `prepare`'s 1.1 s).
pub fn prepare_grids<T: Scalar>(ct: &Volume<T>, configs: &[PreprocessConfig]) -> Result<Vec<Prepared>> {
    let Some(first) = configs.first() else { return Ok(Vec::new()) };
    for c in configs {
        c.validate()?;
        if (c.body_threshold_hu, c.crop_margin_mm) != (first.body_threshold_hu, first.crop_margin_mm) {
            return Err(Error::param("config", "prepare_grids takes configurations that crop alike (body threshold and margin)"));
        }
    }
    let abdomen = Abdomen::of(ct, first, SliceRange::Whole)?;
    configs.iter().map(|c| abdomen.on_grid(ct.geometry(), c, None)).collect()
}

/// The part of [`prepare`] on the CT's own grid: the crop, the cropped CT and
/// its body outline.
struct Abdomen<T> {
    crop: CropBox,
    cropped: Volume<T>,
    body: Mask,
}

impl<T: Scalar> Abdomen<T> {
    fn of(ct: &Volume<T>, config: &PreprocessConfig, slices: SliceRange) -> Result<Self> {
        let options = AbdomenCropOptions {
            body_threshold_hu: config.body_threshold_hu,
            margin_mm: config.crop_margin_mm,
            slices,
            ..AbdomenCropOptions::default()
        };
        let crop = abdomen_crop(ct, &options)?;
        let cropped = crop.apply(ct)?;
        let body = body_mask(&cropped, &AbdomenCropOptions { slices: SliceRange::Whole, ..options })?;
        Ok(Self { crop, cropped, body })
    }

    /// Onto the isotropic grid of `config`; `label` already cropped.
    fn on_grid(&self, original: &Geometry, config: &PreprocessConfig, label: Option<&Mask>) -> Result<Prepared> {
        let grid = isotropic_grid(self.cropped.geometry(), config.spacing_mm)?;
        let hu = resample(&self.cropped, &grid, Interpolation::Linear, -1024.0);
        let hu = if config.median_radius > 0 { median_filter(&hu, [config.median_radius; 3])? } else { hu };
        let body = resample_nearest(&self.body, &grid, 0u8);
        let label = label.map(|l| resample_mask_partial_volume(l, &grid));
        Ok(Prepared { hu, body, label, crop: self.crop, original: original.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_phantom::{generate, PhantomConfig};

    #[test]
    fn phantom_goes_to_the_isotropic_grid_and_back() {
        let p = generate(&PhantomConfig { dims: [96, 80, 40], spacing: [3.0, 3.0, 5.0], ..Default::default() });
        let config = PreprocessConfig { spacing_mm: 3.0, ..Default::default() };
        let prepared = prepare(&p.ct, Some(&p.liver), &config).unwrap();
        assert_eq!(prepared.hu.geometry().spacing(), [3.0; 3]);
        assert!(prepared.hu.geometry().same_grid(prepared.body.geometry()));
        let label = prepared.label.as_ref().unwrap();
        // Liver volume survives resampling within a few percent.
        let ratio = label.foreground_ml() / p.liver.foreground_ml();
        assert!((0.95..1.05).contains(&ratio), "volume ratio {ratio}");
        // Back on the original grid: same geometry, near-identical mask.
        let back = prepared.to_original_grid(label).unwrap();
        assert!(back.geometry().same_grid(p.liver.geometry()));
        let d = liverseg_volume::dice(back.data(), p.liver.data()).unwrap_or(0.0);
        assert!(d > 0.95, "round-trip dice {d}");
        // The liver lies inside the body outline.
        let outside = label.data().iter().zip(prepared.body.data()).filter(|(l, b)| **l != 0 && **b == 0).count();
        assert!(outside * 100 < label.count_foreground(), "{outside} liver voxels outside the body");
    }

    /// Prepared phantom and its liver on the isotropic grid.
    fn prepared_phantom() -> (Prepared, Mask) {
        let p = generate(&PhantomConfig { dims: [96, 80, 40], spacing: [1.5, 1.5, 2.5], ..Default::default() });
        let config = PreprocessConfig { spacing_mm: 3.0, ..Default::default() };
        let prepared = prepare(&p.ct, Some(&p.liver), &config).unwrap();
        let label = prepared.label.clone().unwrap();
        (prepared, label)
    }

    #[test]
    fn following_a_sharp_probability_is_the_mask_boundary() {
        let (prepared, label) = prepared_phantom();
        let by_mask = prepared.to_original_grid(&label).unwrap();
        let sharp = label.map(|&v| f32::from(v));
        assert_eq!(prepared.to_original_grid_following(&label, &sharp, 0.5).unwrap().data(), by_mask.data());
        // Holes the mask filled stay filled; what it removed stays out.
        let mut p = sharp.clone();
        let inside = label.data().iter().position(|&v| v != 0).unwrap();
        let mut removed = None;
        for (o, v) in p.data_mut().iter_mut().enumerate() {
            if o == inside {
                *v = 0.1;
            } else if removed.is_none() && *v == 0.0 && prepared.body.data()[o] != 0 && o % 7 == 3 {
                *v = 0.95;
                removed = Some(o);
            }
        }
        assert!(removed.is_some());
        assert_eq!(prepared.to_original_grid_following(&label, &p, 0.5).unwrap().data(), by_mask.data());
    }

    #[test]
    fn following_the_probability_moves_the_surface_between_voxel_centres() {
        let (prepared, label) = prepared_phantom();
        let ml = |m: Mask| m.foreground_ml();
        let by_mask = ml(prepared.to_original_grid(&label).unwrap());
        // 0.6 inside, 0 outside: 0.5 is crossed a sixth of the way out.
        let shrunk = ml(prepared.to_original_grid_following(&label, &label.map(|&v| if v != 0 { 0.6 } else { 0.0 }), 0.5).unwrap());
        // 1 inside, 0.4 outside: five sixths of the way out.
        let grown = ml(prepared.to_original_grid_following(&label, &label.map(|&v| if v != 0 { 1.0 } else { 0.4 }), 0.5).unwrap());
        assert!(shrunk < 0.95 * by_mask && grown > 1.05 * by_mask, "{shrunk} < {by_mask} < {grown} ml");
        // Not on the prepared grid, or a threshold out of range: an error.
        let other = Volume::filled(prepared.original.clone(), 0.0f32);
        assert!(prepared.to_original_grid_following(&label, &other, 0.5).is_err());
        assert!(prepared.to_original_grid_following(&label, &label.map(|_| 0.0f32), 1.0).is_err());
    }

    #[test]
    fn window_and_shift() {
        let c = PreprocessConfig::default();
        assert_eq!(c.normalise(0.0), 0.0);
        assert_eq!(c.normalise(500.0), 0.2f32);
        assert_eq!(c.normalise(-1000.0), -0.2f32);
        assert!((c.normalise(100.0) - 0.1).abs() < 1e-7);
        assert_eq!(c.normalise(f32::NAN), -0.2f32);
        // Shift happens before clipping: 190 + 40 clips to 0.2, not 0.19 + 0.04.
        let p = generate(&PhantomConfig { dims: [48, 40, 20], spacing: [6.0, 6.0, 10.0], ..Default::default() });
        let prepared = prepare(&p.ct, None, &PreprocessConfig { spacing_mm: 6.0, ..Default::default() }).unwrap();
        let shifted = prepared.normalised(&c, 40.0);
        assert!(shifted.data().iter().all(|v| (-0.2..=0.2).contains(v)));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let p = generate(&PhantomConfig { dims: [48, 40, 20], spacing: [6.0, 6.0, 10.0], ..Default::default() });
        let e = prepare(&p.ct, None, &PreprocessConfig { spacing_mm: 0.0, ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("spacing_mm"), "{e}");
        let wrong = Volume::filled(Geometry::new([10, 10, 10], [1.0; 3], [0.0; 3], liverseg_volume::IDENTITY).unwrap(), 0u8);
        assert!(prepare(&p.ct, Some(&wrong), &PreprocessConfig::default()).is_err());
    }

    #[test]
    fn grids_prepared_together_equal_each_prepared_alone() {
        let p = generate(&PhantomConfig { dims: [64, 56, 30], spacing: [1.5, 1.5, 2.5], ..Default::default() });
        let configs: Vec<PreprocessConfig> = [3.0, 2.7, 3.3].iter().map(|&s| PreprocessConfig { spacing_mm: s, ..Default::default() }).collect();
        let together = prepare_grids(&p.ct, &configs).unwrap();
        assert_eq!(together.len(), 3);
        for (c, t) in configs.iter().zip(&together) {
            let alone = prepare(&p.ct, None, c).unwrap();
            assert!(t.hu.geometry().same_grid(alone.hu.geometry()));
            assert_eq!(t.hu.data(), alone.hu.data());
            assert_eq!(t.body.data(), alone.body.data());
            assert_eq!(t.crop, alone.crop);
        }
        assert_ne!(together[1].hu.dims(), together[2].hu.dims());
        // Configurations that crop differently are refused.
        let other = PreprocessConfig { crop_margin_mm: 20.0, ..configs[0].clone() };
        let e = prepare_grids(&p.ct, &[configs[0].clone(), other]).unwrap_err();
        assert!(e.to_string().contains("crop alike"), "{e}");
    }
}
