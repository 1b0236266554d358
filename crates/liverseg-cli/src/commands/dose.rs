//! `liverseg dose`: Y-90 SIRT activity prescription and absorbed dose from the
//! liver contour (BSA, mono-compartment MIRD, partition model, voxel dosimetry).
//! Reads the images, hands them to liverseg-dose, prints the results and writes a
//! report (Markdown + HTML + JSON), the dose map (NIfTI, Gy) and the DVH plot.

use anyhow::{anyhow, bail, Context};
use liverseg_dose::formulas::{lsf_from_planar, PlanarCounts, TnRatio};
use liverseg_dose::plan::{self, ActivityInput, DoseSummary, Method};
use liverseg_dose::regions::{require_same_grid, RegionVolumes, Regions};
use liverseg_dose::units::*;
use liverseg_dose::voxel::calibrate_activity_map;
use liverseg_dose::{plot, report, Limits, Sphere};
use liverseg_io::{read_image, read_mask, write_image, ReadOptions};
use liverseg_volume::{DynVolume, Geometry, Mask, Volume};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Bsa,
    Mird,
    Partition,
    Voxel,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActivityUnit {
    /// Calibrated Y-90 activity concentration, Bq/ml (Y-90 PET, Y-90 quantitative
    /// SPECT). A Tc-99m MAA SPECT must be given as `counts`: its Bq/ml are Tc-99m.
    BqPerMl,
    KbqPerMl,
    MbqPerMl,
    /// Relative counts, scaled to the administered activity (--total-activity-gbq).
    Counts,
}

impl From<ActivityUnit> for liverseg_dose::voxel::ActivityUnit {
    fn from(u: ActivityUnit) -> Self {
        match u {
            ActivityUnit::BqPerMl => Self::BqPerMl,
            ActivityUnit::KbqPerMl => Self::KbqPerMl,
            ActivityUnit::MbqPerMl => Self::MbqPerMl,
            ActivityUnit::Counts => Self::Counts,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SphereArg {
    Resin,
    Glass,
}

#[derive(clap::Args)]
// Negative numbers must reach the validation that names the input, not clap's
// "unexpected argument".
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// CT the contours were drawn on (its grid is the reference for every mask and the dose map).
    #[arg(long, requires = "liver")]
    pub ct: Option<PathBuf>,
    /// Whole-liver mask (tumour included), on the CT grid.
    #[arg(long, requires = "ct")]
    pub liver: Option<PathBuf>,
    /// Tumour mask(s) on the CT grid; repeat for several. Clipped to the liver.
    #[arg(long)]
    pub tumour: Vec<PathBuf>,
    /// Perfused-territory mask (lobar / segmental treatment) on the CT grid.
    #[arg(long)]
    pub perfused: Option<PathBuf>,
    /// Whole-liver volume in ml, instead of masks (scalar methods only).
    #[arg(long, conflicts_with = "liver")]
    pub liver_ml: Option<f64>,
    /// Tumour volume in ml, instead of tumour masks.
    #[arg(long, conflicts_with = "liver")]
    pub tumour_ml: Option<f64>,
    /// Perfused liver volume in ml, instead of a perfused mask.
    #[arg(long, conflicts_with = "liver")]
    pub perfused_ml: Option<f64>,
    /// Patient height in cm (BSA method).
    #[arg(long)]
    pub height_cm: Option<f64>,
    /// Patient weight in kg (BSA method).
    #[arg(long)]
    pub weight_kg: Option<f64>,
    /// Lung shunt fraction as a fraction in [0, 1) (0.12 for 12 %).
    #[arg(long, conflicts_with_all = ["lung_counts", "liver_counts"])]
    pub lsf: Option<f64>,
    /// Planar MAA lung counts: ANTERIOR[,POSTERIOR] (geometric mean when both).
    #[arg(long, requires = "liver_counts")]
    pub lung_counts: Option<String>,
    /// Planar MAA liver counts: ANTERIOR[,POSTERIOR].
    #[arg(long, requires = "lung_counts")]
    pub liver_counts: Option<String>,
    /// Lung mass in kg.
    #[arg(long, default_value_t = 1.0)]
    pub lung_mass_kg: f64,
    /// Lung dose of earlier treatments, Gy (checked against the 50 Gy cumulative limit).
    #[arg(long, default_value_t = 0.0)]
    pub prior_lung_dose_gy: f64,
    /// Tissue density in g/ml.
    #[arg(long, default_value_t = 1.03)]
    pub density: f64,
    /// Microspheres: sets the default normal-liver advisory (resin 40 Gy, glass 70 Gy).
    #[arg(long, value_enum, default_value = "resin")]
    pub sphere: SphereArg,
    /// Normal-liver dose advisory in Gy (overrides the sphere default).
    #[arg(long)]
    pub normal_liver_limit_gy: Option<f64>,
    /// MIRD: target mean dose to the treated liver, Gy.
    #[arg(long)]
    pub target_dose_gy: Option<f64>,
    /// Partition model: target normal-liver dose, Gy (default: the normal-liver advisory).
    #[arg(long)]
    pub target_normal_gy: Option<f64>,
    /// Partition model: target tumour dose, Gy (takes precedence over --target-normal-gy).
    #[arg(long)]
    pub target_tumour_gy: Option<f64>,
    /// Partition model: tumour-to-normal uptake ratio.
    #[arg(long, conflicts_with = "spect")]
    pub tn: Option<f64>,
    /// Tc-99m MAA SPECT (counts) for T/N from the tumour and normal-liver masks.
    #[arg(long, requires = "liver")]
    pub spect: Option<PathBuf>,
    /// Activity map for voxel dosimetry (Y-90 PET or MAA SPECT), any grid.
    #[arg(long, requires = "liver")]
    pub activity_map: Option<PathBuf>,
    /// Unit of the activity map's voxels.
    #[arg(long, value_enum, default_value = "bq-per-ml")]
    pub activity_unit: ActivityUnit,
    /// Administered activity in GBq to scale a counts map (default: this run's prescription).
    #[arg(long)]
    pub total_activity_gbq: Option<f64>,
    /// Hours between administration and the calibrated map's reference time: the map
    /// is decay-corrected back to administration (x 2^(t / 64.1 h)). Leave out when
    /// the reconstruction is already decay-corrected to the administration time.
    #[arg(long)]
    pub decay_hours: Option<f64>,
    /// Methods to run, comma-separated; `all` runs every method whose inputs are given.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub method: Vec<MethodArg>,
    /// DVH bin width in Gy.
    #[arg(long, default_value_t = 0.5)]
    pub dvh_bin_gy: f64,
    /// Output folder for the report, dose map and DVH plots.
    #[arg(short, long, default_value = "liverseg-dose")]
    pub out: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_counts(flag: &str, text: &str) -> anyhow::Result<PlanarCounts> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let num = |s: &str| s.parse::<f64>().map_err(|_| anyhow!("{flag}: '{s}' is not a number (give ANTERIOR[,POSTERIOR])"));
    match parts.as_slice() {
        [a] => Ok(PlanarCounts { anterior: Counts(num(a)?), posterior: None }),
        [a, p] => Ok(PlanarCounts { anterior: Counts(num(a)?), posterior: Some(Counts(num(p)?)) }),
        _ => bail!("{flag}: give ANTERIOR or ANTERIOR,POSTERIOR counts"),
    }
}

fn read_on_grid(what: &str, path: &Path, ct: &Geometry) -> anyhow::Result<Mask> {
    let (mask, _) = read_mask(path, Some(ct), &ReadOptions::default())?;
    require_same_grid(&format!("{what} {}", path.display()), ct, mask.geometry())?;
    Ok(mask)
}

/// Trilinear resampling of an activity map onto the CT grid, through world (LPS)
/// coordinates; zero outside the map's field of view. Interpolating the
/// concentration (not the per-voxel activity) keeps Bq/ml meaningful on any grid;
/// activity is conserved only approximately when the CT grid is much coarser.
fn resample_linear(src: &Volume<f64>, target: &Geometry) -> Volume<f64> {
    let r = liverseg_imgproc::resample::resample(src, target, liverseg_imgproc::resample::Interpolation::Linear, 0.0);
    r.map(|&v| f64::from(v))
}

fn positive_arg(flag: &str, v: f64) -> anyhow::Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        bail!("{flag}: {v} must be a positive number")
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // --- Inputs, all validated before anything is written.
    let methods: Vec<Method> = if args.method.contains(&MethodArg::All) {
        Method::ALL.to_vec()
    } else {
        args.method
            .iter()
            .map(|m| match m {
                MethodArg::Bsa => Method::Bsa,
                MethodArg::Mird => Method::Mird,
                MethodArg::Partition => Method::Partition,
                MethodArg::Voxel => Method::Voxel,
                MethodArg::All => unreachable!("handled above"),
            })
            .collect()
    };
    let skip_unavailable = args.method.contains(&MethodArg::All);

    let mut notes: Vec<String> = Vec::new();
    let ct_geometry = match &args.ct {
        Some(ct) => Some(read_image(ct, &ReadOptions::default())?.volume.geometry().clone()),
        None => None,
    };
    let regions = match (&ct_geometry, &args.liver) {
        (Some(g), Some(liver_path)) => {
            let liver = read_on_grid("liver mask", liver_path, g)?;
            let tumours = args.tumour.iter().map(|p| Ok((p.display().to_string(), read_on_grid("tumour mask", p, g)?))).collect::<anyhow::Result<Vec<_>>>()?;
            let perfused = args.perfused.as_ref().map(|p| Ok::<_, anyhow::Error>((p.display().to_string(), read_on_grid("perfused mask", p, g)?))).transpose()?;
            let tumour_refs: Vec<(String, &Mask)> = tumours.iter().map(|(n, m)| (n.clone(), m)).collect();
            if liver.count_foreground() == 0 {
                bail!("liver mask {}: is empty (no foreground voxels)", liver_path.display());
            }
            Some(Regions::new(&liver, &tumour_refs, perfused.as_ref().map(|(n, m)| (n.clone(), m)))?)
        }
        _ => None,
    };
    if regions.is_none() && (!args.tumour.is_empty() || args.perfused.is_some()) {
        bail!("--tumour / --perfused masks need --ct and --liver");
    }
    let volumes = match &regions {
        Some(r) => r.volumes(),
        None => {
            let liver = positive_arg("--liver-ml", args.liver_ml.ok_or_else(|| anyhow!("give the liver as a mask (--ct and --liver) or as a volume (--liver-ml)"))?)?;
            let (volumes, note) = RegionVolumes::from_volumes(liver, args.tumour_ml.unwrap_or(0.0), args.perfused_ml, ["--liver-ml", "--tumour-ml", "--perfused-ml"])?;
            notes.extend(note);
            volumes
        }
    };

    let (lsf, lsf_source) = match (args.lsf, &args.lung_counts, &args.liver_counts) {
        (Some(f), _, _) => (Some(ShuntFraction::from_fraction(f)?), "given".to_string()),
        (None, Some(lung), Some(liver)) => {
            let lung = parse_counts("--lung-counts", lung)?;
            let liver = parse_counts("--liver-counts", liver)?;
            let how = if lung.posterior.is_some() { "planar counts, geometric mean of anterior and posterior" } else { "planar counts, anterior only" };
            (Some(lsf_from_planar(lung, liver)?), how.to_string())
        }
        _ => (None, "not given".to_string()),
    };

    let (tn, tn_source) = match (args.tn, &args.spect) {
        (Some(t), _) => (Some(TnRatio::new(t)?), "given".to_string()),
        (None, Some(spect)) => {
            let r = regions.as_ref().ok_or_else(|| anyhow!("--spect needs --ct and --liver"))?;
            let mut counts = read_image(spect, &ReadOptions::default())?.volume.to_f64();
            let name = spect.display().to_string();
            if !counts.geometry().same_grid(r.geometry()) {
                counts = resample_linear(&counts, r.geometry());
                notes.push(format!("{name}: resampled (trilinear) onto the CT grid for T/N"));
            }
            if r.treated_tumour.count_foreground() == 0 {
                bail!("--spect: T/N needs a tumour mask inside the treated liver (--tumour)");
            }
            let tn = liverseg_dose::voxel::tn_from_count_map(&name, &counts, &r.treated_tumour, &r.treated_normal)?;
            (Some(tn), format!("MAA SPECT count densities in the treated tumour and normal-liver masks ({name})"))
        }
        _ => (None, "not given".to_string()),
    };

    let activity = match &args.activity_map {
        None => None,
        Some(path) => {
            let r = regions.as_ref().ok_or_else(|| anyhow!("--activity-map needs --ct and --liver"))?;
            let mut map = read_image(path, &ReadOptions::default())?.volume.to_f64();
            let name = path.display().to_string();
            if !map.geometry().same_grid(r.geometry()) {
                map = resample_linear(&map, r.geometry());
                notes.push(format!("{name}: resampled (trilinear, zero outside its field of view) onto the CT grid"));
            }
            notes.extend(calibrate_activity_map(&mut map, &name, args.activity_unit.into(), args.decay_hours)?);
            Some(match args.activity_unit {
                ActivityUnit::Counts => ActivityInput::Counts {
                    name,
                    counts: map,
                    administered: args.total_activity_gbq.map(|a| positive_arg("--total-activity-gbq", a).map(Gbq)).transpose()?,
                },
                _ => {
                    if args.total_activity_gbq.is_some() {
                        notes.push("--total-activity-gbq is ignored for a calibrated activity map".into());
                    }
                    ActivityInput::Calibrated { name, bq_per_ml: map }
                }
            })
        }
    };

    let mut limits = Limits::for_sphere(limits_sphere(args.sphere));
    if let Some(l) = args.normal_liver_limit_gy {
        limits.normal_liver_gy = Gray(positive_arg("--normal-liver-limit-gy", l)?);
    }
    if !(args.prior_lung_dose_gy.is_finite() && args.prior_lung_dose_gy >= 0.0) {
        bail!("--prior-lung-dose-gy: {} must be zero or positive", args.prior_lung_dose_gy);
    }
    limits.prior_lung_gy = Gray(args.prior_lung_dose_gy);
    let gy = |flag: &str, v: Option<f64>| v.map(|x| positive_arg(flag, x).map(Gray)).transpose();

    let input = plan::PlanInput {
        methods,
        skip_unavailable,
        regions: regions.as_ref(),
        volumes,
        height: args.height_cm.map(Centimetres),
        weight: args.weight_kg.map(Kilograms),
        lsf,
        lsf_source,
        lung_mass: Kilograms(positive_arg("--lung-mass-kg", args.lung_mass_kg)?),
        density: GramsPerMl(positive_arg("--density", args.density)?),
        sphere: limits_sphere(args.sphere),
        limits,
        target_dose: gy("--target-dose-gy", args.target_dose_gy)?,
        target_normal: gy("--target-normal-gy", args.target_normal_gy)?,
        target_tumour: gy("--target-tumour-gy", args.target_tumour_gy)?,
        tn,
        tn_source,
        activity,
        dvh_bin_width: Gray(positive_arg("--dvh-bin-gy", args.dvh_bin_gy)?),
    };
    let (summary, dose_map) = plan::run(&input)?;
    if summary.bsa.is_none() && summary.mird.is_none() && summary.partition.is_none() && summary.voxel.is_none() {
        let why: Vec<String> = summary.skipped.iter().map(|s| format!("{}: {}", s.method.name(), s.reason)).collect();
        bail!("no method could run with the inputs given ({})", why.join("; "));
    }

    // --- Outputs: everything is computed first, then written (each file atomically).
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create output folder", args.out.display()))?;
    let mut images = Vec::new();
    let mut files = Vec::new();
    let mut blobs: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    if let (Some(v), Some(map)) = (&summary.voxel, &dose_map) {
        let regions: Vec<_> = v.regions.iter().filter(|r| r.region != "treated normal liver").collect();
        let png = plot::dvh_png("Cumulative dose-volume histogram", &regions).map_err(|e| anyhow!("DVH plot: {e}"))?;
        let svg = plot::dvh_svg("Cumulative dose-volume histogram", &regions).map_err(|e| anyhow!("DVH plot: {e}"))?;
        blobs.push((args.out.join("dvh.png"), png));
        blobs.push((args.out.join("dvh.svg"), svg.into_bytes()));
        images.push(("Cumulative DVH".to_string(), "dvh.png".to_string()));
        let dose_path = args.out.join("dose_gy.nii.gz");
        write_image(&dose_path, &DynVolume::from(map.gray.clone()))?;
        files.push("dose_gy.nii.gz: absorbed dose map, Gy (float32), on the CT grid".to_string());
        files.push("dvh.png, dvh.svg: cumulative DVH plot".to_string());
    }
    let mut json = serde_json::to_value(&summary)?;
    json["notes"] = serde_json::json!(notes);
    json["out"] = serde_json::json!(args.out);
    let md = report::markdown(&summary, &images, &files, &notes);
    let html = report::html(&summary, &images, &files, &notes);
    blobs.push((args.out.join("report.md"), md.into_bytes()));
    blobs.push((args.out.join("report.html"), html.into_bytes()));
    blobs.push((args.out.join("dose.json"), serde_json::to_string_pretty(&json)?.into_bytes()));
    for (path, bytes) in &blobs {
        liverseg_io::atomic::write_atomic(path, |w| w.write_all(bytes))?;
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_table(&summary, &notes, &args.out);
    }
    Ok(ExitCode::SUCCESS)
}

fn limits_sphere(s: SphereArg) -> Sphere {
    match s {
        SphereArg::Resin => Sphere::Resin,
        SphereArg::Glass => Sphere::Glass,
    }
}

fn print_table(s: &DoseSummary, notes: &[String], out: &Path) {
    let i = &s.inputs;
    let v = &i.volumes;
    println!("liverseg dose: Y-90 SIRT dosimetry");
    println!("  liver {:.1} ml ({:.3} kg), tumour {:.1} ml, normal liver {:.1} ml", v.liver_ml.0, i.liver_mass_kg.0, v.tumour_ml.0, v.normal_liver_ml.0);
    if i.perfused_territory {
        println!("  treated territory {:.1} ml ({:.3} kg)", v.treated_liver_ml.0, i.treated_liver_mass_kg.0);
    }
    if let Some(l) = i.lsf {
        println!("  LSF {:.2} % ({})", l.percent(), i.lsf_source);
    }
    if let Some(r) = &s.bsa {
        match r.prescribed_activity_gbq {
            Some(a) => println!(
                "BSA        BSA {:.3} m^2, activity {:.3} GBq ({}), lung {:.2} Gy",
                r.bsa_m2.0,
                a.0,
                r.lsf_adjustment.describe(),
                r.lung_dose_gy.map(|d| d.0).unwrap_or(0.0)
            ),
            None => println!("BSA        BSA {:.3} m^2: {}", r.bsa_m2.0, r.lsf_adjustment.describe()),
        }
    }
    if let Some(r) = &s.mird {
        println!("MIRD       {:.1} Gy to {:.3} kg: activity {:.3} GBq, lung {:.2} Gy", r.target_dose_gy.0, r.treated_mass_kg.0, r.activity_gbq.0, r.lung_dose_gy.0);
    }
    if let Some(r) = &s.partition {
        println!(
            "partition  T/N {:.2}: activity {:.3} GBq, tumour {:.1} Gy, normal liver {:.1} Gy, lung {:.2} Gy",
            r.tn_ratio.value(),
            r.activity_gbq.0,
            r.tumour_dose_gy.0,
            r.normal_liver_dose_gy.0,
            r.lung_dose_gy.0
        );
    }
    if let Some(r) = &s.voxel {
        println!("voxel      {}", r.activity_source);
        for g in &r.regions {
            let d: Vec<String> = g.d.iter().map(|d| format!("D{} {:.1}", d.percent, d.dose_gy.0)).collect();
            let vv: Vec<String> = g.v.iter().map(|v| format!("V{} {:.1}%", v.dose_gy.0, v.volume_fraction.percent())).collect();
            println!("  {:<21} mean {:>7.1} Gy  {}  {}", g.region, g.mean_gy.0, d.join(" "), vv.join(" "));
        }
    }
    for k in &s.skipped {
        println!("skipped    {}: {}", k.method.name(), k.reason);
    }
    for w in s.all_warnings() {
        println!("WARNING    {}: {}", w.code, w.message);
    }
    for n in notes {
        println!("note       {n}");
    }
    println!("report     {}", out.join("report.html").display());
}
