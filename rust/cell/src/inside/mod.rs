//! The inside of a cell: `cell-init` (pid 1) and what it runs there. Nothing here uses
//! the host side; the two meet in [`crate::contract`].

pub mod agent_state;
pub mod bridge;
pub mod browser;
pub mod catalog;
pub mod fragments;
pub mod init;
pub mod mcp_fragment;
pub mod publish;
pub mod refusal;
