//! Files that are not (healthy) SQLite databases: refused, named, left byte-for-byte alone.

use std::fs;
use std::path::Path;

use crate::util::{create, create_with_rows, insert, names, open, s, stderr, stdout, tree, walflush};

/// Pseudo-random bytes (no dependency on a RNG crate).
fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// Runs the flusher (and the snapshotter) on `db` and checks: exit 1, the message names the
/// file and contains `expect`, nothing in its directory changed, nothing written to DIR.
fn refused(db: &Path, expect: &str) {
    let dir = db.parent().unwrap();
    let before = tree(dir);
    let out = walflush(&[s(db)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.starts_with(&format!("{}: ", db.display())) && err.contains(expect), "{err}");
    assert!(stdout(&out).is_empty());
    assert_eq!(tree(dir), before, "files were modified");

    let snap = tempfile::tempdir().unwrap();
    let out = walflush(&["--snapshot", s(snap.path()), "--json", s(db)]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["databases"][0]["path"], s(db));
    assert!(v["databases"][0]["message"].as_str().unwrap().contains(expect), "{v}");
    assert!(names(snap.path()).is_empty(), "snapshot files left behind");
    assert_eq!(tree(dir), before, "files were modified by --snapshot");
}

#[test]
fn garbage_without_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("Cookies");
    fs::write(&db, garbage(16384, 7)).unwrap();
    refused(&db, "not an SQLite database");
    let short = dir.path().join("short");
    fs::write(&short, b"SQLite format 3\0tiny").unwrap();
    refused(&short, "shorter than the 100-byte header");
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    refused(&empty, "empty file");
}

/// A real database's first 100 bytes followed by garbage.
fn valid_header_then_garbage(journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create_with_rows(&db, journal_mode, 100);
    let mut bytes = fs::read(&db).unwrap();
    let len = bytes.len();
    bytes[100..].copy_from_slice(&garbage(len - 100, 99));
    fs::write(&db, &bytes).unwrap();
    refused(&db, "corrupt");
}

#[test]
fn valid_rollback_header_then_garbage() {
    valid_header_then_garbage("DELETE");
}

#[test]
fn valid_wal_header_then_garbage() {
    valid_header_then_garbage("WAL");
}

#[test]
fn damaged_page_caught_by_quick_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create_with_rows(&db, "DELETE", 300);
    let mut bytes = fs::read(&db).unwrap();
    // Page 3 (a leaf of t): the schema still reads, the b-tree does not check out.
    bytes[2 * 4096..3 * 4096].copy_from_slice(&garbage(4096, 3));
    fs::write(&db, &bytes).unwrap();
    refused(&db, "corrupt");
}

#[test]
fn unsupported_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    create(&db, "DELETE");
    let mut bytes = fs::read(&db).unwrap();
    bytes[18] = 3;
    fs::write(&db, &bytes).unwrap();
    refused(&db, "write version 3");
}

#[test]
fn missing_path_directory_and_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = walflush(&[s(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), format!("{}: no such file", missing.display()));
    assert!(names(dir.path()).is_empty(), "something was created");

    let out = walflush(&[s(dir.path())]);
    assert_eq!(stderr(&out).trim(), format!("{}: not a regular file", dir.path().display()));

    let db = dir.path().join("db");
    create(&db, "WAL");
    let c = open(&db);
    insert(&c, 3);
    let out = walflush(&[s(&crate::util::sidecar(&db, "-wal"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pass the database itself"), "{}", stderr(&out));
    drop(c);
}

#[test]
fn every_database_is_tried_and_the_exit_status_says_if_one_failed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    create(&good, "DELETE");
    let bad = dir.path().join("bad");
    fs::write(&bad, garbage(5000, 1)).unwrap();
    let out = walflush(&[s(&bad), s(&good), s(&dir.path().join("missing"))]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).trim(), format!("{}: consistent, nothing to do", good.display()));
    assert_eq!(stderr(&out).lines().count(), 2, "{}", stderr(&out));

    let out = walflush(&["--json", s(&bad), s(&good)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["databases"][0]["error"], "not_sqlite");
    assert_eq!(v["databases"][1]["action"], "nothing_to_do");
    assert!(out.stderr.is_empty());
}

#[test]
fn usage_errors_exit_2_and_help_teaches() {
    let out = walflush(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = walflush(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for needle in
        ["--snapshot", "--timeout-ms", "--json", "Examples:", "Exit status:", "hot", "wal_checkpoint(TRUNCATE)"]
    {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}
