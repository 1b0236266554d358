//! Test helpers: phantom cases on disk, an in-process server on port 0, and a
//! tiny blocking HTTP/1.1 client (no HTTP client crate needed for tests).
#![allow(dead_code)]

use liverseg_phantom::{generate, PhantomConfig};
use liverseg_review::{App, CaseSpec, ReviewConfig};
use liverseg_volume::{DynVolume, Mask};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A small phantom case folder `dir/<id>/{ct,liver}.nii.gz`; returns its spec and the mask.
pub fn phantom_case(dir: &Path, id: &str, seed: u64) -> (CaseSpec, Mask) {
    let p = generate(&PhantomConfig {
        dims: [48, 40, 16],
        spacing: [4.0, 4.0, 6.0],
        noise_hu: 5.0,
        lesions: 1,
        seed,
        ..Default::default()
    });
    let d = dir.join(id);
    std::fs::create_dir_all(&d).unwrap();
    liverseg_io::write_image(&d.join("ct.nii.gz"), &DynVolume::I16(p.ct)).unwrap();
    liverseg_io::write_image(&d.join("liver.nii.gz"), &DynVolume::U8(p.liver.clone())).unwrap();
    (
        CaseSpec {
            id: id.into(),
            ct: d.join("ct.nii.gz"),
            mask: d.join("liver.nii.gz"),
        },
        p.liver,
    )
}

pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// The page token, read from the served page as the browser does; the
    /// helpers below send it with every state-changing request.
    pub page_token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(cfg: ReviewConfig) -> Server {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = App::new(cfg).unwrap();
        let app2 = app.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                liverseg_review::serve(listener, app2, async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        let page = request(addr, "GET", "/", &[], b"");
        assert_eq!(page.status, 200, "{}", page.text());
        let page_token = page_token(&page.text()).expect("no page token in the page");
        Server {
            addr,
            app,
            page_token,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Graceful stop (saves what is unsaved).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"")
    }
    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.send("POST", path, body)
    }
    pub fn put(&self, path: &str, body: &str) -> Resp {
        self.send("PUT", path, body)
    }
    /// A request as the page sends it (page token, JSON body).
    pub fn send(&self, method: &str, path: &str, body: &str) -> Resp {
        let h = [("x-liverseg-token", self.page_token.as_str())];
        let h: &[(&str, &str)] = if method == "GET" { &[] } else { &h };
        request(self.addr, method, path, h, body.as_bytes())
    }
    /// The case's current mask revision, as a freshly loaded page knows it.
    pub fn mask_revision(&self, case: &str) -> u64 {
        self.json("GET", &format!("/api/cases/{case}"), "")["mask_revision"]
            .as_u64()
            .expect("mask_revision")
    }
    /// An edit as one tab ("test") makes it, on the current revision.
    pub fn edit(&self, case: &str, op: &str) -> serde_json::Value {
        let r = self.edit_as(case, op, "test", self.mask_revision(case));
        assert_eq!(r.status, 200, "edit {op}: {} {}", r.status, r.text());
        serde_json::from_slice(&r.body).unwrap()
    }
    /// An edit from tab `client` made on revision `rev`.
    pub fn edit_as(&self, case: &str, op: &str, client: &str, rev: u64) -> Resp {
        let mut v: serde_json::Value = serde_json::from_str(op).unwrap();
        v["mask_revision"] = rev.into();
        v["client"] = client.into();
        self.post(&format!("/api/cases/{case}/edit"), &v.to_string())
    }
    /// Undo or redo (`which`) from tab `client` on revision `rev`.
    pub fn undo_as(&self, case: &str, which: &str, client: &str, rev: u64) -> Resp {
        let body = serde_json::json!({ "mask_revision": rev, "client": client });
        self.post(&format!("/api/cases/{case}/{which}"), &body.to_string())
    }
    pub fn undo(&self, case: &str, which: &str) -> serde_json::Value {
        let r = self.undo_as(case, which, "test", self.mask_revision(case));
        assert_eq!(r.status, 200, "{which}: {} {}", r.status, r.text());
        serde_json::from_slice(&r.body).unwrap()
    }
    pub fn json(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let r = self.send(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {} {}", r.status, r.text());
        serde_json::from_slice(&r.body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    // JSON unless the test sends its own content type (or none: "").
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req.push_str("Content-Type: application/json\r\n");
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{}\r\n", addr.port()));
    }
    for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(
            String::from_utf8_lossy(&b[..nl])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// The token in the page's `<meta name="liverseg-token" content="...">`.
pub fn page_token(html: &str) -> Option<String> {
    let at = html.find("name=\"liverseg-token\"")?;
    let rest = &html[at..];
    let start = rest.find("content=\"")? + "content=\"".len();
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_string())
}

pub fn config(cases: Vec<CaseSpec>, reviewer: &str, out: PathBuf) -> ReviewConfig {
    ReviewConfig::new(cases, reviewer, out).unwrap()
}
