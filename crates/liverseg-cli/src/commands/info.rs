use liverseg_io::{read_image, ReadOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// NIfTI / Analyze / MetaImage file, DICOM file, or folder with a DICOM series.
    pub path: PathBuf,
    /// DICOM: SeriesInstanceUID or index (as listed) of the series to read.
    #[arg(long)]
    pub series: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = ReadOptions { series: args.series.clone(), ..Default::default() };
    let out = read_image(&args.path, &options)?;
    let g = out.volume.geometry();
    let (min, max) = out.volume.min_max_f64().unwrap_or((f64::NAN, f64::NAN));
    let report = serde_json::json!({
        "path": args.path,
        "format": out.info.format.name(),
        "dims": g.dims(),
        "spacing": g.spacing(),
        "origin": g.origin(),
        "direction": g.direction_flat(),
        "orientation": g.orientation_code(),
        "dtype": out.volume.dtype().name(),
        "min": min,
        "max": max,
        "warnings": out.info.warnings,
        "details": out.info.details,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let f3 = |v: [f64; 3]| format!("{:.4} {:.4} {:.4}", v[0], v[1], v[2]);
        println!("file        {}", args.path.display());
        println!("format      {}", out.info.format.name());
        println!("dims        {} x {} x {}", g.dims()[0], g.dims()[1], g.dims()[2]);
        println!("spacing     {} mm", f3(g.spacing()));
        println!("origin      {} mm (LPS)", f3(g.origin()));
        let d = g.direction();
        println!("direction   {} | {} | {}  ({})", f3(d[0]), f3(d[1]), f3(d[2]), g.orientation_code());
        println!("dtype       {}", out.volume.dtype());
        println!("range       {min} .. {max}");
        for w in &out.info.warnings {
            println!("warning     {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
