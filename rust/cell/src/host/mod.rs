//! The host side: the launcher and everything it runs outside the cell.

pub mod agents;
pub mod check;
pub mod cli;
pub mod config;
pub mod containment;
pub mod denials;
pub mod descriptors;
pub mod display;
pub mod doctor;
pub mod gitview;
pub mod home;
pub mod hostenv;
pub mod launch;
pub mod limits;
pub mod login;
pub mod manage;
pub mod plan;
pub mod prepare;
pub mod project;
pub mod pty;
pub mod publish;
pub mod seccomp;
pub mod selftest;
pub mod sidecars;
pub mod tools;
pub mod ttyout;
