//! Start-up, the accept loop and signals: reads each client's first byte and hands the
//! connection to the HTTP or the SOCKS5 front end.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use crate::audit::{AuditLog, ClientKind, Verdict};
use crate::conn::{Ctx, Shared};
use crate::policy::{Policy, PolicyError};
use crate::sidecar::{self, ReadyFd};

/// Connections still sending their request head, at most; more are closed at once.
const MAX_HANDSHAKING: usize = 1024;
/// How long open tunnels get to finish their audit lines on SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Validated command-line configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: PathBuf,
    pub policy: PathBuf,
    pub audit: PathBuf,
    pub cell: String,
    pub ready_fd: Option<RawFd>,
}

/// Startup failures (after startup the proxy only logs).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot open audit log {path}")]
    Audit {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {path}")]
    Listen {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("--ready-fd {fd} is not an open file descriptor")]
    ReadyFd { fd: RawFd },
    #[error("cannot signal readiness on fd {fd}")]
    Ready {
        fd: RawFd,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the async runtime or signal handlers")]
    Runtime(#[source] io::Error),
}

/// Run the proxy until SIGTERM/SIGINT.
///
/// # Errors
/// Startup failures: policy, audit file, socket, readiness fd, runtime.
pub fn run(config: &Config) -> Result<(), ServeError> {
    let policy = Policy::load(&config.policy)?;
    let ready = config
        .ready_fd
        .map(sidecar::ready_fd)
        .transpose()
        .map_err(|sidecar::NotOpen { fd }| ServeError::ReadyFd { fd })?;
    let audit = AuditLog::open(&config.audit, &config.cell)
        .map_err(|source| ServeError::Audit { path: config.audit.display().to_string(), source })?;
    raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(serve(config, ready, policy, audit))
}

/// Every tunnel holds two sockets (and, while bytes are in flight, a pipe per direction):
/// lift the soft fd limit to the hard one. Best effort.
fn raise_nofile_limit() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                eprintln!("cell-egress: cannot raise the open-file limit: {}", io::Error::from(e));
            }
        }
    }
}

/// Bind the private socket (see [`sidecar::bind_private`]) and register it with the runtime.
fn listen(path: &Path) -> io::Result<UnixListener> {
    let listener = sidecar::bind_private(path)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

async fn serve(config: &Config, ready: Option<ReadyFd>, policy: Policy, audit: AuditLog) -> Result<(), ServeError> {
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Runtime)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
    let listener = listen(&config.listen)
        .map_err(|source| ServeError::Listen { path: config.listen.display().to_string(), source })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(policy, audit, stop_rx));
    if let Some(ready) = ready {
        let fd = ready.as_fd().as_raw_fd();
        if let Err(source) = sidecar::signal_ready(ready) {
            let _ = std::fs::remove_file(&config.listen);
            return Err(ServeError::Ready { fd, source });
        }
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move { handle(stream, shared).await });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("cell-egress: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = hup.recv() => reload(&config.policy, &shared),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    if let Err(e) = std::fs::remove_file(&config.listen) {
        eprintln!("cell-egress: cannot remove {}: {e}", config.listen.display());
    }
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shared.open_tunnels() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn reload(path: &Path, shared: &Shared) {
    let (verdict, reason) = match Policy::load(path) {
        Ok(p) => {
            let n = p.entries().len();
            shared.set_policy(p);
            (Verdict::Allow, format!("policy reloaded ({n} allow entries)"))
        }
        Err(e) => {
            eprintln!("cell-egress: policy reload failed, keeping the old policy: {e}");
            (Verdict::Error, format!("reload failed, old policy kept: {e}"))
        }
    };
    shared.audit.write(&shared.audit.record("reload", verdict, reason));
}

async fn handle(mut stream: UnixStream, shared: Arc<Shared>) {
    let Some(hs) = shared.take_handshake_slot(MAX_HANDSHAKING) else {
        return;
    };
    let policy = shared.policy();
    let limits = *policy.limits();
    let deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
    let mut first = [0u8; 1];
    match timeout_at(deadline, stream.read(&mut first)).await {
        Ok(Ok(1)) => {}
        Ok(_) => return,
        Err(_) => {
            let mut ctx = Ctx::new(&shared, policy, deadline, ClientKind::Http, hs);
            ctx.audit.reason = "handshake timeout".into();
            let _ = crate::http::send_error(&mut stream, 408, &ctx.audit.reason).await;
            ctx.finish(Verdict::Error);
            return;
        }
    }
    if first[0] == 0x05 {
        let ctx = Ctx::new(&shared, policy, deadline, ClientKind::Socks5, hs);
        crate::socks::serve(stream, ctx).await;
    } else {
        let ctx = Ctx::new(&shared, policy, deadline, ClientKind::Http, hs);
        crate::http::serve(stream, first[0], ctx).await;
    }
}
