//! Integration tests: the real `cell` and `cell-init` binaries and the real bubblewrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod browser;
mod cli;
mod first_run;
mod generated;
mod golden;
mod hardening;
mod hostile;
mod install;
mod jail;
mod limits;
mod manage;
mod net;
mod project;
mod publish;
mod repository;
mod sidecars;
mod support;
mod terminal;
