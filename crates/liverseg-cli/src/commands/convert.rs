use liverseg_io::{read_image, write_image, ReadOptions};
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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = ReadOptions { series: args.series.clone(), allow_irregular: args.allow_irregular, ..Default::default() };
    let out = read_image(&args.input, &options)?;
    for w in &out.info.warnings {
        eprintln!("liverseg: warning: {}: {w}", args.input.display());
    }
    write_image(&args.output, &out.volume)?;
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}
