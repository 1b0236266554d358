//! One image (a file, or one frame of a multi-frame file) as described by its header.

use super::{el_f64, el_int, el_str, el_strs, parse_iop, parse_ipp, parse_pixel_spacing};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::path::PathBuf;
use std::sync::Arc;

/// What liverseg needs from one image's header. Never holds patient names or IDs.
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    pub path: Arc<PathBuf>,
    /// Frame within the file (0 for single-frame files).
    pub frame: u32,
    pub multi_frame: bool,
    pub series_uid: String,
    pub series_description: String,
    pub series_number: Option<i64>,
    pub modality: String,
    pub sop_class: String,
    pub sop_instance: String,
    /// StudyInstanceUID and FrameOfReferenceUID (empty when absent), for the
    /// derived objects (SEG, RTSTRUCT) written on this series.
    pub study_uid: String,
    pub frame_of_reference: String,
    pub image_type: Vec<String>,
    pub acquisition_number: Option<i64>,
    pub contrast_agent: String,
    pub acquisition_time: String,
    /// ContentTime: orders repeats when AcquisitionTime is absent or equal.
    pub content_time: String,
    pub temporal_position: Option<i64>,
    pub instance_number: Option<i64>,
    pub iop: Option<[f64; 6]>,
    pub ipp: Option<[f64; 3]>,
    /// PixelSpacing as stored: [between rows (y), between columns (x)].
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub spacing_between_slices: Option<f64>,
    pub rows: u32,
    pub cols: u32,
    pub samples_per_pixel: u16,
    pub slope: f64,
    pub intercept: f64,
    pub padding: Option<i64>,
    pub transfer_syntax: String,
}

const SECONDARY_CAPTURE_PREFIX: &str = "1.2.840.10008.5.1.4.1.1.7";

impl Slice {
    pub fn is_localizer(&self) -> bool {
        self.image_type.iter().any(|t| t.eq_ignore_ascii_case("LOCALIZER"))
    }
    pub fn is_secondary_capture(&self) -> bool {
        self.sop_class.starts_with(SECONDARY_CAPTURE_PREFIX)
    }
    pub fn has_geometry(&self) -> bool {
        self.iop.is_some() && self.ipp.is_some()
    }
    /// Unit normal of the slice plane (row direction x column direction).
    pub fn normal(&self) -> Option<[f64; 3]> {
        self.iop.map(|o| super::normal_of(&o))
    }
}

/// All images a parsed header describes: one for a single-frame file, one per
/// frame for an enhanced multi-frame file. Returns `None` for objects without
/// pixel rows/columns (reports, RT structures, presentation states, ...).
/// `sop_class` and `sop_instance` come from the File Meta group: anonymisers
/// sometimes blank them in the data set, and the meta group repeats them.
pub(crate) fn slices_of(obj: &InMemDicomObject, path: &Arc<PathBuf>, sop_class: &str, sop_instance: &str, transfer_syntax: &str) -> Option<Vec<Slice>> {
    let rows = el_int(obj, tags::ROWS)?;
    let cols = el_int(obj, tags::COLUMNS)?;
    if rows <= 0 || cols <= 0 || rows > u16::MAX as i64 || cols > u16::MAX as i64 {
        return None;
    }
    let frames = el_int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let sop_class = el_str(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| sop_class.to_string());
    let base = Slice {
        path: path.clone(),
        frame: 0,
        multi_frame: frames > 1,
        series_uid: el_str(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        series_description: el_str(obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        series_number: el_int(obj, tags::SERIES_NUMBER),
        modality: el_str(obj, tags::MODALITY).unwrap_or_default(),
        sop_class,
        sop_instance: el_str(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| sop_instance.to_string()),
        study_uid: el_str(obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        frame_of_reference: el_str(obj, tags::FRAME_OF_REFERENCE_UID).unwrap_or_default(),
        image_type: el_strs(obj, tags::IMAGE_TYPE),
        acquisition_number: el_int(obj, tags::ACQUISITION_NUMBER),
        contrast_agent: el_str(obj, tags::CONTRAST_BOLUS_AGENT).unwrap_or_default(),
        acquisition_time: el_str(obj, tags::ACQUISITION_TIME).unwrap_or_default(),
        content_time: el_str(obj, tags::CONTENT_TIME).unwrap_or_default(),
        temporal_position: el_int(obj, tags::TEMPORAL_POSITION_IDENTIFIER),
        instance_number: el_int(obj, tags::INSTANCE_NUMBER),
        iop: parse_iop(obj),
        ipp: parse_ipp(obj),
        pixel_spacing: parse_pixel_spacing(obj),
        slice_thickness: el_f64(obj, tags::SLICE_THICKNESS),
        spacing_between_slices: el_f64(obj, tags::SPACING_BETWEEN_SLICES),
        rows: rows as u32,
        cols: cols as u32,
        samples_per_pixel: el_int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).clamp(0, 16) as u16,
        slope: el_f64(obj, tags::RESCALE_SLOPE).filter(|s| *s != 0.0).unwrap_or(1.0),
        intercept: el_f64(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        padding: el_int(obj, tags::PIXEL_PADDING_VALUE),
        transfer_syntax: transfer_syntax.to_string(),
    };
    if frames == 1 && obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).is_none() {
        return Some(vec![base]);
    }
    // Enhanced multi-frame: geometry and rescale live in functional groups,
    // per frame or shared.
    let shared = obj
        .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|i| i.first());
    let per_frame = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).unwrap_or(&[]);
    // Guard against absurd frame counts before allocating one entry per frame.
    let frames = frames.min(1 << 20) as usize;
    let mut out = Vec::with_capacity(frames.min(per_frame.len().max(1)));
    for f in 0..frames {
        let own = per_frame.get(f);
        let group = |seq: dicom_core::Tag| -> Option<&InMemDicomObject> {
            own.and_then(|o| o.get(seq)).or_else(|| shared.and_then(|s| s.get(seq))).and_then(|e| e.items()).and_then(|i| i.first())
        };
        let mut s = base.clone();
        s.frame = f as u32;
        if let Some(g) = group(tags::PLANE_POSITION_SEQUENCE) {
            s.ipp = parse_ipp(g);
        } else if frames > 1 {
            s.ipp = None;
        }
        if let Some(g) = group(tags::PLANE_ORIENTATION_SEQUENCE) {
            s.iop = parse_iop(g);
        }
        if let Some(g) = group(tags::PIXEL_MEASURES_SEQUENCE) {
            if let Some(ps) = parse_pixel_spacing(g) {
                s.pixel_spacing = Some(ps);
            }
            s.slice_thickness = el_f64(g, tags::SLICE_THICKNESS).or(s.slice_thickness);
            s.spacing_between_slices = el_f64(g, tags::SPACING_BETWEEN_SLICES).or(s.spacing_between_slices);
        }
        if let Some(g) = group(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
            s.slope = el_f64(g, tags::RESCALE_SLOPE).filter(|v| *v != 0.0).unwrap_or(s.slope);
            s.intercept = el_f64(g, tags::RESCALE_INTERCEPT).unwrap_or(s.intercept);
        }
        if let Some(g) = group(tags::FRAME_CONTENT_SEQUENCE) {
            s.temporal_position = el_int(g, tags::TEMPORAL_POSITION_INDEX).or(s.temporal_position);
        }
        out.push(s);
    }
    Some(out)
}
