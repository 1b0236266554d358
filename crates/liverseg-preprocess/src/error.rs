#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Imgproc(#[from] liverseg_imgproc::Error),
    #[error(transparent)]
    Volume(#[from] liverseg_volume::VolumeError),
    #[error(transparent)]
    Geometry(#[from] liverseg_volume::GeometryError),
    /// A parameter is out of range.
    #[error("invalid {name}: {message}")]
    Parameter { name: &'static str, message: String },
}

impl Error {
    pub fn param(name: &'static str, message: impl Into<String>) -> Self {
        Error::Parameter { name, message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
