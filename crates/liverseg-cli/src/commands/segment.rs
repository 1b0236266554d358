//! `liverseg segment`: CT in, liver mask, report and overview out.
//!
//! One input: outputs straight into `-o DIR`. Several inputs (or
//! `--manifest`): one folder per case, `DIR/<case>/`, resumable (a case whose
//! outputs are complete is skipped unless `--force`), a summary table at the
//! end. Each case's files are written as a group (nothing on failure). Exit
//! status: 0 every case done or skipped, 1 any case failed (the others are
//! still done), 2 usage.

use crate::model;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use liverseg_io::{read_image, Format, ReadOptions};
use liverseg_pipeline::write::outputs_complete;
use liverseg_pipeline::{
    segment_dyn, write_outputs, InputInfo, OutputFormats, OutputSource, ProbabilityModel,
    Report, SegmentOptions, Stage,
};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// CT inputs: DICOM series folders, .nii / .nii.gz, .mha / .mhd.
    pub inputs: Vec<PathBuf>,
    /// Text file listing inputs, one per line: `path`, or `name<TAB>path`;
    /// `#` starts a comment; relative paths are read from the manifest's folder.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output folder (one case), or the folder holding one folder per case.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Model file (default: the built-in model).
    #[arg(long)]
    pub model: Option<PathBuf>,
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
    /// Ball radius of the erode / largest component / dilate step, mm.
    #[arg(long, default_value_t = 3.0)]
    pub radius: f64,
    /// cpu (burn's pure-Rust backend), or gpu in builds with the wgpu feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run the network on every tile with body in it, instead of only the
    /// tiles the liver reaches (coarse-to-fine; see the README).
    #[arg(long)]
    pub full_volume: bool,
}

struct Case {
    name: String,
    input: PathBuf,
    dir: PathBuf,
}

enum Outcome {
    Done(Box<Report>, f64),
    Skipped(Option<Box<Report>>),
    Failed(String),
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("liverseg: error: {message}");
    Ok(ExitCode::from(2))
}

/// Inputs of a manifest: `path` or `name<TAB>path` per line.
fn read_manifest(path: &Path) -> Result<Vec<(Option<String>, PathBuf)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read manifest: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, p) = match line.split_once('\t') {
            Some((name, p)) => (Some(name.trim().to_string()), p.trim()),
            None => (None, line),
        };
        if p.is_empty() || name.as_deref() == Some("") {
            return Err(format!(
                "{}: line {}: expected `path` or `name<TAB>path`",
                path.display(),
                n + 1
            ));
        }
        let p = Path::new(p);
        out.push((
            name,
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            },
        ));
    }
    if out.is_empty() {
        return Err(format!("{}: the manifest lists no input", path.display()));
    }
    Ok(out)
}

fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "case".into());
    let lower = name.to_lowercase();
    for ext in [".nii.gz", ".nii", ".mha", ".mhd", ".dcm", ".gz"] {
        if lower.ends_with(ext) && lower.len() > ext.len() {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    name
}

fn parent_name(path: &Path) -> Option<String> {
    let abs = std::path::absolute(path).ok()?;
    Some(abs.parent()?.file_name()?.to_string_lossy().into_owned())
}

/// Case names: the file stem; the parent folder's name when the stem is
/// generic (`ct.nii.gz` in a case folder) or shared with another input.
fn case_names(inputs: &[(Option<String>, PathBuf)]) -> Result<Vec<String>, String> {
    let stems: Vec<String> = inputs.iter().map(|(_, p)| stem(p)).collect();
    let generic =
        |s: &str| ["ct", "image", "img", "volume", "scan"].contains(&s.to_lowercase().as_str());
    let names: Vec<String> = inputs
        .iter()
        .zip(&stems)
        .map(|((given, p), s)| {
            if let Some(g) = given {
                return g.clone();
            }
            let shared = stems.iter().filter(|t| *t == s).count() > 1;
            match (generic(s) || shared, parent_name(p)) {
                (true, Some(parent)) if generic(s) => parent,
                (true, Some(parent)) => format!("{parent}-{s}"),
                _ => s.clone(),
            }
        })
        .collect();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\\']) {
            return Err(format!(
                "{}: case name {n:?} cannot be a folder name; give one in a manifest",
                inputs[i].1.display()
            ));
        }
        if let Some(j) = names[..i].iter().position(|m| m == n) {
            return Err(format!("{} and {} both give the case name {n:?}; name them in a manifest (`name<TAB>path`)", inputs[j].1.display(), inputs[i].1.display()));
        }
    }
    Ok(names)
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Segment one case and write its outputs.
fn run_case(
    case: &Case,
    model: &dyn ProbabilityModel,
    options: &SegmentOptions,
    formats: &OutputFormats,
    bar: &ProgressBar,
) -> Result<(Report, f64), String> {
    let t0 = Instant::now();
    bar.set_message("read");
    let read = read_image(&case.input, &ReadOptions::default()).map_err(|e| e.to_string())?;
    let is_dicom = read.info.format == Format::DicomSeries;
    if formats.needs_dicom() && !is_dicom {
        return Err(format!(
            "{}: dicom-seg, rtstruct and overview outputs need a DICOM series input (this is {})",
            case.input.display(),
            read.info.format.name()
        ));
    }
    let read_s = t0.elapsed().as_secs_f64();
    let mut progress = |stage: Stage, done: usize, total: usize| {
        bar.set_message(stage.name());
        if stage == Stage::Predict {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    };
    let mut seg = segment_dyn(&read.volume, model, options, &mut progress)
        .map_err(|e| format!("{}: {e}", case.input.display()))?;
    seg.report.set_time("read", read_s);
    // The reader's warnings and choice of series travel with the result.
    seg.report.input = Some(InputInfo::from_read(&read));
    bar.set_message("write");
    let source = OutputSource {
        ct: &read.volume,
        // The series the reader chose, so the DICOM outputs refer to exactly
        // the images segmented, whatever else the folder holds.
        dicom_series: read.dicom.as_ref().map(|d| &d.series),
    };
    write_outputs(&case.dir, &seg, formats, &source)
        .map_err(|e| format!("{}: {e}", case.input.display()))?;
    Ok((seg.report, t0.elapsed().as_secs_f64()))
}

fn read_report(dir: &Path) -> Option<Box<Report>> {
    let bytes = std::fs::read(dir.join(liverseg_pipeline::write::REPORT_JSON)).ok()?;
    serde_json::from_slice(&bytes).ok().map(Box::new)
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
    if !(args.radius.is_finite() && (0.0..=50.0).contains(&args.radius)) {
        return usage(format!("--radius {} is not in 0..50 mm", args.radius));
    }
    if args.jobs == 0 {
        return usage("--jobs must be at least 1");
    }
    let mut inputs: Vec<(Option<String>, PathBuf)> =
        args.inputs.iter().map(|p| (None, p.clone())).collect();
    if let Some(m) = &args.manifest {
        match read_manifest(m) {
            Ok(list) => inputs.extend(list),
            Err(e) => return usage(e),
        }
    }
    if inputs.is_empty() {
        return usage("no input: give CT paths or --manifest");
    }
    let single = inputs.len() == 1 && args.manifest.is_none();
    let cases: Vec<Case> = if single {
        vec![Case {
            name: stem(&inputs[0].1),
            input: inputs[0].1.clone(),
            dir: args.out.clone(),
        }]
    } else {
        match case_names(&inputs) {
            Ok(names) => names
                .into_iter()
                .zip(inputs)
                .map(|(name, (_, input))| Case {
                    dir: args.out.join(&name),
                    name,
                    input,
                })
                .collect(),
            Err(e) => return usage(e),
        }
    };
    let load_options = model::LoadOptions { device: &args.device, threshold: args.threshold, full_volume: args.full_volume };
    let model = model::load(args.model.as_deref(), &load_options).map_err(|e| anyhow::anyhow!(e))?;
    let options = SegmentOptions {
        threshold: args.threshold,
        postprocess_radius_mm: args.radius,
        probability: args.probability,
        ..Default::default()
    };

    let multi = MultiProgress::new();
    if !std::io::stderr().is_terminal() {
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    let overall = (!single).then(|| {
        let b = multi.add(ProgressBar::new(cases.len() as u64));
        b.set_style(style("cases {bar:30} {pos}/{len} {elapsed}"));
        b
    });
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(case) = cases.get(i) else { break };
        let outcome = if !single && !args.force && outputs_complete(&case.dir, &formats) {
            Outcome::Skipped(read_report(&case.dir))
        } else {
            let bar = multi.add(ProgressBar::new(1));
            bar.set_style(style("{prefix} {msg:18} {bar:30} {pos}/{len} {elapsed}"));
            bar.set_prefix(case.name.clone());
            let r = run_case(case, model.as_ref(), &options, &formats, &bar);
            bar.finish_and_clear();
            match r {
                Ok((report, s)) => Outcome::Done(Box::new(report), s),
                Err(e) => Outcome::Failed(e),
            }
        };
        if let Some(o) = &overall {
            o.inc(1);
        }
        results
            .lock()
            .expect("no worker panics while holding the lock")[i] = Some(outcome);
    };
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(cases.len()) {
            s.spawn(worker);
        }
    });
    if let Some(o) = overall {
        o.finish_and_clear();
    }
    let results: Vec<Outcome> = results
        .into_inner()
        .expect("workers ended")
        .into_iter()
        .map(|o| o.expect("every case ran"))
        .collect();
    let failed = results
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();

    if single {
        match &results[0] {
            Outcome::Done(report, secs) => {
                if args.json {
                    println!("{}", report.to_json_pretty());
                } else {
                    print_case(&cases[0], report, *secs);
                }
            }
            Outcome::Failed(e) => eprintln!("liverseg: error: {e}"),
            Outcome::Skipped(_) => unreachable!("a single case is never skipped"),
        }
    } else if args.json {
        let list: Vec<serde_json::Value> = cases
            .iter()
            .zip(&results)
            .map(|(c, o)| {
                let (status, report, error) = match o {
                    Outcome::Done(r, _) => ("ok", Some(r.as_ref()), None),
                    Outcome::Skipped(r) => ("skipped", r.as_deref(), None),
                    Outcome::Failed(e) => ("failed", None, Some(e.as_str())),
                };
                serde_json::json!({ "case": c.name, "input": c.input, "output": c.dir, "status": status, "report": report, "error": error })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print_table(&cases, &results);
    }
    for (c, o) in cases.iter().zip(&results) {
        if let (Outcome::Failed(e), false) = (o, single) {
            eprintln!("liverseg: error: case {}: {e}", c.name);
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

fn print_case(case: &Case, r: &Report, secs: f64) {
    println!("liverseg segment: {}", case.input.display());
    println!(
        "  liver {:.1} ml, {:.0} g, median {} HU ({:.1} s, model {})",
        r.liver_volume_ml,
        r.liver_mass_g,
        r.liver_hu_median.map_or("-".into(), |h| format!("{h:.0}")),
        secs,
        r.model_id
    );
    if let Some(t) = &r.tiles {
        println!(
            "  computed {} of {} body tiles ({} probes{})",
            t.computed_tiles,
            t.body_tiles,
            t.probes,
            if t.fell_back_to_all { ", probes found too little liver: computed all" } else { "" }
        );
    }
    if let Some(input) = &r.input {
        if let Some(series) = &input.series {
            let others = input.other_series.as_ref().map_or(String::new(), |o| {
                if o.count == 0 {
                    String::new()
                } else {
                    let kinds: Vec<String> = o.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
                    format!("; also found: {}", kinds.join(", "))
                }
            });
            let uid = if series.series_instance_uid.is_empty() {
                "(no SeriesInstanceUID)"
            } else {
                series.series_instance_uid.as_str()
            };
            println!(
                "  read DICOM series {uid} \"{}\" ({} images{others})",
                series.series_description, series.images
            );
        }
        for w in &input.warnings {
            println!("  reader warning: {w}");
        }
    }
    for f in &r.flags {
        println!("  flag {}: {}", f.name, f.message);
    }
    println!("  outputs in {}", case.dir.display());
}

fn print_table(cases: &[Case], results: &[Outcome]) {
    let w = cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:w$}  {:8}  {:>9}  {:>7}  flags",
        "case", "status", "liver ml", "time s"
    );
    for (c, o) in cases.iter().zip(results) {
        match o {
            Outcome::Done(r, s) => println!(
                "{:w$}  {:8}  {:>9.1}  {:>7.1}  {}",
                c.name,
                "ok",
                r.liver_volume_ml,
                s,
                flag_list(r)
            ),
            Outcome::Skipped(Some(r)) => println!(
                "{:w$}  {:8}  {:>9.1}  {:>7}  {}",
                c.name,
                "skipped",
                r.liver_volume_ml,
                "-",
                flag_list(r)
            ),
            Outcome::Skipped(None) => {
                println!("{:w$}  {:8}  {:>9}  {:>7}  -", c.name, "skipped", "-", "-")
            }
            Outcome::Failed(_) => println!(
                "{:w$}  {:8}  {:>9}  {:>7}  (see error below)",
                c.name, "FAILED", "-", "-"
            ),
        }
    }
    let done = results
        .iter()
        .filter(|o| matches!(o, Outcome::Done(..)))
        .count();
    let skipped = results
        .iter()
        .filter(|o| matches!(o, Outcome::Skipped(_)))
        .count();
    let failed = results.len() - done - skipped;
    println!(
        "{done} done, {skipped} skipped (outputs complete), {failed} failed; outputs in {}",
        cases
            .first()
            .and_then(|c| c.dir.parent())
            .map_or(String::new(), |p| p.display().to_string())
    );
}
