//! `liverseg node`: a DICOM node that receives CT series (C-STORE SCP, also
//! answering C-ECHO), segments each series once it is complete, and sends the
//! result objects (DICOM-SEG / RTSTRUCT) back by C-STORE.
//!
//! Decisions:
//! * Storage layout under the storage folder: `<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`
//!   (UIDs only; no patient data in names), `tmp/` for instances being received,
//!   `queue/{pending,running,done,failed}/<job>.json`, `results/<job>/` for the
//!   processor's output and `results/<job>.log` for its stdout/stderr.
//! * Received instances are streamed into `tmp/` and renamed into the series folder
//!   only when complete, so a half-received file never appears there; an aborted
//!   association drops its temporary file.
//! * A series is ready when every association that delivered to it was released
//!   (A-RELEASE), or after `quiet_period` without a new instance. An aborted
//!   association (A-ABORT, dropped TCP, timeout) starts nothing: its complete
//!   instances stay and are processed with a later released association that
//!   delivers to the series, or after the quiet period.
//! * A series with instances not yet in a job carries a `.pending` marker file
//!   (caller AE and address), so a restart does not forget it: at start such series
//!   are picked up again and become ready after the quiet period.
//! * Processing runs a subprocess (default: `liverseg segment`), so a crash or an
//!   out-of-memory kill of the segmentation cannot take the node down. Every
//!   `*.dcm` it leaves in its output folder is sent.
//! * Logs carry counts, UIDs and AE titles, never patient name, ID or birth date.

mod dimse;
mod error;
pub mod queue;
mod scp;
pub mod scu;
mod tracker;
mod worker;

pub use dimse::{CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE, VERIFICATION};
pub use scu::Destination;
pub use error::NodeError;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where results are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyTo {
    /// Keep results in the storage folder only.
    Nowhere,
    /// A fixed C-STORE SCP.
    Fixed(Destination),
    /// The AE that sent the series, at its IP address and this port (a C-STORE
    /// request does not tell on which port the caller listens).
    Caller { port: u16 },
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub ae_title: String,
    /// Address to listen on; port 0 picks a free one (tests).
    pub bind: SocketAddr,
    /// Calling AE titles allowed to associate; empty = any.
    pub allowed_callers: Vec<String>,
    pub storage: PathBuf,
    /// Series processed at the same time (worker threads; 0 = receive only).
    pub concurrency: usize,
    pub quiet_period: Duration,
    /// Processor command: program and arguments; `{input}` and `{output}` in any
    /// argument are replaced by the series folder and the result folder.
    pub processor: Vec<String>,
    pub processor_timeout: Duration,
    pub reply_to: ReplyTo,
    /// Send retries after the first attempt, waiting `retry_backoff`, then twice
    /// as long each time.
    pub send_retries: u32,
    pub retry_backoff: Duration,
    /// Idle time after which an association is dropped (treated as aborted).
    pub association_timeout: Duration,
    pub max_pdu_length: u32,
}

impl NodeConfig {
    /// Defaults for everything but the storage folder and the processor.
    pub fn new(storage: PathBuf, processor: Vec<String>) -> Self {
        NodeConfig {
            ae_title: "LIVERSEG".into(),
            bind: SocketAddr::from(([0, 0, 0, 0], 11112)),
            allowed_callers: Vec::new(),
            storage,
            concurrency: 1,
            quiet_period: Duration::from_secs(60),
            processor,
            processor_timeout: Duration::from_secs(3600),
            reply_to: ReplyTo::Nowhere,
            send_retries: 3,
            retry_backoff: Duration::from_secs(5),
            association_timeout: Duration::from_secs(300),
            max_pdu_length: 65536,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let ae_ok = |a: &str| {
            !a.trim().is_empty()
                && a.len() <= 16
                && a.chars()
                    .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\')
        };
        if !ae_ok(&self.ae_title) {
            return Err(format!(
                "AE title {:?} must be 1 to 16 printable ASCII characters without backslash",
                self.ae_title
            ));
        }
        if let Some(bad) = self.allowed_callers.iter().find(|a| !ae_ok(a)) {
            return Err(format!("calling AE title {bad:?} must be 1 to 16 printable ASCII characters without backslash"));
        }
        if let ReplyTo::Fixed(d) = &self.reply_to {
            if !ae_ok(&d.ae_title) {
                return Err(format!(
                    "destination AE title {:?} must be 1 to 16 printable ASCII characters",
                    d.ae_title
                ));
            }
        }
        if self.processor.is_empty() || self.processor[0].trim().is_empty() {
            return Err("the processor command is empty".into());
        }
        if self.quiet_period.is_zero() {
            return Err("the quiet period must be longer than 0 s".into());
        }
        Ok(())
    }
}

static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Print one log line on stderr. Callers pass counts, UIDs and AE titles only.
pub(crate) fn log(msg: &str) {
    let secs = queue::unix_now();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!("{h:02}:{m:02}:{s:02}Z liverseg node: {msg}");
    if let Some(v) = CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        v.push(msg.to_string());
    }
}

/// Keep a copy of every log line from now on (tests check that no patient data
/// is logged).
#[doc(hidden)]
pub fn capture_logs() {
    CAPTURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Vec::new);
}

#[doc(hidden)]
pub fn captured_logs() -> Vec<String> {
    CAPTURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// State shared by the listener, the association threads, the timer and the workers.
pub(crate) struct Shared {
    pub config: NodeConfig,
    pub queue: queue::Queue,
    pub tracker: Mutex<tracker::Tracker>,
    pub stop: AtomicBool,
    /// Wakes workers when a job is queued.
    pub work: (Mutex<()>, Condvar),
}

impl Shared {
    pub fn tmp_dir(&self) -> PathBuf {
        self.config.storage.join("tmp")
    }
    pub fn notify_work(&self) {
        let _g = self.work.0.lock().unwrap_or_else(|e| e.into_inner());
        self.work.1.notify_all();
    }
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A running node.
pub struct NodeHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn storage(&self) -> &Path {
        &self.shared.config.storage
    }

    /// Stop accepting associations, let running jobs finish, and return. Queued
    /// jobs and received series stay on disk for the next start.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.notify_work();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Run until the process is killed (the CLI). Killing is safe: see the module doc.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Open the storage, recover interrupted work, start listening and processing.
pub fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    config.validate().map_err(NodeError::Config)?;
    let storage = &config.storage;
    std::fs::create_dir_all(storage).map_err(|e| NodeError::storage(storage, e))?;
    for d in ["tmp", "results"] {
        std::fs::create_dir_all(storage.join(d)).map_err(|e| NodeError::storage(storage.join(d), e))?;
    }
    // Whatever is in tmp/ was being received when the node stopped: incomplete.
    let mut dropped = 0;
    for e in std::fs::read_dir(storage.join("tmp"))
        .map_err(|e| NodeError::storage(storage.join("tmp"), e))?
        .flatten()
    {
        if std::fs::remove_file(e.path()).is_ok() {
            dropped += 1;
        }
    }
    let (queue, recovered) = queue::Queue::open(&storage.join("queue"))
        .map_err(|e| NodeError::storage(storage.join("queue"), e))?;
    let mut tracker = tracker::Tracker::new(storage.clone(), config.quiet_period);
    let unfinished = tracker.recover();
    log(&format!(
        "storage {}: {} queued job(s) ({} interrupted, back in the queue), {} series received but not yet queued, {} partial instance(s) dropped",
        storage.display(),
        queue.list("pending").map(|l| l.len()).unwrap_or(0),
        recovered,
        unfinished,
        dropped
    ));
    let listen = |source| NodeError::Listen { addr: config.bind.to_string(), source };
    let listener = TcpListener::bind(config.bind).map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    let shared = Arc::new(Shared {
        config,
        queue,
        tracker: Mutex::new(tracker),
        stop: AtomicBool::new(false),
        work: (Mutex::new(()), Condvar::new()),
    });
    log(&format!(
        "AE {} listening on {addr}; callers: {}; {} worker(s); quiet period {} s",
        shared.config.ae_title,
        if shared.config.allowed_callers.is_empty() {
            "any".to_string()
        } else {
            shared.config.allowed_callers.join(", ")
        },
        shared.config.concurrency,
        shared.config.quiet_period.as_secs_f64()
    ));
    let mut threads = Vec::new();
    {
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("node-listen".into())
                .spawn(move || scp::listen(listener, s))
                .map_err(NodeError::Thread)?,
        );
    }
    {
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("node-timer".into())
                .spawn(move || tracker::timer(s))
                .map_err(NodeError::Thread)?,
        );
    }
    for i in 0..shared.config.concurrency {
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("node-worker-{i}"))
                .spawn(move || worker::run(s))
                .map_err(NodeError::Thread)?,
        );
    }
    Ok(NodeHandle {
        addr,
        shared,
        threads,
    })
}
