//! What both front ends share: the proxy-wide state ([`Shared`]), the per-connection context
//! ([`Ctx`]: policy snapshot, deadline, audit record, limit slots), why a target could not be
//! reached ([`Failure`]), dialling ([`Ctx::establish`]) and the CONNECT relay ([`tunnel`]).
//!
//! It depends only on [`crate::policy`], [`crate::audit`] and [`crate::pump`]; the front ends
//! ([`crate::http`], [`crate::socks`]) and the accept loop ([`crate::server`]) depend on it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

use crate::audit::{AuditLog, ClientKind, Record, Verdict};
use crate::policy::{Denial, Host, Policy, Route};
use crate::pump::pump;

/// State shared by every connection.
pub(crate) struct Shared {
    policy: RwLock<Arc<Policy>>,
    pub(crate) audit: AuditLog,
    tunnels: AtomicUsize,
    handshaking: AtomicUsize,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// `shutdown` turns `true` when the proxy stops; open tunnels end then.
    pub(crate) fn new(policy: Policy, audit: AuditLog, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            policy: RwLock::new(Arc::new(policy)),
            audit,
            tunnels: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
            shutdown,
        }
    }

    /// The current policy (a snapshot: a reload does not change it).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replace the policy for connections that start from now on.
    pub(crate) fn set_policy(&self, p: Policy) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(p);
    }

    /// One of at most `max` handshake slots, or `None` when all are taken.
    pub(crate) fn take_handshake_slot(&self, max: usize) -> Option<Slot<'_>> {
        take_slot(&self.handshaking, max)
    }

    /// Tunnels open now (established and not yet audited).
    pub(crate) fn open_tunnels(&self) -> usize {
        self.tunnels.load(Ordering::Acquire)
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

/// Escape for a plain-text body or an audit field: printable ASCII kept, the rest as `\xNN`.
pub(crate) fn escape(s: &str) -> String {
    s.bytes().flat_map(std::ascii::escape_default).map(char::from).collect()
}

/// Per-connection context: the policy snapshot, the deadline and the audit record.
pub(crate) struct Ctx<'a> {
    shared: &'a Shared,
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
    /// A context holding the handshake slot `hs`, with an empty `decision` record.
    pub(crate) fn new(
        shared: &'a Shared,
        policy: Arc<Policy>,
        deadline: Instant,
        client: ClientKind,
        hs: Slot<'a>,
    ) -> Self {
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
            Route::Resolve(name) => self.resolve(&name, port, connect_timeout).await?,
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

    /// Resolve `name` and keep the addresses the policy allows (in order, without
    /// duplicates); none allowed is the first denial (or [`Failure::NoAddress`]).
    async fn resolve(&self, name: &str, port: u16, within: Duration) -> Result<Vec<IpAddr>, Failure> {
        let addrs = timeout(within, tokio::net::lookup_host((name, port)))
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
        Ok(ok)
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
