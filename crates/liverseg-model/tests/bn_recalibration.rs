//! Batch-norm recalibration (`liverseg_model::bn_stats`): the statistics are
//! the plain mean over the batches (replayed with the training sampling),
//! only they change, the first batch replaces whatever they were, a seed
//! repeats, bad input is refused with the case named, and a model file is
//! rewritten with a record of what was done.

mod common;

use burn::module::{Module, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use liverseg_data::augment::AugmentConfig;
use liverseg_data::sampler::sample_batch;
use liverseg_model::bn_stats::{recalibrate, recalibrate_file};
use liverseg_model::train::{sampling_volumes, Case, TrainConfig};
use liverseg_model::{checkpoint, DeepMedic, ModelInfo, NetworkConfig};
use liverseg_phantom::{generate, PhantomConfig};
use liverseg_preprocess::prepare;
use liverseg_volume::SplitMix64;

fn case(seed: u64, network: &NetworkConfig) -> Case {
    let p = generate(&PhantomConfig { seed, ..PhantomConfig::default() });
    Case { id: format!("phantom-{seed}"), prepared: prepare(&p.ct, Some(&p.liver), &network.preprocess).unwrap() }
}

fn config() -> TrainConfig {
    TrainConfig { batch: 4, patches_per_subepoch: 8, augment: AugmentConfig { elastic: None, ..AugmentConfig::default() }, ..TrainConfig::default() }
}

fn autodiff() -> Device {
    Device::flex().autodiff()
}

/// Every batch norm's (running mean, running variance), in network order.
fn statistics(net: &DeepMedic) -> Vec<(Vec<f32>, Vec<f32>)> {
    let v = |s: &RunningState<Tensor<1>>| s.value().into_data().try_to_vec::<f32>().unwrap();
    let blocks = net.pathways.iter().flat_map(|p| p.layers.iter()).chain(&net.fc).chain(std::iter::once(&net.classifier));
    blocks.filter_map(|b| b.norm.as_ref()).map(|n| (v(&n.running_mean), v(&n.running_var))).collect()
}

/// The learnt parameters of every block: batch norm's gamma and beta, the
/// PReLU slopes, the convolution's weights and bias.
fn learnt(net: &DeepMedic) -> Vec<Vec<f32>> {
    let v1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    let blocks = net.pathways.iter().flat_map(|p| p.layers.iter()).chain(&net.fc).chain(std::iter::once(&net.classifier));
    let mut out = Vec::new();
    for b in blocks {
        if let Some(n) = &b.norm {
            out.push(v1(n.gamma.val()));
            out.push(v1(n.beta.val()));
        }
        if let Some(a) = &b.act {
            out.push(v1(a.alpha.val()));
        }
        out.push(b.conv.weight.val().into_data().try_to_vec::<f32>().unwrap());
        out.extend(b.conv.bias.as_ref().map(|x| v1(x.val())));
    }
    out
}

fn scrambled(net: &DeepMedic) -> DeepMedic {
    let mut net = net.clone();
    let blocks = net.pathways.iter_mut().flat_map(|p| p.layers.iter_mut()).chain(net.fc.iter_mut()).chain(std::iter::once(&mut net.classifier));
    for n in blocks.filter_map(|b| b.norm.as_mut()) {
        let c = n.gamma.val().dims()[0];
        n.running_mean = RunningState::new(Tensor::full([c], 7.0, &autodiff()));
        n.running_var = RunningState::new(Tensor::full([c], 50.0, &autodiff()));
    }
    net
}

#[test]
fn only_the_statistics_change_and_the_first_batch_replaces_them() {
    let network = common::tiny_network();
    let cases = vec![case(1, &network), case(2, &network)];
    let net = DeepMedic::new(&network, &autodiff());
    let before = statistics(&net);
    let mut calls = Vec::new();
    let one = recalibrate(net.clone(), &network, &config(), &cases, 1, 5, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(calls, [(1, 1)]);
    assert_ne!(statistics(&one), before, "the statistics should have moved from their initial 0 and 1");
    assert_eq!(learnt(&one), learnt(&net.clone().valid()), "weights, gamma, beta and PReLU slopes stay");
    // Momentum 1 for the first batch: what the statistics were does not matter.
    let again = recalibrate(scrambled(&net), &network, &config(), &cases, 1, 5, &mut |_, _| {}).unwrap();
    assert_eq!(statistics(&again), statistics(&one));
    // And the layers keep their own momentum for any later training.
    let mut back = one.clone();
    let blocks = back.pathways.iter_mut().flat_map(|p| p.layers.iter_mut()).chain(back.fc.iter_mut());
    assert!(blocks.filter_map(|b| b.norm.as_mut()).all(|n| (n.momentum - 0.1).abs() < 1e-12));
}

#[test]
fn a_seed_repeats() {
    let network = common::tiny_network();
    let cases = vec![case(1, &network), case(2, &network)];
    let net = DeepMedic::new(&network, &autodiff());
    let run = |seed| statistics(&recalibrate(net.clone(), &network, &config(), &cases, 5, seed, &mut |_, _| {}).unwrap());
    let five = run(5);
    assert_eq!(five, run(5), "same seed, same statistics");
    assert_ne!(run(6), five, "another seed draws other patches");
}

#[test]
fn bad_input_is_refused_with_the_case_named() {
    let network = common::tiny_network();
    let net = DeepMedic::new(&network, &autodiff());
    let mut unlabelled = case(1, &network);
    unlabelled.prepared.label = None;
    let e = recalibrate(net.clone(), &network, &config(), &[unlabelled], 2, 1, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("phantom-1") && e.contains("no reference mask"), "{e}");
    let coarse = NetworkConfig { preprocess: liverseg_preprocess::PreprocessConfig { spacing_mm: 8.0, ..network.preprocess.clone() }, ..network.clone() };
    let e = recalibrate(net.clone(), &network, &config(), &[case(2, &coarse)], 2, 1, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("phantom-2") && e.contains("6 mm"), "{e}");
    let e = recalibrate(net.clone(), &network, &config(), &[case(2, &network)], 0, 1, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("at least one batch"), "{e}");
    assert!(recalibrate(net, &network, &config(), &[], 2, 1, &mut |_, _| {}).is_err());
}

#[test]
fn a_model_file_is_rewritten_with_what_was_done() {
    let network = common::tiny_network();
    let dir = tempfile::tempdir().unwrap();
    let (from, out) = (dir.path().join("a.lsm"), dir.path().join("a-bn.lsm"));
    let info = ModelInfo { id: "liverseg-tiny-abc".into(), network: network.clone(), threshold: 0.42, training: serde_json::json!({"epochs": 3}) };
    checkpoint::save(&from, &DeepMedic::new(&network, &Device::flex()), &info).unwrap();
    let cases = vec![case(1, &network)];
    let written = recalibrate_file(&from, &out, &config(), &cases, 3, 9, &Device::flex(), &mut |_, _| {}).unwrap();
    let (net, read) = checkpoint::load(&out, &Device::flex()).unwrap();
    assert_eq!(read.id, written.id);
    assert!(read.id.starts_with("liverseg-tiny-bn-"), "{}", read.id);
    assert!((read.threshold - 0.42).abs() < 1e-6, "the threshold is kept");
    assert_eq!(read.training["epochs"], 3, "the training summary is kept");
    let r = &read.training["batch_norm_recalibrated"];
    assert_eq!((r["from"].as_str(), r["batches"].as_u64(), r["patches"].as_u64(), r["seed"].as_u64()), (Some("liverseg-tiny-abc"), Some(3), Some(12), Some(9)));
    assert_eq!(r["cases"], serde_json::json!(["phantom-1"]));
    let (orig, _) = checkpoint::load(&from, &Device::flex()).unwrap();
    assert_ne!(statistics(&net), statistics(&orig));
    assert_eq!(learnt(&net), learnt(&orig));
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
    let network = common::tiny_network();
    let config = config();
    let cases = vec![case(1, &network), case(2, &network)];
    let net = DeepMedic::new(&network, &autodiff());
    let (batches, seed) = (5, 3);
    let out = recalibrate(net.clone(), &network, &config, &cases, batches, seed, &mut |_, _| {}).unwrap();

    // Replay the same batches (same seed, same draws, the cases augmented
    // anew every two batches: 8 patches per sub-epoch in batches of 4) and
    // take the statistics of the first normalised layer's input: the first
    // convolution's output.
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
        each.push(channel_statistics(liverseg_model::ops::conv3d(&plain.pathways[0].layers[0].conv, x)));
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
