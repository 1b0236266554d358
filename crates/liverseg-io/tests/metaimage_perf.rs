//! Reading a compressed 512x512x130 int16 CT-like `.mha` should cost little more
//! than inflating its payload. Ignored by default; run in release mode:
//! `cargo test -p liverseg-io --release --test metaimage_perf -- --ignored --nocapture`

use liverseg_io::{metaimage, ReadOptions};
use liverseg_volume::{DynVolume, Geometry, Volume};
use std::io::Read;
use std::time::{Duration, Instant};

/// CT-like: air outside an elliptic body, soft tissue with noise, a bright spine.
fn ct_like() -> DynVolume {
    let g = Geometry::new([512, 512, 130], [0.7, 0.7, 2.0], [-179.0, -179.0, -300.0], liverseg_volume::IDENTITY).unwrap();
    let mut seed = 0x9E3779B97F4A7C15u64;
    DynVolume::from(Volume::from_fn(g, |[i, j, _k]| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 41) as i16 - 20;
        let (x, y) = (i as f64 - 256.0, j as f64 - 256.0);
        if (x / 200.0).powi(2) + (y / 150.0).powi(2) > 1.0 {
            -1000 + noise / 4
        } else if x.abs() < 20.0 && (y - 90.0).abs() < 20.0 {
            700 + noise * 5
        } else {
            40 + noise
        }
    }))
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
#[ignore]
fn read_compressed_ct_mha() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.mha");
    let v = ct_like();
    let t = Instant::now();
    metaimage::write(&path, &v).unwrap();
    let write_time = t.elapsed();
    let bytes = std::fs::read(&path).unwrap();
    let header_end = bytes.windows(22).position(|w| w == b"ElementDataFile = LOCA").unwrap() + 24;
    let payload = &bytes[header_end..];

    // Alternate the two measurements so a busy machine slows both alike.
    let mut raw = Vec::new();
    let (mut read_time, mut inflate_time) = (Duration::MAX, Duration::MAX);
    for _ in 0..7 {
        read_time = read_time.min(best_of(1, || {
            let out = metaimage::read(&path, &ReadOptions::default()).unwrap();
            assert_eq!(out.volume.geometry().dims(), [512, 512, 130]);
        }));
        // Into fresh memory, as any reader must (reusing one buffer would skip the page faults).
        inflate_time = inflate_time.min(best_of(1, || {
            raw = Vec::with_capacity(512 * 512 * 130 * 2);
            flate2::read::ZlibDecoder::new(payload).read_to_end(&mut raw).unwrap();
        }));
    }
    assert_eq!(raw.len(), 512 * 512 * 130 * 2);
    assert_eq!(metaimage::read(&path, &ReadOptions::default()).unwrap().volume, v);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "512x512x130 int16 .mha ({:.1} MB compressed from {:.1} MB): write {:.0} ms, read {:.0} ms (best of 7), \
         inflate alone {:.0} ms (best of 7, interleaved) -> inflate is {:.0}% of the read",
        bytes.len() as f64 / 1e6,
        raw.len() as f64 / 1e6,
        ms(write_time),
        ms(read_time),
        ms(inflate_time),
        100.0 * inflate_time.as_secs_f64() / read_time.as_secs_f64()
    );
}
