//! The cell's home on the host: seeded from `/etc/skel` when it is created, the mount points
//! a launch leaves in it removed when the launch ends, its size (`cell du`) and its removal
//! (`cell reset`). Nothing here follows a link out of the home.

use std::io::Write as _;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::host::plan::{Mount, Plan};

/// Where new homes are seeded from.
pub const SKEL: &str = "/etc/skel";

/// Copies the regular files and directories of `skel` into the new home `home` (links and
/// anything else are skipped, never followed). Best effort: returns what could not be copied.
#[must_use]
pub fn seed(skel: &Utf8Path, home: &Utf8Path) -> Vec<String> {
    let mut failed = Vec::new();
    copy_tree(skel, home, &mut failed, 0);
    failed
}

fn copy_tree(from: &Utf8Path, to: &Utf8Path, failed: &mut Vec<String>, depth: usize) {
    let Ok(entries) = from.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let (src, dst) = (e.path().to_owned(), to.join(e.file_name()));
        let Ok(meta) = std::fs::symlink_metadata(&src) else { continue };
        if meta.is_dir() && depth < 16 {
            use std::os::unix::fs::DirBuilderExt as _;
            match std::fs::DirBuilder::new().mode(meta.mode() & 0o755).create(&dst) {
                Ok(()) => copy_tree(&src, &dst, failed, depth + 1),
                Err(e) => failed.push(format!("{dst}: {e}")),
            }
        } else if meta.is_file() {
            if let Err(e) = copy_file(&src, &dst, meta.mode() & 0o755) {
                failed.push(format!("{dst}: {e:#}"));
            }
        }
    }
}

fn copy_file(src: &Utf8Path, dst: &Utf8Path, mode: u32) -> anyhow::Result<()> {
    let mut input = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(src)?;
    if !input.metadata()?.is_file() {
        anyhow::bail!("not a regular file");
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dst)?;
    std::io::copy(&mut input, &mut out)?;
    out.flush()?;
    Ok(())
}

/// The directories bubblewrap will create in the cell home as mount points (a worktree or
/// bind below the home's path inside), which do not exist yet: removed when the launch ends
/// while they are still empty. Taken before the launch; relative to the home, parents first.
#[derive(Debug, Default)]
pub struct MountPoints {
    home: Utf8PathBuf,
    created: Vec<Utf8PathBuf>,
}

impl MountPoints {
    /// The mount points of `plan` missing from its home now.
    #[must_use]
    pub fn before(plan: &Plan) -> Self {
        let inside = plan.user.home.as_str();
        let mut created: Vec<Utf8PathBuf> = Vec::new();
        for m in &plan.mounts {
            let dst = m.dst().as_str();
            if dst == inside || !crate::host::plan::within(dst, inside) {
                continue;
            }
            // Only where the home is the mount bubblewrap creates the point in.
            let parent = plan
                .mounts
                .iter()
                .filter(|p| p.dst().as_str() != dst && crate::host::plan::within(dst, p.dst().as_str()))
                .max_by_key(|p| p.dst().as_str().len());
            if !matches!(parent, Some(Mount::Bind { src, dst: d }) if d.as_str() == inside && *src == plan.home) {
                continue;
            }
            let Ok(rel) = Utf8Path::new(dst).strip_prefix(inside) else { continue };
            let mut at = Utf8PathBuf::new();
            for c in rel.components() {
                at.push(c);
                if std::fs::symlink_metadata(plan.home.join(&at)).is_err() && !created.contains(&at) {
                    created.push(at.clone());
                }
            }
        }
        Self { home: plan.home.clone(), created }
    }

    /// Whether the launch makes no mount point in the home.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
    }

    /// Removes every recorded directory that is still an empty directory, deepest first.
    /// Each is reached from the home one component at a time without following links, so
    /// a link the cell put in place of a parent leads nowhere. With `aside` (a directory of
    /// the same file system whose [`crate::host::gitview::DISCARDED`] entries a later launch
    /// removes), an empty
    /// directory is renamed there instead: gone from the home just the same, but a rename
    /// frees no block, and on a disk that discards freed blocks a removal waits for the
    /// disk (0.2–0.4 ms each where this was measured) on the way out of every launch.
    pub fn remove(&self, aside: Option<&Utf8Path>) {
        let Ok(home) = open_dir_at(None, self.home.as_str()) else { return };
        let aside = aside.and_then(|a| open_dir_at(None, a.as_str()).ok());
        let stamp = format!("{}-{}", std::process::id(), crate::sys::since_epoch().as_nanos());
        let mut paths = self.created.clone();
        paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for (n, rel) in paths.into_iter().enumerate() {
            let Some(name) = rel.file_name() else { continue };
            let mut dir = None::<OwnedFd>;
            let mut reached = true;
            for c in rel.parent().into_iter().flat_map(Utf8Path::components) {
                let next = match &dir {
                    None => open_dir_at(Some(&home), c.as_str()),
                    Some(d) => open_dir_at(Some(d), c.as_str()),
                };
                if let Ok(fd) = next {
                    dir = Some(fd);
                } else {
                    reached = false;
                    break;
                }
            }
            if reached {
                let parent = dir.as_ref().unwrap_or(&home);
                if let Some(to) = &aside {
                    // Only an empty real directory (opened without following a link) moves.
                    let empty = open_dir_at(Some(parent), name).is_ok_and(|d| {
                        std::fs::read_dir(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&d)))
                            .is_ok_and(|mut e| e.next().is_none())
                    });
                    let moved = empty
                        && nix::fcntl::renameat(
                            parent.as_fd(),
                            name,
                            to.as_fd(),
                            format!("{}home-{stamp}-{n}", crate::host::gitview::DISCARDED).as_str(),
                        )
                        .is_ok();
                    if moved || !empty {
                        continue;
                    }
                }
                // unlinkat with AT_REMOVEDIR removes only an empty directory (never a link).
                let _ = nix::unistd::unlinkat(parent.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir);
            }
        }
    }
}

fn open_dir_at(dir: Option<&OwnedFd>, name: &str) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match dir {
        Some(d) => nix::fcntl::openat(d.as_fd(), name, flags, Mode::empty()),
        None => nix::fcntl::open(name, flags, Mode::empty()),
    }
}

/// Bytes a directory tree uses on disk (allocated blocks, like `du`), links not followed,
/// other file systems not entered.
#[must_use]
pub fn disk_use(dir: &Utf8Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else { return 0 };
    if !top.is_dir() {
        return top.blocks() * 512;
    }
    let mut total = top.blocks() * 512;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = d.read_dir_utf8() else { continue };
        for e in entries.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
            total += m.blocks() * 512;
            if m.is_dir() && m.dev() == top.dev() {
                stack.push(e.path().to_owned());
            }
        }
    }
    total
}

/// A size for people: `426 MB`, `12 kB`, `0 B` (powers of 1000, one decimal below 10).
#[must_use]
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    // Tenths of the unit, in integers.
    let (mut whole, mut unit) = (bytes, 0);
    let mut tenths = 0;
    while whole >= 1000 && unit < UNITS.len() - 1 {
        tenths = whole % 1000 / 100;
        whole /= 1000;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if whole < 10 {
        format!("{whole}.{tenths} {}", UNITS[unit])
    } else {
        format!("{whole} {}", UNITS[unit])
    }
}

/// Deletes a cell home: the directory itself must not be a link; nothing below it is
/// followed (entries that are links are removed as links).
///
/// # Errors
/// When it is not a directory or cannot be removed.
pub fn remove_home(home: &Utf8Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(home).with_context(|| format!("cannot read {home}"))?;
    if !meta.is_dir() {
        anyhow::bail!("{home} is not a directory (a link is never followed); remove it by hand");
    }
    // std's remove_dir_all opens each directory relative to its parent without following
    // links (since Rust 1.58.1), so a link is removed, never what it points at.
    std::fs::remove_dir_all(home).with_context(|| format!("cannot remove {home}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_du_h() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1500), "1.5 kB");
        assert_eq!(human(426_000_000), "426 MB");
    }

    use crate::sys::temp_dir as tmp;

    #[test]
    fn seeding_copies_files_and_directories_never_links() {
        let (_d, root) = tmp();
        let (skel, home) = (root.join("skel"), root.join("home"));
        std::fs::create_dir_all(skel.join("sub")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(skel.join(".bashrc"), "rc").unwrap();
        std::fs::write(skel.join("sub/f"), "f").unwrap();
        std::fs::write(root.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), skel.join("link")).unwrap();
        std::os::unix::fs::symlink(&root, skel.join("dirlink")).unwrap();
        assert!(seed(&skel, &home).is_empty());
        assert_eq!(std::fs::read_to_string(home.join(".bashrc")).unwrap(), "rc");
        assert_eq!(std::fs::read_to_string(home.join("sub/f")).unwrap(), "f");
        assert!(std::fs::symlink_metadata(home.join("link")).is_err());
        assert!(std::fs::symlink_metadata(home.join("dirlink")).is_err());
    }

    #[test]
    fn mount_points_are_removed_only_when_empty_and_never_through_links() {
        let (_d, root) = tmp();
        let home = root.join("home");
        std::fs::create_dir_all(home.join("a/b")).unwrap();
        std::fs::create_dir_all(home.join("full")).unwrap();
        std::fs::write(home.join("full/x"), "x").unwrap();
        // The cell replaced `l` (recorded) with a link to a directory outside.
        std::fs::create_dir_all(root.join("outside/c")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), home.join("l")).unwrap();
        let points = MountPoints {
            home: home.clone(),
            created: ["a", "a/b", "full", "l", "l/c"].iter().map(Utf8PathBuf::from).collect(),
        };
        points.remove(None);
        assert!(std::fs::symlink_metadata(home.join("a")).is_err());
        assert!(home.join("full/x").exists());
        assert!(root.join("outside/c").is_dir(), "followed a link out of the home");
        assert!(std::fs::symlink_metadata(home.join("l")).is_ok());
        // Set aside instead: the same ones leave the home, into the given directory.
        std::fs::create_dir_all(home.join("a/b")).unwrap();
        let aside = root.join("aside");
        std::fs::create_dir_all(&aside).unwrap();
        points.remove(Some(&aside));
        assert!(std::fs::symlink_metadata(home.join("a")).is_err());
        assert!(home.join("full/x").exists(), "a directory with something in it stays");
        assert!(root.join("outside/c").is_dir(), "followed a link out of the home");
        assert!(std::fs::symlink_metadata(home.join("l")).is_ok());
        let mut moved: Vec<String> =
            std::fs::read_dir(&aside).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        moved.sort();
        // a/b first (deepest), then a, empty by then.
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert!(moved.iter().all(|m| m.starts_with("discarded-home-")), "{moved:?}");
    }
}
