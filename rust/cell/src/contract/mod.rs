//! The contract between the host side (the launcher, `host/`) and the inside of a cell
//! (`cell-init`, `inside/`): where things are inside a cell, which descriptors carry what,
//! exit codes, signals, and the spec the launcher hands to `cell-init` ([`InitSpec`]). Host and inside
//! code meet only here (and in [`crate::sys`], the OS helpers both use).

pub mod bridge;
pub mod fragment;
pub mod init;
pub mod login;
pub mod probe;

pub use bridge::{Bridge, PUBLISH_GO};
pub use fragment::{ordered, Action, FailurePolicy, Fragment};
pub use init::{InitSpec, Launch, ProbeRun, SpecError, SPEC_FILE, TASK_FILE};
pub use login::{LoginSpec, StorageState};
pub use probe::{Case, HostPath, ProbeContext, ProbeResult, CASES};

use nix::sys::signal::Signal;

/// Where `cell-init` is mounted inside every cell.
pub const INIT_PATH: &str = "/run/cell/cell-init";

/// File descriptor on which bubblewrap reports the cell's status to the launcher.
pub const STATUS_FD: i32 = 3;

/// First file descriptor the launcher hands bubblewrap after the status pipe; which one
/// carries what is decided in one place, `crate::host::descriptors`.
pub const DATA_FD_BASE: i32 = 4;

/// Where sidecar sockets appear inside a cell (the host runtime directory's `sockets/`).
pub const SOCKETS_DIR: &str = "/run/cell/sockets";

/// In-cell HTTP proxy port (bridged to `cell-egress`).
pub const HTTP_PROXY_PORT: u16 = 3128;

/// In-cell SOCKS5 port (bridged to `cell-egress`).
pub const SOCKS_PORT: u16 = 1080;

/// Where the state directory is bound.
pub const STATE_DIR: &str = "/run/cell/state";

/// Where the patches directory is bound.
pub const PATCHES_DIR: &str = "/patches";

/// Where script fragments are bound.
pub const SCRIPTS_DIR: &str = "/run/cell/fragments";

/// The browser profile whose stale singleton files are swept.
pub const CHROMIUM_PROFILE: &str = ".config/chromium";

/// Where the declared servers are handed to `cell-init`.
pub const SERVERS_FILE: &str = "/run/cell/mcp-servers.json";

/// Exit code when `cell-init` itself fails before the command runs.
pub const EXIT_INIT_FAILED: u8 = 125;

/// Exit code when the command cannot be executed.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Signals passed on: by the launcher to `cell-init`, and by `cell-init` to the command.
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Where the private git directory appears inside when the worktree's `.git` is a file.
pub const PRIVATE_INSIDE: &str = "/run/cell/git";

/// Where the host's object stores appear inside (read-only).
pub const HOST_OBJECTS_INSIDE: &str = "/run/cell/git-host";

/// Exit code of the driver when a signal cancelled the login (the browser was still
/// closed gracefully; nothing was exported).
pub const EXIT_CANCELLED: u8 = 3;

/// Where the browser's output goes, relative to `$HOME`.
pub const BROWSER_LOG: &str = ".cache/cell/login-browser.log";
