//! DICOM-SEG reading on SEG files generated here with dicom-object, so every
//! expectation is known by construction: bit packing across frames that are not
//! byte-aligned, sparse and shuffled frames, placement on a reference grid (pixel
//! copy, offset, mirror, coarser pixels), fractional threshold, errors, and a
//! mutation test (no panic on damaged files).
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use liverseg_io::dicom::seg::{open_seg, read_seg, try_read_seg, SegmentChoice, SegmentationType, SEG_SOP_CLASS};
use liverseg_io::Error;
use liverseg_volume::Geometry;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

struct Frame {
    ipp: [f64; 3],
    segment: u16,
    /// Row-major stored values (0/1 for BINARY).
    values: Vec<u8>,
}

/// Segment number, label, optional (scheme, code value) of the property type.
type SegmentDef = (u16, &'static str, Option<(&'static str, &'static str)>);

struct Spec {
    rows: usize,
    cols: usize,
    seg_type: &'static str,
    max_fractional: Option<u8>,
    iop: [f64; 6],
    /// DICOM order: between rows, between columns.
    pixel_spacing: [f64; 2],
    spacing_between_slices: Option<f64>,
    segments: Vec<SegmentDef>,
    frames: Vec<Frame>,
}

impl Spec {
    fn binary(rows: usize, cols: usize, frames: Vec<Frame>) -> Spec {
        Spec {
            rows,
            cols,
            seg_type: "BINARY",
            max_fractional: None,
            iop: AXIAL,
            pixel_spacing: [0.8, 0.6],
            spacing_between_slices: Some(2.0),
            segments: vec![(1, "Liver", Some(("SCT", "10200004"))), (2, "Spine", Some(("SCT", "421060004")))],
            frames,
        }
    }
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v}")).collect())
}
fn el(tag: dicom_core::Tag, vr: VR, v: PrimitiveValue) -> InMemElement {
    DataElement::new(tag, vr, v)
}
fn seq(tag: dicom_core::Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}
fn item(elements: Vec<InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn build(spec: &Spec) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(el(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(SEG_SOP_CLASS)));
    obj.put(el(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.826.0.1.3680043.8.498.1")));
    obj.put(el(tags::MODALITY, VR::CS, PrimitiveValue::from("SEG")));
    obj.put(el(tags::ROWS, VR::US, PrimitiveValue::from(spec.rows as u16)));
    obj.put(el(tags::COLUMNS, VR::US, PrimitiveValue::from(spec.cols as u16)));
    obj.put(el(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(spec.frames.len().to_string())));
    obj.put(el(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)));
    let bits: u16 = if spec.seg_type == "BINARY" { 1 } else { 8 };
    obj.put(el(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(bits)));
    obj.put(el(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits)));
    obj.put(el(tags::SEGMENTATION_TYPE, VR::CS, PrimitiveValue::from(spec.seg_type)));
    if let Some(m) = spec.max_fractional {
        obj.put(el(tags::MAXIMUM_FRACTIONAL_VALUE, VR::US, PrimitiveValue::from(m as u16)));
        obj.put(el(tags::SEGMENTATION_FRACTIONAL_TYPE, VR::CS, PrimitiveValue::from("PROBABILITY")));
    }
    let segments = spec
        .segments
        .iter()
        .map(|(n, label, code)| {
            let mut e = vec![el(tags::SEGMENT_NUMBER, VR::US, PrimitiveValue::from(*n)), el(tags::SEGMENT_LABEL, VR::LO, PrimitiveValue::from(*label))];
            if let Some((scheme, value)) = code {
                e.push(seq(
                    tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                    vec![item(vec![
                        el(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(*value)),
                        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from(*scheme)),
                        el(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(*label)),
                    ])],
                ));
            }
            item(e)
        })
        .collect();
    obj.put(seq(tags::SEGMENT_SEQUENCE, segments));
    let mut measures = vec![el(tags::PIXEL_SPACING, VR::DS, ds(&spec.pixel_spacing))];
    if let Some(s) = spec.spacing_between_slices {
        measures.push(el(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[s])));
    }
    obj.put(seq(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![item(vec![
            seq(tags::PLANE_ORIENTATION_SEQUENCE, vec![item(vec![el(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&spec.iop))])]),
            seq(tags::PIXEL_MEASURES_SEQUENCE, vec![item(measures)]),
        ])],
    ));
    let per_frame = spec
        .frames
        .iter()
        .map(|f| {
            item(vec![
                seq(tags::PLANE_POSITION_SEQUENCE, vec![item(vec![el(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&f.ipp))])]),
                seq(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![item(vec![el(tags::REFERENCED_SEGMENT_NUMBER, VR::US, PrimitiveValue::from(f.segment))])]),
            ])
        })
        .collect();
    obj.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
    let mut pixels: Vec<u8> = Vec::new();
    if spec.seg_type == "BINARY" {
        // Bits run on across frames, LSB first (PS3.5 8.1.1).
        let all: Vec<u8> = spec.frames.iter().flat_map(|f| f.values.iter().copied()).collect();
        pixels = vec![0; all.len().div_ceil(8)];
        for (b, &v) in all.iter().enumerate() {
            pixels[b / 8] |= (v & 1) << (b % 8);
        }
    } else {
        for f in &spec.frames {
            pixels.extend(&f.values);
        }
    }
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    obj.put(el(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixels)));
    obj
}

fn write(obj: InMemDicomObject, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let file = obj.with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1")).unwrap();
    file.write_to_file(&path).unwrap();
    path
}

/// Deterministic pseudo-random 0/1 pattern.
fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) & 1) as u8
        })
        .collect()
}

#[test]
fn unaligned_sparse_shuffled_frames_on_their_own_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (3, 5); // 15 bits per frame: every frame but the first starts mid-byte
    let (a, b, c, d) = (pattern(1, 15), pattern(2, 15), pattern(3, 15), pattern(4, 15));
    let spec = Spec::binary(
        rows,
        cols,
        vec![
            Frame { ipp: [-10.0, -20.0, 4.0], segment: 1, values: a.clone() },
            Frame { ipp: [-10.0, -20.0, 0.0], segment: 2, values: b.clone() },
            Frame { ipp: [-10.0, -20.0, 0.0], segment: 1, values: c.clone() },
            Frame { ipp: [-10.0, -20.0, 6.0], segment: 2, values: d.clone() },
        ],
    );
    let path = write(build(&spec), dir.path(), "seg.dcm");
    let seg = open_seg(&path).unwrap().unwrap();
    for (f, want) in [&a, &b, &c, &d].iter().enumerate() {
        let got: Vec<u8> = seg.frame_values(f).unwrap().iter().map(|&v| v as u8).collect();
        assert_eq!(&got, *want, "frame {}", f + 1);
    }
    let out = read_seg(&path, None, SegmentChoice::Auto).unwrap();
    assert_eq!(out.chosen.number, 1);
    let g = out.mask.geometry();
    // Heights 0, 4, 6 at a 2 mm step: 4 slices, slice 1 (z = 2) has no frame.
    assert_eq!(g.dims(), [5, 3, 4]);
    assert_eq!(g.spacing(), [0.6, 0.8, 2.0]);
    assert_eq!(g.origin(), [-10.0, -20.0, 0.0]);
    assert!(out.info.warnings.iter().any(|w| w.contains("1 slice(s)")), "{:?}", out.info.warnings);
    for k in 0..4 {
        for r in 0..rows {
            for col in 0..cols {
                let want = match k {
                    0 => c[r * cols + col],
                    2 => a[r * cols + col],
                    _ => 0,
                };
                assert_eq!(*out.mask.get(col, r, k), want, "voxel ({col}, {r}, {k})");
            }
        }
    }
    let spine = read_seg(&path, None, SegmentChoice::Label("spine".into())).unwrap();
    assert_eq!(spine.frames_of_segment, 2);
    assert_eq!(spine.mask.count_foreground(), b.iter().chain(&d).filter(|&&v| v == 1).count());
    assert_eq!(spine.info.details["segments"].as_array().unwrap().len(), 2);
}

#[test]
fn placement_on_a_reference_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (3, 5);
    let a = pattern(7, 15);
    // Reference: 8 x 6 x 5 voxels, same pixel spacing, slices every 2 mm from z = -4.
    let grid = Geometry::new([8, 6, 5], [0.6, 0.8, 2.0], [-10.0, -20.0, -4.0], IDENTITY).unwrap();
    let voxel = |i: f64, j: f64, k: f64| grid.index_to_world([i, j, k]);

    // 1. Same in-plane grid, frame starting at voxel (2, 1) of slice 3, 0.3 mm off the slice.
    let mut p = voxel(2.0, 1.0, 3.0);
    p[2] += 0.3;
    let spec = Spec::binary(rows, cols, vec![Frame { ipp: p, segment: 1, values: a.clone() }]);
    let path = write(build(&spec), dir.path(), "copy.dcm");
    let out = read_seg(&path, Some(&grid), SegmentChoice::Auto).unwrap();
    assert!(out.mask.geometry().same_grid(&grid));
    assert_eq!(out.frames_resampled, 0);
    let expect_copy = |i: usize, j: usize, k: usize| -> u8 {
        if k == 3 && (2..7).contains(&i) && (1..4).contains(&j) { a[(j - 1) * cols + (i - 2)] } else { 0 }
    };
    for o in 0..grid.len() {
        let [i, j, k] = grid.index_of(o);
        assert_eq!(out.mask.data()[o], expect_copy(i, j, k), "copy: voxel ({i}, {j}, {k})");
    }

    // 2. The same pixels stored mirrored (rows run towards -x from the other end):
    //    resampled through world coordinates onto the same voxels.
    let mirrored: Vec<u8> = (0..15).map(|o| a[(o / cols) * cols + (cols - 1 - o % cols)]).collect();
    let mut spec = Spec::binary(rows, cols, vec![Frame { ipp: voxel(6.0, 1.0, 3.0), segment: 1, values: mirrored }]);
    spec.iop = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let path = write(build(&spec), dir.path(), "mirror.dcm");
    let out2 = read_seg(&path, Some(&grid), SegmentChoice::Auto).unwrap();
    assert_eq!(out2.frames_resampled, 1);
    assert_eq!(out2.mask.data(), out.mask.data());

    // 3. Pixels twice as large, the first pixel centred between voxels (0,0)-(1,1):
    //    each SEG pixel covers a 2 x 2 block of voxels.
    let small = pattern(9, 6); // 2 rows x 3 columns
    let ipp = voxel(0.5, 0.5, 1.0);
    let mut spec = Spec::binary(2, 3, vec![Frame { ipp, segment: 1, values: small.clone() }]);
    spec.pixel_spacing = [1.6, 1.2];
    let path = write(build(&spec), dir.path(), "coarse.dcm");
    let out3 = read_seg(&path, Some(&grid), SegmentChoice::Auto).unwrap();
    for o in 0..grid.len() {
        let [i, j, k] = grid.index_of(o);
        let want = if k == 1 && i < 6 && j < 4 { small[(j / 2) * 3 + i / 2] } else { 0 };
        assert_eq!(out3.mask.data()[o], want, "coarse: voxel ({i}, {j}, {k})");
    }

    // 4. A reference stored the other way round (x and y flipped, like a RAS-ordered
    //    NIfTI): the mask lands on the same world points.
    let flipped = Geometry::new([8, 6, 5], [0.6, 0.8, 2.0], voxel(7.0, 5.0, 0.0), [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
    let path = dir.path().join("copy.dcm");
    let out4 = read_seg(&path, Some(&flipped), SegmentChoice::Auto).unwrap();
    for o in 0..flipped.len() {
        let [i, j, k] = flipped.index_of(o);
        assert_eq!(out4.mask.data()[o], expect_copy(7 - i, 5 - j, k), "flipped: voxel ({i}, {j}, {k})");
    }

    // 5. Off the grid: between slices, beyond the last slice, or past the edge.
    let cases = [
        ("between", { let mut q = voxel(2.0, 1.0, 3.0); q[2] += 1.0; q }),
        ("outside the reference volume", voxel(2.0, 1.0, 5.0)),
        ("in-plane", voxel(4.0, 1.0, 3.0)),
    ];
    for (what, ipp) in cases {
        let spec = Spec::binary(rows, cols, vec![Frame { ipp, segment: 1, values: vec![1; 15] }]);
        let path = write(build(&spec), dir.path(), "off.dcm");
        let e = read_seg(&path, Some(&grid), SegmentChoice::Auto).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains(what), "{what}: {e}");
        // An empty frame there is ignored with a warning.
        let spec = Spec::binary(rows, cols, vec![Frame { ipp, segment: 1, values: vec![0; 15] }]);
        let path = write(build(&spec), dir.path(), "off_empty.dcm");
        if what != "in-plane" {
            let out = read_seg(&path, Some(&grid), SegmentChoice::Auto).unwrap();
            assert_eq!(out.mask.count_foreground(), 0);
            assert!(out.info.warnings.iter().any(|w| w.contains("off the grid")), "{:?}", out.info.warnings);
        }
    }
}

#[test]
fn fractional_threshold_is_half_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::binary(1, 5, vec![Frame { ipp: [0.0; 3], segment: 1, values: vec![99, 100, 101, 0, 200] }]);
    spec.seg_type = "FRACTIONAL";
    spec.max_fractional = Some(200);
    let path = write(build(&spec), dir.path(), "frac.dcm");
    let out = read_seg(&path, None, SegmentChoice::Auto).unwrap();
    assert_eq!(out.seg_type, SegmentationType::Fractional);
    assert_eq!(out.mask.data(), &[0, 1, 1, 0, 1]);
    assert_eq!(out.info.details["max_fractional_value"], 200);
}

#[test]
fn not_a_seg_and_malformed_segs() {
    let dir = tempfile::tempdir().unwrap();
    // A CT object: Ok(None) from try_read_seg, Unsupported from read_seg.
    let mut ct = InMemDicomObject::new_empty();
    ct.put(el(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2")));
    ct.put(el(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4")));
    let path = write(ct, dir.path(), "ct.dcm");
    assert!(try_read_seg(&path, None).unwrap().is_none());
    assert!(matches!(read_seg(&path, None, SegmentChoice::Auto), Err(Error::Unsupported { .. })));

    let good = || Spec::binary(3, 5, vec![Frame { ipp: [0.0; 3], segment: 1, values: pattern(5, 15) }]);
    let expect_invalid = |obj: InMemDicomObject, name: &str, needle: &str| {
        let path = write(obj, dir.path(), name);
        let e = read_seg(&path, None, SegmentChoice::Auto).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains(needle), "{name}: {e}");
        assert!(e.to_string().contains(name), "the error names the file: {e}");
    };
    // Pixel data shorter than Rows x Columns x frames bits.
    let mut obj = build(&good());
    obj.put(el(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(Vec::<u8>::new())));
    expect_invalid(obj, "short.dcm", "PixelData holds 0 bytes");
    // More frames announced than described.
    let mut obj = build(&good());
    obj.put(el(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from("4")));
    expect_invalid(obj, "frames.dcm", "PerFrameFunctionalGroupsSequence has 1 items for 4 frames");
    // A frame pointing at an undefined segment.
    let mut spec = good();
    spec.frames[0].segment = 9;
    expect_invalid(build(&spec), "segment.dcm", "segment 9");
    // Orientation vectors that are not orthogonal.
    let mut spec = good();
    spec.iop = [1.0, 0.0, 0.0, 0.5, 0.5, 0.0];
    expect_invalid(build(&spec), "iop.dcm", "not orthogonal");
    // FRACTIONAL without its maximum.
    let mut spec = good();
    spec.seg_type = "FRACTIONAL";
    spec.frames[0].values = vec![0; 15];
    expect_invalid(build(&spec), "frac.dcm", "MaximumFractionalValue");
    // Unknown segment asked for.
    let path = write(build(&good()), dir.path(), "ok.dcm");
    assert!(matches!(read_seg(&path, None, SegmentChoice::Number(3)), Err(Error::Invalid { .. })));
    // BINARY frames RLE-compressed: refused as unsupported, not misread.
    let mut obj = build(&good());
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        dicom_core::value::PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0u8; 64]]),
    ));
    let path = dir.path().join("rle.dcm");
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.5")).unwrap().write_to_file(&path).unwrap();
    let e = read_seg(&path, None, SegmentChoice::Auto).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("1.2.840.10008.1.2.5"), "{e}");
    // Not DICOM at all.
    let junk = dir.path().join("junk.dcm");
    std::fs::write(&junk, b"not a dicom file").unwrap();
    assert!(read_seg(&junk, None, SegmentChoice::Auto).is_err());
}

/// Damaged SEG files (bytes flipped, length fields blown up, truncated) give an
/// error or a mask, never a panic. Panics inside dicom-rs are caught by the reader
/// and reported as errors; panics in liverseg's own SEG code fail this test.
fn mutation_bases() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::binary(
        3,
        5,
        vec![Frame { ipp: [-10.0, -20.0, 0.0], segment: 1, values: pattern(11, 15) }, Frame { ipp: [-10.0, -20.0, 2.0], segment: 2, values: pattern(12, 15) }],
    );
    let binary = std::fs::read(write(build(&spec), dir.path(), "b.dcm")).unwrap();
    spec.seg_type = "FRACTIONAL";
    spec.max_fractional = Some(255);
    spec.frames.iter_mut().for_each(|f| f.values.iter_mut().for_each(|v| *v *= 200));
    let fractional = std::fs::read(write(build(&spec), dir.path(), "f.dcm")).unwrap();
    let mut bases = vec![binary, fractional];
    if let Some(p) = liverseg_testdata::require_shared!("corpora/dcmqi/data/segmentations/23x38x3/seg/label.seg") {
        bases.push(std::fs::read(p).unwrap());
    }
    bases
}

fn check_no_panic(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.dcm");
    std::fs::write(&path, bytes).unwrap();
    let grid = Geometry::new([5, 3, 4], [0.6, 0.8, 2.0], [-10.0, -20.0, 0.0], IDENTITY).unwrap();
    for (reference, choice) in [(None, SegmentChoice::Auto), (Some(&grid), SegmentChoice::Number(2))] {
        if let Err(e) = read_seg(&path, reference, choice) {
            assert!(!e.to_string().contains("SEG attributes panicked"), "{e}");
        }
    }
    let _ = try_read_seg(&path, Some(&grid));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn damaged_segs_never_panic(
        base in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        thread_local!(static BASES: Vec<Vec<u8>> = mutation_bases());
        let mut bytes = BASES.with(|b| b[base % b.len()].clone());
        for (at, value, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = value,
                1 => bytes[i] ^= 1 << (value % 8),
                // A length or count field blown up.
                2 => { let end = (i + 4).min(bytes.len()); bytes[i..end].iter_mut().for_each(|b| *b = 0xff); }
                _ => { let end = (i + 2).min(bytes.len()); bytes[i..end].iter_mut().for_each(|b| *b = value); }
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()).max(132));
        }
        if let Some(d) = std::env::var_os("SEG_FUZZ_DUMP") {
            std::fs::write(std::path::Path::new(&d).join("last.dcm"), &bytes).unwrap();
        }
        check_no_panic(&bytes);
    }
}

/// Reproduce one damaged file: `SEG_FILE=path cargo test ... -- --ignored read_one_file`.
#[test]
#[ignore]
fn read_one_file() {
    if let Some(p) = std::env::var_os("SEG_FILE") {
        check_no_panic(&std::fs::read(p).unwrap());
    }
}
