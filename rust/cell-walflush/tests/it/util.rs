//! Shared helpers.

use std::collections::BTreeMap;
use std::fs;
use std::hash::Hasher;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::Connection;

pub fn walflush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cell-walflush")).args(args).output().unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` with its length and a hash of its bytes (the byte-for-byte "nothing
/// modified" check; a hash keeps assertion failures readable).
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            let bytes = fs::read(&p).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(&bytes);
            out.insert(p.clone(), (bytes.len() as u64, h.finish()));
        }
    }
    out
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

pub fn open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// A database with `t(id INTEGER PRIMARY KEY, v)` in the given journal mode, closed.
pub fn create(path: &Path, journal_mode: &str) {
    let c = open(path);
    let mode: String = c.query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| r.get(0)).unwrap();
    assert!(mode.eq_ignore_ascii_case(journal_mode), "{mode}");
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)").unwrap();
    c.close().unwrap();
}

/// [`create`], then `n` committed rows.
pub fn create_with_rows(path: &Path, journal_mode: &str, n: usize) {
    create(path, journal_mode);
    let c = open(path);
    insert(&c, n);
    c.close().unwrap();
}

pub fn insert(c: &Connection, n: usize) {
    for _ in 0..n {
        c.execute("INSERT INTO t(v) VALUES (randomblob(200))", []).unwrap();
    }
}

/// The main file alone, copied without any sidecar and opened read-only in a fresh directory:
/// what a plain file copy of the database would see. Returns (rows, max id, integrity).
pub fn main_file_alone(path: &Path) -> (i64, i64, String) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    fs::copy(path, &copy).unwrap();
    let c = Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    rows(&c)
}

pub fn rows(c: &Connection) -> (i64, i64, String) {
    let (n, max): (i64, Option<i64>) =
        c.query_row("SELECT count(*), max(id) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    (n, max.unwrap_or(0), ok)
}

/// A thread inserting one row per transaction (with a short pause, as a browser would) until
/// stopped; `committed` counts rows committed so far. Joining returns its still-open connection.
pub struct Writer {
    pub committed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Connection>,
}

impl Writer {
    pub fn start(path: &Path, setup: &str) -> Writer {
        let committed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2, path, setup) = (committed.clone(), stop.clone(), path.to_owned(), setup.to_owned());
        let handle = thread::spawn(move || {
            let c = open(&path);
            c.execute_batch(&setup).unwrap();
            while !s2.load(Ordering::SeqCst) {
                insert(&c, 1);
                c2.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_micros(500));
            }
            c
        });
        Writer { committed, stop, handle }
    }

    pub fn wait_for(&self, n: u64) {
        while self.committed.load(Ordering::SeqCst) < n {
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stop(self) -> Connection {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// Environment variables of the killed-writer child (see [`crate::journal::child_writer`]).
pub const CHILD_DB: &str = "WALFLUSH_TEST_CHILD_DB";
pub const CHILD_MODE: &str = "WALFLUSH_TEST_CHILD_JOURNAL_MODE";
pub const CHILD_SQL: &str = "WALFLUSH_TEST_CHILD_SQL";

/// Runs `sql` in a transaction in a child process (this test binary, re-executed) with a tiny
/// page cache so the uncommitted pages spill into the database file, then SIGKILLs it: the
/// `-journal` is left hot and the main file holds half a transaction.
pub fn kill_writer_mid_transaction(db: &Path, journal_mode: &str, sql: &str) {
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "journal::child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, db)
        .env(CHILD_MODE, journal_mode)
        .env(CHILD_SQL, sql)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut ready = false;
    for line in BufReader::new(out).lines() {
        if line.unwrap().contains("WALFLUSH-CHILD-READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the child writer never got ready");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let journal = crate::util::sidecar(db, "-journal");
    assert!(fs::metadata(&journal).unwrap().len() > 0, "no hot journal left");
}

pub fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    cell_walflush::sidecar(db, suffix)
}
