//! `liverseg review`: a browser-based tool for experts to check, correct and
//! score liver segmentations, served by an axum HTTP server with the viewer and
//! editor (plain ES modules + canvas) embedded in the binary.
//!
//! The server holds the volumes and applies every edit, so the browser only
//! fetches the slices it shows (typed arrays: i16 HU + u8 mask) and sends
//! compact edit operations; undo/redo store flipped-voxel lists ([`edit`]).
//! Saving writes the corrected mask, DICOM-SEG/RTSTRUCT for DICOM sources and
//! an audit record in a layout `liverseg study` reads directly ([`store`]).

pub mod cases;
pub mod edit;
pub mod record;
mod server;
pub mod store;

pub use cases::{collect_cases, validate_name, CaseSpec};
pub use server::{router, serve, App};

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A case's files cannot be read or do not fit together.
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Conflict(String),
    /// Another tab or window holds the case's editor lease: this one may
    /// look, not change (HTTP 423, so the page can tell it from a stale edit).
    #[error("{0}")]
    Locked(String),
    /// A well-formed request the server will not carry out (a fill over its limit).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
}

#[derive(Debug, Clone)]
pub struct ReviewConfig {
    pub cases: Vec<CaseSpec>,
    pub reviewer: String,
    pub out: PathBuf,
    /// Required on every API request when set (`?token=` or `x-review-token`).
    pub token: Option<String>,
    /// Only accept requests whose Host is a loopback name (DNS-rebinding guard
    /// for servers bound to 127.0.0.1).
    pub loopback_host_only: bool,
    /// Gaps between activity events longer than this are idle, not counted.
    pub idle: Duration,
    /// How often changed cases are saved.
    pub autosave: Duration,
    /// Cases kept in memory at once (each holds its CT and two masks).
    pub max_open: usize,
}

impl ReviewConfig {
    pub fn new(cases: Vec<CaseSpec>, reviewer: &str, out: PathBuf) -> Result<Self, ReviewError> {
        validate_name("reviewer name", reviewer)?;
        if store::RESERVED.contains(&reviewer) {
            return Err(ReviewError::BadRequest(format!(
                "reviewer name {reviewer:?} is reserved"
            )));
        }
        Ok(ReviewConfig {
            cases,
            reviewer: reviewer.to_string(),
            out,
            token: None,
            loopback_host_only: true,
            idle: Duration::from_secs(30),
            autosave: Duration::from_secs(5),
            max_open: 3,
        })
    }
}

/// A random token (128 bits from the OS's CSPRNG, hex): the access token of
/// non-loopback binds, and each server's page token.
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Bind, call `ready` with the address actually bound, and serve until Ctrl-C
/// or SIGTERM; unsaved work is saved before returning. For the CLI, which
/// should not need an async runtime of its own.
pub fn run_blocking(
    cfg: ReviewConfig,
    addr: std::net::SocketAddr,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ReviewError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ReviewError::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ReviewError::Input(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ReviewError::Internal(e.to_string()))?;
        let app = App::new(cfg)?;
        ready(bound);
        serve(listener, app, shutdown_signal())
            .await
            .map_err(|e| ReviewError::Internal(format!("server: {e}")))
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
