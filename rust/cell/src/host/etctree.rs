//! The cell's `/etc` as one read-only directory of the runtime base, bound once.
//!
//! A plan puts two dozen things in `/etc`: the generated files (`passwd`, `hosts`, ...),
//! copies of small host files, empty directories and links. Written one by one onto
//! bubblewrap's root, they cost a file creation each on every launch. Instead the launcher
//! writes them once into `<runtime base>/etc/<digest>`, a directory named by the SHA-256
//! of everything in it, and bubblewrap binds that read-only over `/etc`; the host files the
//! plan binds below `/etc` (the CA certificates, `ld.so.cache`, ...) are bound over the
//! empty mount points the directory holds for them. A later launch whose `/etc` is the
//! same finds the directory there and writes nothing.
//!
//! The runtime base is private (0700, the user's own) and the directory is bound
//! read-only, so neither another user nor the cell can change it; it is built under a
//! temporary name and renamed into place, so a launch never binds a half-written one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::Digest as _;

use crate::host::plan::{DataFile, Mount};

/// Where every cell's `/etc` is in the cell.
const ETC: &str = "/etc";

/// One thing in the directory, by its path below `/etc`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A directory (the plan's `--dir`, or the parent of something below it).
    Dir,
    /// A generated file (`files[index]`), read-only.
    File(usize),
    /// An empty file where the plan binds a host file.
    MountPoint,
    /// A link to this target.
    Link(Utf8PathBuf),
}

/// The `/etc` of a plan, as one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcTree {
    /// Host path of the directory (`<runtime base>/etc/<digest>`).
    pub dir: Utf8PathBuf,
    /// By path below `/etc` (strings: their order still puts a directory before what
    /// lies in it, and compares bytes instead of components).
    entries: BTreeMap<String, Entry>,
    /// The mounts (by inside path) the directory holds, which bubblewrap is not asked for.
    placed: BTreeSet<String>,
}

/// Whether `p` lies strictly below `/etc`.
fn below_etc(p: &Utf8Path) -> bool {
    crate::host::plan::within(p.as_str(), ETC) && p != ETC
}

/// A mount that is a real mount (not a file, directory or link on bubblewrap's root).
fn is_mount(m: &Mount) -> bool {
    !matches!(m, Mount::Dir { .. } | Mount::Data { .. } | Mount::Symlink { .. })
}

/// The tree of `mounts` under `/etc`, to be kept in `base` (the runtime base's `etc`), or
/// `None` when the plan mounts something over `/etc` itself (a host `/etc`) or has nothing
/// there.
#[must_use]
pub fn plan(mounts: &[Mount], files: &[DataFile], base: &Utf8Path) -> Option<EtcTree> {
    let real: Vec<&Utf8Path> = mounts.iter().filter(|m| is_mount(m)).map(Mount::dst).collect();
    if real.iter().any(|d| crate::host::plan::within(ETC, d.as_str())) {
        // A host /etc over /etc, or a mount of `/` (everything would lie below it).
        return None;
    }
    // Below a real mount (a bind of a host directory under /etc), things stay what they are.
    let real_in_etc: Vec<&Utf8Path> = real.into_iter().filter(|d| below_etc(d)).collect();
    let under_mount =
        |p: &Utf8Path| real_in_etc.iter().any(|d| crate::host::plan::within(p.as_str(), d.as_str()) && p != *d);
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut placed = BTreeSet::new();
    for m in mounts.iter().filter(|m| below_etc(m.dst()) && !under_mount(m.dst())) {
        let rel = m.dst().strip_prefix(ETC).ok()?.to_owned();
        let entry = match m {
            Mount::Data { index, .. } => Entry::File(*index),
            Mount::Symlink { target, .. } => Entry::Link(target.clone()),
            Mount::RoBind { src, .. } | Mount::Bind { src, .. } if !src.is_dir() => Entry::MountPoint,
            Mount::InitSpec { .. } => Entry::MountPoint,
            // A directory of its own, or the mount point of a directory.
            _ => Entry::Dir,
        };
        if !is_mount(m) {
            placed.insert(m.dst().to_string());
        }
        for parent in rel.ancestors().skip(1).filter(|a| !a.as_str().is_empty()) {
            match entries.get(parent.as_str()) {
                None => {
                    entries.insert(parent.to_string(), Entry::Dir);
                }
                Some(Entry::Dir) => {}
                // Something below a file or a link: not a tree (the plan would fail anyway).
                Some(_) => return None,
            }
        }
        match entries.get(rel.as_str()) {
            None => {
                entries.insert(rel.into_string(), entry);
            }
            Some(Entry::Dir) if entry == Entry::Dir => {}
            Some(_) => return None,
        }
    }
    if placed.is_empty() {
        return None;
    }
    let mut digest = sha2::Sha256::new();
    digest.update(b"cell /etc tree 1\0");
    for (rel, e) in &entries {
        let (kind, payload): (&[u8], &[u8]) = match e {
            Entry::Dir => (b"d", b""),
            Entry::File(i) => (b"f", files.get(*i)?.contents.as_bytes()),
            Entry::MountPoint => (b"m", b""),
            Entry::Link(t) => (b"l", t.as_str().as_bytes()),
        };
        for part in [kind, rel.as_bytes(), payload] {
            digest.update(u64::try_from(part.len()).ok()?.to_le_bytes());
            digest.update(part);
        }
    }
    let hex: String = digest.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(EtcTree { dir: base.join(hex), entries, placed })
}

impl EtcTree {
    /// Whether the directory holds `m` (bubblewrap is not asked to make it).
    #[must_use]
    pub fn holds(&self, m: &Mount) -> bool {
        !is_mount(m) && self.placed.contains(m.dst().as_str())
    }

    /// Whether the directory holds generated file `index` (it needs no descriptor).
    #[must_use]
    pub fn holds_file(&self, index: usize) -> bool {
        self.entries.values().any(|e| *e == Entry::File(index))
    }

    /// Makes the directory unless it is there: written under a temporary name in its
    /// (private) parent, then renamed into place.
    ///
    /// # Errors
    /// When the runtime base is not private or the directory cannot be written.
    pub fn materialise(&self, files: &[DataFile]) -> anyhow::Result<()> {
        let parent = self.dir.parent().context("no parent")?;
        // The base too is a real private directory: through a link to a directory a cell
        // wrote (planted by another user in /tmp), a planted tree would be trusted.
        let base_private = parent.parent().is_none_or(crate::sys::is_private_dir);
        if base_private
            && std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir())
            && crate::sys::is_private_dir(parent)
        {
            return Ok(());
        }
        if let Some(base) = parent.parent() {
            if let Some(top) = base.parent() {
                std::fs::create_dir_all(top).with_context(|| format!("cannot create {top}"))?;
            }
            crate::sys::private_dir(base, false)?;
        }
        crate::sys::private_dir(parent, false)?;
        let nanos = crate::sys::since_epoch().as_nanos();
        let tmp = parent.join(format!(".new-{}-{nanos}", std::process::id()));
        let made = self.write(&tmp, files).with_context(|| format!("cannot write the cell's /etc in {tmp}"));
        let placed = made.and_then(|()| match std::fs::rename(&tmp, &self.dir) {
            Ok(()) => Ok(()),
            // Another launch put the same directory there meanwhile.
            Err(_) if std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir()) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot move the cell's /etc to {}", self.dir)),
        });
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        placed
    }

    fn write(&self, root: &Utf8Path, files: &[DataFile]) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o755).create(root)?;
        // A BTreeMap iterates parents before what lies below them.
        for (rel, e) in &self.entries {
            let p = root.join(rel);
            match e {
                Entry::Dir => std::fs::DirBuilder::new().mode(0o755).create(&p)?,
                Entry::File(i) => read_only_file(&p, files.get(*i).context("no such file")?.contents.as_bytes())?,
                Entry::MountPoint => read_only_file(&p, b"")?,
                Entry::Link(target) => std::os::unix::fs::symlink(target, &p)?,
            }
        }
        Ok(())
    }
}

/// A new file `p` holding `contents`, mode 0444.
fn read_only_file(p: &Utf8Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o444).open(p)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dst: &str, contents: &str) -> DataFile {
        DataFile { dst: dst.into(), contents: contents.into() }
    }

    fn mounts(certs: &Utf8Path) -> Vec<Mount> {
        vec![
            Mount::RoBind { src: "/usr".into(), dst: "/usr".into() },
            Mount::Dir { dst: "/etc/profile.d".into() },
            Mount::Data { index: 0, dst: "/etc/passwd".into() },
            Mount::Data { index: 1, dst: "/etc/ld.so.conf.d/libc.conf".into() },
            Mount::Symlink { target: "/usr/share/zoneinfo/UTC".into(), dst: "/etc/localtime".into() },
            Mount::RoBind { src: certs.to_owned(), dst: "/etc/ssl/certs".into() },
            Mount::Data { index: 2, dst: "/etc/ssl/certs/extra.pem".into() },
        ]
    }

    /// The generated files [`mounts`] names by index.
    fn data_files() -> Vec<DataFile> {
        vec![
            file("/etc/passwd", "u:x:1:1::/h:/bin/sh\n"),
            file("/etc/ld.so.conf.d/libc.conf", "/l\n"),
            file("/etc/ssl/certs/extra.pem", "pem"),
        ]
    }

    #[test]
    fn the_etc_of_a_plan_is_one_directory_named_by_what_it_holds() {
        let certs = tempfile::tempdir().unwrap();
        let certs = Utf8Path::from_path(certs.path()).unwrap();
        let files = data_files();
        let base = Utf8Path::new("/run/user/1/cell/etc");
        let m = mounts(certs);
        let tree = plan(&m, &files, base).unwrap();
        assert!(tree.dir.starts_with(base));
        // On bubblewrap's root: held. Real mounts, and what lies in them: left to bubblewrap.
        for (i, held) in [(1, true), (2, true), (3, true), (4, true), (0, false), (5, false), (6, false)] {
            assert_eq!(tree.holds(&m[i]), held, "{:?}", m[i]);
        }
        assert!(tree.holds_file(0) && tree.holds_file(1) && !tree.holds_file(2));
        // The same /etc is the same directory; any change of content is another one.
        assert_eq!(plan(&m, &files, base).unwrap().dir, tree.dir);
        let mut other = files.clone();
        other[0].contents.push('x');
        assert_ne!(plan(&m, &other, base).unwrap().dir, tree.dir);
        // A host /etc bound over /etc: nothing of the cell's own.
        let mut host_etc = m.clone();
        host_etc.insert(1, Mount::RoBind { src: "/etc".into(), dst: "/etc".into() });
        assert!(plan(&host_etc, &files, base).is_none());
    }

    #[test]
    fn the_directory_is_written_once_with_its_mount_points() {
        use std::os::unix::fs::PermissionsExt as _;
        let certs = tempfile::tempdir().unwrap();
        let certs = Utf8Path::from_path(certs.path()).unwrap();
        let run = tempfile::tempdir().unwrap();
        let base = Utf8Path::from_path(run.path()).unwrap().join("cell/etc");
        let files = data_files();
        let mut m = mounts(certs);
        m.push(Mount::RoBind { src: "/etc/ld.so.cache".into(), dst: "/etc/ld.so.cache".into() });
        let tree = plan(&m, &files, &base).unwrap();
        tree.materialise(&files).unwrap();
        let d = &tree.dir;
        assert_eq!(std::fs::read_to_string(d.join("passwd")).unwrap(), files[0].contents);
        assert_eq!(std::fs::metadata(d.join("passwd")).unwrap().permissions().mode() & 0o777, 0o444);
        assert_eq!(std::fs::read_to_string(d.join("ld.so.conf.d/libc.conf")).unwrap(), "/l\n");
        assert!(d.join("profile.d").is_dir() && d.join("ssl/certs").is_dir());
        assert_eq!(std::fs::read_link(d.join("localtime")).unwrap(), Utf8Path::new("/usr/share/zoneinfo/UTC"));
        let point = std::fs::symlink_metadata(d.join("ld.so.cache")).unwrap();
        assert!(point.is_file() && point.len() == 0, "a file's mount point is an empty file");
        assert!(!d.join("ssl/certs/extra.pem").exists(), "what lies in a bind is not the directory's");
        assert!(crate::sys::is_private_dir(&base) && crate::sys::is_private_dir(base.parent().unwrap()));
        // There already: not written again.
        std::fs::remove_file(d.join("hostname")).ok();
        std::fs::set_permissions(d.join("profile.d"), std::fs::Permissions::from_mode(0o700)).unwrap();
        tree.materialise(&files).unwrap();
        assert_eq!(std::fs::metadata(d.join("profile.d")).unwrap().permissions().mode() & 0o777, 0o700);
        let names: Vec<String> =
            std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 1, "no temporary directory left: {names:?}");
    }

    #[test]
    fn a_tree_found_through_a_linked_base_is_not_trusted() {
        let run = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(run.path()).unwrap();
        let files = data_files();
        let certs = tempfile::tempdir().unwrap();
        let m = mounts(Utf8Path::from_path(certs.path()).unwrap());
        // A real base with the tree in place (as a cell could have written it elsewhere).
        let real = root.join("real");
        let tree = plan(&m, &files, &real.join("etc")).unwrap();
        tree.materialise(&files).unwrap();
        std::fs::write(tree.dir.join("profile"), "planted").unwrap();
        // The same tree reached through a base that is a link to it: refused, not used.
        let link = root.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let through = plan(&m, &files, &link.join("etc")).unwrap();
        let e = through.materialise(&files).unwrap_err().to_string();
        assert!(e.contains("must be a directory owned by you"), "{e}");
    }
}
