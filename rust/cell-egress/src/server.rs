//! Accept loop, signals, limits, dialling and byte pumping shared by both front ends.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

use crate::audit::{AuditLog, ClientKind, Record, Verdict};
use crate::policy::{Denial, Host, Policy, PolicyError, Route};
use crate::pump::pump;

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

/// State shared by every connection.
pub(crate) struct Shared {
    policy: RwLock<Arc<Policy>>,
    pub(crate) audit: AuditLog,
    tunnels: AtomicUsize,
    handshaking: AtomicUsize,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set_policy(&self, p: Policy) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(p);
    }
}

/// Counts one slot of a counter while alive.
pub(crate) struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take_slot(counter: &AtomicUsize, max: usize) -> Option<Slot<'_>> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
        .ok()
        .map(|_| Slot(counter))
}

/// Run the proxy until SIGTERM/SIGINT.
///
/// # Errors
/// Startup failures: policy, audit file, socket, readiness fd, runtime.
pub fn run(config: &Config) -> Result<(), ServeError> {
    let policy = Policy::load(&config.policy)?;
    if let Some(fd) = config.ready_fd {
        // SAFETY: F_GETFD only inspects the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(ServeError::ReadyFd { fd });
        }
    }
    let audit = AuditLog::open(&config.audit, &config.cell)
        .map_err(|source| ServeError::Audit { path: config.audit.display().to_string(), source })?;
    raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(serve(config, policy, audit))
}

/// Every tunnel holds two sockets (and, while bytes are in flight, a pipe per direction):
/// lift the soft fd limit to the hard one. Best effort.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) != 0 {
                eprintln!("cell-egress: cannot raise the open-file limit: {}", io::Error::last_os_error());
            }
        }
    }
}

fn bind_private(path: &Path) -> io::Result<UnixListener> {
    // Create the socket 0600 from the start (no window with umask permissions).
    // SAFETY: umask has no memory-safety preconditions; nothing else creates files now.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn signal_ready(fd: RawFd) -> io::Result<()> {
    // SAFETY: the fd was checked open at startup and nothing else in this process owns it;
    // the File closes it when dropped.
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(b"ready\n")
}

async fn serve(config: &Config, policy: Policy, audit: AuditLog) -> Result<(), ServeError> {
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Runtime)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
    let listener = bind_private(&config.listen)
        .map_err(|source| ServeError::Listen { path: config.listen.display().to_string(), source })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        policy: RwLock::new(Arc::new(policy)),
        audit,
        tunnels: AtomicUsize::new(0),
        handshaking: AtomicUsize::new(0),
        shutdown: stop_rx,
    });
    if let Some(fd) = config.ready_fd {
        if let Err(source) = signal_ready(fd) {
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
    while shared.tunnels.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
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
    let Some(hs) = take_slot(&shared.handshaking, MAX_HANDSHAKING) else {
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

/// Per-connection context: the policy snapshot, the deadline and the audit record.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) policy: Arc<Policy>,
    pub(crate) deadline: Instant,
    pub(crate) audit: Record,
    handshake: Option<Slot<'a>>,
    tunnel: Option<Slot<'a>>,
    finished: bool,
}

/// Why a target could not be reached.
#[derive(Debug)]
pub(crate) enum Failure {
    Denied(Denial),
    TooManyTunnels(usize),
    Resolve(io::Error),
    NoAddress,
    Connect(io::Error),
    Timeout,
}

impl Failure {
    pub(crate) fn verdict(&self) -> Verdict {
        match self {
            Failure::Denied(_) | Failure::TooManyTunnels(_) => Verdict::Deny,
            _ => Verdict::Error,
        }
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Failure::Denied(d) => d.to_string(),
            Failure::TooManyTunnels(n) => format!("tunnel limit reached ({n} open)"),
            Failure::Resolve(e) => format!("cannot resolve: {e}"),
            Failure::NoAddress => "name has no addresses".into(),
            Failure::Connect(e) => format!("upstream connect failed: {e}"),
            Failure::Timeout => "upstream connect timed out".into(),
        }
    }
}

impl<'a> Ctx<'a> {
    fn new(shared: &'a Shared, policy: Arc<Policy>, deadline: Instant, client: ClientKind, hs: Slot<'a>) -> Self {
        let mut audit = shared.audit.record("decision", Verdict::Error, String::new());
        audit.client = Some(client);
        Self { shared, policy, deadline, audit, handshake: Some(hs), tunnel: None, finished: false }
    }

    /// Decide, resolve, check and dial. On success the tunnel slot is held until
    /// [`Ctx::finish`] and the audit record names the dialled address.
    pub(crate) async fn establish(&mut self, host: &Host, port: u16) -> Result<TcpStream, Failure> {
        self.audit.host = Some(host.to_string());
        self.audit.port = Some(port);
        let route = self.policy.decide(host, port).map_err(Failure::Denied)?;
        let max = self.policy.limits().max_tunnels;
        let slot = take_slot(&self.shared.tunnels, max).ok_or(Failure::TooManyTunnels(max))?;
        self.tunnel = Some(slot);
        let connect_timeout = Duration::from_millis(self.policy.limits().handshake_timeout_ms);
        let candidates: Vec<IpAddr> = match route {
            Route::Direct(ip) => vec![ip],
            Route::Resolve(name) => {
                let addrs = timeout(connect_timeout, tokio::net::lookup_host((name.as_str(), port)))
                    .await
                    .map_err(|_| Failure::Timeout)?
                    .map_err(Failure::Resolve)?;
                let mut ok = Vec::new();
                let mut first_denial = None;
                for a in addrs {
                    match self.policy.check_resolved(a.ip(), port) {
                        Ok(ip) if !ok.contains(&ip) => ok.push(ip),
                        Ok(_) => {}
                        Err(d) => {
                            first_denial.get_or_insert(d);
                        }
                    }
                }
                if ok.is_empty() {
                    return Err(first_denial.map_or(Failure::NoAddress, Failure::Denied));
                }
                ok
            }
        };
        let mut last = Failure::NoAddress;
        for ip in candidates {
            self.audit.address = Some(ip.to_string());
            match timeout(connect_timeout, TcpStream::connect(SocketAddr::new(ip, port))).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = Failure::Connect(e),
                Err(_) => last = Failure::Timeout,
            }
        }
        Err(last)
    }

    /// The handshake is over (successfully or not): free the handshake slot.
    pub(crate) fn handshake_done(&mut self) {
        self.handshake = None;
    }

    /// Record a failure (and drop the tunnel slot).
    pub(crate) fn fail(&mut self, f: &Failure) {
        self.tunnel = None;
        self.audit.reason = f.reason();
        self.finish(f.verdict());
    }

    /// Write the audit line once.
    pub(crate) fn finish(&mut self, verdict: Verdict) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.audit.verdict = verdict;
        self.audit.time = crate::audit::rfc3339_now();
        self.shared.audit.write(&self.audit);
    }

    /// A receiver that fires when the proxy shuts down.
    pub(crate) fn shutdown(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.clone()
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if self.audit.reason.is_empty() {
                "connection closed during handshake".clone_into(&mut self.audit.reason);
            }
            self.finish(Verdict::Error);
        }
    }
}

/// Pump both directions until both are done, an error, or shutdown; fills the byte counts
/// of the audit record.
pub(crate) async fn tunnel(ctx: &mut Ctx<'_>, client: &mut UnixStream, upstream: &mut TcpStream) {
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let mut stop = ctx.shutdown();
    let (client, upstream): (&UnixStream, &TcpStream) = (client, upstream);
    let result = tokio::select! {
        r = async {
            tokio::try_join!(pump(client, upstream, None, &up), pump(upstream, client, None, &down))
        } => r.map(|_| "closed"),
        _ = stop.wait_for(|s| *s) => Ok("proxy shutting down"),
    };
    ctx.audit.bytes_up += up.load(Ordering::Relaxed);
    ctx.audit.bytes_down += down.load(Ordering::Relaxed);
    ctx.audit.reason = match result {
        Ok(r) => r.to_owned(),
        Err(e) => format!("closed: {e}"),
    };
}
