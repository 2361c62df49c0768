use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_cell-mcp");

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `cell-mcp merge` as a process.
pub fn merge(agent: &str, servers: &Path, config: &Path, state: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["merge", "--agent", agent, "--servers"])
        .arg(servers)
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .args(extra)
        .output()
        .unwrap()
}

pub fn write_servers(dir: &Path, name: &str, json: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(&serde_json::json!({ "servers": json })).unwrap()).unwrap();
    p
}

/// Files in `dir` whose names start with `prefix`, sorted.
pub fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
