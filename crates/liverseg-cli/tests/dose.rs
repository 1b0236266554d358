//! End-to-end tests of `liverseg dose` on phantom files written in the test.

use liverseg_io::{read_image, write_image, ReadOptions};
use liverseg_phantom::{generate, PhantomConfig};
use liverseg_volume::{DynVolume, Geometry, Mask, Volume};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn liverseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg")).args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "liverseg failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

/// 49.67 x 1e-6 / 1.03: Gy per Bq/ml at the default density (hand-derived in the
/// dose crate's voxel module).
const GY_PER_BQ_ML: f64 = 49.67e-6 / 1.03;

struct Case {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    liver: Mask,
    tumour: Mask,
}

impl Case {
    fn path(&self, name: &str) -> String {
        self.root.join(name).to_str().unwrap().to_string()
    }
}

/// Phantom CT + liver mask + a ball tumour inside the liver, written as NIfTI.
fn phantom_case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let p = generate(&PhantomConfig { dims: [64, 56, 24], spacing: [5.0, 5.0, 8.0], noise_hu: 0.0, lesions: 0, ..Default::default() });
    let g = p.liver.geometry().clone();
    // Tumour: ball of radius 20 mm around the liver voxel nearest the liver centroid.
    let (mut c, mut n) = ([0.0f64; 3], 0.0);
    for (o, &m) in p.liver.data().iter().enumerate() {
        if m != 0 {
            let idx = g.index_of(o);
            for a in 0..3 {
                c[a] += idx[a] as f64;
            }
            n += 1.0;
        }
    }
    let c = g.index_to_world([c[0] / n, c[1] / n, c[2] / n]);
    let tumour = Volume::from_fn(g.clone(), |[i, j, k]| {
        let w = g.index_to_world([i as f64, j as f64, k as f64]);
        u8::from((0..3).map(|a| (w[a] - c[a]).powi(2)).sum::<f64>() <= 20.0 * 20.0 && *p.liver.get(i, j, k) != 0)
    });
    assert!(tumour.count_foreground() > 20, "tumour too small for the test");
    write_image(&root.join("ct.nii.gz"), &DynVolume::from(p.ct.clone())).unwrap();
    write_image(&root.join("liver.nii.gz"), &DynVolume::from(p.liver.clone())).unwrap();
    write_image(&root.join("tumour.nii.gz"), &DynVolume::from(tumour.clone())).unwrap();
    Case { _dir: dir, root, liver: p.liver, tumour }
}

fn region<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["voxel"]["regions"].as_array().unwrap().iter().find(|r| r["region"] == name).unwrap_or_else(|| panic!("no region {name}"))
}

#[test]
fn voxel_and_partition_on_a_phantom_match_the_analytic_doses() {
    let case = phantom_case();
    // PET in Bq/ml: 2 MBq/ml in normal liver, 8 MBq/ml in the tumour (T/N = 4).
    let pet = Volume::from_fn(case.liver.geometry().clone(), |[i, j, k]| {
        if *case.tumour.get(i, j, k) != 0 {
            8.0e6f32
        } else if *case.liver.get(i, j, k) != 0 {
            2.0e6
        } else {
            0.0
        }
    });
    write_image(&case.root.join("pet.nii.gz"), &DynVolume::from(pet)).unwrap();
    let out = case.path("out");
    let s = json(&liverseg(&[
        "dose", "--ct", &case.path("ct.nii.gz"), "--liver", &case.path("liver.nii.gz"), "--tumour", &case.path("tumour.nii.gz"),
        "--activity-map", &case.path("pet.nii.gz"), "--spect", &case.path("pet.nii.gz"), "--lsf", "0.05", "--height-cm", "170",
        "--weight-kg", "70", "--target-dose-gy", "100", "--target-normal-gy", "30", "--json", "-o", &out,
    ]));
    // Analytic local-deposition doses: 49.67e-6 x c / 1.03.
    let (d_normal, d_tumour) = (2.0e6 * GY_PER_BQ_ML, 8.0e6 * GY_PER_BQ_ML);
    assert!(close(d_normal, 96.447, 1e-4) && close(d_tumour, 385.79, 1e-4));
    let normal = region(&s, "normal liver");
    let tumour = region(&s, "tumour");
    assert!(close(normal["mean_gy"].as_f64().unwrap(), d_normal, 1e-5), "{normal}");
    assert!(close(tumour["mean_gy"].as_f64().unwrap(), d_tumour, 1e-5), "{tumour}");
    assert!(close(tumour["d"][1]["dose_gy"].as_f64().unwrap(), d_tumour, 1e-5), "D50 of a uniform tumour is its dose");
    // Whole liver mean: volume-weighted mix of the two.
    let (vt, vl) = (case.tumour.count_foreground() as f64, case.liver.count_foreground() as f64);
    let liver_mean = (vt * d_tumour + (vl - vt) * d_normal) / vl;
    assert!(close(region(&s, "liver")["mean_gy"].as_f64().unwrap(), liver_mean, 1e-5));
    // V100 of the liver = tumour share (only the tumour is above 100 Gy).
    let v100 = region(&s, "liver")["v"].as_array().unwrap().iter().find(|v| v["dose_gy"] == 100.0).unwrap()["volume_fraction"].as_f64().unwrap();
    assert!(close(v100, vt / vl, 1e-9));

    // Partition with T/N from the same map as SPECT counts: exactly 4.
    let p = &s["partition"];
    assert!(close(p["tn_ratio"].as_f64().unwrap(), 4.0, 1e-9), "{p}");
    let m_t = s["inputs"]["treated_tumour_mass_kg"].as_f64().unwrap();
    let m_n = s["inputs"]["treated_normal_liver_mass_kg"].as_f64().unwrap();
    let a = 30.0 * (4.0 * m_t + m_n) / (49.67 * 0.95);
    assert!(close(p["activity_gbq"].as_f64().unwrap(), a, 1e-9));
    assert!(close(p["tumour_dose_gy"].as_f64().unwrap(), 120.0, 1e-9));
    // MIRD on the contour's mass: A = 100 x M / (49.67 x 0.95).
    let m = s["inputs"]["liver_mass_kg"].as_f64().unwrap();
    assert!(close(m, vl * 5.0 * 5.0 * 8.0 / 1000.0 * 1.03 / 1000.0, 1e-9));
    assert!(close(s["mird"]["activity_gbq"].as_f64().unwrap(), 100.0 * m / (49.67 * 0.95), 1e-9));
    assert!(s["bsa"]["prescribed_activity_gbq"].as_f64().is_some());

    // Files: dose map on the CT grid with the analytic values, plots, reports.
    let dose = read_image(Path::new(&out).join("dose_gy.nii.gz").as_path(), &ReadOptions::default()).unwrap().volume;
    assert!(dose.geometry().same_grid(case.liver.geometry()));
    let dose = dose.to_f64();
    let o = case.tumour.data().iter().position(|&t| t != 0).unwrap();
    assert!(close(dose.data()[o], d_tumour, 1e-6));
    let names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for f in ["dose_gy.nii.gz", "dvh.png", "dvh.svg", "report.md", "report.html", "dose.json"] {
        assert!(names.iter().any(|n| n == f), "{f} missing in {names:?}");
    }
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    let md = std::fs::read_to_string(Path::new(&out).join("report.md")).unwrap();
    assert!(md.contains("## Voxel dosimetry") && md.contains("![Cumulative DVH](dvh.png)") && md.contains("## Partition model"));
    let svg = std::fs::read_to_string(Path::new(&out).join("dvh.svg")).unwrap();
    assert!(svg.contains("Dose (Gy)") && svg.contains("tumour (mean 385.8 Gy)"), "legend text missing");
}

#[test]
fn activity_map_on_another_grid_is_resampled_onto_the_ct() {
    let case = phantom_case();
    // Coarse PET grid covering the CT field of view with margin; a constant map
    // stays constant under trilinear interpolation, so the dose is exact.
    let g = case.liver.geometry();
    let o = g.origin();
    let coarse = Geometry::new([40, 36, 20], [10.0, 10.0, 12.0], [o[0] - 20.0, o[1] - 20.0, o[2] - 20.0], liverseg_volume::IDENTITY).unwrap();
    write_image(&case.root.join("pet.nii.gz"), &DynVolume::from(Volume::filled(coarse, 500.0f32))).unwrap();
    let s = json(&liverseg(&[
        "dose", "--ct", &case.path("ct.nii.gz"), "--liver", &case.path("liver.nii.gz"), "--activity-map", &case.path("pet.nii.gz"),
        "--activity-unit", "kbq-per-ml", "--method", "voxel", "--json", "-o", &case.path("out"),
    ]));
    let mean = region(&s, "liver")["mean_gy"].as_f64().unwrap();
    assert!(close(mean, 500.0e3 * GY_PER_BQ_ML, 1e-5), "{mean}");
    assert!(s["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("resampled")), "{}", s["notes"]);
    // Scanned one half-life (64.1 h) after administration: twice the activity at t = 0.
    let s = json(&liverseg(&[
        "dose", "--ct", &case.path("ct.nii.gz"), "--liver", &case.path("liver.nii.gz"), "--activity-map", &case.path("pet.nii.gz"),
        "--activity-unit", "kbq-per-ml", "--decay-hours", "64.1", "--method", "voxel", "--json", "-o", &case.path("out"),
    ]));
    assert!(close(region(&s, "liver")["mean_gy"].as_f64().unwrap(), 2.0 * 500.0e3 * GY_PER_BQ_ML, 1e-5));

    // Geometry check: a PET stored with flipped x/y axes (origin at the far corner)
    // holding a linear ramp in world coordinates; trilinear interpolation is exact
    // for ramps, so the dose at each CT voxel is k x ramp(world position).
    let dims = g.dims();
    let sp = g.spacing();
    let far = [o[0] + dims[0] as f64 * sp[0] + 20.0, o[1] + dims[1] as f64 * sp[1] + 20.0, o[2] - 20.0];
    let flip = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]];
    let pet_grid = Geometry::new([40, 36, 20], [10.0, 10.0, 12.0], far, flip).unwrap();
    let ramp = |w: [f64; 3]| 1.0e6 + 2.0e3 * w[0] - 1.0e3 * w[1] + 5.0e2 * w[2];
    let pet = Volume::from_fn(pet_grid.clone(), |[i, j, k]| ramp(pet_grid.index_to_world([i as f64, j as f64, k as f64])) as f32);
    write_image(&case.root.join("ramp.nii.gz"), &DynVolume::from(pet)).unwrap();
    let out = case.path("ramp-out");
    json(&liverseg(&[
        "dose", "--ct", &case.path("ct.nii.gz"), "--liver", &case.path("liver.nii.gz"), "--activity-map", &case.path("ramp.nii.gz"),
        "--method", "voxel", "--json", "-o", &out,
    ]));
    let dose = read_image(Path::new(&out).join("dose_gy.nii.gz").as_path(), &ReadOptions::default()).unwrap().volume.to_f64();
    let mut checked = 0;
    for (off, &m) in case.liver.data().iter().enumerate().step_by(31) {
        if m != 0 {
            let idx = g.index_of(off);
            let w = g.index_to_world([idx[0] as f64, idx[1] as f64, idx[2] as f64]);
            assert!(close(dose.data()[off], ramp(w) * GY_PER_BQ_ML, 1e-5), "voxel {idx:?}: {} vs {}", dose.data()[off], ramp(w) * GY_PER_BQ_ML);
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn counts_map_is_scaled_to_the_administered_activity() {
    let case = phantom_case();
    let counts = case.liver.map(|&m| if m != 0 { 123.0f32 } else { 0.0 });
    write_image(&case.root.join("spect.nii.gz"), &DynVolume::from(counts)).unwrap();
    let s = json(&liverseg(&[
        "dose", "--ct", &case.path("ct.nii.gz"), "--liver", &case.path("liver.nii.gz"), "--activity-map", &case.path("spect.nii.gz"),
        "--activity-unit", "counts", "--total-activity-gbq", "2.5", "--lsf", "0.1", "--method", "voxel", "--json", "-o", &case.path("out"),
    ]));
    // 2.5 GBq x 0.9 in the liver mass: D = 49.67 x 2.25 / M.
    let m = s["inputs"]["liver_mass_kg"].as_f64().unwrap();
    let liver = region(&s, "liver");
    assert!(close(liver["activity_gbq"].as_f64().unwrap(), 2.25, 1e-9));
    assert!(close(liver["mean_gy"].as_f64().unwrap(), 49.67 * 2.25 / m, 1e-5));
}

#[test]
fn scalar_methods_from_volumes_without_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let s = json(&liverseg(&[
        "dose", "--liver-ml", "1500", "--tumour-ml", "150", "--height-cm", "175", "--weight-kg", "75", "--lsf", "0.12", "--target-dose-gy",
        "120", "--tn", "5", "--target-normal-gy", "40", "--json", "-o", out.to_str().unwrap(),
    ]));
    // Hand-computed in the dose crate's unit tests: BSA 1.903112, A = 1.803112 x 0.8.
    assert!(close(s["bsa"]["prescribed_activity_gbq"].as_f64().unwrap(), 1.803112 * 0.8, 1e-5));
    // MIRD: 120 x 1.545 / (49.67 x 0.88) = 4.24154 GBq.
    assert!(close(s["mird"]["activity_gbq"].as_f64().unwrap(), 120.0 * 1.545 / (49.67 * 0.88), 1e-12));
    // Partition: M_T 0.1545, M_N 1.3905: A = 40 x (5 x 0.1545 + 1.3905) / (49.67 x 0.88).
    assert!(close(s["partition"]["activity_gbq"].as_f64().unwrap(), 40.0 * (5.0 * 0.1545 + 1.3905) / (49.67 * 0.88), 1e-9));
    assert_eq!(s["skipped"][0]["method"], "voxel");
    assert!(out.join("report.html").is_file() && out.join("report.md").is_file() && !out.join("dose_gy.nii.gz").exists());
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = liverseg(args);
    assert_eq!(o.status.code(), Some(1), "expected failure for {args:?}");
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    for n in needles {
        assert!(e.contains(n), "'{n}' missing from: {e}");
    }
}

#[test]
fn bad_input_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let base = ["dose", "--liver-ml", "1500", "--height-cm", "175", "--weight-kg", "75", "-o", o];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    fails_with(&with(&["--lsf", "1.0", "--method", "bsa"]), &["lung shunt fraction", "[0, 1)"]);
    fails_with(&with(&["--lsf", "-0.1"]), &["lung shunt fraction"]);
    fails_with(&["dose", "--liver-ml", "1500", "--height-cm", "175", "--weight-kg", "0", "--lsf", "0.05", "--method", "bsa", "-o", o], &["weight", "0 kg"]);
    fails_with(&with(&["--lsf", "0.05", "--tumour-ml", "2000"]), &["--tumour-ml"]);
    fails_with(&with(&["--lsf", "0.05", "--method", "mird", "--target-dose-gy", "-5"]), &["--target-dose-gy"]);
    fails_with(&with(&["--method", "mird", "--target-dose-gy", "120"]), &["method mird", "lung shunt fraction"]);
    fails_with(&["dose", "--liver-ml", "0", "-o", o], &["--liver-ml"]);
    assert!(!out.exists(), "a failed run must not write outputs");

    // Masks: one on another grid, and an empty liver.
    let case = phantom_case();
    let other = Volume::filled(Geometry::identity([10, 10, 10], [1.0; 3]).unwrap(), 1u8);
    write_image(&case.root.join("other.nii.gz"), &DynVolume::from(other)).unwrap();
    let empty = case.liver.map(|_| 0u8);
    write_image(&case.root.join("empty.nii.gz"), &DynVolume::from(empty)).unwrap();
    let ct = case.path("ct.nii.gz");
    let liver = case.path("liver.nii.gz");
    let other = case.path("other.nii.gz");
    fails_with(&["dose", "--ct", &ct, "--liver", &liver, "--tumour", &other, "--lsf", "0.05", "-o", o], &["tumour mask", "other.nii.gz", "not on the CT grid"]);
    fails_with(&["dose", "--ct", &ct, "--liver", &case.path("empty.nii.gz"), "--lsf", "0.05", "-o", o], &["empty.nii.gz", "empty"]);
    write_image(&case.root.join("pet.nii.gz"), &DynVolume::from(case.liver.map(|&m| m as f32))).unwrap();
    fails_with(
        &["dose", "--ct", &ct, "--liver", &liver, "--activity-map", &case.path("pet.nii.gz"), "--activity-unit", "counts", "--total-activity-gbq", "-1", "--method", "voxel", "-o", o],
        &["--total-activity-gbq", "-1"],
    );
    assert!(!out.exists(), "a failed run must not write outputs");
}

#[test]
fn lsf_from_planar_counts_and_glass_limits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let s = json(&liverseg(&[
        "dose", "--liver-ml", "1800", "--lung-counts", "1e5,1.6e5", "--liver-counts", "9e5,1e6", "--target-dose-gy", "120",
        "--sphere", "glass", "--method", "mird", "--json", "-o", out.to_str().unwrap(),
    ]));
    // Geometric means 126491 and 948683: LSF = 0.117647 (hand-computed in the dose crate).
    assert!(close(s["inputs"]["lsf"].as_f64().unwrap(), 0.117647, 1e-5));
    assert!(s["inputs"]["lsf_source"].as_str().unwrap().contains("geometric mean"));
    // Glass: 70 Gy advisory, so 120 Gy is flagged; lung 49.67 x A x LSF stays < 30 Gy.
    assert_eq!(s["inputs"]["limits"]["normal_liver_gy"], 70.0);
    let codes: Vec<&str> = s["mird"]["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["normal-liver-dose"]);
    let a = 120.0 * 1.8 * 1.03 / (49.67 * (1.0 - 0.117647));
    assert!(close(s["mird"]["activity_gbq"].as_f64().unwrap(), a, 1e-5));
    // With a prior 25 Gy lung dose and LSF 25 %, both lung limits and the LSF limit trip.
    let s = json(&liverseg(&[
        "dose", "--liver-ml", "1800", "--lsf", "0.25", "--prior-lung-dose-gy", "25", "--target-dose-gy", "120", "--method", "mird",
        "--json", "-o", out.to_str().unwrap(),
    ]));
    let codes: Vec<&str> = s["mird"]["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["lsf-contraindication", "lung-dose", "lung-dose-cumulative", "normal-liver-dose"]);
}
