use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] liverseg_io::Error),
    #[error(transparent)]
    Preprocess(#[from] liverseg_preprocess::Error),
    #[error(transparent)]
    Imgproc(#[from] liverseg_imgproc::Error),
    #[error(transparent)]
    Volume(#[from] liverseg_volume::VolumeError),
    #[error(transparent)]
    Geometry(#[from] liverseg_volume::GeometryError),
    /// A dataset, manifest or cache file is not what it should be.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A parameter is out of range.
    #[error("invalid {name}: {message}")]
    Parameter { name: &'static str, message: String },
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid { path: path.into(), message: message.into() }
    }
    pub fn param(name: &'static str, message: impl Into<String>) -> Self {
        Error::Parameter { name, message: message.into() }
    }
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
