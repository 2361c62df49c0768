//! A loopback port inside the cell carried to a sidecar's unix socket.

use std::path::PathBuf;

/// One bridged port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Loopback port inside the cell.
    pub port: u16,
    /// Unix socket (inside path) connections are carried to.
    pub socket: PathBuf,
}

impl std::str::FromStr for Bridge {
    type Err = String;

    /// Parses `PORT=SOCKET`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, socket) = s.split_once('=').ok_or_else(|| format!("bridge {s:?} is not PORT=SOCKET"))?;
        let port: u16 = port.parse().map_err(|_| format!("bridge {s:?}: {port:?} is not a port"))?;
        if port == 0 || !socket.starts_with('/') {
            return Err(format!("bridge {s:?}: need a non-zero port and an absolute socket path"));
        }
        Ok(Self { port, socket: socket.into() })
    }
}

impl std::fmt::Display for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.port, self.socket.display())
    }
}

/// The byte the launcher sends on a spare connection of a published port's socket when it
/// pairs it with a host client (see [`crate::host::publish`]): `cell-init` then dials the
/// cell's port.
pub const PUBLISH_GO: u8 = b'G';
