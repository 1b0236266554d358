//! Parsing a DICOM Segmentation object (BINARY / FRACTIONAL SEG, and LABELMAP SEG)
//! into segments, per-frame planes and decoded frame values.
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use serde::Serialize;

/// Segmentation Storage.
pub const SEG_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";
/// Label Map Segmentation Storage (one frame holds every segment as pixel values).
pub const LABELMAP_SEG_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.7";

/// A coded concept (CodeValue / CodingSchemeDesignator / CodeMeaning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    pub value: String,
    pub scheme: String,
    pub meaning: String,
}

/// One item of the SegmentSequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentInfo {
    pub number: u16,
    pub label: String,
    pub category: Option<Code>,
    pub property_type: Option<Code>,
    pub algorithm_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SegmentationType {
    Binary,
    Fractional,
    Labelmap,
}

impl SegmentationType {
    pub fn name(self) -> &'static str {
        match self {
            SegmentationType::Binary => "BINARY",
            SegmentationType::Fractional => "FRACTIONAL",
            SegmentationType::Labelmap => "LABELMAP",
        }
    }
}

/// Where a frame lies in patient (LPS) space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FramePlane {
    /// ImagePositionPatient: centre of the first (top-left) pixel, mm.
    pub position: [f64; 3],
    /// Unit vector along which the column index grows (IOP[0..3]).
    pub row_dir: [f64; 3],
    /// Unit vector along which the row index grows (IOP[3..6]).
    pub col_dir: [f64; 3],
    /// mm between adjacent columns (PixelSpacing[1]) and adjacent rows (PixelSpacing[0]).
    pub spacing: [f64; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameInfo {
    /// `None` when the frame has no ImagePositionPatient / ImageOrientationPatient /
    /// PixelSpacing (SEG of a projection image): it cannot be placed in 3-D.
    pub plane: Option<FramePlane>,
    /// ReferencedSegmentNumber; `None` in a LABELMAP SEG, whose frames hold all segments.
    pub segment: Option<u16>,
}

/// A parsed Segmentation object. Pixel values are decoded frame by frame on demand.
pub struct SegFile {
    pub(crate) obj: DefaultDicomObject,
    pub sop_class: String,
    pub transfer_syntax: String,
    pub rows: usize,
    pub cols: usize,
    pub bits_allocated: u16,
    pub seg_type: SegmentationType,
    pub fractional_type: Option<String>,
    pub max_fractional_value: Option<u16>,
    pub segments: Vec<SegmentInfo>,
    pub frames: Vec<FrameInfo>,
    /// SpacingBetweenSlices, else SliceThickness, from the pixel measures (mm).
    pub slice_spacing_hint: Option<f64>,
    /// Things that did not stop parsing.
    pub warnings: Vec<String>,
    /// Native (not encapsulated) pixel data bytes; `None` when encapsulated.
    native: Option<Vec<u8>>,
}

/// Parse problems: `Unsupported` for valid objects liverseg cannot use, `Invalid` otherwise.
#[derive(Debug)]
pub(crate) enum ParseError {
    Invalid(String),
    Unsupported(String),
}

pub(crate) type PResult<T> = std::result::Result<T, ParseError>;

fn invalid<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParseError::Invalid(msg.into()))
}

pub(crate) fn is_seg_sop_class(uid: &str) -> bool {
    uid == SEG_SOP_CLASS || uid == LABELMAP_SEG_SOP_CLASS
}

fn get(obj: &InMemDicomObject, tag: Tag) -> Option<&dicom_object::mem::InMemElement> {
    obj.get(tag)
}

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = get(obj, tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_string();
    (!s.is_empty()).then_some(s)
}

fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let v = get(obj, tag)?.to_multi_float64().ok()?;
    (!v.is_empty()).then_some(v)
}

fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    get(obj, tag)?.to_int::<i64>().ok()
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    get(obj, tag)?.items()?.first()
}

fn code(item: Option<&InMemDicomObject>) -> Option<Code> {
    let item = item?;
    let value = get_str(item, tags::CODE_VALUE)
        .or_else(|| get_str(item, tags::LONG_CODE_VALUE))
        .or_else(|| get_str(item, tags::URN_CODE_VALUE))?;
    Some(Code {
        value,
        scheme: get_str(item, tags::CODING_SCHEME_DESIGNATOR).unwrap_or_default(),
        meaning: get_str(item, tags::CODE_MEANING).unwrap_or_default(),
    })
}

fn unit(v: [f64; 3]) -> Option<[f64; 3]> {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    (n.is_finite() && n > 1e-6).then(|| [v[0] / n, v[1] / n, v[2] / n])
}

/// A functional group macro: the per-frame item wins over the shared one.
fn group<'a>(per_frame: Option<&'a InMemDicomObject>, shared: Option<&'a InMemDicomObject>, tag: Tag) -> Option<&'a InMemDicomObject> {
    per_frame.and_then(|p| first_item(p, tag)).or_else(|| shared.and_then(|s| first_item(s, tag)))
}

impl SegFile {
    /// `Ok(None)` when the object is not a Segmentation (by SOPClassUID).
    pub(crate) fn from_object(obj: DefaultDicomObject) -> PResult<Option<SegFile>> {
        let meta_class = obj.meta().media_storage_sop_class_uid().to_string();
        let sop_class = get_str(&obj, tags::SOP_CLASS_UID).unwrap_or_else(|| meta_class.clone());
        if !is_seg_sop_class(&sop_class) && !is_seg_sop_class(&meta_class) {
            return Ok(None);
        }
        let sop_class = if is_seg_sop_class(&sop_class) { sop_class } else { meta_class };
        let transfer_syntax = obj.meta().transfer_syntax().to_string();
        let mut warnings = Vec::new();

        if get(&obj, tags::TOTAL_PIXEL_MATRIX_ROWS).is_some() {
            return Err(ParseError::Unsupported(
                "slide-microscopy SEG (tiled total pixel matrix, no patient coordinates)".into(),
            ));
        }
        let rows = get_int(&obj, tags::ROWS).filter(|&r| r > 0).ok_or_else(|| ParseError::Invalid("Rows is missing or zero".into()))?;
        let cols = get_int(&obj, tags::COLUMNS).filter(|&c| c > 0).ok_or_else(|| ParseError::Invalid("Columns is missing or zero".into()))?;
        if rows > 65535 || cols > 65535 {
            return invalid(format!("Rows/Columns {rows}x{cols} out of range"));
        }
        let (rows, cols) = (rows as usize, cols as usize);
        let n_frames = match get_int(&obj, tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(n) if n >= 1 => n as usize,
            Some(n) => return invalid(format!("NumberOfFrames is {n}")),
        };
        let bits_allocated = get_int(&obj, tags::BITS_ALLOCATED).unwrap_or(0);
        let spp = get_int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        if spp != 1 {
            return invalid(format!("SamplesPerPixel is {spp}, a SEG has 1"));
        }

        let seg_type = if sop_class == LABELMAP_SEG_SOP_CLASS {
            SegmentationType::Labelmap
        } else {
            match get_str(&obj, tags::SEGMENTATION_TYPE).as_deref() {
                Some("BINARY") => SegmentationType::Binary,
                Some("FRACTIONAL") => SegmentationType::Fractional,
                Some("LABELMAP") => SegmentationType::Labelmap,
                Some(other) => return Err(ParseError::Unsupported(format!("SegmentationType {other}"))),
                None => return invalid("SegmentationType is missing"),
            }
        };
        let bits_ok = match seg_type {
            SegmentationType::Binary => bits_allocated == 1,
            SegmentationType::Fractional => bits_allocated == 8,
            SegmentationType::Labelmap => bits_allocated == 8 || bits_allocated == 16,
        };
        if !bits_ok {
            return invalid(format!("BitsAllocated {bits_allocated} does not fit SegmentationType {}", seg_type.name()));
        }
        let fractional_type = get_str(&obj, tags::SEGMENTATION_FRACTIONAL_TYPE);
        let max_fractional_value = match seg_type {
            SegmentationType::Fractional => {
                let m = get_int(&obj, tags::MAXIMUM_FRACTIONAL_VALUE)
                    .ok_or_else(|| ParseError::Invalid("FRACTIONAL SEG without MaximumFractionalValue".into()))?;
                if !(1..=255).contains(&m) {
                    return invalid(format!("MaximumFractionalValue {m} is outside 1..255"));
                }
                Some(m as u16)
            }
            _ => None,
        };

        // Segments.
        let mut segments = Vec::new();
        for (i, item) in get(&obj, tags::SEGMENT_SEQUENCE).and_then(|e| e.items()).unwrap_or(&[]).iter().enumerate() {
            let number = get_int(item, tags::SEGMENT_NUMBER)
                .filter(|n| (0..=65535).contains(n))
                .ok_or_else(|| ParseError::Invalid(format!("SegmentSequence item {} has no valid SegmentNumber", i + 1)))?
                as u16;
            if segments.iter().any(|s: &SegmentInfo| s.number == number) {
                return invalid(format!("SegmentNumber {number} appears twice in SegmentSequence"));
            }
            segments.push(SegmentInfo {
                number,
                label: get_str(item, tags::SEGMENT_LABEL).unwrap_or_default(),
                category: code(first_item(item, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE)),
                property_type: code(first_item(item, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)),
                algorithm_type: get_str(item, tags::SEGMENT_ALGORITHM_TYPE),
            });
        }
        if segments.is_empty() {
            return invalid("SegmentSequence is missing or empty");
        }

        // Frames: per-frame functional groups override the shared ones; a
        // single-frame object without any may carry the plain image-plane attributes.
        let shared = first_item(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let per_frame_items = get(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).unwrap_or(&[]);
        if !per_frame_items.is_empty() && per_frame_items.len() < n_frames {
            return invalid(format!(
                "PerFrameFunctionalGroupsSequence has {} items for {n_frames} frames",
                per_frame_items.len()
            ));
        }
        if per_frame_items.len() > n_frames {
            // Seen in files cut down from a multi-frame SEG (pydicom's liver_1frame.dcm):
            // item i still describes frame i.
            warnings.push(format!(
                "PerFrameFunctionalGroupsSequence has {} items for {n_frames} frame(s); the extra items were ignored",
                per_frame_items.len()
            ));
        }
        if per_frame_items.is_empty() && n_frames > 1 {
            return invalid("multi-frame SEG without PerFrameFunctionalGroupsSequence");
        }
        if shared.map(|s| get(s, tags::PLANE_POSITION_SLIDE_SEQUENCE).is_some()).unwrap_or(false)
            || per_frame_items.first().map(|p| get(p, tags::PLANE_POSITION_SLIDE_SEQUENCE).is_some()).unwrap_or(false)
        {
            return Err(ParseError::Unsupported("slide-microscopy SEG (no patient coordinates)".into()));
        }
        let mut frames = Vec::with_capacity(n_frames.min(per_frame_items.len().max(1)));
        let mut slice_spacing_hint = None;
        let mut assumed_segment = false;
        for f in 0..n_frames {
            let pf = per_frame_items.get(f);
            let fno = f + 1;
            let segment = match seg_type {
                SegmentationType::Labelmap => None,
                _ => {
                    let n = group(pf, shared, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
                        .and_then(|g| get_int(g, tags::REFERENCED_SEGMENT_NUMBER));
                    match n {
                        Some(n) if segments.iter().any(|s| s.number as i64 == n) => Some(n as u16),
                        Some(n) => return invalid(format!("frame {fno} refers to segment {n}, which SegmentSequence does not define")),
                        None if segments.len() == 1 => {
                            assumed_segment = true;
                            Some(segments[0].number)
                        }
                        None => return invalid(format!("frame {fno} has no ReferencedSegmentNumber (SegmentIdentificationSequence)")),
                    }
                }
            };
            let measures = group(pf, shared, tags::PIXEL_MEASURES_SEQUENCE);
            let position = group(pf, shared, tags::PLANE_POSITION_SEQUENCE)
                .and_then(|g| get_f64s(g, tags::IMAGE_POSITION_PATIENT))
                .or_else(|| get_f64s(&obj, tags::IMAGE_POSITION_PATIENT));
            let orientation = group(pf, shared, tags::PLANE_ORIENTATION_SEQUENCE)
                .and_then(|g| get_f64s(g, tags::IMAGE_ORIENTATION_PATIENT))
                .or_else(|| get_f64s(&obj, tags::IMAGE_ORIENTATION_PATIENT));
            let pixel_spacing = measures
                .and_then(|g| get_f64s(g, tags::PIXEL_SPACING))
                .or_else(|| get_f64s(&obj, tags::PIXEL_SPACING));
            // A SEG of a projection image (CR, DX) has no patient-space plane: the
            // file stays readable for inspection, placing its frames is refused later.
            let (Some(position), Some(orientation), Some(pixel_spacing)) = (position, orientation, pixel_spacing) else {
                frames.push(FrameInfo { plane: None, segment });
                continue;
            };
            if position.len() != 3 || !position.iter().all(|v| v.is_finite()) {
                return invalid(format!("frame {fno}: ImagePositionPatient {position:?} is not 3 finite numbers"));
            }
            if orientation.len() != 6 || !orientation.iter().all(|v| v.is_finite()) {
                return invalid(format!("frame {fno}: ImageOrientationPatient {orientation:?} is not 6 finite numbers"));
            }
            if pixel_spacing.len() != 2 || !pixel_spacing.iter().all(|v| v.is_finite() && *v > 0.0) {
                return invalid(format!("frame {fno}: PixelSpacing {pixel_spacing:?} is not 2 positive numbers"));
            }
            let row_dir = unit([orientation[0], orientation[1], orientation[2]]);
            let col_dir = unit([orientation[3], orientation[4], orientation[5]]);
            let (Some(row_dir), Some(col_dir)) = (row_dir, col_dir) else {
                return invalid(format!("frame {fno}: ImageOrientationPatient has a zero vector"));
            };
            let dot: f64 = (0..3).map(|a| row_dir[a] * col_dir[a]).sum();
            if dot.abs() > 1e-3 {
                return invalid(format!("frame {fno}: ImageOrientationPatient row and column vectors are not orthogonal"));
            }
            if f == 0 {
                slice_spacing_hint = measures
                    .and_then(|g| get_f64s(g, tags::SPACING_BETWEEN_SLICES).or_else(|| get_f64s(g, tags::SLICE_THICKNESS)))
                    .and_then(|v| v.first().copied())
                    .map(f64::abs)
                    .filter(|v| v.is_finite() && *v > 0.0);
            }
            frames.push(FrameInfo {
                plane: Some(FramePlane { position: [position[0], position[1], position[2]], row_dir, col_dir, spacing: [pixel_spacing[1], pixel_spacing[0]] }),
                segment,
            });
        }
        if assumed_segment {
            warnings.push("frames without SegmentIdentificationSequence were assigned to the only segment".into());
        }

        // Pixel data: check sizes against what is stored before anything is decoded.
        let pixel = get(&obj, tags::PIXEL_DATA).ok_or_else(|| ParseError::Invalid("PixelData is missing".into()))?;
        let native = match pixel.value() {
            dicom_core::DicomValue::Primitive(p) => {
                let bytes = p.to_bytes().into_owned();
                let pixels = rows
                    .checked_mul(cols)
                    .and_then(|n| n.checked_mul(n_frames))
                    .ok_or_else(|| ParseError::Invalid("Rows x Columns x NumberOfFrames overflows".into()))?;
                let need = match bits_allocated {
                    1 => pixels.div_ceil(8),
                    8 => pixels,
                    _ => pixels.saturating_mul(2),
                };
                if bytes.len() < need {
                    return invalid(format!(
                        "PixelData holds {} bytes but {n_frames} frames of {rows}x{cols} at {bits_allocated} bit need {need}",
                        bytes.len()
                    ));
                }
                Some(bytes)
            }
            dicom_core::DicomValue::PixelSequence(seq) => {
                // Compressed data cannot be checked against the file length; bound the
                // frame size so a forged header cannot request gigabytes per frame.
                if rows * cols > 1 << 26 {
                    return invalid(format!("frames of {rows}x{cols} pixels are too large"));
                }
                if bits_allocated == 1 && transfer_syntax != "1.2.840.10008.1.2.1.98" {
                    return Err(ParseError::Unsupported(format!(
                        "BINARY SEG with compressed pixel data (transfer syntax {transfer_syntax}): dicom-rs 0.10 decodes RLE only at 8 or 16 bits"
                    )));
                }
                if seq.fragments().len() < n_frames {
                    return invalid(format!("encapsulated PixelData has {} fragments for {n_frames} frames", seq.fragments().len()));
                }
                None
            }
            _ => return invalid("PixelData is a sequence"),
        };

        Ok(Some(SegFile {
            obj,
            sop_class,
            transfer_syntax,
            rows,
            cols,
            bits_allocated: bits_allocated as u16,
            seg_type,
            fractional_type,
            max_fractional_value,
            segments,
            frames,
            slice_spacing_hint,
            warnings,
            native,
        }))
    }

    /// The stored values of frame `index` (0-based), row by row: 0/1 for BINARY,
    /// the raw 8-bit value for FRACTIONAL, the label value for LABELMAP.
    pub fn frame_values(&self, index: usize) -> crate::Result<Vec<u16>, String> {
        let n = self.rows * self.cols;
        if index >= self.frames.len() {
            return Err(format!("frame {} does not exist ({} frames)", index + 1, self.frames.len()));
        }
        if let Some(bytes) = &self.native {
            return Ok(match self.bits_allocated {
                // BINARY frames are packed back to back, LSB first, with no padding
                // between frames: a frame generally starts mid-byte. dicom-pixeldata
                // 0.10 assumes byte-aligned frames (rows*cols/8), so unpack here.
                1 => {
                    let start = index * n;
                    (start..start + n).map(|b| ((bytes[b >> 3] >> (b & 7)) & 1) as u16).collect()
                }
                8 => bytes[index * n..(index + 1) * n].iter().map(|&v| v as u16).collect(),
                _ => bytes[index * n * 2..(index + 1) * n * 2].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect(),
            });
        }
        self.decode_encapsulated(index)
    }

    fn decode_encapsulated(&self, index: usize) -> crate::Result<Vec<u16>, String> {
        use dicom_pixeldata::PixelDecoder;
        let n = self.rows * self.cols;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.obj.decode_pixel_data_frame(index as u32).map(|d| d.data().to_vec())
        }))
        .map_err(|_| format!("frame {}: the pixel decoder panicked", index + 1))?
        .map_err(|e| format!("frame {}: cannot decode compressed pixel data ({}): {e}", index + 1, self.transfer_syntax))?;
        // Compressed frames are each byte-aligned; a decoder may return them packed
        // (1 bit per pixel) or expanded (1 byte per pixel).
        match self.bits_allocated {
            1 if decoded.len() >= n => Ok(decoded[..n].iter().map(|&v| (v != 0) as u16).collect()),
            1 if decoded.len() >= n.div_ceil(8) => Ok((0..n).map(|b| ((decoded[b >> 3] >> (b & 7)) & 1) as u16).collect()),
            8 if decoded.len() >= n => Ok(decoded[..n].iter().map(|&v| v as u16).collect()),
            16 if decoded.len() >= 2 * n => Ok(decoded[..2 * n].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()),
            _ => Err(format!("frame {}: decoded {} bytes, expected {n} pixels at {} bit", index + 1, decoded.len(), self.bits_allocated)),
        }
    }
}
