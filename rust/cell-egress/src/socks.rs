//! SOCKS5 front end (RFC 1928): no authentication, CONNECT only.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::timeout_at;

use crate::audit::Verdict;
use crate::conn::{escape, tunnel, Ctx, Failure};
use crate::policy::{canonicalize_host_bytes, normalize_ip, Host};

const VER: u8 = 0x05;
const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE: u8 = 0xff;

/// Reply codes.
pub(crate) mod rep {
    pub const SUCCEEDED: u8 = 0x00;
    pub const GENERAL_FAILURE: u8 = 0x01;
    pub const NOT_ALLOWED: u8 = 0x02;
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    pub const HOST_UNREACHABLE: u8 = 0x04;
    pub const CONNECTION_REFUSED: u8 = 0x05;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

fn failure_rep(f: &Failure) -> u8 {
    match f {
        Failure::Denied(_) => rep::NOT_ALLOWED,
        Failure::TooManyTunnels(_) => rep::GENERAL_FAILURE,
        Failure::Resolve(_) | Failure::NoAddress | Failure::Timeout => rep::HOST_UNREACHABLE,
        Failure::Connect(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => rep::CONNECTION_REFUSED,
            io::ErrorKind::NetworkUnreachable => rep::NETWORK_UNREACHABLE,
            io::ErrorKind::HostUnreachable | io::ErrorKind::TimedOut => rep::HOST_UNREACHABLE,
            _ => rep::GENERAL_FAILURE,
        },
    }
}

/// A reply; the bound address is always 0.0.0.0:0 (IPv4 ATYP): the upstream socket's real
/// local address is the host's, which the cell has no business learning.
fn reply(code: u8) -> [u8; 10] {
    [VER, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
}

enum Step {
    /// Protocol violation or timeout: close without a reply (or after one already sent).
    Drop(&'static str),
    /// Reply with this code and close.
    Refuse(u8, Verdict, String),
}

/// Read the rest of the greeting (the version byte was consumed) and the request.
async fn handshake(s: &mut UnixStream, ctx: &mut Ctx<'_>) -> Result<(Host, u16), Step> {
    let deadline = ctx.deadline;
    let mut nmethods = [0u8; 1];
    exact(s, &mut nmethods, deadline).await?;
    let mut methods = vec![0u8; usize::from(nmethods[0])];
    exact(s, &mut methods, deadline).await?;
    if !methods.contains(&NO_AUTH) {
        let _ = s.write_all(&[VER, NO_ACCEPTABLE]).await;
        return Err(Step::Drop("client offers no acceptable auth method (only no-auth)"));
    }
    s.write_all(&[VER, NO_AUTH]).await.map_err(|_| Step::Drop("client went away"))?;
    let mut hdr = [0u8; 4];
    exact(s, &mut hdr, deadline).await?;
    let [ver, cmd, _rsv, atyp] = hdr;
    ctx.audit.method = Some(match cmd {
        1 => "CONNECT".into(),
        2 => "BIND".into(),
        3 => "UDP ASSOCIATE".into(),
        n => format!("0x{n:02x}"),
    });
    if ver != VER {
        return Err(Step::Drop("bad SOCKS version in request"));
    }
    if cmd != 0x01 {
        return Err(Step::Refuse(rep::COMMAND_NOT_SUPPORTED, Verdict::Deny, "only CONNECT is supported".into()));
    }
    let host = match atyp {
        0x01 => {
            let mut a = [0u8; 4];
            exact(s, &mut a, deadline).await?;
            Host::Ip(IpAddr::V4(Ipv4Addr::from(a)))
        }
        0x04 => {
            let mut a = [0u8; 16];
            exact(s, &mut a, deadline).await?;
            Host::Ip(normalize_ip(IpAddr::V6(Ipv6Addr::from(a))))
        }
        0x03 => {
            let mut len = [0u8; 1];
            exact(s, &mut len, deadline).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            exact(s, &mut name, deadline).await?;
            let mut port = [0u8; 2];
            exact(s, &mut port, deadline).await?;
            let port = u16::from_be_bytes(port);
            return match canonicalize_host_bytes(&name) {
                Ok(h) => Ok((h, port)),
                Err(e) => {
                    let shown = escape(&String::from_utf8_lossy(&name));
                    ctx.audit.host = Some(shown.clone());
                    ctx.audit.port = Some(port);
                    Err(Step::Refuse(
                        rep::NOT_ALLOWED,
                        Verdict::Deny,
                        format!("denied {shown}:{port}: invalid host: {e}"),
                    ))
                }
            };
        }
        other => {
            return Err(Step::Refuse(
                rep::ADDRESS_TYPE_NOT_SUPPORTED,
                Verdict::Error,
                format!("address type 0x{other:02x} is not supported"),
            ))
        }
    };
    let mut port = [0u8; 2];
    exact(s, &mut port, deadline).await?;
    Ok((host, u16::from_be_bytes(port)))
}

async fn exact(s: &mut UnixStream, buf: &mut [u8], deadline: tokio::time::Instant) -> Result<(), Step> {
    match timeout_at(deadline, s.read_exact(buf)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(Step::Drop("client closed during SOCKS handshake")),
        Err(_) => Err(Step::Drop("handshake timeout")),
    }
}

/// Serve one SOCKS5 client whose version byte was already read.
pub(crate) async fn serve(mut client: UnixStream, mut ctx: Ctx<'_>) {
    let (host, port) = match handshake(&mut client, &mut ctx).await {
        Ok(t) => t,
        Err(Step::Drop(why)) => {
            ctx.audit.reason = why.into();
            ctx.finish(Verdict::Error);
            return;
        }
        Err(Step::Refuse(code, verdict, why)) => {
            let _ = client.write_all(&reply(code)).await;
            ctx.audit.reason = why;
            ctx.finish(verdict);
            return;
        }
    };
    let mut upstream = match ctx.establish(&host, port).await {
        Ok(s) => s,
        Err(f) => {
            // Audited first, as in the HTTP front end.
            ctx.fail(&f);
            let _ = client.write_all(&reply(failure_rep(&f))).await;
            return;
        }
    };
    ctx.handshake_done();
    if client.write_all(&reply(rep::SUCCEEDED)).await.is_err() {
        ctx.audit.reason = "client went away".into();
        ctx.finish(Verdict::Allow);
        return;
    }
    tunnel(&mut ctx, &mut client, &mut upstream).await;
    ctx.finish(Verdict::Allow);
}
