//! `cell login`: what the launcher asks of the in-cell driver.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the launcher asks of the driver.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginSpec {
    /// The browser program and its arguments (the cell's `browser.command`).
    pub command: Vec<String>,
    /// The profile, relative to `$HOME`.
    pub profile: Utf8PathBuf,
    /// Where to write the storage state, relative to `$HOME` (a new file).
    pub state_file: Utf8PathBuf,
    /// Run the browser headless (`--display none`).
    pub headless: bool,
    /// More browser arguments (the display's).
    pub extra_args: Vec<String>,
    /// The page to open.
    pub url: Option<String>,
    /// How long the browser gets to close after `Browser.close`.
    pub close_timeout_secs: u64,
    /// `cell-walflush` inside the cell.
    pub walflush: Utf8PathBuf,
}

/// A Playwright storage state (`browser.newContext({ storageState })`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StorageState {
    /// Cookies, in Playwright's shape.
    pub cookies: Vec<Value>,
    /// Local storage by origin.
    pub origins: Vec<Value>,
}
