//! `CELL_TIMINGS=1`: the launcher prints how long each phase of a launch took (to stderr,
//! microseconds since `main`), for bench/breakdown.sh. Costs one environment lookup.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Starts the clock when `CELL_TIMINGS` is set (call first thing in `main`).
pub fn start() {
    START.get_or_init(|| std::env::var_os("CELL_TIMINGS").map(|_| Instant::now()));
}

/// Prints `label` with the time since [`start`], when timing.
pub fn mark(label: &str) {
    if let Some(Some(t)) = START.get() {
        // One write per line (eprintln! writes each piece of its format on its own).
        let line = format!("cell-timing {:>7} us  {label}\n", t.elapsed().as_micros());
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
}
