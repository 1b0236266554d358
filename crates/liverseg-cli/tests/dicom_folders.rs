//! Issue 18: clinical DICOM folders hold more than the CT series. These tests
//! build such folders in a temp dir from the shared 20-slice series (no DICOM
//! files in the repository) and run `info` and `segment` with every DICOM
//! output on them, checking that the SEG and RTSTRUCT refer to the series the
//! reader chose and pass dciodvfy (dicom3tools) when it is installed.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn liverseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg")).args(args).output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Copy the shared series into `dst`; returns the SOP Instance UIDs of its
/// images (from the file meta: this anonymised series blanks them in the data set).
fn copy_series(src: &Path, dst: &Path) -> BTreeSet<String> {
    std::fs::create_dir_all(dst).unwrap();
    let mut uids = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        let obj = dicom_object::open_file(&p).unwrap();
        uids.insert(obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string());
    }
    uids
}

const SCOUT_SOP_INSTANCE: &str = "2.25.181180001";

/// A coronal localizer (topogram) of the same study and frame of reference as
/// the CT, in a series of its own, as scanners store it beside the axial series.
fn add_localizer(series_dir: &Path, dst: &Path) {
    let first = std::fs::read_dir(series_dir).unwrap().next().unwrap().unwrap().path();
    let ct = dicom_object::open_file(&first).unwrap();
    let copy = |tag| ct.element(tag).ok().and_then(|e| e.to_str().ok()).map(|v| v.trim_end_matches('\0').to_string()).unwrap_or_default();
    let mut obj = InMemDicomObject::new_empty();
    let put = |obj: &mut InMemDicomObject, tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(&mut obj, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, SCOUT_SOP_INSTANCE);
    put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, &copy(tags::STUDY_INSTANCE_UID));
    put(&mut obj, tags::STUDY_DATE, VR::DA, &copy(tags::STUDY_DATE));
    put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, "2.25.181180002");
    put(&mut obj, tags::SERIES_NUMBER, VR::IS, "1");
    put(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Topogram 0.6 T20f");
    put(&mut obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, &copy(tags::FRAME_OF_REFERENCE_UID));
    put(&mut obj, tags::MODALITY, VR::CS, "CT");
    obj.put(DataElement::new(tags::IMAGE_TYPE, VR::CS, PrimitiveValue::Strs(["ORIGINAL", "PRIMARY", "LOCALIZER"].iter().map(|v| v.to_string()).collect())));
    obj.put(DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, PrimitiveValue::Strs(["1", "0", "0", "0", "0", "-1"].iter().map(|v| v.to_string()).collect())));
    obj.put(DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, PrimitiveValue::Strs(["-250", "0", "-500"].iter().map(|v| v.to_string()).collect())));
    obj.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, PrimitiveValue::Strs(["8", "8"].iter().map(|v| v.to_string()).collect())));
    obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(64u16)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(64u16)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)));
    put(&mut obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16)));
    put(&mut obj, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
    put(&mut obj, tags::RESCALE_SLOPE, VR::DS, "1");
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![1000u16; 64 * 64].into())));
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax("1.2.840.10008.1.2.1")
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
        .media_storage_sop_instance_uid(SCOUT_SOP_INSTANCE);
    obj.with_exact_meta(meta.build().unwrap()).write_to_file(dst.join("scout.dcm")).unwrap();
}

/// dciodvfy's output on `file`, or `None` (with a SKIP line) when it is not installed.
fn dciodvfy(test: &str, file: &Path) -> Option<String> {
    if Command::new("dciodvfy").arg("-h").output().is_err() {
        eprintln!("SKIP {test} (dciodvfy part): dciodvfy not installed (Debian package dicom3tools)");
        return None;
    }
    let o = Command::new("dciodvfy").arg("-new").arg(file).output().unwrap();
    Some(text(&o))
}

fn assert_dciodvfy_clean(test: &str, file: &Path) {
    let Some(out) = dciodvfy(test, file) else { return };
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    eprintln!("dciodvfy {name}:\n{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy errors on {name}:\n{}", errors.join("\n"));
}

/// Every SOP Instance UID a SEG or RTSTRUCT refers to (any depth).
fn referenced_instances(file: &Path) -> BTreeSet<String> {
    fn walk(obj: &InMemDicomObject, out: &mut BTreeSet<String>) {
        for e in obj {
            if e.header().tag == tags::REFERENCED_SOP_INSTANCE_UID {
                out.insert(e.to_str().unwrap().trim_end_matches('\0').to_string());
            }
            if let Some(items) = e.items() {
                for i in items {
                    walk(i, out);
                }
            }
        }
    }
    let obj = dicom_object::open_file(file).unwrap();
    let mut out = BTreeSet::new();
    walk(&obj, &mut out);
    out
}

fn shared_series() -> Option<PathBuf> {
    liverseg_testdata::shared_path("dicom_folders", "data/dicom/totalseg-example-20slices")
}

/// Finding 1: a scout beside the CT made `segment --format dicom-seg,rtstruct`
/// fail after the whole segmentation ("2 image series in this folder"),
/// because the writers scanned the folder again with rules of their own.
#[test]
fn scout_beside_the_ct_gives_seg_and_rtstruct_of_the_ct() {
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    let ct_uids = copy_series(&series, &folder.join("ct"));
    add_localizer(&series, &folder);

    let o = liverseg(&["info", s(&folder)]);
    assert!(o.status.success(), "{}", text(&o));

    let out = dir.path().join("out");
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "nifti,dicom-seg,rtstruct"]);
    assert!(o.status.success(), "{}", text(&o));
    for name in ["seg.dcm", "rtstruct.dcm"] {
        let file = out.join(name);
        let mut refs = referenced_instances(&file);
        // The RTSTRUCT's RT Referenced Study item names the study this way too.
        let study = dicom_object::open_file(&file).unwrap().element(tags::STUDY_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_string();
        refs.remove(&study);
        assert!(!refs.contains(SCOUT_SOP_INSTANCE), "{name} refers to the scout");
        // The SEG lists every CT instance in its Referenced Series Sequence, the
        // RTSTRUCT in its Contour Image Sequence: all 20, nothing else.
        assert_eq!(refs, ct_uids, "{name}: referenced instances");
        assert_dciodvfy_clean("scout_beside_the_ct_gives_seg_and_rtstruct_of_the_ct", &file);
    }
}

/// Findings 3 and 4: the reader's warnings and choice of series reach
/// report.json and the console, and the quality flags reach the PACS in the
/// SEG's and RTSTRUCT's descriptions. The shared 20-slice series is far shorter
/// than a liver: `segment` flags it (short_scan, and empty_result with the
/// built-in model), and the anonymised files lack Study/Series UIDs, which the
/// reader warns about.
#[test]
fn flags_and_reader_warnings_travel_with_the_result() {
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    copy_series(&series, &folder.join("ct"));
    add_localizer(&series, &folder);
    let out = dir.path().join("out");
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "dicom-seg,rtstruct,overview"]);
    assert!(o.status.success(), "{}", text(&o));
    let console = String::from_utf8_lossy(&o.stdout).to_string();

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let input = &report["input"];
    assert_eq!(input["format"], "dicom-series", "{input}");
    assert_eq!(input["series"]["images"], 20, "{input}");
    assert_eq!(input["series"]["series_description"], "CT Body 3.0", "{input}");
    // The anonymised series has no SeriesInstanceUID: the report says so rather
    // than showing the one made up for the SEG (a warning explains).
    assert_eq!(input["series"]["series_instance_uid"], "", "{input}");
    assert_eq!(input["other_series"]["count"], 1, "{input}");
    assert_eq!(input["other_series"]["kinds"]["localizer"], 1, "{input}");
    assert_eq!(input["other_series"]["series"][0]["series_instance_uid"], "2.25.181180002", "{input}");
    let warnings: Vec<&str> = input["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(warnings.iter().any(|w| w.contains("no StudyInstanceUID")), "{warnings:?}");
    // The console summary prints every reader warning, and what was read.
    for w in &warnings {
        assert!(console.contains(w), "warning {w:?} not on the console:\n{console}");
    }
    assert!(console.contains("1 localizer"), "{console}");

    let flags: Vec<String> = report["flags"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    assert!(flags.iter().any(|f| f == "short_scan"), "{flags:?}");
    let ml = format!("liver {:.0} ml", report["liver_volume_ml"].as_f64().unwrap());
    let get = |file: &Path, path: &[dicom_core::Tag]| -> String {
        let obj = dicom_object::open_file(file).unwrap();
        let mut cur: &InMemDicomObject = &obj;
        for t in &path[..path.len() - 1] {
            cur = &cur.element(*t).unwrap().items().unwrap()[0];
        }
        cur.element(path[path.len() - 1]).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
    };
    let seg = out.join("seg.dcm");
    let rt = out.join("rtstruct.dcm");
    for file in [&seg, &rt] {
        let d = get(file, &[tags::SERIES_DESCRIPTION]);
        assert!(d.starts_with(&format!("CHECK {}", flags[0])), "{}: SeriesDescription {d:?}", file.display());
        assert!(d.chars().count() <= 64, "{d:?}");
    }
    // 64-character field: the volume and the flag names.
    let d = get(&seg, &[tags::CONTENT_DESCRIPTION]);
    assert!(d.contains(&ml) && d.contains("CHECK") && d.contains(&flags[0]), "SEG ContentDescription {d:?}");
    // Text fields: the volume and every flag.
    for d in [
        get(&seg, &[tags::SEGMENT_SEQUENCE, tags::SEGMENT_DESCRIPTION]),
        get(&rt, &[tags::STRUCTURE_SET_DESCRIPTION]),
        get(&rt, &[tags::STRUCTURE_SET_ROI_SEQUENCE, tags::ROI_DESCRIPTION]),
    ] {
        assert!(d.contains(&format!("Liver {:.0} ml", report["liver_volume_ml"].as_f64().unwrap())), "description {d:?}");
        for f in &flags {
            assert!(d.contains(f.as_str()), "description {d:?} lacks {f}");
        }
    }
    // The overview as a Secondary Capture in the CT's study, the flags in its
    // series description too.
    let sc = out.join("overview.dcm");
    assert_eq!(get(&sc, &[tags::SOP_CLASS_UID]), "1.2.840.10008.5.1.4.1.1.7");
    assert_eq!(get(&sc, &[tags::STUDY_INSTANCE_UID]), get(&seg, &[tags::STUDY_INSTANCE_UID]));
    assert!(get(&sc, &[tags::SERIES_DESCRIPTION]).starts_with("CHECK "));
    for file in [&seg, &rt, &sc] {
        assert_dciodvfy_clean("flags_and_reader_warnings_travel_with_the_result", file);
    }
}
