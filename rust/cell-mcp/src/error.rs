//! The library's error type.

use std::path::PathBuf;

/// Everything a merge can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A declared server is malformed.
    #[error("MCP server {name:?}: {reason}")]
    InvalidServer { name: String, reason: String },
    /// A declared server name is unusable.
    #[error("MCP server name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// The servers file is not `{ "servers": { ... } }`.
    #[error("servers file: {reason}")]
    ServersFile { reason: String },
    /// The agent's format cannot express a declared server.
    #[error("MCP server {name:?} cannot be written for {agent}: {reason}")]
    Unsupported { agent: &'static str, name: String, reason: String },
    /// The config file, its lock file or its directory is a symbolic link: never followed (the
    /// agent controls its home and could point it at any file of the host).
    #[error("{}: is a symbolic link; refusing to follow it", path.display())]
    Symlink { path: PathBuf },
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when the caller's input is at fault (the CLI exits 2), false for I/O (exit 1).
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Io { .. } | Error::Symlink { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// Like [`Error::io`], for an `O_NOFOLLOW` open: `ELOOP` (the last component is a symbolic
    /// link) becomes [`Error::Symlink`].
    pub(crate) fn io_nofollow(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| {
            if source.raw_os_error() == Some(nix::libc::ELOOP) {
                Error::Symlink { path }
            } else {
                Error::Io { op, path, source }
            }
        }
    }
}
