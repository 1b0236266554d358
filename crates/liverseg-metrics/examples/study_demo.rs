//! A study on perturbed real liver masks: for every case in
//! ../shared/data/cases/*/liver.nii.gz, simulated observers ("cnn": 2 mm
//! thinner with bumps, "manual1": the reference contour, "manual2": 1.5 mm
//! thicker and shifted one voxel, "adjusted1": the reference with small bumps),
//! synthetic scores, times and region tags; writes the full study output.
//!
//! cargo run --release -p liverseg-metrics --example study_demo -- OUT_DIR

use liverseg_imgproc::edt::distance_to_foreground;
use liverseg_metrics::study::{run_study, MaskSource, StudyInput};
use liverseg_metrics::EvalOptions;
use liverseg_volume::{Geometry, Mask, Volume};
use std::collections::BTreeMap;
use std::path::PathBuf;

struct Mem(BTreeMap<(String, usize), Mask>);

impl MaskSource for Mem {
    fn load(&self, case: &str, set: usize, _: Option<&Geometry>) -> Result<Option<Mask>, String> {
        Ok(self.0.get(&(case.to_string(), set)).cloned())
    }
}

/// Foreground within `mm` of the mask (grow) or farther than `mm` from the background (shrink).
fn morph(m: &Mask, mm: f64) -> Mask {
    if mm >= 0.0 {
        let d = distance_to_foreground(m);
        Volume::new(m.geometry().clone(), d.data().iter().map(|&v| u8::from(v <= mm)).collect()).unwrap()
    } else {
        let inv = m.map(|&v| u8::from(v == 0));
        let d = distance_to_foreground(&inv);
        Volume::new(m.geometry().clone(), d.data().iter().map(|&v| u8::from(v > -mm)).collect()).unwrap()
    }
}

fn shift(m: &Mask, s: [i64; 3]) -> Mask {
    Volume::from_fn(m.geometry().clone(), |[i, j, k]| *m.checked_get([i as i64 - s[0], j as i64 - s[1], k as i64 - s[2]]).unwrap_or(&0))
}

/// Add (or remove) `n` balls of radius `r` mm centred on pseudo-random foreground voxels.
fn bumps(m: &Mask, seed: u64, n: usize, r: f64, add: bool) -> Mask {
    let fg: Vec<usize> = (0..m.len()).filter(|&o| m.data()[o] != 0).collect();
    if fg.is_empty() {
        return m.clone();
    }
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let g = m.geometry();
    let s = g.spacing();
    let mut out = m.clone();
    for _ in 0..n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let c = g.index_of(fg[(state >> 33) as usize % fg.len()]);
        let ext: [i64; 3] = std::array::from_fn(|a| (r / s[a]).ceil() as i64);
        for dz in -ext[2]..=ext[2] {
            for dy in -ext[1]..=ext[1] {
                for dx in -ext[0]..=ext[0] {
                    let d2 = (dx as f64 * s[0]).powi(2) + (dy as f64 * s[1]).powi(2) + (dz as f64 * s[2]).powi(2);
                    let p = [c[0] as i64 + dx, c[1] as i64 + dy, c[2] as i64 + dz];
                    if d2 <= r * r && m.checked_get(p).is_some() {
                        *out.get_mut(p[0] as usize, p[1] as usize, p[2] as usize) = u8::from(add);
                    }
                }
            }
        }
    }
    out
}

/// Crop to the mask's bounding box plus `margin` voxels, to keep the EDTs small.
fn crop(m: &Mask, margin: usize) -> Mask {
    let d = m.dims();
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for o in (0..m.len()).filter(|&o| m.data()[o] != 0) {
        let p = m.geometry().index_of(o);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    if lo[0] == usize::MAX {
        return m.clone();
    }
    let lo: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(margin));
    let hi: [usize; 3] = std::array::from_fn(|a| (hi[a] + margin).min(d[a] - 1));
    let dims: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a] + 1);
    let g = m.geometry().sub_grid(lo, dims).unwrap();
    Volume::from_fn(g, |[i, j, k]| *m.get(lo[0] + i, lo[1] + j, lo[2] + k))
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "study-demo".into()));
    let root = liverseg_testdata::shared_dir().expect("needs ../shared (or LIVERSEG_SHARED)").join("data/cases");
    let mut ids: Vec<String> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    ids.sort();
    let sets: Vec<String> = ["cnn", "manual1", "manual2", "adjusted1"].map(String::from).to_vec();
    let mut masks = BTreeMap::new();
    let (mut scores, mut times, mut tags) = (String::from("case,reviewer,score\n"), String::from("case,reviewer,task,seconds\n"), String::from("case,reviewer,region\n"));
    let regions = ["IVC", "portal vein", "left liver tip", "lesion", "heart border", "stomach border"];
    for (n, id) in ids.iter().enumerate() {
        let p = root.join(id).join("liver.nii.gz");
        let Ok((m, _)) = liverseg_io::read_mask(&p, None, &Default::default()) else { continue };
        let m = crop(&m, 8);
        let t = std::time::Instant::now();
        masks.insert((id.clone(), 0), bumps(&morph(&m, -2.0), n as u64, 6, 6.0, true));
        masks.insert((id.clone(), 1), m.clone());
        masks.insert((id.clone(), 2), shift(&morph(&m, 1.5), [1, 0, 0]));
        masks.insert((id.clone(), 3), bumps(&m, 100 + n as u64, 3, 4.0, false));
        eprintln!("{id}: {:?} voxels, observers made in {:.2} s", m.dims(), t.elapsed().as_secs_f64());
        for (r, rev) in ["E1", "E2"].iter().enumerate() {
            scores.push_str(&format!("{id},{rev},{}\n", 2.5 + ((n * 3 + r * 5) % 6) as f64 * 0.5));
            times.push_str(&format!("{id},{rev},manual,{}\n", 1500 + 97 * ((n + r) % 9)));
            times.push_str(&format!("{id},{rev},adjust,{}\n", 120 + 113 * ((n * 2 + r) % 11)));
            tags.push_str(&format!("{id},{rev},{}\n", regions[(n + r) % regions.len()]));
        }
    }
    std::fs::create_dir_all(&out).unwrap();
    let (ps, pt, pg) = (out.join("in_scores.csv"), out.join("in_times.csv"), out.join("in_tags.csv"));
    std::fs::write(&ps, scores).unwrap();
    std::fs::write(&pt, times).unwrap();
    std::fs::write(&pg, tags).unwrap();
    let cases: Vec<String> = masks.keys().map(|k| k.0.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let source = Mem(masks);
    let t = std::time::Instant::now();
    let input = StudyInput { sets, cases, comparisons: vec![], source: &source, scores: Some(ps), times: Some(pt), tags: Some(pg), options: EvalOptions::default() };
    let report = run_study(&input).unwrap();
    let files = report.write(&out).unwrap();
    eprintln!("study: {} comparisons in {:.2} s; wrote {} files to {}", report.comparisons.len(), t.elapsed().as_secs_f64(), files.len(), out.display());
    print!("{}", report.markdown(&[]).split("Per-case values").next().unwrap());
}
