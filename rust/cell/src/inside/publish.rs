//! The in-cell end of published ports: `cell-init` keeps one spare connection to each
//! port's socket (which the launcher binds in the host-owned, read-only sockets directory);
//! when the launcher pairs the spare with a host client it sends one byte, and `cell-init`
//! dials the cell's `127.0.0.1:PORT`, relays the two, and dials a new spare at once. Why the
//! cell dials and the host only accepts: see [`crate::host::publish`].

use std::io::Read as _;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

use anyhow::Context as _;

use crate::contract::{Bridge, PUBLISH_GO};

/// Stack size of the threads: they hold no large buffers.
const THREAD_STACK: usize = 64 * 1024;
/// Pause before dialling again after the launcher's socket refused or dropped a spare.
const REDIAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Starts one thread per published port (`PORT=SOCKET`: the cell's port and the inside path
/// of its socket).
///
/// # Errors
/// When a thread cannot be started.
pub fn start(published: &[Bridge]) -> anyhow::Result<()> {
    for p in published {
        let p = p.clone();
        std::thread::Builder::new()
            .name(format!("publish-{}", p.port))
            .stack_size(THREAD_STACK)
            .spawn(move || spares(&p))
            .context("cannot start a published port's thread")?;
    }
    Ok(())
}

/// Keeps one spare connection waiting on the port's socket, for ever.
fn spares(p: &Bridge) {
    loop {
        let Ok(mut spare) = UnixStream::connect(&p.socket) else {
            std::thread::sleep(REDIAL);
            continue;
        };
        let mut go = [0u8; 1];
        match spare.read(&mut go) {
            Ok(1) if go[0] == PUBLISH_GO => {
                let port = p.port;
                let _ = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || carry(&spare, port));
            }
            // The launcher dropped it (or sent something else): dial again, not in a spin.
            _ => std::thread::sleep(REDIAL),
        }
    }
}

/// Carries one host client to the cell's `127.0.0.1:port`; nothing listening there closes
/// the client.
fn carry(spare: &UnixStream, port: u16) {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(server) => {
            let _ = server.set_nodelay(true);
            crate::inside::bridge::relay(&server, spare);
        }
        Err(_) => {
            let _ = spare.shutdown(Shutdown::Both);
        }
    }
}
