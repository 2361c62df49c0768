//! The record of servers we manage in one target file.
//!
//! `<state dir>/<agent>-<fnv1a64 of the absolute target path, 16 hex digits>.json`:
//!
//! ```json
//! { "version": 1, "agent": "claude", "target": "/home/u/.claude.json", "servers": ["github", "playwright"] }
//! ```
//!
//! `servers` lists the names cell-mcp wrote last time, sorted. Only these are ever removed from the
//! target. A missing record means "we manage nothing yet"; an unreadable one is reported and
//! treated the same way (so nothing of the user's can be evicted by mistake).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{fsio, AgentKind, Error};

/// The record's current format version.
pub const RECORD_VERSION: u32 = 1;

/// What is stored on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub agent: String,
    pub target: PathBuf,
    pub servers: BTreeSet<String>,
}

/// `$XDG_STATE_HOME/cell/mcp`, else `$HOME/.local/state/cell/mcp`.
#[must_use]
pub fn default_state_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()).map(|h| h.join(".local/state"))
    })?;
    Some(base.join("cell/mcp"))
}

/// The absolute form of `target` used as the record's key (parent resolved when it exists).
#[must_use]
pub fn target_key(target: &Path) -> PathBuf {
    let abs = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    match (abs.parent().and_then(|p| p.canonicalize().ok()), abs.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => abs,
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Where the record for `agent` writing `target` lives.
#[must_use]
pub fn record_path(state_dir: &Path, agent: AgentKind, target: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let key = target_key(target);
    state_dir.join(format!("{agent}-{:016x}.json", fnv1a64(key.as_os_str().as_bytes())))
}

/// Read the managed names; a warning instead of an error when the record is unreadable.
///
/// # Errors
/// [`Error::Io`] when the file exists but cannot be read.
pub fn load(path: &Path) -> Result<(BTreeSet<String>, Option<String>), Error> {
    let Some(bytes) = fsio::read_optional(path)? else { return Ok((BTreeSet::new(), None)) };
    match serde_json::from_slice::<Record>(&bytes) {
        Ok(r) if r.version == RECORD_VERSION => Ok((r.servers, None)),
        Ok(r) => {
            Ok((BTreeSet::new(), Some(format!("{}: unknown record version {}, ignored", path.display(), r.version))))
        }
        Err(e) => Ok((
            BTreeSet::new(),
            Some(format!("{}: unreadable record ({e}); no server will be evicted this time", path.display())),
        )),
    }
}

/// Write the record atomically (state dir created 0700).
///
/// # Errors
/// [`Error::Io`] naming the record.
pub fn store(path: &Path, agent: AgentKind, target: &Path, servers: &BTreeSet<String>) -> Result<(), Error> {
    let record = Record {
        version: RECORD_VERSION,
        agent: agent.name().into(),
        target: target_key(target),
        servers: servers.clone(),
    };
    let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
    text.push('\n');
    fsio::ensure_parent(path)?;
    fsio::write_atomic(path, text.as_bytes(), None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_records() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("c.json");
        let p = record_path(&dir.path().join("state"), AgentKind::Claude, &target);
        assert!(p.file_name().unwrap().to_string_lossy().starts_with("claude-"));
        assert_eq!(load(&p).unwrap(), (BTreeSet::new(), None));
        let names: BTreeSet<String> = ["b".into(), "a".into()].into();
        store(&p, AgentKind::Claude, &target, &names).unwrap();
        assert_eq!(load(&p).unwrap().0, names);
        std::fs::write(&p, "{").unwrap();
        let (set, warn) = load(&p).unwrap();
        assert!(set.is_empty() && warn.unwrap().contains("unreadable"));
        assert_ne!(p, record_path(&dir.path().join("state"), AgentKind::Gemini, &target));
    }
}
