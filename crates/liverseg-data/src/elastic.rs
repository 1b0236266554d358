//! Random elastic deformation of a training image and its label together.
//! (Placeholder interface; the implementation lands with the datasets work.)

use liverseg_phantom::SplitMix64;
use liverseg_volume::{Mask, Volume};
use serde::{Deserialize, Serialize};

use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    /// Spacing of the random displacement control grid, mm.
    pub control_spacing_mm: f64,
    /// Standard deviation of control-point displacements, mm.
    pub magnitude_mm: f64,
}

impl Default for ElasticConfig {
    fn default() -> Self {
        Self { control_spacing_mm: 40.0, magnitude_mm: 4.0 }
    }
}

/// Deform image, label and body with one random smooth displacement field.
pub fn deform(hu: &Volume<f32>, label: &Mask, body: &Mask, _config: &ElasticConfig, _rng: &mut SplitMix64) -> Result<(Volume<f32>, Mask, Mask)> {
    Ok((hu.clone(), label.clone(), body.clone()))
}
