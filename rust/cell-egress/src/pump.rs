//! Moving tunnel bytes from one socket to another without copying them through user space:
//! `splice(2)` socket → pipe → socket, driven by tokio readiness.
//!
//! Pipes come from a small per-thread pool and are held only while bytes are in flight, so
//! an idle tunnel owns no pipe (no fds, no kernel buffers) and no copy buffer. When a pipe
//! cannot be created (fd limit) or the kernel refuses to splice these fds (`EINVAL`,
//! `ENOSYS`), the direction falls back to a plain read/write copy.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::socket::Shutdown;
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// Largest request per `splice` call; the pipe's capacity bounds what one call moves.
const SPLICE_LEN: usize = 1 << 20;
/// Pipe capacity asked for with `F_SETPIPE_SZ` (best effort).
const PIPE_SIZE: i32 = 256 * 1024;
/// Empty pipes kept for reuse; the rest are closed.
const POOL_MAX: usize = 64;
/// Copy buffer of the fallback path, allocated when the first byte arrives.
const COPY_BUF: usize = 16 * 1024;

/// A tokio socket whose fd can be spliced (both ends of a tunnel).
pub(crate) trait Sock: AsFd {
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
    fn writable(&self) -> impl Future<Output = io::Result<()>>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

macro_rules! impl_sock {
    ($t:ty) => {
        impl Sock for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> {
                <$t>::readable(self)
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> {
                <$t>::writable(self)
            }
            fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                <$t>::try_io(self, interest, f)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$t>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
        }
    };
}

impl_sock!(TcpStream);
impl_sock!(UnixStream);

/// Both ends of a non-blocking pipe.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (r, w) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // Fewer, larger splices; the default 64 KiB is fine when this is refused (limits).
        let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        Ok(Self { r, w })
    }
}

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe from the pool, or a new one.
fn acquire() -> io::Result<Pipe> {
    match POOL.with_borrow_mut(Vec::pop) {
        Some(p) => Ok(p),
        None => Pipe::new(),
    }
}

/// Give back a pipe that holds no bytes.
fn release(p: Pipe) {
    POOL.with_borrow_mut(|pool| {
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}

/// One non-blocking `splice(2)`; no offsets (both ends are sockets or pipes).
fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    Ok(nix::fcntl::splice(from, None, to, None, len, flags)?)
}

/// The kernel cannot splice these fds: copy instead.
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error().map(Errno::from_raw), Some(Errno::EINVAL | Errno::ENOSYS))
}

fn shutdown_write(sock: &impl AsFd) -> io::Result<()> {
    Ok(nix::sys::socket::shutdown(sock.as_fd().as_raw_fd(), Shutdown::Write)?)
}

/// Write all of `buf` to `dst`.
async fn write_all<D: Sock>(dst: &D, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        dst.writable().await?;
        match dst.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => buf = &buf[k..],
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How a direction ended.
enum End {
    Eof,
    Limit,
}

/// Move bytes from `src` to `dst` until EOF (then shut down `dst`'s write side) or, with a
/// `limit`, until that many bytes were moved (then leave both open). Bytes delivered to
/// `dst` are added to `n` as they go.
pub(crate) async fn pump<S: Sock, D: Sock>(src: &S, dst: &D, limit: Option<u64>, n: &AtomicU64) -> io::Result<()> {
    let mut remaining = limit.unwrap_or(u64::MAX);
    let end = match splice_loop(src, dst, &mut remaining, n).await? {
        Some(end) => end,
        None => copy_loop(src, dst, &mut remaining, n).await?,
    };
    match (end, limit) {
        (End::Eof, None) => shutdown_write(dst),
        _ => Ok(()),
    }
}

/// The splice path; `Ok(None)` means "fall back to copying" (the pipe is empty then).
async fn splice_loop<S: Sock, D: Sock>(
    src: &S,
    dst: &D,
    remaining: &mut u64,
    n: &AtomicU64,
) -> io::Result<Option<End>> {
    // Held only while bytes are in flight. Dropped (closed, not pooled) on errors and when
    // the future is cancelled, as it may still hold bytes then.
    let mut pipe: Option<Pipe> = None;
    loop {
        if *remaining == 0 {
            if let Some(p) = pipe.take() {
                release(p);
            }
            return Ok(Some(End::Limit));
        }
        src.readable().await?;
        let p = match pipe.take() {
            Some(p) => p,
            None => match acquire() {
                Ok(p) => p,
                Err(_) => return Ok(None),
            },
        };
        let want = usize::try_from(*remaining).map_or(SPLICE_LEN, |r| r.min(SPLICE_LEN));
        // Only ever spliced into an empty pipe, so EAGAIN means "socket drained" and not
        // "pipe full" (which would wrongly clear the socket's readiness).
        let mut pending = match src.try_io(Interest::READABLE, || splice(src, &p.w, want)) {
            Ok(0) => {
                release(p);
                return Ok(Some(End::Eof));
            }
            Ok(k) => k,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                // Idle again: the pipe goes back to the pool until the next byte.
                release(p);
                continue;
            }
            Err(e) if unsupported(&e) => {
                release(p);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        while pending > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || splice(&p.r, dst, pending)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    pending -= k;
                    n.fetch_add(k as u64, Ordering::Relaxed);
                    *remaining -= k as u64;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(e) if unsupported(&e) => {
                    drain(&p, dst, pending, n).await?;
                    *remaining -= pending as u64;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        pipe = Some(p);
    }
}

/// Copy what is left in the pipe to `dst` the slow way (splicing out was refused).
async fn drain<D: Sock>(p: &Pipe, dst: &D, pending: usize, n: &AtomicU64) -> io::Result<()> {
    let mut buf = vec![0u8; pending];
    let mut got = 0;
    while got < pending {
        match nix::unistd::read(&p.r, &mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => return Err(e.into()),
        }
    }
    write_all(dst, &buf[..got]).await?;
    n.fetch_add(got as u64, Ordering::Relaxed);
    Ok(())
}

/// The fallback: read into a buffer, write it out.
async fn copy_loop<S: Sock, D: Sock>(src: &S, dst: &D, remaining: &mut u64, n: &AtomicU64) -> io::Result<End> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if *remaining == 0 {
            return Ok(End::Limit);
        }
        src.readable().await?;
        if buf.is_empty() {
            buf.resize(COPY_BUF, 0);
        }
        let want = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
        match src.try_read(&mut buf[..want]) {
            Ok(0) => return Ok(End::Eof),
            Ok(k) => {
                write_all(dst, &buf[..k]).await?;
                n.fetch_add(k as u64, Ordering::Relaxed);
                *remaining -= k as u64;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// Unix → TCP with a limit stops at the limit and leaves the rest in the socket.
    #[test]
    fn limit_leaves_the_rest() {
        rt().block_on(async {
            let (a, mut a_peer) = UnixStream::pair().unwrap();
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (b, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
            let (b, (mut b_peer, _)) = (b.unwrap(), accepted.unwrap());
            a_peer.write_all(b"0123456789tail").await.unwrap();
            let n = AtomicU64::new(0);
            pump(&a, &b, Some(10), &n).await.unwrap();
            assert_eq!(n.load(Ordering::Relaxed), 10);
            let mut got = [0u8; 10];
            b_peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"0123456789");
            let mut rest = [0u8; 4];
            a.try_read(&mut rest).unwrap();
            assert_eq!(&rest, b"tail");
        });
    }

    /// Bulk data both ways, EOF passed on as a write shutdown; pipes are pooled.
    #[test]
    fn bulk_and_half_close() {
        rt().block_on(async {
            let (a, mut a_peer) = UnixStream::pair().unwrap();
            let (b, mut b_peer) = UnixStream::pair().unwrap();
            let data: Vec<u8> = (0..3_000_000u32).map(|i| u8::try_from(i * 7 % 251).unwrap()).collect();
            let n = AtomicU64::new(0);
            let writer = async {
                a_peer.write_all(&data).await.unwrap();
                a_peer.shutdown().await.unwrap();
            };
            let reader = async {
                let mut got = Vec::new();
                b_peer.read_to_end(&mut got).await.unwrap();
                got
            };
            let (r, (), got) = tokio::join!(pump(&a, &b, None, &n), writer, reader);
            r.unwrap();
            assert_eq!(n.load(Ordering::Relaxed), data.len() as u64);
            assert!(got == data);
            assert!(POOL.with_borrow(Vec::len) >= 1);
        });
    }

    /// The fallback copy path keeps the same semantics (limit, count).
    #[test]
    fn copy_fallback_respects_the_limit() {
        rt().block_on(async {
            let (a, mut a_peer) = UnixStream::pair().unwrap();
            let (b, mut b_peer) = UnixStream::pair().unwrap();
            a_peer.write_all(b"abcdefgh").await.unwrap();
            let n = AtomicU64::new(0);
            let mut remaining = 5;
            assert!(matches!(copy_loop(&a, &b, &mut remaining, &n).await.unwrap(), End::Limit));
            assert_eq!(n.load(Ordering::Relaxed), 5);
            let mut got = [0u8; 5];
            b_peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"abcde");
        });
    }
}
