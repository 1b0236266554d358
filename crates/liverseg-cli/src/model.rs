//! Where `segment` and `demo` get their model: the built-in default (the file
//! committed in models/, compiled into the binary) or a model file written by
//! `liverseg train`.

use liverseg_data::{PreprocessConfig, Prepared};
use liverseg_model::infer::{TileStrategy, DEFAULT_MIN_GROWN_ML};
use liverseg_model::Segmenter;
use liverseg_pipeline::{Prediction, ProbabilityModel, TileWork};
use liverseg_volume::Volume;
use std::path::Path;

struct BurnModel(Segmenter);

impl ProbabilityModel for BurnModel {
    fn id(&self) -> String {
        self.0.info().id.clone()
    }
    fn preprocess_config(&self) -> &PreprocessConfig {
        &self.0.info().network.preprocess
    }
    fn default_threshold(&self) -> f32 {
        self.0.info().threshold
    }
    fn predict(&self, prepared: &Prepared, input: &Volume<f32>, progress: &mut dyn FnMut(usize, usize)) -> Result<Prediction, String> {
        let (probability, s) = self.0.probability(prepared, input, progress).map_err(|e| e.to_string())?;
        let tiles = TileWork { body_tiles: s.body_tiles, computed_tiles: s.computed_tiles, probes: s.probes, fell_back_to_all: s.fell_back_to_all };
        Ok(Prediction { probability, tiles: Some(tiles) })
    }
}

/// How inference runs.
pub struct LoadOptions<'a> {
    /// `cpu`, or `gpu` in builds with the `wgpu` feature.
    pub device: &'a str,
    /// The threshold the result will be cut at (default: the model's); the
    /// coarse-to-fine pass grows the computed region at this level.
    pub threshold: Option<f32>,
    /// Compute every tile with body in it instead of growing from probes.
    pub full_volume: bool,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self { device: "cpu", threshold: None, full_volume: false }
    }
}

pub fn load(spec: Option<&Path>, options: &LoadOptions) -> Result<Box<dyn ProbabilityModel>, String> {
    let device = liverseg_model::device(options.device).map_err(|e| e.to_string())?;
    let mut segmenter = match spec {
        None => Segmenter::builtin(device),
        Some(path) => Segmenter::load(path, device),
    }
    .map_err(|e| e.to_string())?;
    let strategy = if options.full_volume {
        TileStrategy::All
    } else {
        TileStrategy::Grow { threshold: options.threshold.unwrap_or(segmenter.info().threshold), min_ml: DEFAULT_MIN_GROWN_ML }
    };
    segmenter.set_strategy(strategy);
    Ok(Box::new(BurnModel(segmenter)))
}
