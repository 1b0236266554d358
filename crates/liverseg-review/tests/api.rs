//! The HTTP API end to end: a real server on an ephemeral port, phantom cases
//! written to a temporary folder, edits through the API, files checked on disk.

mod common;

use common::{config, dsc, fix_seeds, flawed_case, phantom_case, request, row_stroke, seeds_json, Server};
use liverseg_volume::Mask;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Voxels of a disc on axial slice `k` around (u, v) of radius `r` mm, the
/// way the brush defines it (distance between voxel centres, in mm).
fn disc(m: &Mask, k: usize, u: f64, v: f64, r: f64) -> BTreeSet<usize> {
    let [nx, ny, _] = m.dims();
    let sp = m.geometry().spacing();
    let mut s = BTreeSet::new();
    for j in 0..ny {
        for i in 0..nx {
            if ((i as f64 - u) * sp[0]).powi(2) + ((j as f64 - v) * sp[1]).powi(2) <= r * r {
                s.insert(m.geometry().offset(i, j, k));
            }
        }
    }
    s
}

fn read_mask(p: &std::path::Path) -> Mask {
    liverseg_io::read_mask(p, None, &Default::default())
        .unwrap()
        .0
}

fn differing(a: &Mask, b: &Mask) -> BTreeSet<usize> {
    a.data()
        .iter()
        .zip(b.data())
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(o, _)| o)
        .collect()
}

#[test]
fn paint_erase_undo_save_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 1);
    let out = tmp.path().join("out");
    let srv = Server::start(config(vec![spec.clone()], "alice", out.clone()));

    let info = srv.json("GET", "/api/info", "");
    assert_eq!(info["reviewer"], "alice");
    assert_eq!(info["cases"][0]["id"], "p1");
    assert_eq!(info["cases"][0]["saved"], false);
    assert_eq!(info["tags"].as_array().unwrap().len(), 14);
    assert_eq!(info["tag_kinds"], json!(["missed", "leaked"]));
    assert!(info["criteria"][0]["expert1"]
        .as_str()
        .unwrap()
        .contains("manually from scratch"));

    let open = srv.json("GET", "/api/cases/p1", "");
    assert_eq!(open["dims"], json!([48, 40, 16]));
    assert_eq!(open["stats"]["dsc_vs_start"], 1.0);
    let start_fg = start.count_foreground() as u64;
    assert!(start_fg > 100, "phantom liver too small: {start_fg}");
    assert_eq!(open["stats"]["voxels"], start_fg);

    // Paint a disc at the edge of slice 2, away from the liver.
    let paint = disc(&start, 2, 6.0, 6.0, 9.0)
        .into_iter()
        .filter(|&o| start.data()[o] == 0)
        .collect::<BTreeSet<_>>();
    assert!(paint.len() > 10);
    let r = srv.edit(
        "p1",
        r#"{"op":"brush","axis":"z","slice":2,"points":[[6,6]],"radius_mm":9,"value":1}"#,
    );
    assert_eq!(r["changed"], paint.len());
    // Erase around a liver voxel.
    let c = (0..start.len())
        .find(|&o| {
            start.data()[o] == 1 && {
                let [i, j, k] = start.geometry().index_of(o);
                i > 3 && j > 3 && k > 0 && start.get(i + 2, j + 2, k) == &1
            }
        })
        .unwrap();
    let [ci, cj, ck] = start.geometry().index_of(c);
    let erase = disc(&start, ck, ci as f64 + 1.0, cj as f64 + 1.0, 6.0)
        .into_iter()
        .filter(|&o| start.data()[o] == 1)
        .collect::<BTreeSet<_>>();
    assert!(!erase.is_empty());
    let body = json!({"op":"brush","axis":"z","slice":ck,"points":[[ci as f64 + 1.0, cj as f64 + 1.0]],"radius_mm":6,"value":0});
    let r = srv.edit("p1", &body.to_string());
    assert_eq!(r["changed"], erase.len());
    // A third stroke, undone, then redone and undone again: it must not be saved.
    let r = srv.edit("p1", r#"{"op":"brush","axis":"z","slice":12,"points":[[40,30],[44,34]],"radius_mm":5,"value":1}"#);
    assert!(r["changed"].as_u64().unwrap() > 0);
    let expected_changed = (paint.len() + erase.len()) as u64;
    assert!(r["stats"]["changed_voxels"].as_u64().unwrap() > expected_changed);
    let u = srv.undo("p1", "undo");
    assert_eq!(u["undone"], "paint");
    assert_eq!(u["stats"]["changed_voxels"], expected_changed);
    assert_eq!(u["can_redo"], true);
    srv.undo("p1", "redo");
    srv.undo("p1", "undo");
    // History holds flipped-voxel lists, not volumes.
    let s = srv.json("POST", "/api/cases/p1/activity", "");
    assert!(s["active_seconds"].as_f64().unwrap() >= 0.0);

    // The slice endpoint shows the paint: i16 HU then u8 mask.
    let sl = srv.get("/api/cases/p1/slice/z/2");
    assert_eq!(sl.status, 200);
    let (w, h) = (
        sl.header("x-width").unwrap().parse::<usize>().unwrap(),
        sl.header("x-height").unwrap().parse::<usize>().unwrap(),
    );
    assert_eq!((w, h), (48, 40));
    assert_eq!(sl.body.len(), w * h * 3);
    let ct = liverseg_io::read_image(&spec.ct, &Default::default())
        .unwrap()
        .volume
        .to_i16_exact()
        .unwrap();
    let hu0 = i16::from_le_bytes([sl.body[2 * (7 + 5 * w)], sl.body[2 * (7 + 5 * w) + 1]]);
    assert_eq!(hu0, *ct.get(7, 5, 2));
    assert_eq!(sl.body[w * h * 2 + 6 + 6 * w], 1);
    let m = srv.get("/api/cases/p1/slice/y/6?part=mask");
    assert_eq!(m.body.len(), 48 * 16);
    let sag = srv.get("/api/cases/p1/slice/x/6");
    assert_eq!(
        (sag.header("x-width"), sag.header("x-height")),
        (Some("40"), Some("16"))
    );

    let rec = srv.json(
        "PUT",
        "/api/cases/p1/record",
        r#"{"score":3.5,"tags":["lesion: missed","kidney: leaked","IVC: leaked","lesion: missed"],"comment":"tip"}"#,
    );
    assert_eq!(rec["tags"], json!(["IVC: leaked", "lesion: missed", "kidney: leaked"]));
    for bad in [r#"["IVC: wrong"]"#, r#"["spleen: leaked"]"#, r#"["IVC:leaked"]"#] {
        let r = srv.put("/api/cases/p1/record", &format!(r#"{{"score":3,"tags":{bad}}}"#));
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(
        srv.put("/api/cases/p1/record", r#"{"score":3.25}"#).status,
        400
    );
    assert_eq!(
        srv.put("/api/cases/p1/record", r#"{"score":3,"tags":["spleen"]}"#)
            .status,
        400
    );
    let saved = srv.json("POST", "/api/cases/p1/save", "");
    assert_eq!(saved["saved"], true);
    assert_eq!(
        saved["audit"]["outputs"],
        json!(["alice/adjusted/p1.nii.gz"])
    );

    // On disk: the adjusted mask differs from the start exactly where painted and erased.
    let adjusted = read_mask(&out.join("alice/adjusted/p1.nii.gz"));
    assert!(adjusted.geometry().same_grid(start.geometry()));
    let diff = differing(&start, &adjusted);
    assert_eq!(diff, paint.union(&erase).copied().collect());
    assert_eq!(
        read_mask(&out.join("original/p1.nii.gz")).data(),
        start.data()
    );
    let audit: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("alice/audit/p1.json")).unwrap())
            .unwrap();
    assert_eq!(audit["reviewer"], "alice");
    assert_eq!(audit["score"], 3.5);
    assert_eq!(audit["edit_count"], 3);
    assert_eq!(audit["changed_voxels"], expected_changed);
    assert_eq!(audit["comment"], "tip");
    assert!(audit["saved_at"].as_str().unwrap().ends_with('Z'));
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scores, "case,reviewer,score\np1,alice,3.5\n");
    let tags = std::fs::read_to_string(out.join("alice/tags.csv")).unwrap();
    assert_eq!(
        tags,
        "case,reviewer,region,kind\np1,alice,IVC,leaked\np1,alice,lesion,missed\np1,alice,kidney,leaked\n"
    );
    let whole = srv.get("/api/cases/p1/volume/mask");
    assert_eq!(whole.body, adjusted.data());
    assert_eq!(
        srv.get("/api/cases/p1/volume/ct").body.len(),
        2 * adjusted.len()
    );
    srv.stop();

    // A new server resumes from the saved mask and record.
    let srv = Server::start(config(vec![spec], "alice", out.clone()));
    let open = srv.json("GET", "/api/cases/p1", "");
    assert_eq!(open["stats"]["changed_voxels"], expected_changed);
    assert_eq!(open["score"], 3.5);
    assert_eq!(open["tags"], json!(["IVC: leaked", "lesion: missed", "kidney: leaked"]));
    assert_eq!(open["edit_count"], 3);
    assert_eq!(open["can_undo"], false);
    let info = srv.json("GET", "/api/info", "");
    assert_eq!(info["cases"][0]["saved"], true);
    let sl = srv.get("/api/cases/p1/slice/z/2?part=mask");
    assert_eq!(sl.body[6 + 6 * 48], 1);
}

#[test]
fn case_ids_cannot_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = phantom_case(tmp.path(), "p1", 2);
    std::fs::write(tmp.path().join("secret.json"), b"{}").unwrap();
    let out = tmp.path().join("out");
    let srv = Server::start(config(vec![spec], "alice", out.clone()));
    for path in [
        "/api/cases/..%2Fsecret/save",
        "/api/cases/%2e%2e/save",
        "/api/cases/..%2F..%2Fetc%2Fpasswd/slice/z/0",
        "/api/cases/p1%00/save",
        "/api/cases/.hidden/save",
        "/api/cases/a%5Cb/save",
    ] {
        let r = if path.ends_with("save") {
            srv.post(path, "")
        } else {
            srv.get(path)
        };
        assert_eq!(r.status, 400, "{path}: {} {}", r.status, r.text());
    }
    // Well-formed but not in the worklist; and a route the traversal would need.
    assert_eq!(srv.post("/api/cases/p2/save", "").status, 404);
    assert_ne!(srv.post("/api/cases/../secret/save", "").status, 200);
    assert_eq!(srv.get("/web/..%2Fsrc%2Flib.rs").status, 404);
    // Bad ops and bad axes are 400, not 500 or a panic.
    assert_eq!(
        srv.post("/api/cases/p1/edit", r#"{"op":"brush"}"#).status,
        400
    );
    assert_eq!(
        srv.post(
            "/api/cases/p1/edit",
            r#"{"op":"runs","runs":[[30719,2,1]],"mask_revision":0}"#
        )
        .status,
        400
    );
    assert_eq!(srv.get("/api/cases/p1/slice/w/0").status, 400);
    assert_eq!(srv.get("/api/cases/p1/slice/z/16").status, 400);
    // Nothing was written outside OUT/original and OUT/alice.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "original"]);
}

#[test]
fn token_and_host_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = phantom_case(tmp.path(), "p1", 3);
    let mut cfg = config(vec![spec], "alice", tmp.path().join("out"));
    cfg.token = Some("s3cretT0ken".into());
    let srv = Server::start(cfg);
    assert_eq!(srv.get("/api/info").status, 401);
    assert_eq!(srv.get("/api/info?token=wrong").status, 401);
    assert_eq!(srv.get("/api/info?token=s3cretT0ken").status, 200);
    assert_eq!(
        request(
            srv.addr,
            "GET",
            "/api/info",
            &[("x-review-token", "s3cretT0ken")],
            b""
        )
        .status,
        200
    );
    // The page itself loads without the token (it reads it from its own URL).
    assert_eq!(srv.get("/").status, 200);
    let js = srv.get("/web/app.js");
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    // DNS rebinding: a foreign Host is refused on a loopback server.
    assert_eq!(
        request(
            srv.addr,
            "GET",
            "/api/info?token=s3cretT0ken",
            &[("Host", "evil.example:80")],
            b""
        )
        .status,
        403
    );
    assert_eq!(
        request(
            srv.addr,
            "GET",
            "/api/info?token=s3cretT0ken",
            &[("Host", "localhost")],
            b""
        )
        .status,
        200
    );
}

#[test]
fn two_reviewers_and_concurrent_saves() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 4);
    let out = tmp.path().join("out");
    let alice = Server::start(config(vec![spec.clone()], "alice", out.clone()));
    let bob = Server::start(config(vec![spec], "bob", out.clone()));
    alice.edit(
        "p1",
        r#"{"op":"brush","axis":"z","slice":1,"points":[[5,5]],"radius_mm":6,"value":1}"#,
    );
    bob.edit(
        "p1",
        r#"{"op":"brush","axis":"z","slice":14,"points":[[40,34]],"radius_mm":6,"value":1}"#,
    );
    alice.json(
        "PUT",
        "/api/cases/p1/record",
        r#"{"score":4,"tags":["heart"]}"#,
    );
    bob.json(
        "PUT",
        "/api/cases/p1/record",
        r#"{"score":2.5,"tags":["colon","stomach"]}"#,
    );
    // Both save the same case at once, many times, while alice keeps editing.
    std::thread::scope(|s| {
        for srv in [&alice, &bob] {
            for _ in 0..3 {
                s.spawn(move || {
                    for _ in 0..4 {
                        let r = srv.post("/api/cases/p1/save", "");
                        assert_eq!(r.status, 200, "{}", r.text());
                    }
                });
            }
        }
        s.spawn(|| {
            for k in 0..6 {
                let body = json!({"op":"brush","axis":"z","slice":1,"points":[[5 + k, 20]],"radius_mm":4,"value":1});
                alice.edit("p1", &body.to_string());
            }
        });
    });
    alice.json("POST", "/api/cases/p1/save", "");
    bob.json("POST", "/api/cases/p1/save", "");
    let a = read_mask(&out.join("alice/adjusted/p1.nii.gz"));
    let b = read_mask(&out.join("bob/adjusted/p1.nii.gz"));
    let (da, db) = (differing(&start, &a), differing(&start, &b));
    assert!(
        da.iter().all(|&o| start.geometry().index_of(o)[2] == 1),
        "alice's file has someone else's edit"
    );
    assert!(
        db.iter().all(|&o| start.geometry().index_of(o)[2] == 14),
        "bob's file has someone else's edit"
    );
    // The last save holds every edit alice made.
    assert_eq!(
        a.data(),
        alice.get("/api/cases/p1/volume/mask").body.as_slice()
    );
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scores, "case,reviewer,score\np1,alice,4\np1,bob,2.5\n");
    let tags = std::fs::read_to_string(out.join("tags.csv")).unwrap();
    assert_eq!(
        tags,
        // Bare regions (records made before tags had a kind) are still taken.
        "case,reviewer,region,kind\np1,alice,heart,\np1,bob,stomach,\np1,bob,colon,\n"
    );
    // No temporary files left behind.
    for d in ["alice/adjusted", "bob/adjusted", "alice/audit", "original"] {
        for e in std::fs::read_dir(out.join(d)).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            assert!(!n.ends_with(".partial"), "{d}/{n}");
        }
    }
}

#[test]
fn autosave_writes_without_an_explicit_save() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 5);
    let out = tmp.path().join("out");
    let mut cfg = config(vec![spec], "carol", out.clone());
    cfg.autosave = Duration::from_millis(100);
    let srv = Server::start(cfg);
    srv.edit(
        "p1",
        r#"{"op":"brush","axis":"z","slice":0,"points":[[3,3]],"radius_mm":5,"value":1}"#,
    );
    let path = out.join("carol/adjusted/p1.nii.gz");
    // The shared tables are the last file a save writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !out.join("times.csv").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Read it while the server is still running (as after a kill -9).
    let a = read_mask(&path);
    assert!(!differing(&start, &a).is_empty());
    assert!(out.join("carol/audit/p1.json").exists());
    assert!(out.join("times.csv").exists());
}

#[test]
fn lru_eviction_saves_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let specs: Vec<_> = (0..3)
        .map(|i| phantom_case(tmp.path(), &format!("c{i}"), 10 + i).0)
        .collect();
    let out = tmp.path().join("out");
    let mut cfg = config(specs, "dave", out.clone());
    cfg.max_open = 1;
    let srv = Server::start(cfg);
    srv.edit(
        "c0",
        r#"{"op":"brush","axis":"z","slice":0,"points":[[3,3]],"radius_mm":5,"value":1}"#,
    );
    let before = srv.json("GET", "/api/cases/c0", "")["stats"]["changed_voxels"].clone();
    // Opening c1 evicts c0, saving it first.
    srv.json("GET", "/api/cases/c1", "");
    assert!(out.join("dave/adjusted/c0.nii.gz").exists());
    assert_eq!(
        srv.json("GET", "/api/cases/c0", "")["stats"]["changed_voxels"],
        before
    );
}

#[cfg(unix)]
#[test]
fn record_only_saves_do_not_rewrite_the_mask() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = phantom_case(tmp.path(), "p1", 6);
    let out = tmp.path().join("out");
    let srv = Server::start(config(vec![spec], "erin", out.clone()));
    let mask = out.join("erin/adjusted/p1.nii.gz");
    let ino = || std::fs::metadata(&mask).unwrap().ino();
    srv.edit(
        "p1",
        r#"{"op":"brush","axis":"z","slice":0,"points":[[3,3]],"radius_mm":5,"value":1}"#,
    );
    srv.json("POST", "/api/cases/p1/save", "");
    let first = ino();
    srv.json("PUT", "/api/cases/p1/record", r#"{"score":5}"#);
    let r = srv.json("POST", "/api/cases/p1/save", "");
    assert_eq!(r["audit"]["score"], 5.0);
    assert_eq!(r["audit"]["outputs"], json!(["erin/adjusted/p1.nii.gz"]));
    assert_eq!(ino(), first, "a score change rewrote the mask");
    srv.undo("p1", "undo");
    srv.json("POST", "/api/cases/p1/save", "");
    assert_ne!(ino(), first, "an undo did not rewrite the mask");
}

#[test]
fn the_flags_segment_wrote_beside_the_mask_are_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = phantom_case(tmp.path(), "p1", 3);
    let (plain, _) = phantom_case(tmp.path(), "p2", 4);
    // `liverseg segment -o DIR` writes DIR/liver.nii.gz beside DIR/report.json.
    std::fs::write(
        spec.mask.parent().unwrap().join("report.json"),
        r#"{"flags": [{"name": "mixed_tissue", "message": "45% of the mask is darker than liver tissue"}]}"#,
    )
    .unwrap();
    let srv = Server::start(config(vec![spec, plain], "dana", tmp.path().join("out")));
    let open = srv.json("GET", "/api/cases/p1", "");
    assert_eq!(
        open["warnings"],
        json!(["segment flagged mixed_tissue: 45% of the mask is darker than liver tissue"])
    );
    assert_eq!(srv.json("GET", "/api/cases/p2", "")["warnings"], json!([]));
}

/// Issue 18 item 3: the reader's warnings reach the review page as they reach
/// `segment`'s console and report.json (the same `liverseg_io::InputInfo`).
/// A NIfTI CT whose qform lies 50 mm from its sform (the sform wins, so the
/// grid and the mask are unchanged) makes the reader warn; the case JSON
/// carries the input block with that warning, and the page's warning list too.
#[test]
fn the_readers_warnings_reach_the_case_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = phantom_case(tmp.path(), "p1", 3);
    let ct = liverseg_io::read_image(&spec.ct, &Default::default()).unwrap();
    let nii = spec.ct.with_file_name("ct.nii");
    liverseg_io::write_image(&nii, &ct.volume).unwrap();
    // NIfTI-1 header: qoffset_x is the f32 at byte 268 (little endian, as written).
    let mut bytes = std::fs::read(&nii).unwrap();
    let q = f32::from_le_bytes(bytes[268..272].try_into().unwrap()) + 50.0;
    bytes[268..272].copy_from_slice(&q.to_le_bytes());
    std::fs::write(&nii, bytes).unwrap();
    let spec = liverseg_review::CaseSpec { ct: nii, ..spec };
    let srv = Server::start(config(vec![spec], "dana", tmp.path().join("out")));
    let open = srv.json("GET", "/api/cases/p1", "");
    assert_eq!(open["input"]["format"], "nifti1", "{open}");
    let reader: Vec<&str> = open["input"]["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(
        reader.len() == 1 && reader[0].starts_with("sform and qform disagree"),
        "{reader:?}"
    );
    assert!(open["warnings"].as_array().unwrap().iter().any(|w| w == reader[0]), "{open}");
    // Not DICOM: no series line for the page.
    assert_eq!(open["input_summary"], Value::Null);
}

/// Issue 21: a page from another origin sent `POST .../edit` as `text/plain`
/// (a "simple" request, no preflight) and changed voxels. Every forged form of
/// that request must now get a 4xx and leave the mask as it was.
#[test]
fn forged_requests_from_other_pages_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 8);
    let srv = Server::start(config(vec![spec], "alice", tmp.path().join("out")));
    let port = srv.addr.port();
    let own = format!("http://127.0.0.1:{port}");
    let other = format!(
        "http://127.0.0.1:{}",
        if port == 65535 { 1024 } else { port + 1 }
    );
    let (own, other) = (own.as_str(), other.as_str());
    let token = srv.page_token.clone();
    let token = token.as_str();
    assert_eq!(token.len(), 32, "a 128-bit hex token: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // A valid edit on the current revision: only the security checks stop it.
    let body = r#"{"op":"brush","axis":"z","slice":2,"points":[[6,6]],"radius_mm":9,"value":1,"mask_revision":0}"#;
    let mask = || srv.get("/api/cases/p1/volume/mask").body;
    assert_eq!(mask(), start.data());
    let wrong_same_len = {
        let mut t = token.to_string().into_bytes();
        t[31] = if t[31] == b'0' { b'1' } else { b'0' };
        String::from_utf8(t).unwrap()
    };
    let wrong_same_len = wrong_same_len.as_str();
    let post = |headers: &[(&str, &str)]| {
        request(
            srv.addr,
            "POST",
            "/api/cases/p1/edit",
            headers,
            body.as_bytes(),
        )
    };
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        // The attack as found: cross-origin text/plain without the token.
        (
            "cross-origin text/plain",
            vec![
                ("Origin", other),
                ("Content-Type", "text/plain;charset=UTF-8"),
            ],
            403,
        ),
        // The same from a browser that sends no Origin.
        (
            "text/plain, no token",
            vec![("Content-Type", "text/plain")],
            403,
        ),
        ("JSON, no token", vec![], 403),
        (
            "JSON, wrong token",
            vec![("x-liverseg-token", wrong_same_len)],
            403,
        ),
        (
            "JSON, short token",
            vec![("x-liverseg-token", &token[..16])],
            403,
        ),
        (
            "token, foreign origin",
            vec![("x-liverseg-token", token), ("Origin", other)],
            403,
        ),
        (
            "token, other host's https origin",
            vec![("x-liverseg-token", token), ("Origin", "https://127.0.0.2")],
            403,
        ),
        (
            "token, opaque origin",
            vec![("x-liverseg-token", token), ("Origin", "null")],
            403,
        ),
        (
            "token, same site but another port",
            vec![("x-liverseg-token", token), ("Sec-Fetch-Site", "same-site")],
            403,
        ),
        (
            "token, text/plain",
            vec![("x-liverseg-token", token), ("Content-Type", "text/plain")],
            415,
        ),
        (
            "token, form",
            vec![
                ("x-liverseg-token", token),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            415,
        ),
        (
            "token, no content type",
            vec![("x-liverseg-token", token), ("Content-Type", "")],
            415,
        ),
    ];
    for (what, headers, status) in &cases {
        let r = post(headers);
        assert_eq!(r.status, *status, "{what}: {} {}", r.status, r.text());
        assert!(r.header("access-control-allow-origin").is_none(), "{what}");
        assert_eq!(mask(), start.data(), "{what} changed the mask");
    }
    // Every other state-changing route refuses a request without the token.
    for (method, path) in [
        ("POST", "/api/cases/p1/undo"),
        ("POST", "/api/cases/p1/redo"),
        ("POST", "/api/cases/p1/activity"),
        ("POST", "/api/cases/p1/save"),
        ("PUT", "/api/cases/p1/record"),
        ("DELETE", "/api/cases/p1"),
        ("PATCH", "/api/cases/p1/record"),
    ] {
        let r = request(
            srv.addr,
            method,
            path,
            &[("Content-Type", "text/plain")],
            b"{}",
        );
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    assert!(!tmp.path().join("out/alice/audit/p1.json").exists());
    let open = srv.json("GET", "/api/cases/p1", "");
    assert_eq!(open["edit_count"], 0);
    assert!(open["score"].is_null());

    // Reads: another origin gets a 403, never the images; no CORS headers at all.
    let r = request(
        srv.addr,
        "GET",
        "/api/cases/p1/slice/z/2",
        &[("Origin", other)],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(
        r.body.len() < 300 && r.text().contains("origin"),
        "{}",
        r.text()
    );
    let r = request(
        srv.addr,
        "GET",
        "/api/cases/p1/volume/ct",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    // A link on another site that opens the page is a navigation: it loads.
    let r = request(
        srv.addr,
        "GET",
        "/",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "navigate"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let pre = request(
        srv.addr,
        "OPTIONS",
        "/api/cases/p1/edit",
        &[
            ("Origin", other),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "x-liverseg-token,content-type",
            ),
        ],
        b"",
    );
    assert!(
        (400..500).contains(&pre.status),
        "preflight: {}",
        pre.status
    );
    for r in [&pre, &srv.get("/api/cases/p1/slice/z/2"), &srv.get("/")] {
        assert!(r.status == 200 || r.status >= 400);
        assert!(
            !r.headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().starts_with("access-control-")),
            "CORS header sent: {:?}",
            r.headers
        );
        assert_eq!(
            r.header("cross-origin-resource-policy"),
            Some("same-origin")
        );
    }
    let page = srv.get("/");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    // The page's own requests work: its token, JSON, its own Origin (browsers
    // send it on POST), by 127.0.0.1 or localhost.
    let r = post(&[("x-liverseg-token", token), ("Origin", own)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["changed"]
            .as_u64()
            .unwrap()
            > 10
    );
    assert_ne!(mask(), start.data());
    let (host, origin) = (
        format!("localhost:{port}"),
        format!("http://localhost:{port}"),
    );
    let r = request(
        srv.addr,
        "POST",
        "/api/cases/p1/undo",
        &[
            ("x-liverseg-token", token),
            ("Host", host.as_str()),
            ("Origin", origin.as_str()),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        br#"{"mask_revision":1}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mask(), start.data());
    // Each server start makes a new token.
    let (spec2, _) = phantom_case(tmp.path(), "p2", 9);
    let srv2 = Server::start(config(vec![spec2], "bob", tmp.path().join("out2")));
    assert_ne!(srv2.page_token, token);
}

/// Issue 21: one 3-D fill click beside the liver with a wide HU range flooded
/// the body (+3.6 l). By default such a fill is refused, with its size; a fill
/// that closes a hole goes through after a preview; a no-op says why.
#[test]
fn fill_preview_limit_and_noop_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 11);
    let srv = Server::start(config(vec![spec.clone()], "alice", tmp.path().join("out")));
    let ct = liverseg_io::read_image(&spec.ct, &Default::default())
        .unwrap()
        .volume
        .to_i16_exact()
        .unwrap();
    let g = start.geometry().clone();
    let [nx, ny, nz] = g.dims();
    let ml = g.voxel_volume_mm3() / 1000.0;
    // A body voxel just outside the liver, as a click on the liver's edge.
    let seed = (0..start.len())
        .map(|o| g.index_of(o))
        .find(|&[i, j, k]| {
            i > 0
                && i + 1 < nx
                && j < ny
                && k == nz / 2
                && *start.get(i, j, k) == 0
                && *start.get(i + 1, j, k) == 1
                && (-200..=400).contains(ct.get(i, j, k))
        })
        .expect("a body voxel beside the liver");
    let fill = |seed: [usize; 3], lo: i32, hi: i32, axis: Value, extra: Value| {
        let mut v = json!({"op":"fill","seed":seed,"hu_min":lo,"hu_max":hi,"value":1,"axis":axis});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    let body = fill(seed, -200, 400, Value::Null, json!({}));
    let p = srv.json("POST", "/api/cases/p1/preview", &body);
    let voxels = p["voxels"].as_u64().unwrap();
    eprintln!(
        "flood preview from {seed:?}: {voxels} voxels, {:.0} ml, {:.0} mm",
        p["volume_ml"], p["max_distance_mm"]
    );
    assert!(p["volume_ml"].as_f64().unwrap() > 300.0, "{p}");
    assert_eq!(p["limit_ml"], 300.0);
    assert!(p["runs"].as_array().unwrap().is_empty());
    let why = p["refused"].as_str().unwrap();
    assert!(
        why.contains("more than the limit of 300 ml")
            && why.contains(&format!("({voxels} voxels)")),
        "{why}"
    );
    // Applied anyway: refused (422) with the same message, and nothing changes.
    let r = srv.edit_as("p1", &body, "tab", 0);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("more than the limit of 300 ml"),
        "{}",
        r.text()
    );
    assert_eq!(srv.get("/api/cases/p1/volume/mask").body, start.data());
    assert_eq!(srv.mask_revision("p1"), 0);
    // A distance limit stops it too; a limit the page raised lets a large fill through.
    let p = srv.json(
        "POST",
        "/api/cases/p1/preview",
        &fill(
            seed,
            -200,
            400,
            Value::Null,
            json!({"max_ml": 1e6, "max_mm": 20}),
        ),
    );
    assert!(
        p["refused"]
            .as_str()
            .unwrap()
            .contains("beyond the limit of 20 mm"),
        "{p}"
    );
    let p = srv.json(
        "POST",
        "/api/cases/p1/preview",
        &fill(seed, -200, 400, Value::Null, json!({"max_ml": 1e6})),
    );
    assert!(p["refused"].is_null());
    assert_eq!(p["voxels"].as_u64().unwrap(), voxels);

    // A hole erased in the liver (5 voxels, all of liver HU) is filled back,
    // in 3-D, after a preview that shows exactly those voxels.
    let c = (0..start.len())
        .map(|o| g.index_of(o))
        .find(|&[i, j, k]| {
            i > 1 && j > 1 && i + 2 < nx && j + 2 < ny && k > 0 && k + 1 < nz
                && [(1, 0), (0, 1), (1, 1), (2, 1), (1, 2)]
                    .iter()
                    .all(|&(a, b)| {
                        let (x, y) = (i + a - 1, j + b - 1);
                        *start.get(x, y, k) == 1
                            && (60..=160).contains(ct.get(x, y, k))
                    })
                // Liver all around the hole, so the fill cannot leave it.
                && (i - 2..=i + 2).all(|x| (j - 2..=j + 2).all(|y| *start.get(x, y, k) == 1))
                && (i - 1..=i + 1).all(|x| {
                    (j - 1..=j + 1).all(|y| *start.get(x, y, k - 1) == 1 && *start.get(x, y, k + 1) == 1)
                })
        })
        .expect("liver parenchyma to erase");
    let r = srv.edit(
        "p1",
        &json!({"op":"brush","axis":"z","slice":c[2],"points":[[c[0], c[1]]],"radius_mm":4,"value":0}).to_string(),
    );
    assert_eq!(r["changed"], 5);
    let hole = fill(c, 60, 160, Value::Null, json!({}));
    let p = srv.json("POST", "/api/cases/p1/preview", &hole);
    assert!(p["refused"].is_null() && p["noop"].is_null(), "{p}");
    assert_eq!(p["voxels"], 5);
    assert!((p["volume_ml"].as_f64().unwrap() - 5.0 * ml).abs() < 1e-9);
    let o = g.offset(c[0], c[1], c[2]) as u64;
    assert_eq!(
        p["runs"],
        json!([[o - nx as u64, 1], [o - 1, 3], [o + nx as u64, 1]])
    );
    assert_eq!(p["mask_revision"], 1);
    let r = srv.edit("p1", &hole);
    assert_eq!(r["changed"], 5);
    assert_eq!(srv.get("/api/cases/p1/volume/mask").body, start.data());

    // No-ops say why: the seed is already in the mask, or its HU is outside the range.
    let r = srv.edit("p1", &hole);
    assert_eq!(r["changed"], 0);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("already in the mask"),
        "{r}"
    );
    let hu = *ct.get(seed[0], seed[1], seed[2]);
    let r = srv.edit(
        "p1",
        &fill(seed, hu as i32 + 1, hu as i32 + 100, json!("z"), json!({})),
    );
    assert_eq!(r["changed"], 0);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("HU ({hu}) is outside the range")),
        "{r}"
    );
    let p = srv.json("POST", "/api/cases/p1/preview", &hole);
    assert!(
        p["noop"].as_str().unwrap().contains("already in the mask"),
        "{p}"
    );
    // Other ops are previewed as voxels to add and remove (changing
    // nothing); an unknown op and bad ranges are 400s.
    let before = srv.mask_revision("p1");
    let p = srv.json("POST", "/api/cases/p1/preview", r#"{"op":"remove_islands"}"#);
    assert!(p["runs_add"].is_array() && p["removed"].is_u64(), "{p}");
    assert_eq!(srv.mask_revision("p1"), before);
    assert_eq!(
        srv.post("/api/cases/p1/preview", r#"{"op":"explode"}"#)
            .status,
        400
    );
    assert_eq!(
        srv.post(
            "/api/cases/p1/preview",
            &fill(c, 200, 100, Value::Null, json!({}))
        )
        .status,
        400
    );
}

/// Issue 21: with the case open in two tabs, the first tab's Ctrl+Z undid the
/// second tab's edit, and edits went onto a mask the tab did not show. Now
/// every edit, undo and redo names the revision it was made on and its tab.
#[test]
fn two_tabs_stale_edits_are_refused_and_undo_stays_in_its_tab() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 12);
    let srv = Server::start(config(vec![spec], "alice", tmp.path().join("out")));
    let paint = |k: usize| {
        json!({"op":"brush","axis":"z","slice":k,"points":[[5,5]],"radius_mm":6,"value":1})
            .to_string()
    };
    let mask = || srv.get("/api/cases/p1/volume/mask").body;
    let status_of =
        |r: &common::Resp| -> (u16, Value) { (r.status, serde_json::from_slice(&r.body).unwrap()) };
    // Both tabs load the case at revision 0; tab A paints slice 1.
    let rev = srv.mask_revision("p1");
    assert_eq!(rev, 0);
    let (st, a1) = status_of(&srv.edit_as("p1", &paint(1), "tab-a", rev));
    assert_eq!(st, 200);
    assert_eq!(a1["mask_revision"], 1);
    let after_a = mask();
    // Tab B still shows revision 0: its edit is refused, nothing changes.
    let (st, e) = status_of(&srv.edit_as("p1", &paint(14), "tab-b", 0));
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("another tab or window"),
        "{e}"
    );
    assert_eq!(mask(), after_a);
    // So are its undo and redo on the stale revision.
    assert_eq!(srv.undo_as("p1", "undo", "tab-b", 0).status, 409);
    assert_eq!(srv.undo_as("p1", "redo", "tab-b", 0).status, 409);
    assert_eq!(mask(), after_a);
    // Without a revision: a 400 that says what is missing.
    let r = srv.post("/api/cases/p1/edit", &paint(14));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("mask_revision"), "{}", r.text());
    assert_eq!(srv.post("/api/cases/p1/undo", "{}").status, 400);
    // Tab B reloads (revision 1) and paints slice 14.
    let (st, b1) = status_of(&srv.edit_as("p1", &paint(14), "tab-b", 1));
    assert_eq!(st, 200);
    assert_eq!(b1["mask_revision"], 2);
    let after_b = mask();
    // Tab A's Ctrl+Z on its stale revision: refused.
    assert_eq!(srv.undo_as("p1", "undo", "tab-a", 1).status, 409);
    // Even reloaded, tab A cannot undo tab B's edit.
    let (st, e) = status_of(&srv.undo_as("p1", "undo", "tab-a", 2));
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("made in another tab"),
        "{e}"
    );
    assert_eq!(mask(), after_b);
    // Tab B undoes its own edit; then tab A may undo its own.
    let (st, u) = status_of(&srv.undo_as("p1", "undo", "tab-b", 2));
    assert_eq!((st, u["undone"].clone()), (200, json!("paint")));
    assert_eq!(mask(), after_a);
    assert_eq!(srv.undo_as("p1", "redo", "tab-a", 3).status, 409);
    let (st, u) = status_of(&srv.undo_as("p1", "undo", "tab-a", 3));
    assert_eq!((st, u["undone"].clone()), (200, json!("paint")));
    assert_eq!(mask(), start.data());
}

/// Issue 21 item 3 through the API: grow from seeds (preview, apply, undo),
/// the probability brush (only with a map beside the mask), fill between
/// that refuses an empty key slice, and fill holes.
#[test]
fn grow_probability_brush_fill_between_and_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let case = flawed_case(tmp.path(), "f1", [96, 80, 32], [2.0, 2.0, 3.0], true);
    let (plain, _) = phantom_case(tmp.path(), "p2", 4);
    let out = tmp.path().join("out");
    let srv = Server::start(config(vec![case.spec.clone(), plain], "erin", out.clone()));
    let g = case.truth.geometry().clone();
    let open = srv.json("GET", "/api/cases/f1", "");
    assert_eq!((open["probability"].clone(), open["probability_note"].clone()), (json!(true), Value::Null), "{open}");
    let open2 = srv.json("GET", "/api/cases/p2", "");
    assert_eq!(open2["probability"], false);
    assert!(open2["probability_note"].as_str().unwrap().contains("no probability.nii.gz beside the mask"), "{open2}");
    let mask = |srv: &Server| {
        let r = srv.get("/api/cases/f1/volume/mask");
        assert_eq!(r.status, 200);
        Mask::new(g.clone(), r.body).unwrap()
    };
    let d0 = dsc(&mask(&srv), &case.truth);

    let seeds = fix_seeds(&case);
    let grow = json!({"op": "grow", "seeds": seeds_json(&seeds)}).to_string();
    let (kl, leak) = (seeds[2].1, seeds[2].2.clone());
    let rev = srv.mask_revision("f1");
    // The new ops pass the same guard: no page token, or not JSON, and
    // neither a preview nor an edit is made.
    let edit_body = {
        let mut v: Value = serde_json::from_str(&grow).unwrap();
        v["mask_revision"] = rev.into();
        v.to_string()
    };
    for path in ["/api/cases/f1/preview", "/api/cases/f1/edit"] {
        let r = request(srv.addr, "POST", path, &[], edit_body.as_bytes());
        assert_eq!(r.status, 403, "{path} without the page token: {}", r.text());
        let r = request(
            srv.addr,
            "POST",
            path,
            &[("x-liverseg-token", srv.page_token.as_str()), ("content-type", "text/plain")],
            edit_body.as_bytes(),
        );
        assert_eq!(r.status, 415, "{path} as text/plain: {}", r.text());
    }
    assert_eq!(srv.mask_revision("f1"), rev);
    let p = srv.json("POST", "/api/cases/f1/preview", &grow);
    assert_eq!(srv.mask_revision("f1"), rev, "a preview changed the mask");
    let (added, removed) = (p["added"].as_u64().unwrap(), p["removed"].as_u64().unwrap());
    eprintln!("grow preview: +{added} -{removed} voxels in {} ms (cut {}, leak {})", p["elapsed_ms"], case.cut.len(), case.leak.len());
    assert!(added as f64 > 0.5 * case.cut.len() as f64 && removed as f64 > 0.5 * case.leak.len() as f64, "{p}");
    let e = srv.edit("f1", &grow);
    assert_eq!(e["changed"].as_u64().unwrap(), added + removed);
    let d1 = dsc(&mask(&srv), &case.truth);
    eprintln!("DSC vs truth: start {d0:.4}, after the grow {d1:.4}");
    assert!(d1 > d0 + 0.02, "{d0} -> {d1}");
    srv.undo("f1", "undo");
    assert_eq!(dsc(&mask(&srv), &case.truth), d0);
    srv.undo("f1", "redo");
    // Bad grows are 400s and change nothing.
    for bad in [
        json!({"op": "grow", "seeds": []}),
        json!({"op": "grow", "seeds": [{"axis": "z", "slice": 999, "points": [[1, 1]], "radius_mm": 3, "value": 1}]}),
        json!({"op": "grow", "reach_mm": 0, "seeds": [{"axis": "z", "slice": 1, "points": [[1, 1]], "radius_mm": 3, "value": 1}]}),
    ] {
        let r = srv.edit_as("f1", &bad.to_string(), "test", srv.mask_revision("f1"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    // The probability brush: a 3-D brush at p >= 0.5 over the kidney's edge
    // pulls the mask to the model's boundary there.
    let pb = json!({"op": "prob_brush", "axis": "z", "slice": kl, "points": leak, "radius_mm": 20, "sphere": true, "threshold": 0.5}).to_string();
    srv.edit("f1", &pb);
    let d2 = dsc(&mask(&srv), &case.truth);
    eprintln!("after one probability-brush stroke: {d2:.4}");
    assert!(d2 >= d1, "{d1} -> {d2}");
    let r = srv.edit_as("p2", &pb, "test", srv.mask_revision("p2"));
    assert!(r.status == 400 && r.text().contains("no probability map"), "{} {}", r.status, r.text());

    // Fill between: an empty key slice is refused (422) with the slice named.
    let r = srv.edit_as("f1", r#"{"op":"interpolate","axis":"z","from":0,"to":10}"#, "test", srv.mask_revision("f1"));
    assert!(r.status == 422 && r.text().contains("key slice 1 of the axial view is empty"), "{} {}", r.status, r.text());
    // Fill holes: a hole punched into one slice is filled in 2-D and in 3-D.
    let ck = g.index_of(case.truth.data().iter().enumerate().filter(|(_, v)| **v == 1).map(|(o, _)| o).nth(case.truth.count_foreground() / 2).unwrap())[2];
    let (_, row) = row_stroke(&g, &(0..g.len()).filter(|&o| case.truth.data()[o] == 1).collect::<Vec<_>>(), Some(ck), 4).unwrap();
    let mid = [(row[0][0] + row[1][0]) / 2.0, row[0][1]];
    srv.edit("f1", &json!({"op":"brush","axis":"z","slice":ck,"points":[mid],"radius_mm":4,"value":0}).to_string());
    let p = srv.json("POST", "/api/cases/f1/preview", &json!({"op":"fill_holes","axis":"z","slice":ck}).to_string());
    assert!(p["added"].as_u64().unwrap() > 0 && p["removed"] == 0, "{p}");
    let e = srv.edit("f1", &json!({"op":"fill_holes","axis":"z","slice":ck}).to_string());
    assert_eq!(e["changed"], p["added"]);
    srv.undo("f1", "undo");
    let e = srv.edit("f1", r#"{"op":"fill_holes"}"#);
    assert!(e["changed"].as_u64().unwrap() >= p["added"].as_u64().unwrap(), "{e}");
    let saved = srv.json("POST", "/api/cases/f1/save", "");
    assert!(saved["audit"]["edit_count"].as_u64().unwrap() >= 5, "{saved}");
}

/// Issue 21 item 6: a mask on another grid than the CT. Found on main: a mask
/// 1 m off became an empty mask shown as "0.0 ml, DSC vs start 1.0000" with
/// only the generic resampling warning.
#[test]
fn masks_on_other_grids_say_how_far_off_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let mut specs = vec![];
    let mut starts = vec![];
    for (id, shift_mm) in [("near", 30.0), ("far", 1000.0)] {
        let (spec, m) = phantom_case(tmp.path(), id, 5);
        let g = m.geometry();
        let mut o = g.origin();
        o[0] += shift_mm;
        let moved = liverseg_volume::Geometry::new(g.dims(), g.spacing(), o, g.direction()).unwrap();
        let m = m.with_geometry(moved).unwrap();
        liverseg_io::write_image(&spec.mask, &liverseg_volume::DynVolume::U8(m.clone())).unwrap();
        specs.push(spec);
        starts.push(m);
    }
    let srv = Server::start(config(specs, "erin", tmp.path().join("out")));

    let near = srv.json("GET", "/api/cases/near", "");
    let w: Vec<&str> = near["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(w[0].contains("centre lies 30.0 mm and its corners up to 30.0 mm from the CT's"), "{w:?}");
    assert_eq!(w.len(), 1, "30 mm keeps most of the liver inside the CT and the body: {w:?}");
    let ml = near["stats"]["volume_ml"].as_f64().unwrap();
    assert!(ml > 0.0, "{ml}");

    let far = srv.json("GET", "/api/cases/far", "");
    let w: Vec<&str> = far["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(w[0].contains("centre lies 1000.0 mm"), "{w:?}");
    let before_ml = starts[1].count_foreground() as f64 * starts[1].geometry().voxel_volume_mm3() / 1000.0;
    assert_eq!(
        w[1],
        format!("the mask lies outside the CT: 0 voxels after resampling (it had {before_ml:.1} ml); was it made for another scan?")
    );
    assert_eq!(far["stats"]["voxels"], 0);
}

/// Issue 21 item 4: the page's starting-mask outline and its list of edited
/// slices. Both are reads of the case, held to the same-origin rule.
#[test]
fn starting_mask_slices_and_changed_slices() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 6);
    let srv = Server::start(config(vec![spec], "finn", tmp.path().join("out")));
    srv.json("GET", "/api/cases/p1", "");
    let changed = srv.json("GET", "/api/cases/p1/changed", "");
    assert_eq!(changed["z"], json!([]), "nothing edited yet");

    // Erase a disc around a liver voxel of axial slice k: that slice, and the
    // coronal and sagittal slices through the disc, are listed.
    let [nx, ny, nz] = start.dims();
    let (i, j, k) = (0..nz)
        .flat_map(|k| (0..ny).flat_map(move |j| (0..nx).map(move |i| (i, j, k))))
        .find(|&(i, j, k)| *start.get(i, j, k) == 1 && k > 2)
        .unwrap();
    let r = srv.edit(
        "p1",
        &format!(r#"{{"op":"brush","axis":"z","slice":{k},"points":[[{i},{j}]],"radius_mm":5,"value":0}}"#),
    );
    let n = r["changed"].as_u64().unwrap();
    assert!(n > 0);
    let changed = srv.json("GET", "/api/cases/p1/changed", "");
    assert_eq!(changed["z"], json!([[k, n]]));
    let ys = changed["y"].as_array().unwrap();
    assert!(ys.iter().any(|e| e[0] == j) && ys.iter().map(|e| e[1].as_u64().unwrap()).sum::<u64>() == n);

    // The starting mask's slice still has the erased voxel; the mask's has not.
    let s = srv.get(&format!("/api/cases/p1/slice/z/{k}?part=start"));
    assert_eq!(s.status, 200);
    assert_eq!(s.body.len(), nx * ny);
    assert_eq!(s.body[j * nx + i], 1);
    let expect: Vec<u8> = (0..nx * ny).map(|n| *start.get(n % nx, n / nx, k)).collect();
    assert_eq!(s.body, expect);
    let m = srv.get(&format!("/api/cases/p1/slice/z/{k}?part=mask"));
    assert_eq!(m.body[j * nx + i], 0);
    assert_eq!(srv.get("/api/cases/p1/slice/z/999?part=start").status, 400);
    assert_eq!(srv.get("/api/cases/p1/slice/z/1?part=other").status, 400);

    // Another site can read neither.
    for path in [format!("/api/cases/p1/slice/z/{k}?part=start"), "/api/cases/p1/changed".into()] {
        let r = request(srv.addr, "GET", &path, &[("Origin", "http://evil.example")], b"");
        assert_eq!(r.status, 403, "{path}");
        let r = request(srv.addr, "GET", &path, &[("Sec-Fetch-Site", "cross-site")], b"");
        assert_eq!(r.status, 403, "{path}");
    }

    // Undone: nothing differs any more.
    srv.undo("p1", "undo");
    assert_eq!(srv.json("GET", "/api/cases/p1/changed", "")["z"], json!([]));
}

/// The mask's surface mesh (issue 21 item 4): binary, closed, in the CT's
/// patient mm, with about the mask's volume; re-made only when the mask
/// changes; and under the same rules as every other read (Host, Origin,
/// Sec-Fetch-Site, access token).
#[test]
fn mesh_follows_edits_and_the_security_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, start) = phantom_case(tmp.path(), "p1", 5);
    let srv = Server::start(config(vec![spec.clone()], "alice", tmp.path().join("out")));
    let get = |path: &str, extra: &[(&str, &str)]| request(srv.addr, "GET", path, extra, b"");
    struct M {
        pos: Vec<[f64; 3]>,
        tri: Vec<[usize; 3]>,
        rev: u64,
        bytes: Vec<u8>,
    }
    let fetch = || {
        let r = get("/api/cases/p1/mesh", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        let b = &r.body;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
        let (nv, nt) = (u32_at(0), u32_at(4));
        assert_eq!(b.len(), 8 + 12 * nv + 12 * nt);
        assert_eq!(r.header("x-mesh-triangles").unwrap(), nt.to_string());
        let f = |o: usize| f64::from(f32::from_le_bytes(b[o..o + 4].try_into().unwrap()));
        let pos = (0..nv).map(|v| [0, 1, 2].map(|a| f(8 + 12 * v + 4 * a))).collect();
        let tri = (0..nt).map(|t| [0, 1, 2].map(|a| u32_at(8 + 12 * nv + 12 * t + 4 * a))).collect();
        M { pos, tri, rev: r.header("x-mask-revision").unwrap().parse().unwrap(), bytes: b.clone() }
    };
    let volume = |m: &M| -> f64 {
        m.tri
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| m.pos[i]);
                (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                    + a[2] * (b[0] * c[1] - b[1] * c[0]))
                    / 6.0
            })
            .sum()
    };
    let m0 = fetch();
    assert_eq!(m0.rev, 0);
    assert!(m0.tri.len() > 100 && m0.tri.iter().flatten().all(|&i| i < m0.pos.len()));
    // In patient mm: inside the CT's world box (grown by a voxel).
    let g = start.geometry();
    let (lo, hi) = g.world_bounds();
    for p in &m0.pos {
        assert!((0..3).all(|a| p[a] >= lo[a] - 6.0 && p[a] <= hi[a] + 6.0), "{p:?} outside {lo:?} {hi:?}");
    }
    let ml = start.foreground_ml();
    let v0 = volume(&m0) / 1000.0;
    assert!((v0 / ml - 1.0).abs() < 0.1, "mesh {v0} ml, mask {ml} ml");
    // Unchanged mask: the same mesh (kept, not made again).
    assert_eq!(fetch().bytes, m0.bytes);
    // An edit: a new revision and a larger surface volume.
    let r = srv.edit("p1", r#"{"op":"brush","axis":"z","slice":8,"points":[[6,6]],"radius_mm":12,"value":1}"#);
    assert!(r["changed"].as_u64().unwrap() > 10);
    let m1 = fetch();
    assert_eq!(m1.rev, r["mask_revision"].as_u64().unwrap());
    assert!(volume(&m1) > volume(&m0));
    // The security rules of every other read.
    assert_eq!(get("/api/cases/p1/mesh", &[("Origin", "http://127.0.0.1:1")]).status, 403);
    assert_eq!(get("/api/cases/p1/mesh", &[("Sec-Fetch-Site", "cross-site")]).status, 403);
    assert_eq!(get("/api/cases/p1/mesh", &[("Sec-Fetch-Site", "same-site")]).status, 403);
    assert_eq!(get("/api/cases/p1/mesh", &[("Host", "evil.example")]).status, 403);
    let own = format!("http://127.0.0.1:{}", srv.addr.port());
    let r = get("/api/cases/p1/mesh", &[("Origin", &own), ("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cross-origin-resource-policy"), Some("same-origin"));
    assert_eq!(get("/api/cases/..%2fp1/mesh", &[]).status, 400);
    assert_eq!(get("/api/cases/nope/mesh", &[]).status, 404);
    srv.stop();
    // A server bound beyond loopback: the access token, as on every /api path.
    let mut cfg = config(vec![spec], "alice", tmp.path().join("out2"));
    cfg.token = Some("m3shT0ken".into());
    let srv = Server::start(cfg);
    assert_eq!(srv.get("/api/cases/p1/mesh").status, 401);
    assert_eq!(srv.get("/api/cases/p1/mesh?token=wrong").status, 401);
    assert_eq!(srv.get("/api/cases/p1/mesh?token=m3shT0ken").status, 200);
    let r = request(srv.addr, "GET", "/api/cases/p1/mesh", &[("x-review-token", "m3shT0ken")], b"");
    assert_eq!(r.status, 200);
}

/// Issue 21 item 5: one case, one editor. The first tab takes the editor
/// lease; a second one is a viewer (its edits, undos and record changes are
/// refused with 423 and change nothing) until it takes over, which makes the
/// first a viewer. Undo never takes back another tab's edit, even after a
/// take-over.
#[test]
fn one_editor_per_case_lease_take_over_and_release() {
    let tmp = tempfile::tempdir().unwrap();
    let (spec, _) = phantom_case(tmp.path(), "p1", 13);
    let srv = Server::start(config(vec![spec], "alice", tmp.path().join("out")));
    let lease = |body: Value| {
        let r = srv.post("/api/cases/p1/lease", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice::<Value>(&r.body).unwrap()
    };
    let paint = |k: usize| {
        json!({"op":"brush","axis":"z","slice":k,"points":[[5,5]],"radius_mm":6,"value":1}).to_string()
    };
    let mask = || srv.get("/api/cases/p1/volume/mask").body;
    let rev = || srv.mask_revision("p1");

    let a = lease(json!({"client": "tab-a"}));
    assert_eq!((a["editor"].clone(), a["other_editor"].clone()), (json!(true), Value::Null));
    assert_eq!(a["lease_seconds"], 90);
    // The second tab is told someone edits; its heartbeat does not take the lease.
    let b = lease(json!({"client": "tab-b"}));
    assert_eq!(b["editor"], false);
    assert!(b["other_editor"]["seen_seconds"].as_f64().unwrap() < 5.0, "{b}");
    assert_eq!(lease(json!({"client": "tab-b", "watch": true}))["editor"], false);
    // Its changes are refused (423) and change nothing; reading is fine.
    let before = mask();
    let r = srv.edit_as("p1", &paint(2), "tab-b", rev());
    assert_eq!(r.status, 423, "{}", r.text());
    assert!(r.text().contains("being edited in another tab"), "{}", r.text());
    assert_eq!(srv.undo_as("p1", "undo", "tab-b", rev()).status, 423);
    assert_eq!(srv.undo_as("p1", "redo", "tab-b", rev()).status, 423);
    assert_eq!(srv.put("/api/cases/p1/record", r#"{"score":2,"client":"tab-b"}"#).status, 423);
    assert_eq!(mask(), before);
    assert_eq!(srv.get("/api/cases/p1/mesh").status, 200);
    // The editor edits.
    assert_eq!(srv.edit_as("p1", &paint(3), "tab-a", rev()).status, 200);
    assert_eq!(srv.put("/api/cases/p1/record", r#"{"score":4,"client":"tab-a"}"#).status, 200);
    let after_a = mask();
    // Tab B takes over: tab A's heartbeat says it is a viewer now.
    let b = lease(json!({"client": "tab-b", "take_over": true}));
    assert_eq!((b["editor"].clone(), b["other_editor"].clone()), (json!(true), Value::Null));
    let a = lease(json!({"client": "tab-a"}));
    assert_eq!(a["editor"], false);
    assert!(a["other_editor"].is_object(), "{a}");
    let r = srv.edit_as("p1", &paint(4), "tab-a", rev());
    assert_eq!(r.status, 423);
    assert_eq!(srv.undo_as("p1", "undo", "tab-a", rev()).status, 423);
    assert_eq!(mask(), after_a);
    // Tab B cannot undo tab A's edit either: the history is per tab.
    let r = srv.undo_as("p1", "undo", "tab-b", rev());
    assert_eq!(r.status, 409);
    assert!(r.text().contains("made in another tab"), "{}", r.text());
    assert_eq!(mask(), after_a);
    // Its own edit it can undo.
    assert_eq!(srv.edit_as("p1", &paint(6), "tab-b", rev()).status, 200);
    let r = srv.undo_as("p1", "undo", "tab-b", rev());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mask(), after_a);
    // Tab B closes (release): tab A's heartbeat sees no editor, and tab A
    // may take the lease back without taking over.
    lease(json!({"client": "tab-b", "release": true}));
    let a = lease(json!({"client": "tab-a", "watch": true}));
    assert_eq!((a["editor"].clone(), a["other_editor"].clone()), (json!(false), Value::Null));
    assert_eq!(lease(json!({"client": "tab-a"}))["editor"], true);
    // A release by a tab that does not hold the lease changes nothing.
    lease(json!({"client": "tab-b", "release": true}));
    assert_eq!(lease(json!({"client": "tab-b", "watch": true}))["editor"], false);
    // Bad bodies and missing page tokens.
    assert_eq!(srv.post("/api/cases/p1/lease", r#"{"client":""}"#).status, 400);
    assert_eq!(srv.post("/api/cases/p1/lease", "{}").status, 400);
    assert_eq!(
        request(srv.addr, "POST", "/api/cases/p1/lease", &[], br#"{"client":"x","take_over":true}"#).status,
        403
    );
    assert_eq!(lease(json!({"client": "tab-a"}))["editor"], true);
}

/// A heartbeat on a case closed to free memory does not open it again (tabs
/// left on several cases would otherwise load them in turn, each evicting
/// the next); it answers without the case's state.
#[test]
fn lease_heartbeats_do_not_reopen_evicted_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = phantom_case(tmp.path(), "p1", 21);
    let (b, _) = phantom_case(tmp.path(), "p2", 22);
    let mut cfg = config(vec![a, b], "alice", tmp.path().join("out"));
    cfg.max_open = 1;
    let srv = Server::start(cfg);
    let lease = |case: &str, body: Value| {
        let r = srv.post(&format!("/api/cases/{case}/lease"), &body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice::<Value>(&r.body).unwrap()
    };
    assert_eq!(lease("p1", json!({"client": "tab-a"}))["editor"], true);
    // Tab B works on p2, which evicts p1; its undo history lives in memory.
    srv.edit("p2", r#"{"op":"brush","axis":"z","slice":3,"points":[[5,5]],"radius_mm":6,"value":1}"#);
    assert_eq!(srv.json("GET", "/api/cases/p2", "")["can_undo"], true);
    // Tab A's heartbeat on p1 and a viewer's: answered, p1 not loaded.
    let r = lease("p1", json!({"client": "tab-a", "heartbeat": true}));
    assert_eq!((r["editor"].clone(), r["open"].clone(), r.get("stats").is_none()), (json!(true), json!(false), true));
    let r = lease("p1", json!({"client": "tab-c", "watch": true}));
    assert_eq!((r["editor"].clone(), r["other_editor"].clone()), (json!(false), Value::Null));
    assert_eq!(srv.json("GET", "/api/cases/p2", "")["can_undo"], true, "p2 was evicted by a heartbeat");
    // Unknown or bad ids are still refused.
    assert_eq!(srv.post("/api/cases/nope/lease", r#"{"client":"x"}"#).status, 404);
    assert_eq!(srv.post("/api/cases/.x/lease", r#"{"client":"x"}"#).status, 400);
    // Taking over opens the case.
    let r = lease("p1", json!({"client": "tab-c", "take_over": true}));
    assert_eq!((r["editor"].clone(), r["mask_revision"].clone()), (json!(true), json!(0)));
}
