//! Segmentation evaluation: overlap, volume and surface-distance metrics of a
//! pair of masks ([`evaluate()`]), many pairs with a cohort summary
//! ([`cohort`]), and the inter-observer study of the paper ([`study`]).
//!
//! Conventions are documented in [`mod@evaluate`]; the numbers reproduce MedPy 0.5.2
//! (default) and DeepMind surface-distance (`SurfaceConvention::Surfel`) on
//! the reference pairs in `../shared/metrics`.

pub mod evaluate;
mod grid;
pub mod stats;
pub mod surfel;
pub mod voxel_surface;

pub use evaluate::{evaluate, evaluate_resampling, EvalOptions, Evaluation, MetricsError, SurfaceConvention};
pub use stats::{percentile_linear, Summary};
pub mod cohort;
pub mod plot;
pub mod study;
