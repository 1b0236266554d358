//! Volumes with true geometry.
//!
//! Every voxel array in liverseg travels with a [`Geometry`]: dims, spacing (mm),
//! origin (mm) and a 3x3 direction matrix, all in patient **LPS** coordinates
//! (DICOM / ITK convention: +x to the patient's left, +y posterior, +z superior).
//! Index <-> world conversion lives only in [`Geometry`]; nothing else in the
//! project is allowed to re-derive it.
//!
//! Voxel order is x fastest, then y, then z (NIfTI / ITK / DICOM frame order).

mod dynvol;
mod geometry;
mod overlap;
pub mod rng;
pub mod vec3;
mod volume;

pub use dynvol::{DType, DynVolume};
pub use geometry::{det3, inverse3, Geometry, GeometryError, Mat3, IDENTITY};
pub use overlap::{dice, Overlap};
pub use rng::SplitMix64;
pub use volume::{Mask, Volume, VolumeError};
