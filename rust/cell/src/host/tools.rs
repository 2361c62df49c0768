//! The host programs a launch runs (bubblewrap, `cell-init`, the sidecars), found where the
//! cell cannot write, and what the host's bubblewrap supports.

use std::process::Command;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};

use crate::sys::is_executable;

/// Finds bubblewrap: `$CELL_BWRAP` (set by the Nix wrapper), else the first `bwrap` on
/// `PATH` that [`trusted_on_path`] accepts (only root can replace it, and it lies, links
/// resolved, outside `skip`: the places the cell can write). Nothing found here is run
/// before the plan's check ([`crate::host::plan::check_tools`]) has passed.
///
/// # Errors
/// When there is none, naming a `bwrap` that was passed over and how to choose it.
pub fn find_bwrap(env: &crate::host::hostenv::HostEnv, skip: &[Utf8PathBuf]) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var("CELL_BWRAP").filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("$CELL_BWRAP names {p}, which is not an executable file; unset it or point it at bubblewrap");
    }
    trusted_on_path(env, "bwrap", skip).map_err(|passed| match passed {
        Some(p) => anyhow::anyhow!("{}", passed_over("bwrap", &p, "CELL_BWRAP")),
        None => anyhow::anyhow!(
            "bubblewrap (bwrap) is not installed or not on PATH; install it (Debian/Ubuntu: apt install bubblewrap, Fedora: dnf install bubblewrap, Arch: pacman -S bubblewrap) or use the Nix package, which brings its own"
        ),
    })
}

/// Finds git for the launcher's own use (it runs on the host: the repository's view,
/// bringing branches over, `cell git`): `$CELL_GIT`, else as [`find_bwrap`] finds bwrap.
///
/// # Errors
/// As [`find_bwrap`], in words for git.
pub fn find_git(env: &crate::host::hostenv::HostEnv, skip: &[Utf8PathBuf]) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var("CELL_GIT").filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) && !skipped(&p, skip) {
            return Ok(p);
        }
        bail!("$CELL_GIT names {p}, which is not an executable file outside the places the cell can write; unset it or point it at git");
    }
    trusted_on_path(env, "git", skip).map_err(|passed| match passed {
        Some(p) => anyhow::anyhow!("{}", passed_over("git", &p, "CELL_GIT")),
        None => anyhow::anyhow!("git is not installed or not on PATH; install it (e.g. apt install git)"),
    })
}

/// What to say of a program on `PATH` that was not taken because another account than
/// root could have replaced it.
fn passed_over(name: &str, p: &Utf8Path, var: &str) -> String {
    format!(
        "the only {name} on PATH, {p}, was passed over: an account other than root can replace it, so a cell (which \
         writes as such an account) could have put it there, and the launcher runs it on the host; install {name} \
         where only root writes (the system package, or a Nix profile, whose files are the store's), or, when you \
         know where it came from, choose it with {var}={p}"
    )
}

/// The first `name` on `PATH` the launcher may run on the host: an absolute entry, the
/// program and its entry outside `skip` (as named and with links resolved), and `name` in
/// the entry's directory (links resolved: a Nix profile's `bin` is a store directory) a
/// program that only root can replace ([`crate::sys::only_root_can_replace`]: every link
/// from there on lies where only root writes, and so does the file). No cell, now or
/// earlier, can have planted it: a project's `.venv/bin` on `PATH` may hold what a cell
/// wrote in a worktree this launch does not see (its parent, say), and a link planted there
/// to some program of root's would choose what runs under this name. The result is that
/// path (directory resolved, name kept), which stays what was judged. `Err` carries the
/// first program that was passed over for its owner, if any, for the message.
pub(crate) fn trusted_on_path(
    env: &crate::host::hostenv::HostEnv,
    name: &str,
    skip: &[Utf8PathBuf],
) -> Result<Utf8PathBuf, Option<Utf8PathBuf>> {
    let mut passed = None;
    for d in env.var("PATH").unwrap_or("/usr/bin:/bin").split(':').filter(|d| d.starts_with('/')).map(Utf8Path::new) {
        // The candidate first: a directory without it needs no resolving.
        let p = d.join(name);
        if !is_executable(&p) || skipped(d, skip) || skipped(&p, skip) {
            continue;
        }
        // The directory resolved, the name kept (a program may act on the name it was run
        // by): what the entry holds under that name, and every link from there, is root's.
        let Ok(dir) = crate::sys::canonical_utf8(d) else { continue };
        let real = dir.join(name);
        if crate::sys::only_root_can_replace(&real) {
            return Ok(real);
        }
        passed.get_or_insert(p);
    }
    Err(passed)
}

/// `PATH` for a program the launcher runs on the host (git) that may itself run others by
/// name: the entries of `path` whose directory, links resolved, only root can change, so
/// nothing a cell planted (in a `.venv/bin` on `PATH`, say) is found. `/usr/bin:/bin` when
/// none is.
#[must_use]
pub fn trusted_path(path: Option<&str>) -> String {
    let kept: Vec<String> = path
        .unwrap_or_default()
        .split(':')
        .filter(|d| d.starts_with('/'))
        .filter_map(|d| crate::sys::canonical_utf8(Utf8Path::new(d)).ok())
        .filter(|d| crate::sys::only_root_can_change_dir(d))
        .map(String::from)
        .collect();
    if kept.is_empty() {
        "/usr/bin:/bin".to_owned()
    } else {
        kept.join(":")
    }
}

/// Finds `cell-init`: `$CELL_INIT`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_init(env: &crate::host::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    find_sibling(env, "CELL_INIT", "cell-init")
}

/// Finds `cell-egress`: `$CELL_EGRESS`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_egress(env: &crate::host::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    find_sibling(env, "CELL_EGRESS", "cell-egress")
}

/// Finds `cell-walflush`: `$CELL_WALFLUSH`, else next to the running `cell` binary.
///
/// # Errors
/// When it is missing.
pub fn find_walflush(env: &crate::host::hostenv::HostEnv) -> anyhow::Result<Utf8PathBuf> {
    find_sibling(env, "CELL_WALFLUSH", "cell-walflush")
}

fn find_sibling(env: &crate::host::hostenv::HostEnv, var: &str, name: &str) -> anyhow::Result<Utf8PathBuf> {
    if let Some(p) = env.var(var).filter(|p| !p.is_empty()) {
        let p = Utf8PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("${var} names {p}, which is not an executable file");
    }
    let dir = own_dir()?;
    let path = dir.join(name);
    if is_executable(&path) {
        Ok(path)
    } else {
        bail!("{name} is missing: expected it at {path}, next to cell; {}", sibling_fix(&dir, var, name))
    }
}

/// The directory of the running `cell` binary, links resolved.
fn own_dir() -> anyhow::Result<Utf8PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running cell binary")?;
    let exe = crate::sys::canonical(&exe).unwrap_or(exe);
    let dir = exe.parent().context("the cell binary has no parent directory")?;
    Utf8PathBuf::from_path_buf(dir.to_path_buf()).map_err(|p| anyhow::anyhow!("{} is not valid UTF-8", p.display()))
}

/// The command that puts a missing helper beside `cell` in `dir`: the whole tool installed
/// into the same prefix (`scripts/install`, which runs `cargo install --locked --path` for
/// each crate), or, for a binary in a build directory, the workspace built.
fn sibling_fix(dir: &Utf8Path, var: &str, name: &str) -> String {
    match dir.parent().filter(|_| dir.file_name() == Some("bin")) {
        Some(prefix) => format!(
            "install the whole tool into the same prefix, from a checkout of cell: scripts/install --root {prefix} \
             (or set ${var} to a {name} binary)"
        ),
        None => format!(
            "build every binary beside it: cargo build --workspace --bins in the checkout's rust/ directory \
             (or set ${var} to a {name} binary)"
        ),
    }
}

/// Whether this bubblewrap understands `--disable-userns` (0.8+). Asking costs one run of
/// `bwrap --help`, so the answer is cached per binary (path, size, modification time) in
/// `$XDG_CACHE_HOME/cell/bwrap-features`, one line per binary (up to [`FEATURE_ENTRIES`], so
/// alternating `$CELL_BWRAP` values do not evict each other), or, when that cannot be
/// written, in `bwrap-features` of the launcher's own runtime directory (only when it exists,
/// is ours and closed to others). When neither can be written the answer is kept in memory
/// for this process and no file is rewritten.
#[must_use]
pub fn bwrap_supports_disable_userns(bwrap: &Utf8Path, host: &crate::host::hostenv::HostEnv) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let ask = || {
        Command::new(bwrap)
            .arg("--help")
            .env_clear()
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--disable-userns"))
    };
    let Some(key) =
        std::fs::metadata(bwrap).ok().map(|m| format!("{bwrap} {} {}.{}", m.size(), m.mtime(), m.mtime_nsec()))
    else {
        return ask();
    };
    if let Some(answer) = FEATURE_MEMO.lock().ok().and_then(|m| m.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)) {
        return answer;
    }
    let mut files = vec![host.cache_home().join("cell/bwrap-features")];
    files.extend(private_dir(&host.runtime_base()).map(|d| d.join("bwrap-features")));
    // The first file that knows the answer ends the look (the second is read only when needed).
    let mut texts: Vec<String> = Vec::new();
    let mut cached = None;
    for f in &files {
        // Never through a link: a link planted there would be read and replaced by the write.
        let text = crate::sys::read_no_follow(f).unwrap_or_default();
        cached = feature_lookup(&text, &key);
        texts.push(text);
        if cached.is_some() {
            break;
        }
    }
    let supported = cached.unwrap_or_else(ask);
    if let Ok(mut m) = FEATURE_MEMO.lock() {
        m.push((key.clone(), supported));
    }
    if cached.is_none() {
        let _ = files.iter().zip(&texts).any(|(f, t)| feature_store(f, t, bwrap, &key, supported).is_ok());
    }
    supported
}

/// How many binaries' answers `bwrap-features` keeps.
pub const FEATURE_ENTRIES: usize = 16;

/// Answers already known to this process (also the fallback when no cache can be written).
static FEATURE_MEMO: std::sync::Mutex<Vec<(String, bool)>> = std::sync::Mutex::new(Vec::new());

/// The cached answer for `key` in the text of a `bwrap-features` file.
fn feature_lookup(text: &str, key: &str) -> Option<bool> {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(" disable-userns="))).map(|a| a == "yes")
}

/// The text of a `bwrap-features` file with `key`'s answer added: other binaries' lines
/// kept (the oldest dropped beyond [`FEATURE_ENTRIES`]), an older line of the same path
/// replaced.
fn feature_text(old: &str, bwrap: &Utf8Path, key: &str, supported: bool) -> String {
    let same_path = format!("{bwrap} ");
    let mut keep: Vec<&str> =
        old.lines().filter(|l| !l.starts_with(&same_path) && l.contains(" disable-userns=")).collect();
    let drop = (keep.len() + 1).saturating_sub(FEATURE_ENTRIES);
    keep.drain(..drop);
    let mut out: String = keep.iter().map(|l| format!("{l}\n")).collect();
    out.push_str(&format!("{key} disable-userns={}\n", if supported { "yes" } else { "no" }));
    out
}

/// Writes `file` (through a temporary file and a rename, so a concurrent reader never sees
/// half a file) with `key`'s answer added to `old`.
fn feature_store(file: &Utf8Path, old: &str, bwrap: &Utf8Path, key: &str, supported: bool) -> std::io::Result<()> {
    let dir = file.parent().ok_or_else(|| std::io::Error::other("no parent"))?;
    std::fs::create_dir_all(dir)?;
    // A new file of a name no one could guess (create_new: O_EXCL, which follows no link).
    let tmp = dir.join(format!(".bwrap-features.{}-{}", std::process::id(), crate::sys::since_epoch().as_nanos()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    if let Err(e) = std::io::Write::write_all(&mut f, feature_text(old, bwrap, key, supported).as_bytes()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    drop(f);
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `dir` when it is a directory (not a link) owned by us that nobody else can enter.
fn private_dir(dir: &Utf8Path) -> Option<Utf8PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::symlink_metadata(dir).ok()?;
    (m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o077 == 0).then(|| dir.to_owned())
}

/// Whether `p`, as named or with its links resolved, lies at or below an entry of `skip`.
pub(crate) fn skipped(p: &Utf8Path, skip: &[Utf8PathBuf]) -> bool {
    skip.iter().any(|w| crate::host::plan::within(p.as_str(), w.as_str()))
        || crate::sys::canonical_utf8(p)
            .is_ok_and(|c| skip.iter().any(|w| crate::host::plan::within(c.as_str(), w.as_str())))
}

/// [`find_bwrap`] again with a longer `skip` (`found` came from a search that skipped a
/// part of it): the same program when neither it nor its directory lies in the new part,
/// since every `PATH` entry before it was skipped or held none then and still is or does;
/// else the search again. Spares a second walk of `PATH` per launch.
///
/// # Errors
/// As [`find_bwrap`].
pub fn find_bwrap_again(
    env: &crate::host::hostenv::HostEnv,
    found: &Utf8Path,
    skip: &[Utf8PathBuf],
) -> anyhow::Result<Utf8PathBuf> {
    let from_var = env.var("CELL_BWRAP").is_some_and(|p| !p.is_empty());
    let dir = found.parent().unwrap_or(found);
    if from_var || skipped(dir, skip) || skipped(found, skip) {
        return find_bwrap(env, skip);
    }
    Ok(found.to_owned())
}

/// Where a cell can write before any plan exists: the current directory (the default
/// worktree) and the cell homes, links resolved. Tool searches skip these; the plan's own
/// check then covers every writable mount.
#[must_use]
pub fn presumed_writable(env: &crate::host::hostenv::HostEnv) -> Vec<Utf8PathBuf> {
    let mut out = vec![env.cwd.clone(), env.data_home().join("cell")];
    let resolved: Vec<Utf8PathBuf> = out.iter().filter_map(|p| crate::sys::canonical_utf8(p).ok()).collect();
    out.extend(resolved);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_search_with_a_longer_skip_finds_what_a_full_search_finds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        let dirs: Vec<Utf8PathBuf> = ["a", "b", "c"].iter().map(|d| root.join(d)).collect();
        for d in &dirs[..2] {
            std::fs::create_dir(d).unwrap();
            let bwrap = d.join("bwrap");
            std::fs::write(&bwrap, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&bwrap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir(&dirs[2]).unwrap();
        let mut host = crate::host::hostenv::HostEnv::capture().unwrap();
        host.vars = [("PATH".to_owned(), format!("{}:{}:{}", dirs[2], dirs[0], dirs[1]))].into_iter().collect();
        let first = find_bwrap(&host, &[]).unwrap();
        assert_eq!(first, dirs[0].join("bwrap"));
        // Every longer skip: the re-check agrees with a whole new search.
        let skips: Vec<Vec<Utf8PathBuf>> = vec![
            vec![],
            vec![dirs[2].clone()],
            vec![dirs[0].clone()],
            vec![dirs[0].join("bwrap")],
            vec![root.to_owned()],
            vec![dirs[0].clone(), dirs[1].clone()],
        ];
        for skip in &skips {
            let again = find_bwrap_again(&host, &first, skip).ok();
            assert_eq!(again, find_bwrap(&host, skip).ok(), "skip {skip:?}");
        }
        assert_eq!(find_bwrap_again(&host, &first, &[dirs[0].clone()]).unwrap(), dirs[1].join("bwrap"));
        assert!(find_bwrap_again(&host, &first, &[root.to_owned()]).is_err());
    }

    #[test]
    fn only_what_root_alone_can_replace_is_taken_from_path() {
        use std::os::unix::fs::PermissionsExt as _;
        if !nix::unistd::getuid().is_root() {
            // Files made here would be this account's: nothing could be taken.
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        let (theirs, ours) = (root.join("venv/bin"), root.join("bin"));
        for d in [&theirs, &ours] {
            std::fs::create_dir_all(d).unwrap();
            let git = d.join("git");
            std::fs::write(&git, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let other = Some(nix::unistd::Uid::from_raw(1));
        nix::unistd::chown(theirs.join("git").as_std_path(), other, None).unwrap();
        nix::unistd::chown(theirs.as_std_path(), other, None).unwrap();
        let mut host = crate::host::hostenv::HostEnv::capture().unwrap();
        host.vars = [("PATH".to_owned(), format!("{theirs}:{ours}"))].into_iter().collect();
        assert_eq!(find_git(&host, &[]).unwrap(), ours.join("git"), "another account's git is passed over");
        assert_eq!(trusted_on_path(&host, "git", std::slice::from_ref(&ours)), Err(Some(theirs.join("git"))));
        let why = format!("{:#}", find_git(&host, std::slice::from_ref(&ours)).unwrap_err());
        assert!(why.contains("passed over") && why.contains(&format!("CELL_GIT={theirs}/git")), "{why}");
        host.vars.insert("CELL_GIT".to_owned(), theirs.join("git").to_string());
        assert_eq!(find_git(&host, &[]).unwrap(), theirs.join("git"), "named, it is chosen");
        assert!(find_git(&host, &[root.to_owned()]).is_err(), "but never where the cell writes");
        // A link planted in another account's directory to a program of root's: that would
        // choose what runs as git. A directory link resolves to root's own directory.
        std::os::unix::fs::symlink(ours.join("git"), theirs.join("to-root")).unwrap();
        std::os::unix::fs::symlink(&ours, theirs.join("dir")).unwrap();
        host.vars.remove("CELL_GIT");
        host.vars.insert("PATH".to_owned(), format!("{theirs}:{theirs}/dir"));
        assert_eq!(trusted_on_path(&host, "to-root", &[]), Err(Some(theirs.join("to-root"))));
        assert_eq!(trusted_on_path(&host, "git", &[]), Ok(ours.join("git")));
        // What git runs by name: only from directories no other account can add to.
        assert_eq!(trusted_path(Some(&format!("{theirs}:{ours}:relative"))), ours.to_string());
        assert_eq!(trusted_path(Some(theirs.as_str())), "/usr/bin:/bin");
        assert_eq!(trusted_path(None), "/usr/bin:/bin");
    }

    #[test]
    fn the_feature_cache_never_writes_or_reads_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let file = dir.join("cell/bwrap-features");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &file).unwrap();
        // Links planted where a temporary file of a predictable name would go.
        std::os::unix::fs::symlink(&victim, dir.join(format!("cell/.bwrap-features.{}", std::process::id()))).unwrap();
        // Read: the link is not followed (nothing known); write: the link is replaced.
        assert_eq!(crate::sys::read_no_follow(&file).ok(), None);
        feature_store(&file, "", Utf8Path::new("/b/bwrap"), "/b/bwrap 1 2.3", true).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
        assert_eq!(feature_lookup(&std::fs::read_to_string(&file).unwrap(), "/b/bwrap 1 2.3"), Some(true));
    }

    #[test]
    fn feature_cache_keeps_every_binary_and_replaces_a_changed_one() {
        let a = Utf8Path::new("/a/bwrap");
        let b = Utf8Path::new("/b/bwrap");
        let t = feature_text("", a, "/a/bwrap 1 2.3", true);
        let t = feature_text(&t, b, "/b/bwrap 4 5.6", false);
        // Alternating binaries: both answers stay.
        assert_eq!(feature_lookup(&t, "/a/bwrap 1 2.3"), Some(true));
        assert_eq!(feature_lookup(&t, "/b/bwrap 4 5.6"), Some(false));
        // The same path with a new size/mtime (an upgrade) replaces its old line.
        let t = feature_text(&t, a, "/a/bwrap 7 8.9", false);
        assert_eq!(feature_lookup(&t, "/a/bwrap 1 2.3"), None);
        assert_eq!(feature_lookup(&t, "/a/bwrap 7 8.9"), Some(false));
        assert_eq!(t.lines().count(), 2);
    }

    #[test]
    fn feature_cache_drops_the_oldest_beyond_its_size() {
        let mut t = String::new();
        for i in 0..=FEATURE_ENTRIES {
            let p = format!("/x{i}/bwrap");
            t = feature_text(&t, Utf8Path::new(&p), &format!("{p} 1 1.1"), true);
        }
        assert_eq!(t.lines().count(), FEATURE_ENTRIES);
        assert_eq!(feature_lookup(&t, "/x0/bwrap 1 1.1"), None);
        assert_eq!(feature_lookup(&t, &format!("/x{FEATURE_ENTRIES}/bwrap 1 1.1")), Some(true));
    }
}
