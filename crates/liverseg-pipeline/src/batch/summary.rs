//! One cohort table from an output folder: every `DIR/<case>/report.json`,
//! and from the task logs what has no report: failures and cases a task was
//! killed in. Written as `DIR/summary.csv` and `DIR/summary.json`.
//!
//! A case's status:
//! - `done`: its `report.json` reads (the outputs are complete: the writer
//!   moves the report into place last);
//! - `failed`: no report, and its last event in the task logs is a failure
//!   (the error is kept);
//! - `interrupted`: no report, and a task started it without finishing it
//!   (killed, or still running);
//! - `missing`: listed in the manifest, but no task has touched it.

use super::cases::CaseEntry;
use super::run::read_report;
use super::tasklog::{read_task_logs, CaseStatus, TaskEvent, TASKS_DIR};
use super::BatchError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SUMMARY_CSV: &str = "summary.csv";
pub const SUMMARY_JSON: &str = "summary.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryStatus {
    Done,
    Failed,
    Interrupted,
    Missing,
}

impl SummaryStatus {
    pub fn name(self) -> &'static str {
        match self {
            SummaryStatus::Done => "done",
            SummaryStatus::Failed => "failed",
            SummaryStatus::Interrupted => "interrupted",
            SummaryStatus::Missing => "missing",
        }
    }
}

/// One row of the cohort table.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRow {
    pub case: String,
    pub status: SummaryStatus,
    pub liver_volume_ml: Option<f64>,
    pub liver_mass_g: Option<f64>,
    /// Quality flags raised (names).
    pub flags: Vec<String>,
    pub model: Option<String>,
    pub threshold: Option<f32>,
    /// Wall time of the run that wrote the outputs (from the task log, else
    /// the report's stage times).
    pub seconds: Option<f64>,
    /// Which task log last spoke of the case, e.g. `.tasks/2.jsonl`.
    pub task_log: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub cases: usize,
    pub done: usize,
    /// Done with at least one quality flag.
    pub flagged: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// In the manifest, never started (0 without a manifest).
    pub missing: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub counts: Counts,
    pub cases: Vec<CaseRow>,
    /// Task logs read, and the number of tasks that refused to start.
    pub task_logs: usize,
    pub refused_tasks: usize,
}

/// Build the summary of `out`. With `manifest`, its cases come first in its
/// order and those never touched are `missing`; cases found only in the
/// folder follow by name.
pub fn summarize(out: &Path, manifest: Option<&[CaseEntry]>) -> Result<Summary, BatchError> {
    if !out.is_dir() {
        return Err(BatchError::io(
            out,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such output folder"),
        ));
    }
    // Last word of the task logs on each case: (time, log, event).
    let logs = read_task_logs(out)?;
    let mut last: BTreeMap<String, (f64, PathBuf, TaskEvent)> = BTreeMap::new();
    let mut ok_seconds: BTreeMap<String, f64> = BTreeMap::new();
    let mut refused = 0;
    for (path, events) in &logs {
        for e in events {
            let name = match e {
                TaskEvent::CaseStart { case, .. } => case,
                TaskEvent::Case { case, status, seconds, .. } => {
                    if *status == CaseStatus::Ok {
                        if let Some(s) = seconds {
                            ok_seconds.insert(case.clone(), *s);
                        }
                    }
                    // Skips and busy marks say nothing new about a case.
                    if matches!(status, CaseStatus::Skipped | CaseStatus::Busy) {
                        continue;
                    }
                    case
                }
                TaskEvent::Refused { .. } => {
                    refused += 1;
                    continue;
                }
                _ => continue,
            };
            let t = e.unix_s();
            if last.get(name).is_none_or(|(t0, _, _)| t >= *t0) {
                last.insert(name.clone(), (t, path.clone(), e.clone()));
            }
        }
    }
    // Case folders on disk (hidden ones are ours: .tasks, staging).
    let mut on_disk = Vec::new();
    let entries = std::fs::read_dir(out).map_err(|e| BatchError::io(out, e))?;
    for e in entries {
        let e = e.map_err(|e| BatchError::io(out, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && e.path().is_dir() {
            on_disk.push(name);
        }
    }
    on_disk.sort();
    let mut names: Vec<String> = manifest.map_or(Vec::new(), |m| m.iter().map(|c| c.name.clone()).collect());
    let listed: std::collections::HashSet<String> = names.iter().cloned().collect();
    let mut extra: Vec<String> = on_disk
        .into_iter()
        .chain(last.keys().cloned())
        .filter(|n| !listed.contains(n))
        .collect();
    extra.sort();
    extra.dedup();
    names.extend(extra);

    let rel = |p: &Path| {
        format!(
            "{TASKS_DIR}/{}",
            p.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned())
        )
    };
    let mut rows = Vec::new();
    let mut counts = Counts::default();
    for name in names {
        let dir = out.join(&name);
        let report = read_report(&dir);
        let said = last.get(&name);
        let status = match (&report, said.map(|s| &s.2)) {
            (Some(_), _) => SummaryStatus::Done,
            (None, Some(TaskEvent::Case { status: CaseStatus::Failed, .. })) => SummaryStatus::Failed,
            (None, Some(_)) => SummaryStatus::Interrupted,
            (None, None) if listed.contains(&name) => SummaryStatus::Missing,
            // A folder of ours without a report and never logged: an
            // interrupted write from before task logs, or a stray folder.
            (None, None) if dir.join(super::lock::LOCK_FILE).exists() => SummaryStatus::Interrupted,
            (None, None) => continue,
        };
        let error = match said.map(|s| &s.2) {
            Some(TaskEvent::Case { error, .. }) if status == SummaryStatus::Failed => error.clone(),
            _ => None,
        };
        let row = CaseRow {
            liver_volume_ml: report.as_ref().map(|r| r.liver_volume_ml),
            liver_mass_g: report.as_ref().map(|r| r.liver_mass_g),
            flags: report.as_ref().map_or(Vec::new(), |r| r.flags.iter().map(|f| f.name.clone()).collect()),
            model: report.as_ref().map(|r| r.model_id.clone()),
            threshold: report.as_ref().map(|r| r.threshold),
            seconds: report.as_ref().and_then(|r| {
                ok_seconds
                    .get(&name)
                    .copied()
                    .or_else(|| Some(r.timings_s.iter().map(|t| t.seconds).sum()))
            }),
            task_log: said.map(|s| rel(&s.1)),
            error,
            status,
            case: name,
        };
        counts.cases += 1;
        match status {
            SummaryStatus::Done => {
                counts.done += 1;
                if !row.flags.is_empty() {
                    counts.flagged += 1;
                }
            }
            SummaryStatus::Failed => counts.failed += 1,
            SummaryStatus::Interrupted => counts.interrupted += 1,
            SummaryStatus::Missing => counts.missing += 1,
        }
        rows.push(row);
    }
    Ok(Summary {
        counts,
        cases: rows,
        task_logs: logs.len(),
        refused_tasks: refused,
    })
}

impl Summary {
    /// The table as CSV (header first; flags joined by `;`).
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let num = |v: Option<f64>, d: usize| v.map_or(String::new(), |v| format!("{v:.d$}"));
        // Writing records into memory cannot fail.
        let _ = w.write_record([
            "case", "status", "liver_volume_ml", "liver_mass_g", "flags", "model", "threshold", "seconds", "task_log", "error",
        ]);
        for r in &self.cases {
            let _ = w.write_record([
                r.case.clone(),
                r.status.name().to_string(),
                num(r.liver_volume_ml, 1),
                num(r.liver_mass_g, 1),
                r.flags.join(";"),
                r.model.clone().unwrap_or_default(),
                r.threshold.map_or(String::new(), |t| format!("{t}")),
                num(r.seconds, 1),
                r.task_log.clone().unwrap_or_default(),
                r.error.clone().unwrap_or_default().replace(['\n', '\r'], " "),
            ]);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// Write `summary.csv` and `summary.json` into `out`, each atomically.
    pub fn write(&self, out: &Path) -> Result<[PathBuf; 2], BatchError> {
        let csv = out.join(SUMMARY_CSV);
        let json = out.join(SUMMARY_JSON);
        let text = self.to_csv();
        liverseg_io::atomic::write_atomic(&csv, |w| w.write_all(text.as_bytes()))?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| BatchError::io(&json, std::io::Error::other(e)))?;
        liverseg_io::atomic::write_atomic(&json, |w| w.write_all(&body))?;
        Ok([csv, json])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::shard::Shard;
    use crate::batch::tasklog::TaskLog;

    #[test]
    fn failures_interruptions_and_missing_cases_come_from_the_logs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let log = TaskLog::open(out, Some(Shard::new(1, 2).unwrap())).unwrap();
        let start = |case: &str| TaskEvent::CaseStart { unix_s: crate::batch::unix_now(), case: case.into() };
        log.append(&start("bad")).unwrap();
        log.append(&TaskEvent::case("bad", CaseStatus::Failed, None, Some("x.nii: not \"NIfTI\", sorry".into()))).unwrap();
        log.append(&start("cut")).unwrap();
        let manifest: Vec<CaseEntry> = ["bad", "cut", "never"]
            .iter()
            .map(|n| CaseEntry { name: n.to_string(), input: format!("/{n}.nii").into() })
            .collect();
        let s = summarize(out, Some(&manifest)).unwrap();
        let status: Vec<_> = s.cases.iter().map(|r| (r.case.as_str(), r.status)).collect();
        assert_eq!(
            status,
            [("bad", SummaryStatus::Failed), ("cut", SummaryStatus::Interrupted), ("never", SummaryStatus::Missing)]
        );
        assert_eq!((s.counts.failed, s.counts.interrupted, s.counts.missing, s.counts.done), (1, 1, 1, 0));
        assert_eq!(s.cases[0].task_log.as_deref(), Some(".tasks/1.jsonl"));
        // The error survives CSV quoting as one field.
        let csv = s.to_csv();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][9], "x.nii: not \"NIfTI\", sorry");
        let [c, j] = s.write(out).unwrap();
        assert!(c.is_file() && j.is_file());
        assert!(summarize(&out.join("nope"), None).is_err());
    }
}
