#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network config: {0}")]
    Config(String),
    /// The compute device asked for is not in this build or not on this machine.
    #[error("{0}")]
    Device(String),
    #[error("model: {0}")]
    Model(String),
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Data(#[from] liverseg_data::Error),
    #[error(transparent)]
    Volume(#[from] liverseg_volume::VolumeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
