use anyhow::{bail, Context};
use liverseg_data::cache::LoadedCase;
use liverseg_data::datasets::{load_manifest, Split};
use liverseg_data::load_training_cases;
use liverseg_metrics::plot::{line_chart, LineSeries};
use liverseg_model::train::{train, Case, Event, TrainConfig};
use liverseg_model::NetworkConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::progress::Progress;

const LONG_ABOUT: &str = "\
Train the DeepMedic network (METHOD.md) on CTs with reference liver masks.

DATA is a manifest (TOML: [[source]] entries with name, layout = lits | msd |
sliver07 | cases | dicom, path; and an optional [split]) or a folder of cases
(<id>/ct.nii.gz + <id>/liver.nii.gz, as ../shared/data/cases). Duplicate CTs
across sources (same voxels) are reported and trained on once.

Defaults follow the paper and DeepMedic: batch 16, BCE, SGD with Nesterov
momentum 0.6, learning rate 0.007 halved every 32 epochs, 20 sub-epochs of 1000
patches per epoch, half the patches centred on liver, validation DSC every
8 epochs (best model kept), augmentation: HU shift N(-40, 40), x/y flips
(p = 0.5), elastic deformation. --config FILE.json overrides any of them
(keys: epochs, subepochs, patches_per_subepoch, batch, learning_rate,
lr_step_epochs, lr_divisor, momentum, nesterov, liver_fraction,
border_fraction, border_mm, validate_every, augment {hu_shift, flip_x,
flip_y, elastic, spatial, intensity, thick_slices, non_contrast, scan_range}, seed,
max_minutes, average_last_epochs, swa_learning_rate, threshold, loss, weight_decay, hard_fraction,
hard_from_epoch, hard_every). border_fraction: share of background patches centred within
border_mm of the liver (default 0, the paper's). The augment families after
elastic are off by default; models/next/train.json switches
them on (see crates/liverseg-data/src/augment.rs for each one's settings).

average_last_epochs N: the final model is the weight average of the last N
epochs' checkpoints (kept as epoch-N.lsm), not the last or the best one.
swa_learning_rate R: those averaged epochs train at the constant rate R
instead of the step schedule's (stochastic weight averaging).
threshold T: the final model's threshold is T (e.g. 0.5, the method's)
instead of the one searched on the validation or training cases (still logged).
loss: bce (default) or bce_dice (cross entropy plus batch soft Dice).
weight_decay W: L2 penalty on every parameter in the SGD update (DeepMedic's
is 1e-4; default 0).

Output folder: best.lsm (the model to use with `segment --model`), last.lsm +
last.optim.bpk + state.json (for --resume), train.jsonl (every step, sub-epoch,
validation and the threshold search), curves.png/.svg (loss and validation DSC),
and cache/ (pre-processed cases, reused by later runs).";

#[derive(clap::Args)]
#[command(after_help = LONG_ABOUT)]
pub struct Args {
    /// A dataset manifest (.toml) or a folder of cases.
    pub data: PathBuf,
    /// Output folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Network preset: fast (CPU) or paper.
    #[arg(long, default_value = "fast")]
    pub preset: String,
    /// A network config JSON instead of a preset.
    #[arg(long)]
    pub network: Option<PathBuf>,
    /// Training config JSON (see below); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub subepochs: Option<usize>,
    /// Training patches per sub-epoch (DeepMedic's "segments"; --segments
    /// still accepted).
    #[arg(long, alias = "segments")]
    pub patches: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of the initial weights, the sampling and the augmentation: a run
    /// on the CPU with the same data, config and seed repeats exactly.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after the epoch in which this many minutes have passed.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Validation case id (repeatable); overrides the manifest's split.
    #[arg(long)]
    pub validation: Vec<String>,
    /// Validation share of the cases, drawn with --seed; overrides the manifest's split.
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Pre-processing cache folder (default OUT/cache).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Continue from OUT/last.lsm and OUT/state.json.
    #[arg(long)]
    pub resume: bool,
    /// cpu (burn flex), or gpu in builds with the wgpu feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the final summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid config", path.display()))
}

fn to_case(c: LoadedCase) -> Case {
    Case { id: c.id, prepared: c.prepared }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let network = match &args.network {
        Some(p) => read_json::<NetworkConfig>(p)?,
        None => NetworkConfig::preset(&args.preset)?,
    };
    network.validate()?;
    let mut config = match &args.config {
        Some(p) => read_json::<TrainConfig>(p)?,
        None => TrainConfig::default(),
    };
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.subepochs {
        config.subepochs = v;
    }
    if let Some(v) = args.patches {
        config.patches_per_subepoch = v;
    }
    if let Some(v) = args.batch {
        config.batch = v;
    }
    if let Some(v) = args.lr {
        config.learning_rate = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if args.max_minutes.is_some() {
        config.max_minutes = args.max_minutes;
    }
    let device = liverseg_model::device(&args.device)?;

    let mut manifest = load_manifest(&args.data)?;
    if !args.validation.is_empty() {
        manifest.split = Split::Ids(args.validation.clone());
    } else if let Some(fraction) = args.validation_fraction {
        if !(0.0..1.0).contains(&fraction) {
            bail!("--validation-fraction {fraction} is not in [0, 1)");
        }
        manifest.split = Split::Fraction { fraction, seed: config.seed };
    }
    let cache = args.cache.clone().unwrap_or_else(|| args.out.join("cache"));
    std::fs::create_dir_all(&cache).with_context(|| format!("{}: cannot create", cache.display()))?;
    let progress = Progress::new(0, "preparing");
    let set = load_training_cases(&manifest, &args.data, &network.preprocess, Some(&cache), &mut |done, total, id| {
        progress.set(done as u64, total as u64);
        progress.message(id);
    })?;
    progress.finish();
    for g in &set.duplicates.groups {
        eprintln!("duplicate CTs (same voxels; trained once): {}", g.ids.join(" = "));
    }
    let duplicate_groups = set.duplicates.groups;
    let train_cases: Vec<Case> = set.train.into_iter().map(to_case).collect();
    let val_cases: Vec<Case> = set.validation.into_iter().map(to_case).collect();
    eprintln!(
        "training on {} case(s), validating on {} ({}); network {} at {} mm",
        train_cases.len(),
        val_cases.len(),
        val_cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", "),
        network.name,
        network.preprocess.spacing_mm
    );

    let steps_total = (config.epochs * config.subepochs * (config.patches_per_subepoch / config.batch)) as u64;
    let bar = Progress::new(steps_total, "training");
    let mut on_event = |e: &Event| match e {
        Event::Step { epoch, loss, patches_per_s, .. } => {
            bar.inc(1);
            bar.message(&format!("epoch {epoch} loss {loss:.4} {patches_per_s:.1} patches/s"));
        }
        Event::Validation { epoch, mean_dsc, best, .. } => bar.println(&format!("epoch {epoch}: validation DSC {mean_dsc:.4}{}", if *best { " (best)" } else { "" })),
        Event::Threshold { threshold, mean_dsc, at_half, on } => {
            bar.println(&format!("threshold search on {on}: {threshold:.2} gives DSC {mean_dsc:.4} (0.5 gives {at_half:.4})"))
        }
        Event::Message { text } => bar.println(text),
        Event::HardExamples { epoch, missed_liver, false_liver, seconds } => bar.println(&format!(
            "epoch {epoch}: hard examples mined in {seconds:.0} s: {missed_liver} voxels of missed liver, {false_liver} of tissue taken for liver"
        )),
        _ => {}
    };
    let outcome = train(&network, &config, &train_cases, &val_cases, &args.out, args.resume, &device, &mut on_event)?;
    bar.finish();
    if let Err(e) = plot_curves(&args.out) {
        eprintln!("warning: curves not drawn: {}", crate::one_line(&e));
    }
    let summary = serde_json::json!({
        "model": outcome.best_model,
        "validation_dsc": outcome.best_dsc,
        "best_epoch": outcome.best_epoch,
        "averaged_epochs": outcome.averaged_epochs,
        "threshold": outcome.threshold,
        "searched_threshold": outcome.searched_threshold,
        "epochs": outcome.epochs,
        "minutes": outcome.minutes,
        "train_cases": train_cases.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "validation_cases": val_cases.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "duplicates": duplicate_groups,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        // Say what the figure is of: without a validation set it is the
        // training cases' DSC, and an averaged model has no epoch of its own.
        let figure = match (val_cases.is_empty(), outcome.best_epoch, outcome.averaged_epochs.as_slice()) {
            (true, _, _) => format!("DSC at 0.5 on the training cases {:.4} (no validation set)", outcome.best_dsc),
            (false, _, [first, .., last]) => format!("validation DSC {:.4} (the average of epochs {first}-{last})", outcome.best_dsc),
            (false, Some(epoch), _) => format!("validation DSC {:.4} (epoch {epoch})", outcome.best_dsc),
            (false, None, _) => format!("validation DSC {:.4} (the last checkpoint)", outcome.best_dsc),
        };
        println!(
            "model: {}\n{figure}, threshold {:.2}, {} epochs in {:.1} min",
            outcome.best_model.display(),
            outcome.threshold,
            outcome.epochs,
            outcome.minutes
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// curves.png/.svg from train.jsonl: mean loss per sub-epoch and validation DSC.
fn plot_curves(out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(out.join("train.jsonl"))?;
    let (mut loss, mut dsc) = (Vec::new(), Vec::new());
    let mut subepochs_per_epoch = 1usize;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v["event"].as_str() {
            Some("subepoch") => {
                let (e, s) = (v["epoch"].as_u64().unwrap_or(0) as usize, v["subepoch"].as_u64().unwrap_or(0) as usize);
                subepochs_per_epoch = subepochs_per_epoch.max(s + 1);
                loss.push((e as f64 + (s + 1) as f64 / subepochs_per_epoch as f64, v["mean_loss"].as_f64().unwrap_or(f64::NAN)));
            }
            Some("validation") => dsc.push((v["epoch"].as_f64().unwrap_or(0.0), v["mean_dsc"].as_f64().unwrap_or(f64::NAN))),
            _ => {}
        }
    }
    line_chart(&out.join("curves-loss"), "Training loss (mean per sub-epoch)", "epoch", "BCE", &[LineSeries { label: "loss".into(), points: loss }])?;
    if !dsc.is_empty() {
        line_chart(&out.join("curves-dsc"), "Validation DSC (threshold 0.5)", "epoch", "DSC", &[LineSeries { label: "validation DSC".into(), points: dsc }])?;
    }
    Ok(())
}
