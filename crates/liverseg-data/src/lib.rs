//! Data for the liverseg network: the method's pre-processing (shared by
//! training and `segment`), network input patches, and the training side:
//! dataset layouts and manifests, duplicate detection, the on-disk cache,
//! segment sampling and augmentation. Nothing here depends on the
//! deep-learning framework, so it builds and tests fast.

pub mod augment;
pub mod elastic;
mod error;
pub mod patches;
pub mod preprocess;
pub mod sampler;

pub use error::{Error, Result};
pub use preprocess::{prepare, PreprocessConfig, Prepared};

pub mod datasets;
pub mod cache;
pub mod duplicates;
pub mod training_set;
pub use cache::{load_case, LoadedCase};
pub use datasets::{discover, load_manifest, CaseSource, Manifest, Split};
pub use duplicates::{dedupe, find_duplicates, DuplicateReport};
pub use training_set::{load_training_cases, load_training_set, TrainingSet};
