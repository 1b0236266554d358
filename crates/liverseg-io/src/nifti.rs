//! NIfTI-1, NIfTI-2 and Analyze 7.5 (owned by the NIfTI work; placeholder signatures).
use crate::{Error, ReadOptions, ReadOutput, Result};
use liverseg_volume::DynVolume;
use std::path::Path;

pub fn read(path: &Path, _options: &ReadOptions) -> Result<ReadOutput> {
    Err(Error::unsupported(path, "NIfTI reading is not implemented yet"))
}

pub fn write(path: &Path, _volume: &DynVolume) -> Result<()> {
    Err(Error::unsupported(path, "NIfTI writing is not implemented yet"))
}

/// Cheap content sniff: a NIfTI-1/2 or Analyze header at the start of the file.
pub fn looks_like_nifti(_path: &Path) -> Result<bool> {
    Ok(false)
}
