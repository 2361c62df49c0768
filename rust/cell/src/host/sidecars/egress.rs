//! The egress sidecar (`cell-egress`): the proxy that is the only way out of a proxied
//! cell. Its spec: the command, the policy file (rewritten on reload, then SIGHUP), the
//! proxy ports inside and the proxy variables it contributes to the cell's environment.

use std::collections::BTreeMap;

use camino::Utf8Path;
use nix::sys::signal::Signal;

use super::{HostFile, Readiness, SidecarSpec};
use crate::contract::{HTTP_PROXY_PORT, SOCKS_PORT};
use crate::host::plan::{LaunchNetwork, Overrides, EXTRA_ALLOW_FILE, POLICY_FILE};

/// Its name, in the plan and in file names (`egress.pid`, `egress.log`).
pub const NAME: &str = "egress";

/// What the egress sidecar of a launch needs to know.
pub struct EgressLaunch<'a> {
    /// The `cell-egress` program.
    pub program: &'a Utf8Path,
    /// Cell name (recorded in every audit line).
    pub cell: &'a str,
    /// The launch's runtime directory.
    pub runtime: &'a Utf8Path,
    /// The cell's state directory (audit log, sidecar log).
    pub state: &'a Utf8Path,
    /// The policy it starts with.
    pub policy: &'a cell_egress::policy::PolicyFile,
    /// Whether the cell also gets SOCKS5.
    pub socks: bool,
    /// The launch's own network choices, recorded for `cell net reload`.
    pub overrides: &'a Overrides,
}

/// The spec of the egress sidecar of a proxied launch.
#[must_use]
pub fn spec(l: &EgressLaunch<'_>) -> SidecarSpec {
    let socket = l.runtime.join(super::SOCKETS).join("egress.sock");
    let policy_path = l.runtime.join(POLICY_FILE);
    let audit = audit_log(l.state);
    let contents = serde_json::to_string_pretty(l.policy).unwrap_or_default() + "\n";
    let record = LaunchNetwork {
        allow: l.overrides.allow.clone(),
        network: l.overrides.network,
        agent: l.overrides.agent.as_ref().map(|(k, _)| *k),
    };
    SidecarSpec {
        name: NAME.to_owned(),
        command: vec![
            l.program.to_string(),
            "--listen".into(),
            socket.to_string(),
            "--policy".into(),
            policy_path.to_string(),
            "--audit".into(),
            audit.to_string(),
            "--cell".into(),
            l.cell.to_owned(),
            "--ready-fd".into(),
            "3".into(),
        ],
        env: BTreeMap::new(),
        secret_env: BTreeMap::new(),
        socket,
        forward_to: None,
        ready: Readiness::Fd,
        ports: ports(l.socks),
        cell_env: environment(l.socks),
        cell_files: Vec::new(),
        via: None,
        reload_signal: Some(Signal::SIGHUP),
        stop_signal: Signal::SIGTERM,
        files: vec![
            HostFile { path: policy_path, contents },
            HostFile {
                path: l.runtime.join(EXTRA_ALLOW_FILE),
                contents: serde_json::to_string(&record).unwrap_or_default() + "\n",
            },
        ],
        log: Some(l.state.join("egress.log")),
    }
}

/// The audit log of every egress decision of a cell.
#[must_use]
pub fn audit_log(state: &Utf8Path) -> camino::Utf8PathBuf {
    state.join("egress.jsonl")
}

/// The in-cell proxy ports: HTTP, and SOCKS5 when enabled.
#[must_use]
pub fn ports(socks: bool) -> Vec<u16> {
    let mut ports = vec![HTTP_PROXY_PORT];
    if socks {
        ports.push(SOCKS_PORT);
    }
    ports
}

/// The proxy variables, in both cases, pointing at `cell-init`'s bridges (or, without
/// network, at its refusals).
#[must_use]
pub fn environment(socks: bool) -> BTreeMap<String, String> {
    let http = format!("http://127.0.0.1:{HTTP_PROXY_PORT}");
    let all = if socks { format!("socks5h://127.0.0.1:{SOCKS_PORT}") } else { http.clone() };
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("HTTP_PROXY", http.as_str()),
        ("HTTPS_PROXY", http.as_str()),
        ("ALL_PROXY", all.as_str()),
        ("NO_PROXY", "localhost,127.0.0.1,::1"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
        env.insert(k.to_ascii_lowercase(), v.to_owned());
    }
    env
}
