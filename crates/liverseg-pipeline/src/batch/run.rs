//! The loop over a batch's cases.

use super::cases::CaseEntry;
use super::lock::{Acquire, CaseLock, Holder};
use super::tasklog::{CaseStatus, TaskEvent, TaskLog};
use crate::write::{outputs_complete, REPORT_JSON};
use crate::{
    segment_dyn, write_outputs, InputInfo, OutputFormats, OutputSource, ProbabilityModel, Report,
    SegmentOptions, Stage,
};
use liverseg_io::{read_image, Format, ReadOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Read one CT, segment it and write its outputs into `dir` as a group.
/// Returns the report and the seconds it took, reading included.
pub fn segment_case(
    input: &Path,
    dir: &Path,
    model: &dyn ProbabilityModel,
    options: &SegmentOptions,
    formats: &OutputFormats,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> crate::Result<(Report, f64)> {
    let t0 = Instant::now();
    let read = read_image(input, &ReadOptions::default())?;
    if formats.needs_dicom() && read.info.format != Format::DicomSeries {
        return Err(crate::Error::param(
            "format",
            format!(
                "dicom-seg, rtstruct and overview outputs need a DICOM series input ({} is {})",
                input.display(),
                read.info.format.name()
            ),
        ));
    }
    let read_s = t0.elapsed().as_secs_f64();
    let mut seg = segment_dyn(&read.volume, model, options, progress)?;
    seg.report.set_time("read", read_s);
    // The reader's warnings and choice of series travel with the result.
    seg.report.input = Some(InputInfo::from_read(&read));
    let source = OutputSource {
        ct: &read.volume,
        // The series the reader chose, so the DICOM outputs refer to exactly
        // the images segmented, whatever else the folder holds.
        dicom_series: read.dicom.as_ref().map(|d| &d.series),
    };
    write_outputs(dir, &seg, formats, &source)?;
    Ok((seg.report, t0.elapsed().as_secs_f64()))
}

/// How a batch runs.
pub struct BatchOptions<'a> {
    /// Cases go to `out/<case>/`.
    pub out: &'a Path,
    pub formats: &'a OutputFormats,
    pub options: &'a SegmentOptions,
    /// Cases segmented at the same time.
    pub jobs: usize,
    /// Redo cases whose outputs are complete.
    pub force: bool,
    /// A case lock not refreshed for this long is taken over (its holder is
    /// presumed dead); holders refresh theirs every quarter of it.
    pub stale_after: Duration,
    /// Who this process is, in locks and messages: the task ("2/8") and the
    /// scheduler's job id.
    pub task: Option<String>,
    pub job: Option<String>,
}

/// What happened to one case.
#[derive(Debug)]
pub enum CaseOutcome {
    Done { report: Box<Report>, seconds: f64 },
    /// Outputs were complete; the report when it could be read.
    Skipped { report: Option<Box<Report>> },
    /// Another live task is writing this case.
    Busy { holder: String },
    Failed { error: String },
}

impl CaseOutcome {
    pub fn status(&self) -> CaseStatus {
        match self {
            CaseOutcome::Done { .. } => CaseStatus::Ok,
            CaseOutcome::Skipped { .. } => CaseStatus::Skipped,
            CaseOutcome::Busy { .. } => CaseStatus::Busy,
            CaseOutcome::Failed { .. } => CaseStatus::Failed,
        }
    }
}

/// Progress of a batch, for a front end (all methods may be called from
/// several worker threads).
pub trait BatchProgress: Sync {
    fn case_started(&self, _index: usize, _case: &CaseEntry) {}
    fn stage(&self, _index: usize, _stage: Stage, _done: usize, _total: usize) {}
    fn case_finished(&self, _index: usize, _case: &CaseEntry, _outcome: &CaseOutcome) {}
}

/// No progress display.
impl BatchProgress for () {}

pub(crate) fn read_report(dir: &Path) -> Option<Box<Report>> {
    let bytes = std::fs::read(dir.join(REPORT_JSON)).ok()?;
    serde_json::from_slice(&bytes).ok().map(Box::new)
}

/// Segment `cases` into `options.out`, `options.jobs` at a time, in list
/// order. Each case: skipped when its outputs are complete (unless `force`),
/// else locked, segmented, written as a group, unlocked. Events go to `log`
/// when given (a failure to log is reported on the outcome, not fatal: the
/// outputs are what matter). Returns one outcome per case, in list order.
pub fn run_batch(
    cases: &[CaseEntry],
    model: &dyn ProbabilityModel,
    options: &BatchOptions,
    log: Option<&TaskLog>,
    progress: &dyn BatchProgress,
) -> Vec<CaseOutcome> {
    let me = Holder::me(options.task.clone(), options.job.clone());
    let held: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let finished = AtomicBool::new(false);
    let results: Mutex<Vec<Option<CaseOutcome>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let note = |event: TaskEvent| {
        if let Some(log) = log {
            // Losing a log line must not lose a case's outputs.
            if let Err(e) = log.append(&event) {
                eprintln!("liverseg: warning: {e}");
            }
        }
    };
    let run_one = |i: usize, case: &CaseEntry| -> CaseOutcome {
        let dir = options.out.join(&case.name);
        if !options.force && outputs_complete(&dir, options.formats) {
            // Best effort: a lock left by a holder killed after its last write.
            let _ = CaseLock::clear_stale(&dir, &me, options.stale_after);
            return CaseOutcome::Skipped {
                report: read_report(&dir),
            };
        }
        let lock = match CaseLock::acquire(&dir, &me, options.stale_after) {
            Ok(Acquire::Acquired(lock)) => lock,
            Ok(Acquire::Busy(holder)) => return CaseOutcome::Busy { holder },
            Err(e) => {
                return CaseOutcome::Failed {
                    error: format!("{}: cannot take the case's lock: {e}", dir.display()),
                }
            }
        };
        // Another task may have finished the case while we waited for the lock.
        if !options.force && outputs_complete(&dir, options.formats) {
            return CaseOutcome::Skipped {
                report: read_report(&dir),
            };
        }
        remove_stale_staging(&dir);
        held.lock().unwrap_or_else(|p| p.into_inner()).push(lock.path().to_path_buf());
        note(TaskEvent::CaseStart {
            unix_s: super::unix_now(),
            case: case.name.clone(),
        });
        progress.case_started(i, case);
        let mut stage = |s: Stage, done: usize, total: usize| progress.stage(i, s, done, total);
        let r = segment_case(&case.input, &dir, model, options.options, options.formats, &mut stage);
        held.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| p != lock.path());
        drop(lock);
        match r {
            Ok((report, seconds)) => CaseOutcome::Done {
                report: Box::new(report),
                seconds,
            },
            Err(e) => {
                // A case that failed before writing anything leaves no
                // empty folder behind (remove_dir only removes empty ones).
                let _ = std::fs::remove_dir(&dir);
                CaseOutcome::Failed {
                    error: case_error_line(&case.input, &e),
                }
            }
        }
    };
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(case) = cases.get(i) else { break };
        let outcome = run_one(i, case);
        let (seconds, error) = match &outcome {
            CaseOutcome::Done { seconds, .. } => (Some(*seconds), None),
            CaseOutcome::Failed { error } => (None, Some(error.clone())),
            CaseOutcome::Busy { holder } => (None, Some(format!("held by {holder}"))),
            CaseOutcome::Skipped { .. } => (None, None),
        };
        note(TaskEvent::case(&case.name, outcome.status(), seconds, error));
        progress.case_finished(i, case, &outcome);
        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
    };
    // Refresh held locks so that tasks elsewhere do not take them over.
    let beat = (options.stale_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
    let heartbeat = || {
        let mut last = Instant::now();
        while !finished.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= beat {
                for p in held.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    let _ = CaseLock::touch(p);
                }
                last = Instant::now();
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(heartbeat);
        let workers: Vec<_> = (0..options.jobs.max(1).min(cases.len().max(1)))
            .map(|_| s.spawn(worker))
            .collect();
        for w in workers {
            let _ = w.join();
        }
        finished.store(true, Ordering::SeqCst);
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|o| {
            o.unwrap_or(CaseOutcome::Failed {
                error: "the worker segmenting this case stopped unexpectedly".into(),
            })
        })
        .collect()
}

/// One line naming the input (once) and every cause, for a case's error in
/// task logs and on the console.
pub fn case_error_line(input: &Path, e: &crate::Error) -> String {
    let line = liverseg_io::error_line(e);
    let shown = input.display().to_string();
    if line.contains(&shown) {
        line
    } else {
        format!("{shown}: {line}")
    }
}

/// Staging folders of a writer that was killed mid-write (we hold the lock,
/// so no one else is writing here).
fn remove_stale_staging(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".liverseg-staging-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
