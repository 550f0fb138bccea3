//! What can go wrong with a volume operation, sorted by what the caller should do about it.

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The volume, snapshot or file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad input: a name, size, format or content type that is not allowed.
    #[error("{0}")]
    Invalid(String),
    /// The request clashes with what exists: a name taken, a base image still in use.
    #[error("{0}")]
    Conflict(String),
    /// The storage cannot be used now: path missing, not mounted, disabled, a tool missing.
    #[error("{0}")]
    Unavailable(String),
    /// The backend cannot do this for this volume (e.g. snapshots of raw files on dir).
    #[error("{0}")]
    Unsupported(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// An external tool (qemu-img, tar, cp) failed; the message carries its stderr.
    #[error("{0}")]
    Command(String),
}

impl StorageError {
    /// An I/O error about `path`; a missing file becomes [`StorageError::NotFound`].
    pub fn io(what: &str, path: &Path, source: io::Error) -> StorageError {
        if source.kind() == io::ErrorKind::NotFound {
            return StorageError::NotFound(format!("{what} {}: no such file or directory", path.display()));
        }
        StorageError::Io { context: format!("{what} {}", path.display()), source }
    }
}
