//! `liverseg phantom`: a synthetic abdominal CT and its truth masks, in the
//! layout of the shared cases (`<dir>/ct.nii.gz`, `<dir>/liver.nii.gz`), plus
//! `labels.nii.gz` (every structure, values in `labels.json`) and one mask per
//! structure under `masks/`.

use liverseg_io::write_image;
use liverseg_phantom::{generate, PhantomConfig, LABELS};
use liverseg_volume::DynVolume;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Random seed (noise and lesion positions).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Contrast level: 0 = non-contrast, 1 = portal-venous phase (default).
    #[arg(long, default_value_t = 1.0)]
    pub contrast: f64,
    /// Noise standard deviation, HU.
    #[arg(long, default_value_t = 12.0)]
    pub noise: f64,
    /// Number of liver lesions (alternately darker and brighter than liver).
    #[arg(long, default_value_t = 2)]
    pub lesions: usize,
    /// Voxels per axis, e.g. 192,160,72.
    #[arg(long, value_delimiter = ',', default_values_t = [192usize, 160, 72])]
    pub dims: Vec<usize>,
    /// Voxel size per axis in mm, e.g. 1.8,1.8,3.
    #[arg(long, value_delimiter = ',', default_values_t = [1.8f64, 1.8, 3.0])]
    pub spacing: Vec<f64>,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.contrast) {
        eprintln!(
            "liverseg: error: --contrast {} is not in 0..1",
            args.contrast
        );
        return Ok(ExitCode::from(2));
    }
    if !(args.noise.is_finite() && args.noise >= 0.0) {
        eprintln!(
            "liverseg: error: --noise {} is not a non-negative number of HU",
            args.noise
        );
        return Ok(ExitCode::from(2));
    }
    if args.dims.len() != 3 || args.spacing.len() != 3 {
        eprintln!(
            "liverseg: error: --dims and --spacing take three comma-separated values (x,y,z)"
        );
        return Ok(ExitCode::from(2));
    }
    let dims = [args.dims[0], args.dims[1], args.dims[2]];
    let spacing = [args.spacing[0], args.spacing[1], args.spacing[2]];
    if dims.iter().any(|&d| !(8..=1024).contains(&d))
        || spacing
            .iter()
            .any(|&s| !(s.is_finite() && (0.1..=20.0).contains(&s)))
    {
        eprintln!(
            "liverseg: error: --dims must be 8..1024 voxels and --spacing 0.1..20 mm per axis"
        );
        return Ok(ExitCode::from(2));
    }
    let config = PhantomConfig {
        dims,
        spacing,
        noise_hu: args.noise,
        contrast: args.contrast,
        lesions: args.lesions,
        seed: args.seed,
        ..Default::default()
    };
    let p = generate(&config);
    let masks = p.masks();
    let mask_dir = args.out.join("masks");
    std::fs::create_dir_all(&mask_dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create output folder: {e}", mask_dir.display()))?;
    let mut files = vec![
        args.out.join("ct.nii.gz"),
        args.out.join("liver.nii.gz"),
        args.out.join("labels.nii.gz"),
    ];
    write_image(&files[0], &DynVolume::from(p.ct.clone()))?;
    write_image(&files[1], &DynVolume::from(p.liver.clone()))?;
    write_image(&files[2], &DynVolume::from(p.labels.clone()))?;
    for (name, mask) in &masks {
        let path = mask_dir.join(format!("{name}.nii.gz"));
        write_image(&path, &DynVolume::from(mask.clone()))?;
        files.push(path);
    }
    let labels: serde_json::Map<String, serde_json::Value> = LABELS
        .iter()
        .map(|(v, n)| (v.to_string(), serde_json::Value::from(*n)))
        .collect();
    let info = serde_json::json!({
        "generator": format!("liverseg phantom {}", env!("CARGO_PKG_VERSION")),
        "seed": args.seed, "contrast": args.contrast, "noise_hu": args.noise, "lesions": args.lesions,
        "dims": dims, "spacing_mm": spacing,
        "labels": labels,
        "volumes_ml": masks.iter().map(|(n, m)| (n.to_string(), serde_json::Value::from(m.foreground_ml()))).collect::<serde_json::Map<_, _>>(),
    });
    let json_path = args.out.join("labels.json");
    liverseg_io::atomic::write_atomic(&json_path, |w| {
        w.write_all(
            serde_json::to_string_pretty(&info)
                .expect("json")
                .as_bytes(),
        )
    })?;
    files.push(json_path);
    if args.json {
        let mut out = info;
        out["files"] = serde_json::json!(files);
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "liverseg phantom: seed {}, contrast {}, noise {} HU, {} x {} x {} voxels",
            args.seed, args.contrast, args.noise, dims[0], dims[1], dims[2]
        );
        println!(
            "  liver {:.0} ml (truth in {})",
            p.liver.foreground_ml(),
            files[1].display()
        );
        println!("  wrote {} files into {}", files.len(), args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}
