//! MetaImage round trips (every dtype, oblique grids, .mha and .mhd), ITK-format
//! agreement, and the header features ITK's MetaIO reads (synonyms, LIST and
//! pattern data files, HeaderSize, byte order, gzip, text data, 2-D and 4-D).

use flate2::{write::ZlibEncoder, Compression};
use liverseg_io::{metaimage, ReadOptions};
use liverseg_volume::{dyn_dispatch, DType, DynVolume, Geometry, Volume};
use std::io::Write;
use std::path::Path;

fn read(path: &Path) -> DynVolume {
    metaimage::read(path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}")).volume
}

fn le_bytes(v: &DynVolume) -> Vec<u8> {
    let mut out = Vec::new();
    dyn_dispatch!(v, vol => for x in vol.data() { out.extend_from_slice(&x.to_le_bytes()) });
    out
}

/// Rotation by `angle` about the unit axis `u`, as a direction matrix (columns = axes).
fn rotation(u: [f64; 3], angle: f64) -> [[f64; 3]; 3] {
    let n = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt();
    let [x, y, z] = [u[0] / n, u[1] / n, u[2] / n];
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

fn oblique_geometry(dims: [usize; 3]) -> Geometry {
    Geometry::new(dims, [0.7031250000000001, 0.9, 2.5], [-123.456789012345, 98.7654321, -1e-7], rotation([0.3, -0.5, 0.8], 0.7))
        .unwrap()
}

/// A volume of `dtype` whose values cover the type's extremes and vary per voxel.
fn volume_of(dtype: DType, g: Geometry) -> DynVolume {
    macro_rules! ints {
        ($t:ty) => {{
            let vals = [<$t>::MIN, <$t>::MAX, 0 as $t, 1 as $t];
            DynVolume::from(Volume::from_fn(g, |[i, j, k]| {
                let o = i + 3 * j + 7 * k;
                if o < 4 { vals[o] } else { (o as $t).wrapping_mul(37 as $t) }
            }))
        }};
    }
    macro_rules! floats {
        ($t:ty) => {{
            let vals = [<$t>::MIN, <$t>::MAX, <$t>::MIN_POSITIVE, -0.0, <$t>::NAN, <$t>::INFINITY];
            DynVolume::from(Volume::from_fn(g, |[i, j, k]| {
                let o = i + 3 * j + 7 * k;
                if o < vals.len() { vals[o] } else { (o as $t) * 0.1 - 3.0 }
            }))
        }};
    }
    match dtype {
        DType::U8 => ints!(u8),
        DType::I8 => ints!(i8),
        DType::U16 => ints!(u16),
        DType::I16 => ints!(i16),
        DType::U32 => ints!(u32),
        DType::I32 => ints!(i32),
        DType::U64 => ints!(u64),
        DType::I64 => ints!(i64),
        DType::F32 => floats!(f32),
        DType::F64 => floats!(f64),
    }
}

const ALL: [DType; 10] =
    [DType::U8, DType::I8, DType::U16, DType::I16, DType::U32, DType::I32, DType::U64, DType::I64, DType::F32, DType::F64];

fn assert_same_grid(a: &Geometry, b: &Geometry) {
    assert_eq!(a.dims(), b.dims());
    assert_eq!(a.spacing(), b.spacing(), "spacing must round-trip exactly");
    assert_eq!(a.origin(), b.origin(), "origin must round-trip exactly");
    for (x, y) in a.direction_flat().iter().zip(b.direction_flat()) {
        // Direction columns are renormalised on reading: at most an ulp or two.
        assert!((x - y).abs() <= 4.0 * f64::EPSILON, "direction {:?} vs {:?}", a.direction(), b.direction());
    }
}

#[test]
fn every_dtype_round_trips_in_mha_and_mhd() {
    let dir = tempfile::tempdir().unwrap();
    for dims in [[5, 4, 3], [6, 5, 1]] {
        for dtype in ALL {
            let original = volume_of(dtype, oblique_geometry(dims));
            for ext in ["mha", "mhd"] {
                let path = dir.path().join(format!("v_{dtype}_{}.{ext}", dims[2]));
                metaimage::write(&path, &original).unwrap();
                let back = read(&path);
                assert_eq!(back.dtype(), dtype, "{ext}");
                assert_same_grid(back.geometry(), original.geometry());
                assert_eq!(le_bytes(&back), le_bytes(&original), "{dtype} {ext}: voxels");
            }
        }
    }
    // .mhd wrote a .raw beside it, uncompressed; .mha is one compressed file.
    let mhd = std::fs::read_to_string(dir.path().join("v_int16_3.mhd")).unwrap();
    assert!(mhd.contains("ElementDataFile = v_int16_3.raw\n") && mhd.contains("CompressedData = False"), "{mhd}");
    assert_eq!(std::fs::metadata(dir.path().join("v_int16_3.raw")).unwrap().len(), 5 * 4 * 3 * 2);
    let mha = std::fs::read(dir.path().join("v_int16_3.mha")).unwrap();
    let text = String::from_utf8_lossy(&mha[..mha.len().min(600)]);
    assert!(text.contains("CompressedData = True") && text.contains("ElementType = MET_SHORT"), "{text}");
    // Nothing but the outputs is left in the folder (no temporaries).
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(names.iter().all(|n| n.ends_with(".mha") || n.ends_with(".mhd") || n.ends_with(".raw")), "{names:?}");
}

/// `%.17g`, the way ITK (std::ostream, precision 17) prints header numbers.
fn itk_number(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{v:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let strip = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if !(-5..17).contains(&exp) {
        let m = strip(mantissa.to_string());
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        strip(format!("{v:.decimals$}"))
    }
}

#[test]
fn itk_number_formatting_matches_known_headers() {
    // Values as printed in niivue's mha.mha (written by ITK).
    assert_eq!(itk_number(3.437500000000001), "3.4375000000000009");
    assert_eq!(itk_number(-108.28100000000002), "-108.28100000000002");
    assert_eq!(itk_number(82.37950000000001), "82.379500000000007");
    assert_eq!(itk_number(1.0), "1");
    assert_eq!(itk_number(1e-7), "9.9999999999999995e-08");
}

/// A header exactly as ITK's MetaImageIO writes it (field order, `%.17g`
/// numbers), for a volume we also write ourselves: both read back the same.
#[test]
fn itk_formatted_header_and_ours_agree() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [DType::I16, DType::U8, DType::F32] {
        let v = volume_of(dtype, oblique_geometry([7, 6, 5]));
        let g = v.geometry();
        let d = g.direction();
        let join = |xs: Vec<f64>| xs.into_iter().map(itk_number).collect::<Vec<_>>().join(" ");
        let tm = join((0..3).flat_map(|c| (0..3).map(move |r| d[r][c])).collect());
        let data = le_bytes(&v);
        for compressed in [false, true] {
            let payload = if compressed {
                let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
                e.write_all(&data).unwrap();
                e.finish().unwrap()
            } else {
                data.clone()
            };
            let mut h = String::from("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n");
            if compressed {
                h += &format!("CompressedData = True\nCompressedDataSize = {}\n", payload.len());
            } else {
                h += "CompressedData = False\n";
            }
            h += &format!("TransformMatrix = {tm}\nOffset = {}\nCenterOfRotation = 0 0 0\n", join(g.origin().to_vec()));
            // Deliberately not this grid's acronym (RAI): must be ignored, with a warning.
            h += "AnatomicalOrientation = LPS\n";
            h += &format!("ElementSpacing = {}\nDimSize = 7 6 5\n", join(g.spacing().to_vec()));
            h += &format!("ElementType = {}\nElementDataFile = LOCAL\n", itk_type(dtype));
            let itk_path = dir.path().join(format!("itk_{dtype}_{compressed}.mha"));
            let mut bytes = h.into_bytes();
            bytes.extend_from_slice(&payload);
            std::fs::write(&itk_path, bytes).unwrap();
            let ours = dir.path().join(format!("ours_{dtype}.mha"));
            metaimage::write(&ours, &v).unwrap();

            let a = metaimage::read(&itk_path, &ReadOptions::default()).unwrap();
            let b = read(&ours);
            assert_eq!(a.volume.geometry(), b.geometry(), "{dtype} compressed={compressed}");
            assert_eq!(le_bytes(&a.volume), le_bytes(&b));
            assert_eq!(a.volume.dtype(), dtype);
            assert!(a.info.warnings.iter().any(|w| w.contains("AnatomicalOrientation")), "{:?}", a.info.warnings);
        }
    }
}

fn itk_type(dtype: DType) -> &'static str {
    match dtype {
        DType::I16 => "MET_SHORT",
        DType::U8 => "MET_UCHAR",
        DType::F32 => "MET_FLOAT",
        _ => unreachable!(),
    }
}

/// Write `header` (+ `data` appended when given) to `dir/name`.
fn put(dir: &Path, name: &str, header: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(data);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn close3(a: [f64; 3], b: [f64; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

/// World coordinates worked out by hand for a non-symmetric TransformMatrix.
/// `TransformMatrix = 0 1 0  0 0 1  1 0 0` lists axis 0 = (0,1,0), axis 1 =
/// (0,0,1), axis 2 = (1,0,0) (ITK's reading). With spacing (2,3,4) and
/// offset (10,20,30):
///   voxel (1,0,0) -> (10, 22, 30); voxel (0,1,0) -> (10, 20, 33);
///   voxel (0,0,1) -> (14, 20, 30); voxel (1,1,1) -> (14, 22, 33).
/// Reading the matrix row-major instead would put voxel (1,0,0) at (10, 20, 32).
#[test]
fn oblique_transform_matrix_follows_itk() {
    let dir = tempfile::tempdir().unwrap();
    let h = "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n\
             TransformMatrix = 0 1 0 0 0 1 1 0 0\nOffset = 10 20 30\nAnatomicalOrientation = RAI\n\
             ElementSpacing = 2 3 4\nDimSize = 2 2 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n";
    let p = put(dir.path(), "perm.mha", h, &[0, 1, 2, 3, 4, 5, 6, 7]);
    let out = metaimage::read(&p, &ReadOptions::default()).unwrap();
    let g = out.volume.geometry();
    assert!(close3(g.index_to_world([1.0, 0.0, 0.0]), [10.0, 22.0, 30.0]), "{:?}", g.index_to_world([1.0, 0.0, 0.0]));
    assert!(close3(g.index_to_world([0.0, 1.0, 0.0]), [10.0, 20.0, 33.0]));
    assert!(close3(g.index_to_world([0.0, 0.0, 1.0]), [14.0, 20.0, 30.0]));
    assert!(close3(g.index_to_world([1.0, 1.0, 1.0]), [14.0, 22.0, 33.0]));
    assert_eq!(g.direction_flat(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "ITK GetDirection() order");
    // The true acronym here is "IRP"... the header's RAI is ignored, with a warning.
    assert!(out.info.warnings.iter().any(|w| w.contains("AnatomicalOrientation = RAI")), "{:?}", out.info.warnings);
    // Voxel order is untouched: x fastest.
    assert_eq!(out.volume.value_f64(g.offset(1, 0, 1)), 5.0);

    // A 30-degree rotation in the x-y plane: axis 0 = (c, s, 0), axis 1 = (-s, c, 0).
    let (s, c) = (0.5f64, 3f64.sqrt() / 2.0);
    let h = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nTransformMatrix = {c} {s} 0 {} {c} 0 0 0 1\nOffset = 1 2 3\n\
         ElementSpacing = 2 1 1\nDimSize = 2 2 1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n",
        -s
    );
    let p = put(dir.path(), "rot.mha", &h, &[0, 0, 0, 0]);
    let g = read(&p).geometry().clone();
    // voxel (1,0,0): origin + 2 * (c, s, 0) = (1 + 2c, 2 + 1, 3)
    assert!(close3(g.index_to_world([1.0, 0.0, 0.0]), [1.0 + 2.0 * c, 3.0, 3.0]), "{:?}", g.index_to_world([1.0, 0.0, 0.0]));
    // voxel (0,1,0): origin + 1 * (-s, c, 0)
    assert!(close3(g.index_to_world([0.0, 1.0, 0.0]), [0.5, 2.0 + c, 3.0]));
    // and writing it back keeps the same world coordinates
    let out = dir.path().join("rot_out.mhd");
    metaimage::write(&out, &read(&p)).unwrap();
    let g2 = read(&out).geometry().clone();
    assert!(close3(g2.index_to_world([1.0, 1.0, 0.0]), g.index_to_world([1.0, 1.0, 0.0])));
    let text = std::fs::read_to_string(&out).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("TransformMatrix = ")).unwrap();
    let written: Vec<f64> = line.split(' ').map(|w| w.parse().unwrap()).collect();
    for (w, e) in written.iter().zip([c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0]) {
        assert!((w - e).abs() < 1e-15, "{text}");
    }
}

#[test]
fn header_synonyms_spacing_fallback_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    // CRLF, extra spaces, Position/Orientation synonyms, ElementSize for spacing,
    // an unknown key, BigEndian via ElementByteOrderMSB.
    let h = "ObjectType =  Image  \r\nNDims=3\r\nBinaryData = True\r\nElementByteOrderMSB = True\r\n\
             Position =  1.5   -2 3\r\nOrientation = -1 0 0 0 -1 0 0 0 1\r\nElementSize = 0.5 0.25 2\r\n\
             Modality = MET_MOD_CT\r\nDimSize =   3 1 1 \r\nElementType = MET_SHORT\r\nElementDataFile = LOCAL\r\n";
    let data: Vec<u8> = [-1024i16, 7, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
    let p = put(dir.path(), "syn.mha", h, &data);
    let out = metaimage::read(&p, &ReadOptions::default()).unwrap();
    let g = out.volume.geometry();
    assert_eq!(g.origin(), [1.5, -2.0, 3.0]);
    assert_eq!(g.spacing(), [0.5, 0.25, 2.0]);
    assert_eq!(g.direction_flat(), [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!((0..3).map(|i| out.volume.value_f64(i)).collect::<Vec<_>>(), [-1024.0, 7.0, 300.0]);

    // ElementSpacing wins over ElementSize; Origin over Offset, as in MetaIO (with a warning).
    let h = "NDims = 2\nBinaryData = True\nOrigin = 5 5\nOffset = 1 2\nElementSize = 9 9\nElementSpacing = 0.5 0.5\n\
             DimSize = 2 1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n";
    let p = put(dir.path(), "prec.mha", h, &[1, 2]);
    let out = metaimage::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(out.volume.geometry().origin(), [5.0, 5.0, 0.0]);
    assert_eq!(out.volume.geometry().spacing(), [0.5, 0.5, 1.0]);
    assert!(out.info.warnings.iter().any(|w| w.contains("Offset differs from Origin")), "{:?}", out.info.warnings);
}

#[test]
fn data_file_variants() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data (v2), final");
    std::fs::create_dir(&sub).unwrap();
    let slices: Vec<Vec<u8>> = (0..3u8).map(|k| (0..6u8).map(|i| 10 * k + i).collect()).collect();
    let all: Vec<u8> = slices.concat();
    let common = "ObjectType = Image\nNDims = 3\nBinaryData = True\nDimSize = 3 2 3\nElementType = MET_UCHAR\n";
    let expect = |p: &Path| {
        let v = read(p);
        assert_eq!(le_bytes(&v), all, "{}", p.display());
        assert_eq!(v.geometry().dims(), [3, 2, 3]);
    };

    // single file with spaces, parentheses and commas in folder and name, relative to the header
    std::fs::write(sub.join("my data (1,2).raw"), &all).unwrap();
    expect(&put(dir.path(), "single.mhd", &format!("{common}ElementDataFile = data (v2), final/my data (1,2).raw\n"), &[]));
    // absolute path
    expect(&put(dir.path(), "abs.mhd", &format!("{common}ElementDataFile = {}\n", sub.join("my data (1,2).raw").display()), &[]));

    // LIST: one file per slice, names on the following lines
    for (k, s) in slices.iter().enumerate() {
        std::fs::write(sub.join(format!("slice {k}.raw")), s).unwrap();
    }
    expect(&put(
        &sub,
        "list.mhd",
        &format!("{common}ElementDataFile = LIST\nslice 0.raw\r\n\nslice 1.raw\nslice 2.raw\n"),
        &[],
    ));
    // LIST 2D spelled out
    expect(&put(&sub, "list2d.mhd", &format!("{common}ElementDataFile = LIST 2D\nslice 0.raw\nslice 1.raw\nslice 2.raw\n"), &[]));

    // printf pattern: min max step
    for (k, s) in slices.iter().enumerate() {
        std::fs::write(sub.join(format!("im{:03}.raw", 2 * k + 1)), s).unwrap();
    }
    expect(&put(&sub, "pattern.mhd", &format!("{common}ElementDataFile = im%03d.raw 1 5 2\n"), &[]));

    // HeaderSize > 0: skip bytes at the start of the data file
    let mut with_junk = vec![0xAAu8; 17];
    with_junk.extend_from_slice(&all);
    std::fs::write(sub.join("junk.raw"), &with_junk).unwrap();
    expect(&put(&sub, "hs.mhd", &format!("{common}HeaderSize = 17\nElementDataFile = junk.raw\n"), &[]));
    // HeaderSize = -1: data are the last bytes of the file
    expect(&put(&sub, "hs-1.mhd", &format!("{common}HeaderSize = -1\nElementDataFile = junk.raw\n"), &[]));

    // compressed data in a separate file, gzip instead of zlib, no CompressedDataSize
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&all).unwrap();
    std::fs::write(sub.join("data.zraw"), gz.finish().unwrap()).unwrap();
    expect(&put(&sub, "gz.mhd", &format!("{common}CompressedData = True\nElementDataFile = data.zraw\n"), &[]));

    // compressed LOCAL without CompressedDataSize
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&all).unwrap();
    expect(&put(&sub, "z.mha", &format!("{common}CompressedData = True\nElementDataFile = LOCAL\n"), &z.finish().unwrap()));

    // text data (BinaryData = False)
    let text: String = all.iter().map(|v| format!("{v} ")).collect();
    let p = put(&sub, "ascii.mha", &format!("{}ElementDataFile = LOCAL\n", common.replace("BinaryData = True", "BinaryData = False")), text.as_bytes());
    expect(&p);
}

#[test]
fn two_d_and_four_d() {
    let dir = tempfile::tempdir().unwrap();
    // 2-D: nz = 1, third axis identity; no BinaryData key (MetaImage's default is binary)
    let h = "NDims = 2\nTransformMatrix = 0 1 1 0\nOffset = 3 4\nElementSpacing = 2 5\n\
             DimSize = 2 3\nElementType = MET_USHORT\nElementDataFile = LOCAL\n";
    let data: Vec<u8> = (0..6u16).flat_map(|v| (v * 1000).to_le_bytes()).collect();
    let v = read(&put(dir.path(), "two.mha", h, &data));
    let g = v.geometry();
    assert_eq!(g.dims(), [2, 3, 1]);
    assert_eq!(g.spacing(), [2.0, 5.0, 1.0]);
    assert_eq!(g.origin(), [3.0, 4.0, 0.0]);
    assert!(close3(g.index_to_world([1.0, 1.0, 0.0]), [3.0 + 5.0, 4.0 + 2.0, 0.0]));
    assert_eq!(v.value_f64(5), 5000.0);

    // 4-D: the chosen volume, with a warning
    let h = "NDims = 4\nBinaryData = True\nCompressedData = True\nDimSize = 2 1 1 3\nElementSpacing = 1 1 1 9\n\
             TransformMatrix = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n";
    let raw: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&raw).unwrap();
    let p = put(dir.path(), "four.mha", h, &z.finish().unwrap());
    for t in 0..3 {
        let out = metaimage::read(&p, &ReadOptions { volume_index: t, ..Default::default() }).unwrap();
        assert_eq!(out.volume.geometry().dims(), [2, 1, 1]);
        assert_eq!(le_bytes(&out.volume), raw[t * 8..t * 8 + 8].to_vec());
        assert!(out.info.warnings.iter().any(|w| w.contains("4-D")), "{:?}", out.info.warnings);
    }
}
