//! Third-party validation of the written SEG and RTSTRUCT: dicom3tools' `dciodvfy`
//! (IOD conformance; errors fail the test, warnings are printed) and pydicom
//! reading them back. Each test skips with a SKIP line when the tool is absent.
use liverseg_io::dicom::rtstruct::{write_rtstruct, RtStructWriteOptions};
use liverseg_io::dicom::seg_write::{write_seg, SegWriteOptions, SourceSeries};
use liverseg_volume::{Geometry, Mask};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The series the reader chooses in `folder` (headers only, no pixels
/// decoded), as the DICOM writers get it from a read.
fn source_of(folder: &std::path::Path, series: Option<&str>) -> liverseg_io::Result<SourceSeries> {
    let options = liverseg_io::ReadOptions { series: series.map(str::to_string), ..Default::default() };
    Ok(liverseg_io::dicom::select_series(folder, &options)?.series)
}

fn mask(g: &Geometry) -> Mask {
    let [nx, ny, _] = g.dims();
    Mask::from_fn(g.clone(), |[i, j, k]| {
        let (x, y) = (i as f64 / nx as f64 - 0.5, j as f64 / ny as f64 - 0.5);
        let r2 = x * x + y * y;
        u8::from((r2 < 0.09 && r2 > 0.01 && k > 0) || ((x - 0.35).abs() < 0.05 && y.abs() < 0.05))
    })
}

/// SEG + RTSTRUCT of a synthetic grid, and of the real CT series when shared data exists.
fn written(dir: &Path) -> Vec<(PathBuf, usize)> {
    let mut cases = Vec::new();
    let g = Geometry::new([64, 48, 6], [0.8, 0.8, 2.5], [-30.0, -20.0, 100.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let mut source = SourceSeries::synthetic(&g, None);
    source.patient_study.study_date = "20240101".into();
    cases.push((mask(&g), source, "synthetic"));
    let folder = liverseg_testdata::shared_dir().map(|d| d.join("data/dicom/totalseg-example-20slices"));
    if let Some(folder) = folder.filter(|f| f.exists()) {
        let source = source_of(&folder, None).unwrap();
        let g = source.geometry().unwrap();
        cases.push((mask(&g), source, "totalseg"));
    }
    let mut out = Vec::new();
    for (m, source, name) in cases {
        let seg = dir.join(format!("{name}.seg.dcm"));
        write_seg(&seg, &m, &source, &SegWriteOptions::default()).unwrap();
        out.push((seg, m.count_foreground()));
        let rt = dir.join(format!("{name}.rtstruct.dcm"));
        write_rtstruct(&rt, &m, &source, &RtStructWriteOptions::default()).unwrap();
        out.push((rt, m.count_foreground()));
    }
    out
}

#[test]
fn dciodvfy_reports_no_errors() {
    if Command::new("dciodvfy").arg("-h").output().is_err() {
        eprintln!("SKIP dciodvfy_reports_no_errors: dciodvfy not installed (Debian package dicom3tools)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (file, _) in written(dir.path()) {
        let out = Command::new("dciodvfy").arg("-new").arg(&file).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for line in text.lines().filter(|l| l.starts_with("Warning")) {
            eprintln!("{name}: {line}");
        }
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "dciodvfy errors on {name}:\n{}", errors.join("\n"));
        // dciodvfy recognised the IOD (it names it), so the check was not vacuous.
        assert!(text.contains("Segmentation") || text.contains("RTStructureSet"), "{name}: dciodvfy did not recognise the IOD:\n{text}");
    }
}

#[test]
fn pydicom_reads_them_back() {
    let ok = Command::new("python3").args(["-c", "import pydicom"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIP pydicom_reads_them_back: python3 with pydicom not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, pydicom
d = pydicom.dcmread(sys.argv[1])
if d.Modality == "SEG":
    seg = d.SegmentSequence[0]
    assert seg.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert seg.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "123037004"
    n = int(d.NumberOfFrames)
    assert len(d.PerFrameFunctionalGroupsSequence) == n
    bits = int.from_bytes(d.PixelData, "little")
    assert bits >> (n * d.Rows * d.Columns) == 0, "bits beyond the last frame"
    print(bin(bits).count("1"))
else:
    roi = d.StructureSetROISequence[0]
    assert roi.ROIName == "Liver"
    for c in d.ROIContourSequence[0].ContourSequence:
        assert len(c.ContourData) == 3 * int(c.NumberOfContourPoints)
        assert c.ContourGeometricType == "CLOSED_PLANAR"
    print(len(d.ROIContourSequence[0].ContourSequence))
"#;
    for (file, fg) in written(dir.path()) {
        let out = Command::new("python3").args(["-c", script]).arg(&file).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "pydicom on {}: {}{}", file.display(), text, String::from_utf8_lossy(&out.stderr));
        let n: usize = text.trim().parse().unwrap();
        if file.to_string_lossy().contains(".seg.") {
            assert_eq!(n, fg, "set bits in the SEG pixel data vs mask voxels");
        } else {
            assert!(n > 0);
        }
    }
}

/// dciodvfy's output on `file` (stdout and stderr), or `None` with a SKIP line
/// when dciodvfy is not installed.
fn dciodvfy(test: &str, file: &Path) -> Option<String> {
    if Command::new("dciodvfy").arg("-h").output().is_err() {
        eprintln!("SKIP {test}: dciodvfy not installed (Debian package dicom3tools)");
        return None;
    }
    let out = Command::new("dciodvfy").arg("-new").arg(file).output().unwrap();
    Some(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Issue 18, finding 2: no liver found must still give valid DICOM. Before the
/// fix the RTSTRUCT held an ROI Contour item with an empty Contour Sequence
/// ("Bad Sequence number of Items 0 ... Element=<ContourSequence>").
#[test]
fn empty_mask_gives_valid_seg_and_rtstruct() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::new([32, 24, 4], [0.8, 0.8, 2.5], [-30.0, -20.0, 100.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let mut source = SourceSeries::synthetic(&g, None);
    source.patient_study.study_date = "20240101".into();
    let empty = Mask::from_fn(g.clone(), |_| 0);
    let seg = dir.path().join("empty.seg.dcm");
    write_seg(&seg, &empty, &source, &SegWriteOptions::default()).unwrap();
    let rt = dir.path().join("empty.rtstruct.dcm");
    write_rtstruct(&rt, &empty, &source, &RtStructWriteOptions::default()).unwrap();

    // Both read back as an empty mask on the grid (our readers accept what we write).
    let back = liverseg_io::dicom::seg::read_seg(&seg, Some(&g), liverseg_io::dicom::seg::SegmentChoice::Auto).unwrap();
    assert_eq!(back.mask.count_foreground(), 0);
    let back = liverseg_io::dicom::rtstruct::read_rtstruct_onto(&rt, liverseg_io::dicom::rtstruct::RoiChoice::Auto, &g).unwrap();
    assert_eq!(back.count_foreground(), 0);

    for file in [&seg, &rt] {
        let Some(text) = dciodvfy("empty_mask_gives_valid_seg_and_rtstruct", file) else { return };
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        eprintln!("dciodvfy {name}:\n{text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "dciodvfy errors on {name}:\n{}", errors.join("\n"));
        assert!(text.contains("Segmentation") || text.contains("RTStructureSet"), "{name}: dciodvfy did not recognise the IOD:\n{text}");
    }
}
