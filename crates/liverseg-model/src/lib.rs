//! The liverseg network: a three-pathway DeepMedic (METHOD.md) in burn, its
//! configuration and presets, the model file, tiled inference and training.
//!
//! Backend: burn's pure-Rust `flex` CPU backend by default (no downloads, no
//! system libraries); `--features wgpu` adds burn's wgpu GPU backend (Vulkan
//! or Metal at run time), which CI does not build.

pub mod average;
pub mod bn_stats;
pub mod checkpoint;
pub mod config;
pub mod ops;
mod error;
pub mod infer;
pub mod memory;
pub mod network;
pub mod segment_model;
pub mod train;

pub use checkpoint::ModelInfo;
pub use config::{NetworkConfig, PathwayConfig};
pub use error::{Error, Result};
pub use infer::{FlipAverage, Segmenter};
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
        "wgpu" | "gpu" => {
            refuse_software_only_gpu()?;
            Ok(burn::tensor::Device::wgpu(Default::default()))
        }
        other => {
            let built = if cfg!(feature = "wgpu") { "cpu, gpu" } else { "cpu; rebuild with --features liverseg-model/wgpu for a GPU" };
            Err(Error::Device(format!("unknown device '{other}' (this build has: {built})")))
        }
    }
}

/// On a machine without a GPU driver, wgpu's default adapter is a software
/// renderer (Mesa llvmpipe or lavapipe). It runs, but far slower than the CPU
/// backend: measured here, a phantom was still compiling shaders after 90 s
/// where `cpu` segments it in under 30 s. Refuse it with a message rather than hang;
/// `LIVERSEG_ALLOW_SOFTWARE_GPU=1` lets developers exercise the shader path on
/// such a machine anyway.
#[cfg(feature = "wgpu")]
fn refuse_software_only_gpu() -> Result<()> {
    use burn::backend::wgpu::wgpu;
    if std::env::var_os("LIVERSEG_ALLOW_SOFTWARE_GPU").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters: Vec<(String, bool)> = block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            (format!("{} ({:?})", info.name, info.backend), info.device_type == wgpu::DeviceType::Cpu)
        })
        .collect();
    match software_only_refusal(&adapters) {
        Some(message) => Err(Error::Device(message)),
        None => Ok(()),
    }
}

/// The error for `--device gpu` when none of the adapters found, given as
/// (name, is a software renderer), is a GPU; `None` when one is.
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
fn software_only_refusal(adapters: &[(String, bool)]) -> Option<String> {
    if adapters.iter().any(|(_, software)| !software) {
        return None;
    }
    let found = if adapters.is_empty() {
        "no adapter at all (is a Vulkan, Metal or DX12 driver installed?)".to_string()
    } else {
        let names: Vec<&str> = adapters.iter().map(|(name, _)| name.as_str()).collect();
        format!("only software renderers: {}", names.join(", "))
    };
    Some(format!(
        "--device gpu: no GPU found, {found}; use --device cpu, which is faster than a software renderer \
         (LIVERSEG_ALLOW_SOFTWARE_GPU=1 uses it anyway)"
    ))
}

/// wgpu's adapter enumeration is a future that is ready at once on native
/// platforms; polling it here avoids pulling in an async runtime for one call.
#[cfg(feature = "wgpu")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
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

    #[test]
    fn gpu_is_refused_only_when_every_adapter_is_a_software_renderer() {
        let llvmpipe = ("llvmpipe (LLVM 15.0.6, 256 bits) (Gl)".to_string(), true);
        let h100 = ("NVIDIA H100 (Vulkan)".to_string(), false);
        assert_eq!(software_only_refusal(&[llvmpipe.clone(), h100.clone()]), None);
        assert_eq!(software_only_refusal(&[h100]), None);
        let err = software_only_refusal(&[llvmpipe]).unwrap();
        assert!(err.contains("only software renderers: llvmpipe (LLVM 15.0.6, 256 bits) (Gl)"), "{err}");
        assert!(err.contains("use --device cpu"), "{err}");
        let err = software_only_refusal(&[]).unwrap();
        assert!(err.contains("no adapter at all"), "{err}");
    }
}
