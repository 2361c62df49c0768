use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::harness::{closed_port, echo_server, policy, round_trip, Proxy};

/// Greeting + CONNECT request with a raw address (ATYP byte + address bytes).
fn socks_request(p: &Proxy, cmd: u8, atyp: u8, addr: &[u8], port: u16) -> (u8, UnixStream) {
    let mut s = p.connect();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).unwrap();
    assert_eq!(choice, [5, 0]);
    let mut req = vec![5, cmd, 0, atyp];
    req.extend_from_slice(addr);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    // Every reply carries the bound address 0.0.0.0:0 (IPv4): never the host's.
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 5);
    assert_eq!(reply[2..], [0, 1, 0, 0, 0, 0, 0, 0], "reply {reply:?}");
    (reply[1], s)
}

fn domain(name: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(name.len()).unwrap()];
    v.extend_from_slice(name);
    v
}

#[test]
fn socks5_ipv4_round_trip() {
    let up = echo_server("127.0.0.1:0");
    let p = Proxy::start(&policy(&[format!("127.0.0.1:{}", up.port())]));
    let (rep, mut s) = socks_request(&p, 1, 1, &[127, 0, 0, 1], up.port());
    assert_eq!(rep, 0);
    round_trip(&mut s, b"ssh-2.0 hello");
    drop(s);
    let line = p.wait_audit(|v| v["verdict"] == "allow");
    assert_eq!(line["client"], "socks5");
    assert_eq!(line["method"], "CONNECT");
}

#[test]
fn socks5_domain_round_trip() {
    let up = echo_server("127.0.0.1:0");
    let pol = serde_json::json!({
        "allow": [format!("git.example.test:{}", up.port())],
        "hosts": {"git.example.test": "127.0.0.1"},
    });
    let p = Proxy::start(&pol.to_string());
    let (rep, mut s) = socks_request(&p, 1, 3, &domain(b"git.example.test"), up.port());
    assert_eq!(rep, 0);
    round_trip(&mut s, b"domain");
}

#[test]
fn socks5_ipv6_round_trip() {
    let up = echo_server("[::1]:0");
    let p = Proxy::start(&policy(&[format!("[::1]:{}", up.port())]));
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    let (rep, mut s) = socks_request(&p, 1, 4, &v6, up.port());
    assert_eq!(rep, 0);
    round_trip(&mut s, b"six");
}

#[test]
fn socks5_refusals_use_the_right_codes() {
    let up = echo_server("127.0.0.1:0");
    let port = up.port();
    let pol = serde_json::json!({
        "allow": [format!("allowed.test:{port}"), format!("localhost:{port}"), format!("127.0.0.1:{}", closed_port())],
        "hosts": {"allowed.test": "127.0.0.1"},
    });
    let p = Proxy::start(&pol.to_string());
    // Not allowed by the ruleset.
    assert_eq!(socks_request(&p, 1, 3, &domain(b"evil.test"), port).0, 0x02);
    assert_eq!(socks_request(&p, 1, 3, &domain(b"evil.com\0.allowed.test"), port).0, 0x02);
    assert_eq!(socks_request(&p, 1, 3, &domain(b"allowed.test@evil.com"), port).0, 0x02);
    assert_eq!(socks_request(&p, 1, 3, &domain(b"allowed.test"), port + 1).0, 0x02);
    assert_eq!(socks_request(&p, 1, 1, &[127, 0, 0, 1], port).0, 0x02);
    let mut mapped = [0u8; 16];
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped[12..].copy_from_slice(&[127, 0, 0, 1]);
    assert_eq!(socks_request(&p, 1, 4, &mapped, port).0, 0x02);
    // Allowed name resolving to loopback.
    assert_eq!(socks_request(&p, 1, 3, &domain(b"localhost"), port).0, 0x02);
    // Command and address type not supported.
    assert_eq!(socks_request(&p, 2, 1, &[127, 0, 0, 1], port).0, 0x07);
    assert_eq!(socks_request(&p, 3, 1, &[127, 0, 0, 1], port).0, 0x07);
    assert_eq!(socks_request(&p, 1, 9, &[127, 0, 0, 1], port).0, 0x08);
    // Connection refused upstream.
    let closed: u16 = pol["allow"][2].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(socks_request(&p, 1, 1, &[127, 0, 0, 1], closed).0, 0x05);
    // Still serving.
    let (rep, mut s) = socks_request(&p, 1, 3, &domain(b"allowed.test"), port);
    assert_eq!(rep, 0);
    round_trip(&mut s, b"still up");
}

#[test]
fn socks5_without_no_auth_is_rejected() {
    let p = Proxy::start(&policy(&[]));
    let mut s = p.connect();
    s.write_all(&[5, 1, 2]).unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).unwrap();
    assert_eq!(choice, [5, 0xff]);
}
