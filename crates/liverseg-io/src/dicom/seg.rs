//! DICOM-SEG reading onto a CT grid (placeholder signature).
use crate::{Result, SourceInfo};
use liverseg_volume::{Geometry, Mask};
use std::path::Path;

/// `Ok(None)` when the file is DICOM but not a Segmentation object.
pub fn try_read_seg(_path: &Path, _reference: Option<&Geometry>) -> Result<Option<(Mask, SourceInfo)>> {
    Ok(None)
}
