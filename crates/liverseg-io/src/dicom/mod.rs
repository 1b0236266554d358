//! DICOM series, mask series and DICOM-SEG (owned by the DICOM work; placeholder signatures).
pub mod seg;
pub mod seg_write;
pub mod rtstruct;

use crate::{Error, ReadOptions, ReadOutput, Result};
use std::path::Path;

/// Read the chosen series of a folder (recursive).
pub fn read_series(path: &Path, _options: &ReadOptions) -> Result<ReadOutput> {
    Err(Error::unsupported(path, "DICOM reading is not implemented yet"))
}

/// Read a single DICOM file (one slice, or a multi-frame image).
pub fn read_file(path: &Path, _options: &ReadOptions) -> Result<ReadOutput> {
    Err(Error::unsupported(path, "DICOM reading is not implemented yet"))
}

/// Part-10 preamble + "DICM", checked without parsing the file.
pub fn looks_like_dicom(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 132];
    match f.read_exact(&mut head) {
        Ok(()) => Ok(&head[128..132] == b"DICM"),
        Err(_) => Ok(false),
    }
}
