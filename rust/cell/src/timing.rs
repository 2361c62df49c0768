//! `CELL_TIMINGS=1`: the launcher reports how long each phase of a launch took (to stderr,
//! microseconds since `main`), for measuring where a launch's time goes. The marks are kept
//! in memory and written once, at the end ([`finish`]): a write per mark would wake the
//! reader of stderr on the other processor while the launch is measured. Costs one
//! environment lookup when off.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();
static MARKS: Mutex<String> = Mutex::new(String::new());

/// Starts the clock when `CELL_TIMINGS` is set (call first thing in `main`).
pub fn start() {
    START.get_or_init(|| std::env::var_os("CELL_TIMINGS").map(|_| Instant::now()));
}

/// Notes `label` with the time since [`start`], when timing.
pub fn mark(label: &str) {
    if let Some(Some(t)) = START.get() {
        let line = format!("cell-timing {:>7} us  {label}\n", t.elapsed().as_micros());
        if let Ok(mut marks) = MARKS.lock() {
            marks.push_str(&line);
        }
    }
}

/// Writes the marks noted so far to stderr (one write), when timing.
pub fn finish() {
    if let Ok(mut marks) = MARKS.lock() {
        if !marks.is_empty() {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), marks.as_bytes());
            marks.clear();
        }
    }
}
