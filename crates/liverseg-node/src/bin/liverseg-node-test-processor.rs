//! TRANSPORT TEST DOUBLE, NOT SEGMENTATION. The node's tests run it in place of
//! `liverseg segment` so they can check the DICOM plumbing (receive, queue,
//! subprocess, send back, SEG onto the CT grid) before and independently of the
//! model: it reads the series with liverseg-io, marks voxels at or above a fixed
//! threshold, and writes that mask as a DICOM-SEG (`seg.dcm`) and an RTSTRUCT
//! (`rtstruct.dcm`) with liverseg-io's writers, as `liverseg segment --format
//! dicom-seg,rtstruct` will.
//!
//! Usage: liverseg-node-test-processor <series_dir> <out_dir> [--threshold HU]
//!        [--sleep-ms N] [--exit CODE]
//! `--sleep-ms` and `--exit` let tests simulate a slow or crashing processor.
//! It also writes `report.json` with `segment`'s `input` block (series chosen,
//! reader warnings), which the node logs.
use liverseg_io::dicom::rtstruct::{write_rtstruct, RtStructWriteOptions};
use liverseg_io::dicom::seg_write::{write_seg, SegWriteOptions};
use liverseg_io::{read_image, ReadOptions};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut threshold, mut sleep_ms, mut exit) = (100.0f64, 0u64, None::<u8>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--threshold" => threshold = val("--threshold"),
            "--sleep-ms" => sleep_ms = val("--sleep-ms") as u64,
            "--exit" => exit = Some(val("--exit") as u8),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [input, output] = pos.as_slice() else {
        eprintln!("usage: liverseg-node-test-processor <series_dir> <out_dir> [--threshold HU] [--sleep-ms N] [--exit CODE]");
        return ExitCode::from(2);
    };
    std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
    if let Some(code) = exit {
        eprintln!("test processor: exiting with {code} as asked");
        return ExitCode::from(code);
    }
    let run = || -> Result<usize, liverseg_io::Error> {
        let ct = read_image(input, &ReadOptions::default())?;
        let mask = ct.volume.to_mask(|v| v >= threshold);
        // The series the read chose, as `segment` writes from it.
        let Some(source) = ct.dicom.as_ref().map(|d| &d.series) else {
            return Err(liverseg_io::Error::unsupported(input, "not a DICOM series"));
        };
        std::fs::create_dir_all(output).map_err(|e| liverseg_io::Error::io(output, e))?;
        write_seg(
            &output.join("seg.dcm"),
            &mask,
            source,
            &SegWriteOptions {
                algorithm_name: "threshold test double".into(),
                ..Default::default()
            },
        )?;
        let rt = RtStructWriteOptions {
            algorithm_name: "threshold test double".into(),
            ..Default::default()
        };
        write_rtstruct(&output.join("rtstruct.dcm"), &mask, source, &rt)?;
        // report.json's input block, as `segment` writes it (the node logs it).
        let report = serde_json::json!({ "input": liverseg_io::InputInfo::from_read(&ct) });
        liverseg_io::atomic::write_atomic(&output.join("report.json"), |w| w.write_all(report.to_string().as_bytes()))?;
        Ok(mask.count_foreground())
    };
    match run() {
        Ok(n) => {
            println!("{{\"foreground_voxels\": {n}}}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("test processor: {e}");
            ExitCode::from(1)
        }
    }
}
