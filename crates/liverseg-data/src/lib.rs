//! The training data machinery of the liverseg network: dataset layouts and
//! manifests, duplicate detection, the on-disk cache of prepared cases,
//! patch sampling and augmentation. The pre-processing itself (shared with
//! `segment`) is liverseg-preprocess. Nothing here depends on the
//! deep-learning framework, so it builds and tests fast.

pub mod augment;
pub mod elastic;
mod error;
pub mod sampler;

pub use error::{Error, Result};
// For this crate's modules: the pre-processing they cache and augment.
use liverseg_preprocess::{prepare, PreprocessConfig, Prepared};

pub mod datasets;
pub mod cache;
pub mod duplicates;
pub mod training_set;
pub use cache::{load_case, LoadedCase};
pub use datasets::{discover, load_manifest, CaseSource, Manifest, Split};
pub use duplicates::{dedupe, find_duplicates, DuplicateReport};
pub use training_set::{load_training_cases, load_training_set, TrainingSet};
