//! Many cases into one output folder, on one machine or as the tasks of a
//! job array (Slurm, Kubernetes Indexed Jobs) on many machines sharing a file
//! system:
//!
//! - [`cases`]: the list of cases (a manifest, or inputs), their folder names,
//!   and a hash of the list so tasks can tell they read the same one;
//! - [`shard`]: the K-th of N disjoint slices of that list, from `--shard K/N`
//!   or from the array task's environment;
//! - [`lock`]: one writer per case folder, even when two tasks were given
//!   the same shard by mistake;
//! - [`tasklog`]: `DIR/.tasks/<K>.jsonl`, what each task did;
//! - [`run_batch`]: the loop over cases (skip complete ones, lock, segment,
//!   write as a group, log);
//! - [`summary`]: one cohort table from every case's `report.json` and the
//!   task logs.
//!
//! Nothing is shared between tasks but the per-case folders and the per-task
//! logs: no database, no coordinator, so a task can die at any point and a
//! resubmission does only what is missing.

pub mod cases;
pub mod lock;
mod run;
pub mod shard;
pub mod summary;
pub mod tasklog;

pub use cases::{CaseEntry, ListedInput};
pub use run::{case_error_line, run_batch, segment_case, BatchOptions, BatchProgress, CaseOutcome};
pub use shard::Shard;
pub use tasklog::{TaskEvent, TaskLog};

use std::path::PathBuf;

/// What batch work can refuse; each names the file or the option.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest line (1-based) or the whole file is not what we read.
    #[error("{}{}: {message}", path.display(), line.map_or(String::new(), |l| format!(": line {l}")))]
    Manifest {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// Two inputs give one case folder, or a name cannot be a folder.
    #[error("{message}")]
    CaseName { message: String },
    /// `--shard`, `--shard-count` or the array task's environment.
    #[error("{0}")]
    Shard(String),
    /// An output file (atomic write) could not be written.
    #[error(transparent)]
    Write(#[from] liverseg_io::Error),
    /// Another task of this output folder read a different list of cases.
    #[error("{}: {message}", log.display())]
    ListChanged { log: PathBuf, message: String },
}

impl BatchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BatchError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Seconds since the Unix epoch, for logs and locks (wall clock: tasks on
/// different machines compare them, so not `Instant`).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name, which with the process id says who holds a lock.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown-host".into())
}
