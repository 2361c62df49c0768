//! What a database is, read from its header and its sidecar files, before SQLite opens it.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Error;

/// The 16 bytes every SQLite 3 database starts with.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How the database journals its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Write-ahead log: committed data may live only in `<db>-wal` until a checkpoint.
    Wal,
    /// Rollback journal (DELETE, TRUNCATE or PERSIST): a crash mid-transaction leaves a hot
    /// `<db>-journal` whose pages must be written back.
    Rollback,
}

/// A database file and its sidecars as found on disk.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The journal mode: WAL when the header says so (bytes 18 and 19 are 2) or a non-empty
    /// `-wal` file exists (SQLite then opens the database in WAL mode whatever the header says).
    pub mode: Mode,
    /// Page size from the header.
    pub page_size: u32,
    /// Size of `<db>-wal`, if it exists.
    pub wal_len: Option<u64>,
    /// Size of `<db>-journal`, if it exists.
    pub journal_len: Option<u64>,
}

/// `<db><suffix>`, e.g. `Cookies-journal`.
#[must_use]
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The `-wal` and `-shm` files a read-only connection to a WAL database creates when they are
/// missing. Remembers which existed so that they can be removed again next to a file that
/// turned out to be unreadable.
pub(crate) struct NewSidecars {
    created_if_missing: Vec<PathBuf>,
}

impl NewSidecars {
    pub(crate) fn note(path: &Path) -> NewSidecars {
        let created_if_missing =
            ["-wal", "-shm"].iter().map(|s| sidecar(path, s)).filter(|p| fs::symlink_metadata(p).is_err()).collect();
        NewSidecars { created_if_missing }
    }

    /// Removes the ones that did not exist when [`NewSidecars::note`] ran.
    pub(crate) fn remove(&self) {
        for p in &self.created_if_missing {
            let _ = fs::remove_file(p);
        }
    }
}

fn len_if_exists(db: &Path, file: &Path) -> Result<Option<u64>, Error> {
    match fs::metadata(file) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(db, "cannot stat", file)(e)),
    }
}

/// Checks that `path` is an SQLite 3 database this tool can handle and finds its mode.
/// Reads the first 100 bytes only; nothing is opened with SQLite and nothing is written.
///
/// # Errors
/// [`Error::NotFound`], [`Error::NotAFile`], [`Error::NotSqlite`] (bad magic, too short,
/// impossible page size), [`Error::Unsupported`] (file format versions above 2), [`Error::Io`].
pub fn inspect(path: &Path) -> Result<Inspection, Error> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound { path: path.to_owned() }),
        Err(e) => return Err(Error::io(path, "cannot stat", path)(e)),
    };
    if !meta.is_file() {
        return Err(Error::NotAFile { path: path.to_owned() });
    }
    let not_sqlite = |reason: &str| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let hint = if ["-wal", "-journal", "-shm"].iter().any(|s| name.ends_with(s)) {
            "; this looks like a sidecar file: pass the database itself"
        } else {
            ""
        };
        Error::NotSqlite { path: path.to_owned(), reason: format!("{reason}{hint}") }
    };
    if meta.len() == 0 {
        return Err(not_sqlite("empty file"));
    }
    let mut header = Vec::with_capacity(100);
    fs::File::open(path).and_then(|f| f.take(100).read_to_end(&mut header)).map_err(Error::io(
        path,
        "cannot read",
        path,
    ))?;
    if header.len() < 100 {
        return Err(not_sqlite(&format!("{} bytes, shorter than the 100-byte header", header.len())));
    }
    if &header[..16] != MAGIC {
        return Err(not_sqlite("no \"SQLite format 3\" header"));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u32::from(n),
        n => return Err(not_sqlite(&format!("impossible page size {n} in the header"))),
    };
    let (write_version, read_version) = (header[18], header[19]);
    for (what, v) in [("write", write_version), ("read", read_version)] {
        if v == 0 || v > 2 {
            return Err(Error::Unsupported {
                path: path.to_owned(),
                reason: format!("file format {what} version {v} in the header (1 and 2 are known)"),
            });
        }
    }
    let wal_len = len_if_exists(path, &sidecar(path, "-wal"))?;
    let journal_len = len_if_exists(path, &sidecar(path, "-journal"))?;
    let wal = write_version == 2 || read_version == 2 || wal_len.is_some_and(|n| n > 0);
    Ok(Inspection { mode: if wal { Mode::Wal } else { Mode::Rollback }, page_size, wal_len, journal_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn header(page: u16, w: u8, r: u8) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&page.to_be_bytes());
        h[18] = w;
        h[19] = r;
        h
    }

    #[test]
    fn modes_and_refusals() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a", &header(4096, 1, 1));
        assert_eq!(inspect(&p).unwrap().mode, Mode::Rollback);
        let p = write(d.path(), "b", &header(4096, 2, 2));
        let i = inspect(&p).unwrap();
        assert_eq!((i.mode, i.page_size, i.wal_len), (Mode::Wal, 4096, None));
        let p = write(d.path(), "c", &header(1, 1, 1));
        assert_eq!(inspect(&p).unwrap().page_size, 65536);
        write(d.path(), "a-wal", b"x");
        assert_eq!(inspect(&d.path().join("a")).unwrap().mode, Mode::Wal);

        let p = write(d.path(), "e", b"");
        assert!(matches!(inspect(&p), Err(Error::NotSqlite { .. })));
        let p = write(d.path(), "f", &header(4096, 1, 1)[..50]);
        assert!(matches!(inspect(&p), Err(Error::NotSqlite { .. })));
        let p = write(d.path(), "g", &header(1000, 1, 1));
        assert!(matches!(inspect(&p), Err(Error::NotSqlite { .. })));
        let p = write(d.path(), "h", &header(4096, 3, 1));
        assert!(matches!(inspect(&p), Err(Error::Unsupported { .. })));
        let p = write(d.path(), "x-journal", &[7u8; 200]);
        let e = inspect(&p).unwrap_err().to_string();
        assert!(e.contains("sidecar"), "{e}");
        assert!(matches!(inspect(&d.path().join("nope")), Err(Error::NotFound { .. })));
        assert!(matches!(inspect(d.path()), Err(Error::NotAFile { .. })));
    }
}
