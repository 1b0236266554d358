use std::path::{Path, PathBuf};

/// One error type for every format: it always names the file and says what is
/// wrong in one line, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is damaged, truncated or self-contradictory.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The file is valid but uses something liverseg does not read.
    #[error("{path}: unsupported: {message}")]
    Unsupported { path: PathBuf, message: String },
    /// A DICOM folder holds several candidate series and none was chosen.
    #[error("{path}: {message}")]
    Ambiguous { path: PathBuf, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Error::Invalid { path: path.to_path_buf(), message: message.into() }
    }
    pub fn unsupported(path: &Path, message: impl Into<String>) -> Self {
        Error::Unsupported { path: path.to_path_buf(), message: message.into() }
    }
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. } | Error::Invalid { path, .. } | Error::Unsupported { path, .. } | Error::Ambiguous { path, .. } => path,
        }
    }
}

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose
/// text the line already holds (many errors print their cause in their own
/// message and expose it as `source()` too). The one place the workspace
/// flattens error chains for messages and logs.
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}
