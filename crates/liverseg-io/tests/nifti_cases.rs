//! The real CT cases in `../shared/data/cases`: every `ct.nii.gz` and mask
//! against the geometry and statistics its `case.json` records, and a
//! NIfTI -> liverseg -> NIfTI round trip that must keep voxels and grid exactly.

use liverseg_io::{nifti, ReadOptions};
use liverseg_volume::DynVolume;
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

fn check_case(dir: &Path, case: &Value) {
    let id = case["case_id"].as_str().unwrap_or("?");
    let t = Instant::now();
    let ct = nifti::read(&dir.join("ct.nii.gz"), &ReadOptions::default()).unwrap();
    eprintln!("{id}: read ct.nii.gz {:?} {} in {:.2} s (debug build)", ct.volume.geometry().dims(), ct.volume.dtype(), t.elapsed().as_secs_f64());
    let g = ct.volume.geometry();
    let dims: Vec<usize> = case["dims_xyz"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(g.dims().to_vec(), dims, "{id}: dims");
    for (a, (ours, want)) in g.spacing().iter().zip(f64s(&case["spacing_mm_xyz"])).enumerate() {
        assert!((ours - want).abs() <= 1e-6 * want, "{id}: spacing[{a}] {ours} vs {want}");
    }
    for (a, (ours, want)) in g.origin().iter().zip(f64s(&case["origin_lps_mm"])).enumerate() {
        assert!((ours - want).abs() <= 1e-4, "{id}: origin[{a}] {ours} vs {want}");
    }
    for (n, (ours, want)) in g.direction_flat().iter().zip(f64s(&case["direction_lps_row_major"])).enumerate() {
        assert!((ours - want).abs() <= 1e-6, "{id}: direction[{n}] {ours} vs {want}");
    }
    if let [lo, hi] = f64s(&case["ct_value_range"])[..] {
        assert_eq!(ct.volume.min_max_f64(), Some((lo, hi)), "{id}: CT value range");
    }
    if let Some(dt) = case["ct_file"]["header"]["datatype"].as_str() {
        assert_eq!(ct.volume.dtype().name(), dt, "{id}: CT stored type kept");
    }

    for (name, mask_info) in case["masks"].as_object().into_iter().flatten() {
        let (mask, _) = liverseg_io::read_mask(&dir.join(name), None, &ReadOptions::default()).unwrap();
        assert!(mask.geometry().same_grid(g), "{id}/{name}: mask grid differs from CT grid");
        if let Some(voxels) = mask_info["stats"]["voxels"].as_u64() {
            assert_eq!(mask.count_foreground() as u64, voxels, "{id}/{name}: foreground voxels");
        }
        if let (Some(mean), true) = (mask_info["stats"]["mean_hu"].as_f64(), mask.count_foreground() > 0) {
            // Only right when CT and mask line up voxel for voxel.
            let ct64 = ct.volume.to_f64();
            let (sum, n) = mask.data().iter().zip(ct64.data()).filter(|(m, _)| **m > 0).fold((0.0, 0usize), |(s, n), (_, v)| (s + v, n + 1));
            assert!((sum / n as f64 - mean).abs() < 1e-6, "{id}/{name}: mean HU {} vs {mean}", sum / n as f64);
        }
    }

    // Round trip through our writer: identical voxels, identical grid (bitwise:
    // the float32 sform written is the float32 sform read).
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ct.nii");
    nifti::write(&out, &ct.volume).unwrap();
    let back = nifti::read(&out, &ReadOptions::default()).unwrap();
    assert_eq!(back.volume.geometry(), ct.volume.geometry(), "{id}: grid changed in the round trip");
    assert!(back.volume == ct.volume, "{id}: voxels changed in the round trip");
    assert!(back.info.warnings.is_empty(), "{id}: {:?}", back.info.warnings);
}

#[test]
fn real_cases_match_case_json() {
    let Some(cases) = liverseg_testdata::require_shared!("data/cases") else { return };
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&cases).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for dir in entries {
        let Ok(text) = std::fs::read_to_string(dir.join("case.json")) else { continue };
        let case: Value = serde_json::from_str(&text).unwrap();
        check_case(&dir, &case);
        n += 1;
    }
    eprintln!("checked {n} cases against case.json");
    assert!(n > 0);
}

#[test]
fn ircadb01_01_case_json_and_gz_roundtrip() {
    let Some(dir) = liverseg_testdata::require_shared!("data/cases/ircadb01-01") else { return };
    let ct = nifti::read(&dir.join("ct.nii.gz"), &ReadOptions::default()).unwrap();
    let g = ct.volume.geometry();
    assert_eq!(g.dims(), [512, 512, 129]);
    // case.json prints the float32 voxel sizes with 15 digits.
    for (ours, want) in g.spacing().iter().zip([0.569999992847443, 0.569999992847443, 1.6000000238418595]) {
        assert!((ours - want).abs() < 1e-12, "{ours} vs {want}");
    }
    assert_eq!(g.origin(), [0.0, 0.0, 0.0]);
    assert_eq!(g.orientation_code(), "LPS");
    assert!(matches!(ct.volume, DynVolume::I16(_)));
    assert_eq!(ct.info.details["transform"], "sform");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ct.nii.gz");
    nifti::write(&out, &ct.volume).unwrap();
    let back = nifti::read(&out, &ReadOptions::default()).unwrap();
    assert_eq!(back.volume, ct.volume);
}

/// CPU seconds (user + system) of this thread: on a shared, overloaded
/// machine wall time says little, CPU time still compares implementations.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the ')' (state is not numeric).
    if f.len() > 12 { (f[10] + f[11]) / 100.0 } else { f64::NAN }
}

fn best_of(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..n {
        let (t, c) = (Instant::now(), thread_cpu_seconds());
        f();
        wall = wall.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(thread_cpu_seconds() - c);
    }
    (wall, cpu)
}

/// Release-mode timing: `cargo test --release -p liverseg-io --test nifti_cases -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_read_ircadb_ct() {
    let Some(p) = liverseg_testdata::require_shared!("data/cases/ircadb01-01/ct.nii.gz") else { return };
    let read = best_of(5, || {
        let out = nifti::read(&p, &ReadOptions::default()).unwrap();
        assert_eq!(out.volume.geometry().dims(), [512, 512, 129]);
    });
    // The floor: inflating the same file without parsing or converting.
    let inflate = best_of(5, || {
        let f = std::fs::File::open(&p).unwrap();
        let mut d = flate2::bufread::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
        let mut buf = Vec::with_capacity(70 << 20);
        std::io::Read::read_to_end(&mut d, &mut buf).unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let ct = nifti::read(&p, &ReadOptions::default()).unwrap().volume;
    let gz = tmp.path().join("ct.nii.gz");
    let write_gz = best_of(2, || nifti::write(&gz, &ct).unwrap());
    let raw = tmp.path().join("ct.nii");
    let write_raw = best_of(3, || nifti::write(&raw, &ct).unwrap());
    let read_raw = best_of(5, || drop(nifti::read(&raw, &ReadOptions::default()).unwrap()));
    eprintln!("BENCH ircadb01-01 ct.nii.gz 512x512x129 int16 ({} MB gz), best of n, wall / thread CPU seconds:", std::fs::metadata(&p).unwrap().len() >> 20);
    eprintln!("BENCH   read .nii.gz     {:.3} / {:.3}", read.0, read.1);
    eprintln!("BENCH   bare inflate     {:.3} / {:.3}", inflate.0, inflate.1);
    eprintln!("BENCH   read .nii        {:.3} / {:.3}", read_raw.0, read_raw.1);
    eprintln!("BENCH   write .nii.gz    {:.3} / {:.3} ({} MB)", write_gz.0, write_gz.1, std::fs::metadata(&gz).unwrap().len() >> 20);
    eprintln!("BENCH   write .nii       {:.3} / {:.3}", write_raw.0, write_raw.1);
}
