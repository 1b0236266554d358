//! The liverseg network: a three-pathway DeepMedic (METHOD.md) in burn, its
//! configuration and presets, the model file, tiled inference and training.
//!
//! Backend: burn's pure-Rust `flex` CPU backend by default (no downloads, no
//! system libraries); `--features wgpu` adds burn's wgpu GPU backend (Vulkan
//! or Metal at run time), which CI does not build.

pub mod checkpoint;
pub mod config;
mod error;
pub mod infer;
pub mod network;
pub mod train;

pub use checkpoint::ModelInfo;
pub use config::{NetworkConfig, PathwayConfig};
pub use error::{Error, Result};
pub use infer::Segmenter;
pub use network::DeepMedic;
pub use train::{train, Case, Event, TrainConfig};

/// The compute device: `cpu` (burn flex) or, with the `wgpu` feature, `gpu`.
pub fn device(name: &str) -> Result<burn::tensor::Device> {
    match name {
        "cpu" | "flex" => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "wgpu")]
        "gpu" | "wgpu" => Ok(burn::tensor::Device::wgpu(Default::default())),
        other => Err(Error::Config(format!(
            "unknown device '{other}' (this build has: cpu{})",
            if cfg!(feature = "wgpu") { ", gpu" } else { "; rebuild with --features wgpu for gpu" }
        ))),
    }
}
