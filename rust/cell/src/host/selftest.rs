//! `cell selftest`: the escape catalog against the user's own cell, on their own machine.
//!
//! The cell is built from the user's configuration exactly as `cell run` would, except
//! that its worktree is a scratch directory (with a `.git` to attack). The host side plants
//! a secret outside every bind and listens on loopback TCP and UDP ports and an abstract
//! unix socket; after the cell ends it checks that nothing was written, received or left
//! running. Two more launches prove the cell fails closed without bubblewrap or proxy.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};

use crate::contract::INIT_PATH;
use crate::contract::{InitSpec, ProbeContext, ProbeResult, ProbeRun, CASES};
use crate::host::config::{ConfigSource, NetworkMode};
use crate::host::hostenv::HostEnv;
use crate::host::launch::{self, Outcome};
use crate::host::plan::{self, Overrides};

/// Host-side listeners that must hear nothing from the cell.
struct Listeners {
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    abstract_name: String,
    unix: std::os::unix::net::UnixListener,
}

impl Listeners {
    fn open(token: &str) -> anyhow::Result<Self> {
        use std::os::linux::net::SocketAddrExt as _;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").context("cannot listen on 127.0.0.1")?;
        tcp.set_nonblocking(true)?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP port on 127.0.0.1")?;
        udp.set_nonblocking(true)?;
        let abstract_name = format!("cell-selftest-{token}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?;
        let unix = std::os::unix::net::UnixListener::bind_addr(&addr).context("cannot bind an abstract socket")?;
        unix.set_nonblocking(true)?;
        Ok(Self { tcp, udp, abstract_name, unix })
    }

    /// What reached the host, if anything.
    fn heard(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.tcp.accept().is_ok() {
            out.push("a TCP connection");
        }
        let mut buf = [0u8; 64];
        if self.udp.recv_from(&mut buf).is_ok() {
            out.push("a UDP datagram");
        }
        if self.unix.accept().is_ok() {
            out.push("an abstract-socket connection");
        }
        out
    }
}

/// Removes the scratch directory however the self-test ends.
struct Scratch(Utf8PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file planted in the host's /tmp, removed at the end.
struct TmpFile(Utf8PathBuf);

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scratch() -> anyhow::Result<Scratch> {
    let dir = nix::unistd::mkdtemp("/tmp/cell-selftest-XXXXXX").context("cannot create a scratch directory in /tmp")?;
    let dir = Utf8PathBuf::from_path_buf(dir).map_err(|p| anyhow::anyhow!("{} is not UTF-8", p.display()))?;
    let scratch = Scratch(dir.clone());
    std::fs::create_dir_all(dir.join("work/.git/hooks"))?;
    std::fs::write(dir.join("work/.git/config"), "[core]\n\trepositoryformatversion = 0\n")?;
    std::fs::write(dir.join("work/.git/HEAD"), "ref: refs/heads/main\n")?;
    std::fs::write(dir.join("work/.envrc"), ENVRC)?;
    std::fs::create_dir_all(dir.join("outside"))?;
    Ok(scratch)
}

/// The scratch worktree's `.envrc` (a protected file that exists).
const ENVRC: &str = "# cell selftest\n";

/// The host's view of the scratch repository after the cell: the cell's writes to `.git`
/// went to its own git directory, and what it created at protected paths was set aside.
fn protected_on_host(worktree: &Utf8Path) -> Option<String> {
    let mut found = Vec::new();
    if worktree.join(".git/hooks/pre-commit").exists() {
        found.push("a hook in the host's .git/hooks");
    }
    if std::fs::read_to_string(worktree.join(".git/config")).map_or(true, |c| c.contains("fsmonitor")) {
        found.push("the host's .git/config changed");
    }
    if std::fs::read_to_string(worktree.join(".envrc")).map_or(true, |c| c != ENVRC) {
        found.push(".envrc changed");
    }
    for p in [".mcp.json", ".vscode"] {
        if std::fs::symlink_metadata(worktree.join(p)).is_ok() {
            found.push(if p == ".mcp.json" { ".mcp.json left in place" } else { ".vscode left in place" });
        }
    }
    (!found.is_empty()).then(|| found.join(", "))
}

/// Entries of the user's real home (the cell's own home excepted): they must stay invisible
/// inside. Each goes with its host identity, since the cell's home (at the same path inside)
/// may have an entry of the same name by the time the cell runs (`.bashrc` from
/// `/etc/skel`, `.local` from the launch), which is no leak.
fn host_only_paths(host: &HostEnv, cell_home: &Utf8Path) -> Vec<crate::contract::HostPath> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = host.home.read_dir_utf8() else { return Vec::new() };
    let cell_home = crate::sys::canonical_utf8(cell_home).unwrap_or_else(|_| cell_home.to_owned());
    let mut out: Vec<crate::contract::HostPath> = entries
        .flatten()
        .map(|e| host.home.join(e.file_name()))
        .filter(|p| !cell_home.starts_with(crate::sys::canonical_utf8(p).unwrap_or_else(|_| p.clone())))
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            Some(crate::contract::HostPath { path: p, dev: m.dev(), ino: m.ino() })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.truncate(8);
    out
}

fn host_sockets(host: &HostEnv) -> Vec<Utf8PathBuf> {
    let mut out: Vec<Utf8PathBuf> = [
        format!("/run/user/{}/bus", host.uid),
        "/run/dbus/system_bus_socket".to_owned(),
        "/var/run/docker.sock".to_owned(),
        "/run/docker.sock".to_owned(),
        "/nix/var/nix/daemon-socket/socket".to_owned(),
        "/tmp/.X11-unix/X0".to_owned(),
    ]
    .into_iter()
    .map(Utf8PathBuf::from)
    .collect();
    for var in ["SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS"] {
        if let Some(v) = host.var(var) {
            let path = v.strip_prefix("unix:path=").unwrap_or(v);
            let path = path.split(',').next().unwrap_or(path);
            if path.starts_with('/') {
                out.push(path.into());
            }
        }
    }
    out
}

/// What `cell selftest` reports for one case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    /// Case id.
    pub id: &'static str,
    /// Family.
    pub family: &'static str,
    /// What holding proves.
    pub proves: &'static str,
    /// Whether the cell held.
    pub ok: bool,
    /// What was observed.
    pub detail: String,
}

/// Runs the catalog against cell `requested` of the launch's configuration.
///
/// # Errors
/// [`PlanError`] for configuration problems; anything else when the self-test itself could
/// not run (the cell could not be built, the scratch directory could not be made).
pub fn run(config_flag: Option<&Utf8Path>, requested: Option<&str>, host: &HostEnv) -> anyhow::Result<Vec<Line>> {
    let (source, config) = crate::host::prepare::load_config(config_flag, host)?;
    let (name, cell) = plan::select_cell(&config, &source, requested)?;
    let scratch = scratch()?;
    let root = scratch.0.clone();
    let token = format!("{}x{}", std::process::id(), root.file_name().unwrap_or("x").replace('-', ""));
    let secret = format!("cell-selftest-secret-{token}");
    std::fs::write(root.join("outside/secret"), &secret)?;
    let listeners = Listeners::open(&token)?;
    let host_tmp = TmpFile(Utf8PathBuf::from(format!("/tmp/cell-selftest-tmp-{token}")));
    std::fs::write(&host_tmp.0, &secret)?;
    let cell_home = cell.home.path.clone().unwrap_or_else(|| host.data_home().join("cell").join(&name).join("home"));
    let proxy = cell.network.effective_mode(false) == NetworkMode::Proxy;
    let worktree = root.join("work");
    let results_file = worktree.join(".selftest-results.jsonl");
    let ctx = ProbeContext {
        worktree: worktree.clone(),
        secret_file: root.join("outside/secret"),
        secret: secret.clone(),
        outside_dir: root.join("outside"),
        host_tmp_entry: host_tmp.0.to_string(),
        host_only_paths: host_only_paths(host, &cell_home),
        host_sockets: host_sockets(host),
        host_abstract: listeners.abstract_name.clone(),
        host_tcp_port: listeners.tcp.local_addr()?.port(),
        host_udp_port: listeners.udp.local_addr()?.port(),
        host_pid: std::process::id(),
        background_token: token.clone(),
        proxy,
    };
    let overrides = Overrides {
        workdir: Some(worktree.clone()),
        task: Some(InitSpec::ProbeCatalog(ProbeRun { context: ctx, results: results_file.clone() })),
        ..Overrides::default()
    };
    let plan = crate::host::prepare::plan_with_tools(&name, cell, &source, &overrides, host, proxy)?;
    let tools = plan.tools.clone();
    match launch::execute(&plan, None)? {
        Outcome::Exited(_) => {}
        Outcome::SetupFailed(code) => {
            anyhow::bail!("bubblewrap could not build cell {name} (exit {code}); run `cell doctor`")
        }
    }
    let mut results: Vec<ProbeResult> = std::fs::read_to_string(&results_file)
        .with_context(|| format!("the probes left no results in {results_file}"))?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    host_checks(&mut results, &root, &secret, &listeners, &token);
    results.push(fails_closed(
        "lc-no-jail",
        &source,
        &name,
        &worktree,
        &tools.init,
        &[("CELL_BWRAP", &tools.init)],
        &[],
    ));
    results.push(fails_closed(
        "lc-no-proxy",
        &source,
        &name,
        &worktree,
        &tools.init,
        &[("CELL_EGRESS", &tools.init)],
        &["--network", "proxy", "--allow", "cell-selftest.invalid"],
    ));
    Ok(CASES
        .iter()
        .map(|case| {
            let r = results.iter().find(|r| r.id == case.id);
            Line {
                id: case.id,
                family: case.family,
                proves: case.proves,
                ok: r.is_some_and(|r| r.ok),
                detail: r.map_or_else(|| "NOT RUN: the probe reported nothing".to_owned(), |r| r.detail.clone()),
            }
        })
        .collect())
}

/// Checks only the host can make, folded into the cases they belong to.
fn host_checks(results: &mut [ProbeResult], root: &Utf8Path, secret: &str, listeners: &Listeners, token: &str) {
    let mut amend = |id: &str, problem: Option<String>| {
        if let (Some(r), Some(p)) = (results.iter_mut().find(|r| r.id == id), problem) {
            r.ok = false;
            r.detail.push_str(&format!("; HOST SAW: {p}"));
        }
    };
    let outside: Vec<String> = root
        .join("outside")
        .read_dir_utf8()
        .map(|d| d.flatten().map(|e| e.file_name().to_owned()).filter(|n| n != "secret").collect())
        .unwrap_or_default();
    amend("fs-write-outside", (!outside.is_empty()).then(|| format!("new files outside: {}", outside.join(", "))));
    let intact = std::fs::read_to_string(root.join("outside/secret")).is_ok_and(|s| s == secret);
    amend("fs-symlink", (!intact).then(|| "the planted secret changed".to_owned()));
    amend("fs-setid", setid_on_host(&root.join("work")));
    amend("fs-protected", protected_on_host(&root.join("work")));
    let heard = listeners.heard();
    let (tcp_udp, unix): (Vec<&str>, Vec<&str>) = heard.iter().partition(|h| !h.contains("abstract"));
    amend("nw-host-ports", (!tcp_udp.is_empty()).then(|| tcp_udp.join(", ")));
    amend("pk-host-sockets", (!unix.is_empty()).then(|| unix.join(", ")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let survivor = loop {
        let alive = processes_with(token);
        if alive.is_empty() || std::time::Instant::now() > deadline {
            break alive;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    amend(
        "pk-background",
        (!survivor.is_empty()).then(|| format!("still running after the cell ended: pids {survivor:?}")),
    );
}

/// The probes' files in the worktree, as the host sees them: none may carry `S_ISUID` or
/// `S_ISGID`. Removes them.
fn setid_on_host(worktree: &Utf8Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let set_id = nix::libc::S_ISUID | nix::libc::S_ISGID;
    let mut found = Vec::new();
    for e in worktree.read_dir_utf8().into_iter().flatten().flatten() {
        if !e.file_name().starts_with(".selftest-setid-") {
            continue;
        }
        if let Ok(m) = e.path().symlink_metadata() {
            if m.permissions().mode() & set_id != 0 {
                found.push(format!("{} (mode {:o})", e.file_name(), m.permissions().mode() & 0o7777));
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
    let more = if found.len() > 4 { format!(" and {} more", found.len() - 4) } else { String::new() };
    found.truncate(4);
    (!found.is_empty()).then(|| format!("set-id files in the worktree: {}{more}", found.join(", ")))
}

/// Host pids whose command line contains `token` (other than this process).
fn processes_with(token: &str) -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(token))
        })
        .collect()
}

/// Launches `cell run` with a broken helper (`var` pointing at a program that is not one)
/// and expects exit 125 with the command never run.
fn fails_closed(
    id: &str,
    source: &ConfigSource,
    name: &str,
    worktree: &Utf8Path,
    init: &Utf8Path,
    env: &[(&str, &Utf8Path)],
    extra: &[&str],
) -> ProbeResult {
    let marker = worktree.join(format!(".{id}-ran"));
    // Were it run, the command would write the marker: the probes, with no context, and
    // their results there. Its spec lies in the scratch worktree, which the cell sees at
    // the same path.
    let spec = worktree.join(format!(".{id}-spec.json"));
    let task = InitSpec::ProbeCatalog(ProbeRun { results: marker.clone(), ..ProbeRun::default() });
    let fail = |detail: String| ProbeResult { id: id.to_owned(), ok: false, detail };
    if let Err(e) = std::fs::write(&spec, task.to_json()) {
        return fail(format!("cannot write {spec}: {e}"));
    }
    let Ok(exe) = std::env::current_exe() else {
        return fail("cannot find the cell binary".to_owned());
    };
    let mut cmd = Command::new(exe);
    if let ConfigSource::Flag(p) = source {
        cmd.arg("--config").arg(p);
    }
    cmd.args(["run", "--cell", name, "--workdir", worktree.as_str()]).args(extra);
    cmd.args(["--", INIT_PATH, "--spec", spec.as_str()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("CELL_INIT", init).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
    cmd.stderr(std::process::Stdio::null()).process_group(0);
    let status = cmd.status();
    let code = status.as_ref().ok().and_then(std::process::ExitStatus::code);
    let ran = marker.exists();
    let ok = code == Some(i32::from(launch::EXIT_CANNOT_START)) && !ran;
    ProbeResult {
        id: id.to_owned(),
        ok,
        detail: format!("cell exited with {code:?} (expected 125), command ran: {ran}"),
    }
}
