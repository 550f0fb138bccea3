//! The error type of the backup library.

use std::io;
use std::path::PathBuf;

/// What went wrong, naming the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    Crypto(String),
    #[error("snapshot {0} is encrypted; a key is required")]
    KeyRequired(String),
    #[error("key fingerprint {given} does not match {expected}, the key snapshot {snapshot} was written with")]
    WrongKey { snapshot: String, given: String, expected: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} is in use by another task")]
    Busy { what: String },
    #[error("{command}: {message}")]
    Command { command: String, message: String },
}

impl Error {
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    /// A file whose contents do not parse or check out.
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Corrupt { path: path.into(), message: message.into() }
    }
}

/// Attaches a path to an I/O result.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error> {
        self.map_err(|e| Error::io(path, e))
    }
}
