//! What a read found, for the people who look at a result: the format, for
//! DICOM the series chosen and the others found beside it, and every warning
//! of the reader. `segment` writes it as the `input` block of `report.json`
//! and prints it, `review` shows it on the page, the DICOM node logs it: one
//! value and one wording ([`InputInfo::lines`]) for all of them, so a warning
//! cannot reach one and be lost on the way to another.
//!
//! It never holds patient names or IDs, nor the input path (folder names often
//! hold them): it may go into logs.

use crate::dicom::OtherSeries;
use crate::ReadOutput;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The input block: the format read, for DICOM the series chosen and the
/// others found beside it, and every reader warning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// `nifti1`, `nifti2`, `analyze`, `metaimage` or `dicom-series`.
    pub format: String,
    /// DICOM: the series read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<InputSeries>,
    /// DICOM: what else the folder held (other stacks and phases, localizers,
    /// secondary captures, reports...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_series: Option<OtherSeriesSummary>,
    /// Every warning of the reader (gantry tilt, qform used, series chosen among
    /// several, irregular spacing resampled, unreadable files skipped, made-up UIDs...).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The DICOM series a CT was read from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputSeries {
    /// As the files hold it; empty when absent (anonymised), the warnings then
    /// say the DICOM outputs carry a made-up one.
    #[serde(default)]
    pub series_instance_uid: String,
    #[serde(default)]
    pub series_description: String,
    /// Images in the series read (slices of the volume).
    #[serde(default)]
    pub images: usize,
}

/// The series found beside the one read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtherSeriesSummary {
    /// Number of entries in `series`.
    #[serde(default)]
    pub count: usize,
    /// Entries per kind ("localizer", "CT axial", "secondary capture", "structured report", ...).
    #[serde(default)]
    pub kinds: BTreeMap<String, usize>,
    /// One entry per series and kind: `kind`, `series_instance_uid`,
    /// `series_description`, `count` (images or objects).
    #[serde(default)]
    pub series: Vec<OtherSeries>,
}

impl InputInfo {
    /// The input block of a read: the only place where the reader's warnings
    /// and the series' own (made-up UIDs) are put together.
    pub fn from_read(read: &ReadOutput) -> Self {
        let mut warnings = read.info.warnings.clone();
        let (series, other_series) = match &read.dicom {
            None => (None, None),
            Some(d) => {
                // UIDs made up for an anonymised source are warnings too: the
                // derived objects will not link to the CT in a PACS.
                warnings.extend(d.series.warnings.iter().cloned());
                let mut kinds = BTreeMap::new();
                for o in &d.others {
                    *kinds.entry(o.kind.clone()).or_insert(0) += 1;
                }
                (
                    Some(InputSeries {
                        series_instance_uid: d.series_uid_in_files.clone(),
                        series_description: d.series.series_description.clone(),
                        images: d.series.slices.len(),
                    }),
                    Some(OtherSeriesSummary { count: d.others.len(), kinds, series: d.others.clone() }),
                )
            }
        };
        InputInfo { format: read.info.format.name().to_string(), series, other_series, warnings }
    }

    /// DICOM: which series was read and what else was found, in one line
    /// (`read DICOM series <uid> "<description>" (20 images; also found: 1 localizer)`).
    /// `None` for other formats.
    pub fn series_line(&self) -> Option<String> {
        let series = self.series.as_ref()?;
        let others = match &self.other_series {
            Some(o) if o.count > 0 => {
                let kinds: Vec<String> = o.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
                format!("; also found: {}", kinds.join(", "))
            }
            _ => String::new(),
        };
        let uid = if series.series_instance_uid.is_empty() {
            "(no SeriesInstanceUID)"
        } else {
            series.series_instance_uid.as_str()
        };
        Some(format!(
            "read DICOM series {uid} \"{}\" ({} images{others})",
            series.series_description, series.images
        ))
    }

    /// What the console, the review page and the node's log show, in this
    /// order: the series line (DICOM), then one `reader warning: ...` per warning.
    pub fn lines(&self) -> Vec<String> {
        self.series_line()
            .into_iter()
            .chain(self.warnings.iter().map(|w| format!("reader warning: {w}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_series_the_others_by_kind_and_every_warning() {
        let mut kinds = BTreeMap::new();
        kinds.insert("localizer".to_string(), 1);
        kinds.insert("structured report".to_string(), 2);
        let info = InputInfo {
            format: "dicom-series".into(),
            series: Some(InputSeries { series_instance_uid: "1.2.3".into(), series_description: "Abdomen 1.0".into(), images: 20 }),
            other_series: Some(OtherSeriesSummary { count: 3, kinds, series: vec![] }),
            warnings: vec!["gantry tilt of 12.0 degrees kept as a sheared grid".into()],
        };
        assert_eq!(
            info.lines(),
            [
                "read DICOM series 1.2.3 \"Abdomen 1.0\" (20 images; also found: 1 localizer, 2 structured report)",
                "reader warning: gantry tilt of 12.0 degrees kept as a sheared grid",
            ]
        );
        // Anonymised away: said, not an empty UID.
        let mut anon = info.clone();
        anon.series.as_mut().unwrap().series_instance_uid.clear();
        anon.other_series = None;
        assert_eq!(anon.series_line().unwrap(), "read DICOM series (no SeriesInstanceUID) \"Abdomen 1.0\" (20 images)");
        // Not DICOM: warnings only.
        let nifti = InputInfo { format: "nifti1".into(), warnings: vec!["qform used".into()], ..Default::default() };
        assert_eq!(nifti.lines(), ["reader warning: qform used"]);
    }

    #[test]
    fn a_block_from_another_version_still_reads() {
        // report.json written by an older or newer liverseg: missing fields
        // default, unknown ones are ignored (review and the node read it).
        let v: InputInfo = serde_json::from_str(r#"{"format": "dicom-series", "series": {"images": 5}, "future": 1}"#).unwrap();
        assert_eq!(v.series.unwrap().images, 5);
        assert!(v.warnings.is_empty());
    }
}
