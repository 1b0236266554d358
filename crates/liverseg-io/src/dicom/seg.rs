//! DICOM Segmentation objects (SEG, SOP class 1.2.840.10008.5.1.4.1.1.66.4, and
//! Label Map SEG, .66.7) read as one binary mask, on a reference CT grid or on the
//! SEG's own grid.
//!
//! * Frames are placed by their own position (PlanePositionSequence), orientation
//!   and pixel spacing from the per-frame or shared functional groups; the
//!   DimensionIndexSequence is not needed. Frames absent from a sparse SEG are
//!   empty.
//! * BINARY frames are bit-packed LSB first and continuous across frames.
//! * FRACTIONAL frames are foreground where `value >= MaximumFractionalValue / 2`
//!   (probability or occupancy of at least one half).
//! * LABELMAP frames are foreground where the value equals the chosen segment number.
//! * On a reference grid, each frame must lie on a reference slice (within 1/4
//!   slice) and be parallel to the slices; a frame on the same in-plane grid is
//!   copied pixel for pixel, otherwise it is resampled by nearest neighbour through
//!   world coordinates. Foreground off the grid is an error; empty frames off the
//!   grid are only counted (a SEG may carry empty frames for a longer series).
mod grid;
mod parse;
mod scan;

pub use grid::SLICE_TOLERANCE;
pub use parse::{Code, FrameInfo, FramePlane, SegFile, SegmentInfo, SegmentationType, LABELMAP_SEG_SOP_CLASS, SEG_SOP_CLASS};

use crate::{Error, Format, Result, SourceInfo};
use grid::{PlaceError, Placer};
use liverseg_volume::{Geometry, Mask};
use parse::ParseError;
use std::path::Path;

/// Which segment of a SEG becomes the mask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SegmentChoice {
    /// The segment coded as Liver (SCT 10200004 / SRT T-62000, else labelled
    /// "liver"); failing that, the only segment.
    #[default]
    Auto,
    Number(u16),
    /// SegmentLabel, compared case-insensitively.
    Label(String),
}

impl std::str::FromStr for SegmentChoice {
    type Err = std::convert::Infallible;
    /// "auto" / "" -> Auto, digits -> Number, anything else -> Label.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let t = s.trim();
        Ok(if t.is_empty() || t.eq_ignore_ascii_case("auto") {
            SegmentChoice::Auto
        } else if let Ok(n) = t.parse::<u16>() {
            SegmentChoice::Number(n)
        } else {
            SegmentChoice::Label(t.to_string())
        })
    }
}

/// What [`read_seg`] returns besides the mask (also summarised in `info.details`).
#[derive(Debug, Clone)]
pub struct SegReadout {
    /// 0/1 on the reference grid, or on the SEG's own grid without a reference.
    pub mask: Mask,
    pub info: SourceInfo,
    pub segments: Vec<SegmentInfo>,
    pub chosen: SegmentInfo,
    pub seg_type: SegmentationType,
    /// Frames in the file / frames that carry the chosen segment.
    pub frames_total: usize,
    pub frames_of_segment: usize,
    /// Frames of the chosen segment resampled (not copied pixel for pixel).
    pub frames_resampled: usize,
}

/// `Ok(None)` when the file is DICOM but not a Segmentation object.
pub fn try_read_seg(path: &Path, reference: Option<&Geometry>) -> Result<Option<(Mask, SourceInfo)>> {
    Ok(read_seg_opt(path, reference, &SegmentChoice::Auto)?.map(|r| (r.mask, r.info)))
}

/// Read one segment of a SEG as a 0/1 mask. Fails with `Unsupported` when the file
/// is not a Segmentation object.
pub fn read_seg(path: &Path, reference: Option<&Geometry>, segment: SegmentChoice) -> Result<SegReadout> {
    read_seg_opt(path, reference, &segment)?
        .ok_or_else(|| Error::unsupported(path, "not a DICOM Segmentation object (SOP class 1.2.840.10008.5.1.4.1.1.66.4 / .66.7)"))
}

/// Parse a SEG (segments, frames; pixels decoded on demand). `Ok(None)` when the
/// file is DICOM but not a Segmentation object.
pub fn open_seg(path: &Path) -> Result<Option<SegFile>> {
    use std::io::Read;
    // Decide from the file meta group (first bytes only) whether this is a SEG, so
    // that a large CT is not read in full just to be turned down.
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 18).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    match scan::meta(&head) {
        Err(m) => return Err(Error::invalid(path, format!("damaged DICOM: {m}"))),
        Ok(Some((_, uid, _))) if !uid.is_empty() && !parse::is_seg_sop_class(&uid) => return Ok(None),
        // No or incomplete meta group: the data set's SOPClassUID decides below.
        Ok(_) => {}
    }
    // The shared opener refuses impossible element lengths before dicom-rs
    // allocates them and turns a parser panic into an error.
    let obj = super::open_object(path)?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SegFile::from_object(obj))) {
        Err(_) => Err(Error::invalid(path, "reading the SEG attributes panicked")),
        Ok(Err(ParseError::Invalid(m))) => Err(Error::invalid(path, format!("malformed SEG: {m}"))),
        Ok(Err(ParseError::Unsupported(m))) => Err(Error::unsupported(path, m)),
        Ok(Ok(seg)) => Ok(seg),
    }
}

fn is_liver_code(c: &Code) -> bool {
    let scheme = c.scheme.to_ascii_uppercase();
    (c.value == "10200004" && (scheme == "SCT" || scheme == "SNM3" || scheme == "SRT" || scheme.is_empty()))
        || (c.value.eq_ignore_ascii_case("T-62000") && (scheme == "SRT" || scheme == "SNM3" || scheme.is_empty()))
}

fn describe(segments: &[SegmentInfo]) -> String {
    segments
        .iter()
        .map(|s| {
            let t = s.property_type.as_ref().map(|c| format!(", {} {}", c.scheme, c.value)).unwrap_or_default();
            format!("{} \"{}\"{t}", s.number, s.label)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn choose(path: &Path, segments: &[SegmentInfo], choice: &SegmentChoice) -> Result<SegmentInfo> {
    let found: Vec<&SegmentInfo> = match choice {
        SegmentChoice::Number(n) => segments.iter().filter(|s| s.number == *n).collect(),
        SegmentChoice::Label(l) => segments.iter().filter(|s| s.label.trim().eq_ignore_ascii_case(l.trim())).collect(),
        SegmentChoice::Auto => {
            // Segment 0 of a label map is the background, never a candidate.
            let candidates: Vec<&SegmentInfo> = segments.iter().filter(|s| s.number != 0).collect();
            let coded: Vec<&SegmentInfo> =
                candidates.iter().copied().filter(|s| s.property_type.as_ref().is_some_and(is_liver_code)).collect();
            let labelled: Vec<&SegmentInfo> =
                candidates.iter().copied().filter(|s| s.label.trim().eq_ignore_ascii_case("liver")).collect();
            if !coded.is_empty() {
                coded
            } else if !labelled.is_empty() {
                labelled
            } else if candidates.len() == 1 {
                candidates
            } else {
                return Err(Error::Ambiguous {
                    path: path.to_path_buf(),
                    message: format!("the SEG has {} segments and none is coded as liver; choose one of: {}", candidates.len(), describe(segments)),
                });
            }
        }
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::invalid(path, format!("no segment {choice:?} in this SEG; it has: {}", describe(segments)))),
        many => Err(Error::Ambiguous {
            path: path.to_path_buf(),
            message: format!("{} segments match {choice:?}; choose by number: {}", many.len(), describe(segments)),
        }),
    }
}

fn read_seg_opt(path: &Path, reference: Option<&Geometry>, choice: &SegmentChoice) -> Result<Option<SegReadout>> {
    let Some(seg) = open_seg(path)? else { return Ok(None) };
    let chosen = choose(path, &seg.segments, choice)?;
    let mut warnings = seg.warnings.clone();
    if let Some(f) = seg.frames.iter().position(|f| f.plane.is_none()) {
        return Err(Error::unsupported(
            path,
            format!(
                "frame {} has no patient position, orientation or pixel spacing (a SEG of a projection image such as CR/DX?): it cannot be placed on a 3-D grid",
                f + 1
            ),
        ));
    }
    let place_err = |e: PlaceError| match e {
        PlaceError::Invalid(m) => Error::invalid(path, m),
        PlaceError::Unsupported(m) => Error::unsupported(path, m),
    };

    let own;
    let (grid, geometry_source) = match reference {
        Some(g) => (g, "reference"),
        None => {
            let planes: Vec<FramePlane> = seg.frames.iter().filter_map(|f| f.plane).collect();
            let (g, w) = grid::own_geometry(&planes, seg.rows, seg.cols, seg.slice_spacing_hint).map_err(place_err)?;
            warnings.extend(w);
            own = g;
            (&own, "seg")
        }
    };

    let mut placer = Placer::new(grid);
    let mut frames_of_segment = 0;
    for (f, frame) in seg.frames.iter().enumerate() {
        if frame.segment.is_some_and(|s| s != chosen.number) {
            continue;
        }
        frames_of_segment += 1;
        let values = seg.frame_values(f).map_err(|m| Error::invalid(path, m))?;
        let fg: Vec<bool> = match seg.seg_type {
            SegmentationType::Binary => values.iter().map(|&v| v != 0).collect(),
            SegmentationType::Fractional => {
                let max = seg.max_fractional_value.unwrap_or(255);
                values.iter().map(|&v| 2 * v >= max).collect()
            }
            SegmentationType::Labelmap => values.iter().map(|&v| v == chosen.number).collect(),
        };
        let what = format!("frame {} (segment {})", f + 1, chosen.number);
        let Some(plane) = &frame.plane else { continue };
        placer.place(plane, seg.rows, seg.cols, &fg, &what).map_err(place_err)?;
    }
    if frames_of_segment == 0 {
        warnings.push(format!("segment {} has no frames: the mask is empty", chosen.number));
    }
    if placer.empty_off_grid > 0 {
        warnings.push(format!("{} empty frame(s) lie off the grid and were ignored", placer.empty_off_grid));
    }
    if placer.resampled > 0 {
        warnings.push(format!("{} frame(s) on another in-plane grid were resampled (nearest neighbour)", placer.resampled));
    }
    let frames_resampled = placer.resampled;
    let mask = Mask::new(grid.clone(), placer.mask).map_err(|e| Error::invalid(path, format!("mask: {e}")))?;

    let details = serde_json::json!({
        "sop_class": seg.sop_class,
        "transfer_syntax": seg.transfer_syntax,
        "segmentation_type": seg.seg_type.name(),
        "fractional_type": seg.fractional_type,
        "max_fractional_value": seg.max_fractional_value,
        "fractional_threshold": seg.max_fractional_value.map(|_| "value >= MaximumFractionalValue / 2"),
        "rows": seg.rows,
        "columns": seg.cols,
        "frames": seg.frames.len(),
        "frames_of_segment": frames_of_segment,
        "frames_resampled": frames_resampled,
        "empty_frames_off_grid": placer.empty_off_grid,
        "segments": seg.segments,
        "chosen_segment": chosen,
        "geometry_source": geometry_source,
    });
    let info = SourceInfo { format: Format::DicomSeg, path: path.to_path_buf(), warnings, details };
    Ok(Some(SegReadout {
        mask,
        info,
        segments: seg.segments.clone(),
        chosen,
        seg_type: seg.seg_type,
        frames_total: seg.frames.len(),
        frames_of_segment,
        frames_resampled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(number: u16, label: &str, code: Option<(&str, &str)>) -> SegmentInfo {
        SegmentInfo {
            number,
            label: label.into(),
            category: None,
            property_type: code.map(|(s, v)| Code { value: v.into(), scheme: s.into(), meaning: String::new() }),
            algorithm_type: None,
        }
    }

    #[test]
    fn segment_choice() {
        let p = Path::new("x.dcm");
        let segs = [seg(0, "Background", None), seg(1, "Spine", Some(("SCT", "421060004"))), seg(2, "organ", Some(("SRT", "T-62000")))];
        assert_eq!(choose(p, &segs, &SegmentChoice::Auto).unwrap().number, 2);
        assert_eq!(choose(p, &segs, &"1".parse().unwrap()).unwrap().number, 1);
        assert_eq!(choose(p, &segs, &"spine".parse().unwrap()).unwrap().number, 1);
        assert!(matches!(choose(p, &segs, &SegmentChoice::Number(7)), Err(Error::Invalid { .. })));
        // No liver: the only non-background segment, else ambiguous.
        assert_eq!(choose(p, &segs[..2], &SegmentChoice::Auto).unwrap().number, 1);
        let two = [seg(1, "a", None), seg(2, "b", None)];
        assert!(matches!(choose(p, &two, &SegmentChoice::Auto), Err(Error::Ambiguous { .. })));
        // Label fallback when nothing is coded.
        let labelled = [seg(1, "tumour", None), seg(2, " LIVER ", None)];
        assert_eq!(choose(p, &labelled, &SegmentChoice::Auto).unwrap().number, 2);
        assert_eq!("auto".parse::<SegmentChoice>().unwrap(), SegmentChoice::Auto);
    }
}
