//! Mutated real DICOM files must give an error or a volume, never a panic or an
//! abort. Default: a short run. `LIVERSEG_FUZZ_CASES=5000 cargo test -p liverseg-io
//! --release --test dicom_fuzz -- --nocapture` for a long one.

mod dicom_util;

use liverseg_io::dicom::{read_file, read_series, read_stored_pixels};
use liverseg_io::ReadOptions;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Seed files: real corpus files when ../shared is there, else synthetic ones.
fn seeds() -> &'static Vec<(String, Vec<u8>)> {
    static SEEDS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut out = Vec::new();
        if let Some(dir) = liverseg_testdata::shared_dir().map(|d| d.join("corpora")) {
            for rel in [
                "dcm_qa_ts/In/1.dcm",
                "dcm_qa_ts/In/3.dcm",
                "dcm_qa_ts/In/4.dcm",
                "dcm_qa_ts/In/5.dcm",
                "dcm_qa_ts/In/9.dcm",
                "dicom-test-files/data/WG04/RLE/CT1_RLE",
                "dicom-test-files/data/WG04/J2KR/CT1_J2KR",
                "dicom-test-files/data/WG04/JPLY/MR1_JPLY",
                "fo-dicom/Test Data/GH227.dcm",
                "nitest-balls1/DICOM/T1.dcm",
            ] {
                if let Ok(b) = std::fs::read(dir.join(rel)) {
                    out.push((rel.to_string(), b));
                }
            }
        }
        if out.is_empty() {
            let dir = tempfile::tempdir().unwrap();
            let specs = dicom_util::write_series(dir.path(), "1.2.9", [16, 16, 1], 0.0, 1.0, |i, j, _| (i * j) as i32);
            let p = dir.path().join("s.dcm");
            dicom_util::write_slice(&p, &specs[0]);
            out.push(("synthetic".into(), std::fs::read(p).unwrap()));
        }
        out
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: f64, byte: u8 },
    Truncate { at: f64 },
    Insert { at: f64, bytes: Vec<u8> },
    /// Overwrite 4 bytes with a huge or odd length (element length fields).
    Length { at: f64, value: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0f64..1.0, any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (0.0f64..1.0).prop_map(|at| Mutation::Truncate { at }),
        (0.0f64..1.0, proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (0.0f64..1.0, prop_oneof![Just(u32::MAX), Just(0xFFFF_FFFE), Just(0x7FFF_FFFF), Just(1), Just(3), any::<u32>()])
            .prop_map(|(at, value)| Mutation::Length { at, value }),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    // Mutations concentrate on the header (first 4 KiB) half of the time: that is
    // where parsers branch.
    let pos = |at: f64, len: usize| -> usize {
        let span = if at < 0.5 { len.min(4096) } else { len };
        ((at.fract() * 2.0 % 1.0) * span as f64) as usize % len.max(1)
    };
    match m {
        Mutation::Flip { at, byte } => {
            let p = pos(*at, data.len());
            if let Some(b) = data.get_mut(p) {
                *b ^= byte | 1;
            }
        }
        Mutation::Truncate { at } => {
            let p = pos(*at, data.len());
            data.truncate(p);
        }
        Mutation::Insert { at, bytes } => {
            let p = pos(*at, data.len());
            data.splice(p..p, bytes.iter().copied());
        }
        Mutation::Length { at, value } => {
            let p = pos(*at, data.len());
            if p + 4 <= data.len() {
                data[p..p + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
    }
}

static PARSER_PANICS: AtomicUsize = AtomicUsize::new(0);
static CASES: AtomicUsize = AtomicUsize::new(0);

fn cases() -> u32 {
    std::env::var("LIVERSEG_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(seed in any::<prop::sample::Index>(), muts in proptest::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let (name, original) = &seeds[seed.index(seeds.len())];
        let mut data = original.clone();
        for m in &muts {
            apply(&mut data, m);
        }
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("mutated.dcm");
        std::fs::write(&path, &data).unwrap();
        let t0 = std::time::Instant::now();
        for r in [
            read_stored_pixels(&path).map(|_| ()),
            read_file(&path, &ReadOptions::default()).map(|_| ()),
            read_series(dir.path(), &ReadOptions::default()).map(|_| ()),
        ] {
            if let Err(e) = r {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
                if msg.contains("the parser failed") {
                    PARSER_PANICS.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if t0.elapsed().as_secs_f64() > 2.0 {
            eprintln!("fuzz: slow case ({:.1} s) from {name}: {muts:?}", t0.elapsed().as_secs_f64());
        }
        let n = CASES.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(500) || n == cases() as usize {
            eprintln!("fuzz: {n} cases (last seed {name}), {} dicom-rs panics caught and reported as errors", PARSER_PANICS.load(Ordering::Relaxed));
        }
    }
}
