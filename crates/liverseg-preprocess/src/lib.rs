//! The method's pre-processing of a CT for the network (METHOD.md steps 1-4:
//! abdomen crop, isotropic resampling, median filter, HU window) and the
//! network's input patches cut from the prepared volume.
//!
//! `segment` and training both call exactly this code, so a model never sees
//! data prepared differently from what it was trained on. It is a crate of its
//! own so the pipeline can depend on it without the training machinery
//! (datasets, cache, augmentation, sampling: liverseg-data).

mod error;
pub mod patches;
pub mod preprocess;

pub use error::{Error, Result};
pub use patches::{PatchSource, PathwayBox, PathwayInput};
pub use preprocess::{prepare, prepare_grids, PreprocessConfig, Prepared};
