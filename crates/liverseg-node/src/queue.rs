//! The persistent job queue: one JSON file per job, in `queue/pending`,
//! `queue/running`, `queue/done` or `queue/failed`. A job changes state only by a
//! rename within one file system, which is atomic, so a crash at any moment
//! leaves each job in exactly one folder; jobs found in `running/` at start were
//! interrupted and go back to `pending/`. Claiming is a rename too, so several
//! workers never take the same job.

use crate::NodeError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const STATES: [&str; 4] = ["pending", "running", "done", "failed"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    /// Sortable (creation time, then a counter): pending jobs run oldest first.
    pub id: String,
    pub study_uid: String,
    pub series_uid: String,
    /// The received series, relative to the storage folder.
    pub series_dir: PathBuf,
    /// Calling AE title and peer IP of the association that sent the last instance
    /// (where results go back to in reply-to-caller mode).
    pub calling_ae: String,
    pub peer_ip: Option<String>,
    /// Instances in the series folder when the job was queued.
    pub instances: usize,
    pub created_unix_s: u64,
    /// Times a worker started this job (more than one after a restart).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub processor: Option<ProcessorRun>,
    /// Files sent (names under the result folder) and the destination.
    #[serde(default)]
    pub sent: Vec<String>,
    #[serde(default)]
    pub destination: Option<String>,
    /// Each failed send attempt, in order.
    #[serde(default)]
    pub send_errors: Vec<String>,
    /// Why the job failed (only in `failed/`).
    #[serde(default)]
    pub error: Option<String>,
    /// Why the series was not processed (a job in `done/` without a processor
    /// run): it holds no image stack to segment, only a scout (localizer), a
    /// dose report or screen captures, e.g. "no image series to segment (1 localizers)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessorRun {
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// Output `*.dcm` files (names in the result folder).
    pub outputs: Vec<String>,
    /// Processor stdout/stderr, relative to the storage folder.
    pub log: PathBuf,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn new_job_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:010}-{:09}-{:04}-{}",
        t.as_secs(),
        t.subsec_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed) % 10000,
        std::process::id()
    )
}

pub struct Queue {
    root: PathBuf,
}

impl Queue {
    /// Create the folders and put interrupted jobs (in `running/`) back in
    /// `pending/`. Returns the queue and the number of jobs recovered.
    pub fn open(root: &Path) -> std::io::Result<(Queue, usize)> {
        for s in STATES {
            std::fs::create_dir_all(root.join(s))?;
        }
        let q = Queue {
            root: root.to_path_buf(),
        };
        let mut recovered = 0;
        for name in q.list("running")? {
            std::fs::rename(q.path("running", &name), q.path("pending", &name))?;
            recovered += 1;
        }
        Ok((q, recovered))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, state: &str, file: &str) -> PathBuf {
        self.root.join(state).join(file)
    }

    /// Job file names in one state, oldest first. Temporaries of the atomic writer
    /// (`.liverseg-*.partial`) are not jobs.
    pub fn list(&self, state: &str) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join(state))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    pub fn read(&self, state: &str, name: &str) -> Result<Job, NodeError> {
        let p = self.path(state, name);
        let bytes = std::fs::read(&p).map_err(|e| NodeError::storage(&p, e))?;
        serde_json::from_slice(&bytes).map_err(|source| NodeError::JobFile { path: p, source })
    }

    fn write(&self, state: &str, job: &Job) -> Result<(), NodeError> {
        let p = self.path(state, &format!("{}.json", job.id));
        let text = serde_json::to_vec_pretty(job).map_err(|source| NodeError::JobFile { path: p.clone(), source })?;
        Ok(liverseg_io::atomic::write_atomic(&p, |w| w.write_all(&text))?)
    }

    pub fn submit(&self, job: &Job) -> Result<(), NodeError> {
        self.write("pending", job)
    }

    /// A pending job for this series already exists (it will read the series
    /// folder when it runs, so a second one would only repeat the work).
    pub fn has_pending(&self, series_uid: &str) -> bool {
        self.list("pending").unwrap_or_default().iter().any(|n| {
            self.read("pending", n)
                .map(|j| j.series_uid == series_uid)
                .unwrap_or(false)
        })
    }

    /// Take the oldest pending job (moved to `running/`).
    pub fn claim(&self) -> Option<Job> {
        for name in self.list("pending").ok()? {
            if std::fs::rename(self.path("pending", &name), self.path("running", &name)).is_err() {
                continue; // another worker took it
            }
            match self.read("running", &name) {
                Ok(mut job) => {
                    job.attempts += 1;
                    let _ = self.write("running", &job);
                    return Some(job);
                }
                Err(e) => {
                    crate::log(&format!("queue: unreadable job file moved to failed/: {e}"));
                    let _ =
                        std::fs::rename(self.path("running", &name), self.path("failed", &name));
                }
            }
        }
        None
    }

    /// Save the progress of a running job.
    pub fn update(&self, job: &Job) -> Result<(), NodeError> {
        self.write("running", job)
    }

    /// Record the final state and move the job out of `running/`.
    pub fn finish(&self, job: &Job, ok: bool) -> Result<(), NodeError> {
        self.write("running", job)?;
        let name = format!("{}.json", job.id);
        let to = if ok { "done" } else { "failed" };
        std::fs::rename(self.path("running", &name), self.path(to, &name))
            .map_err(|e| NodeError::storage(self.path(to, &name), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(series: &str) -> Job {
        Job {
            id: new_job_id(),
            study_uid: "1.2".into(),
            series_uid: series.into(),
            series_dir: PathBuf::from("1.2").join(series),
            calling_ae: "SCU".into(),
            peer_ip: Some("127.0.0.1".into()),
            instances: 3,
            created_unix_s: unix_now(),
            attempts: 0,
            processor: None,
            sent: vec![],
            destination: None,
            send_errors: vec![],
            error: None,
            skipped: None,
        }
    }

    #[test]
    fn interrupted_jobs_go_back_to_pending_and_are_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let (q, recovered) = Queue::open(dir.path()).unwrap();
        assert_eq!(recovered, 0);
        let a = job("1.2.3");
        let b = job("1.2.4");
        q.submit(&a).unwrap();
        q.submit(&b).unwrap();
        assert!(q.has_pending("1.2.3") && !q.has_pending("9.9"));
        let first = q.claim().unwrap();
        assert_eq!(first.id, a.id, "oldest first");
        assert_eq!(first.attempts, 1);
        drop(q);
        // "Crash" with `a` running: reopening puts it back.
        let (q, recovered) = Queue::open(dir.path()).unwrap();
        assert_eq!(recovered, 1);
        assert_eq!(q.list("pending").unwrap().len(), 2);
        let again = q.claim().unwrap();
        assert_eq!((again.id.as_str(), again.attempts), (a.id.as_str(), 2));
        q.finish(&again, true).unwrap();
        let other = q.claim().unwrap();
        assert_eq!(other.id, b.id);
        q.finish(&other, false).unwrap();
        assert!(q.claim().is_none());
        assert_eq!(
            (
                q.list("done").unwrap().len(),
                q.list("failed").unwrap().len(),
                q.list("running").unwrap().len()
            ),
            (1, 1, 0)
        );
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..50).map(|_| new_job_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
