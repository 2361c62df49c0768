//! What the launcher knows about the host: environment, identity, XDG directories.
//!
//! Captured once at start so planning is a pure function of it (and tests can fake it).

use std::collections::BTreeMap;

use anyhow::Context as _;
use camino::Utf8PathBuf;
use nix::unistd::{Gid, Uid, User};

use crate::host::config::{ConfigFile, ConfigSource, Invalid, DEFAULT_RUN_AS};

/// A snapshot of the host side of a launch.
#[derive(Debug, Clone)]
pub struct HostEnv {
    /// The host environment (only UTF-8 entries; others are never passed into a cell).
    pub vars: BTreeMap<String, String>,
    /// Real user id of the caller.
    pub uid: u32,
    /// Real group id of the caller.
    pub gid: u32,
    /// Login name of the caller (from the passwd database, else `$USER`, else `user`).
    pub user: String,
    /// Home directory of the caller (`$HOME`, else the passwd entry).
    pub home: Utf8PathBuf,
    /// Current directory.
    pub cwd: Utf8PathBuf,
    /// Set when the launcher was started by root and now runs as the cell's account.
    pub run_as: Option<RunAs>,
}

/// How a root launcher became the account its cells run as.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// The field that chose the account (`cells.<name>.runAs`), for messages.
    pub field: String,
    /// The configuration root read before it dropped root: the account may not be able to
    /// read it, and it must not find a different one in the account's own directories.
    pub config: std::sync::Arc<(ConfigSource, ConfigFile)>,
    /// Root's own global git configuration files (path, contents), read before the drop:
    /// root's host git reads them in the worktree, so what they name there is protected.
    pub invoker_git: Vec<(Utf8PathBuf, String)>,
}

impl RunAs {
    /// Reads the invoking user's global git configuration files (before dropping root).
    #[must_use]
    pub fn read_invoker_git(host: &HostEnv) -> Vec<(Utf8PathBuf, String)> {
        host.git_global_config_files()
            .into_iter()
            .filter_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
            .collect()
    }
}

/// The name and home of `uid` in passwd-format `text` (the first line for it).
fn passwd_entry(text: &str, uid: u32) -> Option<(String, String)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && !f[0].is_empty() && f[2].parse::<u32>().ok() == Some(uid))
            .then(|| (f[0].to_owned(), f[5].to_owned()))
    })
}

/// Variables naming where the launcher keeps files: root's values are not the account's.
const LOCATION_VARS: [&str; 6] =
    ["HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"];

impl HostEnv {
    /// Reads the real host.
    ///
    /// # Errors
    /// When the current directory is not valid UTF-8 or cannot be read.
    pub fn capture() -> anyhow::Result<Self> {
        let vars: BTreeMap<String, String> =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        // /etc/passwd first (where NSS looks first on nearly every host, and one read instead
        // of NSS's nscd probes and nsswitch.conf), then NSS for accounts it lacks.
        let pw = passwd_entry(&crate::sys::read_text("/etc/passwd").unwrap_or_default(), uid).or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|p| (p.name, p.dir.to_string_lossy().into_owned()))
        });
        let user =
            pw.as_ref().map(|p| p.0.clone()).or_else(|| vars.get("USER").cloned()).unwrap_or_else(|| "user".to_owned());
        let home = vars
            .get("HOME")
            .filter(|h| h.starts_with('/'))
            .map(Utf8PathBuf::from)
            .or_else(|| pw.map(|p| Utf8PathBuf::from(p.1)))
            .unwrap_or_else(|| Utf8PathBuf::from("/"));
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let cwd = Utf8PathBuf::from_path_buf(cwd)
            .map_err(|p| anyhow::anyhow!("the current directory {} is not valid UTF-8", p.display()))?;
        Ok(Self { vars, uid, gid, user, home, cwd, run_as: None })
    }

    /// The host as `account` sees it, after a root launcher became that account: its
    /// passwd entry gives `USER`, `LOGNAME` and `HOME`, and root's `HOME`, `XDG_*_HOME` and
    /// `XDG_RUNTIME_DIR` are dropped, except where one names a directory the account owns
    /// (what an administrator who sets `HOME=/srv/agent` for `runAs = agent` means; root's
    /// own `/root` or `/run/user/0` never qualify). The runtime base is then
    /// `/tmp/cell-<uid>` unless such an `XDG_RUNTIME_DIR` was given.
    ///
    /// # Errors
    /// When the current directory cannot be read.
    pub fn for_account(root: &Self, account: &User, run_as: RunAs) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let mut vars = root.vars.clone();
        let uid = account.uid.as_raw();
        for k in LOCATION_VARS {
            let keep = vars.get(k).is_some_and(|v| {
                v.starts_with('/') && std::fs::metadata(v).is_ok_and(|m| m.is_dir() && m.uid() == uid)
            });
            if !keep {
                vars.remove(k);
            }
        }
        let home = match vars.get("HOME") {
            Some(h) => Utf8PathBuf::from(h),
            None => Utf8PathBuf::from_path_buf(account.dir.clone()).map_err(|p| {
                anyhow::anyhow!("the home directory {} of account {} is not UTF-8", p.display(), account.name)
            })?,
        };
        let usable =
            nix::unistd::access(home.as_std_path(), nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK);
        if let Err(e) = usable {
            return Err(anyhow::Error::from(Invalid::new(
                &run_as.field,
                format!("cells started by root run as account {}, whose home {home} it cannot use ({e})", account.name),
                format!(
                    "create it (mkdir -p {home} && chown {n}: {home}; useradd --create-home does this), or name another \
                     account in {f}",
                    n = account.name,
                    f = run_as.field
                ),
            )));
        }
        vars.insert("HOME".into(), home.to_string());
        vars.insert("USER".into(), account.name.clone());
        vars.insert("LOGNAME".into(), account.name.clone());
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let cwd = Utf8PathBuf::from_path_buf(cwd)
            .map_err(|p| anyhow::anyhow!("the current directory {} is not valid UTF-8", p.display()))?;
        Ok(Self { vars, uid, gid: account.gid.as_raw(), user: account.name.clone(), home, cwd, run_as: Some(run_as) })
    }

    /// Where the configuration comes from for this host: `--config`, `$CELL_CONFIG`, the
    /// user's, the system's, else the built-in one.
    #[must_use]
    pub fn config_source(&self, flag: Option<&camino::Utf8Path>) -> ConfigSource {
        crate::host::config::locate(flag, self.var("CELL_CONFIG"), &self.config_home())
    }

    /// The global git configuration files of the host user: `$GIT_CONFIG_GLOBAL`, else
    /// `~/.gitconfig` and `$XDG_CONFIG_HOME/git/config`.
    #[must_use]
    pub fn git_global_config_files(&self) -> Vec<Utf8PathBuf> {
        if let Some(g) = self.var("GIT_CONFIG_GLOBAL").filter(|v| !v.is_empty()) {
            return vec![Utf8PathBuf::from(g)];
        }
        vec![self.config_home().join("git/config"), self.home.join(".gitconfig")]
    }

    /// A host variable, if set.
    #[must_use]
    pub fn var(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }

    fn xdg(&self, var: &str, fallback: &str) -> Utf8PathBuf {
        match self.var(var) {
            Some(v) if v.starts_with('/') => Utf8PathBuf::from(v),
            _ => self.home.join(fallback),
        }
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    #[must_use]
    pub fn config_home(&self) -> Utf8PathBuf {
        self.xdg("XDG_CONFIG_HOME", ".config")
    }

    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    #[must_use]
    pub fn data_home(&self) -> Utf8PathBuf {
        self.xdg("XDG_DATA_HOME", ".local/share")
    }

    /// `$XDG_CACHE_HOME`, else `~/.cache`.
    #[must_use]
    pub fn cache_home(&self) -> Utf8PathBuf {
        self.xdg("XDG_CACHE_HOME", ".cache")
    }

    /// `$XDG_STATE_HOME`, else `~/.local/state`.
    #[must_use]
    pub fn state_home(&self) -> Utf8PathBuf {
        self.xdg("XDG_STATE_HOME", ".local/state")
    }

    /// Where per-launch runtime directories live: `$XDG_RUNTIME_DIR/cell`, else
    /// `/tmp/cell-<uid>` (created 0700 and checked to be ours before use). An
    /// `XDG_RUNTIME_DIR` that is not a real directory of this account with mode 0700, as the
    /// XDG spec wants it, is passed over: another user who could rename entries in it could
    /// swap the base for one of theirs between a check and bubblewrap's bind.
    #[must_use]
    pub fn runtime_base(&self) -> Utf8PathBuf {
        match self.runtime_dir().filter(|d| private_to(d, self.uid)) {
            Some(d) => d.join("cell"),
            None => Utf8PathBuf::from(format!("/tmp/cell-{}", self.uid)),
        }
    }

    /// `$XDG_RUNTIME_DIR` when set to an absolute path.
    #[must_use]
    pub fn runtime_dir(&self) -> Option<Utf8PathBuf> {
        self.var("XDG_RUNTIME_DIR").filter(|v| v.starts_with('/')).map(Utf8PathBuf::from)
    }

    /// Whether the caller is root on the host.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Whether `dir` is a real directory (no link) owned by `uid` that no one else may enter;
/// remembered per path and uid for the process (asked on every look at the runtime base).
fn private_to(dir: &camino::Utf8Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    static SEEN: std::sync::Mutex<Vec<(Utf8PathBuf, u32, bool)>> = std::sync::Mutex::new(Vec::new());
    if let Some(known) = SEEN.lock().ok().and_then(|s| s.iter().find(|(d, u, _)| d == dir && *u == uid).map(|e| e.2)) {
        return known;
    }
    let private = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0);
    if let Ok(mut s) = SEEN.lock() {
        s.push((dir.to_owned(), uid, private));
    }
    private
}

/// The account a root launcher runs cell `name` as: `runAs`, else [`DEFAULT_RUN_AS`];
/// refused when it does not exist or is uid 0.
///
/// # Errors
/// [`Invalid`] naming `cells.<name>.runAs` and saying what to create or set.
pub fn run_as_account(name: &str, run_as: Option<&str>) -> Result<User, Invalid> {
    let field = format!("cells.{name}.runAs");
    let account = run_as.unwrap_or(DEFAULT_RUN_AS);
    let create = format!("useradd --system --home-dir /var/lib/cell --create-home {account}");
    let found = User::from_name(account).map_err(|e| {
        Invalid::new(&field, format!("cannot look up account {account:?}: {e}"), "check /etc/passwd and NSS")
    })?;
    let Some(user) = found else {
        let message = if run_as.is_some() {
            format!("cell runs as root here, so it runs this cell as account {account:?}, which does not exist")
        } else {
            format!(
                "cell runs as root here, and a cell started by root must not be root on the host: it runs as the \
                 account `{field}` names, by default {account:?}, which does not exist"
            )
        };
        return Err(Invalid::new(
            &field,
            message,
            format!(
                "create it ({create}), set {field} to an existing unprivileged account, or run cell as your own user"
            ),
        ));
    };
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(Invalid::new(
            &field,
            format!(
                "account {account:?} has uid {} and gid {}: a cell never runs as uid 0 or gid 0",
                user.uid, user.gid
            ),
            format!("name an unprivileged account in {field}, e.g. one made by {create}"),
        ));
    }
    Ok(user)
}

/// Drops root for good: supplementary groups become the account's primary group alone (the
/// narrowest set: a group the account is also in is not carried into cells), then the real,
/// effective and saved group and user ids become the account's. Checks that root cannot be
/// regained.
///
/// # Errors
/// When a step fails or `setuid(0)` still succeeds afterwards.
pub fn become_account(user: &User) -> anyhow::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, setuid};
    let (uid, gid) = (user.uid, user.gid);
    setgroups(&[gid]).with_context(|| format!("cannot set the groups of account {}", user.name))?;
    setresgid(gid, gid, gid).with_context(|| format!("cannot become group {gid} of account {}", user.name))?;
    setresuid(uid, uid, uid).with_context(|| format!("cannot become account {} (uid {uid})", user.name))?;
    if setuid(Uid::from_raw(0)).is_ok()
        || nix::unistd::geteuid().is_root()
        || nix::unistd::getegid() == Gid::from_raw(0)
    {
        anyhow::bail!(
            "dropping root to account {} did not hold: root could be regained; not starting a cell",
            user.name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_dir_others_may_enter_or_a_link_is_passed_over() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(t.path()).unwrap();
        let mut h = HostEnv::capture().unwrap();
        let fallback = Utf8PathBuf::from(format!("/tmp/cell-{}", h.uid));
        let private = root.join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let open = root.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = root.join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        for (dir, base) in [(&private, private.join("cell")), (&open, fallback.clone()), (&link, fallback.clone())] {
            h.vars = [("XDG_RUNTIME_DIR".to_owned(), dir.to_string())].into_iter().collect();
            assert_eq!(h.runtime_base(), base, "{dir}");
        }
    }

    #[test]
    fn passwd_entries_are_found_by_uid() {
        let text =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbad line\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
                    alice2:x:1000:1000::/elsewhere:/bin/sh\n";
        assert_eq!(passwd_entry(text, 1000), Some(("alice".to_owned(), "/home/alice".to_owned())));
        assert_eq!(passwd_entry(text, 0), Some(("root".to_owned(), "/root".to_owned())));
        assert_eq!(passwd_entry(text, 4242), None);
        assert_eq!(passwd_entry("", 0), None);
    }
}
