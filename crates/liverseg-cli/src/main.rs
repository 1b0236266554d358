//! `liverseg`: one thin command-line front end. Each subcommand parses its flags,
//! calls one library function and prints a table or JSON; no logic lives here.

mod commands;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "liverseg", version, about = "Whole-liver segmentation of CT for SIRT planning", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in example end to end (no data or network needed).
    Demo(commands::demo::Args),
    /// Describe an image: format, grid, orientation, value range, warnings.
    Info(commands::info::Args),
    /// Convert any supported input to NIfTI (.nii/.nii.gz) or MetaImage (.mha/.mhd).
    Convert(commands::convert::Args),
    /// Compare two masks (Dice, volumes, surface distances), or many pairs (--pairs).
    Evaluate(commands::evaluate::Args),
    /// Inter-observer study: pairwise comparisons of named sets, scores, times, plots, report.
    Study(commands::study::Args),
    /// Y-90 SIRT dosimetry from the liver contour: BSA, MIRD, partition model, voxel DVH.
    Dose(commands::dose::Args),
    /// Train the DeepMedic network on CTs with liver masks (LiTS, MSD, SLIVER07, case folders, DICOM).
    Train(commands::train::Args),
    /// Average the weights of model files of one network (e.g. a run's last epochs) into one model.
    Average(commands::average::Args),
    /// Re-estimate a model's batch-norm statistics on training patches (precise BN) into a new model file.
    Recalibrate(commands::recalibrate::Args),
    /// DICOM node: receive CT series (C-STORE), segment each, send SEG/RTSTRUCT back.
    Node(commands::node::Args),
    /// Segment the liver of CTs: mask, probability, report with quality flags, overview, DICOM-SEG/RTSTRUCT.
    Segment(commands::segment::Args),
    /// Cohort table of a batch output folder (every case's report, failures from the task logs).
    Summary(commands::summary::Args),
    /// Write a synthetic abdominal CT phantom with truth masks per organ.
    Phantom(commands::phantom::Args),
    /// Check, correct and score segmentations in the browser (serves a local web app).
    Review(commands::review::Args),
}

fn main() -> ExitCode {
    // Behave like other Unix filters when the reader of our output goes away
    // (`liverseg info x --json | head`): end quietly instead of panicking on EPIPE.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Segment(_) | Command::Demo(_) | Command::Train(_) | Command::Recalibrate(_)) {
        liverseg_model::memory::keep_freed_memory();
    }
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Study(args) => commands::study::run(args),
        Command::Dose(args) => commands::dose::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Average(args) => commands::average::run(args),
        Command::Recalibrate(args) => commands::recalibrate::run(args),
        Command::Node(args) => commands::node::run(args),
        Command::Segment(args) => commands::segment::run(args),
        Command::Summary(args) => commands::summary::run(args),
        Command::Phantom(args) => commands::phantom::run(args),
        Command::Review(args) => commands::review::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line, naming the file and the problem (the io errors carry the path).
            eprintln!("liverseg: error: {}", one_line(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line (liverseg-io's `error_line`: a
/// cause the message already holds is printed once).
fn one_line(err: &anyhow::Error) -> String {
    liverseg_io::error_line(err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// Shaped like liverseg-io's and liverseg-data's file errors.
    #[derive(Debug)]
    struct FileError {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for FileError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for FileError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete deflate stream");
        let err = anyhow::Error::new(FileError { path: "p2/liver.nii.gz".into(), source: io }).context("case p2");
        assert_eq!(one_line(&err), "case p2: p2/liver.nii.gz: incomplete deflate stream");
    }

    #[test]
    fn causes_not_in_the_message_are_all_kept() {
        let err = anyhow::anyhow!("not a valid config").context("net.json").context("training");
        assert_eq!(one_line(&err), "training: net.json: not a valid config");
    }
}
