//! Times `evaluate` on ../shared/metrics/b_ircadb01_01_eroded1 (a 512x512x129
//! liver mask and its 1-voxel erosion), or on a synthetic pair of that size when
//! the shared data is absent, and, when python3 with SimpleITK is available,
//! SimpleITK's equivalent (overlap + shape statistics + Hausdorff filter +
//! LabelContour and two Maurer distance maps, as in the reference timings) in
//! the same run.
//!
//! cargo run --release -p liverseg-metrics --example bench_evaluate

use liverseg_metrics::{evaluate, EvalOptions, SurfaceConvention};
use liverseg_volume::{Geometry, Mask, Volume};
use std::path::PathBuf;
use std::time::Instant;

const SITK: &str = r#"
import sys, time, statistics, SimpleITK as sitk
a = sitk.ReadImage(sys.argv[1], sitk.sitkUInt8); b = sitk.ReadImage(sys.argv[2], sitk.sitkUInt8)
def run():
    o = sitk.LabelOverlapMeasuresImageFilter(); o.Execute(a, b); o.GetDiceCoefficient(); o.GetVolumeSimilarity()
    s = sitk.LabelShapeStatisticsImageFilter(); s.Execute(a); s.Execute(b)
    h = sitk.HausdorffDistanceImageFilter(); h.Execute(a, b); h.GetHausdorffDistance()
    ca = sitk.LabelContour(a, fullyConnected=False); cb = sitk.LabelContour(b, fullyConnected=False)
    da = sitk.Abs(sitk.SignedMaurerDistanceMap(ca, squaredDistance=False, useImageSpacing=True))
    db = sitk.Abs(sitk.SignedMaurerDistanceMap(cb, squaredDistance=False, useImageSpacing=True))
    x = sitk.GetArrayViewFromImage(db)[sitk.GetArrayViewFromImage(ca) == 1]
    y = sitk.GetArrayViewFromImage(da)[sitk.GetArrayViewFromImage(cb) == 1]
    return x.mean(), y.mean()
ts = []
for _ in range(3):
    t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let ts = (0..runs)
        .map(|_| {
            let t = Instant::now();
            out = Some(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    (median(ts), out.unwrap())
}

fn synthetic() -> (Mask, Mask) {
    let g = Geometry::identity([512, 512, 129], [0.57, 0.57, 1.6]).unwrap();
    let liver = |shrink: f64| {
        Volume::from_fn(g.clone(), |[i, j, k]| {
            let (x, y, z) = (i as f64 * 0.57 - 170.0, j as f64 * 0.57 - 140.0, k as f64 * 1.6 - 100.0);
            let r = (x / (95.0 - shrink)).powi(2) + (y / (75.0 - shrink)).powi(2) + (z / (80.0 - shrink)).powi(2);
            u8::from(r <= 1.0 + 0.05 * (x / 9.0).sin() * (y / 13.0).cos())
        })
    };
    (liver(0.0), liver(0.8))
}

fn main() {
    let shared = liverseg_testdata::shared_dir().map(|d| d.join("metrics/b_ircadb01_01_eroded1"));
    let files: Option<(PathBuf, PathBuf)> = shared.filter(|d| d.is_dir()).map(|d| (d.join("a.nii.gz"), d.join("b.nii.gz")));
    let (a, b, what) = match &files {
        Some((pa, pb)) => {
            let (t, (a, b)) = time(1, || {
                let a = liverseg_io::read_mask(pa, None, &Default::default()).expect("read a").0;
                let b = liverseg_io::read_mask(pb, None, &Default::default()).expect("read b").0;
                (a, b)
            });
            println!("read both masks (NIfTI, gzip): {t:.3} s");
            (a, b, "b_ircadb01_01_eroded1")
        }
        None => {
            let (a, b) = synthetic();
            (a, b, "synthetic 512x512x129 pair")
        }
    };
    println!("pair: {what}, {:?} voxels, {} threads", a.dims(), rayon::current_num_threads());
    let medpy = EvalOptions::default();
    let surfel = EvalOptions { convention: SurfaceConvention::Surfel, ..Default::default() };
    let (t_medpy, e) = time(5, || evaluate(&a, &b, &medpy).unwrap());
    let m = e.medpy.as_ref().unwrap();
    println!(
        "liverseg evaluate (medpy):  {t_medpy:.3} s  median of 5  (dice {:.4}, assd {:.4}, hd {:.4}, hd95 {:.4})",
        e.dice.unwrap(),
        m.assd.unwrap(),
        m.hd.unwrap(),
        m.hd95.unwrap()
    );
    let (t_surfel, e) = time(5, || evaluate(&a, &b, &surfel).unwrap());
    let s = e.surfel.as_ref().unwrap();
    println!("liverseg evaluate (surfel): {t_surfel:.3} s  median of 5  (surfel_assd {:.4}, surfel_hd95 {:.4})", s.assd.unwrap(), s.hd95.unwrap());

    let Some((pa, pb)) = files else {
        println!("SimpleITK: not timed (no shared NIfTI pair)");
        return;
    };
    let out = std::process::Command::new("python3").arg("-c").arg(SITK).arg(&pa).arg(&pb).output();
    match out {
        Ok(o) if o.status.success() => {
            let t: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(f64::NAN);
            println!("SimpleITK 2.x equivalent:   {t:.3} s  median of 3");
            println!("ratio SimpleITK / liverseg (medpy convention): {:.1}x", t / t_medpy);
        }
        Ok(o) => println!("SimpleITK: not timed ({})", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("python3 failed")),
        Err(e) => println!("SimpleITK: not timed (python3: {e})"),
    }
}
