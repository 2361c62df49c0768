//! Where mounts cannot hold a path, the launch contains instead.
//!
//! - Protected paths that exist are bound read-only by the plan; the kernel lifts such a
//!   bind when the host replaces the file under it, so they are watched (their inodes,
//!   looked at every 20 ms) and the cell is stopped the moment one is replaced (the host's
//!   new file is the host's: it stays).
//! - Protected paths that do not exist get no placeholder: when the cell creates one, the
//!   watch sets it aside at once, and the exit sets aside whatever is there.
//! - A `.git` (or a directory that git would take for a repository: `HEAD`, `objects/`,
//!   `refs/`) below the top of the worktree, created or changed during the run, is set aside
//!   at exit; so is a top-level `.git` in a worktree that had none.
//!
//! "Set aside" is a rename in the same directory to `NAME.cell-quarantined-<random>` that
//! never replaces anything (`RENAME_NOREPLACE`), so a cell cannot block it by creating the
//! target first. Each launch records what it contains in the cell's host state, so a
//! launcher that was killed has its worktree contained by the next launch of the cell (or
//! `cell git sync`) before anything else reads it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What one launch contains, as recorded in `<state>/launches/<pid>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Launch {
    /// Pid of the launcher.
    pub launcher: u32,
    /// The worktree.
    pub worktree: PathBuf,
    /// Protected paths absent at launch.
    pub absent: Vec<PathBuf>,
    /// Protected paths present at launch: path, device, inode.
    pub held: Vec<(PathBuf, u64, u64)>,
    /// Whether the worktree had a `.git` at launch.
    pub had_git: bool,
    /// Launch time, whole seconds since the epoch (rounded down).
    pub started: u64,
    /// Host directories outside the worktree that the cell can write (its home, writable
    /// binds): a link the cell leaves in the worktree that leads there is set aside.
    #[serde(default)]
    pub writable: Vec<PathBuf>,
    /// What the exit looks at in the repositories it finds below the top.
    #[serde(default)]
    pub nested: Nested,
}

/// What the exit looks at in a repository below the worktree's top that was there at
/// launch (a clone in an ignored `vendor/`, say: host git works in it as in any other):
/// its config is the host's (a change to its git directory sets the whole `.git` aside),
/// but what that config names may lie in the worktree (a relative `core.hooksPath`, a
/// `core.fsmonitor` script, an included file), and so may the files hook runners and
/// tools read at its top. Those the cell changed are set aside.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nested {
    /// The host's git rules, which apply in every repository
    /// ([`crate::host::gitview::host_rules`]).
    pub rules: Vec<crate::host::gitview::Rule>,
    /// The home `~/` stands for in config values.
    pub home: camino::Utf8PathBuf,
    /// Paths looked at at each such repository's top (the default protected list, unless
    /// the cell turned it off).
    pub at_tops: Vec<String>,
    /// Names looked at in every directory below the top
    /// ([`crate::host::config::PROTECTED_ANYWHERE`], unless the cell turned the list off).
    #[serde(default)]
    pub anywhere: Vec<String>,
    /// The gitlinks the launch held, listed again by the watch.
    #[serde(default)]
    pub index: Option<IndexWatch>,
}

/// The gitlinks of the worktree's repository (and of its submodules and linked worktrees)
/// when the launch held them ([`crate::host::gitlinks::entries`]). Host git that moves an
/// index while the cell runs (a merge, pull, switch or checkout in the host's worktree) can
/// bring one more: a directory where host `git status` would enter a `.git` the cell makes
/// there, which no mount of the running cell holds. The watch lists them again whenever an
/// index changes, and stops the cell when one is new.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexWatch {
    /// Where they were listed from (the cell's worktree).
    pub worktree: camino::Utf8PathBuf,
    /// The host git that lists them.
    pub git: camino::Utf8PathBuf,
    /// The cell's state directory, where the lists are kept (when `keep`).
    pub state: camino::Utf8PathBuf,
    pub keep: bool,
    /// The entries held at launch.
    pub known: Vec<String>,
}

impl IndexWatch {
    /// An entry listed now that the launch did not hold, if any.
    ///
    /// # Errors
    /// When the lists cannot be made now (more gitlinks than a launch holds, or an index
    /// host git cannot read).
    fn new_entry(&self) -> Result<Option<String>, String> {
        let now = crate::host::gitlinks::entries(&self.worktree, Some(&self.git), &self.state, self.keep)?;
        Ok(now.into_iter().find(|e| !self.known.contains(e)))
    }
}

/// At most this many repositories below the top are looked into at one exit; past it, the
/// exit report says which were not.
const MAX_NESTED: usize = 4096;

impl Launch {
    /// The launch of now.
    #[must_use]
    pub fn now(worktree: &Path, absent: Vec<PathBuf>, held: &[PathBuf], writable: &[PathBuf], nested: Nested) -> Self {
        let started = crate::sys::since_epoch().as_secs();
        Self {
            launcher: std::process::id(),
            worktree: worktree.to_owned(),
            absent,
            held: held
                .iter()
                .filter_map(|p| std::fs::symlink_metadata(p).ok().map(|m| (p.clone(), m.dev(), m.ino())))
                .collect(),
            had_git: std::fs::symlink_metadata(worktree.join(".git")).is_ok(),
            started,
            writable: writable
                .iter()
                .filter(|w| !worktree.starts_with(w) && !w.starts_with(worktree))
                .map(|w| crate::sys::canonical(w).unwrap_or_else(|_| w.clone()))
                .collect(),
            nested,
        }
    }

    fn since(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.started)
    }
}

fn replaced(top: &Path, held: &[(PathBuf, u64, u64)]) -> Option<PathBuf> {
    held.iter()
        .find(|(p, dev, ino)| !look(top, p).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino))
        .map(|(p, _, _)| p.clone())
}

/// The records of launches of one cell.
fn records_dir(state: &Path) -> PathBuf {
    state.join("launches")
}

/// A running launch's containment: recorded now, carried out when dropped (or by the next
/// launch if this launcher is killed).
pub struct Guard {
    launch: Launch,
    record: Option<PathBuf>,
    /// Where the record is set aside at the end (else removed).
    aside: Option<PathBuf>,
    /// Lines for the exit report (the watch adds to them while the cell runs).
    report: Arc<Mutex<Vec<String>>>,
    /// Set when the cell has ended: the watch stops.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

/// How often the watch looks at the protected paths.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// Every how many looks the watch lists the gitlinks again (100 ms).
const INDEX_EVERY: u32 = 5;

impl Guard {
    /// Records the launch in the cell's state directory `state`; [`Guard::finish`] sets the
    /// record aside in `aside` (swept by a later launch, or reused: [`crate::sys::write_reusing`]),
    /// and a record set aside there is reused for it.
    ///
    /// # Errors
    /// When the record cannot be written (the cell must not start uncontained).
    pub fn start(state: &Path, launch: Launch, aside: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = records_dir(state);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let record = dir.join(format!("{}.json", launch.launcher));
        crate::sys::write_reusing(
            &record,
            &serde_json::to_vec(&launch)?,
            aside.as_deref(),
            crate::host::gitview::DISCARDED,
        )
        .with_context(|| format!("cannot write {}", record.display()))?;
        Ok(Self { launch, record: Some(record), aside, report: Arc::default(), stopped: Arc::default() })
    }

    /// Watches the paths for the cell's lifetime: a held path the host replaces stops the
    /// cell (SIGKILL to bubblewrap, `pid`; the cell dies with it); an absent path the cell
    /// creates is set aside at once.
    ///
    /// # Errors
    /// When the watch cannot be started (the cell must not run unwatched).
    pub fn watch(&self, pid: nix::unistd::Pid) -> anyhow::Result<()> {
        let l = &self.launch;
        if l.held.is_empty() && l.absent.is_empty() && l.nested.index.is_none() {
            return Ok(());
        }
        let held = l.held.clone();
        let absent = l.absent.clone();
        let index = l.nested.index.clone();
        let since = l.since();
        let mut looks: u32 = 0;
        let mut failed: u32 = 0;
        let top = l.worktree.clone();
        let report = Arc::clone(&self.report);
        let stopped = Arc::clone(&self.stopped);
        // Each look holds the report: `finish` takes it only between looks, so a line of a
        // look in progress when the cell ends is never lost.
        let mut check = move || -> bool {
            let Ok(mut r) = report.lock() else { return false };
            if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            if let Some(p) = replaced(&top, &held) {
                r.push(format!(
                    "{} was replaced on the host while the cell ran; the kernel lifts the cell's read-only view of a replaced file, so the cell was stopped (start it again to protect the new file)",
                    shown(&p)
                ));
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return false;
            }
            for q in made_absent(&top, &absent, since) {
                r.push(set_aside_line(&q, "created by the cell while it ran"));
            }
            // The gitlinks, every 5th look (their lists are kept per index: an index that
            // did not change is only looked at, not listed again).
            looks = looks.wrapping_add(1);
            let listed = index.as_ref().filter(|_| looks % INDEX_EVERY == 0).map(IndexWatch::new_entry);
            // One failure may be an index being written (the next look sees it done); ten
            // in a row (a second) are not, and what cannot be listed cannot be held.
            failed = if matches!(listed, Some(Err(_))) { failed + 1 } else { 0 };
            let why = match listed {
                Some(Ok(Some(new))) => format!("the host's repository gained {}", shown(Path::new(&new))),
                Some(Err(e)) if failed >= 10 => {
                    format!("the host's gitlinks can no longer be listed ({})", shown(Path::new(&e)))
                }
                _ => return true,
            };
            r.push(format!(
                "{why} while the cell ran (a host merge, pull, switch or checkout): a running cell cannot hold it, so the cell was stopped (start it again to hold it)"
            ));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            false
        };
        // Anything that happened between the launch's first look and the watch.
        if !check() {
            return Ok(());
        }
        // A poll of a few stat calls, not inotify: tearing down an inotify instance costs the
        // exiting launcher an SRCU grace period (~20 ms here, on every launch).
        std::thread::Builder::new()
            .name("cell-watch".into())
            .spawn(move || loop {
                std::thread::sleep(WATCH_INTERVAL);
                if !check() {
                    return;
                }
            })
            .context("cannot start the watch of the protected paths")?;
        Ok(())
    }

    /// Carries the containment out now and returns the report (the watch's lines first).
    pub fn finish(&mut self) -> Vec<String> {
        // Under the report's lock: a look in progress ends first, and no later one starts.
        let mut out = self
            .report
            .lock()
            .map(|mut r| {
                self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
                std::mem::take(&mut *r)
            })
            .unwrap_or_default();
        out.extend(contain(&self.launch));
        out.retain(|l| !l.is_empty());
        if let Some(r) = self.record.take() {
            crate::sys::set_aside(&r, self.aside.as_deref(), crate::host::gitview::DISCARDED);
        }
        out
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.record.is_some() {
            for l in self.finish() {
                eprintln!("cell: {l}");
            }
        }
    }
}

/// Contains the worktrees of launches of this cell whose launcher is gone (killed before
/// it could); returns report lines.
#[must_use]
pub fn recover(state: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (path, pid) in launch_records(state) {
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let launch: Option<Launch> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(l) = launch {
            let lines = contain(&l);
            if !lines.is_empty() {
                out.push(format!(
                    "a launch of this cell in {} was killed; containing what it left:",
                    shown(&l.worktree)
                ));
            }
            out.extend(lines);
        }
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// The launches still running of every cell whose state directories are in `cells`
/// (`<state home>/cell`): what lies in their worktrees is theirs to change until they end.
#[must_use]
pub fn running(cells: &Path) -> Vec<Launch> {
    let Ok(states) = std::fs::read_dir(cells) else { return Vec::new() };
    let mut out = Vec::new();
    for state in states.flatten() {
        for (path, pid) in launch_records(&state.path()) {
            if pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Some(l) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Launch>(&b).ok()) {
                out.push(l);
            }
        }
    }
    out
}

/// The launch records in `state` (`launches/<pid>.json`), with their launchers' pids.
fn launch_records(state: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(records_dir(state)) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let pid = path.file_stem().and_then(OsStr::to_str).and_then(|s| s.parse::<u32>().ok())?;
            Some((path, pid))
        })
        .collect()
}

/// [`recover`] for every cell whose state directory is in `cells`.
#[must_use]
pub fn recover_all(cells: &Path) -> Vec<String> {
    let Ok(states) = std::fs::read_dir(cells) else { return Vec::new() };
    states.flatten().flat_map(|s| recover(&s.path())).collect()
}

/// What to set aside for a directory `deep` too long to name: the highest directory on its
/// way that the cell made (its birth time), else the deepest that can still be named.
fn nameable_above(top: &Path, deep: &Path, since: std::time::SystemTime) -> PathBuf {
    let mut cur = top.to_path_buf();
    for part in deep.strip_prefix(top).map(|r| r.components().collect::<Vec<_>>()).unwrap_or_default() {
        cur.push(part);
        if cur.as_os_str().len() >= LONGEST_PATH - 255 {
            cur.pop();
            return cur;
        }
        if crate::sys::birth_time(&cur).is_some_and(|born| born >= since) {
            return cur;
        }
    }
    cur
}

/// Sets aside everything of `l` that needs it; one line per path.
fn contain(l: &Launch) -> Vec<String> {
    let top = l.worktree.as_path();
    let mut found: Vec<(PathBuf, &str)> = Vec::new();
    // Each path looked at: the exit trusts no file time for what it sets aside here (a
    // worktree on a file system whose times come from another clock, or are coarse).
    for p in &l.absent {
        if let Some(q) = made_below(top, p) {
            found.push((q, "created by the cell where host tools would run it"));
        }
    }
    let top_git = top.join(".git");
    if !l.had_git && present(top, &top_git) {
        found.push((top_git.clone(), "a repository the cell made where host git would use it"));
    }
    // The top itself made into a repository (`HEAD`, `objects/`, `refs/`): host git takes
    // the directory for one when it has no `.git`.
    if git_dir_changed(top, top, l.since()) {
        found.push((top.join("HEAD"), "a repository the cell made of the worktree itself"));
    }
    let host_git = if l.had_git { crate::sys::canonical(&top_git).ok() } else { None };
    let held: Vec<PathBuf> = l.held.iter().map(|(p, _, _)| p.clone()).collect();
    let scan = Scan {
        top,
        since: l.since(),
        host_git: host_git.as_deref(),
        writable: &l.writable,
        held: &held,
        nested: &l.nested,
        looked_into: std::cell::Cell::new(0),
    };
    walk(&scan, top, &mut found);
    for (p, why) in &mut found {
        if *why == TOO_DEEP_WHY {
            *p = nameable_above(top, p, l.since());
        }
    }
    if scan.looked_into.get() > MAX_NESTED {
        found.push((top.to_owned(), ""));
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    found.into_iter().map(|(p, why)| set_aside_line(&p, why)).collect()
}

fn set_aside_line(p: &Path, why: &str) -> String {
    if why.is_empty() {
        return format!(
            "WARNING: {} holds more than {MAX_NESTED} repositories; the exit looked into the first {MAX_NESTED} only: review the hooks and tool files of the others before you run git there",
            shown(p)
        );
    }
    match set_aside(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Ok(aside) => {
            format!("set aside {} ({why}): now {}; review it, then delete or restore it", shown(p), shown(&aside))
        }
        Err(e) => format!(
            "WARNING: {} ({why}) could not be set aside ({e}); do not run git or other tools there before reviewing it",
            shown(p)
        ),
    }
}

/// A path the cell chose, for the terminal: control characters escaped, and one longer
/// than a few lines cut in its middle.
fn shown(p: &Path) -> String {
    let s: String = p
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_control() { format!("\\x{:02x}", u32::from(c)) } else { c.to_string() })
        .collect();
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 400 {
        return s;
    }
    let head: String = chars[..200].iter().collect();
    let tail: String = chars[chars.len() - 150..].iter().collect();
    format!("{head}...({} characters)...{tail}", chars.len() - 350)
}

/// Renames `p` to `p.cell-quarantined-<random>` in its own directory, never replacing
/// anything.
fn set_aside(p: &Path) -> std::io::Result<PathBuf> {
    use std::io::Read as _;
    let mut last = std::io::Error::other("no name found");
    for _ in 0..8 {
        let mut bytes = [0u8; 6];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut name = p.file_name().unwrap_or_default().to_owned();
        name.push(format!(".cell-quarantined-{suffix}"));
        let aside = p.with_file_name(name);
        let rename = || crate::sys::rename_noreplace(p, &aside);
        let mut result = rename();
        if matches!(result, Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM)) && writable_for_us(p) {
            // The cell made the directory read-only (it is ours): open it for the rename.
            result = rename();
        }
        match result {
            Ok(()) => return Ok(aside),
            Err(nix::errno::Errno::EEXIST) => last = std::io::Error::from(nix::errno::Errno::EEXIST),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last)
}

/// Gives the owner write and search permission on `p`'s directory when the launcher owns
/// it (the cell can `chmod 555` its own directories to stop a rename); whether it did.
fn writable_for_us(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(dir) = p.parent() else { return false };
    let Ok(m) = std::fs::symlink_metadata(dir) else { return false };
    m.is_dir()
        && m.uid() == nix::unistd::geteuid().as_raw()
        && std::fs::set_permissions(dir, std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o300)).is_ok()
}

/// When an entry last changed (its inode: a rename, a `chmod` or a write all count).
fn ctime(m: &std::fs::Metadata) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        + std::time::Duration::new(u64::try_from(m.ctime()).unwrap_or(0), u32::try_from(m.ctime_nsec()).unwrap_or(0))
}

/// Whether a path or anything below it (not following links) changed at or after `since`.
fn changed_since(top: &Path, p: &Path, since: std::time::SystemTime) -> bool {
    let m = match look(top, p) {
        Ok(m) => m,
        // What cannot be looked at counts as changed (a cell can hide a change that way).
        Err(e) => return !matches!(e.raw_os_error(), Some(nix::libc::ENOENT | nix::libc::ENOTDIR)),
    };
    if ctime(&m) >= since {
        return true;
    }
    m.is_dir() && list(top, p).is_some_and(|entries| entries.iter().any(|(e, _)| changed_since(top, e, since)))
}

/// `symlink_metadata`, but where the cell took the search permission from a directory the
/// launcher owns in the worktree `top` (`chmod 0`, `chmod 600`: the names can still be read,
/// the entries not), the owner's read, write and search permission are given back to the
/// directories above `p` first, as git's own `chmod` would let host git in.
fn look(top: &Path, p: &Path) -> std::io::Result<std::fs::Metadata> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && p != top => {
            if let Some(parent) = p.parent().filter(|d| d.starts_with(top)) {
                open_up(top, parent);
            }
            std::fs::symlink_metadata(p)
        }
        other => other,
    }
}

/// Gives the owner `rwx` on directory `dir` of the worktree `top` (and, first, on the
/// directories above it that need it) when the launcher owns it.
fn open_up(top: &Path, dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(m) = look(top, dir) else { return };
    // Only a real directory of the worktree: never one reached through a link the cell made.
    let real_top = crate::sys::canonical(top).unwrap_or_else(|_| top.to_path_buf());
    let expected = dir.strip_prefix(top).map(|rel| real_top.join(rel)).ok();
    if crate::sys::canonical(dir).ok() != expected {
        return;
    }
    if m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700));
    }
}

/// What the cell made of protected path `p` (absent at launch), looked at from the
/// worktree `top` down without following a link: `p` itself when it is there, or a link the
/// cell put in its way (a link for one of its directories would make host tools read or
/// run what lies where it points: the cell's own home, or anywhere else, so the link goes
/// aside, never what it points to); `None` while nothing is there.
fn made_below(top: &Path, p: &Path) -> Option<PathBuf> {
    let rel = p.strip_prefix(top).ok()?;
    let mut cur = top.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        if i + 1 == parts.len() {
            return present(top, &cur).then_some(cur);
        }
        match look(top, &cur) {
            Ok(m) if m.file_type().is_symlink() => return Some(cur),
            Ok(m) if m.is_dir() => {}
            Ok(_) => return None,
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOENT | nix::libc::ENOTDIR)) => return None,
            Err(_) => return Some(cur),
        }
    }
    None
}

/// What the cell made of the protected paths `absent` (absent at launch, at `since`), for
/// the watch's looks every 20 ms: [`made_below`] of each, but those whose directory did not
/// change since then are passed over in one look at it (a directory reached through
/// directories alone whose inode did not change: nothing was created, renamed or removed in
/// it; the cell cannot set an inode's change time back). Most lie at the worktree's top,
/// which a launch leaves alone. The exit looks at every path whatever the times say.
fn made_absent(top: &Path, absent: &[PathBuf], since: std::time::SystemTime) -> Vec<PathBuf> {
    let mut unchanged: std::collections::HashMap<&Path, bool> = std::collections::HashMap::new();
    absent
        .iter()
        .filter(|p| {
            let Some(dir) = p.parent() else { return true };
            !*unchanged.entry(dir).or_insert_with(|| dir_unchanged(top, dir, since))
        })
        .filter_map(|p| made_below(top, p))
        .collect()
}

/// Whether nothing can have been made in directory `dir` of the worktree `top` since
/// `since`: it is not there (a directory on the way is missing), or it is reached through
/// directories alone (no link on the way) and its inode did not change at or after `since`.
fn dir_unchanged(top: &Path, dir: &Path, since: std::time::SystemTime) -> bool {
    let Ok(rel) = dir.strip_prefix(top) else { return false };
    let mut cur = top.to_path_buf();
    let mut last = std::fs::symlink_metadata(&cur);
    for part in rel.components() {
        cur.push(part);
        last = std::fs::symlink_metadata(&cur);
        match &last {
            Ok(m) if m.is_dir() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            _ => return false,
        }
    }
    last.is_ok_and(|m| m.is_dir() && ctime(&m) < since)
}

/// Whether `p` (in the worktree `top`) exists: one that cannot be looked at, even after
/// [`look`], counts as there (then setting it aside fails loudly rather than passing over
/// it in silence); only "no such file" (or a file where a directory would be) is absence.
fn present(top: &Path, p: &Path) -> bool {
    match look(top, p) {
        Ok(_) => true,
        Err(e) => !matches!(e.raw_os_error(), Some(nix::libc::ENOENT | nix::libc::ENOTDIR)),
    }
}

/// The entries of a directory; one the launcher cannot list but owns (the cell made it
/// `chmod 111`, say: git can still look inside) is made readable for it first.
fn list(top: &Path, dir: &Path) -> Option<Vec<(PathBuf, std::fs::FileType)>> {
    use std::os::unix::fs::PermissionsExt as _;
    let read = |d: &Path| -> std::io::Result<Vec<(PathBuf, std::fs::FileType)>> {
        std::fs::read_dir(d)?.map(|e| e.and_then(|e| Ok((e.path(), e.file_type()?)))).collect()
    };
    match read(dir) {
        Ok(v) => Some(v),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let m = look(top, dir).ok()?;
            if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() {
                return None;
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700)).ok()?;
            read(dir).ok()
        }
        Err(_) => None,
    }
}

/// Whether git would take directory `d` for a repository of its own (a bare one, or the
/// inside of a `.git`): a `HEAD` file with `objects` and `refs` beside it, or a `commondir`
/// naming where they are; any of them may be a link, so links count too.
fn looks_like_git_dir(top: &Path, d: &Path) -> bool {
    let there = |n: &str| look(top, &d.join(n)).is_ok();
    // Any `HEAD` but a directory: git opens a FIFO or a device there too (and hangs on one).
    look(top, &d.join("HEAD")).is_ok_and(|m| !m.is_dir()) && (there("commondir") || (there("objects") && there("refs")))
}

/// The entries of a git directory through which a cell could have host git run or read
/// what it chose: its config, hooks and where it finds more of them, and the state of a
/// rebase or cherry-pick in progress (an `exec` line of a rebase's todo runs when the host
/// continues it).
const GIT_DIR_INSTRUCTIONS: [&str; 10] = [
    "config",
    "config.worktree",
    "hooks",
    "commondir",
    "worktrees",
    "modules",
    "objects/info/alternates",
    "rebase-merge",
    "rebase-apply",
    "sequencer",
];

/// Whether git directory `d` below the top is the host's, to be kept: made before the
/// launch (its birth time, which neither a write nor a rename changes: the cell cannot have
/// made it) with none of its instructions ([`GIT_DIR_INSTRUCTIONS`]) changed, so that git in
/// the cell (a `status` that refreshes the index, a commit, a checkout) does not cost the
/// host its repository. Where the file system keeps no birth times, `unchanged` decides.
fn kept_git_dir(top: &Path, d: &Path, since: std::time::SystemTime, unchanged: impl FnOnce() -> bool) -> bool {
    match crate::sys::birth_time(d) {
        Some(born) if born < since => !GIT_DIR_INSTRUCTIONS.iter().any(|n| changed_since(top, &d.join(n), since)),
        Some(_) => false,
        None => unchanged(),
    }
}

/// Whether directory `d` looks like a git directory and one of the entries that make it
/// one, or its hooks, changed during the run.
fn git_dir_changed(top: &Path, d: &Path, since: std::time::SystemTime) -> bool {
    looks_like_git_dir(top, d)
        && ["HEAD", "config", "commondir", "objects", "refs", "hooks"]
            .iter()
            .any(|n| changed_since(top, &d.join(n), since))
}

/// Whether `.git` file `p` links into the host's own git directory (a submodule's
/// `gitdir: ../.git/modules/NAME`), which the cell cannot write. The file is read as git
/// reads it ([`crate::host::gitview::gitfile_target`]), at most 4 KiB (a longer one is not
/// the host's), never through a link and never blocking: a gitfile is one line, and a cell
/// must not stall or bloat the containment with a huge or special file. The path it names
/// must get there through directories alone: a link on the way (one in the cell's home,
/// say, that leads into `.git/modules`) is the cell's to change once this check is done.
fn links_into(p: &Path, host_git: Option<&Path>) -> bool {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let Some(host_git) = host_git else { return false };
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(p)
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut text = Vec::new();
    if f.take(4097).read_to_end(&mut text).is_err() || text.len() > 4096 {
        return false;
    }
    let Some(target) = crate::host::gitview::gitfile_target(&text) else { return false };
    let target = Path::new(OsStr::from_bytes(target));
    let Some(start) = (if target.is_absolute() { Some(Path::new("/")) } else { p.parent() }) else { return false };
    let Some(t) = resolved_without_links(start, target) else { return false };
    let Some(dir) = p.parent().and_then(|d| crate::sys::canonical(d).ok()) else { return false };
    // And the git directory must name this worktree back: a linked worktree's `gitdir`
    // file this `.git`, a submodule's `core.worktree` this directory. A `.git` the cell
    // points at another worktree's git directory would make host git take this
    // directory for that worktree, with hooks and commands resolved here.
    if t.parent() == Some(&host_git.join("worktrees")) {
        let named = std::fs::read(t.join("gitdir")).ok().map(|b| {
            let s = String::from_utf8_lossy(&b).trim_end_matches(['\n', '\r']).to_owned();
            PathBuf::from(s)
        });
        return named.and_then(|n| crate::sys::canonical(n.parent()?).ok()).is_some_and(|d| d == dir);
    }
    t.starts_with(host_git.join("modules")) && crate::host::gitview::core_worktree(&t).is_some_and(|w| w == dir)
}

/// `path` taken from the directory `start` (its real path), one component at a time, as a
/// real path; `None` when it leads through a link or to nothing there.
fn resolved_without_links(start: &Path, path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut at = crate::sys::canonical(start).ok()?;
    for c in path.components() {
        match c {
            Component::RootDir => at = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => {
                at.push(name);
                if std::fs::symlink_metadata(&at).ok()?.file_type().is_symlink() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(at)
}

/// What the exit scan needs to know of the launch.
struct Scan<'a> {
    top: &'a Path,
    since: std::time::SystemTime,
    host_git: Option<&'a Path>,
    writable: &'a [PathBuf],
    /// The paths the launch held read-only: a `.git` file the host's is only ever one of
    /// them (a submodule's, a linked worktree's), rewritten by the host during the run.
    held: &'a [PathBuf],
    nested: &'a Nested,
    /// How many repositories below the top the scan has looked into.
    looked_into: std::cell::Cell<usize>,
}

impl Scan<'_> {
    /// Whether `link` (a link the cell made or changed) leads into a host directory the
    /// cell can write outside the worktree: host tools that follow it (a shell's `cd`, an
    /// editor) would read or run what the cell left there, which no scan of the worktree
    /// sees.
    /// A link that leads nowhere yet counts by where it points (its directory's real path
    /// and the target's words): what it names may be made there after this scan (a refused
    /// git directory is renamed to a name the cell can tell).
    fn leads_out(&self, link: &Path) -> bool {
        if self.writable.is_empty() || !std::fs::symlink_metadata(link).is_ok_and(|m| ctime(&m) >= self.since) {
            return false;
        }
        let into = |t: &Path| self.writable.iter().any(|w| t.starts_with(w));
        match crate::sys::canonical(link) {
            Ok(t) => into(&t),
            Err(_) => std::fs::read_link(link).ok().is_some_and(|target| {
                let dir = link.parent().and_then(|d| crate::sys::canonical(d).ok()).unwrap_or_default();
                into(&crate::sys::normalise_path(&dir.join(target)))
            }),
        }
    }
}

/// Whether a tool reads file `p` as its config wherever it lies: a name of `names`, or one
/// of mise's many (`mise.<env>.toml`, `.mise.local.toml`, the older `.rtx.toml`, any
/// `*.toml` in a `mise/` or `.mise/` directory, or in its `conf.d/`).
fn read_anywhere(names: &[String], p: &Path) -> bool {
    fn name(q: Option<&Path>) -> &str {
        q.and_then(Path::file_name).and_then(OsStr::to_str).unwrap_or_default()
    }
    let file = name(Some(p));
    if names.iter().any(|n| n == file) {
        return true;
    }
    let mise_dir = |d: &str| d == "mise" || d == ".mise";
    let parent = p.parent();
    Path::new(file).extension().is_some_and(|e| e == "toml")
        && (["mise.", ".mise.", ".rtx."].iter().any(|s| file.starts_with(s))
            || mise_dir(name(parent))
            || (name(parent) == "conf.d" && mise_dir(name(parent.and_then(Path::parent)))))
}

/// Paths from this length on cannot be looked at by name (`PATH_MAX`, with its NUL).
const LONGEST_PATH: usize = 4095;
const TOO_DEEP_WHY: &str = "directories nested past the longest path the exit can look into";
const ANYWHERE_WHY: &str = "a hook runner's or task tool's config the cell made or changed where the tool reads it";

/// Why a nested repository (or what its config names) is set aside.
const NESTED_WHY: &str = "a repository the cell made or changed where host git would use it";
const NAMED_WHY: &str = "changed by the cell where a repository's config or tools name it: host git or a hook runner there would run or read it";

/// Repositories below the top of the worktree that changed during the run: `.git` entries
/// (a `.git` file linking into the host's own git directory is the host's) and directories
/// git would take for a repository (their `HEAD` is set aside, which is what makes them
/// one); in those kept, what their config names that changed ([`Scan::named_changes`]);
/// and links the cell made out of the worktree ([`Scan::leads_out`]).
fn walk(scan: &Scan<'_>, dir: &Path, out: &mut Vec<(PathBuf, &'static str)>) {
    let top = scan.top;
    let Some(entries) = list(top, dir) else {
        // Too long a path to look into (the cell can nest directories past `PATH_MAX`):
        // `contain` sets aside the deepest directory above it that can be named.
        if dir.as_os_str().len() >= LONGEST_PATH {
            out.push((dir.to_owned(), TOO_DEEP_WHY));
        }
        return;
    };
    // The top is looked at by `contain` itself.
    if dir != top && looks_like_git_dir(top, dir) {
        if kept_git_dir(top, dir, scan.since, || !git_dir_changed(top, dir, scan.since)) {
            scan.named_changes(dir, true, out);
        } else {
            out.push((dir.join("HEAD"), NESTED_WHY));
        }
    }
    for (p, ft) in entries {
        if p.file_name() == Some(OsStr::new(".git")) {
            let hosts = ft.is_file() && scan.held.contains(&p) && links_into(&p, scan.host_git);
            let kept = if ft.is_dir() {
                kept_git_dir(top, &p, scan.since, || !changed_since(top, &p, scan.since))
            } else {
                !changed_since(top, &p, scan.since)
            };
            if dir != top && !kept && !hosts {
                out.push((p, NESTED_WHY));
            } else if dir != top && !hosts {
                // The host's repository, kept: what its config names is looked at. (A
                // submodule's or linked worktree's, held, had its named paths held too.)
                scan.named_changes(dir, false, out);
            }
            continue;
        }
        let anywhere = !scan.nested.anywhere.is_empty() && read_anywhere(&scan.nested.anywhere, &p);
        if anywhere && !ft.is_dir() && changed_since(top, &p, scan.since) {
            out.push((p, ANYWHERE_WHY));
        } else if ft.is_symlink() && scan.leads_out(&p) {
            out.push((p, "a link the cell made out of the worktree into a place it can write"));
        } else if ft.is_dir() {
            walk(scan, &p, out);
        }
    }
}

impl Scan<'_> {
    /// What the repository at `repo` (its top; `bare`: its git directory) was kept with and
    /// the cell changed: the paths in the worktree its config and the host's name
    /// ([`crate::host::gitview::named_paths`]), and the default list at its top.
    fn named_changes(&self, repo: &Path, bare: bool, out: &mut Vec<(PathBuf, &'static str)>) {
        let n = self.looked_into.get() + 1;
        self.looked_into.set(n);
        if n > MAX_NESTED {
            return;
        }
        let (Some(top), Some(repo_u)) = (camino::Utf8Path::from_path(self.top), camino::Utf8Path::from_path(repo))
        else {
            // Not UTF-8: its config cannot be matched to paths; the whole repository goes.
            out.push((repo.join(if bare { "HEAD" } else { ".git" }), NESTED_WHY));
            return;
        };
        // A config file in the worktree that changed is not read: it is the cell's, and goes
        // aside itself (with its git directory, or as a named path).
        let unchanged =
            |f: &camino::Utf8Path| !f.starts_with(top) || !changed_since(self.top, f.as_std_path(), self.since);
        let rules =
            crate::host::gitview::repository_rules(repo_u, bare, &self.nested.rules, &self.nested.home, &unchanged);
        // The top git works in: the repository's, or where its `core.worktree` points (in
        // the worktree; elsewhere the cell cannot write).
        let work = if bare {
            repo.to_owned()
        } else {
            let real_top = crate::sys::canonical(self.top).ok();
            crate::host::gitview::core_worktree(&repo.join(".git"))
                .and_then(|w| Some(self.top.join(w.strip_prefix(real_top.as_ref()?).ok()?)))
                .unwrap_or_else(|| repo.to_owned())
        };
        let Some(work_u) = camino::Utf8Path::from_path(&work) else { return };
        let mut named = crate::host::gitview::named(&rules, top, work_u, &self.nested.home);
        if !bare {
            let at = work_u.strip_prefix(top).map(camino::Utf8Path::as_str).unwrap_or_default();
            named.extend(self.nested.at_tops.iter().map(|p| (format!("{at}/{p}"), crate::host::gitview::Named::File)));
        }
        for (rel, kind) in named {
            let p = self.top.join(rel.trim_end_matches('/'));
            let Some(q) = self.changed_named(&p, 8) else { continue };
            match kind {
                // A word that is a directory is an argument, not a program (`./src` of
                // `!npx eslint ./src`): the cell's edits there stay.
                crate::host::gitview::Named::Word
                    if q == p && std::fs::symlink_metadata(&q).is_ok_and(|m| m.is_dir()) => {}
                // A hooks path that holds the repository itself: only its hooks are hooks.
                crate::host::gitview::Named::Hooks if work.starts_with(&q) => {
                    for (e, _) in list(self.top, &q).unwrap_or_default() {
                        let name = e.file_name().and_then(OsStr::to_str).unwrap_or_default();
                        if HOOKS.contains(&name) && changed_since(self.top, &e, self.since) {
                            out.push((e, NAMED_WHY));
                        }
                    }
                }
                _ => out.push((q, NAMED_WHY)),
            }
        }
    }

    /// Where named path `p` of the worktree changed during the run: `p` itself when it or
    /// anything below it changed, or a link on the way the cell made (it goes, never what it
    /// leads to). A link the host made is followed, at most `links` of them: into the
    /// worktree, to what changed where it leads; out of it, into a place the cell can
    /// write, to the link itself when what it leads to changed there.
    fn changed_named(&self, p: &Path, links: u8) -> Option<PathBuf> {
        let top = self.top;
        let rel = p.strip_prefix(top).ok()?;
        let parts: Vec<_> = rel.components().collect();
        let mut cur = top.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            cur.push(part);
            let m = match look(top, &cur) {
                Ok(m) => m,
                Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOENT | nix::libc::ENOTDIR)) => return None,
                Err(_) => return Some(cur),
            };
            if m.file_type().is_symlink() {
                if ctime(&m) >= self.since || links == 0 {
                    return Some(cur);
                }
                let rest: PathBuf = parts[i + 1..].iter().collect();
                let target = crate::sys::canonical(&cur).ok()?;
                let real_top = crate::sys::canonical(top).ok()?;
                if let Ok(r) = target.strip_prefix(&real_top) {
                    return self.changed_named(&top.join(r).join(&rest), links - 1);
                }
                let there = target.join(&rest);
                let writable = self.writable.iter().any(|w| there.starts_with(w));
                return (writable && changed_since(Path::new("/"), &there, self.since)).then_some(cur);
            }
            if i + 1 == parts.len() {
                return changed_since(top, &cur, self.since).then_some(cur);
            }
            if !m.is_dir() {
                return None;
            }
        }
        None
    }
}

/// The hooks git runs, by their names in a hooks directory.
const HOOKS: [&str; 28] = [
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitfiles_are_read_as_git_reads_them() {
        assert_eq!(
            crate::host::gitview::gitfile_target(b"gitdir: ../.git/modules/a\n"),
            Some(&b"../.git/modules/a"[..])
        );
        assert_eq!(crate::host::gitview::gitfile_target(b"gitdir:  h\r\n"), Some(&b" h"[..]));
        // Git drops the file's trailing newlines, then stops at the NUL: `x` and a newline
        // to git, `x` to a reading that stops first. Refused, as any control character.
        for odd in
            [&b"gitdir: x\n\0"[..], b"gitdir: x\0gitdir: y", b"gitdir: x\ny\n", b"gitdir: x\ty", b"gitdir: \x1b[x"]
        {
            assert_eq!(crate::host::gitview::gitfile_target(odd), None, "{odd:?}");
        }
        assert_eq!(crate::host::gitview::gitfile_target(b"gitdir: \n"), None);
        assert_eq!(crate::host::gitview::gitfile_target(b"nothing"), None);
    }

    #[test]
    fn a_gitfile_links_into_the_host_only_through_directories() {
        let d = tempfile::tempdir().unwrap();
        let top = crate::sys::canonical(d.path()).unwrap();
        let host_git = top.join(".git");
        std::fs::create_dir_all(host_git.join("modules/sm")).unwrap();
        std::fs::create_dir_all(top.join("sub")).unwrap();
        std::fs::create_dir_all(top.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(host_git.join("modules/sm"), top.join("elsewhere/link")).unwrap();
        // The submodule's git directory names its worktree back, as git writes it.
        std::fs::write(host_git.join("modules/sm/config"), "[core]\n\tworktree = ../../../sub\n").unwrap();
        let gitfile = top.join("sub/.git");
        let cases = [
            ("gitdir: ../.git/modules/sm\n".to_owned(), true),
            (format!("gitdir: {}\n", host_git.join("modules/sm").display()), true),
            // Into the modules through a link the cell could point elsewhere later.
            (format!("gitdir: {}\n", top.join("elsewhere/link").display()), false),
            ("gitdir: ../elsewhere/link\n".to_owned(), false),
            ("gitdir: ../.git/modules/sm/../../../elsewhere\n".to_owned(), false),
            ("gitdir: ../.git/modules/none\n".to_owned(), false),
            // Longer than any gitfile the host makes (4 KiB), though git would follow it.
            (format!("gitdir: ../.git/modules/sm{}\n", "/.".repeat(2100)), false),
            (format!("gitdir: ../.git/modules/sm{}\n", "/.".repeat(1900)), true),
        ];
        for (text, kept) in cases {
            std::fs::write(&gitfile, &text).unwrap();
            assert_eq!(links_into(&gitfile, Some(&host_git)), kept, "{text:?}");
        }
        // Another worktree's git directory is kept only by the `.git` it names back.
        std::fs::create_dir_all(host_git.join("worktrees/other")).unwrap();
        std::fs::write(host_git.join("worktrees/other/gitdir"), format!("{}\n", top.join("elsewhere/.git").display()))
            .unwrap();
        std::fs::write(&gitfile, "gitdir: ../.git/worktrees/other\n").unwrap();
        assert!(!links_into(&gitfile, Some(&host_git)), "a .git pointed at another worktree's git directory");
        std::fs::write(host_git.join("worktrees/other/gitdir"), format!("{}\n", gitfile.display())).unwrap();
        assert!(links_into(&gitfile, Some(&host_git)), "the linked worktree's own .git");
        // A submodule's git directory whose worktree is elsewhere is not this directory's.
        std::fs::write(host_git.join("modules/sm/config"), "[core]\n\tworktree = ../../../elsewhere\n").unwrap();
        std::fs::write(&gitfile, "gitdir: ../.git/modules/sm\n").unwrap();
        assert!(!links_into(&gitfile, Some(&host_git)));
    }

    #[test]
    fn set_aside_never_replaces_and_is_not_predictable() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".envrc");
        std::fs::write(&p, "x").unwrap();
        let a = set_aside(&p).unwrap();
        assert!(!p.exists() && a.exists());
        std::fs::write(&p, "y").unwrap();
        let b = set_aside(&p).unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read_to_string(a).unwrap(), "x");
    }
}
