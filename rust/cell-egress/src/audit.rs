//! JSON-lines audit log: one object per decision, written when the connection ends.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Which front end a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClientKind {
    #[serde(rename = "http")]
    Http,
    #[serde(rename = "socks5")]
    Socks5,
}

/// Outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The policy allowed it and the tunnel ran.
    Allow,
    /// The policy refused it (or a limit did).
    Deny,
    /// The client or the upstream failed (malformed request, timeout, connect error).
    Error,
}

/// One audit line. `event` is `"decision"` for client decisions and `"reload"` for
/// SIGHUP policy reloads (then only `time`, `cell`, `verdict` and `reason` are meaningful).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub time: String,
    pub event: &'static str,
    pub cell: String,
    pub client: Option<ClientKind>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub address: Option<String>,
    pub verdict: Verdict,
    pub reason: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// Where audit lines go.
#[derive(Debug)]
pub struct AuditLog {
    cell: String,
    file: Mutex<File>,
}

impl AuditLog {
    /// Open (append, create 0600) the audit file.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path, cell: &str) -> std::io::Result<Self> {
        let file = OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
        Ok(Self { cell: cell.to_owned(), file: Mutex::new(file) })
    }

    /// A record stamped with the current time and this cell's name.
    #[must_use]
    pub fn record(&self, event: &'static str, verdict: Verdict, reason: String) -> Record {
        Record {
            time: rfc3339_now(),
            event,
            cell: self.cell.clone(),
            client: None,
            method: None,
            host: None,
            port: None,
            address: None,
            verdict,
            reason,
            bytes_up: 0,
            bytes_down: 0,
        }
    }

    /// Append one line. Failures go to stderr: the audit log is not a reason to drop
    /// traffic the policy allows, and denials happen regardless.
    pub fn write(&self, rec: &Record) {
        let mut line = match serde_json::to_vec(rec) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cell-egress: cannot serialise audit record: {e}");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = file.write_all(&line) {
            eprintln!("cell-egress: cannot write audit log: {e}");
        }
    }
}

/// Current time as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`).
#[must_use]
pub fn rfc3339_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_millis())
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_798_761_599, 999), "2026-12-31T23:59:59.999Z");
    }
}
