//! Published ports: the host's `127.0.0.1:HOSTPORT` reaches the cell's `127.0.0.1:CELLPORT`
//! (`--publish HOSTPORT[:CELLPORT]`, `ports.publish`), without a route: the cell's network
//! namespace stays its own, with loopback only.
//!
//! # Why the cell dials the host, and never the other way
//!
//! Everything in the cell runs as the uid of `cell-init`, so whatever path `cell-init` could
//! bind a socket at, the agent can replace, for instance with a symbolic link to some other
//! socket of the host user (a desktop bus, an agent's control socket, another cell's
//! sidecar). A launcher that `connect()`ed to such a path for each client would be steered
//! to that socket. So the launcher never connects to anything for a published port:
//!
//! 1. before the cell starts, it binds the host's TCP port and a unix socket
//!    `publish-HOSTPORT.sock` in the runtime directory's `sockets` directory, which the host
//!    owns and the cell sees read-only at [`crate::contract::SOCKETS_DIR`] (nothing there can
//!    be replaced from inside);
//! 2. `cell-init` dials that socket and keeps one spare connection waiting
//!    ([`crate::inside::publish`]);
//! 3. when a host client connects to the TCP port, the launcher accepts one spare, sends it
//!    one byte ([`crate::contract::PUBLISH_GO`]), and relays the client over it; `cell-init` then dials the cell's
//!    `127.0.0.1:CELLPORT`, relays the other end, and dials a new spare.
//!
//! The launcher only ever `accept()`s and relays bytes. A process of the cell that dials the
//! socket itself gets host clients of the published port, which is no more than it can do
//! by listening on `CELLPORT`: a published port serves whatever the cell answers. Nothing
//! listens on the host unless a port was published, and the listeners close when the cell
//! ends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::host::config::Invalid;

use crate::contract::PUBLISH_GO as GO;
/// How long a host client waits for `cell-init`'s spare connection before it is closed.
const SPARE_WAIT_MS: u16 = 5_000;
/// Stack size of the relay threads: they hold no large buffers.
const THREAD_STACK: usize = 64 * 1024;

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The host address listened on: 127.0.0.1 unless another was asked for.
    pub address: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The cell's loopback port its clients reach.
    pub cell_port: u16,
    /// Where it was asked for (`--publish 8000`, `cells.web.ports.publish[0]`, `codex login`).
    pub from: String,
    /// Best effort (an agent's first-run login callback): a host port that cannot be bound
    /// gives a warning line, and the cell starts without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl Published {
    /// The socket's file name in the runtime directory's `sockets` directory.
    #[must_use]
    pub fn socket_name(&self) -> String {
        format!("publish-{}.sock", self.host_port)
    }

    /// `127.0.0.1:8000 -> 8000`, for `cell ps` and `cell plan`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!("{} -> {}", SocketAddr::new(self.address, self.host_port), self.cell_port)
    }
}

/// Parses `HOSTPORT`, `HOSTPORT:CELLPORT` or `ADDRESS:HOSTPORT:CELLPORT` (an IPv4 address, or
/// an IPv6 one in brackets), asked for at `field`.
///
/// # Errors
/// When the specification is malformed or a port is 0.
pub fn parse(spec: &str, field: &str) -> Result<Published, Invalid> {
    let fix = "write HOSTPORT or HOSTPORT:CELLPORT (ports 1-65535), e.g. 8000 or 8080:8000; \
               ADDRESS:HOSTPORT:CELLPORT only to listen beyond 127.0.0.1";
    let bad = |why: String| Invalid::new(field, why, fix);
    let (address, rest) = match spec.strip_prefix('[') {
        Some(v6) => {
            let (a, rest) =
                v6.split_once("]:").ok_or_else(|| bad(format!("{spec:?} has no `]:` after the address")))?;
            let a: IpAddr = a.parse().map_err(|_| bad(format!("{a:?} is not an IPv6 address")))?;
            (Some(a), rest)
        }
        None => match spec.matches(':').count() {
            2 => {
                let (a, rest) = spec.split_once(':').unwrap_or_default();
                let a: IpAddr = a.parse().map_err(|_| bad(format!("{a:?} is not an IP address")))?;
                (Some(a), rest)
            }
            _ => (None, spec),
        },
    };
    let port = |p: &str| -> Result<u16, Invalid> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(format!("{p:?} is not a port (1-65535)"))),
            Ok(n) => Ok(n),
        }
    };
    let (host_port, cell_port) = if let Some((h, c)) = rest.split_once(':') {
        (port(h)?, port(c)?)
    } else {
        let p = port(rest)?;
        (p, p)
    };
    if address.is_some() && !rest.contains(':') {
        return Err(bad(format!("{spec:?}: with an address, give both ports (ADDRESS:HOSTPORT:CELLPORT)")));
    }
    Ok(Published {
        address: address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        host_port,
        cell_port,
        from: field.to_owned(),
        optional: false,
    })
}

/// The publications of a cell's `ports.publish` (the cell at option path `at`).
///
/// # Errors
/// The first malformed entry, naming its field.
pub fn from_config(ports: &crate::host::config::PortsConfig, at: &str) -> Result<Vec<Published>, Invalid> {
    ports.publish.iter().enumerate().map(|(i, spec)| parse(spec, &format!("{at}.ports.publish[{i}]"))).collect()
}

/// Refuses two publications of one host port.
///
/// # Errors
/// Naming both places the port was asked for.
pub fn check_unique(all: &[Published]) -> Result<(), Invalid> {
    for (i, p) in all.iter().enumerate() {
        if let Some(first) = all[..i].iter().find(|q| q.host_port == p.host_port) {
            return Err(Invalid::new(
                p.from.clone(),
                format!("host port {} is already published by {}", p.host_port, first.from),
                "publish each host port once; pick another host port, e.g. HOSTPORT:CELLPORT",
            ));
        }
    }
    Ok(())
}

/// A published port's listeners, bound before the cell starts.
struct Port {
    published: Published,
    tcp: TcpListener,
    spares: UnixListener,
}

/// The bound listeners of a launch's published ports (nothing is served yet), and the
/// sockets of optional ones whose host port was taken (held, so that `cell-init`'s spare
/// waits there instead of dialling again and again).
pub struct Listeners(Vec<Port>, Vec<UnixListener>);

impl Listeners {
    /// What is published (`127.0.0.1:8000 -> 8000`), for `cell ps`.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        self.0.iter().map(|p| p.published.describe()).collect()
    }

    /// The line said at launch for each port that listens: `127.0.0.1:8000 -> cell port 8000`.
    #[must_use]
    pub fn announce(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|p| {
                let p = &p.published;
                format!("{} -> cell port {}", SocketAddr::new(p.address, p.host_port), p.cell_port)
            })
            .collect()
    }
}

/// Binds each published port on the host and its socket in `sockets` (the host's private
/// directory the cell sees read-only). A non-loopback address gets a warning line.
///
/// # Errors
/// [`Invalid`] naming the field when a host port is in use or cannot be bound; anything
/// else when the socket cannot be made.
pub fn bind(published: &[Published], sockets: &Utf8Path) -> anyhow::Result<Listeners> {
    let mut ports = Vec::new();
    let mut idle = Vec::new();
    for p in published {
        let addr = SocketAddr::new(p.address, p.host_port);
        let path: Utf8PathBuf = sockets.join(p.socket_name());
        let tcp = match TcpListener::bind(addr) {
            Ok(tcp) => tcp,
            Err(e) if p.optional => {
                eprintln!("cell: warning: {:#}; the cell starts without it", bind_error(p, addr, &e));
                idle.push(UnixListener::bind(&path).with_context(|| format!("cannot listen on {path}"))?);
                continue;
            }
            Err(e) => return Err(bind_error(p, addr, &e)),
        };
        if !p.address.is_loopback() {
            eprintln!(
                "cell: warning: {} listens on {addr}, beyond this host's loopback: other machines may reach the cell's port {}",
                p.from, p.cell_port
            );
        }
        tcp.set_nonblocking(true).context("cannot make a published port non-blocking")?;
        let spares = UnixListener::bind(&path).with_context(|| format!("cannot listen on {path}"))?;
        spares.set_nonblocking(true).context("cannot make a published port's socket non-blocking")?;
        ports.push(Port { published: p.clone(), tcp, spares });
    }
    Ok(Listeners(ports, idle))
}

fn bind_error(p: &Published, addr: SocketAddr, e: &std::io::Error) -> anyhow::Error {
    let next = p.host_port.checked_add(1).unwrap_or(1024);
    let (why, fix) = match e.kind() {
        std::io::ErrorKind::AddrInUse => (
            format!("{addr} is already in use on the host (another program listens there)"),
            format!("stop that program or publish another host port, e.g. {next}:{}", p.cell_port),
        ),
        std::io::ErrorKind::PermissionDenied => (
            format!("cannot listen on {addr}: ports below 1024 need privileges cell does not keep"),
            format!("publish a host port of 1024 or more, e.g. 8080:{}", p.cell_port),
        ),
        std::io::ErrorKind::AddrNotAvailable => (
            format!("{} is not an address of this host", p.address),
            "leave the address out (127.0.0.1) or give one of this host's addresses".to_owned(),
        ),
        _ => (format!("cannot listen on {addr}: {e}"), "publish another host port".to_owned()),
    };
    Invalid::new(p.from.clone(), why, fix).into()
}

/// The thread serving a launch's published ports; dropping it closes the listeners.
pub struct Server {
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    #[expect(dead_code, reason = "held until the cell ends")]
    idle: Vec<UnixListener>,
}

impl Listeners {
    /// Serves the ports on a thread of their own, which runs with every signal blocked (the
    /// launcher takes its signals on a signalfd).
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn serve(self) -> anyhow::Result<Server> {
        let Self(ports, idle) = self;
        if ports.is_empty() {
            return Ok(Server { stop: None, thread: None, idle });
        }
        let (stop_read, stop_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        let thread = with_signals_blocked(|| {
            std::thread::Builder::new().name("publish".into()).spawn(move || accept_loop(&ports, &stop_read))
        })
        .context("cannot start the published ports' thread")?;
        Ok(Server { stop: Some(stop_write), thread: Some(thread), idle })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the write end wakes the thread, which drops the listeners as it returns.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `f` with every signal blocked in this thread, so threads it spawns start with them
/// blocked (a thread that does not block them would take the launcher's SIGTERM).
fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old));
    let out = f();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    out
}

fn accept_loop(ports: &[Port], stop: &OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let spares: Vec<std::sync::Arc<UnixListener>> =
        ports.iter().filter_map(|p| p.spares.try_clone().ok().map(std::sync::Arc::new)).collect();
    if spares.len() != ports.len() {
        return;
    }
    loop {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> =
                ports.iter().map(|p| PollFd::new(p.tcp.as_fd(), PollFlags::POLLIN)).collect();
            fds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
        };
        if ready.last() == Some(&true) {
            return;
        }
        for (i, port) in ports.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            let Ok((client, _)) = port.tcp.accept() else { continue };
            let spares = spares[i].clone();
            let _ = std::thread::Builder::new()
                .name(format!("publish-{}", port.published.host_port))
                .stack_size(THREAD_STACK)
                .spawn(move || pair(&client, &spares));
        }
    }
}

/// Relays one host client over a spare connection of `cell-init`; closes the client when
/// none comes in time (the cell is not serving the port's socket).
fn pair(client: &TcpStream, spares: &UnixListener) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(u64::from(SPARE_WAIT_MS));
    // The deadline holds for every spare tried: a cell that keeps queueing dead ones
    // (dialled and closed) does not keep this thread busy beyond it.
    while std::time::Instant::now() < deadline {
        let spare = match spares.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ms = u16::try_from(left.as_millis()).unwrap_or(SPARE_WAIT_MS);
                let mut fds = [nix::poll::PollFd::new(spares.as_fd(), nix::poll::PollFlags::POLLIN)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
                continue;
            }
            Err(_) => return,
        };
        if spare.set_nonblocking(false).is_err() || !go(&spare) {
            // A spare whose end went away (a cell-init that exited): try the next one.
            continue;
        }
        crate::inside::bridge::relay(client, &spare);
        return;
    }
}

/// Tells the spare's end that it carries a client now.
fn go(spare: &UnixStream) -> bool {
    use nix::sys::socket::{send, MsgFlags};
    use std::os::fd::AsRawFd as _;
    send(spare.as_raw_fd(), &[GO], MsgFlags::MSG_NOSIGNAL).is_ok_and(|n| n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_publications() {
        let p = parse("8000", "--publish 8000").unwrap();
        assert_eq!((p.address, p.host_port, p.cell_port), (IpAddr::V4(Ipv4Addr::LOCALHOST), 8000, 8000));
        let p = parse("8080:80", "f").unwrap();
        assert_eq!((p.host_port, p.cell_port), (8080, 80));
        let p = parse("0.0.0.0:8000:9000", "f").unwrap();
        assert_eq!((p.address.to_string(), p.host_port, p.cell_port), ("0.0.0.0".to_owned(), 8000, 9000));
        let p = parse("[::1]:8000:9000", "f").unwrap();
        assert_eq!((p.address.to_string(), p.host_port), ("::1".to_owned(), 8000));
        assert_eq!(p.describe(), "[::1]:8000 -> 9000");
        for bad in ["", "0", "x", "70000", "8000:0", "1:2:3:4", "host:1:2", "0.0.0.0:8000", "[::1]8000:1", "8000:"] {
            let e = parse(bad, "cells.a.ports.publish[0]").unwrap_err();
            assert_eq!(e.field, "cells.a.ports.publish[0]", "{bad}");
        }
    }

    #[test]
    fn a_host_port_is_published_once() {
        let a = parse("8000", "--publish 8000").unwrap();
        let b = parse("8000:9000", "cells.a.ports.publish[1]").unwrap();
        let e = check_unique(&[a.clone(), b]).unwrap_err();
        assert_eq!(e.field, "cells.a.ports.publish[1]");
        assert!(e.message.contains("--publish 8000"), "{}", e.message);
        check_unique(&[a, parse("8001:8000", "x").unwrap()]).unwrap();
    }
}
