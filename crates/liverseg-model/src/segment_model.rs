//! The burn network as the pipeline's [`ProbabilityModel`], so that `segment`,
//! `demo`, the node and any other front end run the same model the same way.
//!
//! Decision: this crate depends on liverseg-pipeline (framework-free, no burn)
//! rather than the other way round, so the pipeline and its tests build
//! without the deep-learning framework.

use crate::infer::{FlipAverage, Segmenter, TileStrategy, DEFAULT_MIN_GROWN_ML};
use crate::Result;
use liverseg_preprocess::{Prepared, PreprocessConfig};
use liverseg_pipeline::{ModelError, Prediction, ProbabilityModel, TileWork};
use liverseg_volume::{Mask, Volume};
use std::path::PathBuf;

/// The model `segment` runs: the built-in one (`models` empty), a model file
/// written by `liverseg train`, or the mean of several that read the CT alike
/// (an ensemble, see [`Segmenter::load_ensemble`]), on `device` (`cpu`, or
/// `gpu` in builds with the `wgpu` feature). `full_volume` computes every
/// tile with body in it instead of growing from probes (coarse-to-fine, see
/// [`crate::infer`]); `flips` averages the probability over mirrored views.
pub fn open(models: &[PathBuf], device: &str, full_volume: bool, flips: FlipAverage) -> Result<Segmenter> {
    let device = crate::device(device)?;
    let mut segmenter = if models.is_empty() { Segmenter::builtin(device) } else { Segmenter::load_ensemble(models, device) }?;
    if full_volume {
        segmenter.set_strategy(TileStrategy::All);
    }
    segmenter.set_flip_average(flips);
    Ok(segmenter)
}

impl ProbabilityModel for Segmenter {
    /// The weights' id, and the flip averaging when on: the report must say
    /// which of the two outputs a mask is (they differ slightly).
    fn id(&self) -> String {
        match self.flip_average() {
            FlipAverage::Off => self.info().id.clone(),
            f => format!("{}+flip-{}", self.info().id, f.name()),
        }
    }

    fn preprocess_config(&self) -> &PreprocessConfig {
        &self.info().network.preprocess
    }

    fn default_threshold(&self) -> f32 {
        self.info().threshold
    }

    fn predict(
        &self,
        prepared: &Prepared,
        input: &Volume<f32>,
        threshold: f32,
        progress: &mut dyn FnMut(usize, usize),
    ) -> std::result::Result<Prediction, ModelError> {
        self.predict_grown(prepared, input, threshold, None, progress)
    }

    /// Grows from where the other grid saw liver, without probes: the probes
    /// only look for where to start, and on a scaled grid of the same CT
    /// the factor-1 grid's liver says it.
    fn predict_seen(
        &self,
        prepared: &Prepared,
        input: &Volume<f32>,
        threshold: f32,
        seen: &Mask,
        progress: &mut dyn FnMut(usize, usize),
    ) -> std::result::Result<Prediction, ModelError> {
        self.predict_grown(prepared, input, threshold, Some(seen), progress)
    }
}

impl Segmenter {
    fn predict_grown(
        &self,
        prepared: &Prepared,
        input: &Volume<f32>,
        threshold: f32,
        seeds: Option<&Mask>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> std::result::Result<Prediction, ModelError> {
        // Grow at exactly the level the pipeline cuts at (unless a strategy
        // was set explicitly, e.g. every tile).
        let strategy = self.strategy().unwrap_or(TileStrategy::Grow {
            threshold,
            min_ml: DEFAULT_MIN_GROWN_ML,
        });
        let (probability, s) = self.probability_seeded(prepared, input, strategy, seeds, progress)?;
        let tiles = TileWork {
            body_tiles: s.body_tiles,
            computed_tiles: s.computed_tiles,
            boxes: s.boxes,
            probes: s.probes,
            fell_back_to_all: s.fell_back_to_all,
        };
        Ok(Prediction {
            probability,
            tiles: Some(tiles),
        })
    }
}
