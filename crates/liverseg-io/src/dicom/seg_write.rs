//! DICOM Segmentation (BINARY, one segment "Liver") written from a mask on the
//! grid of a CT series, for SIRT planning software (MIM SurePlan, Simplicit90Y,
//! 3D Slicer).
//!
//! Choices:
//! * Frames only for slices with foreground (smaller files; PS3.3 C.8.20.2 lets a
//!   SEG omit empty frames and readers treat missing frames as empty). An empty
//!   mask still gets one (empty) frame on the first slice, since a multi-frame
//!   image needs at least one frame.
//! * Each frame references its CT image (Derivation Image and Source Image
//!   sequences, with Spatial Locations Preserved YES: the frame is that image's
//!   pixel grid) and carries the CT image's own ImagePositionPatient, so a
//!   reader places it on the exact slice.
//! * Pixels are 1 bit, packed continuously across frames, LSB first (PS3.5 8.1.1);
//!   explicit VR little endian, uncompressed.
mod dcm;
pub(crate) mod source;

pub(crate) use dcm::{check_uid_root, code_item, ds, el, item, new_uid, now_da_tm, s, seq, srgb_to_dicom_lab, text, write_part10};
pub use source::{PatientStudy, SourceSeries, SourceSlice};

use crate::{Error, Result};
use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use liverseg_volume::Mask;
use std::path::Path;

pub const SEG_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// How the segment was made (SegmentAlgorithmType / ROIGenerationAlgorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlgorithmType {
    /// Straight from the model.
    #[default]
    Automatic,
    /// Semi-automatic (a model result edited by a person).
    SemiAutomatic,
    /// Drawn or corrected by hand.
    Manual,
}

impl AlgorithmType {
    pub fn dicom(self) -> &'static str {
        match self {
            AlgorithmType::Automatic => "AUTOMATIC",
            AlgorithmType::SemiAutomatic => "SEMIAUTOMATIC",
            AlgorithmType::Manual => "MANUAL",
        }
    }
}

/// Liver colour of 3D Slicer's generic anatomy colour table.
pub const LIVER_RGB: [u8; 3] = [221, 130, 101];

#[derive(Debug, Clone)]
pub struct SegWriteOptions {
    /// Root for the new Series/SOP Instance UIDs; `None` = `2.25.<UUID>` UIDs.
    pub uid_root: Option<String>,
    pub algorithm: AlgorithmType,
    /// SegmentAlgorithmName (not written for MANUAL).
    pub algorithm_name: String,
    pub segment_label: String,
    /// SegmentDescription (ST, up to 1024 characters); empty = not written.
    pub segment_description: String,
    pub color_rgb: [u8; 3],
    pub content_label: String,
    /// ContentDescription (LO, cut to 64 characters).
    pub content_description: String,
    /// Person name (DICOM PN, e.g. "Doe^Jane"); empty = unknown.
    pub content_creator_name: String,
    pub series_number: i32,
    pub instance_number: i32,
    /// SeriesDescription (LO, cut to 64 characters): what a PACS list shows.
    pub series_description: String,
    pub software_version: String,
}

impl Default for SegWriteOptions {
    fn default() -> Self {
        SegWriteOptions {
            uid_root: None,
            algorithm: AlgorithmType::Automatic,
            algorithm_name: "liverseg".into(),
            segment_label: "Liver".into(),
            segment_description: String::new(),
            color_rgb: LIVER_RGB,
            content_label: "LIVER".into(),
            content_description: "Liver segmentation".into(),
            content_creator_name: String::new(),
            series_number: 901,
            instance_number: 1,
            series_description: "Liver segmentation (liverseg)".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Patient, general study and frame-of-reference attributes copied from the source.
pub(crate) fn patient_study_elements(source: &SourceSeries) -> Vec<InMemElement> {
    let p = &source.patient_study;
    let mut v = Vec::new();
    if !p.specific_character_set.is_empty() {
        v.push(el(tags::SPECIFIC_CHARACTER_SET, VR::CS, PrimitiveValue::Strs(p.specific_character_set.split('\\').map(String::from).collect())));
    }
    v.extend([
        s(tags::PATIENT_NAME, VR::PN, &p.patient_name),
        s(tags::PATIENT_ID, VR::LO, &p.patient_id),
        s(tags::PATIENT_BIRTH_DATE, VR::DA, &p.patient_birth_date),
        s(tags::PATIENT_SEX, VR::CS, &p.patient_sex),
        s(tags::STUDY_INSTANCE_UID, VR::UI, &source.study_instance_uid),
        s(tags::STUDY_DATE, VR::DA, &p.study_date),
        s(tags::STUDY_TIME, VR::TM, &p.study_time),
        s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, &p.referring_physician_name),
        s(tags::STUDY_ID, VR::SH, &p.study_id),
        s(tags::ACCESSION_NUMBER, VR::SH, &p.accession_number),
    ]);
    v
}

/// ReferencedSeriesSequence item: the source series and all its instances.
pub(crate) fn referenced_instances(source: &SourceSeries) -> Vec<InMemDicomObject> {
    source
        .slices
        .iter()
        .map(|sl| item(vec![s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &sl.sop_class_uid), s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &sl.sop_instance_uid)]))
        .collect()
}

/// Write `mask` (non-zero = liver) as a BINARY DICOM-SEG referencing `source`.
/// The mask must be on the grid of the source series.
pub fn write_seg(path: &Path, mask: &Mask, source: &SourceSeries, opts: &SegWriteOptions) -> Result<()> {
    let obj = build_seg(path, mask, source, opts)?;
    write_part10(path, obj)
}

/// The SEG data set (without file meta), for callers that send it over the network.
pub fn build_seg(path: &Path, mask: &Mask, source: &SourceSeries, opts: &SegWriteOptions) -> Result<InMemDicomObject> {
    source.check_grid(mask.geometry()).map_err(|m| Error::invalid(path, m))?;
    if let Some(root) = &opts.uid_root {
        check_uid_root(path, root)?;
    }
    let [nx, ny, nz] = mask.dims();
    if nx > u16::MAX as usize || ny > u16::MAX as usize {
        return Err(Error::invalid(path, "slices larger than 65535 pixels cannot be written as DICOM"));
    }
    let plane = nx * ny;
    let data = mask.data();
    let mut frames: Vec<usize> = (0..nz).filter(|&k| data[k * plane..(k + 1) * plane].iter().any(|&v| v != 0)).collect();
    if frames.is_empty() {
        frames.push(0);
    }
    let root = opts.uid_root.as_deref();
    let series_uid = new_uid(root);
    let sop_uid = new_uid(root);
    let (date, time) = now_da_tm();
    let sp = mask.geometry().spacing();

    // Pixel data: bit (frame f, pixel p) at f * plane + p, LSB first.
    let nbits = frames.len() * plane;
    let mut bits = vec![0u8; nbits.div_ceil(8).next_multiple_of(2)];
    for (f, &k) in frames.iter().enumerate() {
        for (p, &v) in data[k * plane..(k + 1) * plane].iter().enumerate() {
            if v != 0 {
                let b = f * plane + p;
                bits[b / 8] |= 1 << (b % 8);
            }
        }
    }

    let derivation_code = || seq(tags::DERIVATION_CODE_SEQUENCE, vec![code_item("113076", "DCM", "Segmentation")]);
    let purpose = || seq(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE, vec![code_item("121322", "DCM", "Source image for image processing operation")]);
    let per_frame: Vec<InMemDicomObject> = frames
        .iter()
        .enumerate()
        .map(|(f, &k)| {
            let sl = &source.slices[k];
            // The frame is the CT slice's own pixel grid (same rows, columns,
            // position, orientation and spacing: check_grid made sure), so its
            // spatial locations are preserved. highdicom indexes a SEG by source
            // instance only when every frame says so (issue 18, finding 5).
            let source_image = item(vec![
                s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &sl.sop_class_uid),
                s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &sl.sop_instance_uid),
                purpose(),
                s(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
            ]);
            item(vec![
                seq(tags::DERIVATION_IMAGE_SEQUENCE, vec![item(vec![derivation_code(), seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source_image])])]),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![item(vec![el(tags::DIMENSION_INDEX_VALUES, VR::UL, PrimitiveValue::U32([1u32, (f + 1) as u32].into()))])],
                ),
                seq(tags::PLANE_POSITION_SEQUENCE, vec![item(vec![ds(tags::IMAGE_POSITION_PATIENT, &sl.position)])]),
                seq(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![item(vec![el(tags::REFERENCED_SEGMENT_NUMBER, VR::US, 1u16)])]),
            ])
        })
        .collect();

    let slice_spacing = sp[2].abs();
    let shared = item(vec![
        seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(vec![
                ds(tags::SLICE_THICKNESS, &[source.slice_thickness.unwrap_or(slice_spacing)]),
                ds(tags::SPACING_BETWEEN_SLICES, &[slice_spacing]),
                ds(tags::PIXEL_SPACING, &source.pixel_spacing),
            ])],
        ),
        seq(tags::PLANE_ORIENTATION_SEQUENCE, vec![item(vec![ds(tags::IMAGE_ORIENTATION_PATIENT, &source.orientation)])]),
    ]);

    let dim_org_uid = new_uid(root);
    let dim_index = |pointer: dicom_core::Tag, group: dicom_core::Tag, label: &str| {
        item(vec![
            s(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_org_uid),
            el(tags::DIMENSION_INDEX_POINTER, VR::AT, PrimitiveValue::Tags(std::iter::once(pointer).collect())),
            el(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, PrimitiveValue::Tags(std::iter::once(group).collect())),
            s(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };

    let mut segment = vec![
        el(tags::SEGMENT_NUMBER, VR::US, 1u16),
        text(tags::SEGMENT_LABEL, VR::LO, &opts.segment_label),
        seq(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code_item("123037004", "SCT", "Anatomical Structure")]),
        seq(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code_item("10200004", "SCT", "Liver")]),
        s(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, opts.algorithm.dicom()),
        el(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE, VR::US, PrimitiveValue::U16(srgb_to_dicom_lab(opts.color_rgb).into_iter().collect())),
    ];
    if opts.algorithm != AlgorithmType::Manual {
        segment.push(text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, &opts.algorithm_name));
    }
    if !opts.segment_description.is_empty() {
        segment.push(text(tags::SEGMENT_DESCRIPTION, VR::ST, &opts.segment_description));
    }

    let mut elements = patient_study_elements(source);
    elements.extend([
        s(tags::SOP_CLASS_UID, VR::UI, SEG_SOP_CLASS),
        s(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, &date),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, &time),
        s(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"),
        s(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        s(tags::SERIES_DATE, VR::DA, &date),
        s(tags::SERIES_TIME, VR::TM, &time),
        s(tags::CONTENT_DATE, VR::DA, &date),
        s(tags::CONTENT_TIME, VR::TM, &time),
        s(tags::MODALITY, VR::CS, "SEG"),
        s(tags::MANUFACTURER, VR::LO, "liverseg"),
        text(tags::SERIES_DESCRIPTION, VR::LO, &opts.series_description),
        s(tags::MANUFACTURER_MODEL_NAME, VR::LO, "liverseg"),
        seq(tags::REFERENCED_SERIES_SEQUENCE, vec![item(vec![
            seq(tags::REFERENCED_INSTANCE_SEQUENCE, referenced_instances(source)),
            s(tags::SERIES_INSTANCE_UID, VR::UI, &source.series_instance_uid),
        ])]),
        s(tags::DEVICE_SERIAL_NUMBER, VR::LO, "1"),
        s(tags::SOFTWARE_VERSIONS, VR::LO, &opts.software_version),
        s(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid),
        el(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from(opts.series_number.to_string())),
        el(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from(opts.instance_number.to_string())),
        s(tags::FRAME_OF_REFERENCE_UID, VR::UI, &source.frame_of_reference_uid),
        s(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(frames.len().to_string())),
        el(tags::ROWS, VR::US, ny as u16),
        el(tags::COLUMNS, VR::US, nx as u16),
        el(tags::BITS_ALLOCATED, VR::US, 1u16),
        el(tags::BITS_STORED, VR::US, 1u16),
        el(tags::HIGH_BIT, VR::US, 0u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        s(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        seq(tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![item(vec![s(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_org_uid)])]),
        s(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D"),
        seq(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                dim_index(tags::REFERENCED_SEGMENT_NUMBER, tags::SEGMENT_IDENTIFICATION_SEQUENCE, "ReferencedSegmentNumber"),
                dim_index(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "ImagePositionPatient"),
            ],
        ),
        s(tags::CONTENT_LABEL, VR::CS, &opts.content_label),
        text(tags::CONTENT_DESCRIPTION, VR::LO, &opts.content_description),
        s(tags::CONTENT_CREATOR_NAME, VR::PN, &opts.content_creator_name),
        s(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        seq(tags::SEGMENT_SEQUENCE, vec![item(segment)]),
        seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]),
        seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        el(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(bits.into())),
    ]);
    Ok(InMemDicomObject::from_element_iter(elements))
}
