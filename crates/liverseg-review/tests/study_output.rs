//! Review output is a `liverseg study` input as is: the study loader reads the
//! mask sets, scores, times and tags two reviewers produced.

mod common;

use common::{config, phantom_case, Server};
use liverseg_metrics::study::{run_study, FolderSets, StudyInput};
use liverseg_metrics::EvalOptions;

#[test]
fn study_reads_review_output() {
    let tmp = tempfile::tempdir().unwrap();
    let specs: Vec<_> = (0..2)
        .map(|i| phantom_case(tmp.path(), &format!("case{i}"), 20 + i).0)
        .collect();
    let out = tmp.path().join("out");
    for (reviewer, score, radius) in [("alice", "4.5", 6), ("bob", "3", 10)] {
        let srv = Server::start(config(specs.clone(), reviewer, out.clone()));
        for c in ["case0", "case1"] {
            let body = format!(
                r#"{{"op":"brush","axis":"z","slice":8,"points":[[24,20],[30,20]],"radius_mm":{radius},"value":0}}"#
            );
            srv.edit(c, &body);
            srv.json(
                "PUT",
                &format!("/api/cases/{c}/record"),
                &format!(r#"{{"score":{score},"tags":["IVC"]}}"#),
            );
        }
        // Stopping saves what is open.
        srv.stop();
    }
    let dirs = vec![
        out.join("original"),
        out.join("alice/adjusted"),
        out.join("bob/adjusted"),
    ];
    let source = FolderSets::new(&dirs).unwrap();
    assert_eq!(source.case_ids(), ["case0", "case1"]);
    let report = run_study(&StudyInput {
        sets: vec!["cnn".into(), "alice".into(), "bob".into()],
        cases: source.case_ids(),
        comparisons: vec![],
        source: &source,
        scores: Some(out.join("scores.csv")),
        times: Some(out.join("times.csv")),
        tags: Some(out.join("tags.csv")),
        options: EvalOptions::default(),
    })
    .unwrap();
    assert_eq!(report.comparisons.len(), 3);
    for c in &report.comparisons {
        assert_eq!(c.cases.len(), 2, "{}", c.label());
        for r in &c.cases {
            assert!(r.error.is_none(), "{:?}", r.error);
            let dsc = r.values[0].unwrap();
            // Each reviewer erased part of the liver: below 1, far above 0.
            assert!(dsc < 1.0 && dsc > 0.5, "{} {}: {dsc}", c.label(), r.case);
        }
    }
    let scores = report.scores.unwrap();
    assert_eq!(scores.reviewers, ["alice", "bob"]);
    assert_eq!(scores.counts[0][7], 2); // 4.5
    assert_eq!(scores.counts[1][4], 2); // 3
    let times = report.times.unwrap();
    assert!(times
        .iter()
        .any(|t| t.reviewer == "alice" && t.task == "adjust"));
    let tags = report.tags.unwrap();
    assert_eq!(tags[0].region, "IVC");
    assert_eq!(tags[0].cases, 2);
    assert_eq!(tags[0].per_reviewer["bob"], 2);
}
