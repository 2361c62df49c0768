//! What a database is, read from its header and its sidecar files, before SQLite opens it.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
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

/// The size of sidecar `file` of `db`, `None` when missing; a symbolic link is refused (SQLite
/// would read and write through it).
/// Opens `file` for reading with `O_NOFOLLOW` (a symbolic link fails with `ELOOP`).
pub(crate) fn open_nofollow(file: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().read(true).custom_flags(O_NOFOLLOW).open(file)
}

/// `O_NOFOLLOW` (no `libc` dependency in this crate): the kernel's value per architecture (Linux:
/// 0o100000 on arm, aarch64, powerpc, m68k; 0o400000 elsewhere, mips and sparc included).
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "m68k"
    )
))]
const O_NOFOLLOW: i32 = 0o100_000;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "m68k"
    ))
))]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_NOFOLLOW: i32 = 0x100;

fn len_if_exists(db: &Path, file: &Path) -> Result<Option<u64>, Error> {
    match fs::symlink_metadata(file) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(Error::SymlinkSidecar { path: db.to_owned(), file: file.to_owned() })
        }
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(db, "cannot stat", file)(e)),
    }
}

/// Checks that `path` is an SQLite 3 database this tool can handle and finds its mode.
/// Reads the first 100 bytes only; nothing is opened with SQLite and nothing is written.
/// Symbolic links are never followed: neither the database path nor its `-journal`, `-wal` or
/// `-shm` may be one.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Symlink`], [`Error::SymlinkSidecar`], [`Error::NotAFile`],
/// [`Error::NotSqlite`] (bad magic, too short, impossible page size), [`Error::Unsupported`]
/// (file format versions above 2), [`Error::Io`].
pub fn inspect(path: &Path) -> Result<Inspection, Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound { path: path.to_owned() }),
        Err(e) => return Err(Error::io(path, "cannot stat", path)(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::Symlink { path: path.to_owned() });
    }
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
    open_nofollow(path).and_then(|f| f.take(100).read_to_end(&mut header)).map_err(Error::io(
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
    len_if_exists(path, &sidecar(path, "-shm"))?;
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

    #[test]
    fn symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = write(d.path(), "real", &header(4096, 1, 1));
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // The hand-written O_NOFOLLOW is the kernel's: a link fails (ELOOP), a file opens.
        assert!(open_nofollow(&link).is_err());
        assert!(open_nofollow(&real).is_ok());
        let e = inspect(&link).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
        assert_eq!(e.to_string(), format!("{}: is a symbolic link; refusing to follow it", link.display()));
        assert_eq!(e.kind(), "symlink");
        for suffix in ["-journal", "-wal", "-shm"] {
            let side = sidecar(&real, suffix);
            std::os::unix::fs::symlink(d.path().join("elsewhere"), &side).unwrap();
            let e = inspect(&real).unwrap_err();
            assert!(matches!(&e, Error::SymlinkSidecar { file, .. } if *file == side), "{e}");
            fs::remove_file(&side).unwrap();
        }
        assert!(inspect(&real).is_ok());
    }
}
