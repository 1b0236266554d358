//! The clinical record of one case by one reviewer (score, tags, active time,
//! edit count) and the study tables built from all records.

use crate::ReviewError;
use liverseg_io::utc::UtcTime;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};

/// Regions a reviewer corrected: the liver's own parts (where a CNN tends to
/// miss liver), the vessels and lesions at its border, and the organs it
/// touches (where a CNN tends to leak), plus "other". The paper's regions are
/// all kept, so older records stay valid.
pub const TAGS: [&str; 14] = [
    "right lobe / inferior tip",
    "left-lobe tip",
    "dome / diaphragm",
    "IVC",
    "portal vein",
    "hepatic veins",
    "lesion",
    "gallbladder",
    "kidney",
    "heart",
    "stomach",
    "duodenum",
    "colon",
    "other",
];

/// What the CNN got wrong in a tagged region: liver it missed there, or
/// non-liver it leaked into.
pub const TAG_KINDS: [&str; 2] = ["missed", "leaked"];

/// A tag as recorded: `region: kind` (`IVC: leaked`), or the bare region of
/// records made before tags had a kind. None: not a known region or kind.
pub fn parse_tag(tag: &str) -> Option<(&'static str, Option<&'static str>)> {
    let (region, kind) = match tag.rsplit_once(": ") {
        Some((r, k)) => (r, Some(TAG_KINDS.iter().find(|&&x| x == k)?)),
        None => (tag, None),
    };
    let region = TAGS.iter().find(|&&x| x == region)?;
    Some((region, kind.copied()))
}

/// Sort key of a tag: regions in [`TAGS`] order, a bare region first.
pub fn tag_order(tag: &str) -> (usize, usize) {
    match parse_tag(tag) {
        Some((r, k)) => (
            TAGS.iter().position(|x| *x == r).unwrap_or(usize::MAX),
            k.map_or(0, |k| 1 + TAG_KINDS.iter().position(|x| *x == k).unwrap_or(0)),
        ),
        None => (usize::MAX, 0),
    }
}

/// The paper's scoring criteria (Table 3): (scores, expert 1, expert 2).
pub const CRITERIA: [(&str, &str, &str); 7] = [
    (
        "1, 1.5",
        "The CNN segmentation is very bad. A very large amount of adjustment is needed. It is better to segment the liver manually from scratch.",
        "Major corrections are needed. Starting from the CNN segmentation is counterproductive and perceived more time consuming than manual segmentation.",
    ),
    ("2", "", "Major corrections are needed. Using the CNN seems to result in no benefit."),
    ("2.5", "", "Major corrections are needed. The CNN segmentation seems to have minor benefit."),
    (
        "3, 3.5",
        "The CNN segmentation needs limited adjustment and can be used for the clinical application after adjustment.",
        "The CNN segmentation requires moderate corrections, but is deemed a good starting point. Manual adjustment is perceived clearly faster than manual segmentation.",
    ),
    (
        "4",
        "The CNN segmentation needs slight or no adjustment and is ready for the clinical use.",
        "Minor corrections (more than details or glitches) are required, which has limited impact on the volume and consumes substantially less time than manual segmentation.",
    ),
    ("4.5", "", "Minor glitches are changed, which has no expected impact."),
    ("5", "", "No corrections are made. The CNN segmentation is ready for clinical use."),
];

pub fn valid_score(s: f64) -> bool {
    (1.0..=5.0).contains(&s) && (s * 2.0).fract() == 0.0
}

/// Active editing time: the sum of the gaps between consecutive activity
/// events (edits, pointer and key input reported by the browser) that are no
/// longer than `idle`; a longer gap is a pause and counts nothing.
#[derive(Debug, Clone)]
pub struct ActiveClock {
    idle: Duration,
    last: Option<Instant>,
    pub total: Duration,
}

impl ActiveClock {
    pub fn new(idle: Duration, already: Duration) -> Self {
        ActiveClock {
            idle,
            last: None,
            total: already,
        }
    }
    pub fn touch(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            if gap <= self.idle {
                self.total += gap;
            }
        }
        self.last = Some(now);
    }
}

/// The audit record written beside each adjusted mask.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Audit {
    pub case: String,
    pub reviewer: String,
    /// First opened by this reviewer (UTC, RFC 3339).
    pub started_at: String,
    pub saved_at: String,
    pub score: Option<f64>,
    pub tags: Vec<String>,
    pub comment: String,
    pub active_seconds: f64,
    pub edit_count: u64,
    pub volume_ml: f64,
    pub start_volume_ml: f64,
    pub dsc_vs_start: f64,
    pub changed_voxels: u64,
    /// Output files, relative to the output folder.
    pub outputs: Vec<String>,
    pub software: String,
}

/// UTC time as RFC 3339 (`2026-11-26T23:59:01Z`).
pub fn utc_now() -> String {
    format_rfc3339(UtcTime::now())
}

/// `secs` after the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    format_rfc3339(UtcTime::from_unix_secs(secs))
}

fn format_rfc3339(t: UtcTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

use liverseg_io::manifest::csv_field;

/// `liverseg study` inputs from a set of audits: (scores.csv, times.csv, tags.csv).
pub fn study_tables(audits: &[Audit]) -> (String, String, String) {
    let mut scores = String::from("case,reviewer,score\n");
    let mut times = String::from("case,reviewer,task,seconds\n");
    // `kind` is missed or leaked; empty for a tag recorded without one.
    let mut tags = String::from("case,reviewer,region,kind\n");
    for a in audits {
        let (c, r) = (csv_field(&a.case), csv_field(&a.reviewer));
        if let Some(s) = a.score {
            scores.push_str(&format!("{c},{r},{s}\n"));
        }
        times.push_str(&format!("{c},{r},adjust,{:.1}\n", a.active_seconds));
        for t in &a.tags {
            let (region, kind) = match parse_tag(t) {
                Some((region, kind)) => (region, kind.unwrap_or("")),
                // Audits are ours, but a hand-edited one must not vanish from the table.
                None => (t.as_str(), ""),
            };
            tags.push_str(&format!("{c},{r},{},{kind}\n", csv_field(region)));
        }
    }
    (scores, times, tags)
}

/// Every `audit/*.json` under `dir` (one reviewer's folder), sorted by case.
pub fn read_audits(dir: &Path) -> Result<Vec<Audit>, ReviewError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ReviewError::Internal(format!("{}: {e}", dir.display()))),
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&p)
            .map_err(|e| ReviewError::Internal(format!("{}: {e}", p.display())))?;
        let a: Audit = serde_json::from_str(&text)
            .map_err(|e| ReviewError::Internal(format!("{}: {e}", p.display())))?;
        out.push(a);
    }
    out.sort_by(|a, b| a.case.cmp(&b.case));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_gaps_are_not_counted() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = ActiveClock::new(s(30), s(100));
        c.touch(t0);
        c.touch(t0 + s(10));
        c.touch(t0 + s(25));
        // A 5-minute coffee break.
        c.touch(t0 + s(325));
        c.touch(t0 + s(330));
        assert_eq!(c.total, s(100 + 10 + 15 + 5));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_737_599), "2026-11-26T23:59:59Z");
    }

    #[test]
    fn scores_and_tables() {
        assert!(valid_score(1.0) && valid_score(3.5) && valid_score(5.0));
        assert!(
            !valid_score(0.5) && !valid_score(3.25) && !valid_score(5.5) && !valid_score(f64::NAN)
        );
        let a = Audit {
            case: "c1".into(),
            reviewer: "alice".into(),
            started_at: String::new(),
            saved_at: String::new(),
            score: Some(3.5),
            tags: vec!["IVC".into(), "portal vein: leaked".into(), "right lobe / inferior tip: missed".into()],
            comment: String::new(),
            active_seconds: 75.26,
            edit_count: 3,
            volume_ml: 0.0,
            start_volume_ml: 0.0,
            dsc_vs_start: 1.0,
            changed_voxels: 0,
            outputs: vec![],
            software: String::new(),
        };
        let (s, t, g) = study_tables(&[a]);
        assert_eq!(s, "case,reviewer,score\nc1,alice,3.5\n");
        assert_eq!(t, "case,reviewer,task,seconds\nc1,alice,adjust,75.3\n");
        assert_eq!(
            g,
            "case,reviewer,region,kind\nc1,alice,IVC,\nc1,alice,portal vein,leaked\nc1,alice,right lobe / inferior tip,missed\n"
        );
    }

    #[test]
    fn tags_name_a_region_and_what_went_wrong_there() {
        assert_eq!(parse_tag("IVC"), Some(("IVC", None)));
        assert_eq!(parse_tag("kidney: leaked"), Some(("kidney", Some("leaked"))));
        assert_eq!(parse_tag("dome / diaphragm: missed"), Some(("dome / diaphragm", Some("missed"))));
        for bad in ["", "liver", "kidney: wrong", "kidney:leaked", "kidney: ", ": leaked", "IVC: leaked: missed"] {
            assert_eq!(parse_tag(bad), None, "{bad:?}");
        }
        let mut t = vec!["other", "IVC: leaked", "right lobe / inferior tip: missed", "IVC", "IVC: missed"];
        t.sort_by_key(|t| tag_order(t));
        assert_eq!(t, ["right lobe / inferior tip: missed", "IVC", "IVC: missed", "IVC: leaked", "other"]);
    }
}
