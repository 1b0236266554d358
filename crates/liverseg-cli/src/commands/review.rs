use anyhow::bail;
use liverseg_review::{collect_cases, random_token, run_blocking, ReviewConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const LONG_ABOUT: &str = "\
Open a worklist of cases in the browser to check, correct and score each
segmentation. A case is a CT and the mask to correct, on the CT's grid:
  a case folder        ct.nii.gz (or image.*, or a ct/ DICOM folder) + liver.nii.gz
                       (or mask.*, seg.*, cnn.*); the case id is the folder name
  a folder of those    e.g. data/cases/
  a manifest .csv      columns case,ct,mask (paths relative to the manifest)
  --ct X --mask Y      explicit pairs (repeatable)
The server listens on 127.0.0.1 unless --bind says otherwise; then every API
request needs the token printed at start (in the URL as ?token=...).

Output (--out, per reviewer, written atomically, autosaved every few seconds
and on exit):
  OUT/original/<case>.nii.gz             the masks the review started from
  OUT/<reviewer>/adjusted/<case>.nii.gz  corrected masks
  OUT/<reviewer>/seg/<case>.dcm, rtstruct/<case>.dcm   when the CT is DICOM
  OUT/<reviewer>/audit/<case>.json       who, when, score, tags, active time, edits
  OUT/scores.csv, times.csv, tags.csv    all reviewers, in `liverseg study`'s format
Reopening a case resumes from the reviewer's saved mask and record. Study:
  liverseg study --set cnn=OUT/original --set a=OUT/alice/adjusted \\
    --set b=OUT/bob/adjusted --scores OUT/scores.csv --times OUT/times.csv \\
    --tags OUT/tags.csv --out study/";

#[derive(clap::Args)]
#[command(after_help = LONG_ABOUT)]
pub struct Args {
    /// Case folders, folders of case folders, or a manifest CSV.
    pub inputs: Vec<PathBuf>,
    /// CT of an explicit case (pair with --mask; repeatable).
    #[arg(long)]
    pub ct: Vec<PathBuf>,
    /// Mask to correct for the --ct at the same position.
    #[arg(long)]
    pub mask: Vec<PathBuf>,
    /// Reviewer name (A-Z a-z 0-9 . _ -): names the output folder and the audit.
    #[arg(long)]
    pub reviewer: String,
    /// Output folder.
    #[arg(long, default_value = "review")]
    pub out: PathBuf,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to listen on; anything but loopback requires a token.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Token for API requests (default: random when --bind is not loopback).
    #[arg(long)]
    pub token: Option<String>,
    /// Pauses longer than this (seconds) do not count as active editing time.
    #[arg(long, default_value_t = 30.0)]
    pub idle_seconds: f64,
    /// Autosave interval in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub autosave_seconds: f64,
    /// Print the address as one JSON line on start.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.ct.len() != args.mask.len() {
        bail!("--ct and --mask must be given the same number of times");
    }
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            bail!("--{name} must be > 0")
        }
    };
    let pairs: Vec<(PathBuf, PathBuf)> = args
        .ct
        .iter()
        .cloned()
        .zip(args.mask.iter().cloned())
        .collect();
    let cases = collect_cases(&args.inputs, &pairs)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let mut cfg = ReviewConfig::new(cases, &args.reviewer, args.out.clone())?;
    cfg.idle = positive("idle-seconds", args.idle_seconds)?;
    cfg.autosave = positive("autosave-seconds", args.autosave_seconds)?;
    let loopback = args.bind.is_loopback();
    cfg.loopback_host_only = loopback;
    cfg.token = match (args.token, loopback) {
        (Some(t), _) if t.len() < 8 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            bail!("--token: use at least 8 letters or digits")
        }
        (Some(t), _) => Some(t),
        (None, true) => None,
        (None, false) => Some(random_token()?),
    };
    let n = cfg.cases.len();
    let token = cfg.token.clone();
    let (reviewer, out, json) = (cfg.reviewer.clone(), args.out.clone(), args.json);
    run_blocking(cfg, SocketAddr::new(args.bind, args.port), move |addr| {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let url = match &token {
            Some(t) => format!("http://{host}:{}/?token={t}", addr.port()),
            None => format!("http://{host}:{}/", addr.port()),
        };
        if json {
            println!(
                "{}",
                serde_json::json!({ "url": url, "address": addr.to_string(), "reviewer": reviewer, "cases": n, "out": out })
            );
        } else {
            println!(
                "liverseg review: {n} cases for reviewer {reviewer}; saving to {}",
                out.display()
            );
            println!("open {url}");
            println!("(Ctrl-C saves and stops)");
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
