//! HTTP/1.1 forward proxy front end: CONNECT tunnels and absolute-form plain `http://`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::timeout_at;

use crate::audit::Verdict;
use crate::conn::{escape, tunnel, Ctx, Failure};
use crate::policy::{parse_authority, AuthorityError, Denial, Host};
use crate::pump::pump;

const MAX_HEADERS: usize = 128;

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, plus the proxy ones).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

fn status_text(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Send a complete error response with a `cell-egress: ...` body. A refusal (403) carries
/// the body in its status line too: many clients show only that for a failed CONNECT
/// (Python's `Tunnel connection failed: 403 ...`, curl's verbose output).
pub(crate) async fn send_error<W: AsyncWrite + Unpin>(w: &mut W, code: u16, body: &str) -> io::Result<()> {
    // Printable ASCII as it is (quotes too), anything else escaped: no CR/LF can end the
    // status line or the body early.
    let shown: String = body
        .chars()
        .map(|c| if c == ' ' || c.is_ascii_graphic() { c.to_string() } else { escape(c.encode_utf8(&mut [0; 4])) })
        .collect();
    let text = format!("cell-egress: {shown}");
    let mut extra = "";
    if code == 405 {
        extra = "Allow: CONNECT, GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n";
    }
    let status = if code == 403 { format!("{} ({text})", status_text(code)) } else { status_text(code).to_owned() };
    let body = format!("{text}\n");
    let resp = format!(
        "HTTP/1.1 {code} {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    w.write_all(resp.as_bytes()).await?;
    w.flush().await
}

/// Why a head could not be read.
enum HeadError {
    TooLarge,
    Malformed(String),
    Timeout,
    Closed,
}

/// Read until a complete request head; returns its length (bytes after it stay in `buf`).
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: tokio::time::Instant,
) -> Result<usize, HeadError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) if n <= max => return Ok(n),
            Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError::TooLarge)
            }
            Ok(httparse::Status::Partial) if buf.len() >= max => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(HeadError::Malformed(format!("malformed request head: {e}"))),
        }
        let want = (max + 1 - buf.len()).min(8192);
        let start = buf.len();
        buf.resize(start + want, 0);
        let read = timeout_at(deadline, r.read(&mut buf[start..])).await;
        let n = match read {
            Err(_) => {
                buf.truncate(start);
                return Err(HeadError::Timeout);
            }
            Ok(Err(_) | Ok(0)) => {
                buf.truncate(start);
                return Err(HeadError::Closed);
            }
            Ok(Ok(n)) => n,
        };
        buf.truncate(start + n);
    }
}

/// A parsed request head, owned.
struct Head {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head".into()),
        Err(e) => return Err(format!("malformed request head: {e}")),
    }
    Ok(Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        minor_version: req.version.unwrap_or(1),
        headers: req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
    })
}

impl Head {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

/// A refusal before any upstream exists.
struct Reject {
    code: u16,
    verdict: Verdict,
    reason: String,
}

impl Reject {
    fn bad(reason: impl Into<String>) -> Self {
        Self { code: 400, verdict: Verdict::Error, reason: reason.into() }
    }

    fn denied(target: &str, why: &impl std::fmt::Display) -> Self {
        Self { code: 403, verdict: Verdict::Deny, reason: format!("denied {target}: {why}") }
    }
}

fn authority_reject(target: &str, e: AuthorityError) -> Reject {
    match e {
        AuthorityError::Host(h) => Reject::denied(target, &Denial::InvalidHost(h)),
        other => Reject::bad(format!("bad target {target:?}: {other}")),
    }
}

/// What the client asked for.
enum Request {
    Connect { host: Host, port: u16 },
    Plain { host: Host, port: u16, head: Vec<u8>, body: Body },
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

/// `Some(())` for `Transfer-Encoding: chunked`; other codings are refused (501).
fn transfer_encoding(head: &Head) -> Result<Option<()>, Reject> {
    let codings: Vec<String> = head
        .all("transfer-encoding")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .flat_map(|v| v.split(',').map(|c| c.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect();
    match codings.as_slice() {
        [] => Ok(None),
        [only] if only == "chunked" => Ok(Some(())),
        _ => Err(Reject {
            code: 501,
            verdict: Verdict::Error,
            reason: format!("Transfer-Encoding {codings:?} is not supported (only chunked)"),
        }),
    }
}

fn classify(head: &Head) -> Result<Request, Reject> {
    let method = head.method.as_str();
    if method.eq_ignore_ascii_case("TRACE") || method.eq_ignore_ascii_case("TRACK") {
        return Err(Reject { code: 405, verdict: Verdict::Deny, reason: format!("method {method} is not allowed") });
    }
    if method == "CONNECT" {
        let (host, port) = parse_authority(&head.target, None).map_err(|e| authority_reject(&head.target, e))?;
        return Ok(Request::Connect { host, port });
    }
    let target = head.target.as_str();
    let rest = match target.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("http://") => &target[7..],
        _ if target.starts_with('/') => {
            return Err(Reject::bad("origin-form request: this is a proxy, send absolute-form or CONNECT"))
        }
        _ => {
            return Err(Reject::bad(format!(
                "unsupported request target {target:?} (plain http:// only; use CONNECT for TLS)"
            )))
        }
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(Reject::denied(authority, &"userinfo in the request target is not allowed"));
    }
    if path.contains('#') {
        return Err(Reject::bad("fragment in request target"));
    }
    let (host, port) = parse_authority(authority, Some(80)).map_err(|e| authority_reject(authority, e))?;

    let mut hosts = head.all("host");
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(Reject::bad("more than one Host header"));
    }
    if let Some(h) = host_header {
        let hv = std::str::from_utf8(h).map_err(|_| Reject::bad("Host header is not ASCII"))?;
        let matches = parse_authority(hv.trim(), Some(80)).is_ok_and(|(hh, hp)| hh == host && hp == port);
        if !matches {
            return Err(Reject::denied(authority, &format!("Host header {hv:?} does not match the request target")));
        }
    }

    let chunked = match transfer_encoding(head)? {
        None => false,
        Some(()) if head.all("content-length").next().is_some() => {
            return Err(Reject::bad("both Transfer-Encoding and Content-Length"))
        }
        Some(()) => true,
    };
    let mut length: Option<u64> = None;
    for v in head.all("content-length") {
        let n = std::str::from_utf8(v)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Reject::bad("invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(Reject::bad("conflicting Content-Length headers"));
        }
        length = Some(n);
    }

    Ok(Request::Plain {
        host,
        port,
        head: rewrite_head(head, path, authority, host_header.is_none()),
        body: if chunked { Body::Chunked } else { length.map_or(Body::None, Body::Length) },
    })
}

/// Rewrite to origin-form, drop hop-by-hop headers (and those `Connection` names), force
/// `Connection: close`; add `Host` when the client sent none (HTTP/1.0).
fn rewrite_head(head: &Head, path: &str, authority: &str, add_host: bool) -> Vec<u8> {
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let named: Vec<String> = head
        .all("connection")
        .chain(head.all("proxy-connection"))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| t != "host" && !t.is_empty())
        .collect();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(format!("{} {path} HTTP/1.{}\r\n", head.method, head.minor_version).as_bytes());
    if add_host {
        out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || named.contains(&lower) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

fn failure_code(f: &Failure) -> u16 {
    match f {
        Failure::Denied(_) => 403,
        Failure::TooManyTunnels(_) => 503,
        _ => 502,
    }
}

/// Serve one HTTP client whose first byte was already read.
pub(crate) async fn serve(mut client: UnixStream, first: u8, mut ctx: Ctx<'_>) {
    let Some((request, leftover)) = receive(&mut client, first, &mut ctx).await else {
        return;
    };
    let (host, port) = match &request {
        Request::Connect { host, port } | Request::Plain { host, port, .. } => (host.clone(), *port),
    };
    let target = format!("{host}:{port}");
    let mut upstream = match ctx.establish(&host, port).await {
        Ok(s) => s,
        Err(f) => {
            let msg = match &f {
                Failure::Denied(d) => d.refusal(&host, port),
                other => format!("{target}: {}", other.reason()),
            };
            // Audited before the client hears: a command that exits on the refusal may end
            // the cell (and this proxy) at once, and the launcher reads the denial back.
            ctx.fail(&f);
            let _ = send_error(&mut client, failure_code(&f), &msg).await;
            return;
        }
    };
    ctx.handshake_done();
    let verdict = match request {
        Request::Connect { .. } => connect(&mut ctx, &mut client, &mut upstream, &leftover).await,
        Request::Plain { head, body, .. } => plain(&mut ctx, &mut client, &mut upstream, &head, &leftover, &body).await,
    };
    ctx.finish(verdict);
}

/// Read, parse and classify the request head. `None`: the client was answered (when it
/// still listens) and the audit line written. Otherwise the request and the bytes that
/// followed its head.
async fn receive(client: &mut UnixStream, first: u8, ctx: &mut Ctx<'_>) -> Option<(Request, Vec<u8>)> {
    let max = ctx.policy.limits().max_header_bytes;
    let mut buf = Vec::with_capacity(1024);
    buf.push(first);
    let head_len = match read_head(client, &mut buf, max, ctx.deadline).await {
        Ok(n) => n,
        Err(e) => {
            let (code, reason) = match e {
                HeadError::TooLarge => (431, format!("request head larger than {max} bytes")),
                HeadError::Malformed(m) => (400, m),
                HeadError::Timeout => (408, "handshake timeout".to_owned()),
                HeadError::Closed => {
                    ctx.audit.reason = "client closed before a complete request head".into();
                    ctx.finish(Verdict::Error);
                    return None;
                }
            };
            let _ = send_error(client, code, &reason).await;
            ctx.audit.reason = reason;
            ctx.finish(Verdict::Error);
            return None;
        }
    };
    let head = match parse_head(&buf[..head_len]) {
        Ok(h) => h,
        Err(m) => {
            let _ = send_error(client, 400, &m).await;
            ctx.audit.reason = m;
            ctx.finish(Verdict::Error);
            return None;
        }
    };
    ctx.audit.method = Some(escape(&head.method));
    match classify(&head) {
        Ok(r) => Some((r, buf.split_off(head_len))),
        Err(rej) => {
            ctx.audit.host = Some(escape(&head.target));
            ctx.audit.reason.clone_from(&rej.reason);
            ctx.finish(rej.verdict);
            let _ = send_error(client, rej.code, &rej.reason).await;
            None
        }
    }
}

/// Answer a CONNECT with 200, forward what the client sent after its head, then relay
/// both ways ([`tunnel`]).
async fn connect(
    ctx: &mut Ctx<'_>,
    client: &mut UnixStream,
    upstream: &mut tokio::net::TcpStream,
    leftover: &[u8],
) -> Verdict {
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
        ctx.audit.reason = "client went away".into();
        return Verdict::Allow;
    }
    if !leftover.is_empty() {
        if upstream.write_all(leftover).await.is_err() {
            ctx.audit.reason = "upstream write failed".into();
            return Verdict::Allow;
        }
        ctx.audit.bytes_up += leftover.len() as u64;
    }
    tunnel(ctx, client, upstream).await;
    Verdict::Allow
}

/// Forward one plain request (head, exactly its body), then relay the response until the
/// upstream closes. Anything the client sends after the body is not forwarded. A malformed
/// chunked body ends the exchange: with a 400 when no response byte was relayed yet, and
/// an `Error` verdict.
async fn plain(
    ctx: &mut Ctx<'_>,
    client: &mut UnixStream,
    upstream: &mut tokio::net::TcpStream,
    head: &[u8],
    leftover: &[u8],
    body: &Body,
) -> Verdict {
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let mut stop = ctx.shutdown();
    let (mut cr, cw) = client.split();
    let (ur, mut uw) = upstream.split();
    let send = async {
        uw.write_all(head).await?;
        up.fetch_add(head.len() as u64, Ordering::Relaxed);
        match body {
            Body::None => {}
            Body::Length(n) => {
                // What already arrived with the head, then the rest straight from the socket
                // (never more than the body: what follows stays unread).
                let early = usize::try_from(*n).map_or(leftover.len(), |n| n.min(leftover.len()));
                uw.write_all(&leftover[..early]).await?;
                up.fetch_add(early as u64, Ordering::Relaxed);
                pump(cr.as_ref(), uw.as_ref(), Some(*n - early as u64), &up).await?;
            }
            Body::Chunked => forward_chunked(&mut leftover.chain(&mut cr), &mut uw, &up).await?,
        }
        std::future::pending::<io::Result<()>>().await
    };
    let recv = pump(ur.as_ref(), cw.as_ref(), None, &down);
    let result = tokio::select! {
        r = send => r.map(|()| "closed"),
        r = recv => r.map(|()| "closed"),
        _ = stop.wait_for(|s| *s) => Ok("proxy shutting down"),
    };
    let mut verdict = Verdict::Allow;
    if let Err(e) = &result {
        if let Some(bad) = e.get_ref().and_then(|inner| inner.downcast_ref::<BadChunk>()) {
            verdict = Verdict::Error;
            if down.load(Ordering::Relaxed) == 0 {
                let _ = send_error(client, 400, &bad.to_string()).await;
            }
        }
    }
    ctx.audit.bytes_up += up.load(Ordering::Relaxed);
    ctx.audit.bytes_down += down.load(Ordering::Relaxed);
    ctx.audit.reason = match result {
        Ok(r) => r.to_owned(),
        Err(e) => format!("closed: {e}"),
    };
    verdict
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: u64 = 4096;

/// The client's chunked framing is broken (told apart from I/O errors by type).
#[derive(Debug)]
struct BadChunk(&'static str);

impl std::fmt::Display for BadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for BadChunk {}

fn bad_chunk(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, BadChunk(what))
}

/// Parse a chunk-size line (CRLF included): 1 to 15 hex digits, optionally followed by
/// `;extensions` of visible ASCII only (no CR, LF, space, controls). Extensions are
/// dropped by the caller.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let (size, ext) = match line.iter().position(|b| *b == b';') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if ext.is_some_and(|e| !e.iter().all(u8::is_ascii_graphic)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

/// A trailer line may not smuggle a bare CR or other controls (HTAB is allowed).
fn trailer_ok(line: &[u8]) -> bool {
    line.strip_suffix(b"\r\n").is_some_and(|l| l.iter().all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)))
}

/// Forward a chunked body, parsing its framing so that nothing after the last chunk and
/// its trailers reaches the upstream; chunk-size lines are re-emitted canonically
/// (lowercase hex, no extensions).
async fn forward_chunked<R, W>(r: &mut R, w: &mut W, up: &AtomicU64) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = BufReader::with_capacity(8 * 1024, r);
    let mut line = Vec::with_capacity(64);
    loop {
        read_crlf_line(&mut r, &mut line).await?;
        let size = parse_chunk_size(&line).ok_or_else(|| bad_chunk("chunk size"))?;
        let canonical = format!("{size:x}\r\n");
        w.write_all(canonical.as_bytes()).await?;
        up.fetch_add(canonical.len() as u64, Ordering::Relaxed);
        if size == 0 {
            // Trailer section, up to the empty line.
            loop {
                read_crlf_line(&mut r, &mut line).await?;
                if !trailer_ok(&line) {
                    return Err(bad_chunk("trailer"));
                }
                w.write_all(&line).await?;
                up.fetch_add(line.len() as u64, Ordering::Relaxed);
                if line == b"\r\n" {
                    return Ok(());
                }
            }
        }
        let copied = tokio::io::copy(&mut (&mut r).take(size), w).await?;
        up.fetch_add(copied, Ordering::Relaxed);
        if copied != size {
            return Err(bad_chunk("truncated chunk"));
        }
        read_crlf_line(&mut r, &mut line).await?;
        if line != b"\r\n" {
            return Err(bad_chunk("missing CRLF after chunk data"));
        }
        w.write_all(&line).await?;
        up.fetch_add(2, Ordering::Relaxed);
    }
}

/// Read one line ending in CRLF (at most [`MAX_CHUNK_LINE`] bytes) into `line`.
async fn read_crlf_line<R: AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) -> io::Result<()> {
    line.clear();
    (&mut *r).take(MAX_CHUNK_LINE).read_until(b'\n', line).await?;
    if line.len() < 2 || !line.ends_with(b"\r\n") {
        return Err(bad_chunk("line"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        for (line, want) in [
            (&b"5\r\n"[..], Some(5)),
            (b"00A\r\n", Some(10)),
            (b"fF;ext=1\r\n", Some(255)),
            (b"0;a;b=\"c\"\r\n", Some(0)),
            (b"0\r\n", Some(0)),
            (b"fffffffffffffff\r\n", Some(0xfff_ffff_ffff_ffff)),
        ] {
            assert_eq!(parse_chunk_size(line), want, "{:?}", String::from_utf8_lossy(line));
        }
        for line in [
            &b"+5\r\n"[..],
            b"-5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b" 5 \r\n",
            b"5\r;x\r\n",
            b"5; x\r\n",
            b"5;x \r\n",
            b"5;\tx\r\n",
            b"0x5\r\n",
            b"\r\n",
            b";x\r\n",
            b"g\r\n",
            b"5\n",
            b"1000000000000000\r\n",
            b"5;\x80\r\n",
        ] {
            assert_eq!(parse_chunk_size(line), None, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn trailer_lines() {
        assert!(trailer_ok(b"X-Sum: 1\tb\r\n"));
        assert!(trailer_ok(b"\r\n"));
        assert!(!trailer_ok(b"X-Sum: 1\rX: 2\r\n"));
        assert!(!trailer_ok(b"X-Sum: \x001\r\n"));
    }
}
