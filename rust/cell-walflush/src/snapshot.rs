//! Consistent copies through the SQLite online backup API.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::flush::rolled_back_copy;
use crate::header::{inspect, sidecar, Mode, NewSidecars};
use crate::sqlite::{self, Failure};
use crate::{Error, Options, Outcome, Report};

const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Where [`snapshot`] writes the copy of `path`: `dir/<file name of path>`.
#[must_use]
pub fn snapshot_dest(path: &Path, dir: &Path) -> Option<PathBuf> {
    path.file_name().map(|name| dir.join(name))
}

/// Writes a consistent copy of `path` to `dir/<file name>` without writing to `path` or its
/// sidecars, even while another process writes to it.
///
/// The source is opened read-only (checkpoint-on-close disabled) and copied in one
/// `sqlite3_backup_step(-1)`, i.e. inside one read transaction: the copy is the database as of
/// one commit. While a rollback-journal writer holds its lock the step is retried until the
/// timeout. A hot journal cannot be rolled back read-only, so the source and its journal are
/// then copied to a private directory, rolled back there, and the copy is the backup source.
///
/// The copy is one self-contained file in rollback-journal (DELETE) mode, so it opens read-only
/// without `-wal` or `-shm` files; it passes `quick_check` before it replaces `dir/<file name>`
/// atomically (a `0600`
/// temporary file in `dir`, renamed); stale `-journal`, `-wal` and `-shm` files of an earlier
/// snapshot are removed first so they cannot be replayed onto the new one. `dir` is created
/// (`0700`) if missing.
///
/// # Errors
/// See [`Error`]; every variant names `path`. Nothing is left in `dir` on failure.
pub fn snapshot(path: &Path, dir: &Path, opts: &Options) -> Result<Report, Error> {
    let t = opts.timeout;
    let info = inspect(path)?;
    let dest = snapshot_dest(path, dir).ok_or_else(|| Error::NotAFile { path: path.to_owned() })?;
    let src_meta = fs::symlink_metadata(path).map_err(Error::io(path, "cannot stat", path))?;
    if let Ok(meta) = fs::metadata(&dest) {
        if meta.dev() == src_meta.dev() && meta.ino() == src_meta.ino() {
            return Err(Error::SnapshotIsSource { path: path.to_owned(), dest });
        }
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Error::io(path, "cannot create", dir))?;

    let new_sidecars = NewSidecars::note(path);
    let corrupt_source = |f: &Failure| {
        if info.mode == Mode::Wal && matches!(f, Failure::Corrupt(_)) {
            new_sidecars.remove();
        }
    };
    // `_copy_dir` keeps a rolled-back private copy alive while it is the backup source.
    let (src, _copy_dir, rolled_back) = match open_source(path, t) {
        Ok(conn) => (conn, None, false),
        Err(Failure::HotJournal(_)) => {
            let (copy_dir, copy) = rolled_back_copy(path, opts)?;
            let conn = open_source(&copy, t).map_err(|f| f.into_error(path, "cannot open the rolled-back copy", t))?;
            (conn, Some(copy_dir), true)
        }
        Err(f) => {
            corrupt_source(&f);
            return Err(f.into_error(path, "cannot open", t));
        }
    };

    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".walflush-tmp")
        .tempfile_in(dir)
        .map_err(Error::io(path, "cannot create a temporary file in", dir))?
        .into_temp_path();
    let copied = backup(&src, &tmp, t);
    for suffix in SIDECARS {
        remove_if_exists(&sidecar(&tmp, suffix)).map_err(Error::io(path, "cannot remove", &sidecar(&tmp, suffix)))?;
    }
    sqlite::close(src).map_err(|f| f.into_error(path, "cannot close", t))?;
    copied.map_err(|f| {
        corrupt_source(&f);
        f.into_error(path, "backup failed", t)
    })?;
    fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(Error::io(path, "cannot sync", &tmp))?;
    for suffix in SIDECARS {
        let stale = sidecar(&dest, suffix);
        remove_if_exists(&stale).map_err(Error::io(path, "cannot remove the stale", &stale))?;
    }
    tmp.persist(&dest).map_err(|e| Error::io(path, "cannot rename the snapshot to", &dest)(e.error))?;
    fs::File::open(dir).and_then(|f| f.sync_all()).map_err(Error::io(path, "cannot sync", dir))?;
    Ok(Report { path: path.to_owned(), mode: info.mode, outcome: Outcome::Snapshot { dest, rolled_back } })
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Read-only, no checkpoint when closed, and page 1 read (which is where a hot journal shows).
fn open_source(path: &Path, timeout: Duration) -> Result<Connection, Failure> {
    let conn = sqlite::open(path, true, timeout)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(sqlite::classify)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())).map_err(sqlite::classify)?;
    Ok(conn)
}

fn backup(src: &Connection, tmp: &Path, timeout: Duration) -> Result<(), Failure> {
    let mut dst = Connection::open_with_flags(tmp, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sqlite::classify)?;
    dst.busy_timeout(timeout).map_err(sqlite::classify)?;
    {
        let job = Backup::new(src, &mut dst).map_err(sqlite::classify)?;
        let deadline = Instant::now() + timeout;
        loop {
            match job.step(-1).map_err(sqlite::classify)? {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked => {
                    if Instant::now() >= deadline {
                        return Err(Failure::Busy);
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                _ => {}
            }
        }
    }
    // A single self-contained file: readable read-only without creating -wal and -shm.
    let _: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |row| row.get(0)).map_err(sqlite::classify)?;
    sqlite::quick_check(&dst)?;
    sqlite::close(dst)
}
