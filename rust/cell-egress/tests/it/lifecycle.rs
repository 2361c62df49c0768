use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::harness::{connect, echo_server, policy, round_trip, Proxy};

#[test]
fn socket_is_private() {
    let p = Proxy::start("{}");
    let meta = std::fs::metadata(&p.sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let audit = std::fs::metadata(&p.audit).unwrap();
    assert_eq!(audit.permissions().mode() & 0o777, 0o600);
}

#[test]
fn sighup_reloads_policy_and_keeps_open_tunnels() {
    let a = echo_server("127.0.0.1:0");
    let b = echo_server("127.0.0.1:0");
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{}", a.port())]));
    let (code, _, mut open) = connect(&p, &format!("127.0.0.1:{}", a.port()));
    assert_eq!(code, 200);
    assert_eq!(connect(&p, &format!("127.0.0.1:{}", b.port())).0, 403);

    std::fs::write(&p.policy, policy(&[format!("127.0.0.1:{}", b.port())])).unwrap();
    p.signal(libc::SIGHUP);
    p.wait_audit(|v| v["event"] == "reload" && v["verdict"] == "allow");
    assert_eq!(connect(&p, &format!("127.0.0.1:{}", a.port())).0, 403);
    let (code, _, mut s) = connect(&p, &format!("127.0.0.1:{}", b.port()));
    assert_eq!(code, 200);
    round_trip(&mut s, b"new policy");
    round_trip(&mut open, b"old tunnel survives");

    // A bad policy is refused and the current one kept.
    std::fs::write(&p.policy, r#"{"allow": ["*.com"]}"#).unwrap();
    p.signal(libc::SIGHUP);
    let line = p.wait_audit(|v| v["event"] == "reload" && v["verdict"] == "error");
    assert!(line["reason"].as_str().unwrap().contains("*.com"), "{line}");
    assert_eq!(connect(&p, &format!("127.0.0.1:{}", b.port())).0, 200);
    round_trip(&mut open, b"still open");
}

#[test]
fn sigterm_removes_the_socket_and_exits_zero() {
    let a = echo_server("127.0.0.1:0");
    let mut p = Proxy::start(&policy(&[format!("127.0.0.1:{}", a.port())]));
    let (_, _, mut open) = connect(&p, &format!("127.0.0.1:{}", a.port()));
    round_trip(&mut open, b"before");
    p.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "proxy did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    assert!(!p.sock.exists());
    // The open tunnel was closed and audited with its byte counts.
    let line = p.wait_audit(|v| v["verdict"] == "allow");
    assert_eq!(line["bytesUp"], 6);
    assert_eq!(line["reason"], "proxy shutting down");
}

#[test]
fn audit_lines_are_json_with_all_fields() {
    let a = echo_server("127.0.0.1:0");
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{}", a.port())]));
    let (_, _, mut s) = connect(&p, &format!("127.0.0.1:{}", a.port()));
    round_trip(&mut s, b"abc");
    drop(s);
    let _ = connect(&p, "denied.test:443");
    let mut g = p.connect();
    g.write_all(b"garbage\r\n\r\n").unwrap();
    let _ = crate::harness::read_all(&mut g);
    p.wait_audit(|v| v["verdict"] == "allow");
    p.wait_audit(|v| v["verdict"] == "deny");
    p.wait_audit(|v| v["verdict"] == "error");
    for line in p.audit_lines() {
        for field in [
            "time",
            "event",
            "cell",
            "client",
            "method",
            "host",
            "port",
            "address",
            "verdict",
            "reason",
            "bytesUp",
            "bytesDown",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(line["cell"], "test-cell");
        let t = line["time"].as_str().unwrap();
        assert!(t.len() == 24 && t.ends_with('Z') && &t[10..11] == "T", "{t}");
        assert!(["allow", "deny", "error"].contains(&line["verdict"].as_str().unwrap()));
    }
}

#[test]
fn invalid_policy_fails_startup_naming_the_entry() {
    for (pol, needle) in [
        (r#"{"allow": ["*"]}"#, "\"*\""),
        (r#"{"allow": ["*.com"]}"#, "\"*.com\""),
        (r#"{"allow": ["a..test"]}"#, "\"a..test\""),
        (r#"{"allow": ["a.test:70000"]}"#, "\"a.test:70000\""),
        (r#"{"allow": [], "bogus": 1}"#, "bogus"),
    ] {
        let err = Proxy::try_start(pol).err().expect("must fail");
        assert!(err.contains(needle), "{pol}: {err}");
    }
}

#[test]
fn rss_report() {
    let a = echo_server("127.0.0.1:0");
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{}", a.port())]));
    let (_, _, mut s) = connect(&p, &format!("127.0.0.1:{}", a.port()));
    round_trip(&mut s, b"warm up");
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    let idle = p.rss_kib();
    let mut tunnels = Vec::new();
    for _ in 0..200 {
        let (code, _, t) = connect(&p, &format!("127.0.0.1:{}", a.port()));
        assert_eq!(code, 200);
        tunnels.push(t);
    }
    let busy = p.rss_kib();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("cell-egress RSS ({profile} build): idle {idle} KiB; with 200 open tunnels {busy} KiB");
}

#[test]
fn unopenable_audit_log_fails_startup() {
    let dir = tempfile::tempdir().unwrap();
    for audit in [dir.path().join("missing-dir/audit.jsonl"), dir.path().to_path_buf()] {
        let err = Proxy::try_start_with_audit("{}", Some(&audit)).err().expect("must fail");
        assert!(err.contains("exit status: 1"), "{err}");
        assert!(err.contains("cannot open audit log"), "{err}");
        assert!(err.contains(&audit.display().to_string()), "{err}");
    }
}

/// A failing audit write (here: a full disk) is reported on stderr and traffic goes on.
#[test]
fn failing_audit_writes_are_logged_and_do_not_stop_the_proxy() {
    let a = echo_server("127.0.0.1:0");
    let p = Proxy::try_start_with_audit(
        &policy(&[format!("127.0.0.1:{}", a.port())]),
        Some(std::path::Path::new("/dev/full")),
    )
    .unwrap();
    for _ in 0..3 {
        let (code, _, mut s) = connect(&p, &format!("127.0.0.1:{}", a.port()));
        assert_eq!(code, 200);
        round_trip(&mut s, b"still proxying");
        drop(s);
        assert_eq!(connect(&p, "denied.test:443").0, 403);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stderr = std::fs::read_to_string(&p.stderr).unwrap();
        if stderr.matches("cannot write audit log").count() >= 6 {
            assert!(!stderr.contains("panicked"), "{stderr}");
            break;
        }
        assert!(Instant::now() < deadline, "{stderr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
