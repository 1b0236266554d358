//! Where a review is saved, laid out so that `liverseg study` reads it as is:
//!
//! ```text
//! OUT/original/<case>.nii.gz            the masks the reviewers started from
//! OUT/<reviewer>/adjusted/<case>.nii.gz the corrected masks (a study set)
//! OUT/<reviewer>/seg/<case>.dcm         DICOM-SEG, when the CT is a DICOM series
//! OUT/<reviewer>/rtstruct/<case>.dcm    RTSTRUCT, likewise
//! OUT/<reviewer>/audit/<case>.json      who, when, score, tags, time, edits
//! OUT/<reviewer>/{scores,times,tags}.csv   this reviewer's study tables
//! OUT/{scores,times,tags}.csv           every reviewer's, for --scores/--times/--tags
//! ```
//!
//! e.g. `liverseg study --set cnn=OUT/original --set alice=OUT/alice/adjusted
//! --set bob=OUT/bob/adjusted --scores OUT/scores.csv --times OUT/times.csv
//! --tags OUT/tags.csv --out study/`.
//!
//! Every file is written atomically. Saves of one case by one reviewer take an
//! exclusive lock on `audit/.<case>.lock` (across processes too), and the
//! shared tables are rebuilt from all audits under `OUT/.review.lock`, so a
//! rebuild never drops another reviewer's rows.

use crate::record::{read_audits, study_tables, utc_now, Audit};
use crate::ReviewError;
use liverseg_io::atomic::write_atomic;
use liverseg_io::dicom::rtstruct::{write_rtstruct, RtStructWriteOptions};
use liverseg_io::dicom::seg_write::{write_seg, AlgorithmType, SegWriteOptions, SourceSeries};
use liverseg_volume::{DynVolume, Geometry, Mask};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Folder names under OUT that are not reviewers.
pub const RESERVED: [&str; 1] = ["original"];

fn io(path: &Path, e: impl std::fmt::Display) -> ReviewError {
    ReviewError::Internal(format!("{}: {e}", path.display()))
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub out: PathBuf,
    pub reviewer: String,
}

impl Layout {
    pub fn reviewer_dir(&self) -> PathBuf {
        self.out.join(&self.reviewer)
    }
    pub fn adjusted(&self, case: &str) -> PathBuf {
        self.reviewer_dir()
            .join("adjusted")
            .join(format!("{case}.nii.gz"))
    }
    pub fn audit(&self, case: &str) -> PathBuf {
        self.reviewer_dir()
            .join("audit")
            .join(format!("{case}.json"))
    }
    pub fn original(&self, case: &str) -> PathBuf {
        self.out.join("original").join(format!("{case}.nii.gz"))
    }
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.out)
            .unwrap_or(p)
            .to_string_lossy()
            .to_string()
    }

    pub fn create_dirs(&self) -> Result<(), ReviewError> {
        for d in ["adjusted", "audit"] {
            let p = self.reviewer_dir().join(d);
            std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
        }
        let p = self.out.join("original");
        std::fs::create_dir_all(&p).map_err(|e| io(&p, e))
    }

    /// The saved mask and audit of a case, if this reviewer saved it before.
    pub fn load_saved(
        &self,
        case: &str,
        grid: &Geometry,
    ) -> Result<Option<(Mask, Option<Audit>)>, ReviewError> {
        let p = self.adjusted(case);
        if !p.exists() {
            return Ok(None);
        }
        let (mask, _) = liverseg_io::read_mask(&p, Some(grid), &Default::default())
            .map_err(|e| ReviewError::Internal(e.to_string()))?;
        if !mask.geometry().same_grid(grid) {
            return Err(ReviewError::Internal(format!(
                "{}: saved mask is not on the CT's grid",
                p.display()
            )));
        }
        let a = self.audit(case);
        let audit = match std::fs::read_to_string(&a) {
            Ok(t) => Some(serde_json::from_str(&t).map_err(|e| io(&a, e))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&a, e)),
        };
        Ok(Some((mask, audit)))
    }
}

/// Hold an exclusive advisory lock on `path` (created if absent) while `f` runs.
fn with_lock<T>(path: &Path, f: impl FnOnce() -> Result<T, ReviewError>) -> Result<T, ReviewError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    file.lock().map_err(|e| io(path, e))?;
    let out = f();
    let _ = file.unlock();
    out
}

pub struct SaveJob<'a> {
    pub layout: &'a Layout,
    pub case: &'a str,
    /// `None`: the mask did not change since it was last written; only the
    /// audit and the tables are rewritten.
    pub mask: Option<&'a Mask>,
    pub start: &'a Mask,
    /// The CT series, when the CT was read from DICOM (SEG/RTSTRUCT are written then).
    pub dicom: Option<&'a SourceSeries>,
    pub audit: Audit,
}

/// Save one case; returns the audit as written.
pub fn save(job: SaveJob) -> Result<Audit, ReviewError> {
    let l = job.layout;
    l.create_dirs()?;
    let lock = l
        .reviewer_dir()
        .join("audit")
        .join(format!(".{}.lock", job.case));
    let audit = with_lock(&lock, || {
        let mut outputs = vec![];
        let original = l.original(job.case);
        if !original.exists() {
            // Same content whoever writes it; the atomic rename makes a race harmless.
            write_mask(&original, job.start)?;
        }
        let adjusted = l.adjusted(job.case);
        if let Some(m) = job.mask {
            write_mask(&adjusted, m)?;
        }
        outputs.push(l.rel(&adjusted));
        if let Some(src) = job.dicom {
            for kind in ["seg", "rtstruct"] {
                let d = l.reviewer_dir().join(kind);
                std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
                let p = d.join(format!("{}.dcm", job.case));
                let Some(mask) = job.mask else {
                    if p.exists() {
                        outputs.push(l.rel(&p));
                    }
                    continue;
                };
                let r = if kind == "seg" {
                    let o = SegWriteOptions {
                        algorithm: AlgorithmType::SemiAutomatic,
                        content_creator_name: job.audit.reviewer.clone(),
                        series_description: "Liver segmentation (liverseg, reviewed)".into(),
                        ..Default::default()
                    };
                    write_seg(&p, mask, src, &o)
                } else {
                    let o = RtStructWriteOptions {
                        algorithm: AlgorithmType::SemiAutomatic,
                        series_description: "Liver contours (liverseg, reviewed)".into(),
                        ..Default::default()
                    };
                    write_rtstruct(&p, mask, src, &o)
                };
                r.map_err(|e| ReviewError::Internal(e.to_string()))?;
                outputs.push(l.rel(&p));
            }
        }
        let mut audit = job.audit;
        audit.saved_at = utc_now();
        audit.outputs = outputs;
        let path = l.audit(job.case);
        outputs_json(&path, &audit)?;
        Ok(audit)
    })?;
    rebuild_tables(l)?;
    Ok(audit)
}

fn write_mask(path: &Path, mask: &Mask) -> Result<(), ReviewError> {
    liverseg_io::write_image(path, &DynVolume::U8(mask.clone()))
        .map_err(|e| ReviewError::Internal(e.to_string()))
}

fn outputs_json(path: &Path, audit: &Audit) -> Result<(), ReviewError> {
    let text = serde_json::to_string_pretty(audit).map_err(|e| io(path, e))?;
    write_atomic(path, |w| w.write_all(text.as_bytes()))
        .map_err(|e| ReviewError::Internal(e.to_string()))
}

/// Rewrite this reviewer's tables and the shared ones from the audits on disk.
pub fn rebuild_tables(l: &Layout) -> Result<(), ReviewError> {
    let write = |dir: &Path, audits: &[Audit]| -> Result<(), ReviewError> {
        let (s, t, g) = study_tables(audits);
        for (name, text) in [("scores.csv", s), ("times.csv", t), ("tags.csv", g)] {
            write_atomic(&dir.join(name), |w| w.write_all(text.as_bytes()))
                .map_err(|e| ReviewError::Internal(e.to_string()))?;
        }
        Ok(())
    };
    write(
        &l.reviewer_dir(),
        &read_audits(&l.reviewer_dir().join("audit"))?,
    )?;
    with_lock(&l.out.join(".review.lock"), || {
        let mut all = vec![];
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&l.out)
            .map_err(|e| io(&l.out, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    !n.to_string_lossy().starts_with('.')
                        && !RESERVED.contains(&n.to_string_lossy().as_ref())
                })
            })
            .collect();
        dirs.sort();
        for d in dirs {
            all.extend(read_audits(&d.join("audit"))?);
        }
        write(&l.out, &all)
    })
}
