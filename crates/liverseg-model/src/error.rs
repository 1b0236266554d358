#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network config: {0}")]
    Config(String),
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
