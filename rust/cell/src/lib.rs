//! cell: declarative bubblewrap sandboxes for AI coding agents.
//!
//! The folders say where code runs:
//! - [`host`]: the launcher (`cell`): configuration, planning, launch, sidecars, the
//!   repository view, containment, limits, the terminal relay, doctor, selftest, login;
//! - [`inside`]: `cell-init`, pid 1 of a cell, and what it runs there (bridges, fragments,
//!   the MCP merge, the browser login driver, the escape catalog's probes);
//! - [`contract`]: where the two meet (in-cell paths, descriptors, exit codes, signals, the
//!   types the launcher hands to `cell-init`), and [`sys`] and [`spawn`]: OS helpers both use.
//!
//! `inside` never uses `host`; `contract`, `sys` and `spawn` use neither.
//!
//! Data flows one way: a configuration file (`host::config`) and the host
//! (`host::hostenv`) become a plan (`host::plan`: mounts, environment, bubblewrap argv),
//! which `host::launch` executes with `cell-init` (`inside::init`) as the cell's pid 1.

pub mod contract;
pub mod host;
pub mod inside;
pub mod spawn;
pub mod sys;
pub mod timing;
