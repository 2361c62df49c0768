//! Opening databases and sorting SQLite's failures into what this tool does about them.

use std::path::Path;
use std::time::Duration;

use rusqlite::{ffi, Connection, ErrorCode, OpenFlags};

use crate::Error;

/// A failed SQLite call, sorted.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Locked by another process for longer than the busy timeout.
    Busy,
    /// The contents cannot be parsed (or `quick_check` reports problems).
    Corrupt(String),
    /// A read-only connection found a hot journal it may not roll back.
    HotJournal(rusqlite::Error),
    /// Anything else.
    Other(rusqlite::Error),
}

pub(crate) fn classify(e: rusqlite::Error) -> Failure {
    let rusqlite::Error::SqliteFailure(f, _) = &e else { return Failure::Other(e) };
    if f.extended_code == ffi::SQLITE_READONLY_ROLLBACK {
        return Failure::HotJournal(e);
    }
    match f.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Failure::Busy,
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Failure::Corrupt(e.to_string()),
        _ => Failure::Other(e),
    }
}

impl Failure {
    /// The error about database `path`; `what` says what was being done.
    pub(crate) fn into_error(self, path: &Path, what: &'static str, timeout: Duration) -> Error {
        let path = path.to_owned();
        match self {
            Failure::Busy => Error::Busy { path, timeout_ms: timeout.as_millis() },
            Failure::Corrupt(detail) => Error::Corrupt { path, detail },
            Failure::HotJournal(source) | Failure::Other(source) => Error::Sqlite { path, what, source },
        }
    }
}

/// Opens an existing database (never creates one, never through a symbolic link:
/// `SQLITE_OPEN_NOFOLLOW`) with a busy timeout.
pub(crate) fn open(path: &Path, read_only: bool, timeout: Duration) -> Result<Connection, Failure> {
    let access = if read_only { OpenFlags::SQLITE_OPEN_READ_ONLY } else { OpenFlags::SQLITE_OPEN_READ_WRITE };
    let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(timeout).map_err(classify)?;
    Ok(conn)
}

/// `PRAGMA quick_check`: reads every page (this is also what makes a read-write connection
/// roll a hot journal back, and a read-only one report it).
pub(crate) fn quick_check(conn: &Connection) -> Result<(), Failure> {
    let mut stmt = conn.prepare("PRAGMA quick_check(20)").map_err(classify)?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
        .map_err(classify)?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(Failure::Corrupt(format!("quick_check: {}", rows.join("; "))))
    }
}

pub(crate) fn close(conn: Connection) -> Result<(), Failure> {
    conn.close().map_err(|(_, e)| classify(e))
}

/// Opens `path` read-only, runs `quick_check` and closes it.
pub(crate) fn read_only_check(path: &Path, timeout: Duration) -> Result<(), Failure> {
    let conn = open(path, true, timeout)?;
    quick_check(&conn)?;
    close(conn)
}
