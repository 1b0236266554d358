//! Where `segment` and `demo` get their model.
//!
//! =====================================================================
//! TEST DOUBLE (pipeline branch). The lead replaces this file at merge
//! with the loader of the burn network (liverseg-model): `load(None)` =
//! the default model committed in the repository, `load(Some(path))` =
//! a checkpoint file. Until then `load(None)` returns
//! `liverseg_pipeline::testing::HuWindowModel`, an HU window on the
//! patient's right that segments the portal-venous phantom and is NOT a
//! liver segmentation method; `load(Some(_))` refuses.
//! =====================================================================

use liverseg_pipeline::testing::HuWindowModel;
use liverseg_pipeline::ProbabilityModel;
use std::path::Path;

pub fn load(spec: Option<&Path>) -> Result<Box<dyn ProbabilityModel>, String> {
    match spec {
        None => Ok(Box::new(HuWindowModel::default())),
        Some(path) => Err(format!("{}: cannot load a model file: this build has only the built-in test double (no network)", path.display())),
    }
}
