//! The merge: declared servers into one agent config file.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use toml_edit::{DocumentMut, Item, Table};

use crate::fsio::{self, WriteMode};
use crate::{diff, jsonc, record, AgentKind, Error, Format, Servers};

/// What to merge where.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Which agent's format.
    pub agent: AgentKind,
    /// The agent's config file (created with its parent directories when missing).
    pub config: PathBuf,
    /// Where the records of managed servers live (see [`record::default_state_dir`]).
    pub state_dir: PathBuf,
    /// Compute and diff only; write nothing (not even the lock file).
    pub dry_run: bool,
}

/// The corrupt file we moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// Why it did not parse.
    pub reason: String,
    /// Where its bytes were saved (`None` on a dry run).
    pub saved_to: Option<PathBuf>,
}

/// What a merge did (or, on a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct MergeReport {
    /// The target file was (or would be) rewritten.
    pub changed: bool,
    /// The target did not exist (or was empty) before.
    pub created: bool,
    pub added: Vec<String>,
    pub updated: Vec<String>,
    /// Managed servers no longer declared, removed.
    pub removed: Vec<String>,
    /// User servers that clashed with a declared name, replaced and now managed.
    pub taken_over: Vec<String>,
    pub corrupt: Option<Corrupt>,
    /// The copy taken before writing.
    pub backup: Option<PathBuf>,
    /// Our older backups deleted to keep [`fsio::BACKUPS_KEPT`].
    pub backups_removed: Vec<PathBuf>,
    pub write_mode: Option<WriteMode>,
    /// The record file holding the managed names.
    pub record: PathBuf,
    /// Unified diff of the target (dry runs only).
    pub diff: Option<String>,
    /// Things the user should hear about (clashes, corrupt files, odd records).
    pub warnings: Vec<String>,
}

/// The pure part: old bytes in, new text out.
#[derive(Debug, Default)]
struct Plan {
    new_text: Option<String>,
    created: bool,
    corrupt: Option<String>,
    added: Vec<String>,
    updated: Vec<String>,
    removed: Vec<String>,
    taken_over: Vec<String>,
    warnings: Vec<String>,
}

impl Plan {
    /// The plan of a merge into a readable file: its new text (`None`: unchanged) and what
    /// changed.
    fn merged(new_text: Option<String>, c: Changes, warnings: Vec<String>) -> Self {
        Self {
            new_text,
            added: c.added,
            updated: c.updated,
            removed: c.removed,
            taken_over: c.taken_over,
            warnings,
            ..Self::default()
        }
    }
}

/// Merge `servers` into `opts.config` in `opts.agent`'s format.
///
/// Keeps every key and every server the user added; removes only servers named in our record
/// that are no longer declared; a declared name that clashes with a user server wins (warning)
/// and becomes managed. Backs the file up first (newest 5 kept), moves a corrupt file aside,
/// holds `flock(<file>.lock)`, writes atomically (in place only on a mount point). Merging twice
/// changes nothing the second time. A config file, lock file or config directory that is a
/// symbolic link is refused, never followed.
///
/// # Errors
/// [`Error::Unsupported`] when the agent cannot express a declared server (before anything is
/// touched); [`Error::Symlink`] for a symbolic link (nothing touched); [`Error::Io`] for file
/// system failures.
pub fn merge(opts: &MergeOptions, servers: &Servers) -> Result<MergeReport, Error> {
    let agent = opts.agent;
    let ours: Vec<(String, Value)> =
        servers.iter().map(|(n, s)| Ok((n.to_owned(), agent.render(n, s)?))).collect::<Result<_, Error>>()?;
    let record_path = record::record_path(&opts.state_dir, agent, &opts.config);

    // Before anything is created, read or locked (dry runs too: they print the old contents).
    fsio::refuse_symlinks(&opts.config)?;
    let _guard = if opts.dry_run {
        None
    } else {
        fsio::ensure_parent(&opts.config)?;
        Some(fsio::lock(&opts.config)?)
    };
    let old = fsio::read_optional(&opts.config)?;
    let (managed, record_warning) = record::load(&record_path)?;
    let mut plan = plan(agent, old.as_deref(), &ours, &managed);
    let path_shown = opts.config.display();
    let mut report = MergeReport { record: record_path.clone(), ..MergeReport::default() };
    report.warnings.extend(record_warning);
    for name in &plan.taken_over {
        plan.warnings.push(format!(
            "{path_shown}: MCP server {name:?} was not written by cell-mcp; the declared one replaces it and is \
             managed from now on"
        ));
    }
    report.warnings.append(&mut plan.warnings);
    report.changed = plan.new_text.is_some();
    report.created = plan.created;
    report.added = plan.added;
    report.updated = plan.updated;
    report.removed = plan.removed;
    report.taken_over = plan.taken_over;

    if opts.dry_run {
        let old_text = old.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        if let Some(new) = &plan.new_text {
            let name = opts.config.display().to_string();
            report.diff = Some(diff::unified(&old_text, new, &name, &name));
        }
        report.corrupt = plan.corrupt.map(|reason| Corrupt { reason, saved_to: None });
        return Ok(report);
    }

    if let (Some(reason), Some(bytes)) = (plan.corrupt, old.as_deref()) {
        let saved = fsio::save_aside(&opts.config, "corrupt", bytes)?;
        report.warnings.push(format!(
            "{path_shown} did not parse ({reason}); its bytes are saved in {} and it is recreated with only the \
             declared servers",
            saved.display()
        ));
        report.corrupt = Some(Corrupt { reason, saved_to: Some(saved) });
    } else if let (Some(_), Some(bytes)) = (&plan.new_text, old.as_deref()) {
        if !bytes.is_empty() {
            report.backup = Some(fsio::save_aside(&opts.config, "backup", bytes)?);
            report.backups_removed = fsio::rotate_backups(&opts.config)?;
        }
    }
    if let Some(new) = &plan.new_text {
        let linked = report.corrupt.as_ref().and_then(|c| c.saved_to.as_deref()).or(report.backup.as_deref());
        let linked = linked.zip(old.as_deref());
        report.write_mode = Some(fsio::write_atomic(&opts.config, new.as_bytes(), linked)?);
    }
    let declared: BTreeSet<String> = ours.iter().map(|(n, _)| n.clone()).collect();
    if declared != managed || (!record_path.exists() && !declared.is_empty()) {
        record::store(&record_path, agent, &opts.config, &declared)?;
    }
    Ok(report)
}

fn plan(agent: AgentKind, old: Option<&[u8]>, ours: &[(String, Value)], managed: &BTreeSet<String>) -> Plan {
    let text = match old.map(std::str::from_utf8) {
        None => None,
        Some(Ok(t)) if t.trim().is_empty() => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return fresh(agent, ours, Some(format!("not UTF-8: {e}"))),
    };
    let Some(text) = text else { return fresh(agent, ours, None) };
    match agent.format() {
        Format::Json | Format::Jsonc => plan_json(agent, text, ours, managed),
        Format::Toml => plan_toml(text, ours, managed),
    }
}

/// A new file holding only our servers (missing, empty or corrupt target).
fn fresh(agent: AgentKind, ours: &[(String, Value)], corrupt: Option<String>) -> Plan {
    let names: Vec<String> = ours.iter().map(|(n, _)| n.clone()).collect();
    if ours.is_empty() && corrupt.is_none() {
        return Plan { created: false, ..Plan::default() };
    }
    let map: Map<String, Value> = ours.iter().cloned().collect();
    let new_text = match agent.format() {
        Format::Json | Format::Jsonc => jsonc::fresh_document(agent.servers_key(), &Value::Object(map)),
        Format::Toml => {
            let mut doc = DocumentMut::new();
            let mut table = Table::new();
            table.set_implicit(true);
            for (n, v) in ours {
                table.insert(n, Item::Table(toml_table(v)));
            }
            doc.insert("mcp_servers", Item::Table(table));
            doc.to_string()
        }
    };
    Plan { new_text: Some(new_text), created: corrupt.is_none(), corrupt, added: names, ..Plan::default() }
}

#[derive(Debug, Default)]
struct Changes {
    added: Vec<String>,
    updated: Vec<String>,
    removed: Vec<String>,
    taken_over: Vec<String>,
}

impl Changes {
    fn any(&self) -> bool {
        !(self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

/// The merge rule on name → server maps. Existing entries keep their place; new ones go last.
fn merge_map(
    existing: &Map<String, Value>,
    ours: &[(String, Value)],
    managed: &BTreeSet<String>,
) -> (Map<String, Value>, Changes) {
    let mut c = Changes::default();
    let mut out = Map::with_capacity(existing.len() + ours.len());
    for (name, v) in existing {
        if managed.contains(name) && !ours.iter().any(|(n, _)| n == name) {
            c.removed.push(name.clone());
        } else {
            out.insert(name.clone(), v.clone());
        }
    }
    for (name, v) in ours {
        if let Some(old) = existing.get(name) {
            if !managed.contains(name) {
                c.taken_over.push(name.clone());
            }
            if old != v {
                c.updated.push(name.clone());
                out.insert(name.clone(), v.clone());
            }
        } else {
            c.added.push(name.clone());
            out.insert(name.clone(), v.clone());
        }
    }
    (out, c)
}

fn plan_json(agent: AgentKind, text: &str, ours: &[(String, Value)], managed: &BTreeSet<String>) -> Plan {
    let key = agent.servers_key();
    let blanked = if agent.format() == Format::Jsonc { jsonc::blank_comments(text) } else { Cow::Borrowed(text) };
    if let Err(e) = serde_json::from_str::<IgnoredAny>(&blanked) {
        return fresh(agent, ours, Some(e.to_string()));
    }
    let Some(top) = jsonc::top_level(&blanked) else {
        return fresh(agent, ours, Some("the top level is not an object".into()));
    };
    let mut warnings = Vec::new();
    let (existing, present) = match top.find(key) {
        None => (Map::new(), false),
        Some(m) => match serde_json::from_str::<Value>(&blanked[m.value_start..m.value_end]) {
            Ok(Value::Object(map)) => (map, true),
            Ok(other) => {
                warnings.push(format!("\"{key}\" held {other} (not an object); replaced (the backup keeps it)"));
                (Map::new(), false)
            }
            Err(e) => return fresh(agent, ours, Some(e.to_string())),
        },
    };
    let (merged, c) = merge_map(&existing, ours, managed);
    let unchanged = if present { !c.any() } else { merged.is_empty() && top.find(key).is_none() };
    let new_text = (!unchanged).then(|| jsonc::set_member(text, &top, key, &Value::Object(merged)));
    Plan::merged(new_text, c, warnings)
}

fn plan_toml(text: &str, ours: &[(String, Value)], managed: &BTreeSet<String>) -> Plan {
    let mut doc = match text.parse::<DocumentMut>() {
        Ok(d) => d,
        Err(e) => return fresh(AgentKind::Codex, ours, Some(e.to_string().trim_end().replace('\n', " "))),
    };
    let mut warnings = Vec::new();
    let table = match doc.get_mut("mcp_servers") {
        Some(Item::Table(_)) => None,
        Some(Item::Value(toml_edit::Value::InlineTable(_))) => Some(true),
        Some(_) => {
            warnings.push("\"mcp_servers\" was not a table; replaced (the backup keeps it)".into());
            Some(false)
        }
        None => Some(false),
    };
    if let Some(convert) = table {
        let new = match doc.remove("mcp_servers") {
            Some(Item::Value(toml_edit::Value::InlineTable(t))) if convert => t.into_table(),
            _ => {
                let mut t = Table::new();
                t.set_implicit(true);
                t
            }
        };
        doc.insert("mcp_servers", Item::Table(new));
    }
    let Some(Item::Table(servers)) = doc.get_mut("mcp_servers") else {
        return Plan { warnings, ..Plan::default() };
    };
    let existing: Map<String, Value> = servers.iter().map(|(k, item)| (k.to_owned(), item_json(item))).collect();
    let (_, c) = merge_map(&existing, ours, managed);
    if !c.any() {
        return Plan { taken_over: c.taken_over, warnings, ..Plan::default() };
    }
    for name in &c.removed {
        servers.remove(name);
    }
    for (name, v) in ours {
        let mut new = toml_table(v);
        if c.updated.contains(name) {
            if let Some(Item::Table(old)) = servers.get(name) {
                new.set_position(old.position());
                *new.decor_mut() = old.decor().clone();
            }
            servers.insert(name, Item::Table(new));
        } else if c.added.contains(name) {
            servers.insert(name, Item::Table(new));
        }
    }
    let empty_new = servers.is_empty() && table == Some(false);
    if empty_new {
        doc.remove("mcp_servers");
    }
    let new_text = doc.to_string();
    Plan::merged((new_text != text).then_some(new_text), c, warnings)
}

/// A codex server table from its JSON image (objects become sub-tables, as `codex mcp add` writes).
fn toml_table(v: &Value) -> Table {
    let mut t = Table::new();
    if let Value::Object(map) = v {
        for (k, v) in map {
            match v {
                Value::Object(_) => {
                    t.insert(k, Item::Table(toml_table(v)));
                }
                other => {
                    if let Some(val) = toml_value(other) {
                        t.insert(k, Item::Value(val));
                    }
                }
            }
        }
    }
    t
}

fn toml_value(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::Array(a) => a.iter().filter_map(toml_value).collect::<toml_edit::Array>().into(),
        Value::Object(m) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in m {
                if let Some(v) = toml_value(v) {
                    t.insert(k, v);
                }
            }
            t.into()
        }
        Value::Null => return None,
    })
}

/// The JSON image of a TOML item, to compare with what we would write.
fn item_json(item: &Item) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(v) => value_json(v),
        Item::Table(t) => Value::Object(t.iter().map(|(k, i)| (k.to_owned(), item_json(i))).collect()),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter().map(|t| Value::Object(t.iter().map(|(k, i)| (k.to_owned(), item_json(i))).collect())).collect(),
        ),
    }
}

fn value_json(v: &toml_edit::Value) -> Value {
    match v {
        toml_edit::Value::String(s) => Value::from(s.value().as_str()),
        toml_edit::Value::Integer(i) => Value::from(*i.value()),
        toml_edit::Value::Float(f) => Value::from(*f.value()),
        toml_edit::Value::Boolean(b) => Value::from(*b.value()),
        toml_edit::Value::Datetime(d) => Value::from(d.value().to_string()),
        toml_edit::Value::Array(a) => Value::Array(a.iter().map(value_json).collect()),
        toml_edit::Value::InlineTable(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.to_owned(), value_json(v))).collect())
        }
    }
}

/// One line summing up a report for `config` (what changed, the backup, an in-place write).
#[must_use]
pub fn describe(report: &MergeReport, config: &Path) -> String {
    let list = |label: &str, v: &[String]| (!v.is_empty()).then(|| format!("{label} {}", v.join(", ")));
    let parts: Vec<String> =
        [list("added", &report.added), list("updated", &report.updated), list("removed", &report.removed)]
            .into_iter()
            .flatten()
            .collect();
    let what = if parts.is_empty() { "unchanged".to_owned() } else { parts.join("; ") };
    let mut s = format!("{}: {what}", config.display());
    if let Some(b) = &report.backup {
        s.push_str(&format!(" (backup {})", b.display()));
    }
    if report.write_mode == Some(WriteMode::InPlace) {
        s.push_str(" (written in place: the file is a mount point)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ours(agent: AgentKind, names: &[&str]) -> Vec<(String, Value)> {
        names
            .iter()
            .map(|n| {
                let s = crate::McpServer::Stdio {
                    command: format!("/bin/{n}"),
                    args: vec![],
                    env: std::collections::BTreeMap::new(),
                };
                ((*n).to_owned(), agent.render(n, &s).unwrap())
            })
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn merge_map_rules() {
        let existing: Map<String, Value> =
            serde_json::from_value(json!({"user": {"command": "u"}, "old": {"command": "o"}, "a": {"command": "x"}}))
                .unwrap();
        let ours = vec![("a".to_owned(), json!({"command": "a"})), ("b".to_owned(), json!({"command": "b"}))];
        let (m, c) = merge_map(&existing, &ours, &set(&["old", "a"]));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["user", "a", "b"]);
        assert_eq!((c.added, c.updated, c.removed), (vec!["b".into()], vec!["a".into()], vec!["old".into()]));
        assert!(c.taken_over.is_empty());
        let (_, c) = merge_map(&existing, &ours, &set(&[]));
        assert_eq!(c.taken_over, ["a"]);
    }

    #[test]
    fn json_twice_is_once() {
        for agent in [AgentKind::Claude, AgentKind::Gemini, AgentKind::Opencode] {
            let src = "{\n  \"x\": 1\n}\n";
            let p = plan(agent, Some(src.as_bytes()), &ours(agent, &["a"]), &set(&[]));
            let once = p.new_text.unwrap();
            let p2 = plan(agent, Some(once.as_bytes()), &ours(agent, &["a"]), &set(&["a"]));
            assert!(p2.new_text.is_none(), "{agent}");
        }
    }

    #[test]
    fn toml_twice_is_once_and_keeps_comments() {
        let src = "# top\nmodel = \"o3\" # trailing\n\n[mcp_servers.user]\ncommand = \"u\" # mine\n";
        let p = plan(AgentKind::Codex, Some(src.as_bytes()), &ours(AgentKind::Codex, &["a"]), &set(&[]));
        let once = p.new_text.unwrap();
        assert!(once.starts_with(src), "{once}");
        let p2 = plan(AgentKind::Codex, Some(once.as_bytes()), &ours(AgentKind::Codex, &["a"]), &set(&["a"]));
        assert!(p2.new_text.is_none());
        let p3 = plan(AgentKind::Codex, Some(once.as_bytes()), &[], &set(&["a"]));
        assert_eq!(p3.new_text.unwrap(), src);
    }

    #[test]
    fn corrupt_and_empty() {
        let p = plan(AgentKind::Claude, Some(b"{\"a\":"), &ours(AgentKind::Claude, &["a"]), &set(&[]));
        assert!(p.corrupt.is_some() && p.new_text.unwrap().contains("\"a\""));
        let p = plan(AgentKind::Claude, Some(b"[]"), &[], &set(&[]));
        assert!(p.corrupt.unwrap().contains("not an object"));
        let p = plan(AgentKind::Claude, Some(b" \n"), &ours(AgentKind::Claude, &["a"]), &set(&[]));
        assert!(p.corrupt.is_none() && p.created && p.new_text.is_some());
        let p = plan(AgentKind::Codex, Some(b"x = = 1"), &[], &set(&[]));
        assert!(p.corrupt.is_some());
        // Claude's file is strict JSON: comments make it corrupt; gemini's accepts them.
        let p = plan(AgentKind::Claude, Some(b"{// c\n}"), &[], &set(&[]));
        assert!(p.corrupt.is_some());
        let p = plan(AgentKind::Gemini, Some(b"{// c\n}"), &[], &set(&[]));
        assert!(p.corrupt.is_none() && p.new_text.is_none());
    }
}
