//! `liverseg`: one thin command-line front end. Each subcommand parses its flags,
//! calls one library function and prints a table or JSON; no logic lives here.

mod commands;
mod progress;
mod model;

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
    /// DICOM node: receive CT series (C-STORE), segment each, send SEG/RTSTRUCT back.
    Node(commands::node::Args),
    /// Segment the liver of CTs: mask, probability, report with quality flags, overview, DICOM-SEG/RTSTRUCT.
    Segment(commands::segment::Args),
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
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Study(args) => commands::study::run(args),
        Command::Dose(args) => commands::dose::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Node(args) => commands::node::run(args),
        Command::Segment(args) => commands::segment::run(args),
        Command::Phantom(args) => commands::phantom::run(args),
        Command::Review(args) => commands::review::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line, naming the file and the problem (the io errors carry the path).
            eprintln!("liverseg: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
