//! NIfTI / Analyze conformance against the third-party corpora in
//! `../shared/corpora` and the reference readings of nibabel 5.4.2 in
//! `readings.json` (see corpora/MANIFEST.md).
//!
//! For every NIfTI/Analyze entry:
//! * readable by nibabel: dims, spacing, RAS affine (1e-4), value range (scaled,
//!   like `get_fdata`), sha256 of the raw stored array over all volumes in
//!   C order of the x,y,z(,t..) array (nibabel's), and CRC-32 of the stored
//!   bytes in file order (NIFTI-Reader-JS's own test expectation);
//! * unreadable by nibabel (negative files, fuzzer crashes): a clean error;
//! * header readable but data not (missing .img, RGB, complex): the header's
//!   affine still matches, and `read` gives a clean error.
//!
//! Deliberate differences from nibabel, each checked in its own way:
//! * qform_code = sform_code = 0 and Analyze: nibabel centres the image and
//!   flips x (SPM habit); liverseg follows the NIfTI standard's method 1
//!   (diag(pixdim), origin 0). Checked: our affine is diag(zooms) and has the
//!   same column lengths (spacing) as nibabel's.
//! * 4-D+ images are read one volume at a time (`volume_index`); the hashes are
//!   computed over all volumes read one by one.
//! * RGB and complex data are refused as Unsupported (nibabel reads them as
//!   structured/complex arrays liverseg has no use for); CIFTI-2 likewise.
//! * Where sform and qform are both set, both readers use the sform.

use liverseg_io::nifti::{self, Transform};
use liverseg_io::{Error, ReadOptions};
use liverseg_volume::{dyn_dispatch, DynVolume};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static SHA_CHECKED: AtomicUsize = AtomicUsize::new(0);
static CRC_CHECKED: AtomicUsize = AtomicUsize::new(0);
static AFFINE_CHECKED: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct Tally {
    passed: usize,
    skipped: Vec<String>,
}

fn affine_of(v: &Value) -> Option<[[f64; 4]; 4]> {
    let rows = v.as_array()?;
    let mut a = [[0.0; 4]; 4];
    for (r, row) in rows.iter().enumerate().take(4) {
        for (c, x) in row.as_array()?.iter().enumerate().take(4) {
            a[r][c] = x.as_f64()?;
        }
    }
    Some(a)
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

/// The affine liverseg should produce for this reading (see the module doc).
fn expected_affine(read: &Value) -> ([[f64; 4]; 4], bool) {
    let nib = affine_of(&read["affine"]).expect("reading has an affine");
    let sform = read["sform_code"].as_i64().unwrap_or(0);
    let qform = read["qform_code"].as_i64().unwrap_or(0);
    if sform > 0 || qform > 0 {
        return (nib, true);
    }
    let zooms: Vec<f64> = read["zooms"].as_array().unwrap().iter().filter_map(num).collect();
    let mut a = [[0.0; 4]; 4];
    for ax in 0..3 {
        let z = zooms.get(ax).copied().unwrap_or(1.0).abs();
        a[ax][ax] = if z == 0.0 { 1.0 } else { z };
    }
    a[3][3] = 1.0;
    (a, false)
}

fn check_affine(ours: &[[f64; 4]; 4], read: &Value, what: &mut Vec<String>) {
    let (expected, same_as_nibabel) = expected_affine(read);
    AFFINE_CHECKED.fetch_add(1, Relaxed);
    for r in 0..3 {
        for c in 0..4 {
            if (ours[r][c] - expected[r][c]).abs() > 1e-4 {
                what.push(format!("affine[{r}][{c}] = {} expected {} (ours {:?})", ours[r][c], expected[r][c], &ours[..3]));
                return;
            }
        }
    }
    if !same_as_nibabel {
        // Same voxel sizes as nibabel even where the placement differs on purpose.
        let nib = affine_of(&read["affine"]).unwrap();
        for c in 0..3 {
            let a = (0..3).map(|r| ours[r][c].powi(2)).sum::<f64>().sqrt();
            let b = (0..3).map(|r| nib[r][c].powi(2)).sum::<f64>().sqrt();
            if !close(a, b, 1e-6) {
                what.push(format!("spacing {c}: {a} vs nibabel's column length {b}"));
            }
        }
    }
}

/// Stored-type little-endian bytes of one volume, undoing the scaling we applied.
fn stored_bytes(vol: &DynVolume, stored: &str, slope: f64, inter: f64, scaled: bool) -> Option<(Vec<u8>, usize)> {
    if !scaled {
        let size = vol.dtype().size_bytes();
        let mut out = Vec::with_capacity(vol.geometry().len() * size);
        dyn_dispatch!(vol, v => for x in v.data() { out.extend_from_slice(&x.to_le_bytes()); });
        return Some((out, size));
    }
    let n = vol.geometry().len();
    let raw = |i: usize| ((vol.value_f64(i) - inter) / slope).round();
    macro_rules! back {
        ($t:ty) => {{
            let mut out = Vec::with_capacity(n * std::mem::size_of::<$t>());
            for i in 0..n {
                out.extend_from_slice(&(raw(i) as $t).to_le_bytes());
            }
            Some((out, std::mem::size_of::<$t>()))
        }};
    }
    match stored {
        "uint8" => back!(u8),
        "int8" => back!(i8),
        "int16" => back!(i16),
        "uint16" => back!(u16),
        "int32" => back!(i32),
        "uint32" => back!(u32),
        // A float stored type cannot be recovered exactly from scaled values.
        _ => None,
    }
}

/// Read every volume and check values against the reading.
fn check_values(path: &Path, read: &Value, first: &liverseg_io::ReadOutput, problems: &mut Vec<String>) {
    let shape: Vec<usize> = read["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let extra: Vec<usize> = shape.iter().skip(3).copied().collect();
    let nvol: usize = extra.iter().product();
    let d = &first.info.details;
    assert_eq!(d["volumes"].as_u64().unwrap() as usize, nvol);
    let scaled = d["scaled"].as_bool().unwrap();
    let slope = d["scl_slope"].as_f64().unwrap_or(1.0);
    let inter = d["scl_inter"].as_f64().unwrap_or(0.0);
    let big = d["byte_order"] == "big";
    let stored = d["datatype"].as_str().unwrap().to_string();

    let mut vols = Vec::with_capacity(nvol);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in 0..nvol {
        let out = if v == 0 {
            first.volume.clone()
        } else {
            match nifti::read(path, &ReadOptions { volume_index: v, ..Default::default() }) {
                Ok(o) => o.volume,
                Err(e) => {
                    problems.push(format!("volume {v}: {e}"));
                    return;
                }
            }
        };
        if let Some((a, b)) = out.min_max_f64() {
            lo = lo.min(a);
            hi = hi.max(b);
        }
        vols.push(out);
    }
    if let (Some(smin), Some(smax)) = (num(&read["scaled_min"]), num(&read["scaled_max"])) {
        if !close(lo, smin, 1e-6) || !close(hi, smax, 1e-6) {
            problems.push(format!("value range [{lo}, {hi}], nibabel get_fdata [{smin}, {smax}]"));
        }
    }
    let raw = match vols.iter().map(|v| stored_bytes(v, &stored, slope, inter, scaled)).collect::<Option<Vec<_>>>() {
        Some(r) => r,
        None => return, // float stored data with scaling: range checked above
    };
    let size = raw[0].1;
    // CRC-32 of the stored bytes in file order and file byte order.
    let mut crc = flate2::Crc::new();
    for (bytes, _) in &raw {
        if big && size > 1 {
            let swapped: Vec<u8> = bytes.chunks_exact(size).flat_map(|c| c.iter().rev().copied()).collect();
            crc.update(&swapped);
        } else {
            crc.update(bytes);
        }
    }
    if let Some(expected) = read["raw_crc32_file_order"].as_u64() {
        CRC_CHECKED.fetch_add(1, Relaxed);
        if crc.sum() as u64 != expected {
            problems.push(format!("CRC-32 of stored bytes {} expected {expected}", crc.sum()));
        }
    }
    // sha256 over the C-order (last index fastest) array of shape x,y,z,extra...
    let Some(expected_sha) = read["raw_data"]["sha256_le_c_order"].as_str() else { return };
    let [nx, ny, nz] = vols[0].geometry().dims();
    let order: Vec<usize> = (0..nvol)
        .map(|c| {
            // C-order multi-index over the extra dims -> our file-order volume index.
            let mut rem = c;
            let mut idx = vec![0; extra.len()];
            for (k, &n) in extra.iter().enumerate().rev() {
                idx[k] = rem % n;
                rem /= n;
            }
            let mut v = 0;
            for (k, &n) in extra.iter().enumerate().rev() {
                v = v * n + idx[k];
            }
            v
        })
        .collect();
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(1 << 16);
    for i in 0..nx {
        for j in 0..ny {
            for k in 0..nz {
                let off = (i + nx * (j + ny * k)) * size;
                for &v in &order {
                    buf.extend_from_slice(&raw[v].0[off..off + size]);
                }
                if buf.len() >= 1 << 15 {
                    hasher.update(&buf);
                    buf.clear();
                }
            }
        }
    }
    hasher.update(&buf);
    let sha: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    SHA_CHECKED.fetch_add(1, Relaxed);
    if sha != expected_sha {
        problems.push(format!("sha256 of raw array {sha} expected {expected_sha}"));
    }
}

/// Header-level checks for files whose data cannot (or must not) be read.
fn check_header_only(path: &Path, read: &Value, problems: &mut Vec<String>) {
    match nifti::read_header(path) {
        Ok(h) => {
            let shape: Vec<usize> = read["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            let dims: [usize; 3] = std::array::from_fn(|a| shape.get(a).copied().unwrap_or(1));
            let sp = nifti::spatial(&h, dims);
            check_affine(&sp.geometry.affine_ras(), read, problems);
        }
        Err(e) => problems.push(format!("header unreadable: {e}")),
    }
}

fn check_entry(corpora: &Path, rel: &str, entry: &Value) -> Result<(), String> {
    let path = corpora.join(rel);
    let read = &entry["read"];
    let mut problems = Vec::new();
    let result = std::panic::catch_unwind(|| nifti::read(&path, &ReadOptions::default()))
        .map_err(|_| "read() panicked".to_string())?;

    if read.get("read_error").is_some() {
        // nibabel refuses these (not NIfTI, fuzzer crashes): so must we, cleanly.
        return match result {
            Err(Error::Invalid { .. } | Error::Unsupported { .. }) => Ok(()),
            Err(e) => Err(format!("expected an Invalid/Unsupported error, got {e:?}")),
            Ok(_) => Err(format!("nibabel refuses it ({}), we read it", read["read_error"])),
        };
    }
    let class = read["class"].as_str().unwrap_or("");
    let datatype = read["datatype"].as_i64().unwrap_or(0);
    if class.starts_with("Cifti") {
        return match result {
            Err(Error::Unsupported { .. }) => Ok(()),
            other => Err(format!("CIFTI-2 must be Unsupported, got {:?}", other.map(|o| o.volume.dtype()))),
        };
    }
    if matches!(datatype, 32 | 128 | 1792 | 2304) {
        check_header_only(&path, read, &mut problems);
        match result {
            Err(Error::Unsupported { .. }) => {}
            other => problems.push(format!("RGB/complex must be Unsupported, got {:?}", other.map(|o| o.volume.dtype()))),
        }
    } else if let Some(data_error) = read.get("data_error") {
        // Pairs shipped without their .img: header is fine, data is missing.
        check_header_only(&path, read, &mut problems);
        let gz_image = path.with_extension("img.gz");
        match result {
            Err(e) if e.to_string().contains("missing") && !gz_image.exists() => {}
            // Deliberate: nibabel pairs a plain .hdr only with a plain .img;
            // we also take a gzipped .img.gz (nifti-rs's minimal2 pair).
            Ok(out) if gz_image.exists() => check_readable(&path, read, &out, &mut problems),
            other => problems.push(format!("nibabel: {data_error}; we: {:?}", other.map(|o| o.volume.dtype()))),
        }
    } else {
        let out = result.map_err(|e| format!("nibabel reads it, we fail: {e}"))?;
        check_readable(&path, read, &out, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn check_readable(path: &Path, read: &Value, out: &liverseg_io::ReadOutput, problems: &mut Vec<String>) {
    {
        let shape: Vec<usize> = read["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let dims: [usize; 3] = std::array::from_fn(|a| shape.get(a).copied().unwrap_or(1));
        let g = out.volume.geometry();
        if g.dims() != dims {
            problems.push(format!("dims {:?} expected {dims:?}", g.dims()));
        }
        check_affine(&g.affine_ras(), read, problems);
        let nib = affine_of(&read["affine"]).unwrap();
        let (_, same) = expected_affine(read);
        if same {
            for c in 0..3 {
                let len = (0..3).map(|r| nib[r][c].powi(2)).sum::<f64>().sqrt();
                if !close(g.spacing()[c], len, 1e-5) {
                    problems.push(format!("spacing {:?} vs nibabel column lengths", g.spacing()));
                }
            }
        }
        let transform = out.info.details["transform"].as_str().unwrap().to_string();
        let want = if read["sform_code"].as_i64().unwrap_or(0) > 0 {
            Transform::Sform
        } else if read["qform_code"].as_i64().unwrap_or(0) > 0 {
            Transform::Qform
        } else {
            Transform::Pixdim
        };
        if transform != want.name() {
            problems.push(format!("used {transform}, expected {}", want.name()));
        }
        if shape.len() > 3 && !out.info.warnings.iter().any(|w| w.contains("-D image")) {
            problems.push("4-D+ image without a warning".into());
        }
        check_values(path, read, out, problems);
    }
}

#[test]
fn corpora_match_nibabel_readings() {
    let Some(readings) = liverseg_testdata::require_shared!("corpora/readings.json") else { return };
    let corpora = readings.parent().unwrap().to_path_buf();
    let all: BTreeMap<String, Value> = serde_json::from_str(&std::fs::read_to_string(&readings).unwrap()).unwrap();
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    for (rel, entry) in &all {
        if entry["kind"] != "nifti/analyze" {
            continue;
        }
        let source = rel.split('/').next().unwrap().to_string();
        let t = tally.entry(source).or_default();
        if !corpora.join(rel).exists() {
            t.skipped.push(format!("{rel}: file absent"));
            continue;
        }
        match check_entry(&corpora, rel, entry) {
            Ok(()) => t.passed += 1,
            Err(e) => failures.push(format!("{rel}: {e}")),
        }
    }
    let total: usize = tally.values().map(|t| t.passed).sum();
    for (source, t) in &tally {
        eprintln!("NIfTI conformance {source}: {} passed, {} skipped", t.passed, t.skipped.len());
        for s in &t.skipped {
            eprintln!("  SKIP {s}");
        }
    }
    eprintln!(
        "NIfTI conformance total: {total} passed, {} failed ({} affines, {} sha256, {} CRC-32 compared)",
        failures.len(),
        AFFINE_CHECKED.load(Relaxed),
        SHA_CHECKED.load(Relaxed),
        CRC_CHECKED.load(Relaxed)
    );
    assert!(total >= 100, "only {total} NIfTI entries checked: corpus incomplete?");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// niivue's nifti_space: one image stored in all 48 axis orders/flips. Whatever
/// the storage order, each world position must hold the same value.
#[test]
fn niivue_48_orientations_agree_in_world_space() {
    let Some(dir) = liverseg_testdata::require_shared!("corpora/niivue/tests/images/nifti_space") else { return };
    let reference = nifti::read(&dir.join("RAS.nii.gz"), &ReadOptions::default()).unwrap().volume.to_f64();
    let rg = reference.geometry().clone();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".nii.gz") {
            continue;
        }
        let code = name.trim_end_matches(".nii.gz");
        let vol = nifti::read(&p, &ReadOptions::default()).unwrap().volume.to_f64();
        let g = vol.geometry();
        // nibabel axcodes and liverseg's orientation code both name where each axis points.
        assert_eq!(g.orientation_code(), code, "{name}: axis codes");
        let [nx, ny, nz] = g.dims();
        let mut mismatches = 0;
        let mut n = 0;
        for k in (0..nz).step_by(3) {
            for j in (0..ny).step_by(3) {
                for i in (0..nx).step_by(2) {
                    let w = g.index_to_world([i as f64, j as f64, k as f64]);
                    let r = rg.world_to_index(w);
                    let ri: [i64; 3] = std::array::from_fn(|a| r[a].round() as i64);
                    assert!((0..3).all(|a| (r[a] - ri[a] as f64).abs() < 1e-3), "{name}: voxel ({i},{j},{k}) lands off-grid at {r:?}");
                    let theirs = *reference.checked_get(ri).unwrap_or_else(|| panic!("{name}: ({i},{j},{k}) maps outside: {ri:?}"));
                    if theirs != *vol.get(i, j, k) {
                        mismatches += 1;
                    }
                    n += 1;
                }
            }
        }
        assert_eq!(mismatches, 0, "{name}: {mismatches} of {n} sampled voxels differ from RAS.nii.gz at the same world position");
        checked += 1;
    }
    eprintln!("niivue nifti_space: {checked} orientations agree with RAS.nii.gz in world space");
    assert_eq!(checked, 48);
}

/// nifti-rs's fuzzer crash files and NIFTI-Reader-JS's not-nifti: clean errors.
#[test]
fn fuzz_artifacts_give_clean_errors() {
    let Some(dir) = liverseg_testdata::require_shared!("corpora/nifti-rs/resources/fuzz_artifacts") else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let r = std::panic::catch_unwind(|| nifti::read(&p, &ReadOptions::default()));
        match r {
            Ok(Err(e)) => {
                assert!(e.to_string().contains(&*p.file_name().unwrap().to_string_lossy()), "error must name the file: {e}");
                eprintln!("  {}: {e}", p.file_name().unwrap().to_string_lossy());
            }
            Ok(Ok(o)) => panic!("{}: read a {:?} volume from a fuzzer crash file", p.display(), o.volume.geometry().dims()),
            Err(_) => panic!("{}: panicked", p.display()),
        }
        let _ = nifti::looks_like_nifti(&p);
        n += 1;
    }
    assert!(n >= 5, "{n} artifacts");
}
