//! End-to-end tests of `liverseg train`: the real binary on phantom cases with a
//! tiny network at 6 mm, so a run takes seconds. Whether training learns is
//! checked in liverseg-model's tiny_training test; these check what a user
//! drives: the data folder, the flags, the files written, resume, a trained
//! model that `segment` accepts, and clear refusals of bad input.

use std::path::Path;
use std::process::{Command, Output};

fn liverseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg")).args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A folder of cases as `train` reads it: `<id>/ct.nii.gz` + `<id>/liver.nii.gz`,
/// which is what `liverseg phantom -o <id>` writes.
fn phantom_cases(root: &Path, seeds: &[u64]) {
    for seed in seeds {
        let o = liverseg(&["phantom", "-o", s(&root.join(format!("p{seed}"))), "--seed", &seed.to_string()]);
        assert!(o.status.success(), "phantom {seed}: {}", stderr(&o));
    }
}

fn tiny_network(path: &Path) {
    let network = serde_json::json!({
        "name": "tiny-cli",
        "pathways": [{"factor": 1, "features": [4, 4, 6, 6]}, {"factor": 3, "features": [4, 4, 6, 6]}],
        "kernel": 3,
        "residual": [],
        "fc": [8],
        "dropout": 0.0,
        "train_patch": 9,
        "infer_patch": 18,
        "preprocess": {"spacing_mm": 6.0}
    });
    std::fs::write(path, network.to_string()).unwrap();
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn train_resume_and_segment_with_the_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    let (cases, out, net) = (dir.path().join("cases"), dir.path().join("run"), dir.path().join("net.json"));
    phantom_cases(&cases, &[1, 2, 9]);
    tiny_network(&net);
    let common = ["--network", s(&net), "--subepochs", "1", "--patches", "16", "--batch", "8", "--validation", "p9", "--seed", "3", "--json"];

    let mut args = vec!["train", s(&cases), "-o", s(&out), "--epochs", "1"];
    args.extend(common);
    let o = liverseg(&args);
    assert!(o.status.success(), "train: {}", stderr(&o));
    let summary = json(&o);
    assert_eq!(summary["train_cases"], serde_json::json!(["p1", "p2"]));
    assert_eq!(summary["validation_cases"], serde_json::json!(["p9"]));
    assert_eq!(summary["epochs"], 1);
    assert_eq!(summary["model"].as_str().unwrap(), s(&out.join("best.lsm")));
    let threshold = summary["threshold"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&threshold), "threshold {threshold}");
    for f in ["best.lsm", "last.lsm", "last.optim.bpk", "state.json", "train.jsonl", "curves-loss.png", "curves-dsc.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let cached = std::fs::read_dir(out.join("cache")).unwrap().count();
    assert!(cached >= 3, "{cached} entries in the pre-processing cache for 3 cases");
    let steps = |log: &str| log.lines().filter(|l| l.contains("\"event\":\"step\"")).count();
    assert_eq!(steps(&std::fs::read_to_string(out.join("train.jsonl")).unwrap()), 2);

    // Resume to two epochs: the first is not trained again.
    let mut args = vec!["train", s(&cases), "-o", s(&out), "--epochs", "2", "--resume"];
    args.extend(common);
    let o = liverseg(&args);
    assert!(o.status.success(), "resume: {}", stderr(&o));
    let resumed = json(&o);
    assert_eq!(resumed["epochs"], 2);
    let log = std::fs::read_to_string(out.join("train.jsonl")).unwrap();
    assert!(log.contains("resumed after epoch 1"), "no resume message in train.jsonl");
    assert_eq!(steps(&log), 4);

    // The text summary says what its figure is of: a resume of a finished run
    // only writes the final model again; without a validation set the figure
    // is the training cases' (it once read "validation DSC ... (epoch 0)").
    let text: Vec<&str> = common.iter().copied().filter(|a| *a != "--json").collect();
    let mut args = vec!["train", s(&cases), "-o", s(&out), "--epochs", "2", "--resume"];
    args.extend(&text);
    let o = liverseg(&args);
    assert!(o.status.success(), "resume a finished run: {}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("validation DSC") && said.contains("(epoch "), "{said}");
    assert_eq!(steps(&std::fs::read_to_string(out.join("train.jsonl")).unwrap()), 4, "a finished run trains no more");
    let no_val: Vec<&str> = text.iter().copied().filter(|a| *a != "--validation" && *a != "p9").collect();
    let out_no_val = dir.path().join("run-no-val");
    let mut args = vec!["train", s(&cases), "-o", s(&out_no_val), "--epochs", "1"];
    args.extend(&no_val);
    let o = liverseg(&args);
    assert!(o.status.success(), "train without validation: {}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("on the training cases") && said.contains("(no validation set)") && !said.contains("validation DSC"), "{said}");

    // The model it wrote is one `segment --model` takes, with its own id and threshold.
    let seg = dir.path().join("seg");
    let o = liverseg(&["segment", s(&cases.join("p9/ct.nii.gz")), "-o", s(&seg), "--model", s(&out.join("best.lsm")), "--json"]);
    assert!(o.status.success(), "segment: {}", stderr(&o));
    let report = json(&o);
    assert!(report["model_id"].as_str().unwrap_or_default().contains("tiny-cli"), "model in report: {}", report["model_id"]);
    let used = report["threshold"].as_f64().unwrap();
    assert!((used - resumed["threshold"].as_f64().unwrap()).abs() < 1e-6, "segment used threshold {used}, training chose {}", resumed["threshold"]);
    assert!(seg.join("liver.nii.gz").is_file());

    // Its best and last checkpoints as an ensemble: both named in the report.
    let o = liverseg(&["segment", s(&cases.join("p9/ct.nii.gz")), "-o", s(&dir.path().join("ens")), "--model", s(&out.join("best.lsm")), "--model", s(&out.join("last.lsm")), "--json"]);
    assert!(o.status.success(), "segment with two models: {}", stderr(&o));
    let id = json(&o)["model_id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("ensemble(") && id.matches("tiny-cli").count() == 2, "model in report: {id}");

    // The same two averaged into one model file that segment takes; the output
    // may not overwrite an input.
    let avg = dir.path().join("avg.lsm");
    let o = liverseg(&["average", s(&out.join("best.lsm")), s(&out.join("last.lsm")), "-o", s(&avg), "--json"]);
    assert!(o.status.success(), "average: {}", stderr(&o));
    let id = json(&o)["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("liverseg-tiny-cli-avg2-"), "{id}");
    let o = liverseg(&["segment", s(&cases.join("p9/ct.nii.gz")), "-o", s(&dir.path().join("avg")), "--model", s(&avg), "--json"]);
    assert!(o.status.success(), "segment with the average: {}", stderr(&o));
    // `+flip-xy`: segment's default flip averaging.
    assert_eq!(json(&o)["model_id"].as_str(), Some(format!("{id}+flip-xy").as_str()));
    let before = std::fs::read(&avg).unwrap();
    // Path comparison alone would miss a link to the input.
    let respelt = dir.path().join("link.lsm");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&avg, &respelt).unwrap();
    #[cfg(not(unix))]
    let respelt = avg.clone();
    for target in [&avg, &respelt] {
        let o = liverseg(&["average", s(&out.join("best.lsm")), s(&avg), "-o", s(target)]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("one of the models to average"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&avg).unwrap(), before, "the input was left as it was");

    // Its batch-norm statistics re-estimated on the training cases: a new
    // model file segment takes, the input untouched, the output never the input.
    let bn = dir.path().join("bn.lsm");
    let o = liverseg(&["recalibrate", s(&avg), s(&cases), "-o", s(&bn), "--batches", "3", "--json"]);
    assert!(o.status.success(), "recalibrate: {}", stderr(&o));
    let said = json(&o);
    let id = said["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("liverseg-tiny-cli-bn-"), "{id}");
    assert_eq!((said["cases"].as_u64(), said["threshold"].as_f64()), (Some(3), json_threshold(&avg)));
    assert_eq!(std::fs::read(&avg).unwrap(), before, "recalibration left its input as it was");
    let o = liverseg(&["segment", s(&cases.join("p9/ct.nii.gz")), "-o", s(&dir.path().join("bn")), "--model", s(&bn), "--json"]);
    assert!(o.status.success(), "segment with the recalibrated model: {}", stderr(&o));
    // `+flip-xy`: segment's default flip averaging.
    assert_eq!(json(&o)["model_id"].as_str(), Some(format!("{id}+flip-xy").as_str()));
    let o = liverseg(&["recalibrate", s(&avg), s(&cases), "-o", s(&respelt), "--batches", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("the output is the model itself"), "{}", stderr(&o));
    let missing = dir.path().join("no-such-model.lsm");
    let o = liverseg(&["recalibrate", s(&missing), s(&cases), "-o", s(&dir.path().join("x.lsm"))]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-model.lsm") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(!dir.path().join("x.lsm").exists());
}

/// The threshold in a model file's header, read with `info --json`.
fn json_threshold(model: &Path) -> Option<f64> {
    let o = liverseg(&["info", s(model), "--json"]);
    assert!(o.status.success(), "info: {}", stderr(&o));
    json(&o)["threshold"].as_f64()
}

fn assert_refused(o: &Output, names: &[&str], out: &Path) {
    assert_eq!(o.status.code(), Some(1), "expected a failure, got {:?}: {}", o.status, stderr(o));
    let err = stderr(o);
    for name in names {
        assert!(err.contains(name), "error does not name {name:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    assert!(parts.windows(2).all(|w| w[0] != w[1]), "a cause printed twice: {err}");
    assert!(!out.join("best.lsm").exists(), "a model was written after a refusal");
}

#[test]
fn bad_training_input_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net.json");
    tiny_network(&net);
    let out = dir.path().join("run");
    let train = |data: &Path, extra: &[&str]| {
        let mut args = vec!["train", s(data), "-o", s(&out), "--network", s(&net), "--epochs", "1", "--subepochs", "1", "--segments", "8", "--batch", "8"];
        args.extend(extra);
        liverseg(&args)
    };

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_refused(&train(&empty, &[]), &["empty", "no known dataset layout"], &out);

    assert_refused(&train(&dir.path().join("absent"), &[]), &["absent"], &out);

    let cases = dir.path().join("cases");
    phantom_cases(&cases, &[1, 2]);
    assert_refused(&train(&cases, &["--validation-fraction", "1.5"]), &["--validation-fraction"], &out);

    let bad_net = dir.path().join("bad-net.json");
    std::fs::write(&bad_net, r#"{"name": "x", "layers": 3}"#).unwrap();
    let o = liverseg(&["train", s(&cases), "-o", s(&out), "--network", s(&bad_net)]);
    assert_refused(&o, &["bad-net.json"], &out);

    // A reference mask cut short: the case and the file are named.
    let liver = cases.join("p2/liver.nii.gz");
    let bytes = std::fs::read(&liver).unwrap();
    std::fs::write(&liver, &bytes[..bytes.len() / 3]).unwrap();
    assert_refused(&train(&cases, &[]), &["p2", "liver.nii.gz"], &out);
}
