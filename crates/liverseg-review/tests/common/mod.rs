//! Test helpers: phantom cases on disk, an in-process server on port 0, and a
//! tiny blocking HTTP/1.1 client (no HTTP client crate needed for tests).
#![allow(dead_code)]

use liverseg_phantom::{generate, PhantomConfig};
use liverseg_volume::Volume;
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

/// A case whose starting mask has the errors issue 21 asks the smart tools
/// to fix: the liver's left part cut off (`cut`), a leak into the right
/// kidney (`leak`) and the outer 4 mm of the dome missed, with `probability.nii.gz` beside `liver.nii.gz`
/// as `liverseg segment -o DIR --probability` writes it (the truth blurred
/// by 2 mm, so p >= 0.5 is close to the truth) when `probability` is set.
pub struct FlawedCase {
    pub spec: CaseSpec,
    pub ct: Volume<i16>,
    pub truth: Mask,
    pub start: Mask,
    /// Liver voxels missing from the start (the cut-off tip).
    pub cut: Vec<usize>,
    /// Kidney voxels in the start (the leak).
    pub leak: Vec<usize>,
}

pub fn flawed_case(
    dir: &Path,
    id: &str,
    dims: [usize; 3],
    spacing: [f64; 3],
    probability: bool,
) -> FlawedCase {
    let p = generate(&PhantomConfig {
        dims,
        spacing,
        noise_hu: 8.0,
        lesions: 0,
        seed: 5,
        ..Default::default()
    });
    let g = p.liver.geometry().clone();
    let truth = p.liver.clone();
    let (lo, hi) = liverseg_imgproc::morphology::bounding_box(&truth).expect("a liver");
    // The patient's left end of the liver (+x in LPS): the left lobe's tip.
    let i_cut = lo[0] + (hi[0] - lo[0]) * 6 / 10;
    let kidney = p.mask("kidney_right").unwrap();
    let near = liverseg_imgproc::edt::distance_to_foreground(&truth);
    let cut: Vec<usize> = (0..g.len())
        .filter(|&o| truth.data()[o] == 1 && g.index_of(o)[0] > i_cut)
        .collect();
    let leak: Vec<usize> = (0..g.len())
        .filter(|&o| kidney.data()[o] == 1 && near.data()[o] <= 20.0)
        .collect();
    assert!(cut.len() > 100 && leak.len() > 100, "cut {} leak {}", cut.len(), leak.len());
    let mut start = truth.clone();
    for &o in &cut {
        start.data_mut()[o] = 0;
    }
    // A missed border: the outer 4 mm of the liver's upper third (the dome),
    // a thin miss the probability brush pulls back in.
    let inside = liverseg_imgproc::edt::distance_to_foreground(&truth.map(|&v| 1 - v));
    let k_dome = hi[2] - (hi[2] - lo[2]) / 3;
    for o in 0..g.len() {
        if truth.data()[o] == 1 && g.index_of(o)[2] >= k_dome && inside.data()[o] <= 4.0 {
            start.data_mut()[o] = 0;
        }
    }
    for &o in &leak {
        start.data_mut()[o] = 1;
    }
    let d = dir.join(id);
    std::fs::create_dir_all(&d).unwrap();
    liverseg_io::write_image(&d.join("ct.nii.gz"), &DynVolume::I16(p.ct.clone())).unwrap();
    liverseg_io::write_image(&d.join("liver.nii.gz"), &DynVolume::U8(start.clone())).unwrap();
    if probability {
        let blurred =
            liverseg_imgproc::filters::gaussian_blur(&truth.map(|&v| v as f32), 2.0).unwrap();
        liverseg_io::write_image(&d.join("probability.nii.gz"), &DynVolume::F32(blurred))
            .unwrap();
    }
    FlawedCase {
        spec: CaseSpec {
            id: id.into(),
            ct: d.join("ct.nii.gz"),
            mask: d.join("liver.nii.gz"),
        },
        ct: p.ct,
        truth,
        start,
        cut,
        leak,
    }
}

/// DSC of two masks (1 when both are empty).
pub fn dsc(a: &Mask, b: &Mask) -> f64 {
    liverseg_volume::dice(a.data(), b.data()).unwrap_or(1.0)
}

/// A stroke through a set of voxels, as an expert would draw it: on the
/// axial slice holding most of them (or `k` when given), along the row
/// holding most of them on that slice, end to end, kept `inset` voxels inside
/// the row's ends. Returns (slice, [start, end] in (i, j)).
pub fn row_stroke(
    g: &liverseg_volume::Geometry,
    voxels: &[usize],
    k: Option<usize>,
    inset: usize,
) -> Option<(usize, Vec<[f64; 2]>)> {
    use std::collections::BTreeMap;
    let ijk: Vec<[usize; 3]> = voxels.iter().map(|&o| g.index_of(o)).collect();
    let k = match k {
        Some(k) => k,
        None => {
            let mut per: BTreeMap<usize, usize> = BTreeMap::new();
            ijk.iter().for_each(|v| *per.entry(v[2]).or_default() += 1);
            *per.iter().max_by_key(|(k, n)| (**n, usize::MAX - **k))?.0
        }
    };
    let mut rows: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    ijk.iter()
        .filter(|v| v[2] == k)
        .for_each(|v| rows.entry(v[1]).or_default().push(v[0]));
    let (j, is) = rows.iter().max_by_key(|(j, is)| (is.len(), usize::MAX - **j))?;
    let (a, b) = (*is.iter().min()? + inset, is.iter().max()?.checked_sub(inset)?);
    (a <= b).then(|| (k, vec![[a as f64, *j as f64], [b as f64, *j as f64]]))
}

/// One seed stroke on an axial slice: (value, slice, points, radius_mm).
pub type Seed = (u8, usize, Vec<[f64; 2]>, f64);

/// The seeds an expert would draw to fix a [`FlawedCase`]: liver along the
/// cut-off tip on its two fullest slices, not-liver along the leak, and liver
/// just beside the leak on the same slice, so the not-liver front stops at
/// the kidney's edge instead of running on into the liver.
pub fn fix_seeds(case: &FlawedCase) -> Vec<Seed> {
    let g = case.truth.geometry();
    let per_slice = |v: &[usize]| {
        let mut n = vec![0usize; g.dims()[2]];
        v.iter().for_each(|&o| n[g.index_of(o)[2]] += 1);
        n
    };
    let mut seeds = vec![];
    let cut_n = per_slice(&case.cut);
    let mut order: Vec<usize> = (0..cut_n.len()).collect();
    order.sort_by_key(|&k| (usize::MAX - cut_n[k], k));
    let (k1, k2) = (order[0], order.iter().copied().find(|&k| k.abs_diff(order[0]) >= 3).unwrap_or(order[1]));
    for k in [k1, k2] {
        let (k, pts) = row_stroke(g, &case.cut, Some(k), 1).expect("a stroke along the cut");
        seeds.push((1, k, pts, 3.0));
    }
    let leak_mask = Volume::from_fn(g.clone(), |_| 0u8);
    let mut leak_mask = leak_mask;
    case.leak.iter().for_each(|&o| leak_mask.data_mut()[o] = 1);
    let d = liverseg_imgproc::edt::distance_to_foreground(&leak_mask);
    let beside: Vec<usize> = (0..g.len())
        .filter(|&o| case.truth.data()[o] == 1 && case.start.data()[o] == 1 && d.data()[o] <= 8.0)
        .collect();
    let (lk, bn) = per_slice(&beside)
        .iter()
        .zip(per_slice(&case.leak))
        .enumerate()
        .map(|(k, (b, l))| (k, (*b).min(l)))
        .max_by_key(|&(k, n)| (n, usize::MAX - k))
        .unwrap();
    assert!(bn > 0, "no slice holds both the leak and liver beside it");
    let (_, pts) = row_stroke(g, &case.leak, Some(lk), 1).expect("a stroke along the leak");
    seeds.push((0, lk, pts, 3.0));
    let (_, pts) = row_stroke(g, &beside, Some(lk), 0).expect("a stroke beside the leak");
    seeds.push((1, lk, pts, 2.0));
    seeds
}

/// Seeds as the grow op's JSON.
pub fn seeds_json(seeds: &[Seed]) -> serde_json::Value {
    serde_json::Value::Array(
        seeds
            .iter()
            .map(|(v, k, pts, r)| serde_json::json!({"axis": "z", "slice": k, "points": pts, "radius_mm": r, "value": v}))
            .collect(),
    )
}
