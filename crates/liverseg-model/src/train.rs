//! DeepMedic training (METHOD.md): sub-epochs of sampled patches from
//! augmented training images, BCE, SGD with Nesterov momentum, learning rate
//! divided every N epochs, full-volume validation every few epochs with the
//! best checkpoint kept, resumable, deterministic for a seed.
//!
//! Files in the output folder:
//! - `last.lsm`, `last.optim.bpk`, `state.json`: resume point (each epoch);
//! - `best.lsm`: the final model with the searched threshold: the weight
//!   average of the last epochs (`average_last_epochs`), else the best by
//!   validation DSC, else the last checkpoint;
//! - `epoch-N.lsm`: the checkpoints of the epochs to average (if any);
//! - `train.jsonl`: one JSON object per step / validation / event.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use liverseg_data::augment::{augment_with, AugmentConfig};
use liverseg_data::sampler::{sample_batch, SamplingVolume};
use liverseg_preprocess::patches::PathwayInput;
use liverseg_preprocess::Prepared;
use liverseg_volume::SplitMix64;
use liverseg_volume::{Mask, Volume};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, ModelInfo};
use crate::config::NetworkConfig;
use crate::infer::predict;
use crate::network::{DeepMedic, Loss};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    /// DeepMedic: 20 sub-epochs of 1000 patches per epoch.
    pub subepochs: usize,
    #[serde(alias = "segments_per_subepoch")]
    pub patches_per_subepoch: usize,
    pub batch: usize,
    pub learning_rate: f64,
    /// Divide the learning rate by `lr_divisor` every `lr_step_epochs`.
    pub lr_step_epochs: usize,
    pub lr_divisor: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// Share of patches centred on liver (the rest on background in the body).
    pub liver_fraction: f64,
    /// Share of the background patches centred within `border_mm` of the
    /// liver (the rest anywhere in the body); 0 = the paper's sampling.
    pub border_fraction: f64,
    pub border_mm: f64,
    /// Hard-example mining: share of the liver patches centred on liver the
    /// current model misses, and of the background patches on tissue it takes
    /// for liver (probability >= 0.5 on the un-augmented training image, moved
    /// with each augmentation); 0 = off. Mined from epoch `hard_from_epoch` on,
    /// again every `hard_every` epochs.
    pub hard_fraction: f64,
    pub hard_from_epoch: usize,
    pub hard_every: usize,
    /// Full-volume validation every this many epochs (and after the last).
    pub validate_every: usize,
    pub augment: AugmentConfig,
    pub seed: u64,
    /// Stop after the epoch during which this much wall time has passed.
    pub max_minutes: Option<f64>,
    /// The final model is the weight average (stochastic weight averaging,
    /// batch-norm statistics averaged too) of the last this many epochs'
    /// checkpoints, kept as `epoch-N.lsm`, instead of the last checkpoint or
    /// the best by validation; 0 = off. Single checkpoints of the last
    /// learning-rate phase swing between states (models/next/README.md).
    pub average_last_epochs: usize,
    /// Stochastic weight averaging's constant learning rate (Izmailov et al.
    /// 2018): the averaged epochs (`average_last_epochs`) train at this rate
    /// instead of the step schedule's, so the average is taken over more
    /// distinct states than at the schedule's last, smallest rates. `None` =
    /// the step schedule throughout.
    pub swa_learning_rate: Option<f64>,
    /// The final model's threshold; `None` = the one searched on the
    /// validation (else training) cases, which is still searched and logged.
    /// A threshold searched on the training cases is biased high (the
    /// network is surer of CTs it was trained on): on the LiTS 117 fold the
    /// averaged model's searched 0.87 gave DSC 0.745 held out, 0.5 gave
    /// 0.901 (models/next/README.md).
    pub threshold: Option<f32>,
    /// `bce` (default) or `bce_dice` (cross entropy plus batch soft Dice).
    pub loss: Loss,
    /// L2 penalty added to every parameter's gradient before the momentum
    /// (SGD weight decay; DeepMedic's default is 1e-4); 0 = off. The
    /// optimizer's saved state is the same either way, so a run may resume
    /// with it changed.
    pub weight_decay: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 35,
            subepochs: 20,
            patches_per_subepoch: 1000,
            batch: 16,
            learning_rate: 0.007,
            lr_step_epochs: 32,
            lr_divisor: 2.0,
            momentum: 0.6,
            nesterov: true,
            liver_fraction: 0.5,
            border_fraction: 0.0,
            border_mm: 15.0,
            hard_fraction: 0.0,
            hard_from_epoch: 4,
            hard_every: 2,
            validate_every: 8,
            augment: AugmentConfig::default(),
            seed: 1,
            max_minutes: None,
            average_last_epochs: 0,
            swa_learning_rate: None,
            threshold: None,
            loss: Loss::Bce,
            weight_decay: 0.0,
        }
    }
}

impl TrainConfig {
    /// The learning rate of epoch `epoch` (0-based).
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        if let Some(swa) = self.swa_learning_rate {
            if averaged_epoch(self, epoch + 1) {
                return swa;
            }
        }
        self.learning_rate / self.lr_divisor.powi((epoch / self.lr_step_epochs.max(1)) as i32)
    }

    fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.subepochs == 0 || self.batch == 0 || self.patches_per_subepoch < self.batch {
            return Err(Error::Config("epochs, sub-epochs and batch must be positive, and a sub-epoch at least one batch".into()));
        }
        if !(self.learning_rate > 0.0 && self.lr_divisor >= 1.0 && (0.0..1.0).contains(&self.momentum)) {
            return Err(Error::Config("learning rate > 0, lr divisor >= 1 and momentum in [0, 1) are required".into()));
        }
        if !(0.0..=1.0).contains(&self.liver_fraction) {
            return Err(Error::Config(format!("liver fraction {} is not in [0, 1]", self.liver_fraction)));
        }
        if !(0.0..=1.0).contains(&self.border_fraction) || !(self.border_mm > 0.0) {
            return Err(Error::Config(format!("border fraction {} must be in [0, 1] and border_mm {} positive", self.border_fraction, self.border_mm)));
        }
        if !(0.0..=1.0).contains(&self.hard_fraction) || self.hard_every == 0 {
            return Err(Error::Config(format!("hard fraction {} must be in [0, 1] and hard_every at least 1", self.hard_fraction)));
        }
        if let Some(t) = self.threshold {
            if !(t > 0.0 && t < 1.0) {
                return Err(Error::Config(format!("threshold {t} is not in (0, 1)")));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::Config(format!("weight_decay {} must be 0 or more", self.weight_decay)));
        }
        if let Some(swa) = self.swa_learning_rate {
            if !(swa > 0.0 && swa.is_finite()) || self.average_last_epochs == 0 {
                return Err(Error::Config(format!("swa_learning_rate {swa} needs to be positive and average_last_epochs above 0")));
            }
        }
        if self.average_last_epochs > self.epochs {
            return Err(Error::Config(format!("average_last_epochs {} is more than the {} epochs", self.average_last_epochs, self.epochs)));
        }
        Ok(())
    }

    /// Whether hard examples are mined afresh before epoch `epoch` (0-based).
    fn mines_before(&self, epoch: usize) -> bool {
        self.hard_fraction > 0.0 && epoch >= self.hard_from_epoch && (epoch - self.hard_from_epoch).is_multiple_of(self.hard_every)
    }
}

/// A prepared case with its reference (training or validation).
pub struct Case {
    pub id: String,
    pub prepared: Prepared,
}

/// What the trainer reports as it goes (for progress bars and logs).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Step { epoch: usize, subepoch: usize, step: usize, steps_per_subepoch: usize, loss: f32, lr: f64, patches_per_s: f64 },
    Subepoch { epoch: usize, subepoch: usize, mean_loss: f32, seconds: f64 },
    Validation { epoch: usize, mean_dsc: f64, per_case: Vec<(String, f64)>, best: bool, seconds: f64 },
    Threshold { threshold: f32, mean_dsc: f64, at_half: f64, on: String },
    /// Hard examples mined before `epoch`: voxels of missed liver and of
    /// tissue taken for liver, over all training cases.
    HardExamples { epoch: usize, missed_liver: usize, false_liver: usize, seconds: f64 },
    Done { epochs: usize, best_dsc: f64, best_epoch: Option<usize>, minutes: f64 },
    Message { text: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    epochs_done: usize,
    rng: u64,
    best_dsc: f64,
    best_epoch: usize,
    minutes: f64,
}

pub struct TrainOutcome {
    pub best_model: PathBuf,
    /// The final model's DSC at 0.5: on the validation cases, or on the
    /// training cases when there are none.
    pub best_dsc: f64,
    /// The epoch of the best validation checkpoint when that is the final
    /// model; `None` for a weight average or a run without validation.
    pub best_epoch: Option<usize>,
    /// The epochs weight-averaged into the final model (empty if none).
    pub averaged_epochs: Vec<usize>,
    /// The model's threshold: the recipe's fixed one, else the searched one.
    pub threshold: f32,
    /// The threshold the search found (kept even when the recipe fixes one).
    pub searched_threshold: f32,
    pub epochs: usize,
    pub minutes: f64,
}

fn log_line(path: &Path, event: &Event) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::file(path, e))?;
    let line = serde_json::to_string(event).map_err(|e| Error::Model(e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| Error::file(path, e))
}

/// Probability maps of the validation cases with a network (eval mode).
fn validation_maps(net: &DeepMedic, config: &NetworkConfig, device: &Device, cases: &[&Case]) -> Result<Vec<Volume<f32>>> {
    cases
        .iter()
        .map(|c| {
            let input = c.prepared.normalised(&config.preprocess, 0.0);
            predict(std::slice::from_ref(net), config, device, &c.prepared, &input, config.infer_patch, crate::infer::TileStrategy::All, crate::infer::FlipAverage::Off, &mut |_, _| {}).map(|(p, _)| p)
        })
        .collect()
}

fn dsc_at(maps: &[Volume<f32>], cases: &[&Case], threshold: f32) -> Vec<f64> {
    maps.iter()
        .zip(cases)
        .map(|(p, c)| {
            let pred: Vec<u8> = p.data().iter().map(|&v| u8::from(v >= threshold)).collect();
            // Nothing to find and nothing found is a perfect score.
            liverseg_volume::dice(&pred, c.prepared.label.as_ref().map(Mask::data).unwrap_or(&[])).unwrap_or(1.0)
        })
        .collect()
}

/// The cases the threshold is searched on: those with liver. On a liver-free
/// case DSC is 1 without a single false-positive voxel and 0 with one, which
/// drives the search to whatever threshold silences it (measured: 0.81 instead
/// of about 0.4 over four liver and two liver-free training cases). Their false
/// positives are for post-processing and the volume flag. All of `pool` when
/// none has liver.
pub fn threshold_cases(pool: &[Case]) -> Vec<&Case> {
    let with_liver: Vec<&Case> = pool.iter().filter(|c| c.prepared.label.as_ref().is_some_and(|m| m.count_foreground() > 0)).collect();
    if with_liver.is_empty() {
        pool.iter().collect()
    } else {
        with_liver
    }
}

/// The threshold (0.05..0.95 by 0.01) that maximises the mean DSC over `cases`.
pub fn search_threshold(maps: &[Volume<f32>], cases: &[&Case]) -> (f32, f64) {
    let mut best = (0.5f32, f64::MIN);
    for t in 5..=95 {
        let t = t as f32 / 100.0;
        let d = dsc_at(maps, cases, t);
        let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
        if mean > best.1 + 1e-12 {
            best = (t, mean);
        }
    }
    best
}

fn sgd(config: &TrainConfig) -> ModuleOptimizer {
    let momentum = MomentumConfig { momentum: config.momentum, dampening: 0.0, nesterov: config.nesterov };
    let decay = (config.weight_decay > 0.0).then_some(WeightDecayConfig { penalty: config.weight_decay as f32 });
    SgdConfig::new().with_momentum(Some(momentum)).with_weight_decay(decay).init()
}

/// Train `network` on `train`, validating on `validation` (may be empty: then
/// the training cases are used for the threshold search and no best model is
/// chosen by DSC — the last one is kept as best).
#[allow(clippy::too_many_arguments)]
pub fn train(
    network: &NetworkConfig,
    config: &TrainConfig,
    train_cases: &[Case],
    validation: &[Case],
    out_dir: &Path,
    resume: bool,
    device: &Device,
    on_event: &mut dyn FnMut(&Event),
) -> Result<TrainOutcome> {
    network.validate()?;
    config.validate()?;
    if train_cases.is_empty() {
        return Err(Error::Config("no training case".into()));
    }
    for c in train_cases.iter().chain(validation) {
        if c.prepared.label.is_none() {
            return Err(Error::Config(format!("case {} has no reference mask", c.id)));
        }
        let s = c.prepared.hu.geometry().spacing();
        if s.iter().any(|&v| (v - network.preprocess.spacing_mm).abs() > 1e-6) {
            return Err(Error::Config(format!("case {} was prepared at {s:?} mm, the network expects {} mm", c.id, network.preprocess.spacing_mm)));
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::file(out_dir, e))?;
    let log = out_dir.join("train.jsonl");
    let (last, last_optim, state_path, best_path) =
        (out_dir.join("last.lsm"), out_dir.join("last.optim.bpk"), out_dir.join("state.json"), out_dir.join("best.lsm"));
    let train_device = device.clone().autodiff();
    let mut emit = |e: Event| -> Result<()> {
        on_event(&e);
        log_line(&log, &e)
    };

    let mut model = seeded_network(network, &train_device, config.seed);
    let mut optim = sgd(config);
    let mut state = State { epochs_done: 0, rng: config.seed, best_dsc: f64::MIN, best_epoch: 0, minutes: 0.0 };
    if resume && state_path.exists() {
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::file(&state_path, e))?;
        state = serde_json::from_str(&text).map_err(|e| Error::file(&state_path, e))?;
        let (net, info) = checkpoint::load(&last, &train_device)?;
        if info.network != *network {
            return Err(Error::Config(format!("{} was trained with another network config; resume with the same one", last.display())));
        }
        model = net.train();
        optim = optim.load(&last_optim).map_err(|e| Error::file(&last_optim, std::io::Error::other(format!("{e:?}"))))?;
        emit(Event::Message { text: format!("resumed after epoch {}", state.epochs_done) })?;
    }
    let pathways = network.pathway_inputs(network.train_patch)?;
    let patch = network.train_patch;
    let steps = config.patches_per_subepoch / config.batch;
    let started = Instant::now();
    let minutes_before = state.minutes;
    let mut rng = SplitMix64(state.rng);
    let id_prefix = format!("liverseg-{}", network.name);
    let hard_path = out_dir.join("hard.json");
    let mut hard: Option<Vec<Mask>> = None;
    let info_for = |threshold: f32, training: serde_json::Value| ModelInfo { id: id_prefix.clone(), network: network.clone(), threshold, training };

    while state.epochs_done < config.epochs {
        let epoch = state.epochs_done;
        let lr = config.learning_rate_at(epoch);
        if config.mines_before(epoch) {
            let t = Instant::now();
            let masks = mine_hard(&model.valid(), network, device, train_cases)?;
            save_hard(&hard_path, epoch, train_cases, &masks)?;
            let (missed_liver, false_liver) = count_hard(train_cases, &masks);
            emit(Event::HardExamples { epoch, missed_liver, false_liver, seconds: t.elapsed().as_secs_f64() })?;
            hard = Some(masks);
        } else if hard.is_none() && config.hard_fraction > 0.0 && epoch > config.hard_from_epoch {
            // Resumed between two minings: the last mining's masks, as the
            // uninterrupted run has them.
            let mined = config.hard_from_epoch + (epoch - config.hard_from_epoch) / config.hard_every * config.hard_every;
            hard = Some(match load_hard(&hard_path, mined, train_cases)? {
                Some(masks) => masks,
                None => {
                    emit(Event::Message { text: format!("{} has no hard examples of epoch {mined}: mining them with the model of epoch {epoch}", hard_path.display()) })?;
                    mine_hard(&model.valid(), network, device, train_cases)?
                }
            });
        }
        for sub in 0..config.subepochs {
            let t0 = Instant::now();
            let volumes = sampling_volumes(network, config, train_cases, hard.as_deref(), &mut rng)?;
            let mut loss_sum = 0.0f32;
            for step in 0..steps {
                let ts = Instant::now();
                let batch = sample_batch(&volumes, config.batch, patch, &pathways, config.liver_fraction, &mut rng)?;
                let inputs = batch_inputs(batch.inputs, &pathways, config.batch, &train_device);
                let target = Tensor::from_data(TensorData::new(batch.labels, [config.batch, 1, patch, patch, patch]), &train_device);
                let loss = config.loss.of(model.forward(inputs), target);
                let loss_value = loss.clone().into_scalar::<f32>();
                if !loss_value.is_finite() {
                    return Err(Error::Model(format!("loss became {loss_value} at epoch {epoch} sub-epoch {sub} step {step}; lower the learning rate")));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                loss_sum += loss_value;
                let rate = config.batch as f64 / ts.elapsed().as_secs_f64();
                emit(Event::Step { epoch, subepoch: sub, step, steps_per_subepoch: steps, loss: loss_value, lr, patches_per_s: rate })?;
            }
            emit(Event::Subepoch { epoch, subepoch: sub, mean_loss: loss_sum / steps as f32, seconds: t0.elapsed().as_secs_f64() })?;
        }
        state.epochs_done += 1;
        state.rng = rng.0;
        state.minutes = minutes_before + started.elapsed().as_secs_f64() / 60.0;
        let out_of_time = config.max_minutes.is_some_and(|m| state.minutes >= m);
        let last_epoch = state.epochs_done == config.epochs || out_of_time;
        if !validation.is_empty() && (state.epochs_done.is_multiple_of(config.validate_every.max(1)) || last_epoch) {
            let tv = Instant::now();
            let eval = model.valid();
            let cases: Vec<&Case> = validation.iter().collect();
            let maps = validation_maps(&eval, network, device, &cases)?;
            let d = dsc_at(&maps, &cases, 0.5);
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let best = mean > state.best_dsc;
            if best {
                state.best_dsc = mean;
                state.best_epoch = state.epochs_done;
                let training = serde_json::json!({"epoch": state.epochs_done, "validation_dsc_at_0.5": mean});
                checkpoint::save(&best_path, &eval, &info_for(0.5, training))?;
            }
            let per_case = validation.iter().map(|c| c.id.clone()).zip(d).collect();
            emit(Event::Validation { epoch: state.epochs_done, mean_dsc: mean, per_case, best, seconds: tv.elapsed().as_secs_f64() })?;
        }
        // Resume point: model, optimizer, then the state that names them.
        // An epoch to be averaged is kept first, so a resume point never
        // names an epoch whose copy is missing.
        if averaged_epoch(config, state.epochs_done) {
            checkpoint::save(&epoch_path(out_dir, state.epochs_done), &model.valid(), &info_for(0.5, serde_json::json!({"epoch": state.epochs_done})))?;
        }
        checkpoint::save(&last, &model.valid(), &info_for(0.5, serde_json::json!({"epoch": state.epochs_done})))?;
        optim.save(&last_optim).map_err(|e| Error::file(&last_optim, std::io::Error::other(format!("{e:?}"))))?;
        let text = serde_json::to_string_pretty(&state).map_err(|e| Error::Model(e.to_string()))?;
        liverseg_io::atomic::write_atomic(&state_path, |w| w.write_all(text.as_bytes()))?;
        if out_of_time {
            emit(Event::Message { text: format!("time budget reached after epoch {}", state.epochs_done) })?;
            break;
        }
    }

    // Threshold search with the final model (the average of the last
    // epochs, else the best by validation, else the last), on validation (or
    // training) cases.
    let averaged: Vec<usize> = if config.average_last_epochs > 0 && state.epochs_done == config.epochs {
        (config.epochs + 1 - config.average_last_epochs..=config.epochs).collect()
    } else {
        Vec::new()
    };
    // best.lsm holds the best validated checkpoint only when there is validation.
    let validated_best = !validation.is_empty() && best_path.exists();
    let net = if !averaged.is_empty() {
        let paths: Vec<PathBuf> = averaged.iter().map(|&e| epoch_path(out_dir, e)).collect();
        let nets: Vec<DeepMedic> = checkpoint::load_same_network(&paths, device, "the epochs to average must be of one network")?.into_iter().map(|(n, _)| n).collect();
        emit(Event::Message { text: format!("final model: the weight average of epochs {}-{}", averaged[0], config.epochs) })?;
        crate::average::average(&nets)?
    } else if !validated_best {
        checkpoint::load(&last, device)?.0
    } else {
        checkpoint::load(&best_path, device)?.0
    };
    let (pool, on) = if validation.is_empty() { (train_cases, "training") } else { (validation, "validation") };
    let search_cases = threshold_cases(pool);
    let maps = validation_maps(&net, network, device, &search_cases)?;
    let (threshold, mean) = search_threshold(&maps, &search_cases);
    let at_half = dsc_at(&maps, &search_cases, 0.5).iter().sum::<f64>() / search_cases.len() as f64;
    emit(Event::Threshold { threshold, mean_dsc: mean, at_half, on: on.into() })?;
    let searched = threshold;
    let threshold = match config.threshold {
        Some(fixed) => {
            emit(Event::Message { text: format!("the model's threshold is the recipe's {fixed} (searched: {searched})") })?;
            fixed
        }
        None => searched,
    };
    let bytes = checkpoint::to_bytes(&net, &info_for(threshold, serde_json::Value::Null))?;
    let hash = checkpoint::weights_hash(&bytes);
    // With averaging, the figure is the average's (on the search cases at 0.5).
    let best_dsc = if validation.is_empty() || !averaged.is_empty() { at_half } else { state.best_dsc };
    // Only a best-by-validation checkpoint is one epoch's.
    let best_epoch = (averaged.is_empty() && validated_best).then_some(state.best_epoch);
    let training = serde_json::json!({
        "train_cases": train_cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "validation_cases": validation.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "epochs": state.epochs_done,
        "best_epoch": best_epoch,
        "validation_dsc_at_0.5": best_dsc,
        "threshold_search": {"on": on, "threshold": searched, "mean_dsc": mean},
        "averaged_epochs": averaged,
        "minutes": state.minutes,
        "train_config": config,
    });
    let info = ModelInfo { id: format!("{id_prefix}-{hash}"), network: network.clone(), threshold, training };
    checkpoint::save(&best_path, &net, &info)?;
    emit(Event::Done { epochs: state.epochs_done, best_dsc, best_epoch, minutes: state.minutes })?;
    Ok(TrainOutcome {
        best_model: best_path,
        best_dsc,
        best_epoch,
        averaged_epochs: averaged,
        threshold,
        searched_threshold: searched,
        epochs: state.epochs_done,
        minutes: state.minutes,
    })
}

/// A sampled batch's per-pathway input buffers as `[batch, 1, n, n, n]` tensors.
pub(crate) fn batch_inputs(buffers: Vec<Vec<f32>>, pathways: &[PathwayInput], batch: usize, device: &Device) -> Vec<Tensor<5>> {
    buffers.into_iter().zip(pathways).map(|(buf, p)| Tensor::from_data(TensorData::new(buf, [batch, 1, p.input, p.input, p.input]), device)).collect()
}

/// Every training image augmented once (as each sub-epoch does) and ready to
/// sample patches from, with the recipe's border and hard-example shares.
/// `hard`: one mask per case when hard examples are mined.
pub fn sampling_volumes(
    network: &NetworkConfig,
    config: &TrainConfig,
    cases: &[Case],
    hard: Option<&[Mask]>,
    rng: &mut SplitMix64,
) -> Result<Vec<SamplingVolume>> {
    let pad = network.preprocess.normalise(-1024.0);
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let a = augment_with(&c.prepared, hard.map(|h| &h[i]), &config.augment, rng)?;
            let image = a.hu.map(|&v| network.preprocess.normalise(v));
            let mut volume = SamplingVolume::new(&image, &a.label, &a.body, pad)?.with_border(&a.label, &a.body, config.border_mm, config.border_fraction)?;
            if let Some(h) = &a.hard {
                volume = volume.with_hard(h, &a.label, &a.body, config.hard_fraction)?;
            }
            Ok(volume)
        })
        .collect()
}

/// Whether epoch `epoch` (1-based, just finished) is one of those averaged
/// into the final model.
fn averaged_epoch(config: &TrainConfig, epoch: usize) -> bool {
    config.average_last_epochs > 0 && epoch + config.average_last_epochs > config.epochs && epoch <= config.epochs
}

fn epoch_path(out_dir: &Path, epoch: usize) -> PathBuf {
    out_dir.join(format!("epoch-{epoch}.lsm"))
}

/// Where the model errs on each training case (un-augmented, eval mode):
/// voxels whose probability is on the wrong side of 0.5. One case at a time,
/// so only one probability map is held.
fn mine_hard(net: &DeepMedic, network: &NetworkConfig, device: &Device, cases: &[Case]) -> Result<Vec<Mask>> {
    cases
        .iter()
        .map(|c| {
            let map = validation_maps(net, network, device, &[c])?.remove(0);
            let label = c.prepared.label.as_ref().expect("training cases have labels");
            Ok(Volume::new(
                label.geometry().clone(),
                map.data().iter().zip(label.data()).map(|(&p, &l)| u8::from((p >= 0.5) != (l != 0))).collect(),
            )
            .expect("same grid"))
        })
        .collect()
}

/// Missed-liver and false-liver voxels (in the body) over all cases.
fn count_hard(cases: &[Case], masks: &[Mask]) -> (usize, usize) {
    let (mut missed, mut false_liver) = (0, 0);
    for (c, m) in cases.iter().zip(masks) {
        let label = c.prepared.label.as_ref().expect("training cases have labels");
        for ((&h, &l), &b) in m.data().iter().zip(label.data()).zip(c.prepared.body.data()) {
            match (h != 0, l != 0, b != 0) {
                (true, true, _) => missed += 1,
                (true, false, true) => false_liver += 1,
                _ => {}
            }
        }
    }
    (missed, false_liver)
}

/// The hard-example masks of one mining, kept so a resumed run samples as the
/// uninterrupted one would: per case its id, grid size and marked voxels.
#[derive(Serialize, Deserialize)]
struct HardFile {
    epoch: usize,
    cases: Vec<HardCase>,
}

#[derive(Serialize, Deserialize)]
struct HardCase {
    id: String,
    dims: [usize; 3],
    voxels: Vec<u32>,
}

fn save_hard(path: &Path, epoch: usize, cases: &[Case], masks: &[Mask]) -> Result<()> {
    let file = HardFile {
        epoch,
        cases: cases
            .iter()
            .zip(masks)
            .map(|(c, m)| HardCase {
                id: c.id.clone(),
                dims: m.geometry().dims(),
                voxels: m.data().iter().enumerate().filter(|(_, &v)| v != 0).map(|(i, _)| i as u32).collect(),
            })
            .collect(),
    };
    let text = serde_json::to_string(&file).map_err(|e| Error::Model(e.to_string()))?;
    liverseg_io::atomic::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

/// The masks saved by [`save_hard`] for mining epoch `epoch`, or None when the
/// file is missing or belongs to another mining or other cases.
fn load_hard(path: &Path, epoch: usize, cases: &[Case]) -> Result<Option<Vec<Mask>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::file(path, e)),
    };
    let file: HardFile = serde_json::from_str(&text).map_err(|e| Error::file(path, e))?;
    if file.epoch != epoch || file.cases.len() != cases.len() {
        return Ok(None);
    }
    let mut masks = Vec::with_capacity(cases.len());
    for (c, h) in cases.iter().zip(&file.cases) {
        let g = c.prepared.hu.geometry();
        if h.id != c.id || h.dims != g.dims() {
            return Ok(None);
        }
        let mut data = vec![0u8; g.len()];
        for &v in &h.voxels {
            *data.get_mut(v as usize).ok_or_else(|| Error::file(path, std::io::Error::other(format!("voxel {v} is outside case {}", c.id))))? = 1;
        }
        masks.push(Volume::new(g.clone(), data).expect("same grid"));
    }
    Ok(Some(masks))
}

/// burn draws initial weights from the backend's process-wide RNG, and only
/// when a parameter is first used. Seeding and then forcing every parameter
/// under one lock keeps a training run reproducible for its seed even when
/// another thread (a second run, a test) builds a network at the same time.
fn seeded_network(network: &NetworkConfig, device: &Device, seed: u64) -> DeepMedic {
    struct Materialise;
    impl ModuleVisitor for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    static INITIALISING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INITIALISING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    let model = DeepMedic::new(network, device);
    model.visit(&mut Materialise);
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_imgproc::crop::CropBox;
    use liverseg_volume::Geometry;

    fn case(id: &str, label: [u8; 4]) -> Case {
        let g = Geometry::new([4, 1, 1], [1.0; 3], [0.0; 3], liverseg_volume::IDENTITY).unwrap();
        let prepared = Prepared {
            hu: Volume::new(g.clone(), vec![0.0; 4]).unwrap(),
            body: Mask::new(g.clone(), vec![1; 4]).unwrap(),
            label: Some(Mask::new(g.clone(), label.to_vec()).unwrap()),
            crop: CropBox::whole([4, 1, 1]),
            original: g,
        };
        Case { id: id.into(), prepared }
    }

    #[test]
    fn recipes_written_before_the_patch_rename_still_load() {
        // models/*.train.json of earlier sessions say segments_per_subepoch.
        let old: TrainConfig = serde_json::from_str(r#"{"epochs": 3, "segments_per_subepoch": 400}"#).unwrap();
        assert_eq!((old.epochs, old.patches_per_subepoch), (3, 400));
        let new: TrainConfig = serde_json::from_str(r#"{"patches_per_subepoch": 400}"#).unwrap();
        assert_eq!(new.patches_per_subepoch, 400);
        assert!(serde_json::from_str::<TrainConfig>(r#"{"patches": 400}"#).is_err(), "unknown keys are still refused");
    }

    #[test]
    fn every_committed_recipe_loads() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut recipes = vec![models.join("liverseg-default.train.json")];
        for entry in std::fs::read_dir(&models).unwrap() {
            let recipe = entry.unwrap().path().join("train.json");
            if recipe.exists() {
                recipes.push(recipe);
            }
        }
        assert!(recipes.len() > 5, "{recipes:?}");
        for recipe in &recipes {
            let text = std::fs::read_to_string(recipe).unwrap();
            let config: TrainConfig = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", recipe.display()));
            config.validate().unwrap_or_else(|e| panic!("{}: {e}", recipe.display()));
        }
        // The recipe file published beside the built-in model is the one it
        // was trained with: its header keeps the configuration train used.
        let read = |p: PathBuf| serde_json::from_str::<TrainConfig>(&std::fs::read_to_string(p).unwrap()).unwrap();
        let info = crate::checkpoint::read_info(&models.join("liverseg-default.lsm")).unwrap();
        let trained: TrainConfig = serde_json::from_value(info.training["train_config"].clone()).unwrap();
        let published = read(models.join("liverseg-default.train.json"));
        assert_eq!(trained, published);
        assert_eq!(read(models.join("dice/train.json")).loss, Loss::BceDice);
    }

    #[test]
    fn swa_learning_rate_holds_over_the_averaged_epochs_only() {
        let config = TrainConfig { epochs: 80, lr_step_epochs: 10, learning_rate: 0.02, average_last_epochs: 20, swa_learning_rate: Some(0.0025), ..TrainConfig::default() };
        config.validate().unwrap();
        // Epochs are 0-based here: 59 is the 60th, the last before the average.
        assert_eq!(config.learning_rate_at(0), 0.02);
        assert_eq!(config.learning_rate_at(59), 0.02 / 32.0);
        assert_eq!(config.learning_rate_at(60), 0.0025);
        assert_eq!(config.learning_rate_at(79), 0.0025);
        let step_only = TrainConfig { swa_learning_rate: None, ..config.clone() };
        assert_eq!(step_only.learning_rate_at(60), 0.02 / 64.0);
        assert!(TrainConfig { average_last_epochs: 0, ..config.clone() }.validate().is_err(), "nothing averaged");
        assert!(TrainConfig { swa_learning_rate: Some(0.0), ..config }.validate().is_err());
    }

    #[test]
    fn threshold_is_searched_on_cases_with_liver_only() {
        let pool = [case("liver", [1, 1, 0, 0]), case("liver-free", [0; 4])];
        let g = pool[0].prepared.hu.geometry().clone();
        let maps = [Volume::new(g.clone(), vec![0.9, 0.6, 0.4, 0.1]).unwrap(), Volume::new(g, vec![0.85, 0.0, 0.0, 0.0]).unwrap()];
        let chosen = threshold_cases(&pool);
        assert_eq!(chosen.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["liver"]);
        // 0.41 is the lowest threshold separating 0.6 (liver) from 0.4.
        let (t, dsc) = search_threshold(&maps[..1], &chosen);
        assert!((t - 0.41).abs() < 1e-6 && (dsc - 1.0).abs() < 1e-12, "{t} {dsc}");
        // With the liver-free case in, the search silences its one voxel at 0.85
        // and loses half of the liver: what threshold_cases avoids.
        let all: Vec<&Case> = pool.iter().collect();
        let (t_all, _) = search_threshold(&maps, &all);
        assert!(t_all > 0.85, "{t_all}");
        let none = [case("a", [0; 4]), case("b", [0; 4])];
        assert_eq!(threshold_cases(&none).len(), 2);
    }
}
