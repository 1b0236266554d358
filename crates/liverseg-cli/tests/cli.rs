//! End-to-end tests: drive the real `liverseg` binary as a user or a script would.

use std::path::Path;
use std::process::{Command, Output};

fn liverseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg")).args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The default phantom as ct.nii.gz (and ct.mha) in `dir`: fast inputs for
/// the format tests (the demo itself now segments, see segment_cli.rs).
fn demo(dir: &Path) {
    let o = liverseg(&["phantom", "-o", dir.to_str().unwrap()]);
    assert!(o.status.success(), "phantom failed: {}", stderr(&o));
    let o = liverseg(&["convert", dir.join("ct.nii.gz").to_str().unwrap(), dir.join("ct.mha").to_str().unwrap()]);
    assert!(o.status.success(), "convert failed: {}", stderr(&o));
}

#[test]
fn phantom_writes_readable_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let o = liverseg(&["phantom", "-o", dir.path().to_str().unwrap(), "--json", "--seed", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let truth = summary["volumes_ml"]["liver"].as_f64().unwrap();
    let (mask, _) = liverseg_io::read_mask(&dir.path().join("liver.nii.gz"), None, &liverseg_io::ReadOptions::default()).unwrap();
    // Same voxels; the spacing went through NIfTI-1's float32 once.
    assert!(truth > 500.0 && (truth - mask.foreground_ml()).abs() < 1e-6 * truth, "{truth} vs {}", mask.foreground_ml());
    for name in ["ct.nii.gz", "liver.nii.gz", "labels.nii.gz", "labels.json", "masks/spleen.nii.gz", "masks/ivc.nii.gz", "masks/lung.nii.gz"] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".partial")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn info_json_reports_geometry_in_lps() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let o = liverseg(&["info", dir.path().join("ct.nii.gz").to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["format"], "nifti1");
    assert_eq!(info["dims"], serde_json::json!([192, 160, 72]));
    assert_eq!(info["dtype"], "int16");
    // The phantom is centred on the patient axis: origin = -(n-1)/2 * spacing.
    let origin: Vec<f64> = serde_json::from_value(info["origin"].clone()).unwrap();
    let expected = [-(191.0 * 1.8) / 2.0, -(159.0 * 1.8) / 2.0, -(71.0 * 3.0) / 2.0];
    for a in 0..3 {
        assert!((origin[a] - expected[a]).abs() < 1e-4, "origin {origin:?} vs {expected:?}");
    }
    assert_eq!(info["direction"], serde_json::json!([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]));
    assert!(info["warnings"].as_array().unwrap().is_empty());
    assert!(info["min"].as_f64().unwrap() >= -1024.0 && info["max"].as_f64().unwrap() <= 3071.0);
}

#[test]
fn convert_between_formats_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let src = dir.path().join("ct.nii.gz");
    let mhd = dir.path().join("copy.mhd");
    let back = dir.path().join("back.nii");
    for (i, o) in [(&src, &mhd), (&mhd, &back)] {
        let out = liverseg(&["convert", i.to_str().unwrap(), o.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let info = |p: &Path| -> serde_json::Value { serde_json::from_slice(&liverseg(&["info", p.to_str().unwrap(), "--json"]).stdout).unwrap() };
    let (a, b) = (info(&src), info(&back));
    for key in ["dims", "spacing", "origin", "direction", "dtype", "min", "max"] {
        assert_eq!(a[key], b[key], "{key} changed in the round trip");
    }
}

/// `convert --slices` keeps a slab of the scan where it was: the voxels are
/// the original's slices, the origin is the first kept slice's world
/// position; a range past the last slice is one error naming the file, with
/// nothing written.
#[test]
fn convert_slices_keeps_a_slab_in_place() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let src = dir.path().join("ct.nii.gz");
    let cut = dir.path().join("slab.nii.gz");
    let o = liverseg(&["convert", src.to_str().unwrap(), cut.to_str().unwrap(), "--slices", "20:50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |p: &Path| liverseg_io::read_image(p, &liverseg_io::ReadOptions::default()).unwrap().volume.to_f32();
    let (whole, slab) = (read(&src), read(&cut));
    assert_eq!(slab.dims(), [192, 160, 30]);
    for (k, z) in [(0usize, 20usize), (17, 37), (29, 49)] {
        for (i, j) in [(0usize, 0usize), (96, 80), (191, 159), (40, 120)] {
            assert_eq!(slab.get(i, j, k), whole.get(i, j, z), "voxel {i},{j},{k}");
        }
    }
    let first = whole.geometry().index_to_world([0.0, 0.0, 20.0]);
    for a in 0..3 {
        assert!((slab.geometry().origin()[a] - first[a]).abs() < 1e-4, "origin {:?} vs {first:?}", slab.geometry().origin());
    }
    assert_eq!(slab.geometry().spacing(), whole.geometry().spacing());
    let past = dir.path().join("past.nii.gz");
    let o = liverseg(&["convert", src.to_str().unwrap(), past.to_str().unwrap(), "--slices", "60:80"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("ct.nii.gz") && err.contains("72 slices"), "{err}");
    assert!(!past.exists());
}

/// `info` on a model file prints its header (what a script needs: the
/// threshold, the searched one, the averaged epochs) and counts the training
/// cases instead of naming them; a model cut in its header is one clear error.
#[test]
fn info_reads_a_model_file_header() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/liverseg-default.lsm");
    let o = liverseg(&["info", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["format"], "liverseg model");
    assert!(j["id"].as_str().unwrap().starts_with("liverseg-"), "{j}");
    let t = j["threshold"].as_f64().unwrap();
    assert!(t > 0.0 && t < 1.0, "{t}");
    assert!(j["training"]["train_cases"].as_u64().unwrap() >= 1, "case names must be counted: {j}");
    let o = liverseg(&["info", model.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("threshold") && text.contains(j["id"].as_str().unwrap()), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.lsm");
    std::fs::write(&cut, &std::fs::read(&model).unwrap()[..64]).unwrap();
    let o = liverseg(&["info", cut.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("cut.lsm") && err.contains("header"), "{err}");
}

#[test]
fn missing_input_is_one_line_error_naming_the_file() {
    let o = liverseg(&["info", "/nonexistent/scan.nii.gz"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/scan.nii.gz"), "{err}");
}

#[test]
fn truncated_input_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let whole = std::fs::read(dir.path().join("ct.mha")).unwrap();
    let cut = dir.path().join("cut.mha");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = dir.path().join("never.nii.gz");
    let o = liverseg(&["convert", cut.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cut.mha"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn unknown_output_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let o = liverseg(&["convert", dir.path().join("ct.nii.gz").to_str().unwrap(), dir.path().join("x.png").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("x.png"));
}

#[test]
fn bad_usage_exits_2() {
    let o = liverseg(&["info"]);
    assert_eq!(o.status.code(), Some(2));
}
