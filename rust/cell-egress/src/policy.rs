//! Egress policy: allowlist entries, static name pins, limits, host canonicalisation and
//! address classification.
//!
//! This module has no async dependencies so the launcher can reuse it to validate a cell's
//! network configuration before anything runs.
//!
//! # Decisions
//!
//! * Hosts are canonicalised before matching ([`canonicalize_host`]): ASCII lowercase, one
//!   trailing dot dropped, and anything outside `a-z 0-9 - .` rejected. That includes `_`:
//!   underscores are legal in DNS but not in host names (RFC 952/1123), no HTTP or git host
//!   needs one, and accepting them only widens the parser-differential surface.
//!   Labels may not be empty, may not start or end with `-`, are at most 63 bytes, and the
//!   name is at most 253 bytes.
//! * A host whose last label is numeric (`1.2.3.4`, `2130706433`, `0x7f.1`) is an IPv4 literal
//!   and must parse the way `inet_aton(3)` parses it; otherwise it is rejected rather than
//!   handed to a resolver (no TLD is numeric).
//! * IPv6 literals that embed an IPv4 address (mapped `::ffff:a.b.c.d`, translated
//!   `::ffff:0:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
//!   normalised to that IPv4 address, both in targets and in allow entries.
//! * IP-literal targets are allowed only by an IP-literal entry for the same address and port.
//! * Names are allowed by a `host` or `*.domain` entry. A pinned name (`hosts`) is dialled at
//!   its pinned address without DNS, whatever range it is in; a pin does not allow a name by
//!   itself. Any other name is resolved by the proxy and every resolved address is checked
//!   with [`Policy::check_resolved`]: loopback, private, link-local, CGNAT, multicast,
//!   reserved and documentation ranges are refused unless an IP-literal entry lists them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Ports an entry without `:port` allows.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// Second-level public suffixes that a wildcard may not cover on its own (`*.co.uk`).
/// Not the full public suffix list: a guard against the common mistakes. Single-label
/// wildcards (`*.com`, `*.test`) are always refused.
const MULTI_LABEL_PUBLIC_SUFFIXES: &[&str] = &[
    "ac.uk",
    "co.uk",
    "gov.uk",
    "ltd.uk",
    "me.uk",
    "net.uk",
    "org.uk",
    "plc.uk",
    "com.au",
    "net.au",
    "org.au",
    "edu.au",
    "gov.au",
    "co.nz",
    "org.nz",
    "net.nz",
    "co.jp",
    "ne.jp",
    "or.jp",
    "ac.jp",
    "co.kr",
    "or.kr",
    "com.br",
    "net.br",
    "org.br",
    "com.cn",
    "net.cn",
    "org.cn",
    "com.tw",
    "com.hk",
    "com.sg",
    "com.my",
    "co.in",
    "net.in",
    "org.in",
    "co.za",
    "org.za",
    "com.mx",
    "com.ar",
    "com.tr",
    "co.il",
    "co.id",
    "com.pl",
    "com.ua",
    "co.th",
    "com.vn",
    "com.ph",
    "com.pk",
    "com.ng",
    "com.eg",
    "com.sa",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "appspot.com",
    "azurewebsites.net",
    "cloudfront.net",
    "amazonaws.com",
    "blogspot.com",
    "netlify.app",
    "vercel.app",
    "pages.dev",
    "workers.dev",
    "web.app",
    "firebaseapp.com",
    "fly.dev",
    "onrender.com",
    "ngrok.io",
    "ngrok-free.app",
];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a host string is not a canonical host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host is longer than 253 bytes")]
    TooLong,
    #[error("host contains {0} (only letters, digits, '-' and '.' are allowed)")]
    BadChar(EscapedChar),
    #[error("host has an empty label")]
    EmptyLabel,
    #[error("host label is longer than 63 bytes")]
    LabelTooLong,
    #[error("host label starts or ends with '-'")]
    HyphenEdge,
    #[error("malformed IP literal")]
    BadIpLiteral,
}

/// A character shown safely in messages (`'\0'`, `'\r'`, `'%'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscapedChar(pub char);

impl fmt::Display for EscapedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.0.escape_default())
    }
}

/// Why an `host[:port]` authority cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("missing port")]
    MissingPort,
    #[error("invalid port {0:?} (1-65535)")]
    BadPort(String),
    #[error("unterminated '[' in authority")]
    UnclosedBracket,
    #[error("IPv6 literal must be in brackets")]
    BareIpv6,
    #[error("unexpected text after ']'")]
    TrailingAfterBracket,
    #[error(transparent)]
    Host(#[from] HostError),
}

/// A policy entry or pin that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("allow entry {entry:?}: {reason}")]
    Allow { entry: String, reason: String },
    #[error("hosts pin {name:?}: {reason}")]
    Pin { name: String, reason: String },
    #[error("limits.{field}: {reason}")]
    Limit { field: &'static str, reason: String },
}

/// Loading a policy failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("policy is invalid: {0}")]
    Entry(#[from] EntryError),
}

// ---------------------------------------------------------------------------------------
// File format
// ---------------------------------------------------------------------------------------

/// The policy file as written (`--policy POLICY.json`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Allowlist entries: `host`, `*.domain`, IP literals, each with an optional `:port`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Static name pins, like `/etc/hosts` for the proxy: name → IP address.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Resource limits of one proxy.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Limits {
    /// Concurrent tunnels (CONNECT, SOCKS5 and plain HTTP requests) at most.
    pub max_tunnels: usize,
    /// Time a client has to send a complete request head (and to reach the upstream).
    pub handshake_timeout_ms: u64,
    /// Largest HTTP request head accepted.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_tunnels: 512, handshake_timeout_ms: 10_000, max_header_bytes: 32_768 }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), EntryError> {
        if self.max_tunnels == 0 || self.max_tunnels > 1_000_000 {
            return Err(EntryError::Limit {
                field: "maxTunnels",
                reason: format!("{} is outside 1..=1000000", self.max_tunnels),
            });
        }
        if self.handshake_timeout_ms == 0 || self.handshake_timeout_ms > 600_000 {
            return Err(EntryError::Limit {
                field: "handshakeTimeoutMs",
                reason: format!("{} is outside 1..=600000", self.handshake_timeout_ms),
            });
        }
        if !(1024..=1 << 20).contains(&self.max_header_bytes) {
            return Err(EntryError::Limit {
                field: "maxHeaderBytes",
                reason: format!("{} is outside 1024..=1048576", self.max_header_bytes),
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------

/// A canonical host: a lowercase DNS name or a normalised IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Canonicalise a host (no port). Accepts a bracketed or bare IPv6 literal, any IPv4
/// spelling `inet_aton` accepts, or a DNS name; see the module docs for the rules.
///
/// # Errors
/// A [`HostError`] naming the first problem found.
pub fn canonicalize_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::BadIpLiteral)?;
        let v6: Ipv6Addr = inner.parse().map_err(|_| HostError::BadIpLiteral)?;
        return Ok(Host::Ip(normalize_ip(IpAddr::V6(v6))));
    }
    if raw.contains(':') {
        // Only a bare IPv6 literal may contain ':' here (ports are split off before).
        let v6: Ipv6Addr = raw.parse().map_err(|_| HostError::BadChar(EscapedChar(':')))?;
        return Ok(Host::Ip(normalize_ip(IpAddr::V6(v6))));
    }
    if let Some(c) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.')) {
        return Err(HostError::BadChar(EscapedChar(c)));
    }
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > 253 {
        return Err(HostError::TooLong);
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if looks_numeric(last) {
        return parse_ipv4_aton(name).map(|a| Host::Ip(IpAddr::V4(a))).ok_or(HostError::BadIpLiteral);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(HostError::LabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostError::HyphenEdge);
        }
    }
    Ok(Host::Name(name.to_owned()))
}

/// Canonicalise raw bytes (a SOCKS5 DOMAINNAME): non-UTF-8 and NUL are rejected like any
/// other character outside the allowed set.
///
/// # Errors
/// As [`canonicalize_host`].
pub fn canonicalize_host_bytes(raw: &[u8]) -> Result<Host, HostError> {
    match std::str::from_utf8(raw) {
        Ok(s) => canonicalize_host(s),
        Err(e) => {
            let bad = raw.get(e.valid_up_to()).copied().unwrap_or(0);
            Err(HostError::BadChar(EscapedChar(char::from(bad))))
        }
    }
}

/// A label that `inet_aton` would read as a number: all digits, or `0x` + hex digits.
fn looks_numeric(label: &str) -> bool {
    if label.is_empty() {
        return false;
    }
    if let Some(hex) = label.strip_prefix("0x") {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    label.bytes().all(|b| b.is_ascii_digit())
}

/// Parse an IPv4 address the way glibc `inet_aton` does: one to four parts separated by
/// dots, each decimal, octal (leading `0`) or hex (`0x`), the last part filling the
/// remaining bytes. Input must already be lowercase. A trailing dot is not accepted.
#[must_use]
pub fn parse_ipv4_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        nums.push(parse_aton_part(p)?);
    }
    let (last, init) = nums.split_last()?;
    let mut value: u64 = 0;
    for n in init {
        if *n > 0xff {
            return None;
        }
        value = (value << 8) | n;
    }
    let rest_bits = 8 * (4 - init.len());
    if *last >= 1u64 << rest_bits {
        return None;
    }
    value = (value << rest_bits) | last;
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn parse_aton_part(p: &str) -> Option<u64> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x") {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // inet_aton accepts a bare "0x" as zero.
        return (radix == 16).then_some(0);
    }
    if !digits.bytes().all(|b| char::from(b).is_digit(radix)) || digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The IPv4 address an IPv6 address embeds, for the forms that reach an IPv4 host:
/// mapped `::ffff:0:0/96`, translated `::ffff:0:0:0/96`, compatible `::/96` (not `::` or
/// `::1`), NAT64 `64:ff9b::/96`, and 6to4 `2002::/16`.
#[must_use]
pub fn embedded_ipv4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let low = Ipv4Addr::new(a.octets()[12], a.octets()[13], a.octets()[14], a.octets()[15]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// Replace an IPv6 address that embeds an IPv4 address by that IPv4 address.
#[must_use]
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The range an address belongs to, for the resolved-address check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// Globally routable: allowed for an allowed name.
    Public,
    Loopback,
    Private,
    LinkLocal,
    SharedCgnat,
    Multicast,
    Unspecified,
    Broadcast,
    Documentation,
    Benchmarking,
    Reserved,
    UniqueLocal,
    /// An IPv6 transition prefix whose IPv4 target cannot be recovered (Teredo, local NAT64).
    Tunnel,
}

impl AddrClass {
    /// Every class.
    pub const ALL: [AddrClass; 13] = [
        AddrClass::Public,
        AddrClass::Loopback,
        AddrClass::Private,
        AddrClass::LinkLocal,
        AddrClass::SharedCgnat,
        AddrClass::Multicast,
        AddrClass::Unspecified,
        AddrClass::Broadcast,
        AddrClass::Documentation,
        AddrClass::Benchmarking,
        AddrClass::Reserved,
        AddrClass::UniqueLocal,
        AddrClass::Tunnel,
    ];

    /// Short name used in denial reasons.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AddrClass::Public => "public",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link-local",
            AddrClass::SharedCgnat => "CGNAT",
            AddrClass::Multicast => "multicast",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Broadcast => "broadcast",
            AddrClass::Documentation => "documentation",
            AddrClass::Benchmarking => "benchmarking",
            AddrClass::Reserved => "reserved",
            AddrClass::UniqueLocal => "unique-local",
            AddrClass::Tunnel => "tunnel",
        }
    }
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classify an address (after [`normalize_ip`]; embedded IPv4 forms are judged as IPv4).
#[must_use]
pub fn classify(ip: IpAddr) -> AddrClass {
    match normalize_ip(ip) {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn in_v4(a: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    (u32::from(a) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(a: Ipv4Addr) -> AddrClass {
    const TABLE: &[([u8; 4], u32, AddrClass)] = &[
        ([255, 255, 255, 255], 32, AddrClass::Broadcast),
        ([0, 0, 0, 0], 8, AddrClass::Unspecified),
        ([10, 0, 0, 0], 8, AddrClass::Private),
        ([100, 64, 0, 0], 10, AddrClass::SharedCgnat),
        ([127, 0, 0, 0], 8, AddrClass::Loopback),
        ([169, 254, 0, 0], 16, AddrClass::LinkLocal),
        ([172, 16, 0, 0], 12, AddrClass::Private),
        ([192, 0, 0, 0], 24, AddrClass::Reserved),
        ([192, 0, 2, 0], 24, AddrClass::Documentation),
        ([192, 88, 99, 0], 24, AddrClass::Reserved),
        ([192, 168, 0, 0], 16, AddrClass::Private),
        ([198, 18, 0, 0], 15, AddrClass::Benchmarking),
        ([198, 51, 100, 0], 24, AddrClass::Documentation),
        ([203, 0, 113, 0], 24, AddrClass::Documentation),
        ([224, 0, 0, 0], 4, AddrClass::Multicast),
        ([240, 0, 0, 0], 4, AddrClass::Reserved),
    ];
    TABLE.iter().find(|(net, bits, _)| in_v4(a, *net, *bits)).map_or(AddrClass::Public, |(_, _, c)| *c)
}

fn in_v6(a: Ipv6Addr, net: Ipv6Addr, bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    (u128::from(a) & mask) == (u128::from(net) & mask)
}

fn classify_v6(a: Ipv6Addr) -> AddrClass {
    const fn v6(s: [u16; 8]) -> Ipv6Addr {
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
    }
    const TABLE: &[([u16; 8], u32, AddrClass)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, AddrClass::Unspecified),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, AddrClass::Loopback),
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, AddrClass::Reserved),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, AddrClass::Tunnel),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, AddrClass::Reserved),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, AddrClass::Tunnel),
        ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, AddrClass::Benchmarking),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, AddrClass::Documentation),
        ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, AddrClass::Reserved),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, AddrClass::Documentation),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, AddrClass::UniqueLocal),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, AddrClass::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, AddrClass::Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, AddrClass::Multicast),
    ];
    if let Some((_, _, c)) = TABLE.iter().find(|(net, bits, _)| in_v6(a, v6(*net), *bits)) {
        return *c;
    }
    // Only 2000::/3 is allocated global unicast; everything else is reserved.
    if in_v6(a, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        AddrClass::Public
    } else {
        AddrClass::Reserved
    }
}

/// Split an authority `host:port` (`[v6]:port`); the port is required unless
/// `default_port` is given. The host is canonicalised.
///
/// # Errors
/// An [`AuthorityError`] when the authority is malformed or the host is not canonical.
pub fn parse_authority(raw: &str, default_port: Option<u16>) -> Result<(Host, u16), AuthorityError> {
    let (host, port) = split_host_port(raw)?;
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default_port.ok_or(AuthorityError::MissingPort)?,
    };
    Ok((canonicalize_host(host)?, port))
}

/// Split `host[:port]` without judging the host. Brackets stay on IPv6 hosts.
fn split_host_port(raw: &str) -> Result<(&str, Option<&str>), AuthorityError> {
    if raw.starts_with('[') {
        let end = raw.find(']').ok_or(AuthorityError::UnclosedBracket)?;
        let (host, rest) = raw.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => rest.strip_prefix(':').map(|p| (host, Some(p))).ok_or(AuthorityError::TrailingAfterBracket),
        };
    }
    match raw.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Err(AuthorityError::BareIpv6),
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((raw, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, AuthorityError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthorityError::BadPort(p.to_owned()));
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(AuthorityError::BadPort(p.to_owned())),
        Ok(n) => Ok(n),
    }
}

// ---------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------

/// What an allow entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Strict subdomains of this name (`*.example.test` → suffix `example.test`).
    Subdomains(String),
    /// This (normalised) address.
    Ip(IpAddr),
}

/// One parsed allow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub pattern: Pattern,
    /// `None`: the default ports (80 and 443).
    pub port: Option<u16>,
}

impl AllowEntry {
    /// Parse one entry: `host`, `*.domain`, `1.2.3.4`, `[::1]`, each with optional `:port`.
    ///
    /// # Errors
    /// [`EntryError::Allow`] naming the entry.
    pub fn parse(raw: &str) -> Result<Self, EntryError> {
        if let Some(entry) = entry_of_url(raw) {
            let reason = format!("give a host, not a URL: write {entry:?}");
            return Err(EntryError::Allow { entry: raw.to_owned(), reason });
        }
        Self::parse_plain(raw)
    }

    /// [`AllowEntry::parse`] without the URL check.
    fn parse_plain(raw: &str) -> Result<Self, EntryError> {
        let err = |reason: String| EntryError::Allow { entry: raw.to_owned(), reason };
        let (host, port) = split_host_port(raw).map_err(|e| err(e.to_string()))?;
        let port = port.map(parse_port).transpose().map_err(|e| err(e.to_string()))?;
        if host.is_empty() {
            return Err(err("empty host".to_owned()));
        }
        let pattern = if let Some(domain) = host.strip_prefix("*.") {
            match canonicalize_host(domain).map_err(|e| err(e.to_string()))? {
                Host::Ip(_) => return Err(err("a wildcard cannot cover an IP address".into())),
                Host::Name(d) => {
                    if !d.contains('.') {
                        return Err(err(format!("wildcard over a top-level domain ({d:?}) would allow a whole TLD")));
                    }
                    if MULTI_LABEL_PUBLIC_SUFFIXES.contains(&d.as_str()) {
                        return Err(err(format!("wildcard over the public suffix {d:?} would allow unrelated sites")));
                    }
                    Pattern::Subdomains(d)
                }
            }
        } else if host.contains('*') {
            return Err(err("'*' is only allowed as a whole first label ('*.example.com')".into()));
        } else {
            match canonicalize_host(host).map_err(|e| err(e.to_string()))? {
                Host::Ip(ip) => Pattern::Ip(ip),
                Host::Name(n) => Pattern::Exact(n),
            }
        };
        Ok(Self { pattern, port })
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.map_or(DEFAULT_PORTS.contains(&port), |p| p == port)
    }

    fn name_matches(&self, name: &str) -> bool {
        match &self.pattern {
            Pattern::Exact(n) => n == name,
            Pattern::Subdomains(d) => name
                .strip_suffix(d.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty()),
            Pattern::Ip(_) => false,
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Pattern::Exact(n) => f.write_str(n)?,
            Pattern::Subdomains(d) => write!(f, "*.{d}")?,
            Pattern::Ip(ip) => write!(f, "{}", Host::Ip(*ip))?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// The allow entry a URL-like string meant: `https://pypi.org/simple`, `pypi.org/simple`
/// and `user@pypi.org` all mean `pypi.org` (a port given in the URL is kept). `None` when
/// `raw` has no scheme, path, query, fragment or user part, or what remains is no entry.
#[must_use]
pub fn entry_of_url(raw: &str) -> Option<String> {
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    if rest.len() == raw.len() && !rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    AllowEntry::parse_plain(authority).ok().map(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("invalid host: {0}")]
    InvalidHost(#[from] HostError),
    #[error("host is not in the allowlist")]
    HostNotAllowed,
    #[error("port {0} is not allowed for this host")]
    PortNotAllowed(u16),
    #[error("IP address is not in the allowlist")]
    IpNotListed,
    #[error("resolves to {class} address {addr}")]
    SpecialAddress { class: AddrClass, addr: IpAddr },
}

impl Denial {
    /// The allow entry that would let `host:port` through, when one would: the host (with
    /// the port unless it is 80 or 443), or for a name that resolved to a non-public address,
    /// that address (a name entry never re-allows those; see [`Policy::check_resolved`]).
    #[must_use]
    pub fn allow_entry(&self, host: &Host, port: u16) -> Option<String> {
        let with_port = |h: String| if DEFAULT_PORTS.contains(&port) { h } else { format!("{h}:{port}") };
        match self {
            Denial::HostNotAllowed | Denial::PortNotAllowed(_) | Denial::IpNotListed => {
                Some(with_port(host.to_string()))
            }
            Denial::SpecialAddress { addr, .. } => Some(with_port(Host::Ip(*addr).to_string())),
            Denial::InvalidHost(_) => None,
        }
    }

    /// What a refused client is told: the target, why, and the `--allow` (or config entry)
    /// that would allow it.
    #[must_use]
    pub fn refusal(&self, host: &Host, port: u16) -> String {
        let mut msg = format!("denied {host}:{port} ({self})");
        if let Some(e) = self.allow_entry(host, port) {
            msg.push_str(&format!("; rerun with --allow {e}, or add \"{e}\" to network.allow"));
        }
        msg
    }

    /// The denial an audit record's reason names (the inverse of `Display`), for those that
    /// an allow entry can lift; `None` for anything else.
    #[must_use]
    pub fn from_reason(reason: &str) -> Option<Self> {
        match reason {
            "host is not in the allowlist" => return Some(Denial::HostNotAllowed),
            "IP address is not in the allowlist" => return Some(Denial::IpNotListed),
            _ => {}
        }
        if let Some(port) = reason.strip_prefix("port ").and_then(|r| r.strip_suffix(" is not allowed for this host")) {
            return port.parse().ok().map(Denial::PortNotAllowed);
        }
        let (class, addr) = reason.strip_prefix("resolves to ")?.split_once(" address ")?;
        let class = AddrClass::ALL.into_iter().find(|c| c.as_str() == class)?;
        Some(Denial::SpecialAddress { class, addr: addr.parse().ok()? })
    }
}

/// How to reach an allowed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Dial this address (an allowed IP literal or a pinned name); no DNS.
    Direct(IpAddr),
    /// Resolve this name, then check every address with [`Policy::check_resolved`].
    Resolve(String),
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    entries: Vec<AllowEntry>,
    pins: BTreeMap<String, IpAddr>,
    limits: Limits,
}

impl Default for Policy {
    /// Deny everything, default limits.
    fn default() -> Self {
        Self { entries: Vec::new(), pins: BTreeMap::new(), limits: Limits::default() }
    }
}

impl Policy {
    /// Validate a parsed policy file.
    ///
    /// # Errors
    /// The first invalid entry, pin or limit.
    pub fn from_file(file: &PolicyFile) -> Result<Self, EntryError> {
        let entries = file.allow.iter().map(|e| AllowEntry::parse(e)).collect::<Result<Vec<_>, _>>()?;
        let mut pins = BTreeMap::new();
        for (name, ip) in &file.hosts {
            let perr = |reason: String| EntryError::Pin { name: name.clone(), reason };
            let Host::Name(canon) = canonicalize_host(name).map_err(|e| perr(e.to_string()))? else {
                return Err(perr("a pinned name must be a name, not an IP address".into()));
            };
            let Ok(Host::Ip(addr)) = canonicalize_host(ip) else {
                return Err(perr(format!("{ip:?} is not an IP address")));
            };
            if pins.insert(canon, addr).is_some() {
                return Err(perr("pinned twice (names are compared canonically)".into()));
            }
        }
        file.limits.validate()?;
        Ok(Self { entries, pins, limits: file.limits })
    }

    /// Parse and validate policy JSON.
    ///
    /// # Errors
    /// JSON syntax, unknown fields, or an invalid entry.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = serde_json::from_str(json)?;
        Ok(Self::from_file(&file)?)
    }

    /// Read, parse and validate a policy file.
    ///
    /// # Errors
    /// As [`Policy::from_json`], or the file cannot be read.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Read { path: path.display().to_string(), source })?;
        Self::from_json(&text)
    }

    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    #[must_use]
    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// The pinned address of a canonical name.
    #[must_use]
    pub fn pin(&self, name: &str) -> Option<IpAddr> {
        self.pins.get(name).copied()
    }

    fn ip_listed(&self, ip: IpAddr, port: u16) -> bool {
        let ip = normalize_ip(ip);
        self.entries.iter().any(|e| e.pattern == Pattern::Ip(ip) && e.port_matches(port))
    }

    /// Decide a canonical target.
    ///
    /// # Errors
    /// The [`Denial`] when the allowlist does not cover it.
    pub fn decide(&self, host: &Host, port: u16) -> Result<Route, Denial> {
        match host {
            Host::Ip(ip) => {
                let ip = normalize_ip(*ip);
                if self.ip_listed(ip, port) {
                    Ok(Route::Direct(ip))
                } else {
                    Err(Denial::IpNotListed)
                }
            }
            Host::Name(name) => {
                let mut name_seen = false;
                for e in &self.entries {
                    if e.name_matches(name) {
                        if e.port_matches(port) {
                            return Ok(self.pin(name).map_or_else(|| Route::Resolve(name.clone()), Route::Direct));
                        }
                        name_seen = true;
                    }
                }
                Err(if name_seen { Denial::PortNotAllowed(port) } else { Denial::HostNotAllowed })
            }
        }
    }

    /// Canonicalise a raw host then [`Policy::decide`].
    ///
    /// # Errors
    /// Invalid host or not allowed.
    pub fn decide_raw(&self, raw_host: &str, port: u16) -> Result<Route, Denial> {
        self.decide(&canonicalize_host(raw_host)?, port)
    }

    /// Check one address a name resolved to; returns the (normalised) address to dial.
    ///
    /// # Errors
    /// [`Denial::SpecialAddress`] when the address is not public and not listed.
    pub fn check_resolved(&self, addr: IpAddr, port: u16) -> Result<IpAddr, Denial> {
        let addr = normalize_ip(addr);
        match classify(addr) {
            AddrClass::Public => Ok(addr),
            _ if self.ip_listed(addr, port) => Ok(addr),
            class => Err(Denial::SpecialAddress { class, addr }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn policy(allow: &[&str]) -> Policy {
        Policy::from_file(&PolicyFile {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            ..PolicyFile::default()
        })
        .unwrap()
    }

    #[test]
    fn ipv4_spellings_all_normalise_to_loopback() {
        for s in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.0.0.1",
            "0x7F.0.0.1",
            "2130706433",
            "017700000001",
            "0x7f000001",
            "0x7f.1",
            "0177.0.0.1",
            "0177.1",
            "127.0.0.1.",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[64:ff9b::7f00:1]",
            "[2002:7f00:1::]",
            "[::7f00:1]",
            "[::127.0.0.1]",
            "[::ffff:0:7f00:1]",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(canonicalize_host(s), Ok(Host::Ip(v4("127.0.0.1"))), "spelling {s}");
        }
    }

    #[test]
    fn malformed_numeric_hosts_are_rejected() {
        for s in [
            "256.0.0.1",
            "1.2.3.4.5",
            "08.0.0.1",
            "0x1g.0.0.1",
            "4294967296",
            "1.16777216",
            "example.123",
            "1..1",
            "0xffffffffff",
        ] {
            assert!(canonicalize_host(s).is_err(), "{s} accepted");
        }
        // inet_aton edge cases that are valid
        assert_eq!(canonicalize_host("0"), Ok(Host::Ip(v4("0.0.0.0"))));
        assert_eq!(canonicalize_host("1.2.65535"), Ok(Host::Ip(v4("1.2.255.255"))));
        assert_eq!(canonicalize_host("4294967295"), Ok(Host::Ip(v4("255.255.255.255"))));
    }

    #[test]
    fn names_are_lowercased_and_one_trailing_dot_dropped() {
        assert_eq!(canonicalize_host("API.Example.Test."), Ok(Host::Name("api.example.test".into())));
        assert_eq!(canonicalize_host("a.test.."), Err(HostError::EmptyLabel));
        assert_eq!(canonicalize_host("."), Err(HostError::Empty));
        assert_eq!(canonicalize_host(".a.test"), Err(HostError::EmptyLabel));
        assert_eq!(canonicalize_host("-a.test"), Err(HostError::HyphenEdge));
        assert!(canonicalize_host(&"a".repeat(64)).is_err());
        assert!(canonicalize_host(&format!("{}.test", "a.".repeat(130))).is_err());
    }

    #[test]
    fn bad_characters_are_rejected() {
        for s in [
            "evil.com\0.allowed.test",
            "evil.com%00.allowed.test",
            "allowed.test@evil.com",
            "evil.com:443.allowed.test",
            "allowed.test\r\nX: y",
            "allowed.test\n",
            "allowed test",
            "under_score.test",
            "caf\u{e9}.test",
            "::ffff:1.2.3.4%x.allowed.test",
            "[::1%lo]",
            "*.allowed.test",
            "a/b.test",
        ] {
            assert!(canonicalize_host(s).is_err(), "{s:?} accepted");
        }
        assert!(canonicalize_host_bytes(b"evil.com\0.allowed.test").is_err());
        assert!(canonicalize_host_bytes(b"\xff.test").is_err());
    }

    #[test]
    fn authority_parsing() {
        let p = |s| parse_authority(s, None);
        assert_eq!(p("a.test:443"), Ok((Host::Name("a.test".into()), 443)));
        assert_eq!(p("[::1]:22"), Ok((Host::Ip("::1".parse().unwrap()), 22)));
        assert_eq!(p("a.test"), Err(AuthorityError::MissingPort));
        assert_eq!(parse_authority("a.test", Some(80)).unwrap().1, 80);
        assert!(matches!(p("a.test:0"), Err(AuthorityError::BadPort(_))));
        assert!(matches!(p("a.test:65536"), Err(AuthorityError::BadPort(_))));
        assert!(matches!(p("a.test:+80"), Err(AuthorityError::BadPort(_))));
        assert!(p("evil.com:443.allowed.test:443").is_err());
        assert!(matches!(p("evil.com:443.allowed.test"), Err(AuthorityError::BadPort(_))));
        assert_eq!(p("::1:443"), Err(AuthorityError::BareIpv6));
        assert_eq!(p("[::1"), Err(AuthorityError::UnclosedBracket));
        assert_eq!(p("[::1]x:1"), Err(AuthorityError::TrailingAfterBracket));
        assert!(p("allowed.test@evil.com:443").is_err());
    }

    #[test]
    fn wildcard_is_strict_subdomains() {
        let pol = policy(&["*.example.test"]);
        let d = |h: &str| pol.decide_raw(h, 443);
        assert!(d("a.example.test").is_ok());
        assert!(d("a.b.example.test").is_ok());
        assert!(d("A.EXAMPLE.TEST.").is_ok());
        assert_eq!(d("example.test"), Err(Denial::HostNotAllowed));
        assert_eq!(d("badexample.test"), Err(Denial::HostNotAllowed));
        assert_eq!(d("example.test.evil.com"), Err(Denial::HostNotAllowed));
        assert_eq!(d(".example.test"), Err(Denial::InvalidHost(HostError::EmptyLabel)));
    }

    #[test]
    fn exact_entries_and_ports() {
        let pol = policy(&["allowed.test", "ssh.test:22"]);
        assert!(pol.decide_raw("allowed.test", 443).is_ok());
        assert!(pol.decide_raw("allowed.test", 80).is_ok());
        assert_eq!(pol.decide_raw("allowed.test", 8080), Err(Denial::PortNotAllowed(8080)));
        assert!(pol.decide_raw("ssh.test", 22).is_ok());
        assert_eq!(pol.decide_raw("ssh.test", 443), Err(Denial::PortNotAllowed(443)));
        for evil in ["allowed.test.evil.com", "evil-allowed.test", "sub.allowed.test"] {
            assert_eq!(pol.decide_raw(evil, 443), Err(Denial::HostNotAllowed), "{evil}");
        }
        for evil in [
            "evil.com\0.allowed.test",
            "allowed.test@evil.com",
            "evil.com:443.allowed.test",
            "allowed.test\r\n",
            "evil.com%00.allowed.test",
        ] {
            assert!(matches!(pol.decide_raw(evil, 443), Err(Denial::InvalidHost(_))), "{evil:?}");
        }
        assert_eq!(pol.decide_raw("allowed.test", 443), Ok(Route::Resolve("allowed.test".into())));
    }

    #[test]
    fn empty_allowlist_denies_everything() {
        let pol = Policy::from_json("{}").unwrap();
        assert_eq!(pol.decide_raw("a.test", 443), Err(Denial::HostNotAllowed));
        assert_eq!(pol.decide_raw("1.1.1.1", 443), Err(Denial::IpNotListed));
        assert!(pol.check_resolved(v4("127.0.0.1"), 80).is_err());
    }

    #[test]
    fn ip_literals_need_an_ip_entry_in_any_spelling() {
        let pol = policy(&["127.0.0.1:9000", "[::1]:443", "api.example.test"]);
        for s in ["127.0.0.1", "127.1", "0x7f.1", "2130706433", "[::ffff:7f00:1]"] {
            assert_eq!(pol.decide_raw(s, 9000), Ok(Route::Direct(v4("127.0.0.1"))), "{s}");
            assert_eq!(pol.decide_raw(s, 9001), Err(Denial::IpNotListed), "{s}");
        }
        assert!(pol.decide_raw("[::1]", 443).is_ok());
        assert_eq!(pol.decide_raw("[::1]", 80), Err(Denial::IpNotListed));
        let strict = policy(&["api.example.test"]);
        for s in [
            "1.1.1.1",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "017700000001",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[64:ff9b::7f00:1]",
            "[2002:7f00:1::]",
            "[::7f00:1]",
        ] {
            assert_eq!(strict.decide_raw(s, 443), Err(Denial::IpNotListed), "{s}");
        }
    }

    #[test]
    fn resolved_addresses_are_classified() {
        let pol = policy(&["a.test", "10.0.0.5:443"]);
        for (s, class) in [
            ("127.0.0.1", AddrClass::Loopback),
            ("10.1.2.3", AddrClass::Private),
            ("172.16.0.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("192.168.1.1", AddrClass::Private),
            ("169.254.169.254", AddrClass::LinkLocal),
            ("100.64.0.1", AddrClass::SharedCgnat),
            ("100.100.100.200", AddrClass::SharedCgnat),
            ("224.0.0.1", AddrClass::Multicast),
            ("0.0.0.0", AddrClass::Unspecified),
            ("255.255.255.255", AddrClass::Broadcast),
            ("192.0.2.1", AddrClass::Documentation),
            ("198.51.100.7", AddrClass::Documentation),
            ("203.0.113.9", AddrClass::Documentation),
            ("198.18.0.1", AddrClass::Benchmarking),
            ("240.0.0.1", AddrClass::Reserved),
            ("::1", AddrClass::Loopback),
            ("::", AddrClass::Unspecified),
            ("fd00:ec2::254", AddrClass::UniqueLocal),
            ("fe80::1", AddrClass::LinkLocal),
            ("ff02::1", AddrClass::Multicast),
            ("2001:db8::1", AddrClass::Documentation),
            ("2001::1", AddrClass::Tunnel),
            ("::ffff:169.254.169.254", AddrClass::LinkLocal),
            ("::ffff:10.0.0.1", AddrClass::Private),
            ("64:ff9b::a9fe:a9fe", AddrClass::LinkLocal),
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(classify(ip), class, "{s}");
            assert!(matches!(pol.check_resolved(ip, 443), Err(Denial::SpecialAddress { .. })), "{s}");
        }
        for s in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(classify(ip), AddrClass::Public, "{s}");
            assert!(pol.check_resolved(ip, 443).is_ok());
        }
        // Explicitly listed private address: allowed on its port only.
        assert_eq!(pol.check_resolved(v4("10.0.0.5"), 443), Ok(v4("10.0.0.5")));
        assert!(pol.check_resolved(v4("10.0.0.5"), 80).is_err());
        assert_eq!(pol.check_resolved("::ffff:10.0.0.5".parse().unwrap(), 443), Ok(v4("10.0.0.5")));
    }

    #[test]
    fn pins_route_without_dns_but_do_not_allow() {
        let pol = Policy::from_json(
            r#"{"allow": ["svc.test:9000"], "hosts": {"SVC.test.": "127.0.0.1", "other.test": "0x7f.1"}}"#,
        )
        .unwrap();
        assert_eq!(pol.decide_raw("svc.test", 9000), Ok(Route::Direct(v4("127.0.0.1"))));
        assert_eq!(pol.decide_raw("other.test", 9000), Err(Denial::HostNotAllowed));
        assert_eq!(pol.pin("other.test"), Some(v4("127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_rejected_naming_the_entry() {
        for (entry, needle) in [
            ("*", "*"),
            ("*.com", "top-level"),
            ("*.test:443", "top-level"),
            ("*.co.uk", "public suffix"),
            ("*.github.io", "public suffix"),
            ("a.*.test", "'*'"),
            ("*example.test", "'*'"),
            ("**.example.test", ""),
            ("", "empty"),
            ("a..test", "empty label"),
            (".test", "empty label"),
            ("a.test:0", "port"),
            ("a.test:65536", "port"),
            ("a.test:", "port"),
            ("a_b.test", "'_'"),
            ("a b.test", "' '"),
            ("a.test\0", "\\u{0}"),
            ("::1", "brackets"),
            ("*.1.2.3", ""),
            ("user@a.test", "not a URL: write \"a.test\""),
            ("https://pypi.org/simple", "not a URL: write \"pypi.org\""),
        ] {
            let err = AllowEntry::parse(entry).unwrap_err().to_string();
            assert!(err.contains(&format!("{entry:?}")), "{err}");
            assert!(err.contains(needle), "{entry:?}: {err}");
        }
    }

    #[test]
    fn urls_name_the_host_they_meant() {
        for (raw, entry) in [
            ("https://pypi.org/simple", Some("pypi.org")),
            ("http://Example.TEST:8080/x?y#z", Some("example.test:8080")),
            ("pypi.org/simple", Some("pypi.org")),
            ("git@github.com", Some("github.com")),
            ("ssh://git@github.com:22/a/b", Some("github.com:22")),
            ("https://*.example.test/", Some("*.example.test")),
            ("https://[::1]:443/", Some("[::1]:443")),
            ("pypi.org", None),
            ("*.example.test:8443", None),
            ("https:///", None),
            ("https://*/", None),
        ] {
            assert_eq!(entry_of_url(raw).as_deref(), entry, "{raw}");
        }
    }

    #[test]
    fn denials_say_which_entry_would_allow_them_and_read_back_from_reasons() {
        let name = Host::Name("pypi.org".into());
        let cases = [
            (Denial::HostNotAllowed, &name, 443, Some("pypi.org")),
            (Denial::HostNotAllowed, &name, 8080, Some("pypi.org:8080")),
            (Denial::PortNotAllowed(22), &name, 22, Some("pypi.org:22")),
            (Denial::IpNotListed, &Host::Ip(v4("1.2.3.4")), 80, Some("1.2.3.4")),
            (Denial::SpecialAddress { class: AddrClass::Private, addr: v4("10.0.0.5") }, &name, 443, Some("10.0.0.5")),
            (
                Denial::SpecialAddress { class: AddrClass::UniqueLocal, addr: "fd00::1".parse().unwrap() },
                &name,
                8443,
                Some("[fd00::1]:8443"),
            ),
            (Denial::InvalidHost(HostError::EmptyLabel), &name, 443, None),
        ];
        for (d, host, port, entry) in cases {
            assert_eq!(d.allow_entry(host, port).as_deref(), entry, "{d}");
            if let Some(e) = entry {
                // The entry really lets the target through.
                assert!(AllowEntry::parse(e).is_ok(), "{e}");
                let msg = d.refusal(host, port);
                assert!(msg.contains(&format!("--allow {e}, or add \"{e}\" to network.allow")), "{msg}");
                assert_eq!(Denial::from_reason(&d.to_string()), Some(d.clone()));
            }
        }
        for class in AddrClass::ALL {
            let d = Denial::SpecialAddress { class, addr: v4("10.0.0.5") };
            assert_eq!(Denial::from_reason(&d.to_string()), Some(d));
        }
        assert_eq!(Denial::from_reason("tunnel limit reached (3 open)"), None);
        let listed = policy(&["pypi.org", "10.0.0.5"]);
        assert_eq!(listed.check_resolved(v4("10.0.0.5"), 443), Ok(v4("10.0.0.5")));
    }

    #[test]
    fn file_format() {
        let pol = Policy::from_json(
            r#"{"allow": ["api.example.test", "*.example.test:8443", "127.0.0.1:9000", "[::1]:443"],
                "hosts": {"svc.test": "127.0.0.1"},
                "limits": {"maxTunnels": 4, "handshakeTimeoutMs": 500, "maxHeaderBytes": 4096}}"#,
        )
        .unwrap();
        assert_eq!(pol.limits().max_tunnels, 4);
        assert_eq!(pol.entries().len(), 4);
        assert_eq!(pol.entries()[1].to_string(), "*.example.test:8443");
        assert_eq!(pol.entries()[3].to_string(), "[::1]:443");
        let partial = Policy::from_json(r#"{"limits": {"maxTunnels": 3}}"#).unwrap();
        assert_eq!(partial.limits().handshake_timeout_ms, 10_000);
        assert!(Policy::from_json(r#"{"allow": [], "extra": 1}"#).is_err());
        assert!(Policy::from_json(r#"{"limits": {"maxTunnel": 1}}"#).is_err());
        assert!(Policy::from_json(r#"{"limits": {"maxTunnels": 0}}"#).is_err());
        assert!(Policy::from_json(r#"{"hosts": {"a.test": "not-an-ip"}}"#).is_err());
        assert!(Policy::from_json(r#"{"hosts": {"1.2.3.4": "1.2.3.4"}}"#).is_err());
        assert!(Policy::from_json(r#"{"allow": "a.test"}"#).is_err());
    }

    #[test]
    fn policy_file_round_trips_through_json() {
        let file = PolicyFile {
            allow: vec!["a.test".into(), "[::1]:443".into()],
            hosts: BTreeMap::from([("svc.test".into(), "127.0.0.1".into())]),
            limits: Limits { max_tunnels: 7, ..Limits::default() },
        };
        let json = serde_json::to_string(&file).unwrap();
        assert!(json.contains("\"maxTunnels\":7"), "{json}");
        let back: PolicyFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, file);
        assert!(Policy::from_file(&back).is_ok());
    }

    #[test]
    fn embedded_forms() {
        let e = |s: &str| embedded_ipv4(s.parse().unwrap());
        assert_eq!(e("::1"), None);
        assert_eq!(e("::"), None);
        assert_eq!(e("::2"), Some("0.0.0.2".parse().unwrap()));
        assert_eq!(e("2002:0808:0808::1"), Some("8.8.8.8".parse().unwrap()));
        assert_eq!(e("2606:4700::1"), None);
    }
}
