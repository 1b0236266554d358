//! The `dicom` layout end to end: a 3D-IRCADb-style case folder (CT series in
//! PATIENT_DICOM, liver mask series in MASKS_DICOM/liver) is discovered, read,
//! its mask mapped onto the CT grid and prepared.

#[path = "../../liverseg-io/tests/dicom_util/mod.rs"]
mod dicom_util;

use dicom_util::{write_all, write_series, SECONDARY_CAPTURE};
use liverseg_data::{discover, load_case, load_manifest};
use liverseg_preprocess::PreprocessConfig;

/// Body: an elliptic cylinder of 40 HU in air; liver: a 100 HU ellipsoid in it.
/// Pixel spacing of the helper: x 0.8 mm, y 0.7 mm; slices 2.5 mm apart.
fn inside_body(i: usize, j: usize) -> bool {
    let (x, y) = (i as f64 - 32.0, j as f64 - 28.0);
    (x / 28.0).powi(2) + (y / 24.0).powi(2) <= 1.0
}
fn inside_liver(i: usize, j: usize, k: usize) -> bool {
    let (x, y, z) = (i as f64 - 24.0, j as f64 - 26.0, k as f64 - 8.0);
    (x / 12.0).powi(2) + (y / 12.0).powi(2) + (z / 5.0).powi(2) <= 1.0
}

#[test]
fn ircadb_style_case_loads_with_its_mask_on_the_ct_grid() {
    let d = tempfile::tempdir().unwrap();
    let case = d.path().join("ircadb/3Dircadb1.1");
    let dims = [64, 56, 16];
    let ct = write_series(
        &case.join("PATIENT_DICOM"),
        "1.2.826.0.1.3680043.9.1",
        dims,
        10.0,
        2.5,
        |i, j, k| {
            let hu = if inside_liver(i, j, k) {
                100
            } else if inside_body(i, j) {
                40
            } else {
                -1000
            };
            hu + 1024
        },
    );
    write_all(&case.join("PATIENT_DICOM"), &ct);
    let mut mask = write_series(
        &case.join("MASKS_DICOM/liver"),
        "1.2.826.0.1.3680043.9.2",
        dims,
        10.0,
        2.5,
        |i, j, k| {
            if inside_liver(i, j, k) {
                255
            } else {
                0
            }
        },
    );
    for s in mask.iter_mut() {
        s.intercept = 0.0;
        s.modality = "OT";
        s.sop_class = SECONDARY_CAPTURE;
    }
    write_all(&case.join("MASKS_DICOM/liver"), &mask);
    // Another organ's mask must not be taken for the liver.
    let bone = write_series(
        &case.join("MASKS_DICOM/bone"),
        "1.2.826.0.1.3680043.9.3",
        dims,
        10.0,
        2.5,
        |_, _, _| 255,
    );
    write_all(&case.join("MASKS_DICOM/bone"), &bone);

    let manifest = load_manifest(&d.path().join("ircadb")).unwrap();
    let cases = discover(&manifest).unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].id, "dicom/3Dircadb1.1");
    let config = PreprocessConfig {
        spacing_mm: 1.6,
        median_radius: 0,
        ..Default::default()
    };
    let loaded = load_case(&cases[0], &config, Some(&d.path().join("cache"))).unwrap();
    let p = &loaded.prepared;
    assert_eq!(p.original.dims(), dims);
    let label = p.label.as_ref().unwrap();
    let want_ml = (0..dims[2])
        .flat_map(|k| (0..dims[1]).flat_map(move |j| (0..dims[0]).map(move |i| (i, j, k))))
        .filter(|&(i, j, k)| inside_liver(i, j, k))
        .count() as f64
        * 0.8
        * 0.7
        * 2.5
        / 1000.0;
    let ratio = label.foreground_ml() / want_ml;
    assert!(
        (0.9..1.1).contains(&ratio),
        "liver {} ml vs {want_ml} ml",
        label.foreground_ml()
    );
    // Mask and image agree: the labelled voxels are the 100 HU ones.
    let (sum, n) =
        p.hu.data()
            .iter()
            .zip(label.data())
            .filter(|(_, l)| **l != 0)
            .fold((0.0, 0), |(s, n), (v, _)| (s + f64::from(*v), n + 1));
    let mean = sum / f64::from(n);
    assert!(
        (85.0..=100.0).contains(&mean),
        "mean HU inside the liver {mean}"
    );
    // From the cache: the same.
    let again = load_case(&cases[0], &config, Some(&d.path().join("cache"))).unwrap();
    assert_eq!(again.prepared.label.unwrap().data(), label.data());
    assert_eq!(again.content_hash, loaded.content_hash);
}
