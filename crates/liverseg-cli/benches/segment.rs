//! The `segment` benchmark (issue 5): the real binary on a real CT from
//! `../shared/data/cases`, coarse-to-fine (the default) and `--full-volume`
//! in the same run, with wall time, time per stage from `report.json`, peak
//! resident memory of the process, computed tiles, and the DSC of each result
//! against the reference mask and against each other.
//!
//! `cargo bench -p liverseg --bench segment [-- --case ircadb01-01 --model M.lsm]`
//!
//! When Python with torch is installed, the repo's PyTorch reference network
//! (crates/liverseg-model/bench/deepmedic_torch.py) is timed on one tile of
//! the same size, and its time for the tiles of a full pass is printed next
//! to ours. Without `../shared` (a user's clone) it says so and exits 0.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use liverseg_io::{read_mask, ReadOptions};
use liverseg_metrics::{evaluate, EvalOptions};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Run `cmd`, returning (wall seconds, peak RSS in MiB) of that child alone:
/// `wait4` gives the child's own rusage, where `getrusage(RUSAGE_CHILDREN)`
/// would mix in earlier runs.
#[allow(clippy::zombie_processes)] // wait4 below reaps it
fn run_measured(cmd: &mut Command) -> (f64, f64, std::process::ExitStatus) {
    let t0 = Instant::now();
    let child = cmd.spawn().expect("cannot start liverseg");
    let mut status = 0i32;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(r > 0, "wait4 failed");
    (t0.elapsed().as_secs_f64(), usage.ru_maxrss as f64 / 1024.0, std::process::ExitStatus::from_raw(status))
}

fn dice(a: &Path, b: &Path) -> Option<f64> {
    let (ma, _) = read_mask(a, None, &ReadOptions::default()).ok()?;
    let (mb, _) = read_mask(b, Some(ma.geometry()), &ReadOptions::default()).ok()?;
    evaluate(&ma, &mb, &EvalOptions::default()).ok()?.dice
}

fn main() {
    let case = arg("--case").unwrap_or_else(|| "ircadb01-01".into());
    // $LIVERSEG_SHARED or ../shared, as every test finds it.
    let Some(shared) = liverseg_testdata::shared_dir().map(|d| d.join("data/cases")) else {
        println!("segment bench skipped: no ../shared next to the checkout and LIVERSEG_SHARED not set (not in a user's clone)");
        return;
    };
    let dir = shared.join(&case);
    let ct = dir.join("ct.nii.gz");
    if !ct.exists() {
        println!("segment bench skipped: {} not found", ct.display());
        return;
    }
    let bin = env!("CARGO_BIN_EXE_liverseg");
    let tmp = tempfile::tempdir().expect("temp dir");
    println!("case {case}; threads available: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let mut outputs = Vec::new();
    for (label, extra) in [("coarse-to-fine", None), ("full volume", Some("--full-volume"))] {
        let out = tmp.path().join(label.replace(' ', "-"));
        let mut cmd = Command::new(bin);
        cmd.arg("segment").arg(&ct).arg("-o").arg(&out).arg("--no-overview").stdout(std::process::Stdio::null());
        if let Some(m) = arg("--model") {
            cmd.args(["--model", &m]);
        }
        if let Some(e) = extra {
            cmd.arg(e);
        }
        let (wall, rss, status) = run_measured(&mut cmd);
        if !status.success() {
            println!("{label}: liverseg segment failed ({status})");
            continue;
        }
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report.json")).expect("report JSON");
        let stages: Vec<String> = report["timings_s"]
            .as_array()
            .map(|a| a.iter().map(|s| format!("{} {:.1}", s["stage"].as_str().unwrap_or("?"), s["seconds"].as_f64().unwrap_or(f64::NAN))).collect())
            .unwrap_or_default();
        let d = dice(&dir.join("liver.nii.gz"), &out.join("liver.nii.gz"));
        let t = &report["tiles"];
        println!(
            "{label:>15}: {wall:6.1} s wall, peak RSS {rss:6.0} MiB, liver {:.0} ml, DSC vs reference {}; tiles computed {} of {} with body (+{} probes); stages (s): {}",
            report["liver_volume_ml"].as_f64().unwrap_or(f64::NAN),
            d.map_or("n/a".into(), |d| format!("{d:.4}")),
            t["computed_tiles"],
            t["body_tiles"],
            t["probes"],
            stages.join(", ")
        );
        outputs.push((label, out, wall));
    }
    if let [(_, a, ta), (_, b, tb)] = outputs.as_slice() {
        let agree = dice(&a.join("liver.nii.gz"), &b.join("liver.nii.gz"));
        println!("coarse-to-fine / full-volume time ratio {:.2}; DSC between the two masks {}", ta / tb, agree.map_or("n/a".into(), |d| format!("{d:.4}")));
    }
    let torch = Command::new("python3").args(["-c", "import torch"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !torch {
        println!("PyTorch reference skipped: python3 with torch is not installed");
    } else {
        let device = liverseg_model::device("cpu").expect("cpu device");
        let network = match arg("--model") {
            Some(m) => liverseg_model::Segmenter::load(Path::new(&m), device),
            None => liverseg_model::Segmenter::builtin(device),
        }
        .expect("model")
        .info()
        .network
        .clone();
        let cfg = tmp.path().join("network.json");
        std::fs::write(&cfg, serde_json::to_string(&network).expect("config JSON")).expect("write config");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../liverseg-model/bench/deepmedic_torch.py");
        let patch = network.infer_patch.to_string();
        let out = Command::new("python3").arg(script).arg(&cfg).args(["--steps", "1", "--batch", "1", "--infer-patch", &patch]).output();
        match out.ok().and_then(|o| serde_json::from_slice::<serde_json::Value>(o.stdout.trim_ascii()).ok()) {
            Some(v) => println!(
                "PyTorch {} reference, same network: {:.2} s per {patch}^3 tile, {:.0} output voxels/s (compare with the predict stage above over its tiles)",
                v["torch"], v["infer_tile_s"].as_f64().unwrap_or(f64::NAN), v["infer_voxels_per_s"].as_f64().unwrap_or(f64::NAN)
            ),
            None => println!("PyTorch reference failed to run"),
        }
    }
}
