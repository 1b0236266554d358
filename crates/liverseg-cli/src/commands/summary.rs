//! `liverseg summary`: one cohort table of a batch's output folder.

use liverseg_pipeline::batch::cases::{name_cases, read_manifest};
use liverseg_pipeline::batch::summary::summarize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The output folder of `liverseg segment` with several cases (one folder
    /// per case, task logs in `.tasks/`).
    pub dir: PathBuf,
    /// The manifest the cases came from: lists cases no task has started as
    /// missing, in the manifest's order.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Print the summary as JSON instead of counts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let manifest = match &args.manifest {
        Some(m) => Some(name_cases(read_manifest(m)?)?),
        None => None,
    };
    let summary = summarize(&args.dir, manifest.as_deref())?;
    let [csv, json] = summary.write(&args.dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let c = &summary.counts;
        println!(
            "{} cases: {} done ({} flagged), {} failed, {} interrupted{}",
            c.cases,
            c.done,
            c.flagged,
            c.failed,
            c.interrupted,
            if manifest.is_some() { format!(", {} missing from the outputs", c.missing) } else { String::new() }
        );
        for r in summary.cases.iter().filter(|r| r.error.is_some()) {
            println!("  failed {}: {}", r.case, r.error.as_deref().unwrap_or(""));
        }
        if summary.refused_tasks > 0 {
            println!("  {} task(s) refused to start (see {}/.tasks)", summary.refused_tasks, args.dir.display());
        }
        println!("wrote {} and {}", csv.display(), json.display());
    }
    let c = &summary.counts;
    Ok(if c.failed + c.interrupted + c.missing > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
