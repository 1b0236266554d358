use anyhow::{bail, Context};
use liverseg_metrics::cohort::{evaluate_cohort, pairs_from_dirs, pairs_from_manifest};
use liverseg_metrics::{evaluate_resampling, EvalOptions, SurfaceConvention};
use std::path::PathBuf;
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
Compare two masks: a = first = reference, b = second. Label >= 1 is foreground.
If b is on another grid it is resampled onto a's grid with nearest neighbour,
and the output says so (warning; JSON \"resampled_b_onto_a\": true).

Definitions (volumes in ml, distances in mm, with the voxel spacing):
  dice               2|a∩b| / (|a| + |b|) on voxel counts
  volume_a_ml, volume_b_ml   voxel count x voxel volume
  volume_ratio       V_b / V_a (the paper's RV of segmentation b vs reference a;
                     MedPy's 1+ravd and SimpleITK's ratio are V_a / V_b)
  volume_similarity  2 (V_a - V_b) / (V_a + V_b), positive when a is larger

--surface medpy (default; reproduces MedPy 0.5.2):
  surface = foreground voxels with a face-neighbour (6-connectivity) in the
  background; voxels on the image border count as surface. Distances are
  Euclidean between voxel centres, from each surface voxel to the nearest
  surface voxel of the other mask.
  asd_ab, asd_ba     directed mean surface distance a->b, b->a
  assd               mean of the pooled list of both directed distance lists
  hd                 maximum of the pooled list
  hd95               95th percentile of the pooled list, linear interpolation
                     (numpy.percentile)

--surface surfel (reproduces DeepMind surface-distance):
  surfels = voxel corners whose 2x2x2 neighbourhood is mixed; each carries the
  area (mm²) of its marching-cubes triangles; the outside of the image is
  background. Distances are between surfel corners.
  surfel_asd_ab, surfel_asd_ba   directed area-weighted mean distances
  surfel_assd        mean of the two directed means
  surfel_assd_pooled area-weighted mean over both surfel lists
  surfel_hd          max of the two directed maxima
  surfel_hd95        max of the two directed area-weighted nearest-rank 95th
                     percentiles (no interpolation, no pooling)
  surface_dice_at_<t>mm  (area of a within t of b + area of b within t of a)
                     / (area of a + area of b)

--surface both gives both sets of keys.

Empty masks: no metric is ever a silent 0 or a fake number. Undefined values
are null in JSON (\"undefined\" in the table) and listed under \"undefined\"
with the reason: Dice of two empty masks (0/0); volume_ratio when a is empty;
volume_similarity when both are empty; every surface distance when either
mask is empty (no surface). Dice is 0 and surface Dice is 0 when exactly one
mask is empty.

Many cases: --pairs MANIFEST.csv (columns case,a,b; paths relative to the
manifest) or --pairs DIR_A DIR_B (cases matched by file name without image
extension, or sub-folder name). Prints a per-case table and a cohort summary
(median, q1, q3, IQR, min, max, mean; numpy linear percentiles); --out DIR
writes cases.csv, summary.csv and evaluation.json (atomically).";

#[derive(clap::Args)]
#[command(after_help = LONG_ABOUT)]
pub struct Args {
    /// Two masks (a = reference, b), or with --pairs: a manifest CSV or two folders.
    #[arg(required = true, num_args = 1..=2)]
    pub inputs: Vec<PathBuf>,
    /// Evaluate many cases: INPUTS is a manifest CSV (case,a,b) or two folders.
    #[arg(long)]
    pub pairs: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Surface-distance convention.
    #[arg(long, value_enum, default_value_t = Surface::Medpy)]
    pub surface: Surface,
    /// Surface Dice tolerances in mm (surfel convention), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub tolerance: Vec<f64>,
    /// With --pairs: folder for cases.csv, summary.csv and evaluation.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Surface {
    Medpy,
    Surfel,
    Both,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let convention = match args.surface {
        Surface::Medpy => SurfaceConvention::Medpy,
        Surface::Surfel => SurfaceConvention::Surfel,
        Surface::Both => SurfaceConvention::Both,
    };
    if args.tolerance.iter().any(|t| !(t.is_finite() && *t >= 0.0)) {
        bail!("--tolerance values must be finite and >= 0 mm");
    }
    let options = EvalOptions { convention, tolerances_mm: args.tolerance.clone() };
    if args.pairs {
        let (cases, warnings) = match args.inputs.as_slice() {
            [manifest] => (pairs_from_manifest(manifest)?, vec![]),
            [a, b] => pairs_from_dirs(a, b)?,
            _ => unreachable!("clap limits the inputs to 1..=2"),
        };
        let report = evaluate_cohort(&cases, &options, warnings);
        if let Some(out) = &args.out {
            for p in report.write(out)? {
                eprintln!("wrote {}", p.display());
            }
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
        } else {
            print!("{}", report.to_table());
        }
        if report.failed() > 0 {
            eprintln!("liverseg: {} of {} cases failed (see the error column)", report.failed(), report.cases.len());
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.out.is_some() {
        bail!("--out is for --pairs; use --json > file for one pair");
    }
    let [a_path, b_path] = args.inputs.as_slice() else { bail!("give two masks: a (reference) and b") };
    let (a, _) = liverseg_io::read_mask(a_path, None, &Default::default())?;
    let (b, _) = liverseg_io::read_mask(b_path, Some(a.geometry()), &Default::default()).with_context(|| "reading mask b")?;
    let e = evaluate_resampling(&a, &b, &options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e.to_json())?);
    } else {
        print!("{}", e.to_table());
    }
    for w in &e.warnings {
        eprintln!("liverseg: warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
