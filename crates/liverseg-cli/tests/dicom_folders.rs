//! Issue 18: clinical DICOM folders hold more than the CT series. These tests
//! build such folders in a temp dir from the shared 20-slice series (no DICOM
//! files in the repository) and run `info` and `segment` with every DICOM
//! output on them, checking that the SEG and RTSTRUCT refer to the series the
//! reader chose and pass dciodvfy (dicom3tools) when it is installed.
//! Every `segment` here runs one network pass (`--flip-average off`): the
//! DICOM outputs are the point, not the contour, and `segment`'s default
//! four passes made this file three times as long.

use dicom_core::value::DataSetSequence;
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

/// The tests that need a found liver on the shared 20-slice series pin a
/// model rather than use the built-in one: these 60 mm hold liver on every
/// slice, but the built-in `wide` model finds none there even at threshold
/// 0.1 (its highest probability on the slab is 0.10: with air above and below,
/// it lacks the context it learnt on whole abdomens). The previous built-in
/// model `liverseg-fast-68a8c6ad` finds a liver there at 0.1 (537 ml). What
/// these tests check is the DICOM output of a found liver, not a model's
/// quality, so a model change must not silently turn them into empty-result tests.
fn slab_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/previous/liverseg-fast-68a8c6ad.lsm")
}

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
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "nifti,dicom-seg,rtstruct", "--flip-average", "off", "--scale-average", "1"]);
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
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "dicom-seg,rtstruct,overview", "--flip-average", "off", "--scale-average", "1"]);
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

// ---------------------------------------------------------------------------
// Issue 18 item 4: more real-world folders. Every one is read with `info` and
// segmented with all three formats; the SEG and RTSTRUCT must refer to exactly
// the CT images the reader should have chosen and pass dciodvfy.
// ---------------------------------------------------------------------------

const STUDY_UID: &str = "2.25.181180100";
const CT_SERIES_UID: &str = "2.25.181180101";

/// The shared series' files, sorted by name.
fn series_files(src: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(src).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn put_str(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
}

/// Write the shared series again, file `i` (in name order) to `dest(i)`, with
/// the study and series UIDs a PACS export has (the anonymised files lack them)
/// and `edit` applied; the SOP Instance UID in the data set follows the file
/// meta (set `meta_mut().media_storage_sop_instance_uid` in `edit` to change
/// both). Returns the SOP Instance UIDs written.
fn rewrite_series(
    src: &Path,
    dest: impl Fn(usize) -> PathBuf,
    edit: impl Fn(usize, &mut dicom_object::DefaultDicomObject),
) -> BTreeSet<String> {
    let mut uids = BTreeSet::new();
    for (i, p) in series_files(src).iter().enumerate() {
        let mut obj = dicom_object::open_file(p).unwrap();
        put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID);
        put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, CT_SERIES_UID);
        put_str(&mut obj, tags::SERIES_NUMBER, VR::IS, "2");
        edit(i, &mut obj);
        let sop = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string();
        put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop);
        put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
        obj.update_meta(|_| {});
        let d = dest(i);
        std::fs::create_dir_all(d.parent().unwrap()).unwrap();
        obj.write_to_file(&d).unwrap();
        uids.insert(sop);
    }
    uids
}

/// The first CT file's value of `tag` (for objects that share the CT's study).
fn ct_value(series: &Path, tag: dicom_core::Tag) -> String {
    let obj = dicom_object::open_file(&series_files(series)[0]).unwrap();
    obj.element(tag).ok().and_then(|e| e.to_str().ok()).map(|v| v.trim_end_matches(['\0', ' ']).to_string()).unwrap_or_default()
}

fn write_with_meta(obj: InMemDicomObject, sop_class: &str, sop_instance: &str, file: &Path) {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax("1.2.840.10008.1.2.1")
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    obj.with_exact_meta(meta.build().unwrap()).write_to_file(file).unwrap();
}

fn code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    let mut i = InMemDicomObject::new_empty();
    put_str(&mut i, tags::CODE_VALUE, VR::SH, value);
    put_str(&mut i, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    put_str(&mut i, tags::CODE_MEANING, VR::LO, meaning);
    i
}

/// A structured report of `sop_class` in a series of its own, in the CT's study:
/// what a scanner sends beside the images (the radiation dose report).
fn add_sr(series: &Path, file: &Path, sop_class: &str, sop_instance: &str, series_uid: &str, title: (&str, &str, &str)) {
    let mut obj = InMemDicomObject::new_empty();
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_instance);
    put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID);
    put_str(&mut obj, tags::STUDY_DATE, VR::DA, &ct_value(series, tags::STUDY_DATE));
    put_str(&mut obj, tags::MODALITY, VR::CS, "SR");
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put_str(&mut obj, tags::SERIES_NUMBER, VR::IS, "990");
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Dose Report");
    put_str(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut obj, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put_str(&mut obj, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put_str(&mut obj, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put_str(&mut obj, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    let (value, scheme, meaning) = title;
    obj.put(DataElement::new(tags::CONCEPT_NAME_CODE_SEQUENCE, VR::SQ, DataSetSequence::from(vec![code_item(value, scheme, meaning)])));
    write_with_meta(obj, sop_class, sop_instance, file);
}

fn put_us(obj: &mut InMemDicomObject, tag: dicom_core::Tag, v: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

fn put_strs(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: &[&str]) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect())));
}

const SC_SOP_INSTANCE: &str = "2.25.181180201";

/// A screen capture (Secondary Capture, RGB 64x64) filed in the CT's own series
/// at the position of its first slice, as some viewers and PACS store
/// annotated screenshots: if it were taken as a slice, the series would hold
/// two images at one position, of different sizes.
fn add_secondary_capture(series: &Path, file: &Path) {
    let first = dicom_object::open_file(&series_files(series)[0]).unwrap();
    let mut obj = InMemDicomObject::new_empty();
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7");
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, SC_SOP_INSTANCE);
    put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID);
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, CT_SERIES_UID);
    put_str(&mut obj, tags::SERIES_NUMBER, VR::IS, "2");
    put_str(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1000");
    put_str(&mut obj, tags::MODALITY, VR::CS, "CT");
    put_str(&mut obj, tags::CONVERSION_TYPE, VR::CS, "WSD");
    put_strs(&mut obj, tags::IMAGE_TYPE, VR::CS, &["DERIVED", "SECONDARY", "SCREEN SAVE"]);
    put_str(&mut obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, &ct_value(series, tags::FRAME_OF_REFERENCE_UID));
    for tag in [tags::IMAGE_POSITION_PATIENT, tags::IMAGE_ORIENTATION_PATIENT, tags::PIXEL_SPACING] {
        obj.put(first.element(tag).unwrap().clone());
    }
    put_us(&mut obj, tags::ROWS, 64);
    put_us(&mut obj, tags::COLUMNS, 64);
    put_us(&mut obj, tags::SAMPLES_PER_PIXEL, 3);
    put_str(&mut obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    put_us(&mut obj, tags::PLANAR_CONFIGURATION, 0);
    put_us(&mut obj, tags::BITS_ALLOCATED, 8);
    put_us(&mut obj, tags::BITS_STORED, 8);
    put_us(&mut obj, tags::HIGH_BIT, 7);
    put_us(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(vec![200u8; 64 * 64 * 3].into())));
    write_with_meta(obj, "1.2.840.10008.5.1.4.1.1.7", SC_SOP_INSTANCE, file);
}

/// A scanner's "Patient Protocol" page: a CT Image Storage object (the dose
/// summary as a picture) with no position or orientation, in a series of its own.
fn add_protocol_page(file: &Path) {
    let mut obj = InMemDicomObject::new_empty();
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, "2.25.181180211");
    put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID);
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, "2.25.181180212");
    put_str(&mut obj, tags::SERIES_NUMBER, VR::IS, "501");
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Patient Protocol");
    put_str(&mut obj, tags::MODALITY, VR::CS, "CT");
    put_strs(&mut obj, tags::IMAGE_TYPE, VR::CS, &["DERIVED", "SECONDARY", "OTHER"]);
    put_us(&mut obj, tags::ROWS, 64);
    put_us(&mut obj, tags::COLUMNS, 64);
    put_us(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
    put_str(&mut obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put_us(&mut obj, tags::BITS_ALLOCATED, 16);
    put_us(&mut obj, tags::BITS_STORED, 12);
    put_us(&mut obj, tags::HIGH_BIT, 11);
    put_us(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![0u16; 64 * 64].into())));
    write_with_meta(obj, "1.2.840.10008.5.1.4.1.1.2", "2.25.181180211", file);
}

/// A DICOMDIR (Media Storage Directory) listing `files` (paths relative to
/// its folder, at most 8 components) as one patient, study and series, as a
/// CD/DVD export writes it. The record offsets are left 0: liverseg does not
/// read DICOMDIRs (it scans the folder), it must only not mistake one for an image.
fn write_dicomdir(dir: &Path, files: &[(PathBuf, String)]) {
    let record = |kind: &str| {
        let mut r = InMemDicomObject::new_empty();
        r.put(DataElement::new(tags::OFFSET_OF_THE_NEXT_DIRECTORY_RECORD, VR::UL, PrimitiveValue::from(0u32)));
        put_us(&mut r, tags::RECORD_IN_USE_FLAG, 0xFFFF);
        r.put(DataElement::new(tags::OFFSET_OF_REFERENCED_LOWER_LEVEL_DIRECTORY_ENTITY, VR::UL, PrimitiveValue::from(0u32)));
        put_str(&mut r, tags::DIRECTORY_RECORD_TYPE, VR::CS, kind);
        r
    };
    let mut records = Vec::new();
    let mut patient = record("PATIENT");
    put_str(&mut patient, tags::PATIENT_ID, VR::LO, "ANON");
    records.push(patient);
    let mut study = record("STUDY");
    put_str(&mut study, tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID);
    records.push(study);
    let mut series = record("SERIES");
    put_str(&mut series, tags::MODALITY, VR::CS, "CT");
    put_str(&mut series, tags::SERIES_INSTANCE_UID, VR::UI, CT_SERIES_UID);
    records.push(series);
    for (i, (rel, sop)) in files.iter().enumerate() {
        let mut image = record("IMAGE");
        let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
        obj_put_strs(&mut image, tags::REFERENCED_FILE_ID, &parts);
        put_str(&mut image, tags::REFERENCED_SOP_CLASS_UID_IN_FILE, VR::UI, "1.2.840.10008.5.1.4.1.1.2");
        put_str(&mut image, tags::REFERENCED_SOP_INSTANCE_UID_IN_FILE, VR::UI, sop);
        put_str(&mut image, tags::REFERENCED_TRANSFER_SYNTAX_UID_IN_FILE, VR::UI, "1.2.840.10008.1.2.4.90");
        put_str(&mut image, tags::INSTANCE_NUMBER, VR::IS, &(i + 1).to_string());
        records.push(image);
    }
    let mut obj = InMemDicomObject::new_empty();
    put_str(&mut obj, tags::FILE_SET_ID, VR::CS, "LIVERSEG");
    obj.put(DataElement::new(tags::OFFSET_OF_THE_FIRST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY, VR::UL, PrimitiveValue::from(0u32)));
    obj.put(DataElement::new(tags::OFFSET_OF_THE_LAST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY, VR::UL, PrimitiveValue::from(0u32)));
    put_us(&mut obj, tags::FILE_SET_CONSISTENCY_FLAG, 0);
    obj.put(DataElement::new(tags::DIRECTORY_RECORD_SEQUENCE, VR::SQ, DataSetSequence::from(records)));
    write_with_meta(obj, "1.2.840.10008.1.3.10", "2.25.181180221", &dir.join("DICOMDIR"));
}

fn obj_put_strs(obj: &mut InMemDicomObject, tag: dicom_core::Tag, v: &[String]) {
    obj.put(DataElement::new(tag, VR::CS, PrimitiveValue::Strs(v.iter().cloned().collect())));
}

/// Copy the shared series' files (bytes unchanged), file `i` in name order to
/// `dest(i)`; returns their SOP Instance UIDs (from the file meta).
fn copy_series_to(src: &Path, dest: impl Fn(usize) -> PathBuf) -> BTreeSet<String> {
    let mut uids = BTreeSet::new();
    for (i, p) in series_files(src).iter().enumerate() {
        let d = dest(i);
        std::fs::create_dir_all(d.parent().unwrap()).unwrap();
        std::fs::copy(p, &d).unwrap();
        let obj = dicom_object::open_file(p).unwrap();
        uids.insert(obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string());
    }
    uids
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)))
}

/// What one folder gave: `info --json`'s output and report.json.
struct Outcome {
    info: serde_json::Value,
    report: serde_json::Value,
    out: PathBuf,
}

/// `info` (table and JSON) and `segment --format nifti,dicom-seg,rtstruct` on
/// `folder`; the SEG and RTSTRUCT must refer to exactly the SOP instances
/// `expected` (the CT images the reader should have read), lie in `study`
/// when given, and pass dciodvfy.
fn info_and_segment(test: &str, folder: &Path, expected: &BTreeSet<String>, study: Option<&str>) -> Outcome {
    let o = liverseg(&["info", s(folder)]);
    assert!(o.status.success(), "info: {}", text(&o));
    let o = liverseg(&["info", "--json", s(folder)]);
    assert!(o.status.success(), "info --json: {}", text(&o));
    let info = json_of(&o);
    assert_eq!(info["dims"][2], expected.len(), "{info}");
    let out = folder.parent().unwrap().join(format!("{test}-out"));
    let o = liverseg(&["segment", s(folder), "-o", s(&out), "--format", "nifti,dicom-seg,rtstruct", "--no-overview", "--flip-average", "off", "--scale-average", "1"]);
    assert!(o.status.success(), "segment: {}", text(&o));
    assert!(out.join("liver.nii.gz").is_file(), "no liver.nii.gz: {}", text(&o));
    for name in ["seg.dcm", "rtstruct.dcm"] {
        let file = out.join(name);
        let obj = dicom_object::open_file(&file).unwrap();
        let file_study = obj.element(tags::STUDY_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_string();
        if let Some(study) = study {
            assert_eq!(file_study, study, "{name}: StudyInstanceUID");
        }
        let mut refs = referenced_instances(&file);
        // The RTSTRUCT's RT Referenced Study item names the study this way too.
        refs.remove(&file_study);
        assert_eq!(&refs, expected, "{name}: referenced instances");
        assert_dciodvfy_clean(test, &file);
    }
    let report = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    Outcome { info, report, out }
}

fn warnings_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|w| w.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default()
}

/// A CT with what scanners and PACS send beside it: an X-Ray Radiation Dose SR
/// and a Basic Text SR (no pixels), a screen capture (Secondary Capture) filed
/// in the CT's own series at a slice position, and a "Patient Protocol" page
/// (CT Image Storage without position). Only the 20 CT images are read.
#[test]
fn dose_reports_and_secondary_captures_beside_the_ct_are_ignored() {
    let test = "dose_reports_and_secondary_captures_beside_the_ct_are_ignored";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    let ct = rewrite_series(&series, |i| folder.join("CT").join(format!("IM{i:04}.dcm")), |_, _| {});
    add_sr(&series, &folder.join("SR/dose.dcm"), "1.2.840.10008.5.1.4.1.1.88.67", "2.25.181180231", "2.25.181180232", ("113701", "DCM", "X-Ray Radiation Dose Report"));
    add_sr(&series, &folder.join("SR/report.dcm"), "1.2.840.10008.5.1.4.1.1.88.11", "2.25.181180233", "2.25.181180234", ("18748-4", "LN", "Diagnostic Imaging Report"));
    add_secondary_capture(&series, &folder.join("CT/screen.dcm"));
    add_protocol_page(&folder.join("protocol.dcm"));

    let r = info_and_segment(test, &folder, &ct, Some(STUDY_UID));
    let details = &r.info["details"];
    assert_eq!(details["files_scanned"], 24, "{details}");
    assert_eq!(details["series"].as_array().unwrap().len(), 1, "only the CT is a candidate: {details}");
    assert_eq!(details["skipped"]["no_image"], 2, "{details}");
    assert_eq!(details["skipped"]["secondary_captures"], 1, "{details}");
    assert_eq!(details["skipped"]["no_position_or_orientation"], 1, "{details}");
    let warnings = warnings_of(&r.info["warnings"]);
    assert!(!warnings.iter().any(|w| w.contains("unreadable") || w.contains("candidate")), "{warnings:?}");

    let input = &r.report["input"];
    assert_eq!(input["series"]["series_instance_uid"], CT_SERIES_UID, "{input}");
    let kinds = &input["other_series"]["kinds"];
    assert_eq!(kinds["structured report"], 2, "{input}");
    assert_eq!(kinds["secondary capture"], 1, "{input}");
    assert_eq!(kinds["image without position"], 1, "{input}");
    for name in ["seg.dcm", "rtstruct.dcm"] {
        assert!(!referenced_instances(&r.out.join(name)).contains(SC_SOP_INSTANCE), "{name} refers to the screen capture");
    }
}

/// Two contrast phases stored in one series (same SeriesInstanceUID, the same
/// 20 positions twice), told apart by AcquisitionNumber 9 (arterial) and 10
/// (portal venous, acquired later). The reader reads one phase, the first
/// acquisition (lowest AcquisitionNumber, compared as numbers), warns naming
/// both phases and how to choose the other, and `--series 1` reads the other.
/// Before the fix it read acquisition 10: phases were ordered as text, "10" < "9".
#[test]
fn two_phases_in_one_series_read_the_first_acquisition_and_warn() {
    let test = "two_phases_in_one_series_read_the_first_acquisition_and_warn";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    let phase = |acquisition: u32, time: &'static str, uid_base: &'static str, name: &'static str| {
        let folder = folder.clone();
        rewrite_series(
            &series,
            move |i| folder.join(format!("{name}{i:03}.dcm")),
            move |i, obj| {
                let uid = format!("{uid_base}{}", 100 + i);
                obj.update_meta(|m| m.media_storage_sop_instance_uid = uid.clone());
                put_str(obj, tags::ACQUISITION_NUMBER, VR::IS, &acquisition.to_string());
                put_str(obj, tags::ACQUISITION_TIME, VR::TM, time);
                put_str(obj, tags::CONTENT_TIME, VR::TM, time);
            },
        )
    };
    // File names put the later phase first (A000.. before B000..), so name
    // order cannot be what picks the arterial phase.
    let arterial = phase(9, "140352.457000", "2.25.1811803", "B");
    let venous = phase(10, "140452.457000", "2.25.1811804", "A");
    assert_eq!(arterial.len() + venous.len(), 40);

    let r = info_and_segment(test, &folder, &arterial, Some(STUDY_UID));
    let details = &r.info["details"];
    let cands = details["series"].as_array().unwrap();
    assert_eq!(cands.len(), 2, "{details}");
    let chosen = details["chosen"].as_u64().unwrap() as usize;
    assert_eq!(cands[chosen]["phase"], "acquisition 9", "{details}");
    assert_eq!(cands[chosen]["acquisition_numbers"], serde_json::json!([9]), "{details}");
    // Both phases are named in one warning, with the way to read the other.
    let warnings = warnings_of(&r.info["warnings"]);
    let w = warnings.iter().find(|w| w.contains("phase")).unwrap_or_else(|| panic!("no phase warning: {warnings:?}"));
    assert!(w.contains("acquisition 9") && w.contains("acquisition 10") && w.contains("series option"), "{w}");
    // The same warning reaches report.json.
    assert!(warnings_of(&r.report["input"]["warnings"]).contains(w), "{}", r.report["input"]);

    let other = 1 - chosen;
    let o = liverseg(&["info", "--json", "--series", &other.to_string(), s(&folder)]);
    assert!(o.status.success(), "{}", text(&o));
    let v = json_of(&o);
    assert_eq!(v["details"]["series"][other]["phase"], "acquisition 10", "{v}");
    assert_eq!(v["details"]["chosen"], other as u64, "{v}");
}

/// Two phases in one series with the same AcquisitionNumber, no
/// AcquisitionTime, told apart only by ContentTime (the later phase even has
/// the lower InstanceNumbers, as when a scanner renumbers a second pass). The
/// reader splits them by acquisition order and reads the earlier ContentTime.
/// The later phase is marked by RescaleIntercept -1000 (instead of -1024), which
/// `info` reports for the stack it read. Before the fix the order ignored
/// ContentTime and went by InstanceNumber: it read the later phase.
#[test]
fn two_phases_told_apart_by_content_time_read_the_earlier() {
    let test = "two_phases_told_apart_by_content_time_read_the_earlier";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    let phase = |late: bool| {
        let folder = folder.clone();
        rewrite_series(
            &series,
            move |i| folder.join(format!("{}{i:03}", if late { "P2_" } else { "P1_" })),
            move |i, obj| {
                let uid = format!("{}{}", if late { "2.25.1811806" } else { "2.25.1811805" }, 100 + i);
                obj.update_meta(|m| m.media_storage_sop_instance_uid = uid.clone());
                obj.remove_element(tags::ACQUISITION_TIME);
                put_str(obj, tags::CONTENT_TIME, VR::TM, &format!("{}{i:02}.000000", if late { "1414" } else { "1404" }));
                put_str(obj, tags::INSTANCE_NUMBER, VR::IS, &(if late { 1 + i } else { 101 + i }).to_string());
                if late {
                    put_str(obj, tags::RESCALE_INTERCEPT, VR::DS, "-1000");
                }
            },
        )
    };
    let early = phase(false);
    phase(true);
    let o = liverseg(&["info", "--json", s(&folder)]);
    assert!(o.status.success(), "{}", text(&o));
    let info = json_of(&o);
    let details = &info["details"];
    assert_eq!(details["series"].as_array().unwrap().len(), 2, "{details}");
    assert_eq!(details["rescale"], serde_json::json!([{"slope": 1.0, "intercept": -1024.0}]), "read the later phase: {details}");
    let warnings = warnings_of(&info["warnings"]);
    assert!(warnings.iter().any(|w| w.contains("2 phases") && w.contains("repeat 1")), "{warnings:?}");
    // And the SEG refers to the phase read (a short segment run, SEG only).
    let out = dir.path().join("out");
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "dicom-seg", "--no-overview", "--flip-average", "off", "--scale-average", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(referenced_instances(&out.join("seg.dcm")), early, "SEG refers to the other phase");
    assert_dciodvfy_clean(test, &out.join("seg.dcm"));
}

/// The CT split over nested folders (a PACS export that starts a new folder
/// every few images, at different depths): read as one series.
#[test]
fn ct_split_over_nested_folders_is_one_series() {
    let test = "ct_split_over_nested_folders_is_one_series";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("export");
    let ct = copy_series_to(&series, |i| {
        let sub = match i % 3 {
            0 => "PAT1/STUDY1/SER1",
            1 => "PAT1/STUDY1/SER1/0002",
            _ => "PAT1/STUDY1/SER1/0002/0003",
        };
        folder.join(sub).join(format!("{i}.dcm"))
    });
    let r = info_and_segment(test, &folder, &ct, None);
    assert_eq!(r.info["details"]["files_scanned"], 20, "{}", r.info);
    assert_eq!(r.info["details"]["series"].as_array().unwrap().len(), 1, "{}", r.info);
}

/// Files named without an extension (IM00001, ...), beside a text file with
/// no extension either (as CD exports carry): recognised by content.
#[test]
fn files_without_extension_are_read_by_content() {
    let test = "files_without_extension_are_read_by_content";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("export");
    let ct = copy_series_to(&series, |i| folder.join(format!("IM{:05}", i + 1)));
    std::fs::write(folder.join("README"), "Exported images. Not for diagnostic use.\n").unwrap();
    let r = info_and_segment(test, &folder, &ct, None);
    assert_eq!(r.info["details"]["skipped"]["not_dicom"], 1, "{}", r.info);
    assert_eq!(r.info["details"]["series"].as_array().unwrap().len(), 1, "{}", r.info);
}

/// A CD/DVD layout: DICOMDIR at the top, the images in DICOM/ST000000/SE000000
/// without extensions. The DICOMDIR is not an image and does not disturb the
/// read; `info` on the DICOMDIR itself says what it is and to give its folder
/// (before: "DICOM object without an image (no Rows/Columns)").
#[test]
fn dicomdir_beside_the_images_is_not_taken_as_an_image() {
    let test = "dicomdir_beside_the_images_is_not_taken_as_an_image";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cdrom");
    let rel = |i: usize| PathBuf::from("DICOM").join("ST000000").join("SE000000").join(format!("IM{i:06}"));
    let ct = rewrite_series(&series, |i| folder.join(rel(i)), |_, _| {});
    let listed: Vec<(PathBuf, String)> = (0..ct.len())
        .map(|i| {
            let obj = dicom_object::open_file(folder.join(rel(i))).unwrap();
            (rel(i), obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string())
        })
        .collect();
    write_dicomdir(&folder, &listed);
    let r = info_and_segment(test, &folder, &ct, Some(STUDY_UID));
    let details = &r.info["details"];
    assert_eq!(details["series"].as_array().unwrap().len(), 1, "{details}");
    assert!(details["skipped"].get("unreadable").is_none(), "{details}");
    let warnings = warnings_of(&r.info["warnings"]);
    assert!(!warnings.iter().any(|w| w.contains("DICOMDIR")), "{warnings:?}");

    let dicomdir = folder.join("DICOMDIR");
    let o = liverseg(&["info", s(&dicomdir)]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("DICOMDIR") && t.contains("give the folder") && !t.contains("panicked"), "{t}");
}

/// The other folder tests find no liver on this 20-slice series with the
/// built-in model, so their dciodvfy checks cover the empty-result files
/// (one empty SEG frame, an RTSTRUCT ROI without contours). The pinned model
/// at `--threshold 0.1` gives a liver (see `slab_model`): the SEG with its
/// frames, the RTSTRUCT with its contours and the overview Secondary Capture
/// that `segment` writes must pass dciodvfy too, and refer to the CT images
/// only (not the scout beside them).
#[test]
fn a_found_liver_gives_dciodvfy_clean_seg_rtstruct_and_overview() {
    let test = "a_found_liver_gives_dciodvfy_clean_seg_rtstruct_and_overview";
    let Some(series) = shared_series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    let ct = rewrite_series(&series, |i| folder.join("ct").join(format!("{i}.dcm")), |_, _| {});
    add_localizer(&series, &folder);
    let out = dir.path().join("out");
    let model = slab_model();
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "dicom-seg,rtstruct,overview", "--threshold", "0.1", "--model", s(&model), "--flip-average", "off", "--scale-average", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    // A few voxels would pass `> 0` and check little: ask for a real liver.
    assert!(report["liver_volume_ml"].as_f64().unwrap() > 100.0, "the test needs a liver: {report}");
    for name in ["seg.dcm", "rtstruct.dcm"] {
        let file = out.join(name);
        let mut refs = referenced_instances(&file);
        assert!(!refs.contains(SCOUT_SOP_INSTANCE), "{name} refers to the scout");
        let study = dicom_object::open_file(&file).unwrap().element(tags::STUDY_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0').to_string();
        refs.remove(&study);
        assert!(!refs.is_empty() && refs.is_subset(&ct), "{name}: refers to {refs:?}, not the CT");
        assert_dciodvfy_clean(test, &file);
    }
    assert_dciodvfy_clean(test, &out.join("overview.dcm"));
}

/// highdicom (the reference Python library for DICOM-SEG) reads the SEG by
/// source instance, with no overrides (no ignore_spatial_locations, no
/// assert_missing_frames_are_empty), for every CT instance the SEG holds a
/// frame of, and each frame holds exactly the liver pixels of the slice at
/// that instance's position in liver.nii.gz. The pinned model at `--threshold 0.1`
/// gives a liver on this short series (see `slab_model`; the built-in model finds
/// none: a SEG of one empty frame).
/// Python: `LIVERSEG_PYTHON` or `python3`; skipped when it cannot `import highdicom`.
#[test]
fn highdicom_reads_the_seg_by_source_instance() {
    let test = "highdicom_reads_the_seg_by_source_instance";
    let Some(series) = shared_series() else { return };
    let python = std::env::var("LIVERSEG_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python).args(["-c", "import highdicom"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has {
        eprintln!("SKIP {test}: `{python} -c 'import highdicom'` fails (pip install highdicom, or set LIVERSEG_PYTHON)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    let ct = rewrite_series(&series, |i| folder.join("ct").join(format!("{i}.dcm")), |_, _| {});
    add_localizer(&series, &folder);
    let out = dir.path().join("out");
    let model = slab_model();
    let o = liverseg(&["segment", s(&folder), "-o", s(&out), "--format", "nifti,dicom-seg", "--no-overview", "--threshold", "0.1", "--model", s(&model), "--flip-average", "off", "--scale-average", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let script = r#"
import sys, json, highdicom as hd
seg = hd.seg.segread(sys.argv[1])
uids = sorted({r.ReferencedSOPInstanceUID
               for f in seg.PerFrameFunctionalGroupsSequence
               for d in f.DerivationImageSequence
               for r in d.SourceImageSequence})
px = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1])
print(json.dumps({"per_uid": {u: int(px[i].sum()) for i, u in enumerate(uids)}, "shape": list(px.shape),
                  "segments": [s.SegmentLabel for s in seg.SegmentSequence]}))
"#;
    let o = Command::new(&python).args(["-c", script]).arg(out.join("seg.dcm")).output().unwrap();
    assert!(o.status.success(), "highdicom failed:\n{}", text(&o));
    let v = json_of(&o);
    let per_uid = v["per_uid"].as_object().unwrap();
    let total: u64 = per_uid.values().map(|n| n.as_u64().unwrap()).sum();
    eprintln!("highdicom: {} frame(s), shape {}, {total} liver pixels", per_uid.len(), v["shape"]);
    let uids: BTreeSet<String> = per_uid.keys().cloned().collect();
    assert!(uids.len() > 1 && uids.is_subset(&ct), "SEG frames refer to {uids:?}, not the CT");
    assert_eq!(v["shape"][0], uids.len() as u64, "{v}");
    assert_eq!(v["segments"], serde_json::json!(["Liver"]), "{v}");
    // Each CT instance's frame against the NIfTI's slice at that instance's
    // position (slices without liver have no frame: 0).
    let liver = liverseg_io::read_image(&out.join("liver.nii.gz"), &liverseg_io::ReadOptions::default()).unwrap().volume;
    let g = liver.geometry().clone();
    let [nx, ny, nz] = g.dims();
    #[allow(clippy::unnecessary_cast)] // the same cast for every pixel type, f64 included
    let data: Vec<bool> = liverseg_volume::dyn_dispatch!(&liver, m => m.data().iter().map(|&x| x as f64 > 0.0).collect());
    let mut checked = 0;
    for i in 0..ct.len() {
        let obj = dicom_object::open_file(folder.join("ct").join(format!("{i}.dcm"))).unwrap();
        let uid = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string();
        let ipp: Vec<f64> = obj.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap();
        let k = g.world_to_index([ipp[0], ipp[1], ipp[2]])[2].round() as usize;
        assert!(k < nz, "{uid}: slice {k} outside the NIfTI");
        let in_nifti = data[k * nx * ny..(k + 1) * nx * ny].iter().filter(|&&b| b).count() as u64;
        let in_seg = per_uid.get(&uid).map(|n| n.as_u64().unwrap()).unwrap_or(0);
        assert_eq!(in_seg, in_nifti, "instance {uid} (slice {k}): SEG frame vs liver.nii.gz");
        checked += 1;
    }
    assert_eq!(checked, 20);
    assert!(total > 0, "the test needs a liver in the SEG");
}
