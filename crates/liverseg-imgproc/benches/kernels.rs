//! Kernel timings on a 512x512x129 synthetic CT (the size of ircadb01-01), and
//! the same operations in scipy.ndimage when python3 with scipy is available.
//!
//!     cargo bench -p liverseg-imgproc --bench kernels
//!
//! Set LIVERSEG_BENCH_NO_SCIPY=1 to skip the comparison, LIVERSEG_BENCH_REPS=N
//! for the number of repetitions (the best is reported).

use liverseg_imgproc::edt::distance_to_foreground;
use liverseg_imgproc::filters::median_filter;
use liverseg_imgproc::morphology::{connected_components, erode, Connectivity};
use liverseg_imgproc::resample::{isotropic_grid, resample_linear};
use liverseg_phantom::{generate, PhantomConfig};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut out = None;
    let mut t_best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        let r = f();
        t_best = t_best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (out.expect("reps >= 1"), t_best)
}

fn main() {
    let reps: usize = std::env::var("LIVERSEG_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(2).max(1);
    let dims = [512, 512, 129];
    let spacing = [0.57, 0.57, 1.6];
    let t = Instant::now();
    let p = generate(&PhantomConfig { dims, spacing, ..Default::default() });
    println!(
        "synthetic CT {dims:?} at {spacing:?} mm ({:.1} M voxels), generated in {:.2} s; rayon threads: {}; best of {reps}",
        p.ct.len() as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let ct = &p.ct;
    let ct_f32 = ct.map(|&v| v as f32);
    let body = ct.map(|&v| u8::from(v >= -150));
    let bright = ct.map(|&v| u8::from(v > 100));

    let mut ours: BTreeMap<&str, (f64, String)> = BTreeMap::new();
    let (m, s) = best(reps, || median_filter(ct, [1, 1, 1]).unwrap());
    ours.insert("median_3x3x3_i16", (s, format!("sum {}", m.data().iter().map(|&v| v as i64).sum::<i64>())));
    let iso = isotropic_grid(ct.geometry(), 1.4).unwrap();
    let (r, s) = best(reps, || resample_linear(&ct_f32, &iso, -1024.0));
    ours.insert("resample_linear_1.4mm", (s, format!("dims {:?}", r.dims())));
    let (d, s) = best(reps, || distance_to_foreground(&body));
    ours.insert("edt_anisotropic", (s, format!("max {:.3} mm", d.data().iter().cloned().fold(0.0, f64::max))));
    let (e, s) = best(reps, || erode(&body, 5.0).unwrap());
    ours.insert("erode_ball_5mm", (s, format!("{} voxels", e.count_foreground())));
    let (cc, s) = best(reps, || connected_components(&bright, Connectivity::Six).unwrap());
    ours.insert("components_6conn", (s, format!("{} components", cc.count())));

    let mut theirs: BTreeMap<String, (f64, String)> = BTreeMap::new();
    if std::env::var_os("LIVERSEG_BENCH_NO_SCIPY").is_none() {
        match run_scipy(ct, dims, spacing, reps) {
            Ok(t) => theirs = t,
            Err(e) => println!("scipy comparison skipped: {e}"),
        }
    }
    println!("{:<24} {:>10} {:>10} {:>8}  check (ours | scipy)", "kernel", "ours s", "scipy s", "ratio");
    for (name, (s, check)) in &ours {
        match theirs.get(*name) {
            Some((ts, tcheck)) => println!("{name:<24} {s:>10.3} {ts:>10.3} {:>7.1}x  {check} | {tcheck}", ts / s),
            None => println!("{name:<24} {s:>10.3} {:>10} {:>8}  {check}", "-", "-"),
        }
    }
}

fn run_scipy(
    ct: &liverseg_volume::Volume<i16>,
    dims: [usize; 3],
    spacing: [f64; 3],
    reps: usize,
) -> Result<BTreeMap<String, (f64, String)>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/scipy_compare.py");
    let raw = std::env::temp_dir().join(format!("liverseg-bench-{}.raw", std::process::id()));
    {
        let mut f = std::fs::File::create(&raw).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = ct.data().iter().flat_map(|v| v.to_le_bytes()).collect();
        f.write_all(&bytes).map_err(|e| e.to_string())?;
    }
    let out = Command::new("python3")
        .arg(script)
        .arg(&raw)
        .args(dims.iter().map(|d| d.to_string()))
        .args(spacing.iter().map(|s| s.to_string()))
        .arg(reps.to_string())
        .output();
    let _ = std::fs::remove_file(&raw);
    let out = out.map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("python3 failed").to_string());
    }
    let mut res = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "name<TAB>seconds<TAB>check"
        let mut it = line.splitn(3, '\t');
        if let (Some(n), Some(s), Some(c)) = (it.next(), it.next(), it.next()) {
            if let Ok(s) = s.parse::<f64>() {
                res.insert(n.to_string(), (s, c.to_string()));
            }
        } else if !line.is_empty() {
            println!("scipy: {line}");
        }
    }
    Ok(res)
}
