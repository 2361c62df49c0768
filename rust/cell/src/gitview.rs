//! The repository as a cell sees it: a private git directory of the launch's own.
//!
//! The cell never writes the host's git directory. At launch the launcher seeds a fresh
//! directory in the cell's host state (`HEAD`, the index, refs, `info/`, a generated
//! `config` with only the repository format, the extensions and the host user's identity)
//! whose `objects/info/alternates` names the host's object store, bound read-only inside.
//! That directory is bound over the worktree's `.git`, so git inside works normally and
//! every write (objects, refs, index, config, hooks) lands in the cell's own copy. The host
//! repository, its config and its hooks are out of the cell's reach, and no placeholder
//! or bind on a host path inside `.git` exists for a host-side rename to lift.
//!
//! When the cell ends (and on `cell git sync`) the branches the cell changed are brought
//! over as `cell/<cell>/<branch>`, by host git reading only the host's own configuration:
//! the cell's object store is an alternate for `rev-list` and `pack-objects`, the pack is
//! verified by `index-pack --strict` into the host's store, and a branch is created only if
//! everything it reaches is then in the host's store. Nothing in the cell's directory is
//! executed or read as configuration on the host.
//!
//! Where mounts cannot hold a path, the launch contains instead: a `.git` below the top of
//! the worktree (or at the top, in a worktree that had none) that was created or changed
//! during the run, and protected paths the cell created, are renamed aside when the cell
//! ends (`NAME.cell-quarantined-PID`) and reported.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// Where the private git directory appears inside when the worktree's `.git` is a file.
pub const PRIVATE_INSIDE: &str = "/run/cell/git";
/// Where the host's object stores appear inside (read-only).
pub const HOST_OBJECTS_INSIDE: &str = "/run/cell/git-host";

/// The repository view of one launch, as planned.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitView {
    /// The worktree.
    pub worktree: Utf8PathBuf,
    /// The host's git directory of the worktree (`.git`, or where a `.git` file points).
    pub host_git_dir: Utf8PathBuf,
    /// Its common directory (objects and refs; the same unless a linked worktree).
    pub host_common_dir: Utf8PathBuf,
    /// Whether the worktree's `.git` is a file (a linked worktree or a submodule).
    pub gitfile: bool,
    /// The private git directory of this launch (host path), bound read-write inside.
    pub private: Utf8PathBuf,
    /// The launch's record beside it (host only: the seed refs the sync compares with).
    pub record: Utf8PathBuf,
    /// Submodule git directories under `modules/` (relative names), seeded likewise.
    pub modules: Vec<String>,
    /// Host git, for the sync (never from a place the cell can write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<Utf8PathBuf>,
    /// The host user's home and XDG config directory (their git identity).
    #[serde(skip)]
    pub identity_dirs: (Utf8PathBuf, Utf8PathBuf),
}

/// Plans the view for `worktree`; `state` is the cell's host state directory.
///
/// # Errors
/// When `.git` is a link or a `.git` file that does not name a git directory.
pub fn plan(
    worktree: &Utf8Path,
    state: &Utf8Path,
    git: Option<Utf8PathBuf>,
    host: &crate::hostenv::HostEnv,
) -> Result<Option<GitView>, String> {
    let dot = worktree.join(".git");
    let Ok(meta) = std::fs::symlink_metadata(&dot) else { return Ok(None) };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{dot} is a symbolic link, which the cell could swap; replace it with the git directory it points to"
        ));
    }
    let (host_git_dir, gitfile) = if meta.is_dir() {
        (dot.clone(), false)
    } else {
        let text = std::fs::read_to_string(&dot).map_err(|e| format!("{dot}: {e}"))?;
        let target = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("gitdir: "))
            .ok_or_else(|| format!("{dot} is a file but not a `gitdir: PATH` link"))?;
        let path = Utf8Path::new(target.trim());
        let path = if path.is_absolute() { path.to_owned() } else { worktree.join(path) };
        let real =
            path.canonicalize_utf8().map_err(|e| format!("{dot} points to {path}, which cannot be used: {e}"))?;
        (real, true)
    };
    if gitfile && !host_git_dir.join("HEAD").is_file() {
        return Err(format!("{host_git_dir} has no HEAD, so it is not a git directory"));
    }
    let host_common_dir = match std::fs::read_to_string(host_git_dir.join("commondir")) {
        Ok(c) => {
            let p = Utf8Path::new(c.trim());
            let p = if p.is_absolute() { p.to_owned() } else { host_git_dir.join(p) };
            p.canonicalize_utf8().map_err(|e| format!("{host_git_dir}/commondir names {p}: {e}"))?
        }
        Err(_) => host_git_dir.clone(),
    };
    let mut modules = Vec::new();
    find_modules(&host_common_dir.join("modules"), "", &mut modules);
    let id = std::process::id();
    let dir = state.join("git");
    Ok(Some(GitView {
        worktree: worktree.to_owned(),
        host_git_dir,
        host_common_dir,
        gitfile,
        private: dir.join(id.to_string()),
        record: dir.join(format!("{id}.json")),
        modules,
        git,
        identity_dirs: (host.home.clone(), host.config_home()),
    }))
}

/// The hooks directory host git uses for the worktree's repository (`core.hooksPath` of
/// the repository's or the user's config), relative to the worktree with a trailing `/`,
/// when it lies inside the worktree.
#[must_use]
pub fn hooks_in_worktree(worktree: &Utf8Path, host: &crate::hostenv::HostEnv) -> Option<String> {
    let dot = worktree.join(".git");
    if !std::fs::symlink_metadata(&dot).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    let mut entries = read_config(&host.config_home().join("git/config"));
    entries.extend(read_config(&host.home.join(".gitconfig")));
    entries.extend(read_config(&dot.join("config")));
    let hooks = last(&entries, "core.hookspath")?;
    let hooks = hooks.strip_prefix("~/").map_or_else(|| Utf8PathBuf::from(hooks), |r| host.home.join(r));
    let abs = if hooks.is_absolute() { hooks } else { worktree.join(hooks) };
    let abs = crate::plan::normalise(&abs);
    let rel = abs.strip_prefix(worktree).ok()?;
    (!rel.as_str().is_empty()).then(|| format!("{rel}/"))
}

/// Submodule git directories below `dir` (each holds a `HEAD`; names may have slashes).
fn find_modules(dir: &Utf8Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_owned()).collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let rel = if prefix.is_empty() { n.clone() } else { format!("{prefix}/{n}") };
        if p.join("HEAD").is_file() && p.join("objects").is_dir() {
            out.push(rel.clone());
            find_modules(&p.join("modules"), &format!("{rel}/modules"), out);
        } else {
            find_modules(&p, &rel, out);
        }
    }
}

impl GitView {
    /// Inside path of the private directory.
    #[must_use]
    pub fn inside(&self) -> Utf8PathBuf {
        if self.gitfile {
            PRIVATE_INSIDE.into()
        } else {
            self.worktree.join(".git")
        }
    }

    /// Host object stores bound read-only inside: (host, inside).
    #[must_use]
    pub fn object_binds(&self) -> Vec<(Utf8PathBuf, Utf8PathBuf)> {
        let base = Utf8Path::new(HOST_OBJECTS_INSIDE);
        let mut out = vec![(self.host_common_dir.join("objects"), base.join("objects"))];
        for m in &self.modules {
            let rel = format!("modules/{m}/objects");
            out.push((self.host_common_dir.join(&rel), base.join(&rel)));
        }
        out
    }
}

/// The record a launch keeps beside its private directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Cell name.
    pub cell: String,
    /// Pid of the launcher.
    pub launcher: u32,
    /// The worktree.
    pub worktree: Utf8PathBuf,
    /// The host common directory the branches are brought to.
    pub host_common_dir: Utf8PathBuf,
    /// Branches (`refs/heads/...`) and their commits when the private directory was seeded.
    pub seed: BTreeMap<String, String>,
    /// The alternates file as seeded (the sync refuses a directory whose alternates changed).
    pub alternates: String,
}

/// A key of a git config file and its value (section and key lowercased; subsection kept).
type ConfigEntry = (String, String);

/// Reads a git config file (the subset git writes: sections, subsections, `key = value`,
/// quotes, comments). Includes are not followed.
fn read_config(path: &Utf8Path) -> Vec<ConfigEntry> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut out = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(head) = rest.split(']').next() else { continue };
            section = match head.split_once(' ') {
                Some((s, sub)) => format!("{}.{}", s.to_ascii_lowercase(), sub.trim().trim_matches('"')),
                None => head.to_ascii_lowercase(),
            };
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, "true"),
        };
        let mut value = String::new();
        let mut quoted = false;
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' => {
                    if let Some(n) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            o => o,
                        });
                    }
                }
                '#' | ';' if !quoted => break,
                o => value.push(o),
            }
        }
        out.push((format!("{section}.{}", k.to_ascii_lowercase()), value.trim_end().to_owned()));
    }
    out
}

fn last<'a>(entries: &'a [ConfigEntry], key: &str) -> Option<&'a str> {
    entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Quotes a config value.
fn quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The host user's `user.name` and `user.email`, from their global git configuration.
fn identity(home: &Utf8Path, xdg_config: &Utf8Path, git: Option<&Utf8Path>) -> Vec<(String, String)> {
    let mut entries = read_config(&xdg_config.join("git/config"));
    entries.extend(read_config(&home.join(".gitconfig")));
    let mut out = Vec::new();
    for key in ["user.name", "user.email"] {
        let includes = entries.iter().any(|(k, _)| k.starts_with("include.") || k.starts_with("includeif."));
        let value = last(&entries, key).map(str::to_owned).or_else(|| {
            // Includes and conditional includes: ask git (it reads only the host user's
            // files); without any, the files read above are all there is.
            if !includes {
                return None;
            }
            let out = Command::new(git?)
                .args(["config", "--global", "--get", key])
                .env_clear()
                .env("HOME", home)
                .env("XDG_CONFIG_HOME", xdg_config)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let v = String::from_utf8(out.stdout).ok()?;
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        });
        if let Some(v) = value {
            out.push((key.to_owned(), v));
        }
    }
    out
}

/// The private config: the repository format, extensions, sparse checkout, worktree
/// location (submodules), which submodules are active, and the identity. Nothing that
/// names a program, a remote or a credential.
fn private_config(host_config: &[ConfigEntry], identity: &[(String, String)], worktree: Option<&str>) -> String {
    let mut core = vec![
        (
            "repositoryformatversion".to_owned(),
            last(host_config, "core.repositoryformatversion").unwrap_or("0").to_owned(),
        ),
        ("bare".to_owned(), "false".to_owned()),
        ("logallrefupdates".to_owned(), "true".to_owned()),
    ];
    for k in ["filemode", "symlinks", "ignorecase", "precomposeunicode", "sparsecheckout", "sparsecheckoutcone"] {
        if let Some(v) = last(host_config, &format!("core.{k}")) {
            core.push((k.to_owned(), v.to_owned()));
        }
    }
    if let Some(w) = worktree {
        core.push(("worktree".to_owned(), w.to_owned()));
    }
    let mut s = String::from(
        "# Written by cell for this cell only: the host repository's configuration never reaches the cell.\n[core]\n",
    );
    for (k, v) in core {
        s.push_str(&format!("\t{k} = {}\n", quote(&v)));
    }
    let ext: Vec<&ConfigEntry> = host_config.iter().filter(|(k, _)| k.starts_with("extensions.")).collect();
    if !ext.is_empty() {
        s.push_str("[extensions]\n");
        for (k, v) in ext {
            let key = &k["extensions.".len()..];
            if key.chars().all(|c| c.is_ascii_alphanumeric()) {
                s.push_str(&format!("\t{key} = {}\n", quote(v)));
            }
        }
    }
    let mut subs: Vec<&str> = host_config
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("submodule.")?.strip_suffix(".url"))
        .filter(|n| !n.contains(['"', '\n', '\\', ']']))
        .collect();
    subs.sort_unstable();
    subs.dedup();
    for n in subs {
        s.push_str(&format!("[submodule \"{n}\"]\n\tactive = true\n"));
    }
    if !identity.is_empty() {
        s.push_str("[user]\n");
        for (k, v) in identity {
            s.push_str(&format!("\t{} = {}\n", &k["user.".len()..], quote(v)));
        }
    }
    s
}

/// Copies a regular file if it exists (never a link).
fn copy_file(from: &Utf8Path, to: &Utf8Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(from) {
        Ok(m) if m.is_file() => {
            std::fs::copy(from, to).with_context(|| format!("cannot copy {from} to {to}"))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Copies a directory tree of regular files (links and other files are left out).
fn copy_tree(from: &Utf8Path, to: &Utf8Path) -> anyhow::Result<()> {
    let Ok(entries) = from.read_dir_utf8() else { return Ok(()) };
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {to}"))?;
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(e.path(), &dst)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), &dst).with_context(|| format!("cannot copy {} to {dst}", e.path()))?;
        }
    }
    Ok(())
}

/// Seeds one private git directory from host git directory `git_dir` (common dir `common`).
fn seed_dir(
    private: &Utf8Path,
    git_dir: &Utf8Path,
    common: &Utf8Path,
    alternates: &str,
    identity: &[(String, String)],
) -> anyhow::Result<()> {
    for d in ["objects/info", "objects/pack", "refs/heads", "refs/tags", "hooks", "info"] {
        std::fs::create_dir_all(private.join(d)).with_context(|| format!("cannot create {private}/{d}"))?;
    }
    std::fs::write(private.join("objects/info/alternates"), alternates)?;
    copy_file(&git_dir.join("HEAD"), &private.join("HEAD"))?;
    copy_file(&git_dir.join("index"), &private.join("index"))?;
    if let Ok(entries) = git_dir.read_dir_utf8() {
        for e in entries.flatten() {
            if e.file_name().starts_with("sharedindex.") {
                copy_file(e.path(), &private.join(e.file_name()))?;
            }
        }
    }
    copy_file(&common.join("packed-refs"), &private.join("packed-refs"))?;
    copy_file(&common.join("shallow"), &private.join("shallow"))?;
    copy_tree(&common.join("refs"), &private.join("refs"))?;
    copy_tree(&common.join("info"), &private.join("info"))?;
    let host_config = read_config(&common.join("config"));
    let worktree = last(&host_config, "core.worktree").map(str::to_owned);
    // The repository's own identity (`git config user.name` without --global) wins.
    let identity: Vec<(String, String)> = identity
        .iter()
        .map(|(k, v)| (k.clone(), last(&host_config, k).unwrap_or(v).to_owned()))
        .chain(
            ["user.name", "user.email"]
                .into_iter()
                .filter(|k| !identity.iter().any(|(i, _)| i == k))
                .filter_map(|k| Some((k.to_owned(), last(&host_config, k)?.to_owned()))),
        )
        .collect();
    let config = private_config(&host_config, &identity, worktree.as_deref());
    std::fs::write(private.join("config"), config)?;
    Ok(())
}

/// The branches of a git directory: loose refs under `refs/heads` (links are skipped) over
/// `packed-refs`. Only well-formed names and object ids are returned.
#[must_use]
pub fn branches(dir: &Utf8Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(text) = read_no_follow(&dir.join("packed-refs")) {
        for line in text.lines() {
            if let Some((id, name)) = line.split_once(' ') {
                if name.starts_with("refs/heads/") && is_object_id(id) && valid_branch(&name["refs/heads/".len()..]) {
                    out.insert(name.to_owned(), id.to_owned());
                }
            }
        }
    }
    loose(&dir.join("refs/heads"), "refs/heads", &mut out);
    out
}

fn loose(dir: &Utf8Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = format!("{prefix}/{}", e.file_name());
        if ft.is_dir() {
            loose(e.path(), &name, out);
        } else if ft.is_file() {
            if let Ok(text) = read_no_follow(e.path()) {
                let id = text.trim();
                if is_object_id(id) && valid_branch(&name["refs/heads/".len()..]) {
                    out.insert(name, id.to_owned());
                }
            }
        }
    }
}

/// Reads a small file without following a link in its last component.
fn read_no_follow(path: &Utf8Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    f.take(1 << 24).read_to_string(&mut text)?;
    Ok(text)
}

fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A branch name that is safe to bring over (a strict subset of git's rules).
#[must_use]
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/+".contains(&b))
        && name.split('/').all(|c| !c.is_empty() && !c.starts_with('.') && !c.to_ascii_lowercase().ends_with(".lock"))
        && !name.contains("..")
        && !name.ends_with('.')
}

/// A seeded view; dropping it brings the cell's branches over, quarantines what the cell
/// planted where host tools execute, reports, and removes the private directory.
pub struct Session {
    cell: String,
    view: Option<GitView>,
    worktree: Utf8PathBuf,
    /// Protected paths that did not exist at launch (quarantined if created).
    absent: Vec<Utf8PathBuf>,
    /// Protected paths that exist, with their device and inode at launch.
    held: Vec<(Utf8PathBuf, u64, u64)>,
    /// Whether the worktree had a `.git` at launch.
    had_git: bool,
    started: std::time::SystemTime,
}

impl Session {
    /// Seeds the private directory of `view` (if any) and records the launch.
    ///
    /// # Errors
    /// When the private directory cannot be created or seeded; the cell must not start.
    pub fn start(
        cell: &str,
        worktree: &Utf8Path,
        view: Option<&GitView>,
        absent: Vec<Utf8PathBuf>,
        held: &[Utf8PathBuf],
    ) -> anyhow::Result<Self> {
        // Whole seconds: ctime compared with a start rounded down catches everything after.
        let now = std::time::SystemTime::now();
        let started = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()))
            .unwrap_or(now);
        let session = Self {
            cell: cell.to_owned(),
            view: view.cloned(),
            worktree: worktree.to_owned(),
            absent,
            held: held
                .iter()
                .chain(view.map(|v| v.worktree.join(".git")).as_ref())
                .filter_map(|p| std::fs::symlink_metadata(p).ok().map(|m| (p.clone(), m.dev(), m.ino())))
                .collect(),
            had_git: std::fs::symlink_metadata(worktree.join(".git")).is_ok(),
            started,
        };
        if let Some(v) = view {
            seed(cell, v)
                .with_context(|| format!("cannot prepare the cell's view of the repository in {}", v.private))?;
        }
        Ok(session)
    }
}

impl Session {
    /// Watches the protected paths that exist for the cell's lifetime. The kernel lifts a
    /// read-only bind inside the cell when the path under it is replaced or removed on the
    /// host (an editor saving by rename, `sed -i`, `mv`); from then on the cell could write
    /// the new file. So when the host replaces one, the cell is stopped (SIGKILL to
    /// bubblewrap, `pid`; the cell dies with it) and the launcher says why.
    ///
    /// # Errors
    /// When inotify cannot be set up (the cell must not start unwatched).
    pub fn watch(&self, pid: nix::unistd::Pid) -> anyhow::Result<()> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        if self.held.is_empty() {
            return Ok(());
        }
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).context("cannot watch the protected paths (inotify)")?;
        let flags = AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        let mut dirs: Vec<&Utf8Path> = self.held.iter().filter_map(|(p, _, _)| p.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            inotify.add_watch(d.as_std_path(), flags).with_context(|| format!("cannot watch {d}"))?;
        }
        let held = self.held.clone();
        let replaced = move || {
            held.iter()
                .find(|(p, dev, ino)| !std::fs::symlink_metadata(p).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino))
                .map(|(p, _, _)| p.clone())
        };
        // A replacement between the launch's first look and the watch.
        let stop = move |p: &Utf8Path| {
            eprintln!(
                "cell: {p} was replaced on the host while the cell ran; the kernel lifts the cell's read-only view of a replaced file, so the cell was stopped (start it again to protect the new file)"
            );
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        };
        if let Some(p) = replaced() {
            stop(&p);
            return Ok(());
        }
        std::thread::Builder::new()
            .name("cell-watch".into())
            .spawn(move || {
                while inotify.read_events().is_ok() {
                    if let Some(p) = replaced() {
                        stop(&p);
                        return;
                    }
                }
            })
            .context("cannot start the watch of the protected paths")?;
        Ok(())
    }
}

fn seed(cell: &str, v: &GitView) -> anyhow::Result<()> {
    let dir = v.private.parent().context("no parent")?;
    std::fs::create_dir_all(dir.parent().context("no parent")?)?;
    crate::launch::private_dir(dir, false)?;
    sweep(dir);
    crate::launch::private_dir(&v.private, true)?;
    let identity = identity(&v.identity_dirs.0, &v.identity_dirs.1, v.git.as_deref());
    let alternates = format!("{HOST_OBJECTS_INSIDE}/objects\n");
    seed_dir(&v.private, &v.host_git_dir, &v.host_common_dir, &alternates, &identity)?;
    for m in &v.modules {
        let host_dir = v.host_common_dir.join("modules").join(m);
        let alt = format!("{HOST_OBJECTS_INSIDE}/modules/{m}/objects\n");
        seed_dir(&v.private.join("modules").join(m), &host_dir, &host_dir, &alt, &identity)?;
    }
    let record = Record {
        cell: cell.to_owned(),
        launcher: std::process::id(),
        worktree: v.worktree.clone(),
        host_common_dir: v.host_common_dir.clone(),
        seed: branches(&v.host_common_dir),
        alternates,
    };
    let mut f = std::fs::File::create(&v.record).with_context(|| format!("cannot write {}", v.record))?;
    f.write_all(serde_json::to_string(&record)?.as_bytes())?;
    Ok(())
}

/// Removes private directories of launchers that ended without a record (they died while
/// seeding; a finished sync removes both). A running launcher's directory is never touched:
/// its record is written only once seeding is done.
fn sweep(dir: &Utf8Path) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let running = Utf8Path::new(&format!("/proc/{name}")).exists();
        if name.parse::<u32>().is_ok() && !running && !dir.join(format!("{name}.json")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut report = Vec::new();
        for q in quarantine(&self.worktree, &self.absent, self.had_git, self.started) {
            report.push(q);
        }
        if let Some(v) = &self.view {
            if v.record.exists() {
                match sync_record(&v.record, v.git.as_deref(), true) {
                    Ok(lines) => report.extend(lines),
                    Err(e) => report
                        .push(format!("the cell's commits were not brought over: {e:#}; `cell git sync` tries again")),
                }
            }
        }
        if !report.is_empty() {
            let mut err = std::io::stderr().lock();
            for l in report {
                let _ = writeln!(err, "cell: {l}");
            }
        }
        let _ = &self.cell;
    }
}

/// Renames aside what the cell planted where host tools execute: protected paths that did
/// not exist at launch, and `.git` entries created or changed during the run (below the top,
/// or at the top when the worktree had none). Returns one report line per path.
fn quarantine(
    worktree: &Utf8Path,
    absent: &[Utf8PathBuf],
    had_git: bool,
    started: std::time::SystemTime,
) -> Vec<String> {
    let mut found: Vec<Utf8PathBuf> = absent.iter().filter(|p| std::fs::symlink_metadata(p).is_ok()).cloned().collect();
    if !had_git && std::fs::symlink_metadata(worktree.join(".git")).is_ok() {
        found.push(worktree.join(".git"));
    }
    let host_git = std::fs::symlink_metadata(worktree.join(".git"))
        .ok()
        .filter(|_| had_git)
        .and_then(|_| worktree.join(".git").canonicalize_utf8().ok());
    nested_git(worktree, worktree, started, host_git.as_deref(), &mut found);
    found.sort();
    found.dedup();
    let mut out = Vec::new();
    for p in found {
        let aside = Utf8PathBuf::from(format!("{p}.cell-quarantined-{}", std::process::id()));
        match std::fs::rename(&p, &aside) {
            Ok(()) => out.push(format!(
                "quarantined {p} (created or changed by the cell where host tools would run it): now {aside}; review it, then delete or restore it"
            )),
            Err(e) => out.push(format!("WARNING: {p} was created or changed by the cell and could not be moved aside ({e}); do not run git or other tools there before reviewing it")),
        }
    }
    out
}

/// Whether a path or anything below it (not following links) changed at or after `since`.
fn changed_since(p: &Utf8Path, since: std::time::SystemTime) -> bool {
    let Ok(m) = std::fs::symlink_metadata(p) else { return false };
    let ctime = std::time::UNIX_EPOCH
        + std::time::Duration::new(u64::try_from(m.ctime()).unwrap_or(0), u32::try_from(m.ctime_nsec()).unwrap_or(0));
    if ctime >= since {
        return true;
    }
    if m.is_dir() {
        if let Ok(entries) = p.read_dir_utf8() {
            return entries.flatten().any(|e| changed_since(e.path(), since));
        }
    }
    false
}

/// Whether `.git` file `p` links into the host's own git directory (a submodule's
/// `gitdir: ../.git/modules/NAME`), which the cell cannot write: git inside rewrites such
/// files with the same link.
fn links_into(p: &Utf8Path, host_git: Option<&Utf8Path>) -> bool {
    let Some(host_git) = host_git else { return false };
    let Ok(text) = read_no_follow(p) else { return false };
    let Some(target) = text.lines().next().and_then(|l| l.strip_prefix("gitdir: ")) else { return false };
    let target = Utf8Path::new(target.trim());
    let target = if target.is_absolute() { target.to_owned() } else { p.parent().unwrap_or(p).join(target) };
    target
        .canonicalize_utf8()
        .is_ok_and(|t| t.starts_with(host_git.join("modules")) || t.starts_with(host_git.join("worktrees")))
}

/// `.git` entries below the top of the worktree that changed during the run (a `.git`
/// file that links into the host's own git directory is the host's, whatever its time).
fn nested_git(
    top: &Utf8Path,
    dir: &Utf8Path,
    since: std::time::SystemTime,
    host_git: Option<&Utf8Path>,
    out: &mut Vec<Utf8PathBuf>,
) {
    let Ok(entries) = dir.read_dir_utf8() else { return };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if e.file_name() == ".git" {
            if dir != top && changed_since(p, since) && !(ft.is_file() && links_into(p, host_git)) {
                out.push(p.to_owned());
            }
            continue;
        }
        if ft.is_dir() {
            nested_git(top, p, since, host_git, out);
        }
    }
}

/// Brings the branches a launch's cell changed over to the host repository as
/// `cell/<cell>/<branch>`; with `finished`, removes the private directory and the record
/// once everything came over. Returns report lines.
///
/// # Errors
/// When the record cannot be read or host git cannot run.
pub fn sync_record(record_path: &Utf8Path, git: Option<&Utf8Path>, finished: bool) -> anyhow::Result<Vec<String>> {
    let record: Record = serde_json::from_str(&std::fs::read_to_string(record_path)?)
        .with_context(|| format!("{record_path} is not a launch record"))?;
    let private = record_path.with_extension("");
    let mut lines = Vec::new();
    let now = branches(&private);
    let changed: Vec<(String, String)> =
        now.iter().filter(|(r, id)| record.seed.get(*r) != Some(*id)).map(|(r, id)| (r.clone(), id.clone())).collect();
    let mut failed = false;
    if !changed.is_empty() {
        let Some(git) = git else { bail!("git is not installed on the host (or only where the cell can write)") };
        let alternates = read_no_follow(&private.join("objects/info/alternates")).unwrap_or_default();
        if alternates != record.alternates {
            bail!(
                "the cell changed its object alternates ({}); nothing is brought over from it",
                private.join("objects/info/alternates")
            );
        }
        let host = &record.host_common_dir;
        for (r, id) in &changed {
            // One branch at a time: a branch whose objects do not read never holds up another.
            import_objects(git, host, &private.join("objects"), &[(r.clone(), id.clone())])?;
            let branch = &r["refs/heads/".len()..];
            let target = format!("refs/heads/cell/{}/{branch}", record.cell);
            if !reachable_in_host(git, host, id) {
                failed = true;
                lines.push(format!(
                    "refused {branch}: its commit {id} or objects it reaches did not verify in the host repository"
                ));
                continue;
            }
            let ok = host_git(git, host)
                .args(["update-ref", "-m", "cell git sync", &target, id])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                let short = &id[..12];
                lines.push(format!(
                    "{branch} of the cell is now {} ({short}) in {}; review: cell git log, merge: git merge {}",
                    &target["refs/heads/".len()..],
                    record.worktree,
                    &target["refs/heads/".len()..]
                ));
            } else {
                failed = true;
                lines.push(format!("could not create {target} in {host}"));
            }
        }
    }
    let alive = Utf8Path::new(&format!("/proc/{}", record.launcher)).exists() && record.launcher != std::process::id();
    if (finished || !alive) && !failed {
        let _ = std::fs::remove_dir_all(&private);
        let _ = std::fs::remove_file(record_path);
    } else if failed {
        lines.push(format!("the cell's git directory is kept at {private} for review"));
    }
    Ok(lines)
}

/// Host git on the host repository: the host's own configuration, nothing from the cell's.
fn host_git(git: &Utf8Path, host: &Utf8Path) -> Command {
    let mut c = Command::new(git);
    c.arg(format!("--git-dir={host}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for k in ["HOME", "XDG_CONFIG_HOME"] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c
}

/// Copies the objects the changed branches reach and the host lacks: host `rev-list` and
/// `pack-objects` read the cell's store as an alternate, `index-pack --strict` checks every
/// object into the host's store (under the hash of its content).
fn import_objects(
    git: &Utf8Path,
    host: &Utf8Path,
    objects: &Utf8Path,
    changed: &[(String, String)],
) -> anyhow::Result<()> {
    let mut list = host_git(git, host);
    list.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects).args(["rev-list", "--objects"]);
    list.args(changed.iter().map(|(_, id)| id.as_str())).args(["--not", "--all"]).stdout(Stdio::piped());
    let out = list.output().context("cannot run git rev-list")?;
    if !out.status.success() || out.stdout.is_empty() {
        // Unknown objects: nothing to copy; the branches are refused by the check after.
        return Ok(());
    }
    let mut pack = host_git(git, host);
    pack.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects).args(["pack-objects", "--stdout", "-q"]);
    let mut pack = pack.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().context("cannot run git pack-objects")?;
    let mut index = host_git(git, host);
    let pack_out = pack.stdout.take().context("no pipe")?;
    let mut index = index
        .args(["index-pack", "--stdin", "--strict"])
        .stdin(pack_out)
        .spawn()
        .context("cannot run git index-pack")?;
    if let Some(mut stdin) = pack.stdin.take() {
        let _ = stdin.write_all(&out.stdout);
    }
    let _ = pack.wait();
    let _ = index.wait();
    Ok(())
}

/// Whether the commit and everything it reaches are in the host's own store.
fn reachable_in_host(git: &Utf8Path, host: &Utf8Path, id: &str) -> bool {
    let is_commit = host_git(git, host)
        .args(["cat-file", "-t", id])
        .stdout(Stdio::piped())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"commit"));
    is_commit
        && host_git(git, host)
            .args(["rev-list", "--objects", "--quiet", id, "--not", "--all"])
            .status()
            .is_ok_and(|s| s.success())
}

/// The launch records of cell `name` (in its state directory).
#[must_use]
pub fn records(state: &Utf8Path) -> Vec<Utf8PathBuf> {
    let dir = state.join("git");
    let Ok(entries) = dir.read_dir_utf8() else { return Vec::new() };
    let mut out: Vec<Utf8PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().strip_suffix(".json").is_some_and(|p| p.parse::<u32>().is_ok()))
        .map(|e| e.path().to_owned())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reader_takes_what_git_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(dir.path().join("config")).unwrap();
        std::fs::write(&p, "[core]\n\trepositoryformatversion = 1\n\tfsmonitor = \"evil # x\" ; c\n[extensions]\n\tobjectFormat = sha256\n[submodule \"lib/a\"]\n\turl = https://x\n[user]\n\tname = A \\\"B\\\"\n").unwrap();
        let c = read_config(&p);
        assert_eq!(last(&c, "core.fsmonitor"), Some("evil # x"));
        assert_eq!(last(&c, "extensions.objectformat"), Some("sha256"));
        assert_eq!(last(&c, "user.name"), Some("A \"B\""));
        let out = private_config(&c, &[("user.name".into(), "Ann".into())], None);
        assert!(!out.contains("fsmonitor") && !out.contains("https://x"), "{out}");
        assert!(
            out.contains("objectformat = \"sha256\"")
                && out.contains("[submodule \"lib/a\"]")
                && out.contains("repositoryformatversion = \"1\""),
            "{out}"
        );
    }

    #[test]
    fn branch_names_are_checked() {
        for good in ["main", "feature/x", "v1.2", "a-b_c+d"] {
            assert!(valid_branch(good), "{good}");
        }
        for bad in ["", "../x", "a..b", ".hidden", "x.lock", "a//b", "a/", "x\ny", "a b", "x.", "@{u}"] {
            assert!(!valid_branch(bad), "{bad:?}");
        }
    }
}
