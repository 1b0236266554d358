//! Time `read_series` on a generated 512x512x150 int16 CT series (explicit VR LE)
//! and, when python3 with pydicom + numpy is installed, pydicom reading the same
//! files into a 3-D HU array (sorted by position, rescaled).
//!
//! `cargo run --release -p liverseg-io --example dicom_bench [-- slices]`

#[path = "../tests/dicom_util/mod.rs"]
mod dicom_util;

use liverseg_io::{dicom::read_series, ReadOptions};
use std::time::Instant;

const PYDICOM: &str = r#"
import sys, os, time
import numpy as np, pydicom
d = sys.argv[1]
best = None
for rep in range(3):
    t = time.perf_counter()
    ds = [pydicom.dcmread(os.path.join(d, f)) for f in os.listdir(d)]
    ds.sort(key=lambda s: float(np.dot(np.cross(np.array(s.ImageOrientationPatient[:3], float), np.array(s.ImageOrientationPatient[3:], float)), np.array(s.ImagePositionPatient, float))))
    vol = np.stack([s.pixel_array.astype(np.float32) * float(s.RescaleSlope) + float(s.RescaleIntercept) for s in ds])
    if np.all(vol == np.round(vol)) and vol.min() >= -32768 and vol.max() <= 32767:
        vol = vol.astype(np.int16)
    dt = time.perf_counter() - t
    best = dt if best is None else min(best, dt)
print(f"{best:.4f} {vol.shape} {vol.dtype}")
"#;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(150);
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let mut specs = dicom_util::write_series(dir.path(), "1.2.826.0.1.3680043.9.7777.1", [512, 512, n], -300.0, 1.25, |i, j, k| {
        // A body-like disc of soft tissue in air, with texture.
        let (x, y) = (i as f64 - 256.0, j as f64 - 256.0);
        if x * x + y * y < 200.0 * 200.0 { 1024 + 40 + ((i * 7 + j * 13 + k * 29) % 60) as i32 } else { 24 }
    });
    for s in specs.iter_mut() {
        s.bits_stored = 12;
        s.signed = false;
    }
    dicom_util::write_all(dir.path(), &specs);
    drop(specs);
    eprintln!("wrote {n} slices of 512x512 in {:.2} s", t.elapsed().as_secs_f64());

    let mut times = Vec::new();
    let mut dims = [0; 3];
    for _ in 0..5 {
        let t = Instant::now();
        let out = read_series(dir.path(), &ReadOptions::default()).expect("read_series");
        times.push(t.elapsed().as_secs_f64());
        dims = out.volume.geometry().dims();
        assert_eq!(out.volume.dtype(), liverseg_volume::DType::I16);
    }
    times.sort_by(f64::total_cmp);
    let ours = times[0];
    println!("liverseg read_series: best {:.4} s, median {:.4} s over 5 runs ({dims:?}, int16, {} threads)", ours, times[2], rayon::current_num_threads());

    let py = std::process::Command::new("python3").arg("-c").arg(PYDICOM).arg(dir.path()).output();
    match py {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let secs: f64 = s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            println!("pydicom dcmread+sort+rescale+stack : best {:.4} s of 3 runs ({})", secs, s.trim());
            println!("ratio pydicom / liverseg = {:.2}x", secs / ours);
        }
        Ok(o) => println!("pydicom comparison skipped: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("python3 failed")),
        Err(e) => println!("pydicom comparison skipped: python3 not available ({e})"),
    }
}
