use liverseg_imgproc::crop::CropBox;
use liverseg_io::{read_image, write_image, ReadOptions};
use liverseg_volume::{dyn_dispatch, DynVolume};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Any supported input (file or DICOM folder).
    pub input: PathBuf,
    /// Output: .nii, .nii.gz, .mha or .mhd (written atomically).
    pub output: PathBuf,
    /// DICOM: SeriesInstanceUID or index of the series to convert.
    #[arg(long)]
    pub series: Option<String>,
    /// DICOM: resample uneven spacing or missing slices onto a regular grid.
    #[arg(long)]
    pub allow_irregular: bool,
    /// Keep only slices FIRST..END of the third voxel axis (0-based, END
    /// excluded), e.g. `40:90`: a shorter scan of the same patient, in the
    /// same world coordinates (the origin moves with the first slice kept).
    /// Cut a CT and its mask alike to compare them.
    #[arg(long, value_name = "FIRST:END", value_parser = parse_slices)]
    pub slices: Option<(usize, usize)>,
}

fn parse_slices(text: &str) -> Result<(usize, usize), String> {
    let (a, b) = text.split_once(':').ok_or_else(|| format!("{text:?}: expected FIRST:END, e.g. 40:90"))?;
    let first = a.trim().parse::<usize>().map_err(|e| format!("{a:?}: {e}"))?;
    let end = b.trim().parse::<usize>().map_err(|e| format!("{b:?}: {e}"))?;
    if end <= first {
        return Err(format!("{text:?}: END must be after FIRST"));
    }
    Ok((first, end))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = ReadOptions { series: args.series.clone(), allow_irregular: args.allow_irregular, ..Default::default() };
    let out = read_image(&args.input, &options)?;
    for w in &out.info.warnings {
        eprintln!("liverseg: warning: {}: {w}", args.input.display());
    }
    let volume = match args.slices {
        None => out.volume,
        Some((first, end)) => {
            let [nx, ny, nz] = out.volume.geometry().dims();
            if end > nz {
                anyhow::bail!("{}: --slices {first}:{end} asks for slices past the last ({nz} slices)", args.input.display());
            }
            let keep = CropBox { start: [0, 0, first], size: [nx, ny, end - first] };
            dyn_dispatch!(&out.volume, v => DynVolume::from(keep.apply(v)?))
        }
    };
    write_image(&args.output, &volume)?;
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_slices;

    #[test]
    fn slices_are_first_colon_end() {
        assert_eq!(parse_slices("40:90"), Ok((40, 90)));
        assert_eq!(parse_slices(" 0 : 1 "), Ok((0, 1)));
        for bad in ["40", "90:40", "5:5", "a:3", "-1:4"] {
            assert!(parse_slices(bad).is_err(), "{bad} was accepted");
        }
    }
}
