//! SourceSeries from CT headers written here: slice order along the normal (not
//! file order), series choice (the image reader's rule: one rule for the volume
//! and the DICOM outputs), blank UIDs of anonymised files, no patient data in
//! Debug output.
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use liverseg_io::dicom::seg_write::SourceSeries;
use liverseg_io::Error;
use std::path::Path;

/// The series the reader chooses in `folder` (headers only, no pixels
/// decoded), as the DICOM writers get it from a read.
fn source_of(folder: &std::path::Path, series: Option<&str>) -> liverseg_io::Result<SourceSeries> {
    let options = liverseg_io::ReadOptions { series: series.map(str::to_string), ..Default::default() };
    Ok(liverseg_io::dicom::select_series(folder, &options)?.series)
}

fn ct(dir: &Path, name: &str, series: &str, sop: &str, z: f64, blank_uids: bool) {
    let mut obj = InMemDicomObject::new_empty();
    let put = |obj: &mut InMemDicomObject, tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(&mut obj, tags::SOP_CLASS_UID, VR::UI, if blank_uids { "" } else { "1.2.840.10008.5.1.4.1.1.2" });
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, if blank_uids { "" } else { sop });
    put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, if blank_uids { "" } else { "1.2.3.4" });
    put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, series);
    put(&mut obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.3.5");
    put(&mut obj, tags::PATIENT_NAME, VR::PN, "Secret^Patient");
    put(&mut obj, tags::PATIENT_ID, VR::LO, "ID-12345");
    obj.put(DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, PrimitiveValue::Strs(["-10".into(), "20".into(), format!("{z}")].into_iter().collect())));
    // Rows along +x, columns along -y: the normal is -z, so slices run head-to-feet.
    obj.put(DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, PrimitiveValue::Strs(["1", "0", "0", "0", "-1", "0"].iter().map(|s| s.to_string()).collect())));
    obj.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, PrimitiveValue::Strs(["0.5".to_string(), "0.75".to_string()].into_iter().collect())));
    obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(4u16)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(6u16)));
    let meta = FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2").media_storage_sop_instance_uid(sop);
    // Exact meta: with_meta would copy the blanked data-set UIDs into it.
    obj.with_exact_meta(meta.build().unwrap()).write_to_file(dir.join(name)).unwrap();
}

#[test]
fn slices_sorted_along_the_normal() {
    let dir = tempfile::tempdir().unwrap();
    for (n, z) in [(1, 5.0), (2, -5.0), (3, 0.0)] {
        ct(dir.path(), &format!("f{n}.dcm"), "1.2.3.6", &format!("1.2.3.7.{n}"), z, false);
    }
    std::fs::write(dir.path().join("README"), "not dicom").unwrap();
    let s = source_of(dir.path(), None).unwrap();
    // Normal = row x col = x × (-y) = -z: increasing index goes to smaller z.
    let zs: Vec<f64> = s.slices.iter().map(|sl| sl.position[2]).collect();
    assert_eq!(zs, [5.0, 0.0, -5.0]);
    assert_eq!(s.slices[0].sop_instance_uid, "1.2.3.7.1");
    let g = s.geometry().unwrap();
    assert_eq!(g.dims(), [6, 4, 3]);
    assert_eq!(g.spacing(), [0.75, 0.5, 5.0]);
    let p = g.index_to_world([1.0, 1.0, 2.0]);
    assert!((p[0] - -9.25).abs() < 1e-9 && (p[1] - 19.5).abs() < 1e-9 && (p[2] - -5.0).abs() < 1e-9, "{p:?}");
    assert!(s.warnings.is_empty());
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("Secret") && !dbg.contains("12345"), "patient data in Debug: {dbg}");
    assert_eq!(s.patient_study.patient_name, "Secret^Patient");
}

#[test]
fn series_choice_and_blank_uids() {
    let dir = tempfile::tempdir().unwrap();
    ct(dir.path(), "a1.dcm", "1.2.3.6", "1.2.3.7.1", 0.0, false);
    ct(dir.path(), "a2.dcm", "1.2.3.6", "1.2.3.7.2", 1.0, false);
    ct(dir.path(), "b1.dcm", "1.2.3.8", "1.2.3.9.1", 0.0, false);
    // No series named: the reader's choice (the largest stack), and a warning
    // that says there were others.
    let s = source_of(dir.path(), None).unwrap();
    assert_eq!((s.series_instance_uid.as_str(), s.slices.len()), ("1.2.3.6", 2));
    assert!(s.warnings.iter().any(|w| w.contains("2 candidate series")), "{:?}", s.warnings);
    assert_eq!(source_of(dir.path(), Some("1.2.3.8")).unwrap().slices.len(), 1);
    let e = source_of(dir.path(), Some("9.9")).unwrap_err();
    assert!(matches!(e, Error::Ambiguous { .. }) && e.to_string().contains("1.2.3.8"), "{e}");
    assert_eq!(source_of(dir.path(), Some("1.2.3.6")).unwrap().slices.len(), 2);

    // Anonymised: SOP UIDs only in the file meta, study UID blank.
    let dir = tempfile::tempdir().unwrap();
    ct(dir.path(), "x1.dcm", "", "1.2.3.7.1", 0.0, true);
    ct(dir.path(), "x2.dcm", "", "1.2.3.7.2", 2.0, true);
    let s = source_of(dir.path(), None).unwrap();
    assert_eq!(s.slices[1].sop_instance_uid, "1.2.3.7.1");
    assert_eq!(s.slices[0].sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    assert!(s.study_instance_uid.starts_with("2.25.") && s.series_instance_uid.starts_with("2.25."));
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);

    // Two images at one position: the reader splits them into two repeats by
    // acquisition order and reads one, saying so; the source series is that one.
    let dir = tempfile::tempdir().unwrap();
    ct(dir.path(), "d1.dcm", "1.2.3.6", "1.2.3.7.1", 0.0, false);
    ct(dir.path(), "d2.dcm", "1.2.3.6", "1.2.3.7.2", 0.0, false);
    let s = source_of(dir.path(), None).unwrap();
    assert_eq!(s.slices.len(), 1);
    assert!(s.warnings.iter().any(|w| w.contains("2 phases of the same size") && w.contains("[0] repeat 1")), "{:?}", s.warnings);
    // No DICOM at all.
    let dir = tempfile::tempdir().unwrap();
    assert!(source_of(dir.path(), None).is_err());
}
