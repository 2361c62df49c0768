//! WAL databases: a concurrent writer, idle and snapshot-holding readers.

use std::fs;

use crate::util::{create, insert, main_file_alone, open, s, sidecar, stderr, stdout, walflush, Writer};

/// The writer never checkpoints by itself, so without the flusher the main file alone would
/// hold none of its rows.
const NO_AUTO_CHECKPOINT: &str = "PRAGMA wal_autocheckpoint=0;";

#[test]
fn concurrent_writer_and_idle_reader_all_committed_rows_reach_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("History");
    create(&db, "WAL");
    let reader = open(&db);
    let writer = Writer::start(&db, NO_AUTO_CHECKPOINT);
    writer.wait_for(300);
    let _: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(main_file_alone(&db).0, 0, "rows reached the main file without a checkpoint");

    let committed_before = writer.committed.load(std::sync::atomic::Ordering::SeqCst);
    let out = walflush(&[s(&db)]);
    // Keep the writer's connection open: closing the last connection would checkpoint by itself.
    let writer_conn = writer.stop();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("{}: wal checkpointed (", db.display())), "{line}");
    assert!(line.trim_end().ends_with("frames), truncated"), "{line}");

    let (rows, max_id, ok) = main_file_alone(&db);
    assert_eq!(ok, "ok");
    assert!(rows >= i64::try_from(committed_before).unwrap(), "{rows} < {committed_before}");
    assert_eq!(rows, max_id, "the main file holds a prefix of the commits");
    drop((reader, writer_conn));
}

#[test]
fn reader_on_an_old_snapshot_blocks_part_of_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "WAL");
    let writer = open(&db);
    writer.execute_batch(NO_AUTO_CHECKPOINT).unwrap();
    insert(&writer, 100);
    let reader = open(&db);
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 100);
    insert(&writer, 100);

    let out = walflush(&["--timeout-ms", "300", s(&db)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.starts_with(&format!("{}: wal checkpoint incomplete", db.display())), "{err}");
    assert!(err.contains("not consistent yet"), "{err}");
    // (A partial checkpoint skips every page whose newest frame is past the reader's snapshot,
    // so the main file alone is a mix of versions: nothing to assert about it but the error.)

    reader.execute_batch("COMMIT").unwrap();
    let out = walflush(&["--json", s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let d = &v["databases"][0];
    assert_eq!(
        (d["mode"].as_str(), d["action"].as_str(), d["truncated"].as_bool()),
        (Some("wal"), Some("checkpointed"), Some(true))
    );
    assert!(d["frames"].as_u64().unwrap() > 0);
    assert_eq!(main_file_alone(&db), (200, 200, "ok".to_owned()));
    assert_eq!(fs::metadata(sidecar(&db, "-wal")).unwrap().len(), 0, "the wal was not truncated");
    drop((reader, writer));
}

#[test]
fn reader_on_the_latest_snapshot_everything_checkpointed_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "WAL");
    let writer = open(&db);
    writer.execute_batch(NO_AUTO_CHECKPOINT).unwrap();
    insert(&writer, 80);
    let reader = open(&db);
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();

    let out = walflush(&["--timeout-ms", "300", s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not truncated: another connection is still reading it"), "{}", stdout(&out));
    assert_eq!(main_file_alone(&db), (80, 80, "ok".to_owned()));
    assert!(fs::metadata(sidecar(&db, "-wal")).unwrap().len() > 0);
    drop((reader, writer));
}

#[test]
fn closed_wal_database_has_nothing_to_do_and_leaves_no_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "WAL");
    let before = fs::read(&db).unwrap();
    let out = walflush(&[s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("{}: consistent, nothing to do", db.display()));
    assert_eq!(fs::read(&db).unwrap(), before);
    assert_eq!(crate::util::names(dir.path()), ["db"]);
}
