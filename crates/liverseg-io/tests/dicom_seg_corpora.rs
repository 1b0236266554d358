//! DICOM-SEG reading against third-party corpora (../shared/corpora): frame decoding
//! checked against pydicom's decoded-array sha256 (readings.json), masks on the CT
//! grid checked voxel for voxel against the label maps dcmqi built the SEGs from.
//! Skips (passing) when ../shared is absent.
use liverseg_io::dicom::seg::{open_seg, read_seg, SegmentChoice, SegmentationType};
use liverseg_io::Error;
use liverseg_testdata::require_shared;
use liverseg_volume::{Geometry, Mask};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- test helpers

/// SHA-256 (FIPS 180-4), only to compare decoded frames with the digests in
/// readings.json without adding a dependency for tests.
fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_known_vectors() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(sha256_hex(&[b'a'; 1000]), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

/// Minimal NRRD reader (attached data, raw or gzip, integer types), only to load
/// the dcmqi label maps in tests: returns the LPS grid and the values x-fastest.
fn read_nrrd(path: &Path) -> (Geometry, Vec<i64>) {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap();
    let split = bytes.windows(2).position(|w| w == b"\n\n").expect("NRRD header end");
    let header = std::str::from_utf8(&bytes[..split]).unwrap();
    let field = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("NRRD field {name} missing in {}", path.display()))
    };
    assert_eq!(field("space"), "left-posterior-superior");
    assert_eq!(field("dimension"), "3");
    let sizes: Vec<usize> = field("sizes").split_whitespace().map(|s| s.parse().unwrap()).collect();
    let vectors = |s: String| -> Vec<[f64; 3]> {
        s.split(')')
            .filter(|t| t.contains('('))
            .map(|t| {
                let v: Vec<f64> = t.trim().trim_start_matches('(').split(',').map(|x| x.trim().parse().unwrap()).collect();
                [v[0], v[1], v[2]]
            })
            .collect()
    };
    let dirs = vectors(field("space directions"));
    let origin = vectors(field("space origin"))[0];
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for c in 0..3 {
        spacing[c] = dirs[c].iter().map(|v| v * v).sum::<f64>().sqrt();
        for r in 0..3 {
            direction[r][c] = dirs[c][r] / spacing[c];
        }
    }
    let geometry = Geometry::new([sizes[0], sizes[1], sizes[2]], spacing, origin, direction).unwrap();
    let payload = &bytes[split + 2..];
    let raw = match field("encoding").as_str() {
        "raw" => payload.to_vec(),
        "gzip" | "gz" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(payload).read_to_end(&mut out).unwrap();
            out
        }
        e => panic!("NRRD encoding {e} not handled by the test reader"),
    };
    let little = header.lines().all(|l| l.trim() != "endian: big");
    let values: Vec<i64> = match field("type").as_str() {
        "short" | "int16" | "signed short" => raw.chunks_exact(2).map(|c| {
            let b = [c[0], c[1]];
            (if little { i16::from_le_bytes(b) } else { i16::from_be_bytes(b) }) as i64
        }).collect(),
        "unsigned char" | "uchar" | "uint8" => raw.iter().map(|&v| v as i64).collect(),
        "unsigned short" | "ushort" | "uint16" => raw.chunks_exact(2).map(|c| {
            let b = [c[0], c[1]];
            (if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) }) as i64
        }).collect(),
        t => panic!("NRRD type {t} not handled by the test reader"),
    };
    assert_eq!(values.len(), geometry.len(), "{}", path.display());
    (geometry, values)
}

/// The CT grid of a folder of single-slice CT files, built straight from their
/// IPP / IOP / PixelSpacing with dicom-object (independent of liverseg's series reader).
fn ct_geometry(dir: &Path) -> Geometry {
    use dicom_dictionary_std::tags;
    let mut slices = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files {
        let obj = dicom_object::open_file(&f).unwrap();
        let floats = |t| obj.element(t).unwrap().to_multi_float64().unwrap();
        let int = |t| obj.element(t).unwrap().to_int::<usize>().unwrap();
        slices.push((floats(tags::IMAGE_POSITION_PATIENT), floats(tags::IMAGE_ORIENTATION_PATIENT), floats(tags::PIXEL_SPACING), int(tags::ROWS), int(tags::COLUMNS)));
    }
    let (_, iop, ps, rows, cols) = slices[0].clone();
    let r = [iop[0], iop[1], iop[2]];
    let c = [iop[3], iop[4], iop[5]];
    let n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
    let h = |p: &Vec<f64>| p[0] * n[0] + p[1] * n[1] + p[2] * n[2];
    slices.sort_by(|a, b| h(&a.0).total_cmp(&h(&b.0)));
    let gaps: Vec<f64> = slices.windows(2).map(|w| h(&w[1].0) - h(&w[0].0)).collect();
    let dz = if gaps.is_empty() { 1.0 } else { gaps[0] };
    assert!(gaps.iter().all(|g| (g - dz).abs() < 1e-3), "irregular CT in {}", dir.display());
    let o = &slices[0].0;
    Geometry::new([cols, rows, slices.len()], [ps[1], ps[0], dz], [o[0], o[1], o[2]], [[r[0], c[0], n[0]], [r[1], c[1], n[1]], [r[2], c[2], n[2]]]).unwrap()
}

fn readings() -> serde_json::Value {
    let p = liverseg_testdata::shared_dir().unwrap().join("corpora/readings.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// World bounding box (LPS mm) of the voxel centres of a mask.
fn world_bbox(m: &Mask) -> Option<([f64; 3], [f64; 3])> {
    let g = m.geometry();
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for (o, &v) in m.data().iter().enumerate() {
        if v != 0 {
            let i = g.index_of(o);
            let w = g.index_to_world([i[0] as f64, i[1] as f64, i[2] as f64]);
            for a in 0..3 {
                lo[a] = lo[a].min(w[a]);
                hi[a] = hi[a].max(w[a]);
            }
        }
    }
    lo[0].is_finite().then_some((lo, hi))
}

/// Voxel-for-voxel comparison with a label map on the same grid.
fn assert_matches_labelmap(name: &str, mask: &Mask, label_geometry: &Geometry, labels: &[i64], label: i64) {
    assert!(mask.geometry().same_grid(label_geometry), "{name}: grid {:?} vs label map {:?}", mask.geometry(), label_geometry);
    let expected: Vec<u8> = labels.iter().map(|&v| (v == label) as u8).collect();
    let differing = mask.data().iter().zip(&expected).filter(|(a, b)| a != b).count();
    let count = expected.iter().filter(|&&v| v == 1).count();
    assert!(count > 0, "{name}: label {label} is empty in the label map");
    assert_eq!(differing, 0, "{name}: {differing} voxels differ from the label map ({count} foreground there)");
    eprintln!("{name}: {count} voxels, identical to the label map, bbox {:?}", world_bbox(mask).unwrap());
}

// ---------------------------------------------------------------- tests

const SEG_FILES: &[&str] = &[
    "dcmqi/data/segmentations/liver.dcm",
    "dcmqi/data/segmentations/partial_overlaps.dcm",
    "dcmqi/data/segmentations/sparse-labelmap-noppv.dcm",
    "dcmqi/data/segmentations/sparse-labelmap-ppv5.dcm",
    "dcmqi/data/segmentations/23x38x3/seg/label.seg",
    "dcmqi/data/segmentations/24x38x3/seg/label.seg",
    "highdicom/data/test_files/seg_image_cr_binary.dcm",
    "highdicom/data/test_files/seg_image_ct_binary.dcm",
    "highdicom/data/test_files/seg_image_ct_binary_fractional.dcm",
    "highdicom/data/test_files/seg_image_ct_binary_overlap.dcm",
    "highdicom/data/test_files/seg_image_ct_binary_single_frame.dcm",
    "highdicom/data/test_files/seg_image_ct_true_fractional.dcm",
    "highdicom/data/test_files/seg_image_sm_control.dcm",
    "highdicom/data/test_files/seg_image_sm_control_labelmap.dcm",
    "highdicom/data/test_files/seg_image_sm_control_labelmap_palette_color.dcm",
    "highdicom/data/test_files/seg_image_sm_dots.dcm",
    "highdicom/data/test_files/seg_image_sm_dots_tiled_full.dcm",
    "highdicom/data/test_files/seg_image_sm_numbers.dcm",
    "pydicom/test_files/liver_1frame.dcm",
    "pydicom/test_files/liver_expb_1frame.dcm",
];

/// Every SEG of the corpora: segments, type and the decoded frames (sha256 of the
/// (frames, rows, cols) array) agree with pydicom's reading; slide-microscopy SEGs
/// are refused as unsupported.
#[test]
fn frames_decode_like_pydicom() {
    let Some(root) = require_shared!("corpora/readings.json") else { return };
    let root = root.parent().unwrap().to_path_buf();
    let readings = readings();
    for rel in SEG_FILES {
        let path = root.join(rel);
        let r = &readings[*rel]["read"];
        if rel.contains("_sm_") {
            let e = open_seg(&path).err().unwrap_or_else(|| panic!("{rel}: slide-microscopy SEG accepted"));
            assert!(matches!(e, Error::Unsupported { .. }), "{rel}: {e}");
            eprintln!("{rel}: refused as expected: {e}");
            continue;
        }
        let seg = open_seg(&path).unwrap().unwrap_or_else(|| panic!("{rel}: not recognised as SEG"));
        assert_eq!(seg.seg_type.name(), r["seg_type"].as_str().unwrap(), "{rel}");
        let want_segments: Vec<(u64, String)> =
            r["seg_segments"].as_array().unwrap().iter().map(|s| (s[0].as_u64().unwrap(), s[1].as_str().unwrap().to_string())).collect();
        let got_segments: Vec<(u64, String)> = seg.segments.iter().map(|s| (s.number as u64, s.label.clone())).collect();
        assert_eq!(got_segments, want_segments, "{rel}");
        assert_eq!(seg.frames.len() as f64, r["NumberOfFrames"].as_f64().unwrap_or(1.0), "{rel}");
        assert_eq!((seg.rows as u64, seg.cols as u64), (r["Rows"].as_u64().unwrap(), r["Columns"].as_u64().unwrap()));
        let mut all = Vec::new();
        for f in 0..seg.frames.len() {
            let v = seg.frame_values(f).unwrap();
            if seg.bits_allocated <= 8 {
                all.extend(v.iter().map(|&x| x as u8));
            } else {
                all.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            }
        }
        assert_eq!(sha256_hex(&all), r["pixels"]["sha256_le_c_order"].as_str().unwrap(), "{rel}: decoded frames differ from pydicom");
        if rel.contains("_cr_") {
            // A SEG of a 2-D projection image: decodable, but not placeable in 3-D.
            assert!(seg.frames.iter().all(|f| f.plane.is_none()), "{rel}");
            let e = read_seg(&path, None, SegmentChoice::Auto).unwrap_err();
            assert!(matches!(e, Error::Unsupported { .. }), "{rel}: {e}");
        }
        eprintln!(
            "{rel}: {} {} frames {}x{}, segments {:?}, decoded frames identical to pydicom",
            seg.seg_type.name(),
            seg.frames.len(),
            seg.rows,
            seg.cols,
            got_segments
        );
    }
}

/// dcmqi's liver SEG on its 3-slice CT equals the NRRD label map it was made from,
/// with and without the reference grid.
#[test]
fn dcmqi_liver_on_ct_matches_label_map() {
    let Some(dir) = require_shared!("corpora/dcmqi/data/segmentations") else { return };
    let ct = ct_geometry(&dir.join("ct-3slice"));
    let (lg, labels) = read_nrrd(&dir.join("liver_seg.nrrd"));
    let seg_path = dir.join("liver.dcm");
    let out = read_seg(&seg_path, Some(&ct), SegmentChoice::Auto).unwrap();
    assert_eq!(out.chosen.label, "Liver");
    let code = out.chosen.property_type.clone().unwrap();
    assert!(code.value == "10200004" || code.value == "T-62000", "{code:?}");
    assert_eq!(out.seg_type, SegmentationType::Binary);
    assert_eq!(out.frames_resampled, 0);
    assert_matches_labelmap("dcmqi liver.dcm on CT", &out.mask, &lg, &labels, 1);
    // readings.json: mean of the decoded (3, 512, 512) frames.
    let mean = readings()["dcmqi/data/segmentations/liver.dcm"]["read"]["pixels"]["mean"].as_f64().unwrap();
    assert!((out.mask.count_foreground() as f64 - mean * 3.0 * 512.0 * 512.0).abs() < 1.0);

    // Own grid: identical to the CT's.
    let own = read_seg(&seg_path, None, SegmentChoice::Auto).unwrap();
    assert!(own.mask.geometry().same_grid(&ct), "{:?} vs {:?}", own.mask.geometry(), ct);
    assert_eq!(own.mask.data(), out.mask.data());
    // The generic entry point takes the same path.
    let (m, info) = liverseg_io::read_mask(&seg_path, Some(&ct), &Default::default()).unwrap();
    assert_eq!(m.data(), out.mask.data());
    assert_eq!(info.format, liverseg_io::Format::DicomSeg);
    assert_eq!(info.details["chosen_segment"]["number"], 1);
}

/// Odd in-plane sizes: 23x38 frames are not byte-aligned (874 bits per frame).
#[test]
fn dcmqi_odd_sizes_match_label_maps() {
    let Some(dir) = require_shared!("corpora/dcmqi/data/segmentations") else { return };
    for size in ["23x38x3", "24x38x3"] {
        let d = dir.join(size);
        let ct = ct_geometry(&d.join("image"));
        let (lg, labels) = read_nrrd(&d.join("nrrd/label.nrrd"));
        let out = read_seg(&d.join("seg/label.seg"), Some(&ct), SegmentChoice::Auto).unwrap();
        assert_matches_labelmap(&format!("dcmqi {size} label.seg on CT"), &out.mask, &lg, &labels, 1);
        let own = read_seg(&d.join("seg/label.seg"), None, SegmentChoice::Auto).unwrap();
        assert!(own.mask.geometry().same_grid(&ct), "{size}");
        assert_eq!(own.mask.data(), out.mask.data(), "{size}");
    }
}

/// LABELMAP SEGs holding frames only where the liver is (sparse), with and without
/// PixelPaddingValue.
#[test]
fn dcmqi_sparse_labelmaps_match_label_maps() {
    let Some(dir) = require_shared!("corpora/dcmqi/data/segmentations") else { return };
    let ct = ct_geometry(&dir.join("24x38x3/image"));
    for (seg, nrrd) in [("sparse-labelmap-noppv.dcm", "sparse_labelmap_noppv_seg.nrrd"), ("sparse-labelmap-ppv5.dcm", "sparse_labelmap_ppv5_seg.nrrd")] {
        let (lg, labels) = read_nrrd(&dir.join(nrrd));
        let out = read_seg(&dir.join(seg), Some(&ct), SegmentChoice::Auto).unwrap();
        assert_eq!(out.seg_type, SegmentationType::Labelmap);
        assert_eq!(out.chosen.number, 1);
        assert!(out.frames_total < ct.dims()[2], "{seg}: expected a sparse SEG");
        assert_matches_labelmap(&format!("dcmqi {seg} on CT"), &out.mask, &lg, &labels, 1);
    }
}

/// Five partially overlapping segments, each compared with its own source label
/// (seg-example_partial_overlaps.json: labels 1, 4, 5 in -1.nrrd, 2 in -2, 3 in -3).
#[test]
fn dcmqi_partial_overlaps_each_segment() {
    let Some(dir) = require_shared!("corpora/dcmqi/data/segmentations") else { return };
    let ct = ct_geometry(&dir.join("ct-3slice"));
    let seg_path = dir.join("partial_overlaps.dcm");
    match read_seg(&seg_path, Some(&ct), SegmentChoice::Auto) {
        Err(Error::Ambiguous { message, .. }) => assert!(message.contains("GREEN"), "{message}"),
        other => panic!("5 segments without liver must be ambiguous, got {:?}", other.map(|o| o.chosen)),
    }
    for (segment, file) in [(1u16, "partial_overlaps-1.nrrd"), (2, "partial_overlaps-2.nrrd"), (3, "partial_overlaps-3.nrrd"), (4, "partial_overlaps-1.nrrd"), (5, "partial_overlaps-1.nrrd")] {
        let (lg, labels) = read_nrrd(&dir.join(file));
        let out = read_seg(&seg_path, Some(&ct), SegmentChoice::Number(segment)).unwrap();
        assert_matches_labelmap(&format!("partial_overlaps segment {segment} ({})", out.chosen.label), &out.mask, &lg, &labels, segment as i64);
    }
    let by_label = read_seg(&seg_path, Some(&ct), SegmentChoice::Label("purple".into())).unwrap();
    assert_eq!(by_label.chosen.number, 3);
}

/// highdicom's CT SEGs: BINARY and FRACTIONAL-with-binary-values give the same mask;
/// counts agree with pydicom's decoded arrays; overlapping segments are separate.
#[test]
fn highdicom_ct_segs() {
    let Some(dir) = require_shared!("corpora/highdicom/data/test_files") else { return };
    let readings = readings();
    let mean = |f: &str| readings[format!("highdicom/data/test_files/{f}")]["read"]["pixels"]["mean"].as_f64().unwrap();
    let binary = read_seg(&dir.join("seg_image_ct_binary.dcm"), None, SegmentChoice::Auto).unwrap();
    let fractional = read_seg(&dir.join("seg_image_ct_binary_fractional.dcm"), None, SegmentChoice::Auto).unwrap();
    assert_eq!(fractional.seg_type, SegmentationType::Fractional);
    assert!(binary.mask.geometry().same_grid(fractional.mask.geometry()));
    assert_eq!(binary.mask.data(), fractional.mask.data());
    let n = binary.mask.count_foreground();
    assert_eq!(binary.mask.dims(), [16, 16, 3]);
    assert!((n as f64 - mean("seg_image_ct_binary.dcm") * 768.0).abs() < 0.5, "{n}");
    eprintln!("highdicom ct binary / binary-fractional: {n} voxels, bbox {:?}", world_bbox(&binary.mask));

    // True fractional values: foreground where value >= max/2. Checked against the
    // decoded values directly, and the result lies inside the binary mask.
    let tf_path = dir.join("seg_image_ct_true_fractional.dcm");
    let tf = read_seg(&tf_path, None, SegmentChoice::Auto).unwrap();
    let seg = open_seg(&tf_path).unwrap().unwrap();
    let max = seg.max_fractional_value.unwrap();
    let expected: usize = (0..seg.frames.len()).map(|f| seg.frame_values(f).unwrap().iter().filter(|&&v| 2 * v >= max).count()).sum();
    assert_eq!(tf.mask.count_foreground(), expected);
    assert!(expected > 0 && expected < n * 2);
    eprintln!("highdicom ct true fractional (max {max}): {expected} voxels at >= 0.5");

    // Two overlapping segments on 8 frames: neither is liver, so Auto is ambiguous.
    let ov = dir.join("seg_image_ct_binary_overlap.dcm");
    assert!(matches!(read_seg(&ov, None, SegmentChoice::Auto), Err(Error::Ambiguous { .. })));
    let a = read_seg(&ov, None, SegmentChoice::Number(1)).unwrap();
    let b = read_seg(&ov, None, SegmentChoice::Number(2)).unwrap();
    let total = a.mask.count_foreground() + b.mask.count_foreground();
    assert!((total as f64 - mean("seg_image_ct_binary_overlap.dcm") * 8.0 * 256.0).abs() < 0.5);
    let overlap = a.mask.data().iter().zip(b.mask.data()).filter(|(x, y)| **x == 1 && **y == 1).count();
    assert!(overlap > 0, "highdicom says these segments overlap");
    eprintln!("highdicom ct overlap: segment 1 {} voxels, segment 2 {} voxels, {overlap} shared", a.mask.count_foreground(), b.mask.count_foreground());

    // Single-frame SEG of ct_image.dcm, read on that CT's grid.
    let ct = ct_geometry_single(&dir.join("ct_image.dcm"));
    let sf = read_seg(&dir.join("seg_image_ct_binary_single_frame.dcm"), Some(&ct), SegmentChoice::Auto).unwrap();
    let want = mean("seg_image_ct_binary_single_frame.dcm") * 128.0 * 128.0;
    assert!((sf.mask.count_foreground() as f64 - want).abs() < 0.5, "{} vs {want}", sf.mask.count_foreground());
    eprintln!("highdicom single frame on ct_image.dcm: {} voxels, bbox {:?}", sf.mask.count_foreground(), world_bbox(&sf.mask));
}

fn ct_geometry_single(file: &Path) -> Geometry {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(file, dir.path().join("a.dcm")).unwrap();
    ct_geometry(dir.path())
}

/// pydicom's one-frame liver SEGs (little and big endian) decode identically and
/// put the pixels pydicom's tests assert where they belong.
#[test]
fn pydicom_liver_1frame() {
    let Some(dir) = require_shared!("corpora/pydicom/test_files") else { return };
    let le = open_seg(&dir.join("liver_1frame.dcm")).unwrap().unwrap();
    let be = open_seg(&dir.join("liver_expb_1frame.dcm")).unwrap().unwrap();
    let a = le.frame_values(0).unwrap();
    assert_eq!(a, be.frame_values(0).unwrap());
    // pydicom pixels_reference EXPL_1_1_1F: arr[155, 180:183] == (0, 1, 1), arr[155, 310:314] == (1, 0, 1, 0).
    assert_eq!(&a[155 * 512 + 180..155 * 512 + 183], &[0, 1, 1]);
    assert_eq!(&a[155 * 512 + 310..155 * 512 + 314], &[1, 0, 1, 0]);
    let m = read_seg(&dir.join("liver_expb_1frame.dcm"), None, SegmentChoice::Auto).unwrap();
    assert_eq!(m.mask.dims(), [512, 512, 1]);
    assert_eq!(m.mask.count_foreground(), a.iter().filter(|&&v| v == 1).count());
    eprintln!("pydicom liver_1frame: {} voxels, frame at {:?}", m.mask.count_foreground(), le.frames[0].plane.unwrap().position);
    // It is frame 1 of dcmqi's liver.dcm: on the 3-slice CT it equals slice 0 of
    // the dcmqi label map and nothing else.
    let Some(dcmqi) = require_shared!("corpora/dcmqi/data/segmentations") else { return };
    let ct = ct_geometry(&dcmqi.join("ct-3slice"));
    let (lg, mut labels) = read_nrrd(&dcmqi.join("liver_seg.nrrd"));
    let plane = 512 * 512;
    labels[plane..].iter_mut().for_each(|v| *v = 0);
    let on_ct = read_seg(&dir.join("liver_1frame.dcm"), Some(&ct), SegmentChoice::Auto).unwrap();
    assert!(on_ct.info.warnings.iter().any(|w| w.contains("extra items")), "{:?}", on_ct.info.warnings);
    assert_matches_labelmap("pydicom liver_1frame on dcmqi CT", &on_ct.mask, &lg, &labels, 1);
}

/// Errors on a mismatched reference: a grid that misses the SEG's slices.
#[test]
fn seg_off_the_reference_grid_is_an_error() {
    let Some(dir) = require_shared!("corpora/dcmqi/data/segmentations") else { return };
    let ct = ct_geometry(&dir.join("ct-3slice"));
    // Shift the grid by half a slice: every frame lies between slices.
    let shifted = Geometry::new(ct.dims(), ct.spacing(), [ct.origin()[0], ct.origin()[1], ct.origin()[2] + 0.5], ct.direction()).unwrap();
    let e = read_seg(&dir.join("liver.dcm"), Some(&shifted), SegmentChoice::Auto).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("between reference slices"), "{e}");
    // The 24x38 grid is elsewhere in space.
    let other = ct_geometry(&dir.join("24x38x3/image"));
    let e = read_seg(&dir.join("liver.dcm"), Some(&other), SegmentChoice::Auto).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e}");
    eprintln!("off-grid: {e}");
    // A CT is not a SEG.
    assert!(liverseg_io::dicom::seg::try_read_seg(&dir.join("ct-3slice/01.dcm"), None).unwrap().is_none());
}
