//! The output files of one case, written as a group: every file is produced
//! in a staging folder inside the output folder first, and moved into place
//! only when all of them succeeded, `report.json` last. A failure (bad DICOM
//! source, full disk) leaves the output folder as it was; `report.json`
//! present means the case is complete.
//!
//! Decision: the NIfTI and DICOM writers of liverseg-io take a path (each is
//! atomic on its own), so they write into the staging folder and the group is
//! committed by renames on the same file system, rather than by
//! `atomic::write_atomic_group`, which would copy every byte a second time.

use crate::{overview, Error, Result, Segmentation};
use liverseg_io::dicom::rtstruct::{write_rtstruct, RtStructWriteOptions};
use liverseg_io::dicom::sc_write::{write_secondary_capture, ScWriteOptions};
use liverseg_io::dicom::seg_write::{write_seg, SegWriteOptions, SourceSeries};
use liverseg_volume::{dyn_dispatch, DynVolume};
use std::path::{Path, PathBuf};

pub const LIVER_NIFTI: &str = "liver.nii.gz";
pub const PROBABILITY_NIFTI: &str = "probability.nii.gz";
pub const REPORT_JSON: &str = "report.json";
pub const OVERVIEW_PNG: &str = "overview.png";
pub const SEG_DCM: &str = "seg.dcm";
pub const RTSTRUCT_DCM: &str = "rtstruct.dcm";
pub const OVERVIEW_DCM: &str = "overview.dcm";

/// Which files to write. `report.json` is always written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormats {
    /// liver.nii.gz (u8, 0/1).
    pub nifti: bool,
    /// seg.dcm: DICOM-SEG on the source series (DICOM input only).
    pub dicom_seg: bool,
    /// rtstruct.dcm: RT Structure Set on the source series (DICOM input only).
    pub rtstruct: bool,
    /// probability.nii.gz (f32, 0..1).
    pub probability: bool,
    /// overview.png.
    pub overview: bool,
    /// overview.dcm: the overview as a DICOM Secondary Capture in the CT's
    /// study, volume and flags drawn (DICOM input only), so a PACS viewer
    /// shows it beside the CT.
    pub overview_dicom: bool,
}

impl Default for OutputFormats {
    fn default() -> Self {
        Self {
            nifti: true,
            dicom_seg: false,
            rtstruct: false,
            probability: false,
            overview: true,
            overview_dicom: false,
        }
    }
}

impl OutputFormats {
    /// Parse `nifti,dicom-seg,rtstruct,overview` (comma-separated, any order;
    /// `seg` and `dicom-seg` are the same; `overview` is the DICOM Secondary
    /// Capture). The probability map and overview.png are separate switches
    /// and keep their values from `self`.
    pub fn with_list(mut self, list: &str) -> std::result::Result<Self, String> {
        self.nifti = false;
        self.dicom_seg = false;
        self.rtstruct = false;
        self.overview_dicom = false;
        for item in list
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
        {
            match item.as_str() {
                "nifti" | "nii" => self.nifti = true,
                "dicom-seg" | "seg" => self.dicom_seg = true,
                "rtstruct" | "rt-struct" => self.rtstruct = true,
                "overview" => self.overview_dicom = true,
                other => {
                    return Err(format!(
                        "unknown output format {other:?} (known: nifti, dicom-seg, rtstruct, overview)"
                    ))
                }
            }
        }
        if !(self.nifti || self.dicom_seg || self.rtstruct || self.overview_dicom) {
            return Err(
                "no output format given (known: nifti, dicom-seg, rtstruct, overview)".into(),
            );
        }
        Ok(self)
    }

    pub fn needs_dicom(&self) -> bool {
        self.dicom_seg || self.rtstruct || self.overview_dicom
    }

    /// The file names this selection writes, `report.json` last.
    pub fn file_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.nifti, LIVER_NIFTI),
            (self.probability, PROBABILITY_NIFTI),
            (self.dicom_seg, SEG_DCM),
            (self.rtstruct, RTSTRUCT_DCM),
            (self.overview_dicom, OVERVIEW_DCM),
            (self.overview, OVERVIEW_PNG),
        ] {
            if on {
                v.push(name);
            }
        }
        v.push(REPORT_JSON);
        v
    }
}

/// What the outputs are made from besides the segmentation.
pub struct OutputSource<'a> {
    /// The CT the segmentation was made from (for the overview).
    pub ct: &'a DynVolume,
    /// The DICOM series the CT was read from, for SEG/RTSTRUCT: the reader's
    /// own choice (`ReadOutput::dicom`), so the outputs refer to exactly the
    /// images the mask was computed on, whatever else the folder holds.
    pub dicom_series: Option<&'a SourceSeries>,
}

/// Whether `dir` holds a complete set of outputs for `formats` (every file
/// present and `report.json` readable).
pub fn outputs_complete(dir: &Path, formats: &OutputFormats) -> bool {
    formats.file_names().iter().all(|n| dir.join(n).is_file())
        && std::fs::read(dir.join(REPORT_JSON))
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::Report>(&b).ok())
            .is_some()
}

/// Write the outputs of `seg` into `dir` (created if needed) as one group.
/// Returns the paths written, `report.json` last.
pub fn write_outputs(
    dir: &Path,
    seg: &Segmentation,
    formats: &OutputFormats,
    source: &OutputSource,
) -> Result<Vec<PathBuf>> {
    if formats.probability && seg.probability.is_none() {
        return Err(Error::param(
            "probability",
            "the probability map was not kept by segment (SegmentOptions::probability)",
        ));
    }
    if formats.needs_dicom() && source.dicom_series.is_none() {
        return Err(Error::param(
            "format",
            "dicom-seg, rtstruct and overview outputs need a DICOM series as input",
        ));
    }
    if !source.ct.geometry().same_grid(seg.liver.geometry()) {
        return Err(Error::param(
            "source",
            "the CT is not on the segmentation's grid",
        ));
    }
    let io = |path: &Path, e: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".liverseg-staging-")
        .tempdir_in(dir)
        .map_err(|e| io(dir, e))?;
    let st = |name: &str| staging.path().join(name);

    // Check the DICOM source first: a series the outputs cannot refer to
    // (resampled, multi-frame, another grid) fails before any work.
    let series = match source.dicom_series {
        Some(series) if formats.needs_dicom() => {
            series
                .check_grid(seg.liver.geometry())
                .map_err(|message| Error::param("source", message))?;
            Some(series)
        }
        _ => None,
    };
    if formats.nifti {
        liverseg_io::write_image(&st(LIVER_NIFTI), &DynVolume::from(seg.liver.clone()))?;
    }
    if let (true, Some(p)) = (formats.probability, &seg.probability) {
        liverseg_io::write_image(&st(PROBABILITY_NIFTI), &DynVolume::from(p.clone()))?;
    }
    if let Some(series) = series {
        let model = &seg.report.model_id;
        let texts = DicomTexts::of(&seg.report);
        if formats.dicom_seg {
            let defaults = SegWriteOptions::default();
            let opts = SegWriteOptions {
                algorithm_name: format!("liverseg {model}"),
                series_description: texts.series_description(&defaults.series_description),
                content_description: texts.short.clone(),
                segment_description: texts.long.clone(),
                ..defaults
            };
            write_seg(&st(SEG_DCM), &seg.liver, series, &opts)?;
        }
        if formats.rtstruct {
            let defaults = RtStructWriteOptions::default();
            let opts = RtStructWriteOptions {
                algorithm_name: format!("liverseg {model}"),
                series_description: texts.series_description(&defaults.series_description),
                structure_set_description: texts.long.clone(),
                roi_description: texts.long.clone(),
                ..defaults
            };
            write_rtstruct(&st(RTSTRUCT_DCM), &seg.liver, series, &opts)?;
        }
        if formats.overview_dicom {
            let (w, h, rgb) = dyn_dispatch!(source.ct, v => overview::render_rgb(v, &seg.liver, &caption(seg)))?;
            let defaults = ScWriteOptions::default();
            let opts = ScWriteOptions {
                series_description: texts.series_description(&defaults.series_description),
                image_comments: texts.long.clone(),
                ..defaults
            };
            write_secondary_capture(&st(OVERVIEW_DCM), w, h, &rgb, series, &opts)?;
        }
    }
    if formats.overview {
        let png =
            dyn_dispatch!(source.ct, v => overview::render_png(v, &seg.liver, &caption(seg)))?;
        std::fs::write(st(OVERVIEW_PNG), png).map_err(|e| io(&st(OVERVIEW_PNG), e))?;
    }
    std::fs::write(st(REPORT_JSON), seg.report.to_json_pretty())
        .map_err(|e| io(&st(REPORT_JSON), e))?;

    let mut written = Vec::new();
    for name in formats.file_names() {
        let target = dir.join(name);
        std::fs::rename(st(name), &target).map_err(|e| io(&target, e))?;
        written.push(target);
    }
    Ok(written)
}

/// What the DICOM outputs say about the result, so that a PACS user sees the
/// quality flags where `report.json` does not travel (issue 18).
struct DicomTexts {
    /// "CHECK flag1,flag2" when any flag was raised, else empty.
    marker: String,
    /// Volume and flag names, for 64-character fields (LO: the SEG's content
    /// description).
    short: String,
    /// Volume, mass, model and each flag with its message (ST, up to 1024
    /// characters: the SEG's segment description, the RTSTRUCT's structure set
    /// and ROI descriptions).
    long: String,
}

impl DicomTexts {
    fn of(r: &crate::Report) -> Self {
        let names: Vec<&str> = r.flags.iter().map(|f| f.name.as_str()).collect();
        let marker = if names.is_empty() {
            String::new()
        } else {
            format!("CHECK {}", names.join(","))
        };
        let volume = format!("liver {:.0} ml", r.liver_volume_ml);
        let short = if names.is_empty() {
            format!("{volume}; no quality flag")
        } else {
            format!("{volume}; {marker}")
        };
        let mut long = format!(
            "Liver {:.0} ml ({:.0} g), model {}.",
            r.liver_volume_ml, r.liver_mass_g, r.model_id
        );
        if r.flags.is_empty() {
            long.push_str(" No quality flag raised.");
        } else {
            long.push_str(" CHECK quality flags:");
            for f in &r.flags {
                long.push_str(&format!(" {}: {}", f.name, f.message));
            }
        }
        Self {
            marker,
            short,
            long,
        }
    }

    /// `base` with the marker in front when a flag was raised: a PACS series
    /// list shows the start of the description (the writer cuts it to 64).
    fn series_description(&self, base: &str) -> String {
        if self.marker.is_empty() {
            base.to_string()
        } else {
            format!("{}: {base}", self.marker)
        }
    }
}

/// Three caption lines for the overview: volume, model, flags.
pub fn caption(seg: &Segmentation) -> Vec<String> {
    let r = &seg.report;
    let first = format!(
        "liver {:.0} ml ({:.0} g), median {} HU",
        r.liver_volume_ml,
        r.liver_mass_g,
        r.liver_hu_median.map_or("-".into(), |h| format!("{h:.0}"))
    );
    let second = format!("model {}, threshold {:.2}", r.model_id, r.threshold);
    let third = if r.flags.is_empty() {
        "quality flags: none".to_string()
    } else {
        format!(
            "quality flags: {}",
            r.flags
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    vec![first, second, third]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HuWindowModel;
    use crate::{segment, PreprocessConfig, SegmentOptions};
    use liverseg_io::ReadOptions;
    use liverseg_phantom::{generate, PhantomConfig};

    fn case() -> (DynVolume, Segmentation) {
        let p = generate(&PhantomConfig {
            dims: [128, 106, 48],
            spacing: [2.7, 2.72, 4.5],
            ..Default::default()
        });
        let model = HuWindowModel {
            config: PreprocessConfig {
                spacing_mm: 2.2,
                ..Default::default()
            },
            ..Default::default()
        };
        let seg = segment(
            &p.ct,
            &model,
            &SegmentOptions {
                probability: true,
                ..Default::default()
            },
            &mut |_, _, _| {},
        )
        .unwrap();
        (DynVolume::from(p.ct), seg)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn formats_parse() {
        let f = OutputFormats::default()
            .with_list("nifti, DICOM-SEG,rtstruct")
            .unwrap();
        assert!(f.nifti && f.dicom_seg && f.rtstruct && f.needs_dicom());
        assert_eq!(
            f.file_names(),
            [
                LIVER_NIFTI,
                SEG_DCM,
                RTSTRUCT_DCM,
                OVERVIEW_PNG,
                REPORT_JSON
            ]
        );
        assert!(OutputFormats::default()
            .with_list("png")
            .unwrap_err()
            .contains("png"));
        assert!(OutputFormats::default().with_list(",").is_err());
        let f = OutputFormats::default().with_list("overview").unwrap();
        assert!(f.overview_dicom && f.needs_dicom() && !f.nifti);
        assert_eq!(f.file_names(), [OVERVIEW_DCM, OVERVIEW_PNG, REPORT_JSON]);
    }

    #[test]
    fn overview_as_a_secondary_capture_in_the_ct_study() {
        let (ct, seg) = case();
        let series = SourceSeries::synthetic(ct.geometry(), None);
        let dir = tempfile::tempdir().unwrap();
        let formats = OutputFormats::default().with_list("overview").unwrap();
        let source = OutputSource {
            ct: &ct,
            dicom_series: Some(&series),
        };
        write_outputs(dir.path(), &seg, &formats, &source).unwrap();
        let path = dir.path().join(OVERVIEW_DCM);
        let obj = dicom_object::open_file(&path).unwrap();
        let get = |t| {
            obj.element(t)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(['\0', ' '])
                .to_string()
        };
        use dicom_dictionary_std::tags;
        assert_eq!(get(tags::SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.7");
        assert_eq!(get(tags::STUDY_INSTANCE_UID), series.study_instance_uid);
        assert_eq!(get(tags::SAMPLES_PER_PIXEL), "3");
        // The same picture as overview.png.
        let (w, h, rgb) = overview::render_rgb(&ct.to_f32(), &seg.liver, &caption(&seg)).unwrap();
        assert_eq!(get(tags::COLUMNS), w.to_string());
        assert_eq!(get(tags::ROWS), h.to_string());
        let pixels = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        assert_eq!(&pixels[..rgb.len()], &rgb[..]);
        if std::process::Command::new("dciodvfy").arg("-h").output().is_err() {
            eprintln!("SKIP overview_as_a_secondary_capture_in_the_ct_study (dciodvfy part): dciodvfy not installed (Debian package dicom3tools)");
            return;
        }
        let o = std::process::Command::new("dciodvfy").arg("-new").arg(&path).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        eprintln!("dciodvfy overview.dcm:\n{text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "dciodvfy errors on overview.dcm:\n{}", errors.join("\n"));
    }

    #[test]
    fn outputs_written_read_back_and_group_failure_leaves_nothing() {
        let (ct, seg) = case();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("case");
        let formats = OutputFormats {
            probability: true,
            ..Default::default()
        };
        let source = OutputSource {
            ct: &ct,
            dicom_series: None,
        };
        let written = write_outputs(&out, &seg, &formats, &source).unwrap();
        assert_eq!(written.last().unwrap(), &out.join(REPORT_JSON));
        assert_eq!(
            entries(&out),
            [LIVER_NIFTI, OVERVIEW_PNG, PROBABILITY_NIFTI, REPORT_JSON]
        );
        assert!(outputs_complete(&out, &formats));
        let (mask, _) =
            liverseg_io::read_mask(&out.join(LIVER_NIFTI), None, &ReadOptions::default()).unwrap();
        assert!(mask.geometry().same_grid(ct.geometry()));
        assert_eq!(mask.data(), seg.liver.data());
        let prob =
            liverseg_io::read_image(&out.join(PROBABILITY_NIFTI), &ReadOptions::default()).unwrap();
        assert_eq!(prob.volume.dtype(), liverseg_volume::DType::F32);
        let report: crate::Report =
            serde_json::from_slice(&std::fs::read(out.join(REPORT_JSON)).unwrap()).unwrap();
        assert_eq!(report.model_id, seg.report.model_id);

        // The overview: a PNG wide enough for three panels, with contour pixels
        // (the contour colour appears only where the liver is drawn).
        let png_bytes = std::fs::read(out.join(OVERVIEW_PNG)).unwrap();
        if let Some(keep) = std::env::var_os("LIVERSEG_KEEP_OVERVIEW") {
            std::fs::write(keep, &png_bytes).unwrap();
        }
        let mut r = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert!(
            info.width > 3 * 100 && info.height > 150,
            "{}x{}",
            info.width,
            info.height
        );
        let contour = buf
            .chunks(3)
            .filter(|p| *p == overview::CONTOUR_RGB)
            .count();
        assert!(contour > 200, "{contour} contour pixels");
        let (_, _, empty_rgb) =
            overview::render_rgb(&ct.to_f32(), &seg.liver.map(|_| 0), &caption(&seg)).unwrap();
        assert_eq!(
            empty_rgb
                .chunks(3)
                .filter(|p| *p == overview::CONTOUR_RGB)
                .count(),
            0
        );

        // Resume check: a missing file makes the set incomplete.
        std::fs::remove_file(out.join(OVERVIEW_PNG)).unwrap();
        assert!(!outputs_complete(&out, &formats));

        // DICOM outputs on a source series of another grid: error, and the
        // output folder gets nothing (no staging folder left either).
        let other = liverseg_volume::Geometry::identity([10, 10, 3], [1.0, 1.0, 2.0]).unwrap();
        let wrong = SourceSeries::synthetic(&other, None);
        let out2 = dir.path().join("case2");
        let dicom = OutputFormats::default()
            .with_list("nifti,dicom-seg")
            .unwrap();
        let e = write_outputs(
            &out2,
            &seg,
            &dicom,
            &OutputSource {
                ct: &ct,
                dicom_series: Some(&wrong),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("CT grid"), "{e}");
        assert!(entries(&out2).is_empty(), "{:?}", entries(&out2));
        // Asking for DICOM outputs without a DICOM input is refused up front.
        let e = write_outputs(
            &out2,
            &seg,
            &dicom,
            &OutputSource {
                ct: &ct,
                dicom_series: None,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("DICOM series"), "{e}");
    }

    /// Issue 18 finding 4 without shared data: a raised flag reaches what a
    /// PACS shows (series descriptions start with "CHECK <flag>") and the
    /// descriptions inside the SEG and RTSTRUCT (volume and the flag's message).
    #[test]
    fn quality_flags_reach_the_dicom_descriptions() {
        let (ct, mut seg) = case();
        seg.report.flags = vec![crate::Flag {
            name: "low_contrast".into(),
            message: "liver barely brighter than muscle".into(),
            value: Some(12.0),
            threshold: 30.0,
            unit: "HU".into(),
        }];
        let series = SourceSeries::synthetic(ct.geometry(), None);
        let dir = tempfile::tempdir().unwrap();
        let formats = OutputFormats::default().with_list("dicom-seg,rtstruct").unwrap();
        let source = OutputSource { ct: &ct, dicom_series: Some(&series) };
        write_outputs(dir.path(), &seg, &formats, &source).unwrap();
        use dicom_dictionary_std::tags;
        let get = |file: &str, path: &[dicom_object::Tag]| -> String {
            let obj = dicom_object::open_file(dir.path().join(file)).unwrap();
            let mut cur: &dicom_object::InMemDicomObject = &obj;
            for t in &path[..path.len() - 1] {
                cur = &cur.element(*t).unwrap().items().unwrap()[0];
            }
            cur.element(path[path.len() - 1]).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
        };
        for file in [SEG_DCM, RTSTRUCT_DCM] {
            let d = get(file, &[tags::SERIES_DESCRIPTION]);
            assert!(d.starts_with("CHECK low_contrast: "), "{file}: {d:?}");
        }
        let ml = format!("liver {:.0} ml", seg.report.liver_volume_ml);
        assert_eq!(get(SEG_DCM, &[tags::CONTENT_DESCRIPTION]), format!("{ml}; CHECK low_contrast"));
        for d in [
            get(SEG_DCM, &[tags::SEGMENT_SEQUENCE, tags::SEGMENT_DESCRIPTION]),
            get(RTSTRUCT_DCM, &[tags::STRUCTURE_SET_DESCRIPTION]),
            get(RTSTRUCT_DCM, &[tags::STRUCTURE_SET_ROI_SEQUENCE, tags::ROI_DESCRIPTION]),
        ] {
            assert!(d.contains("low_contrast: liver barely brighter than muscle"), "{d:?}");
        }
    }

    #[test]
    fn dicom_seg_on_a_synthetic_series() {
        // The SEG writer needs the source headers only; a synthetic series on
        // the CT grid stands in for a folder here (the CLI test uses files).
        let (ct, seg) = case();
        let series = SourceSeries::synthetic(ct.geometry(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SEG_DCM);
        write_seg(&path, &seg.liver, &series, &SegWriteOptions::default()).unwrap();
        let back = liverseg_io::dicom::seg::read_seg(
            &path,
            Some(ct.geometry()),
            liverseg_io::dicom::seg::SegmentChoice::Auto,
        )
        .unwrap();
        assert_eq!(back.mask.data(), seg.liver.data());
    }
}
