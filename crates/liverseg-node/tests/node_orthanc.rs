//! The node between a real PACS (Orthanc, Debian package `orthanc`) and itself:
//! a phantom CT is uploaded to Orthanc, Orthanc pushes the series to the node by
//! C-STORE, the node sends SEG and RTSTRUCT back to Orthanc, and the test pulls
//! them from Orthanc (REST download) and checks them on the CT grid. SKIPs when
//! Orthanc or curl is not installed.

mod common;

use common::*;
use liverseg_node::{Destination, ReplyTo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct Orthanc {
    child: Child,
    http: u16,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Orthanc {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    fn curl(&self, args: &[&str], path: &str) -> Vec<u8> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "60"])
            .args(args)
            .arg(self.url(path))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn get(&self, path: &str) -> Value {
        serde_json::from_slice(&self.curl(&[], path)).unwrap()
    }

    fn post_json(&self, path: &str, body: &str) -> Value {
        serde_json::from_slice(&self.curl(
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ],
            path,
        ))
        .unwrap()
    }

    fn upload(&self, file: &Path) -> Value {
        let arg = format!("@{}", file.display());
        serde_json::from_slice(&self.curl(
            &["-X", "POST", "-H", "Expect:", "--data-binary", &arg],
            "/instances",
        ))
        .unwrap()
    }
}

#[test]
fn orthanc_pushes_a_series_to_the_node_and_the_results_can_be_pulled_from_orthanc() {
    if !have("Orthanc", "--version") || !have("curl", "--version") {
        eprintln!("SKIP: Orthanc or curl not found (apt-get install orthanc curl); the PACS round-trip test did not run");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dicom_port, http_port) = (free_port(), free_port());
    let storage = tmp.path().join("storage");
    let mut cfg = config(
        &storage,
        ReplyTo::Fixed(Destination {
            ae_title: "ORTHANC".into(),
            host: "127.0.0.1".into(),
            port: dicom_port,
        }),
    );
    cfg.allowed_callers = vec!["ORTHANC".into()];
    let node = start(cfg);

    let db = tmp.path().join("orthanc-db");
    let conf = tmp.path().join("orthanc.json");
    let config = serde_json::json!({
        "Name": "liverseg-test",
        "StorageDirectory": db, "IndexDirectory": db,
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
        "Plugins": [],
        "DicomModalities": { "liverseg": ["LIVERSEG", "127.0.0.1", node.local_addr().port()] }
    });
    std::fs::write(&conf, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let child = Command::new("Orthanc")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let orthanc = Orthanc {
        child,
        http: http_port,
    };
    wait_for("Orthanc to answer", Duration::from_secs(60), || {
        Command::new("curl")
            .args(["-sS", "--fail", &orthanc.url("/system")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });

    let ct = write_ct_series(
        &tmp.path().join("ct"),
        "1.2.826.0.1.3680043.10.1137.960",
        11,
    );
    let mut series_id = String::new();
    for f in &ct.files {
        series_id = orthanc.upload(f)["ParentSeries"]
            .as_str()
            .unwrap()
            .to_string();
    }
    // Push: Orthanc sends the series to the node (C-STORE, then A-RELEASE).
    let body = serde_json::json!({ "Resources": [series_id], "Synchronous": true }).to_string();
    orthanc.post_json("/modalities/liverseg/store", &body);

    // The node answers with SEG + RTSTRUCT into Orthanc.
    let modality_series = |m: &str| -> Vec<Value> {
        orthanc
            .get("/series?expand")
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["MainDicomTags"]["Modality"] == m)
            .cloned()
            .collect()
    };
    wait_for(
        "SEG and RTSTRUCT in Orthanc",
        Duration::from_secs(60),
        || !modality_series("SEG").is_empty() && !modality_series("RTSTRUCT").is_empty(),
    );
    wait_for("the job to finish", Duration::from_secs(60), || {
        jobs(&storage, "done").len() == 1
    });
    let job = &jobs(&storage, "done")[0];
    assert_eq!(
        (job.calling_ae.as_str(), job.instances),
        ("ORTHANC", ct.files.len())
    );

    // Pull the results back out of the PACS and check them on the CT grid.
    let mut pulled: Vec<PathBuf> = Vec::new();
    for m in ["SEG", "RTSTRUCT"] {
        let series = modality_series(m);
        assert_eq!(series.len(), 1, "{m} series in Orthanc");
        assert_eq!(
            series[0]["ParentStudy"],
            orthanc.get(&format!("/series/{series_id}"))["ParentStudy"],
            "{m} filed under the CT's study"
        );
        let instances = series[0]["Instances"].as_array().unwrap();
        assert_eq!(instances.len(), 1);
        let bytes = orthanc.curl(
            &[],
            &format!("/instances/{}/file", instances[0].as_str().unwrap()),
        );
        let path = tmp.path().join(format!("pulled-{m}.dcm"));
        std::fs::write(&path, bytes).unwrap();
        pulled.push(path);
    }
    check_results(&pulled, &[&ct]);
    node.shutdown();
}
