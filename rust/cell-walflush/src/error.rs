//! The library's error type. Every variant names the database it is about.

use std::path::{Path, PathBuf};

/// Why a database could not be made consistent (or snapshotted).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path does not exist.
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    /// The path exists but is not a regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    /// The database path is a symbolic link: never followed.
    #[error("{}: is a symbolic link; refusing to follow it", path.display())]
    Symlink { path: PathBuf },
    /// A sidecar (`-journal`, `-wal`, `-shm`) is a symbolic link: never followed.
    #[error("{}: {} is a symbolic link; refusing to follow it", path.display(), file.display())]
    SymlinkSidecar { path: PathBuf, file: PathBuf },
    /// The file does not start with a valid SQLite header. Never opened with SQLite.
    #[error("{}: not an SQLite database ({reason}); left untouched", path.display())]
    NotSqlite { path: PathBuf, reason: String },
    /// A valid SQLite header this tool does not handle (a future file format version).
    #[error("{}: unsupported SQLite file ({reason}); left untouched", path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// The header is valid but SQLite cannot read the contents (or `quick_check` fails).
    #[error("{}: corrupt SQLite database ({detail}); left untouched", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// Another process held a lock for longer than the timeout.
    #[error(
        "{}: busy: locked by another process for more than {timeout_ms} ms (is the browser still running?)",
        path.display()
    )]
    Busy { path: PathBuf, timeout_ms: u128 },
    /// A reader kept part of the WAL from being copied into the main file.
    #[error(
        "{}: wal checkpoint incomplete: {checkpointed} of {frames} frames copied into the main file; a reader \
         holds an older snapshot, so the main file alone is not consistent yet (close the reader and run again)",
        path.display()
    )]
    CheckpointIncomplete { path: PathBuf, frames: u64, checkpointed: u64 },
    /// `--snapshot` would replace the database it reads.
    #[error("{}: the snapshot {} would overwrite the database itself", path.display(), dest.display())]
    SnapshotIsSource { path: PathBuf, dest: PathBuf },
    /// Two databases with the same file name snapshotted into one directory.
    #[error("{}: another database on the command line is also snapshotted to {}", path.display(), dest.display())]
    DuplicateSnapshot { path: PathBuf, dest: PathBuf },
    /// Any other SQLite failure.
    #[error("{}: {what}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A file system operation failed.
    #[error("{}: {what} {}: {source}", path.display(), file.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The database the error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Error::NotFound { path }
            | Error::NotAFile { path }
            | Error::Symlink { path }
            | Error::SymlinkSidecar { path, .. }
            | Error::NotSqlite { path, .. }
            | Error::Unsupported { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Busy { path, .. }
            | Error::CheckpointIncomplete { path, .. }
            | Error::SnapshotIsSource { path, .. }
            | Error::DuplicateSnapshot { path, .. }
            | Error::Sqlite { path, .. }
            | Error::Io { path, .. } => path,
        }
    }

    /// A stable machine-readable name for the `--json` report.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::NotAFile { .. } => "not_a_file",
            Error::Symlink { .. } | Error::SymlinkSidecar { .. } => "symlink",
            Error::NotSqlite { .. } => "not_sqlite",
            Error::Unsupported { .. } => "unsupported",
            Error::Corrupt { .. } => "corrupt",
            Error::Busy { .. } => "busy",
            Error::CheckpointIncomplete { .. } => "checkpoint_incomplete",
            Error::SnapshotIsSource { .. } => "snapshot_is_source",
            Error::DuplicateSnapshot { .. } => "duplicate_snapshot",
            Error::Sqlite { .. } => "sqlite",
            Error::Io { .. } => "io",
        }
    }

    pub(crate) fn io(path: &Path, what: &'static str, file: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let (path, file) = (path.to_owned(), file.to_owned());
        move |source| Error::Io { path, what, file, source }
    }
}
