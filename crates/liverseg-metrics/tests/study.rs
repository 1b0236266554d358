//! The study pipeline on a small synthetic cohort: ellipsoid "livers" with
//! observer-specific perturbations, plus scores, times and tags CSVs.

use liverseg_metrics::study::{run_study, MaskSource, StudyInput};
use liverseg_metrics::EvalOptions;
use liverseg_volume::{Geometry, Mask, Volume};
use std::collections::BTreeMap;

struct Mem(BTreeMap<(String, usize), Mask>);

impl MaskSource for Mem {
    fn load(&self, case: &str, set: usize, _: Option<&Geometry>) -> Result<Option<Mask>, String> {
        Ok(self.0.get(&(case.to_string(), set)).cloned())
    }
}

/// Ellipsoid with semi-axes `r` (mm) centred at `c` (mm).
fn ellipsoid(g: &Geometry, c: [f64; 3], r: [f64; 3]) -> Mask {
    let s = g.spacing();
    Volume::from_fn(g.clone(), |p| u8::from((0..3).map(|a| ((p[a] as f64 * s[a] - c[a]) / r[a]).powi(2)).sum::<f64>() <= 1.0))
}

#[test]
fn synthetic_cohort_tables_plots_report() {
    let g = Geometry::identity([48, 40, 16], [1.0, 1.0, 2.5]).unwrap();
    let sets = ["cnn", "manual1", "manual2"].map(String::from).to_vec();
    let mut masks = BTreeMap::new();
    let mut cases = vec![];
    for i in 0..6 {
        let case = format!("case{i:02}");
        let r = [14.0 + i as f64, 11.0, 12.0];
        let c = [24.0, 20.0, 20.0];
        // cnn: slightly small; manual1: exact; manual2: larger in case 2 and 4 (RV > 1.1).
        masks.insert((case.clone(), 0), ellipsoid(&g, c, [r[0] - 0.6, r[1] - 0.5, r[2]]));
        masks.insert((case.clone(), 1), ellipsoid(&g, c, r));
        let grow = if i % 2 == 0 && i > 0 { 1.08 } else { 1.0 };
        masks.insert((case.clone(), 2), ellipsoid(&g, [c[0] + 1.0, c[1], c[2]], [r[0] * grow, r[1] * grow, r[2]]));
        cases.push(case);
    }
    // case05 has no manual2 contour.
    masks.remove(&("case05".to_string(), 2));
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("scores.csv");
    std::fs::write(&scores, "case,reviewer,score\ncase00,E1,4\ncase01,E1,3.5\ncase02,E1,2.5\ncase00,E2,4.5\ncase01,E2,3\ncase02,E2,5\n").unwrap();
    let times = dir.path().join("times.csv");
    std::fs::write(&times, "case,reviewer,task,seconds\ncase00,E1,manual,1800\ncase00,E1,adjust,300\ncase01,E1,adjust,600\ncase00,E2,adjust,120\n").unwrap();
    let tags = dir.path().join("tags.csv");
    std::fs::write(&tags, "case,reviewer,region\ncase00,E1,IVC\ncase00,E2,IVC\ncase01,E1,left liver tip\ncase02,E2,IVC\n").unwrap();
    let source = Mem(masks);
    let input = StudyInput {
        sets: sets.clone(),
        cases,
        comparisons: vec![],
        source: &source,
        scores: Some(scores.clone()),
        times: Some(times),
        tags: Some(tags),
        options: EvalOptions::default(),
    };
    let report = run_study(&input).unwrap();
    assert_eq!(report.comparisons.len(), 3);
    let labels: Vec<String> = report.comparisons.iter().map(|c| c.label()).collect();
    assert_eq!(labels, ["cnn vs manual1", "cnn vs manual2", "manual1 vs manual2"]);
    let c01 = &report.comparisons[0];
    assert_eq!(c01.cases.len(), 6);
    // cnn is smaller than manual1 everywhere: RV = V(manual1)/V(cnn) > 1.
    assert!(c01.cases.iter().all(|r| r.values[1].unwrap() > 1.0));
    let c12 = &report.comparisons[2];
    assert_eq!(c12.cases.len(), 5, "case05 lacks manual2");
    assert_eq!((c12.rv_outside, c12.rv_defined), (2, 5), "cases 2 and 4 grow by 1.08² ≈ 1.17");
    assert!(report.warnings.iter().any(|w| w.contains("case05") && w.contains("manual2")));
    let dsc = &c01.summary["dsc"];
    assert!(dsc.median.unwrap() > 0.85 && dsc.median.unwrap() < 1.0);
    let s = report.scores.as_ref().unwrap();
    assert_eq!(s.reviewers, ["E1", "E2"]);
    assert_eq!(s.usable, vec![(2, 3), (3, 3)]);
    assert_eq!(s.counts[0][3], 1, "one 2.5 for E1");
    let t = report.times.as_ref().unwrap();
    let e1_adjust = t.iter().find(|r| r.reviewer == "E1" && r.task == "adjust").unwrap();
    assert_eq!(e1_adjust.minutes.median, Some(7.5));
    let tg = report.tags.as_ref().unwrap();
    assert_eq!((tg[0].region.as_str(), tg[0].cases), ("IVC", 2));

    let out = dir.path().join("out");
    let written = report.write(&out).unwrap();
    for f in ["per_case.csv", "comparisons.csv", "study.json", "report.md", "box_dsc.png", "box_hd.svg", "scores.png", "scores.csv", "times.csv", "tags.csv"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(written.len() >= 16);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("![DSC](box_dsc.png)"));
    assert!(md.contains("| manual1 vs manual2 | 5 | 0 |"));
    assert!(md.contains("2/5 |"));
    let per_case = std::fs::read_to_string(out.join("per_case.csv")).unwrap();
    assert_eq!(per_case.lines().count(), 1 + 6 + 5 + 5);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("study.json")).unwrap()).unwrap();
    assert_eq!(json["report"]["comparisons"][2]["rv_outside"], 2);
    if let Ok(keep) = std::env::var("LIVERSEG_KEEP_STUDY") {
        // Let a person look at the plots.
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for f in std::fs::read_dir(&out).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, keep.join(f.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn bad_score_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.csv");
    std::fs::write(&p, "case,reviewer,score\nc1,E1,3.2\n").unwrap();
    let e = liverseg_metrics::study::read_scores(&p).unwrap_err().to_string();
    assert!(e.contains("s.csv") && e.contains("row 2") && e.contains("3.2"), "{e}");
    std::fs::write(&p, "case,reviewer,task,seconds\nc1,E1,review,3\n").unwrap();
    assert!(liverseg_metrics::study::read_times(&p).unwrap_err().to_string().contains("review"));
}
