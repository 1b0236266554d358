use anyhow::{bail, Context};
use liverseg_metrics::study::{run_study, FolderSets, StudyInput};
use liverseg_metrics::EvalOptions;
use std::path::PathBuf;
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
The inter-observer study of the paper. Give two or more named sets of masks
over the same cases (folders; cases matched by file name without image
extension, or sub-folder name), e.g.
  liverseg study --set cnn=out/cnn --set manual1=m1 --set adjusted1=a1 --out study/
Every pair of sets is compared (or only those given with --compare first:second).
In a comparison 'first vs second' the first set is the reference a:
  DSC = 2|a∩b|/(|a|+|b|); RV = V(second)/V(first); MSD = symmetric mean
  surface distance (MedPy 0.5.2 assd, pooled; see `liverseg evaluate --help`);
  HD = maximum surface distance; HD95 = 95th percentile (linear).
Per comparison: per-case values, medians [q1, q3], min, max, mean, and the
number of cases with RV outside [0.9, 1.1].
Optional CSVs (header row required):
  --scores case,reviewer,score       score 1-5 in steps of 0.5 -> histogram per
                                     reviewer (score >= 3: usable after limited
                                     adjustment)
  --times  case,reviewer,task,seconds   task = manual | adjust -> minutes per
                                     reviewer and task (n, median, min, max, mean)
  --tags   case,reviewer,region      regions corrected -> frequencies
Output folder: per_case.csv, comparisons.csv, scores.csv, times.csv, tags.csv,
study.json, box plots per metric (box_<metric>.png/.svg; Tukey boxes: quartiles,
whiskers to the last value within 1.5 IQR, outliers as circles, every case as a
dot) and report.md embedding them.";

#[derive(clap::Args)]
#[command(after_help = LONG_ABOUT)]
pub struct Args {
    /// A named set of masks: NAME=FOLDER (repeat; at least two).
    #[arg(long = "set", value_name = "NAME=FOLDER", required = true)]
    pub sets: Vec<String>,
    /// Only these comparisons, FIRST:SECOND by set name (repeatable).
    #[arg(long, value_name = "FIRST:SECOND")]
    pub compare: Vec<String>,
    /// Expert scores CSV: case,reviewer,score.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Time CSV: case,reviewer,task,seconds.
    #[arg(long)]
    pub times: Option<PathBuf>,
    /// Corrected-region tags CSV: case,reviewer,region.
    #[arg(long)]
    pub tags: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut names = vec![];
    let mut dirs = vec![];
    for s in &args.sets {
        let Some((name, dir)) = s.split_once('=') else { bail!("--set {s:?}: expected NAME=FOLDER") };
        if name.is_empty() || names.contains(&name.to_string()) {
            bail!("--set {s:?}: set names must be non-empty and distinct");
        }
        if !std::path::Path::new(dir).is_dir() {
            bail!("--set {name}: {dir} is not a folder");
        }
        names.push(name.to_string());
        dirs.push(PathBuf::from(dir));
    }
    let index = |n: &str| names.iter().position(|x| x == n).with_context(|| format!("--compare: no set named {n:?}"));
    let mut comparisons = vec![];
    for c in &args.compare {
        let Some((f, s)) = c.split_once(':') else { bail!("--compare {c:?}: expected FIRST:SECOND") };
        comparisons.push((index(f)?, index(s)?));
    }
    if names.len() < 2 {
        bail!("a study needs at least two --set");
    }
    let source = FolderSets::new(&dirs)?;
    let input = StudyInput {
        sets: names,
        cases: source.case_ids(),
        comparisons,
        source: &source,
        scores: args.scores,
        times: args.times,
        tags: args.tags,
        options: EvalOptions::default(),
    };
    let report = run_study(&input)?;
    for p in report.write(&args.out)? {
        eprintln!("wrote {}", p.display());
    }
    print!("{}", report.markdown(&[]).split("Per-case values").next().unwrap_or_default());
    let errors: usize = report.comparisons.iter().flat_map(|c| &c.cases).filter(|r| r.error.is_some()).count();
    for w in &report.warnings {
        eprintln!("liverseg: warning: {w}");
    }
    if errors > 0 {
        eprintln!("liverseg: {errors} case comparisons failed (see per_case.csv)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
