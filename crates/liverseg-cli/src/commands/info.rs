use liverseg_io::{read_image, ReadOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// NIfTI / Analyze / MetaImage file, DICOM file, folder with a DICOM series,
    /// or a liverseg model file (.lsm: its id, threshold and training summary).
    pub path: PathBuf,
    /// DICOM: SeriesInstanceUID or index (as listed) of the series to read.
    #[arg(long)]
    pub series: Option<String>,
    /// DICOM: resample uneven spacing or missing slices onto a regular grid.
    #[arg(long)]
    pub allow_irregular: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if liverseg_model::checkpoint::is_model_file(&args.path) {
        return model_info(&args);
    }
    let options = ReadOptions { series: args.series.clone(), allow_irregular: args.allow_irregular, ..Default::default() };
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
        print_dicom_series(&out.info.details);
        for w in &out.info.warnings {
            println!("warning     {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A model file (`.lsm`): its id, network, threshold and training summary,
/// read from the header alone. The training cases are counted, not named: a
/// hospital's case folders may be named after patients.
fn model_info(args: &Args) -> anyhow::Result<ExitCode> {
    let info = liverseg_model::checkpoint::read_info(&args.path)?;
    let mut training = info.training.clone();
    if let Some(t) = training.as_object_mut() {
        for key in ["train_cases", "validation_cases"] {
            if let Some(n) = t.get(key).and_then(|v| v.as_array()).map(|a| a.len()) {
                t.insert(key.into(), serde_json::json!(n));
            }
        }
    }
    let report = serde_json::json!({
        "path": args.path,
        "format": "liverseg model",
        "id": info.id,
        "network": info.network.name,
        "threshold": info.threshold,
        // At the top, for scripts: a recipe with a fixed threshold keeps the
        // searched one only in the training summary.
        "searched_threshold": info.training["threshold_search"]["threshold"],
        "training": training,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("file        {}", args.path.display());
    println!("format      liverseg model");
    println!("id          {}", info.id);
    println!("network     {}", info.network.name);
    println!("threshold   {}", info.threshold);
    let t = &training;
    if let Some(n) = t["train_cases"].as_u64() {
        println!("trained on  {n} case(s), validated on {}", t["validation_cases"].as_u64().unwrap_or(0));
    }
    if let Some(e) = t["epochs"].as_u64() {
        let minutes = t["minutes"].as_f64().map(|m| format!(" in {m:.0} min")).unwrap_or_default();
        println!("epochs      {e}{minutes}");
    }
    if let Some(a) = t["averaged_epochs"].as_array().filter(|a| !a.is_empty()) {
        println!("final model the weight average of epochs {}-{}", a[0], a[a.len() - 1]);
    }
    if let Some(s) = t["threshold_search"].as_object() {
        let f = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.3}")).unwrap_or_else(|| "?".into());
        println!("searched    threshold {} on the {} cases (mean DSC {} there)", f(&s["threshold"]), s["on"].as_str().unwrap_or("?"), f(&s["mean_dsc"]));
    }
    Ok(ExitCode::SUCCESS)
}

/// For a DICOM folder: every candidate series found, the chosen one starred, so
/// a user can pick another with `--series`.
fn print_dicom_series(details: &serde_json::Value) {
    let Some(series) = details.get("series").and_then(|s| s.as_array()) else { return };
    let chosen = details.get("chosen").and_then(|c| c.as_u64());
    for s in series {
        let index = s["index"].as_u64();
        let mark = if index.is_some() && index == chosen { "*" } else { " " };
        let dims = s["dims"].as_array().map(|d| d.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("x")).unwrap_or_default();
        println!(
            "series    {mark} [{}] {} {} slices {} {} \"{}\" {}",
            index.map(|i| i.to_string()).unwrap_or_default(),
            s["modality"].as_str().unwrap_or("?"),
            s["slices"],
            dims,
            s["orientation"].as_str().unwrap_or(""),
            s["series_description"].as_str().unwrap_or(""),
            s["series_instance_uid"].as_str().unwrap_or(""),
        );
    }
}
