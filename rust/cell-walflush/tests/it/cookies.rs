//! A Chromium-shaped cookie store: rollback journal (TRUNCATE mode), `meta` and `cookies`.

use std::fs;
use std::path::Path;

use rusqlite::Connection;

use crate::util::{kill_writer_mid_transaction, open, s, sidecar, stderr, stdout, tree, walflush};

const SCHEMA: &str = "
CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR);
INSERT INTO meta VALUES ('version', '24'), ('last_compatible_version', '24');
CREATE TABLE cookies(creation_utc INTEGER NOT NULL, host_key TEXT NOT NULL, top_frame_site_key TEXT NOT NULL,
  name TEXT NOT NULL, value TEXT NOT NULL, encrypted_value BLOB NOT NULL, path TEXT NOT NULL,
  expires_utc INTEGER NOT NULL, is_secure INTEGER NOT NULL, is_httponly INTEGER NOT NULL,
  last_access_utc INTEGER NOT NULL, has_expires INTEGER NOT NULL, is_persistent INTEGER NOT NULL,
  priority INTEGER NOT NULL, samesite INTEGER NOT NULL, source_scheme INTEGER NOT NULL,
  source_port INTEGER NOT NULL, last_update_utc INTEGER NOT NULL, source_type INTEGER NOT NULL,
  has_cross_site_ancestor INTEGER NOT NULL);
CREATE UNIQUE INDEX cookies_unique_index ON cookies(host_key, top_frame_site_key, has_cross_site_ancestor,
  name, path, source_scheme, source_port);";

const LOGIN: &str = "
INSERT INTO cookies VALUES
  (13370000000000001, '.github.com', '', 'user_session', '', x'763130aa', '/', 13400000000000000, 1, 1, 0, 1, 1, 1, 0, 2, 443, 0, 0, 0),
  (13370000000000002, '.github.com', '', 'logged_in', '', x'763130bb', '/', 13400000000000000, 1, 1, 0, 1, 1, 1, 0, 2, 443, 0, 0, 0),
  (13370000000000003, 'accounts.example.com', '', 'SID', '', x'763130cc', '/', 13400000000000000, 1, 1, 0, 1, 1, 1, 0, 2, 443, 0, 0, 0);";

/// Many cookies with large encrypted values, in one transaction that never commits.
const UNCOMMITTED: &str = "
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 800)
INSERT INTO cookies SELECT 13370000000001000 + x, 'tracker' || x || '.example', '', 'id', '', randomblob(900), '/',
  13400000000000000, 1, 0, 0, 1, 1, 1, -1, 2, 443, 0, 0, 0 FROM n;
DELETE FROM cookies WHERE name = 'logged_in';";

fn names_in(c: &Connection) -> Vec<String> {
    let mut st = c.prepare("SELECT name FROM cookies ORDER BY creation_utc").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

fn names_in_main_file(db: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("Cookies");
    fs::copy(db, &copy).unwrap();
    let c = Connection::open(&copy).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    names_in(&c)
}

#[test]
fn chromium_cookies_with_a_hot_journal() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("Default");
    fs::create_dir(&profile).unwrap();
    let db = profile.join("Cookies");
    let c = open(&db);
    let _: String = c.query_row("PRAGMA journal_mode=TRUNCATE", [], |r| r.get(0)).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(LOGIN).unwrap();
    c.close().unwrap();
    // TRUNCATE mode leaves an empty journal behind after each commit: not hot.
    assert_eq!(fs::metadata(sidecar(&db, "-journal")).unwrap().len(), 0);
    let out = walflush(&[s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("{}: consistent, nothing to do", db.display()));

    kill_writer_mid_transaction(&db, "TRUNCATE", UNCOMMITTED);

    // A snapshot first: the profile is not written to, the copy has the committed login only.
    let before = tree(&profile);
    let snap = dir.path().join("snap");
    let out = walflush(&["--snapshot", s(&snap), s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("hot journal rolled back in a private copy; source untouched"), "{}", stdout(&out));
    assert_eq!(tree(&profile), before, "the profile changed");
    let copy = Connection::open_with_flags(snap.join("Cookies"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    assert_eq!(names_in(&copy), ["user_session", "logged_in", "SID"]);

    // Then in place.
    let out = walflush(&["--json", s(&db)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["databases"][0]["mode"], "rollback");
    assert_eq!(v["databases"][0]["action"], "rolled_back");
    assert_eq!(names_in_main_file(&db), ["user_session", "logged_in", "SID"]);
    let out = walflush(&[s(&db)]);
    assert_eq!(stdout(&out).trim(), format!("{}: consistent, nothing to do", db.display()));
}
