//! End-to-end tests of `liverseg segment`, `phantom` and `demo`, driving the
//! real binary with the built-in model (models/liverseg-default.lsm).

use liverseg_io::{read_image, read_mask, ReadOptions};
use liverseg_metrics::{evaluate, EvalOptions};
use liverseg_volume::Mask;
use std::path::Path;
use std::process::{Command, Output};

/// Lowest DSC against the phantom truth that the built-in model must reach
/// on the default portal-venous phantom. The built-in model learnt from the
/// seven shared real CTs, never from phantoms; `liverseg-wide-f68274fd`
/// reaches 0.968 on it with `segment`'s default `xy` (0.963 in one pass; the
/// models before it 0.968, 0.965, 0.947, 0.962, 0.942 and 0.867). A guard against regressions (a wrong
/// orientation, a model that does not load its weights, a broken pipeline or
/// a worse model committed), not a quality claim: raise it with the model.
const MIN_PHANTOM_DSC: f64 = 0.955;

fn liverseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(r) => r
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// A small phantom (coarse grid, same anatomy) for the batch tests.
fn small_phantom(dir: &Path, seed: &str) {
    let o = liverseg(&[
        "phantom",
        "-o",
        s(dir),
        "--seed",
        seed,
        "--dims",
        "96,80,36",
        "--spacing",
        "3.6,3.6,6",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn phantom_segmented_on_its_own_grid_with_a_dsc_bound() {
    let dir = tempfile::tempdir().unwrap();
    let ph = dir.path().join("phantom");
    let o = liverseg(&["phantom", "-o", s(&ph), "--seed", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    let o = liverseg(&[
        "segment",
        s(&ph.join("ct.nii.gz")),
        "-o",
        s(&out),
        "--probability",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        entries(&out),
        [
            "liver.nii.gz",
            "overview.png",
            "probability.nii.gz",
            "report.json"
        ]
    );
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("--json prints the report");
    assert_eq!(
        report,
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(out.join("report.json")).unwrap()
        )
        .unwrap()
    );

    let ct = read_image(&ph.join("ct.nii.gz"), &ReadOptions::default())
        .unwrap()
        .volume;
    let (liver, _) = read_mask(&out.join("liver.nii.gz"), None, &ReadOptions::default()).unwrap();
    let (truth, _) = read_mask(&ph.join("liver.nii.gz"), None, &ReadOptions::default()).unwrap();
    let (g, h) = (ct.geometry(), liver.geometry());
    assert_eq!(g.dims(), h.dims());
    assert!(g.same_grid(h), "mask grid {h:?} vs CT {g:?}");
    let prob = read_image(&out.join("probability.nii.gz"), &ReadOptions::default())
        .unwrap()
        .volume;
    assert!(prob.geometry().same_grid(g));
    let eval = evaluate(&liver, &truth, &EvalOptions::default()).unwrap();
    let dsc = eval.dice.unwrap();
    // The quality bound is checked in `demo_segments_evaluates_and_says_where`.
    assert!((0.0..=1.0).contains(&dsc), "DSC {dsc}");
    let ml = report["liver_volume_ml"].as_f64().unwrap();
    assert!((ml - liver.foreground_ml()).abs() < 1e-3 * ml);
    assert!((report["liver_mass_g"].as_f64().unwrap() - 1.03 * ml).abs() < 1e-6 * ml);
    let stages: Vec<&str> = report["timings_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages[0], "read");
    assert!(report["flags"].is_array());
    // The built-in model is tiled: the report says how much it computed.
    let tiles = &report["tiles"];
    let (body, computed) = (tiles["body_tiles"].as_u64().unwrap(), tiles["computed_tiles"].as_u64().unwrap());
    assert!(body > 0 && (1..=body).contains(&computed), "{tiles}");
    assert!(tiles["probes"].as_u64().unwrap() <= body, "{tiles}");
}

#[test]
fn dicom_input_gives_seg_and_rtstruct_on_the_ct() {
    let Some(series) = liverseg_testdata::require_shared!("data/dicom/totalseg-example-20slices")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = liverseg(&[
        "segment",
        s(&series),
        "-o",
        s(&out),
        "--format",
        "nifti,dicom-seg,rtstruct",
        // The outputs are the point here, not the contour: one pass.
        "--flip-average",
        "off",
        "--scale-average",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        entries(&out),
        [
            "liver.nii.gz",
            "overview.png",
            "report.json",
            "rtstruct.dcm",
            "seg.dcm"
        ]
    );
    let ct = read_image(&series, &ReadOptions::default()).unwrap().volume;
    let (nifti, _) = read_mask(&out.join("liver.nii.gz"), None, &ReadOptions::default()).unwrap();
    assert!(nifti.geometry().same_grid(ct.geometry()));
    // The SEG read back onto the CT grid is the NIfTI mask, voxel for voxel.
    let seg = liverseg_io::dicom::seg::read_seg(
        &out.join("seg.dcm"),
        Some(ct.geometry()),
        liverseg_io::dicom::seg::SegmentChoice::Auto,
    )
    .unwrap();
    assert_eq!(seg.mask.data(), nifti.data());
    let rt = liverseg_io::dicom::rtstruct::read_rtstruct_onto(
        &out.join("rtstruct.dcm"),
        liverseg_io::dicom::rtstruct::RoiChoice::Auto,
        ct.geometry(),
    )
    .unwrap();
    if nifti.count_foreground() > 0 {
        let d = evaluate(&rt, &nifti, &EvalOptions::default())
            .unwrap()
            .dice
            .unwrap();
        assert!(d > 0.98, "RTSTRUCT DSC {d}");
    }
    // 20 slices: far shorter than a liver, which the report must say.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let length = report["measurements"]["scan_length_mm"].as_f64().unwrap();
    assert!((30.0..70.0).contains(&length), "scan length {length} mm");
    assert!(
        report["flags"].as_array().unwrap().iter().any(|f| f["name"] == "short_scan"),
        "{}",
        report["flags"]
    );
}

#[test]
fn dicom_outputs_from_a_nifti_input_are_refused_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let ph = dir.path().join("ph");
    small_phantom(&ph, "1");
    let out = dir.path().join("out");
    let o = liverseg(&[
        "segment",
        s(&ph.join("ct.nii.gz")),
        "-o",
        s(&out),
        "--format",
        "dicom-seg",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ct.nii.gz") && stderr(&o).contains("DICOM"),
        "{}",
        stderr(&o)
    );
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}

#[test]
fn bad_inputs_fail_naming_the_file_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let missing = dir.path().join("nowhere/scan.nii.gz");
    let o = liverseg(&["segment", s(&missing), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches(s(&missing)).count(), 1, "{}", stderr(&o));
    assert!(!out.exists());

    // A NIfTI cut in half, and one that is not NIfTI at all.
    small_phantom(&dir.path().join("ph"), "1");
    let whole = std::fs::read(dir.path().join("ph/ct.nii.gz")).unwrap();
    let cut = dir.path().join("cut.nii.gz");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let junk = dir.path().join("junk.nii");
    std::fs::write(&junk, b"this is not an image at all, just text").unwrap();
    for bad in [&cut, &junk] {
        let o = liverseg(&["segment", s(bad), "-o", s(&out)]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(bad.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
        // Named once: "x: x: ..." reads as a bug.
        assert_eq!(err.matches(s(bad)).count(), 1, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(entries(&out).is_empty(), "{:?}", entries(&out));
    }
    // A model that cannot be loaded: clear error naming it.
    let o = liverseg(&[
        "segment",
        s(&dir.path().join("ph/ct.nii.gz")),
        "-o",
        s(&out),
        "--model",
        "/nonexistent/model.bin",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/model.bin"),
        "{}",
        stderr(&o)
    );
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
    // A device this build does not have: refused before any work.
    let o = liverseg(&["segment", s(&dir.path().join("ph/ct.nii.gz")), "-o", s(&out), "--device", "tpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown device 'tpu' (this build has: cpu"), "{}", stderr(&o));
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}

/// Flip averaging changes the map only slightly: a mirror left un-mirrored
/// would put the liver on the wrong side and the masks would hardly overlap.
/// Without the flag `segment` averages four views (`xy`), and says so.
#[test]
fn flip_averaging_gives_nearly_the_same_mask_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let ph = dir.path().join("phantom");
    small_phantom(&ph, "8");
    let mut masks = Vec::new();
    let ct = ph.join("ct.nii.gz");
    for (flag, suffix) in [(Some("off"), ""), (Some("x"), "+flip-x"), (None, "+flip-xy")] {
        let out = dir.path().join(flag.unwrap_or("default"));
        // One grid: the test is about the flips.
        let mut args = vec!["segment", s(&ct), "-o", s(&out), "--no-overview", "--json", "--scale-average", "1"];
        args.extend(flag.map(|f| ["--flip-average", f]).iter().flatten());
        let o = liverseg(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = report["model_id"].as_str().unwrap().to_string();
        assert!(id.starts_with("liverseg-") && id.matches("+flip").count() == usize::from(!suffix.is_empty()) && id.ends_with(suffix), "{flag:?}: {id}");
        masks.push(read_mask(&out.join("liver.nii.gz"), None, &ReadOptions::default()).unwrap().0);
    }
    assert!(masks[0].foreground_ml() > 100.0, "{} ml", masks[0].foreground_ml());
    for (name, other) in [("x", &masks[1]), ("xy", &masks[2])] {
        let dsc = evaluate(&masks[0], other, &EvalOptions::default()).unwrap().dice.unwrap();
        assert!(dsc > 0.95, "off vs {name} DSC {dsc}");
    }
}

/// `segment` (one pass) on a small phantom, without `flag` and with it set to
/// `value`: asserts the report names the setting in `field` (`default`
/// without the flag) and returns both masks.
fn default_and_option_masks(flag: &str, value: &str, field: &str, default: &str) -> [Mask; 2] {
    let dir = tempfile::tempdir().unwrap();
    let ph = dir.path().join("phantom");
    small_phantom(&ph, "9");
    let ct = ph.join("ct.nii.gz");
    [None, Some(value)].map(|v| {
        let out = dir.path().join(v.unwrap_or("default"));
        let mut args = vec!["segment", s(&ct), "-o", s(&out), "--no-overview", "--json", "--flip-average", "off", "--scale-average", "1"];
        args.extend(v.map(|v| [flag, v]).iter().flatten());
        let o = liverseg(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report[field], v.unwrap_or(default), "{flag} {v:?}");
        read_mask(&out.join("liver.nii.gz"), None, &ReadOptions::default()).unwrap().0
    })
}

/// `--boundary probability` moves the surface within a network voxel, so the
/// mask stays nearly the same, and the report says which boundary was used.
#[test]
fn probability_boundary_nearly_the_same_mask_and_says_so() {
    let masks = default_and_option_masks("--boundary", "probability", "boundary", "mask");
    assert!(masks[0].foreground_ml() > 100.0, "{} ml", masks[0].foreground_ml());
    assert_ne!(masks[0].data(), masks[1].data(), "the probability boundary changed nothing");
    let dsc = evaluate(&masks[0], &masks[1], &EvalOptions::default()).unwrap().dice.unwrap();
    assert!(dsc > 0.97, "mask vs probability boundary DSC {dsc}");
}

/// `--fill-holes axial` only ever adds to the 3-D filling's mask, and the
/// report says which filling was used.
#[test]
fn axial_hole_filling_only_adds_and_says_so() {
    let masks = default_and_option_masks("--fill-holes", "axial", "fill_holes", "3d");
    assert!(masks[0].foreground_ml() > 100.0, "{} ml", masks[0].foreground_ml());
    assert!(masks[0].data().iter().zip(masks[1].data()).all(|(&a, &b)| b >= a), "axial filling removed liver");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["segment", "-o", "x"][..],
        &["segment", "a.nii.gz", "-o", "x", "--threshold", "1.5"],
        &["segment", "a.nii.gz", "-o", "x", "--format", "png"],
        &["segment", "a.nii.gz", "-o", "x", "--jobs", "0"],
        &["segment", "a.nii.gz", "-o", "x", "--flip-average", "z"],
        &["segment", "a.nii.gz", "-o", "x", "--boundary", "soft"],
        &["segment", "a.nii.gz", "-o", "x", "--fill-holes", "2d"],
        &["segment", "a.nii.gz", "-o", "x", "--scale-average", "1,3"],
        &["phantom", "-o", "x", "--contrast", "2"],
    ] {
        let o = liverseg(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!Path::new("x").exists());
    }
}

#[test]
fn batch_is_resumable_and_keeps_going_past_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("alpha"), dir.path().join("beta"));
    small_phantom(&a, "1");
    small_phantom(&b, "2");
    let bad = dir.path().join("broken.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b not really gzip").unwrap();
    let out = dir.path().join("out");
    let (ct_a, ct_b) = (a.join("ct.nii.gz"), b.join("ct.nii.gz"));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "segment",
            s(&ct_a),
            s(&ct_b),
            "-o",
            s(&out),
            "--json",
            "--jobs",
            "2",
            // Batch mechanics, not the contour: one network pass per case
            // (here and below) keeps this test a third as long.
            "--flip-average",
            "off",
            "--scale-average",
            "1",
        ];
        args.extend_from_slice(extra);
        liverseg(&args)
    };
    let status = |o: &Output| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["case"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        status(&o),
        [("alpha".into(), "ok".into()), ("beta".into(), "ok".into())]
    );
    // One folder per case, and the task log (`.tasks/`).
    assert_eq!(entries(&out), [".tasks", "alpha", "beta"]);
    assert_eq!(
        entries(&out.join("alpha")),
        ["liver.nii.gz", "overview.png", "report.json"]
    );
    let before = std::fs::metadata(out.join("alpha/liver.nii.gz"))
        .unwrap()
        .modified()
        .unwrap();

    // beta half gone (as if interrupted before its report): redone; alpha skipped.
    std::fs::remove_file(out.join("beta/report.json")).unwrap();
    let o = run(&[s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        status(&o),
        [
            ("alpha".into(), "skipped".into()),
            ("beta".into(), "ok".into()),
            ("broken".into(), "failed".into())
        ]
    );
    assert!(stderr(&o).contains("broken.nii.gz"), "{}", stderr(&o));
    assert_eq!(
        std::fs::metadata(out.join("alpha/liver.nii.gz"))
            .unwrap()
            .modified()
            .unwrap(),
        before,
        "alpha was rewritten"
    );
    assert!(out.join("beta/report.json").is_file());
    assert!(
        entries(&out.join("broken")).is_empty(),
        "a failed case leaves nothing"
    );
    // No staging folders anywhere.
    for case in ["alpha", "beta"] {
        assert!(
            entries(&out.join(case)).iter().all(|n| !n.starts_with('.')),
            "{:?}",
            entries(&out.join(case))
        );
    }

    // The table (no --json) names every case.
    let o = liverseg(&[
        "segment",
        s(&a.join("ct.nii.gz")),
        s(&b.join("ct.nii.gz")),
        "-o",
        s(&out),
        "--flip-average",
        "off",
        "--scale-average",
        "1",
    ]);
    assert!(o.status.success());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("alpha") && table.contains("skipped") && table.contains("2 skipped"),
        "{table}"
    );

    // A manifest with names.
    let manifest = dir.path().join("cases.txt");
    std::fs::write(
        &manifest,
        format!(
            "# name<TAB>path\nfirst\t{}\nsecond\tbeta/ct.nii.gz\n",
            a.join("ct.nii.gz").display()
        ),
    )
    .unwrap();
    let out2 = dir.path().join("out2");
    let o = liverseg(&["segment", "--manifest", s(&manifest), "-o", s(&out2), "--flip-average", "off", "--scale-average", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(entries(&out2), [".tasks", "first", "second"]);
}

#[test]
fn demo_segments_evaluates_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = liverseg(&["demo", "-o", s(&out), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dsc = summary["dice"].as_f64().unwrap();
    assert!((MIN_PHANTOM_DSC..=1.0).contains(&dsc), "demo DSC {dsc} < {MIN_PHANTOM_DSC}");
    // The truth is the reference (a), as `evaluate` defines it, so the
    // volume ratio is result / truth.
    let e = &summary["evaluation"];
    let truth_ml = summary["truth_volume_ml"].as_f64().unwrap();
    assert!((e["volume_a_ml"].as_f64().unwrap() - truth_ml).abs() < 1e-6, "reference must be the truth: {e}");
    let ratio = e["volume_b_ml"].as_f64().unwrap() / truth_ml;
    assert!((e["volume_ratio"].as_f64().unwrap() - ratio).abs() < 1e-9, "{e}");
    // The model never saw a phantom and may flag it, but must find a liver
    // of plausible size.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let flags: Vec<&str> = report["flags"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(!flags.contains(&"empty_result") && !flags.contains(&"volume_implausible"), "{flags:?}");
    for name in [
        "ct.nii.gz",
        "liver_truth.nii.gz",
        "liver.nii.gz",
        "report.json",
        "overview.png",
        "evaluation.json",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    // The whole liver includes its tumours: most of the phantom's lesion
    // volume is inside the mask (all 1,250 voxels with the built-in model and
    // the 9 mm post-processing, 1.1 ml filled as enclosed holes; the model
    // before it also 1,250, 3.5 ml; 74 % with the one before that), a guard
    // for the post-processing.
    let phantom = liverseg_phantom::generate(&liverseg_phantom::PhantomConfig { seed: 1, ..Default::default() });
    let lesion = phantom.mask("lesion").unwrap();
    let (mask, _) = read_mask(&out.join("liver.nii.gz"), None, &ReadOptions::default()).unwrap();
    let (inside, total) = lesion.data().iter().zip(mask.data()).fold((0usize, 0usize), |(i, t), (&l, &m)| (i + usize::from(l != 0 && m != 0), t + usize::from(l != 0)));
    eprintln!("demo: {inside} of {total} lesion voxels in the liver mask, {} ml filled as holes", report["components"]["holes_filled_ml"]);
    assert!(total > 0 && inside as f64 >= 0.6 * total as f64, "{inside} of {total} lesion voxels in the liver mask");
    assert!(report["components"]["holes_filled_ml"].as_f64().unwrap() > 0.0, "{}", report["components"]);
    let o = liverseg(&["demo", "-o", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("DSC") && text.contains(s(&out)), "{text}");
}
