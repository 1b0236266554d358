//! Damaged or unsupported MetaImage files: a clear error naming the file and the
//! problem, checked before anything large is allocated.

use flate2::{write::ZlibEncoder, Compression};
use liverseg_io::{metaimage, Error, ReadOptions};
use liverseg_volume::{DynVolume, Geometry, Volume};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn put(dir: &Path, name: &str, header: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(data);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn header(ndims: &str, dims: &str, etype: &str, data_file: &str) -> String {
    format!(
        "ObjectType = Image\nNDims = {ndims}\nBinaryData = True\nBinaryDataByteOrderMSB = False\nDimSize = {dims}\n\
         ElementType = {etype}\nElementDataFile = {data_file}\n"
    )
}

fn err(path: &Path) -> Error {
    match metaimage::read(path, &ReadOptions::default()) {
        Ok(_) => panic!("{} read without error", path.display()),
        Err(e) => {
            assert_eq!(e.path(), path, "the error names the header");
            e
        }
    }
}

#[test]
fn truncated_data_is_an_invalid_error_naming_the_data_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.raw"), vec![0u8; 4 * 4 * 4 * 2 - 1]).unwrap();
    let p = put(dir.path(), "a.mhd", &header("3", "4 4 4", "MET_SHORT", "short.raw"), &[]);
    let e = err(&p);
    assert!(matches!(e, Error::Invalid { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("short.raw") && msg.contains("truncated") && msg.contains("127") && msg.contains("128"), "{msg}");

    // LOCAL, uncompressed
    let p = put(dir.path(), "b.mha", &header("3", "4 4 4", "MET_SHORT", "LOCAL"), &[0u8; 100]);
    let msg = err(&p).to_string();
    assert!(msg.contains("truncated") && msg.contains("100"), "{msg}");

    // LOCAL, compressed stream cut in half
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&(0..20000u32).flat_map(|v| v.wrapping_mul(2654435761).to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let full = z.finish().unwrap();
    let h = header("3", "100 100 2", "MET_UINT", "LOCAL").replace("BinaryData = True", "BinaryData = True\nCompressedData = True");
    let p = put(dir.path(), "c.mha", &h, &full[..full.len() / 2]);
    let msg = err(&p).to_string();
    assert!(msg.contains("truncated") || msg.contains("compressed"), "{msg}");
    // and the complete one reads
    let ok = put(dir.path(), "c_ok.mha", &h, &full);
    metaimage::read(&ok, &ReadOptions::default()).unwrap();

    // compressed garbage
    let p = put(dir.path(), "d.mha", &h, &[0x78, 0x9c, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13]);
    assert!(matches!(err(&p), Error::Invalid { .. }));
}

#[test]
fn bad_element_types() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "a.mha", &header("2", "2 2", "MET_QUATERNION", "LOCAL"), &[0; 64]);
    let e = err(&p);
    assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("MET_QUATERNION"), "{e}");

    let p = put(dir.path(), "b.mha", &header("2", "2 2", "MET_FLOAT_ARRAY", "LOCAL"), &[0; 64]);
    let e = err(&p);
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("MET_FLOAT_ARRAY"), "{e}");

    let h = header("2", "2 2", "MET_UCHAR", "LOCAL").replace("DimSize", "ElementNumberOfChannels = 3\nDimSize");
    let p = put(dir.path(), "c.mha", &h, &[0; 64]);
    let e = err(&p);
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("ElementNumberOfChannels = 3"), "{e}");

    let p = put(dir.path(), "d.mha", "ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementDataFile = LOCAL\n", &[0; 4]);
    assert!(err(&p).to_string().contains("ElementType is missing"));
}

#[test]
fn missing_data_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "a.mhd", &header("3", "2 2 2", "MET_UCHAR", "gone (1).raw"), &[]);
    let msg = err(&p).to_string();
    assert!(msg.contains("gone (1).raw") && msg.contains("does not exist"), "{msg}");

    let p = put(dir.path(), "list.mhd", &format!("{}s0.raw\n", header("3", "2 2 2", "MET_UCHAR", "LIST")), &[]);
    std::fs::write(dir.path().join("s0.raw"), [0u8; 4]).unwrap();
    let msg = err(&p).to_string();
    assert!(msg.contains("LIST") && msg.contains("1 data files"), "{msg}");

    let p = put(dir.path(), "pat.mhd", &header("3", "2 2 2", "MET_UCHAR", "s%d.raw 0 1 1"), &[]);
    let msg = err(&p).to_string();
    assert!(msg.contains("s1.raw") && msg.contains("does not exist"), "{msg}");
}

#[test]
fn bad_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "a.mha", &header("5", "2 2 2 2 2", "MET_UCHAR", "LOCAL"), &[0; 32]);
    let e = err(&p);
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("NDims = 5"), "{e}");
    for (nd, dims) in [("0", "1"), ("3", "2 2"), ("3", "2 0 2"), ("3", "2 -1 2"), ("3", "2 x 2"), ("x", "2")] {
        let p = put(dir.path(), "b.mha", &header(nd, dims, "MET_UCHAR", "LOCAL"), &[0; 32]);
        assert!(matches!(err(&p), Error::Invalid { .. }), "NDims {nd} DimSize {dims}");
    }
    let p = put(dir.path(), "c.mha", &header("3", "2 2 2", "MET_UCHAR", "LOCAL").replace("NDims", "Spacing = 1\nNDimz"), &[0; 8]);
    assert!(err(&p).to_string().contains("NDims is missing"));
    // volume index out of range
    let p = put(dir.path(), "d.mha", &header("4", "1 1 1 2", "MET_UCHAR", "LOCAL"), &[0; 2]);
    let e = metaimage::read(&p, &ReadOptions { volume_index: 2, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    // singular direction, zero spacing
    let p = put(dir.path(), "e.mha", &header("2", "1 1", "MET_UCHAR", "LOCAL").replace("DimSize", "TransformMatrix = 1 0 1 0\nDimSize"), &[0]);
    assert!(err(&p).to_string().contains("geometry"));
    let p = put(dir.path(), "f.mha", &header("2", "1 1", "MET_UCHAR", "LOCAL").replace("DimSize", "ElementSpacing = 0 1\nDimSize"), &[0]);
    assert!(err(&p).to_string().contains("spacing"));
}

/// Allocation bombs: a tiny file claiming huge dimensions fails at once.
#[test]
fn absurd_dim_size_fails_fast_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    for (name, dims, compressed) in [
        ("a.mha", "100000 100000 100000", false),
        ("b.mha", "100000 100000 100000", true),
        ("c.mha", "4294967296 4294967296 4294967296", false),
        ("d.mha", "3000 3000 3000", true),
        ("e.mhd", "1 1 100000000000", false),
    ] {
        let mut h = header("3", dims, "MET_SHORT", "LOCAL");
        if compressed {
            h = h.replace("BinaryData = True", "BinaryData = True\nCompressedData = True");
        }
        if name.ends_with(".mhd") {
            h = h.replace("LOCAL", "im%d.raw");
        }
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&[0u8; 1000]).unwrap();
        let p = put(dir.path(), name, &h, &z.finish().unwrap());
        let e = err(&p);
        assert!(matches!(e, Error::Invalid { .. } | Error::Unsupported { .. }), "{name}: {e}");
    }
    assert!(t.elapsed().as_secs_f64() < 2.0, "took {:?}", t.elapsed());
}

#[test]
fn not_a_metaimage() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "empty.mha", "", &[]);
    assert!(err(&p).to_string().contains("empty"));
    let p = put(dir.path(), "bin.mha", "", &(0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>());
    assert!(matches!(err(&p), Error::Invalid { .. }));
    let p = put(dir.path(), "noedf.mha", "ObjectType = Image\nNDims = 3\n", &[]);
    assert!(err(&p).to_string().contains("ElementDataFile"));
    let p = put(dir.path(), "tube.mha", &header("3", "1 1 1", "MET_UCHAR", "LOCAL").replace("= Image", "= Tube"), &[0]);
    assert!(matches!(err(&p), Error::Unsupported { .. }));
    let e = metaimage::read(&dir.path().join("nothing.mha"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn writer_refuses_bad_targets_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v = DynVolume::from(Volume::filled(Geometry::identity([2, 2, 2], [1.0; 3]).unwrap(), 7i16));
    assert!(matches!(metaimage::write(&dir.path().join("x.nrrd"), &v), Err(Error::Unsupported { .. })));
    assert!(metaimage::write(&dir.path().join("no/such/folder/x.mhd"), &v).is_err());
    assert!(metaimage::write(&dir.path().join("no/such/folder/x.mha"), &v).is_err());
    assert!(matches!(metaimage::write(&dir.path().join("LISTING.mhd"), &v), Err(Error::Unsupported { .. })));
    assert!(matches!(metaimage::write(&dir.path().join("scan%1.mhd"), &v), Err(Error::Unsupported { .. })));
    // '%' is harmless in a one-file .mha (ElementDataFile = LOCAL)
    metaimage::write(&dir.path().join("scan%1.mha"), &v).unwrap();
    std::fs::remove_file(dir.path().join("scan%1.mha")).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // overwriting an existing pair replaces both files, leaving no temporaries
    let p = dir.path().join("pair.mhd");
    metaimage::write(&p, &v).unwrap();
    let w = DynVolume::from(Volume::filled(Geometry::identity([3, 2, 2], [1.0; 3]).unwrap(), -5i16));
    metaimage::write(&p, &w).unwrap();
    let back = metaimage::read(&p, &ReadOptions::default()).unwrap().volume;
    assert_eq!(back, w);
    let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["pair.mhd", "pair.raw"]);
}
