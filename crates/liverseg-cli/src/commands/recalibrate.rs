//! `liverseg recalibrate`: a model's batch-norm statistics re-estimated on
//! training patches (`liverseg_model::bn_stats`), written as a new model file.

use anyhow::Context;
use liverseg_data::datasets::load_manifest;
use liverseg_data::load_training_cases;
use liverseg_model::train::{Case, TrainConfig};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::Progress;

const LONG_ABOUT: &str = "\
Replace every batch norm's running mean and variance by their plain mean over
many training batches (\"precise BN\"), sampled and augmented as the training
config says; the weights stay. Training keeps these statistics as an
exponential average of the last ten or so batches, so they drift from epoch
to epoch. Only the training cases of DATA are used (a manifest's validation
split is left out), so a leave-one-out fold stays blind to its held-out case.";

#[derive(clap::Args)]
#[command(after_help = LONG_ABOUT)]
pub struct Args {
    /// The model file (.lsm) to recalibrate.
    pub model: PathBuf,
    /// A dataset manifest (.toml) or a folder of cases: the model's training cases.
    pub data: PathBuf,
    /// The model file to write.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Training config JSON whose sampling and augmentation are used
    /// (default: the training defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Batches to average over (each of the config's batch size).
    #[arg(long, default_value_t = 250)]
    pub batches: usize,
    /// Seed of the sampling and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pre-processing cache folder (as `train --cache`; none by default).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print the new model's description as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let same = |a: &PathBuf, b: &PathBuf| a == b || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y);
    if same(&args.model, &args.out) {
        anyhow::bail!("{}: the output is the model itself; write it elsewhere", args.out.display());
    }
    let config: TrainConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid train config", p.display()))?
        }
        None => TrainConfig::default(),
    };
    let network = liverseg_model::checkpoint::read_info(&args.model)?.network;
    let manifest = load_manifest(&args.data)?;
    if let Some(cache) = &args.cache {
        std::fs::create_dir_all(cache).with_context(|| format!("{}: cannot create", cache.display()))?;
    }
    let progress = Progress::new(0, "preparing");
    let set = load_training_cases(&manifest, &args.data, &network.preprocess, args.cache.as_deref(), &mut |done, total, id| {
        progress.set(done as u64, total as u64);
        progress.message(id);
    })?;
    progress.finish();
    let cases: Vec<Case> = set.train.into_iter().map(|c| Case { id: c.id, prepared: c.prepared }).collect();
    eprintln!("recalibrating on {} case(s), {} batches of {}", cases.len(), args.batches, config.batch);
    let bar = Progress::new(args.batches as u64, "batches");
    let info = liverseg_model::bn_stats::recalibrate_file(&args.model, &args.out, &config, &cases, args.batches, args.seed, &liverseg_model::device("cpu")?, &mut |done, _| {
        bar.set(done as u64, args.batches as u64)
    })?;
    bar.finish();
    if args.json {
        println!("{}", serde_json::json!({ "out": args.out, "id": info.id, "threshold": info.threshold, "cases": cases.len(), "patches": args.batches * config.batch }));
    } else {
        println!("recalibrated {} on {} patches of {} case(s) into {} ({})", args.model.display(), args.batches * config.batch, cases.len(), args.out.display(), info.id);
    }
    Ok(ExitCode::SUCCESS)
}
