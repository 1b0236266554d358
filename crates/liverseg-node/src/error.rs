//! What the node's public API can refuse, keeping each cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is not usable (what is wrong, in words).
    #[error("{0}")]
    Config(String),
    /// A file or folder of the node's storage.
    #[error("{}: {source}", path.display())]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A job file that does not hold a job.
    #[error("{}: not a job file: {source}", path.display())]
    JobFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An atomic write of a job file (the error names the file).
    #[error(transparent)]
    Write(#[from] liverseg_io::Error),
    /// A thread of the node could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    pub(crate) fn storage(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NodeError::Storage { path: path.into(), source }
    }
}
