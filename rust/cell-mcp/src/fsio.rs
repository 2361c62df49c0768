//! Careful file handling: lock, backups, atomic replace (with the mount-point fallback).

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::Error;

/// How many `<file>.backup-*` copies we keep.
pub const BACKUPS_KEPT: usize = 5;

/// `path` with `suffix` appended to its file name.
#[must_use]
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Create the parent directories of `path` (new ones 0700).
///
/// # Errors
/// [`Error::Io`] naming the directory.
pub fn ensure_parent(path: &Path) -> Result<(), Error> {
    let dir = parent(path);
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Error::io("create directory", dir))
}

/// True when `path` itself (not what it points to) is a symbolic link.
fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Refuse a config file `path` that is a symbolic link, or whose lock file or parent directory
/// is one. The agent controls the directory between runs; following a link would read, copy
/// (as a `.corrupt-*` file) or write some other file of the host. The opens themselves use
/// `O_NOFOLLOW` too, for a link that appears after this check.
///
/// # Errors
/// [`Error::Symlink`] naming the link.
pub fn refuse_symlinks(path: &Path) -> Result<(), Error> {
    for p in [parent(path), path, &sibling(path, ".lock")] {
        if is_symlink(p) {
            return Err(Error::Symlink { path: p.to_owned() });
        }
    }
    Ok(())
}

/// Hold an exclusive `flock` on `<file>.lock` until the guard drops. The lock file is opened
/// with `O_NOFOLLOW`: a symbolic link there is refused, its target never created.
///
/// # Errors
/// [`Error::Symlink`] when the lock file is a symbolic link, [`Error::Io`] when it cannot be
/// opened or locked.
pub fn lock(path: &Path) -> Result<Flock<File>, Error> {
    let lock_path = sibling(path, ".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(Error::io_nofollow("open lock file", &lock_path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
        op: "lock",
        path: lock_path,
        source: io::Error::from(errno),
    })
}

/// Read the file, `None` when it does not exist. Opened with `O_NOFOLLOW`: a symbolic link is
/// refused, never read through.
///
/// # Errors
/// [`Error::Symlink`] for a symbolic link, [`Error::Io`] for anything else but "not found".
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let mut f = match OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io_nofollow("read", path)(e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(Error::io("read", path))?;
    Ok(Some(bytes))
}

/// UTC time as `YYYYMMDDTHHMMSS.ffffffZ`: sortable, and unique enough for backups.
#[must_use]
pub fn timestamp(now: SystemTime) -> String {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}{m:02}{day:02}T{:02}{:02}{:02}.{:06}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_micros())
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// True for a suffix we produced with [`timestamp`] (so we never delete a user's own files).
fn is_our_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'T',
            15 => *c == b'.',
            22 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Write `bytes` to a new file `path` (0600), synced. Refuses to overwrite.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(Error::io("create", path))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io("write", path))
}

/// Save the current contents of `path` (`bytes`) as `<file>.<kind>-<timestamp>`; returns the
/// copy's path. Where the target will be replaced by rename, the copy is a hard link to the old
/// inode (no data written: exact bytes, and the fast path for a 5 MB `~/.claude.json`); on a
/// mount point, or when linking fails, it is a written and synced copy.
///
/// # Errors
/// [`Error::Io`] naming the copy.
pub fn save_aside(path: &Path, kind: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    let link = !is_mount_point(path) && fs::symlink_metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64);
    let mut now = SystemTime::now();
    loop {
        let aside = sibling(path, &format!(".{kind}-{}", timestamp(now)));
        let result = if link {
            match fs::hard_link(path, &aside) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => write_new(&aside, bytes),
                other => other.map_err(Error::io("link", &aside)),
            }
        } else {
            write_new(&aside, bytes)
        };
        match result {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                now += std::time::Duration::from_micros(1);
            }
            other => return other.map(|()| aside),
        }
    }
}

/// Delete all but the newest [`BACKUPS_KEPT`] of our `<file>.backup-<timestamp>` copies.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed or a backup removed.
pub fn rotate_backups(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = parent(path);
    let prefix = format!("{}.backup-", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let mut ours = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.strip_prefix(&prefix).is_some_and(is_our_timestamp) {
            ours.push(name.to_owned());
        }
    }
    ours.sort_unstable();
    let excess = ours.len().saturating_sub(BACKUPS_KEPT);
    let mut removed = Vec::new();
    for name in ours.into_iter().take(excess) {
        let p = dir.join(name);
        fs::remove_file(&p).map_err(Error::io("remove old backup", &p))?;
        removed.push(p);
    }
    Ok(removed)
}

/// How the target was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Temp file, fsync, rename, fsync of the directory.
    Atomic,
    /// Overwritten in place, because the target is a mount point (a bind-mounted single file).
    InPlace,
}

/// True when `path` is a regular file (not a symbolic link: never followed) on a different
/// device from its directory: a mount point, which a rename cannot replace.
fn is_mount_point(path: &Path) -> bool {
    match (fs::symlink_metadata(path), fs::symlink_metadata(parent(path))) {
        (Ok(f), Ok(d)) => f.file_type().is_file() && d.file_type().is_dir() && f.dev() != d.dev(),
        _ => false,
    }
}

/// Replace `path` with `bytes`. New files are 0600; an existing file keeps its mode and owner.
///
/// # Errors
/// [`Error::Io`] naming the file.
///
/// `linked_copy` is a hard-linked backup of the old contents (see [`save_aside`]): should the
/// rename turn out impossible, it is replaced by a real copy before the in-place write.
pub fn write_atomic(path: &Path, bytes: &[u8], linked_copy: Option<(&Path, &[u8])>) -> Result<WriteMode, Error> {
    let existing = fs::symlink_metadata(path).ok().filter(|m| m.file_type().is_file());
    if is_mount_point(path) {
        write_in_place(path, bytes)?;
        return Ok(WriteMode::InPlace);
    }
    let dir = parent(path);
    let tmp = sibling(path, &format!(".cell-mcp-{}.tmp", std::process::id()));
    let tmp = tmp.with_file_name(format!(".{}", tmp.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let _ = fs::remove_file(&tmp);
    let result = (|| -> Result<io::Result<()>, Error> {
        let mode = existing.as_ref().map_or(0o600, |m| m.permissions().mode() & 0o7777);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(Error::io("create temporary file", &tmp))?;
        if let Some(m) = &existing {
            // Root merging for a user keeps the user's ownership; a failure here is harmless
            // when we are that user already.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.set_permissions(fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &tmp))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(Error::io("write", &tmp))?;
        drop(f);
        Ok(fs::rename(&tmp, path))
    })();
    match result {
        Ok(Ok(())) => {
            File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("fsync directory", dir))?;
            Ok(WriteMode::Atomic)
        }
        Ok(Err(e)) if matches!(e.raw_os_error(), Some(nix::libc::EBUSY | nix::libc::EXDEV)) => {
            // A bind-mounted file on the same device: rename cannot replace a mount point.
            let _ = fs::remove_file(&tmp);
            if let Some((copy, old)) = linked_copy {
                unshare(path, copy, old)?;
            }
            write_in_place(path, bytes)?;
            Ok(WriteMode::InPlace)
        }
        Ok(Err(e)) => {
            let _ = fs::remove_file(&tmp);
            Err(Error::Io { op: "rename into place", path: path.to_owned(), source: e })
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Make `copy` its own file when it is a hard link to `path`.
fn unshare(path: &Path, copy: &Path, old: &[u8]) -> Result<(), Error> {
    let same = match (fs::symlink_metadata(path), fs::symlink_metadata(copy)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same {
        let tmp = sibling(copy, ".tmp");
        let _ = fs::remove_file(&tmp);
        write_new(&tmp, old)?;
        fs::rename(&tmp, copy).map_err(Error::io("rename", copy))?;
    }
    Ok(())
}

/// Overwrite without truncating first, then cut to length and sync: readers holding our lock
/// never see it, others may see a mix for an instant (the reason this is only the fallback).
/// `O_NOFOLLOW`: never written through a symbolic link.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(Error::io_nofollow("open for in-place write", path))?;
    f.write_all(bytes)
        .and_then(|()| f.set_len(bytes.len() as u64))
        .and_then(|()| f.sync_all())
        .map_err(Error::io("write in place", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(timestamp(t), "20231114T221320.123456Z");
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000.000000Z");
        assert!(is_our_timestamp(&timestamp(SystemTime::now())));
        assert!(!is_our_timestamp("20231114T221320Z"));
    }

    #[test]
    fn rotation_keeps_five_and_spares_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        for i in 0..8 {
            let t = UNIX_EPOCH + Duration::from_secs(1_000 + i);
            fs::write(sibling(&f, &format!(".backup-{}", timestamp(t))), "x").unwrap();
        }
        fs::write(sibling(&f, ".backup-mine"), "keep").unwrap();
        fs::write(dir.path().join("other.json.backup-19700101T000000.000000Z"), "keep").unwrap();
        let removed = rotate_backups(&f).unwrap();
        assert_eq!(removed.len(), 3);
        assert!(removed[0].to_string_lossy().ends_with("19700101T001640.000000Z"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 7);
    }

    #[test]
    fn atomic_write_keeps_mode_and_new_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        assert_eq!(write_atomic(&f, b"one", None).unwrap(), WriteMode::Atomic);
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&f, b"two", None).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn symlinks_are_not_mount_points_and_not_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("c.json");
        // A link to a file on another device looked like a bind-mounted file.
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(!is_mount_point(&link));
        assert!(matches!(read_optional(&link), Err(Error::Symlink { .. })));
        assert!(matches!(refuse_symlinks(&link), Err(Error::Symlink { path }) if path == link));
        assert!(matches!(write_in_place(&link, b"x"), Err(Error::Symlink { .. })));
        let f = dir.path().join("real.json");
        fs::write(&f, "{}").unwrap();
        assert!(!is_mount_point(&f));
        assert!(refuse_symlinks(&f).is_ok());
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), sibling(&f, ".lock")).unwrap();
        assert!(matches!(refuse_symlinks(&f), Err(Error::Symlink { .. })));
        assert!(matches!(lock(&f), Err(Error::Symlink { .. })));
        assert!(!dir.path().join("elsewhere").exists());
    }
}
