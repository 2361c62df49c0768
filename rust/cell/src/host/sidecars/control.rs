//! The control socket of a launch: `control.sock` in its runtime directory, which is never
//! bound into the cell (only the runtime directory's `sockets/` is), so nothing inside can
//! see or reach it. The launcher answers there, one JSON line per request and per answer,
//! only to peers of its own uid (`SO_PEERCRED`); clients check the same of the launcher.
//!
//! Requests: `{"op":"status"}` (what runs beside the cell: sidecars with pids and ports),
//! `{"op":"reload","policy":{...}}` (what `cell net reload` sends: the egress policy
//! file is replaced and every sidecar with a reload signal gets it) and
//! `{"op":"restart","sidecar":NAME}` (what `cell status --restart NAME` sends: that sidecar
//! is stopped and started again with the same spec; the answer is the status after it).
//! Room for approvals.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::start::Launched;
use super::CONTROL_SOCKET;
use crate::host::plan::POLICY_FILE;

/// Largest request accepted (a policy file).
const MAX_REQUEST: u64 = 1 << 20;
/// How long a peer may take to send its request or read the answer.
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a client waits for the answer to a restart (the grace of its stop, then its
/// readiness).
const RESTART_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request to a launcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum Request {
    /// What is running beside the cell.
    Status,
    /// Replace the egress policy and signal the sidecars that reload.
    Reload {
        /// The new policy (computed by the client as the launch did).
        policy: cell_egress::policy::PolicyFile,
    },
    /// Stop one sidecar and start it again, ready, with the same spec.
    Restart {
        /// Its name.
        sidecar: String,
    },
}

/// A launcher's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The sidecars `reload` signalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reloaded: Vec<String>,
}

/// What runs beside one launch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Cell name.
    pub cell: String,
    /// Pid of the launcher.
    pub launcher: u32,
    /// Its sidecars, in start order.
    pub sidecars: Vec<SidecarStatus>,
}

/// One sidecar of a running launch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarStatus {
    /// Its name.
    pub name: String,
    /// Its host pid (absent for a host service: nothing was started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Whether that process is still running.
    pub running: bool,
    /// The in-cell ports bridged to it.
    pub ports: Vec<u16>,
    /// The host loopback port the launcher forwards to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

struct State {
    cell: String,
    runtime: Utf8PathBuf,
    launched: Arc<Launched>,
}

/// The serving control socket; dropping it stops serving.
pub struct Server {
    listener: std::os::fd::OwnedFd,
}

impl Drop for Server {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd as _;
        let _ = nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

/// Serves the control socket of a launch in `runtime` on a thread of its own.
///
/// # Errors
/// When the socket cannot be bound or the thread not started.
pub(crate) fn serve(cell: &str, runtime: &Utf8Path, launched: Arc<Launched>) -> anyhow::Result<Server> {
    let path = runtime.join(CONTROL_SOCKET);
    let listener =
        cell_egress::sidecar::bind_private(path.as_std_path()).with_context(|| format!("cannot listen on {path}"))?;
    let keep = std::os::fd::OwnedFd::from(listener.try_clone().context("cannot duplicate a socket")?);
    let state = Arc::new(State { cell: cell.to_owned(), runtime: runtime.to_owned(), launched });
    super::with_signals_blocked(|| {
        std::thread::Builder::new()
            .name("control".into())
            .stack_size(256 * 1024)
            .spawn(move || accept_loop(&listener, &state))
    })
    .context("cannot start the control thread")?;
    Ok(Server { listener: keep })
}

fn accept_loop(listener: &UnixListener, state: &State) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(&stream, state);
            }
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EINTR | nix::libc::ECONNABORTED)) => {}
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOMEM)) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(_) => return,
        }
    }
}

/// The uid of the process at the other end of `stream`, when it lives in the launcher's
/// own pid namespace. A cell has the launcher's uid, so the uid alone tells nothing about
/// where a peer is: every cell has a pid namespace of its own, and a peer there (should a
/// bind ever show it this socket) is refused.
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    let ours = pid_depth("self")?;
    let theirs = pid_depth(&cred.pid().to_string())?;
    (cred.pid() > 0 && ours == theirs).then(|| cred.uid())
}

/// How many pid namespaces deep a process is below the one of `/proc`: the count of its
/// `NSpid` entries. A cell's processes are deeper than their launcher's. (`/proc/PID/status`
/// stays readable where `/proc/PID/ns` does not: a launcher that dropped root is not
/// dumpable.)
fn pid_depth(pid: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    Some(line.split_whitespace().count())
}

fn answer(stream: &UnixStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(PEER_TIMEOUT))?;
    stream.set_write_timeout(Some(PEER_TIMEOUT))?;
    let me = nix::unistd::geteuid().as_raw();
    // The request is read (bounded in size and time) before anything is answered, so a
    // refused peer gets its refusal rather than a broken pipe; it is parsed only for ours.
    let mut line = String::new();
    BufReader::new(stream.take(MAX_REQUEST)).read_line(&mut line)?;
    let response = if peer_uid(stream) == Some(me) {
        match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(&request, state),
            Err(e) => refusal(format!("not a request: {e}")),
        }
    } else {
        refusal(format!("only uid {me}, outside every cell, may use this control socket"))
    };
    let mut text = serde_json::to_string(&response).unwrap_or_default();
    text.push('\n');
    let mut stream = stream;
    stream.write_all(text.as_bytes())
}

fn refusal(error: String) -> Response {
    Response { ok: false, error: Some(error), ..Response::default() }
}

fn handle(request: &Request, state: &State) -> Response {
    match request {
        Request::Status => Response { ok: true, status: Some(status(state)), ..Response::default() },
        Request::Reload { policy } => match reload(state, policy) {
            Ok(reloaded) => Response { ok: true, reloaded, ..Response::default() },
            Err(e) => refusal(format!("{e:#}")),
        },
        Request::Restart { sidecar } => match super::start::restart(&state.launched, sidecar) {
            Ok(_) => Response { ok: true, status: Some(status(state)), ..Response::default() },
            Err(e) => Response {
                ok: false,
                error: Some(format!("{e:#}")),
                status: Some(status(state)),
                ..Response::default()
            },
        },
    }
}

fn status(state: &State) -> Status {
    let running = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };
    Status {
        cell: state.cell.clone(),
        launcher: std::process::id(),
        sidecars: state
            .launched
            .lock()
            .iter()
            .map(|s| {
                // Not reaped until the launch stops it (or restarts it): a sidecar that exited
                // by itself is a zombie here, its pid still its own.
                let pid = s.child.as_ref().map(std::process::Child::id);
                SidecarStatus {
                    name: s.spec.name.clone(),
                    pid,
                    running: if s.spec.command.is_empty() { true } else { pid.is_some_and(running) },
                    ports: s.spec.ports.clone(),
                    host_port: s.spec.forward_to,
                }
            })
            .collect(),
    }
}

/// Replaces the policy file (validated first, then renamed into place) and signals every
/// sidecar that reloads; open tunnels stay open.
fn reload(state: &State, policy: &cell_egress::policy::PolicyFile) -> anyhow::Result<Vec<String>> {
    let sidecars = state.launched.lock();
    if !sidecars.iter().any(|s| s.spec.name == super::egress::NAME) {
        bail!("this launch of cell {} has no egress proxy (its network mode is none)", state.cell);
    }
    cell_egress::policy::Policy::from_file(policy).context("the new policy is invalid")?;
    let path = state.runtime.join(POLICY_FILE);
    let tmp = state.runtime.join(format!("{POLICY_FILE}.new"));
    let _ = std::fs::remove_file(&tmp);
    crate::sys::write_new_private(&tmp, (serde_json::to_string_pretty(policy)? + "\n").as_bytes())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {path}"))?;
    let mut reloaded = Vec::new();
    for s in sidecars.iter() {
        if let (Some(sig), Some(child)) = (s.spec.reload_signal, &s.child) {
            let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
            kill(pid, sig).with_context(|| format!("cannot signal the {} sidecar (pid {pid})", s.spec.name))?;
            reloaded.push(s.spec.name.clone());
        }
    }
    Ok(reloaded)
}

/// Sends `request` to the launcher of the runtime directory `runtime` and returns its
/// answer. Only a private directory of ours counts, and only a launcher of our uid.
///
/// # Errors
/// When the directory is not ours, the launcher cannot be reached or is not ours, or the
/// answer is not one.
pub fn request(runtime: &Utf8Path, request: &Request) -> anyhow::Result<Response> {
    if !crate::sys::is_private_dir(runtime) {
        bail!("{runtime} is not a private directory of yours; not touching it");
    }
    let path = runtime.join(CONTROL_SOCKET);
    let stream = UnixStream::connect(&path).with_context(|| {
        format!("cannot reach the launcher of {runtime} on its control socket {path} (an older cell, or it is ending)")
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if peer_uid(&stream) != Some(me) {
        bail!("the control socket {path} is not served by a launcher of yours");
    }
    // A restart waits for the sidecar to stop and to be ready again.
    let wait = if matches!(request, Request::Restart { .. }) { RESTART_TIMEOUT } else { PEER_TIMEOUT };
    stream.set_read_timeout(Some(wait))?;
    let mut text = serde_json::to_string(request)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes()).with_context(|| format!("cannot write to {path}"))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line).with_context(|| format!("no answer on {path}"))?;
    serde_json::from_str(&line).with_context(|| format!("{path} answered something that is not an answer: {line:?}"))
}
