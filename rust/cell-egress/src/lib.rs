//! `cell-egress`: the host-side egress proxy of one cell.
//!
//! It listens on a UNIX socket in the cell's runtime dir (cell-init bridges the cell's
//! loopback proxy ports to it) and speaks both an HTTP/1.1 forward proxy (CONNECT and
//! absolute-form plain `http://`) and SOCKS5 (no auth, CONNECT), told apart by the first
//! byte. Every target is judged by [`policy::Policy`]; every decision is appended to a
//! JSON-lines audit log ([`audit`]).
//!
//! # Interface
//!
//! `cell-egress --listen SOCKET --policy POLICY.json --audit AUDIT.jsonl --cell NAME
//! [--ready-fd N]`. The socket is created 0600 and must not exist; once it listens,
//! `ready\n` is written to fd N, which is then closed. SIGHUP re-reads the policy (new
//! connections only; a bad file is logged and the old policy kept); SIGTERM/SIGINT stop
//! accepting, remove the socket, close open tunnels (auditing them) and exit 0.
//!
//! Refusals: HTTP 403 with body (and status line) `cell-egress: denied <target> (<reason>)`
//! and, when an allow entry would lift it, `; rerun with --allow <entry>, or add "<entry>"
//! to network.allow`; 400 malformed,
//! 405 TRACE/TRACK, 408 handshake timeout, 431 head too large, 501 unsupported
//! Transfer-Encoding, 502 upstream unreachable, 503 tunnel limit; SOCKS5 replies 0x01
//! (limit), 0x02 (policy), 0x03/0x04/0x05 (network), 0x07 (command), 0x08 (address type).
//!
//! Audit line (`event` is `decision` or `reload`):
//! `{"time":"2026-01-02T03:04:05.678Z","event":"decision","cell":"dev","client":"http",
//! "method":"CONNECT","host":"api.example.test","port":443,"address":"203.0.113.7",
//! "verdict":"allow","reason":"closed","bytesUp":812,"bytesDown":5120}`
//!
//! [`policy`] has no async dependencies so the launcher can use it to validate configs;
//! with `default-features = false` the crate is only [`policy`] and [`audit`]. The feature
//! `sidecar` adds [`sidecar`] (start-up contract of every host-side sidecar: private socket,
//! `--ready-fd`), which needs `nix` but not tokio; `proxy` (the default) includes it.
//!
//! # Modules
//!
//! Who uses whom (`A -> B`: A imports B). There is no cycle; the front ends never reach
//! back into the accept loop, and the leaves use nothing else in the crate.
//!
//! ```text
//! main (bin) -> server (via the crate root: run, Config, ServeError)
//! server     -> http, socks, conn, sidecar, policy, audit
//! http       -> conn, pump, policy, audit
//! socks      -> conn, policy, audit
//! conn       -> pump, policy, audit
//! pump, sidecar, policy, audit -> (nothing in the crate)
//! ```
//!
//! - `server`: start-up, accept loop, signals, policy reload; picks the front end by the
//!   first byte.
//! - `http`, `socks`: the two front ends (parse, refuse, reply); each calls
//!   `Ctx::establish` and then relays.
//! - `conn`: what the front ends share: proxy-wide state, the per-connection context
//!   (policy snapshot, deadline, audit record, limit slots), the failure type, dialling and
//!   the CONNECT relay (`tunnel`).
//! - `pump`: moving bytes socket to socket (`splice(2)`, copy fallback).
//! - [`sidecar`]: private socket and readiness fd, the start-up contract of every sidecar.
//! - [`policy`], [`audit`]: the allowlist and the audit log.

pub mod audit;
pub mod policy;
#[cfg(feature = "sidecar")]
pub mod sidecar;

#[cfg(feature = "proxy")]
mod conn;
#[cfg(feature = "proxy")]
mod http;
#[cfg(feature = "proxy")]
mod pump;
#[cfg(feature = "proxy")]
mod server;
#[cfg(feature = "proxy")]
mod socks;

#[cfg(feature = "proxy")]
pub use server::{run, Config, ServeError};
