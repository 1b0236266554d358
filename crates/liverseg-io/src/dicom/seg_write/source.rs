//! The CT series a derived object (SEG, RTSTRUCT) refers to: instance UIDs and
//! positions per slice, the series/study/frame-of-reference UIDs, and the patient
//! and study attributes to copy. Read from headers only (pixel data never loaded).
use crate::{Error, Result};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use liverseg_volume::Geometry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One image of the source series, in the volume's z order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSlice {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    /// ImagePositionPatient (mm, LPS).
    pub position: [f64; 3],
}

/// Patient and study attributes copied verbatim into derived objects. Empty string
/// = absent in the source (written as an empty Type 2 attribute). `Debug` does not
/// print them: they are patient data.
#[derive(Clone, Default, PartialEq)]
pub struct PatientStudy {
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub study_id: String,
    pub accession_number: String,
    pub referring_physician_name: String,
    /// SpecificCharacterSet of the source, so copied names keep their encoding.
    pub specific_character_set: String,
}

impl std::fmt::Debug for PatientStudy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientStudy { <patient data not shown> }")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceSeries {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    /// Sorted by position along the slice normal (row x column direction), the
    /// order of the volume's z axis.
    pub slices: Vec<SourceSlice>,
    /// ImageOrientationPatient: row direction (along columns index i), column
    /// direction (along rows index j).
    pub orientation: [f64; 6],
    /// PixelSpacing in DICOM order: between rows, between columns (mm).
    pub pixel_spacing: [f64; 2],
    pub rows: usize,
    pub columns: usize,
    pub slice_thickness: Option<f64>,
    pub patient_study: PatientStudy,
    /// What had to be made up (UIDs missing from anonymised sources).
    pub warnings: Vec<String>,
}

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_string())
}
fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_multi_float64().ok())
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

struct Header {
    path: PathBuf,
    series: String,
    study: String,
    frame_of_reference: String,
    slice: SourceSlice,
    orientation: [f64; 6],
    pixel_spacing: [f64; 2],
    rows: usize,
    columns: usize,
    slice_thickness: Option<f64>,
    patient_study: PatientStudy,
}

fn read_header(path: &Path) -> Result<Option<Header>> {
    if !super::super::looks_like_dicom(path)? {
        return Ok(None);
    }
    let opened = std::panic::catch_unwind(|| dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path));
    let obj = match opened {
        Err(_) => return Err(Error::invalid(path, "the DICOM parser panicked on this file")),
        Ok(Err(e)) => return Err(Error::invalid(path, format!("cannot parse DICOM header: {e}"))),
        Ok(Ok(o)) => o,
    };
    // Anonymised files may blank SOPClassUID/SOPInstanceUID in the data set; the
    // file meta group repeats them.
    let meta_class = obj.meta().media_storage_sop_class_uid().trim_end_matches(['\0', ' ']).to_string();
    let meta_instance = obj.meta().media_storage_sop_instance_uid().trim_end_matches(['\0', ' ']).to_string();
    let obj = obj.into_inner();
    // Images with a patient position only: a series' non-image objects
    // (presentation states, SRs) are skipped.
    let (Some(ipp), Some(iop), Some(ps)) =
        (get_f64s(&obj, tags::IMAGE_POSITION_PATIENT), get_f64s(&obj, tags::IMAGE_ORIENTATION_PATIENT), get_f64s(&obj, tags::PIXEL_SPACING))
    else {
        return Ok(None);
    };
    if ipp.len() != 3 || iop.len() != 6 || ps.len() != 2 || !ipp.iter().chain(&iop).chain(&ps).all(|v| v.is_finite()) || ps.iter().any(|&v| v <= 0.0) {
        return Err(Error::invalid(path, "ImagePositionPatient / ImageOrientationPatient / PixelSpacing malformed"));
    }
    let int = |tag: Tag| get_str(&obj, tag).and_then(|s| s.trim().parse::<usize>().ok());
    let (Some(rows), Some(columns)) = (int(tags::ROWS), int(tags::COLUMNS)) else {
        return Err(Error::invalid(path, "Rows / Columns missing"));
    };
    if let Some(n) = int(tags::NUMBER_OF_FRAMES) {
        if n > 1 {
            return Err(Error::unsupported(path, "multi-frame source images are not supported as a SEG/RTSTRUCT reference (one slice per file expected)"));
        }
    }
    let t = |tag: Tag| get_str(&obj, tag).unwrap_or_default();
    let or_meta = |tag: Tag, meta: &str, name: &str| {
        get_str(&obj, tag).filter(|s| !s.is_empty()).or_else(|| Some(meta.to_string()).filter(|s| !s.is_empty())).ok_or_else(|| Error::invalid(path, format!("{name} missing")))
    };
    Ok(Some(Header {
        path: path.to_path_buf(),
        series: t(tags::SERIES_INSTANCE_UID),
        study: t(tags::STUDY_INSTANCE_UID),
        frame_of_reference: t(tags::FRAME_OF_REFERENCE_UID),
        slice: SourceSlice {
            sop_class_uid: or_meta(tags::SOP_CLASS_UID, &meta_class, "SOPClassUID")?,
            sop_instance_uid: or_meta(tags::SOP_INSTANCE_UID, &meta_instance, "SOPInstanceUID")?,
            position: [ipp[0], ipp[1], ipp[2]],
        },
        orientation: [iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]],
        pixel_spacing: [ps[0], ps[1]],
        rows,
        columns,
        slice_thickness: get_f64s(&obj, tags::SLICE_THICKNESS).and_then(|v| v.first().copied()).filter(|v| v.is_finite() && *v > 0.0),
        patient_study: PatientStudy {
            patient_name: t(tags::PATIENT_NAME),
            patient_id: t(tags::PATIENT_ID),
            patient_birth_date: t(tags::PATIENT_BIRTH_DATE),
            patient_sex: t(tags::PATIENT_SEX),
            study_date: t(tags::STUDY_DATE),
            study_time: t(tags::STUDY_TIME),
            study_id: t(tags::STUDY_ID),
            accession_number: t(tags::ACCESSION_NUMBER),
            referring_physician_name: t(tags::REFERRING_PHYSICIAN_NAME),
            specific_character_set: t(tags::SPECIFIC_CHARACTER_SET),
        },
    }))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

impl SourceSeries {
    /// Read the headers of every DICOM image under `folder` (recursive) and keep
    /// one series: `series_uid`, or the only image series present.
    pub fn from_folder(folder: &Path, series_uid: Option<&str>) -> Result<SourceSeries> {
        let mut files = Vec::new();
        if folder.is_file() {
            files.push(folder.to_path_buf());
        } else {
            walk(folder, &mut files)?;
        }
        let mut by_series: BTreeMap<String, Vec<Header>> = BTreeMap::new();
        for f in &files {
            if let Some(h) = read_header(f)? {
                by_series.entry(h.series.clone()).or_default().push(h);
            }
        }
        let headers = match series_uid {
            Some(uid) => by_series
                .remove(uid.trim())
                .ok_or_else(|| Error::invalid(folder, format!("no image of series {uid} (series found: {})", by_series.keys().cloned().collect::<Vec<_>>().join(", "))))?,
            None => {
                if by_series.len() > 1 {
                    return Err(Error::Ambiguous {
                        path: folder.to_path_buf(),
                        message: format!(
                            "{} image series in this folder; choose one by SeriesInstanceUID: {}",
                            by_series.len(),
                            by_series.iter().map(|(k, v)| format!("{k} ({} images)", v.len())).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                by_series.into_values().next().ok_or_else(|| Error::invalid(folder, "no DICOM image with a patient position found"))?
            }
        };
        Self::from_headers(folder, headers)
    }

    fn from_headers(folder: &Path, mut headers: Vec<Header>) -> Result<SourceSeries> {
        let first = &headers[0];
        let (iop, ps, rows, cols) = (first.orientation, first.pixel_spacing, first.rows, first.columns);
        for h in &headers {
            let same_iop = (0..6).all(|a| (h.orientation[a] - iop[a]).abs() < 1e-4);
            let same_ps = (0..2).all(|a| (h.pixel_spacing[a] - ps[a]).abs() <= 1e-4 * ps[a]);
            if !same_iop || !same_ps || h.rows != rows || h.columns != cols {
                return Err(Error::invalid(&h.path, "the series mixes image orientations, pixel spacings or sizes; it is not one volume"));
            }
            if h.study != first.study || h.frame_of_reference != first.frame_of_reference {
                return Err(Error::invalid(&h.path, "the series mixes studies or frames of reference"));
            }
        }
        let normal = cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
        if (dot(normal, normal).sqrt() - 1.0).abs() > 1e-3 {
            return Err(Error::invalid(&first.path, "ImageOrientationPatient is not two orthonormal directions"));
        }
        headers.sort_by(|a, b| dot(a.slice.position, normal).total_cmp(&dot(b.slice.position, normal)));
        for w in headers.windows(2) {
            if (dot(w[1].slice.position, normal) - dot(w[0].slice.position, normal)).abs() < 1e-3 {
                return Err(Error::invalid(folder, "two images of the series share one slice position; it is not one volume (several acquisitions or echoes?)"));
            }
        }
        let first = &headers[0];
        // An anonymiser may blank the study/series/frame-of-reference UIDs; a
        // derived object needs them, so new ones are made (it then cannot link to
        // the source study in a PACS, which the warning says).
        let mut warnings = Vec::new();
        let mut or_new = |uid: &str, name: &str| {
            if uid.is_empty() {
                warnings.push(format!("the source series has no {name}; a new one was made, so derived objects will not link to the source in a PACS"));
                super::dcm::new_uid(None)
            } else {
                uid.to_string()
            }
        };
        Ok(SourceSeries {
            study_instance_uid: or_new(&first.study, "StudyInstanceUID"),
            series_instance_uid: or_new(&first.series, "SeriesInstanceUID"),
            frame_of_reference_uid: or_new(&first.frame_of_reference, "FrameOfReferenceUID"),
            warnings,
            orientation: iop,
            pixel_spacing: ps,
            rows,
            columns: cols,
            slice_thickness: first.slice_thickness,
            patient_study: first.patient_study.clone(),
            slices: headers.into_iter().map(|h| h.slice).collect(),
        })
    }

    /// A source series for a volume that has no DICOM of its own (tests,
    /// NIfTI-derived grids): made-up UIDs under `uid_root` (or 2.25 UUID UIDs), CT
    /// Image Storage, one slice per z index at the geometry's positions.
    pub fn synthetic(geometry: &Geometry, uid_root: Option<&str>) -> SourceSeries {
        let uid = || super::dcm::new_uid(uid_root);
        let d = geometry.direction();
        let [nx, ny, nz] = geometry.dims();
        let sp = geometry.spacing();
        SourceSeries {
            study_instance_uid: uid(),
            series_instance_uid: uid(),
            frame_of_reference_uid: uid(),
            slices: (0..nz)
                .map(|k| SourceSlice {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                    sop_instance_uid: uid(),
                    position: geometry.index_to_world([0.0, 0.0, k as f64]),
                })
                .collect(),
            orientation: [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]],
            pixel_spacing: [sp[1], sp[0]],
            rows: ny,
            columns: nx,
            slice_thickness: Some(sp[2]),
            patient_study: PatientStudy { patient_name: "Phantom^Synthetic".into(), patient_id: "SYNTHETIC".into(), ..Default::default() },
            warnings: Vec::new(),
        }
    }

    /// The sampling grid of the series: origin at the first slice, z along the
    /// slice normal with the mean slice spacing.
    pub fn geometry(&self) -> Result<Geometry> {
        let iop = self.orientation;
        let row = [iop[0], iop[1], iop[2]];
        let col = [iop[3], iop[4], iop[5]];
        let normal = cross(row, col);
        let n = self.slices.len();
        let dz = if n > 1 {
            (dot(self.slices[n - 1].position, normal) - dot(self.slices[0].position, normal)) / (n - 1) as f64
        } else {
            self.slice_thickness.unwrap_or(1.0)
        };
        let direction = [[row[0], col[0], normal[0]], [row[1], col[1], normal[1]], [row[2], col[2], normal[2]]];
        Geometry::new([self.columns, self.rows, n], [self.pixel_spacing[1], self.pixel_spacing[0], dz], self.slices[0].position, direction)
            .map_err(|e| Error::invalid(Path::new(&self.series_instance_uid), format!("series geometry: {e}")))
    }

    /// Unit normal of the slices (row x column direction).
    pub fn normal(&self) -> [f64; 3] {
        let iop = self.orientation;
        cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]])
    }

    /// Whether `geometry` samples exactly this series: same size, in-plane
    /// directions and spacing, and slice k at the position of source image k.
    pub fn check_grid(&self, geometry: &Geometry) -> std::result::Result<(), String> {
        let [nx, ny, nz] = geometry.dims();
        if [nx, ny, nz] != [self.columns, self.rows, self.slices.len()] {
            return Err(format!(
                "the mask is {nx} x {ny} x {nz} but the source series is {} x {} x {} (columns x rows x slices): the mask must be on the CT grid",
                self.columns,
                self.rows,
                self.slices.len()
            ));
        }
        let d = geometry.direction();
        let sp = geometry.spacing();
        let iop = self.orientation;
        let dir_ok = (0..3).all(|r| (d[r][0] - iop[r]).abs() < 1e-4 && (d[r][1] - iop[3 + r]).abs() < 1e-4);
        let sp_ok = (sp[0] - self.pixel_spacing[1]).abs() <= 1e-4 * sp[0] && (sp[1] - self.pixel_spacing[0]).abs() <= 1e-4 * sp[1];
        if !dir_ok || !sp_ok {
            return Err("the mask's in-plane orientation or pixel spacing differs from the source series: the mask must be on the CT grid".into());
        }
        // Positions: a twentieth of the slice spacing (DICOM positions are decimal
        // strings; the volume's grid may use a mean spacing).
        let tol = (0.05 * sp[2].abs()).max(1e-3);
        for (k, s) in self.slices.iter().enumerate() {
            let p = geometry.index_to_world([0.0, 0.0, k as f64]);
            let dist = ((0..3).map(|a| (p[a] - s.position[a]).powi(2)).sum::<f64>()).sqrt();
            if dist > tol {
                return Err(format!("slice {k} of the mask lies {dist:.3} mm from source image {} of the series: the mask must be on the CT grid", k + 1));
            }
        }
        Ok(())
    }
}
