//! What the launcher knows about the host: environment, identity, XDG directories.
//!
//! Captured once at start so planning is a pure function of it (and tests can fake it).

use std::collections::BTreeMap;

use camino::Utf8PathBuf;

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
}

impl HostEnv {
    /// Reads the real host.
    ///
    /// # Errors
    /// When the current directory is not valid UTF-8 or cannot be read.
    pub fn capture() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let vars: BTreeMap<String, String> =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let pw = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten();
        let user = pw
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| vars.get("USER").cloned())
            .unwrap_or_else(|| "user".to_owned());
        let home = vars
            .get("HOME")
            .filter(|h| h.starts_with('/'))
            .map(Utf8PathBuf::from)
            .or_else(|| pw.and_then(|p| Utf8PathBuf::from_path_buf(p.dir).ok()))
            .unwrap_or_else(|| Utf8PathBuf::from("/"));
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let cwd = Utf8PathBuf::from_path_buf(cwd)
            .map_err(|p| anyhow::anyhow!("the current directory {} is not valid UTF-8", p.display()))?;
        Ok(Self { vars, uid, gid, user, home, cwd })
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
    /// `/tmp/cell-<uid>` (created 0700 and checked to be ours before use).
    #[must_use]
    pub fn runtime_base(&self) -> Utf8PathBuf {
        match self.runtime_dir() {
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
