//! Batch-norm statistics re-estimated on training patches ("precise BN",
//! Wu & Johnson 2021, *Rethinking "Batch" in BatchNorm*; the BN update of
//! stochastic weight averaging, Izmailov et al. 2018).
//!
//! Why: training keeps each batch norm's running mean and variance as an
//! exponential average with burn's momentum 0.1, so at the end of a run they
//! reflect the last ten or so batches (80 patches in the recipes), drawn
//! with random augmentation. At inference the network uses exactly those
//! statistics, and the held-out DSC of consecutive epochs swings widely
//! (`models/wide/README.md`: 0.74-0.92 on one fold); part of that may be
//! statistics, not weights. Here the weights stay as they are and every batch
//! norm's statistics become the plain mean over many batches sampled and
//! augmented as in training (momentum 1/k for the k-th batch), from the
//! training cases only, so a leave-one-out fold chooses nothing on its
//! held-out case.

use std::path::Path;

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor, TensorData};
use liverseg_data::sampler::sample_batch;
use liverseg_volume::SplitMix64;

use crate::checkpoint::{self, ModelInfo};
use crate::config::NetworkConfig;
use crate::network::DeepMedic;
use crate::train::{sampling_volumes, Case, TrainConfig};
use crate::{Error, Result};

/// Every batch norm of the network, in a fixed order.
fn norms_mut(net: &mut DeepMedic) -> Vec<&mut BatchNorm> {
    let mut out = Vec::new();
    for p in &mut net.pathways {
        out.extend(p.layers.iter_mut().filter_map(|b| b.norm.as_mut()));
    }
    out.extend(net.fc.iter_mut().filter_map(|b| b.norm.as_mut()));
    out.extend(net.classifier.norm.as_mut());
    out
}

/// The network with every batch norm's running statistics replaced by their
/// mean over `batches` batches of `config.batch` patches, sampled from
/// `cases` with `config`'s sampling and augmentation (each case augmented
/// anew every sub-epoch's worth of batches, as training does), drawn with
/// `seed`. `net` must live on an autodiff device (batch statistics are only
/// taken there, in training mode: `crate::ops::bn_prelu`); no gradient is
/// taken and nothing but the running statistics changes. `progress(done,
/// total)` after each batch.
pub fn recalibrate(
    net: DeepMedic,
    network: &NetworkConfig,
    config: &TrainConfig,
    cases: &[Case],
    batches: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<DeepMedic> {
    if batches == 0 {
        return Err(Error::Config("batch-norm recalibration needs at least one batch".into()));
    }
    if cases.is_empty() {
        return Err(Error::Config("batch-norm recalibration needs training cases".into()));
    }
    for c in cases {
        if c.prepared.label.is_none() {
            return Err(Error::Config(format!("case {} has no reference mask (patches are drawn as in training)", c.id)));
        }
        let s = c.prepared.hu.geometry().spacing();
        if s.iter().any(|&v| (v - network.preprocess.spacing_mm).abs() > 1e-6) {
            return Err(Error::Config(format!("case {} was prepared at {s:?} mm, the network expects {} mm", c.id, network.preprocess.spacing_mm)));
        }
    }
    // Untracked parameters: no autodiff graph is built (one per batch, never
    // freed without a backward pass, filled 23 GB in 250 batches of the wide
    // network), while the device still takes batch statistics.
    let mut model = net.no_grad().train();
    let momenta: Vec<f64> = norms_mut(&mut model).iter().map(|n| n.momentum).collect();
    let pathways = network.pathway_inputs(network.train_patch)?;
    let patch = network.train_patch;
    let refresh_every = (config.patches_per_subepoch / config.batch).max(1);
    let device = model.classifier.conv.weight.val().device();
    let mut rng = SplitMix64(seed);
    let mut volumes = Vec::new();
    for k in 0..batches {
        if k % refresh_every == 0 {
            volumes = sampling_volumes(network, config, cases, None, &mut rng)?;
        }
        // Momentum 1/(k+1): after batch k the running statistic is the mean
        // of the first k+1 batches' statistics.
        let m = 1.0 / (k + 1) as f64;
        norms_mut(&mut model).into_iter().for_each(|n| n.momentum = m);
        let batch = sample_batch(&volumes, config.batch, patch, &pathways, config.liver_fraction, &mut rng)?;
        let inputs: Vec<Tensor<5>> = batch
            .inputs
            .into_iter()
            .zip(&pathways)
            .map(|(buf, p)| Tensor::from_data(TensorData::new(buf, [config.batch, 1, p.input, p.input, p.input]), &device))
            .collect();
        let _ = model.forward(inputs);
        progress(k + 1, batches);
    }
    norms_mut(&mut model).into_iter().zip(momenta).for_each(|(n, m)| n.momentum = m);
    Ok(model.valid())
}

/// [`recalibrate`] on a model file, written atomically to `out` with the
/// same threshold and training summary plus what was done (`batch_norm_recalibrated`:
/// from which model, on which cases, how many patches, seed) and a new id.
pub fn recalibrate_file(
    model: &Path,
    out: &Path,
    config: &TrainConfig,
    cases: &[Case],
    batches: usize,
    seed: u64,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ModelInfo> {
    let (net, info) = checkpoint::load(model, &device.clone().autodiff())?;
    let net = recalibrate(net, &info.network, config, cases, batches, seed, progress)?;
    let mut training = info.training.clone();
    let record = serde_json::json!({
        "from": info.id,
        "cases": cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "batches": batches,
        "patches": batches * config.batch,
        "seed": seed,
    });
    match training.as_object_mut() {
        Some(map) => {
            map.insert("batch_norm_recalibrated".into(), record);
        }
        None => training = serde_json::json!({ "batch_norm_recalibrated": record }),
    }
    let provisional = ModelInfo { id: String::new(), network: info.network.clone(), threshold: info.threshold, training };
    let hash = checkpoint::weights_hash(&checkpoint::to_bytes(&net, &provisional)?);
    let info = ModelInfo { id: format!("liverseg-{}-bn-{hash}", provisional.network.name), ..provisional };
    checkpoint::save(out, &net, &info)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PathwayConfig;
    use liverseg_data::augment::AugmentConfig;
    use liverseg_preprocess::{prepare, PreprocessConfig};

    fn network() -> NetworkConfig {
        NetworkConfig {
            name: "tiny".into(),
            pathways: vec![PathwayConfig { factor: 1, features: vec![4, 4, 6] }, PathwayConfig { factor: 3, features: vec![4, 4, 6] }],
            kernel: 3,
            residual: vec![],
            fc: vec![8],
            dropout: 0.0,
            train_patch: 9,
            infer_patch: 12,
            preprocess: PreprocessConfig { spacing_mm: 6.0, ..PreprocessConfig::default() },
        }
    }

    /// Per-channel mean and biased variance of `[b, c, d, h, w]` data.
    fn channel_statistics(t: Tensor<5>) -> (Vec<f64>, Vec<f64>) {
        let [b, c, d, h, w] = t.dims();
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        let inner = d * h * w;
        let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
        for ch in 0..c {
            let xs = (0..b).flat_map(|n| v[(n * c + ch) * inner..(n * c + ch + 1) * inner].iter().map(|&x| f64::from(x)));
            let n = (b * inner) as f64;
            mean[ch] = xs.clone().sum::<f64>() / n;
            var[ch] = xs.map(|x| (x - mean[ch]).powi(2)).sum::<f64>() / n;
        }
        (mean, var)
    }

    #[test]
    fn statistics_are_the_plain_mean_over_the_batches() {
        let network = network();
        let config = TrainConfig { batch: 4, patches_per_subepoch: 8, augment: AugmentConfig { elastic: None, ..AugmentConfig::default() }, ..TrainConfig::default() };
        let cases: Vec<Case> = [1, 2]
            .into_iter()
            .map(|seed| {
                let p = liverseg_phantom::generate(&liverseg_phantom::PhantomConfig { seed, ..Default::default() });
                Case { id: format!("phantom-{seed}"), prepared: prepare(&p.ct, Some(&p.liver), &network.preprocess).unwrap() }
            })
            .collect();
        let net = DeepMedic::new(&network, &Device::flex().autodiff());
        let (batches, seed) = (5, 3);
        let out = recalibrate(net.clone(), &network, &config, &cases, batches, seed, &mut |_, _| {}).unwrap();

        // Replay the same batches (same seed, same draws, the cases augmented
        // anew every two batches) and take the statistics of the first
        // normalised layer's input: the first convolution's output.
        let plain = net.valid();
        let pathways = network.pathway_inputs(network.train_patch).unwrap();
        let mut rng = SplitMix64(seed);
        let mut volumes = Vec::new();
        let mut each = Vec::new();
        for k in 0..batches {
            if k % 2 == 0 {
                volumes = sampling_volumes(&network, &config, &cases, None, &mut rng).unwrap();
            }
            let batch = sample_batch(&volumes, config.batch, network.train_patch, &pathways, config.liver_fraction, &mut rng).unwrap();
            let n = pathways[0].input;
            let x = Tensor::<5>::from_data(TensorData::new(batch.inputs[0].clone(), [config.batch, 1, n, n, n]), &Device::flex());
            each.push(channel_statistics(crate::ops::conv3d(&plain.pathways[0].layers[0].conv, x)));
        }
        let norm = out.pathways[0].layers[1].norm.as_ref().unwrap();
        let got_mean = norm.running_mean.value().into_data().try_to_vec::<f32>().unwrap();
        let got_var = norm.running_var.value().into_data().try_to_vec::<f32>().unwrap();
        let mut told_apart = false;
        for ch in 0..got_mean.len() {
            let mean = each.iter().map(|(m, _)| m[ch]).sum::<f64>() / batches as f64;
            let var = each.iter().map(|(_, v)| v[ch]).sum::<f64>() / batches as f64;
            // burn's exponential average from 0, for contrast: the test must
            // be able to tell the two apart.
            let ema = each.iter().fold(0.0, |r, (m, _)| 0.9 * r + 0.1 * m[ch]);
            let tol = 1e-4 * (1.0 + mean.abs());
            assert!((f64::from(got_mean[ch]) - mean).abs() < tol, "channel {ch}: mean {} against {mean}", got_mean[ch]);
            assert!((f64::from(got_var[ch]) - var).abs() < 1e-4 * (1.0 + var), "channel {ch}: variance {} against {var}", got_var[ch]);
            told_apart |= (ema - mean).abs() > 10.0 * tol;
        }
        // The weights are random (unseeded): a channel whose mean is near 0
        // cannot tell the two apart, but not every channel can be.
        assert!(told_apart, "an exponential average would pass this test too");
    }
}
