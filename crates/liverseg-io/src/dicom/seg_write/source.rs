//! The CT series a derived object (SEG, RTSTRUCT) refers to: instance UIDs and
//! positions per slice, the series/study/frame-of-reference UIDs, the grid, and
//! the patient and study attributes to copy.
//!
//! A `SourceSeries` is made by the image reader from the series it chose
//! ([`crate::dicom::read_series`] returns it in `ReadOutput::dicom`), so the
//! writers refer to exactly the images and grid the mask was computed on: one
//! series-selection rule (`dicom::choose`) and one stack-geometry derivation
//! (`dicom::stack_geometry`) serve both. [`crate::dicom::select_series`] runs
//! the same selection without decoding pixels, for callers that hold a mask
//! but not the read.
use crate::Result;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use liverseg_volume::vec3::cross;
use liverseg_volume::Geometry;
use std::path::PathBuf;

/// One image of the source series, in the volume's z order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSlice {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    /// ImagePositionPatient (mm, LPS).
    pub position: [f64; 3],
    /// The file it was read from (empty for [`SourceSeries::synthetic`]).
    pub file: PathBuf,
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
    /// SeriesDescription of the source (may be empty).
    pub series_description: String,
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
    /// The grid the reader built for this series (gantry tilt kept as shear).
    pub grid: Geometry,
    pub patient_study: PatientStudy,
    /// What had to be made up (UIDs missing from anonymised sources).
    pub warnings: Vec<String>,
    /// Why derived objects cannot refer to this series slice by slice (a
    /// resampled stack, multi-frame source images, mixed frames of reference);
    /// the writers refuse with this message. `None` = writable.
    pub not_referenceable: Option<String>,
}

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_string())
}

/// Patient and study attributes of one header of the chosen series.
pub(crate) fn patient_study_of(obj: &InMemDicomObject) -> PatientStudy {
    let t = |tag: Tag| get_str(obj, tag).unwrap_or_default();
    PatientStudy {
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
    }
}

/// The reader's chosen stack as a source series. `slices` are the chosen
/// images in z order, `grid` and `regular` what `dicom::stack_geometry` made of them.
pub(crate) fn from_stack(slices: &[crate::dicom::header::Slice], grid: Geometry, regular: bool, patient_study: PatientStudy) -> SourceSeries {
    let first = &slices[0];
    let mut not_referenceable = None;
    if !regular {
        not_referenceable = Some(
            "the series was resampled onto a regular grid (missing slices or uneven spacing), so the mask's slices are not the source images; \
             DICOM-SEG and RTSTRUCT need one mask slice per source image"
                .to_string(),
        );
    } else if first.multi_frame {
        not_referenceable = Some("multi-frame source images are not supported as a SEG/RTSTRUCT reference (one slice per file expected)".to_string());
    } else if let Some(s) = slices.iter().find(|s| s.study_uid != first.study_uid || s.frame_of_reference != first.frame_of_reference) {
        not_referenceable = Some(format!("the series mixes studies or frames of reference ({} and {})", first.path.display(), s.path.display()));
    }
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
    let iop = first.iop.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    SourceSeries {
        study_instance_uid: or_new(&first.study_uid, "StudyInstanceUID"),
        series_instance_uid: or_new(&first.series_uid, "SeriesInstanceUID"),
        frame_of_reference_uid: or_new(&first.frame_of_reference, "FrameOfReferenceUID"),
        series_description: first.series_description.clone(),
        slices: slices
            .iter()
            .map(|s| SourceSlice {
                sop_class_uid: s.sop_class.clone(),
                sop_instance_uid: s.sop_instance.clone(),
                position: s.ipp.unwrap_or([0.0; 3]),
                file: s.path.as_ref().clone(),
            })
            .collect(),
        orientation: iop,
        pixel_spacing: first.pixel_spacing.unwrap_or([1.0, 1.0]),
        rows: first.rows as usize,
        columns: first.cols as usize,
        slice_thickness: first.slice_thickness.filter(|v| v.is_finite() && *v > 0.0),
        grid,
        patient_study,
        warnings,
        not_referenceable,
    }
}

impl SourceSeries {
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
                    file: PathBuf::new(),
                })
                .collect(),
            orientation: [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]],
            pixel_spacing: [sp[1], sp[0]],
            rows: ny,
            columns: nx,
            slice_thickness: Some(sp[2]),
            series_description: "synthetic".into(),
            grid: geometry.clone(),
            patient_study: PatientStudy { patient_name: "Phantom^Synthetic".into(), patient_id: "SYNTHETIC".into(), ..Default::default() },
            warnings: Vec::new(),
            not_referenceable: None,
        }
    }

    /// The sampling grid of the series, as the reader built it.
    pub fn geometry(&self) -> Result<Geometry> {
        Ok(self.grid.clone())
    }

    /// Unit normal of the slices (row x column direction).
    pub fn normal(&self) -> [f64; 3] {
        let iop = self.orientation;
        cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]])
    }

    /// Whether `geometry` samples exactly this series: same size, in-plane
    /// directions and spacing, and slice k at the position of source image k.
    pub fn check_grid(&self, geometry: &Geometry) -> std::result::Result<(), String> {
        if let Some(why) = &self.not_referenceable {
            return Err(why.clone());
        }
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
