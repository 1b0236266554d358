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
//!
//! Measured (`models/wide/README.md`): it lifts the worst single checkpoints
//! by up to 0.13 DSC but lowered the five `fast` folds' final models (median
//! 0.901 -> 0.879, one fold 0.847 -> 0.720), so it is a tool, in no recipe.

use std::path::Path;

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Device;
use liverseg_data::sampler::sample_batch;
use liverseg_volume::SplitMix64;

use crate::checkpoint::{self, ModelInfo};
use crate::config::NetworkConfig;
use crate::network::DeepMedic;
use crate::train::{batch_inputs, sampling_volumes, Case, TrainConfig};
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
        let _ = model.forward(batch_inputs(batch.inputs, &pathways, config.batch, &device));
        progress(k + 1, batches);
    }
    norms_mut(&mut model).into_iter().zip(momenta).for_each(|(n, m)| n.momentum = m);
    Ok(model.valid())
}

/// [`recalibrate`] on a model file, written atomically to `out` with the
/// same threshold and training summary plus what was done (`batch_norm_recalibrated`:
/// from which model, on which cases, how many patches, seed) and a new id.
#[allow(clippy::too_many_arguments)] // the `recalibrate` command's options, one for one
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
    checkpoint::save_derived(out, &net, info.network, info.threshold, training, "bn")
}

