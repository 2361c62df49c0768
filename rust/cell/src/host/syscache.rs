//! The host's system mounts (`/usr`, `/lib*`, the files of `/etc` a cell gets; see
//! `plan::host_system_mounts`), kept from one launch to the next with a record of every
//! path they were made from, and made again when any of those paths changed.
//!
//! Working them out reads the root directory, about twenty `/etc` entries and the small
//! files copied from them: some 90 system calls, 0.3 ms of every launch on a small VM. The
//! record holds each path as `stat` or `lstat` saw it before it was read (device, inode,
//! mode, owner, size, change and modification times), or that it could not be seen at all,
//! so a file that appears where none was counts as a change too. Checking the record costs
//! one `stat` per path.
//!
//! What is kept must not be a way into a cell:
//! - the cache lies in the launch's runtime base, which no cell sees (a plan whose mounts
//!   would show it, or the base of the account's other sessions, is refused); the base and
//!   its `etc` must both be real directories of ours with mode 0700 (no link anywhere a
//!   cell or another user could have planted one);
//! - a kept file is used only when its mounts are of the kinds and places the system mounts
//!   are made of (a read-only bind of a system directory or of an `/etc` entry onto itself, a
//!   link, a directory, copies into `/etc`), every path in normal form, each mount's path
//!   among those recorded;
//! - and only by the account, group and supplementary groups that made it (what they may
//!   read is what was copied).
//!
//! A path changed in the same second as it was read is not kept (its times could not tell a
//! second change in that second): that launch's result is used once and not kept. Changes
//! that move neither time nor inode are not seen: a second write through a shared mapping
//! into a page that is still dirty, a file server's cached attributes.

use std::os::unix::fs::MetadataExt as _;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::host::plan::{DataFile, Mount};

/// The file the mounts are kept in, below the runtime base.
pub const FILE: &str = "etc/system.json";

/// The version of the file's layout (another is ignored).
const VERSION: u32 = 1;

/// How a path was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// `lstat`: the path itself, a link as a link.
    Lstat,
    /// `stat`: what the path leads to.
    Stat,
}

/// What `stat` said of a path: device, inode, mode, links, owner, group, size, then the
/// modification and change times (seconds and nanoseconds). `None`: it could not be seen.
pub type Sig = Option<[i64; 11]>;

fn sig(m: &std::fs::Metadata) -> [i64; 11] {
    let u = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        u(m.dev()),
        u(m.ino()),
        i64::from(m.mode()),
        u(m.nlink()),
        i64::from(m.uid()),
        i64::from(m.gid()),
        u(m.size()),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ]
}

/// Whether a `st_mode` is a symbolic link's.
fn is_link(mode: i64) -> bool {
    mode & i64::from(nix::libc::S_IFMT) == i64::from(nix::libc::S_IFLNK)
}

fn look(p: &Utf8Path, how: How) -> std::io::Result<std::fs::Metadata> {
    match how {
        How::Lstat => std::fs::symlink_metadata(p),
        How::Stat => std::fs::metadata(p),
    }
}

/// Every path looked at while the system mounts were worked out, each before it was read.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    records: Vec<(Utf8PathBuf, How, Sig)>,
}

impl Seen {
    /// `lstat` of `p`, recorded.
    ///
    /// # Errors
    /// As `symlink_metadata`.
    pub fn lstat(&mut self, p: &Utf8Path) -> std::io::Result<std::fs::Metadata> {
        self.note(p, How::Lstat)
    }

    /// `stat` of `p`, recorded (also before `p` is listed or read).
    ///
    /// # Errors
    /// As `metadata`.
    pub fn stat(&mut self, p: &Utf8Path) -> std::io::Result<std::fs::Metadata> {
        self.note(p, How::Stat)
    }

    fn note(&mut self, p: &Utf8Path, how: How) -> std::io::Result<std::fs::Metadata> {
        let r = look(p, how);
        let s = r.as_ref().ok().map(sig);
        // A `stat` of what an `lstat` already saw as no link (`dir/` included) adds nothing:
        // the `lstat` sees it change, or become a link.
        let trimmed = p.as_str().trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { p.as_str() } else { trimmed };
        let seen_as_no_link = how == How::Stat
            && s.is_some()
            && self.records.iter().any(|(q, h, t)| {
                *h == How::Lstat && q.as_str() == trimmed && *t == s && t.is_some_and(|t| !is_link(t[2]))
            });
        if !seen_as_no_link && !self.records.iter().any(|(q, h, t)| q == p && *h == how && *t == s) {
            self.records.push((p.to_owned(), how, s));
        }
        r
    }

    /// The link `p` points to, its `lstat` recorded first.
    ///
    /// # Errors
    /// When it is no link or cannot be read.
    pub fn read_link(&mut self, p: &Utf8Path) -> std::io::Result<std::path::PathBuf> {
        self.lstat(p)?;
        std::fs::read_link(p)
    }

    /// Whether every path still looks as recorded.
    #[must_use]
    pub fn still(&self) -> bool {
        self.records.iter().all(|(p, how, s)| look(p, *how).ok().map(|m| sig(&m)) == *s)
    }

    /// Whether a path was changed within a second of `now` (seconds since the epoch) or
    /// later, as its recorded times say.
    fn recent(&self, now: i64) -> bool {
        self.records.iter().any(|(_, _, s)| s.is_some_and(|s| s[7] >= now - 1 || s[9] >= now - 1))
    }
}

/// The kept file. Mounts as `[op, source or target, destination]` and copies as
/// `[destination, contents]`: plain arrays, which parse about three times faster than the
/// plan's tagged form.
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    version: u32,
    /// Effective uid and gid, then the supplementary groups, sorted.
    ids: Vec<u32>,
    seen: Seen,
    mounts: Vec<(String, Utf8PathBuf, Utf8PathBuf)>,
    copies: Vec<(Utf8PathBuf, String)>,
}

impl Kept {
    /// `None` when a mount is of a kind the system mounts are not made of.
    fn new(seen: &Seen, mounts: &[Mount], copies: &[DataFile]) -> Option<Self> {
        let mounts = mounts
            .iter()
            .map(|m| match m {
                Mount::RoBind { src, dst } => Some(("ro-bind".to_owned(), src.clone(), dst.clone())),
                Mount::Symlink { target, dst } => Some(("symlink".to_owned(), target.clone(), dst.clone())),
                Mount::Dir { dst } => Some(("dir".to_owned(), Utf8PathBuf::new(), dst.clone())),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let copies = copies.iter().map(|c| (c.dst.clone(), c.contents.clone())).collect();
        Some(Self { version: VERSION, ids: ids(), seen: seen.clone(), mounts, copies })
    }

    /// The mounts and copies, or `None` for an unknown kind.
    fn into_parts(self) -> Option<(Vec<Mount>, Vec<DataFile>)> {
        let mounts = self
            .mounts
            .into_iter()
            .map(|(op, a, dst)| match op.as_str() {
                "ro-bind" => Some(Mount::RoBind { src: a, dst }),
                "symlink" => Some(Mount::Symlink { target: a, dst }),
                "dir" => Some(Mount::Dir { dst }),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let copies = self.copies.into_iter().map(|(dst, contents)| DataFile { dst, contents }).collect();
        Some((mounts, copies))
    }
}

/// Who is launching: effective uid and gid, then the supplementary groups, sorted.
fn ids() -> Vec<u32> {
    let mut groups: Vec<u32> =
        nix::unistd::getgroups().unwrap_or_default().into_iter().map(nix::unistd::Gid::as_raw).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut out = vec![nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw()];
    out.extend(groups);
    out
}

/// Top directories the system mounts bind or link (`/lib*` too).
const TOPS: [&str; 5] = ["/usr", "/bin", "/sbin", "/nix/store", "/run/current-system"];

/// An absolute path in normal form: no `.`, `..` or empty component, no trailing `/`.
fn normal(p: &Utf8Path) -> bool {
    let s = p.as_str();
    s.starts_with('/') && s.len() > 1 && s[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A top system directory itself (`/usr`, `/lib64`...), as the system mounts bind or link it.
fn top(p: &Utf8Path) -> bool {
    let s = p.as_str();
    TOPS.contains(&s) || (s.starts_with("/lib") && !s[1..].contains('/'))
}

/// Strictly below `/etc`.
fn in_etc(p: &Utf8Path) -> bool {
    p.as_str().starts_with("/etc/")
}

/// Whether kept mounts are of the kinds and places the system mounts are made of, in normal
/// form, each mount's path recorded.
fn plausible(seen: &Seen, mounts: &[Mount], copies: &[DataFile]) -> bool {
    let recorded = |p: &Utf8Path| seen.records.iter().any(|(q, _, _)| q == p);
    !seen.records.is_empty()
        && mounts.iter().all(|m| match m {
            Mount::RoBind { src, dst } => src == dst && normal(dst) && (top(dst) || in_etc(dst)) && recorded(dst),
            Mount::Symlink { target, dst } => {
                !target.as_str().is_empty() && normal(dst) && (top(dst) || in_etc(dst)) && recorded(dst)
            }
            Mount::Dir { dst } => normal(dst) && in_etc(dst),
            _ => false,
        })
        && copies.iter().all(|c| normal(&c.dst) && in_etc(&c.dst))
}

/// The system mounts kept in `base` when nothing they were made from changed, else those
/// `make` works out now (kept for the next launch when no path was just changed).
/// Without a base (or when it is not a private directory of ours), `make` alone.
pub fn system_mounts(
    base: Option<&Utf8Path>,
    make: impl FnOnce(&mut Seen) -> (Vec<Mount>, Vec<DataFile>),
) -> (Vec<Mount>, Vec<DataFile>) {
    let dir = base.filter(|b| crate::sys::is_private_dir(b)).and_then(|b| {
        let file = b.join(FILE);
        let dir = file.parent()?.to_owned();
        crate::sys::is_private_dir(&dir).then_some((file, dir))
    });
    if let Some(kept) = dir.as_ref().and_then(|(f, _)| load(f)) {
        return kept;
    }
    let mut seen = Seen::default();
    let made = make(&mut seen);
    if let Some((file, _)) = &dir {
        store(file, &seen, &made);
    }
    made
}

fn load(file: &Utf8Path) -> Option<(Vec<Mount>, Vec<DataFile>)> {
    let text = std::fs::read_to_string(file).ok()?;
    let kept: Kept = serde_json::from_str(&text).ok()?;
    if kept.version != VERSION || kept.ids != ids() {
        return None;
    }
    let seen = kept.seen.clone();
    let (mounts, copies) = kept.into_parts()?;
    (plausible(&seen, &mounts, &copies) && seen.still()).then_some((mounts, copies))
}

fn store(file: &Utf8Path, seen: &Seen, made: &(Vec<Mount>, Vec<DataFile>)) {
    let now = i64::try_from(crate::sys::since_epoch().as_secs()).unwrap_or(i64::MAX);
    if seen.recent(now) || !plausible(seen, &made.0, &made.1) {
        return;
    }
    let Some(kept) = Kept::new(seen, &made.0, &made.1) else { return };
    let Ok(text) = serde_json::to_string(&kept) else { return };
    // Written whole under another name, then renamed over: a reader sees one or the other.
    let tmp = Utf8PathBuf::from(format!("{file}.{}", std::process::id()));
    if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, file).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sys::temp_dir as tmp;

    #[test]
    fn any_change_to_what_was_read_is_seen() {
        let (_t, d) = tmp();
        std::fs::create_dir(d.join("dir")).unwrap();
        std::fs::write(d.join("file"), "one").unwrap();
        std::os::unix::fs::symlink("file", d.join("link")).unwrap();
        let look_all = || {
            let mut seen = Seen::default();
            let _ = seen.stat(&d.join("dir"));
            let _ = seen.stat(&d.join("file"));
            let _ = seen.read_link(&d.join("link"));
            let _ = seen.lstat(&d.join("absent"));
            seen
        };
        let changes: [&dyn Fn(); 5] = [
            // Same size, other contents (a new inode: written under another name, renamed).
            &|| {
                std::fs::write(d.join("file.new"), "two").unwrap();
                std::fs::rename(d.join("file.new"), d.join("file")).unwrap();
            },
            // Rewritten in place: the change time moves (the test waits past its granularity).
            &|| std::fs::write(d.join("file"), "three").unwrap(),
            // An entry added to a listed directory.
            &|| std::fs::write(d.join("dir/added"), "x").unwrap(),
            // A link pointed elsewhere.
            &|| {
                std::fs::remove_file(d.join("link")).unwrap();
                std::os::unix::fs::symlink("dir", d.join("link")).unwrap();
            },
            // A path that was absent appears.
            &|| std::fs::create_dir(d.join("absent")).unwrap(),
        ];
        for (i, change) in changes.iter().enumerate() {
            let seen = look_all();
            assert!(seen.still(), "change {i}: unchanged paths must look the same");
            std::thread::sleep(std::time::Duration::from_millis(20));
            change();
            assert!(!seen.still(), "change {i} went unseen");
        }
        // A stat of what an lstat saw as no link is not recorded twice; of a link it is.
        let mut seen = Seen::default();
        let _ = seen.lstat(&d.join("dir"));
        let _ = seen.stat(&d.join("dir/"));
        let _ = seen.lstat(&d.join("link"));
        let _ = seen.stat(&d.join("link"));
        assert_eq!(seen.records.len(), 3, "{:?}", seen.records);
        // Mode and owner changes move the change time as well.
        let seen = look_all();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(d.join("file"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert!(!seen.still(), "a chmod went unseen");
    }

    fn kept_file(base: &Utf8Path) -> Utf8PathBuf {
        std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let etc = base.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::set_permissions(&etc, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        base.join(FILE)
    }

    /// Mounts made from paths nothing changes in a test (and that were not changed within a
    /// second, so they are kept).
    fn make_old(seen: &mut Seen) -> (Vec<Mount>, Vec<DataFile>) {
        let _ = seen.stat(Utf8Path::new("/"));
        let _ = seen.lstat(Utf8Path::new("/usr"));
        (
            vec![Mount::RoBind { src: "/usr".into(), dst: "/usr".into() }],
            vec![DataFile { dst: "/etc/x".into(), contents: "x".into() }],
        )
    }

    #[test]
    fn kept_mounts_are_used_until_a_path_changes() {
        let (_t, base) = tmp();
        let file = kept_file(&base);
        let calls = std::cell::Cell::new(0);
        let make = |seen: &mut Seen| {
            calls.set(calls.get() + 1);
            make_old(seen)
        };
        let first = system_mounts(Some(&base), make);
        assert!(file.is_file(), "nothing was kept");
        assert_eq!(system_mounts(Some(&base), make), first);
        assert_eq!(calls.get(), 1, "the kept mounts were not used");
        // A kept record that no longer holds: made again.
        let text = std::fs::read_to_string(&file).unwrap();
        let mut kept: Kept = serde_json::from_str(&text).unwrap();
        kept.seen.records[0].2 = Some([0; 11]);
        std::fs::write(&file, serde_json::to_string(&kept).unwrap()).unwrap();
        assert_eq!(system_mounts(Some(&base), make), first);
        assert_eq!(calls.get(), 2, "a changed path did not make them again");
        // And kept anew.
        assert_eq!(system_mounts(Some(&base), make), first);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_kept_file_with_other_mounts_or_of_other_ids_is_ignored() {
        let (_t, base) = tmp();
        let file = kept_file(&base);
        let made = make_old(&mut Seen::default());
        let forge = |mounts: &str, copies: &str, ids: &[u32]| {
            // Every path of the mounts recorded as it is now (so the record holds).
            let mut seen = Seen::default();
            for p in ["/usr", "/root", "/home", "/etc", "/usr/../root", "/etc/x"] {
                let _ = seen.lstat(Utf8Path::new(p));
            }
            let text = format!(
                r#"{{"version":1,"ids":{},"seen":{},"mounts":{mounts},"copies":{copies}}}"#,
                serde_json::to_string(ids).unwrap(),
                serde_json::to_string(&seen).unwrap()
            );
            assert!(serde_json::from_str::<Kept>(&text).is_ok(), "{text}");
            std::fs::write(&file, &text).unwrap();
        };
        // The forms the launcher keeps are used.
        forge(r#"[["ro-bind","/usr","/usr"]]"#, r#"[["/etc/y","y"]]"#, &ids());
        assert_eq!(system_mounts(Some(&base), make_old).1[0].dst, "/etc/y", "a plausible kept file was not used");
        for (mounts, copies) in [
            // A host directory bound somewhere else, a writable bind, a tmpfs, a bind outside
            // the system directories, one that leaves them by `..`, all of /etc.
            (r#"[["ro-bind","/root","/etc/x"]]"#, "[]"),
            (r#"[["bind","/usr","/usr"]]"#, "[]"),
            (r#"[["tmpfs","","/usr"]]"#, "[]"),
            (r#"[["ro-bind","/home","/home"]]"#, "[]"),
            (r#"[["ro-bind","/usr/../root","/usr/../root"]]"#, "[]"),
            (r#"[["ro-bind","/etc","/etc"]]"#, "[]"),
            // A link or directory in an unrecorded or outside place, copies outside /etc.
            (r#"[["symlink","/root","/etc/z"]]"#, "[]"),
            (r#"[["dir","","/home/x"]]"#, "[]"),
            ("[]", r#"[["/home/x","x"]]"#),
            ("[]", r#"[["/etc/../home/x","x"]]"#),
            ("[]", r#"[["/etc","x"]]"#),
        ] {
            forge(mounts, copies, &ids());
            assert_eq!(system_mounts(Some(&base), make_old), made, "{mounts} {copies}");
        }
        // Made by other ids (another group list, say): made again.
        let mut other = ids();
        other.push(u32::MAX);
        forge(r#"[["ro-bind","/usr","/usr"]]"#, r#"[["/etc/y","y"]]"#, &other);
        assert_eq!(system_mounts(Some(&base), make_old), made);
        // No record at all: made again.
        let text = format!(
            r#"{{"version":1,"ids":{},"seen":{{"records":[]}},"mounts":[],"copies":[["/etc/y","y"]]}}"#,
            serde_json::to_string(&ids()).unwrap()
        );
        std::fs::write(&file, text).unwrap();
        assert_eq!(system_mounts(Some(&base), make_old), made);
    }

    #[test]
    fn a_base_that_is_a_link_is_neither_read_nor_written() {
        let (_t, root) = tmp();
        let real = root.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let file = kept_file(&real);
        let link = root.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let _ = system_mounts(Some(&link), make_old);
        assert!(!file.exists(), "kept through a link");
        let _ = system_mounts(Some(&real), make_old);
        assert!(file.exists());
        let calls = std::cell::Cell::new(0);
        let _ = system_mounts(Some(&link), |seen: &mut Seen| {
            calls.set(calls.get() + 1);
            make_old(seen)
        });
        assert_eq!(calls.get(), 1, "a kept file was read through a link");
    }

    #[test]
    fn nothing_is_kept_of_a_path_just_changed_or_outside_a_private_directory() {
        let (_t, base) = tmp();
        let file = kept_file(&base);
        std::fs::write(base.join("fresh"), "x").unwrap();
        let fresh = base.join("fresh");
        let _ = system_mounts(Some(&base), |seen: &mut Seen| {
            let _ = seen.stat(&fresh);
            make_old(seen)
        });
        assert!(!file.exists(), "mounts made from a path changed this second were kept");
        // A base whose etc directory others can enter: neither read nor written.
        std::fs::set_permissions(base.join("etc"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let _ = system_mounts(Some(&base), make_old);
        assert!(!file.exists(), "kept in a directory others can enter");
    }
}
