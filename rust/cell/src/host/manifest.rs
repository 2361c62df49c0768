//! What a launch writes into its private git directory, as a list ([`Manifest`]), and the
//! reuse of an ended launch's directory for it ([`take_spare`], [`Manifest::apply`]).
//!
//! Why reuse: every file and directory a launch creates and a later one removes is an
//! inode allocated and freed, and on some file systems allocating is what costs: ext4
//! without a journal (the benchmark machine's) skips every inode freed in the last seconds
//! (minutes, while its table is unwritten) when it looks for a free one, so after many
//! launches each new inode took 50-100 us. An ended launch's directory is set aside as a
//! spare ([`SPARE`]); the next launch of the cell renames it to its own name and makes it
//! hold exactly what the manifest says: what the manifest writes is overwritten in place,
//! and everything else is renamed out of it for the sweep to remove, before its cell starts.
//!
//! What the ended cell left there is untrusted: only a real directory of ours with mode
//! exactly 0700 is reused (else it is set aside, and a new one made); inside, an entry is
//! kept only as the type the manifest says (a real directory its owner can use, or a
//! regular file with one link), never followed, and given a new one's mode and no user
//! attributes or access control lists (on the top too); every file is written without
//! following a link. Nothing else runs in the directory meanwhile: the cell that
//! had it is gone (its pid namespace ended with it), and the new cell starts after.

use std::collections::BTreeMap;

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};

/// The name prefix of an ended launch's private directory kept for the next launch.
pub(crate) const SPARE: &str = "spare-";

/// One thing a manifest writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A directory.
    Dir,
    /// A copy of a host file (a regular file when the manifest was made).
    Copy(Utf8PathBuf),
    /// A file with this text.
    Text(String),
}

/// What a private directory holds once seeded, by path relative to it; parents come
/// before what they hold.
#[derive(Debug, Default)]
pub(crate) struct Manifest(Vec<(Utf8PathBuf, Item)>, std::collections::BTreeSet<Utf8PathBuf>);

impl Manifest {
    /// Adds directory `rel` and every parent of it not yet in the manifest.
    pub(crate) fn dir(&mut self, rel: &Utf8Path) {
        if let Some(parent) = rel.parent().filter(|p| !p.as_str().is_empty()) {
            self.dir(parent);
        }
        // The second field: the directories already in, so that this stays linear.
        if self.1.insert(rel.to_owned()) {
            self.0.push((rel.to_owned(), Item::Dir));
        }
    }

    /// Adds a copy of `from` as `rel` when `from` is a regular file (never a link).
    pub(crate) fn copy(&mut self, from: &Utf8Path, rel: &Utf8Path) {
        if std::fs::symlink_metadata(from).is_ok_and(|m| m.is_file()) {
            self.0.push((rel.to_owned(), Item::Copy(from.to_owned())));
        }
    }

    /// Adds a copy of the tree `from` as `rel`: its directories and regular files (links
    /// and other files are left out); nothing when `from` cannot be listed.
    pub(crate) fn tree(&mut self, from: &Utf8Path, rel: &Utf8Path) {
        let Ok(entries) = from.read_dir_utf8() else { return };
        self.dir(rel);
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                self.tree(e.path(), &rel.join(e.file_name()));
            } else if ft.is_file() {
                self.0.push((rel.join(e.file_name()), Item::Copy(e.path().to_owned())));
            }
        }
    }

    /// Adds file `rel` with `text`.
    pub(crate) fn text(&mut self, rel: &Utf8Path, text: String) {
        self.0.push((rel.to_owned(), Item::Text(text)));
    }

    /// Makes `private` (a new directory, or a spare [`take_spare`] gave) hold exactly what
    /// the manifest says: first everything else in it is moved out (renamed into `aside`
    /// for the sweep, removed where that fails), then every item is written.
    ///
    /// # Errors
    /// When an item cannot be written.
    pub(crate) fn apply(&self, private: &Utf8Path, aside: &Utf8Path) -> anyhow::Result<()> {
        let wanted: BTreeMap<&Utf8Path, bool> =
            self.0.iter().map(|(p, i)| (p.as_path(), matches!(i, Item::Dir))).collect();
        let mut moved = 0usize;
        clear(private, Utf8Path::new(""), &wanted, aside, &mut moved)
            .with_context(|| format!("cannot list {private}"))?;
        for (rel, item) in &self.0 {
            let to = private.join(rel);
            match item {
                Item::Dir => match std::fs::create_dir(&to) {
                    Ok(()) => {}
                    // Kept by [`clear`]: a real directory.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e).with_context(|| format!("cannot create {to}")),
                },
                Item::Copy(from) => {
                    let mut src = std::fs::File::open(from).with_context(|| format!("cannot read {from}"))?;
                    let mut dst = open_no_follow(&to)?;
                    let n = std::io::copy(&mut src, &mut dst).with_context(|| format!("cannot copy {from} to {to}"))?;
                    end_at(&dst, n, &to)?;
                }
                Item::Text(text) => {
                    use std::io::Write as _;
                    let mut dst = open_no_follow(&to)?;
                    dst.write_all(text.as_bytes()).with_context(|| format!("cannot write {to}"))?;
                    end_at(&dst, text.len() as u64, &to)?;
                }
            }
        }
        Ok(())
    }
}

/// Moves out of `dir` (at `rel` in the private directory) everything `wanted` does not
/// have as the type found: a directory only when real, ours and usable by us, a file only
/// when regular, ours, writable by us and with one link. Directories kept are cleared
/// likewise; one that cannot be listed after all is moved out whole, and so is every entry
/// whose name is not UTF-8 (no manifest has one).
///
/// # Errors
/// When `dir` itself cannot be listed (the private directory's top: nothing may stay
/// unseen in it).
fn clear(
    dir: &Utf8Path,
    rel: &Utf8Path,
    wanted: &BTreeMap<&Utf8Path, bool>,
    aside: &Utf8Path,
    moved: &mut usize,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let me = nix::unistd::geteuid().as_raw();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        // Of the entry itself (links not followed), looked up from the open directory.
        let Ok(m) = e.metadata() else { continue };
        let here = e.file_name().into_string().ok().map(|name| rel.join(name));
        let keep = match here.as_deref().and_then(|h| wanted.get(h)) {
            Some(true) => m.is_dir() && m.uid() == me && m.mode() & 0o700 == 0o700,
            Some(false) => m.is_file() && m.nlink() == 1 && m.uid() == me && m.mode() & 0o600 == 0o600,
            None => false,
        };
        let keep = keep && scrub(&path, if m.is_dir() { 0o755 } else { 0o644 }, m.mode());
        match (keep, m.is_dir(), here) {
            (true, true, Some(here)) => {
                let cleared = Utf8Path::from_path(&path).map(|sub| clear(sub, &here, wanted, aside, moved));
                if !matches!(cleared, Some(Ok(()))) {
                    move_out(&path, true, aside, moved);
                }
            }
            (true, _, _) => {}
            (false, is_dir, _) => move_out(&path, is_dir, aside, moved),
        }
    }
    Ok(())
}

/// Gives a kept entry `p` (a real directory or a regular file, `mode` now) what a new one
/// has: mode `want` (0755 for a directory, 0644 for a file), and no extended attributes a user can set (`user.*`, access
/// control lists: nothing the ended cell stored there for the next). Whether it is clean
/// now (else it is moved out).
fn scrub(p: &std::path::Path, want: u32, mode: u32) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    if mode & 0o7777 != want && std::fs::set_permissions(p, std::fs::Permissions::from_mode(want)).is_err() {
        return false;
    }
    let Ok(path) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    let settable = |name: &[u8]| name.starts_with(b"user.") || name.starts_with(b"system.posix_acl");
    // One call in the usual case (no or few names); when they do not fit (ERANGE), the size
    // asked for and one more try. Any other failure counts as not clean: moved out.
    let list = || -> Option<Vec<u8>> {
        let read = |names: &mut Vec<u8>| {
            // SAFETY: a NUL-terminated path and a buffer of the length given.
            let n = unsafe { nix::libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
            usize::try_from(n).map(|n| names.truncate(n)).map_err(|_| std::io::Error::last_os_error())
        };
        let mut names = vec![0u8; 1024];
        match read(&mut names) {
            Ok(()) => return Some(names),
            Err(e) if e.raw_os_error() == Some(nix::libc::ERANGE) => {}
            Err(_) => return None,
        }
        // SAFETY: a NUL-terminated path; a zero-size query writes nothing.
        let size = unsafe { nix::libc::llistxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        names = vec![0u8; usize::try_from(size).ok()? + 256];
        read(&mut names).ok().map(|()| names)
    };
    let Some(names) = list() else { return false };
    if !names.split(|b| *b == 0).any(settable) {
        return true;
    }
    for name in names.split(|b| *b == 0).filter(|n| settable(n)) {
        let Ok(name) = std::ffi::CString::new(name) else { return false };
        // SAFETY: two NUL-terminated strings.
        unsafe { nix::libc::lremovexattr(path.as_ptr(), name.as_ptr()) };
    }
    list().is_some_and(|names| !names.split(|b| *b == 0).any(settable))
}

/// Renames `p` into `aside` as a discarded entry (the sweep removes those), else removes it.
fn move_out(p: &std::path::Path, is_dir: bool, aside: &Utf8Path, moved: &mut usize) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    *moved += 1;
    if is_dir {
        // Moving a directory to another parent needs write access to it (its `..` changes).
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o700 != 0o700 {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700));
            }
        }
    }
    let nanos = crate::sys::since_epoch().as_nanos();
    let to = aside.join(format!("{}{}-{moved}-{nanos}", crate::host::gitview::DISCARDED, std::process::id()));
    if std::fs::rename(p, &to).is_ok() {
        return;
    }
    let _ = match Utf8Path::from_path(p) {
        Some(p) if is_dir => crate::sys::remove_tree(p),
        _ => std::fs::remove_file(p),
    };
}

/// Opens `path` for writing from its start (created 0644), never through a link. Not
/// truncated: a file kept from the spare is overwritten in place ([`end_at`] cuts what is
/// left after), so that its blocks are not freed and allocated again (on a disk mounted
/// with `discard`, freeing a file's blocks costs about 0.1 ms).
fn open_no_follow(path: &Utf8Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot write {path}"))
}

/// Ends the file `f` (at `path`) after its first `len` bytes, when it is longer.
fn end_at(f: &std::fs::File, len: u64, path: &Utf8Path) -> anyhow::Result<()> {
    let now = f.metadata().with_context(|| format!("cannot read {path}"))?.len();
    if now > len {
        f.set_len(len).with_context(|| format!("cannot write {path}"))?;
    }
    Ok(())
}

/// Takes a spare directory of `dir` (the cell's `git` directory) as `to`, when one is there
/// and may be reused: a real directory of ours, mode exactly 0700, whose access control
/// lists and user attributes could be removed.
/// One that may not is set aside for the sweep. Whether `to` is a spare now.
pub(crate) fn take_spare(dir: &Utf8Path, to: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = dir.read_dir_utf8() else { return false };
    for e in entries.flatten() {
        if !e.file_name().starts_with(SPARE) {
            continue;
        }
        // Another launch may take it first: then this rename fails and the next is tried.
        if std::fs::rename(e.path(), to).is_err() {
            continue;
        }
        // Exactly 0700: one the cell made unreadable (0300) could not be cleared.
        let exact = std::fs::symlink_metadata(to).is_ok_and(|m| m.mode() & 0o7777 == 0o700);
        // Its attributes and access control lists go (a list the cell set could let others in).
        if exact && crate::sys::is_private_dir(to) && scrub(to.as_std_path(), 0o700, 0o700) {
            return true;
        }
        let mut moved = 0;
        move_out(to.as_std_path(), true, dir, &mut moved);
    }
    false
}

/// Sets a finished launch's private directory aside: as the cell's spare when it has none,
/// else as discarded (the next launch's sweep removes it). Removed at once when it cannot
/// be renamed.
pub(crate) fn discard(private: &Utf8Path) {
    let Some(dir) = private.parent() else { return };
    let name = private.file_name().unwrap_or_default();
    let has_spare = dir.read_dir_utf8().is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().starts_with(SPARE))));
    let nanos = crate::sys::since_epoch().as_nanos();
    let to = if has_spare {
        dir.join(format!("{}{name}-{nanos}", crate::host::gitview::DISCARDED))
    } else {
        dir.join(format!("{SPARE}{name}"))
    };
    if std::fs::rename(private, to).is_err() {
        let _ = crate::sys::remove_tree(private);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    fn manifest(host: &Utf8Path) -> Manifest {
        std::fs::create_dir_all(host.join("refs/heads")).unwrap();
        std::fs::write(host.join("refs/heads/main"), "x\n").unwrap();
        std::fs::write(host.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let mut m = Manifest::default();
        m.dir(Utf8Path::new("objects/info"));
        m.text(Utf8Path::new("objects/info/alternates"), "/alt\n".into());
        m.copy(&host.join("HEAD"), Utf8Path::new("HEAD"));
        m.copy(&host.join("absent"), Utf8Path::new("absent"));
        m.tree(&host.join("refs"), Utf8Path::new("refs"));
        m.text(Utf8Path::new("config"), "[core]\n".into());
        m
    }

    /// Every path below `dir`, relative, with a `/` after directories.
    fn listing(dir: &Utf8Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.as_std_path().to_owned()];
        while let Some(d) = todo.pop() {
            // Every name, UTF-8 or not.
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if e.file_type().unwrap().is_dir() {
                    out.push(format!("{rel}/"));
                    todo.push(e.path());
                } else {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }

    const SEEDED: [&str; 8] = [
        "HEAD",
        "config",
        "objects/",
        "objects/info/",
        "objects/info/alternates",
        "refs/",
        "refs/heads/",
        "refs/heads/main",
    ];

    #[test]
    fn a_new_directory_gets_exactly_the_manifest() {
        let (_t, tmp) = crate::sys::temp_dir();
        let m = manifest(&tmp.join("host"));
        let private = tmp.join("git/1-1");
        std::fs::create_dir_all(&private).unwrap();
        m.apply(&private, &tmp.join("git")).unwrap();
        assert_eq!(listing(&private), SEEDED);
        assert_eq!(std::fs::read_to_string(private.join("refs/heads/main")).unwrap(), "x\n");
        assert_eq!(std::fs::read_to_string(private.join("objects/info/alternates")).unwrap(), "/alt\n");
    }

    #[test]
    fn a_spare_keeps_nothing_its_cell_planted_and_writes_through_no_link() {
        let (_t, tmp) = crate::sys::temp_dir();
        let m = manifest(&tmp.join("host"));
        let git = tmp.join("git");
        let spare = git.join(format!("{SPARE}1-1"));
        std::fs::create_dir_all(&spare).unwrap();
        std::fs::set_permissions(&spare, std::fs::Permissions::from_mode(0o700)).unwrap();
        m.apply(&spare, &git).unwrap();
        let outside = tmp.join("outside");
        std::fs::write(&outside, "host file\n").unwrap();
        // What a cell could leave: links where files go, a FIFO, a second link to a file,
        // a locked directory, hooks, a branch and objects of its own.
        std::fs::remove_file(spare.join("HEAD")).unwrap();
        std::os::unix::fs::symlink(&outside, spare.join("HEAD")).unwrap();
        std::fs::remove_file(spare.join("config")).unwrap();
        nix::unistd::mkfifo(spare.join("config").as_std_path(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::hard_link(&outside, spare.join("refs/heads/main.lock")).unwrap();
        std::fs::remove_file(spare.join("refs/heads/main")).unwrap();
        std::fs::hard_link(spare.join("refs/heads/main.lock"), spare.join("refs/heads/main")).unwrap();
        // A longer file where a shorter one goes: cut after the new contents.
        std::fs::write(spare.join("objects/info/alternates"), "/alt\n".repeat(2000)).unwrap();
        std::fs::create_dir_all(spare.join("hooks")).unwrap();
        std::fs::write(spare.join("hooks/pre-commit"), "#!/bin/sh\n").unwrap();
        std::fs::write(spare.join("refs/heads/evil"), "y\n").unwrap();
        // Attributes and modes a fresh view does not have, on what is kept.
        for (path, mode) in
            [(spare.join("refs"), 0o1777), (spare.join("objects/info/alternates"), 0o666), (spare.clone(), 0o700)]
        {
            let c = std::ffi::CString::new(path.as_str()).unwrap();
            // SAFETY: NUL-terminated strings and a buffer of the length given.
            let r = unsafe { nix::libc::setxattr(c.as_ptr(), c"user.leak".as_ptr(), b"data".as_ptr().cast(), 4, 0) };
            assert_eq!(r, 0, "setxattr {path}: {}", std::io::Error::last_os_error());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // Names that are not UTF-8, which no manifest has.
        let odd = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff");
        std::fs::create_dir_all(spare.as_std_path().join(odd)).unwrap();
        std::fs::write(spare.as_std_path().join(odd).join("f"), "x").unwrap();
        std::fs::write(spare.as_std_path().join("refs/heads").join(odd), "y\n").unwrap();
        std::os::unix::fs::symlink(&tmp, spare.join("objects/pack")).unwrap();
        std::fs::create_dir_all(spare.join("objects/ab/locked")).unwrap();
        std::fs::set_permissions(spare.join("objects/ab"), std::fs::Permissions::from_mode(0o000)).unwrap();

        let taken = git.join("2-2");
        assert!(take_spare(&git, &taken));
        m.apply(&taken, &git).unwrap();
        assert_eq!(listing(&taken), SEEDED);
        for (path, mode) in
            [(taken.join("refs"), 0o755), (taken.join("objects/info/alternates"), 0o644), (taken.clone(), 0o700)]
        {
            assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, mode, "{path}");
            let c = std::ffi::CString::new(path.as_str()).unwrap();
            // SAFETY: a NUL-terminated path; a zero-size query writes nothing.
            let n = unsafe { nix::libc::listxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
            assert_eq!(n, 0, "attributes left on {path}");
        }
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host file\n");
        assert_eq!(std::fs::read_to_string(taken.join("HEAD")).unwrap(), "ref: refs/heads/main\n");
        assert_eq!(std::fs::read_to_string(taken.join("refs/heads/main")).unwrap(), "x\n");
        assert_eq!(std::fs::metadata(taken.join("refs/heads/main")).unwrap().nlink(), 1);
        let alternates = std::fs::read_to_string(taken.join("objects/info/alternates")).unwrap();
        assert!(alternates == "/alt\n", "not cut after the new contents: {} bytes", alternates.len());
        // What was moved out waits for the sweep as discarded entries beside it.
        let discarded =
            git.read_dir_utf8().unwrap().flatten().filter(|e| e.file_name().starts_with("discarded-")).count();
        assert!(discarded >= 5, "{discarded}");
        let _ = std::process::Command::new("chmod").args(["-R", "u+rwx"]).arg(&git).status();
    }

    #[test]
    fn only_a_private_spare_is_taken() {
        let (_t, tmp) = crate::sys::temp_dir();
        let git = tmp.join("git");
        let spare = git.join(format!("{SPARE}1-1"));
        std::fs::create_dir_all(&spare).unwrap();
        std::fs::set_permissions(&spare, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!take_spare(&git, &git.join("2-2")));
        assert!(!git.join("2-2").exists() && !spare.exists(), "set aside, not kept");
        // Nor one its owner cannot list (which would then not be cleared).
        for mode in [0o300, 0o100, 0o000, 0o1700] {
            std::fs::create_dir_all(&spare).unwrap();
            std::fs::set_permissions(&spare, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(!take_spare(&git, &git.join("2-2")), "mode {mode:o}");
            assert!(!git.join("2-2").exists() && !spare.exists(), "mode {mode:o}");
        }
        // A link named as a spare is not followed either.
        std::os::unix::fs::symlink(&tmp, git.join(format!("{SPARE}3-3"))).unwrap();
        assert!(!take_spare(&git, &git.join("4-4")));
        assert!(!git.join("4-4").exists());
    }

    #[test]
    fn an_ended_launch_leaves_one_spare_and_discards_the_rest() {
        let (_t, tmp) = crate::sys::temp_dir();
        let git = tmp.join("git");
        for name in ["1-1", "2-2"] {
            std::fs::create_dir_all(git.join(name)).unwrap();
            discard(&git.join(name));
        }
        let names: Vec<String> = git.read_dir_utf8().unwrap().flatten().map(|e| e.file_name().to_owned()).collect();
        assert_eq!(names.iter().filter(|n| n.starts_with(SPARE)).count(), 1, "{names:?}");
        assert_eq!(names.iter().filter(|n| n.starts_with("discarded-")).count(), 1, "{names:?}");
    }

    #[test]
    fn a_long_list_of_attributes_is_scrubbed_whole() {
        let (_t, tmp) = crate::sys::temp_dir();
        let f = tmp.join("f");
        std::fs::write(&f, "x").unwrap();
        let c = std::ffi::CString::new(f.as_str()).unwrap();
        // More names than the first buffer holds (about 2.4 KiB of them).
        for i in 0..60 {
            let name = std::ffi::CString::new(format!("user.a-rather-long-attribute-name-{i:03}")).unwrap();
            // SAFETY: NUL-terminated strings and a buffer of the length given.
            let r = unsafe { nix::libc::setxattr(c.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
            assert_eq!(r, 0, "setxattr {f} #{i}: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a NUL-terminated path; a zero-size query writes nothing.
        let before = unsafe { nix::libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
        assert!(before > 1024, "the names fit the first buffer ({before} bytes): the test proves nothing");
        assert!(scrub(f.as_std_path(), 0o644, 0o100_644));
        // SAFETY: as above.
        assert_eq!(unsafe { nix::libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) }, 0);
    }
}
