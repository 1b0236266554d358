//! `DIR/.tasks/<K>.jsonl`: one file per shard K, one JSON object per line,
//! appended (never rewritten) by the task that holds shard K, and by its
//! resubmissions. It is the only record of failures (a failed case has no
//! folder of outputs), of cases a task was killed in, and of which list of
//! cases each task sliced.
//!
//! Each event is written with a single `write` on a file opened for
//! appending, so lines of two processes given the same shard by mistake do not
//! interleave on a local file system; a torn last line (a task killed while
//! writing) is skipped when reading.

use super::shard::Shard;
use super::{unix_now, BatchError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const TASKS_DIR: &str = ".tasks";

/// What happened to one case in one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Segmented and written.
    Ok,
    /// Outputs already complete: not recomputed.
    Skipped,
    /// Another live task holds the case's lock.
    Busy,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TaskEvent {
    Start {
        unix_s: f64,
        /// None: not a job array task (the whole list in one process).
        shard: Option<Shard>,
        list_hash: String,
        cases_total: usize,
        cases_in_shard: usize,
        host: String,
        pid: u32,
        job: Option<String>,
        software: String,
    },
    CaseStart {
        unix_s: f64,
        case: String,
    },
    Case {
        unix_s: f64,
        case: String,
        status: CaseStatus,
        seconds: Option<f64>,
        error: Option<String>,
    },
    End {
        unix_s: f64,
        done: usize,
        skipped: usize,
        busy: usize,
        failed: usize,
        seconds: f64,
    },
    /// The task refused to start (another task sliced another list).
    Refused {
        unix_s: f64,
        shard: Option<Shard>,
        list_hash: String,
        reason: String,
    },
}

impl TaskEvent {
    pub fn unix_s(&self) -> f64 {
        match self {
            TaskEvent::Start { unix_s, .. }
            | TaskEvent::CaseStart { unix_s, .. }
            | TaskEvent::Case { unix_s, .. }
            | TaskEvent::End { unix_s, .. }
            | TaskEvent::Refused { unix_s, .. } => *unix_s,
        }
    }

    pub fn case(name: &str, status: CaseStatus, seconds: Option<f64>, error: Option<String>) -> Self {
        TaskEvent::Case {
            unix_s: unix_now(),
            case: name.to_string(),
            status,
            seconds,
            error,
        }
    }
}

/// An open task log.
#[derive(Debug)]
pub struct TaskLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl TaskLog {
    /// The log of `shard` (file `K.jsonl`; `1.jsonl` for a whole-list run)
    /// under `out/.tasks/`, opened for appending.
    pub fn open(out: &Path, shard: Option<Shard>) -> Result<Self, BatchError> {
        let dir = out.join(TASKS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| BatchError::io(&dir, e))?;
        let path = dir.join(format!("{}.jsonl", shard.unwrap_or(Shard::ALL).index));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| BatchError::io(&path, e))?;
        Ok(TaskLog {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event (one line, one write).
    pub fn append(&self, event: &TaskEvent) -> Result<(), BatchError> {
        let mut line = serde_json::to_vec(event).map_err(|e| BatchError::io(&self.path, std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line).map_err(|e| BatchError::io(&self.path, e))
    }
}

/// Every task log under `out/.tasks/`: (file, events in file order). Lines
/// that do not parse (torn by a kill) are skipped.
pub fn read_task_logs(out: &Path) -> Result<Vec<(PathBuf, Vec<TaskEvent>)>, BatchError> {
    let dir = out.join(TASKS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BatchError::io(&dir, e)),
    };
    let mut logs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| BatchError::io(&dir, e))?.path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| BatchError::io(&path, e))?;
        let events = text
            .lines()
            .filter_map(|l| serde_json::from_str::<TaskEvent>(l).ok())
            .collect();
        logs.push((path, events));
    }
    logs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(logs)
}

/// Refuse to mix tasks that sliced different case lists into one output
/// folder: a job array's tasks must all read the same manifest, or some cases
/// would belong to no shard. Whole-list runs (no shard) are free to differ,
/// as they cover their list alone.
pub fn check_same_list(out: &Path, shard: Shard, hash: &str) -> Result<(), BatchError> {
    for (path, events) in read_task_logs(out)? {
        for e in events.iter().rev() {
            if let TaskEvent::Start {
                shard: Some(other),
                list_hash,
                job,
                ..
            } = e
            {
                if list_hash != hash {
                    return Err(BatchError::ListChanged {
                        log: path.clone(),
                        message: format!(
                            "task {other}{} sliced another list of cases (hash {list_hash}) than this task {shard} (hash {hash}): the manifest changed between the tasks of this output folder, so some cases would belong to no shard. Resubmit every task with one manifest; if the change is deliberate, move {} aside first (finished cases stay done)",
                            job.as_ref().map_or(String::new(), |j| format!(" (job {j})")),
                            out.join(TASKS_DIR).display()
                        ),
                    });
                }
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(shard: Option<Shard>, hash: &str) -> TaskEvent {
        TaskEvent::Start {
            unix_s: unix_now(),
            shard,
            list_hash: hash.into(),
            cases_total: 4,
            cases_in_shard: 2,
            host: "h".into(),
            pid: 1,
            job: Some("9".into()),
            software: "test".into(),
        }
    }

    #[test]
    fn events_round_trip_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Shard::new(2, 4).unwrap();
        let log = TaskLog::open(dir.path(), Some(s)).unwrap();
        assert!(log.path().ends_with(".tasks/2.jsonl"));
        log.append(&start(Some(s), "aa")).unwrap();
        log.append(&TaskEvent::case("p1", CaseStatus::Failed, Some(1.5), Some("bad".into()))).unwrap();
        std::fs::OpenOptions::new().append(true).open(log.path()).unwrap().write_all(b"{\"event\":\"ca").unwrap();
        let logs = read_task_logs(dir.path()).unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].1.len(), 2);
        assert!(matches!(&logs[0].1[1], TaskEvent::Case { status: CaseStatus::Failed, case, .. } if case == "p1"));
    }

    #[test]
    fn a_task_refuses_another_list_but_not_whole_list_runs() {
        let dir = tempfile::tempdir().unwrap();
        let s1 = Shard::new(1, 2).unwrap();
        TaskLog::open(dir.path(), None).unwrap().append(&start(None, "other")).unwrap();
        check_same_list(dir.path(), s1, "aa").unwrap();
        TaskLog::open(dir.path(), Some(s1)).unwrap().append(&start(Some(s1), "aa")).unwrap();
        let s2 = Shard::new(2, 2).unwrap();
        check_same_list(dir.path(), s2, "aa").unwrap();
        let e = check_same_list(dir.path(), s2, "bb").unwrap_err().to_string();
        assert!(e.contains("1.jsonl") && e.contains("task 1/2 (job 9)") && e.contains("manifest changed"), "{e}");
    }
}
