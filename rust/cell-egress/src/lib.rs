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
//! Refusals: HTTP 403 with body `cell-egress: denied <target>: <reason>`, 400 malformed,
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
//! with `default-features = false` the crate is only [`policy`] and [`audit`].

pub mod audit;
pub mod policy;

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
