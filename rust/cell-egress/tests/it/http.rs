use std::io::Write;

use crate::harness::{
    closed_port, connect, echo_server, http_server, policy, read_all, read_response, round_trip, Proxy, IO_TIMEOUT,
};

#[test]
fn connect_allowed_ip_literal_round_trip() {
    let up = echo_server("127.0.0.1:0");
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{}", up.port())]));
    let (code, _, mut s) = connect(&p, &format!("127.0.0.1:{}", up.port()));
    assert_eq!(code, 200);
    round_trip(&mut s, b"hello through the tunnel");
    round_trip(&mut s, &[0u8, 1, 2, 255, 13, 10]);
    drop(s);
    let line = p.wait_audit(|v| v["verdict"] == "allow");
    assert_eq!(line["client"], "http");
    assert_eq!(line["method"], "CONNECT");
    assert_eq!(line["address"], "127.0.0.1");
    assert_eq!(line["bytesUp"], 30);
    assert_eq!(line["bytesDown"], 30);
}

#[test]
fn connect_pinned_name_round_trip() {
    let up = echo_server("127.0.0.1:0");
    let pol = serde_json::json!({
        "allow": [format!("svc.test:{}", up.port())],
        "hosts": {"svc.test": "127.0.0.1"},
    });
    let p = Proxy::start(&pol.to_string());
    let (code, _, mut s) = connect(&p, &format!("SVC.Test.:{}", up.port()));
    assert_eq!(code, 200);
    round_trip(&mut s, b"pinned");
}

#[test]
fn inet_aton_spelling_is_judged_as_the_listed_address() {
    let up = echo_server("127.0.0.1:0");
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    for spelling in ["2130706433", "127.1", "0x7f.0.0.1", "017700000001", "[::ffff:127.0.0.1]"] {
        let (code, text, mut s) = connect(&p, &format!("{spelling}:{port}"));
        assert_eq!(code, 200, "{spelling}: {text}");
        round_trip(&mut s, b"x");
    }
}

#[test]
fn ip_spellings_denied_unless_listed() {
    let up = echo_server("127.0.0.1:0");
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("api.example.test:{port}")]));
    for spelling in [
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "017700000001",
        "0x7f.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "[::7f00:1]",
        "[::1]",
    ] {
        let (code, text, _) = connect(&p, &format!("{spelling}:{port}"));
        assert_eq!(code, 403, "{spelling}: {text}");
        assert!(text.contains("cell-egress: denied"), "{text}");
    }
}

#[test]
fn denied_host_gets_403_with_reason_and_is_never_resolved() {
    let p = Proxy::start(&policy(&["allowed.test".into()]));
    let (code, text, _) = connect(&p, "not-allowed.invalid:443");
    assert_eq!(code, 403);
    let says = "cell-egress: denied not-allowed.invalid:443 (host is not in the allowlist); \
                rerun with --allow not-allowed.invalid, or add \"not-allowed.invalid\" to network.allow";
    // In the body and in the status line (what a client shows for a failed CONNECT).
    assert!(text.contains(&format!("\r\n\r\n{says}\n")), "{text}");
    assert!(text.starts_with(&format!("HTTP/1.1 403 Forbidden ({says})\r\n")), "{text}");
    let line = p.wait_audit(|v| v["verdict"] == "deny");
    assert_eq!(line["host"], "not-allowed.invalid");
    assert_eq!(line["port"], 443);
    assert!(line["address"].is_null());
}

#[test]
fn wrong_port_is_denied() {
    let up = echo_server("127.0.0.1:0");
    let pol = serde_json::json!({
        "allow": ["svc.test"],
        "hosts": {"svc.test": "127.0.0.1"},
    });
    let p = Proxy::start(&pol.to_string());
    let (code, text, _) = connect(&p, &format!("svc.test:{}", up.port()));
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("port"), "{text}");
}

#[test]
fn empty_allowlist_denies_everything() {
    let up = echo_server("127.0.0.1:0");
    let pol = serde_json::json!({"allow": [], "hosts": {"svc.test": "127.0.0.1"}});
    let p = Proxy::start(&pol.to_string());
    for target in [format!("127.0.0.1:{}", up.port()), format!("svc.test:{}", up.port()), "a.test:443".into()] {
        let (code, text, _) = connect(&p, &target);
        assert_eq!(code, 403, "{target}: {text}");
    }
    let p = Proxy::start("{}");
    let (code, _, _) = connect(&p, &format!("127.0.0.1:{}", up.port()));
    assert_eq!(code, 403);
}

#[test]
fn allowed_name_resolving_to_loopback_is_denied() {
    let up = echo_server("127.0.0.1:0");
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("localhost:{port}")]));
    let (code, text, _) = connect(&p, &format!("localhost:{port}"));
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("loopback"), "{text}");
    // Listing the address explicitly allows it.
    let p = Proxy::start(&policy(&[format!("localhost:{port}"), format!("127.0.0.1:{port}")]));
    let (code, text, mut s) = connect(&p, &format!("localhost:{port}"));
    assert_eq!(code, 200, "{text}");
    round_trip(&mut s, b"ok");
}

#[test]
fn hostname_parser_differentials_are_refused() {
    let p = Proxy::start(&policy(&["allowed.test".into(), "*.allowed.test".into()]));
    for target in [
        "evil.com%00.allowed.test:443",
        "allowed.test@evil.com:443",
        "evil.com:443.allowed.test",
        "allowed.test.evil.com:443",
        "evil.com\t.allowed.test:443",
        "under_score.allowed.test:443",
        "[::ffff:1.2.3.4%x.allowed.test]:443",
    ] {
        let (code, text, _) = connect(&p, target);
        assert!(code == 400 || code == 403, "{target:?}: {text}");
    }
    // A raw NUL in the request line is malformed HTTP.
    let mut s = p.connect();
    s.write_all(b"CONNECT evil.com\0.allowed.test:443 HTTP/1.1\r\n\r\n").unwrap();
    let (code, _) = read_response(&mut s);
    assert_eq!(code, 400);
}

#[test]
fn plain_http_with_matching_host_is_forwarded_in_origin_form() {
    let (up, rx) = http_server();
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    let mut s = p.connect();
    write!(
        s,
        "GET http://127.0.0.1:{port}/path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nProxy-Connection: keep-alive\r\nX-Custom: yes\r\nConnection: keep-alive, X-Drop\r\nX-Drop: gone\r\n\r\n"
    )
    .unwrap();
    let resp = read_all(&mut s);
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.ends_with("hello"), "{resp}");
    let req = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(req.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("Host: 127.0.0.1:{port}\r\n")), "{req}");
    assert!(req.contains("X-Custom: yes\r\n"), "{req}");
    assert!(req.contains("Connection: close\r\n"), "{req}");
    assert!(!req.contains("keep-alive"), "{req}");
    assert!(!req.contains("X-Drop"), "{req}");
    let line = p.wait_audit(|v| v["verdict"] == "allow");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["bytesDown"].as_u64().unwrap(), resp.len() as u64);
}

#[test]
fn plain_http_post_body_is_forwarded_exactly() {
    let (up, rx) = http_server();
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    let mut s = p.connect();
    write!(
        s,
        "POST http://127.0.0.1:{port}/u HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 11\r\n\r\nhello worldGET http://evil.test/ HTTP/1.1\r\n\r\n"
    )
    .unwrap();
    let resp = read_all(&mut s);
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    let req = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(req.ends_with("\r\n\r\nhello world"), "{req}");
    assert!(!req.contains("evil"), "{req}");
}

#[test]
fn plain_http_with_mismatching_host_is_refused() {
    let (up, rx) = http_server();
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    for host in ["evil.test", &format!("127.0.0.1:{}", port + 1), "127.0.0.1"] {
        let mut s = p.connect();
        write!(s, "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let (code, text) = read_response(&mut s);
        assert_eq!(code, 403, "{host}: {text}");
        assert!(text.contains("does not match"), "{text}");
    }
    let mut s = p.connect();
    write!(s, "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.test\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).0, 400);
    assert!(rx.try_recv().is_err(), "upstream must not see refused requests");
}

#[test]
fn plain_http_to_denied_host_and_bad_forms() {
    let p = Proxy::start(&policy(&["allowed.test".into()]));
    for (req, want) in [
        ("GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", 403),
        ("GET http://allowed.test@evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", 403),
        ("GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400),
        ("GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400),
        ("TRACE http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 405),
        ("CONNECT allowed.test HTTP/1.1\r\n\r\n", 400),
        ("CONNECT allowed.test:0 HTTP/1.1\r\n\r\n", 400),
        ("CONNECT allowed.test:65536 HTTP/1.1\r\n\r\n", 400),
    ] {
        let mut s = p.connect();
        s.write_all(req.as_bytes()).unwrap();
        let (code, text) = read_response(&mut s);
        assert_eq!(code, want, "{req:?}: {text}");
    }
}

#[test]
fn upstream_connect_failure_is_502() {
    let port = closed_port();
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    let (code, text, _) = connect(&p, &format!("127.0.0.1:{port}"));
    assert_eq!(code, 502, "{text}");
    let line = p.wait_audit(|v| v["verdict"] == "error");
    assert!(line["reason"].as_str().unwrap().contains("connect"), "{line}");
}

#[test]
fn plain_http_chunked_body_stops_at_the_last_chunk() {
    use std::io::Read;
    use std::net::TcpListener;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut answered = false;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if !answered && crate::harness::find(&got, b"X-Sum: 1\r\n\r\n").is_some() {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
                answered = true;
            }
        }
        tx.send(String::from_utf8_lossy(&got).into_owned()).unwrap();
    });
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    let mut s = p.connect();
    write!(
        s,
        "POST http://127.0.0.1:{port}/c HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n00A\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n"
    )
    .unwrap();
    let resp = read_all(&mut s);
    assert!(resp.starts_with("HTTP/1.1 200 OK") && resp.ends_with("ok"), "{resp}");
    let got = rx.recv_timeout(IO_TIMEOUT).unwrap();
    // Chunk-size lines arrive canonical: lowercase hex, extensions dropped.
    assert!(got.ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\na\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n"), "{got:?}");
    assert!(!got.contains("smuggled"), "{got:?}");
    // Both framings at once, or an unknown coding, are refused.
    for te in ["Transfer-Encoding: chunked\r\nContent-Length: 3", "Transfer-Encoding: gzip, chunked"] {
        let mut s = p.connect();
        write!(s, "POST http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{te}\r\n\r\n").unwrap();
        let (code, text) = read_response(&mut s);
        assert!(code == 400 || code == 501, "{te}: {text}");
    }
}

/// Megabytes each way through a CONNECT tunnel (the splice path), with half-close: the
/// upstream answers only after it saw the client's EOF.
#[test]
fn connect_bulk_transfer_with_half_close() {
    use std::io::Read;
    use std::net::{Shutdown, TcpListener};
    const UP: usize = 4 << 20;
    const DOWN: usize = 9 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let pattern: Vec<u8> = (0..DOWN).map(|i| u8::try_from(i % 253).unwrap()).collect();
        s.write_all(&pattern).unwrap();
        got
    });
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    let (code, _, s) = connect(&p, &format!("127.0.0.1:{port}"));
    assert_eq!(code, 200);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let data: Vec<u8> = (0..UP).map(|i| u8::try_from(i % 251).unwrap()).collect();
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = s;
    let mut down = Vec::new();
    r.read_to_end(&mut down).unwrap();
    writer.join().unwrap();
    let up = server.join().unwrap();
    assert_eq!(up.len(), UP);
    assert!(up.iter().enumerate().all(|(i, b)| *b == u8::try_from(i % 251).unwrap()));
    assert_eq!(down.len(), DOWN);
    assert!(down.iter().enumerate().all(|(i, b)| *b == u8::try_from(i % 253).unwrap()));
    let line = p.wait_audit(|v| v["verdict"] == "allow");
    assert_eq!(line["bytesUp"], UP as u64);
    assert_eq!(line["bytesDown"], DOWN as u64);
    assert_eq!(line["reason"], "closed");
}

#[test]
fn plain_http_large_post_body_is_forwarded_exactly() {
    let (up, rx) = http_server();
    let port = up.port();
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    let body = "b".repeat(3 << 20);
    let mut s = p.connect();
    let mut w = s.try_clone().unwrap();
    let req = format!(
        "POST http://127.0.0.1:{port}/u HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}GET http://evil.test/ HTTP/1.1\r\n\r\n",
        body.len()
    );
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(req.as_bytes());
    });
    // The bytes after the body are never read, so closing the client socket may reset it
    // (ECONNRESET after the response): read what arrives.
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = std::io::Read::read(&mut s, &mut buf) {
        resp.extend_from_slice(&buf[..n]);
    }
    let resp = String::from_utf8_lossy(&resp);
    writer.join().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    let got = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(got.ends_with(&format!("\r\n\r\n{body}")), "{}", got.len());
    assert!(!got.contains("evil"));
}

#[test]
fn plain_http_malformed_chunk_size_is_400() {
    use std::io::Read;
    use std::net::TcpListener;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                // Never answers; reports what it got once the proxy hangs up.
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                tx.send(String::from_utf8_lossy(&got).into_owned()).unwrap();
            });
        }
    });
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{port}")]));
    for bad in ["+5", " 5 ", "5 ", "5\r;x", "5; x", "0x5", "-0", "", ";x", "1000000000000000"] {
        let mut s = p.connect();
        write!(
            s,
            "POST http://127.0.0.1:{port}/c HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n{bad}\r\nhello\r\n0\r\n\r\n"
        )
        .unwrap();
        let (code, text) = read_response(&mut s);
        assert_eq!(code, 400, "{bad:?}: {text}");
        assert!(text.contains("malformed chunked body"), "{bad:?}: {text}");
        let got = rx.recv_timeout(IO_TIMEOUT).unwrap();
        assert!(got.ends_with("\r\n\r\n2\r\nok\r\n"), "{bad:?}: upstream got {got:?}");
        let line = p.wait_audit(|v| v["verdict"] == "error" && v["reason"].as_str().unwrap().contains("chunk"));
        assert_eq!(line["method"], "POST");
    }
    // A trailer with a bare CR is refused the same way.
    let mut s = p.connect();
    write!(
        s,
        "POST http://127.0.0.1:{port}/c HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\rY: 2\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut s).0, 400);
}
