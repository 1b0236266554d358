//! MetaImage .mha / .mhd+.raw (owned by the MetaImage work; placeholder signatures).
use crate::{Error, ReadOptions, ReadOutput, Result};
use liverseg_volume::DynVolume;
use std::path::Path;

pub fn read(path: &Path, _options: &ReadOptions) -> Result<ReadOutput> {
    Err(Error::unsupported(path, "MetaImage reading is not implemented yet"))
}

pub fn write(path: &Path, _volume: &DynVolume) -> Result<()> {
    Err(Error::unsupported(path, "MetaImage writing is not implemented yet"))
}
