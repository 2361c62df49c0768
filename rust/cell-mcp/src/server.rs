//! Declared MCP servers: the one shape the launcher's config and the servers file share.
//!
//! A server is either stdio (`command`, optional `args` and `env`) or remote (`url`, optional
//! `headers` and `transport`). The raw serde shape is validated into [`McpServer`]; the error names
//! the server and the field at fault.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::Error;

/// How a remote server is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// MCP streamable HTTP (the default).
    #[default]
    Http,
    /// The older HTTP + server-sent events transport.
    Sse,
}

impl Transport {
    /// The lowercase name used by every agent format (`"http"` or `"sse"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Sse => "sse",
        }
    }
}

/// One declared server, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawServer", into = "RawServer")]
pub enum McpServer {
    /// A local process speaking MCP over stdin/stdout.
    Stdio {
        /// Program to run (looked up on the agent's `PATH` unless absolute).
        command: String,
        /// Arguments, in order.
        args: Vec<String>,
        /// Extra environment for the process.
        env: BTreeMap<String, String>,
    },
    /// A server reached over the network.
    Remote {
        /// `http://` or `https://` endpoint.
        url: String,
        /// Extra request headers (e.g. `Authorization`).
        headers: BTreeMap<String, String>,
        /// Streamable HTTP or SSE.
        transport: Transport,
    },
}

/// The serde shape as written by people: every field optional, unknown fields refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawServer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
}

impl TryFrom<RawServer> for McpServer {
    type Error = String;

    fn try_from(raw: RawServer) -> Result<Self, String> {
        match (raw.command, raw.url) {
            (Some(_), Some(_)) => Err("has both \"command\" and \"url\"; a server is either stdio (command) or \
                                   remote (url)"
                .into()),
            (None, None) => Err("needs \"command\" (stdio) or \"url\" (remote)".into()),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err("\"command\" is empty".into());
                }
                for (field, present) in [("headers", raw.headers.is_some()), ("transport", raw.transport.is_some())] {
                    if present {
                        return Err(format!("\"{field}\" is only for remote servers (with \"url\")"));
                    }
                }
                let env = raw.env.unwrap_or_default();
                if let Some(k) = env.keys().find(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
                    return Err(format!("env key {k:?} is not a valid variable name"));
                }
                Ok(McpServer::Stdio { command, args: raw.args.unwrap_or_default(), env })
            }
            (None, Some(url)) => {
                let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
                if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace)) {
                    return Err(format!("\"url\" {url:?} must be an http:// or https:// URL"));
                }
                for (field, present) in [("args", raw.args.is_some()), ("env", raw.env.is_some())] {
                    if present {
                        return Err(format!("\"{field}\" is only for stdio servers (with \"command\")"));
                    }
                }
                Ok(McpServer::Remote {
                    url,
                    headers: raw.headers.unwrap_or_default(),
                    transport: raw.transport.unwrap_or_default(),
                })
            }
        }
    }
}

impl From<McpServer> for RawServer {
    fn from(s: McpServer) -> Self {
        match s {
            McpServer::Stdio { command, args, env } => RawServer {
                command: Some(command),
                args: (!args.is_empty()).then_some(args),
                env: (!env.is_empty()).then_some(env),
                ..RawServer::default()
            },
            McpServer::Remote { url, headers, transport } => RawServer {
                url: Some(url),
                headers: (!headers.is_empty()).then_some(headers),
                transport: Some(transport),
                ..RawServer::default()
            },
        }
    }
}

impl McpServer {
    /// Validate one server given as JSON, naming it in the error.
    ///
    /// # Errors
    /// [`Error::InvalidServer`] naming the server and the field at fault.
    pub fn from_json(name: &str, value: Value) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidServer { name: name.to_owned(), reason };
        let Value::Object(map) = value else {
            return Err(invalid(format!("must be an object, found {}", json_kind(&value))));
        };
        // Check string maps by hand so the message names the exact key.
        for field in ["env", "headers"] {
            if let Some(v) = map.get(field) {
                let Value::Object(m) = v else {
                    return Err(invalid(format!("\"{field}\" must be an object of strings, found {}", json_kind(v))));
                };
                if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(invalid(format!("\"{field}.{k}\" must be a string, found {}", json_kind(v))));
                }
            }
        }
        if let Some(v) = map.get("args") {
            let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(invalid("\"args\" must be an array of strings".into()));
            }
        }
        let raw: RawServer = serde_json::from_value(Value::Object(map)).map_err(|e| invalid(e.to_string()))?;
        McpServer::try_from(raw).map_err(invalid)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Check a server name: 1 to 64 characters from `A-Z a-z 0-9 _ -`.
///
/// Every agent accepts these; dots, spaces and slashes break at least one of them (codex's
/// dotted TOML keys, claude's `mcp__<server>__<tool>` tool names).
///
/// # Errors
/// [`Error::InvalidName`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason: &str| Err(Error::InvalidName { name: name.to_owned(), reason: reason.to_owned() });
    if name.is_empty() {
        return bad("names must not be empty");
    }
    if name.len() > 64 {
        return bad("names are at most 64 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return bad("names use only letters, digits, '_' and '-'");
    }
    Ok(())
}

/// The declared servers, in declaration order, names validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servers {
    entries: Vec<(String, McpServer)>,
}

impl Servers {
    /// Build from `(name, server)` pairs.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad or duplicate name.
    pub fn new(entries: impl IntoIterator<Item = (String, McpServer)>) -> Result<Self, Error> {
        let mut out = Servers::default();
        for (name, server) in entries {
            validate_name(&name)?;
            if out.get(&name).is_some() {
                return Err(Error::InvalidName { name, reason: "declared twice".into() });
            }
            out.entries.push((name, server));
        }
        Ok(out)
    }

    /// Parse a servers file: `{ "servers": { "<name>": <server>, ... } }`.
    ///
    /// # Errors
    /// [`Error::ServersFile`] when it is not that shape, or the server's own error.
    pub fn from_servers_file(text: &str) -> Result<Self, Error> {
        let file_err = |reason: String| Error::ServersFile { reason };
        let value: Value = serde_json::from_str(text).map_err(|e| file_err(format!("not valid JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(file_err("the top level must be an object with a \"servers\" key".into()));
        };
        if let Some(k) = top.keys().find(|k| *k != "servers") {
            return Err(file_err(format!("unknown top-level key {k:?} (only \"servers\" is allowed)")));
        }
        match top.remove("servers") {
            None => Err(file_err("missing the \"servers\" key".into())),
            Some(Value::Object(map)) => Self::from_json_map(map),
            Some(v) => Err(file_err(format!("\"servers\" must be an object, found {}", json_kind(&v)))),
        }
    }

    /// Validate a JSON object of `name -> server`, keeping its order.
    ///
    /// # Errors
    /// The first invalid name or server.
    pub fn from_json_map(map: serde_json::Map<String, Value>) -> Result<Self, Error> {
        let mut entries = Vec::with_capacity(map.len());
        for (name, v) in map {
            validate_name(&name)?;
            let server = McpServer::from_json(&name, v)?;
            entries.push((name, server));
        }
        Self::new(entries)
    }

    /// Iterate in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &McpServer)> {
        self.entries.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// Look a server up by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&McpServer> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Number of servers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is declared.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'de> Deserialize<'de> for Servers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Servers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping server names to servers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Servers, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(de::Error::custom(format!("MCP server {k:?} declared twice")));
                    }
                    map.insert(k, v);
                }
                Servers::from_json_map(map).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Servers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (n, v) in &self.entries {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        McpServer::from_json("srv", v).unwrap_err().to_string()
    }

    #[test]
    fn stdio_and_remote_parse() {
        let s = McpServer::from_json("a", json!({"command": "npx", "args": ["x"], "env": {"K": "v"}})).unwrap();
        assert!(matches!(s, McpServer::Stdio { ref command, .. } if command == "npx"));
        let r = McpServer::from_json("b", json!({"url": "https://h/mcp", "transport": "sse"})).unwrap();
        assert!(matches!(r, McpServer::Remote { transport: Transport::Sse, .. }));
        let r = McpServer::from_json("b", json!({"url": "https://h/mcp"})).unwrap();
        assert!(matches!(r, McpServer::Remote { transport: Transport::Http, .. }));
    }

    #[test]
    fn errors_name_server_and_field() {
        let e = err(json!({"command": "x", "url": "https://h"}));
        assert!(e.contains("\"srv\"") && e.contains("both"), "{e}");
        assert!(err(json!({})).contains("needs \"command\""));
        let e = err(json!({"command": "x", "env": {"K": 1}}));
        assert!(e.contains("env.K") && e.contains("number"), "{e}");
        let e = err(json!({"url": "https://h", "headers": {"A": true}}));
        assert!(e.contains("headers.A"), "{e}");
        assert!(err(json!({"command": "x", "bogus": 1})).contains("bogus"));
        assert!(err(json!({"url": "ftp://h"})).contains("http"));
        assert!(err(json!({"command": "x", "transport": "sse"})).contains("transport"));
        assert!(err(json!({"url": "https://h", "args": []})).contains("args"));
        assert!(err(json!({"url": "https://h", "transport": "ws"})).contains("ws"));
        assert!(err(json!("npx")).contains("must be an object"));
        assert!(err(json!({"command": "x", "args": [1]})).contains("args"));
    }

    #[test]
    fn names() {
        assert!(validate_name("ok_name-1").is_ok());
        for bad in ["", "a.b", "a b", "a/b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn servers_file_and_serde() {
        let s =
            Servers::from_servers_file(r#"{"servers": {"b": {"command": "x"}, "a": {"url": "http://h"}}}"#).unwrap();
        assert_eq!(s.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["b", "a"]);
        assert!(Servers::from_servers_file("{}").unwrap_err().to_string().contains("servers"));
        assert!(Servers::from_servers_file(r#"{"servers": {"": {"command": "x"}}}"#).is_err());
        assert!(Servers::from_servers_file(r#"{"servers": [], "x": 1}"#).unwrap_err().to_string().contains("\"x\""));
        // The launcher embeds `Servers` in its own config through serde.
        let via: Servers = serde_json::from_str(r#"{"b": {"command": "x"}, "a": {"url": "http://h"}}"#).unwrap();
        assert_eq!(via, s);
        let e = serde_json::from_str::<Servers>(r#"{"a": {"command": "x", "env": {"K": 2}}}"#).unwrap_err();
        assert!(e.to_string().contains("\"a\"") && e.to_string().contains("env.K"), "{e}");
        let round: Servers = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(round, s);
    }
}
