//! Minimal training driver for a folder of cases or a manifest, without the
//! CLI's plotting and progress bars: `liverseg-train-cases DATA OUT
//! [--validation ID] [--max-minutes M] [--epochs N] [--subepochs N]
//! [--segments N] [--batch N] [--preset fast|paper]`. `liverseg train` is the
//! user-facing command; this exists for long unattended runs on build
//! machines where only this crate is compiled.

use burn::tensor::Device;
use liverseg_data::datasets::Split;
use liverseg_data::{discover, load_case, load_manifest, split_cases};
use liverseg_model::train::{train, Case, Event, TrainConfig};
use liverseg_model::NetworkConfig;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let data = PathBuf::from(args.get(1).ok_or("usage: liverseg-train-cases DATA OUT [options]")?);
    let out = PathBuf::from(args.get(2).ok_or("usage: liverseg-train-cases DATA OUT [options]")?);
    let network = NetworkConfig::preset(&get("--preset").unwrap_or_else(|| "fast".into()))?;
    let mut config = TrainConfig::default();
    if let Some(v) = get("--epochs") {
        config.epochs = v.parse()?;
    }
    if let Some(v) = get("--subepochs") {
        config.subepochs = v.parse()?;
    }
    if let Some(v) = get("--segments") {
        config.segments_per_subepoch = v.parse()?;
    }
    if let Some(v) = get("--batch") {
        config.batch = v.parse()?;
    }
    if let Some(v) = get("--lr") {
        config.learning_rate = v.parse()?;
    }
    if let Some(v) = get("--momentum") {
        config.momentum = v.parse()?;
    }
    if let Some(v) = get("--lr-step") {
        config.lr_step_epochs = v.parse()?;
    }
    if let Some(v) = get("--validate-every") {
        config.validate_every = v.parse()?;
    }
    config.max_minutes = get("--max-minutes").map(|v| v.parse()).transpose()?;
    let mut manifest = load_manifest(&data)?;
    if let Some(id) = get("--validation") {
        manifest.split = Split::Ids(vec![id]);
    }
    let (tr, va) = split_cases(&discover(&manifest)?, &manifest.split)?;
    let cache = out.join("cache");
    std::fs::create_dir_all(&cache)?;
    let load = |l: &[liverseg_data::CaseSource]| -> Result<Vec<Case>, liverseg_data::Error> {
        l.iter().map(|c| load_case(c, &network.preprocess, Some(&cache)).map(|c| Case { id: c.id, prepared: c.prepared })).collect()
    };
    let (tr, va) = (load(&tr)?, load(&va)?);
    eprintln!("train {:?} validation {:?}", tr.iter().map(|c| &c.id).collect::<Vec<_>>(), va.iter().map(|c| &c.id).collect::<Vec<_>>());
    let outcome = train(&network, &config, &tr, &va, &out, args.iter().any(|a| a == "--resume"), &Device::flex(), &mut |e| match e {
        Event::Step { .. } => {}
        other => eprintln!("{}", serde_json::to_string(other).unwrap_or_default()),
    })?;
    println!("best {} DSC {:.4} epoch {} threshold {:.2} in {:.1} min", outcome.best_model.display(), outcome.best_dsc, outcome.best_epoch, outcome.threshold, outcome.minutes);
    Ok(())
}
