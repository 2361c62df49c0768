//! The start-up contract every host-side sidecar of a cell follows (`cell-egress` is the
//! first): listen on a UNIX socket that only its owner can open, then tell the launcher it
//! is ready.
//!
//! The launcher starts a sidecar with `--ready-fd 3`, fd 3 being the write end of a pipe,
//! and waits until it reads [`READY`] followed by end of file. A sidecar therefore:
//!
//! 1. claims the fd at start-up, before it opens anything, with [`ready_fd`] (which fails
//!    if the number names no open descriptor);
//! 2. binds its socket with [`bind_private`] (mode 0600 from the first moment);
//! 3. once it accepts connections, calls [`signal_ready`], which writes [`READY`] and closes
//!    the fd (the launcher sees end of file).
//!
//! A sidecar that fails before step 3 just exits: a [`ReadyFd`] dropped without signalling
//! leaves the descriptor open, so the launcher sees end of file only when the process is
//! gone and its exit status can be collected.
//!
//! This module needs only `std` and `nix` (feature `sidecar`, part of the default `proxy`
//! feature): a sidecar that does not use tokio can use it too. A tokio sidecar converts the
//! listener with `tokio::net::UnixListener::from_std` after `set_nonblocking(true)`.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::sys::stat::{umask, Mode};

/// What [`signal_ready`] writes.
pub const READY: &[u8] = b"ready\n";

/// The readiness descriptor, claimed. [`signal_ready`] closes it; dropping it does not
/// (the process's exit does: see the module documentation).
#[derive(Debug)]
pub struct ReadyFd(ManuallyDrop<OwnedFd>);

impl AsFd for ReadyFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// [`ready_fd`] was given a number that is not an open file descriptor.
#[derive(Debug, thiserror::Error)]
#[error("fd {fd} is not an open file descriptor")]
pub struct NotOpen {
    pub fd: RawFd,
}

/// Take ownership of the inherited readiness descriptor `fd` (the `--ready-fd` argument).
///
/// Call it once, at start-up, before the process opens files or sockets of its own: the
/// number must name a descriptor the process inherited and that nothing else in it uses,
/// as [`signal_ready`] closes it.
///
/// # Errors
/// [`NotOpen`] when no descriptor `fd` is open.
pub fn ready_fd(fd: RawFd) -> Result<ReadyFd, NotOpen> {
    // SAFETY: fcntl(F_GETFD) takes any integer and only reads this process's descriptor
    // table (EBADF when `fd` is not open); no memory is passed. There is no safe nix
    // wrapper for a bare number: nix's `fcntl` wants a `BorrowedFd`, whose constructor
    // already requires the descriptor to be open, which is what is checked here.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(NotOpen { fd });
    }
    // SAFETY: `fd` is open (checked just above) and, as this function's contract states,
    // was inherited and is used by nothing else in the process, so the `OwnedFd` is its only
    // owner and closing it on drop closes nobody else's descriptor. Claiming an inherited
    // descriptor number is exactly what `from_raw_fd` is for; nix has no safe equivalent.
    Ok(ReadyFd(ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(fd) })))
}

/// Write [`READY`] to the readiness descriptor and close it.
///
/// # Errors
/// The write failed (the launcher went away, or the fd is not writable).
pub fn signal_ready(fd: ReadyFd) -> io::Result<()> {
    File::from(ManuallyDrop::into_inner(fd.0)).write_all(READY)
}

/// Create, bind and listen on the UNIX socket `path` with mode 0600 from the start (the
/// umask is `0177` while the socket file is created), then set that mode explicitly. The
/// socket is close-on-exec and blocking; `path` must not exist.
///
/// The umask is process-wide: call this while no other thread creates files.
///
/// # Errors
/// Binding or listening failed (e.g. `path` exists), or the mode could not be set.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::IntoRawFd;

    #[test]
    fn ready_writes_the_line_and_closes() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let fd = ready_fd(w.into_raw_fd()).unwrap();
        signal_ready(fd).unwrap();
        let mut got = Vec::new();
        File::from(r).read_to_end(&mut got).unwrap(); // EOF: the write end was closed
        assert_eq!(got, READY);
    }

    #[test]
    fn dropping_without_signalling_leaves_the_fd_open() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let raw = w.into_raw_fd();
        {
            let _claimed = ready_fd(raw).unwrap();
        } // dropped here
          // Still open: it can be claimed again and signalled through.
        signal_ready(ready_fd(raw).unwrap()).unwrap();
        let mut got = Vec::new();
        File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, READY);
    }

    #[test]
    fn a_number_that_is_not_open_is_refused() {
        // Far above any descriptor this test process opens (they are allocated lowest first).
        for n in [-1, 1 << 30] {
            assert_eq!(ready_fd(n).unwrap_err().fd, n);
        }
    }

    #[test]
    fn the_socket_is_private_and_the_umask_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let before = umask(Mode::from_bits_truncate(0o022));
        let _listener = bind_private(&path).unwrap();
        let now = umask(before);
        assert_eq!(now.bits(), 0o022);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(bind_private(&path).is_err(), "an existing path is refused");
    }
}
