//! `--snapshot DIR`: consistent copies through the backup API, sources never written.

use std::fs;

use rusqlite::Connection;

use crate::util::{create, insert, names, open, rows, s, sidecar, stderr, stdout, tree, walflush, Writer};

fn check_snapshot(path: &std::path::Path) -> (i64, i64, String) {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    rows(&c)
}

fn snapshot_while_writing(journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, journal_mode);
    let out_dir = dir.path().join("snap");
    let writer = Writer::start(&db, "");
    writer.wait_for(100);
    for _ in 0..3 {
        let before = writer.committed.load(std::sync::atomic::Ordering::SeqCst);
        let out = walflush(&["--snapshot", s(&out_dir), s(&db)]);
        assert!(out.status.success(), "{}", stderr(&out));
        let snap = out_dir.join("db");
        assert_eq!(stdout(&out).trim(), format!("{}: snapshot -> {}", db.display(), snap.display()));
        let (n, max, ok) = check_snapshot(&snap);
        assert_eq!(ok, "ok");
        assert_eq!(n, max, "a snapshot holds a prefix of the commits");
        assert!(n >= i64::try_from(before).unwrap(), "{n} < {before}");
        assert_eq!(names(&out_dir), ["db"], "temporary or sidecar files left behind");
    }
    let c = writer.stop();
    drop(c);
}

#[test]
fn snapshot_of_a_wal_database_while_a_writer_inserts() {
    snapshot_while_writing("WAL");
}

#[test]
fn snapshot_of_a_rollback_database_while_a_writer_inserts() {
    snapshot_while_writing("DELETE");
}

#[test]
fn snapshot_does_not_touch_the_source_and_sees_rows_only_in_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("db");
    create(&db, "WAL");
    let writer = open(&db);
    writer.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    insert(&writer, 70);
    // The -shm is the wal-index, shared memory every reader (read-only ones too) writes to.
    let data = |t: std::collections::BTreeMap<std::path::PathBuf, (u64, u64)>| {
        t.into_iter().filter(|(p, _)| *p != sidecar(&db, "-shm")).collect::<Vec<_>>()
    };
    let before = data(tree(&src));
    assert_eq!(before.len(), 2, "{before:?}");

    let out_dir = dir.path().join("out");
    let out = walflush(&["--snapshot", s(&out_dir), "--json", s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["databases"][0]["action"], "snapshot");
    assert_eq!(v["databases"][0]["snapshot"], s(&out_dir.join("db")));
    assert_eq!(data(tree(&src)), before, "the source changed");
    assert_eq!(check_snapshot(&out_dir.join("db")), (70, 70, "ok".to_owned()));
    // The copy stands alone: no -wal next to it.
    assert_eq!(names(&out_dir), ["db"]);
    drop(writer);
}

#[test]
fn snapshot_replaces_an_older_one_and_its_stale_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "DELETE");
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    fs::write(out_dir.join("db"), b"old snapshot").unwrap();
    fs::write(out_dir.join("db-wal"), vec![0x37; 5000]).unwrap();
    fs::write(out_dir.join("db-journal"), vec![0xd9; 600]).unwrap();
    let c = open(&db);
    insert(&c, 5);
    let out = walflush(&["--snapshot", s(&out_dir), s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&out_dir), ["db"]);
    assert_eq!(check_snapshot(&out_dir.join("db")), (5, 5, "ok".to_owned()));
}

#[test]
fn snapshot_refuses_to_overwrite_its_source_and_duplicate_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "DELETE");
    let before = tree(dir.path());
    let out = walflush(&["--snapshot", s(dir.path()), s(&db)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("would overwrite the database itself"), "{}", stderr(&out));
    assert_eq!(tree(dir.path()), before);

    let other = dir.path().join("sub");
    fs::create_dir(&other).unwrap();
    create(&other.join("db"), "DELETE");
    let out_dir = dir.path().join("out");
    let out = walflush(&["--snapshot", s(&out_dir), s(&db), s(&other.join("db"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("snapshot ->"), "the first one is still written");
    assert!(stderr(&out).contains("also snapshotted to"), "{}", stderr(&out));
}
