//! cell: declarative bubblewrap sandboxes for AI coding agents.
//!
//! Data flows one way: a configuration file ([`config`]) and the host ([`hostenv`]) become
//! a [`plan`] (mounts, environment, bubblewrap argv), which [`launch`] executes with
//! `cell-init` ([`init`]) as the cell's pid 1. [`doctor`] explains hosts that cannot isolate.

pub mod agents;
pub mod bridge;
pub mod browser;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod containment;
pub mod doctor;
pub mod fragments;
pub mod gitview;
pub mod hostenv;
pub mod init;
pub mod launch;
pub mod limits;
pub mod login;
pub mod mcp_fragment;
pub mod plan;
pub mod pty;
pub mod seccomp;
pub mod selftest;
