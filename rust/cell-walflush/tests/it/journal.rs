//! Rollback-journal databases: hot journals left by a killed writer, busy locks.

use std::fs;
use std::io::Write;
use std::thread;
use std::time::Duration;

use crate::util::{
    create, create_with_rows, kill_writer_mid_transaction, main_file_alone, open, s, sidecar, stderr, stdout, tree,
    walflush, CHILD_DB, CHILD_MODE, CHILD_SQL,
};

/// Not a test of its own: the body of the child process of `kill_writer_mid_transaction`.
/// Without its environment variables it does nothing.
#[test]
fn child_writer() {
    let Some(db) = std::env::var_os(CHILD_DB) else { return };
    let mode = std::env::var(CHILD_MODE).unwrap();
    let sql = std::env::var(CHILD_SQL).unwrap();
    let c = rusqlite::Connection::open(db).unwrap();
    let _: String = c.query_row(&format!("PRAGMA journal_mode={mode}"), [], |r| r.get(0)).unwrap();
    c.execute_batch("PRAGMA cache_size=10; BEGIN IMMEDIATE;").unwrap();
    c.execute_batch(&sql).unwrap();
    println!("\nWALFLUSH-CHILD-READY");
    std::io::stdout().flush().unwrap();
    thread::sleep(Duration::from_secs(120));
}

pub const SPILL_ROWS: &str =
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 600) INSERT INTO t(v) SELECT randomblob(1000) FROM n;
     UPDATE t SET v = randomblob(300) WHERE id <= 50;";

#[test]
fn hot_journal_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    create_with_rows(&db, "DELETE", 50);
    let committed = fs::read(&db).unwrap();

    kill_writer_mid_transaction(&db, "DELETE", SPILL_ROWS);
    assert_ne!(fs::read(&db).unwrap(), committed, "the uncommitted transaction never reached the main file");

    let out = walflush(&[s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("{}: hot journal rolled back", db.display()));
    assert!(!sidecar(&db, "-journal").exists());
    assert_eq!(main_file_alone(&db), (50, 50, "ok".to_owned()));

    let again = walflush(&[s(&db)]);
    assert!(again.status.success());
    assert_eq!(stdout(&again).trim(), format!("{}: consistent, nothing to do", db.display()));
}

#[test]
fn hot_journal_with_corrupt_database_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    create_with_rows(&db, "DELETE", 50);
    kill_writer_mid_transaction(&db, "DELETE", SPILL_ROWS);
    // Garble every page after the first (the header stays valid) and cut the journal down to
    // its header: the journal is still hot, but rolling it back cannot repair the file.
    let mut bytes = fs::read(&db).unwrap();
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    fs::write(&db, &bytes).unwrap();
    let journal = sidecar(&db, "-journal");
    let j = fs::read(&journal).unwrap();
    fs::write(&journal, &j[..512]).unwrap();
    let before = tree(dir.path());

    let out = walflush(&[s(&db)]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains(s(&db)) && stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert_eq!(tree(dir.path()), before, "files were modified");
}

#[test]
fn busy_database_waits_then_reports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    create(&db, "DELETE");
    let locker = open(&db);
    locker.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t(v) VALUES (x'00');").unwrap();

    let out = walflush(&["--timeout-ms", "200", s(&db)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(s(&db)) && err.contains("busy") && err.contains("200 ms"), "{err}");

    // Released while the flusher waits: it goes through.
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        locker.execute_batch("COMMIT").unwrap();
        locker
    });
    let out = walflush(&["--timeout-ms", "5000", s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("consistent, nothing to do"), "{}", stdout(&out));
    drop(release.join().unwrap());
}
