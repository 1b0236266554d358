use std::path::PathBuf;

/// Everything `segment` and the writers can refuse, in one line that names the
/// stage or the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pre-processing: {0}")]
    Preprocess(#[from] liverseg_preprocess::Error),
    #[error("post-processing: {0}")]
    Imgproc(#[from] liverseg_imgproc::Error),
    #[error(transparent)]
    Io(#[from] liverseg_io::Error),
    #[error(transparent)]
    Volume(#[from] liverseg_volume::VolumeError),
    /// The model returned something unusable.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },
    /// The model failed (its own error kept as the cause).
    #[error("model {model}: {source}")]
    ModelFailed {
        model: String,
        #[source]
        source: crate::ModelError,
    },
    /// An option is out of range.
    #[error("invalid {name}: {message}")]
    Parameter { name: &'static str, message: String },
    /// An output could not be produced.
    #[error("{}: {message}", path.display())]
    Output { path: PathBuf, message: String },
}

impl Error {
    pub fn param(name: &'static str, message: impl Into<String>) -> Self {
        Error::Parameter {
            name,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
