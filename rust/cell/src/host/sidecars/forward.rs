//! The launcher's forwarder: a unix socket in the runtime directory (bridged into the cell
//! by `cell-init`) whose every connection is carried to `127.0.0.1:PORT` on the host. This
//! is how a user sidecar or a host service is reached: one port of the host's loopback,
//! never the rest of it, and never through a route.

use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use anyhow::Context as _;
use camino::Utf8Path;

/// Stack size of the forwarder's threads: they hold no large buffers (`std::io::copy`
/// splices between sockets).
const THREAD_STACK: usize = 64 * 1024;

/// A running forwarder; dropping it stops accepting (open connections run to their end).
pub struct Forwarder {
    listener: OwnedFd,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // Wakes the accept loop (EINVAL), which then ends.
        let _ = nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

/// Listens on `socket` (mode 0600, in a private directory) and forwards to the host's
/// `127.0.0.1:port`.
///
/// # Errors
/// When the socket cannot be bound or the thread not started.
pub fn start(socket: &Utf8Path, port: u16) -> anyhow::Result<Forwarder> {
    let listener = cell_egress::sidecar::bind_private(socket.as_std_path())
        .with_context(|| format!("cannot listen on {socket}"))?;
    let keep = OwnedFd::from(listener.try_clone().context("cannot duplicate a socket")?);
    super::with_signals_blocked(|| {
        std::thread::Builder::new()
            .name(format!("forward-{port}"))
            .stack_size(THREAD_STACK)
            .spawn(move || serve(&listener, port))
    })
    .context("cannot start a forwarder thread")?;
    Ok(Forwarder { listener: keep })
}

/// Connections one forwarder carries at once; more are closed at once. The launcher's
/// threads and descriptors are outside every limit of the cell, which opens these.
pub const MAX_CONNECTIONS: usize = 256;

fn serve(listener: &UnixListener, port: u16) {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        match listener.accept() {
            Ok((client, _)) => {
                use std::sync::atomic::Ordering;
                if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::AcqRel);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let count = std::sync::Arc::clone(&open);
                let spawned = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
                    carry(&client, port);
                    count.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EINTR | nix::libc::ECONNABORTED)) => {}
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOMEM)) => {
                // Out of descriptors or memory: back off instead of spinning.
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(_) => return,
        }
    }
}

/// Carries one connection. When nothing listens on the host port, the client is closed.
fn carry(client: &UnixStream, port: u16) {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
        let _ = std::io::copy(&mut &client2, &mut &upstream2);
        let _ = upstream2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut &upstream, &mut &*client);
    let _ = client.shutdown(Shutdown::Write);
    if let Ok(h) = up {
        let _ = h.join();
    }
}
