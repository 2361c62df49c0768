//! `cell-egress`: the host-side egress proxy of one cell.
//!
//! It listens on a UNIX socket in the cell's runtime dir (cell-init bridges the cell's
//! loopback proxy ports to it) and speaks both an HTTP/1.1 forward proxy (CONNECT and
//! absolute-form plain `http://`) and SOCKS5 (no auth, CONNECT), told apart by the first
//! byte. Every target is judged by [`policy::Policy`]; every decision is appended to a
//! JSON-lines audit log ([`audit`]).
//!
//! [`policy`] has no async dependencies so the launcher can use it to validate configs;
//! with `default-features = false` the crate is only [`policy`] and [`audit`].

pub mod audit;
pub mod policy;

#[cfg(feature = "proxy")]
mod http;
#[cfg(feature = "proxy")]
mod server;
#[cfg(feature = "proxy")]
mod socks;

#[cfg(feature = "proxy")]
pub use server::{run, Config, ServeError};
