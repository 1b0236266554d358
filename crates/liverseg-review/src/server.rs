//! HTTP API and static files.
//!
//! All volume work runs in `spawn_blocking` under a per-case `std::sync::Mutex`;
//! the async side only routes. API (JSON unless noted; `{id}` is a case id):
//!
//! * `GET  /api/info`                               reviewer, worklist, tags, criteria
//! * `GET  /api/cases/{id}`                         open: grid, stats, record
//! * `GET  /api/cases/{id}/slice/{axis}/{index}`    binary: i16 LE HU then u8 mask,
//!   u fastest (`?part=mask`: the mask only; `?part=start`: the starting mask
//!   only); `x-width`, `x-height` headers
//! * `GET  /api/cases/{id}/volume/{ct|mask|start}`  binary: whole volume, x fastest
//! * `GET  /api/cases/{id}/changed`                 slices that differ from the start, per axis
//! * `GET  /api/cases/{id}/mesh`                    binary: the mask's surface mesh in LPS mm
//! * `POST /api/cases/{id}/lease`                   `{client, take_over, release}`: the editor lease
//! * `POST /api/cases/{id}/edit`                    an [`EditOp`] + `mask_revision`, `client`
//! * `POST /api/cases/{id}/preview`                 an [`EditOp`]: what it would change
//! * `POST /api/cases/{id}/undo`, `/redo`           `{mask_revision, client}`
//! * `POST /api/cases/{id}/activity`, `/save`
//! * `PUT  /api/cases/{id}/record`                  `{score, tags, comment}`

use crate::edit::{Axis, EditOp, EditSession};
use crate::record::{self, parse_tag, tag_order, valid_score, ActiveClock, Audit, CRITERIA, TAGS, TAG_KINDS};
use crate::store::{self, Layout, SaveJob};
use crate::{validate_name, CaseSpec, ReviewConfig, ReviewError};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use liverseg_io::dicom::seg_write::SourceSeries;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

impl IntoResponse for ReviewError {
    fn into_response(self) -> Response {
        let status = match &self {
            ReviewError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::Input(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::Conflict(_) => StatusCode::CONFLICT,
            ReviewError::Locked(_) => StatusCode::LOCKED,
            ReviewError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

type ApiResult<T> = Result<T, ReviewError>;

struct CaseState {
    edit: EditSession,
    clock: ActiveClock,
    score: Option<f64>,
    tags: Vec<String>,
    comment: String,
    started_at: String,
    /// Record and activity changes (the mask has its own revision).
    record_rev: u64,
    dicom: Option<SourceSeries>,
    /// What the CT read found (format, DICOM series chosen and others, reader
    /// warnings), described as `segment` describes it in report.json.
    input: liverseg_io::InputInfo,
    warnings: Vec<String>,
    /// Evicted from memory: later requests must reopen the case.
    closed: bool,
    /// Editing resumed from this reviewer's saved mask.
    mask_on_disk: bool,
    /// Why the probability brush is off (no map beside the mask, or it could
    /// not be read); None when the map is loaded.
    probability_note: Option<String>,
    /// The tab that edits the case; while its lease is live, edits, undo,
    /// redo and record changes from any other tab are refused (423), so a
    /// second tab is a viewer until it takes over.
    editor: Option<Lease>,
    /// The last surface mesh made and the mask revision it shows: tabs that
    /// ask again for an unchanged mask get it without meshing again.
    mesh: Option<(u64, Bytes, MeshInfo)>,
}

/// One tab's claim to edit a case, renewed by its heartbeat.
struct Lease {
    client: String,
    since: Instant,
    seen: Instant,
}

/// A lease not renewed for this long is free. Long, because a browser
/// throttles the timers of a hidden tab to about one a minute after five
/// minutes; a tab that closes releases its lease at once (`pagehide`), and
/// a crashed one is taken over with one click.
const LEASE_TTL: Duration = Duration::from_secs(90);

#[derive(Clone, Copy)]
struct MeshInfo {
    vertices: usize,
    triangles: usize,
    factors: [usize; 3],
    area_mm2: f64,
    elapsed_ms: f64,
}

impl CaseState {
    /// The live lease of a tab other than `client`, if any.
    fn other_editor(&self, client: &str, now: Instant) -> Option<&Lease> {
        self.editor
            .as_ref()
            .filter(|l| l.client != client && now.saturating_duration_since(l.seen) < LEASE_TTL)
    }

    /// Refuse a change from `client` while another tab holds the lease.
    /// Callers without a lease (scripts, the API tests) are only refused
    /// while a page holds one.
    fn check_editor(&self, client: &str, now: Instant) -> ApiResult<()> {
        match self.other_editor(client, now) {
            Some(_) => Err(ReviewError::Locked(
                "this case is being edited in another tab or window: this one is read-only; take over to edit here".into(),
            )),
            None => Ok(()),
        }
    }

    fn revision(&self) -> u64 {
        self.edit.revision + self.record_rev
    }
}

struct CaseHandle {
    state: Mutex<CaseState>,
    /// Revision last saved, and the mask revision last written (None: this
    /// reviewer has no mask file for the case yet). Held while saving, so saves
    /// of a case are serialised.
    saved: Mutex<(u64, Option<u64>)>,
    last_used: AtomicU64,
}

pub struct App {
    cfg: ReviewConfig,
    layout: Layout,
    cases: BTreeMap<String, CaseSpec>,
    open: Mutex<HashMap<String, Arc<CaseHandle>>>,
    loading: tokio::sync::Mutex<()>,
    epoch: Instant,
    /// Per-server secret that every state-changing request must carry in
    /// `x-liverseg-token`. It is only in the served page, which another site
    /// cannot read (no CORS), so a forged cross-site request lacks it; and a
    /// cross-site request that sets the header needs a preflight, which fails.
    page_token: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in one request must not take the case down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ReviewError::Internal(format!("worker failed: {e}")))?
}

impl App {
    pub fn new(cfg: ReviewConfig) -> Result<Arc<App>, ReviewError> {
        let layout = Layout {
            out: cfg.out.clone(),
            reviewer: cfg.reviewer.clone(),
        };
        layout.create_dirs()?;
        let cases = cfg
            .cases
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        Ok(Arc::new(App {
            cfg,
            layout,
            cases,
            open: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            epoch: Instant::now(),
            page_token: crate::random_token().map_err(|e| {
                ReviewError::Internal(format!("cannot read random bytes for the page token: {e}"))
            })?,
        }))
    }

    fn now_tick(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn spec(&self, id: &str) -> ApiResult<CaseSpec> {
        validate_name("case id", id)?;
        self.cases
            .get(id)
            .cloned()
            .ok_or_else(|| ReviewError::NotFound(format!("no case {id:?} in the worklist")))
    }

    /// The open case, loading it (and evicting the least recently used one) if needed.
    async fn handle(self: &Arc<Self>, id: &str) -> ApiResult<Arc<CaseHandle>> {
        let spec = self.spec(id)?;
        if let Some(h) = lock(&self.open).get(id).cloned() {
            h.last_used.store(self.now_tick(), Ordering::Relaxed);
            return Ok(h);
        }
        let _loading = self.loading.lock().await;
        if let Some(h) = lock(&self.open).get(id).cloned() {
            return Ok(h);
        }
        let evict = {
            let open = lock(&self.open);
            if open.len() >= self.cfg.max_open.max(1) {
                open.iter()
                    .min_by_key(|(_, h)| h.last_used.load(Ordering::Relaxed))
                    .map(|(k, _)| k.clone())
            } else {
                None
            }
        };
        if let Some(old) = evict {
            let h = lock(&self.open).remove(&old);
            if let Some(h) = h {
                let app = self.clone();
                blocking(move || app.save_handle(&old, &h, true).map(|_| ())).await?;
            }
        }
        let (layout, idle) = (self.layout.clone(), self.cfg.idle);
        let state = blocking(move || load_case(&spec, &layout, idle)).await?;
        let h = Arc::new(CaseHandle {
            saved: Mutex::new((state.revision(), state.mask_on_disk.then_some(0))),
            state: Mutex::new(state),
            last_used: AtomicU64::new(self.now_tick()),
        });
        lock(&self.open).insert(id.to_string(), h.clone());
        Ok(h)
    }

    /// Save a case if it changed since its last save (or always with `force`);
    /// `close` marks it closed under the same lock as the snapshot.
    fn save_handle(&self, id: &str, h: &CaseHandle, close: bool) -> ApiResult<Option<Audit>> {
        self.save_inner(id, h, close, false)
    }

    fn save_inner(
        &self,
        id: &str,
        h: &CaseHandle,
        close: bool,
        force: bool,
    ) -> ApiResult<Option<Audit>> {
        let mut saved = lock(&h.saved);
        let (rev, mask, start, dicom, audit) = {
            let mut st = lock(&h.state);
            st.closed |= close;
            let rev = st.revision();
            if rev <= saved.0 && !force {
                return Ok(None);
            }
            let mask_rev = st.edit.revision;
            let s = st.edit.stats();
            let audit = Audit {
                case: id.to_string(),
                reviewer: self.cfg.reviewer.clone(),
                started_at: st.started_at.clone(),
                saved_at: String::new(),
                score: st.score,
                tags: st.tags.clone(),
                comment: st.comment.clone(),
                active_seconds: (st.clock.total.as_secs_f64() * 10.0).round() / 10.0,
                edit_count: st.edit.edits,
                volume_ml: s.volume_ml,
                start_volume_ml: s.start_volume_ml,
                dsc_vs_start: s.dsc_vs_start,
                changed_voxels: s.changed_voxels,
                outputs: vec![],
                software: concat!("liverseg-review ", env!("CARGO_PKG_VERSION")).into(),
            };
            // Copies, so editing goes on while the files are written.
            // Activity and record changes alone rewrite only the audit and tables.
            let mask = (saved.1 != Some(mask_rev)).then(|| st.edit.mask().clone());
            (
                (rev, mask_rev),
                mask,
                st.edit.start.clone(),
                st.dicom.clone(),
                audit,
            )
        };
        let audit = store::save(SaveJob {
            layout: &self.layout,
            case: id,
            mask: mask.as_ref(),
            start: &start,
            dicom: dicom.as_ref(),
            audit,
        })?;
        *saved = (rev.0, Some(rev.1));
        Ok(Some(audit))
    }

    /// Save every changed open case (autosave, shutdown).
    pub fn save_all(&self) -> Vec<String> {
        let open: Vec<(String, Arc<CaseHandle>)> = lock(&self.open)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut errors = vec![];
        for (id, h) in open {
            if let Err(e) = self.save_handle(&id, &h, false) {
                errors.push(format!("case {id}: {e}"));
            }
        }
        errors
    }
}

fn load_case(spec: &CaseSpec, layout: &Layout, idle: Duration) -> ApiResult<CaseState> {
    let input = |e: liverseg_io::Error| ReviewError::Input(e.to_string());
    let ct = liverseg_io::read_image(&spec.ct, &Default::default()).map_err(input)?;
    // The reader's warnings (with the DICOM series' own, e.g. made-up UIDs)
    // from the one place `segment` takes them for report.json.
    let input_info = liverseg_io::InputInfo::from_read(&ct);
    let mut warnings = input_info.warnings.clone();
    let ctv = ct.volume.to_i16_exact().unwrap_or_else(|| {
        warnings.push("CT values are not whole HU in the i16 range: rounded and clamped for display and editing".into());
        ct.volume.to_f32().map(|&v| v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16)
    });
    let (start, _) = liverseg_io::read_mask(&spec.mask, Some(ctv.geometry()), &Default::default())
        .map_err(input)?;
    let start = onto_ct_grid(start, ctv.geometry(), &mut warnings);
    // The resampling warning already says the mask lies outside the CT.
    if !warnings.iter().any(|w| w.starts_with("the mask lies outside the CT")) {
        warnings.extend(placement_warnings(&start, &ctv));
    }
    warnings.extend(segment_flags(&spec.mask));
    let dir = ctv.geometry().direction();
    if (0..3).any(|a| dir[a][a].abs() < 0.9) {
        warnings.push("the CT's voxel axes are far from the patient axes (oblique or permuted): views show voxel rows and columns, labels may not match the anatomy".into());
    }
    let saved = layout.load_saved(&spec.id, ctv.geometry())?;
    let mask_on_disk = saved.is_some();
    let (mask, audit) = match saved {
        Some((m, a)) => (m, a),
        None => (start.clone(), None),
    };
    // The series the read chose: the SEG and RTSTRUCT refer to exactly the
    // images shown, without scanning the folder a second time.
    let dicom = ct.dicom.map(|d| d.series);
    let a = audit.as_ref();
    let mut edit = EditSession::new(ctv, start, mask)?;
    let probability_note = match load_probability(&spec.mask, edit.geometry(), &mut warnings) {
        Ok(p) => {
            edit.set_probability(&p)?;
            None
        }
        Err(why) => Some(why),
    };
    edit.edits = a.map_or(0, |a| a.edit_count);
    Ok(CaseState {
        edit,
        clock: ActiveClock::new(
            idle,
            Duration::from_secs_f64(a.map_or(0.0, |a| a.active_seconds.max(0.0))),
        ),
        score: a.and_then(|a| a.score),
        tags: a.map(|a| a.tags.clone()).unwrap_or_default(),
        comment: a.map(|a| a.comment.clone()).unwrap_or_default(),
        started_at: a
            .map(|a| a.started_at.clone())
            .unwrap_or_else(record::utc_now),
        record_rev: 0,
        dicom,
        input: input_info,
        warnings,
        closed: false,
        mask_on_disk,
        probability_note,
        editor: None,
        mesh: None,
    })
}

/// The model's probability map that `liverseg segment -o DIR --probability`
/// wrote beside the starting mask (`DIR/probability.nii.gz` next to
/// `DIR/liver.nii.gz`), on the CT's grid (resampled linearly when its grid
/// differs by more than header rounding, as the mask is). Err: why there is
/// none, for the page's tooltip (a map that exists but fails to load is also
/// a warning).
fn load_probability(
    mask: &std::path::Path,
    ct: &liverseg_volume::Geometry,
    warnings: &mut Vec<String>,
) -> Result<liverseg_volume::Volume<f32>, String> {
    if mask.file_name().is_none_or(|n| n != "liver.nii.gz") {
        return Err("the starting mask is not a liverseg segment output (DIR/liver.nii.gz), so there is no model probability map".into());
    }
    let path = mask.with_file_name("probability.nii.gz");
    if !path.exists() {
        return Err("no probability.nii.gz beside the mask: run liverseg segment with --probability".into());
    }
    let read = liverseg_io::read_image(&path, &Default::default()).map_err(|e| {
        let why = format!("probability.nii.gz not read ({e}): the probability brush is off");
        warnings.push(why.clone());
        why
    })?;
    let p = read.volume.to_f32();
    let pg = p.geometry().clone();
    if pg.same_grid(ct) {
        return Ok(p);
    }
    if pg.dims() == ct.dims() {
        let half = 0.5 * ct.spacing().iter().cloned().fold(f64::INFINITY, f64::min);
        if pg.corner_distance(ct) < half {
            return p.with_geometry(ct.clone()).map_err(|e| e.to_string());
        }
    }
    warnings.push("the probability map is on another grid than the CT: resampled onto it (linear)".into());
    Ok(liverseg_imgproc::resample::resample_linear(&p, ct, 0.0))
}

/// The editor works on the CT's grid. A mask whose grid matches up to float
/// rounding of its header (every voxel centre within half a voxel) takes the
/// CT's geometry; any other grid is resampled (nearest neighbour). Both say so.
fn onto_ct_grid(
    mask: liverseg_volume::Mask,
    ct: &liverseg_volume::Geometry,
    warnings: &mut Vec<String>,
) -> liverseg_volume::Mask {
    let mg = mask.geometry().clone();
    if mg.same_grid(ct) {
        return mask;
    }
    if mg.dims() == ct.dims() {
        let worst = mg.corner_distance(ct);
        let half = 0.5 * ct.spacing().iter().cloned().fold(f64::INFINITY, f64::min);
        if worst < half {
            warnings.push(format!("the mask's header places its voxels up to {worst:.3} mm from the CT's; taken as the CT's grid"));
            return mask.with_geometry(ct.clone()).expect("same dims");
        }
    }
    // How far apart the two grids are, in words a reviewer can judge: a few mm
    // is a header or crop difference, hundreds of mm a mask of another scan.
    let corners = box_corner_distance(&mg, ct);
    let centres = box_centre_distance(&mg, ct);
    let before_ml = mask.count_foreground() as f64 * mg.voxel_volume_mm3() / 1000.0;
    let out = liverseg_imgproc::resample::resample_nearest(&mask, ct, 0);
    let after = out.count_foreground();
    let after_ml = after as f64 * ct.voxel_volume_mm3() / 1000.0;
    warnings.push(format!(
        "the mask is on another grid than the CT ({}x{}x{} voxels of {:.2}x{:.2}x{:.2} mm; its box's centre lies {centres:.1} mm and its corners up to {corners:.1} mm from the CT's): resampled onto the CT's grid (nearest neighbour); saved masks are on the CT's grid",
        mg.dims()[0], mg.dims()[1], mg.dims()[2],
        mg.spacing()[0], mg.spacing()[1], mg.spacing()[2],
    ));
    if before_ml > 0.0 && after == 0 {
        warnings.push(format!(
            "the mask lies outside the CT: 0 voxels after resampling (it had {before_ml:.1} ml); was it made for another scan?"
        ));
    } else if before_ml > 0.0 && after_ml < 0.5 * before_ml {
        warnings.push(format!(
            "only {after_ml:.1} of the mask's {before_ml:.1} ml lie inside the CT after resampling; was it made for another scan?"
        ));
    }
    out
}

/// The 8 corners of `g`'s voxel box (outer faces, LPS mm) in a fixed order, so
/// that two grids of different size or spacing can be compared corner by corner.
fn box_corners(g: &liverseg_volume::Geometry) -> [[f64; 3]; 8] {
    let hi = g.dims().map(|n| n as f64 - 0.5);
    std::array::from_fn(|c| {
        let idx: [f64; 3] = std::array::from_fn(|a| if c >> a & 1 == 0 { -0.5 } else { hi[a] });
        g.index_to_world(idx)
    })
}

fn dist(p: [f64; 3], q: [f64; 3]) -> f64 {
    (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f64>().sqrt()
}

/// Largest distance (mm) between matching corners of the two grids' voxel
/// boxes. Unlike `Geometry::corner_distance` it does not assume equal dims.
fn box_corner_distance(a: &liverseg_volume::Geometry, b: &liverseg_volume::Geometry) -> f64 {
    let (p, q) = (box_corners(a), box_corners(b));
    (0..8).map(|c| dist(p[c], q[c])).fold(0.0, f64::max)
}

fn box_centre_distance(a: &liverseg_volume::Geometry, b: &liverseg_volume::Geometry) -> f64 {
    let centre = |g: &liverseg_volume::Geometry| g.index_to_world(g.dims().map(|n| (n as f64 - 1.0) / 2.0));
    dist(centre(a), centre(b))
}

/// A starting mask that is empty, or lies mostly in air, was almost surely
/// made for another scan (or shifted by a wrong header); the page would
/// otherwise show it as a plausible "0.0 ml" case. Share of air: mask voxels
/// below -500 HU (lung and bowel gas included, so only a clear majority counts).
fn placement_warnings(start: &liverseg_volume::Mask, ct: &liverseg_volume::Volume<i16>) -> Vec<String> {
    let (mut n, mut air) = (0usize, 0usize);
    for (&m, &hu) in start.data().iter().zip(ct.data()) {
        if m != 0 {
            n += 1;
            air += usize::from(hu < -500);
        }
    }
    if n == 0 {
        return vec!["the starting mask is empty (0 voxels on the CT's grid)".into()];
    }
    let share = air as f64 / n as f64;
    if share > 0.5 {
        return vec![format!(
            "{:.0}% of the starting mask's voxels are air (HU < -500): the mask lies mostly outside the body; was it made for another scan?",
            100.0 * share
        )];
    }
    vec![]
}

/// Run `f` on the open case's state in a worker thread.
async fn with_case<T: Send + 'static>(
    app: &Arc<App>,
    id: &str,
    f: impl FnOnce(&mut CaseState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let h = app.handle(id).await?;
    blocking(move || {
        let mut st = lock(&h.state);
        if st.closed {
            return Err(ReviewError::Conflict(
                "the case was closed to free memory; open it again".into(),
            ));
        }
        f(&mut st)
    })
    .await
}

fn summary(st: &CaseState) -> Value {
    json!({
        "stats": st.edit.stats(),
        "can_undo": st.edit.can_undo(),
        "can_redo": st.edit.can_redo(),
        "revision": st.revision(),
        "mask_revision": st.edit.revision,
        "edit_count": st.edit.edits,
        "active_seconds": st.clock.total.as_secs_f64(),
        "history_bytes": st.edit.history_bytes(),
    })
}

async fn info(State(app): State<Arc<App>>) -> Json<Value> {
    let cases: Vec<Value> = app
        .cases
        .keys()
        .map(|id| {
            let a = std::fs::read_to_string(app.layout.audit(id))
                .ok()
                .and_then(|t| serde_json::from_str::<Audit>(&t).ok());
            json!({ "id": id, "saved": a.is_some(), "score": a.as_ref().and_then(|a| a.score) })
        })
        .collect();
    let criteria: Vec<Value> = CRITERIA
        .iter()
        .map(|(s, e1, e2)| json!({ "scores": s, "expert1": e1, "expert2": e2 }))
        .collect();
    Json(json!({
        "reviewer": app.cfg.reviewer,
        "cases": cases,
        "tags": TAGS,
        "tag_kinds": TAG_KINDS,
        "criteria": criteria,
        "autosave_seconds": app.cfg.autosave.as_secs_f64(),
        "idle_seconds": app.cfg.idle.as_secs_f64(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn open_case(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let now = Instant::now();
    with_case(&app, &id.clone(), move |st| {
        st.clock.touch(now);
        let g = st.edit.geometry().clone();
        let (lo, hi) = st.edit.ct.min_max().unwrap_or((0, 0));
        let mut v = summary(st);
        let o = v.as_object_mut().expect("object");
        o.insert("id".into(), json!(id));
        o.insert("dims".into(), json!(g.dims()));
        o.insert("spacing".into(), json!(g.spacing()));
        o.insert("origin".into(), json!(g.origin()));
        // Rows of the flat matrix are LPS components; column j is voxel axis j.
        o.insert("direction".into(), json!(g.direction_flat()));
        o.insert("hu_range".into(), json!([lo, hi]));
        o.insert("score".into(), json!(st.score));
        o.insert("tags".into(), json!(st.tags));
        o.insert("comment".into(), json!(st.comment));
        o.insert("dicom".into(), json!(st.dicom.is_some()));
        o.insert("warnings".into(), json!(st.warnings));
        o.insert("input".into(), json!(st.input));
        // The line `segment` prints for the series read (DICOM), for the page.
        o.insert("input_summary".into(), json!(st.input.series_line()));
        o.insert("probability".into(), json!(st.edit.has_probability()));
        o.insert("probability_note".into(), json!(st.probability_note));
        Ok(Json(v))
    })
    .await
}

#[derive(Deserialize)]
struct SliceQuery {
    part: Option<String>,
}

fn binary(bytes: Vec<u8>, extra: &[(&'static str, String)]) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    (h, bytes).into_response()
}

async fn slice(
    State(app): State<Arc<App>>,
    UrlPath((id, axis, index)): UrlPath<(String, String, usize)>,
    Query(q): Query<SliceQuery>,
) -> ApiResult<Response> {
    let axis = Axis::parse(&axis)
        .ok_or_else(|| ReviewError::BadRequest(format!("axis {axis:?}: use x, y or z")))?;
    let mask_only = match q.part.as_deref() {
        None | Some("both") => false,
        Some("mask") => true,
        Some("start") => {
            // The starting mask never changes, so the page fetches each slice
            // of it once; a revision header would only mislead.
            return with_case(&app, &id, move |st| {
                let (w, h, mk) = st.edit.start_slice(axis, index)?;
                Ok(binary(mk, &[("x-width", w.to_string()), ("x-height", h.to_string())]))
            })
            .await;
        }
        Some(p) => {
            return Err(ReviewError::BadRequest(format!(
                "part {p:?}: use both, mask or start"
            )))
        }
    };
    with_case(&app, &id, move |st| {
        let (w, h, hu, mk) = st.edit.slice(axis, index)?;
        let mut out = Vec::with_capacity(w * h * 3);
        if !mask_only {
            for v in hu {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.extend_from_slice(&mk);
        Ok(binary(
            out,
            &[
                ("x-width", w.to_string()),
                ("x-height", h.to_string()),
                ("x-revision", st.revision().to_string()),
                ("x-mask-revision", st.edit.revision.to_string()),
            ],
        ))
    })
    .await
}

/// Slices where the mask differs from the start, per view, for the page's
/// list of edited slices: `{x: [[slice, voxels], ...], y: ..., z: ...}`.
async fn changed(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Value>> {
    with_case(&app, &id, move |st| {
        let [x, y, z] = st.edit.changed_slices();
        Ok(Json(json!({ "x": x, "y": y, "z": z, "mask_revision": st.edit.revision })))
    })
    .await
}

async fn volume(
    State(app): State<Arc<App>>,
    UrlPath((id, which)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    with_case(&app, &id, move |st| {
        let bytes = match which.as_str() {
            "ct" => st
                .edit
                .ct
                .data()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            "mask" => st.edit.mask().data().to_vec(),
            "start" => st.edit.start.data().to_vec(),
            w => {
                return Err(ReviewError::BadRequest(format!(
                    "volume {w:?}: use ct, mask or start"
                )))
            }
        };
        let d = st.edit.geometry().dims();
        Ok(binary(
            bytes,
            &[
                ("x-dims", format!("{},{},{}", d[0], d[1], d[2])),
                ("x-revision", st.revision().to_string()),
            ],
        ))
    })
    .await
}

/// Where an edit, undo or redo was made: on which revision of the mask, and in
/// which tab (`client`, the page's random id). Two tabs on one case would
/// otherwise edit a mask they do not show, and undo each other's work.
#[derive(Deserialize)]
struct Base {
    mask_revision: Option<u64>,
    #[serde(default)]
    client: String,
}

fn parse_base(body: &[u8], what: &str) -> ApiResult<Base> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let b: Base = serde_json::from_slice(body)
        .map_err(|e| ReviewError::BadRequest(format!("{what}: {e}")))?;
    if b.mask_revision.is_none() {
        return Err(ReviewError::BadRequest(format!(
            "{what}: mask_revision missing: send the revision of the mask it was made on (from the last response)"
        )));
    }
    if b.client.len() > 100 {
        return Err(ReviewError::BadRequest(format!(
            "{what}: client id longer than 100 bytes"
        )));
    }
    Ok(b)
}

/// Refuse a request made on another revision of the mask than the current one.
fn check_base(st: &CaseState, b: &Base) -> ApiResult<()> {
    let now = st.edit.revision;
    match b.mask_revision {
        Some(r) if r == now => Ok(()),
        r => Err(ReviewError::Conflict(format!(
            "the mask changed since this page last loaded it (revision {}, now {now}): another tab or window is editing this case; nothing was changed here, the page reloads the mask",
            r.map_or("none".to_string(), |r| r.to_string())
        ))),
    }
}

async fn edit(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let op: EditOp =
        serde_json::from_slice(&body).map_err(|e| ReviewError::BadRequest(format!("edit: {e}")))?;
    let base = parse_base(&body, "edit")?;
    let now = Instant::now();
    with_case(&app, &id, move |st| {
        st.check_editor(&base.client, now)?;
        check_base(st, &base)?;
        let t0 = Instant::now();
        let changed = st.edit.apply_by(&op, &base.client)?;
        let elapsed_ms = (t0.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        st.clock.touch(now);
        let mut v = summary(st);
        v["changed"] = json!(changed);
        v["elapsed_ms"] = json!(elapsed_ms);
        if changed == 0 {
            v["reason"] = json!(st.edit.noop_reason(&op));
        }
        Ok(Json(v))
    })
    .await
}

/// What an edit would change, before the reviewer applies it. A fill: its
/// size, its reach and its voxels as runs `[first offset, length]` (x
/// fastest), or why it is refused or would change nothing. Any other op
/// (grow, interpolate, fill holes, …): the voxels it would add and remove as
/// runs, their ml, and how long the server took (`elapsed_ms`).
async fn preview(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let op: EditOp = serde_json::from_slice(&body)
        .map_err(|e| ReviewError::BadRequest(format!("preview: {e}")))?;
    with_case(&app, &id, move |st| {
        let t0 = Instant::now();
        let mut v = if let EditOp::Fill { .. } = op {
            let p = st.edit.preview(&op)?;
            let mut v = serde_json::to_value(&p)
                .map_err(|e| ReviewError::Internal(format!("preview: {e}")))?;
            v["runs"] = json!(p.runs());
            v
        } else {
            let p = st.edit.change_preview(&op)?;
            serde_json::to_value(&p).map_err(|e| ReviewError::Internal(format!("preview: {e}")))?
        };
        v["op"] = json!(op.name());
        v["elapsed_ms"] = json!((t0.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        v["mask_revision"] = json!(st.edit.revision);
        Ok(Json(v))
    })
    .await
}

async fn undo(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let base = parse_base(&body, "undo")?;
    let now = Instant::now();
    with_case(&app, &id, move |st| {
        st.check_editor(&base.client, now)?;
        check_base(st, &base)?;
        let op = st.edit.undo_by(&base.client)?;
        st.clock.touch(now);
        let mut v = summary(st);
        v["undone"] = json!(op);
        Ok(Json(v))
    })
    .await
}

async fn redo(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let base = parse_base(&body, "redo")?;
    let now = Instant::now();
    with_case(&app, &id, move |st| {
        st.check_editor(&base.client, now)?;
        check_base(st, &base)?;
        let op = st.edit.redo_by(&base.client)?;
        st.clock.touch(now);
        let mut v = summary(st);
        v["redone"] = json!(op);
        Ok(Json(v))
    })
    .await
}

async fn activity(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let now = Instant::now();
    with_case(&app, &id, move |st| {
        let before = st.clock.total;
        st.clock.touch(now);
        if st.clock.total != before {
            st.record_rev += 1;
        }
        Ok(Json(
            json!({ "active_seconds": st.clock.total.as_secs_f64() }),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct RecordBody {
    score: Option<f64>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    comment: String,
    /// The tab that sends it (checked against the editor lease).
    #[serde(default)]
    client: String,
}

async fn put_record(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let r: RecordBody = serde_json::from_slice(&body)
        .map_err(|e| ReviewError::BadRequest(format!("record: {e}")))?;
    if let Some(s) = r.score {
        if !valid_score(s) {
            return Err(ReviewError::BadRequest(format!(
                "score {s}: use 1, 1.5, ..., 5"
            )));
        }
    }
    if let Some(t) = r.tags.iter().find(|t| parse_tag(t).is_none()) {
        return Err(ReviewError::BadRequest(format!(
            "tag {t:?}: use \"region: kind\" with region one of {} and kind {}",
            TAGS.join(", "),
            TAG_KINDS.join(" or ")
        )));
    }
    if r.comment.len() > 4000 {
        return Err(ReviewError::BadRequest(
            "comment longer than 4000 bytes".into(),
        ));
    }
    let now = Instant::now();
    with_case(&app, &id, move |st| {
        st.check_editor(&r.client, now)?;
        let mut tags = r.tags;
        tags.sort_by_key(|t| tag_order(t));
        tags.dedup();
        st.score = r.score;
        st.tags = tags;
        st.comment = r.comment;
        st.record_rev += 1;
        st.clock.touch(now);
        Ok(Json(
            json!({ "score": st.score, "tags": st.tags, "comment": st.comment }),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct LeaseBody {
    client: String,
    /// Take the lease even from another live tab (which becomes read-only).
    #[serde(default)]
    take_over: bool,
    /// Give the lease up (the tab closes or leaves the case).
    #[serde(default)]
    release: bool,
    /// Only report who edits, never take the lease: a read-only tab's
    /// heartbeat (it follows the editor's work, and offers to edit once the
    /// editor is gone).
    #[serde(default)]
    watch: bool,
    /// A renewal, not a claim: on a case closed to free memory it is
    /// answered without opening the case again (see [`lease`]).
    #[serde(default)]
    heartbeat: bool,
}

/// One editor per case: a tab asks for the lease when it opens the case and
/// renews it every few seconds (the same call). It gets it when the case has
/// no live editor, when it already holds it, or with `take_over`; otherwise
/// it is told who holds it and stays a viewer. Every answer carries the
/// mask's summary, so a viewer's heartbeat also says when to reload.
async fn lease(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: LeaseBody =
        serde_json::from_slice(&body).map_err(|e| ReviewError::BadRequest(format!("lease: {e}")))?;
    if b.client.is_empty() || b.client.len() > 100 {
        return Err(ReviewError::BadRequest(
            "lease: client must be a tab id of 1 to 100 bytes".into(),
        ));
    }
    let now = Instant::now();
    // A heartbeat must not load a case that was closed to free memory: tabs
    // left open on several cases would load them in turn, each evicting the
    // next. A closed case has no lease (it lived in memory with the case),
    // so the answer is known: the editor keeps editing (its next edit opens
    // the case, its next heartbeat after that takes the lease again), a
    // viewer hears that nobody edits. A claim or a take-over opens the case.
    app.spec(&id)?;
    if (b.heartbeat || b.watch) && !b.take_over && !lock(&app.open).contains_key(&id) {
        return Ok(Json(json!({
            "editor": !b.watch && !b.release,
            "other_editor": null,
            "lease_seconds": LEASE_TTL.as_secs(),
            "open": false,
        })));
    }
    with_case(&app, &id, move |st| {
        let mine = st.editor.as_ref().is_some_and(|l| l.client == b.client);
        if b.release {
            if mine {
                st.editor = None;
            }
        } else if mine || (!b.watch && (st.other_editor(&b.client, now).is_none() || b.take_over)) {
            let since = if mine { st.editor.as_ref().map_or(now, |l| l.since) } else { now };
            st.editor = Some(Lease { client: b.client.clone(), since, seen: now });
        }
        let other = st.other_editor(&b.client, now).map(|l| {
            json!({
                "since_seconds": now.saturating_duration_since(l.since).as_secs_f64().round(),
                "seen_seconds": now.saturating_duration_since(l.seen).as_secs_f64().round(),
            })
        });
        let editor = !b.release && st.editor.as_ref().is_some_and(|l| l.client == b.client);
        let mut v = summary(st);
        v["editor"] = json!(editor);
        v["other_editor"] = json!(other);
        v["lease_seconds"] = json!(LEASE_TTL.as_secs());
        Ok(Json(v))
    })
    .await
}

/// The mask's surface as a triangle mesh in patient LPS mm
/// ([`liverseg_imgproc::mesh`], cells of about 2 mm, at most 200,000
/// triangles), binary: `u32` vertex count, `u32` triangle count, `3 f32`
/// per vertex, `3 u32` per triangle (little endian). Meshed from a copy of
/// the mask outside the case's lock, so edits go on meanwhile; kept per mask
/// revision.
async fn mesh(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> ApiResult<Response> {
    let h = app.handle(&id).await?;
    blocking(move || {
        let (rev, mask) = {
            let st = lock(&h.state);
            if st.closed {
                return Err(ReviewError::Conflict(
                    "the case was closed to free memory; open it again".into(),
                ));
            }
            if let Some((r, bytes, info)) = &st.mesh {
                if *r == st.edit.revision {
                    return Ok(mesh_response(*r, bytes.clone(), info));
                }
            }
            (st.edit.revision, st.edit.mask().clone())
        };
        let t0 = Instant::now();
        let m = liverseg_imgproc::mesh::surface_mesh(&mask, &liverseg_imgproc::mesh::MeshOptions::default())
            .map_err(|e| ReviewError::Internal(format!("surface mesh: {e}")))?;
        let info = MeshInfo {
            vertices: m.positions.len(),
            triangles: m.triangles.len(),
            factors: m.factors,
            area_mm2: m.area_mm2(),
            elapsed_ms: (t0.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        };
        let bytes = Bytes::from(m.to_bytes());
        let mut st = lock(&h.state);
        if st.edit.revision == rev {
            st.mesh = Some((rev, bytes.clone(), info));
        }
        Ok(mesh_response(rev, bytes, &info))
    })
    .await
}

fn mesh_response(rev: u64, bytes: Bytes, info: &MeshInfo) -> Response {
    let f = info.factors;
    let mut h = HeaderMap::new();
    let pairs = [
        ("x-mask-revision", rev.to_string()),
        ("x-mesh-vertices", info.vertices.to_string()),
        ("x-mesh-triangles", info.triangles.to_string()),
        ("x-mesh-cell-voxels", format!("{},{},{}", f[0], f[1], f[2])),
        ("x-mesh-area-mm2", format!("{:.0}", info.area_mm2)),
        ("x-elapsed-ms", info.elapsed_ms.to_string()),
    ];
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    (h, bytes).into_response()
}

async fn save(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Value>> {
    let h = app.handle(&id).await?;
    let app2 = app.clone();
    let audit = blocking(move || app2.save_inner(&id, &h, false, true)).await?;
    Ok(Json(json!({ "saved": audit.is_some(), "audit": audit })))
}

const INDEX_HTML: &str = include_str!("../web/index.html");
const STATIC: [(&str, &str, &str); 5] = [
    (
        "surface.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/surface.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "view.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/view.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/api.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
];

/// Where the page token goes into the page (a `<meta>` the page's JS reads).
const TOKEN_SLOT: &str = "{{LIVERSEG_TOKEN}}";

async fn index(State(app): State<Arc<App>>) -> Response {
    // The token is hex, so it needs no HTML escaping.
    let page = INDEX_HTML.replace(TOKEN_SLOT, &app.page_token);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // A cached page would carry a previous server's token.
            (header::CACHE_CONTROL, "no-store"),
            // No framing by other pages (clickjacking the editor).
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        ],
        page,
    )
        .into_response()
}

async fn static_file(UrlPath(name): UrlPath<String>) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn refuse(status: StatusCode, msg: String) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

/// Every request passes here. In order:
///
/// * Host (loopback servers): must name localhost, so a page on another site
///   cannot reach 127.0.0.1 through DNS rebinding.
/// * Origin, when the browser sends one: must be this server's own
///   (`http://` or `https://` + the Host it was reached by); other pages are
///   refused, also for reads, so patient images never go to another origin.
/// * `Sec-Fetch-Site`, when sent: `cross-site` and `same-site` (another port
///   on loopback is same-site) are refused, which also stops `no-cors` reads;
///   top-level GET navigations (a link to the page) pass.
/// * The access token (`--token`, servers bound beyond loopback) on `/api`.
/// * State-changing methods (anything but GET, HEAD and OPTIONS): the page
///   token in `x-liverseg-token` (403 without it) and a JSON body (415
///   otherwise), so no "simple" cross-site form or `text/plain` fetch passes.
///
/// No response carries CORS headers, and every one says
/// `Cross-Origin-Resource-Policy: same-origin`.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut resp = match check_request(&app, &req) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page URL may hold the access token (`?token=`).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The refusal for a request that fails a check, or None when it passes.
fn check_request(app: &App, req: &Request) -> Option<Response> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if app.cfg.loopback_host_only {
        let name = host.rsplit_once(':').map_or(host, |(n, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                n
            } else {
                host
            }
        });
        if !["127.0.0.1", "localhost", "[::1]"].contains(&name.to_ascii_lowercase().as_str()) {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                format!("host {host:?} refused: use 127.0.0.1 or localhost"),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        // https: the same host behind a TLS proxy.
        let own = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}{host}")));
        if host.is_empty() || !own {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                format!("origin {origin:?} refused: only pages of this server (http://{host}) may call it"),
            ));
        }
    }
    // A link from another site that opens the page (a top-level GET
    // navigation) is fine: that site never sees the response.
    let navigation = req.method() == Method::GET
        && headers
            .get("sec-fetch-mode")
            .is_some_and(|m| m.as_bytes() == b"navigate");
    if let Some(site) = headers.get("sec-fetch-site").filter(|_| !navigation) {
        if matches!(site.to_str().unwrap_or(""), "cross-site" | "same-site") {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "request from another site or port refused".into(),
            ));
        }
    }
    if let Some(token) = &app.cfg.token {
        if req.uri().path().starts_with("/api/") {
            let given = headers
                .get("x-review-token")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .or_else(|| {
                    req.uri().query().and_then(|q| {
                        q.split('&')
                            .find_map(|kv| kv.strip_prefix("token=").map(str::to_string))
                    })
                });
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                return Some(refuse(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token".into(),
                ));
            }
        }
    }
    let m = req.method();
    if m != Method::GET && m != Method::HEAD && m != Method::OPTIONS {
        let given = headers
            .get("x-liverseg-token")
            .map(|h| h.as_bytes())
            .unwrap_or(b"");
        if !constant_time_eq(given, app.page_token.as_bytes()) {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "missing or wrong page token (x-liverseg-token): changes are accepted only from this server's page; reload it (the server may have been restarted)".into(),
            ));
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Some(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type {ct:?} refused: send application/json"),
            ));
        }
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/web/{file}", get(static_file))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/info", get(info))
        .route("/api/cases/{id}", get(open_case))
        .route("/api/cases/{id}/slice/{axis}/{index}", get(slice))
        .route("/api/cases/{id}/volume/{which}", get(volume))
        .route("/api/cases/{id}/changed", get(changed))
        .route("/api/cases/{id}/mesh", get(mesh))
        .route("/api/cases/{id}/lease", post(lease))
        .route("/api/cases/{id}/edit", post(edit))
        .route("/api/cases/{id}/preview", post(preview))
        .route("/api/cases/{id}/undo", post(undo))
        .route("/api/cases/{id}/redo", post(redo))
        .route("/api/cases/{id}/activity", post(activity))
        .route("/api/cases/{id}/record", put(put_record))
        .route("/api/cases/{id}/save", post(save))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Serve until `shutdown` resolves, autosaving changed cases every
/// `cfg.autosave`; everything unsaved is saved before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let saver = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.cfg.autosave);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let a = app.clone();
                if let Ok(errors) = tokio::task::spawn_blocking(move || a.save_all()).await {
                    for e in errors {
                        eprintln!("liverseg review: autosave failed: {e}");
                    }
                }
            }
        })
    };
    let result = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    saver.abort();
    let errors = tokio::task::spawn_blocking(move || app.save_all())
        .await
        .unwrap_or_default();
    for e in errors {
        eprintln!("liverseg review: final save failed: {e}");
    }
    result
}

/// The quality flags of the `liverseg segment` run that wrote the starting
/// mask (`DIR/liver.nii.gz` beside `DIR/report.json`), one warning each, so the
/// expert knows what the pipeline asked to be checked. Read as loose JSON: the
/// review tool does not depend on the pipeline crate, and a report from another
/// version should still show what it has.
fn segment_flags(mask: &std::path::Path) -> Vec<String> {
    if mask.file_name().is_none_or(|n| n != "liver.nii.gz") {
        return vec![];
    }
    let Some(report) = mask.parent().map(|d| d.join("report.json")) else {
        return vec![];
    };
    let text = match std::fs::read_to_string(&report) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
        Err(e) => {
            return vec![format!(
                "{}: not read ({e}): the segmentation's quality flags are not shown",
                report.display()
            )]
        }
    };
    let flags = match serde_json::from_str::<Value>(&text) {
        Ok(v) => match v.get("flags").and_then(Value::as_array) {
            Some(f) => f.clone(),
            None => {
                return vec![format!(
                    "{}: no \"flags\" list: the segmentation's quality flags are not shown",
                    report.display()
                )]
            }
        },
        Err(e) => {
            return vec![format!(
                "{}: not JSON ({e}): the segmentation's quality flags are not shown",
                report.display()
            )]
        }
    };
    flags
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("unnamed flag");
            match f.get("message").and_then(Value::as_str) {
                Some(m) => format!("segment flagged {name}: {m}"),
                None => format!("segment flagged {name}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_volume::{Geometry, Volume};

    #[test]
    fn segment_flags_beside_the_starting_mask_become_warnings() {
        let tmp = tempfile::tempdir().unwrap();
        let mask = tmp.path().join("liver.nii.gz");
        // No report: nothing to say.
        assert!(segment_flags(&mask).is_empty());
        std::fs::write(
            tmp.path().join("report.json"),
            r#"{"liver_volume_ml": 3156.2, "flags": [
                {"name": "mixed_tissue", "message": "45% of the mask is darker than liver tissue", "value": 0.45},
                {"name": "touches_crop_border"}]}"#,
        )
        .unwrap();
        assert_eq!(
            segment_flags(&mask),
            [
                "segment flagged mixed_tissue: 45% of the mask is darker than liver tissue",
                "segment flagged touches_crop_border"
            ]
        );
        // Only beside segment's own output name: another mask there is not its.
        assert!(segment_flags(&tmp.path().join("adjusted.nii.gz")).is_empty());
        // A report without a flags list, or not JSON: said once, the case still opens.
        std::fs::write(tmp.path().join("report.json"), r#"{"liver_volume_ml": 1}"#).unwrap();
        let w = segment_flags(&mask);
        assert!(
            w.len() == 1 && w[0].contains("report.json: no \"flags\" list"),
            "{w:?}"
        );
        std::fs::write(tmp.path().join("report.json"), "{\"flags\": [").unwrap();
        let w = segment_flags(&mask);
        assert!(
            w.len() == 1 && w[0].contains("report.json: not JSON"),
            "{w:?}"
        );
        // A report with no flag raised says nothing.
        std::fs::write(tmp.path().join("report.json"), r#"{"flags": []}"#).unwrap();
        assert!(segment_flags(&mask).is_empty());
    }

    #[test]
    fn the_probability_map_beside_segments_mask_is_found_and_put_on_the_ct_grid() {
        let tmp = tempfile::tempdir().unwrap();
        let ct = Geometry::new([10, 8, 4], [1.0, 1.0, 2.0], [0.0; 3], liverseg_volume::IDENTITY).unwrap();
        let mask = tmp.path().join("liver.nii.gz");
        let mut w = vec![];
        // Not segment's output name, or no map beside it: a reason, no warning.
        let why = load_probability(&tmp.path().join("seg.nii.gz"), &ct, &mut w).unwrap_err();
        assert!(why.contains("not a liverseg segment output"), "{why}");
        let why = load_probability(&mask, &ct, &mut w).unwrap_err();
        assert!(why.contains("no probability.nii.gz beside the mask"), "{why}");
        assert!(w.is_empty());
        let write = |v: Volume<f32>| {
            liverseg_io::write_image(
                &tmp.path().join("probability.nii.gz"),
                &liverseg_volume::DynVolume::F32(v),
            )
            .unwrap()
        };
        // On the CT's grid: as is.
        write(Volume::from_fn(ct.clone(), |[i, _, _]| i as f32 / 10.0));
        let p = load_probability(&mask, &ct, &mut w).unwrap();
        assert!(p.geometry().same_grid(&ct) && (*p.get(3, 0, 0) - 0.3).abs() < 1e-6);
        assert!(w.is_empty());
        // Shifted by one voxel along x: resampled (linear), with a warning.
        let shifted = Geometry::new([10, 8, 4], [1.0, 1.0, 2.0], [1.0, 0.0, 0.0], liverseg_volume::IDENTITY).unwrap();
        write(Volume::from_fn(shifted, |[i, _, _]| i as f32 / 10.0));
        let p = load_probability(&mask, &ct, &mut w).unwrap();
        assert!(p.geometry().same_grid(&ct));
        assert!((*p.get(3, 0, 0) - 0.2).abs() < 1e-6, "{}", p.get(3, 0, 0));
        assert!(w.len() == 1 && w[0].contains("resampled"), "{w:?}");
        // Not an image: the brush is off, and the page says why.
        std::fs::write(tmp.path().join("probability.nii.gz"), b"not a nifti").unwrap();
        let mut w = vec![];
        let why = load_probability(&mask, &ct, &mut w).unwrap_err();
        assert!(why.contains("probability.nii.gz not read") && w.len() == 1, "{why} {w:?}");
    }

    #[test]
    fn masks_are_put_on_the_ct_grid() {
        let ct = Geometry::new(
            [10, 10, 4],
            [1.0, 1.0, 2.0],
            [0.0; 3],
            liverseg_volume::IDENTITY,
        )
        .unwrap();
        let near = Geometry::new(
            [10, 10, 4],
            [1.0, 1.0, 2.0],
            [0.01, 0.0, -0.02],
            liverseg_volume::IDENTITY,
        )
        .unwrap();
        let m = Volume::from_fn(near, |[i, _, _]| u8::from(i < 5));
        let mut w = vec![];
        let out = onto_ct_grid(m.clone(), &ct, &mut w);
        assert!(out.geometry().same_grid(&ct) && out.data() == m.data());
        assert!(w[0].contains("taken as the CT's grid"), "{w:?}");
        // Shifted by two voxels along x: resampled, so the edge moves by two voxels.
        let far = Geometry::new(
            [10, 10, 4],
            [1.0, 1.0, 2.0],
            [2.0, 0.0, 0.0],
            liverseg_volume::IDENTITY,
        )
        .unwrap();
        let m = Volume::from_fn(far, |[i, _, _]| u8::from(i < 5));
        let mut w = vec![];
        let out = onto_ct_grid(m, &ct, &mut w);
        assert!(out.geometry().same_grid(&ct));
        assert_eq!(
            (0..10)
                .filter(|&i| *out.get(i, 3, 1) == 1)
                .collect::<Vec<_>>(),
            [2, 3, 4, 5, 6]
        );
        assert!(w[0].contains("resampled"));
        assert!(w[0].contains("centre lies 2.0 mm and its corners up to 2.0 mm"), "{w:?}");
        assert_eq!(w.len(), 1, "half the mask still lies inside: {w:?}");
    }

    #[test]
    fn masks_outside_the_ct_or_in_air_are_called_out() {
        let ct_g = Geometry::new([10, 10, 4], [1.0, 1.0, 2.0], [0.0; 3], liverseg_volume::IDENTITY).unwrap();
        // 1 m away: nothing is left after resampling.
        let far = Geometry::new([10, 10, 4], [1.0, 1.0, 2.0], [1000.0, 0.0, 0.0], liverseg_volume::IDENTITY).unwrap();
        let mut w = vec![];
        let out = onto_ct_grid(Volume::from_fn(far, |_| 1u8), &ct_g, &mut w);
        assert_eq!(out.count_foreground(), 0);
        assert!(w[0].contains("centre lies 1000.0 mm"), "{w:?}");
        assert!(w[1].starts_with("the mask lies outside the CT: 0 voxels after resampling (it had 0.8 ml)"), "{w:?}");
        // 8 of 10 columns off the CT's side: most of the volume is lost.
        let off = Geometry::new([10, 10, 4], [1.0, 1.0, 2.0], [8.0, 0.0, 0.0], liverseg_volume::IDENTITY).unwrap();
        let mut w = vec![];
        onto_ct_grid(Volume::from_fn(off, |_| 1u8), &ct_g, &mut w);
        assert!(w[1].starts_with("only 0.2 of the mask's 0.8 ml lie inside the CT"), "{w:?}");

        // Air outside a body of x < 5: a mask of x >= 3 is 60% air.
        let ct = Volume::from_fn(ct_g.clone(), |[i, _, _]| if i < 5 { 40i16 } else { -1000 });
        let m = Volume::from_fn(ct_g.clone(), |[i, _, _]| u8::from(i >= 5 - 2));
        let w = placement_warnings(&m, &ct);
        assert!(w.len() == 1 && w[0].starts_with("71% of the starting mask's voxels are air"), "{w:?}");
        let m = Volume::from_fn(ct_g.clone(), |[i, _, _]| u8::from((2..6).contains(&i)));
        assert!(placement_warnings(&m, &ct).is_empty(), "25% air is a border, not a wrong scan");
        let empty = Volume::from_fn(ct_g, |_| 0u8);
        assert!(placement_warnings(&empty, &ct)[0].contains("empty"));
    }
}
