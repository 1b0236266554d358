//! Training-step and inference timing of the network presets on the CPU
//! (burn flex), and in the same run the PyTorch reference network
//! (bench/deepmedic_torch.py) when Python with torch is installed.
//!
//! `cargo bench -p liverseg-model --bench network [-- --presets paper,fast,<abs path>/models/wide/network.json --steps 3 --device cpu --burn-ops]`
//!
//! `--device gpu` (in a build with the `wgpu` feature) times burn on
//! the GPU and PyTorch on CUDA.

use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};
use liverseg_model::network::{bce_with_logits, DeepMedic};
use liverseg_model::NetworkConfig;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn inputs(config: &NetworkConfig, patch: usize, batch: usize, dev: &Device) -> Vec<Tensor<5>> {
    config
        .pathway_inputs(patch)
        .unwrap()
        .iter()
        .map(|p| Tensor::random([batch, 1, p.input, p.input, p.input], Distribution::Normal(0.0, 0.1), dev))
        .collect()
}

fn torch_reference(config: &NetworkConfig, batch: usize, patch: usize, steps: usize, infer: usize, gpu: bool) -> Option<serde_json::Value> {
    let ok = Command::new("python3").args(["-c", "import torch"]).output().ok()?.status.success();
    if !ok {
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let cfg = dir.path().join("net.json");
    std::fs::write(&cfg, serde_json::to_string(config).ok()?).ok()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/deepmedic_torch.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&cfg)
        .args(["--batch", &batch.to_string(), "--patch", &patch.to_string(), "--steps", &steps.to_string(), "--infer-patch", &infer.to_string()])
        .args(["--device", if gpu { "cuda" } else { "cpu" }])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("pytorch reference failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(out.stdout.trim_ascii()).ok()
}

/// Mean training-step time over `steps` (after one warm-up) and the time of
/// one inference tile, with fresh weights.
fn time_preset(config: &NetworkConfig, device: &Device, batch: usize, steps: usize) -> (f64, f64) {
    let patch = config.train_patch;
    let dev = device.clone().autodiff();
    let mut model = DeepMedic::new(config, &dev);
    let mut optim = SgdConfig::new().with_momentum(Some(MomentumConfig { momentum: 0.6, dampening: 0.0, nesterov: true })).init();
    let x = inputs(config, patch, batch, &dev);
    let target = Tensor::<5>::random([batch, 1, patch, patch, patch], Distribution::Bernoulli(0.5), &dev);
    let mut times = Vec::new();
    for i in 0..=steps {
        let t0 = Instant::now();
        let loss = bce_with_logits(model.forward(x.clone()), target.clone());
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.007, model, grads);
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let step = times.iter().sum::<f64>() / times.len() as f64;
    let eval = model.valid();
    let s = config.infer_patch;
    let xi = inputs(config, s, 1, device);
    let _ = eval.forward(xi.clone()).into_data();
    let t0 = Instant::now();
    let _ = eval.forward(xi).into_data();
    (step, t0.elapsed().as_secs_f64())
}

fn main() {
    // As the liverseg binary does (the bench measures what it runs).
    liverseg_model::memory::keep_freed_memory();
    let presets = arg("--presets", "paper,fast");
    let steps: usize = arg("--steps", "3").parse().unwrap();
    let batch: usize = arg("--batch", "16").parse().unwrap();
    let device_name = arg("--device", "cpu");
    let device = liverseg_model::device(&device_name).unwrap_or_else(|e| panic!("{e}"));
    let gpu = !matches!(device_name.as_str(), "cpu" | "flex");
    println!("device: {device_name}; threads: {} (rayon)", rayon::current_num_threads());
    // `--burn-ops` also times burn's own conv3d and PReLU in the same run
    // (the "before" of liverseg_model::ops).
    let with_burn = std::env::args().any(|a| a == "--burn-ops");
    for name in presets.split(',') {
        // A preset name or a network config file, as the `conv` bench takes.
        let config = if name.ends_with(".json") {
            serde_json::from_str::<NetworkConfig>(&std::fs::read_to_string(name).expect("the network file")).expect("a network config")
        } else {
            NetworkConfig::preset(name).unwrap()
        };
        let name = config.name.clone();
        let patch = config.train_patch;
        let mut measured = Vec::new();
        for burn_ops in if with_burn && !gpu { vec![true, false] } else { vec![false] } {
            liverseg_model::ops::use_burn_ops(burn_ops);
            let (step, tile) = time_preset(&config, &device, batch, steps);
            let s = config.infer_patch;
            let which = if burn_ops { "burn ops" } else { "liverseg ops" };
            println!(
                "{name} ({which}): train step (batch {batch}, patch {patch}^3) {step:.2} s; inference tile {s}^3 {tile:.2} s = {:.0} voxels/s; {:.0} kMAC/voxel",
                (s as f64).powi(3) / tile,
                config.macs_per_output_voxel(s).unwrap() / 1e3
            );
            measured.push((which, step, tile));
        }
        let s = config.infer_patch;
        if measured.len() == 2 {
            println!("{name}: liverseg ops / burn ops: train {:.2}, inference {:.2}", measured[1].1 / measured[0].1, measured[1].2 / measured[0].2);
        }
        let (_, step, tile) = *measured.last().unwrap();
        match torch_reference(&config, batch, patch, steps, s, gpu) {
            Some(t) => {
                let ts = t["train_step_s"].as_f64().unwrap_or(f64::NAN);
                let ti = t["infer_tile_s"].as_f64().unwrap_or(f64::NAN);
                println!("{name}: pytorch {} train step {ts:.2} s, tile {ti:.2} s; ratio liverseg/torch: train {:.2}, inference {:.2}", t["torch"], step / ts, tile / ti);
            }
            None => println!("{name}: pytorch reference skipped (no python3 with torch, or it failed)"),
        }
    }
}
