//! Medical image formats to and from liverseg volumes.
//!
//! This crate is the only place in liverseg that knows file formats. Every reader
//! returns a [`DynVolume`] whose [`Geometry`](liverseg_volume::Geometry) is in
//! patient LPS coordinates, plus a [`SourceInfo`] describing what was read.
//! Every writer goes through [`atomic`], so an interrupted run never leaves a
//! half-written output.

pub mod atomic;
pub mod dicom;
mod error;
pub mod input_info;
pub mod manifest;
pub mod metaimage;
mod names;
pub mod nifti;
pub mod utc;

pub use error::{error_line, Error, Result};
pub use input_info::InputInfo;
pub use names::{strip_extension, VOLUME_FILE_EXTENSIONS};

use liverseg_volume::{DynVolume, Mask};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What kind of file (or folder) a volume came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Nifti1,
    Nifti2,
    Analyze,
    MetaImage,
    DicomSeries,
    DicomSeg,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Nifti1 => "nifti1",
            Format::Nifti2 => "nifti2",
            Format::Analyze => "analyze",
            Format::MetaImage => "metaimage",
            Format::DicomSeries => "dicom-series",
            Format::DicomSeg => "dicom-seg",
        }
    }
}

/// Options that change how an input is read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// DICOM: which series to read when a folder holds several: a
    /// SeriesInstanceUID or the index shown by `liverseg info`.
    pub series: Option<String>,
    /// DICOM: resample a stack with uneven spacing or missing slices onto a
    /// regular grid instead of refusing it.
    pub allow_irregular: bool,
    /// Images with a 4th dimension (time, components): which one to take.
    pub volume_index: usize,
}

/// What a reader learned about its input besides the voxels.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub format: Format,
    pub path: PathBuf,
    /// Problems that did not stop reading (gantry tilt corrected, 4-D input
    /// reduced to one volume, qform used because sform was absent, ...).
    pub warnings: Vec<String>,
    /// Format-specific details (for DICOM: the series chosen and the others found).
    /// Never contains patient names or IDs.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct ReadOutput {
    pub volume: DynVolume,
    pub info: SourceInfo,
    /// DICOM input: the series the reader chose, typed (files in slice order,
    /// SOP instance UIDs, frame of reference, grid, the other series found).
    /// The DICOM-SEG and RTSTRUCT writers refer to it. `None` for other formats.
    pub dicom: Option<dicom::DicomSelection>,
}

/// Output formats a volume can be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFormat {
    /// `.nii` or `.nii.gz`
    Nifti,
    /// `.mha` (one file) or `.mhd` + `.raw`
    MetaImage,
}

impl WriteFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".nii") || name.ends_with(".nii.gz") {
            Ok(WriteFormat::Nifti)
        } else if name.ends_with(".mha") || name.ends_with(".mhd") {
            Ok(WriteFormat::MetaImage)
        } else {
            Err(Error::unsupported(path, "output name must end in .nii, .nii.gz, .mha or .mhd"))
        }
    }
}

/// Read any supported image: a NIfTI / Analyze / MetaImage file, a DICOM file or
/// a folder holding a DICOM series (searched recursively).
pub fn read_image(path: &Path, options: &ReadOptions) -> Result<ReadOutput> {
    if path.is_dir() {
        return dicom::read_series(path, options);
    }
    if !path.exists() {
        return Err(Error::invalid(path, "no such file or folder"));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".mha") || name.ends_with(".mhd") {
        return metaimage::read(path, options);
    }
    if name.ends_with(".nii") || name.ends_with(".nii.gz") || name.ends_with(".hdr") || name.ends_with(".img")
        || name.ends_with(".hdr.gz") || name.ends_with(".img.gz")
    {
        return nifti::read(path, options);
    }
    // No telling extension: look at the content.
    if dicom::looks_like_dicom(path)? {
        return dicom::read_file(path, options);
    }
    if nifti::looks_like_nifti(path)? {
        return nifti::read(path, options);
    }
    Err(Error::unsupported(path, "not a NIfTI, Analyze, MetaImage or DICOM file (unknown extension and content)"))
}

/// Read a reference mask as binary (label >= 1 is foreground, so LiTS' tumour
/// label 2 counts as liver). With `reference`, DICOM-SEG and DICOM mask series
/// are mapped onto that CT grid by position.
pub fn read_mask(path: &Path, reference: Option<&liverseg_volume::Geometry>, options: &ReadOptions) -> Result<(Mask, SourceInfo)> {
    if path.is_file() && dicom::looks_like_dicom(path)? {
        if let Some(seg) = dicom::seg::try_read_seg(path, reference)? {
            return Ok(seg);
        }
    }
    let out = read_image(path, options)?;
    Ok((out.volume.to_mask(|v| v >= 1.0), out.info))
}

/// Write a volume in the format named by the file extension; atomic.
pub fn write_image(path: &Path, volume: &DynVolume) -> Result<()> {
    match WriteFormat::from_path(path)? {
        WriteFormat::Nifti => nifti::write(path, volume),
        WriteFormat::MetaImage => metaimage::write(path, volume),
    }
}
