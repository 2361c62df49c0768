//! The in-cell side of a sidecar: a loopback TCP port whose connections are carried,
//! byte for byte, to a unix socket bound into the cell from the host (no socat, no fork).
//!
//! Each connection gets two small threads that move data with `splice(2)` through a pipe
//! (zero-copy), falling back to read/write where splice does not apply.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use crate::contract::Bridge;
use anyhow::Context as _;

/// Stack size of the copy threads: they hold no large buffers.
const THREAD_STACK: usize = 64 * 1024;
/// Bytes moved per splice call.
const CHUNK: usize = 1 << 20;

/// Binds every bridge's port on 127.0.0.1 (before the command starts, so its first
/// connection finds the port) and serves it on a thread of its own.
///
/// # Errors
/// When a port cannot be bound.
pub fn start(bridges: &[Bridge]) -> anyhow::Result<()> {
    for b in bridges {
        let listener = TcpListener::bind(("127.0.0.1", b.port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{} inside the cell", b.port))?;
        let socket = b.socket.clone();
        std::thread::Builder::new()
            .name(format!("bridge-{}", b.port))
            .stack_size(THREAD_STACK)
            .spawn(move || serve(&listener, &socket))
            .context("cannot start a bridge thread")?;
    }
    Ok(())
}

fn serve(listener: &TcpListener, socket: &std::path::Path) {
    for conn in listener.incoming() {
        let Ok(client) = conn else {
            // Out of descriptors or memory: back off instead of spinning.
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        let socket = socket.to_path_buf();
        let _ = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || carry(&client, &socket));
    }
}

/// Carries one connection. When the sidecar is gone the client is simply closed: there is
/// no other way out of the cell.
fn carry(client: &TcpStream, socket: &std::path::Path) {
    let Ok(upstream) = UnixStream::connect(socket) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    relay(client, &upstream);
}

/// Carries bytes both ways between a TCP connection and a unix one until both directions
/// ended, passing each end of file on as a half-close. Published ports use it too, on the
/// host ([`crate::host::publish`]) and inside ([`crate::inside::publish`]).
pub(crate) fn relay(client: &TcpStream, upstream: &UnixStream) {
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
        pump(&client2, &upstream2);
        let _ = upstream2.shutdown(Shutdown::Write);
    });
    pump(upstream, client);
    let _ = client.shutdown(Shutdown::Write);
    if let Ok(h) = up {
        let _ = h.join();
    }
}

/// Moves bytes from `src` to `dst` until end of file or an error.
fn pump<S: AsFd + ReadWrite, D: AsFd + ReadWrite>(src: &S, dst: &D) {
    if let Ok(Some(())) = splice_all(src, dst) {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match src.read_some(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if dst.write_all_to(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Zero-copy transfer through a pipe. `Ok(None)` when splice is not supported for these
/// descriptors and nothing was moved yet (the caller falls back to copying).
fn splice_all<S: AsFd, D: AsFd>(src: &S, dst: &D) -> std::io::Result<Option<()>> {
    use nix::fcntl::{splice, SpliceFFlags};
    let (pipe_r, pipe_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // No SPLICE_F_MORE: it holds back short writes (a CONNECT reply, a TLS handshake
    // message) for up to 200 ms even with TCP_NODELAY.
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    let mut moved_any = false;
    loop {
        let n = match splice(src.as_fd(), None, &pipe_w, None, CHUNK, flags) {
            Ok(0) => return Ok(Some(())),
            Ok(n) => n,
            Err(nix::errno::Errno::EINVAL) if !moved_any => return Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        moved_any = true;
        let mut left = n;
        while left > 0 {
            match splice(&pipe_r, None, dst.as_fd(), None, left, flags) {
                Ok(0) => return Ok(Some(())),
                Ok(m) => left -= m,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Read and write through shared references (sockets allow it).
trait ReadWrite {
    fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    fn write_all_to(&self, buf: &[u8]) -> std::io::Result<()>;
}

impl ReadWrite for TcpStream {
    fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self).read(buf)
    }
    fn write_all_to(&self, buf: &[u8]) -> std::io::Result<()> {
        (&*self).write_all(buf)
    }
}

impl ReadWrite for UnixStream {
    fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self).read(buf)
    }
    fn write_all_to(&self, buf: &[u8]) -> std::io::Result<()> {
        (&*self).write_all(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_bytes_both_ways_and_half_closes() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let server = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        // Upstream echo server that uppercases until EOF, then says "bye".
        let upstream = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            s.write_all(&all.to_ascii_uppercase()).unwrap();
            s.write_all(b"bye").unwrap();
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sock2 = sock.clone();
        std::thread::spawn(move || serve(&listener, &sock2));
        let mut c = TcpStream::connect(addr).unwrap();
        let payload = vec![b'a'; 3 * 1024 * 1024];
        let writer = {
            let mut c = c.try_clone().unwrap();
            std::thread::spawn(move || {
                c.write_all(&payload).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        upstream.join().unwrap();
        assert_eq!(got.len(), 3 * 1024 * 1024 + 3);
        assert!(got[..got.len() - 3].iter().all(|b| *b == b'A'));
        assert_eq!(&got[got.len() - 3..], b"bye");
    }

    #[test]
    fn a_missing_sidecar_closes_the_client() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(&listener, std::path::Path::new("/nonexistent/cell.sock")));
        let mut c = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    }
}
