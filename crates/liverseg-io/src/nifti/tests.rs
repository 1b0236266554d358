use super::*;
use std::io::Write;

fn opts() -> ReadOptions {
    ReadOptions::default()
}

/// A minimal little- or big-endian single-file NIfTI-1 image, built field by
/// field from the standard's layout (independent of `Header::encode`).
struct Raw {
    dim: [i16; 8],
    pixdim: [f32; 8],
    datatype: i16,
    bitpix: i16,
    vox_offset: f32,
    slope: f32,
    inter: f32,
    qform_code: i16,
    sform_code: i16,
    quatern: [f32; 6],
    srow: [[f32; 4]; 3],
    magic: [u8; 4],
    big: bool,
}

impl Raw {
    fn new(dims: &[i16], datatype: i16, bitpix: i16) -> Self {
        let mut dim = [1i16; 8];
        dim[0] = dims.len() as i16;
        dim[1..=dims.len()].copy_from_slice(dims);
        Raw {
            dim,
            pixdim: [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
            datatype,
            bitpix,
            vox_offset: 352.0,
            slope: 0.0,
            inter: 0.0,
            qform_code: 0,
            sform_code: 1,
            quatern: [0.0; 6],
            srow: [[2.0, 0.0, 0.0, -10.0], [0.0, 3.0, 0.0, 20.0], [0.0, 0.0, 4.0, 30.0]],
            magic: *b"n+1\0",
            big: false,
        }
    }

    fn header(&self) -> Vec<u8> {
        let mut b = vec![0u8; 352];
        let big = self.big;
        let mut put = |at: usize, bytes: &[u8]| {
            let mut v = bytes.to_vec();
            if big {
                v.reverse();
            }
            b[at..at + v.len()].copy_from_slice(&v);
        };
        put(0, &348i32.to_le_bytes());
        for i in 0..8 {
            put(40 + 2 * i, &self.dim[i].to_le_bytes());
            put(76 + 4 * i, &self.pixdim[i].to_le_bytes());
        }
        put(70, &self.datatype.to_le_bytes());
        put(72, &self.bitpix.to_le_bytes());
        put(108, &self.vox_offset.to_le_bytes());
        put(112, &self.slope.to_le_bytes());
        put(116, &self.inter.to_le_bytes());
        put(252, &self.qform_code.to_le_bytes());
        put(254, &self.sform_code.to_le_bytes());
        for i in 0..6 {
            put(256 + 4 * i, &self.quatern[i].to_le_bytes());
        }
        for r in 0..3 {
            for c in 0..4 {
                put(280 + 16 * r + 4 * c, &self.srow[r][c].to_le_bytes());
            }
        }
        b[344..348].copy_from_slice(&self.magic);
        b
    }

    fn file(&self, data: &[u8]) -> Vec<u8> {
        let mut f = self.header();
        f.resize(self.vox_offset.max(352.0) as usize, 0);
        f.extend_from_slice(data);
        f
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn put_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn err_text(r: Result<ReadOutput>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_little_and_big_endian_int16_with_sform() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<i16> = (0..2 * 3 * 4).map(|v| v as i16 * 100 - 1000).collect();
    for big in [false, true] {
        let mut raw = Raw::new(&[2, 3, 4], 4, 16);
        raw.big = big;
        let data: Vec<u8> = values.iter().flat_map(|v| if big { v.to_be_bytes() } else { v.to_le_bytes() }).collect();
        let p = put_file(dir.path(), &format!("e{big}.nii"), &raw.file(&data));
        let out = read(&p, &opts()).unwrap();
        let DynVolume::I16(v) = &out.volume else { panic!("dtype {:?}", out.volume.dtype()) };
        assert_eq!(v.data(), &values[..]);
        let g = v.geometry();
        assert_eq!(g.dims(), [2, 3, 4]);
        assert_eq!(g.spacing(), [2.0, 3.0, 4.0]);
        // RAS (-10, 20, 30) is LPS (10, -20, 30).
        assert_eq!(g.origin(), [10.0, -20.0, 30.0]);
        assert_eq!(g.orientation_code(), "RAS");
        assert_eq!(out.info.format, Format::Nifti1);
        assert_eq!(out.info.details["transform"], "sform");
        assert_eq!(out.info.details["byte_order"], if big { "big" } else { "little" });
        assert!(out.info.warnings.is_empty(), "{:?}", out.info.warnings);
    }
}

#[test]
fn qform_is_used_when_sform_code_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[2, 2, 2], 2, 8);
    raw.sform_code = 0;
    raw.qform_code = 1;
    raw.pixdim[0] = -1.0; // qfac: third axis flipped
    raw.quatern = [0.0, 0.0, 1.0, 5.0, 6.0, 7.0]; // 180 degrees about z
    let p = put_file(dir.path(), "q.nii", &raw.file(&[0, 1, 2, 3, 4, 5, 6, 7]));
    let out = read(&p, &opts()).unwrap();
    assert_eq!(out.info.details["transform"], "qform");
    let g = out.volume.geometry();
    // RAS affine diag(-2, -3, -4) + (5, 6, 7): voxel (1,1,1) at RAS (3, 3, 3) = LPS (-3, -3, 3).
    let w = g.index_to_world([1.0, 1.0, 1.0]);
    for (a, e) in w.iter().zip([-3.0, -3.0, 3.0]) {
        assert!((a - e).abs() < 1e-12, "{w:?}");
    }
}

#[test]
fn method1_and_disagreeing_forms_warn() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[2, 2, 2], 2, 8);
    raw.sform_code = 0;
    let p = put_file(dir.path(), "m1.nii", &raw.file(&[0; 8]));
    let out = read(&p, &opts()).unwrap();
    assert_eq!(out.info.details["transform"], "pixdim");
    assert!(out.info.warnings.iter().any(|w| w.contains("method 1")), "{:?}", out.info.warnings);
    assert_eq!(out.volume.geometry().affine_ras()[0][0], 2.0);
    assert_eq!(out.volume.geometry().origin(), [0.0; 3]);

    raw.sform_code = 1;
    raw.qform_code = 1; // qform: identity rotation at offset 0, sform: offset (-10, 20, 30)
    let p = put_file(dir.path(), "disagree.nii", &raw.file(&[0; 8]));
    let out = read(&p, &opts()).unwrap();
    assert_eq!(out.info.details["transform"], "sform");
    assert!(out.info.warnings.iter().any(|w| w.contains("disagree")), "{:?}", out.info.warnings);
}

#[test]
fn singular_sform_falls_back_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[2, 2, 2], 2, 8);
    raw.srow = [[0.0; 4]; 3];
    let p = put_file(dir.path(), "zero-sform.nii", &raw.file(&[0; 8]));
    let out = read(&p, &opts()).unwrap();
    assert_eq!(out.info.details["transform"], "pixdim");
    assert!(out.info.warnings.iter().any(|w| w.contains("sform (code 1) is unusable")), "{:?}", out.info.warnings);
}

#[test]
fn scaling_promotes_like_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[3, 1, 1], 4, 16);
    raw.slope = 0.5;
    raw.inter = -1024.0;
    let data: Vec<u8> = [0i16, 2, 4096].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = put_file(dir.path(), "scaled.nii", &raw.file(&data));
    let out = read(&p, &opts()).unwrap();
    let DynVolume::F32(v) = &out.volume else { panic!("{:?}", out.volume.dtype()) };
    assert_eq!(v.data(), &[-1024.0, -1023.0, 1024.0]);

    // int32 source: f64 so large values stay exact.
    let mut raw = Raw::new(&[1, 1, 1], 8, 32);
    raw.slope = 1.0;
    raw.inter = 1.0;
    let p = put_file(dir.path(), "scaled32.nii", &raw.file(&16_777_217i32.to_le_bytes()));
    let DynVolume::F64(v) = read(&p, &opts()).unwrap().volume else { panic!() };
    assert_eq!(v.data(), &[16_777_218.0]);

    // (1, 0), (0, x) and NaN slopes keep the stored type.
    for (s, i) in [(1.0, 0.0), (0.0, 5.0), (f32::NAN, 3.0)] {
        let mut raw = Raw::new(&[1, 1, 1], 2, 8);
        raw.slope = s;
        raw.inter = i;
        let p = put_file(dir.path(), "unscaled.nii", &raw.file(&[7]));
        assert_eq!(read(&p, &opts()).unwrap().volume.dtype(), DType::U8, "slope {s} inter {i}");
    }
}

#[test]
fn four_d_picks_one_volume_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::new(&[2, 1, 1, 3], 2, 8);
    let p = put_file(dir.path(), "4d.nii", &raw.file(&[1, 2, 3, 4, 5, 6]));
    let out = read(&p, &ReadOptions { volume_index: 2, ..opts() }).unwrap();
    let DynVolume::U8(v) = &out.volume else { panic!() };
    assert_eq!(v.data(), &[5, 6]);
    assert!(out.info.warnings.iter().any(|w| w.contains("4-D") && w.contains("t=3")), "{:?}", out.info.warnings);
    assert_eq!(out.info.details["dims"], serde_json::json!([2, 1, 1, 3]));
    let e = err_text(read(&p, &ReadOptions { volume_index: 3, ..opts() }));
    assert!(e.contains("volume index 3 is out of range") && e.contains("3 volume"), "{e}");
}

#[test]
fn two_d_images_get_one_slice() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::new(&[3, 2], 2, 8);
    let p = put_file(dir.path(), "2d.nii", &raw.file(&[1, 2, 3, 4, 5, 6]));
    assert_eq!(read(&p, &opts()).unwrap().volume.geometry().dims(), [3, 2, 1]);
    let raw = Raw::new(&[3], 2, 8);
    let p = put_file(dir.path(), "1d.nii", &raw.file(&[1, 2, 3]));
    assert_eq!(read(&p, &opts()).unwrap().volume.geometry().dims(), [3, 1, 1]);
}

#[test]
fn truncated_and_bombed_files_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::new(&[10, 10, 10], 4, 16);
    let full = raw.file(&vec![0u8; 2000]);
    let p = put_file(dir.path(), "short.nii", &full[..full.len() - 1]);
    let e = err_text(read(&p, &opts()));
    assert!(e.contains("truncated: expected 2000 bytes of voxel data, found 1999"), "{e}");
    let p = put_file(dir.path(), "short.nii.gz", &gzip(&full[..full.len() - 10]));
    let e = err_text(read(&p, &opts()));
    assert!(e.contains("truncated: expected 2000 bytes of voxel data, found 1990"), "{e}");

    // Header claims ~8 TB: refused from the sizes alone, nothing allocated.
    let raw = Raw::new(&[32767, 32767, 32767, 100], 64, 64);
    let p = put_file(dir.path(), "bomb.nii", &raw.file(&[0; 64]));
    assert!(err_text(read(&p, &opts())).contains("truncated"));
    let p = put_file(dir.path(), "bomb.nii.gz", &gzip(&raw.file(&[0; 64])));
    assert!(err_text(read(&p, &opts())).contains("truncated"));

    // Damaged gzip: corrupt deflate data or a bad CRC.
    let mut gz = gzip(&Raw::new(&[10, 10, 10], 4, 16).file(&vec![7u8; 2000]));
    let n = gz.len();
    gz[n - 6] ^= 0xff; // inside the CRC32 trailer
    let p = put_file(dir.path(), "crc.nii.gz", &gz);
    assert!(err_text(read(&p, &opts())).contains("corrupt gzip"));
}

#[test]
fn bad_headers_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    type Corrupt = Box<dyn Fn(&mut Raw)>;
    let cases: Vec<(&str, Corrupt, &str)> = vec![
        ("zero-dim", Box::new(|r| r.dim[2] = 0), "dim[2] = 0"),
        ("neg-dim", Box::new(|r| r.dim[1] = -5), "dim[1] = -5"),
        ("dim0", Box::new(|r| r.dim[0] = 0), "dim[0] = 0"),
        ("complex", Box::new(|r| r.datatype = 32), "unsupported: complex"),
        ("rgb", Box::new(|r| r.datatype = 128), "unsupported: RGB"),
        ("unknown-dt", Box::new(|r| r.datatype = 9999), "unknown datatype code 9999"),
        ("offset", Box::new(|r| r.vox_offset = f32::NAN), "vox_offset"),
    ];
    for (name, change, expected) in cases {
        let mut raw = Raw::new(&[2, 2, 2], 2, 8);
        change(&mut raw);
        let p = put_file(dir.path(), &format!("{name}.nii"), &raw.file(&[0; 8]));
        let e = err_text(read(&p, &opts()));
        assert!(e.contains(expected), "{name}: {e}");
        assert!(e.contains(&format!("{name}.nii")), "error must name the file: {e}");
    }
    let p = put_file(dir.path(), "text.nii", b"hello, this is not an image at all");
    assert!(err_text(read(&p, &opts())).contains("not a NIfTI or Analyze file"));
    assert!(!looks_like_nifti(&p).unwrap());
    let p = put_file(dir.path(), "empty.nii", b"");
    assert!(err_text(read(&p, &opts())).contains("too short"));
}

#[test]
fn pairs_analyze_and_gzip_parts() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[2, 2, 1], 2, 8);
    raw.magic = *b"ni1\0";
    raw.vox_offset = 0.0;
    let hdr = raw.header()[..348].to_vec();
    let data = [9u8, 8, 7, 6];
    // .hdr + .img, named by either file; gzipped header and/or image.
    for (h, i) in [("a.hdr", "a.img"), ("b.hdr.gz", "b.img"), ("c.hdr", "c.img.gz"), ("d.HDR.GZ", "d.IMG.GZ")] {
        let hp = put_file(dir.path(), h, &if h.to_lowercase().ends_with(".gz") { gzip(&hdr) } else { hdr.clone() });
        let ip = put_file(dir.path(), i, &if i.to_lowercase().ends_with(".gz") { gzip(&data) } else { data.to_vec() });
        for p in [&hp, &ip] {
            let out = read(p, &opts()).unwrap();
            let DynVolume::U8(v) = &out.volume else { panic!() };
            assert_eq!(v.data(), &data, "{}", p.display());
            assert!(looks_like_nifti(&hp).unwrap());
        }
    }
    let hp = put_file(dir.path(), "lonely.hdr", &hdr);
    assert!(err_text(read(&hp, &opts())).contains(".img (or .img.gz) file is missing"));
    let ip = put_file(dir.path(), "orphan.img", &data);
    assert!(err_text(read(&ip, &opts())).contains("no matching .hdr"));

    // Analyze 7.5: no magic, no orientation.
    raw.magic = [0; 4];
    let hp = put_file(dir.path(), "an.hdr", &raw.header()[..348]);
    put_file(dir.path(), "an.img", &data);
    let out = read(&hp, &opts()).unwrap();
    assert_eq!(out.info.format, Format::Analyze);
    assert_eq!(out.info.details["transform"], "pixdim");
    assert!(out.info.warnings.iter().any(|w| w.contains("Analyze")));
    assert_eq!(out.volume.geometry().spacing(), [2.0, 3.0, 4.0]);
    // An Analyze/ni1 header in a .nii cannot say where its data is.
    let p = put_file(dir.path(), "an.nii", &raw.file(&data));
    assert!(err_text(read(&p, &opts())).contains("separate .img"));
}

#[test]
fn vox_offset_and_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[2, 1, 1], 2, 8);
    raw.vox_offset = 400.0;
    let mut f = raw.header();
    f[348] = 1; // extension flag, then an extension we must skip
    f.resize(400, 0xAA);
    f.extend_from_slice(&[3, 4]);
    let p = put_file(dir.path(), "ext.nii", &f);
    let DynVolume::U8(v) = read(&p, &opts()).unwrap().volume else { panic!() };
    assert_eq!(v.data(), &[3, 4]);
    // vox_offset 0 in a single file means "right after the header" (as nibabel reads it).
    raw.vox_offset = 0.0;
    let p = put_file(dir.path(), "zero-offset.nii", &raw.file(&[5, 6]));
    let DynVolume::U8(v) = read(&p, &opts()).unwrap().volume else { panic!() };
    assert_eq!(v.data(), &[5, 6]);
}

// ---- writer ----

fn rot(axis: usize, deg: f64) -> [[f64; 3]; 3] {
    let (s, c) = deg.to_radians().sin_cos();
    let (i, j) = [(1, 2), (2, 0), (0, 1)][axis];
    let mut m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    m[i][i] = c;
    m[j][j] = c;
    m[i][j] = -s;
    m[j][i] = s;
    m
}

fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

fn orientations() -> Vec<(&'static str, [[f64; 3]; 3])> {
    vec![
        ("lps", rot(0, 0.0)),
        ("ras", [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]),
        ("permuted-flipped", [[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
        ("oblique", mul(&rot(0, 12.5), &mul(&rot(1, -7.0), &rot(2, 31.0)))),
        ("oblique-left-handed", mul(&rot(2, 200.0), &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])),
        // gantry tilt: the slice axis leans 15 degrees, the others stay put
        ("sheared", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.2588190451025208], [0.0, 0.0, 0.9659258262890683]]),
    ]
}

fn geometry(dir: [[f64; 3]; 3], dims: [usize; 3]) -> Geometry {
    Geometry::new(dims, [0.7, 0.8, 2.5], [-120.25, 33.5, -401.0], dir).unwrap()
}

fn all_dtypes(g: &Geometry) -> Vec<DynVolume> {
    let n = g.len();
    let f = |i: usize| i as f64 * 1.5 - 10.0;
    vec![
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| (i * 7) as u8).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| (i as i64 * 13 - 128) as i8).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| (i * 1000) as u16).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| (i as i16).wrapping_mul(311).wrapping_sub(1024)).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| (i as u32) << 20).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| -(i as i32) * 100_003).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| (i as u64) << 40).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| -(i as i64) << 35).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| f(i) as f32 / 3.0).collect()).unwrap()),
        DynVolume::from(Volume::new(g.clone(), (0..n).map(|i| f(i) / 7.0 + 1e-12).collect()).unwrap()),
    ]
}

/// World position of every corner, compared in mm.
fn assert_same_world(a: &Geometry, b: &Geometry, tol_mm: f64, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let d = a.dims();
    for corner in 0..8 {
        let idx: [f64; 3] = std::array::from_fn(|ax| if corner >> ax & 1 == 1 { d[ax] as f64 - 1.0 } else { 0.0 });
        let (wa, wb) = (a.index_to_world(idx), b.index_to_world(idx));
        for ax in 0..3 {
            assert!((wa[ax] - wb[ax]).abs() <= tol_mm, "{what}: corner {corner}: {wa:?} vs {wb:?}");
        }
    }
}

#[test]
fn write_read_roundtrip_every_dtype_and_orientation() {
    let dir = tempfile::tempdir().unwrap();
    for (name, d) in orientations() {
        let g = geometry(d, [5, 4, 3]);
        for vol in all_dtypes(&g) {
            for ext in ["nii", "nii.gz"] {
                let p = dir.path().join(format!("{name}-{}.{ext}", vol.dtype()));
                write(&p, &vol).unwrap();
                let out = read(&p, &opts()).unwrap();
                assert_eq!(out.volume.dtype(), vol.dtype(), "{}", p.display());
                let same_values = dyn_eq(&out.volume, &vol);
                assert!(same_values, "{}: voxels differ", p.display());
                // NIfTI-1 stores the affine as float32: ~1e-5 relative.
                assert_same_world(out.volume.geometry(), &g, 1e-4 * 410.0, &p.display().to_string());
                assert_eq!(out.info.details["transform"], "sform");
                assert_eq!(out.info.details["qform_code"], 1);
                let sheared = name == "sheared";
                assert_eq!(out.info.warnings.iter().any(|w| w.contains("shear")), sheared, "{name}: {:?}", out.info.warnings);
                assert_eq!(out.info.warnings.iter().any(|w| w.contains("disagree")), sheared, "{name}: {:?}", out.info.warnings);
            }
        }
    }
}

fn dyn_eq(a: &DynVolume, b: &DynVolume) -> bool {
    // Bitwise for floats (NaN-safe, -0.0 distinct).
    match (a, b) {
        (DynVolume::F32(x), DynVolume::F32(y)) => x.data().iter().zip(y.data()).all(|(p, q)| p.to_bits() == q.to_bits()),
        (DynVolume::F64(x), DynVolume::F64(y)) => x.data().iter().zip(y.data()).all(|(p, q)| p.to_bits() == q.to_bits()),
        _ => a == b || (a.dtype() == b.dtype() && a.geometry().dims() == b.geometry().dims() && {
            let n = a.geometry().len();
            (0..n).all(|i| a.value_f64(i) == b.value_f64(i))
        }),
    }
}

#[test]
fn qform_written_alongside_matches_sform_unless_sheared() {
    for (name, d) in orientations() {
        let g = geometry(d, [6, 5, 4]);
        let vol = DynVolume::from(Volume::filled(g.clone(), 0u8));
        let (h, sheared) = write::header_for(&vol);
        assert_eq!(sheared, name == "sheared");
        let q = affine::qform(&h, &mut Vec::new());
        let gap = affine::corner_disagreement(&q, &affine::sform(&h), g.dims());
        if sheared {
            assert!(gap > 0.5, "{name}: {gap}");
        } else {
            assert!(gap < 1e-9, "{name}: qform and sform differ by {gap} mm");
        }
    }
}

#[test]
fn nifti_to_nifti_keeps_the_stored_affine_bit_exact() {
    // A header written by another tool (float32 sform, oblique): after reading
    // and writing, the float32 sform and the voxels are unchanged.
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::new(&[3, 2, 2], 16, 32);
    raw.srow = [[-0.910_542_1, 0.018_21, 0.345_377_3, 92.115_1], [-0.018_199, -1.911_68, 0.003_291, 95.986], [0.066_031, 0.0, 9.994_03, -25.457_2]];
    let data: Vec<u8> = (0..12).flat_map(|i| (i as f32 * 0.3 - 1.0).to_le_bytes()).collect();
    let src = put_file(dir.path(), "src.nii", &raw.file(&data));
    let a = read(&src, &opts()).unwrap();
    let dst = dir.path().join("dst.nii");
    write(&dst, &a.volume).unwrap();
    let bytes = std::fs::read(&dst).unwrap();
    let h = Header::parse(&bytes).unwrap();
    for r in 0..3 {
        for c in 0..4 {
            assert_eq!(h.srow[r][c] as f32, raw.srow[r][c], "srow[{r}][{c}]");
        }
    }
    assert_eq!(&bytes[352..], &data[..]);
    let b = read(&dst, &opts()).unwrap();
    assert_eq!(a.volume, b.volume);
}

#[test]
fn large_dims_switch_to_nifti2() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::new([40_000, 1, 2], [0.5, 1.0, 1.0], [1.0, 2.0, 3.0], rot(2, 30.0)).unwrap();
    let vol = DynVolume::from(Volume::from_fn(g.clone(), |[i, _, k]| (i % 251 + k) as u8));
    let p = dir.path().join("wide.nii.gz");
    write(&p, &vol).unwrap();
    let out = read(&p, &opts()).unwrap();
    assert_eq!(out.info.format, Format::Nifti2);
    assert_eq!(out.volume, vol.clone().with_geometry(out.volume.geometry().clone()).unwrap());
    // NIfTI-2 stores float64: the grid comes back to rounding error.
    assert_same_world(out.volume.geometry(), &g, 1e-9, "nifti2");
}

#[test]
fn writer_refuses_other_names_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vol = DynVolume::from(Volume::filled(Geometry::identity([1, 1, 1], [1.0; 3]).unwrap(), 0u8));
    assert!(write(&dir.path().join("x.nrrd"), &vol).is_err());
    assert!(write(&dir.path().join("missing/x.nii"), &vol).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
