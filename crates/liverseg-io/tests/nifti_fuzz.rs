//! Mutation fuzzing of the NIfTI reader: real and synthetic NIfTI files with
//! flipped bytes, truncations and hostile header fields (dims, datatype,
//! vox_offset, scaling, transforms, magic) must give `Ok` or a clean `Err`:
//! never a panic, never an allocation the file cannot back.
//!
//! `LIVERSEG_FUZZ_CASES=20000 cargo test -p liverseg-io --test nifti_fuzz -- --nocapture`
//! runs a long session; the default is a few seconds for CI.

use liverseg_io::nifti;
use liverseg_io::ReadOptions;
use liverseg_volume::{DynVolume, Geometry, Volume};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static OK: AtomicUsize = AtomicUsize::new(0);
static ERR: AtomicUsize = AtomicUsize::new(0);

fn cases() -> u32 {
    std::env::var("LIVERSEG_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// (name, uncompressed bytes, store gzipped)
fn seeds() -> Vec<(String, Vec<u8>, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    // Synthetic: every writer path (NIfTI-1 of several types, oblique, NIfTI-2).
    let oblique = [[0.9, -0.3, 0.1], [0.3, 0.95, 0.0], [-0.1, 0.05, 1.0]];
    let g = Geometry::new([4, 3, 2], [0.7, 0.8, 2.5], [-10.0, 20.0, 30.0], oblique).unwrap();
    let vols = [
        DynVolume::from(Volume::from_fn(g.clone(), |[i, j, k]| (i + 4 * j + 12 * k) as u8)),
        DynVolume::from(Volume::from_fn(g.clone(), |[i, j, k]| (i * 100 + j * 10 + k) as i16 - 500)),
        DynVolume::from(Volume::from_fn(g.clone(), |[i, _, k]| i as f64 * 0.25 - k as f64)),
        DynVolume::from(Volume::from_fn(Geometry::identity([33000, 1, 1], [1.0; 3]).unwrap(), |[i, _, _]| i as u8)),
    ];
    for (n, v) in vols.iter().enumerate() {
        let p = dir.path().join(format!("s{n}.nii"));
        nifti::write(&p, v).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        out.push((format!("synthetic-{n}"), bytes.clone(), n % 2 == 1));
    }
    // Real files from the corpora when present (small ones: fast cases).
    if let Some(shared) = liverseg_testdata::shared_dir() {
        for rel in [
            "corpora/nifti-rs/resources/minimal.nii",
            "corpora/nifti-rs/resources/27/int16.nii",
            "corpora/nifti-rs/resources/27/float64.nii",
            "corpora/nifti-rs/resources/minimal_extended_hdr.nii",
            "corpora/nifti-rs/resources/f32.nii.gz",
            "corpora/NIFTI-Reader-JS/data/5D_small.nii",
            "corpora/nibabel/tests/data/example_nifti2.nii.gz",
            "corpora/nibabel/tests/data/functional.nii",
            "corpora/niivue/demos/images/low_res.nii.gz",
        ] {
            let p = shared.join(rel);
            if let Ok(bytes) = std::fs::read(&p) {
                let gz = rel.ends_with(".gz");
                out.push((rel.to_string(), if gz { gunzip(&bytes) } else { bytes }, gz));
            }
        }
    } else {
        eprintln!("SKIP part of nifti_fuzz: ../shared not found, fuzzing synthetic seeds only");
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte { at: usize, xor: u8 },
    SetI16 { field: usize, value: i16 },
    SetF32 { field: usize, value: f32 },
    Truncate { keep: usize },
    Append { extra: usize },
}

/// NIfTI-1 header fields worth attacking (offset, i16?) — dim, datatype,
/// bitpix, codes; f32: pixdim, vox_offset, scl, quatern, srow.
const I16_FIELDS: [usize; 13] = [40, 42, 44, 46, 48, 50, 52, 54, 70, 72, 252, 254, 68];
const F32_FIELDS: [usize; 14] = [76, 80, 84, 88, 108, 112, 116, 256, 260, 264, 280, 284, 300, 316];

fn mutation() -> impl Strategy<Value = Mutation> {
    let i16_values = prop_oneof![
        Just(0i16), Just(-1), Just(1), Just(2), Just(3), Just(4), Just(5), Just(7), Just(8),
        Just(16), Just(64), Just(128), Just(256), Just(1024), Just(1280), Just(2304),
        Just(i16::MAX), Just(i16::MIN), any::<i16>()
    ];
    let f32_values = prop_oneof![
        Just(0.0f32), Just(-0.0), Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
        Just(1e30), Just(-1e30), Just(1e-30), Just(352.0), Just(351.5), Just(-352.0), Just(3e9),
        Just(1.0), Just(-1.0), any::<f32>()
    ];
    prop_oneof![
        3 => (0usize..2048, 1u8..=255).prop_map(|(at, xor)| Mutation::FlipByte { at, xor }),
        3 => (0usize..I16_FIELDS.len(), i16_values).prop_map(|(f, value)| Mutation::SetI16 { field: I16_FIELDS[f], value }),
        3 => (0usize..F32_FIELDS.len(), f32_values).prop_map(|(f, value)| Mutation::SetF32 { field: F32_FIELDS[f], value }),
        1 => (0usize..4096).prop_map(|keep| Mutation::Truncate { keep }),
        1 => (1usize..64).prop_map(|extra| Mutation::Append { extra }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    // The seed's byte order decides how fields are written (big-endian seeds exist).
    let big = bytes.len() >= 4 && i32::from_be_bytes(bytes[..4].try_into().unwrap()) == 348;
    let nifti2 = bytes.len() >= 4 && (i32::from_le_bytes(bytes[..4].try_into().unwrap()) == 540 || i32::from_be_bytes(bytes[..4].try_into().unwrap()) == 540);
    let mut put = |at: usize, mut v: Vec<u8>| {
        if big {
            v.reverse();
        }
        if at + v.len() <= bytes.len() {
            bytes[at..at + v.len()].copy_from_slice(&v);
        }
    };
    match *m {
        Mutation::FlipByte { at, xor } => {
            if !bytes.is_empty() {
                let n = bytes.len();
                bytes[at % n] ^= xor;
            }
        }
        // NIfTI-2 layouts differ; for those, hit the same offsets as raw bytes anyway.
        Mutation::SetI16 { field, value } if !nifti2 => put(field, value.to_le_bytes().to_vec()),
        Mutation::SetF32 { field, value } if !nifti2 => put(field, value.to_le_bytes().to_vec()),
        Mutation::SetI16 { field, value } => {
            // NIfTI-2 dims are i64 at 16 + 8i: map dim fields there.
            let at = if (40..56).contains(&field) { 16 + 4 * (field - 40) } else { field };
            put(at, (value as i64).to_le_bytes().to_vec())
        }
        Mutation::SetF32 { field, value } => put(field, (value as f64).to_le_bytes().to_vec()),
        Mutation::Truncate { keep } => bytes.truncate(keep),
        Mutation::Append { extra } => bytes.extend(std::iter::repeat_n(0xA5, extra)),
    }
}

fn run_one(path: &Path, volume_index: usize) {
    let r = nifti::read(path, &ReadOptions { volume_index, ..Default::default() });
    match r {
        Ok(out) => {
            OK.fetch_add(1, Relaxed);
            // Whatever was read must be self-consistent.
            assert_eq!(out.volume.geometry().len(), out.volume.geometry().dims().iter().product::<usize>());
        }
        Err(e) => {
            ERR.fetch_add(1, Relaxed);
            let text = e.to_string();
            assert!(!text.is_empty());
        }
    }
    let _ = nifti::looks_like_nifti(path);
    let _ = nifti::read_header(path);
}

#[test]
fn mutated_files_never_panic() {
    let seeds = seeds();
    let dir = tempfile::tempdir().unwrap();
    let n_seeds = seeds.len();
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let start = std::time::Instant::now();
    proptest!(config, |(
        seed in 0..n_seeds,
        muts in proptest::collection::vec(mutation(), 1..6),
        mutate_compressed in any::<bool>(),
        volume_index in prop_oneof![5 => Just(0usize), 1 => 0usize..4],
    )| {
        let (name, plain, gz) = &seeds[seed];
        let mut bytes = plain.clone();
        let file_bytes = if *gz && mutate_compressed {
            // Damage the compressed stream itself (header CRC, deflate blocks, trailer).
            let mut c = gzip(&bytes);
            for m in &muts { apply(&mut c, m); }
            c
        } else {
            for m in &muts { apply(&mut bytes, m); }
            if *gz { gzip(&bytes) } else { bytes }
        };
        let path = dir.path().join(if *gz { "case.nii.gz" } else { "case.nii" });
        std::fs::write(&path, &file_bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| run_one(&path, volume_index));
        prop_assert!(outcome.is_ok(), "panic on seed {} with {:?}", name, muts);
    });
    eprintln!(
        "nifti_fuzz: {} cases over {n_seeds} seeds in {:.1} s: {} read Ok, {} clean errors, 0 panics",
        cases(),
        start.elapsed().as_secs_f64(),
        OK.load(Relaxed),
        ERR.load(Relaxed)
    );
}
