#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network config: {0}")]
    Config(String),
    /// The compute device asked for is not in this build or not on this machine.
    #[error("{0}")]
    Device(String),
    #[error("model: {0}")]
    Model(String),
    /// A file could not be read or written; the cause is kept.
    #[error("{}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An atomic write failed (the error names the file).
    #[error(transparent)]
    Write(#[from] liverseg_io::Error),
    #[error(transparent)]
    Data(#[from] liverseg_data::Error),
    #[error(transparent)]
    Preprocess(#[from] liverseg_preprocess::Error),
    #[error(transparent)]
    Volume(#[from] liverseg_volume::VolumeError),
}

impl Error {
    pub fn file(path: &std::path::Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::File { path: path.to_path_buf(), source: source.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
