//! `liverseg average`: the weights of several model files of one network
//! (e.g. the last epochs' checkpoints of one run) averaged into one model file
//! (`liverseg_model::average`).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Model files of one network config, e.g. one run's checkpoints of its
    /// last epochs.
    #[arg(required = true, num_args = 2..)]
    pub models: Vec<PathBuf>,
    /// The averaged model file to write.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Print the new model's description as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The same file under another spelling (a link, ../x/a.lsm) would be replaced too.
    let same = |m: &PathBuf| m == &args.out || matches!((std::fs::canonicalize(m), std::fs::canonicalize(&args.out)), (Ok(a), Ok(b)) if a == b);
    if args.models.iter().any(same) {
        anyhow::bail!("{}: the output is one of the models to average; write it elsewhere", args.out.display());
    }
    let info = liverseg_model::average::average_files(&args.models, &args.out, &liverseg_model::device("cpu")?)?;
    if args.json {
        println!("{}", serde_json::json!({ "out": args.out, "id": info.id, "threshold": info.threshold, "members": args.models.len() }));
    } else {
        println!("averaged {} models into {} ({}, threshold {:.2})", args.models.len(), args.out.display(), info.id, info.threshold);
    }
    Ok(ExitCode::SUCCESS)
}
