//! First-run answers: what an agent would ask on a fresh home (onboarding, "use this API
//! key?", the bypass-permissions consent, folder trust), recorded the way the agent itself
//! records the answer, so that with prompts off it starts at its prompt.
//!
//! Only defaults are written: a key the user (or the agent) already set is never changed,
//! whatever its value, and a value in the way (a string where an object was expected) is left
//! alone. The file handling is the MCP merge's: symbolic links refused, `flock` on
//! `<file>.lock`, a corrupt file moved aside and started fresh, a backup before a change
//! (newest 5 kept), an atomic write.
//!
//! Where each agent keeps these answers (read from their installed code: claude-code 2.1.197,
//! codex-cli 0.171, gemini-cli 0.61, opencode 1.18):
//!
//! | agent | file | answer | key |
//! |---|---|---|---|
//! | claude | `~/.claude.json` | onboarding done | `hasCompletedOnboarding` |
//! | claude | `~/.claude.json` | folder trust | `projects["<dir>"].hasTrustDialogAccepted` |
//! | claude | `~/.claude.json` | use `ANTHROPIC_API_KEY` | `customApiKeyResponses.approved[]` gets the key's last 20 characters (unless in `.rejected`) |
//! | claude | `~/.claude/settings.json` | bypass-permissions consent | `skipDangerousModePermissionPrompt` |
//! | codex | `~/.codex/config.toml` | folder trust | `[projects."<dir>"] trust_level = "trusted"` |
//! | gemini | `~/.gemini/settings.json` | auth method with `GEMINI_API_KEY` | `security.auth.selectedType = "gemini-api-key"` |
//!
//! Gemini's folder trust is answered by `GEMINI_CLI_TRUST_WORKSPACE=true` in its environment
//! (no file); opencode asks nothing on a fresh home.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use toml_edit::{DocumentMut, Item, Table};

use crate::fsio;
use crate::{jsonc, AgentKind, Error, Format};

/// What the cell's config implies about the agent's first run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// The folder the agent starts in (the cell's worktree), as the agent sees it: trusted.
    pub trust: Option<String>,
    /// The agent runs with its permission prompts off: its consent to that is given.
    pub skip_permissions: bool,
    /// The API key the cell hands the agent (its value, from the agent's environment):
    /// approved where the agent asks whether to use it.
    pub api_key: Option<String>,
}

/// One default to write into a JSON document.
#[derive(Debug, Clone, PartialEq)]
pub enum Seed {
    /// `path` (object keys from the top) gets `value` unless something is there already.
    Default { path: Vec<String>, value: Value },
    /// The array at `path` gets `value` appended unless it holds it already, or the array
    /// at `unless` does (the user's refusal stands).
    Member { path: Vec<String>, value: Value, unless: Vec<String> },
}

/// What to write where, relative to the home.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSeeds {
    /// A JSON (or JSONC) document and its defaults.
    Json { file: &'static str, format: Format, seeds: Vec<Seed> },
    /// Codex's TOML: `[projects."<dir>"] trust_level = "trusted"`.
    CodexTrust { file: &'static str, dir: String },
}

impl FileSeeds {
    /// The file, relative to the home.
    #[must_use]
    pub fn file(&self) -> &'static str {
        match self {
            FileSeeds::Json { file, .. } | FileSeeds::CodexTrust { file, .. } => file,
        }
    }
}

fn path(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// How many trailing characters of the key Claude Code records as approved.
const CLAUDE_KEY_TAIL: usize = 20;

/// The answers `agent` records, file by file (files with nothing to write are left out).
#[must_use]
pub fn plan(agent: AgentKind, a: &Answers) -> Vec<FileSeeds> {
    let mut out = Vec::new();
    match agent {
        AgentKind::Claude => {
            let mut seeds = vec![Seed::Default { path: path(&["hasCompletedOnboarding"]), value: Value::Bool(true) }];
            if let Some(dir) = &a.trust {
                seeds.push(Seed::Default {
                    path: vec!["projects".into(), dir.clone(), "hasTrustDialogAccepted".into()],
                    value: Value::Bool(true),
                });
            }
            if let Some(key) = a.api_key.as_deref().filter(|k| !k.is_empty()) {
                let chars: Vec<char> = key.chars().collect();
                let tail: String = chars[chars.len().saturating_sub(CLAUDE_KEY_TAIL)..].iter().collect();
                seeds.push(Seed::Member {
                    path: path(&["customApiKeyResponses", "approved"]),
                    value: Value::String(tail),
                    unless: path(&["customApiKeyResponses", "rejected"]),
                });
            }
            out.push(FileSeeds::Json { file: ".claude.json", format: Format::Json, seeds });
            if a.skip_permissions {
                out.push(FileSeeds::Json {
                    file: ".claude/settings.json",
                    format: Format::Json,
                    seeds: vec![Seed::Default {
                        path: path(&["skipDangerousModePermissionPrompt"]),
                        value: Value::Bool(true),
                    }],
                });
            }
        }
        AgentKind::Codex => {
            if let Some(dir) = &a.trust {
                out.push(FileSeeds::CodexTrust { file: ".codex/config.toml", dir: dir.clone() });
            }
        }
        AgentKind::Gemini => {
            if a.api_key.as_deref().is_some_and(|k| !k.is_empty()) {
                out.push(FileSeeds::Json {
                    file: ".gemini/settings.json",
                    format: Format::Jsonc,
                    seeds: vec![Seed::Default {
                        path: path(&["security", "auth", "selectedType"]),
                        value: Value::String("gemini-api-key".into()),
                    }],
                });
            }
        }
        AgentKind::Opencode => {}
    }
    out
}

/// The pure part of seeding one file: its new text (`None`: nothing to write), what was set,
/// and why the old text was unusable (then the new text is a fresh document).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FilePlan {
    pub new_text: Option<String>,
    /// The answers written, as dotted paths.
    pub set: Vec<String>,
    /// Why the old contents did not parse.
    pub corrupt: Option<String>,
}

/// Applies `seeds` to `doc`; returns the dotted paths set.
fn apply(doc: &mut Map<String, Value>, seeds: &[Seed]) -> Vec<String> {
    let mut set = Vec::new();
    for s in seeds {
        match s {
            Seed::Default { path, value } => {
                let Some((last, parents)) = path.split_last() else { continue };
                let Some(obj) = object_at(doc, parents) else { continue };
                if !obj.contains_key(last) {
                    obj.insert(last.clone(), value.clone());
                    set.push(path.join("."));
                }
            }
            Seed::Member { path, value, unless } => {
                if lookup(doc, unless).and_then(Value::as_array).is_some_and(|a| a.contains(value)) {
                    continue;
                }
                let Some((last, parents)) = path.split_last() else { continue };
                let Some(obj) = object_at(doc, parents) else { continue };
                match obj.entry(last.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                    Value::Array(a) if !a.contains(value) => {
                        a.push(value.clone());
                        set.push(path.join("."));
                    }
                    _ => {}
                }
            }
        }
    }
    set
}

/// The object at `keys` below `doc`, creating missing objects; `None` when something that
/// is not an object is in the way (the user's value, left alone).
fn object_at<'a>(doc: &'a mut Map<String, Value>, keys: &[String]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = doc;
    for k in keys {
        cur = match cur.entry(k.clone()).or_insert_with(|| Value::Object(Map::new())) {
            Value::Object(m) => m,
            _ => return None,
        };
    }
    Some(cur)
}

fn lookup<'a>(doc: &'a Map<String, Value>, keys: &[String]) -> Option<&'a Value> {
    let (first, rest) = keys.split_first()?;
    let mut cur = doc.get(first)?;
    for k in rest {
        cur = cur.as_object()?.get(k)?;
    }
    Some(cur)
}

/// Seeds a JSON or JSONC document: only the top-level members that change are re-rendered,
/// everything else (comments included) stays byte for byte.
#[must_use]
pub fn plan_json(old: Option<&str>, format: Format, seeds: &[Seed]) -> FilePlan {
    let text = old.filter(|t| !t.trim().is_empty());
    let Some(text) = text else {
        let mut doc = Map::new();
        let set = apply(&mut doc, seeds);
        let new_text = (!set.is_empty()).then(|| pretty(&doc));
        return FilePlan { new_text, set, corrupt: None };
    };
    let blanked = if format == Format::Jsonc { jsonc::blank_comments(text) } else { Cow::Borrowed(text) };
    let parsed = serde_json::from_str::<IgnoredAny>(&blanked).map_err(|e| e.to_string()).and_then(|_| {
        jsonc::top_level(&blanked).ok_or_else(|| "the top level is not an object".to_owned())?;
        serde_json::from_str::<Map<String, Value>>(&blanked).map_err(|e| e.to_string())
    });
    let mut doc = match parsed {
        Ok(p) => p,
        Err(reason) => {
            let mut fresh = plan_json(None, format, seeds);
            fresh.corrupt = Some(reason);
            if fresh.new_text.is_none() {
                fresh.new_text = Some("{}\n".to_owned());
            }
            return fresh;
        }
    };
    let before = doc.clone();
    let set = apply(&mut doc, seeds);
    if set.is_empty() {
        return FilePlan::default();
    }
    let mut new = text.to_owned();
    for (key, value) in &doc {
        if before.get(key) != Some(value) {
            // Offsets move with each rewrite: locate the members again in the new text.
            let blanked_new = if format == Format::Jsonc { jsonc::blank_comments(&new) } else { Cow::Borrowed(&*new) };
            let Some(top_now) = jsonc::top_level(&blanked_new) else { continue };
            new = jsonc::set_member(&new, &top_now, key, value);
        }
    }
    FilePlan { new_text: Some(new), set, corrupt: None }
}

fn pretty(doc: &Map<String, Value>) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_else(|_| "{}".to_owned());
    s.push('\n');
    s
}

/// Seeds codex's `config.toml` (comments and layout kept by `toml_edit`).
#[must_use]
pub fn plan_codex_trust(old: Option<&str>, dir: &str) -> FilePlan {
    let text = old.unwrap_or_default();
    let (mut doc, corrupt) = match text.parse::<DocumentMut>() {
        Ok(d) => (d, None),
        Err(e) => (DocumentMut::new(), Some(e.to_string().trim_end().replace('\n', " "))),
    };
    if doc.get("projects").is_none() {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("projects", Item::Table(t));
    }
    let Some(projects) = doc.get_mut("projects").and_then(Item::as_table_like_mut) else {
        return FilePlan { new_text: corrupt.as_ref().map(|_| doc.to_string()), set: Vec::new(), corrupt };
    };
    if projects.get(dir).is_none() {
        projects.insert(dir, Item::Table(Table::new()));
    }
    let Some(project) = projects.get_mut(dir).and_then(Item::as_table_like_mut) else {
        return FilePlan { new_text: corrupt.as_ref().map(|_| doc.to_string()), set: Vec::new(), corrupt };
    };
    if project.get("trust_level").is_some() {
        return FilePlan { new_text: corrupt.as_ref().map(|_| doc.to_string()), set: Vec::new(), corrupt };
    }
    project.insert("trust_level", toml_edit::value("trusted"));
    FilePlan { new_text: Some(doc.to_string()), set: vec![format!("projects.{dir:?}.trust_level")], corrupt }
}

/// What seeding one file did.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    pub file: PathBuf,
    /// Answers written (dotted paths); empty: the file already held every answer.
    pub set: Vec<String>,
    /// Where a corrupt file's bytes were saved.
    pub corrupt_saved_to: Option<PathBuf>,
    pub warnings: Vec<String>,
}

/// Seeds `agent`'s files under `home`. `dry_run`: computes only, touches nothing.
///
/// # Errors
/// [`Error::Symlink`] for a symbolic link where a file, its lock or its directory should be
/// (nothing touched); [`Error::Io`] for file system failures.
pub fn seed(agent: AgentKind, home: &Path, answers: &Answers, dry_run: bool) -> Result<Vec<SeedReport>, Error> {
    plan(agent, answers).iter().map(|f| seed_file(&home.join(f.file()), f, dry_run)).collect()
}

fn seed_file(path: &Path, seeds: &FileSeeds, dry_run: bool) -> Result<SeedReport, Error> {
    fsio::refuse_symlinks(path)?;
    let _guard = if dry_run {
        None
    } else {
        fsio::ensure_parent(path)?;
        Some(fsio::lock(path)?)
    };
    let old = fsio::read_optional(path)?;
    let text = old.as_deref().and_then(|b| std::str::from_utf8(b).ok());
    let not_utf8 = old.is_some() && text.is_none();
    let mut plan = match seeds {
        FileSeeds::Json { format, seeds, .. } => plan_json(text, *format, seeds),
        FileSeeds::CodexTrust { dir, .. } => plan_codex_trust(text, dir),
    };
    if not_utf8 {
        plan.corrupt = Some("not UTF-8".into());
        plan.new_text.get_or_insert_with(|| "{}\n".to_owned());
    }
    let mut report = SeedReport { file: path.to_owned(), set: plan.set.clone(), ..SeedReport::default() };
    if dry_run {
        return Ok(report);
    }
    let Some(new) = plan.new_text else { return Ok(report) };
    let mut linked = None;
    if let (Some(reason), Some(bytes)) = (&plan.corrupt, old.as_deref()) {
        let saved = fsio::save_aside(path, "corrupt", bytes)?;
        report.warnings.push(format!(
            "{} did not parse ({reason}); its bytes are saved in {} and it is recreated",
            path.display(),
            saved.display()
        ));
        linked = Some(saved.clone());
        report.corrupt_saved_to = Some(saved);
    } else if let Some(bytes) = old.as_deref().filter(|b| !b.is_empty()) {
        linked = Some(fsio::save_aside(path, "backup", bytes)?);
        fsio::rotate_backups(path)?;
    }
    let linked = linked.as_deref().zip(old.as_deref());
    fsio::write_atomic(path, new.as_bytes(), linked)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answers() -> Answers {
        Answers {
            trust: Some("/home/alice/proj".into()),
            skip_permissions: true,
            api_key: Some("sk-ant-0123456789-abcdefghijklmnopqrst".into()),
        }
    }

    fn seeds_of(agent: AgentKind, file: &str) -> Vec<Seed> {
        plan(agent, &answers())
            .into_iter()
            .find_map(|f| match f {
                FileSeeds::Json { file: f, seeds, .. } if f == file => Some(seeds),
                _ => None,
            })
            .unwrap()
    }

    fn json_of(text: &str) -> Value {
        serde_json::from_str(&jsonc::blank_comments(text)).unwrap()
    }

    #[test]
    fn a_fresh_claude_home_gets_every_answer() {
        let p = plan_json(None, Format::Json, &seeds_of(AgentKind::Claude, ".claude.json"));
        assert_eq!(
            json_of(&p.new_text.unwrap()),
            json!({
                "hasCompletedOnboarding": true,
                "projects": {"/home/alice/proj": {"hasTrustDialogAccepted": true}},
                "customApiKeyResponses": {"approved": ["abcdefghijklmnopqrst"]}
            })
        );
        let p = plan_json(None, Format::Json, &seeds_of(AgentKind::Claude, ".claude/settings.json"));
        assert_eq!(json_of(&p.new_text.unwrap()), json!({"skipDangerousModePermissionPrompt": true}));
    }

    #[test]
    fn only_what_the_config_implies() {
        let none = Answers::default();
        let claude = plan(AgentKind::Claude, &none);
        assert_eq!(claude.len(), 1, "no consent file without the no-prompt flag: {claude:?}");
        let FileSeeds::Json { seeds, .. } = &claude[0] else { panic!() };
        assert_eq!(seeds.len(), 1, "onboarding only, no trust, no key: {seeds:?}");
        assert!(plan(AgentKind::Gemini, &none).is_empty(), "no auth choice without a key");
        assert!(plan(AgentKind::Codex, &none).is_empty());
        assert!(plan(AgentKind::Opencode, &answers()).is_empty());
    }

    #[test]
    fn a_users_choices_are_never_overwritten() {
        let seeds = seeds_of(AgentKind::Claude, ".claude.json");
        // Every answer given by the user, some the other way: nothing to write.
        let user = r#"{"hasCompletedOnboarding": false, "projects": {"/home/alice/proj": {"hasTrustDialogAccepted": false}},
            "customApiKeyResponses": {"approved": [], "rejected": ["abcdefghijklmnopqrst"]}}"#;
        assert_eq!(plan_json(Some(user), Format::Json, &seeds), FilePlan::default());
        // A value in the way of a path is left alone; the rest is added, other keys kept.
        let odd =
            r#"{"projects": "mine", "customApiKeyResponses": {"approved": ["other-key-tail"]}, "theme": "light"}"#;
        let p = plan_json(Some(odd), Format::Json, &seeds);
        assert_eq!(
            json_of(&p.new_text.unwrap()),
            json!({"projects": "mine", "theme": "light", "hasCompletedOnboarding": true,
                   "customApiKeyResponses": {"approved": ["other-key-tail", "abcdefghijklmnopqrst"]}})
        );
        assert_eq!(p.set, ["hasCompletedOnboarding", "customApiKeyResponses.approved"]);
        // Seeding twice changes nothing the second time.
        let once = plan_json(None, Format::Json, &seeds).new_text.unwrap();
        assert_eq!(plan_json(Some(&once), Format::Json, &seeds), FilePlan::default());
    }

    #[test]
    fn gemini_settings_keep_their_comments_and_choices() {
        let seeds = seeds_of(AgentKind::Gemini, ".gemini/settings.json");
        let src = "{\n  // mine\n  \"ui\": {\"theme\": \"GitHub\"}, /* keep */\n  \"security\": {\"folderTrust\": {\"enabled\": true}}\n}\n";
        let new = plan_json(Some(src), Format::Jsonc, &seeds).new_text.unwrap();
        assert!(new.contains("// mine") && new.contains("/* keep */"), "{new}");
        assert_eq!(
            json_of(&new),
            json!({"ui": {"theme": "GitHub"},
                   "security": {"folderTrust": {"enabled": true}, "auth": {"selectedType": "gemini-api-key"}}})
        );
        let chosen = r#"{"security": {"auth": {"selectedType": "oauth-personal"}}}"#;
        assert_eq!(plan_json(Some(chosen), Format::Jsonc, &seeds), FilePlan::default());
    }

    #[test]
    fn corrupt_json_starts_fresh() {
        let p = plan_json(Some("{ not json"), Format::Json, &seeds_of(AgentKind::Claude, ".claude.json"));
        assert!(p.corrupt.is_some());
        assert_eq!(json_of(&p.new_text.unwrap())["hasCompletedOnboarding"], json!(true));
    }

    #[test]
    fn codex_trust_is_added_once_and_a_users_level_stands() {
        let src = "# mine\nmodel = \"o3\"\n\n[projects.\"/other\"]\ntrust_level = \"untrusted\"\n";
        let p = plan_codex_trust(Some(src), "/home/alice/proj");
        let new = p.new_text.unwrap();
        assert!(new.starts_with("# mine\nmodel = \"o3\"\n"), "{new}");
        let doc: toml_edit::DocumentMut = new.parse().unwrap();
        assert_eq!(doc["projects"]["/home/alice/proj"]["trust_level"].as_str(), Some("trusted"));
        assert_eq!(doc["projects"]["/other"]["trust_level"].as_str(), Some("untrusted"));
        assert_eq!(plan_codex_trust(Some(&new), "/home/alice/proj"), FilePlan::default());
        let user = "[projects.\"/home/alice/proj\"]\ntrust_level = \"untrusted\"\n";
        assert_eq!(plan_codex_trust(Some(user), "/home/alice/proj"), FilePlan::default());
        assert_eq!(plan_codex_trust(Some("projects = 3\n"), "/home/alice/proj"), FilePlan::default());
        let fresh = plan_codex_trust(None, "/w").new_text.unwrap();
        assert_eq!(fresh, "[projects.\"/w\"]\ntrust_level = \"trusted\"\n");
        let broken = plan_codex_trust(Some("[[[ nope"), "/w");
        assert!(broken.corrupt.is_some() && broken.new_text.is_some());
    }

    #[test]
    fn seeding_files_backs_up_keeps_corrupt_bytes_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::write(home.join(".claude.json"), "{ this is not json").unwrap();
        let r = seed(AgentKind::Claude, home, &answers(), false).unwrap();
        assert_eq!(r.len(), 2);
        let saved = r[0].corrupt_saved_to.clone().unwrap();
        assert_eq!(std::fs::read_to_string(saved).unwrap(), "{ this is not json");
        let v: Value = serde_json::from_slice(&std::fs::read(home.join(".claude.json")).unwrap()).unwrap();
        assert_eq!(v["projects"]["/home/alice/proj"]["hasTrustDialogAccepted"], json!(true));
        // Again: nothing to do, so no backup either.
        let again = seed(AgentKind::Claude, home, &answers(), false).unwrap();
        assert!(again.iter().all(|r| r.set.is_empty()));
        let backups = std::fs::read_dir(home)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".backup-"))
            .count();
        assert_eq!(backups, 0);
        // A link in place of the file is refused and its target untouched.
        let other = dir.path().join("elsewhere.toml");
        std::fs::write(&other, "x = 1\n").unwrap();
        std::fs::create_dir_all(home.join(".codex")).unwrap();
        std::os::unix::fs::symlink(&other, home.join(".codex/config.toml")).unwrap();
        assert!(matches!(seed(AgentKind::Codex, home, &answers(), false), Err(Error::Symlink { .. })));
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "x = 1\n");
    }
}
