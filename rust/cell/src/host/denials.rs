//! After a proxied command fails: one line naming the connections the egress proxy denied
//! during this launch and the `--allow` that would lift each, read back from the cell's
//! audit log (the records appended since the launch started).

use std::io::{Read as _, Seek as _, SeekFrom};

use camino::Utf8PathBuf;
use cell_egress::policy::{canonicalize_host, Denial};

use crate::host::plan::Plan;

/// Denied targets named in the line; the rest are counted.
const SHOWN: usize = 3;

/// Where this launch's audit records start.
pub struct Mark {
    path: Utf8PathBuf,
    offset: u64,
    cell: String,
}

impl Mark {
    /// The end of the audit log now (proxy mode only).
    #[must_use]
    pub fn new(plan: &Plan) -> Option<Self> {
        let path = plan.network.audit_log.clone()?;
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        Some(Self { path, offset, cell: plan.cell.clone() })
    }

    /// The line for the denials recorded since [`Mark::new`], if there were any.
    #[must_use]
    pub fn summary(&self) -> Option<String> {
        let mut f = std::fs::File::open(&self.path).ok()?;
        // A log that shrank meanwhile was replaced: read it all.
        let len = f.metadata().ok()?.len();
        f.seek(SeekFrom::Start(if len < self.offset { 0 } else { self.offset })).ok()?;
        let mut text = String::new();
        f.take(16 << 20).read_to_string(&mut text).ok()?;
        summarize(&text, &self.cell)
    }
}

/// One line for the denials among audit lines `text` of cell `cell`; `None` without any.
#[must_use]
pub fn summarize(text: &str, cell: &str) -> Option<String> {
    let mut targets: Vec<(String, String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["event"] != "decision" || v["verdict"] != "deny" {
            continue;
        }
        let host = v["host"].as_str().unwrap_or("-");
        let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        let reason = v["reason"].as_str().unwrap_or("");
        let target = port.map_or_else(|| host.to_owned(), |p| format!("{host}:{p}"));
        if targets.iter().any(|(t, _, _)| *t == target) {
            continue;
        }
        let entry = match (canonicalize_host(host), port, Denial::from_reason(reason)) {
            (Ok(h), Some(p), Some(d)) => d.allow_entry(&h, p),
            _ => None,
        };
        targets.push((target, reason.to_owned(), entry));
    }
    if targets.is_empty() {
        return None;
    }
    let named: Vec<String> = targets.iter().take(SHOWN).map(|(t, r, _)| format!("{t} ({r})")).collect();
    let mut line = format!("cell: denied {}", named.join(", "));
    if targets.len() > SHOWN {
        let log = if cell == "default" { "cell net log".to_owned() } else { format!("cell net log --cell {cell}") };
        line.push_str(&format!(" and {} more ({log})", targets.len() - SHOWN));
    }
    let allows: Vec<String> =
        targets.iter().take(SHOWN).filter_map(|(_, _, e)| e.as_ref().map(|e| format!("--allow {e}"))).collect();
    if !allows.is_empty() {
        line.push_str(&format!("; rerun with {}", allows.join(" ")));
    }
    Some(crate::sys::escape_controls(&line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(host: &str, port: u16, verdict: &str, reason: &str) -> String {
        serde_json::json!({"event": "decision", "cell": "dev", "host": host, "port": port, "verdict": verdict, "reason": reason})
            .to_string()
    }

    #[test]
    fn names_denials_with_their_fix() {
        let text = [
            rec("pypi.org", 443, "deny", "host is not in the allowlist"),
            rec("pypi.org", 443, "deny", "host is not in the allowlist"),
            rec("ok.test", 443, "allow", "closed"),
            rec("svc.test", 8080, "deny", "resolves to private address 10.0.0.5"),
            "not json".to_owned(),
        ]
        .join("\n");
        assert_eq!(
            summarize(&text, "dev").unwrap(),
            "cell: denied pypi.org:443 (host is not in the allowlist), svc.test:8080 (resolves to private address \
             10.0.0.5); rerun with --allow pypi.org --allow 10.0.0.5:8080"
        );
        assert_eq!(summarize(&rec("ok.test", 443, "allow", "closed"), "dev"), None);
    }

    #[test]
    fn many_denials_are_counted_and_controls_escaped() {
        let mut lines: Vec<String> =
            (0..5).map(|i| rec(&format!("h{i}.test"), 443, "deny", "host is not in the allowlist")).collect();
        lines.push(rec("evil\u{1b}[2J", 80, "deny", "invalid host: host contains '\\u{1b}'"));
        let line = summarize(&lines.join("\n"), "dev").unwrap();
        assert!(line.contains("h2.test:443") && !line.contains("h3.test"), "{line}");
        assert!(
            line.contains(
                " and 3 more (cell net log --cell dev); rerun with --allow h0.test --allow h1.test --allow h2.test"
            ),
            "{line}"
        );
        let line = summarize(&lines[5], "default").unwrap();
        assert!(!line.chars().any(char::is_control) && !line.contains("rerun"), "{line}");
    }
}
