//! `cell-egress --listen SOCKET --policy POLICY.json --audit AUDIT.jsonl --cell NAME`

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;

/// Egress proxy of one cell: HTTP forward proxy and SOCKS5 on a UNIX socket, allowlist
/// policy, JSON-lines audit log. SIGHUP reloads the policy; SIGTERM/SIGINT stop it.
#[derive(Debug, Parser)]
#[command(name = "cell-egress", version)]
struct Args {
    /// UNIX socket to create and listen on (mode 0600; must not exist yet).
    #[arg(long, value_name = "SOCKET_PATH")]
    listen: PathBuf,
    /// Policy file (JSON: allow, hosts, limits); re-read on SIGHUP.
    #[arg(long, value_name = "POLICY.json")]
    policy: PathBuf,
    /// Audit log, appended one JSON object per line (created 0600).
    #[arg(long, value_name = "AUDIT.jsonl")]
    audit: PathBuf,
    /// Cell name recorded in every audit line.
    #[arg(long, value_name = "NAME")]
    cell: String,
    /// Write "ready\n" to this fd and close it once the socket is listening.
    #[arg(long, value_name = "N")]
    ready_fd: Option<RawFd>,
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.cell.is_empty() {
        bail!("--cell must not be empty");
    }
    if args.ready_fd.is_some_and(|fd| fd < 3) {
        bail!("--ready-fd must be 3 or higher (0-2 are stdio)");
    }
    let config = cell_egress::Config {
        listen: args.listen,
        policy: args.policy,
        audit: args.audit,
        cell: args.cell,
        ready_fd: args.ready_fd,
    };
    cell_egress::run(&config).with_context(|| format!("cell-egress for cell {:?}", config.cell))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cell-egress: {e:#}");
            ExitCode::FAILURE
        }
    }
}
