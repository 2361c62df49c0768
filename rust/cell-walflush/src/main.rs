//! `cell-walflush`: make browser SQLite databases consistent, or snapshot them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cell_walflush::{flush, snapshot, snapshot_dest, Error, Options};
use clap::Parser;

const HELP: &str = "\
What it does, per database:
  WAL database (header bytes 18/19 = 2, or a non-empty <db>-wal)
      PRAGMA wal_checkpoint(TRUNCATE): every committed frame is copied into the main file and
      the -wal is emptied. If another connection keeps reading the log past the timeout, the
      log is not truncated; that is still success when all frames were copied (the main file
      alone holds every commit), and an error when a reader's older snapshot kept some out.
  Rollback-journal database (Chromium's Cookies, for one)
      A hot <db>-journal (its writer died mid-transaction) is rolled back: the half-written
      transaction is undone. The rollback is first rehearsed on a private copy, which must
      pass PRAGMA quick_check, before the database itself is opened read-write.
  Otherwise: \"consistent, nothing to do\".

  Before SQLite opens anything, the 100-byte header is checked (magic \"SQLite format 3\",
  page size, format versions), and then the contents with PRAGMA quick_check on a read-only
  connection. A file that fails is reported and left byte-for-byte as it was. A database, or
  a -journal, -wal or -shm of it, that is a symbolic link is refused, never followed.

  --snapshot DIR writes nothing to the databases: each one is copied to DIR/<file name>
  through the SQLite online backup API inside one read transaction, so the copy is consistent
  even while a browser is writing. (Like any reader, it writes to a WAL database's -shm, the
  shared wal-index, and creates empty -wal/-shm files when they are missing.) A hot journal is
  rolled back in a private copy first. The copy is one self-contained file in rollback-journal
  mode (it opens read-only without -wal or -shm), passes quick_check, is written to a 0600
  temporary file in DIR and renamed over DIR/<file name>; stale -journal/-wal/-shm files of an
  older snapshot are removed. DIR is created (0700) if missing. A browser that holds its
  databases in exclusive locking mode makes them unreadable until it exits: that is reported
  as busy after --timeout-ms.

Output:
  One line per database on stdout, errors on stderr:
    Cookies: hot journal rolled back
    History: wal checkpointed (42 frames), truncated
    Web Data: consistent, nothing to do
    Cookies: snapshot -> /tmp/snap/Cookies
  --json prints one document instead: {\"ok\": bool, \"databases\": [{\"path\", \"ok\", \"mode\",
  \"action\" (nothing_to_do | checkpointed | rolled_back | snapshot), \"frames\", \"truncated\",
  \"snapshot\", \"message\"} or {\"path\", \"ok\": false, \"error\", \"message\"}]}.
  error is one of not_found, not_a_file, symlink, not_sqlite, unsupported, corrupt, busy,
  checkpoint_incomplete, snapshot_is_source, duplicate_snapshot, sqlite, io.

Exit status: 0 every database is consistent (or snapshotted), 1 at least one is not (each is
still tried), 2 usage error.

Examples:
  # after the browser has exited
  cell-walflush ~/.config/chromium/Default/Cookies ~/.config/chromium/Default/History
  # a consistent copy while the browser runs; the profile is not written to
  cell-walflush --snapshot /tmp/profile-copy ~/.config/chromium/Default/Cookies
  # wait at most 1 s for locks, machine-readable report
  cell-walflush --timeout-ms 1000 --json Cookies";

/// Make browser SQLite databases consistent: WAL checkpoint, hot-journal rollback, or a
/// consistent snapshot through the SQLite backup API.
#[derive(Debug, Parser)]
#[command(name = "cell-walflush", version, about, after_long_help = HELP)]
struct Cli {
    /// Database files (the main file, not its -wal or -journal).
    #[arg(value_name = "DB", required = true)]
    dbs: Vec<PathBuf>,
    /// Instead of fixing the databases in place, write a consistent copy of each to
    /// DIR/<file name>; the databases are only read.
    #[arg(long, value_name = "DIR")]
    snapshot: Option<PathBuf>,
    /// How long to wait for a lock held by another process (per wait).
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout_ms: u64,
    /// Print one JSON document on stdout instead of lines.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cell-walflush: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Handles every database; returns whether all of them succeeded.
fn run(cli: &Cli) -> anyhow::Result<bool> {
    let opts = Options { timeout: Duration::from_millis(cli.timeout_ms) };
    let mut dests = HashSet::new();
    let mut all_ok = true;
    let mut entries = Vec::new();
    for db in &cli.dbs {
        let result = match &cli.snapshot {
            None => flush(db, &opts),
            Some(dir) => match snapshot_dest(db, dir) {
                Some(dest) if !dests.insert(dest.clone()) => Err(Error::DuplicateSnapshot { path: db.clone(), dest }),
                _ => snapshot(db, dir, &opts),
            },
        };
        all_ok &= result.is_ok();
        if cli.json {
            entries.push(match &result {
                Ok(report) => report.to_json(),
                Err(e) => e.to_json(),
            });
        } else {
            match &result {
                Ok(report) => println!("{report}"),
                Err(e) => eprintln!("{e}"),
            }
        }
    }
    if cli.json {
        let doc = serde_json::json!({ "ok": all_ok, "databases": entries });
        println!("{}", serde_json::to_string_pretty(&doc).context("cannot print the report")?);
    }
    Ok(all_ok)
}
