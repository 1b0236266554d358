//! DICOM series reading on synthetic series whose every geometric fact is known.

mod dicom_util;

use dicom_util::*;
use liverseg_io::dicom::{read_file, read_mask_series_onto, read_series};
use liverseg_io::{Error, ReadOptions};
use liverseg_volume::{DynVolume, Geometry};

fn i16_data(v: &DynVolume) -> Vec<i16> {
    match v {
        DynVolume::I16(x) => x.data().to_vec(),
        other => panic!("expected int16, got {}", other.dtype()),
    }
}

/// Stored value encoding (i, j, k) so any transposition or reordering shows.
fn code(i: usize, j: usize, k: usize) -> i32 {
    (i + 10 * j + 100 * k) as i32
}

#[test]
fn sorts_by_position_and_gets_axes_right() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.1", [4, 3, 5], -50.0, 2.5, code);
    // Instance numbers run against position: the reader must not trust them.
    for (k, s) in specs.iter_mut().enumerate() {
        s.instance_number = 100 - k as i32;
    }
    write_all(dir.path(), &specs);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    let g = out.volume.geometry();
    assert_eq!(g.dims(), [4, 3, 5]);
    // PixelSpacing [0.7, 0.8] = [between rows (y), between columns (x)].
    assert_eq!(g.spacing()[0], 0.8);
    assert_eq!(g.spacing()[1], 0.7);
    assert!((g.spacing()[2] - 2.5).abs() < 1e-9);
    assert_eq!(g.origin(), [-100.0, -120.0, -50.0]);
    assert_eq!(g.orientation_code(), "LPS");
    let data = i16_data(&out.volume);
    for k in 0..5 {
        for j in 0..3 {
            for i in 0..4 {
                assert_eq!(data[g.offset(i, j, k)] as i32, code(i, j, k) - 1024, "voxel {i},{j},{k}");
            }
        }
    }
    // World position of a voxel: column i moves along the IOP row direction (x).
    assert_eq!(g.index_to_world([1.0, 2.0, 3.0]), [-100.0 + 0.8, -120.0 + 1.4, -50.0 + 7.5]);
    assert_eq!(out.info.details["series"][0]["slices"], 5);
    assert!(!out.info.details.to_string().contains("Synthetic^Phantom"), "patient name leaked");
}

#[test]
fn descending_positions_and_feet_first_normal() {
    // Rows to the right (-x), columns posterior: normal = (-1,0,0)x(0,1,0) = (0,0,-1).
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.2", [2, 2, 4], 0.0, 3.0, code);
    for s in specs.iter_mut() {
        s.iop = Some([-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }
    write_all(dir.path(), &specs);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    let g = out.volume.geometry();
    // Sorted ascending along the normal (0,0,-1): the highest z comes first.
    assert_eq!(g.origin()[2], 9.0);
    assert_eq!(g.direction()[2][2], -1.0);
    assert_eq!(g.orientation_code(), "RPI");
    let data = i16_data(&out.volume);
    assert_eq!(data[g.offset(0, 0, 0)] as i32, code(0, 0, 3) - 1024);
}

#[test]
fn gantry_tilt_is_kept_as_shear_with_warning() {
    let dir = tempfile::tempdir().unwrap();
    let t = 15f64.to_radians();
    let mut specs = write_series(dir.path(), "1.2.3.3", [3, 3, 6], 0.0, 1.0, code);
    for (k, s) in specs.iter_mut().enumerate() {
        // Axial images; each next slice 2 mm higher and shifted 2*tan(t) mm in y.
        s.ipp = Some([0.0, 2.0 * t.tan() * k as f64, 2.0 * k as f64]);
    }
    write_all(dir.path(), &specs);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    let g = out.volume.geometry();
    assert!(!g.is_orthonormal());
    assert!(out.info.warnings.iter().any(|w| w.contains("gantry tilt of 15.00")), "{:?}", out.info.warnings);
    // Every slice's first voxel lands exactly on its ImagePositionPatient.
    for k in 0..6 {
        let w = g.index_to_world([0.0, 0.0, k as f64]);
        let p = specs[k].ipp.unwrap();
        for a in 0..3 {
            assert!((w[a] - p[a]).abs() < 1e-9, "slice {k}: {w:?} vs {p:?}");
        }
    }
    // Voxel volume uses the slice separation (2 mm), not the leaning step.
    assert!((g.voxel_volume_mm3() - 0.8 * 0.7 * 2.0).abs() < 1e-9);
    // The DICOM writers' source series is the reader's choice on the reader's
    // (sheared) grid, not a second derivation without the shear (issue 18).
    let source = &out.dicom.as_ref().expect("a DICOM read carries its series").series;
    assert_eq!(&source.grid, g);
    assert_eq!(source.slices.len(), 6);
    source.check_grid(g).unwrap();
}

#[test]
fn missing_slice_is_an_error_unless_irregular_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.4", [2, 2, 6], 0.0, 2.0, |_, _, k| 1024 + 10 * k as i32);
    specs.remove(3);
    write_all(dir.path(), &specs);
    let err = read_series(dir.path(), &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Invalid { .. }));
    assert!(msg.contains("1 missing slice"), "{msg}");
    let opts = ReadOptions { allow_irregular: true, ..Default::default() };
    let out = read_series(dir.path(), &opts).unwrap();
    assert_eq!(out.volume.geometry().dims(), [2, 2, 6]);
    assert!(out.info.warnings.iter().any(|w| w.contains("resampled")));
    // The missing slice (k=3, HU 30) is the mean of its neighbours (20 and 40).
    let v = out.volume.to_f32();
    assert_eq!(v.data()[v.geometry().offset(0, 0, 3)], 30.0);
}

#[test]
fn uneven_spacing_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.5", [2, 2, 5], 0.0, 2.0, |_, _, _| 1000);
    specs[4].ipp = Some([-100.0, -120.0, 8.5]);
    write_all(dir.path(), &specs);
    let msg = read_series(dir.path(), &ReadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("uneven slice spacing"), "{msg}");
}

#[test]
fn per_slice_rescale_and_float_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.6", [2, 2, 3], 0.0, 1.0, |_, _, _| 100);
    specs[1].slope = 2.0;
    specs[1].intercept = -1000.0;
    write_all(dir.path(), &specs);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    let d = i16_data(&out.volume);
    assert_eq!([d[0], d[4], d[8]], [-924, -800, -924]);

    let dir2 = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir2.path(), "1.2.3.7", [2, 2, 3], 0.0, 1.0, |_, _, _| 3);
    specs[2].slope = 0.5;
    write_all(dir2.path(), &specs);
    let out = read_series(dir2.path(), &ReadOptions::default()).unwrap();
    match &out.volume {
        DynVolume::F32(v) => assert_eq!(v.data()[8], 1.5 - 1024.0),
        other => panic!("fractional HU must be float32, got {}", other.dtype()),
    }
}

#[test]
fn bits_stored_sign_extension_and_padding() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.8", [2, 1, 2], 0.0, 1.0, |_, _, _| 0);
    for s in specs.iter_mut() {
        // 12-bit signed: 0xF800 carries garbage in the top 4 bits; 0x0800 is -2048.
        s.bits_stored = 12;
        s.intercept = 0.0;
        s.pixels = vec![0xF005u16 as i32, 0x0800];
    }
    write_all(dir.path(), &specs);
    let d = i16_data(&read_series(dir.path(), &ReadOptions::default()).unwrap().volume);
    assert_eq!(&d[..2], &[5, -2048]);

    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.9", [2, 1, 2], 0.0, 1.0, |_, _, _| 0);
    for s in specs.iter_mut() {
        s.signed = false;
        s.padding = Some(63536);
        s.pixels = vec![63536, 1064];
    }
    write_all(dir.path(), &specs);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    assert_eq!(&i16_data(&out.volume)[..2], &[-1024, 40]);
    assert_eq!(out.info.details["pixel_padding_voxels"], 2);
}

#[test]
fn localizers_screen_saves_and_junk_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let specs = write_series(dir.path(), "1.2.3.10", [2, 2, 3], 0.0, 1.0, code);
    write_all(dir.path(), &specs);
    let mut scout = SliceSpec::ct("1.2.3.10", 50, 8, 8, [0.0, 0.0, 0.0]);
    scout.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
    scout.iop = Some([1.0, 0.0, 0.0, 0.0, 0.0, -1.0]);
    write_slice(&dir.path().join("scout"), &scout);
    let mut sc = SliceSpec::ct("1.2.3.11", 51, 8, 8, [0.0, 0.0, 0.0]);
    sc.sop_class = SECONDARY_CAPTURE;
    write_slice(&dir.path().join("sub/dose_report"), &{
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        sc
    });
    std::fs::write(dir.path().join("notes.txt"), "not dicom").unwrap();
    std::fs::write(dir.path().join("DICOMDIR"), b"whatever").unwrap();
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    assert_eq!(out.volume.geometry().dims(), [2, 2, 3]);
    let skipped = &out.info.details["skipped"];
    assert_eq!(skipped["localizers"], 1);
    assert_eq!(skipped["secondary_captures"], 1);
    assert_eq!(skipped["not_dicom"], 1);
}

/// Issue 18 item 3: one description of a read for `segment`, `review` and the
/// node. A scout and a screen save beside the CT: the input block names the
/// series read, lists the others by kind, and carries the reader's warnings
/// together with the series' own (the SEG's made-up StudyInstanceUID).
#[test]
fn input_info_describes_the_series_read_and_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // These synthetic files carry no StudyInstanceUID (as after some anonymisers).
    let specs = write_series(dir.path(), "1.2.3.14", [2, 2, 3], 0.0, 1.0, code);
    write_all(dir.path(), &specs);
    let mut scout = SliceSpec::ct("1.2.3.15", 50, 8, 8, [0.0, 0.0, 0.0]);
    scout.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
    scout.iop = Some([1.0, 0.0, 0.0, 0.0, 0.0, -1.0]);
    write_slice(&dir.path().join("scout"), &scout);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    let info = liverseg_io::InputInfo::from_read(&out);
    assert_eq!(info.format, "dicom-series");
    let series = info.series.as_ref().unwrap();
    assert_eq!((series.series_instance_uid.as_str(), series.images), ("1.2.3.14", 3));
    let others = info.other_series.as_ref().unwrap();
    assert_eq!(others.kinds.get("localizer"), Some(&1), "{others:?}");
    assert!(info.warnings.iter().any(|w| w.contains("no StudyInstanceUID")), "{:?}", info.warnings);
    let lines = info.lines();
    assert!(lines[0].starts_with("read DICOM series 1.2.3.14 ") && lines[0].ends_with("(3 images; also found: 1 localizer)"), "{lines:?}");
    assert_eq!(lines.len(), 1 + info.warnings.len());
    // Not DICOM: the format and the reader's warnings only.
    let nii = dir.path().join("ct.nii");
    liverseg_io::write_image(&nii, &out.volume).unwrap();
    let info = liverseg_io::InputInfo::from_read(&liverseg_io::read_image(&nii, &ReadOptions::default()).unwrap());
    assert_eq!((info.format.as_str(), info.series.is_none(), info.other_series.is_none()), ("nifti1", true, true));
}

#[test]
fn phases_in_one_series_split_and_choice() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = write_series(dir.path(), "1.2.3.12", [2, 2, 4], 0.0, 1.0, |_, _, _| 1000);
    let mut b = write_series(dir.path(), "1.2.3.12", [2, 2, 4], 0.0, 1.0, |_, _, _| 1200);
    for (k, s) in b.iter_mut().enumerate() {
        s.acquisition_number = Some(2);
        s.sop_instance = format!("1.2.3.12.2.{k}");
    }
    let mut other = write_series(dir.path(), "1.2.3.13", [2, 2, 7], 0.0, 1.0, |_, _, _| 0);
    for s in other.iter_mut() {
        s.modality = "MR";
        s.series_number = 9;
    }
    a.extend(b);
    write_all(&dir.path().join("ct"), &a);
    write_all(&dir.path().join("mr"), &other);
    let out = read_series(dir.path(), &ReadOptions::default()).unwrap();
    // Largest CT wins over the larger MR; the two phases are separate candidates.
    let series = out.info.details["series"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(out.volume.geometry().dims()[2], 4);
    assert_eq!(out.info.details["chosen"], 0);
    assert_eq!(i16_data(&out.volume)[0], -24);
    assert!(series[1]["phase"].as_str().unwrap().contains("acquisition 2"));
    let second = read_series(dir.path(), &ReadOptions { series: Some("1".into()), ..Default::default() }).unwrap();
    assert_eq!(i16_data(&second.volume)[0], 176);
    let mr = read_series(dir.path(), &ReadOptions { series: Some("1.2.3.13".into()), ..Default::default() }).unwrap();
    assert_eq!(mr.volume.geometry().dims()[2], 7);
    for bad in ["1.2.3.12", "7", "nope"] {
        let e = read_series(dir.path(), &ReadOptions { series: Some(bad.into()), ..Default::default() }).unwrap_err();
        assert!(matches!(e, Error::Ambiguous { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("[2] 1.2.3.13"), "{e}");
    }
}

#[test]
fn clear_errors_for_broken_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.14", [2, 2, 3], 0.0, 1.0, code);
    specs[1].cols = 3;
    specs[1].pixels = vec![0; 6];
    write_all(dir.path(), &specs);
    let msg = read_series(dir.path(), &ReadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("image sizes differ"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let mut specs = write_series(dir.path(), "1.2.3.15", [2, 2, 3], 0.0, 1.0, code);
    for s in specs.iter_mut() {
        s.pixel_spacing = None;
    }
    write_all(dir.path(), &specs);
    let msg = read_series(dir.path(), &ReadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("missing PixelSpacing"), "{msg}");

    // Truncated pixel data in one file: the error names that file.
    let dir = tempfile::tempdir().unwrap();
    let specs = write_series(dir.path(), "1.2.3.16", [64, 64, 3], 0.0, 1.0, code);
    write_all(dir.path(), &specs);
    let victim = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 3000]).unwrap();
    let e = read_series(dir.path(), &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains(victim.file_name().unwrap().to_str().unwrap()), "{e}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("a.txt"), "x").unwrap();
    assert!(read_series(empty.path(), &ReadOptions::default()).unwrap_err().to_string().contains("no DICOM image series"));
}

#[test]
fn single_file_reads_as_one_slice() {
    let dir = tempfile::tempdir().unwrap();
    let specs = write_series(dir.path(), "1.2.3.17", [3, 2, 1], 5.0, 1.0, code);
    let p = dir.path().join("one.dcm");
    write_slice(&p, &specs[0]);
    let out = read_file(&p, &ReadOptions::default()).unwrap();
    assert_eq!(out.volume.geometry().dims(), [3, 2, 1]);
    assert_eq!(out.volume.geometry().origin(), [-100.0, -120.0, 5.0]);
    assert_eq!(i16_data(&out.volume)[4], (code(1, 1, 0) - 1024) as i16);
    // Through the format-sniffing entry point too.
    let via = liverseg_io::read_image(&p, &ReadOptions::default()).unwrap();
    assert_eq!(via.volume, out.volume);
}

#[test]
fn mask_series_maps_onto_ct_grid_by_position() {
    let dir = tempfile::tempdir().unwrap();
    // Mask: 4x4x3 slices at z = 10, 12, 14, foreground in slice z=12 only.
    let mut specs = write_series(dir.path(), "1.2.3.18", [4, 4, 3], 10.0, 2.0, |i, _, k| if k == 1 && i >= 2 { 255 } else { 0 });
    for s in specs.iter_mut() {
        s.intercept = 0.0;
        s.modality = "OT";
        s.sop_class = SECONDARY_CAPTURE;
    }
    write_all(dir.path(), &specs);
    // CT grid: same plane, 1 mm slices from z = 9 to 15.
    let ct = Geometry::new([4, 4, 7], [0.8, 0.7, 1.0], [-100.0, -120.0, 9.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let m = read_mask_series_onto(dir.path(), &ct).unwrap();
    let on: Vec<usize> = (0..7).filter(|&k| m.data()[ct.offset(3, 0, k)] == 1).collect();
    // Nearest mask slice: CT z=12 hits it exactly; z=11 and z=13 lie halfway and
    // round up (to the mask slices at 12 and 14 respectively).
    assert_eq!(on, vec![2, 3]);
    assert_eq!(m.data()[ct.offset(1, 0, 3)], 0);
    // A grid far away does not overlap.
    let far = Geometry::new([4, 4, 2], [0.8, 0.7, 1.0], [-100.0, -120.0, 500.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    assert!(read_mask_series_onto(dir.path(), &far).unwrap_err().to_string().contains("does not overlap"));
}
