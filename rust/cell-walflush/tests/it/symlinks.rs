//! Symbolic links are refused, never followed: the database path (a flush would write to the
//! link's target, a snapshot would copy it) and its sidecars (the hot-journal rehearsal copied
//! a symlinked `-journal`, SQLite would roll back from it).

use std::fs;

use crate::journal::SPILL_ROWS;
use crate::util::{
    create, create_with_rows, insert, kill_writer_mid_transaction, names, open, s, sidecar, stderr, stdout, tree,
    walflush,
};

#[test]
fn symlinked_database_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("Cookies");
    create(&target, "WAL");
    // Frames left in the -wal (the connection stays open): a flush through the link would
    // checkpoint them into the target.
    let c = open(&target);
    insert(&c, 20);
    let before = tree(outside.path());
    let link = home.path().join("Cookies");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let out = walflush(&[s(&link)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stderr(&out).trim(), format!("{}: is a symbolic link; refusing to follow it", link.display()));
    assert_eq!(tree(outside.path()), before, "the link's target was modified");

    let snap = tempfile::tempdir().unwrap();
    let out = walflush(&["--snapshot", s(snap.path()), "--json", s(&link)]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["databases"][0]["error"], "symlink", "{v}");
    assert!(names(snap.path()).is_empty(), "the link's target was snapshotted");
    assert_eq!(tree(outside.path()), before, "the link's target was modified");
    assert_eq!(names(home.path()), ["Cookies"]);
    c.close().unwrap();
}

#[test]
fn symlinked_journal_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let db = home.path().join("data.db");
    create_with_rows(&db, "DELETE", 50);
    kill_writer_mid_transaction(&db, "DELETE", SPILL_ROWS);
    // The hot journal moves outside the home; the home keeps a link to it.
    let journal = sidecar(&db, "-journal");
    let target = outside.path().join("journal");
    fs::rename(&journal, &target).unwrap();
    std::os::unix::fs::symlink(&target, &journal).unwrap();
    let (home_before, outside_before) = (tree(home.path()), tree(outside.path()));

    let out = walflush(&[s(&db)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!("{}: {} is a symbolic link; refusing to follow it", db.display(), journal.display())
    );
    let snap = tempfile::tempdir().unwrap();
    let out = walflush(&["--snapshot", s(snap.path()), s(&db)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a symbolic link; refusing to follow it"), "{}", stderr(&out));
    assert!(names(snap.path()).is_empty());

    assert_eq!(tree(outside.path()), outside_before, "the link's target was modified");
    assert_eq!(tree(home.path()), home_before, "the database was modified");
    assert!(fs::symlink_metadata(&journal).unwrap().file_type().is_symlink(), "the link was removed");
}
