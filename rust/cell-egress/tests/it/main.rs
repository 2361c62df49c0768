//! Integration tests: the real `cell-egress` binary on a temporary UNIX socket, upstreams
//! are this process's own listeners on `127.0.0.1` / `::1`. Nothing else is ever contacted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::many_single_char_names)]

mod harness;
mod http;
mod lifecycle;
mod limits;
mod socks;
