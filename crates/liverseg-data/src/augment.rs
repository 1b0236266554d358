//! Training augmentation (METHOD.md): one HU shift per image drawn from
//! N(-40 HU, 40 HU) before normalisation (the paper: SIRT CTs are often less
//! enhanced than challenge data), flips along x and y with p = 0.5 each, and a
//! random elastic deformation of image and label together. Applied to whole
//! prepared volumes once per sub-epoch, as DeepMedic does when it loads cases,
//! so every segment sampled from a case shares its augmentation.

use liverseg_imgproc::filters::{flip_data, Axis};
use liverseg_phantom::SplitMix64;
use liverseg_volume::{Mask, Volume};
use serde::{Deserialize, Serialize};

use crate::elastic::{deform, ElasticConfig};
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
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { hu_shift: Some([-40.0, 40.0]), flip_x: 0.5, flip_y: 0.5, elastic: Some(ElasticConfig::default()) }
    }
}

impl AugmentConfig {
    /// No augmentation at all (validation, tests).
    pub fn none() -> Self {
        Self { hu_shift: None, flip_x: 0.0, flip_y: 0.0, elastic: None }
    }
}

/// What was applied to one image (logged, and checked by tests).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Applied {
    pub hu_shift: f32,
    pub flipped_x: bool,
    pub flipped_y: bool,
    pub elastic: bool,
}

/// One augmented training image: HU (shifted), reference and body on the
/// prepared grid.
pub struct Augmented {
    pub hu: Volume<f32>,
    pub label: Mask,
    pub body: Mask,
    pub applied: Applied,
}

/// Augment a prepared training case. The label is required.
pub fn augment(prepared: &Prepared, config: &AugmentConfig, rng: &mut SplitMix64) -> Result<Augmented> {
    let label = prepared.label.as_ref().ok_or_else(|| crate::Error::param("label", "a training case needs a reference mask"))?;
    let mut applied = Applied::default();
    let (mut hu, mut label, mut body) = (prepared.hu.clone(), label.clone(), prepared.body.clone());
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
        }
    }
    applied.flipped_x = fx;
    applied.flipped_y = fy;
    let mut elastic_rng = SplitMix64(rng.next_u64());
    if let Some(elastic) = &config.elastic {
        (hu, label, body) = deform(&hu, &label, &body, elastic, &mut elastic_rng)?;
        applied.elastic = true;
    }
    Ok(Augmented { hu, label, body, applied })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{prepare, PreprocessConfig};
    use liverseg_phantom::{generate, PhantomConfig};

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
        let config = AugmentConfig { hu_shift: None, elastic: None, flip_x: 0.5, flip_y: 0.5 };
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
    fn nothing_switched_on_changes_nothing() {
        let prep = prepared();
        let a = augment(&prep, &AugmentConfig::none(), &mut SplitMix64(1)).unwrap();
        assert_eq!(a.hu.data(), prep.hu.data());
        assert_eq!(a.applied, Applied::default());
    }
}
