use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{connect, echo_server, read_response, round_trip, Proxy};

fn limited(port: u16, limits: &serde_json::Value) -> Proxy {
    Proxy::start(&serde_json::json!({"allow": [format!("127.0.0.1:{port}")], "limits": limits}).to_string())
}

fn still_works(p: &Proxy, port: u16) {
    let (code, text, mut s) = connect(p, &format!("127.0.0.1:{port}"));
    assert_eq!(code, 200, "{text}");
    round_trip(&mut s, b"next client");
}

#[test]
fn garbage_gets_400_and_the_next_client_works() {
    let up = echo_server("127.0.0.1:0");
    let p = limited(up.port(), &serde_json::json!({}));
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"\0\0\0\0\r\n\r\n",
        b"GET\r\n\r\n",
        b"CONNECT  HTTP/1.1\r\n\r\n",
        b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00\r\n\r\n",
    ] {
        let mut s = p.connect();
        s.write_all(garbage).unwrap();
        let (code, _) = read_response(&mut s);
        assert_eq!(code, 400, "{garbage:?}");
    }
    // SOCKS garbage: bad version in the request, then a client that just hangs up.
    let mut s = p.connect();
    s.write_all(&[5, 1, 0, 4, 1, 0, 1]).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    drop(p.connect());
    still_works(&p, up.port());
}

#[test]
fn oversized_head_gets_431_and_the_next_client_works() {
    let up = echo_server("127.0.0.1:0");
    let p = limited(up.port(), &serde_json::json!({"maxHeaderBytes": 4096}));
    let mut s = p.connect();
    let mut req = format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n", up.port()).into_bytes();
    for i in 0..200 {
        req.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let _ = s.write_all(&req);
    let (code, _) = read_response(&mut s);
    assert_eq!(code, 431);
    // Never-ending header line.
    let mut s = p.connect();
    let _ = s.write_all(&vec![b'A'; 10_000]);
    let (code, _) = read_response(&mut s);
    assert_eq!(code, 431);
    still_works(&p, up.port());
}

#[test]
fn slow_head_gets_408_and_the_next_client_works() {
    let up = echo_server("127.0.0.1:0");
    let p = limited(up.port(), &serde_json::json!({"handshakeTimeoutMs": 300}));
    let started = Instant::now();
    let mut slow = p.connect();
    slow.write_all(b"CONNECT 127.0.0.1:").unwrap();
    // Meanwhile another client is served normally.
    still_works(&p, up.port());
    thread::sleep(Duration::from_millis(100));
    let _ = slow.write_all(b"1");
    let (code, _) = read_response(&mut slow);
    assert_eq!(code, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A client that sends nothing at all, and a SOCKS client stalling mid-greeting.
    let mut silent = p.connect();
    let (code, _) = read_response(&mut silent);
    assert_eq!(code, 408);
    let mut socks = p.connect();
    socks.write_all(&[5, 1]).unwrap();
    let mut buf = Vec::new();
    let _ = socks.read_to_end(&mut buf);
    assert!(buf.is_empty());
    still_works(&p, up.port());
    p.wait_audit(|v| v["reason"] == "handshake timeout");
}

#[test]
fn tunnel_limit_refuses_excess_and_recovers() {
    let up = echo_server("127.0.0.1:0");
    let port = up.port();
    let p = limited(port, &serde_json::json!({"maxTunnels": 2}));
    let (c1, _, mut t1) = connect(&p, &format!("127.0.0.1:{port}"));
    let (c2, _, mut t2) = connect(&p, &format!("127.0.0.1:{port}"));
    assert_eq!((c1, c2), (200, 200));
    let (c3, text, _) = connect(&p, &format!("127.0.0.1:{port}"));
    assert_eq!(c3, 503, "{text}");
    // SOCKS gets general failure.
    let mut s = p.connect();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).unwrap();
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).unwrap();
    assert_eq!(rep[1], 0x01);
    round_trip(&mut t1, b"one");
    round_trip(&mut t2, b"two");
    drop(t1);
    p.wait_audit(|v| v["verdict"] == "allow");
    still_works(&p, port);
    let deny = p.wait_audit(|v| v["verdict"] == "deny");
    assert!(deny["reason"].as_str().unwrap().contains("tunnel limit"), "{deny}");
}

/// Random bytes (and random bytes after a valid SOCKS5 or HTTP prefix) never take the
/// proxy down or make it panic.
#[test]
fn random_input_never_kills_the_proxy() {
    use std::net::Shutdown;
    let up = echo_server("127.0.0.1:0");
    let p = limited(up.port(), &serde_json::json!({"handshakeTimeoutMs": 2000, "maxHeaderBytes": 2048}));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let prefixes: [&[u8]; 5] = [b"", &[5], &[5, 1, 0, 5, 1, 0], b"CONNECT ", b"GET http://127.0.0.1/ HTTP/1.1\r\n"];
    for i in 0..400u64 {
        let mut input = prefixes[usize::try_from(i % 5).unwrap()].to_vec();
        let len = usize::try_from(next() % 3000).unwrap();
        input.extend((0..len).map(|_| u8::try_from(next() & 0xff).unwrap()));
        let mut s = p.connect();
        let _ = s.write_all(&input);
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    still_works(&p, up.port());
    let stderr = std::fs::read_to_string(&p.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
