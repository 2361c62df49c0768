//! What the configuration declares beside the cell: user sidecars (`sidecars.<name>`: a host
//! command listening on a host loopback port) and host services (`ports.host`,
//! `--host-port`: a port already listening on the host). Both are reached the same way:
//! the launcher forwards a unix socket in the runtime directory to `127.0.0.1:PORT` on the
//! host, and `cell-init` bridges the in-cell port to that socket.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::Signal;

use super::{Readiness, SidecarSpec, Via};
use crate::host::config::{CellConfig, Invalid, SidecarConfig};
use crate::host::hostenv::HostEnv;
use crate::host::plan::PlanError;

/// Where a launch's declared sidecars live.
pub struct Places<'a> {
    /// Cell name.
    pub cell: &'a str,
    /// The launch's runtime directory.
    pub runtime: &'a Utf8Path,
    /// The cell's state directory (the sidecars' logs).
    pub state: &'a Utf8Path,
}

/// The specs of the cell's declared sidecars, then of its host services (`ports.host`, then
/// `--host-port`). `egress` is the launch's egress sidecar, if any (for `via`).
///
/// # Errors
/// When a command is not found on the host, a `via` names no running sidecar, or a
/// `--host-port` is unusable.
pub fn specs(
    cell: &CellConfig,
    flagged_ports: &[u16],
    host: &HostEnv,
    at: &Places<'_>,
    egress: Option<&SidecarSpec>,
) -> Result<Vec<SidecarSpec>, PlanError> {
    let mut out = Vec::new();
    for (name, s) in &cell.sidecars {
        out.push(sidecar(name, s, host, at, egress)?);
    }
    let taken: Vec<u16> =
        out.iter().flat_map(|s| s.ports.iter().copied()).chain(cell.ports.host.iter().copied()).collect();
    for p in flagged_ports {
        if *p == 0 || super::RESERVED_PORTS.contains(p) {
            return Err(Invalid::new(
                format!("--host-port {p}"),
                format!("{p} cannot be a host service's port inside the cell (0, or the egress proxy's)"),
                "give another port",
            )
            .into());
        }
        if taken.contains(p) && !cell.ports.host.contains(p) {
            return Err(Invalid::new(
                format!("--host-port {p}"),
                format!("port {p} inside the cell is already a declared sidecar's"),
                "give another port, or change the sidecar's `cellPort`",
            )
            .into());
        }
    }
    let mut ports: Vec<u16> = cell.ports.host.clone();
    for p in flagged_ports {
        if !ports.contains(p) {
            ports.push(*p);
        }
    }
    out.extend(ports.into_iter().map(|p| host_service(p, at.runtime)));
    Ok(out)
}

/// A host service: nothing started, the in-cell port forwarded to the same host port.
fn host_service(port: u16, runtime: &Utf8Path) -> SidecarSpec {
    SidecarSpec {
        name: format!("host-{port}"),
        command: Vec::new(),
        env: BTreeMap::new(),
        secret_env: BTreeMap::new(),
        socket: runtime.join(super::SOCKETS).join(format!("host-{port}.sock")),
        forward_to: Some(port),
        ready: Readiness::None,
        ports: vec![port],
        cell_env: BTreeMap::new(),
        cell_files: Vec::new(),
        via: None,
        reload_signal: None,
        stop_signal: Signal::SIGTERM,
        files: Vec::new(),
        log: None,
    }
}

fn sidecar(
    name: &str,
    s: &SidecarConfig,
    host: &HostEnv,
    at: &Places<'_>,
    egress: Option<&SidecarSpec>,
) -> Result<SidecarSpec, PlanError> {
    let field = format!("cells.{}.sidecars.{name}", at.cell);
    let mut command = s.command.clone();
    command[0] = program(&command[0], host).map_err(|passed| {
        let why = match passed {
            Some(p) => format!(
                "is found on the host's PATH only at {p}, which an account other than root can replace (a cell \
                 could have put it there, and it runs on the host)"
            ),
            None => "is not found on the host's PATH (outside the worktree and the cell homes)".to_owned(),
        };
        Invalid::new(
            format!("{field}.command"),
            format!("{:?} {why}", s.command[0]),
            "give its absolute path (naming it is choosing it), or install it where only root writes",
        )
    })?;
    let via = match s.via.as_deref() {
        None => None,
        Some(v) => match egress {
            Some(e) if e.name == v => Some(Via { sidecar: e.name.clone(), socket: e.socket.clone() }),
            _ => {
                return Err(Invalid::new(
                    format!("{field}.via"),
                    "the cell has no egress proxy to dial out through (its network mode is `none`)",
                    "set network.mode to \"proxy\" (or run with --network proxy), or remove `via`",
                )
                .into())
            }
        },
    };
    let mut env = s.env.clone();
    env.entry("HOME".to_owned()).or_insert_with(|| host.home.to_string());
    Ok(SidecarSpec {
        name: name.to_owned(),
        command,
        env,
        secret_env: s.env_from_file.clone(),
        socket: at.runtime.join(super::SOCKETS).join(format!("sidecar-{name}.sock")),
        forward_to: Some(s.port),
        ready: if s.ready_fd { Readiness::Fd } else { Readiness::Port },
        ports: vec![s.cell_port.unwrap_or(s.port)],
        cell_env: BTreeMap::new(),
        cell_files: s
            .cell_files
            .iter()
            .map(|(dst, src)| super::CellFile { src: src.clone(), dst: dst.clone() })
            .collect(),
        via,
        reload_signal: None,
        stop_signal: Signal::SIGTERM,
        files: Vec::new(),
        log: Some(at.state.join(format!("sidecar-{name}.log"))),
    })
}

/// A sidecar's program as an absolute host path: as given, or the first on the host's
/// `PATH` that only root can replace, outside the places a cell can write
/// ([`crate::host::tools::trusted_on_path`]; the plan's own check then covers every
/// writable mount). `Err` names a program passed over for its owner.
fn program(given: &str, host: &HostEnv) -> Result<String, Option<Utf8PathBuf>> {
    if given.starts_with('/') {
        return Ok(given.to_owned());
    }
    if given.contains('/') {
        return Err(None);
    }
    let skip: Vec<Utf8PathBuf> = crate::host::tools::presumed_writable(host);
    crate::host::tools::trusted_on_path(host, given, &skip).map(String::from)
}
