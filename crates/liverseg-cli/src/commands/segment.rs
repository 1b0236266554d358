//! `liverseg segment`: CT in, liver mask, report and overview out.
//!
//! One input: outputs straight into `-o DIR`. Several inputs (or
//! `--manifest`): one folder per case, `DIR/<case>/`, resumable (a case whose
//! outputs are complete is skipped unless `--force`), a summary table at the
//! end, a task log in `DIR/.tasks/`. As a job array task (`--shard`, or
//! Slurm's / Kubernetes' environment) only this task's slice of the cases.
//! The work is `liverseg_pipeline::batch`'s; this module parses, shows
//! progress and prints. Exit status: 0 every case done or skipped, 1 any case
//! failed or held by another task (the others are still done), 2 usage.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use liverseg_pipeline::batch::cases::{name_cases, read_manifest, list_hash, case_stem};
use liverseg_pipeline::batch::tasklog::check_same_list;
use liverseg_pipeline::batch::{
    case_error_line, run_batch, segment_case, BatchOptions, BatchProgress, CaseEntry, CaseOutcome, ListedInput, Shard,
    TaskEvent, TaskLog, host_name, unix_now,
};
use liverseg_pipeline::{OutputFormats, Report, SegmentOptions, Stage};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// CT inputs: DICOM series folders, .nii / .nii.gz, .mha / .mhd.
    pub inputs: Vec<PathBuf>,
    /// List of inputs: a CSV with a header holding a `ct` column and an
    /// optional `case` column (the output folder's name), or the older text
    /// list (`path` or `name<TAB>path` per line). `#` starts a comment line;
    /// relative paths are read from the manifest's folder.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Take only the K-th of N slices of the cases (K = 1..N), e.g. `--shard
    /// 2/8` in the second of eight job array tasks. Without it, inside a Slurm
    /// array task the slice comes from SLURM_ARRAY_TASK_ID/_MIN/_COUNT.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// N for the array task's environment: with SLURM_ARRAY_TASK_ID (arrays
    /// numbered 1..N; lets a resubmitted subset keep its shard numbers), or
    /// with Kubernetes' JOB_COMPLETION_INDEX (0..N-1), which needs it.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// Seconds after which another task's case lock that is no longer
    /// refreshed counts as left by a dead task and is taken over.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub lock_stale_after: u64,
    /// Output folder (one case), or the folder holding one folder per case.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Model file (default: the built-in model). Given more than once, the
    /// models (of one network config) are an ensemble: their probabilities
    /// are averaged, one network pass each, and the default threshold is the
    /// mean of theirs.
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// Probability threshold in (0, 1) (default: the model's).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Output formats, comma-separated: nifti, dicom-seg, rtstruct, overview
    /// (the overview as a DICOM Secondary Capture in the CT's study). The DICOM
    /// ones need a DICOM series input.
    #[arg(long, default_value = "nifti")]
    pub format: String,
    /// Also write probability.nii.gz.
    #[arg(long)]
    pub probability: bool,
    /// Do not write overview.png.
    #[arg(long)]
    pub no_overview: bool,
    /// Print the report (one case) or a list of case results (several) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Cases segmented at the same time (each also uses every core).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Redo cases whose outputs are already complete (several inputs).
    #[arg(long)]
    pub force: bool,
    /// Ball radius of the erode / largest component / regrow step, mm: parts
    /// joined to the liver by a neck narrower than twice it are cut off.
    #[arg(long, default_value_t = liverseg_pipeline::DEFAULT_POSTPROCESS_RADIUS_MM)]
    pub radius: f64,
    /// cpu (burn's pure-Rust backend), or gpu in builds with the wgpu feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run the network on every tile with body in it, instead of only the
    /// tiles the liver reaches (coarse-to-fine; see the README).
    #[arg(long)]
    pub full_volume: bool,
    /// Test-time flip averaging: xy (4 network passes: as is and mirrored
    /// left-right, front-back and both; the best held-out contours measured),
    /// x (2 passes) or off (1 pass, about 3x faster). See the README.
    #[arg(long, default_value = liverseg_model::FlipAverage::default().name(), value_parser = parse_flips)]
    pub flip_average: liverseg_model::FlipAverage,
    /// Where the liver's surface runs on the CT grid: mask (half-way between
    /// the network grid's liver and background voxels) or probability (where
    /// the interpolated probability crosses the threshold, within the same
    /// post-processed mask). See the README.
    #[arg(long, default_value = liverseg_pipeline::Boundary::default().name(), value_parser = parse_boundary)]
    pub boundary: liverseg_pipeline::Boundary,
    /// Which holes the kept liver encloses become liver: 3d (regions closed
    /// in 3-D; a notch open to the outside, like the vena cava's groove,
    /// stays out) or axial (also regions closed within an axial slice:
    /// vessels entering the liver, but also the cava where the liver wraps
    /// round it). See the README.
    #[arg(long, default_value = liverseg_pipeline::HoleFill::default().name(), value_parser = parse_hole_fill)]
    pub fill_holes: liverseg_pipeline::HoleFill,
    /// Grid-spacing factors the CT is read at: the network runs on each grid
    /// (with its flips) and the probabilities are averaged on the model's
    /// own grid (factor 1). The default 0.9,1,1.1 gave the best held-out
    /// contours measured; 1 alone is one grid, about 2.5x faster. Each
    /// factor adds network time. See the README.
    #[arg(long, value_delimiter = ',', default_values_t = liverseg_pipeline::DEFAULT_SCALE_AVERAGE)]
    pub scale_average: Vec<f64>,
}

fn parse_hole_fill(s: &str) -> Result<liverseg_pipeline::HoleFill, String> {
    s.parse()
}

fn parse_boundary(s: &str) -> Result<liverseg_pipeline::Boundary, String> {
    s.parse()
}

fn parse_flips(s: &str) -> Result<liverseg_model::FlipAverage, String> {
    s.parse().map_err(|e: liverseg_model::Error| e.to_string())
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("liverseg: error: {message}");
    Ok(ExitCode::from(2))
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// One progress bar per running case under an overall bar.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<usize, ProgressBar>>,
}

impl BatchProgress for Bars {
    fn case_started(&self, index: usize, case: &CaseEntry) {
        let bar = self.multi.add(ProgressBar::new(1));
        bar.set_style(style("{prefix} {msg:18} {bar:30} {pos}/{len} {elapsed}"));
        bar.set_prefix(case.name.clone());
        bar.set_message("read");
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(index, bar);
    }
    fn stage(&self, index: usize, stage: Stage, done: usize, total: usize) {
        if let Some(bar) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&index) {
            stage_bar(bar, stage, done, total);
        }
    }
    fn case_finished(&self, index: usize, _case: &CaseEntry, _outcome: &CaseOutcome) {
        if let Some(bar) = self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&index) {
            bar.finish_and_clear();
        }
        self.overall.inc(1);
    }
}

fn stage_bar(bar: &ProgressBar, stage: Stage, done: usize, total: usize) {
    bar.set_message(stage.name());
    if stage == Stage::Predict {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

fn multi_progress() -> MultiProgress {
    let multi = MultiProgress::new();
    if !std::io::stderr().is_terminal() {
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    multi
}

/// The scheduler's name for this task's job, for locks and task logs.
fn job_id() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => Some(format!("{j}_{t}")),
        _ => var("SLURM_JOB_ID").or_else(|| var("JOB_COMPLETION_INDEX").and(var("HOSTNAME"))),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let formats = match (OutputFormats {
        probability: args.probability,
        overview: !args.no_overview,
        ..Default::default()
    })
    .with_list(&args.format)
    {
        Ok(f) => f,
        Err(e) => return usage(format!("--format: {e}")),
    };
    if let Some(t) = args.threshold {
        if !(t > 0.0 && t < 1.0) {
            return usage(format!("--threshold {t} is not strictly between 0 and 1"));
        }
    }
    if args.scale_average.iter().any(|f| !liverseg_pipeline::SCALE_FACTOR_RANGE.contains(f)) {
        let r = liverseg_pipeline::SCALE_FACTOR_RANGE;
        return usage(format!("--scale-average {:?}: each factor must be in {}..={}", args.scale_average, r.start(), r.end()));
    }
    if !(args.radius.is_finite() && (0.0..=50.0).contains(&args.radius)) {
        return usage(format!("--radius {} is not in 0..50 mm", args.radius));
    }
    if args.jobs == 0 {
        return usage("--jobs must be at least 1");
    }
    if args.lock_stale_after == 0 {
        return usage("--lock-stale-after must be at least 1 second");
    }
    // The slice of a job array: --shard, else the array task's environment.
    let shard = match (&args.shard, args.shard_count) {
        (Some(_), Some(_)) => return usage("give --shard K/N or --shard-count N, not both"),
        (Some(s), None) => match s.parse::<Shard>() {
            Ok(s) => Some(s),
            Err(e) => return usage(e),
        },
        (None, count) => match Shard::from_env(|k| std::env::var(k).ok(), count) {
            Ok(Some((s, from))) => {
                eprintln!("liverseg: shard {s} (from {from})");
                Some(s)
            }
            Ok(None) => None,
            Err(e) => return usage(e),
        },
    };
    let mut inputs: Vec<ListedInput> = args.inputs.iter().map(ListedInput::path).collect();
    if let Some(m) = &args.manifest {
        match read_manifest(m) {
            Ok(list) => inputs.extend(list),
            Err(e) => return usage(e),
        }
    }
    if inputs.is_empty() {
        return usage("no input: give CT paths or --manifest");
    }
    let options = SegmentOptions {
        threshold: args.threshold,
        postprocess_radius_mm: args.radius,
        probability: args.probability,
        boundary: args.boundary,
        fill_holes: args.fill_holes,
        scale_average: args.scale_average.clone(),
        ..Default::default()
    };

    if inputs.len() == 1 && args.manifest.is_none() && shard.is_none() {
        // One case: outputs straight into -o.
        let input = inputs.remove(0).input;
        let model = liverseg_model::segment_model::open(&args.model, &args.device, args.full_volume, args.flip_average)?;
        let multi = multi_progress();
        let bar = multi.add(ProgressBar::new(1));
        bar.set_style(style("{prefix} {msg:18} {bar:30} {pos}/{len} {elapsed}"));
        bar.set_prefix(case_stem(&input));
        bar.set_message("read");
        let mut stage = |s: Stage, done: usize, total: usize| stage_bar(&bar, s, done, total);
        let r = segment_case(&input, &args.out, &model, &options, &formats, &mut stage);
        bar.finish_and_clear();
        return match r {
            Ok((report, secs)) => {
                if args.json {
                    println!("{}", report.to_json_pretty());
                } else {
                    print_case(&input, &args.out, &report, secs);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("liverseg: error: {}", case_error_line(&input, &e));
                Ok(ExitCode::from(1))
            }
        };
    }

    let all = match name_cases(inputs) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let hash = list_hash(&all);
    let picked: Vec<CaseEntry> = match shard {
        Some(s) => s.select(all.len()).into_iter().map(|i| all[i].clone()).collect(),
        None => all.clone(),
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the output folder: {e}", args.out.display()))?;
    let log = TaskLog::open(&args.out, shard)?;
    if let Some(s) = shard {
        if let Err(e) = check_same_list(&args.out, s, &hash) {
            log.append(&TaskEvent::Refused {
                unix_s: unix_now(),
                shard,
                list_hash: hash.clone(),
                reason: e.to_string(),
            })?;
            return usage(e);
        }
        eprintln!("liverseg: shard {s}: {} of {} cases", picked.len(), all.len());
    }
    log.append(&TaskEvent::Start {
        unix_s: unix_now(),
        shard,
        list_hash: hash,
        cases_total: all.len(),
        cases_in_shard: picked.len(),
        host: host_name(),
        pid: std::process::id(),
        job: job_id(),
        software: concat!("liverseg ", env!("CARGO_PKG_VERSION")).into(),
    })?;
    let t0 = Instant::now();
    let results = if picked.is_empty() {
        eprintln!("liverseg: this shard has no cases (the list has {}): nothing to do", all.len());
        Vec::new()
    } else {
        let model = liverseg_model::segment_model::open(&args.model, &args.device, args.full_volume, args.flip_average)?;
        let multi = multi_progress();
        let overall = multi.add(ProgressBar::new(picked.len() as u64));
        overall.set_style(style("cases {bar:30} {pos}/{len} {elapsed}"));
        let bars = Bars { multi, overall, running: Mutex::new(HashMap::new()) };
        let batch = BatchOptions {
            out: &args.out,
            formats: &formats,
            options: &options,
            jobs: args.jobs,
            force: args.force,
            stale_after: Duration::from_secs(args.lock_stale_after),
            task: shard.map(|s| s.to_string()),
            job: job_id(),
        };
        let results = run_batch(&picked, &model, &batch, Some(&log), &bars);
        bars.overall.finish_and_clear();
        results
    };
    let count = |f: fn(&CaseOutcome) -> bool| results.iter().filter(|o| f(o)).count();
    let failed = count(|o| matches!(o, CaseOutcome::Failed { .. }));
    let busy = count(|o| matches!(o, CaseOutcome::Busy { .. }));
    log.append(&TaskEvent::End {
        unix_s: unix_now(),
        done: count(|o| matches!(o, CaseOutcome::Done { .. })),
        skipped: count(|o| matches!(o, CaseOutcome::Skipped { .. })),
        busy,
        failed,
        seconds: t0.elapsed().as_secs_f64(),
    })?;

    if args.json {
        let list: Vec<serde_json::Value> = picked
            .iter()
            .zip(&results)
            .map(|(c, o)| {
                let (status, report, error) = match o {
                    CaseOutcome::Done { report, .. } => ("ok", Some(report.as_ref()), None),
                    CaseOutcome::Skipped { report } => ("skipped", report.as_deref(), None),
                    CaseOutcome::Busy { holder } => ("busy", None, Some(format!("held by {holder}"))),
                    CaseOutcome::Failed { error } => ("failed", None, Some(error.clone())),
                };
                serde_json::json!({ "case": c.name, "input": c.input, "output": args.out.join(&c.name), "status": status, "report": report, "error": error })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if !picked.is_empty() {
        print_table(&picked, &results, &args.out);
    }
    for (c, o) in picked.iter().zip(&results) {
        match o {
            CaseOutcome::Failed { error } => eprintln!("liverseg: error: case {}: {error}", c.name),
            CaseOutcome::Busy { holder } => eprintln!("liverseg: case {} is being written by {holder}; not touched", c.name),
            _ => {}
        }
    }
    Ok(if failed + busy > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn flag_list(r: &Report) -> String {
    if r.flags.is_empty() {
        "-".into()
    } else {
        r.flags
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn print_case(input: &std::path::Path, out: &std::path::Path, r: &Report, secs: f64) {
    println!("liverseg segment: {}", input.display());
    println!(
        "  liver {:.1} ml, {:.0} g, median {} HU ({:.1} s, model {})",
        r.liver_volume_ml,
        r.liver_mass_g,
        r.liver_hu_median.map_or("-".into(), |h| format!("{h:.0}")),
        secs,
        r.model_id
    );
    if let Some(t) = &r.tiles {
        // With scale averaging the counts are sums over the grids, whose
        // unit tiles may differ in size: say so.
        let grids = match r.scale_average.len() {
            1 => String::new(),
            n => format!(" over {n} grids"),
        };
        println!(
            "  computed {} of {} body tiles in {} boxes{grids} ({} probes{})",
            t.computed_tiles,
            t.body_tiles,
            t.boxes,
            t.probes,
            if t.fell_back_to_all { ", probes found too little liver: computed all" } else { "" }
        );
    }
    // The same lines the review page and the DICOM node's log show.
    for line in r.input.iter().flat_map(|i| i.lines()) {
        println!("  {line}");
    }
    for f in &r.flags {
        println!("  flag {}: {}", f.name, f.message);
    }
    println!("  outputs in {}", out.display());
}

fn print_table(cases: &[CaseEntry], results: &[CaseOutcome], out: &std::path::Path) {
    let w = cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:w$}  {:8}  {:>9}  {:>7}  flags",
        "case", "status", "liver ml", "time s"
    );
    for (c, o) in cases.iter().zip(results) {
        match o {
            CaseOutcome::Done { report, seconds } => println!(
                "{:w$}  {:8}  {:>9.1}  {:>7.1}  {}",
                c.name, "ok", report.liver_volume_ml, seconds, flag_list(report)
            ),
            CaseOutcome::Skipped { report: Some(r) } => println!(
                "{:w$}  {:8}  {:>9.1}  {:>7}  {}",
                c.name, "skipped", r.liver_volume_ml, "-", flag_list(r)
            ),
            CaseOutcome::Skipped { report: None } => {
                println!("{:w$}  {:8}  {:>9}  {:>7}  -", c.name, "skipped", "-", "-")
            }
            CaseOutcome::Busy { .. } => {
                println!("{:w$}  {:8}  {:>9}  {:>7}  (another task holds it)", c.name, "busy", "-", "-")
            }
            CaseOutcome::Failed { .. } => println!(
                "{:w$}  {:8}  {:>9}  {:>7}  (see error below)",
                c.name, "FAILED", "-", "-"
            ),
        }
    }
    let n = |f: fn(&CaseOutcome) -> bool| results.iter().filter(|o| f(o)).count();
    let busy = n(|o| matches!(o, CaseOutcome::Busy { .. }));
    println!(
        "{} done, {} skipped (outputs complete), {} failed{}; outputs in {}",
        n(|o| matches!(o, CaseOutcome::Done { .. })),
        n(|o| matches!(o, CaseOutcome::Skipped { .. })),
        n(|o| matches!(o, CaseOutcome::Failed { .. })),
        if busy > 0 { format!(", {busy} held by another task") } else { String::new() },
        out.display()
    );
}
