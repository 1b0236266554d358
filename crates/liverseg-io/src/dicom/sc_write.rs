//! Secondary Capture of a rendered picture (the overview: three slices through
//! the liver with its contour, the volume and the quality flags), in the CT's
//! study, so a PACS viewer shows the result beside the CT without a SEG viewer.
//!
//! Choices:
//! * Secondary Capture Image Storage (single frame, RGB, 8 bits, uncompressed):
//!   what every viewer displays. No Frame of Reference: the picture is not in
//!   patient space (three orthogonal panels).
//! * Patient and study attributes copied from the source series, a new series
//!   (Modality OT, Conversion Type WSD: made on a workstation).
//! * BurnedInAnnotation NO: the text drawn is the volume, model and flags, never
//!   a patient's name or ID.
use super::seg_write::{check_uid_root, el, new_uid, now_da_tm, patient_study_elements, s, text, write_part10, SourceSeries};
use crate::{Error, Result};
use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::path::Path;

pub const SECONDARY_CAPTURE_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";

#[derive(Debug, Clone)]
pub struct ScWriteOptions {
    /// Root for the new Series/SOP Instance UIDs; `None` = `2.25.<UUID>` UIDs.
    pub uid_root: Option<String>,
    pub series_number: i32,
    pub instance_number: i32,
    /// SeriesDescription (LO, cut to 64 characters): what a PACS list shows.
    pub series_description: String,
    /// ImageComments (LT): e.g. the volume and the flags with their messages.
    pub image_comments: String,
    pub software_version: String,
}

impl Default for ScWriteOptions {
    fn default() -> Self {
        ScWriteOptions {
            uid_root: None,
            series_number: 903,
            instance_number: 1,
            series_description: "Liver overview (liverseg)".into(),
            image_comments: String::new(),
            software_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Write an RGB picture (`width` x `height`, row by row, 3 bytes per pixel) as a
/// Secondary Capture in the study of `source`; atomic.
pub fn write_secondary_capture(path: &Path, width: u32, height: u32, rgb: &[u8], source: &SourceSeries, opts: &ScWriteOptions) -> Result<()> {
    let obj = build_secondary_capture(path, width, height, rgb, source, opts)?;
    write_part10(path, obj)
}

/// The Secondary Capture data set (without file meta).
pub fn build_secondary_capture(path: &Path, width: u32, height: u32, rgb: &[u8], source: &SourceSeries, opts: &ScWriteOptions) -> Result<InMemDicomObject> {
    if let Some(root) = &opts.uid_root {
        check_uid_root(path, root)?;
    }
    if width == 0 || height == 0 || width > u16::MAX as u32 || height > u16::MAX as u32 {
        return Err(Error::invalid(path, format!("a {width}x{height} picture cannot be a DICOM image (1 to 65535 pixels a side)")));
    }
    if rgb.len() != width as usize * height as usize * 3 {
        return Err(Error::invalid(path, format!("{} bytes of RGB for a {width}x{height} picture (expected {})", rgb.len(), width as usize * height as usize * 3)));
    }
    let root = opts.uid_root.as_deref();
    let (date, time) = now_da_tm();
    let mut pixels = rgb.to_vec();
    // OB values have even length (PS3.5 7.1.1).
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    let mut elements = patient_study_elements(source);
    elements.extend([
        s(tags::SOP_CLASS_UID, VR::UI, SECONDARY_CAPTURE_SOP_CLASS),
        s(tags::SOP_INSTANCE_UID, VR::UI, &new_uid(root)),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, &date),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, &time),
        s(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"),
        s(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"),
        s(tags::SERIES_DATE, VR::DA, &date),
        s(tags::SERIES_TIME, VR::TM, &time),
        s(tags::CONTENT_DATE, VR::DA, &date),
        s(tags::CONTENT_TIME, VR::TM, &time),
        s(tags::MODALITY, VR::CS, "OT"),
        // Laterality (Type 2C) is only for paired body parts; naming the body
        // part lets validators see it is not paired, so Laterality stays absent.
        s(tags::BODY_PART_EXAMINED, VR::CS, "ABDOMEN"),
        s(tags::CONVERSION_TYPE, VR::CS, "WSD"),
        s(tags::MANUFACTURER, VR::LO, "liverseg"),
        text(tags::SERIES_DESCRIPTION, VR::LO, &opts.series_description),
        s(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER, VR::LO, "liverseg"),
        s(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER_MODEL_NAME, VR::LO, "liverseg"),
        s(tags::SECONDARY_CAPTURE_DEVICE_SOFTWARE_VERSIONS, VR::LO, &opts.software_version),
        s(tags::SOFTWARE_VERSIONS, VR::LO, &opts.software_version),
        s(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid(root)),
        el(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from(opts.series_number.to_string())),
        el(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from(opts.instance_number.to_string())),
        s(tags::PATIENT_ORIENTATION, VR::CS, ""),
        s(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"),
        el(tags::SAMPLES_PER_PIXEL, VR::US, 3u16),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
        el(tags::PLANAR_CONFIGURATION, VR::US, 0u16),
        el(tags::ROWS, VR::US, height as u16),
        el(tags::COLUMNS, VR::US, width as u16),
        el(tags::BITS_ALLOCATED, VR::US, 8u16),
        el(tags::BITS_STORED, VR::US, 8u16),
        el(tags::HIGH_BIT, VR::US, 7u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        s(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        el(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pixels.into())),
    ]);
    if !opts.image_comments.is_empty() {
        elements.push(text(tags::IMAGE_COMMENTS, VR::LT, &opts.image_comments));
    }
    Ok(InMemDicomObject::from_element_iter(elements))
}
