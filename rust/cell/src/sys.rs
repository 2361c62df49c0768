//! OS helpers shared by the host side and the inside of a cell.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt as _;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::{fcntl, FcntlArg};

/// Source descriptors are parked at or above this number so moving them to their fixed
/// targets never overwrites one another.
pub const PARK_FD: RawFd = 100;

/// When `path` (not followed if a link) was made: its birth time, by `statx` itself (the
/// standard library asks `statx` only on glibc, so a musl build would never know it);
/// `None` where the file system keeps none, or it cannot be looked at.
#[must_use]
pub fn birth_time(path: &std::path::Path) -> Option<std::time::SystemTime> {
    use std::os::unix::ffi::OsStrExt as _;
    const STATX_BTIME: u32 = 0x800;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statx is a valid value of the plain C struct.
    let mut buf: nix::libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes at most one struct statx into `buf`, which lives for the call.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_statx,
            nix::libc::AT_FDCWD,
            c.as_ptr(),
            nix::libc::AT_SYMLINK_NOFOLLOW,
            STATX_BTIME,
            &raw mut buf,
        )
    };
    if rc != 0 || buf.stx_mask & STATX_BTIME == 0 {
        return None;
    }
    let secs = u64::try_from(buf.stx_btime.tv_sec).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::new(secs, buf.stx_btime.tv_nsec))
}

/// Duplicates `fd` to a close-on-exec descriptor at or above [`PARK_FD`].
///
/// # Errors
/// When the descriptor cannot be duplicated.
pub fn park(fd: &OwnedFd) -> anyhow::Result<OwnedFd> {
    fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(PARK_FD))
        .context("cannot duplicate a descriptor")
        // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that we now own.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Renames `from` to `to` unless `to` exists (`renameat2` with `RENAME_NOREPLACE`), by the
/// system call itself: not every C library has a wrapper for it (musl before 1.2.5 has none).
///
/// # Errors
/// The call's error (`EEXIST` when `to` exists).
pub fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> Result<(), nix::errno::Errno> {
    use std::os::unix::ffi::OsStrExt as _;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes()).map_err(|_| nix::errno::Errno::EINVAL)?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes()).map_err(|_| nix::errno::Errno::EINVAL)?;
    // SAFETY: two NUL-terminated paths that outlive the call; no memory is written.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_renameat2,
            nix::libc::AT_FDCWD,
            from.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            nix::libc::RENAME_NOREPLACE,
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

/// Clears the signal mask; for use between fork and exec.
///
/// # Errors
/// When `pthread_sigmask` fails.
pub fn unblock_all_signals() -> std::io::Result<()> {
    // SAFETY: sigemptyset and pthread_sigmask are async-signal-safe and only touch the
    // local set and this thread's mask.
    unsafe {
        let mut set: nix::libc::sigset_t = std::mem::zeroed();
        nix::libc::sigemptyset(&raw mut set);
        if nix::libc::pthread_sigmask(nix::libc::SIG_SETMASK, &raw const set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether only root can change which program `path` runs: every directory on the way
/// belongs to root and no one else may write it (one that others may write counts when it
/// is sticky and the entry in it belongs to root, as `/nix/store` is), every link on the
/// way lies in such a directory (and is followed, up to 16 of them), and the file at the end
/// is root's, written by no one else. A process of any other account cannot replace it.
#[must_use]
pub fn only_root_can_replace(path: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    root_holds(path, |m| m.is_file() && m.uid() == 0 && m.mode() & 0o022 == 0)
}

/// Whether only root can change what directory `path` names and what it holds, as
/// [`only_root_can_replace`] judges a file: a `PATH` entry no other account can add a
/// program to.
#[must_use]
pub fn only_root_can_change_dir(path: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    root_holds(path, |m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0)
}

/// Whether every directory and link on the way to `path` is as [`only_root_can_replace`]
/// asks, and `end` holds for what is there.
fn root_holds(path: &Utf8Path, end: impl Fn(&std::fs::Metadata) -> bool) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if !path.is_absolute() {
        return false;
    }
    let mut todo: Vec<String> = path.components().skip(1).map(|c| c.as_str().to_owned()).collect();
    todo.reverse();
    let mut at = std::path::PathBuf::from("/");
    let mut links = 0;
    let safe_dir = |dir: &std::path::Path, entry: &std::fs::Metadata| {
        std::fs::symlink_metadata(dir).is_ok_and(|d| {
            d.is_dir() && d.uid() == 0 && (d.mode() & 0o022 == 0 || (d.mode() & 0o1000 != 0 && entry.uid() == 0))
        })
    };
    while let Some(name) = todo.pop() {
        match name.as_str() {
            "." | "" => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let next = at.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&next) else { return false };
        if !safe_dir(&at, &meta) {
            return false;
        }
        if meta.file_type().is_symlink() {
            links += 1;
            let Ok(target) = std::fs::read_link(&next) else { return false };
            if links > 16 {
                return false;
            }
            if target.is_absolute() {
                at = std::path::PathBuf::from("/");
            }
            todo.extend(target.iter().filter_map(|c| c.to_str()).filter(|c| *c != "/").map(str::to_owned).rev());
            continue;
        }
        at = next;
    }
    std::fs::symlink_metadata(&at).is_ok_and(|m| end(&m))
}

/// Writes `bytes` to a new file of mode 0600; never replaces a file or follows a link.
///
/// # Errors
/// When the file exists (or is a link) or cannot be written.
pub fn write_new_private(path: &Utf8Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create {path}"))?;
    file.write_all(bytes).with_context(|| format!("cannot write {path}"))?;
    file.sync_all().with_context(|| format!("cannot write {path}"))
}

/// Creates a directory only we can use, refusing one that exists with other owners or modes.
///
/// # Errors
/// When it cannot be created, or exists and is not private.
pub fn private_dir(dir: &Utf8Path, must_be_new: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Most launches find it there: one stat then, not a refused mkdir and a stat (a mkdir
    // takes the parent's lock even when it fails).
    if !must_be_new && is_private_dir(dir) {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !must_be_new => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create the private directory {dir}")),
    }
    if !is_private_dir(dir) {
        bail!("{dir} must be a directory owned by you with mode 0700; remove it or fix its permissions");
    }
    Ok(())
}

/// Whether `dir` is a real directory owned by us that no one else can enter.
#[must_use]
pub fn is_private_dir(dir: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o077 == 0)
}

/// Whether `p` is a regular file with an execute bit.
#[must_use]
pub fn is_executable(p: &Utf8Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Time since the epoch, for records (seconds) and unique names (nanoseconds with the
/// pid: two launches in one nanosecond would need one pid); zero before 1970.
#[must_use]
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// `fchmodat2` (Linux 6.6): the same number in every architecture's table; libc does not
/// name it everywhere.
pub const SYS_FCHMODAT2: i64 = 452;

/// `open_tree_attr` (Linux 6.15): the same number in every architecture's table.
pub const SYS_OPEN_TREE_ATTR: i64 = 467;

/// The highest system call number whose use the cell's filter was decided for
/// (`file_setattr`, Linux 6.17); a later kernel's newer calls answer `ENOSYS` in a cell
/// until they are reviewed here (see [`crate::host::seccomp::guard`]).
pub const SYS_LAST_REVIEWED: i64 = 469;

/// An absolute path with `.` dropped and `..` applied (textually; links are not followed).
#[must_use]
pub fn normalise(p: &Utf8Path) -> Utf8PathBuf {
    let mut out = Utf8PathBuf::from("/");
    for c in normal_components(p) {
        out.push(c);
    }
    out
}

/// [`normalise`] for any path (its components need not be UTF-8).
#[must_use]
pub fn normalise_path(p: &std::path::Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in normal_parts(p) {
        out.push(c);
    }
    out
}

/// Components of an absolute path with `.` dropped and `..` applied.
#[must_use]
pub fn normal_components(p: &Utf8Path) -> Vec<String> {
    // The parts of a UTF-8 path are UTF-8: the conversion loses nothing.
    normal_parts(p.as_std_path()).into_iter().map(|s| s.to_string_lossy().into_owned()).collect()
}

fn normal_parts(p: &std::path::Path) -> Vec<&std::ffi::OsStr> {
    use std::path::Component;
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// A sysctl's value (a `/proc/sys` file, trimmed), if readable.
#[must_use]
pub fn read_sysctl(path: &str) -> Option<String> {
    read_text(path).ok().map(|s| s.trim().to_owned())
}

/// Writes every control character (C0, DEL and C1, U+0080 to U+009F: an 8-bit CSI is a
/// terminal escape too) as `\xNN`: what a cell sent the proxy never reaches the terminal as
/// a control sequence.
/// The bidirectional formatting characters (U+202E and its kin) are written as `\u{NNNN}`:
/// they reorder what a terminal shows, so a line could read as something it does not say.
#[must_use]
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else if is_bidi_control(c) {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `c` is a bidirectional formatting character (marks, embeddings, overrides,
/// isolates): shown, it reorders the text around it.
#[must_use]
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Reads a file, refusing a symbolic link in its last component.
///
/// # Errors
/// When it cannot be opened (a link, say) or read.
pub fn read_no_follow(path: &Utf8Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = String::new();
    std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// A small text file, such as one of `/proc` or `/sys` (which report a size of 0, so
/// `std::fs::read_to_string` reads them 32 bytes at first and a few more system calls).
///
/// # Errors
/// When it cannot be opened or read, or is not UTF-8.
pub fn read_text(path: &str) -> std::io::Result<String> {
    use std::io::Read as _;
    // Plain reads: `read_to_end` would first ask the file's size and position (two more
    // system calls, and /proc knows neither).
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 16 << 10];
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize(n * 2, 0);
        }
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The path with every link resolved, as `realpath(3)` gives it, in three system calls
/// whatever its depth: the file is opened with `O_PATH` (nothing is read, no permission but
/// search is needed) and the kernel names what it opened in `/proc/self/fd`. glibc's
/// `realpath` (behind `std::fs::canonicalize`) instead reads every component as a link, a
/// system call each; a launch resolves a few dozen paths. Without `/proc`, or for a name the
/// kernel shows oddly (a file deleted meanwhile), it falls back to `std::fs::canonicalize`.
///
/// # Errors
/// As `realpath`: when the path or a component does not exist or cannot be searched.
pub fn canonical(p: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    if let Some(known) = MEMO.with(|m| m.borrow().as_ref().and_then(|m| m.get(p).cloned())) {
        return Ok(known);
    }
    let real = resolve(p)?;
    MEMO.with(|m| {
        if let Some(m) = m.borrow_mut().as_mut() {
            m.insert(p.to_owned(), real.clone());
        }
    });
    Ok(real)
}

thread_local! {
    /// What [`canonical`] resolved on this thread while a [`CanonicalMemo`] lives.
    static MEMO: std::cell::RefCell<Option<std::collections::HashMap<std::path::PathBuf, std::path::PathBuf>>> =
        const { std::cell::RefCell::new(None) };
}

/// While it lives, [`canonical`] on this thread answers a path it resolved before from
/// memory: planning a launch resolves the worktree and the cell home a dozen times each,
/// and one plan should see one answer. Only for planning: whatever watches or repairs the
/// file system must see it as it is now (the memo is per thread, and off on other threads).
pub struct CanonicalMemo(());

impl CanonicalMemo {
    /// Starts remembering (forgetting whatever an earlier memo held).
    #[must_use]
    pub fn start() -> Self {
        MEMO.with(|m| *m.borrow_mut() = Some(std::collections::HashMap::new()));
        Self(())
    }
}

impl Drop for CanonicalMemo {
    fn drop(&mut self) {
        MEMO.with(|m| *m.borrow_mut() = None);
    }
}

/// Removes the file `file` by renaming it into `aside` as `<prefix><name>-<nanoseconds>`,
/// for a later sweep to remove (a rename leaves the blocks where they are: on a disk that
/// discards freed blocks, an unlink of a written file costs about 0.1 ms); removed at once
/// when there is no `aside` or the rename fails (another file system, say).
pub fn set_aside(file: &std::path::Path, aside: Option<&std::path::Path>, prefix: &str) {
    if let (Some(dir), Some(name)) = (aside, file.file_name()) {
        let to = dir.join(format!("{prefix}{}-{}", name.to_string_lossy(), since_epoch().as_nanos()));
        if std::fs::rename(file, to).is_ok() {
            return;
        }
    }
    let _ = std::fs::remove_file(file);
}

/// Writes `bytes` as the new file `path`, in the inode of a record set aside in `aside`
/// ([`set_aside`] with `prefix`) when there is one: its contents are overwritten in place,
/// then it is renamed to `path`, so that a reader of `path` never sees the old record, and
/// no inode is allocated (on ext4 without a journal, the benchmark machine's, allocating
/// one after many were freed costs 50-100 us). Only a record a launcher set aside is
/// taken (`<prefix>....json-<time>`, a regular file of ours with one link); else, or when
/// another launch's sweep removed it meanwhile, `path` is written anew.
///
/// # Errors
/// When `path` cannot be written.
pub fn write_reusing(
    path: &std::path::Path,
    bytes: &[u8],
    aside: Option<&std::path::Path>,
    prefix: &str,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    // A rename cannot cross file systems (a runtime directory on tmpfs, say).
    let same = |dir: &std::path::Path| path.parent().and_then(dev).is_some_and(|d| dev(dir) == Some(d));
    if let Some(old) = aside.filter(|dir| same(dir)).and_then(|dir| set_aside_record(dir, prefix)) {
        if overwrite(&old, bytes).is_ok() && std::fs::rename(&old, path).is_ok() {
            return Ok(());
        }
    }
    std::fs::write(path, bytes)
}

/// A record [`set_aside`] renamed into `dir` (a launcher's, not a file a cell made).
fn set_aside_record(dir: &std::path::Path, prefix: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let me = nix::unistd::geteuid().as_raw();
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let Some(rest) = name.strip_prefix(prefix) else { return false };
        let Some((_, time)) = rest.rsplit_once(".json-") else { return false };
        time.bytes().all(|b| b.is_ascii_digit())
            && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.nlink() == 1 && m.uid() == me)
    })
}

/// Overwrites the regular file `p` with `bytes` from its start and cuts it after them.
fn overwrite(p: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(p)?;
    f.write_all(bytes)?;
    if f.metadata()?.len() > bytes.len() as u64 {
        f.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// How deep [`remove_tree`] descends holding descriptors (two a level); a directory deeper
/// than this is first moved up to the top of the tree, to be removed in a later pass.
const REMOVE_DEPTH: usize = 32;

/// Removes the directory tree `p`, never following a link, also where what made it took
/// away its owner's access to a directory inside (`chmod 0`: real directories of ours are
/// given back `u+rwx` first). Whatever the tree's depth, it uses a bounded number of
/// descriptors and no recursion: a tree thousands of levels deep (a cell can make one in
/// its view) neither runs out of descriptors nor overflows the stack of the thread that
/// removes it, and no path longer than the tree's top is ever used.
///
/// # Errors
/// When the tree still cannot be removed.
pub fn remove_tree(p: &Utf8Path) -> std::io::Result<()> {
    remove_tree_until(p, &|| false)
}

/// [`remove_tree`], given up (`Interrupted`, the rest left) as soon as `stop` says so: it is
/// asked before each entry.
///
/// # Errors
/// When the tree cannot be removed, or `stop` said to stop.
pub fn remove_tree_until(p: &Utf8Path, stop: &dyn Fn() -> bool) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let m = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !m.is_dir() {
        return std::fs::remove_file(p);
    }
    if m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o700 != 0o700 {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700))?;
    }
    let top = nix::fcntl::open(p.as_std_path(), DIR_FLAGS, nix::sys::stat::Mode::empty())?;
    // Each pass removes what lies within REMOVE_DEPTH of the top and moves deeper
    // directories up; passes go on while one moved something.
    let mut moved = 0usize;
    loop {
        let before = moved;
        remove_pass(&top, &mut moved, stop)?;
        // Only a pass that moved something up can leave more to do; each one that does
        // removes at least a level of every chain it moved.
        if moved == before {
            break;
        }
    }
    drop(top);
    std::fs::remove_dir(p)
}

const DIR_FLAGS: nix::fcntl::OFlag = nix::fcntl::OFlag::O_RDONLY
    .union(nix::fcntl::OFlag::O_DIRECTORY)
    .union(nix::fcntl::OFlag::O_NOFOLLOW)
    .union(nix::fcntl::OFlag::O_CLOEXEC);

/// An open directory of [`remove_pass`]: its descriptor, its listing, its name in its parent.
type Level = (OwnedFd, nix::dir::OwningIter, Option<std::ffi::CString>);

fn open_level(fd: OwnedFd, name: Option<std::ffi::CString>) -> std::io::Result<Level> {
    let listing = nix::dir::Dir::from_fd(fd.try_clone()?)?.into_iter();
    Ok((fd, listing, name))
}

/// Makes the directory `rel` below `top` (mode 0755 before the umask) and any missing
/// directory on the way, each opened without following a link: a link on the way (one a
/// running cell put there, say) fails the call rather than leading elsewhere.
///
/// # Errors
/// When a component is a link or not a directory, or cannot be made or opened.
pub fn make_dirs_below(top: &Utf8Path, rel: &Utf8Path) -> std::io::Result<()> {
    use nix::sys::stat::Mode;
    let mut fd = nix::fcntl::open(top.as_std_path(), DIR_FLAGS, Mode::empty())?;
    for part in rel.components() {
        let camino::Utf8Component::Normal(name) = part else {
            return Err(std::io::Error::from_raw_os_error(nix::libc::EINVAL));
        };
        let next = match nix::fcntl::openat(&fd, name, DIR_FLAGS, Mode::empty()) {
            Err(nix::errno::Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                nix::fcntl::openat(&fd, name, DIR_FLAGS, Mode::empty())?
            }
            other => other?,
        };
        fd = next;
    }
    Ok(())
}

/// One pass of [`remove_tree`] over the tree whose top is `top`; `moved` counts the
/// directories moved up to the top.
fn remove_pass(top: &OwnedFd, moved: &mut usize, stop: &dyn Fn() -> bool) -> std::io::Result<()> {
    use nix::sys::stat::{fchmodat, fstatat, FchmodatFlags, Mode, SFlag};
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let me = nix::unistd::geteuid().as_raw();
    // A description of its own (a duplicate would share the last pass's read position).
    let again = nix::fcntl::openat(top, ".", DIR_FLAGS, nix::sys::stat::Mode::empty())?;
    let mut levels: Vec<Level> = vec![open_level(again, None)?];
    loop {
        let depth = levels.len();
        let Some((fd, listing, _)) = levels.last_mut() else { return Ok(()) };
        // Listed to the end (or not listable): the directory goes from its parent.
        let Some(Ok(entry)) = listing.next() else {
            let Some((_, _, name)) = levels.pop() else { return Ok(()) };
            if let (Some(name), Some((parent, _, _))) = (name, levels.last()) {
                let _ = unlinkat(parent, name.as_c_str(), UnlinkatFlags::RemoveDir);
            }
            continue;
        };
        let name = entry.file_name().to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        if stop() {
            return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
        }
        let Ok(st) = fstatat(&*fd, name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) else { continue };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
            let _ = unlinkat(&*fd, name.as_c_str(), UnlinkatFlags::NoRemoveDir);
            continue;
        }
        // Moving it up needs write access to it (its `..` changes), going in needs all three.
        if st.st_uid == me && st.st_mode & 0o700 != 0o700 {
            // A directory a moment ago, and nothing else changes the tree meanwhile.
            let mode = Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700);
            let _ = fchmodat(&*fd, name.as_c_str(), mode, FchmodatFlags::FollowSymlink);
        }
        if depth >= REMOVE_DEPTH {
            let up = format!(".cell-removing-{}-{moved}", since_epoch().as_nanos());
            // Counted only when done: a pass that moved nothing up is the last.
            if nix::fcntl::renameat(&*fd, name.as_c_str(), top, up.as_str()).is_ok() {
                *moved += 1;
            }
            continue;
        }
        let child = nix::fcntl::openat(&*fd, name.as_c_str(), DIR_FLAGS, Mode::empty());
        if let Ok(child) = child {
            levels.push(open_level(child, Some(name))?);
        }
    }
}

/// Opens `p` with `O_PATH` (nothing is read: no permission is needed and a FIFO does not
/// block) and `flags`. Not through `std::fs::OpenOptions`: it drops `O_PATH` from custom
/// flags where the C library counts it in `O_ACCMODE` (musl, whose `O_SEARCH` is `O_PATH`),
/// which makes the open a read one.
///
/// # Errors
/// The open's.
pub fn open_path(p: &std::path::Path, flags: nix::fcntl::OFlag) -> std::io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    Ok(nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC | flags, nix::sys::stat::Mode::empty())?)
}

/// [`canonical`] without the memo.
fn resolve(p: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let opened = open_path(p, nix::fcntl::OFlag::empty())?;
    let link = std::path::PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&opened)));
    match std::fs::read_link(&link) {
        Ok(real) if real.is_absolute() && !real.as_os_str().as_encoded_bytes().ends_with(b" (deleted)") => Ok(real),
        _ => std::fs::canonicalize(p),
    }
}

/// [`canonical`] for UTF-8 paths (`camino`'s `canonicalize_utf8`).
///
/// # Errors
/// As [`canonical`], and when the resolved path is not UTF-8.
pub fn canonical_utf8(p: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
    Utf8PathBuf::from_path_buf(canonical(p.as_std_path())?).map_err(|q| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("path is not valid UTF-8: {}", q.display()))
    })
}

/// A new temporary directory and its path, for tests.
///
/// # Panics
/// When no temporary directory can be made, or its path is not UTF-8.
#[cfg(test)]
#[must_use]
pub fn temp_dir() -> (tempfile::TempDir, Utf8PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = Utf8PathBuf::from_path_buf(d.path().to_owned()).expect("a UTF-8 temporary path");
    (d, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_times_are_read_where_the_file_system_keeps_them() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
        std::fs::write(&f, "x").unwrap();
        match birth_time(&f) {
            Some(t) => assert!(t >= before && t <= std::time::SystemTime::now(), "{t:?}"),
            None => eprintln!("SKIPPED: the file system of {} keeps no birth times", d.path().display()),
        }
        assert_eq!(birth_time(&d.path().join("missing")), None);
    }
    use std::path::Path;

    #[test]
    fn a_tree_deeper_than_any_path_is_removed_with_a_small_stack() {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::{mkdirat, Mode};
        let (_t, tmp) = temp_dir();
        let tree = tmp.join("deep");
        std::fs::create_dir(&tree).unwrap();
        // 3000 levels, made through descriptors (the path would be far over PATH_MAX), a
        // locked directory and a file on the way.
        let mut fd = nix::fcntl::open(tree.as_std_path(), OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for i in 0..3000 {
            mkdirat(&fd, "d", Mode::S_IRWXU).unwrap();
            if i == 1500 {
                let f = openat(&fd, "f", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::S_IRUSR).unwrap();
                drop(f);
            }
            let child = openat(&fd, "d", OFlag::O_DIRECTORY, Mode::empty()).unwrap();
            // Locked once what it holds is made: read-only levels where the removal moves
            // directories up (a move needs write access), and one locked outright.
            if i == 2000 {
                nix::sys::stat::fchmod(&fd, Mode::empty()).unwrap();
            }
            if (25..45).contains(&i) {
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o500)).unwrap();
            }
            fd = child;
        }
        drop(fd);
        let t = tree.clone();
        // A recursive removal (a frame and a descriptor per level) overflows this stack.
        let removed = std::thread::Builder::new().stack_size(128 * 1024).spawn(move || remove_tree(&t)).unwrap();
        removed.join().expect("no overflow").expect("removed");
        assert!(!tree.exists());
        assert!(tmp.exists());
    }

    #[test]
    fn a_removal_told_to_stop_stops() {
        let (_t, tmp) = temp_dir();
        for i in 0..50 {
            std::fs::create_dir_all(tmp.join(format!("t/{i}/x"))).unwrap();
        }
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            asked.get() > 10
        };
        let e = remove_tree_until(&tmp.join("t"), &stop).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
        assert!(tmp.join("t").exists(), "the rest is left");
        remove_tree(&tmp.join("t")).unwrap();
        assert!(!tmp.join("t").exists());
    }

    #[test]
    fn canonical_opens_nothing_for_reading() {
        // A FIFO would block a reading open for ever; an unreadable file would refuse one.
        let (_t, tmp) = temp_dir();
        let fifo = tmp.join("fifo");
        nix::unistd::mkfifo(fifo.as_std_path(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let secret = tmp.join("secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, s) = (fifo.clone(), secret.clone());
        std::thread::spawn(move || {
            let _ = tx.send((resolve(f.as_std_path()).ok(), resolve(s.as_std_path()).ok()));
        });
        let (f, s) = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("resolving a FIFO blocked");
        assert_eq!(f.as_deref(), Some(fifo.as_std_path()));
        assert_eq!(s.as_deref(), Some(secret.as_std_path()));
    }

    #[test]
    fn a_new_record_takes_the_inode_of_one_set_aside_and_only_of_such() {
        use std::os::unix::fs::MetadataExt as _;
        let (_t, tmp) = temp_dir();
        let (aside, live) = (tmp.join("git"), tmp.join("live"));
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        // Not records a launcher set aside: a file moved out of a view, a second link.
        std::fs::write(aside.join("discarded-1-1-5"), "cell's\n").unwrap();
        std::fs::write(live.join("other"), "x").unwrap();
        std::fs::hard_link(live.join("other"), aside.join("discarded-2.json-7")).unwrap();
        let new = live.join("3.json");
        write_reusing(new.as_std_path(), b"{}", Some(aside.as_std_path()), "discarded-").unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "{}");
        assert!(aside.join("discarded-1-1-5").exists() && aside.join("discarded-2.json-7").exists());
        // A record set aside is taken, overwritten and cut.
        std::fs::write(live.join("4.json"), "a much longer old record\n").unwrap();
        let ino = std::fs::metadata(live.join("4.json")).unwrap().ino();
        set_aside(live.join("4.json").as_std_path(), Some(aside.as_std_path()), "discarded-");
        let new = live.join("5.json");
        write_reusing(new.as_std_path(), b"{\"new\":1}", Some(aside.as_std_path()), "discarded-").unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "{\"new\":1}");
        assert_eq!(std::fs::metadata(&new).unwrap().ino(), ino);
        let left: Vec<String> = aside.read_dir_utf8().unwrap().flatten().map(|e| e.file_name().to_owned()).collect();
        assert!(!left.iter().any(|n| n.starts_with("discarded-4.json-")), "{left:?}");
    }

    #[test]
    fn a_tree_with_locked_directories_is_removed_and_nothing_outside_is_touched() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(d.path()).unwrap();
        let outside = root.join("outside");
        std::fs::create_dir_all(outside.join("kept")).unwrap();
        std::fs::set_permissions(outside.join("kept"), std::fs::Permissions::from_mode(0o500)).unwrap();
        let tree = root.join("tree");
        std::fs::create_dir_all(tree.join("a/locked/deeper")).unwrap();
        std::fs::write(tree.join("a/locked/deeper/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::fs::set_permissions(tree.join("a/locked/deeper"), std::fs::Permissions::from_mode(0o0)).unwrap();
        std::fs::set_permissions(tree.join("a/locked"), std::fs::Permissions::from_mode(0o0)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(std::fs::symlink_metadata(&tree).is_err());
        let kept = std::fs::metadata(outside.join("kept")).unwrap();
        assert_eq!(kept.permissions().mode() & 0o777, 0o500, "a linked directory keeps its mode");
        std::fs::set_permissions(outside.join("kept"), std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn the_memo_answers_only_its_own_thread_and_only_while_it_lives() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_owned();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::os::unix::fs::symlink("a", root.join("l")).unwrap();
        let relink = |to: &str| {
            std::fs::remove_file(root.join("l")).unwrap();
            std::os::unix::fs::symlink(to, root.join("l")).unwrap();
        };
        let memo = CanonicalMemo::start();
        assert_eq!(canonical(&root.join("l")).unwrap(), canonical(&root.join("a")).unwrap());
        relink("b");
        assert_eq!(canonical(&root.join("l")).unwrap(), canonical(&root.join("a")).unwrap(), "remembered");
        let other = std::thread::spawn({
            let l = root.join("l");
            move || canonical(&l).unwrap()
        });
        assert_eq!(other.join().unwrap(), canonical(&root.join("b")).unwrap(), "another thread sees the file system");
        drop(memo);
        assert_eq!(canonical(&root.join("l")).unwrap(), canonical(&root.join("b")).unwrap(), "forgotten");
    }

    #[test]
    fn directories_are_made_below_only_through_directories() {
        let (_t, d) = temp_dir();
        let top = d.clone();
        make_dirs_below(&top, Utf8Path::new("a/b/c")).unwrap();
        assert!(d.join("a/b/c").is_dir());
        make_dirs_below(&top, Utf8Path::new("a/b/c")).unwrap();
        std::fs::create_dir(d.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join("a/link")).unwrap();
        assert!(make_dirs_below(&top, Utf8Path::new("a/link/x")).is_err());
        assert!(!d.join("elsewhere/x").exists(), "made through a link");
        std::fs::write(d.join("a/file"), "").unwrap();
        assert!(make_dirs_below(&top, Utf8Path::new("a/file/x")).is_err());
        assert!(make_dirs_below(&top, Utf8Path::new("a/../x")).is_err());
    }

    #[test]
    fn canonical_resolves_as_realpath_does() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("a/b", root.join("l1")).unwrap();
        std::os::unix::fs::symlink(root.join("l1"), root.join("l2")).unwrap();
        std::os::unix::fs::symlink("../../l2/f", root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        for p in ["a/b/f", "l1", "l2/f", "l2/../b/./f", "a/b/up", "."] {
            let p = root.join(p);
            assert_eq!(canonical(&p).unwrap(), std::fs::canonicalize(&p).unwrap(), "{}", p.display());
        }
        for p in ["dangling", "missing", "a/b/f/x"] {
            let p = root.join(p);
            assert_eq!(
                canonical(&p).map_err(|e| e.kind()),
                std::fs::canonicalize(&p).map_err(|e| e.kind()),
                "{}",
                p.display()
            );
        }
        assert_eq!(canonical(Path::new("/proc/self/exe")).unwrap(), std::fs::canonicalize("/proc/self/exe").unwrap());
    }

    #[test]
    fn only_a_program_no_one_but_root_can_replace_counts() {
        use std::os::unix::fs::{symlink, PermissionsExt as _};
        assert!(!only_root_can_replace(Utf8Path::new("relative/bwrap")));
        assert!(!only_root_can_replace(Utf8Path::new("/nonexistent/bwrap")));
        if !nix::unistd::getuid().is_root() {
            // The files made below would be this account's: only refusals can be checked.
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(d.path()).unwrap();
        let mode = |p: &Utf8Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("open")).unwrap();
        std::fs::create_dir_all(root.join("sticky")).unwrap();
        for dir in ["", "bin", "sticky"] {
            mode(&root.join(dir), 0o755);
        }
        for f in ["bin/bwrap", "open/bwrap", "sticky/bwrap", "bin/theirs"] {
            std::fs::write(root.join(f), "#!/bin/sh\n").unwrap();
            mode(&root.join(f), 0o755);
        }
        mode(&root.join("open"), 0o777);
        assert!(only_root_can_replace(&root.join("bin/bwrap")), "root's file in root's directories");
        assert!(only_root_can_replace(&root.join("bin/../bin/./bwrap")));
        assert!(!only_root_can_replace(&root.join("open/bwrap")), "a directory anyone may write");
        mode(&root.join("sticky"), 0o1777);
        assert!(only_root_can_replace(&root.join("sticky/bwrap")), "sticky, and the entry is root's");
        nix::unistd::chown(root.join("bin/theirs").as_std_path(), Some(nix::unistd::Uid::from_raw(1)), None).unwrap();
        assert!(!only_root_can_replace(&root.join("bin/theirs")), "a file another account owns");
        std::fs::copy(root.join("bin/theirs"), root.join("sticky/theirs")).unwrap();
        nix::unistd::chown(root.join("sticky/theirs").as_std_path(), Some(nix::unistd::Uid::from_raw(1)), None)
            .unwrap();
        symlink("theirs", root.join("sticky/link")).unwrap();
        assert!(!only_root_can_replace(&root.join("sticky/theirs")), "another account's entry in a sticky directory");
        assert!(!only_root_can_replace(&root.join("sticky/link")), "a link to another account's entry");
        mode(&root.join("bin/bwrap"), 0o775);
        assert!(!only_root_can_replace(&root.join("bin/bwrap")), "a file its group may write");
        mode(&root.join("bin/bwrap"), 0o755);
        // Links are followed: one in a safe place to an unsafe file, or one in an unsafe place.
        symlink(root.join("open/bwrap"), root.join("bin/to-open")).unwrap();
        assert!(!only_root_can_replace(&root.join("bin/to-open")));
        symlink("../bin/bwrap", root.join("open/to-bin")).unwrap();
        assert!(!only_root_can_replace(&root.join("open/to-bin")), "a link anyone may replace");
        symlink("../bin/bwrap", root.join("bin/rel")).unwrap();
        assert!(only_root_can_replace(&root.join("bin/rel")));
        symlink("loop2", root.join("bin/loop1")).unwrap();
        symlink("loop1", root.join("bin/loop2")).unwrap();
        assert!(!only_root_can_replace(&root.join("bin/loop1")));
        mode(&root.join(""), 0o777);
        assert!(!only_root_can_replace(&root.join("bin/bwrap")), "a directory above anyone may write");
        mode(&root.join(""), 0o755);
        // Directories: root's, closed to others, and the way there too.
        assert!(only_root_can_change_dir(&root.join("bin")));
        assert!(!only_root_can_change_dir(&root.join("bin/bwrap")), "a file is no directory");
        assert!(!only_root_can_change_dir(&root.join("open")), "anyone may add to it");
        assert!(!only_root_can_change_dir(&root.join("sticky")), "anyone may add to a sticky directory");
        std::fs::create_dir(root.join("bin/theirs.d")).unwrap();
        nix::unistd::chown(root.join("bin/theirs.d").as_std_path(), Some(nix::unistd::Uid::from_raw(1)), None).unwrap();
        assert!(!only_root_can_change_dir(&root.join("bin/theirs.d")), "another account's directory");
        std::fs::create_dir(root.join("open/d")).unwrap();
        assert!(!only_root_can_change_dir(&root.join("open/d")), "below a directory anyone may write");
    }
}
