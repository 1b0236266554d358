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

/// The compute device: `cpu` (burn flex) or, with the `wgpu` feature, `gpu`
/// (also called `wgpu`).
///
/// burn 0.22's `cuda` backend is not offered: its build downloads LLVM
/// (tracel-llvm-bundler) and fails on an offline or proxied build machine.
pub fn device(name: &str) -> Result<burn::tensor::Device> {
    match name {
        "cpu" | "flex" => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" => Ok(burn::tensor::Device::wgpu(Default::default())),
        other => {
            let built = if cfg!(feature = "wgpu") { "cpu, gpu" } else { "cpu; rebuild with --features liverseg-model/wgpu for a GPU" };
            Err(Error::Config(format!("unknown device '{other}' (this build has: {built})")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_a_device_and_an_unknown_name_lists_the_ones_built() {
        assert!(device("cpu").is_ok());
        let err = device("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown device 'tpu'"), "{err}");
        assert!(err.contains("this build has: cpu"), "{err}");
        if cfg!(feature = "wgpu") {
            assert!(err.contains("this build has: cpu, gpu)"), "{err}");
        } else {
            assert!(err.contains("rebuild with --features liverseg-model/wgpu"), "{err}");
        }
    }
}
