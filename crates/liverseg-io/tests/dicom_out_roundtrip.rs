//! DICOM-SEG and RTSTRUCT written from masks and read back: SEG exactly (through
//! the SEG reader), RTSTRUCT with DSC >= 0.99 (in practice exact: marching-squares
//! vertices lie half a pixel from every centre), on a phantom with holes and
//! islands, on the shared real liver masks, and on a real CT series' grid.
use dicom_dictionary_std::tags;
use liverseg_io::dicom::rtstruct::{read_rtstruct_onto, write_rtstruct, RoiChoice, RtStructWriteOptions};
use liverseg_io::dicom::seg::{read_seg, SegmentChoice};
use liverseg_io::dicom::seg_write::{write_seg, AlgorithmType, SegWriteOptions, SourceSeries};
use liverseg_io::{read_image, Error, ReadOptions};
use liverseg_volume::{Geometry, Mask};
use std::path::Path;

/// The series the reader chooses in `folder` (headers only, no pixels
/// decoded), as the DICOM writers get it from a read.
fn source_of(folder: &std::path::Path, series: Option<&str>) -> liverseg_io::Result<SourceSeries> {
    let options = liverseg_io::ReadOptions { series: series.map(str::to_string), ..Default::default() };
    Ok(liverseg_io::dicom::select_series(folder, &options)?.series)
}

fn binarise(m: &Mask) -> Mask {
    m.map(|&v| u8::from(v != 0))
}

/// SEG and RTSTRUCT round trip of `mask` on `source`; returns the RTSTRUCT DSC.
fn roundtrip(dir: &Path, name: &str, mask: &Mask, source: &SourceSeries) -> f64 {
    let want = binarise(mask);
    let seg = dir.join(format!("{name}.seg.dcm"));
    write_seg(&seg, mask, source, &SegWriteOptions::default()).unwrap();
    let back = read_seg(&seg, Some(mask.geometry()), SegmentChoice::Auto).unwrap();
    assert_eq!(back.chosen.label, "Liver");
    assert!(back.mask.data() == want.data(), "{name}: SEG round trip is not exact");
    // The SEG also places itself from its own frames (sparse frames, own grid):
    // every foreground voxel maps to the same world position.
    let rt = dir.join(format!("{name}.rtstruct.dcm"));
    write_rtstruct(&rt, mask, source, &RtStructWriteOptions::default()).unwrap();
    let back = read_rtstruct_onto(&rt, RoiChoice::Auto, mask.geometry()).unwrap();
    // An empty mask round-trips to an empty mask: agreement.
    liverseg_volume::dice(back.data(), want.data()).unwrap_or(1.0)
}

fn synthetic_mask(g: &Geometry) -> Mask {
    // Two islands, one with a hole, plus a diagonal chain (saddles).
    let [nx, ny, _] = g.dims();
    Mask::from_fn(g.clone(), |[i, j, k]| {
        let (x, y) = (i as f64 / nx as f64, j as f64 / ny as f64);
        let r2 = (x - 0.35).powi(2) + (y - 0.5).powi(2);
        let ring = r2 < 0.04 && r2 > 0.004 * (1 + k % 3) as f64;
        let island = (x - 0.75).abs() < 0.08 && (y - 0.3).abs() < 0.05 + 0.01 * k as f64;
        let chain = i == j && i % 2 == 0 && i < nx / 4;
        u8::from(ring || island || chain)
    })
}

#[test]
fn phantom_with_holes_and_islands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = liverseg_phantom::PhantomConfig { dims: [96, 80, 24], spacing: [3.6, 3.6, 6.0], lesions: 2, noise_hu: 0.0, ..Default::default() };
    let ph = liverseg_phantom::generate(&cfg);
    // Liver minus its lesions gives holes; a disjoint blob gives islands.
    let mut liver = ph.liver.clone();
    let extra = synthetic_mask(liver.geometry());
    for (v, &e) in liver.data_mut().iter_mut().zip(extra.data()) {
        *v ^= e;
    }
    let source = SourceSeries::synthetic(liver.geometry(), Some("1.2.826.0.1.3680043.10.999"));
    let d = roundtrip(dir.path(), "phantom", &liver, &source);
    assert!(d >= 0.99, "phantom RTSTRUCT DSC {d}");
    // Marching squares contours are exact on the pixel-centre rule.
    assert_eq!(d, 1.0, "phantom RTSTRUCT DSC {d}");
}

#[test]
fn oblique_and_mirrored_grids() {
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (0.3f64.cos(), 0.3f64.sin());
    // Rows along a rotated x, columns mirrored, slices going down.
    let direction = [[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]];
    let g = Geometry::new([40, 30, 7], [0.7, 0.9, 2.5], [-100.0, 50.0, 300.0], direction).unwrap();
    let mask = synthetic_mask(&g);
    let source = SourceSeries::synthetic(&g, None);
    assert!(source.geometry().unwrap().same_grid(&g));
    let d = roundtrip(dir.path(), "oblique", &mask, &source);
    assert_eq!(d, 1.0);
}

#[test]
fn empty_mask_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::identity([9, 7, 3], [1.0, 1.0, 2.0]).unwrap();
    let empty = Mask::filled(g.clone(), 0);
    let source = SourceSeries::synthetic(&g, None);
    assert_eq!(roundtrip(dir.path(), "empty", &empty, &source), 1.0);
    // MANUAL: no algorithm name; UID root honoured.
    let p = dir.path().join("manual.dcm");
    let opts = SegWriteOptions { algorithm: AlgorithmType::Manual, uid_root: Some("1.2.826.0.1.3680043.10.999".into()), ..Default::default() };
    write_seg(&p, &synthetic_mask(&g), &source, &opts).unwrap();
    let obj = dicom_object::open_file(&p).unwrap();
    let uid = obj.element(tags::SOP_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_string();
    assert!(uid.starts_with("1.2.826.0.1.3680043.10.999."), "{uid}");
    let seg = read_seg(&p, Some(&g), SegmentChoice::Auto).unwrap();
    assert_eq!(seg.chosen.algorithm_type.as_deref(), Some("MANUAL"));
    // Bad UID root: clear error, nothing written.
    let bad = dir.path().join("bad.dcm");
    let e = write_seg(&bad, &empty, &source, &SegWriteOptions { uid_root: Some("1.02.x".into()), ..Default::default() }).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("UID root"), "{e}");
    assert!(!bad.exists());
}

#[test]
fn mask_off_the_ct_grid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::identity([9, 7, 3], [1.0, 1.0, 2.0]).unwrap();
    let source = SourceSeries::synthetic(&g, None);
    let p = dir.path().join("x.dcm");
    for other in [
        Geometry::identity([9, 7, 4], [1.0, 1.0, 2.0]).unwrap(),
        Geometry::identity([9, 7, 3], [1.0, 1.1, 2.0]).unwrap(),
        Geometry::new([9, 7, 3], [1.0, 1.0, 2.0], [0.0, 0.0, 1.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap(),
    ] {
        let m = Mask::filled(other, 1);
        let e = write_seg(&p, &m, &source, &SegWriteOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("CT grid"), "{e}");
        let e = write_rtstruct(&p, &m, &source, &RtStructWriteOptions::default()).unwrap_err();
        assert!(e.to_string().contains("CT grid"), "{e}");
        assert!(!p.exists());
    }
}

#[test]
fn rtstruct_on_another_grid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::identity([9, 7, 3], [1.0, 1.0, 2.0]).unwrap();
    let source = SourceSeries::synthetic(&g, None);
    let p = dir.path().join("rt.dcm");
    write_rtstruct(&p, &synthetic_mask(&g), &source, &RtStructWriteOptions::default()).unwrap();
    let shifted = Geometry::new([9, 7, 3], [1.0, 1.0, 2.0], [0.0, 0.0, 1.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let e = read_rtstruct_onto(&p, RoiChoice::Auto, &shifted).unwrap_err();
    assert!(e.to_string().contains("not on a slice"), "{e}");
    let e = read_rtstruct_onto(&p, RoiChoice::Name("spleen".into()), &g).unwrap_err();
    assert!(e.to_string().contains("Liver"), "{e}");
    assert_eq!(read_rtstruct_onto(&p, RoiChoice::Number(1), &g).unwrap().count_foreground(), synthetic_mask(&g).count_foreground());
}

#[test]
fn shared_real_liver_masks() {
    let Some(cases) = liverseg_testdata::require_shared!("data/cases") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&cases).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    let mut done = 0;
    for case in names {
        let p = case.join("liver.nii.gz");
        if !p.exists() {
            continue;
        }
        let out = read_image(&p, &ReadOptions::default()).unwrap();
        let mask = out.volume.to_mask(|v| v != 0.0);
        let g = mask.geometry().clone();
        if !g.is_orthonormal() {
            eprintln!("skip {}: sheared grid cannot be a DICOM series", case.display());
            continue;
        }
        let source = SourceSeries::synthetic(&g, None);
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let t = std::time::Instant::now();
        let d = roundtrip(dir.path(), &name, &mask, &source);
        eprintln!("{name}: dims {:?}, {} voxels, RTSTRUCT DSC {d:.6} ({:.1} s)", g.dims(), mask.count_foreground(), t.elapsed().as_secs_f64());
        assert!(d >= 0.99, "{name}: RTSTRUCT DSC {d}");
        done += 1;
    }
    assert!(done > 0, "no liver mask found under {}", cases.display());
}

#[test]
fn real_ct_series_grid() {
    let Some(folder) = liverseg_testdata::require_shared!("data/dicom/totalseg-example-20slices") else { return };
    let source = source_of(&folder, None).unwrap();
    assert_eq!(source.slices.len(), 20);
    // Slices sorted along the normal, UIDs distinct.
    let n = source.normal();
    let z: Vec<f64> = source.slices.iter().map(|s| (0..3).map(|a| s.position[a] * n[a]).sum()).collect();
    assert!(z.windows(2).all(|w| w[1] > w[0]), "{z:?}");
    let mut uids: Vec<_> = source.slices.iter().map(|s| s.sop_instance_uid.clone()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 20);
    // Grid from the headers, checked against the first file's position directly.
    let g = source.geometry().unwrap();
    assert_eq!(g.dims(), [source.columns, source.rows, 20]);
    for (k, s) in source.slices.iter().enumerate() {
        let p = g.index_to_world([0.0, 0.0, k as f64]);
        assert!((0..3).all(|a| (p[a] - s.position[a]).abs() < 0.05), "slice {k}: {p:?} vs {:?}", s.position);
    }
    let mask = synthetic_mask(&g);
    let dir = tempfile::tempdir().unwrap();
    let d = roundtrip(dir.path(), "totalseg", &mask, &source);
    assert_eq!(d, 1.0);
    // The SEG copies the study and frame of reference, and each frame references
    // the CT instance at its position.
    let seg = dicom_object::open_file(dir.path().join("totalseg.seg.dcm")).unwrap();
    let get = |t| seg.element(t).unwrap().to_str().unwrap().trim_end_matches('\0').to_string();
    assert_eq!(get(tags::STUDY_INSTANCE_UID), source.study_instance_uid);
    assert_eq!(get(tags::FRAME_OF_REFERENCE_UID), source.frame_of_reference_uid);
    assert_ne!(get(tags::SERIES_INSTANCE_UID), source.series_instance_uid);
    let frames = seg.element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap();
    for fr in frames {
        let pos = fr.element(tags::PLANE_POSITION_SEQUENCE).unwrap().items().unwrap()[0].element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap();
        let src = fr.element(tags::DERIVATION_IMAGE_SEQUENCE).unwrap().items().unwrap()[0].element(tags::SOURCE_IMAGE_SEQUENCE).unwrap().items().unwrap()[0]
            .element(tags::REFERENCED_SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string();
        let sl = source.slices.iter().find(|s| s.sop_instance_uid == src).expect("frame references a CT instance");
        assert!((0..3).all(|a| (sl.position[a] - pos[a]).abs() < 1e-3), "frame position {pos:?} vs CT {:?}", sl.position);
    }
    // A series UID that is not there: clear error.
    assert!(source_of(&folder, Some("1.2.3")).is_err());
}

#[test]
fn damaged_rtstruct_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::identity([12, 10, 3], [1.0, 1.0, 2.0]).unwrap();
    let source = SourceSeries::synthetic(&g, None);
    let p = dir.path().join("rt.dcm");
    write_rtstruct(&p, &synthetic_mask(&g), &source, &RtStructWriteOptions::default()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let mut state = 99u64;
    let q = dir.path().join("damaged.dcm");
    let mut errors = 0;
    for _ in 0..120 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = 132 + (state >> 33) as usize % (b.len() - 132);
            b[at] = (state >> 17) as u8;
        }
        std::fs::write(&q, &b).unwrap();
        // Either a mask on the grid or a clear error; a panic fails the test.
        // (A VR byte damaged into an unknown VR still makes dicom-object try a
        // 4-byte length of up to ~1 GB before failing: slow, but an error.)
        match read_rtstruct_onto(&q, RoiChoice::Auto, &g) {
            Ok(m) => assert_eq!(m.dims(), g.dims()),
            Err(_) => errors += 1,
        }
    }
    assert!(errors > 0, "no damaged file was refused");
    let junk = dir.path().join("junk.dcm");
    std::fs::write(&junk, b"not dicom").unwrap();
    assert!(read_rtstruct_onto(&junk, RoiChoice::Auto, &g).is_err());
    // A SEG is not an RTSTRUCT.
    let seg = dir.path().join("seg.dcm");
    write_seg(&seg, &synthetic_mask(&g), &source, &SegWriteOptions::default()).unwrap();
    assert!(matches!(read_rtstruct_onto(&seg, RoiChoice::Auto, &g), Err(Error::Unsupported { .. })));
}

/// Issue 18, finding 5: highdicom indexes a SEG by source instance only when
/// every frame's source image reference says its spatial locations are
/// preserved (the SEG pixel (i, j) is the CT pixel (i, j)).
#[test]
fn seg_source_references_preserve_spatial_locations() {
    let g = Geometry::new([16, 12, 4], [0.8, 0.8, 2.5], [-10.0, -5.0, 40.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let source = SourceSeries::synthetic(&g, None);
    let mask = Mask::from_fn(g.clone(), |[i, j, k]| u8::from(k != 2 && (4..10).contains(&i) && (3..8).contains(&j)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.dcm");
    write_seg(&path, &mask, &source, &SegWriteOptions::default()).unwrap();
    let seg = dicom_object::open_file(&path).unwrap();
    let frames = seg.element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap();
    assert_eq!(frames.len(), 3);
    for (f, fr) in frames.iter().enumerate() {
        let derivation = &fr.element(tags::DERIVATION_IMAGE_SEQUENCE).unwrap().items().unwrap()[0];
        let src = &derivation.element(tags::SOURCE_IMAGE_SEQUENCE).unwrap().items().unwrap()[0];
        let v = src
            .element(tags::SPATIAL_LOCATIONS_PRESERVED)
            .unwrap_or_else(|_| panic!("frame {}: no SpatialLocationsPreserved in the source image reference", f + 1))
            .to_str()
            .unwrap();
        assert_eq!(v.trim_end_matches(['\0', ' ']), "YES", "frame {}", f + 1);
    }
}
