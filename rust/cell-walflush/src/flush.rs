//! Making a database consistent in place: WAL checkpoint or hot-journal rollback.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::header::{inspect, open_nofollow, sidecar, Inspection, Mode, NewSidecars};
use crate::sqlite::{self, Failure};
use crate::{Error, Options, Outcome, Report};

/// Makes `path` consistent: afterwards the main file alone holds every committed transaction
/// and no uncommitted one.
///
/// * WAL: `PRAGMA wal_checkpoint(TRUNCATE)`. When another connection keeps reading the log,
///   truncation gives up after the timeout; that is still a success when every frame was
///   copied into the main file ([`Outcome::Checkpointed`] with `truncated: false`), and
///   [`Error::CheckpointIncomplete`] when a reader's older snapshot kept frames out of it.
/// * Rollback journal: a hot `-journal` (left by a writer that died mid-transaction) is first
///   rolled back in a private copy and checked there; only when that copy passes
///   `quick_check` is the database itself opened read-write, which rolls the journal back.
///
/// The database is validated before anything is written: the header by hand, the contents by
/// `PRAGMA quick_check` on a read-only connection. A file that fails either is left as it was.
///
/// # Errors
/// See [`Error`]; every variant names `path`.
pub fn flush(path: &Path, opts: &Options) -> Result<Report, Error> {
    let info = inspect(path)?;
    let outcome = match info.mode {
        Mode::Wal => flush_wal(path, opts)?,
        Mode::Rollback => flush_rollback(path, &info, opts)?,
    };
    Ok(Report { path: path.to_owned(), mode: info.mode, outcome })
}

fn flush_rollback(path: &Path, info: &Inspection, opts: &Options) -> Result<Outcome, Error> {
    match sqlite::read_only_check(path, opts.timeout) {
        Ok(()) => {
            // A journal a read-only connection does not call hot belongs to a live writer (which
            // holds a lock on the database) or was emptied at commit (TRUNCATE or PERSIST mode).
            let note = info
                .journal_len
                .is_some_and(|n| n > 0)
                .then(|| "a -journal exists but is not hot (a writer holds it, or it was zeroed)".to_owned());
            Ok(Outcome::NothingToDo { note })
        }
        Err(Failure::HotJournal(_)) => {
            drop(rolled_back_copy(path, opts)?);
            let conn =
                sqlite::open(path, false, opts.timeout).map_err(|f| f.into_error(path, "cannot open", opts.timeout))?;
            sqlite::quick_check(&conn).map_err(|f| f.into_error(path, "cannot roll back", opts.timeout))?;
            sqlite::close(conn).map_err(|f| f.into_error(path, "cannot close", opts.timeout))?;
            Ok(Outcome::RolledBack)
        }
        Err(f) => Err(f.into_error(path, "cannot read", opts.timeout)),
    }
}

fn flush_wal(path: &Path, opts: &Options) -> Result<Outcome, Error> {
    let t = opts.timeout;
    let new_sidecars = NewSidecars::note(path);
    if let Err(f) = sqlite::read_only_check(path, t) {
        // A read-only connection to a WAL database creates empty -wal and -shm files; do not
        // leave them next to a file that turned out to be unreadable.
        if matches!(f, Failure::Corrupt(_)) {
            new_sidecars.remove();
        }
        return Err(f.into_error(path, "cannot read", t));
    }
    let conn = sqlite::open(path, false, t).map_err(|f| f.into_error(path, "cannot open", t))?;
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .map_err(|e| sqlite::classify(e).into_error(path, "cannot read the journal mode", t))?;
    if !mode.eq_ignore_ascii_case("wal") {
        sqlite::close(conn).map_err(|f| f.into_error(path, "cannot close", t))?;
        return Ok(Outcome::NothingToDo { note: Some(format!("journal mode is {mode}, not wal")) });
    }
    let checkpoint = |how: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({how})"), [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })
        .map_err(|e| sqlite::classify(e).into_error(path, "checkpoint failed", t))
    };
    // PASSIVE first, for the number of frames in the log: a successful TRUNCATE reports 0.
    let (_, before, _) = checkpoint("PASSIVE")?;
    let (busy, log, copied) = checkpoint("TRUNCATE")?;
    sqlite::close(conn).map_err(|f| f.into_error(path, "cannot close", t))?;
    let frames = |n: i64| u64::try_from(n).unwrap_or(0);
    if busy == 0 {
        return Ok(if before <= 0 {
            Outcome::NothingToDo { note: None }
        } else {
            Outcome::Checkpointed { frames: frames(before), truncated: true }
        });
    }
    if log <= 0 {
        return Ok(Outcome::NothingToDo { note: Some("the wal is empty but in use by another connection".to_owned()) });
    }
    if copied >= log {
        return Ok(Outcome::Checkpointed { frames: frames(log), truncated: false });
    }
    Err(Error::CheckpointIncomplete { path: path.to_owned(), frames: frames(log), checkpointed: frames(copied) })
}

/// Copies `from` (database `db` or one of its sidecars) to the new file `to` (0600). `from` is
/// opened with `O_NOFOLLOW` and must be a regular file: a symbolic link is refused, never read
/// through.
fn copy_nofollow(db: &Path, from: &Path, to: &Path) -> Result<(), Error> {
    let refused = || {
        if from == db {
            Error::Symlink { path: db.to_owned() }
        } else {
            Error::SymlinkSidecar { path: db.to_owned(), file: from.to_owned() }
        }
    };
    if fs::symlink_metadata(from).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refused());
    }
    let mut src = open_nofollow(from).map_err(|e| {
        if fs::symlink_metadata(from).is_ok_and(|m| m.file_type().is_symlink()) {
            refused()
        } else {
            Error::io(db, "cannot open", from)(e)
        }
    })?;
    if !src.metadata().map_err(Error::io(db, "cannot stat", from))?.is_file() {
        return Err(Error::NotAFile { path: from.to_owned() });
    }
    let mut dst = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to).map_err(Error::io(
        db,
        "cannot create",
        to,
    ))?;
    io::copy(&mut src, &mut dst).map_err(Error::io(db, "cannot copy to", to))?;
    Ok(())
}

/// Copies the database and its hot journal into a private temporary directory and rolls the
/// journal back there (both copied with `O_NOFOLLOW`: a symbolic link is refused). The copy must
/// then pass `quick_check`. Returns the directory (deleted
/// on drop) and the rolled-back copy in it.
pub(crate) fn rolled_back_copy(path: &Path, opts: &Options) -> Result<(tempfile::TempDir, PathBuf), Error> {
    let t = opts.timeout;
    let dir = tempfile::Builder::new().prefix("cell-walflush-").tempdir().map_err(Error::io(
        path,
        "cannot create a temporary directory in",
        &std::env::temp_dir(),
    ))?;
    let name = path.file_name().ok_or_else(|| Error::NotAFile { path: path.to_owned() })?;
    let copy = dir.path().join(name);
    copy_nofollow(path, path, &copy)?;
    copy_nofollow(path, &sidecar(path, "-journal"), &sidecar(&copy, "-journal"))?;
    let checked = sqlite::open(&copy, false, t).and_then(|conn| {
        sqlite::quick_check(&conn)?;
        sqlite::close(conn)
    });
    match checked {
        Ok(()) => Ok((dir, copy)),
        Err(Failure::Corrupt(detail)) => Err(Error::Corrupt {
            path: path.to_owned(),
            detail: format!("still unreadable after rolling its hot journal back in a private copy: {detail}"),
        }),
        Err(f) => Err(f.into_error(path, "cannot roll back a private copy", t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rehearsal copies the database and its journal with `O_NOFOLLOW` (`fs::copy` followed a
    /// symlinked `-journal` and copied whatever it pointed at).
    #[test]
    fn rehearsal_refuses_symlinked_journal_and_database() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("data.db");
        rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
        let secret = d.path().join("secret");
        fs::write(&secret, "host secret").unwrap();
        std::os::unix::fs::symlink(&secret, sidecar(&db, "-journal")).unwrap();
        let opts = Options::default();
        let e = rolled_back_copy(&db, &opts).unwrap_err();
        assert!(matches!(&e, Error::SymlinkSidecar { file, .. } if *file == sidecar(&db, "-journal")), "{e}");
        assert!(e.to_string().ends_with("-journal is a symbolic link; refusing to follow it"), "{e}");
        assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret");

        let link = d.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let e = rolled_back_copy(&link, &opts).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
    }
}
