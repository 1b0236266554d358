//! `liverseg review` as a process: start, edit over HTTP, kill -9 after an
//! autosave and find the work on disk; restart and resume; token on non-loopback
//! binds; usage errors.

use liverseg_phantom::{generate, PhantomConfig};
use liverseg_volume::DynVolume;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn case(dir: &Path) -> liverseg_volume::Mask {
    let p = generate(&PhantomConfig {
        dims: [40, 32, 12],
        spacing: [5.0, 5.0, 8.0],
        noise_hu: 5.0,
        ..Default::default()
    });
    let d = dir.join("c1");
    std::fs::create_dir_all(&d).unwrap();
    liverseg_io::write_image(&d.join("ct.nii.gz"), &DynVolume::I16(p.ct)).unwrap();
    liverseg_io::write_image(&d.join("liver.nii.gz"), &DynVolume::U8(p.liver.clone())).unwrap();
    p.liver
}

/// Start the server; returns the child and the URL it printed (JSON line).
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .arg("review")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (child, v["url"].as_str().unwrap().to_string())
}

fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(url, method, path, body, "")
}

/// The page token the server puts in its page; state-changing requests must
/// send it (the server refuses forged cross-site requests without it).
fn page_token(url: &str) -> String {
    let (st, page) = http(url, "GET", "/", "");
    assert_eq!(st, 200);
    let at = page.find("liverseg-token").expect("token meta tag in the page");
    let rest = &page[at..];
    let start = rest.find("content=\"").expect("content attribute") + 9;
    rest[start..start + rest[start..].find('"').unwrap()].to_string()
}

/// A request as the review page sends an edit: its token and a JSON body.
fn post_json(url: &str, path: &str, body: &str) -> (u16, String) {
    let headers = format!("x-liverseg-token: {}\r\nContent-Type: application/json\r\n", page_token(url));
    http_with(url, "POST", path, body, &headers)
}

fn http_with(url: &str, method: &str, path: &str, body: &str, headers: &str) -> (u16, String) {
    let hostport = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(&hostport).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        raw.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn killed_server_keeps_autosaved_work_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let start_mask = case(tmp.path());
    let out = tmp.path().join("out");
    let (c, o) = (tmp.path().join("c1"), out.to_str().unwrap().to_string());
    let args = [
        "--reviewer",
        "alice",
        "--port",
        "0",
        "--out",
        &o,
        "--json",
        "--autosave-seconds",
        "0.2",
        c.to_str().unwrap(),
    ];
    let (mut child, url) = start(&args);
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.contains("token"),
        "{url}"
    );
    let (st, body) = post_json(
        &url,
        "/api/cases/c1/edit",
        r#"{"op":"brush","axis":"z","slice":1,"points":[[4,4]],"radius_mm":11,"value":1,"mask_revision":0}"#,
    );
    assert_eq!(st, 200, "{body}");
    let changed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let changed = changed["stats"]["changed_voxels"].as_u64().unwrap();
    assert!(changed > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.join("times.csv").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no shutdown handler runs
    child.wait().unwrap();
    let saved = liverseg_io::read_mask(
        &out.join("alice/adjusted/c1.nii.gz"),
        None,
        &Default::default(),
    )
    .unwrap()
    .0;
    let diff = saved
        .data()
        .iter()
        .zip(start_mask.data())
        .filter(|(a, b)| a != b)
        .count() as u64;
    assert_eq!(diff, changed);
    // Restart: the case resumes from the saved mask.
    let (mut child, url) = start(&args);
    let (st, body) = http(&url, "GET", "/api/cases/c1", "");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stats"]["changed_voxels"], changed);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn non_loopback_bind_needs_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    case(tmp.path());
    let o = tmp.path().join("out");
    let c = tmp.path().join("c1");
    let (mut child, url) = start(&[
        "--reviewer",
        "bob",
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--out",
        o.to_str().unwrap(),
        "--json",
        c.to_str().unwrap(),
    ]);
    let token = url
        .split("token=")
        .nth(1)
        .expect("token in the URL")
        .to_string();
    assert_eq!(token.len(), 32);
    assert_eq!(http(&url, "GET", "/api/info", "").0, 401);
    assert_eq!(
        http(&url, "GET", &format!("/api/info?token={token}"), "").0,
        200
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn usage_errors() {
    let bin = env!("CARGO_BIN_EXE_liverseg");
    let tmp = tempfile::tempdir().unwrap();
    case(tmp.path());
    let c = tmp.path().join("c1");
    let st = Command::new(bin)
        .args(["review", c.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(2),
        "missing --reviewer is a usage error"
    );
    let st = Command::new(bin)
        .args(["review", "--reviewer", "../x", c.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&st.stderr).contains("invalid reviewer name"));
    let st = Command::new(bin)
        .args([
            "review",
            "--reviewer",
            "a",
            tmp.path().join("nope").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&st.stderr).contains("no such file or folder"));
}
