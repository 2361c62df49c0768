//! The `.git` entries that host git enters on its own inside a worktree: the gitlinks of
//! the repository the worktree lies in (its submodules, and theirs where they are checked
//! out) and the linked worktrees registered in it. Host `git status` at the top recurses
//! into every gitlink of the index, whether `.gitmodules` names it or not, and you work in a
//! linked worktree as in the repository itself: a cell must not be able to point one of
//! them at a repository of its own while it runs.
//!
//! Listing an index takes host git (`ls-files --stage -z`: a process, a millisecond or
//! two), so each list is kept in the cell's host state with the identity of the index it
//! came from (device, inode, size, modification and change times to the nanosecond) and
//! listed again only when that index changed. Only git writes the host's index; the cell
//! never sees it writable, nor the state.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// How deep submodules of submodules are followed.
pub const MAX_DEPTH: usize = 8;

/// How many gitlinks a launch holds at most (each is a mount, and bubblewrap takes 9000
/// arguments): a repository with more is refused, never held in part.
pub const MAX_GITLINKS: usize = 512;

/// The kept lists, in the cell's state directory.
const KEPT: &str = "gitlinks.json";

/// How many indexes' lists are kept (a cell started in several repositories in turn lists
/// each once); beyond that the longest listed go.
const KEPT_MAX: usize = 64;

/// Which index a list was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Utf8Path) -> Option<Self> {
        let m = std::fs::symlink_metadata(path).ok().filter(std::fs::Metadata::is_file)?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// One index's gitlinks (paths relative to its worktree), as listed from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Listed {
    stamp: Stamp,
    gitlinks: Vec<String>,
    /// When it was listed (seconds since the epoch).
    #[serde(default)]
    when: u64,
}

/// The lists kept and the ones this plan used (only those are kept again).
struct Lists {
    kept: BTreeMap<String, Listed>,
    used: BTreeMap<String, Listed>,
    /// The git directories walked (each once).
    walked: std::collections::HashSet<Utf8PathBuf>,
}

/// The `.git` entries host git enters on its own in `worktree` ([`self`]), relative to it:
/// submodules' (also ones not checked out), and linked worktrees' that exist. `state` keeps
/// the lists ([`KEPT`]) when `keep` (not where the cell could write it). Without `git` no
/// index is listed (the linked worktrees are still found).
///
/// # Errors
/// When host git cannot list an index, or a gitlink's path is not UTF-8: a launch that
/// cannot hold what git would enter does not start.
pub fn entries(
    worktree: &Utf8Path,
    git: Option<&Utf8Path>,
    state: &Utf8Path,
    keep: bool,
) -> Result<Vec<String>, String> {
    let Some(top) = worktree.ancestors().find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok()) else {
        return Ok(Vec::new());
    };
    // A `.git` that is a link or names no git directory is refused where it matters (the
    // worktree's own, by the repository view); above the worktree git would not use it.
    let Some(dirs) = crate::host::gitview::host_git_dirs(top).ok().flatten() else { return Ok(Vec::new()) };
    // Paths relative to the top, as host git sees them from there.
    let linked = linked_worktrees(&dirs.common_dir, top);
    let mut found: Vec<String> = linked.iter().map(|(rel, _)| format!("{rel}/.git")).collect();
    if let Some(git) = git {
        let kept = if keep { load(state) } else { BTreeMap::new() };
        let mut lists = Lists { kept, used: BTreeMap::new(), walked: std::collections::HashSet::new() };
        let common = crate::sys::canonical_utf8(&dirs.common_dir).ok();
        let walk = Walk { top, git, common: common.as_deref() };
        walk.gitlinks(&dirs.git_dir, "", &mut lists, &mut found)?;
        // A linked worktree's index is its own: host git run there enters its gitlinks.
        for (rel, git_dir) in &linked {
            walk.gitlinks(git_dir, &format!("{rel}/"), &mut lists, &mut found)?;
        }
        if keep && lists.used.iter().any(|(k, l)| lists.kept.get(k).is_none_or(|old| old.stamp != l.stamp)) {
            let mut all = lists.kept;
            all.extend(lists.used);
            while all.len() > KEPT_MAX {
                let Some(oldest) = all.iter().min_by_key(|(_, l)| l.when).map(|(k, _)| k.clone()) else { break };
                all.remove(&oldest);
            }
            store(state, &all);
        }
    }
    let prefix = worktree.strip_prefix(top).map(Utf8Path::as_str).unwrap_or_default();
    let mut out: Vec<String> = found
        .iter()
        .filter_map(|rel| if prefix.is_empty() { Some(rel.as_str()) } else { rel.strip_prefix(&format!("{prefix}/")) })
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The repository at `top` and where its submodules' git directories may lie.
struct Walk<'a> {
    top: &'a Utf8Path,
    git: &'a Utf8Path,
    /// The host's git directory: a submodule's own lies in it (`modules/`, or a linked
    /// worktree's `worktrees/NAME/modules/`).
    common: Option<&'a Utf8Path>,
}

impl Walk<'_> {
    /// The gitlinks of the index of `git_dir`, whose worktree is `prefix` in the top
    /// (`""`, or `sub/`), each as `PATH/.git` relative to the top; then those of each
    /// checked out whose git directory lies in the host's (or is its `.git`), and of the
    /// worktrees registered in that git directory. Each git directory once.
    fn gitlinks(
        &self,
        git_dir: &Utf8Path,
        prefix: &str,
        lists: &mut Lists,
        out: &mut Vec<String>,
    ) -> Result<(), String> {
        if prefix.matches('/').count() > MAX_DEPTH
            || !lists.walked.insert(crate::sys::canonical_utf8(git_dir).unwrap_or_else(|_| git_dir.to_owned()))
        {
            return Ok(());
        }
        let index = git_dir.join("index");
        let Some(stamp) = Stamp::of(&index) else { return Ok(()) };
        let key = index.to_string();
        let listed = match lists.kept.get(&key).filter(|l| l.stamp == stamp) {
            Some(l) => l.clone(),
            None => Listed { stamp, gitlinks: list(self.git, git_dir)?, when: crate::sys::since_epoch().as_secs() },
        };
        let gitlinks = listed.gitlinks.clone();
        lists.used.insert(key, listed);
        for path in gitlinks {
            let rel = format!("{prefix}{path}");
            out.push(format!("{rel}/.git"));
            if out.len() > MAX_GITLINKS {
                return Err(format!(
                    "the repository has more than {MAX_GITLINKS} submodules and linked worktrees (with theirs), more than a launch holds"
                ));
            }
            if let Some(inner) = self.checked_out(&rel) {
                self.gitlinks(&inner, &format!("{rel}/"), lists, out)?;
                // Worktrees of the submodule's own, registered in its git directory.
                for (wt, wt_git) in linked_worktrees(&inner, self.top) {
                    out.push(format!("{wt}/.git"));
                    self.gitlinks(&wt_git, &format!("{wt}/"), lists, out)?;
                }
            }
        }
        Ok(())
    }

    /// The git directory of the submodule checked out at `rel`, where it lies in the
    /// host's git directory (or is the submodule's own `.git` directory).
    fn checked_out(&self, rel: &str) -> Option<Utf8PathBuf> {
        let dot = self.top.join(rel).join(".git");
        let m = std::fs::symlink_metadata(&dot).ok()?;
        if m.is_dir() {
            return Some(dot);
        }
        if !m.is_file() {
            return None;
        }
        let text = crate::sys::read_no_follow(&dot).ok()?;
        let target =
            Utf8PathBuf::from(std::str::from_utf8(crate::host::gitview::gitfile_target(text.as_bytes())?).ok()?);
        let target = if target.is_absolute() { target } else { self.top.join(rel).join(target) };
        crate::sys::canonical_utf8(&target).ok().filter(|t| self.common.is_some_and(|c| t.starts_with(c) && t != c))
    }
}

/// The gitlinks of `git_dir`'s index, listed by host git.
fn list(git: &Utf8Path, git_dir: &Utf8Path) -> Result<Vec<String>, String> {
    let listed = Command::new(git)
        .args(crate::host::gitview::SAFE_GIT)
        .args(["--git-dir", git_dir.as_str(), "ls-files", "--stage", "-z"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {git} to list the submodules of {git_dir}: {e}"))?;
    if !listed.status.success() {
        return Err(format!(
            "{git} cannot list the index of {git_dir} ({}), so its submodules cannot be held",
            crate::sys::escape_controls(String::from_utf8_lossy(&listed.stderr).trim())
        ));
    }
    let mut out = Vec::new();
    for entry in listed.stdout.split(|b| *b == 0) {
        let Some(rest) = entry.strip_prefix(b"160000 ") else { continue };
        let Some(tab) = rest.iter().position(|b| *b == b'\t') else { continue };
        let path = std::str::from_utf8(&rest[tab + 1..]).map_err(|_| {
            format!(
                "a submodule of {git_dir} lies at a path that is not UTF-8 ({}), which cell cannot hold",
                crate::sys::escape_controls(&String::from_utf8_lossy(&rest[tab + 1..]))
            )
        })?;
        // Git refuses such paths in an index; nothing of one is followed.
        if !path.split('/').any(|c| c.is_empty() || c == ".." || c == ".") {
            out.push(path.to_owned());
        }
    }
    Ok(out)
}

/// The linked worktrees registered in `common` that lie below `top`, with a `.git` file:
/// their directories relative to `top`, and their git directories
/// (`common/worktrees/NAME`, whose `gitdir` names the `.git` file).
fn linked_worktrees(common: &Utf8Path, top: &Utf8Path) -> Vec<(String, Utf8PathBuf)> {
    let Ok(entries) = common.join("worktrees").read_dir_utf8() else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(text) = crate::sys::read_no_follow(&e.path().join("gitdir")) else { continue };
        let dot = Utf8PathBuf::from(text.trim_end_matches(['\n', '\r']));
        let Some(real) = dot.parent().and_then(|d| crate::sys::canonical_utf8(d).ok()) else { continue };
        let Ok(rel) = real.strip_prefix(top) else { continue };
        if !rel.as_str().is_empty() && std::fs::symlink_metadata(real.join(".git")).is_ok_and(|m| m.is_file()) {
            out.push((rel.to_string(), e.path().to_owned()));
        }
    }
    out.sort();
    out
}

fn load(state: &Utf8Path) -> BTreeMap<String, Listed> {
    std::fs::read(state.join(KEPT)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Written whole under another name, then renamed over: a reader sees one or the other.
fn store(state: &Utf8Path, lists: &BTreeMap<String, Listed>) {
    let Ok(text) = serde_json::to_vec(lists) else { return };
    let file = state.join(KEPT);
    let tmp = Utf8PathBuf::from(format!("{file}.{}", std::process::id()));
    if std::fs::create_dir_all(state).is_err()
        || std::fs::write(&tmp, text).is_err()
        || std::fs::rename(&tmp, &file).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Utf8Path, args: &[&str]) {
        let o = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@x", "-c", "protocol.file.allow=always"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// Every gitlink of the index counts, with `.gitmodules` or without; a worktree below
    /// the top gets those below it; the kept list follows the index.
    #[test]
    fn every_gitlink_of_the_index_counts_and_the_kept_list_follows_it() {
        let (_t, d) = crate::sys::temp_dir();
        let lib = d.join("lib");
        let top = d.join("top");
        let state = d.join("state");
        for r in [&lib, &top] {
            std::fs::create_dir_all(r).unwrap();
            git(r, &["init", "-q", "-b", "main"]);
            git(r, &["commit", "-q", "--allow-empty", "-m", "one"]);
        }
        std::fs::create_dir_all(top.join("app")).unwrap();
        git(&top, &["submodule", "add", "-q", lib.as_str(), "app/lib"]);
        git(&top, &["commit", "-qm", "sub"]);
        let git_bin = Utf8PathBuf::from("/usr/bin/git");
        let real = crate::sys::canonical_utf8(&top).unwrap();
        assert_eq!(entries(&real, Some(&git_bin), &state, true).unwrap(), ["app/lib/.git"]);
        assert!(state.join(KEPT).is_file());
        assert_eq!(entries(&real.join("app"), Some(&git_bin), &state, true).unwrap(), ["lib/.git"]);
        std::fs::remove_file(top.join(".gitmodules")).unwrap();
        git(&top, &["commit", "-qam", "no gitmodules"]);
        assert_eq!(entries(&real, Some(&git_bin), &state, true).unwrap(), ["app/lib/.git"]);
        // The kept list is the index's: a forged one for another index stamp is not used.
        git(&top, &["rm", "-q", "--cached", "app/lib"]);
        git(&top, &["commit", "-qm", "gone"]);
        assert!(entries(&real, Some(&git_bin), &state, true).unwrap().is_empty());
        // Lists of several indexes are kept side by side: taking turns lists neither again.
        let other = d.join("other");
        std::fs::create_dir_all(&other).unwrap();
        git(&other, &["init", "-q", "-b", "main"]);
        std::fs::write(other.join("f"), "x").unwrap();
        git(&other, &["add", "f"]);
        let other = crate::sys::canonical_utf8(&other).unwrap();
        assert!(entries(&other, Some(&git_bin), &state, true).unwrap().is_empty());
        let kept = load(&state);
        for index in [real.join(".git/index"), other.join(".git/index")] {
            assert!(kept.contains_key(index.as_str()), "{index} is not kept: {:?}", kept.keys());
        }
        // A submodule's own linked worktree inside, and a submodule of a linked worktree's.
        git(&top, &["submodule", "add", "-q", lib.as_str(), "lib2"]);
        git(&top, &["commit", "-qm", "lib2"]);
        git(&top.join("lib2"), &["worktree", "add", "-q", "../libwt", "-b", "side"]);
        let e = entries(&real, Some(&git_bin), &state, true).unwrap();
        assert!(e.contains(&"libwt/.git".to_owned()) && e.contains(&"lib2/.git".to_owned()), "{e:?}");
        // Linked worktrees inside, by their registration.
        git(&top, &["worktree", "add", "-q", "wt/feat", "-b", "feat"]);
        let e = entries(&real, Some(&git_bin), &state, true).unwrap();
        assert!(e.contains(&"wt/feat/.git".to_owned()) && e.contains(&"wt/feat/lib2/.git".to_owned()), "{e:?}");
        git(&top.join("wt/feat"), &["submodule", "update", "-q", "--init"]);
        let inner = crate::sys::canonical_utf8(&top.join("wt/feat/lib2")).unwrap();
        git(&inner, &["submodule", "add", "-q", lib.as_str(), "deep"]);
        let e = entries(&real, Some(&git_bin), &state, true).unwrap();
        assert!(e.contains(&"wt/feat/lib2/deep/.git".to_owned()), "a linked worktree's submodule's own: {e:?}");
        assert_eq!(entries(&real, None, &state, false).unwrap(), ["wt/feat/.git"]);
        // More gitlinks than a launch holds: refused.
        let many: String = (0..=MAX_GITLINKS)
            .map(|i| format!("160000 1111111111111111111111111111111111111111 0\tm/d{i}\n"))
            .collect();
        let o = Command::new("git")
            .args(["update-index", "--index-info"])
            .current_dir(&top)
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(many.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(o.success());
        assert!(entries(&real, Some(&git_bin), &state, true).unwrap_err().contains("more than"));
    }
}
