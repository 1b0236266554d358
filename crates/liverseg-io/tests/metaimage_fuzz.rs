//! Mutated MetaImage files (headers and payloads of real corpus files and of
//! files written here) never make the reader panic, hang or allocate wildly.
//!
//! `LIVERSEG_FUZZ_CASES=100000 cargo test -p liverseg-io --release --test metaimage_fuzz`
//! runs a long campaign (default: 300 cases).

use liverseg_io::{metaimage, ReadOptions};
use liverseg_volume::{DynVolume, Geometry, Volume};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// A MetaImage as files: the header file plus any data files beside it.
#[derive(Debug, Clone)]
struct Seed {
    header_name: String,
    files: Vec<(String, Vec<u8>)>,
}

fn load(dir: &Path, header_rel: &str, extra: &[&str]) -> Option<Seed> {
    let header_path = dir.join(header_rel);
    let mut files = vec![(file_name(&header_path), std::fs::read(&header_path).ok()?)];
    for e in extra {
        let p = header_path.with_file_name(e);
        files.push((e.to_string(), std::fs::read(&p).ok()?));
    }
    Some(Seed { header_name: file_name(&header_path), files })
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    // Written here, so the test means something without ../shared.
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::new([9, 7, 5], [0.7, 0.8, 2.5], [-10.0, 20.5, 3.0], liverseg_volume::IDENTITY).unwrap();
    let v = DynVolume::from(Volume::from_fn(g, |[i, j, k]| (i * 31 + j * 7 + k * 1000) as i16 - 900));
    for (name, extra) in [("w.mha", vec![]), ("w.mhd", vec!["w.raw"])] {
        metaimage::write(&dir.path().join(name), &v).unwrap();
        seeds.push(load(dir.path(), name, &extra).unwrap());
    }
    let list = b"ObjectType = Image\nNDims = 3\nBinaryData = True\nDimSize = 2 2 2\nElementType = MET_UCHAR\n\
                 ElementDataFile = LIST\na.raw\nb.raw\n";
    seeds.push(Seed {
        header_name: "l.mhd".into(),
        files: vec![("l.mhd".into(), list.to_vec()), ("a.raw".into(), vec![1; 4]), ("b.raw".into(), vec![2; 4])],
    });
    if let Some(corpora) = liverseg_testdata::shared_dir().map(|d| d.join("corpora")) {
        for (h, extra) in [
            ("elastix/Testing/Baselines/example.mha", vec![]),
            ("niivue/demos/images/mha.mha", vec![]),
            ("elastix/dox/exampleinput/mask_fixed.mhd", vec!["mask_fixed.raw"]),
            ("elastix/Testing/Data/2D_2x2_square_object_at_(1,3).mhd", vec!["2D_2x2_square_object_at_(1,3).raw"]),
            ("elastix/Testing/Baselines/Impact2DStaticBaseline.mhd", vec!["Impact2DStaticBaseline.raw"]),
        ] {
            if let Some(s) = load(&corpora, h, &extra) {
                seeds.push(s);
            }
        }
    } else {
        eprintln!("SKIP corpus seeds: ../shared not found (synthetic seeds only)");
    }
    seeds
}

/// Values that stress header parsing: huge, negative, non-numeric, other types.
const NASTY: &[&str] = &[
    "", "0", "-1", "-2", "1", "2", "3", "4", "5", "nan", "inf", "-inf", "1e308", "99999999999999999999",
    "4294967296 4294967296 4294967296", "100000 100000 100000", "1 1 1 1 1 1 1 1 1 1", "0 0 0 0 0 0 0 0 0",
    "True", "False", "MET_SHORT_ARRAY", "MET_DOUBLE", "MET_UCHAR", "MET_LONG_LONG", "MET_NONE", "LOCAL", "LIST",
    "LIST 3D", "LIST 9D", "x%03d.raw 1 100000000 1", "%s%n%x", "/dev/null", "..", "/", "a.raw", "\u{feff}", "1 2",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value of header line `line` (mod line count) by NASTY[value].
    SetValue { line: usize, value: usize },
    /// Duplicate or delete header line `line`.
    DupLine { line: usize },
    DelLine { line: usize },
    /// Flip bits of byte `pos` (mod file length) of file `file`.
    Flip { file: usize, pos: usize, bits: u8 },
    /// Cut file `file` to `frac` (0..=255 / 255) of its length.
    Truncate { file: usize, frac: u8 },
    /// Insert bytes at `pos`.
    Insert { file: usize, pos: usize, bytes: Vec<u8> },
    /// Remove a data file.
    Remove { file: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..NASTY.len()).prop_map(|(line, value)| Mutation::SetValue { line, value }),
        1 => any::<usize>().prop_map(|line| Mutation::DupLine { line }),
        1 => any::<usize>().prop_map(|line| Mutation::DelLine { line }),
        3 => (0..4usize, any::<usize>(), 1..=255u8).prop_map(|(file, pos, bits)| Mutation::Flip { file, pos, bits }),
        2 => (0..4usize, any::<u8>()).prop_map(|(file, frac)| Mutation::Truncate { file, frac }),
        1 => (0..4usize, any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(file, pos, bytes)| Mutation::Insert { file, pos, bytes }),
        1 => (1..4usize).prop_map(|file| Mutation::Remove { file }),
    ]
}

/// Header bytes end after the ElementDataFile line (or at the first NUL / end).
fn header_len(bytes: &[u8]) -> usize {
    let mut pos = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        pos += line.len();
        if line.starts_with(b"ElementDataFile") {
            break;
        }
    }
    pos.min(bytes.len())
}

fn apply(seed: &mut Seed, m: &Mutation) {
    let n = seed.files.len();
    match m {
        Mutation::SetValue { line, value } => {
            let bytes = &mut seed.files[0].1;
            let hl = header_len(bytes);
            let mut lines: Vec<Vec<u8>> = bytes[..hl].split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            if lines.is_empty() {
                return;
            }
            let i = line % lines.len();
            let key_end = lines[i].iter().position(|&b| b == b'=').unwrap_or(lines[i].len());
            let mut new = lines[i][..key_end].to_vec();
            new.extend_from_slice(format!("= {}\n", NASTY[*value]).as_bytes());
            lines[i] = new;
            let mut out = lines.concat();
            out.extend_from_slice(&bytes[hl..]);
            *bytes = out;
        }
        Mutation::DupLine { line } | Mutation::DelLine { line } => {
            let bytes = &mut seed.files[0].1;
            let hl = header_len(bytes);
            let mut lines: Vec<Vec<u8>> = bytes[..hl].split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            if lines.is_empty() {
                return;
            }
            let i = line % lines.len();
            if matches!(m, Mutation::DupLine { .. }) {
                let l = lines[i].clone();
                lines.insert(i, l);
            } else {
                lines.remove(i);
            }
            let mut out = lines.concat();
            out.extend_from_slice(&bytes[hl..]);
            *bytes = out;
        }
        Mutation::Flip { file, pos, bits } => {
            let f = &mut seed.files[file % n].1;
            if !f.is_empty() {
                // Half the flips hit the header, where they matter most.
                let limit = if file % 2 == 0 && *file % n == 0 { header_len(f).max(1) } else { f.len() };
                let i = pos % limit;
                f[i] ^= bits;
            }
        }
        Mutation::Truncate { file, frac } => {
            let f = &mut seed.files[file % n].1;
            let keep = f.len() * *frac as usize / 255;
            f.truncate(keep);
        }
        Mutation::Insert { file, pos, bytes } => {
            let f = &mut seed.files[file % n].1;
            let i = pos % (f.len() + 1);
            f.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove { file } => {
            if n > 1 {
                seed.files.remove(1 + file % (n - 1));
            }
        }
    }
}

fn write_seed(dir: &Path, seed: &Seed) -> PathBuf {
    for (name, bytes) in &seed.files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir.join(&seed.header_name)
}

fn cases() -> u32 {
    std::env::var("LIVERSEG_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

#[test]
fn mutated_files_never_panic() {
    let seeds = seeds();
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let start = std::time::Instant::now();
    let ok = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::atomic::AtomicUsize::new(0);
    proptest!(config, |(which in 0..seeds.len(), mutations in prop::collection::vec(mutation(), 1..5))| {
        let mut seed = seeds[which].clone();
        for m in &mutations {
            apply(&mut seed, m);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_seed(dir.path(), &seed);
        let t = std::time::Instant::now();
        // A panic here fails the test (proptest reports the mutations).
        match metaimage::read(&path, &ReadOptions::default()) {
            Ok(out) => {
                ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // What was read is internally consistent.
                prop_assert_eq!(out.volume.geometry().len(), out.volume.geometry().dims().iter().product::<usize>());
            }
            Err(e) => {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
            }
        }
        prop_assert!(t.elapsed().as_secs_f64() < 5.0, "one read took {:?}", t.elapsed());
    });
    eprintln!(
        "fuzz: {} cases over {} seeds in {:.1?}: {} read, {} errors, 0 panics",
        cases(),
        seeds.len(),
        start.elapsed(),
        ok.into_inner(),
        errors.into_inner()
    );
}
