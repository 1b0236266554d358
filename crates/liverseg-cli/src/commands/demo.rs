//! `liverseg demo`: the README's first command. Runs on a fresh clone with no
//! network and no data: it builds a synthetic abdominal CT with known organs
//! (`liverseg phantom`), segments it with the built-in model
//! (`liverseg_model::segment_model::open`), compares the result with the phantom's truth
//! (liverseg-metrics) and writes everything into `./liverseg-demo/`:
//! `ct.nii.gz`, `liver_truth.nii.gz`, the segment outputs (`liver.nii.gz`,
//! `report.json`, `overview.png`) and `evaluation.json`.

use liverseg_io::write_image;
use liverseg_metrics::{evaluate, EvalOptions};
use liverseg_phantom::{generate, PhantomConfig};
use liverseg_pipeline::{segment, write_outputs, OutputFormats, OutputSource, SegmentOptions};
use liverseg_volume::DynVolume;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(short, long, default_value = "liverseg-demo")]
    pub out: PathBuf,
    /// Phantom random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let model = liverseg_model::segment_model::open(&[], "cpu", false, liverseg_model::FlipAverage::default())?;
    let phantom = generate(&PhantomConfig {
        seed: args.seed,
        ..Default::default()
    });
    let seg = segment(
        &phantom.ct,
        &model,
        &SegmentOptions::default(),
        &mut |_, _, _| {},
    )?;
    let ct = DynVolume::from(phantom.ct.clone());
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create output folder: {e}", args.out.display()))?;
    let mut files = write_outputs(
        &args.out,
        &seg,
        &OutputFormats::default(),
        &OutputSource {
            ct: &ct,
            dicom_series: None,
        },
    )?;
    for (name, volume) in [
        ("ct.nii.gz", ct),
        ("liver_truth.nii.gz", DynVolume::from(phantom.liver.clone())),
    ] {
        let path = args.out.join(name);
        write_image(&path, &volume)?;
        files.push(path);
    }
    // a = reference, b = result: the convention of `evaluate`, so the volume
    // ratio is result / truth and asd_ab runs from the truth.
    let eval = evaluate(&phantom.liver, &seg.liver, &EvalOptions::default())?;
    let eval_path = args.out.join("evaluation.json");
    let eval_json = eval.to_json();
    liverseg_io::atomic::write_atomic(&eval_path, |w| {
        w.write_all(
            serde_json::to_string_pretty(&eval_json)
                .expect("json")
                .as_bytes(),
        )
    })?;
    files.push(eval_path);
    let secs = t0.elapsed().as_secs_f64();
    let dsc = eval.dice.unwrap_or(0.0);
    let r = &seg.report;
    if args.json {
        let summary = serde_json::json!({
            "out": args.out,
            "model_id": r.model_id,
            "dice": eval.dice,
            "liver_volume_ml": r.liver_volume_ml,
            "truth_volume_ml": phantom.liver.foreground_ml(),
            "flags": r.flags.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
            "seconds": secs,
            "files": files,
            "evaluation": eval_json,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let g = phantom.ct.geometry();
        println!("liverseg demo: synthetic abdominal CT {} x {} x {} voxels, {:.1} x {:.1} x {:.1} mm (seed {})", g.dims()[0], g.dims()[1], g.dims()[2], g.spacing()[0], g.spacing()[1], g.spacing()[2], args.seed);
        println!("  model      {}", r.model_id);
        println!(
            "  liver      {:.1} ml segmented, {:.1} ml truth",
            r.liver_volume_ml,
            phantom.liver.foreground_ml()
        );
        println!("  DSC        {dsc:.3} against the phantom truth");
        println!(
            "  flags      {}",
            if r.flags.is_empty() {
                "none".to_string()
            } else {
                r.flags
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        println!("  time       {secs:.1} s");
        println!("  outputs in {}:", args.out.display());
        for f in &files {
            println!(
                "    {}",
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
        }
        println!("  look at {}", args.out.join("overview.png").display());
    }
    Ok(ExitCode::SUCCESS)
}
