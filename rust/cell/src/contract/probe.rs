//! The escape catalog: what the host tells the probes, what they report, and the cases.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

/// What the host tells the probes (paths and ports that exist only on the host side).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProbeContext {
    /// The worktree (the probes' playground).
    pub worktree: Utf8PathBuf,
    /// A host file outside every bind, holding `secret`.
    pub secret_file: Utf8PathBuf,
    /// Its contents.
    pub secret: String,
    /// A host directory outside every bind.
    pub outside_dir: Utf8PathBuf,
    /// A file in the host's /tmp (the cell's /tmp must not show it).
    pub host_tmp_entry: String,
    /// Host paths (in the user's real home) that must not be visible, with the identity
    /// they have on the host: the cell's own home may hold a file of the same name.
    pub host_only_paths: Vec<HostPath>,
    /// Host unix sockets worth trying (D-Bus, ssh-agent, docker, nix daemon, X11).
    pub host_sockets: Vec<Utf8PathBuf>,
    /// An abstract unix socket the host listens on.
    pub host_abstract: String,
    /// A TCP port the host listens on at 127.0.0.1.
    pub host_tcp_port: u16,
    /// A UDP port the host listens on at 127.0.0.1.
    pub host_udp_port: u16,
    /// The launcher's pid on the host (must be invisible).
    pub host_pid: u32,
    /// Marker for a process started in the background (the host checks it died).
    pub background_token: String,
    /// Whether the cell uses the egress proxy.
    pub proxy: bool,
}

/// A host path and its identity (device and inode) as the host sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostPath {
    /// The path.
    pub path: Utf8PathBuf,
    /// `st_dev` on the host.
    pub dev: u64,
    /// `st_ino` on the host.
    pub ino: u64,
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeResult {
    /// Case id.
    pub id: String,
    /// Whether the cell held.
    pub ok: bool,
    /// What was observed.
    pub detail: String,
}

/// One case of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short id.
    pub id: &'static str,
    /// `filesystem`, `process`, `network` or `lifecycle`.
    pub family: &'static str,
    /// What the attack is and what holding it proves.
    pub proves: &'static str,
}

/// Every case, in report order.
pub const CASES: &[Case] = &[
    Case {
        id: "fs-read-outside",
        family: "filesystem",
        proves: "host files outside the binds (a planted secret, your home) cannot be read",
    },
    Case {
        id: "fs-write-outside",
        family: "filesystem",
        proves: "nothing outside the worktree and cell home can be written (/, /etc, /usr, host paths)",
    },
    Case { id: "fs-symlink", family: "filesystem", proves: "a symlink in the worktree pointing outside leads nowhere" },
    Case { id: "fs-hardlink", family: "filesystem", proves: "a host file cannot be hard-linked into the worktree" },
    Case {
        id: "fs-protected",
        family: "filesystem",
        proves: "what the cell writes in .git stays in its own git directory, a protected file cannot be written, what it creates at .mcp.json or .vscode/ is set aside on the host, .git cannot be moved away",
    },
    Case { id: "fs-proc-root", family: "filesystem", proves: "/proc/*/root leads only into the cell's own view" },
    Case { id: "fs-host-tmp", family: "filesystem", proves: "the host's /tmp is not shared" },
    Case {
        id: "fs-proc-sys",
        family: "filesystem",
        proves: "no file under /proc/sys (kernel.core_pattern ...), /proc/sysrq-trigger, /proc/irq or /proc/bus opens for writing; the sysctls read are the cell's own",
    },
    Case {
        id: "fs-setid",
        family: "filesystem",
        proves: "no setuid or setgid file can be made in the worktree or /tmp (chmod family, open family with O_CREAT or O_TMPFILE, mknod family); openat2 answers ENOSYS",
    },
    Case { id: "pk-pids", family: "process", proves: "only the cell's processes are visible; pid 1 is cell-init" },
    Case { id: "pk-ptrace", family: "process", proves: "ptrace and cross-process memory access are denied" },
    Case { id: "pk-caps", family: "process", proves: "no capabilities; no-new-privileges is set" },
    Case {
        id: "pk-tiocsti",
        family: "process",
        proves: "keystrokes cannot be injected into the terminal (TIOCSTI, TIOCLINUX)",
    },
    Case { id: "pk-io-uring", family: "process", proves: "io_uring, which bypasses syscall filtering, is denied" },
    Case {
        id: "pk-userns",
        family: "process",
        proves: "no nested user or mount namespaces (unshare, clone, clone3, setns)",
    },
    Case {
        id: "pk-mount",
        family: "process",
        proves: "no mounts, unmounts or new-mount-API calls (protections stay in place)",
    },
    Case {
        id: "pk-kernel",
        family: "process",
        proves: "bpf, perf_event_open, userfaultfd, keyctl, kexec and module loading are denied",
    },
    Case { id: "pk-syscall-abi", family: "process", proves: "the filter cannot be sidestepped: x32 and 32-bit syscall entries are denied, exotic personality values refused" },
    Case { id: "pk-vsock", family: "process", proves: "AF_VSOCK sockets (hypervisor, WSL host) are denied" },
    Case {
        id: "pk-host-sockets",
        family: "process",
        proves: "host unix sockets (D-Bus, ssh-agent, docker, nix daemon, X11, abstract ones) are unreachable",
    },
    Case {
        id: "pk-background",
        family: "process",
        proves: "a process started in the background with setsid dies with the cell",
    },
    Case { id: "nw-host-ports", family: "network", proves: "the host's loopback TCP and UDP ports are unreachable" },
    Case { id: "nw-raw", family: "network", proves: "raw and packet sockets (ICMP, sniffing) are denied" },
    Case { id: "nw-routes", family: "network", proves: "only loopback exists, with no route and no resolver" },
    Case {
        id: "nw-proxy",
        family: "network",
        proves: "the proxy refuses what the allowlist does not name, also when relayed inside the cell",
    },
    Case {
        id: "lc-no-jail",
        family: "lifecycle",
        proves: "when bubblewrap cannot build the cell, nothing runs (no unsandboxed fallback)",
    },
    Case {
        id: "lc-no-proxy",
        family: "lifecycle",
        proves: "when the egress proxy cannot start, the cell does not start",
    },
];
