//! A loopback port inside the cell carried to a sidecar's unix socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One bridged port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bridge {
    /// Loopback port inside the cell.
    pub port: u16,
    /// Unix socket (inside path) connections are carried to.
    pub socket: PathBuf,
}

impl std::fmt::Display for Bridge {
    /// `PORT=SOCKET`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.port, self.socket.display())
    }
}

/// The byte the launcher sends on a spare connection of a published port's socket when it
/// pairs it with a host client (see [`crate::host::publish`]): `cell-init` then dials the
/// cell's port.
pub const PUBLISH_GO: u8 = b'G';
