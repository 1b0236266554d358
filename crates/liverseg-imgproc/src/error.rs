use liverseg_volume::{GeometryError, VolumeError};

/// Everything an image-processing kernel can refuse. Kernels never panic on a
/// valid volume (1-voxel-thick axes, empty masks, odd orientations); what they
/// cannot do is reported here in one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of range (negative radius, lo >= hi, ...).
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter { name: &'static str, message: String },
    /// Two volumes (or a volume and a box) that must share a grid do not.
    #[error("grid mismatch: {0}")]
    GridMismatch(String),
    /// The input holds nothing to work on (e.g. no body voxel above the threshold).
    #[error("nothing to work on: {0}")]
    Empty(String),
    /// The volume's orientation does not allow the operation (e.g. an axial crop
    /// on a volume whose slice axis is not head-feet).
    #[error("unsupported orientation: {0}")]
    Orientation(String),
    /// More voxels than a kernel's index type can address.
    #[error("volume too large for {kernel}: {voxels} voxels")]
    TooLarge { kernel: &'static str, voxels: usize },
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn param(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidParameter { name, message: message.into() }
    }
}
