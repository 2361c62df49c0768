//! What the launcher asks of `cell-init`: one typed [`InitSpec`], written by the host side
//! as JSON and read once by `cell-init --spec PATH`.
//!
//! pid 1 of every cell reads a [`InitSpec::Run`] from [`SPEC_FILE`] (a generated read-only
//! file): the command, its environment, the fragments before it, the bridges and refusal
//! ports, the job descriptor. The launcher's own tasks (`cell login`'s driver, `cell
//! selftest`'s probes) run as that command: `cell-init --spec TASK` with their spec in
//! [`TASK_FILE`]. Unknown fields are refused, so a launcher and a `cell-init` that disagree
//! about the spec say so instead of dropping a setting.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::contract::{Bridge, Fragment, LoginSpec, ProbeContext};

/// Where pid 1's spec is mounted inside every cell. bubblewrap itself runs with an empty
/// environment: variables meant for the cell (a loader path, say) must never steer a
/// program on the host, so the command's environment travels here.
pub const SPEC_FILE: &str = "/run/cell/init.json";

/// Where the spec of a launcher's task (see [`InitSpec::BrowserLogin`],
/// [`InitSpec::ProbeCatalog`]) is mounted in the cells that run one.
pub const TASK_FILE: &str = "/run/cell/task.json";

/// What one `cell-init --spec PATH` does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum InitSpec {
    /// Be pid 1 of the cell: set it up, run the command, supervise it.
    Run(Launch),
    /// `cell login`'s driver (the command of a login cell; see `crate::inside::browser`).
    BrowserLogin(LoginSpec),
    /// `cell selftest`'s in-cell cases (the command of a selftest cell).
    ProbeCatalog(ProbeRun),
}

/// The command pid 1 runs, and everything it sets up first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Launch {
    /// The command and its arguments; `argv[0]` as given (the command's own `argv[0]`).
    pub argv: Vec<String>,
    /// The file the plan's `PATH` search resolved `argv[0]` to, run instead of searching
    /// again (absent when `argv[0]` is a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Utf8PathBuf>,
    /// The command's complete environment (nothing else is inherited); `cell-init` and the
    /// fragments run with it too.
    pub env: BTreeMap<String, String>,
    /// Entrypoint fragments, in the order they run (see `crate::contract::ordered`).
    #[serde(default)]
    pub fragments: Vec<Fragment>,
    /// Loopback ports carried to sidecar sockets.
    #[serde(default)]
    pub bridges: Vec<Bridge>,
    /// Published ports: the cell's port and the inside path of the launcher's socket, which
    /// `cell-init` dials (see `crate::host::publish`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Bridge>,
    /// Proxy ports where every client is told that the network is off.
    #[serde(default)]
    pub refusals: Vec<u16>,
    /// With a terminal: the descriptor on which the launcher hears that the command stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_fd: Option<i32>,
    /// The launcher's go: `cell-init` reads one byte from this descriptor before it runs
    /// the fragments and the command, so the launcher can finish preparing the cell (the
    /// repository view) while bubblewrap builds it. End of file instead means the launcher
    /// gave up: `cell-init` exits without running anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_fd: Option<i32>,
    /// The cell's task limit where no cgroup carries it: `cell-init` sets it as its own
    /// `RLIMIT_NPROC` (soft and hard) before anything else, and the kernel (5.14 and later)
    /// counts it per uid in the cell's user namespace, i.e. the cell's tasks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
}

/// `cell selftest`'s probes: what the host tells them, and where their results go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeRun {
    /// Paths, ports and tokens of the host side.
    pub context: ProbeContext,
    /// The results file (one JSON line per case), in the worktree.
    pub results: Utf8PathBuf,
}

/// A spec that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// It cannot be read.
    #[error("cannot read the spec {path}: {source}")]
    Read {
        /// Where.
        path: Utf8PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a spec of this `cell-init`.
    #[error(
        "malformed spec {path}: {detail} (the launcher `cell` writes this file; are cell and cell-init from the \
         same build?)"
    )]
    Malformed {
        /// Where.
        path: Utf8PathBuf,
        /// The field and what is wrong with it.
        detail: String,
    },
}

impl InitSpec {
    /// The spec as `cell-init` reads it.
    ///
    /// # Errors
    /// When it is not JSON, has an unknown or missing field, or a value `cell-init` cannot
    /// use (an empty command, a bridge to port 0 or to a relative socket path).
    pub fn parse(text: &str, path: &Utf8Path) -> Result<Self, SpecError> {
        let malformed = |detail: String| SpecError::Malformed { path: path.to_owned(), detail };
        let de = &mut serde_json::Deserializer::from_str(text);
        let spec: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            malformed(if at == "." { inner.to_string() } else { format!("{at}: {inner}") })
        })?;
        if let Self::Run(launch) = &spec {
            launch.check().map_err(malformed)?;
        }
        Ok(spec)
    }

    /// Reads and parses the spec at `path`.
    ///
    /// # Errors
    /// See [`InitSpec::parse`].
    pub fn read(path: &Utf8Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// The spec as the launcher writes it.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Launch {
    /// What the types cannot say.
    fn check(&self) -> Result<(), String> {
        if self.argv.is_empty() {
            return Err("run.argv: the command is empty".to_owned());
        }
        for (i, b) in self.bridges.iter().enumerate() {
            if b.port == 0 || !b.socket.is_absolute() {
                return Err(format!("run.bridges[{i}]: need a non-zero port and an absolute socket path, not {b}"));
            }
        }
        if self.refusals.contains(&0) {
            return Err("run.refusals: port 0".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            tasks: Some(64),
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            program: Some("/bin/sh".into()),
            env: BTreeMap::from([("HOME".to_owned(), "/home/a".to_owned())]),
            bridges: vec![Bridge { port: 3128, socket: "/run/cell/sockets/egress.sock".into() }],
            refusals: vec![1080],
            job_fd: Some(9),
            ..Launch::default()
        }
    }

    #[test]
    fn a_spec_survives_its_own_json() {
        let spec = InitSpec::Run(launch());
        assert_eq!(InitSpec::parse(&spec.to_json(), SPEC_FILE.into()).unwrap(), spec);
        let task = InitSpec::ProbeCatalog(ProbeRun { results: "/w/r".into(), ..ProbeRun::default() });
        assert_eq!(InitSpec::parse(&task.to_json(), TASK_FILE.into()).unwrap(), task);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_naming_the_field() {
        let mut v: serde_json::Value = serde_json::from_str(&InitSpec::Run(launch()).to_json()).unwrap();
        v["run"]["bridge"] = serde_json::json!("3128=/x");
        let e = InitSpec::parse(&v.to_string(), SPEC_FILE.into()).unwrap_err().to_string();
        assert!(e.contains("malformed spec /run/cell/init.json") && e.contains("unknown field `bridge`"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(&InitSpec::Run(launch()).to_json()).unwrap();
        v["run"]["bridges"][0]["port"] = serde_json::json!(0);
        let e = InitSpec::parse(&v.to_string(), SPEC_FILE.into()).unwrap_err().to_string();
        assert!(e.contains("run.bridges[0]") && e.contains("0=/run/cell/sockets/egress.sock"), "{e}");
        v["run"]["bridges"][0] = serde_json::json!({"port": 3128, "socket": "rel.sock"});
        let e = InitSpec::parse(&v.to_string(), SPEC_FILE.into()).unwrap_err().to_string();
        assert!(e.contains("run.bridges[0]") && e.contains("absolute socket path"), "{e}");
        let e = InitSpec::parse(r#"{"run":{"argv":["x"],"env":{},"jobFd":"9"}}"#, SPEC_FILE.into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.jobFd"), "{e}");
        let e = InitSpec::parse(r#"{"verify":{}}"#, SPEC_FILE.into()).unwrap_err().to_string();
        assert!(e.contains("unknown variant `verify`"), "{e}");
        let e = InitSpec::parse(r#"{"run":{"argv":[],"env":{}}}"#, SPEC_FILE.into()).unwrap_err().to_string();
        assert!(e.contains("the command is empty"), "{e}");
    }
}
