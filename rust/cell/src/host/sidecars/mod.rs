//! Sidecars: host-side processes the launcher starts for one cell before it and stops after
//! it, each reachable from inside only through a unix socket in the launch's runtime
//! directory that `cell-init` bridges to in-cell loopback ports (never through a route).
//!
//! A sidecar is plain data in the plan, a [`SidecarSpec`]; the launcher's start, stop,
//! reload and status ([`start`], [`control`]) are generic over the list. One file per
//! built-in sidecar ([`egress`]), and [`user`] for what the configuration declares (user
//! sidecars and host services, which the launcher reaches with the same forwarder,
//! [`forward`]).

pub mod control;
pub mod egress;
pub mod forward;
mod start;
pub mod user;

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::contract::SOCKETS_DIR;
use crate::host::config::{CellConfig, Invalid};

pub use start::{start, Running};

/// The directory under the runtime directory bound into the cell (read-only) at
/// [`SOCKETS_DIR`]: the sidecars' sockets, and nothing else.
pub const SOCKETS: &str = "sockets";

/// The control socket of a launch, in its runtime directory: never under [`SOCKETS`], so
/// never inside the cell.
pub const CONTROL_SOCKET: &str = "control.sock";

/// The variable that hands a sidecar the socket of the sidecar it dials out through.
pub const VIA_ENV: &str = "CELL_VIA_SOCKET";

/// One sidecar of a launch, as the plan shows it (`cell plan --json`): secrets appear as
/// the paths they are read from, never as values.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Short name (`egress`, a declared sidecar's name, `host-PORT` for a host service).
    pub name: String,
    /// The host command line. Empty for a host service: nothing is started, the launcher
    /// only forwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Its environment (besides `PATH`, `HOME`, `LANG`); nothing else is inherited.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables of its environment read at launch from host files (the value is never in
    /// the plan, on a command line, or inside the cell).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, Utf8PathBuf>,
    /// Host path of the socket `cell-init` bridges its ports to (inside: under
    /// [`SOCKETS_DIR`]).
    pub socket: Utf8PathBuf,
    /// The host loopback TCP port the launcher forwards `socket` to (a user sidecar, a host
    /// service). Absent: the sidecar listens on `socket` itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_to: Option<u16>,
    /// How the launcher knows it is ready; the cell starts only then.
    pub ready: Readiness,
    /// In-cell loopback ports bridged to `socket`.
    pub ports: Vec<u16>,
    /// Variables it contributes to the cell's environment (the proxy variables of egress).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cell_env: BTreeMap<String, String>,
    /// Host files it contributes to the cell, bound read-only (a CA certificate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cell_files: Vec<CellFile>,
    /// The sidecar it dials out through, whose socket it is handed in [`VIA_ENV`] (so the
    /// allowlist applies to what it sends out too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// Sent to it on `reload` over the control socket (after its files are rewritten).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "signal_name_opt")]
    pub reload_signal: Option<Signal>,
    /// Sent to stop it when the cell ends (it is killed after a grace period).
    #[serde(serialize_with = "signal_name")]
    pub stop_signal: Signal,
    /// Host files written before it starts (its configuration).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<HostFile>,
    /// Where its standard error goes (in the cell's state directory); absent when nothing
    /// is started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Utf8PathBuf>,
}

/// How the launcher learns that a sidecar is ready.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// The `--ready-fd` protocol: descriptor 3 is a pipe; `ready` on it, then end of file
    /// (see `cell_egress::sidecar`).
    Fd,
    /// Its host loopback port ([`SidecarSpec::forward_to`]) accepts a connection.
    Port,
    /// Nothing is started (a host service): ready at once.
    None,
}

/// A host file bound read-only into the cell.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CellFile {
    /// Host path (the sidecar writes it before it reports ready).
    pub src: Utf8PathBuf,
    /// Path inside the cell.
    pub dst: Utf8PathBuf,
}

/// The sidecar another one dials out through.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Via {
    /// Its name (`egress`).
    pub sidecar: String,
    /// Its socket on the host, handed over in [`VIA_ENV`].
    pub socket: Utf8PathBuf,
}

/// A file the launcher writes on the host before a sidecar starts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HostFile {
    /// Host path.
    pub path: Utf8PathBuf,
    /// Contents.
    pub contents: String,
}

// serde's `serialize_with` hands over a reference to the field.
#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's serialize_with signature")]
fn signal_name<S: serde::Serializer>(s: &Signal, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

#[expect(clippy::ref_option, clippy::trivially_copy_pass_by_ref, reason = "serde's serialize_with signature")]
fn signal_name_opt<S: serde::Serializer>(s: &Option<Signal>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_str(s.as_str()),
        None => ser.serialize_none(),
    }
}

/// The in-cell ports `cell-init` bridges, as `PORT=SOCKET` (the socket as the cell sees it).
#[must_use]
pub fn bridges(sidecars: &[SidecarSpec]) -> Vec<crate::contract::Bridge> {
    sidecars
        .iter()
        .flat_map(|s| {
            let inside = Utf8Path::new(SOCKETS_DIR).join(s.socket.file_name().unwrap_or("sock"));
            s.ports.iter().map(move |p| crate::contract::Bridge { port: *p, socket: inside.clone().into() })
        })
        .collect()
}

/// Host trees of system files, bound read-only into cells (see `plan::host_system_mounts`).
const SYSTEM_TREES: [&str; 10] =
    ["/usr", "/nix/store", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/run/current-system", "/proc/sys"];

/// Refuses a plan whose mounts would show the cell a launchers' runtime base: the sockets
/// of every launch there (sidecars, published ports, control sockets), the live records and
/// what launches keep there and trust (the cell's `/etc` trees, the kept system mounts). A
/// read-only bind is enough to `connect()` to a socket, so any bind counts. Besides this
/// launch's base, the others launches of the same account may use count too
/// (`/tmp/cell-UID` without `XDG_RUNTIME_DIR`, `/run/user/UID/cell` with the usual one): a
/// cell that could write one could plant what they trust.
///
/// # Errors
/// When a mount's source contains a runtime base or lies inside one.
pub fn refuse_visible_runtime(
    plan: &crate::host::plan::Plan,
    host: &crate::host::hostenv::HostEnv,
) -> Result<(), crate::host::plan::PlanError> {
    use crate::host::plan::Mount;
    refuse_writable_state(plan, host)?;
    let current = host.runtime_base();
    let mut bases = vec![current.clone()];
    for other in [format!("/tmp/cell-{}", host.uid), format!("/run/user/{}/cell", host.uid)] {
        let other = Utf8PathBuf::from(other);
        if !bases.contains(&other) {
            bases.push(other);
        }
    }
    let bases: Vec<(Utf8PathBuf, Utf8PathBuf)> = bases.into_iter().map(|b| (real(&b), b)).collect();
    // The host's system trees (most of the mounts) hold no runtime base and no link the cell
    // planted: their names are compared as they are, without a walk of each.
    let system = |p: &Utf8Path| SYSTEM_TREES.iter().any(|d| crate::host::plan::within(p.as_str(), d));
    let any_in_system = bases.iter().any(|(r, _)| system(r));
    for m in &plan.mounts {
        let (Mount::Bind { src, dst } | Mount::RoBind { src, dst }) = m else { continue };
        // The launch's own sockets directory, which is the cell's to see.
        if dst == SOCKETS_DIR && plan.runtime_dir.as_ref().is_some_and(|r| *src == r.join(SOCKETS)) {
            continue;
        }
        let src_real = if system(src) && !any_in_system { src.clone() } else { real(src) };
        let Some((_, base)) = bases.iter().find(|(base_real, base)| {
            [(base, src), (base_real, &src_real)]
                .iter()
                .any(|(b, s)| b.starts_with(s.as_path()) || s.starts_with(b.as_path()))
        }) else {
            continue;
        };
        let (what, fix) = if *base == current {
            (
                "the launchers' runtime directory (the control and sidecar sockets of every running cell)".to_owned(),
                "bind a narrower path, or set XDG_RUNTIME_DIR to a directory no cell sees (cell uses $XDG_RUNTIME_DIR/cell, else /tmp/cell-UID)".to_owned(),
            )
        } else {
            (
                "the runtime directory of this account's launches in other sessions (their sockets, and files they trust)".to_owned(),
                format!("work in, or bind, a directory narrower than {}", base.parent().unwrap_or(base)),
            )
        };
        return Err(crate::host::config::Invalid::new(
            "binds",
            format!("{src} would show the cell {base}, {what}"),
            fix,
        )
        .into());
    }
    Ok(())
}

/// `p` with its links resolved; a path that does not exist yet through its nearest existing
/// ancestor.
fn real(p: &Utf8Path) -> Utf8PathBuf {
    let mut head = p.to_owned();
    let mut tail = Vec::new();
    while !head.exists() {
        let Some(name) = head.file_name().map(str::to_owned) else { break };
        tail.push(name);
        if !head.pop() {
            break;
        }
    }
    let mut out = crate::sys::canonical_utf8(&head).unwrap_or(head);
    out.extend(tail.iter().rev());
    out
}

/// Refuses a plan whose writable mounts (the worktree, `rw` binds) would let the cell
/// change what the launcher keeps and trusts: its config, state (containment records, git
/// views), data (the cell homes: a cell's own home is its to write, another's is not) and
/// cache (the bubblewrap feature cache) directories. A worktree of `~/.local` or `~/.cache`,
/// or an `XDG_STATE_HOME` inside the worktree, would otherwise let a cell forge records that
/// a later launch acts on.
///
/// # Errors
/// When a writable mount's source contains one of them or lies inside one.
fn refuse_writable_state(
    plan: &crate::host::plan::Plan,
    host: &crate::host::hostenv::HostEnv,
) -> Result<(), crate::host::plan::PlanError> {
    use crate::host::plan::Mount;
    let kept = [
        (host.config_home().join("cell"), "config"),
        (host.state_home().join("cell"), "state"),
        (host.data_home().join("cell"), "data (the cell homes)"),
        (host.cache_home().join("cell"), "cache"),
    ];
    let kept: Vec<(Utf8PathBuf, Utf8PathBuf, &str)> = kept.into_iter().map(|(d, w)| (real(&d), d, w)).collect();
    let own_home = real(&plan.home);
    for m in &plan.mounts {
        let Mount::Bind { src, .. } = m else { continue };
        // This launch's own git directory (made new for it), the cell's to write.
        if plan.git.as_ref().is_some_and(|g| g.private == *src) {
            continue;
        }
        let src_real = real(src);
        // The cell's own home, and what lies in it.
        if src_real.starts_with(&own_home) {
            continue;
        }
        let hit = kept.iter().find(|(d_real, d, _)| {
            [(d, src), (d_real, &src_real)]
                .iter()
                .any(|(d, s)| d.starts_with(s.as_path()) || s.starts_with(d.as_path()))
        });
        if let Some((_, d, what)) = hit {
            return Err(crate::host::config::Invalid::new(
                "binds",
                format!("{src}, which this cell can write, would let it change {d}, cell's own {what} directory, which later launches trust"),
                "work in, or bind read-write, a directory that does not hold it (and keep XDG_CONFIG_HOME, XDG_STATE_HOME, XDG_DATA_HOME and XDG_CACHE_HOME out of the worktree)",
            )
            .into());
        }
    }
    Ok(())
}

/// The runtime directory of a launch of cell `name` by this process.
#[must_use]
pub fn runtime_dir(host: &crate::host::hostenv::HostEnv, name: &str) -> Utf8PathBuf {
    host.runtime_base().join(format!("{name}-{}", std::process::id()))
}

/// In-cell ports no declared sidecar or host service may take: the proxy's.
const RESERVED_PORTS: [u16; 2] = [crate::contract::HTTP_PROXY_PORT, crate::contract::SOCKS_PORT];

/// Checks `sidecars` and `ports` of a cell: names, commands, variables, ports (each in-cell
/// port taken once, none of the proxy's).
pub(crate) fn validate(cell: &CellConfig, at: &str, errs: &mut Vec<Invalid>) {
    use crate::host::config::{absolute, env_name, no_nul};
    let mut taken: BTreeMap<u16, String> = BTreeMap::new();
    let mut take = |port: u16, field: String, errs: &mut Vec<Invalid>| {
        if port == 0 {
            errs.push(Invalid::new(field, "port 0 is not a port", "give a TCP port from 1 to 65535"));
        } else if RESERVED_PORTS.contains(&port) {
            errs.push(Invalid::new(
                field,
                format!("port {port} inside the cell is the egress proxy's"),
                "pick another in-cell port (set `cellPort` for a sidecar)",
            ));
        } else if let Some(first) = taken.get(&port) {
            errs.push(Invalid::new(
                field,
                format!("port {port} inside the cell is already taken by {first}"),
                "give each sidecar and host service its own in-cell port",
            ));
        } else {
            taken.insert(port, field);
        }
    };
    let mut files: BTreeMap<&Utf8Path, String> = BTreeMap::new();
    for (name, s) in &cell.sidecars {
        let field = format!("{at}.sidecars.{name}");
        if let Err(m) = sidecar_name(name) {
            errs.push(Invalid::new(
                &field,
                m,
                "use lowercase letters, digits and `-`, starting with a letter, at most 32 characters",
            ));
        }
        if s.command.first().is_none_or(String::is_empty) {
            errs.push(Invalid::new(
                format!("{field}.command"),
                "the command is empty",
                "give the host program and its arguments, e.g. [\"/usr/bin/python3\", \"/srv/mcp.py\"]",
            ));
        }
        errs.extend(no_nul(&format!("{field}.command"), s.command.iter().map(String::as_str)).err());
        for (k, v) in &s.env {
            errs.extend(env_name(&format!("{field}.env.{k}"), k).err());
            errs.extend(no_nul(&format!("{field}.env.{k}"), [v.as_str()]).err());
        }
        for (k, p) in &s.env_from_file {
            errs.extend(env_name(&format!("{field}.envFromFile.{k}"), k).err());
            errs.extend(absolute(&format!("{field}.envFromFile.{k}"), p).err());
        }
        if s.port == 0 {
            errs.push(Invalid::new(
                format!("{field}.port"),
                "port 0 is not a port",
                "give the host TCP port it listens on",
            ));
        }
        let (port, port_field) = match s.cell_port {
            Some(p) => (p, format!("{field}.cellPort")),
            None => (s.port, format!("{field}.port")),
        };
        if port != 0 || s.cell_port.is_some() {
            take(port, port_field, errs);
        }
        validate_cell_files(&field, &s.cell_files, &mut files, errs);
        if let Some(v) = &s.via {
            if v != egress::NAME {
                errs.push(Invalid::new(
                    format!("{field}.via"),
                    format!("{v:?} is not a sidecar it can dial out through"),
                    "write \"egress\" (the egress proxy), or remove `via`",
                ));
            }
        }
    }
    for (i, port) in cell.ports.host.iter().enumerate() {
        take(*port, format!("{at}.ports.host[{i}]"), errs);
    }
}

/// Where inside no sidecar's file may go: the system's programs and libraries (a cell file
/// is data, a certificate or a config file, never code the cell would run).
const SYSTEM_PLACES: [&str; 8] = ["/usr", "/nix", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Checks the `cellFiles` of one sidecar (`field`): both paths absolute, the inside path
/// not one cell owns nor among the system's programs, and each inside path taken once
/// across the cell's sidecars (`taken`).
fn validate_cell_files<'a>(
    field: &str,
    cell_files: &'a BTreeMap<Utf8PathBuf, Utf8PathBuf>,
    taken: &mut BTreeMap<&'a Utf8Path, String>,
    errs: &mut Vec<Invalid>,
) {
    use crate::host::config::{absolute, reserved_destination};
    for (dst, src) in cell_files {
        let at = format!("{field}.cellFiles.{dst}");
        if let Err(e) = absolute(&at, dst) {
            errs.push(e);
            continue;
        }
        errs.extend(absolute(&at, src).err());
        errs.extend(reserved_destination(&at, dst).err());
        if let Some(place) = SYSTEM_PLACES.iter().find(|p| crate::host::plan::within(dst.as_str(), p)) {
            errs.push(Invalid::new(
                &at,
                format!("{dst} lies in {place}, the system's programs and libraries"),
                "put the file elsewhere, e.g. under /etc (\"/etc/ssl/sidecar-ca.pem\")",
            ));
        }
        if let Some(first) = taken.get(dst.as_path()) {
            errs.push(Invalid::new(
                &at,
                format!("{dst} inside the cell is already {first}"),
                "give each sidecar file its own path inside the cell",
            ));
        } else {
            taken.insert(dst, at);
        }
    }
}

/// Checks the files the sidecars contribute against the rest of the plan, before they are
/// bound: the host file must not lie where the cell can write (it would choose what it
/// reads as, say, a trusted certificate), and the inside path must not replace or cover
/// anything cell puts there (a mount, a generated file) or lie where its mount point would
/// be made on the host (a read-write mount) or cannot be made (a read-only bind that lacks
/// the file: bubblewrap creates mount points as it goes, and a read-only bind refuses).
///
/// # Errors
/// Naming the sidecar's field and the fix.
pub(crate) fn check_cell_files(
    cell: &str,
    sidecars: &[SidecarSpec],
    mounts: &[crate::host::plan::Mount],
    generated: &[&Utf8Path],
) -> Result<(), crate::host::plan::PlanError> {
    use crate::host::plan::{within, Mount};
    let writable = crate::host::plan::writable_sources(mounts);
    for s in sidecars {
        for f in &s.cell_files {
            let at = format!("cells.{cell}.sidecars.{}.cellFiles.{}", s.name, f.dst);
            let refuse = |m: String, fix: &str| Err(Invalid::new(&at, m, fix).into());
            let real = crate::sys::canonical_utf8(&f.src).unwrap_or_else(|_| f.src.clone());
            if let Some(w) =
                writable.iter().find(|w| within(f.src.as_str(), w.as_str()) || within(real.as_str(), w.as_str()))
            {
                return refuse(
                    format!("the host file {} lies in {w}, where the cell can write", f.src),
                    "keep the file outside the worktree, the cell home and every read-write bind",
                );
            }
            let d = f.dst.as_str();
            if let Some(m) =
                mounts.iter().map(Mount::dst).chain(generated.iter().copied()).find(|m| within(m.as_str(), d))
            {
                return refuse(
                    format!("{m} inside the cell is already cell's own (a mount or a file it makes)"),
                    "give the file a path of its own, e.g. \"/etc/ssl/sidecar-ca.pem\"",
                );
            }
            // The deepest mount the file would lie in (none: the cell's own root).
            let holder =
                mounts.iter().filter(|m| within(d, m.dst().as_str())).max_by_key(|m| m.dst().components().count());
            match holder {
                Some(Mount::Bind { dst, .. }) => {
                    return refuse(
                        format!(
                            "{} lies in {dst}, a read-write mount: its mount point would be made on the host",
                            f.dst
                        ),
                        "put the file outside the worktree, the home and read-write binds",
                    )
                }
                Some(Mount::RoBind { src, dst }) => {
                    let host = src.join(f.dst.strip_prefix(dst).unwrap_or(Utf8Path::new("")));
                    if !std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_file()) {
                        return refuse(
                            format!("{} lies in the read-only bind {dst}, where {host} is no file to cover, and bubblewrap cannot make one there", f.dst),
                            "put the file outside that bind (e.g. directly under /etc), or at a file the host has there",
                        );
                    }
                }
                Some(Mount::Symlink { dst, .. } | Mount::Dev { dst } | Mount::Proc { dst }) => {
                    return refuse(
                        format!("{} lies under {dst}, which cell makes itself", f.dst),
                        "put the file elsewhere, e.g. under /etc",
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks a sidecar name: it becomes part of file names.
fn sidecar_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty()
        || name.len() > 32
        || !name.chars().all(ok_char)
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(format!("{name:?} is not a sidecar name"));
    }
    if name == egress::NAME || name.starts_with("host-") {
        return Err(format!("{name:?} is taken by cell's own sidecars (`egress`, `host-PORT`)"));
    }
    Ok(())
}

/// Blocks every signal in the calling thread while `f` runs, so the threads it starts do
/// too (a thread inherits its creator's mask): the launcher's signals must reach its
/// signalfd, never a helper thread.
pub(crate) fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old)).is_ok();
    let out = f();
    if blocked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cell: &str) -> String {
        let text = format!(r#"{{"schemaVersion":1,"cells":{{"a":{cell}}}}}"#);
        crate::host::config::parse(&text, "t.json").map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn declared_sidecars_and_host_ports_are_checked_with_their_field() {
        let ok = r#"{"schemaVersion":1,"cells":{"a":{"sidecars":{"db":{"command":["pg"],"port":5433,"cellPort":5432,"envFromFile":{"PW":"/run/secrets/pw"}}},"ports":{"host":[11434]}}}}"#;
        crate::host::config::parse(ok, "t").unwrap();
        let e = err(r#"{"sidecars":{"Bad_Name":{"command":["x"],"port":1}}}"#);
        assert!(e.contains("cells.a.sidecars.Bad_Name") && e.contains("not a sidecar name"), "{e}");
        let e = err(r#"{"sidecars":{"egress":{"command":["x"],"port":1}}}"#);
        assert!(e.contains("cells.a.sidecars.egress") && e.contains("taken"), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":[],"port":1}}}"#);
        assert!(e.contains("cells.a.sidecars.s.command") && e.contains("empty"), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":["x"],"port":0}}}"#);
        assert!(e.contains("cells.a.sidecars.s.port"), "{e}");
        let e = err(
            r#"{"sidecars":{"s":{"command":["x"],"port":1,"cellFiles":{"/usr/lib/ca.pem":"/x","/etc/a.pem":"rel","/dev/x":"/x"}}}}"#,
        );
        assert!(e.contains("cells.a.sidecars.s.cellFiles./usr/lib/ca.pem") && e.contains("system's programs"), "{e}");
        assert!(e.contains("cells.a.sidecars.s.cellFiles./etc/a.pem") && e.contains("relative path"), "{e}");
        assert!(e.contains("cells.a.sidecars.s.cellFiles./dev/x") && e.contains("managed by cell itself"), "{e}");
        let e = err(
            r#"{"sidecars":{"s":{"command":["x"],"port":1,"cellFiles":{"/etc/a.pem":"/x"}},"t":{"command":["x"],"port":2,"cellFiles":{"/etc/a.pem":"/y"}}}}"#,
        );
        assert!(e.contains("cells.a.sidecars.t.cellFiles./etc/a.pem") && e.contains("already"), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":["x"],"port":9,"cellPort":3128}}}"#);
        assert!(e.contains("cells.a.sidecars.s.cellPort") && e.contains("egress proxy's"), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":["x"],"port":9}},"ports":{"host":[9]}}"#);
        assert!(e.contains("cells.a.ports.host[0]") && e.contains("taken by cells.a.sidecars.s.port"), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":["x"],"port":9,"via":"tls"}}}"#);
        assert!(e.contains("cells.a.sidecars.s.via") && e.contains("write \"egress\""), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":["x"],"port":9,"envFromFile":{"K":"rel"}}}}"#);
        assert!(e.contains("cells.a.sidecars.s.envFromFile.K") && e.contains("relative"), "{e}");
        let e = err(r#"{"sidecars":{"s":{"command":["x"],"port":9,"prot":1}}}"#);
        assert!(e.contains("cells.a.sidecars.s") && e.contains("unknown field `prot`"), "{e}");
        let e = err(r#"{"ports":{"host":[1080, 0]}}"#);
        assert!(e.contains("cells.a.ports.host[0]") && e.contains("cells.a.ports.host[1]"), "{e}");
    }

    #[test]
    fn bridges_name_each_port_and_the_socket_inside() {
        let mut spec = egress::spec(&egress::EgressLaunch {
            program: Utf8Path::new("/usr/bin/cell-egress"),
            cell: "c",
            runtime: Utf8Path::new("/run/user/1/cell/c-7"),
            state: Utf8Path::new("/s"),
            policy: &cell_egress::policy::PolicyFile::default(),
            socks: true,
            overrides: &crate::host::plan::Overrides::default(),
        });
        assert_eq!(
            bridges(std::slice::from_ref(&spec)).iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["3128=/run/cell/sockets/egress.sock", "1080=/run/cell/sockets/egress.sock"]
        );
        assert_eq!(spec.cell_env["HTTPS_PROXY"], "http://127.0.0.1:3128");
        assert_eq!(spec.cell_env["all_proxy"], "socks5h://127.0.0.1:1080");
        spec.ports = vec![5432];
        spec.socket = "/run/user/1/cell/c-7/sockets/host-5432.sock".into();
        assert_eq!(
            bridges(&[spec]).iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["5432=/run/cell/sockets/host-5432.sock"]
        );
    }
}
