//! Where `segment` and `demo` get their model: the built-in default (the file
//! committed in models/, compiled into the binary) or a model file written by
//! `liverseg train`.

use liverseg_data::{PreprocessConfig, Prepared};
use liverseg_model::Segmenter;
use liverseg_pipeline::ProbabilityModel;
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
    fn predict(&self, prepared: &Prepared, input: &Volume<f32>, progress: &mut dyn FnMut(usize, usize)) -> Result<Volume<f32>, String> {
        self.0.probability(prepared, input, progress).map_err(|e| e.to_string())
    }
}

pub fn load(spec: Option<&Path>) -> Result<Box<dyn ProbabilityModel>, String> {
    let device = liverseg_model::device("cpu").map_err(|e| e.to_string())?;
    let segmenter = match spec {
        None => Segmenter::builtin(device),
        Some(path) => Segmenter::load(path, device),
    }
    .map_err(|e| e.to_string())?;
    Ok(Box::new(BurnModel(segmenter)))
}
