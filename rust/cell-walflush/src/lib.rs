//! cell-walflush: make browser SQLite databases consistent.
//!
//! A browser keeps committed data in places a plain file copy misses: the `-wal` file of a WAL
//! database, and (after a crash mid-transaction) half-written pages in the main file whose
//! originals sit in a hot `-journal`. [`flush`] fixes the database in place (WAL checkpoint,
//! hot-journal rollback); [`snapshot`] writes a consistent copy through the SQLite backup API
//! without writing to the source, even while a browser is using it. Both validate the file
//! before SQLite touches it ([`inspect`]: magic header, page size, format versions) and never
//! write to a file that does not parse.

mod error;
mod flush;
mod header;
mod snapshot;
mod sqlite;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use error::Error;
pub use flush::flush;
pub use header::{inspect, sidecar, Inspection, Mode, MAGIC};
pub use snapshot::{snapshot, snapshot_dest};

/// Knobs shared by [`flush`] and [`snapshot`].
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for a lock another process holds (SQLite's busy timeout; also the
    /// limit for retrying a backup step or waiting for readers before truncating a WAL).
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout: Duration::from_secs(5) }
    }
}

/// What was done to one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already consistent.
    NothingToDo { note: Option<String> },
    /// WAL frames copied into the main file; `truncated` is false when another connection was
    /// still reading the (fully copied) log.
    Checkpointed { frames: u64, truncated: bool },
    /// A hot journal was rolled back: the interrupted transaction is gone.
    RolledBack,
    /// A consistent copy was written to `dest`; `rolled_back` when the source had a hot journal
    /// (rolled back in a private copy, the source untouched).
    Snapshot { dest: PathBuf, rolled_back: bool },
}

/// The report for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub path: PathBuf,
    pub mode: Mode,
    pub outcome: Outcome,
}

impl Report {
    /// What was done, without the path: `wal checkpointed (12 frames), truncated`.
    #[must_use]
    pub fn summary(&self) -> String {
        match &self.outcome {
            Outcome::NothingToDo { note: None } => "consistent, nothing to do".to_owned(),
            Outcome::NothingToDo { note: Some(note) } => format!("consistent, nothing to do ({note})"),
            Outcome::Checkpointed { frames, truncated: true } => {
                format!("wal checkpointed ({frames} frames), truncated")
            }
            Outcome::Checkpointed { frames, truncated: false } => {
                format!("wal checkpointed ({frames} frames), not truncated: another connection is still reading it")
            }
            Outcome::RolledBack => "hot journal rolled back".to_owned(),
            Outcome::Snapshot { dest, rolled_back: false } => format!("snapshot -> {}", dest.display()),
            Outcome::Snapshot { dest, rolled_back: true } => {
                format!("snapshot -> {} (hot journal rolled back in a private copy; source untouched)", dest.display())
            }
        }
    }

    /// The `--json` form of this report.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "path": self.path.to_string_lossy(),
            "ok": true,
            "mode": self.mode,
            "message": self.summary(),
        });
        let action = match &self.outcome {
            Outcome::NothingToDo { note } => {
                v["note"] = serde_json::json!(note);
                "nothing_to_do"
            }
            Outcome::Checkpointed { frames, truncated } => {
                v["frames"] = serde_json::json!(frames);
                v["truncated"] = serde_json::json!(truncated);
                "checkpointed"
            }
            Outcome::RolledBack => "rolled_back",
            Outcome::Snapshot { dest, rolled_back } => {
                v["snapshot"] = serde_json::json!(dest.to_string_lossy());
                v["rolled_back"] = serde_json::json!(rolled_back);
                "snapshot"
            }
        };
        v["action"] = serde_json::json!(action);
        v
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.summary())
    }
}

impl Error {
    /// The `--json` form of this error.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path().to_string_lossy(),
            "ok": false,
            "error": self.kind(),
            "message": self.to_string(),
        })
    }
}
